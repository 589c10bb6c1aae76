//! Gateway configuration: the defaults of docs/protocol.md §4, an optional TOML file
//! (`serve --config FILE`), and command-line flags, which override both. Every key is
//! described in docs/configuration.md.
//!
//! Rules of the file: an unknown key is an error naming the key and the file; a relative
//! path in the file (`data_dir`, certificates, keys, CAs) is relative to the file's folder,
//! not to the current directory (a path given as a command-line flag stays relative to the
//! current directory).
//!
//! Example file (every key optional; `bankfep dev-certs DIR` writes a working TLS one):
//! ```toml
//! data_dir = "./data"
//! platform_addr = "127.0.0.1:7072"
//! core_addr = "127.0.0.1:7073"
//! http_addr = "127.0.0.1:7080"        # receipt page, /metrics, /healthz, /readyz
//! log_requests = true                 # one info line per request
//!
//! [[tenants]]
//! enterprise_code = "DEMOPLATFORM00000001"
//! master_accounts = ["6222000000000000001"]
//!
//! [platform_tls]
//! addr = "127.0.0.1:7443"
//! cert = "server.pem"                 # relative to this file's folder
//! key = "server.key"
//! client_ca = "ca.pem"                 # require client certificates (mutual TLS)
//! [[platform_tls.clients]]            # which enterprise codes each certificate may use
//! identity = "DEMOPLATFORM00000001"   # the certificate's subject CN
//! enterprises = ["DEMOPLATFORM00000001"]
//!
//! [rail]
//! addr = "10.0.0.5:7001"              # absent: the built-in simulator
//! tls_ca = "rail-ca.pem"              # verify the rail's server certificate
//! expense_account = "6222000000000009999"
//! first_query_ms = 1000               # docs/protocol.md §3 query schedule
//! backoff_max_ms = 30000
//! rj05_retry_ms = 60000               # §3.1: resend after RJ05, doubling ...
//! rj05_backoff_max_ms = 600000        # ... up to 10 min
//! files_dir = "rail-files"            # §3.2 day files (default DATA_DIR/rail-files)
//! [[rail.maintenance]]                # §3.1 maintenance window (reloaded on SIGHUP)
//! bank = "313"                        # payee bank code's first 3 digits, "self" or "all"
//! start = "2026-11-24T23:55"          # business time, included
//! end = "2026-11-25T02:05"            # excluded
//!
//! [http]
//! operator_token_file = "operator.token"  # /ops/ routes (statements, reconcile) need it
//!
//! [reconcile]
//! daily_at = "06:00"                  # business time: reconcile the previous date
//!
//! [limits]
//! body_bytes_max = 1048576
//! connections_max = 1024
//! connections_per_peer_max = 256
//! read_idle_ms = 60000
//! frame_deadline_ms = 30000
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::writer::WriterConfig;

/// The demo tenant's enterprise code (docs/protocol.md §4).
pub const DEMO_ENTERPRISE: &str = "DEMOPLATFORM00000001";
/// The demo tenant's master account (docs/protocol.md §4).
pub const DEMO_MASTER_ACCOUNT: &str = "6222000000000000001";

/// The demo tenant's CITIC `<userName>` (docs/citic.md).
pub const DEMO_CITIC_USER: &str = "DEMOCITICUSER";

/// A platform (enterprise) and its master accounts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Enterprise code (header field 5, ≤ 20 bytes).
    pub enterprise_code: String,
    /// Master account numbers (`FundSummaryAcctNo`, ≤ 32 bytes each).
    pub master_accounts: Vec<String>,
    /// CITIC `<userName>`s this tenant answers to on the CITIC listener (docs/citic.md;
    /// 1..=30 bytes each, unique across tenants). Empty: none.
    #[serde(default)]
    pub citic_users: Vec<String>,
}

/// A client certificate identity and the enterprise codes it may use (issue 4, docs/protocol.md
/// §1.4 `YQ9985`: "not the one bound to this TLS client certificate").
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsClient {
    /// The certificate's subject common name (CN).
    pub identity: String,
    /// Enterprise codes (header field 5) this certificate may use; on the core link, leave
    /// empty: listing the identity is what admits it.
    #[serde(default)]
    pub enterprises: Vec<String>,
}

/// A TLS listener: address, PEM certificate chain and key, optional client CA (mutual TLS).
///
/// With `client_ca`, clients must present a certificate that CA signed. On the platform link
/// each certificate may then use only the enterprise codes `clients` maps its CN to (when
/// `clients` is empty: only the enterprise code equal to its CN); any other code gets
/// `YQ9985` and changes nothing. On the core link, a non-empty `clients` admits only the
/// listed CNs (others are disconnected after the handshake).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
    /// PEM CA file; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
    /// Certificate identities and what each may use (see the type's docs).
    #[serde(default)]
    pub clients: Vec<TlsClient>,
}

/// The payment rail (docs/protocol.md §3): where it is and how the gateway talks to it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RailConfig {
    /// `HOST:PORT` of an external rail; `None` starts the built-in simulator (§4).
    pub addr: Option<String>,
    /// PEM CA that signed the rail's server certificate; set to talk TLS to the rail.
    pub tls_ca: Option<PathBuf>,
    /// Server name to verify on the rail's certificate (default `localhost`).
    pub tls_server_name: String,
    /// Client certificate and key (PEM) the gateway presents to the rail, if it asks.
    pub client_cert: Option<PathBuf>,
    /// Key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// The bank's expense account that pays small-amount verifications (§3).
    pub expense_account: String,
    /// Most concurrent rail calls.
    pub inflight_max: usize,
    /// Connect deadline, ms.
    pub connect_timeout_ms: u64,
    /// Reply deadline after a request was written, ms.
    pub read_timeout_ms: u64,
    /// First `7003` of an unknown instruction after this, ms (§3: within 2,000).
    pub first_query_ms: u64,
    /// Second query after this, doubling, ms.
    pub backoff_start_ms: u64,
    /// Longest wait between queries, ms (§3: at most 30,000).
    pub backoff_max_ms: u64,
    /// Most chunks one withdrawal may be split into (docs/protocol.md §3, default 200: at
    /// most 200 × 49,999.99 = 9,999,998.00 CNY over the super e-bank); a withdrawal needing
    /// more is refused with `E10009`. At least 1.
    pub max_chunks: u32,
    /// Maintenance windows (docs/protocol.md §3.1): instructions to a bank in a window are
    /// held and sent with the same id when it ends. Reloaded on SIGHUP.
    pub maintenance: Vec<crate::rail::calendar::WindowConfig>,
    /// After an `RJ05` (a window the calendar did not know), the same id is sent again after
    /// this, ms (§3.1: 60,000), doubling after each further `RJ05`.
    pub rj05_retry_ms: u64,
    /// Longest wait between sends after `RJ05`, ms (§3.1: at most 600,000).
    pub rj05_backoff_max_ms: u64,
    /// Folder of the rail's day files (§3.2): the built-in simulator writes them there and
    /// `bankfep reconcile` reads them. Default `DATA_DIR/rail-files`; `--rail-files`.
    pub files_dir: Option<PathBuf>,
}

impl Default for RailConfig {
    fn default() -> Self {
        RailConfig {
            addr: None,
            tls_ca: None,
            tls_server_name: "localhost".into(),
            client_cert: None,
            client_key: None,
            expense_account: "6222000000000009999".into(),
            inflight_max: 16,
            connect_timeout_ms: 3_000,
            read_timeout_ms: 10_000,
            first_query_ms: 1_000,
            backoff_start_ms: 1_000,
            backoff_max_ms: 30_000,
            max_chunks: 200,
            maintenance: Vec::new(),
            rj05_retry_ms: 60_000,
            rj05_backoff_max_ms: 600_000,
            files_dir: None,
        }
    }
}

/// Resource limits, each with a safe default.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest A001 body accepted, bytes (docs/protocol.md §1.1: default 1 MiB, itself allowed).
    pub body_bytes_max: usize,
    /// Open connections per listener, beyond which new ones are closed at once.
    pub connections_max: usize,
    /// Open connections per peer IP address per listener, beyond which new ones are closed.
    pub connections_per_peer_max: usize,
    /// A connection idle between frames this long is closed, ms.
    pub read_idle_ms: u64,
    /// A frame whose first byte arrived must be complete within this, ms.
    pub frame_deadline_ms: u64,
    /// TLS handshake deadline, ms.
    pub tls_handshake_ms: u64,
    /// Deepest XML nesting accepted.
    pub xml_depth_max: usize,
    /// Most XML elements in one body.
    pub xml_elements_max: usize,
    /// Longest wait for the writer's answer before replying `YQ9999`, ms.
    pub reply_wait_ms: u64,
    /// On SIGTERM, longest wait for in-flight requests, ms.
    pub drain_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 1_048_576,
            connections_max: 1024,
            connections_per_peer_max: 256,
            read_idle_ms: 60_000,
            frame_deadline_ms: 30_000,
            tls_handshake_ms: 10_000,
            xml_depth_max: 8,
            xml_elements_max: 4096,
            reply_wait_ms: 30_000,
            drain_ms: 10_000,
        }
    }
}

/// The operator area of the HTTP listener (`[http]`, docs/operations.md "The operator
/// area"): `/ops/…` routes served only with `Authorization: Bearer TOKEN`. Without a token
/// the routes do not exist (404, like an unknown path).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// The operator bearer token itself (at least [`OPERATOR_TOKEN_MIN`] printable ASCII
    /// characters). Prefer `operator_token_file`: a file readable by the service alone.
    pub operator_token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored); also
    /// `serve --operator-token-file`. Relative to the configuration file's folder.
    pub operator_token_file: Option<PathBuf>,
}

impl std::fmt::Debug for HttpOptions {
    /// The token is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "***"),
            )
            .field("operator_token_file", &self.operator_token_file)
            .finish()
    }
}

/// Shortest operator token accepted, characters.
pub const OPERATOR_TOKEN_MIN: usize = 16;

/// Checks an operator token: at least [`OPERATOR_TOKEN_MIN`] characters, printable ASCII
/// without spaces (it travels in an HTTP header). Errors name the rule, never the token.
pub fn check_operator_token(t: &str) -> Result<(), String> {
    if t.len() < OPERATOR_TOKEN_MIN || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the operator token must be at least {OPERATOR_TOKEN_MIN} printable ASCII characters \
             without spaces (got {} characters)",
            t.chars().count()
        ));
    }
    Ok(())
}

/// Daily reconciliation inside `serve` (`[reconcile]`, docs/operations.md "The daily
/// reconciliation").
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// `HH:MM` in business time at which `serve` reconciles the previous business date
    /// against the rail's day files (`rail.files_dir`); absent: no daily run.
    pub daily_at: Option<String>,
}

impl ReconcileConfig {
    /// `daily_at` as a time of day; `Ok(None)` when absent. Errors name the key.
    pub fn daily_time(&self) -> Result<Option<chrono::NaiveTime>, String> {
        match &self.daily_at {
            None => Ok(None),
            Some(t) => chrono::NaiveTime::parse_from_str(t, "%H:%M")
                .ok()
                .filter(|_| t.len() == 5)
                .map(Some)
                .ok_or_else(|| format!("reconcile.daily_at {t:?} must be HH:MM (00:00..23:59)")),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the embedded store (default `./data`, relative to the current directory;
    /// in a file, relative to the file's folder).
    pub data_dir: PathBuf,
    /// Platform link, plain TCP (`None`: disabled).
    pub platform_addr: Option<String>,
    /// Bank-core link, plain TCP (`None`: disabled).
    pub core_addr: Option<String>,
    /// CITIC dialect listener, HTTP (docs/citic.md; `None`: disabled).
    pub citic_addr: Option<String>,
    /// Platform link over TLS.
    pub platform_tls: Option<TlsListener>,
    /// Bank-core link over TLS.
    pub core_tls: Option<TlsListener>,
    /// Tenants provisioned at start (idempotent).
    pub tenants: Vec<Tenant>,
    /// The payment rail.
    pub rail: RailConfig,
    /// Limits.
    pub limits: Limits,
    /// Writer batch size.
    pub batch_max: usize,
    /// Writer queue capacity.
    pub queue_max: usize,
    /// Business time zone, seconds east of UTC (default 28,800: China Standard Time).
    pub utc_offset_seconds: i32,
    /// Fixed business clock `yyyy-MM-ddTHH:mm:ss` (tests and fixture replay only); it must
    /// name a real date and time.
    pub clock: Option<String>,
    /// With `clock`: the clock starts there and runs this many times faster than real time
    /// (tests and demonstrations of maintenance windows); absent, the clock stands still.
    pub clock_speed: Option<u32>,
    /// Receipt MAC secret as exactly 64 hex digits (32 bytes); when absent a random one is
    /// created and stored on first start.
    pub receipt_key_hex: Option<String>,
    /// PostgreSQL connection string (`postgres://USER@HOST:PORT/DB`); when set, the store is
    /// that database instead of the embedded one under `data_dir` (docs/configuration.md
    /// "Stores"). Also `--database-url` and the environment variable `BANKFEP_DATABASE_URL`.
    pub database_url: Option<String>,
    /// The internal link between instances sharing `database_url` (docs/protocol.md §5),
    /// `HOST:PORT`, port 0 allowed; the bound address is advertised through the database.
    /// Default `127.0.0.1:0`. Bind it to an address only the instances reach.
    pub cluster_addr: Option<String>,
    /// How long a tenant lease lasts without renewal, ms (default 10,000): a dead
    /// instance's tenants are taken over after at most this long.
    pub cluster_lease_ms: u64,
    /// HTTP listener (docs/protocol.md §6: receipt page, metrics, health), `HOST:PORT`;
    /// default `127.0.0.1:7080`; `None` (the file cannot say so; tests may) disables it.
    pub http_addr: Option<String>,
    /// One `info` line per platform request and core notice (default `true`); `false` for
    /// benchmarks.
    pub log_requests: bool,
    /// The bank's name at the top of a printed e-receipt (docs/protocol.md §6).
    pub bank_name: String,
    /// The branch name the CITIC dialect writes in DLSUBDTL `MNGNODE` (docs/citic.md;
    /// default `bankfep`).
    pub citic_branch_name: String,
    /// The HTTP listener's operator area (`[http]`).
    pub http: HttpOptions,
    /// The daily reconciliation inside `serve` (`[reconcile]`).
    pub reconcile: ReconcileConfig,
}

impl Default for Config {
    fn default() -> Self {
        let w = WriterConfig::default();
        Config {
            data_dir: PathBuf::from("./data"),
            platform_addr: Some("127.0.0.1:7072".into()),
            core_addr: Some("127.0.0.1:7073".into()),
            citic_addr: Some("127.0.0.1:6789".into()),
            platform_tls: None,
            core_tls: None,
            tenants: vec![Tenant {
                enterprise_code: DEMO_ENTERPRISE.into(),
                master_accounts: vec![DEMO_MASTER_ACCOUNT.into()],
                citic_users: vec![DEMO_CITIC_USER.into()],
            }],
            limits: Limits::default(),
            rail: RailConfig::default(),
            batch_max: w.batch_max,
            queue_max: w.queue_max,
            utc_offset_seconds: 8 * 3600,
            clock: None,
            clock_speed: None,
            receipt_key_hex: None,
            database_url: None,
            cluster_addr: None,
            cluster_lease_ms: 10_000,
            http_addr: Some("127.0.0.1:7080".into()),
            log_requests: true,
            bank_name: "示范银行 Demo Bank".into(),
            citic_branch_name: "bankfep".into(),
            http: HttpOptions::default(),
            reconcile: ReconcileConfig::default(),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("invalid configuration {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value out of range (from [`Config::validate`]; the message names the key).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A value out of range in a file (from [`Config::from_file`]).
    #[error("invalid configuration {path}: {message}")]
    InvalidIn {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Length of the receipt MAC secret, bytes (HMAC-SHA-256 key, `receipt_key_hex`).
pub const RECEIPT_KEY_BYTES: usize = 32;

/// `path` as seen from `base` (the configuration file's folder): absolute paths unchanged.
fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

fn resolve_opt(base: &Path, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        resolve(base, p);
    }
}

fn resolve_listener(base: &Path, l: &mut Option<TlsListener>) {
    if let Some(l) = l {
        resolve(base, &mut l.cert);
        resolve(base, &mut l.key);
        resolve_opt(base, &mut l.client_ca);
    }
}

impl Config {
    /// Reads a TOML file over the defaults, then [`Config::validate`]s it.
    ///
    /// Relative paths in the file (`data_dir`, `platform_tls`/`core_tls` `cert`, `key`,
    /// `client_ca`, `rail` `tls_ca`, `client_cert`, `client_key`) are taken relative to the
    /// file's folder; absolute ones are unchanged; the default `data_dir` (key absent) stays
    /// `./data` in the current directory.
    ///
    /// Errors: [`ConfigError::Read`] (unreadable file), [`ConfigError::Parse`] naming the
    /// file and, for an unknown or mistyped key, the key, [`ConfigError::InvalidIn`] (a
    /// value out of range, naming the file and the key).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut cfg: Config = toml::from_str(&text).map_err(parse_err)?;
        // Parsed a second time only to tell an explicit `data_dir` from the default one.
        let table: toml::Table = toml::from_str(&text).map_err(parse_err)?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        cfg.resolve_paths(&base, table.contains_key("data_dir"));
        cfg.validate().map_err(|e| match e {
            ConfigError::Invalid(message) => ConfigError::InvalidIn {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(cfg)
    }

    /// Makes every relative path of the configuration relative to `base` (a configuration
    /// file's folder); `data_dir` only when `data_dir_given`.
    fn resolve_paths(&mut self, base: &Path, data_dir_given: bool) {
        if data_dir_given {
            resolve(base, &mut self.data_dir);
        }
        resolve_listener(base, &mut self.platform_tls);
        resolve_listener(base, &mut self.core_tls);
        resolve_opt(base, &mut self.rail.tls_ca);
        resolve_opt(base, &mut self.rail.client_cert);
        resolve_opt(base, &mut self.rail.client_key);
        resolve_opt(base, &mut self.rail.files_dir);
        resolve_opt(base, &mut self.http.operator_token_file);
    }

    /// The operator token (`http.operator_token`, else read from
    /// `http.operator_token_file`), checked; `Ok(None)` when neither is set (the `/ops/`
    /// routes then answer 404). Errors: an unreadable file, a token too short or with
    /// spaces or control characters (the message never shows the token).
    pub fn operator_token(&self) -> Result<Option<String>, ConfigError> {
        let token = match (&self.http.operator_token, &self.http.operator_token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        check_operator_token(&token).map_err(ConfigError::Invalid)?;
        Ok(Some(token))
    }

    /// The folder of the rail's day files (docs/protocol.md §3.2): `rail.files_dir`, else
    /// `DATA_DIR/rail-files`.
    pub fn rail_files_dir(&self) -> PathBuf {
        self.rail
            .files_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("rail-files"))
    }

    /// Checks ranges; each error names the offending key:
    /// - tenants: enterprise codes 1..=20 bytes, master accounts 1..=32 bytes (docs/protocol.md §1);
    /// - every `limits.*` positive;
    /// - `batch_max`, `queue_max`, `rail.inflight_max`, `rail.*_ms` positive,
    ///   `rail.backoff_max_ms` ≥ `rail.backoff_start_ms`, `rail.max_chunks` ≥ 1,
    ///   `rail.rj05_backoff_max_ms` ≥ `rail.rj05_retry_ms`, every `rail.maintenance` window
    ///   well-formed (docs/protocol.md §3.1);
    /// - `clock_speed` only with `clock`;
    /// - `utc_offset_seconds` within ±86,399;
    /// - `clock` a real date and time of the form `yyyy-MM-ddTHH:mm:ss`;
    /// - `receipt_key_hex` exactly 64 hex digits (32 bytes);
    /// - `core_tls.client_ca` only with at least one `[[core_tls.clients]]` identity.
    ///
    /// Errors: [`ConfigError::Invalid`] with a message naming the key (never a secret value).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for t in &self.tenants {
            if t.enterprise_code.is_empty() || t.enterprise_code.len() > 20 {
                return invalid("tenants.enterprise_code must be 1..=20 bytes".into());
            }
            if t.master_accounts
                .iter()
                .any(|a| a.is_empty() || a.len() > 32)
            {
                return invalid(
                    "tenants.master_accounts: account numbers must be 1..=32 bytes".into(),
                );
            }
        }
        if self.rail.max_chunks == 0 {
            return invalid("rail.max_chunks must be at least 1".into());
        }
        // Issue 7, item 6: a client CA on the core link with no listed identity would admit
        // every certificate that CA signed (a platform's too) as the bank core.
        if let Some(t) = &self.core_tls {
            if t.client_ca.is_some() && t.clients.is_empty() {
                return invalid(
                    "core_tls.client_ca is set but no [[core_tls.clients]] identity is listed: \
                     every certificate that CA signed could push inbound credits; list the bank \
                     core's certificate identity"
                        .into(),
                );
            }
        }
        let l = &self.limits;
        let r = &self.rail;
        let positive: [(&str, u64); 20] = [
            ("limits.body_bytes_max", l.body_bytes_max as u64),
            ("limits.connections_max", l.connections_max as u64),
            (
                "limits.connections_per_peer_max",
                l.connections_per_peer_max as u64,
            ),
            ("limits.read_idle_ms", l.read_idle_ms),
            ("limits.frame_deadline_ms", l.frame_deadline_ms),
            ("limits.tls_handshake_ms", l.tls_handshake_ms),
            ("limits.xml_depth_max", l.xml_depth_max as u64),
            ("limits.xml_elements_max", l.xml_elements_max as u64),
            ("limits.reply_wait_ms", l.reply_wait_ms),
            ("limits.drain_ms", l.drain_ms),
            ("batch_max", self.batch_max as u64),
            ("queue_max", self.queue_max as u64),
            ("rail.inflight_max", r.inflight_max as u64),
            ("rail.connect_timeout_ms", r.connect_timeout_ms),
            ("rail.read_timeout_ms", r.read_timeout_ms),
            ("rail.first_query_ms", r.first_query_ms),
            ("rail.backoff_start_ms", r.backoff_start_ms),
            ("rail.backoff_max_ms", r.backoff_max_ms),
            ("rail.rj05_retry_ms", r.rj05_retry_ms),
            ("rail.rj05_backoff_max_ms", r.rj05_backoff_max_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("{key} must be positive"));
        }
        if r.backoff_max_ms < r.backoff_start_ms {
            return invalid("rail.backoff_max_ms must be at least rail.backoff_start_ms".into());
        }
        if r.rj05_backoff_max_ms < r.rj05_retry_ms {
            return invalid("rail.rj05_backoff_max_ms must be at least rail.rj05_retry_ms".into());
        }
        if let Err(e) = crate::rail::calendar::Calendar::from_config(&r.maintenance) {
            return invalid(e);
        }
        if self.clock_speed.is_some() && self.clock.is_none() {
            return invalid("clock_speed needs clock".into());
        }
        if self.utc_offset_seconds.unsigned_abs() >= 86_400 {
            return invalid("utc_offset_seconds must be within -86399..=86399".into());
        }
        if let Err(e) = self.reconcile.daily_time() {
            return invalid(e);
        }
        if let Some(t) = &self.http.operator_token {
            if let Err(e) = check_operator_token(t) {
                return invalid(format!("http.operator_token: {e}"));
            }
        }
        if let Some(c) = &self.clock {
            if let Err(e) = crate::clock::parse_fixed_checked(c) {
                return invalid(format!("clock {c:?} {e}"));
            }
        }
        if let Some(h) = &self.receipt_key_hex {
            if h.len() != 2 * RECEIPT_KEY_BYTES || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                // The value is a secret: only its length is reported.
                return invalid(format!(
                    "receipt_key_hex must be exactly {} hex digits ({RECEIPT_KEY_BYTES} bytes); \
                     got {} characters{}",
                    2 * RECEIPT_KEY_BYTES,
                    h.chars().count(),
                    if h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        ""
                    } else {
                        ", not all hex digits"
                    }
                ));
            }
        }
        Ok(())
    }

    /// The writer's limits.
    pub fn writer(&self) -> WriterConfig {
        WriterConfig {
            batch_max: self.batch_max,
            queue_max: self.queue_max,
            ..WriterConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "bankfep-config-{tag}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).expect("write config");
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn invalid_message(cfg: &Config) -> String {
        match cfg.validate() {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_refused_naming_key_and_file() {
        let dir = TempDir::new("unknown");
        for (text, key) in [
            ("platform_adr = \"127.0.0.1:1\"\n", "platform_adr"),
            ("[limits]\nread_idle = 5\n", "read_idle"),
            ("[rail]\ntls_cafile = \"x.pem\"\n", "tls_cafile"),
            (
                "[platform_tls]\naddr = \"a:1\"\ncert = \"c\"\nkey = \"k\"\nclientca = \"x\"\n",
                "clientca",
            ),
            (
                "[[platform_tls.clients]]\nidentity = \"X\"\nenterprise = [\"X\"]\n",
                "enterprise",
            ),
            (
                "[[tenants]]\nenterprise_code = \"E\"\nmaster_accounts = []\nname = \"x\"\n",
                "name",
            ),
        ] {
            let path = dir.write("bad.toml", text);
            let err = Config::from_file(&path).expect_err(text);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
            assert!(msg.contains(&format!("`{key}`")), "key not named: {msg}");
            assert!(
                msg.contains(&path.display().to_string()),
                "file not named: {msg}"
            );
        }
        // The same file without the typo is accepted.
        let path = dir.write("good.toml", "platform_addr = \"127.0.0.1:1\"\n");
        assert_eq!(
            Config::from_file(&path)
                .expect("valid")
                .platform_addr
                .as_deref(),
            Some("127.0.0.1:1")
        );
    }

    #[test]
    fn relative_paths_in_a_file_resolve_against_its_folder() {
        let dir = TempDir::new("paths");
        std::fs::create_dir_all(dir.0.join("sub")).expect("sub");
        let path = dir.write(
            "sub/gw.toml",
            "data_dir = \"store\"\n\
             [platform_tls]\naddr = \"127.0.0.1:0\"\ncert = \"certs/server.pem\"\n\
             key = \"/abs/server.key\"\nclient_ca = \"ca.pem\"\n\
             [[platform_tls.clients]]\nidentity = \"X\"\n\
             [core_tls]\naddr = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"s.key\"\n\
             [rail]\ntls_ca = \"rail/ca.pem\"\nclient_cert = \"rail/c.pem\"\nclient_key = \"rail/c.key\"\n",
        );
        let base = dir.0.join("sub");
        let cfg = Config::from_file(&path).expect("valid");
        assert_eq!(cfg.data_dir, base.join("store"));
        let p = cfg.platform_tls.expect("platform_tls");
        assert_eq!(p.cert, base.join("certs/server.pem"));
        assert_eq!(p.key, PathBuf::from("/abs/server.key"));
        assert_eq!(p.client_ca, Some(base.join("ca.pem")));
        let c = cfg.core_tls.expect("core_tls");
        assert_eq!(c.cert, base.join("s.pem"));
        assert_eq!(c.key, base.join("s.key"));
        assert_eq!(cfg.rail.tls_ca, Some(base.join("rail/ca.pem")));
        assert_eq!(cfg.rail.client_cert, Some(base.join("rail/c.pem")));
        assert_eq!(cfg.rail.client_key, Some(base.join("rail/c.key")));

        // Without `data_dir` in the file, the default stays in the current directory.
        let path = dir.write("sub/plain.toml", "core_addr = \"127.0.0.1:1\"\n");
        assert_eq!(
            Config::from_file(&path).expect("valid").data_dir,
            PathBuf::from("./data")
        );
    }

    #[test]
    fn a_file_named_without_folder_resolves_against_the_current_directory() {
        let mut cfg = Config {
            data_dir: PathBuf::from("store"),
            ..Config::default()
        };
        cfg.resolve_paths(Path::new("."), true);
        assert_eq!(cfg.data_dir, PathBuf::from("./store"));
    }

    #[test]
    fn each_zero_limit_is_named() {
        type Setter = fn(&mut Config);
        let cases: Vec<(&str, Setter)> = vec![
            ("limits.body_bytes_max", |c| c.limits.body_bytes_max = 0),
            ("limits.connections_max", |c| c.limits.connections_max = 0),
            ("limits.connections_per_peer_max", |c| {
                c.limits.connections_per_peer_max = 0
            }),
            ("limits.read_idle_ms", |c| c.limits.read_idle_ms = 0),
            ("limits.frame_deadline_ms", |c| {
                c.limits.frame_deadline_ms = 0
            }),
            ("limits.tls_handshake_ms", |c| c.limits.tls_handshake_ms = 0),
            ("limits.xml_depth_max", |c| c.limits.xml_depth_max = 0),
            ("limits.xml_elements_max", |c| c.limits.xml_elements_max = 0),
            ("limits.reply_wait_ms", |c| c.limits.reply_wait_ms = 0),
            ("limits.drain_ms", |c| c.limits.drain_ms = 0),
            ("batch_max", |c| c.batch_max = 0),
            ("queue_max", |c| c.queue_max = 0),
            ("rail.inflight_max", |c| c.rail.inflight_max = 0),
            ("rail.connect_timeout_ms", |c| c.rail.connect_timeout_ms = 0),
            ("rail.read_timeout_ms", |c| c.rail.read_timeout_ms = 0),
            ("rail.first_query_ms", |c| c.rail.first_query_ms = 0),
            ("rail.backoff_start_ms", |c| c.rail.backoff_start_ms = 0),
            ("rail.backoff_max_ms", |c| c.rail.backoff_max_ms = 0),
        ];
        for (key, set) in cases {
            let mut cfg = Config::default();
            set(&mut cfg);
            assert_eq!(invalid_message(&cfg), format!("{key} must be positive"));
        }
        let mut cfg = Config::default();
        cfg.validate().expect("the defaults are valid");
        cfg.rail.backoff_start_ms = 5_000;
        cfg.rail.backoff_max_ms = 4_000;
        assert!(invalid_message(&cfg).contains("rail.backoff_max_ms"));
        let cfg = Config {
            utc_offset_seconds: 86_400,
            ..Config::default()
        };
        assert!(invalid_message(&cfg).contains("utc_offset_seconds"));
    }

    #[test]
    fn a_zero_limit_in_a_file_is_named() {
        let dir = TempDir::new("zero");
        let path = dir.write("gw.toml", "[limits]\nread_idle_ms = 0\n");
        let err = Config::from_file(&path).expect_err("zero refused");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid configuration {}: limits.read_idle_ms must be positive",
                path.display()
            )
        );
    }

    #[test]
    fn receipt_key_must_be_32_bytes_of_hex() {
        let mut cfg = Config {
            receipt_key_hex: Some("00".into()),
            ..Config::default()
        };
        let m = invalid_message(&cfg);
        assert!(m.contains("exactly 64 hex digits (32 bytes)"), "{m}");
        assert!(m.contains("got 2 characters"), "{m}");
        cfg.receipt_key_hex = Some("0".repeat(66));
        assert!(invalid_message(&cfg).contains("got 66 characters"));
        let secret = format!("{}zz", "a".repeat(62));
        cfg.receipt_key_hex = Some(secret.clone());
        let m = invalid_message(&cfg);
        assert!(
            m.contains("not all hex digits") && !m.contains(&secret),
            "{m}"
        );
        cfg.receipt_key_hex =
            Some("000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F".into());
        cfg.validate().expect("64 hex digits");
        cfg.receipt_key_hex = None;
        cfg.validate().expect("absent: generated at first start");
    }

    #[test]
    fn clock_tells_impossible_dates_from_bad_format() {
        let mut cfg = Config {
            clock: Some("2026-02-30T10:00:00".into()),
            ..Config::default()
        };
        let m = invalid_message(&cfg);
        assert!(m.contains("not a real date and time"), "{m}");
        assert!(!m.contains("must be yyyy"), "{m}");
        cfg.clock = Some("2026-02-28 10:00".into());
        let m = invalid_message(&cfg);
        assert!(m.contains("must be yyyy-MM-ddTHH:mm:ss"), "{m}");
        cfg.clock = Some("2026-02-28T10:00:00".into());
        cfg.validate().expect("real date");
    }
}
