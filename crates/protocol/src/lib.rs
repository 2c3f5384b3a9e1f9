//! Kafka wire protocol for Rivulet: length-prefixed framing, request/response dispatch types,
//! the ApiVersions table and the RecordBatch v2 view, built on the `kafka-protocol` crate.
//!
//! This crate does no I/O and knows nothing of storage. It is filled in by the
//! "Kafka wire protocol and a single-node broker" issue; until then it is an empty member of
//! the workspace so that the dependency graph (`rivulet` -> `broker` -> `protocol`) is in place.
