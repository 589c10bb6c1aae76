//! The TLS listeners of both links (PROTOCOL.md §1–§2 "or TLS"): with and without client
//! certificates, refusal of a client without one when a client CA is configured, and plain
//! TCP on a TLS port failing without harming the next TLS client.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bankfep::client::{build_request, xml_request, BodyCharset, CoreClient, PlatformClient};
use bankfep::config::{TlsClient, TlsListener};
use bankfep::devcerts::{write_dev_certs, DevCerts};
use bankfep::tls::client_config;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start_tls(name: &str, mutual: bool) -> (Gw, DevCerts) {
    let dir = temp_dir(name);
    let certs = write_dev_certs(&dir.join("certs")).expect("dev certs");
    let listener = |ca: bool| TlsListener {
        clients: Vec::new(),
        addr: "127.0.0.1:0".into(),
        cert: certs.server_cert.clone(),
        key: certs.server_key.clone(),
        client_ca: ca.then(|| certs.ca_cert.clone()),
    };
    let mut cfg = test_config(dir);
    cfg.platform_tls = Some(listener(mutual));
    let mut core = listener(mutual);
    if mutual {
        // A client CA on the core link needs the bank core's identity listed (issue 7).
        core.clients = vec![TlsClient {
            identity: bankfep::devcerts::CORE_CLIENT_CN.into(),
            enterprises: Vec::new(),
        }];
    }
    cfg.core_tls = Some(core);
    (start_with(cfg).await, certs)
}

fn platform_cfg(certs: &DevCerts, with_cert: bool) -> Arc<rustls::ClientConfig> {
    client_config(
        &certs.ca_cert,
        with_cert.then_some((certs.client_cert.as_path(), certs.client_key.as_path())),
    )
    .expect("client config")
}

fn core_cfg(certs: &DevCerts) -> Arc<rustls::ClientConfig> {
    client_config(
        &certs.ca_cert,
        Some((
            certs.core_client_cert.as_path(),
            certs.core_client_key.as_path(),
        )),
    )
    .expect("core client config")
}

async fn tls_platform(gw: &Gw, cfg: Arc<rustls::ClientConfig>) -> PlatformClient {
    let addr = gw
        .running
        .platform_tls_addr
        .expect("platform tls")
        .to_string();
    PlatformClient::connect(&addr, Some((cfg, "localhost")), 10_000)
        .await
        .expect("TLS connect")
}

/// Opens a sub-account, funds it over the core TLS link, reads the balance over TLS.
async fn open_fund_read(gw: &Gw, certs: &DevCerts, member: &str, bank_serial: &str) {
    let mut c = tls_platform(gw, platform_cfg(certs, true)).await;
    let sub = open_sub(&mut c, member, "加密会员").await;
    assert_eq!(
        balance(&mut c, &sub).await,
        ("0.00".into(), "0.00".into(), "0.00".into())
    );
    let core_addr = gw.running.core_tls_addr.expect("core tls").to_string();
    let mut core = CoreClient::connect(&core_addr, Some((core_cfg(certs), "localhost")), 10_000)
        .await
        .expect("core TLS connect");
    fund(&mut core, bank_serial, &sub, 12_345).await;
    // Repeated on the same TLS connection: accepted, no money moves.
    fund(&mut core, bank_serial, &sub, 12_345).await;
    assert_eq!(balance(&mut c, &sub).await.0, "123.45");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").mirror, 12_345);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_client_certificates() {
    let (gw, certs) = start_tls("tls-plain", false).await;
    open_fund_read(&gw, &certs, "TLS001", "TLS-CORE-1").await;
    // No client certificate is needed here.
    let mut c = tls_platform(&gw, platform_cfg(&certs, false)).await;
    open_sub(&mut c, "TLS002", "无证书").await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate() {
    let (gw, certs) = start_tls("tls-mutual", true).await;
    open_fund_read(&gw, &certs, "MTLS001", "MTLS-CORE-1").await;

    // Without a certificate: refused at the handshake or at the first read (TLS 1.3).
    let addr = gw.running.platform_tls_addr.expect("tls addr").to_string();
    let refused = match PlatformClient::connect(
        &addr,
        Some((platform_cfg(&certs, false), "localhost")),
        5_000,
    )
    .await
    {
        Err(_) => true,
        Ok(mut c) => c
            .call(
                ENT,
                "6010",
                &serial("NOCERT"),
                &[("SubAcctNo", "9000000000000001")],
            )
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate must not be served");

    // Still serving certified clients.
    let mut c = tls_platform(&gw, platform_cfg(&certs, true)).await;
    open_sub(&mut c, "MTLS002", "有证书").await;
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_on_the_tls_port_fails_and_the_server_survives() {
    let (gw, certs) = start_tls("tls-garbage", true).await;
    let addr = gw.running.platform_tls_addr.expect("tls addr").to_string();
    let body = xml_request(BodyCharset::Gbk, &[("SubAcctNo", "9000000000000001")]);
    let frame = build_request(
        BodyCharset::Gbk,
        ENT,
        "6010",
        "PLAIN-ON-TLS",
        "20261123",
        "100000",
        &body,
    )
    .expect("frame");
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
        let _ = s.write_all(&frame).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server closes the connection");
        assert!(!got.starts_with(b"A001"), "no A001 answer over plain TCP");
    }
    // The core TLS port too.
    let core_addr = gw.running.core_tls_addr.expect("core tls").to_string();
    let mut s = tokio::net::TcpStream::connect(&core_addr)
        .await
        .expect("tcp");
    let _ = s
        .write_all(
            &notice("PLAIN-CORE", MASTER, 100, "")
                .to_frame()
                .expect("frame"),
        )
        .await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closes the connection");
    assert!(!got.starts_with(b"00000100"));

    // The next TLS clients are served.
    open_fund_read(&gw, &certs, "PT001", "PT-CORE-1").await;
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").suspense, 0);
    gw.running.shutdown().await;
}
