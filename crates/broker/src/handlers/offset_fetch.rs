//! OffsetFetch (v1-9): a group's committed offsets, for the partitions named or (v2+, topics
//! null) all of them; -1 with no error where nothing is committed. v8+ asks for several groups
//! at once, each answered (or failed) on its own. No transactions write offsets yet, so
//! `require_stable` (v7+) has nothing to wait for.

use std::collections::BTreeMap;

use rivulet_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use rivulet_protocol::kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::BrokerState;
use crate::group_coordinator::api::FetchedOffset;

/// Fetches the committed offsets.
pub async fn handle(
    state: &BrokerState,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let wanted = g.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(move |p| (t.name.0.to_string(), *p))
                    })
                    .collect()
            });
            let group = match state.groups.fetch_offsets(&g.group_id.0, wanted).await {
                Ok(fetched) => OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(group_topics(fetched)),
                Err(e) => OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(e.code()),
            };
            groups.push(group);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let GroupId(group) = &req.group_id;
    match state.groups.fetch_offsets(group, wanted).await {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(topics(fetched)),
        Err(e) => failed(req, version, e),
    }
}

/// v1-7 with a group-level error: v2+ carry it at the top; v1 only per partition.
fn failed(req: OffsetFetchRequest, version: i16, e: ResponseError) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 2 {
        return response.with_error_code(e.code());
    }
    response.topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partition_indexes
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(str_bytes("")))
                                .with_error_code(e.code())
                        })
                        .collect(),
                )
        })
        .collect();
    response
}

fn by_topic(fetched: Vec<FetchedOffset>) -> BTreeMap<String, Vec<FetchedOffset>> {
    let mut topics: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
    for f in fetched {
        topics.entry(f.topic.clone()).or_default().push(f);
    }
    for partitions in topics.values_mut() {
        partitions.sort_by_key(|f| f.partition);
    }
    topics
}

fn topics(fetched: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopic> {
    by_topic(fetched)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(str_bytes(&f.metadata)))
                        })
                        .collect(),
                )
        })
        .collect()
}

fn group_topics(fetched: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopics> {
    by_topic(fetched)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(str_bytes(&f.metadata)))
                        })
                        .collect(),
                )
        })
        .collect()
}
