//! `authwatch demo`: simulates a day of a mid-size user pool with every planted attack and benign
//! look-alike, replays it through the detectors, prints the findings and the summary, and scores them
//! against the ground truth.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{threads, DemoArgs, EXIT_OK, EXIT_REJECTED, EXIT_SCORE};
use crate::detect::EngineSettings;
use crate::finding::{Finding, Status};
use crate::replay::{self, ReplayConfig, ReplayHooks};
use crate::report::{self, Collector, ReportSink, RunFacts};
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
    };
    let specs = SpecSet::builtin();
    let mut findings: Vec<Finding> = Vec::new();
    let targets = a.report.targets();
    let collector = RefCell::new(Collector::new());
    let mut report_sink = ReportSink(&collector);
    let mut on_finding = |f: &Finding| {
        if f.status == Status::Closed {
            findings.push(f.clone());
        }
        Ok(())
    };
    let mut sinks: Vec<&mut dyn Sink> = vec![&mut on_finding];
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

    println!("findings (detected at, severity, detector, summary):");
    for f in &findings {
        println!("  {}", summary::finding_line(f));
    }
    if a.keep.is_some() {
        let path = dir.join("demo-findings.jsonl");
        let mut out = JsonLines::create(Some(&path))?;
        for f in &findings {
            out.write(f)?;
        }
        out.finish()?;
        println!("findings as JSON lines: {}", path.display());
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
    let quiet = s.lookalikes.iter().filter(|(_, raised)| raised.is_empty()).count();
    println!("look-alikes: {quiet} of {} stayed quiet", s.lookalikes.len());
    for (id, raised) in &s.lookalikes {
        match raised.len() {
            0 => println!("  quiet {id}"),
            n => println!("  {id} raised {n} finding(s)"),
        }
    }
    // The codes of `replay --truth`, which this is on generated data.
    Ok(if !s.perfect() {
        EXIT_SCORE
    } else if report.rejected > 0 {
        EXIT_REJECTED
    } else {
        EXIT_OK
    })
}
