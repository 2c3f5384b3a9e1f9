//! [`ReplicaServer`]: the leader side of replication.
//!
//! Each follower keeps one `Fetch` stream open; requests on it are served one at a time, in
//! order. A request first records every partition's fetch offset as that follower's log end
//! (moving the high watermark and, when the follower has caught up, proposing it for the ISR),
//! then reads from those offsets up to the leader's log end. With less than `min_bytes` to
//! return it waits, as Kafka's delayed fetch does, until a log end moves or `max_wait_ms`
//! passes: an idle partition costs a parked task, not a loop.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::{StorageError, TopicPartition};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::isr_manager::IsrManager;
use super::proto::replica_service_server::ReplicaService;
use super::proto::{
    EpochEnd, FetchPartition, FetchRequest, FetchResponse, FetchedPartition,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use crate::error::storage_error_code;
use crate::now_ms;
use crate::partition::{wait_for_any_change, Partition};
use crate::replica_manager::ReplicaManager;

/// Serves followers' fetches and epoch queries for the partitions this broker leads.
#[derive(Clone)]
pub struct ReplicaServer {
    replicas: Arc<ReplicaManager>,
    isr: IsrManager,
    cluster_id: String,
    shutdown: CancellationToken,
}

/// One partition of a fetch, resolved once per request.
struct Wanted {
    request: FetchPartition,
    partition: Result<Arc<Partition>, ResponseError>,
}

impl ReplicaServer {
    /// A server for cluster `cluster_id`'s followers of the partitions in `replicas`.
    pub fn new(
        replicas: Arc<ReplicaManager>,
        isr: IsrManager,
        cluster_id: String,
        shutdown: CancellationToken,
    ) -> Self {
        ReplicaServer {
            replicas,
            isr,
            cluster_id,
            shutdown,
        }
    }

    fn partition(
        &self,
        topic: &str,
        topic_id: &str,
        index: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        let p = self
            .replicas
            .get(&TopicPartition::new(topic, index))
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if !topic_id.is_empty() && p.topic_id().to_string() != topic_id {
            return Err(ResponseError::UnknownTopicId);
        }
        Ok(p)
    }

    /// Serves one fetch request of follower `replica_id`.
    pub async fn serve_fetch(&self, req: FetchRequest) -> FetchResponse {
        if req.cluster_id != self.cluster_id {
            return FetchResponse {
                error_code: i32::from(ResponseError::InconsistentClusterId.code()),
                partitions: Vec::new(),
            };
        }
        let now = now_ms();
        let mut wanted = Vec::with_capacity(req.partitions.len());
        for p in req.partitions {
            let partition = self
                .partition(&p.topic, &p.topic_id, p.partition)
                .and_then(|part| {
                    let joins = match part.record_follower_fetch(
                        req.replica_id,
                        p.fetch_offset,
                        p.current_leader_epoch,
                        now,
                    ) {
                        Ok(joins) => joins,
                        // The read answers OFFSET_OUT_OF_RANGE with the leader's offsets.
                        Err(ResponseError::OffsetOutOfRange) => None,
                        Err(e) => return Err(e),
                    };
                    if let Some(proposal) = joins {
                        tracing::info!(partition = %part.topic_partition(), replica = req.replica_id, new_isr = ?proposal.isr, "follower caught up; expanding the ISR");
                        self.isr.propose(Arc::clone(&part), proposal);
                    }
                    Ok(part)
                });
            wanted.push(Wanted {
                request: p,
                partition,
            });
        }
        let mut watches: Vec<watch::Receiver<i64>> = wanted
            .iter()
            .filter_map(|w| w.partition.as_ref().ok().map(|p| p.watch_log_end()))
            .collect();
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
        let max_bytes = u64::try_from(req.max_bytes).unwrap_or(0);
        let min_bytes = u64::try_from(req.min_bytes).unwrap_or(0);
        loop {
            for w in &mut watches {
                w.borrow_and_update();
            }
            let (partitions, bytes, errors) = read_all(&wanted, max_bytes).await;
            let done = bytes >= min_bytes
                || errors
                || watches.is_empty()
                || tokio::time::Instant::now() >= deadline
                || self.shutdown.is_cancelled();
            if done {
                return FetchResponse {
                    error_code: 0,
                    partitions,
                };
            }
            // On the deadline or at shutdown the next pass reads once more and answers.
            tokio::select! {
                _ = self.shutdown.cancelled() => {}
                _ = wait_for_any_change(&mut watches, deadline) => {}
            }
        }
    }

    /// Answers a follower's end-offset-for-epoch questions.
    pub fn serve_offset_for_leader_epoch(
        &self,
        req: OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let partitions = req
            .partitions
            .into_iter()
            .map(|q| {
                let mut end = EpochEnd {
                    topic: q.topic.clone(),
                    partition: q.partition,
                    error_code: 0,
                    leader_epoch: -1,
                    end_offset: -1,
                };
                let answer = if req.cluster_id != self.cluster_id {
                    Err(ResponseError::InconsistentClusterId)
                } else {
                    self.partition(&q.topic, "", q.partition).and_then(|p| {
                        p.check_leader_epoch(q.current_leader_epoch)?;
                        Ok(p.end_offset_for_epoch(q.leader_epoch))
                    })
                };
                match answer {
                    Ok((epoch, offset)) => {
                        end.leader_epoch = epoch;
                        end.end_offset = offset;
                    }
                    Err(e) => end.error_code = i32::from(e.code()),
                }
                end
            })
            .collect();
        OffsetForLeaderEpochResponse { partitions }
    }
}

/// Reads every partition once, up to its log end. The first batch is returned whole even when
/// it exceeds the limits, so a follower always progresses.
async fn read_all(wanted: &[Wanted], max_bytes: u64) -> (Vec<FetchedPartition>, u64, bool) {
    let mut used = 0u64;
    let mut errors = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut fetched = FetchedPartition {
            topic: w.request.topic.clone(),
            partition: w.request.partition,
            error_code: 0,
            high_watermark: -1,
            log_start_offset: -1,
            log_end_offset: -1,
            records: Bytes::new(),
        };
        let partition = match &w.partition {
            Ok(p) => p,
            Err(e) => {
                errors = true;
                fetched.error_code = i32::from(e.code());
                out.push(fetched);
                continue;
            }
        };
        if let Err(e) = partition.check_leader_epoch(w.request.current_leader_epoch) {
            errors = true;
            fetched.error_code = i32::from(e.code());
            out.push(fetched);
            continue;
        }
        let limit = u64::try_from(w.request.max_bytes)
            .unwrap_or(0)
            .min(max_bytes.saturating_sub(used));
        match partition
            .read(w.request.fetch_offset, limit, used == 0, true)
            .await
        {
            Ok(r) => {
                used += r.records.len() as u64;
                fetched.high_watermark = r.offsets.high_watermark;
                fetched.log_start_offset = r.offsets.log_start_offset;
                fetched.log_end_offset = r.offsets.log_end_offset;
                fetched.records = r.records;
            }
            Err(e) => {
                errors = true;
                if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                    tracing::warn!(partition = %partition.topic_partition(), error = %e, "replica fetch read failed");
                }
                let o = partition.offsets();
                fetched.high_watermark = o.high_watermark;
                fetched.log_start_offset = o.log_start_offset;
                fetched.log_end_offset = o.log_end_offset;
                fetched.error_code = i32::from(storage_error_code(&e).code());
            }
        }
        out.push(fetched);
    }
    (out, used, errors)
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<FetchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ReplicaService for ReplicaServer {
    type FetchStream = FetchStream;

    async fn fetch(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = this.shutdown.cancelled() => return,
                    n = inbound.message() => n,
                };
                let req = match next {
                    Ok(Some(req)) => req,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(error = %status, "replica fetch stream ended");
                        return;
                    }
                };
                let resp = this.serve_fetch(req).await;
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn offset_for_leader_epoch(
        &self,
        request: Request<OffsetForLeaderEpochRequest>,
    ) -> Result<Response<OffsetForLeaderEpochResponse>, Status> {
        Ok(Response::new(
            self.serve_offset_for_leader_epoch(request.into_inner()),
        ))
    }
}
