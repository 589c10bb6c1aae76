//! Statements (对账单, docs/statements.md): the day of one master account as a CSV file
//! (`bankfep statement`, `GET /ops/statements/{master}/{yyyyMMdd}.csv`).
//!
//! A statement lists every posting booked on the business date, the opening and closing
//! balance of every account of the master account (the master mirror, each sub-account,
//! suspense, fee and in transit), the day's totals and the 总分平衡 check (master mirror = Σ
//! every liability account, docs/ledger.md "Invariants") at the opening and at the closing.
//!
//! Balances are derived, not stored per day: the store gives the balances now and the
//! postings booked on and after the date ([`crate::store::Store::statement_source`], one
//! snapshot); closing = now − the effect of the postings booked after the date; opening =
//! closing − the effect of the day's postings. Cost grows with the postings since the date
//! (an index range), never with the whole history. Amounts are integer fen inside, checked
//! arithmetic, written as yuan with exactly two decimals (`1234.50`, no separators).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::money::{format_fen, Fen};
use crate::store::{StatementSource, Store};

/// The header row of a statement (after the UTF-8 byte order mark). Every row has these 19
/// columns; docs/statements.md says which ones each `record_type` fills.
pub const HEADER: &str = "record_type,master_acct,date,line,front_seq_no,receipt_no,booking_type,\
debit_account,credit_account,account,account_kind,member_name,amount,opening_balance,debits,\
credits,closing_balance,count,result";

/// The UTF-8 byte order mark the file starts with (docs/statements.md: spreadsheet programs
/// on Chinese Windows otherwise read the file as GBK and garble member names).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a statement could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    /// The date is not `yyyyMMdd` naming a real date.
    #[error("date {0:?} must be yyyyMMdd")]
    BadDate(String),
    /// The store has no such master account.
    #[error("no master account {0}")]
    NoSuchMaster(String),
    /// The store (or the writer relaying to it) failed.
    #[error("store: {0}")]
    Store(String),
    /// Stored postings name an account the master account does not have, or a sum
    /// overflows: the store is not consistent (never written around).
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
}

/// A rendered statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The file: BOM, header, rows, each line ending `\n`.
    pub csv: Vec<u8>,
    /// Postings listed.
    pub postings: usize,
    /// The 总分平衡 check held at the opening and at the closing, and no derived balance is
    /// below zero (a `balance` row marked `NEGATIVE`).
    pub balanced: bool,
}

/// `yyyyMMdd` naming a real calendar date, as the integer `yyyymmdd`; `None` otherwise.
pub fn parse_date(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    chrono::NaiveDate::parse_from_str(s, "%Y%m%d").ok()?;
    s.parse().ok()
}

/// One account of the master account: storage side code, shown name, kind, member name,
/// balance now; asset (`true` only for the mirror).
struct Acct {
    code: String,
    shown: String,
    kind: &'static str,
    member: String,
    asset: bool,
    now: Fen,
}

/// A cell that cannot be read as a spreadsheet formula (a member name is peer input:
/// `=`, `+`, `-`, `@` at the start get a leading `'`), quoted when it holds `,` `"` or a
/// line break.
fn text_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn overflow(what: &str) -> StatementError {
    StatementError::Inconsistent(format!("{what} overflows"))
}

/// Renders the statement of `src` for `date` (`yyyyMMdd`).
///
/// Errors: [`StatementError::BadDate`]; [`StatementError::Inconsistent`] when a posting
/// names a side the master account does not have or a sum overflows.
pub fn render(src: &StatementSource, date: &str) -> Result<Statement, StatementError> {
    parse_date(date).ok_or_else(|| StatementError::BadDate(date.to_owned()))?;
    let m = &src.master;
    let mut accts = vec![
        Acct {
            code: "mirror".into(),
            shown: "mirror".into(),
            kind: "mirror",
            member: String::new(),
            asset: true,
            now: m.mirror,
        },
        Acct {
            code: "suspense".into(),
            shown: "suspense".into(),
            kind: "suspense",
            member: String::new(),
            asset: false,
            now: m.suspense,
        },
        Acct {
            code: "fee".into(),
            shown: "fee".into(),
            kind: "fee",
            member: String::new(),
            asset: false,
            now: m.fee,
        },
        Acct {
            code: "in_transit".into(),
            shown: "in_transit".into(),
            kind: "in_transit",
            member: String::new(),
            asset: false,
            now: m.in_transit,
        },
    ];
    for s in &src.subs {
        accts.push(Acct {
            code: format!("sub:{}", s.id),
            shown: s.sub_acct_no.clone(),
            kind: "sub",
            member: s.member_name.clone(),
            asset: false,
            now: s.balance,
        });
    }
    let index: HashMap<String, usize> = accts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.code.clone(), i))
        .collect();
    let find = |code: &str| {
        index.get(code).copied().ok_or_else(|| {
            StatementError::Inconsistent(format!(
                "a posting of master account {} names account {code:?}",
                m.acct_no
            ))
        })
    };
    // Effect of postings on each account: + raises its balance.
    let effect = |acc: &mut [Fen], debit: usize, credit: usize, amount: Fen| {
        let d = if accts[debit].asset { amount } else { -amount };
        let c = if accts[credit].asset { -amount } else { amount };
        acc[debit] = acc[debit]
            .checked_add(d)
            .ok_or_else(|| overflow("a balance"))?;
        acc[credit] = acc[credit]
            .checked_add(c)
            .ok_or_else(|| overflow("a balance"))?;
        Ok::<(), StatementError>(())
    };
    let n = accts.len();
    let mut later = vec![0 as Fen; n];
    for (d, c, amount) in &src.later {
        effect(&mut later, find(d)?, find(c)?, *amount)?;
    }
    let mut day = vec![0 as Fen; n];
    let mut debits = vec![0 as Fen; n];
    let mut credits = vec![0 as Fen; n];
    let mut total: Fen = 0;
    let mut out = String::from(HEADER);
    out.push('\n');
    for (line, p) in src.postings.iter().enumerate() {
        let (d, c) = (find(&p.debit)?, find(&p.credit)?);
        effect(&mut day, d, c, p.amount)?;
        debits[d] = debits[d]
            .checked_add(p.amount)
            .ok_or_else(|| overflow("debits"))?;
        credits[c] = credits[c]
            .checked_add(p.amount)
            .ok_or_else(|| overflow("credits"))?;
        total = total
            .checked_add(p.amount)
            .ok_or_else(|| overflow("total"))?;
        let _ = writeln!(
            out,
            "posting,{},{date},{},{},{},{},{},{},,,,{},,,,,,",
            m.acct_no,
            line + 1,
            text_cell(&p.front_seq_no),
            text_cell(&p.receipt_no),
            text_cell(&p.booking_type),
            text_cell(&accts[d].shown),
            text_cell(&accts[c].shown),
            format_fen(p.amount),
        );
    }
    let mut closing = vec![0 as Fen; n];
    let mut opening = vec![0 as Fen; n];
    let mut impossible = false;
    for i in 0..n {
        closing[i] = accts[i]
            .now
            .checked_sub(later[i])
            .ok_or_else(|| overflow("a closing balance"))?;
        opening[i] = closing[i]
            .checked_sub(day[i])
            .ok_or_else(|| overflow("an opening balance"))?;
        let a = &accts[i];
        // No account can hold less than nothing: a derived balance below zero means the
        // postings' dates disagree with their booking order (an inbound credit dated ahead
        // of the business date, for example), and the statement must not be loaded as is.
        let negative = opening[i] < 0 || closing[i] < 0;
        impossible |= negative;
        let _ = writeln!(
            out,
            "balance,{},{date},,,,,,,{},{},{},,{},{},{},{},,{}",
            m.acct_no,
            text_cell(&a.shown),
            a.kind,
            text_cell(&a.member),
            format_fen(opening[i]),
            format_fen(debits[i]),
            format_fen(credits[i]),
            format_fen(closing[i]),
            if negative { "NEGATIVE" } else { "" },
        );
    }
    let count = src.postings.len();
    let _ = writeln!(
        out,
        "total,{},{date},,,,,,,,,,,,{},{},,{count},{}",
        m.acct_no,
        format_fen(total),
        format_fen(total),
        if debits.iter().try_fold(0 as Fen, |a, x| a.checked_add(*x))
            == credits.iter().try_fold(0 as Fen, |a, x| a.checked_add(*x))
        {
            "OK"
        } else {
            "BREAK"
        }
    );
    let mut balanced = true;
    for (label, bal) in [("opening", &opening), ("closing", &closing)] {
        let liabilities = bal[1..]
            .iter()
            .try_fold(0 as Fen, |a, x| a.checked_add(*x))
            .ok_or_else(|| overflow("the sub-ledger"))?;
        let ok = bal[0] == liabilities;
        balanced &= ok;
        // A trial balance: the asset side (mirror) in `debits`, the liability side (Σ
        // sub-ledger) in `credits`, their difference in `amount` (docs/statements.md).
        let diff = bal[0]
            .checked_sub(liabilities)
            .ok_or_else(|| overflow("the difference"))?;
        let _ = writeln!(
            out,
            "check,{},{date},,,,,,,总分平衡,{label},,{},,{},{},,,{}",
            m.acct_no,
            format_fen(diff),
            format_fen(bal[0]),
            format_fen(liabilities),
            if ok { "OK" } else { "BREAK" },
        );
    }
    let mut csv = BOM.to_vec();
    csv.extend_from_slice(out.as_bytes());
    Ok(Statement {
        csv,
        postings: count,
        balanced: balanced && !impossible,
    })
}

/// Reads `master_acct`'s data for `date` from `store` (off the async runtime) and renders it.
/// For a store opened by the caller (`bankfep statement`).
///
/// Errors: [`StatementError`] (bad date, no such master, store failure, inconsistency).
pub async fn from_store(
    store: Box<dyn Store>,
    master_acct: &str,
    date: &str,
) -> Result<Statement, StatementError> {
    let day = parse_date(date).ok_or_else(|| StatementError::BadDate(date.to_owned()))?;
    let acct = master_acct.to_owned();
    let src = tokio::task::spawn_blocking(move || {
        let mut store = store;
        store.statement_source(&acct, day)
    })
    .await
    .map_err(|e| StatementError::Store(e.to_string()))?
    .map_err(|e| StatementError::Store(e.to_string()))?
    .ok_or_else(|| StatementError::NoSuchMaster(master_acct.to_owned()))?;
    render(&src, date)
}

/// Reads through a running gateway ([`crate::http::read_store`]: its reader thread, or its
/// writer between batches) and renders. Waits at most `wait` for the read.
///
/// Errors: as [`from_store`]; [`StatementError::Store`] when the writer is gone or busy.
pub async fn from_writer(
    writer: &crate::writer::WriterHandle,
    master_acct: &str,
    date: &str,
    wait: std::time::Duration,
) -> Result<Statement, StatementError> {
    let day = parse_date(date).ok_or_else(|| StatementError::BadDate(date.to_owned()))?;
    let acct = master_acct.to_owned();
    let src = crate::http::read_store(writer, wait, move |s| s.statement_source(&acct, day))
        .await
        .ok_or_else(|| StatementError::Store("the writer did not answer".into()))?
        .map_err(|e| StatementError::Store(e.to_string()))?
        .ok_or_else(|| StatementError::NoSuchMaster(master_acct.to_owned()))?;
    render(&src, date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Master;
    use crate::store::{PostingRow, SubBalance};

    /// Fields of one CSV line (quotes honoured).
    pub(crate) fn split_csv(line: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(String::new()),
                (c, _) => out.last_mut().unwrap().push(c),
            }
        }
        out
    }

    /// Master account `M1` (id 1) with `mirror` and `fee` in fen, nothing in suspense or in
    /// transit.
    fn master(mirror: Fen, fee: Fen) -> Master {
        Master {
            id: 1,
            enterprise_code: "E".into(),
            acct_no: "M1".into(),
            mirror,
            suspense: 0,
            fee,
            in_transit: 0,
        }
    }

    fn posting(id: i64, d: &str, c: &str, amount: Fen, date: u32) -> PostingRow {
        PostingRow {
            id,
            front_seq_no: format!("{date}{id:08}"),
            debit: d.into(),
            credit: c.into(),
            amount,
            booking_type: "01".into(),
            booking_date: date,
            receipt_no: String::new(),
        }
    }

    #[test]
    fn a_balance_below_zero_fails_the_statement() {
        // Now: mirror 100.00 = sub 100.00, all of it from a credit dated the next day; a
        // withdrawal of 40.00 is booked on the day itself: the day's closing would be -100.00
        // + ... below zero, which no account can hold.
        let src = StatementSource {
            master: master(10_000, 0),
            subs: vec![SubBalance {
                id: 7,
                sub_acct_no: "9001".into(),
                member_name: "甲".into(),
                balance: 6_000,
            }],
            postings: vec![posting(1, "sub:7", "in_transit", 4_000, 20261123)],
            later: vec![
                ("mirror".into(), "sub:7".into(), 10_000),
                ("in_transit".into(), "mirror".into(), 4_000),
            ],
        };
        let st = render(&src, "20261123").unwrap();
        let text = String::from_utf8(st.csv[3..].to_vec()).unwrap();
        assert!(
            text.lines()
                .any(|r| r.starts_with("balance,M1,20261123,,,,,,,9001,sub,")
                    && r.ends_with(",,NEGATIVE")),
            "{text}"
        );
        assert!(!st.balanced, "a statement with a negative balance fails");
    }

    #[test]
    fn balances_are_taken_back_from_now() {
        // Now: mirror 100.00 = sub 70.00 + fee 30.00. On the day: a credit of 100.00 to the
        // sub (mirror → sub). After it: sub → fee 30.00.
        let src = StatementSource {
            master: master(10_000, 3_000),
            subs: vec![SubBalance {
                id: 7,
                sub_acct_no: "9001".into(),
                member_name: "=cmd,\"x\"".into(),
                balance: 7_000,
            }],
            postings: vec![posting(1, "mirror", "sub:7", 10_000, 20261123)],
            later: vec![("sub:7".into(), "fee".into(), 3_000)],
        };
        let st = render(&src, "20261123").unwrap();
        let text = String::from_utf8(st.csv[3..].to_vec()).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], HEADER);
        assert_eq!(rows[0].split(',').count(), 19);
        for r in &rows {
            assert!(r.starts_with(|c: char| c.is_ascii_lowercase()), "{r}");
        }
        assert!(rows[1].starts_with("posting,M1,20261123,1,2026112300000001,,01,mirror,9001,"));
        assert!(
            rows.contains(&"balance,M1,20261123,,,,,,,mirror,mirror,,,0.00,100.00,0.00,100.00,,")
        );
        assert!(rows.contains(
            &"balance,M1,20261123,,,,,,,9001,sub,\"'=cmd,\"\"x\"\"\",,0.00,0.00,100.00,100.00,,"
        ));
        assert!(rows.contains(&"balance,M1,20261123,,,,,,,fee,fee,,,0.00,0.00,0.00,0.00,,"));
        assert!(rows.contains(&"total,M1,20261123,,,,,,,,,,,,100.00,100.00,,1,OK"));
        assert!(
            rows.contains(&"check,M1,20261123,,,,,,,总分平衡,closing,,0.00,,100.00,100.00,,,OK")
        );
        assert!(rows.contains(&"check,M1,20261123,,,,,,,总分平衡,opening,,0.00,,0.00,0.00,,,OK"));
        for r in &rows {
            assert_eq!(split_csv(r).len(), 19, "{r}");
        }
        assert!(st.balanced);
        assert_eq!(st.postings, 1);
        // A posting naming an account the master does not have is refused.
        let mut bad = src.clone();
        bad.postings[0].credit = "sub:8".into();
        assert!(matches!(
            render(&bad, "20261123"),
            Err(StatementError::Inconsistent(_))
        ));
        assert!(matches!(
            render(&src, "20261131"),
            Err(StatementError::BadDate(_))
        ));
    }
}
