//! The `bankfep load` load generator: drives a running gateway over the platform link
//! (docs/protocol.md §1, 6248 and 6034) after funding sub-accounts over the core link (§2, 6920).
//!
//! Per connection, before the clock starts: open two sub-accounts (A, B) with 6248, fund each
//! with a 1,000,000.00 CNY notice. Then each connection sends sequential 6034 forced
//! transfers of 1.00 alternating A→B and B→A (fee 0.01 on every 10th) and records the
//! latency of each, from the first byte written to the last byte of the response read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{
    build_request, now_cst, xml_request, BodyCharset, ClientError, CoreClient, Notice,
    PlatformClient,
};

/// Per-step timeout (connect, write, read) used by the load generator: 30,000 ms.
pub const LOAD_TIMEOUT_MS: u64 = 30_000;
/// Amount each sub-account is funded with before the run: 100,000,000 fen (1,000,000.00 CNY).
pub const FUNDING_FEN: u64 = 100_000_000;
/// Largest number of connections whose serials stay unique (3 base-36 digits).
pub const MAX_CONNECTIONS: usize = 36 * 36 * 36;

/// What to drive and how hard.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Platform link `host:port` (default `127.0.0.1:7072`).
    pub platform_addr: String,
    /// Bank-core link `host:port` (default `127.0.0.1:7073`).
    pub core_addr: String,
    /// Enterprise code (default `DEMOPLATFORM00000001`).
    pub enterprise: String,
    /// Master account the sub-accounts are opened under (default `6222000000000000001`).
    pub master_account: String,
    /// Concurrent platform connections (default 32, at most [`MAX_CONNECTIONS`]).
    pub connections: usize,
    /// Sequential transfers per connection (default 2000); ignored when `duration_ms` is set.
    pub requests_per_connection: usize,
    /// When set, every connection sends transfers until this many milliseconds have passed
    /// since the clock started.
    pub duration_ms: Option<u64>,
    /// Platform connections over TLS (the funding notices stay on the plain core link).
    pub tls: Option<LoadTls>,
    /// The gateway's process id: its CPU time over the measured phase is read from
    /// `/proc/PID/stat` and reported per transfer (issue 9: steadier than throughput on a
    /// shared machine).
    pub gateway_pid: Option<u32>,
}

/// TLS for the load's platform connections.
#[derive(Debug, Clone)]
pub struct LoadTls {
    /// Client configuration (CA, and the client certificate the gateway expects).
    pub config: Arc<rustls::ClientConfig>,
    /// Name to verify on the server certificate (e.g. `localhost`).
    pub server_name: String,
}

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, `getconf CLK_TCK`): 100 on
/// Linux for x86-64 and arm64.
const USER_HZ: u64 = 100;

/// User plus system CPU time of process `pid`, µs (10 ms resolution), from fields 14 and 15
/// of `/proc/PID/stat`; `None` when unreadable.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count fields after its ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 is index 0, so utime (14) is index 11 and stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    utime.checked_add(stime)?.checked_mul(1_000_000 / USER_HZ)
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            platform_addr: "127.0.0.1:7072".into(),
            core_addr: "127.0.0.1:7073".into(),
            enterprise: "DEMOPLATFORM00000001".into(),
            master_account: "6222000000000000001".into(),
            connections: 32,
            requests_per_connection: 2000,
            duration_ms: None,
            tls: None,
            gateway_pid: None,
        }
    }
}

impl LoadOptions {
    /// The TLS part of a platform connect call.
    fn tls_pair(&self) -> Option<(Arc<rustls::ClientConfig>, &str)> {
        self.tls
            .as_ref()
            .map(|t| (t.config.clone(), t.server_name.as_str()))
    }
}

/// The outcome of a load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Transfers sent (successful or not).
    pub requests: u64,
    /// Transfers answered with a return code other than `000000`, or failed in transport.
    pub errors: u64,
    /// Wall time of the measured phase in milliseconds.
    pub elapsed_ms: u64,
    /// Requests per second over the measured phase (display only).
    pub rps: f64,
    /// Median latency in microseconds.
    pub p50_us: u64,
    /// 99th-percentile latency in microseconds.
    pub p99_us: u64,
    /// Largest latency in microseconds.
    pub max_us: u64,
    /// Count of responses per return code; transport failures under `transport`.
    pub return_codes: BTreeMap<String, u64>,
    /// The gateway's CPU time per transfer over the measured phase, µs (with
    /// `gateway_pid`; display only).
    pub gateway_cpu_us_per_request: Option<f64>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        writeln!(f, "requests: {} (errors: {})", self.requests, self.errors)?;
        writeln!(
            f,
            "elapsed: {} ms, throughput: {:.1} req/s",
            self.elapsed_ms, self.rps
        )?;
        writeln!(
            f,
            "latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.max_us)
        )?;
        let codes: Vec<String> = self
            .return_codes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "return codes: {}", codes.join(", "))?;
        if let Some(cpu) = self.gateway_cpu_us_per_request {
            write!(f, "\ngateway CPU: {cpu:.1} µs per transfer")?;
        }
        Ok(())
    }
}

/// The `pct`-th percentile (0–100) of ascending `sorted` latencies, nearest-rank method;
/// 0 for an empty slice.
pub fn percentile(sorted: &[u64], pct: u32) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let pct = pct.min(100) as usize;
    let rank = (pct * n).div_ceil(100).max(1);
    sorted[rank.min(n) - 1]
}

fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A run id of 7 base-36 characters from the current time in milliseconds (repeats only
/// after about 2.5 years).
pub fn run_id_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    base36(ms, 7)
}

/// A requester serial unique per (run, connection, counter): `L` + run id (7) + connection
/// (3 base-36 digits) + counter (8 base-36 digits) = 19 characters (≤ 20, §1.1 field 12).
pub fn serial(run_id: &str, conn: usize, counter: u64) -> String {
    format!("L{run_id}{}{}", base36(conn as u64, 3), base36(counter, 8))
}

struct Member {
    sub_acct: String,
    code: String,
}

struct Prepared {
    client: PlatformClient,
    a: Member,
    b: Member,
    counter: u64,
}

/// How often a set-up step answered "not done" (`YQ9999`/`YQ9971` on the platform link,
/// `1003` on the core link) is sent again, the same serial each time, before the run gives
/// up: a gateway just started, or several instances sharing out their tenants
/// (docs/protocol.md §5), answer so for their first seconds.
const SETUP_RETRIES: u32 = 50;
/// Pause between two such tries, ms (so about 10 s in all).
const SETUP_RETRY_MS: u64 = 200;

async fn setup_connection(
    opts: Arc<LoadOptions>,
    run_id: Arc<str>,
    conn: usize,
) -> Result<Prepared, ClientError> {
    let mut client =
        PlatformClient::connect(&opts.platform_addr, opts.tls_pair(), LOAD_TIMEOUT_MS).await?;
    let mut core = CoreClient::connect(&opts.core_addr, None, LOAD_TIMEOUT_MS).await?;
    let mut counter = 0u64;
    let mut members = Vec::with_capacity(2);
    for (side, label) in [(0u64, "A"), (1u64, "B")] {
        let code = format!("LOAD{run_id}{conn}{label}");
        let name = format!("负载测试{label}");
        let id_num = (u64::from_str_radix(&run_id, 36).unwrap_or(0) % 1_000_000_000 * 100_000
            + conn as u64)
            * 10
            + side;
        let global_id = format!("91{:016}", id_num % 10_000_000_000_000_000);
        let s = serial(&run_id, conn, counter);
        counter += 1;
        let mut tries = 0;
        let resp = loop {
            // The same serial again after a "not done" answer: idempotent (§1.2).
            let resp = client
                .call(
                    &opts.enterprise,
                    "6248",
                    &s,
                    &[
                        ("FunctionFlag", "1"),
                        ("FundSummaryAcctNo", &opts.master_account),
                        ("TranNetMemberCode", &code),
                        ("MemberName", &name),
                        ("MemberGlobalType", "73"),
                        ("MemberGlobalId", &global_id),
                    ],
                )
                .await?;
            let code = resp.return_code();
            if (code == "YQ9999" || code == "YQ9971") && tries < SETUP_RETRIES {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(SETUP_RETRY_MS)).await;
                continue;
            }
            break resp;
        };
        if resp.return_code() != "000000" {
            return Err(ClientError::Setup(format!(
                "6248 for {code}: {} {}",
                resp.return_code(),
                resp.return_message()
            )));
        }
        let sub_acct = resp
            .field("SubAcctNo")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ClientError::Setup(format!("6248 for {code}: no SubAcctNo")))?;

        let (date, time) = now_cst();
        let notice = Notice {
            bank_serial: format!("N{}", serial(&run_id, conn, counter)),
            channel: "INTR".into(),
            acct_date: date,
            time,
            payee: sub_acct.clone(),
            amount_fen: FUNDING_FEN,
            payer_acct: "6222000000000008888".into(),
            payer_name: "负载测试付款人".into(),
            payer_bank: String::new(),
            memo: "load test funding".into(),
        };
        counter += 1;
        let mut tries = 0;
        let reply = loop {
            // The same bank serial again after `1003` (busy): booked at most once (§2).
            let reply = core.notify(&notice).await?;
            if reply.result == "1003" && tries < SETUP_RETRIES {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(SETUP_RETRY_MS)).await;
                continue;
            }
            break reply;
        };
        if reply.result != "0000" {
            return Err(ClientError::Setup(format!(
                "6920 funding {sub_acct}: {} {}",
                reply.result, reply.message
            )));
        }
        members.push(Member { sub_acct, code });
    }
    let b = members.pop();
    let a = members.pop();
    match (a, b) {
        (Some(a), Some(b)) => Ok(Prepared {
            client,
            a,
            b,
            counter,
        }),
        _ => Err(ClientError::Setup("internal: members missing".into())),
    }
}

struct ConnStats {
    latencies: Vec<u64>,
    requests: u64,
    errors: u64,
    codes: BTreeMap<String, u64>,
}

async fn drive_connection(
    opts: Arc<LoadOptions>,
    run_id: Arc<str>,
    conn: usize,
    mut p: Prepared,
    deadline: Option<Instant>,
) -> ConnStats {
    let mut st = ConnStats {
        latencies: Vec::with_capacity(if deadline.is_some() {
            1024
        } else {
            opts.requests_per_connection
        }),
        requests: 0,
        errors: 0,
        codes: BTreeMap::new(),
    };
    let mut k: u64 = 0;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if k >= opts.requests_per_connection as u64 => break,
            _ => {}
        }
        let (from, to) = if k.is_multiple_of(2) {
            (&p.a, &p.b)
        } else {
            (&p.b, &p.a)
        };
        let s = serial(&run_id, conn, p.counter);
        p.counter += 1;
        let order = format!("O{s}");
        let mut fields = vec![
            ("OutSubAcctNo", from.sub_acct.as_str()),
            ("OutMemberCode", from.code.as_str()),
            ("InSubAcctNo", to.sub_acct.as_str()),
            ("InMemberCode", to.code.as_str()),
            ("TranAmt", "1.00"),
        ];
        if (k + 1).is_multiple_of(10) {
            fields.push(("TranFee", "0.01"));
        }
        fields.push(("OrderNo", order.as_str()));
        k += 1;
        let (date, time) = now_cst();
        let body = xml_request(BodyCharset::Gbk, &fields);
        let frame = match build_request(
            BodyCharset::Gbk,
            &opts.enterprise,
            "6034",
            &s,
            &date,
            &time,
            &body,
        ) {
            Ok(f) => f,
            Err(_) => {
                st.requests += 1;
                st.errors += 1;
                *st.codes.entry("encode".into()).or_default() += 1;
                continue;
            }
        };
        st.requests += 1;
        let t0 = Instant::now();
        match p.client.call_raw(&frame).await {
            Ok(resp) => {
                st.latencies.push(t0.elapsed().as_micros() as u64);
                let code = resp.return_code();
                if code != "000000" {
                    st.errors += 1;
                }
                *st.codes.entry(code).or_default() += 1;
            }
            Err(_) => {
                st.errors += 1;
                *st.codes.entry("transport".into()).or_default() += 1;
                match PlatformClient::connect(&opts.platform_addr, opts.tls_pair(), LOAD_TIMEOUT_MS)
                    .await
                {
                    Ok(c) => p.client = c,
                    Err(_) => break,
                }
            }
        }
    }
    st
}

/// Runs the load test described by `opts` (see the module docs) and reports throughput,
/// latency percentiles (µs, from all connections' sorted latencies) and return codes.
/// Business errors and transport failures during the measured phase are counted, not fatal.
///
/// Errors: [`ClientError::Setup`] when a set-up step fails (sub-account not opened, funding
/// not accepted, too many or zero connections), or a connect/transport error during set-up.
pub async fn run_load(opts: &LoadOptions) -> Result<LoadReport, ClientError> {
    if opts.connections == 0 || opts.connections > MAX_CONNECTIONS {
        return Err(ClientError::Setup(format!(
            "connections must be 1..={MAX_CONNECTIONS}, got {}",
            opts.connections
        )));
    }
    let opts = Arc::new(opts.clone());
    let run_id: Arc<str> = Arc::from(run_id_now());

    let mut setups = Vec::with_capacity(opts.connections);
    for conn in 0..opts.connections {
        setups.push(tokio::spawn(setup_connection(
            opts.clone(),
            run_id.clone(),
            conn,
        )));
    }
    let mut prepared = Vec::with_capacity(setups.len());
    let mut first_err = None;
    for h in setups {
        match h.await {
            Ok(Ok(p)) => prepared.push(p),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(ClientError::Setup(format!("set-up task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    let cpu_before = opts.gateway_pid.and_then(process_cpu_us);
    let start = Instant::now();
    let deadline = opts.duration_ms.map(|ms| start + Duration::from_millis(ms));
    let mut tasks = Vec::with_capacity(prepared.len());
    for (conn, p) in prepared.into_iter().enumerate() {
        tasks.push(tokio::spawn(drive_connection(
            opts.clone(),
            run_id.clone(),
            conn,
            p,
            deadline,
        )));
    }
    let mut latencies = Vec::new();
    let mut requests = 0;
    let mut errors = 0;
    let mut return_codes: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let st = t
            .await
            .map_err(|e| ClientError::Setup(format!("load task failed: {e}")))?;
        latencies.extend(st.latencies);
        requests += st.requests;
        errors += st.errors;
        for (k, v) in st.codes {
            *return_codes.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = opts.gateway_pid.and_then(process_cpu_us);
    let gateway_cpu_us_per_request = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if requests > 0 => Some(a.saturating_sub(b) as f64 / requests as f64),
        _ => None,
    };
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    Ok(LoadReport {
        requests,
        errors,
        elapsed_ms: elapsed.as_millis() as u64,
        rps: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        p50_us: percentile(&latencies, 50),
        p99_us: percentile(&latencies, 99),
        max_us: latencies.last().copied().unwrap_or(0),
        return_codes,
        gateway_cpu_us_per_request,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_of_a_process_grows_with_work() {
        let me = std::process::id();
        let before = process_cpu_us(me).expect("own /proc/PID/stat");
        // Work until this process has used 30 ms more CPU (on a busy machine that may take
        // longer in wall time); fail if the reading never moves.
        let mut x = 0u64;
        let t = std::time::Instant::now();
        let mut after = before;
        while after < before + 30_000 && t.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
            after = process_cpu_us(me).expect("own /proc/PID/stat");
        }
        assert!(after >= before + 30_000, "{before} → {after} µs");
        assert_eq!(process_cpu_us(u32::MAX), None);
    }

    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn percentiles_nearest_rank() {
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[7], 50), 7);
        assert_eq!(percentile(&[7], 99), 7);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&v, 100), 100);
        assert_eq!(percentile(&v, 0), 1);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99), 990);
        let v = [10, 20, 30];
        assert_eq!(percentile(&v, 50), 20);
        assert_eq!(percentile(&v, 99), 30);
    }

    #[test]
    fn serials_unique_and_short() {
        let run = run_id_now();
        assert_eq!(run.len(), 7);
        let mut seen = HashSet::new();
        for conn in [0usize, 1, 35, 36, 999, MAX_CONNECTIONS - 1] {
            for counter in (0u64..3000).chain([36u64.pow(8) - 1]) {
                let s = serial(&run, conn, counter);
                assert!(s.len() <= 20, "{s}");
                assert!(s.is_ascii());
                assert!(format!("O{s}").len() <= 30);
                assert!(format!("N{s}").len() <= 32);
                assert!(seen.insert(s));
            }
        }
        assert_eq!(base36(35, 2), "0Z");
        assert_eq!(base36(36, 2), "10");
    }

    #[test]
    fn report_display() {
        let mut codes = BTreeMap::new();
        codes.insert("000000".to_owned(), 9);
        codes.insert("E10003".to_owned(), 1);
        let r = LoadReport {
            requests: 10,
            errors: 1,
            elapsed_ms: 2000,
            rps: 5.0,
            p50_us: 1500,
            p99_us: 2500,
            max_us: 3000,
            return_codes: codes,
            gateway_cpu_us_per_request: Some(41.25),
        };
        let s = r.to_string();
        assert!(s.contains("gateway CPU: 41.2 µs per transfer"), "{s}");
        assert!(s.contains("requests: 10 (errors: 1)"), "{s}");
        assert!(s.contains("5.0 req/s"), "{s}");
        assert!(
            s.contains("p50 1.500 ms, p99 2.500 ms, max 3.000 ms"),
            "{s}"
        );
        assert!(s.contains("000000=9, E10003=1"), "{s}");
    }

    /// A fake gateway: 6248 answers a SubAcctNo, 6034 `000000` (or `E10003` for
    /// transfers carrying a fee, to check error counting); the core answers `0000`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_load_against_fake_gateway() {
        let seen: Arc<Mutex<(HashSet<String>, HashSet<String>)>> = Arc::default();
        let pl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let paddr = pl.local_addr().unwrap().to_string();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            let mut next_acct = 1000000000000000u64;
            loop {
                let Ok((mut s, _)) = pl.accept().await else {
                    return;
                };
                next_acct += 1000;
                let seen = seen2.clone();
                let base = next_acct;
                tokio::spawn(async move {
                    let mut n = 0;
                    loop {
                        let mut h = vec![0u8; 222];
                        if s.read_exact(&mut h).await.is_err() {
                            return;
                        }
                        let len: usize = std::str::from_utf8(&h[30..40]).unwrap().parse().unwrap();
                        let mut body = vec![0u8; len];
                        s.read_exact(&mut body).await.unwrap();
                        let text = encoding_rs::GBK.decode(&body).0.into_owned();
                        let serial = String::from_utf8_lossy(&h[67..87]).trim().to_owned();
                        let tx = String::from_utf8_lossy(&h[40..46]).trim().to_owned();
                        {
                            let mut g = seen.lock().unwrap();
                            assert!(g.0.insert(serial.clone()), "dup serial {serial}");
                            if let Some(i) = text.find("<OrderNo>") {
                                let o = &text[i + 9..];
                                let o = &o[..o.find('<').unwrap()];
                                assert!(g.1.insert(o.to_owned()), "dup order {o}");
                            }
                        }
                        let (code, rbody) = if tx == "6248" {
                            n += 1;
                            assert!(text.contains("<MemberGlobalType>73</MemberGlobalType>"));
                            (
                                "000000",
                                format!("<Result><SubAcctNo>{}</SubAcctNo></Result>", base + n),
                            )
                        } else if text.contains("<TranFee>0.01</TranFee>") {
                            ("E10003", String::new())
                        } else {
                            (
                                "000000",
                                "<Result><FrontSeqNo>1</FrontSeqNo></Result>".into(),
                            )
                        };
                        let mut resp = h.clone();
                        resp[30..40].copy_from_slice(format!("{:010}", rbody.len()).as_bytes());
                        resp[87..93].copy_from_slice(code.as_bytes());
                        resp.extend_from_slice(rbody.as_bytes());
                        s.write_all(&resp).await.unwrap();
                    }
                });
            }
        });
        let cl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let caddr = cl.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = cl.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    loop {
                        let mut rec = vec![0u8; 398];
                        if s.read_exact(&mut rec).await.is_err() {
                            return;
                        }
                        assert_eq!(&rec[..12], b"000003906920");
                        assert_eq!(&rec[8 + 86..8 + 101], b"000000100000000");
                        let mut reply = b"000001006920".to_vec();
                        reply.extend_from_slice(&rec[12..44]);
                        reply.extend_from_slice(b"0000");
                        reply.extend_from_slice(&[b' '; 60]);
                        s.write_all(&reply).await.unwrap();
                    }
                });
            }
        });

        let opts = LoadOptions {
            platform_addr: paddr,
            core_addr: caddr,
            connections: 3,
            requests_per_connection: 20,
            ..LoadOptions::default()
        };
        let r = run_load(&opts).await.unwrap();
        assert_eq!(r.requests, 60);
        assert_eq!(r.errors, 6);
        assert_eq!(r.return_codes.get("000000"), Some(&54));
        assert_eq!(r.return_codes.get("E10003"), Some(&6));
        assert!(r.p50_us <= r.p99_us && r.p99_us <= r.max_us);
        // 6 openings + 60 transfers, all with distinct serials; 60 distinct order numbers.
        let g = seen.lock().unwrap();
        assert_eq!(g.0.len(), 66);
        assert_eq!(g.1.len(), 60);
    }
}
