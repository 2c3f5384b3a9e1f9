//! AlterPartitionReassignments v0 (KIP-455): starts, changes or cancels (`replicas` null)
//! partition reassignments. The controller checks each partition and records the new replica
//! set ([`MetadataStore::alter_partition_reassignments`]); the answer comes once this broker's
//! metadata includes it. The data moves as the added replicas replicate; the reassignment
//! completes when they have joined the ISR (ListPartitionReassignments shows it until then).
//!
//! [`MetadataStore::alter_partition_reassignments`]: crate::metadata::MetadataStore::alter_partition_reassignments

use rivulet_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use rivulet_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::message;
use crate::broker::BrokerState;
use crate::error::metadata_error_code;
use crate::metadata::{MetadataError, Reassignment};

/// Applies the requested reassignments; every partition of the request gets one result, in
/// request order.
pub async fn handle(
    state: &BrokerState,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let reassignments: Vec<Reassignment> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Reassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    let (mut outcomes, top_level): (Vec<Result<(), MetadataError>>, _) = match state
        .store
        .alter_partition_reassignments(reassignments)
        .await
    {
        Ok(results) => (results.into_iter().map(|r| r.result).collect(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    if outcomes.iter().any(Result::is_ok) {
        tracing::info!(
            partitions = outcomes.iter().filter(|o| o.is_ok()).count(),
            "partition reassignments changed"
        );
        state.sync_partitions().await;
    }
    outcomes.reverse();
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match &top_level {
                        Some(e) => Err(e.clone()),
                        // The store answers every entry; a missing answer is a bug there.
                        None => outcomes.pop().unwrap_or_else(|| {
                            Err(MetadataError::Storage(
                                "no result for this partition".into(),
                            ))
                        }),
                    };
                    let result = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match outcome {
                        Ok(()) => result,
                        Err(e) => result
                            .with_error_code(metadata_error_code(&e).code())
                            .with_error_message(message(&e)),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let response = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    match top_level {
        None => response,
        Some(e) => response
            .with_error_code(metadata_error_code(&e).code())
            .with_error_message(message(&e)),
    }
}
