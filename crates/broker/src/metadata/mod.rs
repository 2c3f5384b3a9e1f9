//! Cluster metadata as the broker sees it: an immutable [`MetadataImage`] that request handlers
//! read without locks, and the [`MetadataStore`] that changes it.
//!
//! Until the Raft controller quorum lands, [`local::LocalMetadataStore`] stands in: a single node
//! that persists its image to a file. Handlers only see the trait, so the quorum replaces it
//! without touching them.

pub mod image;
pub mod local;
pub mod placement;
pub mod topic_name;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};

/// Why a metadata change was refused. The broker maps each to a Kafka error code in
/// [`crate::error::metadata_error_code`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// `TOPIC_ALREADY_EXISTS`.
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// `INVALID_TOPIC_EXCEPTION`: a name breaking Kafka's rules.
    #[error("{0}")]
    InvalidTopic(String),
    /// `INVALID_PARTITIONS`.
    #[error("{0}")]
    InvalidPartitions(String),
    /// `INVALID_REPLICATION_FACTOR`.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// `INVALID_REPLICA_ASSIGNMENT`.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// `INVALID_CONFIG`.
    #[error("{0}")]
    InvalidConfig(String),
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    #[error("Topic '{0}' does not exist.")]
    UnknownTopic(String),
    /// `UNKNOWN_TOPIC_ID`.
    #[error("Topic id {0} does not exist.")]
    UnknownTopicId(Uuid),
    /// `TOPIC_DELETION_DISABLED` (`delete.topic.enable=false`).
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    /// The store could not persist the change: `KAFKA_STORAGE_ERROR`.
    #[error("metadata could not be stored: {0}")]
    Storage(String),
}

/// A topic to create, after defaults were applied by the request handler.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Topic name, already validated.
    pub name: String,
    /// Replica assignment per partition (broker ids, preferred leader first).
    pub assignment: Vec<Vec<i32>>,
    /// Topic config overrides (already validated).
    pub configs: BTreeMap<String, String>,
}

/// How a topic to delete is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    /// By name (DeleteTopics v0-5).
    Name(String),
    /// By id (DeleteTopics v6).
    Id(Uuid),
}

/// A block of producer ids reserved for one broker, so no two brokers hand out the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    /// First id of the block.
    pub first: i64,
    /// Number of ids in it.
    pub size: i64,
}

/// What changes cluster metadata: implemented by the single-node store now and by the controller
/// quorum later. Reads go through [`MetadataStore::image`], which never blocks.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// The current image.
    fn image(&self) -> Arc<MetadataImage>;
    /// A receiver that sees every new image.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// Creates topics (all-or-nothing per topic); with `validate_only`, only checks them.
    /// Answers once the change is durable.
    async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>>;
    /// Deletes topics; answers once the deletion is durable.
    async fn delete_topics(&self, topics: Vec<TopicRef>) -> Vec<Result<TopicImage, MetadataError>>;
    /// Reserves the next block of producer ids for `broker_id`.
    async fn allocate_producer_ids(&self, broker_id: i32)
        -> Result<ProducerIdBlock, MetadataError>;
}
