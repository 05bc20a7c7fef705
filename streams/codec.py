"""Faust's side of the wire: the topics' value codec, a thin Faust wrapper of :mod:`streams.wire`.

Faust has no pydantic support of its own, so each topic gets a :class:`PydanticCodec` for its
value type; the work is :class:`streams.wire.ModelCodec`'s, whose decoding never raises (what
cannot become the model is an :class:`Undecodable`, sent to the dead letters with its bytes).
A tombstone (a null value) never reaches a worker's codec (Faust hands agents ``None`` for it,
see :mod:`streams.steps.guard`), but readers outside a worker call :meth:`PydanticCodec.loads`
on whatever a topic holds, so ``None`` is an :class:`Undecodable` too. Only the Kafka path
imports this module (it imports Faust); the embedded runner never does.

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

from typing import Any

from streams.kafka.lean import import_faust_types

import_faust_types()  # before Faust's first import: see streams.kafka.lean

from faust.serializers.codecs import Codec  # noqa: E402

from streams.wire import TOMBSTONE_ERROR, ModelCodec, Undecodable, tombstone

__all__ = ["TOMBSTONE_ERROR", "PydanticCodec", "Undecodable", "tombstone"]


class PydanticCodec(Codec):
    """A Faust codec for one pydantic model (or a discriminated union of models)."""

    def __init__(self, model: Any, *, max_bytes: int | None = None, children: Any = None) -> None:
        self.wire = ModelCodec(model, max_bytes=max_bytes)
        self.model, self.adapter, self.max_bytes = model, self.wire.adapter, max_bytes
        super().__init__(children=children, model=model, max_bytes=max_bytes)

    def _dumps(self, obj: Any) -> bytes:
        return self.wire.dumps(obj)

    def loads(self, s: bytes | None) -> Any:
        # Faust's Codec.loads would hand None to _loads and then to any child codecs.
        if s is None:
            return tombstone()
        return super().loads(s)

    def _loads(self, s: bytes) -> Any:
        return self.wire.loads(s)
