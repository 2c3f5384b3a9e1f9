//! `rivulet dump-log`: what is in segment and index files, in the spirit of Kafka's
//! `kafka-dump-log.sh --files`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rivulet_storage::batch::RecordBatch;
use rivulet_storage::offset_index::OffsetIndex;
use rivulet_storage::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use rivulet_storage::time_index::TimeIndex;

/// Arguments of `rivulet dump-log`.
#[derive(clap::Args)]
pub struct Args {
    /// Segment files (`.log`, `.index`, `.timeindex`) to print.
    #[arg(long = "files", num_args = 1.., required = true, value_delimiter = ',')]
    files: Vec<PathBuf>,
}

/// Prints each file.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.files {
        writeln!(out, "Dumping {}", path.display())?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name", path.display()))?;
        if !path.is_file() {
            bail!("{} is not a file", path.display());
        }
        if let Some(base) = segment::parse_file_name(name, LOG_SUFFIX) {
            dump_segment(&mut out, path, base)?;
        } else if let Some(base) = segment::parse_file_name(name, INDEX_SUFFIX) {
            let index = OffsetIndex::open(path, base, 0, false)?;
            for i in 0..index.entries() {
                let e = index.entry(i);
                writeln!(out, "offset: {} position: {}", e.offset, e.position)?;
            }
        } else if let Some(base) = segment::parse_file_name(name, TIME_INDEX_SUFFIX) {
            let index = TimeIndex::open(path, base, 0, false)?;
            for i in 0..index.entries() {
                let e = index.entry(i);
                writeln!(out, "timestamp: {} offset: {}", e.timestamp, e.offset)?;
            }
        } else {
            bail!(
                "{} is not a segment file (<20-digit offset>.log/.index/.timeindex)",
                path.display()
            );
        }
    }
    Ok(())
}

fn dump_segment(out: &mut impl Write, path: &Path, base: i64) -> anyhow::Result<()> {
    writeln!(out, "Starting offset: {base}")?;
    let mut write_err = None;
    let stopped = segment::scan_file(path, |position, b: &RecordBatch<'_>| {
        if write_err.is_some() {
            return;
        }
        let codec = b
            .compression()
            .map_or_else(|e| e.to_string(), |c| format!("{c:?}").to_lowercase());
        let line = writeln!(
            out,
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
             producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} position: {} \
             {:?}: {} size: {} magic: 2 compresscodec: {} crc: {} isvalid: {}",
            b.base_offset(),
            b.last_offset(),
            b.records_count(),
            b.base_sequence(),
            b.last_sequence(),
            b.producer_id(),
            b.producer_epoch(),
            b.partition_leader_epoch(),
            b.is_transactional(),
            b.is_control(),
            position,
            b.timestamp_type(),
            b.max_timestamp(),
            b.size(),
            codec,
            b.crc(),
            b.verify_crc().is_ok(),
        );
        if let Err(e) = line {
            write_err = Some(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if let Some((position, reason)) = stopped {
        writeln!(out, "Found invalid data at position {position}: {reason}")?;
    }
    Ok(())
}
