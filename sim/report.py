"""The report of one run: the numbers a risk manager checks after a scenario (trades
and volume, liquidations by waterfall stage, bad debt and who absorbed it, insurance
fund and vault PnL, ADL, funding), three invariant checks, PNG charts and a Markdown
summary. ``summarize`` is pure (the logs and end state in, numbers out); ``write_report``
renders it. Money is exact micro-USDC integers throughout; only the charts use floats.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from libs.common.margin import summarize as summarize_account
from libs.common.markets import MarketRegistry
from libs.common.money import format_usd
from libs.common.schemas import (
    AccountFill,
    BadDebtNotice,
    BalanceUpdate,
    FundingPayment,
    FundingRate,
    InsuranceAnswer,
    LiquidationStep,
    MarkPrice,
    OraclePrice,
    Trade,
)
from libs.common.state import BACKSTOP_VAULT_ACCOUNT, INSURANCE_FUND_ACCOUNT
from sim.collect import EndState, Record

STAGES = ("triggered", "cancel", "book", "backstop", "insurance", "adl", "closed", "recovered")
CHARTS = ("prices.png", "funds.png", "liquidations.png")


@dataclass
class FundSample:
    """The insurance fund's and the vault's account value (micro-USDC) at ``ts`` (ms)."""

    ts: int
    insurance: int
    vault: int


@dataclass
class RunData:
    """Everything a run collected: its logs, samples, order counts and end state."""

    name: str
    seed: int
    started_ms: int
    ended_ms: int
    markets: MarketRegistry
    market_events: list[Record]
    account_events: list[Record]
    oracle_prices: list[Record]
    audit: list[Record]
    risk_in: list[Record]
    liquidations: list[Record]
    end: EndState
    fund_samples: list[FundSample] = field(default_factory=list)
    order_statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    agents: dict[str, str] = field(default_factory=dict)  # address -> agent name
    description: str = ""
    quiet: bool = True
    traded: list[str] = field(default_factory=list)  # the markets the agents trade

    def charted(self) -> list[str]:
        """The markets to chart: those traded, else those with an index."""
        seen = {p.market for p in _values(self.oracle_prices, OraclePrice)}
        return self.traded or sorted(seen)


def _values(records: list[Record], kind: type) -> list[Any]:
    return [r.value for r in records if isinstance(r.value, kind)]


def _usd(micro: int) -> str:
    return format_usd(micro)


def summarize(data: RunData) -> dict[str, Any]:
    """Every number of the report, as JSON-ready values (money as decimal strings of
    USDC, exact, and the raw micro-USDC integers where a check compares them)."""
    trades: list[Trade] = _values(data.market_events, Trade)
    fills: list[AccountFill] = _values(data.account_events, AccountFill)
    by_market: dict[str, dict[str, Any]] = {}
    for t in trades:
        row = by_market.setdefault(t.market, {"trades": 0, "volume_micro": 0, "size_lots": 0})
        row["trades"] += 1
        row["volume_micro"] += t.px * t.sz
        row["size_lots"] += t.sz
    volume = sum(r["volume_micro"] for r in by_market.values())
    fill_notional = sum(f.px * f.sz for f in fills)
    for market, row in by_market.items():
        row["volume"] = _usd(row["volume_micro"])
        row["mean_distance_bps"] = _mean_distance_bps(data, market, trades)

    steps: list[LiquidationStep] = _values(data.audit, LiquidationStep)
    stages = Counter(s.stage for s in steps)
    cases = sorted({s.case_id for s in steps if s.case_id and s.stage != "unwind"})
    # the liquidator audits each ADL close twice, to the case's account and to the
    # account deleveraged (whose copy names itself as the counterparty): count it once
    adl = [s for s in steps if s.stage == "adl" and s.account != s.counterparty]

    notices: dict[tuple[str, bool], BadDebtNotice] = {}
    for n in _values(data.risk_in, BadDebtNotice):
        notices.setdefault((n.case_id, n.open), n)  # broadcast: one copy per partition
    opened = sum(n.usd for (_, is_open), n in notices.items() if is_open)
    left = sum(n.usd for (_, is_open), n in notices.items() if not is_open)
    answers: list[InsuranceAnswer] = _values(data.liquidations, InsuranceAnswer)
    insurance_paid = sum(a.paid or (a.usd if a.granted else 0) for a in answers)

    settlements: list[FundingRate] = _values(data.market_events, FundingRate)
    rates = [r.rate_ppb for r in settlements]
    payments: list[FundingPayment] = _values(data.account_events, FundingPayment)
    funding_paid = -sum(p.usd for p in payments if p.usd < 0)
    funding_received = sum(p.usd for p in payments if p.usd > 0)

    balances: list[BalanceUpdate] = [
        b for b in _values(data.account_events, BalanceUpdate) if b.error is None
    ]
    deposits: dict[str, int] = {}  # account -> micro-USDC the faucet deposited
    for b in balances:
        if b.reason == "deposit" and not b.asset:
            deposits[b.account] = deposits.get(b.account, 0) + b.delta
    withdrawals = -sum(b.delta for b in balances if b.reason == "withdraw" and not b.asset)

    checks = _invariants(data, sum(deposits.values()) - withdrawals, opened, left)
    funds = _funds(data, deposits)
    prices = _price_ranges(data)
    return {
        "scenario": data.name,
        "description": data.description,
        "seed": data.seed,
        "duration_s": round((data.ended_ms - data.started_ms) / 1000, 1),
        "settled": data.quiet,
        "agents": len(data.agents),
        "trades": len(trades),
        "volume": _usd(volume),
        "volume_micro": volume,
        "fill_notional_micro": fill_notional,
        "markets": by_market,
        "prices": prices,
        "sources_kept": _sources_kept(data),
        "orders": dict(sorted(data.order_statuses.items())),
        "top_errors": dict(data.errors.most_common(5)),
        "liquidations": {
            "cases": len(cases),
            "accounts": len({s.account for s in steps if s.stage == "triggered"}),
            "steps_by_stage": {k: stages[k] for k in sorted(stages, key=_stage_order)},
        },
        "bad_debt": {
            "opened": _usd(opened),
            "insurance_paid": _usd(insurance_paid),
            "absorbed_by_vault_or_adl": _usd(max(0, opened - left - insurance_paid)),
            "left_unabsorbed": _usd(left),
        },
        "adl": {
            "events": len(adl),
            "accounts": sorted({s.counterparty for s in adl if s.counterparty}),
        },
        "funding": {
            "payments": len(payments),
            "paid": _usd(funding_paid),
            "received": _usd(funding_received),
            "settlements": len(settlements),
            # rates of one interval, in parts per billion (as the matcher settles them)
            "max_rate_ppb": max(rates, default=0),
            "min_rate_ppb": min(rates, default=0),
        },
        "funds": funds,
        "deposits": _usd(sum(deposits.values())),
        "withdrawals": _usd(withdrawals),
        "invariants": checks,
        "all_invariants_hold": all(c["ok"] for c in checks.values()),
    }


def _mean_distance_bps(data: RunData, market: str, trades: list[Trade]) -> str:
    """How far the market's trades went from the index just before them, on average,
    in basis points: what a taker paid for immediacy (slippage plus half the spread)."""
    index = sorted(
        (p.ts, p.px) for p in _values(data.oracle_prices, OraclePrice) if p.market == market
    )
    times = [ts for ts, _ in index]
    total, count = Decimal(0), 0
    for t in trades:
        at = bisect_left(times, t.ts) - 1
        if t.market != market or at < 0 or index[at][1] <= 0:
            continue
        total += Decimal(abs(t.px - index[at][1]) * 10_000) / index[at][1]
        count += 1
    return str((total / count).quantize(Decimal("0.1"))) if count else "0"


def _stage_order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _price_ranges(data: RunData) -> dict[str, dict[str, str]]:
    """First, lowest, highest and last valid index price per market."""
    seen: dict[str, list[int]] = {}  # market -> [first, low, high, last] in ticks
    charted = data.charted()
    for p in _values(data.oracle_prices, OraclePrice):
        if p.status != "valid" or p.px <= 0 or p.market not in charted:
            continue
        row = seen.setdefault(p.market, [p.px, p.px, p.px, p.px])
        row[1], row[2], row[3] = min(row[1], p.px), max(row[2], p.px), p.px
    out = {}
    for market, row in seen.items():
        spec = data.markets.by_name(market)
        names = ("first", "low", "high", "last")
        out[market] = {k: spec.format_price(v) for k, v in zip(names, row, strict=True)}
        out[market]["not_valid_s"] = str(_not_valid_ms(data, market) / 1000)
    return out


def _sources_kept(data: RunData) -> dict[str, dict[str, int]]:
    """Per traded market and source: in how many published index records the source
    counted (the oracle publishes only the sources it kept; ``records`` is the total)."""
    out: dict[str, dict[str, int]] = {}
    charted = data.charted()
    for p in _values(data.oracle_prices, OraclePrice):
        if p.market not in charted:
            continue
        row = out.setdefault(p.market, {"records": 0})
        row["records"] += 1
        for q in p.sources:
            row[q.source] = row.get(q.source, 0) + 1
    return out


def _not_valid_ms(data: RunData, market: str) -> int:
    """How long the index was in a state other than valid (until the next record)."""
    records = [p for p in _values(data.oracle_prices, OraclePrice) if p.market == market]
    records.sort(key=lambda p: p.ts)
    return sum(b.ts - a.ts for a, b in pairwise(records) if a.status != "valid")


def _funds(data: RunData, deposits: dict[str, int]) -> dict[str, dict[str, str]]:
    """Each fund's account value at the end and its PnL (the end value less what was
    deposited), and its share of the fees accrued in risk's ledgers, not yet moved to
    its account."""
    out = {}
    ledgers = data.end.partitions
    accrued = {
        "insurance_fund": sum(p.ledger.insurance - p.ledger.insurance_paid for p in ledgers),
        "vault": sum(p.ledger.vault - p.ledger.vault_paid for p in ledgers),
    }
    for name, address in (
        ("insurance_fund", INSURANCE_FUND_ACCOUNT),
        ("vault", BACKSTOP_VAULT_ACCOUNT),
    ):
        found = data.end.account(address)
        value = summarize_account(found[0], found[1], data.markets).account_value if found else 0
        deposited = deposits.get(address, 0)
        out[name] = {
            "deposited": _usd(deposited),
            "end": _usd(value),
            "pnl": _usd(value - deposited),
            "fees_accrued": _usd(accrued[name]),
        }
    return out


def _invariants(
    data: RunData, net_deposits: int, opened: int, left: int
) -> dict[str, dict[str, Any]]:
    """Conservation to the micro-dollar, nobody left below zero or below maintenance
    without a case, and every deficit absorbed."""
    values = 0
    below_zero: list[str] = []
    unhandled: list[str] = []
    mark_sets = {tuple(sorted(p.marks.items())) for p in data.end.partitions if p.accounts}
    for part in data.end.partitions:
        for address, acct in sorted(part.accounts.items()):
            s = summarize_account(acct, part.marks, data.markets)
            values += s.account_value
            has_position = any(p.szi for p in acct.positions.values())
            if has_position and s.cross_equity < 0:
                below_zero.append(address)
            if has_position and s.cross_equity < s.cross_maintenance and not acct.liquidating:
                unhandled.append(address)
    ledgers = sum(p.ledger.total for p in data.end.partitions)
    bad_debt = sum(p.ledger.bad_debt for p in data.end.partitions)
    return {
        "conservation": {
            "ok": values + ledgers == net_deposits and len(mark_sets) <= 1,
            "accounts_value": _usd(values),
            "venue_ledgers": _usd(ledgers),
            "deposits_less_withdrawals": _usd(net_deposits),
            "difference_micro": values + ledgers - net_deposits,
            "marks_agree": len(mark_sets) <= 1,
        },
        "no_negative_equity_unhandled": {
            "ok": not below_zero and not unhandled and data.end.open_cases == 0,
            "below_zero": below_zero,
            "below_maintenance_without_case": unhandled,
            "open_cases": data.end.open_cases,
        },
        "bad_debt_absorbed": {
            "ok": left == 0 and bad_debt == 0,
            "opened": _usd(opened),
            "left_unabsorbed": _usd(left),
            "ledger_bad_debt": _usd(bad_debt),
        },
    }


# ---------------------------------------------------------------- charts


def _seconds(ts: int, start: int) -> float:
    return (ts - start) / 1000


def chart_prices(data: RunData, path: Path) -> None:
    markets = data.charted() or ["BTC"]
    fig, axes = plt.subplots(len(markets), 1, figsize=(10, 3.8 * len(markets)), squeeze=False)
    start = data.started_ms
    for ax, market in zip(axes[:, 0], markets, strict=True):
        scale = 10 ** data.markets.by_name(market).px_decimals
        index = [p for p in _values(data.oracle_prices, OraclePrice) if p.market == market and p.px]
        marks = [m for m in _values(data.market_events, MarkPrice) if m.market == market]
        trades = [t for t in _values(data.market_events, Trade) if t.market == market]
        if index:
            xs = [_seconds(p.ts, start) for p in index]
            ys = [p.px / scale for p in index]
            ax.step(xs, ys, where="post", label="index (oracle)", color="black")
            held = [(x, y) for x, y, p in zip(xs, ys, index, strict=True) if p.status != "valid"]
            if held:
                ax.scatter(
                    *zip(*held, strict=True),
                    marker="x",
                    color="red",
                    s=14,
                    label="index not valid (held)",
                )
        if marks:
            ax.plot(
                [_seconds(m.ts, start) for m in marks],
                [m.mark_px / scale for m in marks],
                label="mark",
                color="tab:blue",
            )
        if trades:
            ax.scatter(
                [_seconds(t.ts, start) for t in trades],
                [t.px / scale for t in trades],
                s=6,
                color="tab:orange",
                label="last trade",
            )
        ax.set_title(f"{market}: index, mark and last price")
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("USDC")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def chart_funds(data: RunData, path: Path) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    xs = [_seconds(s.ts, data.started_ms) for s in data.fund_samples]
    series = (
        ("insurance fund", [s.insurance / 1e6 for s in data.fund_samples], "tab:green"),
        ("backstop vault equity", [s.vault / 1e6 for s in data.fund_samples], "tab:purple"),
    )
    for ax, (label, ys, color) in zip(axes, series, strict=True):
        ax.plot(xs, ys, color=color)
        ax.set_title(label)
        ax.set_ylabel("USDC")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes[-1].set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def chart_liquidations(data: RunData, path: Path) -> None:
    steps: list[LiquidationStep] = _values(data.audit, LiquidationStep)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    stages = sorted({s.stage for s in steps}, key=_stage_order)
    for row, stage in enumerate(stages):
        at = [_seconds(s.ts, data.started_ms) for s in steps if s.stage == stage]
        ax.scatter(at, [row] * len(at), label=stage, s=18)
    ax.set_yticks(range(len(stages)), stages)
    ax.set_title(f"Liquidation timeline: {len(steps)} steps by waterfall stage")
    ax.set_xlabel("seconds since start")
    if not steps:
        ax.text(0.5, 0.5, "no liquidations", ha="center", va="center", transform=ax.transAxes)
    duration = _seconds(data.ended_ms, data.started_ms)
    ax.set_xlim(0, max(duration, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- the summary


def markdown(summary: dict[str, Any]) -> str:
    s = summary
    inv = s["invariants"]
    lines = [
        f"# Simulation report: {s['scenario']} (seed {s['seed']})",
        "",
        s["description"],
        "",
        f"{s['agents']} agents over {s['duration_s']} s."
        + ("" if s["settled"] else " **The venue did not settle within a minute of the end.**"),
        "",
        "## Trading",
        "",
        "| market | trades | volume (USDC) | mean distance from the index (bps) |",
        "|---|---:|---:|---:|",
        *[
            f"| {m} | {r['trades']} | {r['volume']} | {r['mean_distance_bps']} |"
            for m, r in sorted(s["markets"].items())
        ],
        f"| **all** | **{s['trades']}** | **{s['volume']}** | |",
        "",
        "| market | first index | low | high | last index | index not valid (s) |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {m} | {r['first']} | {r['low']} | {r['high']} | {r['last']} | {r['not_valid_s']} |"
            for m, r in sorted(s["prices"].items())
        ],
        "",
        *_sources_table(s["sources_kept"]),
        "Order statuses: " + (", ".join(f"{k} {v}" for k, v in s["orders"].items()) or "none"),
        "",
        "## Liquidations",
        "",
        f"{s['liquidations']['cases']} cases ({s['liquidations']['accounts']} accounts); "
        "steps by waterfall stage:",
        "",
        "| stage | steps |",
        "|---|---:|",
        *(
            [f"| {k} | {v} |" for k, v in s["liquidations"]["steps_by_stage"].items()]
            or ["| (none) | 0 |"]
        ),
        "",
        f"ADL events: {s['adl']['events']} (accounts deleveraged: {len(s['adl']['accounts'])})",
        "",
        "| bad debt | USDC |",
        "|---|---:|",
        *[f"| {k.replace('_', ' ')} | {v} |" for k, v in s["bad_debt"].items()],
        "",
        "## Funds and funding",
        "",
        "| fund | deposited | end value | PnL | fee share accrued in the ledger |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {k.replace('_', ' ')} | {v['deposited']} | {v['end']} | {v['pnl']} "
            f"| {v['fees_accrued']} |"
            for k, v in s["funds"].items()
        ],
        "",
        f"Funding: {s['funding']['payments']} payments, {s['funding']['paid']} USDC paid, "
        f"{s['funding']['received']} USDC received, over {s['funding']['settlements']} "
        f"settlements at rates from {s['funding']['min_rate_ppb']} to "
        f"{s['funding']['max_rate_ppb']} ppb per interval.",
        "",
        "## Invariants",
        "",
        "| check | holds | numbers |",
        "|---|---|---|",
    ]
    for name, check in inv.items():
        numbers = ", ".join(f"{k} {v}" for k, v in check.items() if k != "ok")
        lines.append(
            f"| {name.replace('_', ' ')} | {'yes' if check['ok'] else '**NO**'} | {numbers} |"
        )
    lines += [
        "",
        "## Charts",
        "",
        "![index, mark and last price](prices.png)",
        "",
        "![insurance fund and vault equity](funds.png)",
        "",
        "![liquidation timeline](liquidations.png)",
        "",
    ]
    return "\n".join(lines)


def _sources_table(kept: dict[str, dict[str, int]]) -> list[str]:
    """How often each source counted in the index, per market (outliers, silent or
    stale sources are left out)."""
    lines = []
    for market, row in sorted(kept.items()):
        names = sorted(k for k in row if k != "records")
        lines += [
            f"Sources counted in {market}'s {row['records']} index records: "
            + ", ".join(f"{n} {row[n]}" for n in names)
            + ".",
            "",
        ]
    return lines


def write_report(data: RunData, out: Path) -> dict[str, Any]:
    """Writes report.md, summary.json and the charts into ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(data)
    chart_prices(data, out / "prices.png")
    chart_funds(data, out / "funds.png")
    chart_liquidations(data, out / "liquidations.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(markdown(summary))
    return summary


def console_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    s = summary
    liq = s["liquidations"]
    lines = [
        f"scenario {s['scenario']} (seed {s['seed']}), {s['agents']} agents, {s['duration_s']} s",
        f"trades {s['trades']}, volume {s['volume']} USDC",
        f"liquidation cases {liq['cases']}; steps "
        + (", ".join(f"{k} {v}" for k, v in liq["steps_by_stage"].items()) or "none"),
        f"bad debt opened {s['bad_debt']['opened']}, left {s['bad_debt']['left_unabsorbed']}; "
        f"ADL events {s['adl']['events']}",
        f"insurance fund PnL {s['funds']['insurance_fund']['pnl']}, "
        f"vault PnL {s['funds']['vault']['pnl']}",
        f"funding paid {s['funding']['paid']}, received {s['funding']['received']}",
    ]
    for name, check in s["invariants"].items():
        lines.append(f"invariant {name}: {'holds' if check['ok'] else 'BROKEN'}")
    return "\n".join(lines)
