"""When to try again during an outage of the broker or Redis, and when to give up.

Pure: every decision takes the time as an argument (a monotonic clock in the services,
numbers in the tests). The delay doubles from ``first_s`` after each failed attempt, up
to ``max_s``; the outage is given up once it has lasted ``window_s`` (the last attempt is
made at the window's end, so an outage just shorter than the window is still ridden
out). Then the caller exits, and its supervisor restarts it.
"""

from __future__ import annotations


class Outage:
    """The state of one outage: when it began and how many attempts failed since."""

    def __init__(self, first_s: float, max_s: float, window_s: float) -> None:
        if first_s <= 0 or max_s < first_s or window_s < 0:
            raise ValueError(
                f"backoff needs 0 < first ({first_s}) <= max ({max_s}) and window ({window_s}) >= 0"
            )
        self.first_s = first_s
        self.max_s = max_s
        self.window_s = window_s
        self.began: float | None = None
        self.failures = 0

    @property
    def active(self) -> bool:
        return self.began is not None

    def begin(self, now: float) -> None:
        """The outage is noticed at ``now`` (no change if it already began)."""
        if self.began is None:
            self.began = now

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failed attempt in a row (1-based)."""
        if failures < 1:
            return 0.0
        # 2**n overflows nothing here: the exponent stops growing once max_s is reached
        delay = self.first_s
        for _ in range(failures - 1):
            delay *= 2
            if delay >= self.max_s:
                return self.max_s
        return min(delay, self.max_s)

    def failed(self, now: float) -> float | None:
        """An attempt failed at ``now``: the time of the next one, or None to give up."""
        self.begin(now)
        assert self.began is not None
        self.failures += 1
        deadline = self.began + self.window_s
        if now >= deadline:
            return None
        return min(now + self.delay(self.failures), deadline)

    def lasted(self, now: float) -> float:
        """Seconds since the outage began (0 if none)."""
        return 0.0 if self.began is None else now - self.began

    def end(self) -> None:
        """Everything works again: the next failure starts a new outage."""
        self.began = None
        self.failures = 0
