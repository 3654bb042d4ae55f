//! The restricted `%...%` regular expressions of CloudWatch filter patterns: validate AWS's dialect, then compile.
//!
//! AWS ("Supported regular expressions (regex) syntax") allows only: ASCII letters and digits; the symbols
//! `: _ # = @ / ; , -`; the operators `^ $ ? [ ] { } | \ * + .`; the escapes `\d \D \s \S \w \W \xhh`.
//! `(`, `)`, `!` and multi-byte characters are rejected. The doc's own example `%^starting|^shutting down%`
//! contains a space, so a plain space is accepted too. A `\` before an operator or a symbol gives its literal
//! meaning. `{,n}` (minimum omitted, allowed by the doc) is rewritten to `{0,n}` for the `regex` crate, and the
//! class escapes are rewritten to their ASCII meaning (`\w` = `[a-zA-Z_0-9]`, as the doc says).
//!
//! The `regex` crate matches in linear time; [`COMPILED_SIZE_LIMIT`] caps what one expression may cost.

use regex::{Regex, RegexBuilder};

use super::PatternError;

/// Upper bound on one compiled regex (and its lazy DFA cache): a 1,024-character pattern never needs more,
/// and a counted repetition such as `\w{1000}{1000}` is refused instead of eating memory.
pub const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// Bound on nesting inside the regex parser (classes within classes, repetitions of repetitions).
const NEST_LIMIT: u32 = 32;

/// Symbols AWS lists as allowed inside a regex, besides letters and digits.
const SYMBOLS: &str = ":_#=@/;,- ";

/// Operators AWS lists as allowed inside a regex.
const OPERATORS: &str = "^$?[]{}|\\*+.";

/// A validated, compiled `%...%` expression. Matching is unanchored ("contains a match").
#[derive(Debug, Clone)]
pub struct FilterRegex {
    regex: Regex,
}

impl FilterRegex {
    /// Validates `body` (the text between the two `%`) and compiles it. `offset` is the char offset of the
    /// body's first character in the whole pattern, so errors point at the offending character.
    pub fn compile(body: &[char], offset: usize) -> Result<FilterRegex, PatternError> {
        if body.is_empty() {
            return Err(PatternError::new(offset.saturating_sub(1), "empty regular expression '%%'"));
        }
        let translated = translate(body, offset)?;
        let source: String = body.iter().collect();
        let regex = RegexBuilder::new(&translated)
            .size_limit(COMPILED_SIZE_LIMIT)
            .dfa_size_limit(COMPILED_SIZE_LIMIT)
            .nest_limit(NEST_LIMIT)
            .build()
            .map_err(|e| {
                PatternError::new(offset, format!("invalid regular expression %{source}%: {}", first_line(&e)))
            })?;
        Ok(FilterRegex { regex })
    }

    /// Does the expression match anywhere in `text`?
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

fn first_line(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => "it compiles too large".to_string(),
        other => {
            // The regex crate's syntax errors span several lines with their own caret; keep the summary.
            let text = other.to_string();
            text.lines().rev().find(|l| l.starts_with("error:")).unwrap_or("not a valid expression").to_string()
        }
    }
}

/// Checks every character against AWS's dialect and rewrites it into `regex` crate syntax.
fn translate(body: &[char], offset: usize) -> Result<String, PatternError> {
    let mut out = String::with_capacity(body.len() * 2);
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        let at = offset + i;
        if c == '\\' {
            i += 1;
            let Some(&next) = body.get(i) else {
                return Err(PatternError::new(at, "regular expression ends with a lone '\\'"));
            };
            match next {
                'd' => out.push_str("[0-9]"),
                'D' => out.push_str("[^0-9]"),
                's' => out.push_str("[\\t\\n\\x0B\\x0C\\r ]"),
                'S' => out.push_str("[^\\t\\n\\x0B\\x0C\\r ]"),
                'w' => out.push_str("[a-zA-Z_0-9]"),
                'W' => out.push_str("[^a-zA-Z_0-9]"),
                'x' => {
                    let hex: Vec<char> = body.iter().skip(i + 1).take(2).copied().collect();
                    if hex.len() != 2 || !hex.iter().all(|h| h.is_ascii_hexdigit()) {
                        return Err(PatternError::new(at, "'\\x' must be followed by two hexadecimal digits"));
                    }
                    out.push_str("\\x");
                    out.extend(hex);
                    i += 2;
                }
                _ if OPERATORS.contains(next) || (SYMBOLS.contains(next) && next != ' ') => {
                    // Literal meaning. The regex crate accepts escaped ASCII punctuation.
                    out.push('\\');
                    out.push(next);
                }
                _ => {
                    return Err(PatternError::new(
                        at,
                        format!("unsupported escape '\\{next}' in regular expression (allowed: \\d \\D \\s \\S \\w \\W \\xhh, or '\\' before an operator)"),
                    ))
                }
            }
            i += 1;
            continue;
        }
        if c == '{' {
            // `{,n}`: AWS lets the minimum be omitted; the regex crate wants `{0,n}`.
            out.push('{');
            if body.get(i + 1) == Some(&',') {
                out.push('0');
            }
            i += 1;
            continue;
        }
        check_char(c, at)?;
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn check_char(c: char, at: usize) -> Result<(), PatternError> {
    if c.is_ascii_alphanumeric() || SYMBOLS.contains(c) || OPERATORS.contains(c) {
        return Ok(());
    }
    let message = match c {
        '(' | ')' => {
            "parentheses are not supported in regular expressions (use \\x28 and \\x29 to match them)".to_string()
        }
        _ if !c.is_ascii() => format!("multi-byte character '{c}' is not supported in regular expressions"),
        _ => format!("character {c:?} is not supported in regular expressions (use \\xhh to match it)"),
    };
    Err(PatternError::new(at, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(s: &str) -> Result<FilterRegex, PatternError> {
        let chars: Vec<char> = s.chars().collect();
        FilterRegex::compile(&chars, 1)
    }

    #[test]
    fn documented_operators_compile_and_match() {
        assert!(compile("colou?r").unwrap().is_match("the colour"));
        assert!(compile("a{3,5}").unwrap().is_match("aaaa"));
        assert!(compile("a{,2}b").unwrap().is_match("b"));
        assert!(compile("\\x3A").unwrap().is_match(":"));
        assert!(compile("\\x28").unwrap().is_match("("));
        assert!(compile("10\\.10\\.0\\.1").unwrap().is_match("to 10.10.0.1"));
        assert!(!compile("10\\.10\\.0\\.1").unwrap().is_match("10010,051"));
        assert!(compile("10.10.0.1").unwrap().is_match("10010,051"));
        assert!(compile("\\[.\\]").unwrap().is_match("[7]"));
    }

    #[test]
    fn class_escapes_are_ascii_as_documented() {
        let w = compile("^\\w+$").unwrap();
        assert!(w.is_match("ab_9"));
        assert!(!w.is_match("é"));
        assert!(compile("[\\d_]").unwrap().is_match("_"));
    }

    #[test]
    fn unsupported_syntax_is_rejected_with_position() {
        let e = compile("something!").unwrap_err();
        assert_eq!(e.position, 10);
        assert_eq!(compile("(ab)").unwrap_err().position, 1);
        assert!(compile("café").is_err());
        assert!(compile("\\n").is_err());
        assert!(compile("\\x4").is_err());
        assert!(compile("ab\\").is_err());
        assert!(compile("").is_err());
    }

    #[test]
    fn oversized_expression_is_rejected_not_built() {
        assert!(compile("\\w{1000}{1000}").is_err());
    }
}
