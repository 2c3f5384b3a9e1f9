//! The controller's gRPC surface (`proto/controller.proto`): generated code, the conversions
//! between wire and domain types ([`convert`], the only place that knows both), the services a
//! controller node serves ([`server`]) and the client brokers use ([`client`]).

/// The largest gRPC message a controller sends or accepts, instead of tonic's 4 MiB: the
/// metadata image goes to a broker as one message (JSON, about 300 bytes a partition replica
/// set: 4.8 MB at 16,000 partitions), so 64 MiB leaves room for about 200,000 partitions while
/// still bounding what one message can make a peer allocate. Raft's AppendEntries get the same
/// limit (see `raft::network`).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

pub mod client;
pub mod convert;
pub mod server;

/// Code generated from `proto/controller.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("rivulet.controller");
}
