//! Codec benchmarks (criterion): the hot paths of the platform link (§1) and the
//! bank-core link (§2). Run: `cargo bench --bench codec`.

use std::hint::black_box;

use bankfep::codec::charset::{self, Charset};
use bankfep::codec::fixed::{decode_record, encode_record, FixedKind, FixedValue};
use bankfep::codec::request::validate_request;
use bankfep::codec::schema::Schemas;
use bankfep::codec::xml::{encode_body, parse_body, XmlLimits};
use bankfep::wire::a001::{
    check_request_header, encode_request_header, encode_response_header, A001Codec, ResponseHead,
};
use bankfep::wire::prefixed::{frame_prefixed, PrefixedCodec};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use tokio_util::codec::Decoder;

/// A full GBK 6034 request frame with a Chinese `Remark`.
fn frame_6034() -> Vec<u8> {
    let xml = "<?xml version=\"1.0\" encoding=\"GBK\"?><Result><OutSubAcctNo>1000000000000001</OutSubAcctNo>\
<OutMemberCode>M0000001</OutMemberCode><InSubAcctNo>1000000000000002</InSubAcctNo><InMemberCode>M0000002</InMemberCode>\
<TranAmt>1234.50</TranAmt><TranFee>1.20</TranFee><OrderNo>ORD202611230000001</OrderNo>\
<Remark>货款结算 深圳市某某科技有限公司 第一批</Remark></Result>";
    let body = charset::encode(xml, Charset::Gbk).unwrap().into_owned();
    let header = encode_request_header(
        Charset::Gbk,
        "DEMOPLATFORM00000001",
        "6034",
        "SER202611230000001",
        body.len(),
        "20261123",
        "093000",
    )
    .unwrap();
    let mut frame = header.to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn platform(c: &mut Criterion, schemas: &Schemas) {
    let limits = XmlLimits::default();
    let frame = frame_6034();
    let tx = schemas.tx("6034").unwrap();
    c.bench_function("decode_6034_frame", |b| {
        b.iter(|| {
            let mut codec = A001Codec::default();
            let mut buf = BytesMut::from(black_box(&frame[..]));
            let raw = codec.decode(&mut buf).unwrap().unwrap();
            let head = check_request_header(&raw.header).unwrap();
            let text = charset::decode(&raw.body, head.charset).unwrap();
            let body = parse_body(&text, head.charset, &limits).unwrap();
            let fields = validate_request(tx, &body, head.charset).unwrap();
            black_box(fields.amount_fen("TranAmt"));
        })
    });

    let mut req_header = [0u8; 222];
    req_header.copy_from_slice(&frame[..222]);
    c.bench_function("encode_6034_response", |b| {
        b.iter(|| {
            let body = encode_body(
                Charset::Gbk,
                black_box(&[("FrontSeqNo", "2026112300000001")]),
                None,
            )
            .unwrap();
            let head = ResponseHead {
                return_code: "000000",
                message: "交易成功 success",
                body_len: body.len(),
                date: "20261123",
                time: "093001",
            };
            let header = encode_response_header(black_box(&req_header), &head);
            black_box((header, body));
        })
    });
}

fn core(c: &mut Criterion, schemas: &Schemas) {
    let notice = encode_record(
        &schemas.notice,
        &[
            ("trade_code", FixedValue::Text("6920")),
            ("bank_serial", FixedValue::Text("CORE20261123000000000001")),
            ("channel", FixedValue::Text("IBPS")),
            ("accounting_date", FixedValue::Num(20261123)),
            ("time", FixedValue::Num(93005)),
            ("payee_account", FixedValue::Text("6222000000000000001")),
            ("amount", FixedValue::Num(12_345_678)),
            ("currency", FixedValue::Text("RMB")),
            ("payer_account", FixedValue::Text("6217000011112222333")),
            ("payer_name", FixedValue::Text("深圳市某某科技有限公司")),
            ("payer_bank_code", FixedValue::Text("102100099996")),
            ("memo", FixedValue::Text("货款 1000000000000001")),
        ],
    )
    .unwrap();
    let framed = frame_prefixed(&notice);
    c.bench_function("decode_6920_notice", |b| {
        b.iter(|| {
            let mut codec = PrefixedCodec::default();
            let mut buf = BytesMut::from(black_box(&framed[..]));
            let rec_bytes = codec.decode(&mut buf).unwrap().unwrap();
            let rec = decode_record(&schemas.notice, &rec_bytes).unwrap();
            for f in &schemas.notice.fields {
                match f.kind {
                    FixedKind::Num => {
                        black_box(rec.num_u64(&f.name).unwrap());
                    }
                    FixedKind::Text => {
                        black_box(rec.text(&f.name).unwrap());
                    }
                }
            }
        })
    });

    let message = schemas.return_codes.core_message("0000").unwrap();
    c.bench_function("encode_6920_reply", |b| {
        b.iter(|| {
            let rec = encode_record(
                &schemas.notice_reply,
                &[
                    ("trade_code", FixedValue::Text("6920")),
                    (
                        "bank_serial",
                        FixedValue::Text(black_box("CORE20261123000000000001")),
                    ),
                    ("result", FixedValue::Text("0000")),
                    ("message", FixedValue::Text(message)),
                ],
            )
            .unwrap();
            black_box(frame_prefixed(&rec));
        })
    });
}

fn benches(c: &mut Criterion) {
    let schemas = Schemas::load_embedded().unwrap();
    platform(c, &schemas);
    core(c, &schemas);
}

criterion_group!(codec, benches);
criterion_main!(codec);
