//! What decoding a request or encoding a response can fail with.
//!
//! [`DecodeError`] is split by what the broker has to do, following Kafka's `SocketServer`
//! (`Processor.parseRequestHeader`, `RequestContext.parseRequest`):
//!
//! | variant | Kafka's answer |
//! |---|---|
//! | [`DecodeError::UnsupportedVersion`] of ApiVersions | a v0 ApiVersions response with `UNSUPPORTED_VERSION` ([`crate::encode_api_versions_fallback`]), connection kept |
//! | [`DecodeError::UnsupportedVersion`] of any other API | connection closed, no response |
//! | [`DecodeError::UnknownApiKey`] | connection closed, no response |
//! | [`DecodeError::Malformed`] | connection closed, no response |
//!
//! [`EncodeError`] is a bug in the caller (a field the chosen version cannot carry, a body of
//! the wrong version) or a response too large for the 4-byte length prefix.

use kafka_protocol::messages::ApiKey;

use crate::wire::WireError;

/// Why a request frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The api key is not one Kafka defines (as far as `kafka-protocol` 0.18 knows).
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key as sent.
        api_key: i16,
        /// The version as sent.
        api_version: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// A known API at a version outside [`crate::SUPPORTED_APIS`] (or an API absent from it).
    /// For [`ApiKey::ApiVersions`] the broker answers with
    /// [`crate::encode_api_versions_fallback`]; see [`DecodeError::api_versions_fallback`].
    #[error("unsupported version {api_version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The frame is not a valid request: too short, a truncated or negative length, an array
    /// longer than the bytes left, invalid UTF-8, a tagged field not valid in this version.
    #[error("malformed request (correlation id {correlation_id:?}): {reason}")]
    Malformed {
        /// The correlation id, when the frame was long enough to carry one.
        correlation_id: Option<i32>,
        /// What was wrong, for logs.
        reason: String,
    },
}

impl DecodeError {
    /// The request's correlation id, when the frame had one.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            Self::UnknownApiKey { correlation_id, .. }
            | Self::UnsupportedVersion { correlation_id, .. } => Some(*correlation_id),
            Self::Malformed { correlation_id, .. } => *correlation_id,
        }
    }

    /// `Some(correlation_id)` when this is an ApiVersions request of a version this crate does
    /// not know: Kafka answers it with a v0 response carrying `UNSUPPORTED_VERSION` and the
    /// version table so the client can retry lower ([`crate::encode_api_versions_fallback`]).
    pub fn api_versions_fallback(&self) -> Option<i32> {
        match self {
            Self::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            } => Some(*correlation_id),
            _ => None,
        }
    }

    pub(crate) fn malformed(correlation_id: Option<i32>, reason: impl ToString) -> Self {
        Self::Malformed {
            correlation_id,
            reason: reason.to_string(),
        }
    }
}

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> Self {
        Self::malformed(None, e)
    }
}

/// Why a response could not be encoded. `out` is left as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A request could not be encoded at this version (a client of [`crate::client`]).
    #[error("cannot encode {api_key:?} v{api_version} request: {reason}")]
    Request {
        /// The API.
        api_key: ApiKey,
        /// The version asked for.
        api_version: i16,
        /// What went wrong.
        reason: String,
    },
    /// The body could not be encoded at this version (`kafka-protocol`'s message, or a field
    /// of a legacy Produce response too long for its length prefix).
    #[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
    Body {
        /// The API.
        api_key: ApiKey,
        /// The version asked for.
        api_version: i16,
        /// What went wrong.
        reason: String,
    },
    /// The response would not fit the 4-byte signed length prefix.
    #[error(
        "response of {len} bytes exceeds the frame limit of {} bytes",
        i32::MAX
    )]
    FrameTooLarge {
        /// Size of header and body.
        len: usize,
    },
}
