//! A plugin-jobs with a dead actor is never taken for healthy: `/healthz` answers 503 naming
//! the actor that stopped (the server itself exits on any panic; embedders see it here).

mod common;

use actix::prelude::*;
use actix_web::{App, http::StatusCode, test};
use common::Harness;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::http::configure;
use plugin_jobs::store::StoreActor;

#[actix_rt::test]
async fn healthz_answers_503_while_the_store_actor_is_down() {
    let h = Harness::new(SchedulerConfig::default()).await;
    let mut jobs = h.jobs.clone();
    let app = test::init_service(App::new().configure(configure(jobs.clone(), None))).await;
    let ok = test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(jobs.down_actors().is_empty());

    // A store whose arbiter is gone, as after a panic in one of its handlers.
    let arbiter = Arbiter::new();
    let db = h.t.db.clone();
    jobs.store = StoreActor::start_in_arbiter(&arbiter.handle(), move |_| StoreActor::new(db));
    arbiter.stop();
    arbiter.join().expect("arbiter thread ends");
    common::wait_until(
        "the store is seen down",
        std::time::Duration::from_secs(5),
        || {
            let down = !jobs.store.connected();
            async move { down }
        },
    )
    .await;
    assert_eq!(jobs.down_actors(), vec!["StoreActor"]);

    let app = test::init_service(App::new().configure(configure(jobs.clone(), None))).await;
    let reply =
        test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = test::read_body_json(reply).await;
    assert_eq!(body["error"], "StoreActor not running");
}
