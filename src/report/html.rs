//! The HTML report: one self-contained page (inline CSS and SVG, no script, no external reference) with the
//! run, the timeline, the findings, the top offenders, the map and each flagged account's story.
//!
//! Every string that came from a log goes through [`escape_html`]; the page's Content-Security-Policy
//! allows no script and no fetch, a second wall should one slip through.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde_json::Value;

use super::activity::{Entry, Story, NO_PLACE};
use super::map::{self, Arc, Point};
use super::{groups, svg, Collector, Group, RunFacts, MAX_FINDINGS};
use crate::event::Outcome;
use crate::figures::thousands_f;
use crate::finding::Finding;
use crate::geo::{Gazetteer, Resolution};
use crate::sanitize::is_dangerous;
use crate::sink::summary::{human_bytes, FindingTally};
use crate::time::{Span, Timestamp};

/// Rows in each top-offenders table.
pub const TOP_N: usize = 10;
/// Accounts whose story is shown (in the order of their most severe finding); the rest are named.
pub const MAX_STORIES_SHOWN: usize = 60;
/// Rows of one story: runs of like sign-ins are folded into one row first, so this is rarely reached.
pub const MAX_STORY_ROWS: usize = 120;
/// Evidence rows per finding: the headline figures and a few hops; the JSON-lines output has every one.
pub const MAX_EVIDENCE_ROWS: usize = 40;
/// Items shown of an evidence list (event ids, addresses): enough to search for, short enough to read.
pub const MAX_LIST_ITEMS: usize = 8;
/// Longest log-supplied value shown whole; longer ones are cut with a marker.
pub const MAX_VALUE_CHARS: usize = 300;

const STYLE: &str = include_str!("report.css");

/// Text safe to put in HTML element content and in quoted attributes: `& < > " '` become entities,
/// control, bidi and invisible characters become visible `\u{..}` escapes, and the value is cut at
/// [`MAX_VALUE_CHARS`].
pub fn escape_html(s: &str) -> Cow<'_, str> {
    let plain =
        s.len() <= MAX_VALUE_CHARS && !s.chars().any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'') || is_dangerous(c));
    if plain {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (n, c) in s.chars().enumerate() {
        if n == MAX_VALUE_CHARS {
            out.push_str("…[cut]");
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_dangerous(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The whole page.
pub fn render(facts: &RunFacts<'_>, c: &Collector) -> String {
    let findings = &c.book.findings;
    let groups = groups(findings, &c.cases);
    let mut s = String::with_capacity(256 * 1024);
    let version = env!("CARGO_PKG_VERSION");
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><title>authwatch report</title><style>{STYLE}</style></head><body>"#
    );
    let span = match (facts.run.engine.first_event, facts.run.engine.last_event) {
        (Some(a), Some(b)) => format!("{a} to {b} ({})", Span(b.0 - a.0)),
        _ => "no events".into(),
    };
    let _ = write!(
        s,
        r#"<header><h1>authwatch forensic report</h1><p class="sub">{} · {} events · {} findings · made by authwatch {version} ({})</p></header>"#,
        escape_html(&span),
        facts.run.events,
        facts.run.findings.total,
        escape_html(facts.command)
    );
    s.push_str(r##"<nav><a href="#run">Run</a> <a href="#timeline">Timeline</a> <a href="#findings">Findings</a> <a href="#offenders">Top offenders</a> <a href="#map">Map</a> <a href="#accounts">Accounts</a> <a href="#rules">Rules</a></nav><main>"##);
    glance(&mut s, facts, &groups, findings);
    run(&mut s, facts, c);
    timeline(&mut s, c, &groups);
    findings_section(&mut s, facts, c, &groups);
    offenders(&mut s, &facts.run.findings, c);
    world(&mut s, c, &groups, findings);
    accounts(&mut s, c, &groups, findings);
    rules(&mut s, facts);
    let _ = writeln!(
        s,
        "</main><footer>Made by authwatch {version}. Times are UTC. Land outline: Natural Earth 1:110m (public domain). Place names: GeoNames (CC BY 4.0).</footer></body></html>"
    );
    s
}

fn glance(s: &mut String, facts: &RunFacts<'_>, groups: &[Group], findings: &[Finding]) {
    let accounts = {
        let mut a: Vec<&str> = findings.iter().filter_map(|f| f.user.as_deref()).collect();
        a.sort_unstable();
        a.dedup();
        a.len()
    };
    let worst = groups.first().map_or("none".to_string(), |g| g.severity.to_string());
    s.push_str(r#"<section class="glance">"#);
    for (n, label) in [
        (facts.run.events.to_string(), "events"),
        (facts.run.findings.total.to_string(), "findings"),
        (worst, "most severe"),
        (accounts.to_string(), "accounts in findings"),
        (facts.run.findings.ips.len().to_string(), "addresses in findings"),
        (facts.run.rejected.to_string(), "rejected records"),
    ] {
        let _ = write!(s, r#"<div class="card"><b>{}</b><span>{label}</span></div>"#, escape_html(&n));
    }
    s.push_str("</section>");
}

fn run(s: &mut String, facts: &RunFacts<'_>, c: &Collector) {
    let r = facts.run;
    s.push_str(r#"<section id="run"><h2>The run</h2><table class="facts">"#);
    let inputs: Vec<String> = facts.inputs.iter().map(|p| p.display().to_string()).collect();
    let inputs = if inputs.is_empty() { "standard input".to_string() } else { inputs.join(", ") };
    row(s, "inputs", &escape_html(&inputs));
    row(s, "read", &format!("{} file(s), {}, {} record(s)", r.files, human_bytes(r.bytes), r.records));
    let span = match (r.engine.first_event, r.engine.last_event) {
        (Some(a), Some(b)) => format!("{a} .. {b} ({})", Span(b.0 - a.0)),
        _ => "no events".into(),
    };
    row(s, "time span", &span);
    row(s, "events", &format!("{} sign-in event(s) decoded", r.events));
    let skipped = if r.skipped.is_empty() {
        "0".to_string()
    } else {
        let parts: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        format!("{} ({})", r.skipped_total(), parts.join(", "))
    };
    row(s, "skipped", &escape_html(&skipped));
    let mut rejected = r.rejected.to_string();
    for rej in &r.first_rejections {
        let _ = write!(rejected, "<br><code>{}</code>", escape_html(rej));
    }
    if r.rejected > r.first_rejections.len() as u64 {
        let _ = write!(
            rejected,
            "<br>... and {} more (--rejects FILE lists them all)",
            r.rejected - r.first_rejections.len() as u64
        );
    }
    row(s, "rejected", &rejected);
    if r.out_of_range > 0 {
        row(s, "out of range", &format!("{} event(s) outside --since/--until", r.out_of_range));
    }
    if r.engine.reordered + r.engine.late + r.engine.forced_releases > 0 {
        row(
            s,
            "ordering",
            &format!(
                "{} put back in order, {} later than the lateness bound, {} released early (reorder buffer full)",
                r.engine.reordered, r.engine.late, r.engine.forced_releases
            ),
        );
    }
    for d in r.detectors.iter().filter(|d| d.unlocated > 0) {
        row(s, "unlocated", &format!("rule {} could not place {} sign-in(s)", escape_html(&d.rule), d.unlocated));
    }
    for d in r.detectors.iter().filter(|d| d.evicted_keys > 0) {
        row(
            s,
            "saturated",
            &format!("rule {} dropped {} tracked key(s) at its max_keys cap", escape_html(&d.rule), d.evicted_keys),
        );
    }
    row(s, "findings", &format!("{} closed finding(s)", r.findings.total));
    s.push_str("</table>");
    let notes = cut_notes(c);
    if !notes.is_empty() {
        s.push_str(
            r#"<div class="note"><b>What the report's memory caps left out</b> (the counts above are whole):<ul>"#,
        );
        for n in notes {
            let _ = write!(s, "<li>{n}</li>");
        }
        s.push_str("</ul></div>");
    }
    s.push_str("</section>");
}

/// Sentences for every cap that cut something.
fn cut_notes(c: &Collector) -> Vec<String> {
    use super::activity::*;
    let k = &c.activity.cuts;
    let mut v = Vec::new();
    if c.book.left_out > 0 {
        v.push(format!(
            "{} finding(s) beyond the {MAX_FINDINGS} most severe are counted but not listed",
            c.book.left_out
        ));
    }
    if k.stories_untracked > 0 {
        v.push(format!("{} account(s) in findings beyond the first {MAX_STORIES} have no story", k.stories_untracked));
    }
    if k.story_events_dropped > 0 {
        v.push(format!(
            "{} sign-in(s) after the first {MAX_STORY_EVENTS} of an account's story are not kept",
            k.story_events_dropped
        ));
    }
    if k.places_unremembered > 0 {
        v.push(format!("{} sign-in(s) show no place: more than {MAX_PLACES} distinct places", k.places_unremembered));
    }
    if k.countries_other > 0 {
        v.push(format!(
            "{} sign-in(s) counted under other countries: more than {MAX_COUNTRIES} distinct countries",
            k.countries_other
        ));
    }
    if k.names_cut > 0 {
        v.push(format!("{} name(s) longer than {MAX_NAME_BYTES} bytes were cut", k.names_cut));
    }
    v
}

fn row(s: &mut String, k: &str, v: &str) {
    let _ = write!(s, "<tr><th>{k}</th><td>{v}</td></tr>");
}

fn timeline(s: &mut String, c: &Collector, groups: &[Group]) {
    s.push_str(r#"<section id="timeline"><h2>Timeline</h2>"#);
    let (stored, buckets) = c.activity.buckets();
    match svg::timeline(stored, buckets, groups) {
        Some((chart, width)) => {
            let _ = write!(
                s,
                r#"<p class="legend">{} events, per {width} (UTC): <i class="ok"></i> sign-ins that succeeded <i class="fail"></i> failed <i class="other"></i> other activity. Below: each finding from first to last seen, coloured by severity; click one to read it.</p>{chart}"#,
                c.activity.events
            );
        }
        None => s.push_str("<p>No events.</p>"),
    }
    s.push_str("</section>");
}

fn findings_section(s: &mut String, facts: &RunFacts<'_>, c: &Collector, groups: &[Group]) {
    let _ = write!(
        s,
        r#"<section id="findings"><h2>Cases and their findings, most severe first</h2><p class="legend">{} finding(s) in {} case(s): a case is one attack, the findings it caused under it. By detector: {}.</p>"#,
        facts.run.findings.total,
        groups.len(),
        escape_html(&by_detector(&facts.run.findings))
    );
    let findings = &c.book.findings;
    for g in groups {
        let _ = write!(
            s,
            r#"<article class="case" id="{}"><h3><span class="sev" style="background:{}">{}</span> {}</h3><p class="meta">"#,
            g.anchor,
            svg::severity_colour(g.severity),
            g.severity,
            escape_html(&g.story)
        );
        if !g.accounts.is_empty() {
            let links: Vec<String> = g.accounts.iter().map(|a| account_link(c, a)).collect();
            let _ = write!(s, "account {} · ", links.join(", "));
        }
        if !g.addresses.is_empty() {
            let list: Vec<String> = g.addresses.iter().map(|a| format!("<code>{}</code>", escape_html(a))).collect();
            let _ = write!(s, "address {} · ", list.join(", "));
        }
        let _ = write!(s, "first seen {} · last seen {}</p>", g.first_seen, g.last_seen);
        for &i in &g.findings {
            let f = &findings[i];
            let _ = write!(
                s,
                r#"<details><summary>{} · rule <code>{}</code> · {} event(s) · detected at {} · incident <code>{}</code></summary><table class="evidence">"#,
                escape_html(f.detector),
                escape_html(&f.rule),
                f.count,
                f.detected_at,
                escape_html(&f.incident_id)
            );
            let mut rows = Vec::new();
            flatten("", &f.evidence, &mut rows);
            let total = rows.len();
            for (k, v) in rows.into_iter().take(MAX_EVIDENCE_ROWS) {
                let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", escape_html(&k), escape_html(&v));
            }
            if total > MAX_EVIDENCE_ROWS {
                let _ = write!(
                    s,
                    "<tr><th></th><td>... and {} more (the JSON-lines output has them all)</td></tr>",
                    total - MAX_EVIDENCE_ROWS
                );
            }
            s.push_str("</table></details>");
        }
        s.push_str("</article>");
    }
    if groups.is_empty() {
        s.push_str("<p>No findings.</p>");
    }
    s.push_str("</section>");
}

fn by_detector(t: &FindingTally) -> String {
    let parts: Vec<String> =
        t.by_detector.iter().map(|(d, sevs)| format!("{d} {}", sevs.values().sum::<u64>())).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Evidence as (path, text) rows: nested objects by dotted path, lists of plain values joined and cut.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Value::Array(list) if list.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in list.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Array(list) => {
            let mut items: Vec<String> = list.iter().take(MAX_LIST_ITEMS).map(plain).collect();
            if list.len() > MAX_LIST_ITEMS {
                items.push(format!("... ({} in all)", list.len()));
            }
            out.push((prefix.to_string(), items.join(", ")));
        }
        other => out.push((prefix.to_string(), plain(other))),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

fn offenders(s: &mut String, t: &FindingTally, c: &Collector) {
    s.push_str(r#"<section id="offenders"><h2>Top offenders</h2><div class="cols">"#);
    top_table(
        s,
        "Addresses in findings",
        "IPv6 addresses are grouped by prefix (--ipv6-prefix), as the rules group them.",
        &t.ips,
    );
    top_table(s, "Accounts in findings", "", &t.users);
    let (countries, other) = c.activity.countries();
    s.push_str(r#"<div><h3>Countries by failed sign-ins</h3><table class="list"><tr><th>country</th><th>failed</th><th>succeeded</th></tr>"#);
    for (name, n) in countries.iter().filter(|(_, n)| n.failure > 0).take(TOP_N) {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", escape_html(name), n.failure, n.success);
    }
    if other.failure + other.success > 0 {
        let _ =
            write!(s, "<tr><td><i>other countries</i></td><td>{}</td><td>{}</td></tr>", other.failure, other.success);
    }
    s.push_str(
        "</table><p class=\"legend\">All sign-ins of the run, by the country the log names.</p></div></div></section>",
    );
}

fn top_table(s: &mut String, title: &str, note: &str, map: &HashMap<String, (u64, u64)>) {
    let _ = write!(
        s,
        r#"<div><h3>{title}</h3><table class="list"><tr><th>{}</th><th>findings</th><th>events</th></tr>"#,
        if title.starts_with("Addr") { "address" } else { "account" }
    );
    for (k, f, e) in FindingTally::top(map, TOP_N) {
        let _ = write!(s, "<tr><td><code>{}</code></td><td>{f}</td><td>{e}</td></tr>", escape_html(k));
    }
    s.push_str("</table>");
    if !note.is_empty() {
        let _ = write!(s, r#"<p class="legend">{note}</p>"#);
    }
    s.push_str("</div>");
}

fn world(s: &mut String, c: &Collector, groups: &[Group], findings: &[Finding]) {
    let mut places: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for account in accounts_in(groups, findings) {
        if let Some(story) = c.activity.story(&account) {
            for e in story.entries.iter().filter(|e| e.place != NO_PLACE) {
                let p = places.entry(e.place).or_default();
                match e.outcome {
                    Outcome::Success => p.0 += 1,
                    Outcome::Failure => p.1 += 1,
                    _ => {}
                }
            }
        }
    }
    let mut points: Vec<Point> = Vec::new();
    let mut unplaced = 0u64;
    // Loaded only when there is a place to resolve: parsing the table costs a CloudTrail replay (no city
    // names) seconds for nothing.
    let gazetteer = if places.is_empty() { None } else { Some(Gazetteer::builtin()) };
    for (place, (ok, failed)) in places {
        let Some(gazetteer) = gazetteer else { break };
        let Some((city, country)) = c.activity.place(place) else { continue };
        let none = |x: &str| (!x.is_empty()).then_some(x.to_string());
        match gazetteer.resolve(none(city).as_deref(), none(country).as_deref()) {
            Resolution::Found(l) => match points.iter_mut().find(|p| p.label == l.label) {
                Some(p) => {
                    p.success += ok;
                    p.failure += failed;
                }
                None => points.push(Point { lat: l.lat, lon: l.lon, label: l.label, success: ok, failure: failed }),
            },
            _ => unplaced += ok + failed,
        }
    }
    points.sort_by(|a, b| (b.success + b.failure).cmp(&(a.success + a.failure)).then(a.label.cmp(&b.label)));
    let mut arcs: Vec<Arc> = Vec::new();
    for g in groups {
        for &i in &g.findings {
            if findings[i].detector == "impossible_travel" {
                arcs.extend(map::arcs_from_evidence(&findings[i].evidence, &g.anchor));
            }
        }
    }
    let _ = write!(
        s,
        r#"<section id="map"><h2>Where from</h2><p class="legend">Sign-in places of the accounts in findings (<i class="okdot"></i> mostly succeeded, <i class="faildot"></i> mostly failed; size by count), and impossible-travel hops (dashed, with distance, time and speed; numbered as in the table below). {} place(s), {} hop(s){}.</p>{}"#,
        points.len(),
        arcs.len(),
        if unplaced > 0 {
            format!(", {unplaced} sign-in(s) at places the gazetteer could not resolve")
        } else {
            String::new()
        },
        map::render(&points, &arcs)
    );
    if !arcs.is_empty() {
        s.push_str(r#"<table class="list"><tr><th>hop</th><th>from</th><th>to</th><th>distance</th><th>time</th><th>speed</th><th>finding</th></tr>"#);
        for (n, a) in arcs.iter().take(map::MAX_ARCS).enumerate() {
            let speed =
                a.speed_kmh.map_or_else(|| "no time between them".to_string(), |v| format!("{} km/h", thousands_f(v)));
            let _ = write!(
                s,
                r##"<tr><td>{}</td><td>{}</td><td>{}</td><td>{} km</td><td>{}</td><td>{speed}</td><td><a href="#{}">{}</a></td></tr>"##,
                n + 1,
                escape_html(&a.from_label),
                escape_html(&a.to_label),
                thousands_f(a.distance_km),
                escape_html(&a.elapsed),
                a.anchor,
                a.anchor
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</section>");
}

/// Accounts named by findings (the name, else the sub), in the order of the groups (most severe first).
fn accounts_in(groups: &[Group], findings: &[Finding]) -> Vec<String> {
    let mut seen = Vec::new();
    for g in groups {
        for &i in &g.findings {
            if let Some(a) = findings[i].user.as_ref().or(findings[i].user_sub.as_ref()) {
                if !seen.contains(a) {
                    seen.push(a.clone());
                }
            }
        }
    }
    seen
}

/// The account's name, linked to its story when it is shown.
fn account_link(c: &Collector, account: &str) -> String {
    match c.activity.story(account) {
        Some(_) => {
            format!(r##"<a href="#acct-{:016x}"><code>{}</code></a>"##, anchor_hash(account), escape_html(account))
        }
        None => format!("<code>{}</code>", escape_html(account)),
    }
}

/// A stable anchor for an account (its name may hold any character).
fn anchor_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn accounts(s: &mut String, c: &Collector, groups: &[Group], findings: &[Finding]) {
    s.push_str(r#"<section id="accounts"><h2>Accounts in findings: their sign-ins</h2><p class="legend">Each account's sign-ins in time order; a run of alike sign-ins (same kind, outcome, address and place) is one row with its count.</p>"#);
    let names: Vec<String> =
        accounts_in(groups, findings).into_iter().filter(|a| c.activity.story(a).is_some()).collect();
    for (n, account) in names.iter().enumerate() {
        let Some(story) = c.activity.story(account) else { continue };
        if n >= MAX_STORIES_SHOWN {
            let rest: Vec<String> = names[n..].iter().map(|a| format!("<code>{}</code>", escape_html(a))).collect();
            let _ = write!(s, "<p>Not shown ({}): {}</p>", rest.len(), rest.join(", "));
            break;
        }
        story_block(s, c, account, story, groups, findings);
    }
    if names.is_empty() {
        s.push_str("<p>No account is named by a finding.</p>");
    }
    s.push_str("</section>");
}

fn story_block(s: &mut String, c: &Collector, account: &str, story: &Story, groups: &[Group], findings: &[Finding]) {
    let _ = write!(
        s,
        r#"<article class="story" id="acct-{:016x}"><h3>{}</h3><p class="meta">found: "#,
        anchor_hash(account),
        escape_html(account)
    );
    let mut links = Vec::new();
    for g in groups {
        if g.findings
            .iter()
            .any(|&i| findings[i].user.as_deref() == Some(account) || findings[i].user_sub.as_deref() == Some(account))
        {
            links.push(format!(
                r##"<a href="#{}">{} {}</a>"##,
                g.anchor,
                g.severity,
                escape_html(findings[g.findings[0]].detector)
            ));
        }
    }
    let _ = write!(s, "{}</p>", links.join(", "));
    if story.entries.is_empty() {
        s.push_str("<p>No sign-in of this name was seen after the finding named it.</p></article>");
        return;
    }
    if story.earlier_forgotten {
        s.push_str(
            r#"<p class="legend">Earlier sign-ins came before a finding named the account and were not all kept.</p>"#,
        );
    }
    s.push_str(r#"<table class="list"><tr><th>time (UTC)</th><th>what</th><th>outcome</th><th>address</th><th>place</th><th>count</th></tr>"#);
    let runs = fold_runs(&story.entries);
    for (e, last, n) in runs.iter().take(MAX_STORY_ROWS) {
        let when = if *n > 1 { format!("{} .. {}", e.time, last) } else { e.time.to_string() };
        let place = place_text(c, e.place);
        let _ = write!(
            s,
            r#"<tr class="{}"><td>{when}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{n}</td></tr>"#,
            outcome_class(e.outcome),
            e.kind.as_str(),
            e.outcome.as_str(),
            e.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            escape_html(&place),
        );
    }
    s.push_str("</table>");
    if runs.len() > MAX_STORY_ROWS {
        let _ = write!(
            s,
            "<p class=\"legend\">... and {} more row(s) (the CSV timeline has them all).</p>",
            runs.len() - MAX_STORY_ROWS
        );
    }
    if story.later_dropped > 0 {
        let _ = write!(s, "<p class=\"legend\">{} later sign-in(s) not kept.</p>", story.later_dropped);
    }
    s.push_str("</article>");
}

/// Consecutive alike entries as (first, last time, count).
fn fold_runs(entries: &[Entry]) -> Vec<(Entry, Timestamp, u64)> {
    let mut runs: Vec<(Entry, Timestamp, u64)> = Vec::new();
    for e in entries {
        match runs.last_mut() {
            Some((f, last, n)) if f.kind == e.kind && f.outcome == e.outcome && f.ip == e.ip && f.place == e.place => {
                *last = e.time;
                *n += 1;
            }
            _ => runs.push((*e, e.time, 1)),
        }
    }
    runs
}

/// "City, Country" of an entry, or "-".
pub fn place_text(c: &Collector, place: u32) -> String {
    match c.activity.place(place) {
        Some((city, "")) => city.to_string(),
        Some(("", country)) => country.to_string(),
        Some((city, country)) => format!("{city}, {country}"),
        None => "-".to_string(),
    }
}

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "ok",
        Outcome::Failure => "fail",
        _ => "other",
    }
}

fn rules(s: &mut String, facts: &RunFacts<'_>) {
    let _ = write!(
        s,
        r#"<section id="rules"><h2>Rules</h2><p class="legend">The rules of this run (authwatch {}), with their thresholds.</p><table class="list"><tr><th>rule</th><th>detector</th><th>key</th><th>window</th><th>threshold</th><th>severity</th><th>counts</th></tr>"#,
        env!("CARGO_PKG_VERSION")
    );
    for sp in &facts.specs.specs {
        let mut esc: Vec<String> = sp.escalation.iter().map(|(n, sev)| format!("{sev} at {n}")).collect();
        esc.extend(sp.params.describe_severities());
        let sev =
            if esc.is_empty() { sp.severity.to_string() } else { format!("{} ({})", sp.severity, esc.join(", ")) };
        let outcomes: Vec<&str> = sp.outcomes.iter().map(|o| o.as_str()).collect();
        let kinds: Vec<&str> = sp.kinds.iter().map(|k| k.as_str()).collect();
        let _ = write!(
            s,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td></tr>",
            escape_html(&sp.id),
            if sp.enabled { "" } else { " (disabled)" },
            sp.detector.id(),
            sp.key.as_str(),
            sp.window,
            sp.threshold,
            escape_html(&sev),
            outcomes.join("/"),
            kinds.join("/")
        );
    }
    s.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_makes_markup_text() {
        assert_eq!(escape_html("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(escape_html(r#""'&"#), "&quot;&#39;&amp;");
        assert_eq!(escape_html("plain"), "plain");
        assert_eq!(escape_html("a\u{202E}b\x1b"), "a\\u{202e}b\\u{1b}");
        let long = "x".repeat(MAX_VALUE_CHARS + 10);
        assert!(escape_html(&long).ends_with("…[cut]"));
    }

    #[test]
    fn evidence_flattens_with_paths_and_cut_lists() {
        let v = serde_json::json!({"a": 1, "from": {"city": "Paris"}, "ids": (0..20).collect::<Vec<u32>>()});
        let mut rows = Vec::new();
        flatten("", &v, &mut rows);
        assert!(rows.contains(&("from.city".into(), "Paris".into())));
        let ids = rows.iter().find(|(k, _)| k == "ids").expect("ids row");
        assert!(ids.1.ends_with("... (20 in all)"), "{}", ids.1);
    }
}
