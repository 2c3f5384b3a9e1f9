//! The delayed fetch: a consumer waiting at the end of the log gets a new message as soon as it
//! is appended, not when its `fetch.wait.max.ms` runs out; on the wire, a fetch with nothing to
//! return waits for `max_wait_ms` and no longer, and one that is waiting returns when data
//! arrives.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;
use rivulet_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rivulet_protocol::kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::records::Compression;

use support::{
    assign, consume_n, consumer, create_topic, encode_batch, producer, raw_produce, RawClient,
    TestBroker, TestMessage,
};

/// The consumer's `fetch.wait.max.ms` (librdkafka's default, set explicitly).
const FETCH_WAIT_MS: u64 = 500;
/// A message must reach the waiting consumer within this of being sent (the produce round trip
/// included): well under the fetch wait, so only a fetch woken by the append can meet it.
const MAX_LATENCY: Duration = Duration::from_millis(200);
const ROUNDS: usize = 12;

#[test]
fn waiting_consumer_gets_new_messages_at_once() {
    let broker = TestBroker::start();
    create_topic(&broker, "waits", 1, &[]);
    let (producer, recorder) = producer(&broker, &[("linger.ms", "0"), ("acks", "1")]);
    let fetch_wait = FETCH_WAIT_MS.to_string();

    let (received_tx, received_rx) = mpsc::channel::<(i64, Instant)>();
    std::thread::scope(|s| {
        let broker = &broker;
        let fetch_wait = &fetch_wait;
        s.spawn(move || {
            let consumer = consumer(
                broker,
                &[("fetch.wait.max.ms", fetch_wait), ("fetch.min.bytes", "1")],
            );
            assign(&consumer, "waits", [0], Offset::Beginning);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut seen = 0;
            while seen < ROUNDS + 1 && Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(50)) {
                    None => {}
                    Some(Ok(m)) => {
                        seen += 1;
                        if received_tx.send((m.offset(), Instant::now())).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => panic!("consumer error: {e}"),
                }
            }
        });

        // Sends message `i` and waits for its acknowledgement; returns when it was sent.
        let send_one = |i: i64| -> Instant {
            let value = format!("ping {i}");
            let sent_at = Instant::now();
            producer
                .send(
                    BaseRecord::with_opaque_to("waits", i as usize)
                        .partition(0)
                        .payload(&value)
                        .key(""),
                )
                .unwrap_or_else(|(e, _)| panic!("send: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while recorder.acked() == 0 {
                assert!(
                    Instant::now() < deadline,
                    "message {i} not acknowledged within 10 s"
                );
                producer.poll(Duration::from_millis(1));
            }
            let reports = recorder.take();
            assert_eq!(reports.len(), 1);
            assert_eq!(reports[0].1, Ok((0, i)), "acknowledgement of message {i}");
            sent_at
        };

        // Warm-up: the consumer has found the partition and is fetching at the end of the log.
        send_one(0);
        let (offset, _) = received_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("warm-up message");
        assert_eq!(offset, 0);

        let mut latencies = Vec::new();
        for i in 1..=ROUNDS as i64 {
            // Land at different points of the consumer's fetch cycle.
            std::thread::sleep(Duration::from_millis(40 + 37 * (i as u64 % 7)));
            let sent_at = send_one(i);
            let (offset, received_at) = received_rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
                panic!("message {i} did not reach the consumer within 5 s (fetch.wait.max.ms is {FETCH_WAIT_MS})")
            });
            assert_eq!(offset, i);
            latencies.push(received_at.saturating_duration_since(sent_at));
        }
        eprintln!("produce-to-consumer latencies: {latencies:?}");
        let worst = latencies.iter().max().copied().unwrap_or_default();
        assert!(
            worst < MAX_LATENCY,
            "a message reached the waiting consumer {worst:?} after it was sent (limit {MAX_LATENCY:?}, fetch.wait.max.ms \
             {FETCH_WAIT_MS}): the delayed fetch is not completed by the append; all: {latencies:?}"
        );
    });
    producer.flush(Duration::from_secs(5)).expect("flush");
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

#[test]
fn wire_fetch_waits_for_max_wait_or_data() {
    let broker = TestBroker::start();
    create_topic(&broker, "wire-waits", 1, &[]);
    let mut fetcher = RawClient::connect(broker.addr());

    // Nothing to read: the answer comes after max_wait_ms, empty, and not much later.
    let started = Instant::now();
    let response: FetchResponse =
        fetcher.call(ApiKey::Fetch, 12, &fetch_request("wire-waits", 0, 300));
    let waited = started.elapsed();
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 0));
    assert!(
        p.records.as_ref().is_none_or(|r| r.is_empty()),
        "records from an empty log"
    );
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_millis(1500),
        "an empty fetch with max_wait_ms 300 answered after {waited:?}"
    );

    // A fetch waiting up to 10 s returns as soon as a batch is appended.
    let correlation_id =
        fetcher.send_request(ApiKey::Fetch, 12, &fetch_request("wire-waits", 0, 10_000));
    // Give the fetch time to park (a fetch that answered early would show up as a response here).
    fetcher.set_read_timeout(Duration::from_millis(200));
    assert!(
        matches!(fetcher.read_outcome(), support::ReadOutcome::TimedOut),
        "the fetch answered before any data was appended"
    );
    fetcher.set_read_timeout(Duration::from_secs(10));
    let message = TestMessage {
        partition: 0,
        key: b"k".to_vec(),
        value: b"wake up".to_vec(),
        headers: Vec::new(),
        timestamp: support::now_ms(),
    };
    let mut producer = RawClient::connect(broker.addr());
    let appended = Instant::now();
    assert_eq!(
        raw_produce(
            &mut producer,
            "wire-waits",
            0,
            encode_batch(&[message], Compression::None, None)
        ),
        (0, 0)
    );
    let frame = fetcher.read_frame();
    let woke = appended.elapsed();
    let response: FetchResponse =
        support::decode_response(&frame, ApiKey::Fetch, 12, correlation_id);
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
    assert!(
        p.records.as_ref().is_some_and(|r| !r.is_empty()),
        "the woken fetch carries the new batch"
    );
    assert!(
        woke < MAX_LATENCY,
        "the waiting fetch answered {woke:?} after the append"
    );

    // And the consumer side of the same partition reads it.
    let consumer = consumer(&broker, &[]);
    assign(&consumer, "wire-waits", [0], Offset::Beginning);
    let got = consume_n(&consumer, 1, Duration::from_secs(30));
    assert_eq!(got[0].payload(), Some(&b"wake up"[..]));
}
