//! The schema's partial unique indexes reject what they must, on SQLite and PostgreSQL alike:
//! at most one live run per job, and each scheduled slot of a job at most once.

mod common;

use chrono::TimeDelta;
use common::{TestDb, at, job_row, run_row};
use entity::prelude::*;
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Statement};

#[actix_rt::test]
async fn a_second_live_run_of_a_job_is_rejected_by_the_database() {
    let t = TestDb::new().await;
    let job = t.insert_job(job_row("alpha", "a")).await;
    t.insert_run(run_row(&job)).await.expect("first live run");
    for status in [RunStatus::Queued, RunStatus::Running] {
        let err = t
            .insert_run(PluginJobRunModel {
                status,
                ..run_row(&job)
            })
            .await
            .expect_err("a second live run violates the index");
        assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
    }
}

#[actix_rt::test]
async fn finished_runs_do_not_count_against_the_live_run_index() {
    let t = TestDb::new().await;
    let job = t.insert_job(job_row("alpha", "a")).await;
    for status in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        t.insert_run(PluginJobRunModel {
            status,
            ..run_row(&job)
        })
        .await
        .expect("finished run");
    }
    t.insert_run(run_row(&job))
        .await
        .expect("one live run beside finished ones");
    let other = t.insert_job(job_row("alpha", "b")).await;
    t.insert_run(run_row(&other))
        .await
        .expect("another job's live run");
}

#[actix_rt::test]
async fn a_scheduled_slot_fires_at_most_once_even_after_its_run_finished() {
    let t = TestDb::new().await;
    let job = t.insert_job(job_row("alpha", "a")).await;
    let slot = at("10:30");
    t.insert_run(PluginJobRunModel {
        trigger: RunTrigger::Schedule,
        status: RunStatus::Succeeded,
        scheduled_for: slot,
        ..run_row(&job)
    })
    .await
    .expect("first run of the slot");
    let err = t
        .insert_run(PluginJobRunModel {
            trigger: RunTrigger::Schedule,
            status: RunStatus::Failed,
            scheduled_for: slot,
            ..run_row(&job)
        })
        .await
        .expect_err("the same slot again violates the index");
    assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
    // Manual runs at the same instant are not slots.
    for trigger in [RunTrigger::Manual, RunTrigger::Retry] {
        t.insert_run(PluginJobRunModel {
            trigger,
            status: RunStatus::Succeeded,
            scheduled_for: slot,
            ..run_row(&job)
        })
        .await
        .expect("manual runs are not bound by the slot index");
    }
}

#[actix_rt::test]
async fn migrations_use_their_own_table_and_are_idempotent() {
    let t = TestDb::new().await;
    plugin_jobs::db::migrate(&t.db)
        .await
        .expect("migrating twice is a no-op");
    let applied = migration::Migrator::get_applied_migrations(&t.db)
        .await
        .expect("applied");
    assert_eq!(applied.len(), migration::Migrator::migrations().len());
    let backend = t.db.get_database_backend();
    let sql = if t.is_postgres() {
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'plugin_jobs_migrations' AND table_schema = current_schema()"
    } else {
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'plugin_jobs_migrations'"
    };
    let row =
        t.db.query_one_raw(Statement::from_string(backend, sql))
            .await
            .expect("query")
            .expect("one row");
    let count: i64 = row.try_get("", "n").expect("count");
    assert_eq!(count, 1);
}

/// The migration that adds `failing` fills it from each job's history: failing when the newest
/// of its runs that reached an outcome failed, whatever live or cancelled runs came after.
#[actix_rt::test]
async fn the_failing_migration_fills_the_mark_from_each_jobs_history() {
    use RunStatus::{Cancelled, Failed, Queued, Succeeded};

    let t = TestDb::new().await;
    let histories: [(&str, &[RunStatus], bool); 6] = [
        ("failed-last", &[Succeeded, Failed], true),
        ("recovered", &[Failed, Succeeded], false),
        ("failed-then-cancelled", &[Failed, Cancelled], true),
        ("failed-then-queued", &[Failed, Queued], true),
        ("no-runs", &[], false),
        ("succeeded-then-cancelled", &[Succeeded, Cancelled], false),
    ];
    let mut jobs = Vec::new();
    for (key, statuses, failing) in histories {
        let job = t.insert_job(job_row("alpha", key)).await;
        for (minute, status) in statuses.iter().enumerate() {
            let created = at("09:00") + TimeDelta::minutes(i64::try_from(minute).expect("small"));
            t.insert_run(PluginJobRunModel {
                status: *status,
                created_at: created,
                scheduled_for: created,
                ..run_row(&job)
            })
            .await
            .expect("insert run");
        }
        jobs.push((job.id, key, failing));
    }
    // Undo the migration (and those after it) and apply them again over this history.
    let names: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let position = names
        .iter()
        .position(|name| name == "m20261203_000016_failing_jobs")
        .expect("the migration of the mark");
    let undo = u32::try_from(names.len() - position).expect("few migrations");
    migration::Migrator::down(&t.db, Some(undo))
        .await
        .expect("undo the migrations from the mark's on");
    plugin_jobs::db::migrate(&t.db)
        .await
        .expect("apply it again");
    for (id, key, failing) in jobs {
        assert_eq!(t.job(id).await.failing, failing, "{key}");
    }
}

#[actix_rt::test]
async fn deleting_a_job_deletes_its_runs() {
    let t = TestDb::new().await;
    let job = t.insert_job(job_row("alpha", "a")).await;
    t.insert_run(run_row(&job)).await.expect("run");
    use sea_orm::EntityTrait;
    PluginJob::delete_by_id(job.id)
        .exec(&t.db)
        .await
        .expect("delete job");
    assert!(t.all_runs().await.is_empty(), "runs cascade with their job");
}

#[actix_rt::test]
async fn instances_that_start_together_on_a_new_database_all_migrate_it() {
    // Several servers started at the same moment on one new SQLite file each run the
    // migrations: none may fail because another created a table first.
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("new.db").display());
        let starts: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { plugin_jobs::db::connect_and_migrate(&url).await })
            })
            .collect();
        for start in starts {
            let db = start.await.expect("task");
            assert!(db.is_ok(), "round {round}: {:?}", db.err());
        }
    }
}

#[actix_rt::test]
async fn a_sqlite_file_that_cannot_be_opened_is_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let missing = dir.path().join("new.db");
    let err = plugin_jobs::db::connect(&format!("sqlite://{}", missing.display()))
        .await
        .expect_err("no such file")
        .to_string();
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("?mode=rwc"),
        "{err}"
    );
    let folder = dir.path().join("no-such-folder/new.db");
    let err = plugin_jobs::db::connect(&format!("sqlite://{}?mode=rwc", folder.display()))
        .await
        .expect_err("no such folder")
        .to_string();
    assert!(err.contains("folder exists"), "{err}");
}

#[actix_rt::test]
async fn a_pass_that_fails_on_a_pool_closed_by_the_shutdown_is_no_error() {
    let t = TestDb::new().await;
    t.db.clone().close().await.expect("close");
    let err = plugin_jobs::db::migrate(&t.db)
        .await
        .expect_err("the pool is closed");
    assert!(err.is_pool_closed(), "{err:?}");
    assert_eq!(err.pass_level(), log::Level::Debug);
    assert!(!plugin_jobs::Error::ShuttingDown.is_pool_closed());
}
