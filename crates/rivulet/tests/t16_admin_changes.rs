//! Changing existing topics against a real `rivulet server`: CreatePartitions and AlterConfigs
//! through librdkafka's `AdminClient`, IncrementalAlterConfigs (which rust-rdkafka does not
//! expose) and the request-level errors of all three on the wire. Changes must show in Metadata
//! and DescribeConfigs, reach the partition logs at once (a smaller `max.message.bytes` refuses
//! the next batch) and survive a restart.

mod support;

use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, OwnedResourceSpecifier, ResourceSpecifier,
};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

use rivulet_protocol::kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as LegacyAlterConfigsResource, AlterableConfig as LegacyAlterableConfig,
};
use rivulet_protocol::kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use rivulet_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use rivulet_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::records::Compression;
use rivulet_protocol::kafka_protocol::ResponseError;

use support::{
    admin, admin_options, assign, block_on, consume_n, consumer, create_topic, encode_batch,
    now_ms, produce_all, producer, raw_produce, RawClient, TestBroker, TestMessage, OP_TIMEOUT,
};

const TOPIC: &str = "growing";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Grows (or tries to grow) topics in one CreatePartitions request; each outcome is
/// `Ok(name)` or the error code.
fn grow(
    broker: &TestBroker,
    topics: &[(&str, usize)],
    validate_only: bool,
) -> Vec<Result<String, RDKafkaErrorCode>> {
    let partitions: Vec<NewPartitions<'_>> = topics
        .iter()
        .map(|(name, count)| NewPartitions::new(name, *count))
        .collect();
    block_on(
        "CreatePartitions",
        OP_TIMEOUT,
        admin(broker).create_partitions(&partitions, &admin_options().validate_only(validate_only)),
    )
    .expect("CreatePartitions request")
    .into_iter()
    .map(|r| r.map_err(|(_, code)| code))
    .collect()
}

/// The partition ids of `topic` in Metadata, sorted, with their leaders.
fn partitions(broker: &TestBroker, topic: &str) -> Vec<(i32, i32)> {
    let metadata = consumer(broker, &[])
        .fetch_metadata(Some(topic), OP_TIMEOUT)
        .expect("metadata");
    let t = &metadata.topics()[0];
    assert!(t.error().is_none(), "{topic}: {:?}", t.error());
    let mut ids: Vec<(i32, i32)> = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader()))
        .collect();
    ids.sort();
    ids
}

/// AlterConfigs on one topic through librdkafka (all its overrides replaced by `configs`).
/// rust-rdkafka 0.39 reports every resource of an AlterConfigs answer as a success (it never
/// reads the per-resource error), so refusals are checked on the wire ([`raw_alter`]).
fn alter(broker: &TestBroker, topic: &str, configs: &[(&str, &str)], validate_only: bool) {
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in configs {
        change = change.set(k, v);
    }
    let results = block_on(
        "AlterConfigs",
        OP_TIMEOUT,
        admin(broker).alter_configs(&[change], &admin_options().validate_only(validate_only)),
    )
    .expect("AlterConfigs request");
    assert_eq!(
        results,
        [Ok(OwnedResourceSpecifier::Topic(topic.to_owned()))]
    );
}

/// Config keys and (nullable) values of one resource.
type Configs<'a> = &'a [(&'a str, Option<&'a str>)];

/// One AlterConfigs v2 request of `(resource type, name, configs)`; returns each resource's
/// `(error code, message)`.
fn raw_alter(
    client: &mut RawClient,
    resources: &[(i8, &str, Configs<'_>)],
) -> Vec<(i16, Option<String>)> {
    let request = AlterConfigsRequest::default().with_resources(
        resources
            .iter()
            .map(|(resource_type, name, configs)| {
                LegacyAlterConfigsResource::default()
                    .with_resource_type(*resource_type)
                    .with_resource_name(text(name))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                LegacyAlterableConfig::default()
                                    .with_name(text(k))
                                    .with_value(v.map(text))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let response: AlterConfigsResponse = client.call(ApiKey::AlterConfigs, 2, &request);
    response
        .responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

/// The value and source of config `key` of `topic` (DescribeConfigs through librdkafka).
fn described(broker: &TestBroker, topic: &str, key: &str) -> (Option<String>, ConfigSource) {
    let mut results = block_on(
        "DescribeConfigs",
        OP_TIMEOUT,
        admin(broker).describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .expect("DescribeConfigs request");
    assert_eq!(results.len(), 1);
    let resource = results.remove(0).expect("topic configs");
    let names: Vec<String> = resource.entries.iter().map(|e| e.name.clone()).collect();
    let entry = resource
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .unwrap_or_else(|| panic!("no {key} in {names:?}"));
    (entry.value, entry.source)
}

fn message(partition: i32, value: &str) -> TestMessage {
    TestMessage {
        partition,
        key: b"k".to_vec(),
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
        timestamp: now_ms(),
    }
}

/// One IncrementalAlterConfigs v1 request; returns each resource's `(error code, message)`.
fn incremental(
    client: &mut RawClient,
    resources: Vec<AlterConfigsResource>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    response
        .responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

fn resource(
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_configs(
            ops.iter()
                .map(|(key, op, value)| {
                    AlterableConfig::default()
                        .with_name(text(key))
                        .with_config_operation(*op)
                        .with_value(value.map(text))
                })
                .collect(),
        )
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;

#[test]
fn create_partitions_grows_topics_and_refuses_shrinking() {
    let mut broker = TestBroker::start();
    create_topic(&broker, TOPIC, 2, &[]);
    assert_eq!(partitions(&broker, TOPIC), [(0, 1), (1, 1)]);

    // validate_only answers but adds nothing.
    assert_eq!(grow(&broker, &[(TOPIC, 7)], true), [Ok(TOPIC.to_owned())]);
    assert_eq!(partitions(&broker, TOPIC).len(), 2);

    assert_eq!(grow(&broker, &[(TOPIC, 5)], false), [Ok(TOPIC.to_owned())]);
    assert_eq!(
        partitions(&broker, TOPIC),
        [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)],
        "five partitions, all led by this node"
    );

    // The new partitions take records at once, and give them back.
    let (p, recorder) = producer(&broker, &[]);
    let sent = [
        message(4, "to a new partition"),
        message(0, "to an old one"),
    ];
    let placed = produce_all(&p, &recorder, TOPIC, &sent, OP_TIMEOUT);
    assert_eq!(placed, [(4, 0), (0, 0)]);
    let c = consumer(&broker, &[]);
    assign(&c, TOPIC, [4], Offset::Beginning);
    let got = consume_n(&c, 1, OP_TIMEOUT);
    assert_eq!(got[0].payload(), Some(&b"to a new partition"[..]));

    // Shrinking, staying the same and unknown topics are each that topic's error.
    assert_eq!(
        grow(&broker, &[(TOPIC, 3), ("no-such-topic", 2)], false),
        [
            Err(RDKafkaErrorCode::InvalidPartitions),
            Err(RDKafkaErrorCode::UnknownTopicOrPartition)
        ]
    );
    assert_eq!(
        grow(&broker, &[(TOPIC, 5)], false),
        [Err(RDKafkaErrorCode::InvalidPartitions)]
    );
    assert_eq!(partitions(&broker, TOPIC).len(), 5);

    // On the wire: a topic named twice is refused (both entries), the other one still grows.
    create_topic(&broker, "other", 1, &[]);
    let mut raw = RawClient::connect(broker.addr());
    let topic = |name: &str, count: i32| {
        CreatePartitionsTopic::default()
            .with_name(TopicName(text(name)))
            .with_count(count)
            .with_assignments(None)
    };
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![topic(TOPIC, 6), topic("other", 3), topic(TOPIC, 7)]);
    let response: CreatePartitionsResponse = raw.call(ApiKey::CreatePartitions, 3, &request);
    let results: Vec<(String, i16, Option<String>)> = response
        .results
        .iter()
        .map(|r| {
            (
                r.name.0.to_string(),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    let duplicate = (
        TOPIC.to_owned(),
        ResponseError::InvalidRequest.code(),
        Some("Duplicate topic name.".to_owned()),
    );
    assert_eq!(
        results,
        [duplicate.clone(), ("other".to_owned(), 0, None), duplicate]
    );
    assert_eq!(partitions(&broker, "other").len(), 3);

    // A request may add at most 10 000 partitions in all (Kafka's bound on one operation).
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![topic("other", i32::MAX)]);
    let response: CreatePartitionsResponse = raw.call(ApiKey::CreatePartitions, 3, &request);
    assert_eq!(
        (
            response.results[0].error_code,
            response.results[0].error_message.as_deref()
        ),
        (
            ResponseError::PolicyViolation.code(),
            Some("Excessively large number of partitions per request.")
        )
    );

    // A manual assignment must name live brokers.
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![topic("other", 4).with_assignments(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(7)]),
        ]))]);
    let response: CreatePartitionsResponse = raw.call(ApiKey::CreatePartitions, 3, &request);
    assert_eq!(
        response.results[0].error_code,
        ResponseError::InvalidReplicaAssignment.code(),
        "{:?}",
        response.results[0].error_message
    );

    // The partitions survive a restart.
    broker.terminate_cleanly();
    broker.restart();
    assert_eq!(partitions(&broker, TOPIC).len(), 5);
    assert_eq!(partitions(&broker, "other").len(), 3);
}

#[test]
fn alter_configs_change_topic_overrides() {
    let mut broker = TestBroker::start();
    create_topic(&broker, TOPIC, 1, &[("segment.bytes", "1048576")]);
    assert_eq!(
        described(&broker, TOPIC, "retention.ms"),
        (Some("604800000".into()), ConfigSource::Default)
    );

    // validate_only checks but changes nothing.
    alter(&broker, TOPIC, &[("retention.ms", "1000")], true);
    assert_eq!(
        described(&broker, TOPIC, "retention.ms").1,
        ConfigSource::Default
    );

    alter(&broker, TOPIC, &[("retention.ms", "7200000")], false);
    assert_eq!(
        described(&broker, TOPIC, "retention.ms"),
        (Some("7200000".into()), ConfigSource::DynamicTopic)
    );
    // AlterConfigs replaces every override: the segment.bytes set at creation is gone.
    assert_eq!(
        described(&broker, TOPIC, "segment.bytes"),
        (Some("1073741824".into()), ConfigSource::Default)
    );

    // Invalid values and unknown keys are refused, and nothing changes.
    let mut raw = RawClient::connect(broker.addr());
    let invalid_config = ResponseError::InvalidConfig.code();
    let invalid_request = ResponseError::InvalidRequest.code();
    for (bad, why) in [
        (
            ("retention.ms", "abc"),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG",
        ),
        (
            ("segment.bytes", "1"),
            "Invalid value 1 for configuration segment.bytes: Value must be at least 1048576",
        ),
        (
            ("cleanup.policy", "shred"),
            "Invalid value shred for configuration cleanup.policy: String must be one of: \
             compact, delete",
        ),
        (
            ("no.such.config", "1"),
            "Unknown topic config name: no.such.config",
        ),
    ] {
        let configs: Configs<'_> = &[("flush.ms", Some("1000")), (bad.0, Some(bad.1))];
        assert_eq!(
            raw_alter(&mut raw, &[(TOPIC_RESOURCE, TOPIC, configs)]),
            [(invalid_config, Some(why.to_owned()))],
            "{bad:?}"
        );
    }
    let outcome = raw_alter(
        &mut raw,
        &[
            (
                TOPIC_RESOURCE,
                "no-such-topic",
                &[("retention.ms", Some("1"))],
            ),
            (TOPIC_RESOURCE, "nulls", &[("retention.ms", None)]),
            (
                TOPIC_RESOURCE,
                "dups",
                &[("retention.ms", Some("1")), ("retention.ms", Some("2"))],
            ),
            (BROKER_RESOURCE, "1", &[("log.retention.ms", Some("1"))]),
            (8, "1", &[("root", Some("DEBUG"))]),
        ],
    );
    assert_eq!(
        outcome,
        [
            (
                ResponseError::UnknownTopicOrPartition.code(),
                Some("The topic 'no-such-topic' does not exist.".to_owned())
            ),
            (
                invalid_request,
                Some("Null value not supported for : retention.ms".to_owned())
            ),
            (
                invalid_request,
                Some("Error due to duplicate config keys".to_owned())
            ),
            (
                invalid_request,
                Some("Dynamic broker configs are not supported yet".to_owned())
            ),
            (
                invalid_request,
                Some("Changing broker log levels is not supported yet".to_owned())
            ),
        ]
    );
    assert_eq!(
        described(&broker, TOPIC, "retention.ms"),
        (Some("7200000".into()), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        described(&broker, TOPIC, "flush.ms").1,
        ConfigSource::Default,
        "a valid key next to an invalid one is not applied either"
    );

    // The override survives a restart.
    broker.terminate_cleanly();
    broker.restart();
    assert_eq!(
        described(&broker, TOPIC, "retention.ms"),
        (Some("7200000".into()), ConfigSource::DynamicTopic)
    );
}

#[test]
fn incremental_alter_configs_changes_only_the_named_keys() {
    let broker = TestBroker::start();
    create_topic(&broker, TOPIC, 1, &[("retention.ms", "3600000")]);
    let mut raw = RawClient::connect(broker.addr());

    // SET and APPEND in one resource; retention.ms is not named and stays.
    let outcome = incremental(
        &mut raw,
        vec![resource(
            TOPIC_RESOURCE,
            TOPIC,
            &[
                ("cleanup.policy", APPEND, Some("compact")),
                ("segment.ms", SET, Some("86400000")),
            ],
        )],
        false,
    );
    assert_eq!(outcome, [(0, None)]);
    assert_eq!(
        described(&broker, TOPIC, "cleanup.policy"),
        (Some("delete,compact".into()), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        described(&broker, TOPIC, "segment.ms").0.as_deref(),
        Some("86400000")
    );
    assert_eq!(
        described(&broker, TOPIC, "retention.ms"),
        (Some("3600000".into()), ConfigSource::DynamicTopic)
    );

    // SUBTRACT and DELETE.
    let outcome = incremental(
        &mut raw,
        vec![resource(
            TOPIC_RESOURCE,
            TOPIC,
            &[
                ("cleanup.policy", SUBTRACT, Some("delete")),
                ("retention.ms", DELETE, None),
            ],
        )],
        false,
    );
    assert_eq!(outcome, [(0, None)]);
    assert_eq!(
        described(&broker, TOPIC, "cleanup.policy").0.as_deref(),
        Some("compact")
    );
    assert_eq!(
        described(&broker, TOPIC, "retention.ms"),
        (Some("604800000".into()), ConfigSource::Default)
    );

    // The new settings reach the partition log at once: a smaller max.message.bytes refuses
    // the next batch, and deleting the override accepts it again.
    let big = encode_batch(&[message(0, &"x".repeat(4000))], Compression::None, None);
    let set_max = |raw: &mut RawClient, op: i8, value: Option<&str>| {
        incremental(
            raw,
            vec![resource(
                TOPIC_RESOURCE,
                TOPIC,
                &[("max.message.bytes", op, value)],
            )],
            false,
        )
    };
    assert_eq!(set_max(&mut raw, SET, Some("1000")), [(0, None)]);
    assert_eq!(
        raw_produce(&mut raw, TOPIC, 0, big.clone()).0,
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(set_max(&mut raw, DELETE, None), [(0, None)]);
    assert_eq!(raw_produce(&mut raw, TOPIC, 0, big), (0, 0));

    // Errors, each for its own resource.
    let invalid_request = ResponseError::InvalidRequest.code();
    let invalid_config = ResponseError::InvalidConfig.code();
    let outcome = incremental(
        &mut raw,
        vec![
            resource(
                TOPIC_RESOURCE,
                TOPIC,
                &[("retention.ms", APPEND, Some("1"))],
            ),
            resource(TOPIC_RESOURCE, TOPIC, &[("retention.ms", 9, Some("1"))]),
            resource(
                TOPIC_RESOURCE,
                "other",
                &[("retention.ms", SET, Some("abc"))],
            ),
            resource(
                TOPIC_RESOURCE,
                "no-such-topic",
                &[("retention.ms", SET, Some("1"))],
            ),
            resource(TOPIC_RESOURCE, "nulls", &[("segment.ms", SET, None)]),
            resource(
                BROKER_RESOURCE,
                "1",
                &[("log.retention.ms", SET, Some("1"))],
            ),
            resource(99, "x", &[]),
        ],
        false,
    );
    let codes: Vec<i16> = outcome.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [
            invalid_request, // the topic appears twice
            invalid_request,
            ResponseError::UnknownTopicOrPartition.code(), // "other" does not exist yet
            ResponseError::UnknownTopicOrPartition.code(),
            invalid_request, // null value
            invalid_request,
            invalid_request,
        ],
        "{outcome:?}"
    );
    assert_eq!(
        outcome[0].1.as_deref(),
        Some("Each resource must appear at most once.")
    );
    assert_eq!(
        outcome[4].1.as_deref(),
        Some("Null value not supported for : segment.ms")
    );
    assert_eq!(
        outcome[5].1.as_deref(),
        Some("Dynamic broker configs are not supported yet")
    );
    assert_eq!(outcome[6].1.as_deref(), Some("Unknown resource type 99"));

    create_topic(&broker, "other", 1, &[]);
    let outcome = incremental(
        &mut raw,
        vec![
            resource(
                TOPIC_RESOURCE,
                TOPIC,
                &[("retention.ms", APPEND, Some("1"))],
            ),
            resource(
                TOPIC_RESOURCE,
                "other",
                &[("retention.ms", SET, Some("abc"))],
            ),
            resource(TOPIC_RESOURCE, "bad-op", &[("segment.ms", 9, Some("1"))]),
        ],
        false,
    );
    assert_eq!(
        outcome,
        [
            (
                invalid_config,
                Some("Can't APPEND to key retention.ms because its type is not LIST.".into())
            ),
            (
                invalid_config,
                Some(
                    "Invalid value abc for configuration retention.ms: Not a number of type LONG"
                        .into()
                )
            ),
            (invalid_request, Some("Unknown operations type 9".into())),
        ]
    );

    // validate_only: checked, not applied.
    let outcome = incremental(
        &mut raw,
        vec![resource(
            TOPIC_RESOURCE,
            "other",
            &[("retention.ms", SET, Some("5000"))],
        )],
        true,
    );
    assert_eq!(outcome, [(0, None)]);
    assert_eq!(
        described(&broker, "other", "retention.ms").1,
        ConfigSource::Default
    );
}
