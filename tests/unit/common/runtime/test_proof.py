"""State proofs: the canonical encoding, when a proof is due, and the mirror they hash."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from libs.common.runtime.proof import StateMirror, proof_due, state_digest


def test_digest_is_sha256_of_sorted_length_prefixed_entries() -> None:
    entries = {"m:BTC": b"\x01\x02", "a:0xab": b"xyz"}
    # by hand: "a:0xab" sorts before "m:BTC"; 4-byte big-endian lengths
    canonical = (
        b"\x00\x00\x00\x06a:0xab\x00\x00\x00\x03xyz"
        + b"\x00\x00\x00\x05m:BTC\x00\x00\x00\x02\x01\x02"
    )
    assert state_digest(entries) == hashlib.sha256(canonical).hexdigest()
    assert state_digest({}) == hashlib.sha256(b"").hexdigest()


def test_one_changed_byte_or_moved_boundary_changes_the_digest() -> None:
    entries = {"a:1": b"\x00\x10", "a:2": b"\x05"}
    assert state_digest({**entries, "a:2": b"\x06"}) != state_digest(entries)
    # the length prefixes keep "a:1"+"0" and "a:10"+"" apart
    assert state_digest({"a:1": b"0"}) != state_digest({"a:10": b""})


def test_a_proof_follows_the_first_record_across_each_multiple() -> None:
    interval = 25
    # contiguous records: after offset 24 (covers 25), 49 (covers 50)
    assert [o for o in range(60) if proof_due(o, o, interval)] == [24, 49]
    # offset 24 is a transaction marker: the record at 25 (covering 26) carries it
    assert proof_due(24, 25, interval)
    assert not proof_due(26, 26, interval)
    # a gap across two multiples gives one proof
    assert proof_due(20, 80, interval)
    assert not proof_due(0, 10, 0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a:1", "a:2", "m:BTC", "v:venue"]), st.none() | st.binary()),
        max_size=40,
    )
)
def test_the_mirror_of_changes_hashes_like_the_final_state(
    changes: list[tuple[str, bytes | None]],
) -> None:
    mirror = StateMirror({"a:1": b"start"})
    final: dict[str, bytes] = {"a:1": b"start"}
    for i in range(0, len(changes), 3):  # batches of three changes
        batch = dict(changes[i : i + 3])
        mirror.update(batch)
        for key, value in batch.items():
            if value is None:
                final.pop(key, None)
            else:
                final[key] = value
    assert mirror.entries == final
    assert mirror.digest() == state_digest(final)
