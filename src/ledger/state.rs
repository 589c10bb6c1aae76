//! The in-memory ledger snapshot owned by the writer: every master account and sub-account,
//! loaded from the store at start-up and changed only after a decision, with an undo log so
//! that a batch whose commit fails leaves memory equal to the store again.

use std::collections::HashMap;

use super::{Master, SubAccount};

/// Monotonic counters behind the gateway's own identifiers (persisted with every batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Last `FrontSeqNo` sequence used.
    pub front_seq: u64,
    /// Last `SubAcctNo` sequence used.
    pub sub_seq: u64,
    /// Last receipt-number sequence used.
    pub receipt_seq: u64,
}

/// One undo record: the value before a change (`None` = did not exist).
#[derive(Clone, Debug)]
pub enum Undo {
    /// A master account before the change.
    Master(Master),
    /// A sub-account before the change, by id.
    Sub(i64, Option<Box<SubAccount>>),
    /// The counters before the change.
    Counters(Counters),
}

/// Every master account and sub-account of the gateway, indexed for the decision.
#[derive(Clone, Debug, Default)]
pub struct LedgerState {
    masters: HashMap<i64, Master>,
    master_by_no: HashMap<String, i64>,
    subs: HashMap<i64, SubAccount>,
    sub_by_no: HashMap<String, i64>,
    sub_by_member: HashMap<(i64, String), i64>,
    /// (master id, verified bound account number) → sub-account ids (allocation rule, §2).
    bound: HashMap<(i64, String), Vec<i64>>,
    /// Identifier counters.
    pub counters: Counters,
    next_sub_id: i64,
}

impl LedgerState {
    /// Builds the state from stored rows.
    pub fn from_rows(masters: Vec<Master>, subs: Vec<SubAccount>, counters: Counters) -> Self {
        let mut s = LedgerState {
            counters,
            ..LedgerState::default()
        };
        for m in masters {
            s.master_by_no.insert(m.acct_no.clone(), m.id);
            s.masters.insert(m.id, m);
        }
        for sub in subs {
            s.index_sub(&sub);
            s.next_sub_id = s.next_sub_id.max(sub.id);
            s.subs.insert(sub.id, sub);
        }
        s
    }

    fn unindex_binding(&mut self, id: i64) {
        let Some(old) = self.subs.get(&id) else {
            return;
        };
        if let Some(b) = old.binding.as_ref().filter(|b| b.verified) {
            let key = (old.master_id, b.acct_no.clone());
            if let Some(v) = self.bound.get_mut(&key) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.bound.remove(&key);
                }
            }
        }
    }

    fn index_sub(&mut self, sub: &SubAccount) {
        if let Some(b) = sub.binding.as_ref().filter(|b| b.verified) {
            let ids = self
                .bound
                .entry((sub.master_id, b.acct_no.clone()))
                .or_default();
            if !ids.contains(&sub.id) {
                ids.push(sub.id);
            }
        }
        self.sub_by_no.insert(sub.sub_acct_no.clone(), sub.id);
        self.sub_by_member
            .insert((sub.master_id, sub.member_code.clone()), sub.id);
    }

    /// The id a new sub-account will get.
    pub fn next_sub_id(&self) -> i64 {
        self.next_sub_id + 1
    }

    /// A master account by id.
    pub fn master(&self, id: i64) -> Option<&Master> {
        self.masters.get(&id)
    }

    /// A master account by account number.
    pub fn master_by_no(&self, acct_no: &str) -> Option<&Master> {
        self.master_by_no
            .get(acct_no)
            .and_then(|id| self.masters.get(id))
    }

    /// Every master account (unordered).
    pub fn masters(&self) -> impl Iterator<Item = &Master> {
        self.masters.values()
    }

    /// The master accounts of an enterprise, by ascending id.
    pub fn masters_of(&self, enterprise_code: &str) -> Vec<&Master> {
        let mut v: Vec<&Master> = self
            .masters
            .values()
            .filter(|m| m.enterprise_code == enterprise_code)
            .collect();
        v.sort_by_key(|m| m.id);
        v
    }

    /// `true` when some master account belongs to `enterprise_code`.
    pub fn knows_enterprise(&self, enterprise_code: &str) -> bool {
        self.masters
            .values()
            .any(|m| m.enterprise_code == enterprise_code)
    }

    /// A sub-account by id.
    pub fn sub(&self, id: i64) -> Option<&SubAccount> {
        self.subs.get(&id)
    }

    /// A sub-account by number.
    pub fn sub_by_no(&self, sub_acct_no: &str) -> Option<&SubAccount> {
        self.sub_by_no
            .get(sub_acct_no)
            .and_then(|id| self.subs.get(id))
    }

    /// A sub-account by number, only if it is under a master account of `enterprise_code`
    /// (docs/protocol.md §1.4 `E10001`: not found, or not under this enterprise).
    pub fn sub_owned(&self, enterprise_code: &str, sub_acct_no: &str) -> Option<&SubAccount> {
        let sub = self.sub_by_no(sub_acct_no)?;
        let master = self.masters.get(&sub.master_id)?;
        (master.enterprise_code == enterprise_code).then_some(sub)
    }

    /// The sub-account of `member_code` under master `master_id`.
    pub fn sub_by_member(&self, master_id: i64, member_code: &str) -> Option<&SubAccount> {
        self.sub_by_member
            .get(&(master_id, member_code.to_string()))
            .and_then(|id| self.subs.get(id))
    }

    /// The sub-accounts of master `master_id` whose verified bound account is `acct_no`.
    pub fn bound_to(&self, master_id: i64, acct_no: &str) -> Vec<i64> {
        self.bound
            .get(&(master_id, acct_no.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every sub-account of master `master_id` (unordered).
    pub fn subs_of(&self, master_id: i64) -> impl Iterator<Item = &SubAccount> {
        self.subs.values().filter(move |s| s.master_id == master_id)
    }

    /// Replaces (or inserts) a master account, logging the old value.
    pub fn put_master(&mut self, m: Master, undo: &mut Vec<Undo>) {
        if let Some(old) = self.masters.get(&m.id) {
            undo.push(Undo::Master(old.clone()));
        }
        self.master_by_no.insert(m.acct_no.clone(), m.id);
        self.masters.insert(m.id, m);
    }

    /// Replaces (or inserts) a sub-account, logging the old value.
    pub fn put_sub(&mut self, s: SubAccount, undo: &mut Vec<Undo>) {
        let old = self.subs.get(&s.id).cloned().map(Box::new);
        undo.push(Undo::Sub(s.id, old));
        self.unindex_binding(s.id);
        self.next_sub_id = self.next_sub_id.max(s.id);
        self.index_sub(&s);
        self.subs.insert(s.id, s);
    }

    /// Sets the counters, logging the old value.
    pub fn put_counters(&mut self, c: Counters, undo: &mut Vec<Undo>) {
        undo.push(Undo::Counters(self.counters));
        self.counters = c;
    }

    /// Replaces every master account of `enterprise_code` and their sub-accounts with
    /// `masters` and `subs` as just read from the store (a tenant taken over from another
    /// instance, docs/protocol.md §5). Other tenants and the counters are kept. O(accounts).
    pub fn replace_tenant(
        &mut self,
        enterprise_code: &str,
        masters: Vec<Master>,
        subs: Vec<SubAccount>,
    ) {
        let gone: std::collections::HashSet<i64> = self
            .masters
            .values()
            .filter(|m| m.enterprise_code == enterprise_code)
            .map(|m| m.id)
            .chain(masters.iter().map(|m| m.id))
            .collect();
        let mut all_masters: Vec<Master> = self
            .masters
            .values()
            .filter(|m| !gone.contains(&m.id))
            .cloned()
            .collect();
        all_masters.extend(masters);
        let mut all_subs: Vec<SubAccount> = self
            .subs
            .values()
            .filter(|s| !gone.contains(&s.master_id))
            .cloned()
            .collect();
        all_subs.extend(subs);
        *self = LedgerState::from_rows(all_masters, all_subs, self.counters);
    }

    /// Undoes every record after position `mark` of `undo`, newest first, and truncates it.
    pub fn rollback(&mut self, undo: &mut Vec<Undo>, mark: usize) {
        while undo.len() > mark {
            match undo.pop() {
                Some(Undo::Master(m)) => {
                    self.masters.insert(m.id, m);
                }
                Some(Undo::Sub(id, Some(old))) => {
                    self.unindex_binding(id);
                    self.index_sub(&old);
                    self.subs.insert(id, *old);
                }
                Some(Undo::Sub(id, None)) => {
                    self.unindex_binding(id);
                    if let Some(s) = self.subs.remove(&id) {
                        self.sub_by_no.remove(&s.sub_acct_no);
                        self.sub_by_member.remove(&(s.master_id, s.member_code));
                    }
                    self.next_sub_id = self.subs.keys().copied().max().unwrap_or(0);
                }
                Some(Undo::Counters(c)) => self.counters = c,
                None => break,
            }
        }
    }
}
