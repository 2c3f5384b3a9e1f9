//! Partition replication on three `rivulet` processes on loopback: acks=all writes survive
//! kill -9 of the leader (read back exactly once, in order, replicas byte-identical), a former
//! leader truncates what it alone had, `min.insync.replicas` refuses writes when the ISR is too
//! small, the ISR shrinks when a follower stops fetching and grows when it catches up, and an
//! acks=all wait does not hold back the next append of its connection.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;
use support::cluster::{ClusterView, TestCluster};
use support::{
    admin_options, assign, block_on, encode_batch, produce_request, segment_files, RawClient,
    Recorder, TestBroker, TestMessage, OP_TIMEOUT,
};

/// Fast failure detection and retries, so the tests take seconds.
const SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.fetch.backoff.ms", "200"),
    ("replica.fetch.wait.max.ms", "200"),
];

fn create(bootstrap: &str, name: &str, partitions: i32, rf: i32, configs: &[(&str, &str)]) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    'attempts: for attempt in 1..=5 {
        match block_on(
            "create topic",
            OP_TIMEOUT,
            admin.create_topics([&topic], &admin_options()),
        ) {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) => {}
                        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
                            if attempt > 1 => {}
                        // A broker whose heartbeats were late (a loaded CI machine) is fenced
                        // for a moment: too few brokers to place the replicas; try again.
                        Err((t, rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor))
                            if attempt < 5 =>
                        {
                            eprintln!("creating {t}: too few unfenced brokers; retrying");
                            std::thread::sleep(Duration::from_secs(2));
                            continue 'attempts;
                        }
                        Err((t, e)) => panic!("creating {t}: {e}"),
                    }
                }
                return;
            }
            // librdkafka may retire the bootstrap handle the request was on; retry.
            Err(e) if attempt < 5 => eprintln!("create_topics attempt {attempt}: {e}; retrying"),
            Err(e) => panic!("create_topics: {e}"),
        }
    }
}

fn partition0(view: &ClusterView, topic: &str) -> Option<support::cluster::PartitionView> {
    view.topics.get(topic).and_then(|(_, p)| p.first().cloned())
}

/// Any running node's id.
fn running(c: &mut TestCluster, except: i32) -> i32 {
    (1..=3)
        .find(|id| *id != except && c.node(*id).is_running())
        .expect("a running node")
}

/// Waits until partition 0 of `topic` has a leader and all three replicas in its ISR.
fn wait_fully_replicated(c: &mut TestCluster, topic: &str, timeout: Duration) -> ClusterView {
    let observer = running(c, 0);
    c.wait_view(observer, "a full ISR", timeout, |v| {
        partition0(v, topic).is_some_and(|p| p.leader >= 0 && p.isr.len() == 3)
    })
    .0
}

/// The partition's log as one byte string: every segment file in offset order.
fn log_bytes(node: &TestBroker, topic: &str) -> Vec<u8> {
    let mut all = Vec::new();
    for f in segment_files(node, topic, 0) {
        all.extend(std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
    }
    all
}

/// Waits until the three replicas' logs of partition 0 are byte-identical; returns their size.
fn wait_identical_logs(c: &mut TestCluster, topic: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let logs: Vec<Vec<u8>> = (1..=3).map(|id| log_bytes(c.node(id), topic)).collect();
        if logs[0] == logs[1] && logs[1] == logs[2] {
            return logs[0].len();
        }
        assert!(
            Instant::now() < deadline,
            "replica logs of {topic}-0 still differ after {timeout:?}: sizes {:?}",
            logs.iter().map(Vec::len).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(node: &mut TestBroker, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(node.pid().expect("running")).expect("pid fits");
    // SAFETY: kill(2) on our own unreaped child's pid.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({sig}): {}", std::io::Error::last_os_error());
}

fn numbered_producer(bootstrap: &str) -> (BaseProducer<Recorder>, Recorder) {
    let recorder = Recorder::default();
    let producer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .set("socket.timeout.ms", "10000")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(recorder.clone())
        .expect("producer");
    (producer, recorder)
}

/// For `d`, sends the next numbers (`sent`, `sent + 1`, ...) to `topic`-0, keeping at most
/// `in_flight` unacknowledged: a steady stream, not one burst.
fn send_numbers(
    producer: &BaseProducer<Recorder>,
    recorder: &Recorder,
    topic: &str,
    in_flight: usize,
    sent: &mut usize,
    d: Duration,
) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if *sent - recorder.acked() < in_flight {
            let value = sent.to_string();
            let record = BaseRecord::<(), String, usize>::with_opaque_to(topic, *sent)
                .partition(0)
                .payload(&value);
            if producer.send(record).is_ok() {
                *sent += 1;
            }
        }
        producer.poll(Duration::from_millis(1));
    }
}

/// Reads `topic`-0 from the beginning until `count` messages came, or nothing new arrives for a
/// while; returns the numbers in the order read.
fn read_numbers(bootstrap: &str, topic: &str, at_least: usize) -> Vec<u64> {
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rivulet-replication-check")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("consumer");
    assign(&consumer, topic, [0], Offset::Beginning);
    let mut out = Vec::new();
    let mut last_progress = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = std::str::from_utf8(m.payload().unwrap_or_default())
                    .expect("utf8")
                    .parse::<u64>()
                    .expect("a number");
                out.push(value);
                last_progress = Instant::now();
            }
            Some(Err(e)) => panic!("consumer error after {} messages: {e}", out.len()),
            None if out.len() >= at_least && last_progress.elapsed() > Duration::from_secs(2) => {
                return out;
            }
            None => {}
        }
    }
    panic!("read {} of at least {at_least} messages", out.len());
}

#[test]
fn acks_all_writes_survive_repeated_leader_kills() {
    let mut c = TestCluster::start(3, SETTINGS);
    let bootstrap = c.bootstrap();
    create(&bootstrap, "numbers", 1, 3, &[("min.insync.replicas", "2")]);
    wait_fully_replicated(&mut c, "numbers", Duration::from_secs(20));
    let (producer, recorder) = numbered_producer(&bootstrap);
    let mut sent = 0usize;
    let send_for = |d: Duration, sent: &mut usize| {
        send_numbers(&producer, &recorder, "numbers", 2_000, sent, d)
    };
    send_for(Duration::from_secs(2), &mut sent);
    for round in 1..=3 {
        let observer = running(&mut c, 0);
        let leader = partition0(&c.view(observer), "numbers")
            .expect("partition")
            .leader;
        eprintln!("round {round}: kill -9 of leader {leader} after {sent} sent");
        c.node(leader).kill();
        send_for(Duration::from_secs(5), &mut sent);
        let observer = running(&mut c, leader);
        let (after, _) = c.wait_view(observer, "a new leader", Duration::from_secs(20), |v| {
            partition0(v, "numbers").is_some_and(|p| p.leader >= 0 && p.leader != leader)
        });
        eprintln!(
            "round {round}: new leader {:?}",
            partition0(&after, "numbers")
        );
        c.node(leader).restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            send_for(Duration::from_millis(500), &mut sent);
            let v = c.view(observer);
            if partition0(&v, "numbers").is_some_and(|p| p.isr.len() == 3) {
                break;
            }
        }
        send_for(Duration::from_secs(1), &mut sent);
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("every message delivered or failed");
    producer.poll(Duration::ZERO);
    let reports = recorder.take();
    let acked: Vec<usize> = reports
        .iter()
        .filter_map(|(i, r)| r.as_ref().ok().map(|_| *i))
        .collect();
    let failed = reports.len() - acked.len();
    eprintln!("{sent} sent, {} acknowledged, {failed} failed", acked.len());
    assert!(acked.len() > 1000, "too few acknowledged to mean anything");

    let read = read_numbers(&c.bootstrap(), "numbers", acked.len());
    // Exactly once: no number twice (idempotence), every acknowledged one present.
    let mut seen = BTreeMap::new();
    for (pos, n) in read.iter().enumerate() {
        if let Some(first) = seen.insert(*n, pos) {
            panic!("message {n} read twice, at positions {first} and {pos}");
        }
    }
    for i in &acked {
        assert!(
            seen.contains_key(&(*i as u64)),
            "acknowledged message {i} was lost"
        );
    }
    // In order: an idempotent producer's messages to one partition keep their send order.
    assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "messages out of order"
    );
    let size = wait_identical_logs(&mut c, "numbers", Duration::from_secs(30));
    eprintln!(
        "{} messages read back, replica logs identical ({size} bytes)",
        read.len()
    );
}

/// Writes `values` to a leader that was just elected: a broker applies a new leadership a moment
/// after its metadata shows it, so NOT_LEADER_OR_FOLLOWER is retried for a while, as clients do.
fn produce_to_new_leader(node: &TestBroker, topic: &str, acks: i16, values: &[&str]) {
    let not_leader = 6;
    for v in values {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match produce_direct(node, topic, acks, &[v])[0] {
                0 => break,
                code if code == not_leader && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                code => panic!("writing {v} to the new leader: error {code}"),
            }
        }
    }
}

/// One-record batches, each its own produce request with `acks`, straight to `node`.
fn produce_direct(node: &TestBroker, topic: &str, acks: i16, values: &[&str]) -> Vec<i16> {
    let mut client = RawClient::connect(node.addr());
    values
        .iter()
        .map(|v| {
            let id = send_produce(&mut client, topic, acks, v, 5_000);
            recv_produce(&mut client, id).0
        })
        .collect()
}

fn log_end(node: &TestBroker, topic: &str) -> u64 {
    segment_files(node, topic, 0)
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn a_former_leader_truncates_what_only_it_had() {
    let mut c = TestCluster::start(3, SETTINGS);
    let bootstrap = c.bootstrap();
    create(&bootstrap, "diverge", 1, 3, &[]);
    let view = wait_fully_replicated(&mut c, "diverge", Duration::from_secs(20));
    let old = partition0(&view, "diverge").expect("partition").leader;
    let followers: Vec<i32> = (1..=3).filter(|id| *id != old).collect();
    produce_to_new_leader(c.node(old), "diverge", -1, &["a", "b"]);
    wait_identical_logs(&mut c, "diverge", Duration::from_secs(10));
    // The followers stop; the leader takes acks=1 writes they never see, then dies.
    for f in &followers {
        signal(c.node(*f), libc::SIGSTOP);
    }
    // Let the fetches they had parked on the leader expire (replica.fetch.wait.max.ms), so
    // nothing written from now on reaches them.
    std::thread::sleep(Duration::from_millis(600));
    let codes = produce_direct(c.node(old), "diverge", 1, &["lost-1", "lost-2", "lost-3"]);
    assert_eq!(codes, vec![0, 0, 0], "acks=1 writes on the leader alone");
    let diverged_size = log_end(c.node(old), "diverge");
    c.node(old).kill();
    for f in &followers {
        signal(c.node(*f), libc::SIGCONT);
    }
    let observer = followers[0];
    let (after, _) = c.wait_view(observer, "a new leader", Duration::from_secs(20), |v| {
        partition0(v, "diverge").is_some_and(|p| p.leader >= 0 && p.leader != old)
    });
    let new = partition0(&after, "diverge").expect("partition").leader;
    eprintln!("leader {old} died with 3 unreplicated records; {new} leads now");
    produce_to_new_leader(c.node(new), "diverge", -1, &["c", "d"]);
    c.node(old).restart();
    wait_fully_replicated(&mut c, "diverge", Duration::from_secs(30));
    let size = wait_identical_logs(&mut c, "diverge", Duration::from_secs(30));
    assert_ne!(size as u64, diverged_size, "the old leader's log changed");
    let read = {
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", c.bootstrap())
            .set("group.id", "rivulet-diverge-check")
            // No commits: there is no group coordinator yet, and closing a consumer with
            // offsets to commit waits for one until session.timeout.ms.
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        assign(&consumer, "diverge", [0], Offset::Beginning);
        support::consume_n(&consumer, 4, Duration::from_secs(20))
    };
    let values: Vec<&str> = read
        .iter()
        .map(|m| std::str::from_utf8(m.payload().unwrap_or_default()).expect("utf8"))
        .collect();
    assert_eq!(values, vec!["a", "b", "c", "d"]);
}

#[test]
fn min_insync_replicas_refuses_acks_all_writes_until_the_isr_grows_back() {
    let mut c = TestCluster::start(3, SETTINGS);
    let bootstrap = c.bootstrap();
    create(&bootstrap, "strict", 1, 3, &[("min.insync.replicas", "3")]);
    let view = wait_fully_replicated(&mut c, "strict", Duration::from_secs(20));
    let leader = partition0(&view, "strict").expect("partition").leader;
    produce_to_new_leader(c.node(leader), "strict", -1, &["1"]);
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    c.node(follower).kill();
    c.wait_view(
        leader,
        "the dead follower out of the ISR",
        Duration::from_secs(20),
        |v| partition0(v, "strict").is_some_and(|p| p.isr.len() == 2),
    );
    // The leader acts on the smaller ISR once it has applied the committed change, a moment
    // after its metadata shows it.
    let not_enough_replicas = 19;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = produce_direct(c.node(leader), "strict", -1, &["2"])[0];
        if code == not_enough_replicas {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=all with 2 of min.insync.replicas=3 in sync answered {code}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        produce_direct(c.node(leader), "strict", 1, &["3"]),
        vec![0],
        "acks=1 does not need the ISR"
    );
    c.node(follower).restart();
    let (_, took) = c.wait_view(
        leader,
        "the follower back in the ISR",
        Duration::from_secs(30),
        |v| partition0(v, "strict").is_some_and(|p| p.isr.len() == 3),
    );
    eprintln!("the restarted follower rejoined the ISR {took:?} after it answered");
    assert_eq!(
        produce_direct(c.node(leader), "strict", -1, &["4"]),
        vec![0]
    );
    wait_identical_logs(&mut c, "strict", Duration::from_secs(10));
}

#[test]
fn a_follower_that_stops_fetching_leaves_the_isr_and_returns_once_caught_up() {
    let mut settings = SETTINGS.to_vec();
    // The lag bound well below the session timeout, so the ISR shrinks for lag, not fencing.
    settings.retain(|(k, _)| *k != "broker.session.timeout.ms");
    settings.push(("broker.session.timeout.ms", "20000"));
    settings.push(("replica.lag.time.max.ms", "1500"));
    let mut c = TestCluster::start(3, &settings);
    let bootstrap = c.bootstrap();
    create(&bootstrap, "laggy", 1, 3, &[]);
    let view = wait_fully_replicated(&mut c, "laggy", Duration::from_secs(20));
    let leader = partition0(&view, "laggy").expect("partition").leader;
    // Stop the active controller when it is a follower: the leader's AlterPartition then first
    // reaches a controller that does not answer, and must find the next one.
    let follower = if view.controller != leader && view.controller > 0 {
        view.controller
    } else {
        (1..=3).find(|id| *id != leader).expect("a follower")
    };
    signal(c.node(follower), libc::SIGSTOP);
    let stopped = Instant::now();
    produce_to_new_leader(c.node(leader), "laggy", 1, &["x", "y"]);
    let (shrunk, _) = c.wait_view(
        leader,
        "the ISR without the stopped follower",
        // Lag bound, then (when the stopped node was the controller) a controller failover:
        // still well before the 20 s session would fence it.
        Duration::from_secs(18),
        |v| partition0(v, "laggy").is_some_and(|p| p.isr.len() == 2 && !p.isr.contains(&follower)),
    );
    let took = stopped.elapsed();
    eprintln!(
        "ISR shrank {took:?} after the follower stopped: {:?}",
        partition0(&shrunk, "laggy")
    );
    assert!(
        shrunk.brokers.contains(&follower),
        "shrunk for lag, not fenced"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "not before the lag bound"
    );
    signal(c.node(follower), libc::SIGCONT);
    let (_, took) = c.wait_view(
        leader,
        "the follower back in the ISR",
        Duration::from_secs(15),
        |v| partition0(v, "laggy").is_some_and(|p| p.isr.len() == 3),
    );
    eprintln!("ISR grew back {took:?} after the follower resumed");
    wait_identical_logs(&mut c, "laggy", Duration::from_secs(10));
}

/// A produce request on `client` of one record `value` to partition 0, with `timeout_ms` for
/// acks=all; returns its correlation id without waiting for the answer.
fn send_produce(
    client: &mut RawClient,
    topic: &str,
    acks: i16,
    value: &str,
    timeout_ms: i32,
) -> i32 {
    let batch = encode_batch(
        &[TestMessage {
            partition: 0,
            key: Vec::new(),
            value: value.as_bytes().to_vec(),
            headers: Vec::new(),
            timestamp: support::now_ms(),
        }],
        rivulet_protocol::kafka_protocol::records::Compression::None,
        None,
    );
    client.send_request(
        rivulet_protocol::kafka_protocol::messages::ApiKey::Produce,
        9,
        &produce_request(topic, 0, batch, acks).with_timeout_ms(timeout_ms),
    )
}

/// `(error code, base offset)` of the produce answer to `id`.
fn recv_produce(client: &mut RawClient, id: i32) -> (i16, i64) {
    let response: rivulet_protocol::kafka_protocol::messages::ProduceResponse = client
        .recv_response(
            rivulet_protocol::kafka_protocol::messages::ApiKey::Produce,
            9,
            id,
        );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Produce requests pipelined on one connection append in order, but an acks=all request
/// waiting for a stopped follower does not hold back the append of the next one (only its
/// answer, which comes in order): the replication waits of a connection's requests overlap.
#[test]
fn an_acks_all_wait_does_not_hold_back_the_next_append_of_its_connection() {
    // The stopped follower must stay in the ISR while the test looks: with the 3 s session
    // timeout of SETTINGS, a loaded machine took long enough for the controller to fence it,
    // which shrinks the ISR and lets the acks=all request be answered early.
    let settings: Vec<(&str, &str)> = SETTINGS
        .iter()
        .map(|&(k, v)| {
            if k == "broker.session.timeout.ms" {
                (k, "30000")
            } else {
                (k, v)
            }
        })
        .collect();
    let mut c = TestCluster::start(3, &settings);
    let bootstrap = c.bootstrap();
    create(&bootstrap, "overlap", 1, 3, &[]);
    let view = wait_fully_replicated(&mut c, "overlap", Duration::from_secs(20));
    let leader = partition0(&view, "overlap").expect("partition").leader;
    // A follower that is not the active controller, so stopping it leaves the quorum alone.
    let follower = (1..=3)
        .find(|id| *id != leader && *id != view.controller)
        .expect("a follower");
    produce_to_new_leader(c.node(leader), "overlap", -1, &["warm-up"]);
    signal(c.node(follower), libc::SIGSTOP);
    let mut pipelined = RawClient::connect(c.node(leader).addr());
    let waiting = send_produce(&mut pipelined, "overlap", -1, "acks=all", 20_000);
    let next = send_produce(&mut pipelined, "overlap", 1, "acks=1 behind it", 20_000);
    std::thread::sleep(Duration::from_millis(300));
    let mut other = RawClient::connect(c.node(leader).addr());
    let id = send_produce(&mut other, "overlap", 1, "from another connection", 20_000);
    let (code, third_offset) = recv_produce(&mut other, id);
    pipelined.set_read_timeout(Duration::from_millis(100));
    let early = pipelined.read_outcome();
    signal(c.node(follower), libc::SIGCONT);
    assert_eq!(code, 0, "acks=1 from another connection");
    assert!(
        matches!(early, support::ReadOutcome::TimedOut),
        "the acks=all request waits for the stopped follower: {early:?}"
    );
    assert_eq!(
        third_offset, 3,
        "both pipelined requests appended (offsets 1 and 2) while the first waits"
    );
    pipelined.set_read_timeout(Duration::from_secs(20));
    assert_eq!(
        recv_produce(&mut pipelined, waiting),
        (0, 1),
        "acks=all once replicated"
    );
    assert_eq!(
        recv_produce(&mut pipelined, next),
        (0, 2),
        "answers in request order"
    );
    wait_identical_logs(&mut c, "overlap", Duration::from_secs(10));
}

#[test]
fn a_rolling_restart_with_controlled_shutdown_fails_no_write() {
    let mut c = TestCluster::start(3, SETTINGS);
    let bootstrap = c.bootstrap();
    create(&bootstrap, "rolling", 1, 3, &[("min.insync.replicas", "2")]);
    wait_fully_replicated(&mut c, "rolling", Duration::from_secs(20));
    let (producer, recorder) = numbered_producer(&bootstrap);
    let mut sent = 0usize;
    let send_for =
        |d: Duration, sent: &mut usize| send_numbers(&producer, &recorder, "rolling", 500, sent, d);
    send_for(Duration::from_secs(1), &mut sent);
    // Restart every node in turn, the leader of the moment first, each with SIGTERM.
    let mut order: Vec<i32> = Vec::new();
    for _ in 0..3 {
        let observer = running(&mut c, 0);
        let view = c.view(observer);
        let leader = partition0(&view, "rolling").expect("partition").leader;
        let next = if order.contains(&leader) {
            (1..=3)
                .find(|id| !order.contains(id))
                .expect("a node not restarted yet")
        } else {
            leader
        };
        order.push(next);
        let acked_before = recorder.acked();
        eprintln!("SIGTERM to node {next} (leader {leader}), {acked_before} acknowledged so far");
        c.node(next).terminate_cleanly();
        let observer = running(&mut c, next);
        let view = c.view(observer);
        let p = partition0(&view, "rolling").expect("partition");
        assert_ne!(p.leader, next, "leadership moved before node {next} exited");
        assert!(
            p.leader >= 0,
            "the partition has a leader while node {next} is down"
        );
        send_for(Duration::from_secs(2), &mut sent);
        c.node(next).restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            send_for(Duration::from_millis(200), &mut sent);
            let v = c.view(observer);
            if partition0(&v, "rolling").is_some_and(|p| p.isr.len() == 3) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {next} did not rejoin the ISR"
            );
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every message delivered");
    producer.poll(Duration::ZERO);
    let reports = recorder.take();
    let failed: Vec<&support::Delivery> = reports.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "failed deliveries: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert_eq!(reports.len(), sent, "a report for every message");
    let read = read_numbers(&c.bootstrap(), "rolling", sent);
    assert_eq!(
        read,
        (0..sent as u64).collect::<Vec<_>>(),
        "every message, once, in order"
    );
    eprintln!("{sent} messages through a rolling restart of {order:?}, none failed");
}
