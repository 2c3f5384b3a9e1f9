//! Tests across the config modules: loading, precedence, listeners, roles, topic configs and
//! DescribeConfigs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use rivulet_storage::batch::TimestampType;
use rivulet_storage::LogConfig;

use super::broker::BROKER_KEYS;
use super::topic_config::TOPIC_KEYS;
use super::*;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::from_properties(&props(pairs), "node1.example")
}

fn ok(pairs: &[(&str, &str)]) -> BrokerConfig {
    match load(pairs) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error for {pairs:?}: {e}"),
    }
}

fn err(pairs: &[(&str, &str)]) -> String {
    match load(pairs) {
        Ok(_) => panic!("expected an error for {pairs:?}"),
        Err(e) => e.to_string(),
    }
}

fn plaintext(name: &str, host: &str, port: u16) -> Listener {
    Listener {
        name: name.to_string(),
        host: host.to_string(),
        port,
        security_protocol: SecurityProtocol::Plaintext,
    }
}

#[test]
fn key_tables_are_sound() {
    for (i, def) in BROKER_KEYS.iter().enumerate() {
        assert!(
            BROKER_KEYS[..i].iter().all(|d| d.name != def.name),
            "{} twice",
            def.name
        );
        assert_eq!(
            def.default_value().is_some(),
            def.default.is_some(),
            "default of {} does not parse",
            def.name
        );
        assert!(!def.doc.is_empty());
    }
    for (i, key) in TOPIC_KEYS.iter().enumerate() {
        if i > 0 {
            assert!(TOPIC_KEYS[i - 1].def.name < key.def.name, "not sorted");
        }
        assert!(
            key.def.default_value().is_some(),
            "{} default",
            key.def.name
        );
        for synonym in key.synonyms {
            let broker = broker::key_def(synonym.name);
            assert!(
                broker.is_some(),
                "synonym {} is no broker key",
                synonym.name
            );
        }
    }
}

#[test]
fn zero_config_is_a_single_combined_node_on_loopback() {
    let c = ok(&[]);
    assert_eq!(c.node_id, 1);
    assert!(c.is_broker() && c.is_controller());
    assert_eq!(
        c.listeners,
        vec![
            plaintext("PLAINTEXT", "127.0.0.1", 9092),
            plaintext("CONTROLLER", "127.0.0.1", 9093)
        ]
    );
    assert_eq!(
        c.broker_listeners().cloned().collect::<Vec<_>>(),
        vec![plaintext("PLAINTEXT", "127.0.0.1", 9092)]
    );
    assert_eq!(
        c.controller_listeners().map(|l| l.port).collect::<Vec<_>>(),
        vec![9093]
    );
    assert_eq!(
        c.advertised_listeners,
        vec![plaintext("PLAINTEXT", "127.0.0.1", 9092)]
    );
    assert_eq!(
        c.advertised_controller_listeners,
        vec![plaintext("CONTROLLER", "127.0.0.1", 9093)]
    );
    assert_eq!(c.advertised_for("PLAINTEXT"), Some(("127.0.0.1", 9092)));
    assert_eq!(c.advertised_for("plaintext"), Some(("127.0.0.1", 9092)));
    assert_eq!(c.advertised_for("CONTROLLER"), None);
    assert_eq!(c.advertised_for("OTHER"), None);
    let map: Vec<(&str, SecurityProtocol)> = c
        .listener_security_protocol_map
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        map,
        vec![
            ("CONTROLLER", SecurityProtocol::Plaintext),
            ("PLAINTEXT", SecurityProtocol::Plaintext),
            ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
            ("SASL_SSL", SecurityProtocol::SaslSsl),
            ("SSL", SecurityProtocol::Ssl),
        ]
    );
    assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    assert_eq!(
        c.controller_quorum_voters,
        vec![QuorumVoter {
            id: 1,
            host: "127.0.0.1".into(),
            port: 9093
        }]
    );
    assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    assert_eq!(c.cluster_id, None);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable);
    assert!(c.delete_topic_enable);
    assert_eq!(c.message_max_bytes, 1048588);
    assert_eq!(c.socket_request_max_bytes, 104857600);
    assert_eq!(c.max_connections, 10000);
    assert_eq!(c.num_recovery_threads_per_data_dir, 2);
    assert_eq!(c.log_flush_offset_checkpoint_interval_ms, 60000);
    assert_eq!(c.log_retention_check_interval_ms, 300000);
    assert!(c.log_cleaner_enable);
    assert_eq!(c.log_cleaner_threads, 1);
    assert_eq!(c.log_cleaner_backoff_ms, 15_000);
    assert_eq!(c.log_cleaner_dedupe_buffer_size, 134_217_728);
    assert_eq!(c.broker_heartbeat_interval_ms, 2000);
    assert_eq!(c.broker_session_timeout_ms, 9000);
    assert_eq!(c.min_insync_replicas, 1);
    assert!(!c.unclean_leader_election_enable);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.producer_id_expiration_ms, 86400000);
    assert!(c.unknown_keys().is_empty());
    assert!(c.warnings().is_empty());

    // The log defaults are storage's LogConfig defaults, except Kafka 4's one-hour limit on
    // future timestamps.
    let expected = LogConfig {
        message_timestamp_after_max_ms: 3_600_000,
        ..LogConfig::default()
    };
    assert_eq!(c.log_defaults.log, expected);
    let t = &c.log_defaults;
    assert_eq!(
        t.cleanup_policy,
        CleanupPolicy {
            delete: true,
            compact: false
        }
    );
    assert_eq!(t.compression_type, BrokerCompressionType::Producer);
    assert_eq!(
        (
            t.compression_gzip_level,
            t.compression_lz4_level,
            t.compression_zstd_level
        ),
        (-1, 9, 3)
    );
    assert_eq!(t.delete_retention_ms, 86_400_000);
    assert_eq!(t.file_delete_delay_ms, 60_000);
    assert_eq!(t.max_compaction_lag_ms, i64::MAX);
    assert_eq!(t.min_cleanable_dirty_ratio, 0.5);
    assert_eq!(t.min_compaction_lag_ms, 0);
    assert_eq!(t.min_insync_replicas, 1);
    assert!(!t.preallocate);
    assert_eq!(t.segment_jitter_ms, 0);
    assert!(!t.unclean_leader_election_enable);
    assert_eq!(c.topic_config(&BTreeMap::new()).as_ref(), Ok(t));
}

fn write_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = match tempfile::NamedTempFile::new() {
        Ok(f) => f,
        Err(e) => panic!("temp file: {e}"),
    };
    if let Err(e) = file.write_all(text.as_bytes()) {
        panic!("write: {e}");
    }
    file
}

#[test]
fn precedence_is_defaults_file_set_env() {
    let file = write_file(
        "# server.properties\n\
         num.partitions=2\n\
         default.replication.factor = 1\n\
         log.retention.hours: 10\n\
         auto.create.topics.enable false\n\
         log.dirs=/file/a,\\\n    /file/b\n",
    );
    let sources = ConfigSources {
        file: Some(file.path().to_path_buf()),
        overrides: vec![
            ("num.partitions".into(), "3".into()),
            ("log.retention.hours".into(), "20".into()),
            ("log.retention.hours".into(), "30".into()),
        ],
        env: vec![
            ("RIVULET_NUM_PARTITIONS".into(), "4".into()),
            ("PATH".into(), "/bin".into()),
            ("RIVULET_NO_SUCH_KEY".into(), "x".into()),
        ],
        hostname: None,
    };
    let c = match BrokerConfig::load(&sources) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.num_partitions, 4, "env beats --set and file");
    assert_eq!(
        c.log_defaults.log.retention_ms,
        30 * 3_600_000,
        "the last --set beats the file"
    );
    assert!(!c.auto_create_topics_enable, "file beats defaults");
    assert_eq!(
        c.log_dirs,
        vec![PathBuf::from("/file/a"), PathBuf::from("/file/b")]
    );
    assert_eq!(c.unknown_keys(), ["no.such.key".to_string()]);
    assert_eq!(
        c.static_props().get("num.partitions").map(String::as_str),
        Some("4")
    );

    // Without a file: --set over defaults, env over --set.
    let c = match BrokerConfig::load(&ConfigSources {
        overrides: vec![("num.partitions".into(), "3".into())],
        ..ConfigSources::default()
    }) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.num_partitions, 3);
}

#[test]
fn file_errors_name_the_file() {
    let missing = ConfigSources {
        file: Some(PathBuf::from("/nonexistent/rivulet/server.properties")),
        ..ConfigSources::default()
    };
    assert!(matches!(
        BrokerConfig::load(&missing),
        Err(ConfigError::Io { .. })
    ));
    let file = write_file("a=1\nb=\\u00zz\n");
    let sources = ConfigSources {
        file: Some(file.path().to_path_buf()),
        ..ConfigSources::default()
    };
    match BrokerConfig::load(&sources) {
        Err(ConfigError::Syntax { source, .. }) => assert_eq!(source.line, 2),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn invalid_values_name_key_and_value() {
    for (key, value, reason) in [
        ("num.partitions", "0", "Value must be at least 1"),
        ("num.partitions", "two", "Not a number of type INT"),
        ("node.id", "-1", "Value must be at least 0"),
        (
            "process.roles",
            "worker",
            "String must be one of: broker, controller",
        ),
        ("process.roles", "", "must not be empty"),
        ("process.roles", "broker,broker", "must not be duplicated"),
        ("auto.create.topics.enable", "yes", "true or false"),
        (
            "log.segment.bytes",
            "1000",
            "Value must be at least 1048576",
        ),
        (
            "log.message.timestamp.type",
            "createtime",
            "String must be one of",
        ),
        ("message.max.bytes", "-1", "Value must be at least 0"),
        ("socket.request.max.bytes", "0", "Value must be at least 1"),
        ("max.connections", "-1", "Value must be at least 0"),
        (
            "offsets.topic.replication.factor",
            "40000",
            "Not a number of type SHORT",
        ),
        (
            "log.retention.check.interval.ms",
            "0",
            "Value must be at least 1",
        ),
        ("log.dirs", " ", "must not be empty"),
        ("log.dirs", "/a,/a", "must not be duplicated"),
        ("log.cleanup.policy", "remove", "String must be one of"),
        ("compression.type", "brotli", "String must be one of"),
        ("log.roll.hours", "0", "Value must be at least 1"),
        ("log.flush.interval.ms", "-5", "Value must be at least 0"),
        ("log.roll.ms", "0", "Value must be at least 1"),
        ("producer.id.expiration.ms", "0", "Value must be at least 1"),
        ("log.cleaner.threads", "-1", "Value must be at least 0"),
        ("log.cleaner.backoff.ms", "-1", "Value must be at least 0"),
    ] {
        match load(&[(key, value)]) {
            Err(ConfigError::InvalidValue(e)) => {
                assert_eq!((e.key.as_str(), e.value.as_str()), (key, value));
                assert!(e.reason.contains(reason), "{key}={value}: {e}");
            }
            other => panic!("{key}={value}: expected InvalidValue, got {other:?}"),
        }
    }
}

#[test]
fn listeners_ipv6_wildcards_and_advertised_defaults() {
    let c = ok(&[
        ("listeners", "PLAINTEXT://[::1]:9092,CONTROLLER://:9093"),
        ("controller.quorum.voters", "1@localhost:9093"),
    ]);
    assert_eq!(c.listeners[0], plaintext("PLAINTEXT", "::1", 9092));
    assert_eq!(c.listeners[0].bind_address(), "[::1]:9092");
    assert_eq!(c.advertised_for("PLAINTEXT"), Some(("::1", 9092)));
    // An empty host binds everything and is advertised under the host name.
    assert_eq!(c.listeners[1].bind_address(), "0.0.0.0:9093");
    assert_eq!(
        c.advertised_controller_listeners,
        vec![plaintext("CONTROLLER", "node1.example", 9093)]
    );

    let c = ok(&[(
        "listeners",
        "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093",
    )]);
    assert_eq!(c.advertised_for("PLAINTEXT"), Some(("node1.example", 9092)));
    let c = ok(&[("listeners", "PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093")]);
    assert_eq!(c.advertised_for("PLAINTEXT"), Some(("node1.example", 9092)));

    // Explicit advertised listeners; a controller entry there is not a broker listener.
    let c = ok(&[
        (
            "listeners",
            "PLAINTEXT://0.0.0.0:9092,INTERNAL://0.0.0.0:9094,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        (
            "advertised.listeners",
            "PLAINTEXT://broker1.example:19092,internal://:9094,CONTROLLER://ctl.example:9093",
        ),
        ("inter.broker.listener.name", "internal"),
    ]);
    assert_eq!(
        c.advertised_for("PLAINTEXT"),
        Some(("broker1.example", 19092))
    );
    assert_eq!(c.advertised_for("INTERNAL"), Some(("node1.example", 9094)));
    assert_eq!(c.inter_broker_listener_name, "INTERNAL");
    assert_eq!(c.advertised_listeners.len(), 2);
    assert_eq!(
        c.advertised_controller_listeners,
        vec![plaintext("CONTROLLER", "ctl.example", 9093)]
    );
    assert_eq!(c.broker_listeners().count(), 2);
}

#[test]
fn listener_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(
                "listeners",
                "PLAINTEXT://:9092,plaintext://:9094,CONTROLLER://:9093",
            )],
            "different name",
        ),
        (
            &[("listeners", "PLAINTEXT://a:9092,CONTROLLER://b:9092")],
            "different port",
        ),
        (
            &[("listeners", "PLAINTEXT://localhost,CONTROLLER://:9093")],
            "Unable to parse",
        ),
        (
            &[("listeners", "EXTERNAL://:9092,CONTROLLER://:9093")],
            "No security protocol defined for listener EXTERNAL",
        ),
        (
            &[(
                "listener.security.protocol.map",
                "PLAINTEXT:TLS,CONTROLLER:PLAINTEXT",
            )],
            "Invalid security protocol `TLS`",
        ),
        (
            &[("listeners", "SSL://:9092,CONTROLLER://:9093")],
            "not supported yet",
        ),
        (
            &[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")],
            "nonroutable meta-address",
        ),
        (
            &[("advertised.listeners", "OTHER://h:9092")],
            "No security protocol defined for listener OTHER",
        ),
        (
            &[
                ("advertised.listeners", "PLAINTEXT://h:9092,EXTRA://h:9095"),
                (
                    "listener.security.protocol.map",
                    "PLAINTEXT:PLAINTEXT,EXTRA:PLAINTEXT,CONTROLLER:PLAINTEXT",
                ),
            ],
            "must be equal to or a subset",
        ),
        (
            &[("inter.broker.listener.name", "CONTROLLER")],
            "inter.broker.listener.name must be a listener name defined in advertised.listeners",
        ),
        (
            &[("inter.broker.listener.name", "NOPE")],
            "not found in listener.security.protocol.map",
        ),
        (
            &[("listeners", "CONTROLLER://:9093")],
            "at least one broker advertised listener",
        ),
    ];
    for (pairs, message) in cases {
        let e = err(pairs);
        assert!(e.contains(message), "{pairs:?}: {e}");
    }
    // An unsupported protocol is its own variant.
    assert!(matches!(
        load(&[("listeners", "SASL_SSL://:9092,CONTROLLER://:9093")]),
        Err(ConfigError::Unsupported { .. })
    ));
}

#[test]
fn implicit_controller_protocol_only_without_explicit_map() {
    // A custom controller listener name gets PLAINTEXT implicitly...
    let c = ok(&[
        ("listeners", "PLAINTEXT://:9092,QUORUM://:9093"),
        ("controller.listener.names", "QUORUM"),
        ("controller.quorum.voters", "1@localhost:9093"),
    ]);
    assert_eq!(
        c.listener_security_protocol_map.get("QUORUM"),
        Some(&SecurityProtocol::Plaintext)
    );
    // ...but not when the map is given explicitly.
    let e = err(&[
        ("listeners", "PLAINTEXT://:9092,QUORUM://:9093"),
        ("controller.listener.names", "QUORUM"),
        ("controller.quorum.voters", "1@localhost:9093"),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT"),
    ]);
    assert!(
        e.contains("No security protocol defined for listener QUORUM"),
        "{e}"
    );
}

#[test]
fn roles_and_quorum() {
    // Broker only: no controller listener, not a voter.
    let c = ok(&[
        ("process.roles", "broker"),
        ("node.id", "4"),
        ("listeners", "PLAINTEXT://:9092"),
        ("controller.quorum.voters", "1@c1:9093,2@c2:9093,3@c3:9093"),
    ]);
    assert!(c.is_broker() && !c.is_controller());
    assert_eq!(c.controller_quorum_voters.len(), 3);
    assert!(c.advertised_controller_listeners.is_empty());
    // Controller only.
    let c = ok(&[
        ("process.roles", "controller"),
        ("listeners", "CONTROLLER://:9093"),
    ]);
    assert!(!c.is_broker() && c.is_controller());
    assert!(c.advertised_listeners.is_empty());

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("node.id", "2")], "must be included in the set of voters"),
        (
            &[("controller.quorum.voters", "")],
            "parseable set of controllers",
        ),
        (
            &[("controller.quorum.voters", "1@0.0.0.0:9093")],
            "not routeable",
        ),
        (
            &[("controller.quorum.voters", "1@localhost:9093,1@other:9093")],
            "appears twice",
        ),
        (
            &[
                ("process.roles", "broker"),
                ("listeners", "PLAINTEXT://:9092"),
            ],
            "must not be included in the set of voters",
        ),
        (
            &[("process.roles", "broker"), ("node.id", "2")],
            "must not contain a value appearing in the 'listeners'",
        ),
        (
            &[
                ("process.roles", "broker"),
                ("node.id", "2"),
                ("listeners", "PLAINTEXT://:9092"),
                ("controller.listener.names", ""),
            ],
            "must contain at least one value when running KRaft with just the broker role",
        ),
        (
            &[("process.roles", "controller")],
            "must only contain KRaft controller listeners",
        ),
        (
            &[("controller.listener.names", "CONTROLLER,OTHER")],
            "must only contain values appearing in the 'listeners'",
        ),
        (
            &[("controller.listener.names", "")],
            "at least one value appearing in the 'listeners'",
        ),
        (
            &[("node.id", "1"), ("broker.id", "2")],
            "`node.id` to the same value as `broker.id`",
        ),
    ];
    for (pairs, message) in cases {
        let e = err(pairs);
        assert!(e.contains(message), "{pairs:?}: {e}");
    }

    // broker.id stands in for node.id.
    let c = ok(&[("broker.id", "1")]);
    assert_eq!(c.node_id, 1);
    let c = ok(&[
        ("broker.id", "7"),
        ("controller.quorum.voters", "7@localhost:9093"),
    ]);
    assert_eq!(c.node_id, 7);
}

#[test]
fn heartbeat_longer_than_half_the_session_is_a_warning() {
    let c = ok(&[
        ("broker.heartbeat.interval.ms", "5000"),
        ("broker.session.timeout.ms", "9000"),
    ]);
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("broker.heartbeat.interval.ms"));
}

#[test]
fn retention_ms_beats_minutes_beats_hours() {
    let retention = |pairs: &[(&str, &str)]| ok(pairs).log_defaults.log.retention_ms;
    assert_eq!(retention(&[]), 168 * 3_600_000);
    assert_eq!(retention(&[("log.retention.hours", "2")]), 2 * 3_600_000);
    assert_eq!(
        retention(&[("log.retention.hours", "2"), ("log.retention.minutes", "3")]),
        3 * 60_000
    );
    assert_eq!(
        retention(&[
            ("log.retention.hours", "2"),
            ("log.retention.minutes", "3"),
            ("log.retention.ms", "1234"),
        ]),
        1234
    );
    assert_eq!(retention(&[("log.retention.ms", "-1")]), -1);
    // Any negative value means "forever", as in Kafka.
    assert_eq!(retention(&[("log.retention.ms", "-5")]), -1);
    assert_eq!(retention(&[("log.retention.hours", "-1")]), -1);
    let e = err(&[("log.retention.ms", "0")]);
    assert!(
        e.contains("unlimited (-1) or, greater than or equal to 1"),
        "{e}"
    );
    let e = err(&[("log.retention.minutes", "0")]);
    assert!(e.contains("log.retention.minutes"), "{e}");

    // log.roll.ms beats log.roll.hours; log.flush.interval.ms beats the scheduler interval.
    let c = ok(&[("log.roll.hours", "1")]);
    assert_eq!(c.log_defaults.log.segment_ms, 3_600_000);
    let c = ok(&[("log.roll.hours", "1"), ("log.roll.ms", "60000")]);
    assert_eq!(c.log_defaults.log.segment_ms, 60_000);
    let c = ok(&[("log.flush.scheduler.interval.ms", "500")]);
    assert_eq!(c.log_defaults.log.flush_ms, 500);
    let c = ok(&[
        ("log.flush.scheduler.interval.ms", "500"),
        ("log.flush.interval.ms", "100"),
    ]);
    assert_eq!(c.log_defaults.log.flush_ms, 100);
    let c = ok(&[("log.roll.jitter.hours", "1")]);
    assert_eq!(c.log_defaults.segment_jitter_ms, 3_600_000);
}

#[test]
fn broker_log_settings_become_topic_defaults() {
    let c = ok(&[
        ("log.segment.bytes", "2097152"),
        ("log.index.size.max.bytes", "4096"),
        ("log.index.interval.bytes", "100"),
        ("log.retention.bytes", "1000000"),
        ("log.flush.interval.messages", "10"),
        ("message.max.bytes", "2000"),
        ("log.message.timestamp.type", "LogAppendTime"),
        ("log.message.timestamp.before.max.ms", "11"),
        ("log.message.timestamp.after.max.ms", "12"),
        ("log.cleanup.policy", "compact,delete"),
        ("producer.id.expiration.ms", "1000"),
        ("min.insync.replicas", "2"),
        ("unclean.leader.election.enable", "true"),
        ("compression.type", "zstd"),
        ("log.preallocate", "true"),
    ]);
    let log = &c.log_defaults.log;
    assert_eq!(log.segment_bytes, 2_097_152);
    assert_eq!(log.segment_index_bytes, 4096);
    assert_eq!(log.index_interval_bytes, 100);
    assert_eq!(log.retention_bytes, 1_000_000);
    assert_eq!(log.flush_messages, 10);
    assert_eq!(log.max_message_bytes, 2000);
    assert_eq!(log.message_timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(log.message_timestamp_before_max_ms, 11);
    assert_eq!(log.message_timestamp_after_max_ms, 12);
    assert_eq!(log.producer_id_expiration_ms, 1000);
    let t = &c.log_defaults;
    assert_eq!(
        t.cleanup_policy,
        CleanupPolicy {
            delete: true,
            compact: true
        }
    );
    assert_eq!(t.min_insync_replicas, 2);
    assert_eq!(c.min_insync_replicas, 2);
    assert!(t.unclean_leader_election_enable);
    assert_eq!(t.compression_type, BrokerCompressionType::Zstd);
    assert!(t.preallocate);
    // Overrides still win over broker defaults.
    let topic = c.topic_config(&props(&[
        ("segment.bytes", "1048576"),
        ("cleanup.policy", "delete"),
    ]));
    let topic = match topic {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(topic.log.segment_bytes, 1_048_576);
    assert!(!topic.cleanup_policy.compact);
    assert_eq!(topic.log.max_message_bytes, 2000);
    // Conflicting broker compaction lags are refused at load.
    let e = err(&[
        ("log.cleaner.min.compaction.lag.ms", "10"),
        ("log.cleaner.max.compaction.lag.ms", "5"),
    ]);
    assert!(e.contains("conflict topic config setting"), "{e}");
}

#[test]
fn every_topic_key_accepts_a_valid_and_refuses_an_invalid_value() {
    let defaults = ok(&[]).topic_defaults().clone();
    let cases: &[(&str, &str, &str)] = &[
        ("cleanup.policy", "compact, delete", "purge"),
        ("compression.gzip.level", "9", "0"),
        ("compression.lz4.level", "1", "18"),
        ("compression.type", "lz4", "LZ4"),
        ("compression.zstd.level", "-131072", "23"),
        ("delete.retention.ms", "0", "-1"),
        ("file.delete.delay.ms", "0", "-1"),
        ("flush.messages", "1", "0"),
        ("flush.ms", "0", "-1"),
        ("index.interval.bytes", "0", "-1"),
        ("max.compaction.lag.ms", "1", "0"),
        ("max.message.bytes", "0", "-1"),
        ("message.timestamp.after.max.ms", "0", "-1"),
        ("message.timestamp.before.max.ms", "0", "-1"),
        ("message.timestamp.type", "LogAppendTime", "logappendtime"),
        ("min.cleanable.dirty.ratio", "1", "1.01"),
        ("min.compaction.lag.ms", "0", "-1"),
        ("min.insync.replicas", "1", "0"),
        ("preallocate", "TRUE", "1"),
        ("retention.bytes", "-1", "1.5"),
        ("retention.ms", "-1", "-2"),
        ("segment.bytes", "1048576", "1048575"),
        ("segment.index.bytes", "4", "3"),
        ("segment.jitter.ms", "0", "-1"),
        ("segment.ms", "1", "0"),
        ("unclean.leader.election.enable", "false", "no"),
    ];
    let covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
    assert_eq!(covered, topic_config_names().collect::<Vec<_>>());
    for (key, valid, invalid) in cases {
        if let Err(e) = defaults.validate(&props(&[(key, valid)])) {
            panic!("{key}={valid} refused: {e}");
        }
        match defaults.validate(&props(&[(key, invalid)])) {
            Err(TopicConfigError::InvalidValue(e)) => {
                assert_eq!((e.key.as_str(), e.value.as_str()), (*key, *invalid));
            }
            other => panic!("{key}={invalid}: expected InvalidValue, got {other:?}"),
        }
    }
}

#[test]
fn topic_overrides_resolve_into_log_config() {
    let defaults = ok(&[("log.retention.hours", "1")]).topic_defaults().clone();
    let t = match defaults.resolve(&props(&[
        ("retention.ms", "1000"),
        ("segment.bytes", "1048576"),
        ("segment.ms", "60000"),
        ("segment.index.bytes", "1024"),
        ("index.interval.bytes", "512"),
        ("retention.bytes", "4096"),
        ("flush.messages", "1"),
        ("flush.ms", "5"),
        ("max.message.bytes", "100"),
        ("message.timestamp.type", "LogAppendTime"),
        ("message.timestamp.before.max.ms", "7"),
        ("message.timestamp.after.max.ms", "8"),
        ("cleanup.policy", ""),
        ("min.cleanable.dirty.ratio", "0.25"),
    ])) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        t.log,
        LogConfig {
            segment_bytes: 1_048_576,
            segment_ms: 60_000,
            segment_index_bytes: 1024,
            index_interval_bytes: 512,
            retention_ms: 1000,
            retention_bytes: 4096,
            flush_messages: 1,
            flush_ms: 5,
            max_message_bytes: 100,
            message_timestamp_type: TimestampType::LogAppendTime,
            message_timestamp_before_max_ms: 7,
            message_timestamp_after_max_ms: 8,
            producer_id_expiration_ms: 86_400_000,
            cleanup_policy: CleanupPolicy {
                delete: false,
                compact: false,
            },
            min_cleanable_dirty_ratio: 0.25,
            ..LogConfig::default()
        }
    );
    assert_eq!(
        t.cleanup_policy,
        CleanupPolicy {
            delete: false,
            compact: false
        }
    );
    assert_eq!(t.min_cleanable_dirty_ratio, 0.25);
    // Without the override the broker's log.retention.hours applies.
    assert_eq!(
        defaults
            .resolve(&BTreeMap::new())
            .map(|t| t.log.retention_ms),
        Ok(3_600_000)
    );
    assert_eq!(
        defaults.default_value("retention.ms").as_deref(),
        Some("3600000")
    );
}

#[test]
fn unknown_topic_keys_and_conflicts_are_refused() {
    let defaults = ok(&[]).topic_defaults().clone();
    let e = defaults.validate(&props(&[("retention.ms", "1"), ("retention.hours", "1")]));
    assert_eq!(
        e,
        Err(TopicConfigError::UnknownKey("retention.hours".to_string()))
    );
    assert_eq!(
        e.map_err(|e| e.to_string()),
        Err("Unknown topic config name: retention.hours".to_string())
    );
    // Broker keys are not topic keys.
    assert!(matches!(
        defaults.validate(&props(&[("log.retention.ms", "1")])),
        Err(TopicConfigError::UnknownKey(_))
    ));
    // Removed in Kafka 4.0.
    assert!(matches!(
        defaults.validate(&props(&[("message.format.version", "3.0")])),
        Err(TopicConfigError::UnknownKey(_))
    ));
    assert_eq!(
        defaults.validate(&props(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5")
        ])),
        Err(TopicConfigError::CompactionLagConflict { min: 10, max: 5 })
    );
}

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    match entries.iter().find(|e| e.name == name) {
        Some(e) => e,
        None => panic!("no entry {name}"),
    }
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> ConfigSynonym {
    ConfigSynonym {
        name: name.to_string(),
        value: Some(value.to_string()),
        source,
    }
}

#[test]
fn describe_broker_sources_and_rendering() {
    let c = ok(&[
        ("num.partitions", " 3 "),
        ("log.dirs", "/a , /b"),
        ("some.plugin.setting", "x"),
    ]);
    let entries = c.describe_broker();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let known = names.len() - 1;
    assert!(names[..known].windows(2).all(|w| w[0] < w[1]), "sorted");
    assert_eq!(known, broker_config_names().count());

    let e = entry(&entries, "num.partitions");
    assert_eq!(e.value.as_deref(), Some("3"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(e.config_type, ConfigType::Int);
    assert!(e.read_only && !e.is_sensitive);
    assert!(e.documentation.is_some());
    assert_eq!(
        e.synonyms,
        vec![
            synonym("num.partitions", " 3 ", ConfigSource::StaticBrokerConfig),
            synonym("num.partitions", "1", ConfigSource::DefaultConfig),
        ]
    );
    let e = entry(&entries, "log.dirs");
    assert_eq!(e.value.as_deref(), Some("/a,/b"));
    assert_eq!(e.config_type, ConfigType::List);
    let e = entry(&entries, "delete.topic.enable");
    assert_eq!(e.value.as_deref(), Some("true"));
    assert_eq!(e.source, ConfigSource::DefaultConfig);
    let e = entry(&entries, "log.retention.ms");
    assert_eq!(e.value, None);
    assert_eq!(e.source, ConfigSource::DefaultConfig);
    assert!(e.synonyms.is_empty());
    let e = entry(&entries, "log.cleaner.min.cleanable.ratio");
    assert_eq!(e.value.as_deref(), Some("0.5"));
    assert_eq!(e.config_type, ConfigType::Double);
    let e = entry(&entries, "listeners");
    assert_eq!(
        e.value.as_deref(),
        Some("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")
    );
    let e = entry(&entries, "some.plugin.setting");
    assert_eq!(e.value, None);
    assert!(e.is_sensitive);
    assert_eq!(e.config_type, ConfigType::Unknown);
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
}

#[test]
fn describe_topic_sources_and_synonyms() {
    let c = ok(&[
        ("log.retention.ms", "86400000"),
        ("log.segment.bytes", "2097152"),
    ]);
    let entries = describe_topic(
        c.topic_defaults(),
        &props(&[
            ("segment.bytes", "1048576"),
            ("cleanup.policy", "compact , delete"),
        ]),
    );
    assert_eq!(
        entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        topic_config_names().collect::<Vec<_>>()
    );
    assert!(entries.iter().all(|e| !e.read_only && !e.is_sensitive));

    // A topic override.
    let e = entry(&entries, "segment.bytes");
    assert_eq!(e.value.as_deref(), Some("1048576"));
    assert_eq!(e.source, ConfigSource::DynamicTopicConfig);
    assert_eq!(
        e.synonyms,
        vec![
            synonym("segment.bytes", "1048576", ConfigSource::DynamicTopicConfig),
            synonym(
                "log.segment.bytes",
                "2097152",
                ConfigSource::StaticBrokerConfig
            ),
            synonym(
                "log.segment.bytes",
                "1073741824",
                ConfigSource::DefaultConfig
            ),
        ]
    );
    let e = entry(&entries, "cleanup.policy");
    assert_eq!(e.value.as_deref(), Some("compact,delete"));
    assert_eq!(e.config_type, ConfigType::List);

    // A static broker default, through its synonym.
    let e = entry(&entries, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("86400000"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(
        e.synonyms,
        vec![
            synonym(
                "log.retention.ms",
                "86400000",
                ConfigSource::StaticBrokerConfig
            ),
            synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
        ]
    );
    assert_eq!(e.config_type, ConfigType::Long);

    // The built-in default.
    let e = entry(&entries, "segment.ms");
    assert_eq!(e.value.as_deref(), Some("604800000"));
    assert_eq!(e.source, ConfigSource::DefaultConfig);
    assert_eq!(
        e.synonyms,
        vec![synonym(
            "log.roll.hours",
            "168",
            ConfigSource::DefaultConfig
        )]
    );
    let e = entry(&entries, "min.cleanable.dirty.ratio");
    assert_eq!(e.value.as_deref(), Some("0.5"));
    assert_eq!(e.config_type, ConfigType::Double);
    let e = entry(&entries, "message.timestamp.after.max.ms");
    assert_eq!(e.value.as_deref(), Some("3600000"));
    let e = entry(&entries, "flush.ms");
    assert_eq!(e.value.as_deref(), Some("9223372036854775807"));
    assert_eq!(
        e.synonyms,
        vec![synonym(
            "log.flush.scheduler.interval.ms",
            "9223372036854775807",
            ConfigSource::DefaultConfig
        )]
    );

    // A secondary synonym set in the file.
    let c = ok(&[("log.retention.hours", "24")]);
    let entries = describe_topic(c.topic_defaults(), &BTreeMap::new());
    let e = entry(&entries, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("86400000"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(
        e.synonyms,
        vec![
            synonym(
                "log.retention.hours",
                "24",
                ConfigSource::StaticBrokerConfig
            ),
            synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
        ]
    );
}

#[test]
fn wire_codes_match_kafka() {
    assert_eq!(ConfigSource::DynamicTopicConfig.id(), 1);
    assert_eq!(ConfigSource::StaticBrokerConfig.id(), 4);
    assert_eq!(ConfigSource::DefaultConfig.id(), 5);
    assert_eq!(ConfigType::Boolean.id(), 1);
    assert_eq!(ConfigType::String.id(), 2);
    assert_eq!(ConfigType::Int.id(), 3);
    assert_eq!(ConfigType::Short.id(), 4);
    assert_eq!(ConfigType::Long.id(), 5);
    assert_eq!(ConfigType::Double.id(), 6);
    assert_eq!(ConfigType::List.id(), 7);
    assert_eq!(ConfigType::Class.id(), 8);
    assert_eq!(ConfigType::Password.id(), 9);
}
