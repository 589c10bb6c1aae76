//! PostgreSQL for tests: a fresh schema per test in the server at `BANKFEP_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards.
//!
//! Without a reachable server the PostgreSQL tests print a visible `SKIP` line and pass,
//! unless `BANKFEP_REQUIRE_POSTGRES=1` (set by `.ci/run`), where a missing server fails them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The server used by the tests.
pub fn base_url() -> String {
    std::env::var("BANKFEP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `sql` on the base database from a thread of its own (tests may be inside a runtime).
fn admin(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let url = base_url();
            let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
            let (client, conn) = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
                .await
                .map_err(|_| "connection timed out".to_string())?
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}

/// A schema of its own in the test server, dropped (with everything in it) on drop.
pub struct PgDb {
    /// Connection string whose `search_path` is the schema.
    pub url: String,
    schema: String,
}

impl PgDb {
    /// A fresh, empty schema for test `name`; `None` (after printing `SKIP`) when no server
    /// answers and `BANKFEP_REQUIRE_POSTGRES` is not `1`.
    pub fn new(name: &str) -> Option<PgDb> {
        static N: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "bankfep_t_{}_{}_{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
        .to_lowercase();
        match admin(format!("CREATE SCHEMA {schema}")) {
            Ok(()) => {}
            Err(e) => {
                if std::env::var("BANKFEP_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "PostgreSQL required (BANKFEP_REQUIRE_POSTGRES=1) but unusable at {}: {e}",
                        base_url()
                    );
                }
                eprintln!(
                    "SKIP {name}: PostgreSQL not reachable at {} ({e}); set BANKFEP_REQUIRE_POSTGRES=1 to fail instead",
                    base_url()
                );
                return None;
            }
        }
        let sep = if base_url().contains('?') { '&' } else { '?' };
        Some(PgDb {
            url: format!(
                "{}{sep}options=-csearch_path%3D{schema}&application_name={schema}",
                base_url()
            ),
            schema,
        })
    }
}

impl PgDb {
    /// The schema's name, also the `application_name` of every connection to it.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = admin(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}
