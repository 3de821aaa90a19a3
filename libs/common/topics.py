"""The one registry of topics: names, partition counts, keys and retention.

Producers choose the partition themselves with :func:`partition_for` (Kafka's murmur2,
the same as the Java client's default), so any service, and the gateway reading hot
state from Redis, knows which partition owns an account or a market.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import msgspec
from aiokafka.partitioner import murmur2

FOREVER = -1
WEEK_MS = 7 * 24 * 3600 * 1000


class TopicSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One topic of the bus. ``key`` names what the record key is."""

    name: str
    partitions: int
    key: str
    retention_ms: int
    doc: str
    is_input_log: bool = False
    # Compacted: only the latest record of each key is kept (checkpoints).
    compacted: bool = False

    def config(self) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms), "min.insync.replicas": "1"}
        if self.is_input_log:
            cfg["retention.bytes"] = "-1"
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
        return cfg


RISK_IN = "risk.in"
MATCHER_IN = "matcher.in"
MARKET_EVENTS = "market.events"
ACCOUNT_EVENTS = "account.events"
ORACLE_PRICES = "oracle.prices"
LIQUIDATIONS = "liquidations"
LIQUIDATION_AUDIT = "liquidation.audit"
DEAD_LETTERS = "dead.letters"
OPERATOR_AUDIT = "operator.audit"
# Where each processor's input position is committed, partition for partition.
RISK_CHECKPOINTS = "risk.in.checkpoints"
MATCHER_CHECKPOINTS = "matcher.in.checkpoints"
LIQUIDATION_CHECKPOINTS = "liquidations.checkpoints"
CHECKPOINTS = {
    RISK_IN: RISK_CHECKPOINTS,
    MATCHER_IN: MATCHER_CHECKPOINTS,
    LIQUIDATIONS: LIQUIDATION_CHECKPOINTS,
}
CHECKPOINT_KEY = b"offset"
# State proofs of every processor, on the partition of the input partition's number.
STATE_PROOFS = "state.proofs"

REGISTRY: tuple[TopicSpec, ...] = (
    TopicSpec(
        name=RISK_IN,
        partitions=4,
        key="account address",
        retention_ms=FOREVER,
        is_input_log=True,
        doc="Risk's input log: user actions, fill legs, order results, marks, funding.",
    ),
    TopicSpec(
        name=MATCHER_IN,
        partitions=4,
        key="market name",
        retention_ms=FOREVER,
        is_input_log=True,
        doc="Matcher's input log: accepted orders, cancels, index ticks, takeovers.",
    ),
    TopicSpec(
        name=MARKET_EVENTS,
        partitions=4,
        key="market name",
        retention_ms=WEEK_MS,
        doc="Public market data: trades, marks, funding.",
    ),
    TopicSpec(
        name=ACCOUNT_EVENTS,
        partitions=4,
        key="account address",
        retention_ms=WEEK_MS,
        doc="Per-account outcomes: order updates, fills, rejections, balances.",
    ),
    TopicSpec(
        name=ORACLE_PRICES,
        partitions=4,
        key="market name",
        retention_ms=FOREVER,
        is_input_log=True,
        doc="Aggregated index prices with validity, for audit and subscribers.",
    ),
    TopicSpec(
        name=LIQUIDATIONS,
        partitions=4,
        key="account address",
        retention_ms=FOREVER,
        is_input_log=True,
        doc="Liquidation triggers from risk: the liquidator's input log.",
    ),
    TopicSpec(
        name=LIQUIDATION_AUDIT,
        partitions=4,
        key="account address",
        retention_ms=FOREVER,
        doc="Every liquidation step with its reason, for audit.",
    ),
    TopicSpec(
        name=OPERATOR_AUDIT,
        partitions=1,
        key="operator",
        retention_ms=FOREVER,
        doc="Every operator API call (deposits, halts, configuration) with who and what.",
    ),
    *(
        TopicSpec(
            name=checkpoints,
            partitions=4,
            key="the constant b'offset'",
            retention_ms=FOREVER,
            compacted=True,
            doc=f"The input position of {input_topic}'s processor, partition for partition: "
            "one record per committed batch, in the batch's transaction.",
        )
        for input_topic, checkpoints in CHECKPOINTS.items()
    ),
    TopicSpec(
        name=STATE_PROOFS,
        partitions=4,
        key="<input topic>/<partition>",
        retention_ms=FOREVER,
        doc="State proofs: every K input offsets, a processor's SHA-256 of its whole "
        "partition state, in the transaction of that batch (docs/auditor.md).",
    ),
    TopicSpec(
        name=DEAD_LETTERS,
        partitions=1,
        key="source topic",
        retention_ms=FOREVER,
        doc="Input messages that could not be decoded, with the error and the raw bytes.",
    ),
)

_BY_NAME = {t.name: t for t in REGISTRY}


def spec(name: str) -> TopicSpec:
    return _BY_NAME[name]


class Topics:
    """Topic names as deployed: the registry's names behind an optional namespace prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def name(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    def partitions(self, logical: str) -> int:
        return _BY_NAME[logical].partitions

    def all(self) -> Iterable[tuple[str, TopicSpec]]:
        for t in REGISTRY:
            yield self.name(t.name), t


@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partition for a key (murmur2, positive, modulo the count).

    Memoized: keys (accounts, markets) repeat, and murmur2 is pure Python."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
