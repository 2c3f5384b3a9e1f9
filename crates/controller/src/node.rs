//! [`ControllerNode`]: one voter of the quorum, running. It owns the sled database, the Raft
//! instance, the controller task and the gRPC server on the controller listener.
//!
//! On first start every voter initializes Raft with the same static membership
//! (`controller.quorum.voters`); openraft allows this and ignores it once a log exists.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::decisions::Settings;
use crate::grpc::client::Voter;
use crate::grpc::proto::controller_service_server::ControllerServiceServer;
use crate::grpc::proto::raft_service_server::RaftServiceServer;
use crate::grpc::server::{ControllerServer, RaftServer};
use crate::grpc::MAX_MESSAGE_BYTES;
use crate::quorum_controller::{Controller, ControllerTimings};
use crate::quorum_state::QuorumView;
use crate::raft::log_store::SledLogStore;
use crate::raft::network::{GrpcNetworkFactory, PeerContacts, TransportFilter};
use crate::raft::state_machine::{MetadataFeed, MetadataStateMachine};
use crate::raft::Raft;

/// How long the gRPC server may take to finish in-flight calls at shutdown.
const SERVER_GRACE: Duration = Duration::from_millis(500);

/// The Raft election timeout (minimum; the maximum is twice it). openraft's followers elect
/// only once the leader's lease (the maximum, 1 s) and then their own random timeout (0.5 to
/// 1 s) have passed since its last heartbeat: a dead controller is replaced 1.5 to 2 s after
/// its last heartbeat, as Kafka's followers give up on a leader after
/// `controller.quorum.fetch.timeout.ms` (2 s). Heartbeats go every 200 ms, so a follower misses
/// seven in a row before it elects.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(500);

/// How long every session stream of a broker to the active controller must stay closed before
/// it is fenced: a live broker whose connection broke reopens its streams after at most
/// [`crate::grpc::client::SESSION_STREAM_BACKOFF`] (250 ms) plus a connection set-up, well
/// within it; a dead one is fenced half a second after it died, not `broker.session.timeout.ms`
/// (9 s) after its last heartbeat.
const STREAM_GRACE: Duration = Duration::from_millis(500);

/// Why a controller node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The sled database could not be opened.
    #[error("cannot open the metadata store in {path}: {source}")]
    Store {
        /// Its directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The listener's address could not be read.
    #[error("controller listener: {0}")]
    Listener(#[source] std::io::Error),
}

/// What a controller node needs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// The cluster id (from `meta.properties`).
    pub cluster_id: String,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// Where sled keeps the Raft log and snapshots (`<metadata.log.dir>/__cluster_metadata-0`).
    pub dir: PathBuf,
    /// Decision settings.
    pub settings: Settings,
    /// `broker.session.timeout.ms`.
    pub session_timeout: Duration,
    /// Raft heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Raft election timeout (minimum; the maximum is twice it). openraft's followers keep a
    /// leader's lease for the maximum after its last heartbeat and then wait their own random
    /// timeout, so a dead leader is replaced 3 to 4 times this after its last heartbeat.
    pub election_timeout: Duration,
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot (for followers slightly behind).
    pub entries_kept_after_snapshot: u64,
    /// How long a change may take to commit.
    pub write_timeout: Duration,
    /// How long all of a broker's session streams to the active controller must stay closed
    /// before it is fenced (see [`crate::session_streams`]).
    pub stream_grace: Duration,
}

impl ControllerConfig {
    /// Kafka-like defaults for node `node_id` of `cluster_id` with `voters`, storing in `dir`.
    pub fn new(node_id: i32, cluster_id: String, voters: Vec<Voter>, dir: PathBuf) -> Self {
        ControllerConfig {
            node_id,
            cluster_id,
            voters,
            dir,
            settings: Settings::default(),
            session_timeout: Duration::from_millis(9000),
            heartbeat_interval: Duration::from_millis(200),
            election_timeout: ELECTION_TIMEOUT,
            snapshot_after_entries: 20_000,
            entries_kept_after_snapshot: 1000,
            write_timeout: Duration::from_secs(5),
            stream_grace: STREAM_GRACE,
        }
    }
}

/// A running voter.
pub struct ControllerNode {
    controller: Controller,
    raft: Raft,
    filter: Arc<TransportFilter>,
    contacts: Arc<PeerContacts>,
    address: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    server: tokio::task::JoinHandle<()>,
}

impl ControllerNode {
    /// Opens the store in `config.dir`, starts Raft and the controller task, and serves gRPC on
    /// `listener` (already bound, so tests can use port 0).
    pub async fn start(
        config: ControllerConfig,
        listener: TcpListener,
    ) -> Result<ControllerNode, ControllerError> {
        let address = listener.local_addr().map_err(ControllerError::Listener)?;
        let store_err = |source| ControllerError::Store {
            path: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(|e| store_err(sled::Error::Io(e)))?;
        let db = sled::Config::new()
            .path(&config.dir)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(store_err)?;
        let log_store = SledLogStore::open(&db).map_err(store_err)?;
        let state_machine = MetadataStateMachine::open(&db, &config.cluster_id)
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let feed: Arc<MetadataFeed> = state_machine.feed();

        let election = config.election_timeout.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let filter = Arc::new(TransportFilter::default());
        let network = GrpcNetworkFactory::new(config.cluster_id.clone(), Arc::clone(&filter));
        let contacts = network.contacts();
        let raft = Raft::new(
            config.node_id as u64,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::Raft(e.to_string()))?;

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let controller = Controller::spawn(
            config.node_id,
            raft.clone(),
            feed,
            config.settings.clone(),
            ControllerTimings {
                session_timeout: config.session_timeout,
                write_timeout: config.write_timeout,
                election_timeout: config.election_timeout,
                stream_grace: config.stream_grace,
            },
            shutdown.clone(),
            &tasks,
        );
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(
                RaftServiceServer::new(RaftServer::new(raft.clone(), config.cluster_id.clone()))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                ControllerServiceServer::new(ControllerServer::new(
                    controller.clone(),
                    config.cluster_id.clone(),
                ))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            );
        let server = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "controller listener failed");
            }
        });

        let members: BTreeMap<u64, BasicNode> = config
            .voters
            .iter()
            .map(|v| (v.id as u64, BasicNode::new(&v.address)))
            .collect();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        if !initialized {
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "raft already initialized by a peer");
            }
        }
        tracing::info!(node = config.node_id, address = %address, voters = config.voters.len(), "controller started");
        Ok(ControllerNode {
            controller,
            raft,
            filter,
            contacts,
            address,
            shutdown,
            tasks,
            server,
        })
    }

    /// The controller handle.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The Raft instance.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// A handle that describes the quorum as this voter knows it (DescribeQuorum).
    pub fn quorum_view(&self) -> QuorumView {
        QuorumView::new(self.raft.clone(), Arc::clone(&self.contacts), self.address)
    }

    /// The transport filter (tests cut the node off with it).
    pub fn filter(&self) -> &Arc<TransportFilter> {
        &self.filter
    }

    /// The controller listener's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops Raft and the controller task, then the gRPC server: it gets a short grace for
    /// in-flight calls and is then aborted, since peers and brokers keep connections (and
    /// metadata streams) open that a graceful HTTP/2 shutdown would wait for.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("the controller task did not stop in time");
        }
        if tokio::time::timeout(SERVER_GRACE, &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}
