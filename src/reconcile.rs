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
//! - amount or payee differs.
//!
//! Breaks are never corrected. The run opens the store itself: the embedded store's folder
//! lock makes it wait for no running gateway (it refuses while one holds the folder).
//! Amounts are integer fen.

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
    /// still being queried).
    Pending,
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
/// a line, by id) against `files`. Returns the items and the outcomes to book (instructions
/// the gateway holds as unknown and the file decides).
pub fn classify(
    files: &[DayFile],
    ours: &HashMap<String, Instruction>,
    created_that_day: &[String],
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

/// Reconciles `opts.date` against `store` (already opened by the caller, who holds it
/// exclusively). Outcomes decided by the file for unknown instructions are booked through a
/// writer over the store, as `7003` answers are.
///
/// Errors: a missing or malformed file, a store or writer failure, an unwritable report.
pub async fn run(
    store: Box<dyn crate::store::Store>,
    opts: &ReconcileOptions,
) -> Result<Report, ReconcileError> {
    let other = |e: String| ReconcileError::Other(e);
    let date = opts.date.clone();
    if date.len() != 8 || !digits(&date) {
        return Err(other(format!("--date {date:?} must be yyyyMMdd")));
    }
    // Store reads (blocking).
    let (mut store, masters, subs, counters, secret, created) = {
        let date = date.clone();
        tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let mut store = store;
            let (masters, subs, counters) = store.load()?;
            let secret = store.receipt_secret(&[0u8; 32])?;
            let created = store.instructions_of_date(&date)?;
            Ok((store, masters, subs, counters, secret, created))
        })
        .await
        .map_err(|e| other(e.to_string()))?
        .map_err(|e| other(e.to_string()))?
    };
    let mut payers: Vec<String> = masters.iter().map(|m| m.acct_no.clone()).collect();
    payers.push(opts.expense_account.clone());
    payers.sort();
    payers.dedup();
    let mut files = Vec::new();
    for p in &payers {
        let path = opts.files_dir.join(format!("RAIL_{p}_{date}.txt"));
        let bytes = std::fs::read(&path).map_err(|_| ReconcileError::Missing(path.clone()))?;
        files.push(parse_day_file(&path, &bytes, p, &date)?);
    }
    let mut ours: HashMap<String, Instruction> =
        created.iter().map(|i| (i.id.clone(), i.clone())).collect();
    let created_ids: Vec<String> = created.iter().map(|i| i.id.clone()).collect();
    // Lines naming instructions of other days.
    let missing: Vec<String> = files
        .iter()
        .flat_map(|f| f.lines.iter().map(|l| l.id.clone()))
        .filter(|id| !ours.contains_key(id))
        .collect();
    let (store, found) = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for id in &missing {
            match store.instruction(id) {
                Ok(Some(i)) => found.push(i),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((store, found))
    })
    .await
    .map_err(|e| other(e.to_string()))?
    .map_err(|e: crate::store::StoreError| other(e.to_string()))?;
    for i in found {
        ours.insert(i.id.clone(), i);
    }
    let (items, to_book) = classify(&files, &ours, &created_ids);
    if to_book.is_empty() {
        drop(store);
    } else {
        book(
            store,
            masters,
            subs,
            counters,
            &secret,
            &opts.expense_account,
            &to_book,
        )
        .await?;
    }
    write_report(opts, items, &payers)
}

/// Books `outcomes` through a writer over `store` (the `7003` path: `Job::Rail`).
async fn book(
    store: Box<dyn crate::store::Store>,
    masters: Vec<crate::ledger::Master>,
    subs: Vec<crate::ledger::SubAccount>,
    counters: crate::ledger::state::Counters,
    secret: &[u8],
    expense_account: &str,
    outcomes: &[RailOutcome],
) -> Result<(), ReconcileError> {
    use crate::writer::{spawn, Job, WriterConfig, WriterCtx};
    let other = |e: String| ReconcileError::Other(e);
    let state = crate::ledger::LedgerState::from_rows(masters, subs, counters);
    let schemas =
        Arc::new(crate::codec::schema::Schemas::load_embedded().map_err(|e| other(e.to_string()))?);
    let (handle, thread) = spawn(
        store,
        state,
        WriterCtx {
            schemas,
            clock: Arc::new(crate::clock::SystemClock::default()),
            signer: crate::receipt::Signer::new(secret),
            expense_account: expense_account.to_owned(),
            instructions: None,
            max_chunks: 200,
            resume: None,
            cluster_owner: None,
        },
        WriterConfig::default(),
    )
    .map_err(|e| other(e.to_string()))?;
    for o in outcomes {
        let (tx, rx) = tokio::sync::oneshot::channel();
        handle
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
    let (_, check) = handle
        .snapshot()
        .await
        .ok_or_else(|| other("writer stopped".into()))?;
    drop(handle);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    check.map_err(|v| other(format!("ledger invariants after booking: {v}")))
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
