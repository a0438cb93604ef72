//! Rendering results for a model's context: record formats, size budgets, human-readable units.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// How records appear in the text block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One compact JSON object per line (keys sorted).
    #[default]
    Compact,
    /// The records as a pretty-printed JSON array.
    Full,
    /// The `content` field of each record (e.g. log lines), or the record as JSON when it has none.
    Lines,
}

/// Records rendered into at most `budget` bytes of text.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    /// How many records made it into the text.
    pub shown: usize,
}

/// Renders `records` in `format`, stopping at the last whole record that fits in `budget` bytes.
pub fn render_records(records: &[Value], format: OutputFormat, budget: usize) -> Rendered {
    let (open, close, separator) = match format {
        OutputFormat::Compact => ("```jsonl\n", "\n```", "\n"),
        OutputFormat::Full => ("```json\n[\n", "\n]\n```", ",\n"),
        OutputFormat::Lines => ("", "", "\n"),
    };
    let mut text = String::from(open);
    let mut shown = 0;
    for record in records {
        let piece = match format {
            OutputFormat::Compact => compact_sorted(record),
            OutputFormat::Full => {
                indent(&serde_json::to_string_pretty(&sorted(record)).unwrap_or_default())
            }
            OutputFormat::Lines => match record.get("content") {
                Some(Value::String(line)) => line.clone(),
                _ => compact_sorted(record),
            },
        };
        let extra = if shown == 0 { 0 } else { separator.len() };
        if text.len() + extra + piece.len() + close.len() > budget && shown > 0 {
            break;
        }
        if text.len() + extra + piece.len() + close.len() > budget {
            // Not even one record fits: show a cut-down first record rather than nothing.
            let room = budget.saturating_sub(text.len() + close.len() + 1);
            text.push_str(&truncate_utf8(&piece, room));
            text.push('…');
            shown = 1;
            break;
        }
        if shown > 0 {
            text.push_str(separator);
        }
        text.push_str(&piece);
        shown += 1;
    }
    text.push_str(close);
    Rendered { text, shown }
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn compact_sorted(value: &Value) -> String {
    // serde_json's Map is ordered by key (BTreeMap) unless preserve_order is enabled.
    serde_json::to_string(value).unwrap_or_default()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// `1.2 MB`, `834 B`, in decimal units as Grail bills.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Accepts a whole number given as an integer, an integral float (`50.0`) or a digit string
/// (`"50"`): models send all three. Anything else is an error naming the expected form.
pub fn lenient_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let value = Option::<Value>::deserialize(deserializer)?;
    let Some(value) = value else { return Ok(None) };
    let number = match &value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Null => return Ok(None),
        _ => None,
    };
    match number.and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Ok(Some(n)),
        None => Err(D::Error::custom(format!(
            "expected a whole number, got {value}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_rendering_sorts_keys_and_respects_the_budget() {
        let records: Vec<Value> = (0..100).map(|i| json!({"b": i, "a": "x"})).collect();
        let all = render_records(&records, OutputFormat::Compact, 1 << 20);
        assert_eq!(all.shown, 100);
        assert!(all.text.starts_with("```jsonl\n{\"a\":\"x\",\"b\":0}\n"));
        let some = render_records(&records, OutputFormat::Compact, 200);
        assert!(some.shown > 0 && some.shown < 100);
        assert!(some.text.len() <= 200, "{}", some.text.len());
        assert!(some.text.ends_with("```"));
    }

    #[test]
    fn lines_format_prints_content() {
        let records = vec![json!({"content": "hello", "x": 1}), json!({"x": 2})];
        let r = render_records(&records, OutputFormat::Lines, 1000);
        assert_eq!(r.text, "hello\n{\"x\":2}");
    }

    #[test]
    fn a_single_huge_record_is_cut_not_dropped() {
        let records = vec![json!({"content": "é".repeat(5000)})];
        let r = render_records(&records, OutputFormat::Compact, 300);
        assert_eq!(r.shown, 1);
        assert!(r.text.len() <= 305);
    }

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(834), "834 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(2_000_000_000), "2.0 GB");
    }

    #[derive(Deserialize)]
    struct P {
        #[serde(default, deserialize_with = "lenient_u32")]
        n: Option<u32>,
    }

    #[test]
    fn lenient_numbers() {
        for (input, expected) in [
            (json!({"n": 5}), Some(5)),
            (json!({"n": 5.0}), Some(5)),
            (json!({"n": "7"}), Some(7)),
            (json!({}), None),
            (json!({"n": null}), None),
        ] {
            assert_eq!(serde_json::from_value::<P>(input).unwrap().n, expected);
        }
        for bad in [
            json!({"n": -1}),
            json!({"n": 1.5}),
            json!({"n": "x"}),
            json!({"n": true}),
        ] {
            assert!(serde_json::from_value::<P>(bad).is_err());
        }
    }
}
