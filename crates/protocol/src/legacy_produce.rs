//! Produce v0-2, by hand: `kafka-protocol` 0.18 (like Kafka 4.0, KIP-896) dropped them.
//!
//! They exist so that ApiVersions can advertise Produce from version 0, as Kafka 4.x still
//! does (KAFKA-18659): librdkafka before 2.11.1 turns compression off against a broker whose
//! Produce minimum is above 0. Clients that negotiate use v3+; a client that really sends v0-2
//! carries magic 0/1 message sets, which the broker answers with `UNSUPPORTED_FOR_MESSAGE_FORMAT`
//! ([`LegacyProduceResponse::error_for`]). (Kafka 4.x instead closes the connection on them.)
//!
//! Wire format (Kafka's `ProduceRequest.json` / `ProduceResponse.json`; v1 and v2 requests are
//! identical to v0, `transactional_id` only starts at v3):
//!
//! ```text
//! request v0-2:  acks: i16, timeout_ms: i32,
//!                topic_data: [name: string, partition_data: [index: i32, records: nullable bytes]]
//! response v0:   [name: string, [index: i32, error_code: i16, base_offset: i64]]
//! response v1:   v0, then throttle_time_ms: i32
//! response v2:   v1 with log_append_time_ms: i64 after base_offset in each partition
//! ```
//!
//! Arrays are i32-counted and non-nullable, strings i16-prefixed, `records` i32-prefixed with -1
//! for null. Decoding checks every length against the bytes left before allocating (an array
//! must fit its smallest possible elements) and keeps `records` as a slice of the frame.

use std::ops::RangeInclusive;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, WireError};

/// The Produce versions this module speaks.
pub const LEGACY_PRODUCE_VERSIONS: RangeInclusive<i16> = 0..=2;

/// A Produce v0-2 request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyProduceRequest {
    /// Acknowledgements required: 0, 1 or -1 (all in-sync replicas).
    pub acks: i16,
    /// How long to wait for the acknowledgements, in milliseconds.
    pub timeout_ms: i32,
    /// The data per topic.
    pub topics: Vec<LegacyTopicProduceData>,
}

/// One topic of a [`LegacyProduceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyTopicProduceData {
    /// The topic name.
    pub name: TopicName,
    /// The data per partition.
    pub partitions: Vec<LegacyPartitionProduceData>,
}

/// One partition of a [`LegacyTopicProduceData`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyPartitionProduceData {
    /// The partition index.
    pub index: i32,
    /// The message set (magic 0/1 from real v0-2 clients), a slice of the request frame.
    pub records: Option<Bytes>,
}

/// A Produce v0-2 response body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyProduceResponse {
    /// The result per topic.
    pub topics: Vec<LegacyTopicProduceResponse>,
    /// Quota throttle time in milliseconds (v1+).
    pub throttle_time_ms: i32,
}

/// One topic of a [`LegacyProduceResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyTopicProduceResponse {
    /// The topic name.
    pub name: TopicName,
    /// The result per partition.
    pub partitions: Vec<LegacyPartitionProduceResponse>,
}

/// One partition of a [`LegacyTopicProduceResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPartitionProduceResponse {
    /// The partition index.
    pub index: i32,
    /// Kafka error code, 0 for success.
    pub error_code: i16,
    /// Offset of the first appended message, -1 on error.
    pub base_offset: i64,
    /// LogAppendTime stamped by the broker, or -1 for CreateTime topics and errors (v2+).
    pub log_append_time_ms: i64,
}

impl Default for LegacyPartitionProduceResponse {
    fn default() -> Self {
        Self {
            index: 0,
            error_code: 0,
            base_offset: -1,
            log_append_time_ms: -1,
        }
    }
}

fn check_version(version: i16) -> Result<(), WireError> {
    if LEGACY_PRODUCE_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(WireError::BadVersion { version })
    }
}

/// A non-nullable i32 element count that must leave room for `count * min_element_bytes`.
fn read_count(
    r: &mut Reader<'_>,
    what: &'static str,
    min_element_bytes: u64,
) -> Result<usize, WireError> {
    let count = r.i32(what)?;
    match count {
        -1 => Err(WireError::UnexpectedNull { what }),
        n if n < -1 => Err(WireError::NegativeLength {
            what,
            len: i64::from(n),
        }),
        n => {
            let count = n as u64;
            let remaining = r.remaining();
            if count * min_element_bytes > remaining as u64 {
                return Err(WireError::ArrayTooLong {
                    what,
                    count,
                    min_element_bytes,
                    remaining,
                });
            }
            Ok(n as usize)
        }
    }
}

fn read_name(r: &mut Reader<'_>) -> Result<TopicName, WireError> {
    const WHAT: &str = "topic name";
    match r.i16(WHAT)? {
        -1 => Err(WireError::UnexpectedNull { what: WHAT }),
        n if n < -1 => Err(WireError::NegativeLength {
            what: WHAT,
            len: i64::from(n),
        }),
        n => {
            let raw = r.bytes(n as usize, WHAT)?;
            StrBytes::from_utf8(raw)
                .map(TopicName)
                .map_err(|_| WireError::InvalidUtf8 { what: WHAT })
        }
    }
}

fn read_records(r: &mut Reader<'_>) -> Result<Option<Bytes>, WireError> {
    const WHAT: &str = "records";
    match r.i32(WHAT)? {
        -1 => Ok(None),
        n if n < -1 => Err(WireError::NegativeLength {
            what: WHAT,
            len: i64::from(n),
        }),
        n => r.bytes(n as usize, WHAT).map(Some),
    }
}

/// Smallest topic entry: name length (2) + partition count (4).
const MIN_TOPIC_BYTES: u64 = 2 + 4;
/// Smallest request partition entry: index (4) + records length (4).
const MIN_REQUEST_PARTITION_BYTES: u64 = 4 + 4;

impl LegacyProduceRequest {
    /// Decodes a v0-2 body from the front of `body`, advancing it past what was read (bytes
    /// after the body are left in place, as Kafka ignores them). `records` are slices of
    /// `body`, not copies. Errors carry no correlation id; [`crate::decode_request`] adds it.
    pub fn decode(body: &mut Bytes, version: i16) -> Result<Self, DecodeError> {
        let (request, used) = Self::read(body, version)?;
        body.advance(used);
        Ok(request)
    }

    fn read(body: &Bytes, version: i16) -> Result<(Self, usize), WireError> {
        check_version(version)?;
        let mut r = Reader::new(body);
        let acks = r.i16("acks")?;
        let timeout_ms = r.i32("timeout_ms")?;
        let topic_count = read_count(&mut r, "topic_data", MIN_TOPIC_BYTES)?;
        let mut topics = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let name = read_name(&mut r)?;
            let partition_count =
                read_count(&mut r, "partition_data", MIN_REQUEST_PARTITION_BYTES)?;
            let mut partitions = Vec::with_capacity(partition_count);
            for _ in 0..partition_count {
                let index = r.i32("index")?;
                let records = read_records(&mut r)?;
                partitions.push(LegacyPartitionProduceData { index, records });
            }
            topics.push(LegacyTopicProduceData { name, partitions });
        }
        let request = Self {
            acks,
            timeout_ms,
            topics,
        };
        Ok((request, r.position()))
    }

    /// Appends the v0-2 body to `out` (for clients and tests; the broker only decodes these).
    /// On error `out` is unchanged.
    pub fn encode(&self, out: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
        encode_or_roll_back(out, version, |out| self.write(out, version))
    }

    fn write(&self, out: &mut BytesMut, version: i16) -> Result<(), WireError> {
        check_version(version)?;
        out.put_i16(self.acks);
        out.put_i32(self.timeout_ms);
        put_count(out, self.topics.len(), "topic_data")?;
        for topic in &self.topics {
            put_name(out, &topic.name)?;
            put_count(out, topic.partitions.len(), "partition_data")?;
            for p in &topic.partitions {
                out.put_i32(p.index);
                match &p.records {
                    None => out.put_i32(-1),
                    Some(records) => {
                        put_count(out, records.len(), "records")?;
                        out.put_slice(records);
                    }
                }
            }
        }
        Ok(())
    }
}

impl LegacyProduceResponse {
    /// The response Kafka gives when the whole request fails with `error`: every partition of
    /// `request`, in order, with `error`, base offset -1 and log append time -1.
    pub fn error_for(request: &LegacyProduceRequest, error: ResponseError) -> Self {
        let topics = request
            .topics
            .iter()
            .map(|t| LegacyTopicProduceResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| LegacyPartitionProduceResponse {
                        index: p.index,
                        error_code: error.code(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        Self {
            topics,
            throttle_time_ms: 0,
        }
    }

    /// Appends the v0-2 body to `out` (without the response header: see
    /// [`crate::encode_legacy_produce_response`] for a whole frame). On error `out` is
    /// unchanged.
    pub fn encode(&self, out: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
        encode_or_roll_back(out, version, |out| self.write(out, version))
    }

    fn write(&self, out: &mut BytesMut, version: i16) -> Result<(), WireError> {
        check_version(version)?;
        put_count(out, self.topics.len(), "responses")?;
        for topic in &self.topics {
            put_name(out, &topic.name)?;
            put_count(out, topic.partitions.len(), "partition_responses")?;
            for p in &topic.partitions {
                out.put_i32(p.index);
                out.put_i16(p.error_code);
                out.put_i64(p.base_offset);
                if version >= 2 {
                    out.put_i64(p.log_append_time_ms);
                }
            }
        }
        if version >= 1 {
            out.put_i32(self.throttle_time_ms);
        }
        Ok(())
    }

    /// Decodes a v0-2 response body from the front of `body`, advancing it (for clients and
    /// tests).
    pub fn decode(body: &mut Bytes, version: i16) -> Result<Self, DecodeError> {
        let (response, used) = Self::read(body, version)?;
        body.advance(used);
        Ok(response)
    }

    fn read(body: &Bytes, version: i16) -> Result<(Self, usize), WireError> {
        check_version(version)?;
        let mut r = Reader::new(body);
        let min_partition_bytes = if version >= 2 {
            4 + 2 + 8 + 8
        } else {
            4 + 2 + 8
        };
        let topic_count = read_count(&mut r, "responses", MIN_TOPIC_BYTES)?;
        let mut topics = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let name = read_name(&mut r)?;
            let partition_count = read_count(&mut r, "partition_responses", min_partition_bytes)?;
            let mut partitions = Vec::with_capacity(partition_count);
            for _ in 0..partition_count {
                let index = r.i32("index")?;
                let error_code = r.i16("error_code")?;
                let base_offset = r.i64("base_offset")?;
                let log_append_time_ms = if version >= 2 {
                    r.i64("log_append_time_ms")?
                } else {
                    -1
                };
                partitions.push(LegacyPartitionProduceResponse {
                    index,
                    error_code,
                    base_offset,
                    log_append_time_ms,
                });
            }
            topics.push(LegacyTopicProduceResponse { name, partitions });
        }
        let throttle_time_ms = if version >= 1 {
            r.i32("throttle_time_ms")?
        } else {
            0
        };
        let response = Self {
            topics,
            throttle_time_ms,
        };
        Ok((response, r.position()))
    }
}

fn body_error(version: i16, reason: WireError) -> EncodeError {
    EncodeError::Body {
        api_key: ApiKey::Produce,
        api_version: version,
        reason: reason.to_string(),
    }
}

fn put_count(out: &mut BytesMut, len: usize, what: &'static str) -> Result<(), WireError> {
    let len = i32::try_from(len).map_err(|_| WireError::ArrayTooLong {
        what,
        count: len as u64,
        min_element_bytes: 1,
        remaining: i32::MAX as usize,
    })?;
    out.put_i32(len);
    Ok(())
}

fn put_name(out: &mut BytesMut, name: &TopicName) -> Result<(), WireError> {
    let bytes = name.0.as_str().as_bytes();
    let len = i16::try_from(bytes.len()).map_err(|_| WireError::ArrayTooLong {
        what: "topic name",
        count: bytes.len() as u64,
        min_element_bytes: 1,
        remaining: i16::MAX as usize,
    })?;
    out.put_i16(len);
    out.put_slice(bytes);
    Ok(())
}

/// Runs `write` on `out`; on error, puts `out` back as it was and names the version.
fn encode_or_roll_back(
    out: &mut BytesMut,
    version: i16,
    write: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result.map_err(|reason| body_error(version, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    /// acks=1, timeout=1000, topic "ab": partition 0 with records [1,2,3], partition 7 null.
    const REQUEST: &[u8] = &[
        0, 1, // acks
        0, 0, 0x03, 0xe8, // timeout_ms
        0, 0, 0, 1, // 1 topic
        0, 2, b'a', b'b', // name
        0, 0, 0, 2, // 2 partitions
        0, 0, 0, 0, // index 0
        0, 0, 0, 3, 1, 2, 3, // records
        0, 0, 0, 7, // index 7
        0xff, 0xff, 0xff, 0xff, // null records
    ];

    fn request() -> LegacyProduceRequest {
        LegacyProduceRequest {
            acks: 1,
            timeout_ms: 1000,
            topics: vec![LegacyTopicProduceData {
                name: name("ab"),
                partitions: vec![
                    LegacyPartitionProduceData {
                        index: 0,
                        records: Some(Bytes::from_static(&[1, 2, 3])),
                    },
                    LegacyPartitionProduceData {
                        index: 7,
                        records: None,
                    },
                ],
            }],
        }
    }

    #[test]
    fn decodes_hand_built_request_of_every_version() {
        for version in LEGACY_PRODUCE_VERSIONS {
            let frame = Bytes::from_static(REQUEST);
            let mut body = frame.clone();
            let decoded = LegacyProduceRequest::decode(&mut body, version).unwrap();
            assert_eq!(decoded, request());
            assert!(body.is_empty());
            // Zero copy: the records point into the frame.
            let records = decoded.topics[0].partitions[0].records.as_ref().unwrap();
            assert_eq!(records.as_ptr(), frame[26..].as_ptr());
        }
    }

    #[test]
    fn encodes_request_to_the_same_bytes() {
        let mut out = BytesMut::new();
        request().encode(&mut out, 2).unwrap();
        assert_eq!(&out[..], REQUEST);
    }

    #[test]
    fn leaves_trailing_bytes() {
        let mut with_tail = REQUEST.to_vec();
        with_tail.extend_from_slice(&[9, 9]);
        let mut body = Bytes::from(with_tail);
        LegacyProduceRequest::decode(&mut body, 0).unwrap();
        assert_eq!(&body[..], &[9, 9]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for cut in 0..REQUEST.len() {
            let mut body = Bytes::copy_from_slice(&REQUEST[..cut]);
            let err = LegacyProduceRequest::decode(&mut body, 1).unwrap_err();
            assert!(
                matches!(err, DecodeError::Malformed { .. }),
                "cut {cut}: {err}"
            );
            assert_eq!(body.len(), cut, "a failed decode must not consume");
        }
    }

    #[test]
    fn rejects_bad_lengths_and_versions() {
        let patch = |at: usize, bytes: &[u8]| {
            let mut v = REQUEST.to_vec();
            v[at..at + bytes.len()].copy_from_slice(bytes);
            Bytes::from(v)
        };
        let cases = [
            ("null topics", patch(6, &[0xff, 0xff, 0xff, 0xff])),
            ("huge topic count", patch(6, &[0x7f, 0xff, 0xff, 0xff])),
            ("null name", patch(10, &[0xff, 0xff])),
            ("negative name", patch(10, &[0xff, 0xfe])),
            ("bad utf-8", patch(12, &[0xff])),
            ("huge partition count", patch(14, &[0x10, 0, 0, 0])),
            ("negative records", patch(22, &[0xff, 0xff, 0xff, 0xfe])),
            ("records past the end", patch(22, &[0, 0, 0, 0x40])),
        ];
        for (what, bytes) in cases {
            let mut body = bytes;
            assert!(
                LegacyProduceRequest::decode(&mut body, 0).is_err(),
                "{what} accepted"
            );
        }
        let mut body = Bytes::from_static(REQUEST);
        assert!(LegacyProduceRequest::decode(&mut body, 3).is_err());
        assert!(LegacyProduceRequest::decode(&mut body, -1).is_err());
    }

    fn response() -> LegacyProduceResponse {
        LegacyProduceResponse {
            topics: vec![LegacyTopicProduceResponse {
                name: name("ab"),
                partitions: vec![LegacyPartitionProduceResponse {
                    index: 7,
                    error_code: 43,
                    base_offset: -1,
                    log_append_time_ms: -1,
                }],
            }],
            throttle_time_ms: 5,
        }
    }

    #[test]
    fn encodes_response_v0_v1_v2() {
        let v0: &[u8] = &[
            0, 0, 0, 1, // 1 topic
            0, 2, b'a', b'b', // name
            0, 0, 0, 1, // 1 partition
            0, 0, 0, 7, // index
            0, 43, // UNSUPPORTED_FOR_MESSAGE_FORMAT
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // base_offset -1
        ];
        let mut v1 = v0.to_vec();
        v1.extend_from_slice(&[0, 0, 0, 5]); // throttle_time_ms
        let mut v2 = v0.to_vec();
        v2.extend_from_slice(&[0xff; 8]); // log_append_time_ms -1
        v2.extend_from_slice(&[0, 0, 0, 5]);

        for (version, expected) in [(0, v0.to_vec()), (1, v1), (2, v2)] {
            let mut out = BytesMut::new();
            response().encode(&mut out, version).unwrap();
            assert_eq!(&out[..], &expected[..], "v{version}");
            let mut back = out.freeze();
            let decoded = LegacyProduceResponse::decode(&mut back, version).unwrap();
            let mut want = response();
            if version == 0 {
                want.throttle_time_ms = 0;
            }
            assert_eq!(decoded, want, "v{version}");
            assert!(back.is_empty());
        }
    }

    #[test]
    fn error_response_covers_every_partition() {
        let r = LegacyProduceResponse::error_for(
            &request(),
            ResponseError::UnsupportedForMessageFormat,
        );
        assert_eq!(r.topics.len(), 1);
        let parts = &r.topics[0].partitions;
        assert_eq!(parts.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 7]);
        assert!(parts
            .iter()
            .all(|p| p.error_code == 43 && p.base_offset == -1 && p.log_append_time_ms == -1));
    }

    #[test]
    fn encode_errors_leave_out_unchanged() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let long = LegacyProduceResponse {
            topics: vec![LegacyTopicProduceResponse {
                name: TopicName(StrBytes::from_string("x".repeat(40_000))),
                partitions: vec![],
            }],
            throttle_time_ms: 0,
        };
        assert!(long.encode(&mut out, 1).is_err());
        assert!(response().encode(&mut out, 3).is_err());
        assert_eq!(&out[..], b"keep");
    }
}
