//! `6007` freeze / unfreeze part of a balance (冻结/解冻), docs/protocol.md §1.3.
use super::{amount, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, FreezeReq};

/// `FunctionFlag` `1` freezes, `2` unfreezes.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    let freeze = match f.text("FunctionFlag") {
        Some("1") => true,
        Some("2") => false,
        _ => {
            return Err(MsgError {
                field: "FunctionFlag",
                reason: "not 1 or 2",
            })
        }
    };
    Ok(Command::Freeze(FreezeReq {
        freeze,
        sub_acct_no: text(f, "SubAcctNo")?,
        amount: amount(f, "TranAmt")?,
        order_no: text(f, "OrderNo")?,
    }))
}
