//! `rivulet storage-demo`: the partition log end to end, as a smoke test anyone can run.
//!
//! Appends `--records` records as producer-sized batches through the same path the broker uses
//! (validate, assign offsets in place, append), shuts down cleanly or not, reopens the log
//! (running recovery when the shutdown was not clean), reads everything back checking every CRC,
//! and prints throughput.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use rivulet_storage::batch::testing::{batch_of, BatchSpec};
use rivulet_storage::batch::BatchIter;
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, TopicPartition};

/// Arguments of `rivulet storage-demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Log directory; the partition `demo-0` is created inside (and replaced if present).
    #[arg(long, default_value = "./data/storage-demo")]
    dir: PathBuf,
    /// Records to append.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 16)]
    batch_records: usize,
    /// Reopen without a clean shutdown, as after kill -9, so recovery scans the log.
    #[arg(long)]
    crash: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs the demo.
pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.batch_records > 0 && args.records > 0,
        "records and batch-records must be positive"
    );
    let dir = args.dir.join("demo-0");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let tp = TopicPartition::new("demo", 0);
    let config = LogConfig::default();
    let params = LoadParams {
        clean_shutdown: true,
        now_ms: now_ms(),
        ..LoadParams::default()
    };
    let mut log = PartitionLog::open(&dir, tp.clone(), config.clone(), params)?;
    let template = batch_of(&BatchSpec::default(), args.batch_records, args.record_size);
    let batch = template.clone();
    let batches = args.records.div_ceil(args.batch_records as u64);
    let started = Instant::now();
    for _ in 0..batches {
        log.append_as_leader(&batch, 0, now_ms())?;
    }
    log.flush(now_ms())?;
    let append_secs = started.elapsed().as_secs_f64();
    let leo = log.log_end_offset();
    let bytes = batches * template.len() as u64;
    report("append+fsync", leo as u64, bytes, append_secs);

    if args.crash {
        drop(log);
    } else {
        log.close(now_ms())?;
    }
    let started = Instant::now();
    let params = LoadParams {
        clean_shutdown: !args.crash,
        recovery_point: if args.crash { 0 } else { leo },
        now_ms: now_ms(),
        ..LoadParams::default()
    };
    let mut log = PartitionLog::open(&dir, tp, config, params)?;
    println!(
        "reopened ({}) in {:.3} s: log end offset {}, {} segments",
        if args.crash { "recovered" } else { "clean" },
        started.elapsed().as_secs_f64(),
        log.log_end_offset(),
        log.segment_count()
    );
    ensure!(
        log.log_end_offset() == leo,
        "log end offset changed across the restart"
    );
    log.set_high_watermark(leo);

    let started = Instant::now();
    let (mut offset, mut read_bytes) = (0i64, 0u64);
    while offset < leo {
        let slice = log
            .read(offset, 1 << 20, leo, true)?
            .context("read returned nothing below the high watermark")?;
        let data = slice.read_to_vec()?;
        for b in BatchIter::new(&data, usize::MAX) {
            let b = b?;
            b.verify_crc()?;
            ensure!(b.base_offset() == offset, "gap at offset {offset}");
            offset = b.next_offset();
        }
        read_bytes += data.len() as u64;
    }
    report(
        "read+verify",
        leo as u64,
        read_bytes,
        started.elapsed().as_secs_f64(),
    );
    log.close(now_ms())?;
    Ok(())
}

fn report(what: &str, records: u64, bytes: u64, secs: f64) {
    println!(
        "{what:>13}: {records} records, {:.1} MB in {secs:.3} s = {:.1} MB/s, {:.0} records/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        records as f64 / secs
    );
}
