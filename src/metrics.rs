//! Process-wide metrics and the per-request log line (issue 11, docs/protocol.md §6
//! `/metrics`, docs/operations.md "Metrics").
//!
//! One global registry of atomics, written on the hot path without locks or allocation:
//! a request costs a few relaxed atomic additions (its counter, its histogram bucket, sum
//! and count). Label sets are fixed tables (the served transaction codes and the return
//! codes of docs/protocol.md §1.4 and §2, plus `other`), so no map is touched per request.
//! [`render`] writes the Prometheus text exposition format (version 0.0.4).
//!
//! The hooks elsewhere are one-line calls: [`platform_request`] and [`core_request`] wrap a
//! request's handling (timing, counting, and the `info` request line), [`connection`] counts
//! an open connection while its guard lives, [`commit`] times a writer commit,
//! [`rail_unresolved`] / [`rail_final`] follow rail instructions. Being global, the counters
//! of several gateways in one process (tests) add up.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Transaction codes with their own series: the served platform codes, then `6920`, then
/// `other` (anything unrecognised, e.g. a garbled header).
const TX: [&str; 15] = [
    "6248", "6240", "6241", "6065", "6034", "6007", "6033", "6010", "6072", "6050", "6139", "6110",
    "6142", "6920", "other",
];
const TX_6920: usize = 13;
const TX_OTHER: usize = 14;

/// Return codes with their own series: §1.4 platform codes, §2 core results, `other`.
const CODES: [&str; 23] = [
    "000000", "YQ0000", "YQ9977", "YQ9993", "YQ9985", "YQ9962", "YQ9996", "YQ9971", "YQ9999",
    "E10001", "E10002", "E10003", "E10004", "E10005", "E10006", "E10007", "E10008", "E10009",
    "0000", "1001", "1002", "1003", "other",
];
const CODE_OTHER: usize = 22;
const CORE_FIRST: usize = 18;

/// Latency bucket upper bounds, microseconds (0.5 ms … 10 s).
const LATENCY_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
/// Batch size bucket upper bounds, jobs.
const BATCH: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// A histogram of `N` finite buckets plus `+Inf`; values in the bound's unit.
struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    /// Non-cumulative counts; index `N` is `+Inf`.
    counts: [AtomicU64; 16],
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: &'static [u64; N]) -> Self {
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; 16],
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: u64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(N);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Relaxed);
        }
        self.sum.fetch_add(v, Relaxed);
    }

    /// Writes `name_bucket`, `name_sum`, `name_count` with `labels` (`k="v",` or empty);
    /// `scale` divides bounds and sum (1e6 for microseconds → seconds).
    fn render(&self, out: &mut String, name: &str, labels: &str, scale: f64) {
        use std::fmt::Write;
        let mut cum = 0u64;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i].load(Relaxed);
            let le = *b as f64 / scale;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cum}");
        }
        cum += self.counts[N].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cum}");
        let sum = self.sum.load(Relaxed) as f64 / scale;
        let trimmed = labels.trim_end_matches(',');
        let braced = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{{{trimmed}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {cum}");
    }
}

struct Registry {
    requests: [[AtomicU64; CODES.len()]; TX.len()],
    latency: [Histogram<14>; TX.len()],
    connections: [AtomicI64; 2],
    batch: Histogram<10>,
    commit: Histogram<14>,
    commit_failed: AtomicU64,
    rail_final: [AtomicU64; 2],
    receipts: [AtomicU64; 3],
    held: AtomicI64,
}

static REG: Registry = Registry {
    requests: [const { [const { AtomicU64::new(0) }; CODES.len()] }; TX.len()],
    latency: [const { Histogram::new(&LATENCY_US) }; TX.len()],
    connections: [const { AtomicI64::new(0) }; 2],
    batch: Histogram::new(&BATCH),
    commit: Histogram::new(&LATENCY_US),
    commit_failed: AtomicU64::new(0),
    rail_final: [const { AtomicU64::new(0) }; 2],
    receipts: [const { AtomicU64::new(0) }; 3],
    held: AtomicI64::new(0),
};

/// Rail instructions the dispatcher is driving, by id, with when it took them up (for the
/// age of the oldest). Touched once per instruction, never per platform request.
static RAIL: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

static LOG_REQUESTS: AtomicBool = AtomicBool::new(true);

/// Turns the per-request `info` line on or off (config `log_requests`; process-wide).
pub fn set_log_requests(on: bool) {
    LOG_REQUESTS.store(on, Relaxed);
}

/// The series of a transaction code field (6 bytes, space-padded: docs/protocol.md §1.1).
fn tx_index(tx: &[u8]) -> usize {
    let tx = tx.trim_ascii_end();
    TX[..TX_OTHER]
        .iter()
        .position(|t| t.as_bytes() == tx)
        .unwrap_or(TX_OTHER)
}

fn code_index(code: &[u8], core: bool) -> usize {
    let range = if core {
        CORE_FIRST..CODE_OTHER
    } else {
        0..CORE_FIRST
    };
    CODES[range.clone()]
        .iter()
        .position(|c| c.as_bytes() == code)
        .map_or(CODE_OTHER, |i| i + range.start)
}

/// Peer bytes made safe for a log line: ASCII graphic characters kept, anything else `?`
/// (no control character can forge a line), trailing spaces cut.
fn printable(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    s.trim_end().to_string()
}

fn record(tx: usize, code: usize, took: Duration) {
    REG.requests[tx][code].fetch_add(1, Relaxed);
    REG.latency[tx].observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
}

/// Runs one platform request's handling `fut` (which yields the whole response frame) and
/// records it: the count by transaction and return code, the latency, and, unless turned
/// off, one `info` line `request` with enterprise code, transaction code, serial, return
/// code and latency (the connection's span adds link and peer). `header` is the request's
/// 222-byte A001 header (docs/protocol.md §1.1 offsets); nothing of the body is logged.
pub async fn platform_request<F: Future<Output = Vec<u8>>>(header: &[u8], fut: F) -> Vec<u8> {
    let t0 = Instant::now();
    let out = fut.await;
    let took = t0.elapsed();
    let field = |a: usize, b: usize| header.get(a..b).unwrap_or(&[]);
    let tx_bytes = field(40, 46);
    let code_bytes = out.get(87..93).unwrap_or(&[]);
    record(tx_index(tx_bytes), code_index(code_bytes, false), took);
    if LOG_REQUESTS.load(Relaxed) {
        tracing::info!(
            link = "platform",
            enterprise = %printable(field(10, 30)),
            tx = %printable(tx_bytes),
            serial = %printable(field(67, 87)),
            code = %printable(code_bytes),
            latency_ms = format_args!("{:.3}", took.as_secs_f64() * 1e3),
            "request"
        );
    }
    out
}

/// As [`platform_request`] for one bank-core notice: `record` is the 390-byte 6920 record
/// (docs/protocol.md §2 offsets), `fut` yields the prefixed reply frame. The line carries
/// the bank serial, the payee account masked ([`crate::mask::account`]) and the result.
pub async fn core_request<F: Future<Output = Vec<u8>>>(record_bytes: &[u8], fut: F) -> Vec<u8> {
    let t0 = Instant::now();
    let out = fut.await;
    let took = t0.elapsed();
    let result = out.get(8 + 36..8 + 40).unwrap_or(&[]);
    record(TX_6920, code_index(result, true), took);
    if LOG_REQUESTS.load(Relaxed) {
        let field = |a: usize, b: usize| record_bytes.get(a..b).unwrap_or(&[]);
        tracing::info!(
            link = "core",
            tx = "6920",
            serial = %printable(field(4, 36)),
            payee = %crate::mask::account(&printable(field(54, 86))),
            code = %printable(result),
            latency_ms = format_args!("{:.3}", took.as_secs_f64() * 1e3),
            "request"
        );
    }
    out
}

/// An open connection of the platform (`platform == true`) or core link, counted until the
/// guard drops.
#[must_use = "the connection is counted while the guard lives"]
pub struct ConnGuard(usize);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        REG.connections[self.0].fetch_sub(1, Relaxed);
    }
}

/// Counts an open connection of the platform link (`platform`) or the core link.
pub fn connection(platform: bool) -> ConnGuard {
    let i = usize::from(!platform);
    REG.connections[i].fetch_add(1, Relaxed);
    ConnGuard(i)
}

/// The span of one accepted connection: every line logged while serving it (the request
/// lines too) carries `link` and `peer`.
pub fn connection_span(platform: bool, peer: SocketAddr) -> tracing::Span {
    let link = if platform { "platform" } else { "core" };
    tracing::info_span!("conn", link, %peer)
}

/// Runs the writer's commit `f` of a batch of `jobs` jobs, recording the batch size, the
/// commit latency, and failures; returns `f`'s result.
pub fn commit<T, E>(jobs: usize, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let t0 = Instant::now();
    let r = f();
    REG.commit
        .observe(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
    REG.batch.observe(jobs as u64);
    if r.is_err() {
        REG.commit_failed.fetch_add(1, Relaxed);
    }
    r
}

/// A rail instruction the dispatcher drives; it counts as unresolved until the guard drops
/// (final outcome, or the dispatcher stops).
#[must_use = "the instruction is unresolved while the guard lives"]
pub struct RailGuard(String);

impl Drop for RailGuard {
    fn drop(&mut self) {
        let mut m = RAIL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = m.as_mut() {
            map.remove(&self.0);
        }
    }
}

/// Marks rail instruction `id` unresolved from now until the returned guard drops.
pub fn rail_unresolved(id: &str) -> RailGuard {
    let mut m = RAIL.lock().unwrap_or_else(|e| e.into_inner());
    m.get_or_insert_with(HashMap::new)
        .entry(id.to_string())
        .or_insert_with(Instant::now);
    RailGuard(id.to_string())
}

/// Counts one rail instruction held (maintenance window or `RJ05`, docs/protocol.md §3.1)
/// until the guard drops.
pub struct HeldGuard(());

impl Drop for HeldGuard {
    fn drop(&mut self) {
        REG.held.fetch_sub(1, Relaxed);
    }
}

/// Marks one instruction held from now until the returned guard drops.
pub fn rail_held() -> HeldGuard {
    REG.held.fetch_add(1, Relaxed);
    HeldGuard(())
}

/// Counts a final rail outcome: settled or failed (docs/protocol.md §3 "Outcomes").
pub fn rail_final(settled: bool) {
    REG.rail_final[usize::from(!settled)].fetch_add(1, Relaxed);
}

/// What a receipt verification query came to (docs/protocol.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptLookup {
    /// The receipt was shown.
    Found,
    /// The "no such receipt" page.
    NotFound,
    /// Refused with 429 (too many wrong attempts from the address).
    Limited,
}

/// Counts a receipt verification query.
pub fn receipt_lookup(r: ReceiptLookup) {
    REG.receipts[r as usize].fetch_add(1, Relaxed);
}

/// The Prometheus text exposition of every metric; `queue` = the writer's (main lane,
/// rail lane) queue depth when known.
pub fn render(queue: Option<(usize, usize)>) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(32 * 1024);
    let o = &mut out;
    let _ = writeln!(
        o,
        "# HELP bankfep_requests_total Requests answered, by link, transaction code and return code.\n# TYPE bankfep_requests_total counter"
    );
    for (t, tx) in TX.iter().enumerate() {
        let link = if t == TX_6920 { "core" } else { "platform" };
        for (c, code) in CODES.iter().enumerate() {
            let n = REG.requests[t][c].load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    o,
                    "bankfep_requests_total{{link=\"{link}\",tx=\"{tx}\",code=\"{code}\"}} {n}"
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "# HELP bankfep_core_notices_total 6920 notices answered, by result (docs/protocol.md §2).\n# TYPE bankfep_core_notices_total counter"
    );
    for (c, code) in CODES.iter().enumerate().skip(CORE_FIRST) {
        let n = REG.requests[TX_6920][c].load(Relaxed);
        let _ = writeln!(o, "bankfep_core_notices_total{{result=\"{code}\"}} {n}");
    }
    let _ = writeln!(
        o,
        "# HELP bankfep_request_duration_seconds Time from a complete request to its response, by transaction code.\n# TYPE bankfep_request_duration_seconds histogram"
    );
    for (t, tx) in TX.iter().enumerate() {
        if REG.requests[t].iter().any(|c| c.load(Relaxed) > 0) {
            REG.latency[t].render(
                o,
                "bankfep_request_duration_seconds",
                &format!("tx=\"{tx}\","),
                1e6,
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP bankfep_open_connections Open connections, by link.\n# TYPE bankfep_open_connections gauge"
    );
    for (i, link) in ["platform", "core"].iter().enumerate() {
        let n = REG.connections[i].load(Relaxed);
        let _ = writeln!(o, "bankfep_open_connections{{link=\"{link}\"}} {n}");
    }
    let _ = writeln!(
        o,
        "# HELP bankfep_writer_batch_size Jobs per writer batch (one commit each).\n# TYPE bankfep_writer_batch_size histogram"
    );
    REG.batch.render(o, "bankfep_writer_batch_size", "", 1.0);
    let _ = writeln!(
        o,
        "# HELP bankfep_writer_commit_duration_seconds Time to write a batch's accounts and commit it durably.\n# TYPE bankfep_writer_commit_duration_seconds histogram"
    );
    REG.commit
        .render(o, "bankfep_writer_commit_duration_seconds", "", 1e6);
    let _ = writeln!(
        o,
        "# HELP bankfep_writer_commit_failures_total Batches whose commit failed (answered YQ9999/1003).\n# TYPE bankfep_writer_commit_failures_total counter\nbankfep_writer_commit_failures_total {}",
        REG.commit_failed.load(Relaxed)
    );
    if let Some((main, rail)) = queue {
        let _ = writeln!(
            o,
            "# HELP bankfep_writer_queue_depth Jobs waiting for the writer, by lane.\n# TYPE bankfep_writer_queue_depth gauge\nbankfep_writer_queue_depth{{lane=\"main\"}} {main}\nbankfep_writer_queue_depth{{lane=\"rail\"}} {rail}"
        );
    }
    let (unresolved, oldest) = {
        let m = RAIL.lock().unwrap_or_else(|e| e.into_inner());
        match m.as_ref() {
            Some(map) => (
                map.len(),
                map.values()
                    .map(|t| t.elapsed().as_secs_f64())
                    .fold(0.0, f64::max),
            ),
            None => (0, 0.0),
        }
    };
    let _ = writeln!(
        o,
        "# HELP bankfep_rail_instructions Rail instructions, by state: unresolved = being driven by the dispatcher (docs/protocol.md §3); settled and failed = final outcomes since start.\n# TYPE bankfep_rail_instructions gauge\nbankfep_rail_instructions{{state=\"unresolved\"}} {unresolved}\nbankfep_rail_instructions{{state=\"settled\"}} {}\nbankfep_rail_instructions{{state=\"failed\"}} {}\nbankfep_rail_instructions{{state=\"held\"}} {}",
        REG.rail_final[0].load(Relaxed),
        REG.rail_final[1].load(Relaxed),
        REG.held.load(Relaxed).max(0)
    );
    let _ = writeln!(
        o,
        "# HELP bankfep_rail_oldest_unresolved_seconds Age of the oldest unresolved rail instruction since the dispatcher took it up (0 when none).\n# TYPE bankfep_rail_oldest_unresolved_seconds gauge\nbankfep_rail_oldest_unresolved_seconds {oldest:.3}"
    );
    let _ = writeln!(
        o,
        "# HELP bankfep_receipt_verifications_total E-receipt verification queries, by result.\n# TYPE bankfep_receipt_verifications_total counter"
    );
    for (i, r) in ["found", "not_found", "limited"].iter().enumerate() {
        let n = REG.receipts[i].load(Relaxed);
        let _ = writeln!(
            o,
            "bankfep_receipt_verifications_total{{result=\"{r}\"}} {n}"
        );
    }
    out
}

// The tests check that every served transaction code and every return code has its own
// series, so a new code cannot silently land in `other`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ReturnCode;

    #[test]
    fn tables_cover_every_code() {
        for tx in crate::msg::SERVED {
            assert_ne!(tx_index(tx.as_bytes()), TX_OTHER, "{tx}");
            assert_ne!(
                tx_index(format!("{tx}  ").as_bytes()),
                TX_OTHER,
                "{tx} padded"
            );
        }
        for c in ReturnCode::ALL {
            assert_ne!(code_index(c.as_str().as_bytes(), false), CODE_OTHER);
        }
        for c in ["0000", "1001", "1002", "1003"] {
            assert_ne!(code_index(c.as_bytes(), true), CODE_OTHER);
        }
        assert_eq!(code_index(b"XX", false), CODE_OTHER);
        assert_eq!(tx_index(b"\xff\x00"), TX_OTHER);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        static H: Histogram<3> = Histogram::new(&[1, 10, 100]);
        for v in [0, 1, 5, 50, 500] {
            H.observe(v);
        }
        let mut s = String::new();
        H.render(&mut s, "h", "", 1.0);
        assert!(s.contains("h_bucket{le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"10\"} 3\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"100\"} 4\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"+Inf\"} 5\n"), "{s}");
        assert!(s.contains("h_sum 556\n"), "{s}");
        assert!(s.contains("h_count 5\n"), "{s}");
    }

    #[test]
    fn peer_bytes_cannot_forge_log_lines() {
        assert_eq!(printable(b"AB\ncd\x1b[0m  "), "AB?cd?[0m");
    }
}
