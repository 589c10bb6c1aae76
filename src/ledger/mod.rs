//! The double-entry sub-ledger (docs/ledger.md "The ledger").
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
pub mod withdraw;

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
    /// The single withdrawal account (唯一出金账户), pending verification or bound.
    pub binding: Option<Binding>,
    /// Withdrawal chunks of this sub-account not yet settled or refunded (derived from the
    /// stored instructions at start-up; a sub-account with any cannot be closed).
    pub chunks_in_flight: u32,
}

/// A withdrawal account binding (绑定提现账户), docs/protocol.md §1.3 `6240`/`6241`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `MemberAcctNo` (≤ 32 bytes).
    pub acct_no: String,
    /// Holder name: always equal to the member's name (`E10002` otherwise).
    pub acct_name: String,
    /// `BankType` 1: same bank (`7002`), else other bank (`7001`).
    pub same_bank: bool,
    /// `AcctOpenBranchName`.
    pub branch_name: String,
    /// `EiconBankBranchId`: super e-bank code (empty for the same bank).
    pub bank_code: String,
    /// `true` once small-amount verification succeeded (bound).
    pub verified: bool,
    /// The verification amount sent, fen (1..=50).
    pub auth_amount: Fen,
    /// Wrong answers left before the attempt ends (5 at the start).
    pub attempts_left: u32,
    /// `FrontSeqNo` of the 6240 that started this attempt (its verification instruction is
    /// `V` + this). A final rail failure of that instruction ends the attempt
    /// (docs/protocol.md §1.5). Empty for attempts stored before this field existed.
    pub verify_seq: String,
}

/// What an outbound rail instruction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstructionKind {
    /// Small-amount verification (paid from the bank's expense account, outside the ledger).
    Verify,
    /// One chunk of a withdrawal.
    Chunk,
}

/// Resolution state of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstructionState {
    /// Not resolved: never sent, in flight, or outcome unknown (`P`, timeout, broken link).
    Unresolved,
    /// `S`: settled.
    Settled,
    /// `F` (other than `RJ04`): failed, final.
    Failed,
}

impl InstructionState {
    /// Storage and wire letter: `P`, `S`, `F`.
    pub fn letter(self) -> &'static str {
        match self {
            InstructionState::Unresolved => "P",
            InstructionState::Settled => "S",
            InstructionState::Failed => "F",
        }
    }
    /// From the storage letter.
    pub fn from_letter(s: &str) -> InstructionState {
        match s {
            "S" => InstructionState::Settled,
            "F" => InstructionState::Failed,
            _ => InstructionState::Unresolved,
        }
    }
}

/// An outbound credit transfer on the payment rail (docs/protocol.md §3), persisted before it is
/// sent. Amount in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Instruction id (≤ 32 bytes, unique forever, the rail's idempotency key).
    pub id: String,
    /// Verification or withdrawal chunk.
    pub kind: InstructionKind,
    /// `FrontSeqNo` of the withdrawal (or of the 6240 request).
    pub front_seq_no: String,
    /// Chunk number from 1 (larger amounts first); 1 for verification.
    pub chunk_no: u32,
    /// `7001` (super e-bank) or `7002` (same bank).
    pub trade_code: &'static str,
    /// Payer: the master account, or the bank's expense account for verification.
    pub payer_acct: String,
    /// Payee account.
    pub payee_acct: String,
    /// Payee name.
    pub payee_name: String,
    /// Payee super e-bank code (empty for `7002`).
    pub payee_bank: String,
    /// Amount in fen (a `7001` is always < 5,000,000).
    pub amount: Fen,
    /// Memo.
    pub memo: String,
    /// Resolution state.
    pub state: InstructionState,
    /// Reject code of a failed instruction (`RJ01`…), else empty.
    pub reject_code: String,
    /// Sub-account storage id.
    pub sub_id: i64,
    /// Master account storage id.
    pub master_id: i64,
}

/// An accepted withdrawal (6033), amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    /// Its `FrontSeqNo`.
    pub front_seq_no: String,
    /// Enterprise code of the request.
    pub enterprise_code: String,
    /// Requester serial of the request (6110 looks it up by this).
    pub serial: String,
    /// Sub-account storage id.
    pub sub_id: i64,
    /// Master account storage id.
    pub master_id: i64,
    /// `CashAmt`.
    pub amount: Fen,
    /// `TakeCashCommission`.
    pub fee: Fen,
    /// Number of chunks.
    pub chunk_count: u32,
}

/// A rail outcome reported by the dispatcher (docs/protocol.md §3): final `S` or `F`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RailOutcome {
    /// Instruction id.
    pub instruction_id: String,
    /// `true` for `S`, `false` for a final `F`.
    pub settled: bool,
    /// Reject code of an `F`.
    pub reject_code: String,
}

impl SubAccount {
    /// Available = balance − frozen (docs/protocol.md §1.3 `6010` `AcctAvailBal`).
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

/// `BookingType` of docs/protocol.md §1.3 (6072 details).
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

/// A typed platform request or core notice (docs/protocol.md §1.3, §2). Amounts in fen; a
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
    /// `6240` bind a withdrawal account and start small-amount verification.
    Bind(BindReq),
    /// `6241` confirm the verification amount.
    ConfirmBind(ConfirmBindReq),
    /// `6065` unbind.
    Unbind(UnbindReq),
    /// `6033` withdrawal.
    Withdraw(WithdrawReq),
    /// A final rail outcome (internal, from the dispatcher).
    Rail(RailOutcome),
}

/// `6240` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindReq {
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// `TranNetMemberCode`.
    pub member_code: String,
    /// `MemberName`: must equal the member's name and is the payee name.
    pub member_name: String,
    /// `MemberAcctNo`.
    pub acct_no: String,
    /// `BankType` 1 same bank, 2 other bank.
    pub same_bank: bool,
    /// `AcctOpenBranchName`.
    pub branch_name: String,
    /// `EiconBankBranchId` (required for other banks).
    pub bank_code: String,
}

/// `6241` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmBindReq {
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// `TakeCashAcctNo`: the account being verified.
    pub acct_no: String,
    /// `AuthAmt` in fen.
    pub amount: Fen,
}

/// `6065` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnbindReq {
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// `TranNetMemberCode`.
    pub member_code: String,
    /// `MemberAcctNo`: must be the bound account.
    pub acct_no: String,
}

/// `6033` fields, amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawReq {
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// `TranNetMemberCode`.
    pub member_code: String,
    /// `MemberName`.
    pub member_name: String,
    /// `TakeCashAcctNo`: must be the bound account.
    pub acct_no: String,
    /// `OutAmtAcctName`: must be the bound account's name.
    pub acct_name: String,
    /// `CashAmt`.
    pub amount: Fen,
    /// `TakeCashCommission` (0 when absent).
    pub fee: Fen,
    /// `OrderNo`.
    pub order_no: String,
    /// `Remark`.
    pub remark: String,
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

/// A `6920` notice (docs/protocol.md §2), amount in fen.
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

/// Rows page size of `6072` and `6050` (docs/protocol.md §1.3: 20 rows a page).
pub const PAGE_ROWS: u32 = 20;
