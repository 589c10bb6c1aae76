//! Property tests of the decoders that face hostile peers (docs/protocol.md §1.1, §2, §3), run
//! by `cargo test` in CI, plus the replay of every input under `fuzz/regressions/`.
//!
//! The decoder chains are the ones the cargo-fuzz targets drive
//! (`bankfep::tools::fuzz`), so a property here and a fuzz target check the same
//! invariants; the fuzzers explore further, these keep the findings fixed.

use std::path::Path;
use std::sync::OnceLock;

use bankfep::client::build_notice;
use bankfep::codec::charset::{self, Charset};
use bankfep::codec::fixed::decode_record;
use bankfep::codec::request::validate_request;
use bankfep::codec::schema::Schemas;
use bankfep::codec::xml::{parse_body, XmlLimits};
use bankfep::ledger::NoticeReq;
use bankfep::rail::wire::{
    decode_reply, decode_request, encode_reply, encode_request, RailReply, RailRequest, RailStatus,
    TradeCode, AMOUNT_MAX_FEN,
};
use bankfep::server::core_link::parse_notice;
use bankfep::tools::fuzz;
use bankfep::wire::a001::{check_request_header, HEADER_LEN};
use proptest::prelude::*;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas::load_embedded().expect("embedded schemas load"))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// `len` arbitrary bytes, then `edits` (position, byte) overwrites of `base`.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    proptest::collection::vec((0..len, any::<u8>()), 1..6).prop_map(move |edits| {
        let mut b = base.clone();
        for (i, v) in edits {
            b[i] = v;
        }
        b
    })
}

// ---- XML-ish text ------------------------------------------------------------------------

const TOKENS: &[&str] = &[
    "<",
    ">",
    "/",
    "</",
    "/>",
    "Result",
    "Row",
    "List",
    "&amp;",
    "&lt;",
    "&#x41;",
    "&#0;",
    "&bogus;",
    "&",
    "<!DOCTYPE Result [<!ENTITY x \"y\">]>",
    "<!DOCTYPE",
    "<?xml version=\"1.0\" encoding=\"GBK\"?>",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<?xml",
    "?>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    " ",
    "\r\n",
    "\t",
    "=",
    "\"",
    "'",
    "0",
    "1",
    "2",
    "9",
    "12",
    ".",
    "-",
    "1234.50",
    "20261123",
    "张三",
    "平安银行",
    "\u{3000}",
    "€",
    "😀",
    "\u{feff}",
    "SubAcctNo",
    "TranAmt",
    "OrderNo",
    "FunctionFlag",
    "MemberName",
    "PageNum",
    "StartDate",
];

fn xmlish() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..48).prop_map(|t| t.concat())
}

/// Every request field name of every schema, plus a few that no schema knows.
fn field_names() -> Vec<String> {
    let mut names: Vec<String> = schemas()
        .tx
        .values()
        .flat_map(|t| t.request.iter().map(|f| f.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names.extend(["Unknown".to_string(), "Row".to_string(), "List".to_string()]);
    names
}

const VALUES: &[&str] = &[
    "",
    "1",
    "2",
    "3",
    "01",
    "73",
    "0",
    "-1",
    "0.01",
    "1234.5",
    "1234.567",
    "1e5",
    "999999999999.99",
    "9999999999999",
    "20261123",
    "20230229",
    "00000101",
    "1000000000000001",
    "6222000000000000001",
    "M001",
    "ORD-1",
    "张三",
    "平安银行股份有限公司",
    "a&amp;b",
    "&#x4E09;",
    "😀",
    "\u{3000}张三 ",
    "999999999",
    "1000000000",
];

/// A `<Result>` body whose children are schema field names with plausible or hostile
/// values, sometimes with a `<List><Row>` inside.
fn structured_body() -> impl Strategy<Value = String> {
    let names = field_names();
    let field = (
        proptest::sample::select(names),
        prop_oneof![
            3 => proptest::sample::select(VALUES).prop_map(str::to_string),
            1 => "[0-9.\\-]{0,16}",
            1 => "[a-zA-Z0-9 张三李四]{0,40}",
        ],
    );
    (
        proptest::collection::vec(field, 0..16),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(fields, decl, list)| {
            let mut out = String::new();
            if decl {
                out.push_str("<?xml version=\"1.0\" encoding=\"GBK\"?>");
            }
            out.push_str("<Result>");
            for (n, v) in &fields {
                out.push_str(&format!("<{n}>{v}</{n}>"));
            }
            if list {
                out.push_str("<List><Row><TranAmt>1.00</TranAmt></Row><Row/></List>");
            }
            out.push_str("</Result>");
            out
        })
}

// ---- valid records for round trips -------------------------------------------------------

fn gbk_text(max_bytes: usize) -> impl Strategy<Value = String> {
    // No leading/trailing white space: fixed-width text is right-padded and trimmed.
    "[A-Za-z0-9张三李四王五有限公司银行货款]{0,40}".prop_filter_map("fits", move |s| {
        let s = s.trim().to_string();
        (charset::encoded_len(&s, Charset::Gbk).ok()? <= max_bytes).then_some(s)
    })
}

fn date() -> impl Strategy<Value = u32> {
    (1u32..=9999, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| y * 10_000 + m * 100 + d)
}

fn notice() -> impl Strategy<Value = NoticeReq> {
    (
        "[A-Z0-9]{1,32}",
        proptest::sample::select(vec!["IBPS", "BEPS", "HVPS", "INTR"]),
        date(),
        (0u32..24, 0u32..60, 0u32..60),
        "[0-9]{1,32}",
        0i64..=999_999_999_999_999,
        ("[0-9]{0,32}", gbk_text(120), "[0-9]{0,14}", gbk_text(60)),
    )
        .prop_map(
            |(serial, channel, acct_date, (h, m, s), payee, amount, (pa, pn, pb, memo))| {
                NoticeReq {
                    bank_serial: serial,
                    channel: channel.to_string(),
                    acct_date,
                    time: format!("{h:02}{m:02}{s:02}"),
                    payee,
                    amount,
                    payer_acct: pa,
                    payer_name: pn,
                    payer_bank: pb,
                    memo,
                }
            },
        )
}

fn instruction_id() -> impl Strategy<Value = String> {
    "[!-~]{1,32}"
}

fn rail_request() -> impl Strategy<Value = RailRequest> {
    let transfer = (
        prop_oneof![Just(TradeCode::Ibps), Just(TradeCode::SameBank)],
        instruction_id(),
        "[0-9]{1,32}",
        "[0-9]{1,32}",
        gbk_text(120),
        "[0-9]{1,14}",
        1..=AMOUNT_MAX_FEN,
        gbk_text(60),
    )
        .prop_map(
            |(trade, id, payer, payee, name, bank, fen, memo)| RailRequest {
                trade,
                instruction_id: id,
                payer_acct: payer,
                payee_acct: payee,
                payee_name: name,
                payee_bank: if trade == TradeCode::SameBank {
                    String::new()
                } else {
                    bank
                },
                amount_fen: fen,
                memo,
            },
        );
    prop_oneof![
        4 => transfer,
        1 => instruction_id().prop_map(|id| RailRequest::query(&id)),
    ]
}

fn rail_reply() -> impl Strategy<Value = RailReply> {
    (
        prop_oneof![
            Just(TradeCode::Ibps),
            Just(TradeCode::SameBank),
            Just(TradeCode::Query)
        ],
        instruction_id(),
        prop_oneof![
            Just(RailStatus::Settled),
            Just(RailStatus::Failed),
            Just(RailStatus::Pending)
        ],
        0u8..10,
        gbk_text(59),
    )
        .prop_map(|(trade, id, status, rj, message)| RailReply {
            trade,
            instruction_id: id,
            status,
            reject_code: if status == RailStatus::Failed {
                format!("RJ0{rj}")
            } else {
                String::new()
            },
            message,
        })
}

fn notice_bytes(n: &NoticeReq) -> Vec<u8> {
    build_notice(
        &n.bank_serial,
        &n.channel,
        &format!("{:08}", n.acct_date),
        &n.time,
        &n.payee,
        u64::try_from(n.amount).expect("amount ≥ 0"),
        &n.payer_acct,
        &n.payer_name,
        &n.payer_bank,
        &n.memo,
    )
    .expect("notice builds")
}

fn sample_notice() -> Vec<u8> {
    build_notice(
        "FXCORE0001",
        "IBPS",
        "20261123",
        "093000",
        "6222000000000000001",
        1_000_000,
        "6217000000000000001",
        "张三",
        "102100099996",
        "货款 1000000000000001",
    )
    .expect("notice builds")
}

fn sample_transfer() -> RailRequest {
    RailRequest {
        trade: TradeCode::Ibps,
        instruction_id: "WD20261123000001-1".into(),
        payer_acct: "6222000000000000001".into(),
        payee_acct: "6217000011112222333".into(),
        payee_name: "张三".into(),
        payee_bank: "102100099996".into(),
        amount_fen: 4_000_000,
        memo: "提现".into(),
    }
}

fn sample_reply() -> RailReply {
    RailReply {
        trade: TradeCode::Ibps,
        instruction_id: "WD20261123000001-1".into(),
        status: RailStatus::Failed,
        reject_code: "RJ03".into(),
        message: "超过单笔限额".into(),
    }
}

/// A valid A001 request frame around `body` (GBK header, code `tx`).
fn a001_frame(cs: Charset, tx: &str, body: &[u8]) -> Vec<u8> {
    let mut f = bankfep::wire::a001::encode_request_header(
        cs,
        "DEMOPLATFORM00000001",
        tx,
        "SERIAL-1",
        body.len(),
        "20261123",
        "093000",
    )
    .expect("header encodes")
    .to_vec();
    f.extend_from_slice(body);
    f
}

proptest! {
    #![proptest_config(config())]

    // ---- §1.1 A001 framing, header, body ------------------------------------------------

    #[test]
    fn a001_arbitrary_bytes_never_panic(data in bytes(700)) {
        fuzz::a001_frame(schemas(), &data);
    }

    #[test]
    fn a001_header_shaped_bytes_never_panic(mut h in proptest::collection::vec(any::<u8>(), HEADER_LEN), body in bytes(200), extra in bytes(40)) {
        h[0..4].copy_from_slice(b"A001");
        h[4..6].copy_from_slice(b"01");
        h[30..40].copy_from_slice(format!("{:010}", body.len()).as_bytes());
        let mut data = h;
        data.extend_from_slice(&body);
        data.extend_from_slice(&extra);
        fuzz::a001_frame(schemas(), &data);
    }

    #[test]
    fn header_check_never_panics(h in proptest::collection::vec(any::<u8>(), HEADER_LEN)) {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&h);
        let _ = check_request_header(&header);
    }

    #[test]
    fn a001_valid_frames_with_hostile_bodies(tx in proptest::sample::select(bankfep::msg::SERVED.to_vec()), body in prop_oneof![xmlish(), structured_body()], utf8 in any::<bool>()) {
        let cs = if utf8 { Charset::Utf8 } else { Charset::Gbk };
        let Ok(encoded) = charset::encode(&body, cs) else { return Ok(()) };
        let frame = a001_frame(cs, tx, &encoded);
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        fuzz::a001_frame(schemas(), &two);
    }

    #[test]
    fn xml_arbitrary_bytes_never_panic(data in bytes(400)) {
        fuzz::xml_body(schemas(), &data);
    }

    #[test]
    fn xml_token_soup_never_panics(text in xmlish()) {
        fuzz::xml_body(schemas(), text.as_bytes());
        if let Ok(gbk) = charset::encode(&text, Charset::Gbk) {
            fuzz::xml_body(schemas(), &gbk);
        }
    }

    #[test]
    fn structured_bodies_validate_without_panic(text in structured_body()) {
        fuzz::xml_body(schemas(), text.as_bytes());
        // The chain itself, spelled out: parse, validate against every schema, build.
        let body = parse_body(&text, Charset::Gbk, &XmlLimits::default());
        if let Ok(body) = body {
            for (code, schema) in &schemas().tx {
                if let Ok(fields) = validate_request(schema, &body, Charset::Gbk) {
                    let _ = bankfep::msg::to_command(code, &fields);
                }
            }
        }
    }

    // ---- §2 bank-core notices -------------------------------------------------------------

    #[test]
    fn notice_arbitrary_bytes_never_panic(data in bytes(900)) {
        fuzz::notice_6920(schemas(), &data);
    }

    #[test]
    fn notice_record_sized_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 390)) {
        fuzz::notice_6920(schemas(), &data);
    }

    #[test]
    fn notice_mutations_never_panic(data in mutated(sample_notice())) {
        fuzz::notice_6920(schemas(), &data);
        fuzz::notice_6920(schemas(), &data[8..]);
    }

    #[test]
    fn notice_round_trip(n in notice()) {
        let framed = notice_bytes(&n);
        prop_assert_eq!(&framed[..8], b"00000390");
        let rec = decode_record(&schemas().notice, &framed[8..]).expect("390 bytes");
        prop_assert_eq!(parse_notice(&rec), Some(n));
        fuzz::notice_6920(schemas(), &framed);
    }

    // ---- §3 rail records ------------------------------------------------------------------

    #[test]
    fn rail_arbitrary_bytes_never_panic(data in bytes(400)) {
        fuzz::rail_reply(schemas(), &data);
    }

    #[test]
    fn rail_record_sized_bytes_never_panic(reply in proptest::collection::vec(any::<u8>(), 100), request in proptest::collection::vec(any::<u8>(), 320)) {
        fuzz::rail_reply(schemas(), &reply);
        fuzz::rail_reply(schemas(), &request);
    }

    #[test]
    fn rail_mutations_never_panic(
        reply in mutated(encode_reply(schemas(), &sample_reply()).expect("reply encodes")),
        request in mutated(encode_request(schemas(), &sample_transfer()).expect("request encodes")),
    ) {
        fuzz::rail_reply(schemas(), &reply);
        fuzz::rail_reply(schemas(), &request);
    }

    #[test]
    fn rail_request_round_trip(r in rail_request()) {
        let rec = encode_request(schemas(), &r).expect("valid request encodes");
        prop_assert_eq!(rec.len(), 320);
        prop_assert_eq!(decode_request(schemas(), &rec), Ok(r));
    }

    #[test]
    fn rail_reply_round_trip(r in rail_reply()) {
        let rec = encode_reply(schemas(), &r).expect("valid reply encodes");
        prop_assert_eq!(rec.len(), 100);
        prop_assert_eq!(decode_reply(schemas(), &rec), Ok(r));
    }
}

// ---- CITIC request decoder (docs/citic.md) ---------------------------------------------

/// Every `fixtures/citic/*.req` body.
fn citic_fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/citic");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures/citic")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "req"))
        .collect();
    out.sort();
    out.iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

/// A CITIC fixture body with 1–5 bytes overwritten, or cut, or doubled.
fn citic_mutated() -> impl Strategy<Value = Vec<u8>> {
    let all = citic_fixtures();
    (
        0..all.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        0u8..3,
    )
        .prop_map(move |(i, edits, how)| {
            let mut b = all[i].clone();
            match how {
                0 => {
                    for (at, v) in edits {
                        let n = b.len();
                        b[at % n] = v;
                    }
                }
                1 => b.truncate(edits[0].0 % b.len()),
                _ => b.extend_from_slice(&all[i]),
            }
            b
        })
}

/// A `<stream>` document with a served action (or a stray one), field names of the CITIC
/// schemas with hostile values, and maybe a `userDataList` of rows.
fn citic_structured() -> impl Strategy<Value = String> {
    let actions: Vec<&str> = bankfep::dialect::citic::SERVED.to_vec();
    let names: Vec<String> = bankfep::dialect::citic::load_schemas()
        .expect("CITIC schemas")
        .values()
        .flat_map(|s| s.request.iter().map(|f| f.name.clone()))
        .collect();
    let value = prop_oneof![
        gbk_text(24),
        "[0-9]{0,20}",
        "-?[0-9]{0,14}(\\.[0-9]{0,3})?",
        Just(String::new()),
        xmlish(),
    ];
    let field = (proptest::sample::select(names), value);
    (
        proptest::sample::select(actions),
        proptest::collection::vec(field.clone(), 0..16),
        proptest::option::of(proptest::collection::vec(
            proptest::collection::vec(field, 0..16),
            0..4,
        )),
    )
        .prop_map(|(action, fields, rows)| {
            let mut s = format!(
                "<?xml version=\"1.0\" encoding=\"GBK\"?><stream><action>{action}</action><userName>U</userName>"
            );
            for (k, v) in fields {
                s.push_str(&format!("<{k}>{v}</{k}>"));
            }
            if let Some(rows) = rows {
                s.push_str("<list name=\"userDataList\">");
                for row in rows {
                    s.push_str("<row>");
                    for (k, v) in row {
                        s.push_str(&format!("<{k}>{v}</{k}>"));
                    }
                    s.push_str("</row>");
                }
                s.push_str("</list>");
            }
            s.push_str("</stream>");
            s
        })
}

proptest! {
    #![proptest_config(config())]

    /// The CITIC decoder chain (`fuzz::citic_request`) never panics on arbitrary bytes.
    #[test]
    fn citic_arbitrary_bytes_never_panic(data in bytes(600)) {
        fuzz::citic_request(schemas(), &data);
    }

    /// ... nor on mutated, cut or doubled fixture bodies.
    #[test]
    fn citic_mutated_fixtures_never_panic(data in citic_mutated()) {
        fuzz::citic_request(schemas(), &data);
    }

    /// ... nor on well-formed documents of served actions with hostile values and rows;
    /// and the decoder reads back the action it was given.
    #[test]
    fn citic_structured_requests_never_panic(text in citic_structured()) {
        let Ok(gbk) = charset::encode(&text, Charset::Gbk) else { return Ok(()) };
        fuzz::citic_request(schemas(), &gbk);
        if let Ok(req) = bankfep::dialect::citic::envelope::decode(&gbk, &XmlLimits::default()) {
            prop_assert!(bankfep::dialect::citic::SERVED.contains(&req.action.as_str()));
        }
    }
}

// ---- fuzz/regressions replay ------------------------------------------------------------

/// Every file under `fuzz/regressions/<target>/` goes through the harness of `<target>`
/// (the same code the fuzz target runs); a folder that names no target fails the test.
#[test]
fn fuzz_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0usize;
    for dir in std::fs::read_dir(&root).expect("fuzz/regressions exists") {
        let dir = dir.expect("dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            fuzz::TARGETS.contains(&target),
            "fuzz/regressions/{target}: not a fuzz target"
        );
        for file in std::fs::read_dir(&dir).expect("read target dir") {
            let path = file.expect("dir entry").path();
            if !path.is_file() || path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = std::fs::read(&path).expect("read regression input");
            assert!(fuzz::run(target, schemas(), &data), "{}", path.display());
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs under {}",
        root.display()
    );
}

// ---- named regressions (one per fuzz finding; the inputs are in fuzz/regressions/) -------

/// notice_6920, year 0000: a 6920 notice dated `0000MMdd` passed chrono's calendar check
/// (proleptic year 0 exists there) and was accepted with accounting date `MMdd`.
#[test]
fn regression_notice_year_0000_refused() {
    for date in ["00000101", "00001104", "00000229"] {
        let framed = build_notice(
            "FXCORE0001",
            "IBPS",
            date,
            "093000",
            "6222000000000000001",
            100,
            "6217000000000000001",
            "张三",
            "102100099996",
            "",
        )
        .expect("notice builds");
        let rec = decode_record(&schemas().notice, &framed[8..]).expect("390 bytes");
        assert_eq!(parse_notice(&rec), None, "{date}");
        fuzz::notice_6920(schemas(), &framed);
    }
    let found = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/notice_6920/crash-year-0000-accounting-date");
    fuzz::notice_6920(schemas(), &std::fs::read(found).expect("regression input"));
}
