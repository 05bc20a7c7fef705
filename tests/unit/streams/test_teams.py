"""Team rules: who may run what, and which Phoenix client and key serve them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings
from streams.phoenix import PhoenixClient
from streams.teams import TeamDirectory
from streams.tracing import Tracing

TEAMS = {
    "search": {"phoenix_host": "http://search:6006", "api_key_env": "SEARCH_KEY",
               "tasks": ["answer"], "evaluators": ["exact"], "max_concurrency": 2},
    "ads": {"phoenix_host": "http://ads:6006/"},
}


@pytest.fixture
def directory(monkeypatch) -> TeamDirectory:
    monkeypatch.setenv("SEARCH_KEY", "s3cr3t")
    return TeamDirectory.from_settings(Settings(teams=TEAMS))


def test_without_teams_everything_is_the_default_team() -> None:
    teams = TeamDirectory.from_settings(Settings(phoenix_host="http://one:1"))
    assert teams.check(None, "anything", ("any",)) is None
    assert teams.check("whoever", "anything", ()) is None
    assert teams.phoenix("whoever") is teams.phoenix(None)
    assert teams.phoenix(None).base_url == "http://one:1"
    assert teams.cap("whoever") is None


async def test_a_single_team_is_traced_by_what_it_is_given_or_not_at_all() -> None:
    client = PhoenixClient("http://one:1")
    untraced = TeamDirectory.single(client)
    assert untraced.phoenix("whoever") is client
    assert untraced.tracing("whoever").tracer("proj") is None
    tracing = Tracing.for_phoenix("http://one:1", {})
    assert TeamDirectory.single(client, tracing).tracing(None) is tracing
    await client.aclose()


def test_team_rules(directory: TeamDirectory) -> None:
    assert directory.check("search", "answer", ("exact",)) is None
    assert directory.check("search", "other", ()) == "team 'search' may not run task 'other'"
    assert "may not run evaluator(s) 'llm'" in directory.check("search", "answer", ("llm",))
    assert directory.check("ads", "whatever", ("any",)) is None  # "*" by default
    assert directory.check("nope", "answer", ()) == "unknown team 'nope'; known teams: ads, search"
    assert directory.check(None, "answer", ()) == (
        "the request names no team; known teams: ads, search"
    )


def test_each_team_has_its_own_endpoint_key_and_cap(directory: TeamDirectory) -> None:
    search, ads = directory.phoenix("search"), directory.phoenix("ads")
    assert (search.base_url, ads.base_url) == ("http://search:6006", "http://ads:6006")
    assert search._http.headers["authorization"] == "Bearer s3cr3t"
    assert "authorization" not in ads._http.headers
    assert directory.cap("search")._value == 2 and directory.cap("ads") is None
    assert directory.tracing("search").endpoint == "http://search:6006/v1/traces"


def test_a_missing_key_variable_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("SEARCH_KEY", raising=False)
    with pytest.raises(ValidationError, match="its API key variable SEARCH_KEY is not set"):
        Settings(teams=TEAMS)


def test_the_key_is_never_shown(directory: TeamDirectory, monkeypatch) -> None:
    monkeypatch.setenv("SEARCH_KEY", "s3cr3t")
    settings = Settings(teams=TEAMS)
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.teams)


def test_a_deployment_without_teams_refuses_a_request_naming_one() -> None:
    deployed = TeamDirectory.from_settings(Settings(phoenix_host="http://one:1"))
    assert "unknown team 'nope'" in deployed.unknown("nope")
    assert "no teams configured" in deployed.unknown("nope")
    assert deployed.unknown(None) is None and deployed.unknown("default") is None
    # Handed one client in code, a team name stays a label.
    assert TeamDirectory.single(PhoenixClient("http://one:1")).unknown("nope") is None


def test_a_bootstrap_address_that_is_not_host_port_is_a_named_error() -> None:
    import pytest
    from pydantic import ValidationError

    for bad, says in (("notahost", "'notahost' is not host:port"), ("", "is empty"),
                      (" , ", "is empty"), ("a:b", "'a:b' is not host:port"),
                      ("h:1,h:99999", "'h:99999'")):
        with pytest.raises(ValidationError, match=says):
            Settings(kafka_bootstrap_servers=bad)
    assert Settings(kafka_bootstrap_servers="a:1, [::1]:9092").kafka_hosts == ["a:1", "[::1]:9092"]


def test_admission_refuses_an_unknown_team_where_none_are_configured() -> None:
    from streams.coordinator.admission import refusal
    from streams.events import ResumeRequest
    from streams.registry import TaskRegistry

    tasks = TaskRegistry()
    tasks.register("answer", lambda input: input)
    deployed = TeamDirectory.from_settings(Settings(phoenix_host="http://one:1"))
    nope = ResumeRequest(experiment_id="e1", task="answer", team="nope")
    assert "unknown team 'nope'" in refusal(nope, deployed, tasks, tasks)
    assert refusal(nope.model_copy(update={"team": None}), deployed, tasks, tasks) is None


def test_known_tracing_is_a_known_teams_and_none_for_a_team_it_would_refuse(
    directory: TeamDirectory,
) -> None:
    assert directory.known_tracing("search") is directory.tracing("search")
    assert directory.known_tracing("nope") is None
    assert directory.known_tracing(None) is None  # with teams, a request must name one
    alone = TeamDirectory.from_settings(Settings(phoenix_host="http://one:1"))
    assert alone.known_tracing("whoever") is alone.tracing(None)
