//! Mutual TLS bound to enterprise codes (issue 4): a client certificate may use only the
//! enterprise codes the configuration maps it to (`YQ9985` otherwise, nothing changes); an
//! enterprise never sees or moves another's sub-accounts (`E10001`), on TCP as on TLS; the
//! core link admits only the listed bank-core certificate.

mod common;

use std::sync::Arc;

use bankfep::client::{CoreClient, PlatformClient};
use bankfep::config::{Tenant, TlsClient, TlsListener};
use bankfep::devcerts::{write_dev_certs, DevCerts, OTHER_CLIENT_CN};
use bankfep::tls::client_config;
use common::*;

const OTHER_MASTER: &str = "6222000000000000002";

fn listener(certs: &DevCerts, clients: Vec<TlsClient>) -> TlsListener {
    TlsListener {
        addr: "127.0.0.1:0".into(),
        cert: certs.server_cert.clone(),
        key: certs.server_key.clone(),
        client_ca: Some(certs.ca_cert.clone()),
        clients,
    }
}

async fn start_mtls(name: &str, platform_clients: Vec<TlsClient>) -> (Gw, DevCerts) {
    let dir = temp_dir(name);
    let certs = write_dev_certs(&dir.join("certs")).expect("dev certs");
    // The certificates live in the data directory, removed with the gateway.
    let mut cfg = test_config(dir);
    cfg.tenants.push(Tenant {
        enterprise_code: OTHER_CLIENT_CN.into(),
        master_accounts: vec![OTHER_MASTER.into()],
        citic_users: Vec::new(),
    });
    cfg.platform_tls = Some(listener(&certs, platform_clients));
    cfg.core_tls = Some(listener(
        &certs,
        vec![TlsClient {
            identity: "BANKCORE".into(),
            enterprises: Vec::new(),
        }],
    ));
    (start_with(cfg).await, certs)
}

fn tls_for(
    certs: &DevCerts,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (Arc<rustls::ClientConfig>, &'static str) {
    (
        client_config(&certs.ca_cert, Some((cert, key))).expect("client config"),
        "localhost",
    )
}

async fn platform(gw: &Gw, tls: (Arc<rustls::ClientConfig>, &'static str)) -> PlatformClient {
    let addr = gw.running.platform_tls_addr.expect("tls addr").to_string();
    PlatformClient::connect(&addr, Some(tls), 10_000)
        .await
        .expect("tls connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_may_use_only_their_enterprise_codes() {
    let (gw, certs) = start_mtls(
        "mtls-map",
        vec![
            TlsClient {
                identity: "DEMOPLATFORM00000001".into(),
                enterprises: vec![ENT.into()],
            },
            TlsClient {
                identity: OTHER_CLIENT_CN.into(),
                enterprises: vec![OTHER_CLIENT_CN.into()],
            },
        ],
    )
    .await;
    let mut demo = platform(&gw, tls_for(&certs, &certs.client_cert, &certs.client_key)).await;
    let mut other = platform(
        &gw,
        tls_for(&certs, &certs.other_client_cert, &certs.other_client_key),
    )
    .await;
    let sub = open_sub(&mut demo, "MT001", "甲方").await;

    // The other platform's certificate using the demo enterprise code: YQ9985, nothing opened.
    let r = other
        .call(
            ENT,
            "6248",
            &serial("MTX"),
            &[
                ("FundSummaryAcctNo", MASTER),
                ("TranNetMemberCode", "MT002"),
                ("MemberName", "冒用"),
                ("MemberGlobalType", "73"),
                ("MemberGlobalId", "911100000000MT0002"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "YQ9985");
    assert!(r.body.is_empty());
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert!(
        state.sub_by_member(m.id, "MT002").is_none(),
        "nothing was opened"
    );

    // Under its own code it works, but cannot see the demo platform's sub-account.
    let r = other
        .call(
            OTHER_CLIENT_CN,
            "6010",
            &serial("MTO"),
            &[("SubAcctNo", &sub)],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "E10001");
    let r = other
        .call(
            OTHER_CLIENT_CN,
            "6248",
            &serial("MTO"),
            &[
                ("FundSummaryAcctNo", OTHER_MASTER),
                ("TranNetMemberCode", "OT001"),
                ("MemberName", "乙方"),
                ("MemberGlobalType", "73"),
                ("MemberGlobalId", "911100000000OT0001"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "000000");
    let other_sub = r.field("SubAcctNo").expect("SubAcctNo");
    // Nor open under the demo platform's master account.
    let r = other
        .call(
            OTHER_CLIENT_CN,
            "6248",
            &serial("MTO"),
            &[
                ("FundSummaryAcctNo", MASTER),
                ("TranNetMemberCode", "OT002"),
                ("MemberName", "乙方"),
                ("MemberGlobalType", "73"),
                ("MemberGlobalId", "911100000000OT0002"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "E10001");

    // On plain TCP too, an enterprise cannot move another's money.
    let mut core = gw.core_client().await;
    fund(&mut core, "MT-CORE-1", &sub, 10_000).await;
    let mut tcp = gw.client().await;
    let r = tcp
        .call(
            OTHER_CLIENT_CN,
            "6034",
            &serial("MTT"),
            &[
                ("OutSubAcctNo", &sub),
                ("OutMemberCode", "MT001"),
                ("InSubAcctNo", &other_sub),
                ("InMemberCode", "OT001"),
                ("TranAmt", "10.00"),
                ("OrderNo", "MT-ORDER-1"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "E10001");
    assert_eq!(balance(&mut demo, &sub).await.0, "100.00");
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_map_a_certificate_may_use_only_its_own_cn() {
    let (gw, certs) = start_mtls("mtls-cn", Vec::new()).await;
    let mut demo = platform(&gw, tls_for(&certs, &certs.client_cert, &certs.client_key)).await;
    open_sub(&mut demo, "CN001", "丙方").await;
    let mut other = platform(
        &gw,
        tls_for(&certs, &certs.other_client_cert, &certs.other_client_key),
    )
    .await;
    let r = other
        .call(
            ENT,
            "6010",
            &serial("CNX"),
            &[("SubAcctNo", "9000000000000019")],
        )
        .await
        .expect("call");
    assert_eq!(r.return_code(), "YQ9985");
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_link_admits_only_the_bank_core_certificate() {
    let (gw, certs) = start_mtls("mtls-core", Vec::new()).await;
    let addr = gw.running.core_tls_addr.expect("core tls").to_string();
    let mut c = gw.client().await;
    let sub = open_sub(&mut c, "CR001", "丁方").await;
    // A platform certificate on the core link: disconnected without a reply, nothing booked.
    let mut wrong = CoreClient::connect(
        &addr,
        Some(tls_for(&certs, &certs.client_cert, &certs.client_key)),
        5_000,
    )
    .await
    .expect("handshake completes");
    let res = wrong.notify(&notice("CR-CORE-1", &sub, 500, "")).await;
    assert!(res.is_err(), "no reply for a non-core certificate");
    assert_eq!(balance(&mut c, &sub).await.0, "0.00");
    // The bank core's certificate is served.
    let mut core = CoreClient::connect(
        &addr,
        Some(tls_for(
            &certs,
            &certs.core_client_cert,
            &certs.core_client_key,
        )),
        5_000,
    )
    .await
    .expect("core connect");
    let r = core
        .notify(&notice("CR-CORE-2", &sub, 500, ""))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000");
    assert_eq!(balance(&mut c, &sub).await.0, "5.00");
    gw.running.shutdown().await;
}
