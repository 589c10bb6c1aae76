//! Several instances on one PostgreSQL database, active-active by tenant (docs/protocol.md
//! §5; issue 8).
//!
//! **Ownership.** Each enterprise (tenant) is owned by at most one live instance, through a
//! row of `tenant_leases` (owner, epoch, expiry). An instance renews its leases every third
//! of the lease time (default 10,000 ms) and takes a tenant whose lease has expired by
//! raising its epoch. Every batch commit checks, inside its own transaction, that the
//! instance still holds each touched tenant at the epoch it took it with
//! (`bankfep_fence`, share-locking the lease rows until COMMIT): a deposed instance, for
//! example one paused past its lease, cannot commit; its batch rolls back and its requests
//! get `YQ9999`, which 6110 later resolves. Tenants are shared out: no instance keeps more
//! than ⌈tenants ÷ live instances⌉; one with more hands the extra over (it stops its writer
//! for the tenant first, then expires the lease).
//!
//! **Routing.** Any instance accepts any connection. A platform request or a 6920 notice
//! for a tenant another instance owns is forwarded over the internal link (`cluster_addr`,
//! advertised in `instances`) to the owner and its reply returned byte for byte. The
//! internal link is plain TCP: one byte (`P` platform, `C` core) and then that link's own
//! framing; it must be reachable only by the instances (bind it to a private address). A
//! forwarded request is never forwarded again: an instance that does not own the tenant
//! either answers busy (`YQ9971` / `1003`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

use crate::writer::{Job, TenantChange, WriterHandle};

/// Link byte of a forwarded platform connection on the internal link.
pub const LINK_PLATFORM: u8 = b'P';
/// Link byte of a forwarded core connection on the internal link.
pub const LINK_CORE: u8 = b'C';

/// Settings of cluster mode.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This instance's id ([`random_id`]), also the writer's `cluster_owner`.
    pub id: String,
    /// The shared database.
    pub database_url: String,
    /// How long a lease lasts without renewal, ms (default 10,000).
    pub lease_ms: u64,
    /// Every tenant (enterprise code) of the configuration, shared out among instances.
    pub tenants: Vec<String>,
    /// Master account number → enterprise code (from the configuration), for routing
    /// notices.
    pub masters: HashMap<String, String>,
    /// The internal link's bound address, advertised to the other instances.
    pub advertise: SocketAddr,
    /// Deadline of a forwarded request's reply, ms.
    pub reply_wait_ms: u64,
}

#[derive(Default)]
struct View {
    owned: HashMap<String, i64>,
    owners: HashMap<String, SocketAddr>,
}

/// This instance's view of the cluster, shared by the connection handlers.
pub struct Cluster {
    /// This instance's id (random, 16 hex digits), the owner name in `tenant_leases`.
    pub id: String,
    cfg: ClusterConfig,
    view: RwLock<View>,
    /// Sub-account number → enterprise code, learnt from the database.
    accounts: Mutex<HashMap<String, String>>,
    /// Idle internal-link connections to other instances, per address and link.
    pool: Mutex<HashMap<(SocketAddr, u8), Vec<TcpStream>>>,
    db: tokio::sync::Mutex<Client>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.id)
    }
}

/// A forwarded request that got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection to the owner: the request was not sent.
    #[error("not sent: {0}")]
    NotSent(std::io::Error),
    /// Sent, but no (valid) reply: the owner may have booked it.
    #[error("no reply: {0}")]
    Unknown(std::io::Error),
}

/// What a connection handler does with a request for `enterprise`.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Serve it here.
    Local,
    /// Forward it to the owner at this internal-link address.
    Forward(SocketAddr),
    /// Nobody owns it right now (a takeover in progress): busy, retry.
    Busy,
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "cluster database connection ended");
        }
    });
    Ok(client)
}

/// A fresh instance id: 16 random hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Cluster {
    /// Joins the cluster: registers this instance, runs one lease round (so that a lone
    /// instance owns its tenants when `serve` prints `ready`), and starts the lease task,
    /// which ends when `shutdown` flips. Errors: the database is unreachable.
    pub async fn join(
        cfg: ClusterConfig,
        writer: WriterHandle,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(Arc<Cluster>, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let client = connect(&cfg.database_url).await?;
        let c = Arc::new(Cluster {
            id: cfg.id.clone(),
            cfg,
            view: RwLock::new(View::default()),
            accounts: Mutex::new(HashMap::new()),
            pool: Mutex::new(HashMap::new()),
            db: tokio::sync::Mutex::new(client),
        });
        if let Err(e) = c.round(&writer).await {
            tracing::warn!(error = %e, "first lease round failed; retrying in the background");
        }
        let task = tokio::spawn(c.clone().run(writer, shutdown));
        Ok((c, task))
    }

    async fn run(
        self: Arc<Self>,
        writer: WriterHandle,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = Duration::from_millis((self.cfg.lease_ms / 3).max(100));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.round(&writer).await {
                tracing::warn!(error = %e, "lease round failed");
                // Reconnect; commits stay fenced by the database meanwhile.
                if let Ok(client) = connect(&self.cfg.database_url).await {
                    *self.db.lock().await = client;
                }
            }
        }
        // Hand the tenants back at once so that the others need not wait for expiry.
        let owned: Vec<String> = self.owned().into_iter().map(|(t, _)| t).collect();
        for t in owned {
            self.release(&writer, &t).await;
        }
    }

    /// The tenants this instance holds, with their epochs.
    pub fn owned(&self) -> Vec<(String, i64)> {
        let v = self.view.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(String, i64)> = v.owned.iter().map(|(t, e)| (t.clone(), *e)).collect();
        list.sort();
        list
    }

    /// Where a request for `enterprise` is served.
    pub fn route(&self, enterprise: &str) -> Route {
        let v = self.view.read().unwrap_or_else(|e| e.into_inner());
        if v.owned.contains_key(enterprise) {
            return Route::Local;
        }
        match v.owners.get(enterprise) {
            Some(a) if *a != self.cfg.advertise => Route::Forward(*a),
            _ => Route::Busy,
        }
    }

    /// The enterprise a 6920 payee account belongs to: a configured master account, or a
    /// sub-account number looked up in the database (cached). `None`: unknown (served
    /// locally, which answers `1002`).
    pub async fn enterprise_of_account(&self, acct: &str) -> Option<String> {
        if let Some(e) = self.cfg.masters.get(acct) {
            return Some(e.clone());
        }
        if let Some(e) = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(acct)
        {
            return Some(e.clone());
        }
        let db = self.db.lock().await;
        let row = db
            .query_opt(
                "SELECT m.enterprise_code FROM subs s JOIN masters m ON m.id = s.master_id \
                 WHERE s.sub_acct_no = $1",
                &[&acct],
            )
            .await
            .ok()??;
        let e: String = row.try_get(0).ok()?;
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(acct.to_string(), e.clone());
        Some(e)
    }

    /// Sends `frame` (one request in `link`'s framing) to the instance at `addr` and returns
    /// its reply frame, byte for byte. Errors: [`ForwardError::NotSent`] when no connection
    /// could be made (nothing was sent: busy, retry), [`ForwardError::Unknown`] after the
    /// request was written (the owner may have booked it: outcome unknown).
    pub async fn forward(
        &self,
        addr: SocketAddr,
        link: u8,
        frame: &[u8],
    ) -> Result<Vec<u8>, ForwardError> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&(addr, link))
            .and_then(Vec::pop);
        let wait = Duration::from_millis(self.cfg.reply_wait_ms.max(1));
        let mut stream = match pooled {
            Some(s) => s,
            None => {
                let open = async {
                    let mut s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    s.write_all(&[link]).await?;
                    Ok::<_, std::io::Error>(s)
                };
                tokio::time::timeout(wait, open)
                    .await
                    .map_err(|_| ForwardError::NotSent(std::io::ErrorKind::TimedOut.into()))?
                    .map_err(ForwardError::NotSent)?
            }
        };
        let reply = tokio::time::timeout(wait, exchange(&mut stream, link, frame))
            .await
            .map_err(|_| ForwardError::Unknown(std::io::ErrorKind::TimedOut.into()))?
            .map_err(ForwardError::Unknown)?;
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((addr, link))
            .or_default()
            .push(stream);
        Ok(reply)
    }

    async fn release(&self, writer: &WriterHandle, tenant: &str) {
        let change = TenantChange::Release {
            enterprise: tenant.to_string(),
        };
        let _ = tell(writer, change).await;
        self.view
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .owned
            .remove(tenant);
        let db = self.db.lock().await;
        let _ = db
            .execute(
                "UPDATE tenant_leases SET expires_at = now() - interval '1 second' \
                 WHERE enterprise_code = $1 AND owner = $2",
                &[&tenant, &self.id],
            )
            .await;
        tracing::info!(tenant, "gave up tenant");
    }

    /// One lease round: heartbeat, renew, notice losses, share out, take, refresh routes.
    async fn round(&self, writer: &WriterHandle) -> Result<(), tokio_postgres::Error> {
        // An interval in the database's own clock, e.g. `10000 milliseconds`.
        let lease = format!("{} milliseconds", self.cfg.lease_ms);
        let addr = self.cfg.advertise.to_string();
        let (still, live) = {
            let db = self.db.lock().await;
            db.execute(
                "INSERT INTO instances(id, cluster_addr, heartbeat) VALUES ($1, $2, now()) \
                 ON CONFLICT(id) DO UPDATE SET cluster_addr = excluded.cluster_addr, heartbeat = now()",
                &[&self.id, &addr],
            )
            .await?;
            let still: HashMap<String, i64> = db
                .query(
                    "UPDATE tenant_leases SET expires_at = now() + $2::text::interval \
                     WHERE owner = $1 RETURNING enterprise_code, epoch",
                    &[&self.id, &lease],
                )
                .await?
                .iter()
                .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
                .collect();
            let live: i64 = db
                .query_one(
                    "SELECT count(*) FROM instances WHERE heartbeat > now() - $1::text::interval",
                    &[&lease],
                )
                .await?
                .try_get(0)?;
            (still, live)
        };
        // Leases lost (expired and taken, or epoch changed): stop committing for them.
        for (t, epoch) in self.owned() {
            if still.get(&t) != Some(&epoch) {
                let _ = tell(
                    writer,
                    TenantChange::Release {
                        enterprise: t.clone(),
                    },
                )
                .await;
                self.view
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .owned
                    .remove(&t);
                tracing::warn!(tenant = %t, epoch, "lost tenant (lease taken by another instance)");
            }
        }
        let total = self.cfg.tenants.len();
        let live = usize::try_from(live.max(1)).unwrap_or(1);
        let share = total.div_ceil(live);
        let mine = self.owned().len();
        if mine > share {
            let extra: Vec<String> = self
                .owned()
                .into_iter()
                .map(|(t, _)| t)
                .skip(share)
                .collect();
            for t in extra {
                self.release(writer, &t).await;
            }
        } else {
            let mut mine = mine;
            for t in &self.cfg.tenants {
                if mine >= share {
                    break;
                }
                if self.route(t) == Route::Local {
                    continue;
                }
                let taken = {
                    let db = self.db.lock().await;
                    db.query_opt(
                        "INSERT INTO tenant_leases(enterprise_code, owner, epoch, expires_at) \
                         VALUES ($1, $2, 1, now() + $3::text::interval) \
                         ON CONFLICT(enterprise_code) DO UPDATE SET owner = excluded.owner, \
                         epoch = tenant_leases.epoch + 1, expires_at = excluded.expires_at \
                         WHERE tenant_leases.expires_at < now() RETURNING epoch",
                        &[t, &self.id, &lease],
                    )
                    .await?
                };
                let Some(row) = taken else { continue };
                let epoch: i64 = row.try_get(0)?;
                let change = TenantChange::Acquire {
                    enterprise: t.clone(),
                    epoch,
                };
                if tell(writer, change).await {
                    self.view
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .owned
                        .insert(t.clone(), epoch);
                    mine += 1;
                    tracing::info!(tenant = %t, epoch, "took tenant");
                } else {
                    let db = self.db.lock().await;
                    let _ = db
                        .execute(
                            "UPDATE tenant_leases SET expires_at = now() - interval '1 second' \
                             WHERE enterprise_code = $1 AND owner = $2",
                            &[t, &self.id],
                        )
                        .await;
                }
            }
        }
        let owners: HashMap<String, SocketAddr> = {
            let db = self.db.lock().await;
            db.query(
                "SELECT l.enterprise_code, i.cluster_addr FROM tenant_leases l \
                 JOIN instances i ON i.id = l.owner WHERE l.expires_at > now()",
                &[],
            )
            .await?
            .iter()
            .filter_map(|r| {
                let t: String = r.try_get(0).ok()?;
                let a: String = r.try_get(1).ok()?;
                Some((t, a.parse().ok()?))
            })
            .collect()
        };
        self.view.write().unwrap_or_else(|e| e.into_inner()).owners = owners;
        Ok(())
    }
}

/// Tells the writer of a lease change and waits until it applied it.
async fn tell(writer: &WriterHandle, change: TenantChange) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if writer.submit_wait(Job::Tenant(change, tx)).await.is_err() {
        return false;
    }
    rx.await.unwrap_or(false)
}

/// Writes one request and reads one reply in `link`'s framing: A001 (222-byte header whose
/// bytes 30..40 give the body length) or 8-digit length-prefixed records.
async fn exchange(stream: &mut TcpStream, link: u8, frame: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    stream.write_all(frame).await?;
    let (head_len, len_at, cap) = if link == LINK_PLATFORM {
        (crate::wire::a001::HEADER_LEN, 30..40, 64 * 1024 * 1024)
    } else {
        (8, 0..8, 64 * 1024)
    };
    let mut out = vec![0u8; head_len];
    stream.read_exact(&mut out).await?;
    let digits = out.get(len_at).ok_or_else(|| bad("short header"))?;
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n <= cap)
        .ok_or_else(|| bad("bad reply length"))?;
    let start = out.len();
    out.resize(start + len, 0);
    stream
        .read_exact(out.get_mut(start..).unwrap_or_default())
        .await?;
    Ok(out)
}
