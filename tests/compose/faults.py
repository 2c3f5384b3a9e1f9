"""The fault suite: a steady acks=all idempotent producer and a group consumer run against the
3-node compose cluster while, round after round, the leader of a partition is killed
(`docker kill`, then started again), a node is paused (`docker pause`) and a leader is cut off
its network (`docker network disconnect`). The checker then proves that nothing acknowledged was
lost or stored twice, every partition kept its order and committed offsets never went back, and
the run prints rounds, faults, messages acknowledged, lost, duplicated and the longest time a
partition had no leader.

Runs under pytest (test_faults.py) or alone: `python tests/compose/faults.py --rounds 3`.
Broker settings are the defaults of docker-compose.yml; only the clients' timeouts are short.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checker import Report, check, leaderless_spans  # noqa: E402
from cluster import NODES, REPO, ComposeCluster  # noqa: E402
from workload import (  # noqa: E402
    CLIENT_TIMEOUTS,
    CommitMonitor,
    GroupConsumer,
    LeaderMonitor,
    Producer,
    metadata_client,
)

TOPIC = "faults"
GROUP = "fault-checker"


@dataclass
class Settings:
    rounds: int = 2
    partitions: int = 6
    rate: int = 200
    # How long a paused or cut-off node stays so: past broker.session.timeout.ms (9 s) so its
    # leaderships move, as a real outage would.
    outage: float = 12.0
    # How long a killed node stays down before `docker start`.
    down: float = 4.0
    seed: int = field(default_factory=lambda: int(time.time()))


def log(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_in_sync(client, partitions: int, topic: str = TOPIC, timeout: float = 90) -> None:
    """Waits until every partition of `topic` has a leader and all 3 replicas in sync."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            found = client.list_topics(topic, timeout=2).topics.get(topic)
            if found is not None and found.error is None and len(found.partitions) == partitions:
                last = {p: (m.leader, sorted(m.isrs)) for p, m in found.partitions.items()}
                if all(leader >= 0 and len(isr) == 3 for leader, isr in last.values()):
                    return
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(0.25)
    raise TimeoutError(f"partitions of {topic} not in sync after {timeout}s: {last}")


def read_log(bootstrap: str, partitions: int) -> dict[int, list[tuple[int, int]]]:
    """Reads every partition from its start to its end: {partition: [(offset, id)]}."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fault-log-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **CLIENT_TIMEOUTS,
        }
    )
    try:
        ends = {}
        for p in range(partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
        records: dict[int, list[tuple[int, int]]] = {p: [] for p in range(partitions)}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 120
        while len(done) < partitions and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=1):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= ends[m.partition()]:
                            done.add(m.partition())
                    continue
                records[m.partition()].append((m.offset(), int(m.value())))
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
        if len(done) < partitions:
            raise TimeoutError(f"could not read partitions {set(range(partitions)) - done}")
        return records
    finally:
        consumer.close()


@dataclass
class Outcome:
    report: Report
    rounds: int
    faults: list[tuple[float, str, int]]
    spans: list[tuple[str, int, int, float]]

    def longest_leaderless(self) -> float:
        return max((s[3] for s in self.spans), default=0.0)

    def summary(self) -> dict:
        r = self.report
        by_kind: dict[str, float] = {}
        for kind, _, _, seconds in self.spans:
            by_kind[kind] = max(by_kind.get(kind, 0.0), seconds)
        return {
            "rounds": self.rounds,
            "faults": len(self.faults),
            "acked": r.acked,
            "acked_without_offset": r.acked_without_offset,
            "unacked": r.unacked,
            "consumed": r.consumed,
            "redelivered": r.redelivered,
            "lost": len(r.lost),
            "duplicated": len(r.duplicated),
            "out_of_order": len(r.out_of_order),
            "commit_regressions": len(r.commit_regressions),
            "longest_leaderless_s": round(self.longest_leaderless(), 2),
            "longest_leaderless_by_fault_s": {k: round(v, 2) for k, v in by_kind.items()},
        }


def run_faults(cluster: ComposeCluster, settings: Settings) -> Outcome:
    """Runs the load and the fault rounds on an up cluster; returns what the checker found."""
    rng = random.Random(settings.seed)
    bootstrap = cluster.bootstrap
    creator = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_TIMEOUTS})
    futures = creator.create_topics(
        [
            NewTopic(
                TOPIC,
                num_partitions=settings.partitions,
                replication_factor=3,
                config={"min.insync.replicas": "2"},
            )
        ]
    )
    futures[TOPIC].result(timeout=30)
    del creator, futures  # no admin client lives through the faults (see metadata_client)
    admin = metadata_client(bootstrap)
    wait_in_sync(admin, settings.partitions)

    leaders = LeaderMonitor(bootstrap, TOPIC)
    commits = CommitMonitor(bootstrap, TOPIC, GROUP, settings.partitions)
    consumer = GroupConsumer(bootstrap, TOPIC, GROUP)
    producer = Producer(bootstrap, TOPIC, settings.partitions, settings.rate)
    threads = [leaders, commits, consumer, producer]
    for t in threads:
        t.start()
    faults: list[tuple[float, str, int]] = []
    try:
        deadline = time.monotonic() + 60
        while not consumer.consumed_ids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not consumer.consumed_ids():
            raise TimeoutError("the group consumer read nothing within 60 s")
        log(f"load running: {settings.rate} msgs/s on {settings.partitions} partitions")

        for round_no in range(1, settings.rounds + 1):
            for kind in ("kill", "pause", "disconnect"):
                current = leaders.leaders()
                led = sorted({n for n in current.values() if n in NODES})
                if kind == "pause":
                    node = rng.choice(NODES)
                else:
                    node = rng.choice(led) if led else rng.choice(NODES)
                moved = sum(1 for n in current.values() if n == node)
                t0 = time.monotonic()
                faults.append((t0, kind, node))
                if kind == "kill":
                    cluster.kill(node)
                    time.sleep(settings.down)
                    cluster.start(node)
                elif kind == "pause":
                    cluster.pause(node)
                    time.sleep(settings.outage)
                    cluster.unpause(node)
                else:
                    cluster.disconnect(node)
                    time.sleep(settings.outage)
                    cluster.connect(node)
                cluster.wait_healthy(timeout=120)
                wait_in_sync(admin, settings.partitions)
                log(
                    f"round {round_no}: {kind} node {node} (led {moved} partitions); "
                    f"healed and in sync after {time.monotonic() - t0:.1f} s; "
                    f"acked so far {len(producer.log.acked)}"
                )
                for t in threads:
                    if getattr(t, "error", None) is not None:
                        raise RuntimeError(f"{t.name} failed: {t.error!r}")
                time.sleep(1)

        producer.stop()
        producer.join(timeout=180)
        if producer.is_alive() or producer.error is not None:
            raise RuntimeError(f"the producer did not finish: {producer.error!r}")
        acked_ids = {a.msg_id for a in producer.log.acked}
        deadline = time.monotonic() + 120
        while not acked_ids <= consumer.consumed_ids() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)  # one more commit after the last batch
    finally:
        for t in threads:
            t.stop()
        for t in threads:
            t.join(timeout=60)

    log_records = read_log(bootstrap, settings.partitions)
    report = check(
        acks=[(a.msg_id, a.partition, a.offset) for a in producer.log.acked],
        unacked=len(producer.log.failed),
        deliveries=[(d.partition, d.offset, d.msg_id) for d in consumer.deliveries],
        commit_histories=[
            ("consumer commits", [c for _, c in consumer.commits]),
            ("committed offsets (OffsetFetch)", [c for _, c in commits.samples]),
        ],
        log=log_records,
    )
    return Outcome(report, settings.rounds, faults, leaderless_spans(faults, leaders.samples))


def print_outcome(outcome: Outcome) -> None:
    s = outcome.summary()
    print(
        "\n".join(
            [
                "fault suite:",
                f"  rounds                 {s['rounds']}",
                f"  faults                 {s['faults']} (kill, pause, network disconnect each round)",
                f"  messages acknowledged  {s['acked']} ({s['acked_without_offset']} implicitly, "
                "without an offset)",
                f"  messages lost          {s['lost']}",
                f"  messages duplicated    {s['duplicated']}",
                f"  out of order           {s['out_of_order']}",
                f"  commits gone backwards {s['commit_regressions']}",
                f"  not acknowledged       {s['unacked']} (delivery failed; not promised)",
                f"  re-delivered           {s['redelivered']} (after rebalances; at-least-once)",
                f"  longest leaderless     {s['longest_leaderless_s']} s "
                f"{s['longest_leaderless_by_fault_s']}",
            ]
        ),
        flush=True,
    )
    print("FAULT_SUITE_JSON " + json.dumps(s), flush=True)
    r = outcome.report
    for title, items in (
        ("lost", r.lost),
        ("duplicated", r.duplicated),
        ("out of order", r.out_of_order),
        ("commit regressions", r.commit_regressions),
    ):
        if items:
            print(f"  {title}: {items[:20]}{' ...' if len(items) > 20 else ''}", flush=True)
    for why in r.lost_why[:20]:
        print(f"  {why}", flush=True)


def main() -> int:
    faulthandler.enable()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--binary", default=os.environ.get("RIVULET_BIN"))
    parser.add_argument(
        "--logs", type=Path, help="on a failed check, save each node's log in this directory"
    )
    args = parser.parse_args()
    binary = Path(args.binary or REPO / "target/debug/rivulet")
    ComposeCluster.remove_stale()
    cluster = ComposeCluster(binary)
    try:
        log(f"image {cluster.image}: {cluster.build_image() / 2**20:.1f} MiB")
        cluster.up()
        outcome = run_faults(cluster, Settings(rounds=args.rounds, rate=args.rate, seed=args.seed))
        print_outcome(outcome)
        if not outcome.report.ok and args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            for n in NODES:
                (args.logs / f"node{n}.log").write_text(cluster.logs(n))
            log(f"node logs saved in {args.logs}")
        return 0 if outcome.report.ok else 1
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
