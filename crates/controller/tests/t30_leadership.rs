//! Leadership operations through the gRPC service brokers use: controlled shutdown (the
//! heartbeat flag and its answer), ElectLeaders and AlterPartitionReassignments, each answered
//! after the change is committed, with the offset that committed it; and the automatic leader
//! rebalance timer of the active controller.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rivulet_controller::decisions::AlterPartition;
use rivulet_controller::{
    Assignment, ControllerClient, ElectionType, NewTopic, Reassignment, Registration, Voter,
};
use support::TestQuorum;

fn client(q: &TestQuorum) -> ControllerClient {
    let voters: Vec<Voter> = q.voters().to_vec();
    ControllerClient::new("test-cluster".into(), &voters, Duration::from_secs(10)).unwrap()
}

/// Registers and unfences brokers `ids`; returns their epochs in order.
async fn live_brokers(c: &ControllerClient, ids: &[i32]) -> Vec<i64> {
    let mut epochs = Vec::new();
    for &id in ids {
        let registration = Registration {
            broker_id: id,
            incarnation_id: uuid::Uuid::new_v4(),
            endpoints: vec![("PLAINTEXT".into(), "127.0.0.1".into(), 9092)],
            rack: None,
        };
        let epoch = c.register_broker(&registration).await.unwrap();
        // Caught up with its own registration, not further.
        let reply = c.heartbeat(id, epoch, epoch).await.unwrap();
        assert!(!reply.is_fenced, "broker {id} unfenced once caught up");
        epochs.push(epoch);
    }
    epochs
}

fn codes(results: &[rivulet_controller::PartitionResult]) -> Vec<i16> {
    results
        .iter()
        .map(|r| r.result.as_ref().map_or_else(|e| e.code(), |_| 0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leadership_before_letting_the_broker_stop() {
    let q = TestQuorum::start(1).await;
    let leader = q.wait_for_leader(None).await;
    let c = client(&q);
    let epochs = live_brokers(&c, &[1, 2, 3]).await;
    let topic = NewTopic {
        name: "orders".into(),
        assignment: Assignment::Manual(vec![vec![1, 2, 3], vec![2, 1, 3]]),
        configs: BTreeMap::new(),
    };
    let (results, _) = c.create_topics(&[topic], false).await.unwrap();
    assert!(results[0].is_ok());

    // The first shutdown heartbeat moves the leadership; the broker may not stop until the
    // other brokers have reported applying that move.
    let reply = c.heartbeat_shutdown(1, epochs[0], i64::MAX).await.unwrap();
    assert!(!reply.should_shut_down && !reply.is_fenced, "{reply:?}");
    let image = q.controller(leader).image();
    let p0 = image.partition("orders", 0).unwrap();
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert!(image.brokers[&1].in_controlled_shutdown);
    // Its routine heartbeat does not end the shutdown.
    let reply = c.heartbeat(1, epochs[0], i64::MAX).await.unwrap();
    assert!(!reply.should_shut_down);
    let applied = q.controller(leader).image().offset;
    c.heartbeat(2, epochs[1], applied).await.unwrap();
    let reply = c.heartbeat_shutdown(1, epochs[0], i64::MAX).await.unwrap();
    assert!(
        !reply.should_shut_down,
        "broker 3 has not reported the move yet"
    );
    c.heartbeat(3, epochs[2], applied).await.unwrap();
    let reply = c.heartbeat_shutdown(1, epochs[0], i64::MAX).await.unwrap();
    assert!(reply.should_shut_down && reply.is_fenced, "{reply:?}");
    let image = q.controller(leader).image();
    assert!(image.brokers[&1].fenced);
    // Fenced for good: caught up or not, this registration is not unfenced again.
    let reply = c.heartbeat(1, epochs[0], i64::MAX).await.unwrap();
    assert!(reply.is_fenced);

    // Its preferred partition cannot go back to it.
    let wanted = vec![("orders".to_string(), 0), ("orders".to_string(), 9)];
    let (results, offset) = c
        .elect_leaders(ElectionType::Preferred, Some(&wanted))
        .await
        .unwrap();
    assert_eq!(codes(&results), vec![80, 3]);
    assert_eq!(offset, -1, "nothing was written");
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_and_reassignments_commit_before_they_answer() {
    let q = TestQuorum::start(1).await;
    let leader = q.wait_for_leader(None).await;
    let c = client(&q);
    live_brokers(&c, &[1, 2, 3]).await;
    let topic = NewTopic {
        name: "moves".into(),
        assignment: Assignment::Manual(vec![vec![1, 2]]),
        configs: BTreeMap::new(),
    };
    c.create_topics(&[topic], false).await.unwrap();

    // Reorder (the target is in sync: completes at once), then elect the new preferred leader.
    let reorder = Reassignment {
        topic: "moves".into(),
        partition: 0,
        target: Some(vec![2, 1]),
    };
    let (results, offset) = c.alter_partition_reassignments(&[reorder]).await.unwrap();
    assert_eq!(codes(&results), vec![0]);
    assert!(q.controller(leader).image().offset >= offset && offset > 0);
    let p = q
        .controller(leader)
        .image()
        .partition("moves", 0)
        .unwrap()
        .clone();
    assert_eq!((p.replicas.clone(), p.leader), (vec![2, 1], 1));
    let (results, offset) = c
        .elect_leaders(ElectionType::Preferred, None)
        .await
        .unwrap();
    assert_eq!(codes(&results), vec![0]);
    let image = q.controller(leader).image();
    assert!(image.offset >= offset);
    let p = image.partition("moves", 0).unwrap();
    assert_eq!(p.leader, 2);

    // Moving to broker 3 waits for it to join the ISR; cancelling goes back.
    let to_three = Reassignment {
        topic: "moves".into(),
        partition: 0,
        target: Some(vec![3]),
    };
    c.alter_partition_reassignments(&[to_three]).await.unwrap();
    let p = q
        .controller(leader)
        .image()
        .partition("moves", 0)
        .unwrap()
        .clone();
    assert_eq!(
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone()
        ),
        (vec![3, 2, 1], vec![3], vec![2, 1])
    );
    let cancel = Reassignment {
        topic: "moves".into(),
        partition: 0,
        target: None,
    };
    let (results, _) = c
        .alter_partition_reassignments(&[cancel.clone(), cancel])
        .await
        .unwrap();
    assert_eq!(
        codes(&results),
        vec![0, 85],
        "the second finds nothing to cancel"
    );
    let p = q
        .controller(leader)
        .image()
        .partition("moves", 0)
        .unwrap()
        .clone();
    assert_eq!((p.replicas, p.leader), (vec![2, 1], 2));
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebalance_timer_gives_leadership_back_to_the_preferred_replica() {
    let q = TestQuorum::start_with(1, |c| {
        c.settings.leader_imbalance_check_interval = Duration::from_millis(200);
    })
    .await;
    let leader = q.wait_for_leader(None).await;
    let c = client(&q);
    live_brokers(&c, &[1, 2]).await;
    let topic = NewTopic {
        name: "balance".into(),
        assignment: Assignment::Manual(vec![vec![1, 2]]),
        configs: BTreeMap::new(),
    };
    c.create_topics(&[topic], false).await.unwrap();
    // Broker 1 stops (controlled shutdown) and comes back as a new process: broker 2 leads.
    let epoch = q.controller(leader).image().brokers[&1].epoch;
    while !c
        .heartbeat_shutdown(1, epoch, i64::MAX)
        .await
        .unwrap()
        .should_shut_down
    {
        let applied = q.controller(leader).image().offset;
        let e2 = q.controller(leader).image().brokers[&2].epoch;
        c.heartbeat(2, e2, applied).await.unwrap();
    }
    live_brokers(&c, &[1]).await;
    let p = q
        .controller(leader)
        .image()
        .partition("balance", 0)
        .unwrap()
        .clone();
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    // Nothing moves while broker 1 is out of the ISR (a few rebalance rounds pass: there is no
    // event to wait for when nothing must happen); once the leader takes it back, the timer
    // hands leadership to it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        q.controller(leader)
            .image()
            .partition("balance", 0)
            .unwrap()
            .leader,
        2
    );
    let e2 = q.controller(leader).image().brokers[&2].epoch;
    c.alter_partition(&AlterPartition {
        broker_id: 2,
        broker_epoch: e2,
        topic_id: q.controller(leader).image().topics["balance"].id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![1, 2],
    })
    .await
    .unwrap();
    let deadline = Instant::now() + support::WAIT;
    loop {
        let p = q
            .controller(leader)
            .image()
            .partition("balance", 0)
            .unwrap()
            .clone();
        if p.leader == 1 {
            assert_eq!(p.isr, vec![1, 2]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rebalance within {:?}: {p:?}",
            support::WAIT
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    q.stop().await;
}
