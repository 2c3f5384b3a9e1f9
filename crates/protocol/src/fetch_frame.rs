//! Fetch responses framed around byte ranges the caller sends itself (the broker: segment file
//! ranges, written to the socket with `sendfile`), so record bytes are never copied into the
//! response.
//!
//! ```text
//! handler: PartitionData.records = builder.placeholder(range)      (16 bytes each)
//! encode:  kafka-protocol encodes the whole response (small: no records in it)
//! splice:  size | header ... [len] PLACEHOLDER ... [len] PLACEHOLDER ... tail
//!     ->   Bytes(size' | header ... len') Range(r0) Bytes(... len'') Range(r1) Bytes(tail)
//! ```
//!
//! A placeholder is 16 bytes: a random nonce drawn once per process (12 bytes), then the
//! placeholder's index in its response (u32, big-endian). [`FetchFrameBuilder::encode`] finds
//! each placeholder in the encoded frame, checks that it is preceded by the length prefix
//! kafka-protocol writes for 16 bytes of records (int32 16 in the non-flexible versions, before
//! v12; unsigned varint 17 in the flexible ones), and replaces prefix and placeholder with the
//! range's real length prefix and a [`Chunk::Range`]. The 4-byte frame size counts the ranges'
//! bytes. If any placeholder is missing, found twice or not preceded by its prefix, it returns
//! [`FetchFrameError::Splice`] and leaves the ranges in the builder: the caller then copies
//! them into the response ([`FetchFrameBuilder::inline`]) and encodes it as any other, so a
//! response is never wrong, only sometimes copied.
//!
//! Why placeholders rather than positions computed from the schema: where a partition's
//! `records` field lands in the frame depends on every field written before it, and those
//! differ by version (throttle time, error code and session id, topic names or ids, tagged
//! fields from v12, node endpoints in v16, ...). Computing the positions would mean a second
//! encoder of the Fetch schema, by hand, that must agree with kafka-protocol's for every
//! version. With placeholders kafka-protocol stays the only encoder, for every Fetch version
//! it knows, later ones included, and the prefix check plus the fallback bound the cost of a
//! surprise to one copy. A false match needs the 12 nonce bytes, which never reach the wire
//! (each placeholder is replaced), to occur by chance in the framing right after the expected
//! prefix: about 2^-96 per position.
//!
//! Pure: no I/O (the nonce comes from the OS's random source, once). The builder is per
//! response; the nonce is shared by all threads.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse};

use crate::error::EncodeError;
use crate::response::encode_response_body;

/// Bytes of a placeholder: the nonce, then the index.
pub const PLACEHOLDER_LEN: usize = 16;
/// Bytes of the random part of a placeholder.
const NONCE_LEN: usize = 12;

/// The process's placeholder nonce (random, drawn on first use).
fn nonce() -> &'static [u8; NONCE_LEN] {
    static NONCE: OnceLock<[u8; NONCE_LEN]> = OnceLock::new();
    NONCE.get_or_init(|| {
        let random = uuid::Uuid::new_v4().into_bytes();
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&random[..NONCE_LEN]);
        n
    })
}

/// One piece of a response frame, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk<R> {
    /// Bytes to write as they are (size prefix, header, framing between the records).
    Bytes(Bytes),
    /// A range of record bytes the caller sends itself (exactly the length it was registered
    /// with in [`FetchFrameBuilder::placeholder`]).
    Range(R),
}

/// Why a response could not be framed around its ranges.
#[derive(Debug, thiserror::Error)]
pub enum FetchFrameError {
    /// The response itself could not be encoded (as [`crate::encode_response`] would fail).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The placeholders were not where they should be: copy the ranges into the response
    /// ([`FetchFrameBuilder::inline`]) and encode it as any other.
    #[error("cannot splice the records into the fetch response: {0}")]
    Splice(String),
}

/// The ranges of one Fetch response and the placeholders that stand for them.
#[derive(Debug)]
pub struct FetchFrameBuilder<R> {
    ranges: Vec<(R, u32)>,
}

impl<R> Default for FetchFrameBuilder<R> {
    fn default() -> Self {
        FetchFrameBuilder { ranges: Vec::new() }
    }
}

impl<R> FetchFrameBuilder<R> {
    /// An empty builder (one per response).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of ranges registered.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no range is registered (the response can be encoded as usual).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Registers `range` of `len` bytes (whole record batches) and returns the placeholder to
    /// put in its partition's `records`. A range must not be empty: empty records are encoded
    /// as they are.
    pub fn placeholder(&mut self, range: R, len: u32) -> Bytes {
        let index = self.ranges.len() as u32;
        self.ranges.push((range, len));
        placeholder_bytes(index)
    }

    /// Encodes `body` as the frame of a Fetch v`version` response with `correlation_id`, each
    /// placeholder replaced by its range. On success the ranges move into the chunks; on
    /// [`FetchFrameError::Splice`] they stay here for [`Self::inline`].
    pub fn encode(
        &mut self,
        correlation_id: i32,
        version: i16,
        body: &FetchResponse,
    ) -> Result<Vec<Chunk<R>>, FetchFrameError> {
        let mut frame = BytesMut::new();
        encode_response_body(correlation_id, ApiKey::Fetch, version, body, &mut frame)?;
        let flexible = ApiKey::Fetch.response_header_version(version) >= 1;
        let hits = self
            .find_placeholders(&frame, flexible)
            .map_err(FetchFrameError::Splice)?;

        // The frame size without the placeholders and their prefixes, with the real ones.
        let old_prefix = if flexible { 1 } else { 4 };
        let mut size = (frame.len() - 4 - hits.len() * (old_prefix + PLACEHOLDER_LEN)) as u64;
        for &(_, index) in &hits {
            let len = self.ranges[index].1;
            size += prefix_len(len, flexible)? as u64 + u64::from(len);
        }
        let size =
            i32::try_from(size).map_err(|_| EncodeError::FrameTooLarge { len: size as usize })?;
        frame[..4].copy_from_slice(&size.to_be_bytes());

        let lens: Vec<u32> = self.ranges.iter().map(|(_, len)| *len).collect();
        let mut ranges: Vec<Option<R>> = std::mem::take(&mut self.ranges)
            .into_iter()
            .map(|(r, _)| Some(r))
            .collect();
        let mut out = BytesMut::with_capacity(frame.len() + hits.len() * 4);
        let mut chunks = Vec::with_capacity(hits.len() * 2 + 1);
        let mut last = 0;
        for (position, index) in hits {
            out.extend_from_slice(&frame[last..position - old_prefix]);
            put_prefix(&mut out, lens[index], flexible)?;
            chunks.push(Chunk::Bytes(out.split().freeze()));
            if let Some(range) = ranges[index].take() {
                chunks.push(Chunk::Range(range));
            }
            last = position + PLACEHOLDER_LEN;
        }
        out.extend_from_slice(&frame[last..]);
        if !out.is_empty() {
            chunks.push(Chunk::Bytes(out.freeze()));
        }
        Ok(chunks)
    }

    /// Where each placeholder starts in `frame`, in frame order, with its index. Every
    /// registered placeholder must occur exactly once, right after its length prefix.
    fn find_placeholders(
        &self,
        frame: &[u8],
        flexible: bool,
    ) -> Result<Vec<(usize, usize)>, String> {
        let expected_prefix: &[u8] = if flexible {
            &[PLACEHOLDER_LEN as u8 + 1]
        } else {
            &[0, 0, 0, PLACEHOLDER_LEN as u8]
        };
        let mut seen = vec![false; self.ranges.len()];
        let mut hits = Vec::with_capacity(self.ranges.len());
        // After the size prefix and the correlation id.
        let body_start = 8;
        for at in memchr::memmem::find_iter(&frame[body_start..], nonce()) {
            let position = body_start + at;
            let Some(index_bytes) = frame.get(position + NONCE_LEN..position + PLACEHOLDER_LEN)
            else {
                return Err(format!("a cut placeholder at byte {position}"));
            };
            let index = u32::from_be_bytes([
                index_bytes[0],
                index_bytes[1],
                index_bytes[2],
                index_bytes[3],
            ]) as usize;
            if seen.get(index) != Some(&false) {
                return Err(format!(
                    "placeholder {index} at byte {position} unknown or seen twice"
                ));
            }
            seen[index] = true;
            let prefix_start = position.saturating_sub(expected_prefix.len());
            if position < body_start + expected_prefix.len()
                || &frame[prefix_start..position] != expected_prefix
            {
                return Err(format!(
                    "placeholder {index} at byte {position} without its length prefix"
                ));
            }
            if let Some(&(previous, _)) = hits.last() {
                if prefix_start < previous + PLACEHOLDER_LEN {
                    return Err(format!(
                        "placeholder {index} at byte {position} overlaps the previous one"
                    ));
                }
            }
            hits.push((position, index));
        }
        if hits.len() != self.ranges.len() {
            return Err(format!(
                "{} of {} placeholders found",
                hits.len(),
                self.ranges.len()
            ));
        }
        Ok(hits)
    }

    /// The copying fallback: replaces every placeholder in `body` with the bytes `read` gives
    /// for its range, so `body` can be encoded as any response. Consumes the ranges.
    pub fn inline<E>(
        self,
        body: &mut FetchResponse,
        mut read: impl FnMut(&R) -> Result<Bytes, E>,
    ) -> Result<(), E> {
        for topic in &mut body.responses {
            for partition in &mut topic.partitions {
                let Some(index) = partition.records.as_ref().and_then(placeholder_index) else {
                    continue;
                };
                if let Some((range, _)) = self.ranges.get(index) {
                    partition.records = Some(read(range)?);
                }
            }
        }
        Ok(())
    }
}

/// The index of `records` if it is one of this process's placeholders.
fn placeholder_index(records: &Bytes) -> Option<usize> {
    if records.len() != PLACEHOLDER_LEN || records[..NONCE_LEN] != nonce()[..] {
        return None;
    }
    let i = &records[NONCE_LEN..];
    Some(u32::from_be_bytes([i[0], i[1], i[2], i[3]]) as usize)
}

/// Writes the length prefix of `len` bytes of records as kafka-protocol does: int32, or in
/// flexible versions an unsigned varint of `len + 1` (7 bits a byte, low bits first).
fn put_prefix(out: &mut BytesMut, len: u32, flexible: bool) -> Result<(), EncodeError> {
    let too_large = || EncodeError::FrameTooLarge { len: len as usize };
    if flexible {
        let mut v = len.checked_add(1).ok_or_else(too_large)?;
        while v >= 0x80 {
            out.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.put_u8(v as u8);
    } else {
        out.put_i32(i32::try_from(len).map_err(|_| too_large())?);
    }
    Ok(())
}

/// The placeholder of the `index`th range of a response.
fn placeholder_bytes(index: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(PLACEHOLDER_LEN);
    b.put_slice(nonce());
    b.put_u32(index);
    b.freeze()
}

/// Bytes of the length prefix of `len` bytes of records.
fn prefix_len(len: u32, flexible: bool) -> Result<usize, EncodeError> {
    if flexible {
        let v = len
            .checked_add(1)
            .ok_or(EncodeError::FrameTooLarge { len: len as usize })?;
        Ok((32 - v.leading_zeros() as usize).div_ceil(7))
    } else {
        Ok(4)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
        PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    use proptest::strategy::Just;

    use super::*;
    use crate::api_versions::supported_range;

    /// Every Fetch version the broker supports.
    fn fetch_versions() -> std::ops::RangeInclusive<i16> {
        let r = supported_range(ApiKey::Fetch).expect("Fetch is supported");
        r.min..=r.max
    }

    /// `len` bytes of a pattern that differs per `seed` (so misplaced bytes show).
    fn record_bytes(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    fn partition(index: i32, records: Option<Bytes>) -> PartitionData {
        PartitionData::default()
            .with_partition_index(index)
            .with_high_watermark(1000 + i64::from(index))
            .with_last_stable_offset(900 + i64::from(index))
            .with_log_start_offset(7)
            .with_records(records)
    }

    /// A response as the broker sends it, with its real records: several topics and
    /// partitions, record lengths whose flexible prefixes take 1 to 4 bytes, empty and null
    /// records, errors, aborted transactions, and (v12+) tagged fields after the records.
    fn response(version: i16) -> FetchResponse {
        let topic = |name: &str, id: u128, partitions: Vec<PartitionData>| {
            let t = FetchableTopicResponse::default().with_partitions(partitions);
            if version >= 13 {
                t.with_topic_id(uuid::Uuid::from_u128(id))
            } else {
                t.with_topic(TopicName(StrBytes::from_string(name.to_owned())))
            }
        };
        let aborted = vec![
            AbortedTransaction::default()
                .with_producer_id(ProducerId(42))
                .with_first_offset(3),
            AbortedTransaction::default()
                .with_producer_id(ProducerId(43))
                .with_first_offset(9),
        ];
        let mut tagged = partition(4, Some(record_bytes(300, 4)));
        if version >= 12 {
            tagged = tagged
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(2))
                        .with_leader_epoch(5),
                )
                .with_diverging_epoch(EpochEndOffset::default().with_epoch(4).with_end_offset(77));
        }
        let mut r = FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_responses(vec![
                topic(
                    "orders",
                    1,
                    vec![
                        partition(0, Some(record_bytes(10, 0))),
                        partition(1, Some(Bytes::new())),
                        partition(2, Some(Bytes::new())).with_error_code(6),
                        partition(3, Some(record_bytes(200, 3)))
                            .with_aborted_transactions(Some(aborted)),
                        tagged,
                    ],
                ),
                topic(
                    "events",
                    2,
                    vec![
                        partition(0, Some(record_bytes(20_000, 5))),
                        partition(1, None),
                        partition(2, Some(record_bytes(PLACEHOLDER_LEN, 6))),
                    ],
                ),
                topic("empty", 3, vec![]),
                topic(
                    "big",
                    4,
                    vec![partition(0, Some(record_bytes(3_000_000, 7)))],
                ),
            ]);
        if version >= 7 {
            r = r.with_error_code(0).with_session_id(0);
        }
        if version >= 16 {
            r = r.with_node_endpoints(vec![NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("broker-2"))
                .with_port(9092)]);
        }
        r
    }

    /// `r` with every non-empty records replaced by a placeholder, and the builder holding
    /// those records as ranges (in a test, a range is simply the bytes).
    fn with_placeholders(r: &FetchResponse) -> (FetchResponse, FetchFrameBuilder<Bytes>) {
        let mut r = r.clone();
        let mut builder = FetchFrameBuilder::new();
        for t in &mut r.responses {
            for p in &mut t.partitions {
                if let Some(records) = p.records.as_ref().filter(|b| !b.is_empty()) {
                    let len = records.len() as u32;
                    p.records = Some(builder.placeholder(records.clone(), len));
                }
            }
        }
        (r, builder)
    }

    /// The bytes on the wire: the chunks in order, each range's bytes in its place.
    fn wire(chunks: &[Chunk<Bytes>]) -> Bytes {
        let mut out = BytesMut::new();
        for c in chunks {
            match c {
                Chunk::Bytes(b) | Chunk::Range(b) => out.extend_from_slice(b),
            }
        }
        out.freeze()
    }

    /// Decodes a whole Fetch v`version` response frame; checks its size prefix and that
    /// nothing is left over.
    fn decode(mut frame: Bytes, version: i16) -> (i32, FetchResponse) {
        let size = frame.get_i32();
        assert_eq!(size as usize, frame.len(), "v{version}: size prefix");
        let header_version = ApiKey::Fetch.response_header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version).expect("header");
        let body = FetchResponse::decode(&mut frame, version).expect("body");
        assert!(
            frame.is_empty(),
            "v{version}: {} bytes left over",
            frame.len()
        );
        (header.correlation_id, body)
    }

    /// The frame kafka-protocol encodes for `body`, records and all.
    fn plain(correlation_id: i32, version: i16, body: &FetchResponse) -> Bytes {
        let mut out = BytesMut::new();
        encode_response_body(correlation_id, ApiKey::Fetch, version, body, &mut out)
            .expect("encode");
        out.freeze()
    }

    /// `frame` decodes to `expected` as it reads at `version` (fields the version lacks read
    /// back as their defaults), and is byte for byte what kafka-protocol encodes for it.
    fn assert_frame_of(frame: Bytes, expected: &FetchResponse, correlation_id: i32, version: i16) {
        let reference = plain(correlation_id, version, expected);
        assert!(
            frame == reference,
            "v{version}: {} bytes on the wire, {} expected",
            frame.len(),
            reference.len()
        );
        let (id, back) = decode(frame, version);
        let (_, reference) = decode(reference, version);
        assert_eq!(id, correlation_id);
        // Not assert_eq!: a mismatch would print megabytes of records.
        assert!(back == reference, "v{version}: decoded responses differ");
        let records = |r: &FetchResponse| -> Vec<Option<usize>> {
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.records.as_ref().map(Bytes::len))
                .collect()
        };
        assert_eq!(records(&back), records(expected), "v{version}");
    }

    #[test]
    fn every_supported_version_decodes_to_the_same_response() {
        for version in fetch_versions() {
            let expected = response(version);
            let (body, mut builder) = with_placeholders(&expected);
            assert_eq!(builder.len(), 6);
            let chunks = builder
                .encode(41, version, &body)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert!(builder.is_empty(), "the ranges moved into the chunks");
            assert_frame_of(wire(&chunks), &expected, 41, version);

            // The records are ranges, not bytes: framing and ranges alternate, in frame order.
            let ranges: Vec<usize> = chunks
                .iter()
                .filter_map(|c| match c {
                    Chunk::Range(b) => Some(b.len()),
                    Chunk::Bytes(_) => None,
                })
                .collect();
            assert_eq!(ranges, [10, 200, 300, 20_000, 16, 3_000_000], "v{version}");
            for pair in chunks.windows(2) {
                assert!(
                    !matches!(pair, [Chunk::Range(_), Chunk::Range(_)]),
                    "v{version}: a length prefix before every range"
                );
            }
            let framing: usize = chunks
                .iter()
                .map(|c| match c {
                    Chunk::Bytes(b) => b.len(),
                    Chunk::Range(_) => 0,
                })
                .sum();
            assert!(framing < 1000, "v{version}: {framing} bytes of framing");
        }
    }

    proptest::proptest! {
        /// Any shape of response (topics, partitions, record lengths across the varint
        /// boundaries, empty and null records) splices to exactly kafka-protocol's encoding.
        #[test]
        fn any_response_splices_to_the_plain_encoding(
            version in 4i16..=16,
            topics in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::option::of(proptest::prop_oneof![
                        Just(0usize), 1usize..200, 16_300usize..16_500, 70_000usize..70_100,
                    ]),
                    0..5,
                ),
                0..4,
            ),
        ) {
            proptest::prop_assume!(fetch_versions().contains(&version));
            let expected = FetchResponse::default().with_responses(
                topics
                    .iter()
                    .enumerate()
                    .map(|(t, partitions)| {
                        let parts = partitions
                            .iter()
                            .enumerate()
                            .map(|(i, len)| {
                                partition(i as i32, len.map(|n| record_bytes(n, (t + i) as u8)))
                            })
                            .collect();
                        let topic = FetchableTopicResponse::default().with_partitions(parts);
                        if version >= 13 {
                            topic.with_topic_id(uuid::Uuid::from_u128(t as u128 + 1))
                        } else {
                            topic.with_topic(TopicName(StrBytes::from_string(format!("t{t}"))))
                        }
                    })
                    .collect(),
            );
            let (body, mut builder) = with_placeholders(&expected);
            let chunks = builder.encode(3, version, &body).expect("splice");
            assert_frame_of(wire(&chunks), &expected, 3, version);
        }
    }

    #[test]
    fn without_ranges_the_frame_is_the_plain_encoding() {
        for version in fetch_versions() {
            let body = FetchResponse::default()
                .with_responses(vec![FetchableTopicResponse::default()
                    .with_partitions(vec![partition(0, Some(Bytes::new()))])]);
            let mut builder = FetchFrameBuilder::<Bytes>::new();
            let chunks = builder.encode(9, version, &body).expect("encode");
            assert_eq!(
                chunks,
                vec![Chunk::Bytes(plain(9, version, &body))],
                "v{version}"
            );
        }
    }

    /// A splice failure leaves the ranges in the builder; copying them in gives the response.
    fn assert_falls_back(
        mut builder: FetchFrameBuilder<Bytes>,
        mut body: FetchResponse,
        expected: &FetchResponse,
        version: i16,
    ) {
        match builder.encode(5, version, &body) {
            Err(FetchFrameError::Splice(reason)) => eprintln!("v{version}: {reason}"),
            other => panic!("v{version}: expected a splice failure, got {other:?}"),
        }
        builder
            .inline(&mut body, |b| Ok::<_, std::convert::Infallible>(b.clone()))
            .expect("inline");
        assert_frame_of(plain(5, version, &body), expected, 5, version);
    }

    #[test]
    fn a_missing_placeholder_falls_back_to_copying() {
        for version in fetch_versions() {
            let expected = response(version);
            let (body, mut builder) = with_placeholders(&expected);
            // Registered, but in no partition.
            builder.placeholder(Bytes::from_static(b"lost"), 4);
            assert_falls_back(builder, body, &expected, version);
        }
    }

    #[test]
    fn a_placeholder_without_its_length_prefix_falls_back_to_copying() {
        for version in fetch_versions() {
            let mut expected = response(version);
            let (mut body, mut builder) = with_placeholders(&expected);
            // Records that hold a placeholder and more: the prefix says 20, not 16.
            let mut records = BytesMut::from(&builder.placeholder(Bytes::new(), 0)[..]);
            records.extend_from_slice(b"more");
            let records = records.freeze();
            body.responses[2].partitions = vec![partition(0, Some(records.clone()))];
            expected.responses[2].partitions = vec![partition(0, Some(records))];
            // inline() replaces only exact placeholders: these records stay as they are.
            assert_falls_back(builder, body, &expected, version);
        }
    }

    #[test]
    fn a_duplicated_placeholder_falls_back_to_copying() {
        for version in fetch_versions() {
            let expected = response(version);
            let (mut body, builder) = with_placeholders(&expected);
            let first = body.responses[0].partitions[0].records.clone();
            let mut expected = expected;
            body.responses[2].partitions = vec![partition(0, first)];
            expected.responses[2].partitions = vec![partition(0, Some(record_bytes(10, 0)))];
            assert_falls_back(builder, body, &expected, version);
        }
    }

    #[test]
    fn prefix_lengths_match_kafka_protocol() {
        use kafka_protocol::protocol::Encodable;
        let size = |records: usize, version: i16| {
            partition(0, Some(Bytes::from(vec![0u8; records])))
                .compute_size(version)
                .expect("size")
        };
        for len in [
            0u32, 1, 126, 127, 128, 16_382, 16_383, 16_384, 2_097_150, 2_097_151,
        ] {
            for (flexible, version) in [(false, 11), (true, 12)] {
                let mut out = BytesMut::new();
                put_prefix(&mut out, len, flexible).expect("prefix");
                assert_eq!(out.len(), prefix_len(len, flexible).expect("len"), "{len}");
                let mut empty = BytesMut::new();
                put_prefix(&mut empty, 0, flexible).expect("prefix");
                assert_eq!(
                    out.len() + len as usize - empty.len(),
                    size(len as usize, version) - size(0, version),
                    "{len}, v{version}"
                );
            }
        }
    }

    #[test]
    fn placeholders_are_recognised_only_whole() {
        let mut builder = FetchFrameBuilder::<()>::new();
        let p = builder.placeholder((), 1);
        let q = builder.placeholder((), 1);
        assert_eq!(p.len(), PLACEHOLDER_LEN);
        assert_ne!(p, q);
        assert_eq!(placeholder_index(&p), Some(0));
        assert_eq!(placeholder_index(&q), Some(1));
        assert_eq!(placeholder_index(&p.slice(..15)), None);
        assert_eq!(placeholder_index(&record_bytes(16, 0)), None);
    }
}
