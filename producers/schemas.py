"""JSON Schemas of the event contracts: one file per topic, named after the topic and its version.

Other teams read ``completed-runs`` and ``status`` and write ``requests``; the schemas in
``schemas/`` at the repository root are generated from the pydantic models, so they cannot drift
from what the codec accepts (``tests/unit/deploy/test_schemas.py`` regenerates and compares).

    $ phoenix-resume schemas --out schemas/

    >>> sorted(render_schemas())                                   # doctest: +NORMALIZE_WHITESPACE
    ['completed-runs.v1.schema.json', 'control.v1.schema.json', 'evaluations.v1.schema.json',
     'requests.v1.schema.json', 'status.v1.schema.json', 'work.v1.schema.json']

The topic -> model mapping is read from :func:`streams.app.topics.declare_topics` itself (through a
recording stand-in for the Faust app), so a topic whose value type changes there changes here.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from config import Settings
from streams.codec import PydanticCodec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class TopicContract:
    """A topic's role (its name without the deployment's prefix) and the model of its values."""

    role: str
    model: Any

    @property
    def title(self) -> str:
        return model_title(self.model)

    @property
    def schema_version(self) -> int:
        return schema_version_of(self.model)

    @property
    def file_name(self) -> str:
        return f"{self.role}.v{self.schema_version}.schema.json"


class _RecordingApp:
    """Stands in for ``faust.App`` in :func:`declare_topics`: remembers each topic's codec."""

    def __init__(self) -> None:
        self.codecs: dict[str, Any] = {}

    def topic(self, name: str, *, value_serializer: Any = None, **_: Any) -> str:
        self.codecs[name] = value_serializer
        return name


def topic_contracts() -> list[TopicContract]:
    """Every topic with a pydantic value type, in declaration order (dead letters are raw)."""
    from streams.app.topics import declare_topics

    app = _RecordingApp()
    # No prefix: the roles are the topic names. model_construct: no environment is read.
    declare_topics(app, Settings.model_construct(topic_prefix=""))  # type: ignore[arg-type]
    return [
        TopicContract(role=name, model=codec.model)
        for name, codec in app.codecs.items()
        if isinstance(codec, PydanticCodec)
    ]


def union_members(model: Any) -> list[type[BaseModel]]:
    """The models of a (possibly ``Annotated``) union, or ``[model]`` for a single model."""
    if typing.get_origin(model) is typing.Annotated:
        model = typing.get_args(model)[0]
    members = typing.get_args(model)
    return list(members) if members else [model]


def model_title(model: Any) -> str:
    """The model's class name, or for a union the name ``streams.events`` gives it."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.__name__
    from streams import events

    for name, value in vars(events).items():
        if value is model:
            return name
    return " | ".join(m.__name__ for m in union_members(model))


def schema_version_of(model: Any) -> int:
    """The ``schema_version`` default of the model (of every member, which must agree)."""
    versions = {m.model_fields["schema_version"].default for m in union_members(model)}
    if len(versions) != 1:
        raise ValueError(f"{model_title(model)} mixes schema versions {sorted(versions)}")
    return int(versions.pop())


def json_schema(contract: TopicContract) -> dict[str, Any]:
    """The validation-mode JSON Schema of a topic's values (what the codec accepts)."""
    schema = TypeAdapter(contract.model).json_schema()
    schema.setdefault("title", contract.title)
    schema["$schema"] = JSON_SCHEMA_DIALECT
    return schema


def render(schema: dict[str, Any]) -> str:
    """Deterministic text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> file text, for every topic contract."""
    return {c.file_name: render(json_schema(c)) for c in topic_contracts()}


def write_schemas(out_dir: str | Path) -> list[Path]:
    """Write one ``<topic>.v<version>.schema.json`` per topic into ``out_dir``; return the paths.

    Files already in ``out_dir`` that no topic produces are left alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render_schemas().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
