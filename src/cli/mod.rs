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
