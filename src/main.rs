//! The `bankfep` command line (thin): `serve`, `migrate`, `replay`, `load`, `abuse`,
//! `dev-certs`, `rail-sim`, `admin`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use bankfep::config::Config;

/// The process's allocator: mimalloc, for the many small, short-lived allocations of the
/// request path (issue 9; README "Performance").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bankfep",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BANKFEP_BUILD_INFO"), ")"),
    about = "Bank host-to-host front-end processor (银企直连前置机)"
)]
struct Cli {
    /// Log format on standard error: `text` (human-readable) or `json` (one object a line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (docs/protocol.md §4 defaults, keys in docs/configuration.md; prints
    /// `ready` once listening).
    Serve(ServeArgs),
    /// Copy an embedded store into an empty PostgreSQL database and verify it (row counts,
    /// invariants, every account); the source folder must not be in use.
    CopyStore {
        /// The embedded store's data folder.
        #[arg(long)]
        from: PathBuf,
        /// `postgres://USER@HOST:PORT/DB` (an empty database; migrations are applied).
        #[arg(long)]
        to: String,
    },
    /// Apply the PostgreSQL store's pending schema migrations and exit (`serve` also applies
    /// them at start; docs/configuration.md "Stores").
    Migrate {
        /// `postgres://USER@HOST:PORT/DB`.
        #[arg(long, env = "BANKFEP_DATABASE_URL")]
        database_url: String,
    },
    /// Send every fixture's request to a running gateway and compare the responses byte for
    /// byte (except the header date and time). Start the gateway first and wait for its
    /// `ready` line (docs/operations.md); replay stops with one error at the first link it
    /// cannot connect to. Exits non-zero when a case fails or DIR holds no case.
    Replay {
        /// Fixture directory (`<flow>/<case>/request.bin`, `response.bin`, `note.txt`).
        dir: PathBuf,
        /// Platform link address.
        #[arg(long, default_value = "127.0.0.1:7072")]
        addr: String,
        /// Bank-core link address.
        #[arg(long, default_value = "127.0.0.1:7073")]
        core_addr: String,
        /// Write the actual responses into `response.bin` instead of comparing.
        #[arg(long)]
        bless: bool,
        /// The CITIC listener, for a folder of CITIC fixtures (`*.req`/`*.resp`, e.g.
        /// `fixtures/citic`, replayed on a fresh gateway after the set-up they expect).
        #[arg(long, default_value = "127.0.0.1:6789")]
        citic_addr: String,
    },
    /// Drive N concurrent platform connections doing forced transfers; print rps and latency.
    Load {
        /// Platform link address.
        #[arg(long, default_value = "127.0.0.1:7072")]
        addr: String,
        /// Bank-core link address (funds the load's sub-accounts).
        #[arg(long, default_value = "127.0.0.1:7073")]
        core_addr: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Forced transfers per connection.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// The gateway's pid: report its CPU time per transfer (from /proc/PID/stat).
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// Enterprise code (tenant) of the load.
        #[arg(long, default_value = bankfep::config::DEMO_ENTERPRISE)]
        enterprise: String,
        /// Master account the load's sub-accounts are opened under.
        #[arg(long, default_value = bankfep::config::DEMO_MASTER_ACCOUNT)]
        master_account: String,
        /// Connect to --addr over TLS, trusting this CA (PEM).
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// Client certificate (PEM) for mutual TLS, e.g. dev-certs' client.pem.
        #[arg(long, requires = "tls_ca", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Server name to verify (default localhost).
        #[arg(long, default_value = "localhost")]
        tls_server_name: String,
    },
    /// Abusive peers against a running gateway: idle connections (memory per connection) or
    /// a flood of malformed frames (slowdown of the normal load).
    #[command(subcommand)]
    Abuse(AbuseCmd),
    /// Write a throwaway CA, server and client certificates and a mutual-TLS configuration
    /// into DIR (try TLS in a minute; docs/operations.md). Refuses to overwrite existing files
    /// unless --force is given.
    DevCerts {
        /// Output directory (created if missing).
        dir: PathBuf,
        /// Replace existing files (the CA and every key are generated anew).
        #[arg(long)]
        force: bool,
    },
    /// Run the payment-rail simulator (docs/protocol.md §3) on plain TCP; prints `ready` once
    /// listening, and on SIGTERM/SIGINT the balances (`account balance_fen`, sorted) and
    /// `settled N`.
    RailSim(RailSimArgs),
    /// Read the store (either kind) without writing to it, safe while a gateway runs:
    /// sub-accounts, masters and the 总分平衡 check, suspense, rail instructions, one
    /// FrontSeqNo (docs/operations.md "Admin commands").
    Admin(AdminArgs),
    /// Reconcile a business day against the rail's day files (docs/protocol.md §3.2): prints
    /// a summary, writes `reconcile_DATE.txt` and `breaks_DATE.csv`; books the outcome of
    /// instructions still unknown from the file. Opens the store itself (stop the gateway
    /// first on the embedded store). Exit 0 no break, 1 breaks remain, 2 could not reconcile.
    Reconcile(ReconcileArgs),
    /// Write the statement (对账单) of one master account for one business date as CSV
    /// (docs/statements.md): every posting of the day, opening and closing balances, totals
    /// and the 总分平衡 check. Opens the store itself (stop the gateway first on the embedded
    /// store; a running gateway serves it at GET /ops/statements/MASTER/DATE.csv).
    /// Exit 0 written and balanced, 1 written with a BREAK, 2 not written.
    Statement(StatementArgs),
}

#[derive(clap::Args)]
struct StatementArgs {
    /// Master account number.
    #[arg(long)]
    master: String,
    /// Business date yyyyMMdd.
    #[arg(long)]
    date: String,
    /// Output file (`-` for standard output).
    #[arg(long)]
    out: PathBuf,
    /// Configuration file (data_dir, database_url).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Embedded store directory (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL store instead of the embedded one.
    #[arg(long, env = "BANKFEP_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Embedded store directory (default ./data); opened read-only, its lock is not taken.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL store instead: `postgres://USER@HOST:PORT/DB` (read-only transaction).
    #[arg(long, env = "BANKFEP_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// One JSON document (amounts as integer fen) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// A tenant's sub-accounts with their balances.
    Subs {
        /// Enterprise (tenant) code.
        #[arg(long)]
        enterprise: String,
    },
    /// One sub-account with its latest postings, newest first.
    Sub {
        /// `SubAcctNo`.
        sub_acct_no: String,
        /// How many postings.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Every master account: mirror, liabilities and the 总分平衡 check.
    Masters,
    /// Inbound credits waiting in suspense (挂账).
    Suspense,
    /// Unresolved rail instructions with their ages.
    Instructions {
        /// Count ages to this date, `yyyyMMdd` (default: today, local time).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// One FrontSeqNo: its postings, e-receipt and rail instructions.
    Seq {
        /// The `FrontSeqNo` (16 digits).
        front_seq_no: String,
    },
}

#[derive(clap::Args)]
struct ReconcileArgs {
    /// Business date yyyyMMdd.
    #[arg(long)]
    date: String,
    /// Configuration file (data_dir, database_url, tenants, rail.files_dir,
    /// rail.expense_account).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Embedded store directory (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL store instead of the embedded one.
    #[arg(long, env = "BANKFEP_DATABASE_URL")]
    database_url: Option<String>,
    /// Folder of the rail's day files (default DATA_DIR/rail-files).
    #[arg(long)]
    rail_files: Option<PathBuf>,
    /// Folder of the report and the breaks file (default DATA_DIR/reconcile).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Reconcile through a running gateway instead of opening the store: its HTTP listener,
    /// `http://HOST:PORT` (`POST /ops/reconcile`; the report is written by the gateway into
    /// its own DATA_DIR/reconcile). Needs --operator-token-file.
    #[arg(long, requires = "operator_token_file")]
    gateway: Option<String>,
    /// File holding the gateway's operator token (`http.operator_token`).
    #[arg(long)]
    operator_token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AbuseCmd {
    /// Open N idle connections, hold them, and report how many the server closed and, with
    /// --gateway-pid, the gateway's VmRSS before, while held and after (KiB).
    Idle(AbuseIdleArgs),
    /// Run the forced-transfer load alone, then while connections send malformed frames;
    /// print both reports and the slowdown factors.
    Flood(AbuseFloodArgs),
}

#[derive(clap::Args)]
struct AbuseIdleArgs {
    /// Platform link address.
    #[arg(long, default_value = "127.0.0.1:7072")]
    addr: String,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// How long to hold them once all are open, ms.
    #[arg(long, default_value_t = 5000)]
    hold_ms: u64,
    /// The gateway's pid, to read its VmRSS from /proc/PID/status.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Send the first half (111 bytes) of a header on each connection instead of nothing.
    #[arg(long, conflicts_with = "header_only")]
    partial: bool,
    /// Send a whole header announcing this many body bytes, and no body.
    #[arg(long)]
    header_only: Option<u64>,
    /// Wait after closing them before the last VmRSS reading, ms.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
}

#[derive(clap::Args)]
struct AbuseFloodArgs {
    /// Platform link address (load and flood).
    #[arg(long, default_value = "127.0.0.1:7072")]
    addr: String,
    /// Bank-core link address (funds the load's sub-accounts).
    #[arg(long, default_value = "127.0.0.1:7073")]
    core_addr: String,
    /// Connections sending malformed frames during the second run.
    #[arg(long, default_value_t = 8)]
    flood_connections: usize,
    /// Longest the flood runs, ms (it stops when the flooded load run ends).
    #[arg(long, default_value_t = 5000)]
    duration_ms: u64,
    /// Well-behaved load connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Forced transfers per load connection.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Seed of the garbage bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct RailSimArgs {
    /// Listen address, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// Share of new instructions refused with --fail-code, per mille.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    fail_per_mille: u32,
    /// Reject code of injected failures (RJ01..RJ09, not RJ04).
    #[arg(long, default_value = "RJ01")]
    fail_code: String,
    /// Share of new instructions answered P (processing), per mille.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pending_per_mille: u32,
    /// A pending instruction settles at this many 7003 queries about it.
    #[arg(long, default_value_t = 1)]
    pending_queries: u32,
    /// Delay before each reply, ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests booked but not answered (connection closed), per mille.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    drop_per_mille: u32,
    /// Seed of the fault generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve TLS with this PEM certificate chain (e.g. `server.pem` from `dev-certs`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Daily maintenance window `BANK3:HHmm-HHmm` (`self` for 7002, `all` for every bank;
    /// start included, end excluded, may cross midnight): new 7001/7002 to that bank are
    /// answered F RJ05 (docs/protocol.md §3.1). Repeatable.
    #[arg(long)]
    maintenance: Vec<String>,
    /// Folder of the day files (docs/protocol.md §3.2): the previous day's are written when
    /// the business date rolls over, the current day's when the simulator stops.
    #[arg(long)]
    rail_files: Option<PathBuf>,
    /// A payer account that gets a day file even without instructions. Repeatable.
    #[arg(long)]
    payer: Vec<String>,
    /// Share of settled instructions left out of the day files, per mille (a rail that
    /// lost them).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    omit_per_mille: u32,
    /// Business clock start `yyyy-MM-ddTHH:mm:ss` (default: the wall clock, UTC+8).
    #[arg(long)]
    clock: Option<String>,
    /// With --clock: run the clock this many times faster than real time.
    #[arg(long, requires = "clock")]
    clock_speed: Option<u32>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (without it no file is read; keys in docs/configuration.md;
    /// relative paths in it are relative to its folder).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Embedded store directory (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Platform link TCP address (default 127.0.0.1:7072).
    #[arg(long)]
    platform_addr: Option<String>,
    /// Bank-core link TCP address (default 127.0.0.1:7073).
    #[arg(long)]
    core_addr: Option<String>,
    /// CITIC dialect HTTP address (default 127.0.0.1:6789; docs/citic.md).
    #[arg(long)]
    citic_addr: Option<String>,
    /// External payment rail speaking docs/protocol.md §3 (default: the built-in simulator).
    #[arg(long)]
    rail_addr: Option<String>,
    /// Fixed business clock `yyyy-MM-ddTHH:mm:ss`, a real date and time (fixture replay and
    /// tests only).
    #[arg(long)]
    clock: Option<String>,
    /// With --clock: the clock runs this many times faster than real time (tests and
    /// demonstrations of maintenance windows).
    #[arg(long, requires = "clock")]
    clock_speed: Option<u32>,
    /// Folder of the rail's day files (docs/protocol.md §3.2; default DATA_DIR/rail-files).
    #[arg(long)]
    rail_files: Option<PathBuf>,
    /// Receipt MAC secret, exactly 64 hex digits (32 bytes), used only when the store has
    /// none yet (fixture replay).
    #[arg(long)]
    receipt_key_hex: Option<String>,
    /// PostgreSQL store instead of the embedded one: `postgres://USER@HOST:PORT/DB`
    /// (docs/configuration.md "Stores").
    #[arg(long, env = "BANKFEP_DATABASE_URL")]
    database_url: Option<String>,
    /// Internal link between instances sharing --database-url (default 127.0.0.1:0;
    /// docs/protocol.md §5).
    #[arg(long)]
    cluster_addr: Option<String>,
    /// Tenant lease time, ms (default 10000): a dead instance's tenants move after this.
    #[arg(long)]
    cluster_lease_ms: Option<u64>,
    /// HTTP listener: e-receipt page, /metrics, /healthz, /readyz (default 127.0.0.1:7080).
    #[arg(long)]
    http_addr: Option<String>,
    /// File holding the operator token of the HTTP operator area `/ops/`
    /// (`http.operator_token_file`; without a token the area does not exist).
    #[arg(long)]
    operator_token_file: Option<PathBuf>,
    /// No `info` line per request (benchmarks); same as `log_requests = false`.
    #[arg(long)]
    no_log_requests: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt.json().with_ansi(false).init(),
    }
    // Admin reads run on their own (the PostgreSQL reader owns a small runtime).
    let cmd = match cli.cmd {
        Cmd::Admin(a) => return admin(a),
        other => other,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cmd))
}

async fn run(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::Replay {
            dir,
            addr,
            core_addr,
            bless,
            citic_addr,
        } => {
            // A folder of `*.req` files holds CITIC fixtures; anything else, A001 and 6920.
            let citic = std::fs::read_dir(&dir).is_ok_and(|mut it| {
                it.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "req")))
            });
            let opts = bankfep::tools::replay::ReplayOptions {
                dir,
                platform_addr: addr,
                core_addr,
                bless,
                timeout_ms: 10_000,
            };
            let replayed = if citic {
                bankfep::tools::replay::replay_citic(&opts, &citic_addr).await
            } else {
                bankfep::tools::replay::replay(&opts).await
            };
            match replayed {
                Ok(outcomes) => {
                    let failed = outcomes.iter().filter(|o| !o.ok).count();
                    for o in &outcomes {
                        println!(
                            "{} {} {}",
                            if o.ok { "ok  " } else { "FAIL" },
                            o.case,
                            o.detail
                        );
                    }
                    println!("{} passed, {} failed", outcomes.len() - failed, failed);
                    if failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("replay: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Load {
            addr,
            core_addr,
            connections,
            requests,
            gateway_pid,
            enterprise,
            master_account,
            tls_ca,
            tls_cert,
            tls_key,
            tls_server_name,
        } => {
            let tls = match &tls_ca {
                Some(ca) => {
                    let client = tls_cert.as_deref().zip(tls_key.as_deref());
                    match bankfep::tls::client_config(ca, client) {
                        Ok(config) => Some(bankfep::tools::load::LoadTls {
                            config,
                            server_name: tls_server_name,
                        }),
                        Err(e) => {
                            eprintln!("load: TLS: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
                None => None,
            };
            let opts = bankfep::tools::load::LoadOptions {
                tls,
                gateway_pid,
                platform_addr: addr,
                core_addr,
                enterprise,
                master_account,
                connections,
                requests_per_connection: requests,
                duration_ms: None,
            };
            match bankfep::tools::load::run_load(&opts).await {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("load: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Abuse(a) => abuse(a).await,
        Cmd::RailSim(a) => rail_sim(a).await,
        Cmd::Reconcile(a) => reconcile(a).await,
        Cmd::Statement(a) => statement(a).await,
        Cmd::Admin(a) => tokio::task::spawn_blocking(move || admin(a))
            .await
            .unwrap_or(ExitCode::FAILURE),
        Cmd::CopyStore { from, to } => {
            let copied = tokio::task::spawn_blocking(move || {
                bankfep::store::copy::copy_store(&from, &to, &mut |line| eprintln!("{line}"))
            })
            .await;
            match copied {
                Ok(Ok(report)) => {
                    for (table, rows) in report {
                        println!("{table:<14} {rows:>10} rows");
                    }
                    println!("verified: row counts, invariants and every account agree");
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => {
                    eprintln!("copy-store: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("copy-store: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Migrate { database_url } => match tokio::task::spawn_blocking(move || {
            bankfep::store::postgres::migrate(&database_url)
        })
        .await
        .unwrap_or_else(|e| {
            Err(bankfep::store::StoreError::Corrupt(if e.is_panic() {
                "migration task panicked"
            } else {
                "migration task cancelled"
            }))
        }) {
            Ok(v) if v.is_empty() => {
                println!("database is up to date");
                ExitCode::SUCCESS
            }
            Ok(v) => {
                let list: Vec<String> = v.iter().map(|n| n.to_string()).collect();
                println!("applied migrations {}", list.join(", "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("migrate: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::DevCerts { dir, force } => {
            match bankfep::devcerts::write_dev_certs_with(&dir, force) {
                Ok(c) => {
                    println!(
                        "wrote throwaway development certificates (never use them in production):"
                    );
                    for (path, what) in c.files() {
                        println!("  {}  {what}", path.display());
                    }
                    println!("try: bankfep serve --config {}", c.config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dev-certs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(a: ServeArgs) -> ExitCode {
    let mut cfg = match &a.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(x) = a.platform_addr {
        cfg.platform_addr = Some(x);
    }
    if let Some(x) = a.core_addr {
        cfg.core_addr = Some(x);
    }
    if let Some(x) = a.citic_addr {
        cfg.citic_addr = Some(x);
    }
    if a.rail_addr.is_some() {
        cfg.rail.addr = a.rail_addr;
    }
    if a.clock.is_some() {
        cfg.clock = a.clock;
    }
    if a.clock_speed.is_some() {
        cfg.clock_speed = a.clock_speed;
    }
    if a.rail_files.is_some() {
        cfg.rail.files_dir = a.rail_files;
    }
    if a.database_url.is_some() {
        cfg.database_url = a.database_url;
    }
    if a.cluster_addr.is_some() {
        cfg.cluster_addr = a.cluster_addr;
    }
    if let Some(ms) = a.cluster_lease_ms {
        cfg.cluster_lease_ms = ms;
    }
    if a.receipt_key_hex.is_some() {
        cfg.receipt_key_hex = a.receipt_key_hex;
    }
    if a.http_addr.is_some() {
        cfg.http_addr = a.http_addr;
    }
    if a.no_log_requests {
        cfg.log_requests = false;
    }
    if a.operator_token_file.is_some() {
        cfg.http.operator_token = None;
        cfg.http.operator_token_file = a.operator_token_file;
    }
    let running = match bankfep::server::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One line per enabled listener: disabled ones are left out rather than logged `None`.
    for (link, addr) in [
        ("platform", running.platform_addr),
        ("core", running.core_addr),
        ("platform_tls", running.platform_tls_addr),
        ("core_tls", running.core_tls_addr),
        ("citic", running.citic_addr),
        ("http", running.http_addr),
    ] {
        if let Some(addr) = addr {
            tracing::info!(link, %addr, "listening");
        }
    }
    tracing::info!(
        rail = %running.rail_addr,
        built_in_rail = running.rail_sim.is_some(),
        "payment rail"
    );
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_signal_reloading(&running, a.config.as_deref()).await;
    tracing::info!("draining");
    running.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn admin(a: AdminArgs) -> ExitCode {
    use bankfep::admin::{Options, Query};
    let as_of = match &a.cmd {
        AdminCmd::Instructions { as_of: Some(d) } => {
            match chrono::NaiveDate::parse_from_str(d, "%Y%m%d") {
                Ok(d) => d,
                Err(_) => {
                    eprintln!("admin: --as-of must be a date yyyyMMdd, not {d:?}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => chrono::Local::now().date_naive(),
    };
    let query = match a.cmd {
        AdminCmd::Subs { enterprise } => Query::Subs { enterprise },
        AdminCmd::Sub { sub_acct_no, limit } => Query::Sub { sub_acct_no, limit },
        AdminCmd::Masters => Query::Masters,
        AdminCmd::Suspense => Query::Suspense,
        AdminCmd::Instructions { .. } => Query::Instructions,
        AdminCmd::Seq { front_seq_no } => Query::Seq { front_seq_no },
    };
    let opts = Options {
        data_dir: a.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
        database_url: a.database_url,
        json: a.json,
        as_of,
    };
    match bankfep::admin::run(&opts, &query, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("admin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the store of `cfg` for a tool that must not run beside a gateway: the embedded
/// store under its folder lock, or a database no instance holds a tenant lease on. Returns
/// the store and the lock to keep; the error is the message to print.
async fn open_alone(
    cfg: &Config,
    tool: &str,
) -> Result<
    (
        Box<dyn bankfep::store::Store>,
        Option<bankfep::store::lock::DataDirLock>,
    ),
    String,
> {
    match cfg.database_url.clone() {
        Some(url) => {
            // Off the runtime (the store blocks), and never beside a running gateway: this
            // tool holds no tenant lease.
            let opened = tokio::task::spawn_blocking(move || {
                let mut s = bankfep::store::postgres::PgStore::open(&url)?;
                let live = s.live_leases()?;
                Ok::<_, bankfep::store::StoreError>((s, live))
            })
            .await;
            match opened {
                Ok(Ok((_, live))) if live > 0 => Err(format!(
                    "{tool}: {live} tenant lease(s) are held by running gateway instances; \
                     stop them first, or ask a running gateway (docs/operations.md)"
                )),
                Ok(Ok((s, _))) => Ok((Box::new(s), None)),
                Ok(Err(e)) => Err(format!("{tool}: store: {e}")),
                Err(e) => Err(format!("{tool}: store: {e}")),
            }
        }
        None => {
            let lock = bankfep::store::lock::DataDirLock::acquire(&cfg.data_dir)
                .map_err(|e| format!("{tool}: {e}"))?;
            let dir = cfg.data_dir.clone();
            match tokio::task::spawn_blocking(move || {
                bankfep::store::sqlite::SqliteStore::open(&dir)
            })
            .await
            {
                Ok(Ok(s)) => Ok((Box::new(s), Some(lock))),
                Ok(Err(e)) => Err(format!("{tool}: store: {e}")),
                Err(e) => Err(format!("{tool}: store: {e}")),
            }
        }
    }
}

/// The configuration of a tool that opens the store (`statement`, `reconcile`): the file
/// when given (else the defaults), then `--data-dir` and `--database-url` over it. `None`
/// after printing why the file could not be read (the tools' exit 2).
fn tool_config(
    file: Option<&std::path::Path>,
    data_dir: Option<std::path::PathBuf>,
    database_url: Option<String>,
) -> Option<Config> {
    let mut cfg = match file {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return None;
            }
        },
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    if database_url.is_some() {
        cfg.database_url = database_url;
    }
    Some(cfg)
}

async fn statement(a: StatementArgs) -> ExitCode {
    let Some(cfg) = tool_config(a.config.as_deref(), a.data_dir, a.database_url) else {
        return ExitCode::from(2);
    };
    if bankfep::statement::parse_date(&a.date).is_none() {
        eprintln!("statement: --date {:?} must be yyyyMMdd", a.date);
        return ExitCode::from(2);
    }
    let (store, _lock) = match open_alone(&cfg, "statement").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let st = match bankfep::statement::from_store(store, &a.master, &a.date).await {
        Ok(st) => st,
        Err(e) => {
            eprintln!("statement: {e}");
            return ExitCode::from(2);
        }
    };
    let written = if a.out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&st.csv)
    } else {
        std::fs::write(&a.out, &st.csv)
    };
    if let Err(e) = written {
        eprintln!("statement: {}: {e}", a.out.display());
        return ExitCode::from(2);
    }
    eprintln!(
        "statement of {} for {}: {} postings, checks {}",
        a.master,
        a.date,
        st.postings,
        if st.balanced {
            "OK"
        } else {
            "BREAK (总分平衡 or a NEGATIVE balance row)"
        }
    );
    if st.balanced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `bankfep reconcile --gateway URL`: `POST /ops/reconcile?date=D` with the operator token;
/// prints the gateway's summary; exit 0 / 1 / 2 as when run alone.
async fn reconcile_remote(url: &str, token_file: &std::path::Path, date: &str) -> ExitCode {
    let token = match std::fs::read_to_string(token_file) {
        Ok(t) => t.trim().to_owned(),
        Err(e) => {
            eprintln!("reconcile: {}: {e}", token_file.display());
            return ExitCode::from(2);
        }
    };
    match bankfep::client::ops_post(url, &format!("/ops/reconcile?date={date}"), &token).await {
        Ok((status, headers, body)) => {
            let text = String::from_utf8_lossy(&body);
            let breaks = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-bankfep-breaks"))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok());
            match (status, breaks) {
                (200, Some(n)) => {
                    print!("{text}");
                    if n == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                (401, _) => {
                    eprintln!("reconcile: the gateway refused the operator token (401)");
                    ExitCode::from(2)
                }
                (404, _) => {
                    eprintln!(
                        "reconcile: the gateway has no operator area (404: no token configured)"
                    );
                    ExitCode::from(2)
                }
                (s, _) => {
                    eprintln!("reconcile: gateway answered {s}: {}", text.trim_end());
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("reconcile: {url}: {e}");
            ExitCode::from(2)
        }
    }
}

async fn reconcile(a: ReconcileArgs) -> ExitCode {
    if let Some(url) = &a.gateway {
        let Some(f) = &a.operator_token_file else {
            eprintln!("reconcile: --gateway needs --operator-token-file");
            return ExitCode::from(2);
        };
        return reconcile_remote(url, f, &a.date).await;
    }
    let Some(mut cfg) = tool_config(a.config.as_deref(), a.data_dir, a.database_url) else {
        return ExitCode::from(2);
    };
    if a.rail_files.is_some() {
        cfg.rail.files_dir = a.rail_files;
    }
    let opts = bankfep::reconcile::ReconcileOptions {
        date: a.date,
        files_dir: cfg.rail_files_dir(),
        out_dir: a.out.unwrap_or_else(|| cfg.data_dir.join("reconcile")),
        expense_account: cfg.rail.expense_account.clone(),
    };
    let (store, _lock) = match open_alone(&cfg, "reconcile").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match bankfep::reconcile::run(bankfep::reconcile::Source::Opened(store), &opts).await {
        Ok(report) => {
            print!("{}", report.summary);
            use std::io::Write;
            let _ = std::io::stdout().flush();
            if report.breaks() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("reconcile: cannot reconcile: {e}");
            ExitCode::from(2)
        }
    }
}

async fn abuse(cmd: AbuseCmd) -> ExitCode {
    use bankfep::tools::abuse;
    match cmd {
        AbuseCmd::Idle(a) => {
            let kind = match (a.partial, a.header_only) {
                (true, _) => abuse::IdleKind::HalfHeader,
                (false, Some(len)) => abuse::IdleKind::HeaderOnly(len),
                (false, None) => abuse::IdleKind::Silent,
            };
            let opts = abuse::IdleOptions {
                addr: a.addr,
                connections: a.connections,
                hold_ms: a.hold_ms,
                kind,
                gateway_pid: a.gateway_pid,
                settle_ms: a.settle_ms,
                ..abuse::IdleOptions::default()
            };
            let report = abuse::run_idle(&opts).await;
            println!("{report}");
            ExitCode::SUCCESS
        }
        AbuseCmd::Flood(a) => {
            let opts = abuse::FloodOptions {
                load: bankfep::tools::load::LoadOptions {
                    platform_addr: a.addr,
                    core_addr: a.core_addr,
                    enterprise: bankfep::config::DEMO_ENTERPRISE.into(),
                    master_account: bankfep::config::DEMO_MASTER_ACCOUNT.into(),
                    connections: a.connections,
                    requests_per_connection: a.requests,
                    duration_ms: None,
                    tls: None,
                    gateway_pid: None,
                },
                flood_connections: a.flood_connections,
                duration_ms: a.duration_ms,
                seed: a.seed,
            };
            match abuse::run_flood(&opts).await {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("abuse flood: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn rail_sim(a: RailSimArgs) -> ExitCode {
    let valid_code = bankfep::rail::wire::is_reject_code(&a.fail_code) && a.fail_code != "RJ04";
    if !valid_code {
        eprintln!("rail-sim: --fail-code must be RJ01..RJ09 other than RJ04");
        return ExitCode::FAILURE;
    }
    if u64::from(a.fail_per_mille) + u64::from(a.pending_per_mille) > 1000 {
        eprintln!("rail-sim: --fail-per-mille plus --pending-per-mille exceeds 1000");
        return ExitCode::FAILURE;
    }
    let mut maintenance = Vec::new();
    for w in &a.maintenance {
        match bankfep::rail::sim::SimWindow::parse(w) {
            Ok(w) => maintenance.push(w),
            Err(e) => {
                eprintln!("rail-sim: --maintenance {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let clock: std::sync::Arc<dyn bankfep::clock::Clock> = match &a.clock {
        Some(c) => match bankfep::clock::parse_fixed_checked(c) {
            Ok(t) => match a.clock_speed {
                Some(n) => std::sync::Arc::new(bankfep::clock::RunningClock::new(t, n)),
                None => std::sync::Arc::new(bankfep::clock::FixedClock(t)),
            },
            Err(e) => {
                eprintln!("rail-sim: --clock {c:?} {e}");
                return ExitCode::FAILURE;
            }
        },
        None => std::sync::Arc::new(bankfep::clock::SystemClock::default()),
    };
    let opts = bankfep::rail::sim::SimOptions {
        clock,
        files_dir: a.rail_files.clone(),
        payers: a.payer.clone(),
    };
    let faults = bankfep::rail::sim::SimFaults {
        maintenance,
        omit_per_mille: a.omit_per_mille,
        fail_per_mille: a.fail_per_mille,
        fail_code: a.fail_code,
        pending_per_mille: a.pending_per_mille,
        pending_queries: a.pending_queries,
        latency_ms: a.latency_ms,
        drop_per_mille: a.drop_per_mille,
        seed: a.seed,
    };
    let started = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => match bankfep::tls::server_config(cert, key, None) {
            Ok(cfg) => {
                bankfep::rail::sim::RailSim::start_with(&a.addr, faults, opts, Some(cfg)).await
            }
            Err(e) => {
                eprintln!("rail-sim: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => bankfep::rail::sim::RailSim::start_with(&a.addr, faults, opts, None).await,
    };
    let sim = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rail-sim: cannot listen on {}: {e}", a.addr);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %sim.addr(), "rail simulator listening");
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_signal().await;
    let balances = sim.balances();
    let settled = sim.paid_count();
    sim.shutdown().await;
    let mut out = String::new();
    for (acct, fen) in &balances {
        out.push_str(&format!("{acct} {fen}\n"));
    }
    out.push_str(&format!("settled {settled}\n"));
    print!("{out}");
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

/// Waits for SIGTERM/SIGINT; on SIGHUP re-reads the configuration file and replaces the
/// maintenance windows (docs/protocol.md §3.1), keeping the ones in force when the file
/// does not load or check.
async fn wait_for_signal_reloading(
    running: &bankfep::server::Running,
    config: Option<&std::path::Path>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => {
                        let Some(path) = config else {
                            tracing::warn!("SIGHUP without --config: nothing to reload");
                            continue;
                        };
                        match Config::from_file(path) {
                            Ok(c) => match running.reload_calendar(&c.rail.maintenance) {
                                Ok(n) => tracing::info!(windows = n, "maintenance calendar reloaded"),
                                Err(e) => tracing::warn!(error = %e, "maintenance calendar kept"),
                            },
                            Err(e) => tracing::warn!(error = %e, "reload failed; maintenance calendar kept"),
                        }
                    }
                }
            }
        }
    }
    let _ = config;
    let _ = running;
    wait_for_signal().await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        if let (Ok(mut term), Ok(mut int)) = (term, int) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
