//! `rivulet cluster status` and `rivulet cluster watch` against three `rivulet server`
//! processes: status shows the three brokers, the active controller and a topic's leaders and
//! ISRs; watch, started on the broker about to die, reports that broker fenced, the leaders
//! that moved and the ISRs that shrank, after moving to another broker. The active
//! controller's log says the same in readable lines. Status exits non-zero when no broker
//! answers.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rivulet_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::ResponseError;
use support::cluster::{ClusterView, TestCluster};
use support::{free_port, RawClient};

/// Fast failure detection, so a killed broker is fenced within about two seconds.
const SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "2000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.fetch.backoff.ms", "200"),
    ("replica.fetch.wait.max.ms", "200"),
];

const TOPIC: &str = "orders";

/// A `rivulet cluster watch` child whose stdout lines are collected by a thread; killed when
/// dropped, so a failing test leaves nothing behind.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(bootstrap: &str) -> Watch {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.args([
            "cluster",
            "watch",
            "--bootstrap",
            bootstrap,
            "--interval-ms",
            "200",
            // Generous: a killed broker resets its connections, so a dead one is noticed at
            // once; a slow answer on a loaded machine must not look like a death.
            "--timeout-ms",
            "3000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn rivulet cluster watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Watch { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until every one of `wanted` is part of some line; returns the lines.
    fn wait_for(&self, wanted: &[String], timeout: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|w| !lines.iter().any(|l| l.contains(w.as_str())))
                .collect();
            if missing.is_empty() {
                return lines;
            }
            assert!(
                start.elapsed() < timeout,
                "watch did not print {missing:?} within {timeout:?}; it printed:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `TOPIC` with 3 partitions on 3 replicas through node 1, retrying while a broker
/// is still fenced (a loaded machine delays heartbeats).
fn create_topic(c: &TestCluster) {
    for attempt in 1..=10 {
        let mut client = RawClient::connect(c.nodes[0].addr());
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(3)
                .with_replication_factor(3)]);
        let r: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
        let code = r.topics[0].error_code;
        if code == 0 || (attempt > 1 && code == ResponseError::TopicAlreadyExists.code()) {
            return;
        }
        assert!(
            code == ResponseError::InvalidReplicationFactor.code() && attempt < 10,
            "creating {TOPIC}: error {code}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn fully_replicated(v: &ClusterView) -> bool {
    v.brokers.len() == 3
        && v.topics.get(TOPIC).is_some_and(|(_, ps)| {
            ps.len() == 3 && ps.iter().all(|p| p.leader >= 0 && p.isr.len() == 3)
        })
}

fn status(bootstrap: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["cluster", "status", "--bootstrap", bootstrap])
        .stdin(Stdio::null())
        .output()
        .expect("run rivulet cluster status")
}

/// Whether a line of `report` starts with the words `cells`.
fn has_row(report: &str, cells: &[String]) -> bool {
    report.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() >= cells.len() && words.iter().zip(cells).all(|(w, c)| w == c)
    })
}

/// `[1,2,3]`.
fn ids(v: &[i32]) -> String {
    let inner: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[{}]", inner.join(","))
}

#[test]
fn status_and_watch_follow_a_broker_death() {
    let mut c = TestCluster::start(3, SETTINGS);
    create_topic(&c);
    let (view, _) = c.wait_view(1, "orders fully replicated", Duration::from_secs(30), |v| {
        fully_replicated(v)
    });
    let partitions = view.topics[TOPIC].1.clone();

    // Status: three brokers up, the controller, and every partition as Metadata shows it.
    let out = status(&c.nodes[1].bootstrap());
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "status failed: {report}");
    for node in &c.nodes {
        let row = [node.node_id().to_string(), node.bootstrap(), "up".into()];
        assert!(has_row(&report, &row), "no row {row:?} in:\n{report}");
    }
    let controller = view.controller;
    assert!(controller >= 1, "{view:?}");
    assert!(
        report.contains(&format!("Active controller: node {controller} (epoch ")),
        "{report}"
    );
    assert!(report.contains("Quorum voters: [1,2,3]"), "{report}");
    assert!(!report.contains("__consumer_offsets"), "{report}");
    for (i, p) in partitions.iter().enumerate() {
        let cells = [
            TOPIC.to_string(),
            i.to_string(),
            p.leader.to_string(),
            p.leader_epoch.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
        ];
        assert!(has_row(&report, &cells), "no row {cells:?} in:\n{report}");
    }

    // Watch from the broker about to die: a broker that leads a partition and is not the
    // active controller (so the fencing follows the session timeout, not an election).
    let victim = partitions
        .iter()
        .map(|p| p.leader)
        .find(|l| *l != controller)
        .expect("a partition led by a broker other than the controller");
    let others: Vec<String> = (1..=3)
        .filter(|id| *id != victim)
        .map(|id| c.node(id).bootstrap())
        .collect();
    let victim_address = c.node(victim).bootstrap();
    let watch = Watch::start(&format!("{victim_address},{}", others.join(",")));
    watch.wait_for(
        &[format!(
            "watching via {victim_address}: controller node {controller}"
        )],
        Duration::from_secs(20),
    );

    c.node(victim).kill();
    let mut wanted = vec![
        format!("lost contact with {victim_address}; now using "),
        format!("broker {victim} fenced"),
    ];
    for (i, p) in partitions.iter().enumerate() {
        if p.leader == victim {
            wanted.push(format!("leader of {TOPIC}-{i} moved {victim} -> "));
        }
        wanted.push(format!("ISR of {TOPIC}-{i} shrank to "));
    }
    let lines = watch.wait_for(&wanted, Duration::from_secs(30));
    // Every line starts with the local time, HH:MM:SS.mmm.
    for line in &lines {
        let b = line.as_bytes();
        assert!(
            b.len() > 13 && b[2] == b':' && b[5] == b':' && b[8] == b'.' && b[12] == b' ',
            "no timestamp: {line:?}"
        );
    }
    let lost = format!("lost contact with {victim_address}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(&lost)).count(),
        1,
        "said once: {lines:#?}"
    );
    // The new leaders are the ones the survivors report.
    let survivor = (1..=3).find(|id| *id != victim).expect("a survivor");
    let (after, _) = c.wait_view(
        survivor,
        "the victim's partitions led elsewhere",
        Duration::from_secs(30),
        |v| {
            v.topics[TOPIC]
                .1
                .iter()
                .all(|p| p.leader != victim && p.leader >= 0)
        },
    );
    for (i, p) in after.topics[TOPIC].1.iter().enumerate() {
        if partitions[i].leader == victim {
            let moved = format!(
                "leader of {TOPIC}-{i} moved {victim} -> {} at epoch {}",
                p.leader, p.leader_epoch
            );
            assert!(
                lines.iter().any(|l| l.ends_with(&moved)),
                "{moved:?} not in {lines:#?}"
            );
        }
    }

    // The active controller's log says the same, one readable line per event.
    let log = c.node(controller).log();
    let mut wanted_log = vec![format!("broker {victim} fenced")];
    for (i, p) in partitions.iter().enumerate() {
        if p.leader == victim {
            wanted_log.push(format!("leader of {TOPIC}-{i} moved {victim} -> "));
        }
    }
    wanted_log.push(format!("topic {TOPIC} created (3 partitions)"));
    for w in &wanted_log {
        assert!(log.contains(w.as_str()), "controller log lacks {w:?}");
    }
    assert!(
        c.nodes.iter().any(|n| n
            .log()
            .contains(&format!("controller elected: node {controller} at epoch"))),
        "no node logged its election"
    );

    // Status still answers through a survivor, and shows the victim fenced.
    let out = status(&format!("{victim_address},{}", others[0]));
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "status failed: {report}");
    let row = [victim.to_string(), victim_address, "fenced".into()];
    assert!(has_row(&report, &row), "no row {row:?} in:\n{report}");

    // The victim comes back: unfenced, and back in every ISR.
    c.node(victim).restart();
    let mut wanted = vec![format!("broker {victim} unfenced")];
    for i in 0..partitions.len() {
        wanted.push(format!("ISR of {TOPIC}-{i} expanded to "));
    }
    watch.wait_for(&wanted, Duration::from_secs(30));
    let (view, _) = c.wait_view(survivor, "a full ISR again", Duration::from_secs(30), |v| {
        fully_replicated(v)
    });

    // The active controller dies: another node is elected at a later epoch and fences it.
    let old_epoch = controller_epoch(&watch.lines(), controller);
    c.node(controller).kill();
    let mut wanted = vec![
        "controller elected: node ".to_string(),
        format!("broker {controller} fenced"),
    ];
    for (i, p) in view.topics[TOPIC].1.iter().enumerate() {
        if p.leader == controller {
            wanted.push(format!("leader of {TOPIC}-{i} moved {controller} -> "));
        }
    }
    let lines = watch.wait_for(&wanted, Duration::from_secs(30));
    let elected: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("controller elected: node "))
        .collect();
    let last = elected.last().expect("an election line");
    let (node, epoch) = parse_election(last);
    assert_ne!(node, controller, "{last}");
    assert!(epoch > old_epoch, "{last} after epoch {old_epoch}");
    eprintln!("watch printed:\n{}", lines.join("\n"));
    drop(watch);
}

/// The epoch `controller` was elected at, from the watch's first line.
fn controller_epoch(lines: &[String], controller: i32) -> i32 {
    let marker = format!("controller node {controller} at epoch ");
    let first = &lines[0];
    let at = first
        .find(&marker)
        .expect("the first line names the controller")
        + marker.len();
    first[at..]
        .split(';')
        .next()
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or_else(|| panic!("no epoch in {first:?}"))
}

/// `(node, epoch)` of a `controller elected: node N at epoch E` line.
fn parse_election(line: &str) -> (i32, i32) {
    let rest = &line[line
        .find("controller elected: node ")
        .expect("an election line")
        + 25..];
    let mut words = rest.split_whitespace();
    let node = words.next().and_then(|w| w.parse().ok());
    let epoch = words.nth(2).and_then(|w| w.parse().ok());
    match (node, epoch) {
        (Some(n), Some(e)) => (n, e),
        _ => panic!("cannot read {line:?}"),
    }
}

#[test]
fn status_fails_when_no_broker_answers() {
    let address = format!("127.0.0.1:{}", free_port());
    let out = status(&address);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to {address}")),
        "{err}"
    );
    assert!(err.contains("no broker answered"), "{err}");
}
