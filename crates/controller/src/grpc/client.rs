//! [`ControllerClient`]: how a broker reaches the controller quorum.
//!
//! Requests that change metadata go to the active controller. The client tries the controller
//! it last found active, follows NOT_CONTROLLER hints, and otherwise walks the voters in turn
//! until one answers or the deadline passes (REQUEST_TIMED_OUT). The metadata stream can be
//! read from any voter.
//!
//! A registered broker also holds a `BrokerSession` stream open to every voter
//! ([`ControllerClient::hold_sessions`]), reopened shortly after it ends: when the broker's
//! process dies, the voters see these streams close and the active controller fences it at
//! once (see [`crate::session_streams`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use super::convert;
use super::proto::controller_service_client::ControllerServiceClient;
use super::proto::{self, metadata_batch};
use crate::decisions::{
    AlterPartition, ElectionType, NewPartitions, NewTopic, Reassignment, TopicConfigChange,
    TopicRef,
};
use crate::error::MetadataError;
use crate::image::{MetadataImage, PartitionImage};
use crate::quorum_controller::{HeartbeatReply, PartitionResults, TopicResults};
use crate::records::MetadataDelta;

/// How long a heartbeat copy to a voter that does not lead may take.
const NOTE_TIMEOUT: Duration = Duration::from_millis(500);

/// The longest a broker waits before reopening a session stream that ended or could not be
/// opened (a random pause of 150 ms up to this, so brokers do not reconnect in step). Well
/// below the controller's grace for closed streams, so a live broker's broken stream is
/// replaced before it counts as dead.
pub const SESSION_STREAM_BACKOFF: Duration = Duration::from_millis(250);

/// A voter of the quorum: id and `host:port` of its controller listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Node id.
    pub id: i32,
    /// `host:port`.
    pub address: String,
}

/// A broker's registration as sent to the controller.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Broker id.
    pub broker_id: i32,
    /// Random per process start.
    pub incarnation_id: Uuid,
    /// Client endpoints: `(listener, host, port)`.
    pub endpoints: Vec<(String, String, u16)>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// One message of the metadata stream.
#[derive(Debug, Clone)]
pub enum MetadataUpdate {
    /// Replace the image with this one.
    Snapshot(Box<MetadataImage>),
    /// Apply these in order.
    Deltas(Vec<MetadataDelta>),
}

/// The stream of committed metadata from one controller.
pub struct MetadataStream {
    inner: tonic::Streaming<proto::MetadataBatch>,
}

impl MetadataStream {
    /// The next update; `None` when the controller ended the stream.
    pub async fn next(&mut self) -> Result<Option<MetadataUpdate>, MetadataError> {
        let batch = match self.inner.message().await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(status) => return Err(unreachable(&status)),
        };
        let decode_err =
            |e: serde_json::Error| MetadataError::Storage(format!("undecodable metadata: {e}"));
        match batch.body {
            Some(metadata_batch::Body::Snapshot(bytes)) => {
                let mut image: MetadataImage =
                    serde_json::from_slice(&bytes).map_err(decode_err)?;
                image.reindex();
                Ok(Some(MetadataUpdate::Snapshot(Box::new(image))))
            }
            Some(metadata_batch::Body::Deltas(bytes)) => Ok(Some(MetadataUpdate::Deltas(
                serde_json::from_slice(&bytes).map_err(decode_err)?,
            ))),
            None => Ok(Some(MetadataUpdate::Deltas(Vec::new()))),
        }
    }
}

fn unreachable(status: &tonic::Status) -> MetadataError {
    MetadataError::Timeout(format!("controller unreachable: {}", status.message()))
}

/// The longest one voter may take to answer one request before the client tries the others.
/// Well above a healthy controller's commit time (a quorum round trip), well below the
/// request deadline, and above the leader lease, so a new controller is found within it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// A client of the controller quorum. Cheap to clone.
#[derive(Clone)]
pub struct ControllerClient {
    cluster_id: String,
    voters: Arc<[(Voter, ControllerServiceClient<Channel>)]>,
    /// The controller last found active (-1: unknown).
    active: Arc<AtomicI32>,
    timeout: Duration,
}

impl ControllerClient {
    /// A client for cluster `cluster_id` whose requests give up after `timeout`.
    pub fn new(
        cluster_id: String,
        voters: &[Voter],
        timeout: Duration,
    ) -> Result<Self, MetadataError> {
        let mut clients = Vec::with_capacity(voters.len());
        for v in voters {
            let endpoint = Endpoint::from_shared(format!("http://{}", v.address))
                .map_err(|e| MetadataError::InvalidRequest(format!("voter {}: {e}", v.address)))?
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true);
            clients.push((
                v.clone(),
                ControllerServiceClient::new(endpoint.connect_lazy())
                    .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(super::MAX_MESSAGE_BYTES),
            ));
        }
        if clients.is_empty() {
            return Err(MetadataError::InvalidRequest("no controller voters".into()));
        }
        Ok(ControllerClient {
            cluster_id,
            voters: clients.into(),
            active: Arc::new(AtomicI32::new(-1)),
            timeout,
        })
    }

    /// The cluster id sent with every request.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The controller last found active, or -1.
    pub fn active_controller(&self) -> i32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Calls the active controller with `call`, retrying elsewhere on NOT_CONTROLLER and on
    /// unreachable voters until the timeout.
    async fn to_active<T, F, Fut>(&self, call: F) -> Result<T, MetadataError>
    where
        F: Fn(ControllerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, MetadataError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut next = 0usize;
        let mut last_error: MetadataError;
        loop {
            let hinted = self.active.load(Ordering::Relaxed);
            let index = self
                .voters
                .iter()
                .position(|(v, _)| v.id == hinted)
                .unwrap_or_else(|| {
                    next += 1;
                    next % self.voters.len()
                });
            let (voter, client) = &self.voters[index];
            // One voter gets at most ATTEMPT_TIMEOUT: a controller that hangs (paused, or cut
            // off after accepting the connection) must not hold the request until the deadline
            // while another voter has taken over.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome =
                tokio::time::timeout(remaining.min(ATTEMPT_TIMEOUT), call(client.clone())).await;
            match outcome {
                Ok(Ok(value)) => {
                    self.active.store(voter.id, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(MetadataError::NotController { leader })) => {
                    let hint = if leader == voter.id { -1 } else { leader };
                    self.active.store(hint, Ordering::Relaxed);
                    last_error = MetadataError::NotController { leader };
                }
                Ok(Err(e @ MetadataError::Timeout(_))) => {
                    self.active.store(-1, Ordering::Relaxed);
                    last_error = e;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    // No answer in time: try the other voters.
                    self.active.store(-1, Ordering::Relaxed);
                    last_error = MetadataError::Timeout(format!(
                        "controller {} did not answer within {ATTEMPT_TIMEOUT:?}",
                        voter.id
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(match last_error {
                    MetadataError::NotController { .. } => {
                        MetadataError::Timeout("no active controller was found in time".into())
                    }
                    e => e,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One request to the active controller: sends `request` with `rpc`, turns transport
    /// failures into retriable errors and the reply's Kafka error into a [`MetadataError`].
    async fn unary<Req, Resp, F, Fut>(&self, request: Req, rpc: F) -> Result<Resp, MetadataError>
    where
        Req: Clone,
        Resp: convert::Reply,
        F: Fn(ControllerServiceClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.to_active(|c| {
            let call = rpc(c, request.clone());
            async move {
                let reply = call.await.map_err(|s| unreachable(&s))?.into_inner();
                convert::check(reply.error())?;
                Ok(reply)
            }
        })
        .await
    }

    /// Registers a broker; returns its broker epoch.
    pub async fn register_broker(&self, r: &Registration) -> Result<i64, MetadataError> {
        let request = proto::RegisterBrokerRequest {
            cluster_id: self.cluster_id.clone(),
            broker_id: r.broker_id,
            incarnation_id: r.incarnation_id.to_string(),
            endpoints: r
                .endpoints
                .iter()
                .map(|(l, h, p)| proto::Endpoint {
                    listener: l.clone(),
                    host: h.clone(),
                    port: u32::from(*p),
                })
                .collect(),
            rack: r.rack.clone(),
        };
        let r = self
            .unary(
                request,
                |mut c, r| async move { c.register_broker(r).await },
            )
            .await?;
        Ok(r.broker_epoch)
    }

    /// Sends one heartbeat.
    pub async fn heartbeat(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
    ) -> Result<HeartbeatReply, MetadataError> {
        self.beat(broker_id, broker_epoch, metadata_offset, false)
            .await
    }

    /// Sends one heartbeat asking to shut down (controlled shutdown): the controller moves
    /// this broker's leaderships away and answers `should_shut_down` once it may stop.
    pub async fn heartbeat_shutdown(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
    ) -> Result<HeartbeatReply, MetadataError> {
        self.beat(broker_id, broker_epoch, metadata_offset, true)
            .await
    }

    async fn beat(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
        want_shut_down: bool,
    ) -> Result<HeartbeatReply, MetadataError> {
        let request = proto::BrokerHeartbeatRequest {
            cluster_id: self.cluster_id.clone(),
            broker_id,
            broker_epoch,
            metadata_offset,
            want_shut_down,
        };
        // The other voters note the heartbeat too, so whichever of them is elected next knows
        // the broker's session; their NOT_CONTROLLER answers are expected and ignored.
        let active = self.active_controller();
        let others = self
            .voters
            .iter()
            .filter(|(v, _)| v.id != active)
            .map(|(_, c)| {
                let mut c = c.clone();
                let request = request.clone();
                async move {
                    let _ = tokio::time::timeout(NOTE_TIMEOUT, c.broker_heartbeat(request)).await;
                }
            });
        let to_active = self.unary(request.clone(), |mut c, r| async move {
            c.broker_heartbeat(r).await
        });
        let (r, _) = futures::future::join(to_active, futures::future::join_all(others)).await;
        let r = r?;
        Ok(HeartbeatReply {
            is_caught_up: r.is_caught_up,
            is_fenced: r.is_fenced,
            controller_epoch: r.controller_epoch,
            should_shut_down: r.should_shut_down,
        })
    }

    /// Asks for an ISR change; returns the partition's state and the offset that committed it.
    pub async fn alter_partition(
        &self,
        a: &AlterPartition,
    ) -> Result<(PartitionImage, i64), MetadataError> {
        let request = proto::AlterPartitionRequest {
            cluster_id: self.cluster_id.clone(),
            broker_id: a.broker_id,
            broker_epoch: a.broker_epoch,
            topic_id: a.topic_id.to_string(),
            partition: a.partition,
            leader_epoch: a.leader_epoch,
            partition_epoch: a.partition_epoch,
            new_isr: a.new_isr.clone(),
        };
        let r = self
            .unary(
                request,
                |mut c, r| async move { c.alter_partition(r).await },
            )
            .await?;
        let state = r
            .state
            .map(convert::partition_from_wire)
            .ok_or_else(|| MetadataError::InvalidRequest("no partition state".into()))?;
        Ok((state, r.offset))
    }

    /// Reserves a block of producer ids: `(first, size)`.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(i64, i64), MetadataError> {
        let request = proto::AllocateProducerIdsRequest {
            cluster_id: self.cluster_id.clone(),
            broker_id,
            broker_epoch,
        };
        let r = self
            .unary(request, |mut c, r| async move {
                c.allocate_producer_ids(r).await
            })
            .await?;
        Ok((r.first_producer_id, r.size))
    }

    /// Creates topics.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<TopicResults, MetadataError> {
        let request = proto::CreateTopicsRequest {
            cluster_id: self.cluster_id.clone(),
            topics: topics.iter().map(convert::new_topic_to_wire).collect(),
            validate_only,
        };
        let r = self
            .unary(request, |mut c, r| async move { c.create_topics(r).await })
            .await?;
        Ok((convert::topic_results_from_wire(r.results), r.offset))
    }

    /// Deletes topics.
    pub async fn delete_topics(&self, topics: &[TopicRef]) -> Result<TopicResults, MetadataError> {
        let request = proto::DeleteTopicsRequest {
            cluster_id: self.cluster_id.clone(),
            topics: topics.iter().map(convert::topic_ref_to_wire).collect(),
        };
        let r = self
            .unary(request, |mut c, r| async move { c.delete_topics(r).await })
            .await?;
        Ok((convert::topic_results_from_wire(r.results), r.offset))
    }

    /// Adds partitions.
    pub async fn create_partitions(
        &self,
        topics: &[NewPartitions],
        validate_only: bool,
    ) -> Result<TopicResults, MetadataError> {
        let request = proto::CreatePartitionsRequest {
            cluster_id: self.cluster_id.clone(),
            topics: topics.iter().map(convert::new_partitions_to_wire).collect(),
            validate_only,
        };
        let r = self
            .unary(
                request,
                |mut c, r| async move { c.create_partitions(r).await },
            )
            .await?;
        Ok((convert::topic_results_from_wire(r.results), r.offset))
    }

    /// Changes topic configs.
    pub async fn alter_topic_configs(
        &self,
        changes: &[TopicConfigChange],
        validate_only: bool,
    ) -> Result<TopicResults, MetadataError> {
        let request = proto::AlterTopicConfigsRequest {
            cluster_id: self.cluster_id.clone(),
            topics: changes.iter().map(convert::config_change_to_wire).collect(),
            validate_only,
        };
        let r = self
            .unary(
                request,
                |mut c, r| async move { c.alter_topic_configs(r).await },
            )
            .await?;
        Ok((convert::topic_results_from_wire(r.results), r.offset))
    }

    /// Elects leaders (ElectLeaders) for `partitions`, or for every partition when `None`;
    /// returns the per-partition outcomes and the offset that committed them.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<PartitionResults, MetadataError> {
        let request = proto::ElectLeadersRequest {
            cluster_id: self.cluster_id.clone(),
            election_type: i32::from(election.code()),
            all_partitions: partitions.is_none(),
            partitions: partitions
                .map(convert::partitions_to_wire)
                .unwrap_or_default(),
        };
        let r = self
            .unary(request, |mut c, r| async move { c.elect_leaders(r).await })
            .await?;
        Ok((convert::partition_results_from_wire(r.results), r.offset))
    }

    /// Starts or cancels partition reassignments; returns one outcome per entry and the offset
    /// that committed them.
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: &[Reassignment],
    ) -> Result<PartitionResults, MetadataError> {
        let request = proto::AlterPartitionReassignmentsRequest {
            cluster_id: self.cluster_id.clone(),
            partitions: reassignments
                .iter()
                .map(convert::reassignment_to_wire)
                .collect(),
        };
        let r = self
            .unary(request, |mut c, r| async move {
                c.alter_partition_reassignments(r).await
            })
            .await?;
        Ok((convert::partition_results_from_wire(r.results), r.offset))
    }

    /// Holds a session stream of registration `broker_epoch` of `broker_id` open to every
    /// voter, reopening each after a short pause ([`SESSION_STREAM_BACKOFF`]) when it ends or
    /// cannot be opened. Never returns: dropping the future closes the streams (on a new
    /// registration, or at shutdown).
    pub async fn hold_sessions(&self, broker_id: i32, broker_epoch: i64) -> Infallible {
        let request = proto::BrokerSessionRequest {
            cluster_id: self.cluster_id.clone(),
            broker_id,
            broker_epoch,
        };
        let streams = self
            .voters
            .iter()
            .map(|(voter, client)| hold_session(voter.id, client.clone(), request.clone()));
        // Each one loops until dropped.
        futures::future::join_all(streams).await;
        std::future::pending().await
    }

    /// Opens the metadata stream after `after_offset` on voter `preferred` if it is one (the
    /// local controller), else on the voters in turn.
    pub async fn fetch_metadata(
        &self,
        broker_id: i32,
        preferred: i32,
        after_offset: i64,
        attempt: usize,
    ) -> Result<MetadataStream, MetadataError> {
        let index = match self.voters.iter().position(|(v, _)| v.id == preferred) {
            Some(i) if attempt.is_multiple_of(2) => i,
            _ => attempt % self.voters.len(),
        };
        let mut client = self.voters[index].1.clone();
        let request = proto::FetchMetadataRequest {
            cluster_id: self.cluster_id.clone(),
            after_offset,
            broker_id,
        };
        let inner = client
            .fetch_metadata(request)
            .await
            .map_err(|s| unreachable(&s))?
            .into_inner();
        Ok(MetadataStream { inner })
    }
}

/// Holds one session stream open to voter `voter` (see [`ControllerClient::hold_sessions`]).
async fn hold_session(
    voter: i32,
    mut client: ControllerServiceClient<Channel>,
    request: proto::BrokerSessionRequest,
) {
    loop {
        match client.broker_session(request.clone()).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                // Nothing is sent on it; it ends when the voter or the connection goes.
                let end = loop {
                    match stream.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break "ended".to_string(),
                        Err(status) => break status.message().to_string(),
                    }
                };
                tracing::debug!(voter, reason = %end, "session stream to a controller ended; reopening");
            }
            Err(status) => {
                tracing::debug!(voter, error = %status.message(), "cannot open a session stream to a controller yet");
            }
        }
        let pause = fastrand::u64(150..=SESSION_STREAM_BACKOFF.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
