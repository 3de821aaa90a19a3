"""Adaptive batch size: grow while batches come back full and fast, shrink when slow."""

from __future__ import annotations


class BatchSizer:
    """The most records to take in the next batch, steered by batch latency.

    It starts at the ceiling, so a backlog (after a restart, say) drains in few
    transactions; a batch over the latency target halves the next one, so a partition
    settles at the size it can commit within the target; a full batch well under the
    target doubles it again. A trickle never waits for a batch to fill: the size is
    only a cap on what one poll returns.
    """

    __slots__ = ("maximum", "minimum", "size", "target_s")

    def __init__(self, minimum: int, maximum: int, target_ms: float) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("batch sizes must satisfy 1 <= minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.target_s = target_ms / 1000.0
        self.size = maximum

    def observe(self, records: int, seconds: float) -> int:
        if seconds > self.target_s and self.size > self.minimum:
            self.size = max(self.minimum, self.size // 2)
        elif records >= self.size and seconds <= self.target_s / 2:
            self.size = min(self.maximum, self.size * 2)
        return self.size
