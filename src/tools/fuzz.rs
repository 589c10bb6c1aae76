//! Decoder harnesses shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and by
//! `tests/decoder_props.rs`, so that the fuzzers, the property tests and the replay of
//! `fuzz/regressions/` all drive exactly the same code.
//!
//! Each harness feeds arbitrary bytes through one chain of decoders of a hostile-peer link
//! and panics only when an invariant breaks (a decoder that panics by itself is what the
//! fuzzers hunt). Invariants checked besides "no panic":
//! - A001 framing does not depend on how the bytes are split into reads, and each body is
//!   exactly header field 6 bytes;
//! - validated request fields have the kind and bounds their schema gives, and every served
//!   code builds a command (or a [`crate::msg::MsgError`]);
//! - a 6920 notice that parses re-encodes to a notice that parses to the same fields;
//! - a rail reply / request that decodes re-encodes to a record that decodes to itself,
//!   and [`peek_request_key`] agrees with [`decode_request`].

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::codec::charset::{self, Charset};
use crate::codec::fixed::{decode_record, encode_record, FixedKind, FixedValue};
use crate::codec::request::{validate_request, Value, AMOUNT_INT_DIGITS_MAX};
use crate::codec::schema::TxSchema;
use crate::codec::schema::{FieldKind, Schemas};
use crate::codec::xml::{parse_body, XmlBody, XmlLimits};
use crate::dialect::citic;
use crate::msg;
use crate::rail::wire::{
    decode_reply, decode_request, encode_reply, encode_request, is_instruction_id, is_reject_code,
    peek_request_key, RailStatus, TradeCode,
};
use crate::server::core_link::{parse_notice, CORE_RECORD_MAX};
use crate::wire::a001::{check_request_header, A001Codec, HEADER_LEN};
use crate::wire::prefixed::{PrefixedCodec, RECORD_MAX_DEFAULT};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Names of the harnesses (= cargo-fuzz targets = folders under `fuzz/regressions/`).
pub const TARGETS: [&str; 5] = [
    "a001_frame",
    "xml_body",
    "notice_6920",
    "rail_reply",
    "citic_request",
];

/// Body cap used by the `a001_frame` harness (1 MiB, the §1.1 default).
pub const A001_BODY_MAX: usize = 1 << 20;

/// Runs harness `target` (one of [`TARGETS`]) on `data`; `false` for an unknown name.
pub fn run(target: &str, s: &Schemas, data: &[u8]) -> bool {
    match target {
        "a001_frame" => a001_frame(s, data),
        "xml_body" => xml_body(s, data),
        "notice_6920" => notice_6920(s, data),
        "rail_reply" => rail_reply(s, data),
        "citic_request" => citic_request(s, data),
        _ => return false,
    }
    true
}

/// What an A001 decode of a byte stream produced: the frames, then the error that stopped
/// it (as text), if any.
type Framed = (Vec<crate::wire::a001::RawFrame>, Option<String>);

fn a001_frames(chunks: &[&[u8]]) -> Framed {
    let mut codec = A001Codec {
        body_max: A001_BODY_MAX,
    };
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let count = chunks.len();
    for (i, chunk) in chunks.iter().enumerate() {
        buf.extend_from_slice(chunk);
        let last = i + 1 == count;
        loop {
            let got = if last {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            match got {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    (frames, None)
}

/// The platform link (§1.1): frames `data` with [`A001Codec`] twice, all at once and split
/// into two reads at a point chosen from the input, then runs every frame through
/// [`check_request_header`], [`charset::decode`], [`parse_body`], [`validate_request`]
/// for every transaction schema, and [`msg::to_command`].
pub fn a001_frame(s: &Schemas, data: &[u8]) {
    let whole = a001_frames(&[data]);
    let split = data
        .last()
        .map_or(0, |b| usize::from(*b).saturating_mul(data.len()) / 255)
        .min(data.len());
    let (a, b) = data.split_at(split);
    let parts = a001_frames(&[a, b]);
    assert_eq!(
        whole, parts,
        "A001 framing depends on the read split at {split}"
    );
    for f in &whole.0 {
        let announced = std::str::from_utf8(&f.header[30..40])
            .ok()
            .and_then(|t| t.parse::<usize>().ok());
        assert_eq!(announced, Some(f.body.len()), "body is not field 6 bytes");
        let charsets = match check_request_header(&f.header) {
            Ok(h) => vec![h.charset],
            Err(_) => vec![Charset::Gbk, Charset::Utf8],
        };
        for cs in charsets {
            if let Ok(text) = charset::decode(&f.body, cs) {
                body_chain(s, &text, cs);
            }
        }
    }
    // Any 222 bytes as a header, whether or not the framing accepted them.
    if let Some(h) = data.get(..HEADER_LEN) {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(h);
        let _ = check_request_header(&header);
    }
}

/// The XML body (§1.1): `data` as UTF-8 text parsed under both charsets, and `data`
/// decoded from GBK parsed as GBK; each body validated against every schema.
pub fn xml_body(s: &Schemas, data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        body_chain(s, text, Charset::Utf8);
        body_chain(s, text, Charset::Gbk);
    }
    if let Ok(text) = charset::decode(data, Charset::Gbk) {
        if text.as_bytes() != data {
            body_chain(s, &text, Charset::Gbk);
        }
    }
}

/// Parses `text` as a body declared `cs` and validates it against every schema; checks the
/// validated fields against their specs and builds the command of every served code.
fn body_chain(s: &Schemas, text: &str, cs: Charset) {
    let Ok(body) = parse_body(text, cs, &XmlLimits::default()) else {
        return;
    };
    for (code, schema) in &s.tx {
        let Ok(fields) = validate_request(schema, &body, cs) else {
            continue;
        };
        for (name, value) in fields.iter() {
            let spec = schema
                .request
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("{code}: validated field {name} not in the schema"));
            check_value(code, name, spec.kind, spec.max_bytes, value, cs);
        }
        for spec in schema.request.iter().filter(|f| f.required) {
            assert!(
                fields.get(&spec.name).is_some(),
                "{code}: required {} absent after validation",
                spec.name
            );
        }
        let cmd = msg::to_command(code, &fields);
        assert_eq!(
            cmd.is_some(),
            msg::SERVED.contains(&code.as_str()),
            "{code}: to_command disagrees with SERVED"
        );
    }
}

/// The CITIC listener's request decoder (docs/citic.md): `data` as an HTTP body through
/// [`citic::envelope::decode`] (the listener's default XML limits), then, for a served
/// action, [`citic::validate`] against `schemas/citic/<ACTION>.toml` (DLINTSUB: each row of
/// every list), [`citic::check_fields`] and [`citic::to_command`]. Checks besides "no
/// panic": `action` and `userName` are the first such fields of the document; validated
/// values have their spec's kind and bounds; required fields are present; a command is
/// recorded (has a store key) exactly when its action moves money; an error reply built for
/// the request starts with the GBK declaration.
pub fn citic_request(s: &Schemas, data: &[u8]) {
    static ACTIONS: OnceLock<HashMap<String, TxSchema>> = OnceLock::new();
    let actions =
        ACTIONS.get_or_init(|| citic::load_schemas().expect("embedded CITIC schemas load"));
    let Ok(req) = citic::envelope::decode(data, &XmlLimits::default()) else {
        return;
    };
    let first = |n: &str| {
        req.body
            .fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    assert_eq!(req.action, first("action"), "action is the first <action>");
    assert_eq!(
        req.user_name,
        first("userName"),
        "userName is the first <userName>"
    );
    static SHARED: OnceLock<std::sync::Arc<Schemas>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| std::sync::Arc::new(s.clone()));
    let reply = citic::error_reply(shared, crate::codes::ReturnCode::Malformed);
    assert!(reply
        .body
        .starts_with(citic::envelope::DECLARATION.as_bytes()));
    let Some(action) = citic::served(&req.action) else {
        return;
    };
    let schema = actions
        .get(action)
        .unwrap_or_else(|| panic!("{action}: served without a schema"));
    let bodies: Vec<XmlBody> = if action == "DLINTSUB" {
        req.body
            .lists
            .iter()
            .flat_map(|(_, rows)| rows.iter())
            .map(|row| XmlBody {
                fields: row.clone(),
                lists: Vec::new(),
            })
            .collect()
    } else {
        vec![req.body.clone()]
    };
    for body in &bodies {
        let Ok(fields) = citic::validate(schema, body) else {
            continue;
        };
        for (name, value) in fields.iter() {
            let spec = schema
                .request
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("{action}: validated field {name} not in the schema"));
            check_value(action, name, spec.kind, spec.max_bytes, value, Charset::Gbk);
        }
        for spec in schema.request.iter().filter(|f| f.required) {
            assert!(
                fields.get(&spec.name).is_some(),
                "{action}: required {} absent after validation",
                spec.name
            );
        }
        let _ = citic::check_fields(action, &fields);
        let p = citic::to_command(action, &fields, shared.clone(), 20_261_123, "bankfep");
        assert_eq!(
            !p.serial.is_empty(),
            citic::MONEY_MOVING.contains(&action),
            "{action}: recorded exactly when money-moving"
        );
    }
}

fn check_value(code: &str, name: &str, kind: FieldKind, max: usize, v: &Value, cs: Charset) {
    let amount_max: i64 = 10i64.pow(AMOUNT_INT_DIGITS_MAX as u32) * 100 - 1;
    let ok = match (kind, v) {
        (FieldKind::Text | FieldKind::Enum, Value::Text(t)) => {
            charset::encoded_len(t, cs).is_ok_and(|n| n <= max)
        }
        (FieldKind::Digits, Value::Text(t)) => {
            t.len() <= max && t.bytes().all(|b| b.is_ascii_digit())
        }
        (FieldKind::Amount, Value::Amount(fen)) => (-amount_max..=amount_max).contains(fen),
        (FieldKind::Date, Value::Date(d)) => (10_101..=99_991_231).contains(d),
        (FieldKind::Int, Value::Int(n)) => (1..=999_999_999).contains(n),
        _ => false,
    };
    assert!(
        ok,
        "{code}: field {name} validated to {v:?}, not a {kind:?}"
    );
}

/// The bank-core link (§2): `data` through [`PrefixedCodec`] (cap [`CORE_RECORD_MAX`]),
/// every record and `data` itself through [`decode_record`] with the notice layout and
/// [`parse_notice`].
pub fn notice_6920(s: &Schemas, data: &[u8]) {
    let mut codec = PrefixedCodec {
        record_max: CORE_RECORD_MAX,
    };
    let mut buf = BytesMut::from(data);
    while let Ok(Some(rec)) = codec.decode(&mut buf) {
        assert!(rec.len() <= CORE_RECORD_MAX);
        notice_record(s, &rec);
    }
    notice_record(s, data);
}

fn notice_record(s: &Schemas, rec: &[u8]) {
    let Ok(r) = decode_record(&s.notice, rec) else {
        return;
    };
    assert_eq!(rec.len(), s.notice.total_len);
    for f in &s.notice.fields {
        let raw = r.raw(&f.name).expect("layout field");
        assert_eq!(raw.len(), f.len);
        let _ = r.text(&f.name);
        let _ = r.num_u64(&f.name);
    }
    let Some(n) = parse_notice(&r) else {
        return;
    };
    assert!(n.amount >= 0);
    assert!((10_101..=99_991_231).contains(&n.acct_date));
    assert!(["IBPS", "BEPS", "HVPS", "INTR"].contains(&n.channel.as_str()));
    assert!(!n.bank_serial.is_empty() && !n.payee.is_empty());
    // Re-encode what was understood: it must parse back to the same notice.
    let date = n.acct_date.to_string();
    let amount = u64::try_from(n.amount).unwrap_or_default();
    let Ok(again) = encode_record(
        &s.notice,
        &[
            ("trade_code", FixedValue::Text("6920")),
            ("bank_serial", FixedValue::Text(&n.bank_serial)),
            ("channel", FixedValue::Text(&n.channel)),
            ("accounting_date", notice_value(s, "accounting_date", &date)),
            ("time", notice_value(s, "time", &n.time)),
            ("payee_account", FixedValue::Text(&n.payee)),
            ("amount", FixedValue::Num(amount)),
            ("currency", FixedValue::Text("RMB")),
            ("payer_account", FixedValue::Text(&n.payer_acct)),
            ("payer_name", FixedValue::Text(&n.payer_name)),
            ("payer_bank_code", FixedValue::Text(&n.payer_bank)),
            ("memo", FixedValue::Text(&n.memo)),
        ],
    ) else {
        return; // e.g. a GBK sequence that decodes to a character GBK will not encode
    };
    let back = decode_record(&s.notice, &again)
        .ok()
        .and_then(|r| parse_notice(&r));
    assert_eq!(back.as_ref(), Some(&n), "6920 notice does not round-trip");
}

/// A date or time value for the notice layout, as text or number per the schema.
fn notice_value<'v>(s: &Schemas, field: &str, text: &'v str) -> FixedValue<'v> {
    match s.notice.field(field).map(|f| f.kind) {
        Some(FixedKind::Num) => FixedValue::Num(text.parse().unwrap_or_default()),
        _ => FixedValue::Text(text),
    }
}

/// The payment rail (§3): `data`, and every record [`PrefixedCodec`] reads from it,
/// through [`decode_reply`], [`decode_request`] and [`peek_request_key`].
pub fn rail_reply(s: &Schemas, data: &[u8]) {
    rail_record(s, data);
    let mut codec = PrefixedCodec {
        record_max: RECORD_MAX_DEFAULT,
    };
    let mut buf = BytesMut::from(data);
    while let Ok(Some(rec)) = codec.decode(&mut buf) {
        rail_record(s, &rec);
    }
}

fn rail_record(s: &Schemas, rec: &[u8]) {
    if let Ok(r) = decode_reply(s, rec) {
        assert!(is_instruction_id(&r.instruction_id));
        match r.status {
            RailStatus::Failed => assert!(is_reject_code(&r.reject_code)),
            RailStatus::Settled | RailStatus::Pending => assert!(r.reject_code.is_empty()),
        }
        if let Ok(again) = encode_reply(s, &r) {
            assert_eq!(
                decode_reply(s, &again).ok(),
                Some(r),
                "rail reply round trip"
            );
        }
    }
    let peeked = peek_request_key(rec);
    if let Ok(r) = decode_request(s, rec) {
        assert_eq!(
            peeked,
            Some((r.trade, r.instruction_id.clone())),
            "peek_request_key disagrees with decode_request"
        );
        if r.trade != TradeCode::Query {
            assert!((1..=crate::rail::wire::AMOUNT_MAX_FEN).contains(&r.amount_fen));
        }
        if let Ok(again) = encode_request(s, &r) {
            assert_eq!(
                decode_request(s, &again).ok(),
                Some(r),
                "rail request round trip"
            );
        }
    }
}
