"""Drive a pure core the way the runtime does, with no Kafka and no Redis.

The runtime applies one input record at a time at consecutive offsets, collects what the
core emitted, and persists ``take_changes()`` (``None`` deletes an entry). A restarted
worker restores the persisted entries and carries on at the next offset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec

from libs.common.runtime import Context, Core, Output
from libs.common.topics import Topics, partition_for

M = TypeVar("M", bound=msgspec.Struct)


class Driver:
    """One core on one input partition, its outputs and its persisted state."""

    def __init__(self, core: Core, input_topic: str, partition: int = 0) -> None:
        self.core = core
        self.ctx = Context(Topics(""), input_topic, partition)
        self.offset = 0
        self.persisted: dict[str, bytes] = {}

    def send(self, message: msgspec.Struct, *, live: bool = True) -> list[Output]:
        """Apply one record at the next offset; returns what it emitted."""
        self.ctx.at(self.offset, live=live)
        self.offset += 1
        self.core.apply(message, self.ctx)
        return self.ctx.drain()

    def send_all(self, messages: Iterable[msgspec.Struct]) -> list[Output]:
        return [out for message in messages for out in self.send(message)]

    def commit(self) -> None:
        """Persist what changed, as the runtime does after each batch."""
        for key, value in self.core.take_changes().items():
            if value is None:
                self.persisted.pop(key, None)
            else:
                self.persisted[key] = value

    def restarted(self, factory: Callable[[int], Core]) -> Driver:
        """A fresh core restored from what was persisted, at the same next offset."""
        clone = Driver(factory(self.ctx.partition), self.ctx.input_topic, self.ctx.partition)
        clone.core.restore(dict(self.persisted))
        clone.offset = self.offset
        clone.persisted = dict(self.persisted)
        return clone


def restart_midway(
    driver: Driver,
    factory: Callable[[int], Core],
    inputs: list[msgspec.Struct],
    split: int,
    commits: set[int],
) -> Driver:
    """Feed ``inputs[:split]`` (persisting after the indices in ``commits`` and at the
    split), restart a fresh core from what was persisted, then feed the rest to both and
    require identical outputs. Returns the restarted driver for state comparisons."""
    split = min(split, len(inputs))
    for i, msg in enumerate(inputs[:split]):
        driver.send(msg)
        if i in commits:
            driver.commit()
    driver.commit()
    restarted = driver.restarted(factory)
    for msg in inputs[split:]:
        assert comparable(restarted.send(msg)) == comparable(driver.send(msg))
    return restarted


def of_type(outputs: Iterable[Output], kind: type[M]) -> list[M]:
    """The messages of one type among outputs, in emission order."""
    return [out.message for out in outputs if isinstance(out.message, kind)]


def only(outputs: Iterable[Output], kind: type[M]) -> M:
    """The single message of a type among outputs."""
    found = of_type(outputs, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found}"
    return found[0]


def comparable(outputs: Iterable[Output]) -> list[tuple[str, int, bytes, Any, str]]:
    """Outputs as plain tuples, for comparing two runs."""
    return [(o.topic, o.partition, o.key, o.message, o.id) for o in outputs]


class Bus:
    """Cores wired by topic and partition: every record a core emits to a topic with an
    attached core is applied there, in FIFO order (one of the orders Kafka allows)."""

    def __init__(self) -> None:
        self.topics = Topics("")
        self.drivers: dict[tuple[str, int], Driver] = {}
        self.log: list[Output] = []
        self._queue: deque[tuple[str, int, msgspec.Struct]] = deque()

    def attach(self, topic: str, factory: Callable[[int], Core]) -> list[Driver]:
        """One core per partition of ``topic``."""
        drivers = []
        for partition in range(self.topics.partitions(topic)):
            drivers.append(Driver(factory(partition), topic, partition))
            self.drivers[(topic, partition)] = drivers[-1]
        return drivers

    def publish(self, topic: str, key: str, message: msgspec.Struct) -> list[Output]:
        """Produce one input record and run the cores until nothing is left to deliver."""
        partition = partition_for(key, self.topics.partitions(topic))
        self._queue.append((topic, partition, message))
        start = len(self.log)
        while self._queue:
            where, part, msg = self._queue.popleft()
            for out in self.drivers[(where, part)].send(msg):
                self.log.append(out)
                if (out.topic, out.partition) in self.drivers:
                    self._queue.append((out.topic, out.partition, out.message))
        return self.log[start:]
