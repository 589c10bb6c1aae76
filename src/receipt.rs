//! E-receipts (电子回单): receipt numbers and verification codes (打印校验码).
//!
//! docs/ledger.md "Proof": every posting that touches a sub-account gets an e-receipt. The
//! verification code is a keyed MAC (HMAC-SHA-256 with the server's secret) over the receipt's
//! fields, rendered as 16 characters of `0-9A-Z` (docs/protocol.md §1.3 `6142`), so a code can be
//! neither guessed (36^16 ≈ 2^82 possibilities) nor forged without the secret, and a lookup
//! always returns the same code for the same receipt.

use ring::hmac;

/// Length of a verification code in characters (docs/protocol.md §1.3 `CheckCode`).
pub const CHECK_CODE_LEN: usize = 16;

/// The fields a verification code covers. Amount in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptFields<'a> {
    /// Receipt number (≤ 20 characters).
    pub receipt_no: &'a str,
    /// The gateway's transaction serial (`FrontSeqNo`, 16 characters).
    pub front_seq_no: &'a str,
    /// Booking date `yyyyMMdd`.
    pub booking_date: &'a str,
    /// Payer account number.
    pub payer_acct: &'a str,
    /// Payee account number.
    pub payee_acct: &'a str,
    /// Amount in fen.
    pub amount_fen: i64,
}

/// Computes verification codes with a server secret.
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<secret>)")
    }
}

impl Signer {
    /// A signer for `secret` (any length; 32 random bytes are generated on first start).
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The 16-character `0-9A-Z` verification code of `f`. Fields are joined with `|`
    /// (none of them can contain it: account numbers, digits and dates only).
    pub fn check_code(&self, f: &ReceiptFields<'_>) -> String {
        let msg = format!(
            "{}|{}|{}|{}|{}|{}",
            f.receipt_no, f.front_seq_no, f.booking_date, f.payer_acct, f.payee_acct, f.amount_fen
        );
        let tag = hmac::sign(&self.key, msg.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&tag.as_ref()[..16]);
        let mut n = u128::from_be_bytes(first);
        const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut out = [b'0'; CHECK_CODE_LEN];
        for slot in out.iter_mut() {
            *slot = ALPHABET[(n % 36) as usize];
            n /= 36;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The small-amount verification amount (小额鉴权) for binding attempt `front_seq_no` of
    /// sub-account `sub_acct_no`: 1..=50 fen (0.01–0.50 CNY, docs/ledger.md step 1), from the same
    /// keyed MAC, so the platform cannot predict it and the gateway's decision stays pure.
    pub fn auth_amount_fen(&self, sub_acct_no: &str, front_seq_no: &str) -> i64 {
        let msg = format!("auth|{sub_acct_no}|{front_seq_no}");
        let tag = hmac::sign(&self.key, msg.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        1 + (u64::from_be_bytes(first) % 50) as i64
    }

    /// `true` when `code` is the verification code of `f` (constant-time comparison).
    pub fn verify(&self, f: &ReceiptFields<'_>, code: &str) -> bool {
        let want = self.check_code(f);
        // Constant-time over the code's length: no early exit on the first differing byte.
        want.len() == code.len()
            && want
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(amount_fen: i64) -> ReceiptFields<'static> {
        ReceiptFields {
            receipt_no: "HD202611230000000001",
            front_seq_no: "2026112300000001",
            booking_date: "20261123",
            payer_acct: "9000000000000018",
            payee_acct: "9000000000000026",
            amount_fen,
        }
    }

    #[test]
    fn auth_amount_is_in_range_and_keyed() {
        let s = Signer::new(b"k");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..500 {
            let a = s.auth_amount_fen("9000000000000019", &format!("{i:016}"));
            assert!((1..=50).contains(&a));
            seen.insert(a);
        }
        assert!(seen.len() > 40, "amounts spread over the range");
        assert_eq!(
            s.auth_amount_fen("9000000000000019", "1"),
            s.auth_amount_fen("9000000000000019", "1")
        );
    }

    #[test]
    fn code_is_stable_keyed_and_sensitive_to_every_field() {
        let s = Signer::new(b"secret-one");
        let c = s.check_code(&fields(100));
        assert_eq!(c.len(), CHECK_CODE_LEN);
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert_eq!(c, s.check_code(&fields(100)));
        assert_ne!(c, s.check_code(&fields(101)));
        assert_ne!(c, Signer::new(b"secret-two").check_code(&fields(100)));
        assert!(s.verify(&fields(100), &c));
        assert!(!s.verify(&fields(101), &c));
    }
}
