//! Helpers for tests of withdrawals over the rail: binding a bank account with the
//! small-amount verification read from a simulator (6240, 6241), 6033 and 6110 polling.

use std::time::Duration;

use bankfep::client::{PlatformClient, Response};
use bankfep::money::format_fen;

use super::{call, ENT};

/// Bound account at another bank (bank code 102…).
pub const BOUND: &str = "6217000000000000042";
/// Its bank's super e-bank code (window key `102`).
pub const BOUND_BANK: &str = "102100099996";

/// The 6240 request fields binding `acct` to `sub` (`bank_type` `1` same bank, `2` other
/// bank; branch 中国工商银行北京分行, `EiconBankBranchId` [`BOUND_BANK`]).
pub fn bind_fields<'a>(
    sub: &'a str,
    member: &'a str,
    name: &'a str,
    acct: &'a str,
    bank_type: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SubAcctNo", sub),
        ("TranNetMemberCode", member),
        ("MemberName", name),
        ("MemberAcctNo", acct),
        ("BankType", bank_type),
        ("AcctOpenBranchName", "中国工商银行北京分行"),
        ("EiconBankBranchId", BOUND_BANK),
    ]
}

/// 6240 binding `acct` to `sub` ([`bind_fields`]); the response, unchecked.
pub async fn start_bind(
    c: &mut PlatformClient,
    sub: &str,
    member: &str,
    name: &str,
    acct: &str,
    bank_type: &str,
) -> Response {
    call(c, "6240", &bind_fields(sub, member, name, acct, bank_type)).await
}

/// 6241 confirming `acct` for `sub` with `amount_fen`; the response, unchecked.
pub async fn confirm(c: &mut PlatformClient, sub: &str, acct: &str, amount_fen: i64) -> Response {
    call(
        c,
        "6241",
        &[
            ("SubAcctNo", sub),
            ("TakeCashAcctNo", acct),
            ("AuthAmt", &format_fen(amount_fen)),
        ],
    )
    .await
}

/// Binds `acct` to `sub` (member `member`, `name`) over another bank (6240, read the
/// verification amount that arrived at `acct` through `balance`, 6241). Returns the amount.
pub async fn bind_with(
    c: &mut PlatformClient,
    sub: &str,
    member: &str,
    name: &str,
    acct: &str,
    balance: impl Fn() -> i64,
) -> i64 {
    let before = balance();
    let r = start_bind(c, sub, member, name, acct, "2").await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    let mut amount = 0;
    for _ in 0..400 {
        amount = balance() - before;
        if amount > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!((1..=50).contains(&amount), "verification {amount} fen");
    let r = confirm(c, sub, acct, amount).await;
    assert_eq!(r.return_code(), "000000", "{}", r.return_message());
    amount
}

/// A 6033 of `amt` (commission `fee`) from `sub` to `acct`, order number `O{serial}`.
#[allow(clippy::too_many_arguments)]
pub async fn withdraw(
    c: &mut PlatformClient,
    serial: &str,
    sub: &str,
    member: &str,
    name: &str,
    acct: &str,
    amt: &str,
    fee: &str,
) -> Response {
    let order = format!("O{serial}");
    withdraw_order(c, serial, sub, member, name, acct, amt, fee, &order).await
}

/// A 6033 of `amt` (commission `fee`) from `sub` of `member` / `name` to `acct`, under
/// `order`.
#[allow(clippy::too_many_arguments)]
pub async fn withdraw_order(
    c: &mut PlatformClient,
    serial: &str,
    sub: &str,
    member: &str,
    name: &str,
    acct: &str,
    amt: &str,
    fee: &str,
    order: &str,
) -> Response {
    c.call(
        ENT,
        "6033",
        serial,
        &[
            ("SubAcctNo", sub),
            ("TranNetMemberCode", member),
            ("MemberName", name),
            ("TakeCashAcctNo", acct),
            ("OutAmtAcctName", name),
            ("CashAmt", amt),
            ("TakeCashCommission", fee),
            ("OrderNo", order),
        ],
    )
    .await
    .expect("6033 call")
}

/// 6110 of the withdrawal requested with `serial`.
pub async fn status(c: &mut PlatformClient, serial: &str) -> Response {
    call(c, "6110", &[("OrigSerialNo", serial)]).await
}

/// Polls 6110 until the withdrawal requested with `serial` is no longer `6` (≤ 30 s).
pub async fn wait_done(c: &mut PlatformClient, serial: &str) -> Response {
    for _ in 0..600 {
        let r = status(c, serial).await;
        if r.field("TranStatus").as_deref() != Some("6") {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("withdrawal {serial} did not resolve");
}

/// The value of `k` in a 6110 row (empty when absent).
pub fn get(row: &[(String, String)], k: &str) -> String {
    row.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The chunk instruction id of chunk `n` (from 1) of the withdrawal with `FrontSeqNo` `seq`.
pub fn chunk_id(seq: &str, n: usize) -> String {
    format!("W{seq}{n:03}")
}
