//! A small DQL interpreter for the simulated tenant: enough of the language to run what the
//! server's tools send and to make `demo` worth trying, with Grail's error envelope (message and
//! 1-based line/column) for what it does not understand.
//!
//! Starting commands: `fetch <source> [, from:…] [, to:…]`, `smartscapeNodes "<TYPE>"` (`"*"`,
//! case-insensitive, or `{"HOST", "SERVICE"}`), `timeseries [alias =] avg(<metric>), by:{…},
//! from:, interval:, filter:` (synthetic metric series) and `data record(…), …`.
//!
//! Commands: `filter`, `filterOut`, `search "text" OR "*wild*card*"`, `limit`, `fields`,
//! `fieldsKeep`, `fieldsAdd`, `fieldsRemove`, `fieldsRename`, `sort a desc, b asc`,
//! `summarize [alias =] count()|countIf|countDistinct|sum|avg|min|max|collectDistinct|
//! collectArray|takeFirst|takeLast…, by: {…}`, `dedup {a, b}, sort: {timestamp desc}` (the first
//! row per key in that order survives), `expand field` / `expand alias = field [, limit: n]`,
//! `makeTimeseries count(), by:{…}, interval:` and `append [ <query> ]`.
//!
//! Expressions: literals (strings with escapes, numbers, booleans, null, durations such as
//! `24h`), fields (dotted or `backticked`), `now()`, arithmetic on times and durations (also on
//! timestamps held as strings), comparisons (longs arrive as JSON strings and compare as
//! numbers), `and`/`or`/`not`, `{…}` lists, and the functions in `FUNCTIONS`: `contains`,
//! `startsWith`, `endsWith`, `matchesPhrase`, `matchesValue` (wildcards, arrays),
//! `isNull`, `isNotNull`, `exists`, `in(x, {…})` / `in(x, arrayField)`, `lower`, `upper`,
//! `toString` (arrays as `["a", "b"]`), `toTimestamp`, `toLong`, `toDouble`, `arraySize`,
//! `arraySum`/`Avg`/`Min`/`Max`/`First`/`Last`, `coalesce`, `concat`, `array`, `bin`,
//! `toSmartscapeId`, `toUid`, `entityName`. Unknown functions and commands fail at parse time
//! with `UNKNOWN_FUNCTION` / `UNKNOWN_COMMAND` and their position.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// A position in the query text (1-based line and column, 0-based index), as Grail reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub index: usize,
    pub line: usize,
    pub column: usize,
}

/// A query error with Grail's fields.
#[derive(Debug, Clone)]
pub struct DqlError {
    pub error_type: &'static str,
    pub message: String,
    pub start: Pos,
    pub end: Pos,
}

/// The left side of `name = value`, which must be a field name; otherwise Grail's
/// INVALID_ASSIGNMENT at `at`.
fn assigned_field(left: Expr, at: Pos) -> Result<String, DqlError> {
    match left {
        Expr::Field(name) => Ok(name),
        _ => Err(DqlError::at(
            "INVALID_ASSIGNMENT",
            "Only a field name can be assigned.",
            at,
            at,
        )),
    }
}

impl DqlError {
    fn at(error_type: &'static str, message: impl Into<String>, start: Pos, end: Pos) -> Self {
        Self {
            error_type,
            message: message.into(),
            start,
            end,
        }
    }

    /// Grail's 400 body for this error.
    pub fn envelope(&self, query: &str) -> Value {
        json!({
            "error": {
                "code": 400,
                "message": self.error_type,
                "details": {
                    "exceptionType": "DQL-SYNTAX-ERROR",
                    "errorType": self.error_type,
                    "errorMessage": self.message,
                    "errorMessageFormat": self.message,
                    "errorMessageFormatSpecifierTypes": [],
                    "arguments": [],
                    "queryString": query,
                    "queryId": "00000000-0000-4000-8000-000000000000",
                    "syntaxErrorPosition": self.position_json(),
                }
            }
        })
    }

    pub fn position_json(&self) -> Value {
        let p = |p: Pos| json!({"column": p.column, "index": p.index, "line": p.line});
        json!({"start": p(self.start), "end": p(self.end)})
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    /// A duration literal in nanoseconds (`24h`, `5m`, `30s`, `7d`).
    Dur(i128),
    Sym(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: Pos,
    end: Pos,
}

fn lex(query: &str) -> Result<Vec<Token>, DqlError> {
    let chars: Vec<(usize, char)> = query.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut col = 1;
    let pos = |index: usize, line: usize, column: usize| Pos {
        index,
        line,
        column,
    };
    while i < chars.len() {
        let (index, c) = chars[i];
        let start = pos(index, line, col);
        let advance = |n: usize, i: &mut usize, col: &mut usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            advance(1, &mut i, &mut col);
            continue;
        }
        if c == '/' && chars.get(i + 1).map(|x| x.1) == Some('/') {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            let mut value = String::new();
            let mut j = i + 1;
            let mut closed = false;
            while j < chars.len() {
                let ch = chars[j].1;
                if ch == '\\' {
                    let next = chars.get(j + 1).map(|x| x.1);
                    match next {
                        Some('"') => value.push('"'),
                        Some('\\') => value.push('\\'),
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some('u') => {
                            let hex: String = chars[j + 2..(j + 6).min(chars.len())]
                                .iter()
                                .map(|x| x.1)
                                .collect();
                            if let Some(ch) =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            {
                                value.push(ch);
                                j += 4;
                            } else {
                                return Err(DqlError::at(
                                    "INVALID_ESCAPE",
                                    "Invalid unicode escape in a string.",
                                    start,
                                    start,
                                ));
                            }
                        }
                        _ => {
                            return Err(DqlError::at(
                                "INVALID_ESCAPE",
                                "Invalid escape sequence in a string.",
                                start,
                                start,
                            ));
                        }
                    }
                    j += 2;
                    continue;
                }
                if ch == '"' {
                    closed = true;
                    break;
                }
                if ch == '\n' {
                    break;
                }
                value.push(ch);
                j += 1;
            }
            if !closed {
                return Err(DqlError::at(
                    "UNTERMINATED_STRING",
                    "The string literal is not terminated: add a closing `\"`.",
                    start,
                    start,
                ));
            }
            let n = j + 1 - i;
            advance(n, &mut i, &mut col);
            let end = pos(chars[j].0, line, col - 1);
            tokens.push(Token {
                tok: Tok::Str(value),
                start,
                end,
            });
            continue;
        }
        if c == '`' {
            let mut j = i + 1;
            let mut name = String::new();
            while j < chars.len() && chars[j].1 != '`' {
                name.push(chars[j].1);
                j += 1;
            }
            if j >= chars.len() {
                return Err(DqlError::at(
                    "UNTERMINATED_IDENTIFIER",
                    "The backtick-quoted field name is not terminated.",
                    start,
                    start,
                ));
            }
            let n = j + 1 - i;
            advance(n, &mut i, &mut col);
            tokens.push(Token {
                tok: Tok::Ident(name),
                start,
                end: pos(chars[j].0, line, col - 1),
            });
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_ascii_digit() || chars[j].1 == '.') {
                j += 1;
            }
            let digits: String = chars[i..j].iter().map(|x| x.1).collect();
            let mut unit = String::new();
            let mut k = j;
            while k < chars.len() && chars[k].1.is_ascii_alphabetic() {
                unit.push(chars[k].1);
                k += 1;
            }
            let number: f64 = digits.parse().map_err(|_| {
                DqlError::at(
                    "INVALID_NUMBER",
                    format!("`{digits}` is not a number."),
                    start,
                    start,
                )
            })?;
            let tok = if unit.is_empty() {
                Tok::Num(number)
            } else {
                let nanos: f64 = match unit.as_str() {
                    "ns" => 1.0,
                    "us" => 1e3,
                    "ms" => 1e6,
                    "s" => 1e9,
                    "m" => 60e9,
                    "h" => 3600e9,
                    "d" => 86400e9,
                    "w" => 604800e9,
                    "M" => 2_592_000e9,
                    "y" => 31_536_000e9,
                    _ => {
                        return Err(DqlError::at(
                            "INVALID_DURATION",
                            format!(
                                "`{digits}{unit}` is not a valid duration; use a unit such as s, m, h or d."
                            ),
                            start,
                            start,
                        ));
                    }
                };
                Tok::Dur((number * nanos) as i128)
            };
            let n = k - i;
            advance(n, &mut i, &mut col);
            tokens.push(Token {
                tok,
                start,
                end: pos(chars[k - 1].0, line, col - 1),
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let mut j = i;
            while j < chars.len()
                && (chars[j].1.is_alphanumeric() || matches!(chars[j].1, '_' | '.' | '$' | '@'))
            {
                j += 1;
            }
            let word: String = chars[i..j].iter().map(|x| x.1).collect();
            let word = word.trim_end_matches('.').to_string();
            let n = word.chars().count();
            advance(n, &mut i, &mut col);
            tokens.push(Token {
                tok: Tok::Ident(word),
                start,
                end: pos(chars[i - 1].0, line, col - 1),
            });
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())]
            .iter()
            .map(|x| x.1)
            .collect();
        let sym: Option<&'static str> = match two.as_str() {
            "==" => Some("=="),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(sym) = sym {
            advance(2, &mut i, &mut col);
            tokens.push(Token {
                tok: Tok::Sym(sym),
                start,
                end: pos(index + 1, line, col - 1),
            });
            continue;
        }
        let sym: &'static str = match c {
            '|' => "|",
            ',' => ",",
            ':' => ":",
            '(' => "(",
            ')' => ")",
            '{' => "{",
            '}' => "}",
            '[' => "[",
            ']' => "]",
            '<' => "<",
            '>' => ">",
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            '=' => "=",
            '!' => "!",
            _ => {
                return Err(DqlError::at(
                    "UNEXPECTED_CHARACTER",
                    format!("The character `{c}` is not allowed here."),
                    start,
                    start,
                ));
            }
        };
        advance(1, &mut i, &mut col);
        tokens.push(Token {
            tok: Tok::Sym(sym),
            start,
            end: start,
        });
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Debug, Clone)]
pub enum Expr {
    Lit(Val),
    Field(String),
    Now,
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(&'static str, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>, Pos),
    List(Vec<Expr>),
    /// `record(a = 1, b = "x")`
    Record(Vec<(String, Expr)>),
}

#[derive(Debug, Clone)]
enum Agg {
    Count,
    CountIf(Expr),
    CountDistinct(Expr),
    Sum(Expr),
    Avg(Expr),
    Min(Expr),
    Max(Expr),
    CollectDistinct(Expr),
    CollectArray(Expr),
    TakeFirst(Expr),
    TakeLast(Expr),
}

#[derive(Debug, Clone)]
enum Command {
    Filter(Expr, bool),
    Limit(usize),
    Fields(Vec<(String, Expr)>),
    FieldsAdd(Vec<(String, Expr)>),
    FieldsRemove(Vec<String>),
    /// `fieldsRename new = old`
    FieldsRename(Vec<(String, String)>),
    Sort(Vec<(Expr, bool)>),
    Summarize(Vec<(String, Agg)>, Vec<(String, Expr)>),
    /// `dedup {a, b}, sort: {timestamp desc}`: the first row per key in the sort order survives.
    Dedup(Vec<Expr>, Vec<(Expr, bool)>),
    /// `search "text" OR "*pattern*"`: string literals match anywhere in the record.
    Search(Expr),
    /// `expand tags` or `expand tag = tags`, with an optional `limit:`.
    Expand {
        name: String,
        expr: Expr,
        keep_source: bool,
        limit: Option<usize>,
    },
    /// `append [ <query> ]`
    Append(Box<Query>),
    /// `makeTimeseries count(), by: {…}, interval: 5m`
    MakeTimeseries(Box<Series>),
}

/// A data object a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataRef {
    /// `fetch <name>`
    Fetch(String),
    /// `smartscapeNodes "<type>"` (`*` for every type; types are upper-cased).
    SmartscapeNodes(Vec<String>),
    /// `timeseries avg(<metric>)…`: the metric keys read.
    Metrics(Vec<String>),
}

impl DataRef {
    /// How error messages name the data object.
    pub fn name(&self) -> String {
        match self {
            DataRef::Fetch(name) => name.clone(),
            DataRef::SmartscapeNodes(types) => format!("smartscapeNodes {}", types.join(", ")),
            DataRef::Metrics(keys) => format!("metrics {}", keys.join(", ")),
        }
    }
}

#[derive(Debug, Clone)]
enum Start {
    Fetch {
        source: String,
        from: Option<Expr>,
        to: Option<Expr>,
    },
    Smartscape(Vec<String>),
    Data(Vec<Expr>),
    Timeseries(Box<Series>),
}

/// A time series aggregation: `alias = avg(metric)` (or `count()` for makeTimeseries).
#[derive(Debug, Clone)]
struct SeriesAgg {
    alias: String,
    function: String,
    arg: Option<Expr>,
}

/// What `timeseries` and `makeTimeseries` compute.
#[derive(Debug, Clone)]
struct Series {
    aggs: Vec<SeriesAgg>,
    by: Vec<String>,
    from: Option<Expr>,
    to: Option<Expr>,
    interval: Option<i128>,
    filter: Option<Expr>,
    /// makeTimeseries: the field holding each record's time.
    time: Option<Expr>,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    start: Start,
    /// Where the data object is named (for DATA_OBJECT_NOT_FOUND).
    start_pos: (Pos, Pos),
    commands: Vec<Command>,
}

impl Query {
    /// The source a `fetch` reads, if any.
    pub fn source(&self) -> Option<&str> {
        match &self.start {
            Start::Fetch { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Every data object the query reads (its own and those of `append` subqueries), with the
    /// position where it is named.
    pub fn data_refs(&self) -> Vec<(DataRef, Pos, Pos)> {
        let mut out = Vec::new();
        match &self.start {
            Start::Fetch { source, .. } => out.push((
                DataRef::Fetch(source.clone()),
                self.start_pos.0,
                self.start_pos.1,
            )),
            Start::Smartscape(types) => out.push((
                DataRef::SmartscapeNodes(types.clone()),
                self.start_pos.0,
                self.start_pos.1,
            )),
            Start::Timeseries(series) => out.push((
                DataRef::Metrics(
                    series
                        .aggs
                        .iter()
                        .filter_map(|a| match &a.arg {
                            Some(Expr::Field(f)) => Some(f.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                self.start_pos.0,
                self.start_pos.1,
            )),
            Start::Data(_) => {}
        }
        for command in &self.commands {
            if let Command::Append(sub) = command {
                out.extend(sub.data_refs());
            }
        }
        out
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    i: usize,
    end: Pos,
    /// How many `append [ … ]` subqueries enclose the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.i)
    }

    fn here(&self) -> Pos {
        self.peek().map(|t| t.start).unwrap_or(self.end)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.i);
        self.i += 1;
        t
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Sym(s), .. }) if *s == sym)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), DqlError> {
        if self.is_sym(sym) {
            self.i += 1;
            Ok(())
        } else {
            let at = self.here();
            Err(DqlError::at(
                "MISSING_TOKEN",
                format!("Expected `{sym}` here."),
                at,
                at,
            ))
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), DqlError> {
        match self.next() {
            Some(Token {
                tok: Tok::Ident(name),
                start,
                ..
            }) => Ok((name.clone(), *start)),
            Some(t) => Err(DqlError::at(
                "MISSING_IDENTIFIER",
                format!("Expected {what} here."),
                t.start,
                t.end,
            )),
            None => Err(DqlError::at(
                "MISSING_IDENTIFIER",
                format!("Expected {what} at the end of the query."),
                self.end,
                self.end,
            )),
        }
    }

    fn at_command_end(&self) -> bool {
        self.peek().is_none() || self.is_sym("|") || (self.depth > 0 && self.is_sym("]"))
    }

    fn unexpected_here(&self) -> DqlError {
        let at = self.here();
        let end = self.peek().map(|t| t.end).unwrap_or(at);
        DqlError::at(
            "UNEXPECTED_TOKEN",
            "Unexpected token: a command ends here; start the next one with `|`.",
            at,
            end,
        )
    }

    fn parse(mut self) -> Result<Query, DqlError> {
        let query = self.pipeline()?;
        if self.peek().is_some() {
            return Err(self.unexpected_here());
        }
        Ok(query)
    }

    /// A data source command and the commands piped after it.
    fn pipeline(&mut self) -> Result<Query, DqlError> {
        let (word, pos) = self.ident("a command such as fetch")?;
        let mut start_pos = (pos, pos);
        let start = match word.as_str() {
            "fetch" => {
                let at = self.here();
                let (source, _) = self.ident("a data object such as logs")?;
                let end_token = self.tokens.get(self.i - 1).map(|t| t.end).unwrap_or(at);
                start_pos = (at, end_token);
                let mut from = None;
                let mut to = None;
                while self.is_sym(",") {
                    self.i += 1;
                    let (name, at) = self.ident("a parameter name")?;
                    self.expect_sym(":")?;
                    let value = self.expr()?;
                    match name.as_str() {
                        "from" => from = Some(value),
                        "to" => to = Some(value),
                        "timeframe" | "samplingRatio" | "scanLimitGBytes" | "bucket" => {}
                        _ => {
                            return Err(DqlError::at(
                                "UNKNOWN_PARAMETER",
                                format!("The parameter `{name}` doesn't exist for fetch."),
                                at,
                                at,
                            ));
                        }
                    }
                }
                Start::Fetch { source, from, to }
            }
            "smartscapeNodes" => {
                let at = self.here();
                let types = match self.next() {
                    Some(Token {
                        tok: Tok::Str(s), ..
                    })
                    | Some(Token {
                        tok: Tok::Ident(s), ..
                    }) => vec![s.to_ascii_uppercase()],
                    Some(Token {
                        tok: Tok::Sym("*"), ..
                    }) => vec!["*".to_string()],
                    Some(Token {
                        tok: Tok::Sym("{"), ..
                    }) => {
                        let mut types = Vec::new();
                        loop {
                            match self.next() {
                                Some(Token {
                                    tok: Tok::Str(s), ..
                                }) => types.push(s.to_ascii_uppercase()),
                                _ => {
                                    return Err(DqlError::at(
                                        "INVALID_PARAMETER",
                                        "smartscapeNodes needs node types as strings, e.g. smartscapeNodes {\"HOST\", \"SERVICE\"}.",
                                        at,
                                        at,
                                    ));
                                }
                            }
                            if self.is_sym(",") {
                                self.i += 1;
                                continue;
                            }
                            break;
                        }
                        self.expect_sym("}")?;
                        types
                    }
                    _ => {
                        return Err(DqlError::at(
                            "MISSING_PARAMETER",
                            "smartscapeNodes needs a node type, e.g. smartscapeNodes \"SERVICE\" or smartscapeNodes \"*\".",
                            pos,
                            pos,
                        ));
                    }
                };
                let end_token = self.tokens.get(self.i - 1).map(|t| t.end).unwrap_or(at);
                start_pos = (at, end_token);
                while self.is_sym(",") {
                    self.i += 1;
                    let (name, at) = self.ident("a parameter name")?;
                    self.expect_sym(":")?;
                    self.expr()?;
                    if !matches!(name.as_str(), "from" | "to" | "timeframe") {
                        return Err(DqlError::at(
                            "UNKNOWN_PARAMETER",
                            format!("The parameter `{name}` doesn't exist for smartscapeNodes."),
                            at,
                            at,
                        ));
                    }
                }
                Start::Smartscape(types)
            }
            "timeseries" => {
                let at = self.here();
                let series = self.series(pos, false)?;
                let end_token = self
                    .tokens
                    .get(self.i.saturating_sub(1))
                    .map(|t| t.end)
                    .unwrap_or(at);
                start_pos = (at, end_token);
                Start::Timeseries(Box::new(series))
            }
            "data" => {
                let mut records = vec![self.expr()?];
                while self.is_sym(",") {
                    self.i += 1;
                    records.push(self.expr()?);
                }
                Start::Data(records)
            }
            other => {
                return Err(DqlError::at(
                    "UNKNOWN_COMMAND",
                    format!(
                        "A query must start with a data source command such as fetch; `{other}` isn't one."
                    ),
                    pos,
                    Pos {
                        index: pos.index + other.len() - 1,
                        line: pos.line,
                        column: pos.column + other.chars().count() - 1,
                    },
                ));
            }
        };
        if !self.at_command_end() {
            return Err(self.unexpected_here());
        }
        let mut commands = Vec::new();
        while self.is_sym("|") {
            self.i += 1;
            commands.push(self.command()?);
            if !self.at_command_end() {
                return Err(self.unexpected_here());
            }
        }
        Ok(Query {
            start,
            start_pos,
            commands,
        })
    }

    /// `, sort: {a desc, b}` or `sort a desc, b` keys.
    fn sort_keys(&mut self, braced: bool) -> Result<Vec<(Expr, bool)>, DqlError> {
        if braced {
            self.expect_sym("{")?;
        }
        let mut keys = Vec::new();
        loop {
            let e = self.expr()?;
            let desc = if self.is_word("desc") {
                self.i += 1;
                true
            } else {
                if self.is_word("asc") {
                    self.i += 1;
                }
                false
            };
            keys.push((e, desc));
            if !self.is_sym(",") || (!braced && self.next_is_named_param()) {
                break;
            }
            self.i += 1;
        }
        if braced {
            self.expect_sym("}")?;
        }
        Ok(keys)
    }

    /// `, name:` follows (a named parameter rather than another item).
    fn next_is_named_param(&self) -> bool {
        matches!(
            (self.tokens.get(self.i + 1), self.tokens.get(self.i + 2)),
            (
                Some(Token {
                    tok: Tok::Ident(_),
                    ..
                }),
                Some(Token {
                    tok: Tok::Sym(":"),
                    ..
                })
            )
        )
    }

    /// The aggregations and parameters of `timeseries` (`make` = false) or `makeTimeseries`.
    fn series(&mut self, pos: Pos, make: bool) -> Result<Series, DqlError> {
        let mut series = Series {
            aggs: Vec::new(),
            by: Vec::new(),
            from: None,
            to: None,
            interval: None,
            filter: None,
            time: None,
        };
        let mut braced = self.is_sym("{");
        if braced {
            self.i += 1;
        }
        loop {
            let named = matches!(
                (self.peek(), self.tokens.get(self.i + 1)),
                (
                    Some(Token {
                        tok: Tok::Ident(_),
                        ..
                    }),
                    Some(Token {
                        tok: Tok::Sym(":"),
                        ..
                    })
                )
            );
            if named && !braced {
                let (name, at) = self.ident("a parameter name")?;
                self.i += 1;
                match name.as_str() {
                    "by" => {
                        self.expect_sym("{")?;
                        loop {
                            series.by.push(self.ident("a field name")?.0);
                            if !self.is_sym(",") {
                                break;
                            }
                            self.i += 1;
                        }
                        self.expect_sym("}")?;
                    }
                    "from" => series.from = Some(self.expr()?),
                    "to" => series.to = Some(self.expr()?),
                    "interval" => match self.expr()? {
                        Expr::Lit(Val::Dur(d)) if d > 0 => series.interval = Some(d),
                        _ => {
                            return Err(DqlError::at(
                                "INVALID_PARAMETER",
                                "interval needs a duration, e.g. interval: 5m.",
                                at,
                                at,
                            ));
                        }
                    },
                    "filter" => {
                        let e = self.expr()?;
                        series.filter = Some(match e {
                            Expr::List(mut items) if items.len() == 1 => items.remove(0),
                            e => e,
                        });
                    }
                    "time" if make => series.time = Some(self.expr()?),
                    "timeframe" | "bins" | "nonempty" | "union" | "shift" | "scalar" => {
                        self.expr()?;
                    }
                    _ => {
                        return Err(DqlError::at(
                            "UNKNOWN_PARAMETER",
                            format!(
                                "The parameter `{name}` doesn't exist for {}.",
                                if make { "makeTimeseries" } else { "timeseries" }
                            ),
                            at,
                            at,
                        ));
                    }
                }
            } else {
                let at = self.here();
                let (alias, e) = self.aliased(at)?;
                let Expr::Call(function, args, _) = &e else {
                    return Err(DqlError::at(
                        "INVALID_AGGREGATION",
                        "Expected an aggregation such as avg(dt.host.cpu.usage).",
                        at,
                        at,
                    ));
                };
                let allowed: &[&str] = if make {
                    &["count", "countIf", "sum", "avg", "min", "max"]
                } else {
                    &["avg", "sum", "min", "max", "count", "percentile"]
                };
                if !allowed.contains(&function.as_str()) {
                    return Err(DqlError::at(
                        "UNKNOWN_FUNCTION",
                        format!("The aggregation `{function}` isn't available here."),
                        at,
                        at,
                    ));
                }
                let arg = args.first().cloned();
                if !make && !matches!(arg, Some(Expr::Field(_))) {
                    return Err(DqlError::at(
                        "MISSING_PARAMETER",
                        format!(
                            "{function}() needs a metric key, e.g. {function}(dt.host.cpu.usage)."
                        ),
                        at,
                        at,
                    ));
                }
                series.aggs.push(SeriesAgg {
                    alias: alias.unwrap_or_else(|| render(&e)),
                    function: function.clone(),
                    arg,
                });
            }
            if braced {
                if self.is_sym(",") {
                    self.i += 1;
                    continue;
                }
                self.expect_sym("}")?;
                braced = false;
            }
            if !self.is_sym(",") {
                break;
            }
            self.i += 1;
        }
        if series.aggs.is_empty() {
            return Err(DqlError::at(
                "MISSING_PARAMETER",
                "Expected at least one aggregation, e.g. avg(dt.host.cpu.usage).",
                pos,
                pos,
            ));
        }
        Ok(series)
    }

    fn command(&mut self) -> Result<Command, DqlError> {
        let (word, pos) = self.ident("a command after `|`")?;
        Ok(match word.as_str() {
            "filter" | "filterOut" => Command::Filter(self.expr()?, word == "filterOut"),
            "limit" => match self.next() {
                Some(Token {
                    tok: Tok::Num(n), ..
                }) if *n >= 0.0 => Command::Limit(*n as usize),
                _ => {
                    return Err(DqlError::at(
                        "INVALID_LIMIT",
                        "limit needs a positive whole number.",
                        pos,
                        pos,
                    ));
                }
            },
            "fields" | "fieldsKeep" => Command::Fields(self.assignments()?),
            "fieldsAdd" => Command::FieldsAdd(self.assignments()?),
            "fieldsRemove" => {
                let mut names = vec![self.ident("a field name")?.0];
                while self.is_sym(",") {
                    self.i += 1;
                    names.push(self.ident("a field name")?.0);
                }
                Command::FieldsRemove(names)
            }
            "fieldsRename" => {
                let mut pairs = Vec::new();
                loop {
                    let (new, _) = self.ident("a field name")?;
                    self.expect_sym("=")?;
                    let (old, _) = self.ident("a field name")?;
                    pairs.push((new, old));
                    if !self.is_sym(",") {
                        break;
                    }
                    self.i += 1;
                }
                Command::FieldsRename(pairs)
            }
            "sort" => Command::Sort(self.sort_keys(false)?),
            "summarize" => self.summarize()?,
            "dedup" => {
                let mut keys = Vec::new();
                let mut sort = Vec::new();
                loop {
                    if self.is_word("sort")
                        && matches!(
                            self.tokens.get(self.i + 1),
                            Some(Token {
                                tok: Tok::Sym(":"),
                                ..
                            })
                        )
                    {
                        self.i += 2;
                        sort = self.sort_keys(self.is_sym("{"))?;
                    } else {
                        match self.expr()? {
                            Expr::List(items) => keys.extend(items),
                            e => keys.push(e),
                        }
                    }
                    if !self.is_sym(",") {
                        break;
                    }
                    self.i += 1;
                }
                if keys.is_empty() {
                    return Err(DqlError::at(
                        "MISSING_PARAMETER",
                        "dedup needs at least one field, e.g. dedup {a, b}.",
                        pos,
                        pos,
                    ));
                }
                Command::Dedup(keys, sort)
            }
            "search" => {
                let at = self.here();
                let e = self.expr()?;
                if !search_shape_ok(&e) {
                    return Err(DqlError::at(
                        "INVALID_SEARCH",
                        "search needs a string, e.g. search \"timeout\".",
                        at,
                        at,
                    ));
                }
                Command::Search(e)
            }
            "expand" => {
                let e = self.expr()?;
                let (name, expr, keep_source) = if self.is_sym("=") {
                    self.i += 1;
                    let alias = assigned_field(e, self.here())?;
                    (alias, self.expr()?, true)
                } else {
                    let Expr::Field(name) = &e else {
                        return Err(DqlError::at(
                            "INVALID_PARAMETER",
                            "expand needs an array field, or an alias: expand tag = tags.",
                            pos,
                            pos,
                        ));
                    };
                    (name.clone(), e.clone(), false)
                };
                let mut limit = None;
                while self.is_sym(",") {
                    self.i += 1;
                    let (param, at) = self.ident("a parameter name")?;
                    self.expect_sym(":")?;
                    let value = self.expr()?;
                    match (param.as_str(), value) {
                        ("limit", Expr::Lit(Val::Num(n))) if n >= 0.0 => limit = Some(n as usize),
                        _ => {
                            return Err(DqlError::at(
                                "UNKNOWN_PARAMETER",
                                format!("The parameter `{param}` doesn't exist for expand."),
                                at,
                                at,
                            ));
                        }
                    }
                }
                Command::Expand {
                    name,
                    expr,
                    keep_source,
                    limit,
                }
            }
            "makeTimeseries" => Command::MakeTimeseries(Box::new(self.series(pos, true)?)),
            "append" => {
                self.expect_sym("[")?;
                self.depth += 1;
                let sub = self.pipeline()?;
                self.depth -= 1;
                self.expect_sym("]")?;
                Command::Append(Box::new(sub))
            }
            other => {
                return Err(DqlError::at(
                    "UNKNOWN_COMMAND",
                    format!("The command `{other}` doesn't exist."),
                    pos,
                    Pos {
                        index: pos.index + other.len() - 1,
                        line: pos.line,
                        column: pos.column + other.chars().count() - 1,
                    },
                ));
            }
        })
    }

    /// `expr` or `alias = expr` (an aggregation or a timeseries function); an invalid alias is
    /// reported at `at`, where the item starts.
    fn aliased(&mut self, at: Pos) -> Result<(Option<String>, Expr), DqlError> {
        let e = self.expr()?;
        if !self.is_sym("=") {
            return Ok((None, e));
        }
        self.i += 1;
        let alias = assigned_field(e, at)?;
        Ok((Some(alias), self.expr()?))
    }

    fn assignments(&mut self) -> Result<Vec<(String, Expr)>, DqlError> {
        let mut out = Vec::new();
        loop {
            let e = self.expr()?;
            let entry = if self.is_sym("=") {
                self.i += 1;
                let name = assigned_field(e, self.here())?;
                (name, self.expr()?)
            } else {
                let name = match &e {
                    Expr::Field(name) => name.clone(),
                    other => render(other),
                };
                (name, e)
            };
            out.push(entry);
            if !self.is_sym(",") {
                return Ok(out);
            }
            self.i += 1;
        }
    }

    fn summarize(&mut self) -> Result<Command, DqlError> {
        let mut aggs = Vec::new();
        let mut by = Vec::new();
        loop {
            if self.is_word("by")
                && matches!(
                    self.tokens.get(self.i + 1),
                    Some(Token {
                        tok: Tok::Sym(":"),
                        ..
                    })
                )
            {
                self.i += 2;
                self.expect_sym("{")?;
                by.extend(self.assignments()?);
                self.expect_sym("}")?;
            } else {
                let at = self.here();
                let (alias, e) = self.aliased(at)?;
                let Expr::Call(name, args, _) = e else {
                    return Err(DqlError::at(
                        "INVALID_AGGREGATION",
                        "summarize needs aggregation functions such as count().",
                        at,
                        at,
                    ));
                };
                let arg = || {
                    args.first().cloned().ok_or_else(|| {
                        DqlError::at(
                            "MISSING_PARAMETER",
                            format!("{name}() needs a field."),
                            at,
                            at,
                        )
                    })
                };
                let agg = match name.as_str() {
                    "count" => Agg::Count,
                    "countIf" => Agg::CountIf(arg()?),
                    "countDistinct" | "countDistinctExact" | "countDistinctApprox" => {
                        Agg::CountDistinct(arg()?)
                    }
                    "sum" => Agg::Sum(arg()?),
                    "avg" => Agg::Avg(arg()?),
                    "min" => Agg::Min(arg()?),
                    "max" => Agg::Max(arg()?),
                    "collectDistinct" => Agg::CollectDistinct(arg()?),
                    "collectArray" => Agg::CollectArray(arg()?),
                    "takeFirst" | "takeAny" => Agg::TakeFirst(arg()?),
                    "takeLast" => Agg::TakeLast(arg()?),
                    other => {
                        return Err(DqlError::at(
                            "UNKNOWN_FUNCTION",
                            format!("The aggregation function `{other}` doesn't exist."),
                            at,
                            at,
                        ));
                    }
                };
                let alias = alias.unwrap_or_else(|| {
                    let mut s = format!("{name}(");
                    if let Some(Expr::Field(f)) = args.first() {
                        s.push_str(f);
                    }
                    s.push(')');
                    s
                });
                aggs.push((alias, agg));
            }
            if self.is_sym(",") {
                self.i += 1;
                continue;
            }
            break;
        }
        Ok(Command::Summarize(aggs, by))
    }

    fn expr(&mut self) -> Result<Expr, DqlError> {
        self.or()
    }

    fn or(&mut self) -> Result<Expr, DqlError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.i += 1;
            left = Expr::Bin("or", Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, DqlError> {
        let mut left = self.not()?;
        while self.is_word("and") {
            self.i += 1;
            left = Expr::Bin("and", Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, DqlError> {
        if self.is_word("not") || self.is_sym("!") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, DqlError> {
        let left = self.additive()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.is_sym(op) {
                self.i += 1;
                let right = self.additive()?;
                return Ok(Expr::Bin(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, DqlError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.is_sym("+") {
                "+"
            } else if self.is_sym("-") {
                "-"
            } else {
                return Ok(left);
            };
            self.i += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, DqlError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.is_sym("*") {
                "*"
            } else if self.is_sym("/") {
                "/"
            } else {
                return Ok(left);
            };
            self.i += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, DqlError> {
        if self.is_sym("-") {
            self.i += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, DqlError> {
        let Some(token) = self.next() else {
            return Err(DqlError::at(
                "MISSING_EXPRESSION",
                "The query ends where an expression is expected.",
                self.end,
                self.end,
            ));
        };
        Ok(match &token.tok {
            Tok::Str(s) => Expr::Lit(Val::Str(s.clone())),
            Tok::Num(n) => Expr::Lit(Val::Num(*n)),
            Tok::Dur(d) => Expr::Lit(Val::Dur(*d)),
            Tok::Sym("(") => {
                let e = self.expr()?;
                self.expect_sym(")")?;
                e
            }
            Tok::Sym("{") => {
                let mut items = Vec::new();
                if !self.is_sym("}") {
                    loop {
                        items.push(self.expr()?);
                        if !self.is_sym(",") {
                            break;
                        }
                        self.i += 1;
                    }
                }
                self.expect_sym("}")?;
                Expr::List(items)
            }
            Tok::Ident(word) => {
                if self.is_sym("(") {
                    self.i += 1;
                    let mut args = Vec::new();
                    let mut assigned = Vec::new();
                    if !self.is_sym(")") {
                        loop {
                            let named = matches!(
                                self.peek(),
                                Some(Token {
                                    tok: Tok::Ident(_),
                                    ..
                                })
                            );
                            let next = self.tokens.get(self.i + 1).map(|t| &t.tok);
                            // Named arguments (`caseSensitive: false`) are accepted and ignored.
                            if named && next == Some(&Tok::Sym(":")) {
                                self.i += 2;
                                self.expr()?;
                            } else if named && next == Some(&Tok::Sym("=")) {
                                let (name, _) = self.ident("a field name")?;
                                self.i += 1;
                                assigned.push((name, self.expr()?));
                            } else {
                                args.push(self.expr()?);
                            }
                            if !self.is_sym(",") {
                                break;
                            }
                            self.i += 1;
                        }
                    }
                    self.expect_sym(")")?;
                    if word == "now" {
                        return Ok(Expr::Now);
                    }
                    if word == "record" {
                        return Ok(Expr::Record(assigned));
                    }
                    if !FUNCTIONS.contains(&word.as_str()) && !AGGREGATIONS.contains(&word.as_str())
                    {
                        return Err(DqlError::at(
                            "UNKNOWN_FUNCTION",
                            format!("The function `{word}` doesn't exist."),
                            token.start,
                            token.end,
                        ));
                    }
                    Expr::Call(word.clone(), args, token.start)
                } else {
                    match word.as_str() {
                        "true" => Expr::Lit(Val::Bool(true)),
                        "false" => Expr::Lit(Val::Bool(false)),
                        "null" => Expr::Lit(Val::Null),
                        _ => Expr::Field(word.clone()),
                    }
                }
            }
            Tok::Sym(s) => {
                return Err(DqlError::at(
                    "UNEXPECTED_TOKEN",
                    format!("Unexpected `{s}`: an expression is expected here."),
                    token.start,
                    token.end,
                ));
            }
        })
    }
}

/// Scalar functions the interpreter evaluates.
const FUNCTIONS: &[&str] = &[
    "contains",
    "matchesPhrase",
    "matchesValue",
    "startsWith",
    "endsWith",
    "isNull",
    "isNotNull",
    "exists",
    "isTrue",
    "isFalse",
    "in",
    "lower",
    "upper",
    "toString",
    "toTimestamp",
    "timestamp",
    "toLong",
    "toDouble",
    "arraySize",
    "coalesce",
    "toSmartscapeId",
    "toUid",
    "array",
    "concat",
    "entityName",
    "bin",
    "arraySum",
    "arrayAvg",
    "arrayMin",
    "arrayMax",
    "arrayFirst",
    "arrayLast",
];

/// Aggregation functions `summarize` understands.
const AGGREGATIONS: &[&str] = &[
    "count",
    "countIf",
    "countDistinct",
    "countDistinctExact",
    "countDistinctApprox",
    "sum",
    "avg",
    "min",
    "max",
    "collectDistinct",
    "collectArray",
    "takeFirst",
    "takeAny",
    "takeLast",
];

/// `search` takes string literals combined with `and`/`or`/`not`.
fn search_shape_ok(e: &Expr) -> bool {
    match e {
        Expr::Lit(Val::Str(_)) => true,
        Expr::Bin("and" | "or", l, r) => search_shape_ok(l) && search_shape_ok(r),
        Expr::Not(e) => search_shape_ok(e),
        _ => false,
    }
}

/// Parses a query, or returns Grail-style error details.
pub fn parse(query: &str) -> Result<Query, DqlError> {
    let tokens = lex(query)?;
    let end = Pos {
        index: query.len().saturating_sub(1),
        line: query.lines().count().max(1),
        column: query
            .lines()
            .last()
            .map(|l| l.chars().count())
            .unwrap_or(1)
            .max(1),
    };
    if tokens.is_empty() {
        return Err(DqlError::at(
            "EMPTY_QUERY",
            "The query is empty.",
            Pos {
                index: 0,
                line: 1,
                column: 1,
            },
            Pos {
                index: 0,
                line: 1,
                column: 1,
            },
        ));
    }
    Parser {
        tokens: &tokens,
        i: 0,
        end,
        depth: 0,
    }
    .parse()
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// A value during evaluation. Timestamps and durations are nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Time(i128),
    Dur(i128),
    List(Vec<Val>),
    Json(Value),
}

impl Val {
    fn from_json(value: &Value) -> Val {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => Val::Str(s.clone()),
            other => Val::Json(other.clone()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => {
                if n.fract() == 0.0 && n.abs() < 9e15 {
                    // Grail encodes longs as strings.
                    Value::String(format!("{}", *n as i64))
                } else {
                    json!(n)
                }
            }
            Val::Str(s) => Value::String(s.clone()),
            Val::Time(t) => Value::String(format_time(*t)),
            Val::Dur(d) => Value::String(d.to_string()),
            Val::List(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Json(v) => v.clone(),
        }
    }

    fn truthy(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    fn as_text(&self) -> Option<String> {
        match self {
            Val::Str(s) => Some(s.clone()),
            Val::Num(n) => Some(n.to_string()),
            Val::Bool(b) => Some(b.to_string()),
            Val::Json(Value::Array(items)) => Some(array_text(items)),
            Val::Json(v) => Some(v.to_string()),
            Val::List(_) => match self.to_json() {
                Value::Array(items) => Some(array_text(&items)),
                _ => None,
            },
            Val::Time(t) => Some(format_time(*t)),
            Val::Dur(d) => Some(d.to_string()),
            Val::Null => None,
        }
    }

    /// A number, reading Grail's string-encoded longs too.
    fn as_num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Str(s) => s.parse().ok(),
            Val::Dur(d) => Some(*d as f64),
            _ => None,
        }
    }

    fn as_time(&self) -> Option<i128> {
        match self {
            Val::Time(t) => Some(*t),
            Val::Str(s) => parse_time(s),
            _ => None,
        }
    }

    /// The elements of an array value.
    fn items(&self) -> Option<Vec<Val>> {
        match self {
            Val::List(items) => Some(items.clone()),
            Val::Json(Value::Array(items)) => Some(items.iter().map(Val::from_json).collect()),
            _ => None,
        }
    }
}

/// How `toString` renders an array: `["env:prod", "team:x"]`.
fn array_text(items: &[Value]) -> String {
    let parts: Vec<String> = items.iter().map(Value::to_string).collect();
    format!("[{}]", parts.join(", "))
}

pub fn parse_time(text: &str) -> Option<i128> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(i128::from)
}

pub fn format_time(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    DateTime::<Utc>::from_timestamp(secs, sub)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
        .unwrap_or_default()
}

fn compare(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Time(_), _) | (_, Val::Time(_)) => a.as_time()?.partial_cmp(&b.as_time()?),
        (Val::Num(_), _) | (_, Val::Num(_)) | (Val::Dur(_), _) | (_, Val::Dur(_)) => {
            a.as_num()?.partial_cmp(&b.as_num()?)
        }
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => a.as_text()?.partial_cmp(&b.as_text()?),
    }
}

/// `*` matches any run of characters; everything else literally (callers lower-case both sides).
fn glob(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            ti += 1;
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

struct Env {
    now: i128,
}

fn field<'r>(record: &'r Map<String, Value>, name: &str) -> Option<&'r Value> {
    record.get(name)
}

/// A timestamp, or a string holding one (Grail records carry timestamps as strings).
fn time_like(v: &Val) -> Option<i128> {
    match v {
        Val::Time(t) => Some(*t),
        Val::Str(s) if s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T') => parse_time(s),
        _ => None,
    }
}

fn eval(expr: &Expr, record: &Map<String, Value>, env: &Env) -> Result<Val, DqlError> {
    Ok(match expr {
        Expr::Lit(v) => v.clone(),
        Expr::Field(name) => field(record, name).map(Val::from_json).unwrap_or(Val::Null),
        Expr::Now => Val::Time(env.now),
        Expr::List(items) => Val::List(
            items
                .iter()
                .map(|e| eval(e, record, env))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Neg(e) => match eval(e, record, env)? {
            Val::Num(n) => Val::Num(-n),
            Val::Dur(d) => Val::Dur(-d),
            other => match other.as_num() {
                Some(n) => Val::Num(-n),
                None => Val::Null,
            },
        },
        Expr::Not(e) => match eval(e, record, env)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Null,
        },
        Expr::Bin(op, l, r) => {
            let a = eval(l, record, env)?;
            if *op == "and" && !a.truthy() {
                return Ok(Val::Bool(false));
            }
            if *op == "or" && a.truthy() {
                return Ok(Val::Bool(true));
            }
            let b = eval(r, record, env)?;
            match *op {
                "and" | "or" => Val::Bool(b.truthy()),
                "==" => match (&a, &b) {
                    (Val::Null, _) | (_, Val::Null) => Val::Null,
                    _ => Val::Bool(compare(&a, &b) == Some(Ordering::Equal)),
                },
                "!=" => match (&a, &b) {
                    (Val::Null, _) | (_, Val::Null) => Val::Null,
                    _ => Val::Bool(compare(&a, &b) != Some(Ordering::Equal)),
                },
                "<" => compare(&a, &b)
                    .map(|o| Val::Bool(o == Ordering::Less))
                    .unwrap_or(Val::Null),
                ">" => compare(&a, &b)
                    .map(|o| Val::Bool(o == Ordering::Greater))
                    .unwrap_or(Val::Null),
                "<=" => compare(&a, &b)
                    .map(|o| Val::Bool(o != Ordering::Greater))
                    .unwrap_or(Val::Null),
                ">=" => compare(&a, &b)
                    .map(|o| Val::Bool(o != Ordering::Less))
                    .unwrap_or(Val::Null),
                "+" | "-" => {
                    let plus = *op == "+";
                    match (&a, &b, time_like(&a), time_like(&b)) {
                        (_, Val::Dur(d), Some(t), _) => Val::Time(if plus { t + d } else { t - d }),
                        (Val::Dur(d), _, _, Some(t)) if plus => Val::Time(t + d),
                        (Val::Dur(x), Val::Dur(y), _, _) => {
                            Val::Dur(if plus { x + y } else { x - y })
                        }
                        (_, _, Some(x), Some(y)) if !plus => Val::Dur(x - y),
                        _ => match (a.as_num(), b.as_num()) {
                            (Some(x), Some(y)) => Val::Num(if plus { x + y } else { x - y }),
                            _ => Val::Null,
                        },
                    }
                }
                "*" | "/" => match (a.as_num(), b.as_num()) {
                    (Some(x), Some(y)) if *op == "*" => Val::Num(x * y),
                    (Some(x), Some(y)) if y != 0.0 => Val::Num(x / y),
                    _ => Val::Null,
                },
                _ => Val::Null,
            }
        }
        Expr::Call(name, args, pos) => call(name, args, *pos, record, env)?,
        Expr::Record(fields) => {
            let mut out = Map::new();
            for (name, e) in fields {
                out.insert(name.clone(), eval(e, record, env)?.to_json());
            }
            Val::Json(Value::Object(out))
        }
    })
}

fn call(
    name: &str,
    args: &[Expr],
    pos: Pos,
    record: &Map<String, Value>,
    env: &Env,
) -> Result<Val, DqlError> {
    let arity = |n: usize| -> Result<(), DqlError> {
        if args.len() < n {
            Err(DqlError::at(
                "MISSING_PARAMETER",
                format!(
                    "The function {name} needs {n} parameter{}.",
                    if n == 1 { "" } else { "s" }
                ),
                pos,
                pos,
            ))
        } else {
            Ok(())
        }
    };
    let arg = |i: usize| eval(&args[i], record, env);
    Ok(match name {
        "contains" | "matchesPhrase" | "startsWith" | "endsWith" => {
            arity(2)?;
            let a = arg(0)?.as_text().map(|s| s.to_lowercase());
            let b = arg(1)?.as_text().map(|s| s.to_lowercase());
            match (a, b) {
                (Some(a), Some(b)) => Val::Bool(match name {
                    "startsWith" => a.starts_with(&b),
                    "endsWith" => a.ends_with(&b),
                    _ => a.contains(&b),
                }),
                _ => Val::Null,
            }
        }
        "matchesValue" => {
            arity(2)?;
            let value = arg(0)?;
            let pattern = arg(1)?;
            let patterns: Vec<String> = pattern
                .items()
                .unwrap_or_else(|| vec![pattern.clone()])
                .iter()
                .filter_map(Val::as_text)
                .map(|p| p.to_lowercase())
                .collect();
            let values = value.items().unwrap_or_else(|| vec![value.clone()]);
            if matches!(value, Val::Null) {
                Val::Null
            } else {
                Val::Bool(values.iter().filter_map(Val::as_text).any(|v| {
                    let v = v.to_lowercase();
                    patterns.iter().any(|p| glob(&v, p))
                }))
            }
        }
        "isNull" => {
            arity(1)?;
            Val::Bool(matches!(arg(0)?, Val::Null))
        }
        "isNotNull" | "exists" => {
            arity(1)?;
            Val::Bool(!matches!(arg(0)?, Val::Null))
        }
        "isTrue" | "isFalse" => {
            arity(1)?;
            Val::Bool(arg(0)? == Val::Bool(name == "isTrue"))
        }
        "in" => {
            arity(2)?;
            let needle = arg(0)?;
            let mut hay = Vec::new();
            for i in 1..args.len() {
                let v = arg(i)?;
                match v.items() {
                    Some(items) => hay.extend(items),
                    None => hay.push(v),
                }
            }
            let found = |n: &Val| hay.iter().any(|h| compare(n, h) == Some(Ordering::Equal));
            match needle.items() {
                Some(items) => Val::Bool(items.iter().any(found)),
                None if matches!(needle, Val::Null) => Val::Null,
                None => Val::Bool(found(&needle)),
            }
        }
        "lower" | "upper" | "toString" | "toSmartscapeId" | "toUid" => {
            arity(1)?;
            match arg(0)?.as_text() {
                Some(s) if name == "lower" => Val::Str(s.to_lowercase()),
                Some(s) if name == "upper" => Val::Str(s.to_uppercase()),
                Some(s) => Val::Str(s),
                None => Val::Null,
            }
        }
        "toTimestamp" | "timestamp" => {
            arity(1)?;
            match arg(0)? {
                Val::Str(s) => parse_time(&s).map(Val::Time).ok_or_else(|| {
                    DqlError::at(
                        "INVALID_TIMESTAMP",
                        format!("`{s}` is not a valid timestamp."),
                        pos,
                        pos,
                    )
                })?,
                Val::Num(n) => Val::Time(n as i128),
                Val::Time(t) => Val::Time(t),
                _ => Val::Null,
            }
        }
        "toLong" | "toDouble" => {
            arity(1)?;
            match arg(0)?.as_num() {
                Some(n) if name == "toLong" => Val::Num(n.trunc()),
                Some(n) => Val::Num(n),
                None => Val::Null,
            }
        }
        "arraySize" => {
            arity(1)?;
            match arg(0)?.items() {
                Some(items) => Val::Num(items.len() as f64),
                None => Val::Null,
            }
        }
        "coalesce" => {
            arity(1)?;
            for i in 0..args.len() {
                let v = arg(i)?;
                if !matches!(v, Val::Null) {
                    return Ok(v);
                }
            }
            Val::Null
        }
        "array" => Val::List((0..args.len()).map(arg).collect::<Result<Vec<_>, _>>()?),
        "concat" => {
            let mut out = String::new();
            for i in 0..args.len() {
                if let Some(s) = arg(i)?.as_text() {
                    out.push_str(&s);
                }
            }
            Val::Str(out)
        }
        "bin" => {
            arity(2)?;
            let value = arg(0)?;
            let size = match arg(1)? {
                Val::Dur(d) if d > 0 => d,
                _ => {
                    return Err(DqlError::at(
                        "INVALID_PARAMETER",
                        "bin needs a positive duration as its second parameter, e.g. bin(timestamp, 5m).",
                        pos,
                        pos,
                    ));
                }
            };
            match (time_like(&value), value.as_num()) {
                (Some(t), _) => Val::Time(t - t.rem_euclid(size)),
                (None, Some(n)) => Val::Num(n - n.rem_euclid(size as f64)),
                _ => Val::Null,
            }
        }
        "arraySum" | "arrayAvg" | "arrayMin" | "arrayMax" | "arrayFirst" | "arrayLast" => {
            arity(1)?;
            let Some(items) = arg(0)?.items() else {
                return Ok(Val::Null);
            };
            let numbers: Vec<f64> = items.iter().filter_map(Val::as_num).collect();
            match name {
                "arrayFirst" => items
                    .into_iter()
                    .find(|v| !matches!(v, Val::Null))
                    .unwrap_or(Val::Null),
                "arrayLast" => items
                    .into_iter()
                    .rev()
                    .find(|v| !matches!(v, Val::Null))
                    .unwrap_or(Val::Null),
                _ if numbers.is_empty() => Val::Null,
                "arraySum" => Val::Num(numbers.iter().sum()),
                "arrayAvg" => Val::Num(numbers.iter().sum::<f64>() / numbers.len() as f64),
                "arrayMin" => Val::Num(numbers.iter().copied().fold(f64::INFINITY, f64::min)),
                _ => Val::Num(numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            }
        }
        "entityName" => {
            arity(1)?;
            match arg(0)?.as_text() {
                Some(id) => super::data::entity_name(&id)
                    .map(|n| Val::Str(n.to_string()))
                    .unwrap_or(Val::Null),
                None => Val::Null,
            }
        }
        other if AGGREGATIONS.contains(&other) => {
            return Err(DqlError::at(
                "AGGREGATION_NOT_ALLOWED",
                format!("The aggregation function `{other}` can only be used in summarize."),
                pos,
                pos,
            ));
        }
        other => {
            return Err(DqlError::at(
                "UNKNOWN_FUNCTION",
                format!("The function `{other}` doesn't exist."),
                pos,
                pos,
            ));
        }
    })
}

/// What running a query produced.
#[derive(Debug)]
pub struct Output {
    pub records: Vec<Value>,
    pub scanned_records: u64,
    pub scanned_bytes: u64,
}

/// A data source the interpreter reads: its records, generated on demand.
pub trait Source {
    fn len(&self) -> usize;
    fn record(&self, index: usize) -> Map<String, Value>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the interpreter finds the data objects a query names.
pub trait Catalog {
    fn open(&self, data: &DataRef) -> Option<Box<dyn Source + '_>>;
}

struct Borrowed<'a>(&'a dyn Source);

impl Source for Borrowed<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn record(&self, index: usize) -> Map<String, Value> {
        self.0.record(index)
    }
}

/// One source for whatever the query fetches.
struct Single<'a>(Option<&'a dyn Source>);

impl Catalog for Single<'_> {
    fn open(&self, _data: &DataRef) -> Option<Box<dyn Source + '_>> {
        self.0
            .map(|s| Box::new(Borrowed(s)) as Box<dyn Source + '_>)
    }
}

#[derive(Default)]
struct Stats {
    scanned_records: u64,
    scanned_bytes: u64,
}

/// Runs `query` over `source` (the data object it fetches), stopping early where it can.
/// `now` is the tenant's clock in nanoseconds.
pub fn run(
    query: &Query,
    source: Option<&dyn Source>,
    now: i128,
    max_records: usize,
) -> Result<Output, DqlError> {
    run_in(query, &Single(source), now, max_records)
}

/// Runs `query`, reading its data objects (and those of `append` subqueries) from `catalog`.
pub fn run_in(
    query: &Query,
    catalog: &dyn Catalog,
    now: i128,
    max_records: usize,
) -> Result<Output, DqlError> {
    let env = Env { now };
    let mut stats = Stats::default();
    let rows = execute(query, catalog, &env, &mut stats)?;
    let mut records: Vec<Value> = rows.into_iter().map(Value::Object).collect();
    records.truncate(max_records);
    Ok(Output {
        records,
        scanned_records: stats.scanned_records,
        scanned_bytes: stats.scanned_bytes,
    })
}

fn execute(
    query: &Query,
    catalog: &dyn Catalog,
    env: &Env,
    stats: &mut Stats,
) -> Result<Vec<Map<String, Value>>, DqlError> {
    let mut rows: Vec<Map<String, Value>> = Vec::new();

    // Streaming prefix: filters and a limit before any command that needs all rows.
    let streaming_end = query
        .commands
        .iter()
        .position(|c| {
            !matches!(
                c,
                Command::Filter(..) | Command::Limit(_) | Command::Search(_)
            )
        })
        .unwrap_or(query.commands.len());
    let streaming = &query.commands[..streaming_end];
    let early_limit = streaming.iter().find_map(|c| match c {
        Command::Limit(n) => Some(*n),
        _ => None,
    });

    let (data, from, to) = match &query.start {
        Start::Data(exprs) => {
            for e in exprs {
                rows.push(data_record(e, env)?);
            }
            let rows = apply(streaming, rows, env, catalog, stats)?;
            return apply(&query.commands[streaming_end..], rows, env, catalog, stats);
        }
        Start::Timeseries(series) => {
            let rows = timeseries(series, env)?;
            let rows = apply(streaming, rows, env, catalog, stats)?;
            return apply(&query.commands[streaming_end..], rows, env, catalog, stats);
        }
        Start::Fetch { source, from, to } => (DataRef::Fetch(source.clone()), from, to),
        Start::Smartscape(types) => (DataRef::SmartscapeNodes(types.clone()), &None, &None),
    };
    let Some(source) = catalog.open(&data) else {
        return Err(DqlError::at(
            "DATA_OBJECT_NOT_FOUND",
            format!("The data object `{}` doesn't exist.", data.name()),
            query.start_pos.0,
            query.start_pos.1,
        ));
    };
    let empty = Map::new();
    let from = from
        .as_ref()
        .map(|e| eval(e, &empty, env))
        .transpose()?
        .and_then(|v| v.as_time());
    let to = to
        .as_ref()
        .map(|e| eval(e, &empty, env))
        .transpose()?
        .and_then(|v| v.as_time());
    'records: for index in 0..source.len() {
        let record = source.record(index);
        if from.is_some() || to.is_some() {
            let at = record
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(parse_time);
            if let Some(at) = at
                && (from.is_some_and(|f| at < f) || to.is_some_and(|t| at >= t))
            {
                continue;
            }
        }
        stats.scanned_records += 1;
        stats.scanned_bytes += estimate_size(&record);
        for command in streaming {
            let pass = match command {
                Command::Filter(expr, out) => eval(expr, &record, env)?.truthy() != *out,
                Command::Search(e) => search_eval(e, &record),
                _ => true,
            };
            if !pass {
                continue 'records;
            }
        }
        rows.push(record);
        if early_limit.is_some_and(|n| rows.len() >= n) {
            break;
        }
    }
    if let Some(n) = early_limit {
        rows.truncate(n);
    }
    apply(&query.commands[streaming_end..], rows, env, catalog, stats)
}

fn data_record(expr: &Expr, env: &Env) -> Result<Map<String, Value>, DqlError> {
    match eval(expr, &Map::new(), env)? {
        Val::Json(Value::Object(map)) => Ok(map),
        _ => Err(DqlError::at(
            "INVALID_DATA",
            "data needs record(...) expressions, e.g. data record(a = 1, b = \"x\").",
            Pos {
                index: 0,
                line: 1,
                column: 1,
            },
            Pos {
                index: 0,
                line: 1,
                column: 1,
            },
        )),
    }
}

/// Rows in `keys` order (nulls last); stable, so ties keep their order.
fn sort_rows(
    rows: Vec<Map<String, Value>>,
    keys: &[(Expr, bool)],
    env: &Env,
) -> Result<Vec<Map<String, Value>>, DqlError> {
    let mut keyed = Vec::with_capacity(rows.len());
    for row in rows {
        let k: Vec<Val> = keys
            .iter()
            .map(|(e, _)| eval(e, &row, env))
            .collect::<Result<_, _>>()?;
        keyed.push((k, row));
    }
    keyed.sort_by(|(a, _), (b, _)| {
        for (i, (_, desc)) in keys.iter().enumerate() {
            let o = match (&a[i], &b[i]) {
                (Val::Null, Val::Null) => Ordering::Equal,
                (Val::Null, _) => Ordering::Greater,
                (_, Val::Null) => Ordering::Less,
                (x, y) => {
                    let o = compare(x, y).unwrap_or(Ordering::Equal);
                    if *desc { o.reverse() } else { o }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

fn apply(
    commands: &[Command],
    mut rows: Vec<Map<String, Value>>,
    env: &Env,
    catalog: &dyn Catalog,
    stats: &mut Stats,
) -> Result<Vec<Map<String, Value>>, DqlError> {
    for command in commands {
        rows = match command {
            Command::Filter(expr, out) => {
                let mut kept = Vec::new();
                for row in rows {
                    if eval(expr, &row, env)?.truthy() != *out {
                        kept.push(row);
                    }
                }
                kept
            }
            Command::Search(e) => rows.into_iter().filter(|r| search_eval(e, r)).collect(),
            Command::Limit(n) => {
                rows.truncate(*n);
                rows
            }
            Command::Fields(items) => {
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut new = Map::new();
                    for (name, e) in items {
                        new.insert(name.clone(), eval(e, &row, env)?.to_json());
                    }
                    out.push(new);
                }
                out
            }
            Command::FieldsAdd(items) => {
                let mut out = Vec::with_capacity(rows.len());
                for mut row in rows {
                    for (name, e) in items {
                        let v = eval(e, &row, env)?.to_json();
                        row.insert(name.clone(), v);
                    }
                    out.push(row);
                }
                out
            }
            Command::FieldsRemove(names) => rows
                .into_iter()
                .map(|mut r| {
                    for n in names {
                        r.remove(n);
                    }
                    r
                })
                .collect(),
            Command::FieldsRename(pairs) => rows
                .into_iter()
                .map(|mut r| {
                    for (new, old) in pairs {
                        if let Some(v) = r.remove(old) {
                            r.insert(new.clone(), v);
                        }
                    }
                    r
                })
                .collect(),
            Command::Sort(keys) => sort_rows(rows, keys, env)?,
            Command::Dedup(keys, sort) => {
                let rows = if sort.is_empty() {
                    rows
                } else {
                    sort_rows(rows, sort, env)?
                };
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::new();
                for row in rows {
                    let k: Vec<Value> = keys
                        .iter()
                        .map(|e| eval(e, &row, env).map(|v| v.to_json()))
                        .collect::<Result<_, _>>()?;
                    if seen.insert(serde_json::to_string(&k).unwrap_or_default()) {
                        out.push(row);
                    }
                }
                out
            }
            Command::Expand {
                name,
                expr,
                keep_source,
                limit,
            } => {
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let value = eval(expr, &row, env)?;
                    match value.items() {
                        Some(items) if !items.is_empty() => {
                            let n = limit.unwrap_or(usize::MAX).min(items.len());
                            for item in &items[..n] {
                                let mut new = row.clone();
                                new.insert(name.clone(), item.to_json());
                                out.push(new);
                            }
                        }
                        Some(_) => {
                            let mut new = row;
                            new.insert(name.clone(), Value::Null);
                            out.push(new);
                        }
                        None => {
                            let mut new = row;
                            if *keep_source {
                                new.insert(name.clone(), value.to_json());
                            }
                            out.push(new);
                        }
                    }
                }
                out
            }
            Command::Append(sub) => {
                let mut more = execute(sub, catalog, env, stats)?;
                rows.append(&mut more);
                rows
            }
            Command::Summarize(aggs, by) => summarize(aggs, by, rows, env)?,
            Command::MakeTimeseries(series) => make_timeseries(series, rows, env)?,
        };
    }
    Ok(rows)
}

const MINUTE: i128 = 60_000_000_000;

/// The buckets of a time series: (start, end, interval, number of buckets). Without an
/// interval, the smallest of 1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1d giving at most 120 buckets.
fn series_window(
    series: &Series,
    env: &Env,
    default_from: Option<i128>,
) -> Result<(i128, i128, i128, usize), DqlError> {
    let empty = Map::new();
    let time = |e: &Option<Expr>| -> Result<Option<i128>, DqlError> {
        Ok(e.as_ref()
            .map(|e| eval(e, &empty, env))
            .transpose()?
            .and_then(|v| time_like(&v)))
    };
    let to = time(&series.to)?.unwrap_or(env.now);
    let from = time(&series.from)?
        .or(default_from)
        .unwrap_or(to - 120 * MINUTE)
        .min(to - 1);
    let interval = series.interval.unwrap_or_else(|| {
        [1, 5, 15, 30, 60, 180, 360, 720, 1440]
            .into_iter()
            .map(|m| m * MINUTE)
            .find(|i| (to - from) / i <= 120)
            .unwrap_or(1440 * MINUTE)
    });
    let start = from - from.rem_euclid(interval);
    let end = to + (interval - to.rem_euclid(interval)) % interval;
    let points = ((end - start) / interval).clamp(1, 10_000) as usize;
    Ok((start, end, interval, points))
}

fn series_record(
    dims: Map<String, Value>,
    start: i128,
    end: i128,
    interval: i128,
) -> Map<String, Value> {
    let mut record = dims;
    record.insert(
        "timeframe".into(),
        json!({"start": format_time(start), "end": format_time(end)}),
    );
    record.insert("interval".into(), json!(interval.to_string()));
    record
}

/// `timeseries avg(metric), by: {…}`: synthetic metric series from the sample tenant.
fn timeseries(series: &Series, env: &Env) -> Result<Vec<Map<String, Value>>, DqlError> {
    let (start, end, interval, points) = series_window(series, env, None)?;
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    for (k, agg) in series.aggs.iter().enumerate() {
        let metric = match &agg.arg {
            Some(Expr::Field(f)) => f.as_str(),
            _ => "",
        };
        let all =
            super::data::metric_series(metric, &agg.function, &series.by, start, interval, points);
        for (i, (dims, values)) in all.into_iter().enumerate() {
            if k == 0 {
                rows.push(series_record(dims, start, end, interval));
            }
            rows[i].insert(agg.alias.clone(), json!(values));
        }
    }
    if let Some(filter) = &series.filter {
        let mut kept = Vec::new();
        for row in rows {
            if eval(filter, &row, env)?.truthy() {
                kept.push(row);
            }
        }
        rows = kept;
    }
    Ok(rows)
}

/// `makeTimeseries count(), by: {…}, interval: 5m` over the records so far.
fn make_timeseries(
    series: &Series,
    rows: Vec<Map<String, Value>>,
    env: &Env,
) -> Result<Vec<Map<String, Value>>, DqlError> {
    let time_expr = series
        .time
        .clone()
        .unwrap_or_else(|| Expr::Field("timestamp".into()));
    let mut times = Vec::with_capacity(rows.len());
    for row in &rows {
        times.push(time_like(&eval(&time_expr, row, env)?));
    }
    let earliest = times.iter().flatten().min().copied();
    let (start, end, interval, points) = series_window(series, env, earliest)?;
    let mut groups: BTreeMap<String, (Map<String, Value>, Vec<usize>)> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let mut dims = Map::new();
        for field in &series.by {
            dims.insert(
                field.clone(),
                row.get(field).cloned().unwrap_or(Value::Null),
            );
        }
        let key = Value::Object(dims.clone()).to_string();
        groups
            .entry(key)
            .or_insert_with(|| (dims, Vec::new()))
            .1
            .push(i);
    }
    if groups.is_empty() && series.by.is_empty() {
        groups.insert(String::new(), (Map::new(), Vec::new()));
    }
    let mut out = Vec::new();
    for (_, (dims, members)) in groups {
        let mut record = series_record(dims, start, end, interval);
        for agg in &series.aggs {
            let mut buckets: Vec<Vec<Val>> = vec![Vec::new(); points];
            for &i in &members {
                let Some(t) = times[i] else { continue };
                if t < start || t >= end {
                    continue;
                }
                let b = ((t - start) / interval) as usize;
                let v = match &agg.arg {
                    Some(e) => eval(e, &rows[i], env)?,
                    None => Val::Bool(true),
                };
                buckets[b.min(points - 1)].push(v);
            }
            let values: Vec<Value> = buckets
                .iter()
                .map(|b| {
                    let numbers: Vec<f64> = b.iter().filter_map(Val::as_num).collect();
                    match agg.function.as_str() {
                        "count" => json!(b.len().to_string()),
                        "countIf" => json!(b.iter().filter(|v| v.truthy()).count().to_string()),
                        _ if numbers.is_empty() => Value::Null,
                        "sum" => json!(numbers.iter().sum::<f64>()),
                        "avg" => json!(numbers.iter().sum::<f64>() / numbers.len() as f64),
                        "min" => json!(numbers.iter().copied().fold(f64::INFINITY, f64::min)),
                        _ => json!(numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                    }
                })
                .collect();
            record.insert(agg.alias.clone(), Value::Array(values));
        }
        out.push(record);
    }
    Ok(out)
}

/// A summarize group: its key values and its member rows.
type Group = (Vec<Value>, Vec<Map<String, Value>>);

fn summarize(
    aggs: &[(String, Agg)],
    by: &[(String, Expr)],
    rows: Vec<Map<String, Value>>,
    env: &Env,
) -> Result<Vec<Map<String, Value>>, DqlError> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for row in rows {
        let key: Vec<Value> = by
            .iter()
            .map(|(_, e)| eval(e, &row, env).map(|v| v.to_json()))
            .collect::<Result<_, _>>()?;
        let id = serde_json::to_string(&key).unwrap_or_default();
        groups
            .entry(id)
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push(row);
    }
    if groups.is_empty() && by.is_empty() {
        groups.insert(String::new(), (Vec::new(), Vec::new()));
    }
    let mut out = Vec::new();
    for (_, (key, members)) in groups {
        let mut row = Map::new();
        for ((name, _), value) in by.iter().zip(key) {
            row.insert(name.clone(), value);
        }
        for (alias, agg) in aggs {
            let values = |e: &Expr| -> Result<Vec<Val>, DqlError> {
                members
                    .iter()
                    .map(|m| eval(e, m, env))
                    .filter(|v| !matches!(v, Ok(Val::Null)))
                    .collect()
            };
            let value = match agg {
                Agg::Count => json!(members.len().to_string()),
                Agg::CountIf(e) => {
                    json!(values(e)?.iter().filter(|v| v.truthy()).count().to_string())
                }
                Agg::CountDistinct(e) => {
                    let distinct: std::collections::HashSet<String> =
                        values(e)?.iter().map(|v| v.to_json().to_string()).collect();
                    json!(distinct.len().to_string())
                }
                Agg::Sum(e) => json!(values(e)?.iter().filter_map(Val::as_num).sum::<f64>()),
                Agg::Avg(e) => {
                    let v: Vec<f64> = values(e)?.iter().filter_map(Val::as_num).collect();
                    if v.is_empty() {
                        Value::Null
                    } else {
                        json!(v.iter().sum::<f64>() / v.len() as f64)
                    }
                }
                Agg::Min(e) | Agg::Max(e) => {
                    let v = values(e)?;
                    let pick = v.into_iter().reduce(|a, b| {
                        let o = compare(&a, &b).unwrap_or(Ordering::Equal);
                        let keep_a = if matches!(agg, Agg::Min(_)) {
                            o != Ordering::Greater
                        } else {
                            o != Ordering::Less
                        };
                        if keep_a { a } else { b }
                    });
                    pick.map(|v| v.to_json()).unwrap_or(Value::Null)
                }
                Agg::CollectDistinct(e) => {
                    let mut seen = std::collections::HashSet::new();
                    let mut items = Vec::new();
                    for v in values(e)? {
                        let v = v.to_json();
                        if seen.insert(v.to_string()) {
                            items.push(v);
                        }
                    }
                    Value::Array(items)
                }
                Agg::CollectArray(e) => Value::Array(values(e)?.iter().map(Val::to_json).collect()),
                Agg::TakeFirst(e) => values(e)?.first().map(Val::to_json).unwrap_or(Value::Null),
                Agg::TakeLast(e) => values(e)?.last().map(Val::to_json).unwrap_or(Value::Null),
            };
            row.insert(alias.clone(), value);
        }
        out.push(row);
    }
    Ok(out)
}

/// `search`: string literals match anywhere in the record, combined with and/or/not.
fn search_eval(e: &Expr, record: &Map<String, Value>) -> bool {
    match e {
        Expr::Lit(Val::Str(pattern)) => matches_search(record, pattern),
        Expr::Bin("and", l, r) => search_eval(l, record) && search_eval(r, record),
        Expr::Bin("or", l, r) => search_eval(l, record) || search_eval(r, record),
        Expr::Not(e) => !search_eval(e, record),
        _ => false,
    }
}

/// The text (with `*` wildcards) appears in some value of the record (case-insensitive).
fn matches_search(record: &Map<String, Value>, pattern: &str) -> bool {
    let inner = pattern.trim_matches('*').to_lowercase();
    if inner.is_empty() {
        return true;
    }
    let pattern = format!("*{inner}*");
    fn hit(v: &Value, pattern: &str) -> bool {
        match v {
            Value::String(s) => glob(&s.to_lowercase(), pattern),
            Value::Array(items) => items.iter().any(|i| hit(i, pattern)),
            Value::Object(map) => map.values().any(|i| hit(i, pattern)),
            Value::Null => false,
            other => glob(&other.to_string().to_lowercase(), pattern),
        }
    }
    record.values().any(|v| hit(v, &pattern))
}

fn estimate_size(record: &Map<String, Value>) -> u64 {
    record
        .iter()
        .map(|(k, v)| {
            k.len() as u64
                + match v {
                    Value::String(s) => s.len() as u64,
                    Value::Array(a) => 16 * a.len() as u64,
                    _ => 8,
                }
        })
        .sum()
}

/// The Grail type of one field value (`None` for null).
fn field_type(key: &str, value: &Value) -> Option<Value> {
    let simple = |t: &str| Some(json!({ "type": t }));
    match value {
        Value::Null => None,
        Value::Bool(_) => simple("boolean"),
        Value::Number(n) if n.is_f64() => simple("double"),
        Value::Number(_) => simple("long"),
        Value::String(s)
            if key == "timestamp"
                || key.ends_with("_time")
                || key.ends_with(".start")
                || key.ends_with(".end") =>
        {
            simple(if parse_time(s).is_some() {
                "timestamp"
            } else {
                "string"
            })
        }
        Value::String(s)
            if key == "duration" || key.ends_with(".duration") || key == "interval" =>
        {
            simple(if s.parse::<i64>().is_ok() {
                "duration"
            } else {
                "string"
            })
        }
        Value::String(s)
            if s.parse::<i64>().is_ok() && !key.contains("id") && !key.contains("name") =>
        {
            simple("long")
        }
        Value::String(_) => simple("string"),
        Value::Array(items) => {
            let element = items.iter().find_map(|v| field_type("element", v));
            match element {
                Some(t) => Some(json!({
                    "type": "array",
                    "types": [{ "indexRange": [0, items.len() - 1], "mappings": { "element": t } }]
                })),
                None => simple("array"),
            }
        }
        Value::Object(map) => {
            if map.len() == 2
                && map.get("start").is_some_and(Value::is_string)
                && map.get("end").is_some_and(Value::is_string)
            {
                return simple("timeframe");
            }
            let mut mappings = Map::new();
            for (k, v) in map {
                if let Some(t) = field_type(k, v) {
                    mappings.insert(k.clone(), t);
                }
            }
            Some(json!({ "type": "record", "types": [{ "mappings": mappings }] }))
        }
    }
}

/// Grail's `types` for `records`: one mapping bucket over the whole index range.
pub fn types_of(records: &[Value]) -> Vec<Value> {
    if records.is_empty() {
        return Vec::new();
    }
    let mut mappings = Map::new();
    for record in records {
        if let Value::Object(map) = record {
            for (key, value) in map {
                if mappings.contains_key(key) {
                    continue;
                }
                if let Some(t) = field_type(key, value) {
                    mappings.insert(key.clone(), t);
                }
            }
        }
    }
    vec![json!({"indexRange": [0, records.len() - 1], "mappings": mappings})]
}

// ---------------------------------------------------------------------------------------------
// Explanation (Davis CoPilot's dql2nl)

/// DQL-like text for an expression.
fn render(e: &Expr) -> String {
    match e {
        Expr::Lit(Val::Str(s)) => format!("{s:?}"),
        Expr::Lit(Val::Num(n)) => n.to_string(),
        Expr::Lit(Val::Bool(b)) => b.to_string(),
        Expr::Lit(Val::Null) => "null".into(),
        Expr::Lit(Val::Dur(d)) => duration_literal(*d),
        Expr::Lit(other) => format!("{:?}", other),
        Expr::Field(f) => f.clone(),
        Expr::Now => "now()".into(),
        Expr::Neg(e) => format!("-{}", render(e)),
        Expr::Not(e) => format!("not({})", render(e)),
        Expr::Bin(op, l, r) => format!("{} {op} {}", render(l), render(r)),
        Expr::Call(name, args, _) => format!(
            "{name}({})",
            args.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Expr::List(items) => format!(
            "{{{}}}",
            items.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Expr::Record(fields) => format!(
            "record({})",
            fields
                .iter()
                .map(|(n, e)| format!("{n} = {}", render(e)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A duration as DQL writes it: `30m`, `2h`, `7d`.
fn duration_literal(nanos: i128) -> String {
    for (size, unit) in [
        (86_400_000_000_000i128, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
    ] {
        if nanos != 0 && nanos % size == 0 {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

fn duration_text(nanos: i128) -> String {
    let units = [
        (86_400_000_000_000i128, "day"),
        (3_600_000_000_000, "hour"),
        (60_000_000_000, "minute"),
        (1_000_000_000, "second"),
    ];
    for (size, unit) in units {
        if nanos >= size && nanos % size == 0 {
            let n = nanos / size;
            return format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{nanos} ns")
}

fn source_text(source: &str) -> String {
    match source {
        "logs" => "log records".into(),
        "spans" => "spans (distributed trace data)".into(),
        "events" => "events".into(),
        "bizevents" => "business events".into(),
        "dt.davis.problems" => "Davis problems".into(),
        "dt.davis.events" => "Davis events".into(),
        "security.events" => "security events".into(),
        "user.events" => "real-user-monitoring (RUM) events".into(),
        "dt.system.buckets" => "the Grail storage buckets".into(),
        s if s.starts_with("dt.entity.") => {
            format!("monitored entities of type {}", &s["dt.entity.".len()..])
        }
        other => format!("records of the data object {other}"),
    }
}

impl Query {
    /// A plain-language summary and one sentence per step.
    pub fn explain(&self) -> (String, Vec<String>) {
        let mut steps = Vec::new();
        let mut summary = match &self.start {
            Start::Fetch { source, from, to } => {
                let mut s = format!("Fetches {}", source_text(source));
                let mut step = format!("`fetch {source}` reads {}", source_text(source));
                if let Some(Expr::Bin("-", l, r)) = from
                    && matches!(**l, Expr::Now)
                    && let Expr::Lit(Val::Dur(d)) = **r
                {
                    s.push_str(&format!(" from the last {}", duration_text(d)));
                    step.push_str(&format!(" from the last {}", duration_text(d)));
                } else if let Some(from) = from {
                    step.push_str(&format!(" starting at {}", render(from)));
                }
                if let Some(to) = to {
                    step.push_str(&format!(" up to {}", render(to)));
                }
                steps.push(format!("{step}."));
                s
            }
            Start::Smartscape(types) => {
                let what = if types.iter().any(|t| t == "*") {
                    "all Smartscape nodes".to_string()
                } else {
                    format!("the Smartscape nodes of type {}", types.join(", "))
                };
                steps.push(format!("`smartscapeNodes` reads {what}."));
                format!("Lists {what}")
            }
            Start::Timeseries(series) => {
                let aggs = series
                    .aggs
                    .iter()
                    .map(|a| a.alias.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut step = format!("`timeseries` computes the metric series {aggs}");
                if !series.by.is_empty() {
                    step.push_str(&format!(" for each {}", series.by.join(", ")));
                }
                if let Some(Expr::Bin("-", l, r)) = &series.from
                    && matches!(**l, Expr::Now)
                    && let Expr::Lit(Val::Dur(d)) = **r
                {
                    step.push_str(&format!(" over the last {}", duration_text(d)));
                }
                if let Some(i) = series.interval {
                    step.push_str(&format!(", one value every {}", duration_text(i)));
                }
                steps.push(format!("{step}."));
                format!("Charts the metric series {aggs}")
            }
            Start::Data(records) => {
                steps.push(format!("`data` builds {} inline record(s).", records.len()));
                format!("Builds {} inline record(s)", records.len())
            }
        };
        let mut qualifiers = Vec::new();
        for command in &self.commands {
            match command {
                Command::Filter(e, out) => {
                    let cond = render(e);
                    if *out {
                        steps.push(format!("`filterOut` drops the records where {cond}."));
                        qualifiers.push(format!("excluding those where {cond}"));
                    } else {
                        steps.push(format!("`filter` keeps only the records where {cond}."));
                        qualifiers.push(format!("where {cond}"));
                    }
                }
                Command::Search(e) => {
                    steps.push(format!(
                        "`search` keeps the records that contain {} in any field.",
                        render(e)
                    ));
                    qualifiers.push(format!("containing {}", render(e)));
                }
                Command::Limit(n) => {
                    steps.push(format!("`limit` returns at most {n} records."));
                    qualifiers.push(format!("returning at most {n} records"));
                }
                Command::Fields(items) => steps.push(format!(
                    "`fields` keeps only {}.",
                    items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Command::FieldsAdd(items) => steps.push(format!(
                    "`fieldsAdd` adds {}.",
                    items
                        .iter()
                        .map(|(n, e)| format!("{n} = {}", render(e)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Command::FieldsRemove(names) => {
                    steps.push(format!("`fieldsRemove` removes {}.", names.join(", ")))
                }
                Command::FieldsRename(pairs) => steps.push(format!(
                    "`fieldsRename` renames {}.",
                    pairs
                        .iter()
                        .map(|(new, old)| format!("{old} to {new}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Command::Sort(keys) => {
                    let keys = keys
                        .iter()
                        .map(|(e, desc)| {
                            format!(
                                "{} ({})",
                                render(e),
                                if *desc { "descending" } else { "ascending" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", then ");
                    steps.push(format!("`sort` orders the records by {keys}."));
                    qualifiers.push(format!("sorted by {keys}"));
                }
                Command::Summarize(aggs, by) => {
                    let aggs = aggs
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let mut step = format!("`summarize` computes {aggs}");
                    if !by.is_empty() {
                        let by = by
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ");
                        step.push_str(&format!(" for each {by}"));
                        qualifiers.push(format!("aggregated ({aggs}) per {by}"));
                    } else {
                        qualifiers.push(format!("aggregated into {aggs}"));
                    }
                    steps.push(format!("{step}."));
                }
                Command::Dedup(keys, sort) => {
                    let keys = keys.iter().map(render).collect::<Vec<_>>().join(", ");
                    let mut step = format!("`dedup` keeps one record per {keys}");
                    if !sort.is_empty() {
                        step.push_str(&format!(
                            " (the first by {})",
                            sort.iter()
                                .map(|(e, d)| format!(
                                    "{}{}",
                                    render(e),
                                    if *d { " descending" } else { "" }
                                ))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    steps.push(format!("{step}."));
                    qualifiers.push(format!("one per {keys}"));
                }
                Command::Expand { name, expr, .. } => steps.push(format!(
                    "`expand` turns each element of the array {} into its own record (field {name}).",
                    render(expr)
                )),
                Command::MakeTimeseries(series) => {
                    let aggs = series
                        .aggs
                        .iter()
                        .map(|a| a.alias.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    steps.push(format!(
                        "`makeTimeseries` turns the records into time series of {aggs}{}.",
                        if series.by.is_empty() {
                            String::new()
                        } else {
                            format!(" for each {}", series.by.join(", "))
                        }
                    ));
                    qualifiers.push(format!("as time series ({aggs})"));
                }
                Command::Append(sub) => {
                    let (sub_summary, _) = sub.explain();
                    steps.push(format!(
                        "`append` adds the records of a subquery: {}",
                        sub_summary.trim_end_matches('.')
                    ));
                }
            }
        }
        if !qualifiers.is_empty() {
            summary.push_str(", ");
            summary.push_str(&qualifiers.join(", "));
        }
        summary.push('.');
        (summary, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vec3(Vec<Map<String, Value>>);

    impl Source for Vec3 {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn record(&self, index: usize) -> Map<String, Value> {
            self.0[index].clone()
        }
    }

    fn rows() -> Vec3 {
        Vec3(
            (0..10)
                .map(|i| {
                    let v = json!({
                        "timestamp": format_time(1_000_000_000_000_000_000 + i as i128 * 1_000_000_000),
                        "loglevel": if i % 3 == 0 { "ERROR" } else { "INFO" },
                        "content": format!("line {i} with \"quotes\""),
                        "n": i.to_string(),
                    });
                    v.as_object().unwrap().clone()
                })
                .collect(),
        )
    }

    fn run_q(q: &str) -> Result<Vec<Value>, DqlError> {
        let parsed = parse(q)?;
        let src = rows();
        run(&parsed, Some(&src), 1_000_000_020_000_000_000, 10_000).map(|o| o.records)
    }

    #[test]
    fn filter_sort_limit_fields() {
        let r = run_q(r#"fetch logs | filter loglevel == "ERROR" | sort timestamp desc | limit 2 | fields content"#).unwrap();
        assert_eq!(
            r,
            vec![
                json!({"content": "line 9 with \"quotes\""}),
                json!({"content": "line 6 with \"quotes\""})
            ]
        );
    }

    #[test]
    fn escaped_strings_compare_by_value() {
        let r = run_q(r#"fetch logs | filter content == "line 3 with \"quotes\"""#).unwrap();
        assert_eq!(r.len(), 1);
        let r = run_q(r#"fetch logs | filter contains(content, "\" | fetch")"#).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn summarize_counts_by_group() {
        let r = run_q("fetch logs | summarize count(), by:{loglevel}").unwrap();
        assert_eq!(
            r,
            vec![
                json!({"loglevel": "ERROR", "count()": "4"}),
                json!({"loglevel": "INFO", "count()": "6"})
            ]
        );
    }

    #[test]
    fn time_ranges_and_now() {
        let r = run_q("fetch logs, from: now()-5s | limit 100").unwrap();
        assert_eq!(r.len(), 0);
        let r = run_q("fetch logs, from: now()-15s").unwrap();
        assert_eq!(r.len(), 5);
        let r = run_q(r#"fetch logs | filter timestamp < toTimestamp("2001-09-09T01:46:45Z")"#)
            .unwrap();
        assert_eq!(r.len(), 5);
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse("fetch logs\n| fitler x == 1").unwrap_err();
        assert_eq!(e.error_type, "UNKNOWN_COMMAND");
        assert_eq!((e.start.line, e.start.column), (2, 3));
        assert!(e.message.contains("fitler"));
        let e = parse("fetch logs | filter content == \"open").unwrap_err();
        assert_eq!(e.error_type, "UNTERMINATED_STRING");
        let e = parse("fetsh logs").unwrap_err();
        assert_eq!((e.start.line, e.start.column), (1, 1));
        let e = run_q("fetch logs | filter nosuch(content)").unwrap_err();
        assert_eq!(e.error_type, "UNKNOWN_FUNCTION");
    }

    #[test]
    fn data_records() {
        let parsed =
            parse(r#"data record(a = 1, b = "x"), record(a = 2, b = "y") | filter a > 1"#).unwrap();
        let out = run(&parsed, None, 0, 10).unwrap();
        assert_eq!(out.records, vec![json!({"a": "2", "b": "y"})]);
    }

    #[test]
    fn types_cover_the_records() {
        let r = run_q("fetch logs | limit 3").unwrap();
        let t = types_of(&r);
        assert_eq!(t[0]["indexRange"], json!([0, 2]));
        assert_eq!(t[0]["mappings"]["timestamp"]["type"], "timestamp");
        assert_eq!(t[0]["mappings"]["n"]["type"], "long");
    }
}

/// The example queries the server's tools send, run against the sample tenant.
#[cfg(test)]
mod tenant_tests {
    use super::super::data::{PROBLEMS, Tenant, display_id};
    use super::*;

    const NOW: i128 = 1_764_000_000_000_000_000;

    fn q(query: &str) -> Vec<Value> {
        let tenant = Tenant {
            now: NOW,
            log_records: 500,
            ingested_events: &[],
            problems: usize::MAX,
        };
        let parsed = parse(query).unwrap_or_else(|e| panic!("{query}: {}", e.message));
        run_in(&parsed, &tenant, NOW, usize::MAX)
            .unwrap_or_else(|e| panic!("{query}: {}", e.message))
            .records
    }

    fn strings(rows: &[Value], field: &str) -> Vec<String> {
        rows.iter()
            .map(|r| r[field].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn smartscape_nodes_by_type() {
        let all = q(r#"smartscapeNodes "*""#);
        assert_eq!(all.len(), 24);
        let mut types = strings(&all, "type");
        types.dedup();
        for t in ["K8S_CLUSTER", "K8S_NAMESPACE", "HOST", "SERVICE", "PROCESS"] {
            assert!(types.contains(&t.to_string()), "{types:?}");
        }
        let services = q(r#"smartscapeNodes "SERVICE""#);
        assert_eq!(services.len(), 7);
        assert!(services.iter().all(|s| s["type"] == "SERVICE"
            && s["tags"].is_array()
            && s["id"].as_str().unwrap().starts_with("SERVICE-")
            && s["name"].is_string()));
        assert_eq!(q(r#"smartscapeNodes "host""#).len(), 4);
        assert_eq!(q(r#"smartscapeNodes "K8S_CLUSTER""#).len(), 2);
        assert_eq!(q(r#"smartscapeNodes {"HOST", "K8S_CLUSTER"}"#).len(), 6);
        assert!(q(r#"smartscapeNodes "NO_SUCH_TYPE""#).is_empty());
    }

    #[test]
    fn smartscape_search_like_the_entity_lookup() {
        let rows = q(r#"smartscapeNodes "*" | search "*payment*" | fields id, name, type"#);
        let names = strings(&rows, "name");
        assert!(names.contains(&"payment-service".to_string()), "{names:?}");
        assert!(names.contains(&"payments".to_string()), "{names:?}");
        assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 3));
        let rows = q(r#"smartscapeNodes "SERVICE" | search "*payment*" OR "*auth*" | fields name"#);
        assert_eq!(
            strings(&rows, "name"),
            vec!["payment-service", "auth-service"]
        );
    }

    #[test]
    fn expand_and_summarize_tags() {
        let rows =
            q(r#"smartscapeNodes "SERVICE" | expand tags | summarize count = count(), by: {tags}"#);
        let prod = rows.iter().find(|r| r["tags"] == "env:prod").unwrap();
        assert_eq!(prod["count"], "6");
        let critical = rows.iter().find(|r| r["tags"] == "tier:critical").unwrap();
        assert_eq!(critical["count"], "2");
        let rows = q(
            r#"smartscapeNodes "SERVICE" | expand tag = tags | filter tag == "team:payments" | fields name, tag, tags"#,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"], "payment-service");
        assert!(rows[0]["tags"].is_array(), "an alias keeps the array");
        let rows = q(r#"smartscapeNodes "SERVICE" | expand tags, limit: 1"#);
        assert_eq!(rows.len(), 7);
    }

    #[test]
    fn array_functions() {
        assert_eq!(
            q(r#"smartscapeNodes "SERVICE" | filter in("env:prod", tags)"#).len(),
            6
        );
        assert_eq!(
            q(r#"smartscapeNodes "SERVICE" | filter in(name, {"frontend", "cart-service"})"#).len(),
            3
        );
        assert_eq!(
            q(r#"smartscapeNodes "SERVICE" | filter arraySize(tags) == 4"#).len(),
            2
        );
        let rows = q(
            r#"smartscapeNodes "SERVICE" | filter name == "payment-service" | fieldsAdd tagText = toString(tags) | fields tagText"#,
        );
        assert_eq!(
            rows[0]["tagText"],
            r#"["env:prod", "app:payment-service", "team:payments", "tier:critical"]"#
        );
        let rows =
            q(r#"smartscapeNodes "SERVICE" | filter contains(toString(tags), "TIER:critical")"#);
        assert_eq!(rows.len(), 2);
        let rows = q(r#"smartscapeNodes "SERVICE" | filter matchesValue(tags, "team:pay*")"#);
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn string_functions_and_negation() {
        let names = |query: &str| strings(&q(query), "name");
        assert_eq!(
            names(r#"smartscapeNodes "SERVICE" | filter matchesValue(name, "PAY*")"#),
            vec!["payment-service"]
        );
        assert_eq!(
            names(r#"smartscapeNodes "SERVICE" | filter startsWith(name, "inv")"#),
            vec!["inventory-service"]
        );
        assert_eq!(
            names(r#"smartscapeNodes "SERVICE" | filter endsWith(name, "end") | dedup name"#),
            vec!["frontend"]
        );
        assert_eq!(
            q(r#"smartscapeNodes "SERVICE" | filter not(endsWith(name, "-service"))"#).len(),
            2
        );
        assert_eq!(
            names(r#"smartscapeNodes "SERVICE" | filter lower(name) == "auth-service""#),
            vec!["auth-service"]
        );
        assert_eq!(
            q(r#"smartscapeNodes "SERVICE" | filter isNull(no.such.field)"#).len(),
            7
        );
        assert_eq!(
            q(r#"smartscapeNodes "SERVICE" | filter isNotNull(k8s.namespace.name)"#).len(),
            7
        );
    }

    #[test]
    fn buckets() {
        let rows = q("fetch dt.system.buckets");
        let names = strings(&rows, "name");
        for b in [
            "default_logs",
            "default_events",
            "default_spans",
            "default_bizevents",
            "default_securityevents",
            "default_user_events",
            "dt_system_events",
            "team_payments_logs",
        ] {
            assert!(names.contains(&b.to_string()), "{b}");
        }
        let logs = &rows[0];
        for f in [
            "name",
            "display_name",
            "table",
            "retention_days",
            "estimated_uncompressed_bytes",
            "records",
            "status",
            "updatable",
            "version",
        ] {
            assert!(!logs[f].is_null(), "{f}");
        }
        assert!(logs["retention_days"].is_string(), "longs are strings");
        assert_eq!(logs["status"], "active");
        assert_eq!(
            strings(
                &q(r#"fetch dt.system.buckets | filter table == "logs" | fields name"#),
                "name"
            ),
            vec!["default_logs", "team_payments_logs"]
        );
        // A long (a JSON string) compared with a number.
        assert_eq!(
            q("fetch dt.system.buckets | filter retention_days > 35").len(),
            5
        );
        assert_eq!(
            q(r#"fetch dt.system.buckets | filterOut table == "logs""#).len(),
            8
        );
        let sorted = strings(
            &q(
                "fetch dt.system.buckets | sort table asc, retention_days desc | fields name | limit 3",
            ),
            "name",
        );
        assert_eq!(
            sorted,
            vec!["default_bizevents", "dt_system_events", "default_events"]
        );
        let types = types_of(&q("fetch dt.system.buckets"));
        assert_eq!(types[0]["mappings"]["retention_days"]["type"], "long");
        assert_eq!(types[0]["mappings"]["updatable"]["type"], "boolean");
    }

    const VULNERABILITIES: &str = r#"fetch security.events, from: now()-30d, to: now()
    | filter dt.system.bucket=="default_securityevents_builtin"
        AND event.provider=="Dynatrace"
        AND event.type=="VULNERABILITY_STATE_REPORT_EVENT"
        AND event.level=="ENTITY"
    // filter for the latest snapshot per entity
    | dedup {vulnerability.display_id, affected_entity.id}, sort:{timestamp desc}
    // filter for open non-muted vulnerabilities with minimum risk score of 8.0
    | filter vulnerability.resolution.status=="OPEN"
        AND vulnerability.risk.score >= 8
    | sort vulnerability.risk.score desc
    | limit 100"#;

    #[test]
    fn vulnerabilities_latest_snapshot_per_entity() {
        let all = q("fetch security.events");
        assert_eq!(all.len(), 30);
        assert!(all[0]["vulnerability.risk.score"].is_f64());
        assert!(all[0]["vulnerability.references.cve"].is_array());
        let rows = q(VULNERABILITIES);
        let ids: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}@{}",
                    r["vulnerability.display_id"].as_str().unwrap(),
                    r["affected_entity.name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(rows.len(), 6, "{ids:?}");
        assert_eq!(rows[0]["vulnerability.risk.score"], 9.8);
        assert_eq!(rows[0]["vulnerability.risk.level"], "CRITICAL");
        // checkout-service's S-101 was resolved in its latest snapshot.
        assert!(
            !ids.iter().any(|i| i.starts_with("S-101@checkout")),
            "{ids:?}"
        );
        // The kept snapshot is the newest one (2 hours old for payment-service).
        let payment = rows
            .iter()
            .find(|r| {
                r["affected_entity.name"] == "payment-service (java)"
                    && r["vulnerability.display_id"] == "S-101"
            })
            .unwrap();
        let at = parse_time(payment["timestamp"].as_str().unwrap()).unwrap();
        assert!(NOW - at < 3 * 3600 * 1_000_000_000);
        let muted = q(
            r#"fetch security.events | dedup {vulnerability.display_id, affected_entity.id}, sort: {timestamp desc} | filter vulnerability.mute.status == "MUTED""#,
        );
        assert_eq!(muted.len(), 2);
    }

    #[test]
    fn rum_exceptions() {
        assert_eq!(q("fetch user.events").len(), 60);
        let rows = q("fetch user.events, from: now()-24h, to: now()
| filter isNotNull(exception.stack_trace)
| filter isNotNull(error.id)
| fields error.id, error.type, exception.message, os.name, dt.rum.application.id, dt.rum.application.entity, start_time
| sort start_time desc");
        assert_eq!(rows.len(), 20);
        assert!(
            rows.iter()
                .all(|r| r["error.type"].is_string() && r["start_time"].is_string())
        );
        let id = rows[0]["error.id"].as_str().unwrap();
        let same = q(&format!(
            r#"fetch user.events | filter error.id == toUid("{id}")"#
        ));
        assert!(!same.is_empty() && same.len() < 20);
        assert!(same.iter().all(|r| {
            r["exception.stack_trace"]
                .as_str()
                .unwrap()
                .contains("\n    at ")
        }));
    }

    #[test]
    fn kubernetes_and_davis_events() {
        let types = strings(
            &q("fetch events | summarize count(), by: {event.type}"),
            "event.type",
        );
        for t in [
            "PROCESS_RESTART",
            "RESOURCE_CONTENTION_EVENT",
            "ERROR_EVENT",
            "CUSTOM_INFO",
            "K8S_EVENT",
        ] {
            assert!(types.contains(&t.to_string()), "{t}: {types:?}");
        }
        let uid = "0f6c2b7e-3a41-4c55-9d0e-6b8f1a2c3d4e";
        let rows = q(&format!(
            r#"fetch events, from: now()-24h, to: now() | filter k8s.cluster.uid == "{uid}" or dt.entity.kubernetes_cluster == "KUBERNETES_CLUSTER-5A1E7B3C9D2F4E6A" | sort timestamp desc"#
        ));
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|r| r["k8s.cluster.uid"] == uid));
        let e = &rows[0];
        for f in [
            "event.status",
            "event.start",
            "duration",
            "k8s.cluster.uid",
            "dt.entity.kubernetes_cluster",
        ] {
            assert!(!e[f].is_null(), "{f}");
        }
        assert!(q("fetch events | filter isNotNull(k8s.cluster.uid)").len() > 400);
    }

    #[test]
    fn problems_like_the_list_tool() {
        let rows = q("fetch dt.davis.problems, from: now()-24h, to: now()
| filter isNull(dt.davis.is_duplicate) OR not(dt.davis.is_duplicate)
| filter isNull(event.end)
| fieldsAdd
   duration = (coalesce(event.end, now()) - event.start)/1000000000,
   affected_entities_count = arraySize(affected_entity_ids),
   event_count = arraySize(dt.davis.event_ids),
   affected_users_count = dt.davis.affected_users_count,
   problem_id = event.id
| fields display_id, event.name, event.description, event.status, event.category, event.start, event.end,
         root_cause_entity_id, root_cause_entity_name, duration, affected_entities_count,
         event_count, affected_users_count, problem_id, dt.davis.mute.status, dt.davis.mute.user,
         entity_tags, labels.alerting_profile, maintenance.is_under_maintenance,
         k8s.cluster.name, k8s.cluster.uid, k8s.namespace.name
| sort event.start desc");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["display_id"], display_id(0));
        assert_eq!(
            rows[0]["duration"],
            (PROBLEMS[0].age_minutes * 60).to_string()
        );
        assert_eq!(rows[0]["affected_entities_count"], "3");
        assert_eq!(rows[0]["event_count"], "2");
        assert_eq!(rows[0]["affected_users_count"], "214");
        assert!(rows[0]["dt.davis.mute.user"].is_null());
        let closed = q("fetch dt.davis.problems | filter not(isNull(event.end))");
        assert_eq!(closed.len(), 5);
    }

    #[test]
    fn problem_evidence_exists_in_events() {
        for problem in q("fetch dt.davis.problems") {
            let ids: Vec<String> = problem["dt.davis.event_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.to_string())
                .collect();
            let events = q(&format!(
                "fetch events | filter in(event.id, {{{}}})",
                ids.join(", ")
            ));
            assert_eq!(events.len(), 2, "{}", problem["display_id"]);
            assert!(events.iter().all(|e| e["event.kind"] == "DAVIS_EVENT"));
            assert!(
                events
                    .iter()
                    .all(|e| e["dt.davis.display_ids"][0] == problem["display_id"])
            );
        }
    }

    #[test]
    fn append_subqueries() {
        let rows = q(
            "fetch dt.entity.host | fields name = entity.name | append [ fetch dt.entity.service | fields name = entity.name ]",
        );
        assert_eq!(rows.len(), 11);
        let rows = q(
            r#"fetch dt.entity.application | search "*payment*" | fieldsAdd entity.type | expand tags
  | append [ fetch dt.entity.service | search "*payment*" | fieldsAdd entity.type | expand tags ]
  | append [ fetch dt.entity.host | search "*payment*" | fieldsAdd entity.type | expand tags ]"#,
        );
        assert_eq!(rows.len(), 4, "payment-service once per tag");
        assert!(
            rows.iter()
                .all(|r| r["tags"].is_string() && r["entity.type"] == "SERVICE")
        );
    }

    #[test]
    fn time_functions() {
        assert_eq!(q("fetch security.events, from: now()-30d").len(), 30);
        assert!(q("fetch security.events | filter timestamp > now()-30d").len() == 30);
        assert!(q("fetch security.events | filter timestamp > now()-1d").len() < 30);
        let rows = q(
            r#"fetch dt.davis.problems | filter event.start >= toTimestamp("2025-11-24T00:00:00Z")"#,
        );
        assert!(!rows.is_empty());
        let rows = q(
            r#"fetch dt.davis.problems | fieldsAdd ended = coalesce(event.end, "open") | filter ended == "open""#,
        );
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn unknown_names_are_grail_errors() {
        let e = parse(r#"smartscapeNodes "*" | fitler x"#).unwrap_err();
        assert_eq!(e.error_type, "UNKNOWN_COMMAND");
        assert_eq!((e.start.line, e.start.column, e.start.index), (1, 23, 22));
        let e = parse("fetch logs\n| filter nosuch(content)").unwrap_err();
        assert_eq!(e.error_type, "UNKNOWN_FUNCTION");
        assert_eq!((e.start.line, e.start.column), (2, 10));
        assert_eq!(e.end.column, 15);
        let e = parse("fetch logs | summarize count(), by: {x} | append [ fetch logs").unwrap_err();
        assert_eq!(e.error_type, "MISSING_TOKEN");
        let envelope = e.envelope("q");
        assert_eq!(envelope["error"]["code"], 400);
        assert_eq!(envelope["error"]["message"], "MISSING_TOKEN");
        let tenant = Tenant {
            now: NOW,
            log_records: 1,
            ingested_events: &[],
            problems: usize::MAX,
        };
        let parsed = parse("fetch nosuch.table | append [fetch logs]").unwrap();
        let e = run_in(&parsed, &tenant, NOW, 10).unwrap_err();
        assert_eq!(e.error_type, "DATA_OBJECT_NOT_FOUND");
        assert_eq!(e.start.column, 7);
    }

    #[test]
    fn timeseries_metrics() {
        let rows = q("timeseries cpu = avg(dt.host.cpu.usage), by:{host.name}, from: now()-6h");
        assert_eq!(rows.len(), 4);
        let r = &rows[0];
        assert!(r["host.name"].as_str().unwrap().starts_with("ip-"));
        assert_eq!(r["interval"], "300000000000", "6h in 5m buckets");
        assert_eq!(r["cpu"].as_array().unwrap().len(), 72);
        assert!(r["cpu"][0].is_f64());
        assert!(r["timeframe"]["start"].is_string());
        let types = types_of(&rows);
        assert_eq!(
            types[0]["mappings"]["cpu"]["types"][0]["mappings"]["element"]["type"],
            "double"
        );
        assert_eq!(types[0]["mappings"]["timeframe"]["type"], "timeframe");
        assert_eq!(types[0]["mappings"]["interval"]["type"], "duration");
        let rows = q("timeseries requests = sum(dt.service.request.count), by:{dt.entity.service}, from: now()-1h
| sort arraySum(requests) desc
| limit 5");
        assert_eq!(rows.len(), 5);
        let sums: Vec<f64> = rows
            .iter()
            .map(|r| {
                r["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_f64)
                    .sum()
            })
            .collect();
        assert!(sums.windows(2).all(|w| w[0] >= w[1]), "{sums:?}");
        let rows = q(
            "timeseries { avg(dt.host.cpu.usage), max(dt.host.cpu.usage) }, interval: 1h, from: now()-1d",
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0]["avg(dt.host.cpu.usage)"].as_array().unwrap().len(),
            24
        );
        assert!(rows[0]["max(dt.host.cpu.usage)"].is_array());
        let rows = q(
            r#"timeseries avg(dt.host.cpu.usage), by: {host.name}, filter: {host.name == "ip-10-8-1-12.ec2.internal"}"#,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(
            q("timeseries avg(dt.host.cpu.usage)"),
            q("timeseries avg(dt.host.cpu.usage)"),
            "deterministic"
        );
        assert!(parse("timeseries avg()").is_err());
        assert!(parse("timeseries avg(dt.host.cpu.usage), bogus: 1").is_err());
    }

    #[test]
    fn make_timeseries_and_bin() {
        let rows = q(
            r#"fetch logs | filter loglevel == "ERROR" | makeTimeseries errors = count(), by: {service.name}, interval: 30m"#,
        );
        assert!(!rows.is_empty());
        let total: usize = rows
            .iter()
            .flat_map(|r| r["errors"].as_array().unwrap().iter())
            .map(|v| v.as_str().unwrap().parse::<usize>().unwrap())
            .sum();
        let errors = q(r#"fetch logs | filter loglevel == "ERROR" | summarize count()"#);
        assert_eq!(total.to_string(), errors[0]["count()"].as_str().unwrap());
        let rows = q("fetch logs, from: now()-6h
| filter loglevel == \"ERROR\"
| summarize errors = count(), by:{service.name, bin(timestamp, 30m)}
| sort errors desc
| limit 20");
        assert!(!rows.is_empty());
        let bucket = rows[0]["bin(timestamp, 30m)"].as_str().unwrap();
        assert!(
            bucket.ends_with(":00:00.000000000Z") || bucket.ends_with(":30:00.000000000Z"),
            "{bucket}"
        );
    }

    /// The examples of the server's DQL reference resource.
    #[test]
    fn reference_examples_parse_and_run() {
        for example in [
            "fetch logs, from: now()-2h\n| filter loglevel == \"ERROR\"\n| sort timestamp desc\n| limit 20",
            "fetch spans, from: now()-1h\n| filter request.is_failed == true and in(http.request.method, {\"POST\", \"PUT\"})\n| summarize failures = count(), by:{service.name, http.route}\n| sort failures desc\n| limit 10",
            "fetch dt.entity.service\n| filter contains(entity.name, \"payment\")\n| fields id, entity.name\n| limit 10",
            "smartscapeNodes \"SERVICE\"\n| filter isNotNull(tags)\n| expand tag = tags\n| summarize services = count(), by:{tag}\n| sort services desc\n| limit 20",
            "fetch logs, from: now()-1h\n| filter dt.entity.service == \"SERVICE-0B3E2C2F7E1F5A01\"\n| summarize count(), by:{loglevel}",
            "fetch dt.davis.problems, from: now()-24h\n| filter event.status == \"ACTIVE\"\n| fields display_id, event.name, event.category, root_cause_entity_name, event.start\n| sort event.start desc\n| limit 20",
            "fetch events, from: now()-24h\n| filter event.type == \"CUSTOM_DEPLOYMENT\"\n| fields timestamp, event.name, dt.entity.service\n| sort timestamp desc\n| limit 20",
            "fetch logs, from: now()-1h\n| filter loglevel == \"ERROR\" and contains(content, \"timeout\")\n| fields timestamp, service.name, content\n| sort timestamp desc\n| limit 20",
            "fetch spans, from: now()-2h\n| filter request.is_failed == true\n| summarize failures = count(), by:{service.name, bin(timestamp, 15m)}",
            "smartscapeNodes \"*\"\n| filter isNotNull(tags)\n| expand tag = tags\n| summarize count = count(), by: {tag}\n| sort count desc\n| limit 500",
            "smartscapeNodes \"SERVICE\"\n| filter isNotNull(tags)\n| expand tag = tags\n| filter tag == \"team:payments\"\n| dedup id\n| fields id, type, name, tags\n| limit 10",
        ] {
            q(example);
        }
    }

    #[test]
    fn explanations_follow_the_commands() {
        let (summary, steps) = parse(r#"fetch logs, from: now()-2h | filter loglevel == "ERROR" | sort timestamp desc | limit 20"#)
            .unwrap()
            .explain();
        assert!(
            summary.starts_with("Fetches log records from the last 2 hours"),
            "{summary}"
        );
        assert!(summary.contains("loglevel == \"ERROR\""), "{summary}");
        assert_eq!(steps.len(), 4);
        assert!(steps[3].contains("at most 20"));
    }
}
