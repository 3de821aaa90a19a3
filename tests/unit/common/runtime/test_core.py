"""The core's context (deterministic ids, replay, broadcast) and change tracking."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import topics
from libs.common.runtime import ChangeTracked, Context
from libs.common.schemas import BalanceUpdate, MarkUpdate
from libs.common.topics import Topics, partition_for

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


def _balance(account: str, collateral: int) -> BalanceUpdate:
    return BalanceUpdate(ts=1, account=account, collateral=collateral, delta=0, reason="deposit")


# ------------------------------------------------------------------ Context


def test_output_ids_are_topic_partition_offset_and_index() -> None:
    ctx = Context(Topics("t1."), topics.RISK_IN, 2).at(7, live=True)
    ctx.emit(topics.ACCOUNT_EVENTS, ALICE, _balance(ALICE, 1))
    ctx.emit(topics.ACCOUNT_EVENTS, BOB, _balance(BOB, 2))
    first, second = ctx.drain()
    assert (first.id, second.id) == ("risk.in/2/7/0", "risk.in/2/7/1")
    assert ctx.source_id == "risk.in/2/7"
    ctx.at(8, live=True).emit(topics.ACCOUNT_EVENTS, ALICE, _balance(ALICE, 3))
    assert [o.id for o in ctx.drain()] == ["risk.in/2/8/0"]


def test_an_output_goes_to_the_deployed_topic_and_the_partition_owning_its_key() -> None:
    ctx = Context(Topics("t1."), topics.RISK_IN, 0).at(0, live=True)
    ctx.emit(topics.ACCOUNT_EVENTS, ALICE, _balance(ALICE, 1))
    (out,) = ctx.drain()
    assert out.topic == "t1.account.events"
    assert out.partition == partition_for(ALICE, 4)
    assert out.key == ALICE.encode()
    assert out.message == _balance(ALICE, 1)


def test_drain_hands_over_the_outputs_once() -> None:
    ctx = Context(Topics(""), topics.RISK_IN, 0).at(0, live=True)
    ctx.emit(topics.ACCOUNT_EVENTS, ALICE, _balance(ALICE, 1))
    assert len(ctx.drain()) == 1
    assert ctx.drain() == []


def test_a_replayed_record_emits_nothing_but_uses_up_the_same_ids() -> None:
    ctx = Context(Topics(""), topics.RISK_IN, 1).at(5, live=False)
    ctx.emit(topics.ACCOUNT_EVENTS, ALICE, _balance(ALICE, 1))
    ctx.broadcast(topics.RISK_IN, "BTC", MarkUpdate(ts=1, market="BTC", mark_px=1, index_px=1))
    assert ctx.drain() == []
    # five ids were used up in replay (one emit, four broadcast copies): going live now
    # continues where a live run of the same record would be
    ctx.live = True
    ctx.emit(topics.ACCOUNT_EVENTS, BOB, _balance(BOB, 2))
    assert [o.id for o in ctx.drain()] == ["risk.in/1/5/5"]


def test_broadcast_sends_one_copy_to_every_partition_with_its_own_id() -> None:
    ctx = Context(Topics(""), topics.MATCHER_IN, 3).at(11, live=True)
    mark = MarkUpdate(ts=1, market="BTC", mark_px=1_000_000, index_px=1_000_000)
    ctx.broadcast(topics.RISK_IN, "BTC", mark)
    outs = ctx.drain()
    assert [o.partition for o in outs] == [0, 1, 2, 3]
    assert [o.id for o in outs] == [f"matcher.in/3/11/{i}" for i in range(4)]
    assert all(o.message == mark and o.topic == "risk.in" for o in outs)


# ------------------------------------------------------------------ ChangeTracked


class Balance(msgspec.Struct, kw_only=True):
    owner: str
    usd: int = 0


def _tracked() -> ChangeTracked[Balance]:
    return ChangeTracked("b:", Balance)


def _decoded(raw: bytes | None) -> Balance:
    assert raw is not None
    return msgspec.msgpack.decode(raw, type=Balance)


def test_a_put_is_reported_once_encoded_under_its_prefix() -> None:
    tracked = _tracked()
    tracked.put(ALICE, Balance(owner=ALICE, usd=10))
    changes: dict[str, bytes | None] = {}
    tracked.take_changes(changes)
    assert list(changes) == ["b:" + ALICE]
    assert _decoded(changes["b:" + ALICE]).usd == 10
    again: dict[str, bytes | None] = {}
    tracked.take_changes(again)
    assert again == {}


def test_an_in_place_change_is_reported_after_touch() -> None:
    tracked = _tracked()
    tracked.put(ALICE, Balance(owner=ALICE, usd=10))
    tracked.take_changes({})
    tracked[ALICE].usd = 25
    tracked.touch(ALICE)
    changes: dict[str, bytes | None] = {}
    tracked.take_changes(changes)
    assert _decoded(changes["b:" + ALICE]).usd == 25


def test_a_delete_is_reported_as_none_and_deleting_nothing_reports_nothing() -> None:
    tracked = _tracked()
    tracked.put(ALICE, Balance(owner=ALICE))
    tracked.take_changes({})
    tracked.delete(ALICE)
    tracked.delete(BOB)
    changes: dict[str, bytes | None] = {}
    tracked.take_changes(changes)
    assert changes == {"b:" + ALICE: None}
    assert ALICE not in tracked


def test_a_value_put_and_deleted_before_a_flush_is_reported_deleted() -> None:
    tracked = _tracked()
    tracked.put(ALICE, Balance(owner=ALICE))
    tracked.delete(ALICE)
    changes: dict[str, bytes | None] = {}
    tracked.take_changes(changes)
    assert changes == {"b:" + ALICE: None}


def test_restore_reads_only_its_own_prefix_and_forgets_old_state() -> None:
    tracked = _tracked()
    tracked.put("stale", Balance(owner="stale"))
    enc = msgspec.msgpack.encode
    tracked.restore(
        {
            "b:" + BOB: enc(Balance(owner=BOB, usd=2)),
            "b:" + ALICE: enc(Balance(owner=ALICE, usd=1)),
            "m:BTC": b"not a balance",
        }
    )
    assert tracked.keys() == [ALICE, BOB]
    assert [b.usd for b in tracked.values()] == [1, 2]
    assert "stale" not in tracked
    changes: dict[str, bytes | None] = {}
    tracked.take_changes(changes)
    assert changes == {}


ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "add", "delete", "flush"]),
        st.sampled_from(["alice", "bob", "carol"]),
        st.integers(-1000, 1000),
    ),
    max_size=40,
)


@given(ops=ops)
@settings(max_examples=150, deadline=None)
def test_restoring_every_flushed_change_rebuilds_the_values(
    ops: list[tuple[str, str, int]],
) -> None:
    tracked = _tracked()
    store: dict[str, bytes] = {}

    def flush() -> None:
        changes: dict[str, bytes | None] = {}
        tracked.take_changes(changes)
        for key, raw in changes.items():
            if raw is None:
                store.pop(key, None)
            else:
                store[key] = raw

    for op, owner, amount in ops:
        if op == "put":
            tracked.put(owner, Balance(owner=owner, usd=amount))
        elif op == "add" and owner in tracked:
            tracked[owner].usd += amount
            tracked.touch(owner)
        elif op == "delete":
            tracked.delete(owner)
        elif op == "flush":
            flush()
    flush()
    rebuilt = _tracked()
    rebuilt.restore(store)
    assert {k: rebuilt[k] for k in rebuilt.keys()} == {k: tracked[k] for k in tracked.keys()}


def test_touching_a_missing_key_reports_a_delete() -> None:
    tracked = _tracked()
    tracked.touch(ALICE)
    changes: dict[str, bytes | None] = {}
    tracked.take_changes(changes)
    assert changes == {"b:" + ALICE: None}


def test_keys_iterate_in_sorted_order_whatever_the_insertion_order() -> None:
    tracked = _tracked()
    for owner in ["carol", "alice", "bob"]:
        tracked.put(owner, Balance(owner=owner))
    assert tracked.keys() == ["alice", "bob", "carol"]
    assert [b.owner for b in tracked.values()] == ["alice", "bob", "carol"]
    assert len(tracked) == 3
