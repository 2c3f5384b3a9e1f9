//! [`ReplicaManager`]: the partitions this broker hosts, kept in step with the metadata image.
//!
//! It owns the [`LogManager`]. Each new metadata image is applied by creating the logs of
//! partitions assigned to this broker, deleting those of removed topics, and setting each
//! replica's role: leader or follower, the followed partitions going to the replica fetchers.
//! Background timers write the offset checkpoints, apply retention and flush by time (Kafka's
//! `log.flush.offset.checkpoint.interval.ms` and `replica.high.watermark.checkpoint.interval.ms`,
//! `log.retention.check.interval.ms`, `flush.ms`). Log file work runs on blocking threads.
//!
//! The log cleaner runs as `log.cleaner.threads` loops, each cleaning the filthiest due
//! compacted log on a blocking thread, one round after another, and sleeping
//! `log.cleaner.backoff.ms` when no log is due. Leaders and followers clean their own copies,
//! as in Kafka. A round polls the shutdown token between batches, so shutdown does not wait
//! for a long clean.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rivulet_storage::cleaner::{CleanerConfig, LogCleaner};
use rivulet_storage::{LogConfig, LogManager, StorageError, TopicPartition};
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::metadata::{MetadataImage, PartitionImage, TopicImage};
use crate::now_ms;
use crate::partition::{Partition, RoleChange};
use crate::replication::fetcher::{FollowTarget, ReplicaFetcherManager};
use crate::replication::isr_manager::IsrManager;

/// The replication parts, set once the broker has joined the cluster.
struct Replication {
    fetchers: ReplicaFetcherManager,
    isr: IsrManager,
}

/// The partitions hosted here.
pub struct ReplicaManager {
    node_id: i32,
    config: Arc<BrokerConfig>,
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Serialises [`ReplicaManager::apply`]: admin handlers and the metadata follower both call
    /// it, and two concurrent applies could open one partition twice.
    applying: std::sync::Mutex<()>,
    replication: std::sync::OnceLock<Replication>,
}

impl ReplicaManager {
    /// Opens every log in `log.dirs` (recovering them if the last shutdown was not clean).
    pub fn open(config: Arc<BrokerConfig>) -> Result<Self, StorageError> {
        let threads =
            config.num_recovery_threads_per_data_dir.max(1) as usize * config.log_dirs.len();
        let defaults = config.log_defaults.log.clone();
        let logs = LogManager::open(
            &config.log_dirs,
            move |_| defaults.clone(),
            threads,
            now_ms(),
        )?;
        Ok(ReplicaManager {
            node_id: config.node_id,
            config,
            logs: Arc::new(logs),
            partitions: RwLock::new(HashMap::new()),
            applying: std::sync::Mutex::new(()),
            replication: std::sync::OnceLock::new(),
        })
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        self.partitions.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The hosted partition `tp`, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.map().get(tp).cloned()
    }

    /// The log config and `min.insync.replicas` of `topic`: broker defaults plus the topic's
    /// overrides.
    pub fn topic_settings(&self, topic: &TopicImage) -> (LogConfig, i32) {
        match self.config.topic_config(&topic.configs) {
            Ok(c) => (c.log, c.min_insync_replicas),
            Err(e) => {
                tracing::warn!(topic = %topic.name, error = %e, "invalid stored topic config; using broker defaults");
                (
                    self.config.log_defaults.log.clone(),
                    self.config.min_insync_replicas,
                )
            }
        }
    }

    /// Starts replication: from now on, [`ReplicaManager::apply`] hands the partitions this
    /// broker follows to the fetchers.
    pub fn start_replication(&self, fetchers: ReplicaFetcherManager, isr: IsrManager) {
        if self.replication.set(Replication { fetchers, isr }).is_err() {
            tracing::warn!("replication already started");
        }
    }

    /// The ISR manager, once replication has started.
    pub fn isr_manager(&self) -> Option<&IsrManager> {
        self.replication.get().map(|r| &r.isr)
    }

    /// The partitions this broker leads.
    pub fn leaders(&self) -> Vec<Arc<Partition>> {
        self.map()
            .values()
            .filter(|p| p.is_leader())
            .cloned()
            .collect()
    }

    /// Brings the hosted partitions in line with `image` (blocking: creates and deletes logs):
    /// opens and deletes logs, makes each replica leader or follower, and points the fetchers
    /// at the leaders of the partitions followed here.
    pub fn apply(&self, image: &MetadataImage) -> Result<(), StorageError> {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: HashMap<TopicPartition, (&TopicImage, &PartitionImage)> = HashMap::new();
        for topic in image.topics.values() {
            for p in &topic.partitions {
                if p.replicas.contains(&self.node_id) {
                    wanted.insert(TopicPartition::new(topic.name.clone(), p.index), (topic, p));
                }
            }
        }
        // Partitions no longer wanted, or whose topic was deleted and re-created under a new id.
        let doomed: Vec<TopicPartition> = self
            .map()
            .iter()
            .filter(|(tp, p)| wanted.get(*tp).is_none_or(|(t, _)| t.id != p.topic_id()))
            .map(|(tp, _)| tp.clone())
            .collect();
        if let (false, Some(r)) = (doomed.is_empty(), self.replication.get()) {
            // Stop fetching them before their logs go.
            r.fetchers.remove(&doomed);
        }
        for tp in doomed {
            if let Some(p) = self.map_mut().remove(&tp) {
                drop(p);
                self.logs.delete(&tp)?;
            }
        }
        // A topic's config is parsed once per apply, not once per partition.
        let mut settings: HashMap<&str, (LogConfig, i32)> = HashMap::new();
        let mut follow = HashMap::new();
        let now = now_ms();
        for (tp, (topic, image_p)) in wanted {
            let (config, min_insync) = settings
                .entry(topic.name.as_str())
                .or_insert_with(|| self.topic_settings(topic))
                .clone();
            let partition = match self.get(&tp) {
                Some(p) => {
                    rivulet_storage::log_manager::write_log(p.log()).set_config(config);
                    p
                }
                None => {
                    // A log found on disk at start-up was opened with the broker defaults:
                    // give it the topic's config either way.
                    let log = self.logs.get_or_create(&tp, config.clone(), now)?;
                    rivulet_storage::log_manager::write_log(&log).set_config(config);
                    let p = Arc::new(Partition::new(tp.clone(), topic.id, log, self.node_id));
                    self.map_mut().insert(tp.clone(), Arc::clone(&p));
                    p
                }
            };
            partition.set_min_insync_replicas(min_insync);
            if let RoleChange::Follower {
                leader,
                leader_epoch,
                ..
            } = partition.apply_metadata(image_p, now)?
            {
                let leader_live = image.brokers.get(&leader).is_some_and(|b| !b.fenced);
                if leader >= 0 && leader_live {
                    follow.insert(
                        tp,
                        FollowTarget {
                            partition,
                            leader,
                            leader_epoch,
                        },
                    );
                }
            }
        }
        if let Some(r) = self.replication.get() {
            r.fetchers.update(follow);
        }
        // Logs found on disk that no topic claims (a topic deleted while this node was down).
        for tp in self.logs.partitions() {
            if self.get(&tp).is_none() {
                tracing::info!(partition = %tp, "deleting log of a partition no topic claims");
                self.logs.delete(&tp)?;
            }
        }
        Ok(())
    }

    /// Starts the log cleaner threads (`log.cleaner.enable`, `log.cleaner.threads`); they stop
    /// with `shutdown`.
    fn spawn_cleaners(
        self: &Arc<Self>,
        shutdown: &CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        let threads = usize::try_from(self.config.log_cleaner_threads).unwrap_or(0);
        if !self.config.log_cleaner_enable || threads == 0 {
            tracing::info!("log cleaner disabled");
            return;
        }
        let cleaner = Arc::new(LogCleaner::new(CleanerConfig {
            threads,
            dedupe_buffer_size: usize::try_from(self.config.log_cleaner_dedupe_buffer_size)
                .unwrap_or(usize::MAX),
        }));
        let backoff = Duration::from_millis(self.config.log_cleaner_backoff_ms.max(0) as u64);
        for thread in 0..threads {
            let logs = Arc::clone(&self.logs);
            let cleaner = Arc::clone(&cleaner);
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                loop {
                    let (logs, cleaner, stop) =
                        (Arc::clone(&logs), Arc::clone(&cleaner), shutdown.clone());
                    let round = tokio::task::spawn_blocking(move || {
                        cleaner.clean_once(&logs, now_ms(), &|| stop.is_cancelled())
                    })
                    .await;
                    let cleaned = match round {
                        // An abandoned clean (the log changed under it) backs off too.
                        Ok(Ok(cleaned)) => cleaned.is_some_and(|c| !c.stats.abandoned),
                        // Logged, and the log set aside, by the cleaner.
                        Ok(Err(_)) => false,
                        Err(e) => {
                            tracing::error!(thread, error = %e, "log cleaner task failed");
                            false
                        }
                    };
                    let pause = if cleaned { Duration::ZERO } else { backoff };
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            });
        }
    }

    /// Starts the checkpoint, retention, flush and log cleaner timers; they stop with
    /// `shutdown`.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        self.spawn_cleaners(&shutdown, tasks);
        let every = |ms: i64| Duration::from_millis(ms.clamp(10, 24 * 3600 * 1000) as u64);
        let jobs: [(Duration, &'static str); 3] = [
            // One timer writes both the recovery points and the high watermarks, as often as
            // the more frequent of the two settings asks.
            (
                every(
                    i64::from(self.config.log_flush_offset_checkpoint_interval_ms)
                        .min(self.config.replica_high_watermark_checkpoint_interval_ms),
                ),
                "checkpoint",
            ),
            (
                every(self.config.log_retention_check_interval_ms),
                "retention",
            ),
            (Duration::from_secs(1), "flush"),
        ];
        for (period, job) in jobs {
            let this = Arc::clone(self);
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = ticker.tick() => {}
                    }
                    let logs = Arc::clone(&this.logs);
                    let result = tokio::task::spawn_blocking(move || match job {
                        "checkpoint" => logs.checkpoint().map(|()| 0),
                        "retention" => logs.cleanup(now_ms()),
                        _ => logs.flush_dirty(now_ms()).map(|()| 0),
                    })
                    .await;
                    match result {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!(job, error = %e, "log maintenance failed"),
                        Err(e) => tracing::error!(job, error = %e, "log maintenance task failed"),
                    }
                }
            });
        }
    }

    /// Closes every log cleanly (flushed, checkpointed, clean-shutdown marker). Call once no
    /// request holds a partition any more.
    pub fn shutdown(self) -> Result<(), StorageError> {
        self.map_mut().clear();
        match Arc::try_unwrap(self.logs) {
            Ok(logs) => logs.shutdown(now_ms()),
            Err(logs) => {
                tracing::warn!("logs still in use at shutdown; writing checkpoints only");
                logs.checkpoint()
            }
        }
    }
}
