//! Per-partition state of idempotent producers, after Kafka's `ProducerStateManager`.
//!
//! For every producer id that has batches in the partition, [`ProducerStateManager`] keeps the
//! producer's current epoch, the metadata of its last [`NUM_BATCHES_TO_RETAIN`] batches and the
//! timestamp of its last batch. The partition log uses it on the leader to detect client retries
//! ([`AppendCheck::Duplicate`]) and to reject out-of-order sequences and fenced epochs before
//! appending ([`ProducerStateManager::check_append`]), and records every appended batch with
//! [`ProducerStateManager::update`], on the leader, on followers and during recovery.
//!
//! The state is a function of a log prefix: [`ProducerStateManager::map_end_offset`] is the offset
//! up to which (exclusive) it reflects the log. It is snapshotted to `<offset>.snapshot` files
//! in the partition directory (offset zero-padded to 20 digits, like segment files) so recovery
//! only replays the log from the newest readable snapshot, not from the start. Transactions are
//! not tracked (no coordinator epoch, no ongoing transaction offsets).
//!
//! # Snapshot format (version 1)
//!
//! All integers little-endian. The CRC covers every byte after the CRC field.
//!
//! | field                  | type         | notes                                        |
//! |------------------------|--------------|----------------------------------------------|
//! | magic                  | `[u8; 4]`    | `b"RVPS"`                                    |
//! | version                | `u16`        | `1`                                          |
//! | crc                    | `u32`        | CRC32C of the body (all bytes that follow)   |
//! | entry count            | `u32`        | body starts here                             |
//! | per entry: producer id | `i64`        | `>= 0`, unique in the file                   |
//! | epoch                  | `i16`        |                                              |
//! | last timestamp         | `i64`        | max timestamp of the producer's last batch   |
//! | batch count            | `u8`         | `<= 5`                                       |
//! | per batch: first seq   | `i32`        | oldest batch first                           |
//! | last seq               | `i32`        |                                              |
//! | first offset           | `i64`        |                                              |
//! | last offset            | `i64`        |                                              |
//! | max timestamp          | `i64`        |                                              |
//!
//! Entries are written in producer-id order. A reader rejects (as [`StorageError::CorruptFile`])
//! a wrong magic, an unknown version, a CRC mismatch, a count larger than the file can hold,
//! more than five batches, a negative or repeated producer id and trailing bytes; the loader then
//! deletes that snapshot and falls back to the next older one.
//!
//! # Thread safety
//!
//! Not synchronised: mutation takes `&mut self`, and the owner (the partition log) serialises
//! access per partition, like the rest of this crate.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::{Result, StorageError};

/// How many of a producer's most recent batches are retained for duplicate detection; a client
/// never has more than this many unacknowledged batches in flight (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// Producer id of a batch written by a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;

/// Producer epoch of a batch without a producer id, and of a producer the log knows nothing of.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Base sequence of a batch without a producer id, and last sequence of a producer with no batch.
pub const NO_SEQUENCE: i32 = -1;

/// File-name suffix of producer state snapshots.
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Width of the zero-padded offset in a snapshot file name.
const SNAPSHOT_OFFSET_DIGITS: usize = 20;
/// First bytes of every snapshot file.
const SNAPSHOT_MAGIC: [u8; 4] = *b"RVPS";
/// The only snapshot format version this code reads and writes.
const SNAPSHOT_VERSION: u16 = 1;
/// Magic, version and CRC.
const HEADER_LEN: usize = 4 + 2 + 4;
/// Encoded size of an entry without its batches: producer id, epoch, last timestamp, batch count.
const ENTRY_FIXED_LEN: usize = 8 + 2 + 8 + 1;
/// Encoded size of one batch.
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

/// The last sequence of a batch whose first sequence is `first_seq` and which holds
/// `last_offset_delta + 1` records.
///
/// Sequences wrap like Kafka's `DefaultRecordBatch.incrementSequence`: the sequence after
/// `i32::MAX` is 0. A batch without sequence ([`NO_SEQUENCE`]) has no last sequence either.
pub fn last_sequence(first_seq: i32, last_offset_delta: i32) -> i32 {
    if first_seq == NO_SEQUENCE {
        return NO_SEQUENCE;
    }
    let sum = i64::from(first_seq) + i64::from(last_offset_delta);
    if sum > i64::from(i32::MAX) {
        // At most 2 * i32::MAX - 2^31 = i32::MAX - 1, so the conversion cannot fail.
        i32::try_from(sum - (1_i64 << 31)).unwrap_or(i32::MAX)
    } else {
        first_seq.wrapping_add(last_offset_delta)
    }
}

/// True if `next_seq` directly follows `last_seq` (Kafka's `ProducerAppendInfo.inSequence`).
fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Where one appended batch of a producer sits in the log: its sequence range and offset range,
/// returned to a client that re-sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the batch's first record.
    pub first_seq: i32,
    /// Sequence of the batch's last record.
    pub last_seq: i32,
    /// Offset of the batch's first record.
    pub first_offset: i64,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
}

/// What the log knows of one producer: its epoch and its most recent batches in that epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the producer's latest batch; batches of older epochs are fenced.
    pub producer_epoch: i16,
    /// At most [`NUM_BATCHES_TO_RETAIN`] batches of the current epoch, oldest first.
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the producer's latest batch, used for expiry.
    pub last_timestamp: i64,
}

impl ProducerStateEntry {
    /// Last sequence of the latest retained batch, or [`NO_SEQUENCE`] if none is retained.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Last offset of the latest retained batch, or -1 if none is retained.
    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    /// The retained batch with exactly this sequence range in `epoch`, if any (Kafka's
    /// `findDuplicateBatch`: batches of another epoch never match).
    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Records a batch. Like Kafka's `maybeUpdateProducerEpoch`, any change of epoch (not only a
    /// bump) drops the batches of the previous epoch.
    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.producer_epoch {
            self.batches.clear();
            self.producer_epoch = epoch;
        }
        while self.batches.len() >= NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.max_timestamp;
    }
}

/// Outcome of [`ProducerStateManager::check_append`] for a batch that may be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// The batch follows the producer's previous one: append it.
    Accept,
    /// The batch is a retry of one already in the log: do not append it, answer the client
    /// with the offsets of the original.
    Duplicate(BatchMetadata),
}

/// The idempotent-producer state of one partition, with its snapshots on disk.
#[derive(Debug)]
pub struct ProducerStateManager {
    /// The partition directory, where snapshot files live.
    dir: PathBuf,
    /// State per producer id.
    producers: HashMap<i64, ProducerStateEntry>,
    /// The log offset up to which (exclusive) `producers` reflects the log.
    map_end_offset: i64,
    /// Offsets of the snapshot files in `dir`.
    snapshots: BTreeSet<i64>,
}

impl ProducerStateManager {
    /// Opens the producer state of the partition in `partition_dir` from its newest readable
    /// snapshot.
    ///
    /// Unreadable snapshots (bad CRC, bad lengths, unknown version) are deleted with a warning
    /// and the next older one is tried. Without any, the state is empty with a map end offset of
    /// 0. The caller then replays the log from [`Self::map_end_offset`] with [`Self::update`] and
    /// finishes with [`Self::set_map_end_offset`]. Unlike Kafka, expired producers are not
    /// filtered here: call [`Self::remove_expired_producers`] after loading.
    pub fn load(partition_dir: &Path) -> Result<Self> {
        let snapshots = list_snapshot_offsets(partition_dir)?;
        let mut manager = ProducerStateManager {
            dir: partition_dir.to_path_buf(),
            producers: HashMap::new(),
            map_end_offset: 0,
            snapshots,
        };
        manager.load_latest_snapshot(0)?;
        Ok(manager)
    }

    /// Validates a client batch on the leader without changing any state, following Kafka's
    /// `UnifiedLog.analyzeAndValidateProducerState` and `ProducerAppendInfo.checkProducerEpoch` /
    /// `checkSequence` for non-transactional batches:
    ///
    /// 1. same epoch and exactly the sequence range of a retained batch: `Duplicate`;
    /// 2. an epoch older than the producer's: [`StorageError::InvalidProducerEpoch`];
    /// 3. a newer epoch must start at sequence 0, unless the producer has no known epoch;
    /// 4. in the same epoch, `first_seq` must follow the last sequence (`i32::MAX` is followed
    ///    by 0), else [`StorageError::OutOfOrderSequence`];
    /// 5. an unknown producer (state removed by retention or expiry) is accepted with any
    ///    sequence (KIP-360).
    pub fn check_append(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<AppendCheck> {
        let entry = self.producers.get(&producer_id);
        // Rule 1 comes first, as in `analyzeAndValidateProducerState`.
        if let Some(original) = entry.and_then(|e| e.find_duplicate(epoch, first_seq, last_seq)) {
            return Ok(AppendCheck::Duplicate(original));
        }
        // Kafka validates an unknown producer against `ProducerStateEntry.empty`: no epoch, no
        // batch. Doing the same here makes rule 5 fall out of rules 3 and 4.
        let (current_epoch, current_last_seq) = entry
            .map_or((NO_PRODUCER_EPOCH, NO_SEQUENCE), |e| {
                (e.producer_epoch, e.last_seq())
            });
        if epoch < current_epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch,
            });
        }
        if epoch != current_epoch {
            // A new epoch: nothing of it is in the log yet, so it must start at 0.
            if first_seq != 0 && current_epoch != NO_PRODUCER_EPOCH {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id,
                    last_sequence: NO_SEQUENCE,
                    first_sequence: first_seq,
                });
            }
        } else if current_epoch != NO_PRODUCER_EPOCH && !in_sequence(current_last_seq, first_seq) {
            // An entry whose batches were not retained (`NO_SEQUENCE`) expects sequence 0.
            return Err(StorageError::OutOfOrderSequence {
                producer_id,
                last_sequence: current_last_seq,
                first_sequence: first_seq,
            });
        }
        Ok(AppendCheck::Accept)
    }

    /// Records a batch appended at `first_offset..=last_offset`, without any check: used for
    /// leader appends (after [`Self::check_append`]), follower appends and recovery replay.
    ///
    /// An epoch different from the producer's replaces its retained batches (Kafka does this for
    /// any change of epoch, which only a follower or replay can see going backwards). At most
    /// [`NUM_BATCHES_TO_RETAIN`] batches are kept. Batches without a producer id
    /// (`producer_id < 0`) are not recorded. In every case the map end offset becomes
    /// `last_offset + 1`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one flat call per batch, mirroring the batch header fields"
    )]
    pub fn update(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        first_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
    ) {
        self.map_end_offset = last_offset.saturating_add(1);
        if producer_id < 0 {
            return;
        }
        let batch = BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset,
            max_timestamp,
        };
        self.producers
            .entry(producer_id)
            .or_insert_with(|| ProducerStateEntry {
                producer_id,
                producer_epoch: epoch,
                batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
                last_timestamp: max_timestamp,
            })
            .add_batch(epoch, batch);
    }

    /// [`Self::update`] with the producer fields of a batch already in the log (follower
    /// appends and recovery replay); batches without a producer id only move the map end offset.
    pub fn update_from_batch(&mut self, batch: &crate::batch::RecordBatch<'_>) {
        self.update(
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
            batch.last_sequence(),
            batch.base_offset(),
            batch.last_offset(),
            batch.max_timestamp(),
        );
    }

    /// The log offset up to which (exclusive) the state reflects the log.
    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// Declares that the state reflects the log up to `offset` (exclusive), e.g. after replaying
    /// the log to its end, whose last batches may have no producer id.
    pub fn set_map_end_offset(&mut self, offset: i64) {
        debug_assert!(offset >= 0, "negative map end offset {offset}");
        self.map_end_offset = offset;
    }

    /// Writes the current state to `<map_end_offset>.snapshot`, atomically (a reader sees the
    /// old file or the complete new one), replacing a snapshot at the same offset.
    ///
    /// Kafka skips the write when the map end offset has not moved past the last snapshot; this
    /// always writes, so the file also reflects producers removed by expiry since.
    pub fn take_snapshot(&mut self) -> Result<()> {
        let offset = self.map_end_offset;
        let path = self.snapshot_path(offset);
        if offset < 0 {
            return Err(StorageError::io(
                &path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot snapshot at negative offset {offset}"),
                ),
            ));
        }
        let bytes = encode_snapshot(&self.producers);
        crate::checkpoint::write_atomically(&path, &bytes)?;
        self.snapshots.insert(offset);
        tracing::debug!(
            path = %path.display(),
            producers = self.producers.len(),
            "wrote producer state snapshot"
        );
        Ok(())
    }

    /// Brings the state back in line with a log now spanning `[log_start_offset,
    /// log_end_offset)`, after truncation or a log start increment (Kafka's `truncateAndReload`).
    ///
    /// Deletes the snapshots above `log_end_offset` and, as Kafka does, those at or below
    /// `log_start_offset`. If the map end offset differs from `log_end_offset`, the state is
    /// reloaded from the newest remaining snapshot (empty at `log_start_offset` if none); the
    /// caller then replays the log from [`Self::map_end_offset`]. Otherwise the in-memory state
    /// is kept.
    pub fn truncate_and_reload(
        &mut self,
        log_start_offset: i64,
        log_end_offset: i64,
    ) -> Result<()> {
        let out_of_range: Vec<i64> = self
            .snapshots
            .iter()
            .copied()
            .filter(|&offset| offset > log_end_offset || offset <= log_start_offset)
            .collect();
        for offset in out_of_range {
            self.delete_snapshot(offset)?;
        }
        if log_end_offset != self.map_end_offset {
            self.load_latest_snapshot(log_start_offset)?;
        } else {
            // Kafka's `onLogStartOffsetIncremented`.
            self.map_end_offset = self.map_end_offset.max(log_start_offset);
        }
        Ok(())
    }

    /// Deletes the snapshots below `offset`, whose segments retention removed; those at or
    /// above `offset` are kept. The in-memory state is unchanged.
    pub fn delete_snapshots_before(&mut self, offset: i64) -> Result<()> {
        let below: Vec<i64> = self.snapshots.range(..offset).copied().collect();
        for snapshot_offset in below {
            self.delete_snapshot(snapshot_offset)?;
        }
        Ok(())
    }

    /// Offset of the newest snapshot on disk.
    pub fn latest_snapshot_offset(&self) -> Option<i64> {
        self.snapshots.last().copied()
    }

    /// Offset of the oldest snapshot on disk.
    pub fn oldest_snapshot_offset(&self) -> Option<i64> {
        self.snapshots.first().copied()
    }

    /// Forgets producers idle for at least `expiration_ms` (Kafka's `producer.id.expiration.ms`):
    /// those with `now_ms - last_timestamp >= expiration_ms`. A forgotten producer that comes
    /// back is accepted as unknown.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_timestamp) < expiration_ms);
    }

    /// The state of `producer_id`, if the log knows it.
    pub fn producer(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// All known producers, in no particular order.
    pub fn producers(&self) -> impl Iterator<Item = &ProducerStateEntry> {
        self.producers.values()
    }

    /// Number of known producers.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True if no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Path of the snapshot file at `offset`.
    fn snapshot_path(&self, offset: i64) -> PathBuf {
        self.dir.join(snapshot_file_name(offset))
    }

    /// Replaces the state with the newest readable snapshot, deleting unreadable ones; without
    /// any, the state is empty at `fallback_offset` (Kafka's `loadFromSnapshot`).
    fn load_latest_snapshot(&mut self, fallback_offset: i64) -> Result<()> {
        self.producers.clear();
        while let Some(offset) = self.snapshots.last().copied() {
            let path = self.snapshot_path(offset);
            match read_snapshot(&path) {
                Ok(producers) => {
                    self.producers = producers;
                    self.map_end_offset = offset;
                    return Ok(());
                }
                Err(StorageError::CorruptFile { reason, .. }) => {
                    tracing::warn!(
                        path = %path.display(),
                        %reason,
                        "deleting corrupt producer state snapshot, trying an older one"
                    );
                    self.delete_snapshot(offset)?;
                }
                Err(e) => return Err(e),
            }
        }
        self.map_end_offset = fallback_offset;
        Ok(())
    }

    /// Deletes the snapshot file at `offset` (already gone is fine) and forgets it.
    fn delete_snapshot(&mut self, offset: i64) -> Result<()> {
        let path = self.snapshot_path(offset);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&path, e)),
        }
        self.snapshots.remove(&offset);
        Ok(())
    }
}

/// Name of the snapshot file at `offset`: the offset zero-padded to 20 digits, then
/// `.snapshot`, like Kafka's (`offset` must not be negative).
pub fn snapshot_file_name(offset: i64) -> String {
    format!(
        "{offset:0width$}{SNAPSHOT_SUFFIX}",
        width = SNAPSHOT_OFFSET_DIGITS
    )
}

/// The offset of a snapshot file name made by [`snapshot_file_name`], or `None` for any other
/// name (temporary files, segments, other checkpoints).
pub fn parse_snapshot_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != SNAPSHOT_OFFSET_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Offsets of the snapshot files in `dir`.
fn list_snapshot_offsets(dir: &Path) -> Result<BTreeSet<i64>> {
    let mut offsets = BTreeSet::new();
    for dir_entry in fs::read_dir(dir).at(dir)? {
        let dir_entry = dir_entry.at(dir)?;
        if let Some(offset) = dir_entry
            .file_name()
            .to_str()
            .and_then(parse_snapshot_file_name)
        {
            offsets.insert(offset);
        }
    }
    Ok(offsets)
}

/// Reads and decodes the snapshot at `path`; a malformed file is [`StorageError::CorruptFile`].
fn read_snapshot(path: &Path) -> Result<HashMap<i64, ProducerStateEntry>> {
    let bytes = fs::read(path).at(path)?;
    decode_snapshot(&bytes).map_err(|reason| StorageError::corrupt_file(path, reason))
}

/// Encodes `producers` in the snapshot format of the module docs.
fn encode_snapshot(producers: &HashMap<i64, ProducerStateEntry>) -> Vec<u8> {
    let mut entries: Vec<&ProducerStateEntry> = producers.values().collect();
    entries.sort_unstable_by_key(|e| e.producer_id);

    let body_len: usize = 4 + entries
        .iter()
        .map(|e| ENTRY_FIXED_LEN + e.batches.len().min(NUM_BATCHES_TO_RETAIN) * BATCH_LEN)
        .sum::<usize>();
    let mut buf = Vec::with_capacity(HEADER_LEN + body_len);
    buf.extend_from_slice(&SNAPSHOT_MAGIC);
    buf.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // CRC, filled in below
                                    // More than u32::MAX producers cannot fit in memory alongside their entries.
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&count.to_le_bytes());
    for entry in entries.iter().take(count as usize) {
        // `update` keeps at most NUM_BATCHES_TO_RETAIN; the guard keeps the count in a u8 anyway.
        let skip = entry.batches.len().saturating_sub(NUM_BATCHES_TO_RETAIN);
        let batch_count = (entry.batches.len() - skip) as u8;
        buf.extend_from_slice(&entry.producer_id.to_le_bytes());
        buf.extend_from_slice(&entry.producer_epoch.to_le_bytes());
        buf.extend_from_slice(&entry.last_timestamp.to_le_bytes());
        buf.push(batch_count);
        for batch in entry.batches.iter().skip(skip) {
            buf.extend_from_slice(&batch.first_seq.to_le_bytes());
            buf.extend_from_slice(&batch.last_seq.to_le_bytes());
            buf.extend_from_slice(&batch.first_offset.to_le_bytes());
            buf.extend_from_slice(&batch.last_offset.to_le_bytes());
            buf.extend_from_slice(&batch.max_timestamp.to_le_bytes());
        }
    }
    let crc = crate::batch::crc32c(&buf[HEADER_LEN..]);
    buf[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Decodes a snapshot, checking every length against the bytes at hand; the error is the
/// reason the file is corrupt.
fn decode_snapshot(bytes: &[u8]) -> std::result::Result<HashMap<i64, ProducerStateEntry>, String> {
    let mut r = Reader { rest: bytes };
    let magic = r.array::<4>()?;
    if magic != SNAPSHOT_MAGIC {
        return Err(format!("bad magic {magic:02x?}"));
    }
    let version = u16::from_le_bytes(r.array()?);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let stored_crc = u32::from_le_bytes(r.array()?);
    let computed_crc = crate::batch::crc32c(r.rest);
    if stored_crc != computed_crc {
        return Err(format!(
            "CRC mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"
        ));
    }
    let count = u32::from_le_bytes(r.array()?);
    // Bound the allocation by what the file can hold before trusting the count.
    let max_count = r.rest.len() / ENTRY_FIXED_LEN;
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= max_count)
        .ok_or_else(|| format!("entry count {count} exceeds the file length"))?;

    let mut producers = HashMap::with_capacity(count);
    for _ in 0..count {
        let producer_id = i64::from_le_bytes(r.array()?);
        let producer_epoch = i16::from_le_bytes(r.array()?);
        let last_timestamp = i64::from_le_bytes(r.array()?);
        let [batch_count] = r.array::<1>()?;
        if producer_id < 0 {
            return Err(format!("negative producer id {producer_id}"));
        }
        if usize::from(batch_count) > NUM_BATCHES_TO_RETAIN {
            return Err(format!(
                "producer {producer_id} has {batch_count} batches, at most {NUM_BATCHES_TO_RETAIN} are retained"
            ));
        }
        let mut batches = VecDeque::with_capacity(usize::from(batch_count));
        for _ in 0..batch_count {
            batches.push_back(BatchMetadata {
                first_seq: i32::from_le_bytes(r.array()?),
                last_seq: i32::from_le_bytes(r.array()?),
                first_offset: i64::from_le_bytes(r.array()?),
                last_offset: i64::from_le_bytes(r.array()?),
                max_timestamp: i64::from_le_bytes(r.array()?),
            });
        }
        let entry = ProducerStateEntry {
            producer_id,
            producer_epoch,
            batches,
            last_timestamp,
        };
        if producers.insert(producer_id, entry).is_some() {
            return Err(format!("producer {producer_id} appears twice"));
        }
    }
    if !r.rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the last entry",
            r.rest.len()
        ));
    }
    Ok(producers)
}

/// A cursor over a byte slice whose reads fail instead of running past the end.
struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl Reader<'_> {
    /// The next `N` bytes.
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| format!("truncated: needed {N} more bytes, {} left", self.rest.len()))?;
        self.rest = tail;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tempfile::TempDir;

    const PID: i64 = 1000;

    fn manager() -> (TempDir, ProducerStateManager) {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = ProducerStateManager::load(dir.path()).expect("load empty dir");
        (dir, manager)
    }

    /// Appends a batch of `count` records of `pid` at the map end offset, returning it.
    fn append(
        m: &mut ProducerStateManager,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
        timestamp: i64,
    ) -> BatchMetadata {
        let first_offset = m.map_end_offset();
        let last_offset = first_offset + i64::from(count) - 1;
        let last_seq = last_sequence(first_seq, count - 1);
        m.update(
            pid,
            epoch,
            first_seq,
            last_seq,
            first_offset,
            last_offset,
            timestamp,
        );
        BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset,
            max_timestamp: timestamp,
        }
    }

    fn snapshot_files(dir: &Path) -> Vec<i64> {
        let mut offsets: Vec<i64> = list_snapshot_offsets(dir)
            .expect("list")
            .into_iter()
            .collect();
        offsets.sort_unstable();
        offsets
    }

    fn is_out_of_order(r: Result<AppendCheck>) -> bool {
        matches!(r, Err(StorageError::OutOfOrderSequence { .. }))
    }

    #[test]
    fn last_sequence_wraps_after_i32_max() {
        assert_eq!(last_sequence(0, 0), 0);
        assert_eq!(last_sequence(10, 4), 14);
        assert_eq!(last_sequence(i32::MAX - 2, 2), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 5), 3);
        assert_eq!(last_sequence(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(last_sequence(NO_SEQUENCE, 3), NO_SEQUENCE);
    }

    #[test]
    fn snapshot_file_names_round_trip() {
        assert_eq!(snapshot_file_name(42), "00000000000000000042.snapshot");
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(0)), Some(0));
        assert_eq!(
            parse_snapshot_file_name(&snapshot_file_name(i64::MAX)),
            Some(i64::MAX)
        );
        for junk in [
            "00000000000000000042.snapshot.tmp",
            "00000000000000000042.log",
            "42.snapshot",
            "-0000000000000000042.snapshot",
            "+0000000000000000042.snapshot",
            "99999999999999999999.snapshot",
            ".snapshot",
        ] {
            assert_eq!(parse_snapshot_file_name(junk), None, "{junk}");
        }
    }

    #[test]
    fn check_append_accepts_next_sequence() {
        let (_dir, mut m) = manager();
        append(&mut m, PID, 0, 0, 5, 1);
        assert_eq!(m.check_append(PID, 0, 5, 9).unwrap(), AppendCheck::Accept);
    }

    #[test]
    fn check_append_detects_duplicates_of_last_five_batches_only() {
        let (_dir, mut m) = manager();
        let batches: Vec<BatchMetadata> = (0..6)
            .map(|i| append(&mut m, PID, 0, i * 10, 10, 100 + i64::from(i)))
            .collect();
        for original in &batches[1..] {
            assert_eq!(
                m.check_append(PID, 0, original.first_seq, original.last_seq)
                    .unwrap(),
                AppendCheck::Duplicate(*original)
            );
        }
        let evicted = batches[0];
        assert!(is_out_of_order(m.check_append(
            PID,
            0,
            evicted.first_seq,
            evicted.last_seq
        )));
        // A retry only matches the exact sequence range.
        assert!(is_out_of_order(m.check_append(PID, 0, 50, 55)));
    }

    #[test]
    fn check_append_rejects_out_of_order_sequences() {
        let (_dir, mut m) = manager();
        append(&mut m, PID, 3, 0, 5, 1);
        for first_seq in [6, 4, 0, -1, i32::MAX] {
            match m.check_append(PID, 3, first_seq, first_seq) {
                Err(StorageError::OutOfOrderSequence {
                    producer_id,
                    last_sequence,
                    first_sequence,
                }) => {
                    assert_eq!(
                        (producer_id, last_sequence, first_sequence),
                        (PID, 4, first_seq)
                    );
                }
                other => panic!("first_seq {first_seq}: {other:?}"),
            }
        }
    }

    #[test]
    fn check_append_follows_i32_max_with_zero() {
        let (_dir, mut m) = manager();
        let wrapped = append(&mut m, PID, 0, i32::MAX - 1, 4, 1);
        assert_eq!((wrapped.first_seq, wrapped.last_seq), (i32::MAX - 1, 1));
        assert_eq!(m.check_append(PID, 0, 2, 2).unwrap(), AppendCheck::Accept);

        let (_dir, mut m) = manager();
        append(&mut m, PID, 0, i32::MAX - 1, 2, 1);
        assert_eq!(m.producer(PID).unwrap().last_seq(), i32::MAX);
        assert_eq!(m.check_append(PID, 0, 0, 3).unwrap(), AppendCheck::Accept);
        assert!(is_out_of_order(m.check_append(PID, 0, 1, 3)));
    }

    #[test]
    fn check_append_rejects_fenced_epoch() {
        let (_dir, mut m) = manager();
        append(&mut m, PID, 4, 0, 1, 1);
        append(&mut m, PID, 5, 0, 1, 2);
        match m.check_append(PID, 4, 1, 1) {
            Err(StorageError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch,
            }) => assert_eq!((producer_id, epoch, current_epoch), (PID, 4, 5)),
            other => panic!("{other:?}"),
        }
        // A retry from the old epoch is fenced too, not answered as a duplicate.
        assert!(matches!(
            m.check_append(PID, 4, 0, 0),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn check_append_bumped_epoch_must_start_at_zero() {
        let (_dir, mut m) = manager();
        append(&mut m, PID, 1, 0, 10, 1);
        assert_eq!(m.check_append(PID, 2, 0, 4).unwrap(), AppendCheck::Accept);
        match m.check_append(PID, 2, 10, 14) {
            Err(StorageError::OutOfOrderSequence {
                last_sequence,
                first_sequence,
                ..
            }) => assert_eq!((last_sequence, first_sequence), (NO_SEQUENCE, 10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn check_append_accepts_unknown_producer_with_any_sequence() {
        let (_dir, mut m) = manager();
        append(&mut m, PID, 0, 0, 1, 1);
        for first_seq in [0, 1, 77, i32::MAX] {
            assert_eq!(
                m.check_append(PID + 1, 3, first_seq, first_seq).unwrap(),
                AppendCheck::Accept
            );
        }
    }

    #[test]
    fn check_append_entry_without_batches_expects_sequence_zero() {
        let (_dir, mut m) = manager();
        // As loaded from a snapshot of a producer whose batches were not retained.
        m.producers.insert(
            PID,
            ProducerStateEntry {
                producer_id: PID,
                producer_epoch: 2,
                batches: VecDeque::new(),
                last_timestamp: 1,
            },
        );
        assert_eq!(m.check_append(PID, 2, 0, 0).unwrap(), AppendCheck::Accept);
        assert!(is_out_of_order(m.check_append(PID, 2, 5, 5)));
    }

    #[test]
    fn update_retains_five_batches_and_resets_on_epoch_change() {
        let (_dir, mut m) = manager();
        for i in 0..7 {
            append(&mut m, PID, 0, i, 1, i64::from(i));
        }
        let entry = m.producer(PID).unwrap();
        assert_eq!(entry.batches.len(), NUM_BATCHES_TO_RETAIN);
        assert_eq!(entry.batches.front().unwrap().first_seq, 2);
        assert_eq!(
            (entry.last_seq(), entry.last_offset(), entry.last_timestamp),
            (6, 6, 6)
        );

        append(&mut m, PID, 1, 0, 3, 50);
        let entry = m.producer(PID).unwrap();
        assert_eq!(entry.producer_epoch, 1);
        assert_eq!(entry.batches.len(), 1);
        assert_eq!((entry.last_seq(), entry.last_offset()), (2, 9));
        assert_eq!(m.map_end_offset(), 10);
    }

    #[test]
    fn update_skips_batches_without_producer_id_but_advances_map_end() {
        let (_dir, mut m) = manager();
        m.update(
            NO_PRODUCER_ID,
            NO_PRODUCER_EPOCH,
            NO_SEQUENCE,
            NO_SEQUENCE,
            0,
            9,
            5,
        );
        assert!(m.is_empty());
        assert_eq!(m.map_end_offset(), 10);
        m.set_map_end_offset(12);
        assert_eq!(m.map_end_offset(), 12);
    }

    #[test]
    fn snapshot_round_trip() {
        let (dir, mut m) = manager();
        for i in 0..7 {
            append(&mut m, PID, 2, i * 2, 2, 1_000 + i64::from(i));
        }
        append(&mut m, 7, 0, i32::MAX, 3, -5);
        append(&mut m, 0, i16::MAX, 100, 1, i64::MIN);
        m.take_snapshot().unwrap();
        assert_eq!(m.latest_snapshot_offset(), Some(m.map_end_offset()));

        let reloaded = ProducerStateManager::load(dir.path()).unwrap();
        assert_eq!(reloaded.map_end_offset(), m.map_end_offset());
        assert_eq!(reloaded.producers, m.producers);
        assert_eq!(reloaded.len(), 3);
        assert_eq!(
            reloaded.latest_snapshot_offset(),
            m.latest_snapshot_offset()
        );
    }

    #[test]
    fn load_of_empty_dir_starts_at_zero_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000000000000000000.log",
            "00000000000000000005.snapshot.tmp",
            "x.snapshot",
        ] {
            fs::write(dir.path().join(name), b"junk").unwrap();
        }
        let m = ProducerStateManager::load(dir.path()).unwrap();
        assert!(m.is_empty());
        assert_eq!(m.map_end_offset(), 0);
        assert_eq!(m.latest_snapshot_offset(), None);
        assert_eq!(m.oldest_snapshot_offset(), None);
    }

    #[test]
    fn load_of_missing_dir_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ProducerStateManager::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    }

    #[test]
    fn corrupt_snapshot_is_deleted_and_older_one_loaded() {
        let (dir, mut m) = manager();
        append(&mut m, PID, 0, 0, 5, 1);
        m.take_snapshot().unwrap();
        let good = m.producers.clone();
        append(&mut m, PID, 0, 5, 5, 2);
        m.take_snapshot().unwrap();
        append(&mut m, PID, 0, 10, 5, 3);
        m.take_snapshot().unwrap();
        assert_eq!(snapshot_files(dir.path()), vec![5, 10, 15]);

        // Newest: bit flip in the body. Middle: unknown version.
        let newest = dir.path().join(snapshot_file_name(15));
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&newest, &bytes).unwrap();
        let middle = dir.path().join(snapshot_file_name(10));
        let mut bytes = fs::read(&middle).unwrap();
        bytes[4] = 9;
        fs::write(&middle, &bytes).unwrap();

        let reloaded = ProducerStateManager::load(dir.path()).unwrap();
        assert_eq!(reloaded.map_end_offset(), 5);
        assert_eq!(reloaded.producers, good);
        assert_eq!(snapshot_files(dir.path()), vec![5]);
        assert_eq!(reloaded.latest_snapshot_offset(), Some(5));
    }

    #[test]
    fn only_corrupt_snapshots_give_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(snapshot_file_name(30)), b"RVPS").unwrap();
        let m = ProducerStateManager::load(dir.path()).unwrap();
        assert!(m.is_empty());
        assert_eq!(m.map_end_offset(), 0);
        assert!(snapshot_files(dir.path()).is_empty());
    }

    #[test]
    fn decode_rejects_every_truncation_and_hostile_counts() {
        let (_dir, mut m) = manager();
        append(&mut m, PID, 0, 0, 5, 1);
        append(&mut m, PID + 1, 0, 0, 5, 1);
        let bytes = encode_snapshot(&m.producers);
        assert_eq!(decode_snapshot(&bytes).unwrap(), m.producers);
        for len in 0..bytes.len() {
            assert!(
                decode_snapshot(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }

        // Valid CRC but lying contents: the CRC protects against damage, not against lies.
        let with_crc = |mut body: Vec<u8>| {
            let mut file = SNAPSHOT_MAGIC.to_vec();
            file.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
            file.extend_from_slice(&crate::batch::crc32c(&body).to_le_bytes());
            file.append(&mut body);
            file
        };
        let huge_count = with_crc(u32::MAX.to_le_bytes().to_vec());
        assert!(decode_snapshot(&huge_count)
            .unwrap_err()
            .contains("entry count"));

        let mut too_many_batches = 1_u32.to_le_bytes().to_vec();
        too_many_batches.extend_from_slice(&PID.to_le_bytes());
        too_many_batches.extend_from_slice(&0_i16.to_le_bytes());
        too_many_batches.extend_from_slice(&0_i64.to_le_bytes());
        too_many_batches.push(200);
        too_many_batches.resize(too_many_batches.len() + 200 * BATCH_LEN, 0);
        assert!(decode_snapshot(&with_crc(too_many_batches))
            .unwrap_err()
            .contains("batches"));

        let mut twice = 2_u32.to_le_bytes().to_vec();
        for _ in 0..2 {
            twice.extend_from_slice(&PID.to_le_bytes());
            twice.extend_from_slice(&[0; 2 + 8 + 1]);
        }
        assert!(decode_snapshot(&with_crc(twice))
            .unwrap_err()
            .contains("twice"));

        let mut negative = 1_u32.to_le_bytes().to_vec();
        negative.extend_from_slice(&(-5_i64).to_le_bytes());
        negative.extend_from_slice(&[0; 2 + 8 + 1]);
        assert!(decode_snapshot(&with_crc(negative))
            .unwrap_err()
            .contains("negative"));

        let mut trailing = 0_u32.to_le_bytes().to_vec();
        trailing.push(0);
        assert!(decode_snapshot(&with_crc(trailing))
            .unwrap_err()
            .contains("trailing"));
    }

    #[test]
    fn truncate_and_reload_drops_out_of_range_snapshots_and_reloads() {
        let (dir, mut m) = manager();
        let mut states = Vec::new();
        for i in 0..4 {
            append(&mut m, PID, 0, i * 10, 10, i64::from(i));
            m.take_snapshot().unwrap();
            states.push(m.producers.clone());
        }
        assert_eq!(snapshot_files(dir.path()), vec![10, 20, 30, 40]);

        // Follower truncation to 25: snapshots above 25 go, state comes from offset 20.
        m.truncate_and_reload(0, 25).unwrap();
        assert_eq!(snapshot_files(dir.path()), vec![10, 20]);
        assert_eq!(m.map_end_offset(), 20);
        assert_eq!(m.producers, states[1]);
        assert_eq!(m.producer(PID).unwrap().last_seq(), 19);

        // Kafka also deletes the snapshot at the log start offset.
        m.truncate_and_reload(10, 15).unwrap();
        assert_eq!(snapshot_files(dir.path()), Vec::<i64>::new());
        assert!(m.is_empty());
        assert_eq!(m.map_end_offset(), 10);
        assert_eq!(m.latest_snapshot_offset(), None);
    }

    #[test]
    fn truncate_and_reload_at_map_end_keeps_state() {
        let (dir, mut m) = manager();
        append(&mut m, PID, 0, 0, 10, 1);
        m.take_snapshot().unwrap();
        append(&mut m, PID, 0, 10, 10, 2);
        let before = m.producers.clone();
        m.truncate_and_reload(10, 20).unwrap();
        // The snapshot at the log start offset is gone, the unsnapshotted state is not.
        assert_eq!(snapshot_files(dir.path()), Vec::<i64>::new());
        assert_eq!(m.producers, before);
        assert_eq!(m.map_end_offset(), 20);
    }

    #[test]
    fn delete_snapshots_before_keeps_those_at_and_above() {
        let (dir, mut m) = manager();
        for i in 0..4 {
            append(&mut m, PID, 0, i * 10, 10, 1);
            m.take_snapshot().unwrap();
        }
        m.delete_snapshots_before(30).unwrap();
        assert_eq!(snapshot_files(dir.path()), vec![30, 40]);
        assert_eq!(m.oldest_snapshot_offset(), Some(30));
        assert_eq!(m.latest_snapshot_offset(), Some(40));
        assert_eq!(m.len(), 1);
        m.delete_snapshots_before(i64::MAX).unwrap();
        assert_eq!(snapshot_files(dir.path()), Vec::<i64>::new());
        assert_eq!(m.oldest_snapshot_offset(), None);
    }

    #[test]
    fn remove_expired_producers_uses_kafka_boundary() {
        let (_dir, mut m) = manager();
        append(&mut m, 1, 0, 0, 1, 1_000);
        append(&mut m, 2, 0, 0, 1, 1_001);
        append(&mut m, 3, 0, 0, 1, i64::MIN);
        // Kafka expires when now - last_timestamp >= expiration.
        m.remove_expired_producers(11_000, 10_000);
        let mut left: Vec<i64> = m.producers().map(|e| e.producer_id).collect();
        left.sort_unstable();
        assert_eq!(left, vec![2]);
        // Forgotten producers are accepted again with any sequence.
        assert_eq!(m.check_append(1, 0, 42, 42).unwrap(), AppendCheck::Accept);
        m.remove_expired_producers(i64::MAX, 1);
        assert!(m.is_empty());
    }

    /// One produced batch in the property test.
    #[derive(Debug, Clone)]
    struct Op {
        producer: usize,
        bump_epoch: bool,
        records: i32,
        snapshot: bool,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0..3_usize,
            prop::bool::weighted(0.1),
            1..5_i32,
            prop::bool::weighted(0.2),
        )
            .prop_map(|(producer, bump_epoch, records, snapshot)| Op {
                producer,
                bump_epoch,
                records,
                snapshot,
            })
    }

    /// First sequences of the producers: some start close to the wrap-around.
    fn start_seq() -> impl Strategy<Value = i32> {
        prop_oneof![Just(0), (i32::MAX - 20)..=i32::MAX]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn snapshots_and_duplicate_detection_match_the_appends(
            ops in prop::collection::vec(op(), 1..40),
            starts in prop::collection::vec(start_seq(), 3),
        ) {
            let (dir, mut m) = manager();
            // Per producer: epoch, next sequence, batches appended in the current epoch.
            let mut model: Vec<(i16, i32, Vec<BatchMetadata>)> =
                starts.iter().map(|&seq| (0, seq, Vec::new())).collect();
            for (step, op) in ops.iter().enumerate() {
                let pid = 100 + op.producer as i64;
                let (epoch, next_seq, batches) = &mut model[op.producer];
                if op.bump_epoch {
                    *epoch += 1;
                    *next_seq = 0;
                    batches.clear();
                }
                let last_seq = last_sequence(*next_seq, op.records - 1);
                prop_assert_eq!(
                    m.check_append(pid, *epoch, *next_seq, last_seq).unwrap(),
                    AppendCheck::Accept
                );
                batches.push(append(&mut m, pid, *epoch, *next_seq, op.records, step as i64));
                *next_seq = last_sequence(last_seq, 1);

                if op.snapshot {
                    m.take_snapshot().unwrap();
                    let reloaded = ProducerStateManager::load(dir.path()).unwrap();
                    prop_assert_eq!(reloaded.map_end_offset(), m.map_end_offset());
                    prop_assert_eq!(&reloaded.producers, &m.producers);
                }
            }

            m.take_snapshot().unwrap();
            let reloaded = ProducerStateManager::load(dir.path()).unwrap();
            for (index, (epoch, _, batches)) in model.iter().enumerate() {
                let pid = 100 + index as i64;
                let retained = &batches[batches.len().saturating_sub(NUM_BATCHES_TO_RETAIN)..];
                for original in retained {
                    for manager in [&m, &reloaded] {
                        prop_assert_eq!(
                            manager.check_append(pid, *epoch, original.first_seq, original.last_seq).unwrap(),
                            AppendCheck::Duplicate(*original)
                        );
                    }
                }
            }
        }
    }
}
