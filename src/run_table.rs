//! The run table of one instance: which job has a live run (and whether its outcome is already
//! recorded while its worker still holds the job), the manual runs waiting for a free slot, and
//! the concurrency budget: the instance's, and each plugin's own (`maxConcurrentRuns`) under it. Plain data with no actix in it: the `SchedulerActor` owns one, with
//! `H` the handle of each run's actor; tests use any `H`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use uuid::Uuid;

/// A run that holds its job.
#[derive(Debug)]
pub struct LiveRun<H> {
    pub run_id: Uuid,
    pub plugin_id: String,
    pub handle: H,
    /// The outcome is recorded; the worker may still hold the job (timed out or cancelled).
    pub settled: bool,
}

/// Live runs by job, the queue of manual runs, and the budget they share.
#[derive(Debug)]
pub struct RunTable<H, Q> {
    max_concurrent: usize,
    live: HashMap<Uuid, LiveRun<H>>,
    /// Live runs per plugin, for the plugins' own limits.
    live_per_plugin: HashMap<String, usize>,
    /// The plugins with a limit of their own.
    plugin_caps: HashMap<String, usize>,
    /// Manual runs waiting for a slot, oldest first, keyed by their job id.
    queued: VecDeque<(Uuid, Uuid, String, Q)>,
    drain_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    settle_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl<H, Q> RunTable<H, Q> {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            max_concurrent,
            live: HashMap::new(),
            live_per_plugin: HashMap::new(),
            plugin_caps: HashMap::new(),
            queued: VecDeque::new(),
            drain_waiters: Vec::new(),
            settle_waiters: Vec::new(),
        }
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Slots free for new runs: every live run counts, settled ones included (their workers may
    /// still be running them).
    pub fn free_slots(&self) -> usize {
        self.max_concurrent.saturating_sub(self.live.len())
    }

    /// Sets a plugin's own limit (`None`: only the instance's bounds it).
    pub fn set_plugin_cap(&mut self, plugin_id: &str, cap: Option<usize>) {
        match cap {
            Some(cap) => self.plugin_caps.insert(plugin_id.to_owned(), cap),
            None => self.plugin_caps.remove(plugin_id),
        };
    }

    /// A plugin's own limit, if it has one.
    pub fn plugin_cap(&self, plugin_id: &str) -> Option<usize> {
        self.plugin_caps.get(plugin_id).copied()
    }

    /// Live runs of a plugin here.
    pub fn live_count_of(&self, plugin_id: &str) -> usize {
        self.live_per_plugin.get(plugin_id).copied().unwrap_or(0)
    }

    /// Slots free for new runs of `plugin_id`: the instance's free slots, and no more than its
    /// own limit leaves.
    pub fn free_slots_for(&self, plugin_id: &str) -> usize {
        let free = self.free_slots();
        match self.plugin_cap(plugin_id) {
            Some(cap) => free.min(cap.saturating_sub(self.live_count_of(plugin_id))),
            None => free,
        }
    }

    /// The free slots of every plugin with a limit of its own, for the claim.
    pub fn plugin_limits(&self) -> BTreeMap<String, u64> {
        self.plugin_caps
            .keys()
            .map(|plugin| (plugin.clone(), self.free_slots_for(plugin) as u64))
            .collect()
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn queued_count(&self) -> usize {
        self.queued.len()
    }

    /// Whether the job has a live run or a queued manual run here.
    pub fn holds(&self, job_id: Uuid) -> bool {
        self.live.contains_key(&job_id) || self.queued.iter().any(|(job, ..)| *job == job_id)
    }

    /// The live run of `job_id`, if there is one here.
    pub fn live(&self, job_id: Uuid) -> Option<&LiveRun<H>> {
        self.live.get(&job_id)
    }

    /// Job ids with a live run, sorted.
    pub fn live_job_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.live.keys().copied().collect();
        ids.sort();
        ids
    }

    /// Every run this instance owns: live ones and queued manual ones.
    pub fn tracked_run_ids(&self) -> Vec<Uuid> {
        let live = self.live.values().map(|live| live.run_id);
        live.chain(self.queued.iter().map(|(_, run_id, ..)| *run_id))
            .collect()
    }

    /// Records a started run of `job_id`.
    pub fn insert(&mut self, job_id: Uuid, run: LiveRun<H>) {
        *self
            .live_per_plugin
            .entry(run.plugin_id.clone())
            .or_default() += 1;
        if let Some(replaced) = self.live.insert(job_id, run) {
            self.forget_plugin_run(&replaced.plugin_id);
        }
    }

    fn forget_plugin_run(&mut self, plugin_id: &str) {
        if let Some(count) = self.live_per_plugin.get_mut(plugin_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.live_per_plugin.remove(plugin_id);
            }
        }
    }

    /// The run of `job_id` is over: frees its slot if it is still the live one. Answers whether
    /// it was.
    pub fn finish(&mut self, job_id: Uuid, run_id: Uuid) -> bool {
        let removed = self
            .live
            .get(&job_id)
            .is_some_and(|live| live.run_id == run_id);
        if removed && let Some(live) = self.live.remove(&job_id) {
            self.forget_plugin_run(&live.plugin_id);
        }
        self.notify();
        removed
    }

    /// The run's outcome is recorded while its worker may still hold the job.
    pub fn settle(&mut self, job_id: Uuid, run_id: Uuid) {
        if let Some(live) = self.live.get_mut(&job_id)
            && live.run_id == run_id
        {
            live.settled = true;
        }
        self.notify();
    }

    /// Queues a manual run (`run_id` of `job_id`, plugin `plugin_id`) behind the others.
    pub fn push_manual(&mut self, job_id: Uuid, run_id: Uuid, plugin_id: String, run: Q) {
        self.queued.push_back((job_id, run_id, plugin_id, run));
    }

    /// The oldest queued manual run that a slot is free for (its plugin's limit included: a
    /// run of a plugin at its limit lets the runs of other plugins behind it go first) and whose
    /// plugin is `ready` (a worker that is restarting would fail the run at once: it waits).
    pub fn pop_startable(&mut self, ready: impl Fn(&str) -> bool) -> Option<Q> {
        if self.free_slots() == 0 {
            return None;
        }
        let index = self
            .queued
            .iter()
            .position(|(_, _, plugin, _)| self.free_slots_for(plugin) > 0 && ready(plugin))?;
        self.queued.remove(index).map(|(.., run)| run)
    }

    /// Removes the queued manual runs of the job `job_id`; answers them.
    pub fn drop_queued_of(&mut self, job_id: Uuid) -> Vec<Q> {
        let (dropped, kept) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|(job, ..)| *job == job_id);
        self.queued = kept;
        dropped.into_iter().map(|(.., run)| run).collect()
    }

    /// Removes the queued manual run `run_id`; answers it if it was queued.
    pub fn remove_queued(&mut self, run_id: Uuid) -> Option<Q> {
        let index = self
            .queued
            .iter()
            .position(|(_, queued, ..)| *queued == run_id)?;
        self.queued.remove(index).map(|(.., run)| run)
    }

    /// Removes the queued manual runs of `plugin_id` (every plugin when `None`); answers their
    /// run ids.
    pub fn drain_queued(&mut self, plugin_id: Option<&str>) -> Vec<Uuid> {
        let mut drained = Vec::new();
        self.queued.retain(|(_, run_id, plugin, _)| {
            let keep = plugin_id.is_some_and(|wanted| wanted != plugin);
            if !keep {
                drained.push(*run_id);
            }
            keep
        });
        drained
    }

    /// The live runs of `plugin_id` (of every plugin when `None`) whose outcome is not recorded.
    pub fn unsettled(&self, plugin_id: Option<&str>) -> impl Iterator<Item = &LiveRun<H>> {
        self.live.values().filter(move |live| {
            !live.settled && plugin_id.is_none_or(|wanted| wanted == live.plugin_id)
        })
    }

    /// Resolves once no run is live.
    pub fn wait_drained(&mut self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push(tx);
        self.notify();
        rx
    }

    /// Resolves once every live run has its outcome recorded.
    pub fn wait_settled(&mut self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.settle_waiters.push(tx);
        self.notify();
        rx
    }

    fn notify(&mut self) {
        if self.live.is_empty() {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        if self.live.values().all(|live| live.settled) {
            for waiter in self.settle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(run_id: Uuid, plugin: &str) -> LiveRun<()> {
        LiveRun {
            run_id,
            plugin_id: plugin.to_owned(),
            handle: (),
            settled: false,
        }
    }

    #[test]
    fn live_runs_take_slots_until_they_finish_and_only_the_current_run_frees_its_job() {
        let mut table: RunTable<(), ()> = RunTable::new(2);
        let (job, run, stale) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        table.insert(job, live(run, "p"));
        assert_eq!(table.free_slots(), 1);
        assert!(table.holds(job));
        assert!(
            !table.finish(job, stale),
            "an older run does not free the job"
        );
        assert!(table.holds(job));
        assert!(table.finish(job, run));
        assert_eq!(table.free_slots(), 2);
        assert!(!table.holds(job));
    }

    #[test]
    fn a_manual_run_of_a_plugin_not_ready_lets_the_next_one_go() {
        let mut table: RunTable<(), &str> = RunTable::new(1);
        table.push_manual(Uuid::now_v7(), Uuid::now_v7(), "p".to_owned(), "first");
        table.push_manual(Uuid::now_v7(), Uuid::now_v7(), "q".to_owned(), "second");
        assert_eq!(table.pop_startable(|plugin| plugin != "p"), Some("second"));
        assert_eq!(table.pop_startable(|plugin| plugin != "p"), None);
        assert_eq!(table.pop_startable(|_| true), Some("first"));
    }

    #[test]
    fn manual_runs_wait_first_in_first_out_for_a_free_slot() {
        let mut table: RunTable<(), &str> = RunTable::new(1);
        let busy = Uuid::now_v7();
        let busy_run = Uuid::now_v7();
        table.insert(busy, live(busy_run, "p"));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        table.push_manual(a, Uuid::now_v7(), "p".to_owned(), "first");
        table.push_manual(b, Uuid::now_v7(), "q".to_owned(), "second");
        assert!(table.holds(a) && table.holds(b));
        assert_eq!(table.pop_startable(|_| true), None, "no free slot yet");
        table.finish(busy, busy_run);
        assert_eq!(table.pop_startable(|_| true), Some("first"));
        assert_eq!(table.queued_count(), 1);
        assert_eq!(table.drain_queued(Some("p")), Vec::<Uuid>::new());
        assert_eq!(table.drain_queued(Some("q")).len(), 1);
        assert_eq!(table.queued_count(), 0);
    }

    #[test]
    fn waiters_hear_when_every_run_is_settled_and_when_none_is_left() {
        let mut table: RunTable<(), ()> = RunTable::new(4);
        let (job, run) = (Uuid::now_v7(), Uuid::now_v7());
        table.insert(job, live(run, "p"));
        let mut settled = table.wait_settled();
        let mut drained = table.wait_drained();
        assert!(settled.try_recv().is_err());
        assert_eq!(table.unsettled(Some("p")).count(), 1);
        assert_eq!(table.unsettled(Some("other")).count(), 0);
        table.settle(job, run);
        assert!(settled.try_recv().is_ok(), "settled");
        assert!(drained.try_recv().is_err(), "still held by its worker");
        assert_eq!(table.free_slots(), 3, "a settled run still takes its slot");
        table.finish(job, run);
        assert!(drained.try_recv().is_ok());
    }

    #[test]
    fn a_plugin_limit_bounds_that_plugin_under_the_instance_limit() {
        let mut table: RunTable<(), &str> = RunTable::new(3);
        table.set_plugin_cap("a", Some(1));
        assert_eq!(table.free_slots_for("a"), 1);
        assert_eq!(table.free_slots_for("b"), 3);
        let (job, run) = (Uuid::now_v7(), Uuid::now_v7());
        table.insert(job, live(run, "a"));
        assert_eq!(table.free_slots_for("a"), 0, "a is at its own limit");
        assert_eq!(table.free_slots_for("b"), 2);
        assert_eq!(table.plugin_limits().get("a"), Some(&0));
        assert_eq!(
            table.plugin_limits().get("b"),
            None,
            "b has no limit of its own"
        );
        table.set_plugin_cap("a", Some(10));
        table.insert(Uuid::now_v7(), live(Uuid::now_v7(), "b"));
        table.insert(Uuid::now_v7(), live(Uuid::now_v7(), "b"));
        assert_eq!(
            table.free_slots_for("a"),
            0,
            "the instance limit bounds a plugin's own"
        );
        table.finish(job, run);
        assert_eq!(table.live_count_of("a"), 0);
        assert_eq!(table.free_slots_for("a"), 1);
        table.set_plugin_cap("a", None);
        assert_eq!(table.plugin_cap("a"), None);
    }

    #[test]
    fn a_manual_run_of_a_plugin_at_its_limit_lets_other_plugins_go_first() {
        let mut table: RunTable<(), &str> = RunTable::new(4);
        table.set_plugin_cap("a", Some(1));
        table.insert(Uuid::now_v7(), live(Uuid::now_v7(), "a"));
        table.push_manual(Uuid::now_v7(), Uuid::now_v7(), "a".to_owned(), "a waits");
        table.push_manual(Uuid::now_v7(), Uuid::now_v7(), "b".to_owned(), "b goes");
        assert_eq!(table.pop_startable(|_| true), Some("b goes"));
        assert_eq!(
            table.pop_startable(|_| true),
            None,
            "a is still at its limit"
        );
        assert_eq!(table.queued_count(), 1);
    }

    #[test]
    fn tracked_runs_are_the_live_and_the_queued_ones() {
        let mut table: RunTable<(), ()> = RunTable::new(4);
        let (live_run, queued_run) = (Uuid::now_v7(), Uuid::now_v7());
        table.insert(Uuid::now_v7(), live(live_run, "p"));
        table.push_manual(Uuid::now_v7(), queued_run, "p".to_owned(), ());
        let mut tracked = table.tracked_run_ids();
        tracked.sort();
        let mut expected = vec![live_run, queued_run];
        expected.sort();
        assert_eq!(tracked, expected);
    }
}
