//! The report as CSV for spreadsheets and timeline tools: `findings.csv` (one row per closed finding) and
//! `timelines.csv` (the sign-ins of the accounts in findings, with Timesketch's `message`, `datetime` and
//! `timestamp_desc` columns). `cases.csv` will join them once findings are grouped into cases (issue 14).
//!
//! Every cell is quoted; a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//! leading `'` so a spreadsheet shows it instead of running it as a formula (user names are attacker-made).

use std::fmt::Write;

use super::html::place_text;
use super::Collector;

/// One CSV cell, quoted, with formula-looking text neutralised.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push('"');
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn line(cells: &[String]) -> String {
    let mut l = cells.join(",");
    l.push_str("\r\n");
    l
}

/// The files: (name, contents).
pub fn render(c: &Collector) -> Vec<(&'static str, String)> {
    vec![("findings.csv", findings(c)), ("timelines.csv", timelines(c))]
}

fn findings(c: &Collector) -> String {
    let mut s = line(
        &[
            "incident_id",
            "detector",
            "rule",
            "severity",
            "user",
            "user_sub",
            "ip",
            "user_pool_id",
            "first_seen",
            "last_seen",
            "detected_at",
            "count",
            "summary",
            "evidence",
        ]
        .map(cell),
    );
    let groups = super::groups(&c.book.findings, &c.cases);
    for g in &groups {
        for &i in &g.findings {
            let f = &c.book.findings[i];
            let opt = |v: &Option<String>| cell(v.as_deref().unwrap_or(""));
            s.push_str(&line(&[
                cell(&f.incident_id),
                cell(f.detector),
                cell(&f.rule),
                cell(f.severity.as_str()),
                opt(&f.user),
                opt(&f.user_sub),
                opt(&f.ip),
                opt(&f.user_pool_id),
                cell(&f.first_seen.to_string()),
                cell(&f.last_seen.to_string()),
                cell(&f.detected_at.to_string()),
                cell(&f.count.to_string()),
                cell(&f.summary),
                cell(&f.evidence.to_string()),
            ]));
        }
    }
    s
}

fn timelines(c: &Collector) -> String {
    let mut s = line(
        &["datetime", "timestamp_desc", "message", "user", "event", "outcome", "ip", "place", "findings"].map(cell),
    );
    let groups = super::groups(&c.book.findings, &c.cases);
    let mut done: Vec<&str> = Vec::new();
    for g in &groups {
        for &i in &g.findings {
            let f = &c.book.findings[i];
            let Some(account) = f.user.as_deref().or(f.user_sub.as_deref()) else { continue };
            if done.contains(&account) {
                continue;
            }
            done.push(account);
            let Some(story) = c.activity.story(account) else { continue };
            let found: Vec<&str> = c
                .book
                .findings
                .iter()
                .filter(|f| f.user.as_deref().or(f.user_sub.as_deref()) == Some(account))
                .map(|f| f.incident_id.as_str())
                .collect();
            let found = found.join(" ");
            for e in &story.entries {
                let ip = e.ip.map(|ip| ip.to_string()).unwrap_or_default();
                let place = place_text(c, e.place);
                let mut message = format!("{} {} for {account}", e.kind.as_str(), e.outcome.as_str());
                if !ip.is_empty() {
                    let _ = write!(message, " from {ip}");
                }
                if place != "-" {
                    let _ = write!(message, " ({place})");
                }
                s.push_str(&line(&[
                    cell(&e.time.to_string()),
                    cell("Event Recorded"),
                    cell(&message),
                    cell(account),
                    cell(e.kind.as_str()),
                    cell(e.outcome.as_str()),
                    cell(&ip),
                    cell(&place),
                    cell(&found),
                ]));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(cell("plain"), "\"plain\"");
        assert_eq!(cell("a \"b\", c\nd"), "\"a \"\"b\"\", c\nd\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for p in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(cell(p).starts_with("\"'"), "{p}");
        }
        assert_eq!(cell("2026-01-01T00:00:00.000Z"), "\"2026-01-01T00:00:00.000Z\"");
    }
}
