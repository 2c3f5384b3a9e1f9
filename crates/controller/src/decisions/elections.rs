//! Leader elections: when a broker goes (`without_broker`), on request (ElectLeaders,
//! [`elect_leaders`]) and the periodic preferred-leader rebalance ([`rebalance_leaders`],
//! Kafka's `auto.leader.rebalance.enable`).
//!
//! Only active brokers (unfenced, not in controlled shutdown) are elected. A PREFERRED election
//! makes the first replica leader if it is active and in the ISR; an UNCLEAN one gives a leader
//! to partitions without one, from the ISR if it can, else any active replica with an ISR of
//! itself (KIP-460). Each bumps the leader and partition epochs.

use std::collections::{BTreeMap, BTreeSet};

use super::{find_partition, is_active, unclean_allowed, ElectionType, PartitionResult, Settings};
use crate::error::MetadataError;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::MetadataRecord;

/// The state `p` moves to when `broker` is fenced (or shuts down), or `None` if it is unaffected. `broker` is
/// never elected, whatever `image` says of it, so callers need not mark it fenced first.
pub(super) fn without_broker(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
    broker: i32,
    settings: &Settings,
) -> Option<PartitionImage> {
    if p.leader != broker && !p.isr.contains(&broker) {
        return None;
    }
    let mut next = p.clone();
    next.isr.retain(|r| *r != broker);
    if p.leader == broker {
        let clean = p
            .replicas
            .iter()
            .copied()
            .find(|r| next.isr.contains(r) && is_active(image, *r));
        next.leader = match clean {
            Some(r) => r,
            None if unclean_allowed(topic, settings) => {
                match p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| *r != broker && is_active(image, *r))
                {
                    Some(r) => {
                        next.isr = vec![r];
                        r
                    }
                    None => -1,
                }
            }
            None => -1,
        };
        next.leader_epoch += 1;
    }
    if next.isr.is_empty() {
        // The last in-sync replica stays recorded, so it can lead again when it returns.
        next.isr = vec![broker];
    }
    if next.leader == p.leader && next.isr == p.isr {
        // Already offline with `broker` as its last ISR member: nothing changes.
        return None;
    }
    next.partition_epoch += 1;
    Some(next)
}

/// A new state for every partition `broker` leads or is in the ISR of, as if it were gone.
pub(super) fn partitions_without(
    image: &MetadataImage,
    broker: i32,
    settings: &Settings,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if let Some(next) = without_broker(image, topic, p, broker, settings) {
                records.push(MetadataRecord::PartitionChange(next.to_record(topic.id)));
            }
        }
    }
    records
}

/// The outcome of ElectLeaders over `partitions` (every partition when `None`): one result per
/// distinct partition named, in request order, and the records of the elections made. Over all
/// partitions, those that need no election are left out of the results, as Kafka does.
pub fn elect_leaders(
    image: &MetadataImage,
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<PartitionResult>, Vec<MetadataRecord>) {
    let every = partitions.is_none();
    let wanted: Vec<(String, i32)> = match partitions {
        Some(named) => {
            let mut seen = BTreeSet::new();
            named
                .iter()
                .filter(|tp| seen.insert((*tp).clone()))
                .cloned()
                .collect()
        }
        None => image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.index)))
            .collect(),
    };
    let mut results = Vec::new();
    let mut records = Vec::new();
    for (topic, partition) in wanted {
        let outcome = find_partition(image, &topic, partition).and_then(|(t, p)| {
            let next = match election {
                ElectionType::Preferred => elect_preferred(image, t, p)?,
                ElectionType::Unclean => elect_unclean(image, t, p)?,
            };
            Ok(MetadataRecord::PartitionChange(next.to_record(t.id)))
        });
        let result = match outcome {
            Ok(record) => {
                records.push(record);
                Ok(())
            }
            Err(MetadataError::ElectionNotNeeded(_)) if every => continue,
            Err(e) => Err(e),
        };
        results.push(PartitionResult {
            topic,
            partition,
            result,
        });
    }
    (results, records)
}

/// `p` with `leader` elected (new leader epoch, new partition epoch).
fn with_leader(p: &PartitionImage, leader: i32) -> PartitionImage {
    let mut next = p.clone();
    next.leader = leader;
    next.leader_epoch += 1;
    next.partition_epoch += 1;
    next
}

/// A PREFERRED election: the first replica leads if it is active and in the ISR.
fn elect_preferred(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
) -> Result<PartitionImage, MetadataError> {
    let preferred = p.replicas.first().copied().unwrap_or(-1);
    if p.leader == preferred {
        return Err(MetadataError::ElectionNotNeeded(format!(
            "The preferred replica {preferred} already leads {}-{}.",
            topic.name, p.index
        )));
    }
    if !p.isr.contains(&preferred) || !is_active(image, preferred) {
        return Err(MetadataError::PreferredLeaderNotAvailable(format!(
            "The preferred replica {preferred} of {}-{} is not live and in the ISR.",
            topic.name, p.index
        )));
    }
    Ok(with_leader(p, preferred))
}

/// An UNCLEAN election: only for a partition without a leader; an active ISR member if there
/// is one, else any active replica with an ISR of itself.
fn elect_unclean(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
) -> Result<PartitionImage, MetadataError> {
    if p.leader != -1 {
        return Err(MetadataError::ElectionNotNeeded(format!(
            "{}-{} has a leader ({}).",
            topic.name, p.index, p.leader
        )));
    }
    let active = |r: &i32| is_active(image, *r);
    if let Some(clean) = p
        .replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && active(r))
    {
        return Ok(with_leader(p, clean));
    }
    let Some(any) = p.replicas.iter().copied().find(active) else {
        return Err(MetadataError::EligibleLeadersNotAvailable(format!(
            "No replica of {}-{} is live.",
            topic.name, p.index
        )));
    };
    let mut next = with_leader(p, any);
    next.isr = vec![any];
    Ok(next)
}

/// Per active broker, `(partitions it is the preferred replica of, those it does not lead)`.
pub fn leader_imbalance(image: &MetadataImage) -> BTreeMap<i32, (usize, usize)> {
    let mut per_broker: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for p in image.topics.values().flat_map(|t| &t.partitions) {
        let Some(&preferred) = p.replicas.first() else {
            continue;
        };
        if !is_active(image, preferred) {
            continue;
        }
        let entry = per_broker.entry(preferred).or_default();
        entry.0 += 1;
        if p.leader != preferred {
            entry.1 += 1;
        }
    }
    per_broker
}

/// The preferred elections of the automatic leader rebalance (Kafka's
/// `auto.leader.rebalance.enable`): for every broker that does not lead more than
/// `leader.imbalance.per.broker.percentage` of the partitions it is the preferred replica of,
/// those partitions go back to it where it is in the ISR. Partitions being reassigned are left
/// alone. Nothing when the rebalance is disabled.
pub fn rebalance_leaders(image: &MetadataImage, settings: &Settings) -> Vec<MetadataRecord> {
    if !settings.auto_leader_rebalance_enable {
        return Vec::new();
    }
    let threshold = settings.leader_imbalance_per_broker_percentage.max(0) as usize;
    let imbalanced: BTreeSet<i32> = leader_imbalance(image)
        .into_iter()
        .filter(|(_, (total, not_led))| not_led * 100 > threshold * total)
        .map(|(broker, _)| broker)
        .collect();
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if !imbalanced.contains(&preferred) || p.is_reassigning() {
                continue;
            }
            if let Ok(next) = elect_preferred(image, topic, p) {
                records.push(MetadataRecord::PartitionChange(next.to_record(topic.id)));
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::super::testing::Cluster;
    use super::*;

    fn names(partitions: &[(&str, i32)]) -> Vec<(String, i32)> {
        partitions
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect()
    }

    fn codes(results: &[PartitionResult]) -> Vec<(String, i32, i16)> {
        results
            .iter()
            .map(|r| {
                let code = r.result.as_ref().map_or_else(|e| e.code(), |_| 0);
                (r.topic.clone(), r.partition, code)
            })
            .collect()
    }

    /// t-0 on [1, 2, 3] led by 2 after 1 was fenced and came back into the ISR.
    fn moved_off_preferred() -> Cluster {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2, 3], vec![2, 3, 1]]);
        c.fence(1);
        c.unfence(1);
        let mut p = c.partition("t", 0);
        assert_eq!(p.leader, 2);
        // The follower caught up and the leader took it back into the ISR.
        p.isr = vec![1, 2, 3];
        p.partition_epoch += 1;
        c.set("t", p);
        c
    }

    #[test]
    fn preferred_election_moves_leadership_back_and_bumps_both_epochs() {
        let mut c = moved_off_preferred();
        let before = c.partition("t", 0);
        let (results, records) =
            elect_leaders(&c.image, ElectionType::Preferred, Some(&names(&[("t", 0)])));
        assert_eq!(codes(&results), vec![("t".into(), 0, 0)]);
        c.commit(records);
        let p = c.partition("t", 0);
        assert_eq!(p.leader, 1);
        assert_eq!(p.leader_epoch, before.leader_epoch + 1);
        assert_eq!(p.partition_epoch, before.partition_epoch + 1);
        assert_eq!(p.isr, before.isr);
    }

    #[test]
    fn preferred_election_errors_per_partition() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2], vec![2, 3]]);
        c.fence(2);
        // t-0: 1 already leads. t-1: 2 is fenced (and out of the ISR). Unknown ones.
        let wanted = names(&[("t", 0), ("t", 1), ("t", 7), ("nope", 0), ("t", 0)]);
        let (results, records) = elect_leaders(&c.image, ElectionType::Preferred, Some(&wanted));
        assert!(records.is_empty());
        assert_eq!(
            codes(&results),
            vec![
                ("t".into(), 0, 84),
                ("t".into(), 1, 80),
                ("t".into(), 7, 3),
                ("nope".into(), 0, 3),
            ],
            "ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION; \
             a partition named twice is answered once"
        );
        // Live but out of the ISR is not enough either.
        c.unfence(2);
        let (results, _) =
            elect_leaders(&c.image, ElectionType::Preferred, Some(&names(&[("t", 1)])));
        assert_eq!(codes(&results), vec![("t".into(), 1, 80)]);
    }

    #[test]
    fn preferred_election_over_all_partitions_leaves_out_those_needing_none() {
        let c = moved_off_preferred();
        let (results, records) = elect_leaders(&c.image, ElectionType::Preferred, None);
        assert_eq!(codes(&results), vec![("t".into(), 0, 0)]);
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn unclean_election_only_for_leaderless_partitions() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2], vec![3, 2]]);
        c.create_manual("solo", vec![vec![1]]);
        // t-0: 2 leaves the ISR, then 1 goes: offline with ISR [1].
        c.fence(2);
        c.unfence(2);
        c.fence(1);
        let p0 = c.partition("t", 0);
        assert_eq!((p0.leader, p0.isr.clone()), (-1, vec![1]));
        let wanted = names(&[("t", 0), ("t", 1), ("solo", 0)]);
        let (results, records) = elect_leaders(&c.image, ElectionType::Unclean, Some(&wanted));
        assert_eq!(
            codes(&results),
            vec![
                ("t".into(), 0, 0),
                ("t".into(), 1, 84),
                ("solo".into(), 0, 83)
            ],
            "elected; ELECTION_NOT_NEEDED; ELIGIBLE_LEADERS_NOT_AVAILABLE"
        );
        c.commit(records);
        let p = c.partition("t", 0);
        assert_eq!(
            (p.leader, p.isr.clone()),
            (2, vec![2]),
            "any live replica, ISR itself"
        );
        assert_eq!(p.leader_epoch, p0.leader_epoch + 1);
    }

    #[test]
    fn unclean_election_prefers_a_live_isr_member() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("t", vec![vec![1, 2, 3]]);
        let mut p = c.partition("t", 0);
        // Offline with 3 in the ISR and live (as after a lost race): the clean choice wins.
        p.leader = -1;
        p.isr = vec![3];
        c.set("t", p);
        let (_, records) = elect_leaders(&c.image, ElectionType::Unclean, None);
        c.commit(records);
        let p = c.partition("t", 0);
        assert_eq!((p.leader, p.isr), (3, vec![3]));
    }

    #[test]
    fn rebalance_moves_leaders_back_only_above_the_imbalance_threshold() {
        let mut c = moved_off_preferred();
        // Broker 1 is preferred for t-0 only and does not lead it: 100% > 10%.
        assert_eq!(leader_imbalance(&c.image)[&1], (1, 1));
        let records = rebalance_leaders(&c.image, &c.settings);
        assert_eq!(records.len(), 1);
        c.commit(records);
        assert_eq!(c.partition("t", 0).leader, 1);
        assert!(
            rebalance_leaders(&c.image, &c.settings).is_empty(),
            "balanced now"
        );

        // One of twenty partitions off its preferred leader is 5%, under 10%.
        let mut c = Cluster::new(&[1, 2]);
        c.create_manual("many", vec![vec![1, 2]; 20]);
        let mut p = c.partition("many", 0);
        p.leader = 2;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        c.set("many", p);
        assert!(rebalance_leaders(&c.image, &c.settings).is_empty());
        let strict = Settings {
            leader_imbalance_per_broker_percentage: 0,
            ..Settings::default()
        };
        assert_eq!(rebalance_leaders(&c.image, &strict).len(), 1);
        let off = Settings {
            auto_leader_rebalance_enable: false,
            ..strict
        };
        assert!(rebalance_leaders(&c.image, &off).is_empty());
    }
}
