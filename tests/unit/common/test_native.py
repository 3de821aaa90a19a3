"""The compiled hot modules (libs/common/native.py): loaded only when built from the
current sources, and indistinguishable from the Python they are compiled from."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from libs.common import codec, native, topics
from libs.common.markets import load_markets
from libs.common.runtime import Context
from libs.common.topics import Topics
from services.liquidator.cases import LiquidatorCore
from services.matcher.engine import MatcherCore
from tests.support.workload import liquidator_workload, matcher_workload


@pytest.fixture
def stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A build stamp the loader reads instead of the real one."""
    path = tmp_path / "SOURCES"
    monkeypatch.setattr(native, "STAMP", path)
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    native._fresh.cache_clear()
    yield path
    native._fresh.cache_clear()


def search_path(package: str) -> list[str]:
    native._fresh.cache_clear()
    path: list[str] = []
    native.extend_path(path, package)
    return path


def test_a_build_is_used_only_when_its_stamp_matches_the_sources(
    stamp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = str(native.NATIVE_ROOT / "services" / "matcher")
    assert search_path("services.matcher") == []  # never built
    stamp.write_text("0" * 64 + "\n")  # built from other sources: an edit since
    assert search_path("services.matcher") == []
    stamp.write_text(native.sources_digest() + "\n")
    assert search_path("services.matcher") == [build]
    assert search_path("services.risk") == []  # not a compiled package
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert search_path("services.matcher") == []


def test_the_stamp_covers_every_compiled_source_and_the_structs_they_use() -> None:
    files = set(native.source_files()) | set(native.DEPENDS)
    assert {
        "services/matcher/market.py",
        "services/matcher/book.py",
        "services/matcher/engine.py",
        "libs/common/runtime/core.py",
        "services/matcher/structs.py",
        "services/liquidator/cases.py",
        "services/liquidator/structs.py",
    } <= files
    assert all((native.ROOT / f).is_file() for f in files)


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI builds the compiled modules")
def test_ci_runs_the_compiled_modules() -> None:
    assert native.describe() == "compiled (mypyc)"


def digest(seed: int, count: int) -> str:
    """Every output (topic, partition, key, id, bytes) and every persisted state change
    of the matcher core over a seeded flow of every command type."""
    core = MatcherCore(load_markets(), 0)
    ctx = Context(Topics(""), topics.MATCHER_IN, 0)
    h = hashlib.sha256()
    for offset, (_, message, _) in enumerate(matcher_workload(seed, count)):
        if not isinstance(message, msgspec.Struct):
            continue
        core.apply(message, ctx.at(offset, live=True))
        for out in ctx.drain():
            h.update(f"{out.topic}|{out.partition}|{out.id}|".encode() + out.key)
            h.update(codec.encode(out.message))
        if offset % 97 == 0:
            for key, value in sorted(core.take_changes().items()):
                h.update(key.encode() + (value or b"-"))
    return h.hexdigest()


def liquidator_digest(seed: int, count: int) -> str:
    """Every output and every persisted state change of the liquidator cores over the
    liquidations log of seeded waterfalls (book orders, backstop, fund, ADL, unwind)."""
    cores: dict[int, tuple[LiquidatorCore, Context]] = {}
    h = hashlib.sha256()
    for offset, (_, message, partition) in enumerate(liquidator_workload(seed, count)):
        assert partition is not None
        if partition not in cores:
            cores[partition] = (
                LiquidatorCore(partition),
                Context(Topics(""), topics.LIQUIDATIONS, partition),
            )
        core, ctx = cores[partition]
        core.apply(message, ctx.at(offset, live=True))
        for out in ctx.drain():
            h.update(f"{out.topic}|{out.partition}|{out.id}|".encode() + out.key)
            h.update(codec.encode(out.message))
        if offset % 13 == 0:
            for key, value in sorted(core.take_changes().items()):
                h.update(key.encode() + (value or b"-"))
    return h.hexdigest()


DIGESTS = {"matcher": (digest, 4000), "liquidator": (liquidator_digest, 3000)}


@pytest.mark.parametrize("core", sorted(DIGESTS))
def test_compiled_and_python_produce_the_same_bytes(core: str) -> None:
    if native.describe() != "compiled (mypyc)":
        pytest.skip("the compiled modules are not loaded (python -m libs.common.compile)")
    run, count = DIGESTS[core]
    script = (
        "from libs.common import native; "
        f"from tests.unit.common.test_native import {run.__name__}; "
        f"print(native.describe()); print({run.__name__}(7, {count}))"
    )
    python = subprocess.run(
        [sys.executable, "-c", script],
        cwd=native.ROOT,
        env={**os.environ, native.ENV_SWITCH: "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    assert python[0] == "python"
    assert run(7, count) == python[1]
