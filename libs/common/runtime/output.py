"""What a core emits: one record to produce.

A msgspec Struct, so it stays out of ``core`` (which may be compiled, see
libs/common/native.py).
"""

from __future__ import annotations

import msgspec


class Output(msgspec.Struct, frozen=True, gc=False):
    """One record to produce: deployed topic name, partition, key and message.

    Not tracked by the garbage collector (``gc=False``): an output refers to its message
    and never the other way, so it can be in no reference cycle, and a burst of outputs
    (a crash mark: several per account) no longer drives young collections.
    """

    topic: str
    partition: int
    key: bytes
    message: msgspec.Struct
    id: str
