"""The risk core alone: revaluing every position on a mark tick, and pre-trade checks.

    python -m bench.risk [--quick] [--accounts N] [--ticks N] [--orders N]
    python -m bench.risk --resting-only [--resting 10,1000,10000]

Builds one partition's state with N accounts (100,000; 20,000 with ``--quick``), every
one long or short BTC, half of them in ETH too and a quarter in SOL, about 1% of them
isolated and a few thin enough to hit a margin call or a liquidation as prices move.
The state is loaded the way a restarted service loads it (``restore`` from the encoded
entries, which rebuilds the exposure index). Then:

- mark ticks: ``MarkUpdate`` records for each market in turn, each moving the price by
  up to 0.5%, applied through ``RiskCore.apply`` with outputs built (margin calls,
  liquidation triggers, margin cancels): the whole decision, not just the arithmetic;
- a crash tick: BTC drops 8% at once, so that thousands of accounts need a decision;
- pre-trade checks: ``PlaceOrder`` records for random accounts (limit orders near the
  mark, some too large for the account's margin), each checked, held and forwarded.

Both margin modes are measured on the same accounts: first every account in cross
margin, then every account in portfolio margin (``libs.common.portfolio``: each tick
also recomputes the scenario grid of every portfolio account holding the market), and
the ratio of the tick times is the extra cost of portfolio margin on revaluation.

Then order events against one account with N resting orders in BTC (``--resting``,
10, 1,000 and 10,000): each round places an order (``PlaceOrder``: checked, held,
forwarded), has it rest (``OrderResult`` resting) and canceled (``OrderResult``
canceled), so N stays put; three events a round, each bringing the account's holds up
to date. Three cases: no position and bids (the e2e benchmark's account), a long
position and bids (the opening side), a long position and asks (the side that reduces
it, the older asks claiming the whole position). ``--resting-only`` runs just this.

Last lines: ``revalue_positions_per_sec=<cross>``, then
``portfolio_revalue_positions_per_sec=<portfolio>``, then
``order_events_per_sec_<case>_<N>=<events/s>`` per case and N.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from typing import NamedTuple

import msgspec

from libs.common import topics
from libs.common.markets import MarketRegistry, load_markets
from libs.common.runtime import Context
from libs.common.schemas import MarkUpdate, OrderResult, PlaceOrder
from libs.common.state import (
    ACCOUNT_PREFIX,
    MARK_PREFIX,
    AccountState,
    MarkState,
    OpenOrderState,
    PositionState,
    order_id,
)
from libs.common.topics import Topics
from services.risk.engine import RiskCore

PRICES = {"BTC": 1_000_000, "ETH": 350_000, "SOL": 1_500_000}  # 100000.0, 3500.00, 150.0000
LOT_RANGE = {"BTC": (100, 50_000), "ETH": (100, 50_000), "SOL": (100, 20_000)}


def build_entries(
    accounts: int, seed: int = 1, margin_mode: str = "cross"
) -> tuple[dict[str, bytes], int]:
    """Encoded state entries of a partition with ``accounts`` accounts in ``margin_mode``;
    and how many positions they hold."""
    rng = random.Random(seed)
    encode = msgspec.msgpack.Encoder().encode
    entries: dict[str, bytes] = {}
    positions = 0
    for market, px in PRICES.items():
        entries[MARK_PREFIX + market] = encode(
            MarkState(market=market, mark_px=px, index_px=px, ts=1)
        )
    for n in range(accounts):
        address = f"0x{n:040x}"
        held = {}
        markets = ["BTC"] + [m for m, p in (("ETH", 0.5), ("SOL", 0.25)) if rng.random() < p]
        notional = 0
        for market in markets:
            low, high = LOT_RANGE[market]
            lots = rng.randint(low, high) * (1 if rng.random() < 0.5 else -1)
            entry = PRICES[market] + rng.randint(-2_000, 2_000)
            isolated = rng.random() < 0.01
            held[market] = PositionState(
                market=market,
                szi=lots,
                entry_ntl=abs(lots) * entry,
                leverage=rng.choice((5, 10, 20)),
                is_cross=not isolated,
                isolated_margin=abs(lots) * entry // 5 if isolated else 0,
            )
            notional += abs(lots) * PRICES[market]
        # most accounts are comfortably funded; about 2% run at 2-6% of their notional
        cushion = rng.uniform(0.02, 0.06) if rng.random() < 0.02 else rng.uniform(0.2, 1.0)
        acct = AccountState(
            address=address,
            collateral=int(notional * cushion),
            positions=held,
            margin_mode=margin_mode,
        )
        entries[ACCOUNT_PREFIX + address] = encode(acct)
        positions += len(held)
    return entries, positions


def bench_ticks(core: RiskCore, ticks: int, seed: int = 2) -> tuple[float, int, int, list[float]]:
    """Apply ``ticks`` rounds of one mark per market; returns (seconds, positions
    revalued, outputs, per-tick milliseconds of the BTC ticks)."""
    rng = random.Random(seed)
    ctx = Context(Topics(""), topics.RISK_IN, 0)
    prices = dict(PRICES)
    held = {m: core.exposures.markets[m].count for m in PRICES}
    elapsed = 0.0
    revalued = outputs = 0
    btc_ms: list[float] = []
    offset = 0
    for t in range(ticks):
        for market in PRICES:
            move = prices[market] * rng.randint(-5_000, 5_000) // 1_000_000
            prices[market] = max(1, prices[market] + move)
            msg = MarkUpdate(
                ts=10_000 + t, market=market, mark_px=prices[market], index_px=prices[market]
            )
            started = time.perf_counter()
            core.apply(msg, ctx.at(offset, live=True))
            took = time.perf_counter() - started
            offset += 1
            elapsed += took
            revalued += held[market]
            outputs += len(ctx.drain())
            if market == "BTC":
                btc_ms.append(took * 1000)
    return elapsed, revalued, outputs, btc_ms


def bench_crash(core: RiskCore, drop_ppm: int = 80_000) -> tuple[float, int, int]:
    """One BTC tick that drops the price by 8%: (seconds, accounts revalued, outputs)."""
    ctx = Context(Topics(""), topics.RISK_IN, 0)
    px = core.marks["BTC"].mark_px
    px -= px * drop_ppm // 1_000_000
    msg = MarkUpdate(ts=15_000, market="BTC", mark_px=px, index_px=px)
    started = time.perf_counter()
    core.apply(msg, ctx.at(900_000, live=True))
    took = time.perf_counter() - started
    return took, core.exposures.markets["BTC"].count, len(ctx.drain())


def bench_index(core: RiskCore, rounds: int = 20) -> list[float]:
    """The exposure index alone (no decisions, no outputs): milliseconds of each BTC
    reprice, alternating 0.1% up and down, sorted."""
    ex = core.exposures
    px = ex.marks["BTC"]
    took = []
    for n in range(rounds):
        started = time.perf_counter()
        ex.reprice("BTC", px + (px // 1000 if n % 2 == 0 else 0))
        took.append((time.perf_counter() - started) * 1000)
    ex.reprice("BTC", px)
    return sorted(took)


def bench_orders(core: RiskCore, orders: int, accounts: int, seed: int = 3) -> tuple[float, int]:
    """Pre-trade checks per second; returns (seconds, accepted)."""
    rng = random.Random(seed)
    ctx = Context(Topics(""), topics.RISK_IN, 0)
    flow = []
    for n in range(orders):
        market = rng.choice(("BTC", "ETH", "SOL"))
        px = core.marks[market].mark_px
        low, high = LOT_RANGE[market]
        flow.append(
            PlaceOrder(
                ts=20_000 + n,
                account=f"0x{rng.randrange(accounts):040x}",
                market=market,
                is_buy=rng.random() < 0.5,
                px=px + rng.randint(-500, 500),
                sz=rng.randint(low, high) * (1 if rng.random() < 0.9 else 200),
            )
        )
    accepted = 0
    started = time.perf_counter()
    for n, msg in enumerate(flow):
        core.apply(msg, ctx.at(1_000_000 + n, live=True))
        accepted += sum(1 for out in ctx.drain() if out.topic == topics.MATCHER_IN)
    return time.perf_counter() - started, accepted


RESTING_CASES = {  # name: (position in lots, whether the resting orders are bids)
    "flat_bids": (0, True),
    "long_bids": (100_000, True),
    "long_asks": (100_000, False),
}
RESTING_LOTS = 100  # 0.001 BTC, $100 an order


def resting_entries(orders: int, szi: int, is_buy: bool) -> dict[str, bytes]:
    """One funded account with ``orders`` resting BTC orders (holds as risk computes
    them) and a position of ``szi`` lots, as encoded state entries."""
    encode = msgspec.msgpack.Encoder().encode
    mark = PRICES["BTC"]
    address = f"0x{1:040x}"
    acct = AccountState(address=address, collateral=10_000_000 * 1_000_000)
    if szi:
        acct.positions["BTC"] = PositionState(
            market="BTC", szi=szi, entry_ntl=abs(szi) * mark, leverage=20
        )
    side = -1 if is_buy else 1
    for n in range(orders):
        px = mark + side * (1_000 + n % 1_000)
        acct.orders[order_id(n + 1, 0)] = OpenOrderState(
            oid=order_id(n + 1, 0),
            market="BTC",
            is_buy=is_buy,
            px=px,
            sz=RESTING_LOTS,
            orig_sz=RESTING_LOTS,
            hold=0,
            ts=1,
            hold_px=max(px, mark),
        )
    entries = {
        MARK_PREFIX + "BTC": encode(MarkState(market="BTC", mark_px=mark, index_px=mark, ts=1))
    }
    core = RiskCore(load_markets(), 0)
    core.restore({})
    core.accounts.put(address, acct)
    core._reprice(acct, core._specs["BTC"])  # the holds as risk keeps them
    entries[ACCOUNT_PREFIX + address] = encode(acct)
    return entries


def bench_resting(
    markets: MarketRegistry, orders: int, szi: int, is_buy: bool, rounds: int
) -> tuple[float, int]:
    """Rounds of place, rest, cancel against one account with ``orders`` resting orders;
    returns (seconds, events applied). A first round, not timed, is the first event
    after the restore, which recomputes the market's holds once (as after any restart)."""
    core = RiskCore(markets, 0)
    core.restore(resting_entries(orders, szi, is_buy))
    address = f"0x{1:040x}"
    ctx = Context(Topics(""), topics.RISK_IN, 0)
    mark = PRICES["BTC"]
    px = mark - 500 if is_buy else mark + 500
    held = len(core.accounts[address].orders)

    def one_round(n: int) -> None:
        offset = orders + 10 + 3 * n
        place = PlaceOrder(
            ts=10_000 + n, account=address, market="BTC", is_buy=is_buy, px=px, sz=RESTING_LOTS
        )
        core.apply(place, ctx.at(offset, live=True))
        oid = order_id(offset, 0)
        for status, resting in (("resting", RESTING_LOTS), ("canceled", 0)):
            offset += 1
            result = OrderResult(
                ts=10_000 + n,
                account=address,
                market="BTC",
                oid=oid,
                status=status,
                filled_sz=0,
                resting_sz=resting,
                px=px,
            )
            core.apply(result, ctx.at(offset, live=True))
        ctx.drain()

    one_round(0)
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for n in range(1, rounds + 1):
            one_round(n)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    if len(core.accounts[address].orders) != held:
        raise RuntimeError("an order of the benchmark was refused or left resting")
    return elapsed, 3 * rounds


def run_resting(markets: MarketRegistry, sizes: list[int]) -> dict[str, float]:
    """Order events per second, by case and number of resting orders."""
    rates = {}
    for case, (szi, is_buy) in RESTING_CASES.items():
        for orders in sizes:
            rounds = max(20, min(3_000, 3_000_000 // max(orders, 1) // 10))
            elapsed, events = bench_resting(markets, orders, szi, is_buy, rounds)
            rate = events / elapsed
            print(
                f"[holds] {case}, {orders:,} resting: {events:,} order events in "
                f"{elapsed * 1000:.0f} ms = {rate:,.0f}/s ({elapsed / events * 1e6:.0f} us each)"
            )
            rates[f"{case}_{orders}"] = rate
    return rates


class Measured(NamedTuple):
    restored_s: float
    ticks_s: float
    revalued: int
    outputs: int
    btc_ms: list[float]
    crash_s: float
    crashed: int
    crash_outputs: int
    check_s: float
    accepted: int
    index_ms: list[float]


def measure(
    markets: MarketRegistry, accounts: int, ticks: int, orders: int, margin_mode: str
) -> Measured:
    """Build, restore and run the ticks, the crash and the orders in one margin mode."""
    started = time.perf_counter()
    entries, positions = build_entries(accounts, margin_mode=margin_mode)
    built = time.perf_counter() - started
    core = RiskCore(markets, 0)
    started = time.perf_counter()
    core.restore(entries)
    restored = time.perf_counter() - started
    del entries
    print(
        f"[{margin_mode}] {accounts:,} accounts, {positions:,} positions: state built in "
        f"{built:.1f} s, restored with the exposure index in {restored:.2f} s"
    )
    gc.collect()
    gc.disable()
    try:
        elapsed, revalued, outputs, btc_ms = bench_ticks(core, ticks)
        crash_s, crashed, crash_outputs = bench_crash(core)
        check_s, accepted = bench_orders(core, orders, accounts)
        index_ms = bench_index(core)
    finally:
        gc.enable()
    btc_ms.sort()
    return Measured(
        restored,
        elapsed,
        revalued,
        outputs,
        btc_ms,
        crash_s,
        crashed,
        crash_outputs,
        check_s,
        accepted,
        index_ms,
    )


def report(margin_mode: str, m: Measured, ticks: int, orders: int) -> None:
    tag = f"[{margin_mode}]"
    print(
        f"{tag} mark ticks: {ticks * len(PRICES)} ticks, {m.revalued:,} positions revalued in "
        f"{m.ticks_s * 1000:.0f} ms, {m.outputs:,} outputs (margin calls, triggers, cancels)"
    )
    print(
        f"{tag} BTC tick ({m.crashed:,} accounts revalued): median "
        f"{m.btc_ms[len(m.btc_ms) // 2]:.1f} ms, worst {m.btc_ms[-1]:.1f} ms "
        f"(target: 100,000 accounts in 100 ms)"
    )
    print(
        f"{tag} crash tick (BTC -8%, {m.crashed:,} accounts): {m.crash_s * 1000:.0f} ms, "
        f"{m.crash_outputs:,} outputs"
    )
    print(
        f"{tag} index alone (BTC reprice, no decisions): median "
        f"{m.index_ms[len(m.index_ms) // 2]:.1f} ms, worst {m.index_ms[-1]:.1f} ms"
    )
    print(
        f"{tag} pre-trade checks: {orders:,} orders in {m.check_s:.2f} s = "
        f"{orders / m.check_s:,.0f}/s ({m.accepted:,} accepted)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 accounts, fewer ticks")
    parser.add_argument("--accounts", type=int, default=0)
    parser.add_argument("--ticks", type=int, default=0)
    parser.add_argument("--orders", type=int, default=0)
    parser.add_argument(
        "--resting", default="10,1000,10000", help="resting orders of the one-account case"
    )
    parser.add_argument("--resting-only", action="store_true", help="only the one-account case")
    args = parser.parse_args()
    sizes = [int(n) for n in args.resting.split(",") if n]
    if args.resting_only:
        for key, rate in run_resting(load_markets(), sizes).items():
            print(f"order_events_per_sec_{key}={rate:.0f}")
        return
    accounts = args.accounts or (20_000 if args.quick else 100_000)
    ticks = args.ticks or (20 if args.quick else 30)
    orders = args.orders or (20_000 if args.quick else 50_000)
    markets = load_markets()

    cross = measure(markets, accounts, ticks, orders, "cross")
    report("cross", cross, ticks, orders)
    portfolio = measure(markets, accounts, ticks, orders, "portfolio")
    report("portfolio", portfolio, ticks, orders)
    median_cross = cross.btc_ms[len(cross.btc_ms) // 2]
    median_pm = portfolio.btc_ms[len(portfolio.btc_ms) // 2]
    print(
        f"portfolio margin costs {portfolio.ticks_s / cross.ticks_s:.2f}x the cross "
        f"revaluation time over all ticks (BTC tick median {median_pm:.1f} ms vs "
        f"{median_cross:.1f} ms)"
    )
    print(f"pretrade_checks_per_sec={orders / cross.check_s:.0f}")
    print(f"revalue_positions_per_sec={cross.revalued / cross.ticks_s:.0f}")
    print(f"portfolio_revalue_positions_per_sec={portfolio.revalued / portfolio.ticks_s:.0f}")
    for key, rate in run_resting(markets, sizes).items():
        print(f"order_events_per_sec_{key}={rate:.0f}")


if __name__ == "__main__":
    main()
