//! Cluster metadata as the broker sees it: an immutable [`MetadataImage`] that request handlers
//! read without locks, kept current by following the controller quorum's committed log
//! ([`follower`]), and the [`MetadataStore`] through which handlers ask for changes.
//!
//! The image types, the records and the placement rules belong to the controller crate and are
//! re-exported here; [`quorum_store::QuorumMetadataStore`] forwards changes to the active
//! controller and answers once this broker's own image includes them.

pub mod follower;
pub mod quorum_store;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

pub use rivulet_controller::decisions::AlterPartition;
pub use rivulet_controller::image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use rivulet_controller::{
    ids, placement, topic_name, Assignment, ElectionType, MetadataError, NewPartitions, NewTopic,
    PartitionResult, Reassignment, TopicConfigChange, TopicRef,
};

/// A block of producer ids reserved for one broker, so no two brokers hand out the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    /// First id of the block.
    pub first: i64,
    /// Number of ids in it.
    pub size: i64,
}

/// What changes cluster metadata. Reads go through [`MetadataStore::image`], which never blocks;
/// every change answers once it is committed by the quorum and visible in this broker's image.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// The current image.
    fn image(&self) -> Arc<MetadataImage>;
    /// A receiver that sees every new image.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// Creates topics (all-or-nothing per topic); with `validate_only`, only checks them.
    async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>>;
    /// Deletes topics.
    async fn delete_topics(&self, topics: Vec<TopicRef>) -> Vec<Result<TopicImage, MetadataError>>;
    /// Adds partitions to topics (CreatePartitions); the count can only grow.
    async fn create_partitions(
        &self,
        topics: Vec<NewPartitions>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>>;
    /// Changes topic config overrides (already validated by the caller).
    async fn alter_topic_configs(
        &self,
        changes: Vec<TopicConfigChange>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>>;
    /// Reserves the next block of producer ids for this broker.
    async fn allocate_producer_ids(&self, broker_id: i32)
        -> Result<ProducerIdBlock, MetadataError>;
    /// This broker's epoch from its registration (-1 before it registered).
    fn broker_epoch(&self) -> i64;
    /// Asks the controller to change a partition's ISR (the partition leader). Answers with the
    /// committed state once this broker's image includes it.
    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<PartitionImage, MetadataError>;
    /// Elects leaders (ElectLeaders) for `partitions`, or for every partition when `None`
    /// (then partitions needing no election are left out). One result per distinct partition;
    /// answers once this broker's image includes the elections. `Err` only when the request as
    /// a whole failed (no controller answered).
    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<PartitionResult>, MetadataError>;
    /// Starts or cancels partition reassignments (AlterPartitionReassignments): one result per
    /// entry, in order; answers once this broker's image includes the changes. `Err` only when
    /// the request as a whole failed.
    async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<Reassignment>,
    ) -> Result<Vec<PartitionResult>, MetadataError>;
    /// Sends one controlled-shutdown heartbeat for this broker (`broker_id`, with its current
    /// epoch and metadata offset): the controller moves its leaderships away. `Ok(true)` once
    /// the controller lets it stop (it is then fenced).
    async fn request_controlled_shutdown(&self, broker_id: i32) -> Result<bool, MetadataError>;
}
