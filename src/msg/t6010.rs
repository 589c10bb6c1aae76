//! `6010` sub-account balance (子账户余额), docs/protocol.md §1.3.
use super::{text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::Command;

/// One field: `SubAcctNo`.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Balance {
        sub_acct_no: text(f, "SubAcctNo")?,
    })
}
