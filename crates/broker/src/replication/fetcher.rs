//! The follower side: [`ReplicaFetcherManager`] keeps one [`ReplicaFetcher`] task per leader
//! broker, each fetching every partition this broker follows from that leader over one gRPC
//! stream.
//!
//! A partition joins a fetcher in the *truncating* state: the fetcher asks the leader for the
//! end offset of the partition's latest local leader epoch and truncates what diverged (Kafka's
//! `AbstractFetcherThread` rules, repeated until the epochs agree), then fetches from its log
//! end. Each response's batches are appended as they came and the leader's high watermark
//! adopted. Errors back one partition off (`replica.fetch.backoff.ms`) without stopping the
//! others; a broken stream is reopened after the same back-off. A partition added while a
//! request is parked on the leader (a long poll of up to `replica.fetch.wait.max.ms`) abandons
//! that request on a fresh stream of the same connection, so it starts at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::TopicPartition;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use super::proto::replica_service_client::ReplicaServiceClient;
use super::proto::{
    EpochQuery, FetchPartition, FetchRequest, FetchResponse, FetchedPartition,
    OffsetForLeaderEpochRequest,
};
use crate::metadata::MetadataStore;
use crate::now_ms;
use crate::partition::{Partition, ReplicaError};

/// How followers fetch (`replica.fetch.*`).
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// This broker's id.
    pub node_id: i32,
    /// The cluster id every request carries.
    pub cluster_id: String,
    /// The listener leaders are reached on (`inter.broker.listener.name`).
    pub listener: String,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait_ms: i32,
    /// `replica.fetch.min.bytes`.
    pub min_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub max_bytes: i32,
    /// `replica.fetch.max.bytes`.
    pub partition_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub backoff: Duration,
}

/// A partition this broker follows, as the metadata says.
#[derive(Clone)]
pub struct FollowTarget {
    /// The local replica.
    pub partition: Arc<Partition>,
    /// The leader broker.
    pub leader: i32,
    /// The leader epoch to fetch under.
    pub leader_epoch: i32,
}

enum Command {
    Add(TopicPartition, FollowTarget),
    Remove(TopicPartition),
}

struct Shared {
    config: FetcherConfig,
    store: Arc<dyn MetadataStore>,
    shutdown: CancellationToken,
}

/// The fetcher tasks of this broker, one per leader broker.
pub struct ReplicaFetcherManager {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    runtime: tokio::runtime::Handle,
    state: Mutex<ManagerState>,
}

#[derive(Default)]
struct ManagerState {
    fetchers: HashMap<i32, mpsc::UnboundedSender<Command>>,
    assigned: HashMap<TopicPartition, (i32, i32)>,
}

impl ReplicaFetcherManager {
    /// A manager whose fetchers run on `tasks` (on the current runtime) until `shutdown`.
    pub fn new(
        config: FetcherConfig,
        store: Arc<dyn MetadataStore>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        ReplicaFetcherManager {
            shared: Arc::new(Shared {
                config,
                store,
                shutdown,
            }),
            tasks,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(ManagerState::default()),
        }
    }

    /// Stops fetching `removed` (partitions about to be deleted).
    pub fn remove(&self, removed: &[TopicPartition]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for tp in removed {
            if let Some((leader, _)) = st.assigned.remove(tp) {
                if let Some(tx) = st.fetchers.get(&leader) {
                    let _ = tx.send(Command::Remove(tp.clone()));
                }
            }
        }
    }

    /// Makes the fetchers follow exactly `wanted`: partitions whose leader or leader epoch
    /// changed move (and truncate again), others are left alone.
    pub fn update(&self, wanted: HashMap<TopicPartition, FollowTarget>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<(TopicPartition, i32)> = st
            .assigned
            .iter()
            .filter(|(tp, (leader, epoch))| {
                wanted
                    .get(*tp)
                    .is_none_or(|t| t.leader != *leader || t.leader_epoch != *epoch)
            })
            .map(|(tp, (leader, _))| (tp.clone(), *leader))
            .collect();
        for (tp, leader) in stale {
            st.assigned.remove(&tp);
            if let Some(tx) = st.fetchers.get(&leader) {
                let _ = tx.send(Command::Remove(tp));
            }
        }
        for (tp, target) in wanted {
            if st.assigned.contains_key(&tp) || target.leader < 0 {
                continue;
            }
            st.assigned
                .insert(tp.clone(), (target.leader, target.leader_epoch));
            let leader = target.leader;
            let mut command = Command::Add(tp, target);
            if let Some(tx) = st.fetchers.get(&leader) {
                match tx.send(command) {
                    Ok(()) => continue,
                    Err(mpsc::error::SendError(c)) => command = c,
                }
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(command);
            st.fetchers.insert(leader, tx);
            let fetcher = ReplicaFetcher {
                leader,
                shared: Arc::clone(&self.shared),
                partitions: HashMap::new(),
                commands: rx,
                session: None,
            };
            self.tasks.spawn_on(fetcher.run(), &self.runtime);
        }
        // Fetchers left without partitions stop when their channel closes.
        let busy: std::collections::HashSet<i32> =
            st.assigned.values().map(|(leader, _)| *leader).collect();
        st.fetchers.retain(|leader, _| busy.contains(leader));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchState {
    Truncating,
    Fetching,
    Delayed(Instant),
}

struct Followed {
    target: FollowTarget,
    state: FetchState,
}

struct Session {
    client: ReplicaServiceClient<Channel>,
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
}

/// Applies a manager's command to a fetcher's partitions: an added partition truncates first.
fn apply_command(partitions: &mut HashMap<TopicPartition, Followed>, command: Command) {
    match command {
        Command::Add(tp, target) => {
            partitions.insert(
                tp,
                Followed {
                    target,
                    state: FetchState::Truncating,
                },
            );
        }
        Command::Remove(tp) => {
            partitions.remove(&tp);
        }
    }
}

/// Opens a `Fetch` stream on `client`'s connection.
async fn open_stream(
    client: &mut ReplicaServiceClient<Channel>,
) -> Result<(mpsc::Sender<FetchRequest>, Streaming<FetchResponse>), RoundError> {
    let (requests, rx) = mpsc::channel(1);
    let responses = client.fetch(ReceiverStream::new(rx)).await?.into_inner();
    Ok((requests, responses))
}

/// Fetches every partition this broker follows from one leader broker.
pub struct ReplicaFetcher {
    leader: i32,
    shared: Arc<Shared>,
    partitions: HashMap<TopicPartition, Followed>,
    commands: mpsc::UnboundedReceiver<Command>,
    session: Option<Session>,
}

/// Why a round with the leader failed as a whole.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("leader {0} has no endpoint on the inter-broker listener")]
    NoEndpoint(i32),
    #[error("cannot reach the leader: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the leader answered: {0}")]
    Status(#[from] tonic::Status),
    #[error("the fetch stream closed")]
    Closed,
    #[error("the leader refused the fetch: {0:?}")]
    Refused(Option<ResponseError>),
    #[error("no answer in time")]
    TimedOut,
}

impl ReplicaFetcher {
    fn apply(&mut self, command: Command) {
        apply_command(&mut self.partitions, command);
    }

    /// Applies waiting commands; false when the manager dropped this fetcher.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(c) => self.apply(c),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Waits until `until`, a command, or shutdown; false when it is time to stop.
    async fn pause(&mut self, until: Instant) -> bool {
        tokio::select! {
            _ = self.shared.shutdown.cancelled() => false,
            c = self.commands.recv() => match c {
                Some(c) => { self.apply(c); true }
                None => false,
            },
            _ = tokio::time::sleep_until(until) => true,
        }
    }

    async fn run(mut self) {
        tracing::debug!(leader = self.leader, "replica fetcher started");
        loop {
            if self.shared.shutdown.is_cancelled() || !self.drain_commands() {
                break;
            }
            if self.partitions.is_empty() {
                if !self.pause(Instant::now() + Duration::from_secs(3600)).await {
                    break;
                }
                continue;
            }
            if let Err(e) = self.round().await {
                tracing::info!(leader = self.leader, error = %e, "replica fetch failed; backing off");
                self.session = None;
                let until = Instant::now() + self.shared.config.backoff;
                while Instant::now() < until {
                    if !self.pause(until).await {
                        return;
                    }
                }
            }
        }
        tracing::debug!(leader = self.leader, "replica fetcher stopped");
    }

    async fn connect(&self) -> Result<Session, RoundError> {
        let image = self.shared.store.image();
        let (host, port) = image
            .brokers
            .get(&self.leader)
            .and_then(|b| b.endpoints.get(&self.shared.config.listener))
            .cloned()
            .ok_or(RoundError::NoEndpoint(self.leader))?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let channel = Endpoint::from_shared(format!("http://{host}:{port}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .connect()
            .await?;
        let limit = (self.shared.config.max_bytes.max(0) as usize)
            .max(self.shared.config.partition_max_bytes.max(0) as usize)
            .saturating_mul(2)
            .max(16 << 20);
        let mut client = ReplicaServiceClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let (requests, responses) = open_stream(&mut client).await?;
        Ok(Session {
            client,
            requests,
            responses,
        })
    }

    /// One step: truncate what needs it, then one fetch of every partition ready to fetch.
    async fn round(&mut self) -> Result<(), RoundError> {
        if self.session.is_none() {
            self.session = Some(self.connect().await?);
        }
        self.truncate().await?;
        let now = Instant::now();
        for f in self.partitions.values_mut() {
            if matches!(f.state, FetchState::Delayed(t) if t <= now) {
                f.state = FetchState::Truncating;
            }
        }
        let ready: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, f)| f.state == FetchState::Fetching)
            .map(|(tp, _)| tp.clone())
            .collect();
        if ready.is_empty() {
            let next = self
                .partitions
                .values()
                .filter_map(|f| match f.state {
                    FetchState::Delayed(t) => Some(t),
                    _ => None,
                })
                .min()
                .unwrap_or(now);
            if next > now {
                self.pause(next).await;
            }
            return Ok(());
        }
        let c = &self.shared.config;
        let mut partitions = Vec::with_capacity(ready.len());
        for tp in &ready {
            let Some(f) = self.partitions.get(tp) else {
                continue;
            };
            let o = f.target.partition.offsets();
            partitions.push(FetchPartition {
                topic: tp.topic.clone(),
                topic_id: f.target.partition.topic_id().to_string(),
                partition: tp.partition,
                current_leader_epoch: f.target.leader_epoch,
                fetch_offset: o.log_end_offset,
                log_start_offset: o.log_start_offset,
                max_bytes: c.partition_max_bytes,
            });
        }
        let request = FetchRequest {
            cluster_id: c.cluster_id.clone(),
            replica_id: c.node_id,
            replica_epoch: self.shared.store.broker_epoch(),
            max_wait_ms: c.max_wait_ms,
            min_bytes: c.min_bytes,
            max_bytes: c.max_bytes,
            partitions,
        };
        let answer_within =
            Duration::from_millis(c.max_wait_ms.max(0) as u64) + Duration::from_secs(30);
        let session = self.session.as_mut().ok_or(RoundError::Closed)?;
        session
            .requests
            .send(request)
            .await
            .map_err(|_| RoundError::Closed)?;
        let deadline = Instant::now() + answer_within;
        let response = loop {
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => return Ok(()),
                r = tokio::time::timeout_at(deadline, session.responses.message()) => break r,
                Some(command) = self.commands.recv() => {
                    let added = matches!(command, Command::Add(..));
                    apply_command(&mut self.partitions, command);
                    if added {
                        // A new partition must not wait for this request's long poll (up to
                        // replica.fetch.wait.max.ms, which acks=all would wait out): abandon
                        // it on a fresh stream of the same connection and fetch again.
                        let (requests, responses) = open_stream(&mut session.client).await?;
                        session.requests = requests;
                        session.responses = responses;
                        return Ok(());
                    }
                }
            }
        };
        let response = response
            .map_err(|_| RoundError::TimedOut)??
            .ok_or(RoundError::Closed)?;
        if response.error_code != 0 {
            return Err(RoundError::Refused(ResponseError::try_from_code(
                response.error_code as i16,
            )));
        }
        for fetched in response.partitions {
            self.process(fetched).await;
        }
        Ok(())
    }

    /// Applies one partition's answer.
    async fn process(&mut self, fetched: FetchedPartition) {
        let tp = TopicPartition::new(fetched.topic.clone(), fetched.partition);
        let backoff = self.shared.config.backoff;
        let Some(f) = self.partitions.get_mut(&tp) else {
            return;
        };
        let error = ResponseError::try_from_code(fetched.error_code as i16);
        let partition = Arc::clone(&f.target.partition);
        match error {
            None if fetched.error_code == 0 => {
                let appended = partition
                    .append_as_follower(
                        fetched.records,
                        f.target.leader_epoch,
                        fetched.high_watermark,
                        now_ms(),
                    )
                    .await;
                match appended {
                    Ok(_) => {}
                    Err(ReplicaError::Kafka(_)) => {
                        // The replica changed role or epoch: the manager moves it.
                        f.state = FetchState::Delayed(Instant::now() + backoff);
                    }
                    Err(e) => {
                        tracing::warn!(partition = %tp, error = %e, "appending replicated batches failed; truncating again");
                        f.state = FetchState::Truncating;
                    }
                }
            }
            Some(ResponseError::OffsetOutOfRange) => {
                let local = partition.offsets();
                if local.log_end_offset < fetched.log_start_offset {
                    tracing::info!(partition = %tp, leader_log_start = fetched.log_start_offset, "behind the leader's log start; restarting the log there");
                    if let Err(e) = partition
                        .truncate_fully_and_start_at(fetched.log_start_offset, now_ms())
                        .await
                    {
                        tracing::warn!(partition = %tp, error = %e, "resetting the log failed");
                        f.state = FetchState::Delayed(Instant::now() + backoff);
                    }
                } else {
                    f.state = FetchState::Truncating;
                }
            }
            _ => {
                tracing::debug!(partition = %tp, error = ?error, code = fetched.error_code, "replica fetch error; backing off");
                f.state = FetchState::Delayed(Instant::now() + retry_after(error, backoff));
            }
        }
    }

    /// Truncates every partition in the truncating state to where its log agrees with the
    /// leader's.
    async fn truncate(&mut self) -> Result<(), RoundError> {
        let truncating: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, f)| f.state == FetchState::Truncating)
            .map(|(tp, _)| tp.clone())
            .collect();
        if truncating.is_empty() {
            return Ok(());
        }
        let mut queries = Vec::new();
        for tp in &truncating {
            let Some(f) = self.partitions.get_mut(tp) else {
                continue;
            };
            match f.target.partition.latest_epoch() {
                Some(epoch) => queries.push(EpochQuery {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    current_leader_epoch: f.target.leader_epoch,
                    leader_epoch: epoch,
                }),
                None => {
                    // No epoch history (an empty log): keep what the high watermark covers.
                    let hw = f.target.partition.offsets().high_watermark;
                    if let Err(e) = f.target.partition.truncate_to(hw, now_ms()).await {
                        tracing::warn!(partition = %tp, error = %e, "truncation failed");
                    }
                    f.state = FetchState::Fetching;
                }
            }
        }
        if queries.is_empty() {
            return Ok(());
        }
        let session = self.session.as_mut().ok_or(RoundError::Closed)?;
        let request = OffsetForLeaderEpochRequest {
            cluster_id: self.shared.config.cluster_id.clone(),
            replica_id: self.shared.config.node_id,
            partitions: queries,
        };
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            session.client.offset_for_leader_epoch(request),
        )
        .await
        .map_err(|_| RoundError::TimedOut)??
        .into_inner();
        let backoff = self.shared.config.backoff;
        for end in answer.partitions {
            let tp = TopicPartition::new(end.topic.clone(), end.partition);
            let Some(f) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if end.error_code != 0 {
                tracing::debug!(partition = %tp, code = end.error_code, "epoch query refused; backing off");
                let error = ResponseError::try_from_code(end.error_code as i16);
                f.state = FetchState::Delayed(Instant::now() + retry_after(error, backoff));
                continue;
            }
            let partition = Arc::clone(&f.target.partition);
            let (offset, done) = truncation_point(&partition, end.leader_epoch, end.end_offset);
            match partition.truncate_to(offset, now_ms()).await {
                Ok(leo) => {
                    tracing::debug!(partition = %tp, log_end_offset = leo, "truncated to the leader's history");
                    f.state = if done {
                        FetchState::Fetching
                    } else {
                        FetchState::Truncating
                    };
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "truncation failed");
                    f.state = FetchState::Delayed(Instant::now() + backoff);
                }
            }
        }
        Ok(())
    }
}

/// The longest a partition waits after `error` when the leader is only behind on metadata.
const METADATA_LAG_RETRY: Duration = Duration::from_millis(50);

/// How long a partition backs off after `error` from its leader. The metadata named that broker
/// leader under this epoch, so an unknown partition, "not the leader" or an unknown (newer)
/// epoch mean the leader has not applied the same metadata yet, which takes milliseconds:
/// retrying after a full `replica.fetch.backoff.ms` would stall acks=all writes on a new topic
/// or leader for that long. Other errors wait the whole back-off.
fn retry_after(error: Option<ResponseError>, backoff: Duration) -> Duration {
    match error {
        Some(
            ResponseError::UnknownTopicOrPartition
            | ResponseError::UnknownTopicId
            | ResponseError::NotLeaderOrFollower
            | ResponseError::UnknownLeaderEpoch,
        ) => backoff.min(METADATA_LAG_RETRY),
        _ => backoff,
    }
}

/// Where a follower truncates given the leader's answer `(leader_epoch, end_offset)` for its
/// latest epoch, and whether that settles it (Kafka's `getOffsetTruncationState`):
/// - no answer (-1): keep what the high watermark covers;
/// - the leader knows the epoch: keep up to the smaller of both ends of that epoch;
/// - the leader's answer is an older epoch the follower lacks: cut back to the follower's own end
///   of that older epoch and ask again.
fn truncation_point(partition: &Partition, leader_epoch: i32, end_offset: i64) -> (i64, bool) {
    let local = partition.offsets();
    if leader_epoch < 0 || end_offset < 0 {
        return (local.high_watermark, true);
    }
    let (own_epoch, own_end) = partition.end_offset_for_epoch(leader_epoch);
    if own_epoch == leader_epoch {
        (end_offset.min(own_end).min(local.log_end_offset), true)
    } else {
        (own_end.max(0).min(local.log_end_offset), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_storage::batch::testing::{build_batch, BatchSpec};
    use rivulet_storage::log_manager::write_log;
    use rivulet_storage::{LogConfig, LogManager};

    /// A follower replica whose log holds `runs` of (leader epoch, record count), with its
    /// high watermark at `hw`.
    fn follower(dir: &std::path::Path, runs: &[(i32, usize)], hw: i64) -> Partition {
        let logs = LogManager::open(&[dir.to_path_buf()], |_| LogConfig::default(), 1, 0)
            .expect("log manager");
        let tp = TopicPartition::new("t", 0);
        let log = logs
            .get_or_create(&tp, LogConfig::default(), 0)
            .expect("log");
        {
            let mut l = write_log(&log);
            for (epoch, n) in runs {
                let values: Vec<&[u8]> = vec![b"x"; *n];
                l.append_as_leader(&build_batch(&BatchSpec::default(), &values), *epoch, 0)
                    .expect("append");
            }
            l.set_high_watermark(hw);
        }
        Partition::new(tp, uuid::Uuid::nil(), log, 1)
    }

    #[test]
    fn truncation_follows_kafkas_rules() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Epoch 0 wrote offsets 0-2, epoch 1 offsets 3-4.
        let p = follower(dir.path(), &[(0, 3), (1, 2)], 2);
        // The leader's epoch 1 ended at 4: drop offset 4 only.
        assert_eq!(truncation_point(&p, 1, 4), (4, true));
        // The leader's epoch 1 went further: keep everything.
        assert_eq!(truncation_point(&p, 1, 9), (5, true));
        // The leader never had epoch 1; its epoch 0 ends at 3 (as here) or earlier.
        assert_eq!(truncation_point(&p, 0, 3), (3, true));
        assert_eq!(truncation_point(&p, 0, 2), (2, true));
        // No answer: keep what the high watermark covers.
        assert_eq!(truncation_point(&p, -1, -1), (2, true));
    }

    #[test]
    fn a_leader_behind_on_metadata_is_retried_soon() {
        let backoff = Duration::from_secs(1);
        for e in [
            ResponseError::UnknownTopicOrPartition,
            ResponseError::NotLeaderOrFollower,
            ResponseError::UnknownLeaderEpoch,
        ] {
            assert_eq!(retry_after(Some(e), backoff), METADATA_LAG_RETRY, "{e:?}");
        }
        assert_eq!(
            retry_after(Some(ResponseError::FencedLeaderEpoch), backoff),
            backoff
        );
        assert_eq!(
            retry_after(None, Duration::from_millis(10)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn an_epoch_the_follower_lacks_cuts_back_and_asks_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Epoch 0 wrote offsets 0-2, epoch 2 offsets 3-4; the leader names epoch 1, which
        // this replica never saw: cut to where its epoch 0 ends, then ask about epoch 0.
        let p = follower(dir.path(), &[(0, 3), (2, 2)], 0);
        assert_eq!(truncation_point(&p, 1, 4), (3, false));
    }
}
