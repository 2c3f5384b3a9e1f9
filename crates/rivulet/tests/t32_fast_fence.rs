//! A killed broker is fenced as soon as its process dies, with the DEFAULT configuration
//! (`broker.session.timeout.ms` = 9000): three `rivulet server` processes, each broker and
//! controller, a topic with replication factor 3. kill -9 of a partition leader that is not the
//! active controller, and of the active controller while it leads a partition, each gives the
//! partition a new leader well before the session timeout: the dead broker's session streams
//! to the voters closed when its process died. The killed node then restarts and rejoins
//! (unfenced, back in every ISR). A node stopped with SIGTERM is fenced once, by its
//! controlled shutdown, and its streams closing afterwards fence nothing more.
//!
//! Each test prints the measured kill-to-new-leader times.

mod support;

use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use support::cluster::{ClusterView, PartitionView, TestCluster};
use support::{admin_options, block_on, OP_TIMEOUT};

/// Far below the 9 s session timeout, which a fence by session expiry could not beat; the
/// target is 3 s (the election after a controller death is 1.5 to 2 s of it).
const BOUND: Duration = Duration::from_secs(5);

/// How many kills each test makes (each one then restarts the victim).
const ROUNDS: usize = 3;

const TOPIC: &str = "fast-fence";
const PARTITIONS: i32 = 6;

/// One cluster at a time: the tests measure failover times, which two clusters sharing two
/// cores would distort.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Three nodes with the default configuration, and the topic created and fully in sync.
fn cluster() -> TestCluster {
    let mut c = TestCluster::start(3, &[]);
    let bootstrap = c.bootstrap();
    create(&bootstrap, TOPIC, PARTITIONS, 3);
    c.wait_view(1, "every replica in sync", Duration::from_secs(30), |v| {
        in_sync(v, &[1, 2, 3])
    });
    c
}

/// Creates a topic, retrying what a client or a loaded machine can fail transiently.
fn create(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for attempt in 1..=5 {
        match block_on(
            "create topic",
            OP_TIMEOUT,
            admin.create_topics([&topic], &admin_options()),
        ) {
            Ok(results) => match &results[0] {
                Ok(_) => return,
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) if attempt > 1 => {
                    return
                }
                // A broker whose heartbeat was late is fenced for a moment.
                Err((t, rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor))
                    if attempt < 5 =>
                {
                    eprintln!("creating {t}: too few unfenced brokers; retrying");
                    std::thread::sleep(Duration::from_secs(2));
                }
                Err((t, e)) => panic!("creating {t}: {e}"),
            },
            // librdkafka may retire the bootstrap handle the request was on.
            Err(e) if attempt < 5 => eprintln!("create_topics attempt {attempt}: {e}; retrying"),
            Err(e) => panic!("create_topics: {e}"),
        }
    }
}

fn partitions(v: &ClusterView) -> &[PartitionView] {
    v.topics.get(TOPIC).map_or(&[], |(_, p)| p.as_slice())
}

/// Every broker of `brokers` is listed (unfenced) and in the ISR of every partition, and every
/// partition has a leader.
fn in_sync(v: &ClusterView, brokers: &[i32]) -> bool {
    let parts = partitions(v);
    parts.len() == PARTITIONS as usize
        && brokers.iter().all(|b| v.brokers.contains(b))
        && parts
            .iter()
            .all(|p| p.leader >= 0 && brokers.iter().all(|b| p.isr.contains(b)))
}

/// Kills `victim` (kill -9), which leads partition `index`; waits on `observer` until another
/// ISR member leads it; returns how long that took. Then restarts `victim` and waits until it
/// is back: unfenced and in every ISR.
fn kill_and_measure(c: &mut TestCluster, victim: i32, index: usize, what: &str) -> Duration {
    // Every node's view in sync first: the victim's view is the one compared with after.
    for id in 1..=3 {
        c.wait_view(id, "every replica in sync", Duration::from_secs(30), |v| {
            in_sync(v, &[1, 2, 3])
        });
    }
    let before = c.view(victim);
    let p = partitions(&before)[index].clone();
    assert_eq!(
        p.leader, victim,
        "{what}: the victim leads partition {index}"
    );
    let observer = (1..=3).find(|id| *id != victim).expect("another node");
    let started = Instant::now();
    c.node(victim).kill();
    let (after, _) = c.wait_view(
        observer,
        "a new leader for the killed broker's partition",
        Duration::from_secs(30),
        |v| {
            partitions(v)
                .get(index)
                .is_some_and(|q| q.leader >= 0 && q.leader != victim)
        },
    );
    let took = started.elapsed();
    let q = &partitions(&after)[index];
    eprintln!(
        "{what}: killed node {victim} (leader of {TOPIC}-{index} at epoch {}); node {} leads it \
         at epoch {} after {took:?}",
        p.leader_epoch, q.leader, q.leader_epoch
    );
    assert!(
        p.isr.contains(&q.leader),
        "{what}: the new leader came from the ISR: before {p:?}, after {q:?}"
    );
    assert!(
        q.leader_epoch > p.leader_epoch,
        "{what}: the leader epoch moved on"
    );
    assert!(
        took < BOUND,
        "{what}: a new leader after {took:?}, not before {BOUND:?}: the fence waited for the \
         session timeout"
    );
    // The dead broker is fenced: out of the brokers and of every ISR it could leave.
    let (fenced, _) = c.wait_view(observer, "the dead broker fenced", BOUND, |v| {
        !v.brokers.contains(&victim)
    });
    for q in partitions(&fenced) {
        assert_ne!(q.leader, victim, "{what}: the dead broker leads nothing");
    }

    // The killed node restarts and rejoins.
    c.node(victim).restart();
    c.wait_view(
        observer,
        "the restarted broker unfenced and back in every ISR",
        Duration::from_secs(60),
        |v| in_sync(v, &[1, 2, 3]),
    );
    for id in 1..=3 {
        c.wait_view(
            id,
            "every node's metadata in sync",
            Duration::from_secs(30),
            |v| in_sync(v, &[1, 2, 3]),
        );
    }
    took
}

fn report(what: &str, times: &[Duration]) {
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    eprintln!("{what}: kill-to-new-leader times (ms): {ms:?}");
}

#[test]
fn killing_a_leader_that_is_not_the_controller_moves_its_partitions_at_once() {
    let _one = one_at_a_time();
    let mut c = cluster();
    let mut times = Vec::new();
    for round in 1..=ROUNDS {
        let view = c.view(1);
        let controller = view.controller;
        let (index, victim) = partitions(&view)
            .iter()
            .enumerate()
            .find(|(_, p)| p.leader != controller && p.leader >= 0)
            .map(|(i, p)| (i, p.leader))
            .expect("a partition led by a broker that is not the controller");
        let what = format!("round {round} (controller {controller})");
        times.push(kill_and_measure(&mut c, victim, index, &what));
    }
    report("leader, not the controller", &times);
}

#[test]
fn killing_the_active_controller_that_leads_a_partition_moves_it_at_once() {
    let _one = one_at_a_time();
    let mut c = cluster();
    let mut times = Vec::new();
    for round in 1..=ROUNDS {
        // The active controller, as every node sees it, and a partition it leads.
        let (view, _) = c.wait_view(
            1,
            "an active controller leading a partition",
            Duration::from_secs(30),
            |v| v.controller >= 0 && partitions(v).iter().any(|p| p.leader == v.controller),
        );
        let controller = view.controller;
        for id in [2, 3] {
            c.wait_view(
                id,
                "the same active controller",
                Duration::from_secs(10),
                |v| v.controller == controller,
            );
        }
        let index = partitions(&view)
            .iter()
            .position(|p| p.leader == controller)
            .expect("a partition the controller leads");
        let what = format!("round {round} (the active controller)");
        times.push(kill_and_measure(&mut c, controller, index, &what));
    }
    report("the active controller", &times);
}

#[test]
fn a_terminated_node_is_fenced_by_its_controlled_shutdown_alone() {
    let _one = one_at_a_time();
    let mut c = cluster();
    let controller = c.view(1).controller;
    let victim = (1..=3).find(|id| *id != controller).expect("another node");
    c.node(victim).terminate_cleanly();
    let (_, took) = c.wait_view(controller, "the stopped broker fenced", BOUND, |v| {
        !v.brokers.contains(&victim)
    });
    eprintln!("node {victim} stopped with SIGTERM: fenced, as seen {took:?} after its exit");
    // Its closed streams would be acted on within the grace (500 ms) and a tick: watch the
    // controller's log for longer than that.
    let closed = format!("broker {victim} fenced: its connection to the controller closed");
    let watch_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        let log = c.node(controller).log();
        assert!(
            !log.contains(&closed),
            "fenced a second time for its closed streams:\n{}",
            support::tail(&log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = c.node(controller).log();
    assert!(
        log.contains(&format!("controlled shutdown of broker {victim} complete")),
        "the controller fenced it by its controlled shutdown:\n{}",
        support::tail(&log, 30)
    );
    assert!(
        !log.contains("fencing a broker failed"),
        "no fencing error:\n{}",
        support::tail(&log, 30)
    );
    // It comes back as usual.
    c.node(victim).restart();
    c.wait_view(
        controller,
        "the restarted broker back in sync",
        Duration::from_secs(60),
        |v| in_sync(v, &[1, 2, 3]),
    );
}
