"""The liquidator's core: open liquidation cases, one per account in trouble.

The waterfall (book, backstop vault, insurance fund, ADL) lands with #6; this core
already records every trigger as a case and audits it, deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from libs.common import topics
from libs.common.runtime import ChangeTracked, Context
from libs.common.schemas import LiquidationStep, LiquidationTrigger

CASE_PREFIX = "case:"


class LiquidationCase(msgspec.Struct, kw_only=True):
    account: str
    opened: int
    equity: int
    maintenance: int
    triggers: int = 1
    stage: str = "triggered"


class LiquidatorCore:
    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.cases: ChangeTracked[LiquidationCase] = ChangeTracked(CASE_PREFIX, LiquidationCase)

    def apply(self, message: Any, ctx: Context) -> None:
        if not isinstance(message, LiquidationTrigger):
            return
        case = self.cases.get(message.account)
        if case is None:
            case = LiquidationCase(
                account=message.account,
                opened=message.ts,
                equity=message.equity,
                maintenance=message.maintenance,
            )
            self.cases.put(message.account, case)
        else:
            case.triggers += 1
            case.equity, case.maintenance = message.equity, message.maintenance
            self.cases.touch(message.account)
        ctx.emit(
            topics.LIQUIDATION_AUDIT,
            message.account,
            LiquidationStep(
                ts=message.ts,
                account=message.account,
                stage=case.stage,
                detail=f"equity={message.equity} maintenance={message.maintenance}",
            ),
        )

    def take_changes(self) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        self.cases.take_changes(changes)
        return changes

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.cases.restore(entries)
