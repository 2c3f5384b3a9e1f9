//! A 3-voter quorum in one process on loopback: election, commit, failover with no lost
//! records, a cut-off old leader unable to commit, restart from disk, snapshots and log
//! compaction.

mod support;

use std::time::Duration;

use rivulet_controller::{MetadataError, TopicRef};
use support::{topic, TestQuorum};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_one_leader_and_commits_on_every_voter() {
    let q = TestQuorum::start(3).await;
    let leader = q.wait_for_leader(None).await;
    let (results, offset) = q
        .controller(leader)
        .create_topics(vec![topic("orders", 3)], false)
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    q.wait_all_applied(offset).await;
    for id in q.running() {
        let image = q.controller(id).image();
        assert!(image.topics.contains_key("orders"), "node {id}");
        assert_eq!(image.controller_id, leader);
    }
    // A follower refuses writes and names the leader.
    let follower = q.running().into_iter().find(|id| *id != leader).unwrap();
    let e = q
        .controller(follower)
        .create_topics(vec![topic("x", 1)], false)
        .await
        .unwrap_err();
    assert_eq!(e, MetadataError::NotController { leader });
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_loses_no_committed_record() {
    let mut q = TestQuorum::start(3).await;
    q.wait_for_leader(None).await;
    let mut names = Vec::new();
    for i in 0..20 {
        let name = format!("t{i}");
        q.create_on_leader(&name).await;
        names.push(name);
    }
    // Under load a re-election may have happened meanwhile: kill whoever leads now.
    let first = q.wait_for_leader(None).await;
    let before = q.controller(first).image().controller_epoch;
    let started = std::time::Instant::now();
    q.kill(first).await;
    let second = q.wait_for_leader(Some(first)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "new controller after {elapsed:?}"
    );
    let (r, offset) = q
        .controller(second)
        .create_topics(vec![topic("after", 1)], false)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    q.wait_all_applied(offset).await;
    let image = q.controller(second).image();
    assert!(image.controller_epoch > before, "the epoch moved on");
    for n in &names {
        assert!(image.topics.contains_key(n), "{n} survived the failover");
    }
    // The old leader comes back from its sled directory and catches up.
    q.restart(first).await;
    q.wait_all_applied(offset).await;
    assert_eq!(q.controller(first).image().topics.len(), names.len() + 1);
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_old_leader_cannot_commit() {
    let q = TestQuorum::start(3).await;
    let old = q.wait_for_leader(None).await;
    q.isolate(old);
    let e = refusal(
        q.controller(old)
            .create_topics(vec![topic("lost", 1)], false)
            .await,
    );
    assert!(
        matches!(
            e,
            MetadataError::NotController { .. } | MetadataError::Timeout(_)
        ),
        "{e:?}"
    );
    let new = q.wait_for_leader(Some(old)).await;
    let (r, offset) = q
        .controller(new)
        .create_topics(vec![topic("kept", 1)], false)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    q.heal();
    q.wait_all_applied(offset).await;
    for id in q.running() {
        let image = q.controller(id).image();
        assert!(image.topics.contains_key("kept"), "node {id}");
        assert!(
            !image.topics.contains_key("lost"),
            "node {id} kept an uncommitted write"
        );
    }
    // The deposed controller now refuses writes.
    let e = refusal(
        q.controller(old)
            .delete_topics(vec![TopicRef::Name("kept".into())])
            .await,
    );
    assert!(matches!(e, MetadataError::NotController { .. }), "{e:?}");
    q.stop().await;
}

/// The error of a request that must not have committed: the request's or its only topic's.
fn refusal(
    r: Result<rivulet_controller::quorum_controller::TopicResults, MetadataError>,
) -> MetadataError {
    match r {
        Err(e) => e,
        Ok((results, offset)) => {
            assert_eq!(offset, -1, "nothing was committed");
            results.into_iter().next().unwrap().unwrap_err()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_a_lagging_voter_installs_one() {
    let mut q = TestQuorum::start_with(3, |c| {
        c.snapshot_after_entries = 10;
        c.entries_kept_after_snapshot = 0;
    })
    .await;
    let leader = q.wait_for_leader(None).await;
    let lagging = q.running().into_iter().find(|id| *id != leader).unwrap();
    q.kill(lagging).await;
    let mut offset = 0;
    for i in 0..40 {
        offset = q.create_on_leader(&format!("s{i}")).await;
    }
    // Each voter snapshots on its own: check whichever leads now.
    let leader = q.wait_for_leader(None).await;
    let metrics = q
        .wait_metrics(leader, "a snapshot and purged log", |m| {
            m.snapshot.is_some() && m.purged.is_some()
        })
        .await;
    assert!(
        metrics.purged.unwrap().index > 10,
        "log compacted: {:?}",
        metrics.purged
    );
    // The lagging voter's next entries were purged: it catches up from a snapshot.
    q.restart(lagging).await;
    q.wait_all_applied(offset).await;
    assert_eq!(q.controller(lagging).image().topics.len(), 40);
    let m = q
        .wait_metrics(lagging, "a snapshot installed", |m| m.snapshot.is_some())
        .await;
    assert!(m.snapshot.is_some());
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_quorum_restarts_from_disk() {
    let mut q = TestQuorum::start(3).await;
    let leader = q.wait_for_leader(None).await;
    let (r, offset) = q
        .controller(leader)
        .create_topics(vec![topic("durable", 4)], false)
        .await
        .unwrap();
    let id = r[0].as_ref().unwrap().id;
    q.wait_all_applied(offset).await;
    for n in q.running() {
        q.kill(n).await;
    }
    for n in 1..=3 {
        q.restart(n).await;
    }
    q.wait_for_leader(None).await;
    q.wait_all_applied(offset).await;
    for n in q.running() {
        let image = q.controller(n).image();
        assert_eq!(image.topics["durable"].id, id, "node {n}");
        assert_eq!(image.topics["durable"].partitions.len(), 4);
    }
    q.stop().await;
}
