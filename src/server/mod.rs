//! Listeners and the per-connection handlers of the platform link (§1) and the bank-core
//! link (§2), on TCP and TLS, with connection caps, timeouts and a draining shutdown.

pub mod conn;
pub mod core_link;
pub mod listener;
pub mod platform;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::{Clock, FixedClock, SystemClock};
use crate::codec::schema::Schemas;
use crate::config::Config;
use crate::ledger::LedgerState;
use crate::receipt::Signer;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::writer::{self, WriterCtx, WriterHandle};

/// Everything a connection handler shares.
pub struct Shared {
    /// Layouts and messages.
    pub schemas: Arc<Schemas>,
    /// The configuration in force.
    pub config: Config,
    /// Known enterprise codes (`YQ9985` otherwise).
    pub enterprises: HashSet<String>,
    /// The writer.
    pub writer: WriterHandle,
    /// Business clock.
    pub clock: Arc<dyn Clock>,
    /// Flips to `true` on shutdown: idle connections close, busy ones finish their request.
    pub shutdown: watch::Receiver<bool>,
    /// Several instances on one database (docs/protocol.md §5): routing and leases; `None`
    /// on an embedded store.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// A gateway that failed to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Schemas did not load.
    #[error("schemas: {0}")]
    Schema(String),
    /// The store did not open or load.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A listener did not bind, or a TLS file is unusable.
    #[error("listener {what}: {message}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// The data folder is held by another process, or cannot be created.
    #[error("{0}")]
    DataDir(#[from] crate::store::lock::LockError),
}

/// A running gateway: its bound addresses and the handles to stop it.
pub struct Running {
    /// Platform link TCP address, if enabled.
    pub platform_addr: Option<SocketAddr>,
    /// Core link TCP address, if enabled.
    pub core_addr: Option<SocketAddr>,
    /// CITIC dialect HTTP address, if enabled (docs/citic.md).
    pub citic_addr: Option<SocketAddr>,
    /// Platform link TLS address, if enabled.
    pub platform_tls_addr: Option<SocketAddr>,
    /// Core link TLS address, if enabled.
    pub core_tls_addr: Option<SocketAddr>,
    /// HTTP listener address (docs/protocol.md §6), if enabled.
    pub http_addr: Option<SocketAddr>,
    /// The writer (tests read snapshots through it).
    pub writer: WriterHandle,
    /// The payment rail address in use.
    pub rail_addr: SocketAddr,
    /// The built-in rail simulator, when no external rail was configured (§4).
    pub rail_sim: Option<crate::rail::sim::RailSim>,
    /// The business clock in use.
    pub clock: Arc<dyn Clock>,
    /// Maintenance windows in force (docs/protocol.md §3.1); see [`Running::reload_calendar`].
    calendar: crate::rail::calendar::SharedCalendar,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    /// The reader thread (long reads on a connection of their own), when there is one.
    reader_thread: Option<std::thread::JoinHandle<()>>,
    drain_ms: u64,
    /// The data folder's lock, released only after the writer stopped (issue 7, item 2).
    data_lock: Option<crate::store::lock::DataDirLock>,
    /// The internal link between instances, when the store is shared (docs/protocol.md §5).
    pub cluster_addr: Option<SocketAddr>,
}

/// Accepts the internal link (docs/protocol.md §5): one link byte, then that link's
/// framing, served here and never forwarded again. Ends on shutdown.
async fn serve_internal(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    use tokio::io::AsyncReadExt;
    let mut shutdown = shared.shutdown.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let shared = shared.clone();
                conns.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let mut link = [0u8; 1];
                    let wait = std::time::Duration::from_millis(shared.config.limits.read_idle_ms);
                    match tokio::time::timeout(wait, stream.read_exact(&mut link)).await {
                        Ok(Ok(_)) if link[0] == crate::cluster::LINK_PLATFORM => {
                            platform::handle_hop(shared, stream, listener::Access::Any, true).await
                        }
                        Ok(Ok(_)) if link[0] == crate::cluster::LINK_CORE => {
                            core_link::handle_hop(shared, stream, true).await
                        }
                        _ => {}
                    }
                });
            }
        }
    }
    while conns.join_next().await.is_some() {}
}

impl Running {
    /// Replaces the maintenance windows in force (SIGHUP re-reads the configuration file and
    /// calls this; docs/protocol.md §3.1). Instructions already held look at the new
    /// calendar within 200 ms. Returns the number of windows now in force.
    ///
    /// Errors: a window that does not check; the calendar in force is then kept.
    pub fn reload_calendar(
        &self,
        windows: &[crate::rail::calendar::WindowConfig],
    ) -> Result<usize, String> {
        let c = crate::rail::calendar::Calendar::from_config(windows)?;
        let n = c.len();
        *self.calendar.write().unwrap_or_else(|e| e.into_inner()) = c;
        Ok(n)
    }

    /// Drains: stops accepting, lets in-flight requests finish (up to `drain_ms`), stops the
    /// writer after its queue is empty, and returns when everything is durable.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let deadline = std::time::Duration::from_millis(self.drain_ms);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(deadline, t).await;
        }
        drop(self.writer);
        if let Some(th) = self.writer_thread.take() {
            let _ = tokio::task::spawn_blocking(move || th.join()).await;
        }
        // The writer ended once every handle was dropped, which closed the reader's queue
        // too: the reader finishes its read and closes its connection.
        if let Some(th) = self.reader_thread.take() {
            let _ = tokio::task::spawn_blocking(move || th.join()).await;
        }
        if let Some(sim) = self.rail_sim.take() {
            sim.shutdown().await;
        }
        // Only now may another process take the data folder.
        drop(self.data_lock.take());
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The soft limit on open files of this process, from Linux's `/proc/self/limits`; `None`
/// when unlimited or unreadable.
pub fn open_files_soft_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open files kept aside for the store, logs, and the process itself.
const FD_RESERVE: u64 = 64;

/// Lowers `limits.connections_max` so that every listener can reach its cap within the open
/// file limit `soft` (each connection is one descriptor; the rail uses up to
/// `rail_inflight_max` more). Returns the new cap when it had to be lowered. Without this,
/// accept fails with EMFILE before the cap is reached and new clients wait unserved.
pub fn fit_connection_cap(config: &mut Config, soft: u64) -> Option<usize> {
    let listeners = [
        config.platform_addr.is_some(),
        config.core_addr.is_some(),
        config.platform_tls.is_some(),
        config.core_tls.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count() as u64;
    if listeners == 0 {
        return None;
    }
    let spare = soft.saturating_sub(FD_RESERVE + config.rail.inflight_max as u64);
    let fit = usize::try_from((spare / listeners).max(1)).unwrap_or(usize::MAX);
    if fit < config.limits.connections_max {
        config.limits.connections_max = fit;
        config.limits.connections_per_peer_max = config.limits.connections_per_peer_max.min(fit);
        return Some(fit);
    }
    None
}

/// Takes the data folder exclusively (a second process on it fails, naming the holder's
/// pid), binds every configured listener (a busy port fails before the store is touched),
/// then opens the store — PostgreSQL at `config.database_url` when set (no data-folder
/// lock: the database arbitrates), else the embedded one under `config.data_dir` —,
/// provisions the tenants, and starts the writer and the accept loops. Prints nothing;
/// `serve` prints `ready`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    config
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    if let Some(url) = config.database_url.clone() {
        let open =
            move || Ok(Box::new(crate::store::postgres::PgStore::open(&url)?) as Box<dyn Store>);
        return start_inner(config, open.clone(), Some(Box::new(open)), None).await;
    }
    let lock = crate::store::lock::DataDirLock::acquire(&config.data_dir)?;
    let dir = config.data_dir.clone();
    let open = move || Ok(Box::new(SqliteStore::open(&dir)?) as Box<dyn Store>);
    start_inner(config, open.clone(), Some(Box::new(open)), Some(lock)).await
}

/// Opens a second connection to the gateway's store, for the reader thread.
type OpenReader = Box<dyn FnOnce() -> Result<Box<dyn Store>, crate::store::StoreError> + Send>;

/// As [`start`], over any [`Store`] (no data-folder lock: the caller owns the store).
pub async fn start_with_store(
    config: Config,
    store: Box<dyn Store>,
) -> Result<Running, StartError> {
    start_inner(config, move || Ok(store), None, None).await
}

/// The listeners of `config`, bound but not accepting: platform TCP, core TCP, platform
/// TLS, core TLS (each `None` when not configured).
type BoundListeners = [Option<listener::Bound>; 4];

async fn bind_all(config: &Config) -> Result<BoundListeners, StartError> {
    use listener::{open, Link};
    let mut out: BoundListeners = [None, None, None, None];
    if let Some(addr) = &config.platform_addr {
        out[0] = Some(open(Link::Platform, addr, None).await?);
    }
    if let Some(addr) = &config.core_addr {
        out[1] = Some(open(Link::Core, addr, None).await?);
    }
    if let Some(tls) = &config.platform_tls {
        out[2] = Some(open(Link::Platform, &tls.addr, Some(tls)).await?);
    }
    if let Some(tls) = &config.core_tls {
        out[3] = Some(open(Link::Core, &tls.addr, Some(tls)).await?);
    }
    Ok(out)
}

async fn start_inner(
    mut config: Config,
    open_store: impl FnOnce() -> Result<Box<dyn Store>, crate::store::StoreError> + Send + 'static,
    open_reader: Option<OpenReader>,
    data_lock: Option<crate::store::lock::DataDirLock>,
) -> Result<Running, StartError> {
    if let Some(soft) = open_files_soft_limit() {
        if let Some(cap) = fit_connection_cap(&mut config, soft) {
            tracing::warn!(
                open_files_limit = soft,
                connections_max = cap,
                "open-file limit too low for the configured connection cap; cap lowered (raise `ulimit -n` to restore it)"
            );
        }
    }
    // The operator area's token and the daily reconciliation time, before anything binds.
    let operator_token = config
        .operator_token()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let daily_at = config.reconcile.daily_time().map_err(StartError::Config)?;
    let bound = bind_all(&config).await?;
    let citic_bound = match &config.citic_addr {
        Some(a) => Some(crate::dialect::citic::http::open(a).await?),
        None => None,
    };
    // Several instances may share a database: the internal link, bound like the others.
    let cluster_bound = match &config.database_url {
        Some(_) => {
            let addr = config.cluster_addr.as_deref().unwrap_or("127.0.0.1:0");
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Listen {
                    what: "cluster",
                    message: format!("{addr}: {e}"),
                })?;
            Some(l)
        }
        None => None,
    };
    let cluster_id = cluster_bound.as_ref().map(|_| crate::cluster::random_id());
    let http = match &config.http_addr {
        Some(a) => Some(crate::http::open(a).await?),
        None => None,
    };
    crate::metrics::set_log_requests(config.log_requests);
    let schemas =
        Arc::new(Schemas::load_embedded().map_err(|e| StartError::Schema(e.to_string()))?);
    crate::codes::check_messages(&schemas.return_codes).map_err(StartError::Schema)?;
    let clock: Arc<dyn Clock> = match &config.clock {
        Some(s) => {
            let start = crate::clock::parse_fixed(s)
                .ok_or_else(|| StartError::Config("clock must be yyyy-MM-ddTHH:mm:ss".into()))?;
            match config.clock_speed {
                Some(speed) => Arc::new(crate::clock::RunningClock::new(start, speed)),
                None => Arc::new(FixedClock(start)),
            }
        }
        None => Arc::new(SystemClock::new(config.utc_offset_seconds)),
    };
    let calendar: crate::rail::calendar::SharedCalendar = Arc::new(std::sync::RwLock::new(
        crate::rail::calendar::Calendar::from_config(&config.rail.maintenance)
            .map_err(StartError::Config)?,
    ));
    let fresh = match &config.receipt_key_hex {
        Some(h) => decode_hex(h)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| StartError::Config("receipt_key_hex must be hex".into()))?,
        None => {
            let mut k = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
                .map_err(|_| StartError::Config("no system randomness".into()))?;
            k.to_vec()
        }
    };
    // The store's start-up reads are blocking (the PostgreSQL store runs its own runtime):
    // off this runtime's threads.
    let tenants = config.tenants.clone();
    let (store, secret, resumed, (masters, subs, counters)) =
        tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let mut store = open_store()?;
            for t in &tenants {
                for acct in &t.master_accounts {
                    store.provision_master(&t.enterprise_code, acct)?;
                }
            }
            let secret = store.receipt_secret(&fresh)?;
            let resumed = store.unresolved_instructions()?;
            let loaded = store.load()?;
            Ok((store, secret, resumed, loaded))
        })
        .await
        .map_err(|e| StartError::Config(format!("store start-up task: {e}")))??;
    let (rail_sim, rail_addr) = match &config.rail.addr {
        Some(a) => {
            let addr = tokio::net::lookup_host(a)
                .await
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| StartError::Config(format!("rail address {a} does not resolve")))?;
            (None, addr)
        }
        None => {
            let mut payers: Vec<String> = config
                .tenants
                .iter()
                .flat_map(|t| t.master_accounts.iter().cloned())
                .collect();
            payers.push(config.rail.expense_account.clone());
            let opts = crate::rail::sim::SimOptions {
                clock: clock.clone(),
                files_dir: Some(config.rail_files_dir()),
                payers,
            };
            let sim = crate::rail::sim::RailSim::start_with(
                "127.0.0.1:0",
                crate::rail::sim::SimFaults::default(),
                opts,
                None,
            )
            .await
            .map_err(|e| StartError::Listen {
                what: "built-in rail simulator",
                message: e.to_string(),
            })?;
            let addr = sim.addr();
            (Some(sim), addr)
        }
    };
    let rail_tls = match &config.rail.tls_ca {
        Some(ca) => {
            let client = match (&config.rail.client_cert, &config.rail.client_key) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                _ => None,
            };
            let cfg = crate::tls::client_config(ca, client).map_err(|e| StartError::Listen {
                what: "rail tls client",
                message: e.to_string(),
            })?;
            Some((cfg, config.rail.tls_server_name.clone()))
        }
        None => None,
    };
    let (instr_tx, instr_rx) = tokio::sync::mpsc::unbounded_channel();
    let (resume_tx, resume_rx) = tokio::sync::mpsc::unbounded_channel();
    // With several instances, a tenant's unresolved instructions resume when its lease is
    // taken (querying first), not at start.
    let resumed = if cluster_id.is_some() {
        Vec::new()
    } else {
        resumed
    };
    let state = LedgerState::from_rows(masters, subs, counters);
    if let Err(v) = crate::ledger::invariants::check_state(&state) {
        return Err(StartError::Config(format!(
            "stored ledger is inconsistent: {v}"
        )));
    }
    let mut writer_config = config.writer();
    if config.database_url.is_some() {
        writer_config.linger_us = writer::PG_LINGER_US;
    }
    let (writer, writer_thread) = writer::spawn(
        store,
        state,
        WriterCtx {
            schemas: schemas.clone(),
            clock: clock.clone(),
            signer: Signer::new(&secret),
            expense_account: config.rail.expense_account.clone(),
            instructions: Some(instr_tx),
            max_chunks: config.rail.max_chunks,
            resume: Some(resume_tx),
            cluster_owner: cluster_id.clone(),
        },
        writer_config,
    )
    .map_err(|e| StartError::Config(format!("writer thread: {e}")))?;
    // Reads that may be long (statements, a day's instructions for reconciliation) or come
    // from the public (receipt pages) run on a connection and a thread of their own, never
    // between the writer's batches: a statement of a busy day must not hold up payments.
    let (writer, reader_thread) = match open_reader {
        Some(open) => {
            let store = tokio::task::spawn_blocking(open)
                .await
                .map_err(|e| StartError::Config(format!("store reader task: {e}")))??;
            let (reader, thread) = writer::spawn_reader(store)
                .map_err(|e| StartError::Config(format!("reader thread: {e}")))?;
            (writer.with_reader(reader), Some(thread))
        }
        None => (writer, None),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let enterprises = config
        .tenants
        .iter()
        .map(|t| t.enterprise_code.clone())
        .collect();
    let drain_ms = config.limits.drain_ms;
    let mut cluster_tasks = Vec::new();
    let mut cluster_addr = None;
    let cluster = match (&cluster_bound, &cluster_id, &config.database_url) {
        (Some(l), Some(id), Some(url)) => {
            let advertise = l.local_addr().map_err(|e| StartError::Listen {
                what: "cluster",
                message: e.to_string(),
            })?;
            cluster_addr = Some(advertise);
            let cfg = crate::cluster::ClusterConfig {
                id: id.clone(),
                database_url: url.clone(),
                lease_ms: config.cluster_lease_ms.max(300),
                tenants: config
                    .tenants
                    .iter()
                    .map(|t| t.enterprise_code.clone())
                    .collect(),
                masters: config
                    .tenants
                    .iter()
                    .flat_map(|t| {
                        t.master_accounts
                            .iter()
                            .map(move |a| (a.clone(), t.enterprise_code.clone()))
                    })
                    .collect(),
                advertise,
                reply_wait_ms: config.limits.reply_wait_ms,
            };
            let (c, task) = crate::cluster::Cluster::join(cfg, writer.clone(), shutdown_rx.clone())
                .await
                .map_err(|e| StartError::Config(format!("cluster: {e}")))?;
            cluster_tasks.push(task);
            Some(c)
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        schemas,
        config: config.clone(),
        enterprises,
        writer: writer.clone(),
        clock,
        shutdown: shutdown_rx,
        cluster,
    });
    let dispatcher = crate::rail::dispatch::spawn(
        crate::rail::dispatch::DispatchConfig {
            client: crate::rail::client::RailClientConfig {
                addr: rail_addr.to_string(),
                tls: rail_tls,
                connect_timeout_ms: config.rail.connect_timeout_ms,
                read_timeout_ms: config.rail.read_timeout_ms,
            },
            inflight_max: config.rail.inflight_max,
            timing: crate::rail::dispatch::RailTiming {
                first_query_ms: config.rail.first_query_ms,
                backoff_start_ms: config.rail.backoff_start_ms,
                backoff_max_ms: config.rail.backoff_max_ms,
                rj05_retry_ms: config.rail.rj05_retry_ms,
                rj05_backoff_max_ms: config.rail.rj05_backoff_max_ms,
            },
            maintenance: crate::rail::dispatch::Maintenance {
                clock: shared.clock.clone(),
                calendar: calendar.clone(),
            },
        },
        shared.schemas.clone(),
        writer.clone(),
        instr_rx,
        resumed,
        resume_rx,
        shared.shutdown.clone(),
    );
    let mut running = Running {
        clock: shared.clock.clone(),
        calendar,
        rail_addr,
        rail_sim,
        platform_addr: None,
        core_addr: None,
        citic_addr: None,
        platform_tls_addr: None,
        core_tls_addr: None,
        http_addr: None,
        writer,
        shutdown: shutdown_tx,
        tasks: vec![dispatcher],
        writer_thread: Some(writer_thread),
        reader_thread,
        drain_ms,
        data_lock,
        cluster_addr: None,
    };
    let [platform, core, platform_tls, core_tls] = bound;
    let slots = [
        (platform, &mut running.platform_addr),
        (core, &mut running.core_addr),
        (platform_tls, &mut running.platform_tls_addr),
        (core_tls, &mut running.core_tls_addr),
    ];
    let mut tasks = Vec::new();
    for (b, slot) in slots {
        if let Some(b) = b {
            *slot = Some(b.local_addr());
            tasks.push(b.serve(shared.clone()));
        }
    }
    let listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reconciler = Arc::new(crate::reconcile::Live::new(
        running.writer.clone(),
        config.rail_files_dir(),
        config.data_dir.join("reconcile"),
        config.rail.expense_account.clone(),
    ));
    if let Some(h) = http {
        running.http_addr = Some(h.local_addr());
        tasks.push(h.serve(Arc::new(crate::http::HttpCtx {
            writer: running.writer.clone(),
            listening: listening.clone(),
            bank_name: config.bank_name.clone(),
            limiter: Default::default(),
            shutdown: shared.shutdown.clone(),
            cluster: shared.cluster.clone(),
            reconcile_dir: Some(config.data_dir.join("reconcile")),
            operator_token: operator_token.clone(),
            reconciler: Some(reconciler.clone()),
        })));
    }
    if let Some(at) = daily_at {
        running.tasks.push(crate::reconcile::spawn_daily(
            reconciler.clone(),
            at,
            shared.clock.clone(),
            shared.shutdown.clone(),
        ));
    }
    listening.store(true, std::sync::atomic::Ordering::Release);
    running.tasks.extend(tasks);
    running.tasks.extend(cluster_tasks);
    running.cluster_addr = cluster_addr;
    if let Some(l) = cluster_bound {
        running
            .tasks
            .push(tokio::spawn(serve_internal(shared.clone(), l)));
    }
    if let Some(b) = citic_bound {
        running.citic_addr = Some(b.local_addr());
        let citic = crate::dialect::citic::http::Citic::new(shared.clone())?;
        running.tasks.push(b.serve(Arc::new(citic)));
    }
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_fits_the_open_file_limit() {
        let mut c = Config::default();
        // Two listeners, 1,024 each, 16 rail slots, 64 reserved: 2,128 files are enough.
        assert_eq!(fit_connection_cap(&mut c, 4_096), None);
        assert_eq!(c.limits.connections_max, 1_024);
        assert_eq!(fit_connection_cap(&mut c, 1_024), Some(472));
        assert_eq!(c.limits.connections_max, 472);
        assert!(c.limits.connections_per_peer_max <= 472);
        assert_eq!(fit_connection_cap(&mut c, 10), Some(1));
    }

    #[test]
    fn reads_this_process_limit() {
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_files_soft_limit().is_some_and(|n| n > 0));
        }
    }
}
