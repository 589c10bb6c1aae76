//! The platform link handler (docs/protocol.md §1): many sequential requests per connection.
//!
//! One request, start to end: bounded frame → header checks (§1.1) → enterprise (`YQ9985`)
//! → transaction code (`YQ0000`) → charset (`YQ9977`) → XML (`YQ9977`) → schema fields
//! (`YQ9993`) → typed command → the writer (idempotency, decision, durable commit; `YQ9971`
//! when its queue is full, `YQ9999` when no answer in time) → response frame. A frame that
//! cannot be trusted (field 1, 2 or 6) or is too large gets `YQ9977` with an empty body and
//! the connection is closed; every other fault keeps the connection open.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::conn::{next_frame, ReadOutcome};
use super::listener::Access;
use super::Shared;
use crate::clock::Stamp;
use crate::codec::{charset, request, xml};
use crate::codes::ReturnCode;
use crate::wire::a001::{
    check_request_header, encode_response_header, A001Codec, FrameError, HeaderFault, RawFrame,
    ResponseHead, HEADER_LEN,
};
use crate::writer::{Job, PlatformJob};

/// Serves one platform connection until it closes, times out, sends an untrusted frame, or
/// the gateway shuts down.
///
/// `access` is what the connection's TLS client certificate may use (`Access::Any` on plain
/// TCP); a request under another enterprise code gets `YQ9985` and changes nothing.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    stream: S,
    access: Access,
) {
    handle_hop(shared, stream, access, false).await
}

/// As [`handle`]; `internal`: the connection comes from another instance over the internal
/// link (docs/protocol.md §5), so its requests are served here and never forwarded again.
pub async fn handle_hop<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut stream: S,
    access: Access,
    internal: bool,
) {
    let mut buf = BytesMut::with_capacity(4096);
    let mut codec = A001Codec {
        body_max: shared.config.limits.body_bytes_max,
    };
    loop {
        match next_frame(&mut stream, &mut buf, &mut codec, &shared).await {
            ReadOutcome::Frame(frame) => {
                let out = crate::metrics::platform_request(
                    &frame.header,
                    respond_to(&shared, &frame, &access, internal),
                )
                .await;
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
            ReadOutcome::Bad(FrameError::Io(_)) | ReadOutcome::Closed => return,
            ReadOutcome::Bad(e) => {
                tracing::debug!(error = %e, "untrusted platform frame; answered YQ9977 and closed");
                let mut header = [b' '; HEADER_LEN];
                if let Some(h) = buf.get(..HEADER_LEN) {
                    header.copy_from_slice(h);
                }
                let out = frame_reply(&shared, &header, ReturnCode::Malformed.as_str(), None, &[]);
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// Builds a response frame: header echoing `req` + body. `message` defaults to the return
/// code's message from `schemas/return_codes.toml`.
fn frame_reply(
    shared: &Shared,
    req: &[u8; HEADER_LEN],
    code: &str,
    message: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let stamp = Stamp::of(shared.clock.now());
    let message = message
        .or_else(|| shared.schemas.return_codes.platform_message(code))
        .unwrap_or("");
    let header = encode_response_header(
        req,
        &ResponseHead {
            return_code: code,
            message,
            body_len: body.len(),
            date: &stamp.date_str,
            time: &stamp.time_str,
        },
    );
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

/// SHA-256 over (transaction code, charset code, body bytes): what "the same request" means
/// for §1.2 idempotency.
pub fn fingerprint(tx_code: &str, charset_code: &[u8], body: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(tx_code.as_bytes());
    ctx.update(b"|");
    ctx.update(charset_code);
    ctx.update(b"|");
    ctx.update(body);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

async fn respond_to(shared: &Shared, frame: &RawFrame, access: &Access, internal: bool) -> Vec<u8> {
    let refuse = |code: ReturnCode| frame_reply(shared, &frame.header, code.as_str(), None, &[]);
    let h = match check_request_header(&frame.header) {
        Ok(h) => h,
        Err(HeaderFault::MissingSerial) => return refuse(ReturnCode::InvalidField),
        Err(fault) => {
            tracing::debug!(%fault, "bad request header");
            return refuse(ReturnCode::Malformed);
        }
    };
    if !shared.enterprises.contains(&h.enterprise_code) || !access.allows(&h.enterprise_code) {
        return refuse(ReturnCode::UnknownEnterprise);
    }
    if let Some(c) = shared.cluster.as_ref().filter(|_| !internal) {
        match c.route(&h.enterprise_code) {
            crate::cluster::Route::Local => {}
            crate::cluster::Route::Busy => return refuse(ReturnCode::Busy),
            crate::cluster::Route::Forward(addr) => {
                let mut raw = Vec::with_capacity(HEADER_LEN + frame.body.len());
                raw.extend_from_slice(&frame.header);
                raw.extend_from_slice(&frame.body);
                return match c.forward(addr, crate::cluster::LINK_PLATFORM, &raw).await {
                    Ok(reply) => reply,
                    Err(e @ crate::cluster::ForwardError::NotSent(_)) => {
                        // The owner is gone or moving: nothing was sent; retry (§5).
                        tracing::info!(%addr, error = %e, "tenant's owner unreachable; busy");
                        refuse(ReturnCode::Busy)
                    }
                    Err(e) => {
                        // The owner may have booked it: outcome unknown, query with 6110.
                        tracing::warn!(%addr, error = %e, "forwarding to the tenant's owner failed");
                        refuse(ReturnCode::Internal)
                    }
                };
            }
        }
    }
    let schema = match shared.schemas.tx(&h.tx_code) {
        Some(s) if crate::msg::SERVED.contains(&h.tx_code.as_str()) => s,
        _ => return refuse(ReturnCode::Unsupported),
    };
    let Ok(text) = charset::decode(&frame.body, h.charset) else {
        return refuse(ReturnCode::Malformed);
    };
    let limits = xml::XmlLimits {
        depth_max: shared.config.limits.xml_depth_max,
        elements_max: shared.config.limits.xml_elements_max,
    };
    let body = match xml::parse_body(&text, h.charset, &limits) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(tx = %h.tx_code, error = %e, "bad XML body");
            return refuse(ReturnCode::Malformed);
        }
    };
    let fields = match request::validate_request(schema, &body, h.charset) {
        Ok(f) => f,
        Err(fault) => {
            tracing::debug!(tx = %h.tx_code, field = %fault.field, reason = fault.reason, "invalid field");
            return refuse(ReturnCode::InvalidField);
        }
    };
    let cmd = match crate::msg::to_command(&h.tx_code, &fields) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::debug!(tx = %h.tx_code, field = e.field, reason = e.reason, "invalid field");
            return refuse(ReturnCode::InvalidField);
        }
        None => return refuse(ReturnCode::Unsupported),
    };
    let (tx, rx) = oneshot::channel();
    let (tx_code, serial) = (h.tx_code.clone(), h.requester_serial.clone());
    let job = PlatformJob {
        fingerprint: fingerprint(&h.tx_code, h.charset.header_code(), &frame.body),
        enterprise: h.enterprise_code,
        serial: h.requester_serial,
        tx_code: h.tx_code,
        charset: h.charset,
        cmd,
        reply: tx,
        dialect: None,
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
        Ok(Ok(r)) => {
            // No account numbers, names or id numbers here: codes and serials only.
            tracing::debug!(tx = %tx_code, serial = %serial, code = %r.code, "request answered");
            frame_reply(shared, &frame.header, &r.code, Some(&r.message), &r.body)
        }
        _ => refuse(ReturnCode::Internal),
    }
}
