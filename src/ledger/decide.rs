//! The pure ledger decision: `decide(command, snapshot, facts, ctx) -> Decision`.
//!
//! No I/O happens here: the writer prefetched every stored fact the decision needs into
//! [`Facts`], and it writes the returned [`Writes`] after. Expected failures are statuses
//! (return codes, in the precedence order listed on each operation); a broken invariant is a
//! bug and is asserted by [`super::invariants`].

use super::state::{Counters, LedgerState};
use super::{
    AllocateReq, Binding, BookingType, Command, FreezeReq, Instruction, InstructionState, Master,
    NoticeReq, OpenReq, PageReq, Posting, Side, SubAccount, SubStatus, TransferReq, Withdrawal,
    PAGE_ROWS,
};
use crate::clock::Stamp;
use crate::codes::ReturnCode;
use crate::money::{format_fen, Fen, AMOUNT_MAX_FEN};
use crate::receipt::{ReceiptFields, Signer};

/// A sub-account detail row (6072), amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Sub-account storage id.
    pub sub_id: i64,
    /// The transaction's `FrontSeqNo`.
    pub front_seq_no: String,
    /// Accounting date yyyymmdd.
    pub acct_date: u32,
    /// `HHmmss`.
    pub time: String,
    /// Booking type.
    pub booking_type: BookingType,
    /// `D` (debit: money out or frozen) or `C`.
    pub dc: char,
    /// Amount in fen.
    pub amount: Fen,
    /// Total balance right after this row.
    pub balance_after: Fen,
    /// The other party's account number.
    pub peer_acct: String,
    /// Remark.
    pub remark: String,
}

/// An inbound-credit row (6050), amounts in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditRow {
    /// `FrontSeqNo` of the credit (or of the allocation, for `04` rows).
    pub front_seq_no: String,
    /// Master account storage id.
    pub master_id: i64,
    /// `02` to a member, `03` suspense, `04` allocated from suspense.
    pub in_acct_type: &'static str,
    /// The sub-account credited (empty for suspense).
    pub sub_acct_no: String,
    /// Amount in fen.
    pub amount: Fen,
    /// For `03` rows: what is still unallocated.
    pub unallocated: Fen,
    /// Payer account.
    pub payer_acct: String,
    /// Payer name.
    pub payer_name: String,
    /// Accounting date yyyymmdd.
    pub acct_date: u32,
    /// Remark (the notice's memo).
    pub remark: String,
}

/// A stored e-receipt (6142), amount in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRow {
    /// The transaction's `FrontSeqNo` (lookup key).
    pub front_seq_no: String,
    /// Master account storage id (for the enterprise check).
    pub master_id: i64,
    /// `ReceiptNo` (20 characters).
    pub receipt_no: String,
    /// `CheckCode` (16 characters `0-9A-Z`).
    pub check_code: String,
    /// `yyyyMMdd`.
    pub booking_date: String,
    /// Payer account.
    pub payer_acct: String,
    /// Payer name.
    pub payer_name: String,
    /// Payee account.
    pub payee_acct: String,
    /// Payee name.
    pub payee_name: String,
    /// Amount in fen.
    pub amount: Fen,
    /// Summary (摘要).
    pub summary: String,
}

/// An earlier request's stored outcome (for 6110).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredStatus {
    /// Its transaction code.
    pub tx_code: String,
    /// Its return code.
    pub return_code: String,
    /// Its return message.
    pub return_msg: String,
}

/// What prefetch read from storage for one command.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The command's `OrderNo` was used by an accepted request of this enterprise.
    pub order_used: bool,
    /// 6139: the credit named by `InboundSeqNo`.
    pub credit: Option<CreditRow>,
    /// 6072: rows on all pages, and this page's rows.
    pub entries: (u64, Vec<Entry>),
    /// 6050: rows on all pages, and this page's rows.
    pub credits: (u64, Vec<CreditRow>),
    /// 6110: the original request.
    pub status: Option<StoredStatus>,
    /// 6142: the receipt.
    pub receipt: Option<ReceiptRow>,
    /// 6920: the bank serial was booked before.
    pub notice_seen: bool,
    /// 6110 of a 6033: the withdrawal and all its chunks.
    pub withdrawal: Option<(Withdrawal, Vec<Instruction>)>,
    /// Rail outcome of a chunk: its withdrawal, and whether every *other* chunk of it has
    /// failed (then a refund of this one refunds the commission too). One indexed count,
    /// not a reload of every chunk (issue 7, item 1: reloading made outcomes quadratic).
    pub refund_withdrawal: Option<(Withdrawal, bool)>,
    /// Rail outcomes: the instruction reported on.
    pub instruction: Option<Instruction>,
}

/// The context of a decision: who asks, when, and the receipt key.
pub struct Ctx<'a> {
    /// Enterprise code of the request (header field 5); empty for core notices.
    pub enterprise: &'a str,
    /// Booking date and time.
    pub stamp: &'a Stamp,
    /// Verification-code signer.
    pub signer: &'a Signer,
    /// Requester serial of the request (header field 12); empty for notices and rail outcomes.
    pub serial: &'a str,
    /// The bank's expense account that pays small-amount verifications (docs/protocol.md §3).
    pub expense_account: &'a str,
    /// Most chunks one withdrawal may need (`rail.max_chunks`, docs/protocol.md §3, default
    /// 200); a withdrawal needing more is refused with `E10009`.
    pub max_chunks: u32,
}

/// Everything to write when a decision is accepted. Post-images, not deltas.
#[derive(Clone, Debug, Default)]
pub struct Writes {
    /// Master accounts after the decision.
    pub masters: Vec<Master>,
    /// Sub-accounts after the decision (new ones included).
    pub subs: Vec<SubAccount>,
    /// The postings.
    pub postings: Vec<Posting>,
    /// Business date `yyyymmdd` the postings are booked on (the decision's stamp: the
    /// writer's business date, or a notice's own accounting date); stored with each posting
    /// for statements (docs/statements.md). 0 when the decision posts nothing.
    pub booking_date: u32,
    /// Detail rows.
    pub entries: Vec<Entry>,
    /// New inbound-credit rows.
    pub credits: Vec<CreditRow>,
    /// (`FrontSeqNo` of a `03` row, its new unallocated amount in fen).
    pub credit_updates: Vec<(String, Fen)>,
    /// New receipts.
    pub receipts: Vec<ReceiptRow>,
    /// `OrderNo` to mark used.
    pub order_no: Option<String>,
    /// (bank serial, `FrontSeqNo`) of a booked notice.
    pub notice: Option<(String, String)>,
    /// Counters after the decision (`None`: unchanged).
    pub counters: Option<Counters>,
    /// Binding changes: (sub-account id, new binding or `None` = removed).
    pub bindings: Vec<(i64, Option<Binding>)>,
    /// New rail instructions (persisted in the batch, sent after the commit).
    pub instructions: Vec<Instruction>,
    /// Resolved instructions: (id, new state, reject code).
    pub instruction_updates: Vec<(String, InstructionState, String)>,
    /// A new withdrawal.
    pub withdrawal: Option<Withdrawal>,
}

/// The outcome of one command.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Return code (success or a business status).
    pub code: ReturnCode,
    /// Response fields in schema order.
    pub fields: Vec<(&'static str, String)>,
    /// Response list rows (`List`/`Row`), for 6072, 6050, 6110.
    pub rows: Option<Vec<Vec<(&'static str, String)>>>,
    /// The gateway's transaction serial, when money moved or a freeze was booked.
    pub front_seq_no: Option<String>,
    /// What to write (empty on a refusal).
    pub writes: Writes,
}

impl Decision {
    pub(super) fn refuse(code: ReturnCode) -> Decision {
        Decision {
            code,
            fields: Vec::new(),
            rows: None,
            front_seq_no: None,
            writes: Writes::default(),
        }
    }
    pub(super) fn ok(fields: Vec<(&'static str, String)>) -> Decision {
        Decision {
            code: ReturnCode::Ok,
            fields,
            rows: None,
            front_seq_no: None,
            writes: Writes::default(),
        }
    }
}

/// Decides one command. Pure: same inputs, same decision.
pub fn decide(cmd: &Command, state: &LedgerState, facts: &Facts, ctx: &Ctx<'_>) -> Decision {
    let result = match cmd {
        Command::Open(r) => open(r, state, ctx),
        Command::Close(r) => close(r, state, ctx),
        Command::Transfer(r) => transfer(r, state, facts, ctx),
        Command::Freeze(r) => freeze(r, state, facts, ctx),
        Command::Balance { sub_acct_no } => balance(sub_acct_no, state, ctx),
        Command::Details(r) => details(r, state, facts, ctx),
        Command::Credits(r) => credits(r, facts),
        Command::Allocate(r) => allocate(r, state, facts, ctx),
        Command::Status { .. } => super::withdraw::status(facts),
        Command::Receipt { .. } => receipt(facts, state, ctx),
        Command::Notice(r) => notice(r, state, facts, ctx),
        Command::Bind(r) => super::withdraw::bind(r, state, ctx),
        Command::ConfirmBind(r) => super::withdraw::confirm_bind(r, state, ctx),
        Command::Unbind(r) => super::withdraw::unbind(r, state, ctx),
        Command::Withdraw(r) => super::withdraw::withdraw(r, state, facts, ctx),
        Command::Rail(r) => super::withdraw::rail_outcome(r, state, facts, ctx),
    };
    result.unwrap_or_else(Decision::refuse)
}

/// Amount precondition of §1.2/§1.4: > 0 and ≤ the `Amt` maximum, else `E10009`.
pub(super) fn positive(amount: Fen) -> Result<Fen, ReturnCode> {
    if amount > 0 && amount <= AMOUNT_MAX_FEN {
        Ok(amount)
    } else {
        Err(ReturnCode::AmountNotAllowed)
    }
}

/// Accumulates the post-images of one decision.
pub(super) struct Book<'s> {
    pub(super) state: &'s LedgerState,
    pub(super) stamp: &'s Stamp,
    pub(super) w: Writes,
    pub(super) counters: Counters,
}

impl<'s> Book<'s> {
    pub(super) fn new(state: &'s LedgerState, stamp: &'s Stamp) -> Self {
        Book {
            state,
            stamp,
            w: Writes::default(),
            counters: state.counters,
        }
    }

    pub(super) fn sub(&self, id: i64) -> Option<&SubAccount> {
        self.w
            .subs
            .iter()
            .find(|s| s.id == id)
            .or_else(|| self.state.sub(id))
    }

    pub(super) fn sub_mut(&mut self, id: i64) -> Result<&mut SubAccount, ReturnCode> {
        if let Some(i) = self.w.subs.iter().position(|s| s.id == id) {
            return Ok(&mut self.w.subs[i]);
        }
        let s = self.state.sub(id).cloned().ok_or(ReturnCode::Internal)?;
        self.w.subs.push(s);
        self.w.subs.last_mut().ok_or(ReturnCode::Internal)
    }

    pub(super) fn master_mut(&mut self, id: i64) -> Result<&mut Master, ReturnCode> {
        if let Some(i) = self.w.masters.iter().position(|m| m.id == id) {
            return Ok(&mut self.w.masters[i]);
        }
        let m = self.state.master(id).cloned().ok_or(ReturnCode::Internal)?;
        self.w.masters.push(m);
        self.w.masters.last_mut().ok_or(ReturnCode::Internal)
    }

    pub(super) fn next_front_seq(&mut self) -> String {
        self.counters.front_seq += 1;
        format!(
            "{}{:08}",
            self.stamp.date_str,
            self.counters.front_seq % 100_000_000
        )
    }

    pub(super) fn next_receipt_no(&mut self) -> String {
        self.counters.receipt_seq += 1;
        format!(
            "HD{}{:010}",
            self.stamp.date_str,
            self.counters.receipt_seq % 10_000_000_000
        )
    }

    /// Moves `amount` on one side. Asset: debit +, credit −; liabilities the other way.
    fn apply_side(
        &mut self,
        master_id: i64,
        side: Side,
        amount: Fen,
        debit: bool,
    ) -> Result<(), ReturnCode> {
        let delta = if debit == side.is_asset() {
            amount
        } else {
            -amount
        };
        let slot = match side {
            Side::Sub(id) => &mut self.sub_mut(id)?.balance,
            Side::Mirror => &mut self.master_mut(master_id)?.mirror,
            Side::Suspense => &mut self.master_mut(master_id)?.suspense,
            Side::Fee => &mut self.master_mut(master_id)?.fee,
            Side::InTransit => &mut self.master_mut(master_id)?.in_transit,
        };
        *slot = slot
            .checked_add(delta)
            .ok_or(ReturnCode::AmountNotAllowed)?;
        Ok(())
    }

    /// Books a balanced posting and the detail rows of the sub-accounts it touches.
    pub(super) fn post(
        &mut self,
        p: Posting,
        front_seq_no: &str,
        peer: (&str, &str),
        remark: &str,
    ) -> Result<(), ReturnCode> {
        self.apply_side(p.master_id, p.debit, p.amount, true)?;
        self.apply_side(p.master_id, p.credit, p.amount, false)?;
        for (side, dc, peer_acct) in [(p.debit, 'D', peer.1), (p.credit, 'C', peer.0)] {
            if let Side::Sub(id) = side {
                let balance_after = self.sub(id).map(|s| s.balance).unwrap_or(0);
                self.w.entries.push(Entry {
                    sub_id: id,
                    front_seq_no: front_seq_no.to_string(),
                    acct_date: self.stamp.date,
                    time: self.stamp.time_str.clone(),
                    booking_type: p.booking_type,
                    dc,
                    amount: p.amount,
                    balance_after,
                    peer_acct: peer_acct.to_string(),
                    remark: remark.to_string(),
                });
            }
        }
        self.w.postings.push(p);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn receipt(
        &mut self,
        signer: &Signer,
        master_id: i64,
        front_seq_no: &str,
        payer: (&str, &str),
        payee: (&str, &str),
        amount: Fen,
        summary: &str,
    ) {
        let receipt_no = self.next_receipt_no();
        let check_code = signer.check_code(&ReceiptFields {
            receipt_no: &receipt_no,
            front_seq_no,
            booking_date: &self.stamp.date_str,
            payer_acct: payer.0,
            payee_acct: payee.0,
            amount_fen: amount,
        });
        self.w.receipts.push(ReceiptRow {
            front_seq_no: front_seq_no.to_string(),
            master_id,
            receipt_no,
            check_code,
            booking_date: self.stamp.date_str.clone(),
            payer_acct: payer.0.to_string(),
            payer_name: payer.1.to_string(),
            payee_acct: payee.0.to_string(),
            payee_name: payee.1.to_string(),
            amount,
            summary: summary.to_string(),
        });
    }

    pub(super) fn finish(
        mut self,
        code_fields: Vec<(&'static str, String)>,
        seq: Option<String>,
    ) -> Decision {
        if self.counters != self.state.counters {
            self.w.counters = Some(self.counters);
        }
        if !self.w.postings.is_empty() {
            self.w.booking_date = self.stamp.date;
        }
        Decision {
            code: ReturnCode::Ok,
            fields: code_fields,
            rows: None,
            front_seq_no: seq,
            writes: self.w,
        }
    }
}

/// Luhn check digit of a digit string (ISO/IEC 7812), used as the last digit of `SubAcctNo`
/// so that a mistyped sub-account number in a payee field or memo is caught.
pub fn luhn_digit(digits: &str) -> char {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0') % 10);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// `true` when `s` is 16 digits with a valid Luhn check digit (the `SubAcctNo` form).
pub fn is_sub_acct_no(s: &str) -> bool {
    s.len() == 16
        && s.bytes().all(|b| b.is_ascii_digit())
        && s[..15].starts_with('9')
        && luhn_digit(&s[..15]) == char::from(s.as_bytes()[15])
}

/// 6248 open. Precedence: master not of this enterprise `E10001`; member code known with a
/// different name or id `E10002`; else the existing or a new `SubAcctNo`.
fn open(r: &OpenReq, state: &LedgerState, ctx: &Ctx<'_>) -> Result<Decision, ReturnCode> {
    let master = state
        .master_by_no(&r.master_acct_no)
        .filter(|m| m.enterprise_code == ctx.enterprise)
        .ok_or(ReturnCode::SubNotFound)?;
    if let Some(existing) = state.sub_by_member(master.id, &r.member_code) {
        if existing.member_name != r.member_name
            || existing.global_id != r.global_id
            || existing.global_type != r.global_type
        {
            return Err(ReturnCode::MemberMismatch);
        }
        let mut book = Book::new(state, ctx.stamp);
        if existing.status == SubStatus::Closed {
            book.sub_mut(existing.id)?.status = SubStatus::Open;
        }
        return Ok(book.finish(vec![("SubAcctNo", existing.sub_acct_no.clone())], None));
    }
    let mut book = Book::new(state, ctx.stamp);
    book.counters.sub_seq += 1;
    let body = format!("9{:014}", book.counters.sub_seq % 100_000_000_000_000);
    let sub_acct_no = format!("{body}{}", luhn_digit(&body));
    book.w.subs.push(SubAccount {
        // The id is the sequence number itself: unique across instances that reserve blocks
        // of the sequence from one database (docs/protocol.md §5); on a single store it is
        // what "largest id + 1" gave, both growing together from 1.
        id: i64::try_from(book.counters.sub_seq).map_err(|_| ReturnCode::Internal)?,
        master_id: master.id,
        sub_acct_no: sub_acct_no.clone(),
        member_code: r.member_code.clone(),
        member_name: r.member_name.clone(),
        global_type: r.global_type.clone(),
        global_id: r.global_id.clone(),
        mobile: r.mobile.clone(),
        balance: 0,
        frozen: 0,
        status: SubStatus::Open,
        binding: None,
        chunks_in_flight: 0,
    });
    Ok(book.finish(vec![("SubAcctNo", sub_acct_no)], None))
}

/// 6248 close. Precedence: `E10001` not found; `E10002` name/id mismatch; `E10004` already
/// closed; `E10009` something left (balance or frozen amount).
fn close(r: &OpenReq, state: &LedgerState, ctx: &Ctx<'_>) -> Result<Decision, ReturnCode> {
    let master = state
        .master_by_no(&r.master_acct_no)
        .filter(|m| m.enterprise_code == ctx.enterprise)
        .ok_or(ReturnCode::SubNotFound)?;
    let sub = state
        .sub_by_member(master.id, &r.member_code)
        .ok_or(ReturnCode::SubNotFound)?;
    if sub.member_name != r.member_name || sub.global_id != r.global_id {
        return Err(ReturnCode::MemberMismatch);
    }
    if sub.status == SubStatus::Closed {
        return Err(ReturnCode::Closed);
    }
    if sub.balance != 0 || sub.frozen != 0 || sub.chunks_in_flight != 0 {
        return Err(ReturnCode::AmountNotAllowed);
    }
    let mut book = Book::new(state, ctx.stamp);
    book.sub_mut(sub.id)?.status = SubStatus::Closed;
    Ok(book.finish(vec![("SubAcctNo", sub.sub_acct_no.clone())], None))
}

/// An open sub-account of this enterprise whose member code matches: `E10001`, `E10002`,
/// `E10004` in that order.
pub(super) fn member_sub<'s>(
    state: &'s LedgerState,
    ctx: &Ctx<'_>,
    sub_acct_no: &str,
    member_code: Option<&str>,
) -> Result<&'s SubAccount, ReturnCode> {
    let sub = state
        .sub_owned(ctx.enterprise, sub_acct_no)
        .ok_or(ReturnCode::SubNotFound)?;
    if member_code.is_some_and(|m| m != sub.member_code) {
        return Err(ReturnCode::MemberMismatch);
    }
    if sub.status == SubStatus::Closed {
        return Err(ReturnCode::Closed);
    }
    Ok(sub)
}

/// 6034 forced transfer. Precedence: `E10009` amount ≤ 0 or fee < 0; `E10001` either
/// sub-account unknown, not this enterprise's, or the two under different master accounts;
/// `E10002`; `E10004`; `E10008` order used; `E10003` available < amount + fee.
fn transfer(
    r: &TransferReq,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    let amount = positive(r.amount)?;
    if r.fee < 0 || r.fee > AMOUNT_MAX_FEN {
        return Err(ReturnCode::AmountNotAllowed);
    }
    let payer = state
        .sub_owned(ctx.enterprise, &r.out_sub)
        .ok_or(ReturnCode::SubNotFound)?;
    let payee = state
        .sub_owned(ctx.enterprise, &r.in_sub)
        .ok_or(ReturnCode::SubNotFound)?;
    if payer.master_id != payee.master_id {
        return Err(ReturnCode::SubNotFound);
    }
    let payer = member_sub(state, ctx, &r.out_sub, Some(&r.out_member))?;
    let payee = member_sub(state, ctx, &r.in_sub, Some(&r.in_member))?;
    // Issue 7, item 4: a transfer to itself moves nothing and would post sub → same sub.
    if payer.id == payee.id {
        return Err(ReturnCode::AmountNotAllowed);
    }
    if facts.order_used {
        return Err(ReturnCode::OrderUsed);
    }
    let total = amount
        .checked_add(r.fee)
        .ok_or(ReturnCode::AmountNotAllowed)?;
    if payer.available() < total {
        return Err(ReturnCode::Insufficient);
    }
    let mut book = Book::new(state, ctx.stamp);
    let seq = book.next_front_seq();
    let master_id = payer.master_id;
    let peers = (payer.sub_acct_no.as_str(), payee.sub_acct_no.as_str());
    book.post(
        Posting {
            master_id,
            debit: Side::Sub(payer.id),
            credit: Side::Sub(payee.id),
            amount,
            booking_type: BookingType::ForcedTransfer,
        },
        &seq,
        peers,
        &r.remark,
    )?;
    if r.fee > 0 {
        let fee_acct = state
            .master(master_id)
            .map(|m| m.acct_no.as_str())
            .unwrap_or("");
        book.post(
            Posting {
                master_id,
                debit: Side::Sub(payer.id),
                credit: Side::Fee,
                amount: r.fee,
                booking_type: BookingType::Fee,
            },
            &seq,
            (payer.sub_acct_no.as_str(), fee_acct),
            "fee",
        )?;
    }
    book.receipt(
        ctx.signer,
        master_id,
        &seq,
        (&payer.sub_acct_no, &payer.member_name),
        (&payee.sub_acct_no, &payee.member_name),
        amount,
        "强制转账 forced transfer",
    );
    book.w.order_no = Some(r.order_no.clone());
    Ok(book.finish(vec![("FrontSeqNo", seq.clone())], Some(seq)))
}

/// 6007 freeze/unfreeze. Precedence: `E10009` amount ≤ 0; `E10001`; `E10004`; `E10008`;
/// freeze above available `E10003`; unfreeze above frozen `E10009`. No posting and no
/// e-receipt (docs/ledger.md: freeze moves an amount between available and frozen); a detail row
/// (`02`/`03`) records it.
fn freeze(
    r: &FreezeReq,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    let amount = positive(r.amount)?;
    let sub = member_sub(state, ctx, &r.sub_acct_no, None)?;
    if facts.order_used {
        return Err(ReturnCode::OrderUsed);
    }
    let frozen = if r.freeze {
        if sub.available() < amount {
            return Err(ReturnCode::Insufficient);
        }
        sub.frozen
            .checked_add(amount)
            .ok_or(ReturnCode::AmountNotAllowed)?
    } else {
        if sub.frozen < amount {
            return Err(ReturnCode::AmountNotAllowed);
        }
        sub.frozen - amount
    };
    let mut book = Book::new(state, ctx.stamp);
    let seq = book.next_front_seq();
    let s = book.sub_mut(sub.id)?;
    s.frozen = frozen;
    let balance_after = s.balance;
    book.w.entries.push(Entry {
        sub_id: sub.id,
        front_seq_no: seq.clone(),
        acct_date: ctx.stamp.date,
        time: ctx.stamp.time_str.clone(),
        booking_type: if r.freeze {
            BookingType::Freeze
        } else {
            BookingType::Unfreeze
        },
        dc: if r.freeze { 'D' } else { 'C' },
        amount,
        balance_after,
        peer_acct: String::new(),
        remark: String::new(),
    });
    book.w.order_no = Some(r.order_no.clone());
    Ok(book.finish(vec![("FrontSeqNo", seq.clone())], Some(seq)))
}

/// 6010 balance. `E10001` when not this enterprise's.
fn balance(sub_acct_no: &str, state: &LedgerState, ctx: &Ctx<'_>) -> Result<Decision, ReturnCode> {
    let s = state
        .sub_owned(ctx.enterprise, sub_acct_no)
        .ok_or(ReturnCode::SubNotFound)?;
    Ok(Decision::ok(vec![
        ("SubAcctNo", s.sub_acct_no.clone()),
        ("MemberName", s.member_name.clone()),
        ("TotalBalance", format_fen(s.balance)),
        ("FrozenAmt", format_fen(s.frozen)),
        ("AcctAvailBal", format_fen(s.available())),
        ("CashAmt", format_fen(s.available())),
    ]))
}

fn end_flag(total: u64, page: u32) -> String {
    let shown = u64::from(page).saturating_mul(u64::from(PAGE_ROWS));
    if shown >= total { "Y" } else { "N" }.to_string()
}

/// `StartDate` after `EndDate` or `PageNum` 0: `YQ9993`.
pub fn check_page(r: &PageReq) -> Result<(), ReturnCode> {
    if r.start_date > r.end_date || r.page == 0 {
        Err(ReturnCode::InvalidField)
    } else {
        Ok(())
    }
}

/// 6072 details of one sub-account (20 rows a page). `E10001` when not this enterprise's.
fn details(
    r: &PageReq,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    check_page(r)?;
    state
        .sub_owned(ctx.enterprise, &r.sub_acct_no)
        .ok_or(ReturnCode::SubNotFound)?;
    let (total, rows) = &facts.entries;
    let rows = rows
        .iter()
        .map(|e| {
            vec![
                ("FrontSeqNo", e.front_seq_no.clone()),
                ("TranDate", format!("{:08}", e.acct_date)),
                ("TranTime", e.time.clone()),
                ("BookingType", e.booking_type.code().to_string()),
                ("DcFlag", e.dc.to_string()),
                ("TranAmt", format_fen(e.amount)),
                ("Balance", format_fen(e.balance_after)),
                ("PeerAcctNo", e.peer_acct.clone()),
                ("Remark", e.remark.clone()),
            ]
        })
        .collect();
    let mut d = Decision::ok(vec![
        ("TotalCount", total.to_string()),
        ("EndFlag", end_flag(*total, r.page)),
    ]);
    d.rows = Some(rows);
    Ok(d)
}

/// 6050 inbound credits of the enterprise's master accounts (20 rows a page).
fn credits(r: &PageReq, facts: &Facts) -> Result<Decision, ReturnCode> {
    check_page(r)?;
    let (total, rows) = &facts.credits;
    let page_rows = rows
        .iter()
        .map(|c| {
            vec![
                ("FrontSeqNo", c.front_seq_no.clone()),
                ("InAcctType", c.in_acct_type.to_string()),
                ("SubAcctNo", c.sub_acct_no.clone()),
                ("TranAmt", format_fen(c.amount)),
                ("PayerAcctNo", c.payer_acct.clone()),
                ("PayerName", c.payer_name.clone()),
                ("AcctDate", format!("{:08}", c.acct_date)),
                ("Remark", c.remark.clone()),
            ]
        })
        .collect();
    let mut d = Decision::ok(vec![
        ("TotalCount", total.to_string()),
        ("EndFlag", end_flag(*total, r.page)),
    ]);
    d.rows = Some(page_rows);
    Ok(d)
}

/// 6139 suspense allocation. Precedence: `E10009` amount ≤ 0; `E10001`; `E10002`; `E10004`;
/// `YQ9996` no suspense credit with that `FrontSeqNo` under this sub-account's master
/// account; `E10008`; `E10009` above what is unallocated.
fn allocate(
    r: &AllocateReq,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    let amount = positive(r.amount)?;
    let sub = member_sub(state, ctx, &r.sub_acct_no, Some(&r.member_code))?;
    let credit = facts
        .credit
        .as_ref()
        .filter(|c| c.in_acct_type == "03" && c.master_id == sub.master_id)
        .ok_or(ReturnCode::NoRecord)?;
    if facts.order_used {
        return Err(ReturnCode::OrderUsed);
    }
    if amount > credit.unallocated {
        return Err(ReturnCode::AmountNotAllowed);
    }
    let mut book = Book::new(state, ctx.stamp);
    let seq = book.next_front_seq();
    let master_acct = state
        .master(sub.master_id)
        .map(|m| m.acct_no.clone())
        .unwrap_or_default();
    book.post(
        Posting {
            master_id: sub.master_id,
            debit: Side::Suspense,
            credit: Side::Sub(sub.id),
            amount,
            booking_type: BookingType::SuspenseAllocation,
        },
        &seq,
        (&credit.payer_acct, &master_acct),
        &credit.remark,
    )?;
    book.w
        .credit_updates
        .push((credit.front_seq_no.clone(), credit.unallocated - amount));
    book.w.credits.push(CreditRow {
        front_seq_no: seq.clone(),
        master_id: sub.master_id,
        in_acct_type: "04",
        sub_acct_no: sub.sub_acct_no.clone(),
        amount,
        unallocated: 0,
        payer_acct: credit.payer_acct.clone(),
        payer_name: credit.payer_name.clone(),
        acct_date: ctx.stamp.date,
        remark: credit.remark.clone(),
    });
    book.receipt(
        ctx.signer,
        sub.master_id,
        &seq,
        (&credit.payer_acct, &credit.payer_name),
        (&sub.sub_acct_no, &sub.member_name),
        amount,
        "挂账分配 suspense allocation",
    );
    book.w.order_no = Some(r.order_no.clone());
    Ok(book.finish(vec![("FrontSeqNo", seq.clone())], Some(seq)))
}

/// 6110 status of an earlier request other than an accepted 6033: `YQ9996` when the serial
/// is unknown.
pub(super) fn plain_status(facts: &Facts) -> Result<Decision, ReturnCode> {
    let s = facts.status.as_ref().ok_or(ReturnCode::NoRecord)?;
    let ok = s.return_code == ReturnCode::Ok.as_str();
    Ok(Decision::ok(vec![
        ("TranStatus", if ok { "0" } else { "1" }.to_string()),
        ("OrigTranCode", s.tx_code.clone()),
        (
            "FailMsg",
            if ok {
                String::new()
            } else {
                format!("{} {}", s.return_code, s.return_msg)
            },
        ),
    ]))
}

/// 6142 e-receipt: `YQ9996` when unknown or not this enterprise's.
fn receipt(facts: &Facts, state: &LedgerState, ctx: &Ctx<'_>) -> Result<Decision, ReturnCode> {
    let r = facts
        .receipt
        .as_ref()
        .filter(|r| {
            state
                .master(r.master_id)
                .is_some_and(|m| m.enterprise_code == ctx.enterprise)
        })
        .ok_or(ReturnCode::NoRecord)?;
    Ok(Decision::ok(vec![
        ("ReceiptNo", r.receipt_no.clone()),
        ("CheckCode", r.check_code.clone()),
        ("BookingDate", r.booking_date.clone()),
        ("PayerAcctNo", r.payer_acct.clone()),
        ("PayerName", r.payer_name.clone()),
        ("PayeeAcctNo", r.payee_acct.clone()),
        ("PayeeName", r.payee_name.clone()),
        ("TranAmt", format_fen(r.amount)),
        ("Summary", r.summary.clone()),
    ]))
}

/// Where an inbound credit goes (docs/protocol.md §2 自动清分), in order: payee is a sub-account
/// number → it (a closed one → suspense); payee is the master account and the payer account
/// is the verified bound account of exactly one sub-account of it → that one; the memo names
/// exactly one sub-account of that master → it; otherwise suspense. `None` when the payee is
/// neither (result `1002`).
pub fn allocation_target(n: &NoticeReq, state: &LedgerState) -> Option<(i64, Option<i64>)> {
    if let Some(sub) = state.sub_by_no(&n.payee) {
        let open = sub.status == SubStatus::Open;
        return Some((sub.master_id, open.then_some(sub.id)));
    }
    let master = state.master_by_no(&n.payee)?;
    if let [one] = state.bound_to(master.id, &n.payer_acct).as_slice() {
        let open = state.sub(*one).is_some_and(|s| s.status == SubStatus::Open);
        return Some((master.id, open.then_some(*one)));
    }
    let mut named: Vec<i64> = Vec::new();
    for cand in memo_sub_numbers(&n.memo) {
        if let Some(s) = state.sub_by_no(cand) {
            if s.master_id == master.id && !named.contains(&s.id) {
                named.push(s.id);
            }
        }
    }
    let target = match named.as_slice() {
        [one] => state
            .sub(*one)
            .filter(|s| s.status == SubStatus::Open)
            .map(|s| s.id),
        _ => None,
    };
    Some((master.id, target))
}

/// Every maximal run of exactly 16 ASCII digits in `memo` that is a well-formed `SubAcctNo`.
fn memo_sub_numbers(memo: &str) -> Vec<&str> {
    let b = memo.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if let Some(run) = memo.get(start..i) {
                if is_sub_acct_no(run) {
                    out.push(run);
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// 6920 inbound credit: books master mirror → sub-account or suspense, once per bank serial.
/// A repeated bank serial is accepted and moves nothing. `NoRecord` here means result `1002`
/// (payee unknown); `AmountNotAllowed` means `1001` (amount zero).
fn notice(
    n: &NoticeReq,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    if facts.notice_seen {
        return Ok(Decision::ok(Vec::new()));
    }
    let amount = positive(n.amount)?;
    let (master_id, target) = allocation_target(n, state).ok_or(ReturnCode::NoRecord)?;
    // Everything booked for a notice carries its own accounting date and time (§1.3 date
    // filters: "a notice's own accounting date for inbound credits").
    let stamp = Stamp {
        date: n.acct_date,
        date_str: format!("{:08}", n.acct_date),
        time_str: n.time.clone(),
    };
    let mut book = Book::new(state, &stamp);
    let seq = book.next_front_seq();
    book.post(
        Posting {
            master_id,
            debit: Side::Mirror,
            credit: target.map(Side::Sub).unwrap_or(Side::Suspense),
            amount,
            booking_type: BookingType::InboundCredit,
        },
        &seq,
        (&n.payer_acct, &n.payee),
        &n.memo,
    )?;
    let sub = target.and_then(|id| state.sub(id));
    book.w.credits.push(CreditRow {
        front_seq_no: seq.clone(),
        master_id,
        in_acct_type: if sub.is_some() { "02" } else { "03" },
        sub_acct_no: sub.map(|s| s.sub_acct_no.clone()).unwrap_or_default(),
        amount,
        unallocated: if sub.is_some() { 0 } else { amount },
        payer_acct: n.payer_acct.clone(),
        payer_name: n.payer_name.clone(),
        acct_date: n.acct_date,
        remark: n.memo.clone(),
    });
    if let Some(s) = sub {
        book.receipt(
            ctx.signer,
            master_id,
            &seq,
            (&n.payer_acct, &n.payer_name),
            (&s.sub_acct_no, &s.member_name),
            amount,
            "来账入金 inbound credit",
        );
    }
    book.w.notice = Some((n.bank_serial.clone(), seq.clone()));
    Ok(book.finish(vec![("FrontSeqNo", seq.clone())], Some(seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_reference() {
        // 7992739871 → check digit 3 (the classic Luhn example).
        assert_eq!(luhn_digit("7992739871"), '3');
        let body = "900000000000001";
        let no = format!("{body}{}", luhn_digit(body));
        assert!(is_sub_acct_no(&no));
        let mut typo = no.clone().into_bytes();
        typo[3] = b'1';
        assert!(!is_sub_acct_no(
            &String::from_utf8(typo).unwrap_or_default()
        ));
    }

    #[test]
    fn memo_scan_finds_only_well_formed_numbers() {
        let body = "900000000000001";
        let no = format!("{body}{}", luhn_digit(body));
        let memo = format!("pay {no} x 12345678901234567");
        assert_eq!(memo_sub_numbers(&memo), vec![no.as_str()]);
    }
}
