"""The local stack script: "up" twice does no harm, "down" stops only what it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.localstack import ROOT, free_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STACK = ROOT / "deploy" / "local" / "stack.sh"
SERVICES = ("risk", "matcher", "liquidator", "oracle", "marketdata", "gateway")


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    kafka, controller, redis, gateway, operator = free_ports(5)
    env = {
        **os.environ,
        "RUN_DIR": str(tmp_path / "run"),
        "KAFKA_PORT": str(kafka),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "REDIS_PORT": str(redis),
        "GATEWAY_PORT": str(gateway),
        "OPERATOR_PORT": str(operator),
        "METRICS_BASE_PORT": "0",
    }
    yield env
    subprocess.run([str(STACK), "down"], env=env, capture_output=True, timeout=120)


def stack(env: dict[str, str], command: str) -> str:
    result = subprocess.run(
        [str(STACK), command], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def pids(env: dict[str, str]) -> dict[str, int]:
    run = Path(env["RUN_DIR"])
    found = {name: run / "pids" / f"{name}.pid" for name in SERVICES}
    found["kafka"] = run / "kafka" / "kafka.pid"
    found["redis"] = run / "redis" / "redis.pid"
    return {name: int(path.read_text()) for name, path in found.items() if path.exists()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state != "Z"


def test_up_is_idempotent_and_down_spares_what_it_did_not_start(
    stack_env: dict[str, str],
) -> None:
    stack(stack_env, "up")
    first = pids(stack_env)
    assert set(first) == {*SERVICES, "kafka", "redis"}
    assert all(alive(pid) for pid in first.values())

    again = stack(stack_env, "up")
    assert pids(stack_env) == first, "a second 'up' must not start anything new"
    assert again.count("already running") == len(SERVICES) + 2  # and Kafka and Redis

    # A process this stack did not start, even one that looks like a service, and a
    # stale pid file pointing at it: 'down' must leave it alone.
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "services.risk"],
        env={**os.environ, "LOCAL_STACK_RUN_DIR": "/somewhere/else"},
    )
    try:
        stack(stack_env, "down")
        assert not any(alive(pid) for pid in first.values()), "down left a process behind"
        (Path(stack_env["RUN_DIR"]) / "pids" / "risk.pid").write_text(str(decoy.pid))
        stack(stack_env, "down")
        time.sleep(0.2)
        assert decoy.poll() is None, "down killed a process it did not start"
    finally:
        decoy.send_signal(signal.SIGKILL)
        decoy.wait(5)
