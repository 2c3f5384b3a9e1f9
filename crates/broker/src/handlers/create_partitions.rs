//! CreatePartitions: grows topics to a new partition count (optionally with a manual placement
//! of the new partitions) and answers once the new partitions are in this broker's metadata and
//! open here (or, with `validate_only`, would be created).
//!
//! The checks on counts and placements are the controller's ([`MetadataStore::create_partitions`]);
//! this handler only refuses what never reaches it: a topic named twice in one request, and a
//! request adding more partitions in all than Kafka lets one operation add.
//!
//! [`MetadataStore::create_partitions`]: crate::metadata::MetadataStore::create_partitions

use std::collections::HashMap;

use rivulet_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use rivulet_protocol::kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::message;
use crate::broker::BrokerState;
use crate::error::metadata_error_code;
use crate::metadata::NewPartitions;

/// Kafka's message for a topic named more than once (`ControllerApis.createPartitions`).
const DUPLICATE_TOPIC: &str = "Duplicate topic name.";

/// The most partitions one request may add in all: Kafka bounds the records of one admin
/// operation to 10 000 (`QuorumController.MAX_RECORDS_PER_USER_OP`). Without a bound, a count
/// near `i32::MAX` would have the controller place (and allocate) billions of partitions.
const MAX_NEW_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Kafka's message for a request over that bound (`ReplicationControlManager`).
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Adds partitions to the requested topics. Every entry of the request gets one result, in
/// request order.
pub async fn handle(state: &BrokerState, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut occurrences: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *occurrences.entry(t.name.0.as_str()).or_default() += 1;
    }
    let image = state.store.image();
    let mut budget = MAX_NEW_PARTITIONS_PER_REQUEST;
    // Per entry: refused here (with why), or sent to the store.
    let mut refused: Vec<Option<(ResponseError, &'static str)>> = Vec::new();
    let mut to_grow = Vec::new();
    for t in &req.topics {
        let name = t.name.0.as_str();
        if occurrences.get(name).is_some_and(|n| *n > 1) {
            refused.push(Some((ResponseError::InvalidRequest, DUPLICATE_TOPIC)));
            continue;
        }
        // Unknown topics add nothing here; the store refuses them.
        let current = image
            .topics
            .get(name)
            .map_or(0, |topic| topic.partitions.len() as i64);
        let added = (i64::from(t.count) - current).max(0);
        if added > budget {
            refused.push(Some((ResponseError::PolicyViolation, TOO_MANY_PARTITIONS)));
            continue;
        }
        budget -= added;
        refused.push(None);
        to_grow.push(NewPartitions {
            topic: name.to_owned(),
            total_count: t.count,
            assignment: t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            }),
        });
    }
    let grown = if to_grow.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .create_partitions(to_grow, req.validate_only)
            .await
    };
    if !req.validate_only && grown.iter().any(Result::is_ok) {
        // Open the new partitions before answering, so the client's next request finds them.
        state.sync_partitions().await;
    }

    let mut outcomes = grown.into_iter();
    let results = req
        .topics
        .iter()
        .zip(refused)
        .map(|(t, refused)| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Some((code, why)) = refused {
                return result
                    .with_error_code(code.code())
                    .with_error_message(message(why));
            }
            match outcomes.next() {
                Some(Ok(topic)) => {
                    if !req.validate_only {
                        tracing::info!(
                            topic = %topic.name,
                            partitions = topic.partitions.len(),
                            "added partitions"
                        );
                    }
                    result
                }
                Some(Err(e)) => result
                    .with_error_code(metadata_error_code(&e).code())
                    .with_error_message(message(&e)),
                // The store answers every topic it is given; a missing answer is a bug there.
                None => result
                    .with_error_code(ResponseError::UnknownServerError.code())
                    .with_error_message(message("no result for this topic")),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
