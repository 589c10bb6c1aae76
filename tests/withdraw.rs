//! Withdrawals over the payment rail (issue 3), black-box over real sockets against the
//! gateway's built-in rail simulator: binding with small-amount verification, super e-bank
//! chunks under 50,000.00, and reconciliation of the master mirror with the rail's balance.

mod common;

use std::time::Duration;

use bankfep::client::PlatformClient;
use common::*;

/// The bound account used by these tests (another bank).
pub const BOUND: &str = "6217000000000000042";

/// Binds `BOUND` to `sub` (member `member`, name `name`): 6240, read the verification amount
/// the member received on the rail, 6241.
async fn bind(gw: &Gw, c: &mut PlatformClient, sub: &str, member: &str, name: &str, acct: &str) {
    let before = gw
        .running
        .rail_sim
        .as_ref()
        .expect("built-in rail")
        .balance(acct);
    let r = call(
        c,
        "6240",
        &[
            ("SubAcctNo", sub),
            ("TranNetMemberCode", member),
            ("MemberName", name),
            ("MemberAcctNo", acct),
            ("BankType", "2"),
            ("AcctOpenBranchName", "中国工商银行北京分行"),
            ("EiconBankBranchId", "102100099996"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("P"));
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    let mut amount = 0;
    for _ in 0..100 {
        amount = sim.balance(acct) - before;
        if amount > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        (1..=50).contains(&amount),
        "verification amount {amount} fen"
    );
    let r = call(
        c,
        "6241",
        &[
            ("SubAcctNo", sub),
            ("TakeCashAcctNo", acct),
            ("AuthAmt", &bankfep::money::format_fen(amount)),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("S"));
}

/// Polls 6110 until the withdrawal requested with `serial` is no longer `6`.
async fn wait_done(c: &mut PlatformClient, serial: &str) -> bankfep::client::Response {
    for _ in 0..200 {
        let r = call(c, "6110", &[("OrigSerialNo", serial)]).await;
        if r.field("TranStatus").as_deref() != Some("6") {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("withdrawal {serial} did not resolve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_withdraw_120000_in_three_chunks() {
    let gw = start("withdraw").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "W001", "张三").await;
    fund(&mut core, "CORE-W1", &sub, 20_000_000).await; // 200,000.00
    bind(&gw, &mut c, &sub, "W001", "张三", BOUND).await;
    let serial = serial("WD");
    let r = c
        .call(
            ENT,
            "6033",
            &serial,
            &[
                ("SubAcctNo", &sub),
                ("TranNetMemberCode", "W001"),
                ("MemberName", "张三"),
                ("TakeCashAcctNo", BOUND),
                ("OutAmtAcctName", "张三"),
                ("CashAmt", "120000.00"),
                ("TakeCashCommission", "2.00"),
                ("OrderNo", "WD-ORDER-1"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("ChunkCount").as_deref(), Some("3"));
    assert_eq!(r.field("TranStatus").as_deref(), Some("6"));
    // Debited on acceptance: the money is in transit.
    assert_eq!(balance(&mut c, &sub).await.0, "79998.00");
    let done = wait_done(&mut c, &serial).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    let rows = done.rows();
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        let get = |k: &str| {
            row.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("ChunkNo"), (i + 1).to_string());
        assert_eq!(get("TranAmt"), "40000.00");
        assert_eq!(get("ChunkStatus"), "S");
    }
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.in_transit, 0);
    assert_eq!(m.fee, 200);
    let sim = gw.running.rail_sim.as_ref().expect("sim");
    // Reconciliation (对账): the mirror equals funding minus what the rail really paid out.
    assert_eq!(sim.balance(MASTER), -12_000_000);
    assert_eq!(m.mirror, 20_000_000 + sim.balance(MASTER));
    gw.running.shutdown().await;
}
