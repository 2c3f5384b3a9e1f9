//! Produce and consume through librdkafka: 100k messages per compression codec (none, gzip,
//! snappy, lz4, zstd) from an idempotent producer, and 100k from a plain acks=1 producer, each
//! with keys, headers and explicit timestamps, over 3 partitions. A consumer that never joins a
//! group (`assign` from the beginning, no commits) reads them back, and every partition must
//! hold exactly what was sent, in order, at offsets 0..n. (Each run takes a few seconds in a
//! debug build, so the full 100k are kept.)
//!
//! The batches are checked on the wire too: stored with the producer's codec (see the lz4 note
//! in `round_trip`), with a producer id when the producer was idempotent. Each codec is also
//! produced by a second encoder (kafka-protocol's) and read back by librdkafka. Last, produce
//! requests pipelined on one connection must append in the order they were sent.

mod support;

use std::time::{Duration, Instant};

use rivulet_protocol::kafka_protocol::messages::{ApiKey, ProduceResponse};
use rivulet_protocol::kafka_protocol::records::Compression;
use support::{
    advertised_apis, assert_same_messages, batch_headers, create_topic, encode_batch, now_ms,
    produce_all, produce_request, producer, raw_produce, read_topic, RawClient, TestBroker,
    TestMessage,
};

/// Messages per run (the acceptance criterion's figure).
const MESSAGES: usize = 100_000;
const PARTITIONS: i32 = 3;
/// Generous bound for producing or consuming one run in a debug build on a loaded machine.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Message `i` of a run: partition round-robin, a key, a value of 40-140 bytes (text that
/// compresses, with varying length), two headers (one binary), and a distinct timestamp in
/// the past (an hour ago plus `i` ms, inside the broker's default timestamp bounds).
fn message(run: &str, i: usize, base_ts: i64) -> TestMessage {
    let mut value = format!("{run}:{i:08}:").into_bytes();
    value.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 30 + i % 100));
    TestMessage {
        partition: (i % PARTITIONS as usize) as i32,
        key: format!("key-{}", i % 1000).into_bytes(),
        value,
        headers: vec![
            ("run".into(), run.as_bytes().to_vec()),
            ("seq".into(), (i as u64).to_be_bytes().to_vec()),
        ],
        timestamp: base_ts + i as i64,
    }
}

fn round_trip(codec: &str, expected: Compression, idempotent: bool) {
    let broker = TestBroker::start();
    let topic = format!("codec-{codec}");
    create_topic(&broker, &topic, PARTITIONS, &[]);
    let base_ts = now_ms() - 3_600_000;
    let messages: Vec<TestMessage> = (0..MESSAGES).map(|i| message(codec, i, base_ts)).collect();

    let started = Instant::now();
    let (producer, recorder) = producer(
        &broker,
        &[
            ("compression.codec", codec),
            (
                "enable.idempotence",
                if idempotent { "true" } else { "false" },
            ),
            ("acks", if idempotent { "all" } else { "1" }),
            ("linger.ms", "20"),
        ],
    );
    let placed = produce_all(&producer, &recorder, &topic, &messages, PHASE_TIMEOUT);
    let produced = started.elapsed();
    // Acknowledged offsets are dense per partition and in send order.
    let mut next = [0i64; PARTITIONS as usize];
    for (i, (m, (partition, offset))) in messages.iter().zip(&placed).enumerate() {
        assert_eq!(*partition, m.partition, "partition of message {i}");
        assert_eq!(
            *offset, next[m.partition as usize],
            "acknowledged offset of message {i}"
        );
        next[m.partition as usize] += 1;
    }

    let started = Instant::now();
    let consumed = read_topic(&broker, &topic, PARTITIONS, MESSAGES, PHASE_TIMEOUT);
    let read = started.elapsed();
    assert_same_messages(&messages, &consumed);

    // librdkafka only compresses with lz4 when the broker advertises FindCoordinator: its
    // RD_KAFKA_FEATURE_LZ4 is inferred from that API (rdkafka_feature.c, a stand-in for "broker
    // >= 0.8.2"), and without it lz4 batches silently go out uncompressed.
    let lz4_inferred = advertised_apis(&broker).contains(&(ApiKey::FindCoordinator as i16));
    let sent_codec = if expected == Compression::Lz4 && !lz4_inferred {
        Compression::None
    } else {
        expected
    };
    for partition in 0..PARTITIONS {
        let batches = batch_headers(&broker, &topic, partition, 0);
        assert!(!batches.is_empty(), "no batch in partition {partition}");
        for b in &batches {
            assert_eq!(
                b.compression, sent_codec,
                "codec of the batch at {}",
                b.min_offset
            );
            if idempotent {
                assert!(
                    b.producer_id >= 0 && b.base_sequence >= 0,
                    "idempotent batch without producer id: {b:?}"
                );
            } else {
                assert_eq!((b.producer_id, b.base_sequence), (-1, -1), "{b:?}");
            }
        }
    }

    // The same codec from a second encoder (kafka-protocol's, built like the Java client's),
    // read back by librdkafka: 20 batches of 50 messages.
    let raw_topic = format!("{topic}-wire");
    create_topic(&broker, &raw_topic, 1, &[]);
    let wire: Vec<TestMessage> = (0..1000)
        .map(|i| TestMessage {
            partition: 0,
            ..message(&raw_topic, i, base_ts)
        })
        .collect();
    let mut client = RawClient::connect(broker.addr());
    for (n, chunk) in wire.chunks(50).enumerate() {
        let (error, base_offset) = raw_produce(
            &mut client,
            &raw_topic,
            0,
            encode_batch(chunk, expected, None),
        );
        assert_eq!(
            (error, base_offset),
            (0, n as i64 * 50),
            "produce of wire batch {n}"
        );
    }
    let consumed = read_topic(&broker, &raw_topic, 1, wire.len(), PHASE_TIMEOUT);
    assert_same_messages(&wire, &consumed);
    let batches = batch_headers(&broker, &raw_topic, 0, 0);
    assert_eq!(batches.len(), 20);
    assert!(
        batches.iter().all(|b| b.compression == expected),
        "{batches:?}"
    );

    eprintln!("{codec} (idempotent: {idempotent}): produced {MESSAGES} in {produced:?}, consumed in {read:?}");
}

#[test]
fn uncompressed_idempotent() {
    round_trip("none", Compression::None, true);
}

#[test]
fn gzip_idempotent() {
    round_trip("gzip", Compression::Gzip, true);
}

#[test]
fn snappy_idempotent() {
    round_trip("snappy", Compression::Snappy, true);
}

#[test]
fn lz4_idempotent() {
    round_trip("lz4", Compression::Lz4, true);
}

#[test]
fn zstd_idempotent() {
    round_trip("zstd", Compression::Zstd, true);
}

#[test]
fn uncompressed_plain_acks_1() {
    round_trip("none", Compression::None, false);
}

/// Produce requests pipelined on one connection are appended in the order they were sent
/// (Kafka handles a connection's requests one after the other): what librdkafka relies on
/// for ordering with several requests in flight, idempotent or not.
#[test]
fn pipelined_produce_requests_append_in_order() {
    const REQUESTS: usize = 200;
    let broker = TestBroker::start();
    create_topic(&broker, "pipelined", 1, &[]);
    let base_ts = now_ms();
    let sent: Vec<TestMessage> = (0..REQUESTS)
        .map(|i| TestMessage {
            partition: 0,
            key: Vec::new(),
            value: format!("request {i}").into_bytes(),
            headers: Vec::new(),
            timestamp: base_ts + i as i64,
        })
        .collect();
    let mut client = RawClient::connect(broker.addr());
    let mut bytes = Vec::new();
    let mut correlation_ids = Vec::new();
    for m in &sent {
        let id = client.next_correlation_id();
        let request = produce_request(
            "pipelined",
            0,
            encode_batch(std::slice::from_ref(m), Compression::None, None),
            -1,
        );
        bytes.extend(RawClient::encode_request(ApiKey::Produce, 9, id, &request));
        correlation_ids.push(id);
    }
    client
        .send_raw(&bytes)
        .expect("send the pipelined requests");
    for (i, id) in correlation_ids.into_iter().enumerate() {
        let response: ProduceResponse = client.recv_response(ApiKey::Produce, 9, id);
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, i as i64),
            "request {i} of {REQUESTS}"
        );
    }
    let consumed = read_topic(&broker, "pipelined", 1, REQUESTS, PHASE_TIMEOUT);
    assert_same_messages(&sent, &consumed);
}
