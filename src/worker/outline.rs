//! The outline of a line too long to keep: what a worker's discarded stdout line says at the top
//! level of its JSON, read byte by byte as the line streams past, so that an answer over the
//! line limit still answers its call at once and a dropped `log` notification still leaves a
//! trace in its run, however the worker ordered its members and whatever its result holds.
//!
//! It follows the JSON structure (strings and their escapes, objects and arrays, keys, colons
//! and commas) and keeps only a few short members: the top-level `"jsonrpc"`, `"method"` and
//! `"id"`, and `"runId"` in a top-level `"params"` object. An answer's id counts only when the
//! whole line is one well-formed object: an id nested in a result, or one in a line cut short
//! or followed by more, names none of the host's calls, and ending a call on it would free a
//! job its worker may still run.
//!
//! Written by hand: a streaming JSON parser (`serde_json`'s `StreamDeserializer`, `struson`)
//! wants the whole line, or a reader it pulls values from at its own pace, and would build or
//! buffer the very members this exists to skip; this keeps at most [`KEPT_BYTES`] of any member
//! and [`MAX_DEPTH`] levels, whatever the line.

use serde_json::Value;

/// Most levels of nesting followed; a line nested deeper is not read as a message.
pub const MAX_DEPTH: usize = 128;

/// Most bytes kept of one key or member value; a longer one is known only to be too long.
pub const KEPT_BYTES: usize = 128;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A member this outline keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Other,
    Jsonrpc,
    Method,
    Id,
    Params,
    RunId,
}

/// What may come next in an object or array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object.
    Key,
    Colon,
    /// After `:` or after `,` in an array.
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    CommaOrEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Level {
    object: bool,
    expect: Expect,
    /// The key of the member being read, when this level's keys are kept.
    member: Member,
    /// The top-level `"params"` object, whose `"runId"` is kept.
    params: bool,
}

/// What the bytes being read are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Between,
    /// A key or a string value; `escaped` after a backslash.
    String {
        key: bool,
        escaped: bool,
    },
    /// A number or a literal.
    Scalar,
}

/// What the bytes being read are kept as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keeping {
    Nothing,
    Key,
    Value(Member),
}

/// The top level of one line, fed in pieces with [`Outline::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    /// Bytes of a byte order mark read before anything else, and bytes read before the object.
    bom: usize,
    skipped: usize,
    begun: bool,
    closed: bool,
    /// Not one JSON object: nothing it holds names a call.
    broken: bool,
    levels: Vec<Level>,
    token: Token,
    /// The key or value being kept, and what it is.
    kept: Vec<u8>,
    keeping: Keeping,
    jsonrpc: bool,
    method: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    run_id: Option<Vec<u8>>,
}

impl Default for Outline {
    fn default() -> Self {
        Self {
            bom: 0,
            skipped: 0,
            begun: false,
            closed: false,
            broken: false,
            levels: Vec::new(),
            token: Token::Between,
            kept: Vec::new(),
            keeping: Keeping::Nothing,
            jsonrpc: false,
            method: None,
            id: None,
            run_id: None,
        }
    }
}

impl Outline {
    /// Reads the next piece of the line (without its newline).
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() && !self.broken {
            // The bulk of a long line is the inside of a string nobody keeps: skipped to its
            // next quote or backslash at once, not byte by byte.
            let plain = Token::String {
                key: false,
                escaped: false,
            };
            if self.token == plain && self.keeping == Keeping::Nothing {
                match bytes[at..].iter().position(|&b| b == b'"' || b == b'\\') {
                    Some(skip) => at += skip,
                    None => return,
                }
            }
            self.step(bytes[at]);
            at += 1;
        }
    }

    /// The id of the answer the line was: a well-formed object with a top-level `"jsonrpc"`, no
    /// `"method"` (a request or notification of the worker's own has ids of its own), and a
    /// top-level `"id"` that is a string or an integer.
    pub fn answered_id(&self) -> Option<Value> {
        if !self.complete() || !self.jsonrpc || self.method.is_some() {
            return None;
        }
        super::rpc::exact_id(std::str::from_utf8(self.id.as_deref()?).ok()?)
    }

    /// The run a `log` notification named (`"method":"log"`, `"params":{"runId":…}`), read
    /// from however much of the line there is.
    pub fn logged_run_id(&self) -> Option<String> {
        let method: String = serde_json::from_slice(self.method.as_deref()?).ok()?;
        if method != "log" {
            return None;
        }
        serde_json::from_slice(self.run_id.as_deref()?).ok()
    }

    /// Whether the line was one whole object and nothing after it (anything after the object
    /// breaks it, so a closed object is never inside a string or a scalar).
    fn complete(&self) -> bool {
        self.closed && !self.broken
    }

    fn step(&mut self, byte: u8) {
        match self.token {
            Token::String { key, escaped } => {
                self.keep(byte);
                if !escaped && byte == b'"' {
                    self.end_string(key);
                } else {
                    let escaped = !escaped && byte == b'\\';
                    self.token = Token::String { key, escaped };
                }
                return;
            }
            Token::Scalar if !ends_scalar(byte) => {
                self.keep(byte);
                return;
            }
            Token::Scalar => self.end_value(),
            Token::Between => {}
        }
        if !self.begun {
            self.begin(byte);
            return;
        }
        if byte.is_ascii_whitespace() {
            return;
        }
        let Some(level) = self.levels.last().copied().filter(|_| !self.closed) else {
            // Anything after the object: not one message.
            self.broken = true;
            return;
        };
        match (byte, level.expect) {
            (b'"', Expect::KeyOrEnd | Expect::Key) if level.object => {
                let kept = self.levels.len() == 1 || level.params;
                self.keeping = if kept { Keeping::Key } else { Keeping::Nothing };
                self.kept.clear();
                self.keep(byte);
                self.token = Token::String {
                    key: true,
                    escaped: false,
                };
            }
            (b':', Expect::Colon) => self.expect(Expect::Value),
            (b',', Expect::CommaOrEnd) => {
                self.expect(if level.object {
                    Expect::Key
                } else {
                    Expect::Value
                });
            }
            (b'}', Expect::KeyOrEnd | Expect::CommaOrEnd) if level.object => self.close(),
            (b']', Expect::ValueOrEnd | Expect::CommaOrEnd) if !level.object => self.close(),
            (b'{' | b'[', Expect::Value | Expect::ValueOrEnd) => {
                if let Some(member) = self.kept_member() {
                    // An object or array where a short string or integer was meant.
                    self.found(member, vec![byte]);
                }
                let params = self.levels.len() == 1 && level.member == Member::Params;
                self.expect(Expect::CommaOrEnd);
                self.open(byte == b'{', params && byte == b'{');
            }
            (b'"', Expect::Value | Expect::ValueOrEnd) => {
                self.begin_value(byte);
                self.token = Token::String {
                    key: false,
                    escaped: false,
                };
            }
            (b'}' | b']' | b':' | b',' | b'{' | b'[' | b'"', _) => self.broken = true,
            (_, Expect::Value | Expect::ValueOrEnd) => {
                self.begin_value(byte);
                self.token = Token::Scalar;
            }
            _ => self.broken = true,
        }
    }

    /// Before the object: whitespace and a byte order mark may come first.
    fn begin(&mut self, byte: u8) {
        // A byte order mark counts only as the very first bytes (whitespace before it is text).
        if self.bom < BOM.len() && byte == BOM[self.bom] && self.skipped == self.bom {
            self.bom += 1;
            self.skipped += 1;
            return;
        }
        self.skipped += 1;
        if (1..BOM.len()).contains(&self.bom) {
            self.broken = true;
        } else if byte == b'{' {
            self.begun = true;
            self.open(true, false);
        } else if !byte.is_ascii_whitespace() {
            self.broken = true;
        }
    }

    fn open(&mut self, object: bool, params: bool) {
        if self.levels.len() == MAX_DEPTH {
            self.broken = true;
            return;
        }
        self.levels.push(Level {
            object,
            expect: if object {
                Expect::KeyOrEnd
            } else {
                Expect::ValueOrEnd
            },
            member: Member::Other,
            params,
        });
    }

    fn close(&mut self) {
        self.levels.pop();
        if self.levels.is_empty() {
            self.closed = true;
        }
    }

    fn expect(&mut self, expect: Expect) {
        if let Some(level) = self.levels.last_mut() {
            level.expect = expect;
        }
    }

    /// The member whose value starts here, when it is one this outline keeps.
    fn kept_member(&self) -> Option<Member> {
        let level = self.levels.last()?;
        let kept = match (self.levels.len(), level.member) {
            (1, member @ (Member::Method | Member::Id)) => Some(member),
            (2, Member::RunId) if level.params => Some(Member::RunId),
            _ => None,
        };
        kept.filter(|_| level.object)
    }

    fn begin_value(&mut self, byte: u8) {
        self.keeping = self.kept_member().map_or(Keeping::Nothing, Keeping::Value);
        self.kept.clear();
        self.keep(byte);
        self.expect(Expect::CommaOrEnd);
    }

    fn keep(&mut self, byte: u8) {
        if self.keeping != Keeping::Nothing && self.kept.len() <= KEPT_BYTES {
            self.kept.push(byte);
        }
    }

    fn end_string(&mut self, key: bool) {
        match std::mem::replace(&mut self.keeping, Keeping::Nothing) {
            Keeping::Key => {
                let member = match (self.levels.len(), self.kept.as_slice()) {
                    (_, _) if self.kept.len() > KEPT_BYTES => Member::Other,
                    (1, b"\"jsonrpc\"") => Member::Jsonrpc,
                    (1, b"\"method\"") => Member::Method,
                    (1, b"\"id\"") => Member::Id,
                    (1, b"\"params\"") => Member::Params,
                    (2, b"\"runId\"") => Member::RunId,
                    _ => Member::Other,
                };
                if member == Member::Jsonrpc {
                    self.jsonrpc = true;
                }
                if let Some(level) = self.levels.last_mut() {
                    level.member = member;
                }
                self.expect(Expect::Colon);
            }
            Keeping::Value(member) => self.keep_value(member),
            Keeping::Nothing if key => self.expect(Expect::Colon),
            Keeping::Nothing => {}
        }
        self.token = Token::Between;
    }

    fn end_value(&mut self) {
        if let Keeping::Value(member) = std::mem::replace(&mut self.keeping, Keeping::Nothing) {
            self.keep_value(member);
        }
        self.token = Token::Between;
    }

    fn keep_value(&mut self, member: Member) {
        // A value longer than kept is none of the short ones this reads: kept empty, it parses
        // as nothing.
        let value = if self.kept.len() <= KEPT_BYTES {
            std::mem::take(&mut self.kept)
        } else {
            Vec::new()
        };
        self.found(member, value);
    }

    fn found(&mut self, member: Member, value: Vec<u8>) {
        let value = Some(value);
        match member {
            Member::Method => self.method = value,
            Member::Id => self.id = value,
            Member::RunId => self.run_id = value,
            Member::Other | Member::Jsonrpc | Member::Params => {}
        }
    }
}

/// Whether `byte` ends a number or literal.
fn ends_scalar(byte: u8) -> bool {
    byte.is_ascii_whitespace() || matches!(byte, b',' | b'}' | b']' | b':' | b'"' | b'{' | b'[')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The outline of `line`, fed `piece` bytes at a time.
    fn outline(line: &[u8], piece: usize) -> Outline {
        let mut outline = Outline::default();
        for chunk in line.chunks(piece.max(1)) {
            outline.feed(chunk);
        }
        outline
    }

    fn id(line: &str) -> Option<Value> {
        outline(line.as_bytes(), 7).answered_id()
    }

    #[test]
    fn reads_the_id_of_an_answer_wherever_its_members_are() {
        let bulk = "x".repeat(3000);
        assert_eq!(
            id(&format!(r#"{{"jsonrpc":"2.0","id":7,"result":"{bulk}"}}"#)),
            Some(json!(7))
        );
        assert_eq!(
            id(&format!(
                r#"{{ "result" : "{bulk}" , "id" : "r-1" , "jsonrpc" : "2.0" }}"#
            )),
            Some(json!("r-1"))
        );
        // "jsonrpc" after the bulk, a "method" and an "id" nested in the result.
        assert_eq!(
            id(&format!(
                r#"{{"result":{{"id":2,"method":"GET","rows":["{bulk}"]}},"id":9,"jsonrpc":"2.0"}}"#
            )),
            Some(json!(9))
        );
        // Behind a byte order mark, and with escapes in the bulk.
        assert_eq!(
            id(&format!(
                "\u{FEFF}{{\"jsonrpc\":\"2.0\",\"result\":\"\\\"id\\\":3 \\\\{bulk}\",\"id\":4}}"
            )),
            Some(json!(4))
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":18446744073709551615,"result":null}"#),
            Some(json!(18446744073709551615_u64))
        );
    }

    /// An `"id"` that is not the answer's own names none of the host's calls: ending one would
    /// free a job its worker is still running.
    #[test]
    fn names_no_call_unless_the_line_is_one_whole_answer() {
        let bulk = "x".repeat(3000);
        let refused = [
            // Output of the worker's own: no "jsonrpc", or not an object.
            format!(r#"{{"id": 2, "customer": "{bulk}"}}"#),
            format!(r#"exported row {{"jsonrpc":"2.0","id": 2, "customer": "{bulk}"}}"#),
            // Only nested ids.
            format!(r#"{{"jsonrpc":"2.0","result":{{"rows":"{bulk}","id":2}}}}"#),
            // A request or notification of the worker's.
            format!(r#"{{"jsonrpc":"2.0","params":{{"x":"{bulk}"}},"method":"log","id":7}}"#),
            // Cut short, or followed by more.
            format!(r#"{{"jsonrpc":"2.0","id":7,"result":"{bulk}""#),
            format!(r#"{{"jsonrpc":"2.0","id":7,"result":"{bulk}"}} {{"#),
            format!(r#"{{"jsonrpc":"2.0","id":7,"result":"{bulk}"}}}}"#),
            // Ids that are not integers or strings.
            format!(r#"{{"jsonrpc":"2.0","id":7.5,"result":"{bulk}"}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":{{"n":7}},"result":"{bulk}"}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":"{bulk}","result":1}}"#),
            // Broken structure: a missing colon, a mismatched bracket, whitespace before a BOM.
            format!(r#"{{"jsonrpc":"2.0","id" 7,"result":"{bulk}"}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":7,"result":["{bulk}"}}}}"#),
            format!(" \u{FEFF}{{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"{bulk}\"}}"),
        ];
        for line in refused {
            assert_eq!(id(&line), None, "{}", &line[..line.len().min(120)]);
        }
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{}{}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(id(&deep), None, "nested deeper than followed");
    }

    #[test]
    fn reads_the_run_of_a_log_notification() {
        let bulk = "x".repeat(3000);
        let run = |line: &str| outline(line.as_bytes(), 5).logged_run_id();
        let sorted = format!(
            r#"{{"jsonrpc":"2.0","method":"log","params":{{"level":"info","message":"{bulk}","runId":"r-9"}}}}"#
        );
        assert_eq!(run(&sorted).as_deref(), Some("r-9"));
        // Read however much of the line there is.
        let cut = format!(
            r#"{{"jsonrpc":"2.0","method":"log","params":{{"runId":"r-1","message":"{bulk}"#
        );
        assert_eq!(run(&cut).as_deref(), Some("r-1"));
        // A "runId" that is not the params' own, or another method.
        let nested = format!(
            r#"{{"jsonrpc":"2.0","method":"log","params":{{"message":{{"runId":"r-2","x":"{bulk}"}}}}}}"#
        );
        assert_eq!(run(&nested), None);
        let other = format!(
            r#"{{"jsonrpc":"2.0","method":"progress","params":{{"runId":"r-3","x":"{bulk}"}}}}"#
        );
        assert_eq!(run(&other), None);
        assert_eq!(outline(sorted.as_bytes(), 5).answered_id(), None);
    }

    /// A key: one of those this outline looks for, or another.
    fn key() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            Just("id".to_owned()),
            Just("method".to_owned()),
            Just("jsonrpc".to_owned()),
            Just("runId".to_owned()),
            Just("params".to_owned()),
            "[a-z\"\\\\{}\\[\\]:, ]{0,6}",
        ]
    }

    /// A JSON value of a few levels, with the keys this outline looks for among others.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z\"\\\\{}\\[\\]:,\u{FEFF}\u{e9} ]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..5)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// What a full parse of `message` says the outline should find.
    fn expected(message: &Value) -> (Option<Value>, Option<String>) {
        let object = message.as_object();
        let member = |key: &str| object.and_then(|o| o.get(key));
        let id = member("id")
            .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
            .filter(|id| id.to_string().len() <= KEPT_BYTES)
            .filter(|_| member("jsonrpc").is_some() && member("method").is_none())
            .cloned();
        let run = (member("method") == Some(&json!("log")))
            .then(|| member("params")?.get("runId")?.as_str().map(str::to_owned))
            .flatten()
            .filter(|run| json!(run).to_string().len() <= KEPT_BYTES);
        (id, run)
    }

    proptest! {
        /// On any object `serde_json` writes (compact or pretty with its newlines turned into
        /// spaces, fed in pieces of any size), the outline finds what a full parse finds; cut
        /// anywhere, it names no call.
        #[test]
        fn agrees_with_a_full_parse(
            message in prop::collection::vec((key(), value()), 0..6),
            pretty in any::<bool>(),
            piece in 1usize..64,
            cut in any::<prop::sample::Index>(),
        ) {
            let mut object = serde_json::Map::new();
            object.extend(message);
            let message = Value::Object(object);
            let line = if pretty {
                serde_json::to_string_pretty(&message).expect("written").replace('\n', " ")
            } else {
                message.to_string()
            };
            let read = outline(line.as_bytes(), piece);
            prop_assert_eq!((read.answered_id(), read.logged_run_id()), expected(&message));
            let at = cut.index(line.len());
            prop_assert_eq!(outline(&line.as_bytes()[..at], piece).answered_id(), None);
        }

        /// Messages with the members the host's answers and log notifications have, in any order
        /// and with anything in their result.
        #[test]
        fn finds_the_members_of_answers_and_notifications(
            id in prop_oneof![any::<u64>().prop_map(Value::from), "[a-z0-9-]{1,20}".prop_map(Value::from)],
            result in value(),
            run in "[a-z0-9-]{1,36}",
            turn in 0usize..3,
        ) {
            let mut answer = vec![
                ("jsonrpc", json!("2.0")),
                ("id", id.clone()),
                ("result", result.clone()),
            ];
            let mut note = vec![
                ("jsonrpc", json!("2.0")),
                ("method", json!("log")),
                ("params", json!({"message": result, "runId": run, "level": "info"})),
            ];
            answer.rotate_left(turn);
            note.rotate_left(turn);
            let write = |members: &[(&str, Value)]| {
                let body: Vec<String> = members
                    .iter()
                    .map(|(key, value)| format!("{}:{value}", json!(key)))
                    .collect();
                format!("{{{}}}", body.join(","))
            };
            let answer = write(&answer);
            prop_assert_eq!(outline(answer.as_bytes(), 13).answered_id(), Some(id));
            let note = write(&note);
            let read = outline(note.as_bytes(), 13);
            prop_assert_eq!(read.logged_run_id(), Some(run));
            prop_assert_eq!(read.answered_id(), None);
        }
    }
}
