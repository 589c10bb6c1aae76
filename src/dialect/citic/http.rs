//! The CITIC listener: HTTP/1.1 POST on `citic_addr` (docs/citic.md "Transport"), hyper 1.
//!
//! Limits, the A001 link's own: at most `limits.connections_max` open connections, and at
//! most `limits.connections_per_peer_max` from one peer IP address (more are closed at once), request head within `limits.frame_deadline_ms`, the whole body within
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

use super::{check_fields, envelope, error_reply, served, to_command, validate};
use crate::clock::Stamp;
use crate::codec::schema::TxSchema;
use crate::codec::xml::XmlLimits;
use crate::codes::ReturnCode;
use crate::money::format_fen;
use crate::server::listener::PeerCounts;
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
    let peers = Arc::new(PeerCounts::default());
    let mut shutdown = citic.shared.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let Some(peer_guard) = peers.try_take(peer.ip(), limits.connections_per_peer_max)
                else {
                    tracing::debug!(%peer, "CITIC per-peer connection cap reached; closing");
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
                    drop(peer_guard);
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
    if action == "DLINTSUB" {
        return intsub(citic, enterprise, schema, &req.body).await;
    }
    let fields =
        match validate(schema, &req.body).and_then(|f| check_fields(action, &f).map(|()| f)) {
            Ok(f) => f,
            Err(code) => return refuse(code),
        };
    let today = Stamp::of(shared.clock.now()).date;
    let branch = &shared.config.citic_branch_name;
    let p = to_command(action, &fields, shared.schemas.clone(), today, branch);
    let fingerprint = crate::server::platform::fingerprint(action, b"GBK", body);
    match submit(citic, enterprise, action, fingerprint, p).await {
        // A reply that is not XML is the writer's own failure answer (YQ9999).
        Ok(r) if r.body.starts_with(envelope::DECLARATION.as_bytes()) => r.body,
        Ok(_) => refuse(ReturnCode::Internal),
        Err(code) => refuse(code),
    }
}

/// Hands one prepared request to the writer and waits for its reply: `Err(Busy)` when the
/// writer's queue is full, `Err(Internal)` when no reply comes within `reply_wait_ms`.
async fn submit(
    citic: &Citic,
    enterprise: &str,
    action: &'static str,
    fingerprint: [u8; 32],
    p: super::Prepared,
) -> Result<crate::writer::Reply, ReturnCode> {
    let shared = &citic.shared;
    let (tx, rx) = oneshot::channel();
    let job = PlatformJob {
        enterprise: enterprise.to_string(),
        serial: p.serial,
        tx_code: action.to_string(),
        charset: crate::codec::charset::Charset::Gbk,
        fingerprint,
        cmd: p.cmd,
        reply: tx,
        dialect: Some(Box::new(p.reply)),
    };
    if shared
        .writer
        .try_submit(Job::Platform(Box::new(job)))
        .is_err()
    {
        return Err(ReturnCode::Busy);
    }
    let wait = Duration::from_millis(shared.config.limits.reply_wait_ms);
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(r)) => Ok(r),
        _ => Err(ReturnCode::Internal),
    }
}

/// DLINTSUB (docs/citic.md): 1–20 rows of `<list name="userDataList">`, each validated
/// against `schemas/citic/DLINTSUB.toml` (one fault, a missing list, too many rows, two
/// rows with one `clientID`: `DLF9993` for the whole request, nothing recorded), then each
/// row handed to the writer in order as its own payment, recorded under its own `clientID`
/// with a fingerprint of its own fields (so a resent request replays every row, and a
/// changed row under a used `clientID` gets `DLF9962` in its row). The reply: `AAAAAAA`,
/// the totals (amounts of accepted rows in `sucTotalAmt`, of the others in `errTotalAmt`)
/// and one row per request row: `clientID`, `status`, `statusText`.
async fn intsub(
    citic: &Citic,
    enterprise: &str,
    schema: &TxSchema,
    body: &crate::codec::xml::XmlBody,
) -> Vec<u8> {
    let shared = &citic.shared;
    let refuse = |code| error_reply(&shared.schemas, code).body;
    let rows = body
        .lists
        .iter()
        .filter(|(name, _)| name == "userDataList")
        .collect::<Vec<_>>();
    let rows = match rows.as_slice() {
        [(_, rows)] if !rows.is_empty() && rows.len() <= super::INTSUB_ROWS_MAX => rows,
        _ => return refuse(ReturnCode::InvalidField),
    };
    let mut valid = Vec::with_capacity(rows.len());
    let mut ids = std::collections::HashSet::new();
    let mut all: i64 = 0;
    for row in rows {
        let one = crate::codec::xml::XmlBody {
            fields: row.clone(),
            lists: Vec::new(),
        };
        let Ok(f) = validate(schema, &one) else {
            return refuse(ReturnCode::InvalidField);
        };
        let id = f.text("clientID").unwrap_or("").to_string();
        let amount = f.amount_fen("tranAmount").unwrap_or(0);
        let Some(sum) = all.checked_add(amount) else {
            return refuse(ReturnCode::InvalidField);
        };
        all = sum;
        if !ids.insert(id.clone()) {
            return refuse(ReturnCode::InvalidField);
        }
        let mut canon = Vec::new();
        for (k, v) in row {
            canon.extend_from_slice(k.as_bytes());
            canon.push(0);
            canon.extend_from_slice(v.as_bytes());
            canon.push(0);
        }
        valid.push((f, id, amount, canon));
    }
    let today = Stamp::of(shared.clock.now()).date;
    let branch = &shared.config.citic_branch_name;
    let (mut ok_n, mut ok_amt, mut err_n, mut err_amt) = (0u32, 0i64, 0u32, 0i64);
    let mut out = Vec::with_capacity(valid.len());
    for (f, id, amount, canon) in valid {
        let p = to_command("DLINTSUB", &f, shared.schemas.clone(), today, branch);
        let fingerprint = crate::server::platform::fingerprint("DLINTSUB", b"GBK", &canon);
        let (status, text) = match submit(citic, enterprise, "DLINTSUB", fingerprint, p).await {
            Ok(r) if r.body.starts_with(envelope::DECLARATION.as_bytes()) => (r.code, r.message),
            Ok(_) => {
                let r = error_reply(&shared.schemas, ReturnCode::Internal);
                (r.code, r.message)
            }
            Err(code) => {
                let r = error_reply(&shared.schemas, code);
                (r.code, r.message)
            }
        };
        // Every partial sum is at most `all`, which did not overflow.
        if status == super::PENDING {
            ok_n = ok_n.saturating_add(1);
            ok_amt = ok_amt.saturating_add(amount);
        } else {
            err_n = err_n.saturating_add(1);
            err_amt = err_amt.saturating_add(amount);
        }
        out.push(vec![
            ("clientID", id),
            ("status", status),
            ("statusText", text),
        ]);
    }
    let ok_msg = shared
        .schemas
        .return_codes
        .platform_message(ReturnCode::Ok.as_str())
        .unwrap_or("")
        .to_string();
    envelope::encode(
        &[
            ("errTotalAmt", format_fen(err_amt)),
            ("errTotalNum", err_n.to_string()),
            ("status", super::OK.to_string()),
            ("statusText", ok_msg),
            ("sucTotalAmt", format_fen(ok_amt)),
            ("sucTotalNum", ok_n.to_string()),
        ],
        Some(&out),
        false,
    )
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
