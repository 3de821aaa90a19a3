"""Generate the API documents from the code: ``python -m services.gateway.apidocs``.

- docs/api/openapi.json: POST /info, POST /exchange (the envelope and every action, from
  the pydantic models that validate them) and the operator API;
- docs/api/asyncapi.json: the WebSocket channels and every public Kafka topic, with the
  JSON schema of each message (from the msgspec structs on the wire, MessagePack encoded).
A test regenerates both and fails if the committed files differ.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import msgspec

from libs.common import codec, topics
from libs.common.markets import load_markets
from services.gateway.info import InfoApi
from services.gateway.wire import (
    ActionModel,
    ConfigureMarketRequest,
    DepositRequest,
    Envelope,
    MarketControlRequest,
)
from services.gateway.ws import COIN_TYPES, USER_TYPES, VENUE_TYPES

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "api"
PUBLIC_TOPICS = (
    topics.MARKET_EVENTS,
    topics.ACCOUNT_EVENTS,
    topics.ORACLE_PRICES,
    topics.LIQUIDATION_AUDIT,
    topics.OPERATOR_AUDIT,
    topics.STATE_PROOFS,
)


def info_types() -> list[str]:
    """The /info request types, exactly as the gateway dispatches them."""
    unused: Any = None  # the dispatch table needs none of the API's connections
    return list(InfoApi(unused, unused, load_markets(), unused, lambda: 0).handlers)


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {}}}


def openapi() -> dict[str, Any]:
    action = ActionModel.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = action.pop("$defs", {})
    envelope = Envelope.model_json_schema()
    envelope["properties"]["action"] = {"$ref": "#/components/schemas/Action"}
    defs["Action"] = action["properties"]["action"]
    defs["Envelope"] = envelope
    defs["DepositRequest"] = DepositRequest.model_json_schema()
    defs["MarketControlRequest"] = MarketControlRequest.model_json_schema()
    defs["ConfigureMarketRequest"] = ConfigureMarketRequest.model_json_schema()
    info_request = {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": info_types()},
            "user": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
            "coin": {"type": "string"},
            "oid": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
            "startTime": {"type": "integer"},
            "req": {
                "type": "object",
                "description": "candleSnapshot: {coin, interval, startTime, endTime}",
            },
            "endTime": {"type": "integer"},
            "prices": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "whatIf: market name to price (decimal string), e.g. "
                '{"BTC": "90000"}; applied after the scenario',
            },
            "scenario": {
                "type": "string",
                "description": "whatIf: a scenario of the portfolio-margin grid, e.g. "
                "all-100 (venueState lists them)",
            },
            "vaultAddress": {
                "type": "string",
                "pattern": "^0x[0-9a-fA-F]{40}$",
                "description": "vaultDetails: the vault (the backstop vault is "
                "0x00000000000000000000000000000000000000b1)",
            },
        },
    }
    refused = "Refused: {status: err, response: message}; nothing changed"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Perp exchange API (Hyperliquid-compatible)",
            "version": "1",
            "description": "Numbers are decimal strings. /exchange actions are signed as "
            "Hyperliquid's SDK signs them (see docs/gateway-auth.md). The operator API "
            "listens on its own port and needs `Authorization: Bearer <token>`.",
        },
        "paths": {
            "/info": {
                "post": {
                    "summary": "Reads, answered from committed hot state in Redis",
                    "requestBody": _json_body(info_request),
                    "responses": {
                        "200": _answer("The documented shape for the type"),
                        "400": _answer("Malformed request"),
                        "429": _answer("IP weight exhausted"),
                    },
                }
            },
            "/exchange": {
                "post": {
                    "summary": "Signed actions; answered once their outcome is on the bus",
                    "requestBody": _json_body({"$ref": "#/components/schemas/Envelope"}),
                    "responses": {
                        "200": _answer("ok with per-order statuses, or " + refused),
                        "400": _answer("Body is not JSON"),
                        "429": _answer("IP weight or address budget exhausted"),
                    },
                }
            },
            "/ws": {
                "get": {
                    "summary": "WebSocket upgrade (see asyncapi.json)",
                    "responses": {"101": {"description": "Switching protocols"}},
                }
            },
            "/operator/deposit": {
                "post": {
                    "summary": "Credit collateral (the local faucet); audited",
                    "requestBody": _json_body({"$ref": "#/components/schemas/DepositRequest"}),
                    "responses": {"200": _answer("New collateral"), "401": _answer("No token")},
                }
            },
            "/operator/markets": {
                "get": {
                    "summary": "The market table; audited",
                    "responses": {"200": _answer("Markets"), "401": _answer("No token")},
                }
            },
            "/operator/markets/configure": {
                "post": {
                    "summary": "Change a listed market's fees, limits, leverage tiers or mark "
                    "and funding parameters at run time (the market table's keys and units; "
                    "name, lot size, funding interval and premium sampling are fixed); "
                    "applied by the market's matcher and every risk partition; audited",
                    "requestBody": _json_body(
                        {"$ref": "#/components/schemas/ConfigureMarketRequest"}
                    ),
                    "responses": {
                        "200": _answer("The market as it now stands, and every run-time change"),
                        "400": _answer("The change and why it cannot apply; nothing changed"),
                        "504": _answer("The matcher did not answer in time"),
                    },
                }
            },
            "/operator/funds": {
                "get": {
                    "summary": "Insurance fund and backstop vault: balances, positions, value",
                    "responses": {"200": _answer("Both funds as clearinghouseState documents")},
                }
            },
            "/operator/halt": {
                "post": {
                    "summary": "Kill switch: no new orders in a market; audited",
                    "requestBody": _json_body(
                        {"$ref": "#/components/schemas/MarketControlRequest"}
                    ),
                    "responses": {"200": _answer("Sent to the market's matcher")},
                }
            },
            "/operator/resume": {
                "post": {
                    "summary": "Resume a halted market; audited",
                    "requestBody": _json_body(
                        {"$ref": "#/components/schemas/MarketControlRequest"}
                    ),
                    "responses": {"200": _answer("Sent to the market's matcher")},
                }
            },
        },
        "components": {"schemas": defs},
    }


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {
        "ws": {
            "address": "/ws",
            "description": "Subscribe with {method: subscribe, subscription: {type, coin|user}}; "
            "acks on subscriptionResponse; data as {channel, data}; {method: ping} -> "
            "{channel: pong}; {method: post, id, request: {type: info|action, payload}}; "
            "idle connections close after 60 s; a client that falls 2000 messages behind is "
            "disconnected.",
            "x-subscriptions": {
                "allMids": "{}",
                "candle": "{coin, interval}",
                **{t: "{coin}" for t in sorted(COIN_TYPES)},
                **{t: "{user}" for t in sorted(USER_TYPES)},
                **{t: "{}" for t in sorted(VENUE_TYPES)},
            },
        }
    }
    schemas: dict[str, Any] = {}
    for name in PUBLIC_TOPICS:
        spec = topics.spec(name)
        (schema,), components = msgspec.json.schema_components([codec.TOPIC_SCHEMAS[name]])
        schemas.update(components)
        channels[name] = {
            "address": name,
            "description": f"{spec.doc} Key: {spec.key}. Partitions: {spec.partitions}. "
            "Values are MessagePack; the record's deterministic id is in its `id` header.",
            "messages": {"payload": {"payload": schema}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Perp exchange streams", "version": "1"},
        "channels": channels,
        "components": {"schemas": schemas},
    }


def render() -> dict[str, str]:
    return {
        "openapi.json": json.dumps(openapi(), indent=2, sort_keys=True) + "\n",
        "asyncapi.json": json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n",
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
