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
}

impl Default for RailTiming {
    fn default() -> Self {
        RailTiming {
            first_query_ms: 1_000,
            backoff_start_ms: 1_000,
            backoff_max_ms: 30_000,
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
}

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
}

impl Driver {
    async fn call(
        &self,
        req: &RailRequest,
    ) -> Result<super::wire::RailReply, client::RailCallError> {
        let _slot = self.slots.acquire().await;
        client::call(&self.cfg.client, &self.schemas, req).await
    }

    /// Drives one instruction to a final outcome and reports it. `query_first`: the outcome
    /// of an earlier send is unknown (restart), so ask before sending.
    async fn drive(self: Arc<Self>, instr: Instruction, mut query_first: bool) {
        let _unresolved = crate::metrics::rail_unresolved(&instr.id);
        let t = self.cfg.timing;
        let mut wait_ms = t.first_query_ms;
        let mut next_wait_ms = t.backoff_start_ms;
        loop {
            let req = if query_first {
                RailRequest::query(&instr.id)
            } else {
                to_request(&instr)
            };
            match self.call(&req).await {
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
