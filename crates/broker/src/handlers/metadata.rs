//! Metadata: brokers, topics and partition leadership, answered from the metadata image, with
//! this broker's address as advertised on the listener the client came through.

use rivulet_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::{str_bytes, ConnectionInfo};
use crate::broker::BrokerState;
use crate::metadata::{topic_name, MetadataImage, TopicImage};

/// Answers a Metadata request, creating missing topics first when `auto.create.topics.enable`
/// and the request (v4+) allow it.
pub async fn handle(
    state: &BrokerState,
    conn: &ConnectionInfo,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        Some(t) if version == 0 && t.is_empty() => None,
        other => other,
    };
    let mut image = state.store.image();
    if let Some(topics) = &requested {
        let allow = version < 4 || req.allow_auto_topic_creation;
        if allow && state.config.auto_create_topics_enable {
            let missing: Vec<String> = topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .filter(|n| !image.topics.contains_key(n) && topic_name::validate(n).is_ok())
                .collect();
            if !missing.is_empty() {
                state.auto_create_topics(missing).await;
                image = state.store.image();
            }
        }
    }
    let topics: Vec<MetadataResponseTopic> = match requested {
        None => image
            .topics
            .values()
            .map(|t| topic_response(&image, t, version))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| match (&t.name, t.topic_id.is_nil()) {
                (Some(name), _) => match image.topics.get(name.0.as_str()) {
                    Some(topic) => topic_response(&image, topic, version),
                    None => {
                        let error = if topic_name::validate(name.0.as_str()).is_err() {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        MetadataResponseTopic::default()
                            .with_name(Some(name.clone()))
                            .with_error_code(error.code())
                    }
                },
                (None, false) => match image.topic_by_id(&t.topic_id) {
                    Some(topic) => topic_response(&image, topic, version),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
                (None, true) => MetadataResponseTopic::default()
                    .with_error_code(ResponseError::InvalidRequest.code()),
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers(state, &image, conn))
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        .with_controller_id(BrokerId(image.controller_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

/// Live brokers, each with its address on the client's listener (brokers without that listener
/// are left out, as Kafka does).
fn brokers(
    state: &BrokerState,
    image: &MetadataImage,
    conn: &ConnectionInfo,
) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let (host, port) = state.endpoint(b, &conn.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(&host))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.as_deref().map(str_bytes)),
            )
        })
        .collect()
}

fn topic_response(
    image: &MetadataImage,
    topic: &TopicImage,
    _version: i16,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
            let error = if p.leader < 0 || !live(&p.leader) {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .filter(|r| !live(r))
                        .copied()
                        .map(BrokerId)
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
