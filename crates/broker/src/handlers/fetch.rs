//! Fetch: whole batches below the high watermark, and the delayed fetch.
//!
//! When the first read has fewer than `min_bytes`, the request waits, as Kafka's delayed fetch
//! does, until the high watermark of any of its partitions moves (each partition publishes it on a
//! `watch` channel) or `max_wait_ms` passes, then reads again. Nothing polls: a produce wakes the
//! waiting fetches of its partition at once.
//!
//! Incremental fetch sessions (KIP-227) are not kept: every response has session id 0, which
//! tells clients to send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, PartitionData,
};
use rivulet_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::{StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use super::str_bytes;
use crate::broker::BrokerState;
use crate::error::storage_error_code;
use crate::partition::{wait_for_any_change, Partition};

/// One partition of the request, resolved once.
struct Wanted {
    topic: usize,
    index: i32,
    fetch_offset: i64,
    max_bytes: u64,
    current_leader_epoch: i32,
    partition: Result<Arc<Partition>, ResponseError>,
}

/// Serves a fetch, waiting for `min_bytes` up to `max_wait_ms`.
pub async fn handle(state: &BrokerState, req: FetchRequest, version: i16) -> FetchResponse {
    if req.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let image = state.store.image();
    let mut topics: Vec<(TopicName, Uuid)> = Vec::new();
    let mut wanted = Vec::new();
    for t in &req.topics {
        let name = if version >= 13 {
            image.topic_by_id(&t.topic_id).map(|t| t.name.clone())
        } else {
            Some(t.topic.0.to_string())
        };
        topics.push((t.topic.clone(), t.topic_id));
        for p in &t.partitions {
            let partition = match &name {
                None if version >= 13 => Err(ResponseError::UnknownTopicId),
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(name) => {
                    state.leader_partition(&TopicPartition::new(name.clone(), p.partition))
                }
            };
            wanted.push(Wanted {
                topic: topics.len() - 1,
                index: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u64,
                current_leader_epoch: p.current_leader_epoch,
                partition,
            });
        }
    }
    let mut watches: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .filter_map(|w| w.partition.as_ref().ok().map(|p| p.watch_high_watermark()))
        .collect();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    loop {
        for w in &mut watches {
            w.borrow_and_update();
        }
        let (partitions, bytes, errors) =
            read_all(&wanted, req.max_bytes.max(0) as u64, req.isolation_level).await;
        let done = bytes >= req.min_bytes.max(0) as u64
            || errors
            || watches.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            return respond(topics, partitions, version);
        }
        // On the deadline the next pass reads once more and answers.
        wait_for_any_change(&mut watches, deadline).await;
    }
}

/// Reads every partition once, in request order. As Kafka does (KIP-74), the first batch found
/// is returned even if it is larger than the limits, so a consumer can always make progress.
async fn read_all(
    wanted: &[Wanted],
    max_bytes: u64,
    isolation_level: i8,
) -> (Vec<(usize, PartitionData)>, u64, bool) {
    let mut used = 0u64;
    let mut min_one = true;
    let mut errors = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let base = PartitionData::default()
            .with_partition_index(w.index)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_aborted_transactions((isolation_level == 1).then(Vec::new))
            .with_records(Some(Bytes::new()));
        let partition = match &w.partition {
            Ok(p) => p,
            Err(e) => {
                errors = true;
                out.push((w.topic, base.with_error_code(e.code())));
                continue;
            }
        };
        // KIP-320: a consumer that knows a newer or older epoch than this leader's is told so;
        // a replica that stopped leading says NOT_LEADER_OR_FOLLOWER.
        if let Err(e) = partition.check_leader_epoch(w.current_leader_epoch) {
            errors = true;
            out.push((w.topic, base.with_error_code(e.code())));
            continue;
        }
        let limit = w.max_bytes.min(max_bytes.saturating_sub(used));
        if limit == 0 && !min_one {
            let o = partition.offsets();
            out.push((w.topic, offsets_into(base, o)));
            continue;
        }
        match partition.read(w.fetch_offset, limit, min_one, false).await {
            Ok(r) => {
                let n = r.records.len() as u64;
                used += n;
                if n > 0 {
                    min_one = false;
                }
                out.push((
                    w.topic,
                    offsets_into(base, r.offsets).with_records(Some(r.records)),
                ));
            }
            Err(e) => {
                errors = true;
                if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                    tracing::warn!(partition = %partition.topic_partition(), error = %e, "fetch read failed");
                }
                let o = partition.offsets();
                out.push((
                    w.topic,
                    offsets_into(base, o).with_error_code(storage_error_code(&e).code()),
                ));
            }
        }
    }
    (out, used, errors)
}

fn offsets_into(d: PartitionData, o: crate::partition::PartitionOffsets) -> PartitionData {
    d.with_high_watermark(o.high_watermark)
        .with_last_stable_offset(o.high_watermark)
        .with_log_start_offset(o.log_start_offset)
}

fn respond(
    topics: Vec<(TopicName, Uuid)>,
    partitions: Vec<(usize, PartitionData)>,
    version: i16,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .into_iter()
        .map(|(name, id)| {
            let name = if version >= 13 {
                TopicName(str_bytes(""))
            } else {
                name
            };
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(id)
        })
        .collect();
    for (topic, p) in partitions {
        if let Some(t) = responses.get_mut(topic) {
            t.partitions.push(p);
        }
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}
