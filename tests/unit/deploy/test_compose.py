"""docker-compose.yml and the Dockerfile, checked for what an operator relies on.

No Docker engine runs here: the files are parsed, never started.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.common.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

SERVICES = ("gateway", "matcher", "risk", "oracle", "liquidator", "marketdata")
ONE_SHOT = ("topics",)
EXCHANGE_VARIABLE = re.compile(r"\bEXCHANGE_[A-Z0-9_]+")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    spec: dict[str, Any] = services[name]
    return spec


def argv(command: str | list[Any]) -> list[str]:
    """A compose command or healthcheck test as the argument list it runs."""
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment in either compose spelling, values as the process sees them."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: _env_value(value) for key, value in env.items()}


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def named_volume_at(compose: dict[str, Any], spec: dict[str, Any], target: str) -> str:
    """The top-level named volume mounted at ``target``; fails if it is a bind mount or absent."""
    for mount in spec.get("volumes", []):
        if isinstance(mount, str):
            source, _, rest = mount.partition(":")
            mounted_at = rest.split(":")[0]
        else:
            source, mounted_at = mount.get("source", ""), mount.get("target", "")
        if mounted_at == target:
            assert source in (compose.get("volumes") or {}), f"{source!r} is not a named volume"
            return source
    raise AssertionError(f"nothing is mounted at {target}")


def healthcheck_text(spec: dict[str, Any]) -> str:
    check = spec.get("healthcheck")
    assert check, "no healthcheck"
    assert not check.get("disable", False)
    test = argv(check["test"])
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(test[1:])


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_module_from_the_project_image(
    compose: dict[str, Any], name: str
) -> None:
    spec = service(compose, name)
    assert argv(spec["command"]) == ["python", "-m", f"services.{name}"]
    build = spec["build"]
    if isinstance(build, str):
        build = {"context": build}
    dockerfile = COMPOSE_FILE.parent / build["context"] / build.get("dockerfile", "Dockerfile")
    assert dockerfile.resolve() == DOCKERFILE


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_restarts_and_starts_after_kafka_redis_and_topics(
    compose: dict[str, Any], name: str
) -> None:
    spec = service(compose, name)
    assert spec["restart"] == "unless-stopped"
    conditions = {dep: cfg["condition"] for dep, cfg in spec["depends_on"].items()}
    assert conditions == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "topics": "service_completed_successfully",
    }


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_healthcheck_probes_the_port_it_serves(
    compose: dict[str, Any], name: str
) -> None:
    spec = service(compose, name)
    env = environment(spec)
    probe = healthcheck_text(spec)
    if name == "gateway":
        assert f"127.0.0.1:{env['EXCHANGE_GATEWAY_PORT']}/health" in probe
    else:
        assert f"127.0.0.1:{env['EXCHANGE_METRICS_PORT']}/health" in probe


def test_prometheus_scrapes_each_service_where_it_serves_metrics(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(SERVICES) <= set(jobs), sorted(jobs)
    for name in SERVICES:
        env = environment(service(compose, name))
        assert env.get("EXCHANGE_METRICS_HOST") == "0.0.0.0", name
        port = int(env["EXCHANGE_METRICS_PORT"])
        assert port > 0, name
        # One job per service (`job` names the service on every series it exports), its
        # targets every replica the compose DNS knows under the service's name.
        (discovery,) = jobs[name]["dns_sd_configs"]
        assert discovery["names"] == [name], name
        assert (discovery["type"], discovery["port"]) == ("A", port), name
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"


def test_gateway_listens_on_all_interfaces_and_is_published_on_18080(
    compose: dict[str, Any],
) -> None:
    spec = service(compose, "gateway")
    env = environment(spec)
    assert env["EXCHANGE_GATEWAY_HOST"] == "0.0.0.0"
    published = [str(p) for p in spec["ports"]]
    assert f"18080:{env['EXCHANGE_GATEWAY_PORT']}" in published


def test_operator_api_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    spec = service(compose, "gateway")
    port = environment(spec)["EXCHANGE_OPERATOR_PORT"]
    published = [str(p) for p in spec["ports"] if str(p).endswith(f":{port}")]
    assert published == [f"127.0.0.1:{port}:{port}"]


def test_services_reach_the_advertised_broker_and_the_redis_service(
    compose: dict[str, Any],
) -> None:
    advertised = environment(service(compose, "kafka"))["KAFKA_ADVERTISED_LISTENERS"]
    broker_addresses = {listener.split("://", 1)[1] for listener in advertised.split(",")}
    for name in (*SERVICES, "topics"):
        env = environment(service(compose, name))
        assert env["EXCHANGE_KAFKA_BOOTSTRAP"] in broker_addresses, name
    for name in SERVICES:
        assert environment(service(compose, name))["EXCHANGE_REDIS_URL"].startswith(
            "redis://redis:6379/"
        ), name


def test_topics_job_creates_topics_once_kafka_is_healthy(compose: dict[str, Any]) -> None:
    spec = service(compose, "topics")
    assert argv(spec["command"]) == ["python", "-m", "libs.common.admin", "create-topics"]
    assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"
    # A one-shot job: restarting it would keep "completed successfully" from ever holding.
    assert spec.get("restart", "no") == "no"
    assert spec["image"] == service(compose, "risk")["image"]


def test_kafka_is_a_single_kraft_node_from_the_official_4x_image(compose: dict[str, Any]) -> None:
    spec = service(compose, "kafka")
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", spec["image"])
    env = environment(spec)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["CLUSTER_ID"]
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert named_volume_at(compose, spec, env["KAFKA_LOG_DIRS"])
    assert "kafka-broker-api-versions.sh" in healthcheck_text(spec)


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    spec = service(compose, "redis")
    assert re.fullmatch(r"redis:7\.\d+(\.\d+)?", spec["image"])
    command = argv(spec["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert named_volume_at(compose, spec, "/data")
    assert healthcheck_text(spec) == "redis-cli ping"


def test_every_exchange_variable_is_a_real_setting() -> None:
    settings = {f"EXCHANGE_{name.upper()}" for name in Settings.model_fields}
    used = set(EXCHANGE_VARIABLE.findall(COMPOSE_FILE.read_text()))
    used |= set(EXCHANGE_VARIABLE.findall(DOCKERFILE.read_text()))
    assert used, "no EXCHANGE_* variable found"
    assert used <= settings, f"not settings: {sorted(used - settings)}"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_image_runs_as_non_root_from_app_without_a_default_service() -> None:
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    final = instructions[last_from:]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage sets no USER and so runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert [args for keyword, args in final if keyword == "WORKDIR"][-1] == "/app"
    commands = [args for keyword, args in final if keyword in ("CMD", "ENTRYPOINT")]
    assert not any("services." in command for command in commands), commands


def test_image_installs_the_project_with_the_pinned_lock() -> None:
    installs = [
        args
        for keyword, args in dockerfile_instructions()
        if keyword == "RUN" and "pip install" in args
    ]
    assert installs
    assert all("-c requirements.lock" in install for install in installs), installs
    assert any(re.search(r"-c requirements\.lock \.(\s|$)", install) for install in installs)


def test_build_context_keeps_the_source_and_drops_local_state() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern.lstrip("/")) for pattern in patterns)

    for needed in (
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "config",
        "libs",
        "services",
    ):
        assert not ignored(needed), needed
    for local in (".venv", ".git", ".cache", ".run"):
        assert ignored(local), local


def mounts(spec: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume, or a path relative to the compose file)."""
    found = {}
    for mount in spec.get("volumes", []):
        if isinstance(mount, str):
            source, target = mount.split(":")[:2]
        else:
            source, target = mount["source"], mount["target"]
        found[target] = source
    return found


def host_path(spec: dict[str, Any], container_path: str) -> Path:
    """The repository file a bind mount puts at ``container_path`` in the container."""
    for target, source in sorted(mounts(spec).items(), key=lambda m: -len(m[0])):
        if source.startswith(".") and (container_path + "/").startswith(target + "/"):
            return COMPOSE_FILE.parent / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"nothing from the repository is mounted at {container_path}")


def flag(command: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times"
    return values[0]


def test_services_can_be_scaled(compose: dict[str, Any]) -> None:
    # `docker compose up --scale risk=2`: no fixed container name, no published port.
    for name in SERVICES:
        spec = service(compose, name)
        assert "container_name" not in spec, name
        if name != "gateway":
            assert "ports" not in spec, name


def test_every_long_running_container_restarts_and_reports_its_health(
    compose: dict[str, Any],
) -> None:
    for name, spec in compose["services"].items():
        if name in ONE_SHOT:
            assert spec["healthcheck"] == {"disable": True}, name
            continue
        assert spec.get("restart") == "unless-stopped", name
        assert healthcheck_text(spec), name


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image}"


def test_bind_mounts_come_from_the_repository(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        for target, source in mounts(spec).items():
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name}: {source}"
                assert source.startswith("./deploy/"), f"{name}: mount only deploy files"
            else:
                assert source in compose["volumes"], f"{name}: {source} at {target}"


def test_prometheus_runs_the_repository_config_and_keeps_its_data(
    compose: dict[str, Any],
) -> None:
    spec = service(compose, "prometheus")
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", spec["image"])
    command = argv(spec["command"])
    assert host_path(spec, flag(command, "--config.file")).resolve() == SCRAPE_CONFIG
    assert named_volume_at(compose, spec, flag(command, "--storage.tsdb.path"))
    # The config's rule_files resolve next to it, inside the same mount.
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    for pattern in config["rule_files"]:
        assert list(SCRAPE_CONFIG.parent.glob(pattern)), pattern
    assert "127.0.0.1:9090/-/ready" in healthcheck_text(spec)
    assert "127.0.0.1:9090:9090" in [str(p) for p in spec["ports"]]


def test_grafana_gets_its_provisioning_and_dashboards_after_prometheus(
    compose: dict[str, Any],
) -> None:
    spec = service(compose, "grafana")
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", spec["image"])
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    assert host_path(spec, "/etc/grafana/provisioning").resolve() == provisioning
    env = environment(spec)
    home = host_path(spec, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.exists() and home.parent.name == "dashboards"
    assert named_volume_at(compose, spec, "/var/lib/grafana")
    assert spec["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "127.0.0.1:3000/api/health" in healthcheck_text(spec)
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${"), "no password in the file"


def test_image_serves_a_health_check_on_the_metrics_port() -> None:
    instructions = dockerfile_instructions()
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    port = re.search(r"EXCHANGE_METRICS_PORT=(\d+)", env)
    assert port, "the image sets no default metrics port"
    exposed = " ".join(args for keyword, args in instructions if keyword == "EXPOSE").split()
    gateway_ports = {
        str(Settings.model_fields[name].default) for name in ("gateway_port", "operator_port")
    }
    assert {port.group(1), *gateway_ports} <= set(exposed)
    (check,) = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert "/health" in check and "EXCHANGE_METRICS_PORT" in check
