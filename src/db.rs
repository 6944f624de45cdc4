//! Connecting to the database with the settings plugin-jobs needs, and migrating it.
//!
//! SQLite gets WAL (checkpointed by the store, see `SQLITE_CHECKPOINT_PAGES`),
//! `synchronous=NORMAL`, a busy timeout, foreign keys and a pool of several connections, so
//! reads run beside the single writer (sea-orm's default SQLite pool has one connection, which
//! queues every read behind every write). An in-memory SQLite database keeps one connection,
//! since each connection would otherwise see its own empty database.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::Result;

/// Pool size for file-backed SQLite and for PostgreSQL.
const POOL_SIZE: u32 = 8;
/// How long SQLite waits for a lock held by another connection or process.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages after which a commit checkpoints (SQLite's default is 1,000). The store checkpoints
/// every 500 ms beside the writer (`StoreActor::started`), so this is only a bound for when that
/// falls behind: at a steady 1,000 runs a second beside a prune of a 1,000,000-run history, the
/// checkpoints commits ran every 1,000 pages (each an `fsync` of the WAL and of the database)
/// put the history scenario's lateness p99 at 89–146 ms (benches/README, "Fewer checkpoints").
/// A power loss (not a process crash) may lose the commits since the last checkpoint under
/// `synchronous=NORMAL`, as before.
const SQLITE_CHECKPOINT_PAGES: u32 = 10_000;

/// The WAL file is cut back to this many bytes after a checkpoint (by default it keeps its
/// largest size): a little more than the checkpoint interval of 4 KiB pages.
const SQLITE_WAL_KEPT_BYTES: u64 = 64 << 20;

/// How many rows SQLite's worker thread may send ahead of the task reading them. sqlx's default
/// (50) makes the worker stop and wait for the reader twenty times in a claim's page of 1,000
/// jobs; each stop is a hand-off between threads.
const SQLITE_ROW_BUFFER: usize = 1_024;

/// Whether `url` names a database plugin-jobs can use: `sqlite:` or `postgres://` (also
/// `postgresql://`). The message says what else it found.
pub fn check_url(url: &str) -> Result<()> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme {
        Some("sqlite" | "postgres" | "postgresql") => Ok(()),
        _ => Err(crate::Error::InvalidInput(format!(
            "database-url: {:?} is not a database plugin-jobs can use: expected \
             sqlite://path?mode=rwc or postgres://user:password@host/database",
            redact(url)
        ))),
    }
}

/// The URL without its password, for logs and messages: the user-info's (`user:***@`) and
/// any query parameter's that names one (`?password=***`, `sslpassword=***`; PostgreSQL reads
/// the password from either place).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &base[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// How long a PostgreSQL server that refuses connections (one starting beside this process,
/// say) is waited for.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// Opens a pool for `url` (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    check_url(url)?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(CONNECT_PATIENCE);
    if url.starts_with("sqlite:") {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        options.max_connections(if in_memory { 1 } else { POOL_SIZE });
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .row_buffer_size(SQLITE_ROW_BUFFER)
                .pragma("wal_autocheckpoint", SQLITE_CHECKPOINT_PAGES.to_string())
                .pragma("journal_size_limit", SQLITE_WAL_KEPT_BYTES.to_string())
        });
    } else {
        options.max_connections(POOL_SIZE);
    }
    // Setting up a new SQLite file (its journal mode) takes a lock that another instance
    // starting at the same moment may hold: the same patience as for the migrations.
    let connected = patiently("connecting", || Database::connect(options.clone())).await;
    match connected {
        Ok(db) => Ok(db),
        Err(err) => Err(explain_connect_error(url, err).await),
    }
}

/// A SQLite file that cannot be opened is most often one that does not exist yet, named in a URL
/// without `mode=rwc`: the error says so, and names the file. A PostgreSQL server that refused
/// every connection until the pool gave up leaves only "pool timed out": one more connection,
/// outside the pool, says why ("Connection refused", an unknown host, a wrong password).
async fn explain_connect_error(url: &str, err: sea_orm::DbErr) -> crate::Error {
    let text = err.to_string();
    if url.starts_with("postgres") && text.contains("pool timed out") {
        use sea_orm::sqlx::Connection as _;
        let cause =
            match tokio::time::timeout(CONNECT_PATIENCE, sea_orm::sqlx::PgConnection::connect(url))
                .await
            {
                Ok(Err(cause)) => cause.to_string(),
                Ok(Ok(_)) => "it accepted a connection only after the pool gave up".to_owned(),
                Err(_) => format!("no answer within {} s", CONNECT_PATIENCE.as_secs()),
            };
        return crate::Error::Unreachable(format!(
            "cannot connect to the database at {} (tried for {} s): {cause}",
            redact(url),
            CONNECT_PATIENCE.as_secs()
        ));
    }
    if let Some(path) = url.strip_prefix("sqlite://")
        && text.contains("code: 14")
    {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let hint = if query.contains("mode=rwc") || std::path::Path::new(path).exists() {
            "check that its folder exists and is writable"
        } else {
            "it does not exist; add ?mode=rwc to the URL to create it"
        };
        return crate::Error::Unreachable(format!(
            "cannot open the SQLite database {path}: {hint} ({text})"
        ));
    }
    err.into()
}

/// How long connecting or migrating, when it collides with another instance doing the same (a
/// lock held past SQLite's busy timeout), is tried again.
const MIGRATE_PATIENCE: Duration = Duration::from_secs(15);

/// Applies every pending migration (the migration table is `plugin_jobs_migrations`).
///
/// Instances started together on a new database all migrate it at once. The migrator runs one
/// statement after another with no transaction of its own, so two of them interleave ("table
/// already exists", "no such index"). Here all pending migrations run in one transaction that
/// first takes the database's write lock (SQLite `BEGIN IMMEDIATE`; on PostgreSQL an advisory
/// lock, and DDL is transactional): the instances migrate one after another, and the later ones
/// find nothing pending. A half-applied migration is rolled back with the rest.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    patiently("migrating", || async {
        let txn = db
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await?;
        if db.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await?;
        }
        Migrator::up(&txn, None).await?;
        txn.commit().await
    })
    .await
    .map_err(|err| {
        // sea-orm's words for a migration this binary does not know of.
        if err
            .to_string()
            .contains("has been applied but its file is missing")
        {
            crate::Error::Unreachable(format!(
                "the database was migrated by a newer plugin-jobs ({err}): run that version \
                 (or a later one) on it; this one cannot know what the newer tables mean"
            ))
        } else {
            err.into()
        }
    })?;
    Ok(())
}

/// The PostgreSQL advisory lock that serialises migrations (any constant; this is "plgnjobs").
const MIGRATION_LOCK: i64 = 0x706c_676e_6a6f_6273;

/// Runs `attempt` until it succeeds, fails for a reason other than a collision with another
/// instance, or [`MIGRATE_PATIENCE`] has passed.
async fn patiently<T, F, Fut>(what: &str, mut attempt: F) -> std::result::Result<T, sea_orm::DbErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, sea_orm::DbErr>>,
{
    let deadline = std::time::Instant::now() + MIGRATE_PATIENCE;
    let mut delay = Duration::from_millis(20);
    loop {
        match attempt().await {
            Err(err) if collided(&err) && std::time::Instant::now() < deadline => {
                log::info!(
                    "{what} the database collided with another instance ({err}); trying again \
                     in {} ms",
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            done => return done,
        }
    }
}

/// Whether connecting or migrating failed on a lock another instance holds.
fn collided(err: &sea_orm::DbErr) -> bool {
    let text = err.to_string().to_lowercase();
    ["locked", "busy"].iter().any(|sign| text.contains(sign))
}

/// Fails unless the database takes writes: a SQLite file opened `mode=ro` (or read-only on
/// disk), a PostgreSQL standby. The server records every run; on such a database it would start,
/// skip every plugin and answer `/healthz` with 200 while scheduling nothing. The statement
/// changes no row, but a read-only database refuses it all the same.
pub async fn check_writable(db: &DatabaseConnection, url: &str) -> Result<()> {
    use sea_orm::ConnectionTrait;
    match db
        .execute_unprepared("UPDATE plugin_jobs SET id = id WHERE 1 = 0")
        .await
    {
        Ok(_) => Ok(()),
        Err(err) => Err(crate::Error::Unreachable(format!(
            "the database at {} takes no writes ({err}); plugin-jobs records every job and run \
             there: open it read-write (sqlite://…?mode=rwc, a PostgreSQL primary)",
            redact(url)
        ))),
    }
}

/// Connects and migrates in one call.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection> {
    let db = connect(url).await?;
    migrate(&db).await?;
    Ok(db)
}
