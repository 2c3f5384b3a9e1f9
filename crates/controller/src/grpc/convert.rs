//! Conversions between the gRPC messages and the controller's domain types.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::proto;
use crate::decisions::{
    Assignment, NewPartitions, NewTopic, PartitionResult, Reassignment, TopicConfigChange, TopicRef,
};
use crate::error::MetadataError;
use crate::image::{PartitionImage, TopicImage};

/// The wire form of a result's error (`None`: success).
pub fn error_info(e: &MetadataError) -> proto::ErrorInfo {
    proto::ErrorInfo {
        error_code: i32::from(e.code()),
        message: e.to_string(),
        leader_hint: match e {
            MetadataError::NotController { leader } => *leader,
            _ => -1,
        },
    }
}

/// The domain error of a wire error (`Ok` when there is none or its code is 0).
pub fn check(info: Option<&proto::ErrorInfo>) -> Result<(), MetadataError> {
    match info {
        Some(i) if i.error_code != 0 => Err(MetadataError::from_code(
            i16::try_from(i.error_code).unwrap_or(-1),
            i.message.clone(),
            i.leader_hint,
        )),
        _ => Ok(()),
    }
}

/// A controller reply: each carries an optional Kafka error.
pub trait Reply {
    /// The reply's error, if any.
    fn error(&self) -> Option<&proto::ErrorInfo>;
}

macro_rules! replies {
    ($($t:ty),* $(,)?) => {
        $(impl Reply for $t {
            fn error(&self) -> Option<&proto::ErrorInfo> {
                self.error.as_ref()
            }
        })*
    };
}

replies!(
    proto::RegisterBrokerResponse,
    proto::BrokerHeartbeatResponse,
    proto::AlterPartitionResponse,
    proto::AllocateProducerIdsResponse,
    proto::CreateTopicsResponse,
    proto::DeleteTopicsResponse,
    proto::CreatePartitionsResponse,
    proto::AlterTopicConfigsResponse,
    proto::ElectLeadersResponse,
    proto::AlterPartitionReassignmentsResponse,
);

/// Parses a topic id sent as text.
pub fn uuid(text: &str) -> Result<Uuid, MetadataError> {
    Uuid::parse_str(text).map_err(|_| MetadataError::InvalidRequest(format!("bad topic id {text}")))
}

fn replica_lists(lists: &[proto::ReplicaList]) -> Vec<Vec<i32>> {
    lists.iter().map(|l| l.broker_ids.clone()).collect()
}

fn to_replica_lists(lists: &[Vec<i32>]) -> Vec<proto::ReplicaList> {
    lists
        .iter()
        .map(|l| proto::ReplicaList {
            broker_ids: l.clone(),
        })
        .collect()
}

/// Wire form of a topic to create.
pub fn new_topic_to_wire(t: &NewTopic) -> proto::NewTopic {
    let (num_partitions, replication_factor, assignment) = match &t.assignment {
        Assignment::Auto {
            partitions,
            replication_factor,
        } => (*partitions, *replication_factor, Vec::new()),
        Assignment::Manual(a) => (-1, -1, to_replica_lists(a)),
    };
    proto::NewTopic {
        name: t.name.clone(),
        num_partitions,
        replication_factor,
        assignment,
        configs: t
            .configs
            .iter()
            .map(|(k, v)| proto::ConfigEntry {
                name: k.clone(),
                value: Some(v.clone()),
            })
            .collect(),
    }
}

/// Domain form of a topic to create.
pub fn new_topic_from_wire(t: proto::NewTopic) -> NewTopic {
    NewTopic {
        assignment: if t.assignment.is_empty() {
            Assignment::Auto {
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
            }
        } else {
            Assignment::Manual(replica_lists(&t.assignment))
        },
        name: t.name,
        configs: t
            .configs
            .into_iter()
            .filter_map(|c| c.value.map(|v| (c.name, v)))
            .collect(),
    }
}

/// Wire form of a topic reference.
pub fn topic_ref_to_wire(t: &TopicRef) -> proto::TopicRef {
    proto::TopicRef {
        by: Some(match t {
            TopicRef::Name(n) => proto::topic_ref::By::Name(n.clone()),
            TopicRef::Id(id) => proto::topic_ref::By::Id(id.to_string()),
        }),
    }
}

/// Domain form of a topic reference.
pub fn topic_ref_from_wire(t: proto::TopicRef) -> Result<TopicRef, MetadataError> {
    match t.by {
        Some(proto::topic_ref::By::Name(n)) => Ok(TopicRef::Name(n)),
        Some(proto::topic_ref::By::Id(id)) => Ok(TopicRef::Id(uuid(&id)?)),
        None => Err(MetadataError::InvalidRequest(
            "a topic needs a name or an id".into(),
        )),
    }
}

/// Wire form of partitions to add.
pub fn new_partitions_to_wire(p: &NewPartitions) -> proto::PartitionsToCreate {
    proto::PartitionsToCreate {
        topic: p.topic.clone(),
        total_count: p.total_count,
        assignment: p
            .assignment
            .as_deref()
            .map(to_replica_lists)
            .unwrap_or_default(),
    }
}

/// Domain form of partitions to add.
pub fn new_partitions_from_wire(p: proto::PartitionsToCreate) -> NewPartitions {
    NewPartitions {
        assignment: (!p.assignment.is_empty()).then(|| replica_lists(&p.assignment)),
        topic: p.topic,
        total_count: p.total_count,
    }
}

/// Wire form of a config change.
pub fn config_change_to_wire(c: &TopicConfigChange) -> proto::TopicConfigChange {
    proto::TopicConfigChange {
        topic: c.topic.clone(),
        changes: c
            .changes
            .iter()
            .map(|(k, v)| proto::ConfigEntry {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        replace: c.replace,
    }
}

/// Domain form of a config change.
pub fn config_change_from_wire(c: proto::TopicConfigChange) -> TopicConfigChange {
    TopicConfigChange {
        topic: c.topic,
        changes: c
            .changes
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect::<BTreeMap<_, _>>(),
        replace: c.replace,
    }
}

/// Wire form of per-topic outcomes.
pub fn topic_results_to_wire(
    results: &[Result<TopicImage, MetadataError>],
) -> Vec<proto::TopicResult> {
    results
        .iter()
        .map(|r| match r {
            Ok(t) => proto::TopicResult {
                error: None,
                topic: serde_json::to_vec(t).unwrap_or_default(),
            },
            Err(e) => proto::TopicResult {
                error: Some(error_info(e)),
                topic: Vec::new(),
            },
        })
        .collect()
}

/// Domain form of per-topic outcomes.
pub fn topic_results_from_wire(
    results: Vec<proto::TopicResult>,
) -> Vec<Result<TopicImage, MetadataError>> {
    results
        .into_iter()
        .map(|r| {
            check(r.error.as_ref())?;
            let mut topic: TopicImage = serde_json::from_slice(&r.topic)
                .map_err(|e| MetadataError::Storage(format!("undecodable topic: {e}")))?;
            topic.partitions.sort_by_key(|p| p.index);
            Ok(topic)
        })
        .collect()
}

/// Wire form of a partition's state.
pub fn partition_to_wire(p: &PartitionImage) -> proto::PartitionState {
    proto::PartitionState {
        partition: p.index,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
    }
}

/// Domain form of a partition's state.
pub fn partition_from_wire(p: proto::PartitionState) -> PartitionImage {
    PartitionImage {
        index: p.partition,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        replicas: p.replicas,
        isr: p.isr,
        adding_replicas: p.adding_replicas,
        removing_replicas: p.removing_replicas,
    }
}

/// Wire form of partitions named in a request.
pub fn partitions_to_wire(partitions: &[(String, i32)]) -> Vec<proto::TopicPartition> {
    partitions
        .iter()
        .map(|(topic, partition)| proto::TopicPartition {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

/// Domain form of partitions named in a request.
pub fn partitions_from_wire(partitions: Vec<proto::TopicPartition>) -> Vec<(String, i32)> {
    partitions
        .into_iter()
        .map(|p| (p.topic, p.partition))
        .collect()
}

/// Wire form of per-partition outcomes.
pub fn partition_results_to_wire(results: &[PartitionResult]) -> Vec<proto::PartitionResult> {
    results
        .iter()
        .map(|r| proto::PartitionResult {
            topic: r.topic.clone(),
            partition: r.partition,
            error: r.result.as_ref().err().map(error_info),
        })
        .collect()
}

/// Domain form of per-partition outcomes.
pub fn partition_results_from_wire(results: Vec<proto::PartitionResult>) -> Vec<PartitionResult> {
    results
        .into_iter()
        .map(|r| PartitionResult {
            result: check(r.error.as_ref()),
            topic: r.topic,
            partition: r.partition,
        })
        .collect()
}

/// Wire form of a reassignment request entry.
pub fn reassignment_to_wire(r: &Reassignment) -> proto::PartitionReassignment {
    proto::PartitionReassignment {
        topic: r.topic.clone(),
        partition: r.partition,
        target: r.target.as_ref().map(|t| proto::ReplicaList {
            broker_ids: t.clone(),
        }),
    }
}

/// Domain form of a reassignment request entry.
pub fn reassignment_from_wire(r: proto::PartitionReassignment) -> Reassignment {
    Reassignment {
        topic: r.topic,
        partition: r.partition,
        target: r.target.map(|t| t.broker_ids),
    }
}
