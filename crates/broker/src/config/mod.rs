//! The node's configuration, under Apache Kafka's key names, defaults and validation rules, so
//! that a Kafka `server.properties` works here and an operator's knowledge carries over.
//!
//! # Sources and precedence
//!
//! [`BrokerConfig::load`] merges, each overriding the previous:
//!
//! ```text
//! 1. built-in defaults                        (Kafka's, except the ones listed below)
//! 2. the properties file                      rivulet server --config server.properties
//! 3. --set key=value, in command-line order   rivulet server --set log.dirs=/data
//! 4. RIVULET_* environment variables          RIVULET_LOG_DIRS=/data
//! ```
//!
//! The file is Java `.properties` syntax, read as `java.util.Properties` reads it
//! ([`properties`]): `#`/`!` comments, `key=value`, `key: value` or `key value`, `\` line
//! continuations, `\uXXXX` and `\` escapes. An environment variable `RIVULET_<KEY>` sets `<key>`
//! lower-cased with `_` read as `.` (`RIVULET_LOG_RETENTION_HOURS` sets `log.retention.hours`);
//! `__` stands for `_` and `___` for `-`, as in the Kafka container image's `KAFKA_*` variables
//! ([`env_var_to_key`]). The environment is handed to `load` in [`ConfigSources`], never read
//! behind the caller's back; [`ConfigSources::from_process`] reads it for the binary.
//!
//! Unknown keys are accepted and returned by [`BrokerConfig::unknown_keys`] for the caller to
//! warn about, as Kafka logs "supplied but not used" keys. An invalid value (not a number, out of
//! Kafka's range, not one of the allowed strings) or an inconsistent combination (an advertised
//! listener that is not a listener, this node missing from the quorum, ...) is a [`ConfigError`]
//! naming the key and the value.
//!
//! # Defaults that differ from Kafka's
//!
//! Chosen so that `rivulet server` with no configuration runs a single combined node on
//! loopback:
//!
//! | key | Rivulet | Kafka 4.x |
//! |---|---|---|
//! | `node.id` | `1` | none (required) |
//! | `process.roles` | `broker,controller` | none (required) |
//! | `listeners` | `PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093` | `PLAINTEXT://:9092` |
//! | `listener.security.protocol.map` | Kafka's plus `CONTROLLER:PLAINTEXT` | Kafka's four |
//! | `controller.listener.names` | `CONTROLLER` | none (required) |
//! | `controller.quorum.voters` | `1@127.0.0.1:9093` | empty |
//! | `log.dir` | `./data` | `/tmp/kafka-logs` |
//! | `max.connections` | `10000` | `2147483647` (unlimited); a cap keeps a connection flood from exhausting file descriptors |
//!
//! `cluster.id` is a Rivulet key (Kafka keeps the cluster id in `meta.properties`).
//!
//! # Listeners
//!
//! Every listener not named in `controller.listener.names` serves Kafka clients
//! ([`BrokerConfig::broker_listeners`]); a client is told the advertised address of the listener
//! it came through ([`BrokerConfig::advertised_for`]). A listener whose host is empty or
//! `0.0.0.0` binds every interface; when `advertised.listeners` is not set it is advertised under
//! [`ConfigSources::hostname`] (Kafka uses the canonical host name for an empty host and refuses
//! `0.0.0.0`). An explicit advertised `0.0.0.0` is refused, as in Kafka.
//!
//! # Small deliberate differences from Kafka's checks
//!
//! - `default.replication.factor`, `broker.heartbeat.interval.ms` and
//!   `broker.session.timeout.ms` must be at least 1, `group.initial.rebalance.delay.ms` at least
//!   0 (Kafka checks none of them); `min.cleanable.dirty.ratio` refuses `NaN`.
//! - Listener names in `controller.listener.names` are upper-cased like every other listener
//!   name (Kafka compares them as written).
//! - Duplicate voter ids and `0.0.0.0` voters are refused when the configuration is loaded.
//! - Broker describe entries are all read-only: no broker key can be changed at run time yet.
//!
//! # Topics
//!
//! [`TopicDefaults`] (from [`BrokerConfig::topic_defaults`]) resolves a topic's overrides into a
//! [`TopicConfig`], whose `log` field is the storage engine's [`rivulet_storage::LogConfig`], and
//! refuses unknown keys and invalid values with a [`TopicConfigError`] (`INVALID_CONFIG`).
//! [`describe_topic`] and [`BrokerConfig::describe_broker`] produce DescribeConfigs entries.
//!
//! Everything here is plain data and pure functions except [`BrokerConfig::load`], which reads
//! the properties file; a loaded `BrokerConfig` is immutable and can be shared across threads.

mod broker;
mod def;
pub mod describe;
pub mod listeners;
pub mod properties;
mod sources;
pub mod topic_config;

use std::path::PathBuf;

pub use broker::{broker_config_names, BrokerConfig, ProcessRole};
pub use describe::{describe_topic, ConfigEntry, ConfigSource, ConfigSynonym, ConfigType};
pub use listeners::{Listener, QuorumVoter, SecurityProtocol};
pub use properties::{parse_properties, PropertiesError};
pub use sources::{
    env_var_to_key, key_to_env_var, parse_override, process_env, system_hostname, ConfigSources,
    ENV_PREFIX,
};
pub use topic_config::{
    topic_config_names, BrokerCompressionType, CleanupPolicy, TopicConfig, TopicConfigError,
    TopicDefaults,
};

/// A value Kafka would refuse for a key: Kafka's `ConfigException(name, value, message)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid value {value} for configuration {key}: {reason}")]
pub struct InvalidValue {
    /// The key.
    pub key: String,
    /// The value as supplied.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

impl InvalidValue {
    pub(crate) fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> InvalidValue {
        InvalidValue {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Why the node's configuration cannot be loaded. All are fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The properties file cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The properties file is not valid properties syntax.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what.
        #[source]
        source: PropertiesError,
    },
    /// A `--set` argument without `key=value` shape.
    #[error("invalid --set argument `{0}`: expected key=value")]
    BadOverride(String),
    /// A value that does not parse, is out of range or is not one of the allowed ones.
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    /// A valid setting this broker cannot honour yet (a security protocol other than
    /// PLAINTEXT).
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Unsupported {
        /// The key.
        key: String,
        /// The offending value.
        value: String,
        /// What is not supported.
        reason: String,
    },
    /// Settings that are valid one by one but not together; the message says which.
    #[error("{0}")]
    Inconsistent(String),
    /// A bug in this module: a key read with the wrong type.
    #[error("internal error: configuration {0} read with the wrong type")]
    Internal(&'static str),
}

impl From<def::WrongType> for ConfigError {
    fn from(e: def::WrongType) -> Self {
        ConfigError::Internal(e.0)
    }
}

#[cfg(test)]
mod tests;
