"""The checker catches what it must (no docker needed)."""

from checker import check, leaderless_spans


def run(acks, deliveries, log, commits=()):
    return check(acks, 0, deliveries, [("consumer", list(commits))], log)


GOOD_LOG = {0: [(0, 0), (1, 2)], 1: [(0, 1), (1, 3)]}
GOOD_ACKS = [(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1)]
GOOD_DELIVERIES = [(0, 0, 0), (1, 0, 1), (0, 1, 2), (1, 1, 3)]


def test_a_clean_run_passes():
    r = run(GOOD_ACKS, GOOD_DELIVERIES, GOOD_LOG, [{0: 1}, {0: 2, 1: 2}])
    assert r.ok and r.acked == 4 and r.consumed == 4 and r.redelivered == 0


def test_redelivery_after_a_rebalance_is_not_a_duplicate():
    r = run(GOOD_ACKS, GOOD_DELIVERIES + [(0, 1, 2)], GOOD_LOG)
    assert r.ok and r.redelivered == 1


def test_an_acked_message_missing_from_the_log_is_lost():
    log = {0: [(0, 0)], 1: GOOD_LOG[1]}
    r = run(GOOD_ACKS, GOOD_DELIVERIES[:2] + GOOD_DELIVERIES[3:], log)
    assert r.lost == [2] and not r.ok


def test_an_acked_message_never_consumed_is_lost():
    r = run(GOOD_ACKS, GOOD_DELIVERIES[:3], GOOD_LOG)
    assert r.lost == [3]


def test_an_acked_offset_holding_another_message_is_lost():
    log = {0: [(0, 0), (1, 4)], 1: GOOD_LOG[1]}
    r = run(GOOD_ACKS, GOOD_DELIVERIES, log)
    assert 2 in r.lost
    assert r.lost_why[r.lost.index(2)] == (
        "message 2 acked at partition 0 offset 1: the log holds message 4 there; "
        "found at []; consumed"
    )


def test_an_ack_without_offset_needs_the_message_in_its_partition():
    acks = GOOD_ACKS[:2] + [(2, 0, None)] + GOOD_ACKS[3:]
    r = run(acks, GOOD_DELIVERIES, GOOD_LOG)
    assert r.ok and r.acked_without_offset == 1
    moved = {0: [(0, 0)], 1: [(0, 1), (1, 3), (2, 2)]}
    r = run(acks, GOOD_DELIVERIES[:2] + [(1, 2, 2), (1, 1, 3)], moved)
    assert r.lost == [2]
    assert r.lost_why == [
        "message 2 acked at partition 0 offset None: the log holds nothing there; "
        "found at [(1, 2)]; consumed"
    ]


def test_a_message_stored_twice_is_duplicated():
    log = {0: [(0, 0), (1, 2), (2, 2)], 1: GOOD_LOG[1]}
    r = run(GOOD_ACKS, GOOD_DELIVERIES, log)
    assert r.duplicated == [2] and not r.ok


def test_a_partition_out_of_order_is_caught():
    log = {0: [(0, 2), (1, 0)], 1: GOOD_LOG[1]}
    r = run([], [], log)
    assert r.out_of_order and not r.ok


def test_a_consumer_skipping_back_without_redelivery_is_caught():
    r = run(GOOD_ACKS, [(0, 1, 2), (0, 0, 0), (1, 0, 1), (1, 1, 3)], GOOD_LOG)
    assert r.out_of_order


def test_committed_offsets_moving_back_are_caught():
    r = run(GOOD_ACKS, GOOD_DELIVERIES, GOOD_LOG, [{0: 2}, {0: 1}])
    assert r.commit_regressions and not r.ok


def test_leaderless_spans_follow_the_faulted_leader():
    samples = [
        (0.0, {0: 1, 1: 2}),
        (1.5, {0: 1, 1: 2}),
        (2.0, {0: -1, 1: 2}),
        (3.0, {0: 3, 1: 2}),
    ]
    spans = leaderless_spans([(1.0, "kill", 1)], samples)
    assert ("kill", 1, 0, 2.0) in spans
    assert ("no leader", -1, 0, 1.0) in spans
    assert all(s[2] != 1 for s in spans)
