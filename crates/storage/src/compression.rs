//! The records section of compressed batches: decompression, compression and a record cursor.
//!
//! A batch's attributes (bits 0-2) name the codec of everything after its 61-byte header; the
//! header itself is never compressed. The framings are the ones Kafka clients put on the wire:
//!
//! | codec  | framing                                                                          |
//! | ------ | -------------------------------------------------------------------------------- |
//! | gzip   | RFC 1952 gzip; concatenated members are read as one stream (Java's `GZIPInputStream`) |
//! | snappy | snappy-java's stream ("xerial") framing, see below; raw unframed snappy is accepted too |
//! | lz4    | the standard LZ4 frame format (for magic 2; the broken header checksum was magic 0 only) |
//! | zstd   | standard zstd frames, several in a row allowed                                   |
//!
//! The xerial framing that the Java client's `SnappyOutputStream` writes is a 16-byte header
//! (`\x82SNAPPY\0`, then big-endian i32 version 1 and minimum compatible version 1) followed by
//! chunks of `[big-endian i32 length][raw snappy block]`, each block at most 32 KiB of input.
//! A second header may follow a chunk (concatenated streams); snappy-java skips it and so does
//! this module. Input without the header is one raw snappy block: librdkafka (and so the
//! confluent-kafka clients) writes snappy that way, and snappy-java reads it the same way.
//!
//! Every decoder here is bounded by a `limit` on the decompressed size, so a small batch that
//! inflates enormously (a "zip bomb") fails with `CORRUPT_MESSAGE` instead of exhausting memory.
//! Output grows with what has actually been decoded; it is never sized from a claim in the
//! input beyond `limit`.

use std::io::{self, Read, Write};

use crate::batch::{read_varint, read_varlong, Compression, RecordBatch};
use crate::{Result, StorageError};

/// Cap on a batch's decompressed records section for reads that decode records (the time
/// lookup). 64 times Kafka's default `max.message.bytes` (1 MiB): generous for real batches, and
/// small enough that a lookup over a hostile batch cannot take the node's memory.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// Magic bytes that open snappy-java's stream format.
const XERIAL_MAGIC: [u8; 8] = *b"\x82SNAPPY\0";
/// Header size: magic, version and minimum compatible version.
const XERIAL_HEADER_SIZE: usize = 16;
/// Version numbers snappy-java writes (`SnappyCodec.DEFAULT_VERSION` and
/// `MINIMUM_COMPATIBLE_VERSION`); older stream versions are refused, as snappy-java does.
const XERIAL_VERSION: i32 = 1;
/// Input bytes per chunk in snappy-java's `SnappyOutputStream` (its default block size).
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
/// The largest output one byte of raw snappy can stand for: a 3-byte copy emits at most 64
/// bytes, and no other element does better. A block claiming more is corrupt on its face.
const SNAPPY_MAX_EXPANSION: usize = 22;
/// Magic number of an LZ4 frame (little-endian on the wire).
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
/// Largest zstd window accepted, `ZSTD_WINDOWLOG_LIMIT_DEFAULT` (128 MiB): what zstd and Kafka's
/// zstd-jni accept by default, so every frame Kafka can read is readable here.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Kafka's default compression levels (`compression.gzip.level`, `compression.zstd.level`).
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

/// The codec's id in a batch's attributes (bits 0-2).
pub fn codec_id(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

fn corrupt(codec: Compression, what: impl std::fmt::Display) -> StorageError {
    StorageError::CorruptMessage(format!("{} records: {what}", codec_name(codec)))
}

fn over_limit(codec: Compression, limit: usize) -> StorageError {
    corrupt(
        codec,
        format_args!("decompress to more than the limit of {limit} bytes"),
    )
}

/// Inflates `data`, the records section of a batch compressed with `codec`, in the framing Kafka
/// clients write (see the module doc). Output larger than `limit` bytes, and any data that does
/// not decode, is `CorruptMessage`. The output buffer grows with the output actually produced
/// and never holds more than `limit` bytes of capacity. The codecs' own working memory is
/// bounded separately: gzip tens of KiB, snappy none, LZ4 two blocks (at most 4 MiB each), zstd the
/// window its frame header declares, up to 128 MiB as zstd and Kafka's zstd-jni allow by
/// default (allocated when the frame starts, filled only as output is produced).
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>> {
    if codec != Compression::None && data.is_empty() {
        // Every codec's framing has at least a header: Kafka fails on empty input too.
        return Err(corrupt(codec, "no compressed data"));
    }
    match codec {
        Compression::None if data.len() > limit => Err(over_limit(codec, limit)),
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_capped(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Snappy => snappy_decompress(data, limit),
        Compression::Lz4 => {
            let frame = &data[..lz4_frame_len(data)?];
            read_capped(codec, lz4_flex::frame::FrameDecoder::new(frame), limit)
        }
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(data).map_err(|e| corrupt(codec, e))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(codec, e))?;
            read_capped(codec, decoder, limit)
        }
    }
}

/// Reads `reader` to its end, failing once it yields more than `limit` bytes.
fn read_capped(codec: Compression, mut reader: impl Read, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(codec, e)),
        };
        reserve_within(&mut out, n, limit).ok_or_else(|| over_limit(codec, limit))?;
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Makes room for `additional` more bytes in `out`, doubling its capacity as `Vec` would but
/// never past `limit`; `None` if `out` would then hold more than `limit` bytes.
fn reserve_within(out: &mut Vec<u8>, additional: usize, limit: usize) -> Option<()> {
    let needed = out.len().checked_add(additional).filter(|&n| n <= limit)?;
    if needed > out.capacity() {
        let target = out.capacity().saturating_mul(2).max(needed).max(64 * 1024);
        out.reserve_exact(target.min(limit) - out.len());
    }
    Some(())
}

/// Walks the block headers of the LZ4 frame that starts `data`, checking its descriptor as
/// Kafka's `Lz4BlockInputStream` does (version 1, independent blocks, no dictionary, block size
/// 64 KiB to 4 MiB), and returns the frame's length. The decoder itself takes input that ends at
/// a block boundary, without the end mark, for a complete frame; this makes it an error, as in
/// Kafka. Bytes after the frame are ignored, as Kafka ignores them.
fn lz4_frame_len(data: &[u8]) -> Result<usize> {
    let codec = Compression::Lz4;
    let truncated = || corrupt(codec, "frame ends before its end mark");
    let (magic, rest) = data.split_first_chunk::<4>().ok_or_else(truncated)?;
    if u32::from_le_bytes(*magic) != LZ4_FRAME_MAGIC {
        return Err(corrupt(codec, "not an LZ4 frame (bad magic)"));
    }
    let [flg, bd, ..] = *rest else {
        return Err(truncated());
    };
    if flg >> 6 != 1 || flg & 0x20 == 0 || flg & 0x03 != 0 {
        return Err(corrupt(
            codec,
            format_args!("unsupported frame flags {flg:#04x}"),
        ));
    }
    let block_size_id = (bd >> 4) & 0x07;
    if bd & 0x8f != 0 || !(4..=7).contains(&block_size_id) {
        return Err(corrupt(
            codec,
            format_args!("invalid block descriptor {bd:#04x}"),
        ));
    }
    let max_block = 1usize << (2 * usize::from(block_size_id) + 8);
    let block_checksum = if flg & 0x10 != 0 { 4 } else { 0 };
    let content_size = if flg & 0x08 != 0 { 8 } else { 0 };
    let content_checksum = if flg & 0x04 != 0 { 4 } else { 0 };
    // Magic, FLG, BD, optional content size, header checksum.
    let mut pos = 4 + 2 + content_size + 1;
    loop {
        let size = data
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(truncated)?;
        pos += 4;
        if size == 0 {
            pos += content_checksum;
            break;
        }
        let len = (size & 0x7fff_ffff) as usize;
        if len > max_block {
            return Err(corrupt(
                codec,
                format_args!("block of {len} bytes exceeds the frame's maximum of {max_block}"),
            ));
        }
        pos += len + block_checksum;
        if pos > data.len() {
            return Err(truncated());
        }
    }
    if pos > data.len() {
        return Err(truncated());
    }
    Ok(pos)
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    // snappy-java's test: at least a whole header, starting with the magic.
    if data.len() < XERIAL_HEADER_SIZE || data[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
        snappy_block_into(&mut out, data, limit)?;
        return Ok(out);
    }
    let mut rest = xerial_skip_header(data)?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(Compression::Snappy, "truncated chunk length"))?;
        if len[..] == XERIAL_MAGIC[..4] {
            // A second stream appended to the first (snappy-java's concatenated streams).
            rest = xerial_skip_header(rest)?;
            continue;
        }
        let len = i32::from_be_bytes(*len);
        let len = usize::try_from(len)
            .map_err(|_| corrupt(Compression::Snappy, format_args!("chunk length {len}")))?;
        let block = tail.get(..len).ok_or_else(|| {
            corrupt(
                Compression::Snappy,
                format_args!("chunk of {len} bytes runs past the data"),
            )
        })?;
        snappy_block_into(&mut out, block, limit)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Checks the xerial header at the start of `data` and returns what follows it.
fn xerial_skip_header(data: &[u8]) -> Result<&[u8]> {
    let (header, rest) = data
        .split_first_chunk::<XERIAL_HEADER_SIZE>()
        .ok_or_else(|| corrupt(Compression::Snappy, "truncated stream header"))?;
    if header[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
        return Err(corrupt(Compression::Snappy, "bad stream header magic"));
    }
    let version = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if version < XERIAL_VERSION {
        return Err(corrupt(
            Compression::Snappy,
            format_args!("unsupported stream version {version}"),
        ));
    }
    Ok(rest)
}

/// Appends the raw snappy block `block` to `out`, keeping `out` within `limit`.
fn snappy_block_into(out: &mut Vec<u8>, block: &[u8], limit: usize) -> Result<()> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if len > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(corrupt(
            codec,
            format_args!(
                "a block of {} bytes claims {len} bytes of output",
                block.len()
            ),
        ));
    }
    reserve_within(out, len, limit).ok_or_else(|| over_limit(codec, limit))?;
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, e))?;
    if written != len {
        return Err(corrupt(codec, "block shorter than its stated length"));
    }
    Ok(())
}

/// Compresses `data` (a batch's records section) with `codec` in the framing the Java client
/// writes (snappy: xerial framing in 32 KiB chunks; lz4: frame format with 64 KiB independent
/// blocks and no checksums; gzip and zstd at Kafka's default levels). Errors only if a codec
/// library fails, which writing to memory should not.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>> {
    let failed = |e: io::Error| corrupt(codec, format_args!("compression failed: {e}"));
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder.write_all(data).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_SIZE + data.len() / 2 + 64);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
            out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK_SIZE) {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                out.resize(at + 4 + snap::raw::max_compress_len(chunk.len()), 0);
                let n = encoder
                    .compress(chunk, &mut out[at + 4..])
                    .map_err(|e| corrupt(codec, format_args!("compression failed: {e}")))?;
                out.truncate(at + 4 + n);
                let n = i32::try_from(n).map_err(|_| corrupt(codec, "chunk too large"))?;
                out[at..at + 4].copy_from_slice(&n.to_be_bytes());
            }
            Ok(out)
        }
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder =
                FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2 + 64));
            encoder.write_all(data).map_err(failed)?;
            encoder
                .finish()
                .map_err(|e| corrupt(codec, format_args!("compression failed: {e}")))
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                ZSTD_LEVEL,
            )
            .map_err(failed)?;
            encoder.write_all(data).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
    }
}

/// One record of a batch, borrowed from the (decompressed) records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Record attributes (unused by Kafka so far).
    pub attributes: i8,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// The key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Number of headers (their bytes are checked, not returned).
    pub header_count: i32,
}

/// Walks the records of an uncompressed records section without allocating, as Kafka's
/// `DefaultRecordBatch` iterator does: exactly the declared number of records, each one's fields
/// bounds-checked and required to fill its stated length, and no bytes left after the last.
///
/// Yields `Err` once (and then `None`) at the first malformed record; the last record is
/// replaced by an error if bytes remain after it.
#[derive(Debug, Clone)]
pub struct RecordsCursor<'a> {
    rest: &'a [u8],
    remaining: u32,
    read: u32,
    failed: bool,
}

impl<'a> RecordsCursor<'a> {
    /// A cursor over `records` (a records section, already decompressed) holding `count`
    /// records, the batch header's `recordsCount`. A negative count is `CorruptMessage`.
    pub fn new(records: &'a [u8], count: i32) -> Result<Self> {
        let remaining = u32::try_from(count)
            .map_err(|_| StorageError::CorruptMessage(format!("invalid record count {count}")))?;
        Ok(RecordsCursor {
            rest: records,
            remaining,
            read: 0,
            failed: false,
        })
    }

    fn malformed(&self, what: &str) -> StorageError {
        StorageError::CorruptMessage(format!("record {} of the batch: {what}", self.read))
    }

    fn parse_next(&mut self) -> Result<RecordView<'a>> {
        let (len, used) = read_varint(self.rest).ok_or_else(|| self.malformed("record length"))?;
        let body = usize::try_from(len)
            .ok()
            .and_then(|len| self.rest.get(used..used.checked_add(len)?))
            .ok_or_else(|| self.malformed("record length exceeds the records"))?;
        let mut r = FieldReader { buf: body };
        let attributes = r.byte().ok_or_else(|| self.malformed("attributes"))? as i8;
        let timestamp_delta = r
            .varlong()
            .ok_or_else(|| self.malformed("timestamp delta"))?;
        let offset_delta = r.varint().ok_or_else(|| self.malformed("offset delta"))?;
        let key = r.bytes().ok_or_else(|| self.malformed("key"))?;
        let value = r.bytes().ok_or_else(|| self.malformed("value"))?;
        let header_count = r.varint().ok_or_else(|| self.malformed("header count"))?;
        if header_count < 0 {
            return Err(self.malformed("negative header count"));
        }
        for _ in 0..header_count {
            if r.bytes()
                .ok_or_else(|| self.malformed("header key"))?
                .is_none()
            {
                return Err(self.malformed("null header key"));
            }
            r.bytes().ok_or_else(|| self.malformed("header value"))?;
        }
        if !r.buf.is_empty() {
            return Err(self.malformed("bytes left over after the record's fields"));
        }
        self.rest = &self.rest[used + body.len()..];
        Ok(RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
        })
    }
}

impl<'a> Iterator for RecordsCursor<'a> {
    type Item = Result<RecordView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining == 0 {
            return None;
        }
        let mut result = self.parse_next();
        self.remaining -= 1;
        self.read += 1;
        if result.is_ok() && self.remaining == 0 && !self.rest.is_empty() {
            result = Err(StorageError::CorruptMessage(format!(
                "{} bytes after the last of {} records",
                self.rest.len(),
                self.read
            )));
        }
        self.failed = result.is_err();
        Some(result)
    }
}

/// Bounds-checked reads of record fields.
struct FieldReader<'a> {
    buf: &'a [u8],
}

impl<'a> FieldReader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }
    fn varint(&mut self) -> Option<i32> {
        let (v, used) = read_varint(self.buf)?;
        self.buf = &self.buf[used..];
        Some(v)
    }
    fn varlong(&mut self) -> Option<i64> {
        let (v, used) = read_varlong(self.buf)?;
        self.buf = &self.buf[used..];
        Some(v)
    }
    /// A length-prefixed byte string; a negative length is null, as Kafka reads it.
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        let Ok(len) = usize::try_from(len) else {
            return Some(None);
        };
        let b = self.buf.get(..len)?;
        self.buf = &self.buf[len..];
        Some(Some(b))
    }
}

/// Calls `f` with each record of `batch`, in order, until it returns `false`; compressed batches
/// are decompressed first (one buffer, at most `limit` bytes; uncompressed ones are read in
/// place). A batch with a record count of 0 has no records and is not decompressed, as in Kafka.
/// Malformed or undecodable records are `CorruptMessage`; records before the bad one have already
/// been passed to `f`.
pub fn for_each_record(
    batch: &RecordBatch<'_>,
    limit: usize,
    mut f: impl FnMut(RecordView<'_>) -> bool,
) -> Result<()> {
    let count = batch.records_count();
    if count == 0 {
        return Ok(());
    }
    let decompressed;
    let records = match batch.compression()? {
        Compression::None => batch.records_bytes(),
        codec => {
            decompressed = decompress(codec, batch.records_bytes(), limit)?;
            decompressed.as_slice()
        }
    };
    for record in RecordsCursor::new(records, count)? {
        if !f(record?) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{build_batch, build_compressed_batch, BatchSpec};
    use proptest::prelude::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const LIMIT: usize = 1 << 20;

    /// Compressible but not trivial: a few hundred KiB of repeated, counted text.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u32;
        while out.len() < len {
            out.extend_from_slice(format!("record-{i} value {} | ", i % 97).as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// Offset delta, timestamp delta, key and value of a record, owned.
    type OwnedRecord = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn records_of(batch: &[u8]) -> Vec<OwnedRecord> {
        let b = RecordBatch::new(batch).unwrap();
        let mut out = Vec::new();
        for_each_record(&b, LIMIT, |r| {
            out.push((
                r.offset_delta,
                r.timestamp_delta,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in CODECS.into_iter().chain([Compression::None]) {
            for len in [0, 1, 100, XERIAL_BLOCK_SIZE, 200_000] {
                let data = sample(len);
                let packed = compress(codec, &data).unwrap();
                assert_eq!(
                    decompress(codec, &packed, LIMIT).unwrap(),
                    data,
                    "{codec:?}, {len} bytes"
                );
                if len == 200_000 && codec != Compression::None {
                    assert!(packed.len() < len / 2, "{codec:?} did not compress");
                }
            }
        }
    }

    #[test]
    fn framings_are_the_ones_kafka_writes() {
        let data = sample(100_000);
        // gzip member header.
        assert_eq!(
            &compress(Compression::Gzip, &data).unwrap()[..3],
            [0x1f, 0x8b, 8]
        );
        // xerial: magic, version 1, compatible 1, then 32 KiB chunks: 4 of them for 100 000 B.
        let snappy = compress(Compression::Snappy, &data).unwrap();
        assert_eq!(&snappy[..16], b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01");
        let mut rest = &snappy[16..];
        let mut chunks = 0;
        while !rest.is_empty() {
            let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let block = &rest[4..4 + len];
            let out = snap::raw::decompress_len(block).unwrap();
            assert!(out <= XERIAL_BLOCK_SIZE);
            rest = &rest[4 + len..];
            chunks += 1;
        }
        assert_eq!(chunks, 4);
        // LZ4 frame: magic 0x184D2204 (LE), FLG version 01 + independent blocks, BD 64 KiB, as
        // Kafka's Lz4BlockOutputStream writes them, then a header checksum over FLG and BD.
        let lz4 = compress(Compression::Lz4, &data).unwrap();
        assert_eq!(&lz4[..4], 0x184D2204u32.to_le_bytes());
        assert_eq!((lz4[4], lz4[5]), (0x60, 0x40));
        // zstd frame magic 0xFD2FB528 (LE).
        assert_eq!(
            &compress(Compression::Zstd, &data).unwrap()[..4],
            0xFD2FB528u32.to_le_bytes()
        );
    }

    /// snappy-java's stream encoding of "foobar\n", as a hex dump of snappy-java's output in
    /// the docs of a Haskell snappy library (module `Codec.Compression.Snappy.Framed.SnappyJava`)
    /// shows it, not made by this module: header (magic, version 1, compatible 1), one chunk of
    /// 9 bytes: varint length 7, a literal tag for 7 bytes (0x18 = (7 - 1) << 2), the bytes.
    #[test]
    fn decodes_a_snappy_java_stream_from_its_spec() {
        let stream = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\
                       \x00\x00\x00\x09\x07\x18foobar\n";
        assert_eq!(
            decompress(Compression::Snappy, stream, LIMIT).unwrap(),
            b"foobar\n"
        );
        // The same block alone is raw snappy, as librdkafka writes it.
        assert_eq!(
            decompress(Compression::Snappy, &stream[20..], LIMIT).unwrap(),
            b"foobar\n"
        );
        // Two streams back to back (snappy-java reads concatenated streams).
        let twice = [&stream[..], &stream[..]].concat();
        assert_eq!(
            decompress(Compression::Snappy, &twice, LIMIT).unwrap(),
            b"foobar\nfoobar\n"
        );
        // Version 0 is refused, as snappy-java refuses it.
        let mut old = stream.to_vec();
        old[11] = 0;
        assert!(decompress(Compression::Snappy, &old, LIMIT).is_err());
        // A chunk whose length runs past the data.
        let mut long = stream.to_vec();
        long[19] = 10;
        assert!(decompress(Compression::Snappy, &long, LIMIT).is_err());
    }

    /// LZ4 frames as other writers make them (librdkafka's LZ4F can add a content size and
    /// checksums): all decode; linked blocks are refused, as Kafka's Lz4BlockInputStream refuses
    /// them; a frame cut at a block boundary, without its end mark, is an error.
    #[test]
    fn lz4_frame_variants() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        let data = sample(300_000);
        let encode = |info: FrameInfo| {
            let mut e = FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        for size in [BlockSize::Max64KB, BlockSize::Max256KB, BlockSize::Max4MB] {
            let frame = encode(
                FrameInfo::new()
                    .block_size(size)
                    .content_size(Some(data.len() as u64))
                    .block_checksums(true)
                    .content_checksum(true),
            );
            assert_eq!(decompress(Compression::Lz4, &frame, LIMIT).unwrap(), data);
            // Damage inside a block is caught by its checksum.
            let mut bad = frame.clone();
            bad[frame.len() / 2] ^= 1;
            assert!(decompress(Compression::Lz4, &bad, LIMIT).is_err());
        }
        let linked = encode(FrameInfo::new().block_mode(BlockMode::Linked));
        assert!(decompress(Compression::Lz4, &linked, LIMIT).is_err());
        // Ours: 5 blocks of 64 KiB, then the end mark. Drop the end mark.
        let ours = compress(Compression::Lz4, &data).unwrap();
        assert!(decompress(Compression::Lz4, &ours[..ours.len() - 4], LIMIT).is_err());
        // Bytes after the frame are ignored, as Kafka ignores them.
        let trailing = [&ours[..], b"trailing"].concat();
        assert_eq!(
            decompress(Compression::Lz4, &trailing, LIMIT).unwrap(),
            data
        );
    }

    #[test]
    fn gzip_members_and_zstd_frames_concatenate() {
        let (a, b) = (sample(1000), sample(3000));
        let joined = [&a[..], &b[..]].concat();
        for codec in [Compression::Gzip, Compression::Zstd] {
            let two = [compress(codec, &a).unwrap(), compress(codec, &b).unwrap()].concat();
            assert_eq!(decompress(codec, &two, LIMIT).unwrap(), joined, "{codec:?}");
        }
    }

    #[test]
    fn raw_and_framed_snappy_both_decode() {
        let data = sample(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, LIMIT).unwrap(), data);
        let framed = compress(Compression::Snappy, &data).unwrap();
        assert_ne!(raw, framed);
        assert_eq!(
            decompress(Compression::Snappy, &framed, LIMIT).unwrap(),
            data
        );
    }

    #[test]
    fn limit_is_enforced_for_every_codec() {
        let data = vec![0u8; 200_000];
        for codec in CODECS.into_iter().chain([Compression::None]) {
            let packed = compress(codec, &data).unwrap();
            let out = decompress(codec, &packed, data.len()).unwrap();
            assert_eq!(out.len(), data.len());
            assert!(
                out.capacity() <= data.len(),
                "{codec:?}: buffer past the limit"
            );
            let err = decompress(codec, &packed, data.len() - 1).unwrap_err();
            assert!(
                matches!(err, StorageError::CorruptMessage(ref m) if m.contains("limit")),
                "{codec:?}: {err}"
            );
        }
        // Raw snappy whose preamble claims far more than the data could produce.
        let mut bomb = Vec::new();
        let mut claim = 1u64 << 31; // 2 GiB, as snappy's unsigned varint
        while claim >= 0x80 {
            bomb.push((claim as u8 & 0x7f) | 0x80);
            claim >>= 7;
        }
        bomb.push(claim as u8);
        bomb.extend_from_slice(&[0; 8]);
        assert!(decompress(Compression::Snappy, &bomb, usize::MAX).is_err());
    }

    #[test]
    fn compressed_batches_hold_the_same_records_as_uncompressed_ones() {
        let values: Vec<Vec<u8>> = (0..50).map(|i| sample(10 + i * 37)).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let spec = BatchSpec {
            base_offset: 1000,
            ..BatchSpec::default()
        };
        let plain = build_batch(&spec, &refs);
        assert_eq!(
            build_compressed_batch(&spec, &refs, Compression::None),
            plain
        );
        let expected = records_of(&plain);
        assert_eq!(expected.len(), 50);
        assert_eq!(expected[7], (7, 7, None, Some(values[7].clone())));
        for codec in CODECS {
            let bytes = build_compressed_batch(&spec, &refs, codec);
            let b = RecordBatch::new(&bytes).unwrap();
            b.verify_crc().unwrap();
            assert_eq!(b.compression().unwrap(), codec);
            assert_eq!(b.records_count(), 50);
            assert_eq!(
                b.max_timestamp(),
                RecordBatch::new(&plain).unwrap().max_timestamp()
            );
            assert!(bytes.len() < plain.len(), "{codec:?}");
            assert_eq!(records_of(&bytes), expected, "{codec:?}");
        }
    }

    #[test]
    fn for_each_record_stops_when_asked() {
        let bytes =
            build_compressed_batch(&BatchSpec::default(), &[b"a", b"b", b"c"], Compression::Lz4);
        let mut seen = Vec::new();
        for_each_record(&RecordBatch::new(&bytes).unwrap(), LIMIT, |r| {
            seen.push(r.value.unwrap()[0]);
            r.offset_delta < 1
        })
        .unwrap();
        assert_eq!(seen, b"ab");
    }

    #[test]
    fn cursor_reads_keys_headers_and_nulls() {
        use crate::batch::testing::put_varint;
        let mut records = Vec::new();
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, 5); // timestamp delta
        put_varint(&mut body, 0); // offset delta
        put_varint(&mut body, 2);
        body.extend_from_slice(b"k1");
        put_varint(&mut body, -1); // null value
        put_varint(&mut body, 2); // headers
        put_varint(&mut body, 1);
        body.extend_from_slice(b"h");
        put_varint(&mut body, 1);
        body.extend_from_slice(b"v");
        put_varint(&mut body, 1);
        body.extend_from_slice(b"n");
        put_varint(&mut body, -1); // null header value
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
        let all: Vec<_> = RecordsCursor::new(&records, 1).unwrap().collect();
        let r = all[0].as_ref().unwrap();
        assert_eq!(
            (
                r.timestamp_delta,
                r.offset_delta,
                r.key,
                r.value,
                r.header_count
            ),
            (5, 0, Some(&b"k1"[..]), None, 2)
        );
        // Fewer records than declared, more than declared, a record longer than its fields.
        assert!(RecordsCursor::new(&records, 2).unwrap().any(|r| r.is_err()));
        let twice = [&records[..], &records[..]].concat();
        assert!(RecordsCursor::new(&twice, 1).unwrap().any(|r| r.is_err()));
        let mut padded = records.clone();
        padded[0] += 2; // varint of len + 1
        padded.push(0);
        assert!(RecordsCursor::new(&padded, 1).unwrap().any(|r| r.is_err()));
        assert!(RecordsCursor::new(&records, -1).is_err());
    }

    #[test]
    fn truncated_or_damaged_data_is_an_error() {
        let data = sample(50_000);
        for codec in CODECS {
            let packed = compress(codec, &data).unwrap();
            assert!(decompress(codec, &[], LIMIT).is_err(), "{codec:?}: empty");
            for cut in [1, 5, 17, packed.len() / 2, packed.len() - 1] {
                let r = decompress(codec, &packed[..cut], LIMIT);
                assert!(
                    r.as_ref().map_or(true, |out| out != &data),
                    "{codec:?}: {cut} of {} bytes decoded whole",
                    packed.len()
                );
                if codec != Compression::Snappy || cut >= XERIAL_HEADER_SIZE {
                    assert!(r.is_err(), "{codec:?}: truncated at {cut} decoded");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for codec in CODECS {
                let _ = decompress(codec, &bytes, 1 << 16);
            }
            // Random bytes behind a valid-looking header of each framing, too.
            let framed = [&b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01"[..], &bytes].concat();
            let _ = decompress(Compression::Snappy, &framed, 1 << 16);
            let header = compress(Compression::Lz4, b"x").unwrap();
            let lz4 = [&header[..7], &bytes].concat(); // magic, FLG, BD, header checksum
            let _ = decompress(Compression::Lz4, &lz4, 1 << 16);
            for count in [0, 1, 3, i32::MAX] {
                if let Ok(cursor) = RecordsCursor::new(&bytes, count) {
                    for r in cursor.take(1000) {
                        let _ = r;
                    }
                }
            }
        }

        #[test]
        fn flipped_bytes_never_panic(at in 0usize..4096, mask in 1u8..=255) {
            let data = sample(3000);
            for codec in CODECS {
                let mut packed = compress(codec, &data).unwrap();
                let i = at % packed.len();
                packed[i] ^= mask;
                let _ = decompress(codec, &packed, 1 << 16);
            }
        }

        #[test]
        fn damaged_batches_never_panic(at in 0usize..4096, mask in 1u8..=255, n in 1usize..20) {
            let values: Vec<Vec<u8>> = (0..n).map(|i| sample(i * 13)).collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            for codec in CODECS.into_iter().chain([Compression::None]) {
                let mut bytes = build_compressed_batch(&BatchSpec::default(), &refs, codec);
                // Anywhere from the record count on (the header before it only frames the batch).
                let i = 57 + at % (bytes.len() - 57);
                bytes[i] ^= mask;
                let b = RecordBatch::new(&bytes).unwrap();
                let mut seen = 0;
                let _ = for_each_record(&b, 1 << 16, |_| {
                    seen += 1;
                    true
                });
                prop_assert!(seen <= n.max(b.records_count().max(0) as usize));
            }
        }
    }
}
