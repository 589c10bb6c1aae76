//! An independent client for the platform link (docs/protocol.md §1) and the bank-core notice link
//! (docs/protocol.md §2), written from the wire contract alone: it shares no code with the
//! gateway's codecs, so tests can use it to check the server's interoperability.
//!
//! All lengths are bytes after encoding; all timeouts are milliseconds and apply to each
//! connect, handshake, write and read step separately.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Length of the A001 header in bytes (docs/protocol.md §1.1).
pub const HEADER_LEN: usize = 222;
/// Largest body or record length this client accepts from a peer: 16 MiB.
pub const MAX_FRAME_BODY: usize = 16 * 1024 * 1024;
/// Length of a 6920 notice record in bytes, without its 8-digit prefix (docs/protocol.md §2).
pub const NOTICE_LEN: usize = 390;
/// Length of a 6920 reply record in bytes, without its 8-digit prefix (docs/protocol.md §2).
pub const CORE_REPLY_LEN: usize = 100;

/// The fields of the A001 header as `(number, offset, length, name)` (docs/protocol.md §1.1).
pub const HEADER_FIELDS: [(u8, usize, usize, &str); 21] = [
    (1, 0, 4, "message class"),
    (2, 4, 2, "target system"),
    (3, 6, 2, "body charset"),
    (4, 8, 2, "protocol"),
    (5, 10, 20, "enterprise code"),
    (6, 30, 10, "body length"),
    (7, 40, 6, "transaction code"),
    (8, 46, 5, "operator"),
    (9, 51, 2, "service type"),
    (10, 53, 8, "date"),
    (11, 61, 6, "time"),
    (12, 67, 20, "requester serial"),
    (13, 87, 6, "return code"),
    (14, 93, 100, "return message"),
    (15, 193, 1, "continuation flag"),
    (16, 194, 3, "request count"),
    (17, 197, 1, "sign flag"),
    (18, 198, 1, "sign packet format"),
    (19, 199, 12, "sign algorithm"),
    (20, 211, 10, "signature length"),
    (21, 221, 1, "attachment count"),
];

/// The header field containing byte `offset` of a frame, as `(number, name)`; `None` for
/// offsets at or beyond [`HEADER_LEN`] (the body).
pub fn header_field_at(offset: usize) -> Option<(u8, &'static str)> {
    HEADER_FIELDS
        .iter()
        .find(|(_, off, len, _)| offset >= *off && offset < off + len)
        .map(|(n, _, _, name)| (*n, *name))
}

/// Errors of the protocol clients and tools.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect to `addr` failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A step did not finish within its timeout.
    #[error("timeout after {ms} ms while {what}")]
    Timeout {
        /// The step (e.g. "reading header").
        what: &'static str,
        /// The timeout in milliseconds.
        ms: u64,
    },
    /// An I/O error during a step.
    #[error("I/O error while {what}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The peer closed the connection before sending any byte of the expected frame.
    #[error("connection closed by peer")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed while {what}: got {got} of {want} bytes")]
    Truncated {
        /// The step.
        what: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The peer sent a frame that violates docs/protocol.md (e.g. a non-numeric length).
    #[error("malformed frame: {0}")]
    BadFrame(String),
    /// A declared body or record length exceeds [`MAX_FRAME_BODY`].
    #[error("declared length {len} exceeds the cap of {max} bytes")]
    TooLarge {
        /// The declared length in bytes.
        len: usize,
        /// The cap in bytes.
        max: usize,
    },
    /// A text could not be encoded in the requested charset (unmappable character).
    #[error("field {field}: not representable in {charset}")]
    Unmappable {
        /// The field name.
        field: &'static str,
        /// The charset ("GBK").
        charset: &'static str,
    },
    /// A value is longer than its fixed-width field (in encoded bytes).
    #[error("field {field}: {len} bytes do not fit in {max}")]
    FieldTooLong {
        /// The field name.
        field: &'static str,
        /// Encoded length in bytes.
        len: usize,
        /// Field width in bytes.
        max: usize,
    },
    /// The TLS server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// A fixture file or directory could not be read or written.
    #[error("fixture {path}: {source}")]
    Fixture {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A set-up step (e.g. of the load generator) got an unexpected answer.
    #[error("set-up failed: {0}")]
    Setup(String),
}

/// The body charset named in header field 3 (docs/protocol.md §1.1): `01` GBK, `02` UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCharset {
    /// GBK, header code `01`.
    Gbk,
    /// UTF-8, header code `02`.
    Utf8,
}

impl BodyCharset {
    /// The two-byte header code: `01` or `02`.
    pub fn code(self) -> &'static str {
        match self {
            BodyCharset::Gbk => "01",
            BodyCharset::Utf8 => "02",
        }
    }

    /// The name used in the XML declaration: `GBK` or `UTF-8`.
    pub fn xml_name(self) -> &'static str {
        match self {
            BodyCharset::Gbk => "GBK",
            BodyCharset::Utf8 => "UTF-8",
        }
    }
}

/// Encodes `s` as GBK, refusing unmappable characters ([`ClientError::Unmappable`]).
pub fn gbk(field: &'static str, s: &str) -> Result<Vec<u8>, ClientError> {
    let (bytes, _, had_errors) = encoding_rs::GBK.encode(s);
    if had_errors {
        return Err(ClientError::Unmappable {
            field,
            charset: "GBK",
        });
    }
    Ok(bytes.into_owned())
}

/// Decodes GBK bytes, replacing malformed sequences with U+FFFD (for display only).
pub fn gbk_lossy(b: &[u8]) -> String {
    encoding_rs::GBK
        .decode_without_bom_handling(b)
        .0
        .into_owned()
}

/// Appends `value` GBK-encoded, left-justified and space-padded to exactly `width` bytes.
///
/// Errors: [`ClientError::Unmappable`], [`ClientError::FieldTooLong`].
pub fn put_text(
    out: &mut Vec<u8>,
    field: &'static str,
    value: &str,
    width: usize,
) -> Result<(), ClientError> {
    let b = gbk(field, value)?;
    if b.len() > width {
        return Err(ClientError::FieldTooLong {
            field,
            len: b.len(),
            max: width,
        });
    }
    out.extend_from_slice(&b);
    out.resize(out.len() + width - b.len(), b' ');
    Ok(())
}

/// Appends `n` as ASCII decimal, zero-padded on the left to exactly `width` bytes.
///
/// Errors: [`ClientError::FieldTooLong`] if `n` needs more digits.
pub fn put_number(
    out: &mut Vec<u8>,
    field: &'static str,
    n: u64,
    width: usize,
) -> Result<(), ClientError> {
    let s = format!("{n:0width$}");
    if s.len() > width {
        return Err(ClientError::FieldTooLong {
            field,
            len: s.len(),
            max: width,
        });
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Builds one platform request frame: the 222-byte A001 header (docs/protocol.md §1.1, request
/// column) followed by `xml_body` encoded in `cs`.
///
/// Header: `A001`, `01`, charset code, `01`, enterprise code (20), body length in encoded
/// bytes (10, zero-padded), `tx_code` (6), operator `00001`, service type `01`, `date` (8),
/// `time` (6), `serial` (20), return code 6 spaces, message 100 spaces, `0`, `000`, `0`, `0`,
/// 12 spaces, `0000000000`, `0`. Text fields are left-justified and space-padded.
///
/// Errors: [`ClientError::FieldTooLong`] when a value exceeds its field,
/// [`ClientError::Unmappable`] when the body (or a header value) cannot be encoded in `cs`
/// (GBK); a body whose length needs more than 10 digits is also
/// [`ClientError::FieldTooLong`] (field "body length").
pub fn build_request(
    cs: BodyCharset,
    enterprise_code: &str,
    tx_code: &str,
    serial: &str,
    date: &str,
    time: &str,
    xml_body: &str,
) -> Result<Vec<u8>, ClientError> {
    let body = match cs {
        BodyCharset::Gbk => gbk("body", xml_body)?,
        BodyCharset::Utf8 => xml_body.as_bytes().to_vec(),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(b"A00101");
    out.extend_from_slice(cs.code().as_bytes());
    out.extend_from_slice(b"01");
    put_text(&mut out, "enterprise code", enterprise_code, 20)?;
    put_number(&mut out, "body length", body.len() as u64, 10)?;
    put_text(&mut out, "transaction code", tx_code, 6)?;
    out.extend_from_slice(b"00001");
    out.extend_from_slice(b"01");
    put_text(&mut out, "date", date, 8)?;
    put_text(&mut out, "time", time, 6)?;
    put_text(&mut out, "requester serial", serial, 20)?;
    out.resize(out.len() + 6 + 100, b' ');
    out.extend_from_slice(b"000000"); // fields 15-18: 0, 000, 0, 0
    out.resize(out.len() + 12, b' ');
    out.extend_from_slice(b"00000000000"); // fields 20-21
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Escapes `&`, `<` and `>` for XML text content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Resolves the five predefined XML entities and decimal/hex character references;
/// anything unrecognised is kept verbatim.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let rep = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                if let Some(hex) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                } else if let Some(dec) = ent.strip_prefix('#') {
                    dec.parse::<u32>().ok().and_then(char::from_u32)
                } else {
                    None
                }
            }
        };
        match rep {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A flat request body: `<?xml version="1.0" encoding="GBK"?><Result><K>v</K>...</Result>`
/// (encoding `UTF-8` for [`BodyCharset::Utf8`]), values escaped with [`xml_escape`].
pub fn xml_request(cs: BodyCharset, fields: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"{}\"?><Result>",
        cs.xml_name()
    );
    for (k, v) in fields {
        s.push('<');
        s.push_str(k);
        s.push('>');
        s.push_str(&xml_escape(v));
        s.push_str("</");
        s.push_str(k);
        s.push('>');
    }
    s.push_str("</Result>");
    s
}

/// One platform response: the raw 222-byte header and the raw body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The 222 header bytes exactly as received.
    pub header: Vec<u8>,
    /// The body bytes exactly as received (length = header field 6).
    pub body: Vec<u8>,
}

impl Response {
    fn header_slice(&self, off: usize, len: usize) -> &[u8] {
        self.header.get(off..off + len).unwrap_or(&[])
    }

    /// Header field 13 (offset 87, 6 bytes), trailing spaces removed; `000000` is success.
    pub fn return_code(&self) -> String {
        gbk_lossy(self.header_slice(87, 6)).trim_end().to_owned()
    }

    /// Header field 14 (offset 93, 100 bytes), GBK-decoded and trimmed.
    pub fn return_message(&self) -> String {
        gbk_lossy(self.header_slice(93, 100)).trim().to_owned()
    }

    /// Header field 7 (transaction code), trimmed.
    pub fn tx_code(&self) -> String {
        gbk_lossy(self.header_slice(40, 6)).trim().to_owned()
    }

    /// Header field 12 (requester serial), trimmed.
    pub fn serial(&self) -> String {
        gbk_lossy(self.header_slice(67, 20)).trim().to_owned()
    }

    /// The body decoded per header field 3 (`02` UTF-8, otherwise GBK), lossily.
    pub fn body_text(&self) -> String {
        if self.header_slice(6, 2) == b"02" {
            String::from_utf8_lossy(&self.body).into_owned()
        } else {
            gbk_lossy(&self.body)
        }
    }

    /// The text of the first `<name>…</name>` element of the body (naive scan, unescaped);
    /// `Some("")` for `<name/>`; `None` if absent.
    pub fn field(&self, name: &str) -> Option<String> {
        find_element(&self.body_text(), name)
    }

    /// Every `<Row>…</Row>` of the body, each as its child elements `(name, unescaped text)`
    /// in document order.
    pub fn rows(&self) -> Vec<Vec<(String, String)>> {
        let text = self.body_text();
        let mut rows = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<Row>") {
            let after = &rest[start + 5..];
            let Some(end) = after.find("</Row>") else {
                break;
            };
            rows.push(children(&after[..end]));
            rest = &after[end + 6..];
        }
        rows
    }
}

fn find_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let empty = format!("<{name}/>");
    let close = format!("</{name}>");
    let o = text.find(&open);
    let e = text.find(&empty);
    match (o, e) {
        (Some(o), e) if e.is_none_or(|e| o < e) => {
            let start = o + open.len();
            let end = text[start..].find(&close)? + start;
            Some(xml_unescape(&text[start..end]))
        }
        (_, Some(_)) => Some(String::new()),
        _ => None,
    }
}

/// Flat child elements `<K>v</K>` (or `<K/>`) of a fragment, in order.
fn children(frag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = frag;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt + 1..];
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[..gt];
        rest = &rest[gt + 1..];
        if tag.starts_with('/') || tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_suffix('/') {
            out.push((name.trim().to_owned(), String::new()));
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or("").to_owned();
        let close = format!("</{name}>");
        let Some(end) = rest.find(&close) else { break };
        out.push((name, xml_unescape(&rest[..end])));
        rest = &rest[end + close.len()..];
    }
    out
}

/// A client connection: plain TCP or TLS over TCP. Implements `AsyncRead`/`AsyncWrite`.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS (1.2 or 1.3) over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// Opens a TCP connection to `addr` (`host:port`), then, with `tls` = `(config, server
    /// name)`, a TLS session on it. Each step (connect, handshake) is bounded by `timeout_ms`.
    ///
    /// Errors: [`ClientError::Connect`], [`ClientError::Timeout`], [`ClientError::ServerName`],
    /// [`ClientError::Io`] (handshake failure).
    pub async fn connect(
        addr: &str,
        tls: Option<(Arc<rustls::ClientConfig>, &str)>,
        timeout_ms: u64,
    ) -> Result<Stream, ClientError> {
        let t = Duration::from_millis(timeout_ms);
        let tcp = tokio::time::timeout(t, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "connecting",
                ms: timeout_ms,
            })?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())
            .map_err(|_| ClientError::ServerName(name.to_owned()))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let s = tokio::time::timeout(t, connector.connect(server_name, tcp))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "TLS handshake",
                ms: timeout_ms,
            })?
            .map_err(|source| ClientError::Io {
                what: "TLS handshake",
                source,
            })?;
        Ok(Stream::Tls(Box::new(s)))
    }
}

/// Writes all of `frame` and flushes, within `timeout_ms`.
///
/// Errors: [`ClientError::Timeout`], [`ClientError::Io`].
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
    timeout_ms: u64,
) -> Result<(), ClientError> {
    let fut = async {
        w.write_all(frame).await?;
        w.flush().await
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), fut)
        .await
        .map_err(|_| ClientError::Timeout {
            what: "writing request",
            ms: timeout_ms,
        })?
        .map_err(|source| ClientError::Io {
            what: "writing request",
            source,
        })
}

/// Fills `buf` completely within `timeout_ms`. Returns `Ok(false)` if the peer closed the
/// connection before the first byte (clean EOF), `Ok(true)` when filled.
///
/// Errors: [`ClientError::Truncated`] on EOF after some bytes, [`ClientError::Timeout`],
/// [`ClientError::Io`].
pub async fn read_full<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
    timeout_ms: u64,
) -> Result<bool, ClientError> {
    let want = buf.len();
    let fut = async {
        let mut got = 0;
        while got < want {
            let n = r
                .read(&mut buf[got..])
                .await
                .map_err(|source| ClientError::Io { what, source })?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(ClientError::Truncated { what, got, want });
            }
            got += n;
        }
        Ok(true)
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), fut)
        .await
        .map_err(|_| ClientError::Timeout {
            what,
            ms: timeout_ms,
        })?
}

fn parse_digits(field: &[u8], what: &str) -> Result<usize, ClientError> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return Err(ClientError::BadFrame(format!(
            "{what} is not decimal digits: {:?}",
            String::from_utf8_lossy(field)
        )));
    }
    let mut n: usize = 0;
    for &d in field {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(d - b'0')))
            .ok_or_else(|| ClientError::BadFrame(format!("{what} overflows")))?;
    }
    Ok(n)
}

/// Reads one platform frame: exactly 222 header bytes, then exactly header-field-6 body
/// bytes (capped at [`MAX_FRAME_BODY`]); each step bounded by `timeout_ms`.
///
/// Errors: [`ClientError::Closed`] if the peer closed before the first byte,
/// [`ClientError::Truncated`], [`ClientError::BadFrame`] (field 6 not ten digits),
/// [`ClientError::TooLarge`], [`ClientError::Timeout`], [`ClientError::Io`].
pub async fn read_platform_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout_ms: u64,
) -> Result<Response, ClientError> {
    let mut header = vec![0u8; HEADER_LEN];
    if !read_full(r, &mut header, "reading header", timeout_ms).await? {
        return Err(ClientError::Closed);
    }
    let len = parse_digits(&header[30..40], "header body length")?;
    if len > MAX_FRAME_BODY {
        return Err(ClientError::TooLarge {
            len,
            max: MAX_FRAME_BODY,
        });
    }
    let mut body = vec![0u8; len];
    if len > 0 && !read_full(r, &mut body, "reading body", timeout_ms).await? {
        return Err(ClientError::Truncated {
            what: "reading body",
            got: 0,
            want: len,
        });
    }
    Ok(Response { header, body })
}

/// Reads one length-prefixed record (docs/protocol.md §2/§3): 8 ASCII digits, then that many
/// bytes (capped at [`MAX_FRAME_BODY`]). Returns the record without its prefix.
///
/// Errors: as [`read_platform_frame`].
pub async fn read_prefixed_record<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout_ms: u64,
) -> Result<Vec<u8>, ClientError> {
    let mut prefix = [0u8; 8];
    if !read_full(r, &mut prefix, "reading length prefix", timeout_ms).await? {
        return Err(ClientError::Closed);
    }
    let len = parse_digits(&prefix, "length prefix")?;
    if len > MAX_FRAME_BODY {
        return Err(ClientError::TooLarge {
            len,
            max: MAX_FRAME_BODY,
        });
    }
    let mut rec = vec![0u8; len];
    if len > 0 && !read_full(r, &mut rec, "reading record", timeout_ms).await? {
        return Err(ClientError::Truncated {
            what: "reading record",
            got: 0,
            want: len,
        });
    }
    Ok(rec)
}

/// Current date `yyyyMMdd` and time `HHmmss` in China Standard Time (UTC+8).
pub fn now_cst() -> (String, String) {
    let t = chrono::Utc::now().naive_utc() + chrono::Duration::hours(8);
    (
        t.format("%Y%m%d").to_string(),
        t.format("%H%M%S").to_string(),
    )
}

/// A platform-link connection (docs/protocol.md §1): one request at a time.
#[derive(Debug)]
pub struct PlatformClient {
    stream: Stream,
    timeout_ms: u64,
}

impl PlatformClient {
    /// Connects to the gateway's platform port `addr` (`host:port`), over TLS when `tls` is
    /// `(config, server name)`. `timeout_ms` bounds connect, handshake and every later
    /// write and read step.
    ///
    /// Errors: see [`Stream::connect`].
    pub async fn connect(
        addr: &str,
        tls: Option<(Arc<rustls::ClientConfig>, &str)>,
        timeout_ms: u64,
    ) -> Result<Self, ClientError> {
        Ok(PlatformClient {
            stream: Stream::connect(addr, tls, timeout_ms).await?,
            timeout_ms,
        })
    }

    /// Sends `frame` as is, then reads one response frame (222 + body-length bytes, body
    /// capped at 16 MiB). Each step bounded by the connection's timeout.
    ///
    /// Errors: see [`write_frame`] and [`read_platform_frame`].
    pub async fn call_raw(&mut self, frame: &[u8]) -> Result<Response, ClientError> {
        write_frame(&mut self.stream, frame, self.timeout_ms).await?;
        self.read_response().await
    }

    /// Sends a GBK request for transaction `tx` with body [`xml_request`]`(fields)`, header
    /// date and time = now in UTC+8, and reads the response.
    ///
    /// Errors: see [`build_request`] and [`PlatformClient::call_raw`].
    pub async fn call(
        &mut self,
        enterprise: &str,
        tx: &str,
        serial: &str,
        fields: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let (date, time) = now_cst();
        let body = xml_request(BodyCharset::Gbk, fields);
        let frame = build_request(
            BodyCharset::Gbk,
            enterprise,
            tx,
            serial,
            &date,
            &time,
            &body,
        )?;
        self.call_raw(&frame).await
    }

    /// Reads one response frame without sending anything (for tests writing raw bytes via
    /// [`PlatformClient::stream_mut`]).
    ///
    /// Errors: see [`read_platform_frame`].
    pub async fn read_response(&mut self) -> Result<Response, ClientError> {
        read_platform_frame(&mut self.stream, self.timeout_ms).await
    }

    /// The underlying connection, for writing raw or partial bytes.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// The per-step timeout in milliseconds.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }
}

/// Builds a 6920 inbound-credit notice frame (docs/protocol.md §2): `00000390` followed by the
/// 390-byte GBK record: `6920`, bank serial (32), channel (4), accounting date (8), time (6),
/// payee account (32), amount in fen (15, zero-padded), `RMB`, payer account (32), payer
/// name (120), payer bank code (14), memo (60), 60 spaces. Text is left-justified and
/// space-padded; 398 bytes in all.
///
/// Errors: [`ClientError::FieldTooLong`] if a value does not fit its field (GBK bytes, or
/// more than 15 digits of fen), [`ClientError::Unmappable`].
#[allow(clippy::too_many_arguments)]
pub fn build_notice(
    bank_serial: &str,
    channel: &str,
    acct_date: &str,
    time: &str,
    payee: &str,
    amount_fen: u64,
    payer_acct: &str,
    payer_name: &str,
    payer_bank: &str,
    memo: &str,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::with_capacity(8 + NOTICE_LEN);
    out.extend_from_slice(b"00000390");
    out.extend_from_slice(b"6920");
    put_text(&mut out, "bank serial", bank_serial, 32)?;
    put_text(&mut out, "channel", channel, 4)?;
    put_text(&mut out, "accounting date", acct_date, 8)?;
    put_text(&mut out, "time", time, 6)?;
    put_text(&mut out, "payee account", payee, 32)?;
    put_number(&mut out, "amount", amount_fen, 15)?;
    out.extend_from_slice(b"RMB");
    put_text(&mut out, "payer account", payer_acct, 32)?;
    put_text(&mut out, "payer name", payer_name, 120)?;
    put_text(&mut out, "payer bank code", payer_bank, 14)?;
    put_text(&mut out, "memo", memo, 60)?;
    out.resize(out.len() + 60, b' ');
    debug_assert_eq!(out.len(), 8 + NOTICE_LEN);
    Ok(out)
}

/// The fields of a 6920 notice (docs/protocol.md §2), for [`CoreClient::notify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Core serial, ≤ 32 bytes; unique per core.
    pub bank_serial: String,
    /// `IBPS`, `BEPS`, `HVPS` or `INTR`.
    pub channel: String,
    /// Accounting date `yyyyMMdd`.
    pub acct_date: String,
    /// Time `HHmmss`.
    pub time: String,
    /// Payee account (master or sub-account), ≤ 32 bytes.
    pub payee: String,
    /// Amount in fen (1/100 CNY), ≤ 15 digits.
    pub amount_fen: u64,
    /// Payer account, ≤ 32 bytes.
    pub payer_acct: String,
    /// Payer name, ≤ 120 GBK bytes.
    pub payer_name: String,
    /// Payer bank code, ≤ 14 bytes.
    pub payer_bank: String,
    /// Memo (附言), ≤ 60 GBK bytes.
    pub memo: String,
}

impl Notice {
    /// The 398-byte frame of this notice; see [`build_notice`].
    ///
    /// Errors: see [`build_notice`].
    pub fn to_frame(&self) -> Result<Vec<u8>, ClientError> {
        build_notice(
            &self.bank_serial,
            &self.channel,
            &self.acct_date,
            &self.time,
            &self.payee,
            self.amount_fen,
            &self.payer_acct,
            &self.payer_name,
            &self.payer_bank,
            &self.memo,
        )
    }
}

/// A parsed 100-byte 6920 reply (docs/protocol.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreReply {
    /// Echoed bank serial, trimmed.
    pub bank_serial: String,
    /// Result: `0000` accepted, `1001` malformed, `1002` unknown payee, `1003` busy.
    pub result: String,
    /// Message, GBK-decoded and trimmed.
    pub message: String,
}

impl CoreReply {
    /// Parses a reply record (without its prefix): trade code (4), serial (32), result (4),
    /// message (60).
    ///
    /// Errors: [`ClientError::BadFrame`] if the record is not 100 bytes.
    pub fn parse(rec: &[u8]) -> Result<CoreReply, ClientError> {
        if rec.len() != CORE_REPLY_LEN {
            return Err(ClientError::BadFrame(format!(
                "core reply is {} bytes, expected {CORE_REPLY_LEN}",
                rec.len()
            )));
        }
        Ok(CoreReply {
            bank_serial: gbk_lossy(&rec[4..36]).trim().to_owned(),
            result: gbk_lossy(&rec[36..40]).trim().to_owned(),
            message: gbk_lossy(&rec[40..100]).trim().to_owned(),
        })
    }
}

/// A bank-core-link connection (docs/protocol.md §2): notices one at a time.
#[derive(Debug)]
pub struct CoreClient {
    stream: Stream,
    timeout_ms: u64,
}

impl CoreClient {
    /// Connects to the gateway's bank-core port; arguments as [`PlatformClient::connect`].
    ///
    /// Errors: see [`Stream::connect`].
    pub async fn connect(
        addr: &str,
        tls: Option<(Arc<rustls::ClientConfig>, &str)>,
        timeout_ms: u64,
    ) -> Result<Self, ClientError> {
        Ok(CoreClient {
            stream: Stream::connect(addr, tls, timeout_ms).await?,
            timeout_ms,
        })
    }

    /// Sends `frame` (prefix included) as is and returns the reply record as read, without
    /// its 8-digit prefix (any length up to 16 MiB).
    ///
    /// Errors: see [`write_frame`] and [`read_prefixed_record`].
    pub async fn call_raw(&mut self, frame: &[u8]) -> Result<Vec<u8>, ClientError> {
        write_frame(&mut self.stream, frame, self.timeout_ms).await?;
        self.read_reply().await
    }

    /// Reads one reply record (without prefix) without sending anything.
    ///
    /// Errors: see [`read_prefixed_record`].
    pub async fn read_reply(&mut self) -> Result<Vec<u8>, ClientError> {
        read_prefixed_record(&mut self.stream, self.timeout_ms).await
    }

    /// Sends one 6920 notice and parses the reply.
    ///
    /// Errors: see [`build_notice`], [`CoreClient::call_raw`], [`CoreReply::parse`].
    pub async fn notify(&mut self, notice: &Notice) -> Result<CoreReply, ClientError> {
        let frame = notice.to_frame()?;
        let rec = self.call_raw(&frame).await?;
        CoreReply::parse(&rec)
    }

    /// The underlying connection, for writing raw or partial bytes.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

/// A minimal HTTP/1.1 exchange with the gateway's HTTP listener (the operator area,
/// docs/operations.md): `method` `path` on `base` (`http://HOST:PORT`), with
/// `Authorization: Bearer {token}` when `token` is given, no body, `Connection: close`.
/// Returns the status code, the headers (name, value) and the body (by `Content-Length`,
/// else until the connection closes). Waits at most `timeout` for the whole exchange.
///
/// Errors: a URL other than `http://HOST:PORT[/]`, a refused connection, a timeout, a
/// response that is not HTTP/1.x.
pub async fn http_request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let host = base
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or_else(|| format!("{base:?} is not http://HOST:PORT"))?;
    let exchange = async {
        let mut s = TcpStream::connect(host)
            .await
            .map_err(|e| format!("connect {host}: {e}"))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| "no complete answer in time".to_string())??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|l| l.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("not an HTTP/1.x answer")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Ok((status, headers, body))
}

/// `POST path` on the gateway's operator area with `token` (see [`http_request`]); waits up
/// to 10 minutes (a reconciliation of a busy day).
pub async fn ops_post(
    base: &str,
    path: &str,
    token: &str,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    http_request(base, "POST", path, Some(token), Duration::from_secs(600)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_exact_bytes() {
        let body = xml_request(BodyCharset::Gbk, &[("SubAcctNo", "1234"), ("Name", "张三")]);
        let frame = build_request(
            BodyCharset::Gbk,
            "DEMOPLATFORM00000001",
            "6010",
            "SER0001",
            "20260102",
            "030405",
            &body,
        )
        .unwrap();
        let body_bytes = gbk("b", &body).unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"A001"); // 1
        expected.extend_from_slice(b"01"); // 2
        expected.extend_from_slice(b"01"); // 3
        expected.extend_from_slice(b"01"); // 4
        expected.extend_from_slice(b"DEMOPLATFORM00000001"); // 5
        expected.extend_from_slice(format!("{:010}", body_bytes.len()).as_bytes()); // 6
        expected.extend_from_slice(b"6010  "); // 7
        expected.extend_from_slice(b"00001"); // 8
        expected.extend_from_slice(b"01"); // 9
        expected.extend_from_slice(b"20260102"); // 10
        expected.extend_from_slice(b"030405"); // 11
        expected.extend_from_slice(b"SER0001             "); // 12
        expected.extend_from_slice(b"      "); // 13
        expected.extend_from_slice(&[b' '; 100]); // 14
        expected.extend_from_slice(b"0"); // 15
        expected.extend_from_slice(b"000"); // 16
        expected.extend_from_slice(b"0"); // 17
        expected.extend_from_slice(b"0"); // 18
        expected.extend_from_slice(b"            "); // 19
        expected.extend_from_slice(b"0000000000"); // 20
        expected.extend_from_slice(b"0"); // 21
        assert_eq!(expected.len(), 222);
        assert_eq!(&frame[..222], &expected[..]);
        assert_eq!(&frame[222..], &body_bytes[..]);
        // 张三 is 4 GBK bytes; the declared length counts bytes, not characters.
        assert_eq!(body_bytes.len(), body.len() - 2);
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"GBK\"?><Result><SubAcctNo>1234</SubAcctNo>\
             <Name>张三</Name></Result>"
        );
    }

    #[test]
    fn utf8_request_and_errors() {
        let frame = build_request(
            BodyCharset::Utf8,
            "E",
            "6010",
            "S",
            "20260101",
            "000000",
            "张",
        )
        .unwrap();
        assert_eq!(&frame[6..8], b"02");
        assert_eq!(&frame[30..40], b"0000000003");
        assert!(matches!(
            build_request(
                BodyCharset::Gbk,
                "E",
                "6010",
                "S",
                "20260101",
                "000000",
                "😀"
            ),
            Err(ClientError::Unmappable { .. })
        ));
        assert!(matches!(
            build_request(
                BodyCharset::Gbk,
                "E",
                "6010",
                "S".repeat(21).as_str(),
                "20260101",
                "000000",
                ""
            ),
            Err(ClientError::FieldTooLong { max: 20, .. })
        ));
    }

    #[test]
    fn xml_escaping() {
        let s = xml_request(BodyCharset::Utf8, &[("R", "a&b<c>")]);
        assert!(s.contains("encoding=\"UTF-8\""));
        assert!(s.contains("<R>a&amp;b&lt;c&gt;</R>"));
        assert_eq!(
            xml_unescape("a&amp;b&lt;&#x41;&#66;&bogus;"),
            "a&b<AB&bogus;"
        );
    }

    #[test]
    fn notice_layout() {
        let f = build_notice(
            "CORE0001",
            "IBPS",
            "20260102",
            "101112",
            "6222000000000000001",
            123456,
            "6228000011112222",
            "张三",
            "313100000013",
            "货款 1234567890123456",
        )
        .unwrap();
        assert_eq!(f.len(), 398);
        assert_eq!(&f[..8], b"00000390");
        let r = &f[8..];
        assert_eq!(&r[0..4], b"6920");
        assert_eq!(&r[4..36], format!("{:<32}", "CORE0001").as_bytes());
        assert_eq!(&r[36..40], b"IBPS");
        assert_eq!(&r[40..48], b"20260102");
        assert_eq!(&r[48..54], b"101112");
        assert_eq!(
            &r[54..86],
            format!("{:<32}", "6222000000000000001").as_bytes()
        );
        assert_eq!(&r[86..101], b"000000000123456");
        assert_eq!(&r[101..104], b"RMB");
        assert_eq!(
            &r[104..136],
            format!("{:<32}", "6228000011112222").as_bytes()
        );
        let name = gbk("n", "张三").unwrap();
        assert_eq!(name.len(), 4);
        assert_eq!(&r[136..140], &name[..]);
        assert!(r[140..256].iter().all(|&b| b == b' '));
        assert_eq!(&r[256..270], b"313100000013  ");
        let memo = gbk("m", "货款 1234567890123456").unwrap();
        assert_eq!(&r[270..270 + memo.len()], &memo[..]);
        assert!(r[270 + memo.len()..390].iter().all(|&b| b == b' '));
    }

    #[test]
    fn notice_field_overflow() {
        let long_name = "张".repeat(61); // 122 GBK bytes > 120
        assert!(matches!(
            build_notice("S", "IBPS", "20260101", "000000", "P", 1, "A", &long_name, "", ""),
            Err(ClientError::FieldTooLong {
                max: 120,
                len: 122,
                ..
            })
        ));
        assert!(matches!(
            build_notice(
                "S",
                "IBPS",
                "20260101",
                "000000",
                "P",
                10u64.pow(15),
                "A",
                "",
                "",
                ""
            ),
            Err(ClientError::FieldTooLong { max: 15, .. })
        ));
        // 60 "张" = 120 bytes fits exactly.
        assert!(build_notice(
            "S",
            "IBPS",
            "20260101",
            "000000",
            "P",
            1,
            "A",
            &"张".repeat(60),
            "",
            ""
        )
        .is_ok());
    }

    #[test]
    fn response_accessors() {
        let mut header = build_request(
            BodyCharset::Gbk,
            "E",
            "6072",
            "S1",
            "20260101",
            "000000",
            "",
        )
        .unwrap();
        header[87..93].copy_from_slice(b"E10003");
        let msg = gbk("m", "余额不足").unwrap();
        header[93..93 + msg.len()].copy_from_slice(&msg);
        let body = "<?xml version=\"1.0\" encoding=\"GBK\"?><Result><TotalCount>2</TotalCount>\
            <Empty/><List><Row><FrontSeqNo>1</FrontSeqNo><Remark>a&amp;b</Remark></Row>\
            <Row><FrontSeqNo>2</FrontSeqNo><Remark/></Row></List></Result>";
        let r = Response {
            header,
            body: gbk("b", body).unwrap(),
        };
        assert_eq!(r.return_code(), "E10003");
        assert_eq!(r.return_message(), "余额不足");
        assert_eq!(r.tx_code(), "6072");
        assert_eq!(r.serial(), "S1");
        assert_eq!(r.field("TotalCount").as_deref(), Some("2"));
        assert_eq!(r.field("Empty").as_deref(), Some(""));
        assert_eq!(r.field("Remark").as_deref(), Some("a&b"));
        assert_eq!(r.field("Missing"), None);
        let rows = r.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            vec![
                ("FrontSeqNo".to_owned(), "1".to_owned()),
                ("Remark".to_owned(), "a&b".to_owned())
            ]
        );
        assert_eq!(rows[1][1], ("Remark".to_owned(), String::new()));
    }

    #[test]
    fn core_reply_parse() {
        let mut rec = Vec::new();
        rec.extend_from_slice(b"6920");
        put_text(&mut rec, "s", "CORE0001", 32).unwrap();
        rec.extend_from_slice(b"0000");
        put_text(&mut rec, "m", "成功", 60).unwrap();
        let r = CoreReply::parse(&rec).unwrap();
        assert_eq!(r.bank_serial, "CORE0001");
        assert_eq!(r.result, "0000");
        assert_eq!(r.message, "成功");
        assert!(CoreReply::parse(&rec[..99]).is_err());
    }

    #[test]
    fn header_field_lookup() {
        assert_eq!(header_field_at(0), Some((1, "message class")));
        assert_eq!(header_field_at(53), Some((10, "date")));
        assert_eq!(header_field_at(66), Some((11, "time")));
        assert_eq!(header_field_at(221), Some((21, "attachment count")));
        assert_eq!(header_field_at(222), None);
        let total: usize = HEADER_FIELDS.iter().map(|f| f.2).sum();
        assert_eq!(total, HEADER_LEN);
    }

    #[tokio::test]
    async fn frame_readers_over_sockets() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0u8; 222];
            s.read_exact(&mut req).await.unwrap();
            let mut body = vec![0u8; parse_digits(&req[30..40], "len").unwrap()];
            s.read_exact(&mut body).await.unwrap();
            let mut resp = req.clone();
            resp[30..40].copy_from_slice(b"0000000005");
            resp[87..93].copy_from_slice(b"000000");
            resp.extend_from_slice(b"hello");
            s.write_all(&resp).await.unwrap();
            // Then a bad length field, then nothing.
            s.read_exact(&mut req).await.unwrap();
            s.read_exact(&mut body).await.unwrap();
            let mut bad = req.clone();
            bad[30..40].copy_from_slice(b"00000000x1");
            s.write_all(&bad).await.unwrap();
        });
        let mut c = PlatformClient::connect(&addr, None, 5000).await.unwrap();
        let r = c.call("E", "6010", "S1", &[]).await.unwrap();
        assert_eq!(r.return_code(), "000000");
        assert_eq!(r.body, b"hello");
        assert!(matches!(
            c.call("E", "6010", "S2", &[]).await,
            Err(ClientError::BadFrame(_))
        ));
        assert!(matches!(c.read_response().await, Err(ClientError::Closed)));
    }
}
