"""The matcher persists its markets in pieces: a batch writes only what it changed.

A market's header (everything but its orders) is one field; each resting order, trigger
and pending TP/SL group is a field of its own, written when it changes and deleted when it
leaves. State written in the old layout (a market's whole snapshot in one ``book:`` field)
is still read, and is rewritten in pieces on the market's next write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from libs.common.runtime import Output
from libs.common.schemas import FillLeg
from services.matcher.engine import MatcherCore
from tests.unit.cores import Driver, comparable
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, MARKETS, Venue, sz

DAVE = "0x" + "d" * 40


def _deep_book(orders: int = 1_000) -> Venue:
    """``orders`` resting bids of 0.01 BTC, 10 per price level, persisted."""
    venue = Venue()
    venue.tick("100000")
    for i in range(orders):
        venue.buy(ALICE if i % 2 else CAROL, str(99_000 - 10 * (i // 10)), "0.01")
    venue.driver.commit()
    assert len(venue.engine().book.orders) == orders
    return venue


def test_a_cancel_in_a_deep_book_writes_four_fields_not_the_book() -> None:
    venue = _deep_book()
    assert sum(key.startswith("o:BTC:") for key in venue.driver.persisted) == 1_000
    venue.cancel(CAROL, 501)
    changes = venue.core.take_changes()
    assert sorted(changes) == ["ctx:BTC", "l2:BTC", "mkt:BTC", "o:BTC:501"]
    assert changes["o:BTC:501"] is None  # the canceled order's field is deleted
    # The header does not grow with the book: a few hundred bytes for 999 orders.
    header = changes["mkt:BTC"]
    assert header is not None and len(header) < 1_000


def test_a_partial_fill_of_one_maker_rewrites_only_that_maker() -> None:
    venue = _deep_book()
    venue.sell(BOB, "99000", "0.004", tif="Ioc")  # 0.004 of the first bid at 99,000
    changes = venue.core.take_changes()
    assert sorted(changes) == ["ctx:BTC", "l2:BTC", "mkt:BTC", "o:BTC:1"]
    assert venue.engine().book.orders[1].sz == sz("0.006")
    record = msgspec.msgpack.decode(changes["o:BTC:1"] or b"")
    assert (record["oid"], record["sz"]) == (1, sz("0.006"))


def test_a_batch_persists_only_the_orders_it_touched() -> None:
    venue = _deep_book()
    venue.sell(BOB, "99000", "0.025", tif="Ioc")  # takes 1 and 2 whole, 0.005 of 3
    venue.modify(ALICE, 10, "buy", "99000", "0.005")  # shrinks in place
    venue.cancel(CAROL, 9)
    changes = venue.core.take_changes()
    orders = {key: value for key, value in changes.items() if key.startswith("o:")}
    assert sorted(orders) == ["o:BTC:1", "o:BTC:10", "o:BTC:2", "o:BTC:3", "o:BTC:9"]
    assert [key for key, value in orders.items() if value is None] == [
        "o:BTC:1",
        "o:BTC:2",
        "o:BTC:9",
    ]


def test_triggers_and_pending_children_get_fields_of_their_own() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.driver.commit()
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    parent = venue.buy(ALICE, "99000", "0.1", children=(stop,))
    assert set(venue.core.take_changes()) == {
        "mkt:BTC",
        "ctx:BTC",
        "l2:BTC",
        f"o:BTC:{parent.oid}",
        f"p:BTC:{parent.oid}",
    }
    venue.sell(BOB, "99000", "0.1")  # the parent fills: its child becomes a trigger
    changes = venue.core.take_changes()
    assert changes[f"o:BTC:{parent.oid}"] is None
    assert changes[f"p:BTC:{parent.oid}"] is None
    assert changes[f"t:BTC:{stop.oid}"] is not None
    venue.cancel(ALICE, stop.oid)
    assert venue.core.take_changes()[f"t:BTC:{stop.oid}"] is None


def _old_layout(persisted: dict[str, bytes], core: MatcherCore) -> dict[str, bytes]:
    """The same state as the matcher wrote it before: one ``book:`` field per market with
    the whole snapshot, its orders in priority order and without sequence numbers."""
    old = {
        key: value
        for key, value in persisted.items()
        if not key.startswith(("mkt:", "o:", "t:", "p:"))
    }
    for market, engine in core.engines.items():
        snap: dict[str, Any] = msgspec.to_builtins(engine.snapshot())
        del snap["order_seq"]
        for order in snap["orders"]:
            del order["seq"]
        old["book:" + market] = msgspec.msgpack.encode(snap)
    return old


def _busy_book() -> tuple[Venue, dict[str, int]]:
    """Queues whose order differs from the order ids (a modify sent one to the back), a
    partial fill, a trigger and a pending TP/SL group, in two markets."""
    venue = Venue()
    venue.tick("100000")
    oids = {
        "first": venue.buy(ALICE, "99000", "0.1").oid,
        "second": venue.buy(CAROL, "99000", "0.2").oid,
        "third": venue.buy(DAVE, "99000", "0.3").oid,
    }
    venue.modify(ALICE, oids["first"], "buy", "99000", "0.15")  # larger: to the back
    venue.sell(BOB, "99000", "0.05", tif="Ioc")  # 0.05 of the second
    stop = venue.child("sell", "0.1", trigger="95000", tpsl="sl")
    oids["parent"] = venue.buy(DAVE, "98000", "0.1", children=(stop,)).oid
    oids["child"] = stop.oid
    venue.buy(CAROL, "3400", "1", market="ETH")
    venue.trade(ALICE, BOB, "100000", "0.01")  # a position, so a stop can rest
    oids["stop"] = venue.trigger(ALICE, "sell", "0.01", trigger="90000", tpsl="sl").oid
    venue.driver.commit()
    return venue, oids


def _mirror(venue: Venue, other: Driver, action: Callable[[], object]) -> list[Output]:
    """Run ``action`` on the venue (which never stops) and send the same inputs to
    ``other``: both must emit exactly the same. Returns the venue's outputs."""
    sent, logged = len(venue.inputs), len(venue.log)
    action()
    expected = venue.log[logged:]
    got = [out for message in venue.inputs[sent:] for out in other.send(message)]
    assert comparable(got) == comparable(expected)
    return expected


def test_a_matcher_restarts_from_the_old_layout_and_converts_it() -> None:
    venue, oids = _busy_book()
    old = _old_layout(venue.driver.persisted, venue.core)
    assert {"book:BTC", "book:ETH"} <= set(old)
    assert not any(key.startswith(("mkt:", "o:", "t:", "p:")) for key in old)

    restarted = Driver(MatcherCore(MARKETS, 0), venue.driver.ctx.input_topic)
    restarted.core.restore(old)
    restarted.persisted, restarted.offset = dict(old), venue.driver.offset
    engine = restarted.core.engines["BTC"]
    assert [(o.oid, o.sz) for o in engine.book.resting()] == [
        (oids["second"], sz("0.15")),
        (oids["third"], sz("0.3")),
        (oids["first"], sz("0.15")),
        (oids["parent"], sz("0.1")),
    ]
    assert list(engine.triggers) == [oids["stop"]]
    assert list(engine.pending) == [oids["parent"]]

    # The market's first write converts it: the old field goes, the pieces come.
    oids["late"] = venue.next_oid
    _mirror(venue, restarted, lambda: venue.buy(CAROL, "97000", "0.1"))
    restarted.commit()
    keys = set(restarted.persisted)
    assert "book:BTC" not in keys and "mkt:BTC" in keys
    assert {f"o:BTC:{oids[n]}" for n in ("first", "second", "third", "parent")} <= keys
    assert {f"p:BTC:{oids['parent']}", f"t:BTC:{oids['stop']}"} <= keys
    assert "book:ETH" in keys and "mkt:ETH" not in keys  # untouched: still the old layout

    # Restarted again from the mixed layout, it matches exactly as the one that never
    # stopped: the sweep takes the 99,000 queue in time priority, then the parent.
    again = restarted.restarted(lambda p: MatcherCore(MARKETS, p))
    swept = _mirror(venue, again, lambda: venue.sell(BOB, "97000", "0.8", tif="Ioc"))
    makers = [o.message for o in swept if isinstance(o.message, FillLeg)]
    assert [(leg.oid, leg.sz) for leg in makers if leg.is_maker] == [
        (oids["second"], sz("0.15")),
        (oids["third"], sz("0.3")),
        (oids["first"], sz("0.15")),
        (oids["parent"], sz("0.1")),
        (oids["late"], sz("0.1")),
    ]
    _mirror(venue, again, lambda: venue.buy(CAROL, "3300", "1", market="ETH"))
    _mirror(venue, again, lambda: venue.tick("94000"))  # both stops fire
    again.commit()
    venue.driver.commit()
    assert "book:ETH" not in again.persisted and "mkt:ETH" in again.persisted
    assert again.core.engines["BTC"].snapshot() == _snapshot(venue, "BTC", again)


def _snapshot(venue: Venue, market: str, again: Driver) -> object:
    """The never-stopped engine's snapshot with the restarted one's sequence numbers
    (renumbered in priority order by the conversion; the order they give is the same)."""
    snap = venue.engine(market).snapshot()
    theirs = {o.oid: o.seq for o in again.core.engines[market].book.resting()}
    for record in snap.orders:
        record.seq = theirs[record.oid]
    snap.order_seq = again.core.engines[market].book.next_seq
    return snap


def test_state_persisted_in_pieces_restores_the_same_engine() -> None:
    venue, _ = _busy_book()
    restarted = venue.driver.restarted(lambda p: MatcherCore(MARKETS, p))
    for market in ("BTC", "ETH"):
        assert restarted.core.engines[market].snapshot() == venue.engine(market).snapshot()
    _mirror(venue, restarted, lambda: venue.sell(BOB, "97000", "0.8", tif="Ioc"))
