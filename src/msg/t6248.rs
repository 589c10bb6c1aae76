//! `6248` open or close a member sub-account (会员子账户开立/销户), docs/protocol.md §1.3.
use super::{opt_text, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, OpenReq};

/// `FunctionFlag` `1` (default) opens, `2` closes.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    let req = OpenReq {
        master_acct_no: text(f, "FundSummaryAcctNo")?,
        member_code: text(f, "TranNetMemberCode")?,
        member_name: opt_text(f, "MemberName"),
        global_type: text(f, "MemberGlobalType")?,
        global_id: text(f, "MemberGlobalId")?,
        mobile: opt_text(f, "Mobile"),
    };
    match f.text("FunctionFlag").unwrap_or("1") {
        "1" => Ok(Command::Open(req)),
        "2" => Ok(Command::Close(req)),
        _ => Err(MsgError {
            field: "FunctionFlag",
            reason: "not 1 or 2",
        }),
    }
}
