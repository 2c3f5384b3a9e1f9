//! AlterPartition: the ISR changes a partition leader asks for, checked against every epoch
//! (KIP-497, KIP-841), and the reassignment completion they can trigger.

use std::collections::BTreeSet;

use super::reassignment::complete_reassignment;
use super::{bump_epochs, check_broker_epoch, is_active, AlterPartition};
use crate::error::MetadataError;
use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

/// Checks an AlterPartition request and returns the partition's new state, in Kafka's order of
/// checks: broker epoch, partition, leadership, leader epoch, partition epoch, then the ISR.
/// An ISR equal to the current one changes nothing and returns the current state. An ISR that
/// takes in the last replica a reassignment is adding also completes the reassignment (which
/// may elect another leader: the returned state says so).
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartition,
) -> Result<(PartitionImage, Option<MetadataRecord>), MetadataError> {
    check_broker_epoch(image, request.broker_id, request.broker_epoch)?;
    let topic = image
        .topic_by_id(&request.topic_id)
        .ok_or(MetadataError::UnknownTopicId(request.topic_id))?;
    let p = usize::try_from(request.partition)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or_else(|| MetadataError::UnknownPartition(topic.name.clone(), request.partition))?;
    if p.leader != request.broker_id {
        return Err(MetadataError::NotLeaderOrFollower(format!(
            "Broker {} is not the leader of {}-{} (leader: {}).",
            request.broker_id, topic.name, p.index, p.leader
        )));
    }
    if request.leader_epoch < p.leader_epoch {
        return Err(MetadataError::FencedLeaderEpoch {
            got: request.leader_epoch,
            current: p.leader_epoch,
        });
    }
    if request.leader_epoch > p.leader_epoch {
        return Err(MetadataError::UnknownLeaderEpoch {
            got: request.leader_epoch,
            current: p.leader_epoch,
        });
    }
    if request.partition_epoch != p.partition_epoch {
        return Err(MetadataError::InvalidUpdateVersion {
            got: request.partition_epoch,
            current: p.partition_epoch,
        });
    }
    let isr: BTreeSet<i32> = request.new_isr.iter().copied().collect();
    if isr.len() != request.new_isr.len() || !isr.contains(&p.leader) {
        return Err(MetadataError::InvalidRequest(
            "The new ISR must hold distinct replicas including the leader.".into(),
        ));
    }
    if let Some(r) = isr.iter().find(|r| !p.replicas.contains(r)) {
        return Err(MetadataError::IneligibleReplica(format!(
            "Broker {r} is not a replica of {}-{}.",
            topic.name, p.index
        )));
    }
    if let Some(r) = isr
        .iter()
        .find(|r| !p.isr.contains(r) && !is_active(image, **r))
    {
        return Err(MetadataError::IneligibleReplica(format!(
            "Broker {r} is fenced or shutting down and cannot join the ISR of {}-{}.",
            topic.name, p.index
        )));
    }
    if isr == p.isr.iter().copied().collect() {
        return Ok((p.clone(), None));
    }
    let mut next = p.clone();
    // Keep the assignment order, which leader election follows.
    next.isr = p
        .replicas
        .iter()
        .copied()
        .filter(|r| isr.contains(r))
        .collect();
    complete_reassignment(image, &mut next);
    bump_epochs(p, &mut next);
    let record = MetadataRecord::PartitionChange(next.to_record(topic.id));
    Ok((next, Some(record)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::Cluster;
    use super::super::{controlled_shutdown, fence_broker};
    use super::*;

    fn alter(c: &Cluster, broker: i32, new_isr: Vec<i32>) -> AlterPartition {
        let p = c.partition("t", 0);
        AlterPartition {
            broker_id: broker,
            broker_epoch: c.image.brokers[&broker].epoch,
            topic_id: c.image.topics["t"].id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
        }
    }

    #[test]
    fn alter_partition_enforces_every_epoch() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create("t", 1, 3);
        let leader = c.partition("t", 0).leader;
        let follower = c.partition("t", 0).replicas[1];
        let shrink: Vec<i32> = vec![leader];

        // Broker epoch.
        let mut r = alter(&c, leader, shrink.clone());
        r.broker_epoch -= 1;
        let e = alter_partition(&c.image, &r).unwrap_err();
        assert_eq!(e.code(), 77, "STALE_BROKER_EPOCH: {e}");
        // Not the leader.
        let r = alter(&c, follower, vec![follower]);
        assert_eq!(alter_partition(&c.image, &r).unwrap_err().code(), 6);
        // Leader epoch, older and newer.
        let mut r = alter(&c, leader, shrink.clone());
        r.leader_epoch -= 1;
        assert_eq!(
            alter_partition(&c.image, &r).unwrap_err().code(),
            74,
            "FENCED_LEADER_EPOCH"
        );
        r.leader_epoch += 2;
        assert_eq!(
            alter_partition(&c.image, &r).unwrap_err().code(),
            75,
            "UNKNOWN_LEADER_EPOCH"
        );
        // Partition epoch.
        let mut r = alter(&c, leader, shrink.clone());
        r.partition_epoch += 1;
        assert_eq!(
            alter_partition(&c.image, &r).unwrap_err().code(),
            95,
            "INVALID_UPDATE_VERSION"
        );

        // A valid shrink bumps the partition epoch only.
        let r = alter(&c, leader, shrink.clone());
        let (next, record) = alter_partition(&c.image, &r).unwrap();
        c.commit(vec![record.unwrap()]);
        assert_eq!(c.partition("t", 0), next);
        assert_eq!(
            (next.isr.clone(), next.partition_epoch, next.leader_epoch),
            (shrink, 1, 0)
        );
        // The same request again is now a lost update.
        assert_eq!(alter_partition(&c.image, &r).unwrap_err().code(), 95);

        // A fenced broker cannot join the ISR.
        let rec = fence_broker(&c.image, follower, &c.settings);
        c.commit(rec);
        let r = alter(&c, leader, vec![leader, follower]);
        assert_eq!(
            alter_partition(&c.image, &r).unwrap_err().code(),
            107,
            "INELIGIBLE_REPLICA"
        );
    }

    #[test]
    fn a_broker_in_controlled_shutdown_cannot_join_the_isr() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2]]);
        let r = alter(&c, 1, vec![1]);
        let (_, record) = alter_partition(&c.image, &r).unwrap();
        c.commit(vec![record.unwrap()]);
        let records = controlled_shutdown(&c.image, 2, &c.settings);
        c.commit(records);
        let r = alter(&c, 1, vec![1, 2]);
        assert_eq!(alter_partition(&c.image, &r).unwrap_err().code(), 107);
    }
}
