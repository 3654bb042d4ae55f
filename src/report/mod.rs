//! The forensic report of a replay (`--report FILE.html`, `--report-csv DIR`): one self-contained HTML file
//! and CSV files, drawn from the same data as replay's summary.
//!
//! What feeds it: the replay's [`ReplayReport`] (the run's counts, the same figures as the summary), every
//! accepted event through [`Collector::observe`] (an aggregate, [`activity::Activity`], never one row per
//! event) and every finding update through [`ReportSink`], a [`Sink`] beside JSON lines and the summary's
//! tally. Findings are shown in [`Group`]s, most severe first: one group per case (`crate::correlate`),
//! with its story and every finding it holds; with cases off, one group per finding.

pub mod activity;
pub mod csv;
pub mod html;
pub mod map;
pub mod svg;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use std::collections::BTreeMap;

use crate::correlate::{CaseRecord, CaseStatus, Merges};
use crate::event::SignInEvent;
use crate::finding::{Finding, Severity, Status};
use crate::replay::ReplayReport;
use crate::sink::{Flushed, Sink, SinkError};
use crate::spec::SpecSet;
use crate::time::Timestamp;

pub use activity::Activity;
pub use html::escape_html;

/// Findings kept with their evidence (the most severe, then the earliest): the summary still counts every
/// one, and the report says how many were left out.
pub const MAX_FINDINGS: usize = 1_000;

/// Closed findings kept for the report (see [`MAX_FINDINGS`]).
#[derive(Debug, Default)]
pub struct FindingBook {
    pub findings: Vec<Finding>,
    /// Closed findings not kept because the book was full of more severe ones.
    pub left_out: u64,
    /// Once full: the least severity in the book (a finding no more severe is left out without a scan).
    floor: Option<Severity>,
}

impl FindingBook {
    fn keep(&mut self, f: &Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f.clone());
            return;
        }
        self.left_out += 1;
        if self.floor.is_some_and(|floor| f.severity <= floor) {
            return;
        }
        // A more severe finding takes the place of the latest least severe one. Each swap raises a
        // severity, so there are at most three per kept finding: the scans stay bounded.
        let weakest = self.findings.iter().enumerate().min_by_key(|(i, g)| (g.severity, std::cmp::Reverse(*i)));
        if let Some((i, g)) = weakest {
            if g.severity < f.severity {
                self.findings[i] = f.clone();
            }
        }
        self.floor = self.findings.iter().map(|g| g.severity).min();
    }
}

/// Closed cases kept for the report (the summary counts every one).
pub const MAX_CASES: usize = 10_000;

/// The cases the findings belong to: each closed case's last record, and where merged cases went.
#[derive(Debug, Default)]
pub struct CaseBook {
    pub closed: BTreeMap<String, CaseRecord>,
    merges: Merges,
}

impl CaseBook {
    fn take(&mut self, c: &CaseRecord) {
        match c.status {
            CaseStatus::Closed if self.closed.len() < MAX_CASES => {
                self.closed.insert(c.case_id.clone(), c.clone());
            }
            CaseStatus::Merged => self.merges.note(c),
            _ => {}
        }
    }

    /// The case a finding's case id ended up in, following merges.
    pub fn final_id(&self, id: &str) -> String {
        self.merges.final_id(id)
    }
}

/// Everything the report gathers while a replay runs.
#[derive(Default)]
pub struct Collector {
    pub activity: Activity,
    pub book: FindingBook,
    pub cases: CaseBook,
}

impl Collector {
    pub fn new() -> Collector {
        Collector::default()
    }

    /// Takes one accepted event (the replay's event observer).
    pub fn observe(&mut self, ev: &SignInEvent) {
        self.activity.observe(ev);
    }

    /// Takes one finding update: the accounts it names get a story from now on; closed findings are kept.
    pub fn finding(&mut self, f: &Finding) {
        // The account as the finding names it: the user name when known, else the sub (as events key it).
        if let Some(account) = f.user.as_deref().or(f.user_sub.as_deref()) {
            self.activity.flag(account);
        }
        if f.status == Status::Closed {
            self.book.keep(f);
        }
    }
}

/// The report's [`Sink`]: shares the [`Collector`] with the event observer of the same replay.
pub struct ReportSink<'a>(pub &'a RefCell<Collector>);

impl Sink for ReportSink<'_> {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        self.0.borrow_mut().finding(f);
        Ok(())
    }

    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        self.0.borrow_mut().cases.take(c);
        Ok(())
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        Ok(Flushed::Nothing)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Findings shown together: a case, or one finding with cases off.
#[derive(Debug, Clone)]
pub struct Group {
    /// Anchor id in the HTML (`case-N`), the timeline links to it.
    pub anchor: String,
    pub severity: Severity,
    /// One line: what happened.
    pub story: String,
    /// Accounts and addresses involved.
    pub accounts: Vec<String>,
    pub addresses: Vec<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Indices into the report's findings.
    pub findings: Vec<usize>,
}

/// The groups of the findings, most severe first (then earliest): one per case, its findings in time
/// order; a finding with no case kept is a group of its own.
pub fn groups(findings: &[Finding], cases: &CaseBook) -> Vec<Group> {
    let mut by_case: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        match f.case_id.as_deref().map(|id| cases.final_id(id)).filter(|id| cases.closed.contains_key(id)) {
            Some(id) => by_case.entry(id).or_default().push(i),
            None => groups.push(Group {
                anchor: String::new(),
                severity: f.severity,
                story: f.summary.clone(),
                accounts: f.user.iter().cloned().collect(),
                addresses: f.ip.iter().cloned().collect(),
                first_seen: f.first_seen,
                last_seen: f.last_seen,
                findings: vec![i],
            }),
        }
    }
    for (id, mut members) in by_case {
        let Some(c) = cases.closed.get(&id) else { continue };
        members.sort_by_key(|&i| (findings[i].first_seen, findings[i].detected_at, i));
        groups.push(Group {
            anchor: String::new(),
            severity: c.severity,
            story: format!("{} (case {})", c.story, c.case_id),
            accounts: c.users.clone(),
            addresses: c.addresses.iter().map(|a| a.ip.clone()).collect(),
            first_seen: c.first_seen,
            last_seen: c.last_seen,
            findings: members,
        });
    }
    groups.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(a.first_seen.cmp(&b.first_seen)).then(a.findings.cmp(&b.findings))
    });
    for (n, g) in groups.iter_mut().enumerate() {
        g.anchor = format!("case-{}", n + 1);
    }
    groups
}

/// What the report is about, besides what the collector gathered.
pub struct RunFacts<'a> {
    pub command: &'a str,
    pub inputs: &'a [PathBuf],
    pub run: &'a ReplayReport,
    pub specs: &'a SpecSet,
}

/// Where the report goes.
#[derive(Debug, Clone, Default)]
pub struct ReportTargets {
    pub html: Option<PathBuf>,
    pub csv_dir: Option<PathBuf>,
}

impl ReportTargets {
    pub fn wanted(&self) -> bool {
        self.html.is_some() || self.csv_dir.is_some()
    }

    /// Creates the report file and the CSV directory before the replay, so a path that cannot be written
    /// ends the run at once rather than after an hour of reading.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.html {
            std::fs::File::create(path).with_context(|| format!("cannot create the report {}", path.display()))?;
        }
        if let Some(dir) = &self.csv_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }
}

/// What [`write`] wrote: each file with its size, and the seconds it took to build and write them.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<(PathBuf, u64)>,
    pub secs: f64,
}

/// Writes the HTML report and the CSV files asked for.
pub fn write(targets: &ReportTargets, facts: &RunFacts<'_>, collector: &mut Collector) -> anyhow::Result<Written> {
    let started = Instant::now();
    collector.activity.sort_stories();
    let mut written = Written::default();
    if let Some(path) = &targets.html {
        let page = html::render(facts, collector);
        write_file(path, page.as_bytes())?;
        written.files.push((path.clone(), page.len() as u64));
    }
    if let Some(dir) = &targets.csv_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text) in csv::render(collector) {
            let path = dir.join(name);
            write_file(&path, text.as_bytes())?;
            written.files.push((path, text.len() as u64));
        }
    }
    written.secs = started.elapsed().as_secs_f64();
    Ok(written)
}

/// The summary's line about the report: each file written, with its size and the time taken.
pub fn written_line(w: &Written) -> String {
    let files: Vec<String> = w
        .files
        .iter()
        .map(|(p, size)| {
            format!(
                "{} ({})",
                crate::sanitize::for_terminal(&p.display().to_string()),
                crate::sink::summary::human_bytes(*size)
            )
        })
        .collect();
    format!("report        {} in {:.2} s\n", files.join(", "), w.secs)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write the report {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(sev: Severity, first: i64) -> Finding {
        Finding {
            detector: "failed_login_burst",
            severity: sev,
            user: Some("u".into()),
            user_sub: None,
            ip: None,
            user_pool_id: None,
            region: None,
            account: None,
            first_seen: Timestamp(first),
            last_seen: Timestamp(first),
            detected_at: Timestamp(first),
            count: 1,
            summary: "s".into(),
            evidence: serde_json::Value::Null,
            incident_id: format!("{first}"),
            case_id: None,
            rule: "r".into(),
            status: Status::Closed,
        }
    }

    #[test]
    fn groups_put_the_most_severe_first_then_the_earliest() {
        let fs = vec![finding(Severity::Medium, 1), finding(Severity::Critical, 5), finding(Severity::Critical, 2)];
        let g = groups(&fs, &CaseBook::default());
        let order: Vec<usize> = g.iter().map(|g| g.findings[0]).collect();
        assert_eq!(order, vec![2, 1, 0]);
        assert_eq!(g[0].anchor, "case-1");
    }

    #[test]
    fn a_case_is_one_group_of_its_findings_merged_cases_included() {
        let mut fs = vec![finding(Severity::Medium, 1), finding(Severity::High, 5), finding(Severity::Low, 9)];
        fs[0].case_id = Some("c1".into());
        fs[1].case_id = Some("c2".into());
        fs[2].case_id = Some("c3".into());
        let mut cases = CaseBook::default();
        let record = |id: &str, status: CaseStatus, into: Option<&str>| crate::correlate::CaseRecord {
            users: vec!["ana".into()],
            users_count: 1,
            merged_into: into.map(str::to_string),
            ..crate::correlate::CaseRecord::example(id, status, Severity::Critical, Timestamp(1), Timestamp(9))
        };
        cases.take(&record("c2", CaseStatus::Merged, Some("c1")));
        cases.take(&record("c1", CaseStatus::Closed, None));
        let g = groups(&fs, &cases);
        assert_eq!(g.len(), 2, "{g:#?}");
        assert_eq!(g[0].findings, vec![0, 1], "the case and the one merged into it");
        assert_eq!(g[0].severity, Severity::Critical);
        assert!(g[0].story.starts_with("stuffing (case c1)"));
        assert_eq!(g[1].findings, vec![2], "a finding whose case was not kept stands alone");
    }

    #[test]
    fn a_full_book_keeps_the_most_severe_and_counts_what_it_left_out() {
        let mut b = FindingBook::default();
        for i in 0..MAX_FINDINGS {
            b.keep(&finding(Severity::Low, i as i64));
        }
        b.keep(&finding(Severity::High, 99_999));
        b.keep(&finding(Severity::Low, 100_000));
        assert_eq!(b.findings.len(), MAX_FINDINGS);
        assert_eq!(b.left_out, 2);
        assert!(b.findings.iter().any(|f| f.severity == Severity::High));
    }
}
