//! Several instances on one PostgreSQL database (issue 8, docs/protocol.md §5):
//! - fencing at the store: a writer whose lease was taken cannot commit;
//! - real processes: two `bankfep serve` share two tenants, clients use either instance for
//!   either tenant (forwarding), the owner of a busy tenant is SIGKILLed mid-load and the
//!   other takes it over; afterwards every acknowledged request is booked exactly once, a
//!   replay to any instance returns the original bytes, and every master account balances;
//! - a paused instance (SIGSTOP past its lease) answers nothing wrong after SIGCONT and
//!   commits nothing for the tenant it lost.
//!
//! Each test has a schema of its own; without a server they print `SKIP` unless
//! `BANKFEP_REQUIRE_POSTGRES=1`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bankfep::client::PlatformClient;
use bankfep::ledger::decide::Writes;
use bankfep::store::postgres::PgStore;
use bankfep::store::Store;
use common::pg::PgDb;
use common::proc::{free_port, spawn_gateway, Proc};
use common::*;

const T1: (&str, &str) = ("DEMOPLATFORM00000001", "6222000000000000001");
const T2: (&str, &str) = ("SECONDPLATFORM000001", "6222000000000000002");

/// Runs `sql` against the test schema and returns the first column of each row as text.
fn sql(db: &PgDb, sql: &str) -> Vec<String> {
    let url = db.url.clone();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            c.simple_query(&sql)
                .await
                .expect("query")
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("").to_string())
                    }
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .expect("sql thread")
}

/// Starts `bankfep serve` on `dir` as one instance of a cluster: the configuration file
/// `cfg`, `db`'s schema, a lease of `lease_ms` and `cluster` as its cluster address.
fn spawn_instance(
    dir: &std::path::Path,
    cfg: &str,
    db: &PgDb,
    lease_ms: u64,
    cluster: &str,
) -> Proc {
    let lease_ms = lease_ms.to_string();
    spawn_gateway(
        dir,
        &[
            "--config",
            cfg,
            "--database-url",
            &db.url,
            "--cluster-lease-ms",
            &lease_ms,
            "--cluster-addr",
            cluster,
        ],
    )
}

/// Fencing, deterministically: a store that took tenant T1 at epoch 1 cannot commit for
/// it once another instance raised the epoch, and nothing of its batch remains.
#[test]
fn a_deposed_writer_cannot_commit() {
    let Some(db) = PgDb::new("fence") else {
        return;
    };
    let mut s = PgStore::open(&db.url).expect("open");
    s.provision_master(T1.0, T1.1).expect("provision");
    sql(
        &db,
        "INSERT INTO tenant_leases VALUES ('DEMOPLATFORM00000001', 'A', 1, now() + interval '1 hour')",
    );
    let batch = |s: &mut PgStore, order: &str, epoch: i64| {
        s.begin()?;
        s.savepoint()?;
        let w = Writes {
            order_no: Some(order.to_string()),
            ..Writes::default()
        };
        s.append(T1.0, None, &w)?;
        s.release()?;
        s.set_fence("A", &[(T1.0.to_string(), epoch)]);
        s.commit()
    };
    batch(&mut s, "HELD", 1).expect("the holder commits");
    // Instance B takes the tenant over (its lease expired): epoch 2.
    sql(
        &db,
        "UPDATE tenant_leases SET owner = 'B', epoch = 2 WHERE enterprise_code = 'DEMOPLATFORM00000001'",
    );
    let err = batch(&mut s, "DEPOSED", 1).expect_err("a deposed writer committed");
    assert!(err.to_string().contains("fenced"), "{err}");
    s.rollback().expect("rollback");
    assert_eq!(
        sql(&db, "SELECT order_no FROM orders ORDER BY order_no"),
        vec!["HELD".to_string()]
    );
}

/// A 6920 through `core`, repeated (as a core does) while the answer is `1003` busy.
async fn fund_retry(
    core: &mut bankfep::client::CoreClient,
    bank_serial: &str,
    payee: &str,
    fen: u64,
) {
    let started = Instant::now();
    loop {
        let r = core
            .notify(&notice(bank_serial, payee, fen, ""))
            .await
            .expect("notify");
        if r.result == "1003" && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(r.result, "0000", "{bank_serial}: {}", r.message);
        return;
    }
}

/// The server drops the store's connection (a restart, a failover): the batch in flight
/// fails, the next one reconnects and commits.
#[test]
fn the_store_reconnects_after_the_server_drops_it() {
    let Some(db) = PgDb::new("reconnect") else {
        return;
    };
    let mut s = PgStore::open(&db.url).expect("open");
    s.provision_master(T1.0, T1.1).expect("provision");
    let batch = |s: &mut PgStore, order: &str| {
        s.begin()?;
        s.savepoint()?;
        let w = Writes {
            order_no: Some(order.to_string()),
            ..Writes::default()
        };
        s.append(T1.0, None, &w)?;
        s.release()?;
        s.commit()
    };
    batch(&mut s, "BEFORE").expect("commit");
    sql(
        &db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{}' AND pid <> pg_backend_pid()",
            db.schema()
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    // The next batch finds the connection closed and reconnects (one attempt may still see
    // the old connection fail).
    if batch(&mut s, "AFTER").is_err() {
        s.rollback().ok();
        batch(&mut s, "AFTER").expect("commit after reconnecting");
    }
    assert_eq!(
        sql(&db, "SELECT order_no FROM orders ORDER BY order_no"),
        vec!["AFTER".to_string(), "BEFORE".to_string()]
    );
}

fn config_file(dir: &std::path::Path) -> String {
    let path = dir.join("two-tenants.toml");
    std::fs::write(
        &path,
        format!(
            "[[tenants]]\nenterprise_code = \"{}\"\nmaster_accounts = [\"{}\"]\n\n\
             [[tenants]]\nenterprise_code = \"{}\"\nmaster_accounts = [\"{}\"]\n",
            T1.0, T1.1, T2.0, T2.1
        ),
    )
    .expect("config");
    path.display().to_string()
}

/// Opens a member's sub-account, retrying with the same serial while the tenant is busy
/// (moving between instances, §5).
async fn open_on(c: &mut PlatformClient, t: (&str, &str), member: &str) -> String {
    let serial = serial("CO");
    let started = Instant::now();
    let r = loop {
        let r = c
            .call(
                t.0,
                "6248",
                &serial,
                &[
                    ("FundSummaryAcctNo", t.1),
                    ("TranNetMemberCode", member),
                    ("MemberName", "集群会员"),
                    ("MemberGlobalType", "73"),
                    ("MemberGlobalId", &format!("91110000{member:0>10}")[..18]),
                ],
            )
            .await
            .expect("6248");
        if r.return_code() != "YQ9971" || started.elapsed() > Duration::from_secs(10) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        r.return_code(),
        "000000",
        "open {member}: {}",
        r.return_message()
    );
    r.field("SubAcctNo").expect("SubAcctNo")
}

/// Calls until the answer is not busy (a tenant moving between instances, §5).
async fn call_until_served(
    p: &Proc,
    t: &str,
    tx: &str,
    serial: &str,
    fields: &[(&str, &str)],
    deadline: Duration,
) -> bankfep::client::Response {
    let started = Instant::now();
    loop {
        let mut c = p.client().await;
        let r = c.call(t, tx, serial, fields).await.expect("call");
        let code = r.return_code();
        if (code == "YQ9971" || code == "YQ9999") && started.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return r;
    }
}

fn owner_of(db: &PgDb, tenant: &str) -> String {
    sql(
        db,
        &format!(
            "SELECT i.cluster_addr FROM tenant_leases l JOIN instances i ON i.id = l.owner \
             WHERE l.enterprise_code = '{tenant}' AND l.expires_at > now()"
        ),
    )
    .into_iter()
    .next()
    .unwrap_or_default()
}

/// Master mirror = Σ liabilities for every master account, straight from the database.
fn assert_balanced(db: &PgDb) {
    let broken = sql(
        db,
        "SELECT m.acct_no FROM masters m LEFT JOIN (SELECT master_id, sum(balance) AS b FROM subs \
         GROUP BY master_id) s ON s.master_id = m.id \
         WHERE m.mirror <> coalesce(s.b, 0) + m.suspense + m.fee + m.in_transit",
    );
    assert!(
        broken.is_empty(),
        "master accounts out of balance: {broken:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_tenants_and_survive_the_death_of_one() {
    let Some(db) = PgDb::new("two") else {
        return;
    };
    let dir_a = TempDir::new("cluster-a");
    let dir_b = TempDir::new("cluster-b");
    let cfg = config_file(&dir_a);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let a = spawn_instance(&dir_a, &cfg, &db, 1500, &addr_a);
    let b = spawn_instance(&dir_b, &cfg, &db, 1500, &addr_b);
    // The tenants are shared out: one each, within a few lease rounds.
    let started = Instant::now();
    loop {
        let (o1, o2) = (owner_of(&db, T1.0), owner_of(&db, T2.0));
        if !o1.is_empty() && !o2.is_empty() && o1 != o2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "tenants not shared out: {o1} {o2}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each tenant through the instance that does NOT own it (forwarded) and the one that
    // does: open two members, fund them through either core link.
    let mut subs: HashMap<&str, Vec<String>> = HashMap::new();
    for (i, t) in [T1, T2].into_iter().enumerate() {
        let mut ca = a.client().await;
        let mut cb = b.client().await;
        let s1 = open_on(&mut ca, t, &format!("C{i}A")).await;
        let s2 = open_on(&mut cb, t, &format!("C{i}B")).await;
        let mut core_a = a.core_client().await;
        let mut core_b = b.core_client().await;
        fund_retry(&mut core_a, &format!("CL-FUND-{i}-1"), &s1, 1_000_000).await;
        fund_retry(&mut core_b, &format!("CL-FUND-{i}-2"), &s2, 1_000_000).await;
        // A repeated notice through the other instance books nothing.
        fund_retry(&mut core_b, &format!("CL-FUND-{i}-1"), &s1, 1_000_000).await;
        subs.insert(t.0, vec![s1, s2]);
    }
    // Concurrent transfers on both tenants through both instances.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..4usize {
        let platform = if w % 2 == 0 {
            a.platform.clone()
        } else {
            b.platform.clone()
        };
        let (t, members) = if w < 2 {
            (T1, ["C0A", "C0B"])
        } else {
            (T2, ["C1A", "C1B"])
        };
        let s = subs[t.0].clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..60usize {
                let Ok(mut c) = PlatformClient::connect(&platform, None, 5_000).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let serial = format!("CL{w}-{k}");
                let (from, to) = if k.is_multiple_of(2) { (0, 1) } else { (1, 0) };
                let fields = [
                    ("OutSubAcctNo", s[from].as_str()),
                    ("OutMemberCode", members[from]),
                    ("InSubAcctNo", s[to].as_str()),
                    ("InMemberCode", members[to]),
                    ("TranAmt", "1.00"),
                    ("TranFee", "0.01"),
                    ("OrderNo", serial.as_str()),
                ];
                let Ok(r) = c.call(t.0, "6034", &serial, &fields).await else {
                    continue;
                };
                if r.return_code() == "000000" {
                    acked
                        .lock()
                        .expect("acked")
                        .push((t.0, serial, r.body.clone()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // Mid-load, SIGKILL the instance owning T1.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a_owns_t1 = owner_of(&db, T1.0) == addr_a;
    let (mut dead, survivor) = if a_owns_t1 { (a, b) } else { (b, a) };
    let killed_at = Instant::now();
    dead.kill9();
    for t in tasks {
        t.await.expect("load task");
    }
    // The survivor takes T1 over: served again within the lease plus a few seconds.
    let s1 = subs[T1.0][0].clone();
    let r = call_until_served(
        &survivor,
        T1.0,
        "6010",
        &serial("CB"),
        &[("SubAcctNo", s1.as_str())],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(r.return_code(), "000000");
    eprintln!(
        "T1 served again {:?} after its owner was killed",
        killed_at.elapsed()
    );
    assert!(killed_at.elapsed() < Duration::from_secs(20));
    // Every acknowledged transfer is booked exactly once, and a replay to the survivor
    // returns the original bytes.
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() > 20,
        "only {} transfers acknowledged",
        acked.len()
    );
    for (t, serial, body) in &acked {
        let n = sql(
            &db,
            &format!("SELECT count(*) FROM orders WHERE enterprise_code = '{t}' AND order_no = '{serial}'"),
        );
        assert_eq!(n, vec!["1".to_string()], "{serial} booked {n:?} times");
        let k: usize = serial[2..3].parse().expect("worker");
        let (tt, members) = if k < 2 {
            (T1, ["C0A", "C0B"])
        } else {
            (T2, ["C1A", "C1B"])
        };
        let s = &subs[tt.0];
        let j: usize = serial[4..].parse().expect("k");
        let (from, to) = if j.is_multiple_of(2) { (0, 1) } else { (1, 0) };
        let fields = [
            ("OutSubAcctNo", s[from].as_str()),
            ("OutMemberCode", members[from]),
            ("InSubAcctNo", s[to].as_str()),
            ("InMemberCode", members[to]),
            ("TranAmt", "1.00"),
            ("TranFee", "0.01"),
            ("OrderNo", serial.as_str()),
        ];
        // One call, no retry: the survivor serves both tenants by now, and it must find the
        // original answer at once (a replay refused YQ9999 first, then found after a failed
        // commit, would mean its key filter lacked the keys the dead owner recorded).
        let r = survivor
            .client()
            .await
            .call(t, "6034", serial, &fields)
            .await
            .expect("call");
        assert_eq!(
            r.return_code(),
            "000000",
            "replay of {serial} answered at once"
        );
        assert_eq!(&r.body, body, "replay of {serial} through the survivor");
    }
    // Each bank serial booked once; every master account balances; fees match.
    assert_eq!(
        sql(&db, "SELECT count(*) FROM notices"),
        vec!["4".to_string()]
    );
    assert_balanced(&db);
    let fees = sql(&db, "SELECT sum(fee) FROM masters");
    let booked = sql(&db, "SELECT count(*) FROM orders");
    assert_eq!(
        fees[0].parse::<i64>().expect("fee"),
        booked[0].parse::<i64>().expect("orders"),
        "one fen of fee per booked transfer"
    );
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_commits_nothing_for_the_tenant_it_lost() {
    let Some(db) = PgDb::new("paused") else {
        return;
    };
    let dir_a = TempDir::new("paused-a");
    let dir_b = TempDir::new("paused-b");
    let cfg = config_file(&dir_a);
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let a = spawn_instance(&dir_a, &cfg, &db, 1000, &addr_a);
    let mut ca = a.client().await;
    let s1 = open_on(&mut ca, T1, "P1").await;
    let s2 = open_on(&mut ca, T1, "P2").await;
    let mut core = a.core_client().await;
    fund_retry(&mut core, "PAUSE-FUND", &s1, 100_000).await;
    drop(core);
    let b = spawn_instance(&dir_b, &cfg, &db, 1000, &addr_b);
    // Freeze A past its lease: B takes every tenant (A counts as dead).
    let pid = a.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("SIGSTOP");
    let started = Instant::now();
    while owner_of(&db, T1.0) != addr_b {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "B never took T1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("SIGCONT");
    // At once, a transfer through A on its old connection: A either still thinks it owns
    // T1 (its commit is fenced: YQ9999) or has noticed (forwards to B, or busy).
    let fields = [
        ("OutSubAcctNo", s1.as_str()),
        ("OutMemberCode", "P1"),
        ("InSubAcctNo", s2.as_str()),
        ("InMemberCode", "P2"),
        ("TranAmt", "10.00"),
        ("TranFee", "0"),
        ("OrderNo", "PAUSED-1"),
    ];
    let r = ca
        .call(T1.0, "6034", "PAUSED-1", &fields)
        .await
        .expect("call");
    let code = r.return_code();
    assert!(
        ["000000", "YQ9999", "YQ9971"].contains(&code.as_str()),
        "a paused instance answered {code}"
    );
    // The truth, from the new owner: booked once if and only if it answered 000000.
    let st = call_until_served(
        &b,
        T1.0,
        "6110",
        &serial("PS"),
        &[("OrigSerialNo", "PAUSED-1")],
        Duration::from_secs(10),
    )
    .await;
    let booked = sql(
        &db,
        "SELECT count(*) FROM orders WHERE order_no = 'PAUSED-1'",
    );
    match code.as_str() {
        "000000" => assert_eq!(booked, vec!["1".to_string()]),
        "YQ9971" => assert_eq!(booked, vec!["0".to_string()]),
        _ => assert!(
            (st.return_code() == "YQ9996") == (booked == vec!["0".to_string()]),
            "6110 {} disagrees with the database {booked:?}",
            st.return_code()
        ),
    }
    let r = call_until_served(
        &b,
        T1.0,
        "6010",
        &serial("PB"),
        &[("SubAcctNo", s1.as_str())],
        Duration::from_secs(10),
    )
    .await;
    let expected = if booked == vec!["1".to_string()] {
        "990.00"
    } else {
        "1000.00"
    };
    assert_eq!(r.field("TotalBalance").as_deref(), Some(expected));
    assert_balanced(&db);
    drop(ca);
    a.stop().await;
    b.stop().await;
}
