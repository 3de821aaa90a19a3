"""The risk service: the risk core on the processor runtime, by account."""

from __future__ import annotations

from libs.common import topics
from libs.common.runtime.core import CoreFactory
from libs.common.runtime.launcher import launch, processor_main
from libs.common.settings import Settings
from services.risk.config import RiskConfig
from services.risk.engine import RiskCore

SERVICE = "risk"


def core_factory(settings: Settings) -> CoreFactory:
    markets = settings.markets
    config = RiskConfig.from_settings(settings)
    return lambda partition: RiskCore(markets, partition, config)


def main() -> None:
    launch(SERVICE, processor_main(SERVICE, topics.RISK_IN, core_factory))
