//! The client side of the wire, for Rivulet's own tools (`rivulet cluster`): a request as one
//! frame payload, and a response frame payload back into its typed body.
//!
//! ```text
//! request:  request_api_key | request_api_version | correlation_id | client_id
//!           | [tagged fields: header v2] | body
//! response: correlation_id | [tagged fields: header v1] | body
//! ```
//!
//! Both work on payloads without the 4-byte size prefix: [`crate::frame_codec`] adds it when
//! sending and strips it when receiving. Header versions follow the API and version, as on the
//! broker side. Pure: no I/O.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::EncodeError;

/// Why a response frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseDecodeError {
    /// The response answers another request.
    #[error("response to correlation id {got}, expected {expected}")]
    CorrelationMismatch {
        /// The request's correlation id.
        expected: i32,
        /// The response's.
        got: i32,
    },
    /// The bytes are not a response of that API and version.
    #[error("malformed {api_key:?} v{api_version} response: {reason}")]
    Malformed {
        /// The API.
        api_key: ApiKey,
        /// Its version.
        api_version: i16,
        /// What did not parse.
        reason: String,
    },
}

/// Appends the payload of a request frame (header, then `body` at `version`) to `out`.
pub fn encode_request<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &R,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let start = out.len();
    let result = header
        .encode(out, api_key.request_header_version(version))
        .and_then(|()| body.encode(out, version));
    result.map_err(|e| {
        out.truncate(start);
        EncodeError::Request {
            api_key,
            api_version: version,
            reason: format!("{e:#}"),
        }
    })
}

/// Decodes the payload of a response frame to the request `correlation_id` of `api_key` at
/// `version`. Bytes after the body are ignored, as Kafka's clients ignore them.
pub fn decode_response<R: Decodable>(
    mut frame: Bytes,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<R, ResponseDecodeError> {
    let malformed = |reason: String| ResponseDecodeError::Malformed {
        api_key,
        api_version: version,
        reason,
    };
    if frame.remaining() < 4 {
        return Err(malformed(format!("{} bytes", frame.remaining())));
    }
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
        .map_err(|e| malformed(format!("header: {e:#}")))?;
    if header.correlation_id != correlation_id {
        return Err(ResponseDecodeError::CorrelationMismatch {
            expected: correlation_id,
            got: header.correlation_id,
        });
    }
    R::decode(&mut frame, version).map_err(|e| malformed(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{decode_request, RequestBody};
    use crate::response::encode_response;
    use kafka_protocol::messages::{
        BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, MetadataRequest, MetadataResponse,
        RequestKind, ResponseKind,
    };

    #[test]
    fn a_request_decodes_on_the_broker_side() {
        let mut out = BytesMut::new();
        let body = MetadataRequest::default().with_topics(None);
        encode_request(ApiKey::Metadata, 12, 7, "rivulet-cli", &body, &mut out).unwrap();
        let request = decode_request(out.freeze()).unwrap();
        assert_eq!(request.correlation_id(), 7);
        assert_eq!(request.header.client_id.as_deref(), Some("rivulet-cli"));
        assert_eq!(
            request.body,
            RequestBody::Kafka(RequestKind::Metadata(body))
        );
    }

    #[test]
    fn a_response_encoded_by_the_broker_decodes() {
        for version in [0, 1, 2] {
            let body = DescribeQuorumResponse::default().with_error_code(0);
            let mut out = BytesMut::new();
            let kind = ResponseKind::DescribeQuorum(body.clone());
            encode_response(9, ApiKey::DescribeQuorum, version, &kind, &mut out).unwrap();
            let frame = out.freeze().slice(4..);
            let back: DescribeQuorumResponse =
                decode_response(frame.clone(), ApiKey::DescribeQuorum, version, 9).unwrap();
            assert_eq!(back.error_code, body.error_code);
            assert_eq!(
                decode_response::<DescribeQuorumResponse>(
                    frame,
                    ApiKey::DescribeQuorum,
                    version,
                    10
                ),
                Err(ResponseDecodeError::CorrelationMismatch {
                    expected: 10,
                    got: 9
                })
            );
        }
    }

    #[test]
    fn truncated_responses_are_malformed_not_panics() {
        let body = MetadataResponse::default().with_controller_id(BrokerId(3));
        let mut out = BytesMut::new();
        encode_response(
            1,
            ApiKey::Metadata,
            12,
            &ResponseKind::Metadata(body),
            &mut out,
        )
        .unwrap();
        let frame = out.freeze().slice(4..);
        for cut in 0..frame.len() {
            let r =
                decode_response::<MetadataResponse>(frame.slice(..cut), ApiKey::Metadata, 12, 1);
            assert!(
                matches!(r, Err(ResponseDecodeError::Malformed { .. })),
                "cut at {cut}: {r:?}"
            );
        }
        let whole: MetadataResponse = decode_response(frame, ApiKey::Metadata, 12, 1).unwrap();
        assert_eq!(whole.controller_id, BrokerId(3));
    }

    #[test]
    fn requests_of_a_version_the_message_lacks_are_refused() {
        let mut out = BytesMut::from(&b"kept"[..]);
        let err = encode_request(
            ApiKey::DescribeQuorum,
            9,
            1,
            "x",
            &DescribeQuorumRequest::default(),
            &mut out,
        )
        .unwrap_err();
        assert!(matches!(err, EncodeError::Request { .. }), "{err}");
        assert_eq!(&out[..], b"kept");
    }
}
