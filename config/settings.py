"""The settings model: every knob of the worker, the pager and the CLI, with its env variable.

Phoenix is configured with the same variables as Phoenix's own clients (``PHOENIX_HOST``,
``PHOENIX_API_KEY``, ``PHOENIX_CLIENT_HEADERS``) and Kafka with ``KAFKA_BOOTSTRAP_SERVERS``;
everything else is ``RESUME_<FIELD>`` (for example ``RESUME_TASK_CONCURRENCY=20``).
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.limits import LIMITER_NAME, LimiterConfig, read_limiters

#: a limiter's name as a key of the limiters' mapping
LimiterName = Annotated[str, Field(pattern=LIMITER_NAME)]


class TopicNames(BaseModel):
    """Kafka topic names, all derived from one prefix so deployments can share a cluster."""

    requests: str
    control: str
    work: str
    evaluations: str
    completed_runs: str
    status: str
    dead_letters: str
    #: one-shot runs' per-experiment leases (see producers.lease)
    leases: str

    @classmethod
    def for_prefix(cls, prefix: str) -> TopicNames:
        """Every name is the prefix and the field's name in kebab case.

        >>> TopicNames.for_prefix("p.").completed_runs
        'p.completed-runs'
        """
        return cls(**{name: prefix + name.replace("_", "-") for name in cls.model_fields})


class TeamConfig(BaseModel):
    """One team: its Phoenix server, where its key is, what it may run, how much at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phoenix_host: str
    #: the name of the environment variable holding the team's Phoenix API key
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: resolved from ``api_key_env`` when the settings are read (never from config files)
    api_key: SecretStr | None = None
    tasks: list[str] = Field(default_factory=lambda: ["*"])
    evaluators: list[str] = Field(default_factory=lambda: ["*"])
    max_concurrency: int | None = Field(default=None, ge=1)
    #: the team's own quotas (its own provider key): these names draw from these budgets
    limiters: dict[LimiterName, LimiterConfig] = Field(default_factory=dict)

    @field_validator("phoenix_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a team's phoenix_host must start with http:// or https://")
        return value.rstrip("/")

    def allows_task(self, name: str) -> bool:
        return "*" in self.tasks or name in self.tasks

    def allows_evaluator(self, name: str) -> bool:
        return "*" in self.evaluators or name in self.evaluators

    def headers(self, base: dict[str, str]) -> dict[str, str]:
        """Phoenix headers for this team: the shared client headers, with its own key only."""
        headers = {k: v for k, v in base.items() if k != "authorization"}
        if self.api_key is not None:
            headers["authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        return headers


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_header_list(raw: str | None) -> dict[str, str]:
    """Parse ``PHOENIX_CLIENT_HEADERS`` (``k1=v1,k2=v2``, URL-encoded, as OTLP headers are).

    >>> parse_header_list("x-a=1,x-b=two%20words")
    {'x-a': '1', 'x-b': 'two words'}
    """
    headers: dict[str, str] = {}
    if not raw:
        return headers
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(
                "PHOENIX_CLIENT_HEADERS must be a comma-separated list of name=value pairs"
            )
        headers[unquote(name.strip()).lower()] = unquote(value.strip())
    return headers


def read_teams(data: Any) -> Any:
    """Teams from RESUME_TEAMS_FILE, and each team's key from its named variable: read here,
    once, so nothing below config/ touches the environment."""
    if not isinstance(data, dict):
        return data
    path = data.get("teams_file")
    if path and not data.get("teams"):
        try:
            data = {**data, "teams": json.loads(Path(path).read_text())}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read RESUME_TEAMS_FILE {path}: {exc}") from None
    teams = data.get("teams")
    if isinstance(teams, str):
        try:
            teams = json.loads(teams) if teams.strip() else {}
        except ValueError as exc:
            raise ValueError(f"RESUME_TEAMS is not JSON: {exc}") from None
    if isinstance(teams, dict):
        resolved = {}
        for name, team in teams.items():
            if isinstance(team, dict) and team.get("api_key_env") and "api_key" not in team:
                env_name = team["api_key_env"]
                if env_name not in os.environ:
                    raise ValueError(f"team {name!r}: its API key variable {env_name} is not set")
                team = {**team, "api_key": os.environ[env_name]}
            resolved[name] = team
        data = {**data, "teams": resolved}
    return data


class Settings(BaseSettings):
    """Everything configurable, with defaults that run against the local stack."""

    model_config = SettingsConfigDict(
        env_prefix="RESUME_",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        # A malformed value may hold a credential: errors name the field, never echo it.
        hide_input_in_errors=True,
    )

    # --- Phoenix (same names as Phoenix's own clients) ---
    phoenix_host: str = Field(
        default="http://127.0.0.1:6006",
        validation_alias=AliasChoices("PHOENIX_HOST", "phoenix_host"),
        description="Base URL of the Phoenix server.",
    )
    phoenix_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PHOENIX_API_KEY", "phoenix_api_key"),
        description="Sent as a bearer token; never logged or published.",
    )
    phoenix_client_headers: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PHOENIX_CLIENT_HEADERS", "phoenix_client_headers"),
        description="Extra headers for every Phoenix request, as k1=v1,k2=v2.",
    )

    # --- Kafka ---
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="Never logged, published or put in an error message."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle to verify the brokers (SSL and SASL_SSL)."
    )
    app_id: str = Field(default="phoenix-resume", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    topic_prefix: str = Field(default="phoenix-resume.", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    status_mirror_topic: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="Also publish every status event here: a one-shot run's private worker "
        "names the deployment's status topic, so `status` and the status pages show the run.",
    )
    control_partitions: int = Field(default=4, ge=1, le=1024)
    work_partitions: int = Field(default=8, ge=1, le=1024)
    event_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication: int = Field(default=1, ge=1, le=16)
    # Commit often: the commit loop's wakeups cost an idle worker ~0.4 % of a core at 0.1 s
    # (bench/RESULTS.md, issue 17); Faust's livelock check, once tied to it, no longer is.
    commit_interval_seconds: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="Processed offsets are committed within this time; after a crash, only work "
        "finished since the last commit runs again (its runs are then answered 409, already done).",
    )
    # A killed worker's partitions move after the session timeout: 10 s bounds that stall,
    # and a worker is only declared dead after missing three heartbeats (Kafka's rule).
    kafka_session_timeout_seconds: float = Field(
        default=10.0, ge=6, description="How long the group waits for a silent (dead) worker."
    )
    kafka_heartbeat_interval_seconds: float = Field(
        default=3.0, gt=0, description="How often a worker tells the group it is alive."
    )
    # Static membership: a worker restarted under the same id (a StatefulSet pod's name) gets
    # its partitions back without a group-wide rebalance.
    kafka_group_instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    # On SIGTERM or a rebalance, how long running tasks may finish before their work is handed
    # over (Kubernetes' default grace period is 30 s).
    drain_seconds: float = Field(default=25.0, gt=0)
    runner: Literal["auto", "local", "kafka"] = Field(
        default="auto",
        description="Where one-shot runs (run, evaluate, the Python API) run: in this process "
        "(local), through the broker (kafka), or local unless KAFKA_BOOTSTRAP_SERVERS is set.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Longest a worker's fetch waits for new records (Faust fixes 1500 ms); "
        "bounds how long a message waits between two agents of one worker.",
    )
    max_message_bytes: int = Field(default=1_000_000, ge=1024, le=50_000_000)

    # --- Teams (optional; without them one default team covers everything) ---
    # NoDecode: our validators parse the JSON, so a bad value is a named ValidationError, not
    # pydantic-settings' SettingsError with a traceback.
    teams: Annotated[dict[str, TeamConfig], NoDecode] = Field(
        default_factory=dict,
        description="JSON object: team name -> {phoenix_host, api_key_env, tasks, evaluators, "
        "max_concurrency}; or RESUME_TEAMS_FILE pointing at such a JSON file.",
    )
    teams_file: Path | None = None
    limiters: Annotated[dict[LimiterName, LimiterConfig], NoDecode] = Field(
        default_factory=dict,
        description="JSON object: limiter name -> {per_second | per_minute, concurrency}, "
        "the fleet's budget tasks draw from (streams.limits); or RESUME_LIMITERS_FILE.",
    )
    limiters_file: Path | None = None

    # --- Pipeline ---
    page_size: int = Field(default=50, ge=1, le=1000)
    # The fairness lever: a later request's work waits behind at most this many items of
    # each active request (bench/fairness.py). Keep it >= 2 x all workers' task concurrency.
    max_in_flight_per_request: int = Field(
        default=200,
        ge=1,
        description="Pairs a request may have published but not finished before paging pauses.",
    )
    task_concurrency: int = Field(default=5, ge=1, le=1000)
    task_timeout_seconds: float = Field(default=300.0, gt=0)
    task_retries: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Attempts after a task raises (or times out) before its run is recorded "
        "as failed; Phoenix's client (and this project's API and CLI) use 3.",
    )
    rate_limit_retries: int = Field(
        default=10, ge=0, le=1000,
        description="Attempts after a function's rate_limit_errors, each after a backoff.")
    rate_limit_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    rate_limit_backoff_max_seconds: float = Field(default=30.0, gt=0)
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Modules imported by workers for their @task/@evaluator."
    )
    evaluator_concurrency: int = Field(default=5, ge=1, le=1000)
    evaluator_timeout_seconds: float = Field(default=300.0, gt=0)
    stall_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A request without any outcome for this long is verified against Phoenix.",
    )
    # The watchdog looks every 2 s; right after a rebalance a request idle for
    # recovery_stall_seconds is verified (a killed owner's last counts may be lost).
    reconcile_interval_seconds: float = Field(default=2.0, gt=0)
    recovery_stall_seconds: float = Field(default=5.0, gt=0)
    progress_every: int = Field(
        default=25, ge=1, description="Emit a progress status event every N finished pairs."
    )
    # Control events arriving within this are one batch of the coordinator (0: one by one):
    # ~0.35 against ~0.65 CPU ms per pair, for at most this wait added to a control hop.
    coordinator_batch_seconds: float = Field(default=0.02, ge=0, le=1)

    # --- HTTP to Phoenix ---
    http_timeout_seconds: float = Field(default=30.0, gt=0)
    # Ten attempts with backoff capped at 20 s ride out about a minute of Phoenix outage.
    http_max_attempts: int = Field(default=10, ge=1, le=100)
    http_backoff_initial_seconds: float = Field(default=0.25, gt=0)
    http_backoff_max_seconds: float = Field(default=20.0, gt=0)
    http_max_connections: int = Field(default=50, ge=1)

    # --- Tracing ---
    tracing_enabled: bool = True

    # --- Worker web server ---
    web_bind: str = Field(default="127.0.0.1", description="Address the web server listens on.")
    web_host: str = Field(
        default="127.0.0.1",
        description="Host name other workers and the CLI reach this worker by (table routing).",
    )
    web_port: int = Field(default=6066, ge=1, le=65535)
    worker_url: str | None = Field(default=None, description="The web server the CLI asks.")
    data_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "phoenix-resume",
        description="Where a worker keeps its files: disk tables in <app id>/tables-<web port>.",
    )
    # rocksdb: per-pair tables on local disk, emptied at start (memory flat with a request).
    table_store: Literal["rocksdb", "memory"] = "rocksdb"
    log_level: str = Field(default="WARNING", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_format: Literal["text", "json"] = "text"

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        """Every entry ``host:port``, so a typo fails here with its name, not deep in a client."""
        entries = [h.strip() for h in value.split(",") if h.strip()]
        if not entries:
            raise ValueError(
                "KAFKA_BOOTSTRAP_SERVERS is empty: give one or more host:port, comma-separated"
            )
        for entry in entries:
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"KAFKA_BOOTSTRAP_SERVERS entry {entry!r} is not host:port "
                    "(for example 127.0.0.1:9092)"
                )
        return value

    @field_validator("phoenix_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("PHOENIX_HOST must start with http:// or https://")
        return value

    @field_validator("phoenix_client_headers")
    @classmethod
    def _check_headers(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_header_list(value.get_secret_value())
        return value

    @model_validator(mode="before")
    @classmethod
    def _read_teams(cls, data: Any) -> Any:
        data = read_teams(data)
        if isinstance(data, dict) and (data.get("limiters") or data.get("limiters_file")):
            data = {**data, "limiters": read_limiters(data.get("limiters"),
                                                      data.get("limiters_file"))}
        return data

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and (
            not self.kafka_sasl_username or self.kafka_sasl_password is None
        ):
            raise ValueError(
                f"RESUME_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "RESUME_KAFKA_SASL_USERNAME and RESUME_KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ssl_cafile is not None and not self.kafka_ssl_cafile.is_file():
            raise ValueError(f"RESUME_KAFKA_SSL_CAFILE {self.kafka_ssl_cafile} is not a file")
        return self

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL, None for plaintext protocols."""
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        cafile = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
        return ssl.create_default_context(cafile=cafile)

    @property
    def heartbeat_seconds(self) -> float:
        """The heartbeat interval in force: a live worker must not miss a session by one."""
        return min(self.kafka_heartbeat_interval_seconds, self.kafka_session_timeout_seconds / 3)

    @property
    def phoenix_base_url(self) -> str:
        return self.phoenix_host.rstrip("/")

    @property
    def kafka_broker_url(self) -> str:
        """The bootstrap servers in Faust's ``kafka://host:port;host:port`` form."""
        return ";".join(f"kafka://{h}" for h in self.kafka_hosts)

    @property
    def kafka_configured(self) -> bool:
        """Whether a broker address was given (environment or argument), not just defaulted."""
        return "kafka_bootstrap_servers" in self.model_fields_set

    @property
    def one_shot_runner(self) -> Literal["local", "kafka"]:
        """The runner a one-shot request uses: ``auto`` needs no broker unless one is named.

        >>> Settings().one_shot_runner, Settings(kafka_bootstrap_servers="k:9092").one_shot_runner
        ('local', 'kafka')
        >>> Settings(kafka_bootstrap_servers="k:9092", runner="local").one_shot_runner
        'local'
        """
        if self.runner != "auto":
            return self.runner
        return "kafka" if self.kafka_configured else "local"

    @property
    def kafka_hosts(self) -> list[str]:
        return [h.strip() for h in self.kafka_bootstrap_servers.split(",") if h.strip()]

    @property
    def phoenix_headers(self) -> dict[str, str]:
        """Every header Phoenix requests carry: the client headers and the bearer token."""
        raw = self.phoenix_client_headers.get_secret_value() if self.phoenix_client_headers else None
        headers = parse_header_list(raw)
        if self.phoenix_api_key is not None:
            headers["authorization"] = f"Bearer {self.phoenix_api_key.get_secret_value()}"
        return headers

    @property
    def topics(self) -> TopicNames:
        return TopicNames.for_prefix(self.topic_prefix)

    @property
    def effective_worker_url(self) -> str:
        return (self.worker_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; explicit overrides (e.g. from CLI flags) win.

    Raises ``pydantic.ValidationError`` naming every bad variable.
    """
    return Settings(**overrides)
