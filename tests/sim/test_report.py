"""The report's numbers from hand-made logs and end state: volume is the sum of the
trades, bad debt is counted once per case, conservation holds to the micro-dollar and
a single micro-dollar off is reported as broken; the charts are PNG files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from libs.common.markets import load_markets
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
    SourceQuote,
    Trade,
)
from libs.common.state import INSURANCE_FUND_ACCOUNT, AccountState, PositionState
from services.risk.ledger import VenueLedger
from sim.collect import EndState, Record, RiskPartition
from sim.report import CHARTS, FundSample, RunData, markdown, summarize, write_report

MARKETS = load_markets()
T0 = 1_767_225_600_000
ALICE, BOB = "0x" + "a" * 40, "0x" + "b" * 40
PNG = b"\x89PNG\r\n\x1a\n"


def rec(topic: str, value: object, offset: int = 0) -> Record:
    return Record(topic, 0, offset, value)


def deposit(who: str, usd: int) -> Record:
    return rec(
        "account.events",
        BalanceUpdate(ts=T0, account=who, collateral=usd, delta=usd, reason="deposit"),
    )


def kept(status: str) -> tuple[SourceQuote, ...]:
    """OKX always counts; Binance only while the index is valid."""
    okx = SourceQuote(source="okx", px=1, weight=2, age_ms=0)
    binance = SourceQuote(source="binance", px=1, weight=3, age_ms=0)
    return (binance, okx) if status == "valid" else (okx,)


def run_data(alice_collateral: int = 10_000_000_000) -> RunData:
    # Alice bought 0.1 BTC from Bob at 100000 and 0.05 at 99000 (px in ticks of 0.1
    # USDC, sz in lots of 1e-5 BTC): volume 10000 + 4950 = 14950 USDC
    trades = [
        Trade(
            ts=T0 + 1000,
            market="BTC",
            px=1_000_000,
            sz=10_000,
            taker_is_buy=True,
            buyer=ALICE,
            seller=BOB,
            tid=1,
        ),
        Trade(
            ts=T0 + 2000,
            market="BTC",
            px=990_000,
            sz=5_000,
            taker_is_buy=True,
            buyer=ALICE,
            seller=BOB,
            tid=2,
        ),
    ]
    fills = [
        AccountFill(
            ts=t.ts,
            account=who,
            market="BTC",
            oid=1,
            is_buy=who == ALICE,
            px=t.px,
            sz=t.sz,
            fee=0,
            is_maker=who == BOB,
            tid=t.tid,
            closed_pnl=0,
            start_position=0,
        )
        for t in trades
        for who in (ALICE, BOB)
    ]
    # at the end both hold 0.15 BTC opposite at a mark of 99000: cost 14950, value 14850
    alice = AccountState(
        address=ALICE,
        collateral=alice_collateral,
        positions={"BTC": PositionState(market="BTC", szi=15_000, entry_ntl=14_950_000_000)},
    )
    bob = AccountState(
        address=BOB,
        collateral=10_000_000_000,
        positions={"BTC": PositionState(market="BTC", szi=-15_000, entry_ntl=14_950_000_000)},
    )
    fund = AccountState(address=INSURANCE_FUND_ACCOUNT, collateral=1_000_000_000)
    parts = [
        RiskPartition(
            0,
            {ALICE: alice, INSURANCE_FUND_ACCOUNT: fund},
            {"BTC": 990_000},
            VenueLedger(fees=2_500_000),
        ),
        RiskPartition(1, {BOB: bob}, {"BTC": 990_000}, VenueLedger(fees=-500_000)),
    ]
    notices = [  # broadcast to two partitions: counted once per case and kind
        BadDebtNotice(ts=T0 + 3000, account=ALICE, case_id="c1", open=True, usd=700_000),
        BadDebtNotice(ts=T0 + 3000, account=ALICE, case_id="c1", open=True, usd=700_000),
        BadDebtNotice(ts=T0 + 4000, account=ALICE, case_id="c1", open=False, usd=0),
        BadDebtNotice(ts=T0 + 4000, account=ALICE, case_id="c1", open=False, usd=0),
    ]
    steps = [
        LiquidationStep(ts=T0 + 3000 + i, account=ALICE, stage=stage, detail="", case_id="c1")
        for i, stage in enumerate(("triggered", "cancel", "book", "book", "insurance", "closed"))
    ]
    return RunData(
        name="unit",
        seed=1,
        started_ms=T0,
        ended_ms=T0 + 5000,
        markets=MARKETS,
        market_events=[rec("market.events", t) for t in trades]
        + [
            rec(
                "market.events",
                MarkPrice(ts=T0 + 2000, market="BTC", mark_px=990_000, index_px=990_000),
            ),
            rec(
                "market.events",
                FundingRate(
                    ts=T0 + 2000,
                    market="BTC",
                    rate_ppb=3000,
                    premium_ppb=2000,
                    mark_px=990_000,
                    index_px=990_000,
                    cum_index=1,
                ),
            ),
        ],
        account_events=[rec("account.events", f) for f in fills]
        + [
            deposit(ALICE, 10_000_000_000),
            deposit(BOB, 10_000_000_000),
            deposit(INSURANCE_FUND_ACCOUNT, 1_000_000_000),
        ]
        + [
            rec(
                "account.events",
                FundingPayment(ts=T0, account=ALICE, market="BTC", szi=1, rate_ppb=1, usd=-300),
            ),
            rec(
                "account.events",
                FundingPayment(ts=T0, account=BOB, market="BTC", szi=-1, rate_ppb=1, usd=300),
            ),
        ],
        oracle_prices=[
            rec(
                "oracle.prices",
                OraclePrice(ts=T0 + i * 1000, market="BTC", px=px, status=st, sources=kept(st)),
            )
            for i, (px, st) in enumerate(
                [
                    (1_000_000, "valid"),
                    (1_010_000, "valid"),
                    (1_010_000, "stale"),
                    (990_000, "valid"),
                ]
            )
        ],
        audit=[rec("liquidation.audit", s) for s in steps],
        risk_in=[rec("risk.in", n) for n in notices],
        liquidations=[
            rec(
                "liquidations",
                InsuranceAnswer(
                    ts=T0, account=ALICE, usd=700_000, granted=True, balance=0, paid=700_000
                ),
            )
        ],
        end=EndState(parts, open_cases=0),
        fund_samples=[FundSample(T0, 1_000_000_000, 0), FundSample(T0 + 5000, 1_000_000_000, 0)],
        order_statuses=Counter({"filled": 2, "resting": 3}),
        agents={ALICE: "noise-0", BOB: "market_maker-0"},
    )


def test_summary_numbers() -> None:
    s = summarize(run_data())
    assert s["trades"] == 2
    assert s["volume"] == "14950"
    assert s["volume_micro"] == 14_950_000_000
    # the index was 100000 before the first trade (0 bps away) and 101000 before the
    # second, at 99000 (198.02 bps away): 99.0 on average
    assert s["markets"]["BTC"]["mean_distance_bps"] == "99.0"
    assert s["fill_notional_micro"] == 2 * s["volume_micro"]  # a maker and a taker leg each
    assert s["prices"]["BTC"] == {
        "first": "100000",
        "low": "99000",
        "high": "101000",
        "last": "99000",
        "not_valid_s": "1.0",  # stale from 2 s to 3 s
    }
    assert s["sources_kept"] == {"BTC": {"records": 4, "binance": 3, "okx": 4}}
    assert s["liquidations"] == {
        "cases": 1,
        "accounts": 1,
        "steps_by_stage": {"triggered": 1, "cancel": 1, "book": 2, "insurance": 1, "closed": 1},
    }
    assert s["bad_debt"] == {
        "opened": "0.7",
        "insurance_paid": "0.7",
        "absorbed_by_vault_or_adl": "0",
        "left_unabsorbed": "0",
    }
    assert s["funding"] == {
        "payments": 2,
        "paid": "0.0003",
        "received": "0.0003",
        "settlements": 1,
        "max_rate_ppb": 3000,
        "min_rate_ppb": 3000,
    }
    assert s["deposits"] == "21000"


def test_conservation_is_exact() -> None:
    # Alice 10000 - 100 (unrealized at 99000) + Bob 10000 + 100 + the fund 1000
    # + ledgers 2.5 - 0.5 = 21002: deposits are 21000, so Alice's collateral must be 2 less
    ok = summarize(run_data(alice_collateral=9_998_000_000))["invariants"]["conservation"]
    assert ok["ok"] and ok["difference_micro"] == 0
    assert ok["accounts_value"] == "20998" and ok["venue_ledgers"] == "2"
    off = summarize(run_data(alice_collateral=9_998_000_001))["invariants"]["conservation"]
    assert not off["ok"] and off["difference_micro"] == 1


def test_negative_equity_and_unabsorbed_bad_debt_are_reported() -> None:
    data = run_data(alice_collateral=-1_000_000)  # below zero with a long position open
    data.risk_in.append(
        rec("risk.in", BadDebtNotice(ts=T0, account=ALICE, case_id="c2", open=False, usd=5_000_000))
    )
    checks = summarize(data)["invariants"]
    assert checks["no_negative_equity_unhandled"]["below_zero"] == [ALICE]
    assert not checks["no_negative_equity_unhandled"]["ok"]
    assert checks["bad_debt_absorbed"]["left_unabsorbed"] == "5"
    assert not checks["bad_debt_absorbed"]["ok"]


def test_report_files(tmp_path: Path) -> None:
    summary = write_report(run_data(alice_collateral=9_998_000_000), tmp_path)
    for name in CHARTS:
        content = (tmp_path / name).read_bytes()
        assert content.startswith(PNG) and len(content) > 5000, name
    text = (tmp_path / "report.md").read_text()
    assert text == markdown(summary)
    assert "| BTC | 2 | 14950 | 99.0 |" in text
    assert "Sources counted in BTC's 4 index records: binance 3, okx 4." in text
    assert "| conservation | yes |" in text and "difference_micro 0" in text
    assert (tmp_path / "summary.json").exists()


def test_an_adl_close_audited_to_both_accounts_counts_once() -> None:
    data = run_data()
    carol = "0x" + "c" * 40
    for to in (ALICE, carol):
        step = LiquidationStep(
            ts=T0 + 3500, account=to, stage="adl", detail="", case_id="c1", counterparty=carol
        )
        data.audit.append(rec("liquidation.audit", step))
    s = summarize(data)
    assert s["adl"] == {"events": 1, "accounts": [carol]}
    assert s["liquidations"]["steps_by_stage"]["adl"] == 2  # the audit records themselves
