//! The per-peer connection cap (issue 4): one peer address cannot take every connection.
//! With `connections_per_peer_max = 2`, a third connection from 127.0.0.1 is closed at once
//! while a connection from another address (127.0.0.2, also loopback) is still served.

mod common;

use std::time::Duration;

use bankfep::client::{
    build_request, read_platform_frame, xml_request, BodyCharset, PlatformClient,
};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_peer_cannot_take_every_connection() {
    let mut cfg = test_config(temp_dir("peercap"));
    cfg.limits.connections_per_peer_max = 2;
    let gw = start_with(cfg).await;
    let mut a = gw.client().await;
    let mut b = gw.client().await;
    open_sub(&mut a, "PC001", "甲").await;
    open_sub(&mut b, "PC002", "乙").await;

    // A third connection from the same address is closed without a byte.
    let mut third = tokio::net::TcpStream::connect(&gw.platform)
        .await
        .expect("tcp connect");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "the server closed the third connection");

    // Another peer address is served: a real request over a socket bound to 127.0.0.2.
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut stream = sock
        .connect(gw.platform.parse().expect("addr"))
        .await
        .expect("connect from 127.0.0.2");
    let body = xml_request(BodyCharset::Gbk, &[("SubAcctNo", "9000000000000019")]);
    let frame = build_request(
        BodyCharset::Gbk,
        ENT,
        "6010",
        &serial("PCX"),
        "20261123",
        "100000",
        &body,
    )
    .expect("frame");
    stream.write_all(&frame).await.expect("write");
    let r = read_platform_frame(&mut stream, 5_000)
        .await
        .expect("served");
    assert_eq!(r.return_code(), "000000");
    assert!(r.field("TotalBalance").is_some());
    // The first two still work, and a freed place is reused.
    open_sub(&mut a, "PC003", "丙").await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = PlatformClient::connect(&gw.platform, None, 5_000)
        .await
        .expect("reconnect");
    open_sub(&mut again, "PC004", "丁").await;
    gw.running.shutdown().await;
}
