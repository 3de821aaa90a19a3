"""What a state proof costs: hashing a whole partition state, and keeping its mirror.

    python -m bench.proof [--quick]

Risk partitions of 1,000 to 100,000 accounts (each with two positions and three open
orders, encoded as risk persists them, about 600 bytes), hashed the way the runtime
proves them (``libs.common.runtime.proof.state_digest``: sort, length-prefix, SHA-256),
and the mirror's update per changed entry, which every batch pays while proofs are on.
The amortized cost per input record is the hash divided by the interval K (default
10,000). Last line: ``proof_ms_10k_accounts=<ms to prove 10,000 accounts>``.
"""

from __future__ import annotations

import argparse
import time

import msgspec

from libs.common.runtime.proof import StateMirror, state_digest
from libs.common.state import AccountState, OpenOrderState, PositionState


def risk_state(accounts: int) -> dict[str, bytes]:
    encode = msgspec.msgpack.encode
    entries: dict[str, bytes] = {}
    for i in range(accounts):
        address = f"0x{i:040x}"
        acct = AccountState(
            address=address,
            collateral=10_000_000_000 + i,
            positions={
                m: PositionState(market=m, szi=1_000 + i, entry_ntl=100_000_000 + i, leverage=20)
                for m in ("BTC", "ETH")
            },
            orders={
                oid: OpenOrderState(
                    oid=oid,
                    market="BTC",
                    is_buy=oid % 2 == 0,
                    px=1_000_000 + oid,
                    sz=100,
                    orig_sz=100,
                    hold=5_000_000,
                )
                for oid in range(i * 16, i * 16 + 3)
            },
        )
        entries[f"a:{address}"] = encode(acct)
    return entries


def timed(fn: object, repeat: int) -> float:
    """Best of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="up to 10,000 accounts")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    at_10k = 0.0
    for accounts in sizes:
        entries = risk_state(accounts)
        size = sum(len(k) + len(v) for k, v in entries.items())
        seconds = timed(lambda e=entries: state_digest(e), 3)
        mirror = StateMirror(entries)
        changes = dict(list(entries.items())[:1000])
        update = timed(lambda m=mirror, c=changes: m.update(c), 5) / len(changes)
        if accounts == 10_000:
            at_10k = seconds * 1000
        print(
            f"{accounts:>7} accounts ({size / 1e6:.1f} MB): proof {seconds * 1000:.1f} ms "
            f"({seconds / 10_000 * 1e6:.2f} us per input record at K=10,000); "
            f"mirror update {update * 1e9:.0f} ns per changed entry"
        )
    print(f"proof_ms_10k_accounts={at_10k:.2f}")


if __name__ == "__main__":
    main()
