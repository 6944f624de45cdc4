//! The binary's own modules (not part of the library): the HTTP client commands (`jobs`,
//! `runs`, `run`, `trigger`, `pause`, `resume`) over `client`, the API's JSON and its text in `views` and `format`, the
//! offline manifest `check`, the `--log-format` of `serve`, and the generated completions and man
//! pages (`packaging`).

pub mod check;
pub mod client;
pub mod commands;
pub mod format;
pub mod logging;
pub mod packaging;
pub mod views;

/// Writes a command's output to stdout. A reader that went away (`plugin-jobs runs | head -1`)
/// ends the command at once with success, as Unix tools do, rather than with the panic
/// `println!` raises on a broken pipe (Rust ignores `SIGPIPE`, and the crate has no `unsafe`
/// to restore it): whatever the command did (a trigger) is done, and the reader had what it
/// wanted. Any other write error is an error (exit 1).
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {err}");
        std::process::exit(1);
    }
}
