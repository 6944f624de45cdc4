//! Backfill on a real database with a manual clock: the slots of `[from, to)` without a run are
//! replayed with `trigger: backfill`, oldest first and one at a time; a slot that already ran is
//! never replayed; the request is bounded and checked; it can be cancelled; and two instances
//! passing at once replay each slot exactly once.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Harness, TestDb, at, wait_until};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::retry::{RetryPass, RetryPassReport};
use plugin_jobs::store::{BackfillRequested, JobDeclaration, JobRef, PruneRuns};
use plugin_jobs::worker::InProcessWorkers;
use plugin_jobs::{Error, PluginJobs, PluginJobsHandle};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

const PLUGIN: &str = "billing";

/// Records the slot of every call the `report` job gets.
fn recording(workers: &InProcessWorkers, slots: &Arc<Mutex<Vec<String>>>) {
    let slots = Arc::clone(slots);
    workers.register(PLUGIN, "report", move |ctx| {
        slots.lock().expect("slots").push(ctx.scheduled_at.clone());
        async { Ok(()) }
    });
}

async fn pass(jobs: &PluginJobsHandle) -> RetryPassReport {
    jobs.retries
        .send(RetryPass)
        .await
        .expect("actor")
        .expect("pass")
}

async fn backfill_runs(t: &TestDb) -> Vec<PluginJobRunModel> {
    PluginJobRun::find()
        .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Backfill))
        .order_by_asc(PluginJobRunColumn::CreatedAt)
        .order_by_asc(PluginJobRunColumn::ScheduledFor)
        .all(&t.db)
        .await
        .expect("runs")
}

/// Passes until `expected` backfill runs have finished (each pass starts at most one run of the
/// job: the next slot waits while a run is live), then checks nothing is left.
async fn drain(h: &Harness, expected: usize) {
    wait_until(
        "the backfill runs finished",
        Duration::from_secs(20),
        || async {
            let report = pass(&h.jobs).await;
            assert!(report.backfills_started <= 1, "{report:?}");
            let runs = backfill_runs(&h.t).await;
            runs.len() == expected && runs.iter().all(|run| !run.status.is_live())
        },
    )
    .await;
    assert_eq!(pass(&h.jobs).await, RetryPassReport::default());
}

/// Registers the every-15-minutes `report` job; answers its id.
async fn register_report(h: &Harness) -> uuid::Uuid {
    h.jobs
        .register(PLUGIN, vec![JobDeclaration::new("report", "*/15 * * * *")])
        .await
        .expect("register")[0]
        .id
}

async fn harness() -> (Harness, Arc<Mutex<Vec<String>>>, uuid::Uuid) {
    let h = Harness::new(SchedulerConfig::default()).await;
    let slots = Arc::new(Mutex::new(Vec::new()));
    recording(&h.workers.inner, &slots);
    let job = register_report(&h).await;
    (h, slots, job)
}

#[actix_rt::test]
async fn the_slots_without_a_run_are_replayed_oldest_first_one_at_a_time() {
    let (h, slots, job) = harness().await;
    // The 10:15 slot ran on schedule.
    h.clock.set(at("10:15"));
    h.tick().await;
    h.wait_idle().await;
    h.clock.set(at("12:00"));

    let requested = h
        .jobs
        .backfill(JobRef::Id(job), at("10:00"), at("11:00"))
        .await
        .expect("backfill");
    assert_eq!(
        requested.queued,
        [
            "2024-01-15T10:00:00.000Z",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:45:00.000Z"
        ]
    );
    assert_eq!(requested.already_covered, 1, "10:15 ran");
    drain(&h, 3).await;

    let runs = backfill_runs(&h.t).await;
    let replayed: Vec<_> = runs.iter().map(|run| run.scheduled_for).collect();
    assert_eq!(replayed, [at("10:00"), at("10:30"), at("10:45")]);
    assert!(runs.iter().all(|run| run.status == RunStatus::Succeeded));
    // No two runs of the job were live together.
    for pair in runs.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
    }
    assert_eq!(
        *slots.lock().expect("slots"),
        [
            "2024-01-15T10:15:00.000Z",
            "2024-01-15T10:00:00.000Z",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:45:00.000Z"
        ]
    );

    // Lateness is the wait since the backfill asked for the slots (none: the clock stands
    // still), not the hours since the slots themselves.
    let metrics = h.jobs.metrics().await.expect("metrics");
    let sum = r#"plugin_jobs_run_start_lateness_seconds_sum{plugin="billing",job="report",trigger="backfill"} 0.0"#;
    assert!(metrics.lines().any(|line| line == sum), "{metrics}");

    // Asking again replays nothing: every slot has its run.
    let again = h
        .jobs
        .backfill(JobRef::Id(job), at("10:00"), at("11:00"))
        .await
        .expect("backfill");
    assert!(again.queued.is_empty(), "{again:?}");
    assert_eq!(again.already_covered, 4);
}

#[actix_rt::test]
async fn a_request_is_bounded_and_checked_and_each_refusal_says_why() {
    let (h, _slots, job) = harness().await;
    h.clock.set(at("2024-03-01T00:00:00Z"));
    let manual = h
        .jobs
        .register(
            PLUGIN,
            vec![
                JobDeclaration::new("report", "*/15 * * * *"),
                JobDeclaration::new("adhoc", ""),
            ],
        )
        .await
        .expect("register")
        .into_iter()
        .find(|job| job.job_key == "adhoc")
        .expect("adhoc")
        .id;
    let cases = [
        (
            job,
            at("10:00"),
            at("2024-01-30T00:00:00Z"),
            "more than 1000 slots",
        ),
        (job, at("11:00"), at("10:00"), "must be before"),
        (
            job,
            at("10:00"),
            at("2024-03-02T00:00:00Z"),
            "in the future",
        ),
        (manual, at("10:00"), at("11:00"), "has no schedule"),
    ];
    for (job_id, from, to, why) in cases {
        let err = h
            .jobs
            .backfill(JobRef::Id(job_id), from, to)
            .await
            .expect_err(why);
        assert!(matches!(err, Error::InvalidInput(_)), "{why}: {err}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    assert!(backfill_runs(&h.t).await.is_empty());
}

/// At 12:00, asks for the backfill of the job's slots from 10:00 to 11:00.
async fn backfill_ten_to_eleven(h: &Harness, job: uuid::Uuid) -> BackfillRequested {
    h.clock.set(at("12:00"));
    h.jobs
        .backfill(JobRef::Id(job), at("10:00"), at("11:00"))
        .await
        .expect("backfill")
}

#[actix_rt::test]
async fn a_backfill_can_be_cancelled_before_its_slots_start() {
    let (h, _slots, job) = harness().await;
    assert_eq!(backfill_ten_to_eleven(&h, job).await.queued.len(), 4);
    assert_eq!(pass(&h.jobs).await.backfills_started, 1);
    assert_eq!(
        h.jobs
            .cancel_backfill(JobRef::Id(job))
            .await
            .expect("cancel"),
        3
    );
    h.wait_idle().await;
    assert_eq!(pass(&h.jobs).await, RetryPassReport::default());
    assert_eq!(backfill_runs(&h.t).await.len(), 1);
}

#[actix_rt::test]
async fn pausing_the_job_cancels_its_whole_backfill_at_once_and_a_new_request_brings_it_back() {
    let (h, _slots, job) = harness().await;
    assert_eq!(backfill_ten_to_eleven(&h, job).await.queued.len(), 4);
    h.jobs.pause(JobRef::Id(job)).await.expect("pause");
    let statuses: Vec<BackfillStatus> = Backfill::find()
        .all(&h.t.db)
        .await
        .expect("backfills")
        .into_iter()
        .map(|row| row.status)
        .collect();
    assert_eq!(statuses, [BackfillStatus::Cancelled; 4], "all at once");
    assert_eq!(
        h.jobs
            .cancel_backfill(JobRef::Id(job))
            .await
            .expect("cancel"),
        0,
        "nothing is left pending"
    );
    assert_eq!(pass(&h.jobs).await, RetryPassReport::default());

    h.jobs.resume(JobRef::Id(job)).await.expect("resume");
    let again = h
        .jobs
        .backfill(JobRef::Id(job), at("10:00"), at("11:00"))
        .await
        .expect("backfill");
    assert_eq!(again.queued.len(), 4, "{again:?}");
    drain(&h, 4).await;
}

fn instance(
    db: sea_orm::DatabaseConnection,
    clock: &ManualClock,
    slots: &Arc<Mutex<Vec<String>>>,
) -> PluginJobsHandle {
    let workers = InProcessWorkers::new();
    recording(&workers, slots);
    PluginJobs::builder(db)
        .workers(workers)
        .clock(clock.clone())
        .manual_ticks()
        .start()
        .expect("start")
}

#[actix_rt::test]
async fn two_instances_replay_each_slot_exactly_once() {
    let t = TestDb::new().await;
    let clock = ManualClock::new(at("10:00"));
    let slots = Arc::new(Mutex::new(Vec::new()));
    let a = instance(t.db.clone(), &clock, &slots);
    let b = instance(
        plugin_jobs::db::connect(&t.url)
            .await
            .expect("connect again"),
        &clock,
        &slots,
    );
    let mut job = None;
    for handle in [&a, &b] {
        job = Some(
            handle
                .register(PLUGIN, vec![JobDeclaration::new("report", "*/15 * * * *")])
                .await
                .expect("register")[0]
                .id,
        );
    }
    let job = job.expect("job");
    clock.set(at("13:00"));
    a.backfill(JobRef::Id(job), at("10:00"), at("12:00"))
        .await
        .expect("backfill");
    wait_until("eight slots replayed", Duration::from_secs(30), || async {
        let (from_a, from_b) = futures_util::join!(pass(&a), pass(&b));
        let _ = (from_a, from_b);
        let runs = backfill_runs(&t).await;
        runs.len() == 8 && runs.iter().all(|run| !run.status.is_live())
    })
    .await;
    let mut replayed = slots.lock().expect("slots").clone();
    replayed.sort();
    let mut expected: Vec<String> = (0..8)
        .map(|n| format!("2024-01-15T{:02}:{:02}:00.000Z", 10 + n / 4, (n % 4) * 15))
        .collect();
    expected.sort();
    assert_eq!(replayed, expected, "each slot once");
    // Both instances keep passing: nothing more starts.
    assert_eq!(
        pass(&a).await.backfills_started + pass(&b).await.backfills_started,
        0
    );
}

#[actix_rt::test]
async fn a_slot_whose_run_was_pruned_is_never_replayed() {
    let (h, slots, job) = harness().await;
    // The 10:15, 10:30 and 10:45 slots run on schedule; then the history keeps one run per job.
    for slot in ["10:15", "10:30", "10:45"] {
        h.clock.set(at(slot));
        h.tick().await;
        h.wait_idle().await;
    }
    let pruned = h
        .jobs
        .store
        .send(PruneRuns {
            now: at("12:00"),
            keep_per_job: 1,
            retention: Duration::from_secs(30 * 86_400),
            pass_budget: PruneRuns::PASS_BUDGET,
        })
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(pruned, 2);
    assert_eq!(h.t.job(job).await.pruned_through, Some(at("10:30")));

    // 10:15 and 10:30 ran and their runs are gone, so they are not replayed. 10:00 never ran,
    // but nothing tells it apart from them any more: only the slots after the newest pruned
    // one are replayed, here the 11:00 to 11:45 ones that never ran (no tick after 10:45).
    h.clock.set(at("12:00"));
    let requested = h
        .jobs
        .backfill(JobRef::Id(job), at("10:00"), at("12:00"))
        .await
        .expect("backfill");
    assert_eq!(
        requested.queued,
        [
            "2024-01-15T11:00:00.000Z",
            "2024-01-15T11:15:00.000Z",
            "2024-01-15T11:30:00.000Z",
            "2024-01-15T11:45:00.000Z"
        ]
    );
    assert_eq!(requested.already_covered, 4);
    assert_eq!(
        *slots.lock().expect("slots"),
        [
            "2024-01-15T10:15:00.000Z",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:45:00.000Z"
        ]
    );
}

#[actix_rt::test]
async fn the_jobs_own_slot_waits_for_a_backfilled_run_and_goes_before_the_next_one() {
    // The backfill replays 09:00 and 09:15 of an every-15-minutes job; 09:00's run is still
    // going when 10:15 comes due. 10:15 is the job's own slot: it waits for that run (it is
    // not skipped as an overlap) and runs before the backfill's next slot.
    let h = Harness::new(SchedulerConfig::default()).await;
    let gate = common::Gate::default();
    let (held, calls) = (gate.clone(), Arc::new(Mutex::new(Vec::new())));
    let called = Arc::clone(&calls);
    h.workers.inner.register(PLUGIN, "report", move |ctx| {
        let call = format!("{} {}", ctx.trigger, &ctx.scheduled_at[11..16]);
        called.lock().expect("calls").push(call);
        let wait =
            (ctx.trigger == "backfill" && ctx.scheduled_at.contains("T09:00")).then(|| held.wait());
        async move {
            if let Some(wait) = wait {
                wait.await;
            }
            Ok(())
        }
    });
    let job = register_report(&h).await;
    h.clock.set(at("10:10"));
    h.jobs
        .backfill(JobRef::Id(job), at("09:00"), at("09:30"))
        .await
        .expect("backfill");
    assert_eq!(pass(&h.jobs).await.backfills_started, 1);
    let first = backfill_runs(&h.t).await.remove(0);
    h.wait_for_run(first.id, RunStatus::Running).await;

    h.clock.set(at("10:15"));
    h.tick().await;
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(
        d.waiting_slots.len(),
        1,
        "10:15 waits for the backfilled run"
    );
    assert_eq!(d.skipped_slots, 0);

    gate.open();
    h.wait_for_run(first.id, RunStatus::Succeeded).await;
    let scheduled = || async {
        PluginJobRun::find()
            .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Schedule))
            .all(&h.t.db)
            .await
            .expect("runs")
    };
    wait_until("10:15 runs", Duration::from_secs(10), || async {
        scheduled()
            .await
            .iter()
            .any(|run| run.status == RunStatus::Succeeded)
    })
    .await;
    drain(&h, 2).await;
    assert_eq!(
        *calls.lock().expect("calls"),
        ["backfill 09:00", "schedule 10:15", "backfill 09:15"]
    );
    assert_eq!(h.jobs.diagnostics().await.expect("d").skipped_slots, 0);
}
