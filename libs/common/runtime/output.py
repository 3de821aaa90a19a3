"""What a core emits: one record to produce.

A msgspec Struct, so it stays out of ``core`` (which may be compiled, see
libs/common/native.py).
"""

from __future__ import annotations

import msgspec


class Output(msgspec.Struct, frozen=True):
    """One record to produce: deployed topic name, partition, key and message."""

    topic: str
    partition: int
    key: bytes
    message: msgspec.Struct
    id: str
