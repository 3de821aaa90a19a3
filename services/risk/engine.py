"""Risk's core: the accounts of one risk.in partition.

Pre-trade it checks an order against the market's rules and limits and the account's
free margin, reserves the hold and forwards the order to the market's matcher.
Post-trade it settles fill legs into positions, collateral and the venue ledger,
converts and releases holds as the matcher reports on orders, settles funding, and
answers clients on account.events. On every mark it revalues the market's positions at
once (``revaluation.Exposures``) and decides, for the few accounts that need it, margin
calls, margin cancels and liquidation triggers, in a deterministic order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from libs.common import metrics, topics
from libs.common.collateral import (
    haircut_value,
    liability_on_assets,
    lots_to_cover,
    oracle_prices,
)
from libs.common.margin import (
    AccountSummary,
    below_maintenance,
    fee_amount,
    hold_price,
    margin_table,
    position_terms,
    signed_basis,
)
from libs.common.markets import MarketParams, MarketRegistry, MarketSpec, with_overrides
from libs.common.money import div_ceil, format_usd
from libs.common.portfolio import MARGIN_MODES
from libs.common.runtime import ChangeTracked, Context
from libs.common.schemas import (
    AccountFill,
    ActionResult,
    AdlCandidate,
    AdlCandidates,
    AdlQuery,
    AssetTakeover,
    BadDebtNotice,
    BalanceUpdate,
    CancelAll,
    CancelOrder,
    CancelRequest,
    ChildOrder,
    CollateralSale,
    Deposit,
    FeeTier,
    FillLeg,
    FundingPayment,
    FundingUpdate,
    InsuranceAnswer,
    InsuranceClaim,
    InsuranceCredit,
    LiquidatedPosition,
    LiquidationReport,
    LiquidationStatus,
    LiquidationTrigger,
    MarginCall,
    MarketConfigured,
    MarkUpdate,
    ModifyOrder,
    ModifyRequest,
    NewOrder,
    OrderResult,
    OrderUpdate,
    PlaceOrder,
    ScheduleCancel,
    SetMarginMode,
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
from libs.common.state import (
    ACCOUNT_PREFIX,
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    MARK_PREFIX,
    VAULT_PREFIX,
    VENUE_ACCOUNTS,
    AccountState,
    LeverageSetting,
    MarkState,
    OpenOrderState,
    PendingModify,
    PositionState,
    VaultShares,
    VaultStake,
    is_liquidation_order,
    order_id,
)
from libs.common.topics import partition_for
from services.risk import pretrade, telemetry, vault
from services.risk.config import RiskConfig
from services.risk.holds import HoldChange, Holds, claim
from services.risk.ledger import PPM, VenueLedger
from services.risk.pretrade import Refusal
from services.risk.revaluation import Exposures, call_level
from services.risk.settlement import settle_fill, settle_funding

VENUE_KEY = "v:venue"
MARKETS_KEY = "v:markets"


class MarketOverrides(msgspec.Struct, kw_only=True):
    """The operator's run-time changes per market, on top of the market table."""

    by_market: dict[str, MarketParams] = msgspec.field(default_factory=dict)


VALID = "valid"
SCHEDULE_MIN_LEAD_MS = 5_000
NO_ORDER = "Order was never placed, already canceled, or filled."
BAD_DEBT_OPEN = "Withdrawals wait while the venue absorbs a liquidation's bad debt."
CANNOT_MODIFY = "Cannot modify canceled or filled order"
# Answers to a modify that the matcher gives before touching the order: it rests as it was.
MODIFY_REFUSALS = frozenset(
    {"modifyRejected", "rejected", "oracleRejected", "minTradeNtlRejected", "badAloPxRejected"}
)

# Inputs that can change the backstop vault's equity, maintenance or takeover counts
# (a fill only when it is the vault's): its partition checks them for a VaultStatus.
VAULT_INPUTS = frozenset(
    {
        FillLeg,
        MarkUpdate,
        FundingUpdate,
        TransferIn,
        Deposit,
        Withdraw,
        UsdTransfer,
        VaultDeposit,
        VaultWithdrawal,
        AssetTakeover,
        InsuranceCredit,
        MarketConfigured,
    }
)

# A liquidation to raise: (-shortfall, account, market ("" = cross), equity, maintenance),
# so that sorting them puts the largest shortfall first, ties by account then market.
Trigger = tuple[int, str, str, int, int]


class RiskCore:
    """Applies user actions, fills, order results, marks and funding for one partition."""

    def __init__(
        self, markets: MarketRegistry, partition: int, config: RiskConfig | None = None
    ) -> None:
        self.table = markets  # the market table; self.markets adds run-time changes
        self.markets = markets.copy()
        self.overrides = MarketOverrides()
        self._overrides_dirty = False
        self.partition = partition
        self.config = config or RiskConfig()
        self.accounts: ChangeTracked[AccountState] = ChangeTracked(ACCOUNT_PREFIX, AccountState)
        self.marks: ChangeTracked[MarkState] = ChangeTracked(MARK_PREFIX, MarkState)
        self.vaults: ChangeTracked[VaultShares] = ChangeTracked(VAULT_PREFIX, VaultShares)
        self.venue = VenueLedger()
        self.exposures = Exposures(self.markets, self.config.margin_call_levels)
        self._specs = {spec.name: spec for spec in markets}
        self._holds = Holds()  # which terms each market's holds were computed with
        self._venue_dirty = False
        # Accounts with a cross or isolated liquidation open: derived from the flags.
        self._in_liquidation: set[str] = set()
        self._exported_ts = 0  # event time of the last gauge export (telemetry only)
        self._vault_terms: tuple[VaultMarketTerms, ...] | None = None  # derived from specs
        self._encoder = msgspec.msgpack.Encoder()
        self._handlers: dict[type, Callable[[Any, Context], None]] = {
            FillLeg: self._fill,
            OrderResult: self._order_result,
            MarkUpdate: self._mark,
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            ModifyOrder: self._modify,
            Deposit: self._deposit,
            Withdraw: self._withdraw,
            UsdTransfer: self._transfer,
            TransferIn: self._transfer_in,
            UpdateLeverage: self._update_leverage,
            UpdateIsolatedMargin: self._update_isolated_margin,
            FeeTier: self._fee_tier,
            ScheduleCancel: self._schedule_cancel,
            FundingUpdate: self._funding,
            InsuranceClaim: self._insurance_claim,
            InsuranceCredit: self._insurance_credit,
            AdlQuery: self._adl_query,
            MarketConfigured: self._market_configured,
            BadDebtNotice: self._bad_debt_notice,
            VaultTransfer: self._vault_transfer,
            VaultDeposit: self._vault_deposit,
            VaultWithdrawal: self._vault_withdrawal,
            VaultPayout: self._vault_payout,
            SetMarginMode: self._set_margin_mode,
            CollateralSale: self._collateral_sale,
            AssetTakeover: self._asset_takeover,
        }

    # ------------------------------------------------------------ runtime protocol

    def apply(self, message: Any, ctx: Context) -> None:
        kind = type(message)
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(message, ctx)
            if kind in VAULT_INPUTS and BACKSTOP_VAULT_ACCOUNT in self.accounts:
                if kind is not FillLeg or message.account == BACKSTOP_VAULT_ACCOUNT:
                    self._vault_capacity(message.ts, ctx)

    def take_changes(self) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        self.accounts.take_changes(changes)
        self.marks.take_changes(changes)
        self.vaults.take_changes(changes)
        if self._venue_dirty:
            changes[VENUE_KEY] = self._encoder.encode(self.venue)
            self._venue_dirty = False
        if self._overrides_dirty:
            changes[MARKETS_KEY] = self._encoder.encode(self.overrides)
            self._overrides_dirty = False
        return changes

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.accounts.restore(entries)
        self.marks.restore(entries)
        self.vaults.restore(entries)
        raw = entries.get(VENUE_KEY)
        self.venue = msgspec.msgpack.decode(raw, type=VenueLedger) if raw else VenueLedger()
        raw = entries.get(MARKETS_KEY)
        self.overrides = (
            msgspec.msgpack.decode(raw, type=MarketOverrides) if raw else MarketOverrides()
        )
        self.markets = self.table.copy()
        self._holds = Holds()
        self._vault_terms = None
        self.exposures.registry = self.markets
        self._specs = {spec.name: spec for spec in self.markets}
        for name, params in self.overrides.by_market.items():
            self._use_spec(with_overrides(self.table.by_name(name), params))
        marks = {m.market: m.mark_px for m in self.marks.values() if m.market in self._specs}
        prices = oracle_prices({m.market: m for m in self.marks.values()})
        self.exposures.rebuild(self.accounts.values(), marks, prices)
        self._in_liquidation = {
            a.address for a in self.accounts.values() if self._liquidation_keys(a)
        }

    # ------------------------------------------------------------ helpers

    def _account(self, address: str) -> AccountState:
        acct = self.accounts.get(address)
        if acct is None:
            acct = AccountState(address=address)
            self.accounts.put(address, acct)
        return acct

    def _changed(self, acct: AccountState, ts: int) -> None:
        """Persist the account and bring its row of the exposure index up to date."""
        acct.updated = ts
        self.accounts.touch(acct.address)
        self.exposures.sync(acct)
        if acct.address == INSURANCE_FUND_ACCOUNT and acct.collateral > self.venue.insurance_peak:
            self.venue.insurance_peak = acct.collateral
            self._venue_dirty = True

    def _mark_px(self, market: str) -> int:
        state = self.marks.get(market)
        return state.mark_px if state else 0

    def _setting(self, acct: AccountState, spec: MarketSpec) -> LeverageSetting:
        found = acct.leverage.get(spec.name)
        return found or LeverageSetting(leverage=spec.default_leverage)

    def _taker_ppm(self, acct: AccountState, spec: MarketSpec) -> int:
        return spec.taker_fee_ppm if acct.taker_fee_ppm is None else acct.taker_fee_ppm

    def _maker_ppm(self, acct: AccountState, spec: MarketSpec) -> int:
        return spec.maker_fee_ppm if acct.maker_fee_ppm is None else acct.maker_fee_ppm

    def _hold_terms(self, acct: AccountState, spec: MarketSpec) -> tuple[int, int]:
        """(leverage, taker ppm) the account's holds in the market are computed with."""
        pos = acct.positions.get(spec.name)
        leverage = pos.leverage if pos and pos.leverage else self._setting(acct, spec).leverage
        return leverage, self._taker_ppm(acct, spec)

    def _reprice(self, acct: AccountState, spec: MarketSpec) -> HoldChange:
        """Recompute every hold of the account in the market (its position, leverage or
        fees changed)."""
        return self._holds.reprice(acct, spec, *self._hold_terms(acct, spec))

    def _reprice_order(
        self, acct: AccountState, spec: MarketSpec, oid: int, claimed: int
    ) -> HoldChange:
        """Bring the holds up to date after one order alone appeared, changed or went
        away (``claimed``: what it claimed of the position before): see ``Holds``."""
        leverage, taker_ppm = self._hold_terms(acct, spec)
        return self._holds.reprice_order(acct, spec, leverage, taker_ppm, oid, claimed)

    def _claim(self, acct: AccountState, order: OpenOrderState) -> int:
        pos = acct.positions.get(order.market)
        return claim(order, pos.szi if pos else 0)

    def _available(self, acct: AccountState) -> int:
        row = self.exposures.row_of.get(acct.address)
        return self.exposures.available(row) if row is not None else 0

    def _withdrawable(self, acct: AccountState) -> int:
        """Cross equity less holds less max(initial margin, 10% of cross position value)."""
        ex = self.exposures
        row = ex.row(acct.address)
        keep = max(ex.initial_of(row), div_ceil(int(ex.notional[row]), 10))
        return max(0, ex.usable_equity(row) - int(ex.holds[row]) - keep)

    def _spendable(self, acct: AccountState, usd: int) -> bool:
        """Whether ``usd`` of USDC may leave the account (a withdrawal, a transfer, a vault
        deposit): within withdrawable, and never USDC borrowed against collateral assets."""
        if usd <= 0 or usd > self._withdrawable(acct):
            return False
        return not (acct.assets and usd > acct.collateral)

    def _answer(self, ctx: Context, msg: PlaceOrder | ModifyOrder, refusal: Refusal) -> None:
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            OrderUpdate(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid if isinstance(msg, ModifyOrder) else None,
                status=refusal.status,
                error=refusal.error,
                req_id=msg.req_id,
                cloid=msg.cloid,
            ),
        )

    def _action(self, ctx: Context, msg: Any, action: str, error: str | None = None) -> None:
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            ActionResult(
                ts=msg.ts, account=msg.account, action=action, req_id=msg.req_id, error=error
            ),
        )

    def _balance(
        self,
        ctx: Context,
        ts: int,
        address: str,
        delta: int,
        reason: str,
        req_id: str = "",
        error: str | None = None,
    ) -> None:
        acct = self.accounts.get(address)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            address,
            BalanceUpdate(
                ts=ts,
                account=address,
                collateral=acct.collateral if acct else 0,
                delta=delta,
                reason=reason,
                req_id=req_id,
                error=error,
            ),
        )

    # ------------------------------------------------------------ collateral

    def _deposit(self, msg: Deposit, ctx: Context) -> None:
        if msg.asset:
            self._deposit_asset(msg, ctx)
            return
        if msg.usd <= 0:
            error = "Deposit must be positive."
            self._balance(ctx, msg.ts, msg.account, 0, "deposit", msg.req_id, error)
            return
        acct = self._account(msg.account)
        acct.collateral += msg.usd
        self._changed(acct, msg.ts)
        self._balance(ctx, msg.ts, msg.account, msg.usd, "deposit", msg.req_id)
        self._review([acct.address], msg.ts, ctx)

    def _asset_balance(
        self, ctx: Context, msg: Deposit | Withdraw, delta: int, error: str | None = None
    ) -> None:
        acct = self.accounts.get(msg.account)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            BalanceUpdate(
                ts=msg.ts,
                account=msg.account,
                collateral=acct.collateral if acct else 0,
                delta=delta,
                reason="deposit" if isinstance(msg, Deposit) else "withdraw",
                req_id=msg.req_id,
                error=error,
                asset=msg.asset,
                asset_balance=acct.assets.get(msg.asset, 0) if acct else 0,
            ),
        )

    def _deposit_asset(self, msg: Deposit, ctx: Context) -> None:
        """A collateral asset in (``amount`` lots): valued from the next oracle price."""
        error = None
        if msg.asset not in self.markets.collateral:
            error = f"{msg.asset!r} is not accepted as collateral."
        elif msg.amount <= 0 or msg.usd != 0:
            error = "Deposit must be a positive amount of one asset."
        if error is not None:
            self._asset_balance(ctx, msg, 0, error)
            return
        acct = self._account(msg.account)
        acct.assets[msg.asset] = acct.assets.get(msg.asset, 0) + msg.amount
        self._changed(acct, msg.ts)
        self._asset_balance(ctx, msg, msg.amount)
        self._review([acct.address], msg.ts, ctx)

    def _withdraw_asset(self, msg: Withdraw, ctx: Context) -> None:
        """A collateral asset out, if the account keeps what withdrawals must keep with
        the rest valued toward new risk (nothing while its oracle is not valid)."""
        acct = self.accounts.get(msg.account)
        held = acct.assets.get(msg.asset, 0) if acct else 0
        if acct is None or msg.amount <= 0 or msg.usd != 0 or msg.amount > held:
            self._asset_balance(ctx, msg, 0, "Insufficient balance.")
            return
        ex = self.exposures
        row = ex.row(acct.address)
        self._set_asset(acct, msg.asset, held - msg.amount)
        ex.sync(acct)
        keep = max(ex.initial_of(row), div_ceil(int(ex.notional[row]), 10))
        if ex.usable_equity(row) - int(ex.holds[row]) - keep < 0:
            self._set_asset(acct, msg.asset, held)
            ex.sync(acct)
            self._asset_balance(ctx, msg, 0, "Insufficient balance.")
            return
        self._changed(acct, msg.ts)
        self._asset_balance(ctx, msg, -msg.amount)
        self._review([acct.address], msg.ts, ctx)

    @staticmethod
    def _set_asset(acct: AccountState, asset: str, lots: int) -> None:
        if lots:
            acct.assets[asset] = lots
        else:
            acct.assets.pop(asset, None)

    def _withdraw(self, msg: Withdraw, ctx: Context) -> None:
        if msg.asset:
            self._withdraw_asset(msg, ctx)
            return
        acct = self.accounts.get(msg.account)
        if acct is None or not self._spendable(acct, msg.usd):
            error = "Insufficient balance."
            self._balance(ctx, msg.ts, msg.account, 0, "withdraw", msg.req_id, error)
            return
        if self.venue.open_bad_debt:
            self._balance(ctx, msg.ts, msg.account, 0, "withdraw", msg.req_id, BAD_DEBT_OPEN)
            return
        acct.collateral -= msg.usd
        self._changed(acct, msg.ts)
        self._balance(ctx, msg.ts, msg.account, -msg.usd, "withdraw", msg.req_id)
        self._review([acct.address], msg.ts, ctx)

    def _transfer(self, msg: UsdTransfer, ctx: Context) -> None:
        acct = self.accounts.get(msg.account)
        error = None
        if msg.usd <= 0:
            error = "Transfer amount must be positive."
        elif not msg.destination or msg.destination == msg.account:
            error = "Invalid destination."
        elif acct is None or not self._spendable(acct, msg.usd):
            error = "Insufficient balance."
        elif self.venue.open_bad_debt:
            error = BAD_DEBT_OPEN
        if error is not None or acct is None:
            self._action(ctx, msg, "usdTransfer", error)
            return
        acct.collateral -= msg.usd
        self._changed(acct, msg.ts)
        self._action(ctx, msg, "usdTransfer")
        self._balance(ctx, msg.ts, msg.account, -msg.usd, "transfer", msg.req_id)
        ctx.emit(
            topics.RISK_IN,
            msg.destination,
            TransferIn(
                ts=msg.ts,
                account=msg.destination,
                source=msg.account,
                usd=msg.usd,
                transfer_id=ctx.source_id,
            ),
        )
        self._review([acct.address], msg.ts, ctx)

    def _transfer_in(self, msg: TransferIn, ctx: Context) -> None:
        if msg.usd <= 0:
            return
        acct = self._account(msg.account)
        acct.collateral += msg.usd
        self._changed(acct, msg.ts)
        self._balance(ctx, msg.ts, msg.account, msg.usd, "transfer")
        self._review([acct.address], msg.ts, ctx)
        if msg.account in VENUE_ACCOUNTS:
            self._export_venue_account(acct, ctx)

    def _fee_tier(self, msg: FeeTier, ctx: Context) -> None:
        if msg.taker_ppm < 0 or msg.maker_ppm < -msg.taker_ppm or msg.taker_ppm >= 1_000_000:
            return  # the fee job's mistake: a rebate above the taker fee would pay out fees
        acct = self._account(msg.account)
        acct.taker_fee_ppm, acct.maker_fee_ppm = msg.taker_ppm, msg.maker_ppm
        for market in sorted({o.market for o in acct.orders.values()}):
            self._reprice(acct, self._specs[market])
        self._changed(acct, msg.ts)

    # ------------------------------------------------------------ leverage and isolated margin

    def _update_leverage(self, msg: UpdateLeverage, ctx: Context) -> None:
        spec = self._specs.get(msg.market)
        if spec is None:
            self._action(ctx, msg, "updateLeverage", f"Unknown asset {msg.market!r}.")
            return
        known = self.accounts.get(msg.account)
        acct = known or AccountState(address=msg.account)
        pos = acct.positions.get(msg.market)
        mark = self._mark_px(msg.market) or None
        notional = 0
        if pos is not None:
            notional = position_terms(spec, pos.szi, pos.entry_ntl, 1, mark).notional
        most = margin_table(spec).max_leverage_at(notional)
        error = None
        if not 1 <= msg.leverage <= most:
            error = f"Invalid leverage value: {msg.leverage}x (at most {most}x at this size)."
        elif pos is not None and pos.is_cross != msg.is_cross:
            error = "Cannot switch leverage type with open position."
        elif pos is not None and not pos.is_cross:
            terms = position_terms(spec, pos.szi, pos.entry_ntl, msg.leverage, mark)
            if pos.isolated_margin + terms.value - signed_basis(pos) < terms.initial:
                error = "Insufficient margin for this leverage: add margin first."
        if error is not None:
            self._action(ctx, msg, "updateLeverage", error)
            return
        setting = LeverageSetting(leverage=msg.leverage, is_cross=msg.is_cross)
        if known is None:
            acct.leverage[msg.market] = setting  # a new account: nothing to re-check
            self.accounts.put(acct.address, acct)
        elif not self._set_leverage(acct, spec, setting):
            self._action(ctx, msg, "updateLeverage", "Insufficient margin for this leverage.")
            return
        self._changed(acct, msg.ts)
        self._action(ctx, msg, "updateLeverage")
        self._review([acct.address], msg.ts, ctx)

    def _set_leverage(self, acct: AccountState, spec: MarketSpec, setting: LeverageSetting) -> bool:
        """Apply a leverage setting unless it raises the account's requirement (initial
        margin plus holds) past its equity; otherwise leave everything as it was."""
        market = spec.name
        pos = acct.positions.get(market)
        required = self._requirement(acct)
        saved = acct.leverage.get(market), pos.leverage if pos else 0
        acct.leverage[market] = setting
        if pos is not None:
            pos.leverage = setting.leverage
        self._reprice(acct, spec)
        self.exposures.sync(acct)
        if self._requirement(acct) <= required or self._available(acct) >= 0:
            return True
        old_setting, old_leverage = saved
        if old_setting is None:
            acct.leverage.pop(market)
        else:
            acct.leverage[market] = old_setting
        if pos is not None:
            pos.leverage = old_leverage
        self._reprice(acct, spec)
        self.exposures.sync(acct)
        return False

    def _requirement(self, acct: AccountState) -> int:
        row = self.exposures.row(acct.address)
        return self.exposures.initial_of(row) + int(self.exposures.holds[row])

    def _set_margin_mode(self, msg: SetMarginMode, ctx: Context) -> None:
        """Switch between cross and portfolio margin, unless the account is being
        liquidated or its equity would not cover the new initial requirement and holds."""
        if msg.mode not in MARGIN_MODES:
            error = f"Unknown margin mode {msg.mode!r}: use 'cross' or 'portfolio'."
            self._action(ctx, msg, "setMarginMode", error)
            return
        acct = self._account(msg.account)
        if acct.margin_mode == msg.mode:
            self._action(ctx, msg, "setMarginMode")
            return
        if acct.liquidating:
            error = "Cannot change the margin mode while the account is being liquidated."
            self._action(ctx, msg, "setMarginMode", error)
            return
        previous = acct.margin_mode
        acct.margin_mode = msg.mode
        self.exposures.sync(acct)
        row = self.exposures.row(acct.address)
        required = self._requirement(acct)
        equity = self.exposures.usable_equity(row)
        if equity < required:
            acct.margin_mode = previous
            self.exposures.sync(acct)
            error = (
                f"Insufficient margin for {msg.mode} margin: equity ${format_usd(equity)} is "
                f"below the requirement ${format_usd(required)} (initial margin and holds)."
            )
            self._action(ctx, msg, "setMarginMode", error)
            return
        self._changed(acct, msg.ts)
        self._action(ctx, msg, "setMarginMode")
        self._review([acct.address], msg.ts, ctx)

    def _update_isolated_margin(self, msg: UpdateIsolatedMargin, ctx: Context) -> None:
        acct = self.accounts.get(msg.account)
        pos = acct.positions.get(msg.market) if acct else None
        spec = self._specs.get(msg.market)
        if acct is None or pos is None or pos.is_cross or spec is None:
            self._action(ctx, msg, "updateIsolatedMargin", "No isolated position to adjust.")
            return
        if msg.usd == 0:
            self._action(ctx, msg, "updateIsolatedMargin", "Amount must not be zero.")
            return
        if msg.usd > 0 and msg.usd > self._available(acct):
            self._action(ctx, msg, "updateIsolatedMargin", "Insufficient margin to add.")
            return
        if msg.usd < 0:
            mark = self._mark_px(msg.market) or None
            terms = position_terms(spec, pos.szi, pos.entry_ntl, pos.leverage or 1, mark)
            equity = pos.isolated_margin + msg.usd + terms.value - signed_basis(pos)
            if equity < max(terms.initial, div_ceil(terms.notional, 10)):
                error = "Cannot remove that much: the position would fall below its initial margin."
                self._action(ctx, msg, "updateIsolatedMargin", error)
                return
        acct.collateral -= msg.usd
        pos.isolated_margin += msg.usd
        self._changed(acct, msg.ts)
        self._action(ctx, msg, "updateIsolatedMargin")
        self._review([acct.address], msg.ts, ctx)

    def _schedule_cancel(self, msg: ScheduleCancel, ctx: Context) -> None:
        if msg.at and msg.at < msg.ts + SCHEDULE_MIN_LEAD_MS:
            error = "Scheduled cancel time must be at least 5 seconds in the future."
            self._action(ctx, msg, "scheduleCancel", error)
            return
        ctx.broadcast(
            topics.MATCHER_IN,
            msg.account,
            ScheduleCancel(ts=msg.ts, account=msg.account, at=msg.at, req_id=msg.req_id),
        )
        self._action(ctx, msg, "scheduleCancel")

    # ------------------------------------------------------------ orders

    def _place(self, msg: PlaceOrder, ctx: Context) -> None:
        spec = self._specs.get(msg.market)
        if spec is None:
            self._answer(ctx, msg, Refusal("rejected", f"unknown market {msg.market!r}"))
            return
        refusal = pretrade.shape_error(msg, spec)
        if refusal is not None:
            self._answer(ctx, msg, refusal)
            return
        mark_state = self.marks.get(msg.market)
        mark = mark_state.mark_px if mark_state else 0
        px = pretrade.market_price(msg, spec, mark)
        if isinstance(px, Refusal):
            self._answer(ctx, msg, px)
            return
        reduce = msg.reduce_only or msg.grouping == "positionTpsl"
        if not reduce:
            refusal = pretrade.min_notional_error(spec, px, msg.sz, mark)
            if refusal is not None:
                self._answer(ctx, msg, refusal)
                return
        known = self.accounts.get(msg.account)
        acct = known or AccountState(address=msg.account)
        pos = acct.positions.get(msg.market)
        szi = pos.szi if pos else 0
        sz = msg.sz
        if reduce:
            refusal = pretrade.reduce_only_error(szi, msg.is_buy)
            if refusal is not None:
                self._answer(ctx, msg, refusal)
                return
            if msg.grouping != "positionTpsl":
                sz = min(sz, abs(szi))  # the matcher closes at most the position
        oid = order_id(ctx.offset, ctx.partition)
        order = OpenOrderState(
            oid=oid,
            market=msg.market,
            is_buy=msg.is_buy,
            px=msg.px,
            sz=sz,
            orig_sz=sz,
            hold=0,
            reduce_only=reduce,
            cloid=msg.cloid,
            ts=msg.ts,
            hold_px=0 if reduce else hold_price(px, mark, msg.trigger_px),
            kind=msg.kind,
            tif=msg.tif,
            trigger_px=msg.trigger_px,
            tpsl=msg.tpsl,
        )
        if not reduce:
            refusal = pretrade.limit_error(acct, spec, msg.is_buy, sz, order.hold_px, mark_state)
            if refusal is None and not self._reserve(acct, spec, order, known is not None):
                refusal = pretrade.margin_refusal(spec)
            if refusal is not None:
                self._answer(ctx, msg, refusal)
                return
        else:
            acct.orders[oid] = order
        children = []
        for slot, intent in enumerate(msg.children, start=1):
            child = ChildOrder(
                oid=order_id(ctx.offset, ctx.partition, slot),
                is_buy=intent.is_buy,
                px=intent.px,
                sz=intent.sz,
                trigger_px=intent.trigger_px,
                tpsl=intent.tpsl,
                trigger_is_market=intent.trigger_is_market,
                cloid=intent.cloid,
            )
            children.append(child)
            acct.orders[child.oid] = OpenOrderState(
                oid=child.oid,
                market=msg.market,
                is_buy=child.is_buy,
                px=child.px,
                sz=child.sz,
                orig_sz=child.sz,
                hold=0,
                reduce_only=True,
                cloid=child.cloid,
                ts=msg.ts,
                kind="trigger",
                trigger_px=child.trigger_px,
                tpsl=child.tpsl,
                parent=oid,
                placed=False,
            )
        if known is None:
            self.accounts.put(acct.address, acct)
        self._changed(acct, msg.ts)
        ctx.emit(
            topics.MATCHER_IN,
            msg.market,
            NewOrder(
                ts=msg.ts,
                oid=oid,
                account=msg.account,
                market=msg.market,
                is_buy=msg.is_buy,
                px=msg.px,
                sz=sz,
                tif=msg.tif,
                reduce_only=msg.reduce_only,
                cloid=msg.cloid,
                req_id=msg.req_id,
                kind=msg.kind,
                slippage_ppm=msg.slippage_ppm,
                trigger_px=msg.trigger_px,
                tpsl=msg.tpsl,
                trigger_is_market=msg.trigger_is_market,
                grouping=msg.grouping,
                children=tuple(children),
            ),
        )

    def _reserve(
        self, acct: AccountState, spec: MarketSpec, order: OpenOrderState, known: bool
    ) -> bool:
        """Put the order in and bring the market's holds up to date; keep it only if the
        added holds fit the account's free margin (otherwise everything is as it was)."""
        available = self._available(acct) if known else 0
        acct.orders[order.oid] = order
        change = self._reprice_order(acct, spec, order.oid, 0)
        added = change.added
        if added > 0 and added > available:
            del acct.orders[order.oid]
            self._holds.undo(change)
            return False
        return True

    def _find(
        self, acct: AccountState | None, market: str, oid: int, cloid: str | None
    ) -> OpenOrderState | None:
        if acct is None:
            return None
        if cloid:
            for order in acct.orders.values():
                if order.market == market and order.cloid == cloid:
                    return order
            return None
        found = acct.orders.get(oid)
        return found if found is not None and found.market == market else None

    def _cancel(self, msg: CancelOrder, ctx: Context) -> None:
        order = self._find(self.accounts.get(msg.account), msg.market, msg.oid, msg.cloid)
        if order is None:
            ctx.emit(
                topics.ACCOUNT_EVENTS,
                msg.account,
                OrderUpdate(
                    ts=msg.ts,
                    account=msg.account,
                    market=msg.market,
                    oid=msg.oid,
                    status="cancelRejected",
                    error=NO_ORDER,
                    req_id=msg.req_id,
                    cloid=msg.cloid,
                ),
            )
            return
        ctx.emit(
            topics.MATCHER_IN,
            msg.market,
            CancelRequest(
                ts=msg.ts, oid=order.oid, account=msg.account, market=msg.market, req_id=msg.req_id
            ),
        )

    def _modify(self, msg: ModifyOrder, ctx: Context) -> None:
        acct = self.accounts.get(msg.account)
        order = self._find(acct, msg.market, msg.oid, msg.by_cloid)
        spec = self._specs.get(msg.market)
        if acct is None or order is None or spec is None:
            self._answer(ctx, msg, Refusal("modifyRejected", CANNOT_MODIFY))
            return
        if order.modify is not None:
            self._answer(ctx, msg, Refusal("modifyRejected", "A modify of this order is pending."))
            return
        if msg.px <= 0 or msg.sz <= 0:
            self._answer(ctx, msg, Refusal("rejected", pretrade.INVALID))
            return
        mark_state = self.marks.get(msg.market)
        mark = mark_state.mark_px if mark_state else 0
        pos = acct.positions.get(msg.market)
        if msg.reduce_only:
            refusal = pretrade.reduce_only_error(pos.szi if pos else 0, msg.is_buy)
        else:
            refusal = pretrade.min_notional_error(spec, msg.px, msg.sz, mark)
            if refusal is None:
                refusal = pretrade.limit_error(
                    acct, spec, msg.is_buy, msg.sz, max(msg.px, mark), mark_state, order.oid
                )
        if refusal is not None:
            self._answer(ctx, msg, refusal)
            return
        available = self._available(acct)
        claimed = self._claim(acct, order)
        order.modify = PendingModify(
            req_id=msg.req_id,
            is_buy=msg.is_buy,
            px=msg.px,
            sz=msg.sz,
            tif=msg.tif,
            reduce_only=msg.reduce_only,
            cloid=msg.cloid or order.cloid,
            hold_px=0 if msg.reduce_only else max(msg.px, mark),
        )
        change = self._reprice_order(acct, spec, order.oid, claimed)
        added = change.added
        if added > 0 and added > available:
            order.modify = None
            self._holds.undo(change)
            self._answer(ctx, msg, pretrade.margin_refusal(spec))
            return
        self._changed(acct, msg.ts)
        ctx.emit(
            topics.MATCHER_IN,
            msg.market,
            ModifyRequest(
                ts=msg.ts,
                oid=order.oid,
                account=msg.account,
                market=msg.market,
                is_buy=msg.is_buy,
                px=msg.px,
                sz=msg.sz,
                tif=msg.tif,
                reduce_only=msg.reduce_only,
                cloid=order.modify.cloid,
                req_id=msg.req_id,
            ),
        )

    # ------------------------------------------------------------ from the matcher

    def _fill(self, msg: FillLeg, ctx: Context) -> None:
        spec = self._specs.get(msg.market)
        if spec is None or msg.sz <= 0 or msg.px <= 0:
            return
        acct = self._account(msg.account)
        before = self._liquidation_keys(acct)  # a closed isolated position takes its flag
        notional = msg.px * msg.sz
        if msg.kind == "trade":
            ppm = self._maker_ppm(acct, spec) if msg.is_maker else self._taker_ppm(acct, spec)
        else:  # backstop takeovers and ADL closes pay the market's transfer fee, if any
            ppm = spec.transfer_fee_ppm
        fee = fee_amount(notional, ppm)
        state = self.marks.get(msg.market)
        outcome = settle_fill(
            acct,
            spec,
            self._setting(acct, spec),
            msg.is_buy,
            msg.px,
            msg.sz,
            fee,
            state.cum_funding_index if state else 0,
        )
        self.venue.accrue_fee(
            fee, self.config.insurance_fee_share_ppm, self.config.vault_fee_share_ppm
        )
        self.venue.bad_debt += outcome.bad_debt
        self._venue_dirty = True
        order = acct.orders.get(msg.oid) if msg.oid else None
        if order is not None and order.market != msg.market:
            order = None  # an oid of another market's order: not this fill's order
        filled_sz, filled_ntl = msg.sz, notional
        if order is not None:
            order.filled_ntl += notional
            filled_ntl = order.filled_ntl
            # A modified order trading as it re-enters the book (a taker leg while the
            # modify is unanswered) gets its size from the modify's result instead.
            if order.modify is None or msg.is_maker:
                filled_sz = order.orig_sz - order.sz + msg.sz
                if msg.order_closed or msg.sz >= order.sz:
                    del acct.orders[msg.oid]
                else:
                    order.sz -= msg.sz
        self._reprice(acct, spec)
        self._changed(acct, msg.ts)
        if (
            msg.kind == "trade"
            and is_liquidation_order(msg.oid)
            and msg.account != BACKSTOP_VAULT_ACCOUNT  # the vault's own unwind pays no fee
        ):
            fee += self._liquidation_fee(acct, msg.market, notional, msg.ts, ctx)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            AccountFill(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                is_buy=msg.is_buy,
                px=msg.px,
                sz=msg.sz,
                fee=fee,
                is_maker=msg.is_maker,
                tid=msg.tid,
                closed_pnl=outcome.closed_pnl,
                start_position=outcome.start_position,
                kind=msg.kind,
            ),
        )
        if msg.is_maker and msg.order_closed:
            ctx.emit(
                topics.ACCOUNT_EVENTS,
                msg.account,
                OrderUpdate(
                    ts=msg.ts,
                    account=msg.account,
                    market=msg.market,
                    oid=msg.oid,
                    status="filled",
                    filled_sz=filled_sz,
                    filled_ntl=filled_ntl,
                ),
            )
        self._review([acct.address], msg.ts, ctx, msg.kind, {acct.address: before})
        if msg.account in VENUE_ACCOUNTS:
            self._export_venue_account(acct, ctx)
        if msg.account == BACKSTOP_VAULT_ACCOUNT:
            if msg.kind == "backstop" and msg.counterparty:
                self._count_takeover(msg.counterparty, ctx)
            self._vault_status(acct, msg.kind, msg.ts, ctx)

    def _order_result(self, msg: OrderResult, ctx: Context) -> None:
        self._forward_liquidation_result(msg, ctx)
        acct = self.accounts.get(msg.account)
        order = acct.orders.get(msg.oid) if acct is not None else None
        if acct is not None and order is not None:
            claimed, count = self._claim(acct, order), len(acct.orders)
            if self._settle_result(acct, order, msg):
                spec = self._specs.get(order.market)
                gone = count - len(acct.orders)
                if spec is not None and gone > (0 if order.oid in acct.orders else 1):
                    self._reprice(acct, spec)  # its unplaced TP/SL children went too
                elif spec is not None:
                    self._reprice_order(acct, spec, order.oid, claimed)
                self._changed(acct, msg.ts)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            OrderUpdate(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                status=msg.status,
                filled_sz=msg.filled_sz,
                resting_sz=msg.resting_sz,
                filled_ntl=msg.filled_ntl,
                error=msg.error,
                req_id=msg.req_id,
                cloid=msg.cloid,
            ),
        )

    def _settle_result(self, acct: AccountState, order: OpenOrderState, msg: OrderResult) -> bool:
        """Bring the order in line with the matcher's report; returns whether it changed."""
        status = msg.status
        pending = order.modify
        if pending is not None and msg.req_id == pending.req_id:
            order.modify = None
            if status == "resting":
                moved = not (
                    pending.px == order.px
                    and pending.is_buy == order.is_buy
                    and pending.sz <= order.sz
                    and pending.reduce_only == order.reduce_only
                )
                order.is_buy, order.px, order.tif = pending.is_buy, pending.px, pending.tif
                order.reduce_only, order.cloid = pending.reduce_only, pending.cloid
                order.hold_px = pending.hold_px
                order.sz = msg.resting_sz
                if moved:
                    order.orig_sz = pending.sz
                    order.filled_ntl = msg.filled_ntl
                return True
            if status in MODIFY_REFUSALS:
                return True  # the order rests as it was; the larger hold is released
            del acct.orders[order.oid]
            return True
        if status == "resting":
            order.placed = True
            if msg.resting_sz > 0:
                order.sz = msg.resting_sz
            return True
        if status == "triggered":
            order.kind = "limit"
            return True
        if status == "modifyRejected" or (status == "cancelRejected" and not order.placed):
            return False  # the order is untouched, or a TP/SL child awaits its parent
        # Any other outcome ends the order; so does a refused cancel of a placed order:
        # the matcher, which sequences the book, no longer has it.
        del acct.orders[order.oid]
        if status == "rejected" or status.endswith("Rejected"):
            # A parent refused outright never places its TP/SL children (the matcher may
            # not answer for them when it refuses the parent at admission).
            for child in [o for o in acct.orders.values() if o.parent == order.oid]:
                if not child.placed:
                    del acct.orders[child.oid]
        return True

    # ------------------------------------------------------------ marks and funding

    def _mark(self, msg: MarkUpdate, ctx: Context) -> None:
        if msg.mark_px <= 0 or msg.market not in self._specs:
            return
        previous = self.marks.get(msg.market)
        self.marks.put(
            msg.market,
            MarkState(
                market=msg.market,
                mark_px=msg.mark_px,
                index_px=msg.index_px,
                ts=msg.ts,
                cum_funding_index=previous.cum_funding_index if previous else 0,
                oracle_status=msg.oracle_status,
                open_interest=msg.open_interest,
            ),
        )
        cross_rows, isolated_rows = self.exposures.reprice(msg.market, msg.mark_px)
        if msg.market in self.markets.collateral:
            index_px = msg.index_px or msg.mark_px
            asset_rows = self.exposures.reprice_assets(
                msg.market, index_px, msg.oracle_status == VALID
            )
            if len(asset_rows):
                cross_rows = np.union1d(cross_rows, asset_rows)
        if ctx.live and msg.ts - self._exported_ts >= telemetry.EXPORT_EVERY_MS:
            self._exported_ts = msg.ts
            telemetry.export(self.partition, self.exposures)
        watched = [
            a for a in sorted(self._in_liquidation) if msg.market in self.accounts[a].positions
        ]
        before = {a: self._liquidation_keys(self.accounts[a]) for a in watched}
        found: set[str] = set()
        if len(cross_rows) or len(isolated_rows):
            addresses = self.exposures.addresses
            found = {addresses[int(r)] for r in cross_rows}
            found.update(addresses[int(r)] for r in isolated_rows)
            self._review(found, msg.ts, ctx, "mark")
        for address in watched:
            if address not in found:  # the review above reported the others
                self._report(self.accounts[address], before[address], "mark", msg.ts, ctx)
        vault = self.accounts.get(BACKSTOP_VAULT_ACCOUNT)
        held = vault.positions.get(msg.market) if vault is not None else None
        if vault is not None and held is not None and held.szi:
            self._vault_status(vault, "mark", msg.ts, ctx)

    def _funding(self, msg: FundingUpdate, ctx: Context) -> None:
        spec = self._specs.get(msg.market)
        state = self.marks.get(msg.market)
        oracle_px = msg.oracle_px or (state.index_px if state else 0) or msg.mark_px
        if spec is None or oracle_px <= 0:
            return
        if state is None:  # no mark yet: the index is kept, positions stay valued at cost
            state = MarkState(market=msg.market, mark_px=0, index_px=oracle_px, ts=msg.ts)
            self.marks.put(msg.market, state)
        state.cum_funding_index += msg.rate_ppb * oracle_px
        self.marks.touch(msg.market)
        cum = state.cum_funding_index
        slots = self.exposures.markets[msg.market]
        holders = sorted(self.exposures.addresses[int(r)] for r in slots.rows[: slots.count])
        for address in holders:
            acct = self.accounts[address]
            pos = acct.positions[msg.market]
            szi = pos.szi
            received = settle_funding(pos, acct, cum)
            self.venue.keep_funding_residual(msg.market, -received)
            self._changed(acct, msg.ts)
            ctx.emit(
                topics.ACCOUNT_EVENTS,
                address,
                FundingPayment(
                    ts=msg.ts,
                    account=address,
                    market=msg.market,
                    szi=szi,
                    rate_ppb=msg.rate_ppb,
                    usd=received,
                ),
            )
        if holders:
            self._venue_dirty = True
            self._review(holders, msg.ts, ctx)
        self._pay_out_fee_shares(msg.ts, ctx)

    def _pay_out_fee_shares(self, ts: int, ctx: Context) -> None:
        """At each funding settlement, the insurance fund's and the vault's shares of the
        fees accrued since the last one move from the ledger to their accounts."""
        for account, amount in (
            (INSURANCE_FUND_ACCOUNT, self.venue.insurance - self.venue.insurance_paid),
            (BACKSTOP_VAULT_ACCOUNT, self.venue.vault - self.venue.vault_paid),
        ):
            if amount <= 0:
                continue
            if account == INSURANCE_FUND_ACCOUNT:
                self.venue.insurance_paid += amount
            else:
                self.venue.vault_paid += amount
            self._venue_dirty = True
            ctx.emit(
                topics.RISK_IN,
                account,
                TransferIn(
                    ts=ts, account=account, source="venue", usd=amount, transfer_id=ctx.source_id
                ),
            )

    # ------------------------------------------------------------ decisions

    def _review(
        self,
        addresses: Iterable[str],
        ts: int,
        ctx: Context,
        reason: str = "change",
        before: Mapping[str, list[str]] | None = None,
    ) -> None:
        """Margin calls, margin cancels and liquidation triggers for these accounts; the
        triggers go out largest shortfall first, ties by account then market. Accounts
        in liquidation then report their status (``reason``) to the liquidator."""
        triggers: list[Trigger] = []
        reviewed: list[tuple[AccountState, list[str]]] = []
        for address in sorted(set(addresses)):
            acct = self.accounts.get(address)
            if acct is not None:
                known = before.get(address) if before is not None else None
                reviewed.append((acct, self._liquidation_keys(acct) if known is None else known))
                self._review_account(acct, ts, ctx, triggers)
        triggers.sort()  # (account, market) is unique: equal shortfalls never compare further
        for _, address, market, equity, maintenance in triggers:
            # the case's first status rides in the trigger: one record per new case
            first = self._status_of(self.accounts[address], market, True, "trigger", ts)
            ctx.emit(
                topics.LIQUIDATIONS,
                address,
                LiquidationTrigger(
                    ts=ts,
                    account=address,
                    equity=equity,
                    maintenance=maintenance,
                    market=market,
                    status=first,
                ),
            )
            self._in_liquidation.add(address)
        opened = {address for _, address, _, _, _ in triggers}
        for acct, keys in reviewed:
            if keys or acct.address not in opened:  # a new case: its status rode in the trigger
                self._report(acct, keys, reason, ts, ctx)

    def _margin_call(
        self,
        address: str,
        market: str,
        previous: int,
        equity: int,
        maintenance: int,
        ts: int,
        ctx: Context,
    ) -> int:
        """The margin-call level now (percent of equity used by maintenance); a level
        higher than the last one notified is announced (``market`` empty for cross)."""
        level = call_level(equity, maintenance, self.config.margin_call_levels)
        if level > previous:
            ctx.emit(
                topics.ACCOUNT_EVENTS,
                address,
                MarginCall(
                    ts=ts,
                    account=address,
                    level_pct=level,
                    equity=equity,
                    maintenance=maintenance,
                    market=market,
                ),
            )
        return level

    def _review_account(
        self, acct: AccountState, ts: int, ctx: Context, triggers: list[Trigger]
    ) -> None:
        ex = self.exposures
        row = ex.row(acct.address)
        equity = ex.equity(row)
        maintenance = ex.maintenance_of(row)
        changed = False
        level = self._margin_call(
            acct.address, "", acct.margin_call_pct, equity, maintenance, ts, ctx
        )
        if level != acct.margin_call_pct:
            acct.margin_call_pct = level
            changed = True
        below = below_maintenance(equity, maintenance) or self._owes(acct, row)
        below = below and acct.address not in VENUE_ACCOUNTS
        if below and not acct.liquidating:
            cross_markets = [m for m, p in acct.positions.items() if p.is_cross and p.szi]
            if acct.assets:
                cross_markets.extend(sorted(a for a, lots in acct.assets.items() if lots))
            if self._oracles_valid(cross_markets):
                acct.liquidating = changed = True
                triggers.append((equity - maintenance, acct.address, "", equity, maintenance))
        elif not below and acct.liquidating:
            acct.liquidating = False
            changed = True
        for market, pos in acct.positions.items():
            if not pos.is_cross and pos.szi:
                changed |= self._review_isolated(acct, market, row, ts, ctx, triggers)
        active = int(ex.active_holds[row])
        free = equity - ex.initial_of(row)
        if active > 0 and active > free:
            self._margin_cancel(acct, free, ts, ctx)
            self._changed(acct, ts)
        elif changed:
            acct.updated = ts
            self.accounts.touch(acct.address)
            ex.sync_flags(acct)

    def _review_isolated(
        self,
        acct: AccountState,
        market: str,
        row: int,
        ts: int,
        ctx: Context,
        triggers: list[Trigger],
    ) -> bool:
        """An isolated position against its own margin: margin calls and its trigger."""
        pos = acct.positions[market]
        slots = self.exposures.markets[market]
        s = slots.slot_of[row]
        equity = int(slots.iso_base[s] + slots.value[s])
        maintenance = int(slots.maintenance[s])
        changed = False
        level = self._margin_call(
            acct.address, market, pos.margin_call_pct, equity, maintenance, ts, ctx
        )
        if level != pos.margin_call_pct:
            pos.margin_call_pct = level
            changed = True
        below = below_maintenance(equity, maintenance) and acct.address not in VENUE_ACCOUNTS
        if below and not pos.liquidating and self._oracles_valid([market]):
            pos.liquidating = changed = True
            triggers.append((equity - maintenance, acct.address, market, equity, maintenance))
        elif not below and pos.liquidating:
            pos.liquidating = False
            changed = True
        return changed

    def _owes(self, acct: AccountState, row: int) -> bool:
        """A USDC liability with no cross position left, behind collateral assets that
        count for something: the liquidator sells them to repay it (a liability is
        never left standing on assets whose price may fall)."""
        if acct.collateral >= 0 or not acct.assets:
            return False
        crossed = any(p.szi and p.is_cross for p in acct.positions.values())
        return liability_on_assets(acct.collateral, int(self.exposures.asset_equity[row]), crossed)

    def _oracles_valid(self, markets: Iterable[str]) -> bool:
        """No liquidation on a price whose oracle is stale, short of sources or halted."""
        for market in markets:
            state = self.marks.get(market)
            if state is not None and state.oracle_status != VALID:
                return False
        return True

    def _margin_cancel(self, acct: AccountState, free: int, ts: int, ctx: Context) -> None:
        """Holds exceed free margin: cancel the account's orders market by market, the
        market of its newest holding order first, until the rest fits (all if nothing is
        free). The holds stay until the matcher confirms each ``marginCanceled``."""
        newest: dict[str, int] = {}
        remaining = 0
        for order in acct.orders.values():
            if order.hold > 0 and not order.canceling:
                remaining += order.hold
                newest[order.market] = max(newest.get(order.market, 0), order.oid)
        for market in sorted(newest, key=lambda m: (-newest[m], m)):
            if remaining <= max(free, 0):
                break
            for order in acct.orders.values():
                if order.market == market and not order.canceling:
                    order.canceling = True
                    remaining -= order.hold
            ctx.emit(
                topics.MATCHER_IN,
                market,
                CancelAll(ts=ts, account=acct.address, market=market, status="marginCanceled"),
            )

    # ------------------------------------------------------------ liquidation hooks

    def _liquidation_keys(self, acct: AccountState) -> list[str]:
        """The open liquidations of an account: "" for the cross account, then markets of
        isolated positions, sorted."""
        isolated = [m for m, p in acct.positions.items() if p.liquidating]
        if len(isolated) > 1:
            isolated.sort()
        return ["", *isolated] if acct.liquidating else isolated

    def _report(
        self, acct: AccountState, before: list[str], reason: str, ts: int, ctx: Context
    ) -> None:
        """After a change to an account in liquidation, its status to the liquidator: one
        per open case, and a last one (``below`` false) for a case that just ended."""
        after = self._liquidation_keys(acct)
        if not before:  # nothing was open: a case opened here sent its status already
            if after:
                self._in_liquidation.add(acct.address)
            return
        if after:
            self._in_liquidation.add(acct.address)
        else:
            self._in_liquidation.discard(acct.address)
        for key in sorted(set(before) | set(after)):
            if key in before:  # a case opened in this record already sent its status
                self._emit_status(acct, key, key in after, reason, ts, ctx)

    def _emit_status(
        self, acct: AccountState, market: str, below: bool, reason: str, ts: int, ctx: Context
    ) -> None:
        status = self._status_of(acct, market, below, reason, ts)
        ctx.emit(topics.LIQUIDATIONS, acct.address, status)

    def _status_of(
        self, acct: AccountState, market: str, below: bool, reason: str, ts: int
    ) -> LiquidationStatus:
        ex = self.exposures
        row = ex.row(acct.address)
        positions = []
        asset_value = 0
        if market:
            pos = acct.positions.get(market)
            equity = maintenance = 0
            if pos is not None:
                slots = ex.markets[market]
                s = slots.slot_of[row]
                equity = int(slots.iso_base[s] + slots.value[s])
                maintenance = int(slots.maintenance[s])
                positions.append(self._liquidated_position(market, pos))
        else:
            equity, maintenance = ex.equity(row), ex.maintenance_of(row)
            asset_value = int(ex.asset_equity[row]) if acct.assets else 0
            held = acct.positions
            for name in sorted(held) if len(held) > 1 else held:
                pos = held[name]
                if pos.is_cross and pos.szi:
                    positions.append(self._liquidated_position(name, pos))
        return LiquidationStatus(
            ts=ts,
            account=acct.address,
            market=market,
            equity=equity,
            maintenance=maintenance,
            collateral=acct.collateral,
            positions=tuple(positions),
            below=below,
            reason=reason,
            open_orders=self._orders_in(acct, positions),
            asset_value=asset_value,
        )

    @staticmethod
    def _orders_in(acct: AccountState, positions: list[LiquidatedPosition]) -> bool:
        """Whether the account has an order (resting, triggering or on its way to the
        matcher) in a market of these positions."""
        if not acct.orders:
            return False
        markets = {p.market for p in positions}
        return any(o.market in markets for o in acct.orders.values())

    def _vault_status(self, vault: AccountState, reason: str, ts: int, ctx: Context) -> None:
        """The backstop vault's positions at their marks, to the liquidator (which
        unwinds them through the book) after each of its fills and each mark of a market
        it holds; ``below`` is always false: the vault is never liquidated."""
        ex = self.exposures
        row = ex.row(vault.address)
        positions = tuple(
            self._liquidated_position(name, vault.positions[name])
            for name in sorted(vault.positions)
            if vault.positions[name].szi
        )
        ctx.emit(
            topics.LIQUIDATIONS,
            vault.address,
            LiquidationStatus(
                ts=ts,
                account=vault.address,
                equity=ex.equity(row),
                maintenance=int(ex.maintenance[row]),
                collateral=vault.collateral,
                positions=positions,
                below=False,
                reason=reason,
            ),
        )

    def _count_takeover(self, counterparty: str, ctx: Context) -> None:
        """A backstop takeover landed on the vault: one more for the liquidator partition
        of the case (keyed by the account that gave the position up)."""
        partition = partition_for(counterparty, ctx.topics.partitions(topics.LIQUIDATIONS))
        counts = self.venue.vault_takeovers
        if len(counts) <= partition:
            counts.extend([0] * (partition + 1 - len(counts)))
        counts[partition] += 1
        self._venue_dirty = True

    def _vault_capacity(self, ts: int, ctx: Context) -> None:
        """On the vault's partition, after an input that may have changed it: the vault's
        equity, maintenance and takeover counts to every liquidator partition, when one
        of them (or a market's terms) differs from the last status."""
        vault = self.accounts.get(BACKSTOP_VAULT_ACCOUNT)
        if vault is None:
            return
        ex = self.exposures
        row = ex.row(vault.address)
        equity, maintenance = ex.equity(row), ex.maintenance_of(row)
        notional = 0
        for market, pos in vault.positions.items():
            if pos.szi:
                mark = self._mark_px(market)
                notional += abs(pos.szi) * mark if mark else pos.entry_ntl
        terms = self._vault_terms
        if terms is None:
            terms = self._vault_terms = self._takeover_terms()
        counts = self.venue.vault_takeovers
        reported = [equity, maintenance, notional, len(counts), *counts]
        for term in terms:
            reported += (term.maintenance_ppm, term.fee_ppm)
        if reported == self.venue.vault_reported:
            return
        self.venue.vault_reported = reported
        self._venue_dirty = True
        ctx.broadcast(
            topics.LIQUIDATIONS,
            vault.address,
            VaultStatus(
                ts=ts,
                account=vault.address,
                equity=equity,
                maintenance=maintenance,
                notional=notional,
                takeovers=tuple(counts),
                terms=terms,
            ),
        )

    def _takeover_terms(self) -> tuple[VaultMarketTerms, ...]:
        """Per market, by name: the top tier's maintenance rate (ppm, rounded up) and
        the transfer fee, the most a takeover there can add per dollar of notional."""
        terms = []
        for name in sorted(self._specs):
            spec = self._specs[name]
            table = margin_table(spec)
            top = max(table.rates)
            terms.append(
                VaultMarketTerms(
                    market=name,
                    maintenance_ppm=div_ceil(top * PPM, table.scale),
                    fee_ppm=max(0, spec.transfer_fee_ppm),
                )
            )
        return tuple(terms)

    def _liquidated_position(self, market: str, pos: PositionState) -> LiquidatedPosition:
        mark = self._mark_px(market) or pos.entry_ntl // abs(pos.szi)
        # position_terms' maintenance without its other terms (valued at cost without a mark)
        notional = abs(pos.szi * mark) if mark else pos.entry_ntl
        return LiquidatedPosition(
            market=market,
            szi=pos.szi,
            entry_ntl=pos.entry_ntl,
            mark_px=mark,
            maintenance=margin_table(self._specs[market]).maintenance(notional),
            is_cross=pos.is_cross,
            isolated_margin=pos.isolated_margin,
        )

    def _liquidation_fee(
        self, acct: AccountState, market: str, notional: int, ts: int, ctx: Context
    ) -> int:
        """The fee of a liquidation fill, to the insurance fund and (its configured share)
        the backstop vault: at most the equity the account (or isolated position) has
        left, so the fee never creates a deficit."""
        ex = self.exposures
        row = ex.row(acct.address)
        pos = acct.positions.get(market)
        if pos is not None and not pos.is_cross:
            slots = ex.markets[market]
            s = slots.slot_of[row]
            left = int(slots.iso_base[s] + slots.value[s])
        else:  # cross, or an isolated position that closed into collateral
            left = ex.equity(row)
        fee = min(fee_amount(notional, self.config.liquidation_fee_ppm), max(left, 0))
        if fee <= 0:
            return 0
        if pos is not None and not pos.is_cross:
            pos.isolated_margin -= fee
        else:
            acct.collateral -= fee
        self._changed(acct, ts)
        to_vault = fee * self.config.vault_liquidation_fee_share_ppm // PPM
        for venue_account, amount in (
            (INSURANCE_FUND_ACCOUNT, fee - to_vault),
            (BACKSTOP_VAULT_ACCOUNT, to_vault),  # the LPs' premium for the tail risk
        ):
            if amount > 0:
                ctx.emit(
                    topics.RISK_IN,
                    venue_account,
                    TransferIn(
                        ts=ts,
                        account=venue_account,
                        source=acct.address,
                        usd=amount,
                        transfer_id=ctx.source_id,
                    ),
                )
        return fee

    def _forward_liquidation_result(self, msg: OrderResult, ctx: Context) -> None:
        """Results of the liquidator's orders and transfers go back to its case: a
        liquidation order names the account; a transfer names it in ``req_id``
        (``liq:<account>:...``)."""
        if is_liquidation_order(msg.oid):
            case_account = msg.account
        elif msg.oid == 0 and msg.req_id.startswith("liq:"):
            case_account = msg.req_id.split(":")[1]
        else:
            return
        if msg.status == "resting":
            return
        ctx.emit(
            topics.LIQUIDATIONS,
            case_account,
            LiquidationReport(
                ts=msg.ts,
                account=case_account,
                market=msg.market,
                oid=msg.oid,
                status=msg.status,
                filled_sz=msg.filled_sz,
                error=msg.error,
                req_id=msg.req_id,
            ),
        )

    def _insurance_claim(self, msg: InsuranceClaim, ctx: Context) -> None:
        """On the fund's partition: pay what the fund can of the claim, down to its floor
        (``insurance_floor``); the liquidator turns to ADL for the rest."""
        fund = self.accounts.get(msg.account)
        balance = fund.collateral if fund is not None else 0
        paid = 0
        if fund is not None and msg.account == INSURANCE_FUND_ACCOUNT and msg.usd > 0:
            paid = min(msg.usd, max(0, balance - self.config.insurance_floor))
        if fund is not None and paid > 0:
            fund.collateral -= paid
            balance = fund.collateral
            self._changed(fund, msg.ts)
            self._balance(ctx, msg.ts, fund.address, -paid, "insuranceClaim", msg.case_id)
            ctx.emit(
                topics.RISK_IN,
                msg.beneficiary,
                InsuranceCredit(
                    ts=msg.ts,
                    account=msg.beneficiary,
                    usd=paid,
                    market=msg.market,
                    case_id=msg.case_id,
                ),
            )
            self._export_venue_account(fund, ctx)
        ctx.emit(
            topics.LIQUIDATIONS,
            msg.beneficiary,
            InsuranceAnswer(
                ts=msg.ts,
                account=msg.beneficiary,
                usd=msg.usd,
                granted=paid == msg.usd,
                balance=balance,
                market=msg.market,
                case_id=msg.case_id,
                paid=paid,
            ),
        )

    def _collateral_sale(self, msg: CollateralSale, ctx: Context) -> None:
        """On the account's partition: repay its USDC liability by selling collateral
        assets to the backstop vault at what they counted for in equity (the oracle price
        after the haircut), asset by asset in name order, the fewest lots that cover it.
        The USDC is credited here at once and the vault pays on its own partition
        (``AssetTakeover``), as a transfer does. Only assets whose oracle is valid are
        sold; the account's status (reason ``convert``) answers the liquidator."""
        acct = self.accounts.get(msg.account)
        if acct is None:
            return
        ex = self.exposures
        row = ex.row(acct.address)
        sold = False
        if self._owes(acct, row):
            for asset in sorted(acct.assets):
                owed = -acct.collateral
                spec = self.markets.collateral.get(asset)
                px, valid = ex.prices.get(asset, (0, False))
                held = acct.assets[asset]
                if owed <= 0:
                    break
                if spec is None or not valid or px <= 0:
                    continue
                lots = lots_to_cover(spec, px, owed, held)
                usd = haircut_value(spec, lots * px)
                if lots <= 0 or usd <= 0:
                    continue
                self._set_asset(acct, asset, held - lots)
                acct.collateral += usd
                sold = True
                self._sale_balance(ctx, msg.ts, acct, asset, -lots, usd, msg.case_id)
                ctx.emit(
                    topics.RISK_IN,
                    BACKSTOP_VAULT_ACCOUNT,
                    AssetTakeover(
                        ts=msg.ts,
                        account=BACKSTOP_VAULT_ACCOUNT,
                        seller=acct.address,
                        asset=asset,
                        lots=lots,
                        usd=usd,
                        case_id=msg.case_id,
                    ),
                )
        keys = self._liquidation_keys(acct)
        if sold:
            self._changed(acct, msg.ts)
        elif acct.liquidating:  # nothing could be sold (an oracle not valid): the case
            acct.liquidating = False  # ends; the next valid price opens a new one
            self.accounts.touch(acct.address)
            ex.sync_flags(acct)
        self._review([acct.address], msg.ts, ctx, "convert", {acct.address: keys})

    def _asset_takeover(self, msg: AssetTakeover, ctx: Context) -> None:
        """On the vault's partition: the vault holds the lots it bought and pays for
        them (its USDC may go below zero against them, as any account's may)."""
        if msg.lots <= 0 or msg.usd < 0:
            return
        vault = self._account(msg.account)
        vault.assets[msg.asset] = vault.assets.get(msg.asset, 0) + msg.lots
        vault.collateral -= msg.usd
        self._changed(vault, msg.ts)
        self._sale_balance(ctx, msg.ts, vault, msg.asset, msg.lots, -msg.usd, msg.case_id)
        if msg.account in VENUE_ACCOUNTS:
            self._export_venue_account(vault, ctx)

    @staticmethod
    def _sale_balance(
        ctx: Context, ts: int, acct: AccountState, asset: str, lots: int, usd: int, case_id: str
    ) -> None:
        """The two sides of a collateral sale on the account's ledger: the USDC (``delta``)
        and the asset's new balance."""
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            acct.address,
            BalanceUpdate(
                ts=ts,
                account=acct.address,
                collateral=acct.collateral,
                delta=usd,
                reason="collateralSale",
                req_id=case_id,
                asset=asset,
                asset_balance=acct.assets.get(asset, 0),
            ),
        )

    def _bad_debt_notice(self, msg: BadDebtNotice, ctx: Context) -> None:
        """The liquidator's notice that a case with negative equity opened or ended:
        withdrawals and transfers out wait while any is open (on every partition)."""
        if msg.open:
            self.venue.open_bad_debt[msg.case_id] = msg.usd
        elif self.venue.open_bad_debt.pop(msg.case_id, None) is None:
            return
        self._venue_dirty = True
        if ctx.live:
            metrics.OPEN_BAD_DEBT_CASES.labels(str(self.partition)).set(
                len(self.venue.open_bad_debt)
            )

    def _insurance_credit(self, msg: InsuranceCredit, ctx: Context) -> None:
        if msg.usd <= 0:
            return
        acct = self._account(msg.account)
        pos = acct.positions.get(msg.market) if msg.market else None
        if pos is not None and not pos.is_cross:
            pos.isolated_margin += msg.usd
        else:
            acct.collateral += msg.usd
        self._changed(acct, msg.ts)
        self._balance(ctx, msg.ts, msg.account, msg.usd, "insuranceCredit", msg.case_id)
        self._review([acct.address], msg.ts, ctx, "credit")

    def _adl_query(self, msg: AdlQuery, ctx: Context) -> None:
        """This partition's positions on the asked side of the market, with their
        accounts' values (cross equity, or the isolated position's own equity); accounts
        in liquidation, with no value, or the venue's own are not candidates."""
        ex = self.exposures
        slots = ex.markets.get(msg.market)
        found: list[AdlCandidate] = []
        if slots is not None:
            rows = [int(r) for r in slots.rows[: slots.count]]
            for address in sorted(ex.addresses[r] for r in rows):
                if address == msg.account or address in VENUE_ACCOUNTS:
                    continue
                acct = self.accounts[address]
                pos = acct.positions.get(msg.market)
                if pos is None or not pos.szi or (pos.szi > 0) != msg.counterparty_is_long:
                    continue
                row = ex.row(address)
                if pos.is_cross:
                    value = ex.equity(row)
                    busy = acct.liquidating
                else:
                    s = slots.slot_of[row]
                    value = int(slots.iso_base[s] + slots.value[s])
                    busy = pos.liquidating
                if value > 0 and not busy:
                    found.append(
                        AdlCandidate(
                            account=address,
                            szi=pos.szi,
                            entry_ntl=pos.entry_ntl,
                            account_value=value,
                        )
                    )
        ctx.emit(
            topics.LIQUIDATIONS,
            msg.account,
            AdlCandidates(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                partition=self.partition,
                mark_px=self._mark_px(msg.market),
                candidates=tuple(found),
                case_id=msg.case_id,
            ),
        )

    # ------------------------------------------------------------ market configuration

    def _market_configured(self, msg: MarketConfigured, ctx: Context) -> None:
        """An operator's change of a market, as its matcher applied it: the new limits,
        fees and margin tiers hold from this record on; positions are revalued with the
        new tiers at once and reviewed on the market's next mark."""
        if msg.error or msg.market not in self._specs:
            return
        self.overrides.by_market[msg.market] = msg.overrides
        self._overrides_dirty = True
        self._use_spec(with_overrides(self.table.by_name(msg.market), msg.overrides))
        marks = {m.market: m.mark_px for m in self.marks.values() if m.market in self._specs}
        prices = oracle_prices({m.market: m for m in self.marks.values()})
        self.exposures.rebuild(self.accounts.values(), marks, prices)

    def _use_spec(self, spec: MarketSpec) -> None:
        self.markets.update(spec)
        self._specs[spec.name] = spec
        self._vault_terms = None
        self.exposures.registry = self.markets

    def _export_venue_account(self, acct: AccountState, ctx: Context) -> None:
        """The fund's balance, the vault's equity, NAV per share and shares as gauges
        (live only)."""
        if not ctx.live:
            return
        row = self.exposures.row(acct.address)
        if acct.address == INSURANCE_FUND_ACCOUNT:
            metrics.INSURANCE_FUND.set(acct.collateral / 1_000_000)
            peak = max(self.venue.insurance_peak, acct.collateral)
            metrics.INSURANCE_FUND_DRAWDOWN.set((peak - acct.collateral) / 1_000_000)
            metrics.INSURANCE_FUND_DRAWDOWN_RATIO.set(
                (peak - acct.collateral) / peak if peak > 0 else 0.0
            )
        elif acct.address == BACKSTOP_VAULT_ACCOUNT:
            metrics.VAULT_EQUITY.set(self.exposures.equity(row) / 1_000_000)
            ledger = self.vaults.get(acct.address)
            if ledger is not None:
                metrics.VAULT_SHARES.set(ledger.total_shares)
                if ledger.total_shares:
                    value, _ = self._vault_value(acct)
                    metrics.VAULT_NAV_PER_SHARE.set(value / ledger.total_shares)

    # ------------------------------------------------------------ the vault's LPs

    def _vault_value(self, acct: AccountState | None) -> tuple[int, int]:
        """A vault account's value at the marks (cross equity and isolated positions'
        equity) and its free collateral (what it could withdraw now)."""
        if acct is None:
            return 0, 0
        marks = {m.market: m.mark_px for m in self.marks.values()}
        summary = AccountSummary(acct, marks, self.markets)
        return summary.account_value, summary.withdrawable

    def _vault_answer(
        self, ctx: Context, msg: VaultDeposit | VaultWithdrawal, error: str | None = None
    ) -> None:
        """The answer to the LP's ``vaultTransfer``, from the vault's partition."""
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.depositor,
            ActionResult(
                ts=msg.ts,
                account=msg.depositor,
                action="vaultTransfer",
                req_id=msg.req_id,
                error=error,
            ),
        )

    def _vault_update(
        self,
        ctx: Context,
        msg: VaultDeposit | VaultWithdrawal,
        ledger: VaultShares,
        stake: VaultStake,
        usd: int,
        shares: int,
    ) -> None:
        equity, _ = self._vault_value(self.accounts.get(msg.account))
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.depositor,
            VaultUpdate(
                ts=msg.ts,
                account=msg.depositor,
                vault=msg.account,
                usd=usd,
                shares=shares,
                lp_shares=stake.shares,
                locked_until=stake.locked_until,
                vault_equity=equity,
                total_shares=ledger.total_shares,
            ),
        )

    def _vault_transfer(self, msg: VaultTransfer, ctx: Context) -> None:
        """On the LP's partition: a deposit leaves the LP's collateral (within
        withdrawable) for the vault's partition, in this transaction; a withdrawal is
        asked of the vault's partition, which alone knows the shares."""
        acct = self.accounts.get(msg.account)
        error = None
        if msg.usd <= 0:
            error = "Amount must be positive."
        elif msg.vault != BACKSTOP_VAULT_ACCOUNT:
            error = f"Vault {msg.vault} does not exist."
        elif msg.account in VENUE_ACCOUNTS:
            error = "The venue's own accounts cannot hold vault shares."
        elif msg.is_deposit and (acct is None or not self._spendable(acct, msg.usd)):
            error = "Insufficient balance."
        if error is not None:
            self._action(ctx, msg, "vaultTransfer", error)
            return
        if not msg.is_deposit:
            ctx.emit(
                topics.RISK_IN,
                msg.vault,
                VaultWithdrawal(
                    ts=msg.ts,
                    account=msg.vault,
                    depositor=msg.account,
                    usd=msg.usd,
                    req_id=msg.req_id,
                ),
            )
            return
        assert acct is not None
        acct.collateral -= msg.usd
        self._changed(acct, msg.ts)
        self._balance(ctx, msg.ts, msg.account, -msg.usd, "vaultDeposit")
        ctx.emit(
            topics.RISK_IN,
            msg.vault,
            VaultDeposit(
                ts=msg.ts,
                account=msg.vault,
                depositor=msg.account,
                usd=msg.usd,
                transfer_id=ctx.source_id,
                req_id=msg.req_id,
            ),
        )
        self._review([acct.address], msg.ts, ctx)

    def _vault_deposit(self, msg: VaultDeposit, ctx: Context) -> None:
        """On the vault's partition: price the deposit at NAV and mint the shares, or
        refund it to the LP (in this transaction) with the reason."""
        if msg.usd <= 0:
            return
        ledger = self.vaults.get(msg.account) or VaultShares(vault=msg.account)
        value, _ = self._vault_value(self.accounts.get(msg.account))
        priced: vault.Minted | str = f"Vault {msg.account} does not exist."
        if msg.account == BACKSTOP_VAULT_ACCOUNT:
            priced = vault.price_deposit(msg.usd, value, ledger.total_shares)
        if isinstance(priced, str):
            ctx.emit(
                topics.RISK_IN,
                msg.depositor,
                VaultPayout(
                    ts=msg.ts,
                    account=msg.depositor,
                    vault=msg.account,
                    usd=msg.usd,
                    transfer_id=ctx.source_id,
                    reason="vaultRefund",
                ),
            )
            self._vault_answer(ctx, msg, priced)
            return
        stake = vault.mint(
            ledger, msg.depositor, msg.usd, priced, msg.ts, self.config.vault_lockup_ms
        )
        self.vaults.put(msg.account, ledger)
        acct = self._account(msg.account)
        acct.collateral += msg.usd
        self._changed(acct, msg.ts)
        self._vault_answer(ctx, msg)
        self._balance(ctx, msg.ts, acct.address, msg.usd, "vaultDeposit")
        self._vault_update(ctx, msg, ledger, stake, msg.usd, priced.shares)
        self._review([acct.address], msg.ts, ctx)
        self._export_venue_account(acct, ctx)

    def _vault_withdrawal(self, msg: VaultWithdrawal, ctx: Context) -> None:
        """On the vault's partition: burn the LP's shares at NAV and pay it (in this
        transaction), unless locked, beyond its stake, or beyond the vault's free
        collateral."""
        ledger = self.vaults.get(msg.account)
        acct = self.accounts.get(msg.account)
        value, free = self._vault_value(acct)
        burnt: int | str = vault.NO_SHARES
        if msg.usd <= 0:
            burnt = "Amount must be positive."
        elif ledger is not None and acct is not None:
            stake = ledger.stakes.get(msg.depositor)
            burnt = vault.price_withdrawal(msg.usd, stake, value, ledger, msg.ts)
            if not isinstance(burnt, str) and msg.usd > free:
                burnt = (
                    f"The vault cannot pay ${format_usd(msg.usd)} now: only "
                    f"${format_usd(free)} of its collateral is free of margin."
                )
        if isinstance(burnt, str) or ledger is None or acct is None:
            self._vault_answer(ctx, msg, burnt if isinstance(burnt, str) else vault.NO_SHARES)
            return
        stake = vault.burn(ledger, msg.depositor, msg.usd, burnt, msg.ts)
        self.vaults.touch(msg.account)
        acct.collateral -= msg.usd
        self._changed(acct, msg.ts)
        self._vault_answer(ctx, msg)
        self._balance(ctx, msg.ts, acct.address, -msg.usd, "vaultWithdraw")
        ctx.emit(
            topics.RISK_IN,
            msg.depositor,
            VaultPayout(
                ts=msg.ts,
                account=msg.depositor,
                vault=msg.account,
                usd=msg.usd,
                transfer_id=ctx.source_id,
                reason="vaultWithdraw",
            ),
        )
        self._vault_update(ctx, msg, ledger, stake, -msg.usd, -burnt)
        self._review([acct.address], msg.ts, ctx)
        self._export_venue_account(acct, ctx)

    def _vault_payout(self, msg: VaultPayout, ctx: Context) -> None:
        """On the LP's partition: a withdrawal paid, or a refused deposit refunded."""
        if msg.usd <= 0:
            return
        acct = self._account(msg.account)
        acct.collateral += msg.usd
        self._changed(acct, msg.ts)
        self._balance(ctx, msg.ts, msg.account, msg.usd, msg.reason)
        self._review([acct.address], msg.ts, ctx)


__all__ = ["VENUE_KEY", "RiskCore", "VenueLedger"]
