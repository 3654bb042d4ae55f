//! Filter-pattern engine against the fixture table `tests/fixtures/pattern/cases.json`.
//!
//! Each case is a pattern plus either a message (`message`, or `message_json` serialized compactly) with the
//! expected outcome (`matches`, optional `extracted` pairs in order, optional `kind`), or an `error`
//! substring the parse error must contain. `source` says which AWS document the case comes from. A new case
//! is a new entry in the table, not new code.

use authwatch::pattern::{FilterPattern, PatternKind};
use serde::Deserialize;

const CASES: &str = include_str!("fixtures/pattern/cases.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    pattern: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_json: Option<serde_json::Value>,
    #[serde(default)]
    matches: Option<bool>,
    #[serde(default)]
    extracted: Option<Vec<(String, String)>>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
}

impl Case {
    fn message(&self) -> Option<String> {
        match (&self.message, &self.message_json) {
            (Some(m), None) => Some(m.clone()),
            (None, Some(v)) => Some(v.to_string()),
            _ => None,
        }
    }
}

fn cases() -> Vec<Case> {
    serde_json::from_str(CASES).expect("cases.json is a list of cases")
}

fn kind_name(kind: PatternKind) -> &'static str {
    match kind {
        PatternKind::Text => "Text",
        PatternKind::Json => "Json",
        PatternKind::SpaceDelimited => "SpaceDelimited",
        PatternKind::MatchAll => "MatchAll",
    }
}

/// Runs one case; returns a description of the failure, if any.
fn check(case: &Case) -> Result<(), String> {
    let parsed = FilterPattern::parse(&case.pattern);
    if let Some(expected) = &case.error {
        return match parsed {
            Ok(_) => Err(format!("parsed, expected an error containing {expected:?}")),
            Err(e) if e.message.contains(expected.as_str()) || e.to_string().contains(expected.as_str()) => Ok(()),
            Err(e) => Err(format!("error {e} does not contain {expected:?}")),
        };
    }
    let pattern = parsed.map_err(|e| format!("parse failed:\n{}", e.render(&case.pattern)))?;
    if let Some(kind) = &case.kind {
        if kind_name(pattern.kind()) != kind {
            return Err(format!("kind {:?}, expected {kind}", pattern.kind()));
        }
    }
    let message = case.message().ok_or("a case needs exactly one of message, message_json or error")?;
    let expected = case.matches.ok_or("a message case needs `matches`")?;
    if pattern.matches(&message) != expected {
        return Err(format!("matches() = {}, expected {expected} on {message:?}", !expected));
    }
    let evaluated = pattern.evaluate(&message);
    if evaluated.is_some() != expected {
        return Err("evaluate() disagrees with matches()".to_string());
    }
    if let (Some(want), Some(got)) = (&case.extracted, &evaluated) {
        if &got.extracted != want {
            return Err(format!("extracted {:?}, expected {want:?}", got.extracted));
        }
    }
    Ok(())
}

#[test]
fn fixture_cases() {
    let cases = cases();
    assert!(cases.len() > 150, "the table lost cases");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| check(case).err().map(|why| format!("{} — `{}`: {why}", case.name, case.pattern)))
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_parse_error_points_inside_the_pattern() {
    // The error fixtures, plus every prefix of every fixture pattern: truncation breaks quotes, regexes,
    // brackets and selectors at each possible place.
    let mut patterns: Vec<String> = Vec::new();
    for case in cases() {
        let chars: Vec<char> = case.pattern.chars().collect();
        for end in 0..=chars.len().min(200) {
            patterns.push(chars[..end].iter().collect());
        }
        patterns.push(case.pattern);
    }
    let mut errors = 0;
    for pattern in &patterns {
        if let Err(e) = FilterPattern::parse(pattern) {
            errors += 1;
            let len = pattern.chars().count();
            assert!(e.position < len, "{e} is outside `{pattern}` ({len} chars)");
            assert!(!e.message.is_empty());
            assert!(e.to_string().starts_with(&format!("at column {}: ", e.position + 1)));
            let rendered = e.render(pattern);
            assert!(rendered.lines().nth(1).is_some_and(|l| l.trim_start().starts_with('^')), "{rendered}");
        }
    }
    assert!(errors > 100, "expected many truncated patterns to be rejected, got {errors}");
}

#[test]
fn length_limit_is_1024_characters() {
    let at_limit = format!("\"{}\"", "é".repeat(1022));
    assert_eq!(at_limit.chars().count(), 1024);
    assert!(FilterPattern::parse(&at_limit).is_ok(), "the limit counts characters, not bytes");
    let over = format!("\"{}\"", "a".repeat(1023));
    let e = FilterPattern::parse(&over).unwrap_err();
    assert_eq!(e.position, 1024);
}

#[test]
fn regex_count_is_reported() {
    assert_eq!(FilterPattern::parse("ERROR").unwrap().regex_count(), 0);
    assert_eq!(FilterPattern::parse("%a%").unwrap().regex_count(), 1);
    assert_eq!(FilterPattern::parse("{ $.a = %x% || $.b = %y% }").unwrap().regex_count(), 2);
    assert_eq!(FilterPattern::parse("[a=%x%, b=%y%]").unwrap().regex_count(), 2);
}

#[test]
fn error_message_names_column_of_missing_value() {
    let e = FilterPattern::parse("{ $.eventType = }").unwrap_err();
    assert_eq!(e.to_string(), "at column 17: expected a value after '='");
    assert_eq!(e.render("{ $.eventType = }"), "{ $.eventType = }\n                ^ expected a value after '='");
}

#[test]
fn arbitrary_input_never_panics() {
    // A small deterministic generator over the characters the grammars care about.
    let alphabet: Vec<char> = "{}[]()$.*=!<>&|,\"'%\\ ?-abcXYZ019e+_…é\t".chars().collect();
    let messages = [
        "",
        "plain text",
        "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}",
        "[unclosed \"quote",
        "127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] \"GET / HTTP/1.0\" 200 1534",
        "{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut parsed = 0;
    for _ in 0..20_000 {
        let len = (next(&mut state) % 24) as usize;
        let pattern: String = (0..len).map(|_| alphabet[(next(&mut state) % alphabet.len() as u64) as usize]).collect();
        if let Ok(p) = FilterPattern::parse(&pattern) {
            parsed += 1;
            for m in messages {
                let _ = p.evaluate(m);
            }
        }
    }
    assert!(parsed > 0);
    // A deeply nested message is handled by serde_json's depth limit: no match, no overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(!FilterPattern::parse("{ $.a NOT EXISTS }").unwrap().matches(&deep));
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
