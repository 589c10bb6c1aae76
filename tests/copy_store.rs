//! `bankfep copy-store` and `bankfep migrate` (issue 8): an embedded store with real
//! activity (members, credits, a transfer with a fee, a suspense credit) is copied into an empty PostgreSQL schema by the real binary; a gateway on the
//! copy then answers exactly as the original did: balances, details, and the original bytes
//! for a replayed request. A second copy into the same database is refused.

mod common;

use std::process::Command;

use common::pg::PgDb;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_moves_to_postgres_and_serves_the_same() {
    let Some(db) = PgDb::new("copy") else {
        return;
    };
    let dir = TempDir::new("copy-src");
    // Activity on the embedded store.
    let mut cfg = test_config(dir.path().to_path_buf());
    cfg.data_dir = dir.path().to_path_buf();
    let gw = bankfep::server::start(cfg).await.expect("start");
    let platform = gw.platform_addr.expect("platform").to_string();
    let core_addr = gw.core_addr.expect("core").to_string();
    let mut c = bankfep::client::PlatformClient::connect(&platform, None, 10_000)
        .await
        .expect("connect");
    let mut core = bankfep::client::CoreClient::connect(&core_addr, None, 10_000)
        .await
        .expect("core");
    let a = open_sub(&mut c, "CP1", "搬家甲").await;
    let b = open_sub(&mut c, "CP2", "搬家乙").await;
    fund(&mut core, "COPY-1", &a, 500_000).await;
    let r = core
        .notify(&notice("COPY-2", MASTER, 1_234, "no sub-account named"))
        .await
        .expect("suspense");
    assert_eq!(r.result, "0000");
    let fields = [
        ("OutSubAcctNo", a.as_str()),
        ("OutMemberCode", "CP1"),
        ("InSubAcctNo", b.as_str()),
        ("InMemberCode", "CP2"),
        ("TranAmt", "1000.00"),
        ("TranFee", "1.50"),
        ("OrderNo", "COPY-ORD-1"),
    ];
    let original = c
        .call(ENT, "6034", "COPY-SER-1", &fields)
        .await
        .expect("6034");
    assert_eq!(original.return_code(), "000000");
    let details = |sub: String| {
        vec![
            ("SubAcctNo", sub),
            ("StartDate", "20260101".to_string()),
            ("EndDate", "20261231".to_string()),
            ("PageNum", "1".to_string()),
        ]
    };
    let d_before = call(
        &mut c,
        "6072",
        &details(a.clone())
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    let before = (balance(&mut c, &a).await, balance(&mut c, &b).await);
    drop(c);
    drop(core);
    gw.shutdown().await;

    // The copy, by the real binary, onto a freshly migrated schema.
    let bin = env!("CARGO_BIN_EXE_bankfep");
    let out = Command::new(bin)
        .args(["migrate", "--database-url", &db.url])
        .output()
        .expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin)
        .arg("copy-store")
        .arg("--from")
        .arg(dir.path())
        .args(["--to", &db.url])
        .output()
        .expect("copy-store");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verified"), "{stdout}");
    assert!(stdout.contains("subs"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("copy-store: entries"),
        "progress lines on stderr"
    );
    // Never into a database that already holds a ledger.
    let again = Command::new(bin)
        .arg("copy-store")
        .arg("--from")
        .arg(dir.path())
        .args(["--to", &db.url])
        .output()
        .expect("copy-store again");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));

    // A gateway on the copy answers as the original did.
    let mut cfg = test_config(temp_dir("copy-dst"));
    cfg.database_url = Some(db.url.clone());
    let gw = start_with(cfg).await;
    let mut c = gw.client().await;
    let after = (balance(&mut c, &a).await, balance(&mut c, &b).await);
    assert_eq!(before, after);
    let replay = c
        .call(ENT, "6034", "COPY-SER-1", &fields)
        .await
        .expect("replay");
    assert_eq!(
        replay.body, original.body,
        "the original bytes, from the copy"
    );
    let d_after = call(
        &mut c,
        "6072",
        &details(a.clone())
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(d_after.body, d_before.body, "6072 details");
    // New numbers continue after the copied ones (no reuse of a FrontSeqNo).
    let next = transfer(&mut c, (&b, "CP2"), (&a, "CP1"), "1.00", "0", "COPY-ORD-2").await;
    assert_eq!(next.return_code(), "000000");
    let old_seq = original.field("FrontSeqNo").expect("seq");
    let new_seq = next.field("FrontSeqNo").expect("seq");
    assert!(new_seq > old_seq, "{new_seq} after {old_seq}");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").suspense, 1_234);
    drop(c);
    gw.running.shutdown().await;
}
