//! [`OffsetIndex`]: the sparse map from offsets to positions in a segment's `.log` file
//! (Kafka's `OffsetIndex`).
//!
//! File `<base offset>.index`. Each 8-byte entry is `relative offset: u32 BE, position: u32 BE`,
//! where the relative offset is the *last* offset of a batch minus the segment's base offset and
//! the position is where that batch starts. An entry is added after every
//! `index.interval.bytes` of appended data, so a lookup lands at most that far before the batch
//! sought and the scan from there is short. Entries strictly increase in both fields.
//!
//! Not synchronised; see [`crate::index_file`].

use std::path::Path;

use crate::index_file::IndexFile;
use crate::{Result, StorageError};

/// Size of one entry in bytes.
pub const ENTRY_SIZE: usize = 8;

/// One entry: an absolute offset and the file position of the batch that ends at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset.
    pub offset: i64,
    /// Byte position in the segment's log file.
    pub position: u32,
}

/// The sparse offset index of one segment.
pub struct OffsetIndex {
    file: IndexFile,
    base_offset: i64,
}

impl OffsetIndex {
    /// Opens or creates the index of the segment with `base_offset`; see [`IndexFile::open`].
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, writable: bool) -> Result<Self> {
        Ok(OffsetIndex {
            file: IndexFile::open(path, ENTRY_SIZE, max_bytes, writable)?,
            base_offset,
        })
    }

    fn decode(&self, raw: &[u8]) -> OffsetPosition {
        let rel = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let position = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        OffsetPosition {
            offset: self.base_offset + i64::from(rel),
            position,
        }
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// True when no more entries fit: the segment must roll.
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Entry `i`.
    pub fn entry(&self, i: usize) -> OffsetPosition {
        self.decode(self.file.entry(i))
    }

    /// The last entry, or `(base offset, 0)` when empty.
    pub fn last_entry(&self) -> OffsetPosition {
        match self.entries() {
            0 => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
            n => self.entry(n - 1),
        }
    }

    /// Adds an entry. `offset` must exceed the last entry's offset and fit in 32 bits relative
    /// to the base offset (segment rolling guarantees both).
    pub fn append(&mut self, offset: i64, position: u32) -> Result<()> {
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
        if self.entries() > 0 && offset <= self.last_entry().offset {
            return Err(StorageError::corrupt_file(
                self.file.path(),
                format!(
                    "offset {offset} is not above the last entry {}",
                    self.last_entry().offset
                ),
            ));
        }
        let mut raw = [0u8; ENTRY_SIZE];
        raw[..4].copy_from_slice(&(rel as u32).to_be_bytes());
        raw[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&raw)
    }

    /// The entry with the largest offset `<= target`, or `(base offset, 0)`: where to start
    /// scanning the log for the batch containing `target`.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let found = self.file.floor_by(&target, |raw| self.decode(raw).offset);
        match found {
            Some(i) => self.entry(i),
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Removes every entry with an offset `>= offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = match self
            .file
            .floor_by(&(offset - 1), |raw| self.decode(raw).offset)
        {
            Some(i) => i + 1,
            None => 0,
        };
        self.file.truncate_entries(keep);
    }

    /// Removes every entry.
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Checks that entries strictly increase in offset and position and are not below the base;
    /// a failure means the index must be rebuilt from the log.
    pub fn sanity_check(&self, log_size: u64) -> Result<()> {
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..self.entries() {
            let e = self.entry(i);
            let ordered = prev.is_none_or(|p| e.offset > p.offset && e.position > p.position);
            if !ordered || u64::from(e.position) >= log_size.max(1) {
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

    fn index(dir: &tempfile::TempDir, base: i64, max_bytes: usize) -> OffsetIndex {
        OffsetIndex::open(&dir.path().join("x.index"), base, max_bytes, true).unwrap()
    }

    #[test]
    fn lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index(&dir, 100, 4096);
        idx.append(110, 1000).unwrap();
        idx.append(120, 2000).unwrap();
        idx.append(130, 3000).unwrap();
        assert_eq!(
            idx.lookup(99),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(
            idx.lookup(109),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(
            idx.lookup(110),
            OffsetPosition {
                offset: 110,
                position: 1000
            }
        );
        assert_eq!(
            idx.lookup(125),
            OffsetPosition {
                offset: 120,
                position: 2000
            }
        );
        assert_eq!(
            idx.lookup(10_000),
            OffsetPosition {
                offset: 130,
                position: 3000
            }
        );
    }

    #[test]
    fn rejects_non_increasing_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index(&dir, 0, 4096);
        idx.append(5, 10).unwrap();
        assert!(idx.append(5, 20).is_err());
        assert!(idx.append(-1, 20).is_err());
    }

    #[test]
    fn fills_up_at_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index(&dir, 0, 3 * ENTRY_SIZE + 5);
        for i in 1..=3 {
            idx.append(i, i as u32 * 10).unwrap();
        }
        assert!(idx.is_full());
        assert!(idx.append(4, 40).is_err());
    }

    #[test]
    fn trim_then_reopen_keeps_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx = OffsetIndex::open(&path, 0, 4096, true).unwrap();
        idx.append(3, 100).unwrap();
        idx.append(7, 200).unwrap();
        idx.trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        let idx = OffsetIndex::open(&path, 0, 4096, false).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.lookup(8),
            OffsetPosition {
                offset: 7,
                position: 200
            }
        );
        idx.sanity_check(300).unwrap();
        assert!(idx.sanity_check(150).is_err());
    }

    #[test]
    fn empty_trimmed_index_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx = OffsetIndex::open(&path, 0, 4096, true).unwrap();
        idx.trim().unwrap();
        drop(idx);
        let mut idx = OffsetIndex::open(&path, 0, 4096, false).unwrap();
        assert_eq!(idx.entries(), 0);
        assert_eq!(idx.lookup(5).position, 0);
        idx.make_writable(4096).unwrap();
        idx.append(1, 1).unwrap();
    }

    #[test]
    fn odd_length_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(matches!(
            OffsetIndex::open(&path, 0, 4096, false),
            Err(StorageError::CorruptFile { .. })
        ));
    }

    proptest! {
        #[test]
        fn lookup_matches_linear_scan(
            gaps in proptest::collection::vec((1i64..50, 1u32..5000), 0..200),
            targets in proptest::collection::vec(0i64..12_000, 1..50),
            cut in 0i64..12_000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut idx = index(&dir, 17, 1 << 16);
            let mut entries = Vec::new();
            let (mut off, mut pos) = (17i64, 0u32);
            for (g, p) in gaps {
                off += g;
                pos += p;
                idx.append(off, pos).unwrap();
                entries.push(OffsetPosition { offset: off, position: pos });
            }
            let expect = |entries: &[OffsetPosition], t: i64| entries
                .iter()
                .rev()
                .find(|e| e.offset <= t)
                .copied()
                .unwrap_or(OffsetPosition { offset: 17, position: 0 });
            for &t in &targets {
                prop_assert_eq!(idx.lookup(t), expect(&entries, t));
            }
            idx.truncate_to(cut);
            entries.retain(|e| e.offset < cut);
            prop_assert_eq!(idx.entries(), entries.len());
            for &t in &targets {
                prop_assert_eq!(idx.lookup(t), expect(&entries, t));
            }
        }
    }
}
