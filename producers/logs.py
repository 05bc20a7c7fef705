"""Log lines that carry request and experiment ids: readable text, or one JSON object a line.

Agents log with ``extra={"request_id": ..., "experiment_id": ...}``; these formatters put
the ids on every such line, so a line can be traced to its request.

    >>> import json, logging
    >>> record = logging.LogRecord("x", logging.INFO, "f", 1, "run failed", None, None)
    >>> record.request_id, record.experiment_id = "r1", "e1"
    >>> line = json.loads(JsonFormatter().format(record))
    >>> line["message"], line["request_id"], line["experiment_id"]
    ('run failed', 'r1', 'e1')
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "experiment_id", "team")


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


def log_handler(log_format: str) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler
