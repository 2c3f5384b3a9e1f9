//! ListPartitionReassignments v0 (KIP-455): the reassignments in progress, read from this
//! broker's metadata image: each partition's replicas and the ones being added and removed.
//! Named topics or partitions that do not exist, or are not being reassigned, are left out, as
//! Kafka does; a null topic list means every topic.

use rivulet_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::str_bytes;
use crate::broker::BrokerState;
use crate::metadata::{PartitionImage, TopicImage};

/// Lists the ongoing reassignments among the requested partitions.
pub fn handle(
    state: &BrokerState,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = state.store.image();
    let topics: Vec<OngoingTopicReassignment> = match &req.topics {
        None => image
            .topics
            .values()
            .filter_map(|t| ongoing(t, |_| true))
            .collect(),
        Some(named) => named
            .iter()
            .filter_map(|n| {
                let topic = image.topics.get(n.name.0.as_str())?;
                ongoing(topic, |p| n.partition_indexes.contains(&p.index))
            })
            .collect(),
    };
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// The partitions of `topic` being reassigned that `wanted` selects, if any.
fn ongoing(
    topic: &TopicImage,
    wanted: impl Fn(&PartitionImage) -> bool,
) -> Option<OngoingTopicReassignment> {
    let ids = |brokers: &[i32]| brokers.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions: Vec<OngoingPartitionReassignment> = topic
        .partitions
        .iter()
        .filter(|p| p.is_reassigning() && wanted(p))
        .map(|p| {
            OngoingPartitionReassignment::default()
                .with_partition_index(p.index)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding_replicas))
                .with_removing_replicas(ids(&p.removing_replicas))
        })
        .collect();
    (!partitions.is_empty()).then(|| {
        OngoingTopicReassignment::default()
            .with_name(TopicName(str_bytes(&topic.name)))
            .with_partitions(partitions)
    })
}
