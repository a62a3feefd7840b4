//! The store: flowmesh's system of record, on PostgreSQL (distributed) or
//! SQLite (embedded), through sqlx.
//!
//! Both backends run the same SQL (ids and JSON as TEXT, times as epoch
//! milliseconds); the few statements whose dialects differ live in
//! [`Backend`]. Many engine processes may share one PostgreSQL database, so
//! every write that could race is a compare-and-set or a unique insert.

mod accept;
mod audit;
mod batch;
pub mod blobs;
pub mod credentials;
mod credits;
mod deaths;
mod error;
mod events;
mod executions;
pub mod failpoints;
mod limits;
mod models;
mod parking;
mod records;
mod retention;
mod schedules;
mod secrets;
mod stats;
mod step_pages;
mod tenants;
mod tickets;
mod users;
mod workflows;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use accept::Claim;
pub use audit::{AuditQuery, AuditRecord};
pub use credits::{Balance, Credit, DailyUsage, LedgerEntry, RefillDue, Usage, day_of};
pub use deaths::{DeathVerdict, EngineDeath, Mark};
pub use error::Error;
pub use events::{EVENT_PAGE, EventScope, Resume};
pub use executions::{ClaimRequest, Committed, Ending, Slots, Turn};
pub use limits::{TenantLimits, Woken};
pub use models::ModelSettings;
pub use parking::{NewSignal, Park, Parked, Signal, SignalAdded};
pub use records::*;
pub use retention::{
    DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_RETENTION_MS, SettingsChange, TenantSettings,
};
pub use schedules::{DueSchedule, Fire, NewSchedule};
pub use secrets::{Resealed, SealingKey, SecretInfo, valid_secret_name};
pub use stats::{LastRun, Unfinished, WorkflowStats};
pub use tenants::{KeyInfo, NewKey, PLATFORM_TENANT, TenantInfo};
pub use tickets::{Redeemed, StreamTicket};
pub use users::{
    Acceptance, Accepted, InvitationInfo, LoginAttempt, LoginOutcome, MemberTenant, NewInvitation,
    NewSession, PendingInvitation, Registration, UserInfo, normalize_email,
};
pub use workflows::Route;

/// Where the store lives.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// `postgres://…`; without it the store is SQLite at `{data_dir}/flowmesh.db`.
    pub database_url: Option<String>,
    /// Directory of the SQLite file (created if missing).
    pub data_dir: PathBuf,
    /// Most connections to PostgreSQL held by this process.
    pub max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database_url: None,
            data_dir: PathBuf::from("./flowmesh-data"),
            max_connections: 16,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Row locking for claims: PostgreSQL skips rows another process is
    /// claiming; SQLite has a single writer and needs none.
    fn skip_locked(self) -> &'static str {
        match self {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// Row locking for a turn's ownership check: PostgreSQL holds a share
    /// lock until the turn commits, so a claim waits for it instead of
    /// racing it (a lock, not a new row version); SQLite's single writer
    /// serializes the two anyway.
    fn share_lock(self) -> &'static str {
        match self {
            Backend::Postgres => "FOR SHARE",
            Backend::Sqlite => "",
        }
    }

    /// Row locking for a read that decides a write: PostgreSQL holds the
    /// row until the transaction ends; SQLite's single writer already does.
    fn lock_row(self) -> &'static str {
        match self {
            Backend::Postgres => "FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

/// A cheap-to-clone handle on the database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where reads that need no transaction go: with SQLite, connections of
    /// their own (WAL lets them read beside the one writer), so that a read
    /// never waits behind another request's transaction on the writer's
    /// connection; with PostgreSQL, the same pool.
    readers: AnyPool,
    backend: Backend,
}

/// Read-only SQLite connections beside the writer's one.
const SQLITE_READERS: u32 = 2;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects (creating the SQLite file if needed) and applies migrations.
    pub async fn connect(options: &Options) -> Result<Store, Error> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let store = match &options.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(5))
                    // A ping before every statement is a round trip more per
                    // statement; a connection that broke while idle fails
                    // its statement instead, which callers retry.
                    .test_before_acquire(false)
                    .connect(url)
                    .await?;
                Store {
                    readers: pool.clone(),
                    pool,
                    backend: Backend::Postgres,
                }
            }
            Some(url) => {
                return Err(Error::Invalid(format!(
                    "the database URL must start with postgres:// (got {:?}); leave it unset for SQLite",
                    url.split(':').next().unwrap_or_default()
                )));
            }
            None => {
                std::fs::create_dir_all(&options.data_dir).map_err(|e| {
                    Error::Invalid(format!(
                        "cannot create the data directory {}: {e}",
                        options.data_dir.display()
                    ))
                })?;
                let path = options.data_dir.join("flowmesh.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                // One connection: SQLite has one writer, and one connection
                // avoids busy errors between our own connections.
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    // An in-process file does not break while idle; a ping
                    // would be one more hop to SQLite's thread per statement.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                // auto_vacuum takes effect on a new file
                                // (before its first table): purged pages
                                // can then go back to the file system.
                                "PRAGMA auto_vacuum = INCREMENTAL; \
                                 PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                let readers = AnyPoolOptions::new()
                    .max_connections(SQLITE_READERS)
                    .acquire_timeout(Duration::from_secs(30))
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&url)?;
                Store {
                    pool,
                    readers,
                    backend: Backend::Sqlite,
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The pool for a read that needs no transaction.
    fn reader(&self) -> &AnyPool {
        &self.readers
    }

    /// Applies pending migrations; safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), Error> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }
}

fn text(row: &AnyRow, column: &str) -> Result<String, Error> {
    Ok(row.try_get::<String, _>(column)?)
}

fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, Error> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

fn int(row: &AnyRow, column: &str) -> Result<i64, Error> {
    Ok(row.try_get::<i64, _>(column)?)
}

fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

fn parse<T: std::str::FromStr>(row: &AnyRow, column: &str) -> Result<T, Error> {
    let value = text(row, column)?;
    value
        .parse()
        .map_err(|_| Error::Corrupt(format!("column {column} holds {value:?}")))
}

fn json(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>, Error> {
    match opt_text(row, column)? {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::unreadable(format!("column {column}"), e)),
    }
}

#[cfg(test)]
mod tests;
