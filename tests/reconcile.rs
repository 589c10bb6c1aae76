//! Reconciliation with the rail's day files (docs/protocol.md §3.2): a real day of
//! withdrawals over a rail simulator with faults, its day files, and the `bankfep reconcile`
//! process against the gateway's store. Each kind of break is built: a dropped reply (the
//! gateway still holds the chunk as unknown: the file's outcome is booked, exactly once), a
//! rail that lost an instruction from its file (短款), an amount changed by hand in the file;
//! then a missing and a malformed file (exit 2), and a clean day (exit 0).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bankfep::clock::FixedClock;
use bankfep::rail::sim::{RailSim, SimFaults, SimOptions};
use bankfep::rail::wire::RailStatus;
use common::bank::*;
use common::*;

const EXPENSE: &str = "6222000000000009999";
const DATE: &str = "20261123";

/// Runs `bankfep reconcile` on `data` and `files`; returns (exit code, stdout).
fn reconcile(data: &Path, files: &Path, out: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["reconcile", "--date", DATE])
        .arg("--data-dir")
        .arg(data)
        .arg("--rail-files")
        .arg(files)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run reconcile");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), text)
}

/// Rewrites the D lines of a day file with `edit` and recomputes its header and trailer, as
/// a consistent hand-edited file.
fn edit_file(path: &Path, edit: impl Fn(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let head: Vec<&str> = lines[0].split('|').collect();
    let mut d: Vec<String> = lines[1..lines.len() - 1]
        .iter()
        .map(|s| s.to_string())
        .collect();
    edit(&mut d);
    let settled: Vec<i64> = d
        .iter()
        .filter(|l| l.split('|').nth(3) == Some("S"))
        .map(|l| l.split('|').nth(6).unwrap().parse::<i64>().unwrap())
        .collect();
    let total: i64 = settled.iter().sum();
    let mut out = format!("H|{}|{}|{}|{total}\n", head[1], head[2], d.len());
    for l in &d {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("T|{}|{}|{total}\n", d.len(), settled.len()));
    std::fs::write(path, out).unwrap();
}

/// The in-process rail simulator on the fixed clock, writing its day files for the master
/// account and the expense account into `files`.
async fn start_sim(files: &Path) -> RailSim {
    let clock = bankfep::clock::parse_fixed(CLOCK).unwrap();
    RailSim::start_with(
        "127.0.0.1:0",
        SimFaults::default(),
        SimOptions {
            clock: Arc::new(FixedClock(clock)),
            files_dir: Some(files.to_path_buf()),
            payers: vec![MASTER.into(), EXPENSE.into()],
        },
        None,
    )
    .await
    .unwrap()
}

fn breaks(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join(format!("breaks_{DATE}.csv")))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_each_kind_of_break() {
    let files = TempDir::new("recon-files");
    let out = TempDir::new("recon-out");
    let sim = start_sim(files.path()).await;
    let data: PathBuf = temp_dir("recon");
    let mut cfg = test_config(data.clone());
    cfg.rail.addr = Some(sim.addr().to_string());
    cfg.rail.read_timeout_ms = 1_000;
    // An unknown outcome is not queried during the test: it stays unknown.
    cfg.rail.first_query_ms = 600_000;
    cfg.rail.backoff_start_ms = 600_000;
    cfg.rail.backoff_max_ms = 600_000;
    let gw = start_with(cfg.clone()).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "RC01", "张三").await;
    fund(&mut core, "CORE-RC1", &sub, 50_000_000).await;
    bind_with(&mut c, &sub, "RC01", "张三", BOUND, || sim.balance(BOUND)).await;
    // A: 120,000.00 in three chunks, all fine (its chunk 1 amount is edited in the file).
    let sa = serial("RA");
    let r = withdraw(&mut c, &sa, &sub, "RC01", "张三", BOUND, "120000.00", "0").await;
    let seq_a = r.field("FrontSeqNo").unwrap();
    assert_eq!(
        wait_done(&mut c, &sa).await.field("TranStatus").as_deref(),
        Some("0")
    );
    // B: the rail settles it but loses it from its file (短款).
    sim.set_faults(SimFaults {
        omit_per_mille: 1000,
        ..SimFaults::default()
    });
    let sb = serial("RB");
    let r = withdraw(&mut c, &sb, &sub, "RC01", "张三", BOUND, "10000.00", "0").await;
    let seq_b = r.field("FrontSeqNo").unwrap();
    assert_eq!(
        wait_done(&mut c, &sb).await.field("TranStatus").as_deref(),
        Some("0")
    );
    // C: the rail settles it but the reply is dropped: the gateway holds it as unknown.
    sim.set_faults(SimFaults {
        drop_per_mille: 1000,
        ..SimFaults::default()
    });
    let sc = serial("RC");
    let r = withdraw(&mut c, &sc, &sub, "RC01", "张三", BOUND, "20000.00", "0").await;
    let seq_c = r.field("FrontSeqNo").unwrap();
    let id_c = chunk_id(&seq_c, 1);
    for _ in 0..200 {
        if sim.instruction(&id_c).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.instruction(&id_c),
        Some((RailStatus::Settled, 2_000_000, 1))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(
        status(&mut c, &sc).await.field("TranStatus").as_deref(),
        Some("6")
    );
    assert_eq!(balance(&mut c, &sub).await.0, "350000.00");
    let Gw { running, dir, .. } = gw;
    running.shutdown().await;
    // The rail's day files, then the hand edit: chunk 1 of A paid 0.01 more.
    let written = sim
        .write_day_files(
            files.path(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        )
        .unwrap();
    assert_eq!(written.len(), 2, "master and expense account");
    let master_file = files.path().join(format!("RAIL_{MASTER}_{DATE}.txt"));
    let pristine = std::fs::read_to_string(&master_file).unwrap();
    assert!(
        !pristine.contains(&chunk_id(&seq_b, 1)),
        "B lost by the rail"
    );
    let id_a1 = chunk_id(&seq_a, 1);
    // And a settlement the gateway never sent (长款).
    let foreign = format!("D|WFOREIGN000000001|7001|S||{BOUND}|12345|R000000000098|101500");
    edit_file(&master_file, |d| {
        for l in d.iter_mut() {
            if l.starts_with(&format!("D|{id_a1}|")) {
                *l = l.replace("|4000000|", "|4000001|");
            }
        }
        d.push(foreign.clone());
    });

    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    println!("{text}");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("booked_from_file     1"), "{text}");
    assert!(text.contains("breaks: 3"), "{text}");
    let b = breaks(out.path());
    assert_eq!(b.len(), 4, "{b:?}");
    assert!(
        b.contains(&format!(
            "long_长款,WFOREIGN000000001,{MASTER},,S,0,12345,,{BOUND}"
        )),
        "{b:?}"
    );
    assert_eq!(b[0], bankfep::reconcile::BREAKS_HEADER);
    assert!(
        b.contains(&format!(
            "short_短款,{},{MASTER},S,,1000000,0,{BOUND},",
            chunk_id(&seq_b, 1)
        )),
        "{b:?}"
    );
    assert!(
        b.contains(&format!(
            "amount_differs,{id_a1},{MASTER},S,S,4000000,4000001,{BOUND},{BOUND}"
        )),
        "{b:?}"
    );
    // Booked exactly once: a second run finds C matched and books nothing.
    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("booked_from_file"), "{text}");
    assert!(text.contains("breaks: 3"), "{text}");

    // The gateway, restarted, shows C settled, the sub-account untouched, C paid once.
    let gw = start_with(cfg.clone()).await;
    let mut c = gw.client().await;
    let done = status(&mut c, &sc).await;
    assert_eq!(done.field("TranStatus").as_deref(), Some("0"));
    assert_eq!(balance(&mut c, &sub).await.0, "350000.00");
    assert_eq!(
        sim.instruction(&id_c),
        Some((RailStatus::Settled, 2_000_000, 1))
    );
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).unwrap();
    assert_eq!(
        (m.in_transit, m.mirror),
        (0, 50_000_000 + sim.balance(MASTER))
    );
    let Gw {
        running, dir: dir2, ..
    } = gw;
    running.shutdown().await;
    std::mem::forget(dir2); // the same folder as `dir`

    // A missing file and a malformed one: exit 2, never "no breaks".
    let expense_file = files.path().join(format!("RAIL_{EXPENSE}_{DATE}.txt"));
    let kept = std::fs::read(&expense_file).unwrap();
    std::fs::remove_file(&expense_file).unwrap();
    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("missing day file"), "{text}");
    let mut truncated = kept.clone();
    truncated.truncate(kept.len() - 3);
    std::fs::write(&expense_file, &truncated).unwrap();
    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("malformed"), "{text}");
    std::fs::write(&expense_file, &kept).unwrap();

    // The rail found B and corrected A: no break remains.
    let b_line = sim_line(&sim, &seq_b);
    edit_file(&master_file, |d| {
        for l in d.iter_mut() {
            *l = l.replace("|4000001|", "|4000000|");
        }
        d.retain(|l| !l.starts_with("D|WFOREIGN"));
        d.push(b_line.clone());
    });
    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("breaks: 0"), "{text}");
    assert_eq!(breaks(out.path()).len(), 1);
    sim.shutdown().await;
}

/// The day-file line the rail would have written for B's chunk.
fn sim_line(sim: &RailSim, seq_b: &str) -> String {
    let id = chunk_id(seq_b, 1);
    let (st, amount, _) = sim.instruction(&id).unwrap();
    assert_eq!(st, RailStatus::Settled);
    format!("D|{id}|7001|S||{BOUND}|{amount}|R000000000099|100000")
}

/// An instruction created on D but decided by the rail after midnight is in D+1's file, not
/// D's (docs/protocol.md §3.2). Without D+1's file it is still 短款 (nothing says the rail
/// has it); with D+1's file in the folder it is `decided_later`, not a break, and D+1's run
/// matches it. A lost instruction stays 短款 whatever later files there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instruction_decided_after_midnight_is_no_short() {
    let files = TempDir::new("recon-midnight-files");
    let out = TempDir::new("recon-midnight-out");
    let sim = start_sim(files.path()).await;
    let data: PathBuf = temp_dir("recon-midnight");
    let mut cfg = test_config(data.clone());
    cfg.rail.addr = Some(sim.addr().to_string());
    let gw = start_with(cfg).await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let sub = open_sub(&mut c, "MN01", "张三").await;
    fund(&mut core, "CORE-MN1", &sub, 10_000_000).await;
    bind_with(&mut c, &sub, "MN01", "张三", BOUND, || sim.balance(BOUND)).await;
    let mut ids = Vec::new();
    for amt in ["1000.00", "2000.00"] {
        let s = serial("MN");
        let r = withdraw(&mut c, &s, &sub, "MN01", "张三", BOUND, amt, "0").await;
        ids.push(chunk_id(&r.field("FrontSeqNo").unwrap(), 1));
        assert_eq!(
            wait_done(&mut c, &s).await.field("TranStatus").as_deref(),
            Some("0")
        );
    }
    let Gw { running, dir, .. } = gw;
    running.shutdown().await;
    sim.write_day_files(
        files.path(),
        chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
    )
    .unwrap();
    // The rail decided the first after midnight: its line moves to D+1's file. The second
    // is lost by the rail altogether.
    let master_file = files.path().join(format!("RAIL_{MASTER}_{DATE}.txt"));
    let text = std::fs::read_to_string(&master_file).unwrap();
    let moved = text
        .lines()
        .find(|l| l.starts_with(&format!("D|{}|", ids[0])))
        .unwrap();
    let moved = format!("{}|001500", moved.rsplit_once('|').unwrap().0);
    edit_file(&master_file, |d| {
        d.retain(|l| !l.contains(&ids[0]) && !l.contains(&ids[1]))
    });
    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("breaks: 2"),
        "no later file yet: both short\n{text}"
    );

    let next = "20261124";
    let amount: i64 = moved.split('|').nth(6).unwrap().parse().unwrap();
    std::fs::write(
        files.path().join(format!("RAIL_{MASTER}_{next}.txt")),
        format!("H|{next}|{MASTER}|1|{amount}\n{moved}\nT|1|1|{amount}\n"),
    )
    .unwrap();
    std::fs::write(
        files.path().join(format!("RAIL_{EXPENSE}_{next}.txt")),
        format!("H|{next}|{EXPENSE}|0|0\nT|0|0|0\n"),
    )
    .unwrap();
    let (code, text) = reconcile(dir.path(), files.path(), out.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("decided_later        1"), "{text}");
    assert!(text.contains("breaks: 1"), "{text}");
    let b = breaks(out.path());
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(
        b[1].starts_with(&format!("short_短款,{},", ids[1])),
        "{b:?}"
    );

    // D+1's run finds the first by its id: matched, no break.
    let o = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["reconcile", "--date", next])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--rail-files")
        .arg(files.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("matched              1"), "{text}");
    sim.shutdown().await;
}
