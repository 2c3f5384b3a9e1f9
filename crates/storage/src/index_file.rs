//! A memory-mapped file of fixed-size entries: the storage shared by [`crate::offset_index`]
//! and [`crate::time_index`] (Kafka's `AbstractIndex`).
//!
//! The index of the segment being written is preallocated to its maximum size
//! (`segment.index.bytes`) so appends are stores into the map, never `write` calls; when the
//! segment closes the file is trimmed to its entries. A file's entry count is therefore its
//! length divided by the entry size for closed segments; the active segment's count is kept in
//! memory and, after a crash, recovery rebuilds its index from the log.
//!
//! Not synchronised: the owner serialises access. The file descriptor is closed once mapped.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::IoContext;
use crate::{Result, StorageError};

/// A memory-mapped array of fixed-size entries backed by a file.
pub(crate) struct IndexFile {
    path: PathBuf,
    /// `None` when the file is empty (a zero-length map is not portable).
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
}

impl IndexFile {
    /// Opens (creating if absent) the index at `path`. A new or empty file is preallocated to
    /// `max_bytes` rounded down to whole entries when `writable`; an existing file's entries are
    /// its length divided by `entry_size`, and it is grown to `max_bytes` when `writable`.
    pub(crate) fn open(
        path: &Path,
        entry_size: usize,
        max_bytes: usize,
        writable: bool,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path)?;
        let len = file.metadata().at(path)?.len() as usize;
        if !len.is_multiple_of(entry_size) {
            return Err(StorageError::corrupt_file(
                path,
                format!("length {len} is not a multiple of the entry size {entry_size}"),
            ));
        }
        let entries = len / entry_size;
        let capacity = if writable {
            (max_bytes / entry_size).max(entries) * entry_size
        } else {
            len
        };
        if capacity != len {
            file.set_len(capacity as u64).at(path)?;
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            mmap: map(&file, path, capacity)?,
            entry_size,
            entries,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Number of valid entries.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// How many entries fit in the mapped file.
    pub(crate) fn capacity(&self) -> usize {
        self.mmap.as_ref().map_or(0, |m| m.len() / self.entry_size)
    }

    /// True when no more entries fit.
    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    /// The bytes of entry `i`; `i` must be below [`Self::entries`].
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        let start = i * self.entry_size;
        match &self.mmap {
            Some(m) => &m[start..start + self.entry_size],
            None => &[],
        }
    }

    /// Appends one entry; fails when the file is full.
    pub(crate) fn push(&mut self, entry: &[u8]) -> Result<()> {
        debug_assert_eq!(entry.len(), self.entry_size);
        if self.is_full() {
            return Err(StorageError::corrupt_file(
                &self.path,
                "append to a full index",
            ));
        }
        let start = self.entries * self.entry_size;
        if let Some(m) = &mut self.mmap {
            m[start..start + self.entry_size].copy_from_slice(entry);
        }
        self.entries += 1;
        Ok(())
    }

    /// Keeps only the first `n` entries.
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        self.entries = self.entries.min(n);
    }

    /// Index of the last entry whose key is `<= target`, by binary search over entries whose
    /// keys (read by `key`) increase; `None` when every key is greater or there are no entries.
    pub(crate) fn floor_by<K: Ord>(&self, target: &K, key: impl Fn(&[u8]) -> K) -> Option<usize> {
        // partition_point: number of entries with key <= target.
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)) <= *target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Writes dirty pages to disk.
    pub(crate) fn flush(&self) -> Result<()> {
        match &self.mmap {
            Some(m) => m.flush().at(&self.path),
            None => Ok(()),
        }
    }

    /// Shrinks (or grows) the file to `entries` whole entries of capacity and remaps it.
    fn resize(&mut self, capacity_entries: usize) -> Result<()> {
        self.flush()?;
        self.mmap = None;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .at(&self.path)?;
        let len = capacity_entries * self.entry_size;
        file.set_len(len as u64).at(&self.path)?;
        self.mmap = map(&file, &self.path, len)?;
        Ok(())
    }

    /// Trims the file to its valid entries, as when a segment stops being written.
    pub(crate) fn trim(&mut self) -> Result<()> {
        if self.capacity() != self.entries {
            self.resize(self.entries)?;
        }
        Ok(())
    }

    /// Grows a trimmed file back to `max_bytes` so it can take appends again (a segment that
    /// becomes active again after truncation).
    pub(crate) fn make_writable(&mut self, max_bytes: usize) -> Result<()> {
        let capacity = (max_bytes / self.entry_size).max(self.entries);
        if capacity != self.capacity() {
            self.resize(capacity)?;
        }
        Ok(())
    }

    /// Renames the underlying file (the map stays valid).
    pub(crate) fn rename_to(&mut self, to: &Path) -> Result<()> {
        std::fs::rename(&self.path, to).at(&self.path)?;
        self.path = to.to_path_buf();
        Ok(())
    }
}

fn map(file: &File, path: &Path, len: usize) -> Result<Option<MmapMut>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the file belongs to this partition directory, which only this process writes
    // (the log dir is locked by its owner); it is not truncated while mapped, because every
    // resize drops the map first.
    let mmap = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file) }.at(path)?;
    // Lookups are binary searches and appends touch one page: without this hint the first
    // store into a preallocated sparse index reads ahead (zero-filling) megabytes of it.
    if let Err(e) = mmap.advise(memmap2::Advice::Random) {
        tracing::debug!(index = %path.display(), error = %e, "madvise(RANDOM) refused");
    }
    Ok(Some(mmap))
}
