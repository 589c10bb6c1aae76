//! Withdrawals over the payment rail (issue 3), black-box over real sockets against the
//! gateway's built-in rail simulator: binding with small-amount verification, super e-bank
//! chunks under 50,000.00, and reconciliation of the master mirror with the rail's balance.

mod common;

use std::time::Duration;

use bankfep::client::{PlatformClient, Response};
use bankfep::money::format_fen;
use bankfep::rail::sim::{RailSim, SimFaults};
use bankfep::rail::wire::RailStatus;
use common::bank::{bind_fields, confirm, start_bind, withdraw_order as withdraw};
use common::*;

/// The bound account used by these tests (another bank).
pub const BOUND: &str = "6217000000000000042";

/// Binds `acct` to `sub` (member `member`, name `name`) over another bank: 6240, read the
/// verification amount the member received on the rail, 6241.
async fn bind(gw: &Gw, c: &mut PlatformClient, sub: &str, member: &str, name: &str, acct: &str) {
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    bind_on(sim, c, sub, member, name, acct, "2").await;
}

/// Sends 6240 and returns the verification amount (fen) that arrived at `acct` on `sim`.
async fn start_bind_on(
    sim: &RailSim,
    c: &mut PlatformClient,
    sub: &str,
    member: &str,
    name: &str,
    acct: &str,
    bank_type: &str,
) -> i64 {
    let before = sim.balance(acct);
    let r = start_bind(c, sub, member, name, acct, bank_type).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("P"));
    let mut amount = 0;
    for _ in 0..200 {
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
    amount
}

/// Binds `acct` to `sub` with the verification amount read from `sim`.
async fn bind_on(
    sim: &RailSim,
    c: &mut PlatformClient,
    sub: &str,
    member: &str,
    name: &str,
    acct: &str,
    bank_type: &str,
) {
    let amount = start_bind_on(sim, c, sub, member, name, acct, bank_type).await;
    let r = confirm(c, sub, acct, amount).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("S"));
}

/// The value of `k` in a row (empty when absent).
fn get(row: &[(String, String)], k: &str) -> String {
    row.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Decimal string → fen.
fn fen(s: &str) -> i64 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<2}");
    assert!(f.len() == 2, "amount {s}");
    i.parse::<i64>().expect("integer part") * 100 + f.parse::<i64>().expect("fraction")
}

/// A gateway on a fresh store whose rail is `sim` (an external simulator), with fast query
/// timing.
async fn start_on_rail(name: &str, sim: &RailSim) -> Gw {
    let mut cfg = test_config(temp_dir(name));
    cfg.rail.addr = Some(sim.addr().to_string());
    cfg.rail.first_query_ms = 50;
    cfg.rail.backoff_start_ms = 50;
    cfg.rail.backoff_max_ms = 400;
    cfg.rail.read_timeout_ms = 1_000;
    start_with(cfg).await
}

/// Polls 6110 until the withdrawal requested with `serial` is no longer `6`.
async fn wait_done(c: &mut PlatformClient, serial: &str) -> Response {
    for _ in 0..600 {
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

/// The chunk instruction id of chunk `n` (from 1) of the withdrawal with `seq`.
fn chunk_id(seq: &str, n: usize) -> String {
    format!("W{seq}{n:03}")
}

/// docs/protocol.md §3 splitting through real withdrawals over the built-in super e-bank rail:
/// the chunk amounts of 6110, and what the rail itself saw and paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_ebank_splitting_examples_are_paid_as_specified() {
    let gw = start("wsplit").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "WS01", "李四").await;
    let funded: i64 = 140_000_000; // 1,400,000.00
    fund(&mut core, "CORE-WS1", &sub, funded as u64).await;
    bind(&gw, &mut c, &sub, "WS01", "李四", BOUND).await;
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    let verification = sim.balance(BOUND);
    let cases: [(&str, &[&str]); 4] = [
        ("120000.00", &["40000.00", "40000.00", "40000.00"]),
        ("100000.00", &["33333.34", "33333.33", "33333.33"]),
        ("49999.99", &["49999.99"]),
        ("50000.00", &["25000.00", "25000.00"]),
    ];
    let mut total = 0;
    let mut ids = Vec::new();
    for (i, (amt, expect)) in cases.iter().enumerate() {
        let s = serial("WS");
        let r = withdraw(
            &mut c,
            &s,
            &sub,
            "WS01",
            "李四",
            BOUND,
            amt,
            "0",
            &format!("WS-{i}"),
        )
        .await;
        assert_eq!(r.return_code(), "000000", "{amt}: {}", r.return_message());
        assert_eq!(
            r.field("ChunkCount"),
            Some(expect.len().to_string()),
            "{amt}"
        );
        let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
        let done = wait_done(&mut c, &s).await;
        assert_eq!(done.field("TranStatus").as_deref(), Some("0"), "{amt}");
        let rows = done.rows();
        let got: Vec<String> = rows.iter().map(|r| get(r, "TranAmt")).collect();
        assert_eq!(&got, expect, "chunks of {amt}");
        for (n, row) in rows.iter().enumerate() {
            assert_eq!(get(row, "ChunkNo"), (n + 1).to_string());
            assert_eq!(get(row, "ChunkStatus"), "S");
            let id = chunk_id(&seq, n + 1);
            let (st, a, paid) = sim.instruction(&id).expect("rail holds the chunk");
            assert_eq!((st, a, paid), (RailStatus::Settled, fen(expect[n]), 1));
            ids.push(id);
        }
        total += fen(amt);
    }
    // 1,000,000.00: 21 chunks, each < 50,000.00, larger first, differing by at most 0.01.
    let s = serial("WS");
    let r = withdraw(
        &mut c,
        &s,
        &sub,
        "WS01",
        "李四",
        BOUND,
        "1000000.00",
        "0",
        "WS-MILLION",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("ChunkCount").as_deref(), Some("21"));
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    let done = wait_done(&mut c, &s).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    let amounts: Vec<i64> = done
        .rows()
        .iter()
        .map(|r| fen(&get(r, "TranAmt")))
        .collect();
    assert_eq!(amounts.len(), 21);
    assert_eq!(amounts.iter().sum::<i64>(), 100_000_000);
    assert!(amounts.iter().all(|a| *a < 5_000_000), "{amounts:?}");
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "larger first");
    assert!(amounts[0] - amounts[20] <= 1, "{amounts:?}");
    for (n, a) in amounts.iter().enumerate() {
        let id = chunk_id(&seq, n + 1);
        assert_eq!(
            sim.instruction(&id),
            Some((RailStatus::Settled, *a, 1)),
            "{id}"
        );
        ids.push(id);
    }
    total += 100_000_000;
    // The rail never saw a 7001 at or above the limit (it would be held as F RJ03): every
    // instruction it paid is ours, and it paid exactly them.
    assert_eq!(sim.paid_count(), ids.len() + 1, "chunks + the verification");
    assert_eq!(sim.balance(MASTER), -total);
    assert_eq!(sim.balance(BOUND), verification + total);
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.in_transit, 0);
    assert_eq!(m.mirror, funded + sim.balance(MASTER));
    assert_eq!(balance(&mut c, &sub).await.0, format_fen(funded - total));
    gw.running.shutdown().await;
}

/// Same bank (`BankType` 1): a withdrawal of 120,000.00 goes as ONE `7002` (a `7001` of that
/// size would be refused RJ03 by the rail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_bank_withdrawal_is_one_chunk() {
    let gw = start("wsame").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "WB01", "王五").await;
    fund(&mut core, "CORE-WB1", &sub, 20_000_000).await;
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    let acct = "6222000000000077777";
    bind_on(sim, &mut c, &sub, "WB01", "王五", acct, "1").await;
    let s = serial("WB");
    let r = withdraw(
        &mut c,
        &s,
        &sub,
        "WB01",
        "王五",
        acct,
        "120000.00",
        "0",
        "WB-1",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("ChunkCount").as_deref(), Some("1"));
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    let done = wait_done(&mut c, &s).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    let rows = done.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(get(&rows[0], "TranAmt"), "120000.00");
    assert_eq!(get(&rows[0], "ChunkStatus"), "S");
    assert_eq!(
        sim.instruction(&chunk_id(&seq, 1)),
        Some((RailStatus::Settled, 12_000_000, 1))
    );
    assert_eq!(sim.instruction(&chunk_id(&seq, 2)), None);
    assert_eq!(sim.balance(MASTER), -12_000_000);
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.mirror, 20_000_000 + sim.balance(MASTER));
    gw.running.shutdown().await;
}

/// A 6033 of member WR01 (赵六) of `sub` with commission 1.00 and a fresh serial.
async fn wr(
    c: &mut PlatformClient,
    sub: &str,
    acct: &str,
    name: &str,
    amt: &str,
    order: &str,
) -> Response {
    let s = serial("WR");
    c.call(
        ENT,
        "6033",
        &s,
        &[
            ("SubAcctNo", sub),
            ("TranNetMemberCode", "WR01"),
            ("MemberName", "赵六"),
            ("TakeCashAcctNo", acct),
            ("OutAmtAcctName", name),
            ("CashAmt", amt),
            ("TakeCashCommission", "1.00"),
            ("OrderNo", order),
        ],
    )
    .await
    .expect("6033")
}

/// Binding and withdrawal refusals of docs/protocol.md §1.3/§1.4: E10002, YQ9993, E10006, E10007
/// with `RemainingAttempts` 4..0 (then the attempt is over: E10005), E10005 for a missing
/// binding, a wrong account or name and after 6065, E10003 and E10008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_and_withdrawal_refusals() {
    let gw = start("wbindrules").await;
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "WR01", "赵六").await;
    fund(&mut core, "CORE-WR1", &sub, 1_000_000).await; // 10,000.00

    // 6240 with a name that is not the member's name.
    let r = call(
        &mut c,
        "6240",
        &bind_fields(&sub, "WR01", "赵七", BOUND, "2"),
    )
    .await;
    assert_eq!(r.return_code(), "E10002", "{}", r.return_message());
    // Other bank without EiconBankBranchId.
    let r = call(
        &mut c,
        "6240",
        &bind_fields(&sub, "WR01", "赵六", BOUND, "2")[..6],
    )
    .await;
    assert_eq!(r.return_code(), "YQ9993", "{}", r.return_message());
    // Neither moved money on the rail.
    assert_eq!(sim.paid_count(), 0);

    // 6033 without any binding.
    let r = wr(&mut c, &sub, BOUND, "赵六", "100.00", "WR-O1").await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());

    // A pending verification: five wrong answers count down 4, 3, 2, 1, 0.
    let amount = start_bind_on(sim, &mut c, &sub, "WR01", "赵六", BOUND, "2").await;
    // Pending is not bound: 6033 still E10005.
    let r = wr(&mut c, &sub, BOUND, "赵六", "100.00", "WR-O1").await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());
    let wrong = if amount == 50 { 49 } else { amount + 1 };
    for left in (0..5).rev() {
        let r = confirm(&mut c, &sub, BOUND, wrong).await;
        assert_eq!(r.return_code(), "E10007", "{}", r.return_message());
        assert_eq!(r.field("RemainingAttempts"), Some(left.to_string()));
    }
    // The attempt is over: even the right amount is refused until a new 6240.
    let r = confirm(&mut c, &sub, BOUND, amount).await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());
    let r = wr(&mut c, &sub, BOUND, "赵六", "100.00", "WR-O1").await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());

    // A new attempt binds; one wrong answer first leaves 4 attempts and does not end it.
    let amount = start_bind_on(sim, &mut c, &sub, "WR01", "赵六", BOUND, "2").await;
    let r = confirm(&mut c, &sub, BOUND, if amount == 1 { 2 } else { 1 }).await;
    assert_eq!(r.return_code(), "E10007");
    assert_eq!(r.field("RemainingAttempts").as_deref(), Some("4"));
    let r = confirm(&mut c, &sub, BOUND, amount).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("S"));

    // 6240 while bound.
    let r = call(
        &mut c,
        "6240",
        &bind_fields(&sub, "WR01", "赵六", "6217000000000000099", "2"),
    )
    .await;
    assert_eq!(r.return_code(), "E10006", "{}", r.return_message());

    // 6033 to another account, or with another account name.
    let r = wr(
        &mut c,
        &sub,
        "6217000000000000099",
        "赵六",
        "100.00",
        "WR-O1",
    )
    .await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());
    let r = wr(&mut c, &sub, BOUND, "赵七", "100.00", "WR-O1").await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());

    // Insufficient: amount + commission above available (10,000.00): 9,999.01 + 1.00.
    let r = wr(&mut c, &sub, BOUND, "赵六", "9999.01", "WR-O1").await;
    assert_eq!(r.return_code(), "E10003", "{}", r.return_message());
    // A refused request does not use its OrderNo up; exactly available is accepted.
    let s1 = serial("WR");
    let r = c
        .call(
            ENT,
            "6033",
            &s1,
            &[
                ("SubAcctNo", &sub),
                ("TranNetMemberCode", "WR01"),
                ("MemberName", "赵六"),
                ("TakeCashAcctNo", BOUND),
                ("OutAmtAcctName", "赵六"),
                ("CashAmt", "1000.00"),
                ("TakeCashCommission", "1.00"),
                ("OrderNo", "WR-O1"),
            ],
        )
        .await
        .expect("6033");
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    // OrderNo reuse under a new serial.
    let r = wr(&mut c, &sub, BOUND, "赵六", "100.00", "WR-O1").await;
    assert_eq!(r.return_code(), "E10008", "{}", r.return_message());
    assert_eq!(
        wait_done(&mut c, &s1).await.field("TranStatus").as_deref(),
        Some("0")
    );
    assert_eq!(balance(&mut c, &sub).await.2, "8999.00");

    // 6065 unbinds; then 6033 is E10005 again.
    let r = call(
        &mut c,
        "6065",
        &[
            ("SubAcctNo", &sub),
            ("TranNetMemberCode", "WR01"),
            ("MemberAcctNo", BOUND),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let r = wr(&mut c, &sub, BOUND, "赵六", "100.00", "WR-O2").await;
    assert_eq!(r.return_code(), "E10005", "{}", r.return_message());
    assert_eq!(balance(&mut c, &sub).await.2, "8999.00");
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

/// §2 allocation: after binding, a credit to the MASTER account paid from the bound account
/// lands in that sub-account, not in suspense (an unbound payer still goes to suspense).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_from_bound_account_is_allocated_to_its_sub_account() {
    let gw = start("wbound-alloc").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "WA01", "孙八").await;
    bind(&gw, &mut c, &sub, "WA01", "孙八", BOUND).await;
    let mut n = notice("CORE-WA1", MASTER, 123_456, "货款");
    n.payer_acct = BOUND.into();
    n.payer_name = "孙八".into();
    let r = core.notify(&n).await.expect("notify");
    assert_eq!(r.result, "0000", "{}", r.message);
    // A payer that is nobody's bound account: suspense.
    let r = core
        .notify(&notice("CORE-WA2", MASTER, 1_000, "货款"))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000", "{}", r.message);
    assert_eq!(balance(&mut c, &sub).await.0, "1234.56");
    let r = call(
        &mut c,
        "6050",
        &[
            ("StartDate", "20261123"),
            ("EndDate", "20261123"),
            ("PageNum", "1"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let rows = r.rows();
    assert_eq!(rows.len(), 2, "{}", r.body_text());
    let by_amt = |a: &str| {
        rows.iter()
            .find(|row| get(row, "TranAmt") == a)
            .cloned()
            .expect("row")
    };
    let bound_row = by_amt("1234.56");
    assert_eq!(get(&bound_row, "InAcctType"), "02");
    assert_eq!(get(&bound_row, "SubAcctNo"), sub);
    assert_eq!(get(&bound_row, "PayerAcctNo"), BOUND);
    assert_eq!(get(&by_amt("10.00"), "InAcctType"), "03");
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.suspense, 1_000);
    gw.running.shutdown().await;
}

/// Funds a fresh sub-account `member` with `amount_fen` and binds `BOUND` on `sim` (with no
/// faults: the verification must settle).
async fn funded_bound_sub(
    gw: &Gw,
    sim: &RailSim,
    c: &mut PlatformClient,
    member: &str,
    name: &str,
    amount_fen: u64,
) -> String {
    let mut core = gw.core_client().await;
    let sub = open_sub(c, member, name).await;
    fund(&mut core, &format!("CORE-{member}"), &sub, amount_fen).await;
    bind_on(sim, c, &sub, member, name, BOUND, "2").await;
    sub
}

/// The 6072 rows of `sub` on the test day (one page).
async fn details(c: &mut PlatformClient, sub: &str) -> Vec<Vec<(String, String)>> {
    let r = call(
        c,
        "6072",
        &[
            ("SubAcctNo", sub),
            ("StartDate", "20261123"),
            ("EndDate", "20261123"),
            ("PageNum", "1"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("EndFlag").as_deref(), Some("Y"));
    r.rows()
}

/// Every chunk refused RJ01 by the rail: TranStatus 1, each chunk F RJ01, the sub-account
/// restored including the commission, `07` refund rows each with an e-receipt, nothing in
/// transit, and the mirror equals what the rail really holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_chunks_refused_refunds_everything_including_commission() {
    let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
        .await
        .expect("sim");
    let gw = start_on_rail("wrefund", &sim).await;
    let mut c = gw.client().await;
    let sub = funded_bound_sub(&gw, &sim, &mut c, "WF01", "周九", 20_000_000).await;
    sim.set_faults(SimFaults {
        fail_per_mille: 1000,
        fail_code: "RJ01".into(),
        ..SimFaults::default()
    });
    let s = serial("WF");
    let r = withdraw(
        &mut c,
        &s,
        &sub,
        "WF01",
        "周九",
        BOUND,
        "120000.00",
        "5.00",
        "WF-1",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    let done = wait_done(&mut c, &s).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("1"));
    let rows = done.rows();
    assert_eq!(rows.len(), 3);
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(get(row, "ChunkStatus"), "F");
        assert_eq!(get(row, "RejectCode"), "RJ01");
        assert_eq!(
            sim.instruction(&chunk_id(&seq, n + 1)),
            Some((RailStatus::Failed, 4_000_000, 0))
        );
    }
    // Restored in full, commission included.
    let (total, frozen, avail) = balance(&mut c, &sub).await;
    assert_eq!(
        (total.as_str(), frozen.as_str(), avail.as_str()),
        ("200000.00", "0.00", "200000.00")
    );
    let det = details(&mut c, &sub).await;
    let of = |bt: &str, dc: &str| -> Vec<Vec<(String, String)>> {
        det.iter()
            .filter(|r| get(r, "BookingType") == bt && get(r, "DcFlag") == dc)
            .cloned()
            .collect()
    };
    let refunds = of("07", "C");
    assert_eq!(refunds.len(), 3, "{det:?}");
    // Debited on acceptance (the refunds can come back before any balance query).
    let debit = of("06", "D");
    assert_eq!(debit.len(), 1);
    assert_eq!(get(&debit[0], "FrontSeqNo"), seq);
    assert_eq!(get(&debit[0], "Balance"), "80000.00");
    let fee = of("08", "D");
    assert_eq!(fee.len(), 1);
    assert_eq!(get(&fee[0], "Balance"), "79995.00");
    let fee_back = of("08", "C");
    assert_eq!(fee_back.len(), 1, "commission refund row: {det:?}");
    assert_eq!(get(&fee_back[0], "TranAmt"), "5.00");
    assert_eq!(get(&det[det.len() - 1], "Balance"), "200000.00");
    let mut receipts = std::collections::BTreeSet::new();
    for row in &refunds {
        assert_eq!(get(row, "TranAmt"), "40000.00");
        let rseq = get(row, "FrontSeqNo");
        assert_ne!(rseq, seq, "a refund has its own FrontSeqNo");
        let rc = call(&mut c, "6142", &[("FrontSeqNo", &rseq)]).await;
        assert_eq!(rc.return_code(), "000000", "{}", rc.return_message());
        assert_eq!(rc.field("TranAmt").as_deref(), Some("40000.00"));
        assert_eq!(rc.field("PayeeAcctNo"), Some(sub.clone()));
        let code = rc.field("CheckCode").expect("CheckCode");
        assert_eq!(code.len(), 16);
        assert!(code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert!(receipts.insert(rc.field("ReceiptNo").expect("ReceiptNo")));
    }
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.in_transit, 0);
    assert_eq!(m.fee, 0);
    assert_eq!(sim.balance(MASTER), 0);
    assert_eq!(m.mirror, 20_000_000 + sim.balance(MASTER));
    gw.running.shutdown().await;
    sim.shutdown().await;
}

/// Some chunks settle and the others are refused: TranStatus 2, the settled chunks leave,
/// the refused ones come back, the commission is kept, and the mirror reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_refused_withdrawal_keeps_commission() {
    let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
        .await
        .expect("sim");
    let gw = start_on_rail("wpartial", &sim).await;
    let mut c = gw.client().await;
    let funded = 30_000_000; // 300,000.00
    let sub = funded_bound_sub(&gw, &sim, &mut c, "WP01", "吴十", funded as u64).await;
    // A fixed seed: the five draws of the five chunks give a mix of S and F (RJ02).
    sim.set_faults(SimFaults {
        fail_per_mille: 500,
        fail_code: "RJ02".into(),
        seed: 7,
        ..SimFaults::default()
    });
    let s = serial("WP");
    let r = withdraw(
        &mut c,
        &s,
        &sub,
        "WP01",
        "吴十",
        BOUND,
        "200000.00",
        "3.00",
        "WP-1",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("ChunkCount").as_deref(), Some("5"));
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    let done = wait_done(&mut c, &s).await;
    let rows = done.rows();
    assert_eq!(rows.len(), 5);
    let (mut settled, mut refunded) = (0i64, 0i64);
    for (n, row) in rows.iter().enumerate() {
        let (st, amt, paid) = sim.instruction(&chunk_id(&seq, n + 1)).expect("held");
        assert_eq!(amt, 4_000_000);
        match get(row, "ChunkStatus").as_str() {
            "S" => {
                assert_eq!((st, paid), (RailStatus::Settled, 1));
                assert_eq!(get(row, "RejectCode"), "");
                settled += amt;
            }
            "F" => {
                assert_eq!((st, paid), (RailStatus::Failed, 0));
                assert_eq!(get(row, "RejectCode"), "RJ02");
                refunded += amt;
            }
            other => panic!("chunk {n} status {other}"),
        }
    }
    assert!(settled > 0 && refunded > 0, "seed gives no mix: {rows:?}");
    assert_eq!(done.field("TranStatus").as_deref(), Some("2"));
    assert_eq!(sim.balance(MASTER), -settled);
    assert_eq!(
        balance(&mut c, &sub).await.0,
        format_fen(funded - 20_000_000 - 300 + refunded)
    );
    let det = details(&mut c, &sub).await;
    let count = |bt: &str, dc: &str| {
        det.iter()
            .filter(|r| get(r, "BookingType") == bt && get(r, "DcFlag") == dc)
            .count()
    };
    assert_eq!(count("07", "C") as i64, refunded / 4_000_000);
    assert_eq!(count("08", "C"), 0, "commission not refunded");
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.in_transit, 0);
    assert_eq!(m.fee, 300);
    assert_eq!(m.mirror, funded + sim.balance(MASTER));
    gw.running.shutdown().await;
    sim.shutdown().await;
}

/// Withdraws 120,000.00 (3 chunks) from `sub` of WU01 and returns (serial, chunk ids).
async fn withdraw_120k(c: &mut PlatformClient, sub: &str, order: &str) -> (String, Vec<String>) {
    let s = serial("WU");
    let r = withdraw(c, &s, sub, "WU01", "郑一", BOUND, "120000.00", "0", order).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    (s, (1..=3).map(|n| chunk_id(&seq, n)).collect())
}

/// Unknown outcomes (`P` answers, then dropped replies = broken connections) are resolved
/// by 7003 queries for the same ids: every chunk settles, each paid exactly once, no other
/// instruction paid, and the mirror reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcomes_are_queried_never_paid_twice() {
    let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
        .await
        .expect("sim");
    let gw = start_on_rail("wunknown", &sim).await;
    let mut c = gw.client().await;
    let funded = 30_000_000;
    let sub = funded_bound_sub(&gw, &sim, &mut c, "WU01", "郑一", funded as u64).await;
    assert_eq!(sim.paid_count(), 1);

    // 1. Every new instruction answered P; it settles at the third 7003 about it.
    sim.set_faults(SimFaults {
        pending_per_mille: 1000,
        pending_queries: 3,
        ..SimFaults::default()
    });
    let (s1, ids1) = withdraw_120k(&mut c, &sub, "WU-1").await;
    let done = wait_done(&mut c, &s1).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    assert!(done.rows().iter().all(|r| get(r, "ChunkStatus") == "S"));
    for id in &ids1 {
        assert_eq!(
            sim.instruction(id),
            Some((RailStatus::Settled, 4_000_000, 1)),
            "{id}"
        );
    }
    assert_eq!(sim.paid_count(), 1 + 3);

    // 2. Every reply dropped: the rail books and pays, the gateway sees broken connections.
    sim.set_faults(SimFaults {
        drop_per_mille: 1000,
        ..SimFaults::default()
    });
    let (s2, ids2) = withdraw_120k(&mut c, &sub, "WU-2").await;
    for _ in 0..400 {
        if ids2.iter().all(|id| sim.instruction(id).is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for id in &ids2 {
        assert_eq!(
            sim.instruction(id),
            Some((RailStatus::Settled, 4_000_000, 1))
        );
    }
    // Let the gateway retry through a few broken query replies: the outcome stays unknown
    // to it, and nothing is paid again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = call(&mut c, "6110", &[("OrigSerialNo", &s2)]).await;
    assert_eq!(r.field("TranStatus").as_deref(), Some("6"));
    assert!(r.rows().iter().all(|r| get(r, "ChunkStatus") == "P"));
    assert_eq!(sim.paid_count(), 1 + 6);
    // Replies get through again: the queries learn the outcome.
    sim.set_faults(SimFaults::default());
    let done = wait_done(&mut c, &s2).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    assert!(done.rows().iter().all(|r| get(r, "ChunkStatus") == "S"));
    for id in &ids2 {
        assert_eq!(
            sim.instruction(id),
            Some((RailStatus::Settled, 4_000_000, 1))
        );
    }
    assert_eq!(
        sim.paid_count(),
        1 + 6,
        "no instruction paid under a new id"
    );
    assert_eq!(sim.balance(MASTER), -24_000_000);
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.in_transit, 0);
    assert_eq!(m.mirror, funded + sim.balance(MASTER));
    assert_eq!(balance(&mut c, &sub).await.0, "60000.00");
    gw.running.shutdown().await;
    sim.shutdown().await;
}

/// 16 withdrawals from one sub-account at once, on 16 connections, each for more than 1/16
/// of the balance: the accepted ones never overdraw it, the others get E10003, and
/// everything accepted settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_withdrawals_never_overdraw() {
    let gw = start("wconc").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "WC01", "钱二").await;
    let funded: i64 = 10_000_000; // 100,000.00
    fund(&mut core, "CORE-WC1", &sub, funded as u64).await;
    bind(&gw, &mut c, &sub, "WC01", "钱二", BOUND).await;
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(gw.client().await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let mut set = tokio::task::JoinSet::new();
    for (i, mut cl) in clients.into_iter().enumerate() {
        let (sub, barrier) = (sub.clone(), barrier.clone());
        set.spawn(async move {
            // 6,300.00 .. 7,800.00: each above 1/16 of the balance (6,250.00).
            let amt = 630_000 + 10_000 * i as i64;
            let s = serial("WC");
            barrier.wait().await;
            let r = withdraw(
                &mut cl,
                &s,
                &sub,
                "WC01",
                "钱二",
                BOUND,
                &format_fen(amt),
                "1.00",
                &format!("WC-{i}"),
            )
            .await;
            (s, amt, r.return_code())
        });
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    while let Some(res) = set.join_next().await {
        let (s, amt, code) = res.expect("task");
        match code.as_str() {
            "000000" => accepted.push((s, amt)),
            "E10003" => refused.push(amt),
            other => panic!("unexpected {other}"),
        }
    }
    let debited: i64 = accepted.iter().map(|(_, a)| a + 100).sum();
    assert!(debited <= funded, "overdrawn: {debited}");
    assert!(!refused.is_empty(), "16 × > 1/16 cannot all fit");
    let left = funded - debited;
    // Each refusal saw less available than it asked for, and available only went down.
    assert!(
        refused.iter().all(|a| a + 100 > left),
        "refused {refused:?} with {left} left"
    );
    assert_eq!(balance(&mut c, &sub).await.0, format_fen(left));
    for (s, _) in &accepted {
        let done = wait_done(&mut c, s).await;
        assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    }
    let sim = gw.running.rail_sim.as_ref().expect("sim");
    let paid: i64 = accepted.iter().map(|(_, a)| a).sum();
    assert_eq!(sim.balance(MASTER), -paid);
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.in_transit, 0);
    assert_eq!(m.mirror, funded + sim.balance(MASTER));
    assert!(left >= 0);
    gw.running.shutdown().await;
}
