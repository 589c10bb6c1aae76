//! Withdrawals survive a crash of the gateway with chunks in flight on the rail: the real
//! binary talks to an in-test rail simulator (which lives across the restart) that answers
//! slowly, leaves some instructions pending and refuses some. The gateway is SIGKILLed
//! while chunks are in flight and restarted on the same store; every chunk then ends settled
//! or refunded exactly once, no instruction id is paid twice, and the master mirror
//! reconciles with the rail's real balance.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bankfep::client::{PlatformClient, Response};
use bankfep::money::format_fen;
use bankfep::rail::sim::{RailSim, SimFaults};
use bankfep::rail::wire::RailStatus;
use common::proc::*;
use common::*;

/// The bound account of the member.
const BOUND: &str = "6217000000000000042";

fn get(row: &[(String, String)], k: &str) -> String {
    row.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("bankfep.sqlite3")).expect("open db")
}

/// Binds `BOUND` to `sub`: 6240, the verification amount read from the rail's balance of
/// the bound account, 6241.
async fn bind(sim: &RailSim, c: &mut PlatformClient, sub: &str) {
    let before = sim.balance(BOUND);
    let r = call(
        c,
        "6240",
        &[
            ("SubAcctNo", sub),
            ("TranNetMemberCode", "RC01"),
            ("MemberName", "冯三"),
            ("MemberAcctNo", BOUND),
            ("BankType", "2"),
            ("AcctOpenBranchName", "中国工商银行北京分行"),
            ("EiconBankBranchId", "102100099996"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let mut amount = 0;
    for _ in 0..400 {
        amount = sim.balance(BOUND) - before;
        if amount > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!((1..=50).contains(&amount), "verification {amount} fen");
    let r = call(
        c,
        "6241",
        &[
            ("SubAcctNo", sub),
            ("TakeCashAcctNo", BOUND),
            ("AuthAmt", &format_fen(amount)),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("S"));
}

/// Polls 6110 (≤ 60 s) until the withdrawal with `serial` is no longer `6`.
async fn wait_done(c: &mut PlatformClient, serial: &str) -> Response {
    for _ in 0..1200 {
        let r = call(c, "6110", &[("OrigSerialNo", serial)]).await;
        assert_eq!(r.return_code(), "000000", "{}", r.return_message());
        if r.field("TranStatus").as_deref() != Some("6") {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("withdrawal {serial} did not resolve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawals_resolve_exactly_once_across_a_crash() {
    let base = SimFaults {
        latency_ms: 300,
        ..SimFaults::default()
    };
    let sim = RailSim::start("127.0.0.1:0", base.clone())
        .await
        .expect("rail sim");
    let rail = sim.addr().to_string();
    let dir = TempDir::new("rail-crash");
    let config = dir.join("bankfep.toml");
    std::fs::write(
        &config,
        "[rail]\nfirst_query_ms = 100\nbackoff_start_ms = 100\nbackoff_max_ms = 500\n\
         read_timeout_ms = 2000\n",
    )
    .expect("write config");

    let mut p = spawn_gateway(
        &dir,
        &[
            "--rail-addr",
            &rail,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    );
    let mut c = p.client().await;
    let mut core = p.core_client().await;
    let sub = open_sub(&mut c, "RC01", "冯三").await;
    let funded: i64 = 60_000_000; // 600,000.00
    fund(&mut core, "CORE-RC1", &sub, funded as u64).await;
    bind(&sim, &mut c, &sub).await;
    let verification = sim.balance(BOUND);

    // Slow replies, half the instructions pending for two queries, some refused.
    sim.set_faults(SimFaults {
        latency_ms: 300,
        pending_per_mille: 500,
        pending_queries: 2,
        fail_per_mille: 200,
        fail_code: "RJ01".into(),
        seed: 42,
        ..SimFaults::default()
    });
    // Four withdrawals of 120,000.00 (3 chunks each) with a commission of 1.00.
    let mut withdrawals = Vec::new();
    for i in 0..4 {
        let s = serial("RC");
        let r = c
            .call(
                ENT,
                "6033",
                &s,
                &[
                    ("SubAcctNo", &sub),
                    ("TranNetMemberCode", "RC01"),
                    ("MemberName", "冯三"),
                    ("TakeCashAcctNo", BOUND),
                    ("OutAmtAcctName", "冯三"),
                    ("CashAmt", "120000.00"),
                    ("TakeCashCommission", "1.00"),
                    ("OrderNo", &format!("RC-{i}")),
                ],
            )
            .await
            .expect("6033");
        assert_eq!(r.return_code(), "000000", "{}", r.return_message());
        assert_eq!(r.field("ChunkCount").as_deref(), Some("3"));
        let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
        let ids: Vec<String> = (1..=3).map(|n| format!("W{seq}{n:03}")).collect();
        withdrawals.push((s, ids));
    }
    let all_ids: Vec<String> = withdrawals.iter().flat_map(|w| w.1.clone()).collect();
    // Kill as soon as the rail has received some of the chunks (its replies take 300 ms).
    for _ in 0..500 {
        if all_ids.iter().any(|id| sim.instruction(id).is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(c);
    drop(core);
    p.kill9();
    let held_at_kill = all_ids
        .iter()
        .filter(|id| sim.instruction(id).is_some())
        .count();
    assert!(
        held_at_kill > 0,
        "no chunk reached the rail before the kill"
    );
    let unresolved: i64 = db(&dir)
        .query_row(
            "SELECT COUNT(*) FROM instructions WHERE kind = 'C' AND state = 'P'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(unresolved > 0, "the kill found no chunk in flight");

    // Restart on the same store and rail; the unresolved chunks are resumed.
    let p = spawn_gateway(
        &dir,
        &[
            "--rail-addr",
            &rail,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    );
    let mut c = p.client().await;
    let mut settled_sum = 0i64;
    let mut settled_n = 0usize;
    let mut refunded_n = 0i64;
    let mut refunded_sum = 0i64;
    let mut commission_back = 0i64;
    let mut statuses = BTreeMap::new();
    for (s, ids) in &withdrawals {
        let done = wait_done(&mut c, s).await;
        let rows = done.rows();
        assert_eq!(rows.len(), 3);
        let (mut ok, mut bad) = (0, 0);
        for (row, id) in rows.iter().zip(ids) {
            let amt = 4_000_000;
            assert_eq!(get(row, "TranAmt"), "40000.00");
            let (st, held_amt, paid) = sim.instruction(id).expect("the rail holds every chunk");
            assert_eq!(held_amt, amt);
            assert!(paid <= 1, "{id} paid {paid} times");
            match get(row, "ChunkStatus").as_str() {
                "S" => {
                    assert_eq!((st, paid), (RailStatus::Settled, 1), "{id}");
                    settled_sum += amt;
                    settled_n += 1;
                    ok += 1;
                }
                "F" => {
                    assert_eq!((st, paid), (RailStatus::Failed, 0), "{id}");
                    assert_eq!(get(row, "RejectCode"), "RJ01");
                    refunded_sum += amt;
                    refunded_n += 1;
                    bad += 1;
                }
                other => panic!("{id}: chunk status {other}"),
            }
        }
        let expect = match (ok, bad) {
            (_, 0) => "0",
            (0, _) => "1",
            _ => "2",
        };
        if bad == 3 {
            commission_back += 100;
        }
        assert_eq!(done.field("TranStatus").as_deref(), Some(expect), "{s}");
        statuses.insert(s.clone(), expect);
    }
    // Only our instructions were paid, each once: the verification and the settled chunks.
    assert_eq!(sim.paid_count(), 1 + settled_n, "{statuses:?}");
    assert_eq!(sim.balance(MASTER), -settled_sum);
    assert_eq!(sim.balance(BOUND), verification + settled_sum);
    let left = funded - 4 * (12_000_000 + 100) + refunded_sum + commission_back;
    assert_eq!(balance(&mut c, &sub).await.0, format_fen(left));
    drop(c);
    p.stop().await;

    // The stored ledger after a clean stop: 总分平衡, nothing in transit, and the mirror
    // equals the funding plus what the rail really holds for the master account.
    let db = db(&dir);
    let (mirror, suspense, fee, in_transit): (i64, i64, i64, i64) = db
        .query_row(
            "SELECT mirror, suspense, fee, in_transit FROM masters WHERE acct_no = ?1",
            [MASTER],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("master row");
    let subs: i64 = db
        .query_row("SELECT COALESCE(SUM(balance), 0) FROM subs", [], |r| {
            r.get(0)
        })
        .expect("subs");
    assert_eq!(in_transit, 0);
    assert_eq!(mirror, subs + suspense + fee + in_transit, "总分平衡");
    assert_eq!(mirror, funded + sim.balance(MASTER), "reconciliation");
    assert_eq!(subs, left);
    // Each refused chunk refunded exactly once (one `07` entry each), nothing unresolved.
    let refunds: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE booking_type = '07'",
            [],
            |r| r.get(0),
        )
        .expect("refund entries");
    assert_eq!(refunds, refunded_n);
    let open: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM instructions WHERE state = 'P'",
            [],
            |r| r.get(0),
        )
        .expect("open instructions");
    assert_eq!(open, 0);
    drop(db);
    sim.shutdown().await;
}
