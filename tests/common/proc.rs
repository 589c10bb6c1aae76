//! The real `bankfep` binary as a child process (`serve`, `rail-sim`), for durability, crash
//! and process tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use bankfep::client::PlatformClient;

use super::{CLOCK, RECEIPT_KEY_HEX};

/// A gateway process.
pub struct Proc {
    /// The child process.
    pub child: Child,
    /// Platform link address.
    pub platform: String,
    /// Core link address.
    pub core: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `bankfep rail-sim` child process; killed on drop.
pub struct RailSimProc {
    /// The child process.
    pub child: Child,
    /// Its listening address.
    pub addr: String,
    /// Its stdout after `ready`, line by line (balances and the settled count on SIGTERM).
    pub out: Receiver<String>,
}

impl Drop for RailSimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bankfep rail-sim` on a free port with `args` (e.g. `--latency-ms`,
/// `--maintenance`) and waits (≤ 30 s) for its `ready`. Its log (stderr) goes to `log`, or
/// nowhere when `None`.
pub fn spawn_rail_sim(args: &[&str], log: Option<&Path>) -> RailSimProc {
    let addr = format!("127.0.0.1:{}", free_port());
    let stderr = match log {
        Some(log) => Stdio::from(std::fs::File::create(log).expect("rail-sim log")),
        None => Stdio::null(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["rail-sim", "--addr", &addr])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn rail-sim");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let sim = RailSimProc { child, addr, out };
    let first = sim
        .out
        .recv_timeout(Duration::from_secs(30))
        .expect("rail-sim output");
    assert_eq!(first, "ready");
    sim
}

/// A port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Starts `bankfep serve` on `dir` on free ports, with the fixed clock and receipt key and
/// `extra` arguments (e.g. `--rail-addr`, `--config`), and waits (≤ 30 s) for `ready`.
/// Retries a few times in case a port picked was taken meanwhile. Stderr goes to
/// `dir/stderr-N.log`.
pub fn spawn_gateway(dir: &Path, extra: &[&str]) -> Proc {
    for attempt in 0..5 {
        let platform = format!("127.0.0.1:{}", free_port());
        let core = format!("127.0.0.1:{}", free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("stderr-{attempt}.log")))
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_bankfep"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--platform-addr", &platform, "--core-addr", &core])
            .args(["--citic-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--clock", CLOCK, "--receipt-key-hex", RECEIPT_KEY_HEX])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn bankfep");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        if !sent {
                            let _ = tx.send(false);
                        }
                        return;
                    }
                    Ok(_) if !sent && line.trim() == "ready" => {
                        sent = true;
                        let _ = tx.send(true);
                    }
                    Ok(_) => {}
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(true) => {
                return Proc {
                    child,
                    platform,
                    core,
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("bankfep did not become ready in {}", dir.display());
}

impl Proc {
    pub async fn client(&self) -> PlatformClient {
        PlatformClient::connect(&self.platform, None, 10_000)
            .await
            .expect("platform connect")
    }
    pub async fn core_client(&self) -> bankfep::client::CoreClient {
        bankfep::client::CoreClient::connect(&self.core, None, 10_000)
            .await
            .expect("core connect")
    }
    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(st.success());
    }
    /// Waits (≤ 20 s) for the process to exit; returns its status.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..400 {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not exit within 20 s of SIGTERM");
    }
    /// SIGTERM, expect exit 0.
    pub async fn stop(mut self) {
        self.sigterm();
        let st = self.wait_exit().await;
        assert!(st.success(), "exit status {st:?}");
    }
}
