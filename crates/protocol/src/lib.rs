//! Kafka wire protocol for Rivulet: framing, request decoding, response encoding and the
//! ApiVersions table, built on the `kafka-protocol` crate (re-exported as [`kafka_protocol`] so
//! the broker uses exactly this version of its message types).
//!
//! This crate does no I/O and knows nothing of storage: it turns bytes into typed requests and
//! typed responses into bytes. The broker owns the sockets and the decisions.
//!
//! # The wire, end to end
//!
//! ```text
//! socket bytes --frame_codec--> frame (payload of one size-prefixed message)
//!              --decode_request--> Request { header, api_key, api_version, body }
//! broker handler --> ResponseKind --encode_response--> size | header | body  --> socket
//! ```
//!
//! - [`frame`]: 4-byte big-endian length prefix, capped at `socket.request.max.bytes`;
//!   oversize and negative lengths fail before any allocation, partial frames are "not yet".
//! - [`request`]: check-then-parse of one frame: api key, version and correlation id first,
//!   then the header at the right version, then the body (zero-copy: `records` stay slices of
//!   the frame). Every length in the body is checked against the bytes left before
//!   `kafka-protocol` allocates for it (module `schema`).
//! - [`api_versions`]: [`SUPPORTED_APIS`], the one table of what the broker implements, and
//!   the ApiVersions responses built from it, including the v0 fallback for clients that ask
//!   with a version the broker does not know.
//! - [`legacy_produce`]: Produce v0-2 by hand (advertised for librdkafka, KAFKA-18659).
//! - [`response`]: a response as one frame written in place into the caller's buffer.
//! - [`fetch_frame`]: a Fetch response as chunks of framing around record ranges the caller
//!   sends itself (the broker's segment file ranges, by `sendfile`).
//! - [`client`]: the other direction, for Rivulet's own tools: request frames out, response
//!   frames in.
//! - [`error`]: [`DecodeError`] (split by what the broker must do) and [`EncodeError`].
//! - [`group_records`]: the key and value formats of `__consumer_offsets` (Kafka's
//!   `OffsetCommitKey`/`Value`, `GroupMetadataKey`/`Value`), which are not requests but share
//!   the wire's primitive types.
//!
//! # Thread-safety
//!
//! Everything here is plain data and pure functions: no global state, no interior mutability.
//! The codec returned by [`frame_codec`] holds per-connection parse state, so each connection
//! owns one; everything else can be called from any thread.

pub use kafka_protocol;

pub mod api_versions;
pub mod client;
pub mod error;
pub mod fetch_frame;
pub mod frame;
pub mod group_records;
pub mod legacy_produce;
pub mod request;
pub mod response;
mod schema;
mod wire;

pub use api_versions::{
    api_versions_listing, api_versions_response, encode_api_versions_fallback, is_supported,
    supported_range, ApiRange, SUPPORTED_APIS,
};
pub use error::{DecodeError, EncodeError};
pub use fetch_frame::{Chunk, FetchFrameBuilder, FetchFrameError};
pub use frame::{frame_codec, DEFAULT_MAX_FRAME_BYTES, LENGTH_PREFIX_BYTES};
pub use legacy_produce::{
    LegacyPartitionProduceData, LegacyPartitionProduceResponse, LegacyProduceRequest,
    LegacyProduceResponse, LegacyTopicProduceData, LegacyTopicProduceResponse,
    LEGACY_PRODUCE_VERSIONS,
};
pub use request::{decode_request, Request, RequestBody};
pub use response::{encode_legacy_produce_response, encode_response};
