"""The one root of every error this project raises on purpose, so a caller can catch them all.

Each room names its own errors below it (``streams.phoenix.errors``, ``streams.kafka.errors``,
``streams.registry``, ``producers.errors``); the CLI catches :class:`PhoenixResumeError` and
prints its message, so no traceback reaches a user.

    >>> from streams.phoenix import PhoenixError
    >>> issubclass(PhoenixError, PhoenixResumeError)
    True
"""

from __future__ import annotations


class PhoenixResumeError(Exception):
    """Base class of every named error of phoenix-resume-stream."""
