"""The replay source: recorded ticks (time, source, symbol, price) read back in order.

Two formats, by file extension: JSON Lines (``.jsonl``, one object per line with the
keys ``time``, ``source``, ``symbol``, ``price``) and CSV (``.csv``, with that header).
``time`` is epoch milliseconds; ``price`` a decimal string (a JSON number is read
exactly too); ``symbol`` is a market name or the source's exchange symbol.

Ticks with the same time form one batch, observed at that time; the aggregator's clock is
the file's, so replaying a file twice gives the same index ticks, byte for byte.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path

import msgspec

from libs.common.money import UnitError, parse_decimal
from services.oracle.sources.base import Emit, QuoteBatch, SourcePrice


class ReplayError(ValueError):
    """A tick file that cannot be replayed; the message names the line."""


class RecordedTick(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    time: int
    source: str
    symbol: str
    price: Decimal


_LINE = msgspec.json.Decoder(RecordedTick)
_ENCODER = msgspec.json.Encoder()


def load_ticks(path: Path) -> list[RecordedTick]:
    """Read a JSONL or CSV tick file, checking that times never go backwards."""
    text = path.read_text()
    if path.suffix == ".csv":
        ticks = list(_csv_ticks(text, path))
    elif path.suffix in (".jsonl", ".ndjson"):
        ticks = list(_jsonl_ticks(text, path))
    else:
        raise ReplayError(f"{path}: expected a .jsonl or .csv file")
    for i in range(1, len(ticks)):
        if ticks[i].time < ticks[i - 1].time:
            raise ReplayError(f"{path}: tick {i + 1} goes back in time ({ticks[i].time})")
    return ticks


def _jsonl_ticks(text: str, path: Path) -> Iterable[RecordedTick]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield _LINE.decode(line)
        except msgspec.DecodeError as exc:
            raise ReplayError(f"{path}:{number}: {exc}") from exc


def _csv_ticks(text: str, path: Path) -> Iterable[RecordedTick]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or set(reader.fieldnames) != {"time", "source", "symbol", "price"}:
        raise ReplayError(f"{path}: the header must be time,source,symbol,price")
    for number, row in enumerate(reader, 2):
        try:
            yield RecordedTick(
                time=int(row["time"]),
                source=row["source"].strip(),
                symbol=row["symbol"].strip(),
                price=parse_decimal(row["price"].strip()),
            )
        except (ValueError, UnitError, AttributeError) as exc:
            raise ReplayError(f"{path}:{number}: {exc}") from exc


def format_ticks(prices: Iterable[SourcePrice]) -> str:
    """Source prices as JSONL tick records (the recorder's side of the format)."""
    lines = [
        _ENCODER.encode(
            {
                "time": p.ts,
                "source": p.source,
                "symbol": p.market,
                "price": format(p.price.normalize(), "f"),
            }
        ).decode()
        for p in prices
    ]
    return "".join(line + "\n" for line in lines)


def replay_batches(
    ticks: Iterable[RecordedTick],
    markets: Iterable[str],
    symbols: Mapping[tuple[str, str], str] | None = None,
) -> list[QuoteBatch]:
    """Group ticks into batches by time; a tick's symbol is a market name or, through
    ``symbols[(source, symbol)]``, an exchange symbol. Unknown symbols are skipped."""
    known = set(markets)
    aliases = symbols or {}
    batches: list[QuoteBatch] = []
    current: list[SourcePrice] = []
    current_time: int | None = None
    for tick in ticks:
        market = tick.symbol if tick.symbol in known else aliases.get((tick.source, tick.symbol))
        if market is None:
            continue
        if current_time is not None and tick.time != current_time:
            batches.append(QuoteBatch(now=current_time, prices=tuple(current)))
            current = []
        current_time = tick.time
        current.append(
            SourcePrice(ts=tick.time, source=tick.source, market=market, price=tick.price)
        )
    if current_time is not None:
        batches.append(QuoteBatch(now=current_time, prices=tuple(current)))
    return batches


class ReplayFeed:
    """Emits recorded batches in order, paced at ``speed`` times real time (0: at once)."""

    name = "replay"

    def __init__(self, batches: list[QuoteBatch], speed: float) -> None:
        self.batches = batches
        self.speed = speed
        self.done = asyncio.Event()

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        first = self.batches[0].now if self.batches else 0
        for batch in self.batches:
            if self.speed > 0:
                delay = began + (batch.now - first) / 1000 / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            emit(batch)
        self.done.set()
