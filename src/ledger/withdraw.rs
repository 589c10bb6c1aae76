//! Binding the single withdrawal account (`6240`, `6241`, `6065`), withdrawals (`6033`) and
//! rail outcomes: the pure decisions of issue 3 (docs/ledger.md "The life of the money", steps 1
//! and 4; docs/protocol.md §1.3 and §3).
//!
//! A withdrawal debits the sub-account into in transit (and the commission into fee) in the
//! same batch that records the withdrawal and its chunk instructions, so a balance can never
//! be spent twice and every instruction is persisted before it is sent. A settled chunk moves
//! in transit → master mirror; a failed one (any `F` but `RJ04`) refunds in transit →
//! sub-account with an e-receipt, and the commission is refunded when every chunk failed.

use super::decide::{member_sub, plain_status, positive, Book, Ctx, Decision, Facts};
use super::{
    BindReq, Binding, BookingType, ConfirmBindReq, Instruction, InstructionKind, InstructionState,
    LedgerState, Posting, RailOutcome, Side, UnbindReq, WithdrawReq, Withdrawal,
};
use crate::codec::charset::gbk_prefix;
use crate::codes::ReturnCode;
use crate::money::{format_fen, AMOUNT_MAX_FEN};

/// Width of the rail's memo field, bytes (docs/protocol.md §3).
pub const RAIL_MEMO_BYTES: usize = 60;

/// Wrong verification answers allowed per attempt (docs/protocol.md §1.4 `E10007`: 5 attempts).
pub const AUTH_ATTEMPTS: u32 = 5;

/// Instruction id of the small-amount verification sent for the 6240 with `front_seq_no`.
pub fn verify_instruction_id(front_seq_no: &str) -> String {
    format!("V{front_seq_no}")
}

/// Instruction id of chunk `chunk_no` (from 1) of the withdrawal with `front_seq_no`.
pub fn chunk_instruction_id(front_seq_no: &str, chunk_no: u32) -> String {
    format!("W{front_seq_no}{chunk_no:03}")
}

/// The chunk amounts of a withdrawal to the bound account: one `7002` for the same bank
/// (never split), else super e-bank `7001` chunks each strictly under 50,000.00 (§3).
pub fn chunk_amounts(same_bank: bool, amount_fen: i64) -> Vec<i64> {
    if same_bank {
        vec![amount_fen]
    } else {
        crate::rail::chunk::split_ibps(amount_fen)
    }
}

/// `6240`: precedence: `E10001`; `E10002` member code; `E10004`; `E10002` name ≠ member name;
/// `E10006` a verified account is bound; `YQ9993` other bank without `EiconBankBranchId`.
/// A pending binding is replaced by the new attempt. The verification amount (0.01–0.50) is
/// a keyed MAC of the sub-account and the request's `FrontSeqNo`: unpredictable to the
/// platform, reproducible for the gateway.
pub fn bind(r: &BindReq, state: &LedgerState, ctx: &Ctx<'_>) -> Result<Decision, ReturnCode> {
    let sub = member_sub(state, ctx, &r.sub_acct_no, Some(&r.member_code))?;
    if r.member_name != sub.member_name {
        return Err(ReturnCode::MemberMismatch);
    }
    if sub.binding.as_ref().is_some_and(|b| b.verified) {
        return Err(ReturnCode::AlreadyBound);
    }
    if !r.same_bank && r.bank_code.is_empty() {
        return Err(ReturnCode::InvalidField);
    }
    let mut book = Book::new(state, ctx.stamp);
    let seq = book.next_front_seq();
    let auth_amount = ctx.signer.auth_amount_fen(&sub.sub_acct_no, &seq);
    let binding = Binding {
        acct_no: r.acct_no.clone(),
        acct_name: r.member_name.clone(),
        same_bank: r.same_bank,
        branch_name: r.branch_name.clone(),
        bank_code: if r.same_bank {
            String::new()
        } else {
            r.bank_code.clone()
        },
        verified: false,
        auth_amount,
        attempts_left: AUTH_ATTEMPTS,
        verify_seq: seq.clone(),
    };
    book.sub_mut(sub.id)?.binding = Some(binding.clone());
    book.w.bindings.push((sub.id, Some(binding.clone())));
    book.w.instructions.push(Instruction {
        id: verify_instruction_id(&seq),
        kind: InstructionKind::Verify,
        front_seq_no: seq.clone(),
        chunk_no: 1,
        trade_code: if r.same_bank { "7002" } else { "7001" },
        payer_acct: ctx.expense_account.to_string(),
        payee_acct: binding.acct_no,
        payee_name: binding.acct_name,
        payee_bank: binding.bank_code,
        amount: auth_amount,
        memo: "小额鉴权 verification".into(),
        state: InstructionState::Unresolved,
        reject_code: String::new(),
        sub_id: sub.id,
        master_id: sub.master_id,
    });
    Ok(book.finish(vec![("AuthStatus", "P".into())], Some(seq)))
}

/// `6241`: precedence: `E10009` amount ≤ 0; `E10001`; `E10004`; `E10006` already verified;
/// `E10005` no pending verification for `TakeCashAcctNo`; then the right amount binds
/// (`AuthStatus` `S`) and a wrong one answers `E10007` with `RemainingAttempts` (at 0 the
/// attempt ends: a new 6240 is needed).
pub fn confirm_bind(
    r: &ConfirmBindReq,
    state: &LedgerState,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    let amount = positive(r.amount)?;
    let sub = member_sub(state, ctx, &r.sub_acct_no, None)?;
    // No attempt (never started, or ended by a final failure of its verification transfer,
    // docs/protocol.md §1.5): E10005.
    let b = sub.binding.as_ref().ok_or(ReturnCode::NotBound)?;
    if b.verified {
        return Err(ReturnCode::AlreadyBound);
    }
    if b.acct_no != r.acct_no {
        return Err(ReturnCode::NotBound);
    }
    let mut book = Book::new(state, ctx.stamp);
    if amount == b.auth_amount {
        let mut bound = b.clone();
        bound.verified = true;
        book.sub_mut(sub.id)?.binding = Some(bound.clone());
        book.w.bindings.push((sub.id, Some(bound)));
        return Ok(book.finish(vec![("AuthStatus", "S".into())], None));
    }
    let left = b.attempts_left.saturating_sub(1);
    let next = (left > 0).then(|| Binding {
        attempts_left: left,
        ..b.clone()
    });
    book.sub_mut(sub.id)?.binding = next.clone();
    book.w.bindings.push((sub.id, next));
    let mut d = book.finish(vec![("RemainingAttempts", left.to_string())], None);
    d.code = ReturnCode::WrongAuthAmount;
    Ok(d)
}

/// `6065`: precedence: `E10001`; `E10002`; `E10005` nothing bound or `MemberAcctNo` is not
/// the bound (or pending) account.
pub fn unbind(r: &UnbindReq, state: &LedgerState, ctx: &Ctx<'_>) -> Result<Decision, ReturnCode> {
    let sub = state
        .sub_owned(ctx.enterprise, &r.sub_acct_no)
        .ok_or(ReturnCode::SubNotFound)?;
    if sub.member_code != r.member_code {
        return Err(ReturnCode::MemberMismatch);
    }
    sub.binding
        .as_ref()
        .filter(|b| b.acct_no == r.acct_no)
        .ok_or(ReturnCode::NotBound)?;
    let mut book = Book::new(state, ctx.stamp);
    book.sub_mut(sub.id)?.binding = None;
    book.w.bindings.push((sub.id, None));
    Ok(book.finish(Vec::new(), None))
}

/// `6033`: precedence: `E10009` amount ≤ 0 or commission < 0; `E10001`; `E10002` member code
/// or name; `E10004`; `E10005` no verified bound account, or `TakeCashAcctNo` /
/// `OutAmtAcctName` not the bound ones; `E10008`; `E10009` more than `ctx.max_chunks` chunks
/// (docs/protocol.md §3); `E10003` available < amount + commission.
pub fn withdraw(
    r: &WithdrawReq,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    let amount = positive(r.amount)?;
    if r.fee < 0 || r.fee > AMOUNT_MAX_FEN {
        return Err(ReturnCode::AmountNotAllowed);
    }
    let sub = member_sub(state, ctx, &r.sub_acct_no, Some(&r.member_code))?;
    if r.member_name != sub.member_name {
        return Err(ReturnCode::MemberMismatch);
    }
    let b = sub
        .binding
        .as_ref()
        .filter(|b| b.verified)
        .ok_or(ReturnCode::NotBound)?;
    if b.acct_no != r.acct_no || b.acct_name != r.acct_name {
        return Err(ReturnCode::NotBound);
    }
    if facts.order_used {
        return Err(ReturnCode::OrderUsed);
    }
    let total = amount
        .checked_add(r.fee)
        .ok_or(ReturnCode::AmountNotAllowed)?;
    // docs/protocol.md §3: a withdrawal needing more than `max_chunks` chunks belongs on a
    // large-value channel; refused before anything is split or allocated (issue 7, item 1).
    let plan_count = if b.same_bank {
        1
    } else {
        crate::rail::chunk::plan_ibps(amount).count
    };
    if plan_count > i64::from(ctx.max_chunks) {
        return Err(ReturnCode::AmountNotAllowed);
    }
    if sub.available() < total {
        return Err(ReturnCode::Insufficient);
    }
    let master = state.master(sub.master_id).ok_or(ReturnCode::Internal)?;
    let mut book = Book::new(state, ctx.stamp);
    let seq = book.next_front_seq();
    let memo = if r.remark.is_empty() {
        "提现 withdrawal".to_string()
    } else {
        r.remark.clone()
    };
    book.post(
        Posting {
            master_id: master.id,
            debit: Side::Sub(sub.id),
            credit: Side::InTransit,
            amount,
            booking_type: BookingType::Withdrawal,
        },
        &seq,
        ("", &b.acct_no),
        &memo,
    )?;
    if r.fee > 0 {
        book.post(
            Posting {
                master_id: master.id,
                debit: Side::Sub(sub.id),
                credit: Side::Fee,
                amount: r.fee,
                booking_type: BookingType::Fee,
            },
            &seq,
            ("", &master.acct_no),
            "提现手续费 withdrawal commission",
        )?;
    }
    let chunks = chunk_amounts(b.same_bank, amount);
    let chunk_count = u32::try_from(chunks.len()).map_err(|_| ReturnCode::AmountNotAllowed)?;
    for (i, chunk) in chunks.iter().enumerate() {
        let chunk_no = u32::try_from(i + 1).map_err(|_| ReturnCode::AmountNotAllowed)?;
        book.w.instructions.push(Instruction {
            id: chunk_instruction_id(&seq, chunk_no),
            kind: InstructionKind::Chunk,
            front_seq_no: seq.clone(),
            chunk_no,
            trade_code: if b.same_bank { "7002" } else { "7001" },
            payer_acct: master.acct_no.clone(),
            payee_acct: b.acct_no.clone(),
            payee_name: b.acct_name.clone(),
            payee_bank: b.bank_code.clone(),
            amount: *chunk,
            memo: gbk_prefix(&memo, RAIL_MEMO_BYTES).to_string(),
            state: InstructionState::Unresolved,
            reject_code: String::new(),
            sub_id: sub.id,
            master_id: master.id,
        });
    }
    book.sub_mut(sub.id)?.chunks_in_flight += chunk_count;
    book.w.withdrawal = Some(Withdrawal {
        front_seq_no: seq.clone(),
        enterprise_code: ctx.enterprise.to_string(),
        serial: ctx.serial.to_string(),
        sub_id: sub.id,
        master_id: master.id,
        amount,
        fee: r.fee,
        chunk_count,
    });
    book.receipt(
        ctx.signer,
        master.id,
        &seq,
        (&sub.sub_acct_no, &sub.member_name),
        (&b.acct_no, &b.acct_name),
        amount,
        "会员提现 withdrawal",
    );
    book.w.order_no = Some(r.order_no.clone());
    Ok(book.finish(
        vec![
            ("FrontSeqNo", seq.clone()),
            ("TranStatus", "6".into()),
            ("ChunkCount", chunk_count.to_string()),
        ],
        Some(seq),
    ))
}

/// A final rail outcome. An instruction already resolved is left as it is (a repeated report
/// moves nothing). Verification instructions only change state. A settled chunk posts
/// in transit → master mirror; a failed chunk posts in transit → sub-account (`07`, with its
/// own `FrontSeqNo` and e-receipt), and, when it was the last unrefunded chunk and every
/// chunk failed, the commission fee → sub-account as well.
pub fn rail_outcome(
    r: &RailOutcome,
    state: &LedgerState,
    facts: &Facts,
    ctx: &Ctx<'_>,
) -> Result<Decision, ReturnCode> {
    let instr = facts.instruction.as_ref().ok_or(ReturnCode::NoRecord)?;
    if instr.state != InstructionState::Unresolved {
        return Ok(Decision::ok(Vec::new()));
    }
    let new_state = if r.settled {
        InstructionState::Settled
    } else {
        InstructionState::Failed
    };
    let mut book = Book::new(state, ctx.stamp);
    book.w.instruction_updates.push((
        instr.id.clone(),
        new_state,
        if r.settled {
            String::new()
        } else {
            r.reject_code.clone()
        },
    ));
    if instr.kind == InstructionKind::Verify {
        // docs/protocol.md §1.5: a final failure of the verification transfer ends the
        // attempt it belongs to (a later 6241 answers E10005; a new 6240 starts over). An
        // attempt already replaced by a newer 6240, or already verified, is left alone.
        if !r.settled {
            if let Some(sub) = state.sub(instr.sub_id) {
                let ends = sub
                    .binding
                    .as_ref()
                    .is_some_and(|b| !b.verified && b.verify_seq == instr.front_seq_no);
                if ends {
                    book.sub_mut(sub.id)?.binding = None;
                    book.w.bindings.push((sub.id, None));
                }
            }
        }
        return Ok(book.finish(Vec::new(), None));
    }
    let sub = state.sub(instr.sub_id).ok_or(ReturnCode::Internal)?;
    // The FrontSeqNo the postings are stored under (statements, `admin seq`): a settled
    // chunk's is its withdrawal's, a refund's is its own.
    let posted_seq;
    if r.settled {
        posted_seq = instr.front_seq_no.clone();
        book.post(
            Posting {
                master_id: instr.master_id,
                debit: Side::InTransit,
                credit: Side::Mirror,
                amount: instr.amount,
                booking_type: BookingType::Withdrawal,
            },
            &instr.front_seq_no,
            ("", ""),
            "",
        )?;
    } else {
        let seq = book.next_front_seq();
        posted_seq = seq.clone();
        let remark = format!("退票 refund {} {}", instr.id, r.reject_code);
        book.post(
            Posting {
                master_id: instr.master_id,
                debit: Side::InTransit,
                credit: Side::Sub(sub.id),
                amount: instr.amount,
                booking_type: BookingType::WithdrawalRefund,
            },
            &seq,
            (&instr.payee_acct, ""),
            &remark,
        )?;
        if let Some((w, others_all_failed)) = &facts.refund_withdrawal {
            if *others_all_failed && w.fee > 0 {
                book.post(
                    Posting {
                        master_id: instr.master_id,
                        debit: Side::Fee,
                        credit: Side::Sub(sub.id),
                        amount: w.fee,
                        booking_type: BookingType::Fee,
                    },
                    &seq,
                    ("", ""),
                    "提现手续费退回 commission refund",
                )?;
            }
        }
        book.receipt(
            ctx.signer,
            instr.master_id,
            &seq,
            (&instr.payee_acct, &instr.payee_name),
            (&sub.sub_acct_no, &sub.member_name),
            instr.amount,
            "提现退票 withdrawal refund",
        );
    }
    let s = book.sub_mut(sub.id)?;
    s.chunks_in_flight = s.chunks_in_flight.saturating_sub(1);
    Ok(book.finish(Vec::new(), Some(posted_seq)))
}

/// `TranStatus` of a withdrawal from its chunks (§3): `0` all settled, `1` all refunded,
/// `2` some settled and the rest refunded, `6` while any is unresolved.
pub fn withdrawal_status(chunks: &[Instruction]) -> &'static str {
    let settled = chunks
        .iter()
        .filter(|c| c.state == InstructionState::Settled)
        .count();
    let failed = chunks
        .iter()
        .filter(|c| c.state == InstructionState::Failed)
        .count();
    if settled + failed < chunks.len() {
        "6"
    } else if failed == 0 {
        "0"
    } else if settled == 0 {
        "1"
    } else {
        "2"
    }
}

/// 6110: for an accepted 6033, the live status and one row per chunk (larger first);
/// otherwise the recorded outcome. `YQ9996` when the serial is unknown.
pub fn status(facts: &Facts) -> Result<Decision, ReturnCode> {
    let s = facts.status.as_ref().ok_or(ReturnCode::NoRecord)?;
    let Some((_, chunks)) = facts
        .withdrawal
        .as_ref()
        .filter(|_| s.tx_code == "6033" && s.return_code == ReturnCode::Ok.as_str())
    else {
        return plain_status(facts);
    };
    let mut sorted: Vec<&Instruction> = chunks.iter().collect();
    sorted.sort_by_key(|c| c.chunk_no);
    let tran_status = withdrawal_status(chunks);
    let fail_msg = if tran_status == "1" || tran_status == "2" {
        let codes: Vec<&str> = sorted
            .iter()
            .filter(|c| c.state == InstructionState::Failed)
            .map(|c| c.reject_code.as_str())
            .collect();
        format!("refunded chunks: {}", codes.join(","))
    } else {
        String::new()
    };
    let mut d = Decision::ok(vec![
        ("TranStatus", tran_status.to_string()),
        ("OrigTranCode", s.tx_code.clone()),
        ("FailMsg", fail_msg),
    ]);
    d.rows = Some(
        sorted
            .iter()
            .map(|c| {
                vec![
                    ("ChunkNo", c.chunk_no.to_string()),
                    ("TranAmt", format_fen(c.amount)),
                    ("ChunkStatus", c.state.letter().to_string()),
                    ("RejectCode", c.reject_code.clone()),
                ]
            })
            .collect(),
    );
    Ok(d)
}
