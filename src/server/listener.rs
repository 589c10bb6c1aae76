//! Accept loops: one per listener, TCP or TLS, with a cap on open connections per link and a
//! TLS handshake deadline. On shutdown the loop stops accepting and waits for its
//! connections to finish their current request.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Shared, StartError};
use crate::config::TlsListener;

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Platform link (docs/protocol.md §1).
    Platform,
    /// Bank-core link (docs/protocol.md §2).
    Core,
}

/// What a connection may do, decided at accept time from its TLS client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// No certificate binding (plain TCP, or TLS without client certificates): any
    /// configured enterprise code.
    Any,
    /// Only these enterprise codes (mutual TLS); others get `YQ9985`.
    Only(HashSet<String>),
}

impl Access {
    /// `true` when a request under `enterprise_code` is allowed on this connection.
    pub fn allows(&self, enterprise_code: &str) -> bool {
        match self {
            Access::Any => true,
            Access::Only(set) => set.contains(enterprise_code),
        }
    }
}

/// The platform-link access of a client certificate with subject CN `identity` on listener
/// `tls`: the enterprise codes its `clients` entries grant, or, with no entries, the code
/// equal to its CN. `None` identity (no certificate): nothing.
pub fn platform_access(tls: &TlsListener, identity: Option<&str>) -> Access {
    if tls.client_ca.is_none() {
        return Access::Any;
    }
    let Some(id) = identity else {
        return Access::Only(HashSet::new());
    };
    if tls.clients.is_empty() {
        return Access::Only(std::iter::once(id.to_string()).collect());
    }
    Access::Only(
        tls.clients
            .iter()
            .filter(|c| c.identity == id)
            .flat_map(|c| c.enterprises.iter().cloned())
            .collect(),
    )
}

/// `true` when a core-link client with CN `identity` is admitted on listener `tls`.
pub fn core_admitted(tls: &TlsListener, identity: Option<&str>) -> bool {
    if tls.client_ca.is_none() || tls.clients.is_empty() {
        return true;
    }
    identity.is_some_and(|id| tls.clients.iter().any(|c| c.identity == id))
}

/// Lets a log line through at most once per `every_ms` and counts what it held back, so a
/// peer that provokes the same event thousands of times a second cannot flood the log.
pub struct LogGate {
    every_ms: u64,
    last_ms: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogGate {
    /// A gate letting one line through per `every_ms`.
    pub const fn new(every_ms: u64) -> LogGate {
        LogGate {
            every_ms,
            last_ms: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` = lines held back since the last one).
    pub fn pass(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let last = self.last_ms.load(Relaxed);
        if now.saturating_sub(last) >= self.every_ms
            && self
                .last_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

static ACCEPT_FAILED: LogGate = LogGate::new(1_000);
static CAP_REACHED: LogGate = LogGate::new(1_000);
static PEER_CAP_REACHED: LogGate = LogGate::new(1_000);
static HANDSHAKE_FAILED: LogGate = LogGate::new(1_000);

/// Counts open connections per peer IP; the guard gives the place back on drop.
#[derive(Default)]
pub(crate) struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// A place taken in [`PeerCounts`], given back on drop.
pub(crate) struct PeerGuard {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerCounts {
    /// A place for `ip` if it holds fewer than `max`.
    pub(crate) fn try_take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerGuard> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerGuard {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut m = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A listener bound but not yet accepting (its TLS configuration already loaded).
pub struct Bound {
    link: Link,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tls: Option<TlsListener>,
    local: SocketAddr,
}

impl Bound {
    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Spawns the accept loop. Connections that arrived since the bind wait in the kernel's
    /// backlog until then.
    pub fn serve(self, shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(accept_loop(
            shared,
            self.link,
            self.listener,
            self.acceptor,
            self.tls,
        ))
    }
}

/// Binds `addr` and spawns its accept loop. Returns the bound address and the loop's task.
pub async fn bind(
    shared: Arc<Shared>,
    link: Link,
    addr: &str,
    tls: Option<&TlsListener>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
    let b = open(link, addr, tls).await?;
    let local = b.local_addr();
    Ok((local, b.serve(shared)))
}

/// Loads the TLS files (if any) and binds `addr`, without accepting yet; `serve` binds every
/// listener first so that a busy port or a bad certificate stops start-up before the store
/// is opened (issue 7, item 9). Errors name the listener and the address or file.
pub async fn open(link: Link, addr: &str, tls: Option<&TlsListener>) -> Result<Bound, StartError> {
    let what = match (link, tls.is_some()) {
        (Link::Platform, false) => "platform tcp",
        (Link::Platform, true) => "platform tls",
        (Link::Core, false) => "core tcp",
        (Link::Core, true) => "core tls",
    };
    let acceptor = match tls {
        Some(t) => {
            let cfg = crate::tls::server_config(&t.cert, &t.key, t.client_ca.as_deref()).map_err(
                |e| StartError::Listen {
                    what,
                    message: e.to_string(),
                },
            )?;
            Some(tokio_rustls::TlsAcceptor::from(cfg))
        }
        None => None,
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Listen {
            what,
            message: format!("{addr}: {e}"),
        })?;
    let local = listener.local_addr().map_err(|e| StartError::Listen {
        what,
        message: e.to_string(),
    })?;
    Ok(Bound {
        link,
        listener,
        acceptor,
        tls: tls.cloned(),
        local,
    })
}

async fn accept_loop(
    shared: Arc<Shared>,
    link: Link,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tls: Option<TlsListener>,
) {
    let limits = shared.config.limits.clone();
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let peers = Arc::new(PeerCounts::default());
    let tls = tls.map(Arc::new);
    let mut conns = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning, log at most 1/s.
                        if let Some(held) = ACCEPT_FAILED.pass() {
                            tracing::warn!(error = %e, suppressed = held, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    if let Some(held) = CAP_REACHED.pass() {
                        tracing::warn!(%peer, suppressed = held, "connection cap reached; closing new connection");
                    }
                    drop(stream);
                    continue;
                };
                let Some(peer_guard) = peers.try_take(peer.ip(), limits.connections_per_peer_max) else {
                    if let Some(held) = PEER_CAP_REACHED.pass() {
                        tracing::warn!(%peer, suppressed = held, "per-peer connection cap reached; closing new connection");
                    }
                    drop(stream);
                    continue;
                };
                let tls = tls.clone();
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                let handshake_ms = limits.tls_handshake_ms;
                let span = crate::metrics::connection_span(link == Link::Platform, peer);
                conns.spawn(tracing::Instrument::instrument(async move {
                    let _permit = permit;
                    let _peer_guard = peer_guard;
                    let _open = crate::metrics::connection(link == Link::Platform);
                    match (acceptor, tls) {
                        (Some(acc), Some(tls)) => {
                            let hs = tokio::time::timeout(
                                Duration::from_millis(handshake_ms),
                                acc.accept(stream),
                            )
                            .await;
                            match hs {
                                Ok(Ok(stream)) => {
                                    let identity = stream
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|c| c.first())
                                        .and_then(|c| crate::tls::common_name(c.as_ref()));
                                    match link {
                                        Link::Platform => {
                                            let access = platform_access(&tls, identity.as_deref());
                                            super::platform::handle(shared, stream, access).await
                                        }
                                        Link::Core if core_admitted(&tls, identity.as_deref()) => {
                                            super::core_link::handle(shared, stream).await
                                        }
                                        Link::Core => tracing::warn!(%peer, "core client certificate not admitted; closed"),
                                    }
                                }
                                Ok(Err(e)) => {
                                    if let Some(held) = HANDSHAKE_FAILED.pass() {
                                        tracing::info!(%peer, error = %e, suppressed = held, "TLS handshake failed");
                                    }
                                }
                                Err(_) => {
                                    if let Some(held) = HANDSHAKE_FAILED.pass() {
                                        tracing::info!(%peer, suppressed = held, "TLS handshake timed out");
                                    }
                                }
                            }
                        }
                        _ => serve(shared, link, stream).await,
                    }
                }, span));
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(
    shared: Arc<Shared>,
    link: Link,
    stream: S,
) {
    match link {
        Link::Platform => super::platform::handle(shared, stream, Access::Any).await,
        Link::Core => super::core_link::handle(shared, stream).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_gate_lets_one_line_through_per_period() {
        let g = LogGate::new(60_000);
        assert_eq!(g.pass(), Some(0));
        assert_eq!(g.pass(), None);
        assert_eq!(g.pass(), None);
        let open = LogGate::new(0);
        assert_eq!(open.pass(), Some(0));
    }
}
