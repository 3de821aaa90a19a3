"""Adaptive batch size from a model of what a batch costs: a fixed part and a part per record.

A batch's time is mostly the Kafka transaction (round trips to the coordinator and the
partition leaders, whatever the batch holds) plus the work per record. Halving the size
whenever a batch runs slow only helps with the second part: when the commit alone takes
longer than the target, every batch is slow, and halving drives the size down to one
record per transaction, exactly when larger batches would amortize the commit. So the
sizer fits ``seconds = fixed + per_record * records`` to the batches it sees and picks
the size from the fit.
"""

from __future__ import annotations

import math

# Weight of the past in the fit, per batch: about the last 1 / (1 - DECAY) batches
# count, enough to average out the jitter of single batches.
DECAY = 0.95
# The two costs are told apart only when the fitted per-record cost is known to within
# this part of itself (its standard error, from the scatter of the batches around the
# line and the spread of their sizes); otherwise the last per-record cost is kept and
# the rest is fixed cost.
PRECISION = 0.5
# Two batches in a row more than SHIFT times slower or faster than the fit predicts mean
# the costs have changed (the broker got busy, or quiet again): the fit starts over from
# those two, keeping only the per-record cost, rather than average two regimes into a
# line that fits neither. One such batch alone is taken for a hiccup and left out.
SHIFT = 1.8
# No batch is so small that its records take less than AMORTIZE times the fixed cost: the
# commit is at most 1 / (1 + AMORTIZE) of a batch's time. It decides once the commit
# alone takes 1 / (1 + AMORTIZE) of the target or more (3 measured no better on
# bench.liquidation than 1, with longer batches).
AMORTIZE = 1.0


class BatchSizer:
    """The most records to take in the next batch, from a fit of the batch cost.

    The next size is the largest whose predicted time fits the latency target, but never
    one so small that the fixed cost is more than half of a batch's time: once the commit
    alone takes half the target or more, meeting the target would cost most of the
    throughput (and past the target no size meets it), so the size is then the one whose
    records take as long as the commit, about twice the commit per batch.

    It starts at the ceiling, so a backlog (after a restart, say) drains in few
    transactions. A batch lowers the size only if it held more records than the new size:
    a smaller batch had everything that was waiting, and a smaller cap would not have
    shortened it. So a trickle never shrinks it, and never waits for a batch to fill: the
    size is only a cap on what one poll returns. It grows at most twofold per batch.

    Until sizes have varied enough to tell the costs apart, records are taken as free
    (all fixed cost, so the size stays large); a full batch over the target that the fit
    cannot explain makes the next one half as big, and the two sizes tell the costs
    apart. Wall-clock batch times are noisy on a loaded machine, so the fit averages
    over about the last 20 batches, and a per-record cost it cannot pin down is kept
    from before (but never above what the latest batch spent per record).
    """

    __slots__ = (
        "fixed_s",
        "maximum",
        "mean_records",
        "mean_seconds",
        "minimum",
        "per_record_s",
        "records_seconds",
        "records_spread",
        "seconds_spread",
        "size",
        "suspect",
        "target_s",
        "told_apart",
        "weight",
    )

    def __init__(self, minimum: int, maximum: int, target_ms: float) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("batch sizes must satisfy 1 <= minimum <= maximum")
        if not target_ms > 0:
            raise ValueError("the batch latency target must be positive")
        self.minimum = minimum
        self.maximum = maximum
        self.target_s = target_ms / 1000.0
        self.size = maximum
        # The fit: seconds = fixed_s + per_record_s * records.
        self.fixed_s = 0.0
        self.per_record_s = 0.0
        # Whether the sizes seen since the costs last changed spread enough to fit both
        # parts (otherwise per_record_s is an older value, or the guess of 0).
        self.told_apart = False
        # A batch far off the fit, not yet taken into it (see observe).
        self.suspect: tuple[int, float] | None = None
        # Exponentially weighted observations: total weight, means, and the sums of
        # squared deviations (records, seconds) and of their products.
        self.weight = 0.0
        self.mean_records = 0.0
        self.mean_seconds = 0.0
        self.records_spread = 0.0
        self.records_seconds = 0.0
        self.seconds_spread = 0.0

    def predict(self, records: int) -> float:
        """Seconds the fit expects a batch of ``records`` to take."""
        return self.fixed_s + self.per_record_s * records

    def observe(self, records: int, seconds: float) -> int:
        """Learn from one batch (``records`` taken, ``seconds`` from fetch to snapshot) and
        return the size of the next one."""
        if records <= 0 or not 0 <= seconds < math.inf:
            return self.size
        if self.told_apart:
            predicted = self.predict(records)
            if not predicted / SHIFT <= seconds <= predicted * SHIFT:
                if self.suspect is None:
                    # One batch off the line may be a hiccup (a rebalance, a pause):
                    # set it aside and wait for the next.
                    self.suspect = (records, seconds)
                    return self.size
                suspect, self.suspect = self.suspect, None
                self._forget()
                self._fit(*suspect)
            else:
                self.suspect = None
        self._fit(records, seconds)
        wanted = self._choose()
        if (
            records >= self.size
            and seconds > self.target_s
            and not self.told_apart
            and 2 * records < 3 * wanted < 9 * records // 2
        ):
            # Too slow, and the next batch would be about as big as this one, which
            # cannot tell the costs apart: make it half as big instead.
            wanted = max(self.minimum, wanted // 2)
        if records > wanted:
            self.size = wanted
        else:
            # One batch may be a hiccup: the size at most doubles per batch.
            self.size = max(self.size, min(wanted, 2 * self.size))
        return self.size

    def _forget(self) -> None:
        """Drop the observations (the costs changed); the per-record cost stays as a guess."""
        self.told_apart = False
        self.weight = self.mean_records = self.mean_seconds = 0.0
        self.records_spread = self.records_seconds = self.seconds_spread = 0.0

    def _fit(self, records: int, seconds: float) -> None:
        # A weighted Welford update, the past decayed by DECAY.
        self.weight = DECAY * self.weight + 1.0
        d_records = records - self.mean_records
        self.mean_records += d_records / self.weight
        self.records_spread = DECAY * self.records_spread + d_records * (
            records - self.mean_records
        )
        d_seconds = seconds - self.mean_seconds
        self.mean_seconds += d_seconds / self.weight
        self.records_seconds = DECAY * self.records_seconds + d_records * (
            seconds - self.mean_seconds
        )
        self.seconds_spread = DECAY * self.seconds_spread + d_seconds * (
            seconds - self.mean_seconds
        )
        mean_r, mean_s = self.mean_records, self.mean_seconds
        # Kept from before, but no batch spends more per record than its whole time.
        per_record = min(self.per_record_s, seconds / records)
        self.told_apart = False
        if self.records_spread > 0 and self.weight >= 3.0:
            # Two batches always lie on a line; the scatter of a third says how well.
            slope = self.records_seconds / self.records_spread
            scatter = self.seconds_spread - slope * self.records_seconds
            error_sq = max(scatter, 0.0) / (self.weight - 2.0) / self.records_spread
            if slope > 0 and error_sq <= (PRECISION * slope) ** 2:
                per_record, self.told_apart = slope, True
        fixed = mean_s - per_record * mean_r
        if fixed < 0:
            fixed, per_record = 0.0, mean_s / mean_r
        self.fixed_s, self.per_record_s = fixed, per_record

    def _choose(self) -> int:
        per_record = self.per_record_s
        if per_record <= 0:
            return self.maximum
        fits_target = (self.target_s - self.fixed_s) / per_record
        amortizes_commit = AMORTIZE * self.fixed_s / per_record
        wanted = max(fits_target, amortizes_commit)
        if wanted >= self.maximum:
            return self.maximum
        return max(self.minimum, round(wanted))
