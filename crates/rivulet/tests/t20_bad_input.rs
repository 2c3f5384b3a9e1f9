//! Bad input on the wire: truncated frames, oversize and negative lengths, batches with a
//! wrong CRC, unknown API keys, an ApiVersions version the broker does not know, and seeded
//! random bytes. The broker answers with an error or closes that one connection; meanwhile a
//! librdkafka producer and consumer on their own connections (the "bystander") keep being
//! served, and at the end everything the bystander produced reads back intact.
//!
//! Knob: `RIVULET_BAD_INPUT_SEED` replays one random-bytes run (each run prints its seed).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceResponse,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::records::Compression;
use rivulet_protocol::kafka_protocol::ResponseError;

use support::{
    assert_same_messages, assign, consumer, create_topic, encode_batch, now_ms, produce_request,
    producer, raw_produce, read_topic, RawClient, ReadOutcome, TestBroker, TestMessage,
};

/// How long the broker may take to close a connection it should close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
const BYSTANDER_TOPIC: &str = "bystander";

/// A librdkafka producer and consumer working on their own topic in the background for the
/// whole test.
struct Bystander {
    stop: Arc<AtomicBool>,
    consumed: Arc<AtomicUsize>,
    handle: Option<JoinHandle<(Vec<TestMessage>, Vec<OwnedMessage>)>>,
}

impl Bystander {
    fn start(broker: &TestBroker) -> Bystander {
        create_topic(broker, BYSTANDER_TOPIC, 1, &[]);
        let (producer, recorder) = producer(broker, &[("linger.ms", "1")]);
        let consumer = consumer(broker, &[]);
        assign(&consumer, BYSTANDER_TOPIC, [0], Offset::Beginning);
        let stop = Arc::new(AtomicBool::new(false));
        let consumed = Arc::new(AtomicUsize::new(0));
        let handle = {
            let (stop, consumed) = (Arc::clone(&stop), Arc::clone(&consumed));
            std::thread::spawn(move || {
                let base_ts = now_ms();
                let mut sent: Vec<TestMessage> = Vec::new();
                let mut got: Vec<OwnedMessage> = Vec::new();
                let poll_consumer = |got: &mut Vec<OwnedMessage>, wait: Duration| {
                    if let Some(m) = consumer.poll(wait) {
                        got.push(
                            m.unwrap_or_else(|e| panic!("bystander consumer error: {e}"))
                                .detach(),
                        );
                        consumed.store(got.len(), Ordering::Release);
                    }
                };
                // Bounded even if nobody stops it.
                let deadline = Instant::now() + Duration::from_secs(300);
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    let i = sent.len();
                    let m = TestMessage {
                        partition: 0,
                        key: format!("by-{i}").into_bytes(),
                        value: format!("bystander message {i}").into_bytes(),
                        headers: vec![("n".into(), (i as u32).to_be_bytes().to_vec())],
                        timestamp: base_ts + i as i64,
                    };
                    let record = BaseRecord::with_opaque_to(BYSTANDER_TOPIC, i)
                        .partition(0)
                        .key(&m.key)
                        .payload(&m.value)
                        .timestamp(m.timestamp)
                        .headers(OwnedHeaders::new().insert(Header {
                            key: "n",
                            value: Some(&m.headers[0].1),
                        }));
                    if producer.send(record).is_ok() {
                        sent.push(m);
                    }
                    producer.poll(Duration::ZERO);
                    poll_consumer(&mut got, Duration::from_millis(5));
                }
                producer
                    .flush(Duration::from_secs(30))
                    .expect("bystander flush");
                for (i, outcome) in recorder.take() {
                    if let Err(e) = outcome {
                        panic!("bystander message {i} failed: {e}");
                    }
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                while got.len() < sent.len() && Instant::now() < deadline {
                    poll_consumer(&mut got, Duration::from_millis(100));
                }
                (sent, got)
            })
        };
        let bystander = Bystander {
            stop,
            consumed,
            handle: Some(handle),
        };
        bystander.assert_progress("start-up");
        bystander
    }

    /// Waits (bounded) until the bystander's consumer received more messages: the broker still
    /// serves well-behaved clients.
    fn assert_progress(&self, after: &str) {
        let before = self.consumed.load(Ordering::Acquire);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.consumed.load(Ordering::Acquire) < before + 5 {
            assert!(
                Instant::now() < deadline,
                "the bystander made no progress for 20 s after {after} ({before} messages consumed)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the bystander and checks that it consumed exactly what it produced, and that a
    /// fresh read of its topic holds the same.
    fn finish(mut self, broker: &TestBroker) -> Vec<TestMessage> {
        self.stop.store(true, Ordering::Release);
        let (sent, got) = self
            .handle
            .take()
            .expect("running")
            .join()
            .expect("bystander thread");
        assert!(
            sent.len() > 50,
            "the bystander only sent {} messages",
            sent.len()
        );
        assert_same_messages(&sent, &got);
        assert_same_messages(
            &sent,
            &read_topic(
                broker,
                BYSTANDER_TOPIC,
                1,
                sent.len(),
                Duration::from_secs(60),
            ),
        );
        sent
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// A well-formed request header prefix: api key, version, correlation id, null client id.
fn header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&correlation_id.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    h
}

/// The broker still answers on a connection: an ApiVersions round trip.
fn assert_usable(client: &mut RawClient, after: &str) {
    let response: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0, "ApiVersions after {after}");
}

fn assert_closed_without_answer(client: &mut RawClient, what: &str) {
    let received = client.expect_closed(CLOSE_TIMEOUT);
    assert!(
        received.is_empty(),
        "{what}: the broker answered {} bytes before closing",
        received.len()
    );
}

#[test]
fn oversize_and_negative_lengths_close_the_connection() {
    let broker = TestBroker::start_with(&[("socket.request.max.bytes", "1048576")]);
    let bystander = Bystander::start(&broker);
    // Just over the limit, far over it, and negative: only the 4 length bytes are sent, and the
    // broker closes without waiting for (or allocating) the payload.
    for length in [
        1_048_577u32,
        104_857_601,
        i32::MAX as u32,
        0xFFFF_FFFF,
        0x8000_0000,
    ] {
        let mut client = RawClient::connect(broker.addr());
        client.send_raw(&length.to_be_bytes()).expect("send length");
        assert_closed_without_answer(&mut client, &format!("length prefix {length:#x}"));
        bystander.assert_progress(&format!("length prefix {length:#x}"));
    }
    // Exactly at the limit is a valid length: the broker waits for the payload.
    let mut client = RawClient::connect(broker.addr());
    client
        .send_raw(&1_048_576u32.to_be_bytes())
        .expect("send length");
    client.set_read_timeout(Duration::from_millis(300));
    assert!(
        matches!(client.read_outcome(), ReadOutcome::TimedOut),
        "a length at the limit is not refused"
    );
    drop(client);
    // A pipelined valid request before an oversize frame is still answered.
    let mut client = RawClient::connect(broker.addr());
    let mut bytes =
        RawClient::encode_request(ApiKey::ApiVersions, 0, 7, &ApiVersionsRequest::default());
    bytes.extend_from_slice(&2_000_000u32.to_be_bytes());
    client.send_raw(&bytes).expect("send");
    let received = client.expect_closed(CLOSE_TIMEOUT);
    assert!(
        received.len() > 8 && received[4..8] == 7i32.to_be_bytes(),
        "the ApiVersions answer before the close"
    );
    bystander.finish(&broker);
}

#[test]
fn truncated_frames_then_eof_close_the_connection() {
    let broker = TestBroker::start();
    let bystander = Bystander::start(&broker);
    let request = RawClient::encode_request(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("two bytes of a length", vec![0, 0]),
        ("a length and no payload", 100u32.to_be_bytes().to_vec()),
        ("half a request", request[..request.len() / 2].to_vec()),
        (
            "all but the last byte",
            request[..request.len() - 1].to_vec(),
        ),
        ("a length promising more than the payload", {
            let mut r = request.clone();
            r[..4].copy_from_slice(&((request.len() as u32) + 10).to_be_bytes());
            r
        }),
    ];
    for (what, bytes) in cases {
        let mut client = RawClient::connect(broker.addr());
        client.send_raw(&bytes).expect("send");
        client.shutdown_write();
        assert_closed_without_answer(&mut client, what);
        bystander.assert_progress(what);
    }
    // Complete frames too short for their content: malformed, closed without an answer.
    let short_cases: Vec<(&str, Vec<u8>)> = vec![
        ("an empty frame", frame_of(&[])),
        ("a frame shorter than the header", frame_of(&[0, 3, 0])),
        (
            "a header cut in the client id",
            frame_of(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 9, b'a']),
        ),
        (
            "a Metadata body cut short",
            frame_of(&request[4..request.len() - 2]),
        ),
        ("an array length larger than the frame", {
            let mut payload = header(ApiKey::Metadata as i16, 4, 5);
            payload.extend_from_slice(&1_000_000i32.to_be_bytes());
            frame_of(&payload)
        }),
    ];
    for (what, bytes) in short_cases {
        let mut client = RawClient::connect(broker.addr());
        client.send_raw(&bytes).expect("send");
        assert_closed_without_answer(&mut client, what);
        bystander.assert_progress(what);
    }
    bystander.finish(&broker);
}

#[test]
fn wrong_crc_is_corrupt_message_and_the_connection_stays_usable() {
    let broker = TestBroker::start();
    let bystander = Bystander::start(&broker);
    create_topic(&broker, "crc", 1, &[]);
    let messages: Vec<TestMessage> = (0..5)
        .map(|i| TestMessage {
            partition: 0,
            key: vec![i],
            value: vec![b'x'; 100],
            headers: Vec::new(),
            timestamp: now_ms(),
        })
        .collect();
    let mut client = RawClient::connect(broker.addr());
    for compression in [Compression::None, Compression::Zstd] {
        let good = encode_batch(&messages, compression, None);
        // The CRC field itself (bytes 17..21), and a byte of the records it covers.
        for position in [17, 19, good.len() - 1] {
            let mut bad = good.to_vec();
            bad[position] ^= 0x5a;
            let (error, _) = raw_produce(&mut client, "crc", 0, bad.into());
            assert_eq!(
                error,
                ResponseError::CorruptMessage.code(),
                "{compression:?} batch with byte {position} flipped"
            );
            assert_usable(&mut client, "a corrupt batch");
        }
        bystander.assert_progress("corrupt batches");
    }
    // Nothing was appended: the first good batch lands at offset 0, on the same connection.
    assert_eq!(
        raw_produce(
            &mut client,
            "crc",
            0,
            encode_batch(&messages, Compression::None, None)
        ),
        (0, 0)
    );
    // acks=0 with a corrupt batch: no answer, and Kafka's way of reporting it, a close.
    let mut bad = encode_batch(&messages, Compression::None, None).to_vec();
    bad[17] ^= 1;
    client.send_request(
        ApiKey::Produce,
        9,
        &produce_request("crc", 0, bad.into(), 0),
    );
    assert_closed_without_answer(&mut client, "an acks=0 produce of a corrupt batch");
    let mut client = RawClient::connect(broker.addr());
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        9,
        &produce_request(
            "crc",
            0,
            encode_batch(&messages, Compression::None, None),
            -1,
        ),
    );
    assert_eq!(
        response.responses[0].partition_responses[0].base_offset, 5,
        "only good batches were appended"
    );
    let read = read_topic(&broker, "crc", 1, 10, Duration::from_secs(30));
    assert!(read
        .iter()
        .all(|m| rdkafka::message::Message::payload(m) == Some(&[b'x'; 100][..])));
    bystander.finish(&broker);
}

#[test]
fn unknown_api_keys_and_unsupported_versions_close_the_connection() {
    let broker = TestBroker::start();
    let bystander = Bystander::start(&broker);
    // Keys no Kafka version defines, keys Kafka defines that this broker does not serve
    // (AddPartitionsToTxn, DescribeAcls), and served keys at versions it does not support
    // (JoinGroup v10, DescribeQuorum v3, Metadata v99).
    for (key, version) in [
        (999, 0),
        (-1, 0),
        (i16::MAX, 3),
        (24, 4),
        (29, 3),
        (11, 10),
        (ApiKey::DescribeQuorum as i16, 3),
        (ApiKey::Metadata as i16, 99),
    ] {
        let mut client = RawClient::connect(broker.addr());
        let mut payload = header(key, version, 42);
        payload.extend_from_slice(&[0; 16]);
        client.send_raw(&frame_of(&payload)).expect("send");
        assert_closed_without_answer(&mut client, &format!("api key {key} v{version}"));
        bystander.assert_progress(&format!("api key {key}"));
    }
    // A valid request pipelined before the unknown key is answered first.
    let mut client = RawClient::connect(broker.addr());
    let request = MetadataRequest::default().with_topics(Some(Vec::new()));
    let mut bytes = RawClient::encode_request(ApiKey::Metadata, 12, 1, &request);
    bytes.extend(frame_of(&header(999, 0, 2)));
    client.send_raw(&bytes).expect("send");
    let received = client.expect_closed(CLOSE_TIMEOUT);
    assert!(received.len() > 8, "the Metadata answer before the close");
    let _: MetadataResponse = support::decode_response(&received[4..], ApiKey::Metadata, 12, 1);
    bystander.finish(&broker);
}

#[test]
fn unknown_api_versions_version_gets_a_v0_answer_with_unsupported_version() {
    let broker = TestBroker::start();
    let bystander = Bystander::start(&broker);
    let mut client = RawClient::connect(broker.addr());
    for (version, correlation_id) in [(5, 11), (99, 12), (i16::MAX, 13)] {
        // A newer client sends a body the broker cannot parse; only the header prefix counts.
        let mut payload = header(ApiKey::ApiVersions as i16, version, correlation_id);
        payload.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        client.send_raw(&frame_of(&payload)).expect("send");
        let frame = client.read_frame();
        let response: ApiVersionsResponse =
            support::decode_response(&frame, ApiKey::ApiVersions, 0, correlation_id);
        assert_eq!(
            response.error_code,
            ResponseError::UnsupportedVersion.code(),
            "ApiVersions v{version}"
        );
        assert_eq!(response.error_code, 35);
        let api_versions = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .expect("the answer lists ApiVersions itself");
        assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
        assert!(response
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16));
        // The connection stays open: the client retries at a version from the list.
        assert_usable(&mut client, &format!("ApiVersions v{version}"));
    }
    bystander.assert_progress("ApiVersions fallbacks");
    bystander.finish(&broker);
}

#[test]
fn random_bytes_never_hurt_the_broker() {
    let seed = std::env::var("RIVULET_BAD_INPUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0fba_0d1a_9d00_u64);
    eprintln!("random bytes: RIVULET_BAD_INPUT_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let broker = TestBroker::start_with(&[("socket.request.max.bytes", "65536")]);
    let bystander = Bystander::start(&broker);
    let keys = [0i16, 1, 2, 3, 18, 19, 20, 22, 32, 60];
    const ROUNDS: usize = 1000;
    let mut answered = 0;
    for round in 0..ROUNDS {
        let bytes: Vec<u8> = match round % 4 {
            // Pure noise.
            0 => (0..rng.usize(1..512)).map(|_| rng.u8(..)).collect(),
            // A plausible length, then noise.
            1 => {
                let n = rng.usize(0..2048);
                let mut b = (n as u32).to_be_bytes().to_vec();
                b.extend((0..rng.usize(0..=n)).map(|_| rng.u8(..)));
                b
            }
            // A valid header of a served API and version, then a noise body.
            2 => {
                let key = keys[rng.usize(..keys.len())];
                let mut payload = header(key, rng.i16(0..=16), round as i32);
                payload.extend((0..rng.usize(0..256)).map(|_| rng.u8(..)));
                frame_of(&payload)
            }
            // A valid Metadata request with a few bytes mutated.
            _ => {
                let request = MetadataRequest::default().with_topics(Some(vec![
                    rivulet_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(rivulet_protocol::kafka_protocol::messages::TopicName(StrBytes::from_static_str(
                            BYSTANDER_TOPIC,
                        )))),
                ]));
                let mut b = RawClient::encode_request(
                    ApiKey::Metadata,
                    rng.i16(0..=12),
                    round as i32,
                    &request,
                );
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(4..b.len());
                    b[at] = rng.u8(..);
                }
                b
            }
        };
        let mut client = RawClient::connect(broker.addr());
        // The broker may close the connection while we are still writing: that is fine.
        let _ = client.send_raw(&bytes);
        client.shutdown_write();
        // Whatever it answers, it must then close (we sent EOF) within the timeout.
        let received = client.expect_closed(CLOSE_TIMEOUT);
        if !received.is_empty() {
            answered += 1;
        }
        if round % 50 == 49 {
            bystander.assert_progress(&format!("random round {round} (seed {seed})"));
        }
    }
    eprintln!("random bytes: {ROUNDS} rounds, {answered} answered before the close");
    // Still a working broker, for new connections too.
    let mut client = RawClient::connect(broker.addr());
    assert_usable(&mut client, "the random rounds");
    let sent = bystander.finish(&broker);
    // And its data is intact on disk: after a clean restart it reads back the same.
    let mut broker = broker;
    assert!(broker.is_running(), "the broker is still running");
    broker.terminate_cleanly();
    broker.restart();
    assert_same_messages(
        &sent,
        &read_topic(
            &broker,
            BYSTANDER_TOPIC,
            1,
            sent.len(),
            Duration::from_secs(60),
        ),
    );
}
