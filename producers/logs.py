"""Log lines that carry request and experiment ids: readable text, or one JSON object a line.

Agents log with ``extra={"request_id": ..., "experiment_id": ...}``; these formatters put
the ids on every such line, so a line can be traced to its request. Lines are written through
``tqdm.write``, so they appear above progress bars instead of breaking them. The libraries
under the worker (``mode``, ``faust``, ``aiokafka``) log transient trouble they recover from
(``Timer commit is overlapping``, ``NotLeaderForPartition``) at WARNING and ERROR; at the
default level only their CRITICAL lines reach a terminal (:func:`library_threshold`).

    >>> import json, logging
    >>> record = logging.LogRecord("x", logging.INFO, "f", 1, "run failed", None, None)
    >>> record.request_id, record.experiment_id = "r1", "e1"
    >>> line = json.loads(JsonFormatter().format(record))
    >>> line["message"], line["request_id"], line["experiment_id"]
    ('run failed', 'r1', 'e1')
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from tqdm import tqdm

CONTEXT_FIELDS = ("request_id", "experiment_id", "team")
#: Loggers of the libraries below the worker, held to :func:`library_threshold`.
LIBRARY_LOGGERS = ("mode", "faust", "aiokafka", "kafka")


class TextFormatter(logging.Formatter):
    """``time level logger message request_id=… experiment_id=…``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        return f"{line} {context}" if context else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request context as fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def library_threshold(level: str, explicit: bool) -> int:
    """The lowest level of a library's records that is written: everything at DEBUG; WARNING
    when a level was asked for (at INFO Faust alone writes hundreds of lines at start); only
    CRITICAL at the default level, where its recovered-from warnings would only alarm.

    >>> library_threshold("WARNING", explicit=False) == logging.CRITICAL
    True
    >>> library_threshold("INFO", explicit=True) == logging.WARNING
    True
    """
    if level == "DEBUG":
        return logging.DEBUG
    return logging.WARNING if explicit else logging.CRITICAL


class LibraryFilter(logging.Filter):
    """Drops records of :data:`LIBRARY_LOGGERS` below a threshold; ours pass untouched."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.threshold:
            return True
        return record.name.partition(".")[0] not in LIBRARY_LOGGERS


class TqdmHandler(logging.StreamHandler):
    """A stream handler that writes above tqdm's progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream or sys.stderr)
        except Exception:  # as logging.StreamHandler: a broken stream must not raise
            self.handleError(record)


def log_handler(
    log_format: str, library_level: int = logging.NOTSET
) -> logging.Handler:
    """The handler of the CLI and the worker: text or JSON, above progress bars, with the
    libraries' records below ``library_level`` dropped."""
    handler = TqdmHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if library_level > logging.NOTSET:
        handler.addFilter(LibraryFilter(library_level))
    return handler


@contextlib.contextmanager
def quiet_libraries(threshold: int = logging.CRITICAL) -> Iterator[None]:
    """For the block, hold the libraries' loggers nobody configured to ``threshold`` (the
    Python API runs inside someone else's process: their own settings are left alone)."""
    changed = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(threshold)
            changed.append(logger)
    try:
        yield
    finally:
        for logger in changed:
            logger.setLevel(logging.NOTSET)
