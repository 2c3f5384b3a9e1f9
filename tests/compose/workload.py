"""The steady load the fault suite runs while it injects faults, and what it records.

- `Producer`: an idempotent, acks=all confluent-kafka (librdkafka) producer sending numbered
  messages at a steady rate, round-robin over the partitions; it records every acknowledgement
  (message id, partition, offset) and every failure.
- `GroupConsumer`: a confluent-kafka group member that reads, records each record it is given
  and commits synchronously after each batch, recording what it committed.
- `LeaderMonitor`: samples Metadata every 100 ms and records each partition's leader, so the
  leaderless spans after each fault can be measured.
- `CommitMonitor`: reads the group's committed offsets through the admin API twice a second.

Everything recorded is read by `checker.py` once the load has stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer as KafkaProducer,
    TopicPartition,
)
# Clients give up on a silent broker within seconds, not librdkafka's 30-60 s defaults, so a
# paused or cut-off node only delays them briefly. (Broker settings stay at their defaults.)
CLIENT_TIMEOUTS = {
    "socket.timeout.ms": 5000,
    "socket.keepalive.enable": True,
    "topic.metadata.refresh.interval.ms": 2000,
}


def metadata_client(bootstrap: str) -> Consumer:
    """A client for Metadata requests only. (Not an AdminClient: librdkafka 2.x can trip an
    internal assertion, `eonce->refcnt > 0`, when admin requests meet a killed broker.)"""
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "metadata", **CLIENT_TIMEOUTS})


@dataclass
class Ack:
    """One acknowledged message."""

    msg_id: int
    partition: int
    offset: int


@dataclass
class ProducerLog:
    acked: list[Ack] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    sent: int = 0


class Producer(threading.Thread):
    """Sends `rate` numbered messages per second until stopped, then flushes."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: int):
        super().__init__(name="producer", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.log = ProducerLog()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.client = KafkaProducer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "delivery.timeout.ms": 120_000,
                "request.timeout.ms": 5000,
                **CLIENT_TIMEOUTS,
            }
        )
        self.lock = threading.Lock()

    def _on_delivery(self, err, msg) -> None:
        msg_id = int(msg.value())
        with self.lock:
            if err is None:
                self.log.acked.append(Ack(msg_id, msg.partition(), msg.offset()))
            else:
                self.log.failed.append((msg_id, str(err)))

    def run(self) -> None:
        try:
            interval = 1.0 / self.rate
            next_at = time.monotonic()
            msg_id = 0
            while not self.stop_event.is_set():
                partition = msg_id % self.partitions
                while True:
                    try:
                        self.client.produce(
                            self.topic,
                            value=str(msg_id).encode(),
                            partition=partition,
                            on_delivery=self._on_delivery,
                        )
                        break
                    except BufferError:
                        self.client.poll(0.05)
                msg_id += 1
                self.log.sent = msg_id
                self.client.poll(0)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()
            remaining = self.client.flush(150)
            if remaining:
                raise RuntimeError(f"{remaining} messages still undelivered after 150 s")
        except BaseException as e:  # noqa: BLE001 - reported by the suite
            self.error = e

    def stop(self) -> None:
        self.stop_event.set()


@dataclass
class Delivery:
    """One record given to the consumer."""

    partition: int
    offset: int
    msg_id: int
    at: float


class GroupConsumer(threading.Thread):
    """A group member that records what it reads and what it commits."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        super().__init__(name="consumer", daemon=True)
        self.topic = topic
        self.deliveries: list[Delivery] = []
        self.commits: list[tuple[float, dict[int, int]]] = []
        self.commit_errors: list[str] = []
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.client = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 30000,
                **CLIENT_TIMEOUTS,
            }
        )

    def run(self) -> None:
        try:
            self.client.subscribe([self.topic])
            while not self.stop_event.is_set():
                batch = self.client.consume(num_messages=500, timeout=0.2)
                if not batch:
                    continue
                positions: dict[int, int] = {}
                now = time.monotonic()
                with self.lock:
                    for m in batch:
                        if m.error():
                            if m.error().code() != KafkaError._PARTITION_EOF:
                                self.errors.append(str(m.error()))
                            continue
                        self.deliveries.append(
                            Delivery(m.partition(), m.offset(), int(m.value()), now)
                        )
                        positions[m.partition()] = m.offset() + 1
                if not positions:
                    continue
                offsets = [TopicPartition(self.topic, p, o) for p, o in positions.items()]
                try:
                    done = self.client.commit(offsets=offsets, asynchronous=False)
                    with self.lock:
                        self.commits.append(
                            (time.monotonic(), {tp.partition: tp.offset for tp in done or []})
                        )
                except KafkaException as e:
                    # A commit refused during a rebalance or a coordinator move: the records
                    # are read again from the last committed offset (at-least-once).
                    with self.lock:
                        self.commit_errors.append(str(e))
        except BaseException as e:  # noqa: BLE001 - reported by the suite
            self.error = e
        finally:
            self.client.close()

    def consumed_ids(self) -> set[int]:
        with self.lock:
            return {d.msg_id for d in self.deliveries}

    def stop(self) -> None:
        self.stop_event.set()


class LeaderMonitor(threading.Thread):
    """Samples each partition's leader every `every` seconds."""

    def __init__(self, bootstrap: str, topic: str, every: float = 0.1):
        super().__init__(name="leader-monitor", daemon=True)
        self.topic = topic
        self.every = every
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.stop_event = threading.Event()
        self.client = metadata_client(bootstrap)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                md = self.client.list_topics(self.topic, timeout=1)
                topic = md.topics.get(self.topic)
                if topic is not None and topic.error is None and topic.partitions:
                    leaders = {p: pm.leader for p, pm in topic.partitions.items()}
                    self.samples.append((time.monotonic(), leaders))
            except KafkaException:
                pass
            self.stop_event.wait(self.every)
        self.client.close()

    def leaders(self) -> dict[int, int]:
        return dict(self.samples[-1][1]) if self.samples else {}

    def stop(self) -> None:
        self.stop_event.set()


class CommitMonitor(threading.Thread):
    """Reads the group's committed offsets (OffsetFetch) twice a second, from a client that
    shares the group id but never joins the group."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int):
        super().__init__(name="commit-monitor", daemon=True)
        self.topic = topic
        self.group = group
        self.partitions = partitions
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.stop_event = threading.Event()
        self.client = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, **CLIENT_TIMEOUTS}
        )

    def run(self) -> None:
        partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        while not self.stop_event.is_set():
            try:
                result = self.client.committed(partitions, timeout=3)
                offsets = {
                    tp.partition: tp.offset
                    for tp in result
                    if tp.error is None and tp.offset >= 0
                }
                self.samples.append((time.monotonic(), offsets))
            except KafkaException:
                pass  # a sample during a coordinator move may fail
            self.stop_event.wait(0.5)
        self.client.close()

    def stop(self) -> None:
        self.stop_event.set()
