//! `bankfep admin …`: read the store of either kind, never write to it (issue 11, item 6;
//! docs/operations.md "Admin commands").
//!
//! Both stores answer the same SQL through one small read-only trait, [`ReadStore`]:
//! - the embedded store is opened with `SQLITE_OPEN_READ_ONLY` inside one deferred read
//!   transaction (a WAL reader: it never blocks the running gateway's writer, and it does not
//!   take the data folder's lock file, docs/operations.md "The data folder and its lock");
//! - PostgreSQL is read inside `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`.
//!
//! Either way every query of one command sees the same snapshot, so the 总分平衡 check
//! (docs/ledger.md "Invariants") compares figures of one instant. Amounts are integer fen
//! inside ([`crate::money::Fen`]), shown as yuan with thousands separators (`1,234.50`) in
//! tables, and as integer fen (`…_fen` keys) in JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::money::Fen;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// There is no store where the command was told to look (nothing was created).
    #[error("{0}")]
    NoStore(String),
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (connection or SQL).
    #[error("postgres: {}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A column was not of the type this version expects.
    #[error("unexpected stored data: {0}")]
    Shape(String),
    /// The sub-account or FrontSeqNo asked about is not in the store.
    #[error("{0}")]
    NotFound(String),
    /// Writing the output failed (closed pipe).
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// One value of a result row: stores keep only integers (fen, ids, dates) and text here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    /// An integer column (`INTEGER` / `BIGINT`).
    Int(i64),
    /// A text column.
    Text(String),
    /// SQL NULL.
    Null,
}

/// A query argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Bound as `BIGINT`.
    Int(i64),
    /// Bound as `TEXT`.
    Text(String),
}

/// One result row, read by column position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(pub Vec<Val>);

impl Row {
    /// Column `i` as an integer. Errors: [`AdminError::Shape`] if it is not one.
    pub fn int(&self, i: usize) -> Result<i64, AdminError> {
        match self.0.get(i) {
            Some(Val::Int(v)) => Ok(*v),
            other => Err(AdminError::Shape(format!(
                "column {i}: integer expected, found {other:?}"
            ))),
        }
    }
    /// Column `i` as text (NULL reads as empty). Errors: [`AdminError::Shape`] otherwise.
    pub fn text(&self, i: usize) -> Result<String, AdminError> {
        match self.0.get(i) {
            Some(Val::Text(v)) => Ok(v.clone()),
            Some(Val::Null) => Ok(String::new()),
            other => Err(AdminError::Shape(format!(
                "column {i}: text expected, found {other:?}"
            ))),
        }
    }
}

/// The read-only access both stores give: run one `SELECT` (placeholders `$1`, `$2`, … in
/// order, which SQLite and PostgreSQL both accept) inside the command's read snapshot.
pub trait ReadStore {
    /// All rows of `sql` with `args`. Long reads report progress on standard error.
    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, AdminError>;
}

/// Reports on standard error, every 10,000 rows once a read has taken more than a second.
struct Progress {
    started: Instant,
    rows: usize,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            rows: 0,
        }
    }
    fn tick(&mut self) {
        self.rows += 1;
        if self.rows.is_multiple_of(10_000) && self.started.elapsed().as_secs() >= 1 {
            eprintln!(
                "admin: {} rows read ({:.1} s)",
                self.rows,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The embedded store, opened read-only (`DIR/bankfep.sqlite3`).
pub struct SqliteRead {
    conn: rusqlite::Connection,
}

impl std::fmt::Debug for SqliteRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteRead")
    }
}

impl SqliteRead {
    /// Opens `dir/bankfep.sqlite3` read-only in one read transaction. Creates nothing: a
    /// missing folder or store file is [`AdminError::NoStore`] with a message saying so.
    pub fn open(dir: &Path) -> Result<SqliteRead, AdminError> {
        if !dir.is_dir() {
            return Err(AdminError::NoStore(format!(
                "data folder {} does not exist: give the --data-dir that `bankfep serve` uses, \
                 or --database-url for a PostgreSQL store",
                dir.display()
            )));
        }
        let file = dir.join("bankfep.sqlite3");
        if !file.is_file() {
            return Err(AdminError::NoStore(format!(
                "no store in {}: {} does not exist (has `bankfep serve` run with this \
                 --data-dir?)",
                dir.display(),
                file.display()
            )));
        }
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_millis(5_000))?;
        // A deferred transaction: its first SELECT fixes the snapshot every later one sees.
        conn.execute_batch("BEGIN")?;
        Ok(SqliteRead { conn })
    }
}

impl ReadStore for SqliteRead {
    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, AdminError> {
        let mut st = self.conn.prepare(sql)?;
        let params: Vec<Box<dyn rusqlite::ToSql>> = args
            .iter()
            .map(|a| -> Box<dyn rusqlite::ToSql> {
                match a {
                    Arg::Int(v) => Box::new(*v),
                    Arg::Text(v) => Box::new(v.clone()),
                }
            })
            .collect();
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        let mut progress = Progress::new();
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                use rusqlite::types::ValueRef;
                vals.push(match r.get_ref(i)? {
                    ValueRef::Integer(v) => Val::Int(v),
                    ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Null => Val::Null,
                    other => {
                        return Err(AdminError::Shape(format!(
                            "column {i}: {:?} value",
                            other.data_type()
                        )))
                    }
                });
            }
            out.push(Row(vals));
            progress.tick();
        }
        Ok(out)
    }
}

/// A PostgreSQL store read inside one `REPEATABLE READ READ ONLY` transaction, on a
/// runtime of its own (call it outside any tokio runtime).
pub struct PgRead {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl std::fmt::Debug for PgRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgRead")
    }
}

impl PgRead {
    /// Connects to `url` and opens the read-only transaction. Applies no migration: a
    /// database without the bankfep tables is [`AdminError::NoStore`].
    pub fn connect(url: &str) -> Result<PgRead, AdminError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET LOCAL statement_timeout = '60s'",
                )
                .await?;
            Ok::<_, AdminError>(client)
        })?;
        let mut me = PgRead { rt, client };
        let found = me.rows("SELECT CAST(to_regclass('masters') AS TEXT)", &[])?;
        if found.first().map(|r| r.0.first() == Some(&Val::Null)) != Some(false) {
            return Err(AdminError::NoStore(
                "the database holds no bankfep store (no table `masters` on its search_path): \
                 check --database-url"
                    .into(),
            ));
        }
        Ok(me)
    }
}

impl ReadStore for PgRead {
    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, AdminError> {
        use tokio_postgres::types::{ToSql, Type};
        let client = &self.client;
        self.rt.block_on(async {
            let params: Vec<Box<dyn ToSql + Sync + Send>> = args
                .iter()
                .map(|a| -> Box<dyn ToSql + Sync + Send> {
                    match a {
                        Arg::Int(v) => Box::new(*v),
                        Arg::Text(v) => Box::new(v.clone()),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client.query(sql, &refs).await?;
            let mut out = Vec::with_capacity(rows.len());
            let mut progress = Progress::new();
            for r in &rows {
                let mut vals = Vec::with_capacity(r.len());
                for (i, c) in r.columns().iter().enumerate() {
                    let t = c.type_();
                    let v = if *t == Type::INT8 {
                        r.try_get::<_, Option<i64>>(i)?.map(Val::Int)
                    } else if *t == Type::INT4 {
                        r.try_get::<_, Option<i32>>(i)?
                            .map(|v| Val::Int(i64::from(v)))
                    } else if *t == Type::TEXT || *t == Type::VARCHAR {
                        r.try_get::<_, Option<String>>(i)?.map(Val::Text)
                    } else {
                        return Err(AdminError::Shape(format!("column {i}: type {t}")));
                    };
                    vals.push(v.unwrap_or(Val::Null));
                }
                out.push(Row(vals));
                progress.tick();
            }
            Ok(out)
        })
    }
}

/// Opens the store the command names: PostgreSQL when `database_url` is given, else the
/// embedded store in `data_dir`. Errors as [`SqliteRead::open`] and [`PgRead::connect`].
pub fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Box<dyn ReadStore>, AdminError> {
    Ok(match database_url {
        Some(url) => Box::new(PgRead::connect(url)?),
        None => Box::new(SqliteRead::open(data_dir)?),
    })
}

/// A sub-account with its balances (fen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubRow {
    /// Storage id (not shown).
    #[serde(skip)]
    pub id: i64,
    /// Enterprise (tenant) code of its master account.
    pub enterprise_code: String,
    /// Its master account number.
    pub master_acct: String,
    /// `SubAcctNo` (16 digits).
    pub sub_acct_no: String,
    /// The platform's member code.
    pub member_code: String,
    /// The member's name.
    pub member_name: String,
    /// Total balance, fen.
    pub balance_fen: Fen,
    /// Frozen part, fen.
    pub frozen_fen: Fen,
    /// Available = balance − frozen, fen.
    pub available_fen: Fen,
    /// `open` or `closed`.
    pub status: String,
}

const SUB_SELECT: &str = "SELECT s.id, m.enterprise_code, m.acct_no, s.sub_acct_no, \
     s.member_code, s.member_name, s.balance, s.frozen, s.status \
     FROM subs s JOIN masters m ON m.id = s.master_id";

fn sub_from(r: &Row) -> Result<SubRow, AdminError> {
    let balance = r.int(6)?;
    let frozen = r.int(7)?;
    Ok(SubRow {
        id: r.int(0)?,
        enterprise_code: r.text(1)?,
        master_acct: r.text(2)?,
        sub_acct_no: r.text(3)?,
        member_code: r.text(4)?,
        member_name: r.text(5)?,
        balance_fen: balance,
        frozen_fen: frozen,
        available_fen: balance - frozen,
        status: if r.int(8)? == 2 { "closed" } else { "open" }.into(),
    })
}

/// Every sub-account of enterprise `code`, by sub-account number.
pub fn subs(db: &mut dyn ReadStore, code: &str) -> Result<Vec<SubRow>, AdminError> {
    db.rows(
        &format!("{SUB_SELECT} WHERE m.enterprise_code = $1 ORDER BY s.sub_acct_no"),
        &[Arg::Text(code.into())],
    )?
    .iter()
    .map(sub_from)
    .collect()
}

/// One line of a sub-account's statement (an `entries` row, as 6072 reports it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryRow {
    /// The posting's `FrontSeqNo`.
    pub front_seq_no: String,
    /// Accounting date, `yyyyMMdd`.
    pub acct_date: i64,
    /// Time, `HHmmss`.
    pub time: String,
    /// `BookingType` code (docs/ledger.md "Postings").
    pub booking_type: String,
    /// `D` (debit, money out) or `C` (credit, money in).
    pub dc: String,
    /// Amount, fen.
    pub amount_fen: Fen,
    /// Balance after it, fen.
    pub balance_after_fen: Fen,
    /// The other party's account.
    pub peer_acct: String,
    /// Remark.
    pub remark: String,
}

/// A sub-account and its latest postings, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubView {
    /// The sub-account.
    #[serde(flatten)]
    pub sub: SubRow,
    /// Its last `limit` statement lines, newest first.
    pub postings: Vec<EntryRow>,
}

/// Sub-account `no` with its latest `limit` postings. Errors: [`AdminError::NotFound`].
pub fn sub(db: &mut dyn ReadStore, no: &str, limit: u32) -> Result<SubView, AdminError> {
    let rows = db.rows(
        &format!("{SUB_SELECT} WHERE s.sub_acct_no = $1"),
        &[Arg::Text(no.into())],
    )?;
    let sub = match rows.first() {
        Some(r) => sub_from(r)?,
        None => return Err(AdminError::NotFound(format!("no sub-account {no}"))),
    };
    let postings = db
        .rows(
            "SELECT front_seq_no, acct_date, time, booking_type, dc, amount, balance_after, \
             peer_acct, remark FROM entries WHERE sub_id = $1 ORDER BY id DESC LIMIT $2",
            &[Arg::Int(sub.id), Arg::Int(i64::from(limit))],
        )?
        .iter()
        .map(|r| {
            Ok(EntryRow {
                front_seq_no: r.text(0)?,
                acct_date: r.int(1)?,
                time: r.text(2)?,
                booking_type: r.text(3)?,
                dc: r.text(4)?,
                amount_fen: r.int(5)?,
                balance_after_fen: r.int(6)?,
                peer_acct: r.text(7)?,
                remark: r.text(8)?,
            })
        })
        .collect::<Result<_, AdminError>>()?;
    Ok(SubView { sub, postings })
}

/// A master account's mirror and liabilities, and the 总分平衡 check over them
/// (docs/ledger.md "Invariants": mirror = Σ sub-accounts + suspense + fee + in transit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MasterRow {
    /// Enterprise (tenant) code.
    pub enterprise_code: String,
    /// Master account number.
    pub acct_no: String,
    /// Master mirror, fen.
    pub mirror_fen: Fen,
    /// Number of sub-accounts.
    pub sub_count: i64,
    /// Σ sub-account balances, fen.
    pub subs_fen: Fen,
    /// Suspense, fen.
    pub suspense_fen: Fen,
    /// Fee account, fen.
    pub fee_fen: Fen,
    /// In transit, fen.
    pub in_transit_fen: Fen,
    /// mirror − (Σ sub-accounts + suspense + fee + in transit), fen: 0 when balanced.
    pub difference_fen: Fen,
    /// `difference_fen == 0`.
    pub balanced: bool,
}

/// Every master account with its 总分平衡 check, by enterprise code and account.
pub fn masters(db: &mut dyn ReadStore) -> Result<Vec<MasterRow>, AdminError> {
    db.rows(
        "SELECT m.enterprise_code, m.acct_no, m.mirror, \
         (SELECT COUNT(*) FROM subs s WHERE s.master_id = m.id), \
         CAST((SELECT COALESCE(SUM(s.balance), 0) FROM subs s WHERE s.master_id = m.id) AS BIGINT), \
         m.suspense, m.fee, m.in_transit FROM masters m ORDER BY m.enterprise_code, m.acct_no",
        &[],
    )?
    .iter()
    .map(|r| {
        let (mirror, subs, suspense, fee, transit) =
            (r.int(2)?, r.int(4)?, r.int(5)?, r.int(6)?, r.int(7)?);
        let difference = mirror - subs - suspense - fee - transit;
        Ok(MasterRow {
            enterprise_code: r.text(0)?,
            acct_no: r.text(1)?,
            mirror_fen: mirror,
            sub_count: r.int(3)?,
            subs_fen: subs,
            suspense_fen: suspense,
            fee_fen: fee,
            in_transit_fen: transit,
            difference_fen: difference,
            balanced: difference == 0,
        })
    })
    .collect()
}

/// An inbound credit waiting in suspense (`in_acct_type` 03, unallocated > 0); the platform
/// allocates it with 6139 (docs/ledger.md, step 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuspenseRow {
    /// The credit's `FrontSeqNo`.
    pub front_seq_no: String,
    /// Enterprise (tenant) code.
    pub enterprise_code: String,
    /// Master account credited.
    pub master_acct: String,
    /// Accounting date, `yyyyMMdd`.
    pub acct_date: i64,
    /// Amount credited, fen.
    pub amount_fen: Fen,
    /// Not yet allocated, fen.
    pub unallocated_fen: Fen,
    /// Payer's account.
    pub payer_acct: String,
    /// Payer's name.
    pub payer_name: String,
    /// The payee the notice named (empty: the master account).
    pub payee: String,
    /// The notice's memo.
    pub remark: String,
}

/// Every suspense item, oldest first.
pub fn suspense(db: &mut dyn ReadStore) -> Result<Vec<SuspenseRow>, AdminError> {
    db.rows(
        "SELECT c.front_seq_no, m.enterprise_code, m.acct_no, c.acct_date, c.amount, \
         c.unallocated, c.payer_acct, c.payer_name, c.sub_acct_no, c.remark \
         FROM credits c JOIN masters m ON m.id = c.master_id \
         WHERE c.in_acct_type = '03' AND c.unallocated > 0 \
         ORDER BY c.acct_date, c.front_seq_no",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(SuspenseRow {
            front_seq_no: r.text(0)?,
            enterprise_code: r.text(1)?,
            master_acct: r.text(2)?,
            acct_date: r.int(3)?,
            amount_fen: r.int(4)?,
            unallocated_fen: r.int(5)?,
            payer_acct: r.text(6)?,
            payer_name: r.text(7)?,
            payee: r.text(8)?,
            remark: r.text(9)?,
        })
    })
    .collect()
}

/// A rail instruction (docs/protocol.md §3) as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstructionRow {
    /// Instruction id (the rail's idempotency key).
    pub id: String,
    /// `verify` (small-amount verification) or `chunk` (withdrawal chunk).
    pub kind: String,
    /// Enterprise (tenant) code.
    pub enterprise_code: String,
    /// `FrontSeqNo` of the withdrawal or binding attempt.
    pub front_seq_no: String,
    /// Chunk number within the withdrawal (1-based).
    pub chunk_no: i64,
    /// `7001` (same bank) or `7002` (other bank).
    pub trade_code: String,
    /// Payee account.
    pub payee_acct: String,
    /// Payee name.
    pub payee_name: String,
    /// Amount, fen.
    pub amount_fen: Fen,
    /// `P` unresolved, `S` settled, `F` failed.
    pub state: String,
    /// Business date it was taken up, `yyyyMMdd`: the date prefix of its `FrontSeqNo` (the
    /// store keeps no timestamp per instruction).
    pub since: i64,
    /// Whole days from `since` to the `as_of` date.
    pub age_days: i64,
}

/// Every unresolved instruction (state `P`), oldest first, aged against `as_of`
/// (`yyyyMMdd`, usually today's local date).
pub fn instructions(
    db: &mut dyn ReadStore,
    as_of: chrono::NaiveDate,
) -> Result<Vec<InstructionRow>, AdminError> {
    db.rows(
        "SELECT i.id, i.kind, m.enterprise_code, i.front_seq_no, i.chunk_no, i.trade_code, \
         i.payee_acct, i.payee_name, i.amount, i.state FROM instructions i \
         JOIN masters m ON m.id = i.master_id WHERE i.state = 'P' \
         ORDER BY i.front_seq_no, i.chunk_no, i.id",
        &[],
    )?
    .iter()
    .map(|r| {
        let seq = r.text(3)?;
        let since = seq_date(&seq);
        Ok(InstructionRow {
            id: r.text(0)?,
            kind: if r.text(1)? == "V" { "verify" } else { "chunk" }.into(),
            enterprise_code: r.text(2)?,
            chunk_no: r.int(4)?,
            trade_code: r.text(5)?,
            payee_acct: r.text(6)?,
            payee_name: r.text(7)?,
            amount_fen: r.int(8)?,
            state: r.text(9)?,
            since: since.map(date_num).unwrap_or(0),
            age_days: since.map(|d| (as_of - d).num_days()).unwrap_or(0),
            front_seq_no: seq,
        })
    })
    .collect()
}

/// The business date of a `FrontSeqNo` (`yyyyMMdd` + 8 digits), if it has one.
pub fn seq_date(seq: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(seq.get(..8)?, "%Y%m%d").ok()
}

fn date_num(d: chrono::NaiveDate) -> i64 {
    d.format("%Y%m%d").to_string().parse().unwrap_or_default()
}

/// One posting of a `FrontSeqNo` (debit → credit, docs/ledger.md "Postings").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegRow {
    /// Master account it belongs to.
    pub master_acct: String,
    /// Debited side: `mirror`, `suspense`, `fee`, `in_transit` or a sub-account number.
    pub debit: String,
    /// Credited side, as `debit`.
    pub credit: String,
    /// Amount, fen.
    pub amount_fen: Fen,
    /// `BookingType` code.
    pub booking_type: String,
}

/// The e-receipt of a `FrontSeqNo` (docs/protocol.md 6142).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceiptView {
    /// Receipt number.
    pub receipt_no: String,
    /// Print verification code (打印校验码).
    pub check_code: String,
    /// Booking date as printed.
    pub booking_date: String,
    /// Payer account.
    pub payer_acct: String,
    /// Payer name.
    pub payer_name: String,
    /// Payee account.
    pub payee_acct: String,
    /// Payee name.
    pub payee_name: String,
    /// Amount, fen.
    pub amount_fen: Fen,
    /// Summary line.
    pub summary: String,
}

/// Everything stored under one `FrontSeqNo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeqView {
    /// The `FrontSeqNo`.
    pub front_seq_no: String,
    /// Its postings, in booking order.
    pub postings: Vec<LegRow>,
    /// Its e-receipt, if it has one.
    pub receipt: Option<ReceiptView>,
    /// Its rail instructions (withdrawal chunks, verification), any state.
    pub instructions: Vec<InstructionRow>,
}

/// The postings, receipt and instructions of `seq`. Errors: [`AdminError::NotFound`] when
/// the store holds nothing under it.
pub fn seq(
    db: &mut dyn ReadStore,
    seq: &str,
    as_of: chrono::NaiveDate,
) -> Result<SeqView, AdminError> {
    let arg = [Arg::Text(seq.into())];
    let side = |s: String, subs: &mut dyn ReadStore| -> Result<String, AdminError> {
        match s.strip_prefix("sub:").and_then(|id| id.parse::<i64>().ok()) {
            Some(id) => Ok(subs
                .rows(
                    "SELECT sub_acct_no FROM subs WHERE id = $1",
                    &[Arg::Int(id)],
                )?
                .first()
                .map(|r| r.text(0))
                .transpose()?
                .unwrap_or(s)),
            None => Ok(s),
        }
    };
    let legs = db.rows(
        "SELECT m.acct_no, p.debit, p.credit, p.amount, p.booking_type FROM postings p \
         JOIN masters m ON m.id = p.master_id WHERE p.front_seq_no = $1 ORDER BY p.id",
        &arg,
    )?;
    let mut postings = Vec::with_capacity(legs.len());
    for r in &legs {
        postings.push(LegRow {
            master_acct: r.text(0)?,
            debit: side(r.text(1)?, db)?,
            credit: side(r.text(2)?, db)?,
            amount_fen: r.int(3)?,
            booking_type: r.text(4)?,
        });
    }
    let receipt = db
        .rows(
            "SELECT receipt_no, check_code, booking_date, payer_acct, payer_name, payee_acct, \
             payee_name, amount, summary FROM receipts WHERE front_seq_no = $1",
            &arg,
        )?
        .first()
        .map(|r| {
            Ok::<_, AdminError>(ReceiptView {
                receipt_no: r.text(0)?,
                check_code: r.text(1)?,
                booking_date: r.text(2)?,
                payer_acct: r.text(3)?,
                payer_name: r.text(4)?,
                payee_acct: r.text(5)?,
                payee_name: r.text(6)?,
                amount_fen: r.int(7)?,
                summary: r.text(8)?,
            })
        })
        .transpose()?;
    let since = seq_date(seq);
    let instructions = db
        .rows(
            "SELECT i.id, i.kind, m.enterprise_code, i.chunk_no, i.trade_code, i.payee_acct, \
             i.payee_name, i.amount, i.state FROM instructions i \
             JOIN masters m ON m.id = i.master_id WHERE i.front_seq_no = $1 \
             ORDER BY i.chunk_no, i.id",
            &arg,
        )?
        .iter()
        .map(|r| {
            Ok(InstructionRow {
                id: r.text(0)?,
                kind: if r.text(1)? == "V" { "verify" } else { "chunk" }.into(),
                enterprise_code: r.text(2)?,
                front_seq_no: seq.into(),
                chunk_no: r.int(3)?,
                trade_code: r.text(4)?,
                payee_acct: r.text(5)?,
                payee_name: r.text(6)?,
                amount_fen: r.int(7)?,
                state: r.text(8)?,
                since: since.map(date_num).unwrap_or(0),
                age_days: since.map(|d| (as_of - d).num_days()).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, AdminError>>()?;
    if postings.is_empty() && receipt.is_none() && instructions.is_empty() {
        return Err(AdminError::NotFound(format!(
            "nothing is stored under FrontSeqNo {seq}"
        )));
    }
    Ok(SeqView {
        front_seq_no: seq.into(),
        postings,
        receipt,
        instructions,
    })
}

/// What `bankfep admin` was asked to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `admin subs --enterprise CODE`.
    Subs {
        /// Enterprise (tenant) code.
        enterprise: String,
    },
    /// `admin sub SUBACCTNO [--limit N]`.
    Sub {
        /// `SubAcctNo`.
        sub_acct_no: String,
        /// How many recent postings.
        limit: u32,
    },
    /// `admin masters`.
    Masters,
    /// `admin suspense`.
    Suspense,
    /// `admin instructions`.
    Instructions,
    /// `admin seq FRONTSEQNO`.
    Seq {
        /// The `FrontSeqNo`.
        front_seq_no: String,
    },
}

/// Where the store is and how to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Embedded store folder (used when `database_url` is `None`).
    pub data_dir: PathBuf,
    /// PostgreSQL store.
    pub database_url: Option<String>,
    /// JSON instead of a table.
    pub json: bool,
    /// Date instruction ages are counted to (today's local date by default).
    pub as_of: chrono::NaiveDate,
}

/// Runs `query` against the store `opts` names and writes the answer to `out`: an aligned
/// table, or one JSON document (amounts as integer fen) with `opts.json`. Never writes to
/// the store. Errors: [`AdminError`] (no store, not found, database failures).
pub fn run(opts: &Options, query: &Query, out: &mut dyn Write) -> Result<(), AdminError> {
    let mut db = open(&opts.data_dir, opts.database_url.as_deref())?;
    let db = db.as_mut();
    let text = match query {
        Query::Subs { enterprise } => render(opts.json, &subs(db, enterprise)?, |v| {
            subs_table(enterprise, v)
        }),
        Query::Sub { sub_acct_no, limit } => {
            render(opts.json, &sub(db, sub_acct_no, *limit)?, sub_text)
        }
        Query::Masters => render(opts.json, &masters(db)?, |v| masters_text(v)),
        Query::Suspense => render(opts.json, &suspense(db)?, |v| suspense_table(v)),
        Query::Instructions => render(opts.json, &instructions(db, opts.as_of)?, |v| {
            instructions_table(v)
        }),
        Query::Seq { front_seq_no } => {
            render(opts.json, &seq(db, front_seq_no, opts.as_of)?, |v| {
                seq_text(v)
            })
        }
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `v` as one JSON document when `as_json`, else as `text` renders it for people.
fn render<T: Serialize>(as_json: bool, v: &T, text: impl FnOnce(&T) -> String) -> String {
    if as_json {
        json(v)
    } else {
        text(v)
    }
}

fn json<T: Serialize>(v: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// Fen as yuan for people: `123450` → `1,234.50`, `-5` → `-0.05`.
pub fn yuan(fen: Fen) -> String {
    let abs = fen.unsigned_abs();
    let int = (abs / 100).to_string();
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "{}{grouped}.{:02}",
        if fen < 0 { "-" } else { "" },
        abs % 100
    )
}

/// Terminal columns a string takes: CJK and full-width characters count two.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

/// An aligned text table: columns whose header is in `right` are right-aligned (amounts).
fn table(headers: &[&str], right: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| display_width(h)).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(display_width(c));
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = " ".repeat(w.saturating_sub(display_width(c)));
            if right.contains(&headers[i]) {
                l.push_str(&pad);
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&pad);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        line(r);
    }
    out
}

fn subs_table(enterprise: &str, rows: &[SubRow]) -> String {
    if rows.is_empty() {
        return format!("no sub-accounts for enterprise {enterprise}\n");
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.sub_acct_no.clone(),
                s.member_code.clone(),
                s.member_name.clone(),
                s.master_acct.clone(),
                yuan(s.balance_fen),
                yuan(s.frozen_fen),
                yuan(s.available_fen),
                s.status.clone(),
            ]
        })
        .collect();
    let total: Fen = rows.iter().map(|s| s.balance_fen).sum();
    let mut t = table(
        &[
            "SUB-ACCOUNT",
            "MEMBER",
            "NAME",
            "MASTER ACCOUNT",
            "BALANCE",
            "FROZEN",
            "AVAILABLE",
            "STATUS",
        ],
        &["BALANCE", "FROZEN", "AVAILABLE"],
        &body,
    );
    t.push_str(&format!(
        "{} sub-accounts, total balance {}\n",
        rows.len(),
        yuan(total)
    ));
    t
}

fn entries_table(rows: &[EntryRow]) -> String {
    if rows.is_empty() {
        return "no postings\n".into();
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|e| {
            vec![
                format!("{} {}", e.acct_date, e.time),
                e.front_seq_no.clone(),
                e.booking_type.clone(),
                e.dc.clone(),
                yuan(e.amount_fen),
                yuan(e.balance_after_fen),
                e.peer_acct.clone(),
                e.remark.clone(),
            ]
        })
        .collect();
    table(
        &[
            "DATE TIME",
            "FRONTSEQNO",
            "TYPE",
            "D/C",
            "AMOUNT",
            "BALANCE AFTER",
            "PEER",
            "REMARK",
        ],
        &["AMOUNT", "BALANCE AFTER"],
        &body,
    )
}

fn sub_text(v: &SubView) -> String {
    let s = &v.sub;
    let mut t = format!(
        "sub-account  {}\nmember       {} {}\nenterprise   {} (master account {})\n\
         status       {}\nbalance      {}  frozen {}  available {}\n\nlatest postings:\n",
        s.sub_acct_no,
        s.member_code,
        s.member_name,
        s.enterprise_code,
        s.master_acct,
        s.status,
        yuan(s.balance_fen),
        yuan(s.frozen_fen),
        yuan(s.available_fen)
    );
    t.push_str(&entries_table(&v.postings));
    t
}

fn masters_text(rows: &[MasterRow]) -> String {
    if rows.is_empty() {
        return "no master accounts\n".into();
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                m.enterprise_code.clone(),
                m.acct_no.clone(),
                yuan(m.mirror_fen),
                m.sub_count.to_string(),
                yuan(m.subs_fen),
                yuan(m.suspense_fen),
                yuan(m.fee_fen),
                yuan(m.in_transit_fen),
                if m.balanced { "balanced" } else { "BROKEN" }.into(),
            ]
        })
        .collect();
    let mut t = table(
        &[
            "ENTERPRISE",
            "MASTER ACCOUNT",
            "MIRROR",
            "SUBS",
            "SUB-ACCOUNTS",
            "SUSPENSE",
            "FEE",
            "IN TRANSIT",
            "总分平衡",
        ],
        &[
            "MIRROR",
            "SUBS",
            "SUB-ACCOUNTS",
            "SUSPENSE",
            "FEE",
            "IN TRANSIT",
        ],
        &body,
    );
    t.push('\n');
    for m in rows {
        t.push_str(&format!(
            "{}: mirror {} {} sub-accounts {} + suspense {} + fee {} + in transit {}{}\n",
            m.acct_no,
            yuan(m.mirror_fen),
            if m.balanced { "=" } else { "≠" },
            yuan(m.subs_fen),
            yuan(m.suspense_fen),
            yuan(m.fee_fen),
            yuan(m.in_transit_fen),
            if m.balanced {
                ": balanced".to_string()
            } else {
                format!(": BROKEN, difference {}", yuan(m.difference_fen))
            }
        ));
    }
    t
}

fn suspense_table(rows: &[SuspenseRow]) -> String {
    if rows.is_empty() {
        return "no suspense items\n".into();
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            vec![
                c.front_seq_no.clone(),
                c.enterprise_code.clone(),
                c.master_acct.clone(),
                c.acct_date.to_string(),
                yuan(c.amount_fen),
                yuan(c.unallocated_fen),
                c.payer_acct.clone(),
                c.payer_name.clone(),
                c.remark.clone(),
            ]
        })
        .collect();
    let total: Fen = rows.iter().map(|c| c.unallocated_fen).sum();
    let mut t = table(
        &[
            "FRONTSEQNO",
            "ENTERPRISE",
            "MASTER ACCOUNT",
            "DATE",
            "AMOUNT",
            "UNALLOCATED",
            "PAYER ACCOUNT",
            "PAYER NAME",
            "MEMO",
        ],
        &["AMOUNT", "UNALLOCATED"],
        &body,
    );
    t.push_str(&format!(
        "{} suspense items, unallocated {}\n",
        rows.len(),
        yuan(total)
    ));
    t
}

fn instruction_cells(i: &InstructionRow) -> Vec<String> {
    vec![
        i.id.clone(),
        i.kind.clone(),
        i.enterprise_code.clone(),
        i.front_seq_no.clone(),
        i.chunk_no.to_string(),
        i.trade_code.clone(),
        i.payee_acct.clone(),
        i.payee_name.clone(),
        yuan(i.amount_fen),
        i.state.clone(),
        format!("{}d", i.age_days),
    ]
}

const INSTRUCTION_HEADERS: [&str; 11] = [
    "INSTRUCTION",
    "KIND",
    "ENTERPRISE",
    "FRONTSEQNO",
    "CHUNK",
    "TRADE",
    "PAYEE ACCOUNT",
    "PAYEE NAME",
    "AMOUNT",
    "STATE",
    "AGE",
];

fn instructions_table(rows: &[InstructionRow]) -> String {
    if rows.is_empty() {
        return "no unresolved instructions\n".into();
    }
    let body: Vec<Vec<String>> = rows.iter().map(instruction_cells).collect();
    let mut t = table(&INSTRUCTION_HEADERS, &["CHUNK", "AMOUNT", "AGE"], &body);
    t.push_str(&format!(
        "{} unresolved instructions (age in days since their FrontSeqNo's date)\n",
        rows.len()
    ));
    t
}

fn seq_text(v: &SeqView) -> String {
    let mut t = format!(
        "FrontSeqNo {}\n\npostings (debit → credit):\n",
        v.front_seq_no
    );
    if v.postings.is_empty() {
        t.push_str("none\n");
    } else {
        let body: Vec<Vec<String>> = v
            .postings
            .iter()
            .map(|p| {
                vec![
                    p.master_acct.clone(),
                    p.debit.clone(),
                    p.credit.clone(),
                    yuan(p.amount_fen),
                    p.booking_type.clone(),
                ]
            })
            .collect();
        t.push_str(&table(
            &["MASTER ACCOUNT", "DEBIT", "CREDIT", "AMOUNT", "TYPE"],
            &["AMOUNT"],
            &body,
        ));
    }
    t.push_str("\nreceipt:\n");
    match &v.receipt {
        None => t.push_str("none\n"),
        Some(r) => t.push_str(&format!(
            "  number        {}\n  verification  {}\n  booking date  {}\n  payer         {} {}\n\
             \x20 payee         {} {}\n  amount        {}\n  summary       {}\n",
            r.receipt_no,
            r.check_code,
            r.booking_date,
            r.payer_acct,
            r.payer_name,
            r.payee_acct,
            r.payee_name,
            yuan(r.amount_fen),
            r.summary
        )),
    }
    if !v.instructions.is_empty() {
        t.push_str("\nrail instructions:\n");
        let body: Vec<Vec<String>> = v.instructions.iter().map(instruction_cells).collect();
        t.push_str(&table(
            &INSTRUCTION_HEADERS,
            &["CHUNK", "AMOUNT", "AGE"],
            &body,
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_groups_thousands() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(123_450), "1,234.50");
        assert_eq!(yuan(99_999_999_999_999), "999,999,999,999.99");
        assert_eq!(yuan(100_000), "1,000.00");
        assert_eq!(yuan(99_999), "999.99");
    }

    #[test]
    fn width_counts_cjk_as_two() {
        assert_eq!(display_width("张三"), 4);
        assert_eq!(display_width("ab"), 2);
        let t = table(
            &["NAME", "AMT"],
            &["AMT"],
            &[vec!["张三".into(), "1.00".into()]],
        );
        assert_eq!(t, "NAME   AMT\n张三  1.00\n");
    }

    #[test]
    fn seq_date_reads_the_prefix() {
        assert_eq!(
            seq_date("2026112300000001"),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
        );
        assert_eq!(seq_date("x"), None);
    }

    #[test]
    fn missing_folder_is_refused_and_not_created() {
        let dir =
            std::env::temp_dir().join(format!("bankfep-admin-missing-{}", std::process::id()));
        let err = SqliteRead::open(&dir).expect_err("refused");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!dir.exists());
    }
}
