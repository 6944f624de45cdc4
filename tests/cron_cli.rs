//! `plugin-jobs cron`: the preview of an expression's next slots, run as the real binary.

use std::process::{Command, Output};

use serde_json::{Value, json};

fn cron(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugin-jobs"))
        .arg("cron")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

#[test]
fn the_preview_shows_utc_local_time_offset_and_the_skipped_gap_slot() {
    let output = cron(&[
        "5 * * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2027-03-14T06:00:00Z",
        "--count",
        "4",
    ]);
    assert_eq!(
        stdout(&output),
        "2027-03-14T06:05:00.000Z  2027-03-14 01:05:00 EST (-05:00)\n\
         2027-03-14T07:05:00.000Z  2027-03-14 03:05:00 EDT (-04:00)  \
         02:05 does not exist on 2027-03-14: skipped, wildcard job\n\
         2027-03-14T08:05:00.000Z  2027-03-14 04:05:00 EDT (-04:00)\n\
         2027-03-14T09:05:00.000Z  2027-03-14 05:05:00 EDT (-04:00)\n"
    );
}

#[test]
fn json_prints_the_same_slots_as_an_array_of_objects() {
    let output = cron(&[
        "30 1 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2027-11-06T12:00:00Z",
        "--count",
        "2",
        "--json",
    ]);
    let slots: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(
        slots,
        json!([
            {
                "utc": "2027-11-07T05:30:00.000Z",
                "local": "2027-11-07T01:30:00-04:00",
                "zone": "EDT",
                "note": "01:30 repeats on 2027-11-07: runs once, at the first pass",
            },
            {
                "utc": "2027-11-08T06:30:00.000Z",
                "local": "2027-11-08T01:30:00-05:00",
                "zone": "EST",
                "note": null,
            },
        ])
    );
}

#[test]
fn an_expression_that_runs_out_says_there_is_no_next_slot() {
    let output = cron(&["@yearly", "--from", "9998-06-01T00:00:00Z", "--count", "3"]);
    assert_eq!(
        stdout(&output),
        "9999-01-01T00:00:00.000Z  9999-01-01 00:00:00 UTC (+00:00)\n\
         no next slot after 9999-01-01T00:00:00.000Z\n"
    );
    let output = cron(&["@yearly", "--from", "9999-06-01T00:00:00Z", "--json"]);
    assert_eq!(stdout(&output).trim(), "[]");
}

#[test]
fn bad_input_is_refused_naming_what_was_wrong() {
    let output = cron(&["0 0 L-2 * *"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("day-of-month token \"L-2\""), "{stderr}");

    let output = cron(&["* * * * *", "--from", "yesterday"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--from") && stderr.contains("RFC 3339"),
        "{stderr}"
    );

    let output = cron(&["* * * * *", "--count", "0"]);
    assert_eq!(output.status.code(), Some(2));
}

/// A reader that goes away (`plugin-jobs cron … | head -1`) ends the command quietly with
/// success, as Unix tools do: no panic, no backtrace, no exit code 101.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::Read;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-jobs"))
        .args(["cron", "* * * * * *", "--count", "10000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0_u8; 64];
    stdout.read_exact(&mut first).expect("the first slot");
    drop(stdout);
    let output = child.wait_with_output().expect("it ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// A schedule that never fires says why, as `check` and the API do.
#[test]
fn a_schedule_that_never_fires_says_why() {
    let output = cron(&["0 0 30 2 *"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("never fires: February has no day 30"),
        "{stderr}"
    );
}
