//! The monitor daemon: live sources → decode → a merge on event time → the [`Engine`] → closed findings
//! (JSON lines) and SNS notifications, with a checkpoint that survives kill -9.
//!
//! Tasks and channels:
//! - one **source task** per log group (`source::cloudwatch`) and per followed file (`source::follow`).
//!   Each owns a clone of the bounded [`SourceMsg`] sender and ends when shutdown is signalled or the
//!   receiver is gone.
//! - the **monitor loop** (this module, on the calling task) owns the receiver, the engine and the
//!   checkpoint. It decodes records into the engine's time-ordering buffer (the same one replay uses,
//!   capped by `--max-held-mb`); every tick it lets the rules take the events older than the
//!   *watermark*: the oldest "caught up to" wall time among the sources minus `--allowed-delay`
//!   ([`crate::detect::Release::Watermark`]). So the rules see events in time order, as in replay, and
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
//! The watermark takes the place of replay's `--lateness` (events wait `--allowed-delay` instead), so
//! `--lateness` does not apply to the monitor (it is rejected) and adds nothing to notification latency.
//! Events that arrive behind the watermark are counted (`late`), then given to the rules anyway.
//!
//! Shutdown (SIGINT/SIGTERM): sources stop, buffered messages are processed up to the watermark, output is
//! flushed, the checkpoint saved, and the publisher gets `--drain` to empty the spool; the rest stays
//! spooled for the next start.

mod event_loop;
pub mod metrics;
mod restart;
pub mod state;
mod status;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::aws;
use crate::detect::{Engine, EngineSettings};
use crate::event::LogFormat;
use crate::pipeline::clock::Clock;
use crate::pipeline::intake::Intake;
use crate::sink::jsonl::JsonLines;
use crate::sink::sns::{Publisher, SnsSettings, SnsSink};
use crate::sink::Sink;
use crate::source::cloudwatch::{self, CloudWatchConfig};
use crate::source::{follow, SourceMsg};
use crate::spec::SpecSet;
use crate::time::{Span, Timestamp};
use event_loop::Monitor;
use metrics::Metrics;
use restart::{closed_ids_in_output, largest_window, resume_from};
use state::{Checkpoint, StateDir};

/// How often the loop releases events, closes windows and may checkpoint.
pub const TICK: Duration = Duration::from_millis(200);
/// Checkpoint at least this often while the watermark moves (a restart re-reads at most this much more).
/// Spooled notifications and written findings are checkpointed at once, whatever this says: the periodic
/// save only moves the resume point, and rewriting a large ledger every second costs more than it gains.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// How often the pool-wide rules' baselines are saved: they change once a 10-minute bucket.
pub const BASELINE_SAVE_EVERY: Duration = Duration::from_secs(300);
/// Messages in flight from the sources: bounded so a fast source waits for the engine.
pub const SOURCE_CHANNEL: usize = 64;
/// Rejected records named in the log (at WARN) before the rest are only counted.
pub const REJECTIONS_LOGGED: u64 = 20;
/// Longest wait between two looks at a followed file: a local file is cheap to check, whatever `--poll`
/// says for CloudWatch.
const FOLLOW_POLL_MAX: Duration = Duration::from_millis(500);

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
    /// Append closed and merged cases (JSON lines) here (`--cases`).
    pub cases: Option<PathBuf>,
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
    /// One attempt of an AWS request, end to end (`--request-timeout`); see [`aws::timeouts`].
    pub request_timeout: Duration,
    /// Cap on the memory of events waiting for the watermark (`--max-held-mb`). A backlog arriving faster
    /// than the watermark moves (a big file dropped into a followed path, a long `--backfill`) goes to the
    /// engine early beyond it, oldest first, counted as forced ([`Engine::release_over_cap`]).
    pub max_held_bytes: usize,
    /// Active response (`--respond FILE`, `--dry-run`): blocks in AWS WAF, account containment.
    pub respond: Option<crate::respond::RespondSettings>,
}

/// What a monitor run did, returned at shutdown.
#[derive(Debug, Clone, Default)]
pub struct MonitorReport {
    pub events: u64,
    /// Records that could not be decoded in this run (the exit code says whether there were any).
    pub rejected: u64,
    pub findings_closed: u64,
    pub notifications_sent: u64,
    pub spooled: usize,
}

/// Runs until `shutdown` becomes true.
pub async fn run(
    cfg: MonitorConfig,
    specs: &SpecSet,
    settings: EngineSettings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<MonitorReport> {
    run_with_clock(cfg, specs, settings, shutdown, Clock::System).await
}

/// The pool-wide rules start from what they learned before a restart (`baseline.json` in the state
/// directory), unless `--baseline FILE` gives them something else.
fn with_saved_baseline(settings: EngineSettings, state: &StateDir) -> EngineSettings {
    let path = state.path().join(BASELINE_FILE);
    if settings.baseline.is_some() || !path.exists() {
        return settings;
    }
    match crate::detect::baseline::BaselineFile::read(&path) {
        Ok(file) => {
            tracing::info!(path = %path.display(), "pool-wide rules start from the baseline saved before the restart");
            EngineSettings { baseline: Some(Arc::new(file)), ..settings }
        }
        Err(e) => {
            tracing::warn!(error = %crate::sanitize::for_terminal(&e), "saved baseline unreadable: the pool-wide rules warm up again");
            settings
        }
    }
}

/// The file in the state directory holding what the pool-wide rules learned.
pub const BASELINE_FILE: &str = "baseline.json";

/// [`run`] on the given clock.
pub async fn run_with_clock(
    cfg: MonitorConfig,
    specs: &SpecSet,
    settings: EngineSettings,
    mut shutdown: watch::Receiver<bool>,
    clock: Clock,
) -> anyhow::Result<MonitorReport> {
    let state = StateDir::open(&cfg.state_dir).context("cannot use the state directory")?;
    let cp = load_checkpoint(&state);
    let settings = with_saved_baseline(settings, &state);
    if specs.enabled().any(|s| s.detector.is::<crate::detect::impossible_travel::ImpossibleTravel>()) {
        // Load the city table now (0.1-0.3 s) rather than on the first located sign-in, which would
        // otherwise wait for it and show it as that event's processing time.
        crate::geo::Gazetteer::builtin();
    }
    let lookback = cfg.restart_lookback.unwrap_or_else(|| largest_window(specs));
    let start_ms = resume_from(&cp, lookback).unwrap_or_else(|| clock.wall().saturating_sub(cfg.backfill).0);
    tracing::info!(start = %Timestamp(start_ms), resumed = cp.watermark_ms.is_some(), "monitor starting");

    let output_suppressed = match &cfg.output {
        Some(p) if p != Path::new("-") => closed_ids_in_output(p, start_ms)?,
        _ => HashSet::new(),
    };
    let out = JsonLines::append(cfg.output.as_deref()).context("cannot open the findings output")?;
    let metrics = Metrics::new();
    // Only load AWS settings when an AWS service is used: `--follow` alone makes no AWS call at all.
    let needs_aws =
        !cfg.log_groups.is_empty() || cfg.sns_topic_arn.is_some() || cfg.respond.as_ref().is_some_and(|r| !r.dry_run);
    let sdk = if needs_aws { Some(aws::sdk_config(&endpoint(&cfg), cfg.request_timeout).await) } else { None };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(addr) = cfg.metrics_addr {
        tasks.push(serve_metrics(addr, &cfg.state_dir, &metrics, stop_rx.clone()).await?);
    }
    let cases_out = match &cfg.cases {
        Some(p) => Some(JsonLines::append(Some(p)).context("cannot open the cases output")?.for_cases()),
        None => None,
    };
    let per_case = settings.correlation.enabled;
    let (mut sinks, publisher) =
        choose_sinks(&cfg, (out, cases_out), per_case, sdk.as_ref(), &cp, &state, &metrics, clock);
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let publisher = publisher.map(|p| tokio::spawn(p.run(pub_stop_rx.clone())));
    // Active response: its sink decides, its worker calls AWS until shutdown; the tracker sees every event.
    let (mut responder_lock, mut responder_task, mut observer) = (None, None, None);
    if let Some(r) = &cfg.respond {
        let responder =
            crate::respond::start(r, &cp.sinks, state.path(), sdk.as_ref(), metrics.respond.clone(), clock)?;
        sinks.push(Box::new(responder.sink));
        responder_task = responder.worker.map(|w| tokio::spawn(w.run(pub_stop_rx.clone())));
        observer = Some(responder.tracker);
        responder_lock = responder.lock;
    }
    let Sources { rx, names: sources, regions: source_regions, tasks: source_tasks } =
        start_sources(&cfg, sdk.as_ref(), start_ms, &stop_rx);

    let resumed_watermark = cp.watermark_ms;
    let mut m = Monitor {
        // Events wait in the engine's orderer for the watermark (`--allowed-delay` for late ones) instead of
        // `--lateness` behind the newest event: on ordered input, the same findings as replay.
        engine: Engine::watermarked(specs, settings, cfg.max_held_bytes),
        state,
        cp,
        sinks,
        metrics: metrics.clone(),
        sources,
        source_regions,
        intake: Intake::new(Some(Timestamp(start_ms)), None),
        fed_ms: None,
        dirty: true,
        last_save: clock.now(),
        last_baseline_save: None,
        clock,
        output_suppressed,
        resumed_watermark,
        closed: Vec::new(),
        largest_window: largest_window(specs),
        observer,
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
    if let Some(t) = responder_task.take() {
        let _ = t.await;
    }
    let final_save = m.save();
    drop(responder_lock.take());
    for t in tasks {
        let _ = t.await;
    }
    result?;
    saved?;
    final_save?;
    Ok(MonitorReport {
        events: metrics.events.load(Ordering::Relaxed),
        rejected: metrics.rejected.load(Ordering::Relaxed),
        findings_closed: metrics.findings_closed.load(Ordering::Relaxed),
        notifications_sent: metrics.notifications_sent.load(Ordering::Relaxed),
        spooled: metrics.spooled.load(Ordering::Relaxed).max(0) as usize,
    })
}

/// The checkpoint to resume from (a default one on a first start). Corrupt files are reported and set
/// aside by [`StateDir::load`].
fn load_checkpoint(state: &StateDir) -> Checkpoint {
    let (loaded, warnings) = state.load();
    for w in &warnings {
        tracing::error!(problem = %w, "checkpoint corrupt: set aside, using the previous one (or starting afresh)");
    }
    // The ledger is not pruned here: the re-read recreates the updates it holds (see `Monitor::save`).
    loaded.unwrap_or_default()
}

/// The outputs of this run, in the order each update reaches them: one line per output. An output that
/// delivers from a task of its own (SNS) also returns it, for the caller to run and stop.
#[allow(clippy::too_many_arguments)]
fn choose_sinks(
    cfg: &MonitorConfig,
    (out, cases_out): (JsonLines, Option<JsonLines>),
    per_case: bool,
    sdk: Option<&aws_config::SdkConfig>,
    cp: &Checkpoint,
    state: &StateDir,
    metrics: &Arc<Metrics>,
    clock: Clock,
) -> (Vec<Box<dyn Sink + Send>>, Option<Publisher>) {
    let mut sinks: Vec<Box<dyn Sink + Send>> = vec![Box::new(out)];
    if let Some(c) = cases_out {
        sinks.push(Box::new(c));
    }
    let mut publisher = None;
    if let (Some(arn), Some(sdk)) = (&cfg.sns_topic_arn, sdk) {
        let settings = SnsSettings {
            topic_arn: arn.clone(),
            max_per_window: cfg.max_notifications_per_minute,
            drain: cfg.drain,
            per_case,
        };
        let saved = (&cp.sinks, load_delivered(state));
        let (sink, p) =
            SnsSink::new(settings, sns_client(sdk, cfg), saved, Arc::new(state.clone()), metrics.clone(), clock);
        sinks.push(Box::new(sink));
        publisher = Some(p);
    }
    (sinks, publisher)
}

/// The sequence number of the last notification SNS accepted (0 when none, or unreadable: reported).
fn load_delivered(state: &StateDir) -> u64 {
    let (delivered, warning) = state.load_delivered();
    if let Some(w) = warning {
        tracing::error!(problem = %w, "delivered mark unreadable: spooled notifications may be sent again");
    }
    delivered
}

/// `--region`, `--profile`, `--endpoint-url`.
fn endpoint(cfg: &MonitorConfig) -> aws::Endpoint<'_> {
    aws::Endpoint {
        region: cfg.region.as_deref(),
        profile: cfg.profile.as_deref(),
        endpoint_url: cfg.endpoint_url.as_deref(),
    }
}

/// The SNS client, at `--sns-endpoint-url` when given.
fn sns_client(sdk: &aws_config::SdkConfig, cfg: &MonitorConfig) -> aws_sdk_sns::Client {
    let mut b = aws_sdk_sns::config::Builder::from(sdk);
    if let Some(e) = &cfg.sns_endpoint_url {
        b = b.endpoint_url(e);
    }
    aws_sdk_sns::Client::from_conf(b.build())
}

/// Binds `--metrics-addr` and serves it until `stop`. With port 0 the system picks one: it is named in
/// the log and in `metrics.addr` in the state directory.
async fn serve_metrics(
    addr: SocketAddr,
    state_dir: &Path,
    metrics: &Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = metrics::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(%bound, "metrics and health endpoint listening");
    let _ = std::fs::write(state_dir.join("metrics.addr"), format!("{bound}\n"));
    Ok(tokio::spawn(metrics::serve(listener, metrics.clone(), stop)))
}

/// The running sources.
struct Sources {
    /// Owned by the monitor loop; closes when every source task has ended and dropped its sender.
    rx: mpsc::Receiver<SourceMsg>,
    /// Per source, by index: its name, and the wall time it has caught up to (none yet).
    names: Vec<(String, Option<i64>)>,
    /// Per source, by index: the Region of a log group (the SDK's), None for a followed file.
    regions: Vec<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts one task per log group and per followed file, reading from `start_ms` until `stop`.
fn start_sources(
    cfg: &MonitorConfig,
    sdk: Option<&aws_config::SdkConfig>,
    start_ms: i64,
    stop: &watch::Receiver<bool>,
) -> Sources {
    let (tx, rx) = mpsc::channel::<SourceMsg>(SOURCE_CHANNEL);
    let mut sources = Vec::new();
    let mut regions = Vec::new();
    let mut tasks = Vec::new();
    if let (false, Some(sdk)) = (cfg.log_groups.is_empty(), sdk) {
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
            regions.push(sdk.region().map(|r| r.to_string()));
            tasks.push(tokio::spawn(cloudwatch::run(client.clone(), c, idx, tx.clone(), stop.clone())));
        }
    }
    for p in &cfg.follow {
        let idx = sources.len();
        sources.push((format!("file:{}", p.display()), None));
        regions.push(None);
        let poll = cfg.poll.min(FOLLOW_POLL_MAX);
        tasks.push(tokio::spawn(follow::run(p.clone(), poll, idx, tx.clone(), stop.clone())));
    }
    Sources { rx, names: sources, regions, tasks }
}
