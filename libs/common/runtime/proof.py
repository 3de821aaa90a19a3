"""State proofs: one SHA-256 over a whole partition state, that anyone can recompute.

A partition's state is the set of entries its core persisted (``take_changes``: field
name to bytes, the Redis hash of ``SnapshotStore``). Its canonical encoding is the
entries sorted by the UTF-8 bytes of their names, each written as

    len(name) (4 bytes, big-endian) | name (UTF-8) | len(value) (4 bytes) | value

and the proof is the SHA-256 of that, in hex. The same bytes come from replaying the
input log through a fresh core (the auditor) or from an ``HGETALL`` of the Redis hash at
the same offset, in any language.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def state_digest(entries: Mapping[str, bytes]) -> str:
    """The SHA-256 (hex) of the canonical encoding of a partition state."""
    digest = hashlib.sha256()
    for name in sorted(entry.encode() for entry in entries):
        value = entries[name.decode()]
        digest.update(len(name).to_bytes(4, "big"))
        digest.update(name)
        digest.update(len(value).to_bytes(4, "big"))
        digest.update(value)
    return digest.hexdigest()


def proof_due(position: int, offset: int, interval: int) -> bool:
    """Whether the state after the input record at ``offset`` is proven, the record
    before it having ended at ``position`` (its offset + 1; 0 for the first): after the
    first record at or past each multiple of ``interval``, i.e. when ``offset + 1``
    crosses one. Offsets of transaction markers hold no record, so a proof's offset is
    not always a multiple; the rule needs only the log, so every owner and every replay
    proves the same offsets."""
    return interval > 0 and (offset + 1) // interval > position // interval


class StateMirror:
    """The whole partition state as persisted, kept up to date from the core's changes,
    so a proof needs no read of Redis (which may lag behind a batch)."""

    __slots__ = ("entries",)

    def __init__(self, entries: Mapping[str, bytes] | None = None) -> None:
        self.entries: dict[str, bytes] = dict(entries or {})

    def update(self, changes: Mapping[str, bytes | None]) -> None:
        entries = self.entries
        for name, value in changes.items():
            if value is None:
                entries.pop(name, None)
            else:
                entries[name] = value

    def digest(self) -> str:
        return state_digest(self.entries)
