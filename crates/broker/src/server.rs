//! Accepting client connections on one listener, within `max.connections`. On the inter-broker
//! listener, connections that open with an HTTP/2 preface are handed to the replication gRPC
//! server instead (see [`crate::replication::sniff`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection;
use crate::handlers::ConnectionInfo;
use crate::service::BrokerService;

/// Accepts connections until shutdown, one task per connection. Connections beyond
/// `max.connections` are closed at once; accept errors (such as running out of descriptors) are
/// logged and retried after a pause rather than spinning. With `grpc`, gRPC connections go
/// there.
#[allow(clippy::too_many_arguments)]
pub async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    service: BrokerService,
    max_frame: usize,
    connections: Arc<Semaphore>,
    grpc: Option<mpsc::Sender<TcpStream>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(listener = %name, client = %peer, "max.connections reached; refusing connection");
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(client = %peer, error = %e, "cannot set TCP_NODELAY");
        }
        let info = ConnectionInfo {
            listener: Arc::clone(&name),
            peer,
        };
        let service = service.clone();
        let shutdown = shutdown.clone();
        let grpc = grpc.clone();
        tasks.spawn(async move {
            if let Some(grpc) = grpc {
                if crate::replication::sniff::is_http2(&stream).await {
                    drop(permit);
                    if grpc.send(stream).await.is_err() {
                        tracing::debug!(client = %peer, "replication server stopped; dropping a gRPC connection");
                    }
                    return;
                }
            }
            connection::serve(stream, info, service, max_frame, shutdown).await;
            drop(permit);
        });
    }
}
