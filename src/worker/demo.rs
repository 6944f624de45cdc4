//! The demo worker behind `examples/plugins/demo`, built on the [`sdk`](super::sdk) and started
//! by the server as `plugin-jobs demo-worker`. Its jobs show what a worker does: log lines, work
//! in steps, and honouring cancellation.
//!
//! - `heartbeat` logs one line and succeeds at once.
//! - `report` works in three steps of 300 ms, logging each.
//! - `cleanup` (manual) works for `DEMO_CLEANUP_MS` (default 2 s) and stops early when cancelled.

use std::time::Duration;

use super::sdk::{Run, Worker};

/// Works for `length`, or fails early with the reason when the run is cancelled.
async fn work(run: &Run, length: Duration) -> Result<(), String> {
    tokio::select! {
        () = tokio::time::sleep(length) => Ok(()),
        reason = run.cancelled() => {
            run.log("warn", format!("stopping early: {reason}"));
            Err(format!("cancelled: {reason}"))
        }
    }
}

/// The demo worker's jobs.
pub fn demo_worker() -> Worker {
    let cleanup_ms = std::env::var("DEMO_CLEANUP_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(2_000);
    Worker::new()
        .job("heartbeat", |run| async move {
            run.info(format!("heartbeat for the slot {}", run.scheduled_at));
            Ok(())
        })
        .job("report", |run| async move {
            for step in 1..=3 {
                work(&run, Duration::from_millis(300)).await?;
                run.info(format!("report step {step} of 3 done"));
            }
            Ok(())
        })
        .job("cleanup", move |run| async move {
            run.info(format!("cleaning up for {cleanup_ms} ms"));
            work(&run, Duration::from_millis(cleanup_ms)).await?;
            run.info("cleanup done");
            Ok(())
        })
}
