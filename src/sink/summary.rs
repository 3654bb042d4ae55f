//! The readable summary of a replay, for standard error. Every log-supplied value is sanitised.

use std::fmt::Write;

use crate::finding::Severity;
use crate::replay::{FindingTally, ReplayReport};
use crate::sanitize::for_terminal;
use crate::time::Span;

/// Keys listed under "top offending".
const TOP_N: usize = 5;

pub fn render(r: &ReplayReport) -> String {
    let mut s = String::new();
    let secs = r.elapsed_secs.max(1e-9);
    let _ = writeln!(s, "authwatch replay summary");
    let _ = writeln!(s, "  input       {} file(s), {}, {} record(s)", r.files, human_bytes(r.bytes), r.records);
    let _ = writeln!(s, "  decoded     {} sign-in event(s)", r.events);
    if r.skipped_total() > 0 {
        let parts: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = writeln!(s, "  skipped     {} ({})", r.skipped_total(), parts.join(", "));
    } else {
        let _ = writeln!(s, "  skipped     0");
    }
    let _ = writeln!(s, "  rejected    {}", r.rejected);
    for rej in &r.first_rejections {
        let _ = writeln!(s, "              {}", for_terminal(rej));
    }
    if r.rejected > r.first_rejections.len() as u64 {
        let _ = writeln!(
            s,
            "              ... and {} more (--rejects FILE lists them all)",
            r.rejected - r.first_rejections.len() as u64
        );
    }
    if r.out_of_range > 0 {
        let _ = writeln!(s, "  out of range {} event(s) outside --since/--until", r.out_of_range);
    }
    if let (Some(first), Some(last)) = (r.engine.first_event, r.engine.last_event) {
        let _ = writeln!(s, "  time span   {first} .. {last} ({})", Span(last.0 - first.0));
    }
    if r.engine.reordered + r.engine.late + r.engine.forced_releases > 0 {
        let _ = writeln!(
            s,
            "  ordering    {} event(s) put back in order, {} later than the lateness bound, {} released early (reorder buffer full)",
            r.engine.reordered, r.engine.late, r.engine.forced_releases
        );
    }
    let unplaced: u64 = r.detectors.iter().map(|d| d.late_unplaced).sum();
    if unplaced > 0 {
        let _ = writeln!(s, "  too late    {unplaced} rule observation(s) fell behind a closed window");
    }
    for d in r.detectors.iter().filter(|d| d.unlocated > 0) {
        let _ = writeln!(
            s,
            "  unlocated   rule {} could not place {} sign-in(s): unknown or ambiguous names, private addresses, no --geoip record",
            d.rule, d.unlocated
        );
    }
    for d in r.detectors.iter().filter(|d| d.evicted_keys > 0) {
        let _ = writeln!(
            s,
            "  SATURATED   rule {} dropped {} tracked key(s) at its max_keys cap: raise max_keys or expect missed detections",
            d.rule, d.evicted_keys
        );
    }
    if !r.detectors.is_empty() {
        let keys: usize = r.detectors.iter().map(|d| d.tracked_keys).sum();
        let _ = writeln!(s, "  state       {keys} key(s) tracked at the end across {} rule(s)", r.detectors.len());
    }
    let _ = writeln!(
        s,
        "  throughput  {:.0} events/s, {}/s ({:.2} s)",
        r.events as f64 / secs,
        human_bytes((r.bytes as f64 / secs) as u64),
        secs
    );
    let _ = writeln!(s, "findings      {}", r.findings.total);
    for (det, sevs) in &r.findings.by_detector {
        let parts: Vec<String> =
            Severity::ALL.iter().rev().filter_map(|sev| sevs.get(sev).map(|n| format!("{n} {sev}"))).collect();
        let total: u64 = sevs.values().sum();
        let _ = writeln!(s, "  {det:<24} {total:>5}  ({})", parts.join(", "));
    }
    top(&mut s, "top addresses", &r.findings.ips);
    top(&mut s, "top users", &r.findings.users);
    s
}

fn top(s: &mut String, title: &str, map: &std::collections::HashMap<String, (u64, u64)>) {
    let top = FindingTally::top(map, TOP_N);
    if top.is_empty() {
        return;
    }
    let _ = writeln!(s, "{title}");
    for (k, findings, events) in top {
        let _ = writeln!(s, "  {:<40} {findings} finding(s), {events} event(s)", for_terminal(k));
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A one-line human form of a finding, for terminals.
pub fn finding_line(f: &crate::finding::Finding) -> String {
    format!("{} {:<8} {:<24} {}", f.detected_at, f.severity.as_str(), f.detector, for_terminal(&f.summary))
}
