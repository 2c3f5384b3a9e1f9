//! [`Broker`]: a running broker (listeners, partitions, metadata), and [`BrokerState`], what its
//! request handlers share.
//!
//! Start-up binds every client listener first (so port 0 works and the advertised address
//! carries the real port), opens and recovers the logs, loads metadata, and brings the hosted
//! partitions in line with it. Shutdown stops accepting, lets in-flight requests finish within a
//! grace period, then closes every log cleanly.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rivulet_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopicConfig,
};
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::{StorageError, TopicPartition};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use rivulet_controller::{
    ControllerClient, ControllerConfig, ControllerError, ControllerNode, QuorumView, Registration,
    Settings, Voter,
};
use rivulet_storage::log_manager::METADATA_LOG_DIR;
use rivulet_storage::meta_properties::{self, MetaPropertiesError};
use tokio::sync::watch;

use crate::config::{BrokerConfig, Listener, ProcessRole};
use crate::group_coordinator::{GroupConfig, GroupCoordinator};
use crate::lifecycle;
use crate::metadata::quorum_store::QuorumMetadataStore;
use crate::metadata::{
    follower, ids, topic_name, Assignment, BrokerImage, MetadataError, MetadataStore, NewTopic,
};
use crate::partition::Partition;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;
use crate::replication::fetcher::{FetcherConfig, ReplicaFetcherManager};
use crate::replication::isr_manager::IsrManager;
use crate::replication::proto::replica_service_server::ReplicaServiceServer;
use crate::replication::server::ReplicaServer;
use crate::{server, service};

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener could not be bound.
    #[error("cannot listen on {address} ({listener}): {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// Address tried.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log dirs could not be opened or closed.
    #[error("log storage: {0}")]
    Storage(#[from] StorageError),
    /// Metadata could not be loaded.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// The log dirs belong to another node or cluster, or are not formatted.
    #[error("{0}")]
    Identity(#[from] MetaPropertiesError),
    /// The controller role could not start.
    #[error("controller: {0}")]
    Controller(#[from] ControllerError),
    /// A blocking start-up or shutdown task failed.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// What every request handler can reach.
pub struct BrokerState {
    /// The broker's configuration.
    pub config: Arc<BrokerConfig>,
    /// Cluster metadata.
    pub store: Arc<dyn MetadataStore>,
    /// The partitions hosted here.
    pub replicas: Arc<ReplicaManager>,
    /// Idempotent producer ids.
    pub producer_ids: ProducerIdManager,
    /// The group coordinator (consumer groups and committed offsets).
    pub groups: GroupCoordinator,
    /// This node's view of the metadata quorum, when it is a voter (DescribeQuorum).
    pub quorum: Option<QuorumView>,
    advertised: HashMap<String, (String, u16)>,
}

impl BrokerState {
    /// This broker's advertised `(host, port)` on `listener`.
    pub fn advertised(&self, listener: &str) -> Option<(String, u16)> {
        self.advertised.get(listener).cloned()
    }

    /// The partition `tp` if this broker leads it: `UNKNOWN_TOPIC_OR_PARTITION` when the
    /// metadata has no such partition, `NOT_LEADER_OR_FOLLOWER` when another broker leads it
    /// (or its log is not open here yet). What Produce, Fetch and ListOffsets check first.
    pub fn leader_partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>, ResponseError> {
        let image = self.store.image();
        let leader = image
            .topics
            .get(&tp.topic)
            .and_then(|t| t.partitions.get(tp.partition as usize))
            .map(|p| p.leader)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if leader != self.config.node_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        self.replicas
            .get(tp)
            .filter(|p| p.is_leader())
            .ok_or(ResponseError::NotLeaderOrFollower)
    }

    /// Where a client on `listener` reaches `broker`: this broker's advertised address, or
    /// another broker's registered endpoint for that listener (`None`: the broker has no such
    /// listener and is left out of the answer, as Kafka does).
    pub fn endpoint(&self, broker: &BrokerImage, listener: &str) -> Option<(String, u16)> {
        if broker.id == self.config.node_id {
            self.advertised(listener)
        } else {
            broker.endpoints.get(listener).cloned()
        }
    }

    /// Applies the current metadata image to the hosted partitions now (after an admin change,
    /// so the next request already finds the partitions).
    pub async fn sync_partitions(&self) {
        let replicas = Arc::clone(&self.replicas);
        let image = self.store.image();
        let applied = Arc::clone(&image);
        match tokio::task::spawn_blocking(move || replicas.apply(&applied)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "applying metadata to the logs failed"),
            Err(e) => tracing::error!(error = %e, "applying metadata to the logs failed"),
        }
        // Coordinators follow the leaderships of __consumer_offsets just applied.
        self.groups.sync(&image, &self.replicas);
    }

    /// Builds a topic to create from a CreateTopics entry: defaults for -1, Kafka's checks,
    /// replica placement over live brokers, validated configs.
    pub fn new_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        assignments: &[CreatableReplicaAssignment],
        configs: &[CreatableTopicConfig],
    ) -> Result<NewTopic, (ResponseError, String)> {
        topic_name::validate(name)
            .map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
        let assignment = if assignments.is_empty() {
            let partitions = if num_partitions == -1 {
                self.config.num_partitions
            } else {
                num_partitions
            };
            let rf = if replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                i32::from(replication_factor)
            };
            if partitions <= 0 {
                return Err((
                    ResponseError::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ));
            }
            if rf <= 0 {
                return Err((
                    ResponseError::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .into(),
                ));
            }
            // Placement over the unfenced brokers is the controller's.
            Assignment::Auto {
                partitions,
                replication_factor: rf,
            }
        } else {
            if num_partitions != -1 || replication_factor != -1 {
                return Err((
                    ResponseError::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
            }
            let mut by_index: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for a in assignments {
                by_index.insert(
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                );
            }
            if by_index.keys().copied().ne(0..by_index.len() as i32) {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    "Partitions should be a consecutive 0-based integer sequence".into(),
                ));
            }
            Assignment::Manual(by_index.into_values().collect())
        };
        let mut overrides = BTreeMap::new();
        for c in configs {
            let Some(value) = &c.value else {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Null value not supported for topic configs: {}", c.name),
                ));
            };
            overrides.insert(c.name.to_string(), value.to_string());
        }
        self.config
            .topic_config(&overrides)
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
        Ok(NewTopic {
            name: name.to_owned(),
            assignment,
            configs: overrides,
        })
    }

    /// Creates topics a client asked for through Metadata (`auto.create.topics.enable`), with
    /// `num.partitions` and `default.replication.factor` (capped by the live brokers, as Kafka
    /// caps auto-created internal topics).
    pub async fn auto_create_topics(&self, names: Vec<String>) {
        let live = self.store.image().live_brokers().count().max(1);
        let rf = (self.config.default_replication_factor.max(1) as usize).min(live) as i16;
        let topics: Vec<NewTopic> = names
            .iter()
            .filter_map(|n| self.new_topic(n, -1, rf, &[], &[]).ok())
            .collect();
        for outcome in self.store.create_topics(topics, false).await {
            match outcome {
                Ok(t) => {
                    tracing::info!(topic = %t.name, partitions = t.partitions.len(), "auto-created topic")
                }
                Err(MetadataError::TopicAlreadyExists(_)) => {}
                Err(e) => tracing::warn!(error = %e, "auto-creating a topic failed"),
            }
        }
        self.sync_partitions().await;
    }
}

/// A running node: the broker role, the controller role, or both.
pub struct Broker {
    state: Option<Arc<BrokerState>>,
    controller: Option<ControllerNode>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    bound: Vec<(String, SocketAddr)>,
}

/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a forwarded admin change may take (Kafka's `request.timeout.ms` default).
const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an answer waits for this broker's image to include a committed change.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

async fn bind(l: &Listener) -> Result<(TcpListener, SocketAddr), BrokerError> {
    let address = l.bind_address();
    let bind_error = |source| BrokerError::Bind {
        listener: l.name.clone(),
        address: address.clone(),
        source,
    };
    let socket = TcpListener::bind(&address).await.map_err(bind_error)?;
    let local = socket.local_addr().map_err(bind_error)?;
    Ok((socket, local))
}

/// Checks (or, where allowed, writes) `meta.properties` in every log dir; returns the cluster
/// id. Unformatted dirs are formatted when `cluster.id` is configured, or for a zero-config
/// single node (the only voter) with a fresh id; otherwise the node refuses to start.
fn cluster_identity(config: &BrokerConfig) -> Result<String, MetaPropertiesError> {
    let is_controller = config.process_roles.contains(&ProcessRole::Controller);
    let single_voter = is_controller
        && config.controller_quorum_voters.len() == 1
        && config.controller_quorum_voters[0].id == config.node_id;
    let fresh = ids::new_cluster_id;
    let may_format = config.cluster_id.is_some() || single_voter;
    meta_properties::ensure_formatted(
        &config.log_dirs,
        config.node_id,
        config.cluster_id.as_deref(),
        may_format.then_some(&fresh as &dyn Fn() -> String),
    )
}

/// `controller.quorum.voters` as addresses. A single voter that is this node is reached on the
/// controller listener as bound (`own`), so a zero-config node on another port still finds
/// itself.
fn voters(config: &BrokerConfig, own: Option<SocketAddr>) -> Vec<Voter> {
    if let (Some(own), [only]) = (own, config.controller_quorum_voters.as_slice()) {
        if only.id == config.node_id {
            return vec![Voter {
                id: only.id,
                address: own.to_string(),
            }];
        }
    }
    config
        .controller_quorum_voters
        .iter()
        .map(|v| Voter {
            id: v.id,
            address: if v.host.contains(':') {
                format!("[{}]:{}", v.host, v.port)
            } else {
                format!("{}:{}", v.host, v.port)
            },
        })
        .collect()
}

impl Broker {
    /// Starts the node's roles: the controller (Raft voter) first, then the broker, which binds
    /// its listeners, recovers its logs, follows the metadata, registers, and serves clients
    /// once the controller has unfenced it.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let config = Arc::new(config);
        let cluster_id = {
            let config = Arc::clone(&config);
            tokio::task::spawn_blocking(move || cluster_identity(&config))
                .await
                .map_err(|e| BrokerError::Task(e.to_string()))??
        };
        tracing::info!(node_id = config.node_id, cluster_id = %cluster_id, "starting");
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let is_broker = config.process_roles.contains(&ProcessRole::Broker);
        let is_controller = config.process_roles.contains(&ProcessRole::Controller);
        let mut bound = Vec::new();
        let mut own_controller = None;

        let controller = if is_controller {
            let listener = config
                .controller_listeners()
                .next()
                .ok_or_else(|| BrokerError::Task("no controller listener".into()))?;
            let (socket, local) = bind(listener).await?;
            tracing::info!(listener = %listener.name, address = %local, "listening");
            bound.push((listener.name.clone(), local));
            own_controller = Some(local);
            let dir = config
                .log_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| "./data".into())
                .join(METADATA_LOG_DIR);
            let mut c = ControllerConfig::new(
                config.node_id,
                cluster_id.clone(),
                voters(&config, own_controller),
                dir,
            );
            c.settings = Settings {
                delete_topic_enable: config.delete_topic_enable,
                unclean_leader_election_enable: config.unclean_leader_election_enable,
                auto_leader_rebalance_enable: config.auto_leader_rebalance_enable,
                leader_imbalance_check_interval: Duration::from_secs(
                    config.leader_imbalance_check_interval_seconds.max(1) as u64,
                ),
                leader_imbalance_per_broker_percentage: config
                    .leader_imbalance_per_broker_percentage,
            };
            c.session_timeout =
                Duration::from_millis(config.broker_session_timeout_ms.max(1) as u64);
            Some(ControllerNode::start(c, socket).await?)
        } else {
            None
        };
        if !is_broker {
            return Ok(Broker {
                state: None,
                controller,
                shutdown,
                tasks,
                bound,
            });
        }

        let mut listeners = Vec::new();
        let mut advertised = HashMap::new();
        for l in config.broker_listeners() {
            let (socket, local) = bind(l).await?;
            let (host, port) = config
                .advertised_for(&l.name)
                .map(|(h, p)| (h.to_owned(), p))
                .unwrap_or_else(|| (l.host.clone(), l.port));
            let port = if port == 0 { local.port() } else { port };
            advertised.insert(l.name.clone(), (host, port));
            tracing::info!(listener = %l.name, address = %local, "listening");
            listeners.push((l.name.clone(), socket, local));
        }
        let replicas = {
            let config = Arc::clone(&config);
            tokio::task::spawn_blocking(move || ReplicaManager::open(config))
                .await
                .map_err(|e| BrokerError::Task(e.to_string()))??
        };
        let replicas = Arc::new(replicas);
        let client = ControllerClient::new(
            cluster_id.clone(),
            &voters(&config, own_controller),
            CONTROLLER_REQUEST_TIMEOUT,
        )?;
        let store = QuorumMetadataStore::new(client, CATCH_UP_TIMEOUT);
        let local_voter = if is_controller { config.node_id } else { -1 };
        tasks.spawn(follower::run(
            Arc::clone(&store),
            config.node_id,
            local_voter,
            shutdown.clone(),
        ));
        let registration = Registration {
            broker_id: config.node_id,
            incarnation_id: uuid::Uuid::new_v4(),
            endpoints: advertised
                .iter()
                .map(|(l, (h, p))| (l.clone(), h.clone(), *p))
                .collect(),
            rack: None,
        };
        let (unfenced_tx, mut unfenced) = watch::channel(false);
        tasks.spawn(lifecycle::run(
            Arc::clone(&store),
            registration,
            Duration::from_millis(config.broker_heartbeat_interval_ms.max(1) as u64),
            unfenced_tx,
            shutdown.clone(),
        ));
        let store_dyn: Arc<dyn MetadataStore> = store;
        let state = Arc::new(BrokerState {
            producer_ids: ProducerIdManager::new(Arc::clone(&store_dyn), config.node_id),
            groups: GroupCoordinator::new(
                GroupConfig::from_broker(&config),
                shutdown.clone(),
                tasks.clone(),
            ),
            config: Arc::clone(&config),
            store: store_dyn,
            replicas: Arc::clone(&replicas),
            quorum: controller.as_ref().map(ControllerNode::quorum_view),
            advertised,
        });
        // Serve only once caught up and unfenced, as Kafka's brokers do.
        loop {
            match tokio::time::timeout(Duration::from_secs(10), unfenced.wait_for(|u| *u)).await {
                Ok(Ok(_)) => break,
                Ok(Err(_)) => return Err(BrokerError::Task("the lifecycle task stopped".into())),
                Err(_) => {
                    tracing::info!("waiting for the controller quorum to unfence this broker")
                }
            }
        }
        let grpc = start_replication(&state, cluster_id, &shutdown, &tasks);
        // Subscribe before the first sync, so no image published in between is missed.
        spawn_partition_sync(&state, shutdown.clone(), &tasks);
        state.sync_partitions().await;
        replicas.spawn_maintenance(shutdown.clone(), &tasks);
        let service = service::broker_service(Arc::clone(&state), service::QUEUED_MAX_REQUESTS);
        let connections = Arc::new(Semaphore::new(config.max_connections.max(1) as usize));
        for (name, socket, local) in listeners {
            bound.push((name.clone(), local));
            let grpc = (name == config.inter_broker_listener_name).then(|| grpc.clone());
            tasks.spawn(server::accept_loop(
                socket,
                Arc::from(name.as_str()),
                service.clone(),
                config.socket_request_max_bytes.max(1) as usize,
                Arc::clone(&connections),
                grpc,
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        tracing::info!(node_id = config.node_id, "broker started");
        Ok(Broker {
            state: Some(state),
            controller,
            shutdown,
            tasks,
            bound,
        })
    }

    /// The address a listener is bound to (for tests that bind port 0).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
    }

    /// The broker role's shared state, if this node is a broker.
    pub fn state(&self) -> Option<&Arc<BrokerState>> {
        self.state.as_ref()
    }

    /// The controller role, if this node is a voter.
    pub fn controller(&self) -> Option<&ControllerNode> {
        self.controller.as_ref()
    }

    /// Hands this broker's leaderships to other replicas first (controlled shutdown, while still
    /// serving), then stops accepting, waits for in-flight requests (up to a grace period),
    /// closes every log cleanly so the next start needs no recovery, and stops the controller.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        tracing::info!("shutting down");
        if let Some(state) = self
            .state
            .as_ref()
            .filter(|s| s.config.controlled_shutdown_enable)
        {
            let started = std::time::Instant::now();
            let done = lifecycle::controlled_shutdown(
                state.store.as_ref(),
                state.config.node_id,
                lifecycle::CONTROLLED_SHUTDOWN_TIMEOUT,
            )
            .await;
            match done {
                Ok(()) => tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "controlled shutdown complete: leaderships moved"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "controlled shutdown did not complete; stopping anyway"
                ),
            }
        }
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the grace period");
        }
        if let Some(state) = self.state {
            let replicas = Arc::clone(&state.replicas);
            drop(state);
            let replicas = Arc::try_unwrap(replicas)
                .map_err(|_| BrokerError::Task("partitions still in use at shutdown".into()))?;
            tokio::task::spawn_blocking(move || replicas.shutdown())
                .await
                .map_err(|e| BrokerError::Task(e.to_string()))??;
        }
        if let Some(controller) = self.controller {
            controller.shutdown().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the replica fetchers, the ISR manager and the replication gRPC server; returns where
/// the inter-broker listener hands gRPC connections.
fn start_replication(
    state: &Arc<BrokerState>,
    cluster_id: String,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> mpsc::Sender<TcpStream> {
    let config = &state.config;
    let isr = IsrManager::new(
        config.node_id,
        Arc::clone(&state.store),
        tasks.clone(),
        shutdown.clone(),
    );
    let fetchers = ReplicaFetcherManager::new(
        FetcherConfig {
            node_id: config.node_id,
            cluster_id: cluster_id.clone(),
            listener: config.inter_broker_listener_name.clone(),
            max_wait_ms: config.replica_fetch_wait_max_ms,
            min_bytes: config.replica_fetch_min_bytes,
            max_bytes: config.replica_fetch_response_max_bytes,
            partition_max_bytes: config.replica_fetch_max_bytes,
            backoff: Duration::from_millis(config.replica_fetch_backoff_ms.max(0) as u64),
        },
        Arc::clone(&state.store),
        tasks.clone(),
        shutdown.clone(),
    );
    state.replicas.start_replication(fetchers, isr.clone());
    let replicas = Arc::clone(&state.replicas);
    isr.spawn_shrink_check(
        Duration::from_millis(config.replica_lag_time_max_ms.max(1) as u64),
        move || replicas.leaders(),
    );
    let server = ReplicaServer::new(
        Arc::clone(&state.replicas),
        isr,
        cluster_id,
        shutdown.clone(),
    );
    let limit = (config.replica_fetch_response_max_bytes.max(0) as usize)
        .max(config.replica_fetch_max_bytes.max(0) as usize)
        .saturating_mul(2)
        .max(16 << 20);
    let (tx, rx) = mpsc::channel::<TcpStream>(64);
    let incoming = ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(
                ReplicaServiceServer::new(server)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the replication server failed");
        }
    });
    tx
}

/// Applies every new metadata image to the hosted partitions. It subscribes at once, so every
/// image published after this call is applied.
fn spawn_partition_sync(
    state: &Arc<BrokerState>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    let mut changes = state.store.subscribe();
    let state = Arc::clone(state);
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
            changes.borrow_and_update();
            state.sync_partitions().await;
        }
    });
}
