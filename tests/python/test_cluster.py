"""The cluster as real clients describe it, against one `rivulet server` (node 1, the only
voter): kafka-python's describe_cluster (DescribeCluster v2 with include_fenced_brokers,
KIP-1073) and describe_metadata_quorum (DescribeQuorum v2, KIP-595/KIP-853), confluent-kafka's
describe_cluster (librdkafka), and `rivulet cluster status` on the same broker.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient, NewTopic

from conftest import rivulet_bin

REQUEST_TIMEOUT_S = 15
KP_COMMON = {
    "request_timeout_ms": REQUEST_TIMEOUT_S * 1000,
    "bootstrap_timeout_ms": REQUEST_TIMEOUT_S * 1000,
}


@pytest.fixture
def admin(broker):
    client = KafkaAdminClient(
        bootstrap_servers=broker.bootstrap, client_id="py-cluster", **KP_COMMON
    )
    yield client
    client.close()


def test_kafka_python_describe_cluster_includes_fenced_brokers(admin, broker):
    described = admin.describe_cluster()
    assert described["cluster_id"]
    assert described["controller_id"] == 1
    [only] = described["brokers"]
    assert only["broker_id"] == 1
    assert (only["host"], only["port"]) == (broker.host, broker.port)
    # Present only from DescribeCluster v2 on: kafka-python asked for fenced brokers too.
    assert only["is_fenced"] is False


def test_kafka_python_describe_metadata_quorum(admin):
    quorum = admin.describe_metadata_quorum()
    [topic] = quorum["topics"]
    assert topic["topic_name"] == "__cluster_metadata"
    [partition] = topic["partitions"]
    assert partition["error"] is None, partition
    assert partition["partition_index"] == 0
    assert partition["leader_id"] == 1
    assert partition["leader_epoch"] >= 1
    assert partition["high_watermark"] > 0
    [voter] = partition["current_voters"]
    assert voter["replica_id"] == 1
    assert voter["log_end_offset"] >= partition["high_watermark"]
    assert voter["last_caught_up_timestamp"] > 0
    assert partition["observers"] == []
    [node] = quorum["nodes"]
    assert node["node_id"] == 1
    [listener] = node["listeners"]
    assert listener["name"] == "CONTROLLER"
    assert listener["port"] > 0


def test_confluent_kafka_describe_cluster(broker):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = client.describe_cluster(request_timeout=REQUEST_TIMEOUT_S).result(
        timeout=REQUEST_TIMEOUT_S * 2
    )
    assert described.cluster_id
    assert described.controller.id == 1
    assert [(n.id, n.host, n.port) for n in described.nodes] == [
        (1, broker.host, broker.port)
    ]


def test_rivulet_cluster_status_shows_what_clients_see(admin, broker):
    topic = f"status-{uuid.uuid4().hex[:10]}"
    admin.create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=1)],
        timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    out = subprocess.run(
        [str(rivulet_bin()), "cluster", "status", "--bootstrap", broker.bootstrap,
         "--topic", topic],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Active controller: node 1 (epoch " in out.stdout
    assert ["1", broker.bootstrap, "up", "active", "controller"] in [
        line.split() for line in lines
    ]
    rows = [line.split() for line in lines if line.split()[:1] == [topic]]
    assert rows == [
        [topic, "0", "1", "0", "[1]", "[1]"],
        [topic, "1", "1", "0", "[1]", "[1]"],
    ], out.stdout
