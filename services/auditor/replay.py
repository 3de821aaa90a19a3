"""One input partition's log replayed through a fresh core, as the runtime applies it.

The runtime decodes each record with the topic's schema and applies it to the core; a
record that does not decode, or that the core fails on, only becomes a dead letter. The
replay does the same, so after the records below ``offset`` its entries are exactly what
the runtime persisted to Redis at that offset, and a proof recomputed here is the
processor's proof.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.common import codec
from libs.common.runtime import Context, Core, Output
from libs.common.runtime.proof import StateMirror, proof_due
from libs.common.topics import Topics

log = logging.getLogger(__name__)

Watcher = Callable[[Output], None]


class PartitionReplay:
    """A fresh core fed one partition's committed input records in order.

    Every ``proof_interval`` offsets the state is hashed on the way, as the runtime
    proves it (``digests``, by ``StateProof.offset``); ``watch`` sees every output the
    core emits (the replay then runs as live: outputs do not change a core's state)."""

    def __init__(
        self,
        core: Core,
        topics: Topics,
        input_topic: str,
        partition: int,
        proof_interval: int = 0,
        watch: Watcher | None = None,
    ) -> None:
        self.core = core
        self.ctx = Context(topics, input_topic, partition)
        self.decoder = codec.decoder(input_topic)
        self.state = StateMirror()
        self.offset = 0
        self.proof_interval = proof_interval
        self.digests: dict[int, tuple[int, str]] = {}
        self.watch = watch

    def apply(self, offset: int, value: bytes) -> Any:
        """Apply the record at ``offset``; returns the decoded message (None: undecodable)."""
        ctx = self.ctx.at(offset, live=self.watch is not None)
        message: Any = None
        try:
            message = self.decoder.decode(value)
        except (codec.DecodeError, ValueError):
            pass  # a dead letter: no state change
        else:
            try:
                self.core.apply(message, ctx)
            except Exception:  # the runtime dead-letters it and goes on; so do we
                log.debug("core failed on offset %d", offset, exc_info=True)
        outputs = ctx.drain()
        if self.watch is not None:
            for out in outputs:
                self.watch(out)
        due = proof_due(self.offset, offset, self.proof_interval)
        self.offset = offset + 1
        if due:
            self.flush()
            self.digests[self.offset] = (len(self.state.entries), self.state.digest())
        return message

    def flush(self) -> dict[str, bytes]:
        """The state so far, as persisted (the core's changes folded in)."""
        self.state.update(self.core.take_changes())
        return self.state.entries
