//! Replayable byte fixtures (`fixtures/<flow>/<case>/`): the whole set runs, flows then cases
//! in byte-wise name order, against ONE fresh gateway (fixed clock, fixed receipt key), so
//! the responses are deterministic and later flows rely on earlier ones.
//!
//! - `fixtures_replay_byte_for_byte` replays every `request.bin` and compares with
//!   `response.bin` (header date/time masked), and checks independently of the blessed bytes
//!   that each response carries the return code named by its case directory.
//! - `generate_fixtures` (ignored) rebuilds the tree from [`cases`]: it runs the cases one by
//!   one against a live gateway, building each request from what earlier responses returned
//!   (sub-account numbers, `FrontSeqNo`s), writes `request.bin`, `note.txt` and `link`,
//!   then blesses `response.bin` from a replay against a second fresh gateway, writes the
//!   `close` markers and verifies the result against a third.
//!
//! Case directories are named `NN-CODE-RET-words`: a global order number (2 digits, or as
//! many as the largest number of its flow needs, zero-padded alike within a flow so that the
//! byte-wise order is the numeric one: `09-withdraw` runs `080` … `107`), the transaction
//! (or trade) code, the expected return code (`000000`, `YQxxxx`, `E1000x`, or a core result
//! `0000`/`1001`/`1002`/`1003`) and what the case is about.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bankfep::client::{build_notice, build_request, xml_request, BodyCharset, Response};
use bankfep::tools::replay::{list_cases, replay, CaseOutcome, ReplayOptions, MASK};
use common::*;

/// Header date and time of every fixture request.
const DATE: &str = "20261123";
const TIME: &str = "100000";
/// Per-step timeout of replays, ms.
const TIMEOUT_MS: u64 = 10_000;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

// ---------------------------------------------------------------------------------------
// Case names and return codes
// ---------------------------------------------------------------------------------------

/// The expected return code named by a case directory (`NN-CODE-RET-words`), or why the name
/// is not of that form.
fn expected_code(case_dir: &str) -> Result<String, String> {
    let parts: Vec<&str> = case_dir.splitn(4, '-').collect();
    let [nn, code, ret, words] = parts[..] else {
        return Err(format!("{case_dir}: not NN-CODE-RET-words"));
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if nn.len() < 2 || !digits(nn, nn.len()) {
        return Err(format!(
            "{case_dir}: order number {nn:?} is not 2 or more digits"
        ));
    }
    if !digits(code, 4) {
        return Err(format!("{case_dir}: code {code:?} is not 4 digits"));
    }
    let platform_ok = ret == "000000"
        || (ret.len() == 6 && ret.starts_with("YQ") && digits(&ret[2..], 4))
        || (ret.len() == 6 && ret.starts_with("E1000") && digits(&ret[5..], 1));
    let core_ok = ["0000", "1001", "1002", "1003"].contains(&ret);
    if !platform_ok && !core_ok {
        return Err(format!("{case_dir}: {ret:?} is not a return code"));
    }
    if words.is_empty() {
        return Err(format!("{case_dir}: no words"));
    }
    Ok(ret.to_string())
}

/// The return code actually carried by `response`: header bytes 87..93 of a platform frame,
/// record bytes 36..40 (after the 8-digit prefix) of a core reply.
fn actual_code(expected: &str, response: &[u8]) -> String {
    let range = if expected.len() == 6 { 87..93 } else { 44..48 };
    response
        .get(range)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| format!("<{} bytes>", response.len()))
}

fn case_name(case: &Path) -> String {
    case.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_replay_byte_for_byte() {
    let dir = fixtures_dir();
    let cases = list_cases(&dir).expect("fixtures/ lists");
    assert!(cases.len() >= 60, "only {} cases", cases.len());

    // Independent of the blessed bytes: the name says which code the response must carry.
    let mut problems = Vec::new();
    for case in &cases {
        let name = case_name(case);
        let want = match expected_code(&name) {
            Ok(w) => w,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let resp = std::fs::read(case.join("response.bin")).unwrap_or_default();
        let got = actual_code(&want, &resp);
        if got != want {
            problems.push(format!(
                "{name}: response.bin carries {got:?}, name says {want:?}"
            ));
        }
        if want.len() == 4 && !(resp.len() == 108 && resp.starts_with(b"000001006920")) {
            problems.push(format!("{name}: not a 100-byte 6920 reply"));
        }
    }
    // An idempotent replay answers the original bytes (§1.2), header date/time aside.
    let find = |suffix: &str| {
        cases
            .iter()
            .find(|c| case_name(c).ends_with(suffix))
            .unwrap_or_else(|| panic!("no case ending in {suffix}"))
    };
    let masked = |p: &Path| {
        let mut b = std::fs::read(p.join("response.bin")).expect("response.bin");
        if let Some(m) = b.get_mut(MASK) {
            m.fill(b'0');
        }
        b
    };
    assert_eq!(
        masked(find("-transfer-no-fee")),
        masked(find("-same-serial-same-body-replays")),
        "idempotent replay must return the original response"
    );
    assert_eq!(
        masked(find("-insufficient-including-fee")),
        masked(find("-refused-serial-replays-refusal")),
        "a replayed refusal must return the original response"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let gw = start("fixtures").await;
    let out = replay(&ReplayOptions {
        dir,
        platform_addr: gw.platform.clone(),
        core_addr: gw.core.clone(),
        bless: false,
        timeout_ms: TIMEOUT_MS,
    })
    .await
    .expect("replay runs");
    assert_eq!(out.len(), cases.len());
    let failed: Vec<&CaseOutcome> = out.iter().filter(|o| !o.ok).collect();
    for f in &failed {
        eprintln!("FAIL {}: {} ({})", f.case, f.detail, f.note);
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed",
        failed.len(),
        out.len()
    );
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

/// The stateless fault cases that are not marked `close` (malformed core records, header and
/// body faults) all travel over ONE connection per link against a fresh gateway: each is
/// answered as blessed and the server keeps the connection open (the replay tool itself
/// would silently reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cases_without_close_keep_the_connection_open() {
    let cases = list_cases(&fixtures_dir()).expect("fixtures/ lists");
    let gw = start("fixtures-open").await;
    let mut core = gw.core_client().await;
    let mut plat = gw.client().await;
    let (mut n_core, mut n_plat) = (0, 0);
    for case in &cases {
        let name = case_name(case);
        let code = expected_code(&name).expect("case name");
        if case.join("close").exists() || code == "000000" || code == "0000" {
            continue;
        }
        let flow = case.parent().map(case_name).unwrap_or_default();
        let stateless = matches!(code.as_str(), "1001" | "1002")
            || (code.starts_with("YQ") && flow == "07-header");
        if !stateless {
            continue;
        }
        let req = std::fs::read(case.join("request.bin")).expect("request.bin");
        let want = std::fs::read(case.join("response.bin")).expect("response.bin");
        if code.len() == 4 {
            let rec = core
                .call_raw(&req)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e} (connection closed?)"));
            assert_eq!(rec, want[8..], "{name}");
            n_core += 1;
        } else {
            let r = plat
                .call_raw(&req)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e} (connection closed?)"));
            let mut got = r.header;
            got.extend_from_slice(&r.body);
            assert_eq!(masked(&got), masked(&want), "{name}");
            n_plat += 1;
        }
    }
    assert!(
        n_core >= 7 && n_plat >= 8,
        "{n_core} core, {n_plat} platform cases"
    );
    gw.running.shutdown().await;
}

#[test]
fn every_case_has_a_one_line_note() {
    let cases = list_cases(&fixtures_dir()).expect("fixtures/ lists");
    assert!(!cases.is_empty());
    let mut flows = BTreeSet::new();
    for case in &cases {
        let note = std::fs::read_to_string(case.join("note.txt"))
            .unwrap_or_else(|e| panic!("{}: note.txt: {e}", case.display()));
        let body = note.strip_suffix('\n').unwrap_or(&note);
        assert!(
            !body.trim().is_empty() && !body.contains('\n') && !body.contains('\r'),
            "{}: note.txt must be one non-empty line",
            case.display()
        );
        assert!(case.join("request.bin").is_file(), "{}", case.display());
        assert!(case.join("response.bin").is_file(), "{}", case.display());
        let flow = case.parent().map(case_name).unwrap_or_default();
        flows.insert(flow);
    }
    // Order numbers are unique across flows and increase in replay (byte-wise) order.
    let mut seen = BTreeSet::new();
    let mut last = 0u32;
    for case in &cases {
        let name = case_name(case);
        let nn: u32 = name
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no order number"));
        assert!(seen.insert(nn), "order number {nn} used twice");
        assert!(nn > last, "{name}: order number {nn} replays after {last}");
        last = nn;
    }
    assert!(flows.len() >= 7, "{flows:?}");
}

// ---------------------------------------------------------------------------------------
// The case table
// ---------------------------------------------------------------------------------------

/// Values learnt from earlier responses (sub-account numbers, `FrontSeqNo`s).
type Ctx = HashMap<String, String>;
type Build = Box<dyn Fn(&Ctx) -> Vec<u8>>;
type Capture = Box<dyn Fn(&Response, &mut Ctx)>;

struct Case {
    flow: &'static str,
    /// `CODE-RET-words`; the order number is prefixed by position.
    name: &'static str,
    note: &'static str,
    /// The server must close the connection after its reply.
    close: bool,
    /// Content of the `link` file for requests malformed in their first bytes.
    link: Option<&'static str>,
    build: Build,
    capture: Option<Capture>,
    /// `(key, account)`: after the case, the generator waits for the built-in rail to pay
    /// `account` and stores the amount it received as `key` (yuan) and `key_FEN` (fen): the
    /// small-amount verification a member reads on its bank statement.
    probe: Option<(&'static str, &'static str)>,
}

fn g(c: &Ctx, k: &str) -> String {
    c.get(k)
        .cloned()
        .unwrap_or_else(|| panic!("{k} not learnt from an earlier case"))
}

/// A GBK request of the demo enterprise with the fixed header date and time.
fn gbk_request(tx: &str, serial: &str, fields: &[(&str, String)]) -> Vec<u8> {
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = xml_request(BodyCharset::Gbk, &f);
    build_request(BodyCharset::Gbk, ENT, tx, serial, DATE, TIME, &body).expect("request builds")
}

/// A header built by `build_request` (GBK, empty body) followed by `body` as raw bytes, with
/// the body length patched in.
fn raw_request(tx: &str, serial: &str, body: &[u8]) -> Vec<u8> {
    let mut f = build_request(BodyCharset::Gbk, ENT, tx, serial, DATE, TIME, "").expect("header");
    f[30..40].copy_from_slice(format!("{:010}", body.len()).as_bytes());
    f.extend_from_slice(body);
    f
}

/// A well-formed 6920 notice (IBPS, 20261123 093000, payer 6217000000000000001 张三).
fn notice_frame(serial: &str, payee: &str, fen: u64, memo: &str) -> Vec<u8> {
    build_notice(
        serial,
        "IBPS",
        "20261123",
        "093000",
        payee,
        fen,
        "6217000000000000001",
        "张三",
        "102100099996",
        memo,
    )
    .expect("notice builds")
}

fn s(v: &str) -> String {
    v.to_string()
}

struct Table(Vec<Case>);

impl Table {
    fn push(&mut self, flow: &'static str, name: &'static str, note: &'static str, build: Build) {
        self.0.push(Case {
            flow,
            name,
            note,
            close: false,
            link: None,
            build,
            capture: None,
            probe: None,
        });
    }
    /// Marks the last case as closing the connection after the reply.
    fn close(&mut self) {
        self.last().close = true;
    }
    fn link(&mut self, link: &'static str) {
        self.last().link = Some(link);
    }
    /// Stores field `field` of the last case's response as `key`.
    fn learn(&mut self, key: &'static str, field: &'static str) {
        self.last().capture = Some(Box::new(move |r: &Response, c: &mut Ctx| {
            let v = r
                .field(field)
                .unwrap_or_else(|| panic!("{field} missing: {}", r.body_text()));
            c.insert(key.to_string(), v);
        }));
    }
    /// Stores what the built-in rail paid to `account` during the last case as `key`.
    fn probe(&mut self, key: &'static str, account: &'static str) {
        self.last().probe = Some((key, account));
    }
    fn learn_with(&mut self, f: Capture) {
        self.last().capture = Some(f);
    }
    fn last(&mut self) -> &mut Case {
        self.0.last_mut().expect("a case")
    }
}

/// A platform request whose fields may use learnt values.
fn p(
    tx: &'static str,
    serial: &'static str,
    fields: impl Fn(&Ctx) -> Vec<(&'static str, String)> + 'static,
) -> Build {
    Box::new(move |c| gbk_request(tx, serial, &fields(c)))
}

fn open_fields(
    member: &'static str,
    name: &'static str,
    gtype: &'static str,
    gid: &'static str,
) -> impl Fn(&Ctx) -> Vec<(&'static str, String)> {
    move |_| {
        vec![
            ("FundSummaryAcctNo", s(MASTER)),
            ("TranNetMemberCode", s(member)),
            ("MemberName", s(name)),
            ("MemberGlobalType", s(gtype)),
            ("MemberGlobalId", s(gid)),
        ]
    }
}

fn close_fields(
    member: &'static str,
    name: &'static str,
    gtype: &'static str,
    gid: &'static str,
) -> impl Fn(&Ctx) -> Vec<(&'static str, String)> {
    move |c| {
        let mut f = vec![("FunctionFlag", s("2"))];
        f.extend(open_fields(member, name, gtype, gid)(c));
        f
    }
}

#[allow(clippy::too_many_arguments)]
fn transfer_fields(
    out_key: &'static str,
    out_member: &'static str,
    in_key: &'static str,
    in_member: &'static str,
    amt: &'static str,
    fee: Option<&'static str>,
    order: &'static str,
) -> impl Fn(&Ctx) -> Vec<(&'static str, String)> {
    move |c| {
        let acct = |k: &str| if k.starts_with("SUB_") { g(c, k) } else { s(k) };
        let mut f = vec![
            ("OutSubAcctNo", acct(out_key)),
            ("OutMemberCode", s(out_member)),
            ("InSubAcctNo", acct(in_key)),
            ("InMemberCode", s(in_member)),
            ("TranAmt", s(amt)),
        ];
        if let Some(fee) = fee {
            f.push(("TranFee", s(fee)));
        }
        f.push(("OrderNo", s(order)));
        f.push(("Remark", s("货款")));
        f
    }
}

fn freeze_fields(
    flag: &'static str,
    amt: &'static str,
    order: &'static str,
) -> impl Fn(&Ctx) -> Vec<(&'static str, String)> {
    move |c| {
        vec![
            ("FunctionFlag", s(flag)),
            ("SubAcctNo", g(c, "SUB_A")),
            ("TranAmt", s(amt)),
            ("OrderNo", s(order)),
        ]
    }
}

fn date_range(page: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("StartDate", s("20261101")),
        ("EndDate", s("20261130")),
        ("PageNum", s(page)),
    ]
}

fn bind_fields(
    sub_key: &'static str,
    member: &'static str,
    name: &'static str,
    acct: &'static str,
    bank_type: &'static str,
    branch_id: Option<&'static str>,
) -> impl Fn(&Ctx) -> Vec<(&'static str, String)> {
    move |c| {
        let mut f = vec![
            ("SubAcctNo", g(c, sub_key)),
            ("TranNetMemberCode", s(member)),
            ("MemberName", s(name)),
            ("MemberAcctNo", s(acct)),
            ("BankType", s(bank_type)),
            (
                "AcctOpenBranchName",
                s(if bank_type == "1" {
                    "本行营业部"
                } else {
                    "中国工商银行北京分行"
                }),
            ),
        ];
        if let Some(id) = branch_id {
            f.push(("EiconBankBranchId", s(id)));
        }
        f
    }
}

#[allow(clippy::too_many_arguments)]
fn withdraw_fields(
    sub_key: &'static str,
    member: &'static str,
    name: &'static str,
    acct: &'static str,
    acct_name: &'static str,
    amt: &'static str,
    commission: Option<&'static str>,
    order: &'static str,
) -> impl Fn(&Ctx) -> Vec<(&'static str, String)> {
    move |c| {
        let mut f = vec![
            ("SubAcctNo", g(c, sub_key)),
            ("TranNetMemberCode", s(member)),
            ("MemberName", s(name)),
            ("TakeCashAcctNo", s(acct)),
            ("OutAmtAcctName", s(acct_name)),
            ("CashAmt", s(amt)),
        ];
        if let Some(fee) = commission {
            f.push(("TakeCashCommission", s(fee)));
        }
        f.push(("OrderNo", s(order)));
        f.push(("Remark", s("提现")));
        f
    }
}

// Members.
const A: (&str, &str, &str, &str) = ("FXM-A", "张三丰", "1", "110101199003071234");
const B: (&str, &str, &str, &str) = ("FXM-B", "李四贸易有限公司", "73", "91110000MA01ABCD2X");
const C: (&str, &str, &str, &str) = ("FXM-C", "王五", "1", "310101198807150021");
const D: (&str, &str, &str, &str) = ("FXM-D", "赵六商行", "73", "91310000MA1FL0001Y");
const E: (&str, &str, &str, &str) = ("FXM-E", "孙八", "1", "110101199205050018");
const F: (&str, &str, &str, &str) = ("FXM-F", "周九商贸有限公司", "73", "91110000MA01WXYZ9K");
/// FXM-E's withdrawal account at another bank (super e-bank code 102100099996).
const E_ACCT: &str = "6217000000000000090";
/// FXM-F's withdrawal account at this bank.
const F_ACCT: &str = "6222000000000000091";

/// Every case, in replay order.
fn cases() -> Vec<Case> {
    let mut t = Table(Vec::new());

    // ---- 01-open: 6248 ----------------------------------------------------------------
    let f = "01-open";
    t.push(f, "6248-000000-open-member-a", "6248 opens a sub-account for member FXM-A (GBK name 张三丰, ID card); the first SubAcctNo is 9000000000000019", p("6248", "FX-OPEN-A", open_fields(A.0, A.1, A.2, A.3)));
    t.learn("SUB_A", "SubAcctNo");
    t.push(f, "6248-000000-open-member-b", "6248 opens a sub-account for member FXM-B (company name, unified social credit code 73); the next SubAcctNo", p("6248", "FX-OPEN-B", open_fields(B.0, B.1, B.2, B.3)));
    t.learn("SUB_B", "SubAcctNo");
    t.push(
        f,
        "6248-000000-open-member-c",
        "6248 opens a sub-account for member FXM-C (王五)",
        p("6248", "FX-OPEN-C", open_fields(C.0, C.1, C.2, C.3)),
    );
    t.learn("SUB_C", "SubAcctNo");
    t.push(
        f,
        "6248-000000-reopen-same-member-same-subacctno",
        "6248 again for FXM-A with the same name and id (new serial) returns the same SubAcctNo",
        p("6248", "FX-REOPEN-A", open_fields(A.0, A.1, A.2, A.3)),
    );
    t.push(
        f,
        "6248-E10002-reopen-different-name",
        "6248 again for FXM-A with a different MemberName is refused E10002",
        p(
            "6248",
            "FX-REOPEN-A-NAME",
            open_fields(A.0, "张三", A.2, A.3),
        ),
    );
    t.push(f, "6248-E10001-unknown-master-account", "6248 under a FundSummaryAcctNo that is not a master account of the enterprise is refused E10001", p("6248", "FX-OPEN-BADMASTER", |_| vec![
        ("FundSummaryAcctNo", s("6222000000000000002")),
        ("TranNetMemberCode", s("FXM-X")),
        ("MemberName", s("钱七")),
        ("MemberGlobalType", s("1")),
        ("MemberGlobalId", s("110101199001010011")),
    ]));
    t.push(
        f,
        "6248-YQ9993-bad-member-global-type",
        "6248 with MemberGlobalType 2 (only 1 and 73 are allowed) is refused YQ9993",
        p(
            "6248",
            "FX-OPEN-BADTYPE",
            open_fields("FXM-X", "钱七", "2", "110101199001010011"),
        ),
    );
    t.push(
        f,
        "6248-YQ9993-missing-member-name",
        "6248 without the required MemberName element is refused YQ9993",
        p("6248", "FX-OPEN-NONAME", |_| {
            vec![
                ("FundSummaryAcctNo", s(MASTER)),
                ("TranNetMemberCode", s("FXM-X")),
                ("MemberGlobalType", s("1")),
                ("MemberGlobalId", s("110101199001010011")),
            ]
        }),
    );
    t.push(
        f,
        "6248-000000-open-member-d",
        "6248 opens a sub-account for member FXM-D, to be closed while empty",
        p("6248", "FX-OPEN-D", open_fields(D.0, D.1, D.2, D.3)),
    );
    t.learn("SUB_D", "SubAcctNo");
    t.push(
        f,
        "6248-000000-close-empty-member-d",
        "6248 FunctionFlag 2 closes FXM-D, which holds nothing; the response names its SubAcctNo",
        p("6248", "FX-CLOSE-D", close_fields(D.0, D.1, D.2, D.3)),
    );
    t.push(
        f,
        "6248-E10004-close-again",
        "6248 FunctionFlag 2 for the already closed FXM-D is refused E10004",
        p("6248", "FX-CLOSE-D-AGAIN", close_fields(D.0, D.1, D.2, D.3)),
    );

    // ---- 02-core: 6920 notices ---------------------------------------------------------
    let f = "02-core";
    t.push(
        f,
        "6920-0000-credit-to-sub-account-a",
        "6920 notice of 10000.00 with FXM-A's SubAcctNo as payee is booked to FXM-A (0000)",
        Box::new(|c| notice_frame("FXCORE0001", &g(c, "SUB_A"), 1_000_000, "")),
    );
    t.push(
        f,
        "6920-0000-same-bank-serial-again",
        "the same notice (same bank serial FXCORE0001) again is answered 0000 and moves no money",
        Box::new(|c| notice_frame("FXCORE0001", &g(c, "SUB_A"), 1_000_000, "")),
    );
    t.push(
        f,
        "6010-000000-balance-a-credited-once",
        "6010 of FXM-A shows 10000.00: the repeated notice was booked once",
        p("6010", "FX-BAL-A-1", |c| vec![("SubAcctNo", g(c, "SUB_A"))]),
    );
    t.push(f, "6920-0000-master-memo-names-sub-b", "6920 of 3000.00 to the master account whose memo contains exactly one sub-account number (FXM-B's) is allocated to FXM-B", Box::new(|c| notice_frame("FXCORE0002", MASTER, 300_000, &format!("货款 {}", g(c, "SUB_B")))));
    t.push(f, "6920-0000-master-no-memo-to-suspense", "6920 of 500.00 to the master account with a memo naming no sub-account goes to suspense (allocated later with 6139)", Box::new(|_| notice_frame("FXCORE0003", MASTER, 50_000, "预付款")));
    t.push(f, "6920-1002-unknown-payee", "6920 to an account that is neither a master account nor a sub-account of the gateway is answered 1002", Box::new(|_| notice_frame("FXCORE0004", "6222999999999999999", 10_000, "")));
    t.push(
        f,
        "6920-1001-wrong-currency",
        "6920 record with currency USD instead of RMB is answered 1001, bank serial echoed",
        Box::new(|c| {
            let mut b = notice_frame("FXCORE0005", &g(c, "SUB_A"), 10_000, "");
            b[8 + 101..8 + 104].copy_from_slice(b"USD");
            b
        }),
    );
    t.push(
        f,
        "6920-1001-bad-date",
        "6920 record with accounting date 20261332 is answered 1001",
        Box::new(|c| {
            let mut b = notice_frame("FXCORE0006", &g(c, "SUB_A"), 10_000, "");
            b[8 + 40..8 + 48].copy_from_slice(b"20261332");
            b
        }),
    );
    t.push(
        f,
        "6920-1001-non-digit-amount",
        "6920 record whose amount field holds a non-digit (00000000001O000) is answered 1001",
        Box::new(|c| {
            let mut b = notice_frame("FXCORE0007", &g(c, "SUB_A"), 10_000, "");
            b[8 + 86..8 + 101].copy_from_slice(b"00000000001O000");
            b
        }),
    );
    t.push(f, "6920-1001-wrong-trade-code", "a record with trade code 6921 instead of 6920 is answered 1001 with its bank serial echoed (§2: also on errors where it could be read)", Box::new(|c| {
        let mut b = notice_frame("FXCORE0008", &g(c, "SUB_A"), 10_000, "");
        b[8..12].copy_from_slice(b"6921");
        b
    }));
    t.push(f, "6920-1001-short-record", "a 200-byte record with a correct prefix 00000200 is answered 1001 and the connection stays open", Box::new(|c| {
        let b = notice_frame("FXCORE0009", &g(c, "SUB_A"), 10_000, "");
        let mut out = b"00000200".to_vec();
        out.extend_from_slice(&b[8..208]);
        out
    }));
    t.push(
        f,
        "6920-1001-zero-amount",
        "6920 notice of amount 0 is answered 1001",
        Box::new(|c| notice_frame("FXCORE0010", &g(c, "SUB_A"), 0, "")),
    );
    t.push(
        f,
        "6920-0000-closed-sub-account-to-suspense",
        "6920 of 123.45 naming closed FXM-D's SubAcctNo as payee is accepted and goes to suspense",
        Box::new(|c| notice_frame("FXCORE0011", &g(c, "SUB_D"), 12_345, "")),
    );
    t.push(f, "6920-1001-prefix-not-digits-closes", "a notice whose length prefix 0000O390 is not 8 digits is answered 1001 and the connection is closed", Box::new(|c| {
        let mut b = notice_frame("FXCORE0012", &g(c, "SUB_A"), 10_000, "");
        b[4] = b'O';
        b
    }));
    t.link("core");
    t.close();

    // ---- 03-transfer: 6034 -------------------------------------------------------------
    let f = "03-transfer";
    t.push(
        f,
        "6034-000000-transfer-no-fee",
        "6034 moves 100.00 from FXM-A to FXM-B without a fee; FrontSeqNo returned",
        p(
            "6034",
            "FX-TR-PLAIN",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "100.00",
                None,
                "FX-ORD-T01",
            ),
        ),
    );
    t.learn("SEQ_T01", "FrontSeqNo");
    t.push(
        f,
        "6034-000000-transfer-with-fee",
        "6034 moves 200.5 from FXM-A to FXM-B with a fee of 1.50 taken from FXM-A on top",
        p(
            "6034",
            "FX-TR-FEE",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "200.5",
                Some("1.50"),
                "FX-ORD-T02",
            ),
        ),
    );
    t.push(
        f,
        "6034-E10009-zero-amount",
        "6034 with TranAmt 0 is refused E10009",
        p(
            "6034",
            "FX-TR-ZERO",
            transfer_fields("SUB_A", "FXM-A", "SUB_B", "FXM-B", "0", None, "FX-ORD-T03"),
        ),
    );
    t.push(
        f,
        "6034-E10009-negative-amount",
        "6034 with TranAmt -1.00 is refused E10009",
        p(
            "6034",
            "FX-TR-NEG",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "-1.00",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-E10009-negative-fee",
        "6034 with TranFee -1 is refused E10009",
        p(
            "6034",
            "FX-TR-NEGFEE",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "10.00",
                Some("-1"),
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-YQ9993-three-decimals",
        "6034 with TranAmt 1.234 (3 fractional digits) is refused YQ9993",
        p(
            "6034",
            "FX-TR-3DEC",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "1.234",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-YQ9993-exponent",
        "6034 with TranAmt 1e3 (not a plain decimal) is refused YQ9993",
        p(
            "6034",
            "FX-TR-EXP",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "1e3",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-YQ9993-thirteen-integer-digits",
        "6034 with TranAmt 1234567890123.00 (13 integer digits) is refused YQ9993",
        p(
            "6034",
            "FX-TR-13DIG",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "1234567890123.00",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-E10001-unknown-sub-account",
        "6034 from a SubAcctNo the gateway never issued is refused E10001",
        p(
            "6034",
            "FX-TR-UNKNOWN",
            transfer_fields(
                "9000000000099991",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "10.00",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-E10002-member-code-mismatch",
        "6034 naming FXM-B as the member of FXM-A's sub-account is refused E10002",
        p(
            "6034",
            "FX-TR-MISMATCH",
            transfer_fields(
                "SUB_A",
                "FXM-B",
                "SUB_B",
                "FXM-B",
                "10.00",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-E10003-insufficient-including-fee",
        "6034 of 9698.00 plus fee 0.01 from FXM-A, which holds exactly 9698.00, is refused E10003",
        p(
            "6034",
            "FX-TR-INSUFF",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "9698.00",
                Some("0.01"),
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-E10004-to-closed-sub-account",
        "6034 to closed FXM-D is refused E10004",
        p(
            "6034",
            "FX-TR-CLOSED",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_D",
                "FXM-D",
                "10.00",
                None,
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(f, "6034-E10008-order-no-reused", "6034 with a new serial reusing OrderNo FX-ORD-T01 of an accepted transfer is refused E10008", p("6034", "FX-TR-REUSE", transfer_fields("SUB_A", "FXM-A", "SUB_B", "FXM-B", "1.00", None, "FX-ORD-T01")));
    t.push(f, "6034-000000-same-serial-same-body-replays", "6034 repeating serial FX-TR-PLAIN with the same body gets the original response again (same FrontSeqNo) and moves no money", p("6034", "FX-TR-PLAIN", transfer_fields("SUB_A", "FXM-A", "SUB_B", "FXM-B", "100.00", None, "FX-ORD-T01")));
    t.push(
        f,
        "6034-YQ9962-same-serial-different-amount",
        "6034 repeating serial FX-TR-PLAIN with a different TranAmt is refused YQ9962",
        p(
            "6034",
            "FX-TR-PLAIN",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "100.01",
                None,
                "FX-ORD-T01",
            ),
        ),
    );

    // ---- 04-freeze: 6007 ---------------------------------------------------------------
    let f = "04-freeze";
    t.push(
        f,
        "6007-000000-freeze",
        "6007 freezes 500.00 of FXM-A",
        p(
            "6007",
            "FX-FRZ-1",
            freeze_fields("1", "500.00", "FX-ORD-F01"),
        ),
    );
    t.push(
        f,
        "6007-000000-unfreeze",
        "6007 unfreezes 200.00 of FXM-A (300.00 stays frozen)",
        p(
            "6007",
            "FX-UNFRZ-1",
            freeze_fields("2", "200.00", "FX-ORD-F02"),
        ),
    );
    t.push(
        f,
        "6007-E10003-freeze-above-available",
        "6007 freezing 9398.01 when 9398.00 is available is refused E10003",
        p(
            "6007",
            "FX-FRZ-OVER",
            freeze_fields("1", "9398.01", "FX-ORD-F03"),
        ),
    );
    t.push(
        f,
        "6007-E10009-unfreeze-above-frozen",
        "6007 unfreezing 300.01 when 300.00 is frozen is refused E10009",
        p(
            "6007",
            "FX-UNFRZ-OVER",
            freeze_fields("2", "300.01", "FX-ORD-F03"),
        ),
    );
    t.push(
        f,
        "6007-E10008-order-no-reused",
        "6007 with a new serial reusing OrderNo FX-ORD-F01 is refused E10008",
        p(
            "6007",
            "FX-FRZ-REUSE",
            freeze_fields("1", "1.00", "FX-ORD-F01"),
        ),
    );

    // ---- 05-query ----------------------------------------------------------------------
    let f = "05-query";
    t.push(
        f,
        "6010-000000-balance",
        "6010 of FXM-A: total 9698.00, frozen 300.00, available 9398.00",
        p("6010", "FX-BAL-A-2", |c| vec![("SubAcctNo", g(c, "SUB_A"))]),
    );
    t.push(
        f,
        "6010-E10001-unknown-sub-account",
        "6010 of a SubAcctNo the gateway never issued is refused E10001",
        p("6010", "FX-BAL-UNKNOWN", |_| {
            vec![("SubAcctNo", s("9000000000099991"))]
        }),
    );
    t.push(f, "6072-000000-details-page-1", "6072 page 1 of FXM-A's details in November 2026: inbound credit, transfers, fee row (08), balances after each", p("6072", "FX-DTL-A-1", |c| {
        let mut v = vec![("SubAcctNo", g(c, "SUB_A"))];
        v.extend(date_range("1"));
        v
    }));
    t.push(
        f,
        "6072-000000-page-beyond-end",
        "6072 page 2 of FXM-A (fewer than 20 rows exist): no rows, EndFlag Y",
        p("6072", "FX-DTL-A-2", |c| {
            let mut v = vec![("SubAcctNo", g(c, "SUB_A"))];
            v.extend(date_range("2"));
            v
        }),
    );
    t.push(
        f,
        "6072-YQ9993-start-after-end",
        "6072 with StartDate 20261130 after EndDate 20261101 is refused YQ9993",
        p("6072", "FX-DTL-BADRANGE", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_A")),
                ("StartDate", s("20261130")),
                ("EndDate", s("20261101")),
                ("PageNum", s("1")),
            ]
        }),
    );
    t.push(f, "6050-000000-inbound-credits", "6050 lists the inbound credits: FXM-A's (02), FXM-B's by memo (02) and two suspense credits (03)", p("6050", "FX-INB-1", |_| date_range("1")));
    t.learn_with(Box::new(|r: &Response, c: &mut Ctx| {
        let get = |row: &Vec<(String, String)>, k: &str| {
            row.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let sub_a = g(c, "SUB_A");
        for row in r.rows() {
            let seq = get(&row, "FrontSeqNo");
            match (
                get(&row, "InAcctType").as_str(),
                get(&row, "TranAmt").as_str(),
            ) {
                ("03", "500.00") => {
                    c.insert("IN_SUSP".into(), seq);
                }
                ("02", _) if get(&row, "SubAcctNo") == sub_a => {
                    c.insert("IN_A".into(), seq);
                }
                _ => {}
            }
        }
        assert!(
            c.contains_key("IN_SUSP") && c.contains_key("IN_A"),
            "{}",
            r.body_text()
        );
    }));
    t.push(
        f,
        "6110-000000-status-of-success",
        "6110 of serial FX-TR-PLAIN: TranStatus 0, OrigTranCode 6034",
        p("6110", "FX-STS-OK", |_| {
            vec![("OrigSerialNo", s("FX-TR-PLAIN"))]
        }),
    );
    t.push(
        f,
        "6110-000000-status-of-refused",
        "6110 of serial FX-TR-INSUFF (refused E10003): TranStatus 1 with the code in FailMsg",
        p("6110", "FX-STS-REFUSED", |_| {
            vec![("OrigSerialNo", s("FX-TR-INSUFF"))]
        }),
    );
    t.push(
        f,
        "6110-YQ9996-unknown-serial",
        "6110 of a serial never sent is answered YQ9996",
        p("6110", "FX-STS-UNKNOWN", |_| {
            vec![("OrigSerialNo", s("FX-NEVER-SENT"))]
        }),
    );
    t.push(f, "6142-000000-receipt-of-transfer", "6142 e-receipt of the FX-TR-PLAIN transfer: receipt number, 16-character verification code, payer and payee", p("6142", "FX-RCPT-TR", |c| vec![("FrontSeqNo", g(c, "SEQ_T01"))]));
    t.push(
        f,
        "6142-000000-receipt-of-inbound-credit",
        "6142 e-receipt of FXM-A's inbound credit (FrontSeqNo from 6050)",
        p("6142", "FX-RCPT-IN", |c| vec![("FrontSeqNo", g(c, "IN_A"))]),
    );
    t.push(
        f,
        "6142-YQ9996-unknown-front-seq-no",
        "6142 of a FrontSeqNo the gateway never issued is answered YQ9996",
        p("6142", "FX-RCPT-UNKNOWN", |_| {
            vec![("FrontSeqNo", s("2026112399999999"))]
        }),
    );

    // ---- 06-suspense: 6139 -------------------------------------------------------------
    let f = "06-suspense";
    t.push(
        f,
        "6139-000000-allocate-part",
        "6139 allocates 200.00 of the 500.00 suspense credit to FXM-C",
        p("6139", "FX-ALLOC-1", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_C")),
                ("TranNetMemberCode", s("FXM-C")),
                ("InboundSeqNo", g(c, "IN_SUSP")),
                ("SuspendAmt", s("200.00")),
                ("OrderNo", s("FX-ORD-S01")),
            ]
        }),
    );
    t.push(
        f,
        "6139-E10009-above-unallocated",
        "6139 of 300.01 when 300.00 of the credit is unallocated is refused E10009",
        p("6139", "FX-ALLOC-OVER", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_C")),
                ("TranNetMemberCode", s("FXM-C")),
                ("InboundSeqNo", g(c, "IN_SUSP")),
                ("SuspendAmt", s("300.01")),
                ("OrderNo", s("FX-ORD-S02")),
            ]
        }),
    );
    t.push(
        f,
        "6139-YQ9996-unknown-inbound-seq-no",
        "6139 naming an InboundSeqNo that is no inbound credit is answered YQ9996",
        p("6139", "FX-ALLOC-UNKNOWN", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_C")),
                ("TranNetMemberCode", s("FXM-C")),
                ("InboundSeqNo", s("2026112399999999")),
                ("SuspendAmt", s("1.00")),
                ("OrderNo", s("FX-ORD-S03")),
            ]
        }),
    );
    t.push(
        f,
        "6050-000000-suspense-and-allocation-rows",
        "6050 shows the suspense credit still as 03 and the allocation to FXM-C as a 04 row",
        p("6050", "FX-INB-2", |_| date_range("1")),
    );

    // ---- 07-header: A001 header and body faults ----------------------------------------
    let f = "07-header";
    let bal_b = |c: &Ctx| vec![("SubAcctNo", g(c, "SUB_B"))];
    t.push(
        f,
        "6010-YQ9985-unknown-enterprise",
        "a request from enterprise code UNKNOWNPLATFORM00001 is refused YQ9985",
        Box::new(move |c| {
            let body = xml_request(BodyCharset::Gbk, &[("SubAcctNo", &g(c, "SUB_B"))]);
            build_request(
                BodyCharset::Gbk,
                "UNKNOWNPLATFORM00001",
                "6010",
                "FX-HDR-ENT",
                DATE,
                TIME,
                &body,
            )
            .expect("request")
        }),
    );
    t.push(
        f,
        "9999-YQ0000-unknown-code",
        "transaction code 9999 is unsupported: YQ0000",
        p("9999", "FX-HDR-9999", bal_b),
    );
    t.push(
        f,
        "6033-YQ9993-missing-fields",
        "a 6033 withdrawal without MemberName, TakeCashAcctNo and OutAmtAcctName is answered YQ9993",
        p("6033", "FX-HDR-6033", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_B")),
                ("TranNetMemberCode", s("FXM-B")),
                ("CashAmt", s("1.00")),
                ("OrderNo", s("FX-ORD-W01")),
            ]
        }),
    );
    t.push(
        f,
        "6010-YQ9977-charset-03",
        "header field 3 (body charset) 03 is neither GBK nor UTF-8: YQ9977, connection stays open",
        Box::new(move |c| {
            let mut b = gbk_request("6010", "FX-HDR-CS03", &bal_b(c));
            b[6..8].copy_from_slice(b"03");
            b
        }),
    );
    t.push(
        f,
        "6010-YQ9977-sign-flag-1",
        "header field 17 (sign flag) 1: signatures are not supported, YQ9977",
        Box::new(move |c| {
            let mut b = gbk_request("6010", "FX-HDR-SIGN", &bal_b(c));
            b[197] = b'1';
            b
        }),
    );
    t.push(
        f,
        "6010-YQ9977-body-not-gbk",
        "a body with bytes 0x81 0x20 (not a GBK sequence) is refused YQ9977",
        Box::new(|c| {
            let mut body = b"<?xml version=\"1.0\" encoding=\"GBK\"?><Result><SubAcctNo>".to_vec();
            body.extend_from_slice(g(c, "SUB_B").as_bytes());
            body.extend_from_slice(b"</SubAcctNo><Remark>\x81\x20</Remark></Result>");
            raw_request("6010", "FX-HDR-NOTGBK", &body)
        }),
    );
    t.push(f, "6010-YQ9977-doctype-entity", "a body with a DOCTYPE declaring an entity is refused YQ9977", Box::new(|c| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"GBK\"?><!DOCTYPE Result [<!ENTITY x \"{}\">]><Result><SubAcctNo>&x;</SubAcctNo></Result>",
            g(c, "SUB_B")
        );
        raw_request("6010", "FX-HDR-DTD", body.as_bytes())
    }));
    t.push(
        f,
        "6010-YQ9977-declaration-utf8-on-gbk-header",
        "an XML declaration naming UTF-8 under header charset 01 (GBK) is refused YQ9977",
        Box::new(|c| {
            let body = xml_request(BodyCharset::Utf8, &[("SubAcctNo", &g(c, "SUB_B"))]);
            raw_request("6010", "FX-HDR-DECL", body.as_bytes())
        }),
    );
    t.push(
        f,
        "6010-YQ9993-blank-requester-serial",
        "a request whose requester serial (field 12) is blank is refused YQ9993",
        p("6010", "", bal_b),
    );
    t.push(f, "6248-000000-utf8-reopen-member-b", "6248 with a UTF-8 body (header 02) re-opening FXM-B returns its SubAcctNo; the response is UTF-8 too", Box::new(|_| {
        let fields = [
            ("FundSummaryAcctNo", MASTER),
            ("TranNetMemberCode", B.0),
            ("MemberName", B.1),
            ("MemberGlobalType", B.2),
            ("MemberGlobalId", B.3),
        ];
        let body = xml_request(BodyCharset::Utf8, &fields);
        build_request(BodyCharset::Utf8, ENT, "6248", "FX-HDR-UTF8-OPEN", DATE, TIME, &body).expect("request")
    }));
    t.push(f, "6010-000000-utf8-balance-b", "6010 with a UTF-8 body is answered with header charset 02 and a UTF-8 body (MemberName 李四贸易有限公司)", Box::new(|c| {
        let body = xml_request(BodyCharset::Utf8, &[("SubAcctNo", &g(c, "SUB_B"))]);
        build_request(BodyCharset::Utf8, ENT, "6010", "FX-HDR-UTF8-BAL", DATE, TIME, &body).expect("request")
    }));
    t.push(f, "6010-YQ9977-body-above-1mib-closes", "a header announcing a 1048577-byte body (above the 1 MiB maximum) is answered YQ9977 with an empty body before any body byte, and the connection is closed", Box::new(|_| {
        let mut b = raw_request("6010", "FX-HDR-HUGE", b"");
        b[30..40].copy_from_slice(b"0001048577");
        b
    }));
    t.close();
    t.push(
        f,
        "6010-YQ9977-message-class-not-a001-closes",
        "a header whose field 1 is B001 cannot be trusted: YQ9977 and the connection is closed",
        Box::new(|_| {
            let mut b = raw_request("6010", "FX-HDR-B001", b"");
            b[..4].copy_from_slice(b"B001");
            b
        }),
    );
    t.link("platform");
    t.close();
    t.push(f, "6010-YQ9977-body-length-not-digits-closes", "a header whose body length field is 00000001A0 cannot be trusted: YQ9977 and the connection is closed", Box::new(|_| {
        let mut b = raw_request("6010", "FX-HDR-LENX", b"");
        b[30..40].copy_from_slice(b"00000001A0");
        b
    }));
    t.close();

    // ---- 08-later: checks that rely on everything before --------------------------------
    let f = "08-later";
    t.push(
        f,
        "6248-E10009-close-with-money-left",
        "6248 FunctionFlag 2 for FXM-A, which still holds money, is refused E10009",
        p("6248", "FX-CLOSE-A", close_fields(A.0, A.1, A.2, A.3)),
    );
    t.push(
        f,
        "6010-000000-balance-after-refused-close",
        "6010 of FXM-A after the refused close: the sub-account is still open with its balance",
        p("6010", "FX-BAL-A-3", |c| vec![("SubAcctNo", g(c, "SUB_A"))]),
    );
    t.push(
        f,
        "6034-E10003-refused-serial-replays-refusal",
        "6034 repeating serial FX-TR-INSUFF with the same body gets the original E10003 again",
        p(
            "6034",
            "FX-TR-INSUFF",
            transfer_fields(
                "SUB_A",
                "FXM-A",
                "SUB_B",
                "FXM-B",
                "9698.00",
                Some("0.01"),
                "FX-ORD-T03",
            ),
        ),
    );
    t.push(
        f,
        "6034-000000-order-no-of-refused-requests-unused",
        "6034 with OrderNo FX-ORD-T03, used only by refused requests so far, is accepted: moves 1.00 from FXM-B to FXM-C",
        p(
            "6034",
            "FX-TR-T03-OK",
            transfer_fields("SUB_B", "FXM-B", "SUB_C", "FXM-C", "1.00", None, "FX-ORD-T03"),
        ),
    );

    // ---- 09-withdraw: 6240, 6241, 6033, 6065 over the built-in rail --------------------
    let f = "09-withdraw";
    t.push(
        f,
        "6248-000000-open-member-e",
        "6248 opens a sub-account for member FXM-E (孙八), who binds another bank's account and withdraws",
        p("6248", "FX-OPEN-E", open_fields(E.0, E.1, E.2, E.3)),
    );
    t.learn("SUB_E", "SubAcctNo");
    t.push(
        f,
        "6248-000000-open-member-f",
        "6248 opens a sub-account for member FXM-F (周九商贸有限公司), who binds a same-bank account",
        p("6248", "FX-OPEN-F", open_fields(F.0, F.1, F.2, F.3)),
    );
    t.learn("SUB_F", "SubAcctNo");
    t.push(
        f,
        "6920-0000-fund-member-e",
        "6920 notice of 270002.00 with FXM-E's SubAcctNo as payee funds the withdrawals that follow",
        Box::new(|c| notice_frame("FXCORE0013", &g(c, "SUB_E"), 27_000_200, "")),
    );
    t.push(f, "6240-000000-bind-other-bank", "6240 BankType 2 with EiconBankBranchId binds another bank's account to FXM-E: AuthStatus P, the verification amount goes out over the rail by 7001", p("6240", "FX-BIND-E", bind_fields("SUB_E", E.0, E.1, E_ACCT, "2", Some("102100099996"))));
    t.probe("AUTH_E", E_ACCT);
    t.push(
        f,
        "6240-E10002-member-name-mismatch",
        "6240 for FXM-E with MemberName 孙八八 (not the sub-account's name) is refused E10002",
        p(
            "6240",
            "FX-BIND-E-NAME",
            bind_fields("SUB_E", E.0, "孙八八", E_ACCT, "2", Some("102100099996")),
        ),
    );
    t.push(
        f,
        "6240-YQ9993-other-bank-without-branch-id",
        "6240 BankType 2 without EiconBankBranchId is refused YQ9993 (the pending binding stays)",
        p(
            "6240",
            "FX-BIND-E-NOID",
            bind_fields("SUB_E", E.0, E.1, E_ACCT, "2", None),
        ),
    );
    t.push(
        f,
        "6241-E10007-wrong-amount-4-left",
        "6241 with a wrong verification amount is refused E10007 with RemainingAttempts 4",
        p("6241", "FX-AUTH-E-WRONG", |c| {
            // Any other amount in 0.01..=0.50 than the one the rail delivered.
            let right: i64 = g(c, "AUTH_E_FEN").parse().expect("fen");
            vec![
                ("SubAcctNo", g(c, "SUB_E")),
                ("TakeCashAcctNo", s(E_ACCT)),
                ("AuthAmt", bankfep::money::format_fen(right % 50 + 1)),
            ]
        }),
    );
    t.push(
        f,
        "6241-000000-right-amount-binds",
        "6241 with the amount the rail paid to the bound account binds it: AuthStatus S",
        p("6241", "FX-AUTH-E", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_E")),
                ("TakeCashAcctNo", s(E_ACCT)),
                ("AuthAmt", g(c, "AUTH_E")),
            ]
        }),
    );
    t.push(
        f,
        "6240-E10006-already-bound",
        "6240 for FXM-E, whose account is now verified, is refused E10006",
        p(
            "6240",
            "FX-BIND-E-AGAIN",
            bind_fields("SUB_E", E.0, E.1, E_ACCT, "2", Some("102100099996")),
        ),
    );
    t.push(f, "6033-000000-120000-in-3-chunks", "6033 of 120000.00 plus commission 2.00 is accepted: TranStatus 6, ChunkCount 3 (40000.00 each over the super e-bank rail)", p("6033", "FX-WD-1", withdraw_fields("SUB_E", E.0, E.1, E_ACCT, E.1, "120000.00", Some("2.00"), "FX-ORD-W11")));
    t.push(
        f,
        "6033-000000-100000-in-3-chunks",
        "6033 of 100000.00 is accepted: ChunkCount 3 (33333.34 + 33333.33 + 33333.33)",
        p(
            "6033",
            "FX-WD-2",
            withdraw_fields(
                "SUB_E",
                E.0,
                E.1,
                E_ACCT,
                E.1,
                "100000.00",
                None,
                "FX-ORD-W12",
            ),
        ),
    );
    t.push(
        f,
        "6033-000000-49999.99-in-1-chunk",
        "6033 of 49999.99, below the 50000.00 rail limit, is accepted: ChunkCount 1",
        p(
            "6033",
            "FX-WD-3",
            withdraw_fields(
                "SUB_E",
                E.0,
                E.1,
                E_ACCT,
                E.1,
                "49999.99",
                None,
                "FX-ORD-W13",
            ),
        ),
    );
    t.push(f, "6010-000000-debited-at-acceptance", "6010 of FXM-E shows 0.01: the three withdrawals and the commission were debited when accepted", p("6010", "FX-BAL-E-1", |c| vec![("SubAcctNo", g(c, "SUB_E"))]));
    t.push(
        f,
        "6033-E10005-wrong-take-cash-acct-no",
        "6033 of 0.01 to an account that is not the bound one is refused E10005",
        p(
            "6033",
            "FX-WD-ACCT",
            withdraw_fields(
                "SUB_E",
                E.0,
                E.1,
                "6217000000000000091",
                E.1,
                "0.01",
                None,
                "FX-ORD-W14",
            ),
        ),
    );
    t.push(
        f,
        "6033-E10005-wrong-out-amt-acct-name",
        "6033 of 0.01 with OutAmtAcctName 孙八八 (not the bound account's name) is refused E10005",
        p(
            "6033",
            "FX-WD-NAME",
            withdraw_fields(
                "SUB_E",
                E.0,
                E.1,
                E_ACCT,
                "孙八八",
                "0.01",
                None,
                "FX-ORD-W14",
            ),
        ),
    );
    t.push(
        f,
        "6033-E10003-insufficient",
        "6033 of 0.02 when 0.01 is available is refused E10003",
        p(
            "6033",
            "FX-WD-INSUFF",
            withdraw_fields("SUB_E", E.0, E.1, E_ACCT, E.1, "0.02", None, "FX-ORD-W14"),
        ),
    );
    t.push(f, "6033-E10008-order-no-reused", "6033 of 0.01 with a new serial reusing OrderNo FX-ORD-W11 of an accepted withdrawal is refused E10008", p("6033", "FX-WD-REUSE", withdraw_fields("SUB_E", E.0, E.1, E_ACCT, E.1, "0.01", None, "FX-ORD-W11")));
    t.push(
        f,
        "6033-E10009-zero-amount",
        "6033 with CashAmt 0.00 is refused E10009",
        p(
            "6033",
            "FX-WD-ZERO",
            withdraw_fields("SUB_E", E.0, E.1, E_ACCT, E.1, "0.00", None, "FX-ORD-W14"),
        ),
    );
    t.push(
        f,
        "6033-YQ9993-three-decimals",
        "6033 with CashAmt 0.001 (3 fractional digits) is refused YQ9993",
        p(
            "6033",
            "FX-WD-3DEC",
            withdraw_fields("SUB_E", E.0, E.1, E_ACCT, E.1, "0.001", None, "FX-ORD-W14"),
        ),
    );
    t.push(f, "6110-000000-status-of-refused-withdrawal", "6110 of serial FX-WD-INSUFF (6033 refused E10003): TranStatus 1 with the code in FailMsg, no chunk rows", p("6110", "FX-STS-WD-INSUFF", |_| vec![("OrigSerialNo", s("FX-WD-INSUFF"))]));
    t.push(
        f,
        "6065-000000-unbind",
        "6065 unbinds FXM-E's withdrawal account",
        p("6065", "FX-UNBIND-E", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_E")),
                ("TranNetMemberCode", s(E.0)),
                ("MemberAcctNo", s(E_ACCT)),
            ]
        }),
    );
    t.push(
        f,
        "6033-E10005-after-unbind",
        "6033 of 0.01 to the account FXM-E just unbound is refused E10005",
        p(
            "6033",
            "FX-WD-UNBOUND",
            withdraw_fields("SUB_E", E.0, E.1, E_ACCT, E.1, "0.01", None, "FX-ORD-W14"),
        ),
    );
    t.push(f, "6240-000000-bind-same-bank", "6240 BankType 1 (no EiconBankBranchId) binds a same-bank account to FXM-F: AuthStatus P, the verification amount goes out by 7002", p("6240", "FX-BIND-F", bind_fields("SUB_F", F.0, F.1, F_ACCT, "1", None)));
    t.probe("AUTH_F", F_ACCT);
    t.push(
        f,
        "6241-000000-same-bank-binds",
        "6241 with the amount the rail paid binds FXM-F's same-bank account: AuthStatus S",
        p("6241", "FX-AUTH-F", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_F")),
                ("TakeCashAcctNo", s(F_ACCT)),
                ("AuthAmt", g(c, "AUTH_F")),
            ]
        }),
    );
    t.push(f, "6920-0000-master-from-bound-account", "6920 of 80000.00 to the master account paid from FXM-F's verified bound account (no sub-account in the memo) is allocated to FXM-F", Box::new(|_| {
        build_notice("FXCORE0014", "INTR", "20261123", "093000", MASTER, 8_000_000, F_ACCT, F.1, "", "还款").expect("notice builds")
    }));
    t.push(f, "6010-000000-allocated-to-bound-member", "6010 of FXM-F shows 80000.00: the master-account credit from its bound account was allocated to it", p("6010", "FX-BAL-F-1", |c| vec![("SubAcctNo", g(c, "SUB_F"))]));
    t.push(f, "6033-000000-same-bank-60000-one-chunk", "6033 of 60000.00 to FXM-F's same-bank account is accepted in one chunk (7002 is never split): ChunkCount 1", p("6033", "FX-WD-F", withdraw_fields("SUB_F", F.0, F.1, F_ACCT, F.1, "60000.00", None, "FX-ORD-W15")));
    t.push(
        f,
        "6065-E10005-not-the-bound-account",
        "6065 for FXM-F naming an account that is not its bound one is refused E10005",
        p("6065", "FX-UNBIND-F-WRONG", |c| {
            vec![
                ("SubAcctNo", g(c, "SUB_F")),
                ("TranNetMemberCode", s(F.0)),
                ("MemberAcctNo", s(E_ACCT)),
            ]
        }),
    );

    // ---- 10-hostile: one case per hardened input path (issue 4) --------------------------
    let f = "10-hostile";
    t.push(
        f,
        "6010-YQ9977-xml-nine-deep",
        "an XML body nested 9 deep (limit 8) is answered YQ9977 and the connection stays open",
        Box::new(|_| {
            raw_request(
                "6010",
                "FX-HOS-DEEP",
                b"<Result><a><b><c><d><e><f><g><h>x</h></g></f></e></d></c></b></a></Result>",
            )
        }),
    );
    t.push(
        f,
        "6010-YQ9977-xml-4100-elements",
        "an XML body with 4,101 elements (limit 4,096) is answered YQ9977",
        Box::new(|_| {
            let mut body = b"<Result>".to_vec();
            for _ in 0..4100 {
                body.extend_from_slice(b"<X/>");
            }
            body.extend_from_slice(b"</Result>");
            raw_request("6010", "FX-HOS-WIDE", &body)
        }),
    );
    t.push(f, "6010-YQ9977-external-entity", "an external entity (XXE) declaration is refused: YQ9977, nothing is read from disk", Box::new(|_| {
        raw_request("6010", "FX-HOS-XXE", b"<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Result><SubAcctNo>&x;</SubAcctNo></Result>")
    }));
    t.push(
        f,
        "6010-YQ9977-undefined-entity",
        "an entity other than the five predefined ones is refused: YQ9977",
        Box::new(|_| {
            raw_request(
                "6010",
                "FX-HOS-ENT",
                b"<Result><SubAcctNo>&bomb;</SubAcctNo></Result>",
            )
        }),
    );
    t.push(
        f,
        "6010-YQ9993-field-given-twice",
        "a field given twice is ambiguous: YQ9993",
        Box::new(|c| {
            let body = format!(
                "<Result><SubAcctNo>{0}</SubAcctNo><SubAcctNo>{0}</SubAcctNo></Result>",
                g(c, "SUB_B")
            );
            raw_request("6010", "FX-HOS-TWICE", body.as_bytes())
        }),
    );
    t.push(f, "6034-YQ9993-remark-122-gbk-bytes", "a Remark of 61 Chinese characters is 122 GBK bytes, above its 120-byte maximum: YQ9993, nothing moves", p("6034", "FX-HOS-LONG", |c| {
        vec![
            ("OutSubAcctNo", g(c, "SUB_A")),
            ("OutMemberCode", s("FXM-A")),
            ("InSubAcctNo", g(c, "SUB_B")),
            ("InMemberCode", s("FXM-B")),
            ("TranAmt", s("1.00")),
            ("OrderNo", s("FX-ORD-H01")),
            ("Remark", "长".repeat(61)),
        ]
    }));
    t.push(
        f,
        "6010-YQ9977-utf8-body-invalid",
        "a body declared UTF-8 (field 3 = 02) that is not valid UTF-8 is answered YQ9977",
        Box::new(|_| {
            let mut b = raw_request(
                "6010",
                "FX-HOS-UTF8",
                b"<Result><SubAcctNo>\xc3\x28</SubAcctNo></Result>",
            );
            b[6..8].copy_from_slice(b"02");
            b
        }),
    );
    t.push(f, "6920-1001-payer-name-not-gbk", "a notice whose payer name is not valid GBK is answered 1001 with its bank serial, and the core connection stays open", Box::new(|c| {
        let mut b = notice_frame("FXCORE0090", &g(c, "SUB_A"), 100, "");
        // Payer name starts at record offset 136, i.e. frame offset 144.
        b[144] = 0xff;
        b[145] = 0xff;
        b
    }));
    t.push(f, "6920-1001-length-over-4096-closes", "a core prefix announcing 4,097 bytes (record limit 4,096) is answered 1001 before any record byte and the connection is closed", Box::new(|_| {
        b"00004097".to_vec()
    }));
    t.link("core");
    t.close();
    t.push(
        f,
        "6010-000000-next-connection-served",
        "after every hostile case above, a well-formed request on a new connection is served",
        p("6010", "FX-HOS-OK", |c| vec![("SubAcctNo", g(c, "SUB_B"))]),
    );

    t.0
}

// ---------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------

/// `NN-CODE-RET-words`: order number `i + 1`, zero-padded to `width` digits (see
/// [`flow_widths`]).
fn case_dir_name(i: usize, case: &Case, width: usize) -> String {
    format!("{:0width$}-{}", i + 1, case.name)
}

/// Per flow, the digits of its largest order number (at least 2): every case of a flow is
/// padded alike, so byte-wise order within the flow is the numeric order.
fn flow_widths(table: &[Case]) -> HashMap<&'static str, usize> {
    let mut w = HashMap::new();
    for (i, case) in table.iter().enumerate() {
        let e = w.entry(case.flow).or_insert(2);
        *e = (*e).max((i + 1).to_string().len());
    }
    w
}

fn masked(b: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    if b.starts_with(b"A001") {
        if let Some(m) = b.get_mut(MASK) {
            m.fill(b'0');
        }
    }
    b
}

async fn replay_dir(gw: &Gw, dir: &Path, bless: bool) -> Vec<CaseOutcome> {
    replay(&ReplayOptions {
        dir: dir.to_path_buf(),
        platform_addr: gw.platform.clone(),
        core_addr: gw.core.clone(),
        bless,
        timeout_ms: TIMEOUT_MS,
    })
    .await
    .expect("replay runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites fixtures/; run by hand"]
async fn generate_fixtures() {
    let root = fixtures_dir();
    let table = cases();
    let widths = flow_widths(&table);
    let _ = std::fs::remove_dir_all(&root);

    // Phase 1: run each case against a live gateway, building requests from what earlier
    // responses returned.
    let gw = start("fixtures-gen").await;
    let scratch = TempDir::new("fixtures-scratch");
    let mut ctx = Ctx::new();
    let mut first = Vec::new();
    let mut problems = Vec::new();
    let mut serials: HashMap<Vec<u8>, String> = HashMap::new();
    for (i, case) in table.iter().enumerate() {
        let name = case_dir_name(i, case, widths[case.flow]);
        expected_code(&name).expect("case name");
        let req = (case.build)(&ctx);
        let dir = root.join(case.flow).join(&name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("request.bin"), &req).expect("request.bin");
        std::fs::write(dir.join("note.txt"), format!("{}\n", case.note)).expect("note.txt");
        if let Some(link) = case.link {
            std::fs::write(dir.join("link"), format!("{link}\n")).expect("link");
        }
        if req.starts_with(b"A001") && req.len() >= 87 {
            let serial = req[67..87].to_vec();
            if let Some(prev) = serials.insert(serial, name.clone()) {
                if !name.contains("same-serial") && !name.contains("serial-replays") {
                    problems.push(format!("{name}: serial already used by {prev}"));
                }
            }
        }

        let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
        let probe_before = case.probe.map(|(_, acct)| sim.balance(acct));
        // Run just this case (fresh connections, the same gateway).
        let one = scratch.join(format!("{i:02}"));
        let sdir = one.join(case.flow).join(&name);
        std::fs::create_dir_all(&sdir).expect("mkdir");
        for f in ["request.bin", "note.txt", "link"] {
            if dir.join(f).exists() {
                std::fs::copy(dir.join(f), sdir.join(f)).expect("copy");
            }
        }
        let out = replay_dir(&gw, &one, true).await;
        assert!(out.iter().all(|o| o.ok), "{name}: {out:?}");
        let resp = std::fs::read(sdir.join("response.bin")).expect("response.bin");
        let want = expected_code(&name).expect("name");
        let got = actual_code(&want, &resp);
        if got != want {
            let msg = if resp.starts_with(b"A001") {
                bankfep::client::gbk_lossy(&resp[93..193])
                    .trim()
                    .to_string()
            } else {
                bankfep::client::gbk_lossy(resp.get(48..).unwrap_or(&[]))
                    .trim()
                    .to_string()
            };
            problems.push(format!("{name}: got {got} ({msg}), want {want}"));
        }
        if let Some(capture) = &case.capture {
            let r = Response {
                header: resp[..222].to_vec(),
                body: resp[222..].to_vec(),
            };
            capture(&r, &mut ctx);
        }
        if let (Some((key, acct)), Some(before)) = (case.probe, probe_before) {
            let mut paid = 0;
            for _ in 0..200 {
                paid = sim.balance(acct) - before;
                if paid > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            assert!(paid > 0, "{name}: the rail paid nothing to {acct}");
            ctx.insert(key.to_string(), bankfep::money::format_fen(paid));
            ctx.insert(format!("{key}_FEN"), paid.to_string());
        }
        first.push(resp);
    }
    gw.assert_invariants().await;
    gw.running.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));

    // Phase 2: bless response.bin from one replay of the whole tree against a fresh gateway.
    let gw = start("fixtures-bless").await;
    let out = replay_dir(&gw, &root, true).await;
    gw.running.shutdown().await;
    assert_eq!(out.len(), table.len());
    for (i, case) in table.iter().enumerate() {
        let dir = root
            .join(case.flow)
            .join(case_dir_name(i, case, widths[case.flow]));
        assert!(out[i].ok, "{}: {}", out[i].case, out[i].detail);
        let blessed = std::fs::read(dir.join("response.bin")).expect("response.bin");
        assert_eq!(
            masked(&blessed),
            masked(&first[i]),
            "{}: the whole-tree replay answered differently from the step-by-step run",
            out[i].case
        );
        if case.close {
            std::fs::write(dir.join("close"), b"").expect("close");
        }
    }

    // Phase 3: the tree as committed replays cleanly against a third fresh gateway.
    let gw = start("fixtures-verify").await;
    let out = replay_dir(&gw, &root, false).await;
    gw.running.shutdown().await;
    let failed: Vec<String> = out
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.case, o.detail))
        .collect();
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}
