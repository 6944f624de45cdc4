//! Settings are checked where they enter: every rule of `SchedulerConfig::validate` refuses a
//! bad value through the builder (an `Error::Config` naming the setting and the rule, nothing
//! started), and `plugin-jobs serve` exits with code 2 and a message naming the flag.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestDb;
use common::server::BIN;
use plugin_jobs::config::{ConfigError, SchedulerConfig, Setting};
use plugin_jobs::{Error, PluginJobs};

/// Starts plugin-jobs with `config` and answers the settings error it was refused with.
async fn refused(config: SchedulerConfig) -> ConfigError {
    let t = TestDb::new().await;
    match PluginJobs::builder(t.db.clone()).config(config).start() {
        Err(Error::Config(err)) => err,
        Err(other) => panic!("expected a settings error, got {other}"),
        Ok(_) => panic!("the settings were accepted"),
    }
}

fn defaults() -> SchedulerConfig {
    SchedulerConfig::default()
}

/// Asserts the error names `setting` (its field and its flag) and says `rule`.
fn assert_names(err: &ConfigError, setting: Setting, rule: &str) {
    assert_eq!(err.setting, setting, "{err}");
    let message = Error::Config(err.clone()).to_string();
    assert!(message.contains(setting.field()), "{message}");
    assert!(message.contains(setting.flag()), "{message}");
    assert!(message.contains(rule), "{message}");
}

#[actix_rt::test]
async fn a_zero_tick_interval_is_refused() {
    let err = refused(SchedulerConfig {
        tick_interval: Duration::ZERO,
        claim_lookahead: Duration::ZERO,
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::TickInterval, "must be more than 0");
}

#[actix_rt::test]
async fn a_zero_heartbeat_interval_is_refused() {
    let err = refused(SchedulerConfig {
        heartbeat_interval: Duration::ZERO,
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::HeartbeatInterval, "must be more than 0");
}

#[actix_rt::test]
async fn a_zero_maintenance_interval_is_refused() {
    let err = refused(SchedulerConfig {
        maintenance_interval: Duration::ZERO,
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::MaintenanceInterval, "must be more than 0");
}

#[actix_rt::test]
async fn a_run_lease_not_above_twice_the_heartbeat_is_refused() {
    let err = refused(SchedulerConfig {
        heartbeat_interval: Duration::from_secs(5),
        run_lease: Duration::from_secs(10),
        ..defaults()
    })
    .await;
    assert_names(
        &err,
        Setting::RunLease,
        "more than twice --heartbeat-interval",
    );
    // Just above twice the heartbeat is fine.
    let config = SchedulerConfig {
        heartbeat_interval: Duration::from_secs(5),
        run_lease: Duration::from_millis(10_001),
        ..defaults()
    };
    assert_eq!(config.validate(), Ok(()));
}

#[actix_rt::test]
async fn zero_concurrent_runs_are_refused() {
    let err = refused(SchedulerConfig {
        max_concurrent_runs: 0,
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::MaxConcurrentRuns, "must be between 1 and");
}

#[actix_rt::test]
async fn a_job_timeout_under_a_millisecond_is_refused() {
    let err = refused(SchedulerConfig {
        job_timeout: Duration::from_micros(999),
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::JobTimeout, "must be at least 1ms");
}

#[actix_rt::test]
async fn keeping_no_runs_is_refused() {
    let err = refused(SchedulerConfig {
        keep_runs_per_job: 0,
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::KeepRunsPerJob, "must be between 1 and");
}

#[actix_rt::test]
async fn a_zero_retention_is_refused() {
    let err = refused(SchedulerConfig {
        run_retention: Duration::ZERO,
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::RunRetention, "must be at least 1s");
}

#[actix_rt::test]
async fn a_lookahead_not_below_the_tick_interval_is_refused() {
    let err = refused(SchedulerConfig {
        tick_interval: Duration::from_secs(1),
        claim_lookahead: Duration::from_secs(1),
        ..defaults()
    })
    .await;
    assert_names(&err, Setting::ClaimLookahead, "less than --tick-interval");
}

/// Sets one duration of a config.
type SetDuration = fn(&mut SchedulerConfig, Duration);

#[actix_rt::test]
async fn every_duration_longer_than_a_hundred_years_is_refused() {
    let huge = Duration::from_secs(101 * 365 * 86_400);
    let cases: [(Setting, SetDuration); 10] = [
        (Setting::TickInterval, |c, d| c.tick_interval = d),
        (Setting::JobTimeout, |c, d| c.job_timeout = d),
        (Setting::MisfireGrace, |c, d| c.misfire_grace = d),
        (Setting::CancelGrace, |c, d| c.cancel_grace = d),
        (Setting::HeartbeatInterval, |c, d| c.heartbeat_interval = d),
        (Setting::RunLease, |c, d| c.run_lease = d),
        (Setting::MaintenanceInterval, |c, d| {
            c.maintenance_interval = d
        }),
        (Setting::RunRetention, |c, d| c.run_retention = d),
        (Setting::ShutdownGrace, |c, d| c.shutdown_grace = d),
        (Setting::ClaimLookahead, |c, d| c.claim_lookahead = d),
    ];
    for (setting, set) in cases {
        let mut config = defaults();
        set(&mut config, huge);
        let err = refused(config).await;
        assert_names(&err, setting, "must be at most 36500d");
    }
}

#[actix_rt::test]
async fn the_defaults_and_a_hundred_years_start() {
    let t = TestDb::new().await;
    let config = SchedulerConfig {
        run_retention: Duration::from_secs(100 * 365 * 86_400),
        misfire_grace: Duration::from_secs(100 * 365 * 86_400),
        ..defaults()
    };
    let jobs = PluginJobs::builder(t.db.clone())
        .config(config)
        .start()
        .expect("valid settings start");
    jobs.shutdown(Duration::from_secs(1)).await.expect("stops");
}

/// Runs `plugin-jobs serve` with `args` (and a database and plugins folder of its own), and
/// answers its exit code and stderr. Valid settings would start a server, so every case here
/// must be refused before that.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .args(args)
        .args(["--bind", "127.0.0.1:0", "--plugins"])
        .arg(dir.path())
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("db").display()
        ));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run the binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn serve_with_a_zero_tick_interval_exits_2_naming_the_flag() {
    let (code, stderr) = serve(&["--tick-interval", "0"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tick-interval"), "{stderr}");
    assert!(stderr.contains("must be more than 0"), "{stderr}");
}

#[test]
fn serve_with_an_absurd_retention_exits_2() {
    let (code, stderr) = serve(&["--run-retention", "99999999d"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--run-retention"), "{stderr}");
    assert!(stderr.contains("must be at most 36500d"), "{stderr}");
    // Past what a duration can hold at all, the parser itself refuses it.
    let (code, stderr) = serve(&["--run-retention", "999999999999999999d"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--run-retention"), "{stderr}");
    assert!(stderr.contains("too large"), "{stderr}");
}

#[test]
fn serve_checks_settings_given_in_the_environment_and_across_flags() {
    let (code, stderr) = serve(&[], &[("PLUGIN_JOBS_MAX_CONCURRENT", "0")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--max-concurrent"), "{stderr}");
    let (code, stderr) = serve(&["--heartbeat-interval", "10s", "--run-lease", "20s"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--run-lease"), "{stderr}");
    assert!(stderr.contains("more than twice"), "{stderr}");
}

#[test]
fn serve_takes_listen_and_database_as_other_names_of_bind_and_database_url() {
    let dir = tempfile::tempdir().expect("temp");
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
    let output = Command::new(BIN)
        .args(["serve", "--tick-interval", "0", "--listen", "127.0.0.1:0"])
        .args(["--database", &database, "--plugins"])
        .arg(dir.path())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Past the parser: refused for the setting, not for an unknown flag.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tick-interval"), "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

#[test]
fn a_value_the_parser_refuses_from_the_environment_is_said_to_come_from_it() {
    let (code, stderr) = serve(&[], &[("PLUGIN_JOBS_MAX_CONCURRENT", "abc")]);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].contains("'abc' for '--max-concurrent"), "{stderr}");
    assert_eq!(
        lines.get(1).copied(),
        Some("  (the value comes from the environment variable PLUGIN_JOBS_MAX_CONCURRENT)"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_token_no_request_could_carry() {
    for token in [" ", "secret\t"] {
        let (code, stderr) = serve(&["--api-token", token], &[]);
        assert_eq!(code, Some(2), "{token:?}: {stderr}");
        assert!(stderr.contains("--api-token"), "{stderr}");
        assert!(stderr.contains("whitespace"), "{stderr}");
    }
}

#[test]
fn serve_refuses_webhook_settings_without_a_webhook_url() {
    for (args, env) in [
        (&["--webhook-secret", "s3cret"][..], &[][..]),
        (&[], &[("PLUGIN_JOBS_WEBHOOK_EVENTS", "run.failed")][..]),
    ] {
        let (code, stderr) = serve(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--webhook-url"), "{stderr}");
    }
    // Space-separated events, as a list is often written, say how to write them.
    let (code, stderr) = serve(
        &[
            "--webhook-url",
            "http://127.0.0.1:9/hook",
            "--webhook-events",
            "run.failed run.succeeded",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("separate events with commas"), "{stderr}");
}

#[test]
fn help_does_not_print_secrets_given_in_the_environment() {
    for args in [&["serve", "--help"][..], &["migrate", "--help"]] {
        let output = Command::new(BIN)
            .args(args)
            .env("PLUGIN_JOBS_DATABASE_URL", "postgres://u:hunter2@db/jobs")
            .env("PLUGIN_JOBS_WEBHOOK_URL", "https://hooks.example/t0ken")
            .output()
            .expect("run the binary");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("PLUGIN_JOBS_DATABASE_URL"), "{help}");
        assert!(!help.contains("hunter2"), "{args:?}: {help}");
        assert!(!help.contains("t0ken"), "{args:?}: {help}");
    }
}

/// The SQLite settings of `db::connect` (given to every connection the pool opens), read back
/// from one of them: WAL, commits checkpointing only past 10,000 pages (the history benchmark's
/// lateness depends on it), the WAL cut back to 64 MiB, `synchronous=NORMAL`, the busy timeout
/// and foreign keys.
#[actix_rt::test]
async fn sqlite_connections_get_the_documented_settings() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let t = TestDb::new().await;
    if t.db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    let pragma = |name: &'static str| {
        let db = t.db.clone();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    format!("PRAGMA {name}"),
                ))
                .await
                .expect("pragma")
                .expect("a row");
            row.try_get_by_index::<i64>(0)
                .map(|n| n.to_string())
                .or_else(|_| row.try_get_by_index::<String>(0))
                .expect("a value")
        }
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("wal_autocheckpoint").await, "10000");
    assert_eq!(pragma("journal_size_limit").await, (64 << 20).to_string());
    assert_eq!(pragma("synchronous").await, "1", "NORMAL");
    assert_eq!(pragma("busy_timeout").await, "10000");
    assert_eq!(pragma("foreign_keys").await, "1");
}
