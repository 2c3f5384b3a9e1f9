//! Fetch by `sendfile`: record bytes go from the segment files to the socket with the response
//! framing written around them. A real client (librdkafka) reads many megabytes over several
//! partitions and segments, in responses of several partitions and many batches each, and
//! gets every record back as sent; raw fetches at non-flexible and flexible versions (topic
//! names and topic ids), in responses that mix ranges sent from the files with short ones the
//! broker copies, return exactly the bytes of the segment files. The broker must never have
//! fallen back to copying a response it could not frame.

mod support;

use std::time::Duration;

use rivulet_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rivulet_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use support::{
    assert_same_messages, create_topic, now_ms, produce_all, producer, read_topic, RawClient,
    TestBroker, TestMessage,
};

const TOPIC: &str = "zero-copy";
const PARTITIONS: i32 = 4;
/// About 3 KB each on average: about 12 MB in all.
const MESSAGES: usize = 4_000;
/// Small segments, so reads end at segment boundaries and a partition spans several files.
const SEGMENT_BYTES: &str = "1048576";
const TIMEOUT: Duration = Duration::from_secs(120);
/// A partition's `partition_max_bytes` that the broker answers with a file range.
const LARGE_RANGE: i32 = 256 << 10;
/// One it answers with a copy (below its 64 KiB threshold; at least one batch).
const SMALL_RANGE: i32 = 20 << 10;

/// Message `i`: a key, a value of 100 B to 6 KB of seeded random bytes, one header.
fn message(i: usize, rng: &mut fastrand::Rng, base_ts: i64) -> TestMessage {
    let len = rng.usize(100..6_000);
    TestMessage {
        partition: (i % PARTITIONS as usize) as i32,
        key: format!("key-{i}").into_bytes(),
        value: (0..len).map(|_| rng.u8(..)).collect(),
        headers: vec![("i".into(), (i as u64).to_be_bytes().to_vec())],
        timestamp: base_ts + i as i64,
    }
}

#[test]
fn a_client_reads_megabytes_sent_from_the_files_unchanged() {
    let broker = TestBroker::start();
    create_topic(
        &broker,
        TOPIC,
        PARTITIONS,
        &[("segment.bytes", SEGMENT_BYTES)],
    );
    let mut rng = fastrand::Rng::with_seed(17);
    let base_ts = now_ms() - 60_000;
    let messages: Vec<TestMessage> = (0..MESSAGES)
        .map(|i| message(i, &mut rng, base_ts))
        .collect();
    // Small batches: many per partition, and many per fetch response.
    let (producer, recorder) = producer(
        &broker,
        &[("acks", "1"), ("batch.size", "32768"), ("linger.ms", "2")],
    );
    produce_all(&producer, &recorder, TOPIC, &messages, TIMEOUT);

    let consumed = read_topic(&broker, TOPIC, PARTITIONS, MESSAGES, TIMEOUT);
    assert_same_messages(&messages, &consumed);

    let topic_id = topic_id(&broker);
    for partition in 0..PARTITIONS {
        let on_disk = segment_bytes(&broker, partition);
        assert!(
            on_disk.len() > 2 << 20,
            "partition {partition}: {} bytes",
            on_disk.len()
        );
        // Non-flexible by name, flexible by name, flexible by topic id; ranges long enough
        // to be sent from the file, and short ones the broker copies, in the same responses.
        for version in [4, 11, 12, 13, 16] {
            for max_bytes in [LARGE_RANGE, SMALL_RANGE] {
                let fetched = fetch_all(&broker, topic_id, partition, version, max_bytes);
                assert!(
                    fetched == on_disk,
                    "partition {partition}, Fetch v{version} by {max_bytes} bytes: {} bytes \
                     fetched, {} on disk",
                    fetched.len(),
                    on_disk.len()
                );
            }
        }
    }

    let log = broker.log();
    assert!(
        !log.contains("copying the records") && !log.contains("cut short"),
        "the broker fell back to copying or cut a response:\n{log}"
    );
}

/// The topic's id, from Metadata.
fn topic_id(broker: &TestBroker) -> uuid::Uuid {
    let mut client = RawClient::connect(broker.addr());
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    response.topics[0].topic_id
}

/// The partition's segment files, concatenated in offset order.
fn segment_bytes(broker: &TestBroker, partition: i32) -> Vec<u8> {
    let dir = broker.data_dir().join(format!("{TOPIC}-{partition}"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() > 1, "partition {partition}: one segment only");
    logs.iter()
        .flat_map(|p| std::fs::read(p).expect("segment file"))
        .collect()
}

/// Every record batch of the partition, by raw Fetch v`version` requests of up to `max_bytes`
/// for it, concatenated. Each request also asks for every other partition from its start, with
/// the other of [`LARGE_RANGE`] and [`SMALL_RANGE`], so responses mix ranges sent from the files
/// and copied ones.
fn fetch_all(
    broker: &TestBroker,
    topic_id: uuid::Uuid,
    partition: i32,
    version: i16,
    max_bytes: i32,
) -> Vec<u8> {
    let others = if max_bytes == LARGE_RANGE {
        SMALL_RANGE
    } else {
        LARGE_RANGE
    };
    let mut client = RawClient::connect(broker.addr());
    let mut out = Vec::new();
    let mut offset = 0i64;
    loop {
        // This partition first: it alone may get a batch larger than its limit (KIP-74).
        let order = std::iter::once(partition).chain((0..PARTITIONS).filter(|&p| p != partition));
        let partitions = order
            .map(|p| {
                let (fetch_offset, max) = if p == partition {
                    (offset, max_bytes)
                } else {
                    (0, others)
                };
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(fetch_offset)
                    .with_partition_max_bytes(max)
            })
            .collect();
        let mut topic = FetchTopic::default().with_partitions(partitions);
        if version >= 13 {
            topic = topic.with_topic_id(topic_id);
        } else {
            topic = topic.with_topic(TopicName(StrBytes::from_static_str(TOPIC)));
        }
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(4 << 20)
            .with_topics(vec![topic]);
        let response: FetchResponse = client.call(ApiKey::Fetch, version, &request);
        assert_eq!(response.error_code, 0, "Fetch v{version}");
        let p = response.responses[0]
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .expect("the partition in the response");
        assert_eq!(p.error_code, 0, "Fetch v{version} of partition {partition}");
        let records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            assert_eq!(offset, p.high_watermark, "Fetch v{version}: stopped early");
            return out;
        }
        offset = next_offset(&records);
        out.extend_from_slice(&records);
    }
}

/// The offset after the last of the whole batches in `records`.
fn next_offset(records: &[u8]) -> i64 {
    let mut at = 0;
    let mut next = -1;
    while at + 27 <= records.len() {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let last_delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().expect("4 bytes"));
        next = base + i64::from(last_delta) + 1;
        at += 12 + length as usize;
    }
    assert_eq!(at, records.len(), "whole batches");
    next
}
