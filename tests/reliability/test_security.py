"""Credentials stay in configuration; Kafka SASL works and a wrong password fails clearly."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from producers.cli import main as cli_main
from producers.kafka import read_topic
from producers.runner import publish_and_follow, run_request
from streams.events import ResumeRequest
from streams.kafka.connection import check_kafka
from streams.kafka.errors import KafkaAuthError
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment
from tests.support.stack import stack_script, stop_stack
from tests.support.workers import WorkerProcess

SASL_USER, SASL_PASSWORD = "alice", "alice-Kafka-pw-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def sasl_broker(stack, tmp_path_factory):
    """A second broker whose only client listener for us is SASL_PLAINTEXT (PLAIN)."""
    stack_dir = tmp_path_factory.mktemp("sasl-kafka")
    lines = stack_script(
        stack_dir, "up", PHOENIX_HOST=stack.phoenix_host,
        KAFKA_SASL_USERS=f"{SASL_USER}:{SASL_PASSWORD}",
    )
    try:
        yield lines["KAFKA_SASL_BOOTSTRAP_SERVERS"]
    finally:
        stop_stack(stack_dir)


def sasl_settings(make_settings, bootstrap: str, password: str):
    return make_settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username=SASL_USER,
        kafka_sasl_password=password,
    )


async def test_a_request_runs_over_sasl(make_settings, phoenix, sasl_broker) -> None:
    built = build_experiment(phoenix, examples=4, repetitions=1)
    tasks = TaskRegistry()
    tasks.register("answer", lambda input: {"ok": input["n"]})
    summary = await run_request(
        sasl_settings(make_settings, sasl_broker, SASL_PASSWORD),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=tasks,
    )
    assert (summary["state"], summary["succeeded"]) == ("complete", 4)


async def test_wrong_password_fails_clearly_and_never_shows_it(
    make_settings, sasl_broker, monkeypatch, capsys
) -> None:
    wrong = "not-the-password-" + uuid.uuid4().hex[:6]
    settings = sasl_settings(make_settings, sasl_broker, wrong)
    with pytest.raises(KafkaAuthError) as raised:
        await check_kafka(settings)
    assert "refused the credentials of user 'alice'" in str(raised.value)
    assert wrong not in str(raised.value)

    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": sasl_broker,
        "RESUME_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "RESUME_KAFKA_SASL_USERNAME": SASL_USER,
        "RESUME_KAFKA_SASL_PASSWORD": wrong,
    }.items():
        monkeypatch.setenv(name, value)
    code = await asyncio.to_thread(cli_main, ["request", "RXhwZXJpbWVudDox", "--task", "answer"])
    out = capsys.readouterr()
    assert code == 1
    assert "KafkaAuthError" in out.err and "refused the credentials" in out.err
    assert wrong not in out.err + out.out


async def _topic_bytes(settings, topic: str) -> bytes:
    """Every key, value and header of a topic, concatenated."""
    chunks: list[bytes] = []
    for m in await read_topic(settings, topic):
        chunks += [m.key or b"", m.value or b""]
        chunks += [k.encode() + v for k, v in (m.headers or [])]
    return b"".join(chunks)


async def test_the_api_key_appears_in_no_message_log_span_or_error(
    make_settings, phoenix, stack, tmp_path: Path
) -> None:
    key = "phx-key-" + uuid.uuid4().hex
    built = build_experiment(phoenix, examples=6, repetitions=1, succeeded=2)
    settings = make_settings(phoenix_api_key=key)
    worker = WorkerProcess(settings, tmp_path / "worker.log", env={"RESUME_LOG_LEVEL": "DEBUG"})
    try:
        final = await publish_and_follow(
            settings,
            ResumeRequest(experiment_id=built.experiment_id, task="fails-on-odd"),
        )
    finally:
        worker.stop()
    assert final.summary["failed"] == 2  # errors were raised, recorded and reported
    names = settings.topics
    seen = b""
    for topic in (names.requests, names.control, names.work, names.completed_runs, names.status,
                  names.dead_letters):
        seen += await _topic_bytes(settings, topic)
    for table in ("summaries", "lanes", "finished", "done", "aborted", "ended", "evaluated"):
        seen += await _topic_bytes(settings, f"{settings.app_id}-{table}-changelog")
    assert len(seen) > 1000
    assert key.encode() not in seen
    assert key not in worker.log_text()
    assert key not in str(final.summary)
    project = final.summary["project_name"]
    spans = phoenix.get(f"/v1/projects/{project}/spans", params={"limit": 1000}).text
    assert key not in spans
