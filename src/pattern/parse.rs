//! Lexer and parser: filter-pattern text → [`Ast`], rejecting what AWS's syntax page rejects.
//!
//! The first non-blank character picks the syntax: `{` JSON, `[` space-delimited, anything else text.
//! Positions are `char` offsets into the whole pattern, so an error can put a caret under its cause.

use super::regex::FilterRegex;
use super::{PatternError, MAX_NESTING, MAX_REGEX_PER_PATTERN, MAX_WILDCARDS_PER_PATTERN, MAX_WILDCARDS_PER_SELECTOR};

/// A parsed pattern.
#[derive(Debug, Clone)]
pub enum Ast {
    MatchAll,
    Text(TextPattern),
    Json(JsonExpr),
    Delimited(Delimited),
}

/// Terms of an unstructured-text pattern. `optional` is non-empty only when `required` and `excluded` are
/// both empty: AWS ignores `?` terms combined with any other term.
#[derive(Debug, Clone)]
pub struct TextPattern {
    pub required: Vec<Term>,
    pub excluded: Vec<Term>,
    pub optional: Vec<Term>,
}

#[derive(Debug, Clone)]
pub enum Term {
    /// A word or quoted phrase, matched as a case-sensitive substring.
    Phrase(String),
    /// A quoted blank phrase such as `" "`: AWS documents it as matching everything.
    Blank,
    Regex(FilterRegex),
}

/// A JSON condition tree: `Any` is `||`, `All` is `&&`.
#[derive(Debug, Clone)]
pub enum JsonExpr {
    Any(Vec<JsonExpr>),
    All(Vec<JsonExpr>),
    Cond(JsonCond),
}

#[derive(Debug, Clone)]
pub struct JsonCond {
    pub selector: Selector,
    pub test: JsonTest,
}

#[derive(Debug, Clone)]
pub enum JsonTest {
    Compare(Op, Value),
    IsNull,
    IsTrue,
    IsFalse,
    NotExists,
}

/// A property selector such as `$.a[0].b`; `text` is the selector as written, used as the extracted name.
#[derive(Debug, Clone)]
pub struct Selector {
    pub text: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// `.*` or `[*]`: every field of an object or element of an array.
    Wildcard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone)]
pub enum Value {
    /// An unquoted number; `text` is how it was written (space-delimited fields that are not numbers are
    /// compared with it as text).
    Number {
        value: f64,
        text: String,
    },
    Text(Glob),
    Regex(FilterRegex),
}

/// A string with an optional `*` wildcard at its start and/or end. AWS: "`*Event` will match `PutEvent`...
/// `Event*` will match `EventId`... `Ev*ent` will only match the actual string `Ev*ent`".
#[derive(Debug, Clone)]
pub struct Glob {
    pub leading: bool,
    pub trailing: bool,
    pub core: String,
}

impl Glob {
    fn new(text: &str) -> Glob {
        let leading = text.starts_with('*');
        let rest = if leading { &text[1..] } else { text };
        let trailing = rest.ends_with('*');
        let core = if trailing { &rest[..rest.len() - 1] } else { rest };
        Glob { leading, trailing, core: core.to_string() }
    }

    /// `*` alone (or `**`): any value.
    pub fn is_any(&self) -> bool {
        self.leading && self.core.is_empty()
    }

    pub fn matches(&self, text: &str) -> bool {
        match (self.leading, self.trailing) {
            (true, true) => text.contains(self.core.as_str()),
            (true, false) => text.ends_with(self.core.as_str()),
            (false, true) => text.starts_with(self.core.as_str()),
            (false, false) => text == self.core,
        }
    }
}

/// A space-delimited pattern: one slot per field, `...` slots absorbing any number of fields.
#[derive(Debug, Clone)]
pub struct Delimited {
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
pub enum Slot {
    Ellipsis,
    /// `cond` is a disjunction (`||`) of conjunctions (`&&`) of comparisons on this field.
    Field {
        name: Option<String>,
        cond: Vec<Vec<(Op, Value)>>,
    },
}

/// Parses the whole pattern; returns the tree and the number of regexes in it.
pub fn parse(chars: &[char]) -> Result<(Ast, usize), PatternError> {
    let start = chars.iter().position(|c| !c.is_whitespace()).unwrap_or(chars.len());
    let mut regexes = 0;
    let ast = match chars.get(start) {
        None => Ast::MatchAll,
        Some('{') => {
            let tokens = lex(chars, start, Mode::Json, &mut regexes)?;
            Ast::Json(JsonParser { tokens: &tokens, at: 0, end: chars.len(), wildcards: 0 }.pattern()?)
        }
        Some('[') => {
            let tokens = lex(chars, start, Mode::Delimited, &mut regexes)?;
            Ast::Delimited(DelimitedParser { tokens: &tokens, at: 0, end: chars.len() }.pattern()?)
        }
        Some(_) => text_pattern(chars, start, &mut regexes)?,
    };
    Ok((ast, regexes))
}

// ---------------------------------------------------------------------------------------------------------
// Text patterns

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefix {
    None,
    Exclude,
    Optional,
}

fn text_pattern(chars: &[char], start: usize, regexes: &mut usize) -> Result<Ast, PatternError> {
    let mut terms: Vec<(Prefix, Term)> = Vec::new();
    let mut i = start;
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let Some(&c) = chars.get(i) else { break };
        let prefix = match c {
            '-' => Prefix::Exclude,
            '?' => Prefix::Optional,
            _ => Prefix::None,
        };
        if prefix != Prefix::None {
            i += 1;
            if chars.get(i).is_none_or(|c| c.is_whitespace()) {
                return Err(PatternError::new(i - 1, format!("expected a term right after '{c}'")));
            }
        }
        let (term, next) = text_term(chars, i, regexes)?;
        terms.push((prefix, term));
        i = next;
    }
    if terms.iter().all(|(_, t)| matches!(t, Term::Blank)) {
        return Ok(Ast::MatchAll);
    }
    let has_plain = terms.iter().any(|(p, _)| *p != Prefix::Optional);
    let mut pattern = TextPattern { required: Vec::new(), excluded: Vec::new(), optional: Vec::new() };
    for (prefix, term) in terms {
        match prefix {
            Prefix::None => pattern.required.push(term),
            Prefix::Exclude => pattern.excluded.push(term),
            // AWS: "If you combine "?" with other filter patterns, all question mark terms will be ignored."
            Prefix::Optional if has_plain => {}
            Prefix::Optional => pattern.optional.push(term),
        }
    }
    Ok(Ast::Text(pattern))
}

/// One term starting at `i`: a quoted phrase, a `%regex%` or a bare word. Returns it and the next offset.
fn text_term(chars: &[char], i: usize, regexes: &mut usize) -> Result<(Term, usize), PatternError> {
    let (term, next) = match chars.get(i) {
        Some('"') => {
            let (text, next) = quoted(chars, i)?;
            let term = if text.trim().is_empty() { Term::Blank } else { Term::Phrase(text) };
            (term, next)
        }
        Some('%') => {
            let (regex, next) = regex_at(chars, i, regexes)?;
            (Term::Regex(regex), next)
        }
        _ => {
            let mut j = i;
            while let Some(&c) = chars.get(j) {
                if c.is_whitespace() {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_') {
                    return Err(PatternError::new(
                        j,
                        format!("{c:?} is only allowed inside a quoted phrase: terms with characters other than letters, digits and '_' must be in double quotes"),
                    ));
                }
                j += 1;
            }
            (Term::Phrase(chars[i..j].iter().collect()), j)
        }
    };
    if chars.get(next).is_some_and(|c| !c.is_whitespace()) {
        return Err(PatternError::new(next, "expected a space between terms"));
    }
    Ok((term, next))
}

/// A double-quoted string starting at `open`; `\"` and `\\` are escapes, any other `\` is kept as written.
fn quoted(chars: &[char], open: usize) -> Result<(String, usize), PatternError> {
    let mut text = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => return Err(PatternError::new(open, "this quote is never closed")),
            Some('"') => return Ok((text, i + 1)),
            Some('\\') if matches!(chars.get(i + 1), Some('"') | Some('\\')) => {
                text.extend(chars.get(i + 1));
                i += 2;
            }
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

/// A `%regex%` starting at `open`; counts it against AWS's limit of two per pattern.
fn regex_at(chars: &[char], open: usize, regexes: &mut usize) -> Result<(FilterRegex, usize), PatternError> {
    let Some(len) = chars[open + 1..].iter().position(|&c| c == '%') else {
        return Err(PatternError::new(open, "this regular expression has no closing '%'"));
    };
    *regexes += 1;
    if *regexes > MAX_REGEX_PER_PATTERN {
        return Err(PatternError::new(
            open,
            format!("AWS allows at most {MAX_REGEX_PER_PATTERN} regular expressions per filter pattern"),
        ));
    }
    let close = open + 1 + len;
    let regex = FilterRegex::compile(&chars[open + 1..close], open + 1)?;
    Ok((regex, close + 1))
}

// ---------------------------------------------------------------------------------------------------------
// Tokens shared by JSON and space-delimited patterns

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Delimited,
}

#[derive(Debug)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    And,
    Or,
    Op(Op),
    Quoted(String),
    Regex(FilterRegex),
    Word(String),
    Selector(Selector),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    pos: usize,
}

/// Characters that end a bare word.
fn is_word_char(c: char, mode: Mode) -> bool {
    !(c.is_whitespace() || "{}()[],&|=!<>\"%".contains(c) || (mode == Mode::Json && c == '$'))
}

fn lex(chars: &[char], start: usize, mode: Mode, regexes: &mut usize) -> Result<Vec<Token>, PatternError> {
    let mut tokens = Vec::new();
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pos = i;
        let next = chars.get(i + 1).copied();
        let (tok, width) = match c {
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '&' | '|' => return Err(PatternError::new(pos, format!("expected '{c}{c}'"))),
            '!' if next == Some('=') => (Tok::Op(Op::Ne), 2),
            '!' => return Err(PatternError::new(pos, "expected '!=' ('!' alone is not an operator)")),
            '<' if next == Some('=') => (Tok::Op(Op::Le), 2),
            '>' if next == Some('=') => (Tok::Op(Op::Ge), 2),
            '<' => (Tok::Op(Op::Lt), 1),
            '>' => (Tok::Op(Op::Gt), 1),
            '=' => (Tok::Op(Op::Eq), 1),
            '"' => {
                let (text, end) = quoted(chars, i)?;
                (Tok::Quoted(text), end - i)
            }
            '%' => {
                let (regex, end) = regex_at(chars, i, regexes)?;
                (Tok::Regex(regex), end - i)
            }
            '$' if mode == Mode::Json => {
                let (selector, end) = selector(chars, i)?;
                (Tok::Selector(selector), end - i)
            }
            _ => {
                let len = chars[i..].iter().take_while(|&&c| is_word_char(c, mode)).count();
                if len == 0 {
                    return Err(PatternError::new(pos, format!("unexpected {c:?}")));
                }
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
        };
        tokens.push(Token { tok, pos });
        i += width;
    }
    Ok(tokens)
}

/// A JSON property selector starting at the `$`: `$.a.b`, `$.a[0]`, `$.a[*]`, `$.*`, `$.['a.b']`.
fn selector(chars: &[char], dollar: usize) -> Result<(Selector, usize), PatternError> {
    let mut i = dollar + 1;
    if chars.get(i) != Some(&'.') {
        return Err(PatternError::new(i, "a property selector starts with '$.'"));
    }
    let mut steps = Vec::new();
    let mut after_dot = true;
    i += 1;
    loop {
        let c = chars.get(i).copied();
        match c {
            Some('*') if after_dot => {
                steps.push(Step::Wildcard);
                i += 1;
            }
            Some('[') => {
                let (step, end) = bracket_step(chars, i)?;
                steps.push(step);
                i = end;
            }
            Some(c) if after_dot && is_key_char(c) => {
                let len = chars[i..].iter().take_while(|&&c| is_key_char(c)).count();
                steps.push(Step::Key(chars[i..i + len].iter().collect()));
                i += len;
            }
            _ if after_dot => {
                return Err(PatternError::new(i, "expected a property name, '*' or '[' after '.' in the selector"));
            }
            Some('.') => {
                after_dot = true;
                i += 1;
                continue;
            }
            _ => break,
        }
        after_dot = false;
        if steps.iter().filter(|s| **s == Step::Wildcard).count() > MAX_WILDCARDS_PER_SELECTOR {
            return Err(PatternError::new(
                i - 1,
                format!("AWS allows at most {MAX_WILDCARDS_PER_SELECTOR} wildcard in a property selector"),
            ));
        }
    }
    let text = chars[dollar..i].iter().collect();
    Ok((Selector { text, steps }, i))
}

/// AWS: "Property selectors are alphanumeric strings that support hyphen and underscore characters."
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// `[0]`, `[*]` or `['key.with.dots']` starting at the `[`.
fn bracket_step(chars: &[char], open: usize) -> Result<(Step, usize), PatternError> {
    let mut i = open + 1;
    let step = match chars.get(i) {
        Some('*') => {
            i += 1;
            Step::Wildcard
        }
        Some('\'') => {
            let Some(len) = chars[i + 1..].iter().position(|&c| c == '\'') else {
                return Err(PatternError::new(i, "this quote is never closed"));
            };
            let key: String = chars[i + 1..i + 1 + len].iter().collect();
            i += len + 2;
            Step::Key(key)
        }
        Some(c) if c.is_ascii_digit() => {
            let len = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let digits: String = chars[i..i + len].iter().collect();
            let index = digits.parse().map_err(|_| PatternError::new(i, "array index is too large"))?;
            i += len;
            Step::Index(index)
        }
        _ => return Err(PatternError::new(i, "expected an array index, '*' or a quoted 'key' after '['")),
    };
    if chars.get(i) != Some(&']') {
        return Err(PatternError::new(i, "expected ']'"));
    }
    Ok((step, i + 1))
}

/// AWS's number: an integer or decimal with an optional sign, optionally followed by `e` and a signed integer.
pub fn parse_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+') | Some(b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e') | Some(b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+') | Some(b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    text.trim_start_matches('+').parse().ok()
}

/// Parses the value after `op`, taken from `token` (None at the end of the pattern).
fn value(op: Op, token: Option<&Token>, end: usize) -> Result<Value, PatternError> {
    let expected = || {
        let what = if matches!(op, Op::Eq | Op::Ne) { "a value" } else { "a number" };
        PatternError::new(token.map_or(end, |t| t.pos), format!("expected {what} after '{}'", op.symbol()))
    };
    let Some(token) = token else {
        return Err(expected());
    };
    let value = match &token.tok {
        Tok::Word(w) => match parse_number(w) {
            Some(n) => Value::Number { value: n, text: w.clone() },
            None => Value::Text(Glob::new(w)),
        },
        Tok::Quoted(s) => Value::Text(Glob::new(s)),
        Tok::Regex(r) => Value::Regex(r.clone()),
        _ => return Err(expected()),
    };
    if !matches!(op, Op::Eq | Op::Ne) && !matches!(value, Value::Number { .. }) {
        return Err(PatternError::new(
            token.pos,
            format!("expected a number after '{}' (it compares numbers)", op.symbol()),
        ));
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------------------
// JSON patterns

struct JsonParser<'a> {
    tokens: &'a [Token],
    at: usize,
    end: usize,
    wildcards: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn pattern(mut self) -> Result<JsonExpr, PatternError> {
        self.at = 1; // the '{' that chose this parser
        if matches!(self.peek().map(|t| &t.tok), Some(Tok::RBrace)) {
            return Err(PatternError::new(self.here(), "expected a condition inside '{ }'"));
        }
        let expr = self.or(0)?;
        match self.peek().map(|t| &t.tok) {
            Some(Tok::RBrace) => self.at += 1,
            Some(Tok::RParen) => return Err(PatternError::new(self.here(), "this ')' has no matching '('")),
            Some(_) => return Err(PatternError::new(self.here(), "expected '&&', '||' or the closing '}'")),
            None => return Err(PatternError::new(self.end, "expected the closing '}'")),
        }
        if self.peek().is_some() {
            return Err(PatternError::new(self.here(), "unexpected text after the closing '}'"));
        }
        Ok(expr)
    }

    fn or(&mut self, depth: usize) -> Result<JsonExpr, PatternError> {
        let mut items = vec![self.and(depth)?];
        while matches!(self.peek().map(|t| &t.tok), Some(Tok::Or)) {
            self.at += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { JsonExpr::Any(items) })
    }

    fn and(&mut self, depth: usize) -> Result<JsonExpr, PatternError> {
        let mut items = vec![self.unary(depth)?];
        while matches!(self.peek().map(|t| &t.tok), Some(Tok::And)) {
            self.at += 1;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { JsonExpr::All(items) })
    }

    fn unary(&mut self, depth: usize) -> Result<JsonExpr, PatternError> {
        let Some(token) = self.peek() else {
            return Err(PatternError::new(self.end, "expected a condition"));
        };
        match &token.tok {
            Tok::LParen => {
                if depth >= super::MAX_NESTING {
                    return Err(PatternError::new(
                        token.pos,
                        format!("parentheses are nested deeper than {MAX_NESTING}"),
                    ));
                }
                let open = token.pos;
                self.at += 1;
                let inner = self.or(depth + 1)?;
                if !matches!(self.peek().map(|t| &t.tok), Some(Tok::RParen)) {
                    let at = if self.peek().is_none() { open } else { self.here() };
                    return Err(PatternError::new(at, "expected ')' to close the '(' here"));
                }
                self.at += 1;
                Ok(inner)
            }
            Tok::Selector(_) => self.condition(),
            _ => Err(PatternError::new(token.pos, "expected a property selector such as $.eventName, or '('")),
        }
    }

    fn condition(&mut self) -> Result<JsonExpr, PatternError> {
        let Some(Token { tok: Tok::Selector(selector), pos }) = self.peek() else {
            return Err(PatternError::new(self.here(), "expected a property selector"));
        };
        let (selector, selector_pos) = (selector.clone(), *pos);
        self.wildcards += selector.steps.iter().filter(|s| **s == Step::Wildcard).count();
        if self.wildcards > MAX_WILDCARDS_PER_PATTERN {
            return Err(PatternError::new(
                selector_pos,
                format!("AWS allows at most {MAX_WILDCARDS_PER_PATTERN} wildcard selectors in a filter pattern"),
            ));
        }
        self.at += 1;
        let test = match self.peek() {
            Some(Token { tok: Tok::Op(op), .. }) => {
                let op = *op;
                self.at += 1;
                let value = value(op, self.peek(), self.end)?;
                self.at += 1;
                JsonTest::Compare(op, value)
            }
            Some(Token { tok: Tok::Word(w), pos }) if w == "IS" => {
                let is_pos = *pos;
                self.at += 1;
                let test = match self.peek().map(|t| &t.tok) {
                    Some(Tok::Word(w)) if w == "NULL" => JsonTest::IsNull,
                    Some(Tok::Word(w)) if w == "TRUE" => JsonTest::IsTrue,
                    Some(Tok::Word(w)) if w == "FALSE" => JsonTest::IsFalse,
                    Some(Tok::Word(w)) if w == "NOT" => {
                        return Err(PatternError::new(
                            self.here(),
                            "'IS NOT' is not supported by CloudWatch (use '!=' or NOT EXISTS)",
                        ))
                    }
                    _ => {
                        let at = if self.peek().is_none() { is_pos } else { self.here() };
                        return Err(PatternError::new(at, "expected NULL, TRUE or FALSE after 'IS'"));
                    }
                };
                self.at += 1;
                test
            }
            Some(Token { tok: Tok::Word(w), pos }) if w == "NOT" => {
                let not_pos = *pos;
                self.at += 1;
                match self.peek().map(|t| &t.tok) {
                    Some(Tok::Word(w)) if w == "EXISTS" => self.at += 1,
                    _ => {
                        let at = if self.peek().is_none() { not_pos } else { self.here() };
                        return Err(PatternError::new(at, "expected EXISTS after 'NOT'"));
                    }
                }
                JsonTest::NotExists
            }
            Some(Token { tok: Tok::Word(w), pos }) if w == "EXISTS" => {
                return Err(PatternError::new(*pos, "'EXISTS' is not supported by CloudWatch (only NOT EXISTS is)"))
            }
            _ => {
                let at = if self.peek().is_none() { selector_pos } else { self.here() };
                return Err(PatternError::new(
                    at,
                    format!("expected an operator (=, !=, <, >, <=, >=, IS or NOT EXISTS) after {}", selector.text),
                ));
            }
        };
        Ok(JsonExpr::Cond(JsonCond { selector, test }))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Space-delimited patterns

struct DelimitedParser<'a> {
    tokens: &'a [Token],
    at: usize,
    end: usize,
}

impl DelimitedParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn pattern(mut self) -> Result<Delimited, PatternError> {
        self.at = 1; // the '[' that chose this parser
        let mut slots = Vec::new();
        if matches!(self.peek().map(|t| &t.tok), Some(Tok::RBracket)) {
            // `[]`: TestMetricFilter's example matches every event and reports each field as $1..$N.
            slots.push(Slot::Ellipsis);
        } else {
            loop {
                slots.push(self.slot()?);
                match self.peek().map(|t| &t.tok) {
                    Some(Tok::Comma) => self.at += 1,
                    Some(Tok::RBracket) => break,
                    Some(_) => return Err(PatternError::new(self.here(), "expected ',' or the closing ']'")),
                    None => return Err(PatternError::new(self.end, "expected the closing ']'")),
                }
            }
        }
        self.at += 1;
        if self.peek().is_some() {
            return Err(PatternError::new(self.here(), "unexpected text after the closing ']'"));
        }
        Ok(Delimited { slots })
    }

    /// One field: empty (as in `[a, ]`), `...`, a name, or conditions on one name.
    fn slot(&mut self) -> Result<Slot, PatternError> {
        let (name, name_pos) = match self.peek() {
            Some(Token { tok: Tok::Comma | Tok::RBracket, .. }) => {
                return Ok(Slot::Field { name: None, cond: Vec::new() })
            }
            Some(Token { tok: Tok::Word(w), .. }) if w == "..." => {
                self.at += 1;
                return Ok(Slot::Ellipsis);
            }
            Some(Token { tok: Tok::Word(w), pos }) => (w.clone(), *pos),
            _ => return Err(PatternError::new(self.here(), "expected a field name, '...' or ','")),
        };
        check_field_name(&name, name_pos)?;
        self.at += 1;
        if !matches!(self.peek().map(|t| &t.tok), Some(Tok::Op(_))) {
            return Ok(Slot::Field { name: Some(name), cond: Vec::new() });
        }
        let mut any = Vec::new();
        let mut all = vec![self.comparison(&name, None)?];
        loop {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::And) => {
                    self.at += 1;
                    all.push(self.comparison(&name, self.peek().map(|t| t.pos))?);
                }
                Some(Tok::Or) => {
                    self.at += 1;
                    any.push(std::mem::take(&mut all));
                    all.push(self.comparison(&name, self.peek().map(|t| t.pos))?);
                }
                _ => break,
            }
        }
        any.push(all);
        Ok(Slot::Field { name: Some(name), cond: any })
    }

    /// `op value`, preceded by the field name again when it follows `&&`/`||` (`name_at` is then its place).
    fn comparison(&mut self, name: &str, name_at: Option<usize>) -> Result<(Op, Value), PatternError> {
        if let Some(at) = name_at {
            match self.peek() {
                Some(Token { tok: Tok::Word(w), .. }) if w == name => self.at += 1,
                Some(Token { tok: Tok::Word(w), .. }) => {
                    return Err(PatternError::new(
                        at,
                        format!(
                            "conditions joined by '&&' or '||' must all be on the same field ('{name}', not '{w}')"
                        ),
                    ))
                }
                _ => {
                    return Err(PatternError::new(
                        self.here(),
                        format!("expected '{name}' and a condition after '&&' or '||'"),
                    ))
                }
            }
        }
        let Some(Token { tok: Tok::Op(op), .. }) = self.peek() else {
            return Err(PatternError::new(self.here(), "expected an operator (=, !=, <, >, <=, >=)"));
        };
        let op = *op;
        self.at += 1;
        let value = value(op, self.peek(), self.end)?;
        self.at += 1;
        Ok((op, value))
    }
}

fn check_field_name(name: &str, pos: usize) -> Result<(), PatternError> {
    match name.chars().position(|c| !(c.is_alphanumeric() || c == '_')) {
        None => Ok(()),
        Some(bad) => {
            Err(PatternError::new(pos + bad, format!("field names are letters, digits and '_' ('{name}' is not one)")))
        }
    }
}
