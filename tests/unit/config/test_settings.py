"""Settings: env names, list parsing, validation errors, and secrets kept out of reprs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings, load_settings
from config.settings import parse_header_list

SECRET = "phx-key-5f1e2d3c"


def test_defaults_run_against_the_local_stack() -> None:
    s = Settings()
    assert s.phoenix_base_url == "http://127.0.0.1:6006"
    assert s.kafka_hosts == ["127.0.0.1:9092"]
    assert s.phoenix_api_key is None
    assert s.phoenix_headers == {}
    assert s.page_size == 50
    assert s.task_modules == []


def test_phoenix_and_kafka_use_the_phoenix_client_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_HOST", "https://phoenix.example.com/")
    monkeypatch.setenv("PHOENIX_API_KEY", SECRET)
    monkeypatch.setenv("PHOENIX_CLIENT_HEADERS", "x-team=search,x-note=two%20words")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9093,,")
    s = load_settings()
    assert s.phoenix_base_url == "https://phoenix.example.com"
    assert s.phoenix_api_key is not None and s.phoenix_api_key.get_secret_value() == SECRET
    assert s.phoenix_headers == {
        "x-team": "search",
        "x-note": "two words",
        "authorization": f"Bearer {SECRET}",
    }
    assert s.kafka_hosts == ["k1:9092", "k2:9093"]
    assert s.kafka_broker_url == "kafka://k1:9092;kafka://k2:9093"


def test_resume_prefix_for_everything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESUME_TASK_CONCURRENCY", "20")
    monkeypatch.setenv("RESUME_PAGE_SIZE", "7")
    monkeypatch.setenv("RESUME_MAX_IN_FLIGHT_PER_REQUEST", "30")
    monkeypatch.setenv("RESUME_TOPIC_PREFIX", "team-a.")
    monkeypatch.setenv("RESUME_TRACING_ENABLED", "false")
    monkeypatch.setenv("RESUME_TASK_TIMEOUT_SECONDS", "1.5")
    s = Settings()
    assert (s.task_concurrency, s.page_size, s.max_in_flight_per_request) == (20, 7, 30)
    assert s.tracing_enabled is False
    assert s.task_timeout_seconds == 1.5
    assert s.topics.requests == "team-a.requests"
    assert s.topics.completed_runs == "team-a.completed-runs"
    assert s.topics.dead_letters == "team-a.dead-letters"


def test_unprefixed_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE_SIZE", "7")
    monkeypatch.setenv("BOOTSTRAP_SERVERS", "elsewhere:1")
    s = Settings()
    assert s.page_size == 50
    assert s.kafka_hosts == ["127.0.0.1:9092"]


def test_task_modules_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESUME_TASK_MODULES", "tasks.a, tasks.b ,,tasks.c")
    assert Settings().task_modules == ["tasks.a", "tasks.b", "tasks.c"]


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESUME_PAGE_SIZE", "7")
    assert load_settings(page_size=9).page_size == 9


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("RESUME_PAGE_SIZE", "0", "page_size"),
        ("RESUME_PAGE_SIZE", "many", "page_size"),
        ("RESUME_TASK_CONCURRENCY", "-1", "task_concurrency"),
        ("RESUME_TASK_TIMEOUT_SECONDS", "0", "task_timeout_seconds"),
        ("RESUME_LOG_LEVEL", "verbose", "log_level"),
        ("RESUME_TOPIC_PREFIX", "bad prefix!", "topic_prefix"),
        ("RESUME_WEB_PORT", "70000", "web_port"),
        ("PHOENIX_HOST", "ftp://phoenix:6006", "PHOENIX_HOST"),
        ("PHOENIX_CLIENT_HEADERS", "no-equals-sign", "PHOENIX_CLIENT_HEADERS"),
    ],
)
def test_invalid_values_raise_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as info:
        load_settings()
    locs = [err["loc"][0] for err in info.value.errors()]
    assert locs == [field]
    assert field in str(info.value)


def test_api_key_never_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_API_KEY", SECRET)
    monkeypatch.setenv("PHOENIX_CLIENT_HEADERS", f"api_key={SECRET}")
    s = Settings()
    assert s.phoenix_headers["api_key"] == SECRET  # it is there ...
    for text in (repr(s), str(s), repr(s.model_dump()), s.model_dump_json()):
        assert SECRET not in text  # ... but never printed


def test_invalid_client_headers_error_does_not_leak_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHOENIX_CLIENT_HEADERS", f"authorization=Bearer%20{SECRET},oops")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "PHOENIX_CLIENT_HEADERS" in str(info.value)
    assert SECRET not in str(info.value)


def test_parse_header_list() -> None:
    assert parse_header_list("X-A=1, x-b=two%20words,") == {"x-a": "1", "x-b": "two words"}
    assert parse_header_list(None) == {}
    with pytest.raises(ValueError, match="name=value"):
        parse_header_list("=value")


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.page_size = 3  # type: ignore[misc]


def test_effective_worker_url() -> None:
    assert Settings(web_host="0.0.0.0", web_port=7000).effective_worker_url == "http://0.0.0.0:7000"
    assert Settings(worker_url="http://w:1/").effective_worker_url == "http://w:1"


def test_commits_come_ten_times_a_second_by_default_and_an_interval_is_bounded() -> None:
    # The interval bounds the work a crashed worker's successor runs again.
    assert Settings().commit_interval_seconds == 0.1
    assert Settings(commit_interval_seconds=1.0).commit_interval_seconds == 1.0
    for bad in (0, -1, 61):
        with pytest.raises(ValidationError):
            Settings(commit_interval_seconds=bad)
