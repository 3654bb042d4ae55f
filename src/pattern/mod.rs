//! CloudWatch Logs filter patterns (metric filters, subscription filters, FilterLogEvents): parse and evaluate.
//!
//! The behaviour follows AWS's "Filter pattern syntax for metric filters, subscription filters, filter log
//! events, and Live Tail" page and the `TestMetricFilter` API reference examples. Four kinds of pattern:
//!
//! - **Match all**: the empty pattern, only whitespace, or a quoted blank phrase `" "`.
//! - **Text** (unstructured events): terms match substrings, case sensitive. `A B` needs both, `"a phrase"`
//!   is one term (escapes `\"` and `\\`), `-T` excludes, `?A ?B` needs either. AWS: "If you combine `?` with
//!   other filter patterns, all question mark terms will be ignored", so `?ERROR ?ARGUMENTS REQUEST` is
//!   `REQUEST`. Unquoted terms are letters, digits and `_`; anything else must be quoted. A term may be a
//!   `%regex%`.
//! - **JSON** `{ ... }`: selectors `$.a.b`, `$.a[0]`, `$.a[*]`, `$.*`, `$.['a.b']` (at most one wildcard per
//!   selector, three per pattern); `=`/`!=` with a string (quoted or a bare word; a leading or trailing `*`
//!   is a wildcard), a number, or a `%regex%`; `< > <= >=` with a number (`+`, `-`, decimals, exponents);
//!   `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`; `&&`, `||` and parentheses, `()` > `&&` > `||`.
//! - **Space-delimited** `[ip, user, ..., status_code=4*, bytes>1000]`: each name binds one message field
//!   (`[...]` and `"..."` in the message are one field); `...` absorbs any number of fields; conditions use
//!   `= != < > <= >=`, wildcards, `%regex%`, and `&&`/`||` between conditions on the same field.
//!
//! Typing rules. Documented: a selector landing on an object or array matches neither `=` nor `!=`;
//! `IS TRUE`/`IS FALSE`/`IS NULL` need a JSON boolean/null. Chosen where AWS is silent: a number on the right
//! (`$.x = 200`, `$.x > 1e3`) compares numerically with JSON numbers only, and a string (`"200"`, a bare
//! word, a wildcard) with JSON strings only, so Cognito's string-typed `eventTimestamp` needs a string
//! pattern; any other pairing, and a missing property, is false for `=` and `!=` alike; `= *` matches any
//! string, number or boolean; a `%regex%` matches strings and the text of numbers; a wildcard selector
//! holds if any selected value does. In space-delimited patterns a number compares numerically when the
//! field is a number, and as text otherwise (`<`-style operators are then false).
//!
//! Every pattern AWS's documentation says it rejects is rejected here with a [`PatternError`] pointing at the
//! offending character. Nothing here panics on any pattern or message: recursion is bounded by
//! [`MAX_NESTING`], regexes run in linear time with a size cap, and JSON messages go through `serde_json`,
//! whose parser has its own depth limit.

mod eval;
mod parse;
mod regex;

use std::fmt;

use self::parse::Ast;

/// AWS's length limit on `filterPattern` (API: "Maximum length of 1024"), counted in characters.
pub const MAX_PATTERN_CHARS: usize = 1024;

/// AWS: "There is a limit of 2 regex for each filter pattern".
pub const MAX_REGEX_PER_PATTERN: usize = 2;

/// AWS: "You can only use up to one wildcard selector in a property selector".
pub const MAX_WILDCARDS_PER_SELECTOR: usize = 1;

/// AWS: "... and up to three wildcard selectors in a filter pattern with compound expressions".
pub const MAX_WILDCARDS_PER_PATTERN: usize = 3;

/// Deepest parenthesis nesting accepted in a JSON pattern. AWS documents none; this bounds recursion, and no
/// real pattern needs more.
pub const MAX_NESTING: usize = 32;

/// Which of the filter-pattern syntaxes a pattern uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// Terms, phrases, exclusions, optional terms or a standalone regex, matched against the raw text.
    Text,
    /// `{ ... }`: conditions on the JSON document in the message.
    Json,
    /// `[ ... ]`: conditions on the space-delimited fields of the message.
    SpaceDelimited,
    /// Matches every event: empty, blank, or a quoted blank phrase.
    MatchAll,
}

/// A parsed and validated filter pattern, ready to match log event messages.
#[derive(Debug, Clone)]
pub struct FilterPattern {
    ast: Ast,
    regex_count: usize,
}

/// The values a match extracted, as TestMetricFilter's `extractedValues`: for space-delimited patterns every
/// field of the message (`$name` for named fields, `$N` by 1-based position otherwise), in message order; for
/// JSON patterns each selector the pattern names that lands on a string, number or boolean, in pattern order;
/// empty for text patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub extracted: Vec<(String, String)>,
}

/// A pattern AWS would refuse, with the character offset (0-based, in `char`s) where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub position: usize,
    pub message: String,
}

impl PatternError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> PatternError {
        PatternError { position, message: message.into() }
    }

    /// Two lines for a terminal: the pattern, then a caret under the offending character and the message.
    pub fn render(&self, pattern: &str) -> String {
        let column: String = pattern.chars().take(self.position).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        format!("{pattern}\n{column}^ {}", self.message)
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.position + 1, self.message)
    }
}

impl std::error::Error for PatternError {}

impl FilterPattern {
    /// Parses and validates `pattern`. Errors carry the offending character's offset.
    pub fn parse(pattern: &str) -> Result<FilterPattern, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        if chars.len() > MAX_PATTERN_CHARS {
            return Err(PatternError::new(
                MAX_PATTERN_CHARS,
                format!("pattern is {} characters long; AWS allows at most {MAX_PATTERN_CHARS}", chars.len()),
            ));
        }
        let (ast, regex_count) = parse::parse(&chars).map_err(|mut e| {
            // Errors about "the end" point at the last character so the caret stays inside the pattern.
            e.position = e.position.min(chars.len().saturating_sub(1));
            e
        })?;
        Ok(FilterPattern { ast, regex_count })
    }

    /// Which syntax the pattern uses.
    pub fn kind(&self) -> PatternKind {
        match &self.ast {
            Ast::MatchAll => PatternKind::MatchAll,
            Ast::Text(_) => PatternKind::Text,
            Ast::Json(_) => PatternKind::Json,
            Ast::Delimited(_) => PatternKind::SpaceDelimited,
        }
    }

    /// How many `%regex%` the pattern holds (AWS allows at most [`MAX_REGEX_PER_PATTERN`]; log groups at most
    /// five regex-bearing filters, which callers check with this).
    pub fn regex_count(&self) -> usize {
        self.regex_count
    }

    /// Does the log event message match? `message` is the raw log event text.
    pub fn matches(&self, message: &str) -> bool {
        eval::evaluate(&self.ast, message, false).is_some()
    }

    /// Match and return extracted values (for space-delimited: `$name`/`$1`.. fields; for JSON: the
    /// selectors referenced, with their values) — like TestMetricFilter's extractedValues.
    pub fn evaluate(&self, message: &str) -> Option<Match> {
        eval::evaluate(&self.ast, message, true)
    }
}
