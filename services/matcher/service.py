"""The matcher service: the matcher core on the processor runtime, by market."""

from __future__ import annotations

from libs.common import topics
from libs.common.runtime.core import CoreFactory
from libs.common.runtime.launcher import launch, processor_main
from libs.common.settings import Settings
from services.matcher.engine import MatcherCore

SERVICE = "matcher"


def core_factory(settings: Settings) -> CoreFactory:
    markets = settings.markets
    return lambda partition: MatcherCore(markets, partition)


def main() -> None:
    launch(SERVICE, processor_main(SERVICE, topics.MATCHER_IN, core_factory))
