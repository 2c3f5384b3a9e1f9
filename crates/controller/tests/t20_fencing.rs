//! One test per fencing rule, through the gRPC service brokers use: each shows the refused
//! request and the Kafka error code it gets. (STALE_CONTROLLER_EPOCH is refused by the broker's
//! metadata follower, tested beside it; a deposed controller's writes in `t10_quorum`.)

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rivulet_controller::decisions::AlterPartition;
use rivulet_controller::{Assignment, ControllerClient, MetadataError, NewTopic, Voter};
use support::{registration, two_live_brokers, TestQuorum};

fn client(q: &TestQuorum, cluster_id: &str) -> ControllerClient {
    let voters: Vec<Voter> = q.voters().to_vec();
    ControllerClient::new(cluster_id.into(), &voters, Duration::from_secs(10)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_request_is_refused_with_inconsistent_cluster_id() {
    let q = TestQuorum::start(1).await;
    q.wait_for_leader(None).await;
    let e = client(&q, "some-other-cluster")
        .register_broker(&registration(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 104, "INCONSISTENT_CLUSTER_ID: {e}");
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_broker_epoch_is_refused() {
    let q = TestQuorum::start(1).await;
    q.wait_for_leader(None).await;
    let c = client(&q, "test-cluster");
    let (e1, _) = two_live_brokers(&c).await;
    let e = c.heartbeat(1, e1 - 1, 0).await.unwrap_err();
    assert!(
        matches!(e, MetadataError::Other { code: 77, .. }),
        "STALE_BROKER_EPOCH: {e:?}"
    );
    let e = c.allocate_producer_ids(1, e1 + 100).await.unwrap_err();
    assert_eq!(e.code(), 77, "STALE_BROKER_EPOCH: {e}");
    let e = c.heartbeat(9, 1, 0).await.unwrap_err();
    assert_eq!(e.code(), 102, "BROKER_ID_NOT_REGISTERED: {e}");
    // A second process taking the id while the first one's session is alive.
    let e = c.register_broker(&registration(1)).await.unwrap_err();
    assert_eq!(e.code(), 101, "DUPLICATE_BROKER_REGISTRATION: {e}");
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_partition_refuses_stale_leader_and_partition_epochs() {
    let q = TestQuorum::start(1).await;
    q.wait_for_leader(None).await;
    let c = client(&q, "test-cluster");
    let (e1, e2) = two_live_brokers(&c).await;
    let topic = NewTopic {
        name: "fenced".into(),
        assignment: Assignment::Manual(vec![vec![1, 2]]),
        configs: BTreeMap::new(),
    };
    let (results, _) = c.create_topics(&[topic], false).await.unwrap();
    let t = results.into_iter().next().unwrap().unwrap();
    let p = &t.partitions[0];
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 0));
    let request = |broker_id, broker_epoch, leader_epoch, partition_epoch| AlterPartition {
        broker_id,
        broker_epoch,
        topic_id: t.id,
        partition: 0,
        leader_epoch,
        partition_epoch,
        new_isr: vec![1],
    };
    // Not the leader.
    let e = c.alter_partition(&request(2, e2, 0, 0)).await.unwrap_err();
    assert_eq!(e.code(), 6, "NOT_LEADER_OR_FOLLOWER: {e}");
    // A valid shrink, then the same request again: its partition epoch is now stale.
    let (state, _) = c.alter_partition(&request(1, e1, 0, 0)).await.unwrap();
    assert_eq!((state.isr.clone(), state.partition_epoch), (vec![1], 1));
    let e = c.alter_partition(&request(1, e1, 0, 0)).await.unwrap_err();
    assert_eq!(e.code(), 95, "INVALID_UPDATE_VERSION: {e}");
    let e = c
        .alter_partition(&request(1, e1 - 1, 0, 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 77, "STALE_BROKER_EPOCH: {e}");
    // A request from an older leader epoch (as after a leader change) is fenced.
    let e = c.alter_partition(&request(1, e1, -1, 1)).await.unwrap_err();
    assert_eq!(e.code(), 74, "FENCED_LEADER_EPOCH: {e}");
    let e = c.alter_partition(&request(1, e1, 1, 1)).await.unwrap_err();
    assert_eq!(e.code(), 75, "UNKNOWN_LEADER_EPOCH: {e}");
    q.stop().await;
}
