"""The checked-in ``schemas/`` are what the code generates, and every contract is versioned.

When a model in ``streams/events.py`` changes, regenerate with
``phoenix-resume schemas --out schemas`` and commit the result (and bump ``schema_version`` if the
change is not backwards compatible for readers).
"""

from __future__ import annotations

import difflib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producers.cli import main
from producers.schemas import render_schemas, topic_contracts, union_members, write_schemas
from streams.events import CompletedRun, Example, ResumeRequest, StartRequest

REPO = Path(__file__).resolve().parents[3]
CHECKED_IN = REPO / "schemas"
REGENERATE = "regenerate with `phoenix-resume schemas --out schemas`"


def disagreements(generated: Path, checked_in: Path) -> list[str]:
    """One line per file that is missing, extra or different, naming the file."""
    new = {p.name: p for p in generated.glob("*.schema.json")}
    old = {p.name: p for p in checked_in.glob("*.schema.json")} if checked_in.is_dir() else {}
    problems = [f"schemas/{name} is missing ({REGENERATE})" for name in sorted(new.keys() - old)]
    problems += [
        f"schemas/{name} is produced by no topic (renamed or re-versioned? remove it)"
        for name in sorted(old.keys() - new)
    ]
    for name in sorted(new.keys() & old):
        want, have = new[name].read_text(), old[name].read_text()
        if want != have:
            diff = difflib.unified_diff(
                have.splitlines(), want.splitlines(), f"schemas/{name}", "code", lineterm="", n=1
            )
            excerpt = "\n".join(list(diff)[:30])
            problems.append(f"schemas/{name} differs from the code ({REGENERATE}):\n{excerpt}")
    return problems


def test_checked_in_schemas_match_the_code(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    problems = disagreements(tmp_path, CHECKED_IN)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("breakage", ["edit", "delete", "add"])
def test_disagreements_name_the_file(tmp_path: Path, breakage: str) -> None:
    generated, copy = tmp_path / "generated", tmp_path / "copy"
    write_schemas(generated)
    shutil.copytree(generated, copy)
    if breakage == "edit":
        path = copy / "requests.v1.schema.json"
        path.write_text(path.read_text().replace('"title": "Team"', '"title": "Squad"'))
        name = path.name
    elif breakage == "delete":
        (copy / "status.v1.schema.json").unlink()
        name = "status.v1.schema.json"
    else:
        (copy / "requests.v0.schema.json").write_text("{}\n")
        name = "requests.v0.schema.json"
    problems = disagreements(generated, copy)
    assert len(problems) == 1 and f"schemas/{name}" in problems[0], problems


def test_output_is_deterministic() -> None:
    first = render_schemas()
    assert first == render_schemas()
    for name, text in first.items():
        assert text.endswith("}\n"), name
        canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
        assert text == canonical + "\n", name


def test_one_file_per_topic_named_by_role_and_version() -> None:
    names = {c.file_name for c in topic_contracts()}
    assert names == {
        "requests.v1.schema.json",
        "control.v1.schema.json",
        "work.v1.schema.json",
        "evaluations.v1.schema.json",
        "completed-runs.v1.schema.json",
        "status.v1.schema.json",
    }
    titles = {c.role: c.title for c in topic_contracts()}
    assert titles["requests"] == "ResumeRequest" and titles["control"] == "ControlEvent"
    assert titles["completed-runs"] == "CompletedRun" and titles["status"] == "StatusEvent"


def event_schemas(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The top-level event object(s) of a topic's schema: itself, or each member of its union."""
    members = schema.get("oneOf") or schema.get("anyOf")
    if not members:
        return {schema["title"]: schema}
    defs = schema.get("$defs", {})
    resolved = {}
    for member in members:
        name = member["$ref"].rpartition("/")[2]
        resolved[name] = defs[name]
    return resolved


def test_every_event_schema_pins_its_schema_version() -> None:
    for contract in topic_contracts():
        schema = json.loads(render_schemas()[contract.file_name])
        events = event_schemas(schema)
        assert set(events) == {m.__name__ for m in union_members(contract.model)}, contract.role
        for name, event in events.items():
            version = event["properties"].get("schema_version", {})
            pinned = version.get("const", (version.get("enum") or [None, None])[0])
            assert pinned == contract.schema_version, f"{contract.file_name}: {name} {version}"
            assert event.get("additionalProperties") is False, f"{name} accepts unknown fields"


def test_cli_writes_the_schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == sorted(render_schemas())
    for name, text in render_schemas().items():
        assert (tmp_path / "out" / name).read_text() == text, name


def test_events_we_publish_validate_against_their_schema() -> None:
    """The schemas describe real events (jsonschema ships with the dev environment)."""
    jsonschema = pytest.importorskip("jsonschema")
    now = datetime.now(UTC)
    example = Example(id="RGF0YXNldEV4YW1wbGU6MQ==", input={"q": "?"}, output={"a": "!"})
    samples = {
        "requests": ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer"),
        "control": StartRequest(request=ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="t")),
        "completed-runs": CompletedRun(
            request_id="r1", experiment_id="RXhwZXJpbWVudDox", dataset_example_id=example.id,
            repetition=1, run_id="RXhwZXJpbWVudFJ1bjox", task="answer", example=example,
            output={"answer": "!"}, start_time=now, end_time=now,
        ),
    }
    rendered = render_schemas()
    schemas = {c.role: json.loads(rendered[c.file_name]) for c in topic_contracts()}
    for role, event in samples.items():
        validator = jsonschema.Draft202012Validator(schemas[role])
        validator.check_schema(schemas[role])
        errors = [e.message for e in validator.iter_errors(event.model_dump(mode="json"))]
        assert not errors, (role, errors)
    bad = samples["requests"].model_dump(mode="json") | {"schema_version": 2}
    assert not jsonschema.Draft202012Validator(schemas["requests"]).is_valid(bad)
