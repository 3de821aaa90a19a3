"""Each exchange adapter against sample messages written from the exchange's public
documentation (tests/fixtures/oracle/<exchange>/): prices read exactly, heartbeats,
acknowledgements, pongs and error frames recognized, junk refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.oracle.sources.binance import BinanceProtocol
from services.oracle.sources.bybit import BybitProtocol
from services.oracle.sources.catalog import PROTOCOLS
from services.oracle.sources.coinbase import CoinbaseProtocol
from services.oracle.sources.kraken import KrakenProtocol
from services.oracle.sources.okx import OkxProtocol
from services.oracle.sources.websocket import ExchangeProtocol

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "oracle"


def fixture(exchange: str, name: str) -> str:
    return (FIXTURES / exchange / name).read_text().strip()


CASES = [
    # exchange, fixture, kind, prices or detail
    ("binance", "ticker.json", "prices", [("BTCUSDT", "67432.15000000")]),
    ("binance", "ticker_combined.json", "prices", [("ETHUSDT", "3456.78000000")]),
    ("binance", "subscribe_ack.json", "ack", "request 1"),
    ("binance", "error.json", "error", "2: Invalid request: unknown variant `SUBSCRIB`"),
    ("okx", "ticker.json", "prices", [("BTC-USDT", "67431.9")]),
    ("okx", "subscribe_ack.json", "ack", "channel"),
    ("okx", "error.json", "error", '60012: Invalid request: {"op": "subscribe", "argss"'),
    ("okx", "notice.json", "info", "notice 64008: The connection will soon be closed"),
    ("okx", "pong.txt", "pong", ""),
    ("bybit", "ticker.json", "prices", [("BTCUSDT", "67433.5")]),
    ("bybit", "subscribe_ack.json", "ack", ""),
    ("bybit", "error.json", "error", "error:handler not found,topic:tickers.BTCUSDD"),
    ("bybit", "pong.json", "pong", ""),
    ("coinbase", "ticker.json", "prices", [("BTC-USD", "67440.01")]),
    ("coinbase", "heartbeat.json", "heartbeat", "BTC-USD"),
    ("coinbase", "subscriptions.json", "ack", "ticker"),
    ("coinbase", "error.json", "error", "Failed to subscribe: BTC-USDD is not a valid product"),
    ("kraken", "ticker.json", "prices", [("BTC/USD", "67435.2")]),
    ("kraken", "ticker_update.json", "prices", [("ETH/USD", "3456.75")]),
    ("kraken", "heartbeat.json", "heartbeat", ""),
    ("kraken", "status.json", "info", "online"),
    ("kraken", "subscribe_ack.json", "ack", "BTC/USD"),
    ("kraken", "error.json", "error", "Currency pair not supported BTC/USDD"),
    ("kraken", "pong.json", "pong", ""),
]


@pytest.mark.parametrize(("exchange", "name", "kind", "expected"), CASES)
def test_each_sample_message_means_what_the_exchange_documents(
    exchange: str, name: str, kind: str, expected: object
) -> None:
    frame = PROTOCOLS[exchange]().parse(fixture(exchange, name))
    assert frame.kind == kind
    if kind == "prices":
        assert frame.prices == tuple((s, Decimal(p)) for s, p in expected)  # type: ignore[attr-defined]
    else:
        assert str(expected) in frame.detail


def test_every_fixture_file_is_covered() -> None:
    covered = {(e, n) for e, n, *_ in CASES} | {("binance", "ping_payload.txt")}
    present = {(p.parent.name, p.name) for p in FIXTURES.glob("*/*")}
    assert present == covered


def test_kraken_numbers_are_read_exactly_not_through_float() -> None:
    frame = KrakenProtocol().parse(
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":0.1}]}'
    )
    assert frame.prices == (("BTC/USD", Decimal("0.1")),)  # float 0.1 would not be exact
    assert Decimal(float("0.1")) != Decimal("0.1")


@pytest.mark.parametrize("exchange", sorted(PROTOCOLS))
@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", "", '{"e":"24hrTicker","s":"BTCUSDT","c":"-1"}']
)
def test_junk_is_malformed_or_ignored_never_a_price(exchange: str, text: str) -> None:
    frame = PROTOCOLS[exchange]().parse(text)
    assert frame.kind in ("malformed", "info") and frame.prices == ()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        key: json_values
        for key in (
            "e",
            "s",
            "c",
            "data",
            "arg",
            "event",
            "topic",
            "op",
            "type",
            "channel",
            "method",
            "success",
            "stream",
            "code",
            "msg",
            "product_id",
            "price",
        )
    },
)


@settings(max_examples=300, deadline=None)
@given(doc=json_values | shaped, exchange=st.sampled_from(sorted(PROTOCOLS)))
def test_no_message_can_make_an_adapter_raise(doc: object, exchange: str) -> None:
    frame = PROTOCOLS[exchange]().parse(msgspec.json.encode(doc).decode())
    assert frame.kind in ("prices", "heartbeat", "ack", "pong", "error", "info", "malformed")
    assert all(price > 0 for _, price in frame.prices)


@pytest.mark.parametrize(
    ("protocol", "text"),
    [
        (BinanceProtocol(), '{"e":"24hrTicker","s":"BTCUSDT","c":"0"}'),
        (OkxProtocol(), '{"arg":{"channel":"tickers"},"data":[{"instId":"BTC-USDT"}]}'),
        (
            BybitProtocol(),
            '{"topic":"tickers.BTCUSDT","data":{"symbol":"BTCUSDT","lastPrice":true}}',
        ),
        (CoinbaseProtocol(), '{"type":"ticker","product_id":"BTC-USD","price":"NaN"}'),
        (KrakenProtocol(), '{"channel":"ticker","data":[{"symbol":"BTC/USD","last":"x"}]}'),
    ],
)
def test_a_ticker_without_a_usable_price_is_malformed(
    protocol: ExchangeProtocol, text: str
) -> None:
    assert protocol.parse(text).kind == "malformed"


def test_subscriptions_name_the_exchanges_own_symbols() -> None:
    def sent(protocol: ExchangeProtocol, symbols: list[str]) -> list[object]:
        return [msgspec.json.decode(t) for t in protocol.subscribe(symbols)]

    assert sent(BinanceProtocol(), ["BTCUSDT", "ETHUSDT"]) == [
        {"method": "SUBSCRIBE", "params": ["btcusdt@ticker", "ethusdt@ticker"], "id": 1}
    ]
    assert sent(OkxProtocol(), ["BTC-USDT"]) == [
        {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}
    ]
    many = [f"C{i}USDT" for i in range(12)]  # Bybit spot takes 10 topics per request
    assert [len(m["args"]) for m in sent(BybitProtocol(), many)] == [10, 2]  # type: ignore[index]
    assert sent(CoinbaseProtocol(), ["BTC-USD"]) == [
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["ticker", "heartbeat"]}
    ]
    assert sent(KrakenProtocol(), ["BTC/USD"]) == [
        {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}
    ]


def test_application_pings_where_the_exchange_wants_them() -> None:
    kraken = KrakenProtocol()
    assert [kraken.ping(), kraken.ping()] == [
        '{"method":"ping","req_id":1}',
        '{"method":"ping","req_id":2}',
    ]
    assert OkxProtocol().ping() == "ping"
    assert BybitProtocol().ping() == '{"op":"ping"}'
    assert BinanceProtocol().ping() is None  # WebSocket ping frames, answered by the client
    assert CoinbaseProtocol().ping() is None  # the heartbeat channel keeps it alive
    assert sorted(e for e, p in PROTOCOLS.items() if p.sends_pings) == ["bybit", "kraken", "okx"]
