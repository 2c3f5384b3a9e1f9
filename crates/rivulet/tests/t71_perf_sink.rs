//! `rivulet perf sink` against librdkafka: a producer's records are all acknowledged, and the
//! sink counts them from their batch headers (so librdkafka wrote the v2 record format, as to a
//! broker) and drops them; `rivulet perf produce --create-topic` runs against it unchanged, as
//! `bench/compare` runs it for the client's ceiling.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

/// How long the sink may take to start, and to stop after SIGTERM.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A `rivulet perf sink --json` child on a free loopback port; killed when dropped.
struct Sink {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    addr: String,
}

impl Sink {
    fn start() -> Sink {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args([
                "perf",
                "sink",
                "--listen",
                "127.0.0.1:0",
                "--partitions",
                "3",
            ])
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rivulet perf sink");
        let stdout = child.stdout.take().expect("stdout");
        // Read the first line on a helper thread, so that a sink that never prints it fails
        // the test after TIMEOUT instead of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, reader));
        });
        let mut sink = Sink {
            child,
            stdout: None,
            addr: String::new(),
        };
        let (line, reader) = rx.recv_timeout(TIMEOUT).expect("the sink's first line");
        let line = line.expect("reading the sink's stdout");
        sink.addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        sink.stdout = Some(reader);
        sink
    }

    /// SIGTERM; waits for the exit and returns the JSON summary it printed.
    fn stop(mut self) -> serde_json::Value {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child, not reaped yet (we hold its `Child` and
        // have not waited on it), so the pid cannot have been reused.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => break status,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => panic!("the sink did not exit within {TIMEOUT:?} of SIGTERM"),
            }
        };
        assert!(status.success(), "sink exit: {status}");
        let mut rest = String::new();
        self.stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut rest)
            .expect("read stdout");
        let line = rest.lines().last().expect("a summary line");
        serde_json::from_str(line).expect("summary JSON")
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn producers_are_acknowledged_and_the_records_dropped() {
    let sink = Sink::start();

    // librdkafka directly: idempotent (InitProducerId), acks=all, small batches over the three
    // partitions of a topic no one created.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &sink.addr)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("batch.size", "16384")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let value = [b'x'; 200];
    for i in 0..3000u32 {
        let key = i.to_be_bytes();
        let mut record = BaseRecord::to("sunk").key(&key[..]).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert!(
                        e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        "send: {e}"
                    );
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Timeout::After(TIMEOUT))
        .expect("every record acknowledged within the timeout");
    assert_eq!(producer.in_flight_count(), 0);
    drop(producer);

    // The load tool, as bench/compare runs it against the sink.
    let output = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["perf", "produce", "--bootstrap-servers", &sink.addr])
        .args(["--topic", "perf", "--create-topic", "--partitions", "4"])
        .args(["--acks", "1", "--record-size", "1024", "--records", "20000"])
        .arg("--json")
        .output()
        .expect("run rivulet perf produce");
    assert!(
        output.status.success(),
        "perf produce: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON");
    assert_eq!(json["records"].as_u64(), Some(20_000), "{json}");
    assert_eq!(json["errors"].as_u64(), Some(0), "{json}");

    let summary = sink.stop();
    assert_eq!(summary["records"].as_u64(), Some(23_000), "{summary}");
    let bytes = summary["batch_bytes"].as_u64().expect("batch_bytes");
    assert!(bytes > 20_000 * 1024, "{summary}");
}
