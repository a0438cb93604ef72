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

/// Renders `records` in `format`, stopping at the last whole record that fits in `budget` bytes of
/// the JSON answer (counted escaped, as the text travels in a JSON string).
pub fn render_records(records: &[Value], format: OutputFormat, budget: usize) -> Rendered {
    let (open, close, separator) = match format {
        OutputFormat::Compact => ("```jsonl\n", "\n```", "\n"),
        OutputFormat::Full => ("```json\n[\n", "\n]\n```", ",\n"),
        OutputFormat::Lines => ("", "", "\n"),
    };
    let mut text = String::from(open);
    // What the text costs in the JSON answer, where quotes, backslashes and newlines are escaped.
    let mut cost = escaped_len(open) + escaped_len(close);
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
        let extra = if shown == 0 {
            0
        } else {
            escaped_len(separator)
        };
        let piece_cost = escaped_len(&piece);
        if cost + extra + piece_cost > budget && shown > 0 {
            break;
        }
        if cost + extra + piece_cost > budget {
            // Not even one record fits: show a cut-down first record rather than nothing.
            let room = budget.saturating_sub(cost + escaped_len("…"));
            let mut end = 0;
            let mut used = 0;
            for (i, c) in piece.char_indices() {
                used += escaped_len(c.encode_utf8(&mut [0; 4]));
                if used > room {
                    break;
                }
                end = i + c.len_utf8();
            }
            text.push_str(&piece[..end]);
            text.push('…');
            shown = 1;
            break;
        }
        if shown > 0 {
            text.push_str(separator);
        }
        text.push_str(&piece);
        cost += extra + piece_cost;
        shown += 1;
    }
    text.push_str(close);
    Rendered { text, shown }
}

/// The bytes `text` takes inside a JSON string: `"` `\\` and the common control characters take
/// two, the other control characters six (`\u001f`).
pub fn escaped_len(text: &str) -> usize {
    text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
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

/// Serialized JSON size, without building the string.
pub fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Fits `structuredContent` into `budget` bytes, keeping it valid for the tool's output schema:
/// the largest arrays keep their first items (as many as fit), then strings longer than a
/// sixteenth of the budget are cut. Returns a sentence for the text block saying what was left
/// out, or `None` when the value already fit.
///
/// Tools size their own answers; this is the backstop for an upstream answer far larger than any
/// tenant sends (a proxy's page, a runaway listing), so a client never receives megabytes the
/// README promises it will not.
pub fn fit_structured(value: &mut Value, budget: usize) -> Option<String> {
    fit_structured_measured(value, budget).0
}

/// [`fit_structured`], with the serialized size of the value it leaves (measuring is a
/// serialization: the caller need not do it again).
pub fn fit_structured_measured(value: &mut Value, budget: usize) -> (Option<String>, usize) {
    let before = json_len(value);
    if before <= budget {
        return (None, before);
    }
    let mut cut: Vec<String> = Vec::new();
    for _ in 0..8 {
        let size = json_len(value);
        if size <= budget {
            break;
        }
        let Some((path, array_len)) = largest_array(value, String::new()) else {
            break;
        };
        let Some(Value::Array(items)) = value.pointer_mut(&path) else {
            break;
        };
        if items.is_empty() {
            break;
        }
        let room = budget.saturating_sub(size - array_len);
        let mut used = 2;
        let mut keep = 0;
        for item in items.iter() {
            let next = used + json_len(item) + usize::from(keep > 0);
            if next > room {
                break;
            }
            used = next;
            keep += 1;
        }
        let total = items.len();
        items.truncate(keep);
        let field = path.rsplit('/').next().unwrap_or_default().to_string();
        cut.push(format!("`{field}` keeps {keep} of {total} items"));
    }
    let mut after = json_len(value);
    if after > budget {
        let longest = (budget / 16).max(256);
        cut_strings(value, longest);
        cut.push(format!("strings longer than {longest} bytes were cut"));
        after = json_len(value);
    }
    let note = format!(
        "structuredContent was {} and is cut to fit its share of MCP_RESULT_MAX_BYTES ({} bytes): {}.",
        human_bytes(before as u64),
        budget,
        cut.join("; ")
    );
    (Some(note), after)
}

/// The JSON pointer and serialized size of the largest non-empty array in `value`.
fn largest_array(value: &Value, at: String) -> Option<(String, usize)> {
    let mut best: Option<(String, usize)> = None;
    let mut consider = |candidate: Option<(String, usize)>| {
        if let Some((path, size)) = candidate
            && best.as_ref().is_none_or(|(_, b)| size > *b)
        {
            best = Some((path, size));
        }
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            consider(Some((at.clone(), json_len(value))));
            for (i, item) in items.iter().enumerate().take(64) {
                consider(largest_array(item, format!("{at}/{i}")));
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                consider(largest_array(item, format!("{at}/{key}")));
            }
        }
        _ => {}
    }
    best
}

fn cut_strings(value: &mut Value, longest: usize) {
    match value {
        Value::String(s) if s.len() > longest => *s = truncate_utf8(s, longest),
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, longest)),
        Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, longest)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_counted_as_they_travel_escaped_in_the_answer() {
        assert_eq!(escaped_len(r#"a"b\c"#), 7);
        assert_eq!(escaped_len("\n\u{1}é"), 2 + 6 + 2);
        let records: Vec<Value> = (0..50)
            .map(|i| serde_json::json!({"content": format!("line \"{i}\"\twith quotes"), "i": i}))
            .collect();
        for budget in [300, 1000, 2000] {
            let rendered = render_records(&records, OutputFormat::Compact, budget);
            let in_answer = serde_json::to_string(&rendered.text).unwrap().len() - 2;
            assert!(in_answer <= budget, "{in_answer} > {budget}");
            assert!(rendered.shown > 0 && rendered.shown < 50);
        }
        // One record larger than the budget is cut to fit, not dropped.
        let rendered = render_records(&records[..1], OutputFormat::Full, 40);
        assert_eq!(rendered.shown, 1);
        assert!(serde_json::to_string(&rendered.text).unwrap().len() - 2 <= 40);
    }

    #[test]
    fn fit_structured_keeps_the_first_items_and_then_cuts_strings() {
        let mut small = json!({"items": [1, 2, 3]});
        assert_eq!(fit_structured(&mut small, 1000), None);
        let mut value = json!({
            "total": 5000,
            "items": (0..5000).map(|i| json!({"id": i, "name": "n".repeat(50)})).collect::<Vec<_>>(),
            "nested": {"more": (0..500).map(|i| json!(i)).collect::<Vec<_>>()},
        });
        let note = fit_structured(&mut value, 4096).unwrap();
        assert!(json_len(&value) <= 4096, "{}", json_len(&value));
        let kept = value["items"].as_array().unwrap();
        assert!(!kept.is_empty() && kept[0]["id"] == 0, "{note}");
        assert!(
            note.contains(&format!("`items` keeps {} of 5000 items", kept.len())),
            "{note}"
        );
        assert_eq!(value["total"], 5000);
        // One string larger than the budget: no array to shorten, so the string is cut.
        let mut value = json!({"text": "é".repeat(10_000)});
        let note = fit_structured(&mut value, 1000).unwrap();
        assert!(json_len(&value) <= 1000, "{note}");
        assert!(
            note.contains("strings longer than 256 bytes were cut"),
            "{note}"
        );
    }

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
