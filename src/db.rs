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

/// Applies every pending migration (the migration table is `plugin_jobs_migrations`).
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// Connects and migrates in one call.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection> {
    let db = connect(url).await?;
    migrate(&db).await?;
    Ok(db)
}
