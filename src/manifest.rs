//! The plugins directory (DESIGN §7): one folder per plugin holding `manifest.json`. Every
//! manifest is checked whole; a bad one is reported with its path and the field at fault, and the
//! other plugins still load. A job's schedule and timezone are not checked here: a bad one fails
//! only that job when it is registered (DESIGN §4), and the plugin's other jobs run.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::declaration::JobDeclaration;
use crate::scheduler::PluginOptions;
use crate::worker::PluginProcess;

/// The contents of a `manifest.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// Program and arguments of the worker.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Passed to the worker in `initialize`.
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub jobs: Vec<JobDeclaration>,
    /// At most this many runs of this plugin's jobs at once on one instance, under the
    /// instance's limit; none: only the instance's limit bounds it.
    #[serde(default)]
    pub max_concurrent_runs: Option<u64>,
}

/// The largest `maxConcurrentRuns` a manifest may name.
pub const MAX_PLUGIN_CONCURRENCY: u64 = 100_000;

impl Manifest {
    /// The plugin's own scheduling settings, as registration takes them.
    pub fn options(&self) -> PluginOptions {
        PluginOptions {
            max_concurrent_runs: self
                .max_concurrent_runs
                .and_then(|max| usize::try_from(max).ok()),
        }
    }
}

/// A plugin ready to start: its manifest, folder and the raw JSON sent in `initialize`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub raw: Value,
}

impl Plugin {
    /// How to start this plugin's worker.
    pub fn process(&self) -> PluginProcess {
        PluginProcess {
            plugin_id: self.manifest.id.clone(),
            command: self.manifest.command.clone(),
            dir: self.dir.clone(),
            env: self.manifest.env.clone(),
            manifest: self.raw.clone(),
            config: self.manifest.config.clone(),
        }
    }
}

/// A manifest that was rejected: which file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub path: PathBuf,
    pub message: String,
    /// The plugin's id, when the file names one: its jobs are retired with this error.
    pub plugin_id: Option<String>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ManifestError {}

/// What a plugins directory holds: the plugins that load, and the manifests that do not.
#[derive(Debug, Default)]
pub struct Plugins {
    pub loaded: Vec<Plugin>,
    pub rejected: Vec<ManifestError>,
    /// Folders without a `manifest.json` (hidden ones aside): skipped, and said so, since a
    /// misnamed manifest (`Manifest.json`, `manifest.json.txt`) is an easy mistake.
    pub skipped: Vec<PathBuf>,
}

/// Why `dir` cannot be the plugins directory when it holds a `manifest.json` itself: it is one
/// plugin's folder (`--plugins plugins/billing` for `--plugins plugins`). Loaded as the plugins
/// directory it would hold no plugin, and every plugin's jobs would be retired as removed.
pub fn names_one_plugin(dir: &Path) -> Option<String> {
    dir.join("manifest.json").symlink_metadata().ok()?;
    let parent = std::path::absolute(dir)
        .ok()
        .and_then(|dir| dir.parent().map(Path::to_path_buf))
        .map_or_else(
            || "its parent".to_owned(),
            |parent| parent.display().to_string(),
        );
    Some(format!(
        "{} holds a manifest.json itself, so it is one plugin's folder, not the plugins \
         directory: name the folder that holds the plugin folders ({parent})",
        dir.display()
    ))
}

/// Loads every `*/manifest.json` under `dir`, in folder-name order. Folders without a manifest
/// are skipped; a missing or unreadable `dir` is one rejection, and so is a `dir` that is one
/// plugin's folder (see [`names_one_plugin`]).
pub fn load_dir(dir: &Path) -> Plugins {
    let mut plugins = Plugins::default();
    if let Some(message) = names_one_plugin(dir) {
        plugins.rejected.push(ManifestError {
            path: dir.join("manifest.json"),
            message,
            plugin_id: None,
        });
        return plugins;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            plugins.rejected.push(ManifestError {
                path: dir.to_owned(),
                message: format!("cannot read the plugins directory: {err}"),
                plugin_id: None,
            });
            return plugins;
        }
    };
    let (mut folders, mut skipped): (Vec<PathBuf>, Vec<PathBuf>) = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir() && !is_hidden(path))
        // A `manifest.json` that is there but not a readable file (a folder, a dangling
        // link) is a rejected manifest, not a missing one.
        .partition(|path| path.join("manifest.json").symlink_metadata().is_ok());
    folders.sort();
    skipped.sort();
    plugins.skipped = skipped;
    let mut ids = HashSet::new();
    for folder in folders {
        let path = folder.join("manifest.json");
        match load(&path) {
            Ok(plugin) if !ids.insert(plugin.manifest.id.clone()) => {
                plugins.rejected.push(ManifestError {
                    path,
                    message: format!("id: {:?} is used by another plugin", plugin.manifest.id),
                    // The id belongs to the plugin that loaded first.
                    plugin_id: None,
                });
            }
            Ok(plugin) => plugins.loaded.push(plugin),
            Err(err) => plugins.rejected.push(err),
        }
    }
    plugins
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}

/// Loads and checks one manifest file.
pub fn load(path: &Path) -> Result<Plugin, ManifestError> {
    let reject = |message: String, plugin_id: Option<&str>| ManifestError {
        path: path.to_owned(),
        message,
        plugin_id: plugin_id.map(str::to_owned),
    };
    if path.is_dir() {
        return Err(reject("is a folder, not a file".to_owned(), None));
    }
    if !path.exists()
        && let Ok(target) = std::fs::read_link(path)
    {
        let message = format!("is a link to {}, which does not exist", target.display());
        return Err(reject(message, None));
    }
    let text =
        std::fs::read_to_string(path).map_err(|err| reject(format!("cannot read: {err}"), None))?;
    // A byte order mark, as some editors write, is not JSON but says nothing wrong.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let raw: Value =
        serde_json::from_str(text).map_err(|err| reject(format!("invalid JSON: {err}"), None))?;
    if !raw.is_object() {
        return Err(reject(
            format!(
                "must be a JSON object ({{\"id\": …, \"command\": […], \"jobs\": […]}}), not {}",
                json_kind(&raw)
            ),
            None,
        ));
    }
    let id = raw.get("id").and_then(Value::as_str);
    crate::declaration::check_integers(text.as_bytes())
        .map_err(|err| reject(format!("the manifest {err}"), id))?;
    // serde would take a job's fields in order from an array (`["nightly", "", "", "0 3 * * *"]`):
    // every job is an object, as the top level is.
    if let Some(jobs) = raw.get("jobs").and_then(Value::as_array)
        && let Some((index, job)) = jobs.iter().enumerate().find(|(_, job)| !job.is_object())
    {
        return Err(reject(
            format!(
                "jobs[{index}]: must be a JSON object ({{\"jobKey\": …, \"schedule\": …}}), not {}",
                json_kind(job)
            ),
            id,
        ));
    }
    let manifest: Manifest =
        serde_path_to_error::deserialize(raw.clone()).map_err(|err| reject(describe(&err), id))?;
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    check(&manifest, &dir).map_err(|message| reject(message, id))?;
    check_initialize_size(&raw, &manifest.config).map_err(|message| reject(message, id))?;
    Ok(Plugin { manifest, dir, raw })
}

/// Room in `initialize` beside the manifest and its config: the JSON-RPC envelope, the plugin
/// id, the instance id and the host's version.
const INITIALIZE_ENVELOPE_BYTES: usize = 1024;

/// The worker gets the whole manifest, and its config once more, in `initialize`: one line,
/// which a worker reads only up to [`rpc::MAX_LINE_BYTES`]. A manifest too large for it would
/// leave its worker restarted forever for an answer it never reads the question of.
///
/// [`rpc::MAX_LINE_BYTES`]: crate::worker::rpc::MAX_LINE_BYTES
fn check_initialize_size(raw: &Value, config: &Value) -> Result<(), String> {
    let limit = crate::worker::rpc::MAX_LINE_BYTES;
    let manifest = raw.to_string().len();
    let config = config.to_string().len();
    let bytes = manifest + config + INITIALIZE_ENVELOPE_BYTES;
    if bytes <= limit {
        return Ok(());
    }
    let config = if config > "null".len() {
        format!(", and its config ({config} bytes) once more,")
    } else {
        String::new()
    };
    Err(format!(
        "is {manifest} bytes as compact JSON: the worker gets it{config} in its initialize \
         message, one line of at most {limit} bytes (1 MiB) with {INITIALIZE_ENVELOPE_BYTES} \
         kept for the rest of the message; split the jobs over several plugins or shorten their \
         descriptions"
    ))
}

/// What kind of JSON value `value` is, with its article.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde's own message does not always name the field (`invalid type: null, expected a
/// string`); put its path in front (`id: invalid type: …`, `jobs[1].timeoutMs: …`).
fn describe(err: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = err.path().to_string();
    if path == "." {
        err.inner().to_string()
    } else {
        format!("{path}: {}", err.inner())
    }
}

fn check(manifest: &Manifest, dir: &Path) -> Result<(), String> {
    let id = &manifest.id;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "id: {id:?} must be non-empty and use only letters, digits, '-', '_' and '.'"
        ));
    }
    crate::declaration::check_plugin_id(id).map_err(|err| format!("id: {err}"))?;
    let Some(program) = manifest.command.first().filter(|p| !p.is_empty()) else {
        return Err("command: must name a program, e.g. [\"./worker\"]".to_owned());
    };
    if program.starts_with("./") && !dir.join(program).is_file() {
        return Err(format!(
            "command[0]: {program} does not exist in {}",
            dir.display()
        ));
    }
    for (key, value) in &manifest.env {
        if key == "PLUGIN_JOBS_PLUGIN_ID" {
            return Err(format!(
                "env.{key}: is set by the host, to the plugin's id ({id:?}); remove it"
            ));
        }
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(format!(
                "env: {key:?} is not a variable name (empty, or holding '=' or NUL)"
            ));
        }
        if value.contains('\0') {
            return Err(format!("env.{key}: the value holds a NUL byte"));
        }
    }
    if let Some(max) = manifest.max_concurrent_runs
        && !(1..=MAX_PLUGIN_CONCURRENCY).contains(&max)
    {
        return Err(format!(
            "maxConcurrentRuns: must be between 1 and {MAX_PLUGIN_CONCURRENCY} (got {max})"
        ));
    }
    crate::declaration::check_jobs(&manifest.jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, folder: &str, text: &str) -> PathBuf {
        let folder = dir.join(folder);
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join("worker"), "").expect("worker");
        let path = folder.join("manifest.json");
        std::fs::write(&path, text).expect("manifest");
        path
    }

    fn rejection(text: &str) -> String {
        let dir = tempfile::tempdir().expect("temp");
        let path = write(dir.path(), "p", text);
        let err = load(&path).expect_err("rejected");
        assert_eq!(err.path, path);
        err.message
    }

    #[test]
    fn a_good_manifest_loads_with_its_jobs() {
        let dir = tempfile::tempdir().expect("temp");
        write(
            dir.path(),
            "demo",
            r#"{"id":"demo","command":["./worker","--flag"],"env":{"K":"V"},
               "jobs":[{"jobKey":"a","schedule":"*/10 * * * * *","timeoutMs":3000}]}"#,
        );
        let plugins = load_dir(dir.path());
        assert!(plugins.rejected.is_empty(), "{:?}", plugins.rejected);
        let plugin = &plugins.loaded[0];
        assert_eq!(plugin.manifest.id, "demo");
        assert_eq!(plugin.manifest.jobs[0].timeout_ms, Some(3000));
        let process = plugin.process();
        assert_eq!(process.command, ["./worker", "--flag"]);
        assert_eq!(process.env.get("K").map(String::as_str), Some("V"));
        assert_eq!(process.manifest["id"], "demo");
    }

    /// A manifest of `jobs` jobs with a 200-byte description each, and `config`.
    fn manifest_of(jobs: usize, config: &Value) -> String {
        let description = "d".repeat(200);
        let jobs: Vec<Value> = (0..jobs)
            .map(|i| {
                serde_json::json!({
                    "jobKey": format!("job-{i}"),
                    "schedule": "0 0 3 * * *",
                    "description": description,
                })
            })
            .collect();
        serde_json::json!({"id": "big", "command": ["x"], "config": config, "jobs": jobs})
            .to_string()
    }

    #[test]
    fn a_manifest_its_worker_could_not_read_in_initialize_is_refused() {
        let limit = crate::worker::rpc::MAX_LINE_BYTES;
        // Each job is about 264 bytes as JSON: 3,500 fit in 1 MiB, 5,000 do not.
        let fits = manifest_of(3_500, &Value::Null);
        assert!(
            fits.len() < limit - INITIALIZE_ENVELOPE_BYTES,
            "{}",
            fits.len()
        );
        let dir = tempfile::tempdir().expect("temp");
        load(&write(dir.path(), "fits", &fits)).expect("a manifest under 1 MiB loads");

        let too_many = manifest_of(5_000, &Value::Null);
        assert!(too_many.len() > limit);
        let message = rejection(&too_many);
        assert!(
            message.starts_with(&format!("is {} bytes as compact JSON", too_many.len()))
                && message.contains("initialize")
                && message.contains("1 MiB"),
            "{message}"
        );

        // The config goes twice: alone in the manifest it fits, counted again it does not.
        let config = Value::String("c".repeat(limit / 2));
        let manifest = manifest_of(0, &config);
        assert!(manifest.len() < limit);
        let message = rejection(&manifest);
        assert!(
            message.contains("its config (524290 bytes) once more"),
            "{message}"
        );
    }

    #[test]
    fn each_bad_manifest_names_its_field() {
        assert!(rejection("{not json").starts_with("invalid JSON"));
        assert!(rejection(r#"{"id":"p"}"#).contains("missing field `command`"));
        assert!(rejection(r#"{"id":"p","command":[]}"#).starts_with("command:"));
        assert!(rejection(r#"{"id":"p","command":["./nope"]}"#).starts_with("command[0]: ./nope"));
        assert!(
            rejection(r#"{"id":"p","command":["x"],"colour":1}"#)
                .contains("unknown field `colour`")
        );
        let positional =
            rejection(r#"{"id":"p","command":["x"],"jobs":[["a","","","* * * * *"]]}"#);
        assert!(
            positional.starts_with("jobs[0]: must be a JSON object"),
            "{positional}"
        );
        let key = rejection(r#"{"id":"p","command":["x"],"jobs":[{"schedule":"* * * * *"}]}"#);
        assert!(key.starts_with("jobs[0]: missing field `jobKey`"), "{key}");
        let twice =
            rejection(r#"{"id":"p","command":["x"],"jobs":[{"jobKey":"a"},{"jobKey":"a"}]}"#);
        assert!(twice.starts_with("jobs[1].jobKey"), "{twice}");
        assert!(rejection(r#"{"id":"a/b","command":["x"]}"#).starts_with("id:"));
        let rounded = rejection(
            r#"{"id":"p","command":["x"],"jobs":[{"jobKey":"a","payload":{"n":123456789012345678901234}}]}"#,
        );
        assert!(
            rounded.starts_with("the manifest holds the integer 123456789012345678901234"),
            "{rounded}"
        );
        let zero = rejection(r#"{"id":"p","command":["x"],"maxConcurrentRuns":0}"#);
        assert!(
            zero.starts_with("maxConcurrentRuns: must be between 1"),
            "{zero}"
        );
        let negative = rejection(r#"{"id":"p","command":["x"],"maxConcurrentRuns":-2}"#);
        assert!(
            negative.starts_with("maxConcurrentRuns: invalid value"),
            "{negative}"
        );
        let text = rejection(r#"{"id":"p","command":["x"],"maxConcurrentRuns":"3"}"#);
        assert!(
            text.starts_with("maxConcurrentRuns: invalid type"),
            "{text}"
        );
        let id = rejection(r#"{"id":"p","command":["x"],"env":{"PLUGIN_JOBS_PLUGIN_ID":"q"}}"#);
        assert!(
            id.starts_with("env.PLUGIN_JOBS_PLUGIN_ID: is set by the host"),
            "{id}"
        );
        for env in [r#"{"A=B":"1"}"#, r#"{"":"1"}"#, r#"{"A\u0000":"1"}"#] {
            let name = rejection(&format!(r#"{{"id":"p","command":["x"],"env":{env}}}"#));
            assert!(name.contains("is not a variable name"), "{env}: {name}");
        }
        let nul = rejection(r#"{"id":"p","command":["x"],"env":{"A":"x\u0000y"}}"#);
        assert!(
            nul.starts_with("env.A: the value holds a NUL byte"),
            "{nul}"
        );
    }

    #[test]
    fn a_plugin_limit_is_carried_to_registration() {
        let dir = tempfile::tempdir().expect("temp");
        let path = write(
            dir.path(),
            "p",
            r#"{"id":"p","command":["x"],"maxConcurrentRuns":3,"jobs":[]}"#,
        );
        let plugin = load(&path).expect("loads");
        assert_eq!(
            plugin.manifest.options(),
            PluginOptions::max_concurrent_runs(3)
        );
        let path = write(dir.path(), "q", r#"{"id":"q","command":["x"]}"#);
        let plugin = load(&path).expect("loads");
        assert_eq!(plugin.manifest.options(), PluginOptions::default());
    }

    #[test]
    fn a_bad_schedule_or_timezone_is_left_to_fail_only_its_job() {
        let dir = tempfile::tempdir().expect("temp");
        let path = write(
            dir.path(),
            "p",
            r#"{"id":"p","command":["x"],"jobs":[{"jobKey":"a","schedule":"* * * * *"},
               {"jobKey":"b","schedule":"61 * * * *"},
               {"jobKey":"c","schedule":"* * * * *","timezone":"Mars/Base"}]}"#,
        );
        let plugin = load(&path).expect("the plugin loads");
        assert_eq!(plugin.manifest.jobs.len(), 3);
    }

    #[test]
    fn a_rejected_manifest_names_its_plugin_when_it_can() {
        let dir = tempfile::tempdir().expect("temp");
        let named = write(dir.path(), "a", r#"{"id":"named","command":[]}"#);
        assert_eq!(
            load(&named).expect_err("rejected").plugin_id.as_deref(),
            Some("named")
        );
        let broken = write(dir.path(), "b", "{not json");
        assert_eq!(load(&broken).expect_err("rejected").plugin_id, None);
    }

    #[test]
    fn a_bad_manifest_does_not_stop_the_others() {
        let dir = tempfile::tempdir().expect("temp");
        write(
            dir.path(),
            "a-good",
            r#"{"id":"good","command":["./worker"]}"#,
        );
        write(dir.path(), "b-bad", r#"{"id":"bad"}"#);
        write(
            dir.path(),
            "c-twin",
            r#"{"id":"good","command":["./worker"]}"#,
        );
        std::fs::create_dir_all(dir.path().join("no-manifest")).expect("folder");
        let plugins = load_dir(dir.path());
        let ids: Vec<_> = plugins
            .loaded
            .iter()
            .map(|p| p.manifest.id.as_str())
            .collect();
        assert_eq!(ids, ["good"]);
        let rejected: Vec<String> = plugins.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(rejected.len(), 2, "{rejected:?}");
        assert!(rejected[0].contains("b-bad/manifest.json: missing field `command`"));
        assert!(rejected[1].contains("c-twin/manifest.json: id: \"good\" is used"));
        assert_eq!(plugins.skipped, [dir.path().join("no-manifest")]);
    }

    #[test]
    fn a_byte_order_mark_is_read_past_and_a_root_that_is_not_an_object_is_named() {
        let dir = tempfile::tempdir().expect("temp");
        let path = write(
            dir.path(),
            "bom",
            "\u{feff}{\"id\":\"bom\",\"command\":[\"x\"]}",
        );
        assert_eq!(load(&path).expect("loads").manifest.id, "bom");
        assert_eq!(
            rejection("[]"),
            "must be a JSON object ({\"id\": …, \"command\": […], \"jobs\": […]}), not an array"
        );
    }
}
