"""How the pydantic contracts travel as bytes: a codec per model that never raises on decode.

Decoding never raises: bytes that are not JSON, do not fit the schema, carry an unknown schema
version or are larger than allowed come out as :class:`Undecodable`, which the agent sends to
the dead-letter topic with the original bytes; ``None`` (a tombstone) is an
:class:`Undecodable` too. This module needs only pydantic: the embedded runner and readers
outside a worker use it without importing Faust, whose adapter is :mod:`streams.codec`.

    >>> from streams.events import ResumeRequest
    >>> codec = ModelCodec(ResumeRequest)
    >>> codec.loads(codec.dumps(ResumeRequest(experiment_id="e1", task="t"))).task
    't'
    >>> codec.loads(b"not json").reason
    'invalid'
    >>> codec.loads(None).reason
    'tombstone'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message value that could not become the topic's model; kept whole for the dead letters."""

    raw: bytes
    reason: str  # "oversized" | "invalid" | "tombstone"
    error: str


#: what a dead letter says of a null value
TOMBSTONE_ERROR = "a tombstone (null value) carries no event"


def tombstone() -> Undecodable:
    """The undecodable form of a null message value."""
    return Undecodable(raw=b"", reason="tombstone", error=TOMBSTONE_ERROR)


class ModelCodec:
    """JSON bytes to and from one pydantic model (or a discriminated union of models)."""

    __slots__ = ("adapter", "max_bytes", "model")

    def __init__(self, model: Any, *, max_bytes: int | None = None) -> None:
        self.model = model
        self.adapter: TypeAdapter[Any] = TypeAdapter(model)
        self.max_bytes = max_bytes

    def dumps(self, obj: Any) -> bytes:
        if isinstance(obj, BaseModel):
            return obj.model_dump_json().encode()
        return self.adapter.dump_json(obj)

    def loads(self, s: Any) -> Any:
        """The model, or an :class:`Undecodable` saying why not: never an exception."""
        if s is None:
            return tombstone()
        try:
            raw = bytes(s)
        except (TypeError, ValueError) as exc:  # not bytes-like: nothing of it can be kept
            return Undecodable(raw=b"", reason="invalid", error=f"not bytes: {exc}")
        if self.max_bytes is not None and len(raw) > self.max_bytes:
            return Undecodable(
                raw=raw,
                reason="oversized",
                error=f"message of {len(raw)} bytes exceeds the limit of {self.max_bytes}",
            )
        try:
            return self.adapter.validate_json(raw)
        except ValidationError as exc:
            return Undecodable(raw=raw, reason="invalid", error=_short(exc))
        except Exception as exc:  # whatever else the parser meets is still not an event
            return Undecodable(raw=raw, reason="invalid", error=f"{type(exc).__name__}: {exc}"[:1000])


def _short(exc: ValidationError, limit: int = 1000) -> str:
    text = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<value>'}: {err['msg']}" for err in exc.errors()
    )
    return text[:limit]
