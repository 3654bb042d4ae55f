//! Restart arithmetic and output repair: where a restarted monitor re-reads from so that a fresh engine
//! rebuilds the incidents it had open, and which closed findings in `--output` already count as written.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;

use super::state::{self, Checkpoint};
use crate::spec::SpecSet;
use crate::time::{Span, Timestamp};

/// The largest window of any enabled rule: how far before an incident a rebuild must start.
pub(super) fn largest_window(specs: &SpecSet) -> Span {
    specs.enabled().map(|s| s.window).max().unwrap_or(Span(0))
}

/// Where a restart re-reads from, given a checkpoint: `min(watermark, earliest incident to rebuild) -
/// lookback - 1s`; None without a watermark (a first start reads `--backfill`).
pub(super) fn resume_from(cp: &Checkpoint, lookback: Span) -> Option<i64> {
    Some(resume_point(cp.watermark_ms?, cp.earliest_open_ms, lookback))
}

fn resume_point(watermark_ms: i64, earliest_ms: Option<i64>, lookback: Span) -> i64 {
    let from = watermark_ms.min(earliest_ms.unwrap_or(i64::MAX));
    Timestamp(from).saturating_sub(lookback).saturating_sub(Span::secs(1)).0
}

/// The checkpoint's `earliest_open_ms`: the earliest `first_seen` of the open incidents and of the closed
/// ones (`closed`: first and last seen) whose end only a restart would re-read. A re-read that starts
/// inside a closed incident (a rule whose cooldown is shorter than the lookback) gives a fresh engine the
/// incident's last events only; when they still reach the threshold they open it again at a later event,
/// so with another incident id: a second notification and a second closed finding for one attack. Going
/// back to its `first_seen` (less the lookback, as for an open one) rebuilds it as it was, and the ledger
/// and `--output` suppress it. Moving the start back can put it inside an earlier closed incident: they
/// are taken latest first until none is cut. `closed` keeps what a later save may still need (the start
/// can move back by at most one lookback as new incidents open), at most [`state::LEDGER_MAX_ENTRIES`].
pub(super) fn earliest_to_rebuild(
    watermark_ms: i64,
    earliest_open_ms: Option<i64>,
    closed: &mut Vec<(i64, i64)>,
    lookback: Span,
) -> Option<i64> {
    // Latest last_seen first: once one is not reached, none after it is.
    closed.sort_unstable_by_key(|&(_, last)| std::cmp::Reverse(last));
    let mut earliest = earliest_open_ms;
    for &(first, last) in closed.iter() {
        let from = resume_point(watermark_ms, earliest, lookback);
        if last < from {
            break;
        }
        if first < from {
            earliest = Some(earliest.map_or(first, |e| e.min(first)));
        }
    }
    let keep_from = Timestamp(resume_point(watermark_ms, earliest, lookback)).saturating_sub(lookback).0;
    closed.retain(|&(_, last)| last >= keep_from);
    closed.truncate(state::LEDGER_MAX_ENTRIES);
    earliest
}

/// The fields of an output line `closed_ids_in_output` needs (the rest is skipped unparsed).
#[derive(serde::Deserialize)]
struct OutputLine {
    incident_id: Option<String>,
    status: Option<String>,
    last_seen: Option<Timestamp>,
}

/// Incident ids of the closed findings already in the output file that a re-read from `start_ms` could
/// produce again (those whose last event is at or after it: older ones cannot recur, and are not kept).
/// The file is read line by line; a torn last line (the daemon was killed while writing it) is cut off,
/// so the file stays valid JSON lines.
pub(super) fn closed_ids_in_output(path: &Path, start_ms: i64) -> anyhow::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    };
    let mut reader = BufReader::new(&file);
    let mut good_len = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        if !line.ends_with('\n') {
            tracing::warn!(path = %path.display(), "findings output ends with a partial line (killed while writing); cutting it");
            break;
        }
        good_len += n as u64;
        if let Ok(v) = serde_json::from_str::<OutputLine>(&line) {
            if let (Some(id), Some("closed")) = (v.incident_id, v.status.as_deref()) {
                if v.last_seen.is_none_or(|t| t.0 >= start_ms) {
                    ids.insert(format!("{id}:closed"));
                }
            }
        }
    }
    let mut file = file;
    if file.metadata().map(|m| m.len()).unwrap_or(0) > good_len {
        file.set_len(good_len).with_context(|| format!("cannot repair {}", path.display()))?;
        let _ = file.seek(SeekFrom::End(0));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_point_uses_the_lookback() {
        let cp = Checkpoint { watermark_ms: Some(100_000), earliest_open_ms: Some(90_000), ..Checkpoint::default() };
        assert_eq!(resume_from(&cp, Span::secs(10)), Some(90_000 - 10_000 - 1_000));
        assert_eq!(resume_from(&Checkpoint::default(), Span::secs(10)), None);
    }

    #[test]
    fn a_restart_rebuilds_closed_incidents_whole_or_not_at_all() {
        let lookback = Span::secs(10);
        // Watermark 100 s: the re-read would start at 89 s, inside an incident closed at 89.5 s.
        let mut closed = vec![(88_000, 89_500), (95_000, 96_000), (70_000, 78_000), (40_000, 50_000), (1_000, 2_000)];
        let earliest = earliest_to_rebuild(100_000, None, &mut closed, lookback);
        // Back to its start (read from 77 s), which cuts the one closed at 78 s: back to 70 s (read from
        // 59 s); the one at 95-96 s is read whole anyway, the one closed at 50 s not at all.
        assert_eq!(earliest, Some(70_000));
        assert_eq!(resume_point(100_000, earliest, lookback), 59_000);
        // Kept: what a later save may still reach (last seen from 49 s on).
        assert_eq!(closed, [(95_000, 96_000), (88_000, 89_500), (70_000, 78_000), (40_000, 50_000)]);
        // An open incident earlier than all of them decides; nothing closed cut: the open one alone.
        let mut closed = vec![(95_000, 96_000)];
        assert_eq!(earliest_to_rebuild(100_000, Some(60_000), &mut closed, lookback), Some(60_000));
        assert_eq!(earliest_to_rebuild(100_000, None, &mut Vec::new(), lookback), None);
    }

    #[test]
    fn output_check_keeps_only_findings_a_re_read_can_recreate_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        let line = |id: &str, last: &str, status: &str| {
            format!(r#"{{"incident_id":"{id}","status":"{status}","last_seen":"{last}","evidence":{{"x":[1,2]}}}}"#)
        };
        let text = [
            line("old", "2026-01-01T00:00:00.000Z", "closed"),
            line("recent", "2026-01-02T00:00:00.000Z", "closed"),
            line("open", "2026-01-02T00:00:00.000Z", "open"),
        ]
        .join("\n")
            + "\n{\"incident_id\":\"torn";
        std::fs::write(&p, &text).unwrap();
        let start = Timestamp::parse_rfc3339("2026-01-01T12:00:00Z").unwrap().0;
        let ids = closed_ids_in_output(&p, start).unwrap();
        assert_eq!(ids, HashSet::from(["recent:closed".to_string()]));
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .ends_with("\"open\",\"last_seen\":\"2026-01-02T00:00:00.000Z\",\"evidence\":{\"x\":[1,2]}}\n"));
    }
}
