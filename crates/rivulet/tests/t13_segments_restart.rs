//! Durability through librdkafka: fetches across segment rolls, then the same data after a
//! clean restart (SIGTERM) and after kill -9, with everything the producer saw acknowledged
//! (acks=all, delivery reports in) still there, and the log accepting appends at the right
//! offsets afterwards. A second test kills the broker in the middle of an idempotent producer's
//! stream and restarts it under the producer's feet.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;

use support::{
    assert_same_messages, assign, consume_n, consumer, create_topic, now_ms, produce_all, producer,
    read_topic, segment_files, TestBroker, TestMessage, OP_TIMEOUT,
};

const TOPIC: &str = "rolled";
const PARTITIONS: i32 = 2;
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Message `i`: a 1 KiB value derived from `i` (so any misplaced or damaged byte shows).
fn message(i: usize, base_ts: i64) -> TestMessage {
    let mut value = format!("message {i:08} ").into_bytes();
    value.extend((0..1024 - value.len()).map(|j| (i * 31 + j * 7) as u8));
    TestMessage {
        partition: (i % PARTITIONS as usize) as i32,
        key: format!("k{i}").into_bytes(),
        value,
        headers: vec![("i".into(), (i as u32).to_be_bytes().to_vec())],
        timestamp: base_ts + i as i64,
    }
}

fn clean_marker(broker: &TestBroker) -> bool {
    broker.data_dir().join(".rivulet_cleanshutdown").exists()
}

#[test]
fn fetch_across_segment_rolls_and_restarts() {
    let mut broker = TestBroker::start();
    create_topic(&broker, TOPIC, PARTITIONS, &[("segment.bytes", "1048576")]);
    let base_ts = now_ms() - 3_600_000;
    let mut sent: Vec<TestMessage> = (0..6000).map(|i| message(i, base_ts)).collect();
    let (producer, recorder) = producer(&broker, &[("acks", "all")]);
    produce_all(&producer, &recorder, TOPIC, &sent, READ_TIMEOUT);
    drop(producer);
    for p in 0..PARTITIONS {
        let segments = segment_files(&broker, TOPIC, p);
        assert!(
            segments.len() >= 3,
            "partition {p}: expected 3+ segments of 1 MiB for 3 MB, got {segments:?}"
        );
    }
    assert_same_messages(
        &sent,
        &read_topic(&broker, TOPIC, PARTITIONS, sent.len(), READ_TIMEOUT),
    );

    // A read that starts in the middle of a later segment.
    let consumer = consumer(&broker, &[]);
    assign(&consumer, TOPIC, [0], Offset::Offset(2222));
    let first = consume_n(&consumer, 1, READ_TIMEOUT).remove(0);
    assert_eq!(first.offset(), 2222);
    assert_eq!(
        TestMessage::from_consumed(&first),
        sent[2222 * 2],
        "message at offset 2222 of partition 0"
    );
    drop(consumer);

    // Clean restart.
    broker.terminate_cleanly();
    assert!(clean_marker(&broker), "a clean shutdown leaves its marker");
    broker.restart();
    assert_same_messages(
        &sent,
        &read_topic(&broker, TOPIC, PARTITIONS, sent.len(), READ_TIMEOUT),
    );

    // kill -9 right after the producer saw every acknowledgement.
    let more: Vec<TestMessage> = (6000..8000).map(|i| message(i, base_ts)).collect();
    let (producer, recorder) = support::producer(&broker, &[("acks", "all")]);
    let placed = produce_all(&producer, &recorder, TOPIC, &more, READ_TIMEOUT);
    assert_eq!(placed[0], (0, 3000), "appends continue after the restart");
    drop(producer);
    broker.kill();
    assert!(
        !clean_marker(&broker),
        "no clean-shutdown marker after kill -9"
    );
    broker.restart();
    // Every acknowledged message is readable: the high watermark is back at the log end.
    let watermarks = support::consumer(&broker, &[]);
    for p in 0..PARTITIONS {
        let marks = watermarks
            .fetch_watermarks(TOPIC, p, OP_TIMEOUT)
            .expect("watermarks");
        assert_eq!(
            marks,
            (0, 4000),
            "partition {p} after kill -9 and restart: (log start, high watermark) must cover all 4000 \
             acknowledged messages"
        );
    }
    drop(watermarks);
    sent.extend(more);
    assert_same_messages(
        &sent,
        &read_topic(&broker, TOPIC, PARTITIONS, sent.len(), READ_TIMEOUT),
    );

    // The recovered log takes appends at its end.
    let last: Vec<TestMessage> = (8000..8010).map(|i| message(i, base_ts)).collect();
    let (producer, recorder) = support::producer(&broker, &[]);
    let placed = produce_all(&producer, &recorder, TOPIC, &last, READ_TIMEOUT);
    assert_eq!(placed[0], (0, 4000));
    assert_eq!(placed[1], (1, 4000));
    sent.extend(last);
    assert_same_messages(
        &sent,
        &read_topic(&broker, TOPIC, PARTITIONS, sent.len(), READ_TIMEOUT),
    );
}

/// What the value of message `i` of the stream test is.
fn stream_value(i: usize) -> Vec<u8> {
    format!("stream {i:08} {}", "z".repeat(200)).into_bytes()
}

#[test]
fn kill_9_during_idempotent_stream_keeps_every_acknowledged_message_once() {
    const TOTAL: usize = 20_000;
    let mut broker = TestBroker::start();
    create_topic(&broker, "stream", 1, &[("segment.bytes", "1048576")]);
    let (producer, recorder) = producer(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("batch.num.messages", "200"),
            ("message.timeout.ms", "60000"),
            ("reconnect.backoff.max.ms", "200"),
        ],
    );
    let done = AtomicBool::new(false);
    let acked_before_kill = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            for i in 0..TOTAL {
                let value = stream_value(i);
                let mut record = BaseRecord::with_opaque_to("stream", i)
                    .partition(0)
                    .payload(&value)
                    .key(&[]);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, r)) => {
                            record = r;
                            assert!(Instant::now() < deadline, "producer queue stayed full");
                            producer.poll(Duration::from_millis(5));
                        }
                    }
                }
                if i % 100 == 0 {
                    producer.poll(Duration::ZERO);
                    // Pace the stream so the kill lands in the middle of it.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            producer
                .flush(Duration::from_secs(90))
                .expect("flush after the restart");
            done.store(true, Ordering::Release);
        });
        // Kill once a good part of the stream is acknowledged, but not all of it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let acked = loop {
            let acked = recorder.acked();
            if acked >= TOTAL / 4 {
                break acked;
            }
            assert!(
                Instant::now() < deadline,
                "only {acked} acknowledgements within 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            !done.load(Ordering::Acquire),
            "the stream finished before the kill"
        );
        broker.kill();
        broker.restart();
        sender.join().expect("producer thread");
        acked
    });
    let reports = recorder.take();
    assert_eq!(reports.len(), TOTAL, "a delivery report for every message");
    let mut acked_at: HashMap<usize, i64> = HashMap::new();
    for (i, outcome) in reports {
        match outcome {
            Ok((_, offset)) => {
                acked_at.insert(i, offset);
            }
            Err(e) => panic!("message {i} failed although the broker came back: {e}"),
        }
    }
    eprintln!(
        "killed after {acked_before_kill} acknowledgements; {} acknowledged in all",
        acked_at.len()
    );

    // Every message exactly once, in order, at the offset it was acknowledged at.
    let consumer = consumer(&broker, &[]);
    assign(&consumer, "stream", [0], Offset::Beginning);
    let consumed = consume_n(&consumer, TOTAL, READ_TIMEOUT);
    support::assert_no_more(&consumer, Duration::from_millis(300));
    for (offset, m) in consumed.iter().enumerate() {
        assert_eq!(m.offset(), offset as i64);
        let value = m.payload().unwrap_or_default();
        let i: usize = std::str::from_utf8(&value[7..15])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        assert_eq!(
            i, offset,
            "offset {offset} holds message {i}: lost, duplicated or reordered"
        );
        assert_eq!(value, stream_value(i), "value at offset {offset}");
        assert_eq!(
            acked_at.get(&i),
            Some(&(offset as i64)),
            "acknowledged offset of message {i}"
        );
    }
    assert!(
        segment_files(&broker, "stream", 0).len() > 1,
        "the stream rolled segments"
    );
}
