//! [`BrokerConfig`]: the node's static configuration, every supported key with Kafka's name,
//! default (except where the module doc of [`super`] says otherwise) and validation, checked as a
//! whole the way Kafka's `KafkaConfig.validateValues` checks a KRaft node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::def::{Check, KeyDef, Value, Values};
use super::describe::ConfigType;
use super::listeners::{
    check_supported, is_wildcard_host, parse_endpoints, parse_protocol_map, parse_voters,
    with_protocols, Listener, QuorumVoter, SecurityProtocol,
};
use super::topic_config::{
    TopicConfig, TopicConfigError, TopicDefaults, CLEANUP_POLICIES, COMPRESSION_TYPES,
    MIN_SEGMENT_BYTES, TIMESTAMP_TYPES, ZSTD_MIN_LEVEL,
};
use super::{ConfigError, ConfigSources, InvalidValue};

/// A role of this node (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessRole {
    /// Serves Kafka clients and hosts partitions (`broker`).
    Broker,
    /// Votes in the metadata quorum (`controller`).
    Controller,
}

impl ProcessRole {
    /// Kafka's name: `broker` or `controller`.
    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Broker => "broker",
            ProcessRole::Controller => "controller",
        }
    }
}

pub(crate) const BROKER_ID: &str = "broker.id";
pub(crate) const CLUSTER_ID: &str = "cluster.id";
pub(crate) const NODE_ID: &str = "node.id";
pub(crate) const PROCESS_ROLES: &str = "process.roles";
pub(crate) const LISTENERS: &str = "listeners";
pub(crate) const ADVERTISED_LISTENERS: &str = "advertised.listeners";
pub(crate) const LISTENER_SECURITY_PROTOCOL_MAP: &str = "listener.security.protocol.map";
pub(crate) const CONTROLLER_LISTENER_NAMES: &str = "controller.listener.names";
pub(crate) const INTER_BROKER_LISTENER_NAME: &str = "inter.broker.listener.name";
pub(crate) const CONTROLLER_QUORUM_VOTERS: &str = "controller.quorum.voters";
pub(crate) const SOCKET_REQUEST_MAX_BYTES: &str = "socket.request.max.bytes";
pub(crate) const MAX_CONNECTIONS: &str = "max.connections";
pub(crate) const LOG_DIRS: &str = "log.dirs";
pub(crate) const LOG_DIR: &str = "log.dir";
pub(crate) const NUM_PARTITIONS: &str = "num.partitions";
pub(crate) const DEFAULT_REPLICATION_FACTOR: &str = "default.replication.factor";
pub(crate) const AUTO_CREATE_TOPICS_ENABLE: &str = "auto.create.topics.enable";
pub(crate) const NUM_RECOVERY_THREADS_PER_DATA_DIR: &str = "num.recovery.threads.per.data.dir";
pub(crate) const LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS: &str =
    "log.flush.offset.checkpoint.interval.ms";
pub(crate) const LOG_RETENTION_CHECK_INTERVAL_MS: &str = "log.retention.check.interval.ms";
pub(crate) const DELETE_TOPIC_ENABLE: &str = "delete.topic.enable";
pub(crate) const LOG_CLEANER_ENABLE: &str = "log.cleaner.enable";
pub(crate) const LOG_CLEANER_THREADS: &str = "log.cleaner.threads";
pub(crate) const LOG_CLEANER_BACKOFF_MS: &str = "log.cleaner.backoff.ms";
pub(crate) const LOG_CLEANER_DEDUPE_BUFFER_SIZE: &str = "log.cleaner.dedupe.buffer.size";
pub(crate) const LOG_CLEANER_IO_BUFFER_SIZE: &str = "log.cleaner.io.buffer.size";
pub(crate) const BROKER_HEARTBEAT_INTERVAL_MS: &str = "broker.heartbeat.interval.ms";
pub(crate) const BROKER_SESSION_TIMEOUT_MS: &str = "broker.session.timeout.ms";
pub(crate) const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub(crate) const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";
pub(crate) const REPLICA_LAG_TIME_MAX_MS: &str = "replica.lag.time.max.ms";
pub(crate) const REPLICA_FETCH_MAX_BYTES: &str = "replica.fetch.max.bytes";
pub(crate) const REPLICA_FETCH_RESPONSE_MAX_BYTES: &str = "replica.fetch.response.max.bytes";
pub(crate) const REPLICA_FETCH_WAIT_MAX_MS: &str = "replica.fetch.wait.max.ms";
pub(crate) const REPLICA_FETCH_MIN_BYTES: &str = "replica.fetch.min.bytes";
pub(crate) const REPLICA_FETCH_BACKOFF_MS: &str = "replica.fetch.backoff.ms";
pub(crate) const REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS: &str =
    "replica.high.watermark.checkpoint.interval.ms";
pub(crate) const AUTO_LEADER_REBALANCE_ENABLE: &str = "auto.leader.rebalance.enable";
pub(crate) const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS: &str =
    "leader.imbalance.check.interval.seconds";
pub(crate) const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE: &str =
    "leader.imbalance.per.broker.percentage";
pub(crate) const CONTROLLED_SHUTDOWN_ENABLE: &str = "controlled.shutdown.enable";
pub(crate) const OFFSETS_TOPIC_NUM_PARTITIONS: &str = "offsets.topic.num.partitions";
pub(crate) const OFFSETS_TOPIC_REPLICATION_FACTOR: &str = "offsets.topic.replication.factor";
pub(crate) const GROUP_INITIAL_REBALANCE_DELAY_MS: &str = "group.initial.rebalance.delay.ms";
pub(crate) const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "offsets.topic.segment.bytes";
pub(crate) const GROUP_MIN_SESSION_TIMEOUT_MS: &str = "group.min.session.timeout.ms";
pub(crate) const GROUP_MAX_SESSION_TIMEOUT_MS: &str = "group.max.session.timeout.ms";
pub(crate) const GROUP_MAX_SIZE: &str = "group.max.size";
pub(crate) const OFFSETS_COMMIT_TIMEOUT_MS: &str = "offsets.commit.timeout.ms";
pub(crate) const OFFSET_METADATA_MAX_BYTES: &str = "offset.metadata.max.bytes";
pub(crate) const OFFSETS_RETENTION_MINUTES: &str = "offsets.retention.minutes";
pub(crate) const OFFSETS_RETENTION_CHECK_INTERVAL_MS: &str = "offsets.retention.check.interval.ms";
pub(crate) const PRODUCER_ID_EXPIRATION_MS: &str = "producer.id.expiration.ms";
pub(crate) const MESSAGE_MAX_BYTES: &str = "message.max.bytes";

/// Kafka's default map plus `CONTROLLER:PLAINTEXT`.
const DEFAULT_PROTOCOL_MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,\
                                    SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT";

const fn def(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    check: Check,
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        ty,
        default,
        check,
        doc,
    }
}

const NON_EMPTY_LIST: Check = Check::List {
    allowed: &[],
    allow_empty: false,
};
const ANY_LIST: Check = Check::List {
    allowed: &[],
    allow_empty: true,
};

/// Every supported broker key.
pub(crate) static BROKER_KEYS: &[KeyDef] = &[
    // Node identity and roles.
    def(
        NODE_ID,
        ConfigType::Int,
        Some("1"),
        Check::AtLeast(0),
        "The id of this node, unique in the cluster, for every role it plays.",
    ),
    def(
        BROKER_ID,
        ConfigType::Int,
        None,
        Check::AtLeast(0),
        "Kafka's older name for node.id: used when node.id is not set, must equal it otherwise.",
    ),
    def(
        PROCESS_ROLES,
        ConfigType::List,
        Some("broker,controller"),
        Check::List {
            allowed: &["broker", "controller"],
            allow_empty: false,
        },
        "The roles of this node: broker, controller, or both.",
    ),
    def(
        CLUSTER_ID,
        ConfigType::String,
        None,
        Check::None,
        "The cluster id this node expects (a Rivulet key; Kafka keeps it in meta.properties).",
    ),
    // Listeners.
    def(
        LISTENERS,
        ConfigType::List,
        Some("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
        NON_EMPTY_LIST,
        "The addresses to listen on, as NAME://host:port; an empty host binds every interface, \
         port 0 any free port. Names and ports must be unique.",
    ),
    def(
        ADVERTISED_LISTENERS,
        ConfigType::List,
        None,
        NON_EMPTY_LIST,
        "The addresses given to clients and other nodes, per listener name; defaults to \
         listeners (controller listeners excluded, wildcard hosts replaced by the host name).",
    ),
    def(
        LISTENER_SECURITY_PROTOCOL_MAP,
        ConfigType::String,
        Some(DEFAULT_PROTOCOL_MAP),
        Check::None,
        "The security protocol of each listener name, as NAME:PROTOCOL,... (only PLAINTEXT is \
         supported yet).",
    ),
    def(
        CONTROLLER_LISTENER_NAMES,
        ConfigType::List,
        Some("CONTROLLER"),
        ANY_LIST,
        "The names of the listeners the controller quorum uses.",
    ),
    def(
        INTER_BROKER_LISTENER_NAME,
        ConfigType::String,
        None,
        Check::None,
        "The listener brokers use to talk to each other (PLAINTEXT when not set).",
    ),
    def(
        CONTROLLER_QUORUM_VOTERS,
        ConfigType::List,
        Some("1@127.0.0.1:9093"),
        ANY_LIST,
        "The controller quorum, as id@host:port,...",
    ),
    def(
        SOCKET_REQUEST_MAX_BYTES,
        ConfigType::Int,
        Some("104857600"),
        Check::AtLeast(1),
        "The largest request accepted, in bytes.",
    ),
    def(
        MAX_CONNECTIONS,
        ConfigType::Int,
        Some("10000"),
        Check::AtLeast(0),
        "The most client connections open at once (Kafka's default is unlimited).",
    ),
    // Log directories and topic creation.
    def(
        LOG_DIRS,
        ConfigType::List,
        None,
        NON_EMPTY_LIST,
        "The directories holding the partition logs; log.dir is used when not set.",
    ),
    def(
        LOG_DIR,
        ConfigType::List,
        Some("./data"),
        NON_EMPTY_LIST,
        "The log directories when log.dirs is not set.",
    ),
    def(
        NUM_PARTITIONS,
        ConfigType::Int,
        Some("1"),
        Check::AtLeast(1),
        "The number of partitions of an auto-created topic, or of one created with -1 partitions.",
    ),
    def(
        DEFAULT_REPLICATION_FACTOR,
        ConfigType::Int,
        Some("1"),
        Check::AtLeast(1),
        "The replication factor of an auto-created topic, or of one created with -1.",
    ),
    def(
        AUTO_CREATE_TOPICS_ENABLE,
        ConfigType::Boolean,
        Some("true"),
        Check::None,
        "Whether a Metadata request for an unknown topic creates it.",
    ),
    def(
        DELETE_TOPIC_ENABLE,
        ConfigType::Boolean,
        Some("true"),
        Check::None,
        "Whether DeleteTopics is allowed.",
    ),
    def(
        NUM_RECOVERY_THREADS_PER_DATA_DIR,
        ConfigType::Int,
        Some("2"),
        Check::AtLeast(1),
        "Threads per log directory recovering logs at startup and flushing them at shutdown.",
    ),
    def(
        LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS,
        ConfigType::Int,
        Some("60000"),
        Check::AtLeast(0),
        "How often the recovery points are checkpointed, in milliseconds.",
    ),
    def(
        LOG_RETENTION_CHECK_INTERVAL_MS,
        ConfigType::Long,
        Some("300000"),
        Check::AtLeast(1),
        "How often logs are checked for segments to delete, in milliseconds.",
    ),
    def(
        LOG_CLEANER_ENABLE,
        ConfigType::Boolean,
        Some("true"),
        Check::None,
        "Whether the log cleaner compacts topics whose cleanup.policy includes compact.",
    ),
    def(
        LOG_CLEANER_THREADS,
        ConfigType::Int,
        Some("1"),
        Check::AtLeast(0),
        "The number of log cleaner threads.",
    ),
    def(
        LOG_CLEANER_BACKOFF_MS,
        ConfigType::Long,
        Some("15000"),
        Check::AtLeast(0),
        "How long a cleaner thread sleeps when no log is due for cleaning, in milliseconds.",
    ),
    def(
        LOG_CLEANER_DEDUPE_BUFFER_SIZE,
        ConfigType::Long,
        Some("134217728"),
        Check::AtLeast(0),
        "Memory for the cleaner threads' key-to-offset maps, all threads together, in bytes.",
    ),
    def(
        LOG_CLEANER_IO_BUFFER_SIZE,
        ConfigType::Int,
        Some("524288"),
        Check::AtLeast(0),
        "Kafka's cleaner I/O buffer size; accepted for compatibility (the cleaner reads \
         segments in 1 MiB chunks).",
    ),
    // Cluster membership.
    def(
        BROKER_HEARTBEAT_INTERVAL_MS,
        ConfigType::Int,
        Some("2000"),
        Check::AtLeast(1),
        "How often a broker heartbeats to the controller, in milliseconds.",
    ),
    def(
        BROKER_SESSION_TIMEOUT_MS,
        ConfigType::Int,
        Some("9000"),
        Check::AtLeast(1),
        "How long a broker stays registered without heartbeats before it is fenced, in \
         milliseconds.",
    ),
    // Replication.
    def(
        MIN_INSYNC_REPLICAS,
        ConfigType::Int,
        Some("1"),
        Check::AtLeast(1),
        "The default min.insync.replicas of topics.",
    ),
    def(
        UNCLEAN_LEADER_ELECTION_ENABLE,
        ConfigType::Boolean,
        Some("false"),
        Check::None,
        "The default unclean.leader.election.enable of topics.",
    ),
    def(
        REPLICA_LAG_TIME_MAX_MS,
        ConfigType::Long,
        Some("30000"),
        Check::AtLeast(1),
        "A follower that has not caught up with the leader's log end for this long leaves the \
         ISR, in milliseconds.",
    ),
    def(
        REPLICA_FETCH_MAX_BYTES,
        ConfigType::Int,
        Some("1048576"),
        Check::AtLeast(0),
        "Bytes a follower asks for per partition in one fetch (at least one batch is returned).",
    ),
    def(
        REPLICA_FETCH_RESPONSE_MAX_BYTES,
        ConfigType::Int,
        Some("10485760"),
        Check::AtLeast(0),
        "Bytes a follower asks for in one fetch over all partitions.",
    ),
    def(
        REPLICA_FETCH_WAIT_MAX_MS,
        ConfigType::Int,
        Some("500"),
        Check::AtLeast(0),
        "How long the leader holds a follower's fetch that has no data, in milliseconds.",
    ),
    def(
        REPLICA_FETCH_MIN_BYTES,
        ConfigType::Int,
        Some("1"),
        Check::AtLeast(1),
        "Bytes a follower's fetch waits for before the leader answers.",
    ),
    def(
        REPLICA_FETCH_BACKOFF_MS,
        ConfigType::Int,
        Some("1000"),
        Check::AtLeast(0),
        "How long a follower waits after a fetch error before trying again, in milliseconds.",
    ),
    def(
        REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS,
        ConfigType::Long,
        Some("5000"),
        Check::AtLeast(1),
        "How often the high watermarks are written to disk, in milliseconds.",
    ),
    def(
        AUTO_LEADER_REBALANCE_ENABLE,
        ConfigType::Boolean,
        Some("true"),
        Check::None,
        "Whether the controller moves leadership back to each partition's preferred replica.",
    ),
    def(
        LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS,
        ConfigType::Long,
        Some("300"),
        Check::AtLeast(1),
        "How often the controller checks for leader imbalance, in seconds.",
    ),
    def(
        LEADER_IMBALANCE_PER_BROKER_PERCENTAGE,
        ConfigType::Int,
        Some("10"),
        Check::AtLeast(0),
        "The share of a broker's preferred partitions it may not lead before the controller \
         rebalances, in percent.",
    ),
    def(
        CONTROLLED_SHUTDOWN_ENABLE,
        ConfigType::Boolean,
        Some("true"),
        Check::None,
        "Whether a stopping broker first asks the controller to move its leaderships away.",
    ),
    // Groups and producers.
    def(
        OFFSETS_TOPIC_NUM_PARTITIONS,
        ConfigType::Int,
        Some("50"),
        Check::AtLeast(1),
        "The number of partitions of __consumer_offsets.",
    ),
    def(
        OFFSETS_TOPIC_REPLICATION_FACTOR,
        ConfigType::Short,
        Some("3"),
        Check::AtLeast(1),
        "The replication factor of __consumer_offsets.",
    ),
    def(
        GROUP_INITIAL_REBALANCE_DELAY_MS,
        ConfigType::Int,
        Some("3000"),
        Check::AtLeast(0),
        "How long a new group waits for more members before its first rebalance, in \
         milliseconds.",
    ),
    def(
        OFFSETS_TOPIC_SEGMENT_BYTES,
        ConfigType::Int,
        Some("104857600"),
        Check::AtLeast(1),
        "The segment size of __consumer_offsets, small to keep compaction and loading fast.",
    ),
    def(
        GROUP_MIN_SESSION_TIMEOUT_MS,
        ConfigType::Int,
        Some("6000"),
        Check::None,
        "The shortest session timeout a group member may ask for, in milliseconds.",
    ),
    def(
        GROUP_MAX_SESSION_TIMEOUT_MS,
        ConfigType::Int,
        Some("1800000"),
        Check::None,
        "The longest session timeout a group member may ask for, in milliseconds.",
    ),
    def(
        GROUP_MAX_SIZE,
        ConfigType::Int,
        Some("2147483647"),
        Check::AtLeast(1),
        "The most members a group may have.",
    ),
    def(
        OFFSETS_COMMIT_TIMEOUT_MS,
        ConfigType::Int,
        Some("5000"),
        Check::AtLeast(1),
        "How long an offset commit waits for all in-sync replicas of __consumer_offsets, in \
         milliseconds.",
    ),
    def(
        OFFSET_METADATA_MAX_BYTES,
        ConfigType::Int,
        Some("4096"),
        Check::None,
        "The largest metadata string an offset commit may carry.",
    ),
    def(
        OFFSETS_RETENTION_MINUTES,
        ConfigType::Int,
        Some("10080"),
        Check::AtLeast(1),
        "How long the offsets of a group that has become empty are kept, in minutes.",
    ),
    def(
        OFFSETS_RETENTION_CHECK_INTERVAL_MS,
        ConfigType::Long,
        Some("600000"),
        Check::AtLeast(1),
        "How often expired offsets are looked for, in milliseconds.",
    ),
    def(
        PRODUCER_ID_EXPIRATION_MS,
        ConfigType::Int,
        Some("86400000"),
        Check::AtLeast(1),
        "How long an idle idempotent producer's state is kept, in milliseconds.",
    ),
    // Topic defaults.
    def(
        MESSAGE_MAX_BYTES,
        ConfigType::Int,
        Some("1048588"),
        Check::AtLeast(0),
        "The default max.message.bytes of topics: the largest record batch accepted.",
    ),
    def(
        "log.segment.bytes",
        ConfigType::Int,
        Some("1073741824"),
        Check::AtLeast(MIN_SEGMENT_BYTES),
        "The default segment.bytes of topics.",
    ),
    def(
        "log.roll.ms",
        ConfigType::Long,
        None,
        Check::None,
        "The default segment.ms of topics; log.roll.hours is used when not set.",
    ),
    def(
        "log.roll.hours",
        ConfigType::Int,
        Some("168"),
        Check::AtLeast(1),
        "The default segment.ms of topics in hours, when log.roll.ms is not set.",
    ),
    def(
        "log.roll.jitter.ms",
        ConfigType::Long,
        None,
        Check::None,
        "The default segment.jitter.ms of topics; log.roll.jitter.hours is used when not set.",
    ),
    def(
        "log.roll.jitter.hours",
        ConfigType::Int,
        Some("0"),
        Check::AtLeast(0),
        "The default segment.jitter.ms of topics in hours, when log.roll.jitter.ms is not set.",
    ),
    def(
        "log.index.size.max.bytes",
        ConfigType::Int,
        Some("10485760"),
        Check::AtLeast(4),
        "The default segment.index.bytes of topics.",
    ),
    def(
        "log.index.interval.bytes",
        ConfigType::Int,
        Some("4096"),
        Check::AtLeast(0),
        "The default index.interval.bytes of topics.",
    ),
    def(
        "log.retention.ms",
        ConfigType::Long,
        None,
        Check::None,
        "The default retention.ms of topics (-1: forever); log.retention.minutes is used when \
         not set.",
    ),
    def(
        "log.retention.minutes",
        ConfigType::Int,
        None,
        Check::None,
        "The default retention.ms of topics in minutes, when log.retention.ms is not set; \
         log.retention.hours is used when neither is.",
    ),
    def(
        "log.retention.hours",
        ConfigType::Int,
        Some("168"),
        Check::None,
        "The default retention.ms of topics in hours, when neither log.retention.ms nor \
         log.retention.minutes is set.",
    ),
    def(
        "log.retention.bytes",
        ConfigType::Long,
        Some("-1"),
        Check::None,
        "The default retention.bytes of topics.",
    ),
    def(
        "log.flush.interval.messages",
        ConfigType::Long,
        Some("9223372036854775807"),
        Check::AtLeast(1),
        "The default flush.messages of topics.",
    ),
    def(
        "log.flush.interval.ms",
        ConfigType::Long,
        None,
        Check::None,
        "The default flush.ms of topics; log.flush.scheduler.interval.ms is used when not set.",
    ),
    def(
        "log.flush.scheduler.interval.ms",
        ConfigType::Long,
        Some("9223372036854775807"),
        Check::None,
        "The default flush.ms of topics when log.flush.interval.ms is not set.",
    ),
    def(
        "log.message.timestamp.type",
        ConfigType::String,
        Some("CreateTime"),
        Check::OneOf(TIMESTAMP_TYPES),
        "The default message.timestamp.type of topics.",
    ),
    def(
        "log.message.timestamp.before.max.ms",
        ConfigType::Long,
        Some("9223372036854775807"),
        Check::AtLeast(0),
        "The default message.timestamp.before.max.ms of topics.",
    ),
    def(
        "log.message.timestamp.after.max.ms",
        ConfigType::Long,
        Some("3600000"),
        Check::AtLeast(0),
        "The default message.timestamp.after.max.ms of topics.",
    ),
    def(
        "log.cleanup.policy",
        ConfigType::List,
        Some("delete"),
        Check::List {
            allowed: CLEANUP_POLICIES,
            allow_empty: true,
        },
        "The default cleanup.policy of topics.",
    ),
    def(
        "log.cleaner.delete.retention.ms",
        ConfigType::Long,
        Some("86400000"),
        Check::AtLeast(0),
        "The default delete.retention.ms of topics.",
    ),
    def(
        "log.cleaner.min.compaction.lag.ms",
        ConfigType::Long,
        Some("0"),
        Check::AtLeast(0),
        "The default min.compaction.lag.ms of topics.",
    ),
    def(
        "log.cleaner.max.compaction.lag.ms",
        ConfigType::Long,
        Some("9223372036854775807"),
        Check::AtLeast(1),
        "The default max.compaction.lag.ms of topics.",
    ),
    def(
        "log.cleaner.min.cleanable.ratio",
        ConfigType::Double,
        Some("0.5"),
        Check::DoubleBetween(0.0, 1.0),
        "The default min.cleanable.dirty.ratio of topics.",
    ),
    def(
        "log.segment.delete.delay.ms",
        ConfigType::Long,
        Some("60000"),
        Check::AtLeast(0),
        "The default file.delete.delay.ms of topics.",
    ),
    def(
        "log.preallocate",
        ConfigType::Boolean,
        Some("false"),
        Check::None,
        "The default preallocate of topics.",
    ),
    def(
        "compression.type",
        ConfigType::String,
        Some("producer"),
        Check::OneOf(COMPRESSION_TYPES),
        "The default compression.type of topics.",
    ),
    def(
        "compression.gzip.level",
        ConfigType::Int,
        Some("-1"),
        Check::GzipLevel,
        "The default compression.gzip.level of topics.",
    ),
    def(
        "compression.lz4.level",
        ConfigType::Int,
        Some("9"),
        Check::Between(1, 17),
        "The default compression.lz4.level of topics.",
    ),
    def(
        "compression.zstd.level",
        ConfigType::Int,
        Some("3"),
        Check::Between(ZSTD_MIN_LEVEL, 22),
        "The default compression.zstd.level of topics.",
    ),
];

pub(crate) fn key_def(name: &str) -> Option<&'static KeyDef> {
    BROKER_KEYS.iter().find(|d| d.name == name)
}

/// The names of every supported broker key, in definition order.
pub fn broker_config_names() -> impl Iterator<Item = &'static str> {
    BROKER_KEYS.iter().map(|d| d.name)
}

/// This node's configuration: every setting typed, listeners resolved and cross-checked.
///
/// Built by [`BrokerConfig::load`] from defaults, a properties file, `--set` overrides and
/// `RIVULET_*` environment variables (see the [module doc](super) for precedence), or by
/// [`BrokerConfig::from_properties`] from a key-value map. Immutable once built; describe,
/// resolve and look-up methods only read.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `node.id` (1): this node's id.
    pub node_id: i32,
    /// `process.roles` (broker,controller).
    pub process_roles: BTreeSet<ProcessRole>,
    /// `cluster.id` (none): the cluster this node must belong to, when given.
    pub cluster_id: Option<String>,
    /// `listeners`, in the order given, each with its security protocol.
    pub listeners: Vec<Listener>,
    /// The broker listeners advertised to clients (`advertised.listeners`, or `listeners`
    /// without the controller listeners), wildcard hosts replaced by the host name.
    pub advertised_listeners: Vec<Listener>,
    /// The controller listeners advertised to the quorum, in `controller.listener.names` order.
    pub advertised_controller_listeners: Vec<Listener>,
    /// `listener.security.protocol.map`, names upper case, plus Kafka's implicit
    /// `<controller listener>:PLAINTEXT` entries when the key is not set.
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    /// `controller.listener.names` (CONTROLLER), upper case.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name` (PLAINTEXT), upper case.
    pub inter_broker_listener_name: String,
    /// `controller.quorum.voters` (1@127.0.0.1:9093).
    pub controller_quorum_voters: Vec<QuorumVoter>,
    /// `log.dirs`, else `log.dir` (./data).
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions` (1).
    pub num_partitions: i32,
    /// `default.replication.factor` (1).
    pub default_replication_factor: i32,
    /// `auto.create.topics.enable` (true).
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable` (true).
    pub delete_topic_enable: bool,
    /// `message.max.bytes` (1048588): the default `max.message.bytes` of topics.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes` (104857600).
    pub socket_request_max_bytes: i32,
    /// `max.connections` (10000).
    pub max_connections: i32,
    /// `num.recovery.threads.per.data.dir` (2).
    pub num_recovery_threads_per_data_dir: i32,
    /// `log.flush.offset.checkpoint.interval.ms` (60000).
    pub log_flush_offset_checkpoint_interval_ms: i32,
    /// `log.retention.check.interval.ms` (300000).
    pub log_retention_check_interval_ms: i64,
    /// `log.cleaner.enable` (true): run the log cleaner.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads` (1).
    pub log_cleaner_threads: i32,
    /// `log.cleaner.backoff.ms` (15000): a cleaner thread's sleep when no log is due.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.dedupe.buffer.size` (134217728): offset-map memory, all threads together.
    pub log_cleaner_dedupe_buffer_size: i64,
    /// `broker.heartbeat.interval.ms` (2000).
    pub broker_heartbeat_interval_ms: i32,
    /// `broker.session.timeout.ms` (9000).
    pub broker_session_timeout_ms: i32,
    /// `min.insync.replicas` (1): the topics' default.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable` (false): the topics' default.
    pub unclean_leader_election_enable: bool,
    /// `replica.lag.time.max.ms` (30000).
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.max.bytes` (1048576).
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10485760).
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500).
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1).
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000).
    pub replica_fetch_backoff_ms: i32,
    /// `replica.high.watermark.checkpoint.interval.ms` (5000).
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    /// `auto.leader.rebalance.enable` (true).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (300).
    pub leader_imbalance_check_interval_seconds: i64,
    /// `leader.imbalance.per.broker.percentage` (10).
    pub leader_imbalance_per_broker_percentage: i32,
    /// `controlled.shutdown.enable` (true).
    pub controlled_shutdown_enable: bool,
    /// `offsets.topic.num.partitions` (50).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (3).
    pub offsets_topic_replication_factor: i16,
    /// `group.initial.rebalance.delay.ms` (3000).
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.topic.segment.bytes` (104857600).
    pub offsets_topic_segment_bytes: i32,
    /// `group.min.session.timeout.ms` (6000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size` (2147483647).
    pub group_max_size: i32,
    /// `offsets.commit.timeout.ms` (5000).
    pub offsets_commit_timeout_ms: i32,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: i32,
    /// `offsets.retention.minutes` (10080).
    pub offsets_retention_minutes: i32,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `producer.id.expiration.ms` (86400000).
    pub producer_id_expiration_ms: i32,
    /// The settings a topic without overrides gets (`log.segment.bytes`, `log.retention.*`,
    /// `log.roll.*`, `log.flush.*`, `log.message.timestamp.*`, `log.cleanup.policy`, ...).
    pub log_defaults: TopicConfig,
    topic_defaults: TopicDefaults,
    values: Values,
    static_props: BTreeMap<String, String>,
    unknown_keys: Vec<String>,
    warnings: Vec<String>,
}

fn inconsistent(message: impl Into<String>) -> ConfigError {
    ConfigError::Inconsistent(message.into())
}

/// Replaces a wildcard host with the host name, as Kafka puts the canonical host name in place
/// of an empty host.
fn advertisable(mut listener: Listener, hostname: &str) -> Listener {
    if listener.is_wildcard() {
        listener.host = hostname.to_string();
    }
    listener
}

impl BrokerConfig {
    /// Builds the configuration from its sources: built-in defaults, then the properties file,
    /// then the `--set` overrides, then the `RIVULET_*` variables of `sources.env`, each
    /// overriding the previous. Reads the file, nothing else.
    pub fn load(sources: &ConfigSources) -> Result<BrokerConfig, ConfigError> {
        let props = sources.collect()?;
        let hostname = sources.hostname.as_deref().unwrap_or("localhost");
        BrokerConfig::from_properties(&props, hostname)
    }

    /// Builds the configuration from already merged key-value pairs over the built-in defaults.
    /// `hostname` replaces wildcard hosts in advertised listeners. Pure.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        hostname: &str,
    ) -> Result<BrokerConfig, ConfigError> {
        let unknown_keys: Vec<String> = props
            .keys()
            .filter(|k| key_def(k).is_none())
            .cloned()
            .collect();
        let mut values = Values::resolve(BROKER_KEYS, props)?;
        let mut warnings = Vec::new();

        // node.id, with broker.id as Kafka's synonym.
        let mut node_id = values.int(NODE_ID)?;
        if let Some(broker_id) = values.opt_int(BROKER_ID)? {
            if !props.contains_key(NODE_ID) {
                node_id = broker_id;
                values.set(NODE_ID, Some(Value::Int(broker_id)));
            } else if broker_id != node_id {
                return Err(inconsistent(
                    "You must set `node.id` to the same value as `broker.id`.",
                ));
            }
        }

        let process_roles: BTreeSet<ProcessRole> = values
            .list(PROCESS_ROLES)?
            .iter()
            .map(|r| {
                if r == "controller" {
                    ProcessRole::Controller
                } else {
                    ProcessRole::Broker
                }
            })
            .collect();
        let is_broker = process_roles.contains(&ProcessRole::Broker);
        let is_controller = process_roles.contains(&ProcessRole::Controller);

        let controller_listener_names: Vec<String> = values
            .list(CONTROLLER_LISTENER_NAMES)?
            .iter()
            .map(|n| n.to_uppercase())
            .collect();
        let is_controller_name = |name: &str| controller_listener_names.iter().any(|n| n == name);

        // Security protocols, with Kafka's implicit PLAINTEXT for controller listeners when the
        // map is not set and no listener name is SSL or SASL.
        let mut protocol_map = parse_protocol_map(
            LISTENER_SECURITY_PROTOCOL_MAP,
            values.str(LISTENER_SECURITY_PROTOCOL_MAP)?,
        )?;
        let endpoints = parse_endpoints(LISTENERS, values.list(LISTENERS)?, true)?;
        if !props.contains_key(LISTENER_SECURITY_PROTOCOL_MAP) {
            let ssl_or_sasl = |n: &str| matches!(n, "SSL" | "SASL_PLAINTEXT" | "SASL_SSL");
            if !controller_listener_names.iter().any(|n| ssl_or_sasl(n))
                && !endpoints.iter().any(|e| ssl_or_sasl(&e.name))
            {
                for name in &controller_listener_names {
                    protocol_map
                        .entry(name.clone())
                        .or_insert(SecurityProtocol::Plaintext);
                }
            }
        }
        let listeners = with_protocols(LISTENERS, endpoints, &protocol_map)?;
        let listener_names: BTreeSet<&str> = listeners.iter().map(|l| l.name.as_str()).collect();

        // Advertised listeners.
        let explicit_advertised = match values.opt_list(ADVERTISED_LISTENERS)? {
            Some(entries) => {
                let endpoints = parse_endpoints(ADVERTISED_LISTENERS, entries, false)?;
                if let Some(e) = endpoints
                    .iter()
                    .find(|e| !e.host.is_empty() && is_wildcard_host(&e.host))
                {
                    return Err(InvalidValue::new(
                        ADVERTISED_LISTENERS,
                        entries.join(","),
                        format!(
                            "advertised.listeners cannot use the nonroutable meta-address {}. \
                             Use a routable IP address.",
                            e.host
                        ),
                    )
                    .into());
                }
                Some(with_protocols(
                    ADVERTISED_LISTENERS,
                    endpoints,
                    &protocol_map,
                )?)
            }
            None => None,
        };
        let advertised_listeners: Vec<Listener> = explicit_advertised
            .as_ref()
            .unwrap_or(&listeners)
            .iter()
            .filter(|l| !is_controller_name(&l.name))
            .map(|l| advertisable(l.clone(), hostname))
            .collect();
        let advertised_controller_listeners: Vec<Listener> = controller_listener_names
            .iter()
            .filter_map(|name| {
                explicit_advertised
                    .iter()
                    .flatten()
                    .chain(listeners.iter())
                    .find(|l| &l.name == name)
                    .map(|l| advertisable(l.clone(), hostname))
            })
            .collect();

        let inter_broker_listener_name = values
            .opt_str(INTER_BROKER_LISTENER_NAME)?
            .map_or_else(|| "PLAINTEXT".to_string(), str::to_uppercase);
        if !protocol_map.contains_key(&inter_broker_listener_name) {
            return Err(inconsistent(format!(
                "Listener with name {inter_broker_listener_name} defined in \
                 inter.broker.listener.name not found in listener.security.protocol.map."
            )));
        }

        // The quorum and the roles.
        let controller_quorum_voters = parse_voters(
            CONTROLLER_QUORUM_VOTERS,
            values.list(CONTROLLER_QUORUM_VOTERS)?,
        )?;
        if controller_quorum_voters.is_empty() {
            return Err(inconsistent(
                "If using process.roles, controller.quorum.voters must contain a parseable set of \
                 controllers.",
            ));
        }
        let voter_ids: Vec<i32> = controller_quorum_voters.iter().map(|v| v.id).collect();
        if is_controller {
            if !voter_ids.contains(&node_id) {
                return Err(inconsistent(format!(
                    "If process.roles contains the 'controller' role, the node id {node_id} must \
                     be included in the set of voters controller.quorum.voters={voter_ids:?}"
                )));
            }
            if advertised_controller_listeners.is_empty() {
                return Err(inconsistent(
                    "controller.listener.names must contain at least one value appearing in the \
                     'listeners' configuration when running the KRaft controller role",
                ));
            }
            if !controller_listener_names
                .iter()
                .all(|n| listener_names.contains(n.as_str()))
            {
                return Err(inconsistent(
                    "controller.listener.names must only contain values appearing in the \
                     'listeners' configuration when running the KRaft controller role",
                ));
            }
            if !is_broker {
                if listeners.iter().any(|l| !is_controller_name(&l.name)) {
                    return Err(inconsistent(
                        "The listeners config must only contain KRaft controller listeners from \
                         controller.listener.names when process.roles=controller",
                    ));
                }
                if props.contains_key(INTER_BROKER_LISTENER_NAME)
                    && is_controller_name(&inter_broker_listener_name)
                {
                    return Err(inconsistent(
                        "controller.listener.names must not contain an explicitly set \
                         inter.broker.listener.name configuration value when \
                         process.roles=controller",
                    ));
                }
            }
        } else {
            if voter_ids.contains(&node_id) {
                return Err(inconsistent(format!(
                    "If process.roles contains just the 'broker' role, the node id {node_id} must \
                     not be included in the set of voters controller.quorum.voters={voter_ids:?}"
                )));
            }
            if controller_listener_names.is_empty() {
                return Err(inconsistent(
                    "controller.listener.names must contain at least one value when running KRaft \
                     with just the broker role",
                ));
            }
            if listeners.iter().any(|l| is_controller_name(&l.name)) {
                return Err(inconsistent(
                    "controller.listener.names must not contain a value appearing in the \
                     'listeners' configuration when running KRaft with just the broker role",
                ));
            }
            for name in &controller_listener_names {
                let protocol = protocol_map.get(name).ok_or_else(|| {
                    inconsistent(format!(
                        "Controller listener with name {name} defined in \
                         controller.listener.names not found in listener.security.protocol.map"
                    ))
                })?;
                check_supported(CONTROLLER_LISTENER_NAMES, name, *protocol)?;
            }
        }
        if is_broker {
            if advertised_listeners.is_empty() {
                return Err(inconsistent(
                    "There must be at least one broker advertised listener. Perhaps all listeners \
                     appear in controller.listener.names?",
                ));
            }
            let advertised_names: Vec<&str> = advertised_listeners
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            if !advertised_names.contains(&inter_broker_listener_name.as_str()) {
                return Err(inconsistent(format!(
                    "inter.broker.listener.name must be a listener name defined in \
                     advertised.listeners. The valid options based on currently configured \
                     listeners are {}",
                    advertised_names.join(",")
                )));
            }
            if !advertised_names.iter().all(|n| listener_names.contains(n)) {
                return Err(inconsistent(format!(
                    "advertised.listeners listener names must be equal to or a subset of the ones \
                     defined in listeners. Found {}. The valid options based on the current \
                     configuration are {}",
                    advertised_names.join(","),
                    listener_names.iter().copied().collect::<Vec<_>>().join(",")
                )));
            }
        }

        let broker_heartbeat_interval_ms = values.int(BROKER_HEARTBEAT_INTERVAL_MS)?;
        let broker_session_timeout_ms = values.int(BROKER_SESSION_TIMEOUT_MS)?;
        if i64::from(broker_heartbeat_interval_ms) * 2 > i64::from(broker_session_timeout_ms) {
            warnings.push(format!(
                "broker.heartbeat.interval.ms ({broker_heartbeat_interval_ms} ms) must be less \
                 than or equal to half of the broker.session.timeout.ms \
                 ({broker_session_timeout_ms} ms)"
            ));
        }

        let log_dirs = match values.opt_list(LOG_DIRS)? {
            Some(dirs) => dirs,
            None => values.list(LOG_DIR)?,
        }
        .iter()
        .map(PathBuf::from)
        .collect();

        let producer_id_expiration_ms = values.int(PRODUCER_ID_EXPIRATION_MS)?;
        let topic_defaults = TopicDefaults::from_broker(
            &values,
            props,
            |name| key_def(name).and_then(KeyDef::default_value),
            i64::from(producer_id_expiration_ms),
        )?;
        let log_defaults = topic_defaults
            .resolve(&BTreeMap::new())
            .map_err(|e| match e {
                TopicConfigError::InvalidValue(v) => ConfigError::InvalidValue(v),
                TopicConfigError::Internal(name) => ConfigError::Internal(name),
                other => inconsistent(other.to_string()),
            })?;

        Ok(BrokerConfig {
            node_id,
            process_roles,
            cluster_id: values.opt_str(CLUSTER_ID)?.map(str::to_string),
            listeners,
            advertised_listeners,
            advertised_controller_listeners,
            listener_security_protocol_map: protocol_map,
            controller_listener_names,
            inter_broker_listener_name,
            controller_quorum_voters,
            log_dirs,
            num_partitions: values.int(NUM_PARTITIONS)?,
            default_replication_factor: values.int(DEFAULT_REPLICATION_FACTOR)?,
            auto_create_topics_enable: values.bool(AUTO_CREATE_TOPICS_ENABLE)?,
            delete_topic_enable: values.bool(DELETE_TOPIC_ENABLE)?,
            message_max_bytes: values.int(MESSAGE_MAX_BYTES)?,
            socket_request_max_bytes: values.int(SOCKET_REQUEST_MAX_BYTES)?,
            max_connections: values.int(MAX_CONNECTIONS)?,
            num_recovery_threads_per_data_dir: values.int(NUM_RECOVERY_THREADS_PER_DATA_DIR)?,
            log_flush_offset_checkpoint_interval_ms: values
                .int(LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS)?,
            log_retention_check_interval_ms: values.long(LOG_RETENTION_CHECK_INTERVAL_MS)?,
            log_cleaner_enable: values.bool(LOG_CLEANER_ENABLE)?,
            log_cleaner_threads: values.int(LOG_CLEANER_THREADS)?,
            log_cleaner_backoff_ms: values.long(LOG_CLEANER_BACKOFF_MS)?,
            log_cleaner_dedupe_buffer_size: values.long(LOG_CLEANER_DEDUPE_BUFFER_SIZE)?,
            broker_heartbeat_interval_ms,
            broker_session_timeout_ms,
            min_insync_replicas: values.int(MIN_INSYNC_REPLICAS)?,
            unclean_leader_election_enable: values.bool(UNCLEAN_LEADER_ELECTION_ENABLE)?,
            replica_lag_time_max_ms: values.long(REPLICA_LAG_TIME_MAX_MS)?,
            replica_fetch_max_bytes: values.int(REPLICA_FETCH_MAX_BYTES)?,
            replica_fetch_response_max_bytes: values.int(REPLICA_FETCH_RESPONSE_MAX_BYTES)?,
            replica_fetch_wait_max_ms: values.int(REPLICA_FETCH_WAIT_MAX_MS)?,
            replica_fetch_min_bytes: values.int(REPLICA_FETCH_MIN_BYTES)?,
            replica_fetch_backoff_ms: values.int(REPLICA_FETCH_BACKOFF_MS)?,
            replica_high_watermark_checkpoint_interval_ms: values
                .long(REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS)?,
            auto_leader_rebalance_enable: values.bool(AUTO_LEADER_REBALANCE_ENABLE)?,
            leader_imbalance_check_interval_seconds: values
                .long(LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS)?,
            leader_imbalance_per_broker_percentage: values
                .int(LEADER_IMBALANCE_PER_BROKER_PERCENTAGE)?,
            controlled_shutdown_enable: values.bool(CONTROLLED_SHUTDOWN_ENABLE)?,
            offsets_topic_num_partitions: values.int(OFFSETS_TOPIC_NUM_PARTITIONS)?,
            offsets_topic_replication_factor: values.short(OFFSETS_TOPIC_REPLICATION_FACTOR)?,
            group_initial_rebalance_delay_ms: values.int(GROUP_INITIAL_REBALANCE_DELAY_MS)?,
            offsets_topic_segment_bytes: values.int(OFFSETS_TOPIC_SEGMENT_BYTES)?,
            group_min_session_timeout_ms: values.int(GROUP_MIN_SESSION_TIMEOUT_MS)?,
            group_max_session_timeout_ms: values.int(GROUP_MAX_SESSION_TIMEOUT_MS)?,
            group_max_size: values.int(GROUP_MAX_SIZE)?,
            offsets_commit_timeout_ms: values.int(OFFSETS_COMMIT_TIMEOUT_MS)?,
            offset_metadata_max_bytes: values.int(OFFSET_METADATA_MAX_BYTES)?,
            offsets_retention_minutes: values.int(OFFSETS_RETENTION_MINUTES)?,
            offsets_retention_check_interval_ms: values
                .long(OFFSETS_RETENTION_CHECK_INTERVAL_MS)?,
            producer_id_expiration_ms,
            log_defaults,
            topic_defaults,
            values,
            static_props: props.clone(),
            unknown_keys,
            warnings,
        })
    }

    /// Whether this node plays the broker role.
    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Broker)
    }

    /// Whether this node plays the controller role.
    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }

    /// The listeners Kafka clients connect to: every listener that is not a controller listener.
    /// The server binds each of them.
    pub fn broker_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// The listeners of the controller quorum among [`listeners`](Self::listeners).
    pub fn controller_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| self.controller_listener_names.contains(&l.name))
    }

    /// The address advertised for the broker listener `listener_name` (any case): what a client
    /// that came in through that listener is told this broker is at. `None` for an unknown or
    /// controller listener, or one `advertised.listeners` leaves out.
    pub fn advertised_for(&self, listener_name: &str) -> Option<(&str, u16)> {
        let name = listener_name.to_uppercase();
        self.advertised_listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| (l.host.as_str(), l.port))
    }

    /// The topic defaults this configuration gives, to resolve and describe topics with.
    pub fn topic_defaults(&self) -> &TopicDefaults {
        &self.topic_defaults
    }

    /// Resolves a topic's settings from its overrides (CreateTopics configs, AlterConfigs) over
    /// this broker's defaults.
    pub fn topic_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicConfigError> {
        self.topic_defaults.resolve(overrides)
    }

    /// Supplied keys this broker does not know, sorted. Kafka logs and ignores such keys; so
    /// should the caller.
    pub fn unknown_keys(&self) -> &[String] {
        &self.unknown_keys
    }

    /// Suspicious but accepted settings, for the caller to log (Kafka logs them as errors or
    /// warnings and starts anyway).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every key that was set (file, `--set`, environment), with its raw value.
    pub fn static_props(&self) -> &BTreeMap<String, String> {
        &self.static_props
    }

    pub(crate) fn values(&self) -> &Values {
        &self.values
    }
}
