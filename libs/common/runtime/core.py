"""What a pure core looks like to the runtime, and the context it applies messages in.

A core owns one input partition's state. The runtime hands it one decoded message at a
time together with a :class:`Context`; the core changes its state, asks the context to
emit outputs, and later reports which state entries changed so the runtime can persist
exactly those. Cores do no I/O and read time only from messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Generic, Protocol, TypeVar

import msgspec

from libs.common.runtime.output import Output
from libs.common.topics import Topics, partition_for


class Core(Protocol):
    """The pure state machine of one input partition."""

    def apply(self, message: Any, ctx: Context) -> None:
        """Apply one input message; emit outputs through ``ctx``; never raise for bad input."""

    def take_changes(self) -> dict[str, bytes | None]:
        """State entries changed since the last call (``None`` means deleted)."""

    def restore(self, entries: Mapping[str, bytes]) -> None:
        """Load state as persisted by earlier ``take_changes`` calls."""


CoreFactory = Callable[[int], Core]

ROUTES_KEPT: Final = 1 << 16  # remembered keys per topic
# Compiled (libs/common/native.py), a Final module name is a C static; an imported name
# costs a dict lookup per use.
_Output: Final = Output


class Context:
    """Where a core emits outputs while applying one input record.

    Ids are deterministic: ``<input topic>/<partition>/<offset>/<index>``, so a replay
    of the same input yields the same ids and consumers can drop duplicates.
    """

    __slots__ = (
        "_id_prefix",
        "_index",
        "_routes",
        "_topics",
        "input_topic",
        "live",
        "offset",
        "outputs",
        "partition",
        "topics",
    )

    def __init__(self, topics: Topics, input_topic: str, partition: int) -> None:
        self.topics = topics
        self.input_topic = input_topic
        self.partition = partition
        self.offset = -1
        self.live = True
        self.outputs: list[Output] = []
        self._index = 0
        self._id_prefix = f"{input_topic}/{partition}/-1/"
        self._topics: dict[str, tuple[str, int]] = {}
        # logical topic -> key -> (deployed topic, partition, encoded key)
        self._routes: dict[str, dict[str, tuple[str, int, bytes]]] = {}

    def _where(self, topic: str) -> tuple[str, int]:
        """Deployed name and partition count of a logical topic (cached)."""
        found = self._topics.get(topic)
        if found is None:
            found = self._topics[topic] = (self.topics.name(topic), self.topics.partitions(topic))
        return found

    def _route(self, topic: str, key: str) -> tuple[str, int, bytes]:
        """Where ``key`` goes in a logical topic, remembered: keys (accounts, markets)
        repeat, and partitioning is pure Python."""
        routes = self._routes.get(topic)
        if routes is None:
            routes = self._routes[topic] = {}
        elif len(routes) >= ROUTES_KEPT:
            routes.clear()
        name, count = self._where(topic)
        route = routes[key] = (name, partition_for(key, count), key.encode())
        return route

    def at(self, offset: int, *, live: bool) -> Context:
        """Point the context at the next input record."""
        self.offset = offset
        self.live = live
        self._index = 0
        self._id_prefix = f"{self.input_topic}/{self.partition}/{offset}/"
        return self

    @property
    def source_id(self) -> str:
        """The id of the input record being applied (stable across replays)."""
        return f"{self.input_topic}/{self.partition}/{self.offset}"

    def emit(self, topic: str, key: str, message: msgspec.Struct) -> None:
        """Emit to the partition that owns ``key`` in a logical topic."""
        index = self._index
        self._index = index + 1
        if self.live:
            routes = self._routes.get(topic)
            route = routes.get(key) if routes is not None else None
            if route is None:
                route = self._route(topic, key)
            self.outputs.append(
                _Output(route[0], route[1], route[2], message, self._id_prefix + str(index))
            )

    def broadcast(self, topic: str, key: str, message: msgspec.Struct) -> None:
        """Emit one copy to every partition of a topic (e.g. a mark for all risk shards)."""
        name, count = self._where(topic)
        for partition in range(count):
            index = self._index
            self._index = index + 1
            if self.live:
                self.outputs.append(
                    Output(name, partition, key.encode(), message, self._id_prefix + str(index))
                )

    def drain(self) -> list[Output]:
        outputs, self.outputs = self.outputs, []
        return outputs


V = TypeVar("V", bound=msgspec.Struct)


class ChangeTracked(Generic[V]):
    """A dict of msgspec structs that remembers which keys changed since the last flush.

    Cores keep their entities (accounts, books, ...) in these and implement
    ``take_changes`` by encoding only what changed.
    """

    __slots__ = ("_decoder", "_dirty", "_encoder", "_items", "_prefix", "_type")

    def __init__(self, prefix: str, value_type: type[V]) -> None:
        self._items: dict[str, V] = {}
        self._dirty: dict[str, None] = {}
        self._type = value_type
        self._prefix = prefix
        self._decoder = msgspec.msgpack.Decoder(value_type)
        self._encoder = msgspec.msgpack.Encoder()

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        """Keys in sorted order, so decisions that iterate them are deterministic."""
        return sorted(self._items)

    def values(self) -> Iterator[V]:
        for key in self.keys():
            yield self._items[key]

    def put(self, key: str, value: V) -> None:
        self._items[key] = value
        self._dirty[key] = None

    def delete(self, key: str) -> None:
        if self._items.pop(key, None) is not None:
            self._dirty[key] = None

    def touch(self, key: str) -> None:
        """Mark a mutable value as changed in place."""
        self._dirty[key] = None

    def take_changes(self, into: dict[str, bytes | None]) -> None:
        for key in self._dirty:
            value = self._items.get(key)
            into[self._prefix + key] = None if value is None else self._encoder.encode(value)
        self._dirty.clear()

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self._items.clear()
        self._dirty.clear()
        plen = len(self._prefix)
        for field, raw in entries.items():
            if field.startswith(self._prefix):
                self._items[field[plen:]] = self._decoder.decode(raw)
