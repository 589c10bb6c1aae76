//! Durability of the real binary: every acknowledged request survives `kill -9` (the writer
//! replies only after the batch committed with `synchronous=FULL`), a kill in the middle of
//! a stream of transfers leaves a balanced ledger that agrees with 6110, and SIGTERM drains
//! an in-flight request and exits 0.

mod common;

use std::path::Path;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bankfep::client::{build_request, xml_request, BodyCharset, PlatformClient};
use common::proc::*;
use common::*;
use tokio::io::AsyncWriteExt;

fn fmt_fen(f: i64) -> String {
    format!("{}.{:02}", f / 100, f % 100)
}

fn transfer_fields<'a>(
    a: &'a str,
    b: &'a str,
    amt: &'a str,
    order: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OutSubAcctNo", a),
        ("OutMemberCode", "D001"),
        ("InSubAcctNo", b),
        ("InMemberCode", "D002"),
        ("TranAmt", amt),
        ("OrderNo", order),
        ("Remark", "耐久"),
    ]
}

/// Checks the stored ledger directly (the process must be stopped): per master account,
/// mirror = Σ sub-accounts + suspense + fee + in transit, and nothing negative.
fn check_db(dir: &Path) -> (i64, i64) {
    let db = rusqlite::Connection::open(dir.join("bankfep.sqlite3")).expect("open db");
    let mut st = db
        .prepare("SELECT id, mirror, suspense, fee, in_transit FROM masters")
        .expect("prepare");
    let masters: Vec<(i64, i64, i64, i64, i64)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut mirror_total = 0;
    for (id, mirror, suspense, fee, transit) in masters {
        let (subs, min): (i64, i64) = db
            .query_row(
                "SELECT COALESCE(SUM(balance), 0), COALESCE(MIN(balance), 0) FROM subs WHERE master_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("subs");
        assert!(min >= 0);
        assert_eq!(
            mirror,
            subs + suspense + fee + transit,
            "总分平衡 of master {id}"
        );
        mirror_total += mirror;
    }
    let transfers: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM postings WHERE booking_type = '01'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    (mirror_total, transfers)
}

async fn status_of(c: &mut PlatformClient, serial: &str) -> Option<String> {
    let r = call(c, "6110", &[("OrigSerialNo", serial)]).await;
    match r.return_code().as_str() {
        "000000" => Some(r.field("TranStatus").expect("TranStatus")),
        "YQ9996" => None,
        other => panic!("6110 {serial}: {other}"),
    }
}

async fn setup(p: &Proc, funded: u64) -> (String, String) {
    let mut c = p.client().await;
    let mut core = p.core_client().await;
    let a = open_sub(&mut c, "D001", "耐久付款方").await;
    let b = open_sub(&mut c, "D002", "耐久收款方").await;
    fund(&mut core, "DUR-FUND-1", &a, funded).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transfers_survive_sigkill() {
    let dir = TempDir::new("dur-kill");
    let mut p = spawn_gateway(&dir, &[]);
    let funded: i64 = 1_000_000;
    let (a, b) = setup(&p, funded as u64).await;
    let mut c = p.client().await;
    let mut moved = 0i64;
    let mut first: Option<(Vec<u8>, String)> = None;
    for i in 0..200i64 {
        let amt = fmt_fen(100 + i);
        let order = format!("DUR-ORD-{i}");
        let serial = format!("DUR-SER-{i}");
        let r = c
            .call(ENT, "6034", &serial, &transfer_fields(&a, &b, &amt, &order))
            .await
            .expect("call");
        assert_eq!(r.return_code(), "000000", "{}", r.return_message());
        moved += 100 + i;
        if first.is_none() {
            first = Some((r.body.clone(), amt));
        }
    }
    drop(c);
    p.kill9();

    let p = spawn_gateway(&dir, &[]);
    let mut c = p.client().await;
    assert_eq!(balance(&mut c, &a).await.0, fmt_fen(funded - moved));
    assert_eq!(balance(&mut c, &b).await.0, fmt_fen(moved));
    for i in 0..200 {
        assert_eq!(
            status_of(&mut c, &format!("DUR-SER-{i}")).await.as_deref(),
            Some("0"),
            "serial {i}"
        );
    }
    // Replaying an acknowledged serial: same body bytes, nothing moves.
    let (body, amt) = first.expect("first");
    let r = c
        .call(
            ENT,
            "6034",
            "DUR-SER-0",
            &transfer_fields(&a, &b, &amt, "DUR-ORD-0"),
        )
        .await
        .expect("replay");
    assert_eq!(r.return_code(), "000000");
    assert_eq!(r.body, body, "original body bytes");
    assert_eq!(balance(&mut c, &b).await.0, fmt_fen(moved));
    drop(c);
    p.stop().await;
    let (mirror, transfers) = check_db(&dir);
    assert_eq!(mirror, funded);
    assert_eq!(transfers, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_leaves_a_balanced_ledger_that_agrees_with_6110() {
    const CLIENTS: usize = 4;
    let dir = TempDir::new("dur-mid");
    let mut p = spawn_gateway(&dir, &[]);
    let funded: i64 = 100_000_000; // 1,000,000.00: never short of money
    let (a, b) = setup(&p, funded as u64).await;
    // (serial, amount fen, acknowledged)
    let sent: Arc<Mutex<Vec<(String, i64, bool)>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..CLIENTS {
        let mut c = p.client().await;
        let sent = sent.clone();
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..5_000i64 {
                let amount = 1 + (i * 7 + t as i64 * 13) % 997;
                let serial = format!("MID-{t}-{i}");
                let idx = {
                    let mut s = sent.lock().expect("lock");
                    s.push((serial.clone(), amount, false));
                    s.len() - 1
                };
                let amt = fmt_fen(amount);
                let order = format!("MID-ORD-{t}-{i}");
                match c
                    .call(ENT, "6034", &serial, &transfer_fields(&a, &b, &amt, &order))
                    .await
                {
                    Ok(r) if r.return_code() == "000000" => {
                        sent.lock().expect("lock")[idx].2 = true;
                    }
                    Ok(r) => panic!("{serial}: unexpected {}", r.return_code()),
                    Err(_) => return, // the gateway died
                }
            }
        }));
    }
    // Kill once a good number were acknowledged (bounded wait).
    for _ in 0..3_000 {
        if sent.lock().expect("lock").iter().filter(|s| s.2).count() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.kill9();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("client stops after the kill")
            .expect("client task");
    }
    let sent = sent.lock().expect("lock").clone();
    let acked = sent.iter().filter(|s| s.2).count();
    assert!(acked >= 150, "only {acked} acknowledged before the kill");

    let p = spawn_gateway(&dir, &[]);
    let mut c = p.client().await;
    let mut done = 0i64;
    let mut done_count = 0i64;
    for (serial, amount, ack) in &sent {
        let st = status_of(&mut c, serial).await;
        if *ack {
            assert_eq!(st.as_deref(), Some("0"), "acknowledged {serial} is durable");
        } else {
            assert!(
                matches!(st.as_deref(), None | Some("0")),
                "unacknowledged {serial}: {st:?}"
            );
        }
        if st.as_deref() == Some("0") {
            done += amount;
            done_count += 1;
        }
    }
    assert_eq!(balance(&mut c, &a).await.0, fmt_fen(funded - done));
    assert_eq!(balance(&mut c, &b).await.0, fmt_fen(done));
    drop(c);
    p.stop().await;
    let (mirror, transfers) = check_db(&dir);
    assert_eq!(mirror, funded);
    assert_eq!(transfers, done_count, "exactly the transfers 6110 reports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_in_flight_request_and_exits_0() {
    let dir = TempDir::new("dur-term");
    let mut p = spawn_gateway(&dir, &[]);
    let (a, b) = setup(&p, 10_000).await;
    let mut c = p.client().await;
    let mut idle = p.client().await;
    let body = xml_request(
        BodyCharset::Gbk,
        &transfer_fields(&a, &b, "12.34", "TERM-ORD-1"),
    );
    let frame = build_request(
        BodyCharset::Gbk,
        ENT,
        "6034",
        "TERM-SER-1",
        "20261123",
        "100000",
        &body,
    )
    .expect("frame");
    // The first bytes of the request are in before SIGTERM; the rest arrive after it.
    c.stream_mut()
        .write_all(&frame[..100])
        .await
        .expect("write start");
    c.stream_mut().flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.stream_mut()
        .write_all(&frame[100..])
        .await
        .expect("write rest");
    let r = c.read_response().await.expect("in-flight request answered");
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.serial(), "TERM-SER-1");
    // An idle connection is closed by the drain.
    assert!(idle.read_response().await.is_err());
    let st = p.wait_exit().await;
    assert!(st.success(), "exit status {st:?}");
    drop(p);

    // It was durable.
    let p = spawn_gateway(&dir, &[]);
    let mut c = p.client().await;
    assert_eq!(balance(&mut c, &b).await.0, "12.34");
    assert_eq!(status_of(&mut c, "TERM-SER-1").await.as_deref(), Some("0"));
    drop(c);
    p.stop().await;
    check_db(&dir);
}
