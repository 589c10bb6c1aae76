//! Black-box tests of the platform link over real TCP sockets: every transaction code of
//! issue 2, the rejections of docs/protocol.md §1.4 that apply, and idempotent replay (§1.2).

mod common;

use bankfep::client::{build_request, xml_request, BodyCharset};
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_fund_transfer_with_fee_and_read_balances() {
    let gw = start("flow").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "M001", "张三").await;
    let b = open_sub(&mut c, "M002", "李四贸易有限公司").await;
    assert_ne!(a, b);
    // Opening again with the same name and id returns the same number.
    assert_eq!(open_sub(&mut c, "M001", "张三").await, a);

    fund(&mut core, "CORE0001", &a, 100_000).await; // 1,000.00
    assert_eq!(
        balance(&mut c, &a).await,
        ("1000.00".into(), "0.00".into(), "1000.00".into())
    );

    let r = transfer(&mut c, (&a, "M001"), (&b, "M002"), "250.5", "1.25", "ORD-1").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    assert_eq!(seq.len(), 16);
    assert!(seq.starts_with("20261123"));
    assert_eq!(balance(&mut c, &a).await.0, "748.25");
    assert_eq!(balance(&mut c, &b).await.0, "250.50");

    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(m.mirror, 100_000);
    assert_eq!(m.fee, 125);

    // Details of the payer: inbound credit, transfer (D) and fee (08, D), balances after each.
    let r = call(
        &mut c,
        "6072",
        &[
            ("SubAcctNo", &a),
            ("StartDate", "20261101"),
            ("EndDate", "20261130"),
            ("PageNum", "1"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000");
    assert_eq!(r.field("TotalCount").as_deref(), Some("3"));
    assert_eq!(r.field("EndFlag").as_deref(), Some("Y"));
    let rows = r.rows();
    let get = |row: &Vec<(String, String)>, k: &str| {
        row.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(rows.len(), 3);
    assert_eq!(get(&rows[0], "BookingType"), "04");
    assert_eq!(get(&rows[0], "DcFlag"), "C");
    assert_eq!(get(&rows[0], "Balance"), "1000.00");
    assert_eq!(get(&rows[1], "BookingType"), "01");
    assert_eq!(get(&rows[1], "TranAmt"), "250.50");
    assert_eq!(get(&rows[1], "Balance"), "749.50");
    assert_eq!(get(&rows[2], "BookingType"), "08");
    assert_eq!(get(&rows[2], "DcFlag"), "D");
    assert_eq!(get(&rows[2], "Balance"), "748.25");

    // The e-receipt of the transfer: stable number and a 16-character code.
    let r1 = call(&mut c, "6142", &[("FrontSeqNo", &seq)]).await;
    let r2 = call(&mut c, "6142", &[("FrontSeqNo", &seq)]).await;
    assert_eq!(r1.return_code(), "000000");
    assert_eq!(r1.body, r2.body);
    let code = r1.field("CheckCode").expect("CheckCode");
    assert_eq!(code.len(), 16);
    assert!(code
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
    assert_eq!(r1.field("TranAmt").as_deref(), Some("250.50"));
    assert_eq!(r1.field("PayerAcctNo").as_deref(), Some(a.as_str()));
    assert_eq!(r1.field("PayeeAcctNo").as_deref(), Some(b.as_str()));
    let signer = bankfep::receipt::Signer::new(&(0u8..32).collect::<Vec<_>>());
    assert!(
        signer.verify(
            &bankfep::receipt::ReceiptFields {
                receipt_no: &r1.field("ReceiptNo").expect("ReceiptNo"),
                front_seq_no: &seq,
                booking_date: "20261123",
                payer_acct: &a,
                payee_acct: &b,
                amount_fen: 25_050,
            },
            &code
        ),
        "the verification code is the keyed MAC of the receipt's fields"
    );
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_rejections_in_precedence_order() {
    let gw = start("reject").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "R001", "王五").await;
    let b = open_sub(&mut c, "R002", "赵六").await;
    fund(&mut core, "CORE-R1", &a, 10_000).await; // 100.00
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // (payer member, amount, fee, order, expected)
        ("R001", "0", "0", "O1", "E10009"),
        ("R001", "-1.00", "0", "O1", "E10009"),
        ("R001", "1.234", "0", "O1", "YQ9993"),
        ("R001", "1e3", "0", "O1", "YQ9993"),
        ("R001", "1234567890123.00", "0", "O1", "YQ9993"),
        ("R001", "10.00", "-1", "O1", "E10009"),
        ("XXXX", "10.00", "0", "O1", "E10002"),
        ("R001", "100.01", "0", "O1", "E10003"),
        ("R001", "99.99", "0.02", "O1", "E10003"),
    ];
    for (member, amt, fee, order, want) in cases {
        let r = transfer(&mut c, (&a, member), (&b, "R002"), amt, fee, order).await;
        assert_eq!(
            &r.return_code(),
            want,
            "amount {amt} fee {fee} member {member}"
        );
        if *want != "000000" {
            assert!(r.body.is_empty(), "error replies carry an empty body");
        }
    }
    // Unknown sub-account.
    let r = transfer(
        &mut c,
        ("9000000000000999", "R001"),
        (&b, "R002"),
        "1.00",
        "0",
        "O1",
    )
    .await;
    assert_eq!(r.return_code(), "E10001");
    // A refused request does not use its OrderNo up; an accepted one does.
    let r = transfer(&mut c, (&a, "R001"), (&b, "R002"), "1.00", "0", "O1").await;
    assert_eq!(r.return_code(), "000000");
    let r = transfer(&mut c, (&a, "R001"), (&b, "R002"), "1.00", "0", "O1").await;
    assert_eq!(r.return_code(), "E10008");
    assert_eq!(balance(&mut c, &a).await.0, "99.00");
    // Missing required field.
    let r = call(&mut c, "6034", &[("OutSubAcctNo", &a)]).await;
    assert_eq!(r.return_code(), "YQ9993");
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

async fn freeze(
    c: &mut bankfep::client::PlatformClient,
    sub: &str,
    flag: &str,
    amt: &str,
    order: &str,
) -> String {
    call(
        c,
        "6007",
        &[
            ("FunctionFlag", flag),
            ("SubAcctNo", sub),
            ("TranAmt", amt),
            ("OrderNo", order),
        ],
    )
    .await
    .return_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_unfreeze_and_close() {
    let gw = start("freeze").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "F001", "冻结测试").await;
    let b = open_sub(&mut c, "F002", "收款方").await;
    fund(&mut core, "CORE-F1", &a, 50_000).await;
    assert_eq!(freeze(&mut c, &a, "1", "300.00", "FZ1").await, "000000");
    assert_eq!(
        balance(&mut c, &a).await,
        ("500.00".into(), "300.00".into(), "200.00".into())
    );
    assert_eq!(freeze(&mut c, &a, "1", "200.01", "FZ2").await, "E10003");
    assert_eq!(freeze(&mut c, &a, "2", "300.01", "FZ3").await, "E10009");
    assert_eq!(freeze(&mut c, &a, "1", "1.00", "FZ1").await, "E10008");
    // Frozen money cannot be transferred.
    let r = transfer(&mut c, (&a, "F001"), (&b, "F002"), "200.01", "0", "T1").await;
    assert_eq!(r.return_code(), "E10003");
    assert_eq!(freeze(&mut c, &a, "2", "300.00", "FZ4").await, "000000");
    assert_eq!(balance(&mut c, &a).await.2, "500.00");

    let close = |member: &'static str, name: &'static str| {
        vec![
            ("FunctionFlag", "2"),
            ("FundSummaryAcctNo", MASTER),
            ("TranNetMemberCode", member),
            ("MemberName", name),
            ("MemberGlobalType", "73"),
        ]
    };
    let mut f = close("F001", "冻结测试");
    f.push(("MemberGlobalId", "91110000000000F001"));
    assert_eq!(
        call(&mut c, "6248", &f).await.return_code(),
        "E10009",
        "money left"
    );
    let r = transfer(&mut c, (&a, "F001"), (&b, "F002"), "500.00", "0", "T2").await;
    assert_eq!(r.return_code(), "000000");
    assert_eq!(call(&mut c, "6248", &f).await.return_code(), "000000");
    assert_eq!(call(&mut c, "6248", &f).await.return_code(), "E10004");
    // A closed sub-account cannot receive a transfer.
    let r = transfer(&mut c, (&b, "F002"), (&a, "F001"), "1.00", "0", "T3").await;
    assert_eq!(r.return_code(), "E10004");
    // Its inbound credits go to suspense.
    let r = core
        .notify(&notice("CORE-F2", &a, 100, ""))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").suspense, 100);
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_rejections() {
    let gw = start("open").await;
    let mut c = gw.client().await;
    open_sub(&mut c, "O001", "张三").await;
    let base = |master: &'static str, name: &'static str, id: &'static str| {
        vec![
            ("FundSummaryAcctNo", master),
            ("TranNetMemberCode", "O001"),
            ("MemberName", name),
            ("MemberGlobalType", "73"),
            ("MemberGlobalId", id),
        ]
    };
    let r = call(&mut c, "6248", &base(MASTER, "李四", "91110000000000O001")).await;
    assert_eq!(r.return_code(), "E10002");
    let r = call(
        &mut c,
        "6248",
        &base("6222999999999999999", "张三", "91110000000000O001"),
    )
    .await;
    assert_eq!(r.return_code(), "E10001");
    let mut f = base(MASTER, "张三", "91110000000000O001");
    f[3] = ("MemberGlobalType", "99");
    assert_eq!(call(&mut c, "6248", &f).await.return_code(), "YQ9993");
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replay_returns_original_bytes() {
    let gw = start("idem").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "I001", "甲").await;
    let b = open_sub(&mut c, "I002", "乙").await;
    fund(&mut core, "CORE-I1", &a, 10_000).await;
    let fields = [
        ("OutSubAcctNo", a.as_str()),
        ("OutMemberCode", "I001"),
        ("InSubAcctNo", b.as_str()),
        ("InMemberCode", "I002"),
        ("TranAmt", "10.00"),
        ("OrderNo", "IDEM-1"),
    ];
    let first = c
        .call(ENT, "6034", "SER-IDEM-1", &fields)
        .await
        .expect("call");
    let again = c
        .call(ENT, "6034", "SER-IDEM-1", &fields)
        .await
        .expect("call");
    assert_eq!(first.return_code(), "000000");
    assert_eq!(first.body, again.body, "same body bytes");
    assert_eq!(first.header[..53], again.header[..53]);
    assert_eq!(first.header[67..], again.header[67..]);
    assert_eq!(balance(&mut c, &a).await.0, "90.00", "money moved once");
    // A business error is final too.
    let mut big = fields;
    big[4] = ("TranAmt", "1000.00");
    big[5] = ("OrderNo", "IDEM-2");
    let e1 = c.call(ENT, "6034", "SER-IDEM-2", &big).await.expect("call");
    assert_eq!(e1.return_code(), "E10003");
    fund(&mut core, "CORE-I2", &a, 1_000_000).await;
    let e2 = c.call(ENT, "6034", "SER-IDEM-2", &big).await.expect("call");
    assert_eq!(e2.return_code(), "E10003", "the first answer stands");
    // Same serial, different body: YQ9962, nothing moves.
    let mut other = fields;
    other[4] = ("TranAmt", "11.00");
    let r = c
        .call(ENT, "6034", "SER-IDEM-1", &other)
        .await
        .expect("call");
    assert_eq!(r.return_code(), "YQ9962");
    // Same serial, different code.
    let r = c
        .call(ENT, "6010", "SER-IDEM-1", &[("SubAcctNo", &a)])
        .await
        .expect("call");
    assert_eq!(r.return_code(), "YQ9962");
    // 6110 reports the original outcomes.
    let r = call(&mut c, "6110", &[("OrigSerialNo", "SER-IDEM-1")]).await;
    assert_eq!(r.field("TranStatus").as_deref(), Some("0"));
    assert_eq!(r.field("OrigTranCode").as_deref(), Some("6034"));
    let r = call(&mut c, "6110", &[("OrigSerialNo", "SER-IDEM-2")]).await;
    assert_eq!(r.field("TranStatus").as_deref(), Some("1"));
    assert!(r.field("FailMsg").unwrap_or_default().starts_with("E10003"));
    let r = call(&mut c, "6110", &[("OrigSerialNo", "NEVER-SENT")]).await;
    assert_eq!(r.return_code(), "YQ9996");
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_faults_get_their_codes_and_the_connection_survives() {
    let gw = start("header").await;
    let mut c = gw.client().await;
    let body = xml_request(BodyCharset::Gbk, &[("SubAcctNo", "9000000000000001")]);
    let frame = |ent: &str, tx: &str| {
        build_request(
            BodyCharset::Gbk,
            ent,
            tx,
            &serial("H"),
            "20261123",
            "100000",
            &body,
        )
        .expect("frame")
    };
    let r = c
        .call_raw(&frame("UNKNOWNENTERPRISE001", "6010"))
        .await
        .expect("call");
    assert_eq!(r.return_code(), "YQ9985");
    let r = c.call_raw(&frame(ENT, "9999")).await.expect("call");
    assert_eq!(r.return_code(), "YQ0000");
    // Field 3 charset 03: YQ9977, connection stays open.
    let mut f = frame(ENT, "6010");
    f[6..8].copy_from_slice(b"03");
    assert_eq!(c.call_raw(&f).await.expect("call").return_code(), "YQ9977");
    // Signature flag 1: not supported.
    let mut f = frame(ENT, "6010");
    f[197] = b'1';
    assert_eq!(c.call_raw(&f).await.expect("call").return_code(), "YQ9977");
    // Blank requester serial: YQ9993.
    let mut f = frame(ENT, "6010");
    f[67..87].fill(b' ');
    assert_eq!(c.call_raw(&f).await.expect("call").return_code(), "YQ9993");
    // Invalid GBK in the body, a DTD, a wrong root, a declaration naming another charset.
    for bad in [
        &b"<Result><SubAcctNo>\xff\xff</SubAcctNo></Result>"[..],
        b"<!DOCTYPE x [<!ENTITY e \"x\">]><Result><SubAcctNo>&e;</SubAcctNo></Result>",
        b"<Other><SubAcctNo>1</SubAcctNo></Other>",
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Result><SubAcctNo>1</SubAcctNo></Result>",
        b"<Result><SubAcctNo>1</SubAcctNo>",
        b"",
    ] {
        let mut f = frame(ENT, "6010")[..222].to_vec();
        f[30..40].copy_from_slice(format!("{:010}", bad.len()).as_bytes());
        f.extend_from_slice(bad);
        let r = c.call_raw(&f).await.expect("call");
        assert_eq!(
            r.return_code(),
            "YQ9977",
            "body {:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Still served on the same connection.
    let a = open_sub(&mut c, "H001", "头部测试").await;
    assert_eq!(balance(&mut c, &a).await.0, "0.00");
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_or_oversized_frames_are_answered_and_closed() {
    let gw = start("untrusted").await;
    // Body length above 1 MiB: YQ9977 with an empty body before any body byte is sent.
    let mut c = gw.client().await;
    let mut f = build_request(
        BodyCharset::Gbk,
        ENT,
        "6010",
        "BIG-1",
        "20261123",
        "100000",
        "",
    )
    .expect("frame");
    f[30..40].copy_from_slice(b"0001048577");
    c.stream_mut().write_all(&f).await.expect("write header");
    let r = c.read_response().await.expect("reply before body");
    assert_eq!(r.return_code(), "YQ9977");
    assert!(r.body.is_empty());
    assert_eq!(r.serial(), "BIG-1", "the header is echoed");
    assert!(c.read_response().await.is_err(), "connection closed");
    // Field 1 not A001.
    let mut c = gw.client().await;
    let mut f = build_request(
        BodyCharset::Gbk,
        ENT,
        "6010",
        "BAD-1",
        "20261123",
        "100000",
        "",
    )
    .expect("frame");
    f[..4].copy_from_slice(b"B001");
    let r = c.call_raw(&f).await.expect("reply");
    assert_eq!(r.return_code(), "YQ9977");
    assert!(c.read_response().await.is_err(), "connection closed");
    // Body length not digits.
    let mut c = gw.client().await;
    let mut f = build_request(
        BodyCharset::Gbk,
        ENT,
        "6010",
        "BAD-2",
        "20261123",
        "100000",
        "",
    )
    .expect("frame");
    f[30..40].copy_from_slice(b"00000000x1");
    assert_eq!(c.call_raw(&f).await.expect("reply").return_code(), "YQ9977");
    // The next connection is served.
    let mut c = gw.client().await;
    open_sub(&mut c, "U001", "下一个").await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_bodies_are_answered_in_utf8() {
    let gw = start("utf8").await;
    let mut c = gw.client().await;
    let body = xml_request(
        BodyCharset::Utf8,
        &[
            ("FundSummaryAcctNo", MASTER),
            ("TranNetMemberCode", "U8001"),
            ("MemberName", "张三丰"),
            ("MemberGlobalType", "1"),
            ("MemberGlobalId", "110101199001011234"),
        ],
    );
    let f = build_request(
        BodyCharset::Utf8,
        ENT,
        "6248",
        "UTF8-1",
        "20261123",
        "100000",
        &body,
    )
    .expect("frame");
    let r = c.call_raw(&f).await.expect("call");
    assert_eq!(r.return_code(), "000000");
    assert_eq!(&r.header[6..8], b"02");
    let sub = r.field("SubAcctNo").expect("SubAcctNo");
    let body = xml_request(BodyCharset::Utf8, &[("SubAcctNo", &sub)]);
    let f = build_request(
        BodyCharset::Utf8,
        ENT,
        "6010",
        "UTF8-2",
        "20261123",
        "100000",
        &body,
    )
    .expect("frame");
    let r = c.call_raw(&f).await.expect("call");
    assert!(std::str::from_utf8(&r.body)
        .expect("utf-8 body")
        .contains("<MemberName>张三丰</MemberName>"));
    assert!(r
        .body
        .starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    gw.running.shutdown().await;
}
