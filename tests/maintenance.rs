//! Maintenance windows (docs/protocol.md §3.1), over real sockets: a window that opens while
//! a withdrawal's chunks are in flight, a window across midnight from the configuration
//! file, and `RJ05` from a `bankfep rail-sim` process whose window the gateway's calendar did
//! not know. In each, every chunk is paid exactly once, after the window, and nothing is
//! refunded. Business time runs fast (`clock_speed`) so that minutes pass in seconds.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bankfep::clock::{Clock, RunningClock};
use bankfep::rail::calendar::WindowConfig;
use bankfep::rail::sim::{RailSim, SimFaults, SimOptions, SimWindow};
use bankfep::rail::wire::RailStatus;
use chrono::{NaiveDateTime, Timelike};
use common::bank::*;
use common::*;

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").expect("date-time")
}

/// A gateway on `rail` with a clock starting at `start` running `speed`× and fast query and
/// RJ05 timing.
async fn gateway(
    name: &str,
    rail: &str,
    start: &str,
    speed: u32,
    windows: Vec<WindowConfig>,
) -> Gw {
    let mut cfg = test_config(temp_dir(name));
    cfg.clock = Some(start.into());
    cfg.clock_speed = Some(speed);
    cfg.rail.addr = Some(rail.into());
    cfg.rail.first_query_ms = 50;
    cfg.rail.backoff_start_ms = 50;
    cfg.rail.backoff_max_ms = 400;
    cfg.rail.read_timeout_ms = 2_000;
    cfg.rail.rj05_retry_ms = 100;
    cfg.rail.rj05_backoff_max_ms = 400;
    cfg.rail.inflight_max = 2;
    cfg.rail.maintenance = windows;
    start_with(cfg).await
}

/// Waits (real time) until the gateway's business clock reaches `when`.
async fn until(gw: &Gw, when: NaiveDateTime) {
    while gw.running.clock.now() < when {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Chunks of the 6110 answer as (status letter) list.
fn chunk_states(r: &bankfep::client::Response) -> Vec<String> {
    r.rows().iter().map(|row| get(row, "ChunkStatus")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_opening_while_chunks_are_in_flight_holds_the_rest() {
    let sim = RailSim::start(
        "127.0.0.1:0",
        SimFaults {
            latency_ms: 100,
            ..SimFaults::default()
        },
    )
    .await
    .unwrap();
    // 60×: one business minute is one real second.
    let gw = gateway(
        "mw-inflight",
        &sim.addr().to_string(),
        "2026-11-24T09:50:00",
        60,
        vec![],
    )
    .await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "MW01", "张三").await;
    fund(&mut core, "CORE-MW1", &sub, 200_000_000).await;
    let verification = bind_with(&mut c, &sub, "MW01", "张三", BOUND, || sim.balance(BOUND)).await;
    // Announce (reload) a window opening at the next minute, once we are at second 40.
    loop {
        let s = gw.running.clock.now().second();
        if (40..50).contains(&s) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let now = gw.running.clock.now();
    let open = now.with_second(0).unwrap() + chrono::Duration::minutes(1);
    let close = open + chrono::Duration::minutes(2);
    let fmt = |x: NaiveDateTime| x.format("%Y-%m-%dT%H:%M").to_string();
    gw.running
        .reload_calendar(&[WindowConfig {
            bank: "102".into(),
            start: fmt(open),
            end: fmt(close),
        }])
        .expect("calendar");
    let paid_before = sim.paid_count();
    let s = serial("MW");
    let r = withdraw(
        &mut c,
        &s,
        &sub,
        "MW01",
        "张三",
        BOUND,
        "1000000.00",
        "1.00",
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("ChunkCount").as_deref(), Some("21"));
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    // Inside the window: what was sent before it is paid, the rest is held.
    until(&gw, open + chrono::Duration::seconds(15)).await;
    let in_window = sim.paid_count() - paid_before;
    assert!(
        in_window > 0,
        "chunks were in flight when the window opened"
    );
    assert!(
        in_window < 21,
        "the window held some chunks ({in_window} paid)"
    );
    let mid = status(&mut c, &s).await;
    assert_eq!(mid.field("TranStatus").as_deref(), Some("6"));
    let states = chunk_states(&mid);
    // Replies of the last chunks sent before the window may still be on their way.
    assert!(
        states.iter().filter(|x| *x == "S").count() <= in_window,
        "{states:?}"
    );
    assert!(states.iter().all(|x| x == "S" || x == "P"), "{states:?}");
    until(&gw, close - chrono::Duration::seconds(10)).await;
    assert_eq!(
        sim.paid_count() - paid_before,
        in_window,
        "nothing sent during the window"
    );
    let late = chunk_states(&status(&mut c, &s).await);
    assert_eq!(
        late.iter().filter(|x| *x == "P").count(),
        21 - in_window,
        "{late:?}"
    );
    // After the window: every chunk paid exactly once, nothing refunded.
    let done = wait_done(&mut c, &s).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    assert!(gw.running.clock.now() >= close);
    for n in 1..=21 {
        let (st, _, moved) = sim
            .instruction(&chunk_id(&seq, n))
            .expect("chunk at the rail");
        assert_eq!((st, moved), (RailStatus::Settled, 1), "chunk {n}");
    }
    assert_eq!(sim.paid_count() - paid_before, 21);
    assert_eq!(sim.balance(BOUND), verification + 100_000_000);
    assert_eq!(sim.balance(MASTER), -100_000_000);
    assert_eq!(balance(&mut c, &sub).await.0, "999999.00");
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(
        (m.in_transit, m.mirror),
        (0, 200_000_000 + sim.balance(MASTER))
    );
    gw.running.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_across_midnight_from_the_configuration() {
    let start = "2026-11-24T23:58:00";
    // The rail runs the same clock (started a moment earlier, so never behind the gateway).
    let rail_clock = Arc::new(RunningClock::new(t(start), 30));
    let files = TempDir::new("mw-midnight-files");
    let sim = RailSim::start_with(
        "127.0.0.1:0",
        SimFaults::default(),
        SimOptions {
            clock: rail_clock.clone(),
            files_dir: Some(files.path().to_path_buf()),
            payers: vec![MASTER.into()],
        },
        None,
    )
    .await
    .unwrap();
    let window = WindowConfig {
        bank: "102".into(),
        start: "2026-11-24T23:59".into(),
        end: "2026-11-25T00:01".into(),
    };
    let gw = gateway(
        "mw-midnight",
        &sim.addr().to_string(),
        start,
        30,
        vec![window],
    )
    .await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "MN01", "李四").await;
    fund(&mut core, "CORE-MN1", &sub, 20_000_000).await;
    let verification = bind_with(&mut c, &sub, "MN01", "李四", BOUND, || sim.balance(BOUND)).await;
    assert!(
        gw.running.clock.now() < t("2026-11-24T23:59:00"),
        "set-up too slow"
    );
    until(&gw, t("2026-11-24T23:59:05")).await;
    let paid_before = sim.paid_count();
    let s = serial("MN");
    let r = withdraw(&mut c, &s, &sub, "MN01", "李四", BOUND, "120000.00", "2.00").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    until(&gw, t("2026-11-25T00:00:30")).await;
    // Across midnight, still held: P chunks, withdrawal 6, nothing paid, nothing refunded.
    let mid = status(&mut c, &s).await;
    assert_eq!(mid.field("TranStatus").as_deref(), Some("6"));
    assert_eq!(chunk_states(&mid), ["P", "P", "P"]);
    assert_eq!(sim.paid_count(), paid_before);
    assert_eq!(balance(&mut c, &sub).await.0, "79998.00");
    // /metrics counts them as held (at least these three; other tests of this binary may
    // hold some too).
    let held: i64 = bankfep::metrics::render(None)
        .lines()
        .find_map(|l| l.strip_prefix("bankfep_rail_instructions{state=\"held\"} "))
        .and_then(|n| n.trim().parse().ok())
        .expect("held series");
    assert!(held >= 3, "held {held}");
    let done = wait_done(&mut c, &s).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    assert_eq!(chunk_states(&done), ["S", "S", "S"]);
    for n in 1..=3 {
        assert_eq!(
            sim.instruction(&chunk_id(&seq, n)),
            Some((RailStatus::Settled, 4_000_000, 1))
        );
    }
    assert_eq!(sim.paid_count(), paid_before + 3);
    assert_eq!(sim.balance(BOUND), verification + 12_000_000);
    // The rail decided them after the window: on the 25th, at 00:01 or later.
    let written = sim
        .write_day_files(
            files.path(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        )
        .unwrap();
    let text =
        std::fs::read_to_string(files.path().join(format!("RAIL_{MASTER}_20261125.txt"))).unwrap();
    assert!(!written.is_empty());
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("D|")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines {
        let time = l.rsplit('|').next().unwrap();
        assert!(time >= "000100", "{l}");
        assert!(l.contains("|7001|S||"), "{l}");
    }
    gw.running.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rj05_the_calendar_did_not_know_is_held_and_sent_again() {
    // The rail's clock: 23:58:00 at start, 30× (its window opens 2 s later, closes at 6 s).
    let rail_clock = Arc::new(RunningClock::new(t("2026-11-24T23:58:00"), 30));
    let files = TempDir::new("mw-rj05-files");
    let sim = RailSim::start_with(
        "127.0.0.1:0",
        SimFaults {
            maintenance: vec![SimWindow::parse("102:2359-0001").unwrap()],
            ..SimFaults::default()
        },
        SimOptions {
            clock: rail_clock.clone(),
            files_dir: Some(files.path().to_path_buf()),
            payers: vec![MASTER.into()],
        },
        None,
    )
    .await
    .unwrap();
    // The gateway's calendar is empty; its clock is the fixed test clock.
    let mut cfg = test_config(temp_dir("mw-rj05"));
    cfg.rail.addr = Some(sim.addr().to_string());
    cfg.rail.first_query_ms = 50;
    cfg.rail.backoff_start_ms = 50;
    cfg.rail.backoff_max_ms = 400;
    cfg.rail.rj05_retry_ms = 100;
    cfg.rail.rj05_backoff_max_ms = 400;
    let gw = start_with(cfg).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "RJ01", "王五").await;
    fund(&mut core, "CORE-RJ1", &sub, 20_000_000).await;
    let verification = bind_with(&mut c, &sub, "RJ01", "王五", BOUND, || sim.balance(BOUND)).await;
    assert!(
        rail_clock.now() < t("2026-11-24T23:59:00"),
        "set-up too slow"
    );
    while rail_clock.now() < t("2026-11-24T23:59:05") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let paid_before = sim.paid_count();
    let s = serial("RJ");
    let r = withdraw(&mut c, &s, &sub, "RJ01", "王五", BOUND, "120000.00", "2.00").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    // In the rail's window: answered RJ05, held, not refunded, nothing at the rail.
    while rail_clock.now() < t("2026-11-25T00:00:30") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mid = status(&mut c, &s).await;
    assert_eq!(mid.field("TranStatus").as_deref(), Some("6"));
    assert_eq!(chunk_states(&mid), ["P", "P", "P"]);
    assert_eq!(balance(&mut c, &sub).await.0, "79998.00");
    assert_eq!(sim.paid_count(), paid_before);
    assert_eq!(
        sim.instruction(&chunk_id(&seq, 1)),
        None,
        "RJ05 books nothing"
    );
    let done = wait_done(&mut c, &s).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    assert_eq!(chunk_states(&done), ["S", "S", "S"]);
    assert_eq!(balance(&mut c, &sub).await.0, "79998.00");
    for n in 1..=3 {
        assert_eq!(
            sim.instruction(&chunk_id(&seq, n)),
            Some((RailStatus::Settled, 4_000_000, 1))
        );
    }
    assert_eq!(sim.paid_count(), paid_before + 3);
    assert_eq!(sim.balance(BOUND), verification + 12_000_000);
    gw.running.shutdown().await;
    sim.shutdown().await;
    // Its day file of the 25th: the three chunks, decided at 00:01 or later; no RJ05 line.
    let text =
        std::fs::read_to_string(files.path().join(format!("RAIL_{MASTER}_20261125.txt"))).unwrap();
    let d: Vec<&str> = text.lines().filter(|l| l.starts_with("D|")).collect();
    assert_eq!(d.len(), 3, "{text}");
    assert!(
        d.iter()
            .all(|l| l.contains("|7001|S||") && l.rsplit('|').next().unwrap() >= "000100"),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("H|20261125|{MASTER}|3|12000000\n")),
        "{text}"
    );
    assert!(text.ends_with("T|3|3|12000000\n"), "{text}");
    assert!(!text.contains("RJ05"));
}

/// `bankfep rail-sim --maintenance` as a process: RJ05 inside its window (nothing booked: a
/// 7003 answers RJ04), other banks unaffected, the same id accepted after the window; its
/// balances and settled count on SIGTERM, and its day files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rail_sim_process_answers_rj05_in_its_window() {
    use bankfep::rail::client::{call, RailClientConfig};
    use bankfep::rail::wire::{RailRequest, TradeCode};
    let files = TempDir::new("mw-railsim-files");
    let files_arg = files.path().to_string_lossy().to_string();
    let spawned = Instant::now();
    // 23:59:30 at 30×: its window 23:59-00:01 closes 3 s after the start.
    let mut rail = common::proc::spawn_rail_sim(
        &[
            "--maintenance",
            "102:2359-0001",
            "--maintenance",
            "313:1000-1100",
            "--clock",
            "2026-11-24T23:59:30",
            "--clock-speed",
            "30",
            "--rail-files",
            &files_arg,
            "--payer",
            "6222000000000009999",
        ],
        None,
    );
    let (child, addr, out) = (&mut rail.child, rail.addr.clone(), &rail.out);
    let schemas = bankfep::codec::schema::Schemas::load_embedded().unwrap();
    let cfg = RailClientConfig::tcp(&addr);
    let req = |id: &str, trade: TradeCode, bank: &str| RailRequest {
        trade,
        instruction_id: id.into(),
        payer_acct: MASTER.into(),
        payee_acct: BOUND.into(),
        payee_name: "张三".into(),
        payee_bank: bank.into(),
        amount_fen: 12_345,
        memo: "提现".into(),
    };
    let r = call(&cfg, &schemas, &req("X1", TradeCode::Ibps, BOUND_BANK))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.reject_code.as_str()),
        (RailStatus::Failed, "RJ05")
    );
    let q = call(&cfg, &schemas, &RailRequest::query("X1"))
        .await
        .unwrap();
    assert_eq!(q.reject_code, "RJ04", "RJ05 booked nothing");
    let other = call(&cfg, &schemas, &req("X2", TradeCode::SameBank, ""))
        .await
        .unwrap();
    assert_eq!(other.status, RailStatus::Settled);
    assert!(
        spawned.elapsed() < Duration::from_millis(2_500),
        "test too slow"
    );
    tokio::time::sleep_until((spawned + Duration::from_millis(3_300)).into()).await;
    let r = call(&cfg, &schemas, &req("X1", TradeCode::Ibps, BOUND_BANK))
        .await
        .unwrap();
    assert_eq!(r.status, RailStatus::Settled);
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let mut lines = Vec::new();
    while let Ok(l) = out.recv_timeout(Duration::from_secs(10)) {
        lines.push(l);
    }
    let _ = child.wait();
    assert_eq!(
        lines,
        [
            format!("{BOUND} 24690"),
            format!("{MASTER} -24690"),
            "settled 2".to_string()
        ]
    );
    let day = |d: &str, acct: &str| {
        std::fs::read_to_string(files.path().join(format!("RAIL_{acct}_{d}.txt"))).unwrap()
    };
    let d24 = day("20261124", MASTER);
    let l: Vec<&str> = d24.lines().collect();
    assert_eq!(l.len(), 3, "{d24}");
    assert_eq!(l[0], format!("H|20261124|{MASTER}|1|12345"));
    assert!(
        l[1].starts_with(&format!("D|X2|7002|S||{BOUND}|12345|R")),
        "{d24}"
    );
    assert_eq!(l[2], "T|1|1|12345");
    let d25 = day("20261125", MASTER);
    assert!(
        d25.contains(&format!("D|X1|7001|S||{BOUND}|12345|R")),
        "{d25}"
    );
    // A payer without instructions still has its (empty) file.
    assert_eq!(
        day("20261125", "6222000000000009999"),
        "H|20261125|6222000000000009999|0|0\nT|0|0|0\n"
    );
}
