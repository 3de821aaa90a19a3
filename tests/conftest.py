"""Session fixtures: one Kafka broker and one Redis server for the whole test run.

They start only when a test asks for them, on free loopback ports, and stop at the
end. Each test gets its own namespace (topic prefix, consumer groups, Redis hash
tags), so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

# imported here, not first at the run's terminal summary: there CPython 3.11.7's parser
# can fail rewriting it ("AST constructor recursion depth mismatch") after a network test
import hypothesis  # noqa: F401
import pytest
import redis.asyncio as aioredis

from libs.common.admin import ensure_topics
from libs.common.settings import Settings
from libs.localstack import LocalStack, free_ports

_STARTED: list[LocalStack] = []


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    kafka, controller, redis_port = free_ports(3)
    local = LocalStack(tmp_path_factory.mktemp("stack"), kafka, controller, redis_port)
    try:
        local.start()
        _STARTED.append(local)
        yield local
    finally:
        local.stop()


def make_settings(stack: LocalStack, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap": stack.bootstrap,
        "redis_url": stack.redis_url,
        "namespace": f"t{uuid.uuid4().hex[:10]}.",
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500,
        "poll_timeout_ms": 20,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def settings(stack: LocalStack) -> Settings:
    """Settings in a fresh namespace whose topics exist."""
    s = make_settings(stack)
    await ensure_topics(s)
    return s


@pytest.fixture
async def redis_client(stack: LocalStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for local in _STARTED:
        terminalreporter.write_line(
            f"kafka cold start (fetch cached, format, start, metadata answered): "
            f"{local.kafka_start_seconds:.2f} s"
        )
