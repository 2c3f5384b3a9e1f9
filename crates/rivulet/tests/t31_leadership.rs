//! Leadership operations on a three-process cluster, seen through Metadata: ElectLeaders
//! PREFERRED moves leadership back to a restarted preferred replica; AlterPartitionReassignments
//! and ListPartitionReassignments change and show the replica set; a SIGTERM'd broker hands its
//! leaderships over before it exits (controlled shutdown), so the survivors name the new leaders
//! the moment it is gone, long before its session would have expired.
//!
//! librdkafka's admin client has none of these APIs: the requests are sent raw.

mod support;

use std::time::{Duration, Instant};

use rivulet_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use rivulet_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic,
};
use rivulet_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use rivulet_protocol::kafka_protocol::messages::list_partition_reassignments_response::OngoingTopicReassignment;
use rivulet_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    CreateTopicsRequest, CreateTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use support::cluster::{ClusterView, TestCluster};
use support::RawClient;

/// How long any wait on the cluster may take.
const WAIT: Duration = Duration::from_secs(30);

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn cluster(session_ms: u32) -> TestCluster {
    TestCluster::start(
        3,
        &[
            ("broker.session.timeout.ms", &session_ms.to_string()),
            ("broker.heartbeat.interval.ms", "500"),
        ],
    )
}

fn client(c: &TestCluster, id: i32) -> RawClient {
    RawClient::connect(c.nodes[(id - 1) as usize].addr())
}

/// Creates `topic` through node `via` with the replicas of each partition given (the first
/// leads), and waits until every node lists it.
fn create(c: &TestCluster, via: i32, topic: &str, assignment: &[&[i32]]) {
    let assignments = assignment
        .iter()
        .enumerate()
        .map(|(i, replicas)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(i as i32)
                .with_broker_ids(replicas.iter().map(|b| BrokerId(*b)).collect())
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(assignments)]);
    let r: CreateTopicsResponse = client(c, via).call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(
        r.topics[0].error_code, 0,
        "creating {topic}: {:?}",
        r.topics[0].error_message
    );
    for id in 1..=3 {
        c.wait_view(id, &format!("{topic} listed"), WAIT, |v| {
            v.topics.contains_key(topic)
        });
    }
}

/// ElectLeaders v2 of `election_type` for `partitions` of `topic` through node `via`; the
/// error code of each partition.
fn elect(
    c: &TestCluster,
    via: i32,
    election_type: i8,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(name(topic))
            .with_partitions(partitions.to_vec())]))
        .with_timeout_ms(10_000);
    let r: ElectLeadersResponse = client(c, via).call(ApiKey::ElectLeaders, 2, &request);
    assert_eq!(r.error_code, 0, "ElectLeaders: {r:?}");
    r.replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(|p| p.error_code))
        .collect()
}

/// AlterPartitionReassignments v0 of partition `partition` of `topic` to `target` (`None`
/// cancels) through node `via`; the partition's error code.
fn reassign(c: &TestCluster, via: i32, topic: &str, partition: i32, target: Option<&[i32]>) -> i16 {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    target.map(|t| t.iter().map(|b| BrokerId(*b)).collect()),
                )])]);
    let r: AlterPartitionReassignmentsResponse =
        client(c, via).call(ApiKey::AlterPartitionReassignments, 0, &request);
    assert_eq!(r.error_code, 0, "AlterPartitionReassignments: {r:?}");
    r.responses[0].partitions[0].error_code
}

/// ListPartitionReassignments v0 of every topic through node `via`.
fn list(c: &TestCluster, via: i32) -> Vec<OngoingTopicReassignment> {
    let r: ListPartitionReassignmentsResponse = client(c, via).call(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(None),
    );
    assert_eq!(r.error_code, 0, "ListPartitionReassignments: {r:?}");
    r.topics
}

fn ids(brokers: &[BrokerId]) -> Vec<i32> {
    brokers.iter().map(|b| b.0).collect()
}

/// Partition `i` of `topic` in `v`.
fn part(v: &ClusterView, topic: &str, i: usize) -> support::cluster::PartitionView {
    v.topics[topic].1[i].clone()
}

#[test]
fn preferred_election_moves_leadership_back_after_a_leader_restarts() {
    let mut c = cluster(3000);
    create(&c, 1, "pref", &[&[1, 2, 3], &[2, 3, 1]]);
    let (before, _) = c.wait_view(2, "preferred leaders", WAIT, |v| {
        part(v, "pref", 0).leader == 1 && part(v, "pref", 1).leader == 2
    });
    c.node(1).kill();
    let (moved, _) = c.wait_view(2, "pref-0 led by another broker", WAIT, |v| {
        let p = part(v, "pref", 0);
        p.leader != 1 && p.leader >= 0
    });
    let interim = part(&moved, "pref", 0);
    assert_eq!(interim.leader, 2, "the next replica in the ISR");
    c.node(1).restart();
    // Leadership does not come back by itself (the rebalance interval is five minutes), and
    // the returning broker must be in sync before it may lead: its follower catches up and the
    // leader takes it back into the ISR.
    c.wait_view(2, "broker 1 back in the ISR of pref-0", WAIT, |v| {
        v.brokers.contains(&1) && part(v, "pref", 0).isr.contains(&1)
    });
    assert_eq!(part(&c.view(2), "pref", 0).leader, 2);
    assert_eq!(
        elect(&c, 3, 0, "pref", &[0, 1]),
        vec![0, 84],
        "pref-1: ELECTION_NOT_NEEDED"
    );
    for id in 1..=3 {
        let (after, _) = c.wait_view(id, "pref-0 led by broker 1 again", WAIT, |v| {
            part(v, "pref", 0).leader == 1
        });
        let p = part(&after, "pref", 0);
        assert!(
            p.leader_epoch > interim.leader_epoch
                && interim.leader_epoch > part(&before, "pref", 0).leader_epoch,
            "each leader change bumps the leader epoch: {before:?} {interim:?} {p:?}"
        );
    }
    assert_eq!(
        elect(&c, 2, 0, "pref", &[0]),
        vec![84],
        "already the preferred leader"
    );
}

#[test]
fn reassignments_change_the_replica_set_clients_see() {
    let mut c = cluster(3000);
    create(&c, 1, "moves", &[&[1, 2]]);
    // A new order of in-sync replicas completes at once; the leader stays until a preferred
    // election moves it to the new first replica.
    assert_eq!(reassign(&c, 3, "moves", 0, Some(&[2, 1])), 0);
    let p = part(&c.view(3), "moves", 0);
    assert_eq!((p.replicas.clone(), p.leader), (vec![2, 1], 1));
    assert!(list(&c, 3).is_empty(), "nothing in progress");
    assert_eq!(elect(&c, 3, 0, "moves", &[0]), vec![0]);
    assert_eq!(part(&c.view(3), "moves", 0).leader, 2);
    // Shrinking onto an in-sync replica.
    assert_eq!(reassign(&c, 1, "moves", 0, Some(&[2])), 0);
    let p = part(&c.view(1), "moves", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone()), (vec![2], vec![2]));

    // Onto a broker that is down: the reassignment waits for it to join the ISR.
    c.node(3).kill();
    c.wait_view(1, "broker 3 fenced", WAIT, |v| v.brokers == vec![1, 2]);
    assert_eq!(reassign(&c, 1, "moves", 0, Some(&[2, 3])), 0);
    let p = part(&c.view(1), "moves", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3], vec![2], 2)
    );
    let (view, _) = c.wait_view(2, "the reassignment on node 2", WAIT, |v| {
        part(v, "moves", 0).replicas == vec![2, 3]
    });
    assert_eq!(part(&view, "moves", 0).isr, vec![2]);
    let ongoing = list(&c, 2);
    assert_eq!(ongoing.len(), 1, "{ongoing:?}");
    let o = &ongoing[0].partitions[0];
    assert_eq!(ongoing[0].name.0.as_str(), "moves");
    assert_eq!(
        (
            ids(&o.replicas),
            ids(&o.adding_replicas),
            ids(&o.removing_replicas)
        ),
        (vec![2, 3], vec![3], vec![])
    );
    // Cancelled: back to the replicas it had.
    assert_eq!(reassign(&c, 2, "moves", 0, None), 0);
    assert_eq!(part(&c.view(2), "moves", 0).replicas, vec![2]);
    assert!(list(&c, 2).is_empty());
    assert_eq!(
        reassign(&c, 2, "moves", 0, None),
        85,
        "NO_REASSIGNMENT_IN_PROGRESS"
    );
    assert_eq!(
        reassign(&c, 2, "moves", 0, Some(&[2, 9])),
        39,
        "INVALID_REPLICA_ASSIGNMENT"
    );
    assert_eq!(
        reassign(&c, 2, "nope", 0, Some(&[2])),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

#[test]
fn a_terminated_broker_hands_its_leaderships_over_before_it_exits() {
    const SESSION_MS: u32 = 30_000;
    let mut c = cluster(SESSION_MS);
    create(&c, 1, "cs", &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
    let (before, _) = c.wait_view(2, "every replica in sync", WAIT, |v| {
        (0..3).all(|i| part(v, "cs", i).isr.len() == 3)
    });
    let started = Instant::now();
    c.node(1).terminate_cleanly();
    let took = started.elapsed();
    // Right after the exit, without waiting: the survivors already name the new leaders.
    for id in [2, 3] {
        let v = c.view(id);
        let p0 = part(&v, "cs", 0);
        assert_eq!(
            p0.leader, 2,
            "node {id}: the next in-sync replica leads cs-0: {v:?}"
        );
        assert_eq!(p0.leader_epoch, part(&before, "cs", 0).leader_epoch + 1);
        for i in 0..3 {
            let p = part(&v, "cs", i);
            assert!(p.leader >= 0 && p.leader != 1, "node {id}: cs-{i}: {p:?}");
            assert!(!p.isr.contains(&1), "node {id}: cs-{i} ISR: {p:?}");
        }
    }
    assert!(
        took < Duration::from_millis(u64::from(SESSION_MS)),
        "the shutdown took {took:?}"
    );
    // And it is fenced: left out of the brokers at once, not after its session.
    let (_, fenced_after) = c.wait_view(2, "broker 1 left out", WAIT, |v| v.brokers == vec![2, 3]);
    assert!(
        fenced_after < Duration::from_secs(5),
        "fenced {fenced_after:?} after the exit"
    );
}
