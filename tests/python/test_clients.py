"""Real Kafka clients against one `rivulet server`: kafka-python, confluent-kafka, kcat.

Each client creates its topics, produces keyed messages with headers under every compression
codec it supports, and reads them back by manual assignment from the beginning (nothing
commits: test_groups.py covers consumer groups). The batches the broker stored are also read
from the segment files, to check the codec and producer id the client really used.
"""

from __future__ import annotations

import re
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType
from confluent_kafka.admin import NewTopic as CkNewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import TopicAlreadyExistsError

# Client-side bounds: every network call below has one of these.
REQUEST_TIMEOUT_S = 15
DEADLINE_S = 30
PARTITIONS = 3
MESSAGES = 60

# RecordBatch `attributes & 0x07`.
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@dataclass(frozen=True)
class Message:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class StoredBatch:
    base_offset: int
    codec: int
    producer_id: int
    records: int


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def messages(tag: str, count: int = MESSAGES, partitions: int = PARTITIONS) -> list[Message]:
    """Keyed messages with compressible values, plus a null key, a null value (tombstone),
    no headers and a repeated header name now and then."""
    out = []
    for i in range(count):
        key = None if i % 10 == 4 else f"key-{i}".encode()
        value = None if i == count - 1 else (f"{tag} payload {i} " * (5 + i % 20)).encode()
        headers: tuple[tuple[str, bytes], ...] = (("seq", str(i).encode()), ("tag", tag.encode()))
        if i % 10 == 7:
            headers = ()
        elif i % 5 == 0:
            headers += (("tag", b"again"),)
        out.append(Message(i % partitions, key, value, headers))
    return out


def by_partition(msgs: list[Message]) -> dict[int, list[Message]]:
    out: dict[int, list[Message]] = {}
    for m in msgs:
        out.setdefault(m.partition, []).append(m)
    return out


def stored_batches(partition_dir: Path) -> list[StoredBatch]:
    """Walks the RecordBatch v2 headers of a partition's segments (Kafka's on-disk format)."""
    batches = []
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0:
                break
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            producer_id, _epoch, _seq, records = struct.unpack_from(">qhii", data, pos + 43)
            batches.append(StoredBatch(base_offset, attributes & 0x07, producer_id, records))
            pos += 12 + length
    return batches


def assert_stored(broker, topic: str, partitions: int, codec: str, idempotent: bool) -> None:
    """Every stored batch uses `codec` or none (both clients send a batch uncompressed when
    compression does not shrink it), at least one uses `codec`, and idempotent producers got
    a producer id."""
    batches = [
        b for p in range(partitions) for b in stored_batches(broker.partition_dir(topic, p))
    ]
    assert batches, f"no batch stored for {topic}"
    wanted = CODECS[codec]
    assert {b.codec for b in batches} <= {wanted, 0}, batches
    assert any(b.codec == wanted for b in batches), batches
    if idempotent:
        assert all(b.producer_id >= 0 for b in batches), batches


def assert_consumed(expected: list[Message], got: dict[int, list[tuple[int, Message]]]) -> None:
    """Per partition: the expected messages in order, at offsets 0, 1, 2, ..."""
    want = by_partition(expected)
    assert sorted(got) == sorted(want), f"partitions read {sorted(got)}, want {sorted(want)}"
    for partition, msgs in want.items():
        records = got[partition]
        assert [o for o, _ in records] == list(range(len(msgs))), f"partition {partition}"
        for (offset, actual), wanted in zip(records, msgs):
            assert actual == wanted, f"partition {partition} offset {offset}"


# --- kafka-python -------------------------------------------------------------------------

KP_COMMON = {
    "request_timeout_ms": REQUEST_TIMEOUT_S * 1000,
    "bootstrap_timeout_ms": REQUEST_TIMEOUT_S * 1000,
}


def kp_create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-admin", **KP_COMMON)
    try:
        admin.create_topics(
            [KpNewTopic(topic, num_partitions=partitions, replication_factor=1)],
            timeout_ms=REQUEST_TIMEOUT_S * 1000,
        )
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics(
                [KpNewTopic(topic, num_partitions=partitions, replication_factor=1)],
                timeout_ms=REQUEST_TIMEOUT_S * 1000,
            )
    finally:
        admin.close()


def kp_produce(bootstrap: str, topic: str, msgs: list[Message], codec: str, **send) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=20,
        max_block_ms=REQUEST_TIMEOUT_S * 1000,
        **KP_COMMON,
    )
    try:
        futures = [
            producer.send(
                topic,
                key=m.key,
                value=m.value,
                headers=list(m.headers),
                partition=m.partition,
                **{k: v[i] for k, v in send.items()},
            )
            for i, m in enumerate(msgs)
        ]
        producer.flush(timeout=DEADLINE_S)
        next_offset: dict[int, int] = {}
        for m, f in zip(msgs, futures):
            md = f.get(timeout=DEADLINE_S)
            assert (md.topic, md.partition) == (topic, m.partition)
            assert md.offset == next_offset.get(m.partition, 0)
            next_offset[m.partition] = md.offset + 1
    finally:
        producer.close(timeout=REQUEST_TIMEOUT_S)


def kp_consumer(bootstrap: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        **KP_COMMON,
    )


def kp_consume(bootstrap: str, topic: str, partitions: int, count: int):
    consumer = kp_consumer(bootstrap)
    try:
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: dict[int, list[tuple[int, Message]]] = {}
        seen = 0
        deadline = time.monotonic() + DEADLINE_S
        while seen < count and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    msg = Message(tp.partition, r.key, r.value, tuple(r.headers or ()))
                    got.setdefault(tp.partition, []).append((r.offset, msg))
                    seen += 1
        assert seen == count, f"read {seen} of {count} messages in {DEADLINE_S}s"
        # Nothing more arrives past the end.
        assert not consumer.poll(timeout_ms=300)
        return got
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_produce_consume(broker, codec):
    topic = unique_topic(f"kp-{codec}")
    kp_create_topic(broker.bootstrap, topic, PARTITIONS)
    msgs = messages(f"kafka-python/{codec}")
    kp_produce(broker.bootstrap, topic, msgs, codec)
    got = kp_consume(broker.bootstrap, topic, PARTITIONS, len(msgs))
    assert_consumed(msgs, got)
    # kafka-python 2.1+ enables idempotence by default against brokers that allow it.
    assert_stored(broker, topic, PARTITIONS, codec, idempotent=True)


def test_kafka_python_offsets_for_times_and_end_offsets(broker):
    topic = unique_topic("kp-times")
    kp_create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 3_600_000
    msgs = messages("times", count=20, partitions=1)
    timestamps = [base + i * 1000 for i in range(len(msgs))]
    kp_produce(broker.bootstrap, topic, msgs, "none", timestamp_ms=timestamps)

    consumer = kp_consumer(broker.bootstrap)
    try:
        tp = KpTopicPartition(topic, 0)
        timeout_ms = REQUEST_TIMEOUT_S * 1000
        assert consumer.beginning_offsets([tp], timeout_ms=timeout_ms) == {tp: 0}
        assert consumer.end_offsets([tp], timeout_ms=timeout_ms) == {tp: len(msgs)}

        found = consumer.offsets_for_times({tp: base + 5500}, timeout_ms=timeout_ms)[tp]
        assert (found.offset, found.timestamp) == (6, base + 6000)
        found = consumer.offsets_for_times({tp: 0}, timeout_ms=timeout_ms)[tp]
        assert (found.offset, found.timestamp) == (0, base)
        found = consumer.offsets_for_times({tp: timestamps[-1]}, timeout_ms=timeout_ms)[tp]
        assert (found.offset, found.timestamp) == (len(msgs) - 1, timestamps[-1])
        # Past the last timestamp: no such offset.
        assert consumer.offsets_for_times({tp: base + 10**7}, timeout_ms=timeout_ms)[tp] is None

        # Seeking to a found offset reads from there, with the producer's timestamps.
        consumer.assign([tp])
        consumer.seek(tp, 6)
        records = []
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < len(msgs) - 6 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        assert [r.offset for r in records] == list(range(6, len(msgs)))
        assert [r.timestamp for r in records] == timestamps[6:]
    finally:
        consumer.close(autocommit=False)


# --- confluent-kafka (librdkafka) ---------------------------------------------------------


# What librdkafka really stores per requested codec, where that differs. (It enables LZ4 only
# when the broker advertises FindCoordinator, src/rdkafka_feature.c; the broker does now.)
LIBRDKAFKA_STORED_CODEC: dict[str, str] = {}


def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "py-ck-admin",
            "socket.timeout.ms": REQUEST_TIMEOUT_S * 1000,
        }
    )


def ck_create_topic(bootstrap: str, topic: str, partitions: int, config=None) -> None:
    admin = ck_admin(bootstrap)  # must outlive the futures: its destruction fails them
    futures = admin.create_topics(
        [CkNewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=REQUEST_TIMEOUT_S,
        operation_timeout=REQUEST_TIMEOUT_S,
    )
    futures[topic].result(timeout=DEADLINE_S)


def ck_produce(bootstrap: str, topic: str, msgs: list[Message], codec: str) -> None:
    errors: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": f"py-ck-producer-{codec}",
            "enable.idempotence": True,
            "compression.type": codec,
            "linger.ms": 20,
            "message.timeout.ms": DEADLINE_S * 1000,
            "socket.timeout.ms": REQUEST_TIMEOUT_S * 1000,
            "error_cb": errors.append,
        }
    )
    reports: list[tuple[KafkaError | None, int, int]] = []
    for m in msgs:
        producer.produce(
            topic,
            key=m.key,
            value=m.value,
            headers=list(m.headers),
            partition=m.partition,
            on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset())),
        )
    assert producer.flush(DEADLINE_S) == 0, "messages still queued after flush"
    assert not errors, errors
    assert [e for e, _, _ in reports if e is not None] == []
    delivered: dict[int, list[int]] = {}
    for _, partition, offset in reports:
        delivered.setdefault(partition, []).append(offset)
    for partition, msgs_in_p in by_partition(msgs).items():
        assert delivered[partition] == list(range(len(msgs_in_p))), f"partition {partition}"


def ck_consumer(bootstrap: str, errors: list) -> Consumer:
    # librdkafka requires group.id for a Consumer; no group API is ever used here because
    # partitions are assigned manually from OFFSET_BEGINNING and nothing is committed.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "py-ck-consumer",
            "group.id": "rivulet-python-tests-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
            "socket.timeout.ms": REQUEST_TIMEOUT_S * 1000,
            "error_cb": errors.append,
        }
    )


def ck_consume(bootstrap: str, topic: str, partitions: int, count: int):
    errors: list[KafkaError] = []
    consumer = ck_consumer(bootstrap, errors)
    try:
        consumer.assign([CkTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got: dict[int, list[tuple[int, Message]]] = {}
        at_eof: set[int] = set()
        seen = 0
        deadline = time.monotonic() + DEADLINE_S
        while (seen < count or len(at_eof) < partitions) and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                at_eof.add(m.partition())
                continue
            at_eof.discard(m.partition())
            msg = Message(m.partition(), m.key(), m.value(), tuple(m.headers() or ()))
            got.setdefault(m.partition(), []).append((m.offset(), msg))
            seen += 1
        assert seen == count, f"read {seen} of {count} messages in {DEADLINE_S}s"
        assert len(at_eof) == partitions, f"end of partition reached on {sorted(at_eof)}"

        # ListOffsets through librdkafka.
        for partition, msgs_in_p in got.items():
            low, high = consumer.get_watermark_offsets(
                CkTopicPartition(topic, partition), timeout=REQUEST_TIMEOUT_S
            )
            assert (low, high) == (0, len(msgs_in_p))
        assert not errors, errors
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_idempotent_produce_consume(broker, codec):
    topic = unique_topic(f"ck-{codec}")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    msgs = messages(f"confluent-kafka/{codec}")
    ck_produce(broker.bootstrap, topic, msgs, codec)
    got = ck_consume(broker.bootstrap, topic, PARTITIONS, len(msgs))
    assert_consumed(msgs, got)
    stored_codec = LIBRDKAFKA_STORED_CODEC.get(codec, codec)
    assert_stored(broker, topic, PARTITIONS, stored_codec, idempotent=True)


def test_confluent_kafka_admin(broker):
    topic = unique_topic("ck-admin")
    admin = ck_admin(broker.bootstrap)
    ck_create_topic(broker.bootstrap, topic, 2, config={"retention.ms": "3600000"})

    # A second create of the same name fails with TOPIC_ALREADY_EXISTS.
    again = admin.create_topics(
        [CkNewTopic(topic, num_partitions=2, replication_factor=1)],
        request_timeout=REQUEST_TIMEOUT_S,
    )
    # (try/except, not pytest.raises: its kept traceback would keep `admin` alive past the test)
    try:
        again[topic].result(timeout=DEADLINE_S)
        pytest.fail("creating an existing topic succeeded")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e

    metadata = admin.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
    assert sorted(metadata.topics[topic].partitions) == [0, 1]

    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[
        resource
    ].result(timeout=DEADLINE_S)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"
    assert configs["segment.bytes"].value == str(1024 * 1024 * 1024)
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value

    admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT_S)[topic].result(
        timeout=DEADLINE_S
    )
    # As in Kafka, the logs go after the response (renamed, then removed): wait for both.
    deadline = time.monotonic() + DEADLINE_S
    while topic in admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics:
        assert time.monotonic() < deadline, f"{topic} still listed after delete"
        time.sleep(0.1)
    for partition in (0, 1):
        while broker.partition_dir(topic, partition).exists():
            assert time.monotonic() < deadline, f"{topic}-{partition} still on disk"
            time.sleep(0.1)


# --- kcat (librdkafka's command line client, from Debian) ---------------------------------


def run_kcat(kcat: str, *args: str, input: bytes | None = None) -> str:
    done = subprocess.run(
        [kcat, *args],
        input=input,
        capture_output=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"kcat {' '.join(args)} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
    )
    return done.stdout.decode()


def node_ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_kcat_metadata(text: str):
    """`kcat -L` output -> ({broker id: "host:port"}, {topic: {partition: (leader, replicas,
    isrs)}})."""
    brokers: dict[int, str] = {}
    topics: dict[str, dict[int, tuple[int, list[int], list[int]]]] = {}
    current = None
    for line in text.splitlines():
        if m := re.match(r"^\s+broker (\d+) at (\S+)", line):
            brokers[int(m[1])] = m[2]
        elif m := re.match(r'^\s+topic "([^"]+)" with (\d+) partitions:', line):
            current = topics.setdefault(m[1], {})
        elif m := re.match(
            r"^\s+partition (\d+), leader (-?\d+), replicas: ([\d,]*), isrs: ([\d,]*)", line
        ):
            assert current is not None, line
            current[int(m[1])] = (int(m[2]), node_ids(m[3]), node_ids(m[4]))
        elif "error" in line.lower():
            raise AssertionError(f"kcat -L reported an error: {line}")
    return brokers, topics


def test_kcat_metadata(broker, kcat):
    topic = unique_topic("kcat-meta")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    text = run_kcat(kcat, "-L", "-b", broker.bootstrap, "-m", str(REQUEST_TIMEOUT_S))
    brokers, topics = parse_kcat_metadata(text)
    assert brokers == {1: broker.bootstrap}, text
    assert topic in topics, text
    assert topics[topic] == {p: (1, [1], [1]) for p in range(PARTITIONS)}, text


def test_kcat_produce_consume(broker, kcat):
    topic = unique_topic("kcat-rt")
    ck_create_topic(broker.bootstrap, topic, 1)
    lines = [f"key{i}:value {i}" for i in range(10)]
    run_kcat(
        kcat,
        "-P",
        "-b", broker.bootstrap,
        "-t", topic,
        "-p", "0",
        "-K", ":",
        "-H", "origin=kcat",
        "-z", "snappy",
        input=("\n".join(lines) + "\n").encode(),
    )
    out = run_kcat(
        kcat,
        "-C",
        "-b", broker.bootstrap,
        "-t", topic,
        "-p", "0",
        "-o", "beginning",
        "-e",
        "-q",
        "-f", "%o|%k|%s|%h\n",
    )
    assert out.splitlines() == [f"{i}|key{i}|value {i}|origin=kcat" for i in range(10)]
