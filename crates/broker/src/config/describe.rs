//! What DescribeConfigs returns: one [`ConfigEntry`] per key with its value rendered as Kafka
//! renders it, where that value comes from ([`ConfigSource`]), its type ([`ConfigType`]) and its
//! synonyms, highest precedence first.
//!
//! Broker resource ([`BrokerConfig::describe_broker`]): every supported broker key, its value
//! (`None` for an unset key without default, like `log.retention.ms`), `STATIC_BROKER_CONFIG` when
//! the properties file, a `--set` or a `RIVULET_*` variable gave it, `DEFAULT_CONFIG` otherwise;
//! keys Kafka would not know either are listed like Kafka lists them (sensitive, type unknown, no
//! value). Every broker entry is read-only: no broker key can be changed at run time yet.
//!
//! Topic resource ([`describe_topic`]): every supported topic key with its effective value;
//! `DYNAMIC_TOPIC_CONFIG` for a topic override, else `STATIC_BROKER_CONFIG` when a broker synonym
//! (`log.retention.hours` for `retention.ms`, ...) was set, else `DEFAULT_CONFIG`. The synonyms list
//! the override, then each statically set broker synonym, then each broker synonym's default.

use std::collections::BTreeMap;

use super::broker::BrokerConfig;
use super::def::Value;
use super::topic_config::{TopicDefaults, TOPIC_KEYS};

/// Where a value comes from: Kafka's DescribeConfigs `ConfigSource` (int8 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigSource {
    /// Source unknown.
    Unknown = 0,
    /// A per-topic override (`DYNAMIC_TOPIC_CONFIG`).
    DynamicTopicConfig = 1,
    /// A dynamic per-broker setting (`DYNAMIC_BROKER_CONFIG`); not produced yet.
    DynamicBrokerConfig = 2,
    /// A dynamic cluster-wide default (`DYNAMIC_DEFAULT_BROKER_CONFIG`); not produced yet.
    DynamicDefaultBrokerConfig = 3,
    /// Set in the broker's static configuration: file, `--set` or environment
    /// (`STATIC_BROKER_CONFIG`).
    StaticBrokerConfig = 4,
    /// The built-in default (`DEFAULT_CONFIG`).
    DefaultConfig = 5,
    /// A broker logger level (`DYNAMIC_BROKER_LOGGER_CONFIG`); not produced yet.
    DynamicBrokerLoggerConfig = 6,
    /// A client metrics subscription (`CLIENT_METRICS_CONFIG`); not produced yet.
    ClientMetricsConfig = 7,
    /// A group override (`GROUP_CONFIG`); not produced yet.
    GroupConfig = 8,
}

impl ConfigSource {
    /// The wire code.
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// A key's type: Kafka's DescribeConfigs v3+ `ConfigType` (int8 on the wire), which is also the
/// type the key's values parse as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigType {
    /// Not known (a key this broker does not define).
    Unknown = 0,
    /// `true` or `false`, any case.
    Boolean = 1,
    /// A string.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 16-bit integer.
    Short = 4,
    /// A 64-bit integer.
    Long = 5,
    /// A double.
    Double = 6,
    /// A comma-separated list.
    List = 7,
    /// A Java class name.
    Class = 8,
    /// A secret.
    Password = 9,
}

impl ConfigType {
    /// The wire code.
    pub fn id(self) -> i8 {
        self as i8
    }

    /// Kafka's name of the type, as its error messages spell it (`INT`, `LONG`, ...).
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Unknown => "UNKNOWN",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// One synonym of a described key: a key that sets the same thing, with its value and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The synonym's key, e.g. `log.retention.hours` for `retention.ms`.
    pub name: String,
    /// Its value as configured (or its rendered default); `None` when sensitive.
    pub value: Option<String>,
    /// Where that value comes from.
    pub source: ConfigSource,
}

/// One entry of a DescribeConfigs result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// The effective value as Kafka renders it; `None` for an unset key without default or a
    /// sensitive one.
    pub value: Option<String>,
    /// Where the effective value comes from.
    pub source: ConfigSource,
    /// Whether AlterConfigs may change it.
    pub read_only: bool,
    /// Whether the value is a secret (never shown).
    pub is_sensitive: bool,
    /// The key's type.
    pub config_type: ConfigType,
    /// The key's documentation; the request handler drops it unless asked for
    /// (`IncludeDocumentation`).
    pub documentation: Option<String>,
    /// Synonyms, highest precedence first; the handler drops them unless asked for
    /// (`IncludeSynonyms`).
    pub synonyms: Vec<ConfigSynonym>,
}

impl BrokerConfig {
    /// DescribeConfigs for this broker's resource: every supported broker key (sorted by name),
    /// then every unknown key that was supplied, as Kafka lists them.
    pub fn describe_broker(&self) -> Vec<ConfigEntry> {
        let mut entries: Vec<ConfigEntry> = super::broker::BROKER_KEYS
            .iter()
            .map(|def| {
                let raw = self.static_props().get(def.name);
                let default = def.default_value();
                let mut synonyms = Vec::new();
                if let Some(raw) = raw {
                    synonyms.push(ConfigSynonym {
                        name: def.name.to_string(),
                        value: Some(raw.clone()),
                        source: ConfigSource::StaticBrokerConfig,
                    });
                }
                if let Some(default) = &default {
                    synonyms.push(ConfigSynonym {
                        name: def.name.to_string(),
                        value: Some(default.render()),
                        source: ConfigSource::DefaultConfig,
                    });
                }
                let value = self.values().get(def.name).map(Value::render);
                ConfigEntry {
                    name: def.name.to_string(),
                    value,
                    source: if raw.is_some() {
                        ConfigSource::StaticBrokerConfig
                    } else {
                        ConfigSource::DefaultConfig
                    },
                    read_only: true,
                    is_sensitive: false,
                    config_type: def.ty,
                    documentation: Some(def.doc.to_string()),
                    synonyms,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for name in self.unknown_keys() {
            entries.push(ConfigEntry {
                name: name.clone(),
                value: None,
                source: ConfigSource::StaticBrokerConfig,
                read_only: true,
                is_sensitive: true,
                config_type: ConfigType::Unknown,
                documentation: None,
                synonyms: vec![ConfigSynonym {
                    name: name.clone(),
                    value: None,
                    source: ConfigSource::StaticBrokerConfig,
                }],
            });
        }
        entries
    }
}

/// DescribeConfigs for a topic: every supported topic key (sorted by name) with its effective
/// value given the broker's defaults and the topic's overrides. Overrides that do not parse (they
/// should have been rejected when set) are shown as stored; unknown override keys are ignored.
pub fn describe_topic(
    defaults: &TopicDefaults,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let mut entries: Vec<ConfigEntry> = TOPIC_KEYS
        .iter()
        .map(|key| {
            let default = defaults.entry(key.def.name);
            let mut synonyms: Vec<ConfigSynonym> = Vec::new();
            let value = match overrides.get(key.def.name) {
                Some(raw) => {
                    let rendered = key
                        .def
                        .parse(raw)
                        .map(|v| v.render())
                        .unwrap_or_else(|_| raw.clone());
                    synonyms.push(ConfigSynonym {
                        name: key.def.name.to_string(),
                        value: Some(rendered.clone()),
                        source: ConfigSource::DynamicTopicConfig,
                    });
                    Some(rendered)
                }
                None => default.map(|d| d.value.render()),
            };
            if let Some(default) = default {
                synonyms.extend(default.synonyms.iter().cloned());
            }
            let source = synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source);
            ConfigEntry {
                name: key.def.name.to_string(),
                value,
                source,
                read_only: false,
                is_sensitive: false,
                config_type: key.def.ty,
                documentation: Some(key.def.doc.to_string()),
                synonyms,
            }
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}
