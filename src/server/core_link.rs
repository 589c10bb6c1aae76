//! The bank-core link handler (docs/protocol.md §2): 8-digit length-prefixed 6920 notices, one
//! 100-byte reply each, in order. A notice is booked once per bank serial; the core retries
//! until it reads `0000`. A prefix that is not 8 digits, or a length beyond the record
//! maximum, is answered `1001` and the connection closed (the framing cannot be trusted);
//! any other bad record is answered `1001` and the connection stays open.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::conn::{next_frame, ReadOutcome};
use super::Shared;
use crate::codec::charset::Charset;
use crate::codec::fixed::{decode_record, encode_record, FixedRecord, FixedValue};
use crate::codes::CoreResult;
use crate::ledger::{Command, NoticeReq};
use crate::wire::prefixed::{frame_prefixed, PrefixError, PrefixedCodec};
use crate::writer::Job;

/// Longest record accepted on the core link, bytes (a 6920 notice is 390).
pub const CORE_RECORD_MAX: usize = 4096;

/// Serves one core connection until it closes, times out, breaks framing, or shutdown.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, stream: S) {
    handle_hop(shared, stream, false).await
}

/// As [`handle`]; `internal`: the connection comes from another instance over the internal
/// link (docs/protocol.md §5), so its notices are served here and never forwarded again.
pub async fn handle_hop<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut stream: S,
    internal: bool,
) {
    let mut buf = BytesMut::with_capacity(1024);
    let mut codec = PrefixedCodec {
        record_max: CORE_RECORD_MAX,
    };
    loop {
        match next_frame(&mut stream, &mut buf, &mut codec, &shared).await {
            ReadOutcome::Frame(rec) => {
                let reply =
                    crate::metrics::core_request(&rec, respond_to(&shared, &rec, internal)).await;
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
            ReadOutcome::Bad(PrefixError::Io(_)) | ReadOutcome::Closed => return,
            ReadOutcome::Bad(e) => {
                tracing::debug!(error = %e, "untrusted core frame; answered 1001 and closed");
                let _ = stream
                    .write_all(&reply_frame(&shared, "", CoreResult::Malformed))
                    .await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// The prefixed 100-byte reply record: trade code, bank serial, result, message.
fn reply_frame(shared: &Shared, bank_serial: &str, result: CoreResult) -> Vec<u8> {
    let message = shared
        .schemas
        .return_codes
        .core_message(result.as_str())
        .unwrap_or("");
    let record = encode_record(
        &shared.schemas.notice_reply,
        &[
            ("trade_code", FixedValue::Text("6920")),
            ("bank_serial", FixedValue::Text(bank_serial)),
            ("result", FixedValue::Text(result.as_str())),
            ("message", FixedValue::Text(message)),
        ],
    )
    .or_else(|_| {
        encode_record(
            &shared.schemas.notice_reply,
            &[
                ("trade_code", FixedValue::Text("6920")),
                ("result", FixedValue::Text(result.as_str())),
            ],
        )
    })
    .unwrap_or_default();
    frame_prefixed(&record)
}

/// The bank serial of a record, when it can be read (echoed "also on errors", §2): the
/// bytes at its fixed position, whatever the trade code (a record with a wrong trade code
/// still carries a readable serial, and the core correlates replies by it).
fn serial_of(rec: &[u8]) -> String {
    match rec.get(4..36) {
        Some(s) => encoding_rs::GBK
            .decode_without_bom_handling_and_without_replacement(s)
            .map(|t| t.trim_end().to_string())
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// A `yyyyMMdd` accounting date that exists in the calendar, year 0001-9999 (as the
/// platform link's `parse_date`): chrono alone would also accept year 0000.
fn valid_date(d: u64) -> bool {
    let (y, m, day) = (
        (d / 10_000) as i32,
        ((d / 100) % 100) as u32,
        (d % 100) as u32,
    );
    y >= 1 && chrono::NaiveDate::from_ymd_opt(y, m, day).is_some()
}

fn valid_time(t: &str) -> bool {
    t.len() == 6
        && t.bytes().all(|b| b.is_ascii_digit())
        && chrono::NaiveTime::parse_from_str(t, "%H%M%S").is_ok()
}

/// Parses a 390-byte 6920 record into a notice; `None` = malformed (`1001`).
///
/// Every text field must be GBK, not GB18030: the WHATWG GBK decoder also reads GB18030
/// four-byte sequences (e.g. `94 39 FC 36`), which no GBK reply could carry later. Such a
/// notice is refused `1001` and books nothing (docs/protocol.md §2; issue 7, item 3), so
/// no stored payer name or memo can break a later 6050/6072.
pub fn parse_notice(r: &FixedRecord<'_>) -> Option<NoticeReq> {
    let text = |n: &str| {
        r.text(n)
            .ok()
            .filter(|s| crate::codec::charset::encoded_len(s, Charset::Gbk).is_ok())
    };
    if text("trade_code")? != "6920" || text("currency")? != "RMB" {
        return None;
    }
    let channel = text("channel")?;
    if !["IBPS", "BEPS", "HVPS", "INTR"].contains(&channel.as_str()) {
        return None;
    }
    let acct_date = r
        .num_u64("accounting_date")
        .ok()
        .filter(|d| valid_date(*d))?;
    let time = text("time").filter(|t| valid_time(t))?;
    let amount = i64::try_from(r.num_u64("amount").ok()?).ok()?;
    let bank_serial = text("bank_serial").filter(|s| !s.trim().is_empty())?;
    let payee = text("payee_account").filter(|s| !s.trim().is_empty())?;
    Some(NoticeReq {
        bank_serial: bank_serial.trim().to_string(),
        channel,
        acct_date: u32::try_from(acct_date).ok()?,
        time,
        payee: payee.trim().to_string(),
        amount,
        payer_acct: text("payer_account")?.trim().to_string(),
        payer_name: text("payer_name")?.trim().to_string(),
        payer_bank: text("payer_bank_code")?.trim().to_string(),
        memo: text("memo")?.trim().to_string(),
    })
}

async fn respond_to(shared: &Shared, rec: &Bytes, internal: bool) -> Vec<u8> {
    let serial = serial_of(rec);
    let notice = decode_record(&shared.schemas.notice, rec)
        .ok()
        .and_then(|r| parse_notice(&r));
    let Some(notice) = notice else {
        tracing::debug!(len = rec.len(), "malformed 6920 record; answered 1001");
        return reply_frame(shared, &serial, CoreResult::Malformed);
    };
    if let Some(c) = shared.cluster.as_ref().filter(|_| !internal) {
        if let Some(tenant) = c.enterprise_of_account(&notice.payee).await {
            match c.route(&tenant) {
                crate::cluster::Route::Local => {}
                crate::cluster::Route::Busy => {
                    return reply_frame(shared, &serial, CoreResult::Busy)
                }
                crate::cluster::Route::Forward(addr) => {
                    let frame = frame_prefixed(rec);
                    return match c.forward(addr, crate::cluster::LINK_CORE, &frame).await {
                        Ok(reply) => reply,
                        Err(e) => {
                            // The core retries; the bank serial books it once (§2).
                            tracing::warn!(%addr, error = %e, "forwarding a notice to its owner failed");
                            reply_frame(shared, &serial, CoreResult::Busy)
                        }
                    };
                }
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    if shared
        .writer
        .try_submit(Job::Notice(Box::new(Command::Notice(notice)), tx))
        .is_err()
    {
        return reply_frame(shared, &serial, CoreResult::Busy);
    }
    let wait = Duration::from_millis(shared.config.limits.reply_wait_ms);
    let result = match tokio::time::timeout(wait, rx).await {
        Ok(Ok(r)) => r,
        _ => CoreResult::Busy,
    };
    reply_frame(shared, &serial, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::schema::Schemas;

    fn notice(date: &str) -> Vec<u8> {
        crate::client::build_notice(
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
        .expect("notice builds")
    }

    #[test]
    fn accounting_dates() {
        let s = Schemas::load_embedded().expect("schemas");
        let parse = |date: &str| {
            let framed = notice(date);
            let rec = decode_record(&s.notice, &framed[8..]).expect("390 bytes");
            parse_notice(&rec).map(|n| n.acct_date)
        };
        assert_eq!(parse("20261123"), Some(20_261_123));
        assert_eq!(parse("00010101"), Some(10_101));
        assert_eq!(parse("20240229"), Some(20_240_229));
        assert_eq!(parse("20230229"), None);
        assert_eq!(parse("20261301"), None);
        // Found by the notice_6920 fuzz target (fuzz/regressions/notice_6920/): year 0000
        // passed chrono's calendar check and was booked with accounting date 101.
        assert_eq!(parse("00000101"), None);
        assert_eq!(parse("00001104"), None);
    }
}
