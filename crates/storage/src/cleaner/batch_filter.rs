//! Compaction of one record batch: which of its records survive, and the bytes of what is
//! written in its place (Kafka's `MemoryRecords.filterTo` with the cleaner's retention rule).
//!
//! A record survives when
//! - its offset is at or past the end of the range the offset map covers (nothing is known
//!   about newer records of its key yet), or
//! - it has a key, its offset is the latest the map holds for that key (or the key is not in the
//!   map), and it has a value or is a tombstone still inside its batch's delete horizon.
//!
//! Keyless records inside the map's range are dropped, as Kafka drops them. Control batches
//! are copied whole. The batch written in place of the original is:
//!
//! | survivors            | written                                                          |
//! | -------------------- | ---------------------------------------------------------------- |
//! | all, horizon known   | the original bytes                                               |
//! | some (or all, but tombstones without a delete horizon yet) | a rebuilt batch: same base offset, `lastOffsetDelta`, leader epoch, producer id/epoch, base sequence and codec, the surviving records (recompressed), a new record count, max timestamp and CRC; tombstones get a delete horizon of now + `delete.retention.ms` (KIP-534) |
//! | none, last batch of its idempotent producer | an empty batch with the same header fields, so the producer's sequence state survives |
//! | none, otherwise      | nothing                                                          |
//!
//! Pure functions of the batch, the map and the clock: no I/O, no shared state.

use std::collections::HashMap;

use crate::batch::{
    encode_batch, put_varint, read_varint, read_varlong, BatchHeader, Compression, RecordBatch,
    TimestampType, NO_TIMESTAMP,
};
use crate::cleaner::offset_map::OffsetMap;
use crate::compression::{codec_id, compress, decompress};
use crate::{Result, StorageError};

/// Largest decompressed records section the cleaner decodes; a batch beyond it fails the clean
/// (as corrupt) instead of exhausting memory.
pub const MAX_CLEANER_BATCH_BYTES: usize = 256 << 20;

/// What the filter needs to know besides the batch.
#[derive(Debug)]
pub struct FilterContext<'a> {
    /// Latest offset of each key in the range being cleaned.
    pub map: &'a OffsetMap,
    /// The end (exclusive) of the range the map covers: records at or past it are kept.
    pub map_end: i64,
    /// The cleaner's clock.
    pub now_ms: i64,
    /// `delete.retention.ms` of the log.
    pub delete_retention_ms: i64,
    /// Producer id -> last offset of its last batch in the log.
    pub last_batches: &'a HashMap<i64, i64>,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written unchanged.
    Copied,
    /// Rebuilt with fewer records, or to set its delete horizon.
    Rebuilt,
    /// Every record removed; an empty batch kept for the producer's sequence state.
    Emptied,
    /// Every record removed; nothing written.
    Dropped,
}

/// The result of filtering one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// What was written.
    pub outcome: Outcome,
    /// Records kept and removed.
    pub kept: u32,
    /// Records removed.
    pub removed: u32,
    /// The delete horizon of the written batch when it holds tombstones.
    pub tombstone_horizon: Option<i64>,
}

/// One record of a decompressed records section, located but not copied.
struct RawRecord<'a> {
    /// The whole record, length prefix included.
    whole: &'a [u8],
    /// From the key's length on: key, value, headers.
    tail: &'a [u8],
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    has_value: bool,
}

fn malformed(b: &RecordBatch<'_>, what: &str) -> StorageError {
    StorageError::CorruptMessage(format!(
        "malformed {what} in the batch at offset {} (log cleaner)",
        b.base_offset()
    ))
}

/// Splits a records section into its records.
fn split_records<'a>(b: &RecordBatch<'_>, mut rest: &'a [u8]) -> Result<Vec<RawRecord<'a>>> {
    let count = usize::try_from(b.records_count()).map_err(|_| malformed(b, "record count"))?;
    let mut out = Vec::with_capacity(count.min(rest.len()));
    while !rest.is_empty() {
        let (len, used) = read_varint(rest).ok_or_else(|| malformed(b, "record length"))?;
        let len = usize::try_from(len).map_err(|_| malformed(b, "record length"))?;
        let whole = rest
            .get(..used + len)
            .ok_or_else(|| malformed(b, "record length"))?;
        let body = &whole[used..];
        rest = &rest[used + len..];
        let mut at = 1usize; // attributes
        let (timestamp_delta, n) = body
            .get(at..)
            .and_then(read_varlong)
            .ok_or_else(|| malformed(b, "timestamp delta"))?;
        at += n;
        let (offset_delta, n) = body
            .get(at..)
            .and_then(read_varint)
            .ok_or_else(|| malformed(b, "offset delta"))?;
        at += n;
        let tail = &body[at..];
        let (key_len, n) = read_varint(tail).ok_or_else(|| malformed(b, "key"))?;
        let (key, value_at) = match usize::try_from(key_len) {
            Ok(k) => (
                Some(tail.get(n..n + k).ok_or_else(|| malformed(b, "key"))?),
                n + k,
            ),
            Err(_) => (None, n),
        };
        let (value_len, _) = tail
            .get(value_at..)
            .and_then(read_varint)
            .ok_or_else(|| malformed(b, "value"))?;
        out.push(RawRecord {
            whole,
            tail,
            timestamp_delta,
            offset_delta,
            key,
            has_value: value_len >= 0,
        });
    }
    if out.len() != count {
        return Err(malformed(b, "record count"));
    }
    Ok(out)
}

/// Filters `b` (whose CRC the caller checked) and appends what replaces it to `out`.
pub fn filter_batch(
    b: &RecordBatch<'_>,
    ctx: &FilterContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Filtered> {
    let copied = |kept: u32, horizon: Option<i64>| Filtered {
        outcome: Outcome::Copied,
        kept,
        removed: 0,
        tombstone_horizon: horizon,
    };
    if b.is_control() || b.records_count() == 0 {
        out.extend_from_slice(b.as_bytes());
        return Ok(copied(b.records_count().max(0) as u32, None));
    }
    let codec = b.compression()?;
    let decompressed;
    let section = match codec {
        Compression::None => b.records_bytes(),
        codec => {
            decompressed = decompress(codec, b.records_bytes(), MAX_CLEANER_BATCH_BYTES)?;
            decompressed.as_slice()
        }
    };
    let records = split_records(b, section)?;
    let horizon = b.delete_horizon_ms();
    let retain_deletes = horizon.is_none_or(|h| ctx.now_ms < h);
    let keep: Vec<bool> = records
        .iter()
        .map(|r| {
            let offset = b.base_offset() + i64::from(r.offset_delta);
            if offset >= ctx.map_end {
                return true;
            }
            let Some(key) = r.key else { return false };
            let latest = ctx.map.get(key).is_none_or(|found| offset >= found);
            latest && (r.has_value || retain_deletes)
        })
        .collect();
    let kept = keep.iter().filter(|k| **k).count() as u32;
    let removed = records.len() as u32 - kept;
    let tombstones_kept = records.iter().zip(&keep).any(|(r, k)| *k && !r.has_value);
    let set_horizon = tombstones_kept && horizon.is_none();
    if removed == 0 && !set_horizon {
        out.extend_from_slice(b.as_bytes());
        return Ok(copied(kept, horizon.filter(|_| tombstones_kept)));
    }
    let mut header = BatchHeader::of(b);
    if kept == 0 {
        let last_of_producer =
            b.has_producer_id() && ctx.last_batches.get(&b.producer_id()) == Some(&b.last_offset());
        if !last_of_producer {
            return Ok(Filtered {
                outcome: Outcome::Dropped,
                kept,
                removed,
                tombstone_horizon: None,
            });
        }
        header.records_count = 0;
        header.set_codec_id(codec_id(Compression::None));
        header.set_delete_horizon_flag(false);
        header.base_timestamp = b.max_timestamp();
        encode_batch(&header, &[], out)?;
        return Ok(Filtered {
            outcome: Outcome::Emptied,
            kept,
            removed,
            tombstone_horizon: None,
        });
    }
    let new_horizon = set_horizon.then(|| ctx.now_ms.saturating_add(ctx.delete_retention_ms));
    let old_base_ts = b.base_timestamp();
    let new_base_ts = new_horizon.unwrap_or(old_base_ts);
    let mut section_out = Vec::with_capacity(section.len());
    let mut max_ts = NO_TIMESTAMP;
    let mut body = Vec::new();
    for (r, _) in records.iter().zip(&keep).filter(|(_, k)| **k) {
        let ts = old_base_ts.wrapping_add(r.timestamp_delta);
        max_ts = max_ts.max(ts);
        if new_horizon.is_none() {
            section_out.extend_from_slice(r.whole);
            continue;
        }
        // The base timestamp moves to the horizon: re-encode the timestamp delta.
        body.clear();
        body.push(0);
        put_varint(&mut body, ts.wrapping_sub(new_base_ts));
        put_varint(&mut body, i64::from(r.offset_delta));
        body.extend_from_slice(r.tail);
        put_varint(&mut section_out, body.len() as i64);
        section_out.extend_from_slice(&body);
    }
    header.records_count = kept as i32;
    header.base_timestamp = new_base_ts;
    if new_horizon.is_some() {
        header.set_delete_horizon_flag(true);
    }
    if b.timestamp_type() == TimestampType::CreateTime {
        header.max_timestamp = max_ts;
    }
    let section_out = match codec {
        Compression::None => section_out,
        codec => compress(codec, &section_out)?,
    };
    encode_batch(&header, &section_out, out)?;
    Ok(Filtered {
        outcome: Outcome::Rebuilt,
        kept,
        removed,
        tombstone_horizon: if tombstones_kept {
            new_horizon.or(horizon)
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{build_keyed_batch, BatchSpec};
    use crate::compression::for_each_record;

    type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, i64, i64);

    /// (key, value, offset, timestamp) of every record of every batch in `bytes`.
    fn records(bytes: &[u8]) -> Vec<Rec> {
        let mut out = Vec::new();
        for b in crate::batch::BatchIter::new(bytes, usize::MAX) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            for_each_record(&b, 1 << 30, |r| {
                out.push((
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                    b.base_offset() + i64::from(r.offset_delta),
                    b.base_timestamp() + r.timestamp_delta,
                ));
                true
            })
            .unwrap();
        }
        out
    }

    fn map_of(entries: &[(&[u8], i64)]) -> OffsetMap {
        let mut m = OffsetMap::with_memory(1 << 20);
        for (k, o) in entries {
            m.put(k, *o);
        }
        m
    }

    fn ctx<'a>(map: &'a OffsetMap, last: &'a HashMap<i64, i64>, now: i64) -> FilterContext<'a> {
        FilterContext {
            map,
            map_end: 1000,
            now_ms: now,
            delete_retention_ms: 100,
            last_batches: last,
        }
    }

    const SPEC: BatchSpec = BatchSpec {
        base_offset: 10,
        leader_epoch: 3,
        base_timestamp: 5_000,
        producer_id: 77,
        producer_epoch: 2,
        base_sequence: 40,
    };

    #[test]
    fn all_latest_is_copied_byte_for_byte() {
        let bytes = build_keyed_batch(
            &SPEC,
            &[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2"))],
            Compression::None,
        );
        let map = map_of(&[(b"a", 10), (b"b", 11)]);
        let last = HashMap::new();
        let mut out = Vec::new();
        let f = filter_batch(
            &RecordBatch::new(&bytes).unwrap(),
            &ctx(&map, &last, 0),
            &mut out,
        )
        .unwrap();
        assert_eq!(f.outcome, Outcome::Copied);
        assert_eq!(out, bytes);
    }

    #[test]
    fn compressed_batch_partially_filtered_keeps_header_fields_and_verifies() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = build_keyed_batch(
                &SPEC,
                &[
                    (Some(b"a"), Some(b"old")),
                    (Some(b"b"), Some(b"keep")),
                    (Some(b"a"), Some(b"new")),
                    (None, Some(b"keyless")),
                ],
                codec,
            );
            let map = map_of(&[(b"a", 12), (b"b", 11)]);
            let last = HashMap::new();
            let mut out = Vec::new();
            let original = RecordBatch::new(&bytes).unwrap();
            let f = filter_batch(&original, &ctx(&map, &last, 0), &mut out).unwrap();
            assert_eq!(
                (f.outcome, f.kept, f.removed),
                (Outcome::Rebuilt, 2, 2),
                "{codec:?}"
            );
            let rebuilt = RecordBatch::new(&out).unwrap();
            rebuilt.verify_crc().unwrap();
            assert_eq!(rebuilt.base_offset(), 10);
            assert_eq!(rebuilt.last_offset_delta(), original.last_offset_delta());
            assert_eq!(rebuilt.partition_leader_epoch(), 3);
            assert_eq!(rebuilt.producer_id(), 77);
            assert_eq!(rebuilt.producer_epoch(), 2);
            assert_eq!(rebuilt.base_sequence(), 40);
            assert_eq!(rebuilt.compression().unwrap(), codec);
            assert_eq!(rebuilt.records_count(), 2);
            assert_eq!(rebuilt.max_timestamp(), 5_002);
            assert_eq!(
                records(&out),
                vec![
                    (Some(b"b".to_vec()), Some(b"keep".to_vec()), 11, 5_001),
                    (Some(b"a".to_vec()), Some(b"new".to_vec()), 12, 5_002),
                ],
                "{codec:?}"
            );
        }
    }

    #[test]
    fn tombstones_get_a_horizon_then_go_after_it() {
        let bytes = build_keyed_batch(
            &SPEC,
            &[(Some(b"a"), None), (Some(b"b"), Some(b"v"))],
            Compression::Lz4,
        );
        let map = map_of(&[(b"a", 10), (b"b", 11)]);
        let last = HashMap::new();
        let mut first = Vec::new();
        let f = filter_batch(
            &RecordBatch::new(&bytes).unwrap(),
            &ctx(&map, &last, 1_000),
            &mut first,
        )
        .unwrap();
        assert_eq!(f.outcome, Outcome::Rebuilt);
        assert_eq!(f.tombstone_horizon, Some(1_100));
        let b = RecordBatch::new(&first).unwrap();
        assert_eq!(b.delete_horizon_ms(), Some(1_100));
        // Record timestamps survive the move of the base timestamp.
        assert_eq!(
            records(&first),
            vec![
                (Some(b"a".to_vec()), None, 10, 5_000),
                (Some(b"b".to_vec()), Some(b"v".to_vec()), 11, 5_001),
            ]
        );
        // Before the horizon: copied as is.
        let mut second = Vec::new();
        let f = filter_batch(&b, &ctx(&map, &last, 1_099), &mut second).unwrap();
        assert_eq!(
            (f.outcome, f.tombstone_horizon),
            (Outcome::Copied, Some(1_100))
        );
        assert_eq!(second, first);
        // After it: the tombstone goes.
        let mut third = Vec::new();
        let f = filter_batch(&b, &ctx(&map, &last, 1_100), &mut third).unwrap();
        assert_eq!((f.outcome, f.tombstone_horizon), (Outcome::Rebuilt, None));
        assert_eq!(
            records(&third),
            vec![(Some(b"b".to_vec()), Some(b"v".to_vec()), 11, 5_001)]
        );
    }

    #[test]
    fn records_past_the_map_are_kept() {
        let bytes = build_keyed_batch(
            &SPEC,
            &[(Some(b"a"), Some(b"1")), (None, Some(b"2"))],
            Compression::None,
        );
        let map = map_of(&[(b"a", 500)]);
        let last = HashMap::new();
        let mut c = ctx(&map, &last, 0);
        c.map_end = 10;
        let mut out = Vec::new();
        let f = filter_batch(&RecordBatch::new(&bytes).unwrap(), &c, &mut out).unwrap();
        assert_eq!(f.outcome, Outcome::Copied);
    }

    #[test]
    fn emptied_batch_is_kept_only_for_the_producers_last_batch() {
        let bytes = build_keyed_batch(
            &SPEC,
            &[(Some(b"a"), Some(b"1")), (Some(b"a"), Some(b"2"))],
            Compression::Gzip,
        );
        let map = map_of(&[(b"a", 99)]);
        let b = RecordBatch::new(&bytes).unwrap();
        let mut out = Vec::new();
        let f = filter_batch(&b, &ctx(&map, &HashMap::new(), 0), &mut out).unwrap();
        assert_eq!(f.outcome, Outcome::Dropped);
        assert!(out.is_empty());
        let last = HashMap::from([(77, 11)]);
        let f = filter_batch(&b, &ctx(&map, &last, 0), &mut out).unwrap();
        assert_eq!(f.outcome, Outcome::Emptied);
        let empty = RecordBatch::new(&out).unwrap();
        empty.verify_crc().unwrap();
        assert_eq!(
            (
                empty.base_offset(),
                empty.last_offset(),
                empty.records_count()
            ),
            (10, 11, 0)
        );
        assert_eq!(
            (
                empty.producer_id(),
                empty.producer_epoch(),
                empty.base_sequence()
            ),
            (77, 2, 40)
        );
        assert_eq!(empty.last_sequence(), 41);
        assert_eq!(empty.compression().unwrap(), Compression::None);
    }
}
