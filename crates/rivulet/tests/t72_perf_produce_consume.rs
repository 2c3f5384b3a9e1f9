//! `rivulet perf produce` and `rivulet perf consume` with several clients against a `rivulet
//! server`: the producers share out the records exactly, every one is acknowledged, and the
//! consumers, sharing the partitions, read every record back once.

mod support;

use support::TestBroker;

const RECORDS: u64 = 20_000;
const RECORD_SIZE: u64 = 100;

#[test]
fn three_producers_and_three_consumers_move_every_record_once() {
    let broker = TestBroker::start();
    let records = RECORDS.to_string();
    let size = RECORD_SIZE.to_string();
    let produced = broker.perf(&[
        "produce",
        "--topic",
        "many-clients",
        "--create-topic",
        "--partitions",
        "4",
        "--producers",
        "3",
        "--records",
        &records,
        "--warmup-records",
        "1000",
        "--record-size",
        &size,
        "--acks",
        "1",
    ]);
    assert_eq!(produced["producers"].as_u64(), Some(3));
    assert_eq!(produced["records"].as_u64(), Some(RECORDS), "{produced}");
    assert_eq!(produced["bytes"].as_u64(), Some(RECORDS * RECORD_SIZE));
    assert_eq!(produced["errors"].as_u64(), Some(0), "{produced}");
    let steady = &produced["steady_state"];
    assert_eq!(
        steady["records"].as_u64(),
        Some(RECORDS - 1000),
        "{produced}"
    );
    let latency = &produced["latency_ms"];
    assert!(
        latency["p50"].as_f64() <= latency["p99"].as_f64(),
        "{produced}"
    );

    let consumed = broker.perf(&[
        "consume",
        "--topic",
        "many-clients",
        "--consumers",
        "3",
        "--records",
        &records,
    ]);
    assert_eq!(consumed["consumers"].as_u64(), Some(3));
    assert_eq!(consumed["partitions"].as_u64(), Some(4));
    assert_eq!(consumed["records"].as_u64(), Some(RECORDS), "{consumed}");
    assert_eq!(consumed["bytes"].as_u64(), Some(RECORDS * RECORD_SIZE));
    assert_eq!(consumed["errors"].as_u64(), Some(0), "{consumed}");
    assert!(consumed["mb_per_sec"].as_f64().is_some_and(|v| v > 0.0));
}
