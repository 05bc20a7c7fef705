"""Recognise a rate-limit signal in what a task raised, and the ``Retry-After`` it carries.

Provider SDKs differ: OpenAI's and Anthropic's errors carry ``status_code`` and the httpx
``response``; httpx's ``HTTPStatusError`` carries ``response``; others have ``status``. A
``Retry-After`` (seconds, or an HTTP date) is read from the response's headers, or from a
``retry_after`` attribute.

    >>> class Limited(Exception):
    ...     status_code = 429
    ...     retry_after = 2
    >>> status_of(Limited()), retry_after(Limited())
    (429, 2.0)
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from typing import Any

#: longest Retry-After honoured (a provider's "come back in an hour" is a failure by then)
MAX_RETRY_AFTER_SECONDS = 120.0


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for attribute in ("status_code", "status"):
            value = getattr(holder, attribute, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - time.time()
    return max(0.0, min(MAX_RETRY_AFTER_SECONDS, seconds))


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait (``retry-after-ms`` or ``Retry-After``), if it said.

    >>> class Response:
    ...     headers = {"retry-after": "1.5"}
    >>> class Limited(Exception):
    ...     response = Response()
    >>> retry_after(Limited())
    1.5
    """
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is not None:
        try:
            ms = headers.get("retry-after-ms")
            if ms is not None and (seconds := _seconds(float(ms) / 1000.0)) is not None:
                return seconds
            if (seconds := _seconds(headers.get("retry-after"))) is not None:
                return seconds
        except (TypeError, ValueError, AttributeError):  # someone else's headers: no hint then
            return _seconds(getattr(exc, "retry_after", None))
    return _seconds(getattr(exc, "retry_after", None))


def is_rate_limit(
    exc: BaseException, errors: tuple[type[BaseException], ...], statuses: Iterable[int]
) -> bool:
    """Whether ``exc`` means "slow down": a declared rate-limit error, or a status (429)."""
    if errors and isinstance(exc, errors):
        return True
    status = status_of(exc)
    return status is not None and status in tuple(statuses)
