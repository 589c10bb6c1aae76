//! Fixture replay (`bankfep replay DIR --addr HOST:PORT [--core-addr HOST:PORT]`).
//!
//! Layout: `DIR/<flow>/<case>/request.bin` (exact request bytes), `response.bin` (exact
//! expected response bytes), `note.txt` (one line: what the case proves) and, optionally,
//! an empty file `close`: after the response the server must close the connection within
//! 2 s (an empty `response.bin` with `close` means "closed without any reply").
//!
//! Flows run in byte-wise order of their directory names, cases in byte-wise order within a
//! flow, all sequentially over ONE platform connection and ONE core connection, each opened
//! lazily and re-opened when the server closed it. A request starting with `A001` goes to the
//! platform address (docs/protocol.md §1), one starting with 8 ASCII digits to the core address
//! (§2). A case whose request must be malformed in exactly those first bytes (a message class
//! other than `A001`, a length prefix that is not 8 digits) names its link in an optional
//! file `link` containing `platform` or `core`, which overrides that rule. Responses are
//! compared byte for byte, except bytes 53..67 of platform responses (header date and time,
//! §1.1 fields 10–11).
//!
//! A link that cannot be connected to (nothing listening, connect timeout, no address) ends
//! the replay at once with [`ReplayError::Unreachable`]: every later case would fail the
//! same way. A fixture folder without any case is [`ReplayError::NoCases`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::client::{
    header_field_at, read_platform_frame, read_prefixed_record, write_frame, ClientError,
    HEADER_LEN,
};

/// How long the server has to close the connection in a case with a `close` file: 2000 ms.
pub const CLOSE_WAIT_MS: u64 = 2000;
/// The masked byte range of platform responses: header date and time (§1.1 fields 10–11).
pub const MASK: std::ops::Range<usize> = 53..67;

/// What to replay and where.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The fixture root (`DIR`).
    pub dir: PathBuf,
    /// Platform link address `host:port` for `A001` requests.
    pub platform_addr: String,
    /// Bank-core link address `host:port` for length-prefixed requests; may be empty when
    /// no case needs it (such a case then fails).
    pub core_addr: String,
    /// Write the actual responses into `response.bin` instead of comparing (an empty
    /// `response.bin` and a `close` file are written when the server closed without reply).
    pub bless: bool,
    /// Timeout of each connect, write and read step, in milliseconds.
    pub timeout_ms: u64,
}

/// Why a replay could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The fixture tree could not be listed, or (bless mode) a file could not be written.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The fixture folder holds no case (`DIR/<flow>/<case>/`).
    #[error("no fixture cases under {}: expected folders DIR/<flow>/<case>/ with request.bin", dir.display())]
    NoCases {
        /// The folder given.
        dir: PathBuf,
    },
    /// A link could not be connected to; the replay stopped at this case.
    #[error(
        "cannot connect to the {link} link at {addr} (at case {case}): {source}; \
         is the gateway running and has it printed `ready`?"
    )]
    Unreachable {
        /// `platform` or `core`.
        link: &'static str,
        /// The address dialled (empty when none was given).
        addr: String,
        /// `flow/case` that needed the link.
        case: String,
        /// The connect error or timeout.
        source: ClientError,
    },
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    /// `flow/case`.
    pub case: String,
    /// Whether the response matched (or, in bless mode, was recorded).
    pub ok: bool,
    /// Empty when ok; otherwise the first differing offset (with the header field name when
    /// in the header), lengths and expected vs actual return code, or the transport error.
    pub detail: String,
    /// The first line of `note.txt` (empty if missing).
    pub note: String,
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        if entry.file_type()?.is_dir() || entry.path().is_dir() {
            out.push(entry.path());
        }
    }
    out.sort_by(|a, b| {
        let a = a.file_name().map(|n| n.as_encoded_bytes()).unwrap_or(b"");
        let b = b.file_name().map(|n| n.as_encoded_bytes()).unwrap_or(b"");
        a.cmp(b)
    });
    Ok(out)
}

/// Every case directory under `dir` (`dir/<flow>/<case>`), flows in byte-wise order of
/// their names, cases in byte-wise order within each flow. Hidden entries (leading `.`)
/// and plain files are skipped.
///
/// Errors: any I/O error reading the directories.
pub fn list_cases(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut cases = Vec::new();
    for flow in sorted_subdirs(dir)? {
        cases.extend(sorted_subdirs(&flow)?);
    }
    Ok(cases)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Platform,
    Core,
}

fn classify(req: &[u8]) -> Option<Kind> {
    if req.starts_with(b"A001") {
        Some(Kind::Platform)
    } else if req.len() >= 8 && req[..8].iter().all(u8::is_ascii_digit) {
        Some(Kind::Core)
    } else {
        None
    }
}

/// The link named by the case's optional `link` file (`platform` or `core`, surrounding
/// whitespace ignored): `Ok(None)` without such a file, `Err` for any other content.
fn link_override(case: &Path) -> Result<Option<Kind>, String> {
    match std::fs::read_to_string(case.join("link")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", case.join("link").display())),
        Ok(s) => match s.trim() {
            "platform" => Ok(Some(Kind::Platform)),
            "core" => Ok(Some(Kind::Core)),
            other => Err(format!(
                "link file names {other:?}; expected \"platform\" or \"core\""
            )),
        },
    }
}

/// One lazily opened connection.
struct Link {
    addr: String,
    conn: Option<TcpStream>,
}

impl Link {
    /// Drops the connection if the server closed it (or sent something unsolicited) while
    /// idle. The server never sends unsolicited frames, so any readiness means it is gone.
    async fn drop_if_closed(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            let mut b = [0u8; 1];
            if let Ok(_ready) = tokio::time::timeout(Duration::ZERO, conn.read(&mut b)).await {
                self.conn = None;
            }
        }
    }

    /// Returns the connection, opening one if needed, and whether it is fresh.
    async fn get(&mut self, timeout_ms: u64) -> Result<(&mut TcpStream, bool), ClientError> {
        let fresh = self.conn.is_none();
        if fresh {
            if self.addr.is_empty() {
                return Err(ClientError::Setup(
                    "no address configured for this link".into(),
                ));
            }
            let s = tokio::time::timeout(
                Duration::from_millis(timeout_ms),
                TcpStream::connect(self.addr.as_str()),
            )
            .await
            .map_err(|_| ClientError::Timeout {
                what: "connecting",
                ms: timeout_ms,
            })?
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
            let _ = s.set_nodelay(true);
            self.conn = Some(s);
        }
        match self.conn.as_mut() {
            Some(c) => Ok((c, fresh)),
            None => Err(ClientError::Closed),
        }
    }
}

/// Writes `req` while reading one frame, so a server that answers and closes before
/// consuming the whole request (e.g. an oversized body) is still heard. Returns the frame
/// as read (platform: header + body; core: prefix + record).
async fn exchange(
    conn: &mut TcpStream,
    kind: Kind,
    req: &[u8],
    timeout_ms: u64,
) -> Result<Vec<u8>, ClientError> {
    let (mut rd, mut wr) = conn.split();
    let write = write_frame(&mut wr, req, timeout_ms);
    let read = async {
        match kind {
            Kind::Platform => read_platform_frame(&mut rd, timeout_ms).await.map(|r| {
                let mut v = r.header;
                v.extend_from_slice(&r.body);
                v
            }),
            Kind::Core => read_prefixed_record(&mut rd, timeout_ms).await.map(|rec| {
                let mut v = format!("{:08}", rec.len()).into_bytes();
                v.extend_from_slice(&rec);
                v
            }),
        }
    };
    let (w, r) = tokio::join!(write, read);
    match (w, r) {
        (_, Ok(frame)) => Ok(frame),
        // A write failure explains a missing reply better than the read's EOF.
        (Err(e), Err(ClientError::Closed)) => match e {
            ClientError::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Err(ClientError::Closed)
            }
            other => Err(other),
        },
        (_, Err(e)) => Err(e),
    }
}

/// Waits up to [`CLOSE_WAIT_MS`] for the server to close; `Err(reason)` otherwise.
async fn expect_close(conn: &mut TcpStream) -> Result<(), String> {
    let mut b = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(CLOSE_WAIT_MS), conn.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
        Ok(Ok(n)) => Err(format!(
            "{n} unexpected bytes after the response instead of a close"
        )),
        Err(_) => Err(format!(
            "connection still open {CLOSE_WAIT_MS} ms after the response"
        )),
    }
}

fn return_code(kind: Kind, frame: &[u8]) -> String {
    let range = match kind {
        Kind::Platform => 87..93,
        Kind::Core => 44..48,
    };
    frame
        .get(range)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| "-".into())
}

/// Compares per the replay rules; `None` when equal, otherwise a description.
fn compare(kind: Kind, expected: &[u8], actual: &[u8]) -> Option<String> {
    let masked = |i: usize| kind == Kind::Platform && MASK.contains(&i);
    let common = expected.len().min(actual.len());
    let first = (0..common).find(|&i| !masked(i) && expected[i] != actual[i]);
    let first = match first {
        Some(i) => i,
        None if expected.len() == actual.len() => return None,
        None => common,
    };
    let mut d = format!("first difference at offset {first}");
    if kind == Kind::Platform {
        match header_field_at(first) {
            Some((n, name)) => d.push_str(&format!(" (header field {n} {name})")),
            None => d.push_str(&format!(" (body offset {})", first - HEADER_LEN)),
        }
    }
    match (expected.get(first), actual.get(first)) {
        (Some(e), Some(a)) => d.push_str(&format!(": expected 0x{e:02x}, actual 0x{a:02x}")),
        (Some(_), None) => d.push_str(": actual response ends here"),
        (None, Some(_)) => d.push_str(": expected response ends here"),
        (None, None) => {}
    }
    if expected.len() != actual.len() {
        d.push_str(&format!(
            "; length expected {}, actual {}",
            expected.len(),
            actual.len()
        ));
    }
    let (ec, ac) = (return_code(kind, expected), return_code(kind, actual));
    let label = match kind {
        Kind::Platform => "return code",
        Kind::Core => "result",
    };
    d.push_str(&format!("; {label} expected {ec:?}, actual {ac:?}"));
    Some(d)
}

fn read_fixture(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Replays every case of `opts.dir` (see the module docs) and returns one outcome per case,
/// in order. A mismatch, a missing reply or a connection the server broke fails the case and
/// replay goes on; a link that cannot be connected to stops it.
///
/// Errors: [`ReplayError::Client`] wrapping [`ClientError::Fixture`] if the fixture tree
/// cannot be listed, or in bless mode if a `response.bin` (or `close`) cannot be written;
/// [`ReplayError::NoCases`] if it holds no case; [`ReplayError::Unreachable`] at the first
/// case whose link cannot be connected to (outcomes of earlier cases are not returned).
pub async fn replay(opts: &ReplayOptions) -> Result<Vec<CaseOutcome>, ReplayError> {
    let cases = list_cases(&opts.dir).map_err(|source| ClientError::Fixture {
        path: opts.dir.clone(),
        source,
    })?;
    if cases.is_empty() {
        return Err(ReplayError::NoCases {
            dir: opts.dir.clone(),
        });
    }
    let mut platform = Link {
        addr: opts.platform_addr.clone(),
        conn: None,
    };
    let mut core = Link {
        addr: opts.core_addr.clone(),
        conn: None,
    };
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        let name = {
            let flow = case
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let c = case
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{flow}/{c}")
        };
        let note = std::fs::read_to_string(case.join("note.txt"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let verdict = match run_case(opts, &case, &mut platform, &mut core).await {
            Ok(v) => v,
            Err(Abort::Client(e)) => return Err(e.into()),
            Err(Abort::Unreachable { link, addr, source }) => {
                return Err(ReplayError::Unreachable {
                    link,
                    addr,
                    case: name,
                    source,
                })
            }
        };
        out.push(CaseOutcome {
            case: name,
            ok: verdict.is_none(),
            detail: verdict.unwrap_or_default(),
            note,
        });
    }
    Ok(out)
}

/// Why a case could not be run at all (ends the replay).
enum Abort {
    /// A fixture file could not be written (bless mode).
    Client(ClientError),
    /// The case's link could not be connected to.
    Unreachable {
        link: &'static str,
        addr: String,
        source: ClientError,
    },
}

impl From<ClientError> for Abort {
    fn from(e: ClientError) -> Abort {
        Abort::Client(e)
    }
}

/// Runs one case; `Ok(None)` = pass, `Ok(Some(detail))` = fail.
async fn run_case(
    opts: &ReplayOptions,
    case: &Path,
    platform: &mut Link,
    core: &mut Link,
) -> Result<Option<String>, Abort> {
    let req = match read_fixture(&case.join("request.bin")) {
        Ok(r) => r,
        Err(e) => return Ok(Some(e)),
    };
    let resp_path = case.join("response.bin");
    let close_path = case.join("close");
    let expected = if opts.bless {
        Vec::new()
    } else {
        match read_fixture(&resp_path) {
            Ok(r) => r,
            Err(e) => return Ok(Some(e)),
        }
    };
    let expect_close_flag = close_path.exists();
    let named = match link_override(case) {
        Ok(k) => k,
        Err(e) => return Ok(Some(e)),
    };
    let Some(kind) = named.or_else(|| classify(&req)) else {
        return Ok(Some(
            "request.bin starts with neither A001 nor 8 ASCII digits, and no link file".into(),
        ));
    };
    let (link, link_name) = match kind {
        Kind::Platform => (platform, "platform"),
        Kind::Core => (core, "core"),
    };
    let no_reply_expected = expect_close_flag && expected.is_empty() && !opts.bless;

    link.drop_if_closed().await;
    let mut result = None;
    for _attempt in 0..2 {
        let (conn, fresh) = match link.get(opts.timeout_ms).await {
            Ok(c) => c,
            Err(source) => {
                return Err(Abort::Unreachable {
                    link: link_name,
                    addr: link.addr.clone(),
                    source,
                })
            }
        };
        let r = exchange(conn, kind, &req, opts.timeout_ms).await;
        // A reused connection the server closed just before our write: reconnect once.
        let retry = matches!(r, Err(ClientError::Closed)) && !fresh && !no_reply_expected;
        result = Some(r);
        if retry {
            link.conn = None;
            continue;
        }
        break;
    }
    let result = result.unwrap_or(Err(ClientError::Closed));

    let actual = match result {
        Ok(frame) => frame,
        Err(ClientError::Closed) => {
            link.conn = None;
            if opts.bless {
                write_out(&resp_path, &[])?;
                write_out(&close_path, &[])?;
                return Ok(None);
            }
            if no_reply_expected {
                return Ok(None);
            }
            return Ok(Some(format!(
                "connection closed without a reply; expected {} bytes, return code {:?}",
                expected.len(),
                return_code(kind, &expected)
            )));
        }
        Err(e) => {
            link.conn = None;
            return Ok(Some(format!("{e}")));
        }
    };

    let mut close_problem = None;
    if expect_close_flag {
        if let Some(conn) = link.conn.as_mut() {
            close_problem = expect_close(conn).await.err();
        }
        link.conn = None;
    }

    if opts.bless {
        write_out(&resp_path, &actual)?;
        return Ok(close_problem);
    }
    if no_reply_expected {
        return Ok(Some(format!(
            "expected a close without reply, got {} bytes, return code {:?}",
            actual.len(),
            return_code(kind, &actual)
        )));
    }
    let mut problems: Vec<String> = compare(kind, &expected, &actual).into_iter().collect();
    problems.extend(close_problem);
    if problems.is_empty() {
        Ok(None)
    } else {
        Ok(Some(problems.join("; ")))
    }
}

fn write_out(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    std::fs::write(path, bytes).map_err(|source| ClientError::Fixture {
        path: path.to_path_buf(),
        source,
    })
}

/// The set-up the CITIC fixtures expect on a fresh gateway (docs/citic.md "Fixtures"):
/// member `M001` 张三 opened over A001 (`SubAcctNo` 9000000000000019) and funded with
/// 1,000.00 by the 6920 notice `BS0001`.
async fn citic_setup(opts: &ReplayOptions) -> Result<(), ClientError> {
    use crate::client::{CoreClient, Notice, PlatformClient};
    let mut p = PlatformClient::connect(&opts.platform_addr, None, opts.timeout_ms).await?;
    let r = p
        .call(
            crate::config::DEMO_ENTERPRISE,
            "6248",
            "CITICSETUP0001",
            &[
                ("FundSummaryAcctNo", crate::config::DEMO_MASTER_ACCOUNT),
                ("TranNetMemberCode", "M001"),
                ("MemberName", "张三"),
                ("MemberGlobalType", "73"),
                ("MemberGlobalId", "91110000000000M001"),
            ],
        )
        .await?;
    let sub = r.field("SubAcctNo").unwrap_or_default();
    if r.return_code() != "000000" || sub != "9000000000000019" {
        return Err(ClientError::Setup(format!(
            "the CITIC fixtures need a fresh gateway: opening M001 answered {} {sub}",
            r.return_code()
        )));
    }
    let mut core = CoreClient::connect(&opts.core_addr, None, opts.timeout_ms).await?;
    let n = core
        .notify(&Notice {
            bank_serial: "BS0001".into(),
            channel: "IBPS".into(),
            acct_date: "20261123".into(),
            time: "093000".into(),
            payee: sub,
            amount_fen: 100_000,
            payer_acct: "6217000000000000001".into(),
            payer_name: "张三".into(),
            payer_bank: "102100099996".into(),
            memo: String::new(),
        })
        .await?;
    if n.result != "0000" {
        return Err(ClientError::Setup(format!(
            "funding M001 answered {}",
            n.result
        )));
    }
    Ok(())
}

/// One HTTP POST of `body` to the CITIC listener at `addr` (docs/citic.md): the reply body.
async fn citic_post(addr: &str, body: &[u8], timeout_ms: u64) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wait = std::time::Duration::from_millis(timeout_ms.max(1));
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let head = format!(
            "POST /DLink/DLServlet HTTP/1.1\r\nHost: bank\r\nContent-Type: text/xml; charset=GBK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(body).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    };
    let out = tokio::time::timeout(wait, exchange)
        .await
        .map_err(|_| "no reply in time".to_string())??;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header end")?;
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "HTTP {}",
            String::from_utf8_lossy(out.get(9..12).unwrap_or_default())
        ));
    }
    Ok(out.get(split + 4..).unwrap_or_default().to_vec())
}

/// Replays the CITIC fixtures of `opts.dir` (`NN-ACTION-STATUS.req` with the `.resp` beside
/// it) against the CITIC listener at `citic_addr` of a fresh gateway started with the
/// fixtures' clock and receipt key, after [the set-up they expect](citic_setup) over the
/// platform and core links. Each reply must equal its `.resp` byte for byte (`bless` writes
/// them instead). Errors: the set-up fails, or the folder holds no `.req` file.
pub async fn replay_citic(
    opts: &ReplayOptions,
    citic_addr: &str,
) -> Result<Vec<CaseOutcome>, ReplayError> {
    let mut reqs: Vec<PathBuf> = std::fs::read_dir(&opts.dir)
        .map_err(|source| ClientError::Fixture {
            path: opts.dir.clone(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "req"))
        .collect();
    reqs.sort();
    if reqs.is_empty() {
        return Err(ReplayError::NoCases {
            dir: opts.dir.clone(),
        });
    }
    citic_setup(opts).await?;
    let mut out = Vec::with_capacity(reqs.len());
    for path in reqs {
        let case = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let body = std::fs::read(&path).map_err(|source| ClientError::Fixture {
            path: path.clone(),
            source,
        })?;
        let resp_path = path.with_extension("resp");
        let (ok, detail) = match citic_post(citic_addr, &body, opts.timeout_ms).await {
            Err(e) => (false, e),
            Ok(got) if opts.bless => match std::fs::write(&resp_path, &got) {
                Ok(()) => (true, String::new()),
                Err(e) => (false, e.to_string()),
            },
            Ok(got) => match std::fs::read(&resp_path) {
                Err(e) => (false, format!("{}: {e}", resp_path.display())),
                Ok(want) if want == got => (true, String::new()),
                Ok(want) => {
                    let at = want
                        .iter()
                        .zip(got.iter())
                        .position(|(a, b)| a != b)
                        .unwrap_or(want.len().min(got.len()));
                    (
                        false,
                        format!(
                            "differs at byte {at} (expected {} bytes, got {})",
                            want.len(),
                            got.len()
                        ),
                    )
                }
            },
        };
        out.push(CaseOutcome {
            case: format!("citic/{case}"),
            ok,
            detail,
            note: String::new(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{build_notice, build_request, xml_request, BodyCharset};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d = std::env::temp_dir().join(format!(
            "bankfep-replay-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[derive(Clone, Copy)]
    enum Behave {
        Reply,
        ReplyClose,
        CloseNoReply,
    }

    /// A canned server: reads one generic frame, answers from the table.
    async fn canned_server(
        table: HashMap<Vec<u8>, (Vec<u8>, Behave)>,
    ) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepts = Arc::new(AtomicUsize::new(0));
        let acc = accepts.clone();
        let table = Arc::new(table);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                let table = table.clone();
                tokio::spawn(async move {
                    loop {
                        let mut first = [0u8; 4];
                        if s.read_exact(&mut first).await.is_err() {
                            return;
                        }
                        let mut req = first.to_vec();
                        if &first == b"A001" {
                            let mut rest = vec![0u8; 218];
                            s.read_exact(&mut rest).await.unwrap();
                            req.extend_from_slice(&rest);
                            let len: usize =
                                std::str::from_utf8(&req[30..40]).unwrap().parse().unwrap();
                            let mut body = vec![0u8; len];
                            s.read_exact(&mut body).await.unwrap();
                            req.extend_from_slice(&body);
                        } else {
                            let mut rest = [0u8; 4];
                            s.read_exact(&mut rest).await.unwrap();
                            req.extend_from_slice(&rest);
                            let len: usize =
                                std::str::from_utf8(&req[..8]).unwrap().parse().unwrap();
                            let mut body = vec![0u8; len];
                            s.read_exact(&mut body).await.unwrap();
                            req.extend_from_slice(&body);
                        }
                        let Some((resp, behave)) = table.get(&req).cloned() else {
                            return;
                        };
                        match behave {
                            Behave::CloseNoReply => return,
                            Behave::Reply | Behave::ReplyClose => {
                                let mut resp = resp;
                                if resp.starts_with(b"A001") {
                                    // A fresh server date and time: must be masked.
                                    resp[53..67].copy_from_slice(b"20991231235959");
                                }
                                s.write_all(&resp).await.unwrap();
                                if matches!(behave, Behave::ReplyClose) {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, accepts)
    }

    fn platform_req(serial: &str) -> Vec<u8> {
        let body = xml_request(BodyCharset::Gbk, &[("SubAcctNo", "1234567890123456")]);
        build_request(
            BodyCharset::Gbk,
            "DEMOPLATFORM00000001",
            "6010",
            serial,
            "20260101",
            "120000",
            &body,
        )
        .unwrap()
    }

    fn platform_resp(req: &[u8], code: &str, body: &str) -> Vec<u8> {
        let mut r = req[..222].to_vec();
        r[30..40].copy_from_slice(format!("{:010}", body.len()).as_bytes());
        r[51..53].copy_from_slice(b"02");
        r[53..67].copy_from_slice(b"20260101120001");
        r[87..93].copy_from_slice(code.as_bytes());
        r.extend_from_slice(body.as_bytes());
        r
    }

    fn core_req(serial: &str) -> Vec<u8> {
        build_notice(
            serial,
            "INTR",
            "20260101",
            "120000",
            "6222000000000000001",
            100,
            "6228000000000001",
            "张三",
            "",
            "",
        )
        .unwrap()
    }

    fn core_resp(serial: &str, result: &str) -> Vec<u8> {
        let mut r = b"000001006920".to_vec();
        r.extend_from_slice(format!("{serial:<32}{result}{:<60}", "ok").as_bytes());
        r
    }

    fn write_case(root: &Path, flow: &str, case: &str, req: &[u8], resp: &[u8], close: bool) {
        let d = root.join(flow).join(case);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("request.bin"), req).unwrap();
        std::fs::write(d.join("response.bin"), resp).unwrap();
        std::fs::write(d.join("note.txt"), format!("{flow} {case}\n")).unwrap();
        if close {
            std::fs::write(d.join("close"), b"").unwrap();
        }
    }

    #[test]
    fn cases_sorted_bytewise() {
        let root = temp_dir("sort");
        for flow in ["b", "B", "a", "10", "9"] {
            for case in ["2", "10", "1"] {
                std::fs::create_dir_all(root.join(flow).join(case)).unwrap();
            }
        }
        std::fs::create_dir_all(root.join(".hidden").join("x")).unwrap();
        std::fs::write(root.join("README"), b"x").unwrap();
        let got: Vec<String> = list_cases(&root)
            .unwrap()
            .iter()
            .map(|p| {
                let c = p.file_name().unwrap().to_string_lossy().into_owned();
                let f = p
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                format!("{f}/{c}")
            })
            .collect();
        let mut want = Vec::new();
        for f in ["10", "9", "B", "a", "b"] {
            for c in ["1", "10", "2"] {
                want.push(format!("{f}/{c}"));
            }
        }
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn compare_masks_date_time_and_names_fields() {
        let req = platform_req("S1");
        let a = platform_resp(&req, "000000", "<Result/>");
        let mut b = a.clone();
        b[53..67].copy_from_slice(b"19990101000000");
        assert_eq!(compare(Kind::Platform, &a, &b), None);
        // Core replies are not masked.
        assert!(compare(Kind::Core, &a, &b).is_some());
        let c = platform_resp(&req, "E10003", "<Result/>");
        let d = compare(Kind::Platform, &a, &c).unwrap();
        assert!(d.contains("offset 87"), "{d}");
        assert!(d.contains("header field 13 return code"), "{d}");
        assert!(d.contains("expected \"000000\", actual \"E10003\""), "{d}");
        let e = platform_resp(&req, "000000", "<Result></Result>");
        let d = compare(Kind::Platform, &a, &e).unwrap();
        assert!(d.contains("offset 38 (header field 6 body length)"), "{d}");
        assert!(d.contains("length expected 231, actual 239"), "{d}");
    }

    #[tokio::test]
    async fn replay_against_canned_server() {
        let root = temp_dir("run");
        let mut ptable = HashMap::new();
        let mut ctable = HashMap::new();

        // Platform flow.
        let r1 = platform_req("S1");
        let ok1 = platform_resp(&r1, "000000", "<Result><A>1</A></Result>");
        ptable.insert(r1.clone(), (ok1.clone(), Behave::Reply));
        write_case(&root, "a_platform", "01_ok", &r1, &ok1, false);

        let r2 = platform_req("S2");
        let actual2 = platform_resp(&r2, "E10003", "");
        ptable.insert(r2.clone(), (actual2, Behave::Reply));
        let expected2 = platform_resp(&r2, "000000", "");
        write_case(&root, "a_platform", "02_mismatch", &r2, &expected2, false);

        let r3 = platform_req("S3");
        let yq = platform_resp(&r3, "YQ9977", "");
        ptable.insert(r3.clone(), (yq.clone(), Behave::ReplyClose));
        write_case(&root, "a_platform", "03_close", &r3, &yq, true);

        let r4 = platform_req("S4");
        let ok4 = platform_resp(&r4, "000000", "");
        ptable.insert(r4.clone(), (ok4.clone(), Behave::ReplyClose));
        // The server closes although the fixture does not say so: the next case reconnects.
        write_case(&root, "a_platform", "04_silent_close", &r4, &ok4, false);

        let r5 = platform_req("S5");
        let ok5 = platform_resp(&r5, "000000", "");
        ptable.insert(r5.clone(), (ok5.clone(), Behave::Reply));
        write_case(&root, "a_platform", "05_after_close", &r5, &ok5, false);

        let r6 = platform_req("S6");
        let ok6 = platform_resp(&r6, "000000", "");
        ptable.insert(r6.clone(), (ok6.clone(), Behave::Reply));
        // Expects a close that does not happen: fails after 2 s.
        write_case(&root, "a_platform", "06_no_close", &r6, &ok6, true);

        let r7 = platform_req("S7");
        ptable.insert(r7.clone(), (Vec::new(), Behave::CloseNoReply));
        write_case(&root, "a_platform", "07_close_no_reply", &r7, &[], true);

        // Core flow.
        let c1 = core_req("CORE1");
        let cr1 = core_resp("CORE1", "0000");
        ctable.insert(c1.clone(), (cr1.clone(), Behave::Reply));
        write_case(&root, "b_core", "01_ok", &c1, &cr1, false);
        let c2 = core_req("CORE2");
        ctable.insert(c2.clone(), (core_resp("CORE2", "1002"), Behave::Reply));
        write_case(
            &root,
            "b_core",
            "02_mismatch",
            &c2,
            &core_resp("CORE2", "0000"),
            false,
        );
        let c3 = core_req("CORE3");
        ctable.insert(c3.clone(), (Vec::new(), Behave::CloseNoReply));
        write_case(&root, "b_core", "03_no_reply", &c3, &[], true);
        // Expected a reply, got a close.
        let c4 = core_req("CORE4");
        ctable.insert(c4.clone(), (Vec::new(), Behave::CloseNoReply));
        write_case(&root, "b_core", "04_unexpected_close", &c4, &cr1, false);
        let c5 = core_req("CORE5");
        let cr5 = core_resp("CORE5", "0000");
        ctable.insert(c5.clone(), (cr5.clone(), Behave::Reply));
        write_case(&root, "b_core", "05_ok", &c5, &cr5, false);

        // A request of neither kind.
        write_case(&root, "c_bad", "01", b"XYZ", b"", false);

        let (paddr, paccepts) = canned_server(ptable).await;
        let (caddr, caccepts) = canned_server(ctable).await;
        let opts = ReplayOptions {
            dir: root.clone(),
            platform_addr: paddr,
            core_addr: caddr,
            bless: false,
            timeout_ms: 5000,
        };
        let out = replay(&opts).await.unwrap();
        let verdicts: Vec<(&str, bool)> = out.iter().map(|o| (o.case.as_str(), o.ok)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("a_platform/01_ok", true),
                ("a_platform/02_mismatch", false),
                ("a_platform/03_close", true),
                ("a_platform/04_silent_close", true),
                ("a_platform/05_after_close", true),
                ("a_platform/06_no_close", false),
                ("a_platform/07_close_no_reply", true),
                ("b_core/01_ok", true),
                ("b_core/02_mismatch", false),
                ("b_core/03_no_reply", true),
                ("b_core/04_unexpected_close", false),
                ("b_core/05_ok", true),
                ("c_bad/01", false),
            ],
            "{out:#?}"
        );
        assert_eq!(out[0].note, "a_platform 01_ok");
        assert!(
            out[1].detail.contains("header field 13"),
            "{}",
            out[1].detail
        );
        assert!(out[5].detail.contains("still open"), "{}", out[5].detail);
        assert!(out[8].detail.contains("offset 44"), "{}", out[8].detail);
        assert!(out[8].detail.contains("\"1002\""), "{}", out[8].detail);
        assert!(
            out[10].detail.contains("closed without a reply"),
            "{}",
            out[10].detail
        );
        // Platform: first connection, then after 03 (close), 04 (silent close), 06 and 07.
        assert_eq!(paccepts.load(Ordering::SeqCst), 4);
        // Core: first, after 03 (no reply), after 04 (closed).
        assert_eq!(caccepts.load(Ordering::SeqCst), 3);

        // Bless rewrites the responses with what the server sent.
        let opts = ReplayOptions {
            bless: true,
            ..opts
        };
        let out = replay(&opts).await.unwrap();
        assert!(out[1].ok);
        let blessed = std::fs::read(root.join("a_platform/02_mismatch/response.bin")).unwrap();
        assert_eq!(&blessed[87..93], b"E10003");
        assert_eq!(&blessed[53..67], b"20991231235959");
        let blessed = std::fs::read(root.join("b_core/04_unexpected_close/response.bin")).unwrap();
        assert!(blessed.is_empty());
        assert!(root.join("b_core/04_unexpected_close/close").exists());
        // After blessing, everything but the case that cannot be sent and the unfulfilled
        // close passes.
        let opts = ReplayOptions {
            bless: false,
            ..opts
        };
        let out = replay(&opts).await.unwrap();
        let failed: Vec<&str> = out
            .iter()
            .filter(|o| !o.ok)
            .map(|o| o.case.as_str())
            .collect();
        assert_eq!(failed, vec!["a_platform/06_no_close", "c_bad/01"]);
        let _ = std::fs::remove_dir_all(&root);
    }
    #[tokio::test]
    async fn link_file_routes_requests_of_neither_kind() {
        let root = temp_dir("link");
        // A core server that answers any first bytes with one reply and closes.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let caddr = l.local_addr().unwrap().to_string();
        let reply = core_resp("", "1001");
        let sent = reply.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 8];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&sent).await;
                }
            }
        });
        write_case(&root, "f", "01_core", b"0000X390", &reply, true);
        std::fs::write(root.join("f/01_core/link"), b"core\n").unwrap();
        write_case(&root, "f", "02_bogus", b"0000X390", &reply, true);
        std::fs::write(root.join("f/02_bogus/link"), b"rail").unwrap();
        let opts = ReplayOptions {
            dir: root.clone(),
            platform_addr: String::new(),
            core_addr: caddr,
            bless: false,
            timeout_ms: 5000,
        };
        let out = replay(&opts).await.unwrap();
        assert!(out[0].ok, "{out:#?}");
        assert!(!out[1].ok);
        assert!(out[1].detail.contains("link file"), "{}", out[1].detail);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn a_folder_without_cases_is_an_error() {
        let root = temp_dir("empty");
        std::fs::create_dir_all(root.join("flow-without-cases")).unwrap();
        let opts = ReplayOptions {
            dir: root.clone(),
            platform_addr: "127.0.0.1:1".into(),
            core_addr: "127.0.0.1:1".into(),
            bless: false,
            timeout_ms: 1000,
        };
        let err = replay(&opts).await.expect_err("no cases");
        assert!(
            matches!(&err, ReplayError::NoCases { dir } if *dir == root),
            "{err}"
        );
        assert!(err.to_string().contains("no fixture cases"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn an_unreachable_link_stops_the_replay_at_once() {
        let root = temp_dir("refused");
        // A platform server answering the first case.
        let r1 = platform_req("S1");
        let ok1 = platform_resp(&r1, "000000", "");
        let mut ptable = HashMap::new();
        ptable.insert(r1.clone(), (ok1.clone(), Behave::Reply));
        write_case(&root, "a", "01_platform", &r1, &ok1, false);
        // Core cases against an address where nothing listens any more.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone_addr = gone.local_addr().unwrap().to_string();
        drop(gone);
        for (case, serial) in [("02_core", "C2"), ("03_core", "C3"), ("04_core", "C4")] {
            let req = core_req(serial);
            write_case(&root, "a", case, &req, &core_resp(serial, "0000"), false);
        }
        let (paddr, _) = canned_server(ptable).await;
        let opts = ReplayOptions {
            dir: root.clone(),
            platform_addr: paddr,
            core_addr: gone_addr.clone(),
            bless: false,
            timeout_ms: 2000,
        };
        let err = replay(&opts)
            .await
            .expect_err("refused connection ends the replay");
        match &err {
            ReplayError::Unreachable {
                link, addr, case, ..
            } => {
                assert_eq!(*link, "core");
                assert_eq!(*addr, gone_addr);
                assert_eq!(case, "a/02_core");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&gone_addr) && msg.contains("a/02_core"),
            "{msg}"
        );
        assert!(!msg.contains("03_core"), "{msg}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
