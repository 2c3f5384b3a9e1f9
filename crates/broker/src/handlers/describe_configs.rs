//! DescribeConfigs: topic configs (effective values and where they come from) and this broker's
//! static configs.

use rivulet_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use rivulet_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::{message, str_bytes};
use crate::broker::BrokerState;
use crate::config::{describe_topic, ConfigEntry};

/// Kafka's resource type codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Describes each resource.
pub fn handle(state: &BrokerState, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let image = state.store.image();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                TOPIC => match image.topics.get(&name) {
                    Some(t) => Ok(describe_topic(state.config.topic_defaults(), &t.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic '{name}' does not exist."),
                    )),
                },
                BROKER if name.is_empty() || name == state.config.node_id.to_string() => {
                    Ok(state.config.describe_broker())
                }
                BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        state.config.node_id
                    ),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match entries {
                Ok(entries) => {
                    // Null and empty both mean every key (Kafka's `ConfigHelper.describeConfigs`).
                    let keys = r.configuration_keys.as_ref().filter(|k| !k.is_empty());
                    let configs = entries
                        .into_iter()
                        .filter(|e| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == e.name)))
                        .map(|e| entry(e, req.include_synonyms, req.include_documentation))
                        .collect();
                    base.with_configs(configs)
                }
                Err((e, msg)) => base
                    .with_error_code(e.code())
                    .with_error_message(message(msg)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(e: ConfigEntry, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        e.synonyms
            .iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(&s.name))
                    .with_value(s.value.as_deref().map(str_bytes))
                    .with_source(s.source.id())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&e.name))
        .with_value(e.value.as_deref().map(str_bytes))
        .with_read_only(e.read_only)
        .with_config_source(e.source.id())
        .with_is_sensitive(e.is_sensitive)
        .with_synonyms(synonyms)
        .with_config_type(e.config_type.id())
        .with_documentation(if documentation {
            e.documentation.as_deref().map(str_bytes)
        } else {
            None
        })
}
