//! `plugin-jobs check`: loads the plugins directory with the loader `serve` uses
//! ([`plugin_jobs::manifest::load_dir`]), lists each plugin and job with its next slot in the
//! job's timezone, and reports every rejected manifest, and every job whose schedule or timezone
//! `serve` would store as `failed`, with its path and field. No database and
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
    #[arg(long, env = "PLUGIN_JOBS_PLUGINS", default_value = server::DEFAULT_PLUGINS_DIR, hide_env_values = true)]
    pub plugins: PathBuf,
}

/// What `check` prints: the table of jobs (stdout), the problems (stderr), then a summary
/// line (stdout).
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub listing: String,
    pub problems: Vec<String>,
    /// What may be right where `serve` runs but looks wrong here (stderr; the exit code stays).
    pub warnings: Vec<String>,
    pub summary: String,
}

/// Loads and reports; exits 1 when any manifest was rejected.
pub fn run(args: &CheckArgs) -> ExitCode {
    let report = report(
        &args.plugins,
        &manifest::load_dir(&args.plugins),
        Utc::now(),
    );
    super::print_out(&report.listing);
    // Flushed first so that a terminal shows the table, the problems and the summary in order.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    super::print_out(&report.summary);
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
            let (schedule, next) = if job.schedule.trim().is_empty() {
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
    let mut problems: Vec<String> = plugins.rejected.iter().map(ToString::to_string).collect();
    // A bad schedule or timezone does not reject the manifest (`serve` stores that job
    // `failed` and runs the others), but it is a problem to fix before a deploy.
    for plugin in &plugins.loaded {
        let path = plugin.dir.join("manifest.json");
        for (index, job) in plugin.manifest.jobs.iter().enumerate() {
            if let Some((field, err)) =
                job_problem(&job.schedule, &job.timezone, job.jitter_ms, now)
            {
                problems.push(format!("{}: jobs[{index}].{field}: {err}", path.display()));
            }
        }
        // A program shipped in the plugin folder goes with it: one that cannot be run is the
        // plugin's own defect, not this machine's.
        if let Some(program) = plugin.manifest.command.first()
            && program.contains('/')
            && !std::path::Path::new(program).is_absolute()
        {
            let file = plugin.dir.join(program);
            if file.is_file() && !is_executable(&file) {
                problems.push(format!(
                    "{}: command[0]: {program} is not executable (chmod +x {}): the worker \
                     cannot start",
                    path.display(),
                    file.display()
                ));
            }
        }
    }
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
        warnings: warnings(plugins),
        summary,
    }
}

/// Folders skipped for want of a manifest, and programs this machine cannot find: a bare name
/// on no folder of `PATH` (nor beside this binary, where `serve` also looks), or an absolute
/// path that is not a file. `serve` on another machine may find them, so they do not fail the
/// check.
fn warnings(plugins: &Plugins) -> Vec<String> {
    let mut warnings: Vec<String> = plugins
        .skipped
        .iter()
        .map(|folder| {
            format!(
                "{}: no manifest.json; the folder is skipped",
                folder.display()
            )
        })
        .collect();
    let mut folders: Vec<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .into_iter()
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        folders.extend(std::env::split_paths(&path));
    }
    for plugin in &plugins.loaded {
        let Some(program) = plugin.manifest.command.first() else {
            continue;
        };
        let path = std::path::Path::new(program);
        if program.starts_with("./") {
            continue; // the loader has checked it is in the plugin folder
        }
        // In the plugin folder, a program that cannot run is a problem of the plugin's (above).
        let in_plugin = program.contains('/') && !path.is_absolute();
        let candidates: Vec<PathBuf> = if path.is_absolute() {
            vec![path.to_path_buf()]
        } else if in_plugin {
            vec![plugin.dir.join(path)]
        } else {
            folders.iter().map(|folder| folder.join(program)).collect()
        };
        let files: Vec<&PathBuf> = candidates.iter().filter(|file| file.is_file()).collect();
        if !in_plugin && !files.is_empty() && !files.iter().any(|file| is_executable(file)) {
            warnings.push(format!(
                "{}: command[0]: {program} ({}) is not executable on this machine; the worker \
                 will not start unless it is when `serve` runs",
                plugin.dir.join("manifest.json").display(),
                files[0].display()
            ));
        } else if files.is_empty() {
            warnings.push(format!(
                "{}: command[0]: {program} is not found on this machine (PATH and this binary's \
                 folder); the worker will not start unless it is there when `serve` runs",
                plugin.dir.join("manifest.json").display()
            ));
        }
    }
    warnings
}

/// Whether anyone may execute `file` (a mode bit; who runs `serve` may differ from who runs the
/// check).
fn is_executable(file: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(file).is_ok_and(|meta| meta.permissions().mode() & 0o111 != 0)
}

/// The field of a job that `serve` would reject, and why.
fn job_problem(
    schedule: &str,
    timezone: &str,
    jitter_ms: Option<u64>,
    now: DateTime<Utc>,
) -> Option<(&'static str, String)> {
    if schedule.trim().is_empty() {
        return plugin_jobs::cron::parse_timezone(timezone)
            .err()
            .map(|err| ("timezone", err.to_string()));
    }
    match Schedule::parse(schedule, timezone) {
        Ok(parsed) => plugin_jobs::describe::never_fires(schedule, &parsed, now)
            .map(|why| ("schedule", why))
            .or_else(|| {
                plugin_jobs::policy::jitter_too_long(schedule, &parsed, jitter_ms, now)
                    .map(|why| ("jitterMs", why))
            }),
        Err(err @ plugin_jobs::cron::CronError::UnknownTimezone { .. }) => {
            Some(("timezone", err.to_string()))
        }
        Err(err) => Some(("schedule", err.to_string())),
    }
}

/// The next slot after `now` in the job's timezone, as local time with its zone and how far
/// off it is; "never" for an expression that cannot fire again.
fn next_slot(expression: &str, timezone: &str, now: DateTime<Utc>) -> String {
    // A bad schedule is listed as a problem too; the table says why it has no next slot.
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

    #[test]
    fn a_schedule_that_never_fires_is_a_problem_as_serve_would_fail_it() {
        let now = "2026-01-15T07:00:00Z".parse().expect("now");
        assert_eq!(
            job_problem("0 0 30 2 *", "UTC", None, now),
            Some((
                "schedule",
                "schedule \"0 0 30 2 *\" never fires: February has no day 30".to_owned()
            ))
        );
        assert_eq!(job_problem("0 0 * * *", "UTC", None, now), None);
        // A jitter longer than the time between two slots, as `serve` would fail it.
        let (field, why) =
            job_problem("*/5 * * * *", "UTC", Some(600_000), now).expect("a problem");
        assert_eq!(field, "jitterMs");
        assert!(why.contains("5m passes from"), "{why}");
        assert_eq!(job_problem("*/5 * * * *", "UTC", Some(300_000), now), None);
    }

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
                {"jobKey":"byhand"},{"jobKey":"blank","schedule":"   "}]}"#,
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
        // A blank schedule is a manual-only job, as `serve` stores it.
        for row in ["a       byhand  manual", "a       blank   manual"] {
            assert!(report.listing.contains(row), "{}", report.listing);
        }
        assert!(
            report
                .summary
                .ends_with(": 2 plugin(s) with 4 job(s) load, 1 problem(s)\n"),
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

    #[test]
    fn a_manifest_that_is_a_folder_or_a_dangling_link_is_a_problem_not_a_missing_file() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::create_dir_all(dir.path().join("folder/manifest.json")).expect("folder");
        std::fs::create_dir_all(dir.path().join("link")).expect("folder");
        std::os::unix::fs::symlink("/no/such/file", dir.path().join("link/manifest.json"))
            .expect("link");
        let now = "2026-01-15T07:00:00Z".parse().expect("now");
        let report = report(dir.path(), &manifest::load_dir(dir.path()), now);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].ends_with("folder/manifest.json: is a folder, not a file"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .ends_with("link/manifest.json: is a link to /no/such/file, which does not exist"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_folder_without_a_manifest_and_a_program_not_found_are_warned_about() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::create_dir_all(dir.path().join("typo")).expect("folder");
        std::fs::write(dir.path().join("typo/Manifest.json"), "{}").expect("file");
        plugin(
            dir.path(),
            "p",
            r#"{"id":"p","command":["no-such-program-anywhere"]}"#,
        );
        plugin(
            dir.path(),
            "q",
            r#"{"id":"q","command":["sh","-c","true"]}"#,
        );
        let now = "2026-01-15T07:00:00Z".parse().expect("now");
        let report = report(dir.path(), &manifest::load_dir(dir.path()), now);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert!(
            report.warnings[0].ends_with("typo: no manifest.json; the folder is skipped"),
            "{:?}",
            report.warnings
        );
        assert!(
            report.warnings[1]
                .contains("p/manifest.json: command[0]: no-such-program-anywhere is not found"),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn a_program_in_the_plugin_folder_that_cannot_run_is_a_problem() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp");
        plugin(dir.path(), "p", r#"{"id":"p","command":["./w"]}"#);
        plugin(dir.path(), "q", r#"{"id":"q","command":["bin/w"]}"#);
        let mode = |file: &std::path::Path, mode| {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        let p = dir.path().join("p/w");
        std::fs::write(&p, "#!/bin/sh\n").expect("w");
        mode(&p, 0o644);
        std::fs::create_dir_all(dir.path().join("q/bin")).expect("bin");
        let q = dir.path().join("q/bin/w");
        std::fs::write(&q, "#!/bin/sh\n").expect("w");
        mode(&q, 0o755);
        let now = "2026-01-15T07:00:00Z".parse().expect("now");
        let checked = || report(dir.path(), &manifest::load_dir(dir.path()), now);
        let problems = checked().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("p/manifest.json: command[0]: ./w is not executable"),
            "{problems:?}"
        );
        mode(&p, 0o755);
        assert!(checked().problems.is_empty());
    }
}
