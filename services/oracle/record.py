"""Record the simulator's source ticks to a file, for drills and replay.

    python -m services.oracle.record --config FILE --seconds 60 --start-ms MS --out ticks.jsonl

Runs the simulator of an oracle configuration (with its scripted faults) step by step
without waiting, from ``--start-ms``, and writes every source price as a tick record
(JSON Lines, or CSV when ``--out`` ends in ``.csv``), ready for ``feed = "replay"``.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from libs.common.markets import MarketRegistry
from libs.common.settings import Settings
from services.oracle.config import OracleConfig, load_oracle_config
from services.oracle.sources.base import SourcePrice
from services.oracle.sources.replay import format_ticks
from services.oracle.sources.simulated import Simulator


def simulate(
    config: OracleConfig, markets: MarketRegistry, seconds: float, start_ms: int
) -> list[SourcePrice]:
    """Every source price the simulator reports over ``seconds`` from ``start_ms``."""
    simulator = Simulator(config.simulator, [s.name for s in config.sources], markets.names)
    steps = int(seconds * 1000) // config.simulator.step_ms
    return [
        price
        for k in range(steps)
        for price in simulator.step(start_ms + k * config.simulator.step_ms).prices
    ]


def as_csv(prices: list[SourcePrice]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "source", "symbol", "price"])
    for p in prices:
        writer.writerow([p.ts, p.source, p.market, format(p.price.normalize(), "f")])
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", type=Path, help="oracle configuration (default: the shipped one)"
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--start-ms", type=int, default=1_767_225_600_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings()
    config = load_oracle_config(settings, args.config)
    prices = simulate(config, settings.markets, args.seconds, args.start_ms)
    text = as_csv(prices) if args.out.suffix == ".csv" else format_ticks(prices)
    args.out.write_text(text)
    print(f"{len(prices)} ticks written to {args.out}")


if __name__ == "__main__":
    main()
