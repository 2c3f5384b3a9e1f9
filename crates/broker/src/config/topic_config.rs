//! Topic configs: the per-topic settings (`retention.ms`, `segment.bytes`, ...) as CreateTopics
//! and AlterConfigs carry them, validated as Kafka's `LogConfig` validates them, resolved against
//! the broker's defaults into a [`TopicConfig`] whose [`LogConfig`] the storage engine obeys.
//!
//! ```text
//! topic override (CreateTopics / AlterConfigs)          retention.ms=3600000
//!   else the first broker synonym that has a value      log.retention.ms, log.retention.minutes,
//!        (set statically, or its default)                log.retention.hours (168 -> 604800000)
//!   else Kafka's topic default
//! ```
//!
//! The broker synonyms are Kafka's (`ServerTopicConfigSynonyms`), in Kafka's order; hours and
//! minutes are converted to milliseconds. An unknown key or an invalid value is a
//! [`TopicConfigError`], which the broker answers with `INVALID_CONFIG`.
//!
//! Some settings are stored but not acted on yet (compression on the broker side,
//! preallocation, delayed file deletion, segment jitter): they are accepted, described and kept so
//! that clients and tools see Kafka's behaviour, and will take effect when the features land.

use std::collections::BTreeMap;

use rivulet_storage::batch::TimestampType;
use rivulet_storage::LogConfig;

use super::def::{Check, KeyDef, Value, Values, WrongType};
use super::describe::{ConfigSource, ConfigSynonym, ConfigType};
use super::{ConfigError, InvalidValue};

/// A topic config was refused. Every variant but `Internal` is Kafka's `INVALID_CONFIG` (40).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    /// A key that is not a topic config. Kafka: `INVALID_CONFIG`.
    #[error("Unknown topic config name: {0}")]
    UnknownKey(String),
    /// A value that does not parse or is out of range. Kafka: `INVALID_CONFIG`.
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    /// `min.compaction.lag.ms` above `max.compaction.lag.ms`. Kafka: `INVALID_CONFIG`.
    #[error(
        "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms \
         ({max})"
    )]
    CompactionLagConflict {
        /// The effective `min.compaction.lag.ms`.
        min: i64,
        /// The effective `max.compaction.lag.ms`.
        max: i64,
    },
    /// A bug in this module: a key read with the wrong type. Kafka: `UNKNOWN_SERVER_ERROR`.
    #[error("internal error: topic config {0} read with the wrong type")]
    Internal(&'static str),
}

impl From<WrongType> for TopicConfigError {
    fn from(e: WrongType) -> Self {
        TopicConfigError::Internal(e.0)
    }
}

/// `cleanup.policy`: the storage crate's type, which the log and its cleaner obey.
pub use rivulet_storage::config::CleanupPolicy;

/// `compression.type`: the codec the broker stores batches in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerCompressionType {
    /// Keep the producer's codec (the default).
    Producer,
    /// Store uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl BrokerCompressionType {
    const ALL: [BrokerCompressionType; 6] = [
        BrokerCompressionType::Uncompressed,
        BrokerCompressionType::Zstd,
        BrokerCompressionType::Lz4,
        BrokerCompressionType::Snappy,
        BrokerCompressionType::Gzip,
        BrokerCompressionType::Producer,
    ];

    /// Kafka's name (`producer`, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            BrokerCompressionType::Producer => "producer",
            BrokerCompressionType::Uncompressed => "uncompressed",
            BrokerCompressionType::Gzip => "gzip",
            BrokerCompressionType::Snappy => "snappy",
            BrokerCompressionType::Lz4 => "lz4",
            BrokerCompressionType::Zstd => "zstd",
        }
    }

    /// The type with exactly this name.
    pub fn from_name(name: &str) -> Option<BrokerCompressionType> {
        BrokerCompressionType::ALL
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// Every setting of one topic, resolved from overrides and broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// What the partition logs obey (`segment.*`, `retention.*`, `flush.*`,
    /// `max.message.bytes`, `message.timestamp.*`, `index.interval.bytes`, the compaction
    /// settings below, and the broker's `producer.id.expiration.ms`).
    pub log: LogConfig,
    /// `cleanup.policy` (delete).
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type` (producer).
    pub compression_type: BrokerCompressionType,
    /// `compression.gzip.level` (-1: the library default).
    pub compression_gzip_level: i32,
    /// `compression.lz4.level` (9).
    pub compression_lz4_level: i32,
    /// `compression.zstd.level` (3).
    pub compression_zstd_level: i32,
    /// `delete.retention.ms` (1 day): how long compaction keeps tombstones.
    pub delete_retention_ms: i64,
    /// `file.delete.delay.ms` (60000): delay before a deleted segment's files are removed.
    pub file_delete_delay_ms: i64,
    /// `max.compaction.lag.ms` (`i64::MAX`).
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio` (0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms` (0).
    pub min_compaction_lag_ms: i64,
    /// `min.insync.replicas` (1): replicas that must have a write for `acks=all` to succeed.
    pub min_insync_replicas: i32,
    /// `preallocate` (false).
    pub preallocate: bool,
    /// `segment.jitter.ms` (0): random amount subtracted from `segment.ms` per segment.
    pub segment_jitter_ms: i64,
    /// `unclean.leader.election.enable` (false): whether an out-of-sync replica may lead.
    pub unclean_leader_election_enable: bool,
}

/// A broker key that provides a topic key's default, with the factor converting its unit to the
/// topic key's (hours and minutes to milliseconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

const fn same(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}
const HOURS: i64 = 60 * 60 * 1000;
const MINUTES: i64 = 60 * 1000;

/// A topic key: its definition and its broker synonyms, highest precedence first.
#[derive(Debug)]
pub(crate) struct TopicKey {
    pub def: KeyDef,
    pub synonyms: &'static [Synonym],
}

pub(crate) const CLEANUP_POLICY: &str = "cleanup.policy";
pub(crate) const COMPRESSION_TYPE: &str = "compression.type";
pub(crate) const COMPRESSION_GZIP_LEVEL: &str = "compression.gzip.level";
pub(crate) const COMPRESSION_LZ4_LEVEL: &str = "compression.lz4.level";
pub(crate) const COMPRESSION_ZSTD_LEVEL: &str = "compression.zstd.level";
pub(crate) const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub(crate) const FILE_DELETE_DELAY_MS: &str = "file.delete.delay.ms";
pub(crate) const FLUSH_MESSAGES: &str = "flush.messages";
pub(crate) const FLUSH_MS: &str = "flush.ms";
pub(crate) const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
pub(crate) const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
pub(crate) const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub(crate) const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
pub(crate) const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub(crate) const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub(crate) const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub(crate) const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub(crate) const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub(crate) const PREALLOCATE: &str = "preallocate";
pub(crate) const RETENTION_BYTES: &str = "retention.bytes";
pub(crate) const RETENTION_MS: &str = "retention.ms";
pub(crate) const SEGMENT_BYTES: &str = "segment.bytes";
pub(crate) const SEGMENT_INDEX_BYTES: &str = "segment.index.bytes";
pub(crate) const SEGMENT_JITTER_MS: &str = "segment.jitter.ms";
pub(crate) const SEGMENT_MS: &str = "segment.ms";
pub(crate) const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

pub(crate) const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
pub(crate) const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub(crate) const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];

/// `LogConfig.DEFAULT_SEGMENT_BYTES`'s minimum since Kafka 4.0 (KIP-1030): 1 MiB.
pub(crate) const MIN_SEGMENT_BYTES: i64 = 1024 * 1024;
/// zstd's lowest (fastest, negative) level, as zstd-jni reports it.
pub(crate) const ZSTD_MIN_LEVEL: i64 = -131072;

const fn key(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    check: Check,
    doc: &'static str,
    synonyms: &'static [Synonym],
) -> TopicKey {
    TopicKey {
        def: KeyDef {
            name,
            ty,
            default: Some(default),
            check,
            doc,
        },
        synonyms,
    }
}

/// Every supported topic key, sorted by name.
pub(crate) static TOPIC_KEYS: &[TopicKey] = &[
    key(
        CLEANUP_POLICY,
        ConfigType::List,
        "delete",
        Check::List {
            allowed: CLEANUP_POLICIES,
            allow_empty: true,
        },
        "The retention policy for old segments: delete (by time and size), compact (keep the latest \
         record per key; not implemented yet, stored only), or both.",
        &[same("log.cleanup.policy")],
    ),
    key(
        COMPRESSION_GZIP_LEVEL,
        ConfigType::Int,
        "-1",
        Check::GzipLevel,
        "The gzip level used when compression.type is gzip.",
        &[same("compression.gzip.level")],
    ),
    key(
        COMPRESSION_LZ4_LEVEL,
        ConfigType::Int,
        "9",
        Check::Between(1, 17),
        "The lz4 level used when compression.type is lz4.",
        &[same("compression.lz4.level")],
    ),
    key(
        COMPRESSION_TYPE,
        ConfigType::String,
        "producer",
        Check::OneOf(COMPRESSION_TYPES),
        "The codec batches are stored in: producer keeps the producer's, uncompressed, gzip, \
         snappy, lz4 or zstd recompress (stored only: batches are kept as produced for now).",
        &[same("compression.type")],
    ),
    key(
        COMPRESSION_ZSTD_LEVEL,
        ConfigType::Int,
        "3",
        Check::Between(ZSTD_MIN_LEVEL, 22),
        "The zstd level used when compression.type is zstd.",
        &[same("compression.zstd.level")],
    ),
    key(
        DELETE_RETENTION_MS,
        ConfigType::Long,
        "86400000",
        Check::AtLeast(0),
        "How long a compacted topic keeps delete markers (tombstones).",
        &[same("log.cleaner.delete.retention.ms")],
    ),
    key(
        FILE_DELETE_DELAY_MS,
        ConfigType::Long,
        "60000",
        Check::AtLeast(0),
        "How long to wait before removing a deleted segment's files.",
        &[same("log.segment.delete.delay.ms")],
    ),
    key(
        FLUSH_MESSAGES,
        ConfigType::Long,
        "9223372036854775807",
        Check::AtLeast(1),
        "Force an fsync after this many messages (the default leaves it to the OS and to \
         replication).",
        &[same("log.flush.interval.messages")],
    ),
    key(
        FLUSH_MS,
        ConfigType::Long,
        "9223372036854775807",
        Check::AtLeast(0),
        "Force an fsync when the oldest unflushed message is this old, in milliseconds.",
        &[
            same("log.flush.interval.ms"),
            same("log.flush.scheduler.interval.ms"),
        ],
    ),
    key(
        INDEX_INTERVAL_BYTES,
        ConfigType::Int,
        "4096",
        Check::AtLeast(0),
        "Bytes appended between two offset-index entries.",
        &[same("log.index.interval.bytes")],
    ),
    key(
        MAX_COMPACTION_LAG_MS,
        ConfigType::Long,
        "9223372036854775807",
        Check::AtLeast(1),
        "The longest a record stays ineligible for compaction.",
        &[same("log.cleaner.max.compaction.lag.ms")],
    ),
    key(
        MAX_MESSAGE_BYTES,
        ConfigType::Int,
        "1048588",
        Check::AtLeast(0),
        "The largest record batch (after compression) this topic accepts.",
        &[same("message.max.bytes")],
    ),
    key(
        MESSAGE_TIMESTAMP_AFTER_MAX_MS,
        ConfigType::Long,
        "3600000",
        Check::AtLeast(0),
        "How far ahead of the broker's clock a CreateTime timestamp may be, in milliseconds.",
        &[same("log.message.timestamp.after.max.ms")],
    ),
    key(
        MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
        ConfigType::Long,
        "9223372036854775807",
        Check::AtLeast(0),
        "How far behind the broker's clock a CreateTime timestamp may be, in milliseconds.",
        &[same("log.message.timestamp.before.max.ms")],
    ),
    key(
        MESSAGE_TIMESTAMP_TYPE,
        ConfigType::String,
        "CreateTime",
        Check::OneOf(TIMESTAMP_TYPES),
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the \
         broker's clock.",
        &[same("log.message.timestamp.type")],
    ),
    key(
        MIN_CLEANABLE_DIRTY_RATIO,
        ConfigType::Double,
        "0.5",
        Check::DoubleBetween(0.0, 1.0),
        "The share of a log's uncompacted bytes above which it is compacted.",
        &[same("log.cleaner.min.cleanable.ratio")],
    ),
    key(
        MIN_COMPACTION_LAG_MS,
        ConfigType::Long,
        "0",
        Check::AtLeast(0),
        "The shortest time a record stays uncompacted.",
        &[same("log.cleaner.min.compaction.lag.ms")],
    ),
    key(
        MIN_INSYNC_REPLICAS,
        ConfigType::Int,
        "1",
        Check::AtLeast(1),
        "With acks=all, the number of in-sync replicas that must have a write for it to succeed.",
        &[same("min.insync.replicas")],
    ),
    key(
        PREALLOCATE,
        ConfigType::Boolean,
        "false",
        Check::None,
        "Whether new segment files are preallocated.",
        &[same("log.preallocate")],
    ),
    key(
        RETENTION_BYTES,
        ConfigType::Long,
        "-1",
        Check::None,
        "Delete the oldest segments while a partition is larger than this; -1 for no limit.",
        &[same("log.retention.bytes")],
    ),
    key(
        RETENTION_MS,
        ConfigType::Long,
        "604800000",
        Check::AtLeast(-1),
        "Delete segments whose newest record is older than this, in milliseconds; -1 keeps them \
         forever.",
        &[
            same("log.retention.ms"),
            Synonym {
                name: "log.retention.minutes",
                factor: MINUTES,
            },
            Synonym {
                name: "log.retention.hours",
                factor: HOURS,
            },
        ],
    ),
    key(
        SEGMENT_BYTES,
        ConfigType::Int,
        "1073741824",
        Check::AtLeast(MIN_SEGMENT_BYTES),
        "The size at which the active segment is rolled.",
        &[same("log.segment.bytes")],
    ),
    key(
        SEGMENT_INDEX_BYTES,
        ConfigType::Int,
        "10485760",
        Check::AtLeast(4),
        "The preallocated size of each offset and time index; a full index rolls the segment.",
        &[same("log.index.size.max.bytes")],
    ),
    key(
        SEGMENT_JITTER_MS,
        ConfigType::Long,
        "0",
        Check::AtLeast(0),
        "The largest random amount subtracted from segment.ms (stored only).",
        &[
            same("log.roll.jitter.ms"),
            Synonym {
                name: "log.roll.jitter.hours",
                factor: HOURS,
            },
        ],
    ),
    key(
        SEGMENT_MS,
        ConfigType::Long,
        "604800000",
        Check::AtLeast(1),
        "The age at which the active segment is rolled even if not full, in milliseconds.",
        &[
            same("log.roll.ms"),
            Synonym {
                name: "log.roll.hours",
                factor: HOURS,
            },
        ],
    ),
    key(
        UNCLEAN_LEADER_ELECTION_ENABLE,
        ConfigType::Boolean,
        "false",
        Check::None,
        "Whether a replica outside the ISR may become leader, at the cost of losing data.",
        &[same("unclean.leader.election.enable")],
    ),
];

fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.def.name == name)
}

/// The names of every supported topic config, sorted.
pub fn topic_config_names() -> impl Iterator<Item = &'static str> {
    TOPIC_KEYS.iter().map(|k| k.def.name)
}

/// A topic key's default on this broker, with the synonyms it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DefaultEntry {
    pub value: Value,
    pub synonyms: Vec<ConfigSynonym>,
}

/// The defaults the broker's configuration gives every topic key, from which a topic's overrides
/// are resolved. Built by [`BrokerConfig`](super::BrokerConfig); cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDefaults {
    entries: BTreeMap<&'static str, DefaultEntry>,
    producer_id_expiration_ms: i64,
}

fn convert(value: &Value, factor: i64) -> Value {
    match (value, factor) {
        (_, 1) => value.clone(),
        (Value::Int(v), f) => Value::Long(i64::from(*v).saturating_mul(f)),
        (Value::Long(v), f) => Value::Long(v.saturating_mul(f)),
        _ => value.clone(),
    }
}

impl TopicDefaults {
    /// Derives every topic key's default from the broker's parsed values (`broker`) and the keys
    /// set statically (`static_props`, for the synonyms' sources). A broker value that is not a
    /// valid topic value fails, naming the broker key.
    pub(crate) fn from_broker(
        broker: &Values,
        static_props: &BTreeMap<String, String>,
        broker_default: impl Fn(&str) -> Option<Value>,
        producer_id_expiration_ms: i64,
    ) -> Result<TopicDefaults, ConfigError> {
        let mut entries = BTreeMap::new();
        for key in TOPIC_KEYS {
            let found = key
                .synonyms
                .iter()
                .find_map(|s| broker.get(s.name).map(|v| (s, convert(v, s.factor))));
            let (value, from) = match found {
                Some((synonym, value)) => (value, Some(synonym.name)),
                None => (
                    key.def
                        .default_value()
                        .ok_or(ConfigError::Internal(key.def.name))?,
                    None,
                ),
            };
            let value = match (key.def.name, value) {
                // Kafka's KafkaConfig.logRetentionTimeMillis: any negative value means -1, and 0
                // is refused ("must be unlimited (-1) or, greater than or equal to 1").
                (RETENTION_MS, Value::Long(ms)) if ms < 0 => Value::Long(-1),
                (RETENTION_MS, Value::Long(0)) => {
                    let name = from.unwrap_or("log.retention.ms");
                    return Err(InvalidValue::new(
                        name,
                        static_props.get(name).map_or("0", String::as_str),
                        "log.retention.ms must be unlimited (-1) or, greater than or equal to 1",
                    )
                    .into());
                }
                (_, value) => value,
            };
            if let Err(reason) = key.def.validate(&value) {
                let name = from.unwrap_or(key.def.name);
                let raw = static_props
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| value.render());
                return Err(InvalidValue::new(name, raw, reason).into());
            }
            let mut synonyms = Vec::new();
            for synonym in key.synonyms {
                if let Some(raw) = static_props.get(synonym.name) {
                    synonyms.push(ConfigSynonym {
                        name: synonym.name.to_string(),
                        value: Some(raw.clone()),
                        source: ConfigSource::StaticBrokerConfig,
                    });
                }
            }
            for synonym in key.synonyms {
                if let Some(default) = broker_default(synonym.name) {
                    synonyms.push(ConfigSynonym {
                        name: synonym.name.to_string(),
                        value: Some(default.render()),
                        source: ConfigSource::DefaultConfig,
                    });
                }
            }
            entries.insert(key.def.name, DefaultEntry { value, synonyms });
        }
        Ok(TopicDefaults {
            entries,
            producer_id_expiration_ms,
        })
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&DefaultEntry> {
        self.entries.get(name)
    }

    /// The default of topic key `name` as Kafka renders it, `None` for an unknown key.
    pub fn default_value(&self, name: &str) -> Option<String> {
        self.entries.get(name).map(|e| e.value.render())
    }

    /// Checks a topic's overrides (CreateTopics, including `validate_only`, and AlterConfigs):
    /// every key known, every value valid, and the combination consistent.
    pub fn validate(&self, overrides: &BTreeMap<String, String>) -> Result<(), TopicConfigError> {
        self.resolve(overrides).map(|_| ())
    }

    /// Resolves a topic's settings: each override if given, else this broker's default.
    pub fn resolve(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicConfigError> {
        let mut values = Values::default();
        for (name, entry) in &self.entries {
            values.set(name, Some(entry.value.clone()));
        }
        for (name, raw) in overrides {
            let key = topic_key(name).ok_or_else(|| TopicConfigError::UnknownKey(name.clone()))?;
            values.set(key.def.name, Some(key.def.parse(raw)?));
        }
        let config = build(&values, self.producer_id_expiration_ms)?;
        if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
            return Err(TopicConfigError::CompactionLagConflict {
                min: config.min_compaction_lag_ms,
                max: config.max_compaction_lag_ms,
            });
        }
        Ok(config)
    }
}

fn to_u64(name: &'static str, v: i64) -> Result<u64, WrongType> {
    u64::try_from(v).map_err(|_| WrongType(name))
}

fn to_usize(name: &'static str, v: i32) -> Result<usize, WrongType> {
    usize::try_from(v).map_err(|_| WrongType(name))
}

fn build(v: &Values, producer_id_expiration_ms: i64) -> Result<TopicConfig, WrongType> {
    let policies = v.list(CLEANUP_POLICY)?;
    let timestamp_type = match v.str(MESSAGE_TIMESTAMP_TYPE)? {
        "LogAppendTime" => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    let cleanup_policy = CleanupPolicy {
        delete: policies.iter().any(|p| p == "delete"),
        compact: policies.iter().any(|p| p == "compact"),
    };
    let log = LogConfig {
        segment_bytes: to_u64(SEGMENT_BYTES, i64::from(v.int(SEGMENT_BYTES)?))?,
        segment_ms: v.long(SEGMENT_MS)?,
        segment_index_bytes: to_usize(SEGMENT_INDEX_BYTES, v.int(SEGMENT_INDEX_BYTES)?)?,
        index_interval_bytes: to_u64(
            INDEX_INTERVAL_BYTES,
            i64::from(v.int(INDEX_INTERVAL_BYTES)?),
        )?,
        retention_ms: v.long(RETENTION_MS)?,
        retention_bytes: v.long(RETENTION_BYTES)?,
        flush_messages: v.long(FLUSH_MESSAGES)?,
        flush_ms: v.long(FLUSH_MS)?,
        max_message_bytes: to_usize(MAX_MESSAGE_BYTES, v.int(MAX_MESSAGE_BYTES)?)?,
        message_timestamp_type: timestamp_type,
        message_timestamp_before_max_ms: v.long(MESSAGE_TIMESTAMP_BEFORE_MAX_MS)?,
        message_timestamp_after_max_ms: v.long(MESSAGE_TIMESTAMP_AFTER_MAX_MS)?,
        producer_id_expiration_ms,
        cleanup_policy,
        delete_retention_ms: v.long(DELETE_RETENTION_MS)?,
        min_compaction_lag_ms: v.long(MIN_COMPACTION_LAG_MS)?,
        max_compaction_lag_ms: v.long(MAX_COMPACTION_LAG_MS)?,
        min_cleanable_dirty_ratio: v.double(MIN_CLEANABLE_DIRTY_RATIO)?,
    };
    Ok(TopicConfig {
        log,
        cleanup_policy,
        compression_type: BrokerCompressionType::from_name(v.str(COMPRESSION_TYPE)?)
            .ok_or(WrongType(COMPRESSION_TYPE))?,
        compression_gzip_level: v.int(COMPRESSION_GZIP_LEVEL)?,
        compression_lz4_level: v.int(COMPRESSION_LZ4_LEVEL)?,
        compression_zstd_level: v.int(COMPRESSION_ZSTD_LEVEL)?,
        delete_retention_ms: v.long(DELETE_RETENTION_MS)?,
        file_delete_delay_ms: v.long(FILE_DELETE_DELAY_MS)?,
        max_compaction_lag_ms: v.long(MAX_COMPACTION_LAG_MS)?,
        min_cleanable_dirty_ratio: v.double(MIN_CLEANABLE_DIRTY_RATIO)?,
        min_compaction_lag_ms: v.long(MIN_COMPACTION_LAG_MS)?,
        min_insync_replicas: v.int(MIN_INSYNC_REPLICAS)?,
        preallocate: v.bool(PREALLOCATE)?,
        segment_jitter_ms: v.long(SEGMENT_JITTER_MS)?,
        unclean_leader_election_enable: v.bool(UNCLEAN_LEADER_ELECTION_ENABLE)?,
    })
}
