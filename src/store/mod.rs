//! Durable storage behind a trait, so that the embedded SQLite store (default) and a
//! PostgreSQL store (production) are interchangeable under the one batching writer.
//!
//! Contract: the writer calls `begin`, then for each request `savepoint`, prefetch reads,
//! appends, and `release` or `rollback_to`; then the account post-images of the batch once
//! (`write_accounts`, `save_counters`), then `commit`, which returns only when the batch is
//! durable (SQLite `synchronous=FULL`), or, after [`Store::defer_sync`], when it is ordered and
//! the sync handle makes it durable. Both stores hold a request's rows in memory from its
//! `savepoint` and write them at `release` (`rollback_to` drops them): no database
//! savepoint is taken, and a failure while writing them fails the whole batch. Amounts are
//! integer fen in every store (docs/operations.md (design notes)).

pub mod copy;
pub mod lock;
pub mod postgres;
pub mod sqlite;

use crate::ledger::decide::{CreditRow, Entry, ReceiptRow, StoredStatus, Writes};
use crate::ledger::state::Counters;
use crate::ledger::{Instruction, Master, SubAccount, Withdrawal};

/// A storage failure. The writer answers `YQ9999` (outcome unknown) for the batch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored data is not what this version expects.
    #[error("corrupt stored data: {0}")]
    Corrupt(&'static str),
    /// File system failure (data directory).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// PostgreSQL failed (connection, SQL, constraint, or a commit that did not happen).
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// An earlier part of this batch failed to reach the database; the batch cannot commit.
    #[error("batch poisoned by an earlier failure")]
    Poisoned,
    /// A file or folder of the store could not be created or opened.
    #[error("{path}: {message}")]
    Path {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why (the operating system's or SQLite's message).
        message: String,
    },
}

/// A recorded platform request and its final response (docs/protocol.md §1.2 idempotency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRequest {
    /// Header field 5.
    pub enterprise_code: String,
    /// Header field 12.
    pub serial: String,
    /// Header field 7.
    pub tx_code: String,
    /// SHA-256 of (transaction code, charset, body bytes): "the same request".
    pub fingerprint: Vec<u8>,
    /// Return code answered.
    pub return_code: String,
    /// Return message answered.
    pub return_msg: String,
    /// Body bytes answered, exactly.
    pub body: Vec<u8>,
}

impl StoredRequest {
    /// Its outcome as 6110 reports it.
    pub fn status(&self) -> StoredStatus {
        StoredStatus {
            tx_code: self.tx_code.clone(),
            return_code: self.return_code.clone(),
            return_msg: self.return_msg.clone(),
        }
    }
}

/// The idempotency keys one batch will look up (see [`Store::prefetch`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchKeys {
    /// (enterprise code, requester serial) of every platform request.
    pub requests: Vec<(String, String)>,
    /// (enterprise code, `OrderNo`) of every money-moving request.
    pub orders: Vec<(String, String)>,
    /// Bank serials of every 6920 notice.
    pub notices: Vec<String>,
}

/// Makes committed batches durable, from a thread other than the writer's
/// ([`Store::defer_sync`]).
pub trait SyncHandle: Send {
    /// Flushes the store's log to stable storage (one `fdatasync`): every batch whose
    /// [`Store::commit`] returned before this call is durable when it returns `Ok`.
    ///
    /// Errors: the operating system's error. After one, batches committed since the last
    /// successful sync are of unknown durability (the kernel may have dropped the dirty
    /// pages): the caller must stop serving until a restart reloads from disk, as
    /// PostgreSQL does on a failed fsync.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// One stored posting, as a statement lists it (docs/statements.md). Amount in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostingRow {
    /// Storage id: booking order within the store.
    pub id: i64,
    /// The `FrontSeqNo` it was booked under (a settled chunk: its withdrawal's).
    pub front_seq_no: String,
    /// Debit side, storage code: `mirror`, `suspense`, `fee`, `in_transit`, `sub:{id}`.
    pub debit: String,
    /// Credit side, same codes.
    pub credit: String,
    /// Amount, fen, > 0.
    pub amount: crate::money::Fen,
    /// `BookingType` two-digit code (docs/protocol.md §1.3).
    pub booking_type: String,
    /// Business date booked on, `yyyymmdd` (0: booked by a version that did not record it).
    pub booking_date: u32,
    /// The e-receipt number stored under the same `FrontSeqNo`, empty when none.
    pub receipt_no: String,
}

/// A sub-account's balance now, for a statement. Fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubBalance {
    /// Storage id (`sub:{id}` in posting sides).
    pub id: i64,
    /// `SubAcctNo`.
    pub sub_acct_no: String,
    /// Member name.
    pub member_name: String,
    /// Total balance now (frozen part included), fen.
    pub balance: crate::money::Fen,
}

/// What the statement of one master account for one business date needs, read in one
/// consistent snapshot ([`Store::statement_source`]). Balances are those now; the opening
/// and closing balances of the date are derived from them by taking back the postings
/// booked on and after the date (`crate::statement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementSource {
    /// The master account, balances now.
    pub master: Master,
    /// Its sub-accounts, in storage order, balances now.
    pub subs: Vec<SubBalance>,
    /// The postings booked on the date, in booking order.
    pub postings: Vec<PostingRow>,
    /// The postings booked after the date, summed per (debit side, credit side): fen.
    pub later: Vec<(String, String, crate::money::Fen)>,
}

/// The storage operations the writer needs. Every method may fail with [`StoreError`].
pub trait Store: Send + 'static {
    /// Loads every master account, sub-account and the counters.
    fn load(&mut self) -> Result<(Vec<Master>, Vec<SubAccount>, Counters), StoreError>;
    /// Creates master account `acct_no` of `enterprise_code` with zero balances if absent
    /// (idempotent; configuration provisioning).
    fn provision_master(&mut self, enterprise_code: &str, acct_no: &str) -> Result<(), StoreError>;
    /// The receipt secret, created with `fresh` on first use; a given secret replaces it
    /// only when none is stored.
    fn receipt_secret(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Starts a batch (write transaction).
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Marks the start of one request inside the batch.
    fn savepoint(&mut self) -> Result<(), StoreError>;
    /// Keeps the request's writes. Errors: writing them failed; part of them may be in the
    /// transaction, so the batch's [`Store::commit`] then fails ([`StoreError::Poisoned`]).
    fn release(&mut self) -> Result<(), StoreError>;
    /// Discards the request's writes.
    fn rollback_to(&mut self) -> Result<(), StoreError>;
    /// Commits the batch: durably, unless [`Store::defer_sync`] handed durability to a
    /// [`SyncHandle`].
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Abandons the batch.
    fn rollback(&mut self) -> Result<(), StoreError>;

    /// Announces the keys a batch is about to look up, before its first request is decided,
    /// so that a networked store can answer them all in one round trip instead of one per
    /// request. Later `request`, `order_used` and `notice_seen` calls for these keys must
    /// still see rows appended earlier in the batch. The default does nothing (SQLite reads
    /// are local and cheap).
    fn prefetch(&mut self, keys: &BatchKeys) -> Result<(), StoreError> {
        let _ = keys;
        Ok(())
    }

    /// Hands durability to another thread (the writer's pipelined commit, docs/ledger.md
    /// "The writer"): from this call on, [`Store::commit`] makes a batch visible and ordered
    /// but does not wait for the disk, and the returned handle's [`SyncHandle::sync`] makes
    /// every batch committed before it durable. The writer answers a batch only after such a
    /// sync, so it decides and writes the next batch while the disk flushes the previous one.
    /// `None` (the default): `commit` stays durable by itself (the PostgreSQL store, whose
    /// commit is `synchronous_commit` on).
    ///
    /// Errors: the store cannot change its mode or open its log for syncing.
    fn defer_sync(&mut self) -> Result<Option<Box<dyn SyncHandle>>, StoreError> {
        Ok(None)
    }

    /// Whether [`Store::prefetch`] does anything: the writer gathers a batch's keys only
    /// then (default `false`).
    fn prefetches(&self) -> bool {
        false
    }

    /// Reserves `n` more numbers of each identifier counter (`FrontSeqNo`, `SubAcctNo`,
    /// receipt number) for this process, durably, and returns the new top of each: the
    /// numbers in `(top - n, top]` are this process's alone, whoever else shares the store
    /// (docs/protocol.md §5). `None`: the store keeps counters with every batch instead
    /// (the embedded store, one process per store). Called outside a batch.
    fn reserve_counters(&mut self, n: u64) -> Result<Option<Counters>, StoreError> {
        let _ = n;
        Ok(None)
    }

    /// Makes the next commit conditional on `owner` still holding each tenant lease at the
    /// given epoch (fencing, docs/protocol.md §5): a store shared by several instances
    /// checks them inside the commit's transaction and fails the commit otherwise. Applies
    /// to the current batch only. The default (one process per store) ignores it.
    fn set_fence(&mut self, owner: &str, tenants: &[(String, i64)]) {
        let _ = (owner, tenants);
    }

    /// The master accounts of `enterprise_code` and their sub-accounts as stored now (a
    /// tenant taken over from another instance). The default filters [`Store::load`].
    fn load_tenant(
        &mut self,
        enterprise_code: &str,
    ) -> Result<(Vec<Master>, Vec<SubAccount>), StoreError> {
        let (masters, subs, _) = self.load()?;
        let masters: Vec<Master> = masters
            .into_iter()
            .filter(|m| m.enterprise_code == enterprise_code)
            .collect();
        let ids: Vec<i64> = masters.iter().map(|m| m.id).collect();
        let subs = subs
            .into_iter()
            .filter(|s| ids.contains(&s.master_id))
            .collect();
        Ok((masters, subs))
    }

    /// Calls `f` with every recorded idempotency key, of `enterprise` only when given: each
    /// request's (enterprise code, serial) as [`KeyKind::Request`] and each used order
    /// number's (enterprise code, `OrderNo`) as [`KeyKind::Order`]. The writer fills its
    /// [`crate::keyfilter::KeyFilter`] with them before serving a tenant. Keys are read in
    /// bounded pieces, never all held at once. Returns `false` when the store cannot list
    /// its keys (the default): the writer then looks every key up in the store.
    ///
    /// [`KeyKind::Request`]: crate::keyfilter::KeyKind::Request
    /// [`KeyKind::Order`]: crate::keyfilter::KeyKind::Order
    fn idempotency_keys(
        &mut self,
        enterprise: Option<&str>,
        f: &mut dyn FnMut(crate::keyfilter::KeyKind, &str, &str),
    ) -> Result<bool, StoreError> {
        let _ = (enterprise, f);
        Ok(false)
    }

    /// The recorded request `(enterprise_code, serial)`.
    fn request(
        &mut self,
        enterprise_code: &str,
        serial: &str,
    ) -> Result<Option<StoredRequest>, StoreError>;
    /// `true` when `order_no` was used by an accepted request of `enterprise_code`.
    fn order_used(&mut self, enterprise_code: &str, order_no: &str) -> Result<bool, StoreError>;
    /// `true` when `bank_serial` was booked.
    fn notice_seen(&mut self, bank_serial: &str) -> Result<bool, StoreError>;
    /// The inbound-credit row with `front_seq_no`.
    fn credit(&mut self, front_seq_no: &str) -> Result<Option<CreditRow>, StoreError>;
    /// Detail rows of sub-account `sub_id` with accounting date in `start..=end`: the total
    /// count and page `page` (from 1) of `rows` rows, in booking order.
    fn entries_page(
        &mut self,
        sub_id: i64,
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<Entry>), StoreError>;
    /// Inbound-credit rows of master accounts `master_ids` in `start..=end`: count and page.
    fn credits_page(
        &mut self,
        master_ids: &[i64],
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<CreditRow>), StoreError>;
    /// The e-receipt of `front_seq_no`.
    fn receipt(&mut self, front_seq_no: &str) -> Result<Option<ReceiptRow>, StoreError>;
    /// The e-receipt numbered `receipt_no` (`ReceiptNo`, unique), for the verification page
    /// of docs/protocol.md §6 (the caller compares the verification code).
    fn receipt_by_no(&mut self, receipt_no: &str) -> Result<Option<ReceiptRow>, StoreError>;
    /// The e-receipt whose verification code is `check_code` and whose payer or payee
    /// account is sub-account `sub_acct_no`, among the receipts of that sub-account's
    /// `recent` latest entries (docs/protocol.md §6: a member's sub-account and the code; an
    /// older receipt is found by its number). Bounded so that a lookup is a few thousand
    /// primary-key reads at most, and needs no index on the codes (which would cost every
    /// booking a scattered insert).
    fn receipt_by_code_and_account(
        &mut self,
        check_code: &str,
        sub_acct_no: &str,
        recent: u32,
    ) -> Result<Option<ReceiptRow>, StoreError>;
    /// The rail instruction `id`.
    fn instruction(&mut self, id: &str) -> Result<Option<Instruction>, StoreError>;
    /// The withdrawal with `front_seq_no` and all its chunks.
    fn withdrawal(
        &mut self,
        front_seq_no: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError>;
    /// The withdrawal with `front_seq_no`, and whether every chunk of it other than
    /// `except_id` has failed (the commission refund rule of docs/protocol.md §3). Stores
    /// should answer with one indexed count; this default reloads every chunk.
    fn withdrawal_refund_facts(
        &mut self,
        front_seq_no: &str,
        except_id: &str,
    ) -> Result<Option<(Withdrawal, bool)>, StoreError> {
        Ok(self.withdrawal(front_seq_no)?.map(|(w, chunks)| {
            let others_failed = chunks
                .iter()
                .all(|c| c.id == except_id || c.state == crate::ledger::InstructionState::Failed);
            (w, others_failed)
        }))
    }
    /// The withdrawal accepted for request `(enterprise_code, serial)` and its chunks.
    fn withdrawal_by_serial(
        &mut self,
        enterprise_code: &str,
        serial: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError>;
    /// Every instruction not yet settled or failed (resumed after a restart), oldest first.
    fn unresolved_instructions(&mut self) -> Result<Vec<Instruction>, StoreError>;
    /// Every instruction created on business date `date` (`yyyyMMdd`: the first 8 digits of
    /// its `FrontSeqNo`), in the order created; for reconciliation with the rail's day file
    /// (docs/protocol.md §3.2).
    fn instructions_of_date(&mut self, date: &str) -> Result<Vec<Instruction>, StoreError>;

    /// The statement data of master account `master_acct` for business date `date`
    /// (`yyyymmdd`), read in one consistent snapshot; `None` when no such master account.
    /// Reads the postings of the date and after through the `(master_id, booking_date)`
    /// index: its cost grows with the postings since the date, not with the whole history.
    fn statement_source(
        &mut self,
        master_acct: &str,
        date: u32,
    ) -> Result<Option<StatementSource>, StoreError>;

    /// Appends the rows of one accepted decision of `enterprise_code` (postings, entries,
    /// credits, receipts, order number, bank serial). Accounts are written by `write_accounts`.
    fn append(
        &mut self,
        enterprise_code: &str,
        front_seq_no: Option<&str>,
        w: &Writes,
    ) -> Result<(), StoreError>;
    /// Records a final platform response.
    fn record_request(&mut self, r: &StoredRequest) -> Result<(), StoreError>;
    /// Writes the post-images of the accounts a batch changed, once each.
    fn write_accounts(
        &mut self,
        masters: &[&Master],
        subs: &[&SubAccount],
    ) -> Result<(), StoreError>;
    /// Persists the identifier counters.
    fn save_counters(&mut self, c: &Counters) -> Result<(), StoreError>;
}

/// Storage code of a posting side: `mirror`, `suspense`, `fee`, `in_transit`, `sub:{id}`.
pub(crate) fn side_code(s: crate::ledger::Side) -> String {
    use crate::ledger::Side;
    match s {
        Side::Mirror => "mirror".into(),
        Side::Suspense => "suspense".into(),
        Side::Fee => "fee".into(),
        Side::InTransit => "in_transit".into(),
        Side::Sub(id) => format!("sub:{id}"),
    }
}

/// A `BookingType` from its two-digit code (docs/protocol.md §1.3); unknown codes read as
/// `01`.
pub(crate) fn booking_from(code: &str) -> crate::ledger::BookingType {
    use crate::ledger::BookingType;
    match code {
        "02" => BookingType::Freeze,
        "03" => BookingType::Unfreeze,
        "04" => BookingType::InboundCredit,
        "05" => BookingType::SuspenseAllocation,
        "06" => BookingType::Withdrawal,
        "07" => BookingType::WithdrawalRefund,
        "08" => BookingType::Fee,
        _ => BookingType::ForcedTransfer,
    }
}

/// An `InAcctType` (6050) from its stored code: `02`, `03`, anything else `04`.
pub(crate) fn in_acct_type(code: &str) -> &'static str {
    match code {
        "02" => "02",
        "03" => "03",
        _ => "04",
    }
}

/// The server's own message for a database error ("db error" alone says nothing).
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
