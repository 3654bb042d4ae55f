//! `authwatch replay`: offline forensic replay of log files, findings as JSON lines, summary on stderr.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{engine_settings, load_specs, progress_wanted, replay_config, ReplayArgs, EXIT_OK, EXIT_REJECTED};
use crate::finding::Status;
use crate::replay::{self, Progress, ReplayHooks};
use crate::sink::jsonl::JsonLines;
use crate::sink::summary;

pub fn run(a: &ReplayArgs) -> anyhow::Result<i32> {
    let cfg = replay_config(a)?;
    let specs = load_specs(a.detect.filters.as_ref())?;
    let settings = engine_settings(&a.detect)?;
    let mut out = JsonLines::create(a.output.as_deref())?;
    let mut rejects = match &a.rejects {
        Some(p) => Some(BufWriter::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)),
        None => None,
    };
    let bar = progress_wanted(a.no_progress, a.quiet).then(new_bar);
    let updates = a.updates;
    let mut on_finding = |f: &crate::finding::Finding| {
        if updates || f.status == Status::Closed {
            out.write(f)?;
        }
        Ok(())
    };
    let mut reject_error = None;
    let mut on_rejection = |r: &crate::decode::Rejection| {
        if let Some(w) = rejects.as_mut() {
            let line = serde_json::json!({
                "file": &*r.origin.file, "line": r.origin.line, "record": r.origin.record, "reason": r.reason,
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
    let hooks = ReplayHooks { finding: &mut on_finding, rejection: &mut on_rejection, progress: &mut on_progress };
    let report = if a.decode_only {
        replay::decode_only(&cfg, hooks)?
    } else {
        replay::run(&cfg, &specs, settings, hooks)?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    out.finish().context("cannot write findings")?;
    if let Some(e) = reject_error {
        return Err(anyhow::Error::new(e).context("cannot write the rejects file"));
    }
    if let Some(mut w) = rejects {
        w.flush().context("cannot write the rejects file")?;
    }
    if !a.quiet {
        eprint!("{}", summary::render(&report));
    }
    Ok(if report.rejected > 0 { EXIT_REJECTED } else { EXIT_OK })
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
