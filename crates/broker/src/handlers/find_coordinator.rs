//! FindCoordinator (v0-6): the broker that coordinates a group. A group's coordinator is the
//! leader of its `__consumer_offsets` partition; the first lookup creates that topic (as Kafka
//! does, whatever `auto.create.topics.enable` says) and answers COORDINATOR_NOT_AVAILABLE until
//! the partition has a leader. v4+ looks up a batch of keys. Transaction coordinators (key type
//! 1) are not built yet: COORDINATOR_NOT_AVAILABLE.

use rivulet_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::ResponseError;

use super::{str_bytes, ConnectionInfo};
use crate::broker::BrokerState;
use crate::group_coordinator::OFFSETS_TOPIC;
use crate::metadata::MetadataError;

/// Key type of a consumer group.
const GROUP: i8 = 0;
/// Key type of a transactional id.
const TRANSACTION: i8 = 1;

/// Finds the coordinator of each key.
pub async fn handle(
    state: &BrokerState,
    connection: &ConnectionInfo,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    if req.key_type == GROUP && !state.store.image().topics.contains_key(OFFSETS_TOPIC) {
        create_offsets_topic(state).await;
    }
    let coordinators: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| lookup(state, connection, req.key_type, key))
        .collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.into_iter().next().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

fn lookup(
    state: &BrokerState,
    connection: &ConnectionInfo,
    key_type: i8,
    key: StrBytes,
) -> Coordinator {
    let failed = |key: StrBytes, e: ResponseError| {
        Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&format!("{e:?}"))))
    };
    match key_type {
        GROUP => {}
        TRANSACTION => return failed(key, ResponseError::CoordinatorNotAvailable),
        _ => return failed(key, ResponseError::InvalidRequest),
    }
    let image = state.store.image();
    let Some(partition) = state.groups.partition_of(&key, &image) else {
        return failed(key, ResponseError::CoordinatorNotAvailable);
    };
    let leader = image
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.partitions.get(partition as usize))
        .map_or(-1, |p| p.leader);
    let endpoint = image
        .brokers
        .get(&leader)
        .filter(|b| !b.fenced)
        .and_then(|b| state.endpoint(b, &connection.listener));
    match endpoint {
        Some((host, port)) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(leader))
            .with_host(str_bytes(&host))
            .with_port(i32::from(port)),
        None => failed(key, ResponseError::CoordinatorNotAvailable),
    }
}

/// Creates `__consumer_offsets`; a concurrent creation by another broker is fine.
async fn create_offsets_topic(state: &BrokerState) {
    let topic = state.groups.offsets_topic(&state.store.image());
    match state.store.create_topics(vec![topic], false).await.pop() {
        Some(Ok(_)) => {
            tracing::info!(topic = OFFSETS_TOPIC, "created the offsets topic");
            state.sync_partitions().await;
        }
        Some(Err(MetadataError::TopicAlreadyExists(_))) | None => {}
        Some(Err(e)) => {
            tracing::warn!(topic = OFFSETS_TOPIC, error = %e, "cannot create the offsets topic yet")
        }
    }
}
