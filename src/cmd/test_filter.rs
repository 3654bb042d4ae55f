//! `authwatch test-filter PATTERN [PATH...]`: evaluates a filter pattern against log events offline, like
//! CloudWatch's TestMetricFilter: prints each matching event with its extracted values, then a count.

use std::io::Write;

use crate::cli::{TestFilterArgs, EXIT_FATAL, EXIT_OK, EXIT_REJECTED};
use crate::decode::log_messages;
use crate::pattern::FilterPattern;
use crate::sanitize::for_terminal;
use crate::source::{expand_inputs, Limits, ReadItem, RecordReader};

/// Records read per batch: enough to amortise the call, small enough to keep memory flat.
const BATCH: usize = 256;

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub tested: u64,
    pub matched: u64,
    pub rejected: u64,
}

pub fn run(a: &TestFilterArgs) -> anyhow::Result<i32> {
    let pattern = match FilterPattern::parse(&a.pattern) {
        Ok(p) => p,
        Err(e) => {
            // Each line on its own: the render is the pattern, then the caret line under it.
            let lines: Vec<String> = e.render(&a.pattern).lines().map(|l| for_terminal(l).into_owned()).collect();
            eprintln!("authwatch: invalid filter pattern:\n{}", lines.join("\n"));
            return Ok(EXIT_FATAL);
        }
    };
    if a.max_line_bytes < 1024 {
        anyhow::bail!("--max-line-bytes must be at least 1024");
    }
    let limits = Limits { max_line_bytes: a.max_line_bytes, ..Limits::default() };
    let paths = if a.paths.is_empty() { vec!["-".into()] } else { a.paths.clone() };
    let inputs = expand_inputs(&paths)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tally = Tally::default();
    for input in &inputs {
        let mut reader = RecordReader::open(input, limits)?;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let more = reader.next_batch(BATCH, &mut batch);
            for item in batch.drain(..) {
                match item {
                    ReadItem::Record(rec) => {
                        test_record(&pattern, &rec.bytes, &rec.origin, a.count, &mut tally, &mut out)?;
                    }
                    ReadItem::Rejected(r) => {
                        tally.rejected += 1;
                        eprintln!("authwatch: rejected {}", for_terminal(&r.to_string()));
                    }
                }
            }
            if !more {
                break;
            }
        }
    }
    writeln!(out, "{} events tested, {} matched", tally.tested, tally.matched)?;
    if tally.rejected > 0 {
        writeln!(out, "{} records could not be read (see standard error)", tally.rejected)?;
    }
    out.flush()?;
    Ok(if tally.rejected == 0 { EXIT_OK } else { EXIT_REJECTED })
}

fn test_record(
    pattern: &FilterPattern,
    bytes: &[u8],
    origin: &crate::event::Origin,
    count_only: bool,
    tally: &mut Tally,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut result = Ok(());
    log_messages(bytes, origin, &mut |at, message| {
        let message = match message {
            Ok(m) => m,
            Err(r) => {
                tally.rejected += 1;
                eprintln!("authwatch: rejected {}", for_terminal(&r.to_string()));
                return;
            }
        };
        tally.tested += 1;
        let Some(m) = pattern.evaluate(message) else {
            return;
        };
        tally.matched += 1;
        if count_only || result.is_err() {
            return;
        }
        result = (|| {
            writeln!(out, "{}: {}", for_terminal(&at.to_string()), for_terminal(message))?;
            for (name, value) in &m.extracted {
                writeln!(out, "  {} = {}", for_terminal(name), for_terminal(value))?;
            }
            Ok(())
        })();
    });
    result
}
