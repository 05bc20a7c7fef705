"""Test-wide configuration: integration tests are marked by their folder."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path) or "/reliability/" in str(item.path):
            item.add_marker(pytest.mark.integration)
