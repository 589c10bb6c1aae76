//! The PostgreSQL store (issue 8): the same [`Store`] as the embedded SQLite one, on a
//! database the bank already runs, backs up and replicates (`serve --database-url`,
//! docs/configuration.md).
//!
//! Shape of a batch (group commit): while the writer decides a batch, every row it appends
//! is held in memory ([`Pending`]); reads made during the batch see those rows first, so a
//! request sees everything decided before it. At [`Store::commit`] the whole batch goes to
//! the server as one pipelined transaction: `BEGIN`, one set-based statement per table
//! (`INSERT … SELECT FROM unnest($1::…[], …)`, `UPDATE … FROM unnest(…)`), `COMMIT`, all
//! written before the first answer is read, so a batch costs one network round trip plus
//! the server's WAL flush (`synchronous_commit = on`). Any statement failing aborts the
//! transaction, and the batch is reported failed (the writer answers `YQ9999` / `1003`).
//! Savepoints are marks in the in-memory buffers: rolling a request back costs nothing.
//!
//! Queries over many rows (6072, 6050) first send the rows buffered so far inside the open
//! transaction, then read. Amounts are `BIGINT` fen with `CHECK` constraints, as in SQLite.
//! Migrations are versioned ([`MIGRATIONS`]) and applied at start under an advisory lock,
//! or by `bankfep migrate`.
//!
//! The store owns a single-threaded tokio runtime on which its connection runs; it is used
//! from the writer thread (and at start-up from a blocking thread), never from inside
//! another runtime's task.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::{booking_from, in_acct_type, side_code, BatchKeys, Store, StoreError, StoredRequest};
use crate::ledger::decide::{CreditRow, Entry, ReceiptRow, Writes};
use crate::ledger::state::Counters;
use crate::ledger::{
    Binding, Instruction, InstructionKind, InstructionState, Master, SubAccount, SubStatus,
    Withdrawal,
};

/// Versioned schema migrations, applied in order, each once (table `bankfep_migrations`).
pub const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "
CREATE TABLE meta_secret(key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE counters(key TEXT PRIMARY KEY, value BIGINT NOT NULL CHECK(value >= 0));
CREATE TABLE masters(
  id BIGSERIAL PRIMARY KEY, enterprise_code TEXT NOT NULL, acct_no TEXT NOT NULL UNIQUE,
  mirror BIGINT NOT NULL, suspense BIGINT NOT NULL CHECK(suspense >= 0),
  fee BIGINT NOT NULL CHECK(fee >= 0), in_transit BIGINT NOT NULL CHECK(in_transit >= 0));
CREATE TABLE subs(
  id BIGINT PRIMARY KEY, master_id BIGINT NOT NULL REFERENCES masters(id),
  sub_acct_no TEXT NOT NULL UNIQUE, member_code TEXT NOT NULL, member_name TEXT NOT NULL,
  global_type TEXT NOT NULL, global_id TEXT NOT NULL, mobile TEXT NOT NULL,
  balance BIGINT NOT NULL CHECK(balance >= 0),
  frozen BIGINT NOT NULL CHECK(frozen >= 0 AND frozen <= balance),
  status BIGINT NOT NULL, UNIQUE(master_id, member_code));
CREATE TABLE postings(
  id BIGSERIAL PRIMARY KEY, front_seq_no TEXT NOT NULL, master_id BIGINT NOT NULL,
  debit TEXT NOT NULL, credit TEXT NOT NULL, amount BIGINT NOT NULL CHECK(amount > 0),
  booking_type TEXT NOT NULL, CHECK(debit <> credit));
CREATE TABLE entries(
  id BIGSERIAL PRIMARY KEY, sub_id BIGINT NOT NULL, front_seq_no TEXT NOT NULL,
  acct_date BIGINT NOT NULL, time TEXT NOT NULL, booking_type TEXT NOT NULL, dc TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK(amount > 0), balance_after BIGINT NOT NULL,
  peer_acct TEXT NOT NULL, remark TEXT NOT NULL);
CREATE INDEX entries_by_sub ON entries(sub_id, acct_date, id);
CREATE TABLE credits(
  seq BIGSERIAL, front_seq_no TEXT NOT NULL PRIMARY KEY, master_id BIGINT NOT NULL,
  in_acct_type TEXT NOT NULL, sub_acct_no TEXT NOT NULL, amount BIGINT NOT NULL CHECK(amount > 0),
  unallocated BIGINT NOT NULL CHECK(unallocated >= 0 AND unallocated <= amount),
  payer_acct TEXT NOT NULL, payer_name TEXT NOT NULL, acct_date BIGINT NOT NULL,
  remark TEXT NOT NULL);
CREATE INDEX credits_by_date ON credits(master_id, acct_date, seq);
CREATE TABLE receipts(
  front_seq_no TEXT PRIMARY KEY, master_id BIGINT NOT NULL, receipt_no TEXT NOT NULL UNIQUE,
  check_code TEXT NOT NULL, booking_date TEXT NOT NULL, payer_acct TEXT NOT NULL,
  payer_name TEXT NOT NULL, payee_acct TEXT NOT NULL, payee_name TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK(amount > 0), summary TEXT NOT NULL);
CREATE TABLE requests(
  enterprise_code TEXT NOT NULL, serial TEXT NOT NULL, tx_code TEXT NOT NULL,
  fingerprint BYTEA NOT NULL, return_code TEXT NOT NULL, return_msg TEXT NOT NULL,
  body BYTEA NOT NULL, PRIMARY KEY(enterprise_code, serial));
CREATE TABLE orders(
  enterprise_code TEXT NOT NULL, order_no TEXT NOT NULL, front_seq_no TEXT NOT NULL,
  PRIMARY KEY(enterprise_code, order_no));
CREATE TABLE notices(bank_serial TEXT PRIMARY KEY, front_seq_no TEXT NOT NULL);
CREATE TABLE bindings(
  sub_id BIGINT PRIMARY KEY, acct_no TEXT NOT NULL, acct_name TEXT NOT NULL,
  same_bank BOOLEAN NOT NULL, branch_name TEXT NOT NULL, bank_code TEXT NOT NULL,
  verified BOOLEAN NOT NULL, auth_amount BIGINT NOT NULL, attempts_left BIGINT NOT NULL,
  verify_seq TEXT NOT NULL);
CREATE TABLE withdrawals(
  front_seq_no TEXT PRIMARY KEY, enterprise_code TEXT NOT NULL, serial TEXT NOT NULL,
  sub_id BIGINT NOT NULL, master_id BIGINT NOT NULL, amount BIGINT NOT NULL CHECK(amount > 0),
  fee BIGINT NOT NULL CHECK(fee >= 0), chunk_count BIGINT NOT NULL,
  UNIQUE(enterprise_code, serial));
CREATE TABLE instructions(
  seq BIGSERIAL, id TEXT PRIMARY KEY, kind TEXT NOT NULL, front_seq_no TEXT NOT NULL,
  chunk_no BIGINT NOT NULL, trade_code TEXT NOT NULL, payer_acct TEXT NOT NULL,
  payee_acct TEXT NOT NULL, payee_name TEXT NOT NULL, payee_bank TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK(amount > 0), memo TEXT NOT NULL, state TEXT NOT NULL,
  reject_code TEXT NOT NULL, sub_id BIGINT NOT NULL, master_id BIGINT NOT NULL);
CREATE INDEX instructions_by_withdrawal ON instructions(front_seq_no, chunk_no);
CREATE INDEX instructions_unresolved ON instructions(seq) WHERE state = 'P';
",
), (
    2,
    "
CREATE TABLE instances(
  id TEXT PRIMARY KEY, cluster_addr TEXT NOT NULL, heartbeat TIMESTAMPTZ NOT NULL);
CREATE TABLE tenant_leases(
  enterprise_code TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch BIGINT NOT NULL CHECK(epoch > 0),
  expires_at TIMESTAMPTZ NOT NULL);
INSERT INTO counters(key, value) VALUES ('front_seq', 0), ('sub_seq', 0), ('receipt_seq', 0)
  ON CONFLICT(key) DO NOTHING;
CREATE FUNCTION bankfep_fence(p_owner TEXT, p_tenants TEXT[], p_epochs BIGINT[])
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE held INT;
BEGIN
  SELECT count(*) INTO held FROM (
    SELECT 1 FROM tenant_leases l JOIN unnest(p_tenants, p_epochs) AS t(e, ep)
      ON l.enterprise_code = t.e
    WHERE l.owner = p_owner AND l.epoch = t.ep
    ORDER BY l.enterprise_code
    FOR SHARE OF l) AS x;
  IF held <> cardinality(p_tenants) THEN
    RAISE EXCEPTION 'bankfep: tenant lease lost; this instance is fenced off' USING ERRCODE = 'P0001';
  END IF;
  RETURN TRUE;
END $$;
",
), (
    3,
    "
ALTER TABLE postings ADD COLUMN booking_date BIGINT NOT NULL DEFAULT 0;
UPDATE postings SET booking_date = substr(front_seq_no, 1, 8)::bigint
  WHERE front_seq_no ~ '^[0-9]{8}';
CREATE INDEX postings_by_date ON postings(master_id, booking_date);
",
)];

/// Key of the advisory lock under which migrations run (several instances may start at
/// once; one applies, the others wait and find nothing left to do).
const MIGRATION_LOCK: i64 = 0x6261_6e6b_6665_7001;

/// Applies every migration not yet applied to the database at `url`, in one transaction
/// under an advisory lock. Returns the versions applied (empty: already up to date).
/// Errors: connection or SQL failures as [`StoreError::Postgres`].
pub fn migrate(url: &str) -> Result<Vec<i32>, StoreError> {
    let rt = runtime()?;
    rt.block_on(async {
        let client = connect(url).await?;
        apply_migrations(&client).await
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::error!(error = %e, "postgres connection ended");
        }
    });
    // Durability is the server's: a commit returns after its WAL is flushed.
    // Plans: the server's default (`plan_cache_mode = auto`), so that a batch's statements
    // are planned once per connection, not at every batch (re-planning was 15% of the
    // server's CPU under `force_custom_plan`, issue 8). Every statement that joins a batch's
    // arrays to a table reaches the table through its unique index whatever the plan: a
    // `= ANY($1)` condition on the key, or a `LATERAL … LIMIT 1` probe per key. A generic
    // plan cached while a table is still small therefore cannot keep a sequential scan of
    // `requests`, `orders`, `credits` or `instructions` as they grow (it once cost a third of
    // the throughput between 32,000 and 64,000 stored requests).
    client
        .batch_execute("SET synchronous_commit = on; SET client_min_messages = warning")
        .await?;
    Ok(client)
}

async fn apply_migrations(client: &Client) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); \
             CREATE TABLE IF NOT EXISTS bankfep_migrations(version INT PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ))
        .await?;
    let done: Vec<i32> = client
        .query("SELECT version FROM bankfep_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        if let Err(e) = client.batch_execute(sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
        client
            .execute(
                "INSERT INTO bankfep_migrations(version) VALUES ($1)",
                &[version],
            )
            .await?;
        applied.push(*version);
    }
    client.batch_execute("COMMIT").await?;
    Ok(applied)
}

/// The prepared statement for `sql` on `client`, from the per-connection cache `stmts`
/// (prepared on first use: one round trip, once per connection).
async fn prepared(
    client: &Client,
    stmts: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(s) = stmts.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).await?;
    stmts.insert(sql, s.clone());
    Ok(s)
}

/// Rows appended during the open batch, not yet sent to the server.
#[derive(Default)]
struct Pending {
    writes: Vec<(String, Option<String>, Writes)>,
    requests: Vec<StoredRequest>,
    masters: Vec<Master>,
    subs: Vec<SubAccount>,
}

/// Lengths of the buffers when a request's savepoint was taken.
#[derive(Clone, Copy)]
struct Mark {
    writes: usize,
    requests: usize,
}

/// The PostgreSQL store over one connection (the writer's).
pub struct PgStore {
    rt: tokio::runtime::Runtime,
    client: Client,
    stmts: HashMap<&'static str, Statement>,
    pending: Pending,
    mark: Option<Mark>,
    /// A transaction is open on the server (rows of this batch were already sent).
    in_tx: bool,
    /// Rows of this batch were lost by a failed early send: the batch must not commit.
    poisoned: bool,
    /// What [`Store::prefetch`] learnt from the database for this batch.
    known: Known,
    /// The lease check of this batch's commit: (owner, tenants, epochs).
    fence: Option<(String, Vec<String>, Vec<i64>)>,
    /// Where to reconnect after the connection broke (server restart, failover).
    url: String,
}

/// Answers fetched for a batch's keys in one round trip (valid until the batch ends).
#[derive(Default)]
struct Known {
    requests: HashMap<(String, String), Option<StoredRequest>>,
    orders: HashMap<(String, String), bool>,
    notices: HashMap<String, bool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

type Param<'a> = &'a (dyn ToSql + Sync);

fn to_u32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt("value out of range"))
}

fn instruction_from(r: &Row) -> Result<Instruction, StoreError> {
    let kind: String = r.try_get(1)?;
    let trade: String = r.try_get(4)?;
    let state: String = r.try_get(11)?;
    Ok(Instruction {
        id: r.try_get(0)?,
        kind: if kind == "V" {
            InstructionKind::Verify
        } else {
            InstructionKind::Chunk
        },
        front_seq_no: r.try_get(2)?,
        chunk_no: to_u32(r.try_get(3)?)?,
        trade_code: if trade == "7002" { "7002" } else { "7001" },
        payer_acct: r.try_get(5)?,
        payee_acct: r.try_get(6)?,
        payee_name: r.try_get(7)?,
        payee_bank: r.try_get(8)?,
        amount: r.try_get(9)?,
        memo: r.try_get(10)?,
        state: InstructionState::from_letter(&state),
        reject_code: r.try_get(12)?,
        sub_id: r.try_get(13)?,
        master_id: r.try_get(14)?,
    })
}

fn withdrawal_from(r: &Row) -> Result<Withdrawal, StoreError> {
    Ok(Withdrawal {
        front_seq_no: r.try_get(0)?,
        enterprise_code: r.try_get(1)?,
        serial: r.try_get(2)?,
        sub_id: r.try_get(3)?,
        master_id: r.try_get(4)?,
        amount: r.try_get(5)?,
        fee: r.try_get(6)?,
        chunk_count: to_u32(r.try_get(7)?)?,
    })
}

fn credit_from(r: &Row) -> Result<CreditRow, StoreError> {
    let t: String = r.try_get(2)?;
    Ok(CreditRow {
        front_seq_no: r.try_get(0)?,
        master_id: r.try_get(1)?,
        in_acct_type: in_acct_type(&t),
        sub_acct_no: r.try_get(3)?,
        amount: r.try_get(4)?,
        unallocated: r.try_get(5)?,
        payer_acct: r.try_get(6)?,
        payer_name: r.try_get(7)?,
        acct_date: to_u32(r.try_get(8)?)?,
        remark: r.try_get(9)?,
    })
}

fn receipt_from(r: &Row) -> Result<ReceiptRow, StoreError> {
    Ok(ReceiptRow {
        front_seq_no: r.try_get(0)?,
        master_id: r.try_get(1)?,
        receipt_no: r.try_get(2)?,
        check_code: r.try_get(3)?,
        booking_date: r.try_get(4)?,
        payer_acct: r.try_get(5)?,
        payer_name: r.try_get(6)?,
        payee_acct: r.try_get(7)?,
        payee_name: r.try_get(8)?,
        amount: r.try_get(9)?,
        summary: r.try_get(10)?,
    })
}

/// One set-based statement of a batch flush and its parameters (owned arrays).
struct Flush {
    sql: &'static str,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

/// Column arrays of the rows to insert, built from the buffered writes.
#[derive(Default)]
struct Columns {
    postings: PostingCols,
    entries: EntryCols,
    credits: CreditCols,
    credit_updates: Vec<(String, i64)>,
    receipts: Vec<ReceiptRow>,
    orders: (Vec<String>, Vec<String>, Vec<String>),
    bindings: Vec<(i64, Option<Binding>)>,
    withdrawals: Vec<Withdrawal>,
    instructions: Vec<Instruction>,
    instruction_updates: Vec<(String, &'static str, String)>,
    notices: (Vec<String>, Vec<String>),
}

/// Posting columns: `FrontSeqNo`, master id, debit, credit, amount (fen), booking type,
/// booking date (`yyyymmdd`).
type PostingCols = (
    Vec<String>,
    Vec<i64>,
    Vec<String>,
    Vec<String>,
    Vec<i64>,
    Vec<String>,
    Vec<i64>,
);

#[derive(Default)]
struct EntryCols {
    sub_id: Vec<i64>,
    seq: Vec<String>,
    date: Vec<i64>,
    time: Vec<String>,
    btype: Vec<String>,
    dc: Vec<String>,
    amount: Vec<i64>,
    after: Vec<i64>,
    peer: Vec<String>,
    remark: Vec<String>,
}

#[derive(Default)]
struct CreditCols {
    seq: Vec<String>,
    master: Vec<i64>,
    kind: Vec<String>,
    sub: Vec<String>,
    amount: Vec<i64>,
    unallocated: Vec<i64>,
    payer: Vec<String>,
    payer_name: Vec<String>,
    date: Vec<i64>,
    remark: Vec<String>,
}

fn boxed<T: ToSql + Sync + Send + 'static>(v: T) -> Box<dyn ToSql + Sync + Send> {
    Box::new(v)
}

/// Keeps the last value per key, in first-seen key order.
fn last_per_key<K: Eq + std::hash::Hash + Clone, V>(items: Vec<(K, V)>) -> Vec<(K, V)> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<(K, V)> = Vec::with_capacity(items.len());
    for (k, v) in items {
        match index.get(&k) {
            Some(&i) => {
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = v;
                }
            }
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

impl Columns {
    fn gather(writes: &[(String, Option<String>, Writes)]) -> Columns {
        let mut c = Columns::default();
        let mut credit_updates = Vec::new();
        let mut instruction_updates = Vec::new();
        for (enterprise, seq, w) in writes {
            let seq = seq.clone().unwrap_or_default();
            for p in &w.postings {
                c.postings.0.push(seq.clone());
                c.postings.1.push(p.master_id);
                c.postings.2.push(side_code(p.debit));
                c.postings.3.push(side_code(p.credit));
                c.postings.4.push(p.amount);
                c.postings.5.push(p.booking_type.code().to_string());
                c.postings.6.push(i64::from(w.booking_date));
            }
            for e in &w.entries {
                let t = &mut c.entries;
                t.sub_id.push(e.sub_id);
                t.seq.push(e.front_seq_no.clone());
                t.date.push(i64::from(e.acct_date));
                t.time.push(e.time.clone());
                t.btype.push(e.booking_type.code().to_string());
                t.dc.push(e.dc.to_string());
                t.amount.push(e.amount);
                t.after.push(e.balance_after);
                t.peer.push(e.peer_acct.clone());
                t.remark.push(e.remark.clone());
            }
            for r in &w.credits {
                let t = &mut c.credits;
                t.seq.push(r.front_seq_no.clone());
                t.master.push(r.master_id);
                t.kind.push(r.in_acct_type.to_string());
                t.sub.push(r.sub_acct_no.clone());
                t.amount.push(r.amount);
                t.unallocated.push(r.unallocated);
                t.payer.push(r.payer_acct.clone());
                t.payer_name.push(r.payer_name.clone());
                t.date.push(i64::from(r.acct_date));
                t.remark.push(r.remark.clone());
            }
            credit_updates.extend(w.credit_updates.iter().cloned());
            c.receipts.extend(w.receipts.iter().cloned());
            if let Some(o) = &w.order_no {
                c.orders.0.push(enterprise.clone());
                c.orders.1.push(o.clone());
                c.orders.2.push(seq.clone());
            }
            c.bindings.extend(w.bindings.iter().cloned());
            c.withdrawals.extend(w.withdrawal.iter().cloned());
            c.instructions.extend(w.instructions.iter().cloned());
            instruction_updates.extend(
                w.instruction_updates
                    .iter()
                    .map(|(id, st, rj)| (id.clone(), (st.letter(), rj.clone()))),
            );
            if let Some((bank_serial, s)) = &w.notice {
                c.notices.0.push(bank_serial.clone());
                c.notices.1.push(s.clone());
            }
        }
        c.credit_updates = last_per_key(credit_updates);
        c.instruction_updates = last_per_key(instruction_updates)
            .into_iter()
            .map(|(id, (st, rj))| (id, st, rj))
            .collect();
        c.bindings = last_per_key(c.bindings);
        c
    }

    /// The set-based statements inserting these rows, in dependency order (rows before the
    /// updates of the same rows).
    fn statements(self) -> Vec<Flush> {
        let mut out = Vec::new();
        let (a, b, cc, d, e, f, g) = self.postings;
        if !a.is_empty() {
            out.push(Flush {
                sql: "INSERT INTO postings(front_seq_no, master_id, debit, credit, amount, booking_type, \
                      booking_date) \
                      SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], \
                      $6::text[], $7::bigint[])",
                params: vec![
                    boxed(a),
                    boxed(b),
                    boxed(cc),
                    boxed(d),
                    boxed(e),
                    boxed(f),
                    boxed(g),
                ],
            });
        }
        let t = self.entries;
        if !t.sub_id.is_empty() {
            out.push(Flush {
                sql: "INSERT INTO entries(sub_id, front_seq_no, acct_date, time, booking_type, dc, amount, \
                      balance_after, peer_acct, remark) \
                      SELECT sub_id, seq, d, t, b, dc, a, ba, p, r FROM unnest($1::bigint[], $2::text[], \
                      $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], \
                      $9::text[], $10::text[]) WITH ORDINALITY AS u(sub_id, seq, d, t, b, dc, a, ba, p, r, o) \
                      ORDER BY o",
                params: vec![
                    boxed(t.sub_id),
                    boxed(t.seq),
                    boxed(t.date),
                    boxed(t.time),
                    boxed(t.btype),
                    boxed(t.dc),
                    boxed(t.amount),
                    boxed(t.after),
                    boxed(t.peer),
                    boxed(t.remark),
                ],
            });
        }
        let t = self.credits;
        if !t.seq.is_empty() {
            out.push(Flush {
                sql: "INSERT INTO credits(front_seq_no, master_id, in_acct_type, sub_acct_no, amount, \
                      unallocated, payer_acct, payer_name, acct_date, remark) \
                      SELECT s, m, k, sa, a, un, pa, pn, d, r FROM unnest($1::text[], $2::bigint[], \
                      $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], \
                      $9::bigint[], $10::text[]) WITH ORDINALITY AS u(s, m, k, sa, a, un, pa, pn, d, r, o) \
                      ORDER BY o",
                params: vec![
                    boxed(t.seq),
                    boxed(t.master),
                    boxed(t.kind),
                    boxed(t.sub),
                    boxed(t.amount),
                    boxed(t.unallocated),
                    boxed(t.payer),
                    boxed(t.payer_name),
                    boxed(t.date),
                    boxed(t.remark),
                ],
            });
        }
        if !self.credit_updates.is_empty() {
            let (s, u): (Vec<String>, Vec<i64>) = self.credit_updates.into_iter().unzip();
            out.push(Flush {
                sql:
                    "UPDATE credits c SET unallocated = u.un FROM unnest($1::text[], $2::bigint[]) \
                      AS u(s, un) WHERE c.front_seq_no = u.s AND c.front_seq_no = ANY($1::text[])",
                params: vec![boxed(s), boxed(u)],
            });
        }
        if !self.receipts.is_empty() {
            let r = self.receipts;
            out.push(Flush {
                sql: "INSERT INTO receipts(front_seq_no, master_id, receipt_no, check_code, booking_date, \
                      payer_acct, payer_name, payee_acct, payee_name, amount, summary) \
                      SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                      $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[])",
                params: vec![
                    boxed(r.iter().map(|x| x.front_seq_no.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.master_id).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.receipt_no.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.check_code.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.booking_date.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.payer_acct.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.payer_name.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.payee_acct.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.payee_name.clone()).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.amount).collect::<Vec<_>>()),
                    boxed(r.iter().map(|x| x.summary.clone()).collect::<Vec<_>>()),
                ],
            });
        }
        let (e, o, s) = self.orders;
        if !e.is_empty() {
            out.push(Flush {
                sql: "INSERT INTO orders(enterprise_code, order_no, front_seq_no) \
                      SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
                params: vec![boxed(e), boxed(o), boxed(s)],
            });
        }
        let (set, unset): (Vec<_>, Vec<_>) =
            self.bindings.into_iter().partition(|(_, b)| b.is_some());
        if !unset.is_empty() {
            out.push(Flush {
                sql: "DELETE FROM bindings WHERE sub_id = ANY($1::bigint[])",
                params: vec![boxed(unset.iter().map(|(id, _)| *id).collect::<Vec<_>>())],
            });
        }
        let set: Vec<(i64, Binding)> = set
            .into_iter()
            .filter_map(|(id, b)| b.map(|b| (id, b)))
            .collect();
        if !set.is_empty() {
            out.push(Flush {
                sql: "INSERT INTO bindings(sub_id, acct_no, acct_name, same_bank, branch_name, bank_code, \
                      verified, auth_amount, attempts_left, verify_seq) \
                      SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::text[], \
                      $6::text[], $7::bool[], $8::bigint[], $9::bigint[], $10::text[]) \
                      ON CONFLICT(sub_id) DO UPDATE SET acct_no = excluded.acct_no, \
                      acct_name = excluded.acct_name, same_bank = excluded.same_bank, \
                      branch_name = excluded.branch_name, bank_code = excluded.bank_code, \
                      verified = excluded.verified, auth_amount = excluded.auth_amount, \
                      attempts_left = excluded.attempts_left, verify_seq = excluded.verify_seq",
                params: vec![
                    boxed(set.iter().map(|(id, _)| *id).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.acct_no.clone()).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.acct_name.clone()).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.same_bank).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.branch_name.clone()).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.bank_code.clone()).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.verified).collect::<Vec<_>>()),
                    boxed(set.iter().map(|(_, b)| b.auth_amount).collect::<Vec<_>>()),
                    boxed(
                        set.iter()
                            .map(|(_, b)| i64::from(b.attempts_left))
                            .collect::<Vec<_>>(),
                    ),
                    boxed(set.iter().map(|(_, b)| b.verify_seq.clone()).collect::<Vec<_>>()),
                ],
            });
        }
        if !self.withdrawals.is_empty() {
            let w = self.withdrawals;
            out.push(Flush {
                sql: "INSERT INTO withdrawals(front_seq_no, enterprise_code, serial, sub_id, master_id, \
                      amount, fee, chunk_count) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], \
                      $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])",
                params: vec![
                    boxed(w.iter().map(|x| x.front_seq_no.clone()).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| x.enterprise_code.clone()).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| x.serial.clone()).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| x.sub_id).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| x.master_id).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| x.amount).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| x.fee).collect::<Vec<_>>()),
                    boxed(w.iter().map(|x| i64::from(x.chunk_count)).collect::<Vec<_>>()),
                ],
            });
        }
        if !self.instructions.is_empty() {
            let i = self.instructions;
            out.push(Flush {
                sql: "INSERT INTO instructions(id, kind, front_seq_no, chunk_no, trade_code, payer_acct, \
                      payee_acct, payee_name, payee_bank, amount, memo, state, reject_code, sub_id, \
                      master_id) SELECT id, k, f, c, t, pa, pe, pn, pb, a, m, s, r, su, ma FROM \
                      unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                      $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], \
                      $13::text[], $14::bigint[], $15::bigint[]) WITH ORDINALITY \
                      AS u(id, k, f, c, t, pa, pe, pn, pb, a, m, s, r, su, ma, o) ORDER BY o",
                params: vec![
                    boxed(i.iter().map(|x| x.id.clone()).collect::<Vec<_>>()),
                    boxed(
                        i.iter()
                            .map(|x| {
                                if x.kind == InstructionKind::Verify {
                                    "V".to_string()
                                } else {
                                    "C".to_string()
                                }
                            })
                            .collect::<Vec<_>>(),
                    ),
                    boxed(i.iter().map(|x| x.front_seq_no.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| i64::from(x.chunk_no)).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.trade_code.to_string()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.payer_acct.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.payee_acct.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.payee_name.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.payee_bank.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.amount).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.memo.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.state.letter().to_string()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.reject_code.clone()).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.sub_id).collect::<Vec<_>>()),
                    boxed(i.iter().map(|x| x.master_id).collect::<Vec<_>>()),
                ],
            });
        }
        if !self.instruction_updates.is_empty() {
            let u = self.instruction_updates;
            out.push(Flush {
                sql: "UPDATE instructions i SET state = u.s, reject_code = u.r FROM unnest($1::text[], \
                      $2::text[], $3::text[]) AS u(id, s, r) WHERE i.id = u.id AND i.id = ANY($1::text[]) \
                      AND i.state = 'P'",
                params: vec![
                    boxed(u.iter().map(|x| x.0.clone()).collect::<Vec<_>>()),
                    boxed(u.iter().map(|x| x.1.to_string()).collect::<Vec<_>>()),
                    boxed(u.iter().map(|x| x.2.clone()).collect::<Vec<_>>()),
                ],
            });
        }
        let (b, s) = self.notices;
        if !b.is_empty() {
            out.push(Flush {
                sql: "INSERT INTO notices(bank_serial, front_seq_no) SELECT * FROM unnest($1::text[], $2::text[])",
                params: vec![boxed(b), boxed(s)],
            });
        }
        out
    }
}

fn request_statement(r: &[StoredRequest]) -> Option<Flush> {
    if r.is_empty() {
        return None;
    }
    Some(Flush {
        sql: "INSERT INTO requests(enterprise_code, serial, tx_code, fingerprint, return_code, \
              return_msg, body) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], \
              $5::text[], $6::text[], $7::bytea[])",
        params: vec![
            boxed(r.iter().map(|x| x.enterprise_code.clone()).collect::<Vec<_>>()),
            boxed(r.iter().map(|x| x.serial.clone()).collect::<Vec<_>>()),
            boxed(r.iter().map(|x| x.tx_code.clone()).collect::<Vec<_>>()),
            boxed(r.iter().map(|x| x.fingerprint.clone()).collect::<Vec<_>>()),
            boxed(r.iter().map(|x| x.return_code.clone()).collect::<Vec<_>>()),
            boxed(r.iter().map(|x| x.return_msg.clone()).collect::<Vec<_>>()),
            boxed(r.iter().map(|x| x.body.clone()).collect::<Vec<_>>()),
        ],
    })
}

fn account_statements(masters: &[Master], subs: &[SubAccount]) -> Vec<Flush> {
    let mut out = Vec::new();
    if !masters.is_empty() {
        out.push(Flush {
            sql: "UPDATE masters m SET mirror = u.mi, suspense = u.su, fee = u.fe, in_transit = u.it \
                  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                  AS u(id, mi, su, fe, it) WHERE m.id = u.id AND m.id = ANY($1::bigint[])",
            params: vec![
                boxed(masters.iter().map(|m| m.id).collect::<Vec<_>>()),
                boxed(masters.iter().map(|m| m.mirror).collect::<Vec<_>>()),
                boxed(masters.iter().map(|m| m.suspense).collect::<Vec<_>>()),
                boxed(masters.iter().map(|m| m.fee).collect::<Vec<_>>()),
                boxed(masters.iter().map(|m| m.in_transit).collect::<Vec<_>>()),
            ],
        });
    }
    if !subs.is_empty() {
        out.push(Flush {
            sql: "INSERT INTO subs(id, master_id, sub_acct_no, member_code, member_name, global_type, \
                  global_id, mobile, balance, frozen, status) SELECT * FROM unnest($1::bigint[], \
                  $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                  $9::bigint[], $10::bigint[], $11::bigint[]) ON CONFLICT(id) DO UPDATE SET \
                  balance = excluded.balance, frozen = excluded.frozen, status = excluded.status",
            params: vec![
                boxed(subs.iter().map(|s| s.id).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.master_id).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.sub_acct_no.clone()).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.member_code.clone()).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.member_name.clone()).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.global_type.clone()).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.global_id.clone()).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.mobile.clone()).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.balance).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.frozen).collect::<Vec<_>>()),
                boxed(subs.iter().map(|s| s.status.code()).collect::<Vec<_>>()),
            ],
        });
    }
    out
}

impl PgStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`, libpq key/value strings too),
    /// applies pending migrations, and returns the store. Errors: unreachable server,
    /// authentication, or a failed migration, as [`StoreError::Postgres`].
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let rt = runtime()?;
        let client = rt.block_on(async {
            let client = connect(url).await?;
            apply_migrations(&client).await?;
            Ok::<_, StoreError>(client)
        })?;
        Ok(PgStore {
            rt,
            client,
            stmts: HashMap::new(),
            pending: Pending::default(),
            mark: None,
            in_tx: false,
            poisoned: false,
            known: Known::default(),
            fence: None,
            url: url.to_string(),
        })
    }

    /// The body of [`Store::load`], inside its snapshot.
    fn statement_snapshot(
        &mut self,
        master_acct: &str,
        date: i64,
    ) -> Result<Option<super::StatementSource>, StoreError> {
        let Some(m) = self.query_opt(
            "SELECT id, enterprise_code, acct_no, mirror, suspense, fee, in_transit FROM masters \
             WHERE acct_no = $1",
            &[&master_acct],
        )?
        else {
            return Ok(None);
        };
        let master = Master {
            id: m.try_get(0)?,
            enterprise_code: m.try_get(1)?,
            acct_no: m.try_get(2)?,
            mirror: m.try_get(3)?,
            suspense: m.try_get(4)?,
            fee: m.try_get(5)?,
            in_transit: m.try_get(6)?,
        };
        let subs = self
            .query(
                "SELECT id, sub_acct_no, member_name, balance FROM subs WHERE master_id = $1 \
                 ORDER BY id",
                &[&master.id],
            )?
            .iter()
            .map(|r| {
                Ok(super::SubBalance {
                    id: r.try_get(0)?,
                    sub_acct_no: r.try_get(1)?,
                    member_name: r.try_get(2)?,
                    balance: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let postings = self
            .query(
                "SELECT p.id, p.front_seq_no, p.debit, p.credit, p.amount, p.booking_type, \
                 p.booking_date, coalesce(r.receipt_no, '') FROM postings p \
                 LEFT JOIN receipts r ON r.front_seq_no = p.front_seq_no \
                 WHERE p.master_id = $1 AND p.booking_date = $2 ORDER BY p.id",
                &[&master.id, &date],
            )?
            .iter()
            .map(|r| {
                let d: i64 = r.try_get(6)?;
                Ok(super::PostingRow {
                    id: r.try_get(0)?,
                    front_seq_no: r.try_get(1)?,
                    debit: r.try_get(2)?,
                    credit: r.try_get(3)?,
                    amount: r.try_get(4)?,
                    booking_type: r.try_get(5)?,
                    booking_date: u32::try_from(d)
                        .map_err(|_| StoreError::Corrupt("booking date"))?,
                    receipt_no: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let later = self
            .query(
                "SELECT debit, credit, sum(amount)::bigint FROM postings \
                 WHERE master_id = $1 AND booking_date > $2 GROUP BY debit, credit \
                 ORDER BY debit, credit",
                &[&master.id, &date],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(super::StatementSource {
            master,
            subs,
            postings,
            later,
        }))
    }

    fn load_snapshot(&mut self) -> Result<(Vec<Master>, Vec<SubAccount>, Counters), StoreError> {
        let masters = self
            .query(
                "SELECT id, enterprise_code, acct_no, mirror, suspense, fee, in_transit FROM masters \
                 ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(Master {
                    id: r.try_get(0)?,
                    enterprise_code: r.try_get(1)?,
                    acct_no: r.try_get(2)?,
                    mirror: r.try_get(3)?,
                    suspense: r.try_get(4)?,
                    fee: r.try_get(5)?,
                    in_transit: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut subs = self
            .query(
                "SELECT id, master_id, sub_acct_no, member_code, member_name, global_type, \
                 global_id, mobile, balance, frozen, status FROM subs ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(SubAccount {
                    id: r.try_get(0)?,
                    master_id: r.try_get(1)?,
                    sub_acct_no: r.try_get(2)?,
                    member_code: r.try_get(3)?,
                    member_name: r.try_get(4)?,
                    global_type: r.try_get(5)?,
                    global_id: r.try_get(6)?,
                    mobile: r.try_get(7)?,
                    balance: r.try_get(8)?,
                    frozen: r.try_get(9)?,
                    status: SubStatus::from_code(r.try_get(10)?),
                    binding: None,
                    chunks_in_flight: 0,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let by_id: HashMap<i64, usize> = subs.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        for r in self.query(
            "SELECT sub_id, acct_no, acct_name, same_bank, branch_name, bank_code, verified, \
             auth_amount, attempts_left, verify_seq FROM bindings",
            &[],
        )? {
            let sub_id: i64 = r.try_get(0)?;
            let b = Binding {
                acct_no: r.try_get(1)?,
                acct_name: r.try_get(2)?,
                same_bank: r.try_get(3)?,
                branch_name: r.try_get(4)?,
                bank_code: r.try_get(5)?,
                verified: r.try_get(6)?,
                auth_amount: r.try_get(7)?,
                attempts_left: to_u32(r.try_get(8)?)?,
                verify_seq: r.try_get(9)?,
            };
            if let Some(s) = by_id.get(&sub_id).and_then(|i| subs.get_mut(*i)) {
                s.binding = Some(b);
            }
        }
        for r in self.query(
            "SELECT sub_id, COUNT(*) FROM instructions WHERE state = 'P' AND kind = 'C' \
             GROUP BY sub_id",
            &[],
        )? {
            let sub_id: i64 = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            if let Some(s) = by_id.get(&sub_id).and_then(|i| subs.get_mut(*i)) {
                s.chunks_in_flight = to_u32(n)?;
            }
        }
        let mut counters = Counters::default();
        for r in self.query("SELECT key, value FROM counters", &[])? {
            let k: String = r.try_get(0)?;
            let v = u64::try_from(r.try_get::<_, i64>(1)?)
                .map_err(|_| StoreError::Corrupt("negative counter"))?;
            match k.as_str() {
                "front_seq" => counters.front_seq = v,
                "sub_seq" => counters.sub_seq = v,
                "receipt_seq" => counters.receipt_seq = v,
                _ => {}
            }
        }
        Ok((masters, subs, counters))
    }

    /// Tenant leases currently held by live instances (docs/protocol.md §5). A tool that
    /// books outside a gateway (`reconcile`) must find none: its writer is not fenced.
    pub fn live_leases(&mut self) -> Result<i64, StoreError> {
        let row = self
            .query_opt(
                "SELECT count(*) FROM tenant_leases WHERE expires_at > now()",
                &[],
            )?
            .ok_or(StoreError::Corrupt("no count"))?;
        Ok(row.try_get(0)?)
    }

    /// Runs a query through the statement cache (prepared once per connection).
    fn query(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let Self {
            rt, client, stmts, ..
        } = self;
        rt.block_on(async {
            let st = prepared(client, stmts, sql).await?;
            Ok(client.query(&st, params).await?)
        })
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Sends `flushes` in one pipeline, preceded by `BEGIN` when no transaction is open and
    /// followed by `COMMIT` when `commit`. Every result is checked: one failure fails all.
    fn send(&mut self, flushes: Vec<Flush>, commit: bool) -> Result<(), StoreError> {
        let begin = !self.in_tx;
        let Self {
            rt, client, stmts, ..
        } = self;
        let result = rt.block_on(async {
            let mut prepared_stmts = Vec::with_capacity(flushes.len());
            for f in &flushes {
                prepared_stmts.push(prepared(client, stmts, f.sql).await?);
            }
            let params: Vec<Vec<Param<'_>>> = flushes
                .iter()
                .map(|f| {
                    f.params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect()
                })
                .collect();
            let client = &*client;
            let begin_fut = async {
                if begin {
                    client.batch_execute("BEGIN").await
                } else {
                    Ok(())
                }
            };
            let stmts_fut = futures_util::future::join_all(
                prepared_stmts
                    .iter()
                    .zip(params.iter())
                    .map(|(st, p)| client.execute(st, p)),
            );
            let commit_fut = async {
                if commit {
                    client.batch_execute("COMMIT").await
                } else {
                    Ok(())
                }
            };
            // Joined, the three are written in this order before any answer is awaited.
            let (b, results, c) = tokio::join!(begin_fut, stmts_fut, commit_fut);
            b?;
            for r in results {
                r?;
            }
            c?;
            Ok::<(), StoreError>(())
        });
        match result {
            Ok(()) => {
                self.in_tx = !commit;
                Ok(())
            }
            Err(e) => {
                // The transaction is aborted (or its COMMIT became a ROLLBACK): end it.
                let _ = self.rt.block_on(self.client.batch_execute("ROLLBACK"));
                self.in_tx = false;
                Err(e)
            }
        }
    }

    /// Sends the rows of requests already released in this batch inside the open
    /// transaction (before a query over many rows), keeping the open request's rows.
    fn flush_released(&mut self) -> Result<(), StoreError> {
        let (w, r) = match self.mark {
            Some(m) => (m.writes, m.requests),
            None => (self.pending.writes.len(), self.pending.requests.len()),
        };
        if w == 0 && r == 0 {
            return Ok(());
        }
        let writes: Vec<_> = self.pending.writes.drain(..w).collect();
        let requests: Vec<_> = self.pending.requests.drain(..r).collect();
        let mut flushes = Columns::gather(&writes).statements();
        flushes.extend(request_statement(&requests));
        if let Some(m) = &mut self.mark {
            m.writes = 0;
            m.requests = 0;
        }
        let sent = self.send(flushes, false);
        if sent.is_err() {
            // Released requests' rows are gone with the aborted transaction.
            self.poisoned = true;
        }
        sent
    }

    /// Buffered writes, newest last.
    fn buffered(&self) -> impl DoubleEndedIterator<Item = &Writes> {
        self.pending.writes.iter().map(|(_, _, w)| w)
    }

    /// The buffered state change of instruction `id`, if any (newest wins).
    fn buffered_instruction_update(&self, id: &str) -> Option<(InstructionState, String)> {
        self.buffered().rev().find_map(|w| {
            w.instruction_updates
                .iter()
                .rev()
                .find(|(i, _, _)| i == id)
                .map(|(_, s, r)| (*s, r.clone()))
        })
    }

    fn with_updates(&self, mut i: Instruction) -> Instruction {
        if i.state == InstructionState::Unresolved {
            if let Some((s, r)) = self.buffered_instruction_update(&i.id) {
                i.state = s;
                i.reject_code = r;
            }
        }
        i
    }

    fn chunks(&mut self, front_seq_no: &str) -> Result<Vec<Instruction>, StoreError> {
        const SQL: &str = "SELECT id, kind, front_seq_no, chunk_no, trade_code, payer_acct, \
             payee_acct, payee_name, payee_bank, amount, memo, state, reject_code, sub_id, \
             master_id FROM instructions WHERE front_seq_no = $1 ORDER BY chunk_no";
        let mut list = self
            .query(SQL, &[&front_seq_no])?
            .iter()
            .map(instruction_from)
            .collect::<Result<Vec<_>, _>>()?;
        for w in self.pending.writes.iter().map(|(_, _, w)| w) {
            list.extend(
                w.instructions
                    .iter()
                    .filter(|i| i.front_seq_no == front_seq_no)
                    .cloned(),
            );
        }
        list.sort_by_key(|i| i.chunk_no);
        Ok(list.into_iter().map(|i| self.with_updates(i)).collect())
    }

    fn withdrawal_row(&mut self, front_seq_no: &str) -> Result<Option<Withdrawal>, StoreError> {
        if let Some(w) = self.buffered().find_map(|w| {
            w.withdrawal
                .as_ref()
                .filter(|w| w.front_seq_no == front_seq_no)
        }) {
            return Ok(Some(w.clone()));
        }
        const SQL: &str = "SELECT front_seq_no, enterprise_code, serial, sub_id, master_id, \
             amount, fee, chunk_count FROM withdrawals WHERE front_seq_no = $1";
        self.query_opt(SQL, &[&front_seq_no])?
            .map(|r| withdrawal_from(&r))
            .transpose()
    }
}

impl Store for PgStore {
    /// Reads every account in one consistent snapshot (other instances may be committing).
    fn load(&mut self) -> Result<(Vec<Master>, Vec<SubAccount>, Counters), StoreError> {
        self.rt.block_on(
            self.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        )?;
        let loaded = self.load_snapshot();
        let end = if loaded.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.rt.block_on(self.client.batch_execute(end))?;
        loaded
    }

    fn provision_master(&mut self, enterprise_code: &str, acct_no: &str) -> Result<(), StoreError> {
        self.query(
            "INSERT INTO masters(enterprise_code, acct_no, mirror, suspense, fee, in_transit) \
             VALUES ($1, $2, 0, 0, 0, 0) ON CONFLICT(acct_no) DO NOTHING",
            &[&enterprise_code, &acct_no],
        )?;
        let owner: Option<String> = self
            .query_opt(
                "SELECT enterprise_code FROM masters WHERE acct_no = $1",
                &[&acct_no],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        match owner {
            Some(o) if o == enterprise_code => Ok(()),
            _ => Err(StoreError::Corrupt(
                "master account already provisioned for another enterprise",
            )),
        }
    }

    fn receipt_secret(&mut self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.query(
            "INSERT INTO meta_secret(key, value) VALUES ('receipt_secret', $1) \
             ON CONFLICT(key) DO NOTHING",
            &[&fresh],
        )?;
        let row = self
            .query_opt(
                "SELECT value FROM meta_secret WHERE key = 'receipt_secret'",
                &[],
            )?
            .ok_or(StoreError::Corrupt("receipt secret missing"))?;
        Ok(row.try_get(0)?)
    }

    fn prefetches(&self) -> bool {
        true
    }

    fn prefetch(&mut self, keys: &BatchKeys) -> Result<(), StoreError> {
        // One index probe per key (`LIMIT 1` keeps each probe a parameterised scan).
        const REQ: &str = "SELECT r.enterprise_code, r.serial, r.tx_code, r.fingerprint, \
             r.return_code, r.return_msg, r.body FROM unnest($1::text[], $2::text[]) AS k(e, s) \
             CROSS JOIN LATERAL (SELECT * FROM requests q WHERE q.enterprise_code = k.e \
             AND q.serial = k.s LIMIT 1) r";
        const ORD: &str =
            "SELECT o.enterprise_code, o.order_no FROM unnest($1::text[], $2::text[]) \
             AS k(e, n) CROSS JOIN LATERAL (SELECT * FROM orders p WHERE p.enterprise_code = k.e \
             AND p.order_no = k.n LIMIT 1) o";
        const NOT: &str = "SELECT bank_serial FROM notices WHERE bank_serial = ANY($1::text[])";
        if keys.requests.is_empty() && keys.orders.is_empty() && keys.notices.is_empty() {
            return Ok(());
        }
        let (re, rs): (Vec<String>, Vec<String>) = keys.requests.iter().cloned().unzip();
        let (oe, on): (Vec<String>, Vec<String>) = keys.orders.iter().cloned().unzip();
        let ns = keys.notices.clone();
        let Self {
            rt, client, stmts, ..
        } = self;
        let (requests, orders, notices) = rt.block_on(async {
            let mut st = Vec::new();
            for sql in [REQ, ORD, NOT] {
                st.push(prepared(client, stmts, sql).await?);
            }
            let client = &*client;
            let (p0, p1, p2): ([Param<'_>; 2], [Param<'_>; 2], [Param<'_>; 1]) =
                ([&re, &rs], [&oe, &on], [&ns]);
            // Joined: the three queries go out in one write and come back in one round trip.
            let (a, b, c) = tokio::join!(
                client.query(&st[0], &p0),
                client.query(&st[1], &p1),
                client.query(&st[2], &p2)
            );
            Ok::<_, StoreError>((a?, b?, c?))
        })?;
        let k = &mut self.known;
        for key in &keys.requests {
            k.requests.insert(key.clone(), None);
        }
        for r in requests {
            let key: (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let stored = StoredRequest {
                enterprise_code: key.0.clone(),
                serial: key.1.clone(),
                tx_code: r.try_get(2)?,
                fingerprint: r.try_get(3)?,
                return_code: r.try_get(4)?,
                return_msg: r.try_get(5)?,
                body: r.try_get(6)?,
            };
            k.requests.insert(key, Some(stored));
        }
        for key in &keys.orders {
            k.orders.insert(key.clone(), false);
        }
        for r in orders {
            k.orders.insert((r.try_get(0)?, r.try_get(1)?), true);
        }
        for n in &keys.notices {
            k.notices.insert(n.clone(), false);
        }
        for r in notices {
            k.notices.insert(r.try_get(0)?, true);
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            // The server went away (restart, failover to a standby): a batch whose commit
            // was in flight was answered YQ9999 / 1003; reconnect for this one.
            tracing::warn!("postgres connection lost; reconnecting");
            self.client = self.rt.block_on(connect(&self.url))?;
            self.stmts.clear();
            self.in_tx = false;
        }
        self.fence = None;
        self.known = Known::default();
        self.pending = Pending::default();
        self.mark = None;
        self.poisoned = false;
        if self.in_tx {
            let _ = self.rt.block_on(self.client.batch_execute("ROLLBACK"));
            self.in_tx = false;
        }
        Ok(())
    }
    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.mark = Some(Mark {
            writes: self.pending.writes.len(),
            requests: self.pending.requests.len(),
        });
        Ok(())
    }
    fn release(&mut self) -> Result<(), StoreError> {
        self.mark = None;
        Ok(())
    }
    fn rollback_to(&mut self) -> Result<(), StoreError> {
        if let Some(m) = self.mark.take() {
            self.pending.writes.truncate(m.writes);
            self.pending.requests.truncate(m.requests);
        }
        Ok(())
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        self.known = Known::default();
        let p = std::mem::take(&mut self.pending);
        self.mark = None;
        if std::mem::take(&mut self.poisoned) {
            return Err(StoreError::Poisoned);
        }
        let mut flushes = Vec::new();
        // First in the transaction: the lease rows stay share-locked until COMMIT, so a
        // takeover (which updates them) waits for this batch or makes it fail here.
        if let Some((owner, tenants, epochs)) = self.fence.take() {
            flushes.push(Flush {
                sql: "SELECT bankfep_fence($1, $2::text[], $3::bigint[])",
                params: vec![boxed(owner), boxed(tenants), boxed(epochs)],
            });
        }
        flushes.extend(Columns::gather(&p.writes).statements());
        flushes.extend(request_statement(&p.requests));
        flushes.extend(account_statements(&p.masters, &p.subs));
        if flushes.is_empty() && !self.in_tx {
            return Ok(());
        }
        self.send(flushes, true)
    }
    fn rollback(&mut self) -> Result<(), StoreError> {
        self.fence = None;
        self.known = Known::default();
        self.pending = Pending::default();
        self.mark = None;
        self.poisoned = false;
        if self.in_tx {
            self.rt.block_on(self.client.batch_execute("ROLLBACK"))?;
            self.in_tx = false;
        }
        Ok(())
    }

    fn request(
        &mut self,
        enterprise_code: &str,
        serial: &str,
    ) -> Result<Option<StoredRequest>, StoreError> {
        if let Some(r) = self
            .pending
            .requests
            .iter()
            .rev()
            .find(|r| r.serial == serial && r.enterprise_code == enterprise_code)
        {
            return Ok(Some(r.clone()));
        }
        if let Some(k) = self
            .known
            .requests
            .get(&(enterprise_code.to_string(), serial.to_string()))
        {
            return Ok(k.clone());
        }
        let row = self.query_opt(
            "SELECT tx_code, fingerprint, return_code, return_msg, body FROM requests \
             WHERE enterprise_code = $1 AND serial = $2",
            &[&enterprise_code, &serial],
        )?;
        row.map(|r| {
            Ok(StoredRequest {
                enterprise_code: enterprise_code.to_string(),
                serial: serial.to_string(),
                tx_code: r.try_get(0)?,
                fingerprint: r.try_get(1)?,
                return_code: r.try_get(2)?,
                return_msg: r.try_get(3)?,
                body: r.try_get(4)?,
            })
        })
        .transpose()
    }

    fn order_used(&mut self, enterprise_code: &str, order_no: &str) -> Result<bool, StoreError> {
        if self
            .pending
            .writes
            .iter()
            .any(|(e, _, w)| e == enterprise_code && w.order_no.as_deref() == Some(order_no))
        {
            return Ok(true);
        }
        if let Some(k) = self
            .known
            .orders
            .get(&(enterprise_code.to_string(), order_no.to_string()))
        {
            return Ok(*k);
        }
        Ok(self
            .query_opt(
                "SELECT 1 FROM orders WHERE enterprise_code = $1 AND order_no = $2",
                &[&enterprise_code, &order_no],
            )?
            .is_some())
    }

    fn notice_seen(&mut self, bank_serial: &str) -> Result<bool, StoreError> {
        if self
            .buffered()
            .any(|w| w.notice.as_ref().is_some_and(|(b, _)| b == bank_serial))
        {
            return Ok(true);
        }
        if let Some(k) = self.known.notices.get(bank_serial) {
            return Ok(*k);
        }
        Ok(self
            .query_opt(
                "SELECT 1 FROM notices WHERE bank_serial = $1",
                &[&bank_serial],
            )?
            .is_some())
    }

    fn credit(&mut self, front_seq_no: &str) -> Result<Option<CreditRow>, StoreError> {
        let buffered = self.buffered().find_map(|w| {
            w.credits
                .iter()
                .find(|c| c.front_seq_no == front_seq_no)
                .cloned()
        });
        let row = match buffered {
            Some(c) => Some(c),
            None => {
                const SQL: &str = "SELECT front_seq_no, master_id, in_acct_type, sub_acct_no, \
                     amount, unallocated, payer_acct, payer_name, acct_date, remark FROM credits \
                     WHERE front_seq_no = $1";
                self.query_opt(SQL, &[&front_seq_no])?
                    .map(|r| credit_from(&r))
                    .transpose()?
            }
        };
        Ok(row.map(|mut c| {
            if let Some(u) = self.buffered().rev().find_map(|w| {
                w.credit_updates
                    .iter()
                    .rev()
                    .find(|(s, _)| s == front_seq_no)
                    .map(|(_, u)| *u)
            }) {
                c.unallocated = u;
            }
            c
        }))
    }

    fn entries_page(
        &mut self,
        sub_id: i64,
        start: u32,
        end: u32,
        page: u32,
        rows: u32,
    ) -> Result<(u64, Vec<Entry>), StoreError> {
        self.flush_released()?;
        let (s, e) = (i64::from(start), i64::from(end));
        let total: i64 = self
            .query_opt(
                "SELECT COUNT(*) FROM entries WHERE sub_id = $1 AND acct_date BETWEEN $2 AND $3",
                &[&sub_id, &s, &e],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let limit = i64::from(rows);
        let offset = i64::from(page.saturating_sub(1)) * limit;
        let list = self
            .query(
                "SELECT front_seq_no, acct_date, time, booking_type, dc, amount, balance_after, \
                 peer_acct, remark FROM entries WHERE sub_id = $1 AND acct_date BETWEEN $2 AND $3 \
                 ORDER BY acct_date, id LIMIT $4 OFFSET $5",
                &[&sub_id, &s, &e, &limit, &offset],
            )?
            .iter()
            .map(|r| {
                let bt: String = r.try_get(3)?;
                let dc: String = r.try_get(4)?;
                Ok(Entry {
                    sub_id,
                    front_seq_no: r.try_get(0)?,
                    acct_date: to_u32(r.try_get(1)?)?,
                    time: r.try_get(2)?,
                    booking_type: booking_from(&bt),
                    dc: if dc == "C" { 'C' } else { 'D' },
                    amount: r.try_get(5)?,
                    balance_after: r.try_get(6)?,
                    peer_acct: r.try_get(7)?,
                    remark: r.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
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
        self.flush_released()?;
        let (s, e) = (i64::from(start), i64::from(end));
        let ids = master_ids.to_vec();
        let total: i64 = self
            .query_opt(
                "SELECT COUNT(*) FROM credits WHERE master_id = ANY($1) AND acct_date BETWEEN $2 AND $3",
                &[&ids, &s, &e],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let limit = i64::from(rows);
        let offset = i64::from(page.saturating_sub(1)) * limit;
        let list = self
            .query(
                "SELECT front_seq_no, master_id, in_acct_type, sub_acct_no, amount, unallocated, \
                 payer_acct, payer_name, acct_date, remark FROM credits WHERE master_id = ANY($1) \
                 AND acct_date BETWEEN $2 AND $3 ORDER BY acct_date, seq LIMIT $4 OFFSET $5",
                &[&ids, &s, &e, &limit, &offset],
            )?
            .iter()
            .map(credit_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((u64::try_from(total).unwrap_or(0), list))
    }

    fn receipt(&mut self, front_seq_no: &str) -> Result<Option<ReceiptRow>, StoreError> {
        if let Some(r) = self.buffered().find_map(|w| {
            w.receipts
                .iter()
                .find(|r| r.front_seq_no == front_seq_no)
                .cloned()
        }) {
            return Ok(Some(r));
        }
        const SQL: &str = "SELECT front_seq_no, master_id, receipt_no, check_code, booking_date, \
             payer_acct, payer_name, payee_acct, payee_name, amount, summary FROM receipts \
             WHERE front_seq_no = $1";
        self.query_opt(SQL, &[&front_seq_no])?
            .map(|r| receipt_from(&r))
            .transpose()
    }

    fn receipt_by_no(&mut self, receipt_no: &str) -> Result<Option<ReceiptRow>, StoreError> {
        const SQL: &str = "SELECT front_seq_no, master_id, receipt_no, check_code, booking_date, \
             payer_acct, payer_name, payee_acct, payee_name, amount, summary FROM receipts \
             WHERE receipt_no = $1";
        self.query_opt(SQL, &[&receipt_no])?
            .map(|r| receipt_from(&r))
            .transpose()
    }

    fn receipt_by_code_and_account(
        &mut self,
        check_code: &str,
        sub_acct_no: &str,
        recent: u32,
    ) -> Result<Option<ReceiptRow>, StoreError> {
        // Through the sub-account's latest entries (index entries_by_sub) to the receipts'
        // primary key, as on the embedded store: no index on the random codes.
        const SQL: &str = "SELECT front_seq_no, master_id, receipt_no, check_code, booking_date, \
             payer_acct, payer_name, payee_acct, payee_name, amount, summary FROM receipts \
             WHERE front_seq_no IN (SELECT e.front_seq_no FROM entries e JOIN subs s \
             ON e.sub_id = s.id WHERE s.sub_acct_no = $2 \
             ORDER BY e.acct_date DESC, e.id DESC LIMIT $3) \
             AND check_code = $1 AND (payer_acct = $2 OR payee_acct = $2) LIMIT 1";
        let limit = i64::from(recent);
        self.query_opt(SQL, &[&check_code, &sub_acct_no, &limit])?
            .map(|r| receipt_from(&r))
            .transpose()
    }

    fn instruction(&mut self, id: &str) -> Result<Option<Instruction>, StoreError> {
        let buffered = self
            .buffered()
            .find_map(|w| w.instructions.iter().find(|i| i.id == id).cloned());
        let found = match buffered {
            Some(i) => Some(i),
            None => {
                const SQL: &str = "SELECT id, kind, front_seq_no, chunk_no, trade_code, \
                     payer_acct, payee_acct, payee_name, payee_bank, amount, memo, state, \
                     reject_code, sub_id, master_id FROM instructions WHERE id = $1";
                self.query_opt(SQL, &[&id])?
                    .map(|r| instruction_from(&r))
                    .transpose()?
            }
        };
        Ok(found.map(|i| self.with_updates(i)))
    }

    fn withdrawal(
        &mut self,
        front_seq_no: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError> {
        let Some(w) = self.withdrawal_row(front_seq_no)? else {
            return Ok(None);
        };
        let chunks = self.chunks(front_seq_no)?;
        Ok(Some((w, chunks)))
    }

    fn withdrawal_refund_facts(
        &mut self,
        front_seq_no: &str,
        except_id: &str,
    ) -> Result<Option<(Withdrawal, bool)>, StoreError> {
        let Some(w) = self.withdrawal_row(front_seq_no)? else {
            return Ok(None);
        };
        // Chunks not failed in the database, corrected by this batch's buffered updates.
        let rows = self.query(
            "SELECT id FROM instructions WHERE front_seq_no = $1 AND id <> $2 AND state <> 'F'",
            &[&front_seq_no, &except_id],
        )?;
        let mut open = 0usize;
        for r in rows {
            let id: String = r.try_get(0)?;
            match self.buffered_instruction_update(&id) {
                Some((InstructionState::Failed, _)) => {}
                _ => open += 1,
            }
        }
        let buffered_open = self
            .buffered()
            .flat_map(|w| w.instructions.iter())
            .filter(|i| i.front_seq_no == front_seq_no && i.id != except_id)
            .filter(|i| {
                !matches!(
                    self.buffered_instruction_update(&i.id),
                    Some((InstructionState::Failed, _))
                ) && i.state != InstructionState::Failed
            })
            .count();
        Ok(Some((w, open + buffered_open == 0)))
    }

    fn withdrawal_by_serial(
        &mut self,
        enterprise_code: &str,
        serial: &str,
    ) -> Result<Option<(Withdrawal, Vec<Instruction>)>, StoreError> {
        let buffered = self.buffered().find_map(|w| {
            w.withdrawal
                .as_ref()
                .filter(|w| w.enterprise_code == enterprise_code && w.serial == serial)
                .map(|w| w.front_seq_no.clone())
        });
        let seq = match buffered {
            Some(s) => Some(s),
            None => self
                .query_opt(
                    "SELECT front_seq_no FROM withdrawals WHERE enterprise_code = $1 AND serial = $2",
                    &[&enterprise_code, &serial],
                )?
                .map(|r| r.try_get(0))
                .transpose()?,
        };
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
        // Keyset pages of 50,000 in key order: bounded memory however many keys there are.
        const REQ: &str = "SELECT enterprise_code, serial FROM requests \
             WHERE (enterprise_code, serial) > ($1, $2) \
             AND ($3::text IS NULL OR enterprise_code = $3) \
             ORDER BY enterprise_code, serial LIMIT 50000";
        const ORD: &str = "SELECT enterprise_code, order_no FROM orders \
             WHERE (enterprise_code, order_no) > ($1, $2) \
             AND ($3::text IS NULL OR enterprise_code = $3) \
             ORDER BY enterprise_code, order_no LIMIT 50000";
        let only: Option<String> = enterprise.map(str::to_string);
        for (kind, sql) in [(KeyKind::Request, REQ), (KeyKind::Order, ORD)] {
            let (mut after_e, mut after_k) = (String::new(), String::new());
            loop {
                let rows = self.query(sql, &[&after_e, &after_k, &only])?;
                for r in &rows {
                    let (e, k): (&str, &str) = (r.try_get(0)?, r.try_get(1)?);
                    f(kind, e, k);
                }
                match rows.last() {
                    Some(r) if rows.len() == 50_000 => {
                        after_e = r.try_get(0)?;
                        after_k = r.try_get(1)?;
                    }
                    _ => break,
                }
            }
        }
        Ok(true)
    }

    fn unresolved_instructions(&mut self) -> Result<Vec<Instruction>, StoreError> {
        const SQL: &str = "SELECT id, kind, front_seq_no, chunk_no, trade_code, payer_acct, \
             payee_acct, payee_name, payee_bank, amount, memo, state, reject_code, sub_id, \
             master_id FROM instructions WHERE state = 'P' ORDER BY seq";
        self.query(SQL, &[])?.iter().map(instruction_from).collect()
    }

    /// Reads in one `REPEATABLE READ` snapshot (other instances may be committing).
    fn statement_source(
        &mut self,
        master_acct: &str,
        date: u32,
    ) -> Result<Option<super::StatementSource>, StoreError> {
        self.rt.block_on(
            self.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        )?;
        let read = self.statement_snapshot(master_acct, i64::from(date));
        let end = if read.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.rt.block_on(self.client.batch_execute(end))?;
        read
    }

    fn instructions_of_date(&mut self, date: &str) -> Result<Vec<Instruction>, StoreError> {
        const SQL: &str = "SELECT id, kind, front_seq_no, chunk_no, trade_code, payer_acct, \
             payee_acct, payee_name, payee_bank, amount, memo, state, reject_code, sub_id, \
             master_id FROM instructions WHERE left(front_seq_no, 8) = $1 ORDER BY seq";
        self.query(SQL, &[&date])?
            .iter()
            .map(instruction_from)
            .collect()
    }

    fn append(
        &mut self,
        enterprise_code: &str,
        front_seq_no: Option<&str>,
        w: &Writes,
    ) -> Result<(), StoreError> {
        // The accounts' post-images come once per batch through `write_accounts`: not kept
        // per request.
        let rows = Writes {
            masters: Vec::new(),
            subs: Vec::new(),
            postings: w.postings.clone(),
            booking_date: w.booking_date,
            entries: w.entries.clone(),
            credits: w.credits.clone(),
            credit_updates: w.credit_updates.clone(),
            receipts: w.receipts.clone(),
            order_no: w.order_no.clone(),
            notice: w.notice.clone(),
            counters: w.counters,
            bindings: w.bindings.clone(),
            instructions: w.instructions.clone(),
            instruction_updates: w.instruction_updates.clone(),
            withdrawal: w.withdrawal.clone(),
        };
        self.pending.writes.push((
            enterprise_code.to_string(),
            front_seq_no.map(str::to_string),
            rows,
        ));
        Ok(())
    }

    fn record_request(&mut self, r: &StoredRequest) -> Result<(), StoreError> {
        self.pending.requests.push(r.clone());
        Ok(())
    }

    fn write_accounts(
        &mut self,
        masters: &[&Master],
        subs: &[&SubAccount],
    ) -> Result<(), StoreError> {
        self.pending.masters = masters.iter().map(|m| (*m).clone()).collect();
        self.pending.subs = subs.iter().map(|s| (*s).clone()).collect();
        Ok(())
    }

    fn save_counters(&mut self, c: &Counters) -> Result<(), StoreError> {
        // Counters live in reserved blocks (`reserve_counters`), durable before use.
        let _ = c;
        Ok(())
    }

    fn reserve_counters(&mut self, n: u64) -> Result<Option<Counters>, StoreError> {
        let n = i64::try_from(n).map_err(|_| StoreError::Corrupt("counter block too large"))?;
        let rows = self.query(
            "UPDATE counters SET value = value + $1 \
             WHERE key IN ('front_seq', 'sub_seq', 'receipt_seq') RETURNING key, value",
            &[&n],
        )?;
        let mut top = Counters::default();
        for r in rows {
            let k: String = r.try_get(0)?;
            let v = u64::try_from(r.try_get::<_, i64>(1)?)
                .map_err(|_| StoreError::Corrupt("negative counter"))?;
            match k.as_str() {
                "front_seq" => top.front_seq = v,
                "sub_seq" => top.sub_seq = v,
                _ => top.receipt_seq = v,
            }
        }
        Ok(Some(top))
    }

    fn set_fence(&mut self, owner: &str, tenants: &[(String, i64)]) {
        let (t, e): (Vec<String>, Vec<i64>) = tenants.iter().cloned().unzip();
        self.fence = Some((owner.to_string(), t, e));
    }
}
