//! The active controller: one task that owns the broker sessions and turns requests into
//! committed records, one request at a time.
//!
//! Requests arrive through a [`Controller`] handle (from the gRPC service, or in-process). The
//! task checks each against the latest image with [`crate::decisions`], proposes the resulting
//! records to Raft and answers once they are committed and applied. Taking requests one at a time
//! means each decision sees every earlier one, without any state beyond the image.
//!
//! Only the Raft leader acts, and only once the image includes an entry of its own term (its
//! blank entry), so it decides on everything committed before it. Any other node answers
//! NOT_CONTROLLER with the leader it knows of. A leader that stops hearing from a quorum for the
//! longest election timeout answers NOT_CONTROLLER too: it may have been deposed, and its writes could
//! not commit anyway.
//!
//! Broker sessions (last heartbeat per broker) are in memory only, as in Kafka, but every voter
//! keeps them: brokers send each heartbeat to all voters, and a voter that does not lead notes
//! the time before answering NOT_CONTROLLER. A new leader therefore starts with the sessions as
//! they were, so a broker that died together with the old controller is fenced within
//! `broker.session.timeout.ms` of its death, not of the election. A broker the new leader never
//! heard from gets a session as of one election timeout before the new term. A tick fences the
//! brokers whose session expired, which moves their partitions' leadership.
//!
//! Session streams: that is the fallback for silent failures (a paused process, a cut network).
//! A broker whose process dies is fenced much sooner: it holds a `BrokerSession` stream open to
//! every voter, its kernel closes the connections when it dies, and each voter notes the close
//! ([`SessionStreams`]). The active controller fences an unfenced broker whose streams of its
//! current registration to this voter have all been closed for [`ControllerTimings::stream_grace`]
//! (the same fencing as session expiry). Every voter tracks them, so a voter elected after the
//! old controller died together with a broker fences that broker on its first tick as leader.
//!
//! Controlled shutdown: a heartbeat with `want_shut_down` marks the broker as shutting down and
//! moves its leaderships and ISR memberships away ([`decisions::controlled_shutdown`]). Once it
//! leads nothing another replica could lead, and every other live broker has reported (in its
//! heartbeats) a metadata offset that includes the move, the controller fences it and answers
//! `should_shut_down`: clients then find the new leaders on every broker as soon as it stops.
//!
//! With `auto.leader.rebalance.enable`, the active controller checks every
//! `leader.imbalance.check.interval.seconds` for brokers that do not lead too many of the
//! partitions they are the preferred replica of, and proposes preferred elections for those.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::decisions::{
    self, AlterPartition, BrokerRegistration, ElectionType, NewPartitions, NewTopic,
    PartitionResult, Reassignment, Settings, TopicConfigChange, TopicRef,
};
use crate::error::MetadataError;
use crate::events::{self, ClusterEvent};
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::raft::state_machine::MetadataFeed;
use crate::raft::{Raft, RecordBatch};
use crate::records::MetadataRecord;
use crate::session_streams::SessionStreams;

/// Per-topic outcomes of an admin request, and the metadata offset that committed them (-1 when
/// nothing was written).
pub type TopicResults = (Vec<Result<TopicImage, MetadataError>>, i64);

/// Per-partition outcomes of an admin request, and the metadata offset that committed them (-1
/// when nothing was written).
pub type PartitionResults = (Vec<PartitionResult>, i64);

/// A heartbeat's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The broker has applied the metadata up to its registration.
    pub is_caught_up: bool,
    /// The broker is fenced (after this heartbeat).
    pub is_fenced: bool,
    /// The controller epoch (Raft term).
    pub controller_epoch: i32,
    /// The broker asked to shut down and may now stop: its leaderships have moved and it is
    /// fenced.
    pub should_shut_down: bool,
}

/// A broker's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heartbeat {
    broker_id: i32,
    broker_epoch: i64,
    /// The last metadata offset the broker applied.
    metadata_offset: i64,
    /// The broker is stopping (controlled shutdown).
    want_shut_down: bool,
}

/// Timing of the controller's duties.
#[derive(Debug, Clone)]
pub struct ControllerTimings {
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout: Duration,
    /// How long a proposed change may take to commit before the request fails.
    pub write_timeout: Duration,
    /// The Raft election timeout (minimum): a leader without a quorum ack for this long stops
    /// acting.
    pub election_timeout: Duration,
    /// How long every session stream of a broker must have been closed before it is fenced for
    /// it: longer than a live broker takes to replace a broken stream.
    pub stream_grace: Duration,
}

type Reply<T> = oneshot::Sender<Result<T, MetadataError>>;

enum Command {
    Register(BrokerRegistration, Reply<i64>),
    Heartbeat(Heartbeat, Reply<HeartbeatReply>),
    AlterPartition(AlterPartition, Reply<(PartitionImage, i64)>),
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        reply: Reply<(i64, i64)>,
    },
    CreateTopics(Vec<NewTopic>, bool, Reply<TopicResults>),
    DeleteTopics(Vec<TopicRef>, Reply<TopicResults>),
    CreatePartitions(Vec<NewPartitions>, bool, Reply<TopicResults>),
    AlterTopicConfigs(Vec<TopicConfigChange>, bool, Reply<TopicResults>),
    ElectLeaders(
        ElectionType,
        Option<Vec<(String, i32)>>,
        Reply<PartitionResults>,
    ),
    AlterReassignments(Vec<Reassignment>, Reply<PartitionResults>),
    /// A broker's session stream to this voter opened.
    StreamOpened {
        broker_id: i32,
        broker_epoch: i64,
    },
    /// A broker's session stream to this voter closed at `at`.
    StreamClosed {
        broker_id: i32,
        broker_epoch: i64,
        at: Instant,
    },
    /// How many session streams of a broker are open to this voter.
    OpenStreams(i32, Reply<usize>),
}

/// A handle to the controller task. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    node_id: i32,
    commands: mpsc::Sender<Command>,
    feed: Arc<MetadataFeed>,
    raft: Raft,
}

impl Controller {
    /// Spawns the controller task on `tasks`; it stops when `shutdown` is cancelled.
    pub fn spawn(
        node_id: i32,
        raft: Raft,
        feed: Arc<MetadataFeed>,
        settings: Settings,
        timings: ControllerTimings,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Controller {
        let (commands, rx) = mpsc::channel(1024);
        let task = ControllerTask {
            node_id,
            raft: raft.clone(),
            feed: Arc::clone(&feed),
            settings,
            timings,
            sessions: HashMap::new(),
            metadata_offsets: HashMap::new(),
            shutdown_offsets: HashMap::new(),
            streams: SessionStreams::default(),
            leading_term: None,
            sessions_since: Instant::now(),
        };
        tasks.spawn(task.run(rx, shutdown));
        Controller {
            node_id,
            commands,
            feed,
            raft,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The latest committed image on this node.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.feed.image()
    }

    /// The feed of committed metadata on this node.
    pub fn feed(&self) -> &Arc<MetadataFeed> {
        &self.feed
    }

    /// The Raft instance (metrics, tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, MetadataError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| MetadataError::NotController { leader: -1 })?;
        rx.await
            .map_err(|_| MetadataError::NotController { leader: -1 })?
    }

    /// Registers a broker; returns its broker epoch.
    pub async fn register_broker(&self, r: BrokerRegistration) -> Result<i64, MetadataError> {
        self.ask(|tx| Command::Register(r, tx)).await
    }

    /// Records a heartbeat; unfences the broker once it has caught up.
    pub async fn heartbeat(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
    ) -> Result<HeartbeatReply, MetadataError> {
        let beat = Heartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
            want_shut_down: false,
        };
        self.ask(|reply| Command::Heartbeat(beat, reply)).await
    }

    /// Records a heartbeat of a broker that wants to shut down (controlled shutdown): moves its
    /// leaderships away; `should_shut_down` in the reply says when it may stop.
    pub async fn heartbeat_shutdown(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
    ) -> Result<HeartbeatReply, MetadataError> {
        let beat = Heartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
            want_shut_down: true,
        };
        self.ask(|reply| Command::Heartbeat(beat, reply)).await
    }

    /// Changes a partition's ISR for its leader.
    pub async fn alter_partition(
        &self,
        r: AlterPartition,
    ) -> Result<(PartitionImage, i64), MetadataError> {
        self.ask(|tx| Command::AlterPartition(r, tx)).await
    }

    /// Reserves a block of producer ids: `(first, size)`.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(i64, i64), MetadataError> {
        self.ask(|reply| Command::AllocateProducerIds {
            broker_id,
            broker_epoch,
            reply,
        })
        .await
    }

    /// Creates topics (each all-or-nothing; all committed in one entry).
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<TopicResults, MetadataError> {
        self.ask(|tx| Command::CreateTopics(topics, validate_only, tx))
            .await
    }

    /// Deletes topics.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Result<TopicResults, MetadataError> {
        self.ask(|tx| Command::DeleteTopics(topics, tx)).await
    }

    /// Adds partitions to topics.
    pub async fn create_partitions(
        &self,
        topics: Vec<NewPartitions>,
        validate_only: bool,
    ) -> Result<TopicResults, MetadataError> {
        self.ask(|tx| Command::CreatePartitions(topics, validate_only, tx))
            .await
    }

    /// Changes topic config overrides.
    pub async fn alter_topic_configs(
        &self,
        changes: Vec<TopicConfigChange>,
        validate_only: bool,
    ) -> Result<TopicResults, MetadataError> {
        self.ask(|tx| Command::AlterTopicConfigs(changes, validate_only, tx))
            .await
    }

    /// Elects leaders (ElectLeaders) for `partitions`, or for every partition when `None`.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<PartitionResults, MetadataError> {
        self.ask(|tx| Command::ElectLeaders(election, partitions, tx))
            .await
    }

    /// Starts or cancels partition reassignments (AlterPartitionReassignments).
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<Reassignment>,
    ) -> Result<PartitionResults, MetadataError> {
        self.ask(|tx| Command::AlterReassignments(reassignments, tx))
            .await
    }

    /// Notes that a session stream of registration `broker_epoch` of `broker_id` opened on
    /// this voter (module doc).
    pub async fn session_stream_opened(&self, broker_id: i32, broker_epoch: i64) {
        // A stopped task has nothing left to track.
        let _ = self
            .commands
            .send(Command::StreamOpened {
                broker_id,
                broker_epoch,
            })
            .await;
    }

    /// How many session streams of `broker_id`'s latest registration seen here are open to
    /// this voter (tests, diagnostics).
    pub async fn open_session_streams(&self, broker_id: i32) -> Result<usize, MetadataError> {
        self.ask(|tx| Command::OpenStreams(broker_id, tx)).await
    }

    /// Notes that a session stream of registration `broker_epoch` of `broker_id` to this voter
    /// closed at `at`.
    pub async fn session_stream_closed(&self, broker_id: i32, broker_epoch: i64, at: Instant) {
        let _ = self
            .commands
            .send(Command::StreamClosed {
                broker_id,
                broker_epoch,
                at,
            })
            .await;
    }
}

struct ControllerTask {
    node_id: i32,
    raft: Raft,
    feed: Arc<MetadataFeed>,
    settings: Settings,
    timings: ControllerTimings,
    /// Last heartbeat per broker, as seen by this voter.
    sessions: HashMap<i32, Instant>,
    /// The metadata offset each broker last reported applying, as seen by this voter.
    metadata_offsets: HashMap<i32, i64>,
    /// Brokers in controlled shutdown: the offset after which their leaderships had moved.
    shutdown_offsets: HashMap<i32, i64>,
    /// Brokers' session streams to this voter.
    streams: SessionStreams,
    /// The term this node leads in, once its own entry is applied.
    leading_term: Option<u64>,
    /// When the sessions of brokers not heard from in this term are taken to have started.
    sessions_since: Instant,
}

/// How often the task checks sessions.
const TICK: Duration = Duration::from_millis(100);

impl ControllerTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.settings.leader_imbalance_check_interval.max(TICK);
        let mut rebalance = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rebalancing = self.settings.auto_leader_rebalance_enable;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                command = rx.recv() => match command {
                    Some(c) => self.handle(c).await,
                    None => return,
                },
                _ = tick.tick() => {
                    self.check_sessions().await;
                    self.check_streams().await;
                }
                _ = rebalance.tick(), if rebalancing => self.rebalance_leaders().await,
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Register(r, reply) => {
                let _ = reply.send(self.register(r).await);
            }
            Command::Heartbeat(beat, reply) => {
                let _ = reply.send(self.heartbeat(beat).await);
            }
            Command::AlterPartition(r, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    match decisions::alter_partition(&image, &r)? {
                        (state, None) => Ok((state, image.offset)),
                        (state, Some(record)) => {
                            let offset = self.propose(vec![record]).await?;
                            Ok((state, offset))
                        }
                    }
                }
                .await;
                let _ = reply.send(result);
            }
            Command::AllocateProducerIds {
                broker_id,
                broker_epoch,
                reply,
            } => {
                let result = async {
                    let image = self.ready().await?;
                    let (first, record) =
                        decisions::allocate_producer_ids(&image, broker_id, broker_epoch)?;
                    self.propose(vec![record]).await?;
                    Ok((first, decisions::PRODUCER_ID_BLOCK_SIZE))
                }
                .await;
                let _ = reply.send(result);
            }
            Command::CreateTopics(topics, validate_only, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    let mut created = BTreeSet::new();
                    let mut random = |n: usize| fastrand::usize(..n.max(1));
                    let outcomes = topics
                        .iter()
                        .map(|t| {
                            let r = decisions::create_topic(&image, t, &created, &mut random);
                            if r.is_ok() {
                                created.insert(t.name.clone());
                            }
                            r
                        })
                        .collect();
                    Ok(self.commit_outcomes(outcomes, validate_only).await)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::DeleteTopics(topics, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    let mut seen = BTreeSet::new();
                    let outcomes = topics
                        .iter()
                        .map(|t| {
                            let (topic, record) =
                                decisions::delete_topic(&image, t, &self.settings)?;
                            if !seen.insert(topic.id) {
                                return Err(MetadataError::InvalidRequest(
                                    "Duplicate topic in the request.".into(),
                                ));
                            }
                            Ok((topic, vec![record]))
                        })
                        .collect();
                    Ok(self.commit_outcomes(outcomes, false).await)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::CreatePartitions(requests, validate_only, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    let mut random = |n: usize| fastrand::usize(..n.max(1));
                    let outcomes = requests
                        .iter()
                        .map(|r| decisions::create_partitions(&image, r, &mut random))
                        .collect();
                    Ok(self.commit_outcomes(outcomes, validate_only).await)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::AlterTopicConfigs(changes, validate_only, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    let outcomes = changes
                        .iter()
                        .map(|c| {
                            decisions::alter_topic_configs(&image, c).map(|(t, r)| (t, vec![r]))
                        })
                        .collect();
                    Ok(self.commit_outcomes(outcomes, validate_only).await)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::ElectLeaders(election, partitions, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    let (results, records) =
                        decisions::elect_leaders(&image, election, partitions.as_deref());
                    Ok(self.commit_partition_results(results, records).await)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::AlterReassignments(reassignments, reply) => {
                let result = async {
                    let image = self.ready().await?;
                    let (results, records) = decisions::alter_partition_reassignments(
                        &image,
                        &reassignments,
                        &self.settings,
                    );
                    Ok(self.commit_partition_results(results, records).await)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::StreamOpened {
                broker_id,
                broker_epoch,
            } => self.streams.opened(broker_id, broker_epoch),
            Command::StreamClosed {
                broker_id,
                broker_epoch,
                at,
            } => {
                self.streams.closed(broker_id, broker_epoch, at);
                // Fence at once if the grace has passed already (the task was busy).
                self.check_streams().await;
            }
            Command::OpenStreams(broker_id, reply) => {
                let _ = reply.send(Ok(self.streams.open_streams(broker_id)));
            }
        }
    }

    /// Proposes `records` (the changes behind the successful `results`) as one entry; if that
    /// fails, every successful result fails with the same error.
    async fn commit_partition_results(
        &mut self,
        results: Vec<PartitionResult>,
        records: Vec<MetadataRecord>,
    ) -> PartitionResults {
        if records.is_empty() {
            return (results, -1);
        }
        match self.propose(records).await {
            Ok(offset) => (results, offset),
            Err(e) => (
                results
                    .into_iter()
                    .map(|r| PartitionResult {
                        result: r.result.and(Err(e.clone())),
                        ..r
                    })
                    .collect(),
                -1,
            ),
        }
    }

    /// Proposes the records of every successful outcome in one entry; if that fails, every
    /// outcome fails with the same error.
    async fn commit_outcomes(
        &mut self,
        outcomes: Vec<Result<(TopicImage, Vec<MetadataRecord>), MetadataError>>,
        validate_only: bool,
    ) -> TopicResults {
        let records: Vec<MetadataRecord> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .flat_map(|(_, r)| r.iter().cloned())
            .collect();
        let results = outcomes.into_iter().map(|o| o.map(|(t, _)| t));
        if validate_only || records.is_empty() {
            return (results.collect(), -1);
        }
        match self.propose(records).await {
            Ok(offset) => (results.collect(), offset),
            Err(e) => (results.map(|r| r.and(Err(e.clone()))).collect(), -1),
        }
    }

    async fn register(&mut self, r: BrokerRegistration) -> Result<i64, MetadataError> {
        let image = self.ready().await?;
        let session_alive = self
            .sessions
            .get(&r.broker_id)
            .is_some_and(|t| t.elapsed() < self.timings.session_timeout);
        let broker_id = r.broker_id;
        let records = decisions::register_broker(&image, &r, session_alive, &self.settings)?;
        let epoch = self.propose(records).await?;
        self.sessions.insert(broker_id, Instant::now());
        // A new registration starts outside any controlled shutdown.
        self.shutdown_offsets.remove(&broker_id);
        tracing::debug!("broker {broker_id} registered with broker epoch {epoch}");
        Ok(epoch)
    }

    async fn heartbeat(&mut self, beat: Heartbeat) -> Result<HeartbeatReply, MetadataError> {
        let broker_id = beat.broker_id;
        // Every voter notes the heartbeat, leader or not (brokers send it to all voters), so a
        // new controller starts with the sessions as they are.
        let seen = self.feed.image();
        if seen
            .brokers
            .get(&broker_id)
            .is_some_and(|b| b.epoch <= beat.broker_epoch)
        {
            self.sessions.insert(broker_id, Instant::now());
            self.metadata_offsets
                .insert(broker_id, beat.metadata_offset);
        }
        let image = self.ready().await?;
        decisions::check_broker_epoch(&image, broker_id, beat.broker_epoch)?;
        self.sessions.insert(broker_id, Instant::now());
        self.metadata_offsets
            .insert(broker_id, beat.metadata_offset);
        let is_caught_up = beat.metadata_offset >= beat.broker_epoch;
        if beat.want_shut_down {
            return self
                .controlled_shutdown(image, broker_id, is_caught_up)
                .await;
        }
        let mut is_fenced = image.brokers.get(&broker_id).is_none_or(|b| b.fenced);
        if is_fenced && is_caught_up {
            // Empty for a registration in controlled shutdown: it stays fenced.
            let records = decisions::unfence_broker(&image, broker_id, &self.settings);
            if !records.is_empty() {
                self.propose(records).await?;
                is_fenced = false;
            }
        }
        Ok(HeartbeatReply {
            is_caught_up,
            is_fenced,
            controller_epoch: image.controller_epoch,
            should_shut_down: false,
        })
    }

    /// A heartbeat asking to shut down (module doc): moves the broker's leaderships away, and
    /// once that is done and seen by the other live brokers, fences it and lets it stop.
    async fn controlled_shutdown(
        &mut self,
        image: Arc<MetadataImage>,
        broker_id: i32,
        is_caught_up: bool,
    ) -> Result<HeartbeatReply, MetadataError> {
        let reply = |should_shut_down: bool| HeartbeatReply {
            is_caught_up,
            is_fenced: should_shut_down,
            controller_epoch: image.controller_epoch,
            should_shut_down,
        };
        if image.brokers.get(&broker_id).is_none_or(|b| b.fenced) {
            // A fenced broker leads nothing: it may stop at once.
            return Ok(reply(true));
        }
        let records = decisions::controlled_shutdown(&image, broker_id, &self.settings);
        if !records.is_empty() {
            let moved = records.len();
            let offset = self.propose(records).await?;
            self.shutdown_offsets.insert(broker_id, offset);
            tracing::info!(
                "controlled shutdown of broker {broker_id}: {moved} records move its leaderships"
            );
        }
        let now = self.feed.image();
        let moved_at = *self.shutdown_offsets.entry(broker_id).or_insert(now.offset);
        let seen_by_all = now.live_brokers().filter(|b| b.id != broker_id).all(|b| {
            self.metadata_offsets
                .get(&b.id)
                .is_some_and(|o| *o >= moved_at)
        });
        if !decisions::may_shut_down(&now, broker_id) || !seen_by_all {
            return Ok(reply(false));
        }
        let records = decisions::fence_broker(&now, broker_id, &self.settings);
        self.propose(records).await?;
        self.shutdown_offsets.remove(&broker_id);
        tracing::info!("controlled shutdown of broker {broker_id} complete");
        Ok(reply(true))
    }

    /// Proposes the preferred elections of the automatic leader rebalance (leader only).
    async fn rebalance_leaders(&mut self) {
        let Ok(image) = self.leading_image() else {
            return;
        };
        let records = decisions::rebalance_leaders(&image, &self.settings);
        if records.is_empty() {
            return;
        }
        let moved = records.len();
        match self.propose(records).await {
            Ok(_) => {
                tracing::info!("leader rebalance: preferred replicas lead {moved} partitions again")
            }
            Err(e) => tracing::warn!(error = %e, "leader rebalance failed"),
        }
    }

    /// Fences the brokers whose session expired (leader only).
    async fn check_sessions(&mut self) {
        let Ok(image) = self.leading_image() else {
            return;
        };
        let now = Instant::now();
        let since = self.sessions_since;
        let expired: Vec<i32> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let last = *self.sessions.entry(b.id).or_insert(since);
                now.duration_since(last) > self.timings.session_timeout
            })
            .map(|b| b.id)
            .collect();
        for broker in expired {
            if let Ok(Some(moved)) = self.fence(broker).await {
                tracing::info!(
                    broker,
                    partitions = moved,
                    "broker {broker} fenced: its session expired"
                );
            }
        }
    }

    /// Fences the brokers whose session streams to this voter all closed at least the grace
    /// ago (leader only; module doc).
    async fn check_streams(&mut self) {
        let Ok(image) = self.leading_image() else {
            return;
        };
        let due = self
            .streams
            .due(&image, Instant::now(), self.timings.stream_grace);
        for broker in due {
            // On failure it is tried again on the next tick (if this node still leads).
            if let Ok(moved) = self.fence(broker).await {
                self.streams.acted_on(broker);
                if let Some(moved) = moved {
                    tracing::info!(
                        broker,
                        partitions = moved,
                        "broker {broker} fenced: its connection to the controller closed"
                    );
                }
            }
        }
    }

    /// Fences `broker` if the latest image has it unfenced; returns how many partitions moved
    /// (`None`: it was fenced already), or `Err` when the change did not commit (logged).
    async fn fence(&mut self, broker: i32) -> Result<Option<usize>, ()> {
        let image = self.feed.image();
        if image.brokers.get(&broker).is_none_or(|b| b.fenced) {
            return Ok(None);
        }
        let records = decisions::fence_broker(&image, broker, &self.settings);
        let moved = records.len().saturating_sub(1);
        match self.propose(records).await {
            Ok(_) => Ok(Some(moved)),
            Err(e) => {
                tracing::warn!(broker, error = %e, "fencing a broker failed");
                Err(())
            }
        }
    }

    /// The image, if this node is the active controller now (see the module doc).
    fn leading_image(&mut self) -> Result<Arc<MetadataImage>, MetadataError> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader.map_or(-1, |l| l as i32);
        let image = self.feed.image();
        // By the longest election timeout (twice the shortest) the other voters have elected
        // someone else if they could not hear from this node.
        let lost_quorum = metrics
            .millis_since_quorum_ack
            .is_some_and(|ms| ms > 2 * self.timings.election_timeout.as_millis() as u64);
        if metrics.state != ServerState::Leader
            || leader != self.node_id
            || image.controller_epoch as u64 != metrics.current_term
            || lost_quorum
        {
            if self.leading_term.take().is_some() {
                tracing::info!("node {} is no longer the active controller", self.node_id);
            }
            return Err(MetadataError::NotController {
                leader: if leader == self.node_id { -1 } else { leader },
            });
        }
        if self.leading_term != Some(metrics.current_term) {
            // A new term: brokers this node has not heard from start their session as of one
            // election timeout ago (module doc).
            self.leading_term = Some(metrics.current_term);
            let now = Instant::now();
            self.sessions_since = now
                .checked_sub(self.timings.election_timeout)
                .unwrap_or(now);
            events::log(&[ClusterEvent::ControllerElected {
                node: self.node_id,
                epoch: metrics.current_term as i32,
            }]);
        }
        Ok(image)
    }

    /// Like [`Self::leading_image`], but a leader whose own first entry is not applied yet
    /// waits for it briefly instead of refusing.
    async fn ready(&mut self) -> Result<Arc<MetadataImage>, MetadataError> {
        let deadline = Instant::now() + self.timings.election_timeout;
        loop {
            match self.leading_image() {
                Ok(image) => return Ok(image),
                Err(e) => {
                    let metrics = self.raft.metrics().borrow().clone();
                    let leading = metrics.state == ServerState::Leader;
                    if !leading || Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Appends `records` as one entry and waits until it is committed and applied here; then
    /// logs what they changed, one readable line per event.
    async fn propose(&self, records: Vec<MetadataRecord>) -> Result<i64, MetadataError> {
        let changes = events::from_records(&self.feed.image(), &records);
        let write = self.raft.client_write(RecordBatch(records));
        match tokio::time::timeout(self.timings.write_timeout, write).await {
            Err(_) => Err(MetadataError::Timeout(format!(
                "the metadata change was not committed within {:?}",
                self.timings.write_timeout
            ))),
            Ok(Ok(response)) => {
                events::log(&changes);
                Ok(response.log_id.index as i64)
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(MetadataError::NotController {
                    leader: f.leader_id.map_or(-1, |l| l as i32),
                })
            }
            Ok(Err(e)) => Err(MetadataError::Storage(e.to_string())),
        }
    }
}
