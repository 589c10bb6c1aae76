//! The CITIC dialect (docs/citic.md) over real sockets: a plain HTTP/1.1 client written here
//! from the contract alone (no server codec), GBK bodies, exact reply shapes, idempotent
//! replays, and the same ledger as the A001 link.

mod common;

use std::time::Duration;

use bankfep::money::format_fen;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "DEMOCITICUSER";
const DECL: &str = "<?xml version=\"1.0\" encoding=\"GBK\"?>";

/// One HTTP exchange: (status code, headers text, body bytes).
async fn http(addr: &str, method: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} /DLink/DLServlet HTTP/1.1\r\nHost: bank\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("reply in time")
        .expect("read");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let code = head[9..12].parse().expect("status code");
    (code, head, out[split + 4..].to_vec())
}

fn gbk(s: &str) -> Vec<u8> {
    let (b, _, bad) = encoding_rs::GBK.encode(s);
    assert!(!bad);
    b.into_owned()
}

fn text(b: &[u8]) -> String {
    let (s, bad) = encoding_rs::GBK.decode_without_bom_handling(b);
    assert!(!bad, "reply is GBK");
    s.into_owned()
}

/// A request body: declaration, `<stream>`, action, userName, then `fields` in order.
fn req(action: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<stream>\n<action>{action}</action>\n<userName>{USER}</userName>\n"
    );
    for (k, v) in fields {
        s.push_str(&format!("<{k}>{v}</{k}>\n"));
    }
    s.push_str("</stream>\n");
    gbk(&s)
}

/// The text of the first `<name>` in `xml` (`Some("")` for `<name/>`).
fn field(xml: &str, name: &str) -> Option<String> {
    if xml.contains(&format!("<{name}/>")) {
        return Some(String::new());
    }
    let open = format!("<{name}>");
    let i = xml.find(&open)? + open.len();
    let j = xml[i..].find(&format!("</{name}>"))? + i;
    Some(xml[i..j].to_string())
}

struct Citic {
    addr: String,
}

impl Citic {
    async fn call(&self, action: &str, fields: &[(&str, &str)]) -> String {
        let (code, head, body) = http(&self.addr, "POST", &req(action, fields)).await;
        assert_eq!(code, 200);
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: text/xml; charset=gbk"));
        let t = text(&body);
        assert!(t.starts_with(DECL), "declaration at byte 0: {t}");
        t
    }
    async fn status(&self, action: &str, fields: &[(&str, &str)]) -> String {
        let t = self.call(action, fields).await;
        field(&t, "status").expect("status")
    }
}

async fn gw(name: &str) -> (Gw, Citic) {
    let gw = start(name).await;
    let addr = gw.running.citic_addr.expect("citic addr").to_string();
    (gw, Citic { addr })
}

#[tokio::test]
async fn envelope_refusals_and_exact_error_shape() {
    let (_gw, c) = gw("citic-envelope").await;
    // 405 and 413 keep their HTTP status and still carry the XML error reply.
    let (code, _, body) = http(&c.addr, "GET", b"").await;
    assert_eq!(code, 405);
    let t = text(&body);
    assert!(t.starts_with(DECL));
    assert_eq!(field(&t, "status").as_deref(), Some("DLF9977"));
    let big = vec![b' '; 1_048_577];
    let (code, _, body) = http(&c.addr, "POST", &big).await;
    assert_eq!(code, 413);
    assert_eq!(field(&text(&body), "status").as_deref(), Some("DLF9977"));
    // Malformed XML, bytes that are not GBK, a DTD, no action: DLF9977.
    for bad in [
        b"<stream><action>DLSUBBAL</action>".to_vec(),
        b"<stream><action>DLSUBBAL</action><userName>\x80\xff</userName></stream>".to_vec(),
        b"<!DOCTYPE x><stream><action>DLSUBBAL</action></stream>".to_vec(),
        gbk("<stream><userName>DEMOCITICUSER</userName></stream>"),
        gbk("<?xml version=\"1.0\" encoding=\"UTF-8\"?><stream><action>DLSUBBAL</action></stream>"),
    ] {
        let (code, _, body) = http(&c.addr, "POST", &bad).await;
        assert_eq!(code, 200);
        let t = text(&body);
        assert_eq!(field(&t, "status").as_deref(), Some("DLF9977"), "{t}");
    }
    // No userName: DLF9993; unknown: DLF9985; unknown action: DLF0000; a field missing: DLF9993.
    let (_, _, b) = http(
        &c.addr,
        "POST",
        &gbk("<stream><action>DLSUBBAL</action></stream>"),
    )
    .await;
    assert_eq!(field(&text(&b), "status").as_deref(), Some("DLF9993"));
    let (_, _, b) = http(
        &c.addr,
        "POST",
        &gbk("<stream><action>DLSUBBAL</action><userName>NOBODY</userName><subAccNo>1</subAccNo></stream>"),
    )
    .await;
    assert_eq!(field(&text(&b), "status").as_deref(), Some("DLF9985"));
    assert_eq!(c.status("DLXXXXXX", &[]).await, "DLF0000");
    let t = c.call("DLSUBBAL", &[("subAccNo", "")]).await;
    // Error replies carry only status and statusText, in ASCII order, nothing between.
    let msg = field(&t, "statusText").expect("statusText");
    assert_eq!(
        t,
        format!("{DECL}<stream><status>DLF9993</status><statusText>{msg}</statusText></stream>")
    );
    assert_eq!(
        c.status("DLSUBBAL", &[("subAccNo", "9000000000000000")])
            .await,
        "DLE0001"
    );
}

#[tokio::test]
async fn cross_dialect_open_balance_transfer_and_replay() {
    let (gw, c) = gw("citic-cross").await;
    let mut a = gw.client().await;
    let mut core = gw.core_client().await;
    // Opened through A001 6248, funded by a 6920 notice.
    let s1 = open_sub(&mut a, "M001", "张三").await;
    fund(&mut core, "BS0001", &s1, 100_000).await;
    // Opened through DLBREGSN; the same certificate again gives the same sub-account.
    let reg = [
        ("mainAccNo", MASTER),
        ("subAccNm", "李四"),
        ("custCertType", "73"),
        ("custCertNo", "911100000000000002"),
    ];
    let t = c.call("DLBREGSN", &reg).await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    let s2 = field(&t, "subAccNo").expect("subAccNo");
    assert_eq!(s2.len(), 16);
    let again = c.call("DLBREGSN", &reg).await;
    assert_eq!(again, t, "a repeat answers the same bytes");
    let mut other_name = reg;
    other_name[1] = ("subAccNm", "王五");
    assert_eq!(c.status("DLBREGSN", &other_name).await, "DLE0002");
    // Field order: hostNo, status, statusText, subAccNm, subAccNo (ASCII).
    let order: Vec<usize> = [
        "<hostNo>",
        "<status>",
        "<statusText>",
        "<subAccNm>",
        "<subAccNo>",
    ]
    .iter()
    .map(|n| t.find(n).expect(n))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{t}");
    // A balance reads the same through both dialects.
    let t = c.call("DLSUBBAL", &[("subAccNo", &s1)]).await;
    assert_eq!(field(&t, "balance").as_deref(), Some("1000.00"), "{t}");
    assert_eq!(field(&t, "actBal").as_deref(), Some("1000.00"));
    assert_eq!(field(&t, "yesterdayBal").as_deref(), Some("0.00"));
    assert_eq!(field(&t, "subAccNm").as_deref(), Some("张三"));
    assert!(
        t.contains("<list name=\"userDataList\"><row><actBal>"),
        "{t}"
    );
    let (total, _, avail) = balance(&mut a, &s1).await;
    assert_eq!((total.as_str(), avail.as_str()), ("1000.00", "1000.00"));
    // DLSINSUB: wrong payee name, another tenant's view, too much, then success.
    let pay = |id: &'static str, name: &'static str, amt: &'static str| {
        vec![
            ("clientID", id),
            ("mainAccNo", MASTER),
            ("payAccNo", Box::leak(s1.clone().into_boxed_str()) as &str),
            ("recvAccNo", Box::leak(s2.clone().into_boxed_str()) as &str),
            ("recvAccNm", name),
            ("tranAmt", amt),
            ("preFlg", "0"),
            ("abstract", "货款"),
        ]
    };
    assert_eq!(
        c.status("DLSINSUB", &pay("C0001", "王五", "1.00")).await,
        "DLE0002"
    );
    assert_eq!(
        c.status("DLSINSUB", &pay("C0002", "李四", "2000.00")).await,
        "DLE0003"
    );
    let mut wrong_main = pay("C0003", "李四", "1.00");
    wrong_main[1] = ("mainAccNo", "6222000000000000999");
    assert_eq!(c.status("DLSINSUB", &wrong_main).await, "DLE0001");
    let mut later = pay("C0004", "李四", "1.00");
    later[6] = ("preFlg", "1");
    assert_eq!(c.status("DLSINSUB", &later).await, "DLF9993");
    let ok = c.call("DLSINSUB", &pay("C0005", "李四", "300.5")).await;
    assert_eq!(field(&ok, "status").as_deref(), Some("AAAAAAA"), "{ok}");
    // The same request again: the same bytes; other content under the clientID: DLF9962.
    let (_, _, again) = http(
        &c.addr,
        "POST",
        &req("DLSINSUB", &pay("C0005", "李四", "300.5")),
    )
    .await;
    assert_eq!(text(&again), ok);
    assert_eq!(
        c.status("DLSINSUB", &pay("C0005", "李四", "300.50")).await,
        "DLF9962"
    );
    // A refusal is recorded and replayed too.
    assert_eq!(
        c.status("DLSINSUB", &pay("C0001", "王五", "1.00")).await,
        "DLE0002"
    );
    // Balances through both dialects.
    let t = c
        .call("DLSBALQR", &[("accountNo", MASTER), ("subAccNo", &s2)])
        .await;
    assert_eq!(field(&t, "SJAMT").as_deref(), Some("300.50"), "{t}");
    assert_eq!(field(&t, "KYAMT").as_deref(), Some("300.50"));
    assert_eq!(field(&t, "TZAMT").as_deref(), Some("0.00"));
    assert_eq!(balance(&mut a, &s2).await.0, "300.50");
    assert_eq!(balance(&mut a, &s1).await.0, "699.50");
    let t = c.call("DLSUBINF", &[("subAccNo", &s1)]).await;
    assert_eq!(field(&t, "ACCBAL").as_deref(), Some("699.50"), "{t}");
    assert_eq!(field(&t, "MAINACCNO").as_deref(), Some(MASTER));
    assert_eq!(field(&t, "YESTERDAYBAL").as_deref(), Some("0.00"));
    // DLCIDSTT: the transfer succeeded; the refused one stt 1; an unknown clientID DLF9996;
    // a type that is not the original action DLF9996.
    let t = c
        .call("DLCIDSTT", &[("clientID", "C0005"), ("type", "DLSINSUB")])
        .await;
    assert!(
        t.contains("<row><stt>0</stt><status>AAAAAAA</status><statusText>"),
        "{t}"
    );
    let t = c.call("DLCIDSTT", &[("clientID", "C0001")]).await;
    assert!(
        t.contains("<row><stt>1</stt><status>DLE0002</status>"),
        "{t}"
    );
    assert_eq!(
        c.status("DLCIDSTT", &[("clientID", "NOPE")]).await,
        "DLF9996"
    );
    assert_eq!(
        c.status("DLCIDSTT", &[("clientID", "C0005"), ("type", "DLFNDOUT")])
            .await,
        "DLF9996"
    );
    // B family: DLSUBTRN and DLMDETRN answer hostNo; A001 sees the money.
    let b = |id: &'static str, action_amt: &'static str| {
        vec![
            ("clientID", id),
            ("payAccNo", Box::leak(s2.clone().into_boxed_str()) as &str),
            ("recvAccNo", Box::leak(s1.clone().into_boxed_str()) as &str),
            ("recvAccNm", "张三"),
            ("tranAmt", action_amt),
        ]
    };
    let t = c.call("DLSUBTRN", &b("B0001", "0.50")).await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    assert!(field(&t, "hostNo").is_some_and(|h| !h.is_empty()));
    let t = c.call("DLMDETRN", &b("B0002", "100")).await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    // A clientID is its own namespace per tenant, shared by the money-moving actions.
    assert_eq!(c.status("DLSUBTRN", &b("B0002", "100")).await, "DLF9962");
    assert_eq!(balance(&mut a, &s1).await.0, format_fen(80_000));
    assert_eq!(balance(&mut a, &s2).await.0, "200.00");
    gw.assert_invariants().await;
}

#[tokio::test]
async fn close_and_withdraw_refusals() {
    let (gw, c) = gw("citic-close").await;
    let mut a = gw.client().await;
    let mut core = gw.core_client().await;
    let s1 = open_sub(&mut a, "M101", "赵六").await;
    let s2 = open_sub(&mut a, "M102", "钱七").await;
    fund(&mut core, "BS0101", &s1, 500).await;
    // Money left: DLE0009; an empty one closes; a transfer to it: DLE0004.
    assert_eq!(
        c.status("DLOLCACC", &[("mainAccNo", MASTER), ("subAccNo", &s1)])
            .await,
        "DLE0009"
    );
    let t = c
        .call("DLOLCACC", &[("mainAccNo", MASTER), ("subAccNo", &s2)])
        .await;
    assert_eq!(
        t,
        format!(
            "{DECL}<stream><status>AAAAAAA</status><statusText>{}</statusText></stream>",
            field(&t, "statusText").unwrap_or_default()
        )
    );
    let tr = [
        ("clientID", "X1"),
        ("payAccNo", s1.as_str()),
        ("recvAccNo", s2.as_str()),
        ("recvAccNm", "钱七"),
        ("tranAmt", "1.00"),
    ];
    assert_eq!(c.status("DLSUBTRN", &tr).await, "DLE0004");
    // A withdrawal without a bound account: DLE0005, recorded; DLCIDSTT stt 1.
    let w = [
        ("clientID", "W1"),
        ("accountNo", s1.as_str()),
        ("recvAccNo", "6217000000000000042"),
        ("recvAccNm", "赵六"),
        ("sameBank", "0"),
        ("tranAmt", "1.00"),
    ];
    assert_eq!(c.status("DLFNDOUT", &w).await, "DLE0005");
    let t = c
        .call("DLCIDSTT", &[("clientID", "W1"), ("type", "DLFNDOUT")])
        .await;
    assert!(t.contains("<stt>1</stt><status>DLE0005</status>"), "{t}");
    gw.assert_invariants().await;
}

/// `fixtures/citic/*.req` posted in name order to a fresh gateway (after one A001 6248 opens
/// 张三's sub-account and a 6920 notice funds it with 1,000.00); each reply must equal the
/// `.resp` beside it byte for byte. `CITIC_BLESS=1` writes the `.resp` files instead.
#[tokio::test]
async fn fixtures_replay_byte_for_byte() {
    let (gw, c) = gw("citic-fixtures").await;
    replay_fixtures(&gw, &c).await;
}

/// The same replay on the PostgreSQL store (a schema of its own; skipped without a server
/// unless `BANKFEP_REQUIRE_POSTGRES=1`): the same bytes, the detail and receipt queries
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_replay_byte_for_byte_on_postgres() {
    let Some(db) = common::pg::PgDb::new("pg_citic_fixtures") else {
        return;
    };
    let mut cfg = test_config(temp_dir("citic-fixtures-pg"));
    cfg.database_url = Some(db.url.clone());
    let gw = start_with(cfg).await;
    let c = Citic {
        addr: gw.running.citic_addr.expect("citic addr").to_string(),
    };
    replay_fixtures(&gw, &c).await;
    gw.running.shutdown().await;
}

async fn replay_fixtures(gw: &Gw, c: &Citic) {
    let mut a = gw.client().await;
    let mut core = gw.core_client().await;
    let s1 = open_sub(&mut a, "M001", "张三").await;
    assert_eq!(s1, "9000000000000019");
    fund(&mut core, "BS0001", &s1, 100_000).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/citic");
    let mut reqs: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/citic")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "req"))
        .collect();
    reqs.sort();
    assert!(reqs.len() >= 20);
    let bless = std::env::var("CITIC_BLESS").is_ok_and(|v| v == "1");
    for path in reqs {
        let body = std::fs::read(&path).expect("request");
        let (code, _, got) = http(&c.addr, "POST", &body).await;
        assert_eq!(code, 200);
        let resp = path.with_extension("resp");
        if bless {
            std::fs::write(&resp, &got).expect("bless");
            continue;
        }
        let want = std::fs::read(&resp).expect("response fixture");
        assert_eq!(text(&got), text(&want), "{}", path.display());
        assert_eq!(got, want, "{}", path.display());
        // The file name promises the status (or, for DLCIDSTT, the outcome).
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let status = field(&text(&got), "status").unwrap_or_default();
        if let Some(code) = name
            .split('-')
            .find(|p| p.len() == 7 && p.starts_with(['A', 'D']))
        {
            assert_eq!(status, code, "{name}");
        }
    }
    gw.assert_invariants().await;
}

/// The account bound in the flow tests (another bank).
const BOUND: &str = "6217000000000000042";

/// Binds `BOUND` to `sub` over A001 6240/6241 (another bank), reading the verification
/// amount the member received from the built-in rail simulator.
async fn bind(
    gw: &Gw,
    a: &mut bankfep::client::PlatformClient,
    sub: &str,
    member: &str,
    name: &str,
) {
    let sim = gw.running.rail_sim.as_ref().expect("built-in rail");
    let before = sim.balance(BOUND);
    let r = call(
        a,
        "6240",
        &[
            ("SubAcctNo", sub),
            ("TranNetMemberCode", member),
            ("MemberName", name),
            ("MemberAcctNo", BOUND),
            ("BankType", "2"),
            ("AcctOpenBranchName", "中国工商银行北京分行"),
            ("EiconBankBranchId", "102100099996"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let mut amount = 0;
    for _ in 0..200 {
        amount = sim.balance(BOUND) - before;
        if amount > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((1..=50).contains(&amount), "verification amount {amount}");
    let r = call(
        a,
        "6241",
        &[
            ("SubAcctNo", sub),
            ("TakeCashAcctNo", BOUND),
            ("AuthAmt", &format_fen(amount)),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("AuthStatus").as_deref(), Some("S"));
}

/// Polls DLCIDSTT for `client_id` until `stt` is no longer 2; returns the reply.
async fn wait_stt(c: &Citic, client_id: &str, action: &str) -> String {
    for _ in 0..600 {
        let t = c
            .call("DLCIDSTT", &[("clientID", client_id), ("type", action)])
            .await;
        assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
        if field(&t, "stt").as_deref() != Some("2") {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{client_id} did not resolve");
}

/// A DLINTSUB row paying from `sub` to `acct`.
fn intsub_row(id: &str, pay_type: &str, sub: &str, acct: &str, amt: &str) -> String {
    format!(
        "<row><clientID>{id}</clientID><preFlg>0</preFlg><payType>{pay_type}</payType>\
         <payFlg>1</payFlg><mainAccNo>{MASTER}</mainAccNo><payAccountNo>{sub}</payAccountNo>\
         <recAccountNo>{acct}</recAccountNo><recAccountName>张三</recAccountName>\
         <recOpenBankCode>102100099996</recOpenBankCode><tranAmount>{amt}</tranAmount></row>"
    )
}

/// A DLINTSUB request body with `rows`.
fn intsub(rows: &[String]) -> Vec<u8> {
    gbk(&format!(
        "{DECL}<stream><action>DLINTSUB</action><userName>{USER}</userName>\
         <list name=\"userDataList\">{}</list></stream>",
        rows.concat()
    ))
}

/// Binding over A001, then withdrawals through DLFNDOUT (B) and DLINTSUB (G), each followed
/// with DLCIDSTT until `stt 0`; the money is checked through both dialects' balance and
/// detail queries, and the e-receipts through DLEDDRSQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_over_a001_then_withdraw_and_follow_to_done() {
    let (gw, c) = gw("citic-flow").await;
    let mut a = gw.client().await;
    let mut core = gw.core_client().await;
    let s1 = open_sub(&mut a, "M201", "张三").await;
    fund(&mut core, "BS0201", &s1, 100_000).await;
    bind(&gw, &mut a, &s1, "M201", "张三").await;
    // DLFNDOUT: AAAAAAE and hostNo, then DLCIDSTT until done.
    let w = [
        ("clientID", "FLOW-W1"),
        ("accountNo", s1.as_str()),
        ("recvAccNo", BOUND),
        ("recvAccNm", "张三"),
        ("sameBank", "0"),
        ("recvTgfi", "102100099996"),
        ("tranAmt", "100.00"),
        ("memo", "提现"),
    ];
    let t = c.call("DLFNDOUT", &w).await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAE"), "{t}");
    let host_no = field(&t, "hostNo").expect("hostNo");
    assert!(!host_no.is_empty());
    // Replay: the same bytes; the money left at once.
    assert_eq!(c.call("DLFNDOUT", &w).await, t);
    assert_eq!(balance(&mut a, &s1).await.0, "900.00");
    let done = wait_stt(&c, "FLOW-W1", "DLFNDOUT").await;
    assert!(
        done.contains("<row><stt>0</stt><status>AAAAAAA</status>"),
        "{done}"
    );
    let sim = gw.running.rail_sim.as_ref().expect("sim");
    assert_eq!(sim.balance(MASTER), -10_000, "the rail paid 100.00");
    // DLINTSUB: an accepted row, an enterprise-internal one (DLF9993) and a wrong account
    // (DLE0005), in request order; each recorded under its clientID.
    let rows = [
        intsub_row("FLOW-I1", "1", &s1, BOUND, "50"),
        intsub_row("FLOW-I2", "3", &s1, BOUND, "1.00"),
        intsub_row("FLOW-I3", "1", &s1, "6217000000000000999", "2.00"),
    ];
    let (_, _, body) = http(&c.addr, "POST", &intsub(&rows)).await;
    let t = text(&body);
    assert!(t.starts_with(DECL));
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    assert_eq!(field(&t, "sucTotalNum").as_deref(), Some("1"));
    assert_eq!(field(&t, "sucTotalAmt").as_deref(), Some("50.00"));
    assert_eq!(field(&t, "errTotalNum").as_deref(), Some("2"));
    assert_eq!(field(&t, "errTotalAmt").as_deref(), Some("3.00"));
    let i1 = t.find("<clientID>FLOW-I1</clientID><status>AAAAAAE</status>");
    let i2 = t.find("<clientID>FLOW-I2</clientID><status>DLF9993</status>");
    let i3 = t.find("<clientID>FLOW-I3</clientID><status>DLE0005</status>");
    assert!(i1 < i2 && i2 < i3 && i1.is_some(), "{t}");
    assert!(
        t.find("<errTotalAmt>") < t.find("<status>")
            && t.find("<statusText>") < t.find("<sucTotalAmt>"),
        "ASCII order: {t}"
    );
    // The same request again: the same bytes, nothing paid twice.
    let (_, _, again) = http(&c.addr, "POST", &intsub(&rows)).await;
    assert_eq!(text(&again), t);
    // A changed row under a used clientID: DLF9962 in its row only.
    let changed = [intsub_row("FLOW-I1", "1", &s1, BOUND, "51.00")];
    let (_, _, b) = http(&c.addr, "POST", &intsub(&changed)).await;
    assert!(
        text(&b).contains("<clientID>FLOW-I1</clientID><status>DLF9962</status>"),
        "{}",
        text(&b)
    );
    let done = wait_stt(&c, "FLOW-I1", "DLINTSUB").await;
    assert!(
        done.contains("<stt>0</stt><status>AAAAAAA</status>"),
        "{done}"
    );
    let t = c.call("DLCIDSTT", &[("clientID", "FLOW-I2")]).await;
    assert!(t.contains("<stt>1</stt><status>DLF9993</status>"), "{t}");
    let t = c.call("DLCIDSTT", &[("clientID", "FLOW-I3")]).await;
    assert!(t.contains("<stt>1</stt><status>DLE0005</status>"), "{t}");
    assert_eq!(sim.balance(MASTER), -15_000);
    // Both dialects' balances: 1,000.00 - 100.00 - 50.00.
    assert_eq!(balance(&mut a, &s1).await.0, "850.00");
    let t = c.call("DLSUBBAL", &[("subAccNo", &s1)]).await;
    assert_eq!(field(&t, "balance").as_deref(), Some("850.00"), "{t}");
    // Details through DLSUBDTL: credit, withdrawal, withdrawal, in booking order, with
    // the bound account's holder and branch as the other party of a withdrawal.
    let t = c
        .call(
            "DLSUBDTL",
            &[
                ("subAccNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
                ("controlFlag", "1"),
            ],
        )
        .await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    let rows: Vec<&str> = t.split("<row>").skip(1).collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert_eq!(field(rows[0], "CDFG").as_deref(), Some("C"));
    assert_eq!(field(rows[0], "TRANAMT").as_deref(), Some("1000.00"));
    assert_eq!(field(rows[0], "TRANTYPE").as_deref(), Some("04"));
    assert_eq!(field(rows[1], "CDFG").as_deref(), Some("D"));
    assert_eq!(field(rows[1], "ACCBAL").as_deref(), Some("900.00"));
    assert_eq!(field(rows[1], "TRANNO").as_deref(), Some(host_no.as_str()));
    assert_eq!(field(rows[1], "OTHERACCNO").as_deref(), Some(BOUND));
    assert_eq!(field(rows[1], "OTHERACCNAME").as_deref(), Some("张三"));
    assert_eq!(
        field(rows[1], "OPENACCNAME").as_deref(),
        Some("中国工商银行北京分行")
    );
    assert_eq!(field(rows[1], "MEMO").as_deref(), Some("提现"));
    assert_eq!(field(rows[1], "MIXNO").as_deref(), Some("1"));
    let time = field(rows[1], "TRANTIME").expect("TRANTIME with controlFlag 1");
    assert!(
        time.len() == 8 && time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':',
        "{time}"
    );
    assert_eq!(field(rows[2], "ACCBAL").as_deref(), Some("850.00"));
    // DLSTRNDT: page of 2 from row 2, totals.
    let t = c
        .call(
            "DLSTRNDT",
            &[
                ("accountNo", MASTER),
                ("subAccNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
                ("startRecord", "2"),
                ("pageNumber", "2"),
            ],
        )
        .await;
    assert_eq!(field(&t, "returnRecords").as_deref(), Some("2"), "{t}");
    assert_eq!(field(&t, "totalRecords").as_deref(), Some("3"));
    assert_eq!(field(&t, "HOSTFLW").as_deref(), Some(host_no.as_str()));
    let time = field(&t, "TRANTIME").expect("TRANTIME");
    assert!(
        time.len() == 6 && time.bytes().all(|b| b.is_ascii_digit()),
        "{time}"
    );
    // DLEDDRSQ: the receipts of the sub-account, its own side, the 6142 verification code.
    let t = c
        .call(
            "DLEDDRSQ",
            &[
                ("accNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
                ("startNo", "1"),
                ("pageSize", "20"),
            ],
        )
        .await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    let total: usize = field(&t, "totalCount")
        .and_then(|n| n.parse().ok())
        .expect("totalCount");
    assert!(total >= 1, "{t}");
    let r = call(&mut a, "6142", &[("FrontSeqNo", &host_no)]).await;
    if r.return_code() == "000000" {
        let code = r.field("CheckCode").expect("CheckCode");
        assert!(t.contains(&format!("<checkCode>{code}</checkCode>")), "{t}");
        assert!(
            t.contains(&format!("<transeqNo>{host_no}</transeqNo>")),
            "{t}"
        );
    }
    // One row a page from the second receipt on.
    let t2 = c
        .call(
            "DLEDDRSQ",
            &[
                ("accNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
                ("startNo", "2"),
                ("pageSize", "1"),
            ],
        )
        .await;
    assert_eq!(t2.matches("<row>").count(), usize::from(total >= 2), "{t2}");
    gw.assert_invariants().await;
}

/// `limits.connections_per_peer_max` holds on the CITIC listener: with 2, a third open
/// connection from 127.0.0.1 is closed without a byte, while a connection from 127.0.0.2 is
/// served; once one closes, 127.0.0.1 is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_take_every_citic_connection() {
    let mut cfg = test_config(temp_dir("citic-peercap"));
    cfg.limits.connections_per_peer_max = 2;
    let gw = start_with(cfg).await;
    let addr = gw.running.citic_addr.expect("citic addr").to_string();
    let c = Citic { addr: addr.clone() };
    let first = tokio::net::TcpStream::connect(&addr).await.expect("first");
    let second = tokio::net::TcpStream::connect(&addr).await.expect("second");
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(&addr).await.expect("third");
    let _ = third
        .write_all(&http_bytes(&req("DLSUBBAL", &[("subAccNo", "1")])))
        .await;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "the third connection from one address is closed");
    // Another address is served.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut other = sock
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect from 127.0.0.2");
    other
        .write_all(&http_bytes(&req("DLSUBBAL", &[("subAccNo", "1")])))
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), other.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    assert!(
        text(&out).contains("<status>DLE0001</status>"),
        "{}",
        text(&out)
    );
    // A place freed is a place again.
    drop(first);
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.status("DLSUBBAL", &[("subAccNo", "1")]).await, "DLE0001");
}

/// A whole HTTP/1.1 request (head and body) that closes the connection after the reply.
fn http_bytes(body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST / HTTP/1.1\r\nHost: bank\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// More than 10,000 detail rows in the range: DLSUBDTL and DLEDDRSQ answer `DLF9993` (ask
/// for a shorter range); DLSTRNDT pages through them; exactly 10,000 is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_10000_rows_is_a_shorter_range() {
    let (gw, c) = gw("citic-10000").await;
    let mut a = gw.client().await;
    let s1 = open_sub(&mut a, "M301", "张三").await;
    // 10,000 credits over four core connections.
    let mut tasks = Vec::new();
    for k in 0..4 {
        let addr = gw.core.clone();
        let sub = s1.clone();
        tasks.push(tokio::spawn(async move {
            let mut core = bankfep::client::CoreClient::connect(&addr, None, 10_000)
                .await
                .expect("core connect");
            for i in 0..2_500 {
                fund(&mut core, &format!("BIG{k}-{i:05}"), &sub, 1).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("funding task");
    }
    let range = [
        ("subAccNo", s1.as_str()),
        ("startDate", "20261123"),
        ("endDate", "20261123"),
    ];
    let t = c.call("DLSUBDTL", &range).await;
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"));
    assert_eq!(t.matches("<row>").count(), 10_000);
    let mut core = gw.core_client().await;
    fund(&mut core, "BIG-LAST", &s1, 1).await;
    assert_eq!(c.status("DLSUBDTL", &range).await, "DLF9993");
    let page = [
        ("accNo", s1.as_str()),
        ("startDate", "20261123"),
        ("endDate", "20261123"),
        ("startNo", "1"),
        ("pageSize", "20"),
    ];
    assert_eq!(c.status("DLEDDRSQ", &page).await, "DLF9993");
    let t = c
        .call(
            "DLSTRNDT",
            &[
                ("accountNo", MASTER),
                ("subAccNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
                ("startRecord", "10001"),
                ("pageNumber", "10"),
            ],
        )
        .await;
    assert_eq!(field(&t, "totalRecords").as_deref(), Some("10001"), "{t}");
    assert_eq!(field(&t, "returnRecords").as_deref(), Some("1"));
    assert_eq!(field(&t, "ACCBAL").as_deref(), Some("100.01"));
}

/// `bankfep replay fixtures/citic` (the real binary) against a fresh gateway: it performs
/// the set-up the fixtures expect over the A001 and core links, then every case passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_replays_the_citic_fixtures() {
    let (gw, c) = gw("citic-replay-cli").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/citic");
    let cases = std::fs::read_dir(&dir)
        .expect("fixtures/citic")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "req"))
        .count();
    let (platform, core, citic) = (gw.platform.clone(), gw.core.clone(), c.addr.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bankfep"))
            .arg("replay")
            .arg(&dir)
            .args([
                "--addr",
                &platform,
                "--core-addr",
                &core,
                "--citic-addr",
                &citic,
            ])
            .output()
            .expect("replay")
    })
    .await
    .expect("replay task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{cases} passed, 0 failed")),
        "{stdout}"
    );
    gw.assert_invariants().await;
}

/// The GBK byte length of `s`.
fn gbk_len(s: &str) -> usize {
    gbk(s).len()
}

/// CITIC's own widths (docs/citic.md "Sources of the choices"): a memo of 102 GBK bytes, a
/// member name of 122 and a certificate number of 30 are accepted and stored whole; one
/// byte more is `DLF9993` and nothing moves. The stored values read back whole through both
/// dialects: balances and information (DLSUBBAL, DLSUBINF, DLSBALQR, 6010), details
/// (DLSUBDTL, DLSTRNDT, 6072) and receipts (DLEDDRSQ, 6142).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citic_widths_are_stored_whole_and_read_back_through_both_dialects() {
    let (gw, c) = gw("citic-widths").await;
    let mut a = gw.client().await;
    let mut core = gw.core_client().await;
    let s1 = open_sub(&mut a, "M401", "张三").await;
    fund(&mut core, "BS0401", &s1, 100_000).await;
    // 61 Chinese characters: 122 GBK bytes; 51: a memo of 102.
    let name = format!("中信{}有限公司", "测".repeat(55));
    let memo = "货".repeat(51);
    let cert = "91110000000000000000000000000X";
    assert_eq!((gbk_len(&name), gbk_len(&memo), cert.len()), (122, 102, 30));
    let long_name = format!("{name}x");
    let long_memo = format!("{memo}x");
    let long_cert = format!("{cert}9");
    let reg = |nm: &str, cert: &str| {
        req(
            "DLBREGSN",
            &[
                ("mainAccNo", MASTER),
                ("subAccNm", nm),
                ("custCertType", "73"),
                ("custCertNo", cert),
            ],
        )
    };
    // One byte over: DLF9993.
    for body in [reg(&long_name, cert), reg(&name, &long_cert)] {
        let (_, _, b) = http(&c.addr, "POST", &body).await;
        assert_eq!(field(&text(&b), "status").as_deref(), Some("DLF9993"));
    }
    // At the width: opened, the name answered whole.
    let (_, _, b) = http(&c.addr, "POST", &reg(&name, cert)).await;
    let t = text(&b);
    assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
    assert_eq!(field(&t, "subAccNm").as_deref(), Some(name.as_str()));
    let s2 = field(&t, "subAccNo").expect("subAccNo");
    let (_, _, again) = http(&c.addr, "POST", &reg(&name, cert)).await;
    assert_eq!(text(&again), t, "a repeat answers the same bytes");
    // The name reads back whole through both dialects.
    let t = c.call("DLSUBBAL", &[("subAccNo", &s2)]).await;
    assert_eq!(field(&t, "subAccNm").as_deref(), Some(name.as_str()), "{t}");
    let t = c.call("DLSUBINF", &[("subAccNo", &s2)]).await;
    assert_eq!(field(&t, "SUBACCNM").as_deref(), Some(name.as_str()), "{t}");
    let t = c
        .call("DLSBALQR", &[("accountNo", MASTER), ("subAccNo", &s2)])
        .await;
    assert_eq!(field(&t, "SUBACCNM").as_deref(), Some(name.as_str()), "{t}");
    let r = call(&mut a, "6010", &[("SubAcctNo", &s2)]).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("MemberName").as_deref(), Some(name.as_str()));
    // A001 6248 keeps the contract's MemberName [120]: 121 bytes there is YQ9993.
    let r = call(
        &mut a,
        "6248",
        &[
            ("FundSummaryAcctNo", MASTER),
            ("TranNetMemberCode", "M402"),
            ("MemberName", &format!("{}x", "名".repeat(60))),
            ("MemberGlobalType", "73"),
            ("MemberGlobalId", "911100000000000402"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "YQ9993");

    // Transfers to and from that member: the payee's 122-byte name must match; a 102-byte
    // memo is booked, 103 bytes are DLF9993 and nothing moves.
    let pay = |id: &str, m: &str| {
        req(
            "DLSINSUB",
            &[
                ("clientID", id),
                ("mainAccNo", MASTER),
                ("payAccNo", &s1),
                ("recvAccNo", &s2),
                ("recvAccNm", &name),
                ("tranAmt", "300.00"),
                ("preFlg", "0"),
                ("abstract", m),
            ],
        )
    };
    let (_, _, b) = http(&c.addr, "POST", &pay("W0001", &long_memo)).await;
    assert_eq!(field(&text(&b), "status").as_deref(), Some("DLF9993"));
    assert_eq!(balance(&mut a, &s1).await.0, "1000.00");
    let (_, _, b) = http(&c.addr, "POST", &pay("W0001", &memo)).await;
    assert_eq!(field(&text(&b), "status").as_deref(), Some("AAAAAAA"));
    for (m, want) in [(&long_memo, "DLF9993"), (&memo, "AAAAAAA")] {
        let back = [
            ("clientID", "W0002"),
            ("payAccNo", s2.as_str()),
            ("recvAccNo", s1.as_str()),
            ("recvAccNm", "张三"),
            ("tranAmt", "0.50"),
            ("memo", m.as_str()),
        ];
        assert_eq!(c.status("DLSUBTRN", &back).await, want);
    }
    assert_eq!(balance(&mut a, &s1).await.0, "700.50");
    assert_eq!(balance(&mut a, &s2).await.0, "299.50");

    // Details: the memo and the other party's name, whole, through both dialects.
    let day = [("startDate", "20261123"), ("endDate", "20261123")];
    let t = c
        .call("DLSUBDTL", &[("subAccNo", &s1), day[0], day[1]])
        .await;
    let rows: Vec<&str> = t.split("<row>").skip(1).collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert_eq!(field(rows[1], "MEMO").as_deref(), Some(memo.as_str()));
    assert_eq!(
        field(rows[1], "OTHERACCNAME").as_deref(),
        Some(name.as_str())
    );
    let seq = field(rows[1], "TRANNO").expect("TRANNO");
    let t = c
        .call("DLSUBDTL", &[("subAccNo", &s2), day[0], day[1]])
        .await;
    let rows: Vec<&str> = t.split("<row>").skip(1).collect();
    assert_eq!(rows.len(), 2, "{t}");
    assert_eq!(field(rows[0], "MEMO").as_deref(), Some(memo.as_str()));
    assert_eq!(field(rows[1], "MEMO").as_deref(), Some(memo.as_str()));
    assert_eq!(field(rows[1], "OTHERACCNAME").as_deref(), Some("张三"));
    let t = c
        .call(
            "DLSTRNDT",
            &[
                ("accountNo", MASTER),
                ("subAccNo", &s1),
                day[0],
                day[1],
                ("startRecord", "2"),
                ("pageNumber", "1"),
            ],
        )
        .await;
    assert_eq!(field(&t, "RESUME").as_deref(), Some(memo.as_str()), "{t}");
    assert_eq!(field(&t, "OPPACCNAME").as_deref(), Some(name.as_str()));
    let r = call(
        &mut a,
        "6072",
        &[
            ("SubAcctNo", &s2),
            ("StartDate", "20261123"),
            ("EndDate", "20261123"),
            ("PageNum", "1"),
        ],
    )
    .await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let rows = r.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|row| row.iter().any(|(k, v)| k == "Remark" && *v == memo)));
    // Receipts: the payee's name whole in 6142 and DLEDDRSQ.
    let r = call(&mut a, "6142", &[("FrontSeqNo", &seq)]).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    assert_eq!(r.field("PayeeName").as_deref(), Some(name.as_str()));
    let page = |acc: &str, min: &str, max: &str| {
        let mut f = vec![
            ("accNo", acc.to_string()),
            ("startDate", "20261123".to_string()),
            ("endDate", "20261123".to_string()),
            ("startNo", "1".to_string()),
            ("pageSize", "20".to_string()),
        ];
        f.push(("minAmt", min.to_string()));
        f.push(("maxAmt", max.to_string()));
        f
    };
    let query = |f: Vec<(&'static str, String)>| {
        let c = &c;
        async move {
            let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.call("DLEDDRSQ", &refs).await
        }
    };
    let t = query(page(&s2, "", "")).await;
    assert_eq!(field(&t, "totalCount").as_deref(), Some("2"), "{t}");
    assert!(t.contains(&format!("<recvAccNm>{name}</recvAccNm>")), "{t}");

    // DLEDDRSQ minAmt / maxAmt: inclusive bounds on tranAmt; s1 has receipts of 1000.00
    // (credit), 300.00 (paid) and 0.50 (received).
    let amounts = |t: &str| -> Vec<String> {
        t.split("<row>")
            .skip(1)
            .filter_map(|r| field(r, "tranAmt"))
            .collect()
    };
    for (min, max, want) in [
        ("", "", vec!["1000.00", "300.00", "0.50"]),
        ("0.5", "300", vec!["300.00", "0.50"]),
        ("300.00", "300.00", vec!["300.00"]),
        ("300.01", "", vec!["1000.00"]),
        ("", "0.49", vec![]),
    ] {
        let t = query(page(&s1, min, max)).await;
        assert_eq!(field(&t, "status").as_deref(), Some("AAAAAAA"), "{t}");
        assert_eq!(amounts(&t), want, "minAmt {min:?} maxAmt {max:?}: {t}");
        assert_eq!(field(&t, "totalCount"), Some(want.len().to_string()), "{t}");
    }
    // Paging counts the filtered rows only.
    let mut f = page(&s1, "0.50", "");
    f[3] = ("startNo", "3".to_string());
    let t = query(f).await;
    assert_eq!(amounts(&t), ["0.50"], "{t}");
    // minAmt above maxAmt: DLF9993.
    let t = query(page(&s1, "1.00", "0.99")).await;
    assert_eq!(field(&t, "status").as_deref(), Some("DLF9993"), "{t}");
    // The same for DLSUBDTL's minAmt / maxAmt.
    let t = c
        .call(
            "DLSUBDTL",
            &[
                ("subAccNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
                ("minAmt", "1.00"),
                ("maxAmt", "0.99"),
            ],
        )
        .await;
    assert_eq!(field(&t, "status").as_deref(), Some("DLF9993"), "{t}");
    gw.assert_invariants().await;
}

/// Withdrawals with CITIC's widths: a 102-byte memo (DLFNDOUT `memo`, DLCTNSUB and DLINTSUB
/// `abstract`), a 122-byte bank name (`recvBankNm`, `mngNode`, `recOpenBankName`) are
/// accepted; the memo is stored whole and reads back through DLSUBDTL and 6072 (the rail's
/// 60-byte memo gets a cut copy). A 103-byte memo is `DLF9993`; a 121-byte `recvAccNm`
/// passes the field check and is not the binding's name (`DLE0005`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_memos_of_102_bytes_are_stored_whole() {
    let (gw, c) = gw("citic-widths-withdraw").await;
    let mut a = gw.client().await;
    let mut core = gw.core_client().await;
    let s1 = open_sub(&mut a, "M501", "张三").await;
    fund(&mut core, "BS0501", &s1, 100_000).await;
    bind(&gw, &mut a, &s1, "M501", "张三").await;
    let memo = "款".repeat(51);
    let bank = format!("{}支行", "银".repeat(59));
    assert_eq!((gbk_len(&memo), gbk_len(&bank)), (102, 122));
    let long_memo = format!("{memo}x");
    let w = |id: &'static str, name: &str, m: &str| {
        req(
            "DLFNDOUT",
            &[
                ("clientID", id),
                ("accountNo", &s1),
                ("recvAccNo", BOUND),
                ("recvAccNm", name),
                ("sameBank", "0"),
                ("recvTgfi", "102100099996"),
                ("recvBankNm", &bank),
                ("tranAmt", "10.00"),
                ("memo", m),
            ],
        )
    };
    let long_name = format!("{}x", "张".repeat(60));
    for (body, want) in [
        (w("WD-1", "张三", &long_memo), "DLF9993"),
        (w("WD-2", &long_name, &memo), "DLE0005"),
        (w("WD-3", "张三", &memo), "AAAAAAE"),
    ] {
        let (_, _, b) = http(&c.addr, "POST", &body).await;
        assert_eq!(field(&text(&b), "status").as_deref(), Some(want));
    }
    let ctn = c
        .call(
            "DLCTNSUB",
            &[
                ("clientID", "WD-4"),
                ("mainAccNo", MASTER),
                ("payAccNo", &s1),
                ("recvAccNo", BOUND),
                ("recvAccNm", "张三"),
                ("sameBank", "0"),
                ("mngNode", &bank),
                ("tranAmt", "20.00"),
                ("preFlg", "0"),
                ("abstract", &memo),
            ],
        )
        .await;
    assert_eq!(field(&ctn, "status").as_deref(), Some("AAAAAAE"), "{ctn}");
    let row = format!(
        "<row><clientID>WD-5</clientID><preFlg>0</preFlg><payType>1</payType>\
         <payFlg>1</payFlg><mainAccNo>{MASTER}</mainAccNo><payAccountNo>{s1}</payAccountNo>\
         <recAccountNo>{BOUND}</recAccountNo><recAccountName>张三</recAccountName>\
         <recOpenBankName>{bank}</recOpenBankName><tranAmount>30.00</tranAmount>\
         <abstract>{memo}</abstract></row>"
    );
    let (_, _, b) = http(&c.addr, "POST", &intsub(&[row])).await;
    let t = text(&b);
    assert!(
        t.contains("<clientID>WD-5</clientID><status>AAAAAAE</status>"),
        "{t}"
    );
    for (id, action) in [
        ("WD-3", "DLFNDOUT"),
        ("WD-4", "DLCTNSUB"),
        ("WD-5", "DLINTSUB"),
    ] {
        let done = wait_stt(&c, id, action).await;
        assert!(
            done.contains("<stt>0</stt><status>AAAAAAA</status>"),
            "{done}"
        );
    }
    assert_eq!(balance(&mut a, &s1).await.0, "940.00");
    // The memo of every withdrawal, whole, through both dialects' details.
    let t = c
        .call(
            "DLSUBDTL",
            &[
                ("subAccNo", &s1),
                ("startDate", "20261123"),
                ("endDate", "20261123"),
            ],
        )
        .await;
    let memos: Vec<String> = t
        .split("<row>")
        .skip(1)
        .filter(|r| field(r, "CDFG").as_deref() == Some("D"))
        .filter_map(|r| field(r, "MEMO"))
        .collect();
    assert_eq!(memos, vec![memo.as_str(); 3], "{t}");
    let r = call(
        &mut a,
        "6072",
        &[
            ("SubAcctNo", &s1),
            ("StartDate", "20261123"),
            ("EndDate", "20261123"),
            ("PageNum", "1"),
        ],
    )
    .await;
    let remarks: Vec<String> = r
        .rows()
        .into_iter()
        .filter(|row| row.iter().any(|(k, v)| k == "DcFlag" && v == "D"))
        .filter_map(|row| row.into_iter().find(|(k, _)| k == "Remark").map(|(_, v)| v))
        .collect();
    assert_eq!(remarks, vec![memo.as_str(); 3]);
    gw.assert_invariants().await;
}
