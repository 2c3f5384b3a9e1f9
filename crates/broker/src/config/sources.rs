//! Where configuration comes from: [`ConfigSources`], the mapping of `RIVULET_*` environment
//! variables to keys, and `--set key=value` arguments.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::properties::{decode_text, parse_properties};
use super::ConfigError;

/// The prefix of environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "RIVULET_";

/// Everything a [`BrokerConfig`](super::BrokerConfig) is built from. Precedence, lowest first:
/// built-in defaults, `file`, `overrides`, `env`.
///
/// The environment is passed in rather than read, so that tests are hermetic;
/// [`ConfigSources::from_process`] fills it from the real process for the binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// A Java properties file (`rivulet server --config FILE`).
    pub file: Option<PathBuf>,
    /// `--set key=value` overrides, in command-line order (a later one wins).
    pub overrides: Vec<(String, String)>,
    /// Environment variables as `(NAME, value)`; only `RIVULET_*` ones are used (see
    /// [`env_var_to_key`]).
    pub env: Vec<(String, String)>,
    /// This machine's host name, advertised in place of a wildcard listener host; `localhost`
    /// when `None`.
    pub hostname: Option<String>,
}

impl ConfigSources {
    /// Sources for the running process: `file` and `overrides` as given on the command line, the
    /// process's `RIVULET_*` environment variables and the system host name.
    pub fn from_process(file: Option<PathBuf>, overrides: Vec<(String, String)>) -> ConfigSources {
        ConfigSources {
            file,
            overrides,
            env: process_env(),
            hostname: system_hostname(),
        }
    }

    /// Reads the file and merges every source into one map (later sources win).
    pub(crate) fn collect(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut props = BTreeMap::new();
        if let Some(path) = &self.file {
            let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            let pairs =
                parse_properties(&decode_text(&bytes)).map_err(|source| ConfigError::Syntax {
                    path: path.clone(),
                    source,
                })?;
            props.extend(pairs);
        }
        props.extend(self.overrides.iter().cloned());
        props.extend(
            self.env
                .iter()
                .filter_map(|(name, value)| env_var_to_key(name).map(|key| (key, value.clone()))),
        );
        Ok(props)
    }
}

/// The `RIVULET_*` variables of this process. Names that are not UTF-8 cannot be configuration
/// keys and are skipped; values that are not UTF-8 are converted lossily.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The system host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`), if one can be found.
pub fn system_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Maps an environment variable name to the configuration key it sets, `None` when it does not
/// start with `RIVULET_` or names nothing.
///
/// After the prefix the name is lower-cased and runs of underscores are translated as the
/// Apache Kafka container image translates `KAFKA_*` variables: `_` is `.`, `__` is `_`, `___`
/// is `-` (longer runs combine, greedily). So `RIVULET_LOG_DIRS` sets `log.dirs`,
/// `RIVULET_LISTENER_SECURITY_PROTOCOL_MAP` sets `listener.security.protocol.map`; no supported
/// key contains `_` or `-`, but a future one such as `a_b` would be `RIVULET_A__B`.
pub fn env_var_to_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let mut key = String::with_capacity(rest.len());
    let mut run = 0usize;
    let flush = |key: &mut String, run: &mut usize| {
        while *run >= 3 {
            key.push('-');
            *run -= 3;
        }
        match *run {
            2 => key.push('_'),
            1 => key.push('.'),
            _ => {}
        }
        *run = 0;
    };
    for c in rest.chars() {
        if c == '_' {
            run += 1;
        } else {
            flush(&mut key, &mut run);
            key.extend(c.to_lowercase());
        }
    }
    flush(&mut key, &mut run);
    (!key.is_empty()).then_some(key)
}

/// The environment variable that sets `key`: the inverse of [`env_var_to_key`].
pub fn key_to_env_var(key: &str) -> String {
    let mut name = String::from(ENV_PREFIX);
    for c in key.chars() {
        match c {
            '.' => name.push('_'),
            '_' => name.push_str("__"),
            '-' => name.push_str("___"),
            c => name.extend(c.to_uppercase()),
        }
    }
    name
}

/// Parses a `--set key=value` argument: split at the first `=`, the key trimmed and non-empty,
/// the value kept as given (it is trimmed like any value when parsed).
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(ConfigError::BadOverride(arg.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_keys() {
        assert_eq!(
            env_var_to_key("RIVULET_LOG_DIRS").as_deref(),
            Some("log.dirs")
        );
        assert_eq!(
            env_var_to_key("RIVULET_LISTENER_SECURITY_PROTOCOL_MAP").as_deref(),
            Some("listener.security.protocol.map")
        );
        assert_eq!(
            env_var_to_key("RIVULET_NODE_ID").as_deref(),
            Some("node.id")
        );
        assert_eq!(env_var_to_key("RIVULET_A__B").as_deref(), Some("a_b"));
        assert_eq!(env_var_to_key("RIVULET_A___B").as_deref(), Some("a-b"));
        assert_eq!(env_var_to_key("RIVULET_A____B").as_deref(), Some("a-.b"));
        assert_eq!(env_var_to_key("RIVULET_"), None);
        assert_eq!(env_var_to_key("KAFKA_LOG_DIRS"), None);
        assert_eq!(env_var_to_key("rivulet_log_dirs"), None);
        for key in ["log.dirs", "a_b.c", "x-y.z", "node.id"] {
            assert_eq!(
                env_var_to_key(&key_to_env_var(key)).as_deref(),
                Some(key),
                "{key}"
            );
        }
        assert_eq!(
            key_to_env_var("log.retention.ms"),
            "RIVULET_LOG_RETENTION_MS"
        );
    }

    #[test]
    fn overrides_parse() {
        assert_eq!(
            parse_override("log.dirs=/a,/b").ok(),
            Some(("log.dirs".to_string(), "/a,/b".to_string()))
        );
        assert_eq!(
            parse_override(" k =a=b").ok(),
            Some(("k".to_string(), "a=b".to_string()))
        );
        assert_eq!(
            parse_override("k=").ok(),
            Some(("k".to_string(), String::new()))
        );
        assert!(parse_override("novalue").is_err());
        assert!(parse_override("=v").is_err());
    }
}
