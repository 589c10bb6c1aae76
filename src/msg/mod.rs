//! One file per transaction code: the typed request built from schema-validated fields
//! (`schemas/tx/<code>.toml` checked presence, lengths and kinds), and the one dispatch point
//! [`to_command`]. Response fields are produced by the ledger decision in schema order.

mod t6007;
mod t6010;
mod t6033;
mod t6034;
mod t6050;
mod t6065;
mod t6072;
mod t6110;
mod t6139;
mod t6142;
mod t6240;
mod t6241;
mod t6248;

use crate::codec::request::Fields;
use crate::ledger::Command;

/// A field the typed request needs is absent or unusable (`YQ9993`, docs/protocol.md §1.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct MsgError {
    /// Element name.
    pub field: &'static str,
    /// Why (never the value).
    pub reason: &'static str,
}

/// The transaction codes this gateway serves (docs/protocol.md §1.3). Others get `YQ0000`.
pub const SERVED: [&str; 13] = [
    "6248", "6240", "6241", "6065", "6034", "6007", "6033", "6010", "6072", "6050", "6139", "6110",
    "6142",
];

/// Builds the typed command of transaction `code` from validated fields; `None` when the
/// code is not served (`YQ0000`).
pub fn to_command(code: &str, f: &Fields) -> Option<Result<Command, MsgError>> {
    Some(match code {
        "6248" => t6248::parse(f),
        "6240" => t6240::parse(f),
        "6241" => t6241::parse(f),
        "6065" => t6065::parse(f),
        "6033" => t6033::parse(f),
        "6034" => t6034::parse(f),
        "6007" => t6007::parse(f),
        "6010" => t6010::parse(f),
        "6072" => t6072::parse(f),
        "6050" => t6050::parse(f),
        "6139" => t6139::parse(f),
        "6110" => t6110::parse(f),
        "6142" => t6142::parse(f),
        _ => return None,
    })
}

/// A required text field.
fn text(f: &Fields, field: &'static str) -> Result<String, MsgError> {
    f.text(field).map(str::to_string).ok_or(MsgError {
        field,
        reason: "missing",
    })
}

/// An optional text field (empty when absent).
fn opt_text(f: &Fields, field: &'static str) -> String {
    f.text(field).unwrap_or("").to_string()
}

/// A required amount in fen (may be ≤ 0: the decision answers `E10009`).
fn amount(f: &Fields, field: &'static str) -> Result<i64, MsgError> {
    f.amount_fen(field).ok_or(MsgError {
        field,
        reason: "missing amount",
    })
}

/// A required date as yyyymmdd.
fn date(f: &Fields, field: &'static str) -> Result<u32, MsgError> {
    f.date(field).ok_or(MsgError {
        field,
        reason: "missing date",
    })
}

/// A required positive integer.
fn int(f: &Fields, field: &'static str) -> Result<u32, MsgError> {
    f.int(field).ok_or(MsgError {
        field,
        reason: "missing integer",
    })
}
