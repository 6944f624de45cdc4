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
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|pgrp| pgrp.parse::<i32>().ok());
        pgrp == Some(group.as_raw()) && !matches!(state, Some("Z" | "X"))
    })
}
