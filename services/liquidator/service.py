"""The liquidator service: the waterfall's cases on the processor runtime, by account."""

from __future__ import annotations

from libs.common import topics
from libs.common.runtime.core import CoreFactory
from libs.common.runtime.launcher import launch, processor_main
from libs.common.settings import Settings
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig

SERVICE = "liquidator"


def core_factory(settings: Settings) -> CoreFactory:
    config = LiquidatorConfig.from_settings(settings)
    return lambda partition: LiquidatorCore(partition, config)


def main() -> None:
    launch(SERVICE, processor_main(SERVICE, topics.LIQUIDATIONS, core_factory))
