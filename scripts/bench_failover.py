#!/usr/bin/env python3
"""Time to a new leader after `docker kill` of a partition leader, on the docker compose cluster
with its default configuration.

    .venv/bin/python scripts/bench_failover.py [--kills 20] [--binary target/release/rivulet]

Builds a private copy of the compose cluster (tests/compose/cluster.py) from the binary, creates
a topic of 6 partitions with 3 replicas, then repeatedly kills the node leading some partition
(every other time the node that is also the active controller), and samples Metadata from the
surviving nodes every 20 ms until every partition the dead node led names another leader. The
time from `docker kill` returning to that sample is one measurement. The node is then started
again and the next round waits until all replicas are back in sync. Prints every kill and the
p50 / p99 / max, overall and split by whether the killed node was the active controller, and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/compose"))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import NODES, ComposeCluster  # noqa: E402
from faults import wait_in_sync  # noqa: E402
from workload import metadata_client  # noqa: E402

TOPIC = "failover"
PARTITIONS = 6


def snapshot(client):
    md = client.list_topics(TOPIC, timeout=2)
    topic = md.topics[TOPIC]
    return md.controller_id, {p: (m.leader, len(m.isrs)) for p, m in topic.partitions.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--binary", default=str(REPO / "target/release/rivulet"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    ComposeCluster.remove_stale()
    cluster = ComposeCluster(Path(args.binary))
    results: list[dict] = []
    try:
        size = cluster.build_image()
        print(f"image {cluster.image}: {size / 2**20:.1f} MiB", flush=True)
        cluster.up()
        creator = AdminClient({"bootstrap.servers": cluster.bootstrap})
        creator.create_topics([NewTopic(TOPIC, PARTITIONS, 3)])[TOPIC].result(timeout=30)
        del creator
        for k in range(1, args.kills + 1):
            probe = metadata_client(cluster.bootstrap)
            wait_in_sync(probe, PARTITIONS, TOPIC, timeout=120)
            controller, parts = snapshot(probe)
            probe.close()
            leaders = sorted({l for l, _ in parts.values()})
            if k % 2 == 0 and controller in leaders:
                victim = controller
            else:
                others = [n for n in leaders if n != controller] or leaders
                victim = rng.choice(others)
            led = [p for p, (l, _) in parts.items() if l == victim]
            survivors = ",".join(
                f"localhost:{cluster.ports[n]}" for n in NODES if n != victim
            )
            watcher = metadata_client(survivors)
            snapshot(watcher)  # connected before the kill
            cluster.kill(victim)
            t0 = time.monotonic()
            elapsed = None
            while time.monotonic() - t0 < 60:
                try:
                    _, now = snapshot(watcher)
                    if all(now.get(p, (-1, 0))[0] not in (-1, victim) for p in led):
                        elapsed = time.monotonic() - t0
                        break
                except Exception:  # noqa: BLE001 - a sample may fail while leaders move
                    pass
                time.sleep(0.02)
            watcher.close()
            result = {
                "kill": k,
                "node": victim,
                "was_controller": victim == controller,
                "partitions": len(led),
                "seconds": round(elapsed, 3) if elapsed is not None else None,
            }
            results.append(result)
            print(json.dumps(result), flush=True)
            cluster.start(victim)
            cluster.wait_healthy(timeout=120)
    finally:
        cluster.close()

    times = [r["seconds"] for r in results if r["seconds"] is not None]
    missing = sum(1 for r in results if r["seconds"] is None)

    def stats(values: list[float]) -> dict:
        if not values:
            return {}
        return {
            "n": len(values),
            "p50": round(statistics.median(values), 3),
            "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3),
        }

    summary = {
        "kills": len(results),
        "no_new_leader_within_60s": missing,
        "all": stats(times),
        "controller_killed": stats(
            [r["seconds"] for r in results if r["was_controller"] and r["seconds"] is not None]
        ),
        "other_killed": stats(
            [r["seconds"] for r in results if not r["was_controller"] and r["seconds"] is not None]
        ),
    }
    print("FAILOVER_JSON " + json.dumps(summary))
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
