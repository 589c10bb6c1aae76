//! Return codes of the platform link (docs/protocol.md §1.4) and result codes of the bank-core
//! link (§2). The human messages live as data in `schemas/return_codes.toml`; the codes
//! themselves are code, because the ledger decides on them.

/// A platform-link return code (header field 13, 6 ASCII characters), docs/protocol.md §1.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReturnCode {
    /// `000000` success.
    Ok,
    /// `YQ0000` unsupported transaction code.
    Unsupported,
    /// `YQ9977` malformed frame, header, XML or charset.
    Malformed,
    /// `YQ9993` missing, oversized or invalid field.
    InvalidField,
    /// `YQ9985` enterprise code unknown or not allowed for this client certificate.
    UnknownEnterprise,
    /// `YQ9962` requester serial reused with a different request.
    SerialReused,
    /// `YQ9996` no such record.
    NoRecord,
    /// `YQ9971` busy: not accepted, retry with the same serial.
    Busy,
    /// `YQ9999` internal error: outcome unknown, query with 6110.
    Internal,
    /// `E10001` sub-account not found or not under this master account / enterprise.
    SubNotFound,
    /// `E10002` member name or code does not match.
    MemberMismatch,
    /// `E10003` insufficient available balance.
    Insufficient,
    /// `E10004` sub-account closed.
    Closed,
    /// `E10005` no verified withdrawal account, or not the bound one.
    NotBound,
    /// `E10006` a withdrawal account is already bound.
    AlreadyBound,
    /// `E10007` verification amount wrong.
    WrongAuthAmount,
    /// `E10008` `OrderNo` already used.
    OrderUsed,
    /// `E10009` amount not allowed.
    AmountNotAllowed,
}

impl ReturnCode {
    /// Every code, in the order of docs/protocol.md §1.4 (used to validate the schema at start-up).
    pub const ALL: [ReturnCode; 18] = [
        ReturnCode::Ok,
        ReturnCode::Unsupported,
        ReturnCode::Malformed,
        ReturnCode::InvalidField,
        ReturnCode::UnknownEnterprise,
        ReturnCode::SerialReused,
        ReturnCode::NoRecord,
        ReturnCode::Busy,
        ReturnCode::Internal,
        ReturnCode::SubNotFound,
        ReturnCode::MemberMismatch,
        ReturnCode::Insufficient,
        ReturnCode::Closed,
        ReturnCode::NotBound,
        ReturnCode::AlreadyBound,
        ReturnCode::WrongAuthAmount,
        ReturnCode::OrderUsed,
        ReturnCode::AmountNotAllowed,
    ];

    /// The 6-character wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnCode::Ok => "000000",
            ReturnCode::Unsupported => "YQ0000",
            ReturnCode::Malformed => "YQ9977",
            ReturnCode::InvalidField => "YQ9993",
            ReturnCode::UnknownEnterprise => "YQ9985",
            ReturnCode::SerialReused => "YQ9962",
            ReturnCode::NoRecord => "YQ9996",
            ReturnCode::Busy => "YQ9971",
            ReturnCode::Internal => "YQ9999",
            ReturnCode::SubNotFound => "E10001",
            ReturnCode::MemberMismatch => "E10002",
            ReturnCode::Insufficient => "E10003",
            ReturnCode::Closed => "E10004",
            ReturnCode::NotBound => "E10005",
            ReturnCode::AlreadyBound => "E10006",
            ReturnCode::WrongAuthAmount => "E10007",
            ReturnCode::OrderUsed => "E10008",
            ReturnCode::AmountNotAllowed => "E10009",
        }
    }

    /// Parses the wire form; `None` for anything not in §1.4.
    pub fn parse(s: &str) -> Option<ReturnCode> {
        ReturnCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// `true` for answers that are final for idempotency (§1.2): everything except
    /// `YQ9971` (not accepted) and `YQ9999` (outcome unknown).
    pub fn is_final(self) -> bool {
        !matches!(self, ReturnCode::Busy | ReturnCode::Internal)
    }
}

/// Checks that `schemas/return_codes.toml` has a message for every platform return code and
/// every core result the gateway can answer; the name of the first missing one otherwise.
/// Run at start-up, so a schema edit cannot leave a reply without its message.
pub fn check_messages(rc: &crate::codec::schema::ReturnCodes) -> Result<(), String> {
    for c in ReturnCode::ALL {
        if rc.platform_message(c.as_str()).is_none() {
            return Err(format!("return code {} has no message", c.as_str()));
        }
    }
    for c in [
        CoreResult::Accepted,
        CoreResult::Malformed,
        CoreResult::UnknownPayee,
        CoreResult::Busy,
    ] {
        if rc.core_message(c.as_str()).is_none() {
            return Err(format!("core result {} has no message", c.as_str()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_message_and_round_trips() {
        let s = crate::codec::schema::Schemas::load_embedded().expect("schemas");
        assert_eq!(check_messages(&s.return_codes), Ok(()));
        for c in ReturnCode::ALL {
            assert_eq!(ReturnCode::parse(c.as_str()), Some(c));
            assert_eq!(c.as_str().len(), 6);
        }
        assert!(!ReturnCode::Busy.is_final());
        assert!(!ReturnCode::Internal.is_final());
        assert!(ReturnCode::Insufficient.is_final());
    }
}

/// A bank-core link result code (docs/protocol.md §2, reply record field "result", 4 characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreResult {
    /// `0000` accepted (also for a repeated bank serial, which moves no money).
    Accepted,
    /// `1001` malformed record.
    Malformed,
    /// `1002` payee account is not a master or sub-account of this gateway.
    UnknownPayee,
    /// `1003` busy, retry.
    Busy,
}

impl CoreResult {
    /// The 4-character wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            CoreResult::Accepted => "0000",
            CoreResult::Malformed => "1001",
            CoreResult::UnknownPayee => "1002",
            CoreResult::Busy => "1003",
        }
    }
}
