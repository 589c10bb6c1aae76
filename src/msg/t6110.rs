//! `6110` status of one earlier request (单笔交易状态), docs/protocol.md §1.3.
use super::{text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::Command;

/// `OrigSerialNo`: the requester serial of the original request, same enterprise.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Status {
        orig_serial: text(f, "OrigSerialNo")?,
    })
}
