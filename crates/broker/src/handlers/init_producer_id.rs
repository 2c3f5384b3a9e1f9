//! InitProducerId: ids for idempotent producers.
//!
//! Transactions are not implemented yet: a request with a `transactional.id` is answered with
//! `COORDINATOR_NOT_AVAILABLE`, which transactional clients treat as retriable; an empty one is
//! `INVALID_REQUEST`, as in Kafka.

use rivulet_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use crate::broker::BrokerState;
use crate::error::metadata_error_code;

/// A fresh producer id with epoch 0 (Kafka gives idempotent producers a new id every time).
pub async fn handle(state: &BrokerState, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match &req.transactional_id {
        None => {}
        // Kafka refuses an empty transactional id outright.
        Some(id) if id.0.is_empty() => {
            resp.error_code = ResponseError::InvalidRequest.code();
            return resp;
        }
        Some(_) => {
            resp.error_code = ResponseError::CoordinatorNotAvailable.code();
            return resp;
        }
    }
    match state.producer_ids.next_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            resp.error_code = metadata_error_code(&e).code();
            resp
        }
    }
}
