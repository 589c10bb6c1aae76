//! Body charsets of the platform link (docs/protocol.md §1.1, header field 3) and strict
//! GBK / UTF-8 conversion.
//!
//! Every conversion is strict: malformed input bytes and characters that the target
//! charset cannot represent are errors, never replacement characters. Lengths are always
//! **bytes after encoding** (docs/protocol.md "Conventions"), never characters.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, EncoderResult, GBK};

/// A body charset named by A001 header field 3 (docs/protocol.md §1.1): `01` GBK, `02` UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// GBK (header code `01`), the default of the link; the header itself is always GBK.
    Gbk,
    /// UTF-8 (header code `02`).
    Utf8,
}

impl Charset {
    /// Maps the 2-byte header field 3 (§1.1) to a charset: `b"01"` GBK, `b"02"` UTF-8,
    /// anything else `None`.
    pub fn from_header_code(code: &[u8]) -> Option<Charset> {
        match code {
            b"01" => Some(Charset::Gbk),
            b"02" => Some(Charset::Utf8),
            _ => None,
        }
    }

    /// The 2-byte header field 3 value (§1.1) for this charset: `01` or `02`.
    pub fn header_code(self) -> &'static [u8; 2] {
        match self {
            Charset::Gbk => b"01",
            Charset::Utf8 => b"02",
        }
    }

    /// The name written in the XML declaration of a response body (§1.1): `"GBK"` or
    /// `"UTF-8"`.
    pub fn xml_name(self) -> &'static str {
        match self {
            Charset::Gbk => "GBK",
            Charset::Utf8 => "UTF-8",
        }
    }
}

/// A conversion failure. Offsets are byte offsets in the input (encoded bytes for
/// [`decode`], UTF-8 bytes of the `&str` for [`encode`]); the offending content itself is
/// never included, since it may be part of an account number or a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharsetError {
    /// The input bytes are not valid in the charset (first bad byte at `offset`).
    #[error("malformed {charset:?} bytes at offset {offset}")]
    Malformed {
        /// Charset that was being decoded.
        charset: Charset,
        /// Byte offset of the first malformed sequence in the input.
        offset: usize,
    },
    /// A character cannot be represented in the target charset.
    #[error("character at offset {offset} cannot be encoded in {charset:?}")]
    Unmappable {
        /// Charset that was being encoded to.
        charset: Charset,
        /// Byte offset (in the UTF-8 input) of the unmappable character.
        offset: usize,
    },
}

/// Decodes `bytes` in `cs` strictly (§1.1): GBK via
/// `decode_without_bom_handling_and_without_replacement`, UTF-8 via `from_utf8`.
/// ASCII-only input and UTF-8 input are borrowed, not copied.
pub fn decode(bytes: &[u8], cs: Charset) -> Result<Cow<'_, str>, CharsetError> {
    match cs {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => Err(CharsetError::Malformed {
                charset: cs,
                offset: e.valid_up_to(),
            }),
        },
        Charset::Gbk => match GBK.decode_without_bom_handling_and_without_replacement(bytes) {
            Some(s) => Ok(s),
            None => Err(CharsetError::Malformed {
                charset: cs,
                offset: gbk_malformed_offset(bytes),
            }),
        },
    }
}

/// Finds the offset of the first malformed GBK sequence (error path only).
fn gbk_malformed_offset(bytes: &[u8]) -> usize {
    let mut decoder = GBK.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(bytes.len().saturating_mul(3).saturating_add(16));
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        DecoderResult::Malformed(bad, after) => read
            .saturating_sub(usize::from(bad))
            .saturating_sub(usize::from(after)),
        _ => read,
    }
}

/// Encodes `text` in `cs`, refusing characters the charset cannot represent (no HTML
/// character references, no `?`). UTF-8 and ASCII-only text are borrowed.
pub fn encode(text: &str, cs: Charset) -> Result<Cow<'_, [u8]>, CharsetError> {
    if cs == Charset::Utf8 || text.is_ascii() {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    let mut encoder = GBK.new_encoder();
    let cap = encoder
        .max_buffer_length_from_utf8_without_replacement(text.len())
        .unwrap_or(text.len().saturating_mul(2));
    let mut out: Vec<u8> = Vec::with_capacity(cap);
    let mut src = text;
    let mut consumed = 0usize;
    loop {
        let (result, read) =
            encoder.encode_from_utf8_to_vec_without_replacement(src, &mut out, true);
        consumed = consumed.saturating_add(read);
        match result {
            EncoderResult::InputEmpty => return Ok(Cow::Owned(out)),
            EncoderResult::Unmappable(c) => {
                return Err(CharsetError::Unmappable {
                    charset: cs,
                    offset: consumed.saturating_sub(c.len_utf8()),
                })
            }
            EncoderResult::OutputFull => {
                out.reserve(src.len().saturating_sub(read).saturating_mul(2).max(16));
                src = src.get(read..).unwrap_or("");
            }
        }
    }
}

/// Number of bytes `text` takes once encoded in `cs`, checking that every character is
/// representable. Does not allocate (GBK is measured through a small stack buffer).
pub fn encoded_len(text: &str, cs: Charset) -> Result<usize, CharsetError> {
    if cs == Charset::Utf8 || text.is_ascii() {
        return Ok(text.len());
    }
    let mut encoder = GBK.new_encoder();
    let mut buf = [0u8; 256];
    let mut total = 0usize;
    let mut src = text;
    let mut consumed = 0usize;
    loop {
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(src, &mut buf, true);
        total = total.saturating_add(written);
        consumed = consumed.saturating_add(read);
        match result {
            EncoderResult::InputEmpty => return Ok(total),
            EncoderResult::Unmappable(c) => {
                return Err(CharsetError::Unmappable {
                    charset: cs,
                    offset: consumed.saturating_sub(c.len_utf8()),
                })
            }
            EncoderResult::OutputFull => src = src.get(read..).unwrap_or(""),
        }
    }
}

/// Encodes `text` as GBK into at most `max_bytes` bytes, stopping before the first
/// character that would not fit (never splits a character). Unmappable characters become
/// `?`. Used for human-readable messages (e.g. §1.1 header field 14, §2/§3 reply messages).
pub fn gbk_truncated(text: &str, max_bytes: usize) -> Vec<u8> {
    if let Ok(whole) = encode(text, Charset::Gbk) {
        if whole.len() <= max_bytes {
            return whole.into_owned();
        }
    }
    let mut out = Vec::with_capacity(max_bytes.min(text.len().saturating_mul(2)));
    let mut encoder = GBK.new_encoder();
    for c in text.chars() {
        let mut utf8 = [0u8; 4];
        let s: &str = c.encode_utf8(&mut utf8);
        let mut tmp = [0u8; 8];
        let (result, _, written) = encoder.encode_from_utf8_without_replacement(s, &mut tmp, false);
        let bytes: &[u8] = match result {
            EncoderResult::InputEmpty => tmp.get(..written).unwrap_or(b"?"),
            _ => b"?",
        };
        if out.len().saturating_add(bytes.len()) > max_bytes {
            break;
        }
        out.extend_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_codes_round_trip() {
        for cs in [Charset::Gbk, Charset::Utf8] {
            assert_eq!(Charset::from_header_code(cs.header_code()), Some(cs));
        }
        assert_eq!(Charset::from_header_code(b"03"), None);
        assert_eq!(Charset::from_header_code(b"1"), None);
        assert_eq!(Charset::Gbk.xml_name(), "GBK");
        assert_eq!(Charset::Utf8.xml_name(), "UTF-8");
    }

    #[test]
    fn chinese_name_byte_lengths() {
        assert_eq!(encoded_len("张三", Charset::Gbk), Ok(4));
        assert_eq!(encoded_len("张三", Charset::Utf8), Ok(6));
        assert_eq!(encoded_len("abc张三", Charset::Gbk), Ok(7));
        let gbk = encode("张三", Charset::Gbk).unwrap();
        assert_eq!(gbk.as_ref(), &[0xD5, 0xC5, 0xC8, 0xFD]);
        assert_eq!(decode(&gbk, Charset::Gbk).unwrap(), "张三");
    }

    #[test]
    fn gbk_round_trip_long_text() {
        let text = "深圳市某某科技有限公司 Shenzhen Co., Ltd. 付款方备注".repeat(20);
        let bytes = encode(&text, Charset::Gbk).unwrap();
        assert_eq!(bytes.len(), encoded_len(&text, Charset::Gbk).unwrap());
        assert_eq!(decode(&bytes, Charset::Gbk).unwrap(), text);
    }

    #[test]
    fn malformed_gbk_is_refused_with_offset() {
        // 0xD5 alone at the end, and 0xFF lead byte.
        assert_eq!(
            decode(b"ab\xD5", Charset::Gbk),
            Err(CharsetError::Malformed {
                charset: Charset::Gbk,
                offset: 2
            })
        );
        assert!(matches!(
            decode(b"abc\xFFx", Charset::Gbk),
            Err(CharsetError::Malformed { .. })
        ));
        assert_eq!(
            decode(b"a\xFFb", Charset::Utf8),
            Err(CharsetError::Malformed {
                charset: Charset::Utf8,
                offset: 1
            })
        );
    }

    #[test]
    fn unmappable_is_refused() {
        // An emoji is not in GBK.
        assert_eq!(
            encode("ab😀", Charset::Gbk),
            Err(CharsetError::Unmappable {
                charset: Charset::Gbk,
                offset: 2
            })
        );
        assert!(encoded_len("张😀", Charset::Gbk).is_err());
        assert_eq!(encode("ab😀", Charset::Utf8).unwrap().len(), 6);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(gbk_truncated("张三", 3), vec![0xD5, 0xC5]);
        assert_eq!(gbk_truncated("a张三", 3), vec![b'a', 0xD5, 0xC5]);
        assert_eq!(gbk_truncated("a😀", 10), b"a?".to_vec());
    }
}

/// The longest prefix of `text` that fits `max_bytes` once GBK-encoded, counting 1 byte per
/// ASCII character and 2 per other character (GBK's maximum, so the bound is never exceeded).
/// Used where a longer field must go into a narrower fixed-width one (a 120-byte `Remark`
/// into the rail's 60-byte memo, docs/protocol.md §3).
pub fn gbk_prefix(text: &str, max_bytes: usize) -> &str {
    let mut used = 0usize;
    for (i, c) in text.char_indices() {
        let n = if c.is_ascii() { 1 } else { 2 };
        if used + n > max_bytes {
            return text.get(..i).unwrap_or("");
        }
        used += n;
    }
    text
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn gbk_prefix_cuts_at_character_boundaries() {
        assert_eq!(gbk_prefix("abc", 2), "ab");
        assert_eq!(gbk_prefix("货款abc", 3), "货");
        assert_eq!(gbk_prefix("货款abc", 4), "货款");
        assert_eq!(gbk_prefix("货款abc", 60), "货款abc");
        let long = "提".repeat(60);
        let cut = gbk_prefix(&long, 60);
        assert_eq!(encoded_len(cut, Charset::Gbk).ok(), Some(60));
    }
}
