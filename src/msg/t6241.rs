//! `6241` confirm the verification amount (回填鉴权金额), docs/protocol.md §1.3.
use super::{amount, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, ConfirmBindReq};

/// `AuthAmt` in yuan (0.01–0.50), `TakeCashAcctNo` the account being verified.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::ConfirmBind(ConfirmBindReq {
        sub_acct_no: text(f, "SubAcctNo")?,
        acct_no: text(f, "TakeCashAcctNo")?,
        amount: amount(f, "AuthAmt")?,
    }))
}
