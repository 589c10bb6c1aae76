//! Gateway configuration: the defaults of PROTOCOL.md §4, an optional TOML file
//! (`serve --config FILE`), and command-line flags, which override both.
//!
//! Example file (every key optional; `bankfep dev-certs DIR` writes a working TLS one):
//! ```toml
//! data_dir = "./data"
//! platform_addr = "127.0.0.1:7072"
//! core_addr = "127.0.0.1:7073"
//!
//! [[tenants]]
//! enterprise_code = "DEMOPLATFORM00000001"
//! master_accounts = ["6222000000000000001"]
//!
//! [platform_tls]
//! addr = "127.0.0.1:7443"
//! cert = "certs/server.pem"
//! key = "certs/server.key"
//! client_ca = "certs/ca.pem"          # require client certificates (mutual TLS)
//! [[platform_tls.clients]]            # which enterprise codes each certificate may use
//! identity = "DEMOPLATFORM00000001"   # the certificate's subject CN
//! enterprises = ["DEMOPLATFORM00000001"]
//!
//! [rail]
//! addr = "10.0.0.5:7001"              # absent: the built-in simulator
//! tls_ca = "certs/rail-ca.pem"        # verify the rail's server certificate
//! expense_account = "6222000000000009999"
//! first_query_ms = 1000               # PROTOCOL.md §3 query schedule
//! backoff_max_ms = 30000
//!
//! [limits]
//! body_bytes_max = 1048576
//! connections_max = 1024
//! connections_per_peer_max = 256
//! read_idle_ms = 60000
//! frame_deadline_ms = 30000
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::writer::WriterConfig;

/// The demo tenant's enterprise code (PROTOCOL.md §4).
pub const DEMO_ENTERPRISE: &str = "DEMOPLATFORM00000001";
/// The demo tenant's master account (PROTOCOL.md §4).
pub const DEMO_MASTER_ACCOUNT: &str = "6222000000000000001";

/// A platform (enterprise) and its master accounts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Tenant {
    /// Enterprise code (header field 5, ≤ 20 bytes).
    pub enterprise_code: String,
    /// Master account numbers (`FundSummaryAcctNo`, ≤ 32 bytes each).
    pub master_accounts: Vec<String>,
}

/// A client certificate identity and the enterprise codes it may use (issue 4, PROTOCOL.md
/// §1.4 `YQ9985`: "not the one bound to this TLS client certificate").
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
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

/// The payment rail (PROTOCOL.md §3): where it is and how the gateway talks to it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
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
        }
    }
}

/// Resource limits, each with a safe default.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    /// Largest A001 body accepted, bytes (PROTOCOL.md §1.1: default 1 MiB, itself allowed).
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

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Platform link, plain TCP (`None`: disabled).
    pub platform_addr: Option<String>,
    /// Bank-core link, plain TCP (`None`: disabled).
    pub core_addr: Option<String>,
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
    /// Fixed business clock `yyyy-MM-ddTHH:mm:ss` (tests and fixture replay only).
    pub clock: Option<String>,
    /// Receipt MAC secret as hex; when absent a random one is created and stored on first start.
    pub receipt_key_hex: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let w = WriterConfig::default();
        Config {
            data_dir: PathBuf::from("./data"),
            platform_addr: Some("127.0.0.1:7072".into()),
            core_addr: Some("127.0.0.1:7073".into()),
            platform_tls: None,
            core_tls: None,
            tenants: vec![Tenant {
                enterprise_code: DEMO_ENTERPRISE.into(),
                master_accounts: vec![DEMO_MASTER_ACCOUNT.into()],
            }],
            limits: Limits::default(),
            rail: RailConfig::default(),
            batch_max: w.batch_max,
            queue_max: w.queue_max,
            utc_offset_seconds: 8 * 3600,
            clock: None,
            receipt_key_hex: None,
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
    /// A value out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges: enterprise codes ≤ 20 bytes, accounts ≤ 32, non-zero limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for t in &self.tenants {
            if t.enterprise_code.is_empty() || t.enterprise_code.len() > 20 {
                return Err(ConfigError::Invalid(
                    "enterprise_code must be 1..=20 bytes".into(),
                ));
            }
            if t.master_accounts
                .iter()
                .any(|a| a.is_empty() || a.len() > 32)
            {
                return Err(ConfigError::Invalid(
                    "master account numbers must be 1..=32 bytes".into(),
                ));
            }
        }
        if self.rail.max_chunks == 0 {
            return Err(ConfigError::Invalid(
                "rail.max_chunks must be at least 1".into(),
            ));
        }
        // Issue 7, item 6: a client CA on the core link with no listed identity would admit
        // every certificate that CA signed (a platform's too) as the bank core.
        if let Some(t) = &self.core_tls {
            if t.client_ca.is_some() && t.clients.is_empty() {
                return Err(ConfigError::Invalid(
                    "core_tls.client_ca is set but no [[core_tls.clients]] identity is listed: \
                     every certificate that CA signed could push inbound credits; list the bank \
                     core's certificate identity"
                        .into(),
                ));
            }
        }
        let l = &self.limits;
        if l.body_bytes_max == 0
            || l.connections_max == 0
            || l.connections_per_peer_max == 0
            || l.read_idle_ms == 0
        {
            return Err(ConfigError::Invalid("limits must be positive".into()));
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
