//! `bankfep abuse`: abusive peers against a running gateway's platform link (docs/protocol.md
//! §1.1), to measure what they cost.
//!
//! * **idle** ([`run_idle`]): N TCP connections that send nothing (or half a header, or a
//!   header announcing a large body and then nothing), held for a while; with the gateway's
//!   pid, its `VmRSS` before, while held and after they close, hence the memory cost of one
//!   idle connection.
//! * **flood** ([`run_flood`]): the normal forced-transfer load ([`run_load`]) alone, then
//!   again while a few connections keep sending malformed frames ([`Malformed`]),
//!   reconnecting whenever the server closes; the slowdown of p50, p99 and throughput.
//!
//! Every loop is bounded: by a connection count, or by a deadline checked on each turn, and
//! every network step by a timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{
    build_request, now_cst, read_platform_frame, BodyCharset, ClientError, HEADER_LEN,
};
use crate::tools::load::{run_load, LoadOptions, LoadReport};

/// The gateway's resident set size (`VmRSS` of `/proc/PID/status`) in KiB; `None` when the
/// file cannot be read (no such process, not Linux) or has no `VmRSS` line.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS")
}

/// The gateway's data segment size, reserved but not necessarily resident (`VmData` of
/// `/proc/PID/status`) in KiB; `None` as for [`vm_rss_kib`].
pub fn vm_data_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmData")
}

/// A `kB` line (`VmRSS`, `VmData`, ...) of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

/// The value of line `key:   1234 kB` of a `/proc/PID/status` text, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
}

/// Number of open file descriptors of process `pid` (entries of `/proc/PID/fd`); `None`
/// when the directory cannot be read.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// What each idle connection sends right after connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleKind {
    /// Nothing: the server waits `read_idle_ms` (default 60,000 ms) before closing.
    Silent,
    /// The first 111 of the 222 header bytes: the server waits `frame_deadline_ms`
    /// (default 30,000 ms) before closing.
    HalfHeader,
    /// A whole, valid header announcing a body of this many bytes, and no body byte: the
    /// server waits `frame_deadline_ms` for the body.
    HeaderOnly(u64),
}

/// The request header (222 bytes) of a 6034 from the demo enterprise announcing `body_len`
/// body bytes (the length field is overwritten, so the header may lie about the body).
pub fn header_announcing(serial: &str, body_len: u64) -> Vec<u8> {
    let (date, time) = now_cst();
    let mut frame = build_request(
        BodyCharset::Gbk,
        crate::config::DEMO_ENTERPRISE,
        "6034",
        serial,
        &date,
        &time,
        "",
    )
    .unwrap_or_else(|_| vec![b' '; HEADER_LEN]);
    frame.truncate(HEADER_LEN);
    let digits = format!("{:010}", body_len.min(9_999_999_999));
    if let Some(dst) = frame.get_mut(30..40) {
        dst.copy_from_slice(digits.as_bytes());
    }
    frame
}

/// Idle connections opened by [`open_idle`].
#[derive(Debug)]
pub struct IdleConns {
    /// The connections that were established (and whose first bytes, if any, were written).
    pub streams: Vec<TcpStream>,
    /// Connect attempts that failed (refused, timed out, or out of file descriptors).
    pub connect_failed: usize,
    /// The first connect error, for display.
    pub first_error: Option<String>,
}

/// Opens `n` TCP connections to `addr` one after another, each connect bounded by
/// `timeout_ms`, and writes `kind`'s bytes on each. Never retries.
pub async fn open_idle(addr: &str, n: usize, kind: IdleKind, timeout_ms: u64) -> IdleConns {
    let mut out = IdleConns {
        streams: Vec::with_capacity(n),
        connect_failed: 0,
        first_error: None,
    };
    let t = Duration::from_millis(timeout_ms);
    for i in 0..n {
        let res = tokio::time::timeout(t, TcpStream::connect(addr)).await;
        let mut s = match res {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                out.connect_failed += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
            Err(_) => {
                out.connect_failed += 1;
                out.first_error
                    .get_or_insert_with(|| format!("connect timed out after {timeout_ms} ms"));
                continue;
            }
        };
        let bytes = match kind {
            IdleKind::Silent => Vec::new(),
            IdleKind::HalfHeader => {
                let mut h = header_announcing(&format!("IDLE{i:08}"), 0);
                h.truncate(HEADER_LEN / 2);
                h
            }
            IdleKind::HeaderOnly(len) => header_announcing(&format!("IDLE{i:08}"), len),
        };
        if !bytes.is_empty() {
            // A failed write means the server already closed: counted later as closed.
            let _ = tokio::time::timeout(t, s.write_all(&bytes)).await;
        }
        out.streams.push(s);
    }
    out
}

/// How many of `streams` the server has closed (end of stream or reset seen), without
/// waiting: a connection with nothing to read counts as open. Bytes the server sent are
/// discarded (up to 4 KiB per connection per call).
pub fn count_closed(streams: &[TcpStream]) -> usize {
    let mut buf = [0u8; 4096];
    streams
        .iter()
        .filter(|s| match s.try_read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

/// What [`run_idle`] does.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Platform link `host:port`.
    pub addr: String,
    /// Connections to open.
    pub connections: usize,
    /// How long all connections are held open after the last one was opened, ms.
    pub hold_ms: u64,
    /// What each connection sends.
    pub kind: IdleKind,
    /// The gateway's pid, to read its `VmRSS`; `None` skips the memory figures.
    pub gateway_pid: Option<u32>,
    /// Per-connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Wait after closing all connections before the last `VmRSS` reading, ms.
    pub settle_ms: u64,
}

impl Default for IdleOptions {
    fn default() -> Self {
        IdleOptions {
            addr: "127.0.0.1:7072".into(),
            connections: 1000,
            hold_ms: 5000,
            kind: IdleKind::Silent,
            gateway_pid: None,
            connect_timeout_ms: 5000,
            settle_ms: 1000,
        }
    }
}

/// The outcome of [`run_idle`].
#[derive(Debug, Clone, PartialEq)]
pub struct IdleReport {
    /// Connections asked for.
    pub requested: usize,
    /// Connections established.
    pub opened: usize,
    /// Connect attempts that failed.
    pub connect_failed: usize,
    /// Established connections the server had closed by the end of the hold.
    pub closed_by_server: usize,
    /// The first connect error, if any.
    pub first_error: Option<String>,
    /// Gateway `VmRSS` before opening, KiB.
    pub rss_before_kib: Option<u64>,
    /// Gateway `VmRSS` at the end of the hold, all connections still held, KiB.
    pub rss_held_kib: Option<u64>,
    /// Gateway `VmRSS` `settle_ms` after all connections were closed, KiB.
    pub rss_after_kib: Option<u64>,
    /// Gateway `VmData` (reserved memory) before opening and at the end of the hold, KiB.
    pub data_before_held_kib: Option<(u64, u64)>,
    /// Gateway open file descriptors before opening and at the end of the hold.
    pub fds_before_held: Option<(usize, usize)>,
    /// Time spent opening the connections, ms.
    pub open_ms: u64,
}

impl IdleReport {
    /// Connections still open at the end of the hold.
    pub fn held_open(&self) -> usize {
        self.opened.saturating_sub(self.closed_by_server)
    }

    /// RSS growth while held divided by the connections still open, KiB per connection.
    pub fn per_connection_kib(&self) -> Option<f64> {
        let (b, h) = (self.rss_before_kib?, self.rss_held_kib?);
        let n = self.held_open();
        (n > 0).then(|| (h as f64 - b as f64) / n as f64)
    }
}

impl std::fmt::Display for IdleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "connections: {} requested, {} opened in {} ms, {} refused/failed, {} closed by server, {} held open",
            self.requested,
            self.opened,
            self.open_ms,
            self.connect_failed,
            self.closed_by_server,
            self.held_open()
        )?;
        if let Some(e) = &self.first_error {
            writeln!(f, "first connect error: {e}")?;
        }
        if let Some((b, h)) = self.fds_before_held {
            writeln!(f, "gateway fds: {b} before, {h} held")?;
        }
        if let Some((b, h)) = self.data_before_held_kib {
            writeln!(
                f,
                "gateway VmData (reserved): before {b} KiB, held {h} KiB (+{} KiB)",
                h as i64 - b as i64
            )?;
        }
        let kib = |v: Option<u64>| v.map_or("n/a".to_string(), |v| format!("{v} KiB"));
        write!(
            f,
            "gateway VmRSS: before {}, held {}, after close {}",
            kib(self.rss_before_kib),
            kib(self.rss_held_kib),
            kib(self.rss_after_kib)
        )?;
        if let (Some(b), Some(h)) = (self.rss_before_kib, self.rss_held_kib) {
            write!(f, "\nRSS growth while held: {} KiB", h as i64 - b as i64)?;
        }
        if let Some(per) = self.per_connection_kib() {
            write!(f, "\nper held connection: {per:.2} KiB")?;
        }
        Ok(())
    }
}

/// Opens `opts.connections` idle connections, holds them `opts.hold_ms`, checks how many
/// the server closed, closes them all, and reports counts and (with a pid) the gateway's
/// `VmRSS` before, while held and after.
pub async fn run_idle(opts: &IdleOptions) -> IdleReport {
    let pid = opts.gateway_pid;
    let rss_before_kib = pid.and_then(vm_rss_kib);
    let fds_before = pid.and_then(open_fds);
    let data_before = pid.and_then(vm_data_kib);
    let t0 = Instant::now();
    let conns = open_idle(
        &opts.addr,
        opts.connections,
        opts.kind,
        opts.connect_timeout_ms,
    )
    .await;
    let open_ms = t0.elapsed().as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(opts.hold_ms)).await;
    let rss_held_kib = pid.and_then(vm_rss_kib);
    let fds_held = pid.and_then(open_fds);
    let data_held = pid.and_then(vm_data_kib);
    let closed_by_server = count_closed(&conns.streams);
    let opened = conns.streams.len();
    drop(conns.streams);
    tokio::time::sleep(Duration::from_millis(opts.settle_ms)).await;
    IdleReport {
        requested: opts.connections,
        opened,
        connect_failed: conns.connect_failed,
        closed_by_server,
        first_error: conns.first_error,
        rss_before_kib,
        rss_held_kib,
        rss_after_kib: pid.and_then(vm_rss_kib),
        fds_before_held: fds_before.zip(fds_held),
        data_before_held_kib: data_before.zip(data_held),
        open_ms,
    }
}

/// One kind of malformed frame of the flood, in rotation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Malformed {
    /// 222–477 random bytes (never starting with `A`): untrusted header → `YQ9977`, closed.
    Garbage,
    /// A valid header whose field 1 is `B001`: untrusted → `YQ9977`, closed.
    BadClass,
    /// A valid header announcing 1,048,577 body bytes (one above the default cap), no body
    /// sent: `YQ9977` before any body byte is read, closed.
    Oversized,
    /// A valid 6034 header with a body that is not GBK: `YQ9977`, connection stays open.
    BadGbk,
    /// A body with a DOCTYPE and an entity: `YQ9977`, connection stays open.
    Doctype,
    /// A body nested 9 elements deep (the default cap is 8): `YQ9977`, stays open.
    TooDeep,
}

impl Malformed {
    /// All kinds, in rotation order.
    pub const ALL: [Malformed; 6] = [
        Malformed::Garbage,
        Malformed::BadClass,
        Malformed::Oversized,
        Malformed::BadGbk,
        Malformed::Doctype,
        Malformed::TooDeep,
    ];

    /// Short display name.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Garbage => "garbage",
            Malformed::BadClass => "bad-a001",
            Malformed::Oversized => "oversized",
            Malformed::BadGbk => "bad-gbk",
            Malformed::Doctype => "doctype",
            Malformed::TooDeep => "too-deep",
        }
    }

    /// Whether docs/protocol.md §1.1 has the server close the connection after its `YQ9977`.
    pub fn closes(self) -> bool {
        matches!(
            self,
            Malformed::Garbage | Malformed::BadClass | Malformed::Oversized
        )
    }

    /// The bytes of one frame of this kind with requester serial `serial`; `rng` is an
    /// xorshift64 state (non-zero) advanced for the garbage bytes.
    pub fn frame(self, serial: &str, rng: &mut u64) -> Vec<u8> {
        let body_frame = |body: &[u8]| {
            let mut f = header_announcing(serial, body.len() as u64);
            f.extend_from_slice(body);
            f
        };
        match self {
            Malformed::Garbage => {
                let len = HEADER_LEN + (xorshift(rng) % 256) as usize;
                let mut v: Vec<u8> = (0..len).map(|_| xorshift(rng) as u8).collect();
                if let Some(b) = v.first_mut() {
                    *b |= 0x80;
                }
                v
            }
            Malformed::BadClass => {
                let mut f = header_announcing(serial, 0);
                if let Some(dst) = f.get_mut(0..4) {
                    dst.copy_from_slice(b"B001");
                }
                f
            }
            Malformed::Oversized => header_announcing(serial, 1_048_577),
            Malformed::BadGbk => {
                let mut b = b"<Result><Remark>".to_vec();
                b.extend_from_slice(&[0xFF, 0xFE, 0xFF]);
                b.extend_from_slice(b"</Remark></Result>");
                body_frame(&b)
            }
            Malformed::Doctype => body_frame(
                b"<?xml version=\"1.0\" encoding=\"GBK\"?><!DOCTYPE Result [<!ENTITY x \"boom\">]><Result><Remark>&x;</Remark></Result>",
            ),
            Malformed::TooDeep => {
                let names = ["Result", "A", "B", "C", "D", "E", "F", "G", "H"];
                let mut s = String::new();
                for n in names {
                    s.push_str(&format!("<{n}>"));
                }
                s.push('x');
                for n in names.iter().rev() {
                    s.push_str(&format!("</{n}>"));
                }
                body_frame(s.as_bytes())
            }
        }
    }
}

/// One step of xorshift64 (state must be non-zero).
fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// What the flood connections did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloodStats {
    /// Frames written, per [`Malformed::name`].
    pub sent: BTreeMap<&'static str, u64>,
    /// Replies read, per return code (header field 13).
    pub replies: BTreeMap<String, u64>,
    /// Connections established.
    pub connections: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Frames after which the server closed the connection (end of stream seen).
    pub server_closes: u64,
    /// Frames of a closing kind ([`Malformed::closes`]) after whose reply the connection
    /// was still open after 1,000 ms (a server fault).
    pub left_open: u64,
    /// Frames with no reply within the reply timeout (the server stalled or waited for a
    /// body it should have refused).
    pub no_reply: u64,
    /// Writes that failed (the server had already closed).
    pub write_failures: u64,
}

impl FloodStats {
    fn merge(&mut self, o: FloodStats) {
        for (k, v) in o.sent {
            *self.sent.entry(k).or_default() += v;
        }
        for (k, v) in o.replies {
            *self.replies.entry(k).or_default() += v;
        }
        self.connections += o.connections;
        self.connect_failures += o.connect_failures;
        self.server_closes += o.server_closes;
        self.left_open += o.left_open;
        self.no_reply += o.no_reply;
        self.write_failures += o.write_failures;
    }

    /// Frames written, all kinds.
    pub fn total_sent(&self) -> u64 {
        self.sent.values().sum()
    }
}

impl std::fmt::Display for FloodStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = |m: Vec<(String, u64)>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "flood frames: {} ({})",
            self.total_sent(),
            map(self.sent.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        )?;
        writeln!(
            f,
            "flood replies: {}",
            map(self.replies.iter().map(|(k, v)| (k.clone(), *v)).collect())
        )?;
        write!(
            f,
            "flood connections: {} ({} connect failures), server closes {}, left open {}, no reply {}, write failures {}",
            self.connections,
            self.connect_failures,
            self.server_closes,
            self.left_open,
            self.no_reply,
            self.write_failures
        )
    }
}

/// Per-step timeout of a flood connection (connect, write, reply): 5,000 ms, cut to what is
/// left before the deadline.
pub const FLOOD_STEP_MS: u64 = 5_000;
/// How long a flood connection waits for the server to close after the reply to a closing
/// kind: 1,000 ms.
pub const FLOOD_CLOSE_WAIT_MS: u64 = 1_000;

/// Malformed-frame senders running in the background; see [`start_flood`].
pub struct Flood {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<FloodStats>>,
    started: Instant,
}

impl Flood {
    /// Asks every sender to stop (each finishes its current step, itself bounded), waits for
    /// them, and returns their merged statistics and how long the flood ran, ms.
    pub async fn stop(self) -> (FloodStats, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = FloodStats::default();
        for t in self.tasks {
            if let Ok(st) = t.await {
                all.merge(st);
            }
        }
        (all, self.started.elapsed().as_millis() as u64)
    }
}

/// Starts `connections` tasks that each send malformed frames to the platform link `addr`
/// in [`Malformed::ALL`] rotation (each task starting at a different kind), read the reply,
/// and reconnect whenever the server closes, until `duration_ms` has passed or
/// [`Flood::stop`] is called. `seed` seeds the garbage bytes.
pub fn start_flood(addr: &str, connections: usize, duration_ms: u64, seed: u64) -> Flood {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_millis(duration_ms);
    let tasks = (0..connections)
        .map(|i| {
            let addr = addr.to_owned();
            let stop = stop.clone();
            let rng = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64 + 1)
                | 1;
            tokio::spawn(flood_task(addr, i, deadline, stop, rng))
        })
        .collect();
    Flood {
        stop,
        tasks,
        started,
    }
}

/// The step timeout left before `deadline`, at most [`FLOOD_STEP_MS`]; `None` once passed.
fn step_left(deadline: Instant, stop: &AtomicBool) -> Option<Duration> {
    if stop.load(Ordering::SeqCst) {
        return None;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| left.min(Duration::from_millis(FLOOD_STEP_MS)))
}

async fn flood_task(
    addr: String,
    idx: usize,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    mut rng: u64,
) -> FloodStats {
    let mut st = FloodStats::default();
    let mut k = idx;
    let mut n: u64 = 0;
    'outer: while let Some(t) = step_left(deadline, &stop) {
        let mut s = match tokio::time::timeout(t, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                st.connect_failures += 1;
                // Back off a little (bounded by the deadline) so a refusing server is not spun on.
                if let Some(t) = step_left(deadline, &stop) {
                    tokio::time::sleep(t.min(Duration::from_millis(10))).await;
                }
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        st.connections += 1;
        loop {
            let Some(t) = step_left(deadline, &stop) else {
                break 'outer;
            };
            let kind = Malformed::ALL[k % Malformed::ALL.len()];
            k += 1;
            n += 1;
            let serial = format!("F{idx:03}{n:012}");
            let frame = kind.frame(&serial, &mut rng);
            match tokio::time::timeout(t, s.write_all(&frame)).await {
                Ok(Ok(())) => *st.sent.entry(kind.name()).or_default() += 1,
                _ => {
                    st.write_failures += 1;
                    continue 'outer;
                }
            }
            let ms = t.as_millis() as u64;
            match read_platform_frame(&mut s, ms.max(1)).await {
                Ok(resp) => *st.replies.entry(resp.return_code()).or_default() += 1,
                Err(ClientError::Timeout { .. }) => {
                    st.no_reply += 1;
                    continue 'outer;
                }
                Err(_) => {
                    st.server_closes += 1;
                    continue 'outer;
                }
            }
            if kind.closes() {
                let wait = t.min(Duration::from_millis(FLOOD_CLOSE_WAIT_MS));
                let mut b = [0u8; 1];
                match tokio::time::timeout(wait, tokio::io::AsyncReadExt::read(&mut s, &mut b))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => st.server_closes += 1,
                    // More bytes, or still open after the wait: the server did not close.
                    Ok(Ok(_)) | Err(_) => {
                        if !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                            st.left_open += 1;
                        }
                    }
                }
                continue 'outer;
            }
        }
    }
    st
}

/// What [`run_flood`] does.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// The well-behaved load (its `platform_addr` is also the flood's target).
    pub load: LoadOptions,
    /// Connections sending malformed frames during the second run.
    pub flood_connections: usize,
    /// Longest the flood runs, ms; it stops earlier when the flooded load run ends.
    pub duration_ms: u64,
    /// Seed of the garbage bytes.
    pub seed: u64,
}

/// The outcome of [`run_flood`].
#[derive(Debug, Clone, PartialEq)]
pub struct FloodReport {
    /// The load alone.
    pub baseline: LoadReport,
    /// The same load while the flood ran.
    pub flooded: LoadReport,
    /// What the flood did.
    pub flood: FloodStats,
    /// How long the flood ran, ms.
    pub flood_ms: u64,
    /// Time from starting the flood to the end of the flooded load run (set-up included),
    /// ms; above `flood_ms` means part of the run was not flooded.
    pub flooded_run_ms: u64,
}

/// `num / den`, or NaN when `den` is 0.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

impl FloodReport {
    /// Flooded p50 latency ÷ baseline p50 latency (1.0 = no slowdown).
    pub fn p50_factor(&self) -> f64 {
        ratio(self.flooded.p50_us as f64, self.baseline.p50_us as f64)
    }
    /// Flooded p99 latency ÷ baseline p99 latency (1.0 = no slowdown).
    pub fn p99_factor(&self) -> f64 {
        ratio(self.flooded.p99_us as f64, self.baseline.p99_us as f64)
    }
    /// Baseline throughput ÷ flooded throughput (1.0 = no slowdown; 2.0 = half the req/s).
    pub fn rps_factor(&self) -> f64 {
        ratio(self.baseline.rps, self.flooded.rps)
    }
}

impl std::fmt::Display for FloodReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "== baseline (load alone) ==\n{}", self.baseline)?;
        writeln!(
            f,
            "== flooded (load + malformed frames, flood ran {} ms of a {} ms run) ==\n{}",
            self.flood_ms, self.flooded_run_ms, self.flooded
        )?;
        writeln!(f, "{}", self.flood)?;
        if self.flooded_run_ms > self.flood_ms + 100 {
            writeln!(
                f,
                "warning: the flood ended before the flooded run; raise --duration-ms"
            )?;
        }
        write!(
            f,
            "slowdown: p50 x{:.2}, p99 x{:.2}, throughput x{:.2} (baseline rps / flooded rps)",
            self.p50_factor(),
            self.p99_factor(),
            self.rps_factor()
        )
    }
}

/// Runs `opts.load` alone, then again while [`start_flood`] runs `opts.flood_connections`
/// senders against the same platform link (started 100 ms before the load), and reports
/// both runs, the flood's statistics and the slowdown.
///
/// Errors: those of [`run_load`] (set-up of either run).
pub async fn run_flood(opts: &FloodOptions) -> Result<FloodReport, ClientError> {
    let baseline = run_load(&opts.load).await?;
    let flood = start_flood(
        &opts.load.platform_addr,
        opts.flood_connections,
        opts.duration_ms,
        opts.seed,
    );
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(100.min(opts.duration_ms))).await;
    let flooded = run_load(&opts.load).await;
    let flooded_run_ms = t0.elapsed().as_millis() as u64;
    let (stats, flood_ms) = flood.stop().await;
    Ok(FloodReport {
        baseline,
        flooded: flooded?,
        flood: stats,
        flood_ms,
        flooded_run_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::a001::{A001Codec, FrameError};

    #[test]
    fn parses_vm_rss() {
        let s = "Name:\tbankfep\nVmPeak:\t  10 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(12345));
        assert_eq!(parse_status_kib(s, "VmPeak"), Some(10));
        assert_eq!(parse_status_kib(s, "Rss"), None);
        assert_eq!(parse_status_kib("Name: x\n", "VmRSS"), None);
        assert!(vm_rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn malformed_frames_are_what_they_claim() {
        let codec = A001Codec::default();
        let mut rng = 7u64;
        for _ in 0..50 {
            let g = Malformed::Garbage.frame("S", &mut rng);
            assert!(g.len() >= HEADER_LEN && g[0] != b'A');
            assert!(matches!(
                codec.bytes_needed(&g),
                Err(FrameError::Untrusted { .. })
            ));
        }
        let b = Malformed::BadClass.frame("S", &mut rng);
        assert!(matches!(
            codec.bytes_needed(&b),
            Err(FrameError::Untrusted { .. })
        ));
        let o = Malformed::Oversized.frame("S", &mut rng);
        assert_eq!(o.len(), HEADER_LEN);
        assert!(matches!(
            codec.bytes_needed(&o),
            Err(FrameError::TooLarge {
                body_len: 1_048_577,
                ..
            })
        ));
        for k in [Malformed::BadGbk, Malformed::Doctype, Malformed::TooDeep] {
            let f = k.frame("S00000001", &mut rng);
            assert_eq!(codec.bytes_needed(&f).unwrap(), 0, "{k:?} is a whole frame");
            let h: [u8; HEADER_LEN] = f[..HEADER_LEN].try_into().unwrap();
            assert!(crate::wire::a001::check_request_header(&h).is_ok());
            assert!(!k.closes());
        }
        let deep = Malformed::TooDeep.frame("S", &mut rng);
        let body = String::from_utf8_lossy(&deep[HEADER_LEN..]).into_owned();
        assert_eq!(body.matches("</").count(), 9);
    }

    #[test]
    fn idle_report_per_connection() {
        let r = IdleReport {
            requested: 10,
            opened: 10,
            connect_failed: 0,
            closed_by_server: 2,
            first_error: None,
            rss_before_kib: Some(1000),
            rss_held_kib: Some(1080),
            rss_after_kib: Some(1010),
            fds_before_held: Some((10, 18)),
            data_before_held_kib: None,
            open_ms: 1,
        };
        assert_eq!(r.held_open(), 8);
        assert_eq!(r.per_connection_kib(), Some(10.0));
        assert!(r.to_string().contains("per held connection: 10.00 KiB"));
    }
}
