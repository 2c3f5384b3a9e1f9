//! What the active controller decides: pure functions from the current [`MetadataImage`] and a
//! request to the records that carry out the change, or the Kafka error that refuses it.
//!
//! Nothing here does I/O, so every rule (placement, leader election on fencing, the epoch checks
//! of AlterPartition) is tested without sockets. [`crate::quorum_controller`] calls these one
//! request at a time and proposes the records to the Raft log.
//!
//! Leader election follows Kafka's KRaft controller: a new leader is the first replica, in
//! assignment order, that is in the ISR and not fenced. When none is, the partition goes offline
//! (leader -1) keeping its last ISR member, unless the topic allows unclean election
//! (`unclean.leader.election.enable`), in which case any live replica is elected with an ISR of
//! itself. Every leader change bumps the leader epoch; every change bumps the partition epoch.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use uuid::Uuid;

use crate::error::MetadataError;
use crate::ids::new_topic_id;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::{MetadataRecord, RegisterBrokerRecord, TopicRecord};
use crate::{placement, topic_name};

/// Producer ids handed to a broker at a time (Kafka's `ProducerIdsBlock` size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Cluster-wide settings the controller's decisions depend on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `delete.topic.enable` (true).
    pub delete_topic_enable: bool,
    /// `unclean.leader.election.enable` (false): the default for topics without an override.
    pub unclean_leader_election_enable: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delete_topic_enable: true,
            unclean_leader_election_enable: false,
        }
    }
}

/// How the partitions of a new topic are placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// By the controller, over the unfenced brokers (Kafka's round robin with a random start).
    Auto {
        /// Number of partitions (> 0).
        partitions: i32,
        /// Replicas per partition (> 0).
        replication_factor: i32,
    },
    /// Given by the client: broker ids per partition, preferred leader first.
    Manual(Vec<Vec<i32>>),
}

/// A topic to create, after the receiving broker applied its defaults and checked its configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Placement.
    pub assignment: Assignment,
    /// Config overrides (already validated by the broker).
    pub configs: BTreeMap<String, String>,
}

/// How a topic is named in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id.
    Id(Uuid),
}

/// Partitions to add to a topic (CreatePartitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartitions {
    /// Topic name.
    pub topic: String,
    /// The partition count after the change (must grow).
    pub total_count: i32,
    /// Replicas of each new partition, or `None` to let the controller place them.
    pub assignment: Option<Vec<Vec<i32>>>,
}

/// One topic's config change: `None` values remove an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigChange {
    /// Topic name.
    pub topic: String,
    /// Keys to set or remove.
    pub changes: BTreeMap<String, Option<String>>,
    /// Replace all overrides with the set ones (AlterConfigs) instead of changing only the
    /// named keys (IncrementalAlterConfigs).
    pub replace: bool,
}

impl TopicConfigChange {
    /// The overrides after this change is applied to `current`.
    pub fn apply_to(&self, current: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut configs = if self.replace {
            BTreeMap::new()
        } else {
            current.clone()
        };
        for (k, v) in &self.changes {
            match v {
                Some(v) => configs.insert(k.clone(), v.clone()),
                None => configs.remove(k),
            };
        }
        configs
    }
}

/// An AlterPartition request from a partition leader (ISR change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    /// The requesting broker.
    pub broker_id: i32,
    /// Its broker epoch.
    pub broker_epoch: i64,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// The leader epoch the leader acts under.
    pub leader_epoch: i32,
    /// The partition epoch the change is based on.
    pub partition_epoch: i32,
    /// The proposed ISR.
    pub new_isr: Vec<i32>,
}

/// A broker's registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Broker id.
    pub broker_id: i32,
    /// Random per process start.
    pub incarnation_id: Uuid,
    /// Client endpoints by listener.
    pub endpoints: BTreeMap<String, (String, u16)>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

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

fn unclean_allowed(topic: &TopicImage, settings: &Settings) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .map_or(settings.unclean_leader_election_enable, |v| {
            v.eq_ignore_ascii_case("true")
        })
}

fn is_live(image: &MetadataImage, broker: i32) -> bool {
    image.brokers.get(&broker).is_some_and(|b| !b.fenced)
}

/// The state `p` moves to when `broker` is fenced, or `None` if it is unaffected. `broker` is
/// never elected, whatever `image` says of it, so callers need not mark it fenced first.
fn without_broker(
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
            .find(|r| next.isr.contains(r) && is_live(image, *r));
        next.leader = match clean {
            Some(r) => r,
            None if unclean_allowed(topic, settings) => {
                match p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| *r != broker && is_live(image, *r))
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
    next.partition_epoch += 1;
    Some(next)
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

fn partitions_without(
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

/// The records that unfence `broker` (which has caught up with the metadata): the unfence, and
/// leadership of every offline partition it can lead (it is in the ISR, or unclean election is
/// allowed and it is a replica).
pub fn unfence_broker(
    image: &MetadataImage,
    broker: i32,
    settings: &Settings,
) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&broker) else {
        return Vec::new();
    };
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

/// Checks an AlterPartition request and returns the partition's new state, in Kafka's order of
/// checks: broker epoch, partition, leadership, leader epoch, partition epoch, then the ISR.
/// An ISR equal to the current one changes nothing and returns the current state.
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
        .find(|r| !p.isr.contains(r) && !is_live(image, **r))
    {
        return Err(MetadataError::IneligibleReplica(format!(
            "Broker {r} is fenced and cannot join the ISR of {}-{}.",
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
    next.partition_epoch += 1;
    let record = MetadataRecord::PartitionChange(next.to_record(topic.id));
    Ok((next, Some(record)))
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

fn live_brokers(image: &MetadataImage) -> Vec<i32> {
    image.live_brokers().map(|b| b.id).collect()
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
    let brokers = live_brokers(image);
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
            let n = image.live_brokers().count().max(1);
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
        .filter(|r| is_live(image, *r))
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
            .find(|r| is_live(image, *r))
            .unwrap_or(-1),
        leader_epoch: 0,
        partition_epoch: 0,
        replicas,
        isr,
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
            let n = image.live_brokers().count().max(1);
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
    use std::sync::Arc;

    use super::*;
    use crate::records::MetadataDelta;

    /// An image built the way the controller builds it: by applying records.
    struct Cluster {
        image: MetadataImage,
        settings: Settings,
    }

    impl Cluster {
        fn new(brokers: &[i32]) -> Cluster {
            let mut c = Cluster {
                image: MetadataImage::empty("test"),
                settings: Settings::default(),
            };
            for &b in brokers {
                let reg = BrokerRegistration {
                    broker_id: b,
                    incarnation_id: Uuid::new_v4(),
                    endpoints: BTreeMap::from([(
                        "PLAINTEXT".to_string(),
                        ("127.0.0.1".to_string(), 9000 + b as u16),
                    )]),
                    rack: None,
                };
                let records = register_broker(&c.image, &reg, false, &c.settings).unwrap();
                c.commit(records);
                let records = unfence_broker(&c.image, b, &c.settings);
                c.commit(records);
            }
            c
        }

        fn commit(&mut self, records: Vec<MetadataRecord>) -> i64 {
            let offset = self.image.offset + 1;
            self.image.apply_delta(&MetadataDelta {
                offset,
                controller_epoch: 1,
                controller_id: 1,
                records: Arc::from(records),
            });
            offset
        }

        fn create(&mut self, name: &str, partitions: i32, rf: i32) -> TopicImage {
            let t = NewTopic {
                name: name.into(),
                assignment: Assignment::Auto {
                    partitions,
                    replication_factor: rf,
                },
                configs: BTreeMap::new(),
            };
            let (topic, records) =
                create_topic(&self.image, &t, &BTreeSet::new(), &mut |_| 0).unwrap();
            self.commit(records);
            assert_eq!(self.image.topics[name], topic);
            topic
        }

        fn partition(&self, topic: &str, i: i32) -> PartitionImage {
            self.image.partition(topic, i).unwrap().clone()
        }
    }

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
