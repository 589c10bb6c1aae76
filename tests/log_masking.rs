//! No secrets in logs (issue 4): the gateway's log output of a whole flow whose requests
//! carry account numbers, member names and id numbers contains none of them in full; the
//! rail lines show masked accounts (`6217***********0042`).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use bankfep::client::{CoreClient, PlatformClient};
use common::*;

const BOUND: &str = "6217000000000000042";
const PAYER: &str = "6217000000000000777";
const NAME: &str = "欧阳锋";
const PAYER_NAME: &str = "黄药师";
const ID_NO: &str = "110101199001011234";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A 6033 to the bound account carrying the member's name and account numbers; its return code.
async fn withdraw(c: &mut PlatformClient, sub: &str, amount: &str, order: &str) -> String {
    let fields = [
        ("SubAcctNo", sub),
        ("TranNetMemberCode", "LM001"),
        ("MemberName", NAME),
        ("TakeCashAcctNo", BOUND),
        ("OutAmtAcctName", NAME),
        ("CashAmt", amount),
        ("OrderNo", order),
    ];
    c.call(ENT, "6033", &serial("LM"), &fields)
        .await
        .expect("withdraw")
        .return_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_mask_accounts_names_and_id_numbers() {
    let dir = TempDir::new("logmask");
    let log_path = dir.join("gateway.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (pp, cp) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--platform-addr", &format!("127.0.0.1:{pp}")])
        .args(["--core-addr", &format!("127.0.0.1:{cp}")])
        .args(["--citic-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn gateway");
    let mut out = child.stdout.take().expect("stdout");
    let mut ready = [0u8; 5];
    out.read_exact(&mut ready).expect("ready line");
    assert_eq!(&ready, b"ready");

    let mut c = PlatformClient::connect(&format!("127.0.0.1:{pp}"), None, 10_000)
        .await
        .expect("connect");
    let r = c
        .call(
            ENT,
            "6248",
            &serial("LM"),
            &[
                ("FundSummaryAcctNo", MASTER),
                ("TranNetMemberCode", "LM001"),
                ("MemberName", NAME),
                ("MemberGlobalType", "1"),
                ("MemberGlobalId", ID_NO),
                ("Mobile", "13800138000"),
            ],
        )
        .await
        .expect("open");
    assert_eq!(r.return_code(), "000000");
    let sub = r.field("SubAcctNo").expect("SubAcctNo");
    let mut core = CoreClient::connect(&format!("127.0.0.1:{cp}"), None, 10_000)
        .await
        .expect("core");
    let mut n = notice("LM-CORE-1", &sub, 10_000_000, "");
    n.payer_acct = PAYER.into();
    n.payer_name = PAYER_NAME.into();
    assert_eq!(core.notify(&n).await.expect("notify").result, "0000");
    let r = c
        .call(
            ENT,
            "6240",
            &serial("LM"),
            &[
                ("SubAcctNo", &sub),
                ("TranNetMemberCode", "LM001"),
                ("MemberName", NAME),
                ("MemberAcctNo", BOUND),
                ("BankType", "2"),
                ("AcctOpenBranchName", "招商银行深圳分行"),
                ("EiconBankBranchId", "308584000013"),
            ],
        )
        .await
        .expect("bind");
    assert_eq!(r.return_code(), "000000");
    // The verification amount, as a newcomer reads it from the built-in rail's log line.
    let mut amount = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("instruction received") && l.contains("trade=\"7001\""))
        {
            amount = line
                .split("amount=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let amount = amount.expect("verification amount logged by the built-in rail");
    let r = c
        .call(
            ENT,
            "6241",
            &serial("LM"),
            &[
                ("SubAcctNo", &sub),
                ("TakeCashAcctNo", BOUND),
                ("AuthAmt", &amount),
            ],
        )
        .await
        .expect("confirm");
    assert_eq!(r.return_code(), "000000");
    assert_eq!(
        withdraw(&mut c, &sub, "60000.00", "LM-ORDER-1").await,
        "000000"
    );
    // A rejected request carrying the same data (bad amount): the log names the field only.
    assert_eq!(
        withdraw(&mut c, &sub, "1.001", "LM-ORDER-2").await,
        "YQ9993"
    );
    // Wait for both chunks to settle on the rail, then stop the gateway.
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.matches("rail simulator: settled").count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        text.contains("request answered"),
        "debug request lines are present"
    );
    assert!(text.contains("invalid field"), "the rejection is logged");
    assert!(
        text.contains("6217***********0042"),
        "the bound account appears masked"
    );
    for secret in [
        BOUND,
        PAYER,
        MASTER,
        sub.as_str(),
        NAME,
        PAYER_NAME,
        ID_NO,
        "13800138000",
    ] {
        assert!(
            !text.contains(secret),
            "the log must not contain {}",
            bankfep::mask::account(secret)
        );
    }
}

/// Issue 7, item 9: a log written to a file (not a terminal) carries no colour codes, and
/// listener addresses are plain values (`addr=127.0.0.1:…`), never `Some(…)` or `None`.
#[test]
fn a_log_written_to_a_file_is_plain_text() {
    let dir = TempDir::new("logplain");
    let log_path = dir.join("gateway.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let pp = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bankfep"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--platform-addr", &format!("127.0.0.1:{pp}")])
        .args(["--core-addr", "127.0.0.1:0"])
        .args(["--citic-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        // Colour must be off because stderr is a file, not because the caller asked.
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn gateway");
    let mut ready = [0u8; 5];
    let read = child.stdout.take().expect("stdout").read_exact(&mut ready);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("ready line");
    assert_eq!(&ready, b"ready");
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        text.contains(&format!("addr=127.0.0.1:{pp}")),
        "listener address logged as a plain value: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    assert!(
        !text.contains("Some(") && !text.contains("None"),
        "Option debug values in the log: {text}"
    );
}
