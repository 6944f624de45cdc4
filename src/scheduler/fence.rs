//! The `RunFence`: stops the calls of this instance's runs when their lease is lost or about to
//! lapse (`FenceRuns`, from the `MaintenanceActor`), without waiting for the `SchedulerActor`.
//!
//! The scheduler holds its mailbox while a claim waits for the database (the claim's budget
//! must not change under it), and a fence is needed exactly when the database does not answer:
//! sent through the scheduler, it would wait behind that claim while another instance takes the
//! runs over and starts their jobs again. So the scheduler lists the `JobRunActor` of each run
//! it spawns in a [`LiveRunActors`] it shares with the fence (both live on the one thread of the
//! actix System they were started in), and the fence sends `Fence` to them itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use actix::prelude::*;
use uuid::Uuid;

use crate::job_run::{Fence, JobRunActor};
use crate::maintenance::FenceRuns;

/// The `JobRunActor` of every run this instance spawned and has not heard settle or finish.
#[derive(Debug, Clone, Default)]
pub struct LiveRunActors(Rc<RefCell<HashMap<Uuid, Addr<JobRunActor>>>>);

impl LiveRunActors {
    pub(super) fn insert(&self, run_id: Uuid, actor: Addr<JobRunActor>) {
        self.0.borrow_mut().insert(run_id, actor);
    }

    pub(super) fn remove(&self, run_id: Uuid) {
        self.0.borrow_mut().remove(&run_id);
    }
}

/// Sends `Fence` to the runs a `FenceRuns` names (all of them when it names none).
#[derive(Debug)]
pub struct RunFence {
    live: LiveRunActors,
}

impl RunFence {
    /// A fence for the runs of the scheduler that shares `live`
    /// (see [`super::SchedulerActor::live_run_actors`]).
    pub fn new(live: LiveRunActors) -> Self {
        Self { live }
    }
}

impl Actor for RunFence {
    type Context = Context<Self>;
}

impl Handler<FenceRuns> for RunFence {
    type Result = ();

    fn handle(&mut self, msg: FenceRuns, _ctx: &mut Self::Context) {
        let live = self.live.0.borrow();
        let fenced: Vec<&Addr<JobRunActor>> = match &msg.run_ids {
            None => live.values().collect(),
            Some(ids) => ids.iter().filter_map(|id| live.get(id)).collect(),
        };
        for actor in fenced {
            actor.do_send(Fence {
                reason: msg.reason.clone(),
            });
        }
    }
}
