//! The monitor loop: takes the sources' messages, decodes and holds events until the watermark, feeds the
//! engine, writes closed findings, spools notifications and checkpoints (see the `monitor` module docs).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use super::metrics::Metrics;
use super::restart::{earliest_to_rebuild, resume_from};
use super::state::{case_ledger_key, ledger_key, Checkpoint, StateDir};
use super::status::{Held, StatusLine};
use super::{MonitorConfig, BASELINE_SAVE_EVERY, CHECKPOINT_EVERY, REJECTIONS_LOGGED, TICK};
use crate::correlate::{CaseRecord, CaseStatus};
use crate::decode::{decode_record, Decoded, Rejection};
use crate::detect::Engine;
use crate::finding::{Finding, Status};
use crate::pipeline::clock::Clock;
use crate::pipeline::intake::Intake;
use crate::sink::{Flushed, Sink, SinkError};
use crate::source::SourceMsg;
use crate::time::{Span, Timestamp};

/// Gives an event whose record names no Region the Region of the log group it was read from: a
/// replicated pool's export keeps one pool id in every Region, and only the log group tells them apart.
fn fill_region(d: &mut Decoded, source_region: Option<&String>) {
    if let (Decoded::Event(ev), Some(region)) = (d, source_region) {
        if ev.region.is_none() {
            ev.region = Some(region.as_str().into());
        }
    }
}

/// The loop's state.
pub(super) struct Monitor {
    pub(super) cfg: MonitorConfig,
    pub(super) engine: Engine,
    pub(super) state: StateDir,
    pub(super) cp: Checkpoint,
    /// Every finding update not already delivered goes to each of them, in order.
    pub(super) sinks: Vec<Box<dyn Sink + Send>>,
    pub(super) metrics: Arc<Metrics>,
    /// Per source: its name and the wall time it has caught up to.
    pub(super) sources: Vec<(String, Option<i64>)>,
    /// Per source, by index: the AWS Region its records come from (a log group's), given to events whose
    /// record names none (the user-activity export); None for a followed file.
    pub(super) source_regions: Vec<Option<String>>,
    /// Counts decoded records and leaves out events before the start point.
    pub(super) intake: Intake,
    /// Event time up to which events went to the engine.
    pub(super) fed_ms: Option<i64>,
    pub(super) dirty: bool,
    /// Monotonic time of the last checkpoint.
    pub(super) last_save: tokio::time::Instant,
    /// Monotonic time the pool-wide rules' baselines were last saved.
    pub(super) last_baseline_save: Option<tokio::time::Instant>,
    /// Wall and monotonic time.
    pub(super) clock: Clock,
    pub(super) output_suppressed: HashSet<String>,
    /// Watermark of the checkpoint this run resumed from: until the re-read passes it, the ledger is not
    /// pruned (the re-read is recreating the updates it holds).
    pub(super) resumed_watermark: Option<i64>,
    /// First and last seen of the incidents closed in this run that a restart may re-read part of (see
    /// [`earliest_to_rebuild`]).
    pub(super) closed: Vec<(i64, i64)>,
    pub(super) largest_window: Span,
    /// Sees every admitted event (the active response's shared-address figure).
    pub(super) observer: Option<crate::respond::shared::SharedTracker>,
}

impl Monitor {
    pub(super) async fn run_loop(
        &mut self,
        mut rx: mpsc::Receiver<SourceMsg>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status = self.cfg.status_interval.map(|every| StatusLine::new(every, self.clock.now()));
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
                    if let Some(line) = status.as_mut().and_then(|s| s.due(&self.metrics, self.backlog(), self.clock.now())) {
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
                if let Some(n) = newest_ms.filter(|n| *n <= self.clock.wall().0) {
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
                    for mut d in decoded {
                        fill_region(&mut d, self.source_regions.get(source).and_then(Option::as_ref));
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

    /// Counts a decoded record (the intake's tally, mirrored in the shared metrics) and holds an event in
    /// range for the watermark.
    fn on_decoded(&mut self, d: Decoded) {
        let admitted = self.intake.admit(&d);
        let tally = &self.intake.tally;
        match d {
            Decoded::Event(ev) if !admitted => {
                if tally.out_of_range == 1 {
                    // Once: a followed file of last week's events would otherwise look like silence.
                    tracing::warn!(event_time = %ev.time,
                        "events older than the start point are read and skipped (counted in the status line and authwatch_before_start_total): a first start reads --backfill back from now, a restart from its checkpoint");
                }
                self.metrics.before_start.store(tally.out_of_range, Ordering::Relaxed);
            }
            Decoded::Event(ev) => {
                if let Some(o) = &self.observer {
                    o.observe(&ev);
                }
                if self.fed_ms.is_some_and(|f| ev.time.0 <= f) {
                    // Behind the watermark: the engine still places it where a rule's window is open,
                    // but it arrived later than --allowed-delay. Counted, so it is never silent.
                    self.metrics.late.fetch_add(1, Ordering::Relaxed);
                }
                // Waits in the engine's orderer for the watermark; nothing is released here.
                self.engine.push(ev, &mut Vec::new());
            }
            Decoded::Skipped(_) => self.metrics.skipped.store(tally.skipped_total(), Ordering::Relaxed),
            Decoded::Rejected(r) => {
                let n = tally.rejected;
                self.metrics.rejected.store(n, Ordering::Relaxed);
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
        let metrics = self.metrics.clone();
        // Every event the rules take: counted, with the time they took over it.
        let mut each = |took: std::time::Duration| {
            metrics.process_ns.record(took.as_nanos() as i64);
            metrics.events.fetch_add(1, Ordering::Relaxed);
        };
        self.engine.release_over_cap(&mut findings, &mut each);
        self.metrics.forced.store(self.engine.stats().forced_releases, Ordering::Relaxed);
        if let Some(wm) = self.watermark() {
            if self.fed_ms.is_none_or(|f| wm > f) {
                self.engine.advance_watermark_each(Timestamp(wm), &mut findings, &mut each);
                self.fed_ms = Some(wm);
                self.dirty = true;
                self.metrics.watermark_ms.store(wm, Ordering::Relaxed);
            }
            self.metrics.lag_ms.store(self.clock.wall().0 - wm, Ordering::Relaxed);
        }
        let mut cases = Vec::new();
        self.engine.drain_cases(&mut cases);
        match self.deliver(findings, cases)? {
            // Notifications spooled or closed findings written: checkpoint now, then tell the sinks (a
            // notification goes to SNS only once the checkpoint holding it and its ledger entry is on disk).
            Flushed::Delivered => self.save_and_tell_sinks()?,
            flushed => {
                self.dirty |= flushed == Flushed::Changed;
                if self.dirty && self.clock.now() - self.last_save >= CHECKPOINT_EVERY {
                    self.save()?;
                }
            }
        }
        let stats = self.engine.detector_stats();
        self.metrics.open_incidents.store(stats.iter().map(|s| s.open_incidents as i64).sum(), Ordering::Relaxed);
        self.metrics.tracked_keys.store(stats.iter().map(|s| s.tracked_keys as i64).sum(), Ordering::Relaxed);
        if let Some(c) = self.engine.case_stats() {
            self.metrics.open_cases.store(c.open as i64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Gives every update not already in the ledger (or, closed, in `--output`) to the sinks, then
    /// flushes them: what the most eager of them says its flush did.
    fn deliver(&mut self, findings: Vec<Finding>, cases: Vec<CaseRecord>) -> anyhow::Result<Flushed> {
        let mut unsynced = Vec::new();
        let result = self.deliver_all(findings, cases, &mut unsynced);
        if result.is_err() {
            // Closed findings that may not have reached the disk must not stay in the ledger as written:
            // the save at shutdown would keep them there, and a restart would never write them.
            for key in &unsynced {
                self.cp.ledger.remove(key);
            }
        }
        Ok(result?)
    }

    /// [`Monitor::deliver`]'s work; the ledger keys of closed findings emitted and not yet flushed are
    /// collected in `unsynced`.
    fn deliver_all(
        &mut self,
        findings: Vec<Finding>,
        cases: Vec<CaseRecord>,
        unsynced: &mut Vec<String>,
    ) -> Result<Flushed, SinkError> {
        for f in findings {
            if f.status == Status::Closed {
                // Also when suppressed: a rebuilt incident must be rebuilt again by the next restart.
                self.closed.push((f.first_seen.0, f.last_seen.0));
            }
            let key = ledger_key(&f);
            if self.cp.ledger.contains_key(&key) || self.output_suppressed.contains(&key) {
                self.metrics.notifications_suppressed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            for sink in &mut self.sinks {
                sink.emit(&f)?;
            }
            if f.status == Status::Closed {
                unsynced.push(key.clone());
                self.metrics.findings_closed.fetch_add(1, Ordering::Relaxed);
            }
            // Stamped with the wall time it was recorded: pruning compares it with the wall clock.
            self.cp.ledger.insert(key, self.clock.wall().0);
            self.dirty = true;
        }
        // Case updates after the findings that caused them, ledgered the same way: a restart rebuilds the
        // same cases from the same events and must not page for them again.
        for c in cases {
            let key = case_ledger_key(&c);
            if self.cp.ledger.contains_key(&key) {
                self.metrics.notifications_suppressed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            for sink in &mut self.sinks {
                sink.case(&c)?;
            }
            match c.status {
                CaseStatus::Closed | CaseStatus::Merged => unsynced.push(key.clone()),
                CaseStatus::Open => {
                    self.metrics.cases_opened.fetch_add(1, Ordering::Relaxed);
                }
                CaseStatus::Escalated => {
                    self.metrics.case_escalations.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.cp.ledger.insert(key, self.clock.wall().0);
            self.dirty = true;
        }
        // The output file is the ledger of record for closed findings: on disk before the checkpoint that
        // ledgers them, and that checkpoint saved now, not at the next periodic save (on standard output,
        // which cannot be read back, this is what keeps a restart from writing them again).
        let flushed = self.flush_sinks()?;
        unsynced.clear();
        Ok(flushed)
    }

    fn flush_sinks(&mut self) -> Result<Flushed, SinkError> {
        let mut most = Flushed::Nothing;
        for sink in &mut self.sinks {
            most = most.max(sink.flush()?);
        }
        Ok(most)
    }

    fn save_and_tell_sinks(&mut self) -> anyhow::Result<()> {
        self.save()?;
        for sink in &mut self.sinks {
            sink.checkpointed();
        }
        Ok(())
    }

    /// At shutdown: everything emitted made durable, then the checkpoint.
    pub(super) fn flush_and_save(&mut self) -> anyhow::Result<()> {
        self.flush_sinks()?;
        self.save_baseline();
        self.save_and_tell_sinks()
    }

    /// Saves what the pool-wide rules learned, at most every [`BASELINE_SAVE_EVERY`] (and at shutdown): a
    /// restart then starts from it instead of a new warm-up. A failure is logged, not fatal: the rules
    /// keep running, and only a restart would lose their history.
    fn save_baseline(&mut self) {
        let file = self.engine.baselines();
        if file.rules.values().all(|r| r.pools.is_empty()) {
            return;
        }
        let path = self.state.path().join(super::BASELINE_FILE);
        if let Err(e) = file.write(&path) {
            tracing::warn!(error = %crate::sanitize::for_terminal(&e), "cannot save the pool-wide rules' baseline");
        }
        self.last_baseline_save = Some(self.clock.now());
    }

    pub(super) fn save(&mut self) -> anyhow::Result<()> {
        self.cp.watermark_ms = self.fed_ms.or(self.cp.watermark_ms);
        let lookback = self.cfg.restart_lookback.unwrap_or(self.largest_window);
        // Before the first watermark of this run, keep the resume point of the previous one.
        if let Some(fed) = self.fed_ms {
            let open = self.engine.earliest_open().map(|t| t.0);
            self.cp.earliest_open_ms = earliest_to_rebuild(fed, open, &mut self.closed, lookback);
        }
        for sink in &self.sinks {
            if let Some(state) = sink.saved_state() {
                self.cp.sinks.extend(state);
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
            self.cp.prune_ledger(self.clock.wall(), resume_from(&self.cp, lookback));
        }
        self.state.save(&self.cp).context("cannot save the checkpoint")?;
        if self.last_baseline_save.is_none_or(|t| self.clock.now() - t >= BASELINE_SAVE_EVERY) {
            self.save_baseline();
        }
        self.dirty = false;
        self.last_save = self.clock.now();
        Ok(())
    }

    /// The backlog, for the status line.
    fn backlog(&self) -> Held {
        Held { caught_up: self.fed_ms.is_some(), events: self.engine.buffered(), bytes: self.engine.buffered_bytes() }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::detect::EngineSettings;
    use crate::source::LiveRecord;
    use crate::spec::SpecSet;

    /// Wall time at the start of each test.
    const T0: i64 = 1_700_000_000_000;
    const ALLOWED_DELAY: Span = Span::secs(2);

    fn config(state_dir: &Path) -> MonitorConfig {
        MonitorConfig {
            log_groups: Vec::new(),
            stream_names: Vec::new(),
            stream_prefix: None,
            follow: Vec::new(),
            region: None,
            profile: None,
            endpoint_url: None,
            sns_endpoint_url: None,
            sns_topic_arn: None,
            max_notifications_per_minute: 10,
            state_dir: state_dir.to_path_buf(),
            output: None,
            cases: None,
            backfill: Span::secs(60),
            allowed_delay: ALLOWED_DELAY,
            overlap: Span::secs(60),
            restart_lookback: None,
            poll: Duration::from_secs(1),
            status_interval: None,
            metrics_addr: None,
            format: Default::default(),
            drain: Duration::ZERO,
            request_timeout: Duration::from_secs(30),
            max_held_bytes: usize::MAX,
            respond: None,
        }
    }

    /// A loop with two sources and no sinks, on `clock`, reading from `T0 - 60 s`.
    fn monitor(state_dir: &Path, clock: Clock) -> Monitor {
        let specs = SpecSet::builtin();
        Monitor {
            cfg: config(state_dir),
            engine: Engine::watermarked(&specs, EngineSettings::default(), usize::MAX),
            state: StateDir::open(state_dir).unwrap(),
            cp: Checkpoint::default(),
            sinks: Vec::new(),
            metrics: Metrics::new(),
            sources: vec![("a".into(), None), ("b".into(), None)],
            source_regions: vec![None, None],
            intake: Intake::new(Some(Timestamp(T0 - 60_000)), None),
            fed_ms: None,
            dirty: true,
            last_save: clock.now(),
            last_baseline_save: None,
            clock,
            output_suppressed: HashSet::new(),
            resumed_watermark: None,
            closed: Vec::new(),
            largest_window: Span::secs(60),
            observer: None,
        }
    }

    /// One Cognito sign-in at `ms`, as source `source` sends it.
    fn sign_in(source: usize, ms: i64) -> SourceMsg {
        let line = format!(
            r#"{{"eventTimestamp":"{ms}","eventSource":"USER_ACTIVITY","message":{{"eventType":"SignIn","eventResponse":"Pass","userName":"u","ipAddress":"198.51.100.7"}}}}"#
        );
        let origin = crate::event::Origin::new("test".into(), 1);
        let records = vec![LiveRecord { bytes: line.into_bytes(), origin, ingest_delay_ms: None, rejected: None }];
        SourceMsg::Records { source, records, newest_ms: Some(ms) }
    }

    #[test]
    fn an_event_without_a_region_takes_its_log_groups() {
        let origin = crate::event::Origin::new("logs:g/s".into(), 1);
        let event = |region: Option<&str>| {
            let mut ev = crate::event::SignInEvent::new(
                Timestamp(T0),
                crate::event::EventKind::SignIn,
                crate::event::Outcome::Success,
                origin.clone(),
            );
            ev.region = region.map(Into::into);
            Decoded::Event(Box::new(ev))
        };
        let region_of = |d: &Decoded| match d {
            Decoded::Event(ev) => ev.region.clone(),
            _ => None,
        };
        let eu = "eu-west-1".to_string();
        let mut export = event(None);
        fill_region(&mut export, Some(&eu));
        assert_eq!(region_of(&export).as_deref(), Some("eu-west-1"));
        // CloudTrail's own awsRegion stays: a trail's log group can gather several Regions.
        let mut trail = event(Some("us-east-1"));
        fill_region(&mut trail, Some(&eu));
        assert_eq!(region_of(&trail).as_deref(), Some("us-east-1"));
        // A followed file has no Region of its own.
        let mut followed = event(None);
        fill_region(&mut followed, None);
        assert_eq!(region_of(&followed), None);
    }

    fn caught_up(source: usize, until_ms: i64) -> SourceMsg {
        SourceMsg::CaughtUp { source, until_ms }
    }

    fn saved_watermark(state: &Path) -> Option<i64> {
        StateDir::open(state).unwrap().load().0.and_then(|cp| cp.watermark_ms)
    }

    #[tokio::test(start_paused = true)]
    async fn the_watermark_waits_for_every_source_then_trails_the_slowest_by_the_allowed_delay() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = monitor(dir.path(), Clock::manual(Timestamp(T0)));
        m.on_message(sign_in(0, T0 - 10_000));
        m.on_message(sign_in(1, T0 - 5_000));
        m.on_message(sign_in(1, T0 - 60_001));
        assert_eq!(m.metrics.before_start.load(Ordering::Relaxed), 1, "before the start point: counted, left out");
        m.on_message(caught_up(0, T0));
        m.on_tick().unwrap();
        assert_eq!(m.metrics.rejected.load(Ordering::Relaxed), 0);
        assert_eq!(m.fed_ms, None, "source b has not caught up yet");
        assert_eq!(m.metrics.events.load(Ordering::Relaxed), 0);
        m.on_message(caught_up(1, T0 - 6_000));
        tokio::time::advance(Duration::from_secs(3)).await;
        m.on_tick().unwrap();
        // The slowest source (b, at T0 - 6 s) less the allowed delay: the event at T0 - 10 s goes to the
        // engine, the one at T0 - 5 s is held.
        assert_eq!(m.fed_ms, Some(T0 - 6_000 - ALLOWED_DELAY.0));
        assert_eq!((m.metrics.events.load(Ordering::Relaxed), m.engine.buffered()), (1, 1));
        // The lag is the clock's wall time less the watermark.
        assert_eq!(m.metrics.lag_ms.load(Ordering::Relaxed), 3_000 + 6_000 + ALLOWED_DELAY.0);
        // An event behind the watermark is counted as late.
        m.on_message(sign_in(0, T0 - 9_000));
        assert_eq!(m.metrics.late.load(Ordering::Relaxed), 1);
        m.on_message(caught_up(1, T0));
        m.on_tick().unwrap();
        assert_eq!(m.fed_ms, Some(T0 - ALLOWED_DELAY.0));
        assert_eq!((m.metrics.events.load(Ordering::Relaxed), m.engine.buffered()), (3, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_moving_watermark_is_checkpointed_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = monitor(dir.path(), Clock::manual(Timestamp(T0)));
        m.on_message(caught_up(0, T0));
        m.on_message(caught_up(1, T0));
        m.on_tick().unwrap();
        assert_eq!(saved_watermark(dir.path()), None, "not before the interval has passed");
        tokio::time::advance(CHECKPOINT_EVERY).await;
        m.on_tick().unwrap();
        assert_eq!(saved_watermark(dir.path()), Some(T0 - ALLOWED_DELAY.0));
        // The watermark moves on at once; the checkpoint a whole interval after the last save.
        m.on_message(caught_up(0, T0 + 1_000));
        m.on_message(caught_up(1, T0 + 1_000));
        tokio::time::advance(CHECKPOINT_EVERY - Duration::from_millis(1)).await;
        m.on_tick().unwrap();
        assert_eq!(m.fed_ms, Some(T0 + 1_000 - ALLOWED_DELAY.0));
        assert_eq!(saved_watermark(dir.path()), Some(T0 - ALLOWED_DELAY.0));
        tokio::time::advance(Duration::from_millis(1)).await;
        m.on_tick().unwrap();
        assert_eq!(saved_watermark(dir.path()), Some(T0 + 1_000 - ALLOWED_DELAY.0));
        // Nothing new: no save, however long it waits.
        let before = std::fs::metadata(dir.path().join("state.json")).unwrap().modified().unwrap();
        tokio::time::advance(CHECKPOINT_EVERY * 3).await;
        m.on_tick().unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("state.json")).unwrap().modified().unwrap(), before);
    }
}
