//! Offline forensic replay: files → records → decoded events → detectors → findings, in parallel but with
//! a deterministic result.
//!
//! Threads and channels (all bounded):
//! - one **reader** thread reads the inputs in order (sorted paths) into batches of raw records and sends
//!   them, numbered, to the decoders. It owns the job channel and closes it at the end of input.
//! - `threads` **decoder** threads turn batches into decoded items and send them back with their number.
//!   Each owns a clone of the result sender; the result channel closes when the last decoder ends.
//! - the calling thread puts batches back in number order and feeds the [`Engine`], so the detectors see
//!   exactly the same sequence however the work was split. A token channel bounds batches in flight, so
//!   memory does not grow with the input.
//!
//! On error or early return the channels are dropped, which ends the other threads.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;

use crate::decode::{decode_record, Decoded, FormatHint, Rejection, SkipReason};
use crate::detect::{DetectorStats, Engine, EngineSettings, EngineStats};
use crate::event::Origin;
use crate::finding::{Finding, Severity, Status};
use crate::source::{expand_inputs, Input, Limits, RawRecord, ReadItem, RecordReader};
use crate::spec::SpecSet;
use crate::time::Timestamp;

/// Raw records per batch handed to a decoder: large enough to amortise channel costs, small enough to
/// keep every core busy on modest inputs.
const BATCH_RECORDS: usize = 1024;
/// A batch also ends once its records hold this many bytes. With 1 MiB lines, 1024 of them would hold a
/// GiB per batch, and a line of tiny records decodes to about 50 times its size (`[{},{},...]`: 3 bytes
/// each, a 150-byte rejection each), so the bound on memory is this times the batches in flight times
/// that factor: about 100 MB at worst on two cores, against tens of GB without it.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight per decoder thread.
const BATCHES_PER_THREAD: usize = 4;
/// Records larger than this (documents, long lines: CloudTrail S3 files, `filter-log-events` output) are not
/// decoded by a decoder thread but by the feeding thread, each event going to the engine as it is decoded.
/// A decoder thread collects a record's output before sending it, and a document can hold millions of
/// tiny records (`{"Records":[{},{},...]}`, 3 bytes each, becomes a 150-byte rejection each): collected,
/// a 24 MB file took 3.7 GB. Streamed, a document costs its own bytes and nothing per record.
const INLINE_DECODE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub inputs: Vec<PathBuf>,
    pub format: FormatHint,
    /// Events before this time are counted as out of range and not detected on.
    pub since: Option<Timestamp>,
    /// Events at or after this time are counted as out of range.
    pub until: Option<Timestamp>,
    pub limits: Limits,
    /// Decoder threads (at least 1).
    pub threads: usize,
}

/// What a replay read and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub files: u64,
    pub bytes: u64,
    /// Raw records read (lines, or whole documents).
    pub records: u64,
    /// Sign-in events decoded.
    pub events: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    pub rejected: u64,
    /// Decoded events outside `--since`/`--until`.
    pub out_of_range: u64,
    /// The first rejections, in input order.
    pub first_rejections: Vec<String>,
    pub engine: EngineStats,
    pub detectors: Vec<DetectorStats>,
    pub findings: FindingTally,
    pub elapsed_secs: f64,
}

impl ReplayReport {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Rejections kept verbatim in the report (all are counted).
pub const REJECTIONS_KEPT: usize = 10;

/// Counts of closed findings, for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindingTally {
    pub total: u64,
    /// detector → severity → count
    pub by_detector: BTreeMap<&'static str, BTreeMap<Severity, u64>>,
    /// Address → (findings, events in them)
    pub ips: HashMap<String, (u64, u64)>,
    pub users: HashMap<String, (u64, u64)>,
}

impl FindingTally {
    pub fn add(&mut self, f: &Finding) {
        self.total += 1;
        *self.by_detector.entry(f.detector).or_default().entry(f.severity).or_default() += 1;
        if let Some(ip) = &f.ip {
            let e = self.ips.entry(ip.clone()).or_default();
            e.0 += 1;
            e.1 += f.count;
        }
        if let Some(u) = &f.user {
            let e = self.users.entry(u.clone()).or_default();
            e.0 += 1;
            e.1 += f.count;
        }
    }

    /// The `n` keys with most findings (then most events, then by name).
    pub fn top(map: &HashMap<String, (u64, u64)>, n: usize) -> Vec<(&str, u64, u64)> {
        let mut v: Vec<(&str, u64, u64)> = map.iter().map(|(k, (f, c))| (k.as_str(), *f, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// Callbacks a replay reports through. `finding` gets every finding as it happens (open, escalated,
/// closed); `rejection` every rejected record; `progress` is called about ten times a second.
pub struct ReplayHooks<'a> {
    pub finding: &'a mut dyn FnMut(&Finding) -> io::Result<()>,
    pub rejection: &'a mut dyn FnMut(&Rejection),
    pub progress: &'a mut dyn FnMut(Progress),
}

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub events: u64,
}

struct Job {
    seq: u64,
    items: Vec<ReadItem>,
}

struct Done {
    seq: u64,
    decoded: Vec<Output>,
    records: u64,
}

/// What a decoder thread hands back for one record: its decoded items, or the record itself when it is
/// too large to collect (see [`INLINE_DECODE_BYTES`]).
// Decoded items are the common case (as in `Decoded` itself): boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Output {
    Decoded(Decoded),
    Inline(RawRecord),
}

/// Runs a replay. Fatal errors (no such input, a failed write) end it; bad records do not.
pub fn run(
    cfg: &ReplayConfig,
    specs: &SpecSet,
    settings: EngineSettings,
    hooks: ReplayHooks<'_>,
) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let inputs = expand_inputs(&cfg.inputs)?;
    let bytes_total: u64 = inputs
        .iter()
        .map(|i| match i {
            Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Stdin => 0,
        })
        .sum();
    let threads = cfg.threads.max(1);
    let in_flight = threads * BATCHES_PER_THREAD;
    let (job_tx, job_rx) = bounded::<Job>(in_flight);
    let (done_tx, done_rx) = bounded::<Done>(in_flight);
    let (token_tx, token_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        // Cannot fail: the channel has room for every token and its receiver is alive.
        let _ = token_tx.send(());
    }
    let bytes_read = Arc::new(AtomicU64::new(0));

    let mut report = ReplayReport { files: inputs.len() as u64, ..ReplayReport::default() };
    let mut engine = Engine::new(specs, settings);
    let result = thread::scope(|scope| -> anyhow::Result<()> {
        let reader_bytes = bytes_read.clone();
        let limits = cfg.limits;
        scope.spawn(move || read_inputs(&inputs, limits, job_tx, token_rx, &reader_bytes));
        for _ in 0..threads {
            let (rx, tx, hint) = (job_rx.clone(), done_tx.clone(), cfg.format);
            scope.spawn(move || decode_batches(rx, tx, hint));
        }
        drop(job_rx);
        drop(done_tx);
        let fed = feed_in_order(done_rx, &token_tx, cfg, &mut engine, &mut report, hooks, &bytes_read, bytes_total);
        // Dropping the token sender unblocks a reader waiting for room if we stopped early.
        drop(token_tx);
        fed
    });
    result?;
    report.bytes = bytes_read.load(Ordering::Relaxed);
    report.engine = engine.stats().clone();
    report.detectors = engine.detector_stats();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The reader thread: inputs in order, batches of raw records, each sent after taking a token.
fn read_inputs(inputs: &[Input], limits: Limits, jobs: Sender<Job>, tokens: Receiver<()>, bytes: &AtomicU64) {
    let mut seq = 0u64;
    let mut send = |items: Vec<ReadItem>| -> bool {
        if tokens.recv().is_err() {
            return false;
        }
        let job = Job { seq, items };
        seq += 1;
        jobs.send(job).is_ok()
    };
    for input in inputs {
        let mut reader = match RecordReader::open(input, limits) {
            Ok(r) => r,
            Err(e) => {
                let name: Arc<str> = Arc::from(input.display_name());
                let rejection = Rejection { origin: Origin::new(name, 0), reason: format!("cannot read: {e}") };
                if !send(vec![ReadItem::Rejected(rejection)]) {
                    return;
                }
                continue;
            }
        };
        let mut before = 0;
        loop {
            let mut items = Vec::with_capacity(BATCH_RECORDS);
            let more = reader.next_batch_within(BATCH_RECORDS, BATCH_BYTES, &mut items);
            let now = reader.bytes_read();
            bytes.fetch_add(now - before, Ordering::Relaxed);
            before = now;
            if !items.is_empty() && !send(items) {
                return;
            }
            if !more {
                break;
            }
        }
    }
}

/// A decoder thread: batches in, decoded items out, until the job channel closes.
fn decode_batches(jobs: Receiver<Job>, done: Sender<Done>, hint: FormatHint) {
    for job in jobs {
        let mut decoded = Vec::with_capacity(job.items.len());
        let mut records = 0;
        for item in job.items {
            match item {
                ReadItem::Record(r) if r.bytes.len() > INLINE_DECODE_BYTES => {
                    records += 1;
                    decoded.push(Output::Inline(r));
                }
                ReadItem::Record(r) => {
                    records += 1;
                    decode_record(&r.bytes, &r.origin, hint, &mut |d| decoded.push(Output::Decoded(d)));
                }
                ReadItem::Rejected(r) => {
                    records += 1;
                    decoded.push(Output::Decoded(Decoded::Rejected(r)));
                }
            }
        }
        if done.send(Done { seq: job.seq, decoded, records }).is_err() {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn feed_in_order(
    done: Receiver<Done>,
    tokens: &Sender<()>,
    cfg: &ReplayConfig,
    engine: &mut Engine,
    report: &mut ReplayReport,
    hooks: ReplayHooks<'_>,
    bytes_read: &AtomicU64,
    bytes_total: u64,
) -> anyhow::Result<()> {
    let ReplayHooks { finding, rejection, progress } = hooks;
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut feed = Feed { cfg, engine, report, finding, rejection, findings: Vec::new(), failed: None };
    let mut last_progress = Instant::now();
    for batch in done {
        waiting.insert(batch.seq, batch);
        while let Some(batch) = waiting.remove(&next) {
            next += 1;
            feed.report.records += batch.records;
            for out in batch.decoded {
                match out {
                    Output::Decoded(d) => feed.take(d),
                    Output::Inline(r) => decode_record(&r.bytes, &r.origin, cfg.format, &mut |d| feed.take(d)),
                }
                if let Some(e) = feed.failed.take() {
                    return Err(e.into());
                }
            }
            // The batch is consumed: let the reader send another.
            let _ = tokens.send(());
        }
        if last_progress.elapsed() >= Duration::from_millis(100) {
            last_progress = Instant::now();
            let events = feed.report.events;
            progress(Progress { bytes_read: bytes_read.load(Ordering::Relaxed), bytes_total, events });
        }
    }
    feed.engine.finish(&mut feed.findings);
    feed.emit();
    if let Some(e) = feed.failed.take() {
        return Err(e.into());
    }
    progress(Progress { bytes_read: bytes_read.load(Ordering::Relaxed), bytes_total, events: feed.report.events });
    Ok(())
}

/// The feeding thread's side: takes decoded items in input order into the engine and the report.
struct Feed<'a, 'h> {
    cfg: &'a ReplayConfig,
    engine: &'a mut Engine,
    report: &'a mut ReplayReport,
    finding: &'h mut dyn FnMut(&Finding) -> io::Result<()>,
    rejection: &'h mut dyn FnMut(&Rejection),
    findings: Vec<Finding>,
    /// The first failed write of a finding: ends the run (items after it are dropped).
    failed: Option<io::Error>,
}

impl Feed<'_, '_> {
    fn take(&mut self, d: Decoded) {
        if self.failed.is_some() {
            return;
        }
        match d {
            Decoded::Event(ev) => {
                self.report.events += 1;
                let before = self.cfg.since.is_some_and(|s| ev.time < s);
                let after = self.cfg.until.is_some_and(|u| ev.time >= u);
                if before || after {
                    self.report.out_of_range += 1;
                    return;
                }
                self.engine.push(ev, &mut self.findings);
                if !self.findings.is_empty() {
                    self.emit();
                }
            }
            Decoded::Skipped(reason) => *self.report.skipped.entry(skip_name(reason)).or_default() += 1,
            Decoded::Rejected(r) => {
                self.report.rejected += 1;
                if self.report.first_rejections.len() < REJECTIONS_KEPT {
                    self.report.first_rejections.push(r.to_string());
                }
                (self.rejection)(&r);
            }
        }
    }

    fn emit(&mut self) {
        for f in self.findings.drain(..) {
            if f.status == Status::Closed {
                self.report.findings.add(&f);
            }
            if self.failed.is_none() {
                if let Err(e) = (self.finding)(&f) {
                    self.failed = Some(e);
                }
            }
        }
    }
}

fn skip_name(reason: SkipReason) -> &'static str {
    reason.as_str()
}
