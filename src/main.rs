//! The `plugin-jobs` binary: `serve` (the standalone server), `migrate` (apply the schema),
//! `cron` (print the next slots of an expression), and the hidden `demo-worker` that backs the
//! demo plugin.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use plugin_jobs::config::{self, HumanDuration, SchedulerConfig};
use plugin_jobs::server::{self, ServeOptions};

#[derive(Debug, Parser)]
#[command(
    name = "plugin-jobs",
    version,
    about = "A durable cron scheduler for plugin jobs",
    long_about = "A durable cron scheduler for plugin jobs. Plugins are programs that declare \
                  cron jobs in a manifest.json and run them when asked over JSON-RPC on stdio; \
                  plugin-jobs stores every job and run in SQLite or PostgreSQL."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the scheduler, one worker per plugin, and the HTTP API.
    Serve(Box<Serve>),
    /// Apply every pending migration to the database.
    Migrate {
        /// Database URL (sqlite://… or postgres://…).
        #[arg(long, env = "PLUGIN_JOBS_DATABASE_URL", default_value = server::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Print the next slots of a cron expression, with the DST decisions of its timezone.
    Cron {
        /// The expression, e.g. "0 9 * * 1-5" or "@hourly".
        expression: String,
        /// IANA timezone the expression is evaluated in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// How many slots to print.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
    /// Serve the demo plugin's worker on stdio (started by the server, not by hand).
    #[command(hide = true)]
    DemoWorker,
}

/// Flags of `serve`; each is also the environment variable `PLUGIN_JOBS_<FLAG>`. Durations take
/// human forms: 250ms, 30s, 5m, 1h30m.
#[derive(Debug, Args)]
struct Serve {
    /// Database URL: sqlite://path?mode=rwc (default) or postgres://user:pass@host/db.
    #[arg(long, env = "PLUGIN_JOBS_DATABASE_URL", default_value = server::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Folder with one sub-folder per plugin, each holding a manifest.json.
    #[arg(long, env = "PLUGIN_JOBS_PLUGINS", default_value = server::DEFAULT_PLUGINS_DIR)]
    plugins: PathBuf,
    /// Address the HTTP API listens on. Without --api-token only loopback addresses are
    /// allowed; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "PLUGIN_JOBS_BIND", default_value = server::DEFAULT_BIND)]
    bind: String,
    /// Bearer token every /api request must carry (Authorization: Bearer <token>).
    #[arg(long, env = "PLUGIN_JOBS_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Most runs in flight at once on this instance, scheduled and manual together.
    #[arg(long, env = "PLUGIN_JOBS_MAX_CONCURRENT", default_value_t = config::DEFAULT_MAX_CONCURRENT_RUNS)]
    max_concurrent: usize,
    /// Timeout of runs whose job sets no timeoutMs.
    #[arg(long, env = "PLUGIN_JOBS_JOB_TIMEOUT", default_value_t = HumanDuration(config::DEFAULT_JOB_TIMEOUT))]
    job_timeout: HumanDuration,
    /// Safety-net tick interval; the scheduler also wakes exactly at each next slot.
    #[arg(long, env = "PLUGIN_JOBS_TICK_INTERVAL", default_value_t = HumanDuration(config::DEFAULT_TICK_INTERVAL))]
    tick_interval: HumanDuration,
    /// Age past which a missed slot is a misfire, handled by the job's misfire policy.
    #[arg(long, env = "PLUGIN_JOBS_MISFIRE_GRACE", default_value_t = HumanDuration(config::DEFAULT_MISFIRE_GRACE))]
    misfire_grace: HumanDuration,
    /// How long a timed-out run's worker gets to answer before it is restarted.
    #[arg(long, env = "PLUGIN_JOBS_CANCEL_GRACE", default_value_t = HumanDuration(config::DEFAULT_CANCEL_GRACE))]
    cancel_grace: HumanDuration,
    /// How often this instance refreshes the heartbeat of its live runs.
    #[arg(long, env = "PLUGIN_JOBS_HEARTBEAT_INTERVAL", default_value_t = HumanDuration(config::DEFAULT_HEARTBEAT_INTERVAL))]
    heartbeat_interval: HumanDuration,
    /// Heartbeat age past which a live run counts as abandoned and is failed.
    #[arg(long, env = "PLUGIN_JOBS_RUN_LEASE", default_value_t = HumanDuration(config::DEFAULT_RUN_LEASE))]
    run_lease: HumanDuration,
    /// Interval of the maintenance pass (rescue abandoned runs, prune history).
    #[arg(long, env = "PLUGIN_JOBS_MAINTENANCE_INTERVAL", default_value_t = HumanDuration(config::DEFAULT_MAINTENANCE_INTERVAL))]
    maintenance_interval: HumanDuration,
    /// Runs kept per job; older ones are pruned.
    #[arg(long, env = "PLUGIN_JOBS_KEEP_RUNS_PER_JOB", default_value_t = config::DEFAULT_KEEP_RUNS_PER_JOB)]
    keep_runs_per_job: u64,
    /// Age past which finished runs are pruned.
    #[arg(long, env = "PLUGIN_JOBS_RUN_RETENTION", default_value_t = HumanDuration(config::DEFAULT_RUN_RETENTION))]
    run_retention: HumanDuration,
    /// How long before its slot a job is claimed, so its run is ready and starts on time.
    #[arg(long, env = "PLUGIN_JOBS_CLAIM_LOOKAHEAD", default_value_t = HumanDuration(config::DEFAULT_CLAIM_LOOKAHEAD))]
    claim_lookahead: HumanDuration,
    /// On SIGINT/SIGTERM, how long live runs get to finish before they are cancelled.
    #[arg(long, env = "PLUGIN_JOBS_SHUTDOWN_GRACE", default_value_t = HumanDuration(config::DEFAULT_SHUTDOWN_GRACE))]
    shutdown_grace: HumanDuration,
}

impl Serve {
    /// The server's options, with the scheduler settings checked by
    /// [`SchedulerConfig::validate`]; a broken rule is reported like any bad flag (exit code 2).
    fn into_options(self) -> ServeOptions {
        let options = self.unchecked_options();
        if let Err(err) = options.scheduler.validate() {
            Serve::augment_args(clap::Command::new("plugin-jobs serve"))
                .error(
                    clap::error::ErrorKind::ValueValidation,
                    format!("invalid value for {err}"),
                )
                .exit();
        }
        options
    }

    fn unchecked_options(self) -> ServeOptions {
        ServeOptions {
            database_url: self.database_url,
            plugins_dir: self.plugins,
            bind: self.bind,
            api_token: self.api_token,
            scheduler: SchedulerConfig {
                tick_interval: self.tick_interval.0,
                max_concurrent_runs: self.max_concurrent,
                job_timeout: self.job_timeout.0,
                misfire_grace: self.misfire_grace.0,
                cancel_grace: self.cancel_grace.0,
                heartbeat_interval: self.heartbeat_interval.0,
                run_lease: self.run_lease.0,
                maintenance_interval: self.maintenance_interval.0,
                keep_runs_per_job: self.keep_runs_per_job,
                run_retention: self.run_retention.0,
                shutdown_grace: self.shutdown_grace.0,
                claim_lookahead: self.claim_lookahead.0,
            },
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DemoWorker => return demo_worker(),
        Command::Serve(serve) => {
            init_logger();
            actix_rt::System::new().block_on(server::serve(serve.into_options()))
        }
        Command::Migrate { database_url } => {
            init_logger();
            actix_rt::System::new().block_on(async move {
                plugin_jobs::db::connect_and_migrate(&database_url)
                    .await
                    .map(|_| println!("database at {database_url} is migrated"))
            })
        }
        Command::Cron {
            expression,
            tz,
            count,
        } => print_slots(&expression, &tz, count),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logger() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}

fn demo_worker() -> std::process::ExitCode {
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            runtime.block_on(plugin_jobs::worker::demo::demo_worker().serve_stdio())
        });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo worker: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print_slots(expression: &str, tz: &str, count: usize) -> plugin_jobs::Result<()> {
    let schedule = plugin_jobs::cron::Schedule::parse(expression, tz)?;
    let zone = schedule.timezone();
    let slots = schedule.upcoming(chrono::Utc::now(), count);
    if slots.is_empty() {
        println!("{expression:?} never fires again");
    }
    for slot in slots {
        println!(
            "{}  ({} {})",
            plugin_jobs::time::iso(slot),
            slot.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z"),
            tz
        );
    }
    Ok(())
}
