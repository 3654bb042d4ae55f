//! `authwatch demo`: simulates a day of a mid-size user pool with every planted attack and benign
//! look-alike, replays it through the detectors, prints the findings and the summary, and scores them
//! against the ground truth.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{threads, DemoArgs, EXIT_OK, EXIT_REJECTED, EXIT_SCORE};
use crate::correlate::{CaseRecord, CaseStatus, Merges};
use crate::detect::EngineSettings;
use crate::finding::Finding;
use crate::replay::{self, ReplayConfig, ReplayHooks};
use crate::report::{self, Collector, ReportSink, RunFacts};
use crate::sanitize::for_terminal;
use crate::score;
use crate::simulate::{self, SimulateArgs};
use crate::sink::jsonl::JsonLines;
use crate::sink::{summary, Fanout, Sink};
use crate::spec::SpecSet;

pub fn run(a: &DemoArgs) -> anyhow::Result<i32> {
    a.report.targets().prepare()?;
    let scratch;
    let dir: PathBuf = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
            scratch.path().to_path_buf()
        }
    };
    let log = dir.join("demo-cognito.jsonl");
    let truth_path = dir.join("demo-truth.json");
    let sim_args = SimulateArgs {
        users: a.users,
        duration: a.duration.clone(),
        start: None,
        seed: a.seed,
        attacks: "all".into(),
        events: None,
        log_format: "cognito".into(),
        user_pool_id: "us-east-1_Demo0001".into(),
        output: Some(log.clone()),
        truth: Some(truth_path.clone()),
    };
    eprintln!(
        "authwatch demo: simulating {} of sign-ins for a pool of {} users (seed {})...",
        a.duration, a.users, a.seed
    );
    let sim = simulate::run(&sim_args)?;
    eprintln!(
        "  wrote {} events with {} planted attacks and {} benign look-alikes to {}",
        sim.events,
        sim.attacks,
        sim.lookalikes,
        log.display()
    );

    let truth: Vec<simulate::Attack> = serde_json::from_slice(
        &std::fs::read(&truth_path).with_context(|| format!("cannot read {}", truth_path.display()))?,
    )
    .context("cannot parse the ground truth")?;
    let cfg = ReplayConfig {
        inputs: vec![log],
        format: Default::default(),
        since: None,
        until: None,
        limits: Default::default(),
        threads: threads(None),
        shards: threads(None),
    };
    let specs = SpecSet::builtin();
    let mut kept = score::Kept::default();
    let targets = a.report.targets();
    let collector = RefCell::new(Collector::new());
    let mut report_sink = ReportSink(&collector);
    let mut sinks: Vec<&mut dyn Sink> = vec![&mut kept];
    if targets.wanted() {
        sinks.push(&mut report_sink);
    }
    let mut sinks = Fanout::new(sinks);
    let mut observe = |ev: &crate::event::SignInEvent| collector.borrow_mut().observe(ev);
    let observer: Option<replay::EventObserver<'_>> = if targets.wanted() { Some(&mut observe) } else { None };
    let mut on_rejection = |_: &crate::decode::Rejection| {};
    let mut on_progress = |_| {};
    let hooks = ReplayHooks { finding: &mut sinks, rejection: &mut on_rejection, progress: &mut on_progress };
    let report = replay::run_observed(&cfg, &specs, EngineSettings::default(), hooks, observer)?;
    drop(sinks);
    let score::Kept { findings, cases } = kept;

    print_cases(&findings, &cases);
    if a.keep.is_some() {
        let path = dir.join("demo-findings.jsonl");
        let mut out = JsonLines::create(Some(&path))?;
        for f in &findings {
            out.write(f)?;
        }
        out.finish()?;
        println!("findings as JSON lines: {}", path.display());
        let path = dir.join("demo-cases.jsonl");
        let mut out = JsonLines::create(Some(&path))?.for_cases();
        for c in &cases {
            out.case(c)?;
        }
        out.close()?;
        println!("cases as JSON lines: {}", path.display());
    }
    eprint!("{}", summary::render(&report));
    if targets.wanted() {
        let facts = RunFacts { command: "demo", inputs: &cfg.inputs, run: &report, specs: &specs };
        let written = report::write(&targets, &facts, &mut collector.borrow_mut())?;
        eprint!("{}", report::written_line(&written));
    }
    let s = score::score(&truth, &findings);
    println!(
        "score: {} of {} planted attacks found, {} missed, {} false alarm(s)",
        s.found.len(),
        s.attacks(),
        s.missed.len(),
        s.false_alarms.len()
    );
    for (id, dets) in &s.missed {
        println!("  missed {id}: expected {}", dets.join(", "));
    }
    for fa in &s.false_alarms {
        println!("  false alarm: {}", crate::sanitize::for_terminal(fa));
    }
    let cs = score::score_cases(&truth, &findings, &cases);
    println!(
        "pages: {:.2} case opening(s) per planted attack (1 is one page per attack), {:.2} escalation update(s) per attack, {} page(s) for no attack",
        cs.pages_per_attack(),
        cs.escalations_per_attack(),
        cs.stray_pages
    );
    for (id, pages, escalations) in cs.per_attack.iter().filter(|(_, p, _)| *p != 1) {
        println!("  {id}: {pages} case(s) opened, {escalations} escalation(s)");
    }
    for (case, attacks) in &cs.joined_attacks {
        println!("  case {case} joined planted attacks {}", attacks.join(", "));
    }
    for (case, attack) in &cs.joined_benign {
        println!("  case {case} joined attack {attack} with findings of no attack");
    }
    let quiet = s.lookalikes.iter().filter(|(_, raised)| raised.is_empty()).count();
    println!("look-alikes: {quiet} of {} stayed quiet", s.lookalikes.len());
    for (id, raised) in &s.lookalikes {
        match raised.len() {
            0 => println!("  quiet {id}"),
            n => println!("  {id} raised {n} finding(s)"),
        }
    }
    // The codes of `replay --truth`, which this is on generated data.
    Ok(if !s.perfect() || !cs.clean() {
        EXIT_SCORE
    } else if report.rejected > 0 {
        EXIT_REJECTED
    } else {
        EXIT_OK
    })
}

/// The cases, worst first, each with its story and its findings under it.
fn print_cases(findings: &[Finding], cases: &[CaseRecord]) {
    let mut merges = Merges::default();
    cases.iter().for_each(|c| merges.note(c));
    let mut closed: Vec<&CaseRecord> = cases.iter().filter(|c| c.status == CaseStatus::Closed).collect();
    closed.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.opened_at.cmp(&b.opened_at)));
    println!("cases ({}, worst first; the findings of each under it):", closed.len());
    for c in closed {
        println!("  {:<8} case {}  {}", c.severity.as_str(), c.case_id, for_terminal(&c.story));
        for f in findings
            .iter()
            .filter(|f| f.case_id.as_deref().map(|id| merges.final_id(id)).as_deref() == Some(c.case_id.as_str()))
        {
            println!("             {}", summary::finding_line(f));
        }
    }
}
