//! How a plugin's worker process is started and supervised: what to start ([`PluginProcess`],
//! from its manifest), with which environment ([`PluginProcess::command`]), and the timings and
//! limits of every process worker ([`ProcessWorkerConfig`], DESIGN §5's defaults, and the
//! restart backoff [`restart_delay`]). No actix: the `WorkerActor` reads these.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// How to start one plugin's worker: its manifest's `command`, `env` and folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginProcess {
    pub plugin_id: String,
    /// Program and arguments. A program starting with `./` is relative to `dir`; a bare name is
    /// looked up in the child's `PATH`.
    pub command: Vec<String>,
    /// The plugin folder: the worker's working directory.
    pub dir: PathBuf,
    /// Added to the allowlisted environment.
    pub env: BTreeMap<String, String>,
    /// Sent in `initialize` as `manifest`.
    pub manifest: Value,
    /// Sent in `initialize` as `config`.
    pub config: Value,
}

/// Timings and limits of process workers; the defaults are DESIGN §5's.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessWorkerConfig {
    pub handshake_timeout: Duration,
    /// Wait after the `shutdown` request before SIGTERM.
    pub shutdown_timeout: Duration,
    /// Wait after SIGTERM before SIGKILL.
    pub terminate_timeout: Duration,
    /// First restart delay after a crash; it doubles per crash in the window.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// More crashes than this within `crash_window` of the worker's time up (the restart
    /// backoff between its starts does not count) and the worker is given up on.
    pub crash_limit: usize,
    pub crash_window: Duration,
    /// Cap on the `log` lines kept per run, in bytes as stored (every entry's timestamp, level,
    /// message and JSON punctuation count).
    pub log_cap_bytes: usize,
    /// How much of the end of stderr is kept for error messages.
    pub stderr_tail_bytes: usize,
    /// Folders put in front of the worker's `PATH` (the server adds its own, so bundled workers
    /// are found by name).
    pub extra_path: Vec<PathBuf>,
    /// Sent in `initialize` as `instanceInfo.instanceId`.
    pub instance_id: String,
    /// A program that acts as the worker guard (see [`super::guard`]) when given
    /// [`GUARD_ARG`](super::guard::GUARD_ARG) as its first argument: every worker is then
    /// started under it, so the worker and all it starts die with the host, even on `SIGKILL`.
    /// `plugin-jobs serve` names its own binary. Without a guard, every signal still goes to the
    /// worker's whole process group and every exit path kills that group, but a host killed
    /// with `SIGKILL` leaves the worker to notice its closed stdin by itself.
    pub guard: Option<PathBuf>,
}

impl Default for ProcessWorkerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(10),
            terminate_timeout: Duration::from_secs(5),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(5 * 60),
            crash_limit: 10,
            crash_window: Duration::from_secs(10 * 60),
            log_cap_bytes: 64 * 1024,
            stderr_tail_bytes: 4 * 1024,
            extra_path: Vec::new(),
            instance_id: String::new(),
            guard: None,
        }
    }
}

impl PluginProcess {
    /// The command that starts this worker under `config`: the program resolved against the
    /// plugin folder, the environment allowlist (`PATH` with the extra folders first, `HOME`,
    /// `TZ=UTC`, `PLUGIN_JOBS_PLUGIN_ID`, the manifest's `env`), piped stdio, its own process
    /// group, and the guard in front when one is configured.
    pub(super) fn command(
        &self,
        config: &ProcessWorkerConfig,
        leash: Option<Duration>,
    ) -> Result<tokio::process::Command, String> {
        let Some((program, args)) = self.command.split_first() else {
            return Err("the manifest's command is empty".to_owned());
        };
        // Both the program and the working directory are made absolute against the host's
        // working directory: a relative plugins directory (`--plugins plugins`) would otherwise
        // be resolved a second time from inside the plugin folder when the child starts.
        let dir = std::path::absolute(&self.dir).map_err(|err| {
            format!(
                "cannot resolve the plugin folder {}: {err}",
                self.dir.display()
            )
        })?;
        let program = if program.starts_with("./") {
            dir.join(program)
        } else {
            PathBuf::from(program)
        };
        let mut paths: Vec<PathBuf> = config.extra_path.clone();
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        let path = std::env::join_paths(paths).map_err(|err| format!("bad PATH: {err}"))?;
        let mut command = match &config.guard {
            Some(guard) => {
                let mut command = tokio::process::Command::new(guard);
                let leash_ms = leash.map_or(0, |leash| leash.as_millis().max(1));
                command
                    .arg(super::guard::GUARD_ARG)
                    .arg(std::process::id().to_string())
                    .arg(leash_ms.to_string())
                    .arg(program);
                command
            }
            None => tokio::process::Command::new(program),
        };
        command
            .args(args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", path)
            .env("TZ", "UTC")
            .env("PLUGIN_JOBS_PLUGIN_ID", &self.plugin_id)
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C meant for the host must not kill the worker under
            // runs that the host's shutdown lets finish, and every signal of ours reaches all
            // that the worker started.
            .process_group(0)
            // Killing a guard with SIGKILL would orphan its worker; it is told to end instead.
            .kill_on_drop(config.guard.is_none());
        if let Some(home) = std::env::var_os("HOME") {
            command.env("HOME", home);
        }
        Ok(command)
    }
}

/// Restart delay after `crashes` crashes in the window: `base` doubling per crash, capped at
/// `max`, then moved by `jitter` (in -1..=1) times 25 %.
pub fn restart_delay(base: Duration, max: Duration, crashes: usize, jitter: f64) -> Duration {
    let doublings = u32::try_from(crashes.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(30);
    let delay = base.saturating_mul(1 << doublings).min(max);
    delay.mul_f64(1.0 + 0.25 * jitter.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_from_one_second_to_five_minutes() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let delays: Vec<u64> = (1..=11)
            .map(|n| restart_delay(base, max, n, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(
            restart_delay(base, max, 1, 1.0),
            Duration::from_millis(1250)
        );
        assert_eq!(
            restart_delay(base, max, 1, -1.0),
            Duration::from_millis(750)
        );
        assert_eq!(
            restart_delay(base, max, 1, 9.0),
            Duration::from_millis(1250)
        );
    }
}
