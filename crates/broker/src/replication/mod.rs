//! Partition replication: followers fetch from leaders over gRPC (`proto/replication.proto`),
//! leaders track their followers, move the high watermark and change the ISR through the
//! controller.
//!
//! ```text
//!  follower broker                                   leader broker
//!  ReplicaFetcherManager ─ one ReplicaFetcher ──Fetch stream──▶ ReplicaServer
//!     (per leader broker)   truncate, then fetch   ◀─batches+HW── │ record_follower_fetch
//!                                                                 ▼
//!                                                 Partition (IsrState: follower LEOs, HW)
//!                                                                 │ expand / shrink
//!                                                                 ▼
//!                                          IsrManager ──AlterPartition──▶ controller
//! ```
//!
//! * [`isr_state`]: the leader's rules for the high watermark and ISR membership (pure).
//! * [`server`]: the leader side of the RPCs.
//! * [`fetcher`]: the follower side: one task per leader broker, truncation by leader epoch.
//! * [`isr_manager`]: ISR changes sent to the controller, and the periodic shrink check.
//! * [`sniff`]: the inter-broker listener serves both Kafka and gRPC.

pub mod fetcher;
pub mod isr_manager;
pub mod isr_state;
pub mod server;
pub mod sniff;

/// Code generated from `proto/replication.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("rivulet.replication");
}
