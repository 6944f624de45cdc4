//! `ClaimDueJobs`: due jobs oldest first up to the free slots, a compare-and-set on the pointer,
//! one run per fired slot (running when due, queued when claimed ahead), overlap and misfire
//! skips, and no double claim across stores.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeDelta;
use common::{TestDb, at, job_row, run_row};
use entity::prelude::*;
use plugin_jobs::store::{ClaimDueJobs, ClaimOutcome, SetJobBlock, SkipReason};

fn claim(now: &str, limit: u64, plugins: &[&str]) -> ClaimDueJobs {
    ClaimDueJobs {
        now: at(now),
        limit,
        plugin_ids: plugins.iter().map(|p| (*p).to_owned()).collect(),
        plugin_limits: Default::default(),
        instance_id: "instance-a".to_owned(),
        misfire_grace: Duration::from_secs(60),
        lookahead: Duration::ZERO,
    }
}

async fn send(
    store: &actix::Addr<plugin_jobs::store::StoreActor>,
    msg: ClaimDueJobs,
) -> ClaimOutcome {
    store.send(msg).await.expect("mailbox").expect("claim")
}

#[actix_rt::test]
async fn a_due_job_gets_a_running_schedule_run_and_its_pointer_moves() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "quarter")).await;
    let outcome = send(&store, claim("10:30", 10, &["alpha"])).await;
    assert_eq!(outcome.claimed.len(), 1);
    assert!(outcome.skipped.is_empty());
    let run = t.run(outcome.claimed[0].run.id).await;
    assert_eq!(run.job_id, job.id);
    assert_eq!(run.trigger, RunTrigger::Schedule);
    assert_eq!(
        run.status,
        RunStatus::Running,
        "a due run is started by its claim"
    );
    assert_eq!(run.started_at, Some(at("10:30")));
    assert_eq!(run.scheduled_for, at("10:30"), "a slot equal to now is due");
    assert_eq!(run.instance_id.as_deref(), Some("instance-a"));
    let job = t.job(job.id).await;
    assert_eq!(job.next_run_at, Some(at("10:45")));
    assert_eq!(job.last_run_at, Some(at("10:30")));
    assert_eq!(outcome.claimed[0].job.next_run_at, Some(at("10:45")));
}

#[actix_rt::test]
async fn a_slot_claimed_ahead_gets_a_queued_run_that_has_not_started() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "quarter")).await;
    let mut ahead = claim("2024-01-15T10:29:59.800Z", 10, &["alpha"]);
    ahead.lookahead = Duration::from_millis(250);
    let outcome = send(&store, ahead).await;
    assert_eq!(outcome.claimed.len(), 1);
    let run = t.run(outcome.claimed[0].run.id).await;
    assert_eq!(run.job_id, job.id);
    assert_eq!(run.scheduled_for, at("10:30"));
    assert_eq!(run.status, RunStatus::Queued, "its slot is 200 ms away");
    assert_eq!(run.started_at, None);
}

#[actix_rt::test]
async fn pointers_move_to_the_next_slot_of_each_schedule() {
    let t = TestDb::new().await;
    let store = t.store();
    let cases = [
        (
            "*/15 * * * *",
            "2025-01-15T10:30:00Z",
            "2025-01-15T10:45:00Z",
        ),
        ("0 * * * *", "2025-01-15T10:00:00Z", "2025-01-15T11:00:00Z"),
        ("0 9 * * *", "2025-01-15T09:00:00Z", "2025-01-16T09:00:00Z"),
        (
            "0 9 * * 1-5",
            "2025-01-15T10:30:00Z",
            "2025-01-16T09:00:00Z",
        ),
    ];
    for (i, (schedule, now, next)) in cases.into_iter().enumerate() {
        let mut job = job_row("alpha", &format!("job-{i}"));
        job.schedule = schedule.to_owned();
        job.next_run_at = Some(at(now));
        let job = t.insert_job(job).await;
        let outcome = send(&store, claim(now, 10, &["alpha"])).await;
        assert_eq!(outcome.claimed.len(), 1, "{schedule}");
        assert_eq!(
            t.job(job.id).await.next_run_at,
            Some(at(next)),
            "{schedule} at {now}"
        );
    }
}

#[actix_rt::test]
async fn a_claim_of_jobs_with_as_many_schedules_moves_each_pointer_in_a_few_statements() {
    let t = TestDb::new().await;
    let (store, updates) = t.recording_store("UPDATE \"plugin_jobs\"");
    // 120 daily schedules, each at a minute of its own; the odd jobs' slot is past their
    // misfire grace and skipped, so their pointer moves without a run.
    let mut jobs = Vec::new();
    for n in 0..120 {
        let mut job = job_row("alpha", &format!("job-{n}"));
        job.schedule = format!("{} {} * * *", n % 60, 11 + n / 60);
        if n % 2 == 1 {
            job.misfire = MisfirePolicy::Skip;
            job.next_run_at = Some(at("10:00"));
        }
        jobs.push(t.insert_job(job).await);
    }
    let outcome = send(&store, claim("10:30", 200, &["alpha"])).await;
    assert_eq!(outcome.claimed.len(), 60);
    assert_eq!(outcome.skipped.len(), 60);
    for (n, job) in jobs.iter().enumerate() {
        let stored = t.job(job.id).await;
        let next = format!("2024-01-15T{:02}:{:02}:00Z", 11 + n / 60, n % 60);
        assert_eq!(stored.next_run_at, Some(at(&next)), "job {n}");
        let last = (n % 2 == 0).then(|| at("10:30"));
        assert_eq!(stored.last_run_at, last, "job {n}");
    }
    let updates = updates.lock().expect("statements").len();
    assert!(
        (1..=2).contains(&updates),
        "{updates} updates of jobs for 120 pointer moves"
    );
}

#[actix_rt::test]
async fn nothing_is_claimed_when_nothing_is_due() {
    let t = TestDb::new().await;
    let store = t.store();
    t.insert_job(job_row("alpha", "later")).await;
    let mut manual = job_row("alpha", "manual");
    manual.schedule = String::new();
    manual.next_run_at = None;
    t.insert_job(manual).await;
    let outcome = send(&store, claim("10:29", 10, &["alpha"])).await;
    assert_eq!(outcome, ClaimOutcome::default());
    assert!(t.all_runs().await.is_empty());
}

#[actix_rt::test]
async fn the_limit_takes_the_oldest_slots_first() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut ids = Vec::new();
    for (key, due) in [("c", "10:20"), ("a", "10:00"), ("b", "10:10")] {
        let mut job = job_row("alpha", key);
        job.next_run_at = Some(at(due));
        ids.push((key, t.insert_job(job).await.id));
    }
    let first = send(&store, claim("10:30", 2, &["alpha"])).await;
    let keys: Vec<_> = first
        .claimed
        .iter()
        .map(|c| c.job.job_key.as_str())
        .collect();
    assert_eq!(keys, ["a", "b"]);
    let second = send(&store, claim("10:30", 2, &["alpha"])).await;
    let keys: Vec<_> = second
        .claimed
        .iter()
        .map(|c| c.job.job_key.as_str())
        .collect();
    assert_eq!(keys, ["c"]);
    assert_eq!(
        send(&store, claim("10:30", 0, &["alpha"])).await,
        ClaimOutcome::default()
    );
}

#[actix_rt::test]
async fn paused_jobs_other_plugins_and_blocked_jobs_are_not_claimed() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut paused = job_row("alpha", "paused");
    paused.status = JobStatus::Paused;
    t.insert_job(paused).await;
    t.insert_job(job_row("beta", "not-running")).await;
    let blocked = t.insert_job(job_row("alpha", "blocked")).await;
    store
        .send(SetJobBlock {
            job_id: blocked.id,
            blocked_until: Some(at("10:40")),
            now: at("10:29"),
        })
        .await
        .expect("mailbox")
        .expect("block");
    assert_eq!(
        send(&store, claim("10:30", 10, &["alpha"])).await,
        ClaimOutcome::default()
    );
    assert_eq!(
        send(&store, claim("10:30", 10, &[])).await,
        ClaimOutcome::default()
    );
    let after_block = send(&store, claim("10:41", 10, &["alpha"])).await;
    assert_eq!(after_block.claimed.len(), 1);
    assert_eq!(after_block.claimed[0].job.id, blocked.id);
    assert_eq!(after_block.claimed[0].run.scheduled_for, at("10:30"));
}

#[actix_rt::test]
async fn a_slot_that_comes_due_while_the_previous_run_is_live_is_skipped() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "slow")).await;
    t.insert_run(PluginJobRunModel {
        status: RunStatus::Running,
        ..run_row(&job)
    })
    .await
    .expect("insert");
    let outcome = send(&store, claim("10:30", 10, &["alpha"])).await;
    assert!(outcome.claimed.is_empty());
    assert_eq!(outcome.skipped.len(), 1);
    assert_eq!(outcome.skipped[0].reason, SkipReason::Overlap);
    assert_eq!(outcome.skipped[0].slot, at("10:30"));
    assert_eq!(outcome.skipped[0].count, 1);
    let job = t.job(job.id).await;
    assert_eq!(
        job.next_run_at,
        Some(at("10:45")),
        "the pointer moves past the skipped slot"
    );
    assert_eq!(job.last_run_at, None);
    assert_eq!(t.all_runs().await.len(), 1);
}

#[actix_rt::test]
async fn a_missed_slot_fires_once_or_is_skipped_by_the_misfire_policy() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut once = job_row("alpha", "once");
    once.next_run_at = Some(at("08:15"));
    let once = t.insert_job(once).await;
    let mut skip = job_row("alpha", "skip");
    skip.next_run_at = Some(at("08:15"));
    skip.misfire = MisfirePolicy::Skip;
    let skip = t.insert_job(skip).await;
    let mut recent = job_row("alpha", "recent");
    recent.next_run_at = Some(at("10:30"));
    recent.misfire = MisfirePolicy::Skip;
    let recent = t.insert_job(recent).await;

    let outcome = send(&store, claim("2024-01-15T10:30:40Z", 10, &["alpha"])).await;
    let fired: HashSet<_> = outcome.claimed.iter().map(|c| c.job.id).collect();
    assert_eq!(
        fired,
        HashSet::from([once.id, recent.id]),
        "within the grace a skip job still fires"
    );
    // Every slot from 08:15 to 10:30 passed: `skip` skipped them all; `once` fires 08:15 once
    // and the nine slots after it pass without a run, recorded as one record each.
    let mut skipped: Vec<_> = outcome
        .skipped
        .iter()
        .map(|s| (s.job_id, s.slot, s.reason, s.count))
        .collect();
    skipped.sort_by_key(|s| s.1);
    let mut expected = vec![
        (skip.id, at("08:15"), SkipReason::Misfire, 10),
        (once.id, at("08:30"), SkipReason::Misfire, 9),
    ];
    expected.sort_by_key(|s| s.1);
    assert_eq!(skipped, expected);
    for id in [once.id, skip.id, recent.id] {
        assert_eq!(
            t.job(id).await.next_run_at,
            Some(at("10:45")),
            "one run at most, then the next slot"
        );
    }
    let runs = t.all_runs().await;
    assert_eq!(runs.len(), 2);
    let once_run = runs
        .iter()
        .find(|run| run.job_id == once.id)
        .expect("fired once");
    assert_eq!(once_run.scheduled_for, at("08:15"));
}

#[actix_rt::test]
async fn a_job_whose_stored_schedule_is_invalid_is_failed_not_left_dormant() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut broken = job_row("alpha", "broken");
    broken.schedule = "99 * * * *".to_owned();
    let broken = t.insert_job(broken).await;
    let outcome = send(&store, claim("10:30", 10, &["alpha"])).await;
    assert!(outcome.claimed.is_empty());
    let job = t.job(broken.id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.last_error.is_some_and(|e| e.contains("99")));
}

#[actix_rt::test]
async fn two_stores_claiming_concurrently_never_fire_a_slot_twice() {
    let t = TestDb::new().await;
    let first = t.store();
    let second = t.second_store().await;
    let mut jobs = Vec::new();
    for i in 0..40 {
        let mut job = job_row("alpha", &format!("job-{i:02}"));
        job.schedule = "* * * * * *".to_owned();
        job.next_run_at = Some(at("10:00"));
        jobs.push(t.insert_job(job).await.id);
    }
    // Both stores claim the same seconds, in small batches, at the same time.
    for second_offset in 0..5 {
        let now = at("10:00") + TimeDelta::seconds(second_offset);
        let mut requests = Vec::new();
        for round in 0..6 {
            let store = if round % 2 == 0 { &first } else { &second };
            let mut msg = claim("10:00", 8, &["alpha"]);
            msg.now = now;
            msg.instance_id = format!("instance-{}", round % 2);
            requests.push(store.send(msg));
        }
        for result in futures_util::future::join_all(requests).await {
            let outcome = result.expect("mailbox").expect("claim");
            // Finish what was claimed so the next second's slot is not an overlap.
            for claimed in outcome.claimed {
                first
                    .send(plugin_jobs::store::CompleteRun {
                        run_id: claimed.run.id,
                        status: RunStatus::Succeeded,
                        error: None,
                        logs: None,
                        block_until: None,
                        now,
                    })
                    .await
                    .expect("mailbox")
                    .expect("complete");
            }
        }
    }
    let runs = t.all_runs().await;
    let slots: HashSet<_> = runs
        .iter()
        .map(|run| (run.job_id, run.scheduled_for))
        .collect();
    assert_eq!(slots.len(), runs.len(), "no slot has two runs");
    // Every job was claimed at least for its first slot; 6 claims of 8 cover 40 jobs each second
    // only partly, so only uniqueness and the per-job order are guaranteed here.
    for job in jobs {
        let mut mine: Vec<_> = runs
            .iter()
            .filter(|run| run.job_id == job)
            .map(|run| run.scheduled_for)
            .collect();
        mine.sort();
        mine.dedup();
        assert!(!mine.is_empty(), "every job fired at least once");
    }
}

#[actix_rt::test]
async fn a_slot_inside_the_lookahead_is_claimed_early_unless_its_job_is_still_running() {
    let t = TestDb::new().await;
    let store = t.store();
    let idle = t.insert_job(job_row("alpha", "idle")).await;
    let busy = t.insert_job(job_row("alpha", "busy")).await;
    let mut live = run_row(&busy);
    live.status = RunStatus::Running;
    t.insert_run(live).await.expect("live run");
    let mut far = job_row("alpha", "far");
    far.next_run_at = Some(at("10:31"));
    let far = t.insert_job(far).await;

    let early = ClaimDueJobs {
        lookahead: Duration::from_millis(100),
        ..claim("2024-01-15T10:29:59.950Z", 10, &["alpha"])
    };
    let outcome = send(&store, early).await;
    let claimed: Vec<_> = outcome.claimed.iter().map(|c| c.job.id).collect();
    assert_eq!(
        claimed,
        [idle.id],
        "only the idle job's 10:30 slot is inside the lookahead"
    );
    assert!(
        outcome.skipped.is_empty(),
        "the busy job's slot is not decided before it is due"
    );
    let run = t.run(outcome.claimed[0].run.id).await;
    assert_eq!(run.scheduled_for, at("10:30"));
    assert_eq!(
        t.job(idle.id).await.next_run_at,
        Some(at("10:45")),
        "next slot after the claimed one"
    );
    assert_eq!(
        t.job(busy.id).await.next_run_at,
        Some(at("10:30")),
        "left for when it is due"
    );
    assert_eq!(t.job(far.id).await.next_run_at, Some(at("10:31")));

    // Once due, the busy job's slot is skipped as an overlap.
    let due = send(&store, claim("10:30", 10, &["alpha"])).await;
    assert!(due.claimed.is_empty());
    assert_eq!(due.skipped.len(), 1);
    assert_eq!(due.skipped[0].job_id, busy.id);
}

#[actix_rt::test]
async fn a_claim_of_ten_thousand_due_jobs_stays_under_the_bind_limits() {
    let t = TestDb::new().await;
    let store = t.store();
    // 10,000 due jobs, inserted in chunks that themselves stay under SQLite's bind limit.
    let jobs: Vec<PluginJobModel> = (0..10_000)
        .map(|i| job_row("alpha", &format!("job-{i:05}")))
        .collect();
    t.insert_jobs(&jobs).await;
    let outcome = send(&store, claim("10:30", 10_000, &["alpha"])).await;
    assert_eq!(outcome.claimed.len(), 10_000);
    assert!(outcome.skipped.is_empty());
    let runs = t.all_runs().await;
    assert_eq!(runs.len(), 10_000);
    let distinct_jobs: HashSet<_> = runs.iter().map(|run| run.job_id).collect();
    assert_eq!(distinct_jobs.len(), 10_000, "one run per job");
    // Every start, heartbeat and outcome of all of them also goes through in chunks.
    let ids: Vec<_> = runs.iter().map(|run| run.id).collect();
    let beat = store
        .send(plugin_jobs::store::Heartbeat {
            run_ids: ids.clone(),
            now: at("10:30"),
        })
        .await
        .expect("mailbox")
        .expect("heartbeat");
    assert_eq!(beat, 10_000);
    let marks = futures_util::future::join_all(ids.iter().map(|id| {
        store.send(plugin_jobs::store::MarkRunning {
            run_id: *id,
            now: at("10:30"),
        })
    }))
    .await;
    assert!(marks.into_iter().all(|mark| matches!(mark, Ok(Ok(true)))));
    let again = send(&store, claim("10:45", 10_000, &["alpha"])).await;
    assert_eq!(again.claimed.len(), 0);
    assert_eq!(
        again.skipped.len(),
        10_000,
        "every slot overlaps a live run"
    );
}

#[actix_rt::test]
async fn a_due_job_whose_row_another_transaction_holds_is_reported_contended_and_claimed_after() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "quarter")).await;
    if !t.is_postgres() {
        // One writer at a time: a SQLite claim never skips a row.
        let outcome = send(&store, claim("10:30", 10, &["alpha"])).await;
        assert_eq!(outcome.claimed.len(), 1);
        assert!(!outcome.contended);
        return;
    }

    // Another transaction holds the due job's row, as a batch of outcomes stamping its
    // `last_success_at` does until it commits.
    let holder = t.hold_job_row(job.id).await;
    let held = send(&store, claim("10:30", 10, &["alpha"])).await;
    assert!(held.claimed.is_empty(), "the held row is skipped");
    assert!(held.contended, "the claim says a due job was left out");
    assert_eq!(t.job(job.id).await.next_run_at, Some(at("10:30")));

    holder.release().await;
    let after = send(&store, claim("2024-01-15T10:30:00.050Z", 10, &["alpha"])).await;
    assert_eq!(after.claimed.len(), 1, "claimed once the row is free");
    assert!(!after.contended);
    let idle = send(&store, claim("2024-01-15T10:30:00.100Z", 10, &["alpha"])).await;
    assert!(
        idle.claimed.is_empty() && !idle.contended,
        "nothing due, nothing held"
    );
}
