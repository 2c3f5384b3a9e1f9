//! Fetch: whole batches below the high watermark, and the delayed fetch.
//!
//! When the first read has fewer than `min_bytes`, the request waits, as Kafka's delayed fetch
//! does, until the high watermark of any of its partitions moves (each partition publishes it on a
//! `watch` channel) or `max_wait_ms` passes, then reads again. Nothing polls: a produce wakes the
//! waiting fetches of its partition at once.
//!
//! Records of at least [`SENDFILE_MIN_BYTES`] are not copied: the partition's read is a range of
//! a segment file, which the response carries as a placeholder until
//! `rivulet_protocol::fetch_frame` frames the encoded response around the ranges; the
//! connection then sends them with `sendfile` (`response_writer`). Shorter ones are copied
//! into the response, which is cheaper. Should the framing fail its checks, the ranges are
//! copied into the response instead (logged), so the answer is the same either way.
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
use rivulet_protocol::{FetchFrameBuilder, FetchFrameError};
use rivulet_storage::{FileSlice, StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use super::{str_bytes, Reply};
use crate::broker::BrokerState;
use crate::error::storage_error_code;
use crate::partition::{wait_for_any_change, Partition, SliceRecords};

/// Ranges shorter than this are copied into the response; longer ones are sent from the file
/// with `sendfile`. Per range, a `sendfile` and the write of the framing before it cost more
/// CPU than copying up to about 64 KiB (`cargo bench -p rivulet-broker --bench
/// response_writer`, docs/benchmarks.md "Fetch by sendfile": 16 ranges of 1 KiB cost about 4x
/// more sent than copied, of 1 MiB about 3x less). A consumer that keeps up gets a few small batches
/// per partition: copied, in one write with the framing.
const SENDFILE_MIN_BYTES: u64 = 64 << 10;

/// One partition of the request, resolved once.
struct Wanted {
    topic: usize,
    index: i32,
    fetch_offset: i64,
    max_bytes: u64,
    current_leader_epoch: i32,
    partition: Result<Arc<Partition>, ResponseError>,
}

/// One partition's answer: its data, and the file range of its records when they are sent
/// from the file (copied records are in the data already).
struct Answer {
    topic: usize,
    data: PartitionData,
    records: Option<FileSlice>,
}

/// The records of a response, until they are framed.
type Ranges = FetchFrameBuilder<FileSlice>;

/// Serves a fetch and frames the response with correlation id `correlation_id` around the
/// segment file ranges it reads.
pub async fn reply(
    state: &BrokerState,
    req: FetchRequest,
    version: i16,
    correlation_id: i32,
) -> Reply {
    let (mut body, mut ranges) = handle(state, req, version).await;
    let reason = match ranges.encode(correlation_id, version, &body) {
        Ok(chunks) => return Reply::Chunks(chunks),
        Err(FetchFrameError::Encode(e)) => {
            return Reply::Close(format!("cannot encode the Fetch v{version} response: {e}"))
        }
        Err(FetchFrameError::Splice(reason)) => reason,
    };
    // Never expected: the response is still answered right, from a copy.
    tracing::warn!(%reason, version, "fetch response framing failed; copying the records");
    let copied = tokio::task::spawn_blocking(move || {
        ranges
            .inline(&mut body, |slice| slice.read_to_vec().map(Bytes::from))
            .map(|()| body)
    })
    .await;
    let body = match copied {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Reply::Close(format!("cannot read the fetched records: {e}")),
        Err(e) => return Reply::Close(format!("cannot read the fetched records: {e}")),
    };
    match Ranges::new().encode(correlation_id, version, &body) {
        Ok(chunks) => Reply::Chunks(chunks),
        Err(e) => Reply::Close(format!("cannot encode the Fetch v{version} response: {e}")),
    }
}

/// Serves a fetch, waiting for `min_bytes` up to `max_wait_ms`. Each partition's records are
/// a placeholder in the response, registered with its file range in the returned builder.
async fn handle(state: &BrokerState, req: FetchRequest, version: i16) -> (FetchResponse, Ranges) {
    if req.session_id != 0 {
        let body =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return (body, Ranges::new());
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
        let (answers, bytes, errors) =
            read_all(&wanted, req.max_bytes.max(0) as u64, req.isolation_level).await;
        let done = bytes >= req.min_bytes.max(0) as u64
            || errors
            || watches.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            return respond(topics, answers, version);
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
) -> (Vec<Answer>, u64, bool) {
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
                out.push(Answer::new(w.topic, base.with_error_code(e.code())));
                continue;
            }
        };
        // KIP-320: a consumer that knows a newer or older epoch than this leader's is told so;
        // a replica that stopped leading says NOT_LEADER_OR_FOLLOWER.
        if let Err(e) = partition.check_leader_epoch(w.current_leader_epoch) {
            errors = true;
            out.push(Answer::new(w.topic, base.with_error_code(e.code())));
            continue;
        }
        let limit = w.max_bytes.min(max_bytes.saturating_sub(used));
        if limit == 0 && !min_one {
            let o = partition.offsets();
            out.push(Answer::new(w.topic, offsets_into(base, o)));
            continue;
        }
        match partition
            .read_slice(w.fetch_offset, limit, min_one, false, SENDFILE_MIN_BYTES)
            .await
        {
            Ok(r) => {
                let n = r.len();
                used += n;
                if n > 0 {
                    min_one = false;
                }
                let data = offsets_into(base, r.offsets);
                out.push(match r.records {
                    SliceRecords::Empty => Answer::new(w.topic, data),
                    SliceRecords::Copied(b) => Answer::new(w.topic, data.with_records(Some(b))),
                    SliceRecords::File(slice) => Answer {
                        topic: w.topic,
                        data,
                        records: Some(slice),
                    },
                });
            }
            Err(e) => {
                errors = true;
                if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                    tracing::warn!(partition = %partition.topic_partition(), error = %e, "fetch read failed");
                }
                let o = partition.offsets();
                out.push(Answer::new(
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

impl Answer {
    /// An answer without records.
    fn new(topic: usize, data: PartitionData) -> Self {
        Answer {
            topic,
            data,
            records: None,
        }
    }
}

/// The response, records as placeholders, and the ranges they stand for.
fn respond(
    topics: Vec<(TopicName, Uuid)>,
    answers: Vec<Answer>,
    version: i16,
) -> (FetchResponse, Ranges) {
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
    let mut ranges = Ranges::new();
    for Answer {
        topic,
        mut data,
        records,
    } in answers
    {
        if let Some(slice) = records {
            match u32::try_from(slice.len) {
                Ok(len) => data.records = Some(ranges.placeholder(slice, len)),
                // Segment positions are 32-bit: a range this long is a broken log.
                Err(_) => data.error_code = ResponseError::KafkaStorageError.code(),
            }
        }
        if let Some(t) = responses.get_mut(topic) {
            t.partitions.push(data);
        }
    }
    let body = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    (body, ranges)
}
