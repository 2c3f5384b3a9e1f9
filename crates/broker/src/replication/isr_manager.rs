//! [`IsrManager`]: sends a leader's ISR changes to the controller as AlterPartition requests,
//! and checks every half `replica.lag.time.max.ms` for followers to drop.
//!
//! A change is marked pending on the partition while it is in flight (at most one per
//! partition), so the high watermark keeps counting the larger ISR until the controller has
//! committed the change; the leader then acts on the ISR of the committed metadata, which
//! clears the mark. A refused change (a stale partition epoch, a fenced replica) just clears the
//! mark: the next metadata or fetch decides again.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metadata::{AlterPartition, MetadataStore};
use crate::now_ms;
use crate::partition::Partition;
use crate::replication::isr_state::IsrProposal;

/// Sends ISR changes for the partitions this broker leads.
#[derive(Clone)]
pub struct IsrManager {
    node_id: i32,
    store: Arc<dyn MetadataStore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl IsrManager {
    /// A manager for broker `node_id`, whose requests run on `tasks` until `shutdown`.
    pub fn new(
        node_id: i32,
        store: Arc<dyn MetadataStore>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        IsrManager {
            node_id,
            store,
            tasks,
            shutdown,
        }
    }

    /// Sends `proposal` for `partition` to the controller.
    pub fn propose(&self, partition: Arc<Partition>, proposal: IsrProposal) {
        partition.set_pending_isr(&proposal, true);
        let request = AlterPartition {
            broker_id: self.node_id,
            broker_epoch: self.store.broker_epoch(),
            topic_id: partition.topic_id(),
            partition: partition.topic_partition().partition,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.isr.clone(),
        };
        let store = Arc::clone(&self.store);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = store.alter_partition(request.clone()) => r,
            };
            match outcome {
                Ok(state) => tracing::info!(
                    partition = %partition.topic_partition(),
                    isr = ?state.isr,
                    partition_epoch = state.partition_epoch,
                    "ISR changed"
                ),
                Err(e) => {
                    tracing::info!(
                        partition = %partition.topic_partition(),
                        proposed = ?request.new_isr,
                        error = %e,
                        "ISR change refused"
                    );
                    partition.set_pending_isr(&proposal, false);
                }
            }
        });
    }

    /// Every half `lag_max`, proposes dropping the followers that fell behind from the ISR of
    /// every partition `leaders()` returns.
    pub fn spawn_shrink_check(
        &self,
        lag_max: Duration,
        leaders: impl Fn() -> Vec<Arc<Partition>> + Send + 'static,
    ) {
        let this = self.clone();
        let lag_max_ms = lag_max.as_millis() as i64;
        self.tasks.spawn(async move {
            let mut ticker = tokio::time::interval((lag_max / 2).max(Duration::from_millis(10)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = this.shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let now = now_ms();
                for p in leaders() {
                    if let Some(proposal) = p.isr_shrink(now, lag_max_ms) {
                        tracing::info!(partition = %p.topic_partition(), new_isr = ?proposal.isr, "followers fell behind; shrinking the ISR");
                        this.propose(p, proposal);
                    }
                }
            }
        });
    }
}
