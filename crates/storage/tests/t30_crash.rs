//! Crash safety: a child process appends to a partition log and is killed with SIGKILL at a
//! random moment, many times over; after each kill the log is recovered and checked: every
//! batch the child reported flushed is there, offsets are contiguous, nothing corrupt is served,
//! and nothing a previous recovery validated is ever lost.
//!
//! The child is this test binary itself, re-run on one test ([`crash_child_process`]) with
//! [`CHILD_DIR_ENV`] set. Knobs: `RIVULET_CRASH_ROUNDS` (default 30) and `RIVULET_CRASH_SEED`
//! (printed by each run, to replay one).

mod recovery_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use recovery_support::{append_values, verify_log};
use rivulet_storage::checkpoint::write_atomically;
use rivulet_storage::segment::LOG_SUFFIX;
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, TopicPartition};

/// Set in the child's environment: the directory holding the partition and its recovery point.
const CHILD_DIR_ENV: &str = "RIVULET_CRASH_CHILD_DIR";
/// The leader epoch the child appends with (the round number).
const CHILD_EPOCH_ENV: &str = "RIVULET_CRASH_CHILD_EPOCH";
/// Seed of the child's batch sizes and flush cadence.
const CHILD_SEED_ENV: &str = "RIVULET_CRASH_CHILD_SEED";
const ROUNDS_ENV: &str = "RIVULET_CRASH_ROUNDS";
const SEED_ENV: &str = "RIVULET_CRASH_SEED";
const DEFAULT_ROUNDS: u32 = 30;
/// Name of the test function the child runs.
const CHILD_TEST: &str = "crash_child_process";
/// What the child prints after each flush, followed by the LEO it flushed.
const FLUSHED: &str = "flushed ";
/// File (next to the partition directory) where the child keeps its recovery point.
const RECOVERY_POINT_FILE: &str = "recovery-point";
/// The child stops by itself after this long, so it cannot outlive a parent that died.
const CHILD_MAX_RUN: Duration = Duration::from_secs(10);
/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;
/// How long the parent lets a child run before killing it.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 20..=300;
/// Above this the parent drops the older half of the segments, so every round checks a bounded
/// amount of data however many rounds run.
const MAX_LOG_BYTES: u64 = 32 * 1024 * 1024;

fn config() -> LogConfig {
    LogConfig {
        // Small enough to roll every few batches; still above the largest batch the child
        // writes in practice (200 records of ~1 KB on average): a larger one would be refused.
        segment_bytes: 256 * 1024,
        index_interval_bytes: 4096,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn partition() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn partition_dir(root: &Path) -> PathBuf {
    root.join(partition().dir_name())
}

fn read_recovery_point(root: &Path) -> i64 {
    match std::fs::read_to_string(root.join(RECOVERY_POINT_FILE)) {
        Ok(text) => text.trim().parse().expect("a recovery point"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("reading the recovery point: {e}"),
    }
}

/// Opens the log as after a crash, from the recovery point the child last recorded.
fn open_after_crash(root: &Path) -> PartitionLog {
    let params = LoadParams {
        recovery_point: read_recovery_point(root),
        clean_shutdown: false,
        now_ms: now_ms(),
        ..LoadParams::default()
    };
    PartitionLog::open(&partition_dir(root), partition(), config(), params)
        .expect("open the log after a crash")
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} does not parse")),
    )
}

/// The child's side: appends batches of 1..=200 records of 10..=2000 bytes, flushes every 1..=4
/// batches, records the recovery point and reports each flush, until killed. In a normal test
/// run (no [`CHILD_DIR_ENV`]) it does nothing.
#[test]
fn crash_child_process() {
    let Some(root) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let epoch: i32 = env_parse(CHILD_EPOCH_ENV).expect("child epoch");
    let mut rng = fastrand::Rng::with_seed(env_parse(CHILD_SEED_ENV).expect("child seed"));
    let mut log = open_after_crash(&root);
    let mut stdout = std::io::stdout().lock();
    let deadline = Instant::now() + CHILD_MAX_RUN;
    while Instant::now() < deadline {
        for _ in 0..rng.usize(1..=4) {
            let lens: Vec<usize> = (0..rng.usize(1..=200))
                .map(|_| rng.usize(10..=2000))
                .collect();
            append_values(&mut log, &lens, epoch, now_ms());
        }
        log.flush(now_ms()).expect("flush");
        let leo = log.log_end_offset();
        write_atomically(&root.join(RECOVERY_POINT_FILE), leo.to_string().as_bytes())
            .expect("record the recovery point");
        writeln!(stdout, "{FLUSHED}{leo}")
            .and_then(|()| stdout.flush())
            .expect("report a flush");
    }
}

/// A running child, killed and reaped when dropped (so a failing parent leaves none behind).
struct ChildGuard {
    child: Child,
    /// The highest LEO the child reported flushed.
    flushed: Option<JoinHandle<Option<i64>>>,
    stderr: Option<JoinHandle<String>>,
}

impl ChildGuard {
    fn spawn(root: &Path, epoch: i32, seed: u64) -> ChildGuard {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, root)
            .env(CHILD_EPOCH_ENV, epoch.to_string())
            .env(CHILD_SEED_ENV, seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut stderr = child.stderr.take().expect("child stderr");
        let flushed = std::thread::spawn(move || {
            // libtest may print its own text on the same line, before ours.
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.split_once(FLUSHED)?.1.trim().parse::<i64>().ok())
                .max()
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        ChildGuard {
            child,
            flushed: Some(flushed),
            stderr: Some(stderr),
        }
    }

    /// Kills the child (SIGKILL) and returns how it ended, the last flush it reported and what
    /// it wrote to stderr.
    fn kill(mut self) -> (ExitStatus, Option<i64>, String) {
        let _ = self.child.kill(); // It may have died already; `wait` tells.
        let status = self.child.wait().expect("wait for the child");
        let flushed = self.flushed.take().and_then(|h| h.join().ok()).flatten();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, flushed, stderr)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What survived so far, carried from one round to the next.
#[derive(Default)]
struct History {
    /// The highest LEO any child reported flushed.
    flushed: i64,
    /// `(base offset, CRC)` of every batch the last recovery validated.
    batches: Vec<(i64, u32)>,
    batches_verified: u64,
    max_leo: i64,
    /// Rounds in which recovery cut off a batch the kill tore in half.
    recoveries_that_cut: u32,
    /// Rounds after which the oldest segments were deleted.
    trims: u32,
}

/// Recovers the log after round `round`'s child was killed and checks it against `history`.
fn recover_and_check(root: &Path, round: i32, history: &mut History) {
    let bytes_before = segment_file_bytes(root);
    let mut log = open_after_crash(root);
    let leo = log.log_end_offset();
    history.recoveries_that_cut += u32::from(log.size_in_bytes() < bytes_before);
    assert!(
        leo >= history.flushed,
        "round {round}: LEO {leo} is below the flushed offset {}",
        history.flushed
    );
    assert_eq!(
        log.recovery_point(),
        leo,
        "round {round}: recovery point after recovery"
    );
    let mut batches = Vec::with_capacity(history.batches.len() + 64);
    let summary = verify_log(&log, |b| {
        let id = (b.base_offset(), b.crc());
        if let Some(&before) = history.batches.get(batches.len()) {
            assert_eq!(
                id,
                before,
                "round {round}: batch #{} changed since the last recovery",
                batches.len()
            );
        }
        assert!(
            b.partition_leader_epoch() <= round,
            "round {round}: batch at {} from a future epoch",
            id.0
        );
        assert_eq!(
            log.epoch_for_offset(b.base_offset()),
            Some(b.partition_leader_epoch()),
            "round {round}: epoch cache disagrees with the batch at {}",
            id.0
        );
        batches.push(id);
    });
    assert!(
        batches.len() >= history.batches.len(),
        "round {round}: {} batches validated by the last recovery are gone",
        history.batches.len() - batches.len()
    );
    for entry in log.leader_epoch_cache().entries() {
        assert!(
            entry.start_offset < leo.max(1),
            "round {round}: epoch entry {entry:?} is past the LEO {leo}"
        );
    }
    history.batches = batches;
    history.batches_verified += summary.batches;
    history.max_leo = history.max_leo.max(leo);
    if log.size_in_bytes() > MAX_LOG_BYTES {
        let bases = log.segment_base_offsets();
        let new_start = bases[bases.len() / 2];
        log.set_high_watermark(leo);
        log.increment_log_start_offset(new_start, now_ms())
            .expect("delete old segments");
        assert_eq!(log.log_start_offset(), new_start);
        history.batches.retain(|&(base, _)| base >= new_start);
        history.trims += 1;
    }
    log.close(now_ms()).expect("close");
}

/// Total size of the partition's `.log` files.
fn segment_file_bytes(root: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(partition_dir(root)) else {
        return 0;
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name()
                .to_str()?
                .ends_with(LOG_SUFFIX)
                .then_some(e.metadata().ok()?.len())
        })
        .sum()
}

#[test]
fn appends_survive_sigkill_at_random_points() {
    let rounds: u32 = env_parse(ROUNDS_ENV).unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = env_parse(SEED_ENV).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test: {rounds} rounds, {SEED_ENV}={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let started = Instant::now();
    let mut history = History::default();
    let mut killed = 0;
    for round in 0..rounds as i32 {
        let child = ChildGuard::spawn(root, round, rng.u64(..));
        std::thread::sleep(Duration::from_millis(rng.u64(KILL_AFTER_MS)));
        let (status, flushed, stderr) = child.kill();
        assert!(
            status.signal() == Some(SIGKILL) || status.success(),
            "round {round}: the child failed on its own ({status}):\n{stderr}"
        );
        killed += u32::from(status.signal() == Some(SIGKILL));
        history.flushed = history.flushed.max(flushed.unwrap_or(0));
        recover_and_check(root, round, &mut history);
    }
    assert!(
        history.flushed > 0,
        "no child got as far as a flush: the test checked nothing"
    );
    println!(
        "crash test: {rounds} rounds ({killed} killed, {} recoveries cut a tail, {} trims), \
         {} batches verified, last flush reported {}, max LEO {}, final log {} batches / {} bytes, {:.1?}",
        history.recoveries_that_cut,
        history.trims,
        history.batches_verified,
        history.flushed,
        history.max_leo,
        history.batches.len(),
        segment_file_bytes(root),
        started.elapsed()
    );
}

/// Batches written while `segment.bytes` was larger survive recovery after it is lowered
/// (append refuses a batch larger than a segment, as Kafka does; recovery must not).
#[test]
fn batches_larger_than_a_lowered_segment_bytes_survive_recovery() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = partition_dir(tmp.path());
    let written_with = config();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..config()
    };
    let mut log =
        PartitionLog::open(&dir, partition(), written_with, LoadParams::default()).expect("open");
    append_values(&mut log, &[300; 5], 0, now_ms());
    let (big, bytes) = append_values(&mut log, &[1000; 100], 0, now_ms());
    assert!(bytes.len() as u64 > config.segment_bytes && bytes.len() <= config.max_message_bytes);
    append_values(&mut log, &[300; 5], 0, now_ms());
    log.flush(now_ms()).expect("flush");
    let (leo, segments) = (log.log_end_offset(), log.segment_base_offsets());
    drop(log); // A crash right after the flush.

    let params = LoadParams {
        recovery_point: big.first_offset,
        clean_shutdown: false,
        now_ms: now_ms(),
        ..LoadParams::default()
    };
    let log = PartitionLog::open(&dir, partition(), config, params).expect("open after a crash");
    assert_eq!(
        (log.log_end_offset(), log.segment_base_offsets()),
        (leo, segments),
        "recovery cut the flushed {}-byte batch at offset {} (segment.bytes {})",
        bytes.len(),
        big.first_offset,
        64 * 1024
    );
    verify_log(&log, |_| {});
}
