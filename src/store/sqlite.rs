//! The embedded store: SQLite through rusqlite (bundled), WAL, `synchronous=FULL`,
//! `BEGIN IMMEDIATE` batches (docs/operations.md "Design notes"). Amounts are INTEGER fen.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{booking_from, in_acct_type, side_code, Store, StoreError, StoredRequest};
use crate::ledger::decide::{CreditRow, Entry, ReceiptRow, Writes};
use crate::ledger::state::Counters;
use crate::ledger::{
    Binding, Instruction, InstructionKind, InstructionState, Master, SubAccount, SubStatus,
    Withdrawal,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS masters(
  id INTEGER PRIMARY KEY, enterprise_code TEXT NOT NULL, acct_no TEXT NOT NULL UNIQUE,
  mirror INTEGER NOT NULL, suspense INTEGER NOT NULL, fee INTEGER NOT NULL,
  in_transit INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subs(
  id INTEGER PRIMARY KEY, master_id INTEGER NOT NULL REFERENCES masters(id),
  sub_acct_no TEXT NOT NULL UNIQUE, member_code TEXT NOT NULL, member_name TEXT NOT NULL,
  global_type TEXT NOT NULL, global_id TEXT NOT NULL, mobile TEXT NOT NULL,
  balance INTEGER NOT NULL CHECK(balance >= 0),
  frozen INTEGER NOT NULL CHECK(frozen >= 0 AND frozen <= balance),
  status INTEGER NOT NULL, UNIQUE(master_id, member_code));
CREATE TABLE IF NOT EXISTS postings(
  id INTEGER PRIMARY KEY, front_seq_no TEXT NOT NULL, master_id INTEGER NOT NULL,
  debit TEXT NOT NULL, credit TEXT NOT NULL, amount INTEGER NOT NULL CHECK(amount > 0),
  booking_type TEXT NOT NULL, booking_date INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entries(
  id INTEGER PRIMARY KEY, sub_id INTEGER NOT NULL, front_seq_no TEXT NOT NULL,
  acct_date INTEGER NOT NULL, time TEXT NOT NULL, booking_type TEXT NOT NULL, dc TEXT NOT NULL,
  amount INTEGER NOT NULL, balance_after INTEGER NOT NULL, peer_acct TEXT NOT NULL,
  remark TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_sub ON entries(sub_id, acct_date, id);
CREATE TABLE IF NOT EXISTS credits(
  front_seq_no TEXT NOT NULL UNIQUE, master_id INTEGER NOT NULL, in_acct_type TEXT NOT NULL,
  sub_acct_no TEXT NOT NULL, amount INTEGER NOT NULL, unallocated INTEGER NOT NULL,
  payer_acct TEXT NOT NULL, payer_name TEXT NOT NULL, acct_date INTEGER NOT NULL,
  remark TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS credits_by_date ON credits(master_id, acct_date);
CREATE TABLE IF NOT EXISTS receipts(
  front_seq_no TEXT PRIMARY KEY, master_id INTEGER NOT NULL, receipt_no TEXT NOT NULL UNIQUE,
  check_code TEXT NOT NULL, booking_date TEXT NOT NULL, payer_acct TEXT NOT NULL,
  payer_name TEXT NOT NULL, payee_acct TEXT NOT NULL, payee_name TEXT NOT NULL,
  amount INTEGER NOT NULL, summary TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests(
  enterprise_code TEXT NOT NULL, serial TEXT NOT NULL, tx_code TEXT NOT NULL,
  fingerprint BLOB NOT NULL, return_code TEXT NOT NULL, return_msg TEXT NOT NULL,
  body BLOB NOT NULL, PRIMARY KEY(enterprise_code, serial)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders(
  enterprise_code TEXT NOT NULL, order_no TEXT NOT NULL, front_seq_no TEXT NOT NULL,
  PRIMARY KEY(enterprise_code, order_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notices(
  bank_serial TEXT PRIMARY KEY, front_seq_no TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bindings(
  sub_id INTEGER PRIMARY KEY, acct_no TEXT NOT NULL, acct_name TEXT NOT NULL,
  same_bank INTEGER NOT NULL, branch_name TEXT NOT NULL, bank_code TEXT NOT NULL,
  verified INTEGER NOT NULL, auth_amount INTEGER NOT NULL, attempts_left INTEGER NOT NULL,
  verify_seq TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS withdrawals(
  front_seq_no TEXT PRIMARY KEY, enterprise_code TEXT NOT NULL, serial TEXT NOT NULL,
  sub_id INTEGER NOT NULL, master_id INTEGER NOT NULL, amount INTEGER NOT NULL CHECK(amount > 0),
  fee INTEGER NOT NULL, chunk_count INTEGER NOT NULL, UNIQUE(enterprise_code, serial));
CREATE TABLE IF NOT EXISTS instructions(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, front_seq_no TEXT NOT NULL, chunk_no INTEGER NOT NULL,
  trade_code TEXT NOT NULL, payer_acct TEXT NOT NULL, payee_acct TEXT NOT NULL,
  payee_name TEXT NOT NULL, payee_bank TEXT NOT NULL, amount INTEGER NOT NULL CHECK(amount > 0),
  memo TEXT NOT NULL, state TEXT NOT NULL, reject_code TEXT NOT NULL, sub_id INTEGER NOT NULL,
  master_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS instructions_by_withdrawal ON instructions(front_seq_no, chunk_no);
CREATE INDEX IF NOT EXISTS instructions_unresolved ON instructions(state);
";

const INSTRUCTION_COLS: &str = "id, kind, front_seq_no, chunk_no, trade_code, payer_acct, \
     payee_acct, payee_name, payee_bank, amount, memo, state, reject_code, sub_id, master_id";

fn instruction_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Instruction> {
    let kind: String = r.get(1)?;
    let trade: String = r.get(4)?;
    let state: String = r.get(11)?;
    Ok(Instruction {
        id: r.get(0)?,
        kind: if kind == "V" {
            InstructionKind::Verify
        } else {
            InstructionKind::Chunk
        },
        front_seq_no: r.get(2)?,
        chunk_no: r.get(3)?,
        trade_code: if trade == "7002" { "7002" } else { "7001" },
        payer_acct: r.get(5)?,
        payee_acct: r.get(6)?,
        payee_name: r.get(7)?,
        payee_bank: r.get(8)?,
        amount: r.get(9)?,
        memo: r.get(10)?,
        state: InstructionState::from_letter(&state),
        reject_code: r.get(12)?,
        sub_id: r.get(13)?,
        master_id: r.get(14)?,
    })
}

fn withdrawal_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Withdrawal> {
    Ok(Withdrawal {
        front_seq_no: r.get(0)?,
        enterprise_code: r.get(1)?,
        serial: r.get(2)?,
        sub_id: r.get(3)?,
        master_id: r.get(4)?,
        amount: r.get(5)?,
        fee: r.get(6)?,
        chunk_count: r.get(7)?,
    })
}

const WITHDRAWAL_COLS: &str =
    "front_seq_no, enterprise_code, serial, sub_id, master_id, amount, fee, chunk_count";

/// The SQLite store over one connection (the writer's).
pub struct SqliteStore {
    conn: Connection,
    /// The database file (its log is this path with `-wal` appended).
    file: std::path::PathBuf,
    /// The open request's rows, held in memory from [`Store::savepoint`] and written at
    /// [`Store::release`]; `None` outside a request (rows are then written at once).
    held: Option<Vec<Held>>,
    /// A request's rows were partly written when a statement failed: the batch must not
    /// commit ([`Store::commit`] answers [`StoreError::Poisoned`]).
    poisoned: bool,
}

/// Rows of one request, held until its savepoint is released (see [`SqliteStore`]).
enum Held {
    /// [`Store::append`]'s arguments.
    Append(String, Option<String>, Box<Writes>),
    /// [`Store::record_request`]'s argument.
    Request(StoredRequest),
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn credit_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<CreditRow> {
    let t: String = r.get(2)?;
    Ok(CreditRow {
        front_seq_no: r.get(0)?,
        master_id: r.get(1)?,
        in_acct_type: in_acct_type(&t),
        sub_acct_no: r.get(3)?,
        amount: r.get(4)?,
        unallocated: r.get(5)?,
        payer_acct: r.get(6)?,
        payer_name: r.get(7)?,
        acct_date: r.get(8)?,
        remark: r.get(9)?,
    })
}

const CREDIT_COLS: &str = "front_seq_no, master_id, in_acct_type, sub_acct_no, amount, \
     unallocated, payer_acct, payer_name, acct_date, remark";

/// The embedded store's [`super::SyncHandle`]: `fdatasync` of the database's write-ahead
/// log (`bankfep.sqlite3-wal`) through a descriptor of its own.
struct WalSync {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl WalSync {
    fn open(db: &Path) -> Result<WalSync, StoreError> {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let path = std::path::PathBuf::from(path);
        let file = Self::open_log(&path).map_err(|e| StoreError::Path {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(WalSync { path, file })
    }

    /// Opens the log for syncing (created, as SQLite would, when no write happened yet).
    fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
    }
}

impl super::SyncHandle for WalSync {
    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        // SQLite keeps its log file while a connection is open; should it ever have been
        // replaced, sync the file now at the path, never a stale one.
        let now = std::fs::metadata(&self.path)?;
        let held = self.file.metadata()?;
        if now.ino() != held.ino() || now.dev() != held.dev() {
            self.file = Self::open_log(&self.path)?;
        }
        self.file.sync_data()
    }
}

impl SqliteStore {
    /// Opens (creating) `dir/bankfep.sqlite3` with WAL and `synchronous=FULL`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |e: &dyn std::fmt::Display| StoreError::Path {
                path,
                message: e.to_string(),
            }
        };
        // Member names, id numbers and the receipt secret live here: 0700 / 0600 (issue 7,
        // item 9). SQLite gives its -wal and -shm files the database file's mode.
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| at(dir)(&e))?;
        }
        let file = dir.join("bankfep.sqlite3");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&file)
            .map_err(|e| at(&file)(&e))?;
        let conn = Connection::open(&file).map_err(|e| at(&file)(&e))?;
        conn.busy_timeout(std::time::Duration::from_millis(5_000))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Performance, not durability: a 64 MiB page cache keeps hot index pages in memory
        // (no re-reads through the kernel), savepoint journals stay in memory, and the WAL
        // is checkpointed every 4,096 pages instead of 1,000.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
        conn.execute_batch(SCHEMA)?;
        // Stores created before bindings carried their attempt's FrontSeqNo (issue 7, item 5).
        let has_verify_seq: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('bindings') WHERE name = 'verify_seq'")?
            .exists([])?;
        if !has_verify_seq {
            conn.execute_batch(
                "ALTER TABLE bindings ADD COLUMN verify_seq TEXT NOT NULL DEFAULT ''",
            )?;
        }
        // Stores created before postings carried their booking date (statements, issue 10):
        // dated from their FrontSeqNo; rail outcomes booked by older versions had none (0).
        let has_booking_date: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('postings') WHERE name = 'booking_date'")?
            .exists([])?;
        if !has_booking_date {
            conn.execute_batch(
                "ALTER TABLE postings ADD COLUMN booking_date INTEGER NOT NULL DEFAULT 0; \
                 UPDATE postings SET booking_date = CAST(substr(front_seq_no, 1, 8) AS INTEGER) \
                 WHERE front_seq_no <> '';",
            )?;
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS postings_by_date ON postings(master_id, booking_date)",
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn,
            file,
            held: None,
            poisoned: false,
        })
    }

    /// The first receipt matching `cond` (an SQL condition over `receipts` with `args`).
    fn receipt_where(
        &self,
        cond: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Option<ReceiptRow>, StoreError> {
        let sql = format!(
            "SELECT front_seq_no, master_id, receipt_no, check_code, booking_date, payer_acct, \
             payer_name, payee_acct, payee_name, amount, summary FROM receipts WHERE {cond} LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(args, |r| {
                Ok(ReceiptRow {
                    front_seq_no: r.get(0)?,
                    master_id: r.get(1)?,
                    receipt_no: r.get(2)?,
                    check_code: r.get(3)?,
                    booking_date: r.get(4)?,
                    payer_acct: r.get(5)?,
                    payer_name: r.get(6)?,
                    payee_acct: r.get(7)?,
                    payee_name: r.get(8)?,
                    amount: r.get(9)?,
                    summary: r.get(10)?,
                })
            })
            .optional()?)
    }

    /// Writes the rows of [`Store::append`] now.
    fn write_append(
        &self,
        enterprise_code: &str,
        front_seq_no: Option<&str>,
        w: &Writes,
    ) -> Result<(), StoreError> {
        let seq = front_seq_no.unwrap_or("");
        if !w.postings.is_empty() {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO postings(front_seq_no, master_id, debit, credit, amount, booking_type, \
                 booking_date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for p in &w.postings {
                st.execute(params![
                    seq,
                    p.master_id,
                    side_code(p.debit),
                    side_code(p.credit),
                    p.amount,
                    p.booking_type.code(),
                    w.booking_date
                ])?;
            }
        }
        if !w.entries.is_empty() {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO entries(sub_id, front_seq_no, acct_date, time, booking_type, dc, \
                 amount, balance_after, peer_acct, remark) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for e in &w.entries {
                st.execute(params![
                    e.sub_id,
                    e.front_seq_no,
                    e.acct_date,
                    e.time,
                    e.booking_type.code(),
                    e.dc.to_string(),
                    e.amount,
                    e.balance_after,
                    e.peer_acct,
                    e.remark
                ])?;
            }
        }
        if !w.credits.is_empty() {
            let sql = format!(
                "INSERT INTO credits({CREDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            );
            let mut st = self.conn.prepare_cached(&sql)?;
            for c in &w.credits {
                st.execute(params![
                    c.front_seq_no,
                    c.master_id,
                    c.in_acct_type,
                    c.sub_acct_no,
                    c.amount,
                    c.unallocated,
                    c.payer_acct,
                    c.payer_name,
                    c.acct_date,
                    c.remark
                ])?;
            }
        }
        for (seq_no, unallocated) in &w.credit_updates {
            self.conn
                .prepare_cached("UPDATE credits SET unallocated = ?2 WHERE front_seq_no = ?1")?
                .execute(params![seq_no, unallocated])?;
        }
        if !w.receipts.is_empty() {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO receipts(front_seq_no, master_id, receipt_no, check_code, booking_date, \
                 payer_acct, payer_name, payee_acct, payee_name, amount, summary) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for r in &w.receipts {
                st.execute(params![
                    r.front_seq_no,
                    r.master_id,
                    r.receipt_no,
                    r.check_code,
                    r.booking_date,
                    r.payer_acct,
                    r.payer_name,
                    r.payee_acct,
                    r.payee_name,
                    r.amount,
                    r.summary
                ])?;
            }
        }
        if let Some(order_no) = &w.order_no {
            self.conn
                .prepare_cached(
                    "INSERT INTO orders(enterprise_code, order_no, front_seq_no) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![enterprise_code, order_no, seq])?;
        }
        for (sub_id, binding) in &w.bindings {
            match binding {
                Some(b) => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO bindings(sub_id, acct_no, acct_name, same_bank, branch_name, \
                             bank_code, verified, auth_amount, attempts_left, verify_seq) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                             ON CONFLICT(sub_id) DO UPDATE SET acct_no = excluded.acct_no, \
                             acct_name = excluded.acct_name, same_bank = excluded.same_bank, \
                             branch_name = excluded.branch_name, bank_code = excluded.bank_code, \
                             verified = excluded.verified, auth_amount = excluded.auth_amount, \
                             attempts_left = excluded.attempts_left, \
                             verify_seq = excluded.verify_seq",
                        )?
                        .execute(params![
                            sub_id,
                            b.acct_no,
                            b.acct_name,
                            i64::from(b.same_bank),
                            b.branch_name,
                            b.bank_code,
                            i64::from(b.verified),
                            b.auth_amount,
                            b.attempts_left,
                            b.verify_seq
                        ])?;
                }
                None => {
                    self.conn
                        .prepare_cached("DELETE FROM bindings WHERE sub_id = ?1")?
                        .execute([sub_id])?;
                }
            }
        }
        if let Some(wd) = &w.withdrawal {
            let sql = format!(
                "INSERT INTO withdrawals({WITHDRAWAL_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            );
            self.conn.prepare_cached(&sql)?.execute(params![
                wd.front_seq_no,
                wd.enterprise_code,
                wd.serial,
                wd.sub_id,
                wd.master_id,
                wd.amount,
                wd.fee,
                wd.chunk_count
            ])?;
        }
        for i in &w.instructions {
            let sql = format!(
                "INSERT INTO instructions({INSTRUCTION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            );
            self.conn.prepare_cached(&sql)?.execute(params![
                i.id,
                if i.kind == InstructionKind::Verify {
                    "V"
                } else {
                    "C"
                },
                i.front_seq_no,
                i.chunk_no,
                i.trade_code,
                i.payer_acct,
                i.payee_acct,
                i.payee_name,
                i.payee_bank,
                i.amount,
                i.memo,
                i.state.letter(),
                i.reject_code,
                i.sub_id,
                i.master_id
            ])?;
        }
        for (id, state, reject) in &w.instruction_updates {
            self.conn
                .prepare_cached(
                    "UPDATE instructions SET state = ?2, reject_code = ?3 WHERE id = ?1 AND state = 'P'",
                )?
                .execute(params![id, state.letter(), reject])?;
        }
        if let Some((bank_serial, seq_no)) = &w.notice {
            self.conn
                .prepare_cached("INSERT INTO notices(bank_serial, front_seq_no) VALUES (?1, ?2)")?
                .execute(params![bank_serial, seq_no])?;
        }
        Ok(())
    }

    /// Writes the row of [`Store::record_request`] now.
    fn write_request(&self, r: &StoredRequest) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO requests(enterprise_code, serial, tx_code, fingerprint, return_code, \
                 return_msg, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.enterprise_code,
                r.serial,
                r.tx_code,
                r.fingerprint,
                r.return_code,
                r.return_msg,
                r.body
            ])?;
        Ok(())
    }

    /// Runs a parameterless statement through the statement cache (no re-parse per request).
    fn exec_cached(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    fn meta_u64(&self, key: &str) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        u64::try_from(v.unwrap_or(0)).map_err(|_| StoreError::Corrupt("negative counter"))
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<(Vec<Master>, Vec<SubAccount>, Counters), StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, enterprise_code, acct_no, mirror, suspense, fee, in_transit FROM masters",
        )?;
        let masters = st
            .query_map([], |r| {
                Ok(Master {
                    id: r.get(0)?,
                    enterprise_code: r.get(1)?,
                    acct_no: r.get(2)?,
                    mirror: r.get(3)?,
                    suspense: r.get(4)?,
                    fee: r.get(5)?,
                    in_transit: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = self.conn.prepare(
            "SELECT id, master_id, sub_acct_no, member_code, member_name, global_type, global_id, \
             mobile, balance, frozen, status FROM subs",
        )?;
        let subs = st
            .query_map([], |r| {
                Ok(SubAccount {
                    id: r.get(0)?,
                    master_id: r.get(1)?,
                    sub_acct_no: r.get(2)?,
                    member_code: r.get(3)?,
                    member_name: r.get(4)?,
                    global_type: r.get(5)?,
                    global_id: r.get(6)?,
                    mobile: r.get(7)?,
                    balance: r.get(8)?,
                    frozen: r.get(9)?,
                    status: SubStatus::from_code(r.get(10)?),
                    binding: None,
                    chunks_in_flight: 0,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut subs = subs;
        let mut by_id: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        for (i, s) in subs.iter().enumerate() {
            by_id.insert(s.id, i);
        }
        let mut st = self.conn.prepare(
            "SELECT sub_id, acct_no, acct_name, same_bank, branch_name, bank_code, verified, \
             auth_amount, attempts_left, verify_seq FROM bindings",
        )?;
        let bindings = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Binding {
                        acct_no: r.get(1)?,
                        acct_name: r.get(2)?,
                        same_bank: r.get::<_, i64>(3)? == 1,
                        branch_name: r.get(4)?,
                        bank_code: r.get(5)?,
                        verified: r.get::<_, i64>(6)? == 1,
                        auth_amount: r.get(7)?,
                        attempts_left: r.get(8)?,
                        verify_seq: r.get(9)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (sub_id, b) in bindings {
            if let Some(s) = by_id.get(&sub_id).and_then(|i| subs.get_mut(*i)) {
                s.binding = Some(b);
            }
        }
        let mut st = self.conn.prepare(
            "SELECT sub_id, COUNT(*) FROM instructions WHERE state = 'P' AND kind = 'C' \
             GROUP BY sub_id",
        )?;
        let counts = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        for (sub_id, n) in counts {
            if let Some(s) = by_id.get(&sub_id).and_then(|i| subs.get_mut(*i)) {
                s.chunks_in_flight = n;
            }
        }
        let counters = Counters {
            front_seq: self.meta_u64("front_seq")?,
            sub_seq: self.meta_u64("sub_seq")?,
            receipt_seq: self.meta_u64("receipt_seq")?,
        };
        Ok((masters, subs, counters))
    }

    fn provision_master(&mut self, enterprise_code: &str, acct_no: &str) -> Result<(), StoreError> {
        let owner: Option<String> = self
            .conn
            .query_row(
                "SELECT enterprise_code FROM masters WHERE acct_no = ?1",
                [acct_no],
                |r| r.get(0),
            )
            .optional()?;
        match owner {
            Some(o) if o == enterprise_code => Ok(()),
            Some(_) => Err(StoreError::Corrupt(
                "master account already provisioned for another enterprise",
            )),
            None => {
                self.conn.execute(
                    "INSERT INTO masters(enterprise_code, acct_no, mirror, suspense, fee, in_transit) \
                     VALUES (?1, ?2, 0, 0, 0, 0)",
                    params![enterprise_code, acct_no],
                )?;
                Ok(())
            }
        }
    }

    fn receipt_secret(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let v: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'receipt_secret'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(v) = v {
            return Ok(v);
        }
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES ('receipt_secret', ?1)",
            [fresh],
        )?;
        Ok(fresh.to_vec())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.held = None;
        self.poisoned = false;
        self.exec_cached("BEGIN IMMEDIATE")
    }
    // A request's savepoint is a buffer, not an SQLite SAVEPOINT: SQLite would copy every
    // page a request touches into its statement journal in case of a rollback that almost
    // never comes (7% of the gateway's CPU, issue 9). Its rows are written at `release`;
    // `rollback_to` drops them unwritten.
    fn savepoint(&mut self) -> Result<(), StoreError> {
        // A request neither released nor rolled back keeps its rows, as on PostgreSQL,
        // whose savepoint is a mark in its buffers.
        if self.held.is_some() {
            self.release()?;
        }
        self.held = Some(Vec::new());
        Ok(())
    }
    fn release(&mut self) -> Result<(), StoreError> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        for h in &held {
            let written = match h {
                Held::Append(e, seq, w) => self.write_append(e, seq.as_deref(), w),
                Held::Request(r) => self.write_request(r),
            };
            if let Err(e) = written {
                // Part of the request may be in the transaction, which cannot take it back
                // alone: the whole batch is refused (the writer answers YQ9999 / 1003).
                self.poisoned = true;
                return Err(e);
            }
        }
        Ok(())
    }
    fn rollback_to(&mut self) -> Result<(), StoreError> {
        self.held = None;
        Ok(())
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        self.held = None;
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        self.exec_cached("COMMIT")
    }
    fn defer_sync(&mut self) -> Result<Option<Box<dyn super::SyncHandle>>, StoreError> {
        // In WAL mode with synchronous=NORMAL a commit appends its frames to the log without
        // fsync; SQLite still syncs the log before each checkpoint and the database file
        // after it. The log's frames carry a cumulative checksum, so after a crash recovery
        // keeps exactly a prefix of the committed batches: a batch is never kept without
        // every batch committed before it. `WalSync` makes that prefix durable.
        let wal = WalSync::open(&self.file)?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Some(Box::new(wal)))
    }
    fn rollback(&mut self) -> Result<(), StoreError> {
        self.held = None;
        self.poisoned = false;
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    fn request(
        &mut self,
        enterprise_code: &str,
        serial: &str,
    ) -> Result<Option<StoredRequest>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT tx_code, fingerprint, return_code, return_msg, body FROM requests \
             WHERE enterprise_code = ?1 AND serial = ?2",
        )?;
        Ok(st
            .query_row(params![enterprise_code, serial], |r| {
                Ok(StoredRequest {
                    enterprise_code: enterprise_code.to_string(),
                    serial: serial.to_string(),
                    tx_code: r.get(0)?,
                    fingerprint: r.get(1)?,
                    return_code: r.get(2)?,
                    return_msg: r.get(3)?,
                    body: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn order_used(&mut self, enterprise_code: &str, order_no: &str) -> Result<bool, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM orders WHERE enterprise_code = ?1 AND order_no = ?2")?;
        Ok(st.exists(params![enterprise_code, order_no])?)
    }

    fn notice_seen(&mut self, bank_serial: &str) -> Result<bool, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM notices WHERE bank_serial = ?1")?;
        Ok(st.exists([bank_serial])?)
    }

    fn credit(&mut self, front_seq_no: &str) -> Result<Option<CreditRow>, StoreError> {
        let sql = format!("SELECT {CREDIT_COLS} FROM credits WHERE front_seq_no = ?1");
        let mut st = self.conn.prepare_cached(&sql)?;
        Ok(st.query_row([front_seq_no], credit_from).optional()?)
    }

    fn entries_page(
        &mut self,
        sub_id: i64,
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<Entry>), StoreError> {
        let total: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM entries WHERE sub_id = ?1 AND acct_date BETWEEN ?2 AND ?3",
            )?
            .query_row(params![sub_id, start, end], |r| r.get(0))?;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(rows);
        let mut st = self.conn.prepare_cached(
            "SELECT front_seq_no, acct_date, time, booking_type, dc, amount, balance_after, \
             peer_acct, remark FROM entries WHERE sub_id = ?1 AND acct_date BETWEEN ?2 AND ?3 \
             ORDER BY acct_date, id LIMIT ?4 OFFSET ?5",
        )?;
        let list = st
            .query_map(params![sub_id, start, end, rows, offset], |r| {
                let bt: String = r.get(3)?;
                let dc: String = r.get(4)?;
                Ok(Entry {
                    sub_id,
                    front_seq_no: r.get(0)?,
                    acct_date: r.get(1)?,
                    time: r.get(2)?,
                    booking_type: booking_from(&bt),
                    dc: if dc == "C" { 'C' } else { 'D' },
                    amount: r.get(5)?,
                    balance_after: r.get(6)?,
                    peer_acct: r.get(7)?,
                    remark: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((u64::try_from(total).unwrap_or(0), list))
    }

    fn credits_page(
        &mut self,
        master_ids: &[i64],
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<CreditRow>), StoreError> {
        let ids = master_ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let filter = format!("master_id IN ({ids}) AND acct_date BETWEEN ?1 AND ?2");
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM credits WHERE {filter}"))?
            .query_row(params![start, end], |r| r.get(0))?;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(rows);
        let sql = format!(
            "SELECT {CREDIT_COLS} FROM credits WHERE {filter} ORDER BY acct_date, rowid \
             LIMIT ?3 OFFSET ?4"
        );
        let list = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params![start, end, rows, offset], credit_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((u64::try_from(total).unwrap_or(0), list))
    }

    fn receipt(&mut self, front_seq_no: &str) -> Result<Option<ReceiptRow>, StoreError> {
        self.receipt_where("front_seq_no = ?1", &[&front_seq_no])
    }

    fn receipt_by_no(&mut self, receipt_no: &str) -> Result<Option<ReceiptRow>, StoreError> {
        self.receipt_where("receipt_no = ?1", &[&receipt_no])
    }

    fn receipt_by_code_and_account(
        &mut self,
        check_code: &str,
        sub_acct_no: &str,
        recent: u32,
    ) -> Result<Option<ReceiptRow>, StoreError> {
        // Through the sub-account's entries (index `entries_by_sub`, newest first) to the
        // receipts' primary key: no index on the random verification codes, which would
        // cost every booking a scattered B-tree insert.
        self.receipt_where(
            "front_seq_no IN (SELECT e.front_seq_no FROM entries e JOIN subs s ON e.sub_id = s.id \
             WHERE s.sub_acct_no = ?2 ORDER BY e.acct_date DESC, e.id DESC LIMIT ?3) \
             AND check_code = ?1 AND (payer_acct = ?2 OR payee_acct = ?2)",
            &[&check_code, &sub_acct_no, &recent],
        )
    }

    fn instruction(&mut self, id: &str) -> Result<Option<Instruction>, StoreError> {
        let sql = format!("SELECT {INSTRUCTION_COLS} FROM instructions WHERE id = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], instruction_from)
            .optional()?)
    }

    fn withdrawal(
        &mut self,
        front_seq_no: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError> {
        let sql = format!("SELECT {WITHDRAWAL_COLS} FROM withdrawals WHERE front_seq_no = ?1");
        let w = self
            .conn
            .prepare_cached(&sql)?
            .query_row([front_seq_no], withdrawal_from)
            .optional()?;
        let Some(w) = w else { return Ok(None) };
        let sql = format!(
            "SELECT {INSTRUCTION_COLS} FROM instructions WHERE front_seq_no = ?1 ORDER BY chunk_no"
        );
        let chunks = self
            .conn
            .prepare_cached(&sql)?
            .query_map([front_seq_no], instruction_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((w, chunks)))
    }

    fn withdrawal_refund_facts(
        &mut self,
        front_seq_no: &str,
        except_id: &str,
    ) -> Result<Option<(Withdrawal, bool)>, StoreError> {
        let sql = format!("SELECT {WITHDRAWAL_COLS} FROM withdrawals WHERE front_seq_no = ?1");
        let w = self
            .conn
            .prepare_cached(&sql)?
            .query_row([front_seq_no], withdrawal_from)
            .optional()?;
        let Some(w) = w else { return Ok(None) };
        let not_failed: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM instructions WHERE front_seq_no = ?1 AND id <> ?2 \
                 AND state <> 'F'",
            )?
            .query_row(params![front_seq_no, except_id], |r| r.get(0))?;
        Ok(Some((w, not_failed == 0)))
    }

    fn withdrawal_by_serial(
        &mut self,
        enterprise_code: &str,
        serial: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError> {
        let seq: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT front_seq_no FROM withdrawals WHERE enterprise_code = ?1 AND serial = ?2",
            )?
            .query_row(params![enterprise_code, serial], |r| r.get(0))
            .optional()?;
        match seq {
            Some(seq) => self.withdrawal(&seq),
            None => Ok(None),
        }
    }

    fn idempotency_keys(
        &mut self,
        enterprise: Option<&str>,
        f: &mut dyn FnMut(crate::keyfilter::KeyKind, &str, &str),
    ) -> Result<bool, StoreError> {
        use crate::keyfilter::KeyKind;
        for (kind, table, col) in [
            (KeyKind::Request, "requests", "serial"),
            (KeyKind::Order, "orders", "order_no"),
        ] {
            // ?1 NULL: every enterprise. Rows are stepped one at a time, never collected.
            let sql = format!(
                "SELECT enterprise_code, {col} FROM {table} \
                 WHERE ?1 IS NULL OR enterprise_code = ?1"
            );
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query([enterprise])?;
            while let Some(r) = rows.next()? {
                let e = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let k = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                f(kind, e, k);
            }
        }
        Ok(true)
    }

    fn unresolved_instructions(&mut self) -> Result<Vec<Instruction>, StoreError> {
        let sql =
            format!("SELECT {INSTRUCTION_COLS} FROM instructions WHERE state = 'P' ORDER BY rowid");
        let list = self
            .conn
            .prepare(&sql)?
            .query_map([], instruction_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(list)
    }

    fn statement_source(
        &mut self,
        master_acct: &str,
        date: u32,
    ) -> Result<Option<super::StatementSource>, StoreError> {
        // One read transaction: every figure of the statement from the same instant.
        let tx = self.conn.unchecked_transaction()?;
        let master = tx
            .query_row(
                "SELECT id, enterprise_code, acct_no, mirror, suspense, fee, in_transit \
                 FROM masters WHERE acct_no = ?1",
                [master_acct],
                |r| {
                    Ok(Master {
                        id: r.get(0)?,
                        enterprise_code: r.get(1)?,
                        acct_no: r.get(2)?,
                        mirror: r.get(3)?,
                        suspense: r.get(4)?,
                        fee: r.get(5)?,
                        in_transit: r.get(6)?,
                    })
                },
            )
            .optional()?;
        let Some(master) = master else {
            return Ok(None);
        };
        let subs = tx
            .prepare_cached(
                "SELECT id, sub_acct_no, member_name, balance FROM subs WHERE master_id = ?1 \
                 ORDER BY id",
            )?
            .query_map([master.id], |r| {
                Ok(super::SubBalance {
                    id: r.get(0)?,
                    sub_acct_no: r.get(1)?,
                    member_name: r.get(2)?,
                    balance: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let postings = tx
            .prepare_cached(
                "SELECT p.id, p.front_seq_no, p.debit, p.credit, p.amount, p.booking_type, \
                 p.booking_date, coalesce(r.receipt_no, '') FROM postings p \
                 LEFT JOIN receipts r ON r.front_seq_no = p.front_seq_no \
                 WHERE p.master_id = ?1 AND p.booking_date = ?2 ORDER BY p.id",
            )?
            .query_map(params![master.id, date], |r| {
                Ok(super::PostingRow {
                    id: r.get(0)?,
                    front_seq_no: r.get(1)?,
                    debit: r.get(2)?,
                    credit: r.get(3)?,
                    amount: r.get(4)?,
                    booking_type: r.get(5)?,
                    booking_date: r.get(6)?,
                    receipt_no: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let later = tx
            .prepare_cached(
                "SELECT debit, credit, sum(amount) FROM postings \
                 WHERE master_id = ?1 AND booking_date > ?2 GROUP BY debit, credit \
                 ORDER BY debit, credit",
            )?
            .query_map(params![master.id, date], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(Some(super::StatementSource {
            master,
            subs,
            postings,
            later,
        }))
    }

    fn instructions_of_date(&mut self, date: &str) -> Result<Vec<Instruction>, StoreError> {
        let sql = format!(
            "SELECT {INSTRUCTION_COLS} FROM instructions WHERE substr(front_seq_no, 1, 8) = ?1 \
             ORDER BY rowid"
        );
        let list = self
            .conn
            .prepare(&sql)?
            .query_map([date], instruction_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(list)
    }

    fn append(
        &mut self,
        enterprise_code: &str,
        front_seq_no: Option<&str>,
        w: &Writes,
    ) -> Result<(), StoreError> {
        match self.held.as_mut() {
            Some(held) => {
                held.push(Held::Append(
                    enterprise_code.to_string(),
                    front_seq_no.map(str::to_string),
                    Box::new(w.clone()),
                ));
                Ok(())
            }
            None => self.write_append(enterprise_code, front_seq_no, w),
        }
    }

    fn record_request(&mut self, r: &StoredRequest) -> Result<(), StoreError> {
        match self.held.as_mut() {
            Some(held) => {
                held.push(Held::Request(r.clone()));
                Ok(())
            }
            None => self.write_request(r),
        }
    }

    fn write_accounts(
        &mut self,
        masters: &[&Master],
        subs: &[&SubAccount],
    ) -> Result<(), StoreError> {
        let mut st = self.conn.prepare_cached(
            "UPDATE masters SET mirror = ?2, suspense = ?3, fee = ?4, in_transit = ?5 WHERE id = ?1",
        )?;
        for m in masters {
            st.execute(params![m.id, m.mirror, m.suspense, m.fee, m.in_transit])?;
        }
        let mut st = self.conn.prepare_cached(
            "INSERT INTO subs(id, master_id, sub_acct_no, member_code, member_name, global_type, \
             global_id, mobile, balance, frozen, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT(id) DO UPDATE SET balance = excluded.balance, frozen = excluded.frozen, \
             status = excluded.status",
        )?;
        for s in subs {
            st.execute(params![
                s.id,
                s.master_id,
                s.sub_acct_no,
                s.member_code,
                s.member_name,
                s.global_type,
                s.global_id,
                s.mobile,
                s.balance,
                s.frozen,
                s.status.code()
            ])?;
        }
        Ok(())
    }

    fn save_counters(&mut self, c: &Counters) -> Result<(), StoreError> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )?;
        for (k, v) in [
            ("front_seq", c.front_seq),
            ("sub_seq", c.sub_seq),
            ("receipt_seq", c.receipt_seq),
        ] {
            st.execute(params![k, i64::try_from(v).unwrap_or(i64::MAX)])?;
        }
        Ok(())
    }
}
