//! Shared harness: a gateway started in-process on port 0 with a fixed clock, a fixed
//! receipt key and a fresh store, plus helpers that speak docs/protocol.md through the
//! independent client in `bankfep::client`.
#![allow(dead_code)]

pub mod bank;
pub mod hooked;
pub mod pg;
pub mod proc;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bankfep::client::{CoreClient, Notice, PlatformClient, Response};
use bankfep::config::{Config, DEMO_ENTERPRISE, DEMO_MASTER_ACCOUNT};
use bankfep::server::Running;

/// The demo enterprise code.
pub const ENT: &str = DEMO_ENTERPRISE;
/// The demo master account.
pub const MASTER: &str = DEMO_MASTER_ACCOUNT;
/// The fixed business clock of tests and fixtures.
pub const CLOCK: &str = "2026-11-23T10:00:00";
/// The fixed receipt key of tests and fixtures (hex).
pub const RECEIPT_KEY_HEX: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A fresh, unique directory under the system temp dir, named `bankfep-{name}-...`.
///
/// Nothing removes it by itself: hand it to a gateway ([`test_config`], then [`start_with`]:
/// the [`Gw`] removes its data directory when dropped) or use [`TempDir::new`] instead.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "bankfep-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A temporary directory removed (with everything in it) when dropped. Tests that stop
/// and restart a gateway on the same directory keep one `TempDir` for the whole test.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    remove: bool,
}

impl TempDir {
    /// Creates a fresh directory, as [`temp_dir`].
    pub fn new(name: &str) -> TempDir {
        TempDir {
            path: temp_dir(name),
            remove: true,
        }
    }

    /// Takes charge of removing `dir`, but only if it is one of [`temp_dir`]'s (directly
    /// under the system temp dir, named `bankfep-...`); any other path is never removed.
    pub fn adopt(dir: PathBuf) -> TempDir {
        let remove = dir.parent() == Some(std::env::temp_dir().as_path())
            && dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bankfep-"));
        TempDir { path: dir, remove }
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The configuration of a test gateway: port 0 everywhere, fixed clock and key.
pub fn test_config(dir: PathBuf) -> Config {
    Config {
        data_dir: dir,
        platform_addr: Some("127.0.0.1:0".into()),
        core_addr: Some("127.0.0.1:0".into()),
        citic_addr: Some("127.0.0.1:0".into()),
        http_addr: Some("127.0.0.1:0".into()),
        clock: Some(CLOCK.into()),
        receipt_key_hex: Some(RECEIPT_KEY_HEX.into()),
        ..Config::default()
    }
}

/// A running test gateway. Dropping it removes its data directory when that is a
/// [`temp_dir`] (after `running`, which is dropped first).
pub struct Gw {
    pub running: Running,
    pub platform: String,
    pub core: String,
    pub dir: TempDir,
}

/// Starts a gateway with `cfg`.
pub async fn start_with(cfg: Config) -> Gw {
    let dir = TempDir::adopt(cfg.data_dir.clone());
    let running = bankfep::server::start(cfg).await.expect("gateway starts");
    let platform = running.platform_addr.expect("platform addr").to_string();
    let core = running.core_addr.expect("core addr").to_string();
    Gw {
        running,
        platform,
        core,
        dir,
    }
}

/// Starts a gateway with `cfg` over `store` (a [`hooked::HookedStore`], say), opened on
/// `cfg.data_dir`.
pub async fn start_with_store(cfg: Config, store: Box<dyn bankfep::store::Store>) -> Gw {
    let dir = TempDir::adopt(cfg.data_dir.clone());
    let running = bankfep::server::start_with_store(cfg, store)
        .await
        .expect("gateway starts");
    let platform = running.platform_addr.expect("platform addr").to_string();
    let core = running.core_addr.expect("core addr").to_string();
    Gw {
        running,
        platform,
        core,
        dir,
    }
}

/// Starts a gateway on a fresh store.
pub async fn start(name: &str) -> Gw {
    start_with(test_config(temp_dir(name))).await
}

impl Gw {
    pub async fn client(&self) -> PlatformClient {
        PlatformClient::connect(&self.platform, None, 10_000)
            .await
            .expect("platform connect")
    }
    pub async fn core_client(&self) -> CoreClient {
        CoreClient::connect(&self.core, None, 10_000)
            .await
            .expect("core connect")
    }
    /// Asserts the ledger invariants through the writer and returns the state.
    pub async fn assert_invariants(&self) -> bankfep::ledger::LedgerState {
        let (state, check) = self.running.writer.snapshot().await.expect("snapshot");
        assert_eq!(check, Ok(()), "ledger invariants");
        state
    }
}

/// Unique requester serials (≤ 20 characters).
pub fn serial(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{:08}", N.fetch_add(1, Ordering::Relaxed))
}

/// Calls `tx` with a fresh serial.
pub async fn call(c: &mut PlatformClient, tx: &str, fields: &[(&str, &str)]) -> Response {
    c.call(ENT, tx, &serial("T"), fields)
        .await
        .expect("platform call")
}

/// Opens a sub-account for `member` under the demo master account; returns `SubAcctNo`.
pub async fn open_sub(c: &mut PlatformClient, member: &str, name: &str) -> String {
    let r = call(
        c,
        "6248",
        &[
            ("FundSummaryAcctNo", MASTER),
            ("TranNetMemberCode", member),
            ("MemberName", name),
            ("MemberGlobalType", "73"),
            ("MemberGlobalId", &format!("91110000{member:0>10}")[..18]),
        ],
    )
    .await;
    assert_eq!(
        r.return_code(),
        "000000",
        "open {member}: {}",
        r.return_message()
    );
    let no = r.field("SubAcctNo").expect("SubAcctNo");
    assert_eq!(no.len(), 16);
    no
}

/// A 6920 notice with defaults (IBPS, 20261123 100000, payer 6217000000000000001 张三).
pub fn notice(bank_serial: &str, payee: &str, amount_fen: u64, memo: &str) -> Notice {
    Notice {
        bank_serial: bank_serial.into(),
        channel: "IBPS".into(),
        acct_date: "20261123".into(),
        time: "093000".into(),
        payee: payee.into(),
        amount_fen,
        payer_acct: "6217000000000000001".into(),
        payer_name: "张三".into(),
        payer_bank: "102100099996".into(),
        memo: memo.into(),
    }
}

/// Credits `amount_fen` to `payee` through the core link; asserts `0000`.
pub async fn fund(core: &mut CoreClient, bank_serial: &str, payee: &str, amount_fen: u64) {
    let r = core
        .notify(&notice(bank_serial, payee, amount_fen, ""))
        .await
        .expect("notify");
    assert_eq!(r.result, "0000", "fund {bank_serial}: {}", r.message);
    assert_eq!(r.bank_serial, bank_serial);
}

/// (TotalBalance, FrozenAmt, AcctAvailBal) of a sub-account as the wire shows them.
pub async fn balance(c: &mut PlatformClient, sub: &str) -> (String, String, String) {
    let r = call(c, "6010", &[("SubAcctNo", sub)]).await;
    assert_eq!(r.return_code(), "000000", "balance: {}", r.return_message());
    (
        r.field("TotalBalance").expect("TotalBalance"),
        r.field("FrozenAmt").expect("FrozenAmt"),
        r.field("AcctAvailBal").expect("AcctAvailBal"),
    )
}

/// A forced transfer; returns the response.
pub async fn transfer(
    c: &mut PlatformClient,
    from: (&str, &str),
    to: (&str, &str),
    amt: &str,
    fee: &str,
    order: &str,
) -> Response {
    call(
        c,
        "6034",
        &[
            ("OutSubAcctNo", from.0),
            ("OutMemberCode", from.1),
            ("InSubAcctNo", to.0),
            ("InMemberCode", to.1),
            ("TranAmt", amt),
            ("TranFee", fee),
            ("OrderNo", order),
            ("Remark", "货款"),
        ],
    )
    .await
}
