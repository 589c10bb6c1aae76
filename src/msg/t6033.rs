//! `6033` withdraw to the bound account (会员提现/出金), docs/protocol.md §1.3 and §3.
use super::{amount, opt_text, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, WithdrawReq};

/// `CashAmt` and the optional `TakeCashCommission` in yuan; `TakeCashAcctNo` and
/// `OutAmtAcctName` must be the bound account and its name (`E10005`).
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Withdraw(WithdrawReq {
        sub_acct_no: text(f, "SubAcctNo")?,
        member_code: text(f, "TranNetMemberCode")?,
        member_name: opt_text(f, "MemberName"),
        acct_no: text(f, "TakeCashAcctNo")?,
        acct_name: opt_text(f, "OutAmtAcctName"),
        amount: amount(f, "CashAmt")?,
        fee: f.amount_fen("TakeCashCommission").unwrap_or(0),
        order_no: text(f, "OrderNo")?,
        remark: opt_text(f, "Remark"),
    }))
}
