//! The monitor daemon: live sources → decode → a merge on event time → the [`Engine`] → closed findings
//! (JSON lines) and SNS notifications, with a checkpoint that survives kill -9.
//!
//! Tasks and channels:
//! - one **source task** per log group (`source::cloudwatch`) and per followed file (`source::follow`).
//!   Each owns a clone of the bounded [`SourceMsg`] sender and ends when shutdown is signalled or the
//!   receiver is gone.
//! - the **monitor loop** (this module, on the calling task) owns the receiver, the engine and the
//!   checkpoint. It decodes records and holds events in a buffer ordered by event time; every tick it
//!   releases to the engine the events older than the *watermark*: the oldest "caught up to" wall time
//!   among the sources minus `--allowed-delay`. So the engine sees events in time order, as in replay, and
//!   windows close when traffic stops.
//! - the **publisher** (`sink::sns`) drains the notification spool; the **metrics server** answers HTTP.
//!
//! Restart without saving detector state: the checkpoint holds the watermark, the earliest `first_seen`
//! of the incidents open at that time (or closed, when the re-read would start inside one: see
//! [`earliest_to_rebuild`]), and a ledger of every update already notified or written. On start the
//! sources re-read from `min(watermark, earliest open) - lookback` (`--restart-lookback`, by default
//! the largest rule window), a fresh engine rebuilds the same incidents (their ids are deterministic), and
//! updates found in the ledger are suppressed. Closed findings already in the `--output` file count as
//! written. Per-source positions are saved for operators only; resuming from them could not rebuild the
//! detectors' windows.
//!
//! The engine runs with lateness 0 here: the hold buffer orders events (waiting `--allowed-delay`), so
//! `--lateness` does not apply to the monitor (it is rejected) and adds nothing to notification latency.
//! Events that arrive behind the watermark are counted (`late`), then given to the engine anyway.
//!
//! Shutdown (SIGINT/SIGTERM): sources stop, buffered messages are processed up to the watermark, output is
//! flushed, the checkpoint saved, and the publisher gets `--drain` to empty the spool; the rest stays
//! spooled for the next start.

pub mod hold;
pub mod metrics;
pub mod state;

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, watch, Notify};

use crate::decode::{decode_record, Decoded, Rejection};
use crate::detect::{Engine, EngineSettings};
use crate::event::{LogFormat, SignInEvent};
use crate::finding::{Finding, Status};
use crate::sink::jsonl::JsonLines;
use crate::sink::sns::{self, Publisher, Spool};
use crate::source::cloudwatch::{self, CloudWatchConfig};
use crate::source::{follow, SourceMsg};
use crate::spec::SpecSet;
use crate::time::{Span, Timestamp};
use hold::HoldBuffer;
use metrics::Metrics;
use state::{Checkpoint, StateDir};

/// How often the loop releases events, closes windows and may checkpoint.
pub const TICK: Duration = Duration::from_millis(200);
/// Checkpoint at least this often while the watermark moves (a restart re-reads at most this much more).
/// Spooled notifications and written findings are checkpointed at once, whatever this says: the periodic
/// save only moves the resume point, and rewriting a large ledger every second costs more than it gains.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Most notifications kept in the spool while SNS is unreachable. At the cap new notifications are
/// dropped, counted (`authwatch_notifications_dropped_total`) and logged at ERROR; those already spooled
/// keep their order. About 10,000 × a few KB: the checkpoint stays in the tens of megabytes.
pub const MAX_SPOOLED: usize = 10_000;
/// Findings gathered for one digest at most; beyond it they are only counted in the digest.
pub const MAX_DIGEST_ITEMS: usize = 1_000;
/// Messages in flight from the sources: bounded so a fast source waits for the engine.
pub const SOURCE_CHANNEL: usize = 64;
/// Rejected records named in the log (at WARN) before the rest are only counted.
pub const REJECTIONS_LOGGED: u64 = 20;
/// Notification window of the alert-storm limit.
pub const STORM_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub log_groups: Vec<String>,
    pub stream_names: Vec<String>,
    pub stream_prefix: Option<String>,
    pub follow: Vec<PathBuf>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// SNS endpoint when it differs from `endpoint_url` (VPC endpoints, tests).
    pub sns_endpoint_url: Option<String>,
    pub sns_topic_arn: Option<String>,
    /// Individual notifications per minute; beyond it updates are gathered into one digest a minute.
    pub max_notifications_per_minute: u32,
    pub state_dir: PathBuf,
    pub output: Option<PathBuf>,
    /// Without a checkpoint, start this far before now.
    pub backfill: Span,
    /// How late (wall clock) an event may become visible and still be counted in order.
    pub allowed_delay: Span,
    /// How far behind the wall-clock start of its previous pass each CloudWatch pass re-reads.
    pub overlap: Span,
    /// On restart, how far before the resume point to re-read to rebuild detector state (default: the
    /// largest rule window).
    pub restart_lookback: Option<Span>,
    pub poll: Duration,
    pub status_interval: Option<Duration>,
    pub metrics_addr: Option<SocketAddr>,
    /// The format `--format` forces; `None` for `auto` (decided per record).
    pub format: Option<LogFormat>,
    /// Time the publisher gets at shutdown to empty the spool.
    pub drain: Duration,
    /// One attempt of an AWS request, end to end (`--request-timeout`); see [`timeouts`].
    pub request_timeout: Duration,
    /// Cap on the memory of events waiting for the watermark (`--max-held-mb`); see [`hold`].
    pub max_held_bytes: usize,
}

/// What a monitor run did, returned at shutdown.
#[derive(Debug, Clone, Default)]
pub struct MonitorReport {
    pub events: u64,
    pub findings_closed: u64,
    pub notifications_sent: u64,
    pub spooled: usize,
}

/// The loop's state.
struct Monitor {
    cfg: MonitorConfig,
    engine: Engine,
    state: StateDir,
    cp: Checkpoint,
    out: JsonLines,
    metrics: Arc<Metrics>,
    spool: Option<(Arc<Mutex<Spool>>, Arc<Notify>, bool)>,
    /// Events waiting for the watermark.
    held: HoldBuffer,
    /// Per source: its name and the wall time it has caught up to.
    sources: Vec<(String, Option<i64>)>,
    start_ms: i64,
    /// Event time up to which events went to the engine.
    fed_ms: Option<i64>,
    storm_started: Instant,
    storm_sent: u32,
    dirty: bool,
    last_save: Instant,
    output_suppressed: HashSet<String>,
    /// Watermark of the checkpoint this run resumed from: until the re-read passes it, the ledger is not
    /// pruned (the re-read is recreating the updates it holds).
    resumed_watermark: Option<i64>,
    /// First and last seen of the incidents closed in this run that a restart may re-read part of (see
    /// [`earliest_to_rebuild`]).
    closed: Vec<(i64, i64)>,
    largest_window: Span,
}

/// TCP (and TLS) connect: an AWS endpoint answers in milliseconds; beyond this the address is unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Every call with all the SDK's own retries, as a multiple of one attempt: the SDK retries 3 times, so a
/// call that keeps stalling gives up and is retried by the caller's back-off (which logs and reports it).
pub const OPERATION_ATTEMPTS: u32 = 3;

/// The SDK timeouts. Without them a request whose connection stays open but never answers (a stalled
/// proxy, a half-dead NAT entry) waits forever: the log group is never read again, or the publisher stops
/// delivering, and shutdown hangs on it. With them the call fails as a timeout, a transient error, and is
/// retried with back-off.
pub fn timeouts(request_timeout: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
        // Silence while reading an answer: as long as one attempt, so a slow big page is not cut short.
        .read_timeout(request_timeout)
        .operation_attempt_timeout(request_timeout)
        .operation_timeout(request_timeout * OPERATION_ATTEMPTS + Duration::from_secs(5))
        .build()
}

/// Builds the AWS configuration from the standard chain plus `--region`, `--profile`, `--endpoint-url`.
async fn aws_config(cfg: &MonitorConfig) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts(cfg.request_timeout));
    if let Some(r) = &cfg.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(p) = &cfg.profile {
        loader = loader.profile_name(p);
    }
    if let Some(e) = &cfg.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// The largest window of any enabled rule: how far before an incident a rebuild must start.
fn largest_window(specs: &SpecSet) -> Span {
    specs.enabled().map(|s| s.window).max().unwrap_or(Span(0))
}

/// Where a restart re-reads from, given a checkpoint: `min(watermark, earliest incident to rebuild) -
/// lookback - 1s`; None without a watermark (a first start reads `--backfill`).
fn resume_from(cp: &Checkpoint, lookback: Span) -> Option<i64> {
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
fn earliest_to_rebuild(
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

/// Runs until `shutdown` becomes true.
pub async fn run(
    cfg: MonitorConfig,
    specs: &SpecSet,
    settings: EngineSettings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<MonitorReport> {
    let state = StateDir::open(&cfg.state_dir).context("cannot use the state directory")?;
    let (loaded, warnings) = state.load();
    for w in &warnings {
        tracing::error!(problem = %w, "checkpoint corrupt: set aside, using the previous one (or starting afresh)");
    }
    let mut cp = loaded.unwrap_or_default();
    let (delivered, delivered_warning) = state.load_delivered();
    if let Some(w) = delivered_warning {
        tracing::error!(problem = %w, "delivered mark unreadable: spooled notifications may be sent again");
    }
    cp.apply_delivered(delivered);
    // The ledger is not pruned here: the re-read below recreates the updates it holds (see `save`).

    // The hold buffer below already gives the engine events in time order (waiting `--allowed-delay` for
    // late ones), so the engine's own reorder buffer would only add its lateness to every notification.
    // On ordered input the results do not depend on it: the same findings as replay.
    let settings = EngineSettings { lateness: Span(0), ..settings };
    if specs.enabled().any(|s| s.detector.is::<crate::detect::impossible_travel::ImpossibleTravel>()) {
        // Load the city table now (0.1-0.3 s) rather than on the first located sign-in, which would
        // otherwise wait for it and show it as that event's processing time.
        crate::geo::Gazetteer::builtin();
    }
    let lookback = cfg.restart_lookback.unwrap_or_else(|| largest_window(specs));
    let start_ms = resume_from(&cp, lookback).unwrap_or_else(|| Timestamp::now().saturating_sub(cfg.backfill).0);
    tracing::info!(start = %Timestamp(start_ms), resumed = cp.watermark_ms.is_some(), "monitor starting");

    let output_suppressed = match &cfg.output {
        Some(p) if p != Path::new("-") => closed_ids_in_output(p, start_ms)?,
        _ => HashSet::new(),
    };
    let out = JsonLines::append(cfg.output.as_deref()).context("cannot open the findings output")?;
    let metrics = Metrics::new();
    // Only load AWS settings when an AWS service is used: `--follow` alone makes no AWS call at all.
    let needs_aws = !cfg.log_groups.is_empty() || cfg.sns_topic_arn.is_some();
    let sdk = if needs_aws { Some(aws_config(&cfg).await) } else { None };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(addr) = cfg.metrics_addr {
        let listener = metrics::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        // With port 0 the system picks one: say which, in the log and in the state directory.
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(%bound, "metrics and health endpoint listening");
        let _ = std::fs::write(cfg.state_dir.join("metrics.addr"), format!("{bound}\n"));
        tasks.push(tokio::spawn(metrics::serve(listener, metrics.clone(), stop_rx.clone())));
    }

    let spool = Arc::new(Mutex::new(Spool { entries: cp.spool.clone(), visible_upto: cp.next_seq }));
    metrics.spooled.store(cp.spool.len() as i64, Ordering::Relaxed);
    let wake = Arc::new(Notify::new());
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let mut publisher = None;
    if let (Some(arn), Some(sdk)) = (&cfg.sns_topic_arn, &sdk) {
        let mut b = aws_sdk_sns::config::Builder::from(sdk);
        if let Some(e) = &cfg.sns_endpoint_url {
            b = b.endpoint_url(e);
        }
        let p = Publisher {
            client: aws_sdk_sns::Client::from_conf(b.build()),
            topic_arn: arn.clone(),
            spool: spool.clone(),
            wake: wake.clone(),
            state: state.clone(),
            metrics: metrics.clone(),
            drain: cfg.drain,
        };
        publisher = Some(tokio::spawn(p.run(pub_stop_rx)));
    }

    let (tx, rx) = mpsc::channel::<SourceMsg>(SOURCE_CHANNEL);
    let mut sources = Vec::new();
    let mut source_tasks = Vec::new();
    if let (false, Some(sdk)) = (cfg.log_groups.is_empty(), &sdk) {
        let client = aws_sdk_cloudwatchlogs::Client::new(sdk);
        for g in &cfg.log_groups {
            let c = CloudWatchConfig {
                log_group: g.clone(),
                stream_names: cfg.stream_names.clone(),
                stream_prefix: cfg.stream_prefix.clone(),
                start_ms,
                overlap_ms: cfg.overlap.0,
                poll: cfg.poll,
            };
            let idx = sources.len();
            sources.push((format!("logs:{g}"), None));
            source_tasks.push(tokio::spawn(cloudwatch::run(client.clone(), c, idx, tx.clone(), stop_rx.clone())));
        }
    }
    for p in &cfg.follow {
        let idx = sources.len();
        sources.push((format!("file:{}", p.display()), None));
        source_tasks.push(tokio::spawn(follow::run(
            p.clone(),
            cfg.poll.min(Duration::from_millis(500)),
            idx,
            tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(tx);

    let fifo = cfg.sns_topic_arn.as_deref().is_some_and(sns::is_fifo);
    let cp_watermark = cp.watermark_ms;
    let mut m = Monitor {
        engine: Engine::new(specs, settings),
        state,
        cp,
        out,
        metrics: metrics.clone(),
        spool: cfg.sns_topic_arn.as_ref().map(|_| (spool.clone(), wake.clone(), fifo)),
        held: HoldBuffer::new(cfg.max_held_bytes),
        sources,
        start_ms,
        fed_ms: None,
        storm_started: Instant::now(),
        storm_sent: 0,
        dirty: true,
        last_save: Instant::now(),
        output_suppressed,
        resumed_watermark: cp_watermark,
        closed: Vec::new(),
        largest_window: largest_window(specs),
        cfg,
    };
    let result = m.run_loop(rx, &mut shutdown).await;

    // Shutdown: stop the sources and servers, flush, checkpoint, then let the publisher drain.
    let _ = stop_tx.send(true);
    for t in source_tasks {
        let _ = t.await;
    }
    let saved = m.flush_and_save();
    let _ = pub_stop_tx.send(true);
    if let Some(p) = publisher {
        let _ = p.await;
    }
    let final_save = m.save();
    for t in tasks {
        let _ = t.await;
    }
    result?;
    saved?;
    final_save?;
    let spooled = spool.lock().map(|s| s.entries.len()).unwrap_or(0);
    Ok(MonitorReport {
        events: metrics.events.load(Ordering::Relaxed),
        findings_closed: metrics.findings_closed.load(Ordering::Relaxed),
        notifications_sent: metrics.notifications_sent.load(Ordering::Relaxed),
        spooled,
    })
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
fn closed_ids_in_output(path: &Path, start_ms: i64) -> anyhow::Result<HashSet<String>> {
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

impl Monitor {
    async fn run_loop(
        &mut self,
        mut rx: mpsc::Receiver<SourceMsg>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now();
        let mut events_at_status = 0u64;
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
                    if let Some(every) = self.cfg.status_interval {
                        if last_status.elapsed() >= every {
                            let events = self.metrics.events.load(Ordering::Relaxed);
                            let rate = (events - events_at_status) as f64 / last_status.elapsed().as_secs_f64();
                            eprintln!("{}", self.status_line(rate));
                            events_at_status = events;
                            last_status = Instant::now();
                        }
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

    fn flush_and_save(&mut self) -> anyhow::Result<()> {
        self.out.sync().map_err(|e| self.output_failed(e))?;
        self.save()?;
        self.make_visible();
        Ok(())
    }

    fn save(&mut self) -> anyhow::Result<()> {
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

    fn status_line(&self, rate: f64) -> String {
        let m = &self.metrics;
        let (_, d50, _, dmax) = m.ingest_delay_ms.summary();
        let (nn, n50, n99, _) = m.notify_latency_ms.summary();
        let failing = m.failing.lock().map(|f| f.len()).unwrap_or(0);
        let lag = if self.fed_ms.is_some() {
            format!("{:.1}s", m.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0)
        } else {
            "catching up".into()
        };
        format!(
            "authwatch monitor: {rate:.1} events/s, lag {lag}, ingest delay p50 {d50}ms max {dmax}ms, open incidents {}, tracked keys {}, notifications sent {} spooled {}{}{}, held {} ({} MB){}, late {}, beyond overlap {}, rejected {}, sources failing {failing}",
            m.open_incidents.load(Ordering::Relaxed),
            m.tracked_keys.load(Ordering::Relaxed),
            m.notifications_sent.load(Ordering::Relaxed),
            m.spooled.load(Ordering::Relaxed),
            match m.notifications_dropped.load(Ordering::Relaxed) {
                0 => String::new(),
                d => format!(" DROPPED {d}"),
            },
            if nn > 0 { format!(" (latency p50 {n50}ms p99 {n99}ms)") } else { String::new() },
            self.held.len(),
            self.held.bytes() >> 20,
            match m.forced.load(Ordering::Relaxed) {
                0 => String::new(),
                f => format!(" forced {f}"),
            },
            m.late.load(Ordering::Relaxed),
            m.beyond_overlap.load(Ordering::Relaxed),
            m.rejected.load(Ordering::Relaxed),
        )
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
