//! `rivulet perf e2e` against a `rivulet server`: every record sent is received, and the
//! JSON line carries the latency percentiles of the records after the warm-up.

mod support;

use std::time::Duration;

use support::TestBroker;

#[test]
fn e2e_receives_every_record_and_reports_latency() {
    let broker = TestBroker::start();
    let json = broker.perf(&[
        "e2e",
        "--topic",
        "e2e",
        "--create-topic",
        "--partitions",
        "2",
        "--throughput",
        "200",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--record-size",
        "100",
    ]);
    let sent = json["sent"].as_u64().expect("sent");
    assert!(sent >= 500, "sent {sent} at 200/s for 3 s");
    assert_eq!(json["received"].as_u64(), Some(sent));
    assert_eq!(json["partitions"].as_u64(), Some(2));
    let latency = &json["latency_ms"];
    let count = latency["count"].as_u64().expect("count");
    // The first second's records are the warm-up, left out.
    assert!(
        count < sent && count >= sent / 2,
        "{count} of {sent} measured"
    );
    let (p50, p99, max) = (
        latency["p50"].as_f64().expect("p50"),
        latency["p99"].as_f64().expect("p99"),
        latency["max"].as_f64().expect("max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency}");
    // Delivered well within the consumer's fetch wait (500 ms): a fetch is answered when data
    // arrives, not when the wait ends.
    assert!(
        p50 < Duration::from_millis(250).as_secs_f64() * 1000.0,
        "{latency}"
    );
}
