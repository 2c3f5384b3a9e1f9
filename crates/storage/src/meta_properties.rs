//! `meta.properties`: which cluster and node a log dir belongs to (Kafka's KRaft format,
//! version 1).
//!
//! ```text
//! #Written by Rivulet
//! version=1
//! cluster.id=MkU3OEVBNTcwNTJENDM2Qk
//! node.id=1
//! directory.id=...
//! ```
//!
//! A node refuses to start on a dir formatted for another node or cluster, so a misplaced
//! volume cannot mix two clusters' data. Written once, atomically, before anything else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checkpoint::write_atomically;

/// File name inside each log dir.
pub const META_PROPERTIES: &str = "meta.properties";

/// The identity a log dir carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `cluster.id`.
    pub cluster_id: String,
    /// `node.id`.
    pub node_id: i32,
    /// `directory.id`: this dir's own random id.
    pub directory_id: String,
}

/// Why the log dirs cannot be used by this node.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a version-1 `meta.properties`.
    #[error("{path} is not a valid meta.properties: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The dir belongs to another node.
    #[error(
        "Stored node id {stored} in {path} doesn't match the configured node.id {configured}. If \
         you moved your data, make sure your configured node id matches. If you intend to create \
         a new node, you should remove all data in your data directories."
    )]
    NodeIdMismatch {
        /// The file.
        path: PathBuf,
        /// The id stored there.
        stored: i32,
        /// `node.id`.
        configured: i32,
    },
    /// The dir belongs to another cluster.
    #[error(
        "Invalid cluster.id in {path}: expected {expected}, but read {stored}. This directory \
         belongs to another cluster."
    )]
    ClusterIdMismatch {
        /// The file.
        path: PathBuf,
        /// The id this node expects.
        expected: String,
        /// The id stored there.
        stored: String,
    },
    /// No dir is formatted and formatting was not allowed.
    #[error(
        "No meta.properties found in {0} (run `rivulet format --cluster-id <id>` to initialize \
         the storage, or set cluster.id)"
    )]
    NotFormatted(PathBuf),
}

impl MetaProperties {
    /// Reads `dir/meta.properties`; `None` when the dir is not formatted.
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
        let path = dir.join(META_PROPERTIES);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(MetaPropertiesError::Io { path, source }),
        };
        let values: BTreeMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let invalid = |reason: &str| MetaPropertiesError::Invalid {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        if values.get("version") != Some(&"1") {
            return Err(invalid("version must be 1 (a KRaft-mode directory)"));
        }
        let cluster_id = values
            .get("cluster.id")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("cluster.id is missing"))?
            .to_string();
        let node_id = values
            .get("node.id")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("node.id is missing or not a number"))?;
        let directory_id = values.get("directory.id").unwrap_or(&"").to_string();
        Ok(Some(MetaProperties {
            cluster_id,
            node_id,
            directory_id,
        }))
    }

    /// Writes `dir/meta.properties` atomically (creating `dir`).
    pub fn write(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        std::fs::create_dir_all(dir).map_err(|source| MetaPropertiesError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(META_PROPERTIES);
        let text = format!(
            "#Written by Rivulet\nversion=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
            self.cluster_id, self.node_id, self.directory_id
        );
        write_atomically(&path, text.as_bytes()).map_err(|e| MetaPropertiesError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        })
    }
}

/// Checks that every dir in `dirs` belongs to node `node_id` of one cluster, formats the
/// unformatted ones when `format_with` gives a cluster id to use (the configured one, or a
/// fresh one for a zero-config single node), and returns the cluster id.
///
/// `expected` is the configured `cluster.id`, if any: every formatted dir must match it.
pub fn ensure_formatted(
    dirs: &[PathBuf],
    node_id: i32,
    expected: Option<&str>,
    format_with: Option<&dyn Fn() -> String>,
) -> Result<String, MetaPropertiesError> {
    let mut cluster_id: Option<String> = expected.map(str::to_owned);
    let mut unformatted = Vec::new();
    for dir in dirs {
        match MetaProperties::read(dir)? {
            None => unformatted.push(dir),
            Some(props) => {
                let path = dir.join(META_PROPERTIES);
                if props.node_id != node_id {
                    return Err(MetaPropertiesError::NodeIdMismatch {
                        path,
                        stored: props.node_id,
                        configured: node_id,
                    });
                }
                match &cluster_id {
                    Some(c) if *c != props.cluster_id => {
                        return Err(MetaPropertiesError::ClusterIdMismatch {
                            path,
                            expected: c.clone(),
                            stored: props.cluster_id,
                        })
                    }
                    Some(_) => {}
                    None => cluster_id = Some(props.cluster_id),
                }
            }
        }
    }
    if let Some(first) = unformatted.first() {
        let Some(make) = format_with else {
            return Err(MetaPropertiesError::NotFormatted((*first).clone()));
        };
        let id = cluster_id.get_or_insert_with(make).clone();
        for dir in unformatted {
            MetaProperties {
                cluster_id: id.clone(),
                node_id,
                directory_id: uuid::Uuid::new_v4().to_string(),
            }
            .write(dir)?;
        }
    }
    cluster_id
        .ok_or_else(|| MetaPropertiesError::NotFormatted(dirs.first().cloned().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> String {
        "fresh-cluster-id-0000".to_string()
    }

    #[test]
    fn formats_then_accepts_its_own_dirs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let id = ensure_formatted(&dirs, 3, None, Some(&fresh)).unwrap();
        assert_eq!(id, fresh());
        let props = MetaProperties::read(a.path()).unwrap().unwrap();
        assert_eq!(
            (props.node_id, props.cluster_id.as_str()),
            (3, "fresh-cluster-id-0000")
        );
        assert_eq!(ensure_formatted(&dirs, 3, None, None).unwrap(), fresh());
        assert_eq!(
            ensure_formatted(&dirs, 3, Some(&fresh()), None).unwrap(),
            fresh()
        );
    }

    #[test]
    fn refuses_another_node_or_cluster() {
        let a = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf()];
        ensure_formatted(&dirs, 1, Some("cluster-a"), Some(&fresh)).unwrap();
        let e = ensure_formatted(&dirs, 2, None, Some(&fresh)).unwrap_err();
        assert!(
            matches!(
                e,
                MetaPropertiesError::NodeIdMismatch {
                    stored: 1,
                    configured: 2,
                    ..
                }
            ),
            "{e}"
        );
        let e = ensure_formatted(&dirs, 1, Some("cluster-b"), Some(&fresh)).unwrap_err();
        assert!(
            matches!(e, MetaPropertiesError::ClusterIdMismatch { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("another cluster"));
    }

    #[test]
    fn an_unformatted_dir_is_refused_unless_formatting_is_allowed() {
        let a = tempfile::tempdir().unwrap();
        let e = ensure_formatted(&[a.path().to_path_buf()], 1, None, None).unwrap_err();
        assert!(matches!(e, MetaPropertiesError::NotFormatted(_)));
        assert!(e.to_string().contains("rivulet format"));
    }

    #[test]
    fn a_garbled_file_is_refused() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join(META_PROPERTIES), "version=0\nbroker.id=1\n").unwrap();
        assert!(matches!(
            MetaProperties::read(a.path()),
            Err(MetaPropertiesError::Invalid { .. })
        ));
    }
}
