//! [`ProducerIdManager`]: hands out producer ids to idempotent producers (InitProducerId) from
//! blocks reserved through the metadata store, so two brokers never hand out the same id.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::metadata::{MetadataError, MetadataStore};

/// Hands out producer ids from the current block, reserving a new block when it runs out.
pub struct ProducerIdManager {
    store: Arc<dyn MetadataStore>,
    broker_id: i32,
    /// Next id and the end of the current block (exclusive).
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// A manager that reserves blocks for `broker_id`.
    pub fn new(store: Arc<dyn MetadataStore>, broker_id: i32) -> Self {
        ProducerIdManager {
            store,
            broker_id,
            block: Mutex::new((0, 0)),
        }
    }

    /// The next unused producer id.
    pub async fn next_id(&self) -> Result<i64, MetadataError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let fresh = self.store.allocate_producer_ids(self.broker_id).await?;
            *block = (fresh.first, fresh.first + fresh.size);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
