//! ApiVersions: what this broker implements, version ranges included.

use rivulet_protocol::api_versions_response;
use rivulet_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

/// Answers with the table of supported APIs (an unsupported ApiVersions version never gets
/// here: the connection answers it with the v0 fallback).
pub fn handle(_req: ApiVersionsRequest) -> ApiVersionsResponse {
    api_versions_response(None)
}
