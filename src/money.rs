//! Money: integer fen (1/100 CNY) inside the gateway, decimal strings at the XML boundary.
//!
//! docs/protocol.md "Conventions": amounts in XML are decimal strings with at most 2 fractional digits,
//! amounts in fixed-width records are integer fen; no floating point anywhere. docs/operations.md (design notes):
//! every store keeps integer fen. All arithmetic here is checked.

/// An amount in fen (分, 1/100 CNY). Signed so that decisions can see a refused negative
/// request amount; balances are never negative (docs/ledger.md invariants).
pub type Fen = i64;

/// The largest amount a request may carry: 999,999,999,999.99 CNY in fen (docs/protocol.md §1.3 `Amt`).
pub const AMOUNT_MAX_FEN: Fen = 99_999_999_999_999;

/// Formats fen as a decimal string with exactly two fractional digits: `123450` → `"1234.50"`,
/// `-5` → `"-0.05"`. This is the canonical form of every amount the gateway writes in XML.
pub fn format_fen(fen: Fen) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Converts fen to a `rust_decimal::Decimal` with scale 2 (for callers that want a decimal type).
pub fn to_decimal(fen: Fen) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(fen, 2)
}

/// Checked addition of two amounts; `None` on overflow.
pub fn add(a: Fen, b: Fen) -> Option<Fen> {
    a.checked_add(b)
}

/// Checked subtraction of two amounts; `None` on overflow.
pub fn sub(a: Fen, b: Fen) -> Option<Fen> {
    a.checked_sub(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_two_places() {
        assert_eq!(format_fen(0), "0.00");
        assert_eq!(format_fen(1), "0.01");
        assert_eq!(format_fen(123450), "1234.50");
        assert_eq!(format_fen(AMOUNT_MAX_FEN), "999999999999.99");
        assert_eq!(format_fen(-5), "-0.05");
        assert_eq!(to_decimal(123450).to_string(), "1234.50");
    }

    #[test]
    fn checked_ops_refuse_overflow() {
        assert_eq!(add(i64::MAX, 1), None);
        assert_eq!(sub(i64::MIN, 1), None);
        assert_eq!(add(2, 3), Some(5));
    }
}
