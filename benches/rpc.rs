//! `runJob` round trips per second through one stdio worker, with 1, 16 and 64 calls in flight.
//!
//! The benchmark binary is its own worker: started with `RPC_BENCH_WORKER=1` it serves a no-op
//! job through the SDK. Each scenario keeps N calls in flight through `ProcessWorkers::call` (the
//! path the scheduler uses) for a fixed time and prints one JSON line. `-- --quick` runs 1 s per
//! scenario instead of 5 s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use plugin_jobs::worker::sdk::Worker;
use plugin_jobs::worker::{
    PluginProcess, ProcessWorkerConfig, ProcessWorkers, RunJob, WorkerManager,
};
use serde_json::json;

const PLUGIN: &str = "bench";

fn main() {
    if std::env::var_os("RPC_BENCH_WORKER").is_some() {
        serve_worker();
        return;
    }
    let quick = std::env::args().any(|arg| arg == "--quick");
    let seconds = if quick { 1 } else { 5 };
    actix_rt::System::new().block_on(bench(Duration::from_secs(seconds)));
}

fn serve_worker() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime");
    runtime
        .block_on(
            Worker::new()
                .job("noop", |_run| async { Ok(()) })
                .serve_stdio(),
        )
        .expect("serve");
}

async fn bench(length: Duration) {
    let exe = std::env::current_exe().expect("own path");
    let workers = ProcessWorkers::new(ProcessWorkerConfig::default());
    workers
        .start(PluginProcess {
            plugin_id: PLUGIN.to_owned(),
            command: vec![exe.display().to_string()],
            dir: std::env::temp_dir(),
            env: BTreeMap::from([("RPC_BENCH_WORKER".to_owned(), "1".to_owned())]),
            manifest: json!({"id": PLUGIN}),
            config: json!(null),
        })
        .expect("start worker");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !workers.is_running(PLUGIN) {
        assert!(Instant::now() < deadline, "the bench worker did not start");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    for in_flight in [1usize, 16, 64] {
        scenario(&workers, in_flight, length).await;
    }
    workers.stop(PLUGIN).await;
}

async fn scenario(workers: &ProcessWorkers, in_flight: usize, length: Duration) {
    let started = Instant::now();
    let end = started + length;
    let lanes = (0..in_flight).map(|lane| {
        let workers = workers.clone();
        async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let job = RunJob::new("noop", format!("{lane}-{n}"), "manual", "");
                let sent = Instant::now();
                workers
                    .run_job(PLUGIN, job, Duration::from_secs(30))
                    .await
                    .result
                    .expect("runJob");
                latencies.push(sent.elapsed());
            }
            latencies
        }
    });
    let mut latencies: Vec<Duration> = futures_util::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pick = |q: f64| {
        let at = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(at).map_or(0, |d| d.as_micros())
    };
    println!(
        "{}",
        json!({
            "bench": "rpc",
            "in_flight": in_flight,
            "calls": latencies.len(),
            "seconds": (elapsed * 1000.0).round() / 1000.0,
            "calls_per_s": (latencies.len() as f64 / elapsed).round(),
            "p50_us": pick(0.5),
            "p99_us": pick(0.99),
        })
    );
}
