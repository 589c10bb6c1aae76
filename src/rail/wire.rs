//! Typed §3 records (docs/protocol.md §3): the 320-byte rail request and the 100-byte rail
//! reply, both without their 8-digit length prefix (see [`crate::wire::prefixed`]).
//! Layouts come from `schemas/rail_request.toml` and `schemas/rail_reply.toml`.

use crate::codec::fixed::{decode_record, encode_record, FixedError, FixedRecord, FixedValue};
use crate::codec::schema::Schemas;
use crate::money::Fen;

/// Width of the instruction id field in bytes (§3).
pub const INSTRUCTION_ID_MAX: usize = 32;
/// Width of the payer and payee account fields in bytes (§3).
pub const ACCOUNT_MAX: usize = 32;
/// Width of the payee name field in GBK bytes (§3).
pub const PAYEE_NAME_MAX: usize = 120;
/// Width of the payee bank code field in bytes (§3).
pub const PAYEE_BANK_MAX: usize = 14;
/// Width of the memo field in GBK bytes (§3).
pub const MEMO_MAX: usize = 60;
/// Largest amount the 15-digit amount field can carry, in fen.
pub const AMOUNT_MAX_FEN: Fen = 999_999_999_999_999;

/// A §3 trade code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TradeCode {
    /// `7001`: super e-bank credit transfer (网银贷记) to another bank; each must be
    /// strictly below 50,000.00 (see [`super::chunk`]).
    Ibps,
    /// `7002`: same-bank transfer; never split.
    SameBank,
    /// `7003`: status query for an instruction id.
    Query,
}

impl TradeCode {
    /// The four ASCII digits on the wire (`"7001"`, `"7002"`, `"7003"`).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeCode::Ibps => "7001",
            TradeCode::SameBank => "7002",
            TradeCode::Query => "7003",
        }
    }

    /// Parses the four-character trade code; `None` for anything else.
    pub fn parse(code: &str) -> Option<TradeCode> {
        match code {
            "7001" => Some(TradeCode::Ibps),
            "7002" => Some(TradeCode::SameBank),
            "7003" => Some(TradeCode::Query),
            _ => None,
        }
    }
}

/// A §3 rail request (one instruction or one query).
///
/// For [`TradeCode::Query`] only `trade` and `instruction_id` are meaningful; the other
/// fields are empty / zero (build it with [`RailRequest::query`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RailRequest {
    /// Trade code.
    pub trade: TradeCode,
    /// Instruction id, the rail's idempotency key: 1 to 32 printable ASCII characters, no
    /// spaces; unique forever (one per chunk).
    pub instruction_id: String,
    /// Payer account (the master account, or the bank's expense account), ≤ 32 bytes.
    pub payer_acct: String,
    /// Payee account, ≤ 32 bytes.
    pub payee_acct: String,
    /// Payee name, ≤ 120 GBK bytes.
    pub payee_name: String,
    /// Super e-bank code of the payee's bank for `7001` (≤ 14 bytes); empty for `7002`.
    pub payee_bank: String,
    /// Amount in fen; 1 ..= [`AMOUNT_MAX_FEN`] for `7001`/`7002`, 0 for `7003`.
    pub amount_fen: Fen,
    /// Memo, ≤ 60 GBK bytes.
    pub memo: String,
}

impl RailRequest {
    /// A `7003` status query for `instruction_id` (every other field empty / zero).
    pub fn query(instruction_id: &str) -> RailRequest {
        RailRequest {
            trade: TradeCode::Query,
            instruction_id: instruction_id.to_owned(),
            payer_acct: String::new(),
            payee_acct: String::new(),
            payee_name: String::new(),
            payee_bank: String::new(),
            amount_fen: 0,
            memo: String::new(),
        }
    }
}

/// The status byte of a §3 reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RailStatus {
    /// `S`: settled; the money moved.
    Settled,
    /// `F`: failed with a reject code; final unless the code is `RJ04` (no such
    /// instruction, which lets the gateway send the same instruction again, same id).
    Failed,
    /// `P`: processing or unknown; ask again with `7003`.
    Pending,
}

impl RailStatus {
    /// The status byte on the wire: `b'S'`, `b'F'` or `b'P'`.
    pub fn as_byte(self) -> u8 {
        match self {
            RailStatus::Settled => b'S',
            RailStatus::Failed => b'F',
            RailStatus::Pending => b'P',
        }
    }

    /// Parses the status field (`"S"`, `"F"`, `"P"`); `None` for anything else.
    pub fn parse(s: &str) -> Option<RailStatus> {
        match s {
            "S" => Some(RailStatus::Settled),
            "F" => Some(RailStatus::Failed),
            "P" => Some(RailStatus::Pending),
            _ => None,
        }
    }
}

/// A §3 rail reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RailReply {
    /// Trade code, echoing the request's.
    pub trade: TradeCode,
    /// Instruction id, echoing the request's.
    pub instruction_id: String,
    /// Status.
    pub status: RailStatus,
    /// Reject code (`RJ01`..`RJ09`, see [`is_reject_code`]) when `status` is `Failed`;
    /// empty otherwise.
    pub reject_code: String,
    /// Free text, ≤ 59 GBK bytes.
    pub message: String,
}

/// A §3 record that cannot be encoded or decoded. Names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RailWireError {
    /// Fixed-width codec failure (wrong record length, bad GBK, too long, not digits...).
    #[error("rail record: {0}")]
    Fixed(#[from] FixedError),
    /// The trade code is not `7001`, `7002` or `7003`.
    #[error("rail record: unknown trade code")]
    BadTradeCode,
    /// The instruction id is empty, longer than 32 bytes, or not printable ASCII without
    /// spaces.
    #[error("rail record: bad instruction id")]
    BadInstructionId,
    /// The amount is outside 1 ..= [`AMOUNT_MAX_FEN`] fen for a `7001`/`7002`.
    #[error("rail record: amount out of range")]
    BadAmount,
    /// A field breaks a §3 rule (e.g. an empty account, a payee bank code on a `7002`).
    #[error("rail record: field {0} invalid")]
    BadField(&'static str),
    /// The reply status is not `S`, `F` or `P`.
    #[error("rail reply: bad status")]
    BadStatus,
    /// The reply's reject code does not match its status: `F` needs `RJ` + two digits,
    /// `S` and `P` need spaces.
    #[error("rail reply: reject code does not match status")]
    BadRejectCode,
}

/// True for a §3 reject code: `RJ` followed by two ASCII digits (`RJ01`..`RJ09`).
pub fn is_reject_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 4 && b.starts_with(b"RJ") && b[2].is_ascii_digit() && b[3].is_ascii_digit()
}

/// True for a valid instruction id: 1 to 32 printable ASCII characters, no spaces.
pub fn is_instruction_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= INSTRUCTION_ID_MAX && id.bytes().all(|b| b.is_ascii_graphic())
}

fn check_id(id: &str) -> Result<(), RailWireError> {
    if is_instruction_id(id) {
        Ok(())
    } else {
        Err(RailWireError::BadInstructionId)
    }
}

/// Encodes `r` as the 320-byte §3 request record (no prefix).
///
/// For `7003` everything but the trade code and id is spaces (the amount field too). For
/// `7001`/`7002`: payer and payee accounts must be non-empty, the amount 1 ..=
/// [`AMOUNT_MAX_FEN`] fen, and a `7002` must carry no payee bank code.
///
/// Errors: [`RailWireError::BadInstructionId`], [`RailWireError::BadAmount`],
/// [`RailWireError::BadField`], or [`RailWireError::Fixed`] (`FieldTooLong` /
/// `Unmappable`) for a value that does not fit its width or GBK.
pub fn encode_request(s: &Schemas, r: &RailRequest) -> Result<Vec<u8>, RailWireError> {
    check_id(&r.instruction_id)?;
    let layout = &s.rail_request;
    if r.trade == TradeCode::Query {
        return Ok(encode_record(
            layout,
            &[
                ("trade_code", FixedValue::Text(r.trade.as_str())),
                ("instruction_id", FixedValue::Text(&r.instruction_id)),
                ("amount", FixedValue::Raw(b"")),
            ],
        )?);
    }
    if !(1..=AMOUNT_MAX_FEN).contains(&r.amount_fen) {
        return Err(RailWireError::BadAmount);
    }
    if r.payer_acct.trim().is_empty() {
        return Err(RailWireError::BadField("payer_account"));
    }
    if r.payee_acct.trim().is_empty() {
        return Err(RailWireError::BadField("payee_account"));
    }
    if r.trade == TradeCode::SameBank && !r.payee_bank.trim().is_empty() {
        return Err(RailWireError::BadField("payee_bank_code"));
    }
    let amount = u64::try_from(r.amount_fen).map_err(|_| RailWireError::BadAmount)?;
    Ok(encode_record(
        layout,
        &[
            ("trade_code", FixedValue::Text(r.trade.as_str())),
            ("instruction_id", FixedValue::Text(&r.instruction_id)),
            ("payer_account", FixedValue::Text(&r.payer_acct)),
            ("payee_account", FixedValue::Text(&r.payee_acct)),
            ("payee_name", FixedValue::Text(&r.payee_name)),
            ("payee_bank_code", FixedValue::Text(&r.payee_bank)),
            ("amount", FixedValue::Num(amount)),
            ("memo", FixedValue::Text(&r.memo)),
        ],
    )?)
}

/// Reads the trade code and instruction id of a request record, if both are valid.
///
/// Works on any record of at least 36 bytes, even one of the wrong length, so a rail can
/// answer a malformed request with `F` `RJ09` (§3) when it can tell whom to answer.
pub fn peek_request_key(rec: &[u8]) -> Option<(TradeCode, String)> {
    let code = std::str::from_utf8(rec.get(0..4)?).ok()?;
    let trade = TradeCode::parse(code)?;
    let id_raw = rec.get(4..4 + INSTRUCTION_ID_MAX)?;
    let end = id_raw.iter().rposition(|b| *b != b' ').map_or(0, |p| p + 1);
    let id = std::str::from_utf8(id_raw.get(..end)?).ok()?;
    is_instruction_id(id).then(|| (trade, id.to_owned()))
}

fn trade_of(rec: &FixedRecord<'_>) -> Result<TradeCode, RailWireError> {
    TradeCode::parse(&rec.text("trade_code")?).ok_or(RailWireError::BadTradeCode)
}

fn id_of(rec: &FixedRecord<'_>) -> Result<String, RailWireError> {
    let raw = rec.raw("instruction_id")?;
    let end = raw.iter().rposition(|b| *b != b' ').map_or(0, |p| p + 1);
    let id = std::str::from_utf8(raw.get(..end).unwrap_or(&[]))
        .map_err(|_| RailWireError::BadInstructionId)?;
    check_id(id)?;
    Ok(id.to_owned())
}

/// Decodes a 320-byte §3 request record (no prefix); the simulator's side.
///
/// A `7003` yields [`RailRequest::query`] (its other fields are ignored). A `7001`/`7002`
/// must satisfy the rules of [`encode_request`]; the amount must be all digits.
///
/// Errors: [`RailWireError::Fixed`] (wrong length, bad GBK, amount not digits),
/// [`RailWireError::BadTradeCode`], [`RailWireError::BadInstructionId`],
/// [`RailWireError::BadAmount`], [`RailWireError::BadField`].
pub fn decode_request(s: &Schemas, rec: &[u8]) -> Result<RailRequest, RailWireError> {
    let r = decode_record(&s.rail_request, rec)?;
    let trade = trade_of(&r)?;
    let instruction_id = id_of(&r)?;
    if trade == TradeCode::Query {
        return Ok(RailRequest::query(&instruction_id));
    }
    let amount = r.num_u64("amount")?;
    let amount_fen = Fen::try_from(amount).map_err(|_| RailWireError::BadAmount)?;
    if !(1..=AMOUNT_MAX_FEN).contains(&amount_fen) {
        return Err(RailWireError::BadAmount);
    }
    let payer_acct = r.text("payer_account")?;
    if payer_acct.trim().is_empty() {
        return Err(RailWireError::BadField("payer_account"));
    }
    let payee_acct = r.text("payee_account")?;
    if payee_acct.trim().is_empty() {
        return Err(RailWireError::BadField("payee_account"));
    }
    let payee_bank = r.text("payee_bank_code")?;
    if trade == TradeCode::SameBank && !payee_bank.trim().is_empty() {
        return Err(RailWireError::BadField("payee_bank_code"));
    }
    Ok(RailRequest {
        trade,
        instruction_id,
        payer_acct,
        payee_acct,
        payee_name: r.text("payee_name")?,
        payee_bank,
        amount_fen,
        memo: r.text("memo")?,
    })
}

/// Encodes `r` as the 100-byte §3 reply record (no prefix).
///
/// Errors: [`RailWireError::BadInstructionId`]; [`RailWireError::BadRejectCode`] when a
/// `Failed` reply lacks a valid reject code or another status carries one;
/// [`RailWireError::Fixed`] when the message exceeds 59 GBK bytes or is not GBK.
pub fn encode_reply(s: &Schemas, r: &RailReply) -> Result<Vec<u8>, RailWireError> {
    check_id(&r.instruction_id)?;
    check_reject(r.status, &r.reject_code)?;
    let status = [r.status.as_byte()];
    Ok(encode_record(
        &s.rail_reply,
        &[
            ("trade_code", FixedValue::Text(r.trade.as_str())),
            ("instruction_id", FixedValue::Text(&r.instruction_id)),
            ("status", FixedValue::Raw(&status)),
            ("reject_code", FixedValue::Text(&r.reject_code)),
            ("message", FixedValue::Text(&r.message)),
        ],
    )?)
}

fn check_reject(status: RailStatus, code: &str) -> Result<(), RailWireError> {
    let ok = match status {
        RailStatus::Failed => is_reject_code(code),
        RailStatus::Settled | RailStatus::Pending => code.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(RailWireError::BadRejectCode)
    }
}

/// Decodes a 100-byte §3 reply record (no prefix); the gateway's side.
///
/// The status must be `S`, `F` or `P`; `F` needs a reject code `RJ` + two digits, `S`
/// and `P` need spaces there. A message that is not valid GBK is decoded lossily (it is
/// free text and never decides anything).
///
/// Errors: [`RailWireError::Fixed`] (wrong length), [`RailWireError::BadTradeCode`],
/// [`RailWireError::BadInstructionId`], [`RailWireError::BadStatus`],
/// [`RailWireError::BadRejectCode`].
pub fn decode_reply(s: &Schemas, rec: &[u8]) -> Result<RailReply, RailWireError> {
    let r = decode_record(&s.rail_reply, rec)?;
    let trade = trade_of(&r)?;
    let instruction_id = id_of(&r)?;
    let status_raw = r.raw("status")?;
    let status = std::str::from_utf8(status_raw)
        .ok()
        .and_then(RailStatus::parse)
        .ok_or(RailWireError::BadStatus)?;
    let reject_raw = r.raw("reject_code")?;
    let reject_code = std::str::from_utf8(reject_raw)
        .map_err(|_| RailWireError::BadRejectCode)?
        .trim_end_matches(' ')
        .to_owned();
    check_reject(status, &reject_code)?;
    let message = match r.text("message") {
        Ok(m) => m,
        Err(_) => {
            let raw = r.raw("message")?;
            let (text, _, _) = encoding_rs::GBK.decode(raw);
            text.trim_end_matches(' ').to_owned()
        }
    };
    Ok(RailReply {
        trade,
        instruction_id,
        status,
        reject_code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schemas() -> Schemas {
        Schemas::load_embedded().expect("embedded schemas load")
    }

    fn transfer() -> RailRequest {
        RailRequest {
            trade: TradeCode::Ibps,
            instruction_id: "WD20261123000001-1".into(),
            payer_acct: "6222000000000000001".into(),
            payee_acct: "6217000011112222333".into(),
            payee_name: "张三".into(),
            payee_bank: "102100099996".into(),
            amount_fen: 4_000_000,
            memo: "提现 withdrawal".into(),
        }
    }

    #[test]
    fn request_layout_and_round_trip() {
        let s = schemas();
        let r = transfer();
        let rec = encode_request(&s, &r).unwrap();
        assert_eq!(rec.len(), 320);
        assert_eq!(&rec[0..4], b"7001");
        assert_eq!(&rec[4..22], b"WD20261123000001-1");
        assert_eq!(rec[22], b' ');
        assert_eq!(&rec[36..55], b"6222000000000000001");
        assert_eq!(&rec[100..104], &[0xD5, 0xC5, 0xC8, 0xFD]);
        assert_eq!(&rec[220..232], b"102100099996");
        assert_eq!(&rec[234..249], b"000000004000000");
        assert!(rec[309..320].iter().all(|b| *b == b' '));
        assert_eq!(decode_request(&s, &rec).unwrap(), r);
    }

    #[test]
    fn query_is_spaces_but_code_and_id() {
        let s = schemas();
        let rec = encode_request(&s, &RailRequest::query("ABC")).unwrap();
        assert_eq!(rec.len(), 320);
        assert_eq!(&rec[0..7], b"7003ABC");
        assert!(rec[7..].iter().all(|b| *b == b' '));
        assert_eq!(decode_request(&s, &rec).unwrap(), RailRequest::query("ABC"));
    }

    #[test]
    fn request_rules() {
        let s = schemas();
        let mut r = transfer();
        r.amount_fen = 0;
        assert_eq!(encode_request(&s, &r), Err(RailWireError::BadAmount));
        r.amount_fen = -5;
        assert_eq!(encode_request(&s, &r), Err(RailWireError::BadAmount));
        let mut r = transfer();
        r.trade = TradeCode::SameBank;
        assert_eq!(
            encode_request(&s, &r),
            Err(RailWireError::BadField("payee_bank_code"))
        );
        r.payee_bank.clear();
        let rec = encode_request(&s, &r).unwrap();
        assert!(rec[220..234].iter().all(|b| *b == b' '));
        assert_eq!(decode_request(&s, &rec).unwrap(), r);
        let mut r = transfer();
        r.instruction_id = "x".repeat(33);
        assert_eq!(encode_request(&s, &r), Err(RailWireError::BadInstructionId));
        r.instruction_id = "a b".into();
        assert_eq!(encode_request(&s, &r), Err(RailWireError::BadInstructionId));
        let mut r = transfer();
        r.payee_name = "长".repeat(61);
        assert!(matches!(
            encode_request(&s, &r),
            Err(RailWireError::Fixed(FixedError::FieldTooLong { .. }))
        ));
        let mut rec = encode_request(&s, &transfer()).unwrap();
        rec[240] = b' ';
        assert!(matches!(
            decode_request(&s, &rec),
            Err(RailWireError::Fixed(FixedError::NotDigits { .. }))
        ));
        rec[0] = b'8';
        assert_eq!(decode_request(&s, &rec), Err(RailWireError::BadTradeCode));
        assert!(decode_request(&s, &rec[..319]).is_err());
    }

    #[test]
    fn peek_key() {
        let s = schemas();
        let rec = encode_request(&s, &transfer()).unwrap();
        assert_eq!(
            peek_request_key(&rec[..40]),
            Some((TradeCode::Ibps, "WD20261123000001-1".into()))
        );
        assert_eq!(peek_request_key(&rec[..20]), None);
        assert_eq!(peek_request_key(&[b' '; 64]), None);
    }

    #[test]
    fn reply_layout_and_rules() {
        let s = schemas();
        let r = RailReply {
            trade: TradeCode::Ibps,
            instruction_id: "ID1".into(),
            status: RailStatus::Failed,
            reject_code: "RJ01".into(),
            message: "账户不存在".into(),
        };
        let rec = encode_reply(&s, &r).unwrap();
        assert_eq!(rec.len(), 100);
        assert_eq!(&rec[0..7], b"7001ID1");
        assert_eq!(&rec[36..41], b"FRJ01");
        assert_eq!(decode_reply(&s, &rec).unwrap(), r);

        let ok = RailReply {
            status: RailStatus::Settled,
            reject_code: String::new(),
            message: "settled".into(),
            ..r.clone()
        };
        let mut rec = encode_reply(&s, &ok).unwrap();
        assert_eq!(&rec[36..41], b"S    ");
        assert_eq!(decode_reply(&s, &rec).unwrap(), ok);
        rec[37..41].copy_from_slice(b"RJ01");
        assert_eq!(decode_reply(&s, &rec), Err(RailWireError::BadRejectCode));
        rec[36] = b'X';
        assert_eq!(decode_reply(&s, &rec), Err(RailWireError::BadStatus));
        rec[36] = b'F';
        rec[37..41].copy_from_slice(b"    ");
        assert_eq!(decode_reply(&s, &rec), Err(RailWireError::BadRejectCode));
        rec[37..41].copy_from_slice(b"RJ09");
        rec[41] = 0xFF;
        rec[42] = 0xFF;
        assert_eq!(decode_reply(&s, &rec).unwrap().status, RailStatus::Failed);
        assert!(decode_reply(&s, &rec[..99]).is_err());

        let bad = RailReply {
            reject_code: String::new(),
            ..r.clone()
        };
        assert_eq!(encode_reply(&s, &bad), Err(RailWireError::BadRejectCode));
        let long = RailReply {
            message: "x".repeat(60),
            ..r
        };
        assert!(encode_reply(&s, &long).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = schemas();
            let _ = decode_request(&s, &bytes);
            let _ = decode_reply(&s, &bytes);
            let _ = peek_request_key(&bytes);
            let mut full = bytes.clone();
            full.resize(320, b' ');
            let _ = decode_request(&s, &full);
            full.truncate(100);
            let _ = decode_reply(&s, &full);
        }

        #[test]
        fn request_round_trip(id in "[A-Za-z0-9-]{1,32}", amount in 1i64..=AMOUNT_MAX_FEN,
                              name in "[a-z张三李四 ]{0,40}", memo in "[a-z提现 ]{0,20}") {
            let s = schemas();
            let r = RailRequest {
                trade: TradeCode::Ibps,
                instruction_id: id,
                payer_acct: "P1".into(),
                payee_acct: "P2".into(),
                payee_name: name.trim_end().to_owned(),
                payee_bank: "102".into(),
                amount_fen: amount,
                memo: memo.trim_end().to_owned(),
            };
            let rec = encode_request(&s, &r).unwrap();
            prop_assert_eq!(rec.len(), 320);
            prop_assert_eq!(decode_request(&s, &rec).unwrap(), r);
        }
    }
}
