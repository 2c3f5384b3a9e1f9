//! [`ReplicaManager`]: the partitions this broker hosts, kept in step with the metadata image.
//!
//! It owns the [`LogManager`]. Each new metadata image is applied by creating the logs of
//! partitions assigned to this broker, deleting those of removed topics, and updating leader
//! epochs. Background timers write the offset checkpoints, apply retention and flush by time
//! (Kafka's `log.flush.offset.checkpoint.interval.ms`, `log.retention.check.interval.ms`,
//! `flush.ms`). Log file work runs on blocking threads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rivulet_storage::{LogConfig, LogManager, StorageError, TopicPartition};
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::metadata::{MetadataImage, TopicImage};
use crate::now_ms;
use crate::partition::Partition;

/// The partitions hosted here.
pub struct ReplicaManager {
    node_id: i32,
    config: Arc<BrokerConfig>,
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Serialises [`ReplicaManager::apply`]: admin handlers and the metadata follower both call
    /// it, and two concurrent applies could open one partition twice.
    applying: std::sync::Mutex<()>,
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

    /// The log config of `topic`: broker defaults plus the topic's overrides.
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        match self.config.topic_config(&topic.configs) {
            Ok(c) => c.log,
            Err(e) => {
                tracing::warn!(topic = %topic.name, error = %e, "invalid stored topic config; using broker defaults");
                self.config.log_defaults.log.clone()
            }
        }
    }

    /// Brings the hosted partitions in line with `image` (blocking: creates and deletes logs).
    pub fn apply(&self, image: &MetadataImage) -> Result<(), StorageError> {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: HashMap<TopicPartition, (&TopicImage, i32, bool)> = HashMap::new();
        for topic in image.topics.values() {
            for p in &topic.partitions {
                if p.replicas.contains(&self.node_id) {
                    // A leader that is the only in-sync replica owns the high watermark alone.
                    let sole_leader = p.leader == self.node_id && p.isr == [self.node_id];
                    wanted.insert(
                        TopicPartition::new(topic.name.clone(), p.index),
                        (topic, p.leader_epoch, sole_leader),
                    );
                }
            }
        }
        // Partitions no longer wanted, or whose topic was deleted and re-created under a new id.
        let doomed: Vec<TopicPartition> = self
            .map()
            .iter()
            .filter(|(tp, p)| wanted.get(*tp).is_none_or(|(t, _, _)| t.id != p.topic_id()))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in doomed {
            if let Some(p) = self.map_mut().remove(&tp) {
                drop(p);
                self.logs.delete(&tp)?;
            }
        }
        // A topic's config is parsed once per apply, not once per partition.
        let mut configs: HashMap<&str, LogConfig> = HashMap::new();
        for (tp, (topic, epoch, sole_leader)) in wanted {
            let config = configs
                .entry(topic.name.as_str())
                .or_insert_with(|| self.log_config(topic))
                .clone();
            let partition = match self.get(&tp) {
                Some(p) => {
                    p.set_leader_epoch(epoch);
                    rivulet_storage::log_manager::write_log(p.log()).set_config(config);
                    p
                }
                None => {
                    // A log found on disk at start-up was opened with the broker defaults:
                    // give it the topic's config either way.
                    let log = self.logs.get_or_create(&tp, config.clone(), now_ms())?;
                    rivulet_storage::log_manager::write_log(&log).set_config(config);
                    let p = Arc::new(Partition::new(tp.clone(), topic.id, log, epoch));
                    self.map_mut().insert(tp, Arc::clone(&p));
                    p
                }
            };
            if sole_leader {
                // As Kafka's makeLeader: with no other replica in sync, everything in the log
                // is committed (the checkpointed HW may be stale after a crash).
                partition.advance_high_watermark_to_log_end();
            }
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

    /// Starts the checkpoint, retention and flush timers; they stop with `shutdown`.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        let every = |ms: i64| Duration::from_millis(ms.clamp(10, 24 * 3600 * 1000) as u64);
        let jobs: [(Duration, &'static str); 3] = [
            (
                every(i64::from(
                    self.config.log_flush_offset_checkpoint_interval_ms,
                )),
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
