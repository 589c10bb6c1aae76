//! The ledger invariants of docs/ledger.md, checked on every committed batch in debug builds and
//! by the tests:
//! - every posting balances (one debit, one credit, same amount > 0);
//! - no sub-account balance below zero, and 0 ≤ frozen ≤ balance;
//! - master mirror = Σ every liability account of that master account (总分平衡).
//!
//! Booking each serial at most once is enforced by the store's unique keys.

use super::{LedgerState, Posting};

/// A violated invariant, naming the master account id and which rule broke (never amounts
/// of a member, which may be sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A posting with a non-positive amount or the same side twice.
    #[error("posting {index} does not balance")]
    Unbalanced {
        /// Index of the posting in its batch.
        index: usize,
    },
    /// A sub-account below zero or with frozen outside 0..=balance.
    #[error("sub-account id {sub_id} has a negative or over-frozen balance")]
    SubAccount {
        /// Storage id of the sub-account.
        sub_id: i64,
    },
    /// Master mirror ≠ Σ liabilities.
    #[error("master account id {master_id}: mirror does not equal the sum of liabilities")]
    NotBalanced {
        /// Storage id of the master account.
        master_id: i64,
    },
    /// Arithmetic overflow while summing.
    #[error("overflow while summing master account id {master_id}")]
    Overflow {
        /// Storage id of the master account.
        master_id: i64,
    },
}

/// Checks every posting of a batch.
pub fn check_postings(postings: &[Posting]) -> Result<(), Violation> {
    for (index, p) in postings.iter().enumerate() {
        if p.amount <= 0 || p.debit == p.credit {
            return Err(Violation::Unbalanced { index });
        }
    }
    Ok(())
}

/// Checks every sub-account and every master account's balance equation. O(accounts).
pub fn check_state(state: &LedgerState) -> Result<(), Violation> {
    for m in state.masters() {
        let mut total = m
            .suspense
            .checked_add(m.fee)
            .and_then(|t| t.checked_add(m.in_transit))
            .ok_or(Violation::Overflow { master_id: m.id })?;
        if m.suspense < 0 || m.fee < 0 || m.in_transit < 0 {
            return Err(Violation::NotBalanced { master_id: m.id });
        }
        for s in state.subs_of(m.id) {
            if s.balance < 0 || s.frozen < 0 || s.frozen > s.balance {
                return Err(Violation::SubAccount { sub_id: s.id });
            }
            total = total
                .checked_add(s.balance)
                .ok_or(Violation::Overflow { master_id: m.id })?;
        }
        if total != m.mirror {
            return Err(Violation::NotBalanced { master_id: m.id });
        }
    }
    Ok(())
}
