//! AlterConfigs and IncrementalAlterConfigs: changes to topic config overrides.
//!
//! Both APIs reduce to one [`TopicConfigChange`] per topic resource: AlterConfigs replaces all
//! of a topic's overrides with the given ones, IncrementalAlterConfigs sets (`SET`), removes
//! (`DELETE`), or adds to and removes from list values (`APPEND`, `SUBTRACT`) key by key. The
//! resulting overrides are validated here, as Kafka's broker and controller validate them, so
//! the store only ever receives changes that resolve into a valid [`TopicConfig`]; all topics of
//! one request go to the store in one call, and the new settings are applied to the hosted
//! partition logs before the answer.
//!
//! Only topic resources can be changed. Dynamic broker configs (and broker log levels, client
//! metrics and group configs) are refused with `INVALID_REQUEST` saying they are not supported:
//! the broker's settings are static for now.
//!
//! `APPEND` and `SUBTRACT` start from the topic's override, else from the default this broker
//! gives the key (so `log.cleanup.policy=compact` on the broker makes `APPEND delete` yield
//! `compact,delete`); Kafka's controller starts from Kafka's built-in default instead.
//!
//! [`TopicConfig`]: crate::config::TopicConfig

use std::collections::{BTreeMap, HashMap, HashSet};

use rivulet_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use rivulet_protocol::kafka_protocol::messages::incremental_alter_configs_response as incremental;
use rivulet_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::message;
use crate::broker::BrokerState;
use crate::config::{describe_topic, ConfigType, TopicConfigError};
use crate::error::metadata_error_code;
use crate::metadata::{MetadataImage, TopicConfigChange};

/// Kafka's resource type codes (`ConfigResource.Type`).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// Kafka's IncrementalAlterConfigs operations (`AlterConfigOp.OpType`).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Why a resource was not changed: the error code and message its result carries.
type Refusal = (ResponseError, String);

/// One config operation, as both APIs carry it (AlterConfigs entries are all `SET`s).
struct ConfigOp<'a> {
    name: &'a str,
    op: i8,
    value: Option<&'a str>,
}

/// One resource of either request.
struct Resource<'a> {
    resource_type: i8,
    name: &'a str,
    ops: Vec<ConfigOp<'a>>,
}

/// AlterConfigs: replaces all config overrides of each topic resource with the given ones.
pub async fn handle_alter(state: &BrokerState, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let resources: Vec<Resource<'_>> = req
        .resources
        .iter()
        .map(|r| Resource {
            resource_type: r.resource_type,
            name: r.resource_name.as_str(),
            ops: r
                .configs
                .iter()
                .map(|c| ConfigOp {
                    name: c.name.as_str(),
                    op: OP_SET,
                    value: c.value.as_deref(),
                })
                .collect(),
        })
        .collect();
    let outcomes = alter(state, &resources, true, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                // Kafka sends a null message with no error (the generated default is "").
                Ok(()) => response.with_error_message(None),
                Err((e, msg)) => response
                    .with_error_code(e.code())
                    .with_error_message(message(msg)),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: sets, removes, appends to or subtracts from the named config
/// overrides of each topic resource, leaving the others as they are.
pub async fn handle_incremental(
    state: &BrokerState,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources: Vec<Resource<'_>> = req
        .resources
        .iter()
        .map(|r| Resource {
            resource_type: r.resource_type,
            name: r.resource_name.as_str(),
            ops: r
                .configs
                .iter()
                .map(|c| ConfigOp {
                    name: c.name.as_str(),
                    op: c.config_operation,
                    value: c.value.as_deref(),
                })
                .collect(),
        })
        .collect();
    let outcomes = alter(state, &resources, false, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let response = incremental::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                // Kafka sends a null message with no error (the generated default is "").
                Ok(()) => response.with_error_message(None),
                Err((e, msg)) => response
                    .with_error_code(e.code())
                    .with_error_message(message(msg)),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Checks every resource, sends the valid topic changes to the store in one call, applies them
/// to the hosted partitions, and returns one outcome per resource, in request order.
async fn alter(
    state: &BrokerState,
    resources: &[Resource<'_>],
    replace: bool,
    validate_only: bool,
) -> Vec<Result<(), Refusal>> {
    let mut occurrences: HashMap<(i8, &str), usize> = HashMap::new();
    for r in resources {
        *occurrences.entry((r.resource_type, r.name)).or_default() += 1;
    }
    let image = state.store.image();
    let mut checked = Vec::with_capacity(resources.len());
    let mut changes = Vec::new();
    for r in resources {
        if occurrences
            .get(&(r.resource_type, r.name))
            .is_some_and(|n| *n > 1)
        {
            checked.push(Err((
                ResponseError::InvalidRequest,
                "Each resource must appear at most once.".to_owned(),
            )));
            continue;
        }
        match prepare(state, &image, r, replace) {
            Ok(change) => {
                changes.push(change);
                checked.push(Ok(()));
            }
            Err(refusal) => checked.push(Err(refusal)),
        }
    }
    let stored = if changes.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .alter_topic_configs(changes, validate_only)
            .await
    };
    if !validate_only && stored.iter().any(Result::is_ok) {
        // Apply the new settings to the partition logs before answering.
        state.sync_partitions().await;
    }
    let mut stored = stored.into_iter();
    checked
        .into_iter()
        .map(|c| {
            c?;
            match stored.next() {
                Some(Ok(topic)) => {
                    if !validate_only {
                        tracing::info!(topic = %topic.name, configs = ?topic.configs, "altered topic configs");
                    }
                    Ok(())
                }
                Some(Err(e)) => Err((metadata_error_code(&e), e.to_string())),
                // The store answers every change it is given; a missing answer is a bug there.
                None => Err((
                    ResponseError::UnknownServerError,
                    "no result for this resource".to_owned(),
                )),
            }
        })
        .collect()
}

/// Checks one resource (in Kafka's order: duplicate keys, operations, null values, resource
/// type, topic) and builds its change, whose resulting overrides must resolve.
fn prepare(
    state: &BrokerState,
    image: &MetadataImage,
    r: &Resource<'_>,
    replace: bool,
) -> Result<TopicConfigChange, Refusal> {
    let invalid_request = |msg: String| (ResponseError::InvalidRequest, msg);
    let mut keys = HashSet::new();
    if !r.ops.iter().all(|o| keys.insert(o.name)) {
        return Err(invalid_request("Error due to duplicate config keys".into()));
    }
    if let Some(o) = r
        .ops
        .iter()
        .find(|o| !(OP_SET..=OP_SUBTRACT).contains(&o.op))
    {
        return Err(invalid_request(format!("Unknown operations type {}", o.op)));
    }
    let nulls: Vec<&str> = r
        .ops
        .iter()
        .filter(|o| o.op != OP_DELETE && o.value.is_none())
        .map(|o| o.name)
        .collect();
    if !nulls.is_empty() {
        return Err(invalid_request(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    match r.resource_type {
        TOPIC => {}
        BROKER => {
            return Err(invalid_request(
                "Dynamic broker configs are not supported yet".into(),
            ))
        }
        BROKER_LOGGER => {
            return Err(invalid_request(
                "Changing broker log levels is not supported yet".into(),
            ))
        }
        CLIENT_METRICS => {
            return Err(invalid_request(
                "Client metrics configs are not supported yet".into(),
            ))
        }
        GROUP => {
            return Err(invalid_request(
                "Group configs are not supported yet".into(),
            ))
        }
        other => return Err(invalid_request(format!("Unknown resource type {other}"))),
    }
    if r.name.is_empty() {
        return Err(invalid_request(
            "Default topic resources are not allowed.".into(),
        ));
    }
    let topic = image.topics.get(r.name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("The topic '{}' does not exist.", r.name),
        )
    })?;
    let mut changes = BTreeMap::new();
    for o in &r.ops {
        let value = match o.op {
            OP_SET => o.value.map(str::to_owned),
            OP_DELETE => None,
            _ => Some(list_op(state, &topic.configs, o)?),
        };
        changes.insert(o.name.to_owned(), value);
    }
    let change = TopicConfigChange {
        topic: r.name.to_owned(),
        changes,
        replace,
    };
    state
        .config
        .topic_config(&change.apply_to(&topic.configs))
        .map_err(|e| match e {
            TopicConfigError::Internal(_) => (ResponseError::UnknownServerError, e.to_string()),
            _ => (ResponseError::InvalidConfig, e.to_string()),
        })?;
    Ok(change)
}

/// The value of list key `o.name` after `APPEND`ing or `SUBTRACT`ing `o.value`'s items: from the
/// override, else this broker's default; appended items already present are not repeated.
fn list_op(
    state: &BrokerState,
    overrides: &BTreeMap<String, String>,
    o: &ConfigOp<'_>,
) -> Result<String, Refusal> {
    let verb = if o.op == OP_APPEND {
        "APPEND"
    } else {
        "SUBTRACT"
    };
    let is_list = describe_topic(state.config.topic_defaults(), &BTreeMap::new())
        .iter()
        .any(|e| e.name == o.name && e.config_type == ConfigType::List);
    if !is_list {
        return Err((
            ResponseError::InvalidConfig,
            format!(
                "Can't {verb} to key {} because its type is not LIST.",
                o.name
            ),
        ));
    }
    let current = overrides
        .get(o.name)
        .cloned()
        .or_else(|| state.config.topic_defaults().default_value(o.name))
        .unwrap_or_default();
    let mut items: Vec<&str> = list_items(&current).collect();
    let given = list_items(o.value.unwrap_or_default());
    if o.op == OP_APPEND {
        for item in given {
            if !items.contains(&item) {
                items.push(item);
            }
        }
    } else {
        let given: Vec<&str> = given.collect();
        items.retain(|i| !given.contains(i));
    }
    Ok(items.join(","))
}

/// The non-empty, trimmed items of a comma-separated list value.
fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_drop_blanks() {
        assert_eq!(
            list_items(" compact, ,delete,").collect::<Vec<_>>(),
            ["compact", "delete"]
        );
        assert_eq!(list_items("").count(), 0);
    }
}
