//! Log compaction (`cleanup.policy=compact`) through librdkafka: the broker's background
//! cleaner keeps the latest record of each key at the offset the producer got for it, removes
//! tombstones after `delete.retention.ms`, never disturbs a consumer reading meanwhile, and the
//! topic refuses records without a key. On three nodes, every replica compacts its own copy, and
//! a follower's compacted copy serves consumers once it leads.
//!
//! Segments roll by time: records carry explicit timestamps one second apart per round and the
//! topic has `segment.ms=500`, so every round starts a segment, without sleeping. The tests wait
//! for the cleaner by polling its `cleaner-offset-checkpoint` in the broker's log dir.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;

use support::cluster::{ClusterView, TestCluster};
use support::{
    admin_options, assign, block_on, consumer, create_topic, now_ms, producer, Recorder,
    TestBroker, OP_TIMEOUT,
};

const WAIT: Duration = Duration::from_secs(60);

/// Broker settings: the cleaner looks for work every 100 ms.
const BROKER: &[(&str, &str)] = &[("log.cleaner.backoff.ms", "100")];

fn compacted_topic(broker: &TestBroker, name: &str) {
    create_topic(
        broker,
        name,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "500"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "1000"),
        ],
    );
}

/// One record to produce: key, value (`None`: a tombstone), timestamp.
type Record = (String, Option<String>, i64);

/// Produces `records` in order (one in flight at a time is not needed: librdkafka keeps the
/// order of one partition) and returns the offset each got.
fn produce(
    producer: &BaseProducer<Recorder>,
    recorder: &Recorder,
    topic: &str,
    records: &[Record],
) -> Vec<i64> {
    recorder.take();
    for (i, (key, value, ts)) in records.iter().enumerate() {
        let mut record = BaseRecord::with_opaque_to(topic, i)
            .partition(0)
            .key(key.as_str())
            .timestamp(*ts);
        if let Some(v) = value {
            record = record.payload(v.as_str());
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(OP_TIMEOUT).expect("flush");
    producer.poll(Duration::ZERO);
    let mut offsets = vec![-1; records.len()];
    for (i, outcome) in recorder.take() {
        match outcome {
            Ok((_, offset)) => offsets[i] = offset,
            Err(e) => panic!("record {i} was not delivered: {e}"),
        }
    }
    assert!(offsets.iter().all(|o| *o >= 0), "every record acknowledged");
    offsets
}

/// The cleaner's first dirty offset for `topic`-0, from the broker's checkpoint file.
fn cleaner_checkpoint(broker: &TestBroker, topic: &str) -> Option<i64> {
    let text = std::fs::read_to_string(broker.data_dir().join("cleaner-offset-checkpoint")).ok()?;
    text.lines().skip(2).find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(topic) && fields.next() == Some("0"))
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

/// Waits until the cleaner has compacted `topic` up to at least `offset`.
fn wait_cleaned_to(broker: &TestBroker, topic: &str, offset: i64) {
    let deadline = Instant::now() + WAIT;
    while cleaner_checkpoint(broker, topic).is_none_or(|c| c < offset) {
        assert!(
            Instant::now() < deadline,
            "the cleaner did not reach offset {offset} of {topic} within {WAIT:?} (checkpoint \
             {:?})",
            cleaner_checkpoint(broker, topic)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A consumed record: offset, key, value.
type Consumed = (i64, String, Option<String>);

/// Reads `topic`-0 from the beginning until `done` says the records so far are enough.
fn read_while(
    consumer: &BaseConsumer,
    topic: &str,
    mut done: impl FnMut(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    assign(consumer, topic, [0], Offset::Beginning);
    let deadline = Instant::now() + WAIT;
    let mut out: Vec<Consumed> = Vec::new();
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not finish within {WAIT:?}; read up to offset {:?}",
            out.last().map(|r| r.0)
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            )),
            // A dead broker still in the metadata (the cluster test): librdkafka retries.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
            ))) => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
    out
}

/// Reads `topic`-0 from the beginning until a record at or past `last` arrives.
fn read_until(consumer: &BaseConsumer, topic: &str, last: i64) -> Vec<Consumed> {
    read_while(consumer, topic, |out| {
        out.last().is_some_and(|r| r.0 >= last)
    })
}

#[test]
fn compaction_keeps_the_latest_value_of_each_key_at_its_offset() {
    let broker = TestBroker::start_with(BROKER);
    let topic = "compacted";
    compacted_topic(&broker, topic);
    let (producer, recorder) = producer(&broker, &[("linger.ms", "0")]);
    let base = now_ms() - 600_000;
    const KEYS: usize = 20;
    const ROUNDS: usize = 6;
    const DELETED: usize = 4;
    let mut records: Vec<Record> = Vec::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let tombstone = round == ROUNDS - 1 && k < DELETED;
            let value = (!tombstone).then(|| format!("key-{k} round-{round}"));
            records.push((
                format!("key-{k}"),
                value,
                base + round as i64 * 1000 + k as i64,
            ));
        }
    }
    let offsets = produce(&producer, &recorder, topic, &records);
    // Filler under other keys, a round later: the last round rolls out of the active segment.
    let filler: Vec<Record> = (0..3)
        .map(|i| {
            (
                format!("filler-{i}"),
                Some("filler".into()),
                base + ROUNDS as i64 * 1000 + i,
            )
        })
        .collect();
    let filler_offsets = produce(&producer, &recorder, topic, &filler);
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for ((key, value, _), offset) in records.iter().zip(&offsets) {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    wait_cleaned_to(&broker, topic, filler_offsets[0]);

    let consumer = consumer(&broker, &[]);
    let last = *filler_offsets.last().expect("filler");
    let got = read_until(&consumer, topic, last);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    let data: Vec<&Consumed> = got.iter().filter(|r| r.1.starts_with("key-")).collect();
    // Exactly one record per key, the latest, at the offset the producer got; tombstones may
    // still be there (inside delete.retention.ms), nothing older is.
    let mut per_key: BTreeMap<String, Vec<(i64, Option<String>)>> = BTreeMap::new();
    for (o, k, v) in &data {
        per_key.entry(k.clone()).or_default().push((*o, v.clone()));
    }
    for (key, (offset, value)) in &latest {
        match (per_key.get(key), value) {
            (Some(seen), _) => assert_eq!(seen, &vec![(*offset, value.clone())], "{key}"),
            (None, None) => {}
            (None, Some(_)) => panic!("{key}: its latest value is gone"),
        }
    }
    assert_eq!(
        got.iter()
            .filter(|r| r.1.starts_with("filler-"))
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        filler_offsets
    );

    // After delete.retention.ms the cleaner comes back and the tombstones go.
    let deadline = Instant::now() + WAIT;
    loop {
        let consumer = support::consumer(&broker, &[]);
        let got = read_until(&consumer, topic, last);
        let keys: Vec<&str> = got
            .iter()
            .filter(|r| r.1.starts_with("key-"))
            .map(|r| r.1.as_str())
            .collect();
        if keys.len() == KEYS - DELETED {
            assert!(
                got.iter().all(|r| r.2.is_some()),
                "no tombstone left: {got:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tombstones still there after {WAIT:?}: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_consumer_reading_during_cleaning_sees_every_latest_record() {
    let broker = TestBroker::start_with(BROKER);
    let topic = "compacted-busy";
    compacted_topic(&broker, topic);
    const KEYS: usize = 50;
    let base = now_ms() - 1_800_000;
    // What the producer got acknowledged: offset -> (key, value), and each key's latest offset.
    type Acked = (HashMap<i64, (String, String)>, HashMap<String, i64>);
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        let (producer, recorder) = producer(&broker, &[("linger.ms", "2")]);
        std::thread::spawn(move || {
            let mut round = 0i64;
            // A last round after the stop rolls the one before out of the active segment.
            let mut last_round = false;
            while !last_round && round < 2_000 {
                last_round = stop.load(Ordering::SeqCst);
                let records: Vec<Record> = (0..KEYS)
                    .map(|k| {
                        (
                            format!("key-{k}"),
                            Some(format!("key-{k} round-{round}")),
                            base + round * 1000 + k as i64,
                        )
                    })
                    .collect();
                let offsets = produce(&producer, &recorder, topic, &records);
                let mut acked = acked.lock().expect("acked");
                for ((key, value, _), offset) in records.into_iter().zip(offsets) {
                    acked
                        .0
                        .insert(offset, (key.clone(), value.unwrap_or_default()));
                    acked.1.insert(key, offset);
                }
                round += 1;
            }
        })
    };
    // Each pass reads from the beginning until it has, for every key, the record that was the
    // key's latest when the pass began, or a newer one. Every record read must be one the
    // producer wrote at that offset, offsets strictly increasing.
    let check_pass = |latest_before: &HashMap<String, i64>| {
        let consumer = consumer(&broker, &[]);
        let mut newest: HashMap<String, i64> = HashMap::new();
        let mut satisfied = 0;
        let got = read_while(&consumer, topic, |out| {
            if let Some((offset, key, _)) = out.last() {
                let before = newest.insert(key.clone(), *offset).unwrap_or(-1);
                let want = latest_before.get(key).copied().unwrap_or(i64::MAX);
                if before < want && *offset >= want {
                    satisfied += 1;
                }
            }
            satisfied == latest_before.len()
        });
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "offsets strictly increase"
        );
        let acked_now = acked.lock().expect("acked").0.clone();
        let last = latest_before.values().max().copied().unwrap_or(-1);
        for (offset, key, value) in got.iter().filter(|r| r.0 <= last) {
            let (want_key, want_value) = acked_now
                .get(offset)
                .unwrap_or_else(|| panic!("offset {offset} was never acknowledged"));
            assert_eq!(
                (key, value.as_deref()),
                (want_key, Some(want_value.as_str()))
            );
        }
        newest
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut passes_while_cleaning = 0;
    while passes_while_cleaning < 4 {
        assert!(
            Instant::now() < deadline,
            "cleaning never overlapped 4 reads"
        );
        let latest_before = acked.lock().expect("acked").1.clone();
        if latest_before.len() < KEYS {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let checkpoint_before = cleaner_checkpoint(&broker, topic);
        check_pass(&latest_before);
        let checkpoint_after = cleaner_checkpoint(&broker, topic);
        if checkpoint_before.is_some() && checkpoint_after != checkpoint_before {
            passes_while_cleaning += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer thread");
    // Once the writes stop and the cleaner catches up: one record per key below the active
    // segment, and every key's newest record is its last acknowledged one.
    let (acked_all, latest) = acked.lock().expect("acked").clone();
    let newest_offset = latest.values().max().copied().unwrap_or(-1);
    let active_base = newest_offset + 1 - KEYS as i64;
    wait_cleaned_to(&broker, topic, active_base);
    let newest = check_pass(&latest);
    assert_eq!(newest, latest);
    let consumer = consumer(&broker, &[]);
    let got = read_until(&consumer, topic, newest_offset);
    let cleaned: Vec<&Consumed> = got.iter().filter(|r| r.0 < active_base).collect();
    assert_eq!(
        cleaned.len(),
        KEYS,
        "one record per key in the cleaned part"
    );
    for (offset, key, value) in cleaned {
        assert_eq!(acked_all.get(offset).map(|(k, _)| k), Some(key));
        assert_eq!(
            value.as_deref(),
            acked_all.get(offset).map(|(_, v)| v.as_str())
        );
    }
}

#[test]
fn keyless_records_are_refused_by_a_compacted_topic() {
    let broker = TestBroker::start_with(BROKER);
    let topic = "compacted-keys";
    compacted_topic(&broker, topic);
    let (producer, recorder) = producer(&broker, &[("retries", "0")]);
    producer
        .send(
            BaseRecord::<(), str, usize>::with_opaque_to(topic, 0)
                .partition(0)
                .payload("no key"),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    producer.flush(OP_TIMEOUT).expect("flush");
    producer.poll(Duration::ZERO);
    let reports = recorder.take();
    assert_eq!(reports.len(), 1);
    match &reports[0].1 {
        Err(e) => assert!(e.contains("InvalidRecord"), "{e}"),
        Ok(placed) => panic!("a keyless record was accepted at {placed:?}"),
    }
    // A keyed record is fine.
    produce(
        &producer,
        &recorder,
        topic,
        &[("k".into(), Some("v".into()), now_ms())],
    );
}

#[test]
fn followers_compact_their_own_copies_and_serve_them_as_leaders() {
    let mut settings = vec![
        ("broker.session.timeout.ms", "3000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("replica.fetch.backoff.ms", "200"),
        ("replica.fetch.wait.max.ms", "200"),
    ];
    settings.extend_from_slice(BROKER);
    let mut c = TestCluster::start(3, &settings);
    let topic = "compacted-replicated";
    let bootstrap = c.bootstrap();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin client");
    let mut new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(3));
    for (k, v) in [
        ("cleanup.policy", "compact"),
        ("segment.ms", "500"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.insync.replicas", "3"),
    ] {
        new_topic = new_topic.set(k, v);
    }
    let created = block_on(
        "CreateTopics",
        OP_TIMEOUT,
        admin.create_topics([&new_topic], &admin_options()),
    )
    .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    let full_isr = |v: &ClusterView| {
        v.topics
            .get(topic)
            .and_then(|(_, p)| p.first())
            .is_some_and(|p| p.leader >= 0 && p.isr.len() == 3)
    };
    let (view, _) = c.wait_view(1, "a full ISR", WAIT, full_isr);
    let leader = view.topics[topic].1[0].leader;

    let recorder = Recorder::default();
    let producer: BaseProducer<Recorder> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create_with_context(recorder.clone())
        .expect("producer");
    let base = now_ms() - 600_000;
    let mut records: Vec<Record> = Vec::new();
    for round in 0..5i64 {
        for k in 0..10i64 {
            records.push((
                format!("key-{k}"),
                Some(format!("key-{k} round-{round}")),
                base + round * 1000 + k,
            ));
        }
    }
    let offsets = produce(&producer, &recorder, topic, &records);
    let filler = produce(
        &producer,
        &recorder,
        topic,
        &[("filler".into(), Some("filler".into()), base + 5_000)],
    );
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for ((key, _, _), offset) in records.iter().zip(&offsets) {
        latest.insert(key.clone(), *offset);
    }
    // Every replica cleans its own copy.
    for id in 1..=3 {
        wait_cleaned_to(c.node(id), topic, filler[0]);
    }
    // The leader dies; a follower's compacted copy is what consumers read now.
    c.node(leader).kill();
    let observer = (1..=3).find(|id| *id != leader).expect("a survivor");
    c.wait_view(observer, "a new leader", WAIT, |v| {
        v.topics
            .get(topic)
            .and_then(|(_, p)| p.first())
            .is_some_and(|p| p.leader >= 0 && p.leader != leader)
    });
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap())
        .set("group.id", "rivulet-compaction-check")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let got = read_until(&consumer, topic, filler[0]);
    let mut expected: Vec<Consumed> = latest
        .iter()
        .map(|(k, o)| (*o, k.clone(), Some(format!("{k} round-4"))))
        .collect();
    expected.push((filler[0], "filler".into(), Some("filler".into())));
    expected.sort();
    assert_eq!(got, expected);
}
