//! Process groups of workers: kill a whole group and wait until none of it is alive. Every exit
//! path of a worker (crash, restart, stop) ends here, so nothing a worker started outlives it.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long an exit path waits for a worker's process group to be gone.
const GROUP_EXIT_BOUND: Duration = Duration::from_secs(5);

/// Sends `SIGKILL` to a process group and waits (up to a bound) until no process of it is left.
pub(super) async fn kill_group_and_wait(group: Pid) {
    let deadline = Instant::now() + GROUP_EXIT_BOUND;
    loop {
        match killpg(group, Signal::SIGKILL) {
            Err(Errno::ESRCH) => return,
            Err(err) => {
                log::warn!("could not kill process group {group}: {err}");
                return;
            }
            // Killed members that nobody reaps linger as zombies: they run nothing.
            Ok(()) if !group_has_living_member(group) => return,
            Ok(()) if Instant::now() >= deadline => {
                log::error!(
                    "process group {group} still has members {} s after SIGKILL",
                    GROUP_EXIT_BOUND.as_secs()
                );
                return;
            }
            Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// The process group of the worker a guard (`guard`, a pid) started: the guard's child that
/// leads a group of its own. `None` without `/proc`, or when the guard has no such child.
pub(super) fn guarded_worker_group(guard: u32) -> Option<Pid> {
    let children = std::fs::read_to_string(format!("/proc/{guard}/task/{guard}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<i32>().ok())
        .find(|&pid| stat_of(pid).is_some_and(|(_, pgrp)| pgrp == pid))
        .map(Pid::from_raw)
}

/// The state and process group of `pid`, from `/proc/<pid>/stat`.
fn stat_of(pid: i32) -> Option<(String, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(String, i32)> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_owned();
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether a process of `group` is still alive (not a zombie). Without `/proc` to look at,
/// every member counts as alive.
fn group_has_living_member(group: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        parse_stat(&stat).is_some_and(|(state, pgrp)| {
            pgrp == group.as_raw() && !matches!(state.as_str(), "Z" | "X")
        })
    })
}
