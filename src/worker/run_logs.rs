//! The `log` lines of runs in flight on a process worker ([`RunLogs`]): kept per run only while
//! its `runJob` call is in flight, capped in bytes as stored, and handed over once, with the
//! run's outcome or, for a run given up on, as the lines so far.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::time::iso;

/// Finished runs whose lines wait for [`RunLogs::take`]; beyond this many the oldest go.
const UNCLAIMED_RUNS: usize = 1_024;

/// The `log` lines of runs, kept per run only while the run's `runJob` call is in flight, and
/// bounded: every entry counts its full stored size (timestamp, level, message and JSON
/// punctuation) against the cap, and the first entry that does not fit is replaced by one
/// `truncated` marker, within the cap too. When the call ends (answered, given up, or the process
/// gone), the run's lines wait for `take` among at most [`UNCLAIMED_RUNS`] finished runs; lines
/// that arrive after `take` or after the call ended are not kept.
#[derive(Debug)]
pub(super) struct RunLogs {
    cap_bytes: usize,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    /// Runs whose call is in flight.
    open: HashMap<String, RunLog>,
    /// Runs whose call ended, waiting for `take`; `order` is oldest first.
    finished: HashMap<String, RunLog>,
    order: VecDeque<String>,
}

#[derive(Debug, Default)]
struct RunLog {
    entries: Vec<Value>,
    bytes: usize,
    truncated: bool,
    /// Taken while the call was still in flight (it timed out): keep nothing more.
    taken: bool,
}

impl RunLogs {
    /// Logs capped at `cap_bytes` per run (as stored: the JSON array of entries).
    pub(super) fn new(cap_bytes: usize) -> Self {
        Self {
            cap_bytes,
            state: Mutex::new(LogState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // Nothing panics under this lock; a poisoned one still holds consistent maps.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A `runJob` call for `run_id` started: its lines are kept from now on.
    pub(super) fn open(&self, run_id: &str) {
        let mut state = self.lock();
        state.finished.remove(run_id);
        state.open.insert(run_id.to_owned(), RunLog::default());
    }

    /// Keeps a line of a run whose call is in flight, within the cap; other lines are dropped.
    pub(super) fn keep(&self, run_id: &str, level: &str, message: &str) {
        let mut state = self.lock();
        let Some(log) = state.open.get_mut(run_id) else {
            return;
        };
        if log.truncated || log.taken {
            return;
        }
        let now = iso(chrono::Utc::now());
        // The marker must fit too: an entry is kept only if the marker still would after it.
        let marker = json!({
            "at": now,
            "level": "warn",
            "message": format!("log truncated: this run logged more than {} bytes", self.cap_bytes),
            "truncated": true,
        });
        let marker_cost = stored_size(&marker);
        // "[" and "]" of the array.
        let budget = self.cap_bytes.saturating_sub(2);
        // Only the length matters, so a line far over the cap is not copied to measure it.
        let cost = if level.len().saturating_add(message.len()) > budget {
            usize::MAX
        } else {
            stored_size(&json!({"at": now, "level": level, "message": message}))
        };
        if log.bytes.saturating_add(cost).saturating_add(marker_cost) > budget {
            log.truncated = true;
            if log.bytes + marker_cost <= budget {
                log.bytes += marker_cost;
                log.entries.push(marker);
            }
            return;
        }
        log.bytes += cost;
        log.entries
            .push(json!({"at": now, "level": level, "message": message}));
    }

    /// The run's call ended: its lines wait for `take` (among a bounded number of runs), and
    /// later lines are dropped.
    pub(super) fn close(&self, run_id: &str) {
        let mut state = self.lock();
        let Some(log) = state.open.remove(run_id) else {
            return;
        };
        if log.taken || log.entries.is_empty() {
            return;
        }
        state.finished.insert(run_id.to_owned(), log);
        state.order.push_back(run_id.to_owned());
        while state.finished.len() > UNCLAIMED_RUNS {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            state.finished.remove(&oldest);
        }
        // Ids already taken leave stale entries in `order`; drop them before they pile up.
        if state.order.len() > 2 * UNCLAIMED_RUNS {
            let finished = &state.finished;
            let kept: VecDeque<String> = state
                .order
                .iter()
                .filter(|id| finished.contains_key(*id))
                .cloned()
                .collect();
            state.order = kept;
        }
    }

    /// Takes the run's lines as the JSON array stored in its `logs`. A run whose call is still
    /// in flight (it timed out) keeps nothing more after this.
    pub(super) fn take(&self, run_id: &str) -> Option<Value> {
        let mut state = self.lock();
        let entries = match state.open.get_mut(run_id) {
            Some(log) => {
                log.taken = true;
                log.bytes = 0;
                std::mem::take(&mut log.entries)
            }
            None => state.finished.remove(run_id)?.entries,
        };
        (!entries.is_empty()).then_some(Value::Array(entries))
    }

    /// How many runs have lines or a call in flight here.
    #[cfg(test)]
    pub(super) fn buffered_runs(&self) -> usize {
        let state = self.lock();
        state.open.len() + state.finished.len()
    }
}

/// Bytes an entry adds to the stored JSON array: its serialisation and a separating comma.
fn stored_size(entry: &Value) -> usize {
    entry.to_string().len() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 64 * 1024;

    /// Asserts that taken logs stay within the cap and end with exactly one truncation marker.
    fn assert_truncated_within_cap(logs: &Value) {
        let entries = logs.as_array().expect("an array");
        assert!(
            logs.to_string().len() <= CAP,
            "{} bytes",
            logs.to_string().len()
        );
        let markers = entries.iter().filter(|e| e["truncated"] == true).count();
        assert_eq!(markers, 1);
        assert_eq!(entries.last().map(|e| e["truncated"] == true), Some(true));
    }

    #[test]
    fn a_hundred_thousand_empty_lines_stay_under_the_cap() {
        let logs = RunLogs::new(CAP);
        logs.open("r");
        for _ in 0..100_000 {
            logs.keep("r", "info", "");
        }
        logs.close("r");
        let taken = logs.take("r").expect("lines");
        assert_truncated_within_cap(&taken);
        assert!(
            taken.as_array().map_or(0, Vec::len) > 100,
            "some lines are kept"
        );
        assert_eq!(logs.buffered_runs(), 0);
    }

    #[test]
    fn a_one_mebibyte_level_or_message_is_cut_not_stored() {
        let logs = RunLogs::new(CAP);
        logs.open("r");
        logs.keep("r", "info", "before");
        logs.keep("r", &"x".repeat(1 << 20), "m");
        logs.keep("r", "info", "after the cut");
        let taken = logs.take("r").expect("lines");
        assert_truncated_within_cap(&taken);
        assert_eq!(taken[0]["message"], "before");
        assert_eq!(taken.as_array().map(Vec::len), Some(2));

        logs.open("s");
        logs.keep("s", "info", &"\u{1}".repeat(CAP));
        assert_truncated_within_cap(&logs.take("s").expect("marker"));
    }

    #[test]
    fn lines_of_runs_without_a_call_in_flight_are_not_kept() {
        let logs = RunLogs::new(CAP);
        logs.keep("never-called", "info", "x");
        assert_eq!(logs.take("never-called"), None);
        assert_eq!(logs.buffered_runs(), 0);
    }

    #[test]
    fn finished_runs_that_nobody_takes_are_bounded() {
        let logs = RunLogs::new(CAP);
        for n in 0..UNCLAIMED_RUNS * 3 {
            let id = n.to_string();
            logs.open(&id);
            logs.keep(&id, "info", "line");
            logs.close(&id);
        }
        assert_eq!(logs.buffered_runs(), UNCLAIMED_RUNS);
        assert_eq!(logs.take("0"), None, "the oldest went");
        assert!(logs.take(&(UNCLAIMED_RUNS * 3 - 1).to_string()).is_some());
    }
}
