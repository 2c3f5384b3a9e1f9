//! [`MetadataImage`]: one immutable version of the cluster metadata, the result of applying the
//! metadata log up to [`MetadataImage::offset`]. A new image replaces the old one as a whole;
//! readers hold an `Arc` to the version they started with and never lock.
//!
//! Applying a record ([`MetadataImage::apply_delta`]) is deterministic and never fails: the
//! active controller checked it before proposing it. A record that refers to something absent
//! (a topic removed meanwhile) is skipped.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::{MetadataDelta, MetadataRecord, PartitionRecord};

/// A broker of the cluster and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    /// `node.id`.
    pub id: i32,
    /// The broker epoch: the offset of its registration record.
    #[serde(default)]
    pub epoch: i64,
    /// The registering process's random id.
    #[serde(default)]
    pub incarnation_id: Uuid,
    /// Advertised endpoints by listener name: `(host, port)`.
    pub endpoints: BTreeMap<String, (String, u16)>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of client metadata.
    pub fenced: bool,
    /// The broker is in controlled shutdown: still serving, but nothing is elected onto it and
    /// no ISR takes it back (Kafka's `inControlledShutdown`).
    #[serde(default)]
    pub in_controlled_shutdown: bool,
}

impl BrokerImage {
    /// Whether the broker may be elected leader or join an ISR: unfenced and not shutting down
    /// (Kafka's "active" broker).
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One partition's placement and leadership.
///
/// During a reassignment (KIP-455) `replicas` holds the target replicas followed by the ones
/// being removed; `adding_replicas` are in `replicas` and follow the leader like any other
/// replica until they join the ISR, which completes the reassignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Partition index.
    pub index: i32,
    /// Leader broker id, or -1 when offline.
    pub leader: i32,
    /// Bumped each time leadership changes.
    pub leader_epoch: i32,
    /// Bumped on every change of the partition (leader or ISR).
    pub partition_epoch: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas a reassignment is adding: in `replicas`, not yet all in the ISR.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment will remove once every adding replica is in the ISR.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

/// A topic: id, partitions and config overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id (Kafka's topic UUID).
    pub id: Uuid,
    /// Partitions in index order.
    pub partitions: Vec<PartitionImage>,
    /// Topic-level config overrides (`retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    /// True for Kafka's internal topics (`__consumer_offsets`, `__transaction_state`).
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
    }
}

/// The whole cluster metadata at one point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Cluster id (Kafka's base64 UUID form).
    pub cluster_id: String,
    /// The metadata log offset this image includes (-1: nothing applied yet).
    #[serde(default = "no_offset")]
    pub offset: i64,
    /// The controller epoch (Raft term) of the last applied entry.
    #[serde(default)]
    pub controller_epoch: i32,
    /// The active controller's node id, or -1.
    pub controller_id: i32,
    /// Brokers by id.
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Topic names by id (derived from `topics`).
    #[serde(skip)]
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// The next producer id not yet handed out in a block.
    pub next_producer_id: i64,
}

fn no_offset() -> i64 {
    -1
}

impl MetadataImage {
    /// An empty image of cluster `cluster_id`, before any record.
    pub fn empty(cluster_id: &str) -> MetadataImage {
        MetadataImage {
            cluster_id: cluster_id.to_owned(),
            offset: -1,
            controller_epoch: 0,
            controller_id: -1,
            ..MetadataImage::default()
        }
    }

    /// Applies one committed entry. Entries must come in offset order; one at or below
    /// [`MetadataImage::offset`] was applied already and is ignored.
    pub fn apply_delta(&mut self, delta: &MetadataDelta) {
        if delta.offset <= self.offset {
            return;
        }
        self.offset = delta.offset;
        self.controller_epoch = delta.controller_epoch;
        self.controller_id = delta.controller_id;
        for record in delta.records.iter() {
            self.apply_record(delta.offset, record);
        }
    }

    fn apply_record(&mut self, offset: i64, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                self.brokers.insert(
                    r.broker_id,
                    BrokerImage {
                        id: r.broker_id,
                        epoch: offset,
                        incarnation_id: r.incarnation_id,
                        endpoints: r.endpoints.clone(),
                        rack: r.rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            }
            | MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.epoch == *broker_epoch {
                        b.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                    }
                }
            }
            MetadataRecord::BrokerControlledShutdown {
                broker_id,
                broker_epoch,
            } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.epoch == *broker_epoch {
                        b.in_controlled_shutdown = true;
                    }
                }
            }
            MetadataRecord::Topic(t) => {
                self.topic_names_by_id.insert(t.id, t.name.clone());
                self.topics.insert(
                    t.name.clone(),
                    TopicImage {
                        name: t.name.clone(),
                        id: t.id,
                        partitions: Vec::new(),
                        configs: t.configs.clone(),
                    },
                );
            }
            MetadataRecord::PartitionChange(p) => self.apply_partition(p),
            MetadataRecord::TopicConfigs { topic_id, configs } => {
                if let Some(t) = self.topic_by_id_mut(topic_id) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::ProducerIdBlock { first, size, .. } => {
                self.next_producer_id = self.next_producer_id.max(first + size);
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::Unknown => {
                tracing::warn!(offset, "skipping a metadata record of an unknown type");
            }
        }
    }

    fn apply_partition(&mut self, p: &PartitionRecord) {
        let Some(topic) = self.topic_by_id_mut(&p.topic_id) else {
            return;
        };
        let state = PartitionImage {
            index: p.partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            adding_replicas: p.adding_replicas.clone(),
            removing_replicas: p.removing_replicas.clone(),
        };
        let index = p.partition as usize;
        if index < topic.partitions.len() {
            topic.partitions[index] = state;
        } else if index == topic.partitions.len() {
            topic.partitions.push(state);
        } else {
            tracing::warn!(topic = %topic.name, partition = p.partition, "skipping a partition record out of order");
        }
    }

    fn topic_by_id_mut(&mut self, id: &Uuid) -> Option<&mut TopicImage> {
        let name = self.topic_names_by_id.get(id)?;
        self.topics.get_mut(name)
    }

    /// The partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionImage> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
    }

    /// Rebuilds the derived indexes after a change or a load.
    pub fn reindex(&mut self) {
        self.topic_names_by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    /// Unfenced brokers, in id order.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Brokers that may take new replicas and leaderships: unfenced and not in controlled
    /// shutdown ([`BrokerImage::is_active`]), in id order.
    pub fn active_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| b.is_active())
    }
}

impl PartitionImage {
    /// This state as the record that would set it, for `topic_id`.
    pub fn to_record(&self, topic_id: Uuid) -> PartitionRecord {
        PartitionRecord {
            topic_id,
            partition: self.index,
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            adding_replicas: self.adding_replicas.clone(),
            removing_replicas: self.removing_replicas.clone(),
        }
    }

    /// Whether a reassignment of this partition is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas before the ongoing reassignment (all of them when none is in progress).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }

    /// The replicas the ongoing reassignment leads to (all of them when none is in progress).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
}
