//! Issue 7, items 1 and 3–5: defects found by the adversarial review, each reproduced over
//! real sockets against an in-process gateway. Each test fails without its fix.

mod common;

use std::time::Duration;

use bankfep::client::{build_request, xml_request, BodyCharset};
use bankfep::rail::sim::{RailSim, SimFaults};
use bankfep::rail::wire::RailStatus;
use common::bank::{confirm, start_bind};
use common::*;

/// Another bank's account, bound in these tests.
const BOUND: &str = "6217000000000000077";

/// The pending verification amount of `sub` as the ledger holds it (`None`: no attempt).
async fn pending_auth(gw: &Gw, sub: &str) -> Option<i64> {
    let (state, _) = gw.running.writer.snapshot().await.expect("snapshot");
    let s = state.sub_by_no(sub).expect("sub-account");
    s.binding
        .as_ref()
        .filter(|b| !b.verified)
        .map(|b| b.auth_amount)
}

/// A gateway whose rail is `sim`, with fast query timing.
async fn start_on_rail(name: &str, sim: &RailSim) -> Gw {
    let mut cfg = test_config(temp_dir(name));
    cfg.rail.addr = Some(sim.addr().to_string());
    cfg.rail.first_query_ms = 50;
    cfg.rail.backoff_start_ms = 50;
    cfg.rail.backoff_max_ms = 400;
    start_with(cfg).await
}

/// Item 4: a forced transfer to the same sub-account is refused `E10009`, moves nothing,
/// takes no fee, and the writer keeps serving (in a debug build it used to panic the
/// writer thread on the invariant check, after which every request was refused).
#[tokio::test]
async fn transfer_to_the_same_sub_account_is_refused() {
    let gw = start("same-sub").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "SAME1", "同户甲").await;
    let b = open_sub(&mut c, "SAME2", "同户乙").await;
    fund(&mut core, "SAMESUB-1", &a, 100_000).await;
    let r = transfer(
        &mut c,
        (&a, "SAME1"),
        (&a, "SAME1"),
        "100.00",
        "1.00",
        "ORD-SAME-1",
    )
    .await;
    assert_eq!(r.return_code(), "E10009", "{}", r.return_message());
    assert_eq!(balance(&mut c, &a).await.0, "1000.00");
    // The writer still serves, and the refused request did not use its OrderNo up.
    let r = transfer(
        &mut c,
        (&a, "SAME1"),
        (&b, "SAME2"),
        "100.00",
        "1.00",
        "ORD-SAME-1",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(balance(&mut c, &a).await.0, "899.00");
    assert_eq!(balance(&mut c, &b).await.0, "100.00");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").fee, 100);
}

/// Item 5: a final rail failure of the 6240 verification transfer ends that attempt: 6241
/// with the right amount answers `E10005`; a new 6240 starts over and binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_verification_transfer_cannot_be_confirmed() {
    let sim = RailSim::start(
        "127.0.0.1:0",
        SimFaults {
            fail_per_mille: 1000,
            fail_code: "RJ01".into(),
            latency_ms: 300,
            ..SimFaults::default()
        },
    )
    .await
    .expect("rail sim");
    let gw = start_on_rail("verify-fail", &sim).await;
    let mut c = gw.client().await;
    let sub = open_sub(&mut c, "VFAIL1", "验证失败").await;
    let r = start_bind(&mut c, &sub, "VFAIL1", "验证失败", BOUND, "2").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    // The amount the member would have received, read before the rail answers (300 ms).
    let amount = pending_auth(&gw, &sub).await.expect("pending attempt");
    // Wait for the rail's final F to be booked (the attempt disappears), at most 5 s.
    for _ in 0..100 {
        if pending_auth(&gw, &sub).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = confirm(&mut c, &sub, BOUND, amount).await;
    assert_eq!(
        r.return_code(),
        "E10005",
        "a verification transfer the rail refused must not bind: {}",
        r.return_message()
    );
    // A new 6240 over a working rail starts over, and its own amount binds.
    sim.set_faults(SimFaults::default());
    let before = sim.balance(BOUND);
    let r = start_bind(&mut c, &sub, "VFAIL1", "验证失败", BOUND, "2").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let mut paid = 0;
    for _ in 0..100 {
        paid = sim.balance(BOUND) - before;
        if paid > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((1..=50).contains(&paid), "verification amount {paid}");
    let r = confirm(&mut c, &sub, BOUND, paid).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("S"));
}

/// Item 3: a 6920 whose memo or payer name holds a GB18030 four-byte sequence is refused
/// `1001` and books nothing; every later GBK 6050 and 6072 still answers. A UTF-8 platform
/// request with a character GBK cannot carry is refused `YQ9993` and stores nothing.
#[tokio::test]
async fn text_that_gbk_cannot_carry_is_refused_at_the_door() {
    let gw = start("gb18030").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "GB1", "四字节").await;
    fund(&mut core, "GB18030-OK", &sub, 5_000).await;
    // Offsets inside the 390-byte record (after the 8-byte prefix): payer name 136, memo 270.
    for (serial, offset) in [("GB18030-MEMO", 270usize), ("GB18030-NAME", 136)] {
        let mut frame = notice(serial, &sub, 7_000, "")
            .to_frame()
            .expect("notice frame");
        frame[8 + offset..8 + offset + 4].copy_from_slice(&[0x94, 0x39, 0xFC, 0x36]);
        let reply = core.call_raw(&frame).await.expect("reply");
        assert_eq!(&reply[36..40], b"1001", "{serial}");
    }
    assert_eq!(balance(&mut c, &sub).await.0, "50.00");
    for (tx, fields) in [
        (
            "6050",
            vec![
                ("StartDate", "20260101"),
                ("EndDate", "20261231"),
                ("PageNum", "1"),
            ],
        ),
        (
            "6072",
            vec![
                ("SubAcctNo", sub.as_str()),
                ("StartDate", "20260101"),
                ("EndDate", "20261231"),
                ("PageNum", "1"),
            ],
        ),
    ] {
        let r = call(&mut c, tx, &fields).await;
        assert_eq!(r.return_code(), "000000", "{tx}: {}", r.return_message());
        assert_eq!(r.field("TotalCount").as_deref(), Some("1"), "{tx}");
    }
    // UTF-8 body: an emoji in MemberName is refused; nothing is opened.
    let body = xml_request(
        BodyCharset::Utf8,
        &[
            ("FundSummaryAcctNo", MASTER),
            ("TranNetMemberCode", "GB2"),
            ("MemberName", "表情😀"),
            ("MemberGlobalType", "1"),
            ("MemberGlobalId", "110101199001011234"),
        ],
    );
    let serial = serial("U");
    let frame = build_request(
        BodyCharset::Utf8,
        ENT,
        "6248",
        &serial,
        "20261123",
        "100000",
        &body,
    )
    .expect("frame");
    let r = c.call_raw(&frame).await.expect("6248");
    assert_eq!(r.return_code(), "YQ9993", "{}", r.return_message());
    let (state, _) = gw.running.writer.snapshot().await.expect("snapshot");
    let master = state.master_by_no(MASTER).expect("master");
    assert!(state.sub_by_member(master.id, "GB2").is_none());
}

/// Item 1 (the cap): a withdrawal needing more than `rail.max_chunks` chunks (default 200)
/// is refused `E10009` before anything moves; the largest allowed one, 200 × 49,999.99 =
/// 9,999,998.00, is accepted as 200 chunks and every chunk settles exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_chunk_count_is_capped() {
    let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
        .await
        .expect("rail sim");
    let gw = start_on_rail("chunk-cap", &sim).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "CAP1", "上限").await;
    fund(&mut core, "CAP-FUND", &sub, 2_000_000_000).await;
    let r = start_bind(&mut c, &sub, "CAP1", "上限", BOUND, "2").await;
    assert_eq!(r.return_code(), "000000");
    let mut paid = 0;
    for _ in 0..100 {
        paid = sim.balance(BOUND);
        if paid > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        confirm(&mut c, &sub, BOUND, paid).await.return_code(),
        "000000"
    );
    let fields = |amt: &'static str, order: &'static str| -> Vec<(&str, String)> {
        vec![
            ("SubAcctNo", sub.clone()),
            ("TranNetMemberCode", "CAP1".into()),
            ("MemberName", "上限".into()),
            ("TakeCashAcctNo", BOUND.into()),
            ("OutAmtAcctName", "上限".into()),
            ("CashAmt", amt.into()),
            ("OrderNo", order.into()),
        ]
    };
    let send = |f: &[(&'static str, String)]| -> Vec<(&'static str, String)> { f.to_vec() };
    let over = send(&fields("9999998.01", "CAP-OVER"));
    let over: Vec<(&str, &str)> = over.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = call(&mut c, "6033", &over).await;
    assert_eq!(r.return_code(), "E10009", "{}", r.return_message());
    assert_eq!(balance(&mut c, &sub).await.0, "20000000.00");
    let max = fields("9999998.00", "CAP-MAX");
    let max: Vec<(&str, &str)> = max.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let serial = serial("CAP");
    let r = c.call(ENT, "6033", &serial, &max).await.expect("6033");
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("ChunkCount").as_deref(), Some("200"));
    let mut status = String::new();
    for _ in 0..600 {
        let r = call(&mut c, "6110", &[("OrigSerialNo", &serial)]).await;
        status = r.field("TranStatus").unwrap_or_default();
        if status != "6" {
            assert_eq!(r.rows().len(), 200);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "0");
    assert_eq!(sim.balance(BOUND), paid + 999_999_800);
    let fseq = r.field("FrontSeqNo").expect("FrontSeqNo");
    for n in 1..=200u32 {
        let id = bankfep::ledger::withdraw::chunk_instruction_id(&fseq, n);
        let (st, amount, _) = sim.instruction(&id).expect("chunk on the rail");
        assert_eq!(st, RailStatus::Settled);
        assert_eq!(amount, 4_999_999);
    }
    assert_eq!(balance(&mut c, &sub).await.0, "10000002.00");
    gw.assert_invariants().await;
}

/// Item 9: every listener is bound before the store is opened, so a busy port stops the
/// start-up with an error naming the address, and no store file is created.
#[tokio::test]
async fn a_busy_port_stops_start_up_before_the_store_is_opened() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let dir = TempDir::new("busy-port");
    let mut cfg = test_config(dir.path().to_path_buf());
    cfg.core_addr = Some(addr.clone());
    let err = match bankfep::server::start(cfg).await {
        Ok(_) => panic!("started on a busy port"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&addr), "{err}");
    assert!(
        !dir.path().join("bankfep.sqlite3").exists(),
        "the store was opened before the listeners were bound"
    );
}

/// Business date cut-over (日切, docs/protocol.md §1.3): with a running clock just before
/// midnight, a transfer booked before it and one booked after it carry their own dates in
/// every place: `FrontSeqNo`, 6072 `TranDate` and the e-receipt's `BookingDate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_business_date_rolls_at_midnight_and_every_field_agrees() {
    let mut cfg = test_config(temp_dir("cut-over").to_path_buf());
    cfg.clock = Some("2026-11-23T23:59:57".into());
    cfg.clock_speed = Some(1);
    let gw = start_with(cfg).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "CUT1", "日切甲").await;
    let b = open_sub(&mut c, "CUT2", "日切乙").await;
    fund(&mut core, "CUT-FUND", &a, 100_000).await;
    let before = transfer(&mut c, (&a, "CUT1"), (&b, "CUT2"), "1.00", "0", "CUT-1").await;
    assert_eq!(before.return_code(), "000000");
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let after = transfer(&mut c, (&a, "CUT1"), (&b, "CUT2"), "2.00", "0", "CUT-2").await;
    assert_eq!(after.return_code(), "000000");
    let d1 = before.field("FrontSeqNo").expect("seq")[..8].to_string();
    let d2 = after.field("FrontSeqNo").expect("seq")[..8].to_string();
    assert_eq!(d2, "20261124", "booked after midnight");
    assert!(d1 == "20261123", "booked before midnight: {d1}");
    for (resp, date) in [(&before, &d1), (&after, &d2)] {
        let seq = resp.field("FrontSeqNo").expect("seq");
        let r = call(&mut c, "6142", &[("FrontSeqNo", seq.as_str())]).await;
        assert_eq!(r.field("BookingDate").as_deref(), Some(date.as_str()));
        let rows = call(
            &mut c,
            "6072",
            &[
                ("SubAcctNo", b.as_str()),
                ("StartDate", date.as_str()),
                ("EndDate", date.as_str()),
                ("PageNum", "1"),
            ],
        )
        .await
        .rows();
        let row = rows
            .iter()
            .find(|r| r.iter().any(|(k, v)| k == "FrontSeqNo" && *v == seq))
            .unwrap_or_else(|| panic!("{seq} not listed on {date}"));
        assert!(row.iter().any(|(k, v)| k == "TranDate" && v == date));
    }
}
