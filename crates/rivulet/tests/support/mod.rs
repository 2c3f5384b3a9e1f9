//! Harness shared by the acceptance tests: a real `rivulet server` child process
//! ([`TestBroker`]), a raw Kafka wire client for hand-made requests ([`RawClient`]), and the
//! rdkafka (librdkafka) helpers the client tests share (configs, producing with delivery
//! reports, consuming with `assign`, checking what came back).
//!
//! Every wait here is bounded and fails with a message naming what it waited for.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

pub mod cluster;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, Timestamp, TopicPartitionList};
use rivulet_protocol::kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use rivulet_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long a broker may take to start (or recover) and answer its first request.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'ed broker may take to shut down.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Set this variable to keep a failed test's broker directory (data and log) for a post-mortem.
pub const KEEP_ENV: &str = "RIVULET_TEST_KEEP";
/// Default bound for one client operation (admin call, flush, metadata).
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------------

/// One `rivulet server` child process on loopback ports it picked, with its own temporary
/// data dir. [`TestBroker::restart`] reuses the ports and the data. Dropping it kills the child
/// (and, if the test is failing, prints the tail of the broker's log).
///
/// The child also gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the thread that spawned it
/// even if the test process itself is killed: create and restart brokers on the test's own
/// thread, not on a short-lived helper thread.
pub struct TestBroker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    controller_port: u16,
    settings: Vec<(String, String)>,
    starts: u32,
    node_id: i32,
}

impl TestBroker {
    /// A node of a cluster on the given ports, not started yet ([`Self::spawn`] starts it).
    pub fn unstarted(
        node_id: i32,
        port: u16,
        controller_port: u16,
        settings: Vec<(String, String)>,
    ) -> TestBroker {
        TestBroker {
            child: None,
            dir: tempfile::Builder::new()
                .prefix("rivulet-test-")
                .tempdir()
                .expect("temp dir"),
            port,
            controller_port,
            settings,
            starts: 0,
            node_id,
        }
    }

    /// This node's `node.id`.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The controller listener's port.
    pub fn controller_port(&self) -> u16 {
        self.controller_port
    }

    /// Starts a broker with the default configuration.
    pub fn start() -> TestBroker {
        TestBroker::start_with(&[])
    }

    /// Starts a broker with extra `--set key=value` settings.
    pub fn start_with(settings: &[(&str, &str)]) -> TestBroker {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("rivulet-test-")
            .tempdir()
            .expect("temp dir");
        let mut broker = TestBroker {
            child: None,
            dir,
            port: 0,
            controller_port: 0,
            settings,
            starts: 0,
            node_id: 1,
        };
        let mut last_log = String::new();
        // A port picked by binding port 0 can be taken by someone else before the broker binds
        // it: retry with new ports when that is why the start failed.
        for _ in 0..5 {
            broker.port = free_port();
            broker.controller_port = free_port();
            while broker.controller_port == broker.port {
                broker.controller_port = free_port();
            }
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(StartError::AddressInUse(log)) => last_log = log,
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("the broker could not bind free ports after 5 tries; last log:\n{last_log}")
    }

    /// `host:port` of the PLAINTEXT listener, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The PLAINTEXT listener address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's `log.dirs` directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The broker's log file (stdout and stderr of every start, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `rivulet perf ARGS --bootstrap-servers <this broker> --json` to completion and
    /// returns its JSON line; fails the test, with the broker's log, if it fails.
    pub fn perf(&self, args: &[&str]) -> serde_json::Value {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .arg("perf")
            .args(args)
            .args(["--bootstrap-servers", &self.bootstrap(), "--json"])
            .output()
            .expect("run rivulet perf");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "perf {args:?} failed: {stderr}\n{}",
            self.log()
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().expect("a JSON line");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The child's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (kill -9): no shutdown of any kind. Waits for the process to be gone.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("kill: the broker is not running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// [`Self::terminate`], asserting that the broker shut down cleanly (exit status 0).
    pub fn terminate_cleanly(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "SIGTERM exit: {}",
            describe_status(status)
        );
    }

    /// SIGTERM, then waits (at most [`STOP_TIMEOUT`]) for the broker to exit; returns its exit
    /// status. Panics (after a SIGKILL) if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("terminate: the broker is not running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet (we hold
        // its `Child` and have not waited on it), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            rc,
            0,
            "kill(SIGTERM) failed: {}",
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the broker did not exit within {STOP_TIMEOUT:?} of SIGTERM; log tail:\n{}",
                        tail(&self.log(), 40)
                    );
                }
                Err(e) => panic!("waiting for the broker: {e}"),
            }
        }
    }

    /// Starts the broker again on the same ports and data dir (after [`kill`](Self::kill) or
    /// [`terminate`](Self::terminate)) and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: stop the broker first");
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartError::AddressInUse(log)) => {
                panic!("restart: the broker's port is taken:\n{log}")
            }
            Err(StartError::Failed(msg)) => panic!("restart: {msg}"),
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_offset = self.spawn()?;
        self.wait_started(log_offset)
    }

    /// Starts the process without waiting; returns where this start's log begins.
    fn spawn(&mut self) -> Result<u64, StartError> {
        std::fs::create_dir_all(self.data_dir()).expect("data dir");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log file");
        self.starts += 1;
        writeln!(
            log,
            "==== start #{} (ports {} / {})",
            self.starts, self.port, self.controller_port
        )
        .expect("log");
        let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.arg("server")
            .arg("--set")
            .arg(format!("log.dirs={}", self.data_dir().display()))
            .arg("--set")
            .arg(format!(
                "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                self.port, self.controller_port
            ))
            .arg("--set")
            .arg(format!("node.id={}", self.node_id));
        for (k, v) in &self.settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        // The broker reads `RIVULET_<KEY>` variables as configuration: none of the test
        // environment's may leak into it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RIVULET_") {
                cmd.env_remove(name);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Failed(format!("cannot spawn the broker: {e}")))?;
        self.child = Some(child);
        Ok(log_offset)
    }

    /// Waits until the process started at `log_offset` answers ApiVersions (it serves only
    /// once the controller has unfenced it).
    fn wait_started(&mut self, log_offset: u64) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let full = self.log();
                let this_start = full.get(log_offset as usize..).unwrap_or(&full).to_string();
                if this_start.contains("Address already in use") {
                    return Err(StartError::AddressInUse(this_start));
                }
                return Err(StartError::Failed(format!(
                    "the broker exited during start-up ({status}); log:\n{}",
                    tail(&this_start, 60)
                )));
            }
            if api_versions_answered(self.addr()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "the broker did not answer ApiVersions on {} within {START_TIMEOUT:?}; log tail:\n{}",
                    self.addr(),
                    tail(&self.log(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- broker log tail ({}):\n{}",
                self.log_path().display(),
                tail(&self.log(), 60)
            );
            if std::env::var_os(KEEP_ENV).is_some() {
                let dir =
                    std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
                eprintln!("---- {KEEP_ENV} is set: kept {}", dir.display());
            }
        }
    }
}

enum StartError {
    AddressInUse(String),
    Failed(String),
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether the broker at `addr` answers an ApiVersions request (so it has finished starting:
/// listeners bound, logs recovered, requests served).
fn api_versions_answered(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let mut client = RawClient::from_stream(stream, Duration::from_secs(2));
    client.api_versions_v0().is_ok()
}

// ---------------------------------------------------------------------------------------------
// Raw wire client
// ---------------------------------------------------------------------------------------------

/// A Kafka client on a plain `TcpStream`: sends hand-made frames and typed requests (encoded
/// with `kafka-protocol`), reads size-prefixed responses, and tells a closed connection apart
/// from a silent one. Reads and writes time out.
pub struct RawClient {
    stream: TcpStream,
    next_correlation_id: i32,
}

/// What [`RawClient::read_outcome`] saw.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A whole response frame (without its size prefix).
    Frame(Vec<u8>),
    /// The broker closed the connection (EOF or reset) before a whole frame.
    Closed,
    /// Nothing (or only part of a frame) arrived before the timeout.
    TimedOut,
}

impl RawClient {
    /// Connects to `addr`; every read and write gives up after 10 s.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        RawClient::from_stream(stream, Duration::from_secs(10))
    }

    fn from_stream(stream: TcpStream, timeout: Duration) -> RawClient {
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(timeout))
            .expect("write timeout");
        let _ = stream.set_nodelay(true);
        RawClient {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
    }

    /// Writes raw bytes (a whole frame, part of one, or garbage).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Closes the write half (the broker sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// A correlation id for the next request.
    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    /// Encodes a request frame (size prefix, header at the right version, body).
    pub fn encode_request<R: Encodable>(
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("rivulet-raw-test")));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, key.request_header_version(version))
            .expect("encode request header");
        body.encode(&mut payload, version)
            .expect("encode request body");
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    /// Sends a typed request; returns its correlation id.
    pub fn send_request<R: Encodable>(&mut self, key: ApiKey, version: i16, body: &R) -> i32 {
        let correlation_id = self.next_correlation_id();
        let frame = RawClient::encode_request(key, version, correlation_id, body);
        self.send_raw(&frame)
            .unwrap_or_else(|e| panic!("sending {key:?} v{version}: {e}"));
        correlation_id
    }

    /// Reads one response frame, or sees the connection closed, or times out.
    pub fn read_outcome(&mut self) -> ReadOutcome {
        let mut size = [0u8; 4];
        match read_exact_or(&mut self.stream, &mut size) {
            Ok(true) => {}
            Ok(false) => return ReadOutcome::Closed,
            Err(e) if is_timeout(&e) => return ReadOutcome::TimedOut,
            Err(_) => return ReadOutcome::Closed,
        }
        let len = i32::from_be_bytes(size);
        assert!(
            (0..=64 << 20).contains(&len),
            "response frame size {len} is not plausible"
        );
        let mut payload = vec![0u8; len as usize];
        match read_exact_or(&mut self.stream, &mut payload) {
            Ok(true) => ReadOutcome::Frame(payload),
            Ok(false) => ReadOutcome::Closed,
            Err(e) if is_timeout(&e) => ReadOutcome::TimedOut,
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// Reads one response frame; panics if the connection closed or nothing came in time.
    pub fn read_frame(&mut self) -> Vec<u8> {
        match self.read_outcome() {
            ReadOutcome::Frame(f) => f,
            other => panic!("expected a response frame, got {other:?}"),
        }
    }

    /// Reads the response to `correlation_id` (of `key` v`version`) and decodes it.
    pub fn recv_response<R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> R {
        let frame = self.read_frame();
        decode_response(&frame, key, version, correlation_id)
    }

    /// Sends a request and reads its response.
    pub fn call<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &Q) -> R {
        let correlation_id = self.send_request(key, version, body);
        self.recv_response(key, version, correlation_id)
    }

    /// Asserts the broker closes the connection within `timeout` (any bytes it sends first are
    /// returned, e.g. a response to an earlier request).
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<u8> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return received, // reset: closed
            }
            assert!(
                Instant::now() < deadline,
                "the broker kept the connection open for {timeout:?} (received {} bytes)",
                received.len()
            );
        }
    }

    /// ApiVersions v0 by hand: `Ok` when a well-formed answer with our correlation id came back.
    pub fn api_versions_v0(&mut self) -> Result<(), String> {
        let correlation_id = self.next_correlation_id();
        let mut frame = Vec::new();
        let client_id = b"rivulet-probe";
        let len = 2 + 2 + 4 + 2 + client_id.len();
        frame.extend_from_slice(&(len as i32).to_be_bytes());
        frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
        frame.extend_from_slice(&0i16.to_be_bytes());
        frame.extend_from_slice(&correlation_id.to_be_bytes());
        frame.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        frame.extend_from_slice(client_id);
        self.send_raw(&frame).map_err(|e| e.to_string())?;
        match self.read_outcome() {
            ReadOutcome::Frame(f) if f.len() >= 6 && f[..4] == correlation_id.to_be_bytes() => {
                let error = i16::from_be_bytes([f[4], f[5]]);
                if error == 0 {
                    Ok(())
                } else {
                    Err(format!("ApiVersions error {error}"))
                }
            }
            other => Err(format!("no ApiVersions answer: {other:?}")),
        }
    }
}

/// Decodes a response frame: header (checking the correlation id), then body.
pub fn decode_response<R: Decodable>(
    frame: &[u8],
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> R {
    let mut buf = bytes::Bytes::copy_from_slice(frame);
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version} response header: {e:#}"));
    assert_eq!(
        header.correlation_id, correlation_id,
        "{key:?} response correlation id"
    );
    let body = R::decode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} response body: {e:#}"));
    assert!(
        !buf.has_remaining(),
        "{key:?} v{version} response has {} trailing bytes",
        buf.remaining()
    );
    body
}

/// `read_exact` that reports a clean EOF at the very start as `Ok(false)`.
fn read_exact_or(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

// ---------------------------------------------------------------------------------------------
// rdkafka helpers
// ---------------------------------------------------------------------------------------------

/// Runs an async client call (rdkafka's admin futures) on a small runtime, bounded by
/// `timeout`.
pub fn block_on<F: std::future::Future>(what: &str, timeout: Duration, fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async { tokio::time::timeout(timeout, fut).await })
        .unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}"))
}

/// A client config for the broker: bootstrap servers and bounded timeouts.
pub fn client_config(broker: &TestBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", "rivulet-acceptance")
        .set("socket.timeout.ms", "10000");
    config
}

/// An admin client.
pub fn admin(broker: &TestBroker) -> AdminClient<DefaultClientContext> {
    client_config(broker).create().expect("admin client")
}

/// Admin options with a bounded request timeout.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(OP_TIMEOUT))
        .operation_timeout(Some(OP_TIMEOUT))
}

/// Creates one topic (replication factor 1) with `configs`, panicking on any error.
pub fn create_topic(broker: &TestBroker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(broker);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(
        "CreateTopics",
        OP_TIMEOUT,
        admin.create_topics([&topic], &admin_options()),
    )
    .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(name.to_string())], "creating topic {name}");
}

/// A consumer that never joins a group: the tests only `assign` (explicit offsets), never
/// subscribe, and never commit. librdkafka still needs a `group.id` for `assign` (without one it
/// fails with "Local: Unknown group") and looks up that group's coordinator, which creates
/// `__consumer_offsets` as in Kafka; it never joins or commits.
pub fn consumer(broker: &TestBroker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(broker);
    config
        .set("group.id", "rivulet-acceptance-no-commits")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

/// Assigns `partitions` of `topic` from `offset` (no group involved).
pub fn assign<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
    offset: Offset,
) {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, offset)
            .expect("partition offset");
    }
    consumer.assign(&tpl).expect("assign");
}

/// Polls until `expected` messages in all arrived, failing on any consumer error or after
/// `timeout` (naming how far it got).
pub fn consume_n<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "consumed {} of {expected} messages within {timeout:?}",
            out.len()
        );
        match consumer.poll(left.min(Duration::from_millis(200))) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!(
                "consumer error after {} of {expected} messages: {e}",
                out.len()
            ),
        }
    }
    out
}

/// Polls for `quiet`, asserting nothing more arrives.
pub fn assert_no_more<C: ConsumerContext>(consumer: &BaseConsumer<C>, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match consumer.poll(left) {
            None => {}
            Some(Ok(m)) => panic!(
                "unexpected extra message at {}/{} offset {}",
                m.topic(),
                m.partition(),
                m.offset()
            ),
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
}

/// Reads a whole topic back from the beginning through a fresh consumer: exactly `expected`
/// messages (nothing more within a short quiet period).
pub fn read_topic(
    broker: &TestBroker,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer = consumer(broker, &[]);
    assign(&consumer, topic, 0..partitions, Offset::Beginning);
    let messages = consume_n(&consumer, expected, timeout);
    assert_no_more(&consumer, Duration::from_millis(300));
    messages
}

/// A message the tests produce and later expect back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestMessage {
    /// Partition it is sent to (explicitly: the tests do not depend on a partitioner).
    pub partition: i32,
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Create time, ms.
    pub timestamp: i64,
}

impl TestMessage {
    /// What a consumed message holds, in the same shape.
    pub fn from_consumed(m: &OwnedMessage) -> TestMessage {
        let timestamp = match m.timestamp() {
            Timestamp::CreateTime(t) => t,
            other => panic!(
                "message at {}/{} has timestamp {other:?}, not CreateTime",
                m.partition(),
                m.offset()
            ),
        };
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|Header { key, value }| {
                        (
                            key.to_string(),
                            value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        TestMessage {
            partition: m.partition(),
            key: m.key().map(<[u8]>::to_vec).unwrap_or_default(),
            value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp,
        }
    }
}

/// One delivery report: the message's index and where it was acknowledged
/// (`(partition, offset)`), or why it failed.
pub type Delivery = (usize, Result<(i32, i64), String>);

/// The delivery reports of a producer, in the order they arrived.
#[derive(Default)]
pub struct DeliveryLog {
    results: Mutex<Vec<Delivery>>,
}

/// A producer context recording every delivery report in a [`DeliveryLog`].
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<DeliveryLog>);

impl ClientContext for Recorder {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("librdkafka {level:?} {fac}: {message}");
    }
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0
            .results
            .lock()
            .expect("delivery log")
            .push((index, outcome));
    }
}

impl Recorder {
    /// How many messages were acknowledged so far.
    pub fn acked(&self) -> usize {
        self.0
            .results
            .lock()
            .expect("delivery log")
            .iter()
            .filter(|(_, r)| r.is_ok())
            .count()
    }

    /// Takes the delivery reports recorded so far.
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.0.results.lock().expect("delivery log"))
    }
}

/// A producer with `extra` settings, recording its delivery reports.
pub fn producer(broker: &TestBroker, extra: &[(&str, &str)]) -> (BaseProducer<Recorder>, Recorder) {
    let mut config = client_config(broker);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let recorder = Recorder::default();
    let producer = config
        .create_with_context(recorder.clone())
        .expect("producer");
    (producer, recorder)
}

/// Sends `messages` to `topic` (queue-full is waited out), flushes, and asserts each one was
/// acknowledged; returns the `(partition, offset)` of each, in message order.
pub fn produce_all(
    producer: &BaseProducer<Recorder>,
    recorder: &Recorder,
    topic: &str,
    messages: &[TestMessage],
    timeout: Duration,
) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + timeout;
    recorder.0.results.lock().expect("delivery log").clear();
    for (i, m) in messages.iter().enumerate() {
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = BaseRecord::with_opaque_to(topic, i)
            .partition(m.partition)
            .key(&m.key)
            .payload(&m.value)
            .timestamp(m.timestamp)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    assert!(
                        Instant::now() < deadline,
                        "producer queue still full after {timeout:?}"
                    );
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("send of message {i} failed: {e}"),
            }
        }
    }
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    producer
        .flush(left)
        .unwrap_or_else(|e| panic!("flush: {e}"));
    producer.poll(Duration::ZERO);
    let results = std::mem::take(&mut *recorder.0.results.lock().expect("delivery log"));
    assert_eq!(results.len(), messages.len(), "delivery reports");
    let mut placed = vec![(-1, -1); messages.len()];
    for (i, outcome) in results {
        match outcome {
            Ok(p) => placed[i] = p,
            Err(e) => panic!("message {i} was not delivered: {e}"),
        }
    }
    placed
}

/// Checks that `consumed` is exactly `sent`: per partition, the same messages in the same
/// order (keys, values, headers, timestamps), at offsets `0..n` without gaps.
pub fn assert_same_messages(sent: &[TestMessage], consumed: &[OwnedMessage]) {
    let mut want: BTreeMap<i32, Vec<&TestMessage>> = BTreeMap::new();
    for m in sent {
        want.entry(m.partition).or_default().push(m);
    }
    let mut got: BTreeMap<i32, Vec<&OwnedMessage>> = BTreeMap::new();
    for m in consumed {
        got.entry(m.partition()).or_default().push(m);
    }
    fn counts<T>(m: &BTreeMap<i32, Vec<T>>) -> Vec<(i32, usize)> {
        m.iter().map(|(p, v)| (*p, v.len())).collect()
    }
    assert_eq!(
        counts(&got),
        counts(&want),
        "messages per partition (consumed vs sent)"
    );
    for (partition, want) in &want {
        for (i, (w, g)) in want.iter().zip(&got[partition]).enumerate() {
            assert_eq!(
                g.offset(),
                i as i64,
                "offset of message {i} of partition {partition}"
            );
            let g = TestMessage::from_consumed(g);
            if **w != g {
                panic!("message {i} of partition {partition} differs:\n sent     {w:?}\n consumed {g:?}");
            }
        }
    }
}

/// The names of the topics the broker lists, but `__consumer_offsets`.
pub fn topic_names(broker: &TestBroker) -> Vec<String> {
    let consumer = consumer(broker, &[]);
    let metadata = consumer.fetch_metadata(None, OP_TIMEOUT).expect("metadata");
    // `__consumer_offsets` appears once any client with a group id looks for its coordinator.
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n != "__consumer_offsets")
        .collect();
    names.sort();
    names
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The `.log` segment files of a partition's directory, sorted.
pub fn segment_files(broker: &TestBroker, topic: &str, partition: i32) -> Vec<PathBuf> {
    let dir = broker.data_dir().join(format!("{topic}-{partition}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// A process's exit status, described (signal or code).
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{status:?}"),
    }
}

/// Fetches `partition` of `topic` from `offset` on the wire (Fetch v12, no waiting) and returns
/// the raw record batches.
pub fn raw_fetch(
    broker: &TestBroker,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: i32,
) -> bytes::Bytes {
    use rivulet_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use rivulet_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    let mut client = RawClient::connect(broker.addr());
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    assert_eq!(response.error_code, 0, "fetch error");
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch error of {topic}-{partition}");
    p.records.clone().unwrap_or_default()
}

/// The batch headers of `topic`-`partition` from `offset` (one fetch of up to 1 MiB).
pub fn batch_headers(
    broker: &TestBroker,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Vec<rivulet_protocol::kafka_protocol::records::BatchDecodeInfo> {
    let mut records = raw_fetch(broker, topic, partition, offset, 1 << 20);
    rivulet_protocol::kafka_protocol::records::RecordBatchDecoder::decode_batch_info(&mut records)
        .expect("record batches decode")
}

/// Idempotent-producer fields of a hand-made batch.
#[derive(Debug, Clone, Copy)]
pub struct ProducerFields {
    /// Producer id.
    pub id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Sequence of the batch's first record.
    pub base_sequence: i32,
}

/// Encodes `messages` as one RecordBatch v2 (kafka-protocol's encoder, so an implementation
/// independent of librdkafka's) with `compression`, optionally as an idempotent producer's.
pub fn encode_batch(
    messages: &[TestMessage],
    compression: rivulet_protocol::kafka_protocol::records::Compression,
    producer: Option<ProducerFields>,
) -> bytes::Bytes {
    use rivulet_protocol::kafka_protocol::records::{
        Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut headers = rivulet_protocol::kafka_protocol::indexmap::IndexMap::new();
            for (k, v) in &m.headers {
                headers.insert(
                    StrBytes::from_string(k.clone()),
                    Some(bytes::Bytes::copy_from_slice(v)),
                );
            }
            // The encoder splits batches where `offset - sequence` changes, and derives the
            // base sequence from the first record: without a producer, sequences -1, 0, 1, ...
            // keep one batch whose base sequence is -1.
            let sequence = match producer {
                Some(p) => p.base_sequence + i as i32,
                None => i as i32 - 1,
            };
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.map_or(-1, |p| p.id),
                producer_epoch: producer.map_or(-1, |p| p.epoch),
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence,
                timestamp: m.timestamp,
                key: Some(bytes::Bytes::copy_from_slice(&m.key)),
                value: Some(bytes::Bytes::copy_from_slice(&m.value)),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// A ProduceRequest of one batch for `topic`-`partition`.
pub fn produce_request(
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
    acks: i16,
) -> rivulet_protocol::kafka_protocol::messages::ProduceRequest {
    use rivulet_protocol::kafka_protocol::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use rivulet_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces one hand-made batch (Produce v9, acks=all) and returns `(error code, base offset)`.
pub fn raw_produce(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
) -> (i16, i64) {
    use rivulet_protocol::kafka_protocol::messages::ProduceResponse;
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        9,
        &produce_request(topic, partition, records, -1),
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The API keys the broker advertises in ApiVersions (v3).
pub fn advertised_apis(broker: &TestBroker) -> Vec<i16> {
    use rivulet_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rivulet-tests"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let response: ApiVersionsResponse =
        RawClient::connect(broker.addr()).call(ApiKey::ApiVersions, 3, &request);
    assert_eq!(response.error_code, 0);
    response.api_keys.iter().map(|k| k.api_key).collect()
}
