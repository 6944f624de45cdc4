//! The worker guard: a tiny process between the host and each plugin worker, so that a worker
//! and everything it starts never outlive the host's control of it.
//!
//! The host starts `<guard program> __plugin-jobs-worker-guard <host pid> <leash ms> <command…>`
//! in a process group of its own. The guard then:
//! - asks the kernel to send it `SIGUSR1` when the host dies (`PR_SET_PDEATHSIG`, Linux) and
//!   becomes a child subreaper, so orphaned descendants of the worker stay its children;
//! - starts the worker in a new process group and waits for it;
//! - forwards `SIGTERM` and `SIGINT` to the worker's whole group; on `SIGUSR1` (from the host, or
//!   from the kernel when the host died) it sends `SIGKILL` to the whole group;
//! - with a leash (`<leash ms>` above 0), expects `SIGUSR2` from the host at least that often
//!   and kills the worker's whole group when none came: a host that is alive but frozen
//!   (stopped, starved, its machine paused) renews no run lease, so another instance may rescue
//!   the worker's runs and start their jobs again, and the worker must be gone by then. The host
//!   sets the leash below its run lease (see [`crate::worker::WorkerManager::set_leash`]);
//! - once the worker has exited, kills whatever is left of its group, reaps every descendant
//!   (up to a bound), and exits with the worker's status (`128 + signal` when it was killed).
//!
//! So a shell wrapper (`sh -c "python3 worker.py"`), `npm start` or a script without `exec`
//! ends with its host: the host's restart, stop or shutdown returns only once the guard has
//! exited, and the guard exits only once the worker's group is gone.
//!
//! Written by hand because no maintained crate combines the three things this needs (a process
//! group, death with the parent, and reaping re-parented descendants); it is a few system calls
//! through `nix`, with no `unsafe`.

use std::ffi::{OsStr, OsString};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// The first argument that makes a binary act as the worker guard.
pub const GUARD_ARG: &str = "__plugin-jobs-worker-guard";

/// The signal with which the host (or the kernel, when the host dies) tells the guard to kill
/// the worker's whole group at once.
pub const KILL_SIGNAL: Signal = Signal::SIGUSR1;

/// The signal with which the host renews the guard's leash.
pub const LEASH_SIGNAL: Signal = Signal::SIGUSR2;

/// How long the guard waits for the last descendants to be reaped before it exits anyway.
pub(super) const REAP_BOUND: Duration = Duration::from_secs(5);

/// If this process was started as a worker guard, runs the guard and exits with the worker's
/// status; otherwise returns at once. Call it first in `main` of any binary named as
/// [`ProcessWorkerConfig::guard`](super::ProcessWorkerConfig::guard).
pub fn run_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(GUARD_ARG)) {
        return;
    }
    let mut number = || {
        args.next()
            .and_then(|arg| arg.to_str()?.parse::<u64>().ok())
    };
    let host = number().and_then(|pid| i32::try_from(pid).ok());
    let leash = number().map(|ms| (ms > 0).then(|| Duration::from_millis(ms)));
    let command: Vec<OsString> = args.collect();
    let code = match (host, leash) {
        (Some(host), Some(leash)) if !command.is_empty() => run(host, leash, command),
        _ => {
            eprintln!(
                "plugin-jobs worker guard: usage: {GUARD_ARG} <host pid> <leash ms> <command…>"
            );
            2
        }
    };
    std::process::exit(code);
}

fn run(host: i32, leash: Option<Duration>, command: Vec<OsString>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("plugin-jobs worker guard: cannot start: {err}");
            return 1;
        }
    };
    runtime.block_on(guard(host, leash, command))
}

async fn guard(host: i32, leash: Option<Duration>, command: Vec<OsString>) -> i32 {
    // Handlers first: from here on no signal from the host, nor its death, is lost.
    let (Ok(mut kill), Ok(mut term), Ok(mut int), Ok(mut renew)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        eprintln!("plugin-jobs worker guard: cannot install signal handlers");
        return 1;
    };
    #[cfg(target_os = "linux")]
    {
        if let Err(err) = nix::sys::prctl::set_pdeathsig(KILL_SIGNAL) {
            eprintln!("plugin-jobs worker guard: PR_SET_PDEATHSIG failed: {err}");
            return 1;
        }
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("plugin-jobs worker guard: PR_SET_CHILD_SUBREAPER failed: {err}");
            return 1;
        }
    }
    if nix::unistd::getppid().as_raw() != host {
        // The host died before the death signal was armed: start nothing.
        return 1;
    }
    let (program, args) = command
        .split_first()
        .expect("checked non-empty by the caller");
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("could not start {}: {err}", program.to_string_lossy());
            return 127;
        }
    };
    let Some(group) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
        return 1;
    };
    let_go_of_the_pipes();
    let group = Pid::from_raw(group);
    // The leash counts from the host's first renewal (sent once the worker has answered, and
    // no run reaches it before): until then, and without a leash, it is far away.
    let unleashed = Duration::from_secs(100 * 365 * 24 * 3600);
    let expires = tokio::time::sleep(unleashed);
    tokio::pin!(expires);
    let mut expired = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = kill.recv() => signal_group(group, Signal::SIGKILL),
            _ = term.recv() => signal_group(group, Signal::SIGTERM),
            _ = int.recv() => signal_group(group, Signal::SIGINT),
            _ = renew.recv() => {
                if let Some(leash) = leash {
                    expires.as_mut().reset(tokio::time::Instant::now() + leash);
                }
            }
            () = &mut expires, if !expired => {
                expired = true;
                eprintln!(
                    "plugin-jobs worker guard: the host renewed no leash for {} ms (it is \
                     frozen or starved, and its runs may be rescued elsewhere): killing the worker",
                    leash.unwrap_or(unleashed).as_millis()
                );
                signal_group(group, Signal::SIGKILL);
            }
        }
    };
    // The worker is gone; nothing it started may stay behind.
    signal_group(group, Signal::SIGKILL);
    reap_descendants(group);
    match status {
        Ok(status) => exit_code(status),
        Err(err) => {
            eprintln!("plugin-jobs worker guard: waiting for the worker failed: {err}");
            1
        }
    }
}

/// The worker holds the host's stdin and stdout pipes now. The guard's own copies would keep
/// them open after the worker closed them: the host would never see the end of a worker's
/// stdout (a worker that closed it but kept running would look healthy for ever), nor would
/// the worker see the end of its stdin. The guard keeps its stderr, for its own messages.
fn let_go_of_the_pipes() {
    let null = |write: bool| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open("/dev/null")
    };
    let redirected = null(false)
        .map_err(|err| err.to_string())
        .and_then(|input| nix::unistd::dup2_stdin(&input).map_err(|err| err.to_string()))
        .and_then(|()| null(true).map_err(|err| err.to_string()))
        .and_then(|output| nix::unistd::dup2_stdout(&output).map_err(|err| err.to_string()));
    if let Err(err) = redirected {
        eprintln!("plugin-jobs worker guard: could not let go of the worker's pipes: {err}");
    }
}

fn signal_group(group: Pid, signal: Signal) {
    match killpg(group, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => eprintln!("plugin-jobs worker guard: {signal} to the worker failed: {err}"),
    }
}

/// Reaps every descendant that was re-parented to the guard, killing stragglers that left the
/// worker's group, until none is left or the bound passes.
fn reap_descendants(group: Pid) {
    let deadline = Instant::now() + REAP_BOUND;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    eprintln!(
                        "plugin-jobs worker guard: descendants of the worker (group {group}) \
                         did not exit within {} s",
                        REAP_BOUND.as_secs()
                    );
                    return;
                }
                // Descendants that moved to a group of their own are still our children (we
                // are their subreaper): kill them one by one. On every pass, not once: one
                // becomes our child only when its parent has exited, and behind a shell wrapper
                // that parent (the shell's child) may still be dying when the shell is reaped.
                for pid in children() {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The guard's current children, as the kernel lists them.
fn children() -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return code;
    }
    let signal = status.signal().unwrap_or(0);
    let name = Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.to_string());
    eprintln!("the worker was killed by {name}");
    128 + signal
}
