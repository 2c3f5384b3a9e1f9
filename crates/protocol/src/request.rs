//! Turning one request frame (the bytes after the length prefix) into a typed [`Request`].
//!
//! ```text
//! request_api_key: i16 | request_api_version: i16 | correlation_id: i32 | client_id: nullable
//! string (i16 length) | [tagged fields: header v2 only] | body
//! ```
//!
//! Check, then parse:
//! 1. the first 8 bytes give the api key, version and correlation id, so every later error can
//!    name the request it belongs to;
//! 2. the key and version are checked against [`crate::SUPPORTED_APIS`]
//!    ([`DecodeError::UnknownApiKey`], [`DecodeError::UnsupportedVersion`]; an unsupported
//!    ApiVersions version is answered, see [`DecodeError::api_versions_fallback`]);
//! 3. the header is decoded at the version the API and version call for (v2, with tagged
//!    fields, for flexible versions; v1 otherwise);
//! 4. every length prefix of the body is checked against the bytes left (module `schema`),
//!    so the decoder below never sizes an allocation from an unchecked count;
//! 5. the body is decoded by `kafka-protocol` (`RequestKind::decode`), or by
//!    [`crate::legacy_produce`] for Produce v0-2. Strings and `records` stay [`Bytes`] slices of
//!    the frame: nothing is copied.
//!
//! Bytes after the body are ignored, as Kafka ignores them (`AbstractRequest.parseRequest`
//! reads the fields it expects and never checks what remains). Nothing here panics on any input
//! (a proptest and a cargo-fuzz target feed it arbitrary bytes).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::api_versions::is_supported;
use crate::error::DecodeError;
use crate::legacy_produce::{LegacyProduceRequest, LEGACY_PRODUCE_VERSIONS};
use crate::schema;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The request header (api key, version, correlation id, client id).
    pub header: RequestHeader,
    /// The API, from the header.
    pub api_key: ApiKey,
    /// The API version, from the header.
    pub api_version: i16,
    /// The body.
    pub body: RequestBody,
}

impl Request {
    /// The correlation id to echo in the response.
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// A request body.
// Nearly every request is `Kafka`; boxing it to shrink the rare legacy variant would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    /// Any API and version `kafka-protocol` decodes.
    Kafka(RequestKind),
    /// Produce v0-2 ([`crate::legacy_produce`]).
    LegacyProduce(LegacyProduceRequest),
}

/// Bytes of the fixed header prefix: api key, api version, correlation id.
const HEADER_PREFIX_BYTES: usize = 8;

/// Decodes one request frame (without its length prefix, as [`crate::frame_codec`] yields it).
pub fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    let Some(&[k0, k1, v0, v1, c0, c1, c2, c3]) = frame.get(..HEADER_PREFIX_BYTES) else {
        return Err(DecodeError::malformed(
            None,
            format!(
                "frame of {} bytes is shorter than the {HEADER_PREFIX_BYTES}-byte header prefix",
                frame.len()
            ),
        ));
    };
    let raw_key = i16::from_be_bytes([k0, k1]);
    let api_version = i16::from_be_bytes([v0, v1]);
    let correlation_id = i32::from_be_bytes([c0, c1, c2, c3]);

    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Err(DecodeError::UnknownApiKey {
            api_key: raw_key,
            api_version,
            correlation_id,
        });
    };
    if !is_supported(api_key, api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let malformed = |reason: String| DecodeError::malformed(Some(correlation_id), reason);

    let mut buf = frame;
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut buf, header_version)
        .map_err(|e| malformed(format!("request header v{header_version}: {e:#}")))?;

    let body = if api_key == ApiKey::Produce && LEGACY_PRODUCE_VERSIONS.contains(&api_version) {
        let legacy = LegacyProduceRequest::decode(&mut buf, api_version).map_err(|e| match e {
            DecodeError::Malformed { reason, .. } => malformed(reason),
            other => other,
        })?;
        RequestBody::LegacyProduce(legacy)
    } else {
        schema::check_body(api_key, api_version, &buf)
            .map_err(|e| malformed(format!("{api_key:?} v{api_version} body: {e}")))?;
        let kind = RequestKind::decode(api_key, &mut buf, api_version)
            .map_err(|e| malformed(format!("{e:#}")))?;
        RequestBody::Kafka(kind)
    };
    Ok(Request {
        header,
        api_key,
        api_version,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_versions::SUPPORTED_APIS;
    use crate::legacy_produce::{LegacyPartitionProduceData, LegacyTopicProduceData};
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::fetch_request::{
        FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
    };
    use kafka_protocol::messages::incremental_alter_configs_request as incremental;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn s(x: &'static str) -> StrBytes {
        StrBytes::from_static_str(x)
    }

    fn topic(x: &'static str) -> TopicName {
        TopicName(s(x))
    }

    fn uuid(n: u8) -> uuid::Uuid {
        uuid::Uuid::from_bytes([n; 16])
    }

    const TAG: i32 = 77;

    fn tag() -> Bytes {
        Bytes::from_static(b"tagged")
    }

    /// A populated request of `key` v`version`: non-empty nested arrays, strings, nullable
    /// fields set, known tagged fields where the version has them, and an unknown tagged field
    /// on every struct of a flexible version.
    fn sample(key: ApiKey, v: i16) -> RequestBody {
        let kind = match key {
            ApiKey::Produce if v < 3 => {
                return RequestBody::LegacyProduce(LegacyProduceRequest {
                    acks: -1,
                    timeout_ms: 30_000,
                    topics: vec![LegacyTopicProduceData {
                        name: topic("t"),
                        partitions: vec![
                            LegacyPartitionProduceData {
                                index: 0,
                                records: Some(Bytes::from_static(&[0; 40])),
                            },
                            LegacyPartitionProduceData {
                                index: 1,
                                records: None,
                            },
                        ],
                    }],
                });
            }
            ApiKey::Produce => {
                let partition = |i, records: Option<Bytes>| {
                    PartitionProduceData::default()
                        .with_index(i)
                        .with_records(records)
                        .with_unknown_tagged_field(TAG, tag())
                };
                let mut t = TopicProduceData::default()
                    .with_partition_data(vec![
                        partition(0, Some(Bytes::from_static(&[7; 61]))),
                        partition(1, None),
                    ])
                    .with_unknown_tagged_field(TAG, tag());
                t = if v >= 13 {
                    t.with_topic_id(uuid(1))
                } else {
                    t.with_name(topic("orders"))
                };
                RequestKind::Produce(
                    ProduceRequest::default()
                        .with_transactional_id(Some(TransactionalId(s("tx"))))
                        .with_acks(-1)
                        .with_timeout_ms(1500)
                        .with_topic_data(vec![t, TopicProduceData::default()])
                        .with_unknown_tagged_field(TAG, tag()),
                )
            }
            ApiKey::Fetch => {
                let mut p = FetchPartition::default()
                    .with_partition(3)
                    .with_fetch_offset(100)
                    .with_partition_max_bytes(1 << 20)
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 9 {
                    p = p.with_current_leader_epoch(4);
                }
                if v >= 12 {
                    p = p.with_last_fetched_epoch(3);
                }
                if v >= 5 {
                    p = p.with_log_start_offset(0);
                }
                let mut t = FetchTopic::default()
                    .with_partitions(vec![p.clone(), p.with_partition(4)])
                    .with_unknown_tagged_field(TAG, tag());
                t = if v >= 13 {
                    t.with_topic_id(uuid(2))
                } else {
                    t.with_topic(topic("events"))
                };
                let mut r = FetchRequest::default()
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(50 << 20)
                    .with_isolation_level(1)
                    .with_topics(vec![t])
                    .with_unknown_tagged_field(TAG, tag());
                if v <= 14 {
                    r = r.with_replica_id(BrokerId(-1));
                }
                if v >= 7 {
                    let mut f = ForgottenTopic::default()
                        .with_partitions(vec![1, 2, 3])
                        .with_unknown_tagged_field(TAG, tag());
                    f = if v >= 13 {
                        f.with_topic_id(uuid(3))
                    } else {
                        f.with_topic(topic("old"))
                    };
                    r = r
                        .with_session_id(9)
                        .with_session_epoch(2)
                        .with_forgotten_topics_data(vec![f]);
                }
                if v >= 11 {
                    r = r.with_rack_id(s("rack-a"));
                }
                if v >= 12 {
                    r = r.with_cluster_id(Some(s("cluster")));
                }
                if v >= 15 {
                    r = r.with_replica_state(
                        ReplicaState::default()
                            .with_replica_id(BrokerId(2))
                            .with_replica_epoch(5)
                            .with_unknown_tagged_field(TAG, tag()),
                    );
                }
                RequestKind::Fetch(r)
            }
            ApiKey::ListOffsets => {
                let mut p = ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(-1)
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 4 {
                    p = p.with_current_leader_epoch(7);
                }
                let mut r = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![p.clone(), p.with_partition_index(2)])
                        .with_unknown_tagged_field(TAG, tag())])
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 2 {
                    r = r.with_isolation_level(1);
                }
                if v >= 10 {
                    r = r.with_timeout_ms(1000);
                }
                RequestKind::ListOffsets(r)
            }
            ApiKey::Metadata => {
                let mut t = MetadataRequestTopic::default()
                    .with_name(Some(topic("t")))
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 10 {
                    t = t.with_topic_id(uuid(4));
                }
                let mut r = MetadataRequest::default()
                    .with_topics(Some(vec![
                        t,
                        MetadataRequestTopic::default().with_name(Some(topic("u"))),
                    ]))
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 4 {
                    r = r.with_allow_auto_topic_creation(false);
                }
                if (8..=10).contains(&v) {
                    r = r.with_include_cluster_authorized_operations(true);
                }
                if v >= 8 {
                    r = r.with_include_topic_authorized_operations(true);
                }
                RequestKind::Metadata(r)
            }
            ApiKey::ApiVersions => {
                let mut r = ApiVersionsRequest::default().with_unknown_tagged_field(TAG, tag());
                if v >= 3 {
                    r = r
                        .with_client_software_name(s("librdkafka"))
                        .with_client_software_version(s("2.3.0"));
                }
                RequestKind::ApiVersions(r)
            }
            ApiKey::CreateTopics => RequestKind::CreateTopics(
                CreateTopicsRequest::default()
                    .with_topics(vec![
                        CreatableTopic::default()
                            .with_name(topic("new"))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                            .with_assignments(vec![CreatableReplicaAssignment::default()
                                .with_partition_index(0)
                                .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
                                .with_unknown_tagged_field(TAG, tag())])
                            .with_configs(vec![
                                CreatableTopicConfig::default()
                                    .with_name(s("cleanup.policy"))
                                    .with_value(Some(s("compact")))
                                    .with_unknown_tagged_field(TAG, tag()),
                                CreatableTopicConfig::default().with_name(s("x")),
                            ])
                            .with_unknown_tagged_field(TAG, tag()),
                        CreatableTopic::default().with_name(topic("other")),
                    ])
                    .with_timeout_ms(60_000)
                    .with_validate_only(true)
                    .with_unknown_tagged_field(TAG, tag()),
            ),
            ApiKey::DeleteTopics => {
                let mut r = DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_unknown_tagged_field(TAG, tag());
                r = if v >= 6 {
                    r.with_topics(vec![
                        DeleteTopicState::default()
                            .with_name(Some(topic("gone")))
                            .with_unknown_tagged_field(TAG, tag()),
                        DeleteTopicState::default().with_topic_id(uuid(5)),
                    ])
                } else {
                    r.with_topic_names(vec![topic("a"), topic("bb")])
                };
                RequestKind::DeleteTopics(r)
            }
            ApiKey::InitProducerId => {
                let mut r = InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("txn-1"))))
                    .with_transaction_timeout_ms(60_000)
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 3 {
                    r = r.with_producer_id(ProducerId(12)).with_producer_epoch(3);
                }
                RequestKind::InitProducerId(r)
            }
            ApiKey::DescribeConfigs => {
                let mut r = DescribeConfigsRequest::default()
                    .with_resources(vec![
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("t"))
                            .with_configuration_keys(Some(vec![s("retention.ms"), s("a")]))
                            .with_unknown_tagged_field(TAG, tag()),
                        DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("1")),
                    ])
                    .with_include_synonyms(true)
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 3 {
                    r = r.with_include_documentation(true);
                }
                RequestKind::DescribeConfigs(r)
            }
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(
                AlterConfigsRequest::default()
                    .with_resources(vec![
                        AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("t"))
                            .with_configs(vec![
                                AlterableConfig::default()
                                    .with_name(s("retention.ms"))
                                    .with_value(Some(s("1000")))
                                    .with_unknown_tagged_field(TAG, tag()),
                                AlterableConfig::default().with_name(s("x")),
                            ])
                            .with_unknown_tagged_field(TAG, tag()),
                        AlterConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("1")),
                    ])
                    .with_validate_only(true)
                    .with_unknown_tagged_field(TAG, tag()),
            ),
            ApiKey::CreatePartitions => RequestKind::CreatePartitions(
                CreatePartitionsRequest::default()
                    .with_topics(vec![
                        CreatePartitionsTopic::default()
                            .with_name(topic("grow"))
                            .with_count(3)
                            .with_assignments(Some(vec![
                                CreatePartitionsAssignment::default()
                                    .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
                                    .with_unknown_tagged_field(TAG, tag()),
                                CreatePartitionsAssignment::default(),
                            ]))
                            .with_unknown_tagged_field(TAG, tag()),
                        CreatePartitionsTopic::default()
                            .with_name(topic("auto"))
                            .with_count(8)
                            .with_assignments(None),
                    ])
                    .with_timeout_ms(30_000)
                    .with_validate_only(true)
                    .with_unknown_tagged_field(TAG, tag()),
            ),
            ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default()
                    .with_resources(vec![
                        incremental::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("t"))
                            .with_configs(vec![
                                incremental::AlterableConfig::default()
                                    .with_name(s("cleanup.policy"))
                                    .with_config_operation(2)
                                    .with_value(Some(s("compact")))
                                    .with_unknown_tagged_field(TAG, tag()),
                                incremental::AlterableConfig::default()
                                    .with_name(s("retention.ms"))
                                    .with_config_operation(1),
                            ])
                            .with_unknown_tagged_field(TAG, tag()),
                        incremental::AlterConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("")),
                    ])
                    .with_validate_only(true)
                    .with_unknown_tagged_field(TAG, tag()),
            ),
            ApiKey::ElectLeaders => {
                let mut r = ElectLeadersRequest::default()
                    .with_topic_partitions(Some(vec![
                        elect_leaders_request::TopicPartitions::default()
                            .with_topic(topic("t"))
                            .with_partitions(vec![0, 2])
                            .with_unknown_tagged_field(TAG, tag()),
                        elect_leaders_request::TopicPartitions::default().with_topic(topic("u")),
                    ]))
                    .with_timeout_ms(30_000)
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 1 {
                    r = r.with_election_type(1);
                }
                RequestKind::ElectLeaders(r)
            }
            ApiKey::AlterPartitionReassignments => {
                use alter_partition_reassignments_request::{
                    ReassignablePartition, ReassignableTopic,
                };
                RequestKind::AlterPartitionReassignments(
                    AlterPartitionReassignmentsRequest::default()
                        .with_timeout_ms(60_000)
                        .with_topics(vec![ReassignableTopic::default()
                            .with_name(topic("t"))
                            .with_partitions(vec![
                                ReassignablePartition::default()
                                    .with_partition_index(0)
                                    .with_replicas(Some(vec![BrokerId(3), BrokerId(1)]))
                                    .with_unknown_tagged_field(TAG, tag()),
                                ReassignablePartition::default()
                                    .with_partition_index(1)
                                    .with_replicas(None),
                            ])
                            .with_unknown_tagged_field(TAG, tag())])
                        .with_unknown_tagged_field(TAG, tag()),
                )
            }
            ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(60_000)
                    .with_topics(Some(vec![
                        list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                            .with_name(topic("t"))
                            .with_partition_indexes(vec![0, 1])
                            .with_unknown_tagged_field(TAG, tag()),
                    ]))
                    .with_unknown_tagged_field(TAG, tag()),
            ),
            ApiKey::OffsetForLeaderEpoch => {
                use offset_for_leader_epoch_request::{
                    OffsetForLeaderPartition, OffsetForLeaderTopic,
                };
                let mut topic_entry = OffsetForLeaderTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(7)
                            .with_leader_epoch(5),
                        OffsetForLeaderPartition::default()
                            .with_partition(2)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0),
                    ]);
                let mut r = OffsetForLeaderEpochRequest::default();
                if v >= 3 {
                    r = r.with_replica_id(BrokerId(-1));
                }
                if v >= 4 {
                    topic_entry = topic_entry.with_unknown_tagged_field(TAG, tag());
                    r = r.with_unknown_tagged_field(TAG, tag());
                }
                RequestKind::OffsetForLeaderEpoch(r.with_topics(vec![topic_entry]))
            }
            ApiKey::DescribeCluster => {
                let mut r = DescribeClusterRequest::default()
                    .with_include_cluster_authorized_operations(true)
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 1 {
                    r = r.with_endpoint_type(2);
                }
                if v >= 2 {
                    r = r.with_include_fenced_brokers(true);
                }
                RequestKind::DescribeCluster(r)
            }
            ApiKey::DescribeQuorum => {
                use describe_quorum_request::{PartitionData, TopicData};
                RequestKind::DescribeQuorum(
                    DescribeQuorumRequest::default()
                        .with_topics(vec![
                            TopicData::default()
                                .with_topic_name(topic("__cluster_metadata"))
                                .with_partitions(vec![
                                    PartitionData::default()
                                        .with_partition_index(0)
                                        .with_unknown_tagged_field(TAG, tag()),
                                    PartitionData::default().with_partition_index(1),
                                ])
                                .with_unknown_tagged_field(TAG, tag()),
                            TopicData::default().with_topic_name(topic("other")),
                        ])
                        .with_unknown_tagged_field(TAG, tag()),
                )
            }
            ApiKey::OffsetCommit => {
                use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
                let mut p = OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1234)
                    .with_committed_metadata(Some(s("meta")));
                let mut q = OffsetCommitRequestPartition::default()
                    .with_partition_index(5)
                    .with_committed_offset(-1)
                    .with_committed_metadata(None);
                if v >= 6 {
                    p = p.with_committed_leader_epoch(3);
                }
                let mut t = OffsetCommitRequestTopic::default().with_name(topic("t"));
                let mut r = OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("group-1")))
                    .with_generation_id_or_member_epoch(7)
                    .with_member_id(s("member-1"));
                if v >= 7 {
                    r = r.with_group_instance_id(Some(s("instance-1")));
                }
                if v <= 4 {
                    r = r.with_retention_time_ms(86_400_000);
                }
                if v >= 8 {
                    p = p.with_unknown_tagged_field(TAG, tag());
                    q = q.with_unknown_tagged_field(TAG, tag());
                    t = t.with_unknown_tagged_field(TAG, tag());
                    r = r.with_unknown_tagged_field(TAG, tag());
                }
                RequestKind::OffsetCommit(r.with_topics(vec![
                    t.with_partitions(vec![p, q]),
                    OffsetCommitRequestTopic::default().with_name(topic("empty")),
                ]))
            }
            ApiKey::OffsetFetch => {
                use offset_fetch_request::{
                    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
                };
                let mut r = OffsetFetchRequest::default().with_unknown_tagged_field(TAG, tag());
                if v <= 7 {
                    r = r.with_group_id(GroupId(s("group-1"))).with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(topic("t"))
                            .with_partition_indexes(vec![0, 1, 2])
                            .with_unknown_tagged_field(TAG, tag()),
                        OffsetFetchRequestTopic::default().with_name(topic("u")),
                    ]));
                } else {
                    let mut g = OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s("group-1")))
                        .with_topics(Some(vec![
                            OffsetFetchRequestTopics::default()
                                .with_name(topic("t"))
                                .with_partition_indexes(vec![0, 1, 2])
                                .with_unknown_tagged_field(TAG, tag()),
                            OffsetFetchRequestTopics::default().with_name(topic("u")),
                        ]))
                        .with_unknown_tagged_field(TAG, tag());
                    if v >= 9 {
                        g = g.with_member_id(Some(s("member-1"))).with_member_epoch(4);
                    }
                    r = r.with_groups(vec![
                        g,
                        // Null topics: all of this group's committed offsets.
                        OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("group-2")))
                            .with_topics(None),
                    ]);
                }
                if v >= 7 {
                    r = r.with_require_stable(true);
                }
                RequestKind::OffsetFetch(r)
            }
            ApiKey::FindCoordinator => {
                let mut r = FindCoordinatorRequest::default().with_unknown_tagged_field(TAG, tag());
                if v <= 3 {
                    r = r.with_key(s("group-1"));
                }
                if v >= 1 {
                    r = r.with_key_type(1);
                }
                if v >= 4 {
                    r = r.with_coordinator_keys(vec![s("txn-a"), s("txn-b")]);
                }
                RequestKind::FindCoordinator(r)
            }
            ApiKey::JoinGroup => {
                use join_group_request::JoinGroupRequestProtocol;
                let mut r = JoinGroupRequest::default()
                    .with_group_id(GroupId(s("group-1")))
                    .with_session_timeout_ms(45_000)
                    .with_member_id(s("member-1"))
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![
                        JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(Bytes::from_static(&[0, 3, 0, 0, 0, 1, 0, 1, b't']))
                            .with_unknown_tagged_field(TAG, tag()),
                        JoinGroupRequestProtocol::default().with_name(s("cooperative-sticky")),
                    ])
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 1 {
                    r = r.with_rebalance_timeout_ms(300_000);
                }
                if v >= 5 {
                    r = r.with_group_instance_id(Some(s("instance-1")));
                }
                if v >= 8 {
                    r = r.with_reason(Some(s("rebalance")));
                }
                RequestKind::JoinGroup(r)
            }
            ApiKey::Heartbeat => {
                let mut r = HeartbeatRequest::default()
                    .with_group_id(GroupId(s("group-1")))
                    .with_generation_id(3)
                    .with_member_id(s("member-1"))
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 3 {
                    r = r.with_group_instance_id(Some(s("instance-1")));
                }
                RequestKind::Heartbeat(r)
            }
            ApiKey::LeaveGroup => {
                use leave_group_request::MemberIdentity;
                let mut r = LeaveGroupRequest::default()
                    .with_group_id(GroupId(s("group-1")))
                    .with_unknown_tagged_field(TAG, tag());
                if v <= 2 {
                    r = r.with_member_id(s("member-1"));
                } else {
                    let mut m = MemberIdentity::default()
                        .with_member_id(s("member-1"))
                        .with_group_instance_id(Some(s("instance-1")))
                        .with_unknown_tagged_field(TAG, tag());
                    if v >= 5 {
                        m = m.with_reason(Some(s("shutting down")));
                    }
                    r = r.with_members(vec![m, MemberIdentity::default().with_member_id(s("m2"))]);
                }
                RequestKind::LeaveGroup(r)
            }
            ApiKey::SyncGroup => {
                use sync_group_request::SyncGroupRequestAssignment;
                let mut r = SyncGroupRequest::default()
                    .with_group_id(GroupId(s("group-1")))
                    .with_generation_id(3)
                    .with_member_id(s("member-1"))
                    .with_assignments(vec![
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s("member-1"))
                            .with_assignment(Bytes::from_static(&[0, 3, 0, 0, 0, 0]))
                            .with_unknown_tagged_field(TAG, tag()),
                        SyncGroupRequestAssignment::default().with_member_id(s("member-2")),
                    ])
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 3 {
                    r = r.with_group_instance_id(Some(s("instance-1")));
                }
                if v >= 5 {
                    r = r
                        .with_protocol_type(Some(s("consumer")))
                        .with_protocol_name(Some(s("range")));
                }
                RequestKind::SyncGroup(r)
            }
            ApiKey::DescribeGroups => {
                let mut r = DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(s("group-1")), GroupId(s("g2"))])
                    .with_unknown_tagged_field(TAG, tag());
                if v >= 3 {
                    r = r.with_include_authorized_operations(true);
                }
                RequestKind::DescribeGroups(r)
            }
            ApiKey::ListGroups => {
                let mut r = ListGroupsRequest::default().with_unknown_tagged_field(TAG, tag());
                if v >= 4 {
                    r = r.with_states_filter(vec![s("Stable"), s("Empty")]);
                }
                if v >= 5 {
                    r = r.with_types_filter(vec![s("classic")]);
                }
                RequestKind::ListGroups(r)
            }
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(
                DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(s("group-1")), GroupId(s("g2"))])
                    .with_unknown_tagged_field(TAG, tag()),
            ),
            ApiKey::OffsetDelete => {
                use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
                // Never flexible: no tagged fields anywhere.
                RequestKind::OffsetDelete(
                    OffsetDeleteRequest::default()
                        .with_group_id(GroupId(s("group-1")))
                        .with_topics(vec![
                            OffsetDeleteRequestTopic::default()
                                .with_name(topic("t"))
                                .with_partitions(vec![
                                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                                    OffsetDeleteRequestPartition::default().with_partition_index(3),
                                ]),
                            OffsetDeleteRequestTopic::default().with_name(topic("u")),
                        ]),
                )
            }
            other => panic!("{other:?} is not in the table"),
        };
        RequestBody::Kafka(kind)
    }

    /// The encoded body of `body` at version `v`.
    fn encode_body(body: &RequestBody, v: i16) -> BytesMut {
        let mut out = BytesMut::new();
        match body {
            RequestBody::Kafka(kind) => kind.encode(&mut out, v).unwrap(),
            RequestBody::LegacyProduce(legacy) => legacy.encode(&mut out, v).unwrap(),
        }
        out
    }

    /// A whole frame (without length prefix): header of the right version, then `body`.
    fn frame(key: ApiKey, v: i16, correlation_id: i32, body: &[u8]) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(s("rivulet-test")));
        let mut out = BytesMut::new();
        header
            .encode(&mut out, key.request_header_version(v))
            .unwrap();
        out.put_slice(body);
        out.freeze()
    }

    /// Every (key, version) of the table.
    fn all_versions() -> impl Iterator<Item = (ApiKey, i16)> {
        SUPPORTED_APIS
            .iter()
            .flat_map(|r| (r.min..=r.max).map(move |v| (r.key, v)))
    }

    #[test]
    fn every_supported_version_round_trips() {
        for (key, v) in all_versions() {
            let body = sample(key, v);
            let encoded = encode_body(&body, v);
            let frame = frame(key, v, 42, &encoded);
            let request =
                decode_request(frame.clone()).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
            assert_eq!(request.api_key, key);
            assert_eq!(request.api_version, v);
            assert_eq!(request.correlation_id(), 42);
            assert_eq!(request.header.client_id.as_deref(), Some("rivulet-test"));
            // Fields a version lacks decode to defaults, so compare re-encoded bytes.
            assert_eq!(
                encode_body(&request.body, v),
                encoded,
                "{key:?} v{v} re-encodes differently"
            );
        }
    }

    #[test]
    fn default_requests_at_min_and_max_round_trip() {
        for r in SUPPORTED_APIS {
            for v in [r.min, r.max] {
                let body = match sample(r.key, v) {
                    RequestBody::LegacyProduce(_) => {
                        RequestBody::LegacyProduce(LegacyProduceRequest::default())
                    }
                    RequestBody::Kafka(kind) => RequestBody::Kafka(default_like(&kind)),
                };
                let encoded = encode_body(&body, v);
                let request = decode_request(frame(r.key, v, 1, &encoded))
                    .unwrap_or_else(|e| panic!("{:?} v{v}: {e}", r.key));
                assert_eq!(request.body, body, "{:?} v{v}", r.key);
            }
        }
    }

    fn default_like(kind: &RequestKind) -> RequestKind {
        match kind {
            RequestKind::Produce(_) => RequestKind::Produce(Default::default()),
            RequestKind::Fetch(_) => RequestKind::Fetch(Default::default()),
            RequestKind::ListOffsets(_) => RequestKind::ListOffsets(Default::default()),
            RequestKind::Metadata(_) => RequestKind::Metadata(Default::default()),
            RequestKind::ApiVersions(_) => RequestKind::ApiVersions(Default::default()),
            RequestKind::CreateTopics(_) => RequestKind::CreateTopics(Default::default()),
            RequestKind::DeleteTopics(_) => RequestKind::DeleteTopics(Default::default()),
            RequestKind::InitProducerId(_) => RequestKind::InitProducerId(Default::default()),
            RequestKind::DescribeConfigs(_) => RequestKind::DescribeConfigs(Default::default()),
            RequestKind::AlterConfigs(_) => RequestKind::AlterConfigs(Default::default()),
            RequestKind::CreatePartitions(_) => RequestKind::CreatePartitions(Default::default()),
            RequestKind::IncrementalAlterConfigs(_) => {
                RequestKind::IncrementalAlterConfigs(Default::default())
            }
            RequestKind::DescribeCluster(_) => RequestKind::DescribeCluster(Default::default()),
            RequestKind::DescribeQuorum(_) => RequestKind::DescribeQuorum(Default::default()),
            RequestKind::OffsetForLeaderEpoch(_) => {
                RequestKind::OffsetForLeaderEpoch(Default::default())
            }
            RequestKind::ElectLeaders(_) => RequestKind::ElectLeaders(Default::default()),
            RequestKind::AlterPartitionReassignments(_) => {
                RequestKind::AlterPartitionReassignments(Default::default())
            }
            RequestKind::ListPartitionReassignments(_) => {
                RequestKind::ListPartitionReassignments(Default::default())
            }
            RequestKind::OffsetCommit(_) => RequestKind::OffsetCommit(Default::default()),
            RequestKind::OffsetFetch(_) => RequestKind::OffsetFetch(Default::default()),
            RequestKind::FindCoordinator(_) => RequestKind::FindCoordinator(Default::default()),
            RequestKind::JoinGroup(_) => RequestKind::JoinGroup(Default::default()),
            RequestKind::Heartbeat(_) => RequestKind::Heartbeat(Default::default()),
            RequestKind::LeaveGroup(_) => RequestKind::LeaveGroup(Default::default()),
            RequestKind::SyncGroup(_) => RequestKind::SyncGroup(Default::default()),
            RequestKind::DescribeGroups(_) => RequestKind::DescribeGroups(Default::default()),
            RequestKind::ListGroups(_) => RequestKind::ListGroups(Default::default()),
            RequestKind::DeleteGroups(_) => RequestKind::DeleteGroups(Default::default()),
            RequestKind::OffsetDelete(_) => RequestKind::OffsetDelete(Default::default()),
            other => panic!("no default for {other:?}"),
        }
    }

    #[test]
    fn length_walk_consumes_exactly_the_body() {
        for (key, v) in all_versions() {
            if key == ApiKey::Produce && v < 3 {
                continue;
            }
            let encoded = encode_body(&sample(key, v), v).freeze();
            assert_eq!(
                schema::check_body(key, v, &encoded),
                Ok(encoded.len()),
                "{key:?} v{v}"
            );
        }
    }

    #[test]
    fn records_are_slices_of_the_frame() {
        let encoded = encode_body(&sample(ApiKey::Produce, 9), 9);
        let frame = frame(ApiKey::Produce, 9, 1, &encoded);
        let request = decode_request(frame.clone()).unwrap();
        let RequestBody::Kafka(RequestKind::Produce(p)) = request.body else {
            panic!("not a produce request");
        };
        let records = p.topic_data[0].partition_data[0].records.as_ref().unwrap();
        let range = frame.as_ptr_range();
        assert!(range.contains(&records.as_ptr()), "records were copied");
    }

    #[test]
    fn every_truncation_is_malformed() {
        for (key, v) in all_versions() {
            let encoded = encode_body(&sample(key, v), v);
            let frame = frame(key, v, 5, &encoded);
            for cut in 0..frame.len() {
                match decode_request(frame.slice(..cut)) {
                    Err(DecodeError::Malformed { correlation_id, .. }) => {
                        let expected = (cut >= HEADER_PREFIX_BYTES).then_some(5);
                        assert_eq!(correlation_id, expected, "{key:?} v{v} cut {cut}");
                    }
                    other => panic!("{key:?} v{v} cut at {cut}/{}: {other:?}", frame.len()),
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_ignored_like_kafka() {
        let encoded = encode_body(&sample(ApiKey::Metadata, 12), 12);
        let mut with_tail = frame(ApiKey::Metadata, 12, 3, &encoded).to_vec();
        with_tail.extend_from_slice(b"garbage");
        let request = decode_request(Bytes::from(with_tail)).unwrap();
        assert_eq!(request.body, sample(ApiKey::Metadata, 12));
    }

    #[test]
    fn unknown_key_and_unsupported_versions() {
        let f = |key: i16, v: i16| {
            let mut b = BytesMut::new();
            b.put_i16(key);
            b.put_i16(v);
            b.put_i32(99);
            b.put_slice(&[0, 0]);
            decode_request(b.freeze())
        };
        assert_eq!(
            f(1000, 0),
            Err(DecodeError::UnknownApiKey {
                api_key: 1000,
                api_version: 0,
                correlation_id: 99
            })
        );
        assert_eq!(
            f(-1, 0).unwrap_err().correlation_id(),
            Some(99),
            "negative keys are unknown too"
        );
        let too_new = f(ApiKey::ApiVersions as i16, 5).unwrap_err();
        assert_eq!(
            too_new,
            DecodeError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                api_version: 5,
                correlation_id: 99
            }
        );
        assert_eq!(too_new.api_versions_fallback(), Some(99));
        let fetch_v3 = f(ApiKey::Fetch as i16, 3).unwrap_err();
        assert!(matches!(fetch_v3, DecodeError::UnsupportedVersion { .. }));
        assert_eq!(fetch_v3.api_versions_fallback(), None);
        // A key kafka-protocol knows but the broker does not implement.
        assert!(matches!(
            f(ApiKey::DescribeAcls as i16, 1),
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::DescribeAcls,
                ..
            })
        ));
        // A version kafka-protocol's ApiKey table lists but the broker does not implement.
        assert!(matches!(
            f(ApiKey::OffsetCommit as i16, 10),
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::OffsetCommit,
                ..
            })
        ));
    }

    #[test]
    fn short_frames() {
        for len in 0..HEADER_PREFIX_BYTES {
            assert!(matches!(
                decode_request(Bytes::from(vec![0; len])),
                Err(DecodeError::Malformed {
                    correlation_id: None,
                    ..
                })
            ));
        }
    }

    #[test]
    fn legacy_produce_goes_through_the_hand_decoder() {
        let body = sample(ApiKey::Produce, 0);
        let encoded = encode_body(&body, 0);
        for v in 0..=2 {
            let request = decode_request(frame(ApiKey::Produce, v, 8, &encoded)).unwrap();
            assert_eq!(request.body, body);
            assert_eq!(request.header.request_api_version, v);
        }
    }

    #[test]
    fn bad_utf8_client_id_is_malformed() {
        let mut b = BytesMut::new();
        b.put_i16(ApiKey::ApiVersions as i16);
        b.put_i16(1);
        b.put_i32(4);
        b.put_i16(1);
        b.put_u8(0xff);
        assert!(matches!(
            decode_request(b.freeze()),
            Err(DecodeError::Malformed {
                correlation_id: Some(4),
                ..
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(Bytes::from(bytes));
        }

        #[test]
        fn arbitrary_bodies_behind_a_valid_header_never_panic(
            which in 0usize..1000,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let pairs: Vec<_> = all_versions().collect();
            let (key, v) = pairs[which % pairs.len()];
            let _ = decode_request(frame(key, v, 1, &body));
        }

        #[test]
        fn mutated_requests_never_panic(
            which in 0usize..1000,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let pairs: Vec<_> = all_versions().collect();
            let (key, v) = pairs[which % pairs.len()];
            let mut bytes = frame(key, v, 1, &encode_body(&sample(key, v), v)).to_vec();
            for (at, value) in edits {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            let _ = decode_request(Bytes::from(bytes));
        }
    }
}
