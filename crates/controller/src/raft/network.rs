//! [`GrpcNetworkFactory`]: openraft's transport between voters over gRPC (`RaftService` in
//! `proto/controller.proto`). Requests and replies are openraft's serde types as JSON.
//!
//! A [`TransportFilter`] can cut this node off from chosen peers, for tests that partition the
//! quorum (TiKV's transport filters): a blocked peer is reported unreachable without a send.
//!
//! Messages may be up to [`MAX_MESSAGE_BYTES`]; of an AppendEntries with more than
//! [`APPEND_CHUNK_RECORDS`] records one chunk is sent per call (openraft's partial success).
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
use openraft::{BasicNode, Entry, EntryPayload};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use super::TypeConfig;
use crate::grpc::proto::raft_service_client::RaftServiceClient;
use crate::grpc::proto::RaftMessage;
use crate::grpc::MAX_MESSAGE_BYTES;

/// AppendEntries carrying more metadata records than this are sent a chunk at a time (see
/// [`GrpcNetwork::append_in_chunks`]): a follower catching up may be sent up to openraft's 300
/// entries at once, and one entry (a CreateTopics of thousands of partitions, a broker's
/// fencing that moves every leader it held) can hold thousands of records, about 150 bytes of
/// JSON each. Counting records, not encoding twice to measure bytes, keeps the check free.
const APPEND_CHUNK_RECORDS: usize = 4_000;

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
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
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

impl GrpcNetwork {
    /// Sends `rpc`, or, when its entries hold more than [`APPEND_CHUNK_RECORDS`], only its
    /// first chunk (see [`split_entries`]), answering PartialSuccess up to that chunk's last
    /// entry: openraft then sends the rest in further calls. Each call carries at most a chunk,
    /// so each fits in the time openraft allows one AppendEntries (the heartbeat interval),
    /// and a follower far behind catches up chunk by chunk instead of failing the same large
    /// call forever.
    async fn append_in_chunks(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: &RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, RaftError<u64>> {
        let mut chunks = split_entries(rpc, APPEND_CHUNK_RECORDS).into_iter();
        let Some(first) = chunks.next() else {
            return Ok(AppendEntriesResponse::Success);
        };
        let reached = first.entries.last().map(|e| e.log_id);
        let reply = self.call(Call::Append, &first, option).await?;
        Ok(match reply {
            AppendEntriesResponse::Success if chunks.len() > 0 => {
                AppendEntriesResponse::PartialSuccess(reached)
            }
            other => other,
        })
    }
}

/// The metadata records of `entry` (at least 1), the measure of its size.
fn records(entry: &Entry<TypeConfig>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(batch) => batch.0.len().max(1),
        _ => 1,
    }
}

/// Cuts `rpc` into consecutive AppendEntries of at most `max_records` records each (one entry
/// with more goes alone): each continues after the previous one's last entry, and none but the
/// last says more is committed than it carries, so a follower that gets only some of them holds
/// a consistent prefix. An `rpc` within `max_records` (nearly every one) is returned whole.
fn split_entries(
    rpc: AppendEntriesRequest<TypeConfig>,
    max_records: usize,
) -> Vec<AppendEntriesRequest<TypeConfig>> {
    let sizes: Vec<usize> = rpc.entries.iter().map(records).collect();
    if sizes.iter().sum::<usize>() <= max_records {
        return vec![rpc];
    }
    let AppendEntriesRequest {
        vote,
        mut prev_log_id,
        leader_commit,
        entries,
    } = rpc;
    let mut chunks = Vec::new();
    let mut entries = entries.into_iter().zip(sizes).peekable();
    while entries.peek().is_some() {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        while let Some((_, size)) = entries.peek() {
            if !chunk.is_empty() && bytes + size > max_records {
                break;
            }
            bytes += size;
            if let Some((entry, _)) = entries.next() {
                chunk.push(entry);
            }
        }
        let last = chunk.last().map(|e| e.log_id);
        chunks.push(AppendEntriesRequest {
            vote,
            prev_log_id,
            leader_commit: leader_commit.min(last),
            entries: chunk,
        });
        prev_log_id = last;
    }
    if let Some(final_chunk) = chunks.last_mut() {
        final_chunk.leader_commit = leader_commit;
    }
    chunks
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
        let reply = self.append_in_chunks(rpc, &option).await;
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
    use super::{short_reason, split_entries, TypeConfig};
    use openraft::raft::AppendEntriesRequest;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(2, 1), index)
    }

    fn request(entries: std::ops::Range<u64>, commit: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(entries.start - 1)),
            leader_commit: Some(log_id(commit)),
            entries: entries
                .map(|i| Entry {
                    log_id: log_id(i),
                    payload: EntryPayload::Blank,
                })
                .collect(),
        }
    }

    #[test]
    fn a_small_append_goes_whole() {
        let chunks = split_entries(request(5..9, 8), 4);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].entries.len(), 4);
        assert_eq!(chunks[0].leader_commit, Some(log_id(8)));
    }

    #[test]
    fn a_large_append_goes_as_consecutive_chunks_committing_no_further_than_they_reach() {
        // A blank entry counts as one record: ten entries make four chunks of three.
        let chunks = split_entries(request(15..25, 22), 3);
        let spans: Vec<(Option<u64>, Vec<u64>, Option<u64>)> = chunks
            .iter()
            .map(|c| {
                (
                    c.prev_log_id.map(|l| l.index),
                    c.entries.iter().map(|e| e.log_id.index).collect(),
                    c.leader_commit.map(|l| l.index),
                )
            })
            .collect();
        assert_eq!(
            spans,
            vec![
                (Some(14), vec![15, 16, 17], Some(17)),
                (Some(17), vec![18, 19, 20], Some(20)),
                (Some(20), vec![21, 22, 23], Some(22)),
                (Some(23), vec![24], Some(22)),
            ]
        );
    }

    #[test]
    fn an_entry_with_more_records_than_a_chunk_goes_alone() {
        let mut rpc = request(1..4, 3);
        rpc.entries[1].payload = EntryPayload::Normal(crate::raft::RecordBatch(vec![
            crate::records::MetadataRecord::ProducerIdBlock {
                broker_id: 1,
                first: 0,
                size: 1,
            };
            5
        ]));
        let sizes: Vec<usize> = split_entries(rpc, 2)
            .iter()
            .map(|c| c.entries.len())
            .collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }

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
