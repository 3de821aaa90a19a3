"""The garbage collector in a service whose state is a large, long-lived heap.

A core's state (accounts, positions, books, cases: millions of objects once restored)
lives as long as the process, but CPython's cyclic collector walks every tracked object
at each full collection and its young generations fill after 700 allocations. A burst
that allocates a few records per account (a mark putting 10,000 accounts under
maintenance) then spends a large share of its time in the collector
(docs/liquidator.md, "Detection latency").

- ``tune()`` at process start: larger generation thresholds, so young collections are
  rarer (each still only walks the young objects) and full ones rarer still.
- ``settle()`` once a partition's state is restored and once its replay is done: one
  full collection, then ``gc.freeze()`` moves every surviving object to the permanent
  generation, which the collector never walks again. Reference counting still frees
  them when they are dropped; only a reference cycle among them would stay until exit,
  and the cores' state (dicts of structs keyed by id) holds none.

Neither changes what a core computes: only when unreachable cycles are reclaimed. Both
are a policy of the process: ``settle()`` does nothing until ``tune()`` ran (the
launcher's, a benchmark's), so a test session running processors in-process keeps the
default collector.
"""

from __future__ import annotations

import gc

# Allocations between young collections, young collections per middle one, middle
# ones per full one (CPython's defaults: 700, 10, 10).
THRESHOLDS = (50_000, 20, 100)
_tuned = False


def tune() -> None:
    """Collect less often, and let ``settle()`` freeze; call once at process start."""
    global _tuned
    gc.set_threshold(*THRESHOLDS)
    _tuned = True


def settle() -> None:
    """Collect once, then exempt everything alive now from later collections (only in
    a process that called ``tune()``)."""
    if _tuned:
        gc.collect()
        gc.freeze()
