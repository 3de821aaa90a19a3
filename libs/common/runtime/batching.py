"""Adaptive batch size: grow while batches come back full and fast, shrink when slow."""

from __future__ import annotations


class BatchSizer:
    """Additive-increase of throughput under load, multiplicative decrease on latency.

    A full batch that finished under the latency target doubles the next request (the
    partition has a backlog and commits are cheap per record); a batch over the target
    halves it, so a latency-sensitive trickle is never held behind a huge batch.
    """

    __slots__ = ("maximum", "minimum", "size", "target_s")

    def __init__(self, minimum: int, maximum: int, target_ms: float) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("batch sizes must satisfy 1 <= minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.target_s = target_ms / 1000.0
        self.size = max(minimum, min(maximum, 64))

    def observe(self, records: int, seconds: float) -> int:
        if seconds > self.target_s and self.size > self.minimum:
            self.size = max(self.minimum, self.size // 2)
        elif records >= self.size and seconds <= self.target_s / 2:
            self.size = min(self.maximum, self.size * 2)
        return self.size
