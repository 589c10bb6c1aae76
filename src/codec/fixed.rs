//! Fixed-width GBK records: the bank-core notice and reply (docs/protocol.md §2) and the rail
//! request and reply (§3). Layouts come from `schemas/*.toml` (see [`super::schema`]).
//!
//! Text fields are left-justified and right-padded with spaces; numeric fields are
//! zero-padded on the left (docs/protocol.md "Conventions"). All lengths and offsets are bytes.

use nom::bytes::complete::take;
use nom::IResult;

use super::charset::{self, Charset, CharsetError};

/// How a fixed-width field is padded (docs/protocol.md "Conventions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedKind {
    /// Left-justified GBK text, right-padded with spaces.
    Text,
    /// ASCII decimal digits, zero-padded on the left, using the whole width.
    Num,
}

/// One field of a fixed-width layout: `offset` and `len` in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedField {
    /// Field name as written in the schema file (e.g. `bank_serial`).
    pub name: String,
    /// Byte offset from the start of the record (without the 8-digit prefix).
    pub offset: usize,
    /// Width in bytes.
    pub len: usize,
    /// Padding rule.
    pub kind: FixedKind,
}

/// A fixed-width record layout: contiguous fields from offset 0 to `total_len` bytes
/// (validated when loaded by [`super::schema::Schemas::load_embedded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedLayout {
    /// Layout name (e.g. `core_6920_notice`).
    pub name: String,
    /// Record length in bytes (390 for the §2 notice, 100 for replies, 320 for §3 requests).
    pub total_len: usize,
    /// Fields in offset order.
    pub fields: Vec<FixedField>,
}

impl FixedLayout {
    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<&FixedField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A fixed-width codec failure. Carries the field name and byte offset, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixedError {
    /// The record is not exactly `expected` bytes long.
    #[error("record {layout}: length {actual} bytes, expected {expected}")]
    WrongLength {
        /// Layout name.
        layout: String,
        /// Required length in bytes.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The layout has no field of that name (a programming error of the caller).
    #[error("no field named {field}")]
    NoSuchField {
        /// The name asked for.
        field: String,
    },
    /// A text field is not valid GBK.
    #[error("field {field} at offset {offset}: malformed GBK")]
    BadText {
        /// Field name.
        field: String,
        /// Byte offset of the first bad byte within the record.
        offset: usize,
    },
    /// A numeric field holds something other than ASCII digits over its whole width.
    #[error("field {field} at offset {offset}: not a zero-padded number")]
    NotDigits {
        /// Field name.
        field: String,
        /// Byte offset of the first non-digit byte within the record.
        offset: usize,
    },
    /// A value to encode does not fit the field width (in encoded bytes or digits).
    #[error("field {field}: value too long")]
    FieldTooLong {
        /// Field name.
        field: String,
    },
    /// A text value has a character GBK cannot represent.
    #[error("field {field}: character not representable in GBK")]
    Unmappable {
        /// Field name.
        field: String,
    },
    /// A value of the wrong kind was given for the field (e.g. `Num` for a text field).
    #[error("field {field}: value kind does not match the layout")]
    KindMismatch {
        /// Field name.
        field: String,
    },
}

/// A decoded record: the layout and one byte slice per field (same order as
/// `layout.fields`). Borrowed from the input; no copy is made until a field is read.
#[derive(Clone, Debug)]
pub struct FixedRecord<'a> {
    layout: &'a FixedLayout,
    slices: Vec<&'a [u8]>,
}

fn take_field(len: usize) -> impl Fn(&[u8]) -> IResult<&[u8], &[u8]> {
    move |input: &[u8]| take(len)(input)
}

/// Splits `bytes` (one record without its 8-digit prefix) into the fields of `layout`
/// with nom `take`. `bytes.len()` must equal `layout.total_len`; field contents are not
/// checked here (see [`FixedRecord::text`], [`FixedRecord::num_u64`]).
pub fn decode_record<'a>(
    layout: &'a FixedLayout,
    bytes: &'a [u8],
) -> Result<FixedRecord<'a>, FixedError> {
    let wrong_length = || FixedError::WrongLength {
        layout: layout.name.clone(),
        expected: layout.total_len,
        actual: bytes.len(),
    };
    if bytes.len() != layout.total_len {
        return Err(wrong_length());
    }
    let mut slices = Vec::with_capacity(layout.fields.len());
    let mut rest = bytes;
    for field in &layout.fields {
        let (next, value) = take_field(field.len)(rest).map_err(|_| wrong_length())?;
        slices.push(value);
        rest = next;
    }
    if !rest.is_empty() {
        return Err(wrong_length());
    }
    Ok(FixedRecord { layout, slices })
}

impl<'a> FixedRecord<'a> {
    fn find(&self, name: &str) -> Result<(&'a FixedField, &'a [u8]), FixedError> {
        self.layout
            .fields
            .iter()
            .zip(self.slices.iter())
            .find(|(f, _)| f.name == name)
            .map(|(f, s)| (f, *s))
            .ok_or_else(|| FixedError::NoSuchField {
                field: name.to_owned(),
            })
    }

    /// The layout this record was decoded with.
    pub fn layout(&self) -> &'a FixedLayout {
        self.layout
    }

    /// The raw bytes of field `name` (whole width, padding included).
    pub fn raw(&self, name: &str) -> Result<&'a [u8], FixedError> {
        self.find(name).map(|(_, s)| s)
    }

    /// Field `name` decoded from GBK with trailing spaces removed (leading spaces kept).
    pub fn text(&self, name: &str) -> Result<String, FixedError> {
        let (field, raw) = self.find(name)?;
        let end = raw.iter().rposition(|b| *b != b' ').map_or(0, |p| p + 1);
        let trimmed = raw.get(..end).unwrap_or(&[]);
        match charset::decode(trimmed, Charset::Gbk) {
            Ok(s) => Ok(s.into_owned()),
            Err(CharsetError::Malformed { offset, .. })
            | Err(CharsetError::Unmappable { offset, .. }) => Err(FixedError::BadText {
                field: field.name.clone(),
                offset: field.offset.saturating_add(offset),
            }),
        }
    }

    /// Field `name` as an unsigned integer: every byte of the width must be an ASCII digit
    /// (zero padding, docs/protocol.md "Conventions"); otherwise the error names the field and the
    /// record offset of the first bad byte. Fields wider than 19 digits are refused.
    pub fn num_u64(&self, name: &str) -> Result<u64, FixedError> {
        let (field, raw) = self.find(name)?;
        parse_num(raw).map_err(|pos| FixedError::NotDigits {
            field: field.name.clone(),
            offset: field.offset.saturating_add(pos),
        })
    }
}

/// Parses all-digit bytes; on failure returns the position of the first bad byte.
fn parse_num(raw: &[u8]) -> Result<u64, usize> {
    if raw.is_empty() {
        return Err(0);
    }
    let mut value: u64 = 0;
    for (i, b) in raw.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Err(i);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(i)?;
    }
    Ok(value)
}

/// A value for [`encode_record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedValue<'v> {
    /// Text for a `Text` field: GBK-encoded, must fit, right-padded with spaces.
    Text(&'v str),
    /// Number for a `Num` field: zero-padded on the left, must fit the width in digits.
    Num(u64),
    /// Bytes for any field, copied as is, right-padded with spaces (e.g. `Raw(b"")` fills a
    /// `Num` field with spaces, as §3 `7003` requires for its unused fields).
    Raw(&'v [u8]),
}

/// Encodes one record of `layout` (without the 8-digit prefix). Fields not given are
/// spaces (`Text`) or zeros (`Num`). Errors name the field: `FieldTooLong` when a value
/// does not fit, `Unmappable` for text GBK cannot represent, `KindMismatch` for `Num` on a
/// text field or `Text` on a numeric one, `NoSuchField` for unknown names.
pub fn encode_record(
    layout: &FixedLayout,
    values: &[(&str, FixedValue<'_>)],
) -> Result<Vec<u8>, FixedError> {
    let mut out = vec![b' '; layout.total_len];
    for field in &layout.fields {
        if field.kind == FixedKind::Num {
            if let Some(dst) = out.get_mut(field.offset..field.offset.saturating_add(field.len)) {
                dst.fill(b'0');
            }
        }
    }
    for (name, value) in values {
        let field = layout.field(name).ok_or_else(|| FixedError::NoSuchField {
            field: (*name).to_owned(),
        })?;
        let too_long = || FixedError::FieldTooLong {
            field: field.name.clone(),
        };
        let dst = out
            .get_mut(field.offset..field.offset.saturating_add(field.len))
            .ok_or_else(too_long)?;
        match value {
            FixedValue::Text(text) => {
                if field.kind != FixedKind::Text {
                    return Err(FixedError::KindMismatch {
                        field: field.name.clone(),
                    });
                }
                let bytes =
                    charset::encode(text, Charset::Gbk).map_err(|_| FixedError::Unmappable {
                        field: field.name.clone(),
                    })?;
                write_padded(dst, &bytes, b' ').ok_or_else(too_long)?;
            }
            FixedValue::Raw(bytes) => write_padded(dst, bytes, b' ').ok_or_else(too_long)?,
            FixedValue::Num(n) => {
                if field.kind != FixedKind::Num {
                    return Err(FixedError::KindMismatch {
                        field: field.name.clone(),
                    });
                }
                let mut digits = [0u8; 20];
                let text = format_u64(*n, &mut digits);
                let pad = dst.len().checked_sub(text.len()).ok_or_else(too_long)?;
                let (zeros, tail) = dst.split_at_mut(pad);
                zeros.fill(b'0');
                tail.copy_from_slice(text);
            }
        }
    }
    Ok(out)
}

/// Copies `src` to the start of `dst` and fills the rest with `pad`; `None` if too long.
fn write_padded(dst: &mut [u8], src: &[u8], pad: u8) -> Option<()> {
    let (head, tail) = dst.split_at_mut_checked(src.len())?;
    head.copy_from_slice(src);
    tail.fill(pad);
    Some(())
}

/// Writes the decimal digits of `n` into `buf` and returns them.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::schema::Schemas;
    use proptest::prelude::*;

    fn schemas() -> Schemas {
        Schemas::load_embedded().expect("embedded schemas load")
    }

    fn sample_notice(layout: &FixedLayout) -> Vec<u8> {
        encode_record(
            layout,
            &[
                ("trade_code", FixedValue::Text("6920")),
                ("bank_serial", FixedValue::Text("CORE20261123000001")),
                ("channel", FixedValue::Text("IBPS")),
                ("accounting_date", FixedValue::Num(20261123)),
                ("time", FixedValue::Num(93005)),
                ("payee_account", FixedValue::Text("6222000000000000001")),
                ("amount", FixedValue::Num(12_345_678)),
                ("currency", FixedValue::Text("RMB")),
                ("payer_account", FixedValue::Text("6217000011112222333")),
                ("payer_name", FixedValue::Text("张三")),
                ("payer_bank_code", FixedValue::Text("102100099996")),
                ("memo", FixedValue::Text("货款 1000000000000001")),
            ],
        )
        .expect("encode notice")
    }

    #[test]
    fn notice_round_trip_with_exact_offsets() {
        let s = schemas();
        let bytes = sample_notice(&s.notice);
        assert_eq!(bytes.len(), 390);
        assert_eq!(&bytes[0..4], b"6920");
        assert_eq!(&bytes[48..54], b"093005");
        assert_eq!(&bytes[86..101], b"000000012345678");
        assert_eq!(&bytes[136..140], &[0xD5, 0xC5, 0xC8, 0xFD]);
        assert_eq!(bytes[140], b' ');
        let rec = decode_record(&s.notice, &bytes).unwrap();
        assert_eq!(rec.text("payer_name").unwrap(), "张三");
        assert_eq!(rec.num_u64("amount").unwrap(), 12_345_678);
        assert_eq!(rec.num_u64("time").unwrap(), 93005);
        assert_eq!(rec.text("reserved").unwrap(), "");
        assert_eq!(rec.raw("currency").unwrap(), b"RMB");
    }

    #[test]
    fn decode_errors_name_field_and_offset() {
        let s = schemas();
        let mut bytes = sample_notice(&s.notice);
        assert!(matches!(
            decode_record(&s.notice, &bytes[..389]),
            Err(FixedError::WrongLength {
                expected: 390,
                actual: 389,
                ..
            })
        ));
        bytes[90] = b' ';
        bytes[137] = 0xFF;
        bytes[136] = 0xFF;
        let rec = decode_record(&s.notice, &bytes).unwrap();
        assert_eq!(
            rec.num_u64("amount"),
            Err(FixedError::NotDigits {
                field: "amount".into(),
                offset: 90
            })
        );
        assert!(matches!(
            rec.text("payer_name"),
            Err(FixedError::BadText { offset: 136, .. })
        ));
        assert!(matches!(
            rec.raw("nope"),
            Err(FixedError::NoSuchField { .. })
        ));
        let msg = rec.num_u64("amount").unwrap_err().to_string();
        assert!(msg.contains("amount") && msg.contains("90"));
    }

    #[test]
    fn encode_errors() {
        let s = schemas();
        let reply = &s.notice_reply;
        let long = "长".repeat(31); // 62 GBK bytes > 60
        assert_eq!(
            encode_record(reply, &[("message", FixedValue::Text(&long))]),
            Err(FixedError::FieldTooLong {
                field: "message".into()
            })
        );
        assert!(encode_record(reply, &[("message", FixedValue::Text(&"长".repeat(30)))]).is_ok());
        assert_eq!(
            encode_record(reply, &[("message", FixedValue::Text("😀"))]),
            Err(FixedError::Unmappable {
                field: "message".into()
            })
        );
        assert_eq!(
            encode_record(&s.notice, &[("amount", FixedValue::Num(10u64.pow(15)))]),
            Err(FixedError::FieldTooLong {
                field: "amount".into()
            })
        );
        assert!(
            encode_record(&s.notice, &[("amount", FixedValue::Num(10u64.pow(15) - 1))]).is_ok()
        );
        assert!(matches!(
            encode_record(reply, &[("bogus", FixedValue::Raw(b""))]),
            Err(FixedError::NoSuchField { .. })
        ));
        // Raw blanks a numeric field (7003 queries).
        let q = encode_record(
            &s.rail_request,
            &[
                ("trade_code", FixedValue::Text("7003")),
                ("amount", FixedValue::Raw(b"")),
            ],
        )
        .unwrap();
        assert_eq!(q.len(), 320);
        assert!(q[4..].iter().all(|b| *b == b' '));
        let z = encode_record(&s.rail_request, &[]).unwrap();
        assert_eq!(&z[234..249], b"000000000000000");
    }

    proptest! {
        #[test]
        fn notice_round_trip(
            serial in "[A-Z0-9]{1,32}",
            amount in 0u64..=999_999_999_999_999,
            name in "[a-z张三李四王五 ]{0,40}",
            memo in "[0-9a-z货款]{0,30}",
        ) {
            let s = schemas();
            let bytes = encode_record(&s.notice, &[
                ("trade_code", FixedValue::Text("6920")),
                ("bank_serial", FixedValue::Text(&serial)),
                ("amount", FixedValue::Num(amount)),
                ("payer_name", FixedValue::Text(&name)),
                ("memo", FixedValue::Text(&memo)),
            ]).unwrap();
            let rec = decode_record(&s.notice, &bytes).unwrap();
            prop_assert_eq!(rec.text("bank_serial").unwrap(), serial);
            prop_assert_eq!(rec.num_u64("amount").unwrap(), amount);
            prop_assert_eq!(rec.text("payer_name").unwrap(), name.trim_end());
            prop_assert_eq!(rec.text("memo").unwrap(), memo);
            prop_assert_eq!(rec.num_u64("accounting_date").unwrap(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
            let s = schemas();
            for layout in [&s.notice, &s.notice_reply, &s.rail_request, &s.rail_reply, &s.header] {
                if let Ok(rec) = decode_record(layout, &bytes) {
                    for f in &layout.fields {
                        let _ = rec.text(&f.name);
                        let _ = rec.num_u64(&f.name);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_390_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 390)) {
            let s = schemas();
            let rec = decode_record(&s.notice, &bytes).unwrap();
            for f in &s.notice.fields {
                let _ = rec.text(&f.name);
                let _ = rec.num_u64(&f.name);
            }
        }
    }
}
