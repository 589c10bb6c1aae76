//! A simulator of the bank's payment rail (docs/protocol.md §3): used by tests, by the gateway
//! as its built-in default rail (§4: settles every instruction, refusing `7001` at or
//! above 50,000.00) and as `bankfep rail-sim`.
//!
//! It keeps a real balance per account (fen; payer debited and payee credited when an
//! instruction settles, never before; negatives allowed), holds every instruction id it
//! has booked forever, and never moves money twice for one id. Faults (failures, pending
//! instructions, latency, dropped replies) are drawn from a deterministic xorshift64*
//! generator seeded by [`SimFaults::seed`].
//!
//! Behaviour per request:
//! - `7001`/`7002` with an id already held: its current status, no money moves.
//! - `7001` of 5,000,000 fen or more: booked as `F` `RJ03` (final, no money).
//! - otherwise a new instruction: with `fail_per_mille` / 1000 → booked `F` + `fail_code`;
//!   with `pending_per_mille` / 1000 → booked `P` (settles, moving the money, at the
//!   `pending_queries`-th `7003` about it); else `S` and the money moves.
//! - `7003`: unknown id → `F` `RJ04`; known → its current status.
//! - any well-formed request: with `drop_per_mille` / 1000 it is processed as above but the
//!   connection is closed without a reply.
//! - malformed request: `F` `RJ09` (nothing booked) when its trade code and id can be read,
//!   else the connection is closed. A bad length prefix closes the connection.
//! - replies wait `latency_ms` first.
//! - `7001`/`7002` of a new id whose payee bank (first 3 digits of its bank code; `self` for
//!   `7002`) is in one of the `maintenance` windows at the simulator's business clock: `F`
//!   `RJ05`, nothing booked (docs/protocol.md §3.1).
//!
//! Day files (docs/protocol.md §3.2): every instruction decided (`S` or `F`) is remembered
//! with its business decision time; [`RailSim::write_day_files`] writes one file per payer
//! account for a date. With a files folder configured ([`SimOptions::files_dir`]) the
//! simulator writes the previous day's files when its business date rolls over, and the
//! current day's (as decided so far) when it stops. `omit_per_mille` makes it "lose" settled
//! instructions from its files (a reconciliation fault).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::FramedRead;

use super::chunk::IBPS_LIMIT_FEN;
use super::wire::{
    decode_request, encode_reply, is_reject_code, peek_request_key, RailReply, RailRequest,
    RailStatus, TradeCode,
};
use crate::codec::charset::{self, Charset};
use crate::codec::schema::{Schemas, RAIL_MESSAGE_MAX_BYTES};
use crate::money::Fen;
use crate::wire::prefixed::{frame_prefixed, PrefixedCodec};

/// Largest request record the simulator reads, bytes (a §3 request is 320).
pub const REQUEST_RECORD_MAX: usize = 1024;

/// Faults the simulator injects. Shares are per mille (0 ..= 1000) of requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFaults {
    /// Share of new instructions refused with `F` + `fail_code`, per mille.
    pub fail_per_mille: u32,
    /// Reject code of injected failures, `RJ` + two digits; anything else, and `RJ04`
    /// (reserved for "no such instruction"), is replaced by `RJ09`.
    pub fail_code: String,
    /// Share of new instructions answered `P` (processing), per mille.
    pub pending_per_mille: u32,
    /// A pending instruction settles (money moves, status `S`) at this many `7003` queries
    /// about it: the `pending_queries`-th query answers `S` (0 and 1 both settle at the
    /// first query).
    pub pending_queries: u32,
    /// Delay before each reply, ms.
    pub latency_ms: u64,
    /// Share of well-formed requests processed (booked) but not answered: the connection
    /// is closed instead, per mille.
    pub drop_per_mille: u32,
    /// Seed of the xorshift64* generator (0 is replaced by a fixed non-zero constant).
    pub seed: u64,
    /// Daily maintenance windows answered with `RJ05` (docs/protocol.md §3.1).
    pub maintenance: Vec<SimWindow>,
    /// Share of settled instructions left out of the day files, per mille (a rail that
    /// "lost" them: a 短款 break in reconciliation).
    pub omit_per_mille: u32,
}

/// A daily maintenance window of the simulator: `BANK3:HHmm-HHmm` (`self` for `7002`, `all`
/// for every bank), start included, end excluded; a start later than the end crosses
/// midnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimWindow {
    /// Bank key (3 digits, `self` or `all`).
    pub bank: String,
    /// Start, minutes after midnight (0..1440).
    pub start_min: u32,
    /// End, minutes after midnight (0..1440).
    pub end_min: u32,
}

impl SimWindow {
    /// Parses `BANK3:HHmm-HHmm`. Errors: a message saying which part is wrong.
    pub fn parse(s: &str) -> Result<SimWindow, String> {
        let (bank, span) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected BANK3:HHmm-HHmm"))?;
        if !super::calendar::valid_bank_key(bank) {
            return Err(format!("{s:?}: bank must be 3 digits, self or all"));
        }
        let (a, b) = span
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected HHmm-HHmm"))?;
        let minute = |t: &str| -> Option<u32> {
            if t.len() != 4 || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: u32 = t.get(..2)?.parse().ok()?;
            let m: u32 = t.get(2..)?.parse().ok()?;
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (Some(start_min), Some(end_min)) = (minute(a), minute(b)) else {
            return Err(format!("{s:?}: times must be HHmm"));
        };
        if start_min == end_min {
            return Err(format!("{s:?}: empty window"));
        }
        Ok(SimWindow {
            bank: bank.to_owned(),
            start_min,
            end_min,
        })
    }

    /// Whether the window is open at `t` for `bank`.
    pub fn is_open(&self, bank: &str, t: chrono::NaiveTime) -> bool {
        use chrono::Timelike;
        if self.bank != bank && self.bank != super::calendar::ALL_BANKS {
            return false;
        }
        let m = t.hour() * 60 + t.minute();
        if self.start_min < self.end_min {
            self.start_min <= m && m < self.end_min
        } else {
            m >= self.start_min || m < self.end_min
        }
    }
}

/// How the simulator keeps time and where it writes its day files.
#[derive(Clone)]
pub struct SimOptions {
    /// Business clock (maintenance windows, decision times, day roll-over).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Folder of the day files (`None`: written only when asked).
    pub files_dir: Option<std::path::PathBuf>,
    /// Payer accounts that get a file even on a day without an instruction (the gateway's
    /// master accounts and expense account).
    pub payers: Vec<String>,
}

impl Default for SimOptions {
    /// Wall clock (UTC+8), no files folder, no extra payers.
    fn default() -> Self {
        SimOptions {
            clock: Arc::new(crate::clock::SystemClock::default()),
            files_dir: None,
            payers: Vec::new(),
        }
    }
}

impl Default for SimFaults {
    /// No faults: every instruction below the `7001` limit settles at once.
    fn default() -> Self {
        SimFaults {
            fail_per_mille: 0,
            fail_code: "RJ01".into(),
            pending_per_mille: 0,
            pending_queries: 1,
            latency_ms: 0,
            drop_per_mille: 0,
            seed: 1,
            maintenance: Vec::new(),
            omit_per_mille: 0,
        }
    }
}

#[derive(Clone, Debug)]
struct Instr {
    status: RailStatus,
    reject_code: String,
    amount: Fen,
    payer: String,
    payee: String,
    moved: u32,
    queries: u32,
    trade: TradeCode,
    /// Order received (1, 2, …).
    seq: u64,
    /// Business time of the final decision (`S` or `F`).
    decided: Option<chrono::NaiveDateTime>,
    /// Left out of the day files (`omit_per_mille`).
    omitted: bool,
}

struct SimState {
    faults: SimFaults,
    rng: u64,
    instrs: HashMap<String, Instr>,
    balances: BTreeMap<String, Fen>,
    paid: usize,
    clock: Arc<dyn crate::clock::Clock>,
    received: u64,
    payers: std::collections::BTreeSet<String>,
}

const SEED_ZERO_REPLACEMENT: u64 = 0x9E37_79B9_7F4A_7C15;

impl SimState {
    fn new(faults: SimFaults, opts: &SimOptions) -> SimState {
        let mut s = SimState {
            faults: SimFaults::default(),
            rng: 1,
            instrs: HashMap::new(),
            balances: BTreeMap::new(),
            paid: 0,
            clock: opts.clock.clone(),
            received: 0,
            payers: opts.payers.iter().cloned().collect(),
        };
        s.set_faults(faults);
        s
    }

    fn set_faults(&mut self, mut f: SimFaults) {
        if !is_reject_code(&f.fail_code) || f.fail_code == "RJ04" {
            f.fail_code = "RJ09".into();
        }
        self.rng = if f.seed == 0 {
            SEED_ZERO_REPLACEMENT
        } else {
            f.seed
        };
        self.faults = f;
    }

    /// xorshift64*: next value of the generator.
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A draw in 0..1000.
    fn per_mille(&mut self) -> u32 {
        ((self.next() >> 32) % 1000) as u32
    }

    fn settle(&mut self, id: &str) {
        let Some(ins) = self.instrs.get_mut(id) else {
            return;
        };
        if ins.status == RailStatus::Settled || ins.moved > 0 {
            return;
        }
        ins.status = RailStatus::Settled;
        ins.moved += 1;
        ins.decided = Some(self.clock.now());
        let (amount, payer, payee) = (ins.amount, ins.payer.clone(), ins.payee.clone());
        tracing::info!(
            id,
            payer = %crate::mask::account(&payer),
            payee = %crate::mask::account(&payee),
            amount = %crate::money::format_fen(amount),
            "rail simulator: settled"
        );
        let p = self.balances.entry(payer).or_insert(0);
        *p = p.saturating_sub(amount);
        let q = self.balances.entry(payee).or_insert(0);
        *q = q.saturating_add(amount);
        self.paid += 1;
    }

    fn book(&mut self, req: &RailRequest, status: RailStatus, reject_code: &str) {
        tracing::info!(
            trade = req.trade.as_str(),
            id = %req.instruction_id,
            payee = %crate::mask::account(&req.payee_acct),
            amount = %crate::money::format_fen(req.amount_fen),
            status = ?status,
            reject_code,
            "rail simulator: instruction received"
        );
        self.received += 1;
        let omit = self.faults.omit_per_mille;
        let omitted = omit > 0 && self.per_mille() < omit;
        self.payers.insert(req.payer_acct.clone());
        self.instrs.insert(
            req.instruction_id.clone(),
            Instr {
                status: RailStatus::Pending,
                reject_code: reject_code.to_owned(),
                amount: req.amount_fen,
                payer: req.payer_acct.clone(),
                payee: req.payee_acct.clone(),
                moved: 0,
                queries: 0,
                trade: req.trade,
                seq: self.received,
                decided: None,
                omitted,
            },
        );
        if status == RailStatus::Settled {
            self.settle(&req.instruction_id);
        } else if let Some(ins) = self.instrs.get_mut(&req.instruction_id) {
            ins.status = status;
            if status == RailStatus::Failed {
                ins.decided = Some(self.clock.now());
            }
        }
    }

    /// Current (status, reject code) of a held instruction.
    fn current(&self, id: &str) -> Option<(RailStatus, String)> {
        self.instrs
            .get(id)
            .map(|i| (i.status, i.reject_code.clone()))
    }

    /// Processes one well-formed request; returns (status, reject code) to answer.
    fn process(&mut self, req: &RailRequest) -> (RailStatus, String) {
        let id = req.instruction_id.as_str();
        match req.trade {
            TradeCode::Query => {
                let pending_queries = self.faults.pending_queries;
                let Some(ins) = self.instrs.get_mut(id) else {
                    return (RailStatus::Failed, "RJ04".into());
                };
                if ins.status == RailStatus::Pending {
                    ins.queries = ins.queries.saturating_add(1);
                    if ins.queries >= pending_queries {
                        self.settle(id);
                    }
                }
            }
            TradeCode::Ibps | TradeCode::SameBank => {
                let bank = super::calendar::key_of(req.trade.as_str(), &req.payee_bank);
                let now = self.clock.now().time();
                if self.instrs.contains_key(id) {
                    // Idempotency: answer the held status, move no money.
                } else if self
                    .faults
                    .maintenance
                    .iter()
                    .any(|w| w.is_open(&bank, now))
                {
                    tracing::info!(id, bank = %bank, "rail simulator: RJ05, bank in maintenance");
                    return (RailStatus::Failed, "RJ05".into());
                } else if req.trade == TradeCode::Ibps && req.amount_fen >= IBPS_LIMIT_FEN {
                    self.book(req, RailStatus::Failed, "RJ03");
                } else {
                    let draw = self.per_mille();
                    let fail = self.faults.fail_per_mille;
                    let pending = self.faults.pending_per_mille;
                    if draw < fail {
                        let code = self.faults.fail_code.clone();
                        self.book(req, RailStatus::Failed, &code);
                    } else if draw < fail.saturating_add(pending) {
                        self.book(req, RailStatus::Pending, "");
                    } else {
                        self.book(req, RailStatus::Settled, "");
                    }
                }
            }
        }
        self.current(id)
            .unwrap_or((RailStatus::Failed, "RJ09".into()))
    }
}

/// What the connection does after one request.
enum Action {
    Reply(Vec<u8>, u64),
    Close,
}

fn write_files(
    dir: &std::path::Path,
    files: &[(String, String)],
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (name, text) in files {
        let bytes = charset::encode(text, Charset::Gbk).map_err(std::io::Error::other)?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes.as_ref())?;
        std::fs::rename(&tmp, &path)?;
        out.push(path);
    }
    Ok(out)
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn message_for(schemas: &Schemas, status: RailStatus, code: &str) -> String {
    let text = match status {
        RailStatus::Settled => "settled",
        RailStatus::Pending => "processing",
        RailStatus::Failed => schemas
            .return_codes
            .rail_message(code)
            .unwrap_or("rejected"),
    };
    match charset::encoded_len(text, Charset::Gbk) {
        Ok(n) if n <= RAIL_MESSAGE_MAX_BYTES => text.to_owned(),
        _ => "rejected".to_owned(),
    }
}

fn reply_bytes(
    schemas: &Schemas,
    trade: TradeCode,
    id: &str,
    status: RailStatus,
    code: &str,
) -> Option<Vec<u8>> {
    let reply = RailReply {
        trade,
        instruction_id: id.to_owned(),
        status,
        reject_code: code.to_owned(),
        message: message_for(schemas, status, code),
    };
    encode_reply(schemas, &reply)
        .ok()
        .map(|r| frame_prefixed(&r))
}

fn handle(state: &Mutex<SimState>, schemas: &Schemas, rec: &[u8]) -> Action {
    let req = match decode_request(schemas, rec) {
        Ok(r) => r,
        Err(_) => {
            let latency = lock(state).faults.latency_ms;
            return match peek_request_key(rec)
                .and_then(|(t, id)| reply_bytes(schemas, t, &id, RailStatus::Failed, "RJ09"))
            {
                Some(bytes) => Action::Reply(bytes, latency),
                None => Action::Close,
            };
        }
    };
    let mut st = lock(state);
    let (status, code) = st.process(&req);
    let drop_share = st.faults.drop_per_mille;
    let dropped = drop_share > 0 && st.per_mille() < drop_share;
    let latency = st.faults.latency_ms;
    drop(st);
    if dropped {
        return Action::Close;
    }
    match reply_bytes(schemas, req.trade, &req.instruction_id, status, &code) {
        Some(bytes) => Action::Reply(bytes, latency),
        None => Action::Close,
    }
}

async fn serve_conn<S>(stream: S, state: Arc<Mutex<SimState>>, schemas: Arc<Schemas>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut frames = FramedRead::new(
        rd,
        PrefixedCodec {
            record_max: REQUEST_RECORD_MAX,
        },
    );
    while let Some(Ok(rec)) = frames.next().await {
        match handle(&state, &schemas, &rec) {
            Action::Close => break,
            Action::Reply(bytes, latency_ms) => {
                if latency_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                }
                if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// A running rail simulator: a listener and its connections, sharing one book of
/// instructions and balances. Stop it with [`RailSim::shutdown`].
pub struct RailSim {
    state: Arc<Mutex<SimState>>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    files_dir: Option<std::path::PathBuf>,
}

/// The name of the day file of `payer` for `date` (docs/protocol.md §3.2):
/// `RAIL_{payer}_{yyyyMMdd}.txt`.
pub fn day_file_name(payer: &str, date: chrono::NaiveDate) -> String {
    format!("RAIL_{payer}_{}.txt", date.format("%Y%m%d"))
}

impl SimState {
    /// The text of every payer's day file for `date` (docs/protocol.md §3.2), by file name.
    fn day_files(&self, date: chrono::NaiveDate) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for payer in &self.payers {
            let mut lines: Vec<(&String, &Instr)> = self
                .instrs
                .iter()
                .filter(|(_, i)| {
                    &i.payer == payer && !i.omitted && i.decided.map(|t| t.date()) == Some(date)
                })
                .collect();
            lines.sort_by_key(|(_, i)| i.seq);
            let settled: Vec<&Instr> = lines
                .iter()
                .map(|(_, i)| *i)
                .filter(|i| i.status == RailStatus::Settled)
                .collect();
            let total: Fen = settled
                .iter()
                .fold(0, |acc: Fen, i| acc.saturating_add(i.amount));
            let d = date.format("%Y%m%d");
            let mut text = format!("H|{d}|{payer}|{}|{total}\n", lines.len());
            for (id, i) in &lines {
                let status = if i.status == RailStatus::Settled {
                    "S"
                } else {
                    "F"
                };
                let time = i
                    .decided
                    .map(|t| t.format("%H%M%S").to_string())
                    .unwrap_or_default();
                text.push_str(&format!(
                    "D|{id}|{}|{status}|{}|{}|{}|R{:012}|{time}\n",
                    i.trade.as_str(),
                    i.reject_code,
                    i.payee,
                    i.amount,
                    i.seq,
                ));
            }
            text.push_str(&format!("T|{}|{}|{total}\n", lines.len(), settled.len()));
            out.push((day_file_name(payer, date), text));
        }
        out
    }
}

impl RailSim {
    /// Binds `addr` (`host:port`; port 0 picks a free one) for plain TCP and spawns the
    /// accept loop. Each connection carries requests one after another (request, reply).
    ///
    /// Errors: the bind failure, or an embedded-schema failure as `io::ErrorKind::Other`.
    pub async fn start(addr: &str, faults: SimFaults) -> std::io::Result<RailSim> {
        RailSim::start_inner(addr, faults, SimOptions::default(), None).await
    }

    /// As [`RailSim::start`], with a business clock, a day-file folder and payers
    /// ([`SimOptions`]); TLS when `tls` is given.
    pub async fn start_with(
        addr: &str,
        faults: SimFaults,
        opts: SimOptions,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<RailSim> {
        RailSim::start_inner(addr, faults, opts, tls).await
    }

    /// As [`RailSim::start`], serving TLS with `config` (to exercise the client's TLS path).
    pub async fn start_tls(
        addr: &str,
        faults: SimFaults,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<RailSim> {
        RailSim::start_inner(addr, faults, SimOptions::default(), Some(config)).await
    }

    async fn start_inner(
        addr: &str,
        faults: SimFaults,
        opts: SimOptions,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<RailSim> {
        let schemas = Arc::new(Schemas::load_embedded().map_err(std::io::Error::other)?);
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let state = Arc::new(Mutex::new(SimState::new(faults, &opts)));
        let files_dir = opts.files_dir.clone();
        let roll_state = Arc::clone(&state);
        let (stop, mut stopped) = watch::channel(false);
        if let Some(dir) = files_dir.clone() {
            let mut rs = stop.subscribe();
            // Day roll-over: the previous day's files once the business date changes.
            tokio::spawn(async move {
                let mut day = lock(&roll_state).clock.now().date();
                loop {
                    tokio::select! {
                        _ = rs.changed() => break,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    let today = lock(&roll_state).clock.now().date();
                    if today != day {
                        let files = lock(&roll_state).day_files(day);
                        if let Err(e) = write_files(&dir, &files) {
                            tracing::warn!(error = %e, "rail simulator: cannot write day files");
                        }
                        day = today;
                    }
                }
            });
        }
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    accepted = listener.accept() => {
                        let (tcp, _) = match accepted {
                            Ok(x) => x,
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        };
                        let _ = tcp.set_nodelay(true);
                        let (st, sc) = (Arc::clone(&st), Arc::clone(&schemas));
                        match &acceptor {
                            None => {
                                conns.spawn(serve_conn(tcp, st, sc));
                            }
                            Some(acc) => {
                                let acc = acc.clone();
                                conns.spawn(async move {
                                    let hs = tokio::time::timeout(
                                        Duration::from_secs(10),
                                        acc.accept(tcp),
                                    )
                                    .await;
                                    if let Ok(Ok(tls)) = hs {
                                        serve_conn(tls, st, sc).await;
                                    }
                                });
                            }
                        }
                    }
                }
            }
            conns.shutdown().await;
        });
        Ok(RailSim {
            state,
            addr: local,
            stop,
            task,
            files_dir,
        })
    }

    /// Writes the day file of every payer for `date` into `dir` (created if missing), each
    /// GBK with `\n` line ends (docs/protocol.md §3.2); returns their paths.
    ///
    /// Errors: the folder or a file cannot be written.
    pub fn write_day_files(
        &self,
        dir: &std::path::Path,
        date: chrono::NaiveDate,
    ) -> std::io::Result<Vec<std::path::PathBuf>> {
        let files = lock(&self.state).day_files(date);
        write_files(dir, &files)
    }

    /// Every date on which the simulator decided an instruction, and today's business date.
    pub fn dates(&self) -> std::collections::BTreeSet<chrono::NaiveDate> {
        let st = lock(&self.state);
        let mut d: std::collections::BTreeSet<_> = st
            .instrs
            .values()
            .filter_map(|i| i.decided.map(|t| t.date()))
            .collect();
        d.insert(st.clock.now().date());
        d
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Balance of `acct` in fen (0 for an account never touched; may be negative).
    pub fn balance(&self, acct: &str) -> Fen {
        lock(&self.state).balances.get(acct).copied().unwrap_or(0)
    }

    /// Every account touched by a settlement and its balance in fen, sorted by account.
    pub fn balances(&self) -> BTreeMap<String, Fen> {
        lock(&self.state).balances.clone()
    }

    /// A held instruction: (current status, amount in fen, times it moved money: 0 or 1).
    pub fn instruction(&self, id: &str) -> Option<(RailStatus, Fen, u32)> {
        lock(&self.state)
            .instrs
            .get(id)
            .map(|i| (i.status, i.amount, i.moved))
    }

    /// Number of instructions settled so far.
    pub fn paid_count(&self) -> usize {
        lock(&self.state).paid
    }

    /// Replaces the faults (and reseeds the generator) for requests from now on.
    pub fn set_faults(&self, f: SimFaults) {
        lock(&self.state).set_faults(f);
    }

    /// Stops accepting, closes every connection and waits for the accept loop to end.
    /// The book is dropped with the simulator (read balances first).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let dates = self.dates();
        let _ = self.task.await;
        if let Some(dir) = &self.files_dir {
            for date in dates {
                let files = lock(&self.state).day_files(date);
                if let Err(e) = write_files(dir, &files) {
                    tracing::warn!(error = %e, "rail simulator: cannot write day files");
                }
            }
        }
    }

    /// The folder the simulator writes its day files into, if any.
    pub fn files_dir(&self) -> Option<&std::path::Path> {
        self.files_dir.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rail::client::{call, RailCallError, RailClientConfig};

    const MASTER: &str = "6222000000000000001";
    const PAYEE: &str = "6217000011112222333";

    fn schemas() -> Schemas {
        Schemas::load_embedded().expect("schemas")
    }

    fn cfg(sim: &RailSim) -> RailClientConfig {
        let mut c = RailClientConfig::tcp(&sim.addr().to_string());
        c.read_timeout_ms = 2_000;
        c
    }

    fn ibps(id: &str, amount: Fen) -> RailRequest {
        RailRequest {
            trade: TradeCode::Ibps,
            instruction_id: id.into(),
            payer_acct: MASTER.into(),
            payee_acct: PAYEE.into(),
            payee_name: "张三".into(),
            payee_bank: "102100099996".into(),
            amount_fen: amount,
            memo: "提现".into(),
        }
    }

    #[tokio::test]
    async fn settles_and_moves_money() {
        let s = schemas();
        let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
            .await
            .unwrap();
        let r = call(&cfg(&sim), &s, &ibps("A1", 4_000_000)).await.unwrap();
        assert_eq!(r.status, RailStatus::Settled);
        assert_eq!(r.trade, TradeCode::Ibps);
        assert_eq!(r.instruction_id, "A1");
        assert_eq!(r.reject_code, "");
        let mut same = ibps("B1", 123);
        same.trade = TradeCode::SameBank;
        same.payee_bank.clear();
        let r = call(&cfg(&sim), &s, &same).await.unwrap();
        assert_eq!(
            (r.trade, r.status),
            (TradeCode::SameBank, RailStatus::Settled)
        );
        assert_eq!(sim.balance(MASTER), -4_000_123);
        assert_eq!(sim.balance(PAYEE), 4_000_123);
        assert_eq!(sim.paid_count(), 2);
        assert_eq!(
            sim.instruction("A1"),
            Some((RailStatus::Settled, 4_000_000, 1))
        );
        let q = call(&cfg(&sim), &s, &RailRequest::query("A1"))
            .await
            .unwrap();
        assert_eq!((q.trade, q.status), (TradeCode::Query, RailStatus::Settled));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn limit_is_strict() {
        let s = schemas();
        let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
            .await
            .unwrap();
        let r = call(&cfg(&sim), &s, &ibps("L1", 5_000_000)).await.unwrap();
        assert_eq!(
            (r.status, r.reject_code.as_str()),
            (RailStatus::Failed, "RJ03")
        );
        assert!(!r.message.is_empty());
        let q = call(&cfg(&sim), &s, &RailRequest::query("L1"))
            .await
            .unwrap();
        assert_eq!(
            (q.status, q.reject_code.as_str()),
            (RailStatus::Failed, "RJ03")
        );
        let r = call(&cfg(&sim), &s, &ibps("L2", 4_999_999)).await.unwrap();
        assert_eq!(r.status, RailStatus::Settled);
        // 7002 has no such limit.
        let mut same = ibps("L3", 5_000_000);
        same.trade = TradeCode::SameBank;
        same.payee_bank.clear();
        assert_eq!(
            call(&cfg(&sim), &s, &same).await.unwrap().status,
            RailStatus::Settled
        );
        assert_eq!(sim.balance(PAYEE), 9_999_999);
        assert_eq!(
            sim.instruction("L1"),
            Some((RailStatus::Failed, 5_000_000, 0))
        );
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn repeated_id_moves_money_once() {
        let s = schemas();
        let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
            .await
            .unwrap();
        for _ in 0..3 {
            let r = call(&cfg(&sim), &s, &ibps("R1", 100)).await.unwrap();
            assert_eq!(r.status, RailStatus::Settled);
        }
        // Same id, different amount: still the held instruction, no money.
        let r = call(&cfg(&sim), &s, &ibps("R1", 999)).await.unwrap();
        assert_eq!(r.status, RailStatus::Settled);
        assert_eq!(sim.balance(PAYEE), 100);
        assert_eq!(sim.paid_count(), 1);
        assert_eq!(sim.instruction("R1"), Some((RailStatus::Settled, 100, 1)));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn pending_settles_after_n_queries() {
        let s = schemas();
        let faults = SimFaults {
            pending_per_mille: 1000,
            pending_queries: 3,
            ..SimFaults::default()
        };
        let sim = RailSim::start("127.0.0.1:0", faults).await.unwrap();
        let r = call(&cfg(&sim), &s, &ibps("P1", 500)).await.unwrap();
        assert_eq!(r.status, RailStatus::Pending);
        // A repeat while pending neither counts as a query nor pays.
        assert_eq!(
            call(&cfg(&sim), &s, &ibps("P1", 500)).await.unwrap().status,
            RailStatus::Pending
        );
        for _ in 0..2 {
            let q = call(&cfg(&sim), &s, &RailRequest::query("P1"))
                .await
                .unwrap();
            assert_eq!(q.status, RailStatus::Pending);
            assert_eq!(sim.balance(PAYEE), 0);
        }
        let q = call(&cfg(&sim), &s, &RailRequest::query("P1"))
            .await
            .unwrap();
        assert_eq!(q.status, RailStatus::Settled);
        let q = call(&cfg(&sim), &s, &RailRequest::query("P1"))
            .await
            .unwrap();
        assert_eq!(q.status, RailStatus::Settled);
        assert_eq!(sim.balance(PAYEE), 500);
        assert_eq!(sim.instruction("P1"), Some((RailStatus::Settled, 500, 1)));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn unknown_query_is_rj04() {
        let s = schemas();
        let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
            .await
            .unwrap();
        let q = call(&cfg(&sim), &s, &RailRequest::query("NOPE"))
            .await
            .unwrap();
        assert_eq!((q.trade, q.status), (TradeCode::Query, RailStatus::Failed));
        assert_eq!(q.reject_code, "RJ04");
        assert_eq!(sim.instruction("NOPE"), None);
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn dropped_reply_is_booked() {
        let s = schemas();
        let sim = RailSim::start(
            "127.0.0.1:0",
            SimFaults {
                drop_per_mille: 1000,
                ..SimFaults::default()
            },
        )
        .await
        .unwrap();
        let err = call(&cfg(&sim), &s, &ibps("D1", 700)).await.unwrap_err();
        assert!(
            matches!(err, RailCallError::Broken(_) | RailCallError::Timeout),
            "{err:?}"
        );
        assert_eq!(sim.instruction("D1"), Some((RailStatus::Settled, 700, 1)));
        sim.set_faults(SimFaults::default());
        let q = call(&cfg(&sim), &s, &RailRequest::query("D1"))
            .await
            .unwrap();
        assert_eq!(q.status, RailStatus::Settled);
        // Resending the same id after the unknown outcome pays nothing more.
        let r = call(&cfg(&sim), &s, &ibps("D1", 700)).await.unwrap();
        assert_eq!(r.status, RailStatus::Settled);
        assert_eq!(sim.balance(PAYEE), 700);
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn fail_share_is_seeded_and_final() {
        let s = schemas();
        let faults = SimFaults {
            fail_per_mille: 300,
            fail_code: "RJ01".into(),
            seed: 42,
            ..SimFaults::default()
        };
        let run = |faults: SimFaults| {
            let s = s.clone();
            async move {
                let sim = RailSim::start("127.0.0.1:0", faults).await.unwrap();
                let mut out = Vec::new();
                for i in 0..100 {
                    let r = call(&cfg(&sim), &s, &ibps(&format!("F{i}"), 10))
                        .await
                        .unwrap();
                    if r.status == RailStatus::Failed {
                        assert_eq!(r.reject_code, "RJ01");
                    }
                    out.push(r.status);
                }
                let failed = out.iter().filter(|x| **x == RailStatus::Failed).count();
                assert_eq!(sim.paid_count(), 100 - failed);
                assert_eq!(sim.balance(PAYEE), 10 * (100 - failed) as i64);
                let first_failed = out.iter().position(|x| *x == RailStatus::Failed);
                if let Some(i) = first_failed {
                    let q = call(&cfg(&sim), &s, &RailRequest::query(&format!("F{i}")))
                        .await
                        .unwrap();
                    assert_eq!(q.reject_code, "RJ01");
                }
                sim.shutdown().await;
                out
            }
        };
        let a = run(faults.clone()).await;
        let b = run(faults).await;
        assert_eq!(a, b, "same seed, same outcomes");
        let failed = a.iter().filter(|x| **x == RailStatus::Failed).count();
        assert!((15..=45).contains(&failed), "failed {failed}");
    }

    #[tokio::test]
    async fn malformed_requests() {
        use tokio::io::AsyncReadExt;
        let s = schemas();
        let sim = RailSim::start("127.0.0.1:0", SimFaults::default())
            .await
            .unwrap();
        let mut c = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
        // Amount not digits: RJ09, nothing booked, connection stays usable.
        let mut rec = encode_request(&s, &ibps("M1", 100));
        rec[240] = b'x';
        c.write_all(&frame_prefixed(&rec)).await.unwrap();
        let mut buf = [0u8; 108];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf[..8], b"00000100");
        let reply = crate::rail::wire::decode_reply(&s, &buf[8..]).unwrap();
        assert_eq!(
            (reply.status, reply.reject_code.as_str()),
            (RailStatus::Failed, "RJ09")
        );
        assert_eq!(reply.instruction_id, "M1");
        assert_eq!(sim.instruction("M1"), None);
        // Short record with a readable key: RJ09 too.
        c.write_all(&frame_prefixed(&rec[..50])).await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf[44..49], b"FRJ09");
        // Unreadable: closed.
        c.write_all(&frame_prefixed(b"garbage")).await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        // Bad prefix: closed.
        let mut c = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
        c.write_all(b"xxxxxxxx").await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        assert_eq!(sim.paid_count(), 0);
        sim.shutdown().await;
    }

    fn encode_request(s: &Schemas, r: &RailRequest) -> Vec<u8> {
        crate::rail::wire::encode_request(s, r).unwrap()
    }

    #[tokio::test]
    async fn latency_and_timeout() {
        let s = schemas();
        let sim = RailSim::start(
            "127.0.0.1:0",
            SimFaults {
                latency_ms: 300,
                ..SimFaults::default()
            },
        )
        .await
        .unwrap();
        let mut c = cfg(&sim);
        c.read_timeout_ms = 50;
        assert_eq!(
            call(&c, &s, &ibps("T1", 1)).await.unwrap_err(),
            RailCallError::Timeout
        );
        c.read_timeout_ms = 2_000;
        assert_eq!(
            call(&c, &s, &RailRequest::query("T1"))
                .await
                .unwrap()
                .status,
            RailStatus::Settled
        );
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn connect_failure_and_bad_echo() {
        let s = schemas();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let err = call(
            &RailClientConfig::tcp(&addr.to_string()),
            &s,
            &ibps("C1", 1),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RailCallError::Connect(_)), "{err:?}");

        // A rail that answers with another id.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let s2 = s.clone();
        let fake = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 328];
            c.read_exact(&mut buf).await.unwrap();
            let reply = RailReply {
                trade: TradeCode::Ibps,
                instruction_id: "OTHER".into(),
                status: RailStatus::Settled,
                reject_code: String::new(),
                message: String::new(),
            };
            let rec = encode_reply(&s2, &reply).unwrap();
            c.write_all(&frame_prefixed(&rec)).await.unwrap();
        });
        let err = call(
            &RailClientConfig::tcp(&addr.to_string()),
            &s,
            &ibps("C1", 1),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RailCallError::BadReply(_)), "{err:?}");
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn over_tls() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("bankfep-rail-tls-{}-{nanos}", std::process::id()));
        let certs = crate::devcerts::write_dev_certs(&dir).unwrap();
        let server =
            crate::tls::server_config(&certs.server_cert, &certs.server_key, None).unwrap();
        let client = crate::tls::client_config(&certs.ca_cert, None).unwrap();
        let s = schemas();
        let sim = RailSim::start_tls("127.0.0.1:0", SimFaults::default(), server)
            .await
            .unwrap();
        let mut c = cfg(&sim);
        c.tls = Some((client, "localhost".into()));
        let r = call(&c, &s, &ibps("TLS1", 42)).await.unwrap();
        assert_eq!(r.status, RailStatus::Settled);
        assert_eq!(sim.balance(PAYEE), 42);
        // Plain TCP against the TLS rail: no valid reply.
        assert!(call(&cfg(&sim), &s, &ibps("TLS2", 1)).await.is_err());
        sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
