//! The gRPC services a controller node serves on its controller listener: [`RaftServer`]
//! (openraft's RPCs from other voters) and [`ControllerServer`] (brokers' requests, the
//! metadata stream and the brokers' session streams). Both refuse requests from another
//! cluster.
//!
//! A session stream's end is seen by holding the sending half of its response channel and
//! awaiting [`mpsc::Sender::closed`]: hyper drops the response body, and with it the receiving
//! half, when the client cancels the call or its connection closes (the client's process died,
//! or the connection was reset).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert;
use super::proto::controller_service_server::ControllerService;
use super::proto::raft_service_server::RaftService;
use super::proto::{self, metadata_batch, RaftMessage};
use crate::decisions::{AlterPartition, BrokerRegistration, ElectionType};
use crate::error::MetadataError;
use crate::quorum_controller::{Controller, PartitionResults, TopicResults};
use crate::raft::state_machine::{FeedRead, MetadataFeed};
use crate::raft::Raft;

fn check_cluster(expected: &str, got: &str) -> Result<(), MetadataError> {
    if got == expected {
        Ok(())
    } else {
        Err(MetadataError::InconsistentClusterId {
            got: got.to_owned(),
            expected: expected.to_owned(),
        })
    }
}

/// openraft's RPCs, decoded and handed to the local Raft instance.
pub struct RaftServer {
    raft: Raft,
    cluster_id: String,
}

impl RaftServer {
    /// Serves `raft` for cluster `cluster_id`.
    pub fn new(raft: Raft, cluster_id: String) -> Self {
        RaftServer { raft, cluster_id }
    }

    fn decode<T: DeserializeOwned>(&self, message: RaftMessage) -> Result<T, Status> {
        check_cluster(&self.cluster_id, &message.cluster_id)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        serde_json::from_slice(&message.payload)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }

    fn reply<T: Serialize>(&self, value: &T) -> Result<Response<RaftMessage>, Status> {
        let payload = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(RaftMessage {
            cluster_id: self.cluster_id.clone(),
            payload,
        }))
    }
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        let result = self.raft.append_entries(rpc).await;
        self.reply(&result)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        let result = self.raft.vote(rpc).await;
        self.reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        let result = self.raft.install_snapshot(rpc).await;
        self.reply(&result)
    }
}

/// Brokers' requests to the controller, and the metadata stream.
pub struct ControllerServer {
    controller: Controller,
    cluster_id: String,
}

impl ControllerServer {
    /// Serves `controller` for cluster `cluster_id`.
    pub fn new(controller: Controller, cluster_id: String) -> Self {
        ControllerServer {
            controller,
            cluster_id,
        }
    }

    fn check(&self, cluster_id: &str) -> Result<(), MetadataError> {
        check_cluster(&self.cluster_id, cluster_id)
    }
}

fn err<T>(e: &MetadataError) -> (Option<proto::ErrorInfo>, T)
where
    T: Default,
{
    (Some(convert::error_info(e)), T::default())
}

fn topic_results(
    r: Result<TopicResults, MetadataError>,
) -> (Option<proto::ErrorInfo>, Vec<proto::TopicResult>, i64) {
    match r {
        Ok((results, offset)) => (None, convert::topic_results_to_wire(&results), offset),
        Err(e) => (Some(convert::error_info(&e)), Vec::new(), -1),
    }
}

fn partition_results(
    r: Result<PartitionResults, MetadataError>,
) -> (Option<proto::ErrorInfo>, Vec<proto::PartitionResult>, i64) {
    match r {
        Ok((results, offset)) => (None, convert::partition_results_to_wire(&results), offset),
        Err(e) => (Some(convert::error_info(&e)), Vec::new(), -1),
    }
}

/// Metadata batches are sent at most this many deltas at a time.
const DELTAS_PER_BATCH: usize = 256;

type MetadataStream = Pin<Box<dyn Stream<Item = Result<proto::MetadataBatch, Status>> + Send>>;

type SessionStream = Pin<Box<dyn Stream<Item = Result<proto::BrokerSessionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ControllerService for ControllerServer {
    async fn register_broker(
        &self,
        request: Request<proto::RegisterBrokerRequest>,
    ) -> Result<Response<proto::RegisterBrokerResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            let incarnation_id = Uuid::parse_str(&r.incarnation_id)
                .map_err(|_| MetadataError::InvalidRequest("bad incarnation id".into()))?;
            let endpoints: BTreeMap<String, (String, u16)> = r
                .endpoints
                .into_iter()
                .map(|e| (e.listener, (e.host, u16::try_from(e.port).unwrap_or(0))))
                .collect();
            self.controller
                .register_broker(BrokerRegistration {
                    broker_id: r.broker_id,
                    incarnation_id,
                    endpoints,
                    rack: r.rack,
                })
                .await
        }
        .await;
        let (error, broker_epoch) = match result {
            Ok(epoch) => (None, epoch),
            Err(e) => err(&e),
        };
        Ok(Response::new(proto::RegisterBrokerResponse {
            error,
            broker_epoch,
        }))
    }

    async fn broker_heartbeat(
        &self,
        request: Request<proto::BrokerHeartbeatRequest>,
    ) -> Result<Response<proto::BrokerHeartbeatResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            if r.want_shut_down {
                self.controller
                    .heartbeat_shutdown(r.broker_id, r.broker_epoch, r.metadata_offset)
                    .await
            } else {
                self.controller
                    .heartbeat(r.broker_id, r.broker_epoch, r.metadata_offset)
                    .await
            }
        }
        .await;
        Ok(Response::new(match result {
            Ok(h) => proto::BrokerHeartbeatResponse {
                error: None,
                is_caught_up: h.is_caught_up,
                is_fenced: h.is_fenced,
                controller_epoch: h.controller_epoch,
                should_shut_down: h.should_shut_down,
            },
            Err(e) => proto::BrokerHeartbeatResponse {
                error: Some(convert::error_info(&e)),
                is_fenced: true,
                ..Default::default()
            },
        }))
    }

    async fn alter_partition(
        &self,
        request: Request<proto::AlterPartitionRequest>,
    ) -> Result<Response<proto::AlterPartitionResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            self.controller
                .alter_partition(AlterPartition {
                    broker_id: r.broker_id,
                    broker_epoch: r.broker_epoch,
                    topic_id: convert::uuid(&r.topic_id)?,
                    partition: r.partition,
                    leader_epoch: r.leader_epoch,
                    partition_epoch: r.partition_epoch,
                    new_isr: r.new_isr,
                })
                .await
        }
        .await;
        Ok(Response::new(match result {
            Ok((state, offset)) => proto::AlterPartitionResponse {
                error: None,
                state: Some(convert::partition_to_wire(&state)),
                offset,
            },
            Err(e) => proto::AlterPartitionResponse {
                error: Some(convert::error_info(&e)),
                ..Default::default()
            },
        }))
    }

    async fn allocate_producer_ids(
        &self,
        request: Request<proto::AllocateProducerIdsRequest>,
    ) -> Result<Response<proto::AllocateProducerIdsResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            self.controller
                .allocate_producer_ids(r.broker_id, r.broker_epoch)
                .await
        }
        .await;
        let (error, (first_producer_id, size)) = match result {
            Ok(block) => (None, block),
            Err(e) => err(&e),
        };
        Ok(Response::new(proto::AllocateProducerIdsResponse {
            error,
            first_producer_id,
            size,
        }))
    }

    async fn create_topics(
        &self,
        request: Request<proto::CreateTopicsRequest>,
    ) -> Result<Response<proto::CreateTopicsResponse>, Status> {
        let r = request.into_inner();
        let result = match self.check(&r.cluster_id) {
            Err(e) => Err(e),
            Ok(()) => {
                let topics = r
                    .topics
                    .into_iter()
                    .map(convert::new_topic_from_wire)
                    .collect();
                self.controller.create_topics(topics, r.validate_only).await
            }
        };
        let (error, results, offset) = topic_results(result);
        Ok(Response::new(proto::CreateTopicsResponse {
            error,
            results,
            offset,
        }))
    }

    async fn delete_topics(
        &self,
        request: Request<proto::DeleteTopicsRequest>,
    ) -> Result<Response<proto::DeleteTopicsResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            let topics = r
                .topics
                .into_iter()
                .map(convert::topic_ref_from_wire)
                .collect::<Result<Vec<_>, _>>()?;
            self.controller.delete_topics(topics).await
        }
        .await;
        let (error, results, offset) = topic_results(result);
        Ok(Response::new(proto::DeleteTopicsResponse {
            error,
            results,
            offset,
        }))
    }

    async fn create_partitions(
        &self,
        request: Request<proto::CreatePartitionsRequest>,
    ) -> Result<Response<proto::CreatePartitionsResponse>, Status> {
        let r = request.into_inner();
        let result = match self.check(&r.cluster_id) {
            Err(e) => Err(e),
            Ok(()) => {
                let topics = r
                    .topics
                    .into_iter()
                    .map(convert::new_partitions_from_wire)
                    .collect();
                self.controller
                    .create_partitions(topics, r.validate_only)
                    .await
            }
        };
        let (error, results, offset) = topic_results(result);
        Ok(Response::new(proto::CreatePartitionsResponse {
            error,
            results,
            offset,
        }))
    }

    async fn alter_topic_configs(
        &self,
        request: Request<proto::AlterTopicConfigsRequest>,
    ) -> Result<Response<proto::AlterTopicConfigsResponse>, Status> {
        let r = request.into_inner();
        let result = match self.check(&r.cluster_id) {
            Err(e) => Err(e),
            Ok(()) => {
                let changes = r
                    .topics
                    .into_iter()
                    .map(convert::config_change_from_wire)
                    .collect();
                self.controller
                    .alter_topic_configs(changes, r.validate_only)
                    .await
            }
        };
        let (error, results, offset) = topic_results(result);
        Ok(Response::new(proto::AlterTopicConfigsResponse {
            error,
            results,
            offset,
        }))
    }

    async fn elect_leaders(
        &self,
        request: Request<proto::ElectLeadersRequest>,
    ) -> Result<Response<proto::ElectLeadersResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            let election = i8::try_from(r.election_type)
                .ok()
                .and_then(ElectionType::from_code)
                .ok_or_else(|| {
                    MetadataError::InvalidRequest(format!(
                        "Unknown election type {}.",
                        r.election_type
                    ))
                })?;
            let partitions =
                (!r.all_partitions).then(|| convert::partitions_from_wire(r.partitions));
            self.controller.elect_leaders(election, partitions).await
        }
        .await;
        let (error, results, offset) = partition_results(result);
        Ok(Response::new(proto::ElectLeadersResponse {
            error,
            results,
            offset,
        }))
    }

    async fn alter_partition_reassignments(
        &self,
        request: Request<proto::AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<proto::AlterPartitionReassignmentsResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            self.check(&r.cluster_id)?;
            let reassignments = r
                .partitions
                .into_iter()
                .map(convert::reassignment_from_wire)
                .collect();
            self.controller
                .alter_partition_reassignments(reassignments)
                .await
        }
        .await;
        let (error, results, offset) = partition_results(result);
        Ok(Response::new(proto::AlterPartitionReassignmentsResponse {
            error,
            results,
            offset,
        }))
    }

    type FetchMetadataStream = MetadataStream;

    async fn fetch_metadata(
        &self,
        request: Request<proto::FetchMetadataRequest>,
    ) -> Result<Response<Self::FetchMetadataStream>, Status> {
        let r = request.into_inner();
        self.check(&r.cluster_id)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(stream_metadata(
            Arc::clone(self.controller.feed()),
            r.after_offset,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type BrokerSessionStream = SessionStream;

    async fn broker_session(
        &self,
        request: Request<proto::BrokerSessionRequest>,
    ) -> Result<Response<Self::BrokerSessionStream>, Status> {
        let r = request.into_inner();
        self.check(&r.cluster_id)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Result<proto::BrokerSessionEvent, Status>>(1);
        // Noted before the stream is answered, so its close is always noted after its open.
        self.controller
            .session_stream_opened(r.broker_id, r.broker_epoch)
            .await;
        let controller = self.controller.clone();
        tokio::spawn(async move {
            tx.closed().await;
            tracing::debug!(
                broker = r.broker_id,
                broker_epoch = r.broker_epoch,
                "a broker's session stream closed"
            );
            controller
                .session_stream_closed(r.broker_id, r.broker_epoch, Instant::now())
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends everything committed after `after`, then each new entry, until the receiver goes.
async fn stream_metadata(
    feed: Arc<MetadataFeed>,
    mut after: i64,
    tx: mpsc::Sender<Result<proto::MetadataBatch, Status>>,
) {
    let mut changes = feed.subscribe();
    loop {
        changes.borrow_and_update();
        let batches: Vec<proto::MetadataBatch> = match feed.read_after(after) {
            FeedRead::Snapshot(image) => {
                after = image.offset;
                match serde_json::to_vec(&*image) {
                    Ok(bytes) => vec![proto::MetadataBatch {
                        body: Some(metadata_batch::Body::Snapshot(bytes)),
                    }],
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                }
            }
            FeedRead::Deltas(deltas) => {
                if let Some(last) = deltas.last() {
                    after = last.offset;
                }
                deltas
                    .chunks(DELTAS_PER_BATCH)
                    .filter_map(|chunk| serde_json::to_vec(chunk).ok())
                    .map(|bytes| proto::MetadataBatch {
                        body: Some(metadata_batch::Body::Deltas(bytes)),
                    })
                    .collect()
            }
        };
        for batch in batches {
            if tx.send(Ok(batch)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
