"""Phoenix UI links, as the seed prints them.

    >>> experiment_url("http://p:6006/", "RGF0YXNldDox", "RXhwZXJpbWVudDox")
    'http://p:6006/datasets/RGF0YXNldDox/compare?experimentId=RXhwZXJpbWVudDox'
"""

from __future__ import annotations


def dataset_experiments_url(base_url: str, dataset_id: str) -> str:
    return f"{base_url.rstrip('/')}/datasets/{dataset_id}/experiments"


def experiment_url(base_url: str, dataset_id: str, experiment_id: str) -> str:
    return f"{base_url.rstrip('/')}/datasets/{dataset_id}/compare?experimentId={experiment_id}"
