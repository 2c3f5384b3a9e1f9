//! [`TimeIndex`]: the sparse map from timestamps to offsets in a segment (Kafka's `TimeIndex`).
//!
//! File `<base offset>.timeindex`. Each 12-byte entry is `timestamp: i64 BE, relative offset:
//! u32 BE`: the largest timestamp seen so far in the segment and the offset of the batch that
//! carried it. Entries strictly increase in timestamp and never decrease in offset, so a lookup
//! for time T returns an offset from which every record with timestamp >= T is found by scanning
//! forward. Entries are added alongside offset-index entries, and once more when the segment
//! closes, so the last entry holds the segment's largest timestamp.
//!
//! Not synchronised; see [`crate::index_file`].

use std::path::Path;

use crate::index_file::IndexFile;
use crate::{Result, StorageError};

/// Size of one entry in bytes.
pub const ENTRY_SIZE: usize = 12;

/// One entry: a timestamp and the absolute offset of the batch where it was first reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// Absolute offset.
    pub offset: i64,
}

/// The sparse time index of one segment.
pub struct TimeIndex {
    file: IndexFile,
    base_offset: i64,
}

impl TimeIndex {
    /// Opens or creates the index of the segment with `base_offset`; see [`IndexFile::open`].
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, writable: bool) -> Result<Self> {
        Ok(TimeIndex {
            file: IndexFile::open(path, ENTRY_SIZE, max_bytes, writable)?,
            base_offset,
        })
    }

    fn decode(&self, raw: &[u8]) -> TimestampOffset {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let rel = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
        TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            offset: self.base_offset + i64::from(rel),
        }
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// True when only the spare slot is left: the segment must roll. As in Kafka, one slot is
    /// kept for the entry written when the segment closes.
    pub fn is_full(&self) -> bool {
        self.entries() + 1 >= self.file.capacity()
    }

    /// Entry `i`.
    pub fn entry(&self, i: usize) -> TimestampOffset {
        self.decode(self.file.entry(i))
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries().checked_sub(1).map(|i| self.entry(i))
    }

    /// Adds an entry when `timestamp` is above the last one (otherwise it tells nothing new).
    /// May use the spare slot that [`Self::is_full`] keeps, as the closing entry does.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp {
                return Ok(());
            }
            if offset < last.offset {
                return Err(StorageError::corrupt_file(
                    self.file.path(),
                    format!("offset {offset} is below the last entry's {}", last.offset),
                ));
            }
        }
        let rel = offset - self.base_offset;
        if rel < 0 || rel > i64::from(u32::MAX) {
            return Err(StorageError::corrupt_file(
                self.file.path(),
                format!(
                    "offset {offset} is out of range for base {}",
                    self.base_offset
                ),
            ));
        }
        let mut raw = [0u8; ENTRY_SIZE];
        raw[..8].copy_from_slice(&timestamp.to_be_bytes());
        raw[8..].copy_from_slice(&(rel as u32).to_be_bytes());
        self.file.push(&raw)
    }

    /// The entry with the largest timestamp `<= target`, or `(-1, base offset)` when none:
    /// scanning the log from that offset finds the first record at or after `target`.
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        match self
            .file
            .floor_by(&target, |raw| self.decode(raw).timestamp)
        {
            Some(i) => self.entry(i),
            None => TimestampOffset {
                timestamp: crate::batch::NO_TIMESTAMP,
                offset: self.base_offset,
            },
        }
    }

    /// Removes every entry with an offset `>= offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = match self
            .file
            .floor_by(&(offset - 1), |raw| self.decode(raw).offset)
        {
            // Offsets may repeat; floor_by finds the last entry with offset <= offset - 1.
            Some(i) => i + 1,
            None => 0,
        };
        self.file.truncate_entries(keep);
    }

    /// Removes every entry.
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Checks that timestamps strictly increase and offsets do not decrease and stay below
    /// `next_offset`; a failure means the index must be rebuilt from the log.
    pub fn sanity_check(&self, next_offset: i64) -> Result<()> {
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.entries() {
            let e = self.entry(i);
            let ordered = prev.is_none_or(|p| e.timestamp > p.timestamp && e.offset >= p.offset);
            if !ordered || e.offset >= next_offset.max(self.base_offset + 1) {
                return Err(StorageError::corrupt_file(
                    self.file.path(),
                    format!("entry {i} ({e:?}) is out of order or beyond the log"),
                ));
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// Flushes the map to disk.
    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }

    /// Trims the file to its entries (segment no longer written).
    pub fn trim(&mut self) -> Result<()> {
        self.file.trim()
    }

    /// Re-grows the file to take appends.
    pub fn make_writable(&mut self, max_bytes: usize) -> Result<()> {
        self.file.make_writable(max_bytes)
    }

    /// Renames the file, keeping the map.
    pub fn rename_to(&mut self, to: &Path) -> Result<()> {
        self.file.rename_to(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn appends_only_increasing_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("t"), 50, 4096, true).unwrap();
        idx.maybe_append(1000, 55).unwrap();
        idx.maybe_append(900, 60).unwrap();
        idx.maybe_append(1000, 61).unwrap();
        idx.maybe_append(2000, 70).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.lookup(999).offset, 50);
        assert_eq!(idx.lookup(999).timestamp, -1);
        assert_eq!(
            idx.lookup(1500),
            TimestampOffset {
                timestamp: 1000,
                offset: 55
            }
        );
        assert_eq!(
            idx.lookup(i64::MAX),
            TimestampOffset {
                timestamp: 2000,
                offset: 70
            }
        );
        assert!(idx.maybe_append(3000, 65).is_err());
    }

    #[test]
    fn truncate_removes_entries_at_or_after_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("t"), 0, 4096, true).unwrap();
        for (ts, off) in [(10, 1), (20, 5), (30, 9)] {
            idx.maybe_append(ts, off).unwrap();
        }
        idx.truncate_to(5);
        assert_eq!(
            idx.last_entry(),
            Some(TimestampOffset {
                timestamp: 10,
                offset: 1
            })
        );
        idx.sanity_check(5).unwrap();
        assert!(idx.sanity_check(1).is_err());
    }

    proptest! {
        #[test]
        fn lookup_is_floor_by_timestamp(
            steps in proptest::collection::vec((1i64..100, 0i64..20), 0..150),
            targets in proptest::collection::vec(0i64..20_000, 1..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut idx = TimeIndex::open(&dir.path().join("t"), 0, 1 << 16, true).unwrap();
            let (mut ts, mut off) = (0i64, 0i64);
            let mut entries = Vec::new();
            for (dt, doff) in steps {
                ts += dt;
                off += doff;
                idx.maybe_append(ts, off).unwrap();
                entries.push(TimestampOffset { timestamp: ts, offset: off });
            }
            for t in targets {
                let expected = entries.iter().rev().find(|e| e.timestamp <= t).copied()
                    .unwrap_or(TimestampOffset { timestamp: -1, offset: 0 });
                prop_assert_eq!(idx.lookup(t), expected);
            }
        }
    }
}
