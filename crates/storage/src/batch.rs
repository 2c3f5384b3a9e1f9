//! A zero-copy view of Kafka's RecordBatch v2 (magic 2), the unit the log stores.
//!
//! Batches stay as the bytes a producer sent. This module reads header fields in place, checks
//! the CRC, walks uncompressed records without allocating, and writes the two fields the leader
//! assigns (`baseOffset`, `partitionLeaderEpoch`) in place: the CRC starts at `attributes`, so
//! neither write invalidates it.
//!
//! ```text
//! offset  size  field                 offset  size  field
//!      0     8  baseOffset                 35     8  maxTimestamp
//!      8     4  batchLength (from 12)      43     8  producerId
//!     12     4  partitionLeaderEpoch       51     2  producerEpoch
//!     16     1  magic (= 2)                53     4  baseSequence
//!     17     4  crc (CRC-32C of 21..end)   57     4  recordsCount
//!     21     2  attributes                 61     -  records
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//! ```
//!
//! The magic byte sits at position 16 in the older v0/v1 message formats too, which is how an
//! older client's message set is told apart and refused.

use crate::{Result, StorageError};

/// Size of the v2 batch header; records start here.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only message format version stored.
pub const MAGIC_V2: i8 = 2;
/// Timestamp meaning "none", as Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// Attributes bit 6: `baseTimestamp` holds the batch's delete horizon (KIP-534).
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec of a batch (attributes bits 0-2). The log stores batches compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed records.
    None,
    /// gzip.
    Gzip,
    /// Snappy (xerial framing, as the Java client writes it).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// How a batch's timestamps were set (attributes bit 3), Kafka's `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's clock.
    CreateTime,
    /// The broker's clock at append; `maxTimestamp` holds it for every record.
    LogAppendTime,
}

/// A read-only view over exactly one whole RecordBatch v2.
///
/// Built by [`RecordBatch::new`] or [`BatchIter`], which check that the buffer holds the whole
/// batch and at least a full header, so the accessors cannot go out of bounds.
#[derive(Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl std::fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("size", &self.size())
            .field("leader_epoch", &self.partition_leader_epoch())
            .field("records", &self.records_count())
            .finish()
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// CRC-32C (Castagnoli), the checksum of RecordBatch v2. `crc-fast` uses carry-less multiply
/// (VPCLMULQDQ/PCLMULQDQ, or ARM PMULL) where the CPU has it: about twice the speed of the
/// SSE 4.2 `crc32` instruction, which matters because the leader checks every produced byte.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// What the first bytes of a buffer say about the batch that starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFrame {
    /// The buffer holds the whole batch of this total size (header included).
    Complete(usize),
    /// The buffer ends before the batch does: a torn tail, or a read that was cut short.
    Incomplete,
}

/// Reads the size of the batch starting at `buf[0]` without trusting anything else in it.
///
/// Fails when the length field is impossible for a v2 batch (shorter than a header, or larger
/// than `max_size`), which on disk means corruption and on the wire a malformed request.
pub fn frame(buf: &[u8], max_size: usize) -> Result<BatchFrame> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(BatchFrame::Incomplete);
    }
    let batch_length = be_i32(buf, BATCH_LENGTH);
    if batch_length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(StorageError::CorruptMessage(format!(
            "batch length {batch_length} is shorter than a batch header"
        )));
    }
    let size = batch_length as usize + LOG_OVERHEAD;
    if size > max_size {
        return Err(StorageError::MessageTooLarge {
            size,
            max: max_size,
        });
    }
    if buf.len() < size {
        Ok(BatchFrame::Incomplete)
    } else {
        Ok(BatchFrame::Complete(size))
    }
}

/// Size of the batch whose header (at least its first 12 bytes) starts `header`, checked to be
/// at least a header and at most `max_size`; the rest of the batch need not be in `header`.
pub fn batch_size(header: &[u8], max_size: usize) -> Result<usize> {
    if header.len() < LOG_OVERHEAD {
        return Err(StorageError::CorruptMessage(
            "truncated batch header".into(),
        ));
    }
    match frame(&header[..LOG_OVERHEAD], max_size)? {
        BatchFrame::Complete(size) => Ok(size),
        BatchFrame::Incomplete => Ok(be_i32(header, BATCH_LENGTH) as usize + LOG_OVERHEAD),
    }
}

impl<'a> RecordBatch<'a> {
    /// Views `bytes`, which must be exactly one v2 batch: the length field must match the
    /// buffer and the magic must be 2. The CRC is not checked here (see [`Self::verify_crc`]).
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        match frame(bytes, usize::MAX)? {
            BatchFrame::Incomplete => Err(StorageError::CorruptMessage(format!(
                "buffer of {} bytes holds a partial batch",
                bytes.len()
            ))),
            BatchFrame::Complete(size) if size != bytes.len() => {
                Err(StorageError::InvalidRecord(format!(
                    "expected one batch of {size} bytes, buffer has {}",
                    bytes.len()
                )))
            }
            BatchFrame::Complete(_) => Self::checked_magic(bytes),
        }
    }

    fn checked_magic(bytes: &'a [u8]) -> Result<Self> {
        let magic = bytes[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(match magic {
                0 | 1 => StorageError::UnsupportedMessageFormat(magic),
                other => StorageError::CorruptMessage(format!("unknown magic byte {other}")),
            });
        }
        Ok(RecordBatch { bytes })
    }

    /// The batch's bytes, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Total size in bytes, header included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, BASE_OFFSET)
    }
    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    /// Leader epoch of the leader that appended the batch.
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, PARTITION_LEADER_EPOCH)
    }
    /// The stored CRC-32C.
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC) as u32
    }
    /// The CRC-32C of the bytes it covers (attributes to the end).
    pub fn compute_crc(&self) -> u32 {
        crc32c(&self.bytes[ATTRIBUTES..])
    }
    /// Checks the CRC; a mismatch is `CORRUPT_MESSAGE`.
    pub fn verify_crc(&self) -> Result<()> {
        let (stored, computed) = (self.crc(), self.compute_crc());
        if stored != computed {
            return Err(StorageError::CorruptMessage(format!(
                "CRC mismatch at offset {}: stored {stored:#010x}, computed {computed:#010x}",
                self.base_offset()
            )));
        }
        Ok(())
    }
    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES)
    }
    /// The compression codec, or an error for codec ids Kafka does not define.
    pub fn compression(&self) -> Result<Compression> {
        Ok(match self.attributes() & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => {
                return Err(StorageError::CorruptMessage(format!(
                    "unknown compression codec {other}"
                )))
            }
        })
    }
    /// Whose clock set the timestamps.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    /// A control batch (transaction markers), written only by coordinators.
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// The time after which the log cleaner may drop this batch's tombstones (KIP-534): set
    /// in `baseTimestamp`, flagged by attributes bit 6, when the cleaner first keeps a batch
    /// holding tombstones. Record timestamps stay `baseTimestamp + timestampDelta`.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes() & DELETE_HORIZON_BIT != 0).then(|| self.base_timestamp())
    }
    /// Offset of the last record relative to the base offset.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA)
    }
    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP)
    }
    /// Largest timestamp in the batch (the append time under LogAppendTime).
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP)
    }
    /// Idempotent producer id, or -1.
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID)
    }
    /// Producer epoch, or -1.
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, PRODUCER_EPOCH)
    }
    /// Sequence number of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE)
    }
    /// Sequence number of the last record (wrapping after `i32::MAX`, as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        let delta = self.last_offset_delta();
        if base > i32::MAX - delta {
            delta - (i32::MAX - base) - 1
        } else {
            base + delta
        }
    }
    /// Number of records the header claims.
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, RECORDS_COUNT)
    }
    /// True when the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id() >= 0
    }
    /// The record bytes after the header (compressed when the batch is).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_SIZE..]
    }

    /// Walks the records of an uncompressed batch without allocating: checks that each record's
    /// length fits, that offset deltas run 0, 1, 2, ..., and that the count matches the header.
    /// Returns the largest record timestamp (base timestamp + delta).
    pub fn walk_uncompressed_records(&self) -> Result<i64> {
        let mut rest = self.records_bytes();
        let base_ts = self.base_timestamp();
        let mut max_ts = NO_TIMESTAMP;
        let mut n: i32 = 0;
        while !rest.is_empty() {
            let (len, used) = read_varint(rest).ok_or_else(|| self.corrupt("record length"))?;
            rest = &rest[used..];
            if len < 0 || len as usize > rest.len() {
                return Err(self.corrupt("record length exceeds the batch"));
            }
            let (record, tail) = rest.split_at(len as usize);
            rest = tail;
            // attributes (1 byte), timestampDelta (varlong), offsetDelta (varint), ...
            let body = record
                .get(1..)
                .ok_or_else(|| self.corrupt("empty record"))?;
            let (ts_delta, used) = read_varlong(body).ok_or_else(|| self.corrupt("timestamp"))?;
            let (offset_delta, _) =
                read_varint(&body[used..]).ok_or_else(|| self.corrupt("offset delta"))?;
            if offset_delta != n {
                return Err(StorageError::InvalidRecord(format!(
                    "record {n} of the batch at offset {} has offset delta {offset_delta}",
                    self.base_offset()
                )));
            }
            max_ts = max_ts.max(base_ts.wrapping_add(ts_delta));
            n = n
                .checked_add(1)
                .ok_or_else(|| self.corrupt("record count"))?;
        }
        if n != self.records_count() {
            return Err(StorageError::CorruptMessage(format!(
                "batch at offset {} claims {} records but holds {n}",
                self.base_offset(),
                self.records_count()
            )));
        }
        Ok(max_ts)
    }

    fn corrupt(&self, what: &str) -> StorageError {
        StorageError::CorruptMessage(format!(
            "malformed {what} in the batch at offset {}",
            self.base_offset()
        ))
    }
}

/// Writes `baseOffset` in place (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
}

/// Writes `partitionLeaderEpoch` in place (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets `maxTimestamp` and the timestamp type, then rewrites the CRC, which covers both.
/// Used for `LogAppendTime` topics and to correct a producer's wrong `maxTimestamp`, as Kafka does.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_type: TimestampType, max_timestamp: i64) {
    let mut attributes = be_i16(batch, ATTRIBUTES);
    match timestamp_type {
        TimestampType::CreateTime => attributes &= !TIMESTAMP_TYPE_BIT,
        TimestampType::LogAppendTime => attributes |= TIMESTAMP_TYPE_BIT,
    }
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The header fields of a batch to build with [`encode_batch`] (the CRC and lengths are
/// computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// `baseOffset`.
    pub base_offset: i64,
    /// `partitionLeaderEpoch`.
    pub partition_leader_epoch: i32,
    /// `attributes`: codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// `baseTimestamp` (the delete horizon when attributes bit 6 is set).
    pub base_timestamp: i64,
    /// `maxTimestamp`.
    pub max_timestamp: i64,
    /// `producerId`.
    pub producer_id: i64,
    /// `producerEpoch`.
    pub producer_epoch: i16,
    /// `baseSequence`.
    pub base_sequence: i32,
    /// `recordsCount`.
    pub records_count: i32,
}

impl BatchHeader {
    /// The header of `batch`, to be changed and written again.
    pub fn of(batch: &RecordBatch<'_>) -> Self {
        BatchHeader {
            base_offset: batch.base_offset(),
            partition_leader_epoch: batch.partition_leader_epoch(),
            attributes: batch.attributes(),
            last_offset_delta: batch.last_offset_delta(),
            base_timestamp: batch.base_timestamp(),
            max_timestamp: batch.max_timestamp(),
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            records_count: batch.records_count(),
        }
    }

    /// Sets or clears the delete-horizon flag (attributes bit 6).
    pub fn set_delete_horizon_flag(&mut self, set: bool) {
        if set {
            self.attributes |= DELETE_HORIZON_BIT;
        } else {
            self.attributes &= !DELETE_HORIZON_BIT;
        }
    }

    /// Replaces the codec bits of the attributes.
    pub fn set_codec_id(&mut self, codec_id: i16) {
        self.attributes = (self.attributes & !COMPRESSION_MASK) | (codec_id & COMPRESSION_MASK);
    }
}

/// Appends a v2 batch with `header` and the (already compressed, if the attributes say so)
/// `records` section to `out`, with its length and CRC-32C filled in. Fails if the batch would
/// exceed the 2 GiB a length field can state.
pub fn encode_batch(header: &BatchHeader, records: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let length = i32::try_from(BATCH_HEADER_SIZE - LOG_OVERHEAD + records.len())
        .map_err(|_| StorageError::InvalidRecord("batch too large to encode".into()))?;
    let start = out.len();
    out.reserve(BATCH_HEADER_SIZE + records.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&header.records_count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = crc32c(&out[start + ATTRIBUTES..]);
    out[start + CRC..start + CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Iterates over the whole v2 batches in a buffer of concatenated batches.
///
/// Stops (returns `None`) at an incomplete tail; [`BatchIter::position`] then tells where the
/// whole batches end. A batch with an impossible length or magic yields one error and ends the
/// iteration. CRCs are not checked here.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    max_batch_size: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates over `buf`; batches larger than `max_batch_size` are errors.
    pub fn new(buf: &'a [u8], max_batch_size: usize) -> Self {
        BatchIter {
            buf,
            pos: 0,
            max_batch_size,
            failed: false,
        }
    }

    /// Byte position just after the last batch returned.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<RecordBatch<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = match frame(rest, self.max_batch_size) {
            Ok(BatchFrame::Incomplete) => return None,
            Ok(BatchFrame::Complete(size)) if size < BATCH_HEADER_SIZE => Err(
                StorageError::CorruptMessage("batch shorter than its header".into()),
            ),
            Ok(BatchFrame::Complete(size)) => {
                RecordBatch::checked_magic(&rest[..size]).inspect(|_| self.pos += size)
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Reads a zigzag-encoded varint (Kafka's `ByteUtils.readVarint`); `None` if truncated or
/// longer than 5 bytes. Returns the value and the bytes used.
pub fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let mut value: u32 = 0;
    for (i, &b) in buf.iter().enumerate().take(5) {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i32) ^ -((value & 1) as i32);
            return Some((decoded, i + 1));
        }
    }
    None
}

/// Reads a zigzag-encoded varlong; `None` if truncated or longer than 10 bytes.
pub fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((decoded, i + 1));
        }
    }
    None
}

/// Appends `v` as a zigzag varint/varlong, Kafka's record encoding.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Builders of valid batches for tests and benchmarks in this crate and others.
pub mod testing {
    use super::*;

    pub use super::put_varint;

    /// Options for [`build_batch`].
    #[derive(Debug, Clone)]
    pub struct BatchSpec {
        /// Base offset written in the header (the leader overwrites it).
        pub base_offset: i64,
        /// Leader epoch written in the header.
        pub leader_epoch: i32,
        /// Timestamp of the first record; record i gets `base_timestamp + i`.
        pub base_timestamp: i64,
        /// Producer id (-1 for none).
        pub producer_id: i64,
        /// Producer epoch (-1 for none).
        pub producer_epoch: i16,
        /// First sequence (-1 for none).
        pub base_sequence: i32,
    }

    impl Default for BatchSpec {
        fn default() -> Self {
            BatchSpec {
                base_offset: 0,
                leader_epoch: 0,
                base_timestamp: 1_700_000_000_000,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
            }
        }
    }

    /// Builds an uncompressed v2 batch holding `values` as record values (null keys, no
    /// headers), with a valid CRC.
    pub fn build_batch(spec: &BatchSpec, values: &[&[u8]]) -> Vec<u8> {
        assemble_batch(spec, values.len(), 0, &encode_records(values))
    }

    /// Builds a v2 batch holding the same records as [`build_batch`], its records section
    /// compressed with `codec` in the framing Kafka clients write, its attributes naming the
    /// codec, with a valid CRC.
    pub fn build_compressed_batch(
        spec: &BatchSpec,
        values: &[&[u8]],
        codec: Compression,
    ) -> Vec<u8> {
        let records = crate::compression::compress(codec, &encode_records(values))
            .expect("compressing into memory cannot fail");
        assemble_batch(
            spec,
            values.len(),
            crate::compression::codec_id(codec),
            &records,
        )
    }

    /// The records section of [`build_batch`]: record `i` has timestamp and offset delta `i`.
    fn encode_records(values: &[&[u8]]) -> Vec<u8> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        for (i, value) in values.iter().enumerate() {
            record.clear();
            record.push(0); // attributes
            put_varint(&mut record, i as i64); // timestamp delta
            put_varint(&mut record, i as i64); // offset delta
            put_varint(&mut record, -1); // null key
            put_varint(&mut record, value.len() as i64);
            record.extend_from_slice(value);
            put_varint(&mut record, 0); // no headers
            put_varint(&mut records, record.len() as i64);
            records.extend_from_slice(&record);
        }
        records
    }

    /// A record's key and value for [`build_keyed_batch`]; `None` is null.
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// Builds a v2 batch of records with the given keys and values (`None` is null: a null
    /// value is a tombstone), record `i` with timestamp and offset delta `i`, its records
    /// section compressed with `codec`, with a valid CRC.
    pub fn build_keyed_batch(
        spec: &BatchSpec,
        records: &[KeyValue<'_>],
        codec: Compression,
    ) -> Vec<u8> {
        let mut section = Vec::new();
        let mut record = Vec::new();
        for (i, (key, value)) in records.iter().enumerate() {
            record.clear();
            record.push(0);
            put_varint(&mut record, i as i64);
            put_varint(&mut record, i as i64);
            for field in [key, value] {
                match field {
                    Some(bytes) => {
                        put_varint(&mut record, bytes.len() as i64);
                        record.extend_from_slice(bytes);
                    }
                    None => put_varint(&mut record, -1),
                }
            }
            put_varint(&mut record, 0);
            put_varint(&mut section, record.len() as i64);
            section.extend_from_slice(&record);
        }
        let section = crate::compression::compress(codec, &section)
            .expect("compressing into memory cannot fail");
        assemble_batch(
            spec,
            records.len(),
            crate::compression::codec_id(codec),
            &section,
        )
    }

    /// A batch header for `count` records with `attributes`, followed by `records`, with a
    /// valid CRC.
    fn assemble_batch(spec: &BatchSpec, count: usize, attributes: i16, records: &[u8]) -> Vec<u8> {
        let n = count as i32;
        let mut b = Vec::with_capacity(BATCH_HEADER_SIZE + records.len());
        b.extend_from_slice(&spec.base_offset.to_be_bytes());
        b.extend_from_slice(
            &((BATCH_HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32).to_be_bytes(),
        );
        b.extend_from_slice(&spec.leader_epoch.to_be_bytes());
        b.push(MAGIC_V2 as u8);
        b.extend_from_slice(&[0; 4]); // crc, below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&spec.base_timestamp.to_be_bytes());
        b.extend_from_slice(&(spec.base_timestamp + i64::from(n.max(1) - 1)).to_be_bytes());
        b.extend_from_slice(&spec.producer_id.to_be_bytes());
        b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
        b.extend_from_slice(&spec.base_sequence.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(records);
        let crc = crc32c(&b[ATTRIBUTES..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A batch of `count` records of `record_size` bytes each.
    pub fn batch_of(spec: &BatchSpec, count: usize, record_size: usize) -> Vec<u8> {
        let value = vec![b'x'; record_size];
        let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
        build_batch(spec, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_header_fields() {
        let spec = BatchSpec {
            base_offset: 42,
            leader_epoch: 7,
            producer_id: 1000,
            producer_epoch: 3,
            base_sequence: 10,
            ..Default::default()
        };
        let bytes = build_batch(&spec, &[b"a", b"bb", b"ccc"]);
        let batch = RecordBatch::new(&bytes).unwrap();
        assert_eq!(batch.base_offset(), 42);
        assert_eq!(batch.last_offset(), 44);
        assert_eq!(batch.partition_leader_epoch(), 7);
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.producer_id(), 1000);
        assert_eq!(batch.producer_epoch(), 3);
        assert_eq!(batch.last_sequence(), 12);
        assert_eq!(batch.compression().unwrap(), Compression::None);
        assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
        batch.verify_crc().unwrap();
        assert_eq!(
            batch.walk_uncompressed_records().unwrap(),
            spec.base_timestamp + 2
        );
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The check value of CRC-32C (iSCSI), as Kafka's Crc32C computes it.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn offset_and_epoch_writes_keep_the_crc_valid() {
        let mut bytes = build_batch(&BatchSpec::default(), &[b"v"]);
        set_base_offset(&mut bytes, 99);
        set_partition_leader_epoch(&mut bytes, 5);
        let batch = RecordBatch::new(&bytes).unwrap();
        assert_eq!(
            (batch.base_offset(), batch.partition_leader_epoch()),
            (99, 5)
        );
        batch.verify_crc().unwrap();
    }

    #[test]
    fn set_max_timestamp_rewrites_crc() {
        let mut bytes = build_batch(&BatchSpec::default(), &[b"v"]);
        set_max_timestamp(&mut bytes, TimestampType::LogAppendTime, 123);
        let batch = RecordBatch::new(&bytes).unwrap();
        assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(batch.max_timestamp(), 123);
        batch.verify_crc().unwrap();
    }

    #[test]
    fn sequence_wraps_after_i32_max() {
        let spec = BatchSpec {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: i32::MAX - 1,
            ..Default::default()
        };
        let bytes = build_batch(&spec, &[b"a", b"b", b"c", b"d"]);
        assert_eq!(RecordBatch::new(&bytes).unwrap().last_sequence(), 1);
    }

    #[test]
    fn detects_flipped_bytes_in_crc_range() {
        let mut bytes = build_batch(&BatchSpec::default(), &[b"hello"]);
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        assert!(matches!(
            RecordBatch::new(&bytes).unwrap().verify_crc(),
            Err(StorageError::CorruptMessage(_))
        ));
    }

    #[test]
    fn refuses_old_formats_and_bad_magic() {
        let mut bytes = build_batch(&BatchSpec::default(), &[b"v"]);
        bytes[MAGIC] = 1;
        assert!(matches!(
            RecordBatch::new(&bytes),
            Err(StorageError::UnsupportedMessageFormat(1))
        ));
        bytes[MAGIC] = 9;
        assert!(matches!(
            RecordBatch::new(&bytes),
            Err(StorageError::CorruptMessage(_))
        ));
    }

    #[test]
    fn record_count_mismatch_is_detected() {
        let mut bytes = build_batch(&BatchSpec::default(), &[b"a", b"b"]);
        bytes[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&3i32.to_be_bytes());
        let batch = RecordBatch::new(&bytes).unwrap();
        assert!(batch.walk_uncompressed_records().is_err());
    }

    #[test]
    fn iterator_stops_at_torn_tail() {
        let a = build_batch(&BatchSpec::default(), &[b"one"]);
        let b = build_batch(
            &BatchSpec {
                base_offset: 1,
                ..Default::default()
            },
            &[b"two"],
        );
        let mut buf = [a.clone(), b.clone()].concat();
        buf.truncate(a.len() + b.len() - 3);
        let mut it = BatchIter::new(&buf, usize::MAX);
        assert_eq!(it.next().unwrap().unwrap().base_offset(), 0);
        assert!(it.next().is_none());
        assert_eq!(it.position(), a.len());
    }

    #[test]
    fn iterator_reports_impossible_length_once() {
        let mut buf = build_batch(&BatchSpec::default(), &[b"one"]);
        buf[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&5i32.to_be_bytes());
        let mut it = BatchIter::new(&buf, usize::MAX);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
        assert_eq!(it.position(), 0);
    }

    #[test]
    fn frame_rejects_oversize_before_reading_body() {
        let buf = build_batch(&BatchSpec::default(), &[&[0u8; 100]]);
        assert!(matches!(
            frame(&buf[..12], 50),
            Err(StorageError::MessageTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<i32>(), w in any::<i64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, i64::from(v));
            prop_assert_eq!(read_varint(&out), Some((v, out.len())));
            let mut out = Vec::new();
            put_varint(&mut out, w);
            prop_assert_eq!(read_varlong(&out), Some((w, out.len())));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for batch in BatchIter::new(&bytes, 1 << 20).flatten() {
                let _ = batch.verify_crc();
                let _ = batch.walk_uncompressed_records();
                let _ = batch.compression();
                let _ = batch.last_sequence();
            }
        }
    }
}
