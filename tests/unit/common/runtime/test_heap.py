"""The collector policy of a service process (libs/common/runtime/heap.py), checked in a
fresh interpreter so the test session's own collector is left alone."""

from __future__ import annotations

import json
import subprocess
import sys

from libs.common import native

SCRIPT = """
import gc, json
from libs.common.runtime import heap
state = {f"account{i}": [i] for i in range(1000)}  # a restored state
heap.settle()
untuned = (gc.get_freeze_count(), gc.get_threshold())
heap.tune()
heap.settle()
frozen = gc.get_freeze_count()
later = [[] for _ in range(10)]
print(json.dumps({
    "untuned": untuned,
    "thresholds": gc.get_threshold(),
    "frozen": frozen,
    "after": gc.get_freeze_count(),
    "state_kept": len(state),
}))
"""


def test_a_tuned_process_freezes_its_state_and_only_then() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=native.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    seen = json.loads(out)
    # without tune(): nothing frozen, CPython's default thresholds
    assert seen["untuned"] == [0, [700, 10, 10]]
    assert seen["thresholds"] == [50_000, 20, 100]
    # the 1,000 lists and their dict (and the interpreter's own objects) are frozen;
    # what is allocated afterwards is not
    assert seen["frozen"] > 2_000
    assert seen["after"] == seen["frozen"]
    assert seen["state_kept"] == 1_000
