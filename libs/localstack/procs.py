"""Services as real OS processes, configured from a Settings object, for e2e and chaos."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from libs.common.settings import Settings
from libs.localstack import ROOT


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The EXCHANGE_* environment that reproduces ``settings`` in a child process."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None and name != "instance_id":
            env[f"EXCHANGE_{name.upper()}"] = str(value)
    for name, value in extra.items():
        env[f"EXCHANGE_{name.upper()}"] = str(value)
    return env


class ServiceProcess:
    """``python -m services.<name>`` with its log in ``log_dir``."""

    def __init__(self, name: str, settings: Settings, log_dir: Path, **extra: object) -> None:
        self.name = name
        self.settings = settings
        self.log_dir = log_dir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> ServiceProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        env = settings_env(self.settings, instance_id=f"{self.name}-{self.starts}", **self.extra)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no leaving the group."""
        if self.proc and self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
