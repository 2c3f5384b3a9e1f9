//! Consumer groups with librdkafka (`rdkafka` StreamConsumer): partitions shared among the
//! members and moved when one leaves, committed offsets that survive a consumer restart,
//! cooperative-sticky rebalances that revoke only what moves, a static member that restarts
//! without a rebalance, and (on three processes) a group that carries on from its committed
//! offsets after its coordinator's broker is killed with SIGKILL.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::TopicPartitionList;
use support::cluster::TestCluster;
use support::{admin_options, block_on, TestBroker, OP_TIMEOUT};

/// A short initial rebalance delay so that a new group forms quickly (Kafka's default is 3 s).
const BROKER: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "300")];

/// What a member saw of rebalances, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(BTreeSet<i32>),
    Revoked(BTreeSet<i32>),
}

/// Records rebalance events (librdkafka still performs the (incremental) assign itself).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            self.0.lock().unwrap().push(Event::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            self.0
                .lock()
                .unwrap()
                .push(Event::Assigned(partitions(tpl)));
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

type Member = StreamConsumer<Recorder>;

/// Messages a test's members consumed: (partition, offset, value).
type Seen = Arc<Mutex<Vec<(i32, i64, Vec<u8>)>>>;

/// A group member with a small session timeout; `extra` overrides.
fn member(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> (Arc<Member>, Recorder) {
    let recorder = Recorder::default();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: Member = config
        .create_with_context(recorder.clone())
        .expect("consumer");
    (Arc::new(consumer), recorder)
}

/// Polls `consumer` on the runtime until `stop`, handing every message to `seen` (polling
/// is what drives librdkafka's rebalance callbacks).
fn drive(
    rt: &tokio::runtime::Runtime,
    consumer: Arc<Member>,
    seen: Seen,
    commit: bool,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(m) => {
                    seen.lock().unwrap().push((
                        m.partition(),
                        m.offset(),
                        m.payload().unwrap_or_default().to_vec(),
                    ));
                    if commit {
                        let _ = consumer.commit_message(&m, CommitMode::Sync);
                    }
                }
                Err(e) => eprintln!("consumer error: {e}"),
            }
        }
    })
}

fn assignment(consumer: &Member) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|tpl| partitions(&tpl))
        .unwrap_or_default()
}

/// Waits until `cond` holds over the members' assignments.
fn wait_assignments(
    members: &[&Member],
    what: &str,
    timeout: Duration,
    cond: impl Fn(&[BTreeSet<i32>]) -> bool,
) -> Vec<BTreeSet<i32>> {
    let start = Instant::now();
    loop {
        let now: Vec<BTreeSet<i32>> = members.iter().map(|m| assignment(m)).collect();
        if cond(&now) {
            return now;
        }
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}; assignments: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assignments that split `0..n` among all members, each getting `per` partitions.
fn split_evenly(a: &[BTreeSet<i32>], n: i32, per: usize) -> bool {
    let all: BTreeSet<i32> = a.iter().flatten().copied().collect();
    let total: usize = a.iter().map(|s| s.len()).sum();
    a.iter().all(|s| s.len() == per) && total == n as usize && all == (0..n).collect()
}

fn create(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for attempt in 1..=5 {
        let results = block_on(
            "create topic",
            OP_TIMEOUT,
            admin.create_topics([&topic], &admin_options()),
        )
        .expect("CreateTopics");
        // A broker whose heartbeats were late (a loaded CI machine) may be fenced for a
        // moment, leaving too few brokers to place the replicas: try again.
        let fenced = Err((
            name.to_string(),
            rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor,
        ));
        if results == vec![fenced] && attempt < 5 {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        assert_eq!(results, vec![Ok(name.to_string())]);
        return;
    }
}

/// Produces `values` round-robin over `partitions` partitions with acks=all.
fn produce(bootstrap: &str, topic: &str, partitions: i32, values: impl Iterator<Item = String>) {
    let broker_less = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .clone();
    let producer: rdkafka::producer::BaseProducer = broker_less.create().expect("producer");
    for (i, v) in values.enumerate() {
        let p = i as i32 % partitions;
        loop {
            match producer.send(BaseRecord::<(), String>::to(topic).payload(&v).partition(p)) {
                Ok(()) => break,
                Err((e, _)) => {
                    eprintln!("send: {e}");
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(OP_TIMEOUT)
        .expect("all messages acknowledged");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn three_members_share_six_partitions_and_a_leavers_partitions_move() {
    let broker = TestBroker::start_with(BROKER);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "shared", 6, 1);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<(Arc<Member>, Recorder)> =
        (0..3).map(|_| member(&bootstrap, "sharing", &[])).collect();
    let mut tasks = Vec::new();
    for (m, _) in &members {
        m.subscribe(&["shared"]).expect("subscribe");
        tasks.push(drive(&rt, Arc::clone(m), Arc::clone(&seen), false));
    }
    let refs: Vec<&Member> = members.iter().map(|(m, _)| m.as_ref()).collect();
    wait_assignments(&refs, "2 partitions each", Duration::from_secs(30), |a| {
        split_evenly(a, 6, 2)
    });
    // One member closes (LeaveGroup): the other two take its partitions.
    let stay: Vec<Arc<Member>> = members[..2].iter().map(|(m, _)| Arc::clone(m)).collect();
    let (leaver, _) = members.into_iter().nth(2).expect("third member");
    let leaving = tasks.pop().expect("third task");
    leaving.abort();
    let _ = rt.block_on(leaving);
    drop(leaver);
    let stay: Vec<&Member> = stay.iter().map(|m| m.as_ref()).collect();
    wait_assignments(&stay, "3 partitions each", Duration::from_secs(30), |a| {
        split_evenly(a, 6, 3)
    });
    for t in tasks {
        t.abort();
    }
}

#[test]
fn committed_offsets_survive_a_consumer_restart() {
    let broker = TestBroker::start_with(BROKER);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "resume", 3, 1);
    produce(&bootstrap, "resume", 3, (0..300).map(|i| format!("m{i}")));
    let rt = runtime();
    let _in_runtime = rt.enter();
    // The first consumer reads about half and commits each message it processed.
    let first_seen = Arc::new(Mutex::new(Vec::new()));
    let (first, _) = member(&bootstrap, "resumers", &[]);
    first.subscribe(&["resume"]).expect("subscribe");
    let task = drive(&rt, Arc::clone(&first), Arc::clone(&first_seen), true);
    let start = Instant::now();
    while first_seen.lock().unwrap().len() < 150 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "first consumer stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    task.abort();
    let _ = rt.block_on(task);
    drop(first);
    let first_seen: Vec<_> = first_seen.lock().unwrap().clone();
    let (second, _) = member(&bootstrap, "resumers", &[]);
    let mut wanted = TopicPartitionList::new();
    for p in 0..3 {
        wanted.add_partition("resume", p);
    }
    let committed = second
        .committed_offsets(wanted, OP_TIMEOUT)
        .expect("committed offsets");
    // Offsets committed are exactly one past the last message processed per partition.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in &first_seen {
        let e = last.entry(*p).or_insert(*o);
        *e = (*e).max(*o);
    }
    for e in committed.elements() {
        if let Some(o) = last.get(&e.partition()) {
            assert_eq!(
                e.offset(),
                rdkafka::Offset::Offset(o + 1),
                "partition {}",
                e.partition()
            );
        }
    }
    // A new consumer in the same group continues where the first stopped: together they read
    // every message exactly once.
    let second_seen = Arc::new(Mutex::new(Vec::new()));
    second.subscribe(&["resume"]).expect("subscribe");
    let task = drive(&rt, Arc::clone(&second), Arc::clone(&second_seen), true);
    let want = 300 - first_seen.len();
    let start = Instant::now();
    while second_seen.lock().unwrap().len() < want {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "second consumer read {} of {want}",
            second_seen.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    task.abort();
    let mut all: Vec<Vec<u8>> = first_seen.into_iter().map(|(_, _, v)| v).collect();
    all.extend(
        second_seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, v)| v.clone()),
    );
    assert_eq!(all.len(), 300, "a message was read twice");
    let distinct: BTreeSet<Vec<u8>> = all.into_iter().collect();
    assert_eq!(distinct.len(), 300);
}

#[test]
fn cooperative_sticky_revokes_only_the_partitions_that_move() {
    let broker = TestBroker::start_with(BROKER);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "sticky", 6, 1);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let (a, a_events) = member(&bootstrap, "cooperators", &cooperative);
    a.subscribe(&["sticky"]).expect("subscribe");
    let ta = drive(&rt, Arc::clone(&a), Arc::clone(&seen), false);
    wait_assignments(
        &[&a],
        "all six to the first member",
        Duration::from_secs(30),
        |s| s[0].len() == 6,
    );
    let (b, _) = member(&bootstrap, "cooperators", &cooperative);
    b.subscribe(&["sticky"]).expect("subscribe");
    let tb = drive(&rt, Arc::clone(&b), Arc::clone(&seen), false);
    let after = wait_assignments(&[&a, &b], "three each", Duration::from_secs(30), |s| {
        split_evenly(s, 6, 3)
    });
    // The first member gave up exactly the three partitions that moved, never all six, and
    // kept the others throughout.
    let events = a_events.events();
    let revoked: BTreeSet<i32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Revoked(p) => Some(p.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(revoked, after[1], "events: {events:?}");
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, Event::Revoked(p) if p.len() == 6)),
        "an eager revoke of everything: {events:?}"
    );
    ta.abort();
    tb.abort();
}

#[test]
fn a_static_member_restarts_within_its_session_without_a_rebalance() {
    let broker = TestBroker::start_with(BROKER);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "static", 4, 1);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let statics = |id: &'static str| [("group.instance.id", id), ("session.timeout.ms", "15000")];
    let (a, _) = member(&bootstrap, "statics", &statics("member-a"));
    let (b, b_events) = member(&bootstrap, "statics", &statics("member-b"));
    a.subscribe(&["static"]).expect("subscribe");
    b.subscribe(&["static"]).expect("subscribe");
    let ta = drive(&rt, Arc::clone(&a), Arc::clone(&seen), false);
    let tb = drive(&rt, Arc::clone(&b), Arc::clone(&seen), false);
    let before = wait_assignments(&[&a, &b], "two each", Duration::from_secs(30), |s| {
        split_evenly(s, 4, 2)
    });
    // Let the group settle, then restart member a: a static member sends no LeaveGroup.
    std::thread::sleep(Duration::from_millis(500));
    let b_before = b_events.events();
    ta.abort();
    drop(a);
    let (a2, _) = member(&bootstrap, "statics", &statics("member-a"));
    a2.subscribe(&["static"]).expect("subscribe");
    let ta2 = drive(&rt, Arc::clone(&a2), Arc::clone(&seen), false);
    let after = wait_assignments(
        &[&a2],
        "the old assignment back",
        Duration::from_secs(30),
        |s| !s[0].is_empty(),
    );
    assert_eq!(
        after[0], before[0],
        "the restarted member got other partitions"
    );
    // Member b saw no rebalance at all.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        b_events.events(),
        b_before,
        "member b went through a rebalance"
    );
    assert_eq!(assignment(&b), before[1]);
    ta2.abort();
    tb.abort();
}

/// Fast failure detection, as in the replication tests.
const CLUSTER: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.fetch.backoff.ms", "200"),
    ("replica.fetch.wait.max.ms", "200"),
    ("group.initial.rebalance.delay.ms", "300"),
];

#[test]
fn a_group_carries_on_from_its_committed_offsets_after_its_coordinator_is_killed() {
    let mut cluster = TestCluster::start(3, CLUSTER);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "orders", 6, 3);
    let total = 2000;
    produce(
        &bootstrap,
        "orders",
        6,
        (0..total / 2).map(|i| format!("o{i}")),
    );
    let rt = runtime();
    let _in_runtime = rt.enter();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (consumer, _) = member(&bootstrap, "failover", &[]);
    consumer.subscribe(&["orders"]).expect("subscribe");
    let task = drive(&rt, Arc::clone(&consumer), Arc::clone(&seen), true);
    let start = Instant::now();
    while seen.lock().unwrap().len() < 300 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the group did not start consuming"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The coordinator leads the group's partition of __consumer_offsets.
    let view = cluster.view(1);
    let (_, offsets_partitions) = &view.topics["__consumer_offsets"];
    let p = group_partition("failover", offsets_partitions.len() as i32);
    let coordinator = offsets_partitions[p as usize].leader;
    assert!(coordinator > 0);
    let committed_before = consumer.committed(OP_TIMEOUT).expect("committed");
    cluster.node(coordinator).kill();
    // Keep producing through the failover, then wait for everything.
    let survivors = cluster.bootstrap();
    produce(
        &survivors,
        "orders",
        6,
        (total / 2..total).map(|i| format!("o{i}")),
    );
    let start = Instant::now();
    loop {
        let distinct: BTreeSet<Vec<u8>> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, v)| v.clone())
            .collect();
        if distinct.len() == total {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "read {} of {total} distinct messages after the coordinator died",
            distinct.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    task.abort();
    // No message skipped, and per partition the messages came in offset order (a redelivery
    // after the failover restarts from a committed offset, never from beyond it).
    let seen = seen.lock().unwrap().clone();
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o, _) in &seen {
        by_partition.entry(*p).or_default().push(*o);
    }
    for (p, offsets) in &by_partition {
        for w in offsets.windows(2) {
            assert!(
                w[1] == w[0] + 1 || w[1] <= w[0],
                "partition {p}: skipped from offset {} to {}",
                w[0],
                w[1]
            );
        }
    }
    // The committed offsets never went backwards across the failover.
    let committed_after = consumer.committed(OP_TIMEOUT).expect("committed after");
    for e in committed_before.elements() {
        if let rdkafka::Offset::Offset(before) = e.offset() {
            let after = committed_after
                .find_partition(e.topic(), e.partition())
                .map(|a| a.offset());
            match after {
                Some(rdkafka::Offset::Offset(after)) => assert!(
                    after >= before,
                    "partition {}: committed offset went back from {before} to {after}",
                    e.partition()
                ),
                other => panic!(
                    "partition {}: committed {other:?} after failover",
                    e.partition()
                ),
            }
        }
    }
}

/// Kafka's partition of `group` in `__consumer_offsets` (`Utils.abs(hashCode) % n`).
fn group_partition(group: &str, n: i32) -> i32 {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    (if h == i32::MIN { 0 } else { h.abs() }) % n
}
