//! The gateway on the PostgreSQL store (issue 8), over real sockets: the fixture replay byte
//! for byte, money conserved under concurrent clients and across a restart, and every
//! acknowledged transfer surviving SIGKILL of the real binary. Each test gets a schema of
//! its own; without a server the tests print `SKIP` unless `BANKFEP_REQUIRE_POSTGRES=1`.

mod common;

use std::path::PathBuf;

use bankfep::tools::replay::{replay, ReplayOptions};
use common::pg::PgDb;
use common::proc::spawn_gateway;
use common::*;

fn fmt_fen(f: i64) -> String {
    format!("{}.{:02}", f / 100, f % 100)
}

async fn start_pg(name: &str, db: &PgDb) -> Gw {
    let mut cfg = test_config(temp_dir(name));
    cfg.database_url = Some(db.url.clone());
    start_with(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_replay_byte_for_byte_on_postgres() {
    let Some(db) = PgDb::new("pg_fixtures") else {
        return;
    };
    let gw = start_pg("pg-fixtures", &db).await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = replay(&ReplayOptions {
        dir,
        platform_addr: gw.platform.clone(),
        core_addr: gw.core.clone(),
        bless: false,
        timeout_ms: 10_000,
    })
    .await
    .expect("replay runs");
    let failed: Vec<_> = out.iter().filter(|o| !o.ok).collect();
    for f in &failed {
        eprintln!("FAIL {}: {}", f.case, f.detail);
    }
    assert!(out.len() >= 100, "only {} cases", out.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed",
        failed.len(),
        out.len()
    );
    gw.assert_invariants().await;
    gw.running.shutdown().await;
}

/// Eight clients move money around four sub-accounts with fees; the wire balances plus the
/// fee account equal what was funded, before and after a restart on the same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_conserved_on_postgres_across_a_restart() {
    let Some(db) = PgDb::new("pg_conserve") else {
        return;
    };
    let gw = start_pg("pg-conserve", &db).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let mut subs = Vec::new();
    for i in 0..4 {
        let s = open_sub(&mut c, &format!("PGC{i}"), "并发会员").await;
        fund(&mut core, &format!("PGC-FUND-{i}"), &s, 1_000_000).await;
        subs.push((s, format!("PGC{i}")));
    }
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let platform = gw.platform.clone();
        let subs = subs.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = bankfep::client::PlatformClient::connect(&platform, None, 10_000)
                .await
                .expect("connect");
            let mut ok = 0u32;
            for k in 0..40usize {
                let from = &subs[(t + k) % 4];
                let to = &subs[(t + k + 1) % 4];
                let r = transfer(
                    &mut c,
                    (&from.0, &from.1),
                    (&to.0, &to.1),
                    "12.34",
                    "0.10",
                    &format!("PGC-ORD-{t}-{k}"),
                )
                .await;
                match r.return_code().as_str() {
                    "000000" => ok += 1,
                    "E10003" => {}
                    other => panic!("transfer answered {other}"),
                }
            }
            ok
        }));
    }
    let mut accepted = 0u32;
    for t in tasks {
        accepted += t.await.expect("task");
    }
    assert!(accepted > 0);
    let total = |bals: &[String]| -> i64 {
        bals.iter()
            .map(|b| {
                let (i, f) = b.split_once('.').expect("decimal");
                i.parse::<i64>().expect("yuan") * 100 + f.parse::<i64>().expect("fen")
            })
            .sum()
    };
    let mut before = Vec::new();
    for (s, _) in &subs {
        before.push(balance(&mut c, s).await.0);
    }
    // /readyz names this instance and the tenant it owns, with the lease's epoch (§5, §6).
    let http = gw.running.http_addr.expect("http listener");
    let mut s = tokio::net::TcpStream::connect(http).await.expect("http");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut page = String::new();
    s.read_to_string(&mut page).await.expect("read");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("owns DEMOPLATFORM00000001 epoch 1"), "{page}");
    let state = gw.assert_invariants().await;
    let fee = state.master_by_no(MASTER).expect("master").fee;
    assert_eq!(fee, i64::from(accepted) * 10);
    assert_eq!(total(&before) + fee, 4_000_000);
    drop(c);
    drop(core);
    gw.running.shutdown().await;

    // Restart on the same database (a new data folder: nothing is kept there): the same
    // balances come back from PostgreSQL.
    let mut cfg = test_config(temp_dir("pg-conserve-again"));
    cfg.database_url = Some(db.url.clone());
    let gw = start_with(cfg).await;
    let mut c = gw.client().await;
    let mut after = Vec::new();
    for (s, _) in &subs {
        after.push(balance(&mut c, s).await.0);
    }
    assert_eq!(before, after);
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").fee, fee);
    drop(c);
    gw.running.shutdown().await;
}

fn transfer_fields<'a>(
    a: &'a str,
    b: &'a str,
    amt: &'a str,
    order: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OutSubAcctNo", a),
        ("OutMemberCode", "PGD1"),
        ("InSubAcctNo", b),
        ("InMemberCode", "PGD2"),
        ("TranAmt", amt),
        ("TranFee", "0"),
        ("OrderNo", order),
    ]
}

/// The real binary on PostgreSQL, killed with SIGKILL after 150 acknowledged transfers:
/// after a restart every one of them is there, once, and a replay returns its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transfers_survive_sigkill_on_postgres() {
    let Some(db) = PgDb::new("pg_kill") else {
        return;
    };
    let dir = TempDir::new("pg-kill");
    let args = [
        "--database-url",
        db.url.as_str(),
        "--cluster-lease-ms",
        "1500",
    ];
    let mut p = spawn_gateway(&dir, &args);
    let mut c = p.client().await;
    let mut core = p.core_client().await;
    let a = open_sub(&mut c, "PGD1", "耐久付款方").await;
    let b = open_sub(&mut c, "PGD2", "耐久收款方").await;
    fund(&mut core, "PGD-FUND", &a, 1_000_000).await;
    let mut moved = 0i64;
    let mut first = None;
    for i in 0..150i64 {
        let amt = fmt_fen(100 + i);
        let r = c
            .call(
                ENT,
                "6034",
                &format!("PGD-SER-{i}"),
                &transfer_fields(&a, &b, &amt, &format!("PGD-ORD-{i}")),
            )
            .await
            .expect("call");
        assert_eq!(r.return_code(), "000000", "{}", r.return_message());
        moved += 100 + i;
        first.get_or_insert((r.body.clone(), amt));
    }
    drop(c);
    drop(core);
    p.kill9();

    let p = spawn_gateway(&dir, &args);
    let mut c = p.client().await;
    // The dead instance's lease runs out (1.5 s) and the new one takes the tenant; until
    // then requests are answered busy (§5), never wrongly.
    let started = std::time::Instant::now();
    loop {
        let r = call(&mut c, "6010", &[("SubAcctNo", a.as_str())]).await;
        match r.return_code().as_str() {
            "000000" => break,
            "YQ9971" if started.elapsed() < std::time::Duration::from_secs(15) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => panic!(
                "6010 after a restart: {other} after {:?}",
                started.elapsed()
            ),
        }
    }
    eprintln!(
        "tenant served again {:?} after the restart",
        started.elapsed()
    );
    assert_eq!(balance(&mut c, &a).await.0, fmt_fen(1_000_000 - moved));
    assert_eq!(balance(&mut c, &b).await.0, fmt_fen(moved));
    for i in 0..150 {
        let r = call(&mut c, "6110", &[("OrigSerialNo", &format!("PGD-SER-{i}"))]).await;
        assert_eq!(r.field("TranStatus").as_deref(), Some("0"), "serial {i}");
    }
    let (body, amt) = first.expect("first");
    let r = c
        .call(
            ENT,
            "6034",
            "PGD-SER-0",
            &transfer_fields(&a, &b, &amt, "PGD-ORD-0"),
        )
        .await
        .expect("replay");
    assert_eq!(r.body, body, "a replay returns the original bytes");
    assert_eq!(balance(&mut c, &b).await.0, fmt_fen(moved));
    drop(c);
    p.stop().await;
}
