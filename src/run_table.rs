//! The run table of one instance: which job has a live run (and whether its outcome is already
//! recorded while its worker still holds the job), the manual runs waiting for a free slot, and
//! the concurrency budget. Plain data with no actix in it: the `SchedulerActor` owns one, with
//! `H` the handle of each run's actor; tests use any `H`.

use std::collections::{HashMap, VecDeque};

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
        self.live.insert(job_id, run);
    }

    /// The run of `job_id` is over: frees its slot if it is still the live one. Answers whether
    /// it was.
    pub fn finish(&mut self, job_id: Uuid, run_id: Uuid) -> bool {
        let removed = self
            .live
            .get(&job_id)
            .is_some_and(|live| live.run_id == run_id);
        if removed {
            self.live.remove(&job_id);
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

    /// The oldest queued manual run, when a slot is free for it.
    pub fn pop_startable(&mut self) -> Option<Q> {
        if self.free_slots() == 0 {
            return None;
        }
        self.queued.pop_front().map(|(.., run)| run)
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
    fn manual_runs_wait_first_in_first_out_for_a_free_slot() {
        let mut table: RunTable<(), &str> = RunTable::new(1);
        let busy = Uuid::now_v7();
        let busy_run = Uuid::now_v7();
        table.insert(busy, live(busy_run, "p"));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        table.push_manual(a, Uuid::now_v7(), "p".to_owned(), "first");
        table.push_manual(b, Uuid::now_v7(), "q".to_owned(), "second");
        assert!(table.holds(a) && table.holds(b));
        assert_eq!(table.pop_startable(), None, "no free slot yet");
        table.finish(busy, busy_run);
        assert_eq!(table.pop_startable(), Some("first"));
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
