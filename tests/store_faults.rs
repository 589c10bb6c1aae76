//! A storage failure in the middle of a request never lets money out (issue 3: "each
//! instruction is persisted before it is sent"): when the store fails while booking a
//! withdrawal, the request is answered `YQ9999` (outcome unknown, not final), its
//! instructions are rolled back with it and never reach the rail, the balance is untouched,
//! and a retry with the same serial is then processed and settles exactly once.

mod common;

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
    let running = bankfep::server::start_with_store(test_config(dir.clone()), Box::new(store))
        .await
        .expect("start");
    let gw = Gw {
        platform: running.platform_addr.expect("platform").to_string(),
        core: running.core_addr.expect("core").to_string(),
        running,
        dir: TempDir::adopt(dir),
    };
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
