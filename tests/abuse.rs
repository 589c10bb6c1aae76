//! Abusive peers (see `bankfep abuse`): 1,000 idle connections held against the real binary
//! cost a bounded amount of memory, are all kept (the default cap is 1,024 per link), and do
//! not stop a well-behaved client; a flood of malformed frames on 8 connections does not
//! stop a well-behaved client either, and every malformed frame is answered `YQ9977`
//! (closed when docs/protocol.md §1.1 says so).

mod common;

use std::process::Command;
use std::time::Duration;

use bankfep::client::{CoreClient, PlatformClient};
use bankfep::tools::abuse::{
    count_closed, open_fds, open_idle, start_flood, vm_rss_kib, IdleKind, Malformed,
};
use common::proc::spawn_gateway;
use common::*;

/// Idle connections the memory test holds.
const IDLE_CONNECTIONS: usize = 1_000;
/// Bound on the gateway's `VmRSS` growth for [`IDLE_CONNECTIONS`] idle connections, KiB:
/// 24 MiB, about 2.3× the measured 10,740 KiB of the debug binary (median of 3; the release
/// binary: 10,880 KiB; ≈ 11 KiB per connection; see docs/limits-figures.md).
const IDLE_RSS_GROWTH_MAX_KIB: u64 = 24 * 1024;
/// Open files this test process needs: the idle connections plus margin.
const FDS_NEEDED: u64 = 2 * IDLE_CONNECTIONS as u64 + 256;

/// The soft and hard `Max open files` of this process.
fn nofile_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let unlimited = u64::MAX;
    match nums.as_slice() {
        [soft, hard, ..] => (*soft, *hard),
        [soft] => (*soft, unlimited),
        _ => (unlimited, unlimited),
    }
}

/// Makes sure this process (and the gateway it spawns afterwards) may open [`FDS_NEEDED`]
/// files: raises the soft limit with `prlimit(1)` when it is lower and the hard limit
/// allows; fails with an explanation otherwise.
fn ensure_fd_limit() {
    let (soft, hard) = nofile_limits();
    if soft >= FDS_NEEDED {
        return;
    }
    let want = FDS_NEEDED.min(hard);
    let _ = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={want}:{hard}"))
        .status();
    let (soft, _) = nofile_limits();
    assert!(
        soft >= FDS_NEEDED,
        "this test holds {IDLE_CONNECTIONS} connections and needs {FDS_NEEDED} open files; \
         the soft limit is {soft} (hard {hard}): run `ulimit -n {FDS_NEEDED}` first"
    );
}

/// Polls (≤ 10 s) until the gateway has at least `want` open descriptors; returns the count.
async fn wait_for_fds(pid: u32, want: usize) -> usize {
    let mut n = 0;
    for _ in 0..200 {
        n = open_fds(pid).unwrap_or(0);
        if n >= want {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n
}

/// A well-behaved client's whole round: two sub-accounts, funding, a transfer with fee, and
/// the balances. Asserts every answer.
async fn well_behaved_round(c: &mut PlatformClient, core: &mut CoreClient, tag: &str) {
    let a = open_sub(c, &format!("{tag}A"), "甲公司").await;
    let b = open_sub(c, &format!("{tag}B"), "乙公司").await;
    fund(core, &format!("{tag}N1"), &a, 100_000).await;
    for i in 0..5 {
        let r = transfer(
            c,
            (&a, &format!("{tag}A")),
            (&b, &format!("{tag}B")),
            "10.00",
            "0.10",
            &format!("{tag}O{i}"),
        )
        .await;
        assert_eq!(
            r.return_code(),
            "000000",
            "transfer {i}: {}",
            r.return_message()
        );
        assert_eq!(r.field("FrontSeqNo").map(|s| s.len()), Some(16));
    }
    assert_eq!(balance(c, &a).await.0, "949.50");
    assert_eq!(balance(c, &b).await.0, "50.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_idle_connections_bounded_memory_all_kept_and_others_served() {
    ensure_fd_limit();
    let dir = TempDir::new("abuse-idle");
    // All idle connections come from 127.0.0.1: lift the per-peer cap (default 256) to the
    // listener cap so that this test measures memory, not the per-peer limit.
    let config = dir.join("bankfep.toml");
    std::fs::write(&config, "[limits]\nconnections_per_peer_max = 1024\n").expect("config");
    let gw = spawn_gateway(&dir, &["--config", config.to_str().expect("utf-8 path")]);
    let pid = gw.child.id();

    // Warm up (store, schemas, writer, allocator arenas) so the baseline is a serving gateway.
    let mut c = PlatformClient::connect(&gw.platform, None, 10_000)
        .await
        .expect("connect");
    let mut core = CoreClient::connect(&gw.core, None, 10_000)
        .await
        .expect("core connect");
    well_behaved_round(&mut c, &mut core, "W0").await;
    drop(c);
    drop(core);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_before = open_fds(pid).expect("gateway fds");
    let rss_before = vm_rss_kib(pid).expect("gateway VmRSS");

    let idle = open_idle(&gw.platform, IDLE_CONNECTIONS, IdleKind::Silent, 10_000).await;
    assert_eq!(
        idle.connect_failed, 0,
        "connect failures: {:?}",
        idle.first_error
    );
    assert_eq!(idle.streams.len(), IDLE_CONNECTIONS);
    // Every connection accepted by the gateway (one descriptor each), then let their tasks
    // reach their first read.
    let fds_held = wait_for_fds(pid, fds_before + IDLE_CONNECTIONS).await;
    assert!(
        fds_held >= fds_before + IDLE_CONNECTIONS,
        "gateway holds {fds_held} descriptors, expected ≥ {fds_before} + {IDLE_CONNECTIONS}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_held = vm_rss_kib(pid).expect("gateway VmRSS");

    // A well-behaved client on a 1,001st connection is served while they are held.
    let served = tokio::time::timeout(Duration::from_secs(60), async {
        let mut c = PlatformClient::connect(&gw.platform, None, 10_000)
            .await
            .expect("connect while held");
        let mut core = CoreClient::connect(&gw.core, None, 10_000)
            .await
            .expect("core connect while held");
        well_behaved_round(&mut c, &mut core, "W1").await;
    })
    .await;
    assert!(served.is_ok(), "well-behaved client not served within 60 s");

    // None of the idle connections was refused or closed by the server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        count_closed(&idle.streams),
        0,
        "server closed idle connections"
    );
    assert!(open_fds(pid).unwrap_or(0) >= fds_before + IDLE_CONNECTIONS);

    let growth = rss_held.saturating_sub(rss_before);
    eprintln!(
        "{IDLE_CONNECTIONS} idle connections: VmRSS {rss_before} -> {rss_held} KiB, growth {growth} KiB ({:.2} KiB per connection)",
        growth as f64 / IDLE_CONNECTIONS as f64
    );
    assert!(
        growth < IDLE_RSS_GROWTH_MAX_KIB,
        "{IDLE_CONNECTIONS} idle connections grew VmRSS by {growth} KiB, bound {IDLE_RSS_GROWTH_MAX_KIB} KiB"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_flood_on_8_connections_does_not_stop_a_well_behaved_client() {
    let gw = start("abuse-flood").await;
    // Cap of 120 s: the flood is stopped explicitly as soon as the client is done.
    let flood = start_flood(&gw.platform, 8, 120_000, 42);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let served = tokio::time::timeout(Duration::from_secs(60), async {
        let mut c = gw.client().await;
        let mut core = gw.core_client().await;
        for round in 0..3 {
            well_behaved_round(&mut c, &mut core, &format!("F{round}")).await;
        }
    })
    .await;
    let (stats, ran_ms) = flood.stop().await;
    eprintln!("flood ran {ran_ms} ms:\n{stats}");
    assert!(served.is_ok(), "well-behaved client not served within 60 s");

    // The flood really ran, every kind of it, and was answered as docs/protocol.md §1.1 says.
    for k in Malformed::ALL {
        assert!(
            stats.sent.get(k.name()).copied().unwrap_or(0) > 0,
            "no {} frame sent: {stats}",
            k.name()
        );
    }
    assert!(
        stats.replies.keys().all(|c| c == "YQ9977"),
        "replies other than YQ9977: {stats}"
    );
    assert!(stats.replies.get("YQ9977").copied().unwrap_or(0) > 0);
    assert_eq!(stats.left_open, 0, "connections not closed: {stats}");
    assert_eq!(stats.no_reply, 0, "frames never answered: {stats}");
    assert!(stats.server_closes > 0);
    assert_eq!(stats.connect_failures, 0, "{stats}");

    // Still serving after the flood, and the ledger is balanced.
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    well_behaved_round(&mut c, &mut core, "FZ").await;
    gw.assert_invariants().await;
}
