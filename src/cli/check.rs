//! `plugin-jobs check`: loads the plugins directory with the loader `serve` uses
//! ([`plugin_jobs::manifest::load_dir`]), lists each plugin and job with its next slot in the
//! job's timezone, and reports every rejected manifest with its path and field. No database and
//! no worker is touched, so it runs in CI and pre-commit hooks in milliseconds.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use plugin_jobs::cron::Schedule;
use plugin_jobs::manifest::{self, Plugins};
use plugin_jobs::server;

use super::format::{Table, relative};

/// `plugin-jobs check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Folder with one sub-folder per plugin, each holding a manifest.json (as for `serve`).
    #[arg(long, env = "PLUGIN_JOBS_PLUGINS", default_value = server::DEFAULT_PLUGINS_DIR)]
    pub plugins: PathBuf,
}

/// What `check` prints: the table of jobs (stdout), the problems (stderr), then a summary
/// line (stdout).
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub listing: String,
    pub problems: Vec<String>,
    pub summary: String,
}

/// Loads and reports; exits 1 when any manifest was rejected.
pub fn run(args: &CheckArgs) -> ExitCode {
    let report = report(
        &args.plugins,
        &manifest::load_dir(&args.plugins),
        Utc::now(),
    );
    print!("{}", report.listing);
    // Flushed first so that a terminal shows the table, the problems and the summary in order.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    print!("{}", report.summary);
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The report of a loaded plugins directory at `now`.
pub fn report(dir: &std::path::Path, plugins: &Plugins, now: DateTime<Utc>) -> Report {
    let mut table = Table::new(&["PLUGIN", "JOB", "SCHEDULE", "TZ", "NEXT SLOT"]);
    let mut jobs = 0;
    for plugin in &plugins.loaded {
        let id = &plugin.manifest.id;
        if plugin.manifest.jobs.is_empty() {
            table.row(vec![id.clone(), "-".into(), "(declares no jobs)".into()]);
        }
        for job in &plugin.manifest.jobs {
            jobs += 1;
            let (schedule, next) = if job.schedule.is_empty() {
                ("manual".to_owned(), "-".to_owned())
            } else {
                (
                    job.schedule.clone(),
                    next_slot(&job.schedule, &job.timezone, now),
                )
            };
            table.row(vec![
                id.clone(),
                job.job_key.clone(),
                schedule,
                job.timezone.clone(),
                next,
            ]);
        }
    }
    let listing = if table.is_empty() {
        String::new()
    } else {
        table.render()
    };
    let problems: Vec<String> = plugins.rejected.iter().map(ToString::to_string).collect();
    let summary = format!(
        "{}: {} plugin(s) with {} job(s) load, {} problem(s)\n",
        dir.display(),
        plugins.loaded.len(),
        jobs,
        problems.len()
    );
    Report {
        listing,
        problems,
        summary,
    }
}

/// The next slot after `now` in the job's timezone, as local time with its zone and how far
/// off it is; "never" for an expression that cannot fire again.
fn next_slot(expression: &str, timezone: &str, now: DateTime<Utc>) -> String {
    // The loader has already parsed the schedule; an error here would be a loader bug, and is
    // shown rather than hidden.
    match Schedule::parse(expression, timezone) {
        Ok(schedule) => match schedule.next_after(now) {
            Some(slot) => format!(
                "{} ({})",
                slot.with_timezone(&schedule.timezone())
                    .format("%Y-%m-%d %H:%M:%S %Z"),
                relative(slot, now)
            ),
            None => "never".to_owned(),
        },
        Err(err) => format!("invalid: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plugin(dir: &Path, folder: &str, manifest: &str) {
        let folder = dir.join(folder);
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join("manifest.json"), manifest).expect("manifest");
    }

    #[test]
    fn lists_jobs_with_their_next_local_slot_and_reports_rejections() {
        let dir = tempfile::tempdir().expect("temp");
        plugin(
            dir.path(),
            "a",
            r#"{"id":"a","command":["x"],"jobs":[
                {"jobKey":"daily","schedule":"0 9 * * *","timezone":"Europe/Paris"},
                {"jobKey":"byhand"}]}"#,
        );
        plugin(
            dir.path(),
            "b",
            r#"{"id":"b","command":["x"],"jobs":[{"jobKey":"k","schedule":"x"}]}"#,
        );
        let now = "2026-01-15T07:00:00Z".parse().expect("now");
        let report = report(dir.path(), &manifest::load_dir(dir.path()), now);
        assert!(
            report.listing.contains(
                "a       daily   0 9 * * *  Europe/Paris  2026-01-15 09:00:00 CET (in 1h)"
            ),
            "{}",
            report.listing
        );
        assert!(
            report.listing.contains("a       byhand  manual"),
            "{}",
            report.listing
        );
        assert!(
            report
                .summary
                .ends_with(": 1 plugin(s) with 2 job(s) load, 1 problem(s)\n"),
            "{}",
            report.summary
        );
        assert_eq!(report.problems.len(), 1);
        assert!(
            report.problems[0].contains("b/manifest.json: jobs[0].schedule:"),
            "{:?}",
            report.problems
        );
    }
}
