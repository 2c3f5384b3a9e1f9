//! The Raft-replicated metadata quorum that replaces ZooKeeper (openraft, state in sled):
//! broker registration and fencing, topic and partition records, leader election and epochs.
//!
//! Filled in by the "Raft-replicated controller quorum" issue; an empty workspace member until then.
