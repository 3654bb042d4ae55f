//! The monitor loop: takes the sources' messages, decodes and holds events until the watermark, feeds the
//! engine, writes closed findings, spools notifications and checkpoints (see the `monitor` module docs).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use tokio::sync::{mpsc, watch, Notify};

use super::hold::HoldBuffer;
use super::metrics::Metrics;
use super::restart::{earliest_to_rebuild, resume_from};
use super::state::{self, Checkpoint, StateDir};
use super::status::{Held, StatusLine};
use super::{MonitorConfig, CHECKPOINT_EVERY, MAX_DIGEST_ITEMS, MAX_SPOOLED, REJECTIONS_LOGGED, STORM_WINDOW, TICK};
use crate::decode::{decode_record, Decoded, Rejection};
use crate::detect::Engine;
use crate::event::SignInEvent;
use crate::finding::{Finding, Status};
use crate::sink::jsonl::JsonLines;
use crate::sink::sns::{self, Spool};
use crate::source::SourceMsg;
use crate::time::{Span, Timestamp};

/// The loop's state.
pub(super) struct Monitor {
    pub(super) cfg: MonitorConfig,
    pub(super) engine: Engine,
    pub(super) state: StateDir,
    pub(super) cp: Checkpoint,
    pub(super) out: JsonLines,
    pub(super) metrics: Arc<Metrics>,
    pub(super) spool: Option<(Arc<Mutex<Spool>>, Arc<Notify>, bool)>,
    /// Events waiting for the watermark.
    pub(super) held: HoldBuffer,
    /// Per source: its name and the wall time it has caught up to.
    pub(super) sources: Vec<(String, Option<i64>)>,
    pub(super) start_ms: i64,
    /// Event time up to which events went to the engine.
    pub(super) fed_ms: Option<i64>,
    pub(super) storm_started: Instant,
    pub(super) storm_sent: u32,
    pub(super) dirty: bool,
    pub(super) last_save: Instant,
    pub(super) output_suppressed: HashSet<String>,
    /// Watermark of the checkpoint this run resumed from: until the re-read passes it, the ledger is not
    /// pruned (the re-read is recreating the updates it holds).
    pub(super) resumed_watermark: Option<i64>,
    /// First and last seen of the incidents closed in this run that a restart may re-read part of (see
    /// [`earliest_to_rebuild`]).
    pub(super) closed: Vec<(i64, i64)>,
    pub(super) largest_window: Span,
}

/// Appends to the spool unless it holds `cap` entries already; the oldest are never displaced, so delivery
/// stays oldest first. False when full.
fn push_capped(entries: &mut VecDeque<state::Notification>, n: state::Notification, cap: usize) -> bool {
    if entries.len() >= cap {
        return false;
    }
    entries.push_back(n);
    true
}

impl Monitor {
    pub(super) async fn run_loop(
        &mut self,
        mut rx: mpsc::Receiver<SourceMsg>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status = self.cfg.status_interval.map(|every| StatusLine::new(every, Instant::now()));
        if *shutdown.borrow() {
            return Ok(());
        }
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.on_message(msg),
                    None => {
                        // Every source ended on its own (cannot happen before shutdown): finish the tick.
                        self.on_tick()?;
                        return Ok(());
                    }
                },
                _ = tick.tick() => {
                    self.on_tick()?;
                    if let Some(line) = status.as_mut().and_then(|s| s.due(&self.metrics, self.backlog(), Instant::now())) {
                        eprintln!("{line}");
                    }
                }
                _ = shutdown.changed() => {
                    // Take what the sources already sent, then stop.
                    while let Ok(msg) = rx.try_recv() {
                        self.on_message(msg);
                    }
                    self.on_tick()?;
                    return Ok(());
                }
            }
        }
    }

    fn on_message(&mut self, msg: SourceMsg) {
        match msg {
            SourceMsg::Records { source, records, newest_ms } => {
                // Events stamped in the future (CloudWatch accepts up to 2 h ahead) do not move positions.
                if let Some(n) = newest_ms.filter(|n| *n <= Timestamp::now().0) {
                    let name = self.sources[source].0.clone();
                    let pos = self.cp.positions.entry(name).or_default();
                    pos.time_ms = pos.time_ms.max(n);
                }
                self.clear_failing(source);
                for r in records {
                    self.metrics.records.fetch_add(1, Ordering::Relaxed);
                    if let Some(reason) = r.rejected {
                        self.on_decoded(Decoded::Rejected(Rejection::new(&r.origin, reason)));
                        continue;
                    }
                    if let Some(d) = r.ingest_delay_ms {
                        self.metrics.ingest_delay_ms.record(d);
                        if d > self.cfg.overlap.0 {
                            // Read this time, but an event this late can land behind the read start.
                            self.metrics.beyond_overlap.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let mut decoded = Vec::new();
                    decode_record(&r.bytes, &r.origin, self.cfg.format, &mut |d| decoded.push(d));
                    for d in decoded {
                        self.on_decoded(d);
                    }
                }
            }
            SourceMsg::CaughtUp { source, until_ms } => {
                self.clear_failing(source);
                if let Some(s) = self.sources.get_mut(source) {
                    s.1 = Some(s.1.map_or(until_ms, |u| u.max(until_ms)));
                }
            }
            SourceMsg::Failing { source, reason } => {
                if let (Some(s), Ok(mut f)) = (self.sources.get(source), self.metrics.failing.lock()) {
                    f.insert(s.0.clone(), reason);
                }
            }
        }
    }

    fn clear_failing(&self, source: usize) {
        if let (Some(s), Ok(mut f)) = (self.sources.get(source), self.metrics.failing.lock()) {
            f.remove(&s.0);
        }
    }

    fn on_decoded(&mut self, d: Decoded) {
        match d {
            Decoded::Event(ev) => {
                if ev.time.0 < self.start_ms {
                    self.metrics.before_start.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if self.fed_ms.is_some_and(|f| ev.time.0 <= f) {
                    // Behind the watermark: the engine still places it where a rule's window is open,
                    // but it arrived later than --allowed-delay. Counted, so it is never silent.
                    self.metrics.late.fetch_add(1, Ordering::Relaxed);
                }
                self.held.insert(ev);
            }
            Decoded::Skipped(_) => {
                self.metrics.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Decoded::Rejected(r) => {
                let n = self.metrics.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                // The first ones name their record at the default log level; after that a flood of bad
                // input is only counted (status line, /metrics), not logged line by line.
                if n <= REJECTIONS_LOGGED {
                    tracing::warn!(record = %crate::sanitize::for_terminal(&r.to_string()), "rejected record");
                    if n == REJECTIONS_LOGGED {
                        tracing::warn!("further rejected records are counted (status line, /metrics), not logged");
                    }
                } else {
                    tracing::debug!(record = %crate::sanitize::for_terminal(&r.to_string()), "rejected record");
                }
            }
        }
    }

    /// The event time every source has caught up to, less the allowed delay; None until all have.
    fn watermark(&self) -> Option<i64> {
        let mut wm: Option<i64> = None;
        for (_, caught) in &self.sources {
            let c = (*caught)?;
            wm = Some(wm.map_or(c, |w: i64| w.min(c)));
        }
        wm.map(|w| w - self.cfg.allowed_delay.0)
    }

    fn on_tick(&mut self) -> anyhow::Result<()> {
        let mut findings = Vec::new();
        while let Some(ev) = self.held.pop_over_cap() {
            self.metrics.forced.fetch_add(1, Ordering::Relaxed);
            self.push(ev, &mut findings);
        }
        if let Some(wm) = self.watermark() {
            if self.fed_ms.is_none_or(|f| wm > f) {
                while let Some(ev) = self.held.pop_through(wm) {
                    self.push(ev, &mut findings);
                }
                self.engine.advance_watermark(Timestamp(wm), &mut findings);
                self.fed_ms = Some(wm);
                self.dirty = true;
                self.metrics.watermark_ms.store(wm, Ordering::Relaxed);
            }
            self.metrics.lag_ms.store(Timestamp::now().0 - wm, Ordering::Relaxed);
        }
        // True when notifications were spooled or closed findings written: checkpoint now.
        let spooled_new = self.handle(findings)?;
        let storm_spooled = self.flush_digest_if_due();
        if spooled_new || storm_spooled {
            // Notifications become visible to the publisher only once the checkpoint holding them (and
            // their ledger entries) is on disk.
            self.save()?;
            self.make_visible();
        } else if self.dirty && self.last_save.elapsed() >= CHECKPOINT_EVERY {
            self.save()?;
        }
        let stats = self.engine.detector_stats();
        self.metrics.open_incidents.store(stats.iter().map(|s| s.open_incidents as i64).sum(), Ordering::Relaxed);
        self.metrics.tracked_keys.store(stats.iter().map(|s| s.tracked_keys as i64).sum(), Ordering::Relaxed);
        Ok(())
    }

    fn push(&mut self, ev: SignInEvent, findings: &mut Vec<Finding>) {
        let t = Instant::now();
        self.engine.push(ev, findings);
        self.metrics.process_ns.record(t.elapsed().as_nanos() as i64);
        self.metrics.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes closed findings and spools notifications for openings and escalations, skipping updates
    /// already in the ledger. True when notifications were spooled.
    fn handle(&mut self, findings: Vec<Finding>) -> anyhow::Result<bool> {
        let mut unsynced = Vec::new();
        let result = self.handle_all(findings, &mut unsynced);
        if result.is_err() {
            // Closed findings that may not have reached the disk must not stay in the ledger as written:
            // the save at shutdown would keep them there, and a restart would never write them.
            for key in &unsynced {
                self.cp.ledger.remove(key);
            }
        }
        result
    }

    /// [`Monitor::handle`]'s work; the ledger keys of closed findings written and not yet synced are
    /// collected in `unsynced`.
    fn handle_all(&mut self, findings: Vec<Finding>, unsynced: &mut Vec<String>) -> anyhow::Result<bool> {
        let mut wrote = false;
        let mut spooled = false;
        for f in findings {
            if f.status == Status::Closed {
                // Also when suppressed: a rebuilt incident must be rebuilt again by the next restart.
                self.closed.push((f.first_seen.0, f.last_seen.0));
            }
            let key = sns::ledger_key(&f);
            if self.cp.ledger.contains_key(&key) || self.output_suppressed.contains(&key) {
                self.metrics.notifications_suppressed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match f.status {
                Status::Closed => {
                    self.out.write(&f).map_err(|e| self.output_failed(e))?;
                    unsynced.push(key.clone());
                    self.metrics.findings_closed.fetch_add(1, Ordering::Relaxed);
                    wrote = true;
                }
                Status::Open | Status::Escalated => {
                    if let Some((spool, _, fifo)) = &self.spool {
                        if self.storm_sent < self.cfg.max_notifications_per_minute {
                            self.storm_sent += 1;
                            let n = sns::render(&f, self.cp.next_seq + 1, *fifo);
                            if self.spool_push(spool, n) {
                                self.cp.next_seq += 1;
                                spooled = true;
                            }
                        } else if self.cp.digest.len() < MAX_DIGEST_ITEMS {
                            self.cp.digest.push(sns::digest_item(&f));
                        } else {
                            self.cp.digest_overflow += 1;
                        }
                    }
                }
            }
            // Stamped with the wall time it was recorded: pruning compares it with the wall clock.
            self.cp.ledger.insert(key, Timestamp::now().0);
            self.dirty = true;
        }
        if wrote {
            // On disk before the checkpoint that ledgers them (the output file is the ledger of record),
            // and that checkpoint saved now, not at the next periodic save: on standard output, which
            // cannot be read back, this is what keeps a restart from writing them again.
            self.out.sync().map_err(|e| self.output_failed(e))?;
            unsynced.clear();
        }
        Ok(spooled || wrote)
    }

    /// Appends a notification to the spool unless it is full (SNS unreachable for long): then it is
    /// dropped, counted and logged at ERROR. True when spooled.
    fn spool_push(&self, spool: &Arc<Mutex<Spool>>, n: state::Notification) -> bool {
        let Ok(mut s) = spool.lock() else { return false };
        let subject = n.subject.clone();
        if !push_capped(&mut s.entries, n, MAX_SPOOLED) {
            let dropped = self.metrics.notifications_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(spooled = s.entries.len(), dropped, subject = %subject,
                    "notification spool full (SNS unreachable for long): notification dropped; the findings output still has every closed incident");
            }
            return false;
        }
        self.metrics.notifications_created.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// At the end of each storm window, held-back updates leave as one digest notification.
    fn flush_digest_if_due(&mut self) -> bool {
        if self.storm_started.elapsed() < STORM_WINDOW {
            return false;
        }
        self.storm_started = Instant::now();
        self.storm_sent = 0;
        let Some((spool, _, fifo)) = &self.spool else { return false };
        if self.cp.digest.is_empty() {
            return false;
        }
        let n = sns::render_digest(&self.cp.digest, self.cp.digest_overflow, self.cp.next_seq + 1, *fifo);
        self.cp.digest.clear();
        self.cp.digest_overflow = 0;
        self.dirty = true;
        if !self.spool_push(spool, n) {
            return false;
        }
        self.cp.next_seq += 1;
        self.metrics.digests.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn make_visible(&self) {
        if let Some((spool, wake, _)) = &self.spool {
            if let Ok(mut s) = spool.lock() {
                s.visible_upto = self.cp.next_seq;
                self.metrics.spooled.store(s.entries.len() as i64, Ordering::Relaxed);
            }
            wake.notify_one();
        }
    }

    /// A failed write to `--output`, named with its file.
    fn output_failed(&self, e: std::io::Error) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("cannot write findings to {}", self.out.name()))
    }

    pub(super) fn flush_and_save(&mut self) -> anyhow::Result<()> {
        self.out.sync().map_err(|e| self.output_failed(e))?;
        self.save()?;
        self.make_visible();
        Ok(())
    }

    pub(super) fn save(&mut self) -> anyhow::Result<()> {
        self.cp.watermark_ms = self.fed_ms.or(self.cp.watermark_ms);
        let lookback = self.cfg.restart_lookback.unwrap_or(self.largest_window);
        // Before the first watermark of this run, keep the resume point of the previous one.
        if let Some(fed) = self.fed_ms {
            let open = self.engine.earliest_open().map(|t| t.0);
            self.cp.earliest_open_ms = earliest_to_rebuild(fed, open, &mut self.closed, lookback);
        }
        if let Some((spool, _, _)) = &self.spool {
            if let Ok(s) = spool.lock() {
                self.cp.spool = s.entries.clone();
            }
        }
        // Prune only once the re-read has passed the resume point (it recreates the updates the ledger
        // holds), and never what a restart from this checkpoint would recreate.
        let caught_up = match (self.fed_ms, self.resumed_watermark) {
            (Some(fed), Some(resumed)) => fed >= resumed,
            (fed, None) => fed.is_some(),
            (None, Some(_)) => false,
        };
        if caught_up {
            self.cp.prune_ledger(Timestamp::now(), resume_from(&self.cp, lookback));
        }
        self.state.save(&self.cp).context("cannot save the checkpoint")?;
        self.dirty = false;
        self.last_save = Instant::now();
        Ok(())
    }

    /// The backlog, for the status line.
    fn backlog(&self) -> Held {
        Held { caught_up: self.fed_ms.is_some(), events: self.held.len(), bytes: self.held.bytes() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(seq: u64) -> state::Notification {
        state::Notification {
            seq,
            subject: format!("n{seq}"),
            message: String::new(),
            detector: String::new(),
            severity: String::new(),
            group_id: String::new(),
            dedup_id: String::new(),
            detected_at_ms: 0,
            created_ms: 0,
        }
    }

    #[test]
    fn the_spool_is_capped_and_keeps_its_oldest_first() {
        let mut q = VecDeque::new();
        for seq in 1..=3 {
            assert!(push_capped(&mut q, note(seq), 3));
        }
        assert!(!push_capped(&mut q, note(4), 3));
        assert_eq!(q.iter().map(|n| n.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
