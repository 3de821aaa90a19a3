"""The topic registry and Kafka-compatible partitioning."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import codec, schemas, topics
from libs.common.topics import REGISTRY, Topics, partition_for, spec

# Signed murmur2 values from the Java client's own test (UtilsTest.testMurmur2).
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), sorted(JAVA_MURMUR2.items()))
@pytest.mark.parametrize("partitions", [1, 4, 7, 64])
def test_partition_matches_the_java_default_partitioner(
    key: str, java_hash: int, partitions: int
) -> None:
    # Java: Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions
    assert partition_for(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


@given(key=st.text(max_size=60), partitions=st.integers(1, 128))
@settings(max_examples=200, deadline=None)
def test_partition_matches_aiokafkas_default_partitioner(key: str, partitions: int) -> None:
    everything = list(range(partitions))
    expected = DefaultPartitioner()(key.encode(), everything, everything)
    assert partition_for(key, partitions) == expected


def test_topic_names_are_unique() -> None:
    names = [t.name for t in REGISTRY]
    assert len(set(names)) == len(names)


def test_input_logs_are_kept_forever_by_time_and_size() -> None:
    inputs = {t.name for t in REGISTRY if t.is_input_log}
    assert inputs == {topics.RISK_IN, topics.MATCHER_IN, topics.ORACLE_PRICES, topics.LIQUIDATIONS}
    for name in inputs:
        cfg = spec(name).config()
        assert cfg["retention.ms"] == "-1"
        assert cfg["retention.bytes"] == "-1"


def test_public_feeds_keep_a_week_and_no_size_override() -> None:
    for name in (topics.MARKET_EVENTS, topics.ACCOUNT_EVENTS):
        cfg = spec(name).config()
        assert cfg["retention.ms"] == str(7 * 24 * 3600 * 1000)
        assert "retention.bytes" not in cfg


def test_dead_letters_have_one_partition() -> None:
    assert spec(topics.DEAD_LETTERS).partitions == 1


def test_a_namespace_prefixes_every_deployed_name() -> None:
    ns = Topics("t42.")
    assert ns.name(topics.RISK_IN) == "t42.risk.in"
    assert ns.partitions(topics.RISK_IN) == 4
    deployed = dict(ns.all())
    assert set(deployed) == {f"t42.{t.name}" for t in REGISTRY}
    assert deployed["t42.matcher.in"].key == "market name"


def test_every_topic_has_a_schema_and_every_schema_a_topic() -> None:
    assert set(codec.TOPIC_SCHEMAS) == {t.name for t in REGISTRY}


def test_each_processor_input_has_a_compacted_checkpoint_topic_partition_for_partition() -> None:
    assert set(topics.CHECKPOINTS) == {topics.RISK_IN, topics.MATCHER_IN, topics.LIQUIDATIONS}
    for input_topic, checkpoints in topics.CHECKPOINTS.items():
        assert spec(checkpoints).partitions == spec(input_topic).partitions
        assert spec(checkpoints).config()["cleanup.policy"] == "compact"
        assert codec.TOPIC_SCHEMAS[checkpoints] is schemas.Checkpoint
