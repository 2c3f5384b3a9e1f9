//! [`Proxy`]: a TCP relay on 127.0.0.1 in front of one address, whose connections a test can
//! reset at once, as the kernel closes a dead process's connections, while the process on
//! either side lives on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A relay to `target` (module doc). Dropping it stops it and resets its connections.
pub struct Proxy {
    address: SocketAddr,
    /// Cancelled to reset every relayed connection; replaced after each reset.
    cut: Arc<Mutex<CancellationToken>>,
    /// New connections are reset at once while set.
    refusing: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a relay to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let refusing = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn({
            let cut = Arc::clone(&cut);
            let refusing = Arc::clone(&refusing);
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        reset(inbound);
                        continue;
                    }
                    let token = cut.lock().unwrap().clone();
                    tokio::spawn(relay(inbound, target, token));
                }
            }
        });
        Proxy {
            address,
            cut,
            refusing,
            accept,
        }
    }

    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every connection relayed so far (RST both ways); new ones are relayed.
    pub fn reset(&self) {
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    /// Resets every connection and refuses new ones until [`Self::heal`]: the peer behind the
    /// proxy is gone as far as the client can tell.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.reset();
    }

    /// Relays new connections again.
    pub fn heal(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut.lock().unwrap().cancel();
    }
}

/// Closes `stream` with a reset rather than an orderly FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(mut inbound: TcpStream, target: SocketAddr, cut: CancellationToken) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        reset(inbound);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
    }
    reset(inbound);
    reset(outbound);
}
