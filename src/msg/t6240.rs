//! `6240` bind the single withdrawal account, start small-amount verification
//! (绑定提现账户·小额鉴权), docs/protocol.md §1.3.
use super::{opt_text, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{BindReq, Command};

/// `BankType` `1` same bank (verification by `7002`), `2` other bank (`7001`, with
/// `EiconBankBranchId`, required then: the decision answers `YQ9993` without it).
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    let same_bank = match f.text("BankType") {
        Some("1") => true,
        Some("2") => false,
        _ => {
            return Err(MsgError {
                field: "BankType",
                reason: "not 1 or 2",
            })
        }
    };
    Ok(Command::Bind(BindReq {
        sub_acct_no: text(f, "SubAcctNo")?,
        member_code: text(f, "TranNetMemberCode")?,
        member_name: opt_text(f, "MemberName"),
        acct_no: text(f, "MemberAcctNo")?,
        same_bank,
        branch_name: opt_text(f, "AcctOpenBranchName"),
        bank_code: opt_text(f, "EiconBankBranchId"),
    }))
}
