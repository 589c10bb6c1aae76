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
