//! DQL built from user text: `dynatrace::dql::string_literal`, the only way user text reaches a
//! query, and the validated fragments (`Timeframe`, `FilterFragment`, `Cursor`).
//!
//! Property of the literal: for any string, `fetch logs | filter content == <literal> | limit 1`
//! is read as exactly that pipeline, with one string literal whose value is the input. It is
//! checked twice, by an independent tokenizer of DQL string literals written here (double
//! quotes; `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes; no raw line break) and by the
//! sandbox tenant's DQL parser (the one that answers `query:verify`), whose parse tree must be
//! the reference statement's with only the literal's value changed.

use std::sync::OnceLock;

use dynatrace_mcp::dynatrace::dql::{self, Cursor, FilterFragment, Timeframe};
use dynatrace_sandbox::dql as grail;

use crate::input::Input;

const PREFIX: &str = "fetch logs | filter content == ";
const SUFFIX: &str = " | limit 1";

pub fn fuzz_one(data: &[u8]) {
    let mut input = Input::new(data);
    let value = match input.below(4) {
        0 => String::from_utf8_lossy(input.rest()).into_owned(),
        _ => input.string(256),
    };
    check_literal(&value);
    check_fragments(&value);
}

pub fn check_literal(value: &str) {
    let literal = dql::string_literal(value);
    assert!(
        !literal.contains('\n') && !literal.contains('\r'),
        "a literal holds a raw line break: {literal:?}"
    );
    assert!(
        !literal.chars().any(char::is_control),
        "a literal holds a raw control character: {literal:?}"
    );
    let statement = format!("{PREFIX}{literal}{SUFFIX}");

    // 1. The independent tokenizer: the literal starts where it was put, ends where it was put,
    //    and reads back as the input; what follows is the rest of the pipeline.
    let (decoded, end) = read_literal(&statement, PREFIX.len())
        .unwrap_or_else(|e| panic!("{e} in {statement:?} (input {value:?})"));
    assert_eq!(
        end,
        PREFIX.len() + literal.len(),
        "the literal ends early or late in {statement:?} (input {value:?})"
    );
    assert_eq!(decoded, value, "the literal reads back differently");
    assert_eq!(&statement[end..], SUFFIX);

    // 2. The sandbox tenant's parser sees the same pipeline with this literal in it.
    let parsed = grail::parse(&statement)
        .unwrap_or_else(|e| panic!("the DQL parser refused {statement:?}: {e:?}"));
    let tree = format!("{parsed:?}");
    let with_value = format!("Lit(Str({value:?}))");
    assert!(
        tree.contains(&with_value),
        "the parsed literal is not the input: {tree} (input {value:?})"
    );
    assert_eq!(
        tree.replacen(&with_value, "Lit(Str(\"x\"))", 1),
        *reference_tree(),
        "the statement parses differently from the reference (input {value:?})"
    );
}

/// The parse tree of the statement with the literal `"x"`.
fn reference_tree() -> &'static String {
    static TREE: OnceLock<String> = OnceLock::new();
    TREE.get_or_init(|| {
        let statement = format!("{PREFIX}\"x\"{SUFFIX}");
        format!("{:?}", grail::parse(&statement).expect("reference parses"))
    })
}

/// Reads the DQL string literal at byte `start` of `text`; returns its value and the byte after
/// its closing quote.
fn read_literal(text: &str, start: usize) -> Result<(String, usize), String> {
    let mut chars = text[start..].char_indices();
    if chars.next() != Some((0, '"')) {
        return Err("no opening quote".into());
    }
    let mut value = String::new();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, start + at + 1)),
            '\n' | '\r' => return Err("a raw line break inside a literal".into()),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('"') => value.push('"'),
                Some('\\') => value.push('\\'),
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some('t') => value.push('\t'),
                Some('u') => {
                    let hex: String = (0..4)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    if hex.len() != 4 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(format!("a bad \\u escape: {hex:?}"));
                    }
                    let code = u32::from_str_radix(&hex, 16).unwrap();
                    value.push(char::from_u32(code).ok_or("a \\u escape of a surrogate")?);
                }
                other => return Err(format!("an unknown escape \\{other:?}")),
            },
            c => value.push(c),
        }
    }
    Err("an unterminated literal".into())
}

/// The validated fragments: what they accept can never carry a pipe or a line break into a
/// query, and what they produce parses.
fn check_fragments(raw: &str) {
    if let Ok(filter) = FilterFragment::parse(raw) {
        let text = filter.as_str();
        assert!(
            !text.contains('|') && !text.contains('\n') && !text.contains('\r'),
            "a filter fragment can append commands: {text:?}"
        );
    }
    if let Ok(timeframe) = Timeframe::parse(raw) {
        let shown = timeframe.to_string();
        assert_eq!(Timeframe::parse(&shown), Ok(timeframe), "{raw:?}");
        assert!(
            shown.chars().all(|c| c.is_ascii_alphanumeric()),
            "a timeframe is more than digits and a unit: {shown:?}"
        );
        grail::parse(&format!("fetch logs, from: now()-{shown}"))
            .unwrap_or_else(|e| panic!("timeframe {shown:?} does not parse: {e:?}"));
    }
    if let Ok(cursor) = Cursor::parse(raw) {
        let expression = cursor.to_dql();
        let query = dql::with_cursor("fetch logs | sort timestamp desc | limit 5", &cursor);
        assert!(
            query.contains(&expression),
            "the cursor is not in {query:?}"
        );
        grail::parse(&query)
            .unwrap_or_else(|e| panic!("a query with cursor {raw:?} does not parse: {e:?}"));
    }
}
