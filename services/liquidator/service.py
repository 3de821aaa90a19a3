"""The liquidator service: liquidation cases on the processor runtime, by account."""

from __future__ import annotations

from libs.common import topics
from libs.common.runtime.core import CoreFactory
from libs.common.runtime.launcher import launch, processor_main
from libs.common.settings import Settings
from services.liquidator.cases import LiquidatorCore

SERVICE = "liquidator"


def core_factory(settings: Settings) -> CoreFactory:
    return LiquidatorCore


def main() -> None:
    launch(SERVICE, processor_main(SERVICE, topics.LIQUIDATIONS, core_factory))
