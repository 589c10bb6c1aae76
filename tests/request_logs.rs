//! The per-request log line (issue 11, item 5) of the real binary: JSON with
//! `--log-format json`, carrying link, peer, enterprise code, transaction code, serial,
//! return code and latency; none with `--no-log-requests`; and `bankfep --version`.

mod common;

use std::process::Command;

use common::proc::spawn_gateway;
use common::*;

fn stderr_of(dir: &std::path::Path) -> String {
    (0..5)
        .filter_map(|i| std::fs::read_to_string(dir.join(format!("stderr-{i}.log"))).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_request_with_its_connection() {
    let dir = TempDir::new("reqlog-json");
    let gw = spawn_gateway(&dir, &["--log-format", "json"]);
    let mut c = gw.client().await;
    let sub = open_sub(&mut c, "L001", "赵六").await;
    let mut core = gw.core_client().await;
    fund(&mut core, "REQLOG0001", &sub, 1_000).await;
    drop((c, core));
    gw.stop().await;
    let log = stderr_of(&dir);
    let line = log
        .lines()
        .find(|l| l.contains("\"message\":\"request\"") && l.contains("\"tx\":\"6248\""))
        .unwrap_or_else(|| panic!("no JSON request line for 6248 in:\n{log}"));
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    for want in [
        "\"link\":\"platform\"",
        "\"peer\":\"127.0.0.1:",
        "\"enterprise\":\"DEMOPLATFORM00000001\"",
        "\"code\":\"000000\"",
        "\"latency_ms\":",
        "\"serial\":\"T",
    ] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    let core_line = log
        .lines()
        .find(|l| l.contains("\"message\":\"request\"") && l.contains("\"tx\":\"6920\""))
        .unwrap_or_else(|| panic!("no JSON request line for 6920 in:\n{log}"));
    assert!(core_line.contains("\"code\":\"0000\""), "{core_line}");
    assert!(
        core_line.contains("\"serial\":\"REQLOG0001\""),
        "{core_line}"
    );
    // The payee account is masked, as every account in the log.
    assert!(!log.contains(&sub), "full sub-account number in the log");
    assert!(
        core_line.contains(&bankfep::mask::account(&sub)),
        "{core_line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_lines_when_turned_off() {
    let dir = TempDir::new("reqlog-off");
    let gw = spawn_gateway(&dir, &["--no-log-requests"]);
    let mut c = gw.client().await;
    open_sub(&mut c, "L002", "钱七").await;
    drop(c);
    gw.stop().await;
    let log = stderr_of(&dir);
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains("latency_ms"), "request line logged: {log}");
}

#[test]
fn version_is_printed() {
    let out = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .arg("--version")
        .output()
        .expect("run bankfep --version");
    assert!(out.status.success());
    // `bankfep 0.1.0 (commit abc1234, x86_64-unknown-linux-gnu, release)`: version, then
    // the build's commit, target and profile.
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let head = format!("bankfep {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&head), "{line}");
    assert!(
        line.ends_with("debug)") || line.ends_with("release)"),
        "{line}"
    );
}
