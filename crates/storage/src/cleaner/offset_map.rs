//! [`OffsetMap`]: key digest -> latest offset, the cleaner's memory of the dirty section
//! (Kafka's `SkimpyOffsetMap`).
//!
//! Keys are not stored: each is reduced to a 128-bit XXH3 digest, so an entry costs a fixed
//! [`BUCKET_BYTES`] whatever the key's size. The table grows with the keys, by doubling, up to
//! the largest power-of-two number of buckets that fits the memory given
//! (`log.cleaner.dedupe.buffer.size` / threads), 7/8 of which may hold keys: past that the map
//! is full. (While it doubles, the old table lives on for a moment: 1.5 times the final size at
//! most.) Unlike Kafka's buffer, allocated whole up front, a log with few keys gets a table that
//! fits the CPU caches: lookups into a table sized for millions of keys miss them every time. Two keys with the same digest would be taken for one (the older
//! record of the pair dropped); at 128 bits that needs about 2^64 keys to become likely. Kafka
//! takes the same risk with MD5.
//!
//! Thread safety: plain data, owned by one cleaning at a time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Memory of one hash-table bucket: the 16-byte digest, the 8-byte offset and a control byte.
pub const BUCKET_BYTES: usize = 16 + 8 + 1;

/// Maps the digest of each key seen to the highest offset seen for it.
#[derive(Debug)]
pub struct OffsetMap {
    entries: HashMap<u128, i64, BuildHasherDefault<DigestHasher>>,
    capacity: usize,
    latest_offset: Option<i64>,
}

impl OffsetMap {
    /// A map whose table may grow to `memory_bytes` (see the module doc); it holds at least one
    /// key. Nothing is allocated until keys arrive.
    pub fn with_memory(memory_bytes: usize) -> Self {
        let fitting = (memory_bytes / BUCKET_BYTES).max(1);
        let buckets = 1usize << fitting.ilog2();
        let capacity = if buckets >= 8 {
            buckets / 8 * 7
        } else {
            buckets * 7 / 8
        }
        .max(1);
        OffsetMap {
            entries: HashMap::default(),
            capacity,
            latest_offset: None,
        }
    }

    /// The most keys it may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True if `more` keys, all new, would still fit.
    pub fn has_room_for(&self, more: usize) -> bool {
        self.entries.len().saturating_add(more) <= self.capacity
    }

    /// Records `offset` as the latest offset of `key` (offsets arrive in increasing order).
    /// Returns false, changing nothing, when the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let digest = digest(key);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&digest) {
            return false;
        }
        self.entries.insert(digest, offset);
        self.latest_offset = Some(self.latest_offset.map_or(offset, |l| l.max(offset)));
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(&digest(key)).copied()
    }

    /// The highest offset put, if any.
    pub fn latest_offset(&self) -> Option<i64> {
        self.latest_offset
    }

    /// Forgets every key, keeping the allocation for the next cleaning.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.latest_offset = None;
    }
}

/// The 128-bit XXH3 digest of a key.
fn digest(key: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(key)
}

/// The digests are already uniformly distributed: the table hashes them by taking their low
/// 64 bits instead of hashing them again.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for key types other than u128; fold the bytes in.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key() {
        let mut map = OffsetMap::with_memory(1 << 20);
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 2));
        assert!(map.put(b"a", 7));
        assert_eq!(map.get(b"a"), Some(7));
        assert_eq!(map.get(b"b"), Some(2));
        assert_eq!(map.get(b"c"), None);
        assert_eq!(map.get(b""), None);
        assert!(map.put(b"", 9));
        assert_eq!(map.get(b""), Some(9));
        assert_eq!(map.latest_offset(), Some(9));
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn capacity_is_seven_eighths_of_the_buckets_that_fit() {
        assert_eq!(
            OffsetMap::with_memory(128 << 20).capacity(),
            (4 << 20) / 8 * 7
        );
        assert_eq!(OffsetMap::with_memory(8 * BUCKET_BYTES).capacity(), 7);
        assert_eq!(OffsetMap::with_memory(0).capacity(), 1);
    }

    #[test]
    fn refuses_new_keys_when_full_but_updates_known_ones() {
        let mut map = OffsetMap::with_memory(4 * BUCKET_BYTES);
        assert_eq!(map.capacity(), 3);
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 2));
        assert!(map.put(b"d", 2));
        assert!(!map.has_room_for(1));
        assert!(!map.put(b"c", 3));
        assert!(map.put(b"a", 4));
        assert_eq!(map.get(b"a"), Some(4));
        assert_eq!(map.get(b"c"), None);
        map.clear();
        assert!(map.is_empty() && map.latest_offset().is_none());
    }
}
