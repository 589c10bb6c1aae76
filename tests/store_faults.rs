//! A storage failure in the middle of a request never lets money out (issue 3: "each
//! instruction is persisted before it is sent"): when the store fails while booking a
//! withdrawal, the request is answered `YQ9999` (outcome unknown, not final), its
//! instructions are rolled back with it and never reach the rail, the balance is untouched,
//! and a retry with the same serial is then processed and settles exactly once.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bankfep::store::sqlite::SqliteStore;
use common::hooked::{Gate, HookedStore};
use common::*;

const BOUND: &str = "6217000000000000042";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_booking_sends_nothing_and_a_retry_settles_once() {
    let dir = temp_dir("storefault");
    let store = HookedStore::new(
        SqliteStore::open(&dir).expect("store"),
        Arc::new(Gate::default()),
    );
    let fault = store.fail_record_for.clone();
    let gw = start_with_store(test_config(dir), Box::new(store)).await;
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "SF001", "庚方").await;
    fund(&mut core, "SF-CORE-1", &sub, 10_000_000).await;
    let r = call(
        &mut c,
        "6240",
        &[
            ("SubAcctNo", &sub),
            ("TranNetMemberCode", "SF001"),
            ("MemberName", "庚方"),
            ("MemberAcctNo", BOUND),
            ("BankType", "2"),
            ("AcctOpenBranchName", "农业银行"),
            ("EiconBankBranchId", "103100000026"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000");
    let mut amount = 0;
    for _ in 0..100 {
        amount = sim.balance(BOUND);
        if amount > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = call(
        &mut c,
        "6241",
        &[
            ("SubAcctNo", &sub),
            ("TakeCashAcctNo", BOUND),
            ("AuthAmt", &bankfep::money::format_fen(amount)),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000");
    let paid_before = sim.paid_count();

    let fields = [
        ("SubAcctNo", sub.as_str()),
        ("TranNetMemberCode", "SF001"),
        ("MemberName", "庚方"),
        ("TakeCashAcctNo", BOUND),
        ("OutAmtAcctName", "庚方"),
        ("CashAmt", "60000.00"),
        ("OrderNo", "SF-ORDER-1"),
    ];
    *fault.lock().expect("fault") = Some("6033".into());
    let r = c
        .call(ENT, "6033", "SF-SERIAL-1", &fields)
        .await
        .expect("call");
    assert_eq!(
        r.return_code(),
        "YQ9999",
        "outcome unknown when the store fails"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.paid_count(), paid_before, "nothing reached the rail");
    assert_eq!(sim.balance(BOUND), amount);
    assert_eq!(
        balance(&mut c, &sub).await.0,
        "100000.00",
        "nothing was debited"
    );
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").in_transit, 0);

    // The fault clears; the same serial is processed (YQ9999 is not final) and settles once.
    *fault.lock().expect("fault") = None;
    let r = c
        .call(ENT, "6033", "SF-SERIAL-1", &fields)
        .await
        .expect("call");
    assert_eq!(r.return_code(), "000000");
    assert_eq!(r.field("ChunkCount").as_deref(), Some("2"));
    for _ in 0..200 {
        if sim.paid_count() == paid_before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sim.paid_count(),
        paid_before + 2,
        "two chunks, each paid once"
    );
    assert_eq!(sim.balance(BOUND), amount + 6_000_000);
    assert_eq!(balance(&mut c, &sub).await.0, "40000.00");
    gw.running.shutdown().await;
}

/// A gateway over a [`HookedStore`] on `dir`, and the store's sync hooks (fail, gate).
async fn start_hooked(dir: std::path::PathBuf) -> (Gw, Arc<AtomicBool>, Arc<Gate>) {
    let store = HookedStore::new(
        SqliteStore::open(&dir).expect("store"),
        Arc::new(Gate::default()),
    );
    let (fail, gate) = (store.fail_sync.clone(), store.sync_gate.clone());
    let gw = start_with_store(test_config(dir), Box::new(store)).await;
    (gw, fail, gate)
}

/// A client and two members' sub-accounts (SY001 funded with 1,000.00 by `bank_serial`,
/// SY002 empty).
async fn two_members(
    gw: &Gw,
    bank_serial: &str,
) -> (bankfep::client::PlatformClient, String, String) {
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "SY001", "甲方").await;
    let b = open_sub(&mut c, "SY002", "乙方").await;
    fund(&mut core, bank_serial, &a, 100_000).await;
    (c, a, b)
}

/// Whether the committed store on `dir` holds request `serial` (read through a connection
/// of its own, as a crash would leave the file).
fn stored(dir: &std::path::Path, serial: &str) -> bool {
    let conn = rusqlite::Connection::open(dir.join("bankfep.sqlite3")).expect("open");
    conn.query_row(
        "SELECT count(*) FROM requests WHERE serial = ?1",
        [serial],
        |r| r.get::<_, i64>(0),
    )
    .expect("query")
        == 1
}

async fn transfer_serial(
    c: &mut bankfep::client::PlatformClient,
    serial: &str,
    a: &str,
    b: &str,
) -> String {
    c.call(
        ENT,
        "6034",
        serial,
        &[
            ("OutSubAcctNo", a),
            ("OutMemberCode", "SY001"),
            ("InSubAcctNo", b),
            ("InMemberCode", "SY002"),
            ("TranAmt", "10.00"),
            ("TranFee", "0.00"),
            ("OrderNo", &format!("O-{serial}")),
            ("Remark", "货款"),
        ],
    )
    .await
    .expect("call")
    .return_code()
    .to_string()
}

/// Issue 9, item 1: with the pipelined commit, a batch is committed before its log is synced,
/// and its reply waits for that sync: the request is in the store's file while the client
/// still waits, and the reply comes only once the (held) sync is let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_waits_for_the_sync_that_covers_its_commit() {
    let dir = temp_dir("syncwait");
    let (gw, _fail, gate) = start_hooked(dir.clone()).await;
    let (mut c, a, b) = two_members(&gw, "SY-CORE-1").await;

    gate.set(true);
    let platform = gw.platform.clone();
    let (a2, b2) = (a.clone(), b.clone());
    let pending = tokio::spawn(async move {
        let mut c = bankfep::client::PlatformClient::connect(&platform, None, 30_000)
            .await
            .expect("connect");
        transfer_serial(&mut c, "SY-HELD-1", &a2, &b2).await
    });
    let mut committed = false;
    for _ in 0..200 {
        if gate.waiting.load(std::sync::atomic::Ordering::SeqCst) > 0 && stored(&dir, "SY-HELD-1") {
            committed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(committed, "the batch is committed while its sync is held");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "no reply before the sync that covers the commit"
    );
    gate.set(false);
    assert_eq!(pending.await.expect("task"), "000000");
    assert_eq!(balance(&mut c, &a).await.0, "990.00");
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

/// A failed sync of the log: its batch is answered `YQ9999` (outcome unknown), and the writer
/// commits nothing more until a restart, which reloads what the file holds; 6110 then tells
/// the client what happened, and the balances agree with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_answers_unknown_and_stops_commits_until_restart() {
    let dir = temp_dir("syncfail");
    let (gw, fail, _gate) = start_hooked(dir.clone()).await;
    let (mut c, a, b) = two_members(&gw, "SY-CORE-2").await;
    assert_eq!(transfer_serial(&mut c, "SY-OK-1", &a, &b).await, "000000");

    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(transfer_serial(&mut c, "SY-FAIL-1", &a, &b).await, "YQ9999");
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // Poisoned: nothing more is committed, whatever the disk does now.
    assert_eq!(
        transfer_serial(&mut c, "SY-AFTER-1", &a, &b).await,
        "YQ9999"
    );
    assert!(
        !stored(&dir, "SY-AFTER-1"),
        "nothing committed after a failed sync"
    );
    let Gw { running, dir, .. } = gw;
    running.shutdown().await;

    // The restart reloads the file: the batch whose sync failed did reach it here (no power
    // was lost), so 6110 reports it done, and the balances count it once.
    let gw = start_with(test_config(dir.to_path_buf())).await;
    let mut c = gw.client().await;
    let r = call(&mut c, "6110", &[("OrigSerialNo", "SY-FAIL-1")]).await;
    assert_eq!(r.field("TranStatus").as_deref(), Some("0"));
    let r = call(&mut c, "6110", &[("OrigSerialNo", "SY-AFTER-1")]).await;
    assert_eq!(r.return_code(), "YQ9996");
    assert_eq!(balance(&mut c, &a).await.0, "980.00");
    assert_eq!(balance(&mut c, &b).await.0, "20.00");
    gw.assert_invariants().await;
    // And the retried serial is served, once.
    assert_eq!(
        transfer_serial(&mut c, "SY-AFTER-1", &a, &b).await,
        "000000"
    );
    assert_eq!(balance(&mut c, &a).await.0, "970.00");
    gw.running.shutdown().await;
}

/// `bankfep load` sends a set-up request answered "not done" (YQ9999 here, as during the
/// first seconds of several instances sharing out their tenants) again, under the same
/// serial, instead of giving up the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_setup_retries_a_request_answered_not_done() {
    let dir = temp_dir("loadretry");
    let store = HookedStore::new(
        SqliteStore::open(&dir).expect("store"),
        Arc::new(Gate::default()),
    );
    let fault = store.fail_record_for.clone();
    *fault.lock().expect("fault") = Some("6248".into());
    let gw = start_with_store(test_config(dir), Box::new(store)).await;
    let clear = fault.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        *clear.lock().expect("fault") = None;
    });
    let opts = bankfep::tools::load::LoadOptions {
        platform_addr: gw.platform.clone(),
        core_addr: gw.core.clone(),
        enterprise: ENT.into(),
        master_account: MASTER.into(),
        connections: 2,
        requests_per_connection: 5,
        duration_ms: None,
        tls: None,
        gateway_pid: None,
    };
    let report = bankfep::tools::load::run_load(&opts)
        .await
        .expect("the run survives the set-up's YQ9999 answers");
    assert_eq!(report.requests, 10);
    assert_eq!(report.errors, 0);
    assert_eq!(report.return_codes.get("000000"), Some(&10));
    // Each member was opened once: four sub-accounts, whatever the retries.
    let state = gw.assert_invariants().await;
    let master = state.master_by_no(MASTER).expect("master");
    assert_eq!(state.subs_of(master.id).count(), 4);
    gw.running.shutdown().await;
}
