//! Telling a gRPC (HTTP/2) connection from a Kafka one on the inter-broker listener.
//!
//! Both protocols start with the client talking. An HTTP/2 client's first bytes are the
//! connection preface `PRI * HTTP/2.0`; a Kafka request starts with its 4-byte size, and
//! `PRI ` read as a size is about 1.3 GB, above any `socket.request.max.bytes` a broker
//! accepts, so no valid Kafka request is mistaken for gRPC. The bytes are peeked, not read: the
//! chosen server sees the connection from its first byte.

use std::time::Duration;

use tokio::net::TcpStream;

/// The first bytes of the HTTP/2 connection preface.
const HTTP2_PREFACE: &[u8; 4] = b"PRI ";

/// How long a new connection may stay silent before it is treated as Kafka (whose server
/// applies its own idle rules).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `stream` starts with the HTTP/2 preface. `false` on silence, a short first
/// message, or an error (the Kafka side then handles or closes the connection).
pub async fn is_http2(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4];
    let peeked = tokio::time::timeout(SNIFF_TIMEOUT, async {
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n >= buf.len() => return true,
                Ok(n) if buf[..n] != HTTP2_PREFACE[..n] => return false,
                // A partial prefix: wait for the rest.
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    })
    .await;
    matches!(peeked, Ok(true)) && &buf == HTTP2_PREFACE
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniff(first: &[u8]) -> bool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first = first.to_vec();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&first).await.unwrap();
            s
        });
        let (server, _) = listener.accept().await.unwrap();
        let _client = client.await.unwrap();
        is_http2(&server).await
    }

    #[tokio::test]
    async fn the_http2_preface_is_grpc_and_a_kafka_frame_is_not() {
        assert!(sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await);
        assert!(!sniff(&[0, 0, 0, 20, 0, 18, 0, 3]).await);
    }
}
