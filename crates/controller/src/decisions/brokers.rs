//! Brokers: registration, fencing and unfencing, controlled shutdown, producer id blocks.
//!
//! Controlled shutdown (Kafka's KRaft flow): a broker heartbeating with `want_shut_down` is
//! marked in controlled shutdown and its leaderships and ISR memberships are moved as fencing
//! would move them ([`controlled_shutdown`]); once it leads nothing another replica could lead
//! ([`may_shut_down`]) the controller fences it and tells it to stop.

use super::elections::partitions_without;
use super::{is_active, unclean_allowed, BrokerRegistration, Settings, PRODUCER_ID_BLOCK_SIZE};
use crate::error::MetadataError;
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, RegisterBrokerRecord};

/// Checks that `broker_id` is registered with `broker_epoch`.
pub fn check_broker_epoch(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<(), MetadataError> {
    match image.brokers.get(&broker_id) {
        None => Err(MetadataError::BrokerIdNotRegistered(broker_id)),
        Some(b) if b.epoch != broker_epoch => Err(MetadataError::StaleBrokerEpoch {
            broker: broker_id,
            got: broker_epoch,
            current: b.epoch,
        }),
        Some(_) => Ok(()),
    }
}

/// The records that fence `broker`: the fence itself and a new state for every partition it
/// led or was in the ISR of.
pub fn fence_broker(
    image: &MetadataImage,
    broker: i32,
    settings: &Settings,
) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id: broker,
        broker_epoch: b.epoch,
    }];
    records.extend(partitions_without(image, broker, settings));
    records
}

/// The records that unfence `broker` (which has caught up with the metadata): the unfence, and
/// leadership of every offline partition it can lead (it is in the ISR, or unclean election is
/// allowed and it is a replica). Nothing for a broker in controlled shutdown: that registration
/// stays fenced.
pub fn unfence_broker(
    image: &MetadataImage,
    broker: i32,
    settings: &Settings,
) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    if b.in_controlled_shutdown {
        // This registration asked to shut down: it leads nothing again (a restart registers
        // anew).
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::UnfenceBroker {
        broker_id: broker,
        broker_epoch: b.epoch,
    }];
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader != -1 || !p.replicas.contains(&broker) {
                continue;
            }
            let mut next = p.clone();
            if p.isr.contains(&broker) {
                next.leader = broker;
            } else if unclean_allowed(topic, settings) {
                next.leader = broker;
                next.isr = vec![broker];
            } else {
                continue;
            }
            next.leader_epoch += 1;
            next.partition_epoch += 1;
            records.push(MetadataRecord::PartitionChange(next.to_record(topic.id)));
        }
    }
    records
}

/// The records registering a broker. `session_alive` says whether the current registration of
/// this id still has a live session; a different process may then not take the id over
/// (DUPLICATE_BROKER_REGISTRATION). A re-registration moves leadership off the old incarnation,
/// as fencing would: the new one starts fenced and is unfenced once it has caught up.
pub fn register_broker(
    image: &MetadataImage,
    request: &BrokerRegistration,
    session_alive: bool,
    settings: &Settings,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    if request.broker_id < 0 {
        return Err(MetadataError::InvalidRequest(format!(
            "Invalid broker id {}",
            request.broker_id
        )));
    }
    if let Some(existing) = image.brokers.get(&request.broker_id) {
        if existing.incarnation_id != request.incarnation_id && !existing.fenced && session_alive {
            return Err(MetadataError::DuplicateBrokerRegistration(
                request.broker_id,
            ));
        }
    }
    let mut records = vec![MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: request.broker_id,
        incarnation_id: request.incarnation_id,
        endpoints: request.endpoints.clone(),
        rack: request.rack.clone(),
    })];
    if image.brokers.contains_key(&request.broker_id) {
        records.extend(partitions_without(image, request.broker_id, settings));
    }
    Ok(records)
}

/// The records a controlled-shutdown heartbeat of `broker` leads to: the mark that it is in
/// controlled shutdown (once), and for every partition it leads or is in the ISR of, the state
/// fencing would give it: another active ISR member leads (or, where the topic allows unclean
/// election, any active replica), the broker leaves the ISR unless it is its last member, and
/// the leader is -1 only where nobody else can lead. Nothing for an unknown or fenced broker.
pub fn controlled_shutdown(
    image: &MetadataImage,
    broker: i32,
    settings: &Settings,
) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    if b.fenced {
        return Vec::new();
    }
    let mut records = Vec::new();
    if !b.in_controlled_shutdown {
        records.push(MetadataRecord::BrokerControlledShutdown {
            broker_id: broker,
            broker_epoch: b.epoch,
        });
    }
    records.extend(partitions_without(image, broker, settings));
    records
}

/// Whether `broker`, in controlled shutdown, may stop now as far as leadership goes: it leads
/// no partition that another replica could lead (an active ISR member other than itself).
pub fn may_shut_down(image: &MetadataImage, broker: i32) -> bool {
    !image
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .any(|p| p.leader == broker && p.isr.iter().any(|r| *r != broker && is_active(image, *r)))
}

/// The records reserving the next producer id block for a registered broker.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<(i64, MetadataRecord), MetadataError> {
    check_broker_epoch(image, broker_id, broker_epoch)?;
    let first = image.next_producer_id;
    Ok((
        first,
        MetadataRecord::ProducerIdBlock {
            broker_id,
            first,
            size: PRODUCER_ID_BLOCK_SIZE,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::Cluster;
    use super::super::*;
    use super::*;
    use crate::image::PartitionImage;
    use crate::records::MetadataRecord;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    #[test]
    fn fencing_the_leader_elects_the_next_isr_member_and_bumps_epochs() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create("t", 3, 3);
        let before: Vec<PartitionImage> = (0..3).map(|i| c.partition("t", i)).collect();
        let records = fence_broker(&c.image, 1, &c.settings);
        c.commit(records);
        assert!(c.image.brokers[&1].fenced);
        for (i, old) in before.iter().enumerate() {
            let p = c.partition("t", i as i32);
            assert!(!p.isr.contains(&1), "{p:?}");
            assert_ne!(p.leader, 1);
            assert!(p.isr.contains(&p.leader));
            assert_eq!(p.partition_epoch, old.partition_epoch + 1);
            let moved = old.leader == 1;
            assert_eq!(p.leader_epoch, old.leader_epoch + i32::from(moved));
            if moved {
                // The next replica in assignment order that is in the ISR.
                let expected = old.replicas.iter().find(|r| **r != 1).copied().unwrap();
                assert_eq!(p.leader, expected);
            }
        }
    }

    #[test]
    fn last_isr_member_fenced_goes_offline_until_it_returns() {
        let mut c = Cluster::new(&[1, 2]);
        c.create("t", 1, 2);
        let leader = c.partition("t", 0).leader;
        let other = if leader == 1 { 2 } else { 1 };
        let r = fence_broker(&c.image, other, &c.settings);
        c.commit(r);
        assert_eq!(c.partition("t", 0).isr, vec![leader]);
        let r = fence_broker(&c.image, leader, &c.settings);
        c.commit(r);
        let p = c.partition("t", 0);
        assert_eq!(
            (p.leader, p.isr.clone()),
            (-1, vec![leader]),
            "offline, last ISR kept"
        );
        // The other replica returning does not lead: it is not in the ISR (clean election).
        let r = unfence_broker(&c.image, other, &c.settings);
        c.commit(r);
        assert_eq!(c.partition("t", 0).leader, -1);
        // The last ISR member returning leads again, at a new epoch.
        let r = unfence_broker(&c.image, leader, &c.settings);
        c.commit(r);
        let q = c.partition("t", 0);
        assert_eq!(q.leader, leader);
        assert_eq!(q.leader_epoch, p.leader_epoch + 1);
    }

    #[test]
    fn unclean_election_takes_any_live_replica_when_the_topic_allows_it() {
        let mut c = Cluster::new(&[1, 2]);
        c.create("t", 1, 2);
        let leader = c.partition("t", 0).leader;
        let other = 3 - leader;
        let id = c.image.topics["t"].id;
        c.commit(vec![MetadataRecord::TopicConfigs {
            topic_id: id,
            configs: BTreeMap::from([("unclean.leader.election.enable".into(), "true".into())]),
        }]);
        let r = fence_broker(&c.image, other, &c.settings);
        c.commit(r);
        let r = unfence_broker(&c.image, other, &c.settings);
        c.commit(r);
        assert_eq!(c.partition("t", 0).isr, vec![leader]);
        let r = fence_broker(&c.image, leader, &c.settings);
        c.commit(r);
        let p = c.partition("t", 0);
        assert_eq!((p.leader, p.isr), (other, vec![other]));
    }

    #[test]
    fn re_registration_needs_an_expired_session_and_starts_fenced() {
        let mut c = Cluster::new(&[1, 2]);
        c.create("t", 2, 2);
        let again = BrokerRegistration {
            broker_id: 1,
            incarnation_id: Uuid::new_v4(),
            endpoints: BTreeMap::new(),
            rack: None,
        };
        let e = register_broker(&c.image, &again, true, &c.settings).unwrap_err();
        assert_eq!(e.code(), 101, "DUPLICATE_BROKER_REGISTRATION");
        let old_epoch = c.image.brokers[&1].epoch;
        let r = register_broker(&c.image, &again, false, &c.settings).unwrap();
        let offset = c.commit(r);
        let b = &c.image.brokers[&1];
        assert!(b.fenced);
        assert_eq!(b.epoch, offset);
        assert!(b.epoch > old_epoch);
        for i in 0..2 {
            let p = c.partition("t", i);
            assert_eq!(p.leader, 2, "leadership moved off the old incarnation");
        }
        assert_eq!(
            check_broker_epoch(&c.image, 1, old_epoch)
                .unwrap_err()
                .code(),
            77
        );
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut c = Cluster::new(&[1, 2]);
        let mut seen = Vec::new();
        for b in [1, 2, 1] {
            let epoch = c.image.brokers[&b].epoch;
            let (first, r) = allocate_producer_ids(&c.image, b, epoch).unwrap();
            c.commit(vec![r]);
            seen.push(first);
        }
        assert_eq!(seen, vec![0, 1000, 2000]);
        assert_eq!(
            allocate_producer_ids(&c.image, 1, 999).unwrap_err().code(),
            77
        );
    }

    #[test]
    fn controlled_shutdown_moves_leaders_and_isr_membership_off_the_broker() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2, 3], vec![2, 1, 3]]);
        c.create_manual("solo", vec![vec![1]]);
        c.create_manual("other", vec![vec![3, 2]]);
        let before: Vec<PartitionImage> = (0..2).map(|i| c.partition("t", i)).collect();
        let other = c.partition("other", 0);
        assert!(
            !may_shut_down(&c.image, 1),
            "it leads t-0, which 2 could lead"
        );
        let records = controlled_shutdown(&c.image, 1, &c.settings);
        c.commit(records);
        assert!(c.image.brokers[&1].in_controlled_shutdown);
        assert!(
            !c.image.brokers[&1].fenced,
            "still serving until it is told to stop"
        );
        // t-0: the next ISR member leads; 1 left the ISR.
        let p0 = c.partition("t", 0);
        assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
        assert_eq!(p0.leader_epoch, before[0].leader_epoch + 1);
        // t-1: a follower only leaves the ISR; the leader epoch stays.
        let p1 = c.partition("t", 1);
        assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 3]));
        assert_eq!(p1.leader_epoch, before[1].leader_epoch);
        assert_eq!(p1.partition_epoch, before[1].partition_epoch + 1);
        // solo-0: nobody else can lead: offline, the broker kept as the last ISR member.
        let solo = c.partition("solo", 0);
        assert_eq!((solo.leader, solo.isr.clone()), (-1, vec![1]));
        // other-0: not a replica, untouched.
        assert_eq!(c.partition("other", 0), other);
        assert!(may_shut_down(&c.image, 1));
        // A second heartbeat changes nothing more.
        assert!(controlled_shutdown(&c.image, 1, &c.settings).is_empty());
    }

    #[test]
    fn a_broker_in_controlled_shutdown_is_never_elected_placed_or_unfenced() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![2, 1]]);
        let id = c.topic_id("t");
        c.commit(vec![MetadataRecord::TopicConfigs {
            topic_id: id,
            configs: BTreeMap::from([("unclean.leader.election.enable".into(), "true".into())]),
        }]);
        let records = controlled_shutdown(&c.image, 1, &c.settings);
        c.commit(records);
        // Its leader going does not elect it, although it is a live replica and the topic
        // allows unclean election.
        c.fence(2);
        assert_eq!(c.partition("t", 0).leader, -1);
        // No new replicas on it.
        let t = c.create("u", 4, 1);
        assert!(t.partitions.iter().all(|p| p.replicas == vec![3]), "{t:?}");
        // Fenced at the end of the shutdown, it stays fenced however it heartbeats.
        c.fence(1);
        assert!(unfence_broker(&c.image, 1, &c.settings).is_empty());
        assert!(controlled_shutdown(&c.image, 1, &c.settings).is_empty());
    }

    #[test]
    fn two_brokers_shutting_down_do_not_hand_leadership_to_each_other() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2, 3]]);
        let r = controlled_shutdown(&c.image, 2, &c.settings);
        c.commit(r);
        let r = controlled_shutdown(&c.image, 1, &c.settings);
        c.commit(r);
        let p = c.partition("t", 0);
        assert_eq!((p.leader, p.isr), (3, vec![3]));
    }
}
