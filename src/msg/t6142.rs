//! `6142` e-receipt of a transaction (电子回单), docs/protocol.md §1.3.
use super::{text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::Command;

/// `FrontSeqNo` of the transaction.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Receipt {
        front_seq_no: text(f, "FrontSeqNo")?,
    })
}
