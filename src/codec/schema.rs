//! Layouts as data: the TOML files under `schemas/`, embedded with `include_str!` and
//! parsed and validated once at start-up by [`Schemas::load_embedded`].
//!
//! - `schemas/header.toml`: the 21 fields of the A001 header (docs/protocol.md §1.1)
//! - `schemas/core_6920_notice.toml`, `core_6920_reply.toml`: §2 records (390 / 100 bytes)
//! - `schemas/rail_request.toml`, `rail_reply.toml`: §3 records (320 / 100 bytes)
//! - `schemas/tx/<code>.toml`: request and response fields of each §1.3 transaction code
//! - `schemas/return_codes.toml`: §1.4 platform codes, §2 core results, §3 reject codes

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::charset::{self, Charset};
use super::fixed::{FixedField, FixedKind, FixedLayout};
use crate::wire::a001::{HEADER_FIELDS, HEADER_LEN};

/// Width of header field 14 (return message), bytes (§1.1).
pub const PLATFORM_MESSAGE_MAX_BYTES: usize = 100;
/// Width of the §2 reply message field, bytes.
pub const CORE_MESSAGE_MAX_BYTES: usize = 60;
/// Width of the §3 reply message field, bytes.
pub const RAIL_MESSAGE_MAX_BYTES: usize = 59;
/// Upper bound on any request field `max` (bytes); larger values in a schema are refused.
pub const FIELD_MAX_BYTES_LIMIT: usize = 4096;

/// A schema file that failed to parse or validate. Names the file and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The TOML could not be parsed into the expected shape.
    #[error("schema {file}: {message}")]
    Parse {
        /// Schema file path relative to the crate root.
        file: &'static str,
        /// Parser message (schema files hold no secrets).
        message: String,
    },
    /// The file parsed but breaks a rule (offsets, totals, duplicates, widths...).
    #[error("schema {file}: {reason}")]
    Invalid {
        /// Schema file path relative to the crate root.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Kind of a request or response field of a transaction (docs/protocol.md §1.2, §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Any characters; `max_bytes` counts encoded bytes in the body charset.
    Text,
    /// ASCII `0`-`9` only.
    Digits,
    /// Decimal amount, §1.2: `-?[0-9]{1,12}(\.[0-9]{1,2})?`, held as integer fen.
    Amount,
    /// `yyyyMMdd`, a real calendar date.
    Date,
    /// Positive decimal integer of at most 9 digits.
    Int,
    /// One of the field's `values`.
    Enum,
}

/// One field of a transaction body (§1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Element name, exactly as §1.3 writes it (case-sensitive).
    pub name: String,
    /// Maximum length in bytes after encoding in the body charset.
    pub max_bytes: usize,
    /// Value kind.
    pub kind: FieldKind,
    /// Whether a request must carry a non-empty value.
    pub required: bool,
    /// Allowed values for [`FieldKind::Enum`] (empty otherwise).
    pub values: Vec<String>,
    /// Value taken when an optional field is absent or empty.
    pub default: Option<String>,
}

/// The body layout of one transaction code (§1.3), from `schemas/tx/<code>.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxSchema {
    /// Transaction code, e.g. `6034`.
    pub code: String,
    /// Human-readable operation name.
    pub name: String,
    /// True when the code moves or reserves money (6034, 6007, 6033, 6139, 6240, 6241,
    /// 6065, 6248).
    pub money_moving: bool,
    /// Request fields.
    pub request: Vec<FieldSpec>,
    /// Flat response fields, in the order §1.3 lists them.
    pub response: Vec<FieldSpec>,
    /// Fields of each `<Row>` of the response `<List>` (6072, 6050, 6110), in order.
    pub response_row: Vec<FieldSpec>,
}

/// Return codes and their messages: §1.4 platform codes (≤ 100 GBK bytes), §2 core results
/// (≤ 60 GBK bytes) and §3 rail reject codes (≤ 59 GBK bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReturnCodes {
    platform: BTreeMap<String, String>,
    core: BTreeMap<String, String>,
    rail: BTreeMap<String, String>,
}

impl ReturnCodes {
    /// Message for a §1.4 platform return code (e.g. `E10003`), for header field 14.
    pub fn platform_message(&self, code: &str) -> Option<&str> {
        self.platform.get(code).map(String::as_str)
    }

    /// Message for a §2 core result (`0000`, `1001`, `1002`, `1003`).
    pub fn core_message(&self, code: &str) -> Option<&str> {
        self.core.get(code).map(String::as_str)
    }

    /// Message for a §3 rail reject code (`RJ01`..`RJ09`).
    pub fn rail_message(&self, code: &str) -> Option<&str> {
        self.rail.get(code).map(String::as_str)
    }

    /// All platform codes, sorted.
    pub fn platform_codes(&self) -> impl Iterator<Item = &str> {
        self.platform.keys().map(String::as_str)
    }
}

/// Every layout of the gateway, loaded from the embedded `schemas/` files.
#[derive(Clone, Debug)]
pub struct Schemas {
    /// A001 header, 222 bytes (§1.1).
    pub header: FixedLayout,
    /// 6920 inbound-credit notice, 390 bytes (§2).
    pub notice: FixedLayout,
    /// Reply to a notice, 100 bytes (§2).
    pub notice_reply: FixedLayout,
    /// Rail request, 320 bytes (§3).
    pub rail_request: FixedLayout,
    /// Rail reply, 100 bytes (§3).
    pub rail_reply: FixedLayout,
    /// Transaction schemas by code (§1.3).
    pub tx: BTreeMap<String, TxSchema>,
    /// Return codes and messages (§1.4, §2, §3).
    pub return_codes: ReturnCodes,
}

const HEADER_FILE: (&str, &str) = (
    "schemas/header.toml",
    include_str!("../../schemas/header.toml"),
);
const NOTICE_FILE: (&str, &str) = (
    "schemas/core_6920_notice.toml",
    include_str!("../../schemas/core_6920_notice.toml"),
);
const NOTICE_REPLY_FILE: (&str, &str) = (
    "schemas/core_6920_reply.toml",
    include_str!("../../schemas/core_6920_reply.toml"),
);
const RAIL_REQUEST_FILE: (&str, &str) = (
    "schemas/rail_request.toml",
    include_str!("../../schemas/rail_request.toml"),
);
const RAIL_REPLY_FILE: (&str, &str) = (
    "schemas/rail_reply.toml",
    include_str!("../../schemas/rail_reply.toml"),
);
const RETURN_CODES_FILE: (&str, &str) = (
    "schemas/return_codes.toml",
    include_str!("../../schemas/return_codes.toml"),
);
/// The §1.3 transaction schema files, one per code.
const TX_FILES: [(&str, &str); 13] = [
    (
        "schemas/tx/6248.toml",
        include_str!("../../schemas/tx/6248.toml"),
    ),
    (
        "schemas/tx/6240.toml",
        include_str!("../../schemas/tx/6240.toml"),
    ),
    (
        "schemas/tx/6241.toml",
        include_str!("../../schemas/tx/6241.toml"),
    ),
    (
        "schemas/tx/6065.toml",
        include_str!("../../schemas/tx/6065.toml"),
    ),
    (
        "schemas/tx/6034.toml",
        include_str!("../../schemas/tx/6034.toml"),
    ),
    (
        "schemas/tx/6007.toml",
        include_str!("../../schemas/tx/6007.toml"),
    ),
    (
        "schemas/tx/6033.toml",
        include_str!("../../schemas/tx/6033.toml"),
    ),
    (
        "schemas/tx/6139.toml",
        include_str!("../../schemas/tx/6139.toml"),
    ),
    (
        "schemas/tx/6010.toml",
        include_str!("../../schemas/tx/6010.toml"),
    ),
    (
        "schemas/tx/6072.toml",
        include_str!("../../schemas/tx/6072.toml"),
    ),
    (
        "schemas/tx/6050.toml",
        include_str!("../../schemas/tx/6050.toml"),
    ),
    (
        "schemas/tx/6110.toml",
        include_str!("../../schemas/tx/6110.toml"),
    ),
    (
        "schemas/tx/6142.toml",
        include_str!("../../schemas/tx/6142.toml"),
    ),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    name: String,
    total_len: usize,
    field: Vec<LayoutFieldFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFieldFile {
    name: String,
    offset: usize,
    len: usize,
    kind: FixedKindFile,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FixedKindFile {
    Text,
    Num,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxFile {
    code: String,
    name: String,
    money_moving: bool,
    #[serde(default)]
    request: Vec<FieldFile>,
    #[serde(default)]
    response: Vec<FieldFile>,
    #[serde(default)]
    response_row: Vec<FieldFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    name: String,
    max: usize,
    kind: FieldKind,
    required: bool,
    #[serde(default)]
    values: Vec<String>,
    default: Option<String>,
}

fn invalid(file: &'static str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        file,
        reason: reason.into(),
    }
}

fn parse_toml<T: serde::de::DeserializeOwned>(
    (file, text): (&'static str, &str),
) -> Result<T, SchemaError> {
    toml::from_str(text).map_err(|e| SchemaError::Parse {
        file,
        message: e.to_string(),
    })
}

/// Parses a fixed layout and checks: contiguous from 0, no gaps or overlaps, positive
/// widths, unique names, and the expected total length.
fn load_layout(
    src: (&'static str, &str),
    expected_total: usize,
) -> Result<FixedLayout, SchemaError> {
    let file = src.0;
    let raw: LayoutFile = parse_toml(src)?;
    if raw.total_len != expected_total {
        return Err(invalid(
            file,
            format!(
                "total_len {} but the protocol says {expected_total}",
                raw.total_len
            ),
        ));
    }
    let mut names = BTreeSet::new();
    let mut next_offset = 0usize;
    let mut fields = Vec::with_capacity(raw.field.len());
    for f in raw.field {
        if !names.insert(f.name.clone()) {
            return Err(invalid(file, format!("duplicate field {}", f.name)));
        }
        if f.len == 0 {
            return Err(invalid(file, format!("field {} has length 0", f.name)));
        }
        if f.offset != next_offset {
            return Err(invalid(
                file,
                format!(
                    "field {} at offset {}, expected {next_offset} (gap or overlap)",
                    f.name, f.offset
                ),
            ));
        }
        next_offset = next_offset
            .checked_add(f.len)
            .ok_or_else(|| invalid(file, "offset overflow"))?;
        let kind = match f.kind {
            FixedKindFile::Text => FixedKind::Text,
            FixedKindFile::Num => FixedKind::Num,
        };
        fields.push(FixedField {
            name: f.name,
            offset: f.offset,
            len: f.len,
            kind,
        });
    }
    if next_offset != raw.total_len {
        return Err(invalid(
            file,
            format!(
                "fields end at {next_offset}, total_len is {}",
                raw.total_len
            ),
        ));
    }
    Ok(FixedLayout {
        name: raw.name,
        total_len: raw.total_len,
        fields,
    })
}

fn check_default(file: &'static str, spec: &FieldSpec, default: &str) -> Result<(), SchemaError> {
    let ok = match spec.kind {
        FieldKind::Text => true,
        FieldKind::Digits => !default.is_empty() && default.bytes().all(|b| b.is_ascii_digit()),
        FieldKind::Amount => super::request::parse_amount_fen(default).is_ok(),
        FieldKind::Date => super::request::parse_date(default).is_ok(),
        FieldKind::Int => super::request::parse_int(default).is_ok(),
        FieldKind::Enum => spec.values.iter().any(|v| v == default),
    };
    let fits = charset::encoded_len(default, Charset::Gbk).is_ok_and(|n| n <= spec.max_bytes);
    if ok && fits {
        Ok(())
    } else {
        Err(invalid(
            file,
            format!("field {}: default does not fit its kind", spec.name),
        ))
    }
}

fn load_fields(file: &'static str, raw: Vec<FieldFile>) -> Result<Vec<FieldSpec>, SchemaError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for f in raw {
        if f.name.is_empty() || !f.name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(file, format!("bad field name {:?}", f.name)));
        }
        if !names.insert(f.name.clone()) {
            return Err(invalid(file, format!("duplicate field {}", f.name)));
        }
        if f.max == 0 || f.max > FIELD_MAX_BYTES_LIMIT {
            return Err(invalid(
                file,
                format!(
                    "field {}: max {} out of 1..={FIELD_MAX_BYTES_LIMIT}",
                    f.name, f.max
                ),
            ));
        }
        if (f.kind == FieldKind::Enum) == f.values.is_empty() {
            return Err(invalid(
                file,
                format!(
                    "field {}: values are for enums, and enums need values",
                    f.name
                ),
            ));
        }
        if f.values.iter().any(|v| v.is_empty() || v.len() > f.max) {
            return Err(invalid(
                file,
                format!(
                    "field {}: an enum value is empty or longer than max",
                    f.name
                ),
            ));
        }
        let spec = FieldSpec {
            name: f.name,
            max_bytes: f.max,
            kind: f.kind,
            required: f.required,
            values: f.values,
            default: None,
        };
        if let Some(d) = &f.default {
            if spec.required {
                return Err(invalid(
                    file,
                    format!("field {}: required fields take no default", spec.name),
                ));
            }
            check_default(file, &spec, d)?;
        }
        out.push(FieldSpec {
            default: f.default,
            ..spec
        });
    }
    Ok(out)
}

fn load_tx(src: (&'static str, &str)) -> Result<TxSchema, SchemaError> {
    let file = src.0;
    let raw: TxFile = parse_toml(src)?;
    if raw.code.len() != 4 || !raw.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(file, "code must be 4 digits"));
    }
    if !file.ends_with(&format!("/{}.toml", raw.code)) {
        return Err(invalid(file, "code does not match the file name"));
    }
    Ok(TxSchema {
        request: load_fields(file, raw.request)?,
        response: load_fields(file, raw.response)?,
        response_row: load_fields(file, raw.response_row)?,
        code: raw.code,
        name: raw.name,
        money_moving: raw.money_moving,
    })
}

/// Loads the layout of one action of another dialect (`schemas/<dialect>/<ACTION>.toml`,
/// the same format as `schemas/tx/`): `code` is the dialect's action code (1..=16 ASCII
/// letters or digits) and must match the file name. Errors name the file.
pub fn load_dialect_tx(src: (&'static str, &str)) -> Result<TxSchema, SchemaError> {
    let file = src.0;
    let raw: TxFile = parse_toml(src)?;
    if raw.code.is_empty()
        || raw.code.len() > 16
        || !raw.code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(invalid(file, "code must be 1..=16 ASCII letters or digits"));
    }
    if !file.ends_with(&format!("/{}.toml", raw.code)) {
        return Err(invalid(file, "code does not match the file name"));
    }
    Ok(TxSchema {
        request: load_fields(file, raw.request)?,
        response: load_fields(file, raw.response)?,
        response_row: load_fields(file, raw.response_row)?,
        code: raw.code,
        name: raw.name,
        money_moving: raw.money_moving,
    })
}

fn load_return_codes((file, text): (&'static str, &str)) -> Result<ReturnCodes, SchemaError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| SchemaError::Parse {
        file,
        message: e.to_string(),
    })?;
    let mut codes = ReturnCodes::default();
    let check = |code: &str, msg: &str, width: usize, max: usize| -> Result<(), SchemaError> {
        if code.len() != width || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                file,
                format!("code {code:?} must be {width} ASCII letters or digits"),
            ));
        }
        match charset::encoded_len(msg, Charset::Gbk) {
            Ok(n) if n <= max => Ok(()),
            Ok(n) => Err(invalid(
                file,
                format!("message of {code} is {n} GBK bytes, max {max}"),
            )),
            Err(_) => Err(invalid(
                file,
                format!("message of {code} is not representable in GBK"),
            )),
        }
    };
    for (key, value) in table {
        match (key.as_str(), value) {
            ("core" | "rail", toml::Value::Table(sub)) => {
                let (width, max) = if key == "core" {
                    (4, CORE_MESSAGE_MAX_BYTES)
                } else {
                    (4, RAIL_MESSAGE_MAX_BYTES)
                };
                for (code, msg) in sub {
                    let toml::Value::String(msg) = msg else {
                        return Err(invalid(
                            file,
                            format!("[{key}] {code}: message must be a string"),
                        ));
                    };
                    check(&code, &msg, width, max)?;
                    let map = if key == "core" {
                        &mut codes.core
                    } else {
                        &mut codes.rail
                    };
                    map.insert(code, msg);
                }
            }
            (_, toml::Value::String(msg)) => {
                check(&key, &msg, 6, PLATFORM_MESSAGE_MAX_BYTES)?;
                codes.platform.insert(key, msg);
            }
            _ => return Err(invalid(file, format!("unexpected entry {key}"))),
        }
    }
    for required in ["000000", "YQ9977", "YQ9993", "YQ9999"] {
        if codes.platform_message(required).is_none() {
            return Err(invalid(file, format!("platform code {required} missing")));
        }
    }
    for required in ["0000", "1001", "1002", "1003"] {
        if codes.core_message(required).is_none() {
            return Err(invalid(file, format!("core code {required} missing")));
        }
    }
    Ok(codes)
}

impl Schemas {
    /// Parses and validates every embedded schema file. Fails (naming the file) when a
    /// layout is not contiguous from offset 0, has the wrong total length (222 / 390 / 100
    /// / 320 / 100 bytes), when the header offsets differ from §1.1, on duplicate field
    /// names, enums without values, bad defaults, or return-code messages wider than their
    /// field in GBK bytes.
    pub fn load_embedded() -> Result<Schemas, SchemaError> {
        let header = load_layout(HEADER_FILE, HEADER_LEN)?;
        let spec_matches =
            header.fields.len() == HEADER_FIELDS.len()
                && header.fields.iter().zip(HEADER_FIELDS.iter()).all(
                    |(f, (name, offset, len))| {
                        f.name == *name && f.offset == *offset && f.len == *len
                    },
                );
        if !spec_matches {
            return Err(invalid(
                HEADER_FILE.0,
                "header fields differ from docs/protocol.md §1.1",
            ));
        }
        let mut tx = BTreeMap::new();
        for src in TX_FILES {
            let schema = load_tx(src)?;
            if tx.contains_key(&schema.code) {
                return Err(invalid(src.0, "duplicate transaction code"));
            }
            tx.insert(schema.code.clone(), schema);
        }
        Ok(Schemas {
            header,
            notice: load_layout(NOTICE_FILE, 390)?,
            notice_reply: load_layout(NOTICE_REPLY_FILE, 100)?,
            rail_request: load_layout(RAIL_REQUEST_FILE, 320)?,
            rail_reply: load_layout(RAIL_REPLY_FILE, 100)?,
            tx,
            return_codes: load_return_codes(RETURN_CODES_FILE)?,
        })
    }

    /// The schema of transaction `code` (e.g. `"6034"`, already trimmed), if supported.
    pub fn tx(&self, code: &str) -> Option<&TxSchema> {
        self.tx.get(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Schemas {
        Schemas::load_embedded().unwrap()
    }

    fn offsets(layout: &FixedLayout) -> Vec<(usize, usize)> {
        layout.fields.iter().map(|f| (f.offset, f.len)).collect()
    }

    /// Spec as code: the tables of docs/protocol.md §1.1, §2 and §3, copied by hand.
    #[test]
    fn layouts_equal_protocol_tables() {
        let s = s();
        let header: [(usize, usize); 21] = [
            (0, 4),
            (4, 2),
            (6, 2),
            (8, 2),
            (10, 20),
            (30, 10),
            (40, 6),
            (46, 5),
            (51, 2),
            (53, 8),
            (61, 6),
            (67, 20),
            (87, 6),
            (93, 100),
            (193, 1),
            (194, 3),
            (197, 1),
            (198, 1),
            (199, 12),
            (211, 10),
            (221, 1),
        ];
        assert_eq!(offsets(&s.header), header.to_vec());
        assert_eq!(s.header.total_len, 222);
        let notice = [
            (0, 4),
            (4, 32),
            (36, 4),
            (40, 8),
            (48, 6),
            (54, 32),
            (86, 15),
            (101, 3),
            (104, 32),
            (136, 120),
            (256, 14),
            (270, 60),
            (330, 60),
        ];
        assert_eq!(offsets(&s.notice), notice.to_vec());
        assert_eq!(s.notice.total_len, 390);
        assert_eq!(
            offsets(&s.notice_reply),
            vec![(0, 4), (4, 32), (36, 4), (40, 60)]
        );
        assert_eq!(s.notice_reply.total_len, 100);
        let rail = [
            (0, 4),
            (4, 32),
            (36, 32),
            (68, 32),
            (100, 120),
            (220, 14),
            (234, 15),
            (249, 60),
            (309, 11),
        ];
        assert_eq!(offsets(&s.rail_request), rail.to_vec());
        assert_eq!(s.rail_request.total_len, 320);
        assert_eq!(
            offsets(&s.rail_reply),
            vec![(0, 4), (4, 32), (36, 1), (37, 4), (41, 59)]
        );
        assert_eq!(s.rail_reply.total_len, 100);
        assert_eq!(s.notice.field("amount").unwrap().kind, FixedKind::Num);
        assert_eq!(s.rail_request.field("amount").unwrap().kind, FixedKind::Num);
    }

    #[test]
    fn transaction_codes_and_money_moving() {
        let s = s();
        let all = [
            "6248", "6240", "6241", "6065", "6034", "6007", "6033", "6139", "6010", "6072", "6050",
            "6110", "6142",
        ];
        assert_eq!(s.tx.len(), all.len());
        let moving = [
            "6034", "6007", "6033", "6139", "6240", "6241", "6065", "6248",
        ];
        for code in all {
            let t = s.tx(code).unwrap();
            assert_eq!(t.code, code);
            assert_eq!(t.money_moving, moving.contains(&code), "{code}");
        }
        assert!(s.tx("9999").is_none());
        let f = s
            .tx("6248")
            .unwrap()
            .request
            .iter()
            .find(|f| f.name == "FunctionFlag")
            .unwrap();
        assert!(!f.required);
        assert_eq!(f.default.as_deref(), Some("1"));
        let names: Vec<_> = s
            .tx("6072")
            .unwrap()
            .response_row
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "FrontSeqNo",
                "TranDate",
                "TranTime",
                "BookingType",
                "DcFlag",
                "TranAmt",
                "Balance",
                "PeerAcctNo",
                "Remark"
            ]
        );
        assert!(!s.tx("6050").unwrap().response_row.is_empty());
        assert!(!s.tx("6110").unwrap().response_row.is_empty());
        let e = s
            .tx("6240")
            .unwrap()
            .request
            .iter()
            .find(|f| f.name == "EiconBankBranchId")
            .unwrap();
        assert!(!e.required);
    }

    #[test]
    fn return_codes_loaded_and_fit() {
        let s = s();
        let rc = &s.return_codes;
        assert_eq!(
            rc.platform_message("E10003"),
            Some("余额不足 insufficient available balance")
        );
        for code in [
            "000000", "YQ0000", "YQ9977", "YQ9993", "YQ9985", "YQ9962", "YQ9996", "YQ9971",
            "YQ9999", "E10001", "E10002", "E10003", "E10004", "E10005", "E10006", "E10007",
            "E10008", "E10009",
        ] {
            let m = rc.platform_message(code).unwrap();
            assert!(charset::encoded_len(m, Charset::Gbk).unwrap() <= 100);
        }
        for code in ["0000", "1001", "1002", "1003"] {
            assert!(
                charset::encoded_len(rc.core_message(code).unwrap(), Charset::Gbk).unwrap() <= 60
            );
        }
        for code in ["RJ01", "RJ02", "RJ03", "RJ04", "RJ05", "RJ09"] {
            assert!(rc.rail_message(code).is_some());
        }
        assert_eq!(rc.core_message("9999"), None);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let gap = "name = \"x\"\ntotal_len = 4\n[[field]]\nname = \"a\"\noffset = 0\nlen = 2\nkind = \"text\"\n[[field]]\nname = \"b\"\noffset = 3\nlen = 1\nkind = \"num\"\n";
        assert!(matches!(
            load_layout(("t", gap), 4),
            Err(SchemaError::Invalid { .. })
        ));
        let dup = "name = \"x\"\ntotal_len = 4\n[[field]]\nname = \"a\"\noffset = 0\nlen = 2\nkind = \"text\"\n[[field]]\nname = \"a\"\noffset = 2\nlen = 2\nkind = \"num\"\n";
        assert!(matches!(
            load_layout(("t", dup), 4),
            Err(SchemaError::Invalid { .. })
        ));
        let short = "name = \"x\"\ntotal_len = 4\n[[field]]\nname = \"a\"\noffset = 0\nlen = 2\nkind = \"text\"\n";
        assert!(matches!(
            load_layout(("t", short), 4),
            Err(SchemaError::Invalid { .. })
        ));
        assert!(matches!(
            load_layout(("t", short), 5),
            Err(SchemaError::Invalid { .. })
        ));
        assert!(matches!(
            load_layout(("t", "name = 1"), 5),
            Err(SchemaError::Parse { .. })
        ));
        let enum_no_values = vec![FieldFile {
            name: "A".into(),
            max: 1,
            kind: FieldKind::Enum,
            required: true,
            values: vec![],
            default: None,
        }];
        assert!(load_fields("t", enum_no_values).is_err());
        let long = format!("E10003 = \"{}\"\n[core]\n", "长".repeat(51));
        assert!(load_return_codes(("t", &long)).is_err());
    }
}
