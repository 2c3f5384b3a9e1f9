//! ElectLeaders (KIP-183, KIP-460): moves leadership to the preferred replica (v0, and
//! election type 0 from v1), or gives a leader to partitions without one (election type 1,
//! unclean). The controller decides per partition ([`MetadataStore::elect_leaders`]): the answer
//! comes once this broker's metadata includes the new leaders.
//!
//! With no partitions named (`topic_partitions` null), every partition is considered and those
//! that need no election are left out of the answer, as Kafka does.
//!
//! [`MetadataStore::elect_leaders`]: crate::metadata::MetadataStore::elect_leaders

use rivulet_protocol::kafka_protocol::messages::elect_leaders_response::{
    PartitionResult as WirePartitionResult, ReplicaElectionResult,
};
use rivulet_protocol::kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::{message, str_bytes};
use crate::broker::BrokerState;
use crate::error::metadata_error_code;
use crate::metadata::{ElectionType, MetadataError, PartitionResult};

/// Runs the requested elections.
pub async fn handle(
    state: &BrokerState,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    // v0 has no election type: it always elects preferred leaders.
    let election = if version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_code(req.election_type)
    };
    let Some(election) = election else {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    };
    let named: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    if named.as_ref().is_some_and(Vec::is_empty) {
        return ElectLeadersResponse::default();
    }
    match state.store.elect_leaders(election, named.clone()).await {
        Ok(results) => {
            let elected = results.iter().filter(|r| r.result.is_ok()).count();
            if elected > 0 {
                tracing::info!(?election, partitions = elected, "elected leaders");
                state.sync_partitions().await;
            }
            ElectLeadersResponse::default().with_replica_election_results(by_topic(&results))
        }
        Err(e) if version >= 1 => {
            ElectLeadersResponse::default().with_error_code(metadata_error_code(&e).code())
        }
        // v0 has no top-level error: every named partition carries it.
        Err(e) => {
            let failed: Vec<PartitionResult> = named
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| PartitionResult {
                    topic,
                    partition,
                    result: Err(e.clone()),
                })
                .collect();
            ElectLeadersResponse::default().with_replica_election_results(by_topic(&failed))
        }
    }
}

/// The per-partition results grouped by topic, topics in the order they first appear.
fn by_topic(results: &[PartitionResult]) -> Vec<ReplicaElectionResult> {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for r in results {
        let entry = partition_result(r.partition, r.result.as_ref().err());
        match topics.iter_mut().find(|t| t.topic.0.as_str() == r.topic) {
            Some(t) => t.partition_result.push(entry),
            None => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(&r.topic)))
                    .with_partition_result(vec![entry]),
            ),
        }
    }
    topics
}

fn partition_result(partition: i32, error: Option<&MetadataError>) -> WirePartitionResult {
    let result = WirePartitionResult::default().with_partition_id(partition);
    match error {
        None => result,
        Some(e) => result
            .with_error_code(metadata_error_code(e).code())
            .with_error_message(message(e)),
    }
}
