//! The CITIC listener: HTTP/1.1 POST on `citic_addr` (docs/citic.md "Transport"), hyper 1.
//!
//! Limits, the A001 link's own: at most `limits.connections_max` open connections (more are
//! closed at once), request head within `limits.frame_deadline_ms`, the whole body within
//! the same deadline, at most `limits.body_bytes_max` body bytes (`413` with a `DLF9977`
//! reply), XML depth and element caps, no DTDs. A method other than POST gets `405` with a
//! `DLF9977` reply; every other answer is HTTP 200 with the XML reply.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use super::{envelope, error_reply, served, to_command, validate};
use crate::clock::Stamp;
use crate::codec::schema::TxSchema;
use crate::codec::xml::XmlLimits;
use crate::codes::ReturnCode;
use crate::server::{Shared, StartError};
use crate::writer::{Job, PlatformJob};

/// What the CITIC handler shares besides the gateway's [`Shared`].
pub struct Citic {
    /// The gateway's shared state (writer, clock, limits, A001 schemas and messages).
    pub shared: Arc<Shared>,
    /// `userName` → enterprise code, from each tenant's `citic_users`.
    pub users: HashMap<String, String>,
    /// `schemas/citic/*.toml` by action.
    pub actions: HashMap<String, TxSchema>,
}

/// A bound, not yet serving CITIC listener.
pub struct Bound {
    listener: TcpListener,
    local: SocketAddr,
}

impl Bound {
    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until shutdown, then waits for open connections to finish.
    pub fn serve(self, citic: Arc<Citic>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(accept_loop(citic, self.listener))
    }
}

/// Binds `addr` (`HOST:PORT`, port 0: any free port).
pub async fn open(addr: &str) -> Result<Bound, StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Listen {
            what: "citic http",
            message: format!("{addr}: {e}"),
        })?;
    let local = listener.local_addr().map_err(|e| StartError::Listen {
        what: "citic http",
        message: e.to_string(),
    })?;
    Ok(Bound { listener, local })
}

async fn accept_loop(citic: Arc<Citic>, listener: TcpListener) {
    let limits = citic.shared.config.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let mut shutdown = citic.shared.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let citic = citic.clone();
                let head = Duration::from_millis(limits.frame_deadline_ms);
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let citic = citic.clone();
                        async move { Ok::<_, Infallible>(answer(&citic, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(head)
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), svc);
                    let _ = conn.await;
                    drop(permit);
                });
            }
        }
    }
    let drain = Duration::from_millis(citic.shared.config.limits.drain_ms);
    let _ = tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await;
}

fn xml(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml; charset=GBK"),
    );
    r
}

async fn answer(citic: &Citic, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let schemas = &citic.shared.schemas;
    let malformed = || error_reply(schemas, ReturnCode::Malformed).body;
    if req.method() != Method::POST {
        return xml(StatusCode::METHOD_NOT_ALLOWED, malformed());
    }
    let max = citic.shared.config.limits.body_bytes_max;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return xml(StatusCode::PAYLOAD_TOO_LARGE, malformed());
    }
    let deadline = Duration::from_millis(citic.shared.config.limits.frame_deadline_ms);
    let body =
        match tokio::time::timeout(deadline, Limited::new(req.into_body(), max).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return xml(StatusCode::PAYLOAD_TOO_LARGE, malformed());
            }
            _ => return xml(StatusCode::OK, malformed()),
        };
    xml(StatusCode::OK, respond(citic, &body).await)
}

/// Answers one request body with the reply bytes (docs/citic.md): the whole CITIC path
/// after HTTP. Never panics; every fault is a reply.
pub async fn respond(citic: &Citic, body: &[u8]) -> Vec<u8> {
    let shared = &citic.shared;
    let refuse = |code| error_reply(&shared.schemas, code).body;
    let limits = XmlLimits {
        depth_max: shared.config.limits.xml_depth_max,
        elements_max: shared.config.limits.xml_elements_max,
    };
    let req = match envelope::decode(body, &limits) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "bad CITIC request");
            return refuse(ReturnCode::Malformed);
        }
    };
    if req.action.is_empty() {
        return refuse(ReturnCode::Malformed);
    }
    if req.user_name.is_empty() {
        return refuse(ReturnCode::InvalidField);
    }
    let Some(enterprise) = citic.users.get(&req.user_name) else {
        return refuse(ReturnCode::UnknownEnterprise);
    };
    let (Some(action), Some(schema)) = (served(&req.action), citic.actions.get(&req.action)) else {
        return refuse(ReturnCode::Unsupported);
    };
    let fields = match validate(schema, &req.body) {
        Ok(f) => f,
        Err(code) => return refuse(code),
    };
    let today = Stamp::of(shared.clock.now()).date;
    let p = to_command(action, &fields, shared.schemas.clone(), today);
    let (tx, rx) = oneshot::channel();
    let job = PlatformJob {
        enterprise: enterprise.clone(),
        serial: p.serial,
        tx_code: action.to_string(),
        charset: crate::codec::charset::Charset::Gbk,
        fingerprint: crate::server::platform::fingerprint(action, b"GBK", body),
        cmd: p.cmd,
        reply: tx,
        dialect: Some(Box::new(p.reply)),
    };
    if shared
        .writer
        .try_submit(Job::Platform(Box::new(job)))
        .is_err()
    {
        return refuse(ReturnCode::Busy);
    }
    let wait = Duration::from_millis(shared.config.limits.reply_wait_ms);
    match tokio::time::timeout(wait, rx).await {
        // A reply that is not XML is the writer's own failure answer (YQ9999).
        Ok(Ok(r)) if r.body.starts_with(envelope::DECLARATION.as_bytes()) => r.body,
        _ => refuse(ReturnCode::Internal),
    }
}

impl Citic {
    /// The CITIC side of a gateway: user names from the tenants' `citic_users`, and the
    /// embedded `schemas/citic/` layouts (a bad one stops the start).
    pub fn new(shared: Arc<Shared>) -> Result<Citic, StartError> {
        let users = shared
            .config
            .tenants
            .iter()
            .flat_map(|t| {
                t.citic_users
                    .iter()
                    .map(|u| (u.clone(), t.enterprise_code.clone()))
            })
            .collect();
        let actions = super::load_schemas().map_err(|e| StartError::Schema(e.to_string()))?;
        Ok(Citic {
            shared,
            users,
            actions,
        })
    }
}
