//! Every advertised version of every API works against the real broker: each request is sent at
//! each version of the ApiVersions table, and its response must decode at that same version with
//! no trailing bytes and no error. Old, non-flexible versions are what librdkafka 2.0 and
//! kafka-python still use.

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
use rivulet_protocol::{LegacyProduceRequest, LegacyProduceResponse};
use rivulet_storage::batch::testing::{build_batch, BatchSpec};
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
    let broker = TestBroker::start();
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
            check(&mut client, api.key, version, topic_id);
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
fn check(client: &mut RawClient, key: ApiKey, version: i16, topic_id: Uuid) {
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
            let r: DescribeClusterResponse =
                client.call(key, version, &DescribeClusterRequest::default());
            assert_eq!(r.error_code, 0, "{ctx}");
            assert_eq!(r.brokers.len(), 1, "{ctx}");
        }
        other => panic!("{other:?} is advertised but this test does not know it: add it here"),
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
