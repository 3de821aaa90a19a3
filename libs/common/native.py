"""Modules compiled with mypyc, and how their packages pick the compiled versions up.

The hot path of the matcher (its book, engines and positions), the liquidator's core and
the runtime context every core emits through are plain, strictly typed Python that mypyc
can compile to C extensions: ``python -m libs.common.compile`` writes them to
``build/native/`` (never next to the sources) with a stamp of the sources they were
built from. A package listed in
``COMPILED`` puts its directory there first on its search path (``extend_path``) only
when the stamp matches the sources on disk: an edited source runs as Python until it is
rebuilt, and the same sources run unchanged without any build (development).
``EXCHANGE_NATIVE=0`` forces the plain Python modules. msgspec Struct classes cannot be
compiled, so the compiled modules keep theirs in modules that are not listed here.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from functools import cache
from pathlib import Path

# Package -> its compiled modules. One group: calls between them are direct C calls.
COMPILED: dict[str, tuple[str, ...]] = {
    "libs.common.runtime": ("core",),
    "services.matcher": ("book", "positions", "mark", "funding", "market", "engine"),
    "services.liquidator": ("waterfall", "adl", "unwind", "cases"),
}
# Plain modules whose classes the compiled ones are built against.
DEPENDS = (
    "libs/common/runtime/output.py",
    "services/matcher/structs.py",
    "services/liquidator/structs.py",
    "services/liquidator/config.py",
)
# Where the group's shared library lives (a package whose path includes the build).
GROUP = "libs.common.runtime._native"
ROOT = Path(__file__).resolve().parents[2]
NATIVE_ROOT = ROOT / "build" / "native"
STAMP = NATIVE_ROOT / "SOURCES"
ENV_SWITCH = "EXCHANGE_NATIVE"


def source_files() -> list[str]:
    """The compiled sources, relative to the repository root."""
    return [
        f"{package.replace('.', '/')}/{name}.py"
        for package, names in COMPILED.items()
        for name in names
    ]


def sources_digest() -> str:
    """What a build depends on: the sources, the plain modules they use, the ABI."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for path in (*source_files(), *DEPENDS):
        digest.update(path.encode() + b"\0" + (ROOT / path).read_bytes())
    return digest.hexdigest()


@cache
def _fresh() -> bool:
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    try:
        return STAMP.read_text().strip() == sources_digest()
    except OSError:
        return False


def extend_path(path: list[str], package: str) -> None:
    """Put the package's compiled modules first on its search path, when up to date."""
    if package in COMPILED and _fresh():
        path.insert(0, str(NATIVE_ROOT.joinpath(*package.split("."))))


def loaded() -> dict[str, bool]:
    """Whether each listed module is the compiled one (imports them)."""
    status = {}
    for package, names in COMPILED.items():
        for name in names:
            module = importlib.import_module(f"{package}.{name}")
            status[f"{package}.{name}"] = not (module.__file__ or "").endswith(".py")
    return status


def describe() -> str:
    """``compiled (mypyc)``, ``python``, or which modules are which."""
    status = loaded()
    if all(status.values()):
        return "compiled (mypyc)"
    if not any(status.values()):
        return "python"
    compiled = ", ".join(name for name, native in status.items() if native)
    return f"mixed (compiled: {compiled})"
