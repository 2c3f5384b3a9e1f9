"""Proves what a fault run promised: no acknowledged message lost, none stored twice, every
partition in order, and the group's committed offsets never moving backwards.

Pure functions over what `workload.py` recorded and a final read of every partition from the
start (`log`: partition -> [(offset, message id)]), so they are unit-tested on made-up runs in
`test_checker.py`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Report:
    """The outcome of a run; `ok` when every property holds."""

    acked: int = 0
    # Acknowledged without an offset (librdkafka's implicit acks: see `check`).
    acked_without_offset: int = 0
    unacked: int = 0
    consumed: int = 0
    redelivered: int = 0
    lost: list[int] = field(default_factory=list)
    # Why each lost message counts as lost, one line each (what the log holds where it was
    # acknowledged, where it is instead, whether the group consumer got it).
    lost_why: list[str] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    commit_regressions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.commit_regressions)


def check(
    acks,
    unacked: int,
    deliveries,
    commit_histories,
    log: dict[int, list[tuple[int, int]]],
) -> Report:
    """Checks a run.

    acks: (msg_id, partition, offset) the producer was told were written; offset None when the
        client acknowledged the message implicitly, without learning its offset.
    deliveries: (partition, offset, msg_id) in the order the group consumer got them.
    commit_histories: sequences of {partition: committed offset}, each in time order (the
        consumer's own commits, and the committed offsets sampled through the admin API).
    log: each partition read from its start after the run: [(offset, msg_id)] in read order.
    """
    report = Report(acked=len(acks), unacked=unacked)

    # The log itself: offsets strictly increase, each message once, and a partition's
    # messages in the order they were produced (ids increase: the producer numbers them).
    at: dict[tuple[int, int], int] = {}
    places: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for partition, records in sorted(log.items()):
        last_offset = last_id = None
        for offset, msg_id in records:
            if last_offset is not None and offset <= last_offset:
                report.out_of_order.append(
                    f"partition {partition}: offset {offset} read after {last_offset}"
                )
            if last_id is not None and msg_id <= last_id:
                report.out_of_order.append(
                    f"partition {partition}: message {msg_id} at offset {offset} "
                    f"follows message {last_id}"
                )
            last_offset, last_id = offset, msg_id
            at[(partition, offset)] = msg_id
            places[msg_id].append((partition, offset))
    report.duplicated = sorted(i for i, p in places.items() if len(p) > 1)

    # Every acknowledged message is in the log where the producer was told it is, and the
    # group consumer was given it.
    consumed_ids = set()
    seen: dict[tuple[int, int], int] = {}
    first_offsets: dict[int, list[int]] = defaultdict(list)
    for partition, offset, msg_id in deliveries:
        key = (partition, offset)
        if key in seen:
            report.redelivered += 1
            if seen[key] != msg_id:
                report.out_of_order.append(
                    f"partition {partition} offset {offset}: consumer got message {msg_id}, "
                    f"earlier {seen[key]}"
                )
            continue
        seen[key] = msg_id
        consumed_ids.add(msg_id)
        first_offsets[partition].append(offset)
        stored = at.get(key)
        if stored is not None and stored != msg_id:
            report.out_of_order.append(
                f"partition {partition} offset {offset}: consumer got message {msg_id}, "
                f"the log holds {stored}"
            )
    report.consumed = len(consumed_ids)
    for partition, offsets in first_offsets.items():
        for a, b in zip(offsets, offsets[1:]):
            if b <= a:
                report.out_of_order.append(
                    f"partition {partition}: consumer got offset {b} first after offset {a}"
                )
                break
    lost = {}
    for msg_id, partition, offset in acks:
        if offset is None:
            # librdkafka's implicit ack: an earlier request's answer was lost, a later batch of
            # the partition was acknowledged, so this one was persisted before it, at an offset
            # the client never learnt. It must be in that partition, somewhere.
            report.acked_without_offset += 1
            stored = msg_id if any(p == partition for p, _ in places.get(msg_id, [])) else None
        else:
            stored = at.get((partition, offset))
        if stored != msg_id or msg_id not in consumed_ids:
            held = "nothing" if stored is None else f"message {stored}"
            lost[msg_id] = (
                f"message {msg_id} acked at partition {partition} offset {offset}: the log holds "
                f"{held} there; found at {places.get(msg_id, [])}; "
                f"{'consumed' if msg_id in consumed_ids else 'never consumed'}"
            )
    report.lost = sorted(lost)
    report.lost_why = [lost[i] for i in report.lost]

    # Committed offsets never move backwards.
    for name, history in commit_histories:
        last: dict[int, int] = {}
        for offsets in history:
            for partition, offset in offsets.items():
                if partition in last and offset < last[partition]:
                    report.commit_regressions.append(
                        f"{name}: partition {partition} committed {offset} after {last[partition]}"
                    )
                last[partition] = max(offset, last.get(partition, offset))
    return report


def leaderless_spans(faults, samples) -> list[tuple[str, int, int, float]]:
    """For each fault, how long each partition its node led had no usable leader.

    faults: (time, kind, node) in time order. samples: (time, {partition: leader}) in time
    order, leader -1 when there is none. A partition led by the faulted node in the last sample
    before the fault is leaderless from the fault until the first sample that names a leader
    other than that node. Returns (kind, node, partition, seconds); a span still open at the
    last sample is counted up to it.
    """
    spans = []
    for t_fault, kind, node in faults:
        before = [leaders for t, leaders in samples if t <= t_fault]
        if not before:
            continue
        led = [p for p, leader in before[-1].items() if leader == node]
        after = [(t, leaders) for t, leaders in samples if t > t_fault]
        for partition in led:
            end = next(
                (t for t, leaders in after if leaders.get(partition, -1) not in (-1, node)),
                after[-1][0] if after else t_fault,
            )
            spans.append((kind, node, partition, end - t_fault))
    # Spans with no leader at all that no fault explains (a sample of -1).
    open_since: dict[int, float] = {}
    for t, leaders in samples:
        for partition, leader in leaders.items():
            if leader == -1:
                open_since.setdefault(partition, t)
            elif partition in open_since:
                spans.append(("no leader", -1, partition, t - open_since.pop(partition)))
    return spans
