//! Reconciliation with the rail's day files (对账, docs/protocol.md §3.2): `bankfep reconcile
//! --date yyyyMMdd`.
//!
//! For every payer account the gateway uses (each master account of the store and the
//! bank's expense account) the file `RAIL_{payer}_{yyyyMMdd}.txt` is read from the rail files
//! folder and checked strictly (header, lines, trailer, counts and totals); a missing or
//! malformed file stops the run ([`ReconcileError`], exit 2), never read as "no breaks".
//!
//! Every line of the files and every instruction the gateway created that day is classified
//! ([`Kind`]):
//! - matched: same status, amount and payee on both sides;
//! - booked: the gateway still held the instruction as unknown (`P`); the file is final
//!   evidence and its outcome is booked through the writer exactly as a `7003` answer
//!   (`Job::Rail`, the same decision, refunds included); a later run finds it matched;
//! - 长款 (`long`): the rail settled, the gateway did not (failed, or holds no such
//!   instruction);
//! - 短款 (`short`): the gateway settled, the rail failed it or has no line for it;
//! - amount or payee differs;
//! - `decided_later`: created on the date, absent from its files, present in the file of a
//!   later date found in the folder (decided by the rail after midnight): not a break;
//! - `pending`: the gateway still holds it as unknown and no file has it yet: not a break.
//!
//! Breaks are never corrected. One core ([`run`]) works over either [`Source`]: a store the
//! caller opened alone (`bankfep reconcile`: the embedded store's folder lock refuses while a
//! gateway holds the folder), or the running gateway's writer ([`Live`]: the daily run of
//! [`spawn_daily`] and `POST /ops/reconcile`). Amounts are integer fen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ledger::{Instruction, InstructionState, RailOutcome};
use crate::money::Fen;

/// One `D` line of a day file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayLine {
    /// Instruction id.
    pub id: String,
    /// `7001` or `7002`.
    pub trade_code: String,
    /// `true` for `S`, `false` for `F`.
    pub settled: bool,
    /// Reject code of an `F` (empty for `S`).
    pub reject_code: String,
    /// Payee account.
    pub payee_acct: String,
    /// Amount, fen.
    pub amount: Fen,
    /// The rail's reference.
    pub rail_ref: String,
    /// Decision time `HHmmss`.
    pub time: String,
}

/// A day file, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayFile {
    /// Payer account.
    pub payer: String,
    /// Lines in the order received by the rail.
    pub lines: Vec<DayLine>,
}

/// Why reconciliation could not be done (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A payer's file is not in the folder.
    #[error("missing day file {0}")]
    Missing(PathBuf),
    /// A file does not follow docs/protocol.md §3.2.
    #[error("malformed day file {path}, line {line}: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Line number from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The store, the writer or an output file failed.
    #[error("{0}")]
    Other(String),
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn fen(s: &str) -> Option<Fen> {
    if !digits(s) || s.len() > 18 {
        return None;
    }
    s.parse().ok()
}

/// Parses and checks the day file `bytes` (GBK) of `payer` for `date` (`yyyyMMdd`).
///
/// Errors: [`ReconcileError::Malformed`] naming the line: not GBK, a missing `\n` at the end,
/// a wrong header (date, payer), a line of another kind or field count, a status other than
/// `S`/`F`, a non-numeric amount, a duplicate id, a trailer or header whose counts or totals
/// disagree with the lines.
pub fn parse_day_file(
    path: &Path,
    bytes: &[u8],
    payer: &str,
    date: &str,
) -> Result<DayFile, ReconcileError> {
    let bad = |line: usize, why: String| ReconcileError::Malformed {
        path: path.to_path_buf(),
        line,
        why,
    };
    let (text, _, had_errors) = encoding_rs::GBK.decode(bytes);
    if had_errors {
        return Err(bad(0, "not GBK".into()));
    }
    let Some(body) = text.strip_suffix('\n') else {
        return Err(bad(0, "does not end with \\n".into()));
    };
    let rows: Vec<&str> = body.split('\n').collect();
    if rows.len() < 2 {
        return Err(bad(1, "needs a header and a trailer".into()));
    }
    let h: Vec<&str> = rows[0].split('|').collect();
    if h.len() != 5 || h[0] != "H" {
        return Err(bad(1, "header must be H|date|payer|count|total".into()));
    }
    if h[1] != date || h[2] != payer {
        return Err(bad(1, format!("header is for {} {}", h[1], h[2])));
    }
    let (Some(h_count), Some(h_total)) = (fen(h[3]), fen(h[4])) else {
        return Err(bad(1, "header count and total must be digits".into()));
    };
    let mut lines = Vec::new();
    let mut seen = HashSet::new();
    let last = rows.len() - 1;
    for (n, row) in rows.iter().enumerate().take(last).skip(1) {
        let f: Vec<&str> = row.split('|').collect();
        if f.len() != 9 || f[0] != "D" {
            return Err(bad(
                n + 1,
                "detail must have 9 fields starting with D".into(),
            ));
        }
        let settled = match f[3] {
            "S" => true,
            "F" => false,
            other => return Err(bad(n + 1, format!("status {other:?} is not S or F"))),
        };
        if settled != f[4].is_empty() {
            return Err(bad(n + 1, "a reject code goes with F only".into()));
        }
        if f[1].is_empty() || f[1].len() > 32 || !seen.insert(f[1].to_owned()) {
            return Err(bad(
                n + 1,
                format!("instruction id {:?} empty, long or repeated", f[1]),
            ));
        }
        if f[2] != "7001" && f[2] != "7002" {
            return Err(bad(n + 1, format!("trade code {:?}", f[2])));
        }
        let Some(amount) = fen(f[6]).filter(|a| *a > 0) else {
            return Err(bad(n + 1, format!("amount {:?} is not fen", f[6])));
        };
        if f[7].len() > 32 || f[8].len() != 6 || !digits(f[8]) {
            return Err(bad(n + 1, "rail reference or time malformed".into()));
        }
        lines.push(DayLine {
            id: f[1].to_owned(),
            trade_code: f[2].to_owned(),
            settled,
            reject_code: f[4].to_owned(),
            payee_acct: f[5].to_owned(),
            amount,
            rail_ref: f[7].to_owned(),
            time: f[8].to_owned(),
        });
    }
    let t: Vec<&str> = rows[last].split('|').collect();
    if t.len() != 4 || t[0] != "T" {
        return Err(bad(
            last + 1,
            "trailer must be T|count|settled|total".into(),
        ));
    }
    let settled: Vec<&DayLine> = lines.iter().filter(|l| l.settled).collect();
    let total = settled
        .iter()
        .try_fold(0 as Fen, |acc, l| acc.checked_add(l.amount))
        .ok_or_else(|| bad(last + 1, "total overflows".into()))?;
    let n = lines.len() as i64;
    let counts = (fen(t[1]), fen(t[2]), fen(t[3]));
    if counts != (Some(n), Some(settled.len() as i64), Some(total))
        || h_count != n
        || h_total != total
    {
        return Err(bad(
            last + 1,
            format!(
                "counts or totals disagree with the lines ({n} lines, {} settled, {total} fen)",
                settled.len()
            ),
        ));
    }
    Ok(DayFile {
        payer: payer.to_owned(),
        lines,
    })
}

/// The class of an instruction or a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Same on both sides.
    Matched,
    /// The gateway held it as unknown; the file's outcome was booked (not a break).
    Booked,
    /// The gateway holds it as unknown and the rail has no line for it yet (not a break:
    /// still being queried; carried to a later day).
    Pending,
    /// Created on the date but absent from its file and present in the file of a later day
    /// (decided by the rail after the cut-off, docs/protocol.md §3.2: "an instruction appears
    /// once, in the file of the day it was finally decided"): not a break here, reconciled
    /// by the run of that later day.
    Later,
    /// The gateway failed it and the rail has no line (no money moved on either side).
    FailedNotAtRail,
    /// 长款: the rail settled, the gateway did not.
    Long,
    /// 短款: the gateway settled, the rail did not or has no line.
    Short,
    /// The rail refused an id the gateway does not hold.
    UnknownToGateway,
    /// The amounts differ.
    AmountDiffers,
    /// The payee accounts differ.
    PayeeDiffers,
}

impl Kind {
    /// Name in the report and the breaks file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Matched => "matched",
            Kind::Booked => "booked_from_file",
            Kind::Pending => "pending",
            Kind::Later => "decided_later",
            Kind::FailedNotAtRail => "failed_not_at_rail",
            Kind::Long => "long_长款",
            Kind::Short => "short_短款",
            Kind::UnknownToGateway => "unknown_to_gateway",
            Kind::AmountDiffers => "amount_differs",
            Kind::PayeeDiffers => "payee_differs",
        }
    }

    /// Whether it is a break to investigate.
    pub fn is_break(self) -> bool {
        matches!(
            self,
            Kind::Long
                | Kind::Short
                | Kind::UnknownToGateway
                | Kind::AmountDiffers
                | Kind::PayeeDiffers
        )
    }
}

/// One classified instruction or line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Class.
    pub kind: Kind,
    /// Instruction id.
    pub id: String,
    /// Payer account.
    pub payer: String,
    /// Gateway status letter (`S`, `F`, `P`, or empty when it has no such instruction).
    pub gateway_status: String,
    /// Rail status letter (`S`, `F`, or empty when no line).
    pub rail_status: String,
    /// Gateway amount, fen (0 when absent).
    pub gateway_amount: Fen,
    /// Rail amount, fen (0 when no line).
    pub rail_amount: Fen,
    /// Gateway payee.
    pub gateway_payee: String,
    /// Rail payee.
    pub rail_payee: String,
}

fn letter(s: InstructionState) -> &'static str {
    s.letter()
}

/// Classifies the gateway's instructions `ours` (those created on the date, plus any named by
/// a line, by id) against `files` (the date's). `later` holds the ids that have a line in a
/// file of a later date present in the folder: an instruction created on the date, absent
/// from its files and in `later`, is [`Kind::Later`], never 短款. Returns the items and the
/// outcomes to book (instructions the gateway holds as unknown and the file decides).
pub fn classify(
    files: &[DayFile],
    ours: &HashMap<String, Instruction>,
    created_that_day: &[String],
    later: &HashSet<String>,
) -> (Vec<Item>, Vec<RailOutcome>) {
    let mut items = Vec::new();
    let mut book = Vec::new();
    let mut in_files = HashSet::new();
    for f in files {
        for l in &f.lines {
            in_files.insert(l.id.clone());
            let rail_status = if l.settled { "S" } else { "F" }.to_owned();
            let mut item = Item {
                kind: Kind::Matched,
                id: l.id.clone(),
                payer: f.payer.clone(),
                gateway_status: String::new(),
                rail_status,
                gateway_amount: 0,
                rail_amount: l.amount,
                gateway_payee: String::new(),
                rail_payee: l.payee_acct.clone(),
            };
            let Some(g) = ours.get(&l.id) else {
                // The rail holds an id the gateway does not: settled, money left the
                // account unbooked (长款); refused, no money moved but still unexplained.
                item.kind = if l.settled {
                    Kind::Long
                } else {
                    Kind::UnknownToGateway
                };
                items.push(item);
                continue;
            };
            item.gateway_status = letter(g.state).to_owned();
            item.gateway_amount = g.amount;
            item.gateway_payee = g.payee_acct.clone();
            item.kind = if g.amount != l.amount {
                Kind::AmountDiffers
            } else if g.payee_acct != l.payee_acct || g.payer_acct != f.payer {
                Kind::PayeeDiffers
            } else {
                match (g.state, l.settled) {
                    (InstructionState::Unresolved, _) => {
                        book.push(RailOutcome {
                            instruction_id: g.id.clone(),
                            settled: l.settled,
                            reject_code: l.reject_code.clone(),
                        });
                        Kind::Booked
                    }
                    (InstructionState::Settled, true) | (InstructionState::Failed, false) => {
                        Kind::Matched
                    }
                    (InstructionState::Failed, true) => Kind::Long,
                    (InstructionState::Settled, false) => Kind::Short,
                }
            };
            items.push(item);
        }
    }
    for id in created_that_day {
        if in_files.contains(id) {
            continue;
        }
        let Some(g) = ours.get(id) else { continue };
        let kind = match g.state {
            _ if later.contains(id) => Kind::Later,
            InstructionState::Settled => Kind::Short,
            InstructionState::Unresolved => Kind::Pending,
            InstructionState::Failed => Kind::FailedNotAtRail,
        };
        items.push(Item {
            kind,
            id: g.id.clone(),
            payer: g.payer_acct.clone(),
            gateway_status: letter(g.state).to_owned(),
            rail_status: String::new(),
            gateway_amount: g.amount,
            rail_amount: 0,
            gateway_payee: g.payee_acct.clone(),
            rail_payee: String::new(),
        });
    }
    (items, book)
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Business date `yyyyMMdd`.
    pub date: String,
    /// Every classified item.
    pub items: Vec<Item>,
    /// The human summary (also written to `reconcile_{date}.txt`).
    pub summary: String,
    /// The breaks file written (`breaks_{date}.csv`).
    pub breaks_path: PathBuf,
}

impl Report {
    /// Number of breaks.
    pub fn breaks(&self) -> usize {
        self.items.iter().filter(|i| i.kind.is_break()).count()
    }
}

/// Where and what to reconcile.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Business date `yyyyMMdd`.
    pub date: String,
    /// Folder of the rail's day files.
    pub files_dir: PathBuf,
    /// Folder of the report and breaks file (created if missing).
    pub out_dir: PathBuf,
    /// The bank's expense account (its file is read too).
    pub expense_account: String,
}

/// The newest reconciliation in `dir` (`breaks_{yyyyMMdd}.csv` files written by
/// `bankfep reconcile`): its date and how many breaks remained, for `/metrics`. `None` when
/// no breaks file is there.
pub fn latest_breaks(dir: &std::path::Path) -> Option<(String, usize)> {
    let newest = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let date = name
                .strip_prefix("breaks_")?
                .strip_suffix(".csv")?
                .to_owned();
            (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())).then_some(date)
        })
        .max()?;
    let text = std::fs::read_to_string(dir.join(format!("breaks_{newest}.csv"))).ok()?;
    let rows = text.lines().skip(1).filter(|l| !l.is_empty()).count();
    Some((newest, rows))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Header of the breaks file (CSV, UTF-8).
pub const BREAKS_HEADER: &str = "kind,instruction_id,payer_acct,gateway_status,rail_status,\
gateway_amount_fen,rail_amount_fen,gateway_payee,rail_payee";

/// Where a reconciliation reads the store and books the outcomes the files decide.
pub enum Source {
    /// A store the caller opened and holds alone (`bankfep reconcile`: the embedded store's
    /// folder lock, or a database no gateway holds a lease on). It is read directly; a writer
    /// is started over it only when there is something to book.
    Opened(Box<dyn crate::store::Store>),
    /// The running gateway's writer (the daily run inside `serve`, `POST /ops/reconcile`):
    /// reads go through [`crate::http::read_store`] (the gateway's reader thread), bookings
    /// through the writer as [`crate::writer::Job::Rail`], exactly as a `7003` answer.
    Live(crate::writer::WriterHandle),
}

/// Longest wait for one read through a live writer (instructions of a whole day).
const LIVE_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A [`Source`] during a run: the opened store is lent to blocking reads one at a time.
enum Reader {
    Opened(Option<Box<dyn crate::store::Store>>),
    Live(crate::writer::WriterHandle),
}

impl Reader {
    async fn read<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn crate::store::Store) -> Result<T, crate::store::StoreError>
            + Send
            + 'static,
    ) -> Result<T, ReconcileError> {
        let other = |e: String| ReconcileError::Other(e);
        match self {
            Reader::Opened(slot) => {
                let mut store = slot.take().ok_or_else(|| other("store lost".into()))?;
                let (store, out) = tokio::task::spawn_blocking(move || {
                    let out = f(&mut *store);
                    (store, out)
                })
                .await
                .map_err(|e| other(e.to_string()))?;
                *slot = Some(store);
                out.map_err(|e| other(e.to_string()))
            }
            Reader::Live(w) => crate::http::read_store(w, LIVE_READ_WAIT, f)
                .await
                .ok_or_else(|| other("the gateway's writer did not answer".into()))?
                .map_err(|e| other(e.to_string())),
        }
    }
}

/// The day files of `payer` for dates after `date` present in `dir`, checked; for the ids
/// decided on a later day (docs/protocol.md §3.2).
///
/// Errors: a later file that is malformed ([`ReconcileError::Malformed`]).
fn later_ids(dir: &Path, payers: &[String], date: &str) -> Result<HashSet<String>, ReconcileError> {
    let mut ids = HashSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(ids);
    };
    let mut names: Vec<(String, String, PathBuf)> = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(rest) = name
            .strip_prefix("RAIL_")
            .and_then(|r| r.strip_suffix(".txt"))
        else {
            continue;
        };
        let Some((payer, day)) = rest.rsplit_once('_') else {
            continue;
        };
        if day.len() == 8 && digits(day) && day > date && payers.iter().any(|p| p == payer) {
            names.push((payer.to_owned(), day.to_owned(), e.path()));
        }
    }
    names.sort();
    for (payer, day, path) in names {
        let bytes = std::fs::read(&path).map_err(|e| ReconcileError::Other(e.to_string()))?;
        let f = parse_day_file(&path, &bytes, &payer, &day)?;
        ids.extend(f.lines.into_iter().map(|l| l.id));
    }
    Ok(ids)
}

/// Reconciles `opts.date` against `source` (docs/protocol.md §3.2) and writes the report
/// and breaks files. Outcomes the files decide for instructions the gateway holds as unknown
/// are booked through a writer as `7003` answers are: the caller's live writer, or one
/// started over the opened store.
///
/// Errors: a missing or malformed file ([`ReconcileError::Missing`],
/// [`ReconcileError::Malformed`]: exit 2, never "no breaks"), a store or writer failure, an
/// unwritable report.
pub async fn run(source: Source, opts: &ReconcileOptions) -> Result<Report, ReconcileError> {
    let other = |e: String| ReconcileError::Other(e);
    let date = opts.date.clone();
    if date.len() != 8 || !digits(&date) {
        return Err(other(format!("--date {date:?} must be yyyyMMdd")));
    }
    let mut reader = match source {
        Source::Opened(s) => Reader::Opened(Some(s)),
        Source::Live(w) => Reader::Live(w),
    };
    let masters: Vec<String> = reader
        .read(|s| {
            let (masters, _, _) = s.load()?;
            Ok(masters.into_iter().map(|m| m.acct_no).collect())
        })
        .await?;
    let mut payers = masters;
    payers.push(opts.expense_account.clone());
    payers.sort();
    payers.dedup();
    let mut files = Vec::new();
    for p in &payers {
        let path = opts.files_dir.join(format!("RAIL_{p}_{date}.txt"));
        let bytes = std::fs::read(&path).map_err(|_| ReconcileError::Missing(path.clone()))?;
        files.push(parse_day_file(&path, &bytes, p, &date)?);
    }
    let created = {
        let date = date.clone();
        reader.read(move |s| s.instructions_of_date(&date)).await?
    };
    let mut ours: HashMap<String, Instruction> =
        created.iter().map(|i| (i.id.clone(), i.clone())).collect();
    let created_ids: Vec<String> = created.iter().map(|i| i.id.clone()).collect();
    // Lines naming instructions of other days.
    let missing: Vec<String> = files
        .iter()
        .flat_map(|f| f.lines.iter().map(|l| l.id.clone()))
        .filter(|id| !ours.contains_key(id))
        .collect();
    if !missing.is_empty() {
        let found = reader
            .read(move |s| {
                let mut found = Vec::new();
                for id in &missing {
                    if let Some(i) = s.instruction(id)? {
                        found.push(i);
                    }
                }
                Ok(found)
            })
            .await?;
        for i in found {
            ours.insert(i.id.clone(), i);
        }
    }
    // Instructions of the date absent from its files: decided on a later day?
    let in_files: HashSet<&str> = files
        .iter()
        .flat_map(|f| f.lines.iter().map(|l| l.id.as_str()))
        .collect();
    let absent = created_ids.iter().any(|id| !in_files.contains(id.as_str()));
    let later = if absent {
        later_ids(&opts.files_dir, &payers, &date)?
    } else {
        HashSet::new()
    };
    let (items, to_book) = classify(&files, &ours, &created_ids, &later);
    if !to_book.is_empty() {
        match reader {
            Reader::Live(w) => book(&w, &to_book).await?,
            Reader::Opened(store) => {
                let store = store.ok_or_else(|| other("store lost".into()))?;
                book_opened(store, &opts.expense_account, &to_book).await?
            }
        }
    }
    write_report(opts, items, &payers)
}

/// Starts a writer over the opened `store`, books `outcomes` through it, and stops it
/// (checking the ledger invariants after the booking).
async fn book_opened(
    store: Box<dyn crate::store::Store>,
    expense_account: &str,
    outcomes: &[RailOutcome],
) -> Result<(), ReconcileError> {
    use crate::writer::{spawn, WriterConfig, WriterCtx};
    let other = |e: String| ReconcileError::Other(e);
    let (store, masters, subs, counters, secret) =
        tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let mut store = store;
            let (masters, subs, counters) = store.load()?;
            let secret = store.receipt_secret(&[0u8; 32])?;
            Ok((store, masters, subs, counters, secret))
        })
        .await
        .map_err(|e| other(e.to_string()))?
        .map_err(|e| other(e.to_string()))?;
    let state = crate::ledger::LedgerState::from_rows(masters, subs, counters);
    let schemas =
        Arc::new(crate::codec::schema::Schemas::load_embedded().map_err(|e| other(e.to_string()))?);
    let (handle, thread) = spawn(
        store,
        state,
        WriterCtx {
            schemas,
            clock: Arc::new(crate::clock::SystemClock::default()),
            signer: crate::receipt::Signer::new(&secret),
            expense_account: expense_account.to_owned(),
            instructions: None,
            max_chunks: 200,
            resume: None,
            cluster_owner: None,
        },
        WriterConfig::default(),
    )
    .map_err(|e| other(e.to_string()))?;
    let booked = book(&handle, outcomes).await;
    let check = handle.snapshot().await;
    drop(handle);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    booked?;
    let (_, check) = check.ok_or_else(|| other("writer stopped".into()))?;
    check.map_err(|v| other(format!("ledger invariants after booking: {v}")))
}

/// Books `outcomes` through `writer` (the `7003` path: [`crate::writer::Job::Rail`]), one at
/// a time, each confirmed durable before the next.
async fn book(
    writer: &crate::writer::WriterHandle,
    outcomes: &[RailOutcome],
) -> Result<(), ReconcileError> {
    use crate::writer::Job;
    let other = |e: String| ReconcileError::Other(e);
    for o in outcomes {
        let (tx, rx) = tokio::sync::oneshot::channel();
        writer
            .submit_wait(Job::Rail(Box::new(o.clone()), tx))
            .await
            .map_err(|_| other("writer stopped".into()))?;
        match rx.await {
            Ok(true) => {
                tracing::info!(id = %o.instruction_id, settled = o.settled, "booked from the day file")
            }
            _ => return Err(other(format!("could not book {}", o.instruction_id))),
        }
    }
    Ok(())
}

fn write_report(
    opts: &ReconcileOptions,
    mut items: Vec<Item>,
    payers: &[String],
) -> Result<Report, ReconcileError> {
    let other = |e: String| ReconcileError::Other(e);
    items.sort_by(|a, b| {
        (a.kind.is_break(), a.kind, &a.id).cmp(&(b.kind.is_break(), b.kind, &b.id))
    });
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for i in &items {
        *counts.entry(i.kind).or_default() += 1;
    }
    let breaks: Vec<&Item> = items.iter().filter(|i| i.kind.is_break()).collect();
    let mut s = format!(
        "reconciliation of {} against the rail's day files ({} payer accounts)\n",
        opts.date,
        payers.len()
    );
    for (k, n) in &counts {
        s.push_str(&format!("  {:<20} {n}\n", k.name()));
    }
    s.push_str(&format!("breaks: {}\n", breaks.len()));
    for b in &breaks {
        s.push_str(&format!(
            "  {} {} payer {} gateway {}/{} {} rail {}/{} {}\n",
            b.kind.name(),
            b.id,
            crate::mask::account(&b.payer),
            if b.gateway_status.is_empty() {
                "-"
            } else {
                &b.gateway_status
            },
            crate::money::format_fen(b.gateway_amount),
            crate::mask::account(&b.gateway_payee),
            if b.rail_status.is_empty() {
                "-"
            } else {
                &b.rail_status
            },
            crate::money::format_fen(b.rail_amount),
            crate::mask::account(&b.rail_payee),
        ));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| other(e.to_string()))?;
    let mut csv = String::from(BREAKS_HEADER);
    csv.push('\n');
    for b in &breaks {
        let row = [
            b.kind.name().to_owned(),
            b.id.clone(),
            b.payer.clone(),
            b.gateway_status.clone(),
            b.rail_status.clone(),
            b.gateway_amount.to_string(),
            b.rail_amount.to_string(),
            b.gateway_payee.clone(),
            b.rail_payee.clone(),
        ];
        let row: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let breaks_path = opts.out_dir.join(format!("breaks_{}.csv", opts.date));
    std::fs::write(&breaks_path, csv).map_err(|e| other(e.to_string()))?;
    s.push_str(&format!("breaks file: {}\n", breaks_path.display()));
    std::fs::write(
        opts.out_dir.join(format!("reconcile_{}.txt", opts.date)),
        &s,
    )
    .map_err(|e| other(e.to_string()))?;
    Ok(Report {
        date: opts.date.clone(),
        items,
        summary: s,
        breaks_path,
    })
}

/// Reconciliation against the running gateway: the daily run inside `serve` and
/// `POST /ops/reconcile` (`bankfep reconcile --gateway`). One run at a time.
pub struct Live {
    /// The gateway's writer: reads and bookings go through it.
    pub writer: crate::writer::WriterHandle,
    /// Folder of the rail's day files (`rail.files_dir`).
    pub files_dir: PathBuf,
    /// Folder of the reports (`DATA_DIR/reconcile`, where `/metrics` reads the newest).
    pub out_dir: PathBuf,
    /// The bank's expense account (its file is read too).
    pub expense_account: String,
    running: tokio::sync::Mutex<()>,
}

impl Live {
    /// A reconciler over `writer`.
    pub fn new(
        writer: crate::writer::WriterHandle,
        files_dir: PathBuf,
        out_dir: PathBuf,
        expense_account: String,
    ) -> Live {
        Live {
            writer,
            files_dir,
            out_dir,
            expense_account,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Reconciles `date` (`yyyyMMdd`) through the writer, after any run in progress ends;
    /// logs the summary. The run is its own task: a caller that goes away (a closed HTTP
    /// connection) does not cut it short. Errors: as [`run`].
    pub async fn run(self: &Arc<Self>, date: &str) -> Result<Report, ReconcileError> {
        let me = self.clone();
        let date = date.to_owned();
        tokio::spawn(async move {
            let _one = me.running.lock().await;
            let opts = ReconcileOptions {
                date: date.clone(),
                files_dir: me.files_dir.clone(),
                out_dir: me.out_dir.clone(),
                expense_account: me.expense_account.clone(),
            };
            let r = run(Source::Live(me.writer.clone()), &opts).await;
            match &r {
                Ok(report) => tracing::info!(
                    date = %date,
                    breaks = report.breaks(),
                    summary = %report.summary.trim_end(),
                    "reconciled against the rail's day files"
                ),
                Err(e) => tracing::warn!(date = %date, error = %e, "could not reconcile"),
            }
            r
        })
        .await
        .map_err(|e| ReconcileError::Other(e.to_string()))?
    }
}

/// Outcomes of the daily runs, for `/metrics` (`bankfep_reconcile_daily_runs_total`):
/// reconciled without break, with breaks, a day file missing, any other failure.
static DAILY: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];
const DAILY_LABELS: [&str; 4] = ["clean", "breaks", "missing_file", "failed"];

fn count_daily(i: usize) {
    DAILY[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The daily-run counters in the Prometheus text format.
pub fn render_daily_metrics() -> String {
    let mut s = String::from(
        "# HELP bankfep_reconcile_daily_runs_total Daily reconciliations inside serve, by outcome (docs/operations.md).\n\
         # TYPE bankfep_reconcile_daily_runs_total counter\n",
    );
    for (i, l) in DAILY_LABELS.iter().enumerate() {
        s.push_str(&format!(
            "bankfep_reconcile_daily_runs_total{{result=\"{l}\"}} {}\n",
            DAILY[i].load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    s
}

/// How often the daily task looks at the business clock (real time).
const DAILY_TICK: std::time::Duration = std::time::Duration::from_millis(500);
/// After a failed daily run (a file not there yet), the next attempt waits this much
/// business time.
const DAILY_RETRY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What the daily task should do at business time `now`: the date to reconcile, if any.
/// `done` is the last date reconciled (or found reconciled), `last_try` the business time
/// of the last failed attempt.
pub fn daily_due(
    now: chrono::NaiveDateTime,
    at: chrono::NaiveTime,
    done: Option<&str>,
    last_try: Option<chrono::NaiveDateTime>,
) -> Option<String> {
    if now.time() < at {
        return None;
    }
    let target = (now.date() - chrono::Days::new(1))
        .format("%Y%m%d")
        .to_string();
    if done == Some(target.as_str()) {
        return None;
    }
    if last_try.is_some_and(|t| now - t < DAILY_RETRY && now.date() == t.date()) {
        return None;
    }
    Some(target)
}

/// The daily reconciliation inside `serve`: from `at` (business time, `[reconcile]
/// daily_at`) each day, the previous business date is reconciled through `live`. A date
/// whose report (`reconcile_{date}.txt`) is already in the reports folder counts as done (a
/// restart does not redo it). A missing or malformed file, or any failure, is logged and
/// counted and retried an hour (business time) later; the gateway never stops for it.
pub fn spawn_daily(
    live: Arc<Live>,
    at: chrono::NaiveTime,
    clock: Arc<dyn crate::clock::Clock>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut done: Option<String> = None;
        let mut last_try: Option<chrono::NaiveDateTime> = None;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(DAILY_TICK) => {}
            }
            let now = clock.now();
            let Some(date) = daily_due(now, at, done.as_deref(), last_try) else {
                continue;
            };
            if live.out_dir.join(format!("reconcile_{date}.txt")).exists() {
                done = Some(date);
                continue;
            }
            tracing::info!(date = %date, "daily reconciliation");
            match live.run(&date).await {
                Ok(report) => {
                    count_daily(usize::from(report.breaks() > 0));
                    done = Some(date);
                    last_try = None;
                }
                Err(e) => {
                    count_daily(if matches!(e, ReconcileError::Missing(_)) {
                        2
                    } else {
                        3
                    });
                    last_try = Some(now);
                }
            }
        }
    })
}

#[cfg(test)]
mod daily_tests {
    use super::*;

    fn t(s: &str) -> chrono::NaiveDateTime {
        crate::clock::parse_fixed(s).unwrap()
    }

    #[test]
    fn the_previous_date_once_from_the_configured_time() {
        let at = chrono::NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        assert_eq!(daily_due(t("2026-11-24T05:59:59"), at, None, None), None);
        assert_eq!(
            daily_due(t("2026-11-24T06:00:00"), at, None, None).as_deref(),
            Some("20261123")
        );
        assert_eq!(
            daily_due(t("2026-11-24T07:00:00"), at, Some("20261123"), None),
            None
        );
        // A failed attempt is retried an hour later, not at every tick.
        let tried = Some(t("2026-11-24T06:00:00"));
        assert_eq!(daily_due(t("2026-11-24T06:30:00"), at, None, tried), None);
        assert_eq!(
            daily_due(t("2026-11-24T07:00:00"), at, None, tried).as_deref(),
            Some("20261123")
        );
        // Across the year's end.
        assert_eq!(
            daily_due(t("2027-01-01T06:00:00"), at, Some("20261230"), None).as_deref(),
            Some("20261231")
        );
    }
}
