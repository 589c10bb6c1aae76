//! `bankfep admin …` (issue 11, item 6; docs/operations.md "Admin commands"): the real binary
//! reads a running gateway's store, SQLite or PostgreSQL, and shows the figures the gateway
//! booked: balances, the 总分平衡 line, a suspense item, an unresolved rail instruction and
//! the postings and receipt of one FrontSeqNo, as tables and as JSON.

mod common;

use std::path::Path;
use std::process::Output;

use bankfep::rail::sim::{RailSim, SimFaults};
use common::pg::PgDb;
use common::*;
use serde_json::Value;

/// The bound account of the pending verification (another bank).
const BOUND: &str = "6217000000000000042";

/// Where the store is, as `admin` arguments.
#[derive(Clone)]
enum Src {
    Dir(std::path::PathBuf),
    Url(String),
}

/// Runs the real binary `bankfep admin ARGS` against `src` (off the runtime's threads).
async fn admin(src: &Src, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bankfep"));
    cmd.arg("admin").env_remove("BANKFEP_DATABASE_URL");
    match src {
        Src::Dir(d) => cmd.arg("--data-dir").arg(d),
        Src::Url(u) => cmd.arg("--database-url").arg(u),
    };
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run bankfep admin"))
        .await
        .expect("join")
}

/// Standard output of a successful `admin` run.
async fn ok(src: &Src, args: &[&str]) -> String {
    let out = admin(src, args).await;
    assert!(
        out.status.success(),
        "admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Parsed `--json` output of a successful `admin` run.
async fn json(src: &Src, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let text = ok(src, &a).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: bad JSON {e}: {text}"))
}

/// A gateway on `cfg` whose rail answers every instruction "processing" forever, so a
/// binding's verification transfer stays unresolved.
async fn start_pending_rail(mut cfg: bankfep::config::Config) -> (Gw, RailSim) {
    let sim = RailSim::start(
        "127.0.0.1:0",
        SimFaults {
            pending_per_mille: 1000,
            pending_queries: u32::MAX,
            ..SimFaults::default()
        },
    )
    .await
    .expect("rail sim");
    cfg.rail.addr = Some(sim.addr().to_string());
    (start_with(cfg).await, sim)
}

/// Books the scenario through the gateway and checks every `admin` command against it
/// while the gateway runs.
async fn scenario(gw: &Gw, src: &Src) {
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "ADM1", "张三").await;
    let b = open_sub(&mut c, "ADM2", "李四").await;
    fund(&mut core, "ADM-F1", &a, 100_000).await;
    fund(&mut core, "ADM-F2", &b, 50_000).await;
    let r = transfer(
        &mut c,
        (&a, "ADM1"),
        (&b, "ADM2"),
        "250.00",
        "0.50",
        "ADM-O1",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    // To the master account without a memo: suspense.
    let n = core
        .notify(&notice("ADM-S1", MASTER, 12_345, ""))
        .await
        .expect("notify");
    assert_eq!(n.result, "0000");
    // A binding whose verification transfer the rail leaves unresolved.
    let r = call(
        &mut c,
        "6240",
        &[
            ("SubAcctNo", &b),
            ("TranNetMemberCode", "ADM2"),
            ("MemberName", "李四"),
            ("MemberAcctNo", BOUND),
            ("BankType", "2"),
            ("AcctOpenBranchName", "中国工商银行北京分行"),
            ("EiconBankBranchId", "102100099996"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());

    // Sub-accounts of the tenant: 1,000.00 − 250.00 − 0.50 and 500.00 + 250.00.
    let t = ok(src, &["subs", "--enterprise", ENT]).await;
    let line_a = t.lines().find(|l| l.starts_with(&a)).expect("row of a");
    assert!(line_a.contains("ADM1") && line_a.contains("张三") && line_a.contains("749.50"));
    assert!(line_a.contains(MASTER), "{line_a}");
    let line_b = t.lines().find(|l| l.starts_with(&b)).expect("row of b");
    assert!(
        line_b.contains("750.00") && line_b.contains("李四"),
        "{line_b}"
    );
    assert!(t.contains("2 sub-accounts, total balance 1,499.50"), "{t}");
    let j = json(src, &["subs", "--enterprise", ENT]).await;
    let rows = j.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let ja = rows
        .iter()
        .find(|r| r["sub_acct_no"] == a.as_str())
        .expect("a");
    assert_eq!(ja["balance_fen"], 74_950);
    assert_eq!(ja["available_fen"], 74_950);
    assert_eq!(ja["member_name"], "张三");
    assert_eq!(ja["status"], "open");
    let j = json(src, &["subs", "--enterprise", "NOSUCHENT"]).await;
    assert_eq!(j, Value::Array(vec![]));

    // One sub-account with its postings, newest first.
    let t = ok(src, &["sub", &a]).await;
    assert!(t.contains(&format!("sub-account  {a}")), "{t}");
    assert!(
        t.contains("balance      749.50  frozen 0.00  available 749.50"),
        "{t}"
    );
    assert!(t.contains("1,000.00") && t.contains(&seq), "{t}");
    let j = json(src, &["sub", &a, "--limit", "2"]).await;
    assert_eq!(j["balance_fen"], 74_950);
    let p = j["postings"].as_array().expect("postings");
    assert_eq!(p.len(), 2, "--limit 2");
    let mut amounts: Vec<(i64, String)> = p
        .iter()
        .map(|e| {
            assert_eq!(e["front_seq_no"], seq.as_str());
            assert_eq!(e["dc"], "D");
            (
                e["amount_fen"].as_i64().expect("fen"),
                e["booking_type"].as_str().expect("type").to_string(),
            )
        })
        .collect();
    amounts.sort();
    assert_eq!(amounts, vec![(50, "08".into()), (25_000, "01".into())]);
    let j = json(src, &["sub", &a, "--limit", "10"]).await;
    let p = j["postings"].as_array().expect("postings");
    assert_eq!(p.len(), 3);
    assert_eq!(p[2]["amount_fen"], 100_000, "oldest last: the funding");
    assert_eq!(p[2]["dc"], "C");
    let out = admin(src, &["sub", "9999999999999999"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sub-account 9999999999999999"));

    // The master mirror and 总分平衡: 1,500.00 + 123.45 = 1,499.50 + 123.45 + 0.50.
    let t = ok(src, &["masters"]).await;
    let check = format!(
        "{MASTER}: mirror 1,623.45 = sub-accounts 1,499.50 + suspense 123.45 + fee 0.50 + \
         in transit 0.00: balanced"
    );
    assert!(t.contains(&check), "{t}");
    let j = json(src, &["masters"]).await;
    let m = j
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["acct_no"] == MASTER)
        .expect("demo master");
    assert_eq!(m["enterprise_code"], ENT);
    assert_eq!(m["mirror_fen"], 162_345);
    assert_eq!(m["subs_fen"], 149_950);
    assert_eq!(m["sub_count"], 2);
    assert_eq!(m["suspense_fen"], 12_345);
    assert_eq!(m["fee_fen"], 50);
    assert_eq!(m["in_transit_fen"], 0);
    assert_eq!(m["difference_fen"], 0);
    assert_eq!(m["balanced"], true);

    // The suspense item.
    let t = ok(src, &["suspense"]).await;
    assert!(
        t.contains("123.45") && t.contains("6217000000000000001"),
        "{t}"
    );
    assert!(t.contains("1 suspense items, unallocated 123.45"), "{t}");
    let j = json(src, &["suspense"]).await;
    let items = j.as_array().expect("array");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["amount_fen"], 12_345);
    assert_eq!(items[0]["unallocated_fen"], 12_345);
    assert_eq!(items[0]["payer_name"], "张三");
    assert_eq!(items[0]["master_acct"], MASTER);
    assert_eq!(items[0]["acct_date"], 20_261_123);

    // The unresolved verification transfer, 8 days old on 2026-12-01 (clock 2026-11-23).
    let mut pending = Value::Null;
    for _ in 0..100 {
        pending = json(src, &["instructions", "--as-of", "20261201"]).await;
        if pending.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let items = pending.as_array().expect("array");
    assert_eq!(items.len(), 1, "{pending}");
    let i = &items[0];
    assert_eq!(i["kind"], "verify");
    assert_eq!(i["state"], "P");
    assert_eq!(i["payee_acct"], BOUND);
    assert_eq!(i["payee_name"], "李四");
    assert_eq!(i["since"], 20_261_123);
    assert_eq!(i["age_days"], 8);
    let amount = i["amount_fen"].as_i64().expect("fen");
    assert!((1..=50).contains(&amount), "verification amount {amount}");
    let t = ok(src, &["instructions", "--as-of", "20261201"]).await;
    let line = t
        .lines()
        .find(|l| l.contains(BOUND))
        .expect("instruction row");
    assert!(line.contains("verify") && line.ends_with(" 8d"), "{line}");
    assert!(t.contains("1 unresolved instructions"), "{t}");
    let out = admin(src, &["instructions", "--as-of", "yesterday"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--as-of must be a date yyyyMMdd"));

    // One FrontSeqNo: the transfer and its fee, and the receipt.
    let j = json(src, &["seq", &seq]).await;
    assert_eq!(j["front_seq_no"], seq.as_str());
    let legs: Vec<(String, String, i64, String)> = j["postings"]
        .as_array()
        .expect("postings")
        .iter()
        .map(|p| {
            (
                p["debit"].as_str().expect("debit").to_string(),
                p["credit"].as_str().expect("credit").to_string(),
                p["amount_fen"].as_i64().expect("fen"),
                p["booking_type"].as_str().expect("type").to_string(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            (a.clone(), b.clone(), 25_000, "01".into()),
            (a.clone(), "fee".into(), 50, "08".into()),
        ]
    );
    let rc = &j["receipt"];
    assert_eq!(rc["amount_fen"], 25_000);
    assert_eq!(rc["payer_acct"], a.as_str());
    assert_eq!(rc["payee_acct"], b.as_str());
    assert_eq!(rc["payee_name"], "李四");
    assert!(rc["receipt_no"]
        .as_str()
        .expect("no")
        .starts_with("HD20261123"));
    let t = ok(src, &["seq", &seq]).await;
    let leg = t
        .lines()
        .find(|l| l.contains(&b) && l.contains(&a))
        .expect("transfer leg");
    assert!(
        leg.contains("250.00") && leg.trim_end().ends_with("01"),
        "{leg}"
    );
    assert!(t.contains("  amount        250.00"), "{t}");
    let out = admin(src, &["seq", "2026112399999999"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("nothing is stored under FrontSeqNo 2026112399999999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reads_a_running_sqlite_gateway() {
    let (gw, _sim) = start_pending_rail(test_config(temp_dir("admin-sqlite"))).await;
    let src = Src::Dir(gw.dir.to_path_buf());
    scenario(&gw, &src).await;
    // Reading is not writing: with the gateway stopped, the store file is byte for byte
    // the same after a command, and the data folder's lock is free for a restart.
    gw.running.shutdown().await;
    let file = gw.dir.join("bankfep.sqlite3");
    let before = std::fs::read(&file).expect("store");
    let t = ok(&src, &["masters"]).await;
    assert!(t.contains(": balanced"), "{t}");
    assert_eq!(std::fs::read(&file).expect("store"), before);
    let lock = bankfep::store::lock::DataDirLock::acquire(&gw.dir);
    assert!(lock.is_ok(), "admin left the data folder locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reads_a_running_postgres_gateway() {
    let Some(db) = PgDb::new("admin") else {
        return;
    };
    let mut cfg = test_config(temp_dir("admin-pg"));
    cfg.database_url = Some(db.url.clone());
    let (gw, _sim) = start_pending_rail(cfg).await;
    scenario(&gw, &Src::Url(db.url.clone())).await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_on_a_missing_data_folder_fails_and_creates_nothing() {
    let parent = TempDir::new("admin-missing");
    let dir = parent.join("data");
    let out = admin(&Src::Dir(dir.clone()), &["masters"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("data folder {} does not exist", dir.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.exists());
    // A folder without a store file: refused as well, and still empty afterwards.
    std::fs::create_dir(&dir).expect("mkdir");
    let out = admin(&Src::Dir(dir.clone()), &["subs", "--enterprise", ENT]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bankfep.sqlite3 does not exist"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
    assert!(!Path::new(&dir).join("bankfep.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_on_a_database_without_a_store_says_so() {
    let Some(db) = PgDb::new("admin_empty") else {
        return;
    };
    let out = admin(&Src::Url(db.url.clone()), &["masters"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the database holds no bankfep store"), "{err}");
}
