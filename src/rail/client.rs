//! The gateway's rail client (docs/protocol.md §3): one instruction per connection.
//!
//! [`call`] connects (TCP, then TLS when configured), writes one prefixed request, reads
//! one prefixed reply, checks that it answers this request and closes. Every error leaves
//! the instruction's outcome unknown to the caller, which asks again with `7003` under the
//! same instruction id (§3) and never sends the money again under a new id.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::wire::{decode_reply, encode_request, RailReply, RailRequest};
use crate::codec::schema::Schemas;
use crate::wire::prefixed::{frame_prefixed, PrefixError, PrefixedCodec};

/// Default connect (and TLS handshake) timeout, ms.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// Default timeout for writing the request and reading the reply, ms.
pub const READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Largest reply record accepted, bytes (a §3 reply is 100).
pub const REPLY_RECORD_MAX: usize = 1024;

/// Where and how to reach the rail.
#[derive(Clone)]
pub struct RailClientConfig {
    /// Rail address, `host:port`.
    pub addr: String,
    /// TLS client configuration and the server name to verify; `None` for plain TCP.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Bound on TCP connect plus TLS handshake, ms (default 3,000).
    pub connect_timeout_ms: u64,
    /// Bound on writing the request and reading the whole reply, ms (default 10,000).
    pub read_timeout_ms: u64,
}

impl RailClientConfig {
    /// Plain TCP to `addr` with the default timeouts.
    pub fn tcp(addr: &str) -> RailClientConfig {
        RailClientConfig {
            addr: addr.to_owned(),
            tls: None,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            read_timeout_ms: READ_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl std::fmt::Debug for RailClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RailClientConfig")
            .field("addr", &self.addr)
            .field("tls_server_name", &self.tls.as_ref().map(|(_, n)| n))
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("read_timeout_ms", &self.read_timeout_ms)
            .finish()
    }
}

/// A failed [`call`]. Every variant means "outcome unknown" to the caller (§3): ask with
/// `7003`, never resend under a new id. `Connect` additionally tells that no byte of the
/// request was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RailCallError {
    /// TCP connect or TLS handshake failed or timed out (nothing was sent); or the request
    /// could not be encoded (a caller bug, reported here so nothing is sent).
    #[error("rail connect: {0}")]
    Connect(String),
    /// No complete reply within `read_timeout_ms` after the request was written.
    #[error("rail: no reply in time")]
    Timeout,
    /// The connection failed or was closed after the request was (possibly) sent.
    #[error("rail connection broken: {0}")]
    Broken(String),
    /// A reply came but is malformed, or does not echo the request's trade code and id.
    #[error("rail bad reply: {0}")]
    BadReply(String),
}

/// Sends one §3 request and returns the rail's reply.
///
/// Steps: TCP connect to `cfg.addr` and, with `cfg.tls`, a TLS handshake (together bounded
/// by `connect_timeout_ms`); write `frame_prefixed(record)` and read one prefixed reply of
/// at most [`REPLY_RECORD_MAX`] bytes (together bounded by `read_timeout_ms`); decode it
/// with [`decode_reply`]; check that its trade code and instruction id echo the request's;
/// close the connection.
///
/// Errors: see [`RailCallError`]; all leave the outcome unknown.
pub async fn call(
    cfg: &RailClientConfig,
    schemas: &Schemas,
    req: &RailRequest,
) -> Result<RailReply, RailCallError> {
    let record = encode_request(schemas, req)
        .map_err(|e| RailCallError::Connect(format!("request not encodable: {e}")))?;
    let frame = frame_prefixed(&record);
    let connect_t = Duration::from_millis(cfg.connect_timeout_ms);
    let tcp = tokio::time::timeout(connect_t, TcpStream::connect(&cfg.addr))
        .await
        .map_err(|_| RailCallError::Connect(format!("{}: timed out", cfg.addr)))?
        .map_err(|e| RailCallError::Connect(format!("{}: {e}", cfg.addr)))?;
    let _ = tcp.set_nodelay(true);
    let rec = match &cfg.tls {
        None => exchange(tcp, &frame, cfg.read_timeout_ms).await?,
        Some((config, name)) => {
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| RailCallError::Connect(format!("bad TLS server name {name}")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let tls = tokio::time::timeout(connect_t, connector.connect(server_name, tcp))
                .await
                .map_err(|_| RailCallError::Connect(format!("{}: TLS timed out", cfg.addr)))?
                .map_err(|e| RailCallError::Connect(format!("{}: TLS: {e}", cfg.addr)))?;
            exchange(tls, &frame, cfg.read_timeout_ms).await?
        }
    };
    let reply = decode_reply(schemas, &rec).map_err(|e| RailCallError::BadReply(e.to_string()))?;
    if reply.trade != req.trade {
        return Err(RailCallError::BadReply(format!(
            "trade code {} does not echo {}",
            reply.trade.as_str(),
            req.trade.as_str()
        )));
    }
    if reply.instruction_id != req.instruction_id {
        return Err(RailCallError::BadReply(
            "instruction id does not echo the request's".into(),
        ));
    }
    Ok(reply)
}

/// Writes `frame` and reads one prefixed record, all within `timeout_ms`.
async fn exchange<S>(mut stream: S, frame: &[u8], timeout_ms: u64) -> Result<Vec<u8>, RailCallError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let work = async move {
        stream
            .write_all(frame)
            .await
            .map_err(|e| RailCallError::Broken(format!("write: {e}")))?;
        stream
            .flush()
            .await
            .map_err(|e| RailCallError::Broken(format!("write: {e}")))?;
        let codec = PrefixedCodec {
            record_max: REPLY_RECORD_MAX,
        };
        let mut reader = FramedRead::new(stream, codec);
        match reader.next().await {
            Some(Ok(rec)) => Ok(rec.to_vec()),
            Some(Err(PrefixError::Io(e))) => Err(RailCallError::Broken(format!("read: {e}"))),
            Some(Err(e)) => Err(RailCallError::BadReply(e.to_string())),
            None => Err(RailCallError::Broken("closed without a reply".into())),
        }
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), work)
        .await
        .map_err(|_| RailCallError::Timeout)?
}
