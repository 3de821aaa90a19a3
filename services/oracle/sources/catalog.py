"""The catalog of price sources and the factory that builds what the configuration names."""

from __future__ import annotations

import random

from services.oracle.config import OracleConfig, SourceRule
from services.oracle.sources.base import Clock, PriceSource
from services.oracle.sources.binance import BinanceProtocol
from services.oracle.sources.bybit import BybitProtocol
from services.oracle.sources.coinbase import CoinbaseProtocol
from services.oracle.sources.kraken import KrakenProtocol
from services.oracle.sources.okx import OkxProtocol
from services.oracle.sources.replay import ReplayFeed, load_ticks, replay_batches
from services.oracle.sources.simulated import SimulatedFeed, Simulator
from services.oracle.sources.websocket import ExchangeProtocol, WebSocketFeed

PROTOCOLS: dict[str, type[ExchangeProtocol]] = {
    p.exchange: p
    for p in (BinanceProtocol, OkxProtocol, BybitProtocol, CoinbaseProtocol, KrakenProtocol)
}


def protocol_for(source: SourceRule) -> ExchangeProtocol:
    return PROTOCOLS[source.exchange or source.name]()


def exchange_symbols(source: SourceRule, markets: list[str]) -> dict[str, str]:
    """Market name to the exchange's symbol, for one source."""
    template = PROTOCOLS[source.exchange or source.name].symbol_template
    return {m: source.symbol_for(m, template) for m in markets}


def build_sources(config: OracleConfig, markets: list[str], clock: Clock) -> list[PriceSource]:
    """The feeds the configuration asks for, ready to ``run``."""
    names = [s.name for s in config.sources]
    if config.feed == "simulated":
        return [SimulatedFeed(Simulator(config.simulator, names, markets), clock)]
    if config.feed == "replay":
        assert config.replay.path is not None
        aliases = {}
        for source in config.sources:
            if (source.exchange or source.name) in PROTOCOLS:
                for market, symbol in exchange_symbols(source, markets).items():
                    aliases[(source.name, symbol)] = market
        batches = replay_batches(load_ticks(config.replay.path), markets, aliases)
        return [ReplayFeed(batches, config.replay.speed)]
    return [
        WebSocketFeed(
            source.name,
            protocol_for(source),
            exchange_symbols(source, markets),
            config.websocket,
            clock,
            url=source.url,
            rng=random.Random(f"{config.simulator.seed}/{source.name}"),
        )
        for source in config.sources
    ]
