//! Building DQL safely from user input.
//!
//! User text reaches a query only through [`string_literal`] (a quoted, escaped DQL string) or a
//! validated domain type ([`Timeframe`], [`FilterFragment`], [`Cursor`]). Nothing here formats raw
//! user text into a query.

use std::fmt;

/// A DQL string literal: `"…"` with backslashes, quotes and control characters escaped, so the
/// value can never end the string or start a new command.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A relative timeframe: a positive whole number and one unit (`s`, `m`, `h`, `d`, `w`, `M`, `y`),
/// such as `24h` or `30d`. Used as `from: now()-<timeframe>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeframe {
    amount: u32,
    unit: char,
}

impl Timeframe {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let problem = || {
            format!(
                "timeframe `{}` is not valid: use a positive whole number and one unit of s, m, h, d, w, M or y (e.g. 30m, 24h, 7d)",
                raw.chars().take(40).collect::<String>()
            )
        };
        let unit = raw.chars().last().ok_or_else(problem)?;
        if !matches!(unit, 's' | 'm' | 'h' | 'd' | 'w' | 'M' | 'y') {
            return Err(problem());
        }
        let digits = &raw[..raw.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(problem());
        }
        let amount: u32 = digits.parse().map_err(|_| problem())?;
        if amount == 0 || amount > 100_000 {
            return Err(problem());
        }
        Ok(Self { amount, unit })
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit)
    }
}

/// A filter expression a caller adds to a built-in query (`additionalFilter`). It may use
/// anything a `filter` accepts, including bracketed sub-queries, but never a pipe or a line break,
/// so it cannot append commands to the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFragment(String);

impl FilterFragment {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("additionalFilter is empty: leave it out, or give a filter expression such as event.category == \"ERROR\"".into());
        }
        if trimmed.contains('|') || trimmed.contains('\n') || trimmed.contains('\r') {
            return Err("additionalFilter must be a single filter expression without `|` or line breaks; for a full pipeline use execute_dql".into());
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A pagination cursor (`continueFrom`): the timestamp of the last record shown, either an ISO
/// 8601 date-time or nanoseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Iso(String),
    Nanos(i128),
}

impl Cursor {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let problem = || {
            "continueFrom must be the timestamp printed by the previous page (an ISO 8601 date-time such as 2026-11-25T10:15:00.123Z, or nanoseconds since the epoch)".to_string()
        };
        if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit()) {
            return raw.parse().map(Cursor::Nanos).map_err(|_| problem());
        }
        let looks_iso = raw.len() >= 10
            && raw.len() <= 40
            && raw.as_bytes()[4] == b'-'
            && raw
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | 'T' | 'Z' | '.' | '+'));
        if looks_iso {
            Ok(Cursor::Iso(raw.to_string()))
        } else {
            Err(problem())
        }
    }

    /// A DQL expression for this instant.
    pub fn to_dql(&self) -> String {
        match self {
            Cursor::Iso(s) => format!("toTimestamp({})", string_literal(s)),
            Cursor::Nanos(n) => format!("toTimestamp({n})"),
        }
    }
}

/// Inserts `| filter timestamp < <cursor>` before the query's last `| limit`, or appends it.
/// Assumes the query sorts by timestamp descending, as a paginated query must.
pub fn with_cursor(query: &str, cursor: &Cursor) -> String {
    let query = query.trim_end();
    let filter = format!("| filter timestamp < {}", cursor.to_dql());
    let lowered = query.to_ascii_lowercase();
    if let Some(position) = find_last_limit(&lowered)
        && position > 0
    {
        let (head, tail) = query.split_at(position);
        return format!("{}\n{}\n{}", head.trim_end(), filter, tail);
    }
    format!("{query}\n{filter}")
}

/// Byte index of the `|` of the last top-level `| limit` command, outside string literals.
fn find_last_limit(lowered: &str) -> Option<usize> {
    let bytes = lowered.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut depth = 0i32;
    let mut last = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'(' | b'{' => depth += 1,
            b']' | b')' | b'}' => depth -= 1,
            b'|' if depth == 0 => {
                let rest = lowered[i + 1..].trim_start();
                if rest.starts_with("limit") && rest[5..].starts_with(|c: char| c.is_whitespace()) {
                    last = Some(i);
                }
            }
            _ => {}
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals_escape_everything_that_could_break_out() {
        assert_eq!(string_literal("plain"), "\"plain\"");
        assert_eq!(string_literal(r#"a"b\c|d"#), r#""a\"b\\c|d""#);
        assert_eq!(string_literal("x\n| fetch logs"), r#""x\n| fetch logs""#);
        assert_eq!(string_literal("\u{0}"), r#""\u0000""#);
        // The literal ends exactly once: at its last character.
        let lit = string_literal(r#"\" | fetch secrets | \"#);
        let inner = &lit[1..lit.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else {
                assert_ne!(c, '"', "unescaped quote inside {lit}");
            }
        }
    }

    #[test]
    fn timeframes_parse_strictly() {
        assert_eq!(Timeframe::parse("24h").unwrap().to_string(), "24h");
        assert_eq!(Timeframe::parse(" 7d ").unwrap().to_string(), "7d");
        assert_eq!(Timeframe::parse("2M").unwrap().to_string(), "2M");
        for bad in [
            "",
            "h",
            "0h",
            "-1h",
            "1.5h",
            "24",
            "24x",
            "1h | fetch logs",
            "24 h",
            "1h1",
        ] {
            assert!(Timeframe::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filter_fragments_refuse_pipes_and_newlines() {
        assert!(FilterFragment::parse("event.category == \"ERROR\"").is_ok());
        assert!(FilterFragment::parse("in(id, [fetch dt.entity.host | fields id])").is_err());
        assert!(FilterFragment::parse("a == 1\nfetch logs").is_err());
        assert!(FilterFragment::parse("   ").is_err());
    }

    #[test]
    fn cursors_become_quoted_timestamps() {
        let c = Cursor::parse("2026-11-25T10:15:00.123Z").unwrap();
        assert_eq!(c.to_dql(), r#"toTimestamp("2026-11-25T10:15:00.123Z")"#);
        assert_eq!(
            Cursor::parse("1764065700000000000").unwrap().to_dql(),
            "toTimestamp(1764065700000000000)"
        );
        assert!(Cursor::parse("2026-11-25\" | fetch logs").is_err());
        assert!(Cursor::parse("yesterday").is_err());
    }

    #[test]
    fn cursor_filter_goes_before_the_last_top_level_limit() {
        let c = Cursor::parse("2026-11-25T10:00:00Z").unwrap();
        assert_eq!(
            with_cursor("fetch logs | sort timestamp desc | limit 10", &c),
            "fetch logs | sort timestamp desc\n| filter timestamp < toTimestamp(\"2026-11-25T10:00:00Z\")\n| limit 10"
        );
        assert_eq!(
            with_cursor("fetch logs | filter content == \"| limit 5\"", &c),
            "fetch logs | filter content == \"| limit 5\"\n| filter timestamp < toTimestamp(\"2026-11-25T10:00:00Z\")"
        );
        assert_eq!(
            with_cursor(
                "fetch logs | join [fetch spans | limit 3], on:{trace_id}",
                &c
            ),
            "fetch logs | join [fetch spans | limit 3], on:{trace_id}\n| filter timestamp < toTimestamp(\"2026-11-25T10:00:00Z\")"
        );
    }
}
