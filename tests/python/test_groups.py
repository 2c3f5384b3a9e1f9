"""Consumer groups with real clients against one `rivulet server`: kafka-python's and
confluent-kafka's group consumers (eager range and cooperative-sticky assignment, static
membership, committed offsets), kcat's balanced consumer (-G), and both libraries' admin
clients (list, describe, committed offsets, delete groups and offsets).

Every test uses its own topic and groups. Waits are bounded polls; each test stays well under
30 s (the broker fixture lowers group.initial.rebalance.delay.ms to 100 ms).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic as CkNewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import NoError

REQUEST_TIMEOUT_S = 15
DEADLINE_S = 25
KP_COMMON = {
    "request_timeout_ms": REQUEST_TIMEOUT_S * 1000,
    "bootstrap_timeout_ms": REQUEST_TIMEOUT_S * 1000,
}
# Short heartbeats so members notice a rebalance quickly; Kafka's minimum session timeout
# (group.min.session.timeout.ms, 6 s) is respected.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_MS = 300


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(what: str, condition, step=None, timeout: float = DEADLINE_S):
    """Calls `step` (or sleeps) until `condition()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        if step is None:
            time.sleep(0.1)
        else:
            step()


def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "py-groups-admin",
            "socket.timeout.ms": REQUEST_TIMEOUT_S * 1000,
        }
    )


def kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="py-groups-kp-admin", **KP_COMMON
    )


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = ck_admin(bootstrap)  # must outlive the futures: its destruction fails them
    futures = admin.create_topics(
        [CkNewTopic(topic, num_partitions=partitions, replication_factor=1)],
        request_timeout=REQUEST_TIMEOUT_S,
        operation_timeout=REQUEST_TIMEOUT_S,
    )
    futures[topic].result(timeout=DEADLINE_S)


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int, tag: str):
    """`per_partition` messages to each partition; returns {(partition, offset): value}."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "py-groups-producer",
            "linger.ms": 5,
            "message.timeout.ms": DEADLINE_S * 1000,
        }
    )
    placed: dict[tuple[int, int], bytes] = {}
    failed = []

    def report(err, msg):
        if err is not None:
            failed.append(err)
        else:
            placed[(msg.partition(), msg.offset())] = msg.value()

    for p in range(partitions):
        for i in range(per_partition):
            value = f"{tag} p{p} #{i}".encode()
            producer.produce(topic, value=value, partition=p, on_delivery=report)
    assert producer.flush(DEADLINE_S) == 0, "messages still queued after flush"
    assert not failed, failed
    assert len(placed) == partitions * per_partition
    return placed


def broker_log(broker) -> str:
    return broker.log_path.read_text(errors="replace")


def rebalances(broker, group: str) -> int:
    """How many rebalances of `group` the broker has started (its log)."""
    return len(re.findall(rf"preparing to rebalance group={re.escape(group)} ", broker_log(broker)))


# ---------------------------------------------------------------------------------------------
# kafka-python
# ---------------------------------------------------------------------------------------------


class KpMember:
    """A kafka-python group consumer polled on a thread of its own: a KafkaConsumer must stay
    on one thread, and one member blocked in a rebalance must not keep the others from
    rejoining."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str):
        self.name = name
        self._partitions: frozenset[int] = frozenset()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, args=(bootstrap, group, topic), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, bootstrap: str, group: str, topic: str) -> None:
        try:
            consumer = KafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                client_id=self.name,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_MS,
                max_poll_interval_ms=SESSION_TIMEOUT_MS,
                fetch_max_wait_ms=100,
                **KP_COMMON,
            )
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
            return
        try:
            while not self._stop.is_set():
                consumer.poll(timeout_ms=100)
                with self._lock:
                    self._partitions = frozenset(tp.partition for tp in consumer.assignment())
        except BaseException as e:  # noqa: BLE001
            self.error = e
        finally:
            consumer.close(autocommit=False)  # sends LeaveGroup

    @property
    def partitions(self) -> frozenset[int]:
        assert self.error is None, f"{self.name}: {self.error!r}"
        with self._lock:
            return self._partitions

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S)
        assert not self._thread.is_alive(), f"{self.name} did not close"
        assert self.error is None, f"{self.name}: {self.error!r}"


def settled(members: list[KpMember], partitions: int, each: int) -> bool:
    """Every member holds `each` partitions and together they hold all, once each."""
    sets = [m.partitions for m in members]
    union = frozenset().union(*sets)
    return (
        all(len(s) == each for s in sets)
        and union == frozenset(range(partitions))
        and sum(len(s) for s in sets) == partitions
    )


def test_kafka_python_group_spreads_partitions_and_moves_them_when_a_member_leaves(broker):
    topic = unique("kp-group")
    group = unique("kp-group")
    create_topic(broker.bootstrap, topic, 6)
    members = [KpMember(broker.bootstrap, group, topic, f"kp-member-{i}") for i in range(3)]
    try:
        wait_until("three members with two partitions each", lambda: settled(members, 6, 2))
        leaving = members.pop()
        left_with = leaving.partitions
        leaving.stop()
        wait_until("two members with three partitions each", lambda: settled(members, 6, 3))
        assert left_with <= members[0].partitions | members[1].partitions
    finally:
        for m in members:
            m.stop()


def kp_group_consumer(bootstrap: str, group: str, topic: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        client_id="py-kp-committer",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=7,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        fetch_max_wait_ms=100,
        **KP_COMMON,
    )


def test_kafka_python_committed_offsets_survive_a_consumer_restart(broker):
    topic = unique("kp-commit")
    group = unique("kp-commit")
    partitions = 3
    create_topic(broker.bootstrap, topic, partitions)
    sent = produce(broker.bootstrap, topic, partitions, 20, "kp-commit")

    first: list[tuple[int, int]] = []
    consumer = kp_group_consumer(broker.bootstrap, group, topic)
    try:

        def read_some():
            for tp, records in consumer.poll(timeout_ms=200).items():
                first.extend((tp.partition, r.offset) for r in records)
            return len(first) >= 25

        wait_until("the first consumer reads 25 messages", read_some, step=lambda: None)
        # Commits the position of every assigned partition: after what poll returned, or the
        # start (0) of a partition not read yet.
        consumer.commit()
        expected = {p: 0 for p in range(partitions)}
        for p, o in first:
            expected[p] = max(expected[p], o + 1)
        for p in range(partitions):
            committed = consumer.committed(KpTopicPartition(topic, p))
            assert committed == expected[p], f"partition {p}: {committed}"
    finally:
        consumer.close(autocommit=False)

    second: list[tuple[int, int]] = []
    consumer = kp_group_consumer(broker.bootstrap, group, topic)
    try:

        def read_rest():
            for tp, records in consumer.poll(timeout_ms=200).items():
                second.extend((tp.partition, r.offset) for r in records)
            return len(first) + len(second) >= len(sent)

        wait_until("the second consumer reads the rest", read_rest, step=lambda: None)
        # Nothing more comes.
        assert not consumer.poll(timeout_ms=500)
    finally:
        consumer.close(autocommit=False)
    # Each message exactly once: the restart skipped nothing and repeated nothing.
    assert sorted(first + second) == sorted(sent), (sorted(first), sorted(second))
    for p in range(partitions):
        resumed = [o for q, o in second if q == p]
        if resumed:
            assert resumed[0] == expected[p], f"partition {p} resumed at {resumed[0]}"


# ---------------------------------------------------------------------------------------------
# confluent-kafka
# ---------------------------------------------------------------------------------------------


class CkMember:
    """A confluent-kafka group consumer whose rebalance callbacks are recorded."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, **config):
        self.name = name
        self.events: list[tuple[str, frozenset[int]]] = []
        self.messages: list[tuple[int, int]] = []
        self.errors: list = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": name,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS,
                "max.poll.interval.ms": SESSION_TIMEOUT_MS,
                "fetch.wait.max.ms": 100,
                "socket.timeout.ms": REQUEST_TIMEOUT_S * 1000,
                "error_cb": self.errors.append,
                **config,
            }
        )
        self.consumer.subscribe(
            [topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, _consumer, partitions) -> None:
        self.events.append(("assign", frozenset(p.partition for p in partitions)))

    def _revoked(self, _consumer, partitions) -> None:
        self.events.append(("revoke", frozenset(p.partition for p in partitions)))

    def _lost(self, _consumer, partitions) -> None:
        self.events.append(("lost", frozenset(p.partition for p in partitions)))

    def poll(self, timeout: float = 0.05) -> None:
        m = self.consumer.poll(timeout)
        if m is None:
            return
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                self.errors.append(m.error())
            return
        self.messages.append((m.partition(), m.offset()))

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(p.partition for p in self.consumer.assignment())

    def close(self) -> None:
        self.consumer.close()
        assert not self.errors, f"{self.name}: {self.errors}"


def poll_all(*members: CkMember):
    def step():
        for m in members:
            m.poll()

    return step


def test_confluent_cooperative_sticky_moves_only_what_it_must(broker):
    topic = unique("ck-coop")
    group = unique("ck-coop")
    create_topic(broker.bootstrap, topic, 4)
    config = {"partition.assignment.strategy": "cooperative-sticky"}
    a = CkMember(broker.bootstrap, group, topic, "ck-coop-a", **config)
    b = None
    try:
        wait_until("a holds all four partitions", lambda: a.partitions == {0, 1, 2, 3}, poll_all(a))
        assert a.events == [("assign", frozenset({0, 1, 2, 3}))]

        b = CkMember(broker.bootstrap, group, topic, "ck-coop-b", **config)
        wait_until(
            "two partitions each",
            lambda: len(a.partitions) == 2 and len(b.partitions) == 2,
            poll_all(a, b),
        )
        kept, moved = a.partitions, b.partitions
        assert kept | moved == {0, 1, 2, 3}
        # Incremental: a was told only of the two partitions it gave up, never lost the two
        # it kept, and was assigned nothing again; b was assigned exactly what a gave up.
        revoked = [p for kind, p in a.events if kind == "revoke" and p]
        assert revoked == [moved], a.events
        assert [e for e in a.events if e[0] == "lost"] == [], a.events
        assert [p for kind, p in a.events if kind == "assign" and p] == [
            frozenset({0, 1, 2, 3})
        ], a.events
        assert [p for kind, p in b.events if kind == "assign" and p] == [moved], b.events

        # Committed offsets through consumer.committed(): each member commits what it read.
        sent = produce(broker.bootstrap, topic, 4, 5, "ck-coop")
        wait_until(
            "both members read every message",
            lambda: sorted(a.messages + b.messages) == sorted(sent),
            poll_all(a, b),
        )
        a.consumer.commit(asynchronous=False)
        b.consumer.commit(asynchronous=False)
        committed = a.consumer.committed(
            [CkTopicPartition(topic, p) for p in range(4)], timeout=REQUEST_TIMEOUT_S
        )
        assert {(tp.partition, tp.offset, tp.error) for tp in committed} == {
            (p, 5, None) for p in range(4)
        }
    finally:
        a.close()
        if b is not None:
            b.close()


def test_confluent_static_member_rejoins_without_a_rebalance(broker):
    topic = unique("ck-static")
    group = unique("ck-static")
    create_topic(broker.bootstrap, topic, 4)
    a = CkMember(broker.bootstrap, group, topic, "ck-static-a", **{"group.instance.id": "a"})
    b = CkMember(broker.bootstrap, group, topic, "ck-static-b", **{"group.instance.id": "b"})
    b2 = None
    admin = ck_admin(broker.bootstrap)
    try:
        wait_until(
            "two partitions each",
            lambda: len(a.partitions) == 2 and len(b.partitions) == 2,
            poll_all(a, b),
        )
        a_had, b_had = a.partitions, b.partitions
        a_events = len(a.events)
        before = rebalances(broker, group)
        assert before >= 1, "the broker logs its rebalances"
        # A static member leaves no LeaveGroup behind: its partitions wait for it for the
        # session timeout.
        b.close()
        b2 = CkMember(broker.bootstrap, group, topic, "ck-static-b2", **{"group.instance.id": "b"})
        wait_until(
            "the new b holds b's partitions", lambda: b2.partitions == b_had, poll_all(a, b2)
        )
        # A little longer: a rebalance, if one were started, would show now.
        deadline = time.monotonic() + 2 * HEARTBEAT_MS / 1000 + 1
        while time.monotonic() < deadline:
            poll_all(a, b2)()
        assert rebalances(broker, group) == before, "the static rejoin rebalanced the group"
        assert a.partitions == a_had
        assert a.events[a_events:] == [], "a saw a rebalance"

        described = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)
        d = described[group].result(timeout=DEADLINE_S)
        assert d.state == ConsumerGroupState.STABLE
        by_instance = {
            m.group_instance_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
            for m in d.members
        }
        assert by_instance == {"a": a_had, "b": b_had}
        assert {m.client_id for m in d.members} == {"ck-static-a", "ck-static-b2"}
    finally:
        a.close()
        if b2 is not None:
            b2.close()


# ---------------------------------------------------------------------------------------------
# kcat -G
# ---------------------------------------------------------------------------------------------


def kcat_group_read(kcat: str, bootstrap: str, group: str, topic: str) -> list[str]:
    """One balanced-consumer run of kcat: reads to the end of every partition, commits, exits."""
    done = subprocess.run(
        [
            kcat,
            "-b", bootstrap,
            "-G", group,
            "-X", "auto.offset.reset=earliest",
            "-X", f"session.timeout.ms={SESSION_TIMEOUT_MS}",
            "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}",
            "-f", "%p:%o:%s\\n",
            "-e",
            "-q",
            topic,
        ],
        capture_output=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"kcat -G exited {done.returncode}: {done.stderr.decode(errors='replace')}"
    )
    return done.stdout.decode().splitlines()


def test_kcat_group_reads_only_what_it_has_not_committed(broker, kcat):
    topic = unique("kcat-group")
    group = unique("kcat-group")
    create_topic(broker.bootstrap, topic, 2)
    first = produce(broker.bootstrap, topic, 2, 5, "first")
    lines = kcat_group_read(kcat, broker.bootstrap, group, topic)
    assert sorted(lines) == sorted(f"{p}:{o}:{v.decode()}" for (p, o), v in first.items())

    second = produce(broker.bootstrap, topic, 2, 3, "second")
    lines = kcat_group_read(kcat, broker.bootstrap, group, topic)
    assert sorted(lines) == sorted(f"{p}:{o}:{v.decode()}" for (p, o), v in second.items())

    admin = kp_admin(broker.bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 8, 1: 8}


# ---------------------------------------------------------------------------------------------
# Admin clients
# ---------------------------------------------------------------------------------------------


def test_admin_clients_list_describe_and_delete_groups(broker):
    topic = unique("admin-group")
    group = unique("admin-group")
    create_topic(broker.bootstrap, topic, 2)
    sent = produce(broker.bootstrap, topic, 2, 4, "admin")
    admin = ck_admin(broker.bootstrap)
    kp = kp_admin(broker.bootstrap)
    member = CkMember(broker.bootstrap, group, topic, "py-admin-member")
    closed = False
    try:
        wait_until(
            "the member reads every message",
            lambda: sorted(member.messages) == sorted(sent),
            poll_all(member),
        )
        member.consumer.commit(asynchronous=False)

        # While the member runs: listed and described as Stable, and not deletable.
        listed = admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result(
            timeout=DEADLINE_S
        )
        ours = [g for g in listed.valid if g.group_id == group]
        assert len(ours) == 1, [g.group_id for g in listed.valid]
        assert ours[0].state == ConsumerGroupState.STABLE
        assert not ours[0].is_simple_consumer_group
        stable = kp.list_groups(states_filter=["Stable"])
        assert group in {g["group_id"] for g in stable}, stable

        d = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[
            group
        ].result(timeout=DEADLINE_S)
        assert d.state == ConsumerGroupState.STABLE
        assert d.partition_assignor == "range"
        assert [m.client_id for m in d.members] == ["py-admin-member"]
        assigned = {(tp.topic, tp.partition) for tp in d.members[0].assignment.topic_partitions}
        assert assigned == {(topic, 0), (topic, 1)}

        kp_described = kp.describe_groups([group])[group]
        assert kp_described["group_state"] == "Stable", kp_described
        assert kp_described["protocol_type"] == "consumer", kp_described
        assert len(kp_described["members"]) == 1, kp_described

        busy = admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group]
        with pytest.raises(KafkaException) as refused:
            busy.result(timeout=DEADLINE_S)
        assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP

        member.close()
        closed = True

        # Empty now: the committed offsets remain, and can be deleted partition by partition.
        empty = wait_until(
            "the group is Empty",
            lambda: [
                g for g in kp.list_groups(states_filter=["Empty"]) if g["group_id"] == group
            ],
        )
        assert empty[0]["protocol_type"] == "consumer"
        request = [ConsumerGroupTopicPartitions(group)]
        offsets = admin.list_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT_S)[
            group
        ].result(timeout=DEADLINE_S)
        assert {(tp.topic, tp.partition, tp.offset) for tp in offsets.topic_partitions} == {
            (topic, 0, 4),
            (topic, 1, 4),
        }
        # confluent-kafka's Python API has no DeleteConsumerGroupOffsets: kafka-python's.
        deleted = kp.delete_group_offsets(group, [KpTopicPartition(topic, 0)])
        assert deleted == {KpTopicPartition(topic, 0): NoError}
        left = kp.list_group_offsets({group: None})[group]
        assert {tp.partition: om.offset for tp, om in left.items()} == {1: 4}

        gone = admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group]
        assert gone.result(timeout=DEADLINE_S) is None
        listed = admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result(
            timeout=DEADLINE_S
        )
        assert group not in {g.group_id for g in listed.valid}
        assert kp.list_group_offsets({group: None})[group] == {}
    finally:
        if not closed:
            member.close()
        kp.close()
