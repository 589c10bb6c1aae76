//! The rail dispatcher and resolver (docs/protocol.md §3): drives every instruction to a final
//! outcome exactly once.
//!
//! - A new instruction (already durable: the writer hands it over only after its batch
//!   committed) is sent once.
//! - `S` or any `F` but `RJ04` is final and reported to the writer, which books it durably.
//! - `P`, a timeout or a broken connection leaves the outcome unknown: the instruction is
//!   queried with `7003` for the same id after `first_query_ms` (≤ 2 s), then with a backoff
//!   doubling from `backoff_start_ms` up to `backoff_max_ms` between queries, forever until
//!   resolved. Money is never sent again under a new id.
//! - Only `RJ04` (the rail never received it) to a `7003` lets the same instruction, with the
//!   same id, be sent again.
//! - After a restart every unresolved instruction is resumed by querying first, because the
//!   gateway cannot know whether it was sent before the crash.
//!
//! - Maintenance windows (§3.1): before each send the calendar is consulted with the
//!   business clock; an instruction whose payee bank is in a window waits (holding no slot)
//!   and is sent with the same id when the window ends. An `RJ05` answer holds it the same
//!   way: sent again after `rj05_retry_ms`, doubling up to `rj05_backoff_max_ms`, and other
//!   unsent instructions to that bank wait until then too. Nothing is refunded for a window.
//!
//! At most `inflight_max` rail calls run at once; instructions waiting for a backoff hold no
//! slot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use super::client::{self, RailClientConfig};
use super::wire::{RailRequest, RailStatus, TradeCode};
use crate::codec::schema::Schemas;
use crate::ledger::{Instruction, RailOutcome};
use crate::writer::{Job, WriterHandle};

/// Query schedule of unknown outcomes, ms (docs/protocol.md §3 defaults: 1,000 / 1,000 / 30,000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RailTiming {
    /// Wait before the first `7003` of an unknown instruction (§3: within 2 s).
    pub first_query_ms: u64,
    /// Wait before the second query; doubles after each query.
    pub backoff_start_ms: u64,
    /// Longest wait between queries (§3: at most 30 s).
    pub backoff_max_ms: u64,
    /// Wait before sending again after an `RJ05` (§3.1: 60 s); doubles after each `RJ05`.
    pub rj05_retry_ms: u64,
    /// Longest wait between sends after `RJ05` (§3.1: at most 10 min).
    pub rj05_backoff_max_ms: u64,
}

impl Default for RailTiming {
    fn default() -> Self {
        RailTiming {
            first_query_ms: 1_000,
            backoff_start_ms: 1_000,
            backoff_max_ms: 30_000,
            rj05_retry_ms: 60_000,
            rj05_backoff_max_ms: 600_000,
        }
    }
}

/// Dispatcher settings.
#[derive(Clone, Debug)]
pub struct DispatchConfig {
    /// How to reach the rail.
    pub client: RailClientConfig,
    /// Most concurrent rail calls (each on its own connection).
    pub inflight_max: usize,
    /// Query schedule.
    pub timing: RailTiming,
    /// Maintenance windows and the business clock they are read with (§3.1).
    pub maintenance: Maintenance,
}

/// The calendar of maintenance windows and the business clock (docs/protocol.md §3.1).
#[derive(Clone)]
pub struct Maintenance {
    /// Business clock.
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Windows in force (replaced on SIGHUP).
    pub calendar: super::calendar::SharedCalendar,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance").finish_non_exhaustive()
    }
}

impl Maintenance {
    /// No windows, with the wall clock of China Standard Time.
    pub fn none() -> Maintenance {
        Maintenance {
            clock: Arc::new(crate::clock::SystemClock::default()),
            calendar: Default::default(),
        }
    }
}

/// Longest real sleep between two looks at the calendar while held, ms: a reload or a
/// faster test clock is noticed within this.
const HOLD_POLL_MS: u64 = 200;

/// The §3 request for an instruction (`7001` or `7002`).
pub fn to_request(i: &Instruction) -> RailRequest {
    RailRequest {
        trade: if i.trade_code == "7002" {
            TradeCode::SameBank
        } else {
            TradeCode::Ibps
        },
        instruction_id: i.id.clone(),
        payer_acct: i.payer_acct.clone(),
        payee_acct: i.payee_acct.clone(),
        payee_name: i.payee_name.clone(),
        payee_bank: i.payee_bank.clone(),
        amount_fen: i.amount,
        memo: i.memo.clone(),
    }
}

/// Starts the dispatcher: `resumed` instructions (unresolved at start-up) are queried first;
/// new ones arrive on `new`; instructions of a tenant taken over from another instance
/// arrive on `resume` and are queried first too. Ends on shutdown (unresolved instructions
/// stay persisted and resume at the next start).
pub fn spawn(
    cfg: DispatchConfig,
    schemas: Arc<Schemas>,
    writer: WriterHandle,
    mut new: mpsc::UnboundedReceiver<Instruction>,
    resumed: Vec<Instruction>,
    mut resume: mpsc::UnboundedReceiver<Instruction>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shared = Arc::new(Driver {
            slots: Semaphore::new(cfg.inflight_max.max(1)),
            rj05_until: std::sync::Mutex::new(std::collections::HashMap::new()),
            cfg,
            schemas,
            writer,
        });
        let mut tasks = JoinSet::new();
        if !resumed.is_empty() {
            tracing::info!(
                count = resumed.len(),
                "resuming unresolved rail instructions"
            );
        }
        for i in resumed {
            tasks.spawn(shared.clone().drive(i, true));
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                next = new.recv() => match next {
                    Some(i) => { tasks.spawn(shared.clone().drive(i, false)); }
                    None => break,
                },
                Some(i) = resume.recv() => {
                    tasks.spawn(shared.clone().drive(i, true));
                }
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    })
}

struct Driver {
    cfg: DispatchConfig,
    schemas: Arc<Schemas>,
    writer: WriterHandle,
    slots: Semaphore,
    /// Bank key → real instant before which nothing more is sent to it (after an `RJ05`).
    rj05_until: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
}

impl Driver {
    async fn call(
        &self,
        req: &RailRequest,
    ) -> Result<super::wire::RailReply, client::RailCallError> {
        let _slot = self.slots.acquire().await;
        client::call(&self.cfg.client, &self.schemas, req).await
    }

    /// Sends the instruction once its bank is open (§3.1), looking at the calendar again
    /// after a rail slot was obtained: a window may have opened while it waited for one.
    async fn send_when_open(
        &self,
        instr: &Instruction,
    ) -> Result<super::wire::RailReply, client::RailCallError> {
        loop {
            self.hold_while_closed(instr).await;
            let slot = self.slots.acquire().await;
            if self.closed_until(instr).is_some() {
                drop(slot);
                continue;
            }
            return client::call(&self.cfg.client, &self.schemas, &to_request(instr)).await;
        }
    }

    /// Whether the instruction's bank is closed now: by an `RJ05` hold (real instant) or a
    /// calendar window (business end).
    fn closed_until(&self, instr: &Instruction) -> Option<()> {
        let bank = super::calendar::bank_key(instr);
        let rj05 = self
            .rj05_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&bank)
            .is_some_and(|u| *u > tokio::time::Instant::now());
        let m = &self.cfg.maintenance;
        let window = m
            .calendar
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .held_until(&bank, m.clock.now())
            .is_some();
        (rj05 || window).then_some(())
    }

    /// Drives one instruction to a final outcome and reports it. `query_first`: the outcome
    /// of an earlier send is unknown (restart), so ask before sending.
    async fn drive(self: Arc<Self>, instr: Instruction, mut query_first: bool) {
        let _unresolved = crate::metrics::rail_unresolved(&instr.id);
        let t = self.cfg.timing;
        let mut wait_ms = t.first_query_ms;
        let mut next_wait_ms = t.backoff_start_ms;
        let mut rj05_wait_ms = t.rj05_retry_ms;
        loop {
            let answer = if query_first {
                self.call(&RailRequest::query(&instr.id)).await
            } else {
                self.send_when_open(&instr).await
            };
            match answer {
                Ok(reply) => match reply.status {
                    RailStatus::Settled => return self.report(&instr, true, String::new()).await,
                    RailStatus::Failed if reply.reject_code == "RJ04" => {
                        if query_first {
                            // The rail never received it: send the same instruction again.
                            tracing::info!(id = %instr.id, "RJ04: sending the instruction again");
                            query_first = false;
                            continue;
                        }
                        tracing::warn!(id = %instr.id, "RJ04 answered to a send; outcome unknown");
                    }
                    RailStatus::Failed if reply.reject_code == "RJ05" => {
                        // §3.1: not accepted, nothing booked: send the same id again later.
                        let bank = super::calendar::bank_key(&instr);
                        tracing::info!(
                            id = %instr.id, bank = %bank, wait_ms = rj05_wait_ms,
                            "RJ05: payee bank in maintenance; holding the instruction"
                        );
                        let until =
                            tokio::time::Instant::now() + Duration::from_millis(rj05_wait_ms);
                        {
                            let mut m = self.rj05_until.lock().unwrap_or_else(|e| e.into_inner());
                            let e = m.entry(bank).or_insert(until);
                            *e = (*e).max(until);
                        }
                        tokio::time::sleep_until(until).await;
                        rj05_wait_ms = rj05_wait_ms.saturating_mul(2).min(t.rj05_backoff_max_ms);
                        query_first = false;
                        continue;
                    }
                    RailStatus::Failed => {
                        return self.report(&instr, false, reply.reject_code).await
                    }
                    RailStatus::Pending => {}
                },
                Err(e) => {
                    tracing::info!(id = %instr.id, error = ?e, "rail outcome unknown; will query");
                }
            }
            query_first = true;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            wait_ms = next_wait_ms;
            next_wait_ms = next_wait_ms.saturating_mul(2).min(t.backoff_max_ms);
        }
    }

    /// Waits while the instruction's payee bank is in a calendar window or held after an
    /// `RJ05` (§3.1). Holds no rail slot while waiting.
    async fn hold_while_closed(&self, instr: &Instruction) {
        let bank = super::calendar::bank_key(instr);
        let mut logged = false;
        let mut _held: Option<crate::metrics::HeldGuard> = None;
        loop {
            let rj05 = {
                let m = self.rj05_until.lock().unwrap_or_else(|e| e.into_inner());
                m.get(&bank)
                    .copied()
                    .filter(|u| *u > tokio::time::Instant::now())
            };
            if let Some(until) = rj05 {
                _held.get_or_insert_with(crate::metrics::rail_held);
                tokio::time::sleep_until(until).await;
                continue;
            }
            let m = &self.cfg.maintenance;
            let now = m.clock.now();
            let held = m
                .calendar
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .held_until(&bank, now);
            let Some(end) = held else {
                if logged {
                    tracing::info!(id = %instr.id, bank = %bank, "maintenance window over; sending");
                }
                return;
            };
            _held.get_or_insert_with(crate::metrics::rail_held);
            if !logged {
                tracing::info!(
                    id = %instr.id, bank = %bank, until = %end,
                    "payee bank in a maintenance window; holding the instruction"
                );
                logged = true;
            }
            // Business time may run at another speed than real time (test clocks): look
            // again at least every HOLD_POLL_MS.
            let ahead = (end - now).to_std().unwrap_or_default();
            let nap = ahead.min(Duration::from_millis(HOLD_POLL_MS));
            tokio::time::sleep(nap.max(Duration::from_millis(1))).await;
        }
    }

    /// Hands a final outcome to the writer until it is durable (retries every second while
    /// the store fails; gives up only when the writer has stopped).
    async fn report(&self, instr: &Instruction, settled: bool, reject_code: String) {
        crate::metrics::rail_final(settled);
        let outcome = RailOutcome {
            instruction_id: instr.id.clone(),
            settled,
            reject_code,
        };
        loop {
            let (tx, rx) = oneshot::channel();
            if self
                .writer
                .submit_wait(Job::Rail(Box::new(outcome.clone()), tx))
                .await
                .is_err()
            {
                return;
            }
            match rx.await {
                Ok(true) => return,
                Ok(false) => tokio::time::sleep(Duration::from_millis(1_000)).await,
                Err(_) => return,
            }
        }
    }
}
