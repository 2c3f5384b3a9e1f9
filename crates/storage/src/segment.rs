//! [`LogSegment`]: one `.log` file of whole record batches plus its two sparse indexes
//! (Kafka's `LogSegment`).
//!
//! ```text
//! 00000000000000368769.log        batches with offsets 368769.., bytes as appended
//! 00000000000000368769.index      last offset of a batch -> its position, every 4 KiB
//! 00000000000000368769.timeindex  max timestamp so far -> offset, alongside
//! ```
//!
//! Only the last segment of a log is appended to ("active"). Positions are `u32`, so a segment
//! holds at most 2 GiB, and offsets are stored relative to the base offset, so it spans at most
//! `u32::MAX` offsets; the log rolls before either is exceeded.
//!
//! Reads return a [`FileSlice`] (a shared file handle and a byte range) instead of copying, so the
//! broker can send the bytes with `sendfile`. Indexes of inactive segments are mapped on first
//! use and can be released again ([`LogSegment::release_indexes`]) to bound memory maps when a
//! node holds many partitions.
//!
//! Thread safety: appends and truncation take `&mut self`; reads take `&self` and may run on
//! several threads at once (the lazily opened indexes sit behind a short mutex).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::batch::{self, Compression, RecordBatch, BATCH_HEADER_SIZE, NO_TIMESTAMP};
use crate::config::LogConfig;
use crate::error::IoContext;
use crate::offset_index::OffsetIndex;
use crate::time_index::{TimeIndex, TimestampOffset};
use crate::{Result, StorageError};

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// Appended to a segment's three file names while the log cleaner writes its replacement
/// (`<base>.log.cleaned`, ...). Recovery deletes such files: the swap had not begun.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Appended once a cleaned replacement is complete and fsynced (`<base>.log.swap`): from then
/// on recovery completes the swap instead of discarding it.
pub const SWAP_SUFFIX: &str = ".swap";

/// A segment file name: the base offset zero-padded to 20 digits, then `suffix`.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Parses `<20 digits><suffix>` back to a base offset.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A byte range of a segment file: what a read hands back instead of a copy.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<File>,
    /// Start position in the file.
    pub position: u64,
    /// Length in bytes; always whole batches.
    pub len: u64,
}

impl FileSlice {
    /// `len` bytes of `file` from `position` (reads build these; also for callers and tests
    /// that hold a file of their own).
    pub fn new(file: Arc<File>, position: u64, len: u64) -> Self {
        FileSlice {
            file,
            position,
            len,
        }
    }

    /// The open file the range is in (for `sendfile`). It stays readable even if the segment is
    /// deleted meanwhile.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Copies the range into memory (for callers that cannot send from the file).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

/// Where a batch sits in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLocation {
    /// Base offset of the batch.
    pub base_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// Byte position of the batch in the segment file.
    pub position: u64,
    /// Size of the batch in bytes.
    pub size: u64,
}

/// What a recovery scan of a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// Whole, valid batches kept.
    pub batches: u64,
    /// Bytes cut off the end because they did not form a valid batch.
    pub truncated_bytes: u64,
    /// The offset after the last valid batch, if any.
    pub next_offset: Option<i64>,
}

struct Indexes {
    offset: OffsetIndex,
    time: TimeIndex,
}

/// One segment of a partition log.
pub struct LogSegment {
    dir: PathBuf,
    base_offset: i64,
    log: Arc<File>,
    log_path: PathBuf,
    /// Bytes of whole batches in the file; the write position.
    size: u64,
    indexes: Mutex<Option<Indexes>>,
    index_max_bytes: usize,
    index_interval_bytes: u64,
    bytes_since_last_index_entry: u64,
    /// Largest batch max-timestamp appended and the last offset of the batch carrying it. Kept
    /// outside the index mutex so retention and lookups read it without loading the indexes, and
    /// refreshed whenever an index rebuild learns better.
    max_timestamp_so_far: MaxTimestamp,
    /// Max timestamp of the first batch (or the creation time): what `segment.ms` counts from.
    rolling_based_timestamp: Option<i64>,
    created_ms: i64,
    /// Appended to every file name: empty, or `.cleaned` for a segment the cleaner is writing.
    suffix: &'static str,
}

impl LogSegment {
    /// Creates a new, empty segment at `base_offset` in `dir` (an existing file of that name is
    /// emptied: it can only be a leftover empty segment).
    pub fn create(dir: &Path, base_offset: i64, config: &LogConfig, now_ms: i64) -> Result<Self> {
        Self::create_with_suffix(dir, base_offset, "", config, now_ms)
    }

    /// Creates a new, empty segment whose three file names end in `suffix` after the usual
    /// ones (`<base>.log.cleaned`, ...): the log cleaner writes cleaned segments this way and
    /// renames them into place. Leftovers of the same names are overwritten.
    pub fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        suffix: &'static str,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX) + suffix);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .at(&log_path)?;
        let mut segment = Self::with_file(dir, base_offset, log, log_path, 0, config, now_ms);
        segment.suffix = suffix;
        for kind in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = segment.path_of(kind);
            std::fs::remove_file(&path)
                .or_else(ignore_not_found)
                .at(&path)?;
        }
        segment.open_indexes(true)?;
        Ok(segment)
    }

    /// Opens an existing segment. Its indexes are opened lazily (and rebuilt if missing or
    /// damaged); use [`LogSegment::recover`] for a segment that may hold a torn tail.
    pub fn open(dir: &Path, base_offset: i64, config: &LogConfig, now_ms: i64) -> Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .at(&log_path)?;
        let size = log.metadata().at(&log_path)?.len();
        let segment = Self::with_file(dir, base_offset, log, log_path, size, config, now_ms);
        segment
            .max_timestamp_so_far
            .set(segment.read_last_time_index_entry()?);
        Ok(segment)
    }

    fn with_file(
        dir: &Path,
        base_offset: i64,
        log: File,
        log_path: PathBuf,
        size: u64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Self {
        LogSegment {
            dir: dir.to_path_buf(),
            base_offset,
            log: Arc::new(log),
            log_path,
            size,
            indexes: Mutex::new(None),
            index_max_bytes: config.segment_index_bytes,
            index_interval_bytes: config.index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp_so_far: MaxTimestamp::new(TimestampOffset {
                timestamp: NO_TIMESTAMP,
                offset: base_offset,
            }),
            rolling_based_timestamp: None,
            created_ms: now_ms,
            suffix: "",
        }
    }

    /// Path of this segment's file of kind `kind` ([`LOG_SUFFIX`], [`INDEX_SUFFIX`],
    /// [`TIME_INDEX_SUFFIX`]).
    fn path_of(&self, kind: &str) -> PathBuf {
        self.dir
            .join(file_name(self.base_offset, kind) + self.suffix)
    }

    /// A shared handle on the `.log` file: it stays readable after the segment is deleted or
    /// replaced (the log cleaner reads inactive segments through it without the log's lock).
    pub(crate) fn file_handle(&self) -> Arc<File> {
        Arc::clone(&self.log)
    }

    /// The first offset this segment may hold (its file name).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Size of the `.log` file in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Largest timestamp in the segment, or `None` if no batch carries one.
    pub fn max_timestamp(&self) -> Option<i64> {
        let ts = self.max_timestamp_so_far.get().timestamp;
        (ts >= 0).then_some(ts)
    }

    /// The largest timestamp and the offset of the batch that carried it (ListOffsets
    /// `MAX_TIMESTAMP`).
    pub fn max_timestamp_and_offset(&self) -> TimestampOffset {
        self.max_timestamp_so_far.get()
    }

    /// What retention by time compares against: the largest timestamp, or the file's
    /// modification time when no batch has one (Kafka's `largestTimestamp`).
    pub fn largest_timestamp(&self) -> Result<i64> {
        if let Some(ts) = self.max_timestamp() {
            return Ok(ts);
        }
        let modified = self
            .log
            .metadata()
            .at(&self.log_path)?
            .modified()
            .at(&self.log_path)?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    /// True if the segment should be closed before appending `batch_size` more bytes with
    /// offsets up to `last_offset` and timestamps up to `max_timestamp` (Kafka's `shouldRoll`).
    ///
    /// `segment.ms` counts, as in Kafka, from the first batch's timestamp to the incoming batch's
    /// timestamp; only when the segment has no timestamp does it fall back to wall-clock time
    /// since the segment was created.
    pub fn should_roll(
        &mut self,
        config: &LogConfig,
        batch_size: u64,
        last_offset: i64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> Result<bool> {
        if self.size == 0 {
            return Ok(false);
        }
        if self.full_by_size_time_or_offset(config, batch_size, last_offset, max_timestamp, now_ms)
        {
            return Ok(true);
        }
        let indexes = self.indexes_mut()?;
        Ok(indexes.offset.is_full() || indexes.time.is_full())
    }

    /// Whether [`LogSegment::should_roll`] could say yes for an append of `batch_size` bytes
    /// whose last offset is at most `last_offset_bound` and whose newest timestamp is
    /// `max_timestamp`. Never false when `should_roll` would be true; it reads no index (the
    /// index bound assumes an entry every `index.interval.bytes`, the most there can be).
    pub fn may_roll(
        &self,
        config: &LogConfig,
        batch_size: u64,
        last_offset_bound: i64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        // Time-index entries are the larger (12 bytes), so that index fills first.
        let most_entries = (config.segment_index_bytes / 12) as u64;
        let entries_bound = (self.size + batch_size) / config.index_interval_bytes.max(1) + 2;
        entries_bound >= most_entries
            || self.full_by_size_time_or_offset(
                config,
                batch_size,
                last_offset_bound,
                max_timestamp,
                now_ms,
            )
    }

    /// The roll conditions other than a full index: `segment.bytes`, `segment.ms` (by record
    /// time once the segment has a record) and the 32-bit relative offsets.
    fn full_by_size_time_or_offset(
        &self,
        config: &LogConfig,
        batch_size: u64,
        last_offset: i64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> bool {
        let full_by_size = self.size > config.segment_bytes.saturating_sub(batch_size)
            || self.size + batch_size > u64::from(u32::MAX);
        let waited = match self.rolling_based_timestamp {
            Some(first) => max_timestamp.saturating_sub(first),
            None => now_ms.saturating_sub(self.created_ms),
        };
        let full_by_time = waited > config.segment_ms;
        let full_by_offset = last_offset.saturating_sub(self.base_offset) > i64::from(u32::MAX);
        full_by_size || full_by_time || full_by_offset
    }

    /// Appends whole, validated batches with offsets already assigned, all `>= base_offset`
    /// (follower appends, rewritten batches). Adds index entries every `index.interval.bytes`.
    /// The bytes are in the page cache when this returns, not necessarily on disk (see
    /// [`LogSegment::flush`]).
    pub fn append(&mut self, batches: &[u8]) -> Result<()> {
        let mut metas = Vec::new();
        let mut iter = batch::BatchIter::new(batches, usize::MAX);
        for b in iter.by_ref() {
            let b = b?;
            if b.base_offset() < self.base_offset {
                return Err(StorageError::InvalidRecord(format!(
                    "offset {} is below the segment base {}",
                    b.base_offset(),
                    self.base_offset
                )));
            }
            metas.push(BatchMeta::of(&b));
        }
        if iter.position() != batches.len() {
            return Err(StorageError::CorruptMessage(
                "append of a partial batch".into(),
            ));
        }
        self.log
            .write_all_at(batches, self.size)
            .at(&self.log_path)?;
        self.account(&metas)
    }

    /// Appends one validated client batch as it arrived, giving it `base_offset` and
    /// `leader_epoch` on the way to disk: the first 16 bytes (baseOffset, batchLength,
    /// partitionLeaderEpoch; none covered by the CRC) go from a small buffer, the rest straight
    /// from `batch`, in one vectored write. No copy of the batch is made.
    pub fn append_with_offsets(
        &mut self,
        batch: &[u8],
        base_offset: i64,
        leader_epoch: i32,
    ) -> Result<()> {
        let view = RecordBatch::new(batch)?;
        if base_offset < self.base_offset {
            return Err(StorageError::InvalidRecord(format!(
                "offset {base_offset} is below the segment base {}",
                self.base_offset
            )));
        }
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&base_offset.to_be_bytes());
        prefix[8..12].copy_from_slice(&batch[8..12]);
        prefix[12..].copy_from_slice(&leader_epoch.to_be_bytes());
        let meta = BatchMeta {
            last_offset: base_offset + i64::from(view.last_offset_delta()),
            max_timestamp: view.max_timestamp(),
            size: batch.len() as u64,
        };
        write_all_vectored_at(
            &self.log,
            &self.log_path,
            [&prefix, &batch[16..]],
            self.size,
        )?;
        self.account(&[meta])
    }

    /// Updates size, timestamps and indexes for batches just written at the end of the file.
    /// Allocates nothing: index entries go straight into the maps.
    fn account(&mut self, metas: &[BatchMeta]) -> Result<()> {
        self.indexes_mut()?;
        let interval = self.index_interval_bytes;
        let mut position = self.size;
        let mut since = self.bytes_since_last_index_entry;
        let mut max_ts = self.max_timestamp_so_far.get();
        let indexes = self
            .indexes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .ok_or_else(|| StorageError::corrupt_file(&self.log_path, "indexes unavailable"))?;
        for m in metas {
            if m.max_timestamp > max_ts.timestamp {
                max_ts = TimestampOffset {
                    timestamp: m.max_timestamp,
                    offset: m.last_offset,
                };
            }
            if since > interval {
                indexes.offset.append(m.last_offset, position as u32)?;
                indexes.time.maybe_append(max_ts.timestamp, max_ts.offset)?;
                since = 0;
            }
            since += m.size;
            position += m.size;
            if self.rolling_based_timestamp.is_none() && m.max_timestamp >= 0 {
                self.rolling_based_timestamp = Some(m.max_timestamp);
            }
        }
        self.size = position;
        self.bytes_since_last_index_entry = since;
        self.max_timestamp_so_far.set(max_ts);
        Ok(())
    }

    /// Finds the first batch whose last offset is `>= offset`, scanning from `start_position`
    /// (which must be a batch boundary at or before it). `None` if the segment holds no such
    /// batch.
    pub fn translate_offset(
        &self,
        offset: i64,
        start_position: u64,
    ) -> Result<Option<BatchLocation>> {
        let mut pos = start_position;
        let mut header = [0u8; BATCH_HEADER_SIZE];
        while pos + BATCH_HEADER_SIZE as u64 <= self.size {
            let loc = self.read_location(pos, &mut header)?;
            if loc.last_offset >= offset {
                return Ok(Some(loc));
            }
            pos += loc.size;
        }
        Ok(None)
    }

    fn read_location(
        &self,
        pos: u64,
        header: &mut [u8; BATCH_HEADER_SIZE],
    ) -> Result<BatchLocation> {
        self.log.read_exact_at(header, pos).at(&self.log_path)?;
        let size = batch::batch_size(header, u32::MAX as usize).map_err(|e| {
            StorageError::corrupt_file(&self.log_path, format!("at position {pos}: {e}"))
        })? as u64;
        if pos + size > self.size {
            return Err(StorageError::corrupt_file(
                &self.log_path,
                format!("batch at position {pos} runs past the end of the segment"),
            ));
        }
        let base_offset = i64::from_be_bytes(header[0..8].try_into().unwrap_or_default());
        let delta = i32::from_be_bytes(header[23..27].try_into().unwrap_or_default());
        Ok(BatchLocation {
            base_offset,
            last_offset: base_offset + i64::from(delta),
            position: pos,
            size,
        })
    }

    /// Reads whole batches starting with the one holding `offset`: at most `max_bytes`, but at
    /// least the first batch when `min_one_batch`; never past `max_position` (the position of
    /// the upper bound, e.g. the high watermark, when it falls in this segment). `None` when the
    /// segment has no batch at or after `offset` below `max_position`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        max_position: u64,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>> {
        let start = self.with_indexes(|ix| ix.offset.lookup(offset))?;
        let Some(first) = self.translate_offset(offset, u64::from(start.position))? else {
            return Ok(None);
        };
        let limit = max_position.min(self.size);
        if first.position >= limit {
            return Ok(None);
        }
        let want_end = first.position.saturating_add(max_bytes);
        let end = if want_end >= limit {
            limit
        } else {
            self.batch_boundary_at_or_before(first.position, want_end)?
        };
        let end = if end == first.position && min_one_batch {
            (first.position + first.size).min(limit)
        } else {
            end
        };
        Ok(Some(FileSlice {
            file: Arc::clone(&self.log),
            position: first.position,
            len: end.saturating_sub(first.position),
        }))
    }

    /// The last batch boundary `<= limit` at or after `from` (itself a boundary): jump with the
    /// offset index, then scan headers for at most `index.interval.bytes` or so.
    fn batch_boundary_at_or_before(&self, from: u64, limit: u64) -> Result<u64> {
        let jump = self.with_indexes(|ix| {
            let n = ix.offset.entries();
            // Entries increase in position: binary search for the last one <= limit.
            let (mut lo, mut hi) = (0, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if u64::from(ix.offset.entry(mid).position) <= limit {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo.checked_sub(1)
                .map(|i| u64::from(ix.offset.entry(i).position))
        })?;
        let mut pos = jump.filter(|&p| p >= from).unwrap_or(from);
        let mut header = [0u8; BATCH_HEADER_SIZE];
        while pos + BATCH_HEADER_SIZE as u64 <= self.size {
            let loc = self.read_location(pos, &mut header)?;
            if pos + loc.size > limit {
                break;
            }
            pos += loc.size;
        }
        Ok(pos)
    }

    /// Position of the batch holding `offset` (or of the first batch after it), or the segment
    /// size when there is none: the byte bound for reads up to `offset` exclusive.
    pub fn position_of(&self, offset: i64) -> Result<u64> {
        let start = self.with_indexes(|ix| ix.offset.lookup(offset))?;
        Ok(self
            .translate_offset(offset, u64::from(start.position))?
            .map_or(self.size, |loc| {
                if loc.base_offset >= offset {
                    loc.position
                } else {
                    loc.position + loc.size
                }
            }))
    }

    /// The first record with timestamp `>= timestamp` at or after `starting_offset`: its
    /// timestamp and offset (Kafka's `findOffsetByTimestamp`).
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        starting_offset: i64,
    ) -> Result<Option<TimestampOffset>> {
        let start = self.with_indexes(|ix| {
            let t = ix.time.lookup(timestamp);
            ix.offset.lookup(t.offset.max(starting_offset))
        })?;
        let mut pos = u64::from(start.position);
        let mut header = [0u8; BATCH_HEADER_SIZE];
        while pos + BATCH_HEADER_SIZE as u64 <= self.size {
            let loc = self.read_location(pos, &mut header)?;
            let max_ts = i64::from_be_bytes(header[35..43].try_into().unwrap_or_default());
            if max_ts >= timestamp && loc.last_offset >= starting_offset {
                let mut buf = vec![0u8; loc.size as usize];
                self.log.read_exact_at(&mut buf, pos).at(&self.log_path)?;
                let b = RecordBatch::new(&buf)?;
                return Ok(Some(first_record_at_or_after(
                    &b,
                    timestamp,
                    starting_offset,
                )));
            }
            pos += loc.size;
        }
        Ok(None)
    }

    /// Rebuilds both indexes by scanning the whole file, validating every batch (framing, magic,
    /// CRC, offsets increasing). The file is truncated at the first invalid byte. `visit` sees
    /// each valid batch (to rebuild the leader-epoch cache and producer state).
    pub fn recover(
        &mut self,
        max_batch_size: usize,
        mut visit: impl FnMut(&RecordBatch<'_>) -> Result<()>,
    ) -> Result<RecoveryOutcome> {
        self.open_indexes(true)?;
        {
            let ix = self.indexes_mut()?;
            ix.offset.reset();
            ix.time.reset();
        }
        self.bytes_since_last_index_entry = 0;
        let mut max_ts = TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: self.base_offset,
        };
        self.rolling_based_timestamp = None;
        let file_size = self.log.metadata().at(&self.log_path)?.len();
        let mut reader = SegmentReader::new(
            Arc::clone(&self.log),
            self.log_path.clone(),
            0,
            file_size,
            max_batch_size,
        );
        let mut valid_end = 0u64;
        let mut batches = 0u64;
        let mut next_offset: Option<i64> = None;
        let mut pending: Vec<(i64, u64)> = Vec::new();
        let mut time_entries: Vec<TimestampOffset> = Vec::new();
        loop {
            let (pos, b) = match reader.next_batch()? {
                Scan::Batch(pos, b) => (pos, b),
                Scan::End => break,
                Scan::Invalid(pos, reason) => {
                    tracing::warn!(segment = %self.log_path.display(), position = pos, %reason, "invalid data in segment; truncating");
                    break;
                }
            };
            if let Err(e) = b.verify_crc() {
                tracing::warn!(segment = %self.log_path.display(), position = pos, error = %e, "corrupt batch in segment; truncating");
                break;
            }
            if b.base_offset() < self.base_offset
                || next_offset.is_some_and(|n| b.base_offset() < n)
                || b.last_offset_delta() < 0
            {
                tracing::warn!(segment = %self.log_path.display(), position = pos, offset = b.base_offset(), "offsets out of order in segment; truncating");
                break;
            }
            visit(&b)?;
            if b.max_timestamp() > max_ts.timestamp {
                max_ts = TimestampOffset {
                    timestamp: b.max_timestamp(),
                    offset: b.last_offset(),
                };
            }
            if self.rolling_based_timestamp.is_none() && b.max_timestamp() >= 0 {
                self.rolling_based_timestamp = Some(b.max_timestamp());
            }
            if self.bytes_since_last_index_entry > self.index_interval_bytes {
                pending.push((b.last_offset(), pos));
                time_entries.push(max_ts);
                self.bytes_since_last_index_entry = 0;
            }
            self.bytes_since_last_index_entry += b.size() as u64;
            valid_end = pos + b.size() as u64;
            next_offset = Some(b.next_offset());
            batches += 1;
        }
        {
            let ix = self.indexes_mut()?;
            for ((offset, pos), t) in pending.into_iter().zip(time_entries) {
                if ix.offset.is_full() || ix.time.is_full() {
                    break;
                }
                ix.offset.append(offset, pos as u32)?;
                ix.time.maybe_append(t.timestamp, t.offset)?;
            }
        }
        self.max_timestamp_so_far.set(max_ts);
        let truncated = file_size - valid_end;
        if truncated > 0 {
            self.log.set_len(valid_end).at(&self.log_path)?;
        }
        self.size = valid_end;
        Ok(RecoveryOutcome {
            batches,
            truncated_bytes: truncated,
            next_offset,
        })
    }

    /// Calls `f` on every batch whose last offset is `>= from`, in order, reading sequentially
    /// from the index position. Stops with an error at invalid data.
    pub fn for_each_batch_from(
        &self,
        from: i64,
        mut f: impl FnMut(&RecordBatch<'_>) -> Result<()>,
    ) -> Result<()> {
        let start = self.with_indexes(|ix| ix.offset.lookup(from))?;
        let mut reader = SegmentReader::new(
            Arc::clone(&self.log),
            self.log_path.clone(),
            u64::from(start.position),
            self.size,
            usize::MAX,
        );
        loop {
            match reader.next_batch()? {
                Scan::Batch(_, b) if b.last_offset() < from => {}
                Scan::Batch(_, b) => f(&b)?,
                Scan::End => return Ok(()),
                Scan::Invalid(pos, reason) => {
                    return Err(StorageError::corrupt_file(
                        &self.log_path,
                        format!("at position {pos}: {reason}"),
                    ))
                }
            }
        }
    }

    /// The offset after the last batch, found by scanning from the last index entry; `None`
    /// when the segment is empty.
    pub fn read_next_offset(&self) -> Result<Option<i64>> {
        let start = self.with_indexes(|ix| ix.offset.last_entry())?;
        let mut pos = u64::from(start.position);
        let mut next = None;
        let mut header = [0u8; BATCH_HEADER_SIZE];
        while pos + BATCH_HEADER_SIZE as u64 <= self.size {
            let loc = self.read_location(pos, &mut header)?;
            next = Some(loc.last_offset + 1);
            pos += loc.size;
        }
        Ok(next)
    }

    /// Removes every batch with an offset `>= offset` (a batch straddling `offset` goes whole).
    /// Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64> {
        let start = self.with_indexes(|ix| ix.offset.lookup(offset))?;
        let Some(loc) = self.translate_offset(offset, u64::from(start.position))? else {
            return Ok(0);
        };
        let removed = self.size - loc.position;
        {
            let max_bytes = self.index_max_bytes;
            let ix = self.indexes_mut()?;
            ix.offset.truncate_to(offset);
            ix.time.truncate_to(offset);
            ix.offset.make_writable(max_bytes)?;
            ix.time.make_writable(max_bytes)?;
        }
        self.log.set_len(loc.position).at(&self.log_path)?;
        self.size = loc.position;
        self.bytes_since_last_index_entry = 0;
        // The time index no longer covers what was cut: take its last entry, as Kafka does.
        let last = self.with_indexes(|ix| ix.time.last_entry())?;
        self.max_timestamp_so_far
            .set(last.unwrap_or(TimestampOffset {
                timestamp: NO_TIMESTAMP,
                offset: self.base_offset,
            }));
        if self.size == 0 {
            self.rolling_based_timestamp = None;
        }
        Ok(removed)
    }

    /// fsyncs the log file and flushes both index maps.
    pub fn flush(&self) -> Result<()> {
        self.log.sync_data().at(&self.log_path)?;
        let guard = self.lock_indexes();
        if let Some(ix) = guard.as_ref() {
            ix.offset.flush()?;
            ix.time.flush()?;
        }
        Ok(())
    }

    /// Called when the segment stops being the active one: records its max timestamp in the
    /// time index and trims both index files to their entries.
    pub fn on_become_inactive(&mut self) -> Result<()> {
        let max_ts = self.max_timestamp_so_far.get();
        let ix = self.indexes_mut()?;
        if max_ts.timestamp >= 0 {
            ix.time.maybe_append(max_ts.timestamp, max_ts.offset)?;
        }
        ix.offset.trim()?;
        ix.time.trim()?;
        Ok(())
    }

    /// Makes a trimmed segment writable again (it became the last one after truncation).
    pub fn on_become_active(&mut self) -> Result<()> {
        let max_bytes = self.index_max_bytes;
        let ix = self.indexes_mut()?;
        ix.offset.make_writable(max_bytes)?;
        ix.time.make_writable(max_bytes)?;
        Ok(())
    }

    /// Checks the max timestamp read cheaply from the time index at open against what the
    /// segment can hold (offsets below `next_offset`, the next segment's base or the LEO); when
    /// it is impossible the index is damaged, and both indexes are rebuilt from the log now.
    pub fn verify_max_timestamp(&self, next_offset: i64) -> Result<()> {
        let m = self.max_timestamp_so_far.get();
        let plausible = m.timestamp >= NO_TIMESTAMP
            && m.offset >= self.base_offset
            && (m.offset < next_offset
                || (m.timestamp == NO_TIMESTAMP && m.offset == self.base_offset));
        if !plausible {
            tracing::warn!(segment = %self.log_path.display(), "time index disagrees with the log; rebuilding indexes");
            let offset_path = self.path_of(INDEX_SUFFIX);
            let time_path = self.path_of(TIME_INDEX_SUFFIX);
            let mut guard = self.lock_indexes();
            *guard = None;
            *guard = Some(self.rebuild_indexes(&offset_path, &time_path)?);
        }
        Ok(())
    }

    /// Drops the index maps of an inactive segment; the next lookup maps them again.
    pub fn release_indexes(&mut self) -> Result<()> {
        if let Some(ix) = self
            .indexes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            ix.offset.flush()?;
            ix.time.flush()?;
        }
        Ok(())
    }

    /// True when the index maps are loaded.
    pub fn indexes_loaded(&self) -> bool {
        self.lock_indexes().is_some()
    }

    /// Deletes the segment's files.
    pub fn delete(mut self) -> Result<()> {
        *self.indexes.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        for kind in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = self.path_of(kind);
            std::fs::remove_file(&path)
                .or_else(ignore_not_found)
                .at(&path)?;
        }
        Ok(())
    }

    fn lock_indexes(&self) -> MutexGuard<'_, Option<Indexes>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_indexes<R>(&self, f: impl FnOnce(&Indexes) -> R) -> Result<R> {
        let mut guard = self.lock_indexes();
        if guard.is_none() {
            *guard = Some(self.load_indexes()?);
        }
        match guard.as_ref() {
            Some(ix) => Ok(f(ix)),
            None => Err(StorageError::corrupt_file(
                &self.log_path,
                "indexes unavailable",
            )),
        }
    }

    fn indexes_mut(&mut self) -> Result<&mut Indexes> {
        if self
            .indexes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            let loaded = self.load_indexes()?;
            *self.indexes.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
        }
        self.indexes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .ok_or_else(|| StorageError::corrupt_file(&self.log_path, "indexes unavailable"))
    }

    fn open_indexes(&mut self, writable: bool) -> Result<()> {
        let ix = Indexes {
            offset: OffsetIndex::open(
                &self.path_of(INDEX_SUFFIX),
                self.base_offset,
                self.index_max_bytes,
                writable,
            )?,
            time: TimeIndex::open(
                &self.path_of(TIME_INDEX_SUFFIX),
                self.base_offset,
                self.index_max_bytes,
                writable,
            )?,
        };
        *self.indexes.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(ix);
        Ok(())
    }

    /// Opens the existing index files read-only and checks them; missing or damaged ones are
    /// rebuilt from the log.
    fn load_indexes(&self) -> Result<Indexes> {
        let offset_path = self.path_of(INDEX_SUFFIX);
        let time_path = self.path_of(TIME_INDEX_SUFFIX);
        if offset_path.exists() && time_path.exists() {
            let loaded =
                OffsetIndex::open(&offset_path, self.base_offset, self.index_max_bytes, false)
                    .and_then(|offset| {
                        offset.sanity_check(self.size)?;
                        let time = TimeIndex::open(
                            &time_path,
                            self.base_offset,
                            self.index_max_bytes,
                            false,
                        )?;
                        time.sanity_check(i64::MAX)?;
                        Ok(Indexes { offset, time })
                    });
            match loaded {
                Ok(ix) if ix.offset.entries() > 0 || !self.needs_index_entry().unwrap_or(true) => {
                    return Ok(ix)
                }
                Ok(_) => {
                    tracing::warn!(segment = %self.log_path.display(), "empty index for a non-empty segment; rebuilding")
                }
                Err(e) => {
                    tracing::warn!(segment = %self.log_path.display(), error = %e, "damaged index; rebuilding")
                }
            }
        } else {
            tracing::warn!(segment = %self.log_path.display(), "missing index; rebuilding");
        }
        self.rebuild_indexes(&offset_path, &time_path)
    }

    /// True if appending this segment's batches would have added at least one index entry:
    /// some batch starts more than `index.interval.bytes` into the file. (A segment of one big
    /// batch legitimately has an empty index.)
    fn needs_index_entry(&self) -> Result<bool> {
        let mut pos = 0u64;
        let mut header = [0u8; BATCH_HEADER_SIZE];
        while pos <= self.index_interval_bytes && pos + BATCH_HEADER_SIZE as u64 <= self.size {
            pos += self.read_location(pos, &mut header)?.size;
        }
        Ok(pos < self.size)
    }

    /// Writes fresh index files from a scan of the log (which is not modified).
    fn rebuild_indexes(&self, offset_path: &Path, time_path: &Path) -> Result<Indexes> {
        for p in [offset_path, time_path] {
            std::fs::remove_file(p).or_else(ignore_not_found).at(p)?;
        }
        let mut ix = Indexes {
            offset: OffsetIndex::open(offset_path, self.base_offset, self.index_max_bytes, true)?,
            time: TimeIndex::open(time_path, self.base_offset, self.index_max_bytes, true)?,
        };
        let mut reader = SegmentReader::new(
            Arc::clone(&self.log),
            self.log_path.clone(),
            0,
            self.size,
            usize::MAX,
        );
        let mut since = 0u64;
        let mut max_ts = TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: self.base_offset,
        };
        while let Scan::Batch(pos, b) = reader.next_batch()? {
            if b.max_timestamp() > max_ts.timestamp {
                max_ts = TimestampOffset {
                    timestamp: b.max_timestamp(),
                    offset: b.last_offset(),
                };
            }
            if since > self.index_interval_bytes && !ix.offset.is_full() && !ix.time.is_full() {
                ix.offset.append(b.last_offset(), pos as u32)?;
                ix.time.maybe_append(max_ts.timestamp, max_ts.offset)?;
                since = 0;
            }
            since += b.size() as u64;
        }
        if max_ts.timestamp >= 0 {
            ix.time.maybe_append(max_ts.timestamp, max_ts.offset)?;
        }
        ix.offset.trim()?;
        ix.time.trim()?;
        self.max_timestamp_so_far.set(max_ts);
        Ok(ix)
    }

    /// Reads the last time-index entry with `pread`, without mapping the index: enough to know
    /// the segment's largest timestamp for retention.
    fn read_last_time_index_entry(&self) -> Result<TimestampOffset> {
        let path = self.path_of(TIME_INDEX_SUFFIX);
        let none = TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: self.base_offset,
        };
        let Ok(file) = File::open(&path) else {
            return Ok(none);
        };
        let len = file.metadata().at(&path)?.len();
        let entry = crate::time_index::ENTRY_SIZE as u64;
        if len < entry || !len.is_multiple_of(entry) {
            return Ok(none);
        }
        let mut raw = [0u8; 12];
        file.read_exact_at(&mut raw, len - entry).at(&path)?;
        let ts = i64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
        let rel = u32::from_be_bytes(raw[8..].try_into().unwrap_or_default());
        Ok(TimestampOffset {
            timestamp: ts,
            offset: self.base_offset + i64::from(rel),
        })
    }
}

/// What the index bookkeeping needs to know of an appended batch.
struct BatchMeta {
    last_offset: i64,
    max_timestamp: i64,
    size: u64,
}

impl BatchMeta {
    fn of(b: &RecordBatch<'_>) -> Self {
        BatchMeta {
            last_offset: b.last_offset(),
            max_timestamp: b.max_timestamp(),
            size: b.size() as u64,
        }
    }
}

/// Writes all of `parts`, in order, at `offset` with `pwritev`, retrying short writes and EINTR.
/// No allocation: the iovecs live on the stack.
fn write_all_vectored_at(file: &File, path: &Path, parts: [&[u8]; 2], offset: u64) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut parts = parts;
    let mut offset = offset;
    loop {
        let first = parts.iter().position(|p| !p.is_empty());
        let Some(first) = first else { return Ok(()) };
        let iov = [
            libc::iovec {
                iov_base: parts[first].as_ptr() as *mut libc::c_void,
                iov_len: parts[first].len(),
            },
            libc::iovec {
                iov_base: parts[1].as_ptr() as *mut libc::c_void,
                iov_len: parts[1].len(),
            },
        ];
        let count: libc::c_int = if first == 0 { 2 } else { 1 };
        let at = libc::off_t::try_from(offset).map_err(|_| {
            StorageError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset too large"),
            )
        })?;
        // SAFETY: the first `count` iovecs point into live slices borrowed for the duration of
        // the call, with their exact lengths; the fd is owned by `file`, which outlives the call.
        let written = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count, at) };
        if written < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(StorageError::io(path, err));
        }
        if written == 0 {
            return Err(StorageError::io(path, std::io::ErrorKind::WriteZero.into()));
        }
        let mut n = written as usize;
        offset += n as u64;
        for p in parts.iter_mut() {
            let take = n.min(p.len());
            *p = &p[take..];
            n -= take;
        }
    }
}

/// A [`TimestampOffset`] readable and writable through `&self`.
struct MaxTimestamp {
    timestamp: AtomicI64,
    offset: AtomicI64,
}

impl MaxTimestamp {
    fn new(v: TimestampOffset) -> Self {
        MaxTimestamp {
            timestamp: AtomicI64::new(v.timestamp),
            offset: AtomicI64::new(v.offset),
        }
    }
    fn get(&self) -> TimestampOffset {
        TimestampOffset {
            timestamp: self.timestamp.load(Ordering::Relaxed),
            offset: self.offset.load(Ordering::Relaxed),
        }
    }
    fn set(&self, v: TimestampOffset) {
        self.timestamp.store(v.timestamp, Ordering::Relaxed);
        self.offset.store(v.offset, Ordering::Relaxed);
    }
}

fn ignore_not_found(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The first record of `b` at or after `starting_offset` with a timestamp `>= timestamp`, found
/// as Kafka's `FileRecords.searchForTimestamp` finds it: record by record, compressed batches
/// after decompressing their records (at most [`MAX_DECOMPRESSED_BATCH_BYTES`]). Under
/// LogAppendTime every record carries the batch's max timestamp, so the first record at or
/// after `starting_offset` is the answer and nothing is decompressed.
///
/// Falls back to the batch's max timestamp and first offset at or after `starting_offset` (a
/// consumer starting there reads at most this one batch early) when no record qualifies, and
/// when the records cannot be decoded. Kafka fails the lookup on an undecodable batch; here one
/// damaged batch, already past its CRC check at append, does not make the partition's time
/// lookups fail, and the warning names it.
///
/// [`MAX_DECOMPRESSED_BATCH_BYTES`]: crate::compression::MAX_DECOMPRESSED_BATCH_BYTES
fn first_record_at_or_after(
    b: &RecordBatch<'_>,
    timestamp: i64,
    starting_offset: i64,
) -> TimestampOffset {
    let whole_batch = TimestampOffset {
        timestamp: b.max_timestamp(),
        offset: b.base_offset().max(starting_offset),
    };
    if b.timestamp_type() == batch::TimestampType::LogAppendTime {
        return whole_batch;
    }
    let mut found = None;
    let walked = crate::compression::for_each_record(
        b,
        crate::compression::MAX_DECOMPRESSED_BATCH_BYTES,
        |r| {
            let ts = b.base_timestamp().wrapping_add(r.timestamp_delta);
            let offset = b.base_offset().wrapping_add(i64::from(r.offset_delta));
            if ts >= timestamp && offset >= starting_offset {
                found = Some(TimestampOffset {
                    timestamp: ts,
                    offset,
                });
            }
            found.is_none()
        },
    );
    if let Err(e) = walked {
        let what = match b.compression() {
            Ok(Compression::None) => "malformed records",
            _ => "undecodable compressed records",
        };
        tracing::warn!(
            offset = b.base_offset(),
            error = %e,
            "{what} in a batch searched by timestamp; answering with the batch's first offset"
        );
    }
    found.unwrap_or(whole_batch)
}

/// Reads every batch of the segment file at `path` in order (without checking CRCs; callers
/// decide), calling `f` with its position. Returns where and why the scan stopped early, if it
/// did: a torn or damaged tail. For tools such as `rivulet dump-log`.
pub fn scan_file(
    path: &Path,
    mut f: impl FnMut(u64, &RecordBatch<'_>),
) -> Result<Option<(u64, String)>> {
    let file = File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let mut reader = SegmentReader::new(Arc::new(file), path.to_path_buf(), 0, len, usize::MAX);
    loop {
        match reader.next_batch()? {
            Scan::Batch(pos, b) => f(pos, &b),
            Scan::End => return Ok(None),
            Scan::Invalid(pos, reason) => return Ok(Some((pos, reason))),
        }
    }
}

/// One step of a sequential scan of a segment file.
pub(crate) enum Scan<'a> {
    /// A framed batch (CRC not yet checked) at this position.
    Batch(u64, RecordBatch<'a>),
    /// Clean end of the data.
    End,
    /// Bytes at this position that are not a whole batch.
    Invalid(u64, String),
}

/// Sequential reader over a segment file with a reusable buffer: recovery, index rebuilds and
/// the dump tool read every batch without a read call per batch.
pub(crate) struct SegmentReader {
    file: Arc<File>,
    path: PathBuf,
    end: u64,
    max_batch_size: usize,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
}

const READ_CHUNK: usize = 1 << 20;

impl SegmentReader {
    pub(crate) fn new(
        file: Arc<File>,
        path: PathBuf,
        start: u64,
        end: u64,
        max_batch_size: usize,
    ) -> Self {
        SegmentReader {
            file,
            path,
            end,
            max_batch_size,
            buf: Vec::new(),
            buf_start: start,
            pos: start,
        }
    }

    /// Ensures `buf` holds `[pos, pos + len)`; false if the file ends first.
    fn fill(&mut self, len: usize) -> Result<bool> {
        let have_from = self.pos - self.buf_start;
        if (have_from as usize) + len <= self.buf.len() {
            return Ok(true);
        }
        if self.pos + len as u64 > self.end {
            return Ok(false);
        }
        let want = len.max(READ_CHUNK).min((self.end - self.pos) as usize);
        self.buf.resize(want, 0);
        self.file
            .read_exact_at(&mut self.buf, self.pos)
            .at(&self.path)?;
        self.buf_start = self.pos;
        Ok(true)
    }

    pub(crate) fn next_batch(&mut self) -> Result<Scan<'_>> {
        if self.pos >= self.end {
            return Ok(Scan::End);
        }
        if !self.fill(batch::LOG_OVERHEAD)? {
            return Ok(Scan::Invalid(self.pos, "truncated batch header".into()));
        }
        let at = (self.pos - self.buf_start) as usize;
        let size =
            match batch::batch_size(&self.buf[at..at + batch::LOG_OVERHEAD], self.max_batch_size) {
                Ok(size) => size,
                Err(e) => return Ok(Scan::Invalid(self.pos, e.to_string())),
            };
        if !self.fill(size)? {
            return Ok(Scan::Invalid(
                self.pos,
                format!("batch of {size} bytes runs past the end"),
            ));
        }
        let at = (self.pos - self.buf_start) as usize;
        let pos = self.pos;
        match RecordBatch::new(&self.buf[at..at + size]) {
            Ok(b) => {
                self.pos += size as u64;
                Ok(Scan::Batch(pos, b))
            }
            Err(e) => Ok(Scan::Invalid(pos, e.to_string())),
        }
    }
}
