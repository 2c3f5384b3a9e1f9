//! Topic administration through librdkafka's `AdminClient` against a real `rivulet server`:
//! CreateTopics (partitions, per-topic configs, `validate_only`) and its errors, DescribeConfigs
//! of a topic and of the broker, DeleteTopics, and Metadata listing exactly the topics.

mod support;

use rdkafka::admin::{ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;

use rivulet_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::ResponseError;

use support::{
    admin, admin_options, block_on, consumer, topic_names, RawClient, TestBroker, OP_TIMEOUT,
};

/// Creates `topics` in one request and returns each outcome (`Ok(name)` or the error code).
fn create(
    broker: &TestBroker,
    topics: &[NewTopic<'_>],
    validate_only: bool,
) -> Vec<Result<String, RDKafkaErrorCode>> {
    let admin = admin(broker);
    let options = admin_options().validate_only(validate_only);
    block_on(
        "CreateTopics",
        OP_TIMEOUT,
        admin.create_topics(topics, &options),
    )
    .expect("CreateTopics request")
    .into_iter()
    .map(|r| r.map_err(|(_, code)| code))
    .collect()
}

fn topic(name: &str, partitions: i32) -> NewTopic<'_> {
    NewTopic::new(name, partitions, TopicReplication::Fixed(1))
}

#[test]
fn create_describe_delete_and_list_topics() {
    let broker = TestBroker::start();
    assert_eq!(
        topic_names(&broker),
        Vec::<String>::new(),
        "a new broker has no topics"
    );

    // Several partitions and per-topic configs, in one request.
    let created = create(
        &broker,
        &[
            topic("orders", 3)
                .set("retention.ms", "3600000")
                .set("segment.bytes", "1048576")
                .set("cleanup.policy", "delete"),
            topic("compacted", 2).set("cleanup.policy", "compact"),
            topic("plain", 1),
        ],
        false,
    );
    assert_eq!(
        created,
        vec![
            Ok("orders".into()),
            Ok("compacted".into()),
            Ok("plain".into())
        ]
    );

    // validate_only checks and answers but creates nothing.
    let validated = create(
        &broker,
        &[topic("validated", 4).set("retention.ms", "1000")],
        true,
    );
    assert_eq!(validated, vec![Ok("validated".into())]);
    let invalid_validated = create(
        &broker,
        &[topic("validated", 4).set("segment.bytes", "1")],
        true,
    );
    assert_eq!(
        invalid_validated,
        vec![Err(RDKafkaErrorCode::InvalidConfig)]
    );

    // Errors, each for its own topic in one request.
    let too_long = "x".repeat(250);
    let failed = create(
        &broker,
        &[
            topic("orders", 1),
            topic("bad name!", 1),
            topic("..", 1),
            topic(&too_long, 1),
            NewTopic::new("three-replicas", 1, TopicReplication::Fixed(3)),
            topic("small-segments", 1).set("segment.bytes", "1000"),
            topic("bad-retention", 1).set("retention.ms", "soon"),
            topic("bad-policy", 1).set("cleanup.policy", "shred"),
            topic("unknown-config", 1).set("no.such.config", "1"),
        ],
        false,
    );
    assert_eq!(
        failed,
        vec![
            Err(RDKafkaErrorCode::TopicAlreadyExists),
            Err(RDKafkaErrorCode::InvalidTopic),
            Err(RDKafkaErrorCode::InvalidTopic),
            Err(RDKafkaErrorCode::InvalidTopic),
            Err(RDKafkaErrorCode::InvalidReplicationFactor),
            Err(RDKafkaErrorCode::InvalidConfig),
            Err(RDKafkaErrorCode::InvalidConfig),
            Err(RDKafkaErrorCode::InvalidConfig),
            Err(RDKafkaErrorCode::InvalidConfig),
        ]
    );
    assert_eq!(
        topic_names(&broker),
        ["compacted", "orders", "plain"],
        "only the created topics exist"
    );

    // Metadata: partitions led by this node, one replica each, in sync.
    let metadata = consumer(&broker, &[])
        .fetch_metadata(Some("orders"), OP_TIMEOUT)
        .expect("metadata");
    let orders = &metadata.topics()[0];
    assert_eq!(orders.name(), "orders");
    assert!(orders.error().is_none(), "{:?}", orders.error());
    let mut partitions: Vec<_> = orders
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
        .collect();
    partitions.sort();
    assert_eq!(
        partitions,
        vec![
            (0, 1, vec![1], vec![1]),
            (1, 1, vec![1], vec![1]),
            (2, 1, vec![1], vec![1])
        ]
    );

    // DescribeConfigs: overrides are DynamicTopic, the rest Kafka's defaults.
    let admin = admin(&broker);
    let described = block_on(
        "DescribeConfigs",
        OP_TIMEOUT,
        admin.describe_configs(
            &[
                ResourceSpecifier::Topic("orders"),
                ResourceSpecifier::Topic("compacted"),
                ResourceSpecifier::Broker(1),
            ],
            &admin_options(),
        ),
    )
    .expect("DescribeConfigs request");
    let orders = described[0].as_ref().expect("orders configs");
    let entry = |name: &str| {
        orders
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", orders.entries))
    };
    for (name, value) in [
        ("retention.ms", "3600000"),
        ("segment.bytes", "1048576"),
        ("cleanup.policy", "delete"),
    ] {
        let e = entry(name);
        assert_eq!(e.value.as_deref(), Some(value), "{name}");
        assert_eq!(e.source, ConfigSource::DynamicTopic, "{name}");
        assert!(!e.is_default, "{name}");
    }
    for (name, value) in [
        ("max.message.bytes", "1048588"),
        ("retention.bytes", "-1"),
        ("min.insync.replicas", "1"),
    ] {
        let e = entry(name);
        assert_eq!(e.value.as_deref(), Some(value), "{name}");
        assert_eq!(e.source, ConfigSource::Default, "{name}");
        assert!(e.is_default, "{name}");
    }
    let compacted = described[1].as_ref().expect("compacted configs");
    let policy = compacted.get("cleanup.policy").expect("cleanup.policy");
    assert_eq!(
        (policy.value.as_deref(), &policy.source),
        (Some("compact"), &ConfigSource::DynamicTopic)
    );
    let retention = compacted.get("retention.ms").expect("retention.ms");
    assert_eq!(
        (retention.value.as_deref(), &retention.source),
        (Some("604800000"), &ConfigSource::Default)
    );

    let broker_configs = described[2].as_ref().expect("broker configs");
    let node_id = broker_configs.get("node.id").expect("node.id");
    assert_eq!(
        (node_id.value.as_deref(), &node_id.source),
        (Some("1"), &ConfigSource::StaticBroker)
    );
    let log_dirs = broker_configs.get("log.dirs").expect("log.dirs");
    assert_eq!(
        log_dirs.value.as_deref(),
        Some(broker.data_dir().to_str().expect("utf-8 path"))
    );
    assert_eq!(log_dirs.source, ConfigSource::StaticBroker);
    let num_partitions = broker_configs
        .get("num.partitions")
        .expect("num.partitions");
    assert_eq!(
        (num_partitions.value.as_deref(), &num_partitions.source),
        (Some("1"), &ConfigSource::Default)
    );

    // An unknown topic is an error of that resource only. (rust-rdkafka drops per-resource
    // DescribeConfigs errors, reporting an empty resource, so this one is asked on the wire.)
    let mut raw = RawClient::connect(broker.addr());
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("nope")),
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("orders")),
    ]);
    let response: DescribeConfigsResponse = raw.call(ApiKey::DescribeConfigs, 4, &request);
    assert_eq!(
        response.results[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(response.results[1].error_code, 0);
    assert!(!response.results[1].configs.is_empty());

    // DeleteTopics.
    let deleted = block_on(
        "DeleteTopics",
        OP_TIMEOUT,
        admin.delete_topics(&["compacted", "nope"], &admin_options()),
    )
    .expect("DeleteTopics request");
    assert_eq!(deleted[0], Ok("compacted".to_string()));
    assert_eq!(
        deleted[1].as_ref().map_err(|(_, c)| *c),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(topic_names(&broker), ["orders", "plain"]);

    // The topics (and their configs) survive a restart; the deleted one stays deleted.
    let mut broker = broker;
    broker.terminate_cleanly();
    broker.restart();
    assert_eq!(topic_names(&broker), ["orders", "plain"]);
    let admin = support::admin(&broker);
    let described = block_on(
        "DescribeConfigs",
        OP_TIMEOUT,
        admin.describe_configs(&[ResourceSpecifier::Topic("orders")], &admin_options()),
    )
    .expect("DescribeConfigs request");
    let retention = described[0]
        .as_ref()
        .expect("orders")
        .get("retention.ms")
        .expect("retention.ms")
        .value
        .clone();
    assert_eq!(retention.as_deref(), Some("3600000"));
}
