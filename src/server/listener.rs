//! Accept loops: one per listener, TCP or TLS, with a cap on open connections per link and a
//! TLS handshake deadline. On shutdown the loop stops accepting and waits for its
//! connections to finish their current request.

use std::net::SocketAddr;
use std::sync::Arc;
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
    /// Platform link (PROTOCOL.md §1).
    Platform,
    /// Bank-core link (PROTOCOL.md §2).
    Core,
}

/// Binds `addr` and spawns its accept loop. Returns the bound address and the loop's task.
pub async fn bind(
    shared: Arc<Shared>,
    link: Link,
    addr: &str,
    tls: Option<&TlsListener>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
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
    let task = tokio::spawn(accept_loop(shared, link, listener, acceptor));
    Ok((local, task))
}

async fn accept_loop(
    shared: Arc<Shared>,
    link: Link,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let limits = shared.config.limits.clone();
    let permits = Arc::new(Semaphore::new(limits.connections_max));
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
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection cap reached; closing new connection");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                let handshake_ms = limits.tls_handshake_ms;
                conns.spawn(async move {
                    let _permit = permit;
                    match acceptor {
                        None => serve(shared, link, stream).await,
                        Some(acc) => {
                            let hs = tokio::time::timeout(
                                Duration::from_millis(handshake_ms),
                                acc.accept(stream),
                            )
                            .await;
                            match hs {
                                Ok(Ok(tls)) => serve(shared, link, tls).await,
                                Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
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
        Link::Platform => super::platform::handle(shared, stream).await,
        Link::Core => super::core_link::handle(shared, stream).await,
    }
}
