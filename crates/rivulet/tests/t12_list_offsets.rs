//! ListOffsets through librdkafka: `offsets_for_times` returns the first offset whose
//! timestamp is at or after the one asked (across segments, inside batches, with timestamps out
//! of order), or the end when none is; `fetch_watermarks` gives the earliest and latest offsets.

mod support;

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use support::{
    consumer, create_topic, now_ms, produce_all, producer, TestBroker, TestMessage, OP_TIMEOUT,
};

const TOPIC: &str = "timed";
/// Records in partition 0, at `T0 + 10 * i` ms; 2 KiB values so they span several 1 MiB
/// segments.
const RECORDS: i64 = 1500;

#[test]
fn offsets_for_times_and_watermarks() {
    let broker = TestBroker::start();
    create_topic(&broker, TOPIC, 3, &[("segment.bytes", "1048576")]);
    let t0 = now_ms() - 86_400_000;
    let mut messages: Vec<TestMessage> = (0..RECORDS)
        .map(|i| TestMessage {
            partition: 0,
            key: i.to_be_bytes().to_vec(),
            value: vec![b'v'; 2048],
            headers: Vec::new(),
            timestamp: t0 + 10 * i,
        })
        .collect();
    // Partition 1: timestamps out of order, in one batch (linger): 100, 300, 200, 400, 250.
    let shuffled = [100, 300, 200, 400, 250];
    messages.extend(shuffled.iter().map(|&dt| TestMessage {
        partition: 1,
        key: Vec::new(),
        value: b"x".to_vec(),
        headers: Vec::new(),
        timestamp: t0 + dt,
    }));
    // Partition 2 stays empty.
    let (producer, recorder) = producer(&broker, &[("linger.ms", "50")]);
    produce_all(
        &producer,
        &recorder,
        TOPIC,
        &messages,
        Duration::from_secs(60),
    );
    let segments = support::segment_files(&broker, TOPIC, 0);
    assert!(
        segments.len() >= 3,
        "expected several segments, got {segments:?}"
    );

    let consumer = consumer(&broker, &[]);
    let lookup = |partition: i32, timestamp: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, partition, Offset::Offset(timestamp))
            .expect("tpl");
        let found = consumer
            .offsets_for_times(tpl, OP_TIMEOUT)
            .expect("offsets_for_times");
        let element = found
            .find_partition(TOPIC, partition)
            .expect("partition in answer");
        element.error().expect("no per-partition error");
        element.offset()
    };

    for (target, want) in [
        (t0 - 60_000, Offset::Offset(0)),
        (t0, Offset::Offset(0)),
        (t0 + 1, Offset::Offset(1)),
        (t0 + 9, Offset::Offset(1)),
        (t0 + 10, Offset::Offset(1)),
        (t0 + 5_005, Offset::Offset(501)),
        (t0 + 10 * 777, Offset::Offset(777)),
        (t0 + 10 * (RECORDS - 1), Offset::Offset(RECORDS - 1)),
        (t0 + 10 * (RECORDS - 1) + 1, Offset::End),
        (now_ms() + 3_600_000, Offset::End),
    ] {
        assert_eq!(
            lookup(0, target),
            want,
            "partition 0, timestamp T0{:+}",
            target - t0
        );
    }
    // First offset whose own timestamp is at or after the target, not the first after a
    // smaller one.
    for (dt, want) in [
        (50, Offset::Offset(0)),
        (100, Offset::Offset(0)),
        (150, Offset::Offset(1)),
        (250, Offset::Offset(1)),
        (301, Offset::Offset(3)),
        (400, Offset::Offset(3)),
        (401, Offset::End),
    ] {
        assert_eq!(lookup(1, t0 + dt), want, "partition 1, timestamp T0+{dt}");
    }
    assert_eq!(lookup(2, t0), Offset::End, "empty partition");

    for (partition, want) in [(0, (0, RECORDS)), (1, (0, 5)), (2, (0, 0))] {
        let marks = consumer
            .fetch_watermarks(TOPIC, partition, OP_TIMEOUT)
            .expect("watermarks");
        assert_eq!(marks, want, "watermarks of partition {partition}");
    }
    let unknown = consumer.fetch_watermarks("no-such-topic", 0, Duration::from_secs(5));
    assert!(
        unknown.is_err(),
        "watermarks of an unknown topic: {unknown:?}"
    );
}
