//! Metadata records: the facts the controller appends to the Raft log, and the deltas brokers
//! follow.
//!
//! A record is a fact, decided by the active controller against the current image before it
//! is proposed; applying it never fails, so every node that replays the log reaches the same
//! image. Records are stored and sent as JSON tagged by `type`:
//!
//! * a field added later carries `#[serde(default)]`, so an older log stays readable;
//! * fields a node does not know are ignored, so an older node reads a newer log;
//! * a record type a node does not know decodes as [`MetadataRecord::Unknown`] and is skipped
//!   with a warning, rather than stopping the node.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One metadata fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker (re-)registered; its broker epoch is the offset of this record. A registered
    /// broker starts fenced.
    RegisterBroker(RegisterBrokerRecord),
    /// The broker missed its session timeout (or asked to leave): it leads nothing.
    FenceBroker {
        /// Broker id.
        broker_id: i32,
        /// The registration this applies to.
        broker_epoch: i64,
    },
    /// The broker caught up with the metadata and may lead partitions.
    UnfenceBroker {
        /// Broker id.
        broker_id: i32,
        /// The registration this applies to.
        broker_epoch: i64,
    },
    /// The broker asked to shut down (controlled shutdown): from now on nothing is elected onto
    /// it, no ISR takes it back, and this registration is never unfenced again.
    BrokerControlledShutdown {
        /// Broker id.
        broker_id: i32,
        /// The registration this applies to.
        broker_epoch: i64,
    },
    /// A new topic (its partitions follow as [`MetadataRecord::PartitionChange`] records).
    Topic(TopicRecord),
    /// The whole state of one partition: created, or changed (leader, ISR, replicas).
    PartitionChange(PartitionRecord),
    /// A topic's config overrides, replaced as a whole.
    TopicConfigs {
        /// Topic id.
        topic_id: Uuid,
        /// Every override after the change.
        configs: BTreeMap<String, String>,
    },
    /// Producer ids `[first, first + size)` now belong to `broker_id`.
    ProducerIdBlock {
        /// Broker the block was handed to.
        broker_id: i32,
        /// First id.
        first: i64,
        /// Number of ids.
        size: i64,
    },
    /// The topic and all its partitions are gone.
    RemoveTopic {
        /// Topic id.
        topic_id: Uuid,
    },
    /// A record type this version does not know (written by a newer node): skipped.
    #[serde(other)]
    Unknown,
}

/// [`MetadataRecord::RegisterBroker`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    /// Broker id (`node.id`).
    pub broker_id: i32,
    /// A random id per process start.
    pub incarnation_id: Uuid,
    /// Client endpoints by listener name.
    pub endpoints: BTreeMap<String, (String, u16)>,
    /// `broker.rack`.
    #[serde(default)]
    pub rack: Option<String>,
}

/// [`MetadataRecord::Topic`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Config overrides at creation.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// [`MetadataRecord::PartitionChange`]: the partition's state after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// Leader broker id, or -1 when offline.
    pub leader: i32,
    /// Leader epoch: bumped on every leader change.
    pub leader_epoch: i32,
    /// Partition epoch: bumped on every change.
    pub partition_epoch: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas a reassignment is adding (KIP-455): in `replicas`, not yet all in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment will remove once the adding ones have joined the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

/// One committed entry of the metadata log as brokers follow it: its offset (the Raft log
/// index), the controller epoch (Raft term) and leader that wrote it, and its records (none for
/// Raft's own entries, which still advance the offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataDelta {
    /// Raft log index.
    pub offset: i64,
    /// Raft term of the entry: the controller epoch.
    pub controller_epoch: i32,
    /// The controller that wrote the entry.
    pub controller_id: i32,
    /// The records, applied in order.
    pub records: Arc<[MetadataRecord]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_record_without_new_fields_still_decodes() {
        // Written before `rack` existed.
        let old = r#"{"type":"RegisterBroker","broker_id":1,
            "incarnation_id":"00000000-0000-0000-0000-000000000001",
            "endpoints":{"PLAINTEXT":["h",9092]}}"#;
        let r: MetadataRecord = serde_json::from_str(old).unwrap();
        assert!(matches!(
            r,
            MetadataRecord::RegisterBroker(RegisterBrokerRecord { rack: None, .. })
        ));
    }

    #[test]
    fn a_partition_record_from_before_reassignments_decodes_without_any() {
        let old = r#"{"type":"PartitionChange","topic_id":"00000000-0000-0000-0000-000000000001",
            "partition":0,"leader":1,"leader_epoch":0,"partition_epoch":0,
            "replicas":[1,2],"isr":[1,2]}"#;
        let MetadataRecord::PartitionChange(p) = serde_json::from_str(old).unwrap() else {
            panic!("not a partition record");
        };
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        // And a record without a reassignment is written as before.
        let json = serde_json::to_string(&MetadataRecord::PartitionChange(p)).unwrap();
        assert!(!json.contains("adding_replicas"), "{json}");
    }

    #[test]
    fn unknown_fields_and_record_types_are_tolerated() {
        let newer =
            r#"{"type":"RemoveTopic","topic_id":"00000000-0000-0000-0000-000000000001","why":"x"}"#;
        assert!(matches!(
            serde_json::from_str::<MetadataRecord>(newer).unwrap(),
            MetadataRecord::RemoveTopic { .. }
        ));
        let unknown = r#"{"type":"FeatureLevel","name":"metadata.version","level":7}"#;
        assert_eq!(
            serde_json::from_str::<MetadataRecord>(unknown).unwrap(),
            MetadataRecord::Unknown
        );
    }
}
