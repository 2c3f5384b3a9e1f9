//! Kafka's checkpoint files, and the crash-safe way every small metadata file of a log dir is
//! replaced.
//!
//! This module owns:
//! - [`write_atomically`], which replaces a file so that a crash leaves either the old or the new
//!   content, never a mix;
//! - the shared text layout of Kafka's checkpoint files (crate-internal `write_entries` /
//!   `read_entries`, the one implementation of the header and count handling), used by
//!   [`OffsetCheckpointFile`] here and by the leader-epoch cache ([`crate::leader_epoch_cache`]);
//! - [`OffsetCheckpointFile`], the per-log-dir files mapping partitions to offsets
//!   ([`RECOVERY_POINT_CHECKPOINT_FILE`], [`LOG_START_OFFSET_CHECKPOINT_FILE`],
//!   [`REPLICATION_OFFSET_CHECKPOINT_FILE`], [`CLEANER_OFFSET_CHECKPOINT_FILE`]).
//!
//! # On-disk format
//!
//! Exactly Kafka's, UTF-8 text, every line ending in `\n`:
//!
//! ```text
//! 0                  <- format version
//! 2                  <- number of entry lines that follow
//! orders 0 1234      <- one entry per line, fields separated by a space
//! orders 1 987
//! ```
//!
//! Offset checkpoints have entries `<topic> <partition> <offset>`; the leader-epoch checkpoint has
//! `<epoch> <start_offset>`. As in Kafka, a zero-length file reads as no entries (Kafka creates
//! the file empty before its first write). Anything else that does not follow the layout (unknown
//! version, truncated header, a count that does not match the lines, a line with missing, extra
//! or unparsable fields) is [`StorageError::CorruptFile`]; reading never panics on file content.
//! (Kafka also reads a file holding only the version line as empty; no writer produces one, so
//! here it is a truncated header and corrupt.)
//!
//! # Thread safety
//!
//! Nothing here is synchronised. Two writers of the same path race on `<path>.tmp`; the owner of
//! a file (the log manager for the log-dir checkpoints, the partition for its epoch cache) must
//! serialise its writes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::{Result, StorageError, TopicPartition};

/// Name of the log-dir file holding, per partition, the offset up to which the log is known to
/// be flushed; recovery after an unclean shutdown starts there.
pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";

/// Name of the log-dir file holding each partition's log start offset (moved by retention and
/// DeleteRecords, possibly inside a segment).
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";

/// Name of the log-dir file holding each partition's high watermark.
pub const REPLICATION_OFFSET_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// Name of the log-dir file holding, per compacted partition, the log cleaner's first dirty
/// offset: everything before it was compacted.
pub const CLEANER_OFFSET_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// The only format version of offset checkpoint files, as in Kafka.
const OFFSET_CHECKPOINT_VERSION: i32 = 0;

/// Replaces the content of `path` with `contents`, crash-safely.
///
/// Writes `<path>.tmp`, fsyncs it, renames it over `path`, then fsyncs the parent directory so
/// the rename itself is durable. After a crash at any point, `path` holds either its old content
/// (or does not exist, if it did not) or exactly `contents`; a stale `<path>.tmp` may be left
/// behind and is overwritten by the next write. On error the temporary file is removed when
/// possible.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    if let Err(e) = write_and_sync(&tmp, contents) {
        // Best effort: the error that matters is the one we return.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io(path, e));
    }
    sync_parent_dir(path)
}

/// `<path>.tmp`: the suffix is appended to the whole file name, not substituted for an
/// extension.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Creates (or truncates) `path`, writes `contents` and fsyncs the file.
fn write_and_sync(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = File::create(path).at(path)?;
    file.write_all(contents).at(path)?;
    file.sync_all().at(path)
}

/// Fsyncs the directory containing `path`, making a rename into it durable.
#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Directories cannot be opened and fsynced portably outside Unix; like Kafka, skip it there.
#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> Result<()> {
    Ok(())
}

/// Writes a checkpoint file atomically: the `version` line, the number of entries, then one
/// line per entry (each item's `Display` form, which must not contain a newline).
///
/// This is the single writer of the checkpoint layout; format-specific files only render their
/// entries.
pub(crate) fn write_entries<I>(path: &Path, version: i32, entries: I) -> Result<()>
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    let mut body = String::new();
    let mut count: usize = 0;
    for entry in entries {
        // Writing into a String cannot fail.
        let _ = writeln!(body, "{entry}");
        count += 1;
    }
    let mut contents = format!("{version}\n{count}\n");
    contents.push_str(&body);
    write_atomically(path, contents.as_bytes())
}

/// Reads a checkpoint file written by [`write_entries`], parsing each entry line with `parse`.
///
/// Returns `Ok(None)` if the file does not exist and `Ok(Some(vec![]))` for a zero-length file
/// (Kafka's state before the first write). `parse` returns why a line is malformed; that, and
/// every header problem, becomes [`StorageError::CorruptFile`] naming the file and line.
pub(crate) fn read_entries<T>(
    path: &Path,
    expected_version: i32,
    mut parse: impl FnMut(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    if bytes.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let corrupt = |reason: String| StorageError::corrupt_file(path, reason);
    let text = std::str::from_utf8(&bytes).map_err(|e| corrupt(format!("not valid UTF-8: {e}")))?;
    let mut lines = text.lines();

    let version_line = lines.next().unwrap_or_default();
    let version: i32 = version_line
        .trim()
        .parse()
        .map_err(|_| corrupt(format!("line 1: invalid version {version_line:?}")))?;
    if version != expected_version {
        return Err(corrupt(format!(
            "unsupported version {version}, expected {expected_version}"
        )));
    }

    let count_line = lines
        .next()
        .ok_or_else(|| corrupt("missing entry count line".to_owned()))?;
    let expected_count: usize = count_line
        .trim()
        .parse()
        .map_err(|_| corrupt(format!("line 2: invalid entry count {count_line:?}")))?;

    // Not `with_capacity(expected_count)`: the count comes from disk and may be absurd.
    let mut entries = Vec::new();
    for (index, line) in lines.enumerate() {
        let line_number = index + 3;
        let entry =
            parse(line).map_err(|reason| corrupt(format!("line {line_number}: {reason}")))?;
        entries.push(entry);
    }
    if entries.len() != expected_count {
        return Err(corrupt(format!(
            "header announces {expected_count} entries but the file has {}",
            entries.len()
        )));
    }
    Ok(Some(entries))
}

/// Splits an entry line into exactly `N` whitespace-separated fields.
///
/// Kafka writes single spaces and reads any run of whitespace (`\s+`); so do we.
pub(crate) fn split_fields<const N: usize>(line: &str) -> Result<[&str; N], String> {
    let mut fields = [""; N];
    let mut found = 0;
    for field in line.split_whitespace() {
        if found == N {
            return Err(format!("expected {N} fields, found more in {line:?}"));
        }
        fields[found] = field;
        found += 1;
    }
    if found < N {
        return Err(format!("expected {N} fields, found {found} in {line:?}"));
    }
    Ok(fields)
}

/// Parses one field of an entry line, naming the field in the error.
pub(crate) fn parse_field<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid {what} {value:?}"))
}

/// One of Kafka's per-log-dir offset checkpoint files, mapping each partition of the log dir to
/// an offset (recovery point, log start offset or high watermark, depending on the file).
///
/// The broker reads it at startup and rewrites the whole file periodically; each write is atomic
/// ([`write_atomically`]). Not synchronised: the owner serialises writes.
#[derive(Debug, Clone)]
pub struct OffsetCheckpointFile {
    path: PathBuf,
}

impl OffsetCheckpointFile {
    /// A checkpoint at `path`, usually `<log dir>/<one of the *_CHECKPOINT_FILE names>`. Touches
    /// nothing on disk.
    pub fn new(path: PathBuf) -> Self {
        OffsetCheckpointFile { path }
    }

    /// The file this checkpoint reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `entries`, atomically.
    ///
    /// A topic name that is empty or contains whitespace could not be read back, so it is
    /// rejected (an [`StorageError::Io`] of kind `InvalidInput`) before anything is written.
    /// Kafka topic names never contain either.
    pub fn write(&self, entries: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if let Some(tp) = entries
            .keys()
            .find(|tp| tp.topic.is_empty() || tp.topic.contains(char::is_whitespace))
        {
            return Err(StorageError::io(
                &self.path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "topic name {:?} cannot be written to a checkpoint",
                        tp.topic
                    ),
                ),
            ));
        }
        let lines = entries
            .iter()
            .map(|(tp, offset)| format!("{} {} {offset}", tp.topic, tp.partition));
        write_entries(&self.path, OFFSET_CHECKPOINT_VERSION, lines)
    }

    /// Reads the file: an empty map if it does not exist (a fresh log dir) or is empty.
    ///
    /// A malformed file is [`StorageError::CorruptFile`]. So is a partition listed twice, which
    /// [`OffsetCheckpointFile::write`] never produces (Kafka would keep the last line).
    pub fn read(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        let entries = read_entries(&self.path, OFFSET_CHECKPOINT_VERSION, parse_offset_line)?
            .unwrap_or_default();
        let mut map = BTreeMap::new();
        for (tp, offset) in entries {
            if map.contains_key(&tp) {
                return Err(StorageError::corrupt_file(
                    &self.path,
                    format!("partition {tp} is listed more than once"),
                ));
            }
            map.insert(tp, offset);
        }
        Ok(map)
    }
}

/// Parses `<topic> <partition> <offset>`.
fn parse_offset_line(line: &str) -> Result<(TopicPartition, i64), String> {
    let [topic, partition, offset] = split_fields::<3>(line)?;
    let partition = parse_field(partition, "partition")?;
    let offset = parse_field(offset, "offset")?;
    Ok((TopicPartition::new(topic, partition), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<TopicPartition, i64> {
        BTreeMap::from([
            (TopicPartition::new("orders", 0), 1234),
            (TopicPartition::new("orders", 1), 0),
            (TopicPartition::new("my-topic.v2_x", 17), i64::MAX),
            (TopicPartition::new("__consumer_offsets", 49), -1),
        ])
    }

    fn checkpoint_in(dir: &tempfile::TempDir) -> OffsetCheckpointFile {
        OffsetCheckpointFile::new(dir.path().join(RECOVERY_POINT_CHECKPOINT_FILE))
    }

    fn assert_corrupt(result: Result<BTreeMap<TopicPartition, i64>>, expected_path: &Path) {
        match result {
            Err(StorageError::CorruptFile { path, .. }) => assert_eq!(path, expected_path),
            other => panic!("expected CorruptFile, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        checkpoint.write(&sample()).unwrap();
        assert_eq!(checkpoint.read().unwrap(), sample());
    }

    #[test]
    fn writes_kafkas_exact_format() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        let entries = BTreeMap::from([
            (TopicPartition::new("a", 0), 5),
            (TopicPartition::new("b", 3), 42),
        ]);
        checkpoint.write(&entries).unwrap();
        let text = fs::read_to_string(checkpoint.path()).unwrap();
        assert_eq!(text, "0\n2\na 0 5\nb 3 42\n");
    }

    #[test]
    fn reads_file_written_by_kafka_with_any_whitespace() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        fs::write(checkpoint.path(), "0\n2\nt 0 10\nt\t1   20\n").unwrap();
        let expected = BTreeMap::from([
            (TopicPartition::new("t", 0), 10),
            (TopicPartition::new("t", 1), 20),
        ]);
        assert_eq!(checkpoint.read().unwrap(), expected);
    }

    #[test]
    fn empty_map_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        checkpoint.write(&BTreeMap::new()).unwrap();
        assert_eq!(fs::read_to_string(checkpoint.path()).unwrap(), "0\n0\n");
        assert!(checkpoint.read().unwrap().is_empty());
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(checkpoint_in(&dir).read().unwrap().is_empty());
    }

    #[test]
    fn zero_length_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        fs::write(checkpoint.path(), "").unwrap();
        assert!(checkpoint.read().unwrap().is_empty());
    }

    #[test]
    fn overwrite_replaces_previous_content() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        checkpoint.write(&sample()).unwrap();
        let smaller = BTreeMap::from([(TopicPartition::new("x", 2), 7)]);
        checkpoint.write(&smaller).unwrap();
        assert_eq!(checkpoint.read().unwrap(), smaller);
    }

    #[test]
    fn malformed_files_are_corrupt() {
        let cases = [
            ("wrong version", "1\n1\nt 0 5\n"),
            ("unparsable version", "zero\n1\nt 0 5\n"),
            ("missing count line", "0\n"),
            ("unparsable count", "0\nmany\nt 0 5\n"),
            ("negative count", "0\n-1\n"),
            ("count larger than lines", "0\n2\nt 0 5\n"),
            ("count smaller than lines", "0\n1\nt 0 5\nt 1 6\n"),
            ("unparsable partition", "0\n1\nt x 5\n"),
            ("unparsable offset", "0\n1\nt 0 five\n"),
            ("offset out of range", "0\n1\nt 0 99999999999999999999\n"),
            ("missing offset field", "0\n1\nt 0\n"),
            ("missing partition and offset", "0\n1\nt\n"),
            ("extra field", "0\n1\nt 0 5 6\n"),
            ("blank entry line", "0\n1\n\n"),
            ("duplicate partition", "0\n2\nt 0 5\nt 0 6\n"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        for (name, content) in cases {
            fs::write(checkpoint.path(), content).unwrap();
            match checkpoint.read() {
                Err(StorageError::CorruptFile { path, reason }) => {
                    assert_eq!(path, checkpoint.path(), "{name}");
                    assert!(!reason.is_empty(), "{name}");
                }
                other => panic!("{name}: expected CorruptFile, got {other:?}"),
            }
        }
    }

    #[test]
    fn non_utf8_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        fs::write(checkpoint.path(), b"0\n1\nt 0 \xff\n").unwrap();
        assert_corrupt(checkpoint.read(), checkpoint.path());
    }

    #[test]
    fn corrupt_reason_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        fs::write(checkpoint.path(), "0\n2\nt 0 5\nt 1 oops\n").unwrap();
        match checkpoint.read() {
            Err(StorageError::CorruptFile { reason, .. }) => {
                assert!(reason.contains("line 4"), "{reason}");
                assert!(reason.contains("offset"), "{reason}");
            }
            other => panic!("expected CorruptFile, got {other:?}"),
        }
    }

    #[test]
    fn rejects_unwritable_topic_names_without_touching_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_in(&dir);
        checkpoint.write(&sample()).unwrap();
        for topic in ["", "has space", "tab\there", "new\nline"] {
            let entries = BTreeMap::from([(TopicPartition::new(topic, 0), 1)]);
            match checkpoint.write(&entries) {
                Err(StorageError::Io { source, .. }) => {
                    assert_eq!(source.kind(), io::ErrorKind::InvalidInput, "{topic:?}");
                }
                other => panic!("{topic:?}: expected an InvalidInput error, got {other:?}"),
            }
        }
        assert_eq!(checkpoint.read().unwrap(), sample());
    }

    #[test]
    fn atomic_write_leaves_no_tmp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("file")]);
    }

    #[test]
    fn atomic_write_overwrites_stale_tmp_file() {
        // A crash between creating `<path>.tmp` and the rename leaves a partial tmp file behind;
        // the target keeps its old content and the next write proceeds normally.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        write_atomically(&path, b"old").unwrap();
        fs::write(
            dir.path().join("file.tmp"),
            b"partial garbage that is longer",
        )
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old");
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!dir.path().join("file.tmp").exists());
    }

    #[test]
    fn tmp_path_appends_suffix() {
        assert_eq!(
            tmp_path(Path::new("/d/leader-epoch-checkpoint")),
            PathBuf::from("/d/leader-epoch-checkpoint.tmp")
        );
        assert_eq!(tmp_path(Path::new("a.b")), PathBuf::from("a.b.tmp"));
    }

    #[test]
    fn atomic_write_to_missing_dir_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("file");
        match write_atomically(&path, b"x") {
            Err(StorageError::Io { .. }) => {}
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn read_entries_distinguishes_missing_from_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generic");
        let parse = |line: &str| parse_field::<i64>(line, "value");
        assert_eq!(read_entries(&path, 3, parse).unwrap(), None);
        write_entries(&path, 3, Vec::<i64>::new()).unwrap();
        assert_eq!(read_entries(&path, 3, parse).unwrap(), Some(vec![]));
        write_entries(&path, 3, [7_i64, -2]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "3\n2\n7\n-2\n");
        assert_eq!(read_entries(&path, 3, parse).unwrap(), Some(vec![7, -2]));
        assert!(matches!(
            read_entries(&path, 0, parse),
            Err(StorageError::CorruptFile { .. })
        ));
    }

    #[test]
    fn split_fields_counts_exactly() {
        assert_eq!(split_fields::<2>("1 2"), Ok(["1", "2"]));
        assert_eq!(split_fields::<2>("  1\t 2 "), Ok(["1", "2"]));
        assert!(split_fields::<2>("1").is_err());
        assert!(split_fields::<2>("1 2 3").is_err());
        assert!(split_fields::<2>("").is_err());
    }
}
