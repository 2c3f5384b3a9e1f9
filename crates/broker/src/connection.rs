//! One client connection: reads frames, decodes them, runs requests through the service, and
//! writes the responses in request order.
//!
//! Requests from one connection may be pipelined: up to [`MAX_IN_FLIGHT`] run at once, and the
//! reader stops reading (back-pressure on the client) while that many are outstanding. Frames
//! larger than `socket.request.max.bytes` are refused from their length prefix, before any
//! allocation. A malformed request closes only this connection, logged with the client address.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use rivulet_protocol::{decode_request, frame_codec, DecodeError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::handlers::{ConnectionInfo, Reply, RequestContext};
use crate::service::BrokerService;

type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Requests of one connection handled at once.
pub const MAX_IN_FLIGHT: usize = 16;

/// Serves `stream` until the client closes it, a request is malformed, or shutdown.
pub async fn serve(stream: TcpStream, info: ConnectionInfo, service: BrokerService, max_frame: usize, shutdown: CancellationToken) {
    let peer = info.peer;
    tracing::debug!(client = %peer, listener = %info.listener, "connection opened");
    let (reader, mut writer) = stream.into_split();
    let mut frames = FramedRead::new(reader, frame_codec(max_frame));
    let mut in_flight: FuturesOrdered<ReplyFuture> = FuturesOrdered::new();
    let mut reading = true;
    let mut closing: Option<String> = None;
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
                        closing = Some(format!("unreadable frame: {e}"));
                        reading = false;
                        if in_flight.is_empty() { break; }
                    }
                    Some(Ok(bytes)) => match decode_request(bytes.freeze()) {
                        Ok(request) => {
                            let ctx = RequestContext { request, connection: (*info).clone() };
                            let service = service.clone();
                            in_flight.push_back(Box::pin(async move {
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

fn describe(e: &DecodeError) -> String {
    format!("malformed request: {e}")
}
