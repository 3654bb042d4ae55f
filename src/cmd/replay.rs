//! `authwatch replay`: offline forensic replay of log files, findings as JSON lines, summary on stderr.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{
    engine_settings, load_specs, progress_wanted, replay_config, ReplayArgs, EXIT_OK, EXIT_REJECTED, EXIT_SCORE,
};
use crate::replay::{self, Progress, ReplayHooks};
use crate::report::{self, Collector, ReportSink, RunFacts};
use crate::sink::jsonl::JsonLines;
use crate::sink::{summary, Fanout, Sink};

pub fn run(a: &ReplayArgs) -> anyhow::Result<i32> {
    let cfg = replay_config(a)?;
    let specs = load_specs(a.detect.filters.as_ref())?;
    let settings = engine_settings(&a.detect)?;
    let mut rejects = match &a.rejects {
        Some(p) => Some(BufWriter::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)),
        None => None,
    };
    let truth: Option<Vec<crate::simulate::Attack>> = match &a.truth {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            Some(serde_json::from_slice(&bytes).with_context(|| format!("{}: not a ground-truth file", p.display()))?)
        }
        None => None,
    };
    let targets = a.report.targets();
    if targets.wanted() && a.decode_only {
        anyhow::bail!("--report and --report-csv need the rules: they cannot go with --decode-only");
    }
    targets.prepare()?;
    let bar = progress_wanted(a.no_progress, a.quiet).then(new_bar);
    let mut out = JsonLines::create(a.output.as_deref())?.with_updates(a.updates);
    let mut case_out = match &a.cases {
        Some(path) => Some(JsonLines::create(Some(path))?.for_cases().with_updates(a.updates)),
        None => None,
    };
    let mut kept = crate::score::Kept::default();
    // The outputs, one line each (the summary's tally is the report's own).
    let mut sinks: Vec<&mut dyn Sink> = vec![&mut out];
    if let Some(c) = case_out.as_mut() {
        sinks.push(c);
    }
    if truth.is_some() {
        sinks.push(&mut kept);
    }
    // The report sees every finding update (as a sink) and every accepted event (as the observer).
    let collector = RefCell::new(Collector::new());
    let mut report_sink = ReportSink(&collector);
    if targets.wanted() {
        sinks.push(&mut report_sink);
    }
    let mut observe = |ev: &crate::event::SignInEvent| collector.borrow_mut().observe(ev);
    let mut sinks = Fanout::new(sinks);
    let mut reject_error = None;
    let mut on_rejection = |r: &crate::decode::Rejection| {
        if let Some(w) = rejects.as_mut() {
            let line = serde_json::json!({
                "file": &*r.origin.file, "line": r.origin.line, "record": r.origin.record,
                "where": position(&r.origin), "reason": r.reason, "text": r.text,
            });
            if let Err(e) = writeln!(w, "{}", crate::sanitize::json_line(line.to_string())) {
                reject_error.get_or_insert(e);
            }
        }
    };
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            if p.bytes_total > 0 {
                bar.set_length(p.bytes_total);
            }
            bar.set_position(p.bytes_read);
            bar.set_message(format!("{} events", p.events));
        }
    };
    let hooks = ReplayHooks { finding: &mut sinks, rejection: &mut on_rejection, progress: &mut on_progress };
    let observer: Option<replay::EventObserver<'_>> = if targets.wanted() { Some(&mut observe) } else { None };
    let report = if a.decode_only {
        replay::decode_only(&cfg, hooks)?
    } else {
        replay::run_observed(&cfg, &specs, settings, hooks, observer)?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    sinks.close()?;
    drop(sinks);
    if let Some(e) = reject_error {
        return Err(anyhow::Error::new(e).context("cannot write the rejects file"));
    }
    if let Some(mut w) = rejects {
        w.flush().context("cannot write the rejects file")?;
    }
    if !a.quiet {
        eprint!("{}", summary::render(&report));
    }
    if let Some(path) = &a.save_baseline {
        report.baselines.write(path).map_err(|e| anyhow::anyhow!("--save-baseline: {e}"))?;
        if !a.quiet {
            let pools: usize = report.baselines.rules.values().map(|r| r.pools.len()).sum();
            eprintln!(
                "baseline      {} pool series of {} rule(s) written to {}",
                pools,
                report.baselines.rules.len(),
                path.display()
            );
        }
    }
    if targets.wanted() {
        let facts = RunFacts { command: "replay", inputs: &cfg.inputs, run: &report, specs: &specs };
        let written = report::write(&targets, &facts, &mut collector.borrow_mut())?;
        if !a.quiet {
            eprint!("{}", report::written_line(&written));
        }
    }
    if let Some(truth) = truth {
        let s = crate::score::score(&truth, &kept.findings);
        eprintln!(
            "score         {} of {} planted attacks found, {} missed, {} false alarm(s)",
            s.found.len(),
            s.attacks(),
            s.missed.len(),
            s.false_alarms.len()
        );
        let cs = crate::score::score_cases(&truth, &kept.findings, &kept.cases);
        if report.cases.is_some() {
            eprintln!(
                "pages         {:.2} case opening(s) per planted attack, {:.2} escalation(s) per attack, {} for no attack; {} case(s) joining two attacks, {} joining an attack with findings of none",
                cs.pages_per_attack(),
                cs.escalations_per_attack(),
                cs.stray_pages,
                cs.joined_attacks.len(),
                cs.joined_benign.len()
            );
            for (id, pages, _) in cs.per_attack.iter().filter(|(_, p, _)| *p > 1) {
                eprintln!("  {id}: {pages} cases opened");
            }
            for (case, attacks) in &cs.joined_attacks {
                eprintln!("  case {case} joined {}", attacks.join(", "));
            }
            for (case, attack) in &cs.joined_benign {
                eprintln!("  case {case} joined {attack} with findings of no attack");
            }
        }
        for (id, dets) in &s.missed {
            eprintln!("  missed {id}: expected {}", dets.join(", "));
        }
        for fa in &s.false_alarms {
            eprintln!("  false alarm: {}", crate::sanitize::for_terminal(fa));
        }
        if !s.perfect() || !cs.clean() {
            return Ok(EXIT_SCORE);
        }
    }
    Ok(if report.rejected > 0 { EXIT_REJECTED } else { EXIT_OK })
}

/// Where a rejected record is, in words: a line, or a record inside a container whose line is the
/// container's (a CloudTrail file, a `filter-log-events` page, a subscription payload), not the record's.
fn position(origin: &crate::event::Origin) -> String {
    match origin.record {
        None => format!("line {}", origin.line),
        Some(i) => {
            format!("record {i} (counted from 0) inside the document or container that starts on line {}", origin.line)
        }
    }
}

/// A byte-based progress bar on standard error.
pub fn new_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
