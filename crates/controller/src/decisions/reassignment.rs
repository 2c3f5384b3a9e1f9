//! Partition reassignment (KIP-455): AlterPartitionReassignments and its completion.
//!
//! ```text
//!  start     replicas = target + (current - target)   adding = target - current
//!                                                     removing = current - target
//!  ...       the leader brings the adding replicas in sync; AlterPartition adds them to the ISR
//!  complete  (once every adding replica is in the ISR, in that same change)
//!            replicas = target, ISR = ISR ∩ target, adding = removing = []
//!            a removed leader hands over to the first target replica in the ISR
//!  cancel    replicas = replicas - adding, ISR = ISR ∩ those, leader re-elected if it was
//!            an adding replica
//! ```
//!
//! A target already in the ISR completes at once. A new target while a reassignment is in
//! progress starts from the current replica set (which includes the replicas being added), as
//! Kafka does. The leader epoch moves on whenever the leader changes or replicas leave.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::{
    bump_epochs, find_partition, is_active, unclean_allowed, PartitionResult, Reassignment,
    Settings,
};
use crate::error::MetadataError;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::MetadataRecord;

/// The outcome of AlterPartitionReassignments: one result per request entry, in order, and one
/// record per changed partition (its final state when it is named more than once).
pub fn alter_partition_reassignments(
    image: &MetadataImage,
    requests: &[Reassignment],
    settings: &Settings,
) -> (Vec<PartitionResult>, Vec<MetadataRecord>) {
    // Partitions changed by earlier entries, in the order they were first changed.
    let mut changed: Vec<(Uuid, PartitionImage)> = Vec::new();
    let mut index: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut results = Vec::with_capacity(requests.len());
    for r in requests {
        let result = find_partition(image, &r.topic, r.partition).and_then(|(topic, p)| {
            let key = (topic.id, p.index);
            let current = index.get(&key).map_or(p, |i| &changed[*i].1);
            let next = match &r.target {
                Some(target) => reassign(image, topic, current, target)?,
                None => cancel(image, topic, current, settings)?,
            };
            if next != *current {
                let mut next = next;
                // One record per partition: its epochs move on once from the image's.
                bump_epochs(p, &mut next);
                match index.get(&key) {
                    Some(i) => changed[*i].1 = next,
                    None => {
                        index.insert(key, changed.len());
                        changed.push((topic.id, next));
                    }
                }
            }
            Ok(())
        });
        results.push(PartitionResult {
            topic: r.topic.clone(),
            partition: r.partition,
            result,
        });
    }
    let records = changed
        .into_iter()
        .map(|(id, p)| MetadataRecord::PartitionChange(p.to_record(id)))
        .collect();
    (results, records)
}

/// Checks a target replica list: not empty, no broker twice, every broker registered.
fn check_target(image: &MetadataImage, target: &[i32]) -> Result<(), MetadataError> {
    if target.is_empty() {
        return Err(MetadataError::InvalidReplicaAssignment(
            "The target replica list is empty.".into(),
        ));
    }
    if target.iter().collect::<HashSet<_>>().len() != target.len() {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "The target replica list {target:?} names a broker more than once."
        )));
    }
    if let Some(b) = target.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "The target replica list includes broker {b}, but no such broker is registered."
        )));
    }
    Ok(())
}

/// `p` reassigned to `target` (epochs unchanged: the caller bumps them).
fn reassign(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
    target: &[i32],
) -> Result<PartitionImage, MetadataError> {
    check_target(image, target).map_err(|e| match e {
        MetadataError::InvalidReplicaAssignment(why) => {
            MetadataError::InvalidReplicaAssignment(format!("{}-{}: {why}", topic.name, p.index))
        }
        other => other,
    })?;
    let current = &p.replicas;
    let mut next = p.clone();
    next.replicas = target
        .iter()
        .chain(current.iter().filter(|r| !target.contains(r)))
        .copied()
        .collect();
    next.adding_replicas = target
        .iter()
        .copied()
        .filter(|r| !current.contains(r))
        .collect();
    next.removing_replicas = current
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    complete_reassignment(image, &mut next);
    Ok(next)
}

/// `p` with its reassignment cancelled: back to the replicas it had before (epochs unchanged).
fn cancel(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
    settings: &Settings,
) -> Result<PartitionImage, MetadataError> {
    if !p.is_reassigning() {
        return Err(MetadataError::NoReassignmentInProgress(format!(
            "No reassignment of {}-{} is in progress.",
            topic.name, p.index
        )));
    }
    let original = p.original_replicas();
    let mut next = p.clone();
    next.isr = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    if next.isr.is_empty() {
        // Only adding replicas are in sync: going back means an unclean election.
        let Some(r) = original
            .iter()
            .copied()
            .find(|r| is_active(image, *r))
            .filter(|_| unclean_allowed(topic, settings))
        else {
            return Err(MetadataError::Other {
                code: -1,
                message: format!(
                    "Cancelling the reassignment of {}-{} would need an unclean leader election.",
                    topic.name, p.index
                ),
            });
        };
        next.isr = vec![r];
    }
    next.replicas = original;
    next.adding_replicas.clear();
    next.removing_replicas.clear();
    elect_if_leader_left(image, &mut next);
    Ok(next)
}

/// Completes `p`'s reassignment if every adding replica is in the ISR: replicas become the
/// target, the ISR keeps its target members (unless none would stay: then the reassignment
/// waits), and a leader that is no longer in the ISR hands over. Epochs are the caller's.
pub(super) fn complete_reassignment(image: &MetadataImage, p: &mut PartitionImage) {
    if !p.is_reassigning() || !p.adding_replicas.iter().all(|r| p.isr.contains(r)) {
        return;
    }
    let target = p.target_replicas();
    let isr: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| p.isr.contains(r))
        .collect();
    if isr.is_empty() {
        return;
    }
    p.replicas = target;
    p.isr = isr;
    p.adding_replicas.clear();
    p.removing_replicas.clear();
    elect_if_leader_left(image, p);
}

/// If `p`'s leader is not in its ISR any more, the first replica that is in the ISR and
/// active leads (-1 if none).
fn elect_if_leader_left(image: &MetadataImage, p: &mut PartitionImage) {
    if p.isr.contains(&p.leader) {
        return;
    }
    p.leader = p
        .replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && is_active(image, *r))
        .unwrap_or(-1);
}

#[cfg(test)]
mod tests {
    use super::super::testing::Cluster;
    use super::super::{alter_partition, AlterPartition};
    use super::*;

    fn to(topic: &str, partition: i32, target: Option<Vec<i32>>) -> Reassignment {
        Reassignment {
            topic: topic.into(),
            partition,
            target,
        }
    }

    fn run(c: &mut Cluster, requests: &[Reassignment]) -> Vec<i16> {
        let (results, records) = alter_partition_reassignments(&c.image, requests, &c.settings);
        c.commit(records);
        results
            .iter()
            .map(|r| r.result.as_ref().map_or_else(|e| e.code(), |_| 0))
            .collect()
    }

    /// The leader of t-0 sets its ISR to `isr`.
    fn leader_sets_isr(c: &mut Cluster, isr: Vec<i32>) -> PartitionImage {
        let p = c.partition("t", 0);
        let request = AlterPartition {
            broker_id: p.leader,
            broker_epoch: c.image.brokers[&p.leader].epoch,
            topic_id: c.topic_id("t"),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
        };
        let (state, record) = alter_partition(&c.image, &request).unwrap();
        c.commit(record.into_iter().collect());
        assert_eq!(c.partition("t", 0), state);
        state
    }

    #[test]
    fn a_reassignment_adds_first_and_removes_once_the_new_replicas_are_in_sync() {
        let mut c = Cluster::new(&[1, 2, 3, 4]);
        c.create_manual("t", vec![vec![1, 2, 3]]);
        let before = c.partition("t", 0);
        assert_eq!(run(&mut c, &[to("t", 0, Some(vec![4, 2, 1]))]), vec![0]);
        let p = c.partition("t", 0);
        assert_eq!(
            p.replicas,
            vec![4, 2, 1, 3],
            "target first, then the leaving ones"
        );
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![4], vec![3])
        );
        assert_eq!(
            (p.leader, p.isr.clone()),
            (1, vec![1, 2, 3]),
            "leadership untouched"
        );
        assert_eq!(p.leader_epoch, before.leader_epoch);
        assert_eq!(p.partition_epoch, before.partition_epoch + 1);

        // An ISR change without 4 completes nothing.
        let p = leader_sets_isr(&mut c, vec![1, 2]);
        assert!(p.is_reassigning());
        // 4 caught up: the same change completes the reassignment and drops 3.
        let done = leader_sets_isr(&mut c, vec![1, 2, 4]);
        assert_eq!(done.replicas, vec![4, 2, 1]);
        assert_eq!(done.isr, vec![4, 2, 1], "in the new assignment order");
        assert!(!done.is_reassigning());
        assert_eq!(done.leader, 1);
        assert_eq!(done.leader_epoch, before.leader_epoch + 1, "a replica left");
    }

    #[test]
    fn completing_a_reassignment_that_removes_the_leader_elects_a_target_replica() {
        let mut c = Cluster::new(&[1, 2, 3, 4]);
        c.create_manual("t", vec![vec![1, 2]]);
        assert_eq!(run(&mut c, &[to("t", 0, Some(vec![3, 4]))]), vec![0]);
        assert_eq!(c.partition("t", 0).replicas, vec![3, 4, 1, 2]);
        leader_sets_isr(&mut c, vec![1, 2, 3]);
        let before = c.partition("t", 0);
        assert!(before.is_reassigning(), "4 is still catching up");
        let done = leader_sets_isr(&mut c, vec![1, 2, 3, 4]);
        assert_eq!(
            (done.replicas.clone(), done.isr.clone()),
            (vec![3, 4], vec![3, 4])
        );
        assert_eq!(done.leader, 3, "the first target replica in the ISR");
        assert_eq!(done.leader_epoch, before.leader_epoch + 1);
    }

    #[test]
    fn a_target_already_in_sync_completes_at_once() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2, 3]]);
        // Reordering: the preferred leader changes, the leader does not.
        assert_eq!(run(&mut c, &[to("t", 0, Some(vec![2, 1, 3]))]), vec![0]);
        let p = c.partition("t", 0);
        assert_eq!((p.replicas.clone(), p.leader), (vec![2, 1, 3], 1));
        assert!(!p.is_reassigning());
        // Shrinking onto in-sync replicas, the leader among the removed.
        assert_eq!(run(&mut c, &[to("t", 0, Some(vec![3]))]), vec![0]);
        let q = c.partition("t", 0);
        assert_eq!(
            (q.replicas.clone(), q.isr.clone(), q.leader),
            (vec![3], vec![3], 3)
        );
        assert_eq!(q.leader_epoch, p.leader_epoch + 1);
        // The same target again changes nothing.
        let epoch = q.partition_epoch;
        assert_eq!(run(&mut c, &[to("t", 0, Some(vec![3]))]), vec![0]);
        assert_eq!(c.partition("t", 0).partition_epoch, epoch);
    }

    #[test]
    fn bad_targets_are_refused_per_partition() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2]]);
        let codes = run(
            &mut c,
            &[
                to("t", 0, Some(vec![])),
                to("t", 0, Some(vec![1, 1])),
                to("t", 0, Some(vec![1, 9])),
                to("t", 5, Some(vec![1])),
                to("nope", 0, Some(vec![1])),
                to("t", 0, None),
                to("t", 0, Some(vec![2, 3])),
            ],
        );
        assert_eq!(codes, vec![39, 39, 39, 3, 3, 85, 0]);
    }

    #[test]
    fn cancelling_reverts_to_the_original_replicas() {
        let mut c = Cluster::new(&[1, 2, 3, 4]);
        c.create_manual("t", vec![vec![1, 2]]);
        let before = c.partition("t", 0);
        assert_eq!(run(&mut c, &[to("t", 0, Some(vec![3, 4]))]), vec![0]);
        leader_sets_isr(&mut c, vec![1, 2, 3]);
        assert_eq!(run(&mut c, &[to("t", 0, None)]), vec![0]);
        let p = c.partition("t", 0);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (before.replicas, vec![1, 2])
        );
        assert!(!p.is_reassigning());
        assert_eq!(p.leader, 1);
        assert_eq!(
            p.leader_epoch,
            before.leader_epoch + 1,
            "replicas 3 and 4 left"
        );
        assert_eq!(
            run(&mut c, &[to("t", 0, None)]),
            vec![85],
            "nothing left to cancel"
        );
    }

    #[test]
    fn cancelling_when_only_new_replicas_are_in_sync_needs_unclean_election() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1]]);
        // Moving t-0 from 1 to 2, with 2 in sync and leading but 1 not (a state replication,
        // a fencing and an election can leave behind).
        let mut p = c.partition("t", 0);
        p.replicas = vec![2, 1];
        p.adding_replicas = vec![2];
        p.removing_replicas = vec![1];
        p.isr = vec![2];
        p.leader = 2;
        c.set("t", p);
        assert_eq!(run(&mut c, &[to("t", 0, None)]), vec![-1]);
        c.settings.unclean_leader_election_enable = true;
        assert_eq!(run(&mut c, &[to("t", 0, None)]), vec![0]);
        let q = c.partition("t", 0);
        assert_eq!(
            (q.replicas.clone(), q.isr.clone(), q.leader),
            (vec![1], vec![1], 1)
        );
    }

    #[test]
    fn a_partition_named_twice_ends_in_the_last_state_with_one_record() {
        let mut c = Cluster::new(&[1, 2, 3, 4]);
        c.create_manual("t", vec![vec![1, 2]]);
        let requests = [to("t", 0, Some(vec![1, 3])), to("t", 0, Some(vec![1, 4]))];
        let (results, records) = alter_partition_reassignments(&c.image, &requests, &c.settings);
        assert!(results.iter().all(|r| r.result.is_ok()));
        assert_eq!(records.len(), 1);
        c.commit(records);
        let p = c.partition("t", 0);
        // The second target starts from the first's replica set, 3 included.
        assert_eq!(p.replicas, vec![1, 4, 3, 2]);
        assert_eq!(
            (p.adding_replicas, p.removing_replicas),
            (vec![4], vec![3, 2])
        );
        assert_eq!(p.partition_epoch, 1);
    }
}
