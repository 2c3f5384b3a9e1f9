//! Kafka request handlers, partition leader/follower roles, and (later) replication, delayed
//! operations and the group and transaction coordinators.
//!
//! ```text
//! TcpListener --accept--> connection (one task each: frames in, ordered replies out)
//!                             |  tower stack: concurrency limit -> telemetry -> dispatcher
//!                             v
//!                         handlers/<api>.rs --reads--> MetadataImage (lock-free snapshot)
//!                             |                --changes--> MetadataStore (local file / quorum)
//!                             v
//!                         ReplicaManager -> Partition -> rivulet_storage::PartitionLog
//!                                         (blocking file I/O on tokio's blocking pool)
//! ```

pub mod broker;
pub mod config;
pub mod connection;
pub mod error;
pub mod group_coordinator;
pub mod handlers;
pub mod lifecycle;
pub mod metadata;
pub mod partition;
pub mod producer_ids;
pub mod replica_manager;
pub mod replication;
pub mod response_writer;
pub mod server;
pub mod service;

pub use broker::{Broker, BrokerError, BrokerState};

/// Milliseconds since the Unix epoch, the clock of record timestamps and retention.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
