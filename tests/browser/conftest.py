"""A headless Chromium (Debian's chromium and chromedriver, driven by Selenium) against
the venue's services as processes on the session's Kafka and Redis.

Without the browser the tests skip locally and fail under CI (``CI=true``): install it
with ``deploy/local/browser.sh install``. Screenshots go to ``.run/artifacts/dashboard``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libs.common.settings import Settings
from libs.localstack import free_ports
from libs.localstack.procs import ServiceProcess, wait_http

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".run" / "artifacts" / "dashboard"
SERVICES = ("risk", "matcher", "liquidator", "oracle", "gateway")
CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"


@dataclass
class Stack:
    """The services of one test; ``restart_oracle`` swaps the oracle for one whose
    simulated sources start at other prices (a real move of the venue's index)."""

    url: str
    operator_url: str
    settings: Settings
    log_dir: Path
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)

    def restart_oracle(self, start_prices: str) -> None:
        old = self.procs["oracle"]
        assert old.stop() == 0, f"oracle did not stop cleanly:\n{old.tail()}"
        options = {**self.options, "oracle_start_prices": start_prices}
        self.procs["oracle"] = ServiceProcess(
            "oracle", self.settings, self.log_dir, **options
        ).start()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    gateway_port, operator_port, *metric_ports = free_ports(2 + len(SERVICES))
    common: dict[str, object] = {
        "gateway_port": gateway_port,
        "operator_port": operator_port,
        "oracle_volatility_bps": 0,
        "oracle_interval_ms": 200,
    }
    log_dir = tmp_path / "logs"
    procs = {
        name: ServiceProcess(
            name, settings, log_dir, metrics_port=metric_ports[n], **common
        ).start()
        for n, name in enumerate(SERVICES)
    }
    oracle_options = {**common, "metrics_port": metric_ports[SERVICES.index("oracle")]}
    stack = Stack(
        f"http://127.0.0.1:{gateway_port}",
        f"http://127.0.0.1:{operator_port}",
        settings,
        log_dir,
        procs,
        oracle_options,
    )
    try:
        wait_http(f"{stack.url}/health")
        yield stack
        for p in stack.procs.values():
            assert p.alive(), f"{p.name} died:\n{p.tail()}"
    finally:
        codes = {p.name: p.stop() for p in stack.procs.values()}
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


def _browser_paths() -> tuple[str, str] | None:
    chromium = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which(CHROMEDRIVER)
    return (chromium, driver) if chromium and driver else None


@pytest.fixture
def browser() -> Iterator[object]:
    paths = _browser_paths()
    missing = "chromium and chromedriver are not installed: run deploy/local/browser.sh install"
    if paths is None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("selenium is not installed: pip install -e '.[dev]'")
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    chromium, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1100",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go (kept after the run, outside git)."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed browser test leaves a screenshot of the page as it was."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and driver is not None:
        path = ARTIFACTS / item.name / "failure.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            driver.save_screenshot(str(path))
            report.sections.append(("screenshot", str(path)))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("screenshot", f"none: {exc}"))
