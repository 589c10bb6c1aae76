//! The HTTP listener (docs/protocol.md §6): the e-receipt verification page (非登录打印),
//! `/metrics`, `/healthz` and `/readyz`, public; and the operator area `/ops/…`
//! (statements, reconciliation), behind a bearer token, absent without one. Plain HTTP/1.1
//! over hyper; `GET` and `HEAD` only, but `POST /ops/reconcile`.
//!
//! Limits (docs/protocol.md §6): at most [`CONNECTIONS_MAX`] open connections (more are
//! closed at once); request line and headers within [`HEADER_BYTES_MAX`] bytes; headers
//! complete within [`HEADER_TIMEOUT`]; a connection lives at most [`CONNECTION_LIFETIME`];
//! no request may carry a body (`413`).
//!
//! Reads of receipts and statements go through [`read_store`]: on the gateway's reader thread
//! (a second connection to its store, `crate::writer::spawn_reader`) when it has one, else on
//! the writer between batches, so the pages work with any [`crate::store::Store`].

pub mod limiter;
pub mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use crate::ledger::decide::ReceiptRow;
use crate::metrics::{receipt_lookup, ReceiptLookup};
use crate::server::StartError;
use crate::store::Store;
use crate::writer::{ReadJob, WriterHandle};

/// Most open HTTP connections; more are closed at once.
pub const CONNECTIONS_MAX: usize = 256;
/// Largest request line plus headers, bytes (hyper's read buffer).
pub const HEADER_BYTES_MAX: usize = 16 * 1024;
/// Deadline for a request's headers once its connection is idle or its first byte arrived.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// With a sub-account number, the code is matched against the receipts of that account's
/// latest this many entries (an older receipt is found with its receipt number): one lookup
/// costs the writer at most this many primary-key reads.
pub const RECENT_ENTRIES: u32 = 2_000;
/// Longest wait for the store's answer (receipt lookup, readiness probe).
pub const STORE_WAIT: Duration = Duration::from_secs(2);

/// What the HTTP handlers share.
pub struct HttpCtx {
    /// The writer (receipt reads, readiness probe, queue depth).
    pub writer: WriterHandle,
    /// `true` once every listener of the gateway accepts (set by `server::start`).
    pub listening: Arc<AtomicBool>,
    /// The bank's name on printed receipts.
    pub bank_name: String,
    /// Wrong verification attempts per client address.
    pub limiter: limiter::Limiter,
    /// Flips to `true` on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Several instances on one database: `/readyz` lists the tenants this one owns
    /// (docs/protocol.md §5); `None` on an embedded store.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Where `bankfep reconcile` writes its reports (`DATA_DIR/reconcile`): `/metrics`
    /// shows the breaks of the newest one.
    pub reconcile_dir: Option<std::path::PathBuf>,
    /// The operator bearer token (`http.operator_token`); `None`: the `/ops/` routes do not
    /// exist (404 like any unknown path).
    pub operator_token: Option<String>,
    /// Reconciliation through this gateway's writer (`POST /ops/reconcile`).
    pub reconciler: Option<Arc<crate::reconcile::Live>>,
}

/// Longest wait for the writer to answer a statement read.
pub const STATEMENT_WAIT: Duration = Duration::from_secs(30);

/// The HTTP listener, bound but not yet accepting.
pub struct HttpBound {
    listener: TcpListener,
    local: SocketAddr,
}

/// Binds `addr` (`HOST:PORT`, port 0 = any free port). Errors name the listener and address.
pub async fn open(addr: &str) -> Result<HttpBound, StartError> {
    let err = |e: std::io::Error| StartError::Listen {
        what: "http",
        message: format!("{addr}: {e}"),
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok(HttpBound { listener, local })
}

impl HttpBound {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Spawns the accept loop; it stops accepting on shutdown and lets open connections
    /// finish their current request.
    pub fn serve(self, ctx: Arc<HttpCtx>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(accept_loop(self.listener, ctx))
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<HttpCtx>) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut conns = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let ctx = ctx.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    serve_connection(ctx, stream, peer).await;
                });
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(ctx: Arc<HttpCtx>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let mut shutdown = ctx.shutdown.clone();
    let svc_ctx = ctx.clone();
    let svc = hyper::service::service_fn(move |req| {
        let ctx = svc_ctx.clone();
        async move { Ok::<_, Infallible>(route(&ctx, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(HEADER_BYTES_MAX)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.wait_for(|s| *s) => {}
        _ = &mut lifetime => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(STORE_WAIT, conn).await;
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

async fn route(ctx: &HttpCtx, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    if req.uri().path().starts_with("/ops/") {
        return ops(ctx, req).await;
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n");
    }
    if has_body(&req) {
        return respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            TEXT,
            "no request body allowed\n",
        );
    }
    let mut resp = match req.uri().path() {
        "/healthz" => respond(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => {
            if ready(ctx).await {
                let mut body = String::from("ready\n");
                if let Some(c) = &ctx.cluster {
                    body.push_str(&format!("instance {}\n", c.id));
                    for (tenant, epoch) in c.owned() {
                        body.push_str(&format!("owns {tenant} epoch {epoch}\n"));
                    }
                }
                respond(StatusCode::OK, TEXT, body)
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n")
            }
        }
        "/metrics" => {
            let mut text = crate::metrics::render(Some(ctx.writer.queue_depth()));
            if let Some((date, n)) = ctx
                .reconcile_dir
                .as_deref()
                .and_then(crate::reconcile::latest_breaks)
            {
                text.push_str(&format!(
                    "# HELP bankfep_reconciliation_breaks Breaks left by the newest reconciliation (docs/protocol.md §3.2), by business date.\n# TYPE bankfep_reconciliation_breaks gauge\nbankfep_reconciliation_breaks{{date=\"{date}\"}} {n}\n"
                ));
            }
            text.push_str(&crate::reconcile::render_daily_metrics());
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        "/receipts/verify" => verify(ctx, peer, req.uri().query().unwrap_or("")).await,
        _ => respond(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    };
    if head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

/// Runs `f` on the store a running gateway holds: on its reader thread when it has one
/// (committed data only, without waiting for or holding up the writer's batches), else on
/// the writer between batches ([`crate::writer::Job::Read`]). `None` when that thread is
/// gone, its queue stays full, or no answer comes within `wait`.
pub async fn read_store<T: Send + 'static>(
    writer: &WriterHandle,
    wait: Duration,
    f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let job = ReadJob(Box::new(move |s| {
        let _ = tx.send(f(s));
    }));
    let deadline = Instant::now() + wait;
    if !tokio::time::timeout_at(deadline.into(), writer.submit_read(job))
        .await
        .ok()?
    {
        return None;
    }
    tokio::time::timeout_at(deadline.into(), rx)
        .await
        .ok()?
        .ok()
}

/// Whether `req` announces a body (a chunked transfer or a non-zero length): none is
/// accepted on this listener (413).
fn has_body(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(hyper::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Whether `req` carries `Authorization: Bearer {token}`. Both sides are hashed first and
/// the digests compared without an early exit: the time taken says nothing about the token,
/// not even its length.
fn authorized(token: &str, req: &Request<Incoming>) -> bool {
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let a = ring::digest::digest(&ring::digest::SHA256, given.as_bytes());
    let b = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    a.as_ref()
        .iter()
        .zip(b.as_ref().iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
        && !given.is_empty()
}

/// The operator area (docs/operations.md "The operator area"): 404 for every `/ops/` path
/// when no token is configured (as for an unknown path), 401 without detail when the bearer
/// token is missing or wrong, then
/// - `GET /ops/statements/{master}/{yyyyMMdd}.csv`: the statement (docs/statements.md),
///   read through the writer; 404 for an unknown master account or a bad date;
/// - `POST /ops/reconcile?date=yyyyMMdd`: reconciles the date through this gateway's
///   writer; 200 with the summary and `x-bankfep-breaks: N`, 422 when a day file is missing
///   or malformed (nothing was decided), 503 on a store failure.
///
/// No request body is accepted (413).
async fn ops(ctx: &HttpCtx, req: Request<Incoming>) -> Resp {
    let Some(token) = ctx.operator_token.as_deref() else {
        return respond(StatusCode::NOT_FOUND, TEXT, "not found\n");
    };
    if !authorized(token, &req) {
        let mut r = respond(StatusCode::UNAUTHORIZED, TEXT, "unauthorized\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    if has_body(&req) {
        return respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            TEXT,
            "no request body allowed\n",
        );
    }
    let path = req.uri().path();
    let head = req.method() == Method::HEAD;
    if let Some(rest) = path.strip_prefix("/ops/statements/") {
        if req.method() != Method::GET && !head {
            return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n");
        }
        let parsed = rest
            .strip_suffix(".csv")
            .and_then(|r| r.split_once('/'))
            .filter(|(m, d)| {
                !m.is_empty()
                    && m.len() <= 32
                    && m.bytes().all(|b| b.is_ascii_alphanumeric())
                    && crate::statement::parse_date(d).is_some()
            });
        let Some((master, date)) = parsed else {
            return respond(StatusCode::NOT_FOUND, TEXT, "no such statement\n");
        };
        let mut resp =
            match crate::statement::from_writer(&ctx.writer, master, date, STATEMENT_WAIT).await {
                Ok(st) => {
                    let mut r = respond(StatusCode::OK, "text/csv; charset=utf-8", st.csv);
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
                        "attachment; filename=\"statement_{master}_{date}.csv\""
                    )) {
                        r.headers_mut()
                            .insert(hyper::header::CONTENT_DISPOSITION, v);
                    }
                    r
                }
                Err(crate::statement::StatementError::NoSuchMaster(_))
                | Err(crate::statement::StatementError::BadDate(_)) => {
                    respond(StatusCode::NOT_FOUND, TEXT, "no such statement\n")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "statement failed");
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        "statement failed, retry\n",
                    )
                }
            };
        if head {
            *resp.body_mut() = Full::new(Bytes::new());
        }
        return resp;
    }
    if path == "/ops/reconcile" {
        if req.method() != Method::POST {
            return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "POST only\n");
        }
        let Some(live) = ctx.reconciler.as_ref() else {
            return respond(StatusCode::NOT_FOUND, TEXT, "not found\n");
        };
        let date = match param(req.uri().query().unwrap_or(""), "date") {
            Ok(Some(d)) if crate::statement::parse_date(&d).is_some() => d,
            _ => {
                return respond(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    TEXT,
                    "date must be yyyyMMdd\n",
                )
            }
        };
        return match live.run(&date).await {
            Ok(report) => {
                let mut r = respond(StatusCode::OK, TEXT, report.summary.clone());
                r.headers_mut().insert(
                    "x-bankfep-breaks",
                    hyper::header::HeaderValue::from(report.breaks()),
                );
                r
            }
            Err(
                e @ (crate::reconcile::ReconcileError::Missing(_)
                | crate::reconcile::ReconcileError::Malformed { .. }),
            ) => respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                TEXT,
                format!("cannot reconcile: {e}\n"),
            ),
            Err(e) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("cannot reconcile: {e}\n"),
            ),
        };
    }
    respond(StatusCode::NOT_FOUND, TEXT, "not found\n")
}

/// `/readyz`: every listener accepts and the store answers a lookup through the writer and
/// through the reader thread (when there is one).
async fn ready(ctx: &HttpCtx) -> bool {
    let probe = |s: &mut dyn Store| s.receipt_by_no("").is_ok();
    ctx.listening.load(Ordering::Acquire)
        && read_store(&ctx.writer.without_reader(), STORE_WAIT, probe).await == Some(true)
        && read_store(&ctx.writer, STORE_WAIT, probe).await == Some(true)
}

/// One query parameter, percent- and `+`-decoded as a form submits it, trimmed: `Ok(None)`
/// when absent or empty, `Err` when its percent encoding or UTF-8 is broken.
fn param(query: &str, name: &str) -> Result<Option<String>, ()> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != name {
            continue;
        }
        let mut bytes = Vec::with_capacity(v.len());
        let mut it = v.bytes();
        while let Some(b) = it.next() {
            match b {
                b'+' => bytes.push(b' '),
                b'%' => {
                    let hi = it.next().and_then(|c| (c as char).to_digit(16));
                    let lo = it.next().and_then(|c| (c as char).to_digit(16));
                    match (hi, lo) {
                        (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                        _ => return Err(()),
                    }
                }
                b => bytes.push(b),
            }
        }
        let s = String::from_utf8(bytes).map_err(|_| ())?;
        let t = s.trim();
        return Ok((!t.is_empty()).then(|| t.to_string()));
    }
    Ok(None)
}

/// How a member identifies the receipt besides its code.
enum Key {
    ReceiptNo(String),
    Account(String),
}

/// The parsed query, `Ok(None)` when nothing was entered (show the form), `Err` when it can
/// name no receipt.
fn parse_query(query: &str) -> Result<Option<(Key, String)>, ()> {
    let sub = param(query, "sub_acct_no")?;
    let no = param(query, "receipt_no")?;
    let code = param(query, "check_code")?;
    if sub.is_none() && no.is_none() && code.is_none() {
        return Ok(None);
    }
    let code = code.ok_or(())?.to_ascii_uppercase();
    if code.len() != crate::receipt::CHECK_CODE_LEN
        || !code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err(());
    }
    let ok = |s: &str, max: usize| s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let key = match (no, sub) {
        (Some(n), _) if ok(&n, 32) => Key::ReceiptNo(n),
        (None, Some(a)) if ok(&a, 32) => Key::Account(a),
        _ => return Err(()),
    };
    Ok(Some((key, code)))
}

/// Equal strings, compared without an early exit (no timing hint about the code).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `/receipts/verify`: the form, a receipt, the one "no such receipt" page (404), or 429.
async fn verify(ctx: &HttpCtx, peer: SocketAddr, query: &str) -> Resp {
    let parsed = match parse_query(query) {
        Ok(None) => return respond(StatusCode::OK, HTML, page::form()),
        Ok(Some(p)) => Some(p),
        Err(()) => None,
    };
    let now = Instant::now();
    if ctx.limiter.limited(peer.ip(), now) {
        receipt_lookup(ReceiptLookup::Limited);
        let mut r = respond(StatusCode::TOO_MANY_REQUESTS, HTML, page::too_many());
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(ctx.limiter.retry_after_secs(peer.ip(), now)),
        );
        return r;
    }
    let found: Option<ReceiptRow> = match parsed {
        None => None,
        Some((key, code)) => {
            let looked = read_store(&ctx.writer, STORE_WAIT, move |s| match key {
                Key::ReceiptNo(n) => s
                    .receipt_by_no(&n)
                    .map(|r| r.filter(|r| same(&r.check_code, &code))),
                Key::Account(a) => s.receipt_by_code_and_account(&code, &a, RECENT_ENTRIES),
            })
            .await;
            match looked {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "receipt lookup failed in store");
                    return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "busy, retry\n");
                }
                None => return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "busy, retry\n"),
            }
        }
    };
    match found {
        Some(r) => {
            receipt_lookup(ReceiptLookup::Found);
            respond(StatusCode::OK, HTML, page::receipt(&ctx.bank_name, &r))
        }
        None => {
            receipt_lookup(ReceiptLookup::NotFound);
            ctx.limiter.wrong(peer.ip(), now);
            respond(StatusCode::NOT_FOUND, HTML, page::not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_a_form() {
        let q = "sub_acct_no=+9000000000000019+&receipt_no=&check_code=abcd%45FGHIJKLMNOP";
        let (key, code) = parse_query(q).expect("valid").expect("something entered");
        assert!(matches!(key, Key::Account(a) if a == "9000000000000019"));
        assert_eq!(code, "ABCDEFGHIJKLMNOP");
        assert!(parse_query("").expect("valid").is_none());
        assert!(parse_query("sub_acct_no=&receipt_no=&check_code=")
            .expect("valid")
            .is_none());
        // Garbage never panics and names no receipt.
        for bad in [
            "check_code=%",
            "check_code=%zz",
            "check_code=%ff%fe",
            "sub_acct_no=1&check_code=SHORT",
            "sub_acct_no=<script>&check_code=ABCDEFGHIJKLMNOP",
            "check_code=ABCDEFGHIJKLMNOP",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_compare_exactly() {
        assert!(same("ABC", "ABC"));
        assert!(!same("ABC", "ABD"));
        assert!(!same("ABC", "AB"));
    }
}
