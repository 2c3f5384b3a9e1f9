#!/usr/bin/env python3
# Usage: .venv/bin/python scripts/bench_groups.py HOST:PORT INITIAL_REBALANCE_DELAY_MS
# against a running broker (e.g. target/release/rivulet server); needs confluent-kafka (.venv).
"""Group coordinator figures against a running broker: OffsetCommit round trips (sync commits
of 6 partitions) and the time for three confluent-kafka consumers to form a group."""
import sys, time, statistics
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic("bench-groups", 6, 1)]).values():
    try: f.result()
    except Exception as e: print("create:", e)
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-commit", "enable.auto.commit": False})
c.assign([TopicPartition("bench-groups", p, 0) for p in range(6)])
lat = []
for i in range(3000):
    offs = [TopicPartition("bench-groups", p, i + 1) for p in range(6)]
    t = time.perf_counter(); c.commit(offsets=offs, asynchronous=False); lat.append(time.perf_counter() - t)
c.close()
lat = sorted(lat[100:])
q = lambda x: lat[int(len(lat) * x)] * 1000
print(f"sync OffsetCommit of 6 partitions: n={len(lat)} p50={q(0.5):.2f} ms p99={q(0.99):.2f} ms max={lat[-1]*1000:.2f} ms, {len(lat)/sum(lat):.0f} commits/s")
# Group formation: three members, time until all have an assignment.
members = [Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-join", "session.timeout.ms": 6000}) for _ in range(3)]
t0 = time.perf_counter()
for m in members: m.subscribe(["bench-groups"])
while True:
    for m in members: m.poll(0.05)
    if all(len(m.assignment()) == 2 for m in members): break
print(f"three members formed a group (2 partitions each) in {(time.perf_counter()-t0)*1000:.0f} ms (group.initial.rebalance.delay.ms={sys.argv[2]})")
t0 = time.perf_counter(); members[2].close()
while True:
    for m in members[:2]: m.poll(0.05)
    if all(len(m.assignment()) == 3 for m in members[:2]): break
print(f"one member left; the other two had 3 partitions each after {(time.perf_counter()-t0)*1000:.0f} ms")
for m in members[:2]: m.close()
