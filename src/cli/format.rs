//! Text for people: aligned tables, relative times ("3s ago", "in 2m"), run durations, and
//! cells made safe for a terminal (text from workers may hold newlines or escape sequences).
//! Pure functions; the client commands and `check` print what these return.

use chrono::{DateTime, Utc};
use unicode_width::UnicodeWidthStr as _;

/// Columns separated by two spaces, each as wide as its widest cell; the last column is not
/// padded, so lines carry no trailing blanks. Widths are the columns a terminal gives the text
/// (`unicode-width`): a CJK character takes two, a combining mark none.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|title| (*title).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.iter().map(|cell| clean(cell)).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines, header first, each ending with a newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.width());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if index > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                // Columns on a terminal: `日本` takes four, a combining accent none.
                let pad = width.saturating_sub(cell.width());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `Label:  value` lines, the values aligned; values are cleaned like table cells.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in rows {
        let label = format!("{label}:");
        let line = format!("{label:<width$}  {}", clean(value));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line of text with every control character (newlines, tabs, terminal escapes) turned
/// into a space, so a worker's message cannot break a table or drive the terminal.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || is_bidi_control(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The invisible marks that reorder text after them (U+202E turns `exe.txt` around): a name
/// holding one would show on a terminal as something it is not.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` cut to at most `max` characters, with `…` where it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `t` relative to `now`: "now", "3s ago", "in 2m", "5h ago", "in 3d".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let millis = t.signed_duration_since(now).num_milliseconds();
    let seconds = millis.unsigned_abs() / 1000;
    if seconds == 0 {
        return "now".to_owned();
    }
    let span = span(seconds);
    if millis < 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A number of seconds in its largest whole unit: 59s, 2m, 5h, 3d.
fn span(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..172_800 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// A run's duration: 35ms, 1.2s, 2m05s.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ..0 => format!("{ms}ms"),
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => {
            let seconds = ms / 1000;
            format!("{}m{:02}s", seconds / 60, seconds % 60)
        }
    }
}

/// An optional instant as "<ISO> (<relative>)", or "-".
pub fn instant(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| format!("{} ({})", plugin_jobs::time::iso(t), relative(t, now)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn relative_times_use_the_largest_whole_unit_in_both_directions() {
        let now = at(0);
        assert_eq!(relative(now, now), "now");
        assert_eq!(relative(at(-3), now), "3s ago");
        assert_eq!(relative(at(59), now), "in 59s");
        assert_eq!(relative(at(150), now), "in 2m");
        assert_eq!(relative(at(-7_200), now), "2h ago");
        assert_eq!(relative(at(-172_799), now), "47h ago");
        assert_eq!(relative(at(3 * 86_400), now), "in 3d");
    }

    #[test]
    fn durations_read_as_milliseconds_seconds_or_minutes() {
        assert_eq!(duration_ms(35), "35ms");
        assert_eq!(duration_ms(1_250), "1.2s");
        assert_eq!(duration_ms(125_000), "2m05s");
    }

    #[test]
    fn tables_align_columns_by_characters_and_drop_trailing_blanks() {
        let mut table = Table::new(&["JOB", "STATUS", "NOTE"]);
        table.row(vec![
            "demo/heartbeat".into(),
            "active".into(),
            String::new(),
        ]);
        table.row(vec![
            "é/x".into(),
            "failed".into(),
            "bad\nline\x1b[31m".into(),
        ]);
        assert_eq!(
            table.render(),
            "JOB             STATUS  NOTE\n\
             demo/heartbeat  active\n\
             é/x             failed  bad line [31m\n"
        );
    }

    #[test]
    fn fields_align_their_values() {
        let text = fields(&[("Run", "r1".into()), ("Scheduled", "x\ny".into())]);
        assert_eq!(text, "Run:        r1\nScheduled:  x y\n");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a long message", 6), "a lon…");
    }

    #[test]
    fn wide_characters_keep_the_columns_aligned_and_bidi_marks_are_blanked() {
        let mut table = Table::new(&["JOB", "STATUS"]);
        table.row(vec!["py/日本語".to_owned(), "active".to_owned()]);
        table.row(vec!["py/ok".to_owned(), "paused".to_owned()]);
        assert_eq!(
            table.render(),
            "JOB        STATUS\npy/日本語  active\npy/ok      paused\n"
        );
        assert_eq!(clean("evil\u{202E}txt.exe"), "evil txt.exe");
    }
}
