//! `plugin-jobs completions SHELL` and `plugin-jobs man`: shell completion scripts
//! (clap_complete) and man pages (clap_mangen), both generated from the clap definitions of
//! the binary, so they never disagree with `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// `plugin-jobs man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Print the page of this command (e.g. serve, jobs) instead of plugin-jobs(1).
    pub command: Option<String>,
    /// Write every page (plugin-jobs.1, plugin-jobs-serve.1, …) into this folder instead of
    /// printing one.
    #[arg(long, conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script of `shell` for `cli`.
pub fn completions(shell: clap_complete::Shell, cli: clap::Command) -> ExitCode {
    // clap_complete offers hidden commands too (`demo-worker`, which the server starts): the
    // script is generated from the command without them, as `--help` and the pages show it.
    let mut visible = clap::Command::new("plugin-jobs")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(visible_subcommands(&cli).cloned());
    // Generated in memory first: clap_complete panics when a write fails, and a closed pipe
    // must be an error message, not a panic.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible, "plugin-jobs", &mut script);
    print_bytes("completion script", &script)
}

/// Prints one man page, or writes them all into `--dir`.
pub fn man(args: &ManArgs, cli: clap::Command) -> ExitCode {
    // Building names each subcommand "plugin-jobs-<name>", as its page is called; `help` gets
    // no page.
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    if let Some(dir) = &args.dir {
        let mut pages = std::iter::once(&cli).chain(visible_subcommands(&cli));
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            pages.try_for_each(|page| page_of(page.clone()).generate_to(dir).map(drop))
        });
        return match written {
            Ok(()) => {
                super::print_out(&format!("man pages written to {}\n", dir.display()));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!(
                    "error: cannot write the man pages to {}: {err}",
                    dir.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    let page = match &args.command {
        None => cli,
        Some(name) => match visible_subcommands(&cli).find(|sub| sub.get_name() == name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = visible_subcommands(&cli)
                    .map(clap::Command::get_name)
                    .collect();
                eprintln!(
                    "error: no command {name:?}; pages exist for {}",
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut text = Vec::new();
    match page_of(page).render(&mut text) {
        Ok(()) => print_bytes("man page", &text),
        Err(err) => {
            eprintln!("error: cannot render the man page: {err}");
            ExitCode::FAILURE
        }
    }
}

fn visible_subcommands(cli: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cli.get_subcommands().filter(|sub| !sub.is_hide_set())
}

/// The page of one command, its footer naming the program and version.
fn page_of(command: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(command).source(concat!("plugin-jobs ", env!("CARGO_PKG_VERSION")))
}

fn print_bytes(what: &str, bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader had what it wanted (`plugin-jobs man | head`); see `print_out`.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot print the {what}: {err}");
            ExitCode::FAILURE
        }
    }
}
