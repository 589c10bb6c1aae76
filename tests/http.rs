//! The HTTP listener (docs/protocol.md §6) over real sockets: the e-receipt verification
//! page (also in Debian's headless chromium), the rate limit of wrong attempts, `/metrics`,
//! `/healthz`, `/readyz`.
//!
//! The browser cases need `/usr/bin/chromium` (or `BANKFEP_CHROMIUM`); without it they print
//! a SKIP line, unless `BANKFEP_REQUIRE_BROWSER=1` (CI), where they fail.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bankfep::store::sqlite::SqliteStore;
use common::hooked::{Gate, HookedStore};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One `GET path` over a fresh connection from `from` (a local address to bind, for a
/// distinct client IP); returns (status, body).
async fn get_from(addr: SocketAddr, path: &str, from: Option<&str>) -> (u16, String) {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(ip) = from {
        sock.bind(format!("{ip}:0").parse().expect("ip"))
            .expect("bind client");
    }
    let mut s = sock.connect(addr).await.expect("connect http");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8(buf).expect("utf-8 response");
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    get_from(addr, path, None).await
}

/// A receipt of a 1,234.50 transfer between two fresh sub-accounts: (payer sub-account,
/// payee sub-account, ReceiptNo, CheckCode, FrontSeqNo).
async fn make_receipt(gw: &Gw) -> (String, String, String, String, String) {
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "H001", "张三").await;
    let b = open_sub(&mut c, "H002", "李四贸易有限公司").await;
    fund(&mut core, &serial("HTTPFUND"), &a, 500_000).await;
    let r = transfer(
        &mut c,
        (&a, "H001"),
        (&b, "H002"),
        "1234.50",
        "0",
        &serial("ORD"),
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let seq = r.field("FrontSeqNo").expect("FrontSeqNo");
    let r = call(&mut c, "6142", &[("FrontSeqNo", &seq)]).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    (
        a,
        b,
        r.field("ReceiptNo").expect("ReceiptNo"),
        r.field("CheckCode").expect("CheckCode"),
        seq,
    )
}

const FIGURES: &str = "1,234.50";
const WORDS: &str = "壹仟贰佰叁拾肆元伍角整";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_page_matches_code_with_either_party_or_receipt_number() {
    let gw = start("http-receipt").await;
    let http = gw.running.http_addr.expect("http addr");
    let (a, b, no, code, seq) = make_receipt(&gw).await;

    let (st, form) = get(http, "/receipts/verify").await;
    assert_eq!(st, 200);
    assert!(form.contains("name=\"check_code\""), "{form}");

    for q in [
        format!("sub_acct_no={a}&check_code={code}"),
        format!(
            "sub_acct_no={b}&receipt_no=&check_code={}",
            code.to_lowercase()
        ),
        format!("receipt_no={no}&check_code={code}"),
    ] {
        let (st, page) = get(http, &format!("/receipts/verify?{q}")).await;
        assert_eq!(st, 200, "{q}");
        for want in [
            FIGURES,
            WORDS,
            &a,
            &b,
            &no,
            &code,
            &seq,
            "张三",
            "李四贸易有限公司",
        ] {
            assert!(page.contains(want), "{q}: {want} missing");
        }
        assert!(page.contains("charset=\"utf-8\""));
    }

    // Anything else: one identical page that echoes nothing of the query.
    let other = "9999999999999999";
    let mut pages = Vec::new();
    for q in [
        format!("sub_acct_no={a}&check_code=ZZZZZZZZZZZZZZZZ"),
        format!("sub_acct_no={other}&check_code={code}"),
        format!("receipt_no={no}&check_code=ZZZZZZZZZZZZZZZZ"),
        format!("receipt_no={other}&check_code={code}"),
        "sub_acct_no=%3Cscript%3E&check_code=%ZZ".to_string(),
        format!("check_code={code}"),
    ] {
        let (st, page) = get(http, &format!("/receipts/verify?{q}")).await;
        assert_eq!(st, 404, "{q}");
        assert!(!page.contains(&code) && !page.contains(&a) && !page.contains(FIGURES));
        assert!(!page.contains("<script>") && !page.contains(other));
        pages.push(page);
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "404 pages differ");
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleventh_wrong_attempt_is_refused_for_that_address_only() {
    let gw = start("http-limit").await;
    let http = gw.running.http_addr.expect("http addr");
    let (a, _, _, code, _) = make_receipt(&gw).await;
    let wrong = format!("/receipts/verify?sub_acct_no={a}&check_code=0000000000000000");
    let right = format!("/receipts/verify?sub_acct_no={a}&check_code={code}");
    for i in 0..10 {
        assert_eq!(
            get_from(http, &wrong, Some("127.0.0.3")).await.0,
            404,
            "try {i}"
        );
    }
    assert_eq!(get_from(http, &wrong, Some("127.0.0.3")).await.0, 429);
    // Limited until the minute is over, even with the right code.
    assert_eq!(get_from(http, &right, Some("127.0.0.3")).await.0, 429);
    // Another address is not affected.
    assert_eq!(get_from(http, &right, Some("127.0.0.4")).await.0, 200);
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_moving_metrics() {
    let gw = start("http-ops").await;
    let http = gw.running.http_addr.expect("http addr");
    assert_eq!(get(http, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(http, "/readyz").await, (200, "ready\n".into()));
    let before = get(http, "/metrics").await.1;
    make_receipt(&gw).await;
    let (st, after) = get(http, "/metrics").await;
    assert_eq!(st, 200);
    let count = |text: &str, series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let s6034 = "bankfep_requests_total{link=\"platform\",tx=\"6034\",code=\"000000\"}";
    assert!(count(&after, s6034) > count(&before, s6034), "{after}");
    let notices = "bankfep_core_notices_total{result=\"0000\"}";
    assert!(count(&after, notices) > count(&before, notices));
    assert!(after.contains("bankfep_request_duration_seconds_bucket{tx=\"6034\",le=\"+Inf\"}"));
    assert!(after.contains("bankfep_writer_commit_duration_seconds_count"));
    assert!(after.contains("bankfep_writer_queue_depth{lane=\"main\"}"));
    assert!(after.contains("bankfep_open_connections{link=\"platform\"}"));
    assert!(after.contains("bankfep_rail_oldest_unresolved_seconds"));
    assert!(after.contains("bankfep_rail_instructions{state=\"held\"}"));
    // The newest reconciliation's breaks, read from the reports `bankfep reconcile` wrote.
    assert!(!after.contains("bankfep_reconciliation_breaks"));
    let reports = gw.dir.path().join("reconcile");
    std::fs::create_dir_all(&reports).expect("reconcile dir");
    std::fs::write(reports.join("breaks_20261122.csv"), "kind,id\nshort,A\n").expect("old");
    std::fs::write(
        reports.join("breaks_20261123.csv"),
        "kind,id\nlong,B\nshort,C\n",
    )
    .expect("new");
    let (_, with_breaks) = get(http, "/metrics").await;
    assert!(
        with_breaks.contains("bankfep_reconciliation_breaks{date=\"20261123\"} 2"),
        "{with_breaks}"
    );
    // A body, another method, an unknown path.
    assert_eq!(get(http, "/nope").await.0, 404);
    let mut s = tokio::net::TcpStream::connect(http).await.expect("connect");
    s.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    assert!(
        buf.starts_with(b"HTTP/1.1 405"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // Oversized headers are refused, never served.
    let mut s = tokio::net::TcpStream::connect(http).await.expect("connect");
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_store_does_not_answer() {
    // A commit held at a gate blocks the writer: the listeners accept, the store cannot
    // answer, so the gateway is alive (healthz) but not ready (readyz) until it moves again.
    let dir = temp_dir("http-notready");
    let gate = Arc::new(Gate::default());
    let store = HookedStore::new(SqliteStore::open(&dir).expect("store"), gate.clone());
    let gw = start_with_store(test_config(dir), Box::new(store)).await;
    let http = gw.running.http_addr.expect("http addr");
    assert_eq!(get(http, "/readyz").await.0, 200);
    gate.set(true);
    let mut c = gw.client().await;
    let held = tokio::spawn(async move { open_sub(&mut c, "R001", "王五").await });
    while gate.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(http, "/healthz").await.0, 200);
    assert_eq!(get(http, "/readyz").await, (503, "not ready\n".into()));
    gate.set(false);
    held.await.expect("request answered once the commit passes");
    assert_eq!(get(http, "/readyz").await.0, 200);
    gw.running.shutdown().await;
}

/// The chromium binary, or `None` (after printing SKIP) when absent and not required.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("BANKFEP_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("BANKFEP_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!(
            "BANKFEP_REQUIRE_BROWSER=1 but no browser at {}",
            path.display()
        );
    }
    eprintln!(
        "SKIP browser test: no chromium at {} (install Debian's `chromium`, or set BANKFEP_REQUIRE_BROWSER=1 to fail instead)",
        path.display()
    );
    None
}

/// Runs headless chromium with `args` then `url`, in a fresh profile; returns stdout.
fn run_chromium(bin: &PathBuf, profile: &std::path::Path, args: &[String], url: &str) -> String {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of attribute `name` in the first tag of `html` that starts with `tag_start`.
fn attr(html: &str, tag_start: &str, name: &str) -> Option<String> {
    let at = html.find(tag_start)?;
    let tag = &html[at..at + html[at..].find('>')?];
    let key = format!("{name}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_fills_the_form_and_prints_the_receipt() {
    let Some(bin) = chromium() else { return };
    let gw = start("http-browser").await;
    let http = gw.running.http_addr.expect("http addr");
    let (a, _, _, code, seq) = make_receipt(&gw).await;
    let profile = temp_dir("chromium-profile");
    let base = format!("http://{http}");

    // The form as the browser renders it: where it submits, and its field names.
    let form = {
        let (bin, profile, url) = (
            bin.clone(),
            profile.clone(),
            format!("{base}/receipts/verify"),
        );
        tokio::task::spawn_blocking(move || {
            run_chromium(&bin, &profile, &["--dump-dom".into()], &url)
        })
        .await
        .expect("chromium")
    };
    assert_eq!(attr(&form, "<form", "method").as_deref(), Some("get"));
    let action = attr(&form, "<form", "action").expect("form action");
    let sub_field = attr(&form, "<input id=\"sub_acct_no\"", "name").expect("sub-account input");
    let code_field = attr(&form, "<input id=\"check_code\"", "name").expect("code input");

    // The browser fills the gateway's own form and submits it. A driver page, served by
    // this test from another port, loads the form in a frame, types the sub-account and the
    // code into its inputs and calls the form's submit; this test profile turns the
    // cross-origin check off so that the driver may reach into the frame.
    let driver_html = format!(
        r#"<!doctype html><html><body style="margin:0">
<iframe id="f" src="{base}/receipts/verify" style="border:0;width:860px;height:1200px"></iframe>
<pre id="result"></pre>
<script>
const f = document.getElementById('f');
const out = document.getElementById('result');
let step = 0;
f.onload = () => {{
  try {{
    const d = f.contentDocument;
    if (step === 0) {{
      step = 1;
      d.getElementById('sub_acct_no').value = '{a}';
      d.getElementById('check_code').value = '{code}';
      d.querySelector('form').submit();
    }} else {{
      out.textContent = 'URL ' + f.contentWindow.location.search + ' ' + d.body.innerText;
    }}
  }} catch (e) {{
    out.textContent = 'driver error: ' + e;
  }}
}};
</script></body></html>"#
    );
    let driver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("driver listener");
    let driver_addr = driver.local_addr().expect("driver addr");
    let serve_driver = tokio::spawn(async move {
        while let Ok((mut s, _)) = driver.accept().await {
            let mut req = [0u8; 2048];
            let _ = s.read(&mut req).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{driver_html}",
                driver_html.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    let driven = {
        let (bin, profile, url) = (
            bin.clone(),
            profile.clone(),
            format!("http://{driver_addr}/driver.html"),
        );
        tokio::task::spawn_blocking(move || {
            run_chromium(
                &bin,
                &profile,
                &[
                    "--disable-web-security".into(),
                    "--virtual-time-budget=10000".into(),
                    "--dump-dom".into(),
                ],
                &url,
            )
        })
        .await
        .expect("chromium")
    };
    serve_driver.abort();
    let result = driven
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or("");
    assert!(
        result.contains(FIGURES) && result.contains(WORDS) && result.contains(&seq),
        "the submitted form did not show the receipt: {driven}"
    );
    assert!(
        result.contains(&format!("{sub_field}={a}"))
            && result.contains(&format!("{code_field}={code}")),
        "the form submitted something else: {result}"
    );

    // What the browser submits for the filled form (GET: the fields as the query string),
    // loaded on its own for the DOM dump and the printable screenshot.
    let submitted = format!("{base}{action}?{sub_field}={a}&receipt_no=&{code_field}={code}");
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let shot = artifacts.join("receipt.png");
    let _ = std::fs::remove_file(&shot);
    let dom = {
        let (bin, profile, url, shot) = (
            bin.clone(),
            profile.clone(),
            submitted.clone(),
            shot.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let dom = run_chromium(&bin, &profile, &["--dump-dom".into()], &url);
            run_chromium(
                &bin,
                &profile,
                &[
                    format!("--screenshot={}", shot.display()),
                    "--window-size=860,640".into(),
                ],
                &url,
            );
            dom
        })
        .await
        .expect("chromium")
    };
    assert!(dom.contains(FIGURES), "figures missing: {dom}");
    assert!(dom.contains(WORDS), "capitals missing: {dom}");
    assert!(dom.contains(&seq) && dom.contains(&code));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    eprintln!("screenshot: {}", shot.display());

    // A wrong code shows nothing of the receipt.
    let wrong = format!("{base}{action}?{sub_field}={a}&receipt_no=&{code_field}=0000000000000000");
    let dom = {
        let (bin, profile) = (bin.clone(), profile.clone());
        tokio::task::spawn_blocking(move || {
            run_chromium(&bin, &profile, &["--dump-dom".into()], &wrong)
        })
        .await
        .expect("chromium")
    };
    assert!(dom.contains("无此回单"), "{dom}");
    for leaked in [FIGURES, WORDS, &seq, &code, &a, "张三"] {
        assert!(!dom.contains(leaked), "{leaked} shown for a wrong code");
    }
    let _ = std::fs::remove_dir_all(&profile);
    gw.running.shutdown().await;
}

/// A long read of the store (a busy day's statement, a day's instructions for
/// reconciliation) runs on the gateway's reader thread: while one is still running, a
/// transfer is booked and answered, and the read then sees it. With reads between the
/// writer's batches, the transfer would wait for the read (it fails with the reader thread
/// removed from `server::start`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_read_does_not_hold_up_payments() {
    let gw = start("longread").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "LR001", "甲方").await;
    let b = open_sub(&mut c, "LR002", "乙方").await;
    fund(&mut core, "LR-CORE-1", &a, 1_000_000).await;
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = gw.running.writer.clone();
    let read = tokio::spawn(async move {
        bankfep::http::read_store(&writer, Duration::from_secs(30), move |s| {
            let _ = started_tx.send(());
            let _ = release_rx.recv_timeout(Duration::from_secs(20));
            s.statement_source(MASTER, 20261123)
                .map(|src| src.map(|src| src.postings.len()))
        })
        .await
    });
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the read started");
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        transfer(
            &mut c,
            (&a, "LR001"),
            (&b, "LR002"),
            "100.00",
            "0.00",
            "LR-ORD-1",
        ),
    )
    .await
    .expect("the transfer is answered while the read runs");
    assert_eq!(r.return_code(), "000000");
    assert_eq!(balance(&mut c, &b).await.0, "100.00");
    release_tx.send(()).expect("release the read");
    let postings = read
        .await
        .expect("join")
        .expect("the read answered")
        .expect("store")
        .expect("master account");
    assert_eq!(postings, 2, "the read sees the funding and the transfer");
}
