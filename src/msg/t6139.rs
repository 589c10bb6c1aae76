//! `6139` allocate a suspense credit to a sub-account (登记挂账), docs/protocol.md §1.3.
use super::{amount, text, MsgError};
use crate::codec::request::Fields;
use crate::ledger::{AllocateReq, Command};

/// `InboundSeqNo` is the suspense credit's `FrontSeqNo` from 6050; `SuspendAmt` in yuan.
pub fn parse(f: &Fields) -> Result<Command, MsgError> {
    Ok(Command::Allocate(AllocateReq {
        sub_acct_no: text(f, "SubAcctNo")?,
        member_code: text(f, "TranNetMemberCode")?,
        inbound_seq_no: text(f, "InboundSeqNo")?,
        amount: amount(f, "SuspendAmt")?,
        order_no: text(f, "OrderNo")?,
    }))
}
