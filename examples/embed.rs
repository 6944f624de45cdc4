//! plugin-jobs embedded in an actix-web application, with an in-process job.
//!
//! `cargo run --example embed` starts an HTTP server on 127.0.0.1:8081 and a job that fires
//! every 2 seconds; `curl localhost:8081/scheduler` shows the scheduler's diagnostics.

use actix_web::{App, HttpResponse, HttpServer, web};
use plugin_jobs::store::JobDeclaration;
use plugin_jobs::worker::InProcessWorkers;
use plugin_jobs::{PluginJobs, PluginJobsHandle};

async fn diagnostics(jobs: web::Data<PluginJobsHandle>) -> HttpResponse {
    match jobs.diagnostics().await {
        Ok(diagnostics) => HttpResponse::Ok().json(diagnostics),
        Err(err) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"error": err.to_string()}))
        }
    }
}

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
    let jobs = PluginJobs::builder(db).workers(workers).start();
    jobs.register(
        "example",
        vec![JobDeclaration::new("hello", "*/2 * * * * *")],
    )
    .await
    .map_err(std::io::Error::other)?;

    let data = web::Data::new(jobs.clone());
    log::info!("listening on http://127.0.0.1:8081/scheduler");
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/scheduler", web::get().to(diagnostics))
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
