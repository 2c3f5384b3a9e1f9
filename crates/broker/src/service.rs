//! The request pipeline as a `tower` stack: a concurrency limit (Kafka's
//! `queued.max.requests`), telemetry (a tracing span and metrics per request), and the
//! dispatcher. Authentication joins later as one more layer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceBuilder};
use tracing::Instrument;

use crate::broker::BrokerState;
use crate::handlers::{dispatch, Reply, RequestContext};

/// Requests being handled at once across all connections (Kafka's `queued.max.requests`).
pub const QUEUED_MAX_REQUESTS: usize = 500;

/// The broker's request service, cheap to clone; clones share the concurrency limit.
pub type BrokerService = BoxCloneService<RequestContext, Reply, Infallible>;

/// Builds the stack over `state`.
pub fn broker_service(state: Arc<BrokerState>, max_in_flight: usize) -> BrokerService {
    let service = ServiceBuilder::new()
        .concurrency_limit(max_in_flight)
        .layer(TelemetryLayer)
        .service(Dispatcher { state });
    BoxCloneService::new(service)
}

/// The innermost service: routes to the handlers.
#[derive(Clone)]
pub struct Dispatcher {
    state: Arc<BrokerState>,
}

impl Service<RequestContext> for Dispatcher {
    type Response = Reply;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestContext) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move { Ok(dispatch(&state, req).await) })
    }
}

/// Wraps each request in a span (API, version, correlation id, client) and records
/// `kafka_server_requests_total` and `kafka_server_request_seconds` per API.
#[derive(Clone, Copy)]
pub struct TelemetryLayer;

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;
    fn layer(&self, inner: S) -> Telemetry<S> {
        Telemetry { inner }
    }
}

/// See [`TelemetryLayer`].
#[derive(Clone)]
pub struct Telemetry<S> {
    inner: S,
}

impl<S> Service<RequestContext> for Telemetry<S>
where
    S: Service<RequestContext, Response = Reply, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RequestContext) -> Self::Future {
        let api: &'static str = api_name(req.request.api_key);
        let span = tracing::debug_span!(
            "request",
            api,
            version = req.request.api_version,
            correlation_id = req.request.correlation_id(),
            client = %req.connection.peer,
        );
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(
            async move {
                let reply = fut.await;
                metrics::counter!("kafka_server_requests_total", "api" => api).increment(1);
                metrics::histogram!("kafka_server_request_seconds", "api" => api)
                    .record(started.elapsed().as_secs_f64());
                reply
            }
            .instrument(span),
        )
    }
}

fn api_name(key: rivulet_protocol::kafka_protocol::messages::ApiKey) -> &'static str {
    use rivulet_protocol::kafka_protocol::messages::ApiKey as K;
    match key {
        K::Produce => "Produce",
        K::Fetch => "Fetch",
        K::ListOffsets => "ListOffsets",
        K::Metadata => "Metadata",
        K::ApiVersions => "ApiVersions",
        K::CreateTopics => "CreateTopics",
        K::DeleteTopics => "DeleteTopics",
        K::InitProducerId => "InitProducerId",
        K::DescribeConfigs => "DescribeConfigs",
        K::DescribeCluster => "DescribeCluster",
        K::DescribeQuorum => "DescribeQuorum",
        _ => "Other",
    }
}
