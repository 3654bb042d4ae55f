//! The readable summary of a replay, for standard error. Every log-supplied value is sanitised.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::Serialize;

use super::{Flushed, Sink, SinkError};
use crate::correlate::{CaseRecord, CaseStatus, Merges};
use crate::finding::{Finding, Severity, Status};
use crate::replay::ReplayReport;
use crate::sanitize::for_terminal;
use crate::time::Span;

/// Keys listed under "top offending".
const TOP_N: usize = 5;
/// Closed cases kept for the summary (all are counted): the summary lists the worst of them.
pub const CASES_KEPT: usize = 10_000;
/// Cases listed in the summary, worst first; the rest are counted (`--cases FILE` has them all).
const CASES_LISTED: usize = 25;
/// Findings listed under each case in the summary.
const FINDINGS_PER_CASE: usize = 6;

/// Counts of closed findings, for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindingTally {
    pub total: u64,
    /// detector → severity → count
    pub by_detector: BTreeMap<&'static str, BTreeMap<Severity, u64>>,
    /// Address → (findings, events in them)
    pub ips: HashMap<String, (u64, u64)>,
    pub users: HashMap<String, (u64, u64)>,
    /// Closed cases (their last record), in closing order, at most [`CASES_KEPT`]; `cases_closed` counts all.
    pub cases: Vec<CaseRecord>,
    pub cases_closed: u64,
    /// Notifications the cases would page with: openings and escalations.
    pub case_openings: u64,
    pub case_escalations: u64,
    /// Where merged cases went.
    pub merges: Merges,
    /// Case id (as the finding carried it) → closed findings' one-line forms (the first few) and how many.
    pub case_findings: HashMap<String, (Vec<String>, u64)>,
}

impl FindingTally {
    pub fn add(&mut self, f: &Finding) {
        self.total += 1;
        if let Some(id) = &f.case_id {
            let e = self.case_findings.entry(id.clone()).or_default();
            e.1 += 1;
            if e.0.len() < FINDINGS_PER_CASE {
                e.0.push(format!("{} {}: {}", f.rule, f.severity, for_terminal(&f.summary)));
            }
        }
        *self.by_detector.entry(f.detector).or_default().entry(f.severity).or_default() += 1;
        if let Some(ip) = &f.ip {
            let e = self.ips.entry(ip.clone()).or_default();
            e.0 += 1;
            e.1 += f.count;
        }
        if let Some(u) = &f.user {
            let e = self.users.entry(u.clone()).or_default();
            e.0 += 1;
            e.1 += f.count;
        }
    }

    /// Counts a case update and keeps closed cases.
    pub fn add_case(&mut self, c: &CaseRecord) {
        match c.status {
            CaseStatus::Open => self.case_openings += 1,
            CaseStatus::Escalated => self.case_escalations += 1,
            CaseStatus::Merged => self.merges.note(c),
            CaseStatus::Closed => {
                self.cases_closed += 1;
                if self.cases.len() < CASES_KEPT {
                    self.cases.push(c.clone());
                }
            }
        }
    }

    /// The `n` keys with most findings (then most events, then by name).
    pub fn top(map: &HashMap<String, (u64, u64)>, n: usize) -> Vec<(&str, u64, u64)> {
        let mut v: Vec<(&str, u64, u64)> = map.iter().map(|(k, (f, c))| (k.as_str(), *f, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// The tally is the summary's sink: it counts closed incidents.
impl Sink for FindingTally {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        if f.status == Status::Closed {
            self.add(f);
        }
        Ok(())
    }

    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        self.add_case(c);
        Ok(())
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        Ok(Flushed::Nothing)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

pub fn render(r: &ReplayReport) -> String {
    let mut s = String::new();
    let secs = r.elapsed_secs.max(1e-9);
    let _ = writeln!(s, "authwatch replay summary");
    let _ = writeln!(
        s,
        "  input       {} file(s), {}: {} line(s) or document(s) holding {} record(s)",
        r.files,
        human_bytes(r.bytes),
        r.records,
        r.records_within()
    );
    let _ = writeln!(s, "  decoded     {} event(s), {} of them sign-ins", r.events, r.sign_ins);
    if r.creation_date_disagreements > 0 {
        let _ = writeln!(
            s,
            "  event time  {} event(s) whose creationDate is more than a day from eventTimestamp: eventTimestamp used",
            r.creation_date_disagreements
        );
    }
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
    for d in r.detectors.iter() {
        let Some(warm) = d.warming_up else { continue };
        let state = if r.engine.last_event.is_some_and(|last| last >= warm) { "learned" } else { "was still learning" };
        let _ = writeln!(
            s,
            "  warm-up     rule {} {state} the pool's normal until {warm} and was quiet before (--baseline FILE starts with history)",
            d.rule
        );
    }
    for d in r.detectors.iter().filter(|d| d.evicted_keys > 0) {
        let _ = writeln!(
            s,
            "  SATURATED   rule {} dropped {} tracked key(s) at its caps (max_keys; for a pool-wide rule also its 64 pools and the max_ params of its sets): raise them or expect missed detections",
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
    cases(&mut s, r);
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

/// The cases, worst first, each with its story and the findings under it.
fn cases(s: &mut String, r: &ReplayReport) {
    let Some(stats) = &r.cases else { return };
    let t = &r.findings;
    let mut by_sev: BTreeMap<Severity, u64> = BTreeMap::new();
    for c in &t.cases {
        *by_sev.entry(c.severity).or_default() += 1;
    }
    let parts: Vec<String> =
        Severity::ALL.iter().rev().filter_map(|sev| by_sev.get(sev).map(|n| format!("{n} {sev}"))).collect();
    let _ = writeln!(
        s,
        "cases         {} from {} finding(s) ({}); {} page(s): {} opening(s), {} escalation(s); {} merged into an older case",
        t.cases_closed,
        t.total,
        parts.join(", "),
        t.case_openings + t.case_escalations,
        t.case_openings,
        t.case_escalations,
        stats.merged
    );
    if stats.closed_early > 0 || stats.entities_not_linked > 0 {
        let _ = writeln!(
            s,
            "  SATURATED   {} case(s) closed early at limits.max_open_cases, {} entit(ies) not linked at limits.max_entities_per_case",
            stats.closed_early, stats.entities_not_linked
        );
    }
    // Findings by the case they ended up in.
    let mut under: HashMap<String, Vec<&(Vec<String>, u64)>> = HashMap::new();
    for (id, lines) in &t.case_findings {
        under.entry(t.merges.final_id(id)).or_default().push(lines);
    }
    let mut order: Vec<&CaseRecord> = t.cases.iter().collect();
    order.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(a.opened_at.cmp(&b.opened_at)).then(a.case_id.cmp(&b.case_id))
    });
    for c in order.iter().take(CASES_LISTED) {
        let _ = writeln!(
            s,
            "  {:<8} case {} {} .. {}  {}",
            c.severity.as_str(),
            c.case_id,
            c.first_seen,
            c.last_seen,
            for_terminal(&c.story)
        );
        let groups = under.get(c.case_id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let total: u64 = groups.iter().map(|g| g.1).sum();
        let lines: Vec<&String> = groups.iter().flat_map(|g| g.0.iter()).collect();
        for line in lines.iter().take(FINDINGS_PER_CASE) {
            let _ = writeln!(s, "             {line}");
        }
        let shown = lines.len().min(FINDINGS_PER_CASE) as u64;
        if total > shown {
            let _ = writeln!(s, "             ... and {} more finding(s) (--cases FILE, -o FILE)", total - shown);
        }
    }
    if t.cases.len() > CASES_LISTED {
        let _ = writeln!(
            s,
            "  ... and {} more case(s) (--cases FILE lists them all)",
            t.cases_closed - CASES_LISTED as u64
        );
    }
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
