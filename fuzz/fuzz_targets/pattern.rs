//! Fuzzes the filter-pattern parser and evaluator: the input is `pattern \0 message`; the pattern is parsed
//! and, when AWS would accept it, evaluated (with and without extraction) against the message.
#![no_main]

use authwatch::pattern::FilterPattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, message) = text.split_once('\0').unwrap_or((text, ""));
    match FilterPattern::parse(pattern) {
        Ok(p) => {
            let matched = p.matches(message);
            assert_eq!(matched, p.evaluate(message).is_some(), "matches and evaluate disagree");
        }
        Err(e) => {
            // The caret stays inside the pattern.
            assert!(pattern.is_empty() || e.position < pattern.chars().count(), "{e:?}");
            let _ = e.render(pattern);
        }
    }
});
