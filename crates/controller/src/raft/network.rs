//! [`GrpcNetworkFactory`]: openraft's transport between voters over gRPC (`RaftService` in
//! `proto/controller.proto`). Requests and replies are openraft's serde types as JSON.
//!
//! A [`TransportFilter`] can cut this node off from chosen peers, for tests that partition the
//! quorum (TiKV's transport filters): a blocked peer is reported unreachable without a send.
//!
//! [`PeerContacts`] notes when each peer last answered an AppendEntries (heartbeats included):
//! Raft's push is Kafka's follower fetch, so a leader reports that time as the voter's
//! `last_fetch_timestamp` in DescribeQuorum.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use super::TypeConfig;
use crate::grpc::proto::raft_service_client::RaftServiceClient;
use crate::grpc::proto::RaftMessage;

/// Peers this node may not reach (tests only; empty in production).
#[derive(Debug, Default)]
pub struct TransportFilter {
    blocked: RwLock<HashSet<u64>>,
}

impl TransportFilter {
    /// Stops traffic to `peer`.
    pub fn block(&self, peer: u64) {
        self.blocked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer);
    }

    /// Lets traffic to every peer through again.
    pub fn clear(&self) {
        self.blocked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn is_blocked(&self, peer: u64) -> bool {
        self.blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&peer)
    }
}

/// When each peer last answered an AppendEntries from this node, in milliseconds since the
/// Unix epoch. The lock is held only to read or write one entry.
#[derive(Debug, Default)]
pub struct PeerContacts {
    last: Mutex<HashMap<u64, i64>>,
}

impl PeerContacts {
    fn record(&self, peer: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, now);
    }

    /// When `peer` last answered an AppendEntries, if ever (ms since the Unix epoch).
    pub fn last_contact(&self, peer: u64) -> Option<i64> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .copied()
    }
}

/// Makes a [`GrpcNetwork`] per peer.
pub struct GrpcNetworkFactory {
    cluster_id: String,
    filter: Arc<TransportFilter>,
    contacts: Arc<PeerContacts>,
}

impl GrpcNetworkFactory {
    /// A factory for cluster `cluster_id`.
    pub fn new(cluster_id: String, filter: Arc<TransportFilter>) -> Self {
        GrpcNetworkFactory {
            cluster_id,
            filter,
            contacts: Arc::default(),
        }
    }

    /// The contact times its connections record.
    pub fn contacts(&self) -> Arc<PeerContacts> {
        Arc::clone(&self.contacts)
    }
}

/// A connection to one peer's `RaftService` (connected lazily, reconnected by tonic).
pub struct GrpcNetwork {
    target: u64,
    client: Option<RaftServiceClient<Channel>>,
    address: String,
    cluster_id: String,
    filter: Arc<TransportFilter>,
    contacts: Arc<PeerContacts>,
    /// Whether the last AppendEntries reached the peer, so that losing and regaining it is
    /// logged once each, in one line (openraft's own replication errors repeat every retry).
    reachable: bool,
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> GrpcNetwork {
        let address = format!("http://{}", node.addr);
        let client = tonic::transport::Endpoint::from_shared(address.clone())
            .ok()
            .map(|e| {
                RaftServiceClient::new(
                    e.connect_timeout(Duration::from_millis(500))
                        .tcp_nodelay(true)
                        .connect_lazy(),
                )
            });
        GrpcNetwork {
            target,
            client,
            address,
            cluster_id: self.cluster_id.clone(),
            filter: Arc::clone(&self.filter),
            contacts: Arc::clone(&self.contacts),
            reachable: true,
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, E>>;

#[derive(Clone, Copy)]
enum Call {
    Append,
    Vote,
    Snapshot,
}

impl GrpcNetwork {
    async fn call<Req, Resp, E>(
        &mut self,
        call: Call,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.filter.is_blocked(self.target) {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(format!(
                    "node {} is cut off by the transport filter",
                    self.target
                )),
            )));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(format!("invalid address {}", self.address)),
            )));
        };
        let payload =
            serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage {
            cluster_id: self.cluster_id.clone(),
            payload,
        });
        request.set_timeout(option.hard_ttl());
        let reply = match call {
            Call::Append => client.append_entries(request).await,
            Call::Vote => client.vote(request).await,
            Call::Snapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Err(status) => return Err(RPCError::Network(NetworkError::new(&status))),
        };
        let result: Result<Resp, E> = serde_json::from_slice(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// The first clause of a transport error ("dns error", "tcp connect error"), for a log line.
fn short_reason(error: &str) -> &str {
    let reason = error
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(error, |(message, _)| message);
    reason.split(';').next().unwrap_or(reason).trim()
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, RaftError<u64>> {
        let reply = self.call(Call::Append, &rpc, &option).await;
        match &reply {
            Ok(_) => {
                self.contacts.record(self.target);
                if !self.reachable {
                    self.reachable = true;
                    tracing::info!("controller quorum: voter {} reachable again", self.target);
                }
            }
            Err(RPCError::Unreachable(e)) if self.reachable => {
                self.reachable = false;
                tracing::warn!(
                    "controller quorum: voter {} at {} unreachable: {}",
                    self.target,
                    self.address.trim_start_matches("http://"),
                    short_reason(&e.to_string())
                );
            }
            Err(_) => {}
        }
        reply
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        self.call(Call::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, RaftError<u64>> {
        self.call(Call::Vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::short_reason;

    #[test]
    fn transport_errors_shorten_to_their_message() {
        let status = "Unreachable node: tonic::status::Status: code: 'The service is currently \
                      unavailable', message: \"dns error\", source: tonic::transport::Error";
        assert_eq!(short_reason(status), "dns error");
        assert_eq!(
            short_reason("node 2 is cut off; by the filter"),
            "node 2 is cut off"
        );
    }
}
