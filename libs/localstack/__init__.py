"""A private Kafka broker and Redis server for tests and benchmarks.

Started and stopped by the same scripts operators use (deploy/local), on free loopback
ports and in a directory of its own, so it never touches the local stack or its data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "local"


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (bound together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalStack:
    run_dir: Path
    kafka_port: int
    controller_port: int
    redis_port: int
    kafka_start_seconds: float = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RUN_DIR": str(self.run_dir),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "REDIS_PORT": str(self.redis_port),
        }

    def script(self, name: str, command: str) -> None:
        subprocess.run([str(SCRIPTS / name), command], env=self.env(), check=True, cwd=ROOT)

    def start(self) -> None:
        started = time.perf_counter()
        self.script("kafka.sh", "start")
        self.kafka_start_seconds = time.perf_counter() - started
        self.script("redis.sh", "start")

    @classmethod
    def private(cls, run_dir: Path) -> LocalStack:
        kafka, controller, redis_port = free_ports(3)
        return cls(run_dir, kafka, controller, redis_port)

    def stop(self) -> None:
        for name in ("redis.sh", "kafka.sh"):
            try:
                self.script(name, "stop")
            except subprocess.CalledProcessError:
                pass
