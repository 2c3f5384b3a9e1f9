//! Topics and partitions: creation (replica placement over the active brokers), deletion,
//! partition count growth and config overrides.

use std::collections::{BTreeSet, HashSet};

use super::{
    is_active, Assignment, NewPartitions, NewTopic, Settings, TopicConfigChange, TopicRef,
};
use crate::error::MetadataError;
use crate::ids::new_topic_id;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::{MetadataRecord, TopicRecord};
use crate::{placement, topic_name};

/// The brokers new replicas may be placed on: active ones (unfenced, not shutting down).
fn placeable_brokers(image: &MetadataImage) -> Vec<i32> {
    image.active_brokers().map(|b| b.id).collect()
}

fn check_manual(image: &MetadataImage, assignment: &[Vec<i32>]) -> Result<(), MetadataError> {
    let rf = assignment.first().map_or(0, Vec::len);
    for replicas in assignment {
        if let Some(unknown) = replicas.iter().find(|id| !image.brokers.contains_key(id)) {
            return Err(MetadataError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {unknown}, but no such broker is registered."
            )));
        }
        let distinct: HashSet<&i32> = replicas.iter().collect();
        if distinct.len() != replicas.len() || replicas.is_empty() {
            return Err(MetadataError::InvalidReplicaAssignment(
                "A partition's replicas must be distinct and at least one.".into(),
            ));
        }
        if replicas.len() != rf {
            return Err(MetadataError::InvalidReplicaAssignment(
                "All partitions must have the same number of replicas.".into(),
            ));
        }
    }
    Ok(())
}

fn place(
    image: &MetadataImage,
    partitions: i32,
    replication_factor: i32,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let brokers = placeable_brokers(image);
    if partitions <= 0 {
        return Err(MetadataError::InvalidPartitions(
            "Number of partitions was set to an invalid non-positive value.".into(),
        ));
    }
    if replication_factor <= 0 {
        return Err(MetadataError::InvalidReplicationFactor(
            "Replication factor must be larger than 0.".into(),
        ));
    }
    if replication_factor as usize > brokers.len() {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
            brokers.len()
        )));
    }
    Ok(placement::assign(
        &brokers,
        partitions as usize,
        replication_factor as usize,
        start,
        shift,
    ))
}

/// Records creating one topic (its record, then one per partition, leaders the first live
/// replica), checked against `image` and the names created earlier in the same request.
/// `random` gives the placement's random start and shift.
pub fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    created_before: &BTreeSet<String>,
    random: &mut dyn FnMut(usize) -> usize,
) -> Result<(TopicImage, Vec<MetadataRecord>), MetadataError> {
    topic_name::validate(&topic.name)?;
    if image.topics.contains_key(&topic.name) || created_before.contains(&topic.name) {
        return Err(MetadataError::TopicAlreadyExists(topic.name.clone()));
    }
    if let Some(other) = image
        .topics
        .keys()
        .chain(created_before.iter())
        .find(|n| topic_name::collides(n, &topic.name))
    {
        return Err(MetadataError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {other}",
            topic.name
        )));
    }
    let assignment = match &topic.assignment {
        Assignment::Auto {
            partitions,
            replication_factor,
        } => {
            let n = image.active_brokers().count().max(1);
            place(
                image,
                *partitions,
                *replication_factor,
                random(n),
                random(n),
            )?
        }
        Assignment::Manual(a) => {
            if a.is_empty() {
                return Err(MetadataError::InvalidPartitions(
                    "Number of partitions must be larger than 0.".into(),
                ));
            }
            check_manual(image, a)?;
            a.clone()
        }
    };
    let id = new_topic_id();
    let partitions: Vec<PartitionImage> = assignment
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| new_partition(image, i as i32, replicas))
        .collect();
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: topic.name.clone(),
        id,
        configs: topic.configs.clone(),
    })];
    records.extend(
        partitions
            .iter()
            .map(|p| MetadataRecord::PartitionChange(p.to_record(id))),
    );
    Ok((
        TopicImage {
            name: topic.name.clone(),
            id,
            partitions,
            configs: topic.configs.clone(),
        },
        records,
    ))
}

/// A new partition: the ISR is the live replicas, the leader the first of them (-1 if none).
fn new_partition(image: &MetadataImage, index: i32, replicas: Vec<i32>) -> PartitionImage {
    let live: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| is_active(image, *r))
        .collect();
    let isr = if live.is_empty() {
        replicas.clone()
    } else {
        live
    };
    PartitionImage {
        index,
        leader: isr
            .iter()
            .copied()
            .find(|r| is_active(image, *r))
            .unwrap_or(-1),
        leader_epoch: 0,
        partition_epoch: 0,
        replicas,
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// Resolves a topic reference against `image`.
pub fn find_topic<'a>(
    image: &'a MetadataImage,
    topic: &TopicRef,
) -> Result<&'a TopicImage, MetadataError> {
    match topic {
        TopicRef::Name(n) => image
            .topics
            .get(n)
            .ok_or_else(|| MetadataError::UnknownTopic(n.clone())),
        TopicRef::Id(id) => image
            .topic_by_id(id)
            .ok_or(MetadataError::UnknownTopicId(*id)),
    }
}

/// The record deleting a topic.
pub fn delete_topic(
    image: &MetadataImage,
    topic: &TopicRef,
    settings: &Settings,
) -> Result<(TopicImage, MetadataRecord), MetadataError> {
    if !settings.delete_topic_enable {
        return Err(MetadataError::TopicDeletionDisabled);
    }
    let t = find_topic(image, topic)?;
    Ok((t.clone(), MetadataRecord::RemoveTopic { topic_id: t.id }))
}

/// The records adding partitions to a topic. Kafka's rules: the count can only grow, and a
/// manual assignment covers exactly the new partitions with the topic's replication factor.
pub fn create_partitions(
    image: &MetadataImage,
    request: &NewPartitions,
    random: &mut dyn FnMut(usize) -> usize,
) -> Result<(TopicImage, Vec<MetadataRecord>), MetadataError> {
    let topic = image
        .topics
        .get(&request.topic)
        .ok_or_else(|| MetadataError::UnknownTopic(request.topic.clone()))?;
    let current = topic.partitions.len() as i32;
    if request.total_count < current {
        return Err(MetadataError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {}.",
            request.total_count
        )));
    }
    if request.total_count == current {
        return Err(MetadataError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    let added = request.total_count - current;
    let rf = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i32;
    let assignment = match &request.assignment {
        Some(a) => {
            if a.len() as i32 != added {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "Increasing the number of partitions by {added} but {} assignments provided.",
                    a.len()
                )));
            }
            check_manual(image, a)?;
            if a.first().map_or(0, Vec::len) as i32 != rf {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "Inconsistent replication factor between partitions, partition 0 has {rf} while partitions [{current}] have replication factors [{}], respectively.",
                    a.first().map_or(0, Vec::len)
                )));
            }
            a.clone()
        }
        None => {
            let n = image.active_brokers().count().max(1);
            // Continue the round robin where the topic's existing partitions left it.
            place(image, added, rf, current as usize + random(n), random(n))?
        }
    };
    let mut next = topic.clone();
    let mut records = Vec::new();
    for (i, replicas) in assignment.into_iter().enumerate() {
        let p = new_partition(image, current + i as i32, replicas);
        records.push(MetadataRecord::PartitionChange(p.to_record(topic.id)));
        next.partitions.push(p);
    }
    Ok((next, records))
}

/// The record changing a topic's config overrides (already validated by the broker).
pub fn alter_topic_configs(
    image: &MetadataImage,
    change: &TopicConfigChange,
) -> Result<(TopicImage, MetadataRecord), MetadataError> {
    let topic = image
        .topics
        .get(&change.topic)
        .ok_or_else(|| MetadataError::UnknownTopic(change.topic.clone()))?;
    let configs = change.apply_to(&topic.configs);
    let mut next = topic.clone();
    next.configs = configs.clone();
    Ok((
        next,
        MetadataRecord::TopicConfigs {
            topic_id: topic.id,
            configs,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testing::Cluster;
    use super::super::*;
    use super::*;

    #[test]
    fn placement_spreads_leaders_over_live_brokers_and_checks_the_factor() {
        let mut c = Cluster::new(&[1, 2, 3]);
        let t = c.create("orders", 6, 3);
        let mut leaders = BTreeMap::new();
        for p in &t.partitions {
            *leaders.entry(p.leader).or_insert(0) += 1;
            assert_eq!(p.isr.len(), 3);
            assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        }
        assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
        let too_many = NewTopic {
            name: "x".into(),
            assignment: Assignment::Auto {
                partitions: 1,
                replication_factor: 4,
            },
            configs: BTreeMap::new(),
        };
        let e = create_topic(&c.image, &too_many, &BTreeSet::new(), &mut |_| 0).unwrap_err();
        assert_eq!(e.code(), 38, "INVALID_REPLICATION_FACTOR: {e}");
        // A fenced broker does not count.
        let fence = fence_broker(&c.image, 3, &c.settings);
        c.commit(fence);
        let three = NewTopic {
            name: "y".into(),
            assignment: Assignment::Auto {
                partitions: 1,
                replication_factor: 3,
            },
            configs: BTreeMap::new(),
        };
        assert!(create_topic(&c.image, &three, &BTreeSet::new(), &mut |_| 0).is_err());
    }

    #[test]
    fn partitions_only_grow_and_configs_change_by_key() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create("t", 2, 2);
        let shrink = NewPartitions {
            topic: "t".into(),
            total_count: 1,
            assignment: None,
        };
        assert_eq!(
            create_partitions(&c.image, &shrink, &mut |_| 0)
                .unwrap_err()
                .code(),
            37
        );
        let grow = NewPartitions {
            total_count: 5,
            ..shrink
        };
        let (topic, records) = create_partitions(&c.image, &grow, &mut |_| 0).unwrap();
        c.commit(records);
        assert_eq!(c.image.topics["t"], topic);
        assert_eq!(topic.partitions.len(), 5);
        assert!(topic.partitions.iter().all(|p| p.replicas.len() == 2));

        let set = TopicConfigChange {
            topic: "t".into(),
            changes: BTreeMap::from([("retention.ms".into(), Some("1000".into()))]),
            replace: false,
        };
        let (_, r) = alter_topic_configs(&c.image, &set).unwrap();
        c.commit(vec![r]);
        let remove = TopicConfigChange {
            topic: "t".into(),
            changes: BTreeMap::from([("retention.ms".into(), None)]),
            replace: false,
        };
        assert_eq!(c.image.topics["t"].configs["retention.ms"], "1000");
        let (_, r) = alter_topic_configs(&c.image, &remove).unwrap();
        c.commit(vec![r]);
        assert!(c.image.topics["t"].configs.is_empty());
    }

    #[test]
    fn deleting_needs_deletion_enabled() {
        let mut c = Cluster::new(&[1]);
        c.create("t", 1, 1);
        let off = Settings {
            delete_topic_enable: false,
            ..Settings::default()
        };
        let name = TopicRef::Name("t".into());
        assert_eq!(delete_topic(&c.image, &name, &off).unwrap_err().code(), 73);
        let (_, r) = delete_topic(&c.image, &name, &c.settings).unwrap();
        c.commit(vec![r]);
        assert!(c.image.topics.is_empty() && c.image.topic_names_by_id.is_empty());
    }
}
