//! [`MetadataStateMachine`]: applies committed entries to the metadata image, keeps the recent
//! deltas for brokers that follow the log ([`MetadataFeed`]), and makes and installs snapshots.
//!
//! The image lives in memory; what is durable is the latest snapshot (sled tree
//! `raft_snapshot`: the image, the last applied log id and the membership, as JSON). On start
//! the image is the snapshot's, and openraft re-applies the committed entries after it, which
//! reproduces the same deltas at the same offsets. A snapshot lets openraft purge the log
//! before it (`SnapshotPolicy`), which bounds the log.

use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{storage_error, StorageError, TypeConfig};
use crate::image::MetadataImage;
use crate::records::{MetadataDelta, MetadataRecord};

/// How many recent deltas the feed keeps for followers; one further behind gets a snapshot.
pub const FEED_DELTAS: usize = 4096;

/// What a follower reading the feed after an offset gets.
#[derive(Debug, Clone)]
pub enum FeedRead {
    /// The deltas after the offset (possibly none yet).
    Deltas(Vec<MetadataDelta>),
    /// The deltas are gone: the whole current image instead.
    Snapshot(Arc<MetadataImage>),
}

struct FeedState {
    image: Arc<MetadataImage>,
    deltas: VecDeque<MetadataDelta>,
}

/// The committed metadata as images and deltas, shared by the state machine (the only writer),
/// the local controller and the `FetchMetadata` streams. Its lock is held only to swap an `Arc`
/// or copy out deltas.
pub struct MetadataFeed {
    state: Mutex<FeedState>,
    latest: watch::Sender<Arc<MetadataImage>>,
}

impl MetadataFeed {
    /// A feed starting at `image`.
    pub fn new(image: MetadataImage) -> Arc<MetadataFeed> {
        let image = Arc::new(image);
        Arc::new(MetadataFeed {
            state: Mutex::new(FeedState {
                image: Arc::clone(&image),
                deltas: VecDeque::new(),
            }),
            latest: watch::channel(image).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.lock().image)
    }

    /// A receiver woken by every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.latest.subscribe()
    }

    /// Everything committed after `offset`.
    pub fn read_after(&self, offset: i64) -> FeedRead {
        let state = self.lock();
        if offset >= state.image.offset {
            return FeedRead::Deltas(Vec::new());
        }
        match state.deltas.front() {
            Some(first) if first.offset <= offset + 1 => FeedRead::Deltas(
                state
                    .deltas
                    .iter()
                    .filter(|d| d.offset > offset)
                    .cloned()
                    .collect(),
            ),
            _ => FeedRead::Snapshot(Arc::clone(&state.image)),
        }
    }

    fn publish(&self, image: Arc<MetadataImage>, deltas: Vec<MetadataDelta>) {
        {
            let mut state = self.lock();
            state.image = Arc::clone(&image);
            state.deltas.extend(deltas);
            let excess = state.deltas.len().saturating_sub(FEED_DELTAS);
            state.deltas.drain(..excess);
        }
        self.latest.send_replace(image);
    }

    fn reset(&self, image: Arc<MetadataImage>) {
        {
            let mut state = self.lock();
            state.image = Arc::clone(&image);
            state.deltas.clear();
        }
        self.latest.send_replace(image);
    }
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    image: MetadataImage,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
}

/// A stored snapshot: its meta and its bytes.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The state machine: the image (in the feed), the last applied log id and membership.
pub struct MetadataStateMachine {
    feed: Arc<MetadataFeed>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshots: sled::Tree,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_error(ErrorSubject::StateMachine, verb, e)
}

fn snapshot_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_error(ErrorSubject::Snapshot(None), verb, e)
}

impl MetadataStateMachine {
    /// Opens the state machine of cluster `cluster_id` from the latest snapshot in `db`.
    pub fn open(db: &sled::Db, cluster_id: &str) -> Result<MetadataStateMachine, StorageError> {
        let snapshots = db
            .open_tree("raft_snapshot")
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        let mut sm = MetadataStateMachine {
            feed: MetadataFeed::new(MetadataImage::empty(cluster_id)),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots,
        };
        if let Some(stored) = sm.stored_snapshot()? {
            let body = decode_body(&stored.data)?;
            sm.last_applied = body.last_applied;
            sm.membership = body.membership;
            sm.feed = MetadataFeed::new(body.image);
        }
        Ok(sm)
    }

    /// The feed of this state machine's images.
    pub fn feed(&self) -> Arc<MetadataFeed> {
        Arc::clone(&self.feed)
    }

    fn stored_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self
            .snapshots
            .get("current")
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?
        {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| snapshot_err(ErrorVerb::Read, e)),
        }
    }
}

fn decode_body(data: &[u8]) -> Result<SnapshotBody, StorageError> {
    let mut body: SnapshotBody =
        serde_json::from_slice(data).map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
    body.image.reindex();
    Ok(body)
}

async fn store_snapshot(tree: &sled::Tree, stored: &StoredSnapshot) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec(stored).map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
    tree.insert("current", bytes)
        .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
    tree.flush_async()
        .await
        .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
    Ok(())
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct MetadataSnapshotBuilder {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshots: sled::Tree,
}

impl RaftSnapshotBuilder<TypeConfig> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = serde_json::to_vec(&SnapshotBody {
            image: (*self.image).clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        })
        .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, fastrand::u32(..)),
            None => format!("empty-{}", fastrand::u32(..)),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        store_snapshot(&self.snapshots, &stored).await?;
        tracing::info!(
            offset = self.image.offset,
            bytes = data.len(),
            "metadata snapshot taken"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut image = (*self.feed.image()).clone();
        let mut deltas = Vec::new();
        let mut results = Vec::new();
        for entry in entries {
            let records: Vec<MetadataRecord> = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(batch) => batch.0,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            let offset =
                i64::try_from(entry.log_id.index).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            let delta = MetadataDelta {
                offset,
                controller_epoch: i32::try_from(entry.log_id.leader_id.term).unwrap_or(i32::MAX),
                controller_id: i32::try_from(entry.log_id.leader_id.node_id).unwrap_or(-1),
                records: Arc::from(records),
            };
            image.apply_delta(&delta);
            deltas.push(delta);
            self.last_applied = Some(entry.log_id);
            results.push(());
        }
        self.feed.publish(Arc::new(image), deltas);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetadataSnapshotBuilder {
            image: self.feed.image(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let body = decode_body(&data)?;
        store_snapshot(
            &self.snapshots,
            &StoredSnapshot {
                meta: meta.clone(),
                data,
            },
        )
        .await?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        tracing::info!(offset = body.image.offset, "metadata snapshot installed");
        self.feed.reset(Arc::new(body.image));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.stored_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MetadataRecord;

    fn delta(offset: i64) -> MetadataDelta {
        MetadataDelta {
            offset,
            controller_epoch: 1,
            controller_id: 1,
            records: Arc::from(vec![MetadataRecord::ProducerIdBlock {
                broker_id: 1,
                first: offset * 10,
                size: 10,
            }]),
        }
    }

    #[test]
    fn the_feed_serves_deltas_then_falls_back_to_a_snapshot() {
        let feed = MetadataFeed::new(MetadataImage::empty("c"));
        let mut image = MetadataImage::empty("c");
        let mut deltas = Vec::new();
        for o in 1..=(FEED_DELTAS as i64 + 10) {
            let d = delta(o);
            image.apply_delta(&d);
            deltas.push(d);
        }
        feed.publish(Arc::new(image.clone()), deltas);
        match feed.read_after(20) {
            FeedRead::Deltas(d) => {
                assert_eq!(d.first().map(|d| d.offset), Some(21));
                assert_eq!(d.last().map(|d| d.offset), Some(image.offset));
            }
            FeedRead::Snapshot(_) => panic!("deltas after 20 are still held"),
        }
        match feed.read_after(2) {
            FeedRead::Snapshot(s) => assert_eq!(*s, image),
            FeedRead::Deltas(_) => panic!("deltas after 2 were dropped"),
        }
        assert!(matches!(feed.read_after(image.offset), FeedRead::Deltas(d) if d.is_empty()));
    }
}
