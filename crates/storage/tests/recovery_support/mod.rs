//! Helpers shared by the corruption and crash tests: record values that encode their own offset,
//! appends that build such batches, and a full read-back check of a log.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use rivulet_storage::batch::testing::{build_batch, BatchSpec};
use rivulet_storage::batch::{read_varint, read_varlong, BatchIter, RecordBatch};
use rivulet_storage::{LogAppendInfo, PartitionLog};

/// Smallest record value: the 8-byte offset it encodes.
pub const MIN_VALUE_LEN: usize = 8;

/// The value of the record at `offset`: the offset (8 bytes, big-endian), then a filler byte
/// derived from the offset, `len` bytes in all (at least [`MIN_VALUE_LEN`]).
pub fn value_for(offset: i64, len: usize) -> Vec<u8> {
    let mut value = vec![offset.wrapping_mul(31) as u8; len.max(MIN_VALUE_LEN)];
    value[..MIN_VALUE_LEN].copy_from_slice(&offset.to_be_bytes());
    value
}

/// Builds a producer batch (header fields from `spec`) whose records will land at
/// `first_offset..`, one record per entry of `value_lens`, each holding [`value_for`] its offset.
pub fn batch_for(spec: &BatchSpec, first_offset: i64, value_lens: &[usize]) -> Vec<u8> {
    let values: Vec<Vec<u8>> = value_lens
        .iter()
        .zip(first_offset..)
        .map(|(&len, offset)| value_for(offset, len))
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    build_batch(spec, &refs)
}

/// Appends one batch built by [`batch_for`] at the LEO as leader of `epoch`; returns the append
/// result and the batch's bytes as stored (offset and epoch assigned).
pub fn append_batch(
    log: &mut PartitionLog,
    spec: &BatchSpec,
    value_lens: &[usize],
    epoch: i32,
    now_ms: i64,
) -> (LogAppendInfo, Vec<u8>) {
    let first = log.log_end_offset();
    let mut batch = batch_for(spec, first, value_lens);
    let info = log
        .append_as_leader(&batch, epoch, now_ms)
        .unwrap_or_else(|e| {
            panic!(
                "append of {} records at {first} failed: {e}",
                value_lens.len()
            )
        });
    assert!(
        !info.duplicate,
        "append at {first} was taken for a duplicate"
    );
    assert_eq!(info.first_offset, first, "append did not start at the LEO");
    assert_eq!(info.last_offset, first + value_lens.len() as i64 - 1);
    // What is on disk: the same bytes with the leader's offset and epoch (the append writes
    // them on the way to disk and leaves the caller's buffer alone).
    rivulet_storage::log_validator::assign_offsets(&mut batch, info.first_offset, epoch);
    (info, batch)
}

/// [`append_batch`] without a producer id, records timestamped from `now_ms`.
pub fn append_values(
    log: &mut PartitionLog,
    value_lens: &[usize],
    epoch: i32,
    now_ms: i64,
) -> (LogAppendInfo, Vec<u8>) {
    let spec = BatchSpec {
        base_timestamp: now_ms,
        ..BatchSpec::default()
    };
    append_batch(log, &spec, value_lens, epoch, now_ms)
}

/// The record values of an uncompressed batch built by [`build_batch`], checking the record
/// framing (lengths, offset deltas 0, 1, ..., null keys, no headers) on the way.
pub fn record_values<'a>(batch: &RecordBatch<'a>) -> Result<Vec<&'a [u8]>, String> {
    let mut rest = batch.records_bytes();
    let mut values = Vec::new();
    while !rest.is_empty() {
        let (len, used) = read_varint(rest).ok_or("unreadable record length")?;
        let end = usize::try_from(len).map_err(|_| format!("negative record length {len}"))? + used;
        let record = rest.get(used..end).ok_or("record runs past the batch")?;
        rest = &rest[end..];
        // attributes (1 byte), timestampDelta, offsetDelta, keyLength, valueLength, value, headers
        let mut r = record.get(1..).ok_or("empty record")?;
        let (_, n) = read_varlong(r).ok_or("unreadable timestamp delta")?;
        r = &r[n..];
        let (offset_delta, n) = read_varint(r).ok_or("unreadable offset delta")?;
        r = &r[n..];
        if offset_delta as usize != values.len() {
            return Err(format!(
                "record {} has offset delta {offset_delta}",
                values.len()
            ));
        }
        let (key_len, n) = read_varint(r).ok_or("unreadable key length")?;
        r = &r[n..];
        if key_len != -1 {
            return Err(format!("unexpected key of length {key_len}"));
        }
        let (value_len, n) = read_varint(r).ok_or("unreadable value length")?;
        let value_len = usize::try_from(value_len).map_err(|_| "null value")?;
        let value = r
            .get(n..n + value_len)
            .ok_or("value runs past the record")?;
        if r[n + value_len..] != [0] {
            return Err("record does not end with an empty header count".into());
        }
        values.push(value);
    }
    Ok(values)
}

/// Panics unless `batch` is internally valid: CRC, record count, and values encoding their
/// offsets.
pub fn check_batch(batch: &RecordBatch<'_>) {
    let base = batch.base_offset();
    batch
        .verify_crc()
        .unwrap_or_else(|e| panic!("served a batch with a bad CRC at offset {base}: {e}"));
    let values = record_values(batch)
        .unwrap_or_else(|e| panic!("malformed records in the batch at {base}: {e}"));
    assert_eq!(
        values.len() as i64,
        batch.records_count() as i64,
        "record count of the batch at {base}"
    );
    assert_eq!(
        values.len() as i64,
        i64::from(batch.last_offset_delta()) + 1,
        "last offset delta of the batch at {base}"
    );
    for (offset, value) in (base..).zip(values) {
        assert!(
            value == value_for(offset, value.len()).as_slice(),
            "the record at offset {offset} (batch at {base}) does not hold its own value"
        );
    }
}

/// What [`verify_log`] read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogSummary {
    /// Batches read.
    pub batches: u64,
    /// Records read.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Reads the whole log from its start offset to its LEO through [`PartitionLog::read`] and
/// panics unless every offset is covered by exactly one batch, in order, without gaps, and every
/// batch passes [`check_batch`]. `visit` then sees each batch, oldest first.
pub fn verify_log(log: &PartitionLog, mut visit: impl FnMut(&RecordBatch<'_>)) -> LogSummary {
    const READ_BYTES: u64 = 1 << 20;
    let leo = log.log_end_offset();
    let mut next = log.log_start_offset();
    let mut summary = LogSummary::default();
    while next < leo {
        let slice = log
            .read(next, READ_BYTES, leo, true)
            .unwrap_or_else(|e| panic!("read at {next} (LEO {leo}) failed: {e}"))
            .unwrap_or_else(|| panic!("read at {next} returned nothing below the LEO {leo}"));
        let bytes = slice.read_to_vec().expect("read the slice");
        assert!(
            !bytes.is_empty(),
            "read at {next} returned an empty slice below the LEO {leo}"
        );
        let mut iter = BatchIter::new(&bytes, usize::MAX);
        for batch in iter.by_ref() {
            let batch =
                batch.unwrap_or_else(|e| panic!("read at {next} served an unframed batch: {e}"));
            assert_eq!(batch.base_offset(), next, "batches are not contiguous");
            assert!(
                batch.last_offset() < leo,
                "the batch at {next} ends past the LEO {leo}"
            );
            check_batch(&batch);
            visit(&batch);
            summary.batches += 1;
            summary.records += batch.records_count() as u64;
            summary.bytes += batch.size() as u64;
            next = batch.next_offset();
        }
        assert_eq!(iter.position(), bytes.len(), "read served a partial batch");
    }
    summary
}
