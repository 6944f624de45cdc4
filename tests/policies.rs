//! Scheduling policies with the manual clock, on SQLite and PostgreSQL: a job's own misfire
//! grace, the overlap policies (`queue_one`, `cancel_previous`, also across two instances),
//! jitter, a plugin's own concurrency limit, and fairness between plugins.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use common::{Gate, Harness, TestDb, at, job_row, ok_handler, wait_until};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::scheduler::{PluginOptions, Tick};
use plugin_jobs::store::{ClaimDueJobs, GetNextDueAt, JobDeclaration, JobRef, SkipReason};
use plugin_jobs::worker::{InProcessWorkers, JobContext};
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use sea_orm::EntityTrait;
use uuid::Uuid;

fn config(max: usize) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_runs: max,
        ..SchedulerConfig::default()
    }
}

fn declared(key: &str, schedule: &str, overlap: OverlapPolicy) -> JobDeclaration {
    JobDeclaration {
        overlap,
        ..JobDeclaration::new(key, schedule)
    }
}

async fn runs_of(t: &TestDb, job_id: Uuid) -> Vec<PluginJobRunModel> {
    let mut runs: Vec<_> = t
        .all_runs()
        .await
        .into_iter()
        .filter(|r| r.job_id == job_id)
        .collect();
    runs.sort_by_key(|r| (r.created_at, r.id));
    runs
}

/// Counts the runs a worker is inside right now, and the most it ever was inside at once.
#[derive(Debug, Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

/// Leaves the count when the handler ends or is dropped (a cancelled in-process call).
struct Inside(Arc<AtomicUsize>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// A handler that counts itself in, then waits for `gate`.
    fn handler(
        &self,
        gate: &Gate,
    ) -> impl Fn(JobContext) -> futures_util::future::BoxFuture<'static, Result<(), String>>
    + Send
    + Sync
    + 'static {
        let (counts, gate) = (self.clone(), gate.clone());
        move |_ctx| {
            let (counts, wait) = (counts.clone(), gate.wait());
            Box::pin(async move {
                counts.calls.fetch_add(1, Ordering::SeqCst);
                let inside = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
                counts.most.fetch_max(inside, Ordering::SeqCst);
                let _inside = Inside(Arc::clone(&counts.now));
                wait.await;
                Ok(())
            })
        }
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

async fn live_runs(t: &TestDb, job_id: Uuid) -> usize {
    runs_of(t, job_id)
        .await
        .iter()
        .filter(|run| RunStatus::LIVE.contains(&run.status))
        .count()
}

// Start deadline ------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_jobs_own_misfire_grace_overrides_the_servers() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut strict = job_row("p", "strict");
    strict.misfire = MisfirePolicy::Skip;
    strict.misfire_grace_ms = Some(5_000);
    let strict = t.insert_job(strict).await;
    let mut patient = job_row("p", "patient");
    patient.misfire = MisfirePolicy::Skip;
    patient.misfire_grace_ms = Some(10 * 60_000);
    patient.next_run_at = Some(at("10:25"));
    let patient = t.insert_job(patient).await;
    let mut default = job_row("p", "default");
    default.misfire = MisfirePolicy::Skip;
    default.next_run_at = Some(at("10:25"));
    let default = t.insert_job(default).await;

    // 10:30:10: the strict job's 10:30 slot is 10 s late (its grace is 5 s); the patient job's
    // 10:25 slot is 5 min late (its grace is 10 min); the default job's too (server: 60 s).
    let outcome = store
        .send(ClaimDueJobs {
            now: at("2024-01-15T10:30:10Z"),
            limit: 10,
            plugin_ids: vec!["p".to_owned()],
            plugin_limits: Default::default(),
            instance_id: "a".to_owned(),
            misfire_grace: Duration::from_secs(60),
            lookahead: Duration::ZERO,
        })
        .await
        .expect("mailbox")
        .expect("claim");
    let claimed: Vec<Uuid> = outcome.claimed.iter().map(|c| c.job.id).collect();
    assert_eq!(claimed, [patient.id], "only the patient job's slot fires");
    let mut skipped: Vec<(Uuid, SkipReason)> = outcome
        .skipped
        .iter()
        .map(|s| (s.job_id, s.reason))
        .collect();
    skipped.sort_by_key(|(id, _)| *id);
    // The patient job's one late run stands for its 10:30 slot too, which is recorded.
    let mut expected = vec![
        (strict.id, SkipReason::Misfire),
        (patient.id, SkipReason::Misfire),
        (default.id, SkipReason::Misfire),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(skipped, expected);
}

#[actix_rt::test]
async fn a_declared_misfire_grace_reaches_the_claim() {
    let h = Harness::with_clock(config(10), at("10:20")).await;
    h.workers.inner.register("p", "late", ok_handler);
    let jobs = h
        .jobs
        .register(
            "p",
            vec![JobDeclaration {
                misfire: MisfirePolicy::Skip,
                misfire_grace_ms: Some(1_000),
                ..JobDeclaration::new("late", "*/15 * * * *")
            }],
        )
        .await
        .expect("register");
    assert_eq!(jobs[0].misfire_grace_ms, Some(1_000));
    h.clock.set(at("2024-01-15T10:30:02Z"));
    h.tick().await;
    assert!(
        runs_of(&h.t, jobs[0].id).await.is_empty(),
        "2 s late is a misfire"
    );
    assert_eq!(h.t.job(jobs[0].id).await.next_run_at, Some(at("10:45")));
    assert_eq!(h.jobs.diagnostics().await.expect("d").skipped_slots, 1);
}

// Overlap ---------------------------------------------------------------------------------------

/// An every-minute `queue_one` job (created through the API) whose 10:01 run is held by
/// `gate`, with the 10:02 slot waiting for it. Answers the job and the held run.
async fn a_slot_waiting_behind_a_held_run(h: &Harness, gate: &Gate) -> (Uuid, Uuid) {
    h.workers
        .inner
        .register("p", "slow", InFlight::default().handler(gate));
    h.jobs.register("p", vec![]).await.expect("register");
    let job_id = h
        .jobs
        .create_job("p", declared("slow", "* * * * *", OverlapPolicy::QueueOne))
        .await
        .expect("create")
        .id;
    h.clock.set(at("10:01"));
    h.tick().await;
    let first = runs_of(&h.t, job_id).await.remove(0);
    h.wait_for_run(first.id, RunStatus::Running).await;
    h.clock.set(at("10:02"));
    h.tick().await;
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.waiting_slots.len(), 1, "the 10:02 slot waits");
    (job_id, first.id)
}

#[actix_rt::test]
async fn a_waiting_slot_dropped_by_a_pause_is_recorded_skipped() {
    let (h, gate) = (Harness::new(config(10)).await, Gate::default());
    let (job_id, first) = a_slot_waiting_behind_a_held_run(&h, &gate).await;

    // The pause drops the waiting slot (a resume starts from the next one): it is recorded.
    h.jobs.pause(JobRef::Id(job_id)).await.expect("pause");
    let d = h.jobs.diagnostics().await.expect("d");
    assert!(d.waiting_slots.is_empty());
    assert_eq!(d.skipped_slots, 1, "10:02 passed without a run");
    gate.open();
    h.wait_for_run(first, RunStatus::Succeeded).await;
    assert_eq!(runs_of(&h.t, job_id).await.len(), 1);
}

#[actix_rt::test]
async fn a_waiting_slot_dropped_by_a_new_schedule_is_recorded_skipped() {
    let (h, gate) = (Harness::new(config(10)).await, Gate::default());
    let (job_id, first) = a_slot_waiting_behind_a_held_run(&h, &gate).await;

    // A change that leaves the pointer where it is keeps the slot waiting.
    let payload = serde_json::json!({"payload": {"n": 1}});
    h.jobs
        .update_job(JobRef::Id(job_id), payload)
        .await
        .expect("patch");
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.waiting_slots.len(), 1, "the 10:02 slot still waits");
    assert_eq!(d.skipped_slots, 0);

    // A new schedule moves the pointer to 11:00: the 10:02 slot will not run, and says so.
    let hourly = serde_json::json!({"schedule": "0 * * * *"});
    h.jobs
        .update_job(JobRef::Id(job_id), hourly)
        .await
        .expect("patch");
    let d = h.jobs.diagnostics().await.expect("d");
    assert!(d.waiting_slots.is_empty());
    assert_eq!(d.skipped_slots, 1, "10:02 passed without a run");
    gate.open();
    h.wait_for_run(first, RunStatus::Succeeded).await;
    h.tick().await;
    assert_eq!(runs_of(&h.t, job_id).await.len(), 1);
}

#[actix_rt::test]
async fn a_run_that_ends_after_newer_slots_came_due_starts_the_newest_one() {
    // 10:02 waits behind the 10:01 run; 10:03 comes due with no claim in between to move the
    // wait on. When the run ends, only the newest slot runs: 10:03, and 10:02 is skipped.
    let (h, gate) = (Harness::new(config(10)).await, Gate::default());
    let (job_id, first) = a_slot_waiting_behind_a_held_run(&h, &gate).await;
    h.clock.set(at("10:03") + TimeDelta::seconds(30));
    gate.open();
    h.wait_for_run(first, RunStatus::Succeeded).await;
    wait_until("the next slot starts", Duration::from_secs(10), || async {
        runs_of(&h.t, job_id).await.len() == 2
    })
    .await;
    let next = runs_of(&h.t, job_id).await.remove(1);
    assert_eq!(next.scheduled_for, at("10:03"), "the newest due slot");
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.skipped_slots, 1, "10:02 passed without a run");
    let job = h.t.job(job_id).await;
    assert_eq!(job.last_run_at, Some(at("10:03")));
    assert_eq!(job.next_run_at, Some(at("10:04")));
}

#[actix_rt::test]
async fn queue_one_keeps_the_newest_due_slot_waiting_and_starts_it_when_the_live_run_ends() {
    let h = Harness::new(config(10)).await;
    let (gate, counts) = (Gate::default(), InFlight::default());
    h.workers.inner.register("p", "slow", counts.handler(&gate));
    let jobs = h
        .jobs
        .register(
            "p",
            vec![declared("slow", "* * * * *", OverlapPolicy::QueueOne)],
        )
        .await
        .expect("register");
    let job_id = jobs[0].id;
    h.clock.set(at("10:01"));
    h.tick().await;
    let first = runs_of(&h.t, job_id).await.remove(0);
    h.wait_for_run(first.id, RunStatus::Running).await;

    h.clock.set(at("10:02"));
    h.tick().await;
    assert_eq!(runs_of(&h.t, job_id).await.len(), 1, "the 10:02 slot waits");
    let job = h.t.job(job_id).await;
    assert_eq!(
        job.next_run_at,
        Some(at("10:02")),
        "the pointer stays on it"
    );
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(
        d.waiting_slots.get(&job_id).map(String::as_str),
        Some("2024-01-15T10:02:00.000Z")
    );
    assert_eq!(d.skipped_slots, 0);

    h.clock.set(at("10:03"));
    h.tick().await;
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.skipped_slots, 1, "the older waiting slot is skipped");
    assert_eq!(
        d.waiting_slots.get(&job_id).map(String::as_str),
        Some("2024-01-15T10:03:00.000Z"),
        "only the newest slot waits"
    );
    assert_eq!(h.t.job(job_id).await.next_run_at, Some(at("10:03")));
    assert_eq!(live_runs(&h.t, job_id).await, 1);

    gate.open();
    // No tick: the waiting slot starts as soon as the live run ends.
    wait_until("the waiting slot ran", Duration::from_secs(10), || async {
        let runs = runs_of(&h.t, job_id).await;
        runs.len() == 2 && runs[1].status == RunStatus::Succeeded
    })
    .await;
    let runs = runs_of(&h.t, job_id).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(
        runs[1].scheduled_for,
        at("10:03"),
        "with its own scheduledFor"
    );
    assert_eq!(runs[1].trigger, RunTrigger::Schedule);
    assert!(runs[1].started_at >= runs[0].finished_at);
    assert_eq!(counts.most(), 1, "never two runs of the job at once");
    let job = h.t.job(job_id).await;
    assert_eq!(job.next_run_at, Some(at("10:04")));
    assert_eq!(job.last_run_at, Some(at("10:03")));
    assert!(
        h.jobs
            .diagnostics()
            .await
            .expect("d")
            .waiting_slots
            .is_empty()
    );
}

#[actix_rt::test]
async fn cancel_previous_cancels_the_live_run_naming_the_slot_and_starts_the_slot() {
    let h = Harness::new(config(10)).await;
    let (gate, counts) = (Gate::default(), InFlight::default());
    h.workers.inner.register("p", "slow", counts.handler(&gate));
    let jobs = h
        .jobs
        .register(
            "p",
            vec![declared("slow", "* * * * *", OverlapPolicy::CancelPrevious)],
        )
        .await
        .expect("register");
    let job_id = jobs[0].id;
    h.clock.set(at("10:01"));
    h.tick().await;
    let first = runs_of(&h.t, job_id).await.remove(0);
    h.wait_for_run(first.id, RunStatus::Running).await;

    h.clock.set(at("10:02"));
    h.tick().await;
    let first = h.wait_for_run(first.id, RunStatus::Cancelled).await;
    assert_eq!(
        first.error.as_deref(),
        Some("cancelled: slot 2024-01-15T10:02:00.000Z is due (overlap: cancel_previous)")
    );
    wait_until("the 10:02 slot runs", Duration::from_secs(10), || async {
        let runs = runs_of(&h.t, job_id).await;
        runs.len() == 2 && runs[1].status == RunStatus::Running
    })
    .await;
    let runs = runs_of(&h.t, job_id).await;
    assert_eq!(runs[1].scheduled_for, at("10:02"));
    assert!(runs[1].started_at >= runs[0].finished_at);
    assert_eq!(
        counts.most(),
        1,
        "the cancelled call ended before the next began"
    );
    gate.open();
    h.wait_for_run(runs[1].id, RunStatus::Succeeded).await;
}

#[actix_rt::test]
async fn cancel_previous_preempts_even_when_the_plugin_is_at_its_limit() {
    let h = Harness::new(config(1)).await;
    let (gate, counts) = (Gate::default(), InFlight::default());
    h.workers.inner.register("p", "slow", counts.handler(&gate));
    let jobs = h
        .jobs
        .register_with(
            "p",
            vec![declared("slow", "* * * * *", OverlapPolicy::CancelPrevious)],
            PluginOptions::max_concurrent_runs(1),
        )
        .await
        .expect("register");
    let job_id = jobs[0].id;
    h.clock.set(at("10:01"));
    h.tick().await;
    let first = runs_of(&h.t, job_id).await.remove(0);
    h.wait_for_run(first.id, RunStatus::Running).await;
    assert_eq!(h.jobs.diagnostics().await.expect("d").active_job_count, 1);

    // No slot is free (instance and plugin), yet the due slot cancels the run that holds it.
    h.clock.set(at("10:02"));
    h.tick().await;
    h.wait_for_run(first.id, RunStatus::Cancelled).await;
    wait_until("the 10:02 slot runs", Duration::from_secs(10), || async {
        let runs = runs_of(&h.t, job_id).await;
        runs.len() == 2 && runs[1].status == RunStatus::Running
    })
    .await;
    assert_eq!(runs_of(&h.t, job_id).await[1].scheduled_for, at("10:02"));
    assert_eq!(counts.most(), 1);
    gate.open();
    h.wait_idle().await;
}

/// Workers whose calls do not end when dropped (like a process worker): a cancelled run holds
/// its job until the worker answers.
#[derive(Debug, Clone, Default)]
struct Stubborn(common::RecordingWorkers);

impl plugin_jobs::worker::WorkerManager for Stubborn {
    fn is_running(&self, plugin_id: &str) -> bool {
        self.0.is_running(plugin_id)
    }

    fn run_job(
        &self,
        plugin_id: &str,
        job: plugin_jobs::worker::RunJob,
        timeout: Duration,
    ) -> plugin_jobs::worker::RunCall {
        self.0.run_job(plugin_id, job, timeout)
    }

    fn cancel_job(&self, plugin_id: &str, cancel: plugin_jobs::worker::CancelJob) {
        self.0.cancel_job(plugin_id, cancel);
    }

    fn cancels_on_drop(&self) -> bool {
        false
    }

    fn restart(&self, plugin_id: &str) -> futures_util::future::BoxFuture<'static, ()> {
        self.0.restart(plugin_id)
    }
}

#[actix_rt::test]
async fn cancel_previous_waits_until_the_worker_lets_go_of_the_cancelled_run() {
    let t = TestDb::new().await;
    let clock = ManualClock::new(at("10:00"));
    let workers = Stubborn::default();
    let (gate, counts) = (Gate::default(), InFlight::default());
    workers.0.inner.register("p", "slow", counts.handler(&gate));
    let jobs = PluginJobs::builder(t.db.clone())
        .workers(workers.clone())
        .clock(clock.clone())
        .config(config(10))
        .instance_id("stubborn")
        .manual_ticks()
        .start()
        .expect("start");
    let job_id = jobs
        .register(
            "p",
            vec![declared("slow", "* * * * *", OverlapPolicy::CancelPrevious)],
        )
        .await
        .expect("register")[0]
        .id;
    clock.set(at("10:01"));
    jobs.scheduler.send(Tick).await.expect("tick");
    let first = runs_of(&t, job_id).await.remove(0);
    wait_until("the first run runs", Duration::from_secs(10), || async {
        t.run(first.id).await.status == RunStatus::Running
    })
    .await;

    clock.set(at("10:02"));
    jobs.scheduler.send(Tick).await.expect("tick");
    wait_until(
        "the first run is cancelled",
        Duration::from_secs(10),
        || async { t.run(first.id).await.status == RunStatus::Cancelled },
    )
    .await;
    // The worker still runs it: the job is blocked, and further ticks start nothing.
    for _ in 0..3 {
        jobs.scheduler.send(Tick).await.expect("tick");
    }
    assert_eq!(
        runs_of(&t, job_id).await.len(),
        1,
        "the slot waits for the worker"
    );
    assert!(t.job(job_id).await.blocked_until.is_some());
    let cancels: Vec<_> = workers
        .0
        .inner
        .notifications()
        .into_iter()
        .filter(|(_, method, _)| method == "cancelJob")
        .collect();
    assert_eq!(cancels.len(), 1, "cancelJob went to the worker once");

    // The worker ends the old call: the job is released and the waiting slot starts.
    gate.open();
    wait_until("the 10:02 slot ran", Duration::from_secs(10), || async {
        let runs = runs_of(&t, job_id).await;
        runs.len() == 2 && runs[1].status == RunStatus::Succeeded
    })
    .await;
    let runs = runs_of(&t, job_id).await;
    assert_eq!(runs[1].scheduled_for, at("10:02"));
    assert_eq!(
        counts.most(),
        1,
        "the worker never ran the job twice at once"
    );
    assert_eq!(t.job(job_id).await.blocked_until, None);
}

/// One instance of two on the same database, with its own connection, clock and workers.
async fn instance(
    t: &TestDb,
    clock: &ManualClock,
    id: &str,
    handler: &InFlight,
    gate: &Gate,
) -> PluginJobsHandle {
    let db = plugin_jobs::db::connect(&t.url).await.expect("connect");
    let workers = InProcessWorkers::new();
    workers.register("p", "slow", handler.handler(gate));
    PluginJobs::builder(db)
        .workers(workers)
        .clock(clock.clone())
        .config(config(10))
        .instance_id(id)
        .manual_ticks()
        .start()
        .expect("start")
}

#[actix_rt::test]
async fn two_instances_never_run_a_cancel_previous_job_twice_at_once() {
    let t = TestDb::new().await;
    let clock = ManualClock::new(at("10:00"));
    // One count across both instances: the job's worker calls, wherever they run.
    let (gate, counts) = (Gate::default(), InFlight::default());
    let a = instance(&t, &clock, "instance-a", &counts, &gate).await;
    let b = instance(&t, &clock, "instance-b", &counts, &gate).await;
    let declaration = vec![declared("slow", "* * * * *", OverlapPolicy::CancelPrevious)];
    let job_id = a.register("p", declaration.clone()).await.expect("a")[0].id;
    b.register("p", declaration).await.expect("b");

    for minute in 1..=6 {
        clock.set(at("10:00") + TimeDelta::minutes(minute));
        // Both instances tick at once, then again, as their timers would.
        for _ in 0..2 {
            let (x, y) = futures_util::join!(a.scheduler.send(Tick), b.scheduler.send(Tick));
            x.expect("tick a");
            y.expect("tick b");
            assert!(live_runs(&t, job_id).await <= 1, "never two live runs");
        }
        let slot = at("10:00") + TimeDelta::minutes(minute);
        wait_until(
            &format!("the {slot} slot runs"),
            Duration::from_secs(10),
            || async {
                // The owner of the live run cancels it on its tick; the slot starts on
                // whichever instance claims it first.
                for handle in [&a, &b] {
                    handle.scheduler.send(Tick).await.expect("tick");
                }
                runs_of(&t, job_id)
                    .await
                    .iter()
                    .any(|run| run.scheduled_for == slot && run.status == RunStatus::Running)
            },
        )
        .await;
        assert!(live_runs(&t, job_id).await <= 1, "never two live runs");
    }
    gate.open();
    wait_until("the last run ends", Duration::from_secs(10), || async {
        live_runs(&t, job_id).await == 0
    })
    .await;
    let runs = runs_of(&t, job_id).await;
    let slots: Vec<_> = runs.iter().map(|run| run.scheduled_for).collect();
    let expected: Vec<_> = (1..=6)
        .map(|minute| at("10:00") + TimeDelta::minutes(minute))
        .collect();
    assert_eq!(slots, expected, "every slot ran once, in order");
    for pair in runs.windows(2) {
        assert_eq!(pair[0].status, RunStatus::Cancelled);
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
    }
    assert_eq!(runs[5].status, RunStatus::Succeeded);
    assert_eq!(
        counts.most(),
        1,
        "the worker never ran the job twice at once"
    );
    assert_eq!(counts.calls.load(Ordering::SeqCst), 6);
}

// Jitter ------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_jittered_slot_starts_at_its_offset_and_keeps_its_scheduled_for() {
    let h = Harness::with_clock(config(10), at("10:20")).await;
    h.workers.inner.register("p", "spread", ok_handler);
    let jitter_ms = 10 * 60_000;
    let jobs = h
        .jobs
        .register(
            "p",
            vec![JobDeclaration {
                jitter_ms: Some(jitter_ms),
                ..JobDeclaration::new("spread", "*/15 * * * *")
            }],
        )
        .await
        .expect("register");
    let job_id = jobs[0].id;
    let slot = at("10:30");
    let offset = plugin_jobs::policy::jitter_offset(job_id, slot, Some(jitter_ms as i64));
    assert!(offset < Duration::from_millis(jitter_ms));
    let due = slot + TimeDelta::from_std(offset).expect("offset");

    // The wake is armed for the jittered start, not the slot.
    let next = h
        .jobs
        .store
        .send(GetNextDueAt {
            plugin_ids: vec!["p".to_owned()],
            after: at("10:20"),
        })
        .await
        .expect("mailbox")
        .expect("read");
    assert_eq!(next, Some(due));

    if offset > Duration::from_secs(1) {
        h.clock.set(due - TimeDelta::seconds(1));
        h.tick().await;
        assert!(
            runs_of(&h.t, job_id).await.is_empty(),
            "not before slot + offset"
        );
        assert_eq!(h.t.job(job_id).await.next_run_at, Some(slot));
    }
    h.clock.set(due);
    h.tick().await;
    let run = runs_of(&h.t, job_id).await.remove(0);
    let run = h.wait_for_run(run.id, RunStatus::Succeeded).await;
    assert_eq!(run.scheduled_for, slot, "scheduledFor stays the slot");
    assert_eq!(run.started_at, Some(due));
    assert_eq!(h.t.job(job_id).await.next_run_at, Some(at("10:45")));
    // Lateness counts from slot + offset: this run started on time.
    let metrics = h.jobs.metrics().await.expect("metrics");
    let on_time = metrics
        .lines()
        .find(|line| {
            line.starts_with("plugin_jobs_run_start_lateness_seconds_bucket")
                && line.contains("le=\"0.005\"")
        })
        .unwrap_or_else(|| panic!("a lateness bucket in {metrics}"));
    assert!(on_time.ends_with(" 1"), "{on_time}");
}

/// The wake's reads start their index ranges at their bounds: the slots after now from now on,
/// the passed slots of jittered jobs from the index that holds only those. One `OR` of the two
/// started at the first active job, and on PostgreSQL walked one dead index entry per pointer a
/// claim had moved in the day before (41–56 ms per wake after 100,000 moves).
#[actix_rt::test]
async fn on_postgres_the_wake_reads_start_at_their_bounds_past_the_moved_pointers() {
    use sea_orm::ConnectionTrait;
    let t = TestDb::new().await;
    if !t.is_postgres() {
        return;
    }
    // Dead index entries stay where the pointers were: nothing vacuums them.
    t.never_analyze("plugin_jobs").await;
    let jobs: Vec<PluginJobModel> = (0..5_000)
        .map(|n| PluginJobModel {
            next_run_at: Some(at("09:30")),
            ..job_row("alpha", &format!("job-{n}"))
        })
        .collect();
    t.insert_jobs(&jobs).await;
    let mut jittered = job_row("alpha", "jittered");
    jittered.jitter_ms = Some(600_000);
    jittered.next_run_at = Some(at("09:55"));
    let jittered = t.insert_job(jittered).await;
    // What claims do all day: move the pointers on, leaving their old entries behind.
    t.db.execute_unprepared(
        "UPDATE plugin_jobs SET next_run_at = TIMESTAMPTZ '2024-01-15 11:00:00+00' \
         WHERE jitter_ms IS NULL",
    )
    .await
    .expect("move the pointers");
    t.db.execute_unprepared("ANALYZE plugin_jobs")
        .await
        .expect("analyze");
    let (store, sent) = t.recording_store("SELECT");
    let next = store
        .send(GetNextDueAt {
            plugin_ids: vec!["alpha".to_owned()],
            after: at("10:00"),
        })
        .await
        .expect("mailbox")
        .expect("next due");
    let offset = plugin_jobs::policy::jitter_offset(jittered.id, at("09:55"), Some(600_000));
    let jittered_due = at("09:55") + TimeDelta::milliseconds(offset.as_millis() as i64);
    let expected = if jittered_due > at("10:00") {
        jittered_due.min(at("11:00"))
    } else {
        at("11:00")
    };
    assert_eq!(next, Some(expected));
    let sent = sent.lock().expect("statements").clone();
    assert!(!sent.is_empty());
    for plan in t.plans(sent).await {
        let bounded = plan
            .lines()
            .any(|line| line.contains("Index Cond") && line.contains("next_run_at"));
        assert!(
            bounded,
            "a wake read does not start its range at its bound:\n{plan}"
        );
    }
}

#[actix_rt::test]
async fn the_jitter_offset_is_the_same_on_every_instance_and_after_a_restart() {
    let t = TestDb::new().await;
    let mut job = job_row("p", "spread");
    job.jitter_ms = Some(3_600_000);
    let job = t.insert_job(job).await;
    let ask = |store: actix::Addr<plugin_jobs::store::StoreActor>| async move {
        store
            .send(GetNextDueAt {
                plugin_ids: vec!["p".to_owned()],
                after: at("10:00"),
            })
            .await
            .expect("mailbox")
            .expect("read")
    };
    let first = ask(t.store()).await;
    let second = ask(t.second_store().await).await;
    assert_eq!(first, second);
    let offset = plugin_jobs::policy::jitter_offset(job.id, at("10:30"), Some(3_600_000));
    assert_eq!(
        first,
        Some(at("10:30") + TimeDelta::from_std(offset).expect("offset"))
    );
}

// Per-plugin concurrency and fairness -----------------------------------------------------------------

#[actix_rt::test]
async fn a_plugin_limit_caps_its_runs_under_the_instance_limit() {
    let h = Harness::new(config(10)).await;
    let (gate, counts) = (Gate::default(), InFlight::default());
    for key in ["a1", "a2", "a3"] {
        h.workers.inner.register("a", key, counts.handler(&gate));
    }
    for key in ["b1", "b2"] {
        h.workers.inner.register("b", key, gate.handler());
    }
    let every_minute = |keys: &[&str]| -> Vec<JobDeclaration> {
        keys.iter()
            .map(|key| JobDeclaration::new(*key, "* * * * *"))
            .collect()
    };
    let a = h
        .jobs
        .register_with(
            "a",
            every_minute(&["a1", "a2", "a3"]),
            PluginOptions::max_concurrent_runs(1),
        )
        .await
        .expect("register a");
    h.jobs
        .register("b", every_minute(&["b1", "b2"]))
        .await
        .expect("register b");
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.plugin_limits.get("a"), Some(&1));
    assert_eq!(d.plugin_limits.get("b"), None);

    h.clock.set(at("10:01"));
    h.tick().await;
    let runs = h.t.all_runs().await;
    let of = |plugin: &str| runs.iter().filter(|r| r.plugin_id == plugin).count();
    assert_eq!((of("a"), of("b")), (1, 2), "a is held to its one run");

    // A manual run of another of a's jobs waits for a's slot, not only for the instance's.
    let idle = a
        .iter()
        .find(|job| !runs.iter().any(|run| run.job_id == job.id))
        .expect("an idle job of a");
    let manual = h
        .jobs
        .trigger(JobRef::Id(idle.id), RunTrigger::Manual)
        .await
        .expect("trigger");
    assert_eq!(h.jobs.diagnostics().await.expect("d").queued_manual_runs, 1);
    assert_eq!(h.t.run(manual.run_id).await.status, RunStatus::Queued);
    assert_eq!(counts.most(), 1);

    gate.open();
    h.wait_for_run(manual.run_id, RunStatus::Succeeded).await;
    h.wait_idle().await;
    assert_eq!(counts.most(), 1, "a never ran two jobs at once");
}

#[actix_rt::test]
async fn a_backlog_of_one_plugin_does_not_delay_another_plugins_due_job() {
    let h = Harness::new(config(10)).await;
    let (gate, b_gate) = (Gate::default(), Gate::default());
    h.workers.inner.register("b", "urgent", b_gate.handler());
    h.jobs.register("a", Vec::new()).await.expect("register a");
    let b = h
        .jobs
        .register("b", vec![JobDeclaration::new("urgent", "30 10 * * *")])
        .await
        .expect("register b");
    // Plugin a: 10,000 jobs due a minute before b's, each hanging in its worker.
    let mut rows = Vec::with_capacity(10_000);
    for n in 0..10_000 {
        let key = format!("a-{n}");
        h.workers.inner.register("a", &key, gate.handler());
        let mut job = job_row("a", &key);
        job.next_run_at = Some(at("10:29"));
        rows.push(PluginJobActiveModel::from(job));
    }
    for chunk in rows.chunks(500) {
        PluginJob::insert_many(chunk.to_vec())
            .exec_without_returning(&h.t.db)
            .await
            .expect("insert a's jobs");
    }

    h.clock.set(at("10:30"));
    h.tick().await;
    let runs = h.t.all_runs().await;
    let urgent: Vec<_> = runs.iter().filter(|r| r.job_id == b[0].id).collect();
    assert_eq!(urgent.len(), 1, "b's job is claimed in the first claim");
    assert_eq!(runs.len(), 10, "the instance limit still holds");
    h.wait_for_run(urgent[0].id, RunStatus::Running).await;
    b_gate.open();
    h.wait_for_run(urgent[0].id, RunStatus::Succeeded).await;
    gate.open();
    h.jobs
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[actix_rt::test]
async fn due_jobs_of_several_plugins_are_claimed_round_robin() {
    let t = TestDb::new().await;
    let store = t.store();
    for (plugin, count, minute) in [("a", 6, "10:27"), ("b", 6, "10:28"), ("c", 1, "10:29")] {
        for n in 0..count {
            let mut job = job_row(plugin, &format!("{plugin}-{n}"));
            job.next_run_at = Some(at(minute));
            t.insert_job(job).await;
        }
    }
    let outcome = store
        .send(ClaimDueJobs {
            now: at("10:30"),
            limit: 5,
            plugin_ids: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            plugin_limits: [("b".to_owned(), 1)].into_iter().collect(),
            instance_id: "i".to_owned(),
            misfire_grace: Duration::from_secs(600),
            lookahead: Duration::ZERO,
        })
        .await
        .expect("mailbox")
        .expect("claim");
    let mut per_plugin = std::collections::BTreeMap::new();
    for claimed in &outcome.claimed {
        *per_plugin
            .entry(claimed.job.plugin_id.as_str())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_plugin,
        [("a", 3), ("b", 1), ("c", 1)].into_iter().collect(),
        "every plugin gets a turn; b no more than its limit"
    );
    let unclaimed = PluginJob::find().all(&t.db).await.expect("jobs");
    assert_eq!(
        unclaimed
            .iter()
            .filter(|job| job.next_run_at == Some(at("10:27")))
            .count(),
        3,
        "a's other jobs wait for the next claim"
    );
}

/// Under `queue_one` and `cancel_previous`, slots missed while no instance claimed (a stop, a
/// late claim) with no run live are misfires, as under any other policy: `fire_once` gives the
/// oldest one late run and the others are skipped as `misfire`, not as `overlap` (no run was
/// live to overlap).
#[actix_rt::test]
async fn slots_missed_with_no_run_live_misfire_under_every_overlap_policy() {
    let h = Harness::new(config(10)).await;
    let policies = [
        ("queued", OverlapPolicy::QueueOne),
        ("preempting", OverlapPolicy::CancelPrevious),
        ("skipping", OverlapPolicy::Skip),
    ];
    for (key, _) in policies {
        h.workers.inner.register("p", key, ok_handler);
    }
    let jobs = h
        .jobs
        .register(
            "p",
            policies
                .iter()
                .map(|(key, overlap)| declared(key, "* * * * *", *overlap))
                .collect(),
        )
        .await
        .expect("register");
    // Nothing claims from 10:01 to 10:04: four slots are missed.
    h.clock.set(at("2024-01-15T10:04:10Z"));
    h.tick().await;
    for job in &jobs {
        wait_until("the late run ended", Duration::from_secs(10), || async {
            let runs = runs_of(&h.t, job.id).await;
            runs.len() == 1 && !runs[0].status.is_live()
        })
        .await;
        let runs = runs_of(&h.t, job.id).await;
        assert_eq!(
            runs[0].scheduled_for,
            at("10:01"),
            "{}: the oldest missed slot runs late",
            job.job_key
        );
    }
    let metrics = h.jobs.metrics().await.expect("metrics");
    for (key, _) in policies {
        let line = format!(
            r#"plugin_jobs_slots_skipped_total{{plugin="p",job="{key}",reason="misfire"}} 3"#
        );
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    assert!(!metrics.contains(r#"reason="overlap""#), "{metrics}");
}
