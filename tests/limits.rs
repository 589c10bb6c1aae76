//! Resource limits: a full writer queue is refused with `YQ9971` (core `1003`) and books
//! nothing, a retry with the same serial is processed; idle connections, trickled headers
//! and connections beyond the cap are closed.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bankfep::client::PlatformClient;
use bankfep::store::sqlite::SqliteStore;
use common::hooked::{Gate, HookedStore};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn transfer_fields<'a>(a: &'a str, b: &'a str, order: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OutSubAcctNo", a),
        ("OutMemberCode", "Q001"),
        ("InSubAcctNo", b),
        ("InMemberCode", "Q002"),
        ("TranAmt", "1.00"),
        ("OrderNo", order),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_with_yq9971_and_a_retry_is_processed() {
    let dir = temp_dir("limits-queue");
    let gate = Arc::new(Gate::default());
    let store = HookedStore::new(SqliteStore::open(&dir).expect("store"), gate.clone());
    let mut cfg = test_config(dir.clone());
    cfg.queue_max = 2;
    cfg.batch_max = 1;
    let gw = start_with_store(cfg, Box::new(store)).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "Q001", "排队甲").await;
    let b = open_sub(&mut c, "Q002", "排队乙").await;
    fund(&mut core, "Q-FUND-1", &a, 100_000).await;

    gate.set(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fire = |i: usize, c: PlatformClient| {
        let tx = tx.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let mut c = c;
            let serial = format!("Q-SER-{i}");
            let order = format!("Q-ORD-{i}");
            let r = c
                .call(ENT, "6034", &serial, &transfer_fields(&a, &b, &order))
                .await
                .expect("call");
            let _ = tx.send((i, r));
        })
    };
    // The first request holds the writer at the gate.
    fire(0, gw.client().await);
    for _ in 0..200 {
        if gate.waiting.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        gate.waiting.load(Ordering::SeqCst),
        1,
        "writer waits at the gate"
    );
    // Five more on their own connections: the queue holds two.
    let mut conns = Vec::new();
    for _ in 1..=5 {
        conns.push(gw.client().await);
    }
    for (i, c) in conns.into_iter().enumerate() {
        fire(i + 1, c);
    }
    // Whatever is answered while the gate is closed is a refusal.
    let mut refused = Vec::new();
    while let Ok(Some((i, r))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
        assert_eq!(
            r.return_code(),
            "YQ9971",
            "request {i} answered while the writer is held"
        );
        assert!(r.body.is_empty());
        refused.push(i);
        if refused.len() == 5 {
            break;
        }
    }
    assert!(!refused.is_empty(), "a full queue refuses with YQ9971");
    // A notice is refused too (core 1003), serial echoed.
    let r = core
        .notify(&notice("Q-NOTICE-1", &b, 700, ""))
        .await
        .expect("notify");
    assert_eq!(
        (r.result.as_str(), r.bank_serial.as_str()),
        ("1003", "Q-NOTICE-1")
    );

    gate.set(false);
    let mut done = Vec::new();
    for _ in 0..(6 - refused.len()) {
        let (i, r) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("answered after release")
            .expect("answer");
        match r.return_code().as_str() {
            "000000" => done.push(i),
            "YQ9971" => refused.push(i),
            other => panic!("request {i}: {other}"),
        }
    }
    assert!(done.contains(&0));
    assert_eq!(done.len() + refused.len(), 6);
    let ok = done.len() as u64;
    assert_eq!(balance(&mut c, &b).await.0, format!("{ok}.00"));
    assert_eq!(balance(&mut c, &a).await.0, format!("{}.00", 1000 - ok));
    // Nothing was recorded for a refused serial.
    for i in &refused {
        let r = call(&mut c, "6110", &[("OrigSerialNo", &format!("Q-SER-{i}"))]).await;
        assert_eq!(
            r.return_code(),
            "YQ9996",
            "refused request {i} left no trace"
        );
    }
    // A retry with the same serial is processed normally.
    for i in &refused {
        let (serial, order) = (format!("Q-SER-{i}"), format!("Q-ORD-{i}"));
        let r = c
            .call(ENT, "6034", &serial, &transfer_fields(&a, &b, &order))
            .await
            .expect("retry");
        assert_eq!(r.return_code(), "000000", "retry of {serial}");
        let r = call(&mut c, "6110", &[("OrigSerialNo", &serial)]).await;
        assert_eq!(r.field("TranStatus").as_deref(), Some("0"));
    }
    assert_eq!(balance(&mut c, &b).await.0, "6.00");
    assert_eq!(balance(&mut c, &a).await.0, "994.00");
    // The refused notice, retried by the core, is booked once.
    fund(&mut core, "Q-NOTICE-1", &b, 700).await;
    assert_eq!(balance(&mut c, &b).await.0, "13.00");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").mirror, 100_700);
    gw.running.shutdown().await;
}

/// Reads until EOF or error, at most `secs`; `true` when the server closed the connection.
async fn closed_within(s: &mut tokio::net::TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let mut cfg = test_config(temp_dir("limits-idle"));
    cfg.limits.read_idle_ms = 300;
    let gw = start_with(cfg).await;
    // Idle from the start.
    let mut s = tokio::net::TcpStream::connect(&gw.platform)
        .await
        .expect("tcp");
    assert!(
        closed_within(&mut s, 2).await,
        "idle platform connection closed"
    );
    // Idle after a request.
    let mut c = gw.client().await;
    open_sub(&mut c, "IDLE01", "空闲").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(c.read_response().await.is_err(), "closed after idling");
    // The core link too.
    let mut s = tokio::net::TcpStream::connect(&gw.core).await.expect("tcp");
    assert!(
        closed_within(&mut s, 2).await,
        "idle core connection closed"
    );
    // New connections are served.
    let mut c = gw.client().await;
    open_sub(&mut c, "IDLE02", "再来").await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_header_is_cut_off() {
    let mut cfg = test_config(temp_dir("limits-trickle"));
    cfg.limits.frame_deadline_ms = 500;
    let gw = start_with(cfg).await;
    let frame = bankfep::client::build_request(
        bankfep::client::BodyCharset::Gbk,
        ENT,
        "6010",
        "TRICKLE-1",
        "20261123",
        "100000",
        "",
    )
    .expect("frame");
    let mut s = tokio::net::TcpStream::connect(&gw.platform)
        .await
        .expect("tcp");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 512];
    let mut cut_at = None;
    for (i, byte) in frame[..222].iter().enumerate() {
        if s.write_all(&[*byte]).await.is_err() {
            cut_at = Some(i);
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_at = Some(i);
                break;
            }
            Ok(Ok(n)) => panic!("unexpected {n} bytes before the header was complete"),
        }
    }
    let cut_at = cut_at.expect("connection cut off before the header was complete");
    assert!(cut_at < 221, "cut at byte {cut_at}");
    // The gateway still serves.
    let mut c = gw.client().await;
    open_sub(&mut c, "TRK001", "慢速").await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed() {
    let mut cfg = test_config(temp_dir("limits-cap"));
    cfg.limits.connections_max = 2;
    let gw = start_with(cfg).await;
    let mut c1 = gw.client().await;
    let mut c2 = gw.client().await;
    let a = open_sub(&mut c1, "CAP001", "一").await;
    let b = open_sub(&mut c2, "CAP002", "二").await;
    // A third one is closed at once.
    let mut s = tokio::net::TcpStream::connect(&gw.platform)
        .await
        .expect("tcp");
    assert!(closed_within(&mut s, 2).await, "third connection closed");
    // The first two are still served.
    assert_eq!(balance(&mut c1, &b).await.0, "0.00");
    assert_eq!(balance(&mut c2, &a).await.0, "0.00");
    // Once one leaves, a new one gets its place (bounded retries).
    drop(c2);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(mut c) = PlatformClient::connect(&gw.platform, None, 2_000).await else {
            continue;
        };
        if c.call(ENT, "6010", &serial("CAP"), &[("SubAcctNo", &a)])
            .await
            .is_ok_and(|r| r.return_code() == "000000")
        {
            served = true;
            break;
        }
    }
    assert!(served, "a freed place is reused");
    assert_eq!(balance(&mut c1, &a).await.0, "0.00");
    gw.running.shutdown().await;
}
