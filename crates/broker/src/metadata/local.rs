//! [`LocalMetadataStore`]: the single-node stand-in for the controller quorum.
//!
//! The image lives in memory behind an [`ArcSwap`] (readers never block) and on disk as
//! `rivulet-metadata.json` in the first log dir, replaced atomically on every change before the
//! change is acknowledged. Writers are serialised by an async mutex.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use super::{
    topic_name, BrokerImage, MetadataError, MetadataImage, MetadataStore, NewTopic, PartitionImage,
    ProducerIdBlock, TopicImage, TopicRef,
};

/// File name of the persisted image inside the log dir.
pub const METADATA_FILE: &str = "rivulet-metadata.json";
/// Producer ids handed to a broker at a time (Kafka's `ProducerIdsBlock` size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Single-node metadata, persisted to a file.
pub struct LocalMetadataStore {
    path: PathBuf,
    current: ArcSwap<MetadataImage>,
    changes: watch::Sender<Arc<MetadataImage>>,
    writer: Mutex<()>,
    delete_topic_enable: bool,
}

/// A new random topic id, never nil and never one whose base64 form starts with `-`, as Kafka
/// guarantees (such ids confuse command-line tools).
pub fn new_topic_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if !id.is_nil() && id.as_bytes()[0] >> 2 != 62 {
            return id;
        }
    }
}

/// Kafka's cluster id form: a random UUID in URL-safe base64 without padding (22 characters).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = new_topic_id().into_bytes();
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

impl LocalMetadataStore {
    /// Loads the image from `log_dir` (or starts an empty cluster) with this node as its only
    /// broker and controller.
    pub fn open(
        log_dir: PathBuf,
        this_broker: BrokerImage,
        delete_topic_enable: bool,
    ) -> Result<Self, MetadataError> {
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| MetadataError::Storage(format!("{}: {e}", log_dir.display())))?;
        let path = log_dir.join(METADATA_FILE);
        let mut image = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<MetadataImage>(&bytes).map_err(|e| {
                MetadataError::Storage(format!("{} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataImage {
                cluster_id: new_cluster_id(),
                next_producer_id: 0,
                ..MetadataImage::default()
            },
            Err(e) => return Err(MetadataError::Storage(format!("{}: {e}", path.display()))),
        };
        image.controller_id = this_broker.id;
        image.brokers.clear();
        image.brokers.insert(this_broker.id, this_broker);
        image.reindex();
        let image = Arc::new(image);
        let store = LocalMetadataStore {
            path,
            current: ArcSwap::new(Arc::clone(&image)),
            changes: watch::channel(Arc::clone(&image)).0,
            writer: Mutex::new(()),
            delete_topic_enable,
        };
        store.persist_blocking(&image)?;
        Ok(store)
    }

    fn persist_blocking(&self, image: &MetadataImage) -> Result<(), MetadataError> {
        let bytes =
            serde_json::to_vec_pretty(image).map_err(|e| MetadataError::Storage(e.to_string()))?;
        rivulet_storage::checkpoint::write_atomically(&self.path, &bytes)
            .map_err(|e| MetadataError::Storage(e.to_string()))
    }

    /// Persists `next` (on a blocking thread), then publishes it.
    async fn commit(&self, mut next: MetadataImage) -> Result<(), MetadataError> {
        next.reindex();
        let next = Arc::new(next);
        let path = self.path.clone();
        let to_write = Arc::clone(&next);
        tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec_pretty(&*to_write)
                .map_err(|e| MetadataError::Storage(e.to_string()))?;
            rivulet_storage::checkpoint::write_atomically(&path, &bytes)
                .map_err(|e| MetadataError::Storage(e.to_string()))
        })
        .await
        .map_err(|e| MetadataError::Storage(e.to_string()))??;
        self.current.store(Arc::clone(&next));
        self.changes.send_replace(next);
        Ok(())
    }

    fn check_new_topic(image: &MetadataImage, t: &NewTopic) -> Result<(), MetadataError> {
        topic_name::validate(&t.name)?;
        if image.topics.contains_key(&t.name) {
            return Err(MetadataError::TopicAlreadyExists(t.name.clone()));
        }
        if let Some(other) = image
            .topics
            .keys()
            .find(|n| topic_name::collides(n, &t.name))
        {
            return Err(MetadataError::InvalidTopic(format!(
                "Topic '{}' collides with existing topic: {other}",
                t.name
            )));
        }
        if t.assignment.is_empty() {
            return Err(MetadataError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        for replicas in &t.assignment {
            if let Some(unknown) = replicas.iter().find(|id| !image.brokers.contains_key(id)) {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "The manual partition assignment includes broker {unknown}, but no such broker is registered."
                )));
            }
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != replicas.len() || replicas.is_empty() {
                return Err(MetadataError::InvalidReplicaAssignment(
                    "A partition's replicas must be distinct and at least one.".into(),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for LocalMetadataStore {
    fn image(&self) -> Arc<MetadataImage> {
        self.current.load_full()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.changes.subscribe()
    }

    async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, MetadataError>> {
        let _guard = self.writer.lock().await;
        let mut next = (*self.image()).clone();
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let result = Self::check_new_topic(&next, &t).map(|()| TopicImage {
                name: t.name.clone(),
                id: new_topic_id(),
                partitions: t
                    .assignment
                    .iter()
                    .enumerate()
                    .map(|(i, replicas)| PartitionImage {
                        index: i as i32,
                        leader: replicas[0],
                        leader_epoch: 0,
                        partition_epoch: 0,
                        replicas: replicas.clone(),
                        isr: replicas.clone(),
                    })
                    .collect(),
                configs: t.configs.clone(),
            });
            if let (Ok(topic), false) = (&result, validate_only) {
                next.topics.insert(topic.name.clone(), topic.clone());
                next.reindex();
            }
            results.push(result);
        }
        if !validate_only && results.iter().any(Result::is_ok) {
            if let Err(e) = self.commit(next).await {
                return results.into_iter().map(|r| r.and(Err(e.clone()))).collect();
            }
        }
        results
    }

    async fn delete_topics(&self, topics: Vec<TopicRef>) -> Vec<Result<TopicImage, MetadataError>> {
        let _guard = self.writer.lock().await;
        let mut next = (*self.image()).clone();
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let result = if !self.delete_topic_enable {
                Err(MetadataError::TopicDeletionDisabled)
            } else {
                let name = match &t {
                    TopicRef::Name(n) => Some(n.clone()),
                    TopicRef::Id(id) => next.topic_by_id(id).map(|t| t.name.clone()),
                };
                match (name.and_then(|n| next.topics.remove(&n)), t) {
                    (Some(removed), _) => {
                        next.reindex();
                        Ok(removed)
                    }
                    (None, TopicRef::Name(n)) => Err(MetadataError::UnknownTopic(n)),
                    (None, TopicRef::Id(id)) => Err(MetadataError::UnknownTopicId(id)),
                }
            };
            results.push(result);
        }
        if results.iter().any(Result::is_ok) {
            if let Err(e) = self.commit(next).await {
                return results.into_iter().map(|r| r.and(Err(e.clone()))).collect();
            }
        }
        results
    }

    async fn allocate_producer_ids(
        &self,
        _broker_id: i32,
    ) -> Result<ProducerIdBlock, MetadataError> {
        let _guard = self.writer.lock().await;
        let mut next = (*self.image()).clone();
        let block = ProducerIdBlock {
            first: next.next_producer_id,
            size: PRODUCER_ID_BLOCK_SIZE,
        };
        next.next_producer_id += PRODUCER_ID_BLOCK_SIZE;
        self.commit(next).await?;
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn broker() -> BrokerImage {
        BrokerImage {
            id: 1,
            endpoints: BTreeMap::from([("PLAINTEXT".to_string(), ("127.0.0.1".to_string(), 9092))]),
            rack: None,
            fenced: false,
        }
    }

    fn topic(name: &str, partitions: usize) -> NewTopic {
        NewTopic {
            name: name.into(),
            assignment: vec![vec![1]; partitions],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(!id.starts_with('-'));
    }

    #[tokio::test]
    async fn topics_survive_a_restart_and_ids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMetadataStore::open(dir.path().into(), broker(), true).unwrap();
        let created = store.create_topics(vec![topic("orders", 3)], false).await;
        let id = created[0].as_ref().unwrap().id;
        let block = store.allocate_producer_ids(1).await.unwrap();
        let cluster = store.image().cluster_id.clone();
        drop(store);
        let store = LocalMetadataStore::open(dir.path().into(), broker(), true).unwrap();
        let image = store.image();
        assert_eq!(image.cluster_id, cluster);
        assert_eq!(image.topics["orders"].id, id);
        assert_eq!(image.topic_by_id(&id).unwrap().partitions.len(), 3);
        let next = store.allocate_producer_ids(1).await.unwrap();
        assert_eq!(
            next.first,
            block.first + block.size,
            "blocks never overlap across restarts"
        );
    }

    #[tokio::test]
    async fn refuses_duplicates_collisions_and_bad_assignments() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMetadataStore::open(dir.path().into(), broker(), true).unwrap();
        store.create_topics(vec![topic("a.b", 1)], false).await[0]
            .as_ref()
            .unwrap();
        let r = store
            .create_topics(
                vec![
                    topic("a.b", 1),
                    topic("a_b", 1),
                    NewTopic {
                        assignment: vec![vec![2]],
                        ..topic("c", 1)
                    },
                    topic("bad name", 1),
                ],
                false,
            )
            .await;
        assert!(matches!(r[0], Err(MetadataError::TopicAlreadyExists(_))));
        assert!(matches!(r[1], Err(MetadataError::InvalidTopic(_))));
        assert!(matches!(
            r[2],
            Err(MetadataError::InvalidReplicaAssignment(_))
        ));
        assert!(matches!(r[3], Err(MetadataError::InvalidTopic(_))));
    }

    #[tokio::test]
    async fn validate_only_changes_nothing_and_deletes_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMetadataStore::open(dir.path().into(), broker(), true).unwrap();
        assert!(store.create_topics(vec![topic("v", 2)], true).await[0].is_ok());
        assert!(store.image().topics.is_empty());
        let id = store.create_topics(vec![topic("v", 2)], false).await[0]
            .as_ref()
            .unwrap()
            .id;
        let changes = store.subscribe();
        let deleted = store
            .delete_topics(vec![TopicRef::Id(id), TopicRef::Name("nope".into())])
            .await;
        assert!(deleted[0].is_ok());
        assert!(matches!(deleted[1], Err(MetadataError::UnknownTopic(_))));
        assert!(changes.has_changed().unwrap());
        assert!(store.image().topics.is_empty());
    }
}
