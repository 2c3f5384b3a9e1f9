//! The table of APIs and versions the broker implements, and the ApiVersions responses built
//! from it.
//!
//! [`SUPPORTED_APIS`] is the single source of truth: [`crate::decode_request`] decodes exactly
//! these (anything else is [`crate::DecodeError::UnsupportedVersion`]) and ApiVersions
//! advertises exactly these. Every range lies within what `kafka-protocol` 0.18 decodes, except
//! Produce v0-2 which [`crate::legacy_produce`] handles (a test checks both).
//!
//! An ApiVersions request of a version above ours is still answered, as Kafka does
//! (`RequestContext.isUnsupportedApiVersionsRequest`): with a v0 response (which every client
//! can parse), error `UNSUPPORTED_VERSION` and the table, so the client retries with the
//! highest ApiVersions version listed ([`encode_api_versions_fallback`]). Kafka lists only the
//! ApiVersions entry in that case; listing the whole table is equally valid for clients (Java,
//! librdkafka and franz-go look up the ApiVersions entry) and is what this module does.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::ResponseError;

/// An API and the versions of it the broker implements, `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API.
    pub key: ApiKey,
    /// Lowest version implemented.
    pub min: i16,
    /// Highest version implemented.
    pub max: i16,
}

const fn range(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max }
}

/// What the broker implements, by api key. Produce starts at 0 although only v3+ carries the
/// record batches the broker stores (KAFKA-18659, see [`crate::legacy_produce`]).
pub const SUPPORTED_APIS: &[ApiRange] = &[
    range(ApiKey::Produce, 0, 11),
    range(ApiKey::Fetch, 4, 16),
    range(ApiKey::ListOffsets, 1, 8),
    range(ApiKey::Metadata, 0, 12),
    // The classic consumer-group APIs (8-16, 42, 47) with Kafka 4.x's ranges: OffsetCommit
    // starts at 2 and OffsetFetch at 1, as in its schemas (KIP-896).
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 6),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::InitProducerId, 0, 5),
    // 2-4 as Kafka 4.x (KIP-896 removed v0-1); clients use v2+ for KIP-320.
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::ElectLeaders, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::AlterPartitionReassignments, 0, 0),
    range(ApiKey::ListPartitionReassignments, 0, 0),
    range(ApiKey::OffsetDelete, 0, 0),
    // Answered by any node from what it knows of the quorum (KIP-595, KIP-853 for v2).
    range(ApiKey::DescribeQuorum, 0, 2),
    // v2: KIP-1073's include_fenced_brokers / is_fenced.
    range(ApiKey::DescribeCluster, 0, 2),
];

/// The versions of `key` the broker implements, if any.
pub fn supported_range(key: ApiKey) -> Option<ApiRange> {
    SUPPORTED_APIS.iter().copied().find(|r| r.key == key)
}

/// Whether the broker implements `version` of `key`.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported_range(key).is_some_and(|r| (r.min..=r.max).contains(&version))
}

/// An ApiVersions response listing [`SUPPORTED_APIS`], with `error` (or none). Throttle time,
/// features and the other tagged fields stay at their defaults, which the encoder omits: a v3+
/// response ends with an empty tagged-field section (old librdkafka, e.g. Debian's 2.0.2 behind
/// kcat 1.7.1, mis-skips tagged fields sent at default values).
pub fn api_versions_response(error: Option<ResponseError>) -> ApiVersionsResponse {
    api_versions_listing(SUPPORTED_APIS.iter().copied())
        .with_error_code(error.map_or(0, |e| e.code()))
}

/// An ApiVersions response listing `ranges` and nothing else (no error): for a server that
/// implements a subset of [`SUPPORTED_APIS`], such as `rivulet perf sink`.
pub fn api_versions_listing(ranges: impl IntoIterator<Item = ApiRange>) -> ApiVersionsResponse {
    let api_keys = ranges
        .into_iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// A whole ApiVersions v0 response frame (length prefix, header v0, body) with error
/// `UNSUPPORTED_VERSION` and [`SUPPORTED_APIS`], for an ApiVersions request whose version this
/// crate does not know ([`crate::DecodeError::api_versions_fallback`]).
///
/// ```text
/// size: i32 | correlation_id: i32 | error_code: i16 | [api_key: i16, min: i16, max: i16]
/// ```
pub fn encode_api_versions_fallback(correlation_id: i32) -> BytesMut {
    const ENTRY_BYTES: usize = 6;
    let body_len = 4 + 2 + 4 + ENTRY_BYTES * SUPPORTED_APIS.len();
    let mut out = BytesMut::with_capacity(4 + body_len);
    // Both lengths are small constants: the table has a few dozen entries at most.
    out.put_i32(body_len as i32);
    out.put_i32(correlation_id);
    out.put_i16(ResponseError::UnsupportedVersion.code());
    out.put_i32(SUPPORTED_APIS.len() as i32);
    for r in SUPPORTED_APIS {
        out.put_i16(r.key as i16);
        out.put_i16(r.min);
        out.put_i16(r.max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy_produce::LEGACY_PRODUCE_VERSIONS;
    use crate::schema;
    use bytes::Buf;
    use kafka_protocol::messages::ResponseKind;
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn table_is_sorted_unique_and_non_empty() {
        for pair in SUPPORTED_APIS.windows(2) {
            assert!((pair[0].key as i16) < (pair[1].key as i16), "{pair:?}");
        }
        for r in SUPPORTED_APIS {
            assert!(0 <= r.min && r.min <= r.max, "{r:?}");
        }
    }

    /// Every version in the table is decodable: by kafka-protocol (its own range check, and
    /// a length shape in `schema`) or, for Produce v0-2, by `legacy_produce`. Round-trips of
    /// real requests of every version are in `request.rs`.
    #[test]
    fn every_range_is_within_what_this_crate_decodes() {
        for r in SUPPORTED_APIS {
            let kp = r.key.valid_versions();
            assert!(schema::has_shape(r.key), "{:?} has no length shape", r.key);
            for v in r.min..=r.max {
                let legacy = r.key == ApiKey::Produce && LEGACY_PRODUCE_VERSIONS.contains(&v);
                assert!(
                    legacy || (kp.min..=kp.max).contains(&v),
                    "{:?} v{v} is outside kafka-protocol's {}..={}",
                    r.key,
                    kp.min,
                    kp.max
                );
            }
        }
    }

    #[test]
    fn is_supported_follows_the_table() {
        assert!(is_supported(ApiKey::Produce, 0));
        assert!(is_supported(ApiKey::Produce, 11));
        assert!(!is_supported(ApiKey::Produce, 12));
        assert!(!is_supported(ApiKey::Fetch, 3));
        assert!(is_supported(ApiKey::DescribeCluster, 1));
        assert!(is_supported(ApiKey::DescribeCluster, 2));
        assert!(!is_supported(ApiKey::DescribeCluster, 3));
        assert!(is_supported(ApiKey::DescribeQuorum, 0));
        assert!(is_supported(ApiKey::DescribeQuorum, 2));
        assert!(!is_supported(ApiKey::DescribeQuorum, 3));
        assert!(is_supported(ApiKey::AlterConfigs, 0));
        assert!(is_supported(ApiKey::CreatePartitions, 3));
        assert!(!is_supported(ApiKey::CreatePartitions, 4));
        assert!(is_supported(ApiKey::IncrementalAlterConfigs, 1));
        assert!(!is_supported(ApiKey::IncrementalAlterConfigs, 2));
        assert!(is_supported(ApiKey::ElectLeaders, 0));
        assert!(is_supported(ApiKey::ElectLeaders, 2));
        assert!(is_supported(ApiKey::AlterPartitionReassignments, 0));
        assert!(!is_supported(ApiKey::AlterPartitionReassignments, 1));
        assert!(is_supported(ApiKey::ListPartitionReassignments, 0));
        assert!(!is_supported(ApiKey::ApiVersions, 5));
        assert!(!is_supported(ApiKey::ApiVersions, -1));
        assert!(!is_supported(ApiKey::OffsetCommit, 1));
        assert!(is_supported(ApiKey::OffsetCommit, 2));
        assert!(is_supported(ApiKey::OffsetCommit, 9));
        assert!(!is_supported(ApiKey::OffsetCommit, 10));
        assert!(!is_supported(ApiKey::OffsetFetch, 0));
        assert!(is_supported(ApiKey::OffsetFetch, 9));
        assert!(!is_supported(ApiKey::OffsetFetch, 10));
        assert!(is_supported(ApiKey::FindCoordinator, 6));
        assert!(is_supported(ApiKey::JoinGroup, 0));
        assert!(is_supported(ApiKey::JoinGroup, 9));
        assert!(is_supported(ApiKey::Heartbeat, 4));
        assert!(is_supported(ApiKey::LeaveGroup, 5));
        assert!(is_supported(ApiKey::SyncGroup, 5));
        assert!(is_supported(ApiKey::DescribeGroups, 5));
        assert!(!is_supported(ApiKey::DescribeGroups, 6));
        assert!(is_supported(ApiKey::ListGroups, 5));
        assert!(is_supported(ApiKey::DeleteGroups, 2));
        assert!(is_supported(ApiKey::OffsetDelete, 0));
        assert!(!is_supported(ApiKey::OffsetDelete, 1));
        assert!(!is_supported(ApiKey::DescribeAcls, 0));
    }

    #[test]
    fn response_lists_the_table_at_every_version() {
        let response = api_versions_response(None);
        for version in 0..=4 {
            let mut buf = BytesMut::new();
            response.encode(&mut buf, version).unwrap();
            let back = ApiVersionsResponse::decode(&mut buf.freeze(), version).unwrap();
            assert_eq!(back.error_code, 0);
            let listed: Vec<_> = back
                .api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version))
                .collect();
            let table: Vec<_> = SUPPORTED_APIS
                .iter()
                .map(|r| (r.key as i16, r.min, r.max))
                .collect();
            assert_eq!(listed, table, "v{version}");
        }
    }

    #[test]
    fn v3_response_has_no_tagged_fields_at_defaults() {
        let mut buf = BytesMut::new();
        api_versions_response(None).encode(&mut buf, 3).unwrap();
        // error_code, compact array (len + 1), entries of 3 x i16 + an empty tag section each,
        // throttle_time_ms, then the top-level tag section: a single 0.
        let n = SUPPORTED_APIS.len();
        assert_eq!(buf.len(), 2 + 1 + n * 7 + 4 + 1);
        assert_eq!(
            buf[buf.len() - 1],
            0,
            "top-level tagged fields must be empty"
        );
        let mut entries = &buf[3..3 + n * 7];
        while entries.has_remaining() {
            entries.advance(6);
            assert_eq!(entries.get_u8(), 0, "per-entry tagged fields must be empty");
        }
    }

    #[test]
    fn error_is_carried() {
        let r = api_versions_response(Some(ResponseError::UnsupportedVersion));
        assert_eq!(r.error_code, 35);
        assert_eq!(r.api_keys.len(), SUPPORTED_APIS.len());
    }

    #[test]
    fn fallback_is_a_v0_frame_kafka_protocol_reads_back() {
        let frame = encode_api_versions_fallback(0x0102_0304);
        let mut expected = BytesMut::new();
        crate::encode_response(
            0x0102_0304,
            ApiKey::ApiVersions,
            0,
            &ResponseKind::ApiVersions(api_versions_response(Some(
                ResponseError::UnsupportedVersion,
            ))),
            &mut expected,
        )
        .unwrap();
        assert_eq!(frame, expected);

        let mut bytes = frame.freeze();
        assert_eq!(bytes.get_i32() as usize, bytes.len());
        assert_eq!(
            bytes.get_i32(),
            0x0102_0304,
            "header v0: correlation id only"
        );
        let body = ApiVersionsResponse::decode(&mut bytes, 0).unwrap();
        assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
        assert!(body
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 4));
        assert!(bytes.is_empty());
    }
}
