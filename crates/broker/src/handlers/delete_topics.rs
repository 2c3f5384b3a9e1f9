//! DeleteTopics: by name (v1-5) or by topic id (v6).

use rivulet_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use rivulet_protocol::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::{message, str_bytes};
use crate::broker::BrokerState;
use crate::error::metadata_error_code;
use crate::metadata::TopicRef;

/// Deletes the named topics; their logs go when the new image is applied.
pub async fn handle(
    state: &BrokerState,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let refs: Vec<TopicRef> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => TopicRef::Name(n.0.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| TopicRef::Name(n.0.to_string()))
            .collect()
    };
    let outcomes = state.store.delete_topics(refs.clone()).await;
    state.sync_partitions().await;
    let responses = refs
        .into_iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let base = match &r {
                TopicRef::Name(n) => {
                    DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(n))))
                }
                TopicRef::Id(id) => DeletableTopicResult::default().with_topic_id(*id),
            };
            match outcome {
                Ok(topic) => {
                    tracing::info!(topic = %topic.name, "deleted topic");
                    base.with_name(Some(TopicName(str_bytes(&topic.name))))
                        .with_topic_id(topic.id)
                }
                Err(e) => base
                    .with_error_code(metadata_error_code(&e).code())
                    .with_error_message(message(&e)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
