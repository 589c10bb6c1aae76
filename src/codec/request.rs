//! Schema-driven validation of request bodies (docs/protocol.md §1.2 amounts, §1.3 fields).
//!
//! [`validate_request`] turns a parsed [`XmlBody`] into typed [`Fields`] using a
//! [`TxSchema`]; any fault is a [`FieldFault`], which the server answers with `YQ9993`.
//! Zero and negative amounts are *valid* here (the business layer answers `E10009`).

use super::charset::{self, Charset};
use super::schema::{FieldKind, FieldSpec, TxSchema};
use super::xml::XmlBody;

/// Largest number of integer digits of an amount (§1.2).
pub const AMOUNT_INT_DIGITS_MAX: usize = 12;
/// Largest number of fractional digits of an amount (§1.2).
pub const AMOUNT_FRAC_DIGITS_MAX: usize = 2;
/// Largest number of digits of an `int` field.
pub const INT_DIGITS_MAX: usize = 9;

/// A typed request value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `text`, `digits` and `enum` fields, as received (already trimmed by the XML parser).
    Text(String),
    /// `amount` fields in integer fen (1/100 CNY); may be zero or negative.
    Amount(i64),
    /// `date` fields as the number `yyyymmdd`.
    Date(u32),
    /// `int` fields (1..=999,999,999).
    Int(u32),
}

/// The validated fields of one request: present fields and absent optional fields that
/// have a schema default, in schema order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    values: Vec<(String, Value)>,
}

impl Fields {
    /// The value of field `name`, if present or defaulted.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A `text` / `digits` / `enum` field.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// An `amount` field, in fen.
    pub fn amount_fen(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Value::Amount(v)) => Some(*v),
            _ => None,
        }
    }

    /// A `date` field as `yyyymmdd`.
    pub fn date(&self, name: &str) -> Option<u32> {
        match self.get(name) {
            Some(Value::Date(v)) => Some(*v),
            _ => None,
        }
    }

    /// An `int` field.
    pub fn int(&self, name: &str) -> Option<u32> {
        match self.get(name) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// All (name, value) pairs in schema order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// A request field fault (→ `YQ9993`, §1.4): the field name and a fixed reason; never the
/// value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct FieldFault {
    /// Element name of the faulty field.
    pub field: String,
    /// Why it was refused (fixed text, no content).
    pub reason: &'static str,
}

/// Parses a §1.2 amount: exactly `-?[0-9]{1,12}(\.[0-9]{1,2})?` (no `+`, no leading or
/// trailing dot, no exponent, spaces or separators) into integer fen with checked
/// arithmetic. Zero and negative values are returned (as fen ≤ 0), not refused.
pub fn parse_amount_fen(s: &str) -> Result<i64, &'static str> {
    let bytes = s.as_bytes();
    let (negative, rest) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, bytes),
        None => return Err("empty amount"),
    };
    let (int_part, frac_part) = match rest.iter().position(|b| *b == b'.') {
        Some(dot) => (
            rest.get(..dot).unwrap_or(&[]),
            Some(rest.get(dot.saturating_add(1)..).unwrap_or(&[])),
        ),
        None => (rest, None),
    };
    if int_part.is_empty() || !int_part.iter().all(u8::is_ascii_digit) {
        return Err("amount is not a plain decimal");
    }
    if int_part.len() > AMOUNT_INT_DIGITS_MAX {
        return Err("amount has more than 12 integer digits");
    }
    let mut fen: i64 = 0;
    for b in int_part {
        fen = fen
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or("amount overflow")?;
    }
    fen = fen.checked_mul(100).ok_or("amount overflow")?;
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err("amount is not a plain decimal");
        }
        if frac.len() > AMOUNT_FRAC_DIGITS_MAX {
            return Err("amount has more than 2 fractional digits");
        }
        let mut scale = 10i64;
        for b in frac {
            fen = fen
                .checked_add(i64::from(b - b'0').saturating_mul(scale))
                .ok_or("amount overflow")?;
            scale /= 10;
        }
    }
    Ok(if negative { -fen } else { fen })
}

/// Parses a `yyyyMMdd` date that exists in the calendar (year 0001-9999) into `yyyymmdd`.
pub fn parse_date(s: &str) -> Result<u32, &'static str> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("date is not yyyyMMdd");
    }
    let n: u32 = s.parse().map_err(|_| "date is not yyyyMMdd")?;
    let (y, m, d) = (n / 10_000, (n / 100) % 100, n % 100);
    let y = i32::try_from(y).map_err(|_| "date is not yyyyMMdd")?;
    if y < 1 || chrono::NaiveDate::from_ymd_opt(y, m, d).is_none() {
        return Err("date does not exist");
    }
    Ok(n)
}

/// Parses a positive decimal integer of at most 9 ASCII digits.
pub fn parse_int(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || s.len() > INT_DIGITS_MAX || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a positive integer of at most 9 digits");
    }
    match s.parse::<u32>() {
        Ok(0) => Err("integer must be positive"),
        Ok(n) => Ok(n),
        Err(_) => Err("not a positive integer of at most 9 digits"),
    }
}

fn typed_value(spec: &FieldSpec, raw: &str, cs: Charset) -> Result<Value, &'static str> {
    match charset::encoded_len(raw, cs) {
        Ok(n) if n <= spec.max_bytes => {}
        Ok(_) => return Err("too long"),
        Err(_) => return Err("character not representable in the body charset"),
    }
    // What is stored must fit every later reply, GBK ones included, even when this request
    // came in UTF-8 (docs/protocol.md §1.1; issue 7, item 3): YQ9993 otherwise.
    if cs == Charset::Utf8 && charset::encoded_len(raw, Charset::Gbk).is_err() {
        return Err("character not representable in GBK");
    }
    match spec.kind {
        FieldKind::Text => Ok(Value::Text(raw.to_owned())),
        FieldKind::Digits => {
            if raw.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Value::Text(raw.to_owned()))
            } else {
                Err("not digits")
            }
        }
        FieldKind::Enum => {
            if spec.values.iter().any(|v| v == raw) {
                Ok(Value::Text(raw.to_owned()))
            } else {
                Err("not an allowed value")
            }
        }
        FieldKind::Amount => parse_amount_fen(raw).map(Value::Amount),
        FieldKind::Date => parse_date(raw).map(Value::Date),
        FieldKind::Int => parse_int(raw).map(Value::Int),
    }
}

/// Validates `body.fields` against `schema.request` for a body in charset `cs`.
///
/// Faults: a required field missing or empty (`"missing"`), a field given twice
/// (`"duplicate"`), a value longer than `max_bytes` once encoded in `cs` (`"too long"`),
/// or a value not of its kind. Unknown elements and lists are ignored; absent or empty
/// optional fields take their schema default (parsed by kind) or are left out.
pub fn validate_request(
    schema: &TxSchema,
    body: &XmlBody,
    cs: Charset,
) -> Result<Fields, FieldFault> {
    let mut found: Vec<Option<&str>> = vec![None; schema.request.len()];
    for (name, value) in &body.fields {
        let Some(index) = schema.request.iter().position(|s| s.name == *name) else {
            continue;
        };
        let slot = found.get_mut(index).ok_or_else(|| FieldFault {
            field: name.clone(),
            reason: "internal",
        })?;
        if slot.is_some() {
            return Err(FieldFault {
                field: name.clone(),
                reason: "duplicate",
            });
        }
        *slot = Some(value.as_str());
    }
    let mut values = Vec::with_capacity(schema.request.len());
    for (spec, raw) in schema.request.iter().zip(found) {
        let fault = |reason| FieldFault {
            field: spec.name.clone(),
            reason,
        };
        let raw = match raw.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None if spec.required => return Err(fault("missing")),
            None => match &spec.default {
                Some(d) => d.as_str(),
                None => continue,
            },
        };
        values.push((
            spec.name.clone(),
            typed_value(spec, raw, cs).map_err(fault)?,
        ));
    }
    Ok(Fields { values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::schema::Schemas;

    #[test]
    fn amount_ok_cases() {
        let ok: [(&str, i64); 10] = [
            ("1234.5", 123_450),
            ("1234.50", 123_450),
            ("0.01", 1),
            ("999999999999.99", 99_999_999_999_999),
            ("1", 100),
            ("007", 700),
            ("0", 0),
            ("-3.00", -300),
            ("-0", 0),
            ("12.3", 1230),
        ];
        for (s, fen) in ok {
            assert_eq!(parse_amount_fen(s), Ok(fen), "{s}");
        }
    }

    #[test]
    fn amount_fault_cases() {
        for s in [
            "1234.567",
            "1e5",
            "+1",
            ".5",
            "5.",
            " 5",
            "5 ",
            "1,000",
            "1000000000000",
            "",
            "-",
            "-.5",
            "1..2",
            "0x10",
            "１",
            "1.2.3",
            "--1",
            "NaN",
            "1_000",
        ] {
            assert!(parse_amount_fen(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn dates_and_ints() {
        assert_eq!(parse_date("20240229"), Ok(20240229));
        assert!(parse_date("20230229").is_err());
        assert!(parse_date("20241301").is_err());
        assert!(parse_date("2024011").is_err());
        assert!(parse_date("00000101").is_err());
        assert!(parse_date("2024-1-1").is_err());
        assert_eq!(parse_int("1"), Ok(1));
        assert_eq!(parse_int("999999999"), Ok(999_999_999));
        assert!(parse_int("0").is_err());
        assert!(parse_int("1000000000").is_err());
        assert!(parse_int("-1").is_err());
        assert!(parse_int("+1").is_err());
    }

    fn body(fields: &[(&str, &str)]) -> XmlBody {
        XmlBody {
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            lists: vec![],
        }
    }

    fn transfer() -> Vec<(&'static str, &'static str)> {
        vec![
            ("OutSubAcctNo", "1000000000000001"),
            ("OutMemberCode", "M001"),
            ("InSubAcctNo", "1000000000000002"),
            ("InMemberCode", "M002"),
            ("TranAmt", "1234.5"),
            ("OrderNo", "ORD-1"),
            ("Remark", "货款"),
            ("Unknown", "ignored"),
        ]
    }

    #[test]
    fn transfer_validates_with_defaults() {
        let s = Schemas::load_embedded().unwrap();
        let f = validate_request(s.tx("6034").unwrap(), &body(&transfer()), Charset::Gbk).unwrap();
        assert_eq!(f.amount_fen("TranAmt"), Some(123_450));
        assert_eq!(f.amount_fen("TranFee"), Some(0));
        assert_eq!(f.text("Remark"), Some("货款"));
        assert_eq!(f.text("Unknown"), None);
        let open = validate_request(
            s.tx("6248").unwrap(),
            &body(&[
                ("FundSummaryAcctNo", "6222000000000000001"),
                ("TranNetMemberCode", "M1"),
                ("MemberName", "张三"),
                ("MemberGlobalType", "1"),
                ("MemberGlobalId", "11010119900101123X"),
            ]),
            Charset::Gbk,
        )
        .unwrap();
        assert_eq!(open.text("FunctionFlag"), Some("1"));
        assert_eq!(open.text("Mobile"), None);
    }

    #[test]
    fn transfer_faults() {
        let s = Schemas::load_embedded().unwrap();
        let schema = s.tx("6034").unwrap();
        let with = |name: &'static str, value: &'static str| {
            let mut v = transfer();
            v.retain(|(n, _)| *n != name);
            v.push((name, value));
            v
        };
        type Case = (
            Vec<(&'static str, &'static str)>,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                transfer()
                    .into_iter()
                    .filter(|(n, _)| *n != "OrderNo")
                    .collect(),
                "OrderNo",
                "missing",
            ),
            (with("OrderNo", ""), "OrderNo", "missing"),
            (
                with("TranAmt", "1.234"),
                "TranAmt",
                "amount has more than 2 fractional digits",
            ),
            (with("OutSubAcctNo", "10000A"), "OutSubAcctNo", "not digits"),
            (
                with("OrderNo", "0123456789012345678901234567890"),
                "OrderNo",
                "too long",
            ),
            (
                with("Remark", "😀"),
                "Remark",
                "character not representable in the body charset",
            ),
            (
                {
                    let mut v = transfer();
                    v.push(("TranAmt", "1"));
                    v
                },
                "TranAmt",
                "duplicate",
            ),
        ];
        for (fields, field, reason) in cases {
            let fault = validate_request(schema, &body(&fields), Charset::Gbk).unwrap_err();
            assert_eq!((fault.field.as_str(), fault.reason), (field, reason));
        }
        // Zero and negative amounts pass validation.
        let f = validate_request(schema, &body(&with("TranAmt", "-1")), Charset::Gbk).unwrap();
        assert_eq!(f.amount_fen("TranAmt"), Some(-100));
    }

    #[test]
    fn byte_lengths_depend_on_charset() {
        let s = Schemas::load_embedded().unwrap();
        let schema = s.tx("6034").unwrap();
        // 40 Chinese characters: 80 GBK bytes (fits 120), 120 UTF-8 bytes (fits exactly).
        let remark: &'static str = Box::leak("款".repeat(40).into_boxed_str());
        let mut v = transfer();
        v.retain(|(n, _)| *n != "Remark");
        v.push(("Remark", remark));
        assert!(validate_request(schema, &body(&v), Charset::Gbk).is_ok());
        assert!(validate_request(schema, &body(&v), Charset::Utf8).is_ok());
        let remark: &'static str = Box::leak("款".repeat(41).into_boxed_str());
        v.pop();
        v.push(("Remark", remark));
        assert!(validate_request(schema, &body(&v), Charset::Gbk).is_ok());
        assert_eq!(
            validate_request(schema, &body(&v), Charset::Utf8)
                .unwrap_err()
                .reason,
            "too long"
        );
    }

    #[test]
    fn enums_dates_ints() {
        let s = Schemas::load_embedded().unwrap();
        let q = s.tx("6072").unwrap();
        let ok = [
            ("SubAcctNo", "1000000000000001"),
            ("StartDate", "20260101"),
            ("EndDate", "20261231"),
            ("PageNum", "1"),
        ];
        let f = validate_request(q, &body(&ok), Charset::Utf8).unwrap();
        assert_eq!(f.date("StartDate"), Some(20260101));
        assert_eq!(f.int("PageNum"), Some(1));
        let mut bad = ok.to_vec();
        bad[1] = ("StartDate", "20260230");
        assert_eq!(
            validate_request(q, &body(&bad), Charset::Utf8)
                .unwrap_err()
                .field,
            "StartDate"
        );
        let mut bad = ok.to_vec();
        bad[3] = ("PageNum", "0");
        assert_eq!(
            validate_request(q, &body(&bad), Charset::Utf8)
                .unwrap_err()
                .field,
            "PageNum"
        );
        let f6007 = s.tx("6007").unwrap();
        let fr = [
            ("FunctionFlag", "3"),
            ("SubAcctNo", "1"),
            ("TranAmt", "1"),
            ("OrderNo", "o"),
        ];
        let fault = validate_request(f6007, &body(&fr), Charset::Gbk).unwrap_err();
        assert_eq!(
            (fault.field.as_str(), fault.reason),
            ("FunctionFlag", "not an allowed value")
        );
    }
}
