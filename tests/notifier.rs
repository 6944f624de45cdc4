//! Webhooks end to end: a real actix-web receiver on 127.0.0.1 gets the events of real runs,
//! signed (the test checks the HMAC itself), with the documented payload; a receiver answering
//! 500 gets the same event again after the backoff until it takes it; and with two instances
//! on one database every outbox row is delivered exactly once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{TestDb, wait_until};
use entity::prelude::*;
use hmac::{Hmac, KeyInit, Mac};
use plugin_jobs::declaration::RetryPolicy;
use plugin_jobs::notifier::{NotificationEvent, NotifierConfig};
use plugin_jobs::retry::RetryPass;
use plugin_jobs::store::{
    CountNotifications, EnqueueNotifications, JobDeclaration, JobRef, NewNotification,
};
use plugin_jobs::worker::InProcessWorkers;
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_test";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    body: String,
    event: String,
    delivery: String,
    signature: Option<String>,
    authorization: Option<String>,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver: records every request; answers 500 to the first `failures` of them.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    failures: Arc<AtomicUsize>,
    /// How long each answer takes, so that two instances deliver side by side.
    delay: Duration,
    /// Answers every request with a redirect to `/elsewhere` (which takes anything).
    redirect: bool,
}

impl Receiver {
    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().expect("deliveries").clone()
    }

    /// The first delivery of `event`, once one has arrived.
    async fn first(&self, event: &str) -> Delivery {
        wait_until(
            &format!("{event} is delivered"),
            Duration::from_secs(20),
            || async { !self.of_type(event).is_empty() },
        )
        .await;
        self.of_type(event).remove(0)
    }

    fn of_type(&self, event: &str) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.event == event)
            .collect()
    }
}

async fn hook(request: HttpRequest, body: String, receiver: web::Data<Receiver>) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    receiver.got.lock().expect("deliveries").push(Delivery {
        body,
        event: header("X-Plugin-Jobs-Event").unwrap_or_default(),
        delivery: header("X-Plugin-Jobs-Delivery").unwrap_or_default(),
        signature: header("X-Plugin-Jobs-Signature"),
        authorization: header("Authorization"),
    });
    if !receiver.delay.is_zero() {
        actix_rt::time::sleep(receiver.delay).await;
    }
    if receiver.redirect {
        return HttpResponse::Found()
            .insert_header(("Location", "/elsewhere"))
            .finish();
    }
    let fail = receiver
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        HttpResponse::InternalServerError().body("try later")
    } else {
        HttpResponse::NoContent().finish()
    }
}

/// Starts the receiver on a free loopback port; answers its URL.
fn start_receiver(receiver: &Receiver) -> String {
    let data = web::Data::new(receiver.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(hook))
            .route("/elsewhere", web::to(HttpResponse::Ok))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind the receiver");
    let addr = server.addrs()[0];
    actix_rt::spawn(server.run());
    format!("http://{addr}/hook")
}

/// Checks the signature header the way a receiver should: recompute HMAC-SHA256 over
/// `"{t}.{body}"` and compare, and refuse a timestamp more than 5 minutes away.
fn verify(delivery: &Delivery, secret: &str) {
    let header = delivery.signature.as_deref().expect("a signature header");
    let parts: HashMap<&str, &str> = header
        .split(',')
        .filter_map(|part| part.split_once('='))
        .collect();
    let t: i64 = parts["t"].parse().expect("a numeric t");
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 300,
        "stale t={t}"
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{}", delivery.body).as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(parts["v1"], expected, "signature of {}", delivery.body);
}

fn config(url: &str, events: &[NotificationEvent]) -> NotifierConfig {
    NotifierConfig {
        secret: Some(SECRET.to_owned()),
        events: events.to_vec(),
        poll_interval: Duration::from_millis(50),
        first_backoff: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        ..NotifierConfig::new(vec![url.to_owned()])
    }
}

fn start(
    db: sea_orm::DatabaseConnection,
    workers: &InProcessWorkers,
    config: NotifierConfig,
    id: &str,
) -> PluginJobsHandle {
    PluginJobs::builder(db)
        .workers(workers.clone())
        .instance_id(id)
        .notifier(config)
        .manual_ticks()
        .start()
        .expect("start")
}

async fn outbox_len(jobs: &PluginJobsHandle) -> u64 {
    jobs.store
        .send(CountNotifications)
        .await
        .expect("mailbox")
        .expect("count")
}

/// Workers with `billing/flaky`, which fails with "card declined" while the flag is set (it
/// starts set).
fn flaky_worker() -> (InProcessWorkers, Arc<AtomicBool>) {
    let workers = InProcessWorkers::new();
    let failing = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&failing);
    workers.register("billing", "flaky", move |_ctx| {
        let fail = flag.load(Ordering::SeqCst);
        async move {
            if fail {
                Err("card declined".to_owned())
            } else {
                Ok(())
            }
        }
    });
    (workers, failing)
}

#[actix_rt::test]
async fn failures_successes_and_recoveries_are_posted_signed_with_the_documented_payload() {
    let t = TestDb::new().await;
    let receiver = Receiver::default();
    let url = start_receiver(&receiver);
    let (workers, failing) = flaky_worker();
    let jobs = start(
        t.db.clone(),
        &workers,
        config(&url, &NotificationEvent::ALL),
        "hooks-1",
    );
    jobs.register("billing", vec![JobDeclaration::new("flaky", "")])
        .await
        .expect("register");

    let failed = jobs
        .trigger(JobRef::key("billing", "flaky"), RunTrigger::Manual)
        .await
        .expect("trigger");
    let delivery = &receiver.first("run.failed").await;
    verify(delivery, SECRET);
    let body = delivery.json();
    assert_eq!(delivery.delivery, body["id"].as_str().expect("an id"));
    assert!(
        body["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    let job_id = failed.job_id.to_string();
    let run_id = failed.run_id.to_string();
    let mut fixed = body.clone();
    for volatile in ["id", "time"] {
        fixed[volatile] = Value::Null;
    }
    assert_eq!(
        fixed,
        json!({
            "id": null, "type": "run.failed", "time": null, "instance": "hooks-1",
            "plugin": "billing", "job": "flaky", "jobId": job_id, "run": run_id, "attempt": 1,
            "error": "card declined", "link": format!("/api/runs/{run_id}"), "status": "failed",
            "reason": null, "failures": null, "slot": null,
        })
    );

    // The first success after the failure: run.succeeded and job.recovered.
    wait_until(
        "the failure is counted",
        Duration::from_secs(10),
        || async { t.job(failed.job_id).await.consecutive_failures == 1 },
    )
    .await;
    failing.store(false, Ordering::SeqCst);
    let ok = jobs
        .trigger(JobRef::key("billing", "flaky"), RunTrigger::Manual)
        .await
        .expect("trigger");
    wait_until(
        "job.recovered is delivered",
        Duration::from_secs(10),
        || async {
            !receiver.of_type("job.recovered").is_empty()
                && !receiver.of_type("run.succeeded").is_empty()
        },
    )
    .await;
    let recovered = receiver.of_type("job.recovered")[0].clone();
    verify(&recovered, SECRET);
    let recovered = recovered.json();
    assert_eq!(recovered["failures"], 1);
    assert_eq!(recovered["run"], ok.run_id.to_string());
    assert_eq!(
        receiver.of_type("run.succeeded")[0].json()["status"],
        "succeeded"
    );
    assert_eq!(
        receiver.deliveries().len(),
        3,
        "{:?}",
        receiver.deliveries()
    );

    wait_until("the outbox is empty", Duration::from_secs(10), || async {
        outbox_len(&jobs).await == 0
    })
    .await;
    let metrics = jobs.metrics().await.expect("metrics");
    assert!(
        metrics.contains(
            r#"plugin_jobs_notifications_total{event="run.failed",outcome="delivered"} 1"#
        ),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_receiver_answering_500_gets_the_same_event_again_until_it_takes_it() {
    let t = TestDb::new().await;
    let receiver = Receiver {
        failures: Arc::new(AtomicUsize::new(2)),
        ..Receiver::default()
    };
    let url = start_receiver(&receiver);
    let workers = InProcessWorkers::new();
    workers.register("billing", "broken", |_ctx| async { Err("boom".to_owned()) });
    let jobs = start(
        t.db.clone(),
        &workers,
        config(&url, &[NotificationEvent::RunFailed]),
        "hooks-1",
    );
    jobs.register("billing", vec![JobDeclaration::new("broken", "")])
        .await
        .expect("register");
    jobs.trigger(JobRef::key("billing", "broken"), RunTrigger::Manual)
        .await
        .expect("trigger");

    wait_until(
        "the third attempt is taken",
        Duration::from_secs(10),
        || async { receiver.deliveries().len() == 3 && outbox_len(&jobs).await == 0 },
    )
    .await;
    let deliveries = receiver.deliveries();
    let ids: Vec<&str> = deliveries.iter().map(|d| d.delivery.as_str()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one event: {ids:?}");
    assert!(deliveries.iter().all(|d| d.body == deliveries[0].body));
    for delivery in &deliveries {
        verify(delivery, SECRET);
    }
    let metrics = jobs.metrics().await.expect("metrics");
    for line in [
        r#"plugin_jobs_notifications_total{event="run.failed",outcome="failed"} 2"#,
        r#"plugin_jobs_notifications_total{event="run.failed",outcome="delivered"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line}:\n{metrics}"
        );
    }
    // Nothing more arrives once it was taken.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.deliveries().len(), 3);
}

#[actix_rt::test]
async fn two_instances_deliver_every_outbox_row_exactly_once() {
    let t = TestDb::new().await;
    let receiver = Receiver {
        delay: Duration::from_millis(10),
        ..Receiver::default()
    };
    let url = start_receiver(&receiver);
    // Sixty events wait in the outbox before either instance starts, so both compete for them.
    let store = t.store();
    let rows: Vec<NewNotification> = (0..60)
        .map(|n| {
            let event_id = uuid::Uuid::now_v7();
            NewNotification {
                event_id,
                event_type: "run.failed".to_owned(),
                url: url.clone(),
                body: json!({"id": event_id, "n": n}).to_string(),
            }
        })
        .collect();
    let dropped = store
        .send(EnqueueNotifications {
            rows,
            max_rows: 10_000,
            now: chrono::Utc::now(),
        })
        .await
        .expect("mailbox")
        .expect("enqueue");
    assert!(dropped.is_empty(), "{dropped:?}");

    let workers = InProcessWorkers::new();
    let mut small_batches = config(&url, &[NotificationEvent::RunFailed]);
    small_batches.batch = 5;
    let first = start(t.db.clone(), &workers, small_batches.clone(), "hooks-1");
    let second_db = plugin_jobs::db::connect(&t.url).await.expect("second pool");
    let second = start(second_db, &workers, small_batches, "hooks-2");

    wait_until(
        "every row is delivered",
        Duration::from_secs(30),
        || async { outbox_len(&first).await == 0 && receiver.deliveries().len() >= 60 },
    )
    .await;
    // Give a duplicate the chance to show up.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let deliveries = receiver.deliveries();
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.delivery.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(deliveries.len(), 60, "a row was delivered twice");

    let delivered = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"plugin_jobs_notifications_total{event="run.failed",outcome="delivered"} "#,
                )
            })
            .map_or(0, |n| n.parse().expect("a count"))
    };
    let by_first = delivered(&first.metrics().await.expect("metrics"));
    let by_second = delivered(&second.metrics().await.expect("metrics"));
    assert_eq!(by_first + by_second, 60, "{by_first} + {by_second}");
    eprintln!("instance 1 delivered {by_first}, instance 2 delivered {by_second}");
}

#[actix_rt::test]
async fn unknown_events_and_bad_urls_are_refused_by_name() {
    let err = "run.exploded"
        .parse::<NotificationEvent>()
        .expect_err("unknown");
    assert!(
        err.to_string()
            .contains("unknown webhook event \"run.exploded\""),
        "{err}"
    );
    assert!(
        err.to_string().contains("run.failed, run.succeeded"),
        "{err}"
    );
    let err = NotifierConfig::new(vec!["ftp://example.com/hook".to_owned()])
        .validate()
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("\"ftp://example.com/hook\" must be an absolute http"),
        "{err}"
    );
    NotifierConfig::new(vec!["https://hooks.example.com/x".to_owned()])
        .validate()
        .expect("https is fine");
}

#[actix_rt::test]
async fn job_paused_names_the_attempt_that_paused_and_a_resumed_job_that_succeeds_is_recovered() {
    let t = TestDb::new().await;
    let receiver = Receiver::default();
    let url = start_receiver(&receiver);
    let (workers, failing) = flaky_worker();
    let jobs = start(
        t.db.clone(),
        &workers,
        config(&url, &NotificationEvent::ALL),
        "hooks-1",
    );
    // Paused once one slot has failed all of its three attempts.
    let mut flaky = JobDeclaration::new("flaky", "");
    flaky.retry = Some(
        RetryPolicy::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(20)),
    );
    flaky.pause_after_failures = Some(1);
    jobs.register("billing", vec![flaky])
        .await
        .expect("register");
    let job = JobRef::key("billing", "flaky");
    let first = jobs
        .trigger(job.clone(), RunTrigger::Manual)
        .await
        .expect("trigger");
    // Ticks are manual here: each retry is started by a pass once its backoff is over.
    wait_until(
        "the third attempt has failed",
        Duration::from_secs(10),
        || async {
            jobs.retries
                .send(RetryPass)
                .await
                .expect("retry actor")
                .expect("pass");
            let runs = t.all_runs().await;
            runs.len() == 3 && runs.iter().all(|run| run.status == RunStatus::Failed)
        },
    )
    .await;
    let paused = receiver.first("job.paused").await.json();
    let third = t
        .all_runs()
        .await
        .into_iter()
        .find(|run| run.attempt == 3)
        .expect("the third attempt");
    assert_eq!(paused["run"], third.id.to_string(), "{paused}");
    assert_eq!(paused["attempt"], 3, "{paused}");
    assert_eq!(paused["failures"], 1, "{paused}");

    // The operator fixes the cause and resumes: the first success is the recovery.
    failing.store(false, Ordering::SeqCst);
    jobs.resume(job.clone()).await.expect("resume");
    let ok = jobs
        .trigger(job, RunTrigger::Manual)
        .await
        .expect("trigger");
    let recovered = receiver.first("job.recovered").await.json();
    assert_eq!(recovered["run"], ok.run_id.to_string(), "{recovered}");
    assert_eq!(recovered["attempt"], 1, "{recovered}");
    assert_eq!(recovered["failures"], 1, "{recovered}");
    assert_ne!(first.run_id, ok.run_id);
}

/// A failing job's worker and a notifier posting its `run.failed` events to `urls`.
fn failing_job_posting_to(t: &TestDb, urls: &[&str], max_outbox: u64) -> PluginJobsHandle {
    let workers = InProcessWorkers::new();
    workers.register("billing", "broken", |_ctx| async { Err("boom".to_owned()) });
    let mut config = config(urls[0], &[NotificationEvent::RunFailed]);
    config.urls = urls.iter().map(|url| (*url).to_owned()).collect();
    config.max_outbox = max_outbox;
    start(t.db.clone(), &workers, config, "hooks-1")
}

async fn fail_once(t: &TestDb, jobs: &PluginJobsHandle) {
    let run = jobs
        .trigger(JobRef::key("billing", "broken"), RunTrigger::Manual)
        .await
        .expect("trigger");
    wait_until("the run failed", Duration::from_secs(10), || async {
        t.run(run.run_id).await.status == RunStatus::Failed
    })
    .await;
}

#[actix_rt::test]
async fn a_redirect_is_not_a_delivery_and_a_slow_receiver_does_not_hold_back_another() {
    let t = TestDb::new().await;
    let moved = Receiver {
        redirect: true,
        ..Receiver::default()
    };
    let slow = Receiver {
        delay: Duration::from_secs(4),
        ..Receiver::default()
    };
    let fast = Receiver::default();
    let urls = [
        start_receiver(&moved),
        start_receiver(&slow),
        start_receiver(&fast),
    ];
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let jobs = failing_job_posting_to(&t, &urls, 10_000);
    jobs.register("billing", vec![JobDeclaration::new("broken", "")])
        .await
        .expect("register");
    fail_once(&t, &jobs).await;
    wait_until(
        "the slow receiver holds the first event",
        Duration::from_secs(3),
        || async { slow.deliveries().len() == 1 && fast.deliveries().len() == 1 },
    )
    .await;
    // The slow receiver holds its request for 4 s. The second event reaches the fast one
    // meanwhile (a batch waited for every POST of the one before).
    fail_once(&t, &jobs).await;
    wait_until(
        "the fast receiver has the second event",
        Duration::from_secs(2),
        || async { fast.deliveries().len() == 2 },
    )
    .await;
    assert_eq!(
        slow.deliveries().len(),
        1,
        "the slow one is still on the first"
    );
    // A 302 is retried, not taken for a delivery (a redirect would have been followed with a
    // GET, whose 200 counted as delivered).
    wait_until(
        "the redirect was tried twice",
        Duration::from_secs(10),
        || async { moved.deliveries().len() >= 2 },
    )
    .await;
    let left = jobs
        .store
        .send(CountNotifications)
        .await
        .expect("mailbox")
        .expect("count");
    assert!(left >= 1, "the redirected delivery is still in the outbox");
}

#[actix_rt::test]
async fn a_receiver_that_is_down_fills_only_its_own_share_of_the_outbox() {
    let t = TestDb::new().await;
    let fast = Receiver::default();
    let fast_url = start_receiver(&fast);
    // Nothing listens on port 9 of loopback (discard): every attempt fails at once.
    let jobs = failing_job_posting_to(&t, &[&fast_url, "http://127.0.0.1:9/hook"], 2);
    jobs.register("billing", vec![JobDeclaration::new("broken", "")])
        .await
        .expect("register");
    for _ in 0..4 {
        fail_once(&t, &jobs).await;
    }
    wait_until(
        "the fast receiver has every event",
        Duration::from_secs(10),
        || async { fast.deliveries().len() == 4 },
    )
    .await;
    let metrics = jobs.metrics().await.expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l
                == r#"plugin_jobs_notifications_total{event="run.failed",outcome="dropped"} 2"#),
        "the dead URL's share holds 2 rows, and 2 of its 4 deliveries were dropped:\n{metrics}"
    );
}

/// Plugin-jobs with the plugin `crash`, whose worker writes `dying` to stderr and exits 7 at
/// every start (given up on after `crash_limit` crashes), once its first `worker.failed` body has
/// reached the receiver.
struct CrashingWorker {
    _t: TestDb,
    receiver: Receiver,
    jobs: PluginJobsHandle,
    body: Value,
}

async fn first_worker_failed_of_a_crashing_worker(crash_limit: usize) -> CrashingWorker {
    use plugin_jobs::worker::{PluginProcess, ProcessWorkerConfig, ProcessWorkers};

    let t = TestDb::new().await;
    let receiver = Receiver::default();
    let url = start_receiver(&receiver);
    let workers = ProcessWorkers::new(ProcessWorkerConfig {
        crash_limit,
        restart_backoff: Duration::from_millis(20),
        max_restart_backoff: Duration::from_millis(50),
        ..ProcessWorkerConfig::default()
    });
    let dying = "import sys; sys.stderr.write('dying\\n'); sys.exit(7)";
    workers
        .start(PluginProcess {
            plugin_id: "crash".to_owned(),
            command: vec!["python3".into(), "-c".into(), dying.into()],
            dir: std::env::temp_dir(),
            env: Default::default(),
            manifest: json!({"id": "crash"}),
            config: Value::Null,
        })
        .expect("start the worker");
    let jobs = PluginJobs::builder(t.db.clone())
        .workers(workers)
        .instance_id("hooks-1")
        .notifier(config(&url, &[NotificationEvent::WorkerFailed]))
        .manual_ticks()
        .start()
        .expect("start");
    jobs.register("crash", vec![JobDeclaration::new("tick", "")])
        .await
        .expect("register");
    let body = receiver.first("worker.failed").await.json();
    CrashingWorker {
        _t: t,
        receiver,
        jobs,
        body,
    }
}

#[actix_rt::test]
async fn worker_failed_says_why_the_worker_was_given_up_on() {
    let body = first_worker_failed_of_a_crashing_worker(1).await.body;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("giving up on the worker of plugin crash: 2 crashes")
            && error.contains("exit status: 7")
            && error.contains("dying"),
        "{body}"
    );
}

/// A worker that dies at every start is given up on only after its 11th crash (about 14
/// minutes with the default backoff); meanwhile its jobs run nowhere. The notifier says so at
/// its third crash, once.
#[actix_rt::test]
async fn a_worker_that_keeps_crashing_is_reported_once_before_it_is_given_up_on() {
    let CrashingWorker {
        _t,
        receiver,
        jobs,
        body,
    } = first_worker_failed_of_a_crashing_worker(1_000).await;
    assert_eq!(body["status"], "restarting", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the worker of plugin crash keeps crashing (")
            && error.contains("exit status: 7")
            && error.contains("dying"),
        "{body}"
    );
    // It keeps crashing, many times over: still the one delivery.
    let restarted_since = |count: u64| {
        let jobs = jobs.clone();
        async move {
            let metrics = jobs.metrics().await.expect("metrics");
            metrics
                .lines()
                .filter_map(|line| {
                    line.strip_prefix(r#"plugin_jobs_worker_restarts_total{plugin="crash"} "#)
                })
                .any(|value| value.parse::<u64>().is_ok_and(|value| value >= count))
        }
    };
    wait_until("ten more crashes", Duration::from_secs(20), || {
        restarted_since(15)
    })
    .await;
    // The notifier looks every poll interval; give it several looks at the crashing worker.
    let looks_before = receiver.deliveries().len();
    wait_until("ten more crashes again", Duration::from_secs(20), || {
        restarted_since(25)
    })
    .await;
    let deliveries = receiver.deliveries();
    assert_eq!(
        (looks_before, deliveries.len()),
        (1, 1),
        "one report of the crash loop: {deliveries:?}"
    );
}

/// A stopping server drains the notifier before it closes the database pool: the delivery a
/// receiver is answering is recorded (its outbox row deleted), so it is not posted again at the
/// next start, and no new delivery starts meanwhile.
#[actix_rt::test]
async fn draining_waits_for_the_delivery_in_flight_to_be_recorded() {
    let t = TestDb::new().await;
    let slow = Receiver {
        delay: Duration::from_secs(1),
        ..Receiver::default()
    };
    let url = start_receiver(&slow);
    let jobs = failing_job_posting_to(&t, &[url.as_str()], 10_000);
    jobs.register("billing", vec![JobDeclaration::new("broken", "")])
        .await
        .expect("register");
    fail_once(&t, &jobs).await;
    wait_until(
        "the receiver holds the delivery",
        Duration::from_secs(5),
        || async { slow.deliveries().len() == 1 },
    )
    .await;
    assert_eq!(outbox_len(&jobs).await, 1, "not answered yet");
    jobs.drain_notifications(Duration::from_secs(10)).await;
    assert_eq!(outbox_len(&jobs).await, 0, "answered and recorded");
    // Draining, it starts nothing: a new event waits in the outbox for the next start.
    fail_once(&t, &jobs).await;
    wait_until(
        "the event is in the outbox",
        Duration::from_secs(5),
        || async { outbox_len(&jobs).await == 1 },
    )
    .await;
    let notifier = jobs.notifier.as_ref().expect("a notifier");
    let started = notifier
        .send(plugin_jobs::notifier::DeliverPass)
        .await
        .expect("mailbox");
    assert_eq!(started, 0, "a delivery pass starts no lane once drained");
    assert_eq!(outbox_len(&jobs).await, 1);
    assert_eq!(slow.deliveries().len(), 1, "no delivery after the drain");
}

/// Credentials in a webhook URL are sent as Basic auth, not dropped (a receiver behind Basic
/// auth would answer every delivery 401 for a day).
#[actix_rt::test]
async fn a_webhook_urls_credentials_are_sent_as_basic_auth() {
    let t = TestDb::new().await;
    let receiver = Receiver::default();
    let url = start_receiver(&receiver).replacen("http://", "http://hooks:p%40ss@", 1);
    let jobs = failing_job_posting_to(&t, &[url.as_str()], 10_000);
    jobs.register("billing", vec![JobDeclaration::new("broken", "")])
        .await
        .expect("register");
    fail_once(&t, &jobs).await;
    let delivery = receiver.first("run.failed").await;
    // base64("hooks:p@ss")
    assert_eq!(
        delivery.authorization.as_deref(),
        Some("Basic aG9va3M6cEBzcw==")
    );
}
