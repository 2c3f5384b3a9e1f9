//! `rivulet perf sink`: a Kafka-protocol server that acknowledges produce requests and throws
//! their records away, so that `rivulet perf produce` against it measures the client alone (the
//! "client ceiling" of `bench/compare`: no broker can be measured faster than this).
//!
//! It reads frames and decodes every request exactly as the broker does
//! ([`rivulet_protocol::frame_codec`], [`rivulet_protocol::decode_request`]: the record bytes stay
//! slices of the frame) and answers five APIs from nothing but a topic table in memory:
//!
//! - ApiVersions: those five APIs and Fetch, with the broker's version ranges. Fetch is listed
//!   but not answered: librdkafka writes the v2 record format (the one the broker stores) only
//!   to a broker that lists both Produce v3+ and Fetch v4+, and message sets of the older
//!   formats otherwise.
//! - Metadata: one broker, this server, at the address the client connected to; every topic the
//!   client names exists (`--partitions` partitions, or as many as CreateTopics asked for), each
//!   partition led by this server with itself as the only replica and ISR member.
//! - CreateTopics: remembers the partition count; never fails.
//! - InitProducerId: a fresh producer id per request, epoch 0 (idempotent producers work; the
//!   sink checks no sequence numbers).
//! - Produce: every partition answered without error, with a base offset drawn from one counter
//!   shared by all partitions (so each partition's offsets increase, with gaps); acks=0 gets no
//!   answer, as from a broker. The records are counted (from the batch headers) and dropped.
//!   Produce v0-2 (old message formats) is refused per partition, as the broker refuses it.
//!
//! Any other request closes its connection with a warning. One task per connection answers its
//! requests in order; they share only atomic counters and the topic table (a `std` mutex, never
//! held across an `.await`). SIGINT or SIGTERM stops it, after which it prints what it received
//! (as JSON on stdout with `--json`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use futures::StreamExt;
use rivulet_protocol::kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use rivulet_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestKind, ResponseKind, TopicName,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_protocol::{
    decode_request, encode_api_versions_fallback, encode_legacy_produce_response, encode_response,
    frame_codec, supported_range, LegacyProduceResponse, Request, RequestBody,
    DEFAULT_MAX_FRAME_BYTES,
};
use rivulet_storage::batch::BatchIter;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// The APIs the sink lists in ApiVersions. It answers all but Fetch; any other request closes
/// the connection.
const SINK_APIS: [ApiKey; 6] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::CreateTopics,
    ApiKey::InitProducerId,
    ApiKey::Produce,
    // Listed for librdkafka's feature check (the v2 record format needs Produce v3 and Fetch
    // v4), never answered.
    ApiKey::Fetch,
];
/// The sink's node id in Metadata.
const NODE_ID: i32 = 1;
/// How long connections get to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Arguments of `rivulet perf sink`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port. The first line on stdout is
    /// `listening on HOST:PORT`, with the port bound.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Partitions of every topic a client names (unless CreateTopics asked for another count).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// On exit, print what was received as one JSON object on stdout (the human line goes to
    /// stderr).
    #[arg(long)]
    json: bool,
}

/// The sink's state: the topic table and what it has received.
pub struct Sink {
    /// Partition count of a topic CreateTopics has not named.
    default_partitions: i32,
    /// Topics named by CreateTopics, with their partition counts.
    topics: Mutex<BTreeMap<String, i32>>,
    /// The next base offset handed out, for every partition.
    next_offset: AtomicI64,
    /// The next producer id handed out.
    next_producer_id: AtomicI64,
    /// Produce requests answered (or, with acks=0, not answered).
    produce_requests: AtomicU64,
    /// Records in them, from the batch headers.
    records: AtomicU64,
    /// Bytes of record batches in them.
    batch_bytes: AtomicU64,
}

/// Why a request gets no answer and its connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    /// An API the sink does not implement.
    #[error("{0:?} is not answered by the sink")]
    Api(ApiKey),
    /// The response could not be encoded.
    #[error("encoding the response: {0}")]
    Encode(#[from] rivulet_protocol::EncodeError),
}

impl Sink {
    /// A sink whose topics have `default_partitions` partitions unless created otherwise.
    pub fn new(default_partitions: i32) -> Sink {
        Sink {
            default_partitions: default_partitions.max(1),
            topics: Mutex::new(BTreeMap::new()),
            next_offset: AtomicI64::new(0),
            next_producer_id: AtomicI64::new(1000),
            produce_requests: AtomicU64::new(0),
            records: AtomicU64::new(0),
            batch_bytes: AtomicU64::new(0),
        }
    }

    /// Appends the response frame to `request` to `out` (nothing for acks=0 Produce). `local`
    /// is the address the client connected to: Metadata names it as the one broker.
    pub fn answer(
        &self,
        request: Request,
        local: SocketAddr,
        out: &mut BytesMut,
    ) -> Result<(), Unanswered> {
        let (correlation_id, key, version) = (
            request.correlation_id(),
            request.api_key,
            request.api_version,
        );
        let response = match request.body {
            RequestBody::Kafka(RequestKind::ApiVersions(_)) => {
                ResponseKind::ApiVersions(api_versions())
            }
            RequestBody::Kafka(RequestKind::Metadata(req)) => {
                ResponseKind::Metadata(self.metadata(req, version, local))
            }
            RequestBody::Kafka(RequestKind::CreateTopics(req)) => {
                ResponseKind::CreateTopics(self.create_topics(req))
            }
            RequestBody::Kafka(RequestKind::InitProducerId(_)) => {
                let id = self.next_producer_id.fetch_add(1, Ordering::Relaxed);
                ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(id))
                        .with_producer_epoch(0),
                )
            }
            RequestBody::Kafka(RequestKind::Produce(req)) => {
                let acks = req.acks;
                let response = self.produce(req);
                if acks == 0 {
                    return Ok(());
                }
                ResponseKind::Produce(response)
            }
            RequestBody::LegacyProduce(req) => {
                if req.acks == 0 {
                    return Ok(());
                }
                let response = LegacyProduceResponse::error_for(
                    &req,
                    ResponseError::UnsupportedForMessageFormat,
                );
                encode_legacy_produce_response(correlation_id, version, &response, out)?;
                return Ok(());
            }
            _ => return Err(Unanswered::Api(key)),
        };
        encode_response(correlation_id, key, version, &response, out)?;
        Ok(())
    }

    /// Partition count of `topic`.
    fn partitions_of(&self, topic: &str) -> i32 {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics
            .get(topic)
            .copied()
            .unwrap_or(self.default_partitions)
    }

    fn metadata(&self, req: MetadataRequest, version: i16, local: SocketAddr) -> MetadataResponse {
        // v0: an empty list means every topic; v1+: null means every topic.
        let names: Vec<TopicName> = match req.topics {
            Some(t) if !(version == 0 && t.is_empty()) => {
                t.into_iter().filter_map(|t| t.name).collect()
            }
            _ => {
                let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
                topics
                    .keys()
                    .map(|n| TopicName(StrBytes::from_string(n.clone())))
                    .collect()
            }
        };
        let topics = names
            .into_iter()
            .map(|name| {
                let partitions = (0..self.partitions_of(name.0.as_str()))
                    .map(|index| {
                        MetadataResponsePartition::default()
                            .with_partition_index(index)
                            .with_leader_id(BrokerId(NODE_ID))
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![BrokerId(NODE_ID)])
                            .with_isr_nodes(vec![BrokerId(NODE_ID)])
                    })
                    .collect();
                MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_partitions(partitions)
                    .with_topic_authorized_operations(i32::MIN)
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(StrBytes::from_string(local.ip().to_string()))
                .with_port(i32::from(local.port()))])
            .with_cluster_id(Some(StrBytes::from_static_str("rivulet-perf-sink")))
            .with_controller_id(BrokerId(NODE_ID))
            .with_topics(topics)
            .with_cluster_authorized_operations(i32::MIN)
    }

    fn create_topics(&self, req: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = if t.num_partitions > 0 {
                    t.num_partitions
                } else {
                    self.default_partitions
                };
                if !req.validate_only {
                    topics.insert(t.name.0.to_string(), partitions);
                }
                CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
            })
            .collect();
        CreateTopicsResponse::default().with_topics(results)
    }

    fn produce(&self, req: ProduceRequest) -> ProduceResponse {
        self.produce_requests.fetch_add(1, Ordering::Relaxed);
        let mut records_in_request = 0u64;
        let mut bytes_in_request = 0u64;
        let responses = req
            .topic_data
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partition_data
                    .iter()
                    .map(|p| {
                        let records = p.records.as_deref().unwrap_or_default();
                        let count = record_count(records);
                        records_in_request += count;
                        bytes_in_request += records.len() as u64;
                        let base = self
                            .next_offset
                            .fetch_add(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_base_offset(base)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(0)
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_topic_id(topic.topic_id)
                    .with_partition_responses(partitions)
            })
            .collect();
        self.records
            .fetch_add(records_in_request, Ordering::Relaxed);
        self.batch_bytes
            .fetch_add(bytes_in_request, Ordering::Relaxed);
        ProduceResponse::default().with_responses(responses)
    }

    /// What has been received so far, as JSON.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "tool": "sink",
            "produce_requests": self.produce_requests.load(Ordering::Relaxed),
            "records": self.records.load(Ordering::Relaxed),
            "batch_bytes": self.batch_bytes.load(Ordering::Relaxed),
        })
    }
}

/// The ApiVersions response: [`SINK_APIS`] with the broker's ranges, so that a client
/// negotiates the same versions with the sink as with the broker.
fn api_versions() -> ApiVersionsResponse {
    rivulet_protocol::api_versions_listing(SINK_APIS.iter().filter_map(|&key| supported_range(key)))
}

/// Records in the v2 record batches of `records`, from their headers (`recordsCount`). Stops at
/// the first thing that is not a whole v2 batch: the sink validates nothing.
fn record_count(records: &[u8]) -> u64 {
    BatchIter::new(records, usize::MAX)
        .map_while(Result::ok)
        .map(|batch| u64::try_from(batch.records_count()).unwrap_or(0))
        .sum()
}

/// Runs `rivulet perf sink` until SIGINT or SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let sink = Arc::new(Sink::new(args.partitions));
    runtime.block_on(serve(args.listen, Arc::clone(&sink)))?;
    let summary = sink.summary();
    eprintln!(
        "sink: {} produce requests, {} records, {} batch bytes received and dropped",
        summary["produce_requests"], summary["records"], summary["batch_bytes"]
    );
    if args.json {
        println!("{summary}");
    }
    Ok(())
}

/// Accepts connections on `listen` until SIGINT or SIGTERM.
async fn serve(listen: SocketAddr, sink: Arc<Sink>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let bound = listener.local_addr().context("the bound address")?;
    println!("listening on {bound}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = CancellationToken::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            // Reap finished connections as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let sink = Arc::clone(&sink);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        if let Err(e) = connection(stream, &sink, shutdown).await {
                            tracing::warn!(client = %peer, "closing connection: {e:#}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
    Ok(())
}

/// Answers the requests of one connection, in order, until the client closes it or shutdown.
async fn connection(
    stream: TcpStream,
    sink: &Sink,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = stream
        .local_addr()
        .context("the connection's local address")?;
    let (reader, mut writer) = stream.into_split();
    let mut frames = FramedRead::new(reader, frame_codec(DEFAULT_MAX_FRAME_BYTES));
    let mut out = BytesMut::with_capacity(4096);
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            frame = frames.next() => frame,
        };
        let Some(frame) = frame else { break };
        let frame = frame.context("reading a frame")?;
        match decode_request(frame.freeze()) {
            Ok(request) => sink.answer(request, local, &mut out)?,
            Err(e) => match e.api_versions_fallback() {
                // An ApiVersions version we do not know: answer at v0 so the client retries.
                Some(correlation_id) => {
                    out.extend_from_slice(&encode_api_versions_fallback(correlation_id))
                }
                None => return Err(e).context("malformed request"),
            },
        }
        if !out.is_empty() {
            writer.write_all(&out).await.context("writing a response")?;
            out.clear();
        }
    }
    let _ = writer.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, Bytes};
    use rivulet_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
    use rivulet_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use rivulet_protocol::kafka_protocol::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use rivulet_protocol::kafka_protocol::messages::{
        ApiVersionsRequest, RequestHeader, ResponseHeader,
    };
    use rivulet_protocol::kafka_protocol::protocol::Decodable;
    use rivulet_storage::batch::testing::{batch_of, BatchSpec};

    fn local() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4242))
    }

    fn request(key: ApiKey, version: i16, body: RequestKind) -> Request {
        Request {
            header: RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7),
            api_key: key,
            api_version: version,
            body: RequestBody::Kafka(body),
        }
    }

    /// Answers `req` and decodes the response.
    fn roundtrip(sink: &Sink, req: Request) -> Option<ResponseKind> {
        let (key, version) = (req.api_key, req.api_version);
        let mut out = BytesMut::new();
        sink.answer(req, local(), &mut out).unwrap();
        if out.is_empty() {
            return None;
        }
        let mut frame = out.freeze();
        assert_eq!(frame.get_i32() as usize, frame.len());
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, 7);
        Some(ResponseKind::decode(key, &mut frame, version).unwrap())
    }

    /// `n` v2 batches of `records` records of 10 bytes each.
    fn batches(n: usize, records: usize) -> Bytes {
        let spec = BatchSpec::default();
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend_from_slice(&batch_of(&spec, records, 10));
        }
        Bytes::from(out)
    }

    #[test]
    fn counts_records_of_every_batch() {
        assert_eq!(record_count(&batches(3, 5)), 15);
        assert_eq!(record_count(&[]), 0);
        // A truncated last batch is not counted; garbage stops the walk.
        let two = batches(2, 4);
        assert_eq!(record_count(&two[..two.len() - 10]), 4);
        assert_eq!(record_count(&[1u8; 80]), 0);
    }

    #[test]
    fn api_versions_lists_what_the_sink_answers() {
        let sink = Sink::new(3);
        let req = request(
            ApiKey::ApiVersions,
            3,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        let Some(ResponseKind::ApiVersions(resp)) = roundtrip(&sink, req) else {
            panic!("not ApiVersions");
        };
        let keys: Vec<i16> = resp.api_keys.iter().map(|k| k.api_key).collect();
        assert_eq!(keys.len(), SINK_APIS.len());
        let produce = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .unwrap();
        assert_eq!(
            (produce.min_version, produce.max_version),
            (0, supported_range(ApiKey::Produce).unwrap().max)
        );
    }

    #[test]
    fn metadata_names_itself_leader_of_every_requested_topic() {
        let sink = Sink::new(3);
        let topic = |n: &'static str| {
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(n))))
        };
        let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("created")))
            .with_num_partitions(5)]);
        roundtrip(
            &sink,
            request(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(create)),
        );
        let req =
            MetadataRequest::default().with_topics(Some(vec![topic("any"), topic("created")]));
        let Some(ResponseKind::Metadata(resp)) = roundtrip(
            &sink,
            request(ApiKey::Metadata, 12, RequestKind::Metadata(req)),
        ) else {
            panic!("not Metadata");
        };
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(resp.brokers[0].port, 4242);
        assert_eq!(resp.brokers[0].host.as_str(), "127.0.0.1");
        let counts: Vec<usize> = resp.topics.iter().map(|t| t.partitions.len()).collect();
        assert_eq!(counts, [3, 5]);
        for p in resp.topics.iter().flat_map(|t| &t.partitions) {
            assert_eq!(p.leader_id, BrokerId(NODE_ID));
            assert_eq!(p.isr_nodes, [BrokerId(NODE_ID)]);
        }
    }

    #[test]
    fn produce_is_acknowledged_counted_and_dropped() {
        let sink = Sink::new(2);
        let produce = |acks: i16| {
            let data = |index| {
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(Some(batches(2, 10)))
            };
            ProduceRequest::default()
                .with_acks(acks)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![data(0), data(1)])])
        };
        let Some(ResponseKind::Produce(resp)) = roundtrip(
            &sink,
            request(ApiKey::Produce, 9, RequestKind::Produce(produce(-1))),
        ) else {
            panic!("not Produce");
        };
        let partitions = &resp.responses[0].partition_responses;
        assert_eq!(partitions.len(), 2);
        assert!(partitions.iter().all(|p| p.error_code == 0));
        assert_eq!(
            (partitions[0].base_offset, partitions[1].base_offset),
            (0, 20)
        );
        // acks=0: counted, not answered.
        assert!(roundtrip(
            &sink,
            request(ApiKey::Produce, 9, RequestKind::Produce(produce(0)))
        )
        .is_none());
        let summary = sink.summary();
        assert_eq!(summary["produce_requests"], 2);
        assert_eq!(summary["records"], 80);
    }

    #[test]
    fn other_apis_are_refused() {
        let sink = Sink::new(1);
        let req = request(ApiKey::Fetch, 12, RequestKind::Fetch(Default::default()));
        let mut out = BytesMut::new();
        assert!(matches!(
            sink.answer(req, local(), &mut out),
            Err(Unanswered::Api(ApiKey::Fetch))
        ));
        assert!(out.is_empty());
    }
}
