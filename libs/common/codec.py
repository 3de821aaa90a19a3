"""The wire codec: MessagePack via msgspec, one typed decoder per topic."""

from __future__ import annotations

from typing import Any

import msgspec

from libs.common import schemas, topics

_ENCODER = msgspec.msgpack.Encoder()

TOPIC_SCHEMAS: dict[str, Any] = {
    topics.RISK_IN: schemas.RiskIn,
    topics.MATCHER_IN: schemas.MatcherIn,
    topics.ACCOUNT_EVENTS: schemas.AccountEvent,
    topics.MARKET_EVENTS: schemas.MarketEvent,
    topics.ORACLE_PRICES: schemas.OracleEvent,
    topics.LIQUIDATIONS: schemas.LiquidationsIn,
    topics.LIQUIDATION_AUDIT: schemas.LiquidationStep,
    topics.DEAD_LETTERS: schemas.DeadLetter,
    topics.OPERATOR_AUDIT: schemas.OperatorAudit,
    topics.STATE_PROOFS: schemas.StateProof,
    **{checkpoints: schemas.Checkpoint for checkpoints in topics.CHECKPOINTS.values()},
}

DecodeError = msgspec.DecodeError


def encode(message: msgspec.Struct) -> bytes:
    return _ENCODER.encode(message)


def decoder(logical_topic: str) -> msgspec.msgpack.Decoder[Any]:
    """A decoder that accepts exactly the messages registered for a topic."""
    return msgspec.msgpack.Decoder(TOPIC_SCHEMAS[logical_topic])
