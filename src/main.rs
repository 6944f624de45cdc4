//! The `plugin-jobs` binary: `serve` (the standalone server), `migrate` (apply the schema),
//! `cron` (print the next slots of an expression), `check` (validate the plugins directory), the
//! HTTP client commands (`jobs`, `runs`, `run`, `trigger`, `pause`, `resume`; see [`cli`]),
//! `completions` and `man` (generated from these clap definitions), and the hidden
//! `demo-worker` that backs the demo plugin.

mod cli;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use cli::commands::{ClientCommand, JobArgs, JobsArgs, RunArgs, RunsArgs, TriggerArgs};
use cli::logging::LogFormat;
use plugin_jobs::config::{self, HumanDuration, SchedulerConfig};
use plugin_jobs::notifier::{NotificationEvent, NotifierConfig};
use plugin_jobs::server::{self, ServeOptions};

#[derive(Debug, Parser)]
#[command(
    name = "plugin-jobs",
    version,
    propagate_version = true,
    about = "A durable cron scheduler for plugin jobs",
    long_about = "A durable cron scheduler for plugin jobs. Plugins are programs that declare \
                  cron jobs in a manifest.json and run them when asked over JSON-RPC on stdio; \
                  plugin-jobs stores every job and run in SQLite or PostgreSQL.",
    after_long_help = "Exit codes of the client commands (jobs, runs, run, trigger, cancel, \
                       pause, resume): 0 done, 1 any other error (400, 503, 500, an unexpected answer), \
                       2 bad usage, 3 not found (404), 4 conflict (409), 5 unauthorized (401), \
                       6 server unreachable. check exits 1 when a manifest is rejected."
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
        #[arg(long, visible_alias = "database", env = "PLUGIN_JOBS_DATABASE_URL", default_value = server::DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: String,
    },
    /// Print the next slots of a cron expression: each in UTC and in local time with its offset,
    /// with a note where daylight saving decided something.
    Cron {
        /// The expression, e.g. "0 9 * * 1-5" or "@hourly".
        expression: String,
        /// IANA timezone the expression is evaluated in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// How many slots to print (1 to 10000).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        count: u32,
        /// Start after this instant (RFC 3339, e.g. 2027-03-14T06:00:00Z) instead of now.
        #[arg(long, value_parser = parse_instant)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Print a JSON array of {utc, local, zone, note} objects instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the plugins directory as `serve` would load it (no database, no workers).
    ///
    /// Lists every plugin and job with its next slot, reports every bad manifest with its path
    /// and field, and exits 1 if there is any.
    Check(cli::check::CheckArgs),
    /// List jobs with their status, schedule, next slot and last run (from a running server).
    Jobs(JobsArgs),
    /// List the newest runs of every job, of one plugin, or of one job.
    Runs(RunsArgs),
    /// Show one run with its error and log lines.
    Run(RunArgs),
    /// Queue a manual run of a job now.
    Trigger(TriggerArgs),
    /// Cancel a live run (queued or running) held by the server asked.
    Cancel(RunArgs),
    /// Pause a job: its slots pass without runs until it is resumed.
    Pause(JobArgs),
    /// Resume a paused job from its next slot.
    Resume(JobArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of plugin-jobs or of one command, or write them all to a folder.
    Man(cli::packaging::ManArgs),
    /// Serve the demo plugin's worker on stdio (started by the server, not by hand).
    #[command(hide = true)]
    DemoWorker,
}

/// Flags of `serve`; each is also the environment variable `PLUGIN_JOBS_<FLAG>`. Durations take
/// human forms: 250ms, 30s, 5m, 1h30m.
#[derive(Debug, Args)]
struct Serve {
    /// Database URL: sqlite://path?mode=rwc (default) or postgres://user:pass@host/db.
    #[arg(long, visible_alias = "database", env = "PLUGIN_JOBS_DATABASE_URL", default_value = server::DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
    /// Folder with one sub-folder per plugin, each holding a manifest.json.
    #[arg(long, env = "PLUGIN_JOBS_PLUGINS", default_value = server::DEFAULT_PLUGINS_DIR, hide_env_values = true)]
    plugins: PathBuf,
    /// Address the HTTP API listens on. Without --api-token only loopback addresses are
    /// allowed; port 0 picks a free port (printed on stdout).
    #[arg(long, visible_alias = "listen", env = "PLUGIN_JOBS_BIND", default_value = server::DEFAULT_BIND, hide_env_values = true)]
    bind: String,
    /// Bearer token every /api request must carry (Authorization: Bearer <token>).
    #[arg(long, env = "PLUGIN_JOBS_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Most runs in flight at once on this instance, scheduled and manual together.
    #[arg(long, env = "PLUGIN_JOBS_MAX_CONCURRENT", default_value_t = config::DEFAULT_MAX_CONCURRENT_RUNS, hide_env_values = true)]
    max_concurrent: usize,
    /// Timeout of runs whose job sets no timeoutMs.
    #[arg(long, env = "PLUGIN_JOBS_JOB_TIMEOUT", default_value_t = HumanDuration(config::DEFAULT_JOB_TIMEOUT), hide_env_values = true)]
    job_timeout: HumanDuration,
    /// Safety-net tick interval; the scheduler also wakes exactly at each next slot.
    #[arg(long, env = "PLUGIN_JOBS_TICK_INTERVAL", default_value_t = HumanDuration(config::DEFAULT_TICK_INTERVAL), hide_env_values = true)]
    tick_interval: HumanDuration,
    /// Age past which a missed slot is a misfire, handled by the job's misfire policy.
    #[arg(long, env = "PLUGIN_JOBS_MISFIRE_GRACE", default_value_t = HumanDuration(config::DEFAULT_MISFIRE_GRACE), hide_env_values = true)]
    misfire_grace: HumanDuration,
    /// How long a timed-out run's worker gets to answer before it is restarted.
    #[arg(long, env = "PLUGIN_JOBS_CANCEL_GRACE", default_value_t = HumanDuration(config::DEFAULT_CANCEL_GRACE), hide_env_values = true)]
    cancel_grace: HumanDuration,
    /// How often this instance refreshes the heartbeat of its live runs.
    #[arg(long, env = "PLUGIN_JOBS_HEARTBEAT_INTERVAL", default_value_t = HumanDuration(config::DEFAULT_HEARTBEAT_INTERVAL), hide_env_values = true)]
    heartbeat_interval: HumanDuration,
    /// Heartbeat age past which a live run counts as abandoned and is failed.
    #[arg(long, env = "PLUGIN_JOBS_RUN_LEASE", default_value_t = HumanDuration(config::DEFAULT_RUN_LEASE), hide_env_values = true)]
    run_lease: HumanDuration,
    /// Interval of the maintenance pass (rescue abandoned runs, prune history).
    #[arg(long, env = "PLUGIN_JOBS_MAINTENANCE_INTERVAL", default_value_t = HumanDuration(config::DEFAULT_MAINTENANCE_INTERVAL), hide_env_values = true)]
    maintenance_interval: HumanDuration,
    /// Runs kept per job; older ones are pruned.
    #[arg(long, env = "PLUGIN_JOBS_KEEP_RUNS_PER_JOB", default_value_t = config::DEFAULT_KEEP_RUNS_PER_JOB, hide_env_values = true)]
    keep_runs_per_job: u64,
    /// Age past which finished runs are pruned.
    #[arg(long, env = "PLUGIN_JOBS_RUN_RETENTION", default_value_t = HumanDuration(config::DEFAULT_RUN_RETENTION), hide_env_values = true)]
    run_retention: HumanDuration,
    /// How long before its slot a job is claimed, so its run is ready and starts on time.
    /// Raise it (to 700ms, say) when thousands of jobs share a slot: their claim takes hundreds
    /// of milliseconds.
    #[arg(long, env = "PLUGIN_JOBS_CLAIM_LOOKAHEAD", default_value_t = HumanDuration(config::DEFAULT_CLAIM_LOOKAHEAD), hide_env_values = true)]
    claim_lookahead: HumanDuration,
    /// On SIGINT/SIGTERM/SIGHUP, how long live runs get to finish before they are cancelled.
    #[arg(long, env = "PLUGIN_JOBS_SHUTDOWN_GRACE", default_value_t = HumanDuration(config::DEFAULT_SHUTDOWN_GRACE), hide_env_values = true)]
    shutdown_grace: HumanDuration,
    /// Pause a job after this many consecutive failed runs, unless its manifest sets
    /// `pauseAfterFailures` (default: never pause).
    #[arg(long, env = "PLUGIN_JOBS_PAUSE_AFTER_FAILURES", value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64), hide_env_values = true)]
    pause_after_failures: Option<u32>,
    /// POST run events to this URL (repeat the flag, or separate with commas, for several).
    #[arg(
        long = "webhook-url",
        env = "PLUGIN_JOBS_WEBHOOK_URL",
        // A webhook URL may carry a token of its receiver's.
        hide_env_values = true,
        value_delimiter = ','
    )]
    webhook_urls: Vec<String>,
    /// Sign every webhook with HMAC-SHA256 under this secret (header X-Plugin-Jobs-Signature).
    #[arg(
        long,
        env = "PLUGIN_JOBS_WEBHOOK_SECRET",
        hide_env_values = true,
        requires = "webhook_urls"
    )]
    webhook_secret: Option<String>,
    /// The events that are posted, separated by commas: run.failed, run.succeeded, job.paused,
    /// job.recovered, slot.missed, worker.failed.
    #[arg(long, env = "PLUGIN_JOBS_WEBHOOK_EVENTS", hide_env_values = true, value_delimiter = ',',
          default_value = NotificationEvent::DEFAULT_LIST,
          value_parser = parse_webhook_event, requires = "webhook_urls")]
    webhook_events: Vec<NotificationEvent>,
    /// Log lines on stderr: text for people, or json (one object per line) for log shippers.
    #[arg(long, env = "PLUGIN_JOBS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, hide_env_values = true)]
    log_format: LogFormat,
}

fn parse_webhook_event(text: &str) -> Result<NotificationEvent, String> {
    text.parse()
        .map_err(|err: plugin_jobs::Error| err.to_string())
}

impl Serve {
    /// The server's options, with the scheduler settings checked by
    /// [`SchedulerConfig::validate`]; a broken rule is reported like any bad flag (exit code 2).
    /// The address, the plugins directory and the webhook URLs are checked here too, so that a
    /// bad one exits 2 before the database is touched.
    fn into_options(self) -> ServeOptions {
        let options = self.unchecked_options();
        let refuse = |message: String| -> ! {
            let message = match env_hint(&message) {
                Some(hint) => format!("{message}\n{hint}"),
                None => message,
            };
            Serve::augment_args(clap::Command::new("plugin-jobs serve"))
                .error(clap::error::ErrorKind::ValueValidation, message)
                .exit()
        };
        if let Err(err) = options.scheduler.validate() {
            refuse(format!("invalid value for {err}"));
        }
        let has_token = options.api_token.as_ref().is_some_and(|t| !t.is_empty());
        if let Some(Err(why)) = options
            .api_token
            .as_deref()
            .filter(|token| !token.is_empty())
            .map(plugin_jobs::http::check_token)
        {
            refuse(format!("invalid value for --api-token: {why}"));
        }
        let settings = [
            (
                "--bind",
                server::check_bind(&options.bind, has_token).map(drop),
            ),
            ("--plugins", server::check_plugins_dir(&options.plugins_dir)),
            (
                "--database-url",
                plugin_jobs::db::check_url(&options.database_url),
            ),
            (
                "--webhook-url",
                options.notifier.as_ref().map_or(Ok(()), |n| n.validate()),
            ),
        ];
        for (flag, checked) in settings {
            let message = match checked {
                Ok(()) => continue,
                Err(plugin_jobs::Error::InvalidInput(message)) => message,
                Err(other) => other.to_string(),
            };
            // `bind: cannot resolve …` reads `--bind: cannot resolve …`.
            let message = message
                .strip_prefix(&format!("{}: ", &flag[2..]))
                .unwrap_or(&message);
            refuse(format!("invalid value for {flag}: {message}"));
        }
        options
    }

    fn unchecked_options(self) -> ServeOptions {
        ServeOptions {
            database_url: self.database_url,
            plugins_dir: self.plugins,
            bind: self.bind,
            api_token: self.api_token,
            pause_after_failures: self.pause_after_failures,
            notifier: (!self.webhook_urls.is_empty()).then(|| NotifierConfig {
                secret: self.webhook_secret.filter(|secret| !secret.is_empty()),
                events: self.webhook_events,
                ..NotifierConfig::new(self.webhook_urls)
            }),
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

/// A panic anywhere in the server (an actor's handler, a task) ends the process with status 70
/// and a clear log line, rather than leaving it serving with a dead actor. Workers run under
/// their guards, which kill them when the server is gone.
fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        log::error!("fatal: {info}; exiting so that a supervisor restarts the server");
        std::process::exit(70);
    }));
}

fn main() -> std::process::ExitCode {
    // Started as the guard of a plugin worker (see `plugin_jobs::worker::guard`)?
    plugin_jobs::worker::guard::run_if_requested();
    let cli = Cli::try_parse().unwrap_or_else(|err| {
        if err.use_stderr()
            && let Some(hint) = env_hint(&err.to_string())
        {
            // Under the line that names the flag, not after the usage that follows it.
            let text = err.render().to_string();
            let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
            eprint!("{first}\n{hint}\n{rest}");
            std::process::exit(err.exit_code());
        }
        err.exit()
    });
    let result = match cli.command {
        Command::DemoWorker => return demo_worker(),
        Command::Check(args) => return cli::check::run(&args),
        Command::Jobs(args) => return cli::commands::run(ClientCommand::Jobs(args)),
        Command::Runs(args) => return cli::commands::run(ClientCommand::Runs(args)),
        Command::Run(args) => return cli::commands::run(ClientCommand::Run(args)),
        Command::Cancel(args) => return cli::commands::run(ClientCommand::Cancel(args)),
        Command::Trigger(args) => return cli::commands::run(ClientCommand::Trigger(args)),
        Command::Pause(args) => return cli::commands::run(ClientCommand::Pause(args)),
        Command::Resume(args) => return cli::commands::run(ClientCommand::Resume(args)),
        Command::Completions { shell } => {
            return cli::packaging::completions(shell, Cli::command());
        }
        Command::Man(args) => return cli::packaging::man(&args, Cli::command()),
        Command::Serve(serve) => {
            cli::logging::init(serve.log_format);
            exit_on_panic();
            actix_rt::System::new().block_on(server::serve(serve.into_options()))
        }
        Command::Migrate { database_url } => {
            if let Err(err) = plugin_jobs::db::check_url(&database_url) {
                let message = err.to_string();
                let message = message.strip_prefix("invalid input: ").unwrap_or(&message);
                Cli::command()
                    .error(clap::error::ErrorKind::ValueValidation, message)
                    .exit();
            }
            cli::logging::init(LogFormat::Text);
            actix_rt::System::new().block_on(async move {
                plugin_jobs::db::connect_and_migrate(&database_url)
                    .await
                    .map(|_| {
                        let shown = plugin_jobs::db::redact(&database_url);
                        cli::print_out(&format!("database at {shown} is migrated\n"));
                    })
            })
        }
        Command::Cron {
            expression,
            tz,
            count,
            from,
            json,
        } => print_slots(
            &expression,
            &tz,
            from.unwrap_or_else(chrono::Utc::now),
            usize::try_from(count).unwrap_or(usize::MAX),
            json,
        ),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            if let Some(hint) = env_hint(&err.to_string()) {
                eprintln!("{hint}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Names the environment variable a refused flag value came from: an operator who set
/// `Environment=PLUGIN_JOBS_MAX_CONCURRENT=…` in a unit file never typed `--max-concurrent`,
/// which is all clap's message (and a setting's check) names. `None` when the message names no
/// flag that was set through its variable and not typed.
fn env_hint(message: &str) -> Option<String> {
    let typed: Vec<String> = std::env::args().skip(1).collect();
    let command = Cli::command();
    let mut args: Vec<&clap::Arg> = command.get_arguments().collect();
    for sub in command.get_subcommands() {
        args.extend(sub.get_arguments());
    }
    args.into_iter().find_map(|arg| {
        let flag = format!("--{}", arg.get_long()?);
        let variable = arg.get_env()?.to_str()?;
        let named = message.match_indices(&flag).any(|(at, _)| {
            !message[at + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
        });
        let was_typed = typed
            .iter()
            .any(|word| word == &flag || word.starts_with(&format!("{flag}=")));
        (named && !was_typed && std::env::var_os(variable).is_some())
            .then(|| format!("  (the value comes from the environment variable {variable})"))
    })
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

fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc())
        .map_err(|err| format!("{err}: expected an RFC 3339 instant such as 2027-03-14T06:00:00Z"))
}

/// `plugin-jobs cron`: the next slots after `from`, one a line or as a JSON array.
fn print_slots(
    expression: &str,
    tz: &str,
    from: chrono::DateTime<chrono::Utc>,
    count: usize,
    json: bool,
) -> plugin_jobs::Result<()> {
    let schedule = plugin_jobs::cron::Schedule::parse(expression, tz)?;
    // An expression whose fields rule out every date says why; one whose last slot has passed
    // lists what is left and says there is no next slot.
    if plugin_jobs::describe::describe(expression).starts_with("never: ")
        && let Some(never) = plugin_jobs::describe::never_fires(expression, &schedule, from)
    {
        return Err(plugin_jobs::Error::InvalidInput(never));
    }
    let slots = schedule.upcoming_slots(from, count);
    if json {
        let text = serde_json::to_string_pretty(&slots)
            .expect("a slot serialises as four strings, which cannot fail");
        cli::print_out(&format!("{text}\n"));
        return Ok(());
    }
    let mut text = String::new();
    for slot in &slots {
        text.push_str(&format!("{slot}\n"));
    }
    if slots.len() < count {
        let after = slots.last().map_or(from, |slot| slot.at);
        text.push_str(&format!(
            "no next slot after {}\n",
            plugin_jobs::time::iso(after)
        ));
    }
    cli::print_out(&text);
    Ok(())
}
