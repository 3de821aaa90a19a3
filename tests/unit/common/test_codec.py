"""The wire codec: every message survives its topic's decoder; anything else is refused."""

from __future__ import annotations

import msgspec
import pytest

from libs.common import codec, topics
from libs.common.markets import MarketParams, load_markets
from libs.common.schemas import (
    AccountFill,
    ActionResult,
    AdlCandidate,
    AdlCandidates,
    AdlQuery,
    AssetTakeover,
    BadDebtNotice,
    BalanceUpdate,
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRequest,
    Checkpoint,
    ChildOrder,
    CollateralSale,
    ConfigureMarket,
    DeadLetter,
    Deposit,
    FeeTier,
    FillLeg,
    FundingPayment,
    FundingRate,
    FundingUpdate,
    IndexTick,
    InsuranceAnswer,
    InsuranceClaim,
    InsuranceCredit,
    Level,
    LiquidatedPosition,
    LiquidationReport,
    LiquidationStatus,
    LiquidationStep,
    LiquidationTrigger,
    MarginCall,
    MarketConfigured,
    MarketControl,
    MarketStatus,
    MarkPrice,
    MarkUpdate,
    Message,
    ModifyOrder,
    ModifyRequest,
    NewOrder,
    OperatorAudit,
    OracleOverride,
    OraclePrice,
    OrderIntent,
    OrderResult,
    OrderUpdate,
    PlaceOrder,
    PositionTransfer,
    ScheduleCancel,
    SetMarginMode,
    SourceQuote,
    StateProof,
    Trade,
    TransferIn,
    UpdateIsolatedMargin,
    UpdateLeverage,
    UsdTransfer,
    VaultDeposit,
    VaultMarketTerms,
    VaultPayout,
    VaultStatus,
    VaultTransfer,
    VaultUpdate,
    VaultWithdrawal,
    Withdraw,
)
from libs.common.state import BACKSTOP_VAULT_ACCOUNT

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20

# One realistic message of each type, with the topic it travels on.
SAMPLES: list[tuple[str, Message]] = [
    (topics.RISK_IN, Deposit(ts=1, account=ALICE, usd=10_000_000_000, req_id="r1")),
    (topics.RISK_IN, Withdraw(ts=2, account=ALICE, usd=1_500_000)),
    (
        topics.RISK_IN,
        PlaceOrder(
            ts=3,
            account=ALICE,
            market="BTC",
            is_buy=True,
            px=1_000_000,
            sz=10_000,
            tif="Alo",
            reduce_only=True,
            cloid="0x" + "00" * 15 + "01",
            req_id="r3",
        ),
    ),
    (topics.RISK_IN, CancelOrder(ts=4, account=ALICE, market="ETH", oid=4096)),
    (
        topics.RISK_IN,
        FillLeg(
            ts=5,
            account=BOB,
            market="BTC",
            oid=1024,
            is_buy=False,
            px=1_000_000,
            sz=10_000,
            is_maker=True,
            tid=7,
            order_closed=True,
        ),
    ),
    (
        topics.RISK_IN,
        OrderResult(
            ts=6,
            account=ALICE,
            market="SOL",
            oid=2048,
            status="iocCancelRejected",
            filled_sz=0,
            resting_sz=0,
            error="Order could not immediately match against any resting orders. asset=2",
        ),
    ),
    (topics.RISK_IN, MarkUpdate(ts=7, market="BTC", mark_px=999_990, index_px=1_000_000)),
    (
        topics.MATCHER_IN,
        NewOrder(
            ts=8, oid=3072, account=BOB, market="ETH", is_buy=False, px=350_000, sz=2, tif="Ioc"
        ),
    ),
    (topics.MATCHER_IN, CancelRequest(ts=9, oid=3072, account=BOB, market="ETH")),
    (topics.MATCHER_IN, IndexTick(ts=10, market="SOL", px=1_501_200)),
    (
        topics.MATCHER_IN,
        NewOrder(
            ts=10,
            oid=9,
            account=ALICE,
            market="BTC",
            is_buy=True,
            px=1_000_000,
            sz=10_000,
            grouping="normalTpsl",
            children=(
                ChildOrder(oid=10, is_buy=False, px=0, sz=10_000, trigger_px=900_000, tpsl="sl"),
            ),
        ),
    ),
    (
        topics.MATCHER_IN,
        ModifyRequest(ts=10, oid=9, account=ALICE, market="BTC", is_buy=True, px=999_000, sz=5_000),
    ),
    (topics.MATCHER_IN, CancelAll(ts=10, account=ALICE, status="liquidatedCanceled")),
    (topics.MATCHER_IN, ScheduleCancel(ts=10, account=ALICE, at=20)),
    (topics.RISK_IN, ScheduleCancel(ts=10, account=ALICE, at=20)),
    (
        topics.RISK_IN,
        PlaceOrder(
            ts=10,
            account=ALICE,
            market="BTC",
            is_buy=True,
            px=1_000_000,
            sz=10_000,
            grouping="normalTpsl",
            children=(OrderIntent(is_buy=False, px=0, sz=10_000, trigger_px=1_100_000, tpsl="tp"),),
        ),
    ),
    (
        topics.RISK_IN,
        ModifyOrder(ts=10, account=ALICE, market="BTC", oid=7, is_buy=True, px=990_000, sz=5),
    ),
    (
        topics.RISK_IN,
        UpdateLeverage(ts=10, account=ALICE, market="ETH", leverage=5, is_cross=False),
    ),
    (topics.RISK_IN, UpdateIsolatedMargin(ts=10, account=ALICE, market="ETH", usd=-2_000_000)),
    (topics.RISK_IN, SetMarginMode(ts=10, account=ALICE, mode="portfolio", req_id="r1")),
    (topics.RISK_IN, UsdTransfer(ts=10, account=ALICE, destination=BOB, usd=5_000_000)),
    (topics.RISK_IN, TransferIn(ts=10, account=BOB, source=ALICE, usd=5_000_000, transfer_id="x")),
    (topics.RISK_IN, FeeTier(ts=10, account=ALICE, taker_ppm=400, maker_ppm=-20)),
    (
        topics.RISK_IN,
        VaultTransfer(ts=10, account=ALICE, vault=BOB, is_deposit=True, usd=5_000_000),
    ),
    (
        topics.RISK_IN,
        VaultDeposit(ts=10, account=BOB, depositor=ALICE, usd=5_000_000, transfer_id="x"),
    ),
    (topics.RISK_IN, VaultWithdrawal(ts=10, account=BOB, depositor=ALICE, usd=5_000_000)),
    (
        topics.RISK_IN,
        VaultPayout(
            ts=10, account=ALICE, vault=BOB, usd=5_000_000, transfer_id="x", reason="vaultRefund"
        ),
    ),
    (
        topics.ACCOUNT_EVENTS,
        VaultUpdate(
            ts=10,
            account=ALICE,
            vault=BOB,
            usd=-6_000_000,
            shares=-5_000_000,
            lp_shares=0,
            locked_until=345_600_010,
            vault_equity=12_000_000,
            total_shares=10_000_000,
        ),
    ),
    (topics.ACCOUNT_EVENTS, ActionResult(ts=10, account=ALICE, action="updateLeverage")),
    (
        topics.OPERATOR_AUDIT,
        OperatorAudit(ts=10, operator="token", action="halt", detail='{"coin":"ETH"}'),
    ),
    (
        topics.ACCOUNT_EVENTS,
        FundingPayment(
            ts=10, account=ALICE, market="BTC", szi=10_000, rate_ppb=12_500, usd=-125_000
        ),
    ),
    (
        topics.ACCOUNT_EVENTS,
        MarginCall(ts=10, account=ALICE, level_pct=80, equity=10_000_000, maintenance=8_100_000),
    ),
    (topics.MATCHER_IN, MarketControl(ts=10, market="ETH", action="halt", reason="drill")),
    (
        topics.MATCHER_IN,
        ConfigureMarket(
            ts=10, market="BTC", params=MarketParams(min_order_usd=50_000_000), req_id="c1"
        ),
    ),
    (
        topics.MARKET_EVENTS,
        MarketConfigured(
            ts=10,
            market="BTC",
            spec=load_markets().by_name("BTC"),
            overrides=MarketParams(min_order_usd=50_000_000),
            req_id="c1",
        ),
    ),
    (
        topics.RISK_IN,
        MarketConfigured(ts=10, market="SOL", spec=load_markets().by_name("SOL"), error="no"),
    ),
    (topics.RISK_IN, BadDebtNotice(ts=10, account=ALICE, case_id="c1", open=True, usd=-5)),
    (
        topics.MATCHER_IN,
        PositionTransfer(
            ts=10,
            market="BTC",
            from_account=ALICE,
            to_account=BOB,
            from_is_long=True,
            sz=10_000,
            px=990_000,
            kind="backstop",
        ),
    ),
    (
        topics.RISK_IN,
        FundingUpdate(ts=11, market="BTC", rate_ppb=12_500, mark_px=1_000_000, cum_index=12),
    ),
    (
        topics.MARKET_EVENTS,
        BookDelta(ts=12, market="BTC", seq=3, bids=(Level(1_000_000, 10_000, 1),), asks=()),
    ),
    (
        topics.MARKET_EVENTS,
        BookSnapshot(ts=12, market="BTC", seq=3, bids=(Level(1_000_000, 10_000, 1),), asks=()),
    ),
    (
        topics.MARKET_EVENTS,
        FundingRate(
            ts=12,
            market="BTC",
            rate_ppb=12_500,
            premium_ppb=-3_000,
            mark_px=1_000_000,
            index_px=999_990,
            cum_index=12,
        ),
    ),
    (topics.MARKET_EVENTS, MarketStatus(ts=12, market="ETH", state="halted", reason="drill")),
    (
        topics.ACCOUNT_EVENTS,
        OrderUpdate(ts=11, account=ALICE, market="BTC", oid=None, status="perpMarginRejected"),
    ),
    (
        topics.ACCOUNT_EVENTS,
        AccountFill(
            ts=12,
            account=ALICE,
            market="BTC",
            oid=1024,
            is_buy=True,
            px=1_000_000,
            sz=10_000,
            fee=1_500_000,
            is_maker=True,
            tid=7,
            closed_pnl=-25_000_000,
            start_position=-20_000,
        ),
    ),
    (
        topics.ACCOUNT_EVENTS,
        BalanceUpdate(ts=13, account=ALICE, collateral=9_998_500_000, delta=-1, reason="withdraw"),
    ),
    (
        topics.MARKET_EVENTS,
        Trade(
            ts=14,
            market="BTC",
            px=1_000_000,
            sz=10_000,
            taker_is_buy=False,
            buyer=ALICE,
            seller=BOB,
            tid=7,
        ),
    ),
    (topics.MARKET_EVENTS, MarkPrice(ts=15, market="ETH", mark_px=350_020, index_px=350_000)),
    (
        topics.ORACLE_PRICES,
        OraclePrice(
            ts=16,
            market="BTC",
            px=1_000_000,
            status="valid",
            sources=(
                SourceQuote(source="binance", px=1_000_010, weight=3, age_ms=120),
                SourceQuote(source="okx", px=999_990, weight=2, age_ms=340),
            ),
        ),
    ),
    (
        topics.ORACLE_PRICES,
        OracleOverride(ts=16, market="BTC", action="freeze", operator="ops", reason="drill"),
    ),
    (
        topics.LIQUIDATIONS,
        LiquidationTrigger(ts=17, account=ALICE, equity=88_500_000, maintenance=94_900_000),
    ),
    (
        topics.LIQUIDATIONS,
        LiquidationStatus(
            ts=17,
            account=ALICE,
            equity=88_500_000,
            maintenance=94_900_000,
            collateral=598_500_000,
            positions=(
                LiquidatedPosition(
                    market="BTC",
                    szi=10_000,
                    entry_ntl=10_000_000_000,
                    mark_px=949_000,
                    maintenance=94_900_000,
                ),
            ),
            below=True,
            reason="trigger",
        ),
    ),
    (
        topics.LIQUIDATIONS,
        LiquidationReport(
            ts=17,
            account=ALICE,
            market="BTC",
            oid=(1 << 62) | 1024,
            status="filled",
            filled_sz=2_000,
        ),
    ),
    (
        topics.LIQUIDATIONS,
        InsuranceAnswer(
            ts=17, account=ALICE, usd=90_000_000, granted=True, balance=910_000_000, case_id="c"
        ),
    ),
    (
        topics.LIQUIDATIONS,
        AdlCandidates(
            ts=17,
            account=ALICE,
            market="BTC",
            partition=2,
            mark_px=940_000,
            candidates=(
                AdlCandidate(
                    account=BOB, szi=-80_000, entry_ntl=80_000_000_000, account_value=9_788_000_000
                ),
            ),
            case_id="c#1",
        ),
    ),
    (
        topics.LIQUIDATIONS,
        VaultStatus(
            ts=17,
            account=BACKSTOP_VAULT_ACCOUNT,
            equity=250_000_000_000,
            maintenance=1_900_000_000,
            notional=190_000_000_000,
            takeovers=(3, 0, 1, 0),
            terms=(VaultMarketTerms(market="BTC", maintenance_ppm=50_000, fee_ppm=0),),
        ),
    ),
    (
        topics.RISK_IN,
        InsuranceClaim(ts=17, account="0x" + "00" * 19 + "f1", beneficiary=ALICE, usd=90_000_000),
    ),
    (topics.RISK_IN, InsuranceCredit(ts=17, account=ALICE, usd=90_000_000, market="ETH")),
    (topics.RISK_IN, CollateralSale(ts=17, account=ALICE, usd=1_200_000, case_id="c#2")),
    (
        topics.RISK_IN,
        AssetTakeover(
            ts=17,
            account="0x" + "00" * 19 + "f2",
            seller=ALICE,
            asset="BTC",
            lots=1_300,
            usd=1_235_000,
            case_id="c#2",
        ),
    ),
    (topics.RISK_IN, AdlQuery(ts=17, account=ALICE, market="BTC", counterparty_is_long=False)),
    (
        topics.LIQUIDATION_AUDIT,
        LiquidationStep(
            ts=18,
            account=ALICE,
            stage="adl",
            detail="bob closes 0.8 BTC",
            market="BTC",
            case_id="liquidations/2/41",
            px=940_450,
            sz=80_000,
            equity=-90_000_000,
            maintenance=1_880_000_000,
            shortfall=90_000_000,
            counterparty=BOB,
        ),
    ),
    (
        topics.DEAD_LETTERS,
        DeadLetter(
            ts=19,
            topic="risk.in",
            partition=3,
            offset=41,
            error="Expected `object`",
            payload=b"\x00\xffgarbage",
        ),
    ),
    *((name, Checkpoint(ts=20, offset=1_234_567)) for name in topics.CHECKPOINTS.values()),
    (
        topics.STATE_PROOFS,
        StateProof(
            ts=21,
            service="risk",
            topic="risk.in",
            partition=2,
            offset=20_000,
            entries=1_234,
            sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ),
    ),
]


def _all_message_types() -> set[type[Message]]:
    found: set[type[Message]] = set()
    todo = list(Message.__subclasses__())
    while todo:
        kind = todo.pop()
        found.add(kind)
        todo.extend(kind.__subclasses__())
    return found


def test_the_samples_cover_every_message_type() -> None:
    assert {type(m) for _, m in SAMPLES} == _all_message_types()


@pytest.mark.parametrize(("topic", "message"), SAMPLES, ids=lambda v: type(v).__name__)
def test_every_message_round_trips_through_its_topics_decoder(topic: str, message: Message) -> None:
    decoded = codec.decoder(topic).decode(codec.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize(("topic", "message"), SAMPLES, ids=lambda v: type(v).__name__)
def test_a_message_on_the_wrong_topic_is_a_decode_error(topic: str, message: Message) -> None:
    raw = codec.encode(message)
    carriers = {t for t, m in SAMPLES if type(m) is type(message)}
    for other in codec.TOPIC_SCHEMAS:
        if other in carriers:
            continue
        with pytest.raises(codec.DecodeError):
            codec.decoder(other).decode(raw)


@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x93\x01\x02\x03", b"not msgpack at all"])
def test_garbage_is_a_decode_error(raw: bytes) -> None:
    for topic in codec.TOPIC_SCHEMAS:
        with pytest.raises(codec.DecodeError):
            codec.decoder(topic).decode(raw)


def test_the_wire_tag_carries_the_schema_version() -> None:
    raw = codec.encode(Deposit(ts=1, account=ALICE, usd=5))
    assert msgspec.msgpack.decode(raw)["type"] == "deposit.v1"


def test_a_newer_writer_with_an_extra_field_is_read_by_an_older_reader() -> None:
    raw = msgspec.msgpack.encode(
        {"type": "deposit.v1", "ts": 1, "account": ALICE, "usd": 5, "memo": "added in v1.1"}
    )
    assert codec.decoder(topics.RISK_IN).decode(raw) == Deposit(ts=1, account=ALICE, usd=5)


def test_an_older_writer_without_defaulted_fields_is_read_with_the_defaults() -> None:
    raw = msgspec.msgpack.encode(
        {
            "type": "place_order.v1",
            "ts": 1,
            "account": ALICE,
            "market": "BTC",
            "is_buy": True,
            "px": 1_000_000,
            "sz": 10_000,
        }
    )
    order = codec.decoder(topics.RISK_IN).decode(raw)
    assert (order.tif, order.reduce_only, order.cloid, order.req_id) == ("Gtc", False, None, "")


def test_a_missing_required_field_is_a_decode_error() -> None:
    raw = msgspec.msgpack.encode({"type": "deposit.v1", "ts": 1, "account": ALICE})
    with pytest.raises(codec.DecodeError, match="usd"):
        codec.decoder(topics.RISK_IN).decode(raw)


def test_an_unknown_time_in_force_is_a_decode_error() -> None:
    raw = msgspec.msgpack.encode(
        {
            "type": "new_order.v1",
            "ts": 1,
            "oid": 1,
            "account": ALICE,
            "market": "BTC",
            "is_buy": True,
            "px": 1,
            "sz": 1,
            "tif": "Fok",
        }
    )
    with pytest.raises(codec.DecodeError):
        codec.decoder(topics.MATCHER_IN).decode(raw)
