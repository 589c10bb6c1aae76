//! 8-digit length-prefixed records of the bank-core link (docs/protocol.md §2) and the payment
//! rail (§3): 8 ASCII digits giving the length of what follows (not counting itself), then
//! the fixed-width record.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Width of the length prefix in bytes.
pub const PREFIX_LEN: usize = 8;
/// Default cap on a record's length in bytes (the largest record, the §2 notice, is 390).
pub const RECORD_MAX_DEFAULT: usize = 1024;

/// A framing fault of a prefixed link; the connection cannot be resynchronised.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    /// The 8-byte prefix is not 8 ASCII digits.
    #[error("length prefix is not 8 ASCII digits")]
    BadPrefix,
    /// The prefix announces more than `max` bytes (nothing of the record was buffered), or
    /// a record to encode is longer than `max`.
    #[error("record length {len} bytes above the maximum {max}")]
    TooLarge {
        /// Announced or given length, bytes.
        len: u64,
        /// Configured maximum, bytes.
        max: usize,
    },
    /// Transport error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Codec of 8-digit length-prefixed records. Decodes to the record without its prefix;
/// encodes a `&[u8]` record by prepending its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixedCodec {
    /// Largest record accepted or written, bytes (checked before reserving space).
    pub record_max: usize,
}

impl Default for PrefixedCodec {
    fn default() -> Self {
        PrefixedCodec {
            record_max: RECORD_MAX_DEFAULT,
        }
    }
}

impl PrefixedCodec {
    /// Checks the bytes buffered so far: `Ok(0)` when a whole record is present, `Ok(n)`
    /// when `n` more bytes are needed, `Err` when the prefix is bad or too large.
    pub fn bytes_needed(&self, buf: &[u8]) -> Result<usize, PrefixError> {
        let Some(prefix) = buf.get(..PREFIX_LEN) else {
            return Ok(PREFIX_LEN.saturating_sub(buf.len()));
        };
        let len = prefix_len(prefix)?;
        if len > self.record_max as u64 {
            return Err(PrefixError::TooLarge {
                len,
                max: self.record_max,
            });
        }
        let total = PREFIX_LEN.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(total.saturating_sub(buf.len()))
    }
}

fn prefix_len(prefix: &[u8]) -> Result<u64, PrefixError> {
    if prefix.len() != PREFIX_LEN {
        return Err(PrefixError::BadPrefix);
    }
    prefix.iter().try_fold(0u64, |acc, b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u64::from(b - b'0'))
        } else {
            Err(PrefixError::BadPrefix)
        }
    })
}

impl Decoder for PrefixedCodec {
    type Item = Bytes;
    type Error = PrefixError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, PrefixError> {
        let needed = self.bytes_needed(src)?;
        if needed > 0 {
            src.reserve(needed);
            return Ok(None);
        }
        let len = usize::try_from(prefix_len(src.get(..PREFIX_LEN).unwrap_or(&[]))?)
            .unwrap_or(usize::MAX);
        src.advance(PREFIX_LEN);
        Ok(Some(src.split_to(len.min(src.len())).freeze()))
    }
}

impl Encoder<&[u8]> for PrefixedCodec {
    type Error = PrefixError;

    fn encode(&mut self, record: &[u8], dst: &mut BytesMut) -> Result<(), PrefixError> {
        if record.len() > self.record_max || record.len() > 99_999_999 {
            return Err(PrefixError::TooLarge {
                len: record.len() as u64,
                max: self.record_max,
            });
        }
        dst.reserve(PREFIX_LEN + record.len());
        dst.put_slice(format!("{:08}", record.len()).as_bytes());
        dst.put_slice(record);
        Ok(())
    }
}

/// Returns `record` preceded by its 8-digit zero-padded length (e.g. `00000390` + 390
/// bytes). Records are fixed layouts of at most a few hundred bytes; a record of 10^8
/// bytes or more would not fit the prefix and must not be passed.
pub fn frame_prefixed(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + record.len());
    out.extend_from_slice(format!("{:08}", record.len()).as_bytes());
    out.extend_from_slice(record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_and_decodes() {
        let rec = vec![b'x'; 390];
        let framed = frame_prefixed(&rec);
        assert_eq!(&framed[..8], b"00000390");
        let mut codec = PrefixedCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in framed.iter().chain(framed.iter()) {
            buf.put_u8(*b);
            if let Some(r) = codec.decode(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0][..], &rec[..]);
        let mut out = BytesMut::new();
        codec.encode(&rec[..100], &mut out).unwrap();
        assert_eq!(&out[..8], b"00000100");
        assert_eq!(out.len(), 108);
    }

    #[test]
    fn bad_and_large_prefixes() {
        let mut codec = PrefixedCodec { record_max: 390 };
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&b"0000039x"[..])),
            Err(PrefixError::BadPrefix)
        ));
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&b" 0000390"[..])),
            Err(PrefixError::BadPrefix)
        ));
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(b"99999999");
        assert!(matches!(
            codec.decode(&mut buf),
            Err(PrefixError::TooLarge {
                len: 99_999_999,
                max: 390
            })
        ));
        assert!(buf.capacity() < 1024);
        assert_eq!(codec.bytes_needed(b"0000").unwrap(), 4);
        assert_eq!(codec.bytes_needed(b"00000390").unwrap(), 390);
        let mut empty = BytesMut::from(&b"00000000"[..]);
        assert_eq!(codec.decode(&mut empty).unwrap().unwrap().len(), 0);
        assert!(codec.encode(&[0u8; 391][..], &mut BytesMut::new()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut codec = PrefixedCodec { record_max: 64 };
            let mut buf = BytesMut::new();
            for c in chunks {
                buf.extend_from_slice(&c);
                if codec.decode(&mut buf).is_err() { break; }
            }
        }

        #[test]
        fn round_trip(rec in proptest::collection::vec(any::<u8>(), 0..500)) {
            let mut buf = BytesMut::from(&frame_prefixed(&rec)[..]);
            let got = PrefixedCodec::default().decode(&mut buf).unwrap().unwrap();
            prop_assert_eq!(&got[..], &rec[..]);
        }
    }
}
