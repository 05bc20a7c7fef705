"""docker-compose.yml and the Dockerfile, checked against the code they deploy (no Docker needed).

Each check is a function returning the problems it finds. ``test_check_holds`` runs each on
the repository's files; ``test_each_check_catches_its_breakage`` breaks a temporary copy of the
files one way at a time and asserts the matching check notices, so no check passes vacuously.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # PyYAML, in the dev extra
from pydantic import AliasChoices

from config import Settings
from producers.cli import build_parser

REPO = Path(__file__).resolve().parents[3]
COMPOSE = "docker-compose.yml"
DOCKERFILE = "Dockerfile"
PROMETHEUS_CONFIG = "deploy/prometheus.yml"
PROMETHEUS_SERVICE = "prometheus"
PROMETHEUS_CONFIG_PATH = "/etc/prometheus/prometheus.yml"  # the image's default --config.file
PROMETHEUS_PORT = 9090  # the image's default --web.listen-address
PROMETHEUS_HEALTH = {"/-/ready", "/-/healthy"}
KAFKA_SERVICE = "kafka"
PHOENIX_SERVICE = "phoenix"
EXPECTED_ROLES = {"tasks", "evaluators"}
LOOPBACK = {"127.0.0.1", "localhost"}
ANY_INTERFACE = {"0.0.0.0", "::"}
DEFAULT_PHOENIX_PORT = 6006  # the Phoenix server's own default for PHOENIX_PORT


# --- reading the files ---------------------------------------------------------------------


@dataclass
class Deployment:
    compose: dict[str, Any]
    dockerfile: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuations joined
    root: Path = REPO  # where the files the compose file mounts are

    @classmethod
    def load(cls, root: Path) -> Deployment:
        compose = yaml.safe_load((root / COMPOSE).read_text())
        return cls(compose=compose, dockerfile=parse_dockerfile((root / DOCKERFILE).read_text()),
                   root=root)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.compose.get("services") or {}

    def workers(self) -> dict[str, dict[str, Any]]:
        """The services built from the Dockerfile."""
        return {name: s for name, s in self.services.items() if "build" in s}

    def instructions(self, name: str) -> list[str]:
        return [args for instr, args in self.dockerfile if instr == name]

    def dockerfile_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.instructions("ENV"):
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                if sep:
                    env[key] = value
        return env


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        instr, _, args = whole.partition(" ")
        lines.append((instr.upper(), args.strip()))
    return lines


def env_of(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def argv_of(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def container_ports(service: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each entry of ``ports``."""
    found: list[tuple[int | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            found.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        found.append((host, int(parts[-1])))
    return found


def mounts_of(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source, for each entry of ``volumes`` (short or long form)."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts[str(entry.get("target"))] = str(entry.get("source"))
            continue
        source, _, rest = str(entry).partition(":")
        mounts[rest.partition(":")[0]] = source
    return mounts


def long_flags(argv: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as {name: value}."""
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def scrape_targets(config: dict[str, Any]) -> set[tuple[str, int, str]]:
    """(host, port, metrics path) of every static target of a Prometheus configuration."""
    found: set[tuple[str, int, str]] = set()
    for job in config.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                found.add((host, int(port), path))
    return found


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(argv_of(test))


def urls_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s'\"]+", text)


def host_names(name: str, service: dict[str, Any]) -> set[str]:
    """Names other containers of the project reach a service by."""
    return {name, *([service["hostname"]] if service.get("hostname") else [])}


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    listeners: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        listeners[name] = (host, int(port))
    return listeners


# --- what the code accepts -----------------------------------------------------------------


def accepted_env_names() -> dict[str, str]:
    """Env variable -> settings field, derived from ``Settings.model_fields``."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [prefix + field_name]
        for choice in choices:
            names[choice.upper()] = field_name
    return names


def console_scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def parse_cli(argv: list[str]) -> tuple[Any, str | None]:
    try:
        return build_parser().parse_args(argv), None
    except SystemExit:
        return None, f"{argv} does not parse with producers.cli.build_parser()"


def setting_default(field_name: str) -> Any:
    return Settings.model_fields[field_name].default


def worker_value(deploy: Deployment, service: dict[str, Any], env_name: str, field: str) -> str:
    """A worker's setting as its container sees it: compose env, Dockerfile ENV, or default."""
    default = deploy.dockerfile_env().get(env_name, str(setting_default(field)))
    return env_of(service).get(env_name, default)


# --- the checks ----------------------------------------------------------------------------


def check_worker_env_names(deploy: Deployment) -> list[str]:
    accepted = accepted_env_names()
    problems = [
        f"{name}: {var} is not read by config.Settings"
        for name, service in deploy.workers().items()
        for var in env_of(service)
        if var not in accepted
    ]
    problems += [
        f"Dockerfile ENV {var} is not read by config.Settings"
        for var in deploy.dockerfile_env()
        if var.startswith(("RESUME_", "PHOENIX_", "KAFKA_")) and var not in accepted
    ]
    return problems


def check_worker_commands(deploy: Deployment) -> list[str]:
    problems: list[str] = []
    roles: set[str] = set()
    entrypoint = dockerfile_entrypoint(deploy)
    for name, service in deploy.workers().items():
        if "entrypoint" in service and argv_of(service["entrypoint"]) != entrypoint:
            problems.append(f"{name}: entrypoint {service['entrypoint']!r} overrides the image's")
        argv = argv_of(service.get("command")) or dockerfile_cmd(deploy)
        args, error = parse_cli(argv)
        if error:
            problems.append(f"{name}: {error}")
        elif args.command != "worker":
            problems.append(f"{name}: runs {args.command!r}, not a worker")
        else:
            roles.add(args.role)
    if roles != EXPECTED_ROLES:
        problems.append(f"worker roles are {sorted(roles)}, expected {sorted(EXPECTED_ROLES)}")
    return problems


def check_task_modules(deploy: Deployment) -> list[str]:
    """Every module a worker imports exists here and is copied into (or installed in) the image."""
    problems: list[str] = []
    copied = {
        src.rstrip("/")
        for args in deploy.instructions("COPY")
        for src in shlex.split(args)[:-1]
        if not src.startswith("--")
    }
    for name, service in deploy.workers().items():
        modules = [m.strip() for m in env_of(service).get("RESUME_TASK_MODULES", "").split(",")]
        args, _ = parse_cli(argv_of(service.get("command")))
        modules += list(getattr(args, "task_module", []) or [])
        for module in filter(None, modules):
            if importlib.util.find_spec(module) is None:
                problems.append(f"{name}: task module {module!r} does not exist")
            if module.split(".")[0] not in copied:
                problems.append(f"{name}: task module {module!r} is not copied into the image")
    return problems


def check_worker_web_ports(deploy: Deployment) -> list[str]:
    problems: list[str] = []
    for name, service in deploy.workers().items():
        port = int(worker_value(deploy, service, "RESUME_WEB_PORT", "web_port"))
        urls = urls_in(healthcheck_text(service))
        if not urls:
            problems.append(f"{name}: no HTTP health check")
        for url in urls:
            parts = urlsplit(url)
            if parts.hostname not in LOOPBACK or (url_port(url), parts.path) != (port, "/metrics"):
                problems.append(f"{name}: health check {url} is not /metrics on {port}")
        ports = container_ports(service)
        for _, target in ports:
            if target != port:
                problems.append(f"{name}: publishes container port {target}, web is on {port}")
        bind = worker_value(deploy, service, "RESUME_WEB_BIND", "web_bind")
        if ports and bind not in ANY_INTERFACE:
            problems.append(f"{name}: publishes its web port but listens on {bind} only")
        host = worker_value(deploy, service, "RESUME_WEB_HOST", "web_host")
        if host != name:
            problems.append(f"{name}: RESUME_WEB_HOST={host} is not its service name")
    return problems


def check_phoenix_port(deploy: Deployment) -> list[str]:
    problems: list[str] = []
    phoenix = deploy.services.get(PHOENIX_SERVICE)
    if phoenix is None:
        return [f"no {PHOENIX_SERVICE!r} service"]
    port = int(env_of(phoenix).get("PHOENIX_PORT", DEFAULT_PHOENIX_PORT))
    names = host_names(PHOENIX_SERVICE, phoenix)
    for name, service in deploy.workers().items():
        url = env_of(service).get("PHOENIX_HOST")
        if url is None:
            problems.append(f"{name}: PHOENIX_HOST is not set")
            continue
        if urlsplit(url).hostname not in names or url_port(url) != port:
            problems.append(f"{name}: PHOENIX_HOST={url} is not the phoenix service on port {port}")
    urls = urls_in(healthcheck_text(phoenix))
    if not urls:
        problems.append("phoenix: no HTTP health check")
    for url in urls:
        if url_port(url) != port or urlsplit(url).path != "/arize_phoenix_version":
            problems.append(f"phoenix: health check {url} is not /arize_phoenix_version on {port}")
    targets = [target for _, target in container_ports(phoenix)]
    if port not in targets:
        problems.append(f"phoenix: port {port} is not published (published: {targets})")
    return problems


def check_kafka_listeners(deploy: Deployment) -> list[str]:
    problems: list[str] = []
    kafka = deploy.services.get(KAFKA_SERVICE)
    if kafka is None:
        return [f"no {KAFKA_SERVICE!r} service"]
    env = env_of(kafka)
    listeners = parse_listeners(env.get("KAFKA_LISTENERS", ""))
    advertised = parse_listeners(env.get("KAFKA_ADVERTISED_LISTENERS", ""))
    controllers = set(env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(","))
    protocol_map = env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "")
    protocols = dict(item.split(":", 1) for item in protocol_map.split(",") if item)
    client_ports = {p for n, (_, p) in listeners.items() if n not in controllers}
    names = host_names(KAFKA_SERVICE, kafka)
    for name, service in deploy.workers().items():
        servers = env_of(service).get("KAFKA_BOOTSTRAP_SERVERS")
        if servers is None:
            problems.append(f"{name}: KAFKA_BOOTSTRAP_SERVERS is not set")
            continue
        for server in filter(None, (s.strip() for s in servers.split(","))):
            host, _, port_text = server.rpartition(":")
            port = int(port_text)
            matching = [
                n for n, addr in advertised.items() if addr == (host, port) and n not in controllers
            ]
            if host not in names or not matching:
                problems.append(
                    f"{name}: KAFKA_BOOTSTRAP_SERVERS={server} is not an advertised listener of "
                    f"the kafka service ({env.get('KAFKA_ADVERTISED_LISTENERS')})"
                )
                continue
            listener = matching[0]
            if listeners.get(listener, ("", None))[1] != port:
                problems.append(
                    f"{name}: kafka listens for {listener} on {listeners.get(listener)}, not {port}"
                )
            if protocols.get(listener) != "PLAINTEXT":
                problems.append(
                    f"{name}: listener {listener} is {protocols.get(listener)}, not PLAINTEXT"
                )
    check = healthcheck_text(kafka)
    if "kafka-broker-api-versions" not in check:
        problems.append("kafka: the health check is not a broker API check")
    bootstrap = re.search(r"--bootstrap-server[ =]([^\s'\"]+)", check)
    if bootstrap is None or int(bootstrap.group(1).rpartition(":")[2]) not in client_ports:
        problems.append(f"kafka: health check uses no client listener port {sorted(client_ports)}")
    for published, target in container_ports(kafka):
        outside = [n for n, (h, p) in advertised.items() if h in LOOPBACK and p == published]
        if not outside or listeners.get(outside[0], ("", None))[1] != target:
            problems.append(f"kafka: {published}:{target} has no localhost:{published} listener")
    return problems


def check_single_node_replication(deploy: Deployment) -> list[str]:
    kafka = deploy.services.get(KAFKA_SERVICE) or {}
    env = env_of(kafka)
    problems = [
        f"kafka: {var}={env.get(var)} (one broker needs 1)"
        for var in (
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        )
        if env.get(var) != "1"
    ]
    roles = set(env.get("KAFKA_PROCESS_ROLES", "").replace(" ", "").split(","))
    if roles != {"broker", "controller"}:
        problems.append("kafka: not a combined KRaft broker+controller")
    for name, service in deploy.workers().items():
        if int(worker_value(deploy, service, "RESUME_TOPIC_REPLICATION", "topic_replication")) != 1:
            problems.append(f"{name}: RESUME_TOPIC_REPLICATION must be 1 on a single broker")
    return problems


def check_health_dependencies(deploy: Deployment) -> list[str]:
    problems = [
        f"{name}: no healthcheck" for name, s in deploy.services.items() if not s.get("healthcheck")
    ]
    for name, service in deploy.workers().items():
        depends = service.get("depends_on") or {}
        for needed in (KAFKA_SERVICE, PHOENIX_SERVICE):
            entry = depends.get(needed) if isinstance(depends, dict) else None
            condition = (entry or {}).get("condition")
            if condition != "service_healthy":
                problems.append(f"{name}: does not wait for {needed} to be healthy")
    return problems


def check_image_pins(deploy: Deployment) -> list[str]:
    """Kafka and Phoenix images are the versions the local stack and the tests run."""
    problems: list[str] = []
    pom = (REPO / "scripts" / "kafka" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom).group(1)
    want = f"apache/kafka:{kafka_version}"
    if (deploy.services.get(KAFKA_SERVICE) or {}).get("image") != want:
        problems.append(f"kafka: image is not {want} (scripts/kafka/pom.xml)")
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if "==" in line)
    want = f"arizephoenix/phoenix:version-{pins['arize-phoenix']}"
    if (deploy.services.get(PHOENIX_SERVICE) or {}).get("image") != want:
        problems.append(f"phoenix: image is not {want} (arize-phoenix in constraints.txt)")
    return problems


def dockerfile_exec_form(deploy: Deployment, instruction: str) -> list[str] | None:
    found = deploy.instructions(instruction)
    if not found:
        return None
    try:
        value = json.loads(found[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def dockerfile_entrypoint(deploy: Deployment) -> list[str]:
    return dockerfile_exec_form(deploy, "ENTRYPOINT") or []


def dockerfile_cmd(deploy: Deployment) -> list[str]:
    return dockerfile_exec_form(deploy, "CMD") or []


def check_dockerfile(deploy: Deployment) -> list[str]:
    problems: list[str] = []
    scripts = console_scripts()
    entrypoint = dockerfile_entrypoint(deploy)
    if len(entrypoint) != 1 or entrypoint[0] not in scripts:
        problems.append(f"ENTRYPOINT {entrypoint} is not a console script {sorted(scripts)}")
    elif scripts[entrypoint[0]] != f"{build_parser.__module__}:main":
        problems.append(f"console script {entrypoint[0]} is not {build_parser.__module__}:main")
    args, error = parse_cli(dockerfile_cmd(deploy))
    if error or args.command != "worker":
        problems.append(f"CMD {dockerfile_cmd(deploy)} is not a worker command")
    froms = deploy.instructions("FROM")
    if not froms or not froms[0].startswith("python:3.11-slim"):
        problems.append(f"FROM {froms[:1]} is not python:3.11-slim")
    runs = " ; ".join(deploy.instructions("RUN"))
    if not re.search(r"pip install -c constraints\.txt \.(\s|$|&)", runs):
        problems.append("the project is not installed with `pip install -c constraints.txt .`")
    if re.search(r"\[[^\]]*dev[^\]]*\]", runs):
        problems.append("the image installs the dev extra")
    users = deploy.instructions("USER")
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the image runs as root (no final non-root USER)")
    return problems


def check_prometheus(deploy: Deployment) -> list[str]:
    """The optional Prometheus service scrapes every worker's /metrics, and only that."""
    service = deploy.services.get(PROMETHEUS_SERVICE)
    if service is None:
        return [f"no {PROMETHEUS_SERVICE!r} service"]
    problems: list[str] = []
    if not service.get("profiles"):
        problems.append("prometheus: not behind a profile, so every `docker compose up` starts it")
    flags = long_flags(argv_of(service.get("command")))
    config_path = flags.get("config.file", PROMETHEUS_CONFIG_PATH)
    source = mounts_of(service).get(config_path)
    if source is None or not source.startswith("./"):
        return [*problems, f"prometheus: {config_path} is not mounted from this repository"]
    config_file = deploy.root / source
    if not config_file.is_file():
        return [*problems, f"prometheus: {source} does not exist"]
    scraped = scrape_targets(yaml.safe_load(config_file.read_text()) or {})
    wanted = {
        (name, int(worker_value(deploy, worker, "RESUME_WEB_PORT", "web_port")), "/metrics")
        for name, worker in deploy.workers().items()
    }
    problems += [f"prometheus: does not scrape {h}:{p}{path}" for h, p, path in sorted(
        wanted - scraped)]
    problems += [f"prometheus: scrapes {h}:{p}{path}, no worker's metrics" for h, p, path in sorted(
        scraped - wanted)]
    port = int(flags.get("web.listen-address", f":{PROMETHEUS_PORT}").rpartition(":")[2])
    if port not in [target for _, target in container_ports(service)]:
        problems.append(f"prometheus: listens on {port}, which is not published")
    urls = urls_in(healthcheck_text(service))
    if not urls or any(
        url_port(u) != port or urlsplit(u).path not in PROMETHEUS_HEALTH for u in urls
    ):
        problems.append(f"prometheus: health check {urls} is not /-/ready on {port}")
    depends = service.get("depends_on") or {}
    for name in deploy.workers():
        if not isinstance(depends, dict) or name not in depends:
            problems.append(f"prometheus: does not wait for {name}")
    return problems


CHECKS: dict[str, Callable[[Deployment], list[str]]] = {
    "env names": check_worker_env_names,
    "commands": check_worker_commands,
    "task modules": check_task_modules,
    "worker web ports": check_worker_web_ports,
    "phoenix port": check_phoenix_port,
    "kafka listeners": check_kafka_listeners,
    "single node": check_single_node_replication,
    "health dependencies": check_health_dependencies,
    "image pins": check_image_pins,
    "dockerfile": check_dockerfile,
    "prometheus": check_prometheus,
}


# --- the tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return Deployment.load(REPO)


@pytest.mark.parametrize("check", list(CHECKS))
def test_check_holds(deployment: Deployment, check: str) -> None:
    assert CHECKS[check](deployment) == []


def test_the_derived_env_names_are_what_pydantic_settings_reads(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker's environment, set for real, reaches the field its name maps to, and is valid."""
    accepted = accepted_env_names()
    assert "RESUME_PHOENIX_HOST" not in accepted  # aliased fields take no prefix
    for name, service in deployment.workers().items():
        env = env_of(service)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        settings = Settings()  # raises if a value is invalid
        assert {accepted[var] for var in env} <= settings.model_fields_set, name
        for var in env:
            monkeypatch.delenv(var)


@pytest.mark.parametrize("service", ["task-worker", "evaluator-worker"])
def test_the_health_checked_route_exists(
    deployment: Deployment, service: str, tmp_path: Path
) -> None:
    from streams.app import Role, create_app

    worker = deployment.services[service]
    args, _ = parse_cli(argv_of(worker.get("command")))
    pipeline = create_app(Settings(data_dir=tmp_path), role=Role(args.role))
    paths = {urlsplit(url).path for url in urls_in(healthcheck_text(worker))}
    assert paths and paths <= set(pipeline.app.web.views), (paths, list(pipeline.app.web.views))


async def test_what_prometheus_scrapes_is_served_as_prometheus_text(
    deployment: Deployment, tmp_path: Path
) -> None:
    from aiohttp.test_utils import TestClient, TestServer
    from prometheus_client.parser import text_string_to_metric_families

    from streams.app import Role, create_app

    config = yaml.safe_load((REPO / PROMETHEUS_CONFIG).read_text())
    for name, port, path in scrape_targets(config):
        args, _ = parse_cli(argv_of(deployment.services[name].get("command")))
        settings = Settings(data_dir=tmp_path, web_port=port, tracing_enabled=False)
        web = create_app(settings, role=Role(args.role)).app.web
        web.blueprints.apply(web)
        web.init_server()
        async with TestClient(TestServer(web.web_app)) as client:
            response = await client.get(path)
            assert response.status == 200, (name, path)
            names = {f.name for f in text_string_to_metric_families(await response.text())}
        assert "phoenix_resume_runs" in names, (name, path, names)


# (check, file, text in the file, replacement): each breaks exactly what the check guards.
BREAKAGES = [
    ("env names", COMPOSE, "RESUME_WEB_BIND: 0.0.0.0", "RESUME_WEB_BINDING: 0.0.0.0"),
    ("env names", COMPOSE, "  PHOENIX_HOST: http", "  RESUME_PHOENIX_HOST: http"),
    ("env names", DOCKERFILE, "ENV RESUME_WEB_BIND=0.0.0.0", "ENV RESUME_WEBBIND=0.0.0.0"),
    ("commands", COMPOSE, '["worker", "--role", "tasks"]', '["worker", "--role", "task"]'),
    ("commands", COMPOSE, '["worker", "--role", "evaluators"]', '["worker", "--role", "all"]'),
    ("commands", COMPOSE, '["worker", "--role", "tasks"]', '["status", "E"]'),
    ("task modules", COMPOSE, "TASK_MODULES: examples.demo_tasks", "TASK_MODULES: examples.nope"),
    ("task modules", DOCKERFILE, "COPY examples/ examples/", "COPY scripts/ scripts/"),
    ("worker web ports", COMPOSE, "127.0.0.1:6066/metrics", "127.0.0.1:6068/metrics"),
    ("worker web ports", COMPOSE, "127.0.0.1:6067/metrics", "127.0.0.1:6067/health"),
    ("worker web ports", COMPOSE, "RESUME_WEB_PORT: 6066", "RESUME_WEB_PORT: 6070"),
    ("worker web ports", COMPOSE, '"6067:6067"', '"6067:6066"'),
    ("worker web ports", COMPOSE, "RESUME_WEB_BIND: 0.0.0.0", "RESUME_WEB_BIND: 127.0.0.1"),
    ("worker web ports", COMPOSE, "RESUME_WEB_HOST: task-worker", "RESUME_WEB_HOST: 0.0.0.0"),
    ("phoenix port", COMPOSE, "PHOENIX_PORT: 6006", "PHOENIX_PORT: 6007"),
    ("phoenix port", COMPOSE, "HOST: http://phoenix:6006", "HOST: http://phoenix:60"),
    ("phoenix port", COMPOSE, "PHOENIX_HOST: http://phoenix:", "PHOENIX_HOST: http://localhost:"),
    ("phoenix port", COMPOSE, "6006/arize_phoenix_version", "6006/healthz"),
    ("kafka listeners", COMPOSE, "BOOTSTRAP_SERVERS: kafka:9092", "BOOTSTRAP_SERVERS: kafka:9093"),
    ("kafka listeners", COMPOSE, "BOOTSTRAP_SERVERS: kafka:9092", "BOOTSTRAP_SERVERS: broker:9092"),
    ("kafka listeners", COMPOSE, "PLAINTEXT://kafka:9092,", "PLAINTEXT://kafka:19092,"),
    ("kafka listeners", COMPOSE, "PLAINTEXT://:9092,", "PLAINTEXT://:19092,"),
    ("kafka listeners", COMPOSE, '"localhost:9092"]', '"localhost:9093"]'),
    ("kafka listeners", COMPOSE, '"9094:9094"', '"9094:9092"'),
    ("single node", COMPOSE, "TOPIC_REPLICATION_FACTOR: 1", "TOPIC_REPLICATION_FACTOR: 3"),
    ("single node", COMPOSE, "RESUME_TOPIC_REPLICATION: 1", "RESUME_TOPIC_REPLICATION: 3"),
    ("health dependencies", COMPOSE, "condition: service_healthy", "condition: service_started"),
    ("image pins", COMPOSE, "apache/kafka:4.1.1", "apache/kafka:latest"),
    ("image pins", COMPOSE, "arizephoenix/phoenix:version-", "arizephoenix/phoenix:version-0.1-"),
    ("dockerfile", DOCKERFILE, 'ENTRYPOINT ["phoenix-resume"]', 'ENTRYPOINT ["phoenix-resumer"]'),
    ("dockerfile", DOCKERFILE, 'CMD ["worker"]', 'CMD ["serve"]'),
    ("dockerfile", DOCKERFILE, "-c constraints.txt .", "-c constraints.txt '.[dev]'"),
    ("dockerfile", DOCKERFILE, "USER app", "USER root"),
    ("prometheus", PROMETHEUS_CONFIG, '"evaluator-worker:6067"', '"evaluator-worker:6066"'),
    ("prometheus", PROMETHEUS_CONFIG, '["task-worker:6066"]',
     '["task-worker:6066", "phoenix:6006"]'),
    ("prometheus", PROMETHEUS_CONFIG, "metrics_path: /metrics", "metrics_path: /metrics.json"),
    ("prometheus", COMPOSE, '    profiles: ["monitoring"]\n', ""),
    ("prometheus", COMPOSE, "prometheus.yml:/etc/prometheus/prometheus.yml:ro",
     "prometheus.yml:/etc/prometheus/other.yml:ro"),
    ("prometheus", COMPOSE, "./deploy/prometheus.yml:", "./deploy/prom.yml:"),
    ("prometheus", COMPOSE, '"9090:9090"', '"9090:9091"'),
    ("prometheus", COMPOSE, "127.0.0.1:9090/-/ready", "127.0.0.1:9090/metrics"),
    ("prometheus", COMPOSE,
     "      evaluator-worker:\n        condition: service_healthy\n    restart", "    restart"),
]


@pytest.mark.parametrize(("check", "file", "old", "new"), BREAKAGES)
def test_each_check_catches_its_breakage(
    tmp_path: Path, check: str, file: str, old: str, new: str
) -> None:
    for name in (COMPOSE, DOCKERFILE, PROMETHEUS_CONFIG):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO / name).read_text())
    text = (tmp_path / file).read_text()
    assert old in text, f"{file} no longer contains {old!r}: update this breakage"
    (tmp_path / file).write_text(text.replace(old, new, 1))
    assert CHECKS[check](Deployment.load(tmp_path)), f"{check!r} missed {old!r} -> {new!r}"
