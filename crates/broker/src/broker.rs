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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BrokerConfig;
use crate::metadata::local::LocalMetadataStore;
use crate::metadata::{placement, topic_name, BrokerImage, MetadataError, MetadataStore, NewTopic};
use crate::partition::Partition;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;
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
        match tokio::task::spawn_blocking(move || replicas.apply(&image)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "applying metadata to the logs failed"),
            Err(e) => tracing::error!(error = %e, "applying metadata to the logs failed"),
        }
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
        let image = self.store.image();
        let brokers: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
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
            if rf as usize > brokers.len() {
                return Err((
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                        brokers.len()
                    ),
                ));
            }
            let n = brokers.len().max(1);
            placement::assign(
                &brokers,
                partitions as usize,
                rf as usize,
                fastrand::usize(..n),
                fastrand::usize(..n),
            )
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
            by_index.into_values().collect()
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

/// A running broker.
pub struct Broker {
    state: Arc<BrokerState>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    bound: Vec<(String, SocketAddr)>,
}

/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Broker {
    /// Starts a broker: binds its listeners, recovers its logs, loads metadata, and serves.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let config = Arc::new(config);
        let mut listeners = Vec::new();
        let mut advertised = HashMap::new();
        for l in config.broker_listeners() {
            let address = l.bind_address();
            let socket = TcpListener::bind(&address)
                .await
                .map_err(|source| BrokerError::Bind {
                    listener: l.name.clone(),
                    address: address.clone(),
                    source,
                })?;
            let local = socket.local_addr().map_err(|source| BrokerError::Bind {
                listener: l.name.clone(),
                address: address.clone(),
                source,
            })?;
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
        let this_broker = BrokerImage {
            id: config.node_id,
            endpoints: advertised
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            rack: None,
            fenced: false,
        };
        let log_dir = config
            .log_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| "./data".into());
        let store: Arc<dyn MetadataStore> = Arc::new(LocalMetadataStore::open(
            log_dir,
            this_broker,
            config.delete_topic_enable,
        )?);
        let state = Arc::new(BrokerState {
            producer_ids: ProducerIdManager::new(Arc::clone(&store), config.node_id),
            config: Arc::clone(&config),
            store,
            replicas: Arc::clone(&replicas),
            advertised,
        });
        state.sync_partitions().await;

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        replicas.spawn_maintenance(shutdown.clone(), &tasks);
        spawn_metadata_follower(&state, shutdown.clone(), &tasks);
        let service = service::broker_service(Arc::clone(&state), service::QUEUED_MAX_REQUESTS);
        let connections = Arc::new(Semaphore::new(config.max_connections.max(1) as usize));
        let mut bound = Vec::new();
        for (name, socket, local) in listeners {
            bound.push((name.clone(), local));
            tasks.spawn(server::accept_loop(
                socket,
                Arc::from(name.as_str()),
                service.clone(),
                config.socket_request_max_bytes.max(1) as usize,
                Arc::clone(&connections),
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        tracing::info!(node_id = config.node_id, "broker started");
        Ok(Broker {
            state,
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

    /// The shared state (for tests).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Stops accepting, waits for in-flight requests (up to a grace period), then closes every
    /// log cleanly so the next start needs no recovery.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        tracing::info!("broker shutting down");
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the grace period");
        }
        let replicas = Arc::clone(&self.state.replicas);
        drop(self.state);
        let replicas = Arc::try_unwrap(replicas)
            .map_err(|_| BrokerError::Task("partitions still in use at shutdown".into()))?;
        tokio::task::spawn_blocking(move || replicas.shutdown())
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))??;
        tracing::info!("broker stopped");
        Ok(())
    }
}

/// Applies every new metadata image to the hosted partitions.
fn spawn_metadata_follower(
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
