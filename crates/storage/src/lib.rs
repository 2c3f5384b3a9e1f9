//! Rivulet's partition log: one append-only log per partition replica, laid out like Kafka's.
//!
//! A partition is a directory `<topic>-<partition>` holding segments named by their base offset
//! (20 digits): `.log` holds RecordBatch v2 bytes exactly as they arrived, `.index` maps relative
//! offsets to file positions and `.timeindex` maps timestamps to relative offsets, both sparse and
//! memory-mapped. Only the last segment is written. Logs of compacted topics are cleaned in the
//! background by [`cleaner::LogCleaner`], which rewrites inactive segments and swaps them in.
//!
//! Everything here is synchronous file I/O: the broker calls it from blocking threads, never from
//! an async task directly. Types with `&mut self` writers are not internally synchronised; the
//! owner serialises writers per partition.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod compression;
pub mod config;
pub mod error;
mod index_file;
pub mod leader_epoch_cache;
mod log_loader;
pub mod log_manager;
pub mod log_validator;
pub mod meta_properties;
pub mod offset_index;
pub mod partition_log;
pub mod producer_state;
pub mod segment;
pub mod time_index;
pub mod topic_partition;

pub use config::LogConfig;
pub use error::{Result, StorageError};
pub use log_manager::{LogManager, SharedLog};
pub use partition_log::{LoadParams, LogAppendInfo, PartitionLog};
pub use segment::FileSlice;
pub use topic_partition::TopicPartition;
