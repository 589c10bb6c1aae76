//! `6050` inbound credits of the enterprise's master accounts (普通转账充值明细), docs/protocol.md §1.3.
use super::{date, int, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{Command, PageReq};

/// `StartDate`, `EndDate` (inclusive, accounting dates), `PageNum` from 1.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Credits(PageReq {
        sub_acct_no: String::new(),
        start_date: date(f, "StartDate")?,
        end_date: date(f, "EndDate")?,
        page: int(f, "PageNum")?,
    }))
}
