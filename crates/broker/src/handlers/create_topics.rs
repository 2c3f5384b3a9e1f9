//! CreateTopics: validates names, counts and configs, places replicas, and answers once the
//! topics are stored (or, with `validate_only`, would be).

use std::collections::{BTreeMap, HashSet};

use rivulet_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::{message, str_bytes};
use crate::broker::BrokerState;
use crate::config::describe_topic;
use crate::error::metadata_error_code;

/// Creates the requested topics.
pub async fn handle(
    state: &BrokerState,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results: Vec<Option<CreatableTopicResult>> = Vec::new();
    let mut to_create = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let failed = |e: ResponseError, msg: String| {
            Some(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(e.code())
                    .with_error_message(message(msg))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            )
        };
        if duplicates.contains(&name) {
            results.push(failed(
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains a duplicate topic: {name}"),
            ));
            continue;
        }
        match state.new_topic(
            &name,
            t.num_partitions,
            t.replication_factor,
            &t.assignments,
            &t.configs,
        ) {
            Ok(new) => {
                results.push(None);
                to_create.push(new);
            }
            Err((e, msg)) => results.push(failed(e, msg)),
        }
    }
    let mut created = state
        .store
        .create_topics(to_create.clone(), req.validate_only)
        .await
        .into_iter();
    if !req.validate_only {
        // Open the new partitions before answering, so the client's next request finds them.
        state.sync_partitions().await;
    }
    let mut new_topics = to_create.into_iter();
    let topics = results
        .into_iter()
        .map(|r| match r {
            Some(r) => r,
            None => {
                let (Some(outcome), Some(new)) = (created.next(), new_topics.next()) else {
                    return CreatableTopicResult::default().with_error_code(ResponseError::UnknownServerError.code());
                };
                let result = CreatableTopicResult::default().with_name(TopicName(str_bytes(&new.name)));
                match outcome {
                    Ok(topic) => {
                        if !req.validate_only {
                            tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "created topic");
                        }
                        result
                            .with_topic_id(topic.id)
                            .with_num_partitions(topic.partitions.len() as i32)
                            .with_replication_factor(topic.partitions.first().map_or(0, |p| p.replicas.len() as i16))
                            .with_configs((version >= 5).then(|| configs(state, &topic.configs)))
                    }
                    Err(e) => result
                        .with_error_code(metadata_error_code(&e).code())
                        .with_error_message(message(&e))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn configs(
    state: &BrokerState,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    describe_topic(state.config.topic_defaults(), overrides)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(&e.name))
                .with_value(e.value.as_deref().map(str_bytes))
                .with_read_only(e.read_only)
                .with_config_source(e.source.id())
                .with_is_sensitive(e.is_sensitive)
        })
        .collect()
}
