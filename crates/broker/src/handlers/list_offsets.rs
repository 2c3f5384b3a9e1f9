//! ListOffsets: earliest, latest, max timestamp, and the first offset at or after a timestamp.

use rivulet_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use rivulet_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::TopicPartition;

use crate::broker::BrokerState;
use crate::error::storage_error_code;

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// Answers each partition's query against its log.
pub async fn handle(
    state: &BrokerState,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
            let resp = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            partitions.push(
                match lookup(state, &tp, p.timestamp, p.current_leader_epoch).await {
                    // The leader epoch exists from v4 on.
                    Ok((timestamp, offset, epoch)) => resp
                        .with_timestamp(timestamp)
                        .with_offset(offset)
                        .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                    Err(e) => resp.with_error_code(e.code()),
                },
            );
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(timestamp, offset, leader epoch)` for one query; `(-1, -1, -1)` when no record qualifies.
async fn lookup(
    state: &BrokerState,
    tp: &TopicPartition,
    timestamp: i64,
    current_epoch: i32,
) -> Result<(i64, i64, i32), ResponseError> {
    let partition = state.leader_partition(tp)?;
    partition.check_leader_epoch(current_epoch)?;
    partition
        .with_log(move |log| {
            let hw = log.high_watermark();
            let with_epoch =
                |ts: i64, offset: i64| (ts, offset, log.epoch_for_offset(offset).unwrap_or(-1));
            match timestamp {
                LATEST => Ok((
                    -1,
                    hw,
                    log.leader_epoch_cache().latest_epoch().unwrap_or(-1),
                )),
                EARLIEST | EARLIEST_LOCAL => Ok(with_epoch(-1, log.log_start_offset())),
                MAX_TIMESTAMP => Ok(match log.max_timestamp_and_offset() {
                    Some(m) if m.offset < hw => with_epoch(m.timestamp, m.offset),
                    _ => (-1, -1, -1),
                }),
                ts => match log.find_offset_by_timestamp(ts) {
                    Ok(Some(found)) if found.offset < hw => {
                        Ok(with_epoch(found.timestamp, found.offset))
                    }
                    Ok(_) => Ok((-1, -1, -1)),
                    Err(e) => Err(storage_error_code(&e)),
                },
            }
        })
        .await
        .map_err(|e| storage_error_code(&e))?
}
