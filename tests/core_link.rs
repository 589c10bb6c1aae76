//! The bank-core link (docs/protocol.md §2): inbound-credit notices and their allocation,
//! malformed records and untrusted framing; then 6050 paging over the credits and 6139
//! allocation from suspense (§1.3).

mod common;

use bankfep::client::{CoreClient, CoreReply, PlatformClient};
use common::*;
use tokio::io::AsyncWriteExt;

/// Sends a raw frame and parses the reply.
async fn raw(core: &mut CoreClient, frame: &[u8]) -> CoreReply {
    let rec = core.call_raw(frame).await.expect("reply");
    assert_eq!(rec.len(), 100, "reply record is 100 bytes");
    assert_eq!(&rec[..4], b"6920");
    CoreReply::parse(&rec).expect("parse")
}

fn get(row: &[(String, String)], k: &str) -> String {
    row.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn credits_page(
    c: &mut PlatformClient,
    start: &str,
    end: &str,
    page: u32,
) -> bankfep::client::Response {
    let r = call(
        c,
        "6050",
        &[
            ("StartDate", start),
            ("EndDate", end),
            ("PageNum", &page.to_string()),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "6050: {}", r.return_message());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_allocated_once() {
    let gw = start("core-alloc").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "N001", "甲公司").await;
    let b = open_sub(&mut c, "N002", "乙公司").await;

    // New notice straight to a sub-account.
    let r = core
        .notify(&notice("NB-1", &a, 10_000, ""))
        .await
        .expect("notify");
    assert_eq!(
        (r.result.as_str(), r.bank_serial.as_str()),
        ("0000", "NB-1")
    );
    assert_eq!(balance(&mut c, &a).await.0, "100.00");
    // Repeated bank serial (even with other content): accepted, no money moves.
    for n in [
        notice("NB-1", &a, 10_000, ""),
        notice("NB-1", &b, 99_999, "again"),
    ] {
        let r = core.notify(&n).await.expect("notify");
        assert_eq!(
            (r.result.as_str(), r.bank_serial.as_str()),
            ("0000", "NB-1")
        );
    }
    assert_eq!(balance(&mut c, &a).await.0, "100.00");
    assert_eq!(balance(&mut c, &b).await.0, "0.00");

    // To the master account, memo naming exactly one sub-account: allocated there.
    let r = core
        .notify(&notice("NB-2", MASTER, 2_500, &format!("货款 {b} 谢谢")))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000");
    assert_eq!(balance(&mut c, &b).await.0, "25.00");
    // The same sub-account named twice is still one.
    let r = core
        .notify(&notice("NB-2b", MASTER, 100, &format!("{b}/{b}")))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000");
    assert_eq!(balance(&mut c, &b).await.0, "26.00");
    // Memo naming two sub-accounts: suspense.
    let r = core
        .notify(&notice("NB-3", MASTER, 700, &format!("{a},{b}")))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000");
    // No memo: suspense.
    let r = core
        .notify(&notice("NB-4", MASTER, 300, ""))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000");
    assert_eq!(balance(&mut c, &a).await.0, "100.00");
    assert_eq!(balance(&mut c, &b).await.0, "26.00");

    // Unknown payee: 1002, serial echoed, nothing booked.
    let r = core
        .notify(&notice("NB-5", "6222999999999999999", 500, ""))
        .await
        .expect("notify");
    assert_eq!(
        (r.result.as_str(), r.bank_serial.as_str()),
        ("1002", "NB-5")
    );

    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.suspense, 1_000);
    assert_eq!(m.mirror, 10_000 + 2_500 + 100 + 700 + 300);
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_get_1001_and_the_connection_stays_open() {
    let gw = start("core-malformed").await;
    let mut c = gw.client().await;
    let a = open_sub(&mut c, "N101", "丙").await;
    let mut core = gw.core_client().await;
    // Offsets inside the frame = 8 (prefix) + record offset.
    let patches: &[(&str, usize, &[u8])] = &[
        ("wrong trade code", 0, b"6921"),
        ("bad date", 40, b"20261332"),
        ("non-digit date", 40, b"2026112x"),
        ("bad time", 48, b"256000"),
        ("non-digit amount", 86, b"00000000000010a"),
        ("zero amount", 86, b"000000000000000"),
        ("wrong currency", 101, b"USD"),
        ("unknown channel", 36, b"SWFT"),
    ];
    for (i, (what, off, bytes)) in patches.iter().enumerate() {
        let serial = format!("MAL-{i}");
        let mut f = notice(&serial, &a, 1_000, "").to_frame().expect("frame");
        f[8 + off..8 + off + bytes.len()].copy_from_slice(bytes);
        let r = raw(&mut core, &f).await;
        assert_eq!(r.result, "1001", "{what}");
        assert_eq!(r.bank_serial, serial, "{what}: bank serial echoed");
    }
    // A record of the wrong length behind a valid prefix.
    let mut f = notice("MAL-LEN", &a, 1_000, "").to_frame().expect("frame");
    f.truncate(8 + 380);
    f[..8].copy_from_slice(b"00000380");
    assert_eq!(raw(&mut core, &f).await.result, "1001");
    // Still open: a valid notice on the same connection is booked.
    fund(&mut core, "MAL-OK", &a, 1_000).await;
    assert_eq!(
        balance(&mut c, &a).await.0,
        "10.00",
        "only the valid notice moved money"
    );
    // A malformed notice with a serial that was rejected earlier can be sent again correctly.
    fund(&mut core, "MAL-0", &a, 1_000).await;
    assert_eq!(balance(&mut c, &a).await.0, "20.00");
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_prefixes_get_1001_and_the_connection_closes() {
    let gw = start("core-prefix").await;
    let mut c = gw.client().await;
    let a = open_sub(&mut c, "N201", "丁").await;

    // Prefix not 8 digits.
    let mut core = gw.core_client().await;
    let mut f = notice("PFX-1", &a, 1_000, "").to_frame().expect("frame");
    f[..8].copy_from_slice(b"0000039x");
    let r = raw(&mut core, &f).await;
    assert_eq!(r.result, "1001");
    assert!(core.read_reply().await.is_err(), "connection closed");

    // Length above 4096: answered before any record byte is sent, then closed.
    let mut core = gw.core_client().await;
    core.stream_mut()
        .write_all(b"00004097")
        .await
        .expect("write prefix");
    let rec = core.read_reply().await.expect("reply before the record");
    assert_eq!(CoreReply::parse(&rec).expect("parse").result, "1001");
    assert!(core.read_reply().await.is_err(), "connection closed");

    // The next connection is served; nothing was booked by the bad frames.
    let mut core = gw.core_client().await;
    fund(&mut core, "PFX-OK", &a, 4_200).await;
    assert_eq!(balance(&mut c, &a).await.0, "42.00");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").mirror, 4_200);
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_paged_20_a_page() {
    let gw = start("core-6050").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "N301", "戊").await;
    for i in 0..25u64 {
        // Every fifth to the master without memo (suspense), the rest to the sub-account.
        let payee = if i % 5 == 4 { MASTER } else { a.as_str() };
        fund(&mut core, &format!("PAGE-{i:02}"), payee, 100 + i).await;
    }
    // One on another accounting date, outside the filter below.
    let mut n = notice("PAGE-OLD", &a, 1, "");
    n.acct_date = "20261101".into();
    assert_eq!(core.notify(&n).await.expect("notify").result, "0000");

    let p1 = credits_page(&mut c, "20261123", "20261123", 1).await;
    assert_eq!(p1.field("TotalCount").as_deref(), Some("25"));
    assert_eq!(p1.field("EndFlag").as_deref(), Some("N"));
    let rows1 = p1.rows();
    assert_eq!(rows1.len(), 20);
    let p2 = credits_page(&mut c, "20261123", "20261123", 2).await;
    assert_eq!(p2.field("TotalCount").as_deref(), Some("25"));
    assert_eq!(p2.field("EndFlag").as_deref(), Some("Y"));
    let rows2 = p2.rows();
    assert_eq!(rows2.len(), 5);
    let all: Vec<_> = rows1.iter().chain(rows2.iter()).collect();
    let mut seqs: Vec<String> = all.iter().map(|r| get(r, "FrontSeqNo")).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 25, "distinct FrontSeqNo on both pages");
    let mut amounts: Vec<String> = all.iter().map(|r| get(r, "TranAmt")).collect();
    amounts.sort();
    let mut want: Vec<String> = (0..25u64).map(|i| format!("1.{:02}", i)).collect();
    want.sort();
    assert_eq!(amounts, want);
    for r in &all {
        let amt: u64 = get(r, "TranAmt")[2..].parse().expect("fen");
        if amt % 5 == 4 {
            assert_eq!(get(r, "InAcctType"), "03");
            assert_eq!(get(r, "SubAcctNo"), "");
        } else {
            assert_eq!(get(r, "InAcctType"), "02");
            assert_eq!(get(r, "SubAcctNo"), a);
        }
        assert_eq!(get(r, "PayerAcctNo"), "6217000000000000001");
        assert_eq!(get(r, "PayerName"), "张三");
        assert_eq!(get(r, "AcctDate"), "20261123");
    }
    // The wider filter includes the older credit.
    let w = credits_page(&mut c, "20261101", "20261130", 2).await;
    assert_eq!(w.field("TotalCount").as_deref(), Some("26"));
    assert_eq!(w.rows().len(), 6);
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

async fn allocate(
    c: &mut PlatformClient,
    sub: &str,
    member: &str,
    inbound: &str,
    amt: &str,
    order: &str,
) -> bankfep::client::Response {
    call(
        c,
        "6139",
        &[
            ("SubAcctNo", sub),
            ("TranNetMemberCode", member),
            ("InboundSeqNo", inbound),
            ("SuspendAmt", amt),
            ("OrderNo", order),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspense_is_allocated_with_6139() {
    let gw = start("core-6139").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "N401", "己").await;
    let b = open_sub(&mut c, "N402", "庚").await;
    fund(&mut core, "SUS-1", MASTER, 10_000).await; // 100.00 to suspense
    fund(&mut core, "SUS-DIRECT", &b, 500).await; // 5.00 to b (type 02)
    let p = credits_page(&mut c, "20261123", "20261123", 1).await;
    let rows = p.rows();
    let suspense_row = rows
        .iter()
        .find(|r| get(r, "InAcctType") == "03")
        .expect("suspense row");
    let inbound = get(suspense_row, "FrontSeqNo");
    let direct = get(
        rows.iter()
            .find(|r| get(r, "InAcctType") == "02")
            .expect("direct row"),
        "FrontSeqNo",
    );
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").suspense, 10_000);

    // Partial, then the rest, then one too many.
    let r = allocate(&mut c, &a, "N401", &inbound, "30.00", "ALLOC-1").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq1 = r.field("FrontSeqNo").expect("FrontSeqNo");
    assert_eq!(balance(&mut c, &a).await.0, "30.00");
    let r = allocate(&mut c, &b, "N402", &inbound, "70.00", "ALLOC-2").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(balance(&mut c, &b).await.0, "75.00");
    let r = allocate(&mut c, &a, "N401", &inbound, "0.01", "ALLOC-3").await;
    assert_eq!(r.return_code(), "E10009");
    // Unknown InboundSeqNo; a credit that is not in suspense.
    let r = allocate(&mut c, &a, "N401", "2026112399999999", "1.00", "ALLOC-4").await;
    assert_eq!(r.return_code(), "YQ9996");
    let r = allocate(&mut c, &a, "N401", &direct, "1.00", "ALLOC-5").await;
    assert_eq!(r.return_code(), "YQ9996");
    // The allocation has an e-receipt like every posting to a sub-account.
    let r = call(&mut c, "6142", &[("FrontSeqNo", &seq1)]).await;
    assert_eq!(r.return_code(), "000000");
    assert_eq!(r.field("TranAmt").as_deref(), Some("30.00"));
    assert_eq!(r.field("PayeeAcctNo").as_deref(), Some(a.as_str()));

    // 6050: the 03 row stays (its full amount), each allocation adds a 04 row.
    let p = credits_page(&mut c, "20261123", "20261123", 1).await;
    assert_eq!(p.field("TotalCount").as_deref(), Some("4"));
    assert_eq!(p.field("EndFlag").as_deref(), Some("Y"));
    let rows = p.rows();
    let mut kinds: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (get(r, "InAcctType"), get(r, "SubAcctNo"), get(r, "TranAmt")))
        .collect();
    kinds.sort();
    let mut want = vec![
        ("02".to_string(), b.clone(), "5.00".to_string()),
        ("03".to_string(), String::new(), "100.00".to_string()),
        ("04".to_string(), a.clone(), "30.00".to_string()),
        ("04".to_string(), b.clone(), "70.00".to_string()),
    ];
    want.sort();
    assert_eq!(kinds, want);
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.suspense, 0);
    assert_eq!(m.mirror, 10_500);
    gw.running.shutdown().await;
}
