//! One handler per Kafka API, and the dispatcher that routes a decoded request to it and encodes
//! the reply. Handlers read metadata from the lock-free image and never hold a lock across an
//! `.await`.

mod alter_configs;
mod alter_partition_reassignments;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_quorum;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rivulet_protocol::kafka_protocol::messages::{RequestKind, ResponseKind};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::{
    api_versions as table, encode_legacy_produce_response, encode_response, Chunk, Request,
    RequestBody,
};
use rivulet_storage::FileSlice;

use tokio::sync::oneshot;

use crate::broker::BrokerState;

/// Who sent a request and through which listener.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Name of the listener the client connected through (its advertised address is what the
    /// client is told about this broker).
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Who a group member is, as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The request header's client id ("" when null).
    pub client_id: String,
    /// The client's address as Kafka prints it: `/127.0.0.1`.
    pub host: String,
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this length-prefixed response.
    Frame(Bytes),
    /// Send this length-prefixed response made of framing bytes and segment file ranges
    /// (a fetch's records, sent with `sendfile`: see `response_writer`).
    Chunks(Vec<Chunk<FileSlice>>),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection, for this reason (logged by the connection).
    Close(String),
}

/// A state-changing request's place in its connection's order (see `connection`): the
/// connection starts the next state-changing request once this is released, by
/// [`Turn::release`] or by being dropped when the handler returns. Produce releases it as soon
/// as its batches are appended, before an acks=all wait: appends keep arrival order, and the
/// replication waits of pipelined requests overlap instead of adding up.
#[derive(Debug, Default)]
pub struct Turn(Option<oneshot::Sender<()>>);

impl Turn {
    /// A turn that ends when `done` is dropped (or [`Turn::release`]d).
    pub fn new(done: oneshot::Sender<()>) -> Turn {
        Turn(Some(done))
    }

    /// Lets the connection's next state-changing request start.
    pub fn release(&mut self) {
        self.0.take();
    }
}

/// A request with where it came from.
#[derive(Debug)]
pub struct RequestContext {
    /// The decoded request.
    pub request: Request,
    /// The connection it arrived on.
    pub connection: ConnectionInfo,
    /// Its turn among the connection's state-changing requests (empty for the others).
    pub turn: Turn,
}

/// Routes `ctx` to its handler and encodes the response.
pub async fn dispatch(state: &BrokerState, ctx: RequestContext) -> Reply {
    let RequestContext {
        request,
        connection,
        turn,
    } = ctx;
    let correlation_id = request.correlation_id();
    let client = || ClientInfo {
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        host: format!("/{}", connection.peer.ip()),
    };
    let key = request.api_key;
    let version = request.api_version;
    if !table::is_supported(key, version) {
        return Reply::Close(format!("{key:?} v{version} is not supported"));
    }
    let response = match request.body {
        RequestBody::LegacyProduce(req) => {
            let resp = produce::handle_legacy(&req);
            let mut out = BytesMut::new();
            return match encode_legacy_produce_response(correlation_id, version, &resp, &mut out) {
                Ok(()) if req.acks == 0 => {
                    Reply::Close("acks=0 produce in an old message format".into())
                }
                Ok(()) => Reply::Frame(out.freeze()),
                Err(e) => Reply::Close(format!("cannot encode the response: {e}")),
            };
        }
        RequestBody::Kafka(RequestKind::ApiVersions(req)) => {
            ResponseKind::ApiVersions(api_versions::handle(req))
        }
        RequestBody::Kafka(RequestKind::Metadata(req)) => {
            ResponseKind::Metadata(metadata::handle(state, &connection, req, version).await)
        }
        RequestBody::Kafka(RequestKind::Produce(req)) => {
            let acks = req.acks;
            let resp = produce::handle(state, req, version, turn).await;
            if acks == 0 {
                // Kafka sends no response to acks=0 and signals a failure by closing.
                return match produce::first_error(&resp) {
                    Some(e) => Reply::Close(format!("acks=0 produce failed: {e:?}")),
                    None => Reply::Nothing,
                };
            }
            ResponseKind::Produce(resp)
        }
        RequestBody::Kafka(RequestKind::Fetch(req)) => {
            return fetch::reply(state, req, version, correlation_id).await;
        }
        RequestBody::Kafka(RequestKind::OffsetForLeaderEpoch(req)) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(state, req))
        }
        RequestBody::Kafka(RequestKind::ListOffsets(req)) => {
            ResponseKind::ListOffsets(list_offsets::handle(state, req, version).await)
        }
        RequestBody::Kafka(RequestKind::CreateTopics(req)) => {
            ResponseKind::CreateTopics(create_topics::handle(state, req, version).await)
        }
        RequestBody::Kafka(RequestKind::DeleteTopics(req)) => {
            ResponseKind::DeleteTopics(delete_topics::handle(state, req, version).await)
        }
        RequestBody::Kafka(RequestKind::InitProducerId(req)) => {
            ResponseKind::InitProducerId(init_producer_id::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::DescribeConfigs(req)) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(state, req))
        }
        RequestBody::Kafka(RequestKind::AlterConfigs(req)) => {
            ResponseKind::AlterConfigs(alter_configs::handle_alter(state, req).await)
        }
        RequestBody::Kafka(RequestKind::CreatePartitions(req)) => {
            ResponseKind::CreatePartitions(create_partitions::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::IncrementalAlterConfigs(req)) => {
            ResponseKind::IncrementalAlterConfigs(
                alter_configs::handle_incremental(state, req).await,
            )
        }
        RequestBody::Kafka(RequestKind::ElectLeaders(req)) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(state, req, version).await)
        }
        RequestBody::Kafka(RequestKind::AlterPartitionReassignments(req)) => {
            ResponseKind::AlterPartitionReassignments(
                alter_partition_reassignments::handle(state, req).await,
            )
        }
        RequestBody::Kafka(RequestKind::ListPartitionReassignments(req)) => {
            ResponseKind::ListPartitionReassignments(list_partition_reassignments::handle(
                state, req,
            ))
        }
        RequestBody::Kafka(RequestKind::DescribeCluster(req)) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(state, &connection, req))
        }
        RequestBody::Kafka(RequestKind::DescribeQuorum(req)) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(state, req, version))
        }
        RequestBody::Kafka(RequestKind::FindCoordinator(req)) => ResponseKind::FindCoordinator(
            find_coordinator::handle(state, &connection, req, version).await,
        ),
        RequestBody::Kafka(RequestKind::JoinGroup(req)) => {
            let client = client();
            ResponseKind::JoinGroup(join_group::handle(state, &client, req, version).await)
        }
        RequestBody::Kafka(RequestKind::SyncGroup(req)) => {
            ResponseKind::SyncGroup(sync_group::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::Heartbeat(req)) => {
            ResponseKind::Heartbeat(heartbeat::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::LeaveGroup(req)) => {
            ResponseKind::LeaveGroup(leave_group::handle(state, req, version).await)
        }
        RequestBody::Kafka(RequestKind::OffsetCommit(req)) => {
            ResponseKind::OffsetCommit(offset_commit::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::OffsetFetch(req)) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(state, req, version).await)
        }
        RequestBody::Kafka(RequestKind::DescribeGroups(req)) => {
            ResponseKind::DescribeGroups(describe_groups::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::ListGroups(req)) => {
            ResponseKind::ListGroups(list_groups::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::DeleteGroups(req)) => {
            ResponseKind::DeleteGroups(delete_groups::handle(state, req).await)
        }
        RequestBody::Kafka(RequestKind::OffsetDelete(req)) => {
            ResponseKind::OffsetDelete(offset_delete::handle(state, req).await)
        }
        RequestBody::Kafka(_) => return Reply::Close(format!("no handler for {key:?} v{version}")),
    };
    let mut out = BytesMut::new();
    match encode_response(correlation_id, key, version, &response, &mut out) {
        Ok(()) => Reply::Frame(out.freeze()),
        Err(e) => Reply::Close(format!(
            "cannot encode the {key:?} v{version} response: {e}"
        )),
    }
}

/// A `StrBytes` from a `&str`.
pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A Kafka error message field.
pub(crate) fn message(e: impl std::fmt::Display) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}
