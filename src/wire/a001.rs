//! The A001 frame of the platform link (docs/protocol.md §1.1): a 222-byte GBK header and a
//! body of exactly header-field-6 bytes.
//!
//! [`A001Codec`] only frames (fields 1, 2 and 6, and the body cap); [`check_request_header`]
//! checks the fields that carry meaning; [`encode_response_header`] builds the reply header.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use crate::codec::charset::{self, Charset};

/// Length of the A001 header in bytes (§1.1).
pub const HEADER_LEN: usize = 222;
/// Default cap on the body length: 1 MiB = 1,048,576 bytes, itself allowed (§1.1).
pub const BODY_MAX_DEFAULT: usize = 1_048_576;

/// The 21 header fields of §1.1 as (schema name, offset, length in bytes). The schema file
/// `schemas/header.toml` is checked against this table at load.
pub const HEADER_FIELDS: [(&str, usize, usize); 21] = [
    ("message_class", 0, 4),
    ("target_system", 4, 2),
    ("charset", 6, 2),
    ("protocol", 8, 2),
    ("enterprise_code", 10, 20),
    ("body_len", 30, 10),
    ("tx_code", 40, 6),
    ("operator", 46, 5),
    ("service_type", 51, 2),
    ("date", 53, 8),
    ("time", 61, 6),
    ("requester_serial", 67, 20),
    ("return_code", 87, 6),
    ("return_message", 93, 100),
    ("continuation_flag", 193, 1),
    ("request_count", 194, 3),
    ("sign_flag", 197, 1),
    ("sign_format", 198, 1),
    ("sign_algorithm", 199, 12),
    ("sign_len", 211, 10),
    ("attachment_count", 221, 1),
];

/// A header field as (offset, length), bytes.
type Span = (usize, usize);
const MESSAGE_CLASS: Span = (0, 4);
const TARGET_SYSTEM: Span = (4, 2);
const CHARSET: Span = (6, 2);
const PROTOCOL: Span = (8, 2);
const ENTERPRISE_CODE: Span = (10, 20);
const BODY_LEN: Span = (30, 10);
const TX_CODE: Span = (40, 6);
const OPERATOR: Span = (46, 5);
const SERVICE_TYPE: Span = (51, 2);
const DATE: Span = (53, 8);
const TIME: Span = (61, 6);
const REQUESTER_SERIAL: Span = (67, 20);
const RETURN_CODE: Span = (87, 6);
const RETURN_MESSAGE: Span = (93, 100);
const CONTINUATION_FLAG: Span = (193, 1);
const REQUEST_COUNT: Span = (194, 3);
const SIGN_FLAG: Span = (197, 1);
const SIGN_FORMAT: Span = (198, 1);
const SIGN_ALGORITHM: Span = (199, 12);
const SIGN_LEN: Span = (211, 10);
const ATTACHMENT_COUNT: Span = (221, 1);

fn field(h: &[u8], (offset, len): Span) -> &[u8] {
    h.get(offset..offset.saturating_add(len)).unwrap_or(&[])
}

fn put(h: &mut [u8; HEADER_LEN], (offset, len): Span, value: &[u8]) {
    if let Some(dst) = h.get_mut(offset..offset.saturating_add(len)) {
        let n = value.len().min(len);
        let (head, tail) = dst.split_at_mut(n);
        head.copy_from_slice(value.get(..n).unwrap_or(&[]));
        tail.fill(b' ');
    }
}

/// One frame as read: the raw header and the body bytes (exactly field 6 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The 222 header bytes, unchecked beyond fields 1, 2 and 6.
    pub header: [u8; HEADER_LEN],
    /// The body (may be empty).
    pub body: bytes::Bytes,
}

/// A framing fault: the frame cannot be delimited, so the server answers `YQ9977` with an
/// empty body and closes the connection (§1.1).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Header field 1 (`A001`), 2 (`01`) or 6 (ten digits) is invalid.
    #[error("untrusted header: field {field} at offset {offset}")]
    Untrusted {
        /// Schema name of the field.
        field: &'static str,
        /// Its byte offset in the header.
        offset: usize,
    },
    /// Field 6 announces more than `max` body bytes; nothing of the body was buffered.
    #[error("body length {body_len} bytes above the maximum {max}")]
    TooLarge {
        /// Announced body length, bytes.
        body_len: u64,
        /// Configured maximum, bytes.
        max: usize,
    },
    /// Transport error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Decoder of A001 frames: 222 header bytes, then field 6 body bytes, capped at
/// `body_max` bytes (checked before any body byte is reserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct A001Codec {
    /// Largest accepted body, bytes (default [`BODY_MAX_DEFAULT`]; exactly this is allowed).
    pub body_max: usize,
}

impl Default for A001Codec {
    fn default() -> Self {
        A001Codec {
            body_max: BODY_MAX_DEFAULT,
        }
    }
}

/// Parses an all-ASCII-digit field; `None` if empty or any byte is not a digit.
fn ascii_u64(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0u64, |acc, b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

impl A001Codec {
    /// Checks the bytes buffered so far (§1.1 framing). Returns `Ok(0)` when `buf` starts
    /// with a whole frame, `Ok(n)` when `n` more bytes are needed ("incomplete" is not an
    /// error), and `Err` when the bytes are bad (untrusted header or body too large),
    /// however many more bytes might come.
    pub fn bytes_needed(&self, buf: &[u8]) -> Result<usize, FrameError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(HEADER_LEN.saturating_sub(buf.len()));
        };
        let body_len = trusted_body_len(header)?;
        if body_len > self.body_max as u64 {
            return Err(FrameError::TooLarge {
                body_len,
                max: self.body_max,
            });
        }
        // body_len <= body_max, so it fits usize.
        let total = HEADER_LEN.saturating_add(usize::try_from(body_len).unwrap_or(usize::MAX));
        Ok(total.saturating_sub(buf.len()))
    }
}

/// Checks header fields 1, 2 and 6 and returns the body length in bytes.
fn trusted_body_len(header: &[u8]) -> Result<u64, FrameError> {
    if field(header, MESSAGE_CLASS) != b"A001" {
        return Err(FrameError::Untrusted {
            field: "message_class",
            offset: MESSAGE_CLASS.0,
        });
    }
    if field(header, TARGET_SYSTEM) != b"01" {
        return Err(FrameError::Untrusted {
            field: "target_system",
            offset: TARGET_SYSTEM.0,
        });
    }
    ascii_u64(field(header, BODY_LEN)).ok_or(FrameError::Untrusted {
        field: "body_len",
        offset: BODY_LEN.0,
    })
}

impl Decoder for A001Codec {
    type Item = RawFrame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, FrameError> {
        let needed = self.bytes_needed(src)?;
        if needed > 0 {
            // Reserve at most 64 KiB ahead: a header announcing up to `body_max` bytes must not
            // reserve them all before they arrive (the buffer grows as bytes come).
            src.reserve(needed.min(64 * 1024));
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(src.get(..HEADER_LEN).unwrap_or(&[0u8; HEADER_LEN]));
        let body_len = usize::try_from(trusted_body_len(&header)?).unwrap_or(usize::MAX);
        src.advance(HEADER_LEN);
        let body = src.split_to(body_len.min(src.len())).freeze();
        Ok(Some(RawFrame { header, body }))
    }
}

/// The meaningful fields of a checked request header (§1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// Body charset (field 3).
    pub charset: Charset,
    /// Field 5, GBK-decoded, trailing spaces removed (not checked against known codes).
    pub enterprise_code: String,
    /// Field 7, GBK-decoded, trailing spaces removed (not checked against known codes).
    pub tx_code: String,
    /// Field 8, raw.
    pub operator: [u8; 5],
    /// Field 12, GBK-decoded, trailing spaces removed, not blank.
    pub requester_serial: String,
}

/// A request header fault (§1.1, §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// A field is malformed (→ `YQ9977`).
    #[error("malformed header field {field} at offset {offset}")]
    Malformed {
        /// Schema name of the field.
        field: &'static str,
        /// Byte offset in the header.
        offset: usize,
    },
    /// Field 12 (requester serial) is blank (→ `YQ9993`).
    #[error("requester serial missing")]
    MissingSerial,
}

fn malformed(name: &'static str, span: Span) -> HeaderFault {
    HeaderFault::Malformed {
        field: name,
        offset: span.0,
    }
}

fn gbk_trimmed(h: &[u8], name: &'static str, span: Span) -> Result<String, HeaderFault> {
    let raw = field(h, span);
    let end = raw.iter().rposition(|b| *b != b' ').map_or(0, |p| p + 1);
    charset::decode(raw.get(..end).unwrap_or(&[]), Charset::Gbk)
        .map(|s| s.into_owned())
        .map_err(|_| malformed(name, span))
}

/// Checks a request header (§1.1): fields 1 `A001`, 2 `01`, 6 ten digits (already
/// guaranteed by [`A001Codec`], re-checked here), 3 `01`/`02`, 4 `01`-`03`, 9 `01`,
/// 17 `0`, 21 `0`, and fields 5, 7, 12 valid GBK — all as `Malformed` (`YQ9977`); then
/// field 12 not blank (`MissingSerial`, `YQ9993`). Malformed faults win over a blank
/// serial. Whether the transaction or enterprise code is known is not checked here.
pub fn check_request_header(h: &[u8; HEADER_LEN]) -> Result<RequestHeader, HeaderFault> {
    if field(h, MESSAGE_CLASS) != b"A001" {
        return Err(malformed("message_class", MESSAGE_CLASS));
    }
    if field(h, TARGET_SYSTEM) != b"01" {
        return Err(malformed("target_system", TARGET_SYSTEM));
    }
    let cs = Charset::from_header_code(field(h, CHARSET)).ok_or(malformed("charset", CHARSET))?;
    if !matches!(field(h, PROTOCOL), b"01" | b"02" | b"03") {
        return Err(malformed("protocol", PROTOCOL));
    }
    let enterprise_code = gbk_trimmed(h, "enterprise_code", ENTERPRISE_CODE)?;
    if ascii_u64(field(h, BODY_LEN)).is_none() {
        return Err(malformed("body_len", BODY_LEN));
    }
    let tx_code = gbk_trimmed(h, "tx_code", TX_CODE)?;
    if field(h, SERVICE_TYPE) != b"01" {
        return Err(malformed("service_type", SERVICE_TYPE));
    }
    let requester_serial = gbk_trimmed(h, "requester_serial", REQUESTER_SERIAL)?;
    if field(h, SIGN_FLAG) != b"0" {
        return Err(malformed("sign_flag", SIGN_FLAG));
    }
    if field(h, ATTACHMENT_COUNT) != b"0" {
        return Err(malformed("attachment_count", ATTACHMENT_COUNT));
    }
    if requester_serial.is_empty() {
        return Err(HeaderFault::MissingSerial);
    }
    let mut operator = [b' '; 5];
    operator.copy_from_slice(field(h, OPERATOR).get(..5).unwrap_or(b"     "));
    Ok(RequestHeader {
        charset: cs,
        enterprise_code,
        tx_code,
        operator,
        requester_serial,
    })
}

/// What the server puts in a response header (§1.1 response column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// Field 13: 6 ASCII characters (§1.4), space-padded or cut to 6 bytes.
    pub return_code: &'a str,
    /// Field 14: GBK-encoded, cut at a character boundary to ≤ 100 bytes, space-padded;
    /// characters GBK cannot represent become `?`.
    pub message: &'a str,
    /// Field 6: body length in bytes.
    pub body_len: usize,
    /// Field 10: server date `yyyyMMdd` (8 bytes).
    pub date: &'a str,
    /// Field 11: server time `HHmmss` (6 bytes).
    pub time: &'a str,
}

/// Writes `n` zero-padded into exactly `len` bytes (keeps the low digits if too wide).
fn put_num(h: &mut [u8; HEADER_LEN], (offset, len): Span, mut n: u64) {
    if let Some(dst) = h.get_mut(offset..offset.saturating_add(len)) {
        for b in dst.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
}

/// Builds the response header for request header `req` (§1.1 response column): `A001`,
/// `01`, field 3 echoed when `01`/`02` else `01`, field 4 `01`, fields 5, 7, 8, 12 echoed
/// byte for byte, field 6 `body_len` zero-padded to 10, field 9 `02`, fields 10/11/13/14
/// from `head`, 15 `0`, 16 `000`, 17 `0`, 18 `0`, 19 twelve spaces, 20 `0000000000`,
/// 21 `0`.
pub fn encode_response_header(req: &[u8; HEADER_LEN], head: &ResponseHead<'_>) -> [u8; HEADER_LEN] {
    let mut h = [b' '; HEADER_LEN];
    put(&mut h, MESSAGE_CLASS, b"A001");
    put(&mut h, TARGET_SYSTEM, b"01");
    let cs = match field(req, CHARSET) {
        c @ (b"01" | b"02") => c,
        _ => b"01",
    };
    put(&mut h, CHARSET, cs);
    put(&mut h, PROTOCOL, b"01");
    for span in [ENTERPRISE_CODE, TX_CODE, OPERATOR, REQUESTER_SERIAL] {
        put(&mut h, span, field(req, span));
    }
    put_num(
        &mut h,
        BODY_LEN,
        u64::try_from(head.body_len).unwrap_or(u64::MAX),
    );
    put(&mut h, SERVICE_TYPE, b"02");
    put(&mut h, DATE, head.date.as_bytes());
    put(&mut h, TIME, head.time.as_bytes());
    put(&mut h, RETURN_CODE, head.return_code.as_bytes());
    put(
        &mut h,
        RETURN_MESSAGE,
        &charset::gbk_truncated(head.message, RETURN_MESSAGE.1),
    );
    put(&mut h, CONTINUATION_FLAG, b"0");
    put(&mut h, REQUEST_COUNT, b"000");
    put(&mut h, SIGN_FLAG, b"0");
    put(&mut h, SIGN_FORMAT, b"0");
    put(&mut h, SIGN_ALGORITHM, b"");
    put(&mut h, SIGN_LEN, b"0000000000");
    put(&mut h, ATTACHMENT_COUNT, b"0");
    h
}

/// A value that does not fit its request header field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderEncodeError {
    /// The value is longer than the field (in GBK bytes), or a date/time has the wrong width.
    #[error("header field {field}: value does not fit")]
    FieldTooLong {
        /// Schema name of the field.
        field: &'static str,
    },
    /// The value has a character GBK cannot represent.
    #[error("header field {field}: not representable in GBK")]
    Unmappable {
        /// Schema name of the field.
        field: &'static str,
    },
    /// The body is longer than 9,999,999,999 bytes.
    #[error("body length does not fit ten digits")]
    BodyTooLong,
}

fn put_text(
    h: &mut [u8; HEADER_LEN],
    name: &'static str,
    span: Span,
    value: &str,
) -> Result<(), HeaderEncodeError> {
    let bytes = charset::encode(value, Charset::Gbk)
        .map_err(|_| HeaderEncodeError::Unmappable { field: name })?;
    if bytes.len() > span.1 {
        return Err(HeaderEncodeError::FieldTooLong { field: name });
    }
    put(h, span, &bytes);
    Ok(())
}

/// Builds a request header (§1.1 request column), for clients, tests and benches: `A001`,
/// `01`, field 3 from `cs`, `01` TCP, the given enterprise code, transaction code and
/// serial (GBK, left-justified), `body_len` zero-padded to 10, operator `00001`, service
/// type `01`, `date` (8 bytes) and `time` (6 bytes), return code 6 spaces, message 100
/// spaces, `0`, `000`, `0`, `0`, 12 spaces, `0000000000`, `0`.
pub fn encode_request_header(
    cs: Charset,
    enterprise_code: &str,
    tx_code: &str,
    serial: &str,
    body_len: usize,
    date: &str,
    time: &str,
) -> Result<[u8; HEADER_LEN], HeaderEncodeError> {
    let mut h = [b' '; HEADER_LEN];
    put(&mut h, MESSAGE_CLASS, b"A001");
    put(&mut h, TARGET_SYSTEM, b"01");
    put(&mut h, CHARSET, cs.header_code());
    put(&mut h, PROTOCOL, b"01");
    put_text(&mut h, "enterprise_code", ENTERPRISE_CODE, enterprise_code)?;
    if body_len > 9_999_999_999 {
        return Err(HeaderEncodeError::BodyTooLong);
    }
    put_num(&mut h, BODY_LEN, body_len as u64);
    put_text(&mut h, "tx_code", TX_CODE, tx_code)?;
    put(&mut h, OPERATOR, b"00001");
    put(&mut h, SERVICE_TYPE, b"01");
    if date.len() != DATE.1 {
        return Err(HeaderEncodeError::FieldTooLong { field: "date" });
    }
    put_text(&mut h, "date", DATE, date)?;
    if time.len() != TIME.1 {
        return Err(HeaderEncodeError::FieldTooLong { field: "time" });
    }
    put_text(&mut h, "time", TIME, time)?;
    put_text(&mut h, "requester_serial", REQUESTER_SERIAL, serial)?;
    put(&mut h, CONTINUATION_FLAG, b"0");
    put(&mut h, REQUEST_COUNT, b"000");
    put(&mut h, SIGN_FLAG, b"0");
    put(&mut h, SIGN_FORMAT, b"0");
    put(&mut h, SIGN_LEN, b"0000000000");
    put(&mut h, ATTACHMENT_COUNT, b"0");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req() -> [u8; HEADER_LEN] {
        encode_request_header(
            Charset::Gbk,
            "DEMOPLATFORM00000001",
            "6034",
            "SER0001",
            5,
            "20261123",
            "093000",
        )
        .unwrap()
    }

    fn frame(header: &[u8; HEADER_LEN], body: &[u8]) -> Vec<u8> {
        let mut v = header.to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn request_header_layout() {
        let h = req();
        let expect = format!(
            "A001010101{:<20}{:010}{:<6}00001012026112309300{}{:<20}{}{}000000{}{}0",
            "DEMOPLATFORM00000001",
            5,
            "6034",
            "0",
            "SER0001",
            " ".repeat(6),
            " ".repeat(100),
            " ".repeat(12),
            "0".repeat(10)
        );
        assert_eq!(std::str::from_utf8(&h).unwrap(), expect);
        assert_eq!(h.len(), 222);
    }

    #[test]
    fn header_checks_table() {
        let ok = req();
        let parsed = check_request_header(&ok).unwrap();
        assert_eq!(parsed.charset, Charset::Gbk);
        assert_eq!(parsed.enterprise_code, "DEMOPLATFORM00000001");
        assert_eq!(parsed.tx_code, "6034");
        assert_eq!(parsed.requester_serial, "SER0001");
        assert_eq!(&parsed.operator, b"00001");

        let m = |field, offset| Err(HeaderFault::Malformed { field, offset });
        type Case = (usize, &'static [u8], Result<(), HeaderFault>);
        let cases: &[Case] = &[
            (0, b"A002", m("message_class", 0)),
            (4, b"02", m("target_system", 4)),
            (6, b"03", m("charset", 6)),
            (6, b"  ", m("charset", 6)),
            (6, b"02", Ok(())),
            (8, b"00", m("protocol", 8)),
            (8, b"04", m("protocol", 8)),
            (8, b"02", Ok(())),
            (8, b"03", Ok(())),
            (10, b"\xFF\xFF", m("enterprise_code", 10)),
            (10, b"UNKNOWN             ", Ok(())),
            (30, b"00000000 5", m("body_len", 30)),
            (40, b"\x81 ", m("tx_code", 40)),
            (40, b"9999  ", Ok(())),
            (46, b"xxxxx", Ok(())),
            (51, b"02", m("service_type", 51)),
            (53, b"        ", Ok(())),
            (61, b"abcdef", Ok(())),
            (67, b"                    ", Err(HeaderFault::MissingSerial)),
            (67, b"\xD5 ", m("requester_serial", 67)),
            (87, b"000000", Ok(())),
            (93, b"xyz", Ok(())),
            (193, b"1", Ok(())),
            (194, b"001", Ok(())),
            (197, b"1", m("sign_flag", 197)),
            (198, b"1", Ok(())),
            (199, b"RSA", Ok(())),
            (211, b"0000000128", Ok(())),
            (221, b"1", m("attachment_count", 221)),
        ];
        for (offset, bytes, expect) in cases {
            let mut h = ok;
            h[*offset..offset + bytes.len()].copy_from_slice(bytes);
            let got = check_request_header(&h).map(|_| ());
            assert_eq!(&got, expect, "offset {offset}");
        }
        // Malformed beats a blank serial.
        let mut h = ok;
        h[67..87].fill(b' ');
        h[197] = b'1';
        assert_eq!(
            check_request_header(&h),
            Err(HeaderFault::Malformed {
                field: "sign_flag",
                offset: 197
            })
        );
        // Chinese enterprise code and serial decode from GBK.
        let h = encode_request_header(
            Charset::Utf8,
            "平台",
            "6010",
            "流水1",
            0,
            "20261123",
            "093000",
        )
        .unwrap();
        let p = check_request_header(&h).unwrap();
        assert_eq!(
            (
                p.enterprise_code.as_str(),
                p.requester_serial.as_str(),
                p.charset
            ),
            ("平台", "流水1", Charset::Utf8)
        );
    }

    #[test]
    fn response_header_layout() {
        let mut r = req();
        r[6..8].copy_from_slice(b"99");
        r[46..51].copy_from_slice(b"OP 01");
        let head = ResponseHead {
            return_code: "E10003",
            message: "余额不足 insufficient available balance",
            body_len: 1234,
            date: "20261124",
            time: "101112",
        };
        let h = encode_response_header(&r, &head);
        assert_eq!(&h[0..4], b"A001");
        assert_eq!(&h[4..6], b"01");
        assert_eq!(&h[6..8], b"01");
        assert_eq!(&h[8..10], b"01");
        assert_eq!(&h[10..30], &r[10..30]);
        assert_eq!(&h[30..40], b"0000001234");
        assert_eq!(&h[40..46], &r[40..46]);
        assert_eq!(&h[46..51], b"OP 01");
        assert_eq!(&h[51..53], b"02");
        assert_eq!(&h[53..61], b"20261124");
        assert_eq!(&h[61..67], b"101112");
        assert_eq!(&h[67..87], &r[67..87]);
        assert_eq!(&h[87..93], b"E10003");
        let msg = charset::encode(head.message, Charset::Gbk).unwrap();
        assert_eq!(&h[93..93 + msg.len()], &msg[..]);
        assert!(h[93 + msg.len()..193].iter().all(|b| *b == b' '));
        assert_eq!(&h[193..199], b"000000");
        assert_eq!(&h[199..211], b"            ");
        assert_eq!(&h[211..222], b"00000000000");
        // UTF-8 requests get 02 back.
        r[6..8].copy_from_slice(b"02");
        assert_eq!(&encode_response_header(&r, &head)[6..8], b"02");
    }

    #[test]
    fn response_message_truncated_at_char_boundary() {
        let msg = format!("a{}", "长".repeat(60)); // 121 bytes
        let head = ResponseHead {
            return_code: "YQ9999",
            message: &msg,
            body_len: 0,
            date: "20261124",
            time: "000000",
        };
        let h = encode_response_header(&req(), &head);
        // 'a' + 49 characters = 99 bytes, then one space.
        assert_eq!(h[93], b'a');
        assert_eq!(h[192], b' ');
        assert_eq!(
            charset::decode(&h[94..192], Charset::Gbk).unwrap(),
            "长".repeat(49)
        );
    }

    #[test]
    fn one_byte_at_a_time_yields_one_frame() {
        let body = b"<Result/>";
        let h = encode_request_header(
            Charset::Gbk,
            "E",
            "6010",
            "S",
            body.len(),
            "20261123",
            "000000",
        )
        .unwrap();
        let mut bytes = frame(&h, body);
        bytes.extend_from_slice(&frame(&h, body)[..10]);
        let mut codec = A001Codec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in &bytes {
            buf.extend_from_slice(&[*b]);
            if let Some(f) = codec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].header, h);
        assert_eq!(&frames[0].body[..], body);
        assert_eq!(buf.len(), 10);
        assert_eq!(codec.bytes_needed(&buf).unwrap(), 212);
    }

    #[test]
    fn body_limit_checked_before_buffering() {
        let max = 1_048_576;
        let mut codec = A001Codec::default();
        let at_max =
            encode_request_header(Charset::Gbk, "E", "6010", "S", max, "20261123", "000000")
                .unwrap();
        assert_eq!(codec.bytes_needed(&at_max).unwrap(), max);
        let over = encode_request_header(
            Charset::Gbk,
            "E",
            "6010",
            "S",
            max + 1,
            "20261123",
            "000000",
        )
        .unwrap();
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&over);
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { body_len, max: m }) => {
                assert_eq!((body_len, m), (max as u64 + 1, max))
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(buf.capacity() < 4096, "capacity {}", buf.capacity());
        let mut huge = over;
        huge[30..40].copy_from_slice(b"9999999999");
        let mut buf = BytesMut::from(&huge[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 4096);
        // Exactly the max: incomplete, waiting for the body.
        let mut buf = BytesMut::from(&at_max[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn untrusted_headers() {
        let good = req();
        for (offset, bytes, name) in [
            (0usize, &b"B001"[..], "message_class"),
            (4, b"02", "target_system"),
            (30, b"000000000x", "body_len"),
            (30, b"         5", "body_len"),
        ] {
            let mut h = good;
            h[offset..offset + bytes.len()].copy_from_slice(bytes);
            let mut buf = BytesMut::from(&h[..]);
            match A001Codec::default().decode(&mut buf) {
                Err(FrameError::Untrusted { field, offset: o }) => {
                    assert_eq!((field, o), (name, offset))
                }
                other => panic!("{other:?}"),
            }
        }
        // Fewer than 222 bytes, even if garbage: incomplete, not bad.
        assert_eq!(A001Codec::default().bytes_needed(b"XXXX").unwrap(), 218);
    }

    #[test]
    fn empty_body_frame() {
        let h =
            encode_request_header(Charset::Gbk, "E", "6010", "S", 0, "20261123", "000000").unwrap();
        let mut buf = BytesMut::from(&h[..]);
        let f = A001Codec::default().decode(&mut buf).unwrap().unwrap();
        assert!(f.body.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn request_header_encode_errors() {
        assert_eq!(
            encode_request_header(
                Charset::Gbk,
                &"E".repeat(21),
                "6010",
                "S",
                0,
                "20261123",
                "000000"
            ),
            Err(HeaderEncodeError::FieldTooLong {
                field: "enterprise_code"
            })
        );
        assert!(
            encode_request_header(Charset::Gbk, "E", "6010", "S", 0, "2026112", "000000").is_err()
        );
        assert!(
            encode_request_header(Charset::Gbk, "E", "6010", "😀", 0, "20261123", "000000")
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)) {
            let mut codec = A001Codec { body_max: 512 };
            let mut buf = BytesMut::new();
            for c in chunks {
                buf.extend_from_slice(&c);
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => { let _ = check_request_header(&f.header); }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }

        #[test]
        fn header_shaped_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 222), len in 0u32..600) {
            bytes[0..4].copy_from_slice(b"A001");
            bytes[4..6].copy_from_slice(b"01");
            bytes[30..40].copy_from_slice(format!("{len:010}").as_bytes());
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&bytes);
            let _ = check_request_header(&h);
            let _ = encode_response_header(&h, &ResponseHead { return_code: "YQ9977", message: "x", body_len: 0, date: "20260101", time: "000000" });
            let mut buf = BytesMut::from(&bytes[..]);
            let r = A001Codec { body_max: 512 }.decode(&mut buf);
            let expected = match r { Ok(None) => len > 0 && len <= 512, Err(FrameError::TooLarge { .. }) => len > 512, Ok(Some(_)) => len == 0, _ => false };
            prop_assert!(expected);
        }
    }
}
