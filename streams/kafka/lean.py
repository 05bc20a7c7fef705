"""Faust's type modules imported without aiohttp, which only Faust's web server uses.

``faust.types.web`` imports ``aiohttp.client`` for one name, ``ClientSession``, which Faust
uses as a type alias (annotations and a ``cast``); the import loads all of aiohttp, ~0.1 s of
a Kafka one-shot run's start, a run that has no web server. :func:`import_faust_types` imports
Faust's types once with a placeholder module standing in for ``aiohttp.client`` for the length
of that import, then takes the placeholder away, so a worker with a web server imports the real
aiohttp when Faust's web driver asks for it. The app's HTTP client, which Faust would import
as it builds every app, is imported when first used (:func:`aiohttp_session`).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


class _ClientSessionPlaceholder:
    """What ``faust.types.web.HttpClientT`` names in a process that imported Faust here."""


def import_faust_types() -> None:
    """Import ``faust.types`` (and its ``web``) with ``aiohttp.client`` masked, unless either
    is imported already (then there is nothing to save, or nothing to mask safely)."""
    with _lock:  # the Kafka path may be imported in a thread beside the event loop
        if "faust.types.web" in sys.modules or "aiohttp.client" in sys.modules:
            return
        placeholder = types.ModuleType("aiohttp.client", __doc__)
        placeholder.ClientSession = _ClientSessionPlaceholder  # type: ignore[attr-defined]
        # A module found in sys.modules is used as it is: its parent package (aiohttp's
        # __init__, which imports the rest) is not imported for it.
        sys.modules["aiohttp.client"] = placeholder
        try:
            importlib.import_module("faust.types.web")
        finally:
            if sys.modules.get("aiohttp.client") is placeholder:
                del sys.modules["aiohttp.client"]


def aiohttp_session(*args: Any, **kwargs: Any) -> Any:
    """aiohttp's ``ClientSession``, imported when Faust first asks for its HTTP client.

    Faust's setting ``HttpClient`` defaults to the string ``"aiohttp.client:ClientSession"``,
    which every app resolves as it is built, importing aiohttp; given this instead, Faust
    calls it only for ``app.http_client``, which a one-shot worker never uses.
    """
    from aiohttp.client import ClientSession

    return ClientSession(*args, **kwargs)
