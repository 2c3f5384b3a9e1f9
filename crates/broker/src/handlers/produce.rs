//! Produce: appends each partition's batch as leader. Batches go to the log as the bytes that
//! arrived (see `PartitionLog::append_as_leader`).
//!
//! acks=1 answers once the leader appended. The connection's next state-changing request may
//! start once this one's appends are done (its [`Turn`] is released then), not after its
//! replication wait. acks=all first requires `min.insync.replicas` in
//! the ISR (NOT_ENOUGH_REPLICAS, nothing appended), then waits, within the request's
//! `timeout_ms`, until the high watermark passes the batch (Kafka's delayed produce: follower
//! fetches move the high watermark and wake it). A retried idempotent batch already in the log
//! waits the same way for its original offsets.

use std::time::Duration;

use futures::future::join_all;
use rivulet_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use rivulet_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_protocol::{LegacyProduceRequest, LegacyProduceResponse};
use rivulet_storage::TopicPartition;

use super::{message, Turn};
use crate::broker::BrokerState;
use crate::now_ms;

/// Appends every partition's records and reports offsets or errors per partition. `turn` is
/// released once every append is done, before the acks=all waits, so the connection's next
/// produce can append while this one waits for replication.
pub async fn handle(
    state: &BrokerState,
    req: ProduceRequest,
    version: i16,
    mut turn: Turn,
) -> ProduceResponse {
    let acks_ok = matches!(req.acks, -1..=1);
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let failed = |index: i32, e: ResponseError, msg: Option<String>| {
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(e.code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1)
            .with_error_message(if version >= 8 {
                msg.and_then(message)
            } else {
                None
            })
    };
    // Phase 1: every append, in the order of the request.
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let appends = topic.partition_data.into_iter().map(|p| {
            let tp = TopicPartition::new(name.clone(), p.index);
            async move {
                if !acks_ok {
                    return Err(failed(
                        tp.partition,
                        ResponseError::InvalidRequiredAcks,
                        None,
                    ));
                }
                let partition = state
                    .leader_partition(&tp)
                    .map_err(|e| failed(tp.partition, e, None))?;
                let Some(records) = p.records else {
                    return Err(failed(
                        tp.partition,
                        ResponseError::InvalidRecord,
                        Some("no records".into()),
                    ));
                };
                match partition.append_as_leader(records, acks, now_ms()).await {
                    Ok((info, epoch)) => Ok((partition, info, epoch)),
                    Err(e) => {
                        tracing::debug!(partition = %tp, error = %e, "produce refused");
                        Err(failed(tp.partition, e.code(), Some(e.to_string())))
                    }
                }
            }
        });
        topics.push((topic.name, topic.topic_id, join_all(appends).await));
    }
    turn.release();
    // Phase 2: acks=all waits until the high watermark passes each batch (all at once).
    let mut responses = Vec::with_capacity(topics.len());
    for (name, topic_id, appended) in topics {
        let waits = appended.into_iter().map(|a| async move {
            let (partition, info, epoch) = match a {
                Ok(appended) => appended,
                Err(response) => return response,
            };
            let index = partition.topic_partition().partition;
            if acks == -1 {
                if let Err(e) = partition
                    .wait_for_replication(info.last_offset, epoch, timeout)
                    .await
                {
                    tracing::debug!(partition = %partition.topic_partition(), error = ?e, "acks=all produce not replicated");
                    return failed(index, e, None);
                }
            }
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.first_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset)
        });
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(join_all(waits).await),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

/// The first partition error of a response, if any (acks=0 closes the connection on one).
pub fn first_error(resp: &ProduceResponse) -> Option<ResponseError> {
    resp.responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .find_map(|p| {
            (p.error_code != 0)
                .then(|| ResponseError::try_from_code(p.error_code))
                .flatten()
        })
}

/// Produce v0-2 carries the v0/v1 message formats only, which Rivulet does not store.
pub fn handle_legacy(req: &LegacyProduceRequest) -> LegacyProduceResponse {
    LegacyProduceResponse::error_for(req, ResponseError::UnsupportedForMessageFormat)
}
