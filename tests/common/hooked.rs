//! A store wrapper with test hooks (a commit gate, an injected write failure) around the real
//! SQLite store, for tests of the writer under storage trouble.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bankfep::ledger::decide::{CreditRow, Entry, ReceiptRow, Writes};
use bankfep::ledger::state::Counters;
use bankfep::ledger::{Instruction, Master, SubAccount, Withdrawal};
use bankfep::store::sqlite::SqliteStore;
use bankfep::store::{Store, StoreError, StoredRequest, SyncHandle};

/// A gate the test closes and opens; `commit` waits while it is closed.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    cv: Condvar,
    /// Commits currently waiting at the gate.
    pub waiting: AtomicUsize,
}

impl Gate {
    /// Closes (`true`) or opens the gate.
    pub fn set(&self, closed: bool) {
        *self.closed.lock().expect("gate") = closed;
        self.cv.notify_all();
    }
    /// Waits while the gate is closed (at most 60 s).
    pub fn pass(&self) {
        let mut closed = self.closed.lock().expect("gate");
        if !*closed {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // Bounded: a failed test must not hang the writer forever.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while *closed && std::time::Instant::now() < deadline {
            closed = self
                .cv
                .wait_timeout(closed, Duration::from_millis(100))
                .expect("gate")
                .0;
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The SQLite store with test hooks: `commit` waits at the gate, and `record_request` fails
/// for the transaction code set in `fail_record_for` (an injected storage fault).
pub struct HookedStore {
    inner: SqliteStore,
    gate: Arc<Gate>,
    /// Transaction code whose `record_request` fails while set.
    pub fail_record_for: Arc<Mutex<Option<String>>>,
    /// While set, the flusher's sync of the log fails (an injected fsync error).
    pub fail_sync: Arc<AtomicBool>,
    /// The flusher's sync waits at this gate (a slow disk).
    pub sync_gate: Arc<Gate>,
}

/// The real log sync behind [`HookedStore::sync_gate`] and [`HookedStore::fail_sync`].
struct HookedSync {
    inner: Box<dyn SyncHandle>,
    fail: Arc<AtomicBool>,
    gate: Arc<Gate>,
}

impl SyncHandle for HookedSync {
    fn sync(&mut self) -> std::io::Result<()> {
        self.gate.pass();
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.inner.sync()
    }
}

impl HookedStore {
    /// Wraps `inner` with `gate` and no injected fault.
    pub fn new(inner: SqliteStore, gate: Arc<Gate>) -> HookedStore {
        HookedStore {
            inner,
            gate,
            fail_record_for: Arc::new(Mutex::new(None)),
            fail_sync: Arc::new(AtomicBool::new(false)),
            sync_gate: Arc::new(Gate::default()),
        }
    }
}

impl Store for HookedStore {
    fn load(&mut self) -> Result<(Vec<Master>, Vec<SubAccount>, Counters), StoreError> {
        self.inner.load()
    }
    fn provision_master(&mut self, e: &str, acct: &str) -> Result<(), StoreError> {
        self.inner.provision_master(e, acct)
    }
    fn receipt_secret(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.inner.receipt_secret(fresh)
    }
    fn begin(&mut self) -> Result<(), StoreError> {
        self.inner.begin()
    }
    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.inner.savepoint()
    }
    fn release(&mut self) -> Result<(), StoreError> {
        self.inner.release()
    }
    fn rollback_to(&mut self) -> Result<(), StoreError> {
        self.inner.rollback_to()
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        self.gate.pass();
        self.inner.commit()
    }
    fn rollback(&mut self) -> Result<(), StoreError> {
        self.inner.rollback()
    }
    fn defer_sync(&mut self) -> Result<Option<Box<dyn SyncHandle>>, StoreError> {
        Ok(self.inner.defer_sync()?.map(|inner| {
            Box::new(HookedSync {
                inner,
                fail: self.fail_sync.clone(),
                gate: self.sync_gate.clone(),
            }) as Box<dyn SyncHandle>
        }))
    }
    fn idempotency_keys(
        &mut self,
        enterprise: Option<&str>,
        f: &mut dyn FnMut(bankfep::keyfilter::KeyKind, &str, &str),
    ) -> Result<bool, StoreError> {
        self.inner.idempotency_keys(enterprise, f)
    }
    fn request(&mut self, e: &str, serial: &str) -> Result<Option<StoredRequest>, StoreError> {
        self.inner.request(e, serial)
    }
    fn order_used(&mut self, e: &str, order_no: &str) -> Result<bool, StoreError> {
        self.inner.order_used(e, order_no)
    }
    fn notice_seen(&mut self, bank_serial: &str) -> Result<bool, StoreError> {
        self.inner.notice_seen(bank_serial)
    }
    fn credit(&mut self, seq: &str) -> Result<Option<CreditRow>, StoreError> {
        self.inner.credit(seq)
    }
    fn entries_page(
        &mut self,
        sub_id: i64,
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<Entry>), StoreError> {
        self.inner.entries_page(sub_id, start, end, page, rows)
    }
    fn credits_page(
        &mut self,
        master_ids: &[i64],
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<CreditRow>), StoreError> {
        self.inner.credits_page(master_ids, start, end, page, rows)
    }
    fn receipt(&mut self, seq: &str) -> Result<Option<ReceiptRow>, StoreError> {
        self.inner.receipt(seq)
    }
    fn receipt_by_no(&mut self, no: &str) -> Result<Option<ReceiptRow>, StoreError> {
        self.inner.receipt_by_no(no)
    }
    fn receipt_by_code_and_account(
        &mut self,
        code: &str,
        acct: &str,
        recent: u32,
    ) -> Result<Option<ReceiptRow>, StoreError> {
        self.inner.receipt_by_code_and_account(code, acct, recent)
    }
    fn instruction(&mut self, id: &str) -> Result<Option<Instruction>, StoreError> {
        self.inner.instruction(id)
    }
    fn withdrawal(
        &mut self,
        seq: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError> {
        self.inner.withdrawal(seq)
    }
    fn withdrawal_by_serial(
        &mut self,
        e: &str,
        serial: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError> {
        self.inner.withdrawal_by_serial(e, serial)
    }
    fn unresolved_instructions(&mut self) -> Result<Vec<Instruction>, StoreError> {
        self.inner.unresolved_instructions()
    }
    fn instructions_of_date(&mut self, date: &str) -> Result<Vec<Instruction>, StoreError> {
        self.inner.instructions_of_date(date)
    }
    fn statement_source(
        &mut self,
        master_acct: &str,
        date: u32,
    ) -> Result<Option<bankfep::store::StatementSource>, StoreError> {
        self.inner.statement_source(master_acct, date)
    }
    fn append(&mut self, e: &str, seq: Option<&str>, w: &Writes) -> Result<(), StoreError> {
        self.inner.append(e, seq, w)
    }
    fn record_request(&mut self, r: &StoredRequest) -> Result<(), StoreError> {
        let fail = self
            .fail_record_for
            .lock()
            .map(|f| f.as_deref() == Some(r.tx_code.as_str()))
            .unwrap_or(false);
        if fail {
            return Err(StoreError::Corrupt("injected record_request failure"));
        }
        self.inner.record_request(r)
    }
    fn write_accounts(
        &mut self,
        masters: &[&Master],
        subs: &[&SubAccount],
    ) -> Result<(), StoreError> {
        self.inner.write_accounts(masters, subs)
    }
    fn save_counters(&mut self, c: &Counters) -> Result<(), StoreError> {
        self.inner.save_counters(c)
    }
}
