//! The `plugin-jobs` binary. For now it offers `migrate` (apply the schema to a database) and
//! `cron` (print the next slots of an expression); the server arrives with the HTTP API.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "plugin-jobs",
    version,
    about = "A durable cron scheduler for plugin jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply every pending migration to the database.
    Migrate {
        /// Database URL (sqlite://… or postgres://…).
        #[arg(
            long,
            env = "PLUGIN_JOBS_DATABASE_URL",
            default_value = "sqlite://plugin-jobs.db?mode=rwc"
        )]
        database_url: String,
    },
    /// Print the next slots of a cron expression.
    Cron {
        /// The expression, e.g. "0 9 * * 1-5" or "@hourly".
        expression: String,
        /// IANA timezone the expression is evaluated in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// How many slots to print.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migrate { database_url } => actix_rt::System::new().block_on(async move {
            plugin_jobs::db::connect_and_migrate(&database_url)
                .await
                .map(|_| {
                    println!("database at {database_url} is migrated");
                })
        }),
        Command::Cron {
            expression,
            tz,
            count,
        } => print_slots(&expression, &tz, count),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print_slots(expression: &str, tz: &str, count: usize) -> plugin_jobs::Result<()> {
    let schedule = plugin_jobs::cron::Schedule::parse(expression, tz)?;
    let zone = schedule.timezone();
    let slots = schedule.upcoming(chrono::Utc::now(), count);
    if slots.is_empty() {
        println!("{expression:?} never fires again");
    }
    for slot in slots {
        println!(
            "{}  ({} {})",
            plugin_jobs::time::iso(slot),
            slot.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z"),
            tz
        );
    }
    Ok(())
}
