//! The controller's gRPC surface (`proto/controller.proto`): generated code, the conversions
//! between wire and domain types ([`convert`], the only place that knows both), the services a
//! controller node serves ([`server`]) and the client brokers use ([`client`]).

pub mod client;
pub mod convert;
pub mod server;

/// Code generated from `proto/controller.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("rivulet.controller");
}
