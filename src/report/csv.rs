//! The report as CSV for spreadsheets and timeline tools: `findings.csv` (one row per closed finding) and
//! `timelines.csv` (the sign-ins of the accounts in findings, with Timesketch's `message`, `datetime` and
//! `timestamp_desc` columns), and `cases.csv` (one row per closed case, README "Cases"; findings.csv's
//! `case_id` column joins them).
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
    vec![("findings.csv", findings(c)), ("timelines.csv", timelines(c)), ("cases.csv", cases(c))]
}

fn cases(c: &Collector) -> String {
    let mut s = line(
        &[
            "case_id",
            "severity",
            "story",
            "first_seen",
            "last_seen",
            "users_count",
            "users",
            "addresses_count",
            "addresses",
            "taken_over_count",
            "taken_over",
            "findings_by_rule",
            "merged",
        ]
        .map(cell),
    );
    let mut order: Vec<_> = c.cases.closed.values().collect();
    order.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(a.first_seen.cmp(&b.first_seen)).then(a.case_id.cmp(&b.case_id))
    });
    for k in order {
        let by_rule: Vec<String> = k.findings_by_rule.iter().map(|(r, n)| format!("{r}={n}")).collect();
        let addresses: Vec<&str> = k.addresses.iter().map(|a| a.ip.as_str()).collect();
        s.push_str(&line(&[
            cell(&k.case_id),
            cell(k.severity.as_str()),
            cell(&k.story),
            cell(&k.first_seen.to_string()),
            cell(&k.last_seen.to_string()),
            cell(&k.users_count.to_string()),
            cell(&k.users.join(" ")),
            cell(&k.addresses_count.to_string()),
            cell(&addresses.join(" ")),
            cell(&k.taken_over_count.to_string()),
            cell(&k.taken_over.join(" ")),
            cell(&by_rule.join(" ")),
            cell(&k.merged.join(" ")),
        ]));
    }
    s
}

fn findings(c: &Collector) -> String {
    let mut s = line(
        &[
            "incident_id",
            "case_id",
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
                opt(&f.case_id),
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
