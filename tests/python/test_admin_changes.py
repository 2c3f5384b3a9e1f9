"""Changing existing topics with kafka-python's KafkaAdminClient against one `rivulet server`:
create_partitions (CreatePartitions) and alter_configs, both as AlterConfigs (which replaces a
topic's overrides) and as IncrementalAlterConfigs (kafka-python's default when the broker
advertises it), checked through Metadata, DescribeConfigs and a produce to a new partition.
"""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer
from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewTopic,
)
from kafka.errors import InvalidPartitionsError, UnknownTopicOrPartitionError

REQUEST_TIMEOUT_S = 15
DEADLINE_S = 30
KP_COMMON = {
    "request_timeout_ms": REQUEST_TIMEOUT_S * 1000,
    "bootstrap_timeout_ms": REQUEST_TIMEOUT_S * 1000,
}


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(broker):
    client = KafkaAdminClient(
        bootstrap_servers=broker.bootstrap, client_id="py-admin-changes", **KP_COMMON
    )
    yield client
    client.close()


def create(admin: KafkaAdminClient, topic: str, partitions: int, configs=None) -> None:
    admin.create_topics(
        [
            NewTopic(
                topic,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=configs or {},
            )
        ],
        timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )


def partition_ids(admin: KafkaAdminClient, topic: str) -> list[int]:
    [described] = admin.describe_topics([topic])
    assert described["error_code"] == 0, described
    return sorted(p["partition_index"] for p in described["partitions"])


def topic_configs(admin: KafkaAdminClient, topic: str) -> dict:
    """Every config entry of `topic`: {key: {value, config_source, ...}}."""
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    return described["topic"][topic]


def test_kafka_python_create_partitions(broker, admin):
    topic = unique_topic("kp-grow")
    create(admin, topic, 2)
    assert partition_ids(admin, topic) == [0, 1]

    admin.create_partitions({topic: 5}, timeout_ms=REQUEST_TIMEOUT_S * 1000, validate_only=True)
    assert partition_ids(admin, topic) == [0, 1]

    admin.create_partitions({topic: 5}, timeout_ms=REQUEST_TIMEOUT_S * 1000)
    assert partition_ids(admin, topic) == [0, 1, 2, 3, 4]

    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, max_block_ms=REQUEST_TIMEOUT_S * 1000, **KP_COMMON
    )
    try:
        md = producer.send(topic, key=b"k", value=b"v", partition=4).get(timeout=DEADLINE_S)
        assert (md.partition, md.offset) == (4, 0)
    finally:
        producer.close(timeout=REQUEST_TIMEOUT_S)

    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({topic: 3}, timeout_ms=REQUEST_TIMEOUT_S * 1000)
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.create_partitions(
            {unique_topic("kp-missing"): 3}, timeout_ms=REQUEST_TIMEOUT_S * 1000
        )
    assert partition_ids(admin, topic) == [0, 1, 2, 3, 4]


def test_kafka_python_alter_configs(broker, admin):
    topic = unique_topic("kp-configs")
    create(admin, topic, 1, {"segment.bytes": "1048576"})

    # AlterConfigs: the given overrides replace all others (kafka-python re-sends the other
    # overrides it finds itself, as Kafka's legacy API needs).
    resource = ConfigResource(
        ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"}
    )
    assert admin.alter_configs([resource], incremental=False) == {"topic": {topic: "OK"}}
    configs = topic_configs(admin, topic)
    assert configs["retention.ms"]["value"] == "7200000"
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["segment.bytes"]["value"] == "1048576"

    # IncrementalAlterConfigs: APPEND to a list, DELETE an override; the rest stays.
    resource = ConfigResource(
        ConfigResourceType.TOPIC,
        topic,
        configs={"cleanup.policy": ("APPEND", "compact"), "segment.bytes": ("DELETE", None)},
    )
    assert admin.alter_configs([resource], incremental=True) == {"topic": {topic: "OK"}}
    configs = topic_configs(admin, topic)
    assert configs["cleanup.policy"]["value"] == "delete,compact"
    assert configs["segment.bytes"]["value"] == str(1024 * 1024 * 1024)
    assert configs["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
    assert configs["retention.ms"]["value"] == "7200000"

    # An invalid value is refused with INVALID_CONFIG, by either API, and nothing changes.
    for incremental in (False, True):
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"retention.ms": "abc"}
        )
        result = admin.alter_configs([resource], incremental=incremental)
        assert result["topic"][topic].startswith("[Error 40] InvalidConfigurationError"), result
        assert "Not a number of type LONG" in result["topic"][topic], result
    assert topic_configs(admin, topic)["retention.ms"]["value"] == "7200000"
