//! Writes valid §3 rail records (replies and requests, raw and 8-digit prefixed), built with
//! `bankfep::rail::wire::encode_reply` / `encode_request`, into the directory given as the
//! only argument: the seed corpus of the `rail_reply` fuzz target (see `fuzz/seed.sh`).

use std::path::PathBuf;

use bankfep::codec::schema::Schemas;
use bankfep::rail::wire::{
    encode_reply, encode_request, RailReply, RailRequest, RailStatus, TradeCode,
};
use bankfep::wire::prefixed::frame_prefixed;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: mkseeds DIR"));
    std::fs::create_dir_all(&dir).expect("create seed dir");
    let s = Schemas::load_embedded().expect("embedded schemas load");
    let reply = |trade, id: &str, status, reject: &str, message: &str| RailReply {
        trade,
        instruction_id: id.into(),
        status,
        reject_code: reject.into(),
        message: message.into(),
    };
    let replies = [
        reply(
            TradeCode::Ibps,
            "WD20261123000001-1",
            RailStatus::Settled,
            "",
            "已入账 settled",
        ),
        reply(
            TradeCode::SameBank,
            "WD20261123000002-1",
            RailStatus::Pending,
            "",
            "",
        ),
        reply(
            TradeCode::Ibps,
            "WD20261123000003-2",
            RailStatus::Failed,
            "RJ03",
            "超过单笔限额",
        ),
        reply(
            TradeCode::Query,
            "WD20261123000004-1",
            RailStatus::Failed,
            "RJ04",
            "no such instruction",
        ),
        reply(
            TradeCode::Query,
            "AUTH-6240-0001",
            RailStatus::Settled,
            "",
            "ok",
        ),
    ];
    let transfer = |trade, id: &str, bank: &str, fen, name: &str, memo: &str| RailRequest {
        trade,
        instruction_id: id.into(),
        payer_acct: "6222000000000000001".into(),
        payee_acct: "6217000011112222333".into(),
        payee_name: name.into(),
        payee_bank: bank.into(),
        amount_fen: fen,
        memo: memo.into(),
    };
    let requests = [
        transfer(
            TradeCode::Ibps,
            "WD20261123000001-1",
            "102100099996",
            4_000_000,
            "张三",
            "提现 withdrawal",
        ),
        transfer(
            TradeCode::SameBank,
            "WD20261123000002-1",
            "",
            12_000_000,
            "李四有限公司",
            "",
        ),
        transfer(
            TradeCode::Ibps,
            "AUTH-6240-0001",
            "313100000013",
            1,
            "王五",
            "小额鉴权",
        ),
        RailRequest::query("WD20261123000001-1"),
    ];
    let mut n = 0;
    let mut write = |name: String, rec: &[u8]| {
        std::fs::write(dir.join(&name), rec).expect("write seed");
        std::fs::write(dir.join(format!("{name}-prefixed")), frame_prefixed(rec))
            .expect("write seed");
        n += 2;
    };
    for (i, r) in replies.iter().enumerate() {
        write(
            format!("reply-{i}"),
            &encode_reply(&s, r).expect("reply encodes"),
        );
    }
    for (i, r) in requests.iter().enumerate() {
        write(
            format!("request-{i}"),
            &encode_request(&s, r).expect("request encodes"),
        );
    }
    println!("{n} rail seeds in {}", dir.display());
}
