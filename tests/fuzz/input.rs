//! Turns the fuzzer's bytes into structured values.
//!
//! Every target takes a plain `&[u8]` and reads its choices from it with [`Input`], so the same
//! target runs under bolero's random engine on stable (`cargo test`) and under libFuzzer, whose
//! mutations of the bytes then become mutations of the structure. Reading past the end yields
//! zeros, so every byte string is a valid input.

use serde_json::{Map, Number, Value, json};

/// Characters that have broken parsers and escapers elsewhere: quotes, escapes, line and
/// paragraph separators, controls, BOMs, surrogate neighbours, combining marks, wide characters.
const INTERESTING: &[char] = &[
    '"',
    '\\',
    '\'',
    '`',
    '|',
    '\n',
    '\r',
    '\t',
    '\0',
    '\u{1}',
    '\u{8}',
    '\u{b}',
    '\u{c}',
    '\u{1b}',
    '\u{7f}',
    '\u{80}',
    '\u{85}',
    '\u{9f}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200e}',
    '\u{202e}',
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{d7ff}',
    '\u{e000}',
    '\u{10000}',
    '\u{10ffff}',
    '\u{301}',
    'é',
    'ß',
    '€',
    '日',
    '😀',
    '{',
    '}',
    '[',
    ']',
    '$',
    '%',
    '/',
    '*',
    '=',
    ',',
    ':',
    ';',
    '&',
    '<',
    '>',
    '#',
    '?',
    '.',
    ' ',
];

/// A cursor over the fuzzer's bytes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            1..=256 => self.byte() as usize % n,
            _ => self.u32() as usize % n,
        }
    }

    /// True about once in `n` times (false on the zeros past the end of the input, so a short
    /// input makes the usual choices).
    pub fn one_in(&mut self, n: usize) -> bool {
        n > 0 && self.below(n) == n - 1
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Up to `max` raw bytes.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A string of up to `max` characters: ASCII from bytes below 0x80, characters from
    /// [`INTERESTING`] above, and now and then any code point.
    pub fn string(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        let mut out = String::new();
        for _ in 0..n {
            if self.is_empty() {
                break;
            }
            out.push(self.char());
        }
        out
    }

    pub fn char(&mut self) -> char {
        let b = self.byte();
        match b {
            0..=0x7f => b as char,
            0x80..=0xef => INTERESTING[(b as usize - 0x80) % INTERESTING.len()],
            _ => char::from_u32(self.u32() % 0x11_0000).unwrap_or('\u{fffd}'),
        }
    }

    /// One of `known`, or (one time in `wild`) a string of its own.
    pub fn word(&mut self, known: &[&str], wild: usize) -> String {
        if known.is_empty() || self.one_in(wild) {
            self.string(24)
        } else {
            self.pick(known).to_string()
        }
    }

    /// Any JSON number, including the edges of what the server parses.
    pub fn number(&mut self) -> Value {
        match self.below(8) {
            0 => json!(self.byte()),
            1 => json!(self.u32()),
            2 => json!(-(i64::from(self.u32()))),
            3 => json!(self.u64()),
            4 => json!(self.pick(&[0, 1, -1, 100, 10_000, 10_001, i64::MAX, i64::MIN])),
            5 => Number::from_f64(f64::from(self.u32()) / 7.0).map_or(Value::Null, Value::Number),
            6 => Number::from_f64(f64::from_bits(self.u64())).map_or(Value::Null, Value::Number),
            _ => json!(self.pick(&[0.5, -0.0, 1e300, -1e300, 4096.0, 1e-9])),
        }
    }

    /// Any JSON value, nested up to `depth`.
    pub fn json(&mut self, depth: usize) -> Value {
        let kinds = if depth == 0 { 4 } else { 6 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.bool()),
            2 => self.number(),
            3 => Value::String(self.string(32)),
            4 => {
                let n = self.below(4);
                Value::Array((0..n).map(|_| self.json(depth - 1)).collect())
            }
            _ => {
                let n = self.below(4);
                let mut map = Map::new();
                for _ in 0..n {
                    let key = self.string(12);
                    map.insert(key, self.json(depth - 1));
                }
                Value::Object(map)
            }
        }
    }
}
