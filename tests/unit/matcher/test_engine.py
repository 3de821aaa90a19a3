"""The matcher core as the runtime drives it: routing by market, inputs it ignores, and
state persisted and restored so that a restarted worker carries on exactly."""

from __future__ import annotations

import pytest

from libs.common.schemas import IndexTick
from services.matcher.engine import MatcherCore
from tests.unit.cores import comparable
from tests.unit.matcher.scenario import (
    ALICE,
    BOB,
    CAROL,
    MARKETS,
    T0,
    Venue,
)


def _restarted(venue: Venue) -> Venue:
    """The venue's persisted state loaded into a fresh core."""
    venue.driver.commit()
    clone = Venue(start=venue.now)
    clone.driver = venue.driver.restarted(lambda p: MatcherCore(MARKETS, p))
    clone.next_oid = venue.next_oid
    return clone


@pytest.mark.parametrize(("market", "ticks"), [("BTC", 0), ("BTC", -5), ("DOGE", 100)])
def test_a_meaningless_index_tick_is_ignored(market: str, ticks: int) -> None:
    venue = Venue()
    assert venue.send(IndexTick(ts=T0, market=market, px=ticks)).outputs == []
    if market in venue.core.engines:
        assert venue.engine().mark_px == 0


def test_markets_are_independent_books() -> None:
    venue = Venue()
    venue.sell(BOB, "3500", "1", market="ETH")
    sent = venue.buy(ALICE, "100000", "0.1")
    assert (sent.result.status, sent.fills) == ("resting", [])
    assert venue.resting("ETH") == [(1, "3500", "1")]
    assert venue.resting() == [(2, "100000", "0.1")]


def test_a_restored_book_keeps_every_orders_queue_position() -> None:
    venue = Venue()
    venue.sell(BOB, "100000", "0.1")
    venue.sell(CAROL, "100000", "0.1")
    venue.sell(BOB, "99999", "0.1")
    venue.buy(CAROL, "99000", "0.1")
    venue.buy(ALICE, "99000", "0.1")
    restored = _restarted(venue)
    assert restored.resting() == venue.resting()
    assert [oid for oid, _, _ in venue.resting()] == [4, 5, 3, 1, 2]
    after = restored.buy(ALICE, "100000", "0.25")
    assert comparable(after.outputs) == comparable(venue.buy(ALICE, "100000", "0.25").outputs)
    assert [f.oid for f in after.fills if f.is_maker] == [3, 1, 2]
    assert [t.tid for t in after.trades] == [1, 2, 3]


def test_a_restarted_matcher_remembers_triggers_children_positions_and_rules() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(ALICE, BOB, "100000", "0.2")  # Alice long 0.2
    stop = venue.trigger(ALICE, "sell", "0.2", trigger="95000", tpsl="sl", cloid="0x5")
    child = venue.child("sell", "0.1", trigger="90000", tpsl="sl")
    parent = venue.buy(CAROL, "99000", "0.1", children=(child,), cloid="0x6")
    venue.control("halt")
    restored = _restarted(venue)
    assert restored.engine().context() == venue.engine().context()
    for v in (venue, restored):
        assert v.position(ALICE) == "0.2"
        assert v.trigger_oids() == [stop.oid]
        assert list(v.engine().pending) == [parent.oid]
        assert v.engine().open_orders == {ALICE: 1, CAROL: 1}
        assert v.buy(BOB, "99000", "0.1").result.status == "rejected"  # still halted
        v.control("resume")
        dup = v.buy(CAROL, "98000", "0.1", cloid="0x6").result
        assert dup.error == "Duplicate client order id."
        assert v.cancel(ALICE, cloid="0x5").result.oid == stop.oid
    filled_original = venue.sell(BOB, "99000", "0.1")
    filled_restored = restored.sell(BOB, "99000", "0.1")
    assert comparable(filled_restored.outputs) == comparable(filled_original.outputs)
    assert (child.oid, "resting") in filled_restored.statuses


def test_the_persisted_state_of_a_restored_core_is_byte_for_byte_the_same() -> None:
    venue = Venue()
    venue.tick("100000")
    venue.trade(ALICE, BOB, "100000", "0.2")
    venue.buy(CAROL, "99000", "0.1")
    venue.trigger(ALICE, "sell", "0.2", trigger="95000", tpsl="sl")
    restored = _restarted(venue)
    venue.tick("100100")
    restored.tick("100100")
    assert venue.core.take_changes() == restored.core.take_changes()


def test_a_replay_rebuilds_the_same_state_without_emitting() -> None:
    live = Venue()
    live.tick("100000")
    live.sell(BOB, "100000", "0.2")
    live.buy(ALICE, "100000", "0.1")
    stop = live.trigger(ALICE, "sell", "0.1", trigger="99000", tpsl="sl")
    live.buy(CAROL, "98000", "0.5")
    live.schedule_cancel(CAROL, T0 + 60_000)
    fired = live.tick("98500")
    assert fired.statuses == [(stop.oid, "triggered"), (stop.oid, "filled")]
    replay = Venue()
    for record in live.inputs:
        assert replay.driver.send(record, live=False) == []
    assert live.core.take_changes() == replay.core.take_changes()
