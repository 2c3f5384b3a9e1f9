//! Three `rivulet` processes on loopback forming one cluster (controller quorum + brokers):
//! topics created through any node appear on every node; kill -9 of a partition leader gives
//! the partition a new leader from its ISR within `broker.session.timeout.ms` plus one second;
//! the returning node is unfenced; producer ids never collide across brokers.

mod support;

use std::time::Duration;

use rdkafka::admin::{NewTopic, TopicReplication};
use support::cluster::TestCluster;
use support::{admin_options, block_on, OP_TIMEOUT};

const SESSION_MS: u64 = 3000;

/// The tests here run one at a time: one asserts a failover time, which three clusters (nine
/// processes) sharing two cores in parallel would measure rather than the failover.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn cluster() -> TestCluster {
    TestCluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
        ],
    )
}

fn admin_for(
    bootstrap: &str,
) -> rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> {
    rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Creates a topic through `bootstrap`. librdkafka 2.x retires its bootstrap broker handles once
/// it has learnt the cluster's brokers, and an admin request in flight on one fails with
/// "Broker handle destroyed": that (client-side) failure is retried, as an application would.
fn create(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let admin = admin_for(bootstrap);
    for attempt in 1..=5 {
        let outcome = block_on(
            "create topic",
            OP_TIMEOUT,
            admin.create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(rf))],
                &admin_options(),
            ),
        );
        match outcome {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) => {}
                        // An earlier attempt's request reached the controller after all.
                        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
                            if attempt > 1 => {}
                        Err((t, e)) => panic!("creating {t}: {e}"),
                    }
                }
                return;
            }
            Err(e) if attempt < 5 => eprintln!("create_topics attempt {attempt}: {e}; retrying"),
            Err(e) => panic!("create_topics: {e}"),
        }
    }
}

#[test]
fn topics_created_through_any_node_appear_on_every_node() {
    let _one = one_at_a_time();
    let mut c = cluster();
    let via_1 = c.node(1).bootstrap();
    let via_3 = c.node(3).bootstrap();
    create(&via_1, "from-one", 3, 3);
    create(&via_3, "from-three", 6, 2);
    let reference = c.view(1);
    for id in 1..=3 {
        let (view, _) = c.wait_view(id, "both topics", Duration::from_secs(10), |v| {
            v.topics.contains_key("from-one") && v.topics.contains_key("from-three")
        });
        assert_eq!(view.brokers, vec![1, 2, 3], "node {id}");
        assert_eq!(
            view.topics["from-one"], reference.topics["from-one"],
            "node {id}"
        );
        assert_eq!(
            view.topics["from-three"], reference.topics["from-three"],
            "node {id}"
        );
    }
    // Leaders are spread over the brokers, and replication factors hold.
    let (_, parts) = &reference.topics["from-three"];
    let mut leaders: Vec<i32> = parts.iter().map(|p| p.leader).collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders, vec![1, 2, 3]);
    assert!(parts
        .iter()
        .all(|p| p.replicas.len() == 2 && p.isr.len() == 2));
    // Replication factor above the broker count.
    let admin = admin_for(&via_1);
    let r = block_on(
        "create topic",
        OP_TIMEOUT,
        admin.create_topics(
            &[NewTopic::new("too-wide", 1, TopicReplication::Fixed(4))],
            &admin_options(),
        ),
    )
    .expect("create_topics");
    match &r[0] {
        Err((_, e)) => assert_eq!(
            *e,
            rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
        ),
        Ok(t) => panic!("{t} was created with replication factor 4 on 3 brokers"),
    }
}

#[test]
fn killing_a_partition_leader_moves_leadership_within_the_session_timeout() {
    let _one = one_at_a_time();
    let mut c = cluster();
    let bootstrap = c.bootstrap();
    create(&bootstrap, "orders", 3, 3);
    let (before, _) = c.wait_view(1, "orders on node 1", Duration::from_secs(10), |v| {
        v.topics.contains_key("orders")
    });
    let p0 = before.topics["orders"].1[0].clone();
    let victim = p0.leader;
    let controller_before = before.controller;
    eprintln!(
        "killing node {victim} (leader of orders-0 at epoch {}), controller is {controller_before}",
        p0.leader_epoch
    );
    c.node(victim).kill();
    let observer = (1..=3).find(|id| *id != victim).expect("another node");
    let bound = Duration::from_millis(SESSION_MS) + Duration::from_secs(1);
    let (after, took) = c.wait_view(
        observer,
        "a new leader for orders-0",
        Duration::from_secs(30),
        |v| {
            let p = &v.topics["orders"].1[0];
            p.leader != victim && p.leader >= 0 && !v.brokers.contains(&victim)
        },
    );
    let p = &after.topics["orders"].1[0];
    eprintln!(
        "orders-0: leader {} -> {} at epoch {} after {took:?}",
        victim, p.leader, p.leader_epoch
    );
    assert!(
        took <= bound,
        "new leader after {took:?}, more than {bound:?}"
    );
    assert!(
        p0.isr.contains(&p.leader),
        "the new leader {} came from the ISR {:?}",
        p.leader,
        p0.isr
    );
    assert!(
        p.leader_epoch > p0.leader_epoch,
        "the leader epoch moved on"
    );
    assert!(!p.isr.contains(&victim), "the dead broker left the ISR");
    // Every partition the victim led has moved.
    for part in &after.topics["orders"].1 {
        assert_ne!(part.leader, victim);
    }
    // Clients still acting on the old leadership are refused: the new leader fences the old
    // leader epoch, and a node that does not lead the partition says so.
    let new_leader = p.leader;
    assert_eq!(
        fetch_error(&c, new_leader, p0.leader_epoch),
        74,
        "FENCED_LEADER_EPOCH"
    );
    assert_eq!(
        fetch_error(&c, new_leader, p.leader_epoch + 1),
        75,
        "UNKNOWN_LEADER_EPOCH"
    );
    assert_eq!(fetch_error(&c, new_leader, p.leader_epoch), 0);
    let follower = (1..=3)
        .find(|id| *id != victim && *id != new_leader)
        .expect("a third node");
    assert_eq!(
        fetch_error(&c, follower, p.leader_epoch),
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
    // The returning node registers again and is unfenced.
    c.node(victim).restart();
    let (back, _) = c.wait_view(
        observer,
        "the restarted broker unfenced",
        Duration::from_secs(30),
        |v| v.brokers.contains(&victim),
    );
    assert_eq!(back.brokers, vec![1, 2, 3]);
    let (own, _) = c.wait_view(
        victim,
        "the restarted node's metadata",
        Duration::from_secs(10),
        |v| v.topics.contains_key("orders") && v.brokers.len() == 3,
    );
    assert_eq!(
        own.topics["orders"].0, before.topics["orders"].0,
        "same topic id"
    );
}

/// The error code of a Fetch of orders-0 sent to node `id` with `current_leader_epoch`.
fn fetch_error(c: &TestCluster, id: i32, current_leader_epoch: i32) -> i16 {
    use rivulet_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use rivulet_protocol::kafka_protocol::messages::{
        ApiKey, FetchRequest, FetchResponse, TopicName,
    };
    use rivulet_protocol::kafka_protocol::protocol::StrBytes;
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_partition_max_bytes(1024)])]);
    let mut client = support::RawClient::connect(c.nodes[(id - 1) as usize].addr());
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    response.responses[0].partitions[0].error_code
}

#[test]
fn producer_ids_from_different_brokers_never_collide() {
    let _one = one_at_a_time();
    use rivulet_protocol::kafka_protocol::messages::{
        ApiKey, InitProducerIdRequest, InitProducerIdResponse,
    };
    let c = cluster();
    let mut seen = std::collections::BTreeSet::new();
    for node in &c.nodes {
        let mut client = support::RawClient::connect(node.addr());
        for _ in 0..3 {
            let r: InitProducerIdResponse = client.call(
                ApiKey::InitProducerId,
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60000)
                    .with_producer_id(rivulet_protocol::kafka_protocol::messages::ProducerId(-1))
                    .with_producer_epoch(-1),
            );
            assert_eq!(r.error_code, 0);
            assert!(
                seen.insert(r.producer_id.0),
                "producer id {} handed out twice",
                r.producer_id.0
            );
        }
    }
}
