//! What the active controller decides: pure functions from the current [`MetadataImage`] and a
//! request to the records that carry out the change, or the Kafka error that refuses it.
//!
//! Nothing here does I/O, so every rule (placement, leader election, the epoch checks of
//! AlterPartition, reassignment) is tested without sockets. [`crate::quorum_controller`] calls
//! these one request at a time and proposes the records to the Raft log.
//!
//! One module per concept:
//!
//! * [`topics`]: topic and partition creation (placement), deletion, config changes.
//! * [`brokers`]: registration, fencing and unfencing, controlled shutdown, producer id blocks.
//! * [`elections`]: leader election when a broker goes, ElectLeaders (preferred and unclean),
//!   and the automatic preferred-leader rebalance.
//! * [`isr`]: AlterPartition, the ISR changes partition leaders ask for.
//! * [`reassignment`]: AlterPartitionReassignments (KIP-455) and its completion.
//!
//! Leader election follows Kafka's KRaft controller: a new leader is the first replica, in
//! assignment order, that is in the ISR and active (unfenced and not in controlled shutdown).
//! When none is, the partition goes offline (leader -1) keeping its last ISR member, unless the
//! topic allows unclean election (`unclean.leader.election.enable`), in which case any active
//! replica is elected with an ISR of itself. Every leader change bumps the leader epoch; every
//! change bumps the partition epoch.

use std::collections::BTreeMap;
use std::time::Duration;

use uuid::Uuid;

use crate::error::MetadataError;
use crate::image::{MetadataImage, PartitionImage, TopicImage};

pub mod brokers;
pub mod elections;
pub mod isr;
pub mod reassignment;
pub mod topics;

#[cfg(test)]
pub(crate) mod testing;

pub use brokers::{
    allocate_producer_ids, check_broker_epoch, controlled_shutdown, fence_broker, may_shut_down,
    register_broker, unfence_broker,
};
pub use elections::{elect_leaders, rebalance_leaders};
pub use isr::alter_partition;
pub use reassignment::alter_partition_reassignments;
pub use topics::{alter_topic_configs, create_partitions, create_topic, delete_topic, find_topic};

/// Producer ids handed to a broker at a time (Kafka's `ProducerIdsBlock` size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Cluster-wide settings the controller's decisions depend on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `delete.topic.enable` (true).
    pub delete_topic_enable: bool,
    /// `unclean.leader.election.enable` (false): the default for topics without an override.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable` (true): the active controller periodically moves
    /// leadership back to preferred replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (300 s): how often it checks.
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage` (10): the share of a broker's preferred
    /// partitions it may not lead before a rebalance moves them back.
    pub leader_imbalance_per_broker_percentage: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delete_topic_enable: true,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            leader_imbalance_per_broker_percentage: 10,
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

/// The election an ElectLeaders request asks for (KIP-460).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// 0: make the preferred replica (the first) leader, if it is active and in the ISR.
    Preferred,
    /// 1: give a leader to partitions that have none: an active ISR member if there is one,
    /// else any active replica, with an ISR of itself.
    Unclean,
}

impl ElectionType {
    /// The election of a Kafka `election_type` code, if it names one.
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    /// Its Kafka code.
    pub fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// One partition's reassignment request (AlterPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The target replicas, preferred leader first; `None` cancels the ongoing reassignment.
    pub target: Option<Vec<i32>>,
}

/// One partition's outcome in a request naming many (ElectLeaders, AlterPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Done, or why not.
    pub result: Result<(), MetadataError>,
}

/// Whether `topic` allows electing a replica outside the ISR (its
/// `unclean.leader.election.enable`, else the cluster default).
fn unclean_allowed(topic: &TopicImage, settings: &Settings) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .map_or(settings.unclean_leader_election_enable, |v| {
            v.eq_ignore_ascii_case("true")
        })
}

/// Whether `broker` may lead or join an ISR: registered, unfenced, not in controlled shutdown.
fn is_active(image: &MetadataImage, broker: i32) -> bool {
    image.brokers.get(&broker).is_some_and(|b| b.is_active())
}

/// The partition `index` of the topic named `topic`: UNKNOWN_TOPIC_OR_PARTITION when either is
/// missing.
fn find_partition<'a>(
    image: &'a MetadataImage,
    topic: &str,
    index: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), MetadataError> {
    let t = image
        .topics
        .get(topic)
        .ok_or_else(|| MetadataError::UnknownTopic(topic.to_owned()))?;
    let p = usize::try_from(index)
        .ok()
        .and_then(|i| t.partitions.get(i))
        .ok_or_else(|| MetadataError::UnknownPartition(topic.to_owned(), index))?;
    Ok((t, p))
}

/// Sets the epochs of `next`, the new state of `before`: the partition epoch always moves on;
/// the leader epoch when the leader changes, or when replicas leave the assignment (as Kafka
/// does, so a removed follower's fetches at the old epoch are fenced).
fn bump_epochs(before: &PartitionImage, next: &mut PartitionImage) {
    let replicas_removed = before.replicas.iter().any(|r| !next.replicas.contains(r));
    let leader_moved = next.leader != before.leader || replicas_removed;
    next.leader_epoch = before.leader_epoch + i32::from(leader_moved);
    next.partition_epoch = before.partition_epoch + 1;
}
