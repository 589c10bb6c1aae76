//! The HTML of the e-receipt verification page (docs/protocol.md §6): the form, the receipt
//! laid out to print on half an A4 sheet, and the one "no such receipt" page. UTF-8; every
//! value from the store is HTML-escaped; the error pages echo nothing of the query.

use crate::capitals::{capitals, figures};
use crate::ledger::decide::ReceiptRow;

/// `s` with `& < > " '` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
body { margin: 0; background: #eceff1; color: #111;
  font-family: "Noto Serif CJK SC", "Source Han Serif SC", "WenQuanYi Micro Hei", "SimSun", serif; }
main { max-width: 190mm; margin: 8mm auto; }
.card { background: #fff; border: 1px solid #90a4ae; padding: 8mm 10mm; }
.sheet { position: relative; width: 190mm; min-height: 128mm; margin: 8mm auto; background: #fff;
  border: 1px solid #555; padding: 7mm 10mm 5mm; overflow: hidden; }
.bank { text-align: center; font-size: 12pt; letter-spacing: .1em; }
h1 { text-align: center; font-size: 20pt; letter-spacing: .4em; margin: 1mm 0 3mm;
  border-bottom: 3px double #b71c1c; padding-bottom: 2mm; color: #b71c1c; }
.meta { display: flex; justify-content: space-between; font-size: 10pt; margin-bottom: 2mm; }
table { width: 100%; border-collapse: collapse; font-size: 10.5pt; }
th, td { border: 1px solid #333; padding: 1.6mm 2.5mm; text-align: left; vertical-align: middle; }
th { width: 22mm; background: #f5f5f5; font-weight: normal; white-space: nowrap; }
.amount { font-size: 13pt; font-weight: bold; }
.mono { font-family: "DejaVu Sans Mono", monospace; letter-spacing: .04em; }
.seal { position: absolute; right: 14mm; bottom: 8mm; width: 38mm; height: 38mm; opacity: .82; }
.foot { margin-top: 3mm; font-size: 8.5pt; color: #444; }
label { display: block; margin: 4mm 0 1mm; }
input { width: 100%; font-size: 13pt; padding: 2mm; }
button { margin-top: 5mm; font-size: 13pt; padding: 2mm 8mm; }
.noprint { text-align: center; margin: 4mm; }
@media print { body { background: #fff; } .sheet { margin: 0; } .noprint { display: none; } }
"#;

fn html(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
}

/// The form: sub-account number or receipt number, and the print verification code; it
/// submits with `GET` to `/receipts/verify` as `sub_acct_no`, `receipt_no`, `check_code`.
pub fn form() -> String {
    html(
        "电子回单验证 Verify an e-receipt",
        r#"<main><div class="card"><h1>电子回单验证</h1>
<p>输入子账户号（或回单号）和打印校验码，查看并打印电子回单。<br>
Enter your sub-account number (or the receipt number) and the print verification code to view and print the e-receipt.</p>
<form id="verify" method="get" action="/receipts/verify" autocomplete="off">
<label for="sub_acct_no">子账户号 Sub-account number</label>
<input id="sub_acct_no" name="sub_acct_no" maxlength="32" inputmode="numeric">
<label for="receipt_no">或回单号 Or receipt number</label>
<input id="receipt_no" name="receipt_no" maxlength="32">
<label for="check_code">打印校验码 Verification code</label>
<input id="check_code" name="check_code" maxlength="16" required>
<button type="submit">查验 Verify</button>
</form></div></main>"#,
    )
}

/// The one page for every query that names no receipt (wrong code, unknown number, bad
/// input): it says nothing of what was entered.
pub fn not_found() -> String {
    html(
        "无此回单 No such receipt",
        r#"<main><div class="card"><h1>无此回单</h1>
<p>没有与所填信息相符的电子回单。No such receipt.</p>
<p><a href="/receipts/verify">重新输入 Try again</a></p></div></main>"#,
    )
}

/// The page of an address that made too many wrong attempts (`429`).
pub fn too_many() -> String {
    html(
        "稍后再试 Too many attempts",
        r#"<main><div class="card"><h1>稍后再试</h1>
<p>错误次数过多，请一分钟后再试。Too many wrong attempts; try again in a minute.</p></div></main>"#,
    )
}

/// `yyyyMMdd` as `yyyy-MM-dd` (other text unchanged).
fn date(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// A round red seal-like mark (not a real seal): `bank` around the rim, a star, the title.
fn seal(bank: &str) -> String {
    format!(
        r##"<svg class="seal" viewBox="0 0 200 200" aria-hidden="true">
<defs><path id="rim" d="M 100 100 m -72 0 a 72 72 0 1 1 144 0"/></defs>
<circle cx="100" cy="100" r="92" fill="none" stroke="#c62828" stroke-width="7"/>
<text fill="#c62828" font-size="21" letter-spacing="2"><textPath href="#rim" startOffset="50%" text-anchor="middle">{}</textPath></text>
<polygon fill="#c62828" points="100,62 109,89 137,89 114,106 123,133 100,116 77,133 86,106 63,89 91,89"/>
<text x="100" y="162" fill="#c62828" font-size="19" text-anchor="middle">电子回单专用章</text>
</svg>"##,
        escape(bank)
    )
}

/// The receipt laid out to print (half an A4 sheet): bank and title, receipt number,
/// booking date, payer and payee account (in full) and name, the amount in figures and in
/// Chinese capitals ([`crate::capitals`]), summary, `FrontSeqNo`, verification code, seal.
pub fn receipt(bank: &str, r: &ReceiptRow) -> String {
    let words = capitals(r.amount).unwrap_or_default();
    let body = format!(
        r#"<div class="sheet" id="receipt">
<div class="bank">{bank}</div>
<h1>电子回单</h1>
<div class="meta"><span>回单号 Receipt No.: <b class="mono" id="receipt-no">{no}</b></span><span>记账日期 Booking date: <b id="booking-date">{date}</b></span></div>
<table>
<tr><th rowspan="2">付款人<br>Payer</th><td>账号 <span class="mono" id="payer-acct">{payer_acct}</span></td></tr>
<tr><td>户名 <span id="payer-name">{payer_name}</span></td></tr>
<tr><th rowspan="2">收款人<br>Payee</th><td>账号 <span class="mono" id="payee-acct">{payee_acct}</span></td></tr>
<tr><td>户名 <span id="payee-name">{payee_name}</span></td></tr>
<tr><th>金额(小写)<br>Amount</th><td class="amount">CNY <span class="mono" id="amount-figures">{figures}</span></td></tr>
<tr><th>金额(大写)<br>In words</th><td class="amount">人民币 <span id="amount-capitals">{words}</span></td></tr>
<tr><th>摘要<br>Summary</th><td id="summary">{summary}</td></tr>
<tr><th>交易流水号<br>FrontSeqNo</th><td class="mono" id="front-seq-no">{seq}</td></tr>
<tr><th>验证码<br>Check code</th><td class="mono" id="check-code">{code}</td></tr>
</table>
<div class="foot">本回单经校验码验证，可重复打印。This e-receipt was verified by its code and may be printed again.</div>
{seal}
</div>
<div class="noprint"><button onclick="window.print()">打印 Print</button> <a href="/receipts/verify">返回 Back</a></div>"#,
        bank = escape(bank),
        no = escape(&r.receipt_no),
        date = escape(&date(&r.booking_date)),
        payer_acct = escape(&r.payer_acct),
        payer_name = escape(&r.payer_name),
        payee_acct = escape(&r.payee_acct),
        payee_name = escape(&r.payee_name),
        figures = figures(r.amount),
        words = escape(&words),
        summary = escape(&r.summary),
        seq = escape(&r.front_seq_no),
        code = escape(&r.check_code),
        seal = seal(bank),
    );
    html(&format!("电子回单 {}", escape(&r.receipt_no)), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_value_is_escaped() {
        let r = ReceiptRow {
            front_seq_no: "F<1>".into(),
            master_id: 1,
            receipt_no: "R&1".into(),
            check_code: "C\"1".into(),
            booking_date: "20261123".into(),
            payer_acct: "<a>".into(),
            payer_name: "<script>alert(1)</script>".into(),
            payee_acct: "'x'".into(),
            payee_name: "张三".into(),
            amount: 123_450,
            summary: "货款 & <b>".into(),
        };
        let page = receipt("B<ank>", &r);
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<a>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("1,234.50"));
        assert!(page.contains("壹仟贰佰叁拾肆元伍角整"));
        assert!(page.contains("2026-11-23"));
        assert!(page.contains("张三"));
        assert!(page.contains("B&lt;ank&gt;"));
    }
}
