"""Versioned schemas of every message on every topic.

Each message is a frozen msgspec struct, encoded as MessagePack with a ``type`` tag
that carries the schema version (``"place_order.v1"``). Compatible growth adds fields
with defaults under the same tag (old readers ignore them, new readers fill defaults);
an incompatible change gets a new tag (``.v2``) that consumers decode side by side.

Units: ``usd`` fields are micro-USDC; ``px`` fields are integer ticks of the market's
``10**-(6 - sz_decimals)`` USDC; ``sz`` fields are integer lots of ``10**-sz_decimals``
coins (see ``config/markets.toml``). Times are event times in epoch milliseconds.
A record's deterministic id travels in its ``id`` header (see ``libs.common.runtime``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from libs.common.markets import MarketParams, MarketSpec

Tif = Literal["Gtc", "Ioc", "Alo"]


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every bus message; ``ts`` is the event time that state machines read."""

    ts: int


# ---------------------------------------------------------------- risk.in


class Deposit(Message, frozen=True, tag="deposit.v1"):
    """USDC (``usd``), or with ``asset`` a collateral asset: ``amount`` lots of it."""

    account: str
    usd: int
    req_id: str = ""
    asset: str = ""
    amount: int = 0


class Withdraw(Message, frozen=True, tag="withdraw.v1"):
    """USDC (``usd``), or with ``asset`` a collateral asset: ``amount`` lots of it."""

    account: str
    usd: int
    req_id: str = ""
    asset: str = ""
    amount: int = 0


class OrderIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A TP/SL child of a normalTpsl order, as the user sent it (units checked)."""

    is_buy: bool
    px: int
    sz: int
    trigger_px: int
    tpsl: Literal["tp", "sl"]
    trigger_is_market: bool = True
    cloid: str | None = None


class PlaceOrder(Message, frozen=True, tag="place_order.v1"):
    """A user's order as validated by the gateway (units already checked).

    Kinds and groupings as in ``NewOrder``; ``children`` are the TP/SL orders of a
    normalTpsl group, placed by the matcher once this order fills. Risk gives the order
    and its children their oids and reserves the hold."""

    account: str
    market: str
    is_buy: bool
    px: int
    sz: int
    tif: Tif = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    req_id: str = ""
    kind: Literal["limit", "market", "trigger"] = "limit"
    slippage_ppm: int = 0
    trigger_px: int = 0
    tpsl: Literal["", "tp", "sl"] = ""
    trigger_is_market: bool = True
    grouping: Literal["na", "normalTpsl", "positionTpsl"] = "na"
    children: tuple[OrderIntent, ...] = ()


class CancelOrder(Message, frozen=True, tag="cancel_order.v1"):
    """Cancel by oid, or by client order id when ``cloid`` is set."""

    account: str
    market: str
    oid: int
    req_id: str = ""
    cloid: str | None = None


class ModifyOrder(Message, frozen=True, tag="modify_order.v1"):
    """Replace a resting order (found by oid, or by ``by_cloid``); risk re-checks margin."""

    account: str
    market: str
    oid: int
    is_buy: bool
    px: int
    sz: int
    tif: Tif = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    by_cloid: str | None = None
    req_id: str = ""


class UpdateLeverage(Message, frozen=True, tag="update_leverage.v1"):
    account: str
    market: str
    leverage: int
    is_cross: bool
    req_id: str = ""


class UpdateIsolatedMargin(Message, frozen=True, tag="update_isolated_margin.v1"):
    """Add (positive) or remove (negative) micro-USDC of an isolated position's margin."""

    account: str
    market: str
    usd: int
    req_id: str = ""


class SetMarginMode(Message, frozen=True, tag="set_margin_mode.v1"):
    """Switch the account's cross positions between ``cross`` and ``portfolio`` margin
    (our extension to the Hyperliquid API)."""

    account: str
    mode: str
    req_id: str = ""


class UsdTransfer(Message, frozen=True, tag="usd_transfer.v1"):
    """Move collateral to another account; risk debits here and credits the destination
    through its own risk partition in the same transaction (``TransferIn``)."""

    account: str
    destination: str
    usd: int
    req_id: str = ""


class TransferIn(Message, frozen=True, tag="transfer_in.v1"):
    account: str
    source: str
    usd: int
    transfer_id: str


class VaultTransfer(Message, frozen=True, tag="vault_transfer.v1"):
    """An LP's deposit into (``is_deposit``) or withdrawal from a vault, ``usd``
    micro-USDC, on the LP's own partition. A deposit leaves the LP's collateral here and
    reaches the vault's partition as ``VaultDeposit``; a withdrawal is asked of the
    vault's partition as ``VaultWithdrawal``. The answer comes from the vault's side."""

    account: str
    vault: str
    is_deposit: bool
    usd: int
    req_id: str = ""


class VaultDeposit(Message, frozen=True, tag="vault_deposit.v1"):
    """On the vault's partition (``account`` = the vault): ``usd`` already taken from
    ``depositor``'s collateral, to be priced into shares at NAV (or refunded)."""

    account: str
    depositor: str
    usd: int
    transfer_id: str
    req_id: str = ""


class VaultWithdrawal(Message, frozen=True, tag="vault_withdrawal.v1"):
    """On the vault's partition (``account`` = the vault): ``depositor`` asks for
    ``usd`` of its stake, paid by burning shares at NAV."""

    account: str
    depositor: str
    usd: int
    req_id: str = ""


class VaultPayout(Message, frozen=True, tag="vault_payout.v1"):
    """From the vault's partition to an LP's: ``usd`` to credit to its collateral, a
    withdrawal (``reason`` ``vaultWithdraw``) or a refused deposit's refund
    (``vaultRefund``)."""

    account: str
    vault: str
    usd: int
    transfer_id: str
    reason: Literal["vaultWithdraw", "vaultRefund"]


class FeeTier(Message, frozen=True, tag="fee_tier.v1"):
    """An account's fee rates (ppm; a negative maker rate is a rebate), from the fee job."""

    account: str
    taker_ppm: int
    maker_ppm: int


class FillLeg(Message, frozen=True, tag="fill_leg.v1"):
    """One side of a trade, from the matcher to the account's risk partition.
    ``counterparty`` names the other side of a backstop takeover or ADL close (empty for
    a trade)."""

    account: str
    market: str
    oid: int
    is_buy: bool
    px: int
    sz: int
    is_maker: bool
    tid: int
    order_closed: bool
    kind: str = "trade"
    counterparty: str = ""


class OrderResult(Message, frozen=True, tag="order_result.v1"):
    """The matcher's outcome for an order: resting, filled, or closed with a reason."""

    account: str
    market: str
    oid: int
    status: str
    filled_sz: int
    resting_sz: int
    filled_ntl: int = 0
    error: str | None = None
    req_id: str = ""
    cloid: str | None = None
    px: int = 0


class FundingUpdate(Message, frozen=True, tag="funding_update.v1"):
    """A funding settlement of a market, broadcast to every risk partition.

    ``cum_index`` is the market's cumulative funding index: the sum over settlements of
    ``rate_ppb * mark_px``. ``oracle_px`` is the oracle (index) price of the settlement;
    risk settles each position on it: ``szi * oracle_px * rate_ppb / 1e9`` micro-USDC,
    paid by longs when the rate is positive (0: risk uses the index price of the
    market's last mark update, which the matcher sends just before)."""

    market: str
    rate_ppb: int
    mark_px: int
    cum_index: int
    oracle_px: int = 0


class MarkUpdate(Message, frozen=True, tag="mark_update.v1"):
    """The mark price, broadcast by the market's matcher to every risk partition.

    ``oracle_status`` is the validity of the index behind it (risk does not liquidate
    while it is not ``valid``); ``open_interest`` is the market's open interest in lots
    (one side), which risk checks against the market's cap."""

    market: str
    mark_px: int
    index_px: int
    oracle_status: str = "valid"
    open_interest: int = 0


# ---------------------------------------------------------------- matcher.in


class ChildOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A take-profit or stop-loss placed when its parent order fills (normalTpsl)."""

    oid: int
    is_buy: bool
    px: int
    sz: int
    trigger_px: int
    tpsl: Literal["tp", "sl"]
    trigger_is_market: bool = True
    cloid: str | None = None


class NewOrder(Message, frozen=True, tag="new_order.v1"):
    """An order risk accepted (its hold is reserved), for the market's book.

    ``kind``: ``limit``; ``market`` (IOC no worse than ``px``, or, when ``px`` is 0, than
    the reference price moved by ``slippage_ppm``); ``trigger`` (rests off the book
    until the mark crosses ``trigger_px``, then becomes a market order or a limit at
    ``px``). ``grouping``: ``normalTpsl`` places ``children`` once this order fills;
    ``positionTpsl`` makes a trigger order that closes the whole position."""

    oid: int
    account: str
    market: str
    is_buy: bool
    px: int
    sz: int
    tif: Tif = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    req_id: str = ""
    kind: Literal["limit", "market", "trigger"] = "limit"
    slippage_ppm: int = 0
    trigger_px: int = 0
    tpsl: Literal["", "tp", "sl"] = ""
    trigger_is_market: bool = True
    grouping: Literal["na", "normalTpsl", "positionTpsl"] = "na"
    children: tuple[ChildOrder, ...] = ()


class CancelRequest(Message, frozen=True, tag="cancel_request.v1"):
    """Cancel one order by oid, or by client order id when ``cloid`` is set."""

    oid: int
    account: str
    market: str
    req_id: str = ""
    cloid: str | None = None


class ModifyRequest(Message, frozen=True, tag="modify_request.v1"):
    """Replace a resting order's price, size or flags. Time priority is kept only when
    the price is unchanged and the size shrinks."""

    oid: int
    account: str
    market: str
    is_buy: bool
    px: int
    sz: int
    tif: Tif = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    by_cloid: str | None = None
    req_id: str = ""


class CancelAll(Message, frozen=True, tag="cancel_all.v1"):
    """Cancel every order of an account in this partition's markets (all, or one).

    ``status`` is what the orders report: ``canceled``, ``liquidatedCanceled``, ..."""

    account: str
    market: str = ""
    status: str = "canceled"
    req_id: str = ""


class ScheduleCancel(Message, frozen=True, tag="schedule_cancel.v1"):
    """Dead man's switch: cancel all of an account's orders once event time reaches
    ``at``; ``at`` = 0 clears the schedule. Broadcast to every matcher partition."""

    account: str
    at: int
    req_id: str = ""


class MarketControl(Message, frozen=True, tag="market_control.v1"):
    """Operator kill switch: ``halt`` (no new orders; resting ones stay) or ``resume``."""

    market: str
    action: Literal["halt", "resume"]
    operator: str = ""
    reason: str = ""


class ConfigureMarket(Message, frozen=True, tag="configure_market.v1"):
    """Operator change of a listed market's parameters, applied by its matcher on top of
    the market's current parameters (so concurrent changes never lose each other)."""

    market: str
    params: MarketParams
    operator: str = ""
    reason: str = ""
    req_id: str = ""


class PositionTransfer(Message, frozen=True, tag="position_transfer.v1"):
    """A backstop takeover or an ADL close, executed by the matcher as a pair of fills.

    ``from_account`` gives up ``sz`` lots of its position (long if ``from_is_long``) to
    ``to_account`` at ``px``; no fee unless the market configures one."""

    market: str
    from_account: str
    to_account: str
    from_is_long: bool
    sz: int
    px: int
    kind: Literal["backstop", "adl"]
    case_id: str = ""
    req_id: str = ""


class SourceQuote(msgspec.Struct, frozen=True, kw_only=True):
    """One source's contribution to an index price."""

    source: str
    px: int
    weight: int
    age_ms: int


class IndexTick(Message, frozen=True, tag="index_tick.v1"):
    """The oracle's index price for a market, with its validity.

    ``status`` is one of ``valid``, ``stale``, ``insufficient_sources``, ``too_volatile``,
    ``halted``; while it is not ``valid`` the price is the last valid one and the
    matcher lets orders only reduce positions, and risk does not liquidate on it.
    """

    market: str
    px: int
    status: str = "valid"
    sources: tuple[SourceQuote, ...] = ()
    external_perp_mid: int = 0


# ---------------------------------------------------------------- account.events


class OrderUpdate(Message, frozen=True, tag="order_update.v1"):
    """What a client sees of its order: the API status plus the request it answers."""

    account: str
    market: str
    oid: int | None
    status: str
    filled_sz: int = 0
    resting_sz: int = 0
    filled_ntl: int = 0
    error: str | None = None
    req_id: str = ""
    cloid: str | None = None


class AccountFill(Message, frozen=True, tag="account_fill.v1"):
    account: str
    market: str
    oid: int
    is_buy: bool
    px: int
    sz: int
    fee: int
    is_maker: bool
    tid: int
    closed_pnl: int
    start_position: int
    kind: str = "trade"


class BalanceUpdate(Message, frozen=True, tag="balance_update.v1"):
    """A balance change: USDC ``collateral`` after it; for a collateral asset (``asset``
    set) ``delta`` is in its lots and ``asset_balance`` its balance after."""

    account: str
    collateral: int
    delta: int
    reason: str
    req_id: str = ""
    error: str | None = None
    asset: str = ""
    asset_balance: int = 0


class ActionResult(Message, frozen=True, tag="action_result.v1"):
    """The answer to an action without a richer result (leverage, margin, transfers)."""

    account: str
    action: str
    req_id: str = ""
    error: str | None = None


class FundingPayment(Message, frozen=True, tag="funding_payment.v1"):
    """A position's funding settlement: ``usd`` is what the account received (negative
    when it paid), ``szi`` the position it was paid on."""

    account: str
    market: str
    szi: int
    rate_ppb: int
    usd: int


class MarginCall(Message, frozen=True, tag="margin_call.v1"):
    """Maintenance usage crossed a configured level (percent of equity). ``market`` names
    an isolated position; empty for the cross account."""

    account: str
    level_pct: int
    equity: int
    maintenance: int
    market: str = ""


class VaultUpdate(Message, frozen=True, tag="vault_update.v1"):
    """An LP's stake after a deposit or withdrawal: ``usd`` moved (positive in),
    ``shares`` minted (positive) or burnt, the LP's ``lp_shares`` and ``locked_until``
    after it, and the vault's ``vault_equity`` (micro-USDC at its marks) and
    ``total_shares`` after it: NAV per share is ``vault_equity / total_shares``."""

    account: str
    vault: str
    usd: int
    shares: int
    lp_shares: int
    locked_until: int
    vault_equity: int
    total_shares: int


# ---------------------------------------------------------------- market.events


class Trade(Message, frozen=True, tag="trade.v1"):
    market: str
    px: int
    sz: int
    taker_is_buy: bool
    buyer: str
    seller: str
    tid: int


class MarkPrice(Message, frozen=True, tag="mark_price.v1"):
    market: str
    mark_px: int
    index_px: int


class Level(msgspec.Struct, frozen=True, array_like=True):
    """One aggregated price level: price, total size, number of orders (0 = removed)."""

    px: int
    sz: int
    n: int


class BookDelta(Message, frozen=True, tag="book_delta.v1"):
    """Levels changed by one input record; ``seq`` counts the market's book versions."""

    market: str
    seq: int
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()


class BookSnapshot(Message, frozen=True, tag="book_snapshot.v1"):
    """The whole book (every level), periodically, so subscribers can resynchronize."""

    market: str
    seq: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class FundingRate(Message, frozen=True, tag="funding_rate.v1"):
    """A funding settlement: the hourly rate, its premium part, and the prices used."""

    market: str
    rate_ppb: int
    premium_ppb: int
    mark_px: int
    index_px: int
    cum_index: int


class MarketStatus(Message, frozen=True, tag="market_status.v1"):
    """Trading state of a market: ``open``, ``halted``, or ``reduce_only`` (oracle not valid)."""

    market: str
    state: str
    reason: str = ""


class MarketConfigured(Message, frozen=True, tag="market_configured.v1"):
    """A market's parameters as they stand after an operator's change (``error`` when the
    change was refused; ``spec`` is then the unchanged market). The matcher publishes it
    on market.events and to every risk partition, which apply it at this point of their
    input. ``overrides`` are every run-time change on top of the market table (what a
    state machine keeps, so a restart applies them to the table it reads)."""

    market: str
    spec: MarketSpec
    overrides: MarketParams = msgspec.field(default_factory=MarketParams)
    operator: str = ""
    reason: str = ""
    error: str = ""
    req_id: str = ""


# ---------------------------------------------------------------- oracle.prices


class OraclePrice(Message, frozen=True, tag="oracle_price.v1"):
    """The public index price record: price, validity and who contributed (weights)."""

    market: str
    px: int
    status: str
    sources: tuple[SourceQuote, ...] = ()
    reason: str = ""


class OracleOverride(Message, frozen=True, tag="oracle_override.v1"):
    """An operator's freeze, release or set-price of a market's index, for audit."""

    market: str
    action: str
    px: int = 0
    operator: str = ""
    reason: str = ""


# ---------------------------------------------------------------- liquidations, audit


class LiquidatedPosition(msgspec.Struct, frozen=True, kw_only=True):
    """One position of an account under liquidation, as risk saw it: signed size in
    lots, exact cost basis, the mark it was valued at and its maintenance requirement."""

    market: str
    szi: int
    entry_ntl: int
    mark_px: int
    maintenance: int
    is_cross: bool = True
    isolated_margin: int = 0


class LiquidationTrigger(Message, frozen=True, tag="liquidation_trigger.v1"):
    """Risk found an account below maintenance: equity and requirement in micro-USDC.

    ``market`` names an isolated position, liquidated on its own margin; empty for the
    cross account (all its cross positions). ``status`` is the case's first status (the
    account's collateral and positions at the trigger, the isolated position alone for
    an isolated case; reason ``trigger``), carried in the trigger so the liquidator opens
    the case and takes its first step from one record; a trigger without it is followed
    by that status as a record of its own. Either way the liquidator decides from its
    own log."""

    account: str
    equity: int
    maintenance: int
    market: str = ""
    status: LiquidationStatus | None = None


class LiquidationStatus(Message, frozen=True, tag="liquidation_status.v1"):
    """An account (or isolated position, ``market``) in liquidation after a change: a
    fill, a mark, a credit. ``below`` is false once it is back above maintenance or
    has nothing left to liquidate; ``reason`` says what changed. ``open_orders`` is
    false when risk knows no order of the account in the markets of ``positions``
    (risk records every order before the matcher sees it), so the liquidator's first
    step sends no cancel-all; a status without the field is read as true. ``asset_value``
    is what the account's collateral assets other than USDC count for in its equity (cross
    only): with no position left and USDC below zero, the liquidator sells them
    (``CollateralSale``)."""

    account: str
    equity: int
    maintenance: int
    collateral: int
    positions: tuple[LiquidatedPosition, ...]
    below: bool
    reason: str
    market: str = ""
    open_orders: bool = True
    asset_value: int = 0


class LiquidationReport(Message, frozen=True, tag="liquidation_report.v1"):
    """The matcher's answer to a liquidation order or transfer, forwarded by risk to the
    case's account: ``status`` as in ``OrderResult`` (``transferRejected`` for a
    transfer the counterparty could no longer take)."""

    account: str
    market: str
    oid: int
    status: str
    filled_sz: int = 0
    error: str | None = None
    req_id: str = ""


class InsuranceClaim(Message, frozen=True, tag="insurance_claim.v1"):
    """The liquidator asks the insurance fund (``account``, its risk account) to cover
    ``usd`` of a case's negative equity; the fund pays what it can, down to its floor."""

    account: str
    beneficiary: str
    usd: int
    market: str = ""
    case_id: str = ""


class InsuranceCredit(Message, frozen=True, tag="insurance_credit.v1"):
    """The fund's grant landing on the beneficiary: collateral, or the margin of the
    isolated position in ``market``."""

    account: str
    usd: int
    market: str = ""
    case_id: str = ""


class InsuranceAnswer(Message, frozen=True, tag="insurance_answer.v1"):
    """The fund's answer to a claim, to the case (``account`` = the beneficiary):
    ``paid`` of the ``usd`` claimed (``granted`` when all of it), ``balance`` is the
    fund's balance after it."""

    account: str
    usd: int
    granted: bool
    balance: int
    market: str = ""
    case_id: str = ""
    paid: int = 0


class CollateralSale(Message, frozen=True, tag="collateral_sale.v1"):
    """The liquidator asks risk (the account's partition) to repay a cross account's USDC
    liability from its collateral assets: the account has no cross position left, USDC
    below zero and assets behind it. Risk sells to the backstop vault, asset by asset in
    name order, the fewest lots whose value (at the oracle price, after the haircut they
    counted at) covers the liability it sees then (all of them if they fall short);
    ``usd`` is the liability the liquidator saw, for the record."""

    account: str
    usd: int
    case_id: str = ""


class AssetTakeover(Message, frozen=True, tag="asset_takeover.v1"):
    """On the backstop vault's partition (``account`` = the vault): ``lots`` of ``asset``
    already taken from ``seller``, who was credited ``usd`` for them; the vault holds the
    lots and pays the USDC."""

    account: str
    seller: str
    asset: str
    lots: int
    usd: int
    case_id: str = ""


class AdlQuery(Message, frozen=True, tag="adl_query.v1"):
    """Broadcast to every risk partition: the positions on one side of ``market`` that
    could take over ``account``'s position at the bankruptcy price."""

    account: str
    market: str
    counterparty_is_long: bool
    case_id: str = ""


class AdlCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """A position that ADL may close: size, cost basis, its account's value."""

    account: str
    szi: int
    entry_ntl: int
    account_value: int


class AdlCandidates(Message, frozen=True, tag="adl_candidates.v1"):
    """One risk partition's answer to an ``AdlQuery``, to the case's account."""

    account: str
    market: str
    partition: int
    mark_px: int
    candidates: tuple[AdlCandidate, ...] = ()
    case_id: str = ""


class LiquidationStep(Message, frozen=True, tag="liquidation_step.v1"):
    """One step of the waterfall with its reason. ``stage``: triggered, stale, cancel,
    book, backstop, convert (collateral assets sold to the vault), insurance, adl,
    capacity (lots the vault could not carry stay with the account), closed, recovered,
    and unwind (the vault's own orders); prices in ticks, sizes in lots, money
    in micro-USDC; ``counterparty`` is the vault,
    the fund or the ADL'd account. ``equity`` is the equity before the step and
    ``equity_after`` what it left (the same when its effect is a later step's); ``step``
    numbers the steps of one case."""

    account: str
    stage: str
    detail: str
    market: str = ""
    case_id: str = ""
    px: int = 0
    sz: int = 0
    equity: int = 0
    maintenance: int = 0
    shortfall: int = 0
    counterparty: str = ""
    equity_after: int = 0
    step: int = 0


class BadDebtNotice(Message, frozen=True, tag="bad_debt_notice.v1"):
    """Broadcast by the liquidator to every risk partition: a case with negative equity
    opened (``open``) or ended (its deficit absorbed, or ``usd`` left as the venue's bad
    debt). While any case is open, risk holds withdrawals and transfers out."""

    account: str
    case_id: str
    open: bool
    usd: int = 0


class VaultMarketTerms(msgspec.Struct, frozen=True, kw_only=True):
    """What a takeover in ``market`` can cost the backstop vault per unit of notional:
    its highest maintenance rate (the top tier's, ppm, rounded up: no position of any
    size needs more per dollar) and the transfer fee (ppm) the vault pays on it."""

    market: str
    maintenance_ppm: int
    fee_ppm: int = 0


class VaultStatus(Message, frozen=True, tag="vault_status.v1"):
    """The backstop vault's capacity, broadcast by its risk partition to every
    liquidator partition whenever its equity, maintenance or takeover counts change:
    ``equity`` and ``maintenance`` at its marks (micro-USDC), ``notional`` the gross value
    of its positions at those marks (what a move against them all would act on),
    ``takeovers[p]`` the
    backstop takeovers it has received from the cases of liquidator partition ``p``
    (so each partition knows which of its own takeovers this status reflects) and the
    per-market ``terms`` that bound what a new takeover adds."""

    account: str
    equity: int
    maintenance: int
    notional: int = 0
    takeovers: tuple[int, ...] = ()
    terms: tuple[VaultMarketTerms, ...] = ()


# ---------------------------------------------------------------- operator audit


class OperatorAudit(Message, frozen=True, tag="operator_audit.v1"):
    """One operator API call: who (the token's name), what, with which arguments."""

    operator: str
    action: str
    detail: str
    ok: bool = True


# ---------------------------------------------------------------- dead letters


class DeadLetter(Message, frozen=True, tag="dead_letter.v1"):
    """An input record that could not be decoded or applied, kept with its bytes."""

    topic: str
    partition: int
    offset: int
    error: str
    payload: bytes


class Checkpoint(Message, frozen=True, tag="checkpoint.v1"):
    """A processor's input position, written in the same Kafka transaction as the
    outputs of the batch it ends: ``offset`` is the next input offset to apply of the
    input partition with the same number (``ts`` is the batch's last record time)."""

    offset: int


class StateProof(Message, frozen=True, tag="state_proof.v1"):
    """A stateful processor's commitment to its whole partition state, in the transaction
    of the batch that reached it: ``sha256`` (hex) over the canonical encoding of the
    state after applying input records ``< offset`` of ``topic`` partition ``partition``
    (``libs.common.runtime.proof``), ``entries`` state entries. Anyone can replay the log
    to ``offset`` and recompute it (docs/auditor.md). ``ts`` is the covered record's
    log timestamp."""

    service: str
    topic: str
    partition: int
    offset: int
    entries: int
    sha256: str


# ---------------------------------------------------------------- what each topic carries

RiskIn = (
    Deposit
    | Withdraw
    | PlaceOrder
    | CancelOrder
    | ModifyOrder
    | UpdateLeverage
    | UpdateIsolatedMargin
    | UsdTransfer
    | TransferIn
    | FeeTier
    | ScheduleCancel
    | FillLeg
    | OrderResult
    | MarkUpdate
    | FundingUpdate
    | InsuranceClaim
    | InsuranceCredit
    | AdlQuery
    | MarketConfigured
    | BadDebtNotice
    | VaultTransfer
    | VaultDeposit
    | VaultWithdrawal
    | VaultPayout
    | SetMarginMode
    | CollateralSale
    | AssetTakeover
)
MatcherIn = (
    NewOrder
    | CancelRequest
    | ModifyRequest
    | CancelAll
    | ScheduleCancel
    | MarketControl
    | PositionTransfer
    | IndexTick
    | ConfigureMarket
)
AccountEvent = (
    OrderUpdate
    | AccountFill
    | BalanceUpdate
    | ActionResult
    | FundingPayment
    | MarginCall
    | VaultUpdate
)
MarketEvent = (
    Trade | MarkPrice | BookDelta | BookSnapshot | FundingRate | MarketStatus | MarketConfigured
)
OracleEvent = OraclePrice | OracleOverride
LiquidationsIn = (
    LiquidationTrigger
    | LiquidationStatus
    | LiquidationReport
    | InsuranceAnswer
    | AdlCandidates
    | VaultStatus
)


# ---------------------------------------------------------------- marketdata views (Redis)

CANDLE_INTERVALS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
"""Candle intervals and their lengths in milliseconds (epoch-aligned buckets)."""


class CandleView(msgspec.Struct, frozen=True, kw_only=True):
    """A candle as the marketdata service publishes it in Redis (prices in ticks, volume
    in lots), one member of the sorted set :func:`candles_key`, scored by open time."""

    market: str
    interval: str
    t: int
    close_t: int
    o: int
    h: int
    low: int
    c: int
    v: int
    n: int


class DayStatsView(msgspec.Struct, frozen=True, kw_only=True):
    """A market's 24-hour statistics (field ``<market>`` of :func:`day_stats_key`):
    notional volume in micro-USDC, the price 24 hours ago in ticks, open interest in lots,
    as of event time ``ts``."""

    market: str
    ts: int
    day_ntl_vlm: int
    prev_day_px: int
    open_interest: int


def candles_key(namespace: str, market: str, interval: str) -> str:
    """The sorted set of one market's candles at one interval (its own hash tag)."""
    return f"{{{namespace}candles:{market}:{interval}}}"


def day_stats_key(namespace: str) -> str:
    """The hash of every market's :class:`DayStatsView`, by market name."""
    return f"{{{namespace}marketdata}}:day_stats"
