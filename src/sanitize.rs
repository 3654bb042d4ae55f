//! Neutralises strings that come from logs (user names, device names, cities) before they reach a
//! terminal, a notification subject, a log line or a generated file.
//!
//! Attackers choose user names. A name carrying ANSI escapes could rewrite an analyst's terminal; one with
//! bidi overrides could disguise itself; one with a newline could forge a log line.

use std::borrow::Cow;

/// Longest log-supplied value shown on a terminal; longer ones are cut with a marker.
pub const MAX_DISPLAY_CHARS: usize = 200;

/// Characters that must not reach a terminal or a one-line text raw: C0 and C1 controls, DEL, bidi
/// controls and other invisible format characters.
pub fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' // Arabic letter mark: a bidi control
            | '\u{180E}' // Mongolian vowel separator: invisible
            | '\u{200B}'..='\u{200F}' // zero-width and direction marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations: hide text
            | '\u{E0000}'..='\u{E007F}') // tag characters: invisible, used to smuggle text
}

/// Longest line of a fatal error shown on a terminal: long enough for a spec file's whole parse error,
/// short enough that a record quoted in one cannot flood the screen.
pub const MAX_ERROR_LINE_CHARS: usize = 1_000;

/// For a multi-line message on a terminal (a fatal error naming several spec files, a TOML parse error
/// with its excerpt): every line is kept, and each is cleaned as [`for_terminal`] cleans a value, cut at
/// [`MAX_ERROR_LINE_CHARS`].
pub fn lines_for_terminal(s: &str) -> String {
    s.split('\n')
        .map(|line| escape_cut(line.trim_end_matches('\r'), MAX_ERROR_LINE_CHARS))
        .collect::<Vec<_>>()
        .join("\n")
}

/// For a terminal or a log line: dangerous characters become `\u{..}` escapes and the value is cut to
/// [`MAX_DISPLAY_CHARS`].
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    escape_cut(s, MAX_DISPLAY_CHARS)
}

/// Dangerous characters as `\u{..}` escapes, cut after `max` characters with a marker.
fn escape_cut(s: &str, max: usize) -> Cow<'_, str> {
    let clean = !s.chars().any(is_dangerous) && s.len() <= max;
    if clean {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max * 2));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push_str("…[cut]");
            break;
        }
        if is_dangerous(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// For an SNS subject: printable ASCII only, no line breaks, at most `max` characters (AWS: under 100).
pub fn for_subject(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= max {
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else if !out.ends_with('?') {
            out.push('?');
        }
    }
    if s.chars().count() > out.len() && out.len() >= max {
        out.truncate(max.saturating_sub(3));
        out.push_str("...");
    }
    out
}

/// JSON text with every dangerous character escaped as `\uXXXX`. serde_json escapes C0 controls but writes
/// DEL, C1 controls (U+009B is a one-byte CSI on some terminals) and bidi overrides raw; in JSON they can
/// only stand inside strings, where the escape means the same.
pub fn json_line(json: String) -> String {
    if !json.chars().any(is_dangerous) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_dangerous(c) && c != '\n' {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_ansi_and_bidi() {
        assert_eq!(for_terminal("jdoe"), "jdoe");
        assert_eq!(for_terminal("a\x1b[31mred"), "a\\u{1b}[31mred");
        assert_eq!(for_terminal("evil\u{202e}gnp.exe"), "evil\\u{202e}gnp.exe");
        assert_eq!(for_terminal("line\nbreak"), "line\\u{a}break");
        assert_eq!(for_terminal("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(for_terminal("a\u{61c}b"), "a\\u{61c}b");
        assert_eq!(for_terminal("tag\u{e0041}"), "tag\\u{e0041}");
    }

    #[test]
    fn multi_line_messages_keep_their_lines_and_escape_within_them() {
        let msg = "specs:\r\na.toml: bad\nb.toml: \x1b[2J\u{202e}x\n".to_string() + &"y".repeat(1500);
        let shown = lines_for_terminal(&msg);
        let lines: Vec<&str> = shown.split('\n').collect();
        assert_eq!(lines[..3], ["specs:", "a.toml: bad", "b.toml: \\u{1b}[2J\\u{202e}x"]);
        assert_eq!(lines[3].chars().count(), MAX_ERROR_LINE_CHARS + "…[cut]".chars().count());
        assert!(!shown.chars().any(|c| is_dangerous(c) && c != '\n'), "{shown:?}");
    }

    #[test]
    fn cuts_long_values() {
        let long = "x".repeat(1000);
        let shown = for_terminal(&long);
        assert!(shown.chars().count() < 220 && shown.ends_with("[cut]"));
    }

    #[test]
    fn subjects_are_printable_ascii_and_short() {
        let s = for_subject("Attack on \u{1b}[2Jjöhn\r\nBcc: x", 99);
        assert!(s.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{s}");
        assert!(!s.contains('\n'));
        let long = for_subject(&"a".repeat(500), 99);
        assert_eq!(long.len(), 99);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn json_lines_escape_c1_and_bidi() {
        let line = serde_json::json!({"user": "a\u{9b}b\u{202e}c\u{7f}"}).to_string();
        let safe = json_line(line);
        assert_eq!(safe, r#"{"user":"a\u009bb\u202ec\u007f"}"#);
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["user"], "a\u{9b}b\u{202e}c\u{7f}");
    }
}
