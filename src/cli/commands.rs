//! The client subcommands over the HTTP API: `jobs`, `runs`, `run`, `trigger`, `pause` and
//! `resume`. Each asks the API, then prints an aligned table (or a detail block) for people, or
//! with `--json` the API's JSON unchanged (filtered where the command filters). Failures go to
//! stderr with an exit code that follows the HTTP status (see [`ClientError::exit_code`]).

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::Utc;
use clap::Args;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::client::{ApiClient, BaseUrl, ClientError, segment};
use super::views::{Job, Run, Triggered, render_job_state, render_jobs, render_run, render_runs};

/// The most runs a listing may ask for (the API's bound).
const MAX_LIMIT: u64 = 500;

/// Default address of the server: where `serve` binds by default.
fn default_url() -> BaseUrl {
    BaseUrl::parse(&format!("http://{}", crate::server::DEFAULT_BIND))
        .expect("the default bind address is a host and a port")
}

/// A token a header can carry (an empty one means none, as the server's does).
fn parse_token(text: &str) -> Result<String, String> {
    if !text.is_empty() {
        plugin_jobs::http::check_token(text)?;
    }
    Ok(text.to_owned())
}

/// Where the server is, how to authenticate, and how to print: shared by every client command.
#[derive(Debug, Args)]
pub struct Connection {
    /// Base URL of the server (http://host:port, plus a path prefix when the API is mounted
    /// under one).
    #[arg(long, visible_alias = "server", env = "PLUGIN_JOBS_URL", default_value_t = default_url(), value_parser = BaseUrl::parse, hide_env_values = true)]
    pub url: BaseUrl,
    /// API token, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "PLUGIN_JOBS_API_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `plugin-jobs jobs`: every job, with its status, schedule, next slot and last run.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only the jobs of this plugin.
    #[arg(long)]
    pub plugin: Option<String>,
    /// Only jobs with this status.
    #[arg(long, value_parser = ["active", "paused", "failed", "retired"])]
    pub status: Option<String>,
    /// Only jobs that are failed or whose last run to reach an outcome failed.
    #[arg(long)]
    pub failing: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `plugin-jobs runs`: the newest runs of every job, of one plugin, or of one job.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// PLUGIN or PLUGIN/JOB (the job's key or id); all plugins when absent.
    #[arg(value_parser = Target::parse)]
    pub target: Option<Target>,
    /// Only runs with this status (filtered by the server).
    #[arg(long, value_parser = ["queued", "running", "succeeded", "failed", "cancelled"])]
    pub status: Option<String>,
    /// How many runs to show, newest first (1 to 500).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_LIMIT))]
    pub limit: u64,
    #[command(flatten)]
    pub conn: Connection,
}

/// `plugin-jobs run`: one run with its logs.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run's id, as `runs` and `trigger` print it.
    #[arg(value_parser = run_id)]
    pub run_id: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// A run id as typed: not empty (`run ''` would ask for the runs listing's route).
fn run_id(text: &str) -> Result<String, String> {
    let id = text.trim();
    if id.is_empty() {
        return Err("a run id is a UUID, as `runs` and `trigger` print it; got nothing".to_owned());
    }
    Ok(id.to_owned())
}

/// `plugin-jobs trigger`: queue a manual run.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// PLUGIN/JOB (the job's key or id).
    #[arg(value_parser = JobPath::parse)]
    pub job: JobPath,
    /// JSON sent to the run as its payload (the body is {"payload": <JSON>}).
    #[arg(long, value_parser = parse_json)]
    pub payload: Option<Value>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `plugin-jobs pause` and `plugin-jobs resume`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// PLUGIN/JOB (the job's key or id).
    #[arg(value_parser = JobPath::parse)]
    pub job: JobPath,
    #[command(flatten)]
    pub conn: Connection,
}

/// A client command, as `main` hands it over.
#[derive(Debug)]
pub enum ClientCommand {
    Jobs(JobsArgs),
    Runs(RunsArgs),
    Run(RunArgs),
    Cancel(RunArgs),
    Trigger(TriggerArgs),
    Pause(JobArgs),
    Resume(JobArgs),
}

/// `PLUGIN/JOB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPath {
    pub plugin: String,
    pub job: String,
}

impl JobPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((plugin, job)) if !plugin.is_empty() && !job.is_empty() => Ok(Self {
                plugin: plugin.to_owned(),
                job: job.to_owned(),
            }),
            _ => Err(format!(
                "{text:?}: expected PLUGIN/JOB, e.g. demo/heartbeat"
            )),
        }
    }

    /// `/api/plugins/{plugin}/jobs/{job}`.
    fn api(&self) -> String {
        job_path(&self.plugin, &self.job)
    }
}

impl std::fmt::Display for JobPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.plugin, self.job)
    }
}

/// What `runs` lists: one plugin's runs, or one job's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Plugin(String),
    Job(JobPath),
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.contains('/') {
            JobPath::parse(text).map(Self::Job)
        } else if text.is_empty() {
            Err("expected PLUGIN or PLUGIN/JOB".to_owned())
        } else {
            Ok(Self::Plugin(text.to_owned()))
        }
    }
}

/// JSON as the server would take it: an integer past 64 bits would be rounded here before it
/// is sent, so it is refused, as the server refuses it.
fn parse_json(text: &str) -> Result<Value, String> {
    let value = serde_json::from_str(text).map_err(|err| format!("not valid JSON: {err}"))?;
    plugin_jobs::declaration::check_integers(text.as_bytes()).map_err(|err| format!("it {err}"))?;
    Ok(value)
}

/// Runs one client command in its own actix System; prints its answer or its error.
pub fn run(command: ClientCommand) -> ExitCode {
    let conn = match &command {
        ClientCommand::Jobs(args) => &args.conn,
        ClientCommand::Runs(args) => &args.conn,
        ClientCommand::Run(args) | ClientCommand::Cancel(args) => &args.conn,
        ClientCommand::Trigger(args) => &args.conn,
        ClientCommand::Pause(args) | ClientCommand::Resume(args) => &args.conn,
    };
    let (url, token, json) = (conn.url.clone(), conn.token.clone(), conn.json);
    let answered = actix_rt::System::new().block_on(async move {
        let api = ApiClient::new(url, token);
        match &command {
            ClientCommand::Jobs(args) => jobs(&api, args, json).await,
            ClientCommand::Runs(args) => runs(&api, args, json).await,
            ClientCommand::Run(args) => run_detail(&api, args, json).await,
            ClientCommand::Cancel(args) => cancel(&api, args, json).await,
            ClientCommand::Trigger(args) => trigger(&api, args, json).await,
            ClientCommand::Pause(args) => set_state(&api, args, "pause", json).await,
            ClientCommand::Resume(args) => set_state(&api, args, "resume", json).await,
        }
    });
    match answered {
        Ok(text) => {
            super::print_out(&text);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn decode<T: DeserializeOwned>(
    api: &ApiClient,
    path: &str,
    value: &Value,
) -> Result<T, ClientError> {
    T::deserialize(value).map_err(|err| ClientError::bad_shape(&api.url(path), &err))
}

fn pretty(value: &Value) -> String {
    // Serialising a Value cannot fail: its keys are strings.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------------------------
// Commands

async fn jobs(api: &ApiClient, args: &JobsArgs, json: bool) -> Result<String, ClientError> {
    // Filtered by the server (an unknown plugin is its 404, exit 3).
    let mut filters = Vec::new();
    if let Some(status) = &args.status {
        filters.push(format!("status={}", segment(status)));
    }
    if let Some(plugin) = &args.plugin {
        filters.push(format!("pluginId={}", segment(plugin)));
    }
    if args.failing {
        filters.push("failing=true".to_owned());
    }
    let path = if filters.is_empty() {
        "/api/jobs".to_owned()
    } else {
        format!("/api/jobs?{}", filters.join("&"))
    };
    let listed = api.get(&path).await?;
    if json {
        return Ok(pretty(&listed));
    }
    let jobs: Vec<Job> = decode(api, &path, &listed)?;
    let plugins = api.get("/api/plugins").await?;
    let workers: HashMap<String, String> = plugins
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|plugin| {
            Some((
                plugin["id"].as_str()?.to_owned(),
                plugin["workerStatus"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Ok(render_jobs(&jobs, &workers, Utc::now()))
}

async fn runs(api: &ApiClient, args: &RunsArgs, json: bool) -> Result<String, ClientError> {
    // The server filters by status (in SQL), so `limit` runs of that status come back.
    let fetch = args.limit;
    let status = match &args.status {
        Some(status) => format!("&status={}", segment(status)),
        None => String::new(),
    };
    let path = match &args.target {
        None => format!("/api/runs?limit={fetch}{status}"),
        Some(Target::Plugin(plugin)) => {
            format!(
                "/api/runs?limit={fetch}&pluginId={}{status}",
                segment(plugin)
            )
        }
        Some(Target::Job(job)) => format!("{}/runs?limit={fetch}{status}", job.api()),
    };
    let listed = api.get(&path).await?;
    if json {
        return Ok(pretty(&listed));
    }
    let runs: Vec<Run> = decode(api, &path, &listed)?;
    let names = job_names(api, &runs).await;
    Ok(render_runs(&runs, &names, Utc::now()))
}

/// Job id → `plugin/key` for the jobs of these runs, which name their job by id only: one read
/// per distinct job (a page of runs names a few), whatever the number of jobs on the server. A
/// job that cannot be read (deleted since) shows as its id.
async fn job_names(api: &ApiClient, runs: &[Run]) -> HashMap<String, String> {
    let mut jobs: Vec<(&str, &str)> = runs
        .iter()
        .map(|run| (run.plugin_id.as_str(), run.job_id.as_str()))
        .collect();
    jobs.sort_unstable();
    jobs.dedup();
    let reads = jobs.into_iter().map(|(plugin_id, job_id)| async move {
        let path = job_path(plugin_id, job_id);
        let job: Job = decode(api, &path, &api.get(&path).await.ok()?).ok()?;
        Some((job.id.clone(), job.name()))
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The API path of a job of a plugin, by id or key.
fn job_path(plugin_id: &str, job: &str) -> String {
    format!("/api/plugins/{}/jobs/{}", segment(plugin_id), segment(job))
}

async fn run_detail(api: &ApiClient, args: &RunArgs, json: bool) -> Result<String, ClientError> {
    let path = format!("/api/runs/{}", segment(&args.run_id));
    let found = api.get(&path).await?;
    if json {
        return Ok(pretty(&found));
    }
    let run: Run = decode(api, &path, &found)?;
    // The run names its job by id; the key reads better. A job deleted since shows as its id.
    let name = job_names(api, std::slice::from_ref(&run))
        .await
        .remove(&run.job_id)
        .unwrap_or_else(|| format!("{}/{}", run.plugin_id, run.job_id));
    Ok(render_run(&run, &name, Utc::now()))
}

async fn cancel(api: &ApiClient, args: &RunArgs, json: bool) -> Result<String, ClientError> {
    let path = format!("/api/runs/{}/cancel", segment(&args.run_id));
    let answer = api.post(&path, None).await?;
    if json {
        return Ok(pretty(&answer));
    }
    let run: Run = decode(api, &path, &answer)?;
    Ok(match run.status.as_str() {
        "cancelled" => format!("run {} is cancelled\n", run.id),
        status => format!(
            "run {} is {status}: its cancellation is on its way (follow it with `plugin-jobs run {}`)\n",
            run.id, run.id
        ),
    })
}

async fn trigger(api: &ApiClient, args: &TriggerArgs, json: bool) -> Result<String, ClientError> {
    let path = format!("{}/trigger", args.job.api());
    let body = args
        .payload
        .as_ref()
        .map(|payload| serde_json::json!({ "payload": payload }));
    let answer = api.post(&path, body.as_ref()).await?;
    if json {
        return Ok(pretty(&answer));
    }
    let triggered: Triggered = decode(api, &path, &answer)?;
    Ok(format!(
        "{} triggered: run {} is queued (follow it with `plugin-jobs run {}`)\n",
        args.job, triggered.run_id, triggered.run_id
    ))
}

async fn set_state(
    api: &ApiClient,
    args: &JobArgs,
    action: &str,
    json: bool,
) -> Result<String, ClientError> {
    let path = format!("{}/{action}", args.job.api());
    let answer = api.post(&path, None).await?;
    if json {
        return Ok(pretty(&answer));
    }
    let job: Job = decode(api, &path, &answer)?;
    Ok(render_job_state(&job, Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths_and_targets_need_both_halves() {
        assert_eq!(
            JobPath::parse("demo/a/b"),
            Ok(JobPath {
                plugin: "demo".into(),
                job: "a/b".into()
            })
        );
        for bad in ["demo", "/x", "demo/", ""] {
            assert!(JobPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Target::parse("demo"), Ok(Target::Plugin("demo".into())));
        assert!(matches!(Target::parse("demo/x"), Ok(Target::Job(_))));
        assert_eq!(
            JobPath::parse("demo/a b").map(|p| p.api()),
            Ok("/api/plugins/demo/jobs/a%20b".to_owned())
        );
    }
}
