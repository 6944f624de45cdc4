//! Connecting to the database with the settings plugin-jobs needs, and migrating it.
//!
//! SQLite gets WAL, `synchronous=NORMAL`, a busy timeout, foreign keys and a pool of several
//! connections, so reads run beside the single writer (sea-orm's default SQLite pool has one
//! connection, which queues every read behind every write). An in-memory SQLite database keeps
//! one connection, since each connection would otherwise see its own empty database.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::Result;

/// Pool size for file-backed SQLite and for PostgreSQL.
const POOL_SIZE: u32 = 8;
/// How long SQLite waits for a lock held by another connection or process.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many rows SQLite's worker thread may send ahead of the task reading them. sqlx's default
/// (50) makes the worker stop and wait for the reader twenty times in a claim's page of 1,000
/// jobs; each stop is a hand-off between threads.
const SQLITE_ROW_BUFFER: usize = 1_024;

/// Opens a pool for `url` (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        options.max_connections(if in_memory { 1 } else { POOL_SIZE });
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .row_buffer_size(SQLITE_ROW_BUFFER)
        });
    } else {
        options.max_connections(POOL_SIZE);
    }
    Ok(Database::connect(options).await?)
}

/// How long a migration that collides with another instance's is tried again.
const MIGRATE_PATIENCE: Duration = Duration::from_secs(15);

/// Applies every pending migration (the migration table is `plugin_jobs_migrations`).
///
/// Instances started together on a new database all migrate it at once, and all but one find a
/// table or column already created (or the database locked): each migration is one statement
/// after another, so the first to create something wins. A migration that fails that way is
/// tried again, with a short backoff, until the winner has recorded it; then it is skipped.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    let deadline = std::time::Instant::now() + MIGRATE_PATIENCE;
    let mut delay = Duration::from_millis(20);
    loop {
        match Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(err) if collided(&err) && std::time::Instant::now() < deadline => {
                log::info!(
                    "migrating the database collided with another instance ({err}); trying \
                     again in {} ms",
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Whether a migration failed because another instance migrates the same database.
fn collided(err: &sea_orm::DbErr) -> bool {
    let text = err.to_string().to_lowercase();
    ["already exists", "duplicate", "locked", "busy", "unique"]
        .iter()
        .any(|sign| text.contains(sign))
}

/// Connects and migrates in one call.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection> {
    let db = connect(url).await?;
    migrate(&db).await?;
    Ok(db)
}
