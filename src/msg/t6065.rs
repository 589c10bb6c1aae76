//! `6065` unbind the withdrawal account (解绑), docs/protocol.md §1.3.
use super::{text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, UnbindReq};

/// `MemberAcctNo` must be the bound (or pending) account.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Unbind(UnbindReq {
        sub_acct_no: text(f, "SubAcctNo")?,
        member_code: text(f, "TranNetMemberCode")?,
        acct_no: text(f, "MemberAcctNo")?,
    }))
}
