//! `bankfep copy-store --from DATA_DIR --to postgres://…` (issue 8): moves an embedded store
//! into an empty PostgreSQL database.
//!
//! The source folder is locked for the whole copy (no gateway may run on it). The target
//! is migrated and must hold no master account yet. Every table is copied with its ids, in
//! chunks of [`CHUNK_ROWS`] rows, each chunk one set-based `INSERT … SELECT FROM unnest(…)`,
//! all in one transaction: either the whole store arrives or nothing does. Afterwards the
//! row count of every table is compared on both sides, and both ledgers are loaded and
//! checked against the invariants of docs/ledger.md (总分平衡) and compared account by
//! account. Progress goes to standard error.

use std::path::Path;

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreError};
use crate::ledger::{invariants, LedgerState};

/// Rows per `INSERT` statement.
pub const CHUNK_ROWS: usize = 5_000;

/// How a column travels: SQLite storage class → PostgreSQL array type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// INTEGER → `bigint`.
    Int,
    /// TEXT → `text`.
    Text,
    /// BLOB → `bytea`.
    Blob,
    /// INTEGER 0/1 → `boolean`.
    Bool,
}

/// One table: its name on both sides, the SQLite select list, and the columns with kinds.
struct Table {
    name: &'static str,
    /// Expressions selected from SQLite, in the order of `columns`.
    select: &'static str,
    /// PostgreSQL columns and kinds.
    columns: &'static [(&'static str, Kind)],
    /// ORDER BY of the SQLite select (booking order where ids are not stored).
    order: &'static str,
}

use Kind::{Blob, Bool, Int, Text};

const TABLES: &[Table] = &[
    Table {
        name: "masters",
        select: "id, enterprise_code, acct_no, mirror, suspense, fee, in_transit",
        columns: &[
            ("id", Int),
            ("enterprise_code", Text),
            ("acct_no", Text),
            ("mirror", Int),
            ("suspense", Int),
            ("fee", Int),
            ("in_transit", Int),
        ],
        order: "id",
    },
    Table {
        name: "subs",
        select: "id, master_id, sub_acct_no, member_code, member_name, global_type, global_id, \
                 mobile, balance, frozen, status",
        columns: &[
            ("id", Int),
            ("master_id", Int),
            ("sub_acct_no", Text),
            ("member_code", Text),
            ("member_name", Text),
            ("global_type", Text),
            ("global_id", Text),
            ("mobile", Text),
            ("balance", Int),
            ("frozen", Int),
            ("status", Int),
        ],
        order: "id",
    },
    Table {
        name: "bindings",
        select: "sub_id, acct_no, acct_name, same_bank, branch_name, bank_code, verified, \
                 auth_amount, attempts_left, verify_seq",
        columns: &[
            ("sub_id", Int),
            ("acct_no", Text),
            ("acct_name", Text),
            ("same_bank", Bool),
            ("branch_name", Text),
            ("bank_code", Text),
            ("verified", Bool),
            ("auth_amount", Int),
            ("attempts_left", Int),
            ("verify_seq", Text),
        ],
        order: "sub_id",
    },
    Table {
        name: "postings",
        select: "id, front_seq_no, master_id, debit, credit, amount, booking_type, booking_date",
        columns: &[
            ("id", Int),
            ("front_seq_no", Text),
            ("master_id", Int),
            ("debit", Text),
            ("credit", Text),
            ("amount", Int),
            ("booking_type", Text),
            ("booking_date", Int),
        ],
        order: "id",
    },
    Table {
        name: "entries",
        select: "id, sub_id, front_seq_no, acct_date, time, booking_type, dc, amount, \
                 balance_after, peer_acct, remark",
        columns: &[
            ("id", Int),
            ("sub_id", Int),
            ("front_seq_no", Text),
            ("acct_date", Int),
            ("time", Text),
            ("booking_type", Text),
            ("dc", Text),
            ("amount", Int),
            ("balance_after", Int),
            ("peer_acct", Text),
            ("remark", Text),
        ],
        order: "id",
    },
    Table {
        name: "credits",
        select: "rowid, front_seq_no, master_id, in_acct_type, sub_acct_no, amount, unallocated, \
                 payer_acct, payer_name, acct_date, remark",
        columns: &[
            ("seq", Int),
            ("front_seq_no", Text),
            ("master_id", Int),
            ("in_acct_type", Text),
            ("sub_acct_no", Text),
            ("amount", Int),
            ("unallocated", Int),
            ("payer_acct", Text),
            ("payer_name", Text),
            ("acct_date", Int),
            ("remark", Text),
        ],
        order: "rowid",
    },
    Table {
        name: "receipts",
        select: "front_seq_no, master_id, receipt_no, check_code, booking_date, payer_acct, \
                 payer_name, payee_acct, payee_name, amount, summary",
        columns: &[
            ("front_seq_no", Text),
            ("master_id", Int),
            ("receipt_no", Text),
            ("check_code", Text),
            ("booking_date", Text),
            ("payer_acct", Text),
            ("payer_name", Text),
            ("payee_acct", Text),
            ("payee_name", Text),
            ("amount", Int),
            ("summary", Text),
        ],
        order: "front_seq_no",
    },
    Table {
        name: "requests",
        select: "enterprise_code, serial, tx_code, fingerprint, return_code, return_msg, body",
        columns: &[
            ("enterprise_code", Text),
            ("serial", Text),
            ("tx_code", Text),
            ("fingerprint", Blob),
            ("return_code", Text),
            ("return_msg", Text),
            ("body", Blob),
        ],
        order: "enterprise_code, serial",
    },
    Table {
        name: "orders",
        select: "enterprise_code, order_no, front_seq_no",
        columns: &[
            ("enterprise_code", Text),
            ("order_no", Text),
            ("front_seq_no", Text),
        ],
        order: "enterprise_code, order_no",
    },
    Table {
        name: "notices",
        select: "bank_serial, front_seq_no",
        columns: &[("bank_serial", Text), ("front_seq_no", Text)],
        order: "bank_serial",
    },
    Table {
        name: "withdrawals",
        select:
            "front_seq_no, enterprise_code, serial, sub_id, master_id, amount, fee, chunk_count",
        columns: &[
            ("front_seq_no", Text),
            ("enterprise_code", Text),
            ("serial", Text),
            ("sub_id", Int),
            ("master_id", Int),
            ("amount", Int),
            ("fee", Int),
            ("chunk_count", Int),
        ],
        order: "front_seq_no",
    },
    Table {
        name: "instructions",
        select: "rowid, id, kind, front_seq_no, chunk_no, trade_code, payer_acct, payee_acct, \
                 payee_name, payee_bank, amount, memo, state, reject_code, sub_id, master_id",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("kind", Text),
            ("front_seq_no", Text),
            ("chunk_no", Int),
            ("trade_code", Text),
            ("payer_acct", Text),
            ("payee_acct", Text),
            ("payee_name", Text),
            ("payee_bank", Text),
            ("amount", Int),
            ("memo", Text),
            ("state", Text),
            ("reject_code", Text),
            ("sub_id", Int),
            ("master_id", Int),
        ],
        order: "rowid",
    },
];

/// What a copy moved: (table, rows) in copy order.
pub type CopyReport = Vec<(&'static str, u64)>;

/// A copy that could not be made or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading or writing a store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The source folder is in use or unusable.
    #[error("{0}")]
    Lock(#[from] super::lock::LockError),
    /// The source has no store file.
    #[error("no embedded store in {0}")]
    NoSource(String),
    /// The target already holds a ledger.
    #[error(
        "the target database already holds {0} master account(s); copy only into an empty one"
    )]
    TargetNotEmpty(i64),
    /// Counts or ledgers differ after the copy.
    #[error("verification failed: {0}")]
    Verify(String),
}

fn sqlite_err(e: rusqlite::Error) -> CopyError {
    CopyError::Store(StoreError::Sqlite(e))
}

fn pg_err(e: tokio_postgres::Error) -> CopyError {
    CopyError::Store(StoreError::Postgres(e))
}

/// Copies the embedded store in `from` into the empty PostgreSQL database at `to`, then
/// verifies counts and both ledgers. `progress` receives one line per chunk.
pub fn copy_store(
    from: &Path,
    to: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<CopyReport, CopyError> {
    if !from.join("bankfep.sqlite3").exists() {
        return Err(CopyError::NoSource(from.display().to_string()));
    }
    let _lock = super::lock::DataDirLock::acquire(from)?;
    // Opening migrates an old embedded store to the current schema.
    drop(SqliteStore::open(from)?);
    let src = rusqlite::Connection::open_with_flags(
        from.join("bankfep.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(sqlite_err)?;
    drop(PgStore::open(to)?); // migrations
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreError::Io)?;
    let report = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(to, tokio_postgres::NoTls)
            .await
            .map_err(pg_err)?;
        tokio::spawn(conn);
        let n: i64 = client
            .query_one("SELECT count(*) FROM masters", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        if n > 0 {
            return Err(CopyError::TargetNotEmpty(n));
        }
        client.batch_execute("BEGIN").await.map_err(pg_err)?;
        let copied = copy_tables(&src, &client, progress).await;
        match copied {
            Ok(report) => {
                client.batch_execute("COMMIT").await.map_err(pg_err)?;
                Ok(report)
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    })?;
    verify(from, to, &src, &report)?;
    Ok(report)
}

async fn copy_tables(
    src: &rusqlite::Connection,
    client: &tokio_postgres::Client,
    progress: &mut dyn FnMut(&str),
) -> Result<CopyReport, CopyError> {
    let mut report = Vec::new();
    for t in TABLES {
        let cols: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        let casts: Vec<String> = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, k))| {
                let ty = match k {
                    Int => "bigint",
                    Text => "text",
                    Blob => "bytea",
                    Bool => "boolean",
                };
                format!("${}::{ty}[]", i + 1)
            })
            .collect();
        let insert = format!(
            "INSERT INTO {} ({}) SELECT * FROM unnest({})",
            t.name,
            cols.join(", "),
            casts.join(", ")
        );
        let stmt = client.prepare(&insert).await.map_err(pg_err)?;
        let mut st = src
            .prepare(&format!(
                "SELECT {} FROM {} ORDER BY {}",
                t.select, t.name, t.order
            ))
            .map_err(sqlite_err)?;
        let mut rows = st.query([]).map_err(sqlite_err)?;
        let mut total = 0u64;
        loop {
            let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK_ROWS);
            while chunk.len() < CHUNK_ROWS {
                let Some(r) = rows.next().map_err(sqlite_err)? else {
                    break;
                };
                let mut row = Vec::with_capacity(t.columns.len());
                for i in 0..t.columns.len() {
                    row.push(r.get::<_, Value>(i).map_err(sqlite_err)?);
                }
                chunk.push(row);
            }
            if chunk.is_empty() {
                break;
            }
            let params = column_arrays(t, &chunk)?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.execute(&stmt, &refs).await.map_err(pg_err)?;
            total += chunk.len() as u64;
            progress(&format!("copy-store: {} {total} rows", t.name));
        }
        report.push((t.name, total));
    }
    // Secret and counters live in `meta` on the embedded store.
    let secret: Option<Vec<u8>> = src
        .query_row(
            "SELECT value FROM meta WHERE key = 'receipt_secret'",
            [],
            |r| r.get(0),
        )
        .ok();
    if let Some(s) = secret {
        client
            .execute(
                "INSERT INTO meta_secret(key, value) VALUES ('receipt_secret', $1)",
                &[&s],
            )
            .await
            .map_err(pg_err)?;
    }
    for key in ["front_seq", "sub_seq", "receipt_seq"] {
        let v: i64 = src
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .unwrap_or(0);
        client
            .execute(
                "INSERT INTO counters(key, value) VALUES ($1, $2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                &[&key, &v],
            )
            .await
            .map_err(pg_err)?;
    }
    // Serial columns continue after the copied ids.
    for (table, col) in [
        ("masters", "id"),
        ("postings", "id"),
        ("entries", "id"),
        ("credits", "seq"),
        ("instructions", "seq"),
    ] {
        client
            .batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), \
                 greatest((SELECT max({col}) FROM {table}), 1))"
            ))
            .await
            .map_err(pg_err)?;
    }
    Ok(report)
}

/// Column arrays (one boxed PostgreSQL array per column) of a chunk of SQLite rows.
fn column_arrays(
    t: &Table,
    chunk: &[Vec<Value>],
) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, CopyError> {
    let bad = |col: &str| CopyError::Verify(format!("{}.{col}: unexpected value type", t.name));
    let mut out: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(t.columns.len());
    for (i, (col, kind)) in t.columns.iter().enumerate() {
        let cell = |r: &Vec<Value>| r.get(i).cloned().unwrap_or(Value::Null);
        match kind {
            Int => {
                let v = chunk
                    .iter()
                    .map(|r| match cell(r) {
                        Value::Integer(n) => Ok(n),
                        _ => Err(bad(col)),
                    })
                    .collect::<Result<Vec<i64>, _>>()?;
                out.push(Box::new(v));
            }
            Bool => {
                let v = chunk
                    .iter()
                    .map(|r| match cell(r) {
                        Value::Integer(n) => Ok(n != 0),
                        _ => Err(bad(col)),
                    })
                    .collect::<Result<Vec<bool>, _>>()?;
                out.push(Box::new(v));
            }
            Text => {
                let v = chunk
                    .iter()
                    .map(|r| match cell(r) {
                        Value::Text(s) => Ok(s),
                        _ => Err(bad(col)),
                    })
                    .collect::<Result<Vec<String>, _>>()?;
                out.push(Box::new(v));
            }
            Blob => {
                let v = chunk
                    .iter()
                    .map(|r| match cell(r) {
                        Value::Blob(b) => Ok(b),
                        Value::Text(s) => Ok(s.into_bytes()),
                        _ => Err(bad(col)),
                    })
                    .collect::<Result<Vec<Vec<u8>>, _>>()?;
                out.push(Box::new(v));
            }
        }
    }
    Ok(out)
}

fn verify(
    from: &Path,
    to: &str,
    src: &rusqlite::Connection,
    report: &CopyReport,
) -> Result<(), CopyError> {
    // Counts on both sides.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreError::Io)?;
    for (table, copied) in report {
        let here: i64 = src
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(sqlite_err)?;
        let there: i64 = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(to, tokio_postgres::NoTls)
                .await
                .map_err(pg_err)?;
            tokio::spawn(conn);
            Ok::<i64, CopyError>(
                client
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await
                    .map_err(pg_err)?
                    .get(0),
            )
        })?;
        if here != there || u64::try_from(here).ok() != Some(*copied) {
            return Err(CopyError::Verify(format!(
                "{table}: {here} rows in the embedded store, {there} in PostgreSQL"
            )));
        }
    }
    // Both ledgers: invariants hold, every account equal.
    let (m1, s1, _) = SqliteStore::open(from)?.load()?;
    let (m2, s2, _) = PgStore::open(to)?.load()?;
    let a = LedgerState::from_rows(m1.clone(), s1.clone(), Default::default());
    let b = LedgerState::from_rows(m2.clone(), s2.clone(), Default::default());
    invariants::check_state(&a).map_err(|v| CopyError::Verify(format!("source: {v}")))?;
    invariants::check_state(&b).map_err(|v| CopyError::Verify(format!("target: {v}")))?;
    let key_m = |m: &crate::ledger::Master| {
        (
            m.id,
            m.acct_no.clone(),
            m.mirror,
            m.suspense,
            m.fee,
            m.in_transit,
        )
    };
    let mut ma: Vec<_> = m1.iter().map(key_m).collect();
    let mut mb: Vec<_> = m2.iter().map(key_m).collect();
    ma.sort();
    mb.sort();
    let key_s = |s: &crate::ledger::SubAccount| {
        (
            s.id,
            s.sub_acct_no.clone(),
            s.balance,
            s.frozen,
            s.binding.clone().map(|b| (b.acct_no, b.verified)),
            s.chunks_in_flight,
        )
    };
    let mut sa: Vec<_> = s1.iter().map(key_s).collect();
    let mut sb: Vec<_> = s2.iter().map(key_s).collect();
    sa.sort();
    sb.sort();
    if ma != mb || sa != sb {
        return Err(CopyError::Verify(
            "accounts differ between the two stores".into(),
        ));
    }
    Ok(())
}
