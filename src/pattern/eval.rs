//! Evaluates a parsed filter pattern against one log event message, optionally collecting extracted values.
//!
//! Typing rules (AWS documents the syntax, not every comparison; the choices are marked):
//! - JSON: a selector landing on an object or array matches neither `=` nor `!=` (documented). A number on
//!   the right (`$.x = 200`, `$.x > 1e3`) compares numerically with JSON numbers only; a string on the right
//!   (`"200"`, a bare word, a wildcard) compares with JSON strings only; `IS TRUE`/`IS FALSE` need JSON
//!   booleans, `IS NULL` a JSON null (documented). Any other pairing (a string "200" against `= 200`, a
//!   missing property against `!=`) is false for every operator (chosen). `= *` matches any string, number
//!   or boolean (the doc's `{ $.latency = * }`). A `%regex%` matches strings and the text of numbers. With a
//!   wildcard selector the condition holds if it holds for any selected value (chosen).
//! - Space-delimited: fields are text. A number on the right compares numerically when the field is a
//!   number; otherwise `=`/`!=` compare the text as written and `<`-style operators are false (chosen).
//! - Messages that are not a JSON document never match a JSON pattern, not even `NOT EXISTS`.

use serde_json::Value as Json;

use super::parse::{
    parse_number, Ast, Delimited, JsonCond, JsonExpr, JsonTest, Op, Selector, Slot, Step, Term, TextPattern, Value,
};
use super::Match;

/// Returns `Some` when `message` matches; with `extract`, the `Match` carries the extracted values.
pub fn evaluate(ast: &Ast, message: &str, extract: bool) -> Option<Match> {
    match ast {
        Ast::MatchAll => Some(Match::default()),
        Ast::Text(text) => text_matches(text, message).then(Match::default),
        Ast::Json(expr) => {
            let document: Json = serde_json::from_str(message).ok()?;
            if !json_matches(expr, &document) {
                return None;
            }
            let extracted = if extract { json_extracted(expr, &document) } else { Vec::new() };
            Some(Match { extracted })
        }
        Ast::Delimited(pattern) => delimited(pattern, message, extract),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Text

fn term_matches(term: &Term, message: &str) -> bool {
    match term {
        Term::Phrase(text) => message.contains(text.as_str()),
        Term::Blank => true,
        Term::Regex(regex) => regex.is_match(message),
    }
}

fn text_matches(pattern: &TextPattern, message: &str) -> bool {
    if !pattern.optional.is_empty() {
        return pattern.optional.iter().any(|t| term_matches(t, message));
    }
    pattern.required.iter().all(|t| term_matches(t, message))
        && !pattern.excluded.iter().any(|t| term_matches(t, message))
}

// ---------------------------------------------------------------------------------------------------------
// JSON

fn json_matches(expr: &JsonExpr, document: &Json) -> bool {
    match expr {
        JsonExpr::Any(items) => items.iter().any(|e| json_matches(e, document)),
        JsonExpr::All(items) => items.iter().all(|e| json_matches(e, document)),
        JsonExpr::Cond(cond) => condition_holds(cond, document),
    }
}

/// Every value the selector lands on (several only through a wildcard).
fn resolve<'a>(document: &'a Json, selector: &Selector) -> Vec<&'a Json> {
    let mut current = vec![document];
    for step in &selector.steps {
        let mut next = Vec::new();
        for value in current {
            match (step, value) {
                (Step::Key(key), Json::Object(map)) => next.extend(map.get(key)),
                (Step::Index(index), Json::Array(items)) => next.extend(items.get(*index)),
                (Step::Wildcard, Json::Object(map)) => next.extend(map.values()),
                (Step::Wildcard, Json::Array(items)) => next.extend(items.iter()),
                _ => {}
            }
        }
        current = next;
    }
    current
}

fn condition_holds(cond: &JsonCond, document: &Json) -> bool {
    let values = resolve(document, &cond.selector);
    match &cond.test {
        JsonTest::NotExists => values.is_empty(),
        JsonTest::IsNull => values.iter().any(|v| v.is_null()),
        JsonTest::IsTrue => values.iter().any(|v| v.as_bool() == Some(true)),
        JsonTest::IsFalse => values.iter().any(|v| v.as_bool() == Some(false)),
        JsonTest::Compare(op, value) => values.iter().any(|v| json_compare(*op, value, v)),
    }
}

fn json_compare(op: Op, value: &Value, node: &Json) -> bool {
    match value {
        Value::Number { value, .. } => match node {
            Json::Number(n) => n.as_f64().is_some_and(|n| numeric(op, n, *value)),
            _ => false,
        },
        Value::Text(glob) if glob.is_any() => {
            op == Op::Eq && matches!(node, Json::String(_) | Json::Number(_) | Json::Bool(_))
        }
        Value::Text(glob) => match node {
            Json::String(s) => glob.matches(s) != (op == Op::Ne),
            _ => false,
        },
        Value::Regex(regex) => match node {
            Json::String(s) => regex.is_match(s) != (op == Op::Ne),
            Json::Number(n) => regex.is_match(&n.to_string()) != (op == Op::Ne),
            _ => false,
        },
    }
}

fn numeric(op: Op, left: f64, right: f64) -> bool {
    match op {
        Op::Eq => left == right,
        Op::Ne => left != right,
        Op::Lt => left < right,
        Op::Gt => left > right,
        Op::Le => left <= right,
        Op::Ge => left >= right,
    }
}

/// The selectors the pattern names, first mention first, with the first string, number or boolean each
/// lands on.
fn json_extracted(expr: &JsonExpr, document: &Json) -> Vec<(String, String)> {
    let mut selectors: Vec<&Selector> = Vec::new();
    collect_selectors(expr, &mut selectors);
    let mut extracted = Vec::new();
    for selector in selectors {
        let scalar = resolve(document, selector).into_iter().find_map(|v| match v {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        });
        if let Some(value) = scalar {
            extracted.push((selector.text.clone(), value));
        }
    }
    extracted
}

fn collect_selectors<'a>(expr: &'a JsonExpr, out: &mut Vec<&'a Selector>) {
    match expr {
        JsonExpr::Any(items) | JsonExpr::All(items) => items.iter().for_each(|e| collect_selectors(e, out)),
        JsonExpr::Cond(cond) => {
            if !out.iter().any(|s| s.text == cond.selector.text) {
                out.push(&cond.selector);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Space-delimited

/// Splits a message into fields: runs of whitespace separate them; `"..."` and `[...]` are one field each,
/// without their quotes or brackets (as TestMetricFilter reports `$request` and `$timestamp`). An unclosed
/// quote or bracket runs to the end of the message.
fn split_fields(message: &str) -> Vec<&str> {
    let bytes = message.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut fields = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if is_space(bytes[i]) {
            i += 1;
            continue;
        }
        let close = match bytes[i] {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        // Every delimiter is ASCII, so each slice boundary is a char boundary.
        let (field, next) = match close {
            Some(close) => {
                let end = bytes[i + 1..].iter().position(|&b| b == close).map_or(bytes.len(), |p| i + 1 + p);
                (message.get(i + 1..end).unwrap_or(""), end + 1)
            }
            None => {
                let end = bytes[i..].iter().position(|&b| is_space(b)).map_or(bytes.len(), |p| i + p);
                (message.get(i..end).unwrap_or(""), end)
            }
        };
        fields.push(field);
        i = next;
    }
    fields
}

fn field_matches(cond: &[Vec<(Op, Value)>], field: &str) -> bool {
    cond.is_empty() || cond.iter().any(|all| all.iter().all(|(op, value)| field_compare(*op, value, field)))
}

fn field_compare(op: Op, value: &Value, field: &str) -> bool {
    match value {
        Value::Number { value, text } => match parse_number(field) {
            Some(n) => numeric(op, n, *value),
            None => match op {
                Op::Eq => field == text,
                Op::Ne => field != text,
                _ => false,
            },
        },
        Value::Text(glob) => glob.matches(field) != (op == Op::Ne),
        Value::Regex(regex) => regex.is_match(field) != (op == Op::Ne),
    }
}

/// Matches slots to fields. `fits[i][j]`: slots `i..` can take exactly fields `j..`. Filled from the end, so
/// each slot/field pair is tested once; the walk back gives each `...` as few fields as possible.
fn delimited(pattern: &Delimited, message: &str, extract: bool) -> Option<Match> {
    let fields = split_fields(message);
    let slots = &pattern.slots;
    let (n, m) = (slots.len(), fields.len());
    let fixed = slots.iter().filter(|s| !matches!(s, Slot::Ellipsis)).count();
    if fixed > m || (fixed == n && n != m) {
        return None;
    }
    let width = m + 1;
    let mut fits = Bits::new((n + 1) * width);
    fits.set(n * width + m);
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            let ok = match &slots[i] {
                Slot::Ellipsis => fits.get((i + 1) * width + j) || (j < m && fits.get(i * width + j + 1)),
                Slot::Field { cond, .. } => {
                    j < m && fits.get((i + 1) * width + j + 1) && field_matches(cond, fields[j])
                }
            };
            if ok {
                fits.set(i * width + j);
            }
        }
    }
    if !fits.get(0) {
        return None;
    }
    if !extract {
        return Some(Match::default());
    }
    let mut extracted = Vec::with_capacity(m);
    let (mut i, mut j) = (0, 0);
    while let Some(slot) = slots.get(i) {
        if matches!(slot, Slot::Ellipsis) && fits.get((i + 1) * width + j) {
            i += 1;
            continue;
        }
        // fits[i][j] holds and the slot takes a field here, so field j exists.
        let Some(field) = fields.get(j) else { break };
        match slot {
            Slot::Ellipsis => {
                extracted.push((format!("${}", j + 1), field.to_string()));
                j += 1;
            }
            Slot::Field { name, .. } => {
                let key = match name {
                    Some(name) => format!("${name}"),
                    None => format!("${}", j + 1),
                };
                extracted.push((key, field.to_string()));
                i += 1;
                j += 1;
            }
        }
    }
    Some(Match { extracted })
}

/// A fixed-size bit set: the slot × field table can be large for long messages.
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len / 64 + 1])
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
}
