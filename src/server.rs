//! The standalone server (DESIGN §7): migrate, start one worker per plugin of the plugins
//! directory, register their jobs, serve the HTTP API, `/metrics` and the dashboard at `/`, and
//! on SIGINT, SIGTERM or SIGHUP shut down gracefully — stop accepting requests, let runs finish within
//! the grace, cancel the rest, and stop the workers with `shutdown`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::{App, HttpServer};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::SchedulerConfig;
use crate::manifest;
use crate::notifier::NotifierConfig;
use crate::store::{CountJobsByPlugin, RetirePluginJobs, ask};
use crate::worker::{ProcessWorkerConfig, ProcessWorkers};
use crate::{Error, PluginJobs, PluginJobsHandle, Result};
use entity::prelude::JobStatus;

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://plugin-jobs.db?mode=rwc";
/// Default plugins directory.
pub const DEFAULT_PLUGINS_DIR: &str = "./plugins";
/// How long the shutdown waits for webhook deliveries in flight to be answered and recorded.
const NOTIFIER_DRAIN: Duration = Duration::from_secs(10);

/// How long the shutdown waits for cancelled runs to release their jobs once workers stopped.
const RELEASE_WAIT: Duration = Duration::from_secs(15);
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Everything `plugin-jobs serve` takes.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub database_url: String,
    pub plugins_dir: PathBuf,
    pub bind: String,
    /// Bearer token every `/api` request must carry; without one only loopback addresses are
    /// allowed.
    pub api_token: Option<String>,
    /// Pause jobs that declare no `pauseAfterFailures` after this many consecutive failures.
    pub pause_after_failures: Option<u32>,
    /// Posts webhooks when set (`--webhook-url`).
    pub notifier: Option<NotifierConfig>,
    pub scheduler: SchedulerConfig,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            plugins_dir: PathBuf::from(DEFAULT_PLUGINS_DIR),
            bind: DEFAULT_BIND.to_owned(),
            api_token: None,
            pause_after_failures: None,
            notifier: None,
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// The addresses `bind` resolves to; refused when one is not loopback and there is no token.
pub fn check_bind(bind: &str, has_token: bool) -> Result<Vec<SocketAddr>> {
    if !bind.contains(':') || bind.ends_with(']') {
        return Err(Error::InvalidInput(format!(
            "bind: {bind:?} has no port: write host:port, as in 127.0.0.1:8080 (port 0 picks a free one)"
        )));
    }
    let addrs: Vec<SocketAddr> = bind
        .to_socket_addrs()
        .map_err(|err| Error::InvalidInput(format!("bind: cannot resolve {bind:?}: {err}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "bind: {bind:?} resolves to no address"
        )));
    }
    if !has_token && let Some(open) = addrs.iter().find(|addr| !addr.ip().is_loopback()) {
        return Err(Error::InvalidInput(format!(
            "refusing to listen on {open} without an API token: anyone who can reach it could \
             trigger and pause jobs. Set --api-token (PLUGIN_JOBS_API_TOKEN), or bind to a \
             loopback address such as 127.0.0.1:8080"
        )));
    }
    Ok(addrs)
}

/// Refuses a plugins directory that cannot be read, or that is one plugin's folder: starting
/// without it would retire every manifest job in the database as if each plugin had been
/// removed.
pub fn check_plugins_dir(dir: &Path) -> Result<()> {
    if let Some(message) = manifest::names_one_plugin(dir) {
        return Err(Error::InvalidInput(format!("plugins: {message}")));
    }
    match std::fs::read_dir(dir) {
        Ok(_) => Ok(()),
        Err(err) => Err(Error::InvalidInput(format!(
            "plugins: cannot read the plugins directory {}: {err}",
            dir.display()
        ))),
    }
}

/// Listens on every address `bind` resolved to that can be bound (`localhost` may name an IPv6
/// address the machine lacks); fails when none can, before anything else has started.
fn listen(bind: &str, addrs: &[SocketAddr]) -> Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(addrs.len());
    let mut last_error = None;
    for addr in addrs {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => listeners.push(listener),
            Err(err) => last_error = Some(format!("cannot listen on {addr}: {err}")),
        }
    }
    match last_error {
        Some(err) if listeners.is_empty() => {
            Err(Error::InvalidInput(format!("bind: {bind:?}: {err}")))
        }
        _ => Ok(listeners),
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully. Call inside an actix
/// System. Errors are start-up failures (bad address or plugins directory, port taken,
/// database unreachable); each is found before the database or any plugin is touched, except
/// an unreachable database, which is found first thing after.
pub async fn serve(options: ServeOptions) -> Result<()> {
    let stop = shutdown_signal();
    let token = options.api_token.clone().filter(|token| !token.is_empty());
    let addrs = check_bind(&options.bind, token.is_some())?;
    check_plugins_dir(&options.plugins_dir)?;
    if let Some(notifier) = &options.notifier {
        notifier.validate()?;
    }
    // The port is taken before the database is migrated and the jobs synced: a second server
    // started by mistake on the same database and port must not change anything before failing.
    // Requests wait in the listen queue until the jobs are registered and the server runs.
    let listeners = listen(&options.bind, &addrs)?;
    let db = crate::db::connect_and_migrate(&options.database_url).await?;
    crate::db::check_writable(&db, &options.database_url).await?;
    log::info!(
        "database {} is migrated",
        crate::db::redact(&options.database_url)
    );

    let scheduler = options.scheduler.clone();
    // One id for the runs this instance records and the `initialize` its workers receive.
    let instance_id = crate::new_instance_id();
    let workers = ProcessWorkers::new(ProcessWorkerConfig {
        // Bundled workers (`plugin-jobs demo-worker`) are found by name next to this binary.
        extra_path: std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .into_iter()
            .collect(),
        instance_id: instance_id.clone(),
        // Every worker runs under this binary acting as its guard (`main` checks for it), so
        // workers die with the server even when it is killed with SIGKILL.
        guard: std::env::current_exe().ok(),
        ..ProcessWorkerConfig::default()
    });
    let mut builder = PluginJobs::builder(db.clone())
        .workers(workers.clone())
        .config(scheduler.clone())
        .instance_id(instance_id)
        .pause_after_failures(options.pause_after_failures);
    if let Some(notifier) = options.notifier.clone() {
        log::info!(
            "webhooks: {} to {} destination(s){}",
            notifier
                .events
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            notifier.urls.len(),
            if notifier.secret.is_some() {
                ", signed"
            } else {
                ", unsigned"
            }
        );
        builder = builder.notifier(notifier);
    }
    let jobs = builder.start()?;

    let plugins = manifest::load_dir(&options.plugins_dir);
    // Why each plugin that did not start did not; their jobs in the database are retired.
    let mut not_started: HashMap<String, String> = HashMap::new();
    for folder in &plugins.skipped {
        log::warn!("skipping {}: it has no manifest.json", folder.display());
    }
    for rejected in &plugins.rejected {
        log::error!("skipping a plugin: {rejected}");
        if let Some(id) = &rejected.plugin_id {
            let reason = format!("manifest rejected: {rejected}");
            workers.refuse(id, reason.clone());
            not_started.insert(id.clone(), reason);
        }
    }
    let mut started = HashSet::new();
    for plugin in &plugins.loaded {
        let id = &plugin.manifest.id;
        if let Err(err) = workers.start(plugin.process()) {
            log::error!("skipping plugin {id}: {err}");
            not_started.insert(id.clone(), format!("the worker could not start: {err}"));
            continue;
        }
        match jobs
            .register_with(
                id.clone(),
                plugin.manifest.jobs.clone(),
                plugin.manifest.options(),
            )
            .await
        {
            Ok(registered) => {
                log::info!(
                    "plugin {id}: {} job(s) registered",
                    plugin.manifest.jobs.len()
                );
                for job in registered.iter().filter(|j| j.status == JobStatus::Failed) {
                    let reason = job.last_error.as_deref().unwrap_or("invalid");
                    log::error!("plugin {id}: job {} is failed: {reason}", job.job_key);
                }
                started.insert(id.clone());
            }
            Err(err) => {
                log::error!("skipping plugin {id}: registering its jobs failed: {err}");
                let reason = format!("registering its jobs failed: {err}");
                workers.stop(id).await;
                workers.refuse(id, reason.clone());
                not_started.insert(id.clone(), reason);
            }
        }
    }
    if plugins.loaded.is_empty() {
        log::warn!("no plugin loaded from {}", options.plugins_dir.display());
    }
    retire_unloaded_plugins(&jobs, &started, &not_started, &options.plugins_dir).await?;

    let api = jobs.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .configure(crate::http::configure(api.clone(), token.clone()))
            .configure(crate::http::dashboard())
    })
    .disable_signals()
    .shutdown_timeout(5);
    for listener in listeners {
        server = server.listen(listener).map_err(|err| {
            Error::InvalidInput(format!("bind: cannot listen on {}: {err}", options.bind))
        })?;
    }
    for addr in server.addrs() {
        // On stdout, so scripts and tests can read the port chosen for `:0`.
        // Not `println!`: with stdout closed (`serve | head -1`, a supervisor without one) it
        // would panic, and the server exit with it.
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), "plugin-jobs listening on http://{addr}");
    }
    let server = server.run();
    let http = server.handle();
    let serving = actix_rt::spawn(server);

    stop.await;
    log::info!(
        "shutting down: no new requests; runs get {:?} to finish",
        scheduler.shutdown_grace
    );
    http.stop(true).await;
    let report = jobs.shutdown(scheduler.shutdown_grace).await?;
    log::info!(
        "{} run(s) finished during the shutdown, {} cancelled",
        report.finished,
        report.cancelled
    );
    // Cancelled runs keep their jobs blocked until their workers let go: stop the workers (each
    // returns once its process group is gone), then wait for the runs to release their jobs.
    workers.stop_all().await;
    let held = jobs.await_released(RELEASE_WAIT).await?;
    if held > 0 {
        log::warn!("{held} job(s) still blocked at exit; their blocks expire on their own");
    }
    let _ = serving.await;
    // Deliveries in flight are recorded before the pool closes: a POST the receiver took but
    // could not be recorded would be posted again at the next start.
    jobs.drain_notifications(NOTIFIER_DRAIN).await;
    // Close the pool while the runtime still runs: it waits for in-flight statements (a prune
    // batch, say) to give their connections back, which they cannot do once it is gone.
    db.close_by_ref().await.ok();
    log::info!("stopped");
    Ok(())
}

/// Retires the manifest jobs of every plugin the database knows that did not start now (its folder is
/// gone, its manifest is broken, its worker or registration failed), with the reason as their
/// `last_error`, so none stays `active` with a stale pointer. They come back `active` when the
/// plugin loads again.
async fn retire_unloaded_plugins(
    jobs: &PluginJobsHandle,
    started: &HashSet<String>,
    not_started: &HashMap<String, String>,
    plugins_dir: &Path,
) -> Result<()> {
    // The plugins with jobs, counted in SQL: reading every job would hold them all in memory.
    let known: BTreeSet<String> = ask(&jobs.store, CountJobsByPlugin)
        .await?
        .into_iter()
        .map(|(plugin_id, _)| plugin_id)
        .collect();
    for plugin_id in known.difference(&started.iter().cloned().collect()) {
        let reason = not_started.get(plugin_id).cloned().unwrap_or_else(|| {
            format!(
                "plugin {plugin_id} is no longer in the plugins directory {}",
                plugins_dir.display()
            )
        });
        let retired = ask(
            &jobs.store,
            RetirePluginJobs {
                plugin_id: plugin_id.clone(),
                reason: reason.clone(),
                now: jobs.clock.now(),
            },
        )
        .await?;
        if retired > 0 {
            log::warn!("plugin {plugin_id}: {retired} job(s) retired: {reason}");
        }
    }
    Ok(())
}

/// Resolves on the first SIGINT, SIGTERM or SIGHUP received from the moment it is called. A
/// hangup (the terminal of a foreground `serve` went away) stops the server as gracefully as
/// the others: by default it would kill the process on the spot, leaving its runs live until
/// another instance's rescue.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    // Installed now, not when first polled: a signal that arrives while the server starts is
    // kept, and handled once it is up, instead of killing the process.
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = streams else {
            log::error!("cannot listen for SIGINT/SIGTERM/SIGHUP; stop the server with SIGKILL");
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => log::info!("SIGINT received"),
            _ = terminate.recv() => log::info!("SIGTERM received"),
            _ = hangup.recv() => log::info!("SIGHUP received"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_only_loopback_addresses_are_allowed() {
        assert!(check_bind("127.0.0.1:0", false).is_ok());
        assert!(check_bind("[::1]:0", false).is_ok());
        let err = check_bind("0.0.0.0:8080", false).expect_err("refused");
        assert!(
            err.to_string()
                .contains("refusing to listen on 0.0.0.0:8080 without an API token")
        );
        assert!(check_bind("0.0.0.0:8080", true).is_ok());
        for no_port in ["127.0.0.1", "[::1]", "localhost"] {
            let err = check_bind(no_port, false).expect_err("no port");
            assert!(err.to_string().contains("has no port"), "{err}");
        }
        let err = check_bind("nonsense:80", false).expect_err("bad address");
        assert!(
            err.to_string()
                .contains("bind: cannot resolve \"nonsense:80\""),
            "{err}"
        );
    }

    #[test]
    fn passwords_are_kept_out_of_logs() {
        assert_eq!(
            crate::db::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            crate::db::redact("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
        // PostgreSQL also reads the password from the query.
        assert_eq!(
            crate::db::redact(
                "postgres://u:p%40ss@h:1/db?sslmode=require&password=qsecret&SSLPassword=k"
            ),
            "postgres://u:***@h:1/db?sslmode=require&password=***&SSLPassword=***"
        );
        assert_eq!(
            crate::db::redact("postgres://h/db?password=a@b"),
            "postgres://h/db?password=***"
        );
    }
}
