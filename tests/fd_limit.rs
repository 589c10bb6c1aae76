//! A low open-file limit does not leave clients unserved (issue 4 limits): under
//! `ulimit -n 256` the gateway lowers its per-listener connection cap to what the limit can
//! hold and says so; connections beyond it are closed at once instead of waiting in the
//! kernel's backlog, and a well-behaved client is still served.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use bankfep::client::PlatformClient;
use common::proc::free_port;
use common::*;
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_open_file_limit_lowers_the_cap_instead_of_stalling() {
    let dir = TempDir::new("fdlimit");
    let (pp, cp) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("gateway.log")).expect("log");
    let script = format!(
        "ulimit -n 256 && exec {} serve --data-dir {} --platform-addr 127.0.0.1:{pp} --core-addr 127.0.0.1:{cp} --citic-addr 127.0.0.1:0 --http-addr 127.0.0.1:0",
        env!("CARGO_BIN_EXE_bankfep"),
        dir.join("data").display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn");
    let mut ready = [0u8; 5];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut ready)
        .expect("ready");
    let text = std::fs::read_to_string(dir.join("gateway.log")).expect("log");
    assert!(
        text.contains("cap lowered"),
        "the gateway says it lowered the cap"
    );

    // (256 − 64 − 16) / 2 listeners = 88 connections per listener.
    let addr = format!("127.0.0.1:{pp}");
    let mut held = Vec::new();
    for _ in 0..87 {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    let mut client = PlatformClient::connect(&addr, None, 10_000)
        .await
        .expect("88th");
    open_sub(&mut client, "FD001", "甲").await;
    // The 89th is closed at once, not left waiting.
    let mut extra = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut b))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The well-behaved client is still served.
    open_sub(&mut client, "FD002", "乙").await;
    drop(held);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let st = child.wait().expect("wait");
    assert!(st.success());
}
