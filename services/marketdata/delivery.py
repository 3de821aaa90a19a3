"""Commit a faust transaction only once every record sent in it was delivered.

aiokafka fails a record batch the broker refuses (a message too large, a sequence error
after a broker restart) by setting the exception on that batch's futures only: the
transaction itself stays committable, and faust's ``commit_transactions`` never looks
at the futures. A commit would then carry the input offsets and the other changes
while the refused table changes or fee-tier commands are gone: exactly-once broken
without a word.

``commit_only_delivered`` wraps faust's aiokafka producer so that each transactional
send's future is kept with its transaction, and a commit first waits for them, under
the transaction's lock (no send of that transaction can slip in between). A refused
record crashes the worker instead of committing: its transaction stays open, the next
owner's producer fences it and the broker aborts it, and the records are processed
again from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

log = logging.getLogger(__name__)

_PATCHED = "_exchange_commit_only_delivered"


def _undelivered(producer: Any) -> dict[str, list[Awaitable[Any]]]:
    pending: dict[str, list[Awaitable[Any]]] | None = producer.__dict__.get(_PATCHED)
    if pending is None:
        pending = producer.__dict__[_PATCHED] = {}
    return pending


def commit_only_delivered() -> None:
    """Patch faust's aiokafka ``Producer`` (once per process)."""
    from faust.transport.drivers import aiokafka as driver

    producer_cls: Any = driver.Producer
    if getattr(producer_cls, _PATCHED, False):
        return
    send = producer_cls.send

    async def tracked_send(
        self: Any,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[Any]:
        # the future joins its transaction's list before this task yields: a commit
        # holding the lock sees every send made before it took the lock
        future: Awaitable[Any] = await send(
            self,
            topic,
            key,
            value,
            partition,
            timestamp,
            headers,
            transactional_id=transactional_id,
        )
        if transactional_id:
            _undelivered(self).setdefault(transactional_id, []).append(future)
        return future

    def forgetting(method: Any) -> Any:
        # a transaction begun, aborted or stopped (its partition revoked): what was sent
        # before is not the next commit's to judge
        async def wrapped(self: Any, transactional_id: str) -> None:
            _undelivered(self).pop(transactional_id, None)
            await method(self, transactional_id)

        return wrapped

    async def commit_transactions(
        self: Any,
        tid_to_offset_map: Mapping[str, Mapping[Any, int]],
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        for transactional_id, offsets in tid_to_offset_map.items():
            async with self._trn_locks[transactional_id]:
                producer = self._transaction_producers.get(transactional_id)
                if producer is None:
                    log.warning("commit for unknown transaction %s", transactional_id)
                    continue
                sent = _undelivered(self).pop(transactional_id, [])
                failed = await _first_failure(sent)
                if failed is not None:
                    log.error(
                        "a record of transaction %s was refused (%r): not committing it",
                        transactional_id,
                        failed,
                        extra={"event": "transaction_refused"},
                    )
                    await self.app.crash(failed)
                    raise failed
                await producer.send_offsets_to_transaction(offsets, group_id)
                await producer.commit_transaction()
                if start_new_transaction:
                    await producer.begin_transaction()

    producer_cls.send = tracked_send
    for name in ("begin_transaction", "abort_transaction", "stop_transaction"):
        setattr(producer_cls, name, forgetting(getattr(producer_cls, name)))
    producer_cls.commit_transactions = commit_transactions
    setattr(producer_cls, _PATCHED, True)


async def _first_failure(futures: list[Awaitable[Any]]) -> BaseException | None:
    """Wait for every delivery; the first refusal (all are awaited, none left unread)."""
    results = await asyncio.gather(*futures, return_exceptions=True)
    return next((r for r in results if isinstance(r, BaseException)), None)
