//! plugin-jobs: a durable cron scheduler for plugin jobs, built as an actix actor system over
//! sea-orm.
//!
//! - [`cron`] parses cron expressions and finds their next slot in a timezone (pure logic).
//! - [`config`] holds the scheduler's settings with their named defaults and parses durations.
//! - [`clock`] gives every actor "now": the system clock, or a manual one for tests.
//! - [`declaration`] is what a job is as a plugin declares it, with its retry policy and the
//!   rules the manifest loader and the store both check (pure data).
//! - [`db`] connects to SQLite or PostgreSQL with the right pool settings and runs migrations.
//! - [`store`] is the `StoreActor`, the only writer to the database.
//! - [`scheduler`] is the `SchedulerActor`: ticks, claims, spawning runs, triggers, shutdown;
//!   [`run_table`] is its table of live and queued runs and the concurrency budget (plain data).
//! - [`maintenance`] is the `MaintenanceActor`: heartbeats, rescue of abandoned runs, pruning.
//! - [`job_run`] is the `JobRunActor`: one run, its worker call, its timeout and its outcome.
//! - [`worker`] is the `WorkerManager` seam, the in-process and the stdio process workers, and
//!   the SDK for writing workers in Rust.
//! - [`events`] is the run-event extension point (the `EventBus`); [`metrics`] is the `MetricsActor`, a
//!   subscriber that keeps the Prometheus metrics; [`job_health`] is the `JobHealthActor`, a
//!   subscriber that keeps each job's failure streak and pauses jobs that keep failing;
//!   [`notifier`] is the `NotifierActor`, a subscriber that posts signed webhooks through a
//!   durable outbox; [`retry`] is the `RetryActor`, which starts the retries failed runs asked
//!   for when they come due.
//! - [`policy`] is a job's scheduling policies as pure functions: the jitter offset of a slot,
//!   when a slot is due, the misfire grace that applies.
//! - [`describe`] puts common cron expressions into plain words (pure logic).
//! - [`manifest`] loads the plugins directory; [`server`] is `plugin-jobs serve`.
//! - [`http`] is the HTTP API: one `configure` call mounts `/api`, `/metrics` and `/healthz` on
//!   an App; `dashboard` mounts the operator page.
//! - [`error`] is the crate's one error type.
//!
//! Embedding applications start everything with [`PluginJobs::builder`].

pub mod clock;
pub mod config;
pub mod cron;
pub mod db;
pub mod declaration;
pub mod describe;
pub mod error;
pub mod events;
mod handle;
pub mod http;
pub mod job_health;
pub mod job_run;
pub mod maintenance;
pub mod manifest;
pub mod metrics;
pub mod notifier;
pub mod policy;
pub mod retry;
pub mod run_table;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod time;
pub mod worker;

pub use error::{Error, Result};
pub use handle::{PluginJobs, PluginJobsBuilder, PluginJobsHandle, new_instance_id};

/// The README's Rust examples, compiled as doctests so the quickstart cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
