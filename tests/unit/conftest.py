"""Unit tests are hermetic: no broker, no Phoenix, no configuration from the caller's shell."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("PHOENIX_", "KAFKA_", "RESUME_")):
            monkeypatch.delenv(name)
