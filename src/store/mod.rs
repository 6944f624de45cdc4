//! The `StoreActor`: owns the `DatabaseConnection` and is the only writer to the database.
//!
//! Every write message is handled atomically (the mailbox waits for it to finish), so
//! check-and-write steps such as claiming a due job or creating a manual run only if none is
//! live cannot interleave within this process; the partial unique indexes of the schema make them
//! atomic across processes. Reads run concurrently beside the writes.
//!
//! One exception, on PostgreSQL only: the batches of run starts and outcomes (`MarkRunning`,
//! `CompleteRun`) are written beside the atomic writes, on a connection of their own, one batch
//! at a time. A batch is no check-and-write: each of its statements moves a run only from the
//! states it may leave (`WHERE status IN …`), it locks the runs it finishes before it reads
//! them, and a job row that a claim holds makes it wait, never the reverse. So it may interleave
//! with a claim exactly as another instance's batch can, and the claim, the mailbox's longest
//! write, no longer waits for the outcomes before it (benches/README, "Outcomes beside the
//! claims"). SQLite has one writer at a time whatever the process does, so there the batches
//! stay in the mailbox's order.
//!
//! Handles: `SyncJobDeclarations`, `ClaimDueJobs`, `CreateRun`, `MarkRunning`, `CompleteRun`,
//! `Heartbeat`, `EndedRuns`, `RescueStaleRuns`, `CancelPluginRuns`, `CancelUnstarted`, `CancelStaleRun`, `SetJobStatus`, `SetJobBlock`,
//! `RetirePluginJobs`, `PruneRuns`, `RecordRunOutcomes` (in `health.rs`), `StartRetry`,
//! `ListDueRetries` (in `retries.rs`), `CreateJob`, `UpdateJob` and
//! `DeleteJob` (in `job_admin.rs`), `RequestBackfill`, `CancelBackfill`, `StartBackfill` and
//! `ListPendingBackfills`, `PendingBackfillOf` (in `backfills.rs`), the outbox messages
//! (in `outbox.rs`), and the reads `ListJobs`, `GetJob`, `GetNextDueAt`, `ListRuns`, `GetRun`,
//! `Ping`, plus the API's paginated listings `ListJobPage`, `ListRunPage` and
//! `CountJobsByPlugin` (in `listings.rs`). Sends nothing.
//!
//! This file is over 500 lines on purpose: every message of the store is declared here, beside
//! the handler lists, so it reads as the store's whole API; the statements live in one file per
//! table or concern (`jobs`, `listings`, `job_admin`, `backfills`, `claim`, `wake`, `runs`, `outcomes`, `upkeep`, `retries`, `health`,
//! `outbox`).

mod backfills;
mod claim;
mod health;
mod job_admin;
mod jobs;
mod outcomes;
mod retries;
mod runs;
mod upkeep;
mod values;
mod wake;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use crate::clock::Clock;

pub use crate::events::SkipReason;
pub use backfills::{
    BackfillRequested, BackfillStart, CancelBackfill, ListPendingBackfills, MAX_BACKFILL_SLOTS,
    PendingBackfillOf, RequestBackfill, StartBackfill,
};
pub use claim::{ClaimOutcome, ClaimedRun, SkippedSlot, WaitingSlot};
pub use health::{HealthChange, HealthChangeKind, RecordRunOutcomes, RunOutcome, pause_reason};
pub use job_admin::{CreateJob, DeleteJob, UpdateJob};
pub use jobs::JobDeclaration;
pub use retries::{DueRetries, ListDueRetries, RetryStart, StartRetry, backoff};
pub use upkeep::RescuedRun;

use crate::Result;

/// The actor that serialises all database writes of one scheduler instance.
#[derive(Debug)]
pub struct StoreActor {
    db: DatabaseConnection,
    /// Run starts and outcomes waiting for the next group commit.
    pending: Arc<std::sync::Mutex<outcomes::Pending>>,
    flush_queued: bool,
    /// Batches are written beside the atomic writes (PostgreSQL), one at a time.
    flush_beside: bool,
    /// The most messages one batch beside the atomic writes takes.
    batch_limit: usize,
    /// Stamps heartbeats when they are written rather than when they were sent.
    clock: Option<Arc<dyn Clock>>,
    /// The last job whose surplus runs a prune pass trimmed: the next pass goes on from there.
    prune_cursor: Arc<std::sync::Mutex<Option<Uuid>>>,
    /// Started by [`StoreActor::start_on_own_thread`]: its thread ends when it stops.
    own_thread: bool,
}

impl StoreActor {
    /// A store over an already migrated connection.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            flush_beside: is_postgres(&db),
            db,
            pending: Arc::default(),
            flush_queued: false,
            batch_limit: usize::MAX,
            clock: None,
            prune_cursor: Arc::default(),
            own_thread: false,
        }
    }

    /// Starts the store on a thread of its own (an actix `Arbiter`), which ends when the store
    /// stops (when every address of it is gone, or the System stops).
    ///
    /// The store's statements, the database driver's protocol work and the decoding of the rows
    /// then run beside the actors instead of taking turns with them on one thread: a claim of
    /// 1,000 jobs no longer waits for the previous batch's 1,000 `JobRunActor`s to be polled
    /// between its round trips. Messages, their order and the atomic writes are the same on
    /// either thread.
    /// Outside an actix System (a bare tokio runtime), where no arbiter can be made, the store
    /// starts on the current thread as [`Actor::start`] would.
    pub fn start_on_own_thread(mut self) -> Addr<Self> {
        if actix::System::try_current().is_none() {
            return self.start();
        }
        self.own_thread = true;
        let thread = actix::Arbiter::new();
        let store = Self::start_in_arbiter(&thread.handle(), move |_| self);
        // The arbiter is stopped from its own thread by `stopped`; dropping this handle of it
        // neither stops nor detaches anything.
        drop(thread);
        store
    }

    /// Beside the atomic writes (PostgreSQL), one batch writes at most `limit` run starts and
    /// outcomes; the rest make the next batch. With half the budget, the first half of a burst's
    /// outcomes frees its slots, and the claim that refills them is written, while the second
    /// half's outcomes are.
    pub fn with_batch_limit(mut self, limit: usize) -> Self {
        self.batch_limit = limit.max(1);
        self
    }

    /// Stamps every heartbeat with `clock` at the moment it is written, so a heartbeat that
    /// waited behind other writes is not already old when it lands.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Queues a `Flush` behind the messages already waiting, once per batch. Beside the atomic
    /// writes, a writer task starts unless one runs: it writes batch after batch until nothing
    /// is left (see [`outcomes::write_beside`]).
    fn queue_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flush_beside {
            if outcomes::lock(&self.pending).start_writer() {
                let (db, pending) = (self.db.clone(), Arc::clone(&self.pending));
                actix_rt::spawn(outcomes::write_beside(db, pending, self.batch_limit));
            }
        } else if !self.flush_queued {
            self.flush_queued = true;
            ctx.notify(Flush);
        }
    }
}

/// On SQLite, how often a checkpoint runs beside the writer (see [`StoreActor::started`]).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Actor for StoreActor {
    type Context = Context<Self>;

    /// On SQLite, checkpoints the WAL every [`CHECKPOINT_EVERY`] from a connection of the pool
    /// (`PASSIVE`: it waits for no reader or writer), so that the writer's commits do not stop to
    /// checkpoint (they would only past 10,000 pages, `db.rs`). At 1,000 runs a second beside a
    /// prune of a large history, the checkpoints the writer ran itself every 1,000 pages were
    /// the scenario's lateness (benches/README, "Fewer checkpoints").
    fn started(&mut self, ctx: &mut Self::Context) {
        if is_postgres(&self.db) {
            return;
        }
        let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
        ctx.run_interval(CHECKPOINT_EVERY, move |act, _ctx| {
            if running.swap(true, std::sync::atomic::Ordering::AcqRel) {
                return;
            }
            let (db, running) = (act.db.clone(), Arc::clone(&running));
            actix_rt::spawn(async move {
                if let Err(err) = db
                    .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                    .await
                {
                    log::debug!("checkpointing the SQLite WAL failed: {err}");
                }
                running.store(false, std::sync::atomic::Ordering::Release);
            });
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if self.own_thread {
            actix::Arbiter::current().stop();
        }
    }
}

/// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is taken
/// up front (waiting on the busy timeout) instead of failing when a read lock is upgraded while
/// another process writes.
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    Ok(db
        .begin_with_options(TransactionOptions {
            isolation_level: None,
            access_mode: Some(AccessMode::ReadWrite).filter(|_| is_postgres(db)),
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        })
        .await?)
}

/// Sends a message to the store and folds a mailbox failure into the crate's error, so callers
/// handle one `Result`.
pub async fn ask<M, T>(store: &Addr<StoreActor>, msg: M) -> Result<T>
where
    M: Message<Result = Result<T>> + Send + 'static,
    StoreActor: Handler<M>,
    T: Send + 'static,
{
    store.send(msg).await?
}

/// Most ids in one `IN (…)` list. With the other values a statement binds, it stays far under
/// the bind-parameter limits (SQLite 32,766; PostgreSQL 65,535).
pub(crate) const IDS_PER_STATEMENT: usize = 1_000;

/// Most runs in one multi-row insert: a run row binds one value per column (18 today), so 1,500
/// rows stay under SQLite's 32,766 bound values with room for a few more columns.
pub(crate) const ROWS_PER_INSERT: usize = 1_500;

fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == sea_orm::DbBackend::Postgres
}

// ---------------------------------------------------------------------------------------------
// Messages: writes

/// Brings a plugin's jobs in line with what it declares now, in one transaction. Returns the
/// plugin's declared jobs after the sync, with its manifest jobs no longer declared (retired)
/// and the API jobs that hold a declared key, ordered by job key; its other API jobs are left
/// unread.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<PluginJobModel>>")]
pub struct SyncJobDeclarations {
    pub plugin_id: String,
    pub jobs: Vec<JobDeclaration>,
    pub now: DateTime<Utc>,
}

/// Claims up to `limit` due jobs of the given plugins, oldest slot first within a plugin and
/// round-robin across plugins (fairness), never more of a plugin's jobs than its own limit:
/// moves each job's pointer with a compare-and-set and inserts a run per fired slot (`running`
/// when the slot is due, `queued` when it is claimed ahead), in one transaction. A slot is due
/// at slot + its jitter offset; a job whose previous run is still live is handled by its overlap
/// policy (see `claim.rs`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ClaimOutcome>")]
pub struct ClaimDueJobs {
    pub now: DateTime<Utc>,
    pub limit: u64,
    /// Only jobs of these plugins (those whose worker is running) are claimed; when there are
    /// fewer free slots than plugins with due jobs, the first listed go first.
    pub plugin_ids: Vec<String>,
    /// Free slots of the plugins that have a limit of their own (`maxConcurrentRuns`): at most
    /// that many of their jobs are claimed. A plugin absent from it is bound by `limit` only.
    pub plugin_limits: BTreeMap<String, u64>,
    pub instance_id: String,
    /// A slot due longer ago than this is a misfire; the job's misfire policy decides. A job's
    /// own `misfire_grace_ms` overrides it.
    pub misfire_grace: Duration,
    /// Slots up to this far after `now` are claimed too (their runs wait for the slot). A job
    /// with a live run is left alone until its slot is actually due.
    pub lookahead: Duration,
}

/// Creates a `queued` run of an active job that has no live run (manual and retry triggers).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobRunModel>")]
pub struct CreateRun {
    pub job_id: Uuid,
    pub trigger: RunTrigger,
    /// A one-off payload for this run instead of the job's.
    pub payload: Option<serde_json::Value>,
    pub instance_id: String,
    pub now: DateTime<Utc>,
}

/// Moves a run from `queued` to `running`. Answers `false` when the run was no longer queued
/// (for example cancelled meanwhile), in which case nothing changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<bool>")]
pub struct MarkRunning {
    pub run_id: Uuid,
    pub now: DateTime<Utc>,
}

/// Records a run's outcome. Answers `false` when the run had already finished: a terminal run is
/// never overwritten (a late reply after a cancellation changes nothing).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<bool>")]
pub struct CompleteRun {
    pub run_id: Uuid,
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub status: RunStatus,
    pub error: Option<String>,
    /// Worker log lines to store with the run, when there are any.
    pub logs: Option<serde_json::Value>,
    /// Keeps the job blocked until then, in the same transaction: the worker may still be
    /// running the run (it timed out, or was cancelled), so no instance may start the job
    /// again until the worker is done with it and the block is cleared.
    pub block_until: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

impl CompleteRun {
    /// Replaces what the databases refuse to store in the error and the log lines.
    fn sanitize(&mut self) {
        if let Some(error) = &mut self.error {
            clean_text(error);
            bound_error(error);
        }
        if let Some(logs) = &mut self.logs {
            clean_json(logs);
        }
    }
}

/// `ON CONFLICT DO NOTHING` with no target: it covers the partial unique indexes too.
fn on_conflict_do_nothing() -> sea_orm::sea_query::OnConflict {
    sea_orm::sea_query::OnConflict::new()
        .do_nothing()
        .to_owned()
}

/// Replaces the characters a database refuses in text (PostgreSQL rejects NUL in `text` and
/// `\u0000` in JSON) with U+FFFD, in place. Every text a worker or a manifest hands the host
/// passes through here before it is stored.
pub fn clean_text(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

/// The most bytes of a run's error that are kept: an error is a message, and a worker that
/// answers with a whole report in it (up to the 1 MiB line limit) would otherwise store it with
/// every run it fails, and send it with every listing and webhook. The logs carry the detail.
pub const ERROR_CAP: usize = 4 * 1024;

/// Room past [`ERROR_CAP`] for the note [`bound_error`] appends, so that an error it has cut
/// is not cut again (the run's actor cuts it for its event, the store for the row).
const NOTE_ROOM: usize = 64;

/// Cuts an error longer than [`ERROR_CAP`] bytes (and its note's room) at a character
/// boundary, and says how long it was.
pub fn bound_error(error: &mut String) {
    bound_text(error, ERROR_CAP);
}

/// Cuts `text` longer than `cap` bytes (and the room of the note) at a character boundary,
/// and says how long it was. Cutting it again changes nothing.
pub fn bound_text(text: &mut String, cap: usize) {
    if text.len() <= cap + NOTE_ROOM {
        return;
    }
    let total = text.len();
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… (truncated: {total} bytes in all)"));
}

/// [`clean_text`] for every string and key of a JSON value.
pub fn clean_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => clean_text(text),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            if map.keys().any(|key| key.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut key, value) in entries {
                    clean_text(&mut key);
                    map.insert(key, value);
                }
            }
            map.values_mut().for_each(clean_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Refreshes `heartbeat_at` of the given live runs in one statement. Answers how many rows moved.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<u64>")]
pub struct Heartbeat {
    pub run_ids: Vec<Uuid>,
    pub now: DateTime<Utc>,
}

/// Which of the given runs are no longer live: ended by someone else while this instance
/// still runs them (another instance rescued them as abandoned).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<Uuid>>")]
pub struct EndedRuns(pub Vec<Uuid>);

/// Fails every live run whose heartbeat is older than `lease`, as abandoned by its instance.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<RescuedRun>>")]
pub struct RescueStaleRuns {
    pub now: DateTime<Utc>,
    pub lease: Duration,
    /// Runs the asking instance still tracks as live: never rescued by it, however old their
    /// heartbeat (it may only be waiting behind other writes).
    pub spare: Vec<Uuid>,
}

/// Cancels the live runs of a plugin (of one instance, when `instance_id` is given). Answers the
/// ids of the runs it cancelled.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<Uuid>>")]
pub struct CancelPluginRuns {
    pub plugin_id: String,
    pub instance_id: Option<String>,
    pub reason: String,
    pub now: DateTime<Utc>,
}

/// Cancels those of these runs that are still queued and never started (a shutdown's runs
/// claimed ahead of their slot), and in the same transaction gives each slot what a slot that
/// passed while the server was down gets: a `fire_once` job's slot its one late run, a retry
/// policy its attempt, due at once (see [`retries`]). Answers the runs it cancelled.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<Uuid>>")]
pub struct CancelUnstarted {
    pub run_ids: Vec<Uuid>,
    pub reason: String,
    pub now: DateTime<Utc>,
}

/// An operator's cancellation of a live run whose instance stopped heartbeating it more than
/// `lease` ago (the instance is gone, or cut off and fenced): only then may another instance end
/// it. Answers whether it was cancelled; a run that is not stale is left alone.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<bool>")]
pub struct CancelStaleRun {
    pub run_id: Uuid,
    pub lease: Duration,
    pub reason: String,
    pub now: DateTime<Utc>,
}

/// Pauses (`Paused`) or resumes (`Active`) a job. Resuming moves its pointer to the first slot
/// after now. Answers the job as it is afterwards.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobModel>")]
pub struct SetJobStatus {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub now: DateTime<Utc>,
}

/// Retires every manifest job of a plugin that could not be loaded (its folder is gone, or its
/// manifest is now broken), with `reason` as their `last_error`; jobs created through the API
/// are left as they are. Declaring the jobs again brings them
/// back `active`. Answers how many jobs it changed (none when all were retired with this
/// reason already).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<u64>")]
pub struct RetirePluginJobs {
    pub plugin_id: String,
    pub reason: String,
    pub now: DateTime<Utc>,
}

/// Sets or clears `blocked_until`: while it is in the future no instance claims or triggers the
/// job (a timed-out call has not answered yet).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<()>")]
pub struct SetJobBlock {
    pub job_id: Uuid,
    pub blocked_until: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Deletes finished runs beyond the newest `keep_per_job` of each job and those older than
/// `retention`. Live runs are never pruned. Answers how many rows went.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<u64>")]
pub struct PruneRuns {
    pub now: DateTime<Utc>,
    pub keep_per_job: u64,
    pub retention: Duration,
    /// How long a pass goes on trimming jobs' surpluses once it has looked at its first 100
    /// jobs (at most 1,000 a pass); [`PruneRuns::PASS_BUDGET`] unless a test needs a pass of
    /// exactly 100 (zero) or of the whole page (a long one).
    pub pass_budget: Duration,
}

impl PruneRuns {
    /// The maintenance's pass budget: 1,000 jobs a pass tripled the scheduler's lateness p99 in
    /// the history bench, 100 every 10 s took an hour to come round 40,000 jobs.
    pub const PASS_BUDGET: Duration = Duration::from_millis(100);
}

// ---------------------------------------------------------------------------------------------
// Messages: reads

/// Jobs, ordered by plugin and job key; optionally of one plugin and one status.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "Result<Vec<PluginJobModel>>")]
pub struct ListJobs {
    pub plugin_id: Option<String>,
    pub status: Option<JobStatus>,
}

/// How a job is named: by its id, or by its key within a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    Id(Uuid),
    Key { plugin_id: String, job_key: String },
}

impl JobRef {
    /// The job `job_key` of plugin `plugin_id`.
    pub fn key(plugin_id: impl Into<String>, job_key: impl Into<String>) -> Self {
        Self::Key {
            plugin_id: plugin_id.into(),
            job_key: job_key.into(),
        }
    }
}

/// The earliest instant after `after` at which a slot of an active job of these plugins is due
/// (its `next_run_at` plus its jitter offset): what the scheduler arms its one-shot wake for.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<DateTime<Utc>>>")]
pub struct GetNextDueAt {
    pub plugin_ids: Vec<String>,
    pub after: DateTime<Utc>,
}

/// One job, or `None`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<PluginJobModel>>")]
pub struct GetJob(pub JobRef);

/// Runs, newest first; of one job and/or one plugin.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<PluginJobRunModel>>")]
pub struct ListRuns {
    pub job_id: Option<Uuid>,
    pub plugin_id: Option<String>,
    pub limit: u64,
}

impl ListRuns {
    /// The limit when none is given.
    pub const DEFAULT_LIMIT: u64 = 50;

    /// The newest runs of one job, with the default limit.
    pub fn of_job(job_id: Uuid) -> Self {
        Self {
            job_id: Some(job_id),
            plugin_id: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// The newest runs of one plugin, with the default limit.
    pub fn of_plugin(plugin_id: impl Into<String>) -> Self {
        Self {
            job_id: None,
            plugin_id: Some(plugin_id.into()),
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One run, or `None`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<PluginJobRunModel>>")]
pub struct GetRun(pub Uuid);

/// Runs `SELECT 1`: answers `Ok` when the database takes a query (the health check).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<()>")]
pub struct Ping;

// ---------------------------------------------------------------------------------------------
// Handlers

/// Writes hold the mailbox until they finish, so no other write can interleave with them.
macro_rules! write_handlers {
    ($($msg:ty => $func:path),* $(,)?) => {$(
        impl Handler<$msg> for StoreActor {
            type Result = AtomicResponse<Self, <$msg as Message>::Result>;

            fn handle(&mut self, msg: $msg, _ctx: &mut Self::Context) -> Self::Result {
                let db = self.db.clone();
                AtomicResponse::new(Box::pin(async move { $func(&db, msg).await }.into_actor(self)))
            }
        }
    )*};
}

/// The health check's query; the other reads live beside their table's writes.
async fn ping(db: &DatabaseConnection, _msg: Ping) -> Result<()> {
    db.execute_unprepared("SELECT 1").await?;
    Ok(())
}

/// Reads run concurrently with everything else.
macro_rules! read_handlers {
    ($($msg:ty => $func:path),* $(,)?) => {$(
        impl Handler<$msg> for StoreActor {
            type Result = ResponseFuture<<$msg as Message>::Result>;

            fn handle(&mut self, msg: $msg, _ctx: &mut Self::Context) -> Self::Result {
                let db = self.db.clone();
                Box::pin(async move { $func(&db, msg).await })
            }
        }
    )*};
}

impl Handler<Heartbeat> for StoreActor {
    type Result = AtomicResponse<Self, Result<u64>>;

    fn handle(&mut self, mut msg: Heartbeat, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let clock = self.clock.clone();
        AtomicResponse::new(Box::pin(
            async move {
                // Atomic handlers run one after another: this is the moment of the write.
                if let Some(clock) = clock {
                    msg.now = clock.now();
                }
                upkeep::heartbeat(&db, msg).await
            }
            .into_actor(self),
        ))
    }
}

/// Writes the queued run starts and outcomes (group commit). Sent by the store to itself.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for StoreActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        self.flush_queued = false;
        let (marks, completes) = outcomes::lock(&self.pending).take(usize::MAX);
        let db = self.db.clone();
        AtomicResponse::new(Box::pin(
            async move { outcomes::apply_batch(&db, marks, completes).await }.into_actor(self),
        ))
    }
}

/// Run starts and outcomes are the bulk of the writes (two per run), so they are not written one
/// by one: each waits in a batch that the next `Flush` writes in one transaction. Messages that
/// arrive while a write is in progress join the same batch.
macro_rules! batched_handlers {
    ($($msg:ty => $push:ident),* $(,)?) => {$(
        impl Handler<$msg> for StoreActor {
            type Result = ResponseFuture<Result<bool>>;

            fn handle(&mut self, msg: $msg, ctx: &mut Self::Context) -> Self::Result {
                let (reply, answer) = tokio::sync::oneshot::channel();
                outcomes::lock(&self.pending).$push(msg, reply);
                self.queue_flush(ctx);
                // The reply is dropped unanswered only when the store stops before the flush.
                Box::pin(async move { answer.await.map_err(|_| crate::Error::ShuttingDown)? })
            }
        }
    )*};
}

batched_handlers! {
    MarkRunning => push_mark,
    CompleteRun => push_complete,
}

write_handlers! {
    SyncJobDeclarations => jobs::sync_job_declarations,
    ClaimDueJobs => claim::claim_due_jobs,
    SetJobStatus => jobs::set_job_status,
    SetJobBlock => jobs::set_job_block,
    RetirePluginJobs => jobs::retire_plugin_jobs,
    CreateRun => runs::create_run,
    RescueStaleRuns => upkeep::rescue_stale_runs,
    CancelPluginRuns => upkeep::cancel_plugin_runs,
    CancelUnstarted => upkeep::cancel_unstarted,
    CancelStaleRun => upkeep::cancel_stale_run,
    StartRetry => retries::start_retry,
    CreateJob => job_admin::create_job,
    UpdateJob => job_admin::update_job,
    DeleteJob => job_admin::delete_job,
    RequestBackfill => backfills::request_backfill,
    CancelBackfill => backfills::cancel_backfill,
    StartBackfill => backfills::start_backfill,
}

/// The prune deletes only finished runs, which nothing writes again: it runs in short batches
/// beside the writes instead of holding the write queue for a whole pass.
impl Handler<PruneRuns> for StoreActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, msg: PruneRuns, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let cursor = Arc::clone(&self.prune_cursor);
        Box::pin(async move { upkeep::prune_runs(&db, msg, &cursor).await })
    }
}

read_handlers! {
    ListJobs => jobs::list_jobs,
    GetJob => jobs::get_job,
    GetNextDueAt => wake::get_next_due_at,
    ListRuns => runs::list_runs,
    GetRun => runs::get_run,
    EndedRuns => upkeep::ended_runs,
    ListDueRetries => retries::list_due_retries,
    ListPendingBackfills => backfills::list_pending_backfills,
    PendingBackfillOf => backfills::pending_backfill_of,
    Ping => ping,
}

// The outbox and the listings use the handler macros above, so they are declared after them.
mod listings;
mod outbox;
pub use listings::{
    CountJobsByPlugin, JobCursor, JobPage, ListJobPage, ListRunPage, RunCursor, RunPage,
    StoreReader,
};

read_handlers! {
    ListJobPage => listings::list_job_page,
    ListRunPage => listings::list_run_page,
    CountJobsByPlugin => listings::count_jobs_by_plugin,
}

pub use outbox::{
    ClaimNotifications, CountNotifications, DeliveryResult, EnqueueNotifications,
    FinishNotification, NewNotification,
};
