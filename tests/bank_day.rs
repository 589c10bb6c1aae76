//! The bank's day (issue 10) with the real binary over real sockets: statements (对账单)
//! from `bankfep statement` and from the operator area `GET /ops/statements/…`, rebuilt row
//! by row and compared with 6010 answers; the operator area's 404 / 401 / 200; the daily
//! reconciliation inside `serve` at its configured business time (a running clock); and
//! `bankfep reconcile --gateway` against a running gateway (exit 0 / 1 / 2).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bankfep::client::{http_request, PlatformClient};
use bankfep::clock::FixedClock;
use bankfep::rail::sim::{RailSim, SimFaults, SimOptions};
use common::bank::*;
use common::proc::free_port;
use common::*;

const EXPENSE: &str = "6222000000000009999";
const TOKEN: &str = "operator-token-0123456789abcdef";
const DAY: &str = "20261123";
const NEXT: &str = "20261124";

/// A `bankfep serve` child on free ports; killed when dropped.
struct Serve {
    child: Child,
    platform: String,
    core: String,
    http: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `serve` on `dir` with `args` and waits for `ready`.
    fn start(dir: &Path, args: &[&str]) -> Serve {
        for attempt in 0..5 {
            let platform = format!("127.0.0.1:{}", free_port());
            let core = format!("127.0.0.1:{}", free_port());
            let http = format!("127.0.0.1:{}", free_port());
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("serve-{attempt}.log")))
                .unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_bankfep"))
                .arg("serve")
                .arg("--data-dir")
                .arg(dir)
                .args(["--platform-addr", &platform, "--core-addr", &core])
                .args(["--citic-addr", "127.0.0.1:0", "--http-addr", &http])
                .args(["--receipt-key-hex", RECEIPT_KEY_HEX])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            let out = child.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    match line {
                        Ok(l) if l.trim() == "ready" => {
                            let _ = tx.send(true);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                let _ = tx.send(false);
            });
            if rx.recv_timeout(Duration::from_secs(30)) == Ok(true) {
                return Serve {
                    child,
                    platform,
                    core,
                    http,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "serve did not start in {}: {}",
            dir.display(),
            std::fs::read_to_string(dir.join("serve-4.log")).unwrap_or_default()
        );
    }

    async fn client(&self) -> PlatformClient {
        PlatformClient::connect(&self.platform, None, 10_000)
            .await
            .unwrap()
    }

    async fn fund(&self, sub: &str, amount_fen: u64) {
        let mut core = bankfep::client::CoreClient::connect(&self.core, None, 10_000)
            .await
            .unwrap();
        fund(&mut core, &serial("CORE"), sub, amount_fen).await;
    }

    fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    /// SIGTERM, then wait.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

async fn http(base: &str, method: &str, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let (status, _, body) = http_request(base, method, path, token, Duration::from_secs(60))
        .await
        .unwrap();
    (status, body)
}

/// Fields of one CSV line (quotes honoured).
fn split_csv(line: &str) -> Vec<String> {
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

/// Yuan with two decimals → fen, exactly (no floats).
fn fen(s: &str) -> i64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (y, f) = s.split_once('.').expect("two decimals");
    assert_eq!(f.len(), 2, "{s}");
    let v = y.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

/// A statement read back: closing balances by account, after checking that each is its
/// opening balance moved by the listed postings, that the totals add up and that both
/// 总分平衡 rows are OK.
fn check_statement(csv: &[u8]) -> BTreeMap<String, i64> {
    assert_eq!(&csv[..3], b"\xEF\xBB\xBF", "UTF-8 BOM");
    let text = std::str::from_utf8(&csv[3..]).expect("UTF-8");
    let mut lines = text.lines();
    let header = split_csv(lines.next().unwrap());
    assert_eq!(header.join(","), bankfep::statement::HEADER);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
    }
    let kind_of = |acct: &str| -> String {
        rows.iter()
            .find(|r| r[0] == "balance" && r[col("account")] == acct)
            .map(|r| r[col("account_kind")].clone())
            .unwrap_or_else(|| panic!("no balance row for {acct}"))
    };
    // Rebuild every balance from its opening and the posting rows.
    let mut moved: BTreeMap<String, i64> = BTreeMap::new();
    let mut total = 0;
    let mut count = 0;
    for r in rows.iter().filter(|r| r[0] == "posting") {
        let amount = fen(&r[col("amount")]);
        assert!(amount > 0);
        let (d, c) = (
            r[col("debit_account")].clone(),
            r[col("credit_account")].clone(),
        );
        let sign = |acct: &str, debit: bool| {
            let asset = kind_of(acct) == "mirror";
            if debit == asset {
                amount
            } else {
                -amount
            }
        };
        *moved.entry(d.clone()).or_default() += sign(&d, true);
        *moved.entry(c.clone()).or_default() += sign(&c, false);
        assert_eq!(r[col("front_seq_no")].len(), 16, "{r:?}");
        total += amount;
        count += 1;
    }
    let mut closing = BTreeMap::new();
    let mut mirror = (0, 0);
    let mut liabilities = (0, 0);
    for r in rows.iter().filter(|r| r[0] == "balance") {
        let acct = r[col("account")].clone();
        let open = fen(&r[col("opening_balance")]);
        let close = fen(&r[col("closing_balance")]);
        assert_eq!(
            open + moved.get(&acct).copied().unwrap_or(0),
            close,
            "{acct}: opening + postings = closing"
        );
        if r[col("account_kind")] == "mirror" {
            mirror = (open, close);
        } else {
            liabilities.0 += open;
            liabilities.1 += close;
        }
        closing.insert(acct, close);
    }
    let t = rows.iter().find(|r| r[0] == "total").expect("total row");
    assert_eq!(fen(&t[col("debits")]), total);
    assert_eq!(fen(&t[col("credits")]), total);
    assert_eq!(t[col("count")], count.to_string());
    let checks: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "check").collect();
    assert_eq!(checks.len(), 2);
    for (c, (m, l)) in checks
        .iter()
        .zip([(mirror.0, liabilities.0), (mirror.1, liabilities.1)])
    {
        assert_eq!(c[col("account")], "总分平衡");
        assert_eq!(fen(&c[col("debits")]), m);
        assert_eq!(fen(&c[col("credits")]), l);
        assert_eq!(c[col("result")], "OK", "{c:?}");
    }
    closing
}

fn statement_cmd(dir: &Path, date: &str, out: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["statement", "--master", MASTER, "--date", date])
        .arg("--data-dir")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn sim_at(clock: &str, files: &Path) -> SimOptions {
    SimOptions {
        clock: Arc::new(FixedClock(bankfep::clock::parse_fixed(clock).unwrap())),
        files_dir: Some(files.to_path_buf()),
        payers: vec![MASTER.into(), EXPENSE.into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_rebuild_the_balances_6010_answers() {
    let data = TempDir::new("day-stmt");
    let files = TempDir::new("day-stmt-files");
    std::fs::write(data.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let token_file = data.path().join("token").to_string_lossy().to_string();
    let sim = RailSim::start_with(
        "127.0.0.1:0",
        SimFaults::default(),
        sim_at("2026-11-23T10:00:00", files.path()),
        None,
    )
    .await
    .unwrap();
    let rail = sim.addr().to_string();
    // Day D: funding, a transfer with a fee, a bound account and a withdrawal that settles.
    let gw = Serve::start(
        data.path(),
        &["--clock", "2026-11-23T10:00:00", "--rail-addr", &rail],
    );
    let mut c = gw.client().await;
    let a = open_sub(&mut c, "S001", "张三").await;
    let b = open_sub(&mut c, "S002", "=李四,\"贸易\"").await;
    gw.fund(&a, 800_000).await;
    let r = transfer(
        &mut c,
        (&a, "S001"),
        (&b, "S002"),
        "1234.50",
        "10.00",
        "ORD-S1",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    bind_with(&mut c, &a, "S001", "张三", BOUND, || sim.balance(BOUND)).await;
    let s = serial("SW");
    withdraw(&mut c, &s, &a, "S001", "张三", BOUND, "1000.00", "0").await;
    assert_eq!(
        wait_done(&mut c, &s).await.field("TranStatus").as_deref(),
        Some("0")
    );
    let day_a = fen(&balance(&mut c, &a).await.0);
    let day_b = fen(&balance(&mut c, &b).await.0);
    assert_eq!(
        (day_a, day_b),
        (800_000 - 123_450 - 1_000 - 100_000, 123_450)
    );
    // The operator area is there only with a token: this gateway has none.
    let path = format!("/ops/statements/{MASTER}/{DAY}.csv");
    assert_eq!(http(&gw.base(), "GET", &path, Some(TOKEN)).await.0, 404);
    assert_eq!(http(&gw.base(), "GET", "/ops/nothing", None).await.0, 404);
    gw.stop();

    // Day D+1 (a restart with the next date and a token): more postings after D.
    let gw = Serve::start(
        data.path(),
        &[
            "--clock",
            "2026-11-24T09:00:00",
            "--rail-addr",
            &rail,
            "--operator-token-file",
            &token_file,
        ],
    );
    let mut c = gw.client().await;
    let r = transfer(&mut c, (&b, "S002"), (&a, "S001"), "0.50", "0", "ORD-S2").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let next_a = fen(&balance(&mut c, &a).await.0);
    let next_b = fen(&balance(&mut c, &b).await.0);
    let (st, unauth) = http(&gw.base(), "GET", &path, None).await;
    assert_eq!((st, unauth.as_slice()), (401, b"unauthorized\n".as_slice()));
    let wrong = format!("{TOKEN}x");
    assert_eq!(http(&gw.base(), "GET", &path, Some(&wrong)).await.0, 401);
    let (st, _) = http(
        &gw.base(),
        "GET",
        "/ops/statements/999/20261123.csv",
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 404, "unknown master");
    let (st, over_http) = http(&gw.base(), "GET", &path, Some(TOKEN)).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&over_http));
    let next_path = format!("/ops/statements/{MASTER}/{NEXT}.csv");
    let (st, next_http) = http(&gw.base(), "GET", &next_path, Some(TOKEN)).await;
    assert_eq!(st, 200);
    gw.stop();

    // The command, on the stopped gateway's store: the same bytes.
    let out = data.path().join("statement.csv");
    let (code, text) = statement_cmd(data.path(), DAY, &out);
    assert_eq!(code, 0, "{text}");
    let file = std::fs::read(&out).unwrap();
    assert_eq!(
        file, over_http,
        "the command and the route agree byte for byte"
    );
    let closing = check_statement(&file);
    assert_eq!(closing[&a], day_a, "D closing = 6010 at the end of D");
    assert_eq!(closing[&b], day_b);
    assert_eq!(closing["fee"], 1_000);
    assert_eq!(closing["in_transit"], 0);
    let text = String::from_utf8_lossy(&file).to_string();
    // Posting rows: funding, transfer and its fee, withdrawal accepted, chunk settled.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("posting,")).count(),
        5,
        "{text}"
    );
    assert!(text.contains(",in_transit,mirror,,,,1000.00,"), "{text}");
    assert!(
        text.contains("\"'=李四,\"\"贸易\"\"\""),
        "a formula-looking name is defused: {text}"
    );
    let next = check_statement(&next_http);
    assert_eq!(
        (next[&a], next[&b]),
        (next_a, next_b),
        "D+1 closing = 6010 now"
    );
    // Opening of D+1 = closing of D.
    let next_text = String::from_utf8_lossy(&next_http).to_string();
    assert!(
        next_text.contains(&format!(
            "balance,{MASTER},{NEXT},,,,,,,{a},sub,张三,,{},",
            bankfep::money::format_fen(day_a)
        )),
        "{next_text}"
    );
    // A date with nothing: every balance unchanged, still balanced. A bad date: exit 2.
    let (code, _) = statement_cmd(data.path(), "20261122", &out);
    assert_eq!(code, 0);
    let empty = check_statement(&std::fs::read(&out).unwrap());
    assert_eq!(empty[&a], 0);
    let (code, text) = statement_cmd(data.path(), "20261131", &out);
    assert_eq!(code, 2, "{text}");
    sim.shutdown().await;
}

/// `bankfep reconcile --gateway` with the token in `token_file`: (exit code, output).
fn reconcile_remote(base: &str, token_file: &Path, date: &str) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["reconcile", "--date", date, "--gateway", base])
        .arg("--operator-token-file")
        .arg(token_file)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// Polls `/metrics` until it holds `line` (≤ 60 s); returns the page.
async fn metrics_until(base: &str, line: &str) -> String {
    let mut last = String::new();
    for _ in 0..600 {
        let (st, body) = http(base, "GET", "/metrics", None).await;
        last = String::from_utf8_lossy(&body).to_string();
        if st == 200 && last.lines().any(|l| l == line) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/metrics never showed {line:?}:\n{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_run_inside_serve_and_reconcile_against_a_running_gateway() {
    let data = TempDir::new("day-daily");
    let files = TempDir::new("day-daily-files");
    let token = data.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let cfg = data.path().join("bankfep.toml");
    std::fs::write(
        &cfg,
        format!(
            "[rail]\nfiles_dir = {:?}\n[http]\noperator_token_file = \"token\"\n\
             [reconcile]\ndaily_at = \"06:00\"\n",
            files.path().display().to_string()
        ),
    )
    .unwrap();
    let sim = RailSim::start_with(
        "127.0.0.1:0",
        SimFaults::default(),
        sim_at("2026-11-23T10:00:00", files.path()),
        None,
    )
    .await
    .unwrap();
    let rail = sim.addr().to_string();
    let cfg_arg = cfg.to_string_lossy().to_string();
    // Day D: a withdrawal that settles.
    let gw = Serve::start(
        data.path(),
        &[
            "--config",
            &cfg_arg,
            "--clock",
            "2026-11-23T10:00:00",
            "--rail-addr",
            &rail,
        ],
    );
    let mut c = gw.client().await;
    let a = open_sub(&mut c, "D001", "张三").await;
    gw.fund(&a, 500_000).await;
    bind_with(&mut c, &a, "D001", "张三", BOUND, || sim.balance(BOUND)).await;
    let s = serial("DW");
    let r = withdraw(&mut c, &s, &a, "D001", "张三", BOUND, "1200.00", "0").await;
    let seq = r.field("FrontSeqNo").unwrap();
    assert_eq!(
        wait_done(&mut c, &s).await.field("TranStatus").as_deref(),
        Some("0")
    );
    gw.stop();

    // D+1 from 05:59, the business clock 600 times real time: at 06:00 the daily run finds
    // no file yet (counted, logged, the gateway keeps serving), then an hour of business
    // time later it finds them.
    let gw = Serve::start(
        data.path(),
        &[
            "--config",
            &cfg_arg,
            "--clock",
            "2026-11-24T05:59:00",
            "--clock-speed",
            "600",
            "--rail-addr",
            &rail,
        ],
    );
    metrics_until(
        &gw.base(),
        "bankfep_reconcile_daily_runs_total{result=\"missing_file\"} 1",
    )
    .await;
    assert_eq!(http(&gw.base(), "GET", "/healthz", None).await.0, 200);
    let report = data
        .path()
        .join("reconcile")
        .join(format!("reconcile_{DAY}.txt"));
    assert!(!report.exists(), "nothing reported without the files");
    let written = sim
        .write_day_files(
            files.path(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        )
        .unwrap();
    assert_eq!(written.len(), 2);
    let page = metrics_until(
        &gw.base(),
        "bankfep_reconcile_daily_runs_total{result=\"clean\"} 1",
    )
    .await;
    assert!(
        page.contains(&format!(
            "bankfep_reconciliation_breaks{{date=\"{DAY}\"}} 0"
        )),
        "{page}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("breaks: 0"), "{text}");
    assert!(text.contains("matched"), "{text}");

    // By hand, against the running gateway: clean (0), a lost line (短款, 1), no file (2).
    let (code, out) = reconcile_remote(&gw.base(), &token, DAY);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("breaks: 0"), "{out}");
    let master_file = files.path().join(format!("RAIL_{MASTER}_{DAY}.txt"));
    let pristine = std::fs::read_to_string(&master_file).unwrap();
    let id = chunk_id(&seq, 1);
    let kept: Vec<&str> = pristine
        .lines()
        .filter(|l| !l.starts_with(&format!("D|{id}|")))
        .collect();
    assert_eq!(kept.len() + 1, pristine.lines().count(), "{pristine}");
    let head: Vec<&str> = kept[0].split('|').collect();
    let n = kept.len() - 2;
    let mut edited = format!("H|{}|{}|{n}|0\n", head[1], head[2]);
    for l in &kept[1..kept.len() - 1] {
        edited.push_str(l);
        edited.push('\n');
    }
    edited.push_str(&format!("T|{n}|0|0\n"));
    std::fs::write(&master_file, edited).unwrap();
    let (code, out) = reconcile_remote(&gw.base(), &token, DAY);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("short_短款 {id}")), "{out}");
    metrics_until(
        &gw.base(),
        &format!("bankfep_reconciliation_breaks{{date=\"{DAY}\"}} 1"),
    )
    .await;
    let (code, out) = reconcile_remote(&gw.base(), &token, "20261120");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("missing day file"), "{out}");
    let wrong = data.path().join("wrong");
    std::fs::write(&wrong, "not-the-operator-token-at-all").unwrap();
    let (code, out) = reconcile_remote(&gw.base(), &wrong, DAY);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("401"), "{out}");
    gw.stop();
    sim.shutdown().await;
}
