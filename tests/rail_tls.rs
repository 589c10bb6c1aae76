//! The rail client verifies the rail's server certificate (issue 4): against a TLS rail
//! signed by the configured CA, verification and withdrawal chunks settle; against a rail
//! whose certificate another CA signed, nothing is delivered and nothing is paid, and the
//! instruction stays unresolved (it will be retried, never re-issued under a new id).

mod common;

use std::time::Duration;

use bankfep::devcerts::write_dev_certs;
use bankfep::rail::sim::{RailSim, SimFaults};
use common::*;

const BOUND: &str = "6217000000000000042";

async fn gateway_with_rail(name: &str, sim: &RailSim, ca: &std::path::Path) -> Gw {
    let mut cfg = test_config(temp_dir(name));
    cfg.rail.addr = Some(sim.addr().to_string());
    cfg.rail.tls_ca = Some(ca.to_path_buf());
    cfg.rail.tls_server_name = "localhost".into();
    cfg.rail.first_query_ms = 50;
    cfg.rail.backoff_start_ms = 50;
    cfg.rail.backoff_max_ms = 200;
    cfg.rail.read_timeout_ms = 1_000;
    cfg.rail.connect_timeout_ms = 1_000;
    start_with(cfg).await
}

async fn start_bind(gw: &Gw, member: &str) -> String {
    let mut c = gw.client().await;
    let sub = open_sub(&mut c, member, "戊方").await;
    let r = call(
        &mut c,
        "6240",
        &[
            ("SubAcctNo", &sub),
            ("TranNetMemberCode", member),
            ("MemberName", "戊方"),
            ("MemberAcctNo", BOUND),
            ("BankType", "2"),
            ("AcctOpenBranchName", "建设银行"),
            ("EiconBankBranchId", "105100000017"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000");
    sub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rail_certificate_is_verified() {
    let dir = TempDir::new("railtls");
    let certs = write_dev_certs(&dir.join("good")).expect("certs");
    let foreign = write_dev_certs(&dir.join("foreign")).expect("certs");
    let server = bankfep::tls::server_config(&certs.server_cert, &certs.server_key, None)
        .expect("server config");
    let sim = RailSim::start_tls("127.0.0.1:0", SimFaults::default(), server)
        .await
        .expect("tls rail");

    // Right CA: the verification amount reaches the bound account over TLS.
    let gw = gateway_with_rail("railtls-ok", &sim, &certs.ca_cert).await;
    start_bind(&gw, "RT001").await;
    let mut paid = 0;
    for _ in 0..100 {
        paid = sim.balance(BOUND);
        if paid > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        (1..=50).contains(&paid),
        "verification paid over the TLS rail"
    );
    gw.running.shutdown().await;

    // Another CA: the handshake fails, nothing reaches the rail, the gateway keeps serving.
    let before = sim.paid_count();
    let gw = gateway_with_rail("railtls-bad", &sim, &foreign.ca_cert).await;
    let sub = start_bind(&gw, "RT002").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        sim.paid_count(),
        before,
        "nothing was delivered to an unverified rail"
    );
    assert_eq!(sim.balance(BOUND), paid, "no second verification payment");
    let mut c = gw.client().await;
    assert_eq!(balance(&mut c, &sub).await.0, "0.00");
    gw.running.shutdown().await;
    sim.shutdown().await;
}
