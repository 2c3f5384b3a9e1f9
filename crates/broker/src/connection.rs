//! One client connection: reads frames, decodes them, runs requests through the service, and
//! writes the responses in request order.
//!
//! Requests from one connection may be pipelined: up to [`MAX_IN_FLIGHT`] run at once, and the
//! reader stops reading (back-pressure on the client) while that many are outstanding. Requests
//! that change state (Produce, CreateTopics, DeleteTopics, InitProducerId, OffsetCommit and the
//! group membership and deletion APIs) still take effect in
//! the order they arrived, as Kafka (which handles a connection's requests one at a time)
//! guarantees: each waits for the previous such request of the connection to release its
//! [`Turn`] (when it finishes; a produce releases it once appended, before it waits for
//! replication). Without that, two pipelined produce requests could append their batches to a
//! partition in the wrong order. Reads run alongside. Fetch responses are written by `response_writer`: framing
//! bytes around segment file ranges sent with `sendfile`. Frames larger than `socket.request.max.bytes` are refused from
//! their length prefix, before any allocation. A malformed request closes only this connection,
//! logged with the client address.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use rivulet_protocol::kafka_protocol::messages::ApiKey;
use rivulet_protocol::{decode_request, frame_codec, DecodeError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::handlers::{ConnectionInfo, Reply, RequestContext, Turn};
use crate::response_writer::{self, WriteError, COALESCING};
use crate::service::BrokerService;

type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Requests of one connection handled at once.
pub const MAX_IN_FLIGHT: usize = 16;

/// Serves `stream` until the client closes it, a request is malformed, or shutdown.
pub async fn serve(
    stream: TcpStream,
    info: ConnectionInfo,
    service: BrokerService,
    max_frame: usize,
    shutdown: CancellationToken,
) {
    let peer = info.peer;
    tracing::debug!(client = %peer, listener = %info.listener, "connection opened");
    let (reader, mut writer) = stream.into_split();
    let mut frames = FramedRead::new(reader, frame_codec(max_frame));
    let mut in_flight: FuturesOrdered<ReplyFuture> = FuturesOrdered::new();
    let mut reading = true;
    let mut closing: Option<String> = None;
    // Completion of the last state-changing request, which the next one waits for.
    let mut previous_change: Option<oneshot::Receiver<()>> = None;
    let info = Arc::new(info);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                match reply {
                    Reply::Frame(bytes) => {
                        if let Err(e) = writer.write_all(&bytes).await {
                            tracing::debug!(client = %peer, error = %e, "write failed; closing");
                            return;
                        }
                    }
                    Reply::Chunks(chunks) => {
                        match response_writer::write_chunks(writer.as_ref(), &chunks, COALESCING).await {
                            Ok(_) => {}
                            Err(WriteError::Io(e)) => {
                                tracing::debug!(client = %peer, error = %e, "write failed; closing");
                                return;
                            }
                            Err(e @ WriteError::ShortFile { .. }) => {
                                // Part of the response is on the wire; nothing can complete it.
                                tracing::warn!(client = %peer, error = %e, "fetch response cut short; closing");
                                return;
                            }
                        }
                    }
                    Reply::Nothing => {}
                    Reply::Close(reason) => {
                        tracing::warn!(client = %peer, %reason, "closing connection");
                        break;
                    }
                }
                if !reading && in_flight.is_empty() {
                    break;
                }
            }
            frame = frames.next(), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                match frame {
                    None => {
                        reading = false;
                        if in_flight.is_empty() { break; }
                    }
                    Some(Err(e)) => {
                        // A bad length prefix is the client's fault and worth a warning; a reset
                        // or other I/O error is an ordinary disconnect.
                        if e.kind() == std::io::ErrorKind::InvalidData {
                            closing = Some(format!("unreadable frame: {e}"));
                        } else {
                            tracing::debug!(client = %peer, error = %e, "connection lost");
                        }
                        reading = false;
                        if in_flight.is_empty() { break; }
                    }
                    Some(Ok(bytes)) => match decode_request(bytes.freeze()) {
                        Ok(request) => {
                            // Requests with side effects run one after the other, in arrival
                            // order: each starts when the previous one's turn is released.
                            let (after, turn) = if changes_state(request.api_key) {
                                let (done, finished) = oneshot::channel::<()>();
                                (previous_change.replace(finished), Turn::new(done))
                            } else {
                                (None, Turn::default())
                            };
                            let ctx = RequestContext { request, connection: (*info).clone(), turn };
                            let service = service.clone();
                            in_flight.push_back(Box::pin(async move {
                                if let Some(previous) = after {
                                    // Released or dropped: either way the previous one is done.
                                    let _ = previous.await;
                                }
                                match service.oneshot(ctx).await {
                                    Ok(reply) => reply,
                                    Err(never) => match never {},
                                }
                            }));
                        }
                        Err(e) => {
                            if let Some(correlation_id) = e.api_versions_fallback() {
                                // An ApiVersions version we do not know: answer at v0 so the client retries lower.
                                let frame = rivulet_protocol::encode_api_versions_fallback(correlation_id).freeze();
                                in_flight.push_back(Box::pin(async move { Reply::Frame(frame) }));
                            } else {
                                closing = Some(describe(&e));
                                reading = false;
                                if in_flight.is_empty() { break; }
                            }
                        }
                    },
                }
            }
        }
    }
    if let Some(reason) = closing {
        tracing::warn!(client = %peer, %reason, "closing connection");
    }
    let _ = writer.shutdown().await;
    tracing::debug!(client = %peer, "connection closed");
}

/// Whether requests of `key` change state, so that their order on a connection matters.
fn changes_state(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::Produce
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::InitProducerId
            | ApiKey::OffsetCommit
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::LeaveGroup
            | ApiKey::DeleteGroups
            | ApiKey::OffsetDelete
    )
}

fn describe(e: &DecodeError) -> String {
    format!("malformed request: {e}")
}
