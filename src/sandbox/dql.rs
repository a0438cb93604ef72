//! A small DQL interpreter for the simulated tenant: enough of the language to make `demo` worth
//! trying and to let tests check what a tool sent, with Grail's error envelope (message and
//! 1-based line/column) for what it does not understand.
//!
//! Supported: `fetch <source> [, from:…] [, to:…]`, `data record(…), …`, and the commands
//! `filter`, `filterOut`, `limit`, `fields`, `fieldsKeep`, `fieldsRemove`, `fieldsAdd`, `sort`,
//! `summarize` (count, sum, avg, min, max, countDistinct; `by:{…}`), `dedup`, `search`. Expressions: literals
//! (strings with escapes, numbers, booleans, null, durations such as `24h`), fields (dotted or
//! `backticked`), `now()`, arithmetic on time, comparisons, `and`/`or`/`not`, and the functions
//! `contains`, `startsWith`, `endsWith`, `matchesPhrase`, `matchesValue`, `isNull`,
//! `isNotNull`, `in`, `lower`, `upper`, `toTimestamp`, `toString`, `exists`.

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
    CountDistinct(Expr),
    Sum(Expr),
    Avg(Expr),
    Min(Expr),
    Max(Expr),
}

#[derive(Debug, Clone)]
enum Command {
    Filter(Expr, bool),
    Limit(usize),
    Fields(Vec<(String, Expr)>),
    FieldsAdd(Vec<(String, Expr)>),
    FieldsRemove(Vec<String>),
    Sort(Vec<(Expr, bool)>),
    Summarize(Vec<(String, Agg)>, Vec<(String, Expr)>),
    Dedup(Vec<Expr>),
    Search(String),
}

#[derive(Debug, Clone)]
enum Start {
    Fetch {
        source: String,
        from: Option<Expr>,
        to: Option<Expr>,
    },
    Data(Vec<Expr>),
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    start: Start,
    commands: Vec<Command>,
}

impl Query {
    /// The source a `fetch` reads, if any.
    pub fn source(&self) -> Option<&str> {
        match &self.start {
            Start::Fetch { source, .. } => Some(source),
            Start::Data(_) => None,
        }
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    i: usize,
    end: Pos,
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
        self.peek().is_none() || self.is_sym("|")
    }

    fn parse(mut self) -> Result<Query, DqlError> {
        let (word, pos) = self.ident("a command such as fetch")?;
        let start = match word.as_str() {
            "fetch" => {
                let (source, _) = self.ident("a data object such as logs")?;
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
                    pos,
                ));
            }
        };
        if !self.at_command_end() {
            let at = self.here();
            return Err(DqlError::at(
                "UNEXPECTED_TOKEN",
                "Unexpected token: a command ends here; start the next one with `|`.",
                at,
                at,
            ));
        }
        let mut commands = Vec::new();
        while self.is_sym("|") {
            self.i += 1;
            commands.push(self.command()?);
            if !self.at_command_end() {
                let at = self.here();
                return Err(DqlError::at(
                    "UNEXPECTED_TOKEN",
                    "Unexpected token: a command ends here; start the next one with `|`.",
                    at,
                    at,
                ));
            }
        }
        Ok(Query { start, commands })
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
            "sort" => {
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
                    if !self.is_sym(",") {
                        break;
                    }
                    self.i += 1;
                }
                Command::Sort(keys)
            }
            "summarize" => self.summarize()?,
            "dedup" => {
                let mut keys = vec![self.expr()?];
                while self.is_sym(",") {
                    self.i += 1;
                    if self.is_word("sort") {
                        // dedup …, sort:{…}: the sort order only picks which duplicate survives.
                        self.i += 1;
                        self.expect_sym(":")?;
                        self.expr()?;
                        continue;
                    }
                    keys.push(self.expr()?);
                }
                Command::Dedup(keys)
            }
            "search" => match self.next() {
                Some(Token {
                    tok: Tok::Str(s), ..
                }) => Command::Search(s.to_lowercase()),
                _ => {
                    return Err(DqlError::at(
                        "INVALID_SEARCH",
                        "search needs a string, e.g. search \"timeout\".",
                        pos,
                        pos,
                    ));
                }
            },
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

    fn assignments(&mut self) -> Result<Vec<(String, Expr)>, DqlError> {
        let mut out = Vec::new();
        loop {
            let e = self.expr()?;
            let entry = if self.is_sym("=") {
                self.i += 1;
                let Expr::Field(name) = e else {
                    let at = self.here();
                    return Err(DqlError::at(
                        "INVALID_ASSIGNMENT",
                        "Only a field name can be assigned.",
                        at,
                        at,
                    ));
                };
                (name, self.expr()?)
            } else {
                let name = match &e {
                    Expr::Field(name) => name.clone(),
                    other => format!("{other:?}"),
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
                loop {
                    let e = self.expr()?;
                    let entry = if self.is_sym("=") {
                        self.i += 1;
                        let Expr::Field(alias) = e else {
                            let at = self.here();
                            return Err(DqlError::at(
                                "INVALID_ASSIGNMENT",
                                "Only a field name can be assigned.",
                                at,
                                at,
                            ));
                        };
                        (alias, self.expr()?)
                    } else {
                        let name = match &e {
                            Expr::Field(n) => n.clone(),
                            other => format!("{other:?}"),
                        };
                        (name, e)
                    };
                    by.push(entry);
                    if self.is_sym(",") {
                        self.i += 1;
                        continue;
                    }
                    break;
                }
                self.expect_sym("}")?;
            } else {
                let at = self.here();
                let e = self.expr()?;
                let (alias, e) = if self.is_sym("=") {
                    self.i += 1;
                    let Expr::Field(alias) = e else {
                        return Err(DqlError::at(
                            "INVALID_ASSIGNMENT",
                            "Only a field name can be assigned.",
                            at,
                            at,
                        ));
                    };
                    (Some(alias), self.expr()?)
                } else {
                    (None, e)
                };
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
                    "countDistinct" => Agg::CountDistinct(arg()?),
                    "sum" => Agg::Sum(arg()?),
                    "avg" => Agg::Avg(arg()?),
                    "min" => Agg::Min(arg()?),
                    "max" => Agg::Max(arg()?),
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
            Val::Json(v) => Some(v.to_string()),
            Val::Time(t) => Some(format_time(*t)),
            _ => None,
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

struct Env {
    now: i128,
}

fn field<'r>(record: &'r Map<String, Value>, name: &str) -> Option<&'r Value> {
    record.get(name)
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
            _ => Val::Null,
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
                "+" | "-" => match (&a, &b) {
                    (Val::Time(t), Val::Dur(d)) => {
                        Val::Time(if *op == "+" { t + d } else { t - d })
                    }
                    (Val::Dur(x), Val::Dur(y)) => Val::Dur(if *op == "+" { x + y } else { x - y }),
                    (Val::Time(x), Val::Time(y)) if *op == "-" => Val::Dur(x - y),
                    _ => match (a.as_num(), b.as_num()) {
                        (Some(x), Some(y)) => Val::Num(if *op == "+" { x + y } else { x - y }),
                        _ => Val::Null,
                    },
                },
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
    let text_pair = |args: &[Expr]| -> Result<(Option<String>, Option<String>), DqlError> {
        arity(2)?;
        Ok((
            eval(&args[0], record, env)?
                .as_text()
                .map(|s| s.to_lowercase()),
            eval(&args[1], record, env)?
                .as_text()
                .map(|s| s.to_lowercase()),
        ))
    };
    Ok(match name {
        "contains" | "matchesPhrase" | "matchesValue" | "startsWith" | "endsWith" => {
            let (a, b) = text_pair(args)?;
            match (a, b) {
                (Some(a), Some(b)) => Val::Bool(match name {
                    "startsWith" => a.starts_with(&b),
                    "endsWith" => a.ends_with(&b),
                    "matchesValue" => a == b,
                    _ => a.contains(&b),
                }),
                _ => Val::Null,
            }
        }
        "isNull" => {
            arity(1)?;
            Val::Bool(matches!(eval(&args[0], record, env)?, Val::Null))
        }
        "isNotNull" | "exists" => {
            arity(1)?;
            Val::Bool(!matches!(eval(&args[0], record, env)?, Val::Null))
        }
        "in" => {
            arity(2)?;
            let needle = eval(&args[0], record, env)?;
            let hay: Vec<Val> = args[1..]
                .iter()
                .map(|e| eval(e, record, env))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flat_map(|v| match v {
                    Val::List(items) => items,
                    Val::Json(Value::Array(items)) => items.iter().map(Val::from_json).collect(),
                    other => vec![other],
                })
                .collect();
            match &needle {
                Val::Json(Value::Array(items)) => Val::Bool(
                    items
                        .iter()
                        .map(Val::from_json)
                        .any(|n| hay.iter().any(|h| compare(&n, h) == Some(Ordering::Equal))),
                ),
                _ => Val::Bool(
                    hay.iter()
                        .any(|h| compare(&needle, h) == Some(Ordering::Equal)),
                ),
            }
        }
        "lower" | "upper" | "toString" => {
            arity(1)?;
            match eval(&args[0], record, env)?.as_text() {
                Some(s) if name == "lower" => Val::Str(s.to_lowercase()),
                Some(s) if name == "upper" => Val::Str(s.to_uppercase()),
                Some(s) => Val::Str(s),
                None => Val::Null,
            }
        }
        "toTimestamp" | "timestamp" => {
            arity(1)?;
            match eval(&args[0], record, env)? {
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
            eval(&args[0], record, env)?
                .as_num()
                .map(Val::Num)
                .unwrap_or(Val::Null)
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

/// Runs `query` over `source` (the data object it fetches), stopping early where it can.
/// `now` is the tenant's clock in nanoseconds.
pub fn run(
    query: &Query,
    source: Option<&dyn Source>,
    now: i128,
    max_records: usize,
) -> Result<Output, DqlError> {
    let env = Env { now };
    let mut scanned_records = 0u64;
    let mut scanned_bytes = 0u64;
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

    match &query.start {
        Start::Data(exprs) => {
            for e in exprs {
                rows.push(data_record(e, &env)?);
            }
        }
        Start::Fetch { from, to, .. } => {
            let source = source.expect("a fetch query has a source");
            let empty = Map::new();
            let from = from
                .as_ref()
                .map(|e| eval(e, &empty, &env))
                .transpose()?
                .and_then(|v| v.as_time());
            let to = to
                .as_ref()
                .map(|e| eval(e, &empty, &env))
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
                scanned_records += 1;
                scanned_bytes += estimate_size(&record);
                let mut keep = true;
                for command in streaming {
                    let pass = match command {
                        Command::Filter(expr, out) => eval(expr, &record, &env)?.truthy() != *out,
                        Command::Search(needle) => matches_search(&record, needle),
                        _ => true,
                    };
                    if !pass {
                        keep = false;
                        break;
                    }
                }
                if keep {
                    rows.push(record);
                    if early_limit.is_some_and(|n| rows.len() >= n) {
                        break 'records;
                    }
                }
            }
        }
    }
    if matches!(query.start, Start::Data(_)) {
        rows = apply(streaming, rows, &env)?;
    } else if let Some(n) = early_limit {
        rows.truncate(n);
    }
    let rows = apply(&query.commands[streaming_end..], rows, &env)?;
    let mut records: Vec<Value> = rows.into_iter().map(Value::Object).collect();
    records.truncate(max_records);
    Ok(Output {
        records,
        scanned_records,
        scanned_bytes,
    })
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

fn apply(
    commands: &[Command],
    mut rows: Vec<Map<String, Value>>,
    env: &Env,
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
            Command::Search(needle) => rows
                .into_iter()
                .filter(|r| matches_search(r, needle))
                .collect(),
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
            Command::Sort(keys) => {
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
                keyed.into_iter().map(|(_, r)| r).collect()
            }
            Command::Dedup(keys) => {
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
            Command::Summarize(aggs, by) => summarize(aggs, by, rows, env)?,
        };
    }
    Ok(rows)
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
            };
            row.insert(alias.clone(), value);
        }
        out.push(row);
    }
    Ok(out)
}

/// `search "text"`: the text appears anywhere in the record (case-insensitive).
fn matches_search(record: &Map<String, Value>, needle: &str) -> bool {
    record.values().any(|v| match v {
        Value::String(s) => s.to_lowercase().contains(needle),
        other => other.to_string().to_lowercase().contains(needle),
    })
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
                let kind = match value {
                    Value::Null => continue,
                    Value::Bool(_) => "boolean",
                    Value::Number(n) if n.is_f64() => "double",
                    Value::Number(_) => "long",
                    Value::String(s)
                        if key == "timestamp"
                            || key.ends_with("_time")
                            || key.ends_with(".start")
                            || key.ends_with(".end") =>
                    {
                        if parse_time(s).is_some() {
                            "timestamp"
                        } else {
                            "string"
                        }
                    }
                    Value::String(s) if key == "duration" || key.ends_with(".duration") => {
                        if s.parse::<i64>().is_ok() {
                            "duration"
                        } else {
                            "string"
                        }
                    }
                    Value::String(s)
                        if s.parse::<i64>().is_ok()
                            && !key.contains("id")
                            && !key.contains("name") =>
                    {
                        "long"
                    }
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "record",
                };
                mappings.insert(key.clone(), json!({"type": kind}));
            }
        }
    }
    vec![json!({"indexRange": [0, records.len() - 1], "mappings": mappings})]
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
