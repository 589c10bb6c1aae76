//! `6034` forced transfer between two sub-accounts (强制转账), docs/protocol.md §1.3.
use super::{amount, opt_text, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, TransferReq};

/// `TranFee` is optional (0 when absent), taken from the payer on top of `TranAmt`.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Transfer(TransferReq {
        out_sub: text(f, "OutSubAcctNo")?,
        out_member: text(f, "OutMemberCode")?,
        in_sub: text(f, "InSubAcctNo")?,
        in_member: text(f, "InMemberCode")?,
        amount: amount(f, "TranAmt")?,
        fee: f.amount_fen("TranFee").unwrap_or(0),
        order_no: text(f, "OrderNo")?,
        remark: opt_text(f, "Remark"),
    }))
}
