//! A small Kafka client for the cluster tools: one TCP connection to one broker, requests one
//! at a time, every step bounded by a timeout. Frames go through [`rivulet_protocol`]'s codec
//! and client helpers, bodies through `kafka-protocol`.
//!
//! On connect it asks ApiVersions (v0, which every broker answers) and then uses, per API, the
//! highest version both sides know: Metadata (v1+), DescribeCluster only at v2 (KIP-1073: the
//! fenced brokers, the only thing it adds over Metadata), DescribeQuorum at any version.

use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use rivulet_protocol::client::{decode_response, encode_request, ResponseDecodeError};
use rivulet_protocol::kafka_protocol::messages::describe_quorum_request::{
    PartitionData, TopicData,
};
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rivulet_protocol::{frame_codec, EncodeError};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::snapshot::{from_responses, ClusterSnapshot};

/// The client id the tools send.
const CLIENT_ID: &str = "rivulet-cluster-cli";
/// The largest response accepted (Metadata of a big cluster stays far below).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a broker could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("connection to {address} failed: {source}")]
    Io {
        /// `host:port`.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The broker closed the connection.
    #[error("{address} closed the connection")]
    Closed {
        /// `host:port`.
        address: String,
    },
    /// No answer in time.
    #[error("{address} did not answer {what} within {timeout:?}")]
    Timeout {
        /// `host:port`.
        address: String,
        /// What was asked.
        what: &'static str,
        /// The bound.
        timeout: Duration,
    },
    /// A request could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An answer could not be read.
    #[error("{address}: {source}")]
    Decode {
        /// `host:port`.
        address: String,
        /// What was wrong.
        #[source]
        source: ResponseDecodeError,
    },
    /// The broker lacks an API the tools need.
    #[error("{address} does not support {what}")]
    Unsupported {
        /// `host:port`.
        address: String,
        /// What is missing.
        what: &'static str,
    },
}

/// The versions this connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Metadata.
    pub metadata: i16,
    /// DescribeCluster v2, if the broker serves it.
    pub describe_cluster: Option<i16>,
    /// DescribeQuorum, if the broker serves it.
    pub describe_quorum: Option<i16>,
}

impl Versions {
    /// The versions to use given the broker's ApiVersions table (`None`: no usable Metadata).
    pub fn negotiate(table: &ApiVersionsResponse) -> Option<Versions> {
        let best = |key: ApiKey, min: i16, max: i16| {
            table
                .api_keys
                .iter()
                .find(|k| k.api_key == key as i16)
                .and_then(|k| {
                    let v = k.max_version.min(max);
                    (v >= min.max(k.min_version)).then_some(v)
                })
        };
        Some(Versions {
            metadata: best(ApiKey::Metadata, 1, 12)?,
            describe_cluster: best(ApiKey::DescribeCluster, 2, 2),
            describe_quorum: best(ApiKey::DescribeQuorum, 0, 2),
        })
    }
}

/// One connection to one broker.
pub struct Connection {
    address: String,
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    next_correlation_id: i32,
    timeout: Duration,
    versions: Versions,
}

impl Connection {
    /// Connects to `address` (`host:port`) and agrees on versions, within `timeout` per step.
    pub async fn open(address: &str, timeout: Duration) -> Result<Connection, ClientError> {
        let connect = TcpStream::connect(address);
        let stream = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    address: address.to_owned(),
                    what: "the connection",
                    timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    address: address.to_owned(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            address: address.to_owned(),
            framed: Framed::new(stream, frame_codec(MAX_RESPONSE_BYTES)),
            next_correlation_id: 1,
            timeout,
            // Replaced below once the broker has said what it serves.
            versions: Versions {
                metadata: 1,
                describe_cluster: None,
                describe_quorum: None,
            },
        };
        let table: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
            .await?;
        conn.versions = Versions::negotiate(&table).ok_or_else(|| ClientError::Unsupported {
            address: address.to_owned(),
            what: "Metadata v1 or later",
        })?;
        Ok(conn)
    }

    /// The broker's `host:port`, as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends one request and waits for its answer.
    async fn call<Q: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Q,
    ) -> Result<R, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut payload = BytesMut::new();
        encode_request(key, version, correlation_id, CLIENT_ID, body, &mut payload)?;
        let address = self.address.clone();
        let io = |source| ClientError::Io {
            address: address.clone(),
            source,
        };
        let exchange = async {
            self.framed.send(payload.freeze()).await.map_err(io)?;
            match self.framed.next().await {
                None => Err(ClientError::Closed {
                    address: address.clone(),
                }),
                Some(Err(e)) => Err(io(e)),
                Some(Ok(frame)) => decode_response(frame.freeze(), key, version, correlation_id)
                    .map_err(|source| ClientError::Decode {
                        address: address.clone(),
                        source,
                    }),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                address: self.address.clone(),
                what: api_name(key),
                timeout: self.timeout,
            }),
        }
    }

    /// What this broker says about the cluster now: Metadata for every topic, then (when
    /// served) DescribeCluster v2 with fenced brokers and DescribeQuorum.
    pub async fn snapshot(&mut self) -> Result<ClusterSnapshot, ClientError> {
        let v = self.versions;
        let mut request = MetadataRequest::default().with_topics(None);
        if v.metadata >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        let metadata: MetadataResponse = self.call(ApiKey::Metadata, v.metadata, &request).await?;
        let cluster: Option<DescribeClusterResponse> = match v.describe_cluster {
            Some(version) => {
                let request = DescribeClusterRequest::default()
                    .with_endpoint_type(1)
                    .with_include_fenced_brokers(true);
                Some(
                    self.call(ApiKey::DescribeCluster, version, &request)
                        .await?,
                )
            }
            None => None,
        };
        let quorum: Option<DescribeQuorumResponse> = match v.describe_quorum {
            Some(version) => {
                let request =
                    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
                Some(self.call(ApiKey::DescribeQuorum, version, &request).await?)
            }
            None => None,
        };
        Ok(from_responses(&metadata, cluster.as_ref(), quorum.as_ref()))
    }
}

fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::Metadata => "Metadata",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::DescribeQuorum => "DescribeQuorum",
        _ => "a request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_protocol::kafka_protocol::messages::api_versions_response::ApiVersion;

    fn table(entries: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(
            entries
                .iter()
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
    }

    #[test]
    fn rivulets_own_table() {
        let ours = rivulet_protocol::api_versions_response(None);
        assert_eq!(
            Versions::negotiate(&ours),
            Some(Versions {
                metadata: 12,
                describe_cluster: Some(2),
                describe_quorum: Some(2),
            })
        );
    }

    #[test]
    fn older_brokers() {
        let old = table(&[(ApiKey::Metadata, 0, 9), (ApiKey::DescribeCluster, 0, 1)]);
        assert_eq!(
            Versions::negotiate(&old),
            Some(Versions {
                metadata: 9,
                describe_cluster: None,
                describe_quorum: None,
            })
        );
        assert_eq!(
            Versions::negotiate(&table(&[(ApiKey::Metadata, 0, 0)])),
            None
        );
        assert_eq!(Versions::negotiate(&table(&[])), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Connection::open(&address, Duration::from_secs(2))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_broker_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let err = Connection::open(&address, Duration::from_millis(200))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                ClientError::Timeout {
                    what: "ApiVersions",
                    ..
                }
            ),
            "{err}"
        );
        hold.abort();
    }
}
