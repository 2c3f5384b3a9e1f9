//! OffsetForLeaderEpoch: where a leader epoch ends in the leader's log.
//!
//! Consumers ask it after a leader change (KIP-320: librdkafka and the Java consumer validate
//! their position with it) to find out whether the log they read was truncated: the answer is
//! the largest epoch at or below the one asked for and the offset where it ends. The leader
//! checks the caller's `current_leader_epoch` first, as Fetch does.

use rivulet_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::TopicPartition;

use crate::broker::BrokerState;

/// Answers each partition from the leader's epoch history.
pub fn handle(
    state: &BrokerState,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(t.topic.0.to_string(), p.partition);
                    let answer = state.leader_partition(&tp).and_then(|partition| {
                        partition.check_leader_epoch(p.current_leader_epoch)?;
                        Ok::<_, ResponseError>(partition.end_offset_for_epoch(p.leader_epoch))
                    });
                    let end = EpochEndOffset::default().with_partition(p.partition);
                    match answer {
                        Ok((epoch, offset)) => end.with_leader_epoch(epoch).with_end_offset(offset),
                        Err(e) => end
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
