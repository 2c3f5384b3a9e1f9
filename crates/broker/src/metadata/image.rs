//! [`MetadataImage`]: one immutable version of the cluster metadata. A new image replaces the old
//! one as a whole; readers hold an `Arc` to the version they started with.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker of the cluster and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    /// `node.id`.
    pub id: i32,
    /// Advertised endpoints by listener name: `(host, port)`.
    pub endpoints: BTreeMap<String, (String, u16)>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of client metadata.
    pub fenced: bool,
}

/// One partition's placement and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl MetadataImage {
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
}
