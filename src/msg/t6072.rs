//! `6072` transaction details of a sub-account (交易明细), 20 rows a page, docs/protocol.md §1.3.
use super::{date, int, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, PageReq};

/// `SubAcctNo`, `StartDate`, `EndDate` (inclusive, accounting dates), `PageNum` from 1.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Details(PageReq {
        sub_acct_no: text(f, "SubAcctNo")?,
        start_date: date(f, "StartDate")?,
        end_date: date(f, "EndDate")?,
        page: int(f, "PageNum")?,
    }))
}
