//! The single batching writer (group commit).
//!
//! One OS thread owns the store connection and the in-memory [`LedgerState`]. It takes up to
//! `batch_max` jobs from a bounded queue, and for each: idempotency lookup, prefetch, the pure
//! [`decide`], appends; then it writes each changed account once, checks the ledger
//! invariants (debug builds), and commits the batch with one fsync. Replies leave only after
//! the commit returned, so an acknowledged request is durable. A full queue is refused at
//! once (`YQ9971` / core `1003`) instead of waiting without bound (issue 2, item 4).
//!
//! Two lanes feed the writer (issue 7, item 1): platform requests and core notices share the
//! main lane; final rail outcomes have a lane of their own, of which each batch takes at most
//! `rail_per_batch` after everything waiting on the main lane. However many chunks settle at
//! once, they never fill the queue that the platform and the core use, nor delay them by
//! more than a few small batches.
//!
//! No decision can stop the writer: a decision that panics, produces an unbalanced posting,
//! or leaves the ledger violating an invariant is refused (`YQ9999` / `1003`; the batch is
//! rolled back when the invariant check fails) and logged at error level.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, Stamp};
use crate::codec::charset::Charset;
use crate::codec::schema::Schemas;
use crate::codes::{CoreResult, ReturnCode};
use crate::ledger::decide::{Decision, Facts};
use crate::ledger::state::Undo;
use crate::ledger::{
    decide, invariants, Command, Ctx, Instruction, LedgerState, RailOutcome, PAGE_ROWS,
};
use crate::receipt::Signer;
use crate::store::{Store, StoreError, StoredRequest};

/// Writer limits.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Most jobs committed in one transaction (default 512).
    pub batch_max: usize,
    /// Capacity of the job queue; a submit beyond it is refused as busy (default 8,192).
    pub queue_max: usize,
    /// Most rail outcomes taken into one batch, after the main lane's jobs (default 64).
    pub rail_per_batch: usize,
    /// Capacity of the rail-outcome lane; the dispatcher waits when it is full (default
    /// 1,024).
    pub rail_queue_max: usize,
    /// How long a batch waits for more requests before it starts, µs (default 0; the
    /// PostgreSQL store uses [`PG_LINGER_US`]): fewer, fuller batches where each costs
    /// network round trips.
    pub linger_us: u64,
}

/// The batch linger on a PostgreSQL store, µs. Measured with 32 connections: 1,000 µs gave
/// 5,650–5,800 transfers/s, 300 µs 6,400–6,650/s (alternating runs); 100 µs no better.
pub const PG_LINGER_US: u64 = 300;

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_max: 512,
            queue_max: 8192,
            rail_per_batch: 64,
            rail_queue_max: 1024,
            linger_us: 0,
        }
    }
}

/// A platform reply: return code, message, and the exact body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// 6-character return code.
    pub code: String,
    /// Return message (header field 14).
    pub message: String,
    /// Body bytes (empty on most errors).
    pub body: Vec<u8>,
}

/// A validated platform request for the writer.
#[derive(Debug)]
pub struct PlatformJob {
    /// Header field 5 (trimmed).
    pub enterprise: String,
    /// Header field 12 (trimmed).
    pub serial: String,
    /// Header field 7 (trimmed).
    pub tx_code: String,
    /// Body charset (responses use the same).
    pub charset: Charset,
    /// SHA-256 of (transaction code, charset, body bytes).
    pub fingerprint: [u8; 32],
    /// The typed request.
    pub cmd: Command,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
    /// The dialect that encodes the reply; `None`: the A001 body of docs/protocol.md §1.
    pub dialect: Option<Box<dyn DialectReply>>,
}

/// A dialect's part in a platform request inside the writer (src/dialect/): the writer
/// stays dialect-neutral, and a dialect other than A001 supplies these four steps.
pub trait DialectReply: Send + Sync + std::fmt::Debug {
    /// Before the decision, with read access to the ledger: completes `cmd` with what the
    /// dialect names differently (member codes from account numbers, …) or refuses with a
    /// business code; such a refusal is answered, and recorded when [`Self::records`], like
    /// a refusal of the decision.
    fn prepare(
        &self,
        cmd: &mut Command,
        state: &LedgerState,
        enterprise: &str,
    ) -> Result<(), ReturnCode>;
    /// The reply (status, message, exact body bytes) for a decision, accepted or refused,
    /// with the facts it was made on and the ledger after it.
    fn encode(&self, d: &Decision, facts: &Facts, state: &LedgerState) -> Reply;
    /// The reply for a code the writer itself answers (`SerialReused`, `Internal`).
    fn refusal(&self, code: ReturnCode) -> Reply;
    /// `true` when the request is recorded for idempotency under (enterprise, serial);
    /// queries of some dialects are not.
    fn records(&self) -> bool;
    /// After a successful [`Self::prepare`] and before the decision: reads, inside the
    /// batch's transaction, what the reply needs beyond [`Facts`] (detail or receipt ranges
    /// of the dialect's own shape) and keeps it for [`Self::encode`]. Default: nothing.
    fn read(
        &self,
        _store: &mut dyn Store,
        _state: &LedgerState,
        _enterprise: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A work item for the writer.
#[derive(Debug)]
pub enum Job {
    /// A platform request.
    Platform(Box<PlatformJob>),
    /// A core notice (the command is always `Command::Notice`).
    Notice(Box<Command>, oneshot::Sender<CoreResult>),
    /// A final rail outcome from the dispatcher; the reply is `true` once it is durable.
    Rail(Box<RailOutcome>, oneshot::Sender<bool>),
    /// Test and operations hook: a copy of the state and the invariant check result.
    Snapshot(oneshot::Sender<(LedgerState, Result<(), invariants::Violation>)>),
    /// Several instances (docs/protocol.md §5): a tenant lease taken or given up; the reply
    /// is `true` once the writer serves (or has stopped serving) the tenant.
    Tenant(TenantChange, oneshot::Sender<bool>),
    /// A read of committed data (the HTTP listener's receipt page and readiness probe): run
    /// before the next batch's transaction begins, so it sees every committed batch, holds no
    /// write lock, and costs the writer one indexed lookup. A batch of reads alone commits
    /// nothing.
    Read(ReadJob),
}

/// A read of the store that sends its answer itself.
pub type ReadFn = dyn FnOnce(&mut dyn Store) + Send;

/// The closure of a [`Job::Read`]: it gets the store and sends its answer itself.
pub struct ReadJob(pub Box<ReadFn>);

impl std::fmt::Debug for ReadJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadJob")
    }
}

/// A change of the tenants this instance's writer may commit for (docs/protocol.md §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantChange {
    /// The lease of `enterprise` was taken at `epoch`: reload its accounts from the store,
    /// resume its unresolved rail instructions (querying first), and serve it.
    Acquire {
        /// Enterprise code.
        enterprise: String,
        /// The lease's fencing epoch; every commit for the tenant checks it.
        epoch: i64,
    },
    /// Stop committing for `enterprise` (lease lost or handed over).
    Release {
        /// Enterprise code.
        enterprise: String,
    },
}

/// The submitting side of the writer, cheap to clone.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
    rail_tx: mpsc::Sender<Job>,
    /// The reader thread's queue ([`spawn_reader`]); `None`: reads go to the writer.
    reader: Option<mpsc::Sender<ReadJob>>,
}

/// Jobs the reader thread's queue holds before [`WriterHandle::submit_read`] waits.
const READ_QUEUE_MAX: usize = 64;

/// Starts a thread that runs [`ReadJob`]s on `store`, a second connection to the writer's
/// store, one at a time in arrival order; it ends when every sender is dropped. Such a read
/// sees what is committed when it starts (SQLite in WAL mode, PostgreSQL's read committed),
/// neither waits for the writer's batches nor holds them up.
///
/// Returns the queue (for [`WriterHandle::with_reader`]) and the thread, which ends, closing
/// its connection, once every handle holding the queue is dropped.
///
/// Errors: the thread cannot be started.
pub fn spawn_reader(
    mut store: Box<dyn Store>,
) -> std::io::Result<(mpsc::Sender<ReadJob>, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<ReadJob>(READ_QUEUE_MAX);
    let thread = std::thread::Builder::new()
        .name("bankfep-reader".into())
        .spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                // A read that panics answers nothing (its caller sees no answer) and leaves
                // the thread serving the next one.
                let run = std::panic::AssertUnwindSafe(|| (job.0)(&mut *store));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("a read of the store panicked; it was not answered");
                }
            }
        })?;
    Ok((tx, thread))
}

impl WriterHandle {
    /// This handle with reads sent to the reader thread `reader` ([`spawn_reader`]) instead
    /// of the writer.
    pub fn with_reader(mut self, reader: mpsc::Sender<ReadJob>) -> WriterHandle {
        self.reader = Some(reader);
        self
    }

    /// This handle with reads sent to the writer itself, between its batches.
    pub fn without_reader(&self) -> WriterHandle {
        WriterHandle {
            reader: None,
            ..self.clone()
        }
    }

    /// Queues a read of the store, waiting for room: on the reader thread when there is one,
    /// else on the writer between batches. `false` when that thread has stopped.
    pub async fn submit_read(&self, job: ReadJob) -> bool {
        match &self.reader {
            Some(r) => r.send(job).await.is_ok(),
            None => self.tx.send(Job::Read(job)).await.is_ok(),
        }
    }

    /// Queues a job; `Err(job)` when the queue is full or the writer has stopped (busy).
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
        })
    }

    /// Queues an internal job, waiting for room instead of refusing (rail outcomes must not be
    /// dropped). `Job::Rail` goes to the rail lane, anything else to the main lane.
    /// `Err(job)` only when the writer has stopped.
    pub async fn submit_wait(&self, job: Job) -> Result<(), Job> {
        let lane = if matches!(job, Job::Rail(..)) {
            &self.rail_tx
        } else {
            &self.tx
        };
        lane.send(job).await.map_err(|e| e.0)
    }

    /// Jobs waiting in the main lane and in the rail lane (the `/metrics` queue depth).
    pub fn queue_depth(&self) -> (usize, usize) {
        (
            self.tx.max_capacity().saturating_sub(self.tx.capacity()),
            self.rail_tx
                .max_capacity()
                .saturating_sub(self.rail_tx.capacity()),
        )
    }

    /// A copy of the ledger state and its invariant check, after every earlier job committed.
    pub async fn snapshot(&self) -> Option<(LedgerState, Result<(), invariants::Violation>)> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Job::Snapshot(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// What the writer needs besides the store.
pub struct WriterCtx {
    /// Layouts and return-code messages.
    pub schemas: Arc<Schemas>,
    /// Business clock.
    pub clock: Arc<dyn Clock>,
    /// Receipt signer.
    pub signer: Signer,
    /// The bank's expense account paying small-amount verifications (docs/protocol.md §3).
    pub expense_account: String,
    /// Where newly committed rail instructions go (the dispatcher); `None`: nowhere (tests).
    pub instructions: Option<mpsc::UnboundedSender<Instruction>>,
    /// Most chunks one withdrawal may need (`rail.max_chunks`, docs/protocol.md §3).
    pub max_chunks: u32,
    /// Where instructions of a tenant taken over go, to be queried before anything is sent
    /// (the dispatcher's resume lane); `None`: nowhere.
    pub resume: Option<mpsc::UnboundedSender<Instruction>>,
    /// `Some(instance id)` when several instances share the store: the writer then commits
    /// only for tenants whose lease it holds ([`TenantChange`]), each commit fenced by the
    /// leases' epochs. `None`: this process owns every tenant of its store.
    pub cluster_owner: Option<String>,
}

/// Starts the writer thread over `store` (already loaded into `state`). Returns the handle
/// and the thread, which ends when every handle is dropped and the queue is drained.
pub fn spawn(
    store: Box<dyn Store>,
    state: LedgerState,
    ctx: WriterCtx,
    cfg: WriterConfig,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(cfg.queue_max.max(1));
    let (rail_tx, rail_rx) = mpsc::channel(cfg.rail_queue_max.max(1));
    let mut w = Writer {
        store,
        state,
        ctx,
        batch_max: cfg.batch_max.max(1),
        rail_per_batch: cfg.rail_per_batch.clamp(1, cfg.batch_max.max(1)),
        owned: std::collections::HashMap::new(),
        reserved: None,
        linger: std::time::Duration::from_micros(cfg.linger_us),
        durable: None,
        poisoned: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        keys: None,
    };
    let thread = std::thread::Builder::new()
        .name("bankfep-writer".into())
        .spawn(move || w.run(rx, rail_rx))?;
    Ok((
        WriterHandle {
            tx,
            rail_tx,
            reader: None,
        },
        thread,
    ))
}

struct Writer {
    store: Box<dyn Store>,
    state: LedgerState,
    ctx: WriterCtx,
    batch_max: usize,
    rail_per_batch: usize,
    /// Tenants leased to this instance and their epochs (only with `ctx.cluster_owner`).
    owned: std::collections::HashMap<String, i64>,
    /// Top of the identifier blocks reserved from a shared store (`Store::reserve_counters`).
    reserved: Option<crate::ledger::state::Counters>,
    /// See [`WriterConfig::linger_us`].
    linger: std::time::Duration,
    /// The flusher thread's queue when the store defers durability ([`Store::defer_sync`]):
    /// committed batches wait there for their sync before anything leaves.
    durable: Option<std::sync::mpsc::Sender<Durable>>,
    /// Set once a sync failed: nothing more is committed until a restart.
    poisoned: Arc<std::sync::atomic::AtomicBool>,
    /// Every idempotency key of the tenants served ([`crate::keyfilter`]); `None` when the
    /// store cannot list its keys (every key is then looked up in the store).
    keys: Option<crate::keyfilter::KeyFilter>,
}

/// Numbers each counter must have left before a batch starts (a request uses at most a
/// few of each).
const COUNTER_HEADROOM: u64 = 4 * 1024;
/// Size of one reserved block of each counter.
const COUNTER_BLOCK: u64 = 16 * 1024;

/// The idempotency keys a batch will look up (one store round trip for all of them), less
/// those the key filter rules out (never recorded: no lookup at all).
fn batch_keys(
    batch: &[Job],
    filter: Option<&crate::keyfilter::KeyFilter>,
) -> crate::store::BatchKeys {
    use crate::keyfilter::KeyKind;
    let maybe = |kind, e: &str, key: &str| filter.is_none_or(|f| f.may_contain(kind, e, key));
    let mut k = crate::store::BatchKeys::default();
    for job in batch {
        match job {
            Job::Platform(p) => {
                if maybe(KeyKind::Request, &p.enterprise, &p.serial) {
                    k.requests.push((p.enterprise.clone(), p.serial.clone()));
                }
                let order = match &p.cmd {
                    Command::Transfer(r) => Some(&r.order_no),
                    Command::Freeze(r) => Some(&r.order_no),
                    Command::Withdraw(r) => Some(&r.order_no),
                    Command::Allocate(r) => Some(&r.order_no),
                    _ => None,
                };
                if let Some(o) = order.filter(|o| maybe(KeyKind::Order, &p.enterprise, o)) {
                    k.orders.push((p.enterprise.clone(), o.clone()));
                }
            }
            Job::Notice(cmd, _) => {
                if let Command::Notice(n) = cmd.as_ref() {
                    k.notices.push(n.bank_serial.clone());
                }
            }
            Job::Rail(..) | Job::Snapshot(_) | Job::Tenant(..) | Job::Read(_) => {}
        }
    }
    k
}

/// Waits for the first job of a batch: the main lane first, then the rail lane. `None` once
/// both lanes are closed and empty.
async fn next_job(
    rx: &mut mpsc::Receiver<Job>,
    rail_rx: &mut mpsc::Receiver<Job>,
    open: &mut (bool, bool),
) -> Option<Job> {
    loop {
        if !open.0 && !open.1 {
            return None;
        }
        tokio::select! {
            biased;
            j = rx.recv(), if open.0 => match j {
                Some(j) => return Some(j),
                None => open.0 = false,
            },
            j = rail_rx.recv(), if open.1 => match j {
                Some(j) => return Some(j),
                None => open.1 = false,
            },
        }
    }
}

/// A reply waiting for the commit.
enum Pending {
    Platform(oneshot::Sender<Reply>, Reply),
    Core(oneshot::Sender<CoreResult>, CoreResult),
    Rail(oneshot::Sender<bool>, bool),
}

/// A snapshot request answered with the state of its batch's commit.
type SnapshotTx = oneshot::Sender<(LedgerState, Result<(), invariants::Violation>)>;

/// What one committed batch releases once it is durable: its replies, its new rail
/// instructions and its snapshots (taken at its commit).
struct Durable {
    pending: Vec<Pending>,
    instructions: Vec<Instruction>,
    snapshots: Vec<(SnapshotTx, LedgerState, Result<(), invariants::Violation>)>,
}

impl Durable {
    /// Sends everything: the batch is durable.
    fn deliver(self, out: Option<&mpsc::UnboundedSender<Instruction>>) {
        for (tx, state, check) in self.snapshots {
            let _ = tx.send((state, check));
        }
        if let Some(out) = out {
            for i in self.instructions {
                let _ = out.send(i);
            }
        }
        for p in self.pending {
            match p {
                Pending::Platform(tx, r) => {
                    let _ = tx.send(r);
                }
                Pending::Core(tx, r) => {
                    let _ = tx.send(r);
                }
                Pending::Rail(tx, r) => {
                    let _ = tx.send(r);
                }
            }
        }
    }

    /// Answers the batch as not done (`internal`: the platform's `YQ9999`, the core's
    /// `1003`, a rail outcome to report again) and sends none of its instructions.
    fn refuse(self, internal: &Reply) {
        for (tx, state, check) in self.snapshots {
            let _ = tx.send((state, check));
        }
        for p in self.pending {
            match p {
                Pending::Platform(tx, _) => {
                    let _ = tx.send(internal.clone());
                }
                Pending::Core(tx, _) => {
                    let _ = tx.send(CoreResult::Busy);
                }
                Pending::Rail(tx, _) => {
                    let _ = tx.send(false);
                }
            }
        }
    }
}

/// The flusher thread of the pipelined commit: takes every batch committed so far, makes
/// them durable with one sync, then releases them in commit order. While it syncs, the
/// writer decides and commits the next batch. A failed sync answers its batches as not done
/// and poisons the writer (nothing more is committed; a restart reloads from disk).
fn flusher(
    mut sync: Box<dyn crate::store::SyncHandle>,
    rx: std::sync::mpsc::Receiver<Durable>,
    out: Option<mpsc::UnboundedSender<Instruction>>,
    internal: Reply,
    poisoned: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut groups = Vec::new();
    while let Ok(first) = rx.recv() {
        groups.push(first);
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        let durable = !poisoned.load(Ordering::Acquire)
            && match sync.sync() {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "store sync failed: batches answered YQ9999/1003; the writer commits nothing more until a restart");
                    poisoned.store(true, Ordering::Release);
                    false
                }
            };
        for g in groups.drain(..) {
            if durable {
                g.deliver(out.as_ref());
            } else {
                g.refuse(&internal);
            }
        }
    }
}

#[derive(Default)]
struct Dirty {
    masters: BTreeSet<i64>,
    subs: BTreeSet<i64>,
    /// Enterprises whose requests were recorded in this batch (fenced at commit).
    tenants: BTreeSet<String>,
    /// Instructions created in this batch, sent to the rail after the commit.
    instructions: Vec<Instruction>,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>, mut rail_rx: mpsc::Receiver<Job>) {
        // A tiny runtime of this thread's own, only to wait on two lanes at once.
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "writer cannot wait on its lanes; stopped");
                return;
            }
        };
        // Only a networked store gains from the filter: it skips the batch's key round trip
        // and the server's index probes (PostgreSQL, 32 connections: 6,500 -> 7,400
        // transfers/s). On the embedded store a lookup only brings in the index page the
        // insert then needs anyway; measured, the filter saved nothing there.
        // With several instances (docs/protocol.md §5) a tenant's keys are recorded by
        // whichever instance held it before: the filter starts empty and takes a tenant's
        // keys when this instance takes the tenant over (`change_tenant`), after its lease
        // is held, so that no other instance can record one for it any more.
        self.keys = self
            .store
            .prefetches()
            .then(crate::keyfilter::KeyFilter::default);
        if self.ctx.cluster_owner.is_none() {
            self.add_keys(None);
        }
        let flusher_thread = match self.store.defer_sync() {
            Ok(Some(sync)) => {
                let (tx, rx) = std::sync::mpsc::channel();
                let out = self.ctx.instructions.clone();
                let internal = self.error_reply(ReturnCode::Internal);
                let poisoned = self.poisoned.clone();
                match std::thread::Builder::new()
                    .name("bankfep-flusher".into())
                    .spawn(move || flusher(sync, rx, out, internal, poisoned))
                {
                    Ok(t) => {
                        self.durable = Some(tx);
                        Some(t)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the flusher thread; writer stopped");
                        return;
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot defer the store's sync; writer stopped");
                return;
            }
        };
        let mut batch = Vec::with_capacity(self.batch_max);
        let mut open = (true, true);
        while let Some(first) = rt.block_on(next_job(&mut rx, &mut rail_rx, &mut open)) {
            let mut rails = usize::from(matches!(first, Job::Rail(..)));
            batch.push(first);
            while batch.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            // On a networked store a batch costs round trips whatever its size: wait a
            // moment for the clients whose replies just left to send their next request.
            // It stops early once no request came for a fifth of the linger (nothing more on
            // its way).
            if self.linger > std::time::Duration::ZERO && batch.len() < self.batch_max {
                let until = tokio::time::Instant::now() + self.linger;
                let gap = self.linger / 5;
                while batch.len() < self.batch_max {
                    let next = until.min(tokio::time::Instant::now() + gap);
                    match rt.block_on(async { tokio::time::timeout_at(next, rx.recv()).await }) {
                        Ok(Some(j)) => batch.push(j),
                        _ => break,
                    }
                }
            }
            while batch.len() < self.batch_max && rails < self.rail_per_batch {
                match rail_rx.try_recv() {
                    Ok(j) => {
                        rails += 1;
                        batch.push(j);
                    }
                    Err(_) => break,
                }
            }
            batch.retain_mut(|job| {
                if let Job::Tenant(change, _) = job {
                    let change = change.clone();
                    let ok = self.change_tenant(&change);
                    if let Job::Tenant(_, tx) =
                        std::mem::replace(job, Job::Snapshot(oneshot::channel().0))
                    {
                        let _ = tx.send(ok);
                    }
                    return false;
                }
                true
            });
            if !batch.is_empty() {
                self.run_batch(&mut batch);
            }
        }
        // The flusher releases what is still waiting for its sync, then stops.
        self.durable = None;
        if let Some(t) = flusher_thread {
            let _ = t.join();
        }
        tracing::info!("writer drained and stopped");
    }

    /// The decision context of one request (`enterprise` and `serial` empty for notices and
    /// rail outcomes).
    fn decision_ctx<'a>(
        &'a self,
        enterprise: &'a str,
        serial: &'a str,
        stamp: &'a Stamp,
    ) -> Ctx<'a> {
        Ctx {
            enterprise,
            stamp,
            signer: &self.ctx.signer,
            serial,
            expense_account: &self.ctx.expense_account,
            max_chunks: self.ctx.max_chunks,
        }
    }

    fn message(&self, code: &str) -> String {
        self.ctx
            .schemas
            .return_codes
            .platform_message(code)
            .unwrap_or("")
            .to_string()
    }

    fn error_reply(&self, code: ReturnCode) -> Reply {
        Reply {
            code: code.as_str().to_string(),
            message: self.message(code.as_str()),
            body: Vec::new(),
        }
    }

    /// Whether this writer may commit for `enterprise` (always, on a store of its own).
    fn owns(&self, enterprise: &str) -> bool {
        self.ctx.cluster_owner.is_none() || self.owned.contains_key(enterprise)
    }

    /// Adds the recorded keys of `enterprise` (every key of the store when `None`) to the
    /// key filter, if there is one. Should they not be listed, the filter is dropped: every
    /// key is then looked up in the store (a filter missing keys would let a replay be
    /// booked again).
    fn add_keys(&mut self, enterprise: Option<&str>) {
        let Some(filter) = self.keys.as_mut() else {
            return;
        };
        let started = std::time::Instant::now();
        let before = filter.inserted();
        match self
            .store
            .idempotency_keys(enterprise, &mut |kind, e, k| filter.insert(kind, e, k))
        {
            Ok(true) => tracing::info!(
                enterprise = enterprise.unwrap_or("(all)"),
                keys = filter.inserted() - before,
                ms = started.elapsed().as_millis() as u64,
                "idempotency keys loaded into the key filter"
            ),
            Ok(false) => self.keys = None,
            Err(e) => {
                tracing::warn!(error = %e, enterprise = enterprise.unwrap_or("(all)"), "cannot list idempotency keys; every key is looked up in the store");
                self.keys = None;
            }
        }
    }

    /// Whether request key (enterprise, serial) may have been recorded: `false` only when
    /// it certainly was not (no store lookup needed).
    fn may_have_request(&self, enterprise: &str, serial: &str) -> bool {
        self.keys
            .as_ref()
            .is_none_or(|f| f.may_contain(crate::keyfilter::KeyKind::Request, enterprise, serial))
    }

    /// Whether `order_no` may have been used by `enterprise` (see [`Self::may_have_request`]).
    fn may_have_order(&self, enterprise: &str, order_no: &str) -> bool {
        self.keys
            .as_ref()
            .is_none_or(|f| f.may_contain(crate::keyfilter::KeyKind::Order, enterprise, order_no))
    }

    /// Whether `enterprise` used `order_no` (the filter first, then the store).
    fn order_used(&mut self, enterprise: &str, order_no: &str) -> Result<bool, StoreError> {
        if !self.may_have_order(enterprise, order_no) {
            return Ok(false);
        }
        self.store.order_used(enterprise, order_no)
    }

    /// Records a request for idempotency, its key in the filter first.
    fn record(&mut self, r: &StoredRequest) -> Result<(), StoreError> {
        if let Some(f) = self.keys.as_mut() {
            f.insert(
                crate::keyfilter::KeyKind::Request,
                &r.enterprise_code,
                &r.serial,
            );
        }
        self.store.record_request(r)
    }

    /// Appends a decision's rows, its order number in the filter first.
    fn append_writes(
        &mut self,
        enterprise: &str,
        front_seq_no: Option<&str>,
        w: &crate::ledger::decide::Writes,
    ) -> Result<(), StoreError> {
        if let (Some(f), Some(o)) = (self.keys.as_mut(), w.order_no.as_deref()) {
            f.insert(crate::keyfilter::KeyKind::Order, enterprise, o);
        }
        self.store.append(enterprise, front_seq_no, w)
    }

    /// The enterprise of master account `id` (empty when unknown).
    fn enterprise_of_master(&self, id: i64) -> String {
        self.state
            .master(id)
            .map(|m| m.enterprise_code.clone())
            .unwrap_or_default()
    }

    /// Applies a lease change; `false` when the tenant could not be loaded.
    fn change_tenant(&mut self, change: &TenantChange) -> bool {
        match change {
            TenantChange::Release { enterprise } => {
                self.owned.remove(enterprise);
                true
            }
            TenantChange::Acquire { enterprise, epoch } => {
                let loaded = self
                    .store
                    .load_tenant(enterprise)
                    .and_then(|(masters, subs)| {
                        let ids: BTreeSet<i64> = masters.iter().map(|m| m.id).collect();
                        let unresolved = self.store.unresolved_instructions()?;
                        Ok((masters, subs, ids, unresolved))
                    });
                match loaded {
                    Ok((masters, subs, ids, unresolved)) => {
                        self.add_keys(Some(enterprise));
                        self.state.replace_tenant(enterprise, masters, subs);
                        self.owned.insert(enterprise.clone(), *epoch);
                        if let Some(tx) = &self.ctx.resume {
                            for i in unresolved
                                .into_iter()
                                .filter(|i| ids.contains(&i.master_id))
                            {
                                let _ = tx.send(i);
                            }
                        }
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, enterprise = %enterprise, "cannot load a tenant taken over");
                        false
                    }
                }
            }
        }
    }

    /// Reserves identifier numbers from a shared store when fewer than
    /// [`COUNTER_HEADROOM`] are left (no-op on a store that saves counters per batch).
    fn ensure_numbers(&mut self) -> Result<(), StoreError> {
        let cur = self.state.counters;
        if let Some(r) = self.reserved {
            let left = |top: u64, at: u64| top.saturating_sub(at) >= COUNTER_HEADROOM;
            if left(r.front_seq, cur.front_seq)
                && left(r.sub_seq, cur.sub_seq)
                && left(r.receipt_seq, cur.receipt_seq)
            {
                return Ok(());
            }
        }
        if let Some(top) = self.store.reserve_counters(COUNTER_BLOCK)? {
            let from = |top: u64, at: u64| at.max(top.saturating_sub(COUNTER_BLOCK));
            self.state.counters = crate::ledger::state::Counters {
                front_seq: from(top.front_seq, cur.front_seq),
                sub_seq: from(top.sub_seq, cur.sub_seq),
                receipt_seq: from(top.receipt_seq, cur.receipt_seq),
            };
            self.reserved = Some(top);
        }
        Ok(())
    }

    fn run_batch(&mut self, batch: &mut Vec<Job>) {
        for job in batch.extract_if(.., |j| matches!(j, Job::Read(_))) {
            self.fail(job); // answers a read outside any transaction
        }
        if batch.is_empty() {
            return;
        }
        if self.poisoned.load(std::sync::atomic::Ordering::Acquire) {
            for job in batch.drain(..) {
                self.fail(job);
            }
            return;
        }
        let started = std::time::Instant::now();
        let size = batch.len();
        let stamp = Stamp::of(self.ctx.clock.now());
        let mut pending: Vec<Pending> = Vec::with_capacity(batch.len());
        let mut undo: Vec<Undo> = Vec::new();
        let mut dirty = Dirty::default();
        // Snapshots are answered after the commit, so they never show uncommitted state.
        let mut snapshots = Vec::new();
        if let Err(e) = self
            .ensure_numbers()
            .and_then(|_| self.store.begin())
            .and_then(|_| {
                // Keys are gathered only for a store that looks them up in one go.
                if self.store.prefetches() {
                    self.store.prefetch(&batch_keys(batch, self.keys.as_ref()))
                } else {
                    Ok(())
                }
            })
        {
            tracing::error!(error = %e, "cannot begin batch");
            let _ = self.store.rollback();
            for job in batch.drain(..) {
                self.fail(job);
            }
            return;
        }
        for job in batch.drain(..) {
            match job {
                Job::Snapshot(tx) => snapshots.push(tx),
                Job::Tenant(_, tx) => {
                    // Handled before the batch by `run`; never here.
                    let _ = tx.send(false);
                }
                Job::Read(f) => (f.0)(&mut *self.store),
                Job::Platform(p) => {
                    dirty.tenants.insert(p.enterprise.clone());
                    let (mark, sent) = (undo.len(), dirty.instructions.len());
                    let reply =
                        self.in_savepoint(|w| w.platform(&p, &stamp, &mut undo, &mut dirty));
                    let reply = reply.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "request failed in store; answered YQ9999");
                        self.state.rollback(&mut undo, mark);
                        // Its instructions were rolled back with it: they must never be sent.
                        dirty.instructions.truncate(sent);
                        self.error_reply(ReturnCode::Internal)
                    });
                    pending.push(Pending::Platform(p.reply, reply));
                }
                Job::Notice(cmd, reply) => {
                    let mark = undo.len();
                    let result = self
                        .in_savepoint(|w| w.notice(&cmd, &stamp, &mut undo, &mut dirty))
                        .unwrap_or_else(|e| {
                            tracing::error!(error = %e, "notice failed in store; answered 1003");
                            self.state.rollback(&mut undo, mark);
                            CoreResult::Busy
                        });
                    pending.push(Pending::Core(reply, result));
                }
                Job::Rail(outcome, reply) => {
                    let mark = undo.len();
                    let ok = self
                        .in_savepoint(|w| w.rail(&outcome, &stamp, &mut undo, &mut dirty))
                        .unwrap_or_else(|e| {
                            tracing::error!(error = %e, "rail outcome failed in store; will be re-reported");
                            self.state.rollback(&mut undo, mark);
                            false
                        });
                    pending.push(Pending::Rail(reply, ok));
                }
            }
        }
        let decided = started.elapsed();
        let committed = crate::metrics::commit(pending.len(), || self.finish_batch(&dirty));
        tracing::trace!(
            size,
            decide_us = decided.as_micros() as u64,
            commit_us = started.elapsed().saturating_sub(decided).as_micros() as u64,
            "batch"
        );
        if let Err(e) = committed {
            tracing::error!(error = %e, "batch commit failed; every request answered YQ9999/1003");
            let _ = self.store.rollback();
            self.state.rollback(&mut undo, 0);
            // Nothing of the batch is sent; snapshots show the state restored.
            Durable {
                pending,
                instructions: Vec::new(),
                snapshots: self.snapshots_now(snapshots),
            }
            .refuse(&self.error_reply(ReturnCode::Internal));
            return;
        }
        let done = Durable {
            pending,
            instructions: std::mem::take(&mut dirty.instructions),
            snapshots: self.snapshots_now(snapshots),
        };
        match &self.durable {
            // Released by the flusher after the sync that covers this commit.
            Some(q) => {
                if let Err(std::sync::mpsc::SendError(done)) = q.send(done) {
                    done.refuse(&self.error_reply(ReturnCode::Internal));
                }
            }
            None => done.deliver(self.ctx.instructions.as_ref()),
        }
    }

    /// Snapshot answers of the state as it is now, to send with their batch's outcome.
    fn snapshots_now(
        &self,
        snapshots: Vec<SnapshotTx>,
    ) -> Vec<(SnapshotTx, LedgerState, Result<(), invariants::Violation>)> {
        snapshots
            .into_iter()
            .map(|tx| (tx, self.state.clone(), invariants::check_state(&self.state)))
            .collect()
    }

    fn fail(&mut self, job: Job) {
        match job {
            Job::Platform(p) => {
                let _ = p.reply.send(self.error_reply(ReturnCode::Internal));
            }
            Job::Notice(_, tx) => {
                let _ = tx.send(CoreResult::Busy);
            }
            Job::Rail(_, tx) => {
                let _ = tx.send(false);
            }
            Job::Snapshot(tx) => {
                let check = invariants::check_state(&self.state);
                let _ = tx.send((self.state.clone(), check));
            }
            Job::Tenant(_, tx) => {
                let _ = tx.send(false);
            }
            Job::Read(f) => (f.0)(&mut *self.store),
        }
    }

    fn in_savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.store.savepoint()?;
        match f(self) {
            Ok(v) => {
                self.store.release()?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.store.rollback_to();
                Err(e)
            }
        }
    }

    fn finish_batch(&mut self, dirty: &Dirty) -> Result<(), StoreError> {
        if !dirty.masters.is_empty() || !dirty.subs.is_empty() {
            let masters: Vec<_> = dirty
                .masters
                .iter()
                .filter_map(|id| self.state.master(*id))
                .collect();
            let subs: Vec<_> = dirty
                .subs
                .iter()
                .filter_map(|id| self.state.sub(*id))
                .collect();
            self.store.write_accounts(&masters, &subs)?;
        }
        self.store.save_counters(&self.state.counters)?;
        if let Some(top) = self.reserved {
            // Never hand out a number beyond this instance's reserved block (another
            // instance may own it): refuse the batch instead (never expected: see
            // COUNTER_HEADROOM).
            let c = self.state.counters;
            if c.front_seq > top.front_seq
                || c.sub_seq > top.sub_seq
                || c.receipt_seq > top.receipt_seq
            {
                tracing::error!("identifier block exhausted inside a batch; batch refused");
                return Err(StoreError::Corrupt("identifier block exhausted"));
            }
        }
        if let Some(owner) = &self.ctx.cluster_owner {
            let mut tenants = dirty.tenants.clone();
            for id in &dirty.masters {
                tenants.insert(self.enterprise_of_master(*id));
            }
            for id in &dirty.subs {
                if let Some(s) = self.state.sub(*id) {
                    tenants.insert(self.enterprise_of_master(s.master_id));
                }
            }
            // A tenant not held (never expected: each job is checked) fences with epoch 0,
            // which no lease has: the commit then fails rather than write for it.
            let fence: Vec<(String, i64)> = tenants
                .into_iter()
                .map(|t| {
                    let epoch = self.owned.get(&t).copied().unwrap_or(0);
                    (t, epoch)
                })
                .collect();
            self.store.set_fence(owner, &fence);
        }
        if cfg!(debug_assertions) {
            if let Err(v) = invariants::check_state(&self.state) {
                // Never commit a broken ledger, and never stop the writer: the whole batch is
                // rolled back and answered YQ9999 / 1003 (the caller's failure path).
                tracing::error!(violation = %v, "ledger invariant broken before commit; batch refused");
                return Err(StoreError::Corrupt("ledger invariant broken before commit"));
            }
        }
        self.store.commit()
    }

    /// Runs the pure decision, turning a panic or an unbalanced posting into `None` (the
    /// caller answers YQ9999 / 1003 and writes nothing): no decision can stop the writer.
    fn decide_safely(
        &self,
        cmd: &Command,
        facts: &Facts,
        enterprise: &str,
        serial: &str,
        stamp: &Stamp,
    ) -> Option<Decision> {
        let ctx = self.decision_ctx(enterprise, serial, stamp);
        let state = &self.state;
        let d = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decide(cmd, state, facts, &ctx)
        })) {
            Ok(d) => d,
            Err(_) => {
                tracing::error!("ledger decision panicked; request refused, nothing written");
                return None;
            }
        };
        if let Err(v) = invariants::check_postings(&d.writes.postings) {
            tracing::error!(violation = %v, "decision produced a bad posting; refused");
            return None;
        }
        Some(d)
    }

    /// Applies an accepted decision's post-images to memory, remembering what to write.
    fn apply(&mut self, d: &Decision, undo: &mut Vec<Undo>, dirty: &mut Dirty) {
        for m in &d.writes.masters {
            dirty.masters.insert(m.id);
            self.state.put_master(m.clone(), undo);
        }
        for s in &d.writes.subs {
            dirty.subs.insert(s.id);
            self.state.put_sub(s.clone(), undo);
        }
        if let Some(c) = d.writes.counters {
            self.state.put_counters(c, undo);
        }
        dirty
            .instructions
            .extend(d.writes.instructions.iter().cloned());
    }

    fn prefetch(&mut self, enterprise: &str, cmd: &Command) -> Result<Facts, StoreError> {
        let mut f = Facts::default();
        match cmd {
            Command::Transfer(r) => f.order_used = self.order_used(enterprise, &r.order_no)?,
            Command::Freeze(r) => f.order_used = self.order_used(enterprise, &r.order_no)?,
            Command::Withdraw(r) => f.order_used = self.order_used(enterprise, &r.order_no)?,
            Command::Rail(r) => {
                f.instruction = self.store.instruction(&r.instruction_id)?;
                // Only a failed chunk needs its withdrawal (the commission refund rule).
                if let Some(i) = f
                    .instruction
                    .as_ref()
                    .filter(|i| !r.settled && i.kind == crate::ledger::InstructionKind::Chunk)
                {
                    f.refund_withdrawal =
                        self.store.withdrawal_refund_facts(&i.front_seq_no, &i.id)?;
                }
            }
            Command::Allocate(r) => {
                f.order_used = self.order_used(enterprise, &r.order_no)?;
                f.credit = self.store.credit(&r.inbound_seq_no)?;
            }
            Command::Details(r) => {
                if let Some(sub) = self.state.sub_owned(enterprise, &r.sub_acct_no) {
                    let id = sub.id;
                    f.entries = self.store.entries_page(
                        id,
                        r.start_date,
                        r.end_date,
                        r.page.max(1),
                        PAGE_ROWS,
                    )?;
                }
            }
            Command::Credits(r) => {
                let ids: Vec<i64> = self
                    .state
                    .masters_of(enterprise)
                    .iter()
                    .map(|m| m.id)
                    .collect();
                f.credits = self.store.credits_page(
                    &ids,
                    r.start_date,
                    r.end_date,
                    r.page.max(1),
                    PAGE_ROWS,
                )?;
            }
            Command::Status { orig_serial } => {
                f.status = self
                    .store
                    .request(enterprise, orig_serial)?
                    .map(|r| r.status());
                // Any recorded request may be a withdrawal (6033, or a dialect's own code).
                if f.status.is_some() {
                    f.withdrawal = self.store.withdrawal_by_serial(enterprise, orig_serial)?;
                }
            }
            Command::Receipt { front_seq_no } => f.receipt = self.store.receipt(front_seq_no)?,
            Command::Notice(n) => f.notice_seen = self.store.notice_seen(&n.bank_serial)?,
            Command::Open(_)
            | Command::Close(_)
            | Command::Balance { .. }
            | Command::Bind(_)
            | Command::ConfirmBind(_)
            | Command::Unbind(_) => {}
        }
        Ok(f)
    }

    fn platform(
        &mut self,
        p: &PlatformJob,
        stamp: &Stamp,
        undo: &mut Vec<Undo>,
        dirty: &mut Dirty,
    ) -> Result<Reply, StoreError> {
        if !self.owns(&p.enterprise) {
            // Another instance holds this tenant (or it is moving): busy, retry (§5).
            return Ok(match &p.dialect {
                Some(d) => d.refusal(ReturnCode::Busy),
                None => self.error_reply(ReturnCode::Busy),
            });
        }
        if let Some(dialect) = &p.dialect {
            return self.platform_dialect(p, dialect.as_ref(), stamp, undo, dirty);
        }
        let prev = if self.may_have_request(&p.enterprise, &p.serial) {
            self.store.request(&p.enterprise, &p.serial)?
        } else {
            None
        };
        if let Some(prev) = prev {
            if prev.fingerprint == p.fingerprint {
                return Ok(Reply {
                    code: prev.return_code,
                    message: prev.return_msg,
                    body: prev.body,
                });
            }
            return Ok(self.error_reply(ReturnCode::SerialReused));
        }
        let facts = self.prefetch(&p.enterprise, &p.cmd)?;
        let Some(d) = self.decide_safely(&p.cmd, &facts, &p.enterprise, &p.serial, stamp) else {
            return Ok(self.error_reply(ReturnCode::Internal));
        };
        // A refusal normally has no body; one with fields (E10007 RemainingAttempts) has.
        let reply = if d.code == ReturnCode::Ok || !d.fields.is_empty() {
            let fields: Vec<(&str, &str)> =
                d.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match crate::codec::xml::encode_body(p.charset, &fields, d.rows.as_deref()) {
                Ok(body) => Reply {
                    code: d.code.as_str().to_string(),
                    message: self.message(d.code.as_str()),
                    body,
                },
                Err(_) => {
                    // A stored text that the request's charset cannot carry: refuse, move nothing.
                    tracing::warn!(tx = %p.tx_code, "response not encodable in request charset");
                    return Ok(self.error_reply(ReturnCode::Malformed));
                }
            }
        } else {
            self.error_reply(d.code)
        };
        // Refusals carry no writes, except those that use something up (E10007 an attempt).
        self.append_writes(&p.enterprise, d.front_seq_no.as_deref(), &d.writes)?;
        self.apply(&d, undo, dirty);
        self.record(&StoredRequest {
            enterprise_code: p.enterprise.clone(),
            serial: p.serial.clone(),
            tx_code: p.tx_code.clone(),
            fingerprint: p.fingerprint.to_vec(),
            return_code: reply.code.clone(),
            return_msg: reply.message.clone(),
            body: reply.body.clone(),
        })?;
        Ok(reply)
    }

    /// [`Self::platform`] for a request of a dialect other than A001: the same steps, with
    /// the dialect's preparation and reply encoder.
    fn platform_dialect(
        &mut self,
        p: &PlatformJob,
        dialect: &dyn DialectReply,
        stamp: &Stamp,
        undo: &mut Vec<Undo>,
        dirty: &mut Dirty,
    ) -> Result<Reply, StoreError> {
        let records = dialect.records();
        if records && self.may_have_request(&p.enterprise, &p.serial) {
            if let Some(prev) = self.store.request(&p.enterprise, &p.serial)? {
                if prev.fingerprint == p.fingerprint {
                    return Ok(Reply {
                        code: prev.return_code,
                        message: prev.return_msg,
                        body: prev.body,
                    });
                }
                return Ok(dialect.refusal(ReturnCode::SerialReused));
            }
        }
        let mut cmd = p.cmd.clone();
        let (d, facts) = match dialect.prepare(&mut cmd, &self.state, &p.enterprise) {
            Ok(()) => {
                let facts = self.prefetch(&p.enterprise, &cmd)?;
                dialect.read(self.store.as_mut(), &self.state, &p.enterprise)?;
                let Some(d) = self.decide_safely(&cmd, &facts, &p.enterprise, &p.serial, stamp)
                else {
                    return Ok(dialect.refusal(ReturnCode::Internal));
                };
                (d, facts)
            }
            Err(code) => (
                Decision {
                    code,
                    fields: Vec::new(),
                    rows: None,
                    front_seq_no: None,
                    writes: Default::default(),
                },
                Facts::default(),
            ),
        };
        self.append_writes(&p.enterprise, d.front_seq_no.as_deref(), &d.writes)?;
        self.apply(&d, undo, dirty);
        let reply = dialect.encode(&d, &facts, &self.state);
        if records {
            self.record(&StoredRequest {
                enterprise_code: p.enterprise.clone(),
                serial: p.serial.clone(),
                tx_code: p.tx_code.clone(),
                fingerprint: p.fingerprint.to_vec(),
                return_code: reply.code.clone(),
                return_msg: reply.message.clone(),
                body: reply.body.clone(),
            })?;
        }
        Ok(reply)
    }

    fn notice(
        &mut self,
        cmd: &Command,
        stamp: &Stamp,
        undo: &mut Vec<Undo>,
        dirty: &mut Dirty,
    ) -> Result<CoreResult, StoreError> {
        let facts = self.prefetch("", cmd)?;
        let Some(d) = self.decide_safely(cmd, &facts, "", "", stamp) else {
            return Ok(CoreResult::Busy);
        };
        let tenant = d.writes.masters.first().map(|m| m.enterprise_code.clone());
        if tenant.is_some_and(|t| !self.owns(&t)) {
            return Ok(CoreResult::Busy);
        }
        Ok(match d.code {
            ReturnCode::Ok => {
                if d.front_seq_no.is_some() {
                    self.store
                        .append("", d.front_seq_no.as_deref(), &d.writes)?;
                    self.apply(&d, undo, dirty);
                }
                CoreResult::Accepted
            }
            ReturnCode::NoRecord => CoreResult::UnknownPayee,
            _ => CoreResult::Malformed,
        })
    }

    fn rail(
        &mut self,
        outcome: &RailOutcome,
        stamp: &Stamp,
        undo: &mut Vec<Undo>,
        dirty: &mut Dirty,
    ) -> Result<bool, StoreError> {
        let cmd = Command::Rail(outcome.clone());
        let facts = self.prefetch("", &cmd)?;
        if let Some(i) = &facts.instruction {
            let tenant = self.enterprise_of_master(i.master_id);
            if !self.owns(&tenant) {
                // Its tenant moved to another instance, which resumed it (querying first):
                // this report is dropped, nothing is booked here.
                tracing::info!(id = %i.id, "rail outcome for a tenant not held; left to its owner");
                return Ok(true);
            }
        }
        let Some(d) = self.decide_safely(&cmd, &facts, "", "", stamp) else {
            // Not durable: the dispatcher reports it again later.
            return Ok(false);
        };
        if d.code != ReturnCode::Ok {
            tracing::warn!(
                code = d.code.as_str(),
                "rail outcome for an unknown instruction ignored"
            );
            return Ok(true);
        }
        self.store
            .append("", d.front_seq_no.as_deref(), &d.writes)?;
        self.apply(&d, undo, dirty);
        Ok(true)
    }
}
