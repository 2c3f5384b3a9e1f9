//! Idempotent producers: librdkafka with `enable.idempotence=true` gets a producer id
//! (InitProducerId) and its messages land exactly once, in order, with batch sequences that
//! match their offsets; on the wire, a retried batch is recognised as a duplicate (the original
//! offsets come back, nothing is appended) before and after a clean restart and after kill -9,
//! and a sequence gap is refused.

mod support;

use std::time::Duration;

use rdkafka::message::Message;
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use rivulet_protocol::kafka_protocol::records::Compression;
use rivulet_protocol::kafka_protocol::ResponseError;

use support::{
    assert_same_messages, batch_headers, create_topic, encode_batch, now_ms, produce_all, producer,
    raw_produce, read_topic, ProducerFields, RawClient, TestBroker, TestMessage,
};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn librdkafka_idempotent_producer_writes_each_message_once_in_order() {
    const N: usize = 20_000;
    let broker = TestBroker::start();
    create_topic(&broker, "once", 1, &[]);
    let base_ts = now_ms() - 60_000;
    let sent: Vec<TestMessage> = (0..N)
        .map(|i| TestMessage {
            partition: 0,
            key: format!("{i}").into_bytes(),
            value: format!("idempotent message {i}").into_bytes(),
            headers: Vec::new(),
            timestamp: base_ts + i as i64,
        })
        .collect();
    let (producer, recorder) = producer(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "500"),
        ],
    );
    let placed = produce_all(&producer, &recorder, "once", &sent, TIMEOUT);
    assert!(
        placed.iter().enumerate().all(|(i, p)| *p == (0, i as i64)),
        "acknowledged offsets are 0..{N}"
    );
    let consumed = read_topic(&broker, "once", 1, N, TIMEOUT);
    assert_same_messages(&sent, &consumed);

    // Every batch carries the producer id librdkafka got from InitProducerId, epoch 0, and a
    // base sequence equal to its base offset (one producer, from sequence 0).
    let mut offset = 0i64;
    let mut producer_ids = std::collections::BTreeSet::new();
    while offset < N as i64 {
        let batches = batch_headers(&broker, "once", 0, offset);
        assert!(!batches.is_empty(), "no batch at offset {offset}");
        for b in batches {
            assert_eq!(b.min_offset, offset, "batches are contiguous");
            assert_eq!(
                i64::from(b.base_sequence),
                b.min_offset,
                "sequence of the batch at {offset}"
            );
            assert_eq!(b.producer_epoch, 0);
            producer_ids.insert(b.producer_id);
            offset += i64::from(b.record_count);
        }
    }
    assert_eq!(producer_ids.len(), 1, "one producer id: {producer_ids:?}");
    assert!(*producer_ids.first().expect("an id") >= 0);
    assert!(consumed.iter().all(|m| m.topic() == "once"));
}

fn init_producer_id(client: &mut RawClient) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(response.error_code, 0, "InitProducerId error");
    (response.producer_id.0, response.producer_epoch)
}

fn batch(id: i64, epoch: i16, base_sequence: i32, first: usize, count: usize) -> bytes::Bytes {
    let messages: Vec<TestMessage> = (first..first + count)
        .map(|i| TestMessage {
            partition: 0,
            key: Vec::new(),
            value: format!("raw {i}").into_bytes(),
            headers: Vec::new(),
            timestamp: now_ms(),
        })
        .collect();
    encode_batch(
        &messages,
        Compression::None,
        Some(ProducerFields {
            id,
            epoch,
            base_sequence,
        }),
    )
}

#[test]
fn retried_batches_are_deduplicated_across_restarts_and_gaps_refused() {
    let mut broker = TestBroker::start();
    create_topic(&broker, "dedup", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    let (id, epoch) = init_producer_id(&mut client);
    assert!(id >= 0, "producer id {id}");
    assert_eq!(epoch, 0);
    let (other, _) = init_producer_id(&mut client);
    assert_ne!(other, id, "each InitProducerId gets a new producer id");

    let first = batch(id, epoch, 0, 0, 3);
    assert_eq!(raw_produce(&mut client, "dedup", 0, first.clone()), (0, 0));
    // A retry of the same batch: the original offset, nothing appended.
    assert_eq!(
        raw_produce(&mut client, "dedup", 0, first.clone()),
        (0, 0),
        "retry of sequence 0"
    );
    let second = batch(id, epoch, 3, 3, 2);
    assert_eq!(raw_produce(&mut client, "dedup", 0, second.clone()), (0, 3));
    assert_eq!(
        raw_produce(&mut client, "dedup", 0, second.clone()),
        (0, 3),
        "retry of sequence 3"
    );
    // A gap in the sequence is refused and appends nothing.
    let (error, _) = raw_produce(&mut client, "dedup", 0, batch(id, epoch, 10, 10, 1));
    assert_eq!(
        error,
        ResponseError::OutOfOrderSequenceNumber.code(),
        "sequence 10 after 4"
    );

    // The producer state survives a clean restart (snapshot) ...
    broker.terminate_cleanly();
    broker.restart();
    let mut client = RawClient::connect(broker.addr());
    assert_eq!(
        raw_produce(&mut client, "dedup", 0, second.clone()),
        (0, 3),
        "retry after a clean restart"
    );
    let third = batch(id, epoch, 5, 5, 4);
    assert_eq!(raw_produce(&mut client, "dedup", 0, third.clone()), (0, 5));

    // ... and kill -9 (rebuilt from the log).
    broker.kill();
    broker.restart();
    let mut client = RawClient::connect(broker.addr());
    assert_eq!(
        raw_produce(&mut client, "dedup", 0, third),
        (0, 5),
        "retry after kill -9"
    );
    assert_eq!(
        raw_produce(&mut client, "dedup", 0, batch(id, epoch, 9, 9, 1)),
        (0, 9)
    );

    let values: Vec<String> = read_topic(&broker, "dedup", 1, 10, TIMEOUT)
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("raw {i}")).collect();
    assert_eq!(values, want, "each record once, in order");
}
