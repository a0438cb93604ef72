//! The small filter language of the document and analyzer list endpoints:
//! `name contains 'report' and type in ('dashboard', 'notebook')`.
//!
//! Operators: `=`/`==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, `starts-with`, `ends-with`,
//! `in (…)`, `exists`, `and`, `or`, and (where allowed) `not` and brackets. `=`/`!=` compare
//! case-sensitively, the text operators case-insensitively. A field holding an array matches
//! when any element does.

use serde_json::Value;

/// What a filter may use.
pub struct Grammar {
    pub fields: &'static [&'static str],
    /// Brackets and `not` (the document API has them, the analyzer API does not).
    pub nesting: bool,
    /// `in (…)`, `exists`, `<`… (document API only).
    pub extended: bool,
}

#[derive(Debug, Clone)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        field: String,
        op: String,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(&'static str),
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err(format!("unterminated string starting at position {i}")),
                    Some('\\') if chars.get(j + 1).is_some() => {
                        value.push(chars[j + 1]);
                        j += 2;
                    }
                    Some(&q) if q == c => break,
                    Some(&ch) => {
                        value.push(ch);
                        j += 1;
                    }
                }
            }
            out.push(Tok::Str(value));
            i = j + 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let sym = match two.as_str() {
            "==" => Some("=="),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(sym) = sym {
            out.push(Tok::Sym(sym));
            i += 2;
            continue;
        }
        let sym = match c {
            '=' => Some("="),
            '<' => Some("<"),
            '>' => Some(">"),
            '(' => Some("("),
            ')' => Some(")"),
            ',' => Some(","),
            _ => None,
        };
        if let Some(sym) = sym {
            out.push(Tok::Sym(sym));
            i += 1;
            continue;
        }
        if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '@') {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.' | '-' | ':' | '@'))
            {
                j += 1;
            }
            out.push(Tok::Word(chars[i..j].iter().collect()));
            i = j;
            continue;
        }
        return Err(format!("unexpected character '{c}' at position {i}"));
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    i: usize,
    grammar: &'a Grammar,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.i += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.not()?;
        while self.is_word("and") {
            self.i += 1;
            left = Filter::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Filter, String> {
        if self.is_word("not") {
            if !self.grammar.nesting {
                return Err("the 'not' operator is not supported".into());
            }
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.toks.get(self.i).cloned() {
            Some(Tok::Str(s)) | Some(Tok::Word(s)) => {
                self.i += 1;
                Ok(s)
            }
            _ => Err("a value is expected".into()),
        }
    }

    fn primary(&mut self) -> Result<Filter, String> {
        if self.peek() == Some(&Tok::Sym("(")) {
            if !self.grammar.nesting {
                return Err("parentheses are not supported".into());
            }
            self.depth += 1;
            if self.depth > 3 {
                return Err("brackets may be nested at most 3 deep".into());
            }
            self.i += 1;
            let inner = self.or()?;
            if self.peek() != Some(&Tok::Sym(")")) {
                return Err("missing ')'".into());
            }
            self.i += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        let field = match self.toks.get(self.i).cloned() {
            Some(Tok::Word(w)) => w,
            _ => return Err("a field name is expected".into()),
        };
        self.i += 1;
        if !self.grammar.fields.contains(&field.as_str()) {
            return Err(format!(
                "'{field}' is not a valid filter field (valid: {})",
                self.grammar.fields.join(", ")
            ));
        }
        let op = match self.toks.get(self.i).cloned() {
            Some(Tok::Sym(s)) if matches!(s, "=" | "==" | "!=") => s.to_string(),
            Some(Tok::Sym(s)) if self.grammar.extended && matches!(s, "<" | "<=" | ">" | ">=") => {
                s.to_string()
            }
            Some(Tok::Word(w))
                if matches!(
                    w.to_ascii_lowercase().as_str(),
                    "contains" | "starts-with" | "ends-with"
                ) =>
            {
                w.to_ascii_lowercase()
            }
            Some(Tok::Word(w))
                if self.grammar.extended
                    && matches!(w.to_ascii_lowercase().as_str(), "in" | "exists") =>
            {
                w.to_ascii_lowercase()
            }
            _ => return Err(format!("an operator is expected after '{field}'")),
        };
        self.i += 1;
        let values = match op.as_str() {
            "exists" => Vec::new(),
            "in" => {
                if self.peek() != Some(&Tok::Sym("(")) {
                    return Err("'in' needs a bracketed list of values".into());
                }
                self.i += 1;
                let mut values = vec![self.value()?];
                while self.peek() == Some(&Tok::Sym(",")) {
                    self.i += 1;
                    values.push(self.value()?);
                }
                if self.peek() != Some(&Tok::Sym(")")) {
                    return Err("missing ')' after the 'in' list".into());
                }
                self.i += 1;
                values
            }
            _ => vec![self.value()?],
        };
        Ok(Filter::Compare { field, op, values })
    }
}

/// Parses `text` (at most 1024 characters), or says what is wrong.
pub fn parse(text: &str, grammar: &Grammar) -> Result<Filter, String> {
    if text.len() > 1024 {
        return Err("the filter is longer than 1024 characters".into());
    }
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err("the filter is empty".into());
    }
    let mut parser = Parser {
        toks,
        i: 0,
        grammar,
        depth: 0,
    };
    let filter = parser.or()?;
    if parser.i < parser.toks.len() {
        return Err(format!(
            "unexpected '{}'",
            match &parser.toks[parser.i] {
                Tok::Word(w) | Tok::Str(w) => w.clone(),
                Tok::Sym(s) => s.to_string(),
            }
        ));
    }
    Ok(filter)
}

fn lookup<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = object;
    for part in path.split('.') {
        current = current.get(part)?;
    }
    Some(current)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn compare_one(value: &str, op: &str, wanted: &str) -> bool {
    let (lv, lw) = (value.to_lowercase(), wanted.to_lowercase());
    match op {
        "=" | "==" | "in" => value == wanted,
        "!=" => value != wanted,
        "contains" => lv.contains(&lw),
        "starts-with" => lv.starts_with(&lw),
        "ends-with" => lv.ends_with(&lw),
        _ => {
            let ordering = match (value.parse::<f64>(), wanted.parse::<f64>()) {
                (Ok(a), Ok(b)) => a.partial_cmp(&b),
                _ => Some(value.cmp(wanted)),
            };
            let Some(o) = ordering else { return false };
            match op {
                "<" => o.is_lt(),
                "<=" => o.is_le(),
                ">" => o.is_gt(),
                ">=" => o.is_ge(),
                _ => false,
            }
        }
    }
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(object) && b.matches(object),
            Filter::Or(a, b) => a.matches(object) || b.matches(object),
            Filter::Not(a) => !a.matches(object),
            Filter::Compare { field, op, values } => {
                let found = lookup(object, field).filter(|v| !v.is_null());
                if op == "exists" {
                    return found.is_some();
                }
                let candidates: Vec<String> = match found {
                    Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
                    Some(v) => text(v).into_iter().collect(),
                    None => Vec::new(),
                };
                if op == "!=" {
                    return candidates
                        .iter()
                        .all(|c| values.iter().all(|w| compare_one(c, op, w)));
                }
                candidates
                    .iter()
                    .any(|c| values.iter().any(|w| compare_one(c, op, w)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOCS: Grammar = Grammar {
        fields: &["name", "type", "version", "modificationInfo.createdTime"],
        nesting: true,
        extended: true,
    };
    const ANALYZERS: Grammar = Grammar {
        fields: &["name", "labels"],
        nesting: false,
        extended: false,
    };

    #[test]
    fn document_filters() {
        let doc = json!({"name": "Payments SLOs", "type": "dashboard", "version": "7"});
        let yes = |f: &str| parse(f, &DOCS).unwrap().matches(&doc);
        assert!(yes("name contains 'slo'"));
        assert!(yes("type == 'dashboard'"));
        assert!(yes(
            "type in ('dashboard', 'notebook') and name contains 'pay'"
        ));
        assert!(!yes("type = 'notebook' or name starts-with 'x'"));
        assert!(yes("not (type = 'notebook')"));
        assert!(yes("version >= 5"));
        assert!(!yes("version < 5"));
        assert!(parse("nme contains 'x'", &DOCS).is_err());
        assert!(parse("name contains", &DOCS).is_err());
        assert!(parse("name contains 'x' )", &DOCS).is_err());
    }

    #[test]
    fn analyzer_filters_match_array_fields_and_refuse_brackets() {
        let a = json!({"name": "dt.statistics.GenericForecastAnalyzer", "labels": ["forecast", "timeseries"]});
        assert!(
            parse("labels = 'forecast'", &ANALYZERS)
                .unwrap()
                .matches(&a)
        );
        assert!(
            parse(
                "name contains 'forecast' and labels = timeseries",
                &ANALYZERS
            )
            .unwrap()
            .matches(&a)
        );
        assert!(parse("(name = 'x')", &ANALYZERS).is_err());
        assert!(parse("not name = 'x'", &ANALYZERS).is_err());
        assert!(parse("name in ('x')", &ANALYZERS).is_err());
    }
}
