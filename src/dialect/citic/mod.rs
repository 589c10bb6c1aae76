//! The CITIC dialect (docs/citic.md): CITIC's direct-connect sub-account interface, GBK XML
//! over HTTP, served on the same ledger, writer and store as the A001 link.
//!
//! One request: HTTP POST (`http`) → body ≤ 1 MiB → GBK `<stream>` envelope ([`envelope`],
//! `DLF9977`) → `<action>` present (`DLF9977`) → `<userName>` present (`DLF9993`) and
//! configured (`DLF9985`) → action served (`DLF0000`) → fields against
//! `schemas/citic/<ACTION>.toml` (`DLF9993`) → the shared [`Command`] → the writer with a
//! [`CiticReply`] (idempotency by `clientID`, preparation, decision, reply bytes).

pub mod envelope;
pub mod http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::codec::charset::Charset;
use crate::codec::request::{validate_request, Fields};
use crate::codec::schema::{load_dialect_tx, SchemaError, Schemas, TxSchema};
use crate::codes::ReturnCode;
use crate::ledger::decide::{Decision, Entry, Facts, ReceiptRow};
use crate::ledger::withdraw::withdrawal_status;
use crate::ledger::{
    BookingType, Command, InstructionState, LedgerState, OpenReq, PageReq, SubAccount, TransferReq,
    WithdrawReq,
};
use crate::money::format_fen;
use crate::store::{Store, StoreError};
use crate::writer::{DialectReply, Reply};

/// Success (`000000`).
pub const OK: &str = "AAAAAAA";
/// Accepted, outcome pending (a withdrawal): query with DLCIDSTT.
pub const PENDING: &str = "AAAAAAE";
/// Partly succeeded (DLCIDSTT of a withdrawal).
pub const PARTIAL: &str = "BBBBBBB";
/// Still processing (DLCIDSTT).
pub const PROCESSING: &str = "CCCCCCC";

/// The actions served, in the order docs/citic.md lists them.
pub const SERVED: [&str; 15] = [
    "DLSINSUB", "DLCTNSUB", "DLINTSUB", "DLSUBBAL", "DLSUBINF", "DLSUBDTL", "DLBREGSN", "DLOLCACC",
    "DLSUBTRN", "DLMDETRN", "DLFNDOUT", "DLSBALQR", "DLSTRNDT", "DLEDDRSQ", "DLCIDSTT",
];

/// The money-moving actions: recorded under their `clientID` (DLINTSUB: each row's).
pub const MONEY_MOVING: [&str; 6] = [
    "DLSINSUB", "DLCTNSUB", "DLINTSUB", "DLSUBTRN", "DLMDETRN", "DLFNDOUT",
];

/// Most rows DLSUBDTL answers, and most detail rows DLEDDRSQ looks through, in one date
/// range (docs/citic.md: more is `DLF9993`, ask for a shorter range).
pub const DETAIL_ROWS_MAX: u32 = 10_000;

/// Most rows in one DLINTSUB request (docs/citic.md).
pub const INTSUB_ROWS_MAX: usize = 20;

const FILES: [(&str, &str); 15] = [
    (
        "schemas/citic/DLINTSUB.toml",
        include_str!("../../../schemas/citic/DLINTSUB.toml"),
    ),
    (
        "schemas/citic/DLSUBDTL.toml",
        include_str!("../../../schemas/citic/DLSUBDTL.toml"),
    ),
    (
        "schemas/citic/DLSTRNDT.toml",
        include_str!("../../../schemas/citic/DLSTRNDT.toml"),
    ),
    (
        "schemas/citic/DLEDDRSQ.toml",
        include_str!("../../../schemas/citic/DLEDDRSQ.toml"),
    ),
    (
        "schemas/citic/DLSINSUB.toml",
        include_str!("../../../schemas/citic/DLSINSUB.toml"),
    ),
    (
        "schemas/citic/DLCTNSUB.toml",
        include_str!("../../../schemas/citic/DLCTNSUB.toml"),
    ),
    (
        "schemas/citic/DLSUBBAL.toml",
        include_str!("../../../schemas/citic/DLSUBBAL.toml"),
    ),
    (
        "schemas/citic/DLSUBINF.toml",
        include_str!("../../../schemas/citic/DLSUBINF.toml"),
    ),
    (
        "schemas/citic/DLBREGSN.toml",
        include_str!("../../../schemas/citic/DLBREGSN.toml"),
    ),
    (
        "schemas/citic/DLOLCACC.toml",
        include_str!("../../../schemas/citic/DLOLCACC.toml"),
    ),
    (
        "schemas/citic/DLSUBTRN.toml",
        include_str!("../../../schemas/citic/DLSUBTRN.toml"),
    ),
    (
        "schemas/citic/DLMDETRN.toml",
        include_str!("../../../schemas/citic/DLMDETRN.toml"),
    ),
    (
        "schemas/citic/DLFNDOUT.toml",
        include_str!("../../../schemas/citic/DLFNDOUT.toml"),
    ),
    (
        "schemas/citic/DLSBALQR.toml",
        include_str!("../../../schemas/citic/DLSBALQR.toml"),
    ),
    (
        "schemas/citic/DLCIDSTT.toml",
        include_str!("../../../schemas/citic/DLCIDSTT.toml"),
    ),
];

/// Loads every embedded `schemas/citic/*.toml`, keyed by action code. Errors name the file.
pub fn load_schemas() -> Result<HashMap<String, TxSchema>, SchemaError> {
    FILES
        .iter()
        .map(|src| load_dialect_tx(*src).map(|s| (s.code.clone(), s)))
        .collect()
}

/// The prefix that puts a `clientID` in a namespace of its own in the request store and
/// among `OrderNo`s: 21 bytes, longer than any A001 requester serial (≤ 20 bytes), so no
/// A001 serial can ever equal a CITIC key.
pub const CLIENT_ID_NS: &str = "citic.clientID.space:";

/// The store key of a `clientID`.
pub fn client_key(client_id: &str) -> String {
    format!("{CLIENT_ID_NS}{client_id}")
}

/// The CITIC status of an A001 return code (docs/citic.md "Status codes"): `000000` →
/// `AAAAAAA`, `YQ9999` → `UNKNOWN`, `YQxxxx` → `DLFxxxx`, `E1000x` → `DLE000x`.
pub fn status_of(code: ReturnCode) -> String {
    let a = code.as_str();
    match code {
        ReturnCode::Ok => OK.to_string(),
        ReturnCode::Internal => "UNKNOWN".to_string(),
        ReturnCode::Unsupported => "DLF0000".to_string(),
        _ if a.starts_with("YQ") => format!("DLF{}", a.get(2..).unwrap_or("")),
        _ => format!("DLE{}", a.get(2..).unwrap_or("")),
    }
}

/// The error reply of `code` with its message: only `<status>` and `<statusText>`.
pub fn error_reply(schemas: &Schemas, code: ReturnCode) -> Reply {
    let message = schemas
        .return_codes
        .platform_message(code.as_str())
        .unwrap_or("")
        .to_string();
    let status = status_of(code);
    let body = envelope::encode(
        &[("status", status.clone()), ("statusText", message.clone())],
        None,
        false,
    );
    Reply {
        code: status,
        message,
        body,
    }
}

/// What the writer needs, besides the command, to answer one CITIC request.
#[derive(Debug)]
pub struct CiticReply {
    action: &'static str,
    schemas: Arc<Schemas>,
    checks: Checks,
    found: Mutex<Found>,
    /// DLSUBDTL `MNGNODE`: `citic_branch_name` of the configuration.
    branch: String,
}

/// Request fields the shared command has no room for, checked against the ledger in
/// [`DialectReply::prepare`].
#[derive(Clone, Debug, Default)]
struct Checks {
    /// `mainAccNo` / `accountNo`: the master account the sub-account(s) must be under.
    main_acc: Option<String>,
    /// `recvAccNm` of a transfer: the payee member's name (`DLE0002`).
    payee_name: Option<String>,
    /// `sameBank` of a withdrawal: must match the binding (`DLE0005`).
    same_bank: Option<bool>,
    /// `recvTgfi` of a withdrawal, when given: the bound bank code (`DLE0005`).
    bank_code: Option<String>,
    /// DLCIDSTT `type`: the original action.
    orig_action: Option<String>,
    /// DLOLCACC: the sub-account to close; the queries: the sub-account asked about.
    sub_acct_no: Option<String>,
    /// DLINTSUB `payType` 3 (enterprise-internal): refused `DLF9993`, recorded.
    internal_pay: bool,
    /// The detail and receipt queries: the date range and the slice asked for.
    query: Query,
}

/// What a detail or receipt query asks for, beyond the sub-account.
#[derive(Clone, Debug, Default)]
struct Query {
    /// `startDate`, `endDate` (`yyyymmdd`).
    start: u32,
    end: u32,
    /// First row (from 1) and rows wanted (DLSTRNDT, DLEDDRSQ).
    first: u32,
    size: u32,
    /// DLSUBDTL `tranType` 1: pending adjustments, always none here.
    pending_only: bool,
    /// DLSUBDTL inclusive bounds on `TRANAMT`, DLEDDRSQ on the receipt's `tranAmt`, fen.
    min_amt: Option<i64>,
    max_amt: Option<i64>,
    /// DLSUBDTL `controlFlag` 1: add `TRANTIME`.
    with_time: bool,
}

/// A detail row with its other party's name and bank name.
#[derive(Clone, Debug)]
struct Detail {
    entry: Entry,
    other_name: String,
    other_bank: String,
    /// Row number within its `FrontSeqNo`, from 1.
    mix_no: u32,
}

/// What [`DialectReply::read`] found for [`DialectReply::encode`].
#[derive(Debug, Default)]
struct Found {
    /// Rows in the range (DLSTRNDT, DLEDDRSQ: all of them, not only this page).
    total: u64,
    details: Vec<Detail>,
    receipts: Vec<ReceiptRow>,
    /// More rows in the range than [`DETAIL_ROWS_MAX`].
    too_many: bool,
}

/// A request decoded and validated into its command and reply encoder; `Err` is the
/// refusal to answer without the writer.
pub struct Prepared {
    /// The shared command.
    pub cmd: Command,
    /// The store key (`CLIENT_ID_NS` + `clientID`), empty for queries.
    pub serial: String,
    /// The writer-side reply encoder.
    pub reply: CiticReply,
}

fn text(f: &Fields, n: &str) -> String {
    f.text(n).unwrap_or("").to_string()
}

/// Maps the validated `fields` of `action` to the shared command (docs/citic.md maps each
/// action to its A001 equivalent). `today` is the business date `yyyymmdd`; `branch` is the
/// configured `citic_branch_name` (DLSUBDTL `MNGNODE`). For DLINTSUB, `f` is one row.
pub fn to_command(
    action: &'static str,
    f: &Fields,
    schemas: Arc<Schemas>,
    today: u32,
    branch: &str,
) -> Prepared {
    let mut checks = Checks::default();
    let client = f.text("clientID").map(client_key).unwrap_or_default();
    let amount = |n| f.amount_fen(n).unwrap_or(0);
    let cmd = match action {
        "DLBREGSN" => {
            let cert = text(f, "custCertNo");
            Command::Open(OpenReq {
                master_acct_no: text(f, "mainAccNo"),
                member_code: f.text("vtlCustNm").unwrap_or(&cert).to_string(),
                member_name: text(f, "subAccNm"),
                global_type: text(f, "custCertType"),
                global_id: cert,
                mobile: String::new(),
            })
        }
        "DLOLCACC" => {
            checks.main_acc = Some(text(f, "mainAccNo"));
            checks.sub_acct_no = Some(text(f, "subAccNo"));
            Command::Close(OpenReq {
                master_acct_no: text(f, "mainAccNo"),
                member_code: String::new(),
                member_name: String::new(),
                global_type: String::new(),
                global_id: String::new(),
                mobile: String::new(),
            })
        }
        "DLSINSUB" | "DLSUBTRN" | "DLMDETRN" => {
            checks.main_acc = f.text("mainAccNo").map(str::to_string);
            checks.payee_name = Some(text(f, "recvAccNm"));
            let remark = f.text("abstract").or(f.text("memo")).unwrap_or("");
            Command::Transfer(TransferReq {
                out_sub: text(f, "payAccNo"),
                out_member: String::new(),
                in_sub: text(f, "recvAccNo"),
                in_member: String::new(),
                amount: amount("tranAmt"),
                fee: 0,
                order_no: client.clone(),
                remark: remark.to_string(),
            })
        }
        "DLCTNSUB" | "DLFNDOUT" => {
            checks.main_acc = f.text("mainAccNo").map(str::to_string);
            checks.same_bank = Some(f.text("sameBank") == Some("1"));
            checks.bank_code = f.text("recvTgfi").map(str::to_string);
            let sub = f.text("payAccNo").or(f.text("accountNo")).unwrap_or("");
            let remark = f.text("abstract").or(f.text("memo")).unwrap_or("");
            Command::Withdraw(WithdrawReq {
                sub_acct_no: sub.to_string(),
                member_code: String::new(),
                member_name: String::new(),
                acct_no: text(f, "recvAccNo"),
                acct_name: text(f, "recvAccNm"),
                amount: amount("tranAmt"),
                fee: 0,
                order_no: client.clone(),
                remark: remark.to_string(),
            })
        }
        "DLSUBBAL" | "DLSUBINF" => {
            checks.sub_acct_no = Some(text(f, "subAccNo"));
            Command::Details(PageReq {
                sub_acct_no: text(f, "subAccNo"),
                start_date: today,
                end_date: today,
                page: 1,
            })
        }
        "DLSBALQR" => {
            checks.main_acc = Some(text(f, "accountNo"));
            Command::Balance {
                sub_acct_no: text(f, "subAccNo"),
            }
        }
        "DLINTSUB" => {
            checks.main_acc = Some(text(f, "mainAccNo"));
            checks.internal_pay = f.text("payType") == Some("3");
            checks.same_bank = Some(f.text("payType") == Some("2"));
            checks.bank_code = f.text("recOpenBankCode").map(str::to_string);
            Command::Withdraw(WithdrawReq {
                sub_acct_no: text(f, "payAccountNo"),
                member_code: String::new(),
                member_name: String::new(),
                acct_no: text(f, "recAccountNo"),
                acct_name: text(f, "recAccountName"),
                amount: amount("tranAmount"),
                fee: 0,
                order_no: client.clone(),
                remark: text(f, "abstract"),
            })
        }
        "DLSUBDTL" | "DLSTRNDT" | "DLEDDRSQ" => {
            if action == "DLSTRNDT" {
                checks.main_acc = Some(text(f, "accountNo"));
            }
            let sub = f.text("subAccNo").or(f.text("accNo")).unwrap_or("");
            checks.sub_acct_no = Some(sub.to_string());
            checks.query = Query {
                start: f.date("startDate").unwrap_or(0),
                end: f.date("endDate").unwrap_or(0),
                first: f.int("startRecord").or(f.int("startNo")).unwrap_or(1),
                size: f.int("pageNumber").or(f.int("pageSize")).unwrap_or(0),
                pending_only: f.text("tranType") == Some("1"),
                min_amt: f.amount_fen("minAmt"),
                max_amt: f.amount_fen("maxAmt"),
                with_time: f.text("controlFlag") == Some("1"),
            };
            Command::Balance {
                sub_acct_no: sub.to_string(),
            }
        }
        // DLCIDSTT
        _ => {
            checks.orig_action = f.text("type").map(str::to_string);
            Command::Status {
                orig_serial: client.clone(),
            }
        }
    };
    let records = MONEY_MOVING.contains(&action);
    Prepared {
        cmd,
        serial: if records { client } else { String::new() },
        reply: CiticReply {
            action,
            schemas,
            checks,
            found: Mutex::new(Found::default()),
            branch: branch.to_string(),
        },
    }
}

/// The checks of validated `fields` that span fields (docs/citic.md), before the writer:
/// `DLF9993` (`InvalidField`, not recorded) when `startDate` is after `endDate`, when a
/// DLSUBDTL range is longer than three calendar months (`endDate` later than `startDate`
/// plus three months, the day clamped to the month's end), when DLSTRNDT `startRecord` is 0
/// or `pageNumber` is outside 1–10, when DLEDDRSQ `startNo` is 0 or `pageSize` is outside
/// 1–20, or when a DLSUBDTL or DLEDDRSQ `minAmt` is above its `maxAmt`.
pub fn check_fields(action: &str, f: &Fields) -> Result<(), ReturnCode> {
    let bad = Err(ReturnCode::InvalidField);
    if let (Some(start), Some(end)) = (f.date("startDate"), f.date("endDate")) {
        if start > end {
            return bad;
        }
        if action == "DLSUBDTL" && end > plus_three_months(start) {
            return bad;
        }
    }
    if matches!(action, "DLSUBDTL" | "DLEDDRSQ") {
        if let (Some(min), Some(max)) = (f.amount_fen("minAmt"), f.amount_fen("maxAmt")) {
            if min > max {
                return bad;
            }
        }
    }
    let (first, size, max) = match action {
        "DLSTRNDT" => (f.int("startRecord"), f.int("pageNumber"), 10),
        "DLEDDRSQ" => (f.int("startNo"), f.int("pageSize"), 20),
        _ => return Ok(()),
    };
    match (first, size) {
        (Some(first), Some(size)) if first >= 1 && (1..=max).contains(&size) => Ok(()),
        _ => bad,
    }
}

/// `yyyymmdd` plus three calendar months, the day clamped to the last day of that month.
fn plus_three_months(date: u32) -> u32 {
    let (y, m, d) = (date / 10_000, date / 100 % 100, date % 100);
    let months = m.saturating_add(2);
    let (y, m) = (y.saturating_add(months / 12), months % 12 + 1);
    let last = match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    y.saturating_mul(10_000)
        .saturating_add(m * 100)
        .saturating_add(d.min(last))
}

/// The served action named `code`, as a static string.
pub fn served(code: &str) -> Option<&'static str> {
    SERVED.iter().copied().find(|a| *a == code)
}

impl CiticReply {
    fn msg(&self, code: ReturnCode) -> String {
        self.schemas
            .return_codes
            .platform_message(code.as_str())
            .unwrap_or("")
            .to_string()
    }

    fn reply(
        &self,
        status: &str,
        message: String,
        mut fields: Vec<(&str, String)>,
        rows: Option<Vec<Vec<(&str, String)>>>,
    ) -> Reply {
        fields.push(("status", status.to_string()));
        fields.push(("statusText", message.clone()));
        let keep = self.action == "DLCIDSTT";
        let body = envelope::encode(&fields, rows.as_deref(), keep);
        Reply {
            code: status.to_string(),
            message,
            body,
        }
    }

    fn sub_reply(&self, d: &Decision, facts: &Facts, state: &LedgerState, s: &SubAccount) -> Reply {
        let ok = self.msg(ReturnCode::Ok);
        match self.action {
            "DLSUBBAL" => {
                let yesterday = yesterday_balance(s, facts);
                let row = vec![
                    ("actBal", format_fen(s.available())),
                    ("balance", format_fen(s.balance)),
                    ("cryType", "01".to_string()),
                    ("frozenAmt", format_fen(s.frozen)),
                    ("overAmt", "0.00".to_string()),
                    ("status", OK.to_string()),
                    ("statusText", ok.clone()),
                    ("subAccNm", s.member_name.clone()),
                    ("subAccNo", s.sub_acct_no.clone()),
                    ("yesterdayBal", format_fen(yesterday)),
                ];
                self.reply(OK, ok, Vec::new(), Some(vec![row]))
            }
            "DLSUBINF" => {
                let main = state
                    .master(s.master_id)
                    .map(|m| m.acct_no.clone())
                    .unwrap_or_default();
                let row = vec![
                    ("ACCBAL", format_fen(s.balance)),
                    ("MAINACCNO", main),
                    ("OVERAMT", "0.00".to_string()),
                    ("OVERFLAG", "0".to_string()),
                    ("SUBACCNM", s.member_name.clone()),
                    ("SUBACCTYP", "03".to_string()),
                    ("YESTERDAYBAL", format_fen(yesterday_balance(s, facts))),
                    ("subAccNo", s.sub_acct_no.clone()),
                ];
                self.reply(OK, ok, Vec::new(), Some(vec![row]))
            }
            "DLSBALQR" => {
                let row = vec![
                    ("DJAMT", format_fen(s.frozen)),
                    ("KYAMT", format_fen(s.available())),
                    ("SJAMT", format_fen(s.balance)),
                    ("SUBACCNM", s.member_name.clone()),
                    ("TZAMT", "0.00".to_string()),
                    ("XSACVL", "0.00".to_string()),
                    ("subAccNo", s.sub_acct_no.clone()),
                ];
                self.reply(OK, ok, Vec::new(), Some(vec![row]))
            }
            // DLBREGSN
            _ => {
                let _ = d;
                let fields = vec![
                    ("hostNo", format!("R{}", s.sub_acct_no)),
                    ("subAccNm", s.member_name.clone()),
                    ("subAccNo", s.sub_acct_no.clone()),
                ];
                self.reply(OK, ok, fields, None)
            }
        }
    }

    /// DLSUBDTL, DLSTRNDT and DLEDDRSQ from what [`DialectReply::read`] found.
    fn query_reply(&self, ok: String) -> Reply {
        let found = match self.found.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => return self.refusal(ReturnCode::Internal),
        };
        if found.too_many {
            return self.refusal(ReturnCode::InvalidField);
        }
        let sub = self.checks.sub_acct_no.clone().unwrap_or_default();
        let q = &self.checks.query;
        match self.action {
            "DLSUBDTL" => {
                let rows = found
                    .details
                    .into_iter()
                    .map(|d| {
                        let e = d.entry;
                        let mut row = vec![
                            ("ACCBAL", format_fen(e.balance_after)),
                            ("CDFG", e.dc.to_string()),
                            ("CRYTYPE", "01".to_string()),
                            ("MEMO", e.remark),
                            ("MIXNO", d.mix_no.to_string()),
                            ("MNGNODE", self.branch.clone()),
                            ("OPENACCNAME", d.other_bank),
                            ("OTHERACCNAME", d.other_name),
                            ("OTHERACCNO", e.peer_acct),
                            ("TRANAMT", format_fen(e.amount)),
                            ("TRANDATE", format!("{:08}", e.acct_date)),
                            ("TRANNO", e.front_seq_no),
                            ("TRANTYPE", e.booking_type.code().to_string()),
                            ("VCNM", String::new()),
                            ("VCTP", String::new()),
                            ("subAccNo", sub.clone()),
                        ];
                        if q.with_time {
                            row.push(("TRANTIME", colon_time(&e.time)));
                        }
                        row
                    })
                    .collect();
                self.reply(OK, ok, Vec::new(), Some(rows))
            }
            "DLSTRNDT" => {
                let rows: Vec<Vec<(&str, String)>> = found
                    .details
                    .into_iter()
                    .map(|d| {
                        let e = d.entry;
                        vec![
                            ("ACCBAL", format_fen(e.balance_after)),
                            ("CDFG", e.dc.to_string()),
                            ("HOSTFLW", e.front_seq_no),
                            ("HOSTSEQ", d.mix_no.to_string()),
                            ("OPPACCNAME", d.other_name),
                            ("OPPACCNO", e.peer_acct),
                            ("RESUME", e.remark),
                            ("TRANAMT", format_fen(e.amount)),
                            ("TRANDATE", format!("{:08}", e.acct_date)),
                            ("TRANTIME", e.time),
                            ("TRANTYPE", e.booking_type.code().to_string()),
                            ("subAccNo", sub.clone()),
                        ]
                    })
                    .collect();
                let fields = vec![
                    ("returnRecords", rows.len().to_string()),
                    ("totalRecords", found.total.to_string()),
                ];
                self.reply(OK, ok, fields, Some(rows))
            }
            // DLEDDRSQ
            _ => {
                let skip = usize::try_from(q.first.saturating_sub(1)).unwrap_or(usize::MAX);
                let take = usize::try_from(q.size).unwrap_or(0);
                let rows = found
                    .receipts
                    .into_iter()
                    .skip(skip)
                    .take(take)
                    .map(|r| {
                        let side = if r.payer_acct == sub { "D" } else { "C" };
                        vec![
                            ("bresqNo", r.receipt_no),
                            ("cdfg", side.to_string()),
                            ("checkCode", r.check_code),
                            ("payAccNm", r.payer_name),
                            ("payAccNo", r.payer_acct),
                            ("recvAccNm", r.payee_name),
                            ("recvAccNo", r.payee_acct),
                            ("tranAmt", format_fen(r.amount)),
                            ("tranDate", r.booking_date),
                            ("transeqNo", r.front_seq_no),
                        ]
                    })
                    .collect();
                let fields = vec![("totalCount", found.total.to_string())];
                self.reply(OK, ok, fields, Some(rows))
            }
        }
    }

    fn status_reply(&self, facts: &Facts) -> Reply {
        let Some(s) = facts.status.as_ref().filter(|s| {
            self.checks
                .orig_action
                .as_ref()
                .is_none_or(|t| *t == s.tx_code)
        }) else {
            return self.refusal(ReturnCode::NoRecord);
        };
        let (stt, status, text) = match facts
            .withdrawal
            .as_ref()
            .filter(|_| s.return_code == PENDING)
        {
            Some((_, chunks)) => match withdrawal_status(chunks) {
                "0" => ("0", OK.to_string(), self.msg(ReturnCode::Ok)),
                "2" => (
                    "0",
                    PARTIAL.to_string(),
                    "部分成功 partly settled, the rest refunded".to_string(),
                ),
                "1" => {
                    let mut sorted: Vec<_> = chunks.iter().collect();
                    sorted.sort_by_key(|c| c.chunk_no);
                    let code = sorted
                        .iter()
                        .find(|c| c.state == InstructionState::Failed)
                        .map(|c| c.reject_code.clone())
                        .unwrap_or_default();
                    let text = self
                        .schemas
                        .return_codes
                        .rail_message(&code)
                        .unwrap_or("退票 refunded")
                        .to_string();
                    ("1", format!("DLR{code}"), text)
                }
                _ => ("2", PROCESSING.to_string(), "处理中 processing".to_string()),
            },
            None if s.return_code == OK || s.return_code == PENDING => {
                ("0", OK.to_string(), self.msg(ReturnCode::Ok))
            }
            None => ("1", s.return_code.clone(), s.return_msg.clone()),
        };
        let row = vec![
            ("stt", stt.to_string()),
            ("status", status),
            ("statusText", text),
        ];
        self.reply(OK, self.msg(ReturnCode::Ok), Vec::new(), Some(vec![row]))
    }
}

/// `HHmmss` as `HH:MM:SS` (anything else as it is).
fn colon_time(t: &str) -> String {
    match (t.get(0..2), t.get(2..4), t.get(4..6)) {
        (Some(h), Some(m), Some(s)) if t.len() == 6 => format!("{h}:{m}:{s}"),
        _ => t.to_string(),
    }
}

/// The total balance at the end of the previous business day: the balance before the first
/// of today's rows (`facts.entries` holds today's first page, oldest first), or the balance
/// now when nothing was booked today.
fn yesterday_balance(s: &SubAccount, facts: &Facts) -> i64 {
    let Some(first) = facts.entries.1.first() else {
        return s.balance;
    };
    let delta = match (first.booking_type, first.dc) {
        (BookingType::Freeze | BookingType::Unfreeze, _) => 0,
        (_, 'C') => first.amount,
        _ => first.amount.saturating_neg(),
    };
    first.balance_after.saturating_sub(delta)
}

impl DialectReply for CiticReply {
    fn prepare(
        &self,
        cmd: &mut Command,
        state: &LedgerState,
        enterprise: &str,
    ) -> Result<(), ReturnCode> {
        let under_main = |s: &SubAccount| match &self.checks.main_acc {
            Some(main) => state
                .master(s.master_id)
                .is_some_and(|m| m.acct_no == *main),
            None => true,
        };
        match cmd {
            Command::Close(r) => {
                let no = self.checks.sub_acct_no.as_deref().unwrap_or("");
                let s = state
                    .sub_owned(enterprise, no)
                    .filter(|s| under_main(s))
                    .ok_or(ReturnCode::SubNotFound)?;
                r.member_code = s.member_code.clone();
                r.member_name = s.member_name.clone();
                r.global_type = s.global_type.clone();
                r.global_id = s.global_id.clone();
            }
            Command::Transfer(r) => {
                let payer = state
                    .sub_owned(enterprise, &r.out_sub)
                    .filter(|s| under_main(s));
                let payee = state
                    .sub_owned(enterprise, &r.in_sub)
                    .filter(|s| under_main(s));
                let (Some(payer), Some(payee)) = (payer, payee) else {
                    return Err(ReturnCode::SubNotFound);
                };
                if payer.master_id != payee.master_id {
                    return Err(ReturnCode::SubNotFound);
                }
                if self.checks.payee_name.as_deref() != Some(payee.member_name.as_str()) {
                    return Err(ReturnCode::MemberMismatch);
                }
                r.out_member = payer.member_code.clone();
                r.in_member = payee.member_code.clone();
            }
            Command::Withdraw(r) => {
                if self.checks.internal_pay {
                    return Err(ReturnCode::InvalidField);
                }
                let s = state
                    .sub_owned(enterprise, &r.sub_acct_no)
                    .filter(|s| under_main(s))
                    .ok_or(ReturnCode::SubNotFound)?;
                if let Some(b) = s.binding.as_ref().filter(|b| b.verified) {
                    let bank_ok = self
                        .checks
                        .bank_code
                        .as_ref()
                        .is_none_or(|c| *c == b.bank_code);
                    if self.checks.same_bank != Some(b.same_bank) || !bank_ok {
                        return Err(ReturnCode::NotBound);
                    }
                }
                r.member_code = s.member_code.clone();
                r.member_name = s.member_name.clone();
            }
            Command::Balance { sub_acct_no } => {
                state
                    .sub_owned(enterprise, sub_acct_no)
                    .filter(|s| under_main(s))
                    .ok_or(ReturnCode::SubNotFound)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn encode(&self, d: &Decision, facts: &Facts, state: &LedgerState) -> Reply {
        if self.action == "DLCIDSTT" {
            return self.status_reply(facts);
        }
        if d.code != ReturnCode::Ok {
            return self.refusal(d.code);
        }
        let ok = self.msg(ReturnCode::Ok);
        let seq = d.front_seq_no.clone().unwrap_or_default();
        match self.action {
            "DLSINSUB" | "DLOLCACC" => self.reply(OK, ok, Vec::new(), None),
            "DLSUBTRN" | "DLMDETRN" => self.reply(OK, ok, vec![("hostNo", seq)], None),
            "DLCTNSUB" | "DLINTSUB" => self.reply(PENDING, ok, Vec::new(), None),
            "DLSUBDTL" | "DLSTRNDT" | "DLEDDRSQ" => self.query_reply(ok),
            "DLFNDOUT" => self.reply(PENDING, ok, vec![("hostNo", seq)], None),
            _ => {
                let no = d
                    .fields
                    .iter()
                    .find(|(k, _)| *k == "SubAcctNo")
                    .map(|(_, v)| v.clone())
                    .or_else(|| self.checks.sub_acct_no.clone());
                match no.as_deref().and_then(|n| state.sub_by_no(n)) {
                    Some(s) => self.sub_reply(d, facts, state, s),
                    None => self.refusal(ReturnCode::SubNotFound),
                }
            }
        }
    }

    fn refusal(&self, code: ReturnCode) -> Reply {
        error_reply(&self.schemas, code)
    }

    fn records(&self) -> bool {
        MONEY_MOVING.contains(&self.action)
    }

    fn read(
        &self,
        store: &mut dyn Store,
        state: &LedgerState,
        enterprise: &str,
    ) -> Result<(), StoreError> {
        if !matches!(self.action, "DLSUBDTL" | "DLSTRNDT" | "DLEDDRSQ") {
            return Ok(());
        }
        let no = self.checks.sub_acct_no.as_deref().unwrap_or("");
        let Some(sub) = state.sub_owned(enterprise, no) else {
            return Ok(());
        };
        let q = &self.checks.query;
        let mut found = Found::default();
        match self.action {
            "DLSTRNDT" => {
                // One row a page, so that any start row is a page (no store query of its own).
                let mut rows = Vec::new();
                for i in 0..q.size {
                    let Some(n) = q.first.checked_add(i) else {
                        break;
                    };
                    let (total, page) = store.entries_page(sub.id, q.start, q.end, n, 1)?;
                    found.total = total;
                    match page.into_iter().next() {
                        Some(e) => rows.push(e),
                        None => break,
                    }
                }
                // The row number within a FrontSeqNo may start on an earlier page.
                let mut before = 0u32;
                if let Some(first) = rows.first() {
                    let mut n = q.first;
                    while n > 1 && before < 16 {
                        n -= 1;
                        let (_, page) = store.entries_page(sub.id, q.start, q.end, n, 1)?;
                        if page
                            .first()
                            .is_none_or(|e| e.front_seq_no != first.front_seq_no)
                        {
                            break;
                        }
                        before += 1;
                    }
                }
                found.details = details(store, state, sub, rows, before)?;
            }
            _ if self.action == "DLSUBDTL" && q.pending_only => {}
            _ => {
                let (total, rows) =
                    store.entries_page(sub.id, q.start, q.end, 1, DETAIL_ROWS_MAX + 1)?;
                if total > u64::from(DETAIL_ROWS_MAX) {
                    found.too_many = true;
                } else if self.action == "DLSUBDTL" {
                    let rows = rows
                        .into_iter()
                        .filter(|e| q.min_amt.is_none_or(|m| e.amount >= m))
                        .filter(|e| q.max_amt.is_none_or(|m| e.amount <= m))
                        .collect();
                    found.details = details(store, state, sub, rows, 0)?;
                } else {
                    let mut seen = std::collections::HashSet::new();
                    for e in rows {
                        if !seen.insert(e.front_seq_no.clone()) {
                            continue;
                        }
                        let Some(r) = store.receipt(&e.front_seq_no)? else {
                            continue;
                        };
                        let own =
                            r.payer_acct == sub.sub_acct_no || r.payee_acct == sub.sub_acct_no;
                        let in_bounds = q.min_amt.is_none_or(|m| r.amount >= m)
                            && q.max_amt.is_none_or(|m| r.amount <= m);
                        if own && in_bounds {
                            found.receipts.push(r);
                        }
                    }
                    found.total = found.receipts.len() as u64;
                }
            }
        }
        if let Ok(mut slot) = self.found.lock() {
            *slot = found;
        }
        Ok(())
    }
}

/// `rows` of `sub` with their other party (the other sub-account's member; for an inbound
/// credit or an allocation, the payer of the credit; for a withdrawal or its refund, the
/// bound account's holder and branch) and their row number within their `FrontSeqNo`
/// (the first row's counts on from `before`).
fn details(
    store: &mut dyn Store,
    state: &LedgerState,
    sub: &SubAccount,
    rows: Vec<Entry>,
    before: u32,
) -> Result<Vec<Detail>, StoreError> {
    let mut out: Vec<Detail> = Vec::with_capacity(rows.len());
    for entry in rows {
        let mix_no = match out.last() {
            Some(p) if p.entry.front_seq_no == entry.front_seq_no => p.mix_no.saturating_add(1),
            Some(_) => 1,
            None => before.saturating_add(1),
        };
        let (other_name, other_bank) = if let Some(peer) = state.sub_by_no(&entry.peer_acct) {
            (peer.member_name.clone(), String::new())
        } else {
            match entry.booking_type {
                BookingType::InboundCredit | BookingType::SuspenseAllocation => (
                    store
                        .credit(&entry.front_seq_no)?
                        .map(|c| c.payer_name)
                        .unwrap_or_default(),
                    String::new(),
                ),
                BookingType::Withdrawal | BookingType::WithdrawalRefund => sub
                    .binding
                    .as_ref()
                    .filter(|b| b.acct_no == entry.peer_acct)
                    .map(|b| (b.acct_name.clone(), b.branch_name.clone()))
                    .unwrap_or_default(),
                _ => (String::new(), String::new()),
            }
        };
        out.push(Detail {
            entry,
            other_name,
            other_bank,
            mix_no,
        });
    }
    Ok(out)
}

/// Validates `body` against the action's schema (`DLF9993` on a fault), GBK byte lengths.
pub fn validate(
    schema: &TxSchema,
    body: &crate::codec::xml::XmlBody,
) -> Result<Fields, ReturnCode> {
    validate_request(schema, body, Charset::Gbk).map_err(|_| ReturnCode::InvalidField)
}
