//! The `JobRunActor`'s writes: each one retried with backoff while the database is unavailable
//! (a run's outcome must not be lost to a blip), and a run's outcome that the database refuses
//! for good written again without the worker's text, so the run still ends.

use std::time::Duration;

use actix::prelude::*;

use crate::store::{CompleteRun, StoreActor};

/// Longest wait between retries of a write while the database is unavailable.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// Sends a write, retrying with backoff (100 ms doubling to 5 s) while it fails for a reason
/// that can pass (see [`crate::Error::is_transient`]); answers the first other result.
pub(super) async fn retry_write<M, T>(
    store: Addr<StoreActor>,
    msg: impl Fn() -> M,
    what: &str,
) -> crate::Result<T>
where
    M: Message<Result = crate::Result<T>> + Send + 'static,
    StoreActor: Handler<M>,
    T: Send + 'static,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match crate::store::ask(&store, msg()).await {
            Err(err) if err.is_transient() => {
                log::error!("{what} failed, retrying in {backoff:?}: {err}");
                actix_rt::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
            }
            result => return result,
        }
    }
}

/// Writes a run's outcome: retried while the database is unavailable; when the database
/// refuses it for good, a fallback outcome without the worker's text is written instead (the
/// run still ends), and the failure is logged loudly. Answers whether this outcome is the
/// run's: not when the run had ended already (another instance failed it as abandoned while
/// this one could not reach the database, say), whose outcome then stands alone.
pub(super) async fn record_outcome(store: Addr<StoreActor>, msg: CompleteRun) -> bool {
    let run_id = msg.run_id;
    let first = msg.clone();
    let err = match retry_write(store.clone(), move || first.clone(), "recording an outcome").await
    {
        Ok(recorded) => return recorded,
        Err(crate::Error::RunNotFound(id)) => {
            log::warn!("run {id} vanished before its outcome was recorded");
            return false;
        }
        Err(err @ crate::Error::Mailbox(_)) => {
            log::error!("store unavailable; outcome of run {run_id} not recorded: {err}");
            return false;
        }
        Err(err) => err,
    };
    log::error!(
        "the database refused the outcome of run {run_id} ({err}); recording it without the \
         worker's error text and logs"
    );
    let fallback = CompleteRun {
        error: Some(format!(
            "the run ended {} but its outcome could not be stored as reported: {err}",
            msg.status
        )),
        logs: None,
        ..msg
    };
    match retry_write(
        store,
        move || fallback.clone(),
        "recording a fallback outcome",
    )
    .await
    {
        Ok(recorded) => recorded,
        Err(err) => {
            log::error!(
                "run {run_id}: even the fallback outcome was refused ({err}); the rescue pass \
                 will fail the run once its heartbeat stops"
            );
            false
        }
    }
}
