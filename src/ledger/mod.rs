//! The double-entry sub-ledger (DOMAIN.md "The ledger").
//!
//! Per master account: the master mirror (asset), member sub-accounts, suspense (挂账),
//! fee (公共计息收费) and in transit (提现在途) (liabilities). Every posting is one debit and
//! one credit of the same amount in fen, so the master mirror always equals the sum of the
//! liabilities (总分平衡).
//!
//! The decision for a request is pure ([`decide`]): a function of the typed [`Command`], a
//! read-only [`LedgerState`] snapshot and the [`Facts`] that prefetch read from storage. It
//! returns a [`Decision`]: a status (return code), response fields, and the post-images and
//! rows to write. Only the writer does I/O, before (prefetch) and after (commit).

pub mod decide;
pub mod invariants;
pub mod state;

pub use decide::{decide, Ctx, Decision, Facts};
pub use state::LedgerState;

use crate::money::Fen;

/// A master account (监管账户) and its four shared ledger accounts, amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    /// Storage id.
    pub id: i64,
    /// The enterprise (platform) that owns it (header field 5, ≤ 20 bytes).
    pub enterprise_code: String,
    /// The real account number at the bank (`FundSummaryAcctNo`, ≤ 32 bytes).
    pub acct_no: String,
    /// Master mirror (asset): what the bank says the real account holds.
    pub mirror: Fen,
    /// Suspense (liability): inbound credits not yet allocated.
    pub suspense: Fen,
    /// Fee (liability): fees the platform earned.
    pub fee: Fen,
    /// In transit (liability): withdrawals accepted, not yet settled.
    pub in_transit: Fen,
}

/// Status of a sub-account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubStatus {
    /// Open: can receive and send.
    Open,
    /// Closed (销户): credits go to suspense; nothing moves out.
    Closed,
}

impl SubStatus {
    /// Storage code: 1 open, 2 closed.
    pub fn code(self) -> i64 {
        match self {
            SubStatus::Open => 1,
            SubStatus::Closed => 2,
        }
    }
    /// From the storage code; anything but 2 is open.
    pub fn from_code(c: i64) -> SubStatus {
        if c == 2 {
            SubStatus::Closed
        } else {
            SubStatus::Open
        }
    }
}

/// A member's virtual sub-account (附属账户), amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAccount {
    /// Storage id.
    pub id: i64,
    /// Its master account's storage id.
    pub master_id: i64,
    /// `SubAcctNo`: 16 digits, unique in the gateway, last digit a Luhn check digit.
    pub sub_acct_no: String,
    /// `TranNetMemberCode`: the platform's member id (≤ 32 bytes).
    pub member_code: String,
    /// `MemberName` (≤ 120 bytes).
    pub member_name: String,
    /// `MemberGlobalType` (`1` ID card, `73` unified social credit code).
    pub global_type: String,
    /// `MemberGlobalId` (≤ 20 bytes).
    pub global_id: String,
    /// `Mobile` (≤ 12 bytes, may be empty).
    pub mobile: String,
    /// Total balance, frozen part included.
    pub balance: Fen,
    /// Frozen part of the balance (≤ balance).
    pub frozen: Fen,
    /// Open or closed.
    pub status: SubStatus,
}

impl SubAccount {
    /// Available = balance − frozen (PROTOCOL.md §1.3 `6010` `AcctAvailBal`).
    pub fn available(&self) -> Fen {
        self.balance.saturating_sub(self.frozen)
    }
}

/// One side of a posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The master mirror (asset) of the posting's master account.
    Mirror,
    /// Suspense (liability).
    Suspense,
    /// Fee (liability).
    Fee,
    /// In transit (liability).
    InTransit,
    /// A member sub-account (liability), by storage id.
    Sub(i64),
}

impl Side {
    /// `true` for the asset side (master mirror): a debit increases it, a credit decreases it.
    pub fn is_asset(self) -> bool {
        matches!(self, Side::Mirror)
    }
}

/// `BookingType` of PROTOCOL.md §1.3 (6072 details).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingType {
    /// `01` forced transfer.
    ForcedTransfer,
    /// `02` freeze.
    Freeze,
    /// `03` unfreeze.
    Unfreeze,
    /// `04` inbound credit.
    InboundCredit,
    /// `05` suspense allocation.
    SuspenseAllocation,
    /// `06` withdrawal.
    Withdrawal,
    /// `07` withdrawal refund (退票).
    WithdrawalRefund,
    /// `08` fee.
    Fee,
}

impl BookingType {
    /// The 2-digit wire code.
    pub fn code(self) -> &'static str {
        match self {
            BookingType::ForcedTransfer => "01",
            BookingType::Freeze => "02",
            BookingType::Unfreeze => "03",
            BookingType::InboundCredit => "04",
            BookingType::SuspenseAllocation => "05",
            BookingType::Withdrawal => "06",
            BookingType::WithdrawalRefund => "07",
            BookingType::Fee => "08",
        }
    }
}

/// A balanced posting: `amount` fen debited to `debit` and credited to `credit`, both in the
/// ledger of master account `master_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    /// Master account storage id.
    pub master_id: i64,
    /// Debit side.
    pub debit: Side,
    /// Credit side.
    pub credit: Side,
    /// Amount in fen, > 0.
    pub amount: Fen,
    /// Why it was booked.
    pub booking_type: BookingType,
}

/// A typed platform request or core notice (PROTOCOL.md §1.3, §2). Amounts in fen; a
/// refused amount (≤ 0) is kept so that the decision can answer `E10009`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `6248` flag 1: open a sub-account.
    Open(OpenReq),
    /// `6248` flag 2: close a sub-account.
    Close(OpenReq),
    /// `6034` forced transfer.
    Transfer(TransferReq),
    /// `6007` freeze (`freeze` = true) or unfreeze.
    Freeze(FreezeReq),
    /// `6010` balance.
    Balance {
        /// `SubAcctNo`.
        sub_acct_no: String,
    },
    /// `6072` details.
    Details(PageReq),
    /// `6050` inbound credits.
    Credits(PageReq),
    /// `6139` suspense allocation.
    Allocate(AllocateReq),
    /// `6110` status of an earlier request.
    Status {
        /// `OrigSerialNo`.
        orig_serial: String,
    },
    /// `6142` e-receipt.
    Receipt {
        /// `FrontSeqNo`.
        front_seq_no: String,
    },
    /// `6920` inbound-credit notice from the bank core.
    Notice(NoticeReq),
}

/// `6248` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReq {
    /// `FundSummaryAcctNo`.
    pub master_acct_no: String,
    /// `TranNetMemberCode`.
    pub member_code: String,
    /// `MemberName`.
    pub member_name: String,
    /// `MemberGlobalType`.
    pub global_type: String,
    /// `MemberGlobalId`.
    pub global_id: String,
    /// `Mobile` (empty when absent).
    pub mobile: String,
}

/// `6034` fields, amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferReq {
    /// `OutSubAcctNo`.
    pub out_sub: String,
    /// `OutMemberCode`.
    pub out_member: String,
    /// `InSubAcctNo`.
    pub in_sub: String,
    /// `InMemberCode`.
    pub in_member: String,
    /// `TranAmt` in fen.
    pub amount: Fen,
    /// `TranFee` in fen (0 when absent).
    pub fee: Fen,
    /// `OrderNo`.
    pub order_no: String,
    /// `Remark` (empty when absent).
    pub remark: String,
}

/// `6007` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeReq {
    /// `true` for `FunctionFlag` 1 (freeze), `false` for 2 (unfreeze).
    pub freeze: bool,
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// `TranAmt` in fen.
    pub amount: Fen,
    /// `OrderNo`.
    pub order_no: String,
}

/// Paged query fields (`6072`, `6050`); dates as yyyymmdd integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageReq {
    /// `SubAcctNo` (6072 only; empty for 6050).
    pub sub_acct_no: String,
    /// `StartDate`.
    pub start_date: u32,
    /// `EndDate`.
    pub end_date: u32,
    /// `PageNum`, from 1.
    pub page: u32,
}

/// `6139` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocateReq {
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// `TranNetMemberCode`.
    pub member_code: String,
    /// `InboundSeqNo`: the suspense credit's `FrontSeqNo`.
    pub inbound_seq_no: String,
    /// `SuspendAmt` in fen.
    pub amount: Fen,
    /// `OrderNo`.
    pub order_no: String,
}

/// A `6920` notice (PROTOCOL.md §2), amount in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeReq {
    /// Bank serial (核心流水号).
    pub bank_serial: String,
    /// Channel (`IBPS`, `BEPS`, `HVPS`, `INTR`).
    pub channel: String,
    /// Accounting date yyyymmdd.
    pub acct_date: u32,
    /// Time `HHmmss`.
    pub time: String,
    /// Payee account: a master account or a sub-account number.
    pub payee: String,
    /// Amount in fen.
    pub amount: Fen,
    /// Payer account.
    pub payer_acct: String,
    /// Payer name.
    pub payer_name: String,
    /// Payer bank code.
    pub payer_bank: String,
    /// Memo (附言).
    pub memo: String,
}

/// Rows page size of `6072` and `6050` (PROTOCOL.md §1.3: 20 rows a page).
pub const PAGE_ROWS: u32 = 20;
