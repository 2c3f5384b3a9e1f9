//! Every advertised version of every API works against the real broker: each request is sent at
//! each version of the ApiVersions table, and its response must decode at that same version with
//! no trailing bytes and no error. Old, non-flexible versions are what librdkafka 2.0 and
//! kafka-python still use.
//!
//! The group APIs run a real flow per version, each on a group of its own (found, joined,
//! synced, committed to, left, deleted), and check what comes back, not only the error codes.

mod support;

use bytes::BytesMut;
use rivulet_protocol::api_versions::SUPPORTED_APIS;
use rivulet_protocol::kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use rivulet_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use rivulet_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rivulet_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use rivulet_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rivulet_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rivulet_protocol::kafka_protocol::messages::incremental_alter_configs_request as incremental;
use rivulet_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rivulet_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rivulet_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rivulet_protocol::kafka_protocol::messages::*;
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_protocol::{LegacyProduceRequest, LegacyProduceResponse};
use rivulet_storage::batch::testing::{build_batch, BatchSpec};
use std::time::{Duration, Instant};

use support::{RawClient, TestBroker};
use uuid::Uuid;

const TOPIC: &str = "versions";

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

#[test]
fn every_advertised_version_of_every_api_round_trips() {
    // A new group's first rebalance waits group.initial.rebalance.delay.ms (3 s by default):
    // 100 ms keeps that delayed path in play without a 3 s wait per group.
    let broker = TestBroker::start_with(&[("group.initial.rebalance.delay.ms", "100")]);
    let mut client = RawClient::connect(broker.addr());
    let created: CreateTopicsResponse = client.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = created.topics[0].topic_id;
    let mut checked = 0;
    for api in SUPPORTED_APIS {
        for version in api.min..=api.max {
            check(
                &mut client,
                api.key,
                version,
                topic_id,
                broker.addr().port(),
                broker.controller_port(),
            );
            checked += 1;
        }
    }
    println!("{checked} API versions checked");
    assert!(
        checked >= 60,
        "the table should cover the issue's {checked} versions"
    );
}

/// Sends one request of `key` at `version` and checks its response.
fn check(
    client: &mut RawClient,
    key: ApiKey,
    version: i16,
    topic_id: Uuid,
    port: u16,
    controller_port: u16,
) {
    let ctx = format!("{key:?} v{version}");
    match key {
        ApiKey::ApiVersions => {
            let r: ApiVersionsResponse = client.call(key, version, &ApiVersionsRequest::default());
            assert_eq!(r.error_code, 0, "{ctx}");
            assert!(!r.api_keys.is_empty(), "{ctx}");
        }
        ApiKey::Metadata => {
            let topics = if version == 0 {
                Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
                ])
            } else {
                None
            };
            let r: MetadataResponse = client.call(
                key,
                version,
                &MetadataRequest::default().with_topics(topics),
            );
            assert_eq!(r.brokers.len(), 1, "{ctx}");
            let t = r
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == TOPIC));
            assert_eq!(t.map(|t| t.error_code), Some(0), "{ctx}: {:?}", r.topics);
        }
        ApiKey::Produce if version <= 2 => {
            let request = LegacyProduceRequest::decode(&mut legacy_produce_body(), version)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let correlation_id = client.next_correlation_id();
            let mut frame = BytesMut::new();
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id);
            use rivulet_protocol::kafka_protocol::protocol::Encodable;
            header
                .encode(&mut frame, 1)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            request
                .encode(&mut frame, version)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
            sized.extend_from_slice(&frame);
            client
                .send_raw(&sized)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let response = client.read_frame();
            let mut body = bytes::Bytes::copy_from_slice(&response[4..]);
            assert_eq!(
                i32::from_be_bytes(response[..4].try_into().unwrap_or_default()),
                correlation_id
            );
            let r = LegacyProduceResponse::decode(&mut body, version)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            // Only magic-2 batches are stored: the old formats these versions carry are refused.
            assert_eq!(
                r.topics[0].partitions[0].error_code, 43,
                "{ctx}: UNSUPPORTED_FOR_MESSAGE_FORMAT"
            );
        }
        ApiKey::Produce => {
            let batch = build_batch(&BatchSpec::default(), &[b"version check"]);
            let request = ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(TOPIC))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.into()))])]);
            let r: ProduceResponse = client.call(key, version, &request);
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "{ctx}");
            assert!(p.base_offset >= 0, "{ctx}");
        }
        ApiKey::Fetch => {
            let topic = if version >= 13 {
                FetchTopic::default().with_topic_id(topic_id)
            } else {
                FetchTopic::default().with_topic(name(TOPIC))
            };
            let request = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![topic.with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
            let r: FetchResponse = client.call(key, version, &request);
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "{ctx}");
            assert!(
                p.records.as_ref().is_some_and(|b| !b.is_empty()),
                "{ctx}: records"
            );
        }
        ApiKey::ListOffsets => {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)])]);
            let r: ListOffsetsResponse = client.call(key, version, &request);
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "{ctx}");
            assert!(p.offset > 0, "{ctx}: latest offset after the produces");
        }
        ApiKey::CreateTopics => {
            let topic = format!("created-v{version}");
            let r: CreateTopicsResponse = client.call(
                key,
                version,
                &CreateTopicsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(name(&topic))
                        .with_num_partitions(2)
                        .with_replication_factor(1)]),
            );
            assert_eq!(
                r.topics[0].error_code, 0,
                "{ctx}: {:?}",
                r.topics[0].error_message
            );
        }
        ApiKey::DeleteTopics => {
            let topic = format!("created-v{}", version.clamp(2, 7));
            let request = if version >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![
                    DeleteTopicState::default().with_name(Some(name(&topic)))
                ])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
            };
            let r: DeleteTopicsResponse = client.call(key, version, &request.with_timeout_ms(5000));
            // Versions 1 and 2 both map to the topic created at v2: the second finds it gone.
            let code = r.responses[0].error_code;
            assert!(
                code == 0 || (version == 2 && code == 3),
                "{ctx}: error {code}"
            );
        }
        ApiKey::InitProducerId => {
            let r: InitProducerIdResponse = client.call(
                key,
                version,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            );
            assert_eq!(r.error_code, 0, "{ctx}");
            assert!(r.producer_id.0 >= 0, "{ctx}");
        }
        ApiKey::DescribeConfigs => {
            let request = DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(text(TOPIC)),
            ]);
            let r: DescribeConfigsResponse = client.call(key, version, &request);
            assert_eq!(r.results[0].error_code, 0, "{ctx}");
            assert!(
                r.results[0]
                    .configs
                    .iter()
                    .any(|c| c.name.as_str() == "retention.ms"),
                "{ctx}"
            );
        }
        ApiKey::AlterConfigs => {
            // Replaces every override of the topic: only this version's value remains.
            let retention = format!("{}", 3_600_000 + i64::from(version));
            let request =
                AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default(
                )
                .with_resource_type(2)
                .with_resource_name(text(TOPIC))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text(&retention)))])]);
            let r: AlterConfigsResponse = client.call(key, version, &request);
            assert_eq!(r.responses.len(), 1, "{ctx}");
            assert_eq!(
                r.responses[0].error_code, 0,
                "{ctx}: {:?}",
                r.responses[0].error_message
            );
            assert_eq!(r.responses[0].resource_name.as_str(), TOPIC, "{ctx}");
            assert_eq!(
                topic_config(client, "retention.ms").as_deref(),
                Some(retention.as_str()),
                "{ctx}"
            );
        }
        ApiKey::CreatePartitions => {
            // The topic starts with one partition: each version adds one.
            let count = i32::from(version) + 2;
            let request = CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(name(TOPIC))
                    .with_count(count)
                    .with_assignments(None)]);
            let r: CreatePartitionsResponse = client.call(key, version, &request);
            assert_eq!(r.results.len(), 1, "{ctx}");
            assert_eq!(
                r.results[0].error_code, 0,
                "{ctx}: {:?}",
                r.results[0].error_message
            );
            let metadata: MetadataResponse = client.call(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default(
                )
                .with_name(Some(name(TOPIC)))])),
            );
            assert_eq!(metadata.topics[0].partitions.len(), count as usize, "{ctx}");
        }
        ApiKey::IncrementalAlterConfigs => {
            // v0 appends compact to cleanup.policy, v1 subtracts it again; both set segment.ms.
            // The retention.ms AlterConfigs set stays: only the named keys change.
            let (op, policy) = if version == 0 {
                (2, "delete,compact")
            } else {
                (3, "delete")
            };
            let segment_ms = format!("{}", 86_400_000 + i64::from(version));
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(text(TOPIC))
                    .with_configs(vec![
                        incremental::AlterableConfig::default()
                            .with_name(text("cleanup.policy"))
                            .with_config_operation(op)
                            .with_value(Some(text("compact"))),
                        incremental::AlterableConfig::default()
                            .with_name(text("segment.ms"))
                            .with_config_operation(0)
                            .with_value(Some(text(&segment_ms))),
                    ]),
            ]);
            let r: IncrementalAlterConfigsResponse = client.call(key, version, &request);
            assert_eq!(r.responses.len(), 1, "{ctx}");
            assert_eq!(
                r.responses[0].error_code, 0,
                "{ctx}: {:?}",
                r.responses[0].error_message
            );
            assert_eq!(
                topic_config(client, "cleanup.policy").as_deref(),
                Some(policy),
                "{ctx}"
            );
            assert_eq!(
                topic_config(client, "segment.ms"),
                Some(segment_ms),
                "{ctx}"
            );
            assert_eq!(
                topic_config(client, "retention.ms").as_deref(),
                Some("3600002"),
                "{ctx}: AlterConfigs v2's value"
            );
        }
        ApiKey::ElectLeaders => {
            // The only broker already leads: a named partition needs no election (v0
            // preferred, v2 unclean); over all partitions (v1) nothing is listed.
            let topics = (version != 1).then(|| {
                vec![elect_leaders_request::TopicPartitions::default()
                    .with_topic(name(TOPIC))
                    .with_partitions(vec![0])]
            });
            let election_type = if version == 2 { 1 } else { 0 };
            let mut request = ElectLeadersRequest::default()
                .with_topic_partitions(topics)
                .with_timeout_ms(5000);
            if version >= 1 {
                request = request.with_election_type(election_type);
            }
            let r: ElectLeadersResponse = client.call(key, version, &request);
            assert_eq!(r.error_code, 0, "{ctx}");
            if version == 1 {
                assert!(r.replica_election_results.is_empty(), "{ctx}: {r:?}");
            } else {
                let p = &r.replica_election_results[0].partition_result[0];
                assert_eq!(
                    (p.partition_id, p.error_code),
                    (0, 84),
                    "{ctx}: ELECTION_NOT_NEEDED"
                );
            }
        }
        ApiKey::AlterPartitionReassignments => {
            use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
            // Onto the replica it has (nothing to move), then a cancellation of nothing.
            let request = AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(Some(vec![BrokerId(1)])),
                        ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(None),
                    ])]);
            let r: AlterPartitionReassignmentsResponse = client.call(key, version, &request);
            assert_eq!(r.error_code, 0, "{ctx}");
            let codes: Vec<i16> = r.responses[0]
                .partitions
                .iter()
                .map(|p| p.error_code)
                .collect();
            assert_eq!(codes, vec![0, 85], "{ctx}: NO_REASSIGNMENT_IN_PROGRESS");
        }
        ApiKey::ListPartitionReassignments => {
            let r: ListPartitionReassignmentsResponse = client.call(
                key,
                version,
                &ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(None),
            );
            assert_eq!(r.error_code, 0, "{ctx}");
            assert!(r.topics.is_empty(), "{ctx}: {:?}", r.topics);
        }
        ApiKey::OffsetForLeaderEpoch => {
            use rivulet_protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
                OffsetForLeaderPartition, OffsetForLeaderTopic,
            };
            let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name(TOPIC))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0)]),
            ]);
            if version >= 3 {
                request = request.with_replica_id(BrokerId(-1));
            }
            let r: OffsetForLeaderEpochResponse = client.call(key, version, &request);
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "{ctx}");
            assert!(p.leader_epoch >= 0 && p.end_offset >= 0, "{ctx}: {p:?}");
        }
        ApiKey::DescribeCluster => {
            let mut request = DescribeClusterRequest::default();
            if version >= 2 {
                request = request.with_include_fenced_brokers(true);
            }
            let r: DescribeClusterResponse = client.call(key, version, &request);
            assert_eq!(r.error_code, 0, "{ctx}");
            assert_eq!(r.controller_id.0, 1, "{ctx}");
            assert_eq!(r.brokers.len(), 1, "{ctx}");
            let b = &r.brokers[0];
            assert_eq!((b.broker_id.0, b.port), (1, i32::from(port)), "{ctx}");
            assert!(!b.is_fenced, "{ctx}");
        }
        ApiKey::DescribeQuorum => describe_quorum(client, version, controller_port),
        ApiKey::OffsetCommit => offset_commit(client, version),
        ApiKey::OffsetFetch => offset_fetch(client, version),
        ApiKey::FindCoordinator => find_coordinator(client, version, port),
        ApiKey::JoinGroup => join_group(client, version),
        ApiKey::SyncGroup => sync_group(client, version),
        ApiKey::Heartbeat => heartbeat(client, version),
        ApiKey::LeaveGroup => leave_group(client, version),
        ApiKey::DescribeGroups => describe_groups(client, version),
        ApiKey::ListGroups => list_groups(client, version),
        ApiKey::DeleteGroups => delete_groups(client, version),
        ApiKey::OffsetDelete => offset_delete(client, version),
        other => panic!("{other:?} is advertised but this test does not know it: add it here"),
    }
}

/// DescribeQuorum on a single node (the only voter, so the Raft leader): it leads at an epoch
/// of at least 1, has applied entries, reports its own progress (timestamps from v1), and from
/// v2 lists its controller listener. Any other partition is UNKNOWN_TOPIC_OR_PARTITION.
fn describe_quorum(client: &mut RawClient, version: i16, controller_port: u16) {
    use describe_quorum_request::{PartitionData, TopicData};
    let ctx = format!("DescribeQuorum v{version}");
    let request = |topic: &str, partition: i32| {
        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(name(topic))
            .with_partitions(vec![
                PartitionData::default().with_partition_index(partition)
            ])])
    };
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r: DescribeQuorumResponse = client.call(
        ApiKey::DescribeQuorum,
        version,
        &request("__cluster_metadata", 0),
    );
    assert_eq!(r.error_code, 0, "{ctx}");
    assert_eq!(r.topics.len(), 1, "{ctx}");
    assert_eq!(r.topics[0].topic_name.0.as_str(), "__cluster_metadata");
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.error_code), (0, 0), "{ctx}");
    assert_eq!(p.leader_id.0, 1, "{ctx}");
    assert!(p.leader_epoch >= 1, "{ctx}: {p:?}");
    assert!(p.high_watermark > 0, "{ctx}: {p:?}");
    assert_eq!(p.current_voters.len(), 1, "{ctx}");
    let me = &p.current_voters[0];
    assert_eq!(me.replica_id.0, 1, "{ctx}");
    assert!(me.log_end_offset >= p.high_watermark, "{ctx}: {me:?}");
    if version >= 1 {
        assert!(me.last_fetch_timestamp >= before_ms, "{ctx}: {me:?}");
        assert!(me.last_caught_up_timestamp >= before_ms, "{ctx}: {me:?}");
    }
    assert!(p.observers.is_empty(), "{ctx}: {:?}", p.observers);
    if version >= 2 {
        assert_eq!(r.nodes.len(), 1, "{ctx}");
        assert_eq!(r.nodes[0].node_id.0, 1, "{ctx}");
        let l = &r.nodes[0].listeners[0];
        assert_eq!(l.name.as_str(), "CONTROLLER", "{ctx}");
        assert_eq!(l.port, controller_port, "{ctx}");
    }
    for (topic, partition) in [("__cluster_metadata", 1), ("versions", 0)] {
        let r: DescribeQuorumResponse =
            client.call(ApiKey::DescribeQuorum, version, &request(topic, partition));
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            p.error_code,
            ResponseError::UnknownTopicOrPartition.code(),
            "{ctx} {topic}-{partition}"
        );
        assert_eq!(p.partition_index, partition, "{ctx}");
        assert!(r.nodes.is_empty(), "{ctx}");
    }
}

/// The effective value of config `key` of the test topic (DescribeConfigs v4).
fn topic_config(client: &mut RawClient, key: &str) -> Option<String> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text(TOPIC))
            .with_configuration_keys(Some(vec![text(key)]))]);
    let r: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    assert_eq!(r.results[0].error_code, 0, "DescribeConfigs {key}");
    r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}

/// A Produce v0-2 body (identical for the three versions): acks 1, one partition holding a
/// few bytes in the old message format.
fn legacy_produce_body() -> bytes::Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&1i16.to_be_bytes()); // acks
    b.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
    b.extend_from_slice(&(TOPIC.len() as i16).to_be_bytes());
    b.extend_from_slice(TOPIC.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // one partition
    b.extend_from_slice(&0i32.to_be_bytes()); // index
    let message_set = [0u8; 26]; // offset, size, crc, magic 0, ...: an old-format message set
    b.extend_from_slice(&(message_set.len() as i32).to_be_bytes());
    b.extend_from_slice(&message_set);
    bytes::Bytes::from(b)
}

// ---------------------------------------------------------------------------------------------
// The group APIs
// ---------------------------------------------------------------------------------------------

/// Session and rebalance timeout of the test's members: no member expires during the test.
const SESSION_MS: i32 = 30_000;
/// The members' (only) assignment protocol.
const PROTOCOL: &str = "range";
/// How long the coordinator of a group may take to be found and loaded.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(30);

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn group(s: &str) -> GroupId {
    GroupId(text(s))
}

/// A consumer-protocol subscription (v0) to `topics`, as a member's JoinGroup metadata; the
/// coordinator reads it for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC.
fn subscription(topics: &[&str]) -> bytes::Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes()); // no user data
    bytes::Bytes::from(b)
}

/// A consumer-protocol assignment (v0) of partitions `0..count` of the test topic, tagged
/// with `tag` as user data so each test's assignment is recognizable.
fn assignment(tag: &str) -> bytes::Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(TOPIC.len() as i16).to_be_bytes());
    b.extend_from_slice(TOPIC.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&(tag.len() as i32).to_be_bytes());
    b.extend_from_slice(tag.as_bytes());
    bytes::Bytes::from(b)
}

/// Waits until `group_id`'s coordinator is found (the first lookup creates
/// `__consumer_offsets`: COORDINATOR_NOT_AVAILABLE until its partitions have leaders) and has
/// loaded the group's partition (COORDINATOR_LOAD_IN_PROGRESS until then), as clients retry.
fn wait_coordinator(client: &mut RawClient, group_id: &str) {
    let deadline = Instant::now() + COORDINATOR_TIMEOUT;
    loop {
        let found: FindCoordinatorResponse = client.call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(text(group_id)),
        );
        let code = if found.error_code != 0 {
            found.error_code
        } else {
            let described: DescribeGroupsResponse = client.call(
                ApiKey::DescribeGroups,
                5,
                &DescribeGroupsRequest::default().with_groups(vec![group(group_id)]),
            );
            described.groups[0].error_code
        };
        if code == 0 {
            return;
        }
        assert!(
            [
                COORDINATOR_LOAD_IN_PROGRESS,
                COORDINATOR_NOT_AVAILABLE,
                NOT_COORDINATOR
            ]
            .contains(&code),
            "looking for the coordinator of {group_id}: error {code}"
        );
        assert!(
            Instant::now() < deadline,
            "the coordinator of {group_id} is not ready after {COORDINATOR_TIMEOUT:?}: error {code}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JoinGroup at `version` with only the fields that version has.
fn join_request(
    version: i16,
    group_id: &str,
    member_id: &str,
    instance: Option<&str>,
) -> JoinGroupRequest {
    let mut request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(SESSION_MS)
        .with_member_id(text(member_id))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(text(PROTOCOL))
        .with_metadata(subscription(&[TOPIC]))]);
    if version >= 1 {
        request = request.with_rebalance_timeout_ms(SESSION_MS);
    }
    if version >= 5 {
        request = request.with_group_instance_id(instance.map(text));
    }
    if version >= 8 {
        request = request.with_reason(Some(text("t25")));
    }
    request
}

/// Joins `group_id` at `version` as a new member: a dynamic member at v4+ is first handed an
/// id with MEMBER_ID_REQUIRED (KIP-394) and joins again with it; a static one (`instance`,
/// v5+) joins at once. Returns the successful response.
fn join(
    client: &mut RawClient,
    version: i16,
    group_id: &str,
    instance: Option<&str>,
) -> JoinGroupResponse {
    let ctx = format!("JoinGroup v{version} of {group_id}");
    let mut r: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        version,
        &join_request(version, group_id, "", instance),
    );
    if version >= 4 && instance.is_none() {
        assert_eq!(
            r.error_code, MEMBER_ID_REQUIRED,
            "{ctx}: MEMBER_ID_REQUIRED"
        );
        assert!(!r.member_id.is_empty(), "{ctx}: the id to join with");
        assert_eq!(r.generation_id, -1, "{ctx}");
        let id = r.member_id.to_string();
        r = client.call(
            ApiKey::JoinGroup,
            version,
            &join_request(version, group_id, &id, instance),
        );
        assert_eq!(r.member_id.as_str(), id, "{ctx}: the id it was given");
    }
    assert_eq!(r.error_code, 0, "{ctx}");
    assert!(!r.member_id.is_empty(), "{ctx}: member id");
    r
}

/// A SyncGroup at `version` of `member_id` in `generation`, handing in `assignments`.
fn sync_request(
    version: i16,
    group_id: &str,
    generation: i32,
    member_id: &str,
    assignments: Vec<(String, bytes::Bytes)>,
) -> SyncGroupRequest {
    let mut request = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(text(member_id))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(text(&m))
                        .with_assignment(a)
                })
                .collect(),
        );
    if version >= 5 {
        request = request
            .with_protocol_type(Some(text("consumer")))
            .with_protocol_name(Some(text(PROTOCOL)));
    }
    request
}

/// A member of a Stable group.
struct StableMember {
    id: String,
    generation: i32,
    assignment: bytes::Bytes,
}

/// Joins `group_id` (JoinGroup v9) as its only member, hence its leader, and syncs (SyncGroup
/// v5) an assignment: the group is Stable.
fn stable_member(client: &mut RawClient, group_id: &str, instance: Option<&str>) -> StableMember {
    wait_coordinator(client, group_id);
    let joined = join(client, 9, group_id, instance);
    let id = joined.member_id.to_string();
    assert_eq!(
        joined.leader.as_str(),
        id,
        "{group_id}: the only member leads"
    );
    let assignment = assignment(group_id);
    let synced: SyncGroupResponse = client.call(
        ApiKey::SyncGroup,
        5,
        &sync_request(
            5,
            group_id,
            joined.generation_id,
            &id,
            vec![(id.clone(), assignment.clone())],
        ),
    );
    assert_eq!(synced.error_code, 0, "SyncGroup of {group_id}");
    assert_eq!(synced.assignment, assignment, "SyncGroup of {group_id}");
    StableMember {
        id,
        generation: joined.generation_id,
        assignment,
    }
}

/// Removes `member_id` (or the static member `instance`) from `group_id` (LeaveGroup v5).
fn leave(client: &mut RawClient, group_id: &str, member_id: &str, instance: Option<&str>) {
    let r: LeaveGroupResponse = client.call(
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(group(group_id))
            .with_members(vec![leave_group_request::MemberIdentity::default()
                .with_member_id(text(member_id))
                .with_group_instance_id(instance.map(text))]),
    );
    assert_eq!(r.error_code, 0, "LeaveGroup of {group_id}");
    let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0], "LeaveGroup of {group_id}");
}

/// `group_id` as DescribeGroups v5 reports it.
fn describe(client: &mut RawClient, group_id: &str) -> describe_groups_response::DescribedGroup {
    let r: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group(group_id)]),
    );
    assert_eq!(r.groups.len(), 1, "DescribeGroups of {group_id}");
    let g = r.groups.into_iter().next().unwrap_or_default();
    assert_eq!(g.error_code, 0, "DescribeGroups of {group_id}");
    g
}

/// An OffsetCommit at `version` of `offset` (with `leader_epoch` where the version carries
/// one) for partition 0 of the test topic.
fn commit_request(
    version: i16,
    group_id: &str,
    generation: i32,
    member_id: &str,
    offset: i64,
    leader_epoch: i32,
) -> OffsetCommitRequest {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let mut partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(text(&format!("{group_id} at {offset}"))));
    if version >= 6 {
        partition = partition.with_committed_leader_epoch(leader_epoch);
    }
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(text(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![partition])])
}

/// `(topic, partition, error)` of each partition of an OffsetCommit response.
fn commit_results(r: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// Commits `offset` (leader epoch 5) for partition 0 (OffsetCommit v9).
fn commit(client: &mut RawClient, group_id: &str, generation: i32, member_id: &str, offset: i64) {
    let r: OffsetCommitResponse = client.call(
        ApiKey::OffsetCommit,
        9,
        &commit_request(9, group_id, generation, member_id, offset, 5),
    );
    assert_eq!(
        commit_results(&r),
        vec![(TOPIC.to_owned(), 0, 0)],
        "OffsetCommit of {group_id}"
    );
}

/// `(offset, leader epoch, metadata)` committed by `group_id` for partition 0 (OffsetFetch
/// v8); offset -1 when none is.
fn committed(client: &mut RawClient, group_id: &str) -> (i64, i32, String) {
    use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    let r: OffsetFetchResponse = client.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group(group_id))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(vec![0])]))]),
    );
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0, "OffsetFetch of {group_id}");
    let p = &g.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "OffsetFetch of {group_id}");
    (
        p.committed_offset,
        p.committed_leader_epoch,
        p.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// Even versions commit outside group management (generation -1, no member id, a group
/// without members); odd ones as the member of a Stable group, under its generation. The
/// offset, its leader epoch (v6+) and metadata are read back.
fn offset_commit(client: &mut RawClient, version: i16) {
    let ctx = format!("OffsetCommit v{version}");
    let group_id = format!("commit-v{version}");
    wait_coordinator(client, &group_id);
    let member = (version % 2 == 1).then(|| stable_member(client, &group_id, None));
    let (generation, member_id) = member
        .as_ref()
        .map_or((-1, String::new()), |m| (m.generation, m.id.clone()));
    let offset = 100 + i64::from(version);
    let r: OffsetCommitResponse = client.call(
        ApiKey::OffsetCommit,
        version,
        &commit_request(version, &group_id, generation, &member_id, offset, 7),
    );
    assert_eq!(commit_results(&r), vec![(TOPIC.to_owned(), 0, 0)], "{ctx}");
    let epoch = if version >= 6 { 7 } else { -1 };
    assert_eq!(
        committed(client, &group_id),
        (offset, epoch, format!("{group_id} at {offset}")),
        "{ctx}: read back"
    );
    if member.is_some() {
        // A stale generation is refused, and nothing changes.
        let r: OffsetCommitResponse = client.call(
            ApiKey::OffsetCommit,
            version,
            &commit_request(version, &group_id, generation + 1, &member_id, 1, 7),
        );
        assert_eq!(
            commit_results(&r),
            vec![(TOPIC.to_owned(), 0, ILLEGAL_GENERATION)],
            "{ctx}: stale generation"
        );
        assert_eq!(committed(client, &group_id).0, offset, "{ctx}");
        leave(client, &group_id, &member_id, None);
    }
}

/// The offset committed (OffsetCommit v9, leader epoch 5) is fetched back at each version:
/// named partitions (v1, odd versions) or all of the group's (topics null, v2+ even); v8+ asks
/// for two groups at once, one of which committed nothing.
fn offset_fetch(client: &mut RawClient, version: i16) {
    use offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    let ctx = format!("OffsetFetch v{version}");
    let group_id = format!("fetch-v{version}");
    let empty_id = format!("fetch-v{version}-nothing");
    wait_coordinator(client, &group_id);
    let offset = 200 + i64::from(version);
    commit(client, &group_id, -1, "", offset);
    let metadata = format!("{group_id} at {offset}");
    let all = version >= 2 && version % 2 == 0;
    if version >= 8 {
        wait_coordinator(client, &empty_id);
        let named = Some(vec![OffsetFetchRequestTopics::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0])]);
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group(&group_id))
                .with_topics(if all { None } else { named.clone() }),
            OffsetFetchRequestGroup::default()
                .with_group_id(group(&empty_id))
                .with_topics(named),
        ]);
        let r: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, version, &request);
        let got: Vec<_> = r
            .groups
            .iter()
            .map(|g| {
                let partitions: Vec<_> = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| {
                            (
                                t.name.0.to_string(),
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_ref().map(|m| m.to_string()),
                                p.error_code,
                            )
                        })
                    })
                    .collect();
                (g.group_id.0.to_string(), g.error_code, partitions)
            })
            .collect();
        let want = vec![
            (
                group_id.clone(),
                0,
                vec![(TOPIC.to_owned(), 0, offset, 5, Some(metadata), 0)],
            ),
            (
                empty_id,
                0,
                vec![(TOPIC.to_owned(), 0, -1, -1, Some(String::new()), 0)],
            ),
        ];
        assert_eq!(got, want, "{ctx}");
        return;
    }
    let topics = (!all).then(|| {
        vec![OffsetFetchRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0])]
    });
    let mut request = OffsetFetchRequest::default()
        .with_group_id(group(&group_id))
        .with_topics(topics);
    if version >= 7 {
        request = request.with_require_stable(true);
    }
    let r: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, version, &request);
    assert_eq!(r.error_code, 0, "{ctx}");
    let got: Vec<_> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_ref().map(|m| m.to_string()),
                    p.error_code,
                )
            })
        })
        .collect();
    // The leader epoch is on the wire from v5.
    let epoch = if version >= 5 { 5 } else { -1 };
    assert_eq!(
        got,
        vec![(TOPIC.to_owned(), 0, offset, epoch, Some(metadata), 0)],
        "{ctx}"
    );
}

/// The first lookup creates `__consumer_offsets`: COORDINATOR_NOT_AVAILABLE until its
/// partitions have leaders, then this (only) broker. v4+ looks up two groups at once.
fn find_coordinator(client: &mut RawClient, version: i16, port: u16) {
    let ctx = format!("FindCoordinator v{version}");
    let keys = if version >= 4 {
        vec![format!("find-v{version}"), format!("find-v{version}-b")]
    } else {
        vec![format!("find-v{version}")]
    };
    let deadline = Instant::now() + COORDINATOR_TIMEOUT;
    loop {
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request = request.with_coordinator_keys(keys.iter().map(|k| text(k)).collect());
        } else {
            request = request.with_key(text(&keys[0]));
        }
        if version >= 1 {
            request = request.with_key_type(0);
        }
        let r: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, version, &request);
        let found: Vec<(String, i16, i32, String, i32)> = if version >= 4 {
            r.coordinators
                .iter()
                .map(|c| {
                    (
                        c.key.to_string(),
                        c.error_code,
                        c.node_id.0,
                        c.host.to_string(),
                        c.port,
                    )
                })
                .collect()
        } else {
            vec![(
                keys[0].clone(),
                r.error_code,
                r.node_id.0,
                r.host.to_string(),
                r.port,
            )]
        };
        if found.iter().all(|c| c.1 == 0) {
            let want: Vec<_> = keys
                .iter()
                .map(|k| (k.clone(), 0, 1, "127.0.0.1".to_owned(), i32::from(port)))
                .collect();
            assert_eq!(found, want, "{ctx}");
            return;
        }
        assert!(
            found
                .iter()
                .all(|c| c.1 == 0 || c.1 == COORDINATOR_NOT_AVAILABLE),
            "{ctx}: {found:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{ctx}: still not available after {COORDINATOR_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new group's only member joins (v4+ after MEMBER_ID_REQUIRED; v5, 7 and 9 as a static
/// member, which needs no second round) and leads generation 1 with its own metadata; then
/// it syncs, leaves, and the group is Empty.
fn join_group(client: &mut RawClient, version: i16) {
    let ctx = format!("JoinGroup v{version}");
    let group_id = format!("join-v{version}");
    let instance_name = format!("instance-v{version}");
    let instance = (version >= 5 && version % 2 == 1).then_some(instance_name.as_str());
    wait_coordinator(client, &group_id);
    let r = join(client, version, &group_id, instance);
    let id = r.member_id.to_string();
    assert_eq!(r.generation_id, 1, "{ctx}");
    assert_eq!(r.leader.as_str(), id, "{ctx}: the only member leads");
    assert_eq!(r.protocol_name.as_deref(), Some(PROTOCOL), "{ctx}");
    let protocol_type = (version >= 7).then_some("consumer");
    assert_eq!(r.protocol_type.as_deref(), protocol_type, "{ctx}");
    assert!(!r.skip_assignment, "{ctx}: a first join assigns");
    let members: Vec<_> = r
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|i| i.to_string()),
                m.metadata.clone(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![(
            id.clone(),
            instance.map(str::to_owned),
            subscription(&[TOPIC])
        )],
        "{ctx}: the leader gets every member's metadata"
    );
    let synced: SyncGroupResponse = client.call(
        ApiKey::SyncGroup,
        3,
        &sync_request(
            3,
            &group_id,
            1,
            &id,
            vec![(id.clone(), assignment(&group_id))],
        )
        .with_group_instance_id(instance.map(text)),
    );
    assert_eq!(synced.error_code, 0, "{ctx}: SyncGroup");
    assert_eq!(describe(client, &group_id).group_state.as_str(), "Stable");
    // The leader joins again (as after a metadata change): it is the only member, so the
    // rebalance completes at once with generation 2, without waiting for its timeout.
    let started = Instant::now();
    let again: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        version,
        &join_request(version, &group_id, &id, instance),
    );
    assert_eq!(
        (again.error_code, again.generation_id, again.leader.as_str()),
        (0, 2, id.as_str()),
        "{ctx}: rejoin"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{ctx}: the rejoin took {:?}",
        started.elapsed()
    );
    leave(client, &group_id, &id, instance);
    let described = describe(client, &group_id);
    assert_eq!(
        described.group_state.as_str(),
        "Empty",
        "{ctx}: after leaving"
    );
    assert!(described.members.is_empty(), "{ctx}");
}

/// The leader (the only member) hands in the assignment and gets its own back; the group is
/// then Stable with that assignment.
fn sync_group(client: &mut RawClient, version: i16) {
    let ctx = format!("SyncGroup v{version}");
    let group_id = format!("sync-v{version}");
    wait_coordinator(client, &group_id);
    let joined = join(client, 9, &group_id, None);
    let id = joined.member_id.to_string();
    let assignment = assignment(&group_id);
    let r: SyncGroupResponse = client.call(
        ApiKey::SyncGroup,
        version,
        &sync_request(
            version,
            &group_id,
            joined.generation_id,
            &id,
            vec![(id.clone(), assignment.clone())],
        ),
    );
    assert_eq!(r.error_code, 0, "{ctx}");
    assert_eq!(r.assignment, assignment, "{ctx}");
    if version >= 5 {
        assert_eq!(r.protocol_type.as_deref(), Some("consumer"), "{ctx}");
        assert_eq!(r.protocol_name.as_deref(), Some(PROTOCOL), "{ctx}");
    }
    let described = describe(client, &group_id);
    assert_eq!(described.group_state.as_str(), "Stable", "{ctx}");
    let assigned: Vec<_> = described
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.clone()))
        .collect();
    assert_eq!(assigned, vec![(id.clone(), assignment)], "{ctx}");
    leave(client, &group_id, &id, None);
}

/// A Stable member's heartbeat is accepted; one from a stale generation or an unknown member
/// is not.
fn heartbeat(client: &mut RawClient, version: i16) {
    let ctx = format!("Heartbeat v{version}");
    let group_id = format!("heartbeat-v{version}");
    let member = stable_member(client, &group_id, None);
    let beat = |client: &mut RawClient, generation: i32, member_id: &str| -> i16 {
        let r: HeartbeatResponse = client.call(
            ApiKey::Heartbeat,
            version,
            &HeartbeatRequest::default()
                .with_group_id(group(&group_id))
                .with_generation_id(generation)
                .with_member_id(text(member_id)),
        );
        r.error_code
    };
    assert_eq!(beat(client, member.generation, &member.id), 0, "{ctx}");
    assert_eq!(
        beat(client, member.generation + 1, &member.id),
        ILLEGAL_GENERATION,
        "{ctx}: stale generation"
    );
    assert_eq!(
        beat(client, member.generation, "no-such-member"),
        UNKNOWN_MEMBER_ID,
        "{ctx}: unknown member"
    );
    assert_eq!(
        describe(client, &group_id).group_state.as_str(),
        "Stable",
        "{ctx}"
    );
    leave(client, &group_id, &member.id, None);
}

/// The only member leaves (v0-2 by member id; v3+ in a batch, next to an unknown member that
/// gets UNKNOWN_MEMBER_ID on its own): the group is Empty.
fn leave_group(client: &mut RawClient, version: i16) {
    use leave_group_request::MemberIdentity;
    let ctx = format!("LeaveGroup v{version}");
    let group_id = format!("leave-v{version}");
    let member = stable_member(client, &group_id, None);
    let request = LeaveGroupRequest::default().with_group_id(group(&group_id));
    let request = if version >= 3 {
        request.with_members(vec![
            MemberIdentity::default().with_member_id(text(&member.id)),
            MemberIdentity::default().with_member_id(text("no-such-member")),
        ])
    } else {
        request.with_member_id(text(&member.id))
    };
    let r: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, version, &request);
    assert_eq!(r.error_code, 0, "{ctx}");
    if version >= 3 {
        let members: Vec<_> = r
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.error_code))
            .collect();
        assert_eq!(
            members,
            vec![
                (member.id.clone(), 0),
                ("no-such-member".to_owned(), UNKNOWN_MEMBER_ID)
            ],
            "{ctx}"
        );
    }
    let described = describe(client, &group_id);
    assert_eq!(described.group_state.as_str(), "Empty", "{ctx}");
    assert!(
        described.members.is_empty(),
        "{ctx}: {:?}",
        described.members
    );
}

/// A Stable group is described with its protocol and its member (id, v4+ instance id,
/// client, metadata, assignment); an unknown group is Dead, without error.
fn describe_groups(client: &mut RawClient, version: i16) {
    let ctx = format!("DescribeGroups v{version}");
    let group_id = format!("describe-v{version}");
    let unknown = format!("describe-v{version}-unknown");
    let instance_name = format!("instance-describe-v{version}");
    let instance = (version >= 4).then_some(instance_name.as_str());
    let member = stable_member(client, &group_id, instance);
    wait_coordinator(client, &unknown);
    let r: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        version,
        &DescribeGroupsRequest::default().with_groups(vec![group(&group_id), group(&unknown)]),
    );
    assert_eq!(r.groups.len(), 2, "{ctx}");
    let g = &r.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_id.0.as_str(),
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        (0, group_id.as_str(), "Stable", "consumer", PROTOCOL),
        "{ctx}"
    );
    if version >= 3 {
        assert_eq!(g.authorized_operations, i32::MIN, "{ctx}: not asked for");
    }
    assert_eq!(g.members.len(), 1, "{ctx}");
    let m = &g.members[0];
    assert_eq!(m.member_id.as_str(), member.id, "{ctx}");
    assert_eq!(m.group_instance_id.as_deref(), instance, "{ctx}");
    assert_eq!(m.client_id.as_str(), "rivulet-raw-test", "{ctx}");
    assert!(
        m.client_host.contains("127.0.0.1"),
        "{ctx}: {}",
        m.client_host
    );
    assert_eq!(m.member_metadata, subscription(&[TOPIC]), "{ctx}");
    assert_eq!(m.member_assignment, member.assignment, "{ctx}");
    let u = &r.groups[1];
    assert_eq!(
        (u.error_code, u.group_id.0.as_str(), u.group_state.as_str()),
        (0, unknown.as_str(), "Dead"),
        "{ctx}"
    );
    assert!(u.members.is_empty(), "{ctx}");
    leave(client, &group_id, &member.id, instance);
}

/// A Stable group is listed with its protocol type (v4+ with its state, filtered by state;
/// v5 with its type, filtered by type).
fn list_groups(client: &mut RawClient, version: i16) {
    let ctx = format!("ListGroups v{version}");
    let group_id = format!("list-v{version}");
    let member = stable_member(client, &group_id, None);
    let list = |client: &mut RawClient, states: &[&str], types: &[&str]| {
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request = request.with_states_filter(states.iter().map(|s| text(s)).collect());
        }
        if version >= 5 {
            request = request.with_types_filter(types.iter().map(|s| text(s)).collect());
        }
        let deadline = Instant::now() + COORDINATOR_TIMEOUT;
        loop {
            let r: ListGroupsResponse = client.call(ApiKey::ListGroups, version, &request);
            if r.error_code == 0 {
                return r.groups;
            }
            // Every partition of __consumer_offsets is listed: one still loading says so.
            assert_eq!(r.error_code, COORDINATOR_LOAD_IN_PROGRESS, "{ctx}");
            assert!(Instant::now() < deadline, "{ctx}: still loading");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let groups = list(client, &["Stable"], &["classic"]);
    let ours: Vec<_> = groups
        .iter()
        .filter(|g| g.group_id.0.as_str() == group_id)
        .map(|g| {
            (
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect();
    let state = if version >= 4 { "Stable" } else { "" };
    let group_type = if version >= 5 { "classic" } else { "" };
    assert_eq!(
        ours,
        vec![(
            "consumer".to_owned(),
            state.to_owned(),
            group_type.to_owned()
        )],
        "{ctx}: {groups:?}"
    );
    if version >= 4 {
        assert!(
            groups.iter().all(|g| g.group_state.as_str() == "Stable"),
            "{ctx}: only Stable groups: {groups:?}"
        );
        let empty = list(client, &["Empty"], &[]);
        assert!(
            !empty.iter().any(|g| g.group_id.0.as_str() == group_id),
            "{ctx}: a Stable group is not Empty: {empty:?}"
        );
    }
    if version >= 5 {
        let consumer = list(client, &[], &["consumer"]);
        assert!(
            consumer.is_empty(),
            "{ctx}: no KIP-848 groups: {consumer:?}"
        );
    }
    leave(client, &group_id, &member.id, None);
}

/// A group whose member committed and left (Empty, with offsets) is deleted with its offsets:
/// then Dead, nothing committed, and a second deletion finds no group.
fn delete_groups(client: &mut RawClient, version: i16) {
    let ctx = format!("DeleteGroups v{version}");
    let group_id = format!("delete-v{version}");
    let member = stable_member(client, &group_id, None);
    commit(client, &group_id, member.generation, &member.id, 42);
    leave(client, &group_id, &member.id, None);
    assert_eq!(committed(client, &group_id).0, 42, "{ctx}");
    let delete = |client: &mut RawClient| -> Vec<(String, i16)> {
        let r: DeleteGroupsResponse = client.call(
            ApiKey::DeleteGroups,
            version,
            &DeleteGroupsRequest::default().with_groups_names(vec![group(&group_id)]),
        );
        r.results
            .iter()
            .map(|g| (g.group_id.0.to_string(), g.error_code))
            .collect()
    };
    assert_eq!(delete(client), vec![(group_id.clone(), 0)], "{ctx}");
    assert_eq!(committed(client, &group_id).0, -1, "{ctx}: offsets deleted");
    assert_eq!(
        describe(client, &group_id).group_state.as_str(),
        "Dead",
        "{ctx}"
    );
    assert_eq!(
        delete(client),
        vec![(group_id.clone(), GROUP_ID_NOT_FOUND)],
        "{ctx}: deleted already"
    );
}

/// A Stable group keeps the offsets of a topic it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC);
/// once Empty, they are deleted.
fn offset_delete(client: &mut RawClient, version: i16) {
    use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    let ctx = format!("OffsetDelete v{version}");
    let group_id = format!("offset-delete-v{version}");
    let member = stable_member(client, &group_id, None);
    commit(client, &group_id, member.generation, &member.id, 77);
    let delete = |client: &mut RawClient| -> (i16, Vec<(String, i32, i16)>) {
        let r: OffsetDeleteResponse = client.call(
            ApiKey::OffsetDelete,
            version,
            &OffsetDeleteRequest::default()
                .with_group_id(group(&group_id))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]),
        );
        let partitions = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect();
        (r.error_code, partitions)
    };
    assert_eq!(
        delete(client),
        (0, vec![(TOPIC.to_owned(), 0, GROUP_SUBSCRIBED_TO_TOPIC)]),
        "{ctx}: subscribed"
    );
    assert_eq!(committed(client, &group_id).0, 77, "{ctx}: kept");
    leave(client, &group_id, &member.id, None);
    assert_eq!(
        delete(client),
        (0, vec![(TOPIC.to_owned(), 0, 0)]),
        "{ctx}: Empty"
    );
    assert_eq!(committed(client, &group_id).0, -1, "{ctx}: deleted");
}
