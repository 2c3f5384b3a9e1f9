//! [`LogManager`]: every partition log on this node, across its log dirs (Kafka's `LogManager`).
//!
//! Each log dir holds one directory per partition plus these files:
//!
//! ```text
//! .lock                              held (flock) while a process owns the dir
//! .rivulet_cleanshutdown             present only after a clean shutdown
//! recovery-point-offset-checkpoint   topic partition offset: fsynced up to here
//! log-start-offset-checkpoint        topic partition offset: first offset kept
//! replication-offset-checkpoint      topic partition offset: high watermark
//! cleaner-offset-checkpoint          topic partition offset: first dirty offset (compaction)
//! ```
//!
//! On open, the marker decides whether logs are recovered (scanned from their recovery point)
//! or trusted; it is removed once every log is loaded, so a crash from then on counts as
//! unclean. Deleted partitions are first renamed to `<topic>-<partition>.<id>-delete` so that a
//! crash halfway through a deletion never resurrects them.
//!
//! Thread safety: the manager is shared (`&self` everywhere); each log sits behind its own
//! `RwLock` ([`SharedLog`]) so appends to different partitions never contend, and the map of
//! logs is locked only to look up, insert or remove an entry.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::checkpoint::{
    OffsetCheckpointFile, CLEANER_OFFSET_CHECKPOINT_FILE, LOG_START_OFFSET_CHECKPOINT_FILE,
    RECOVERY_POINT_CHECKPOINT_FILE, REPLICATION_OFFSET_CHECKPOINT_FILE,
};
use crate::error::IoContext;
use crate::partition_log::{LoadParams, PartitionLog};
use crate::{LogConfig, Result, StorageError, TopicPartition};

/// A partition log shared between request handlers: readers share the lock, writers take it.
pub type SharedLog = Arc<RwLock<PartitionLog>>;

/// File present in a log dir only after a clean shutdown.
pub const CLEAN_SHUTDOWN_FILE: &str = ".rivulet_cleanshutdown";
/// Lock file that keeps two processes off one log dir.
pub const LOCK_FILE: &str = ".lock";
const DELETE_SUFFIX: &str = "-delete";
/// The controller's metadata log (Kafka's name), kept in the first log dir: not a partition.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

struct LogDir {
    path: PathBuf,
    _lock: File,
    recovery_points: OffsetCheckpointFile,
    log_start_offsets: OffsetCheckpointFile,
    high_watermarks: OffsetCheckpointFile,
    cleaner_offsets: OffsetCheckpointFile,
}

struct Entry {
    dir: usize,
    log: SharedLog,
}

/// All partition logs of this node.
pub struct LogManager {
    dirs: Vec<LogDir>,
    logs: RwLock<HashMap<TopicPartition, Entry>>,
    threads: usize,
    /// Serialises writers of the cleaner checkpoints (several cleaner threads may finish at
    /// once, and two writers of one checkpoint race on its `.tmp` file).
    cleaner_checkpoint_writes: std::sync::Mutex<()>,
}

impl LogDir {
    /// Creates the dir if needed, takes its lock, and prepares its checkpoint files.
    fn lock(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).at(path)?;
        let lock_path = path.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        lock.try_lock().map_err(|e| {
            StorageError::io(
                &lock_path,
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("log dir is in use by another process: {e}"),
                ),
            )
        })?;
        Ok(LogDir {
            path: path.to_path_buf(),
            _lock: lock,
            recovery_points: OffsetCheckpointFile::new(path.join(RECOVERY_POINT_CHECKPOINT_FILE)),
            log_start_offsets: OffsetCheckpointFile::new(
                path.join(LOG_START_OFFSET_CHECKPOINT_FILE),
            ),
            high_watermarks: OffsetCheckpointFile::new(
                path.join(REPLICATION_OFFSET_CHECKPOINT_FILE),
            ),
            cleaner_offsets: OffsetCheckpointFile::new(path.join(CLEANER_OFFSET_CHECKPOINT_FILE)),
        })
    }
}

/// Applies `f` to every item on up to `threads` scoped threads (file I/O bound work: opening
/// and closing logs); the first error wins.
fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = threads.clamp(1, items.len().max(1));
    let queue = std::sync::Mutex::new(items.into_iter());
    let results = std::sync::Mutex::new(Vec::new());
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(item) = next else { break };
                match f(item) {
                    Ok(r) => results.lock().unwrap_or_else(|e| e.into_inner()).push(r),
                    Err(e) => {
                        failure
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(results.into_inner().unwrap_or_else(|e| e.into_inner())),
    }
}

/// Reads a lock, whether or not a panicking holder poisoned it: the log's own state is
/// consistent between calls, which is all a poisoned guard can tell about.
pub fn read_log(log: &SharedLog) -> std::sync::RwLockReadGuard<'_, PartitionLog> {
    log.read().unwrap_or_else(|e| e.into_inner())
}

/// Write access to a shared log; see [`read_log`].
pub fn write_log(log: &SharedLog) -> std::sync::RwLockWriteGuard<'_, PartitionLog> {
    log.write().unwrap_or_else(|e| e.into_inner())
}

impl LogManager {
    /// Takes ownership of `log_dirs` (creating them), and loads every partition in them with
    /// the config `config_for` gives it, on `threads` threads (Kafka's
    /// `num.recovery.threads.per.data.dir`, here for all dirs together). Fails if another
    /// process holds a dir.
    pub fn open(
        log_dirs: &[PathBuf],
        config_for: impl Fn(&TopicPartition) -> LogConfig + Sync,
        threads: usize,
        now_ms: i64,
    ) -> Result<Self> {
        if log_dirs.is_empty() {
            return Err(StorageError::corrupt_file(".", "no log dir configured"));
        }
        let mut dirs = Vec::new();
        let mut jobs: Vec<(usize, TopicPartition, PathBuf, LoadParams, Option<i64>)> = Vec::new();
        let mut markers = Vec::new();
        for (i, path) in log_dirs.iter().enumerate() {
            let dir = LogDir::lock(path)?;
            let marker = path.join(CLEAN_SHUTDOWN_FILE);
            let clean = marker.exists();
            let recovery_points = dir.recovery_points.read()?;
            let log_starts = dir.log_start_offsets.read()?;
            let hws = dir.high_watermarks.read()?;
            let cleaner_offsets = dir.cleaner_offsets.read()?;
            for entry in std::fs::read_dir(path).at(path)? {
                let entry = entry.at(path)?;
                if !entry.file_type().at(&entry.path())?.is_dir() {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name == METADATA_LOG_DIR {
                    continue;
                }
                if name.ends_with(DELETE_SUFFIX) {
                    tracing::info!(dir = %entry.path().display(), "removing partition marked for deletion");
                    std::fs::remove_dir_all(entry.path()).at(&entry.path())?;
                    continue;
                }
                let Some(tp) = TopicPartition::from_dir_name(name) else {
                    tracing::warn!(dir = %entry.path().display(), "ignoring directory that is not a partition");
                    continue;
                };
                let params = LoadParams {
                    recovery_point: recovery_points.get(&tp).copied().unwrap_or(0),
                    log_start_offset: log_starts.get(&tp).copied().unwrap_or(0),
                    high_watermark: hws.get(&tp).copied().unwrap_or(0),
                    clean_shutdown: clean,
                    now_ms,
                };
                let first_dirty = cleaner_offsets.get(&tp).copied();
                jobs.push((i, tp, entry.path(), params, first_dirty));
            }
            if clean {
                markers.push(marker);
            }
            dirs.push(dir);
        }
        let loaded = parallel_map(jobs, threads, |(i, tp, path, params, first_dirty)| {
            let mut log = PartitionLog::open(&path, tp.clone(), config_for(&tp), params)?;
            log.cleaner_checkpoint = first_dirty;
            Ok((
                tp,
                Entry {
                    dir: i,
                    log: Arc::new(RwLock::new(log)),
                },
            ))
        })?;
        let mut logs = HashMap::new();
        for (tp, entry) in loaded {
            if let Some(previous) = logs.insert(tp.clone(), entry) {
                return Err(StorageError::corrupt_file(
                    &dirs[previous.dir].path,
                    format!("partition {tp} exists in more than one log dir"),
                ));
            }
        }
        // From here on a crash is an unclean shutdown.
        for marker in markers {
            std::fs::remove_file(&marker).at(&marker)?;
        }
        tracing::info!(
            partitions = logs.len(),
            dirs = dirs.len(),
            "log manager started"
        );
        Ok(LogManager {
            dirs,
            logs: RwLock::new(logs),
            threads: threads.max(1),
            cleaner_checkpoint_writes: std::sync::Mutex::new(()),
        })
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Entry>> {
        self.logs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Entry>> {
        self.logs.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The log of `tp`, if this node has it.
    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        self.map().get(tp).map(|e| Arc::clone(&e.log))
    }

    /// Every partition this node has.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.map().keys().cloned().collect()
    }

    /// The log of `tp`, created empty (in the log dir with the fewest partitions) if absent.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<SharedLog> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut map = self.map_mut();
        if let Some(e) = map.get(tp) {
            return Ok(Arc::clone(&e.log));
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for e in map.values() {
            counts[e.dir] += 1;
        }
        let dir = (0..self.dirs.len()).min_by_key(|&i| counts[i]).unwrap_or(0);
        let path = self.dirs[dir].path.join(tp.dir_name());
        let log = PartitionLog::open(
            &path,
            tp.clone(),
            config,
            LoadParams {
                clean_shutdown: true,
                now_ms,
                ..LoadParams::default()
            },
        )?;
        let shared = Arc::new(RwLock::new(log));
        map.insert(
            tp.clone(),
            Entry {
                dir,
                log: Arc::clone(&shared),
            },
        );
        tracing::info!(partition = %tp, dir = %self.dirs[dir].path.display(), "created log");
        Ok(shared)
    }

    /// Deletes the log of `tp` and its files. Readers holding the log keep their open files.
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(entry) = self.map_mut().remove(tp) else {
            return Ok(false);
        };
        let dir = {
            let mut log = write_log(&entry.log);
            // A clean in progress must not swap files into the doomed directory.
            log.generation += 1;
            log.dir().to_path_buf()
        };
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let doomed = dir.with_file_name(format!("{}.{unique:x}{DELETE_SUFFIX}", tp.dir_name()));
        std::fs::rename(&dir, &doomed).at(&dir)?;
        std::fs::remove_dir_all(&doomed).at(&doomed)?;
        tracing::info!(partition = %tp, "deleted log");
        Ok(true)
    }

    /// Every log with the index of its log dir.
    pub(crate) fn snapshot(&self) -> Vec<(usize, SharedLog)> {
        self.map()
            .values()
            .map(|e| (e.dir, Arc::clone(&e.log)))
            .collect()
    }

    /// Writes the recovery-point, log-start-offset and high-watermark checkpoint files of every
    /// log dir (Kafka does this every `log.flush.offset.checkpoint.interval.ms`).
    pub fn checkpoint(&self) -> Result<()> {
        type Offsets = BTreeMap<TopicPartition, i64>;
        let mut per_dir: Vec<(Offsets, Offsets, Offsets)> =
            (0..self.dirs.len()).map(|_| Default::default()).collect();
        for (dir, log) in self.snapshot() {
            let log = read_log(&log);
            let tp = log.topic_partition().clone();
            let (rp, ls, hw) = &mut per_dir[dir];
            rp.insert(tp.clone(), log.recovery_point());
            ls.insert(tp.clone(), log.log_start_offset());
            hw.insert(tp, log.high_watermark());
        }
        for (dir, (rp, ls, hw)) in self.dirs.iter().zip(per_dir) {
            dir.recovery_points.write(&rp)?;
            dir.log_start_offsets.write(&ls)?;
            dir.high_watermarks.write(&hw)?;
        }
        Ok(())
    }

    /// Writes each log dir's `cleaner-offset-checkpoint`: the log cleaner's first dirty offset
    /// of every log it has cleaned (the cleaner calls this after each clean).
    pub fn write_cleaner_checkpoints(&self) -> Result<()> {
        let _one_writer = self
            .cleaner_checkpoint_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut per_dir: Vec<BTreeMap<TopicPartition, i64>> =
            vec![BTreeMap::new(); self.dirs.len()];
        for (dir, log) in self.snapshot() {
            let log = read_log(&log);
            if let Some(offset) = log.cleaner_checkpoint {
                per_dir[dir].insert(log.topic_partition().clone(), offset);
            }
        }
        for (dir, offsets) in self.dirs.iter().zip(per_dir) {
            dir.cleaner_offsets.write(&offsets)?;
        }
        Ok(())
    }

    /// Flushes logs whose `flush.ms` has passed.
    pub fn flush_dirty(&self, now_ms: i64) -> Result<()> {
        for (_, log) in self.snapshot() {
            write_log(&log).maybe_flush(now_ms)?;
        }
        Ok(())
    }

    /// One retention pass over every log (Kafka's `log.retention.check.interval.ms` task):
    /// deletes expired segments, forgets expired producers, releases idle index maps. Returns
    /// the number of segments deleted.
    pub fn cleanup(&self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        for (_, log) in self.snapshot() {
            let mut log = write_log(&log);
            deleted += log.delete_old_segments(now_ms)?;
            log.remove_expired_producers(now_ms);
            log.release_inactive_indexes()?;
        }
        Ok(deleted)
    }

    /// Closes every log (flushed, indexes trimmed, producer snapshots written), writes the
    /// checkpoints, then the clean-shutdown marker: the next start skips recovery.
    pub fn shutdown(self, now_ms: i64) -> Result<()> {
        self.checkpoint()?;
        let logs: Vec<Entry> = self.map_mut().drain().map(|(_, e)| e).collect();
        let final_offsets = parallel_map(logs, self.threads, |e| {
            let log = Arc::try_unwrap(e.log)
                .map_err(|_| {
                    StorageError::corrupt_file(
                        &self.dirs[e.dir].path,
                        "a log is still in use at shutdown",
                    )
                })?
                .into_inner()
                .unwrap_or_else(|p| p.into_inner());
            let tp = log.topic_partition().clone();
            let leo = log.log_end_offset();
            log.close(now_ms)?;
            Ok((e.dir, tp, leo))
        })?;
        for (i, dir) in self.dirs.iter().enumerate() {
            let mut rp = dir.recovery_points.read()?;
            for (d, tp, leo) in &final_offsets {
                if *d == i {
                    rp.insert(tp.clone(), *leo);
                }
            }
            dir.recovery_points.write(&rp)?;
            let marker = dir.path.join(CLEAN_SHUTDOWN_FILE);
            crate::checkpoint::write_atomically(&marker, b"")?;
        }
        tracing::info!("log manager shut down cleanly");
        Ok(())
    }

    /// Paths of the log dirs.
    pub fn log_dirs(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{batch_of, BatchSpec};

    fn fill(m: &LogManager, tp: &TopicPartition, batches: usize) {
        let log = m.get_or_create(tp, LogConfig::default(), 0).unwrap();
        let mut log = write_log(&log);
        for _ in 0..batches {
            log.append_as_leader(&batch_of(&BatchSpec::default(), 3, 50), 0, 0)
                .unwrap();
        }
        let leo = log.log_end_offset();
        log.set_high_watermark(leo);
    }

    #[test]
    fn restart_after_clean_shutdown_restores_offsets() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
        let a = TopicPartition::new("a", 0);
        let b = TopicPartition::new("b-x", 3);
        {
            let m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
            fill(&m, &a, 10);
            fill(&m, &b, 4);
            m.shutdown(0).unwrap();
        }
        assert!(paths.iter().all(|p| p.join(CLEAN_SHUTDOWN_FILE).exists()));
        let m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
        assert!(paths.iter().all(|p| !p.join(CLEAN_SHUTDOWN_FILE).exists()));
        let log = m.get(&a).unwrap();
        let log = read_log(&log);
        assert_eq!(
            (
                log.log_end_offset(),
                log.high_watermark(),
                log.recovery_point()
            ),
            (30, 30, 30)
        );
        assert_eq!(read_log(&m.get(&b).unwrap()).log_end_offset(), 12);
        let mut sorted = m.partitions();
        sorted.sort();
        assert_eq!(sorted, vec![a, b]);
    }

    #[test]
    fn a_second_process_cannot_take_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().to_path_buf()];
        let _m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
        assert!(LogManager::open(&paths, |_| LogConfig::default(), 2, 0).is_err());
    }

    #[test]
    fn checkpoints_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().to_path_buf()];
        let tp = TopicPartition::new("c", 1);
        {
            let m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
            fill(&m, &tp, 5);
            m.checkpoint().unwrap();
            // No shutdown: the process dies here.
        }
        let m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
        let shared = m.get(&tp).unwrap();
        let log = read_log(&shared);
        assert_eq!((log.log_end_offset(), log.high_watermark()), (15, 15));
        assert_eq!(log.recovery_point(), 15, "recovered and fsynced to the LEO");
    }

    #[test]
    fn deleted_partitions_stay_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().to_path_buf()];
        let tp = TopicPartition::new("gone", 0);
        {
            let m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
            fill(&m, &tp, 2);
            assert!(m.delete(&tp).unwrap());
            assert!(m.get(&tp).is_none());
            // A crash between rename and removal leaves a -delete dir behind.
            std::fs::create_dir(dir.path().join("gone-0.1f-delete")).unwrap();
        }
        let m = LogManager::open(&paths, |_| LogConfig::default(), 2, 0).unwrap();
        assert!(m.partitions().is_empty());
        assert!(!dir.path().join("gone-0.1f-delete").exists());
    }
}
