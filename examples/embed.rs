//! plugin-jobs embedded in an actix-web application, with an in-process job.
//!
//! `cargo run --example embed` starts an HTTP server on 127.0.0.1:8081 and a job that fires
//! every 2 seconds, with the HTTP API mounted: `curl localhost:8081/api/scheduler` shows the
//! scheduler's diagnostics, `curl localhost:8081/api/plugins/example/jobs/hello/runs` the runs,
//! `curl localhost:8081/metrics` the metrics; http://127.0.0.1:8081/ is the dashboard.

use actix_web::{App, HttpServer};
use plugin_jobs::PluginJobs;
use plugin_jobs::store::JobDeclaration;
use plugin_jobs::worker::InProcessWorkers;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let db = plugin_jobs::db::connect_and_migrate("sqlite::memory:")
        .await
        .map_err(std::io::Error::other)?;

    let workers = InProcessWorkers::new();
    workers.register("example", "hello", |ctx| async move {
        log::info!("hello from run {} (slot {})", ctx.run_id, ctx.scheduled_at);
        Ok(())
    });
    let jobs = PluginJobs::builder(db)
        .workers(workers)
        .start()
        .map_err(std::io::Error::other)?;
    jobs.register(
        "example",
        vec![JobDeclaration::new("hello", "*/2 * * * * *")],
    )
    .await
    .map_err(std::io::Error::other)?;

    log::info!("listening on http://127.0.0.1:8081/api/scheduler");
    let api = jobs.clone();
    // Loopback only: this example sets no API token, so the API refuses requests a foreign web
    // page could make (a foreign Host or Origin, a form post). Behind a local reverse proxy,
    // name it with `configure_with(api, ApiOptions { allowed_hosts: vec!["jobs.internal".into()],
    // ..ApiOptions::default() })`.
    HttpServer::new(move || {
        App::new()
            .configure(plugin_jobs::http::configure(api.clone(), None))
            .configure(plugin_jobs::http::dashboard())
    })
    .bind(("127.0.0.1", 8081))?
    .run()
    .await?;
    let report = jobs
        .shutdown(std::time::Duration::from_secs(10))
        .await
        .map_err(std::io::Error::other)?;
    log::info!("stopped: {report:?}");
    Ok(())
}
