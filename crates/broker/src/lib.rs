//! Kafka request handlers, partition leader/follower roles, follower fetch over gRPC, ISR and
//! high-watermark tracking, delayed operations, and the group and transaction coordinators.
//!
//! Filled in from the "single-node broker" issue onwards; an empty workspace member until then.
