//! Writing a response as one whole Kafka frame: length prefix, response header, body.
//!
//! ```text
//! size: i32 | correlation_id: i32 | [tagged fields: header v1 only] | body
//! ```
//!
//! The header version follows the API and version (`ApiKey::response_header_version`): v1,
//! with an (empty) tagged-field section, for flexible versions, v0 otherwise; ApiVersions
//! responses always use v0, even for flexible versions, so a client that sent a version the
//! broker does not know can still read the correlation id and error.
//!
//! The frame is written straight into the caller's buffer: a placeholder length, the header,
//! the body, then the length is patched in place, so the body is encoded exactly once and
//! never copied. On error the buffer is truncated back to where it was.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::error::EncodeError;
use crate::legacy_produce::LegacyProduceResponse;

/// Appends the frame of a `api_key` v`api_version` response to `out`.
///
/// `body` must be the response type of `api_key`; `kafka-protocol` refuses versions its
/// message does not define ([`EncodeError::Body`]). Produce v0-2 responses go through
/// [`encode_legacy_produce_response`].
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_with(correlation_id, api_key, api_version, out, |out| {
        body.encode(out, api_version)
    })
}

/// [`encode_response`] for a body known by its type (no [`ResponseKind`] to build around it).
pub(crate) fn encode_response_body<T: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &T,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_with(correlation_id, api_key, api_version, out, |out| {
        body.encode(out, api_version)
    })
}

fn encode_with<E: std::fmt::Display>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    out: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), EncodeError> {
    let header_version = api_key.response_header_version(api_version);
    write_frame(out, correlation_id, header_version, |out| {
        encode(out).map_err(|e| EncodeError::Body {
            api_key,
            api_version,
            reason: format!("{e:#}"),
        })
    })
}

/// Appends the frame of a Produce v0-2 response to `out` (header v0: these versions predate
/// flexible headers).
pub fn encode_legacy_produce_response(
    correlation_id: i32,
    api_version: i16,
    body: &LegacyProduceResponse,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_frame(out, correlation_id, 0, |out| body.encode(out, api_version))
}

/// Size of the placeholder length plus the largest response header.
const PREFIX_AND_HEADER_BYTES: usize = 4 + 4 + 1;

fn write_frame(
    out: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.reserve(PREFIX_AND_HEADER_BYTES);
    out.put_i32(0); // patched below
    out.put_i32(correlation_id);
    if header_version >= 1 {
        out.put_u8(0); // no tagged fields
    }
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 4;
    let Ok(len32) = i32::try_from(len) else {
        out.truncate(start);
        return Err(EncodeError::FrameTooLarge { len });
    };
    out[start..start + 4].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_versions::SUPPORTED_APIS;
    use crate::legacy_produce::LEGACY_PRODUCE_VERSIONS;
    use bytes::Buf;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;

    /// A default response body of each API in the table.
    fn default_response(key: ApiKey) -> ResponseKind {
        match key {
            ApiKey::Produce => ResponseKind::Produce(Default::default()),
            ApiKey::Fetch => ResponseKind::Fetch(Default::default()),
            ApiKey::ListOffsets => ResponseKind::ListOffsets(Default::default()),
            ApiKey::Metadata => ResponseKind::Metadata(Default::default()),
            ApiKey::ApiVersions => ResponseKind::ApiVersions(Default::default()),
            ApiKey::CreateTopics => ResponseKind::CreateTopics(Default::default()),
            ApiKey::DeleteTopics => ResponseKind::DeleteTopics(Default::default()),
            ApiKey::InitProducerId => ResponseKind::InitProducerId(Default::default()),
            ApiKey::DescribeConfigs => ResponseKind::DescribeConfigs(Default::default()),
            ApiKey::AlterConfigs => ResponseKind::AlterConfigs(Default::default()),
            ApiKey::CreatePartitions => ResponseKind::CreatePartitions(Default::default()),
            ApiKey::IncrementalAlterConfigs => {
                ResponseKind::IncrementalAlterConfigs(Default::default())
            }
            ApiKey::DescribeCluster => ResponseKind::DescribeCluster(Default::default()),
            ApiKey::DescribeQuorum => ResponseKind::DescribeQuorum(Default::default()),
            ApiKey::OffsetForLeaderEpoch => ResponseKind::OffsetForLeaderEpoch(Default::default()),
            ApiKey::ElectLeaders => ResponseKind::ElectLeaders(Default::default()),
            ApiKey::AlterPartitionReassignments => {
                ResponseKind::AlterPartitionReassignments(Default::default())
            }
            ApiKey::ListPartitionReassignments => {
                ResponseKind::ListPartitionReassignments(Default::default())
            }
            ApiKey::OffsetCommit => ResponseKind::OffsetCommit(Default::default()),
            ApiKey::OffsetFetch => ResponseKind::OffsetFetch(Default::default()),
            ApiKey::FindCoordinator => ResponseKind::FindCoordinator(Default::default()),
            ApiKey::JoinGroup => ResponseKind::JoinGroup(Default::default()),
            ApiKey::Heartbeat => ResponseKind::Heartbeat(Default::default()),
            ApiKey::LeaveGroup => ResponseKind::LeaveGroup(Default::default()),
            ApiKey::SyncGroup => ResponseKind::SyncGroup(Default::default()),
            ApiKey::DescribeGroups => ResponseKind::DescribeGroups(Default::default()),
            ApiKey::ListGroups => ResponseKind::ListGroups(Default::default()),
            ApiKey::DeleteGroups => ResponseKind::DeleteGroups(Default::default()),
            ApiKey::OffsetDelete => ResponseKind::OffsetDelete(Default::default()),
            other => panic!("{other:?} is not in the table"),
        }
    }

    #[test]
    fn every_supported_version_encodes_with_the_right_header() {
        for r in SUPPORTED_APIS {
            for version in r.min..=r.max {
                if r.key == ApiKey::Produce && LEGACY_PRODUCE_VERSIONS.contains(&version) {
                    continue;
                }
                let body = default_response(r.key);
                let mut out = BytesMut::from(&b"xy"[..]);
                encode_response(7, r.key, version, &body, &mut out)
                    .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", r.key));
                assert_eq!(&out[..2], b"xy", "appends, keeps what was there");
                let mut frame = out.split_off(2).freeze();
                assert_eq!(frame.get_i32() as usize, frame.len());
                let header_version = r.key.response_header_version(version);
                let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
                assert_eq!(header.correlation_id, 7);
                let back = ResponseKind::decode(r.key, &mut frame, version).unwrap();
                assert_eq!(back, body, "{:?} v{version}", r.key);
                assert!(frame.is_empty(), "{:?} v{version}", r.key);
            }
        }
    }

    #[test]
    fn flexible_versions_get_header_v1_except_api_versions() {
        let mut out = BytesMut::new();
        let metadata = ResponseKind::Metadata(Default::default());
        encode_response(1, ApiKey::Metadata, 12, &metadata, &mut out).unwrap();
        assert_eq!(
            &out[4..9],
            &[0, 0, 0, 1, 0],
            "correlation id, empty tag section"
        );

        let mut out = BytesMut::new();
        let body = ResponseKind::ApiVersions(crate::api_versions_response(None));
        encode_response(1, ApiKey::ApiVersions, 3, &body, &mut out).unwrap();
        assert_eq!(
            &out[4..10],
            &[0, 0, 0, 1, 0, 0],
            "correlation id, then error_code 0"
        );
        let mut frame = out.freeze();
        frame.advance(8);
        assert!(ApiVersionsResponse::decode(&mut frame, 3).is_ok());
    }

    #[test]
    fn encode_error_leaves_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"previous frame"[..]);
        let body = ResponseKind::Produce(Default::default());
        let err = encode_response(1, ApiKey::Produce, 2, &body, &mut out).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::Body {
                api_key: ApiKey::Produce,
                api_version: 2,
                ..
            }
        ));
        assert_eq!(&out[..], b"previous frame");
    }

    #[test]
    fn legacy_produce_frame() {
        let body = LegacyProduceResponse {
            topics: vec![],
            throttle_time_ms: 9,
        };
        let mut out = BytesMut::new();
        encode_legacy_produce_response(5, 1, &body, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 12, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9]);
        let mut out = BytesMut::new();
        assert!(encode_legacy_produce_response(5, 3, &body, &mut out).is_err());
        assert!(out.is_empty());
    }
}
