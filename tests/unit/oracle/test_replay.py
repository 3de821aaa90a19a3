"""The replay source: JSONL and CSV tick files, read exactly and in order, give the same
index ticks byte for byte every time."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from libs.common import codec
from libs.common.markets import load_markets
from services.oracle.aggregator import (
    INSUFFICIENT_SOURCES,
    TOO_VOLATILE,
    VALID,
    Aggregator,
    IndexUpdate,
)
from services.oracle.config import Rules
from services.oracle.sources.base import SourcePrice
from services.oracle.sources.replay import (
    ReplayError,
    format_ticks,
    load_ticks,
    replay_batches,
)
from tests.unit.oracle.reference import SOURCES

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "oracle"
MARKETS = load_markets()
T0 = 1_767_225_600_000  # the first tick of the recorded file


def replay(path: Path) -> list[IndexUpdate]:
    agg = Aggregator(Rules(), SOURCES, list(MARKETS))
    out = []
    for batch in replay_batches(load_ticks(path), MARKETS.names):
        out += agg.advance(batch.now, batch.prices)
    return out


def encoded(updates: list[IndexUpdate]) -> list[bytes]:
    return [codec.encode(m) for u in updates for m in (u.index_tick(), u.oracle_price())]


def test_the_recorded_file_replays_to_the_same_index_ticks_byte_for_byte() -> None:
    first = encoded(replay(FIXTURES / "ticks.jsonl"))
    second = encoded(replay(FIXTURES / "ticks.jsonl"))
    assert first == second
    assert len(first) == 2 * 180  # 3 markets, one index a second for 60 s


def test_the_csv_recording_of_the_same_ticks_gives_the_same_bytes() -> None:
    assert load_ticks(FIXTURES / "ticks.csv") == load_ticks(FIXTURES / "ticks.jsonl")
    assert encoded(replay(FIXTURES / "ticks.csv")) == encoded(replay(FIXTURES / "ticks.jsonl"))


def test_the_recorded_faults_show_in_the_index() -> None:
    updates = replay(FIXTURES / "ticks.jsonl")
    by_market = Counter((u.market, u.status) for u in updates)
    # Kraken's +50% on BTC never shows; ETH loses Binance and OKX (weight 5) for 12 s,
    # which costs the quorum once their last prices are 5 s old; SOL's +20% waits 5 s.
    assert by_market == {
        ("BTC", VALID): 60,
        ("ETH", VALID): 53,
        ("ETH", INSUFFICIENT_SOURCES): 7,
        ("SOL", VALID): 55,
        ("SOL", TOO_VOLATILE): 5,
    }
    sol = [u for u in updates if u.market == "SOL"]
    assert [u.status for u in sol[44:51]] == [VALID] + [TOO_VOLATILE] * 5 + [VALID]
    assert all(u.px == sol[44].px for u in sol[45:50])  # the last valid price is held
    assert sol[50].px * 100 > sol[44].px * 118
    assert sol[50].reason == "move of +21.08% confirmed after 5000 ms"
    btc = [u for u in updates if u.market == "BTC"]
    assert all("kraken" not in {q.source for q in u.sources} for u in btc[10:20])
    assert all("kraken" in {q.source for q in u.sources} for u in btc[:10] + btc[20:])


def test_ticks_of_one_instant_form_one_batch_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"time": 1000, "source": "binance", "symbol": "BTC", "price": "100000.5"}\n'
        "\n# a comment\n"
        '{"time": 1000, "source": "okx", "symbol": "BTC-USDT", "price": 100001.25}\n'
        '{"time": 2000, "source": "kraken", "symbol": "DOGE", "price": "1"}\n'
        '{"time": 2000, "source": "kraken", "symbol": "BTC", "price": "99999"}\n'
    )
    batches = replay_batches(load_ticks(path), ["BTC"], {("okx", "BTC-USDT"): "BTC"})
    assert [(b.now, [(p.source, p.price) for p in b.prices]) for b in batches] == [
        (1000, [("binance", Decimal("100000.5")), ("okx", Decimal("100001.25"))]),
        (2000, [("kraken", Decimal(99999))]),
    ]


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        (
            "back.jsonl",
            '{"time":2,"source":"a","symbol":"BTC","price":"1"}\n'
            '{"time":1,"source":"a","symbol":"BTC","price":"1"}\n',
            "tick 2 goes back in time",
        ),
        ("bad.jsonl", '{"time":1,"source":"a","symbol":"BTC"}\n', "bad.jsonl:1"),
        ("bad.csv", "time,source,symbol,price\n1,a,BTC,abc\n", "bad.csv:2"),
        ("head.csv", "t,source,symbol,price\n", "header must be"),
        ("ticks.txt", "", "expected a .jsonl or .csv"),
    ],
)
def test_broken_files_are_refused_with_the_line(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ReplayError, match=error):
        load_ticks(path)


def test_recorded_prices_read_back_exactly(tmp_path: Path) -> None:
    prices = [
        SourcePrice(ts=5, source="kraken", market="ETH", price=Decimal("3500.123456789")),
        SourcePrice(ts=6, source="okx", market="BTC", price=Decimal("1E+5")),
    ]
    path = tmp_path / "rec.jsonl"
    path.write_text(format_ticks(prices))
    assert '"price":"100000"' in path.read_text()
    batches = replay_batches(load_ticks(path), ["BTC", "ETH"])
    assert [p for b in batches for p in b.prices] == prices
