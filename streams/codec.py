"""Carry pydantic models through Faust topics as JSON, without ever crashing an agent.

Faust has no pydantic support of its own, so each topic gets a :class:`PydanticCodec` for its
value type. Decoding never raises: bytes that are not JSON, do not fit the schema, carry an
unknown schema version or are larger than allowed come out as :class:`Undecodable`, which the
agent sends to the dead-letter topic with the original bytes. A tombstone (a null value)
never reaches a worker's codec (Faust hands agents ``None`` for it, see
:mod:`streams.steps.guard`), but readers outside a worker call :meth:`PydanticCodec.loads` on
whatever a topic holds, so ``None`` is an :class:`Undecodable` too.

    >>> from streams.events import ResumeRequest
    >>> codec = PydanticCodec(ResumeRequest)
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

from faust.serializers.codecs import Codec
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


class PydanticCodec(Codec):
    """A Faust codec for one pydantic model (or a discriminated union of models)."""

    def __init__(self, model: Any, *, max_bytes: int | None = None, children: Any = None) -> None:
        self.model = model
        self.adapter: TypeAdapter[Any] = TypeAdapter(model)
        self.max_bytes = max_bytes
        super().__init__(children=children, model=model, max_bytes=max_bytes)

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, BaseModel):
            return obj.model_dump_json().encode()
        return self.adapter.dump_json(obj)

    def loads(self, s: bytes | None) -> Any:
        # Faust's Codec.loads would hand None to _loads and then to any child codecs.
        if s is None:
            return tombstone()
        return super().loads(s)

    def _loads(self, s: bytes) -> Any:
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
