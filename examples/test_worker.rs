//! A worker built on the SDK that misbehaves on request, for the process-worker tests.
//!
//! Jobs: `ok` (logs a line, succeeds), `fail` (fails with a message), `sleep` (sleeps
//! `SLEEP_MS`, default 300, and stops early when cancelled), `hang` (never answers and ignores
//! cancellation), `exit` (writes to stderr and exits with status 3 mid-run), `chatty` (logs
//! 100 KiB), `env` (logs its environment), `garbage` (writes junk to stdout, then succeeds).
//! Flags: `--no-handshake` (never answers anything), `--crash-on-start` (exits at once).

use std::io::Write;
use std::time::Duration;

use plugin_jobs::worker::sdk::Worker;

fn garbage() {
    let mut stdout = std::io::stdout().lock();
    for line in [
        "this is not JSON",
        "[1, 2, 3]",
        r#"{"jsonrpc":"2.0","id":987654,"result":null}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"1.0","method":"log"}"#,
        r#"{"jsonrpc":"2.0","method":"log","params":{"level":"info"}}"#,
    ] {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--crash-on-start") {
        eprintln!("fatal: cannot start on purpose");
        std::process::exit(2);
    }
    if args.iter().any(|a| a == "--no-handshake") {
        // Reads its input and never answers.
        let mut sink = tokio::io::sink();
        tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await?;
        return Ok(());
    }
    let sleep_ms: u64 = std::env::var("SLEEP_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(300);
    Worker::new()
        .job("ok", |run| async move {
            run.info(format!("hello from run {}", run.run_id));
            run.log("warn", "a warning line");
            Ok(())
        })
        .job("fail", |_run| async move {
            Err("boom: failed on purpose".to_owned())
        })
        .job("sleep", move |run| async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => Ok(()),
                reason = run.cancelled() => {
                    run.info(format!("stopping early: {reason}"));
                    Err(format!("cancelled: {reason}"))
                }
            }
        })
        .job("hang", |_run| std::future::pending())
        .job("exit", |_run| async move {
            eprintln!("fatal: exiting mid-run on purpose");
            std::process::exit(3)
        })
        .job("chatty", |run| async move {
            let line = "x".repeat(1024);
            for _ in 0..100 {
                run.info(&line);
            }
            Ok(())
        })
        .job("env", |run| async move {
            let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            vars.sort();
            run.info(vars.join("\n"));
            Ok(())
        })
        .job("garbage", |_run| async move {
            garbage();
            Ok(())
        })
        .serve_stdio()
        .await
}
