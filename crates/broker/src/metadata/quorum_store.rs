//! [`QuorumMetadataStore`]: the broker's [`MetadataStore`] on top of the controller quorum.
//!
//! The image is swapped in by the [`super::follower`] task (readers never block). Changes go
//! to the active controller through a [`ControllerClient`]; the controller answers with the
//! offset that committed them, and this store waits until its own image has reached that
//! offset before answering, so the client's next request to this broker sees the change.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use rivulet_controller::quorum_controller::{PartitionResults, TopicResults};
use rivulet_controller::ControllerClient;
use tokio::sync::watch;

use super::{
    AlterPartition, ElectionType, MetadataError, MetadataImage, MetadataStore, NewPartitions,
    NewTopic, PartitionImage, PartitionResult, ProducerIdBlock, Reassignment, TopicConfigChange,
    TopicImage, TopicRef,
};

/// Metadata followed from the quorum; changes forwarded to the active controller.
pub struct QuorumMetadataStore {
    client: ControllerClient,
    current: ArcSwap<MetadataImage>,
    changes: watch::Sender<Arc<MetadataImage>>,
    broker_epoch: AtomicI64,
    /// How long an answer waits for the local image to catch up with a committed change.
    catch_up_timeout: Duration,
}

impl QuorumMetadataStore {
    /// A store for `client`'s cluster, starting from an empty image.
    pub fn new(client: ControllerClient, catch_up_timeout: Duration) -> Arc<QuorumMetadataStore> {
        let image = Arc::new(MetadataImage::empty(client.cluster_id()));
        Arc::new(QuorumMetadataStore {
            client,
            current: ArcSwap::new(Arc::clone(&image)),
            changes: watch::channel(image).0,
            broker_epoch: AtomicI64::new(-1),
            catch_up_timeout,
        })
    }

    /// The controller client.
    pub fn client(&self) -> &ControllerClient {
        &self.client
    }

    /// Installs a newer image (the follower task).
    pub fn publish(&self, image: Arc<MetadataImage>) {
        self.current.store(Arc::clone(&image));
        self.changes.send_replace(image);
    }

    /// Records the broker epoch (the lifecycle task).
    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    /// Waits until the local image includes `offset` (or the catch-up timeout passes).
    pub async fn wait_for_offset(&self, offset: i64) {
        let mut changes = self.changes.subscribe();
        let reached = tokio::time::timeout(
            self.catch_up_timeout,
            changes.wait_for(|image| image.offset >= offset),
        )
        .await;
        if reached.is_err() {
            tracing::warn!(
                offset,
                "the local metadata did not reach a committed change in time"
            );
        }
    }

    async fn finish(
        &self,
        outcome: Result<TopicResults, MetadataError>,
        count: usize,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        match outcome {
            Ok((results, offset)) => {
                if offset >= 0 {
                    self.wait_for_offset(offset).await;
                }
                results
            }
            Err(e) => vec![Err(e); count],
        }
    }

    /// Waits for the offset that committed per-partition outcomes, then hands them over.
    async fn finish_partitions(
        &self,
        outcome: Result<PartitionResults, MetadataError>,
    ) -> Result<Vec<PartitionResult>, MetadataError> {
        let (results, offset) = outcome?;
        if offset >= 0 {
            self.wait_for_offset(offset).await;
        }
        Ok(results)
    }
}

#[async_trait]
impl MetadataStore for QuorumMetadataStore {
    fn image(&self) -> Arc<MetadataImage> {
        self.current.load_full()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.changes.subscribe()
    }

    async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        let outcome = self.client.create_topics(&topics, validate_only).await;
        self.finish(outcome, topics.len()).await
    }

    async fn delete_topics(&self, topics: Vec<TopicRef>) -> Vec<Result<TopicImage, MetadataError>> {
        let outcome = self.client.delete_topics(&topics).await;
        self.finish(outcome, topics.len()).await
    }

    async fn create_partitions(
        &self,
        topics: Vec<NewPartitions>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        let outcome = self.client.create_partitions(&topics, validate_only).await;
        self.finish(outcome, topics.len()).await
    }

    async fn alter_topic_configs(
        &self,
        changes: Vec<TopicConfigChange>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        let outcome = self
            .client
            .alter_topic_configs(&changes, validate_only)
            .await;
        self.finish(outcome, changes.len()).await
    }

    async fn allocate_producer_ids(
        &self,
        broker_id: i32,
    ) -> Result<ProducerIdBlock, MetadataError> {
        let (first, size) = self
            .client
            .allocate_producer_ids(broker_id, self.broker_epoch())
            .await?;
        Ok(ProducerIdBlock { first, size })
    }

    fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<PartitionImage, MetadataError> {
        let (state, offset) = self.client.alter_partition(&request).await?;
        if offset >= 0 {
            self.wait_for_offset(offset).await;
        }
        Ok(state)
    }

    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<PartitionResult>, MetadataError> {
        let outcome = self
            .client
            .elect_leaders(election, partitions.as_deref())
            .await;
        self.finish_partitions(outcome).await
    }

    async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<Reassignment>,
    ) -> Result<Vec<PartitionResult>, MetadataError> {
        let outcome = self
            .client
            .alter_partition_reassignments(&reassignments)
            .await;
        self.finish_partitions(outcome).await
    }

    async fn request_controlled_shutdown(&self, broker_id: i32) -> Result<bool, MetadataError> {
        let reply = self
            .client
            .heartbeat_shutdown(broker_id, self.broker_epoch(), self.image().offset)
            .await?;
        Ok(reply.should_shut_down)
    }
}
