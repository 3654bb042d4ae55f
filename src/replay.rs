//! Offline forensic replay: files → records → decoded events → detectors → findings, in parallel but with
//! a deterministic result.
//!
//! Threads and channels (all bounded by the number of batches the merger asks for):
//! - the calling thread is the **merger**. It asks the reader for batches of particular files, puts each
//!   file's decoded batches back in order, and merges the files by event time (the file whose next event
//!   is earliest goes first, ties to the earlier file), feeding the [`Engine`]. Files are ordered by
//!   their first event and join the merge when it reaches that time, so files covering the same span
//!   (several log streams, Regions or accounts) interleave as if they were one sorted file. The merger
//!   owns the request channel; dropping it ends the reader.
//! - one **reader** thread reads the requested batch of raw records from the requested file (opening
//!   files lazily, closing them at their end) and sends it, numbered per file, to the decoders. It owns
//!   the job channel; the decoders end when it closes.
//! - `threads` **decoder** threads turn batches into decoded items and send them back. Each owns a clone
//!   of the result sender; the result channel closes when the last decoder ends.
//!
//! What the detectors see depends only on the data, never on thread timing: the same input gives the same
//! findings however many threads decode it and however it is split into files.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;

use crate::decode::{decode_record, Decoded, Rejection};
use crate::detect::{DetectorStats, Engine, EngineSettings, EngineStats};
use crate::event::{FileName, LogFormat, Origin, SignInEvent};
use crate::finding::Finding;
use crate::pipeline::intake::Intake;
pub use crate::sink::summary::FindingTally;
use crate::sink::{Sink, SinkError};
use crate::source::{expand_inputs, Batch, Batched, Input, Limits, RawRecord, ReadItem, RecordReader};
use crate::spec::SpecSet;
use crate::time::Timestamp;

/// Raw records per batch handed to a decoder: large enough to amortise channel costs, small enough to
/// keep every core busy on modest inputs.
const BATCH_RECORDS: usize = 1024;
/// Batches of 16 records read at most to find a file's first event when ordering inputs.
const PEEK_BATCHES: usize = 64;
/// A batch also ends once its records hold this many bytes. With 1 MiB lines, 1024 of them would hold a
/// GiB per batch, and a line of tiny records decodes to about 50 times its size (`[{},{},...]`: 3 bytes
/// each, a 150-byte rejection each), so the bound on memory is this times the batches in flight times
/// that factor: about 100 MB at worst on two cores, against tens of GB without it.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight per decoder thread.
const BATCHES_PER_THREAD: usize = 4;
/// Records larger than this (documents, long lines: CloudTrail S3 files, `filter-log-events` output) are not
/// decoded by a decoder thread but by the merger when the record's turn comes: its rejections and skips
/// are counted as they are decoded and only its events are kept (to be put in time order). A decoder
/// thread collects a record's whole output before sending it, and a document can hold millions of tiny
/// records (`{"Records":[{},{},...]}`, 3 bytes each, becomes a 150-byte rejection each): collected, a 24 MB
/// file took 3.7 GB.
const INLINE_DECODE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub inputs: Vec<PathBuf>,
    /// The format `--format` forces; `None` for `auto` (decided per record).
    pub format: Option<LogFormat>,
    /// Events before this time are counted as out of range and not detected on.
    pub since: Option<Timestamp>,
    /// Events at or after this time are counted as out of range.
    pub until: Option<Timestamp>,
    pub limits: Limits,
    /// Decoder threads (at least 1).
    pub threads: usize,
    /// Threads the per-key rules are split across by key (`crate::detect::shard`); 1 runs every rule on
    /// the engine's thread. The findings are the same either way.
    pub shards: usize,
}

/// What a replay read and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub files: u64,
    pub bytes: u64,
    /// Lines and whole documents read (what the summary calls "line(s) or document(s)").
    pub records: u64,
    /// Events decoded: sign-ins and the other user-pool activity.
    pub events: u64,
    /// Of the events, sign-in attempts.
    pub sign_ins: u64,
    /// Of the events, user-activity events whose `creationDate` is more than a day from `eventTimestamp`
    /// (the event time used).
    pub creation_date_disagreements: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    pub rejected: u64,
    /// Decoded events outside `--since`/`--until`.
    pub out_of_range: u64,
    /// The first rejections, in input order.
    pub first_rejections: Vec<String>,
    pub engine: EngineStats,
    pub detectors: Vec<DetectorStats>,
    /// What the pool-wide rules learned (`--save-baseline`).
    pub baselines: crate::detect::baseline::BaselineFile,
    /// The correlation stage's figures (None when cases are off); the cases themselves are in `findings`.
    pub cases: Option<crate::correlate::CaseStats>,
    pub findings: FindingTally,
    pub elapsed_secs: f64,
}

impl ReplayReport {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// The log records the lines and documents held: each decoded to an event, skipped or rejected (a
    /// CloudTrail file is one document holding many records).
    pub fn records_within(&self) -> u64 {
        self.events + self.skipped_total() + self.rejected
    }
}

/// Rejections kept verbatim in the report (all are counted).
pub const REJECTIONS_KEPT: usize = 10;

/// Where a replay reports. `finding` is the sink that gets every finding as it happens (open, escalated,
/// closed; [`crate::sink::Fanout`] makes several sinks one); the summary's tally, the report's
/// `findings`, gets them too. `rejection` gets every rejected record; `progress` is called about ten
/// times a second.
pub struct ReplayHooks<'a> {
    pub finding: &'a mut dyn Sink,
    pub rejection: &'a mut dyn FnMut(&Rejection),
    pub progress: &'a mut dyn FnMut(Progress),
}

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub events: u64,
}

/// The merger asks for the next batch of a file.
struct Want {
    file: usize,
}

struct Job {
    file: usize,
    seq: u64,
    batch: Batch,
    /// The file has no more records after this batch.
    eof: bool,
}

struct Done {
    file: usize,
    seq: u64,
    decoded: Vec<Output>,
    records: u64,
    eof: bool,
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
    run_observed(cfg, specs, settings, hooks, None)
}

/// Observes every event the rules get (after `--since`/`--until`), in merge order: the forensic report's
/// aggregate (`crate::report`).
pub type EventObserver<'a> = &'a mut dyn FnMut(&SignInEvent);

/// [`run`], with every accepted event also given to `observer`.
pub fn run_observed<'h>(
    cfg: &ReplayConfig,
    specs: &SpecSet,
    settings: EngineSettings,
    hooks: ReplayHooks<'h>,
    observer: Option<EventObserver<'h>>,
) -> anyhow::Result<ReplayReport> {
    let mut engine = Engine::sharded(specs, settings, cfg.shards);
    let mut report = run_with(cfg, Some(&mut engine), hooks, observer)?;
    report.engine = engine.stats().clone();
    report.detectors = engine.detector_stats();
    report.baselines = engine.baselines();
    report.cases = engine.case_stats();
    // Freeing every key's state (hundreds of thousands of small allocations) took 1-2 % of a replay;
    // another thread does it while the caller writes the summary.
    crate::drop_later::drop_later(engine);
    Ok(report)
}

/// The decode ceiling (`authwatch replay --decode-only`): the same reader, decoder threads and in-order
/// hand-off as [`run`], but every decoded event is counted and dropped instead of detected on. A replay's
/// throughput divided by this one's is the share of the ceiling that detection leaves.
pub fn decode_only(cfg: &ReplayConfig, hooks: ReplayHooks<'_>) -> anyhow::Result<ReplayReport> {
    run_with(cfg, None, hooks, None)
}

/// The pipeline shared by [`run`] and [`decode_only`]: without an engine, events are only counted.
fn run_with<'h>(
    cfg: &ReplayConfig,
    engine: Option<&mut Engine>,
    hooks: ReplayHooks<'h>,
    observer: Option<EventObserver<'h>>,
) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let ordered = order_by_first_event(expand_inputs(&cfg.inputs)?, cfg.limits, cfg.format);
    let firsts: Vec<Option<Timestamp>> = ordered.iter().map(|(t, _)| *t).collect();
    let inputs: Vec<Input> = ordered.into_iter().map(|(_, i)| i).collect();
    let bytes_total: u64 = inputs
        .iter()
        .map(|i| match i {
            Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Stdin => 0,
        })
        .sum();
    let threads = cfg.threads.max(1);
    let in_flight = threads * BATCHES_PER_THREAD;
    let (want_tx, want_rx) = bounded::<Want>(in_flight);
    let (job_tx, job_rx) = bounded::<Job>(in_flight);
    let (done_tx, done_rx) = bounded::<Done>(in_flight);
    let bytes_read = Arc::new(AtomicU64::new(0));

    let mut report = ReplayReport { files: inputs.len() as u64, ..ReplayReport::default() };
    let result = thread::scope(|scope| -> anyhow::Result<()> {
        let reader_bytes = bytes_read.clone();
        let limits = cfg.limits;
        let files = &inputs;
        scope.spawn(move || read_inputs(files, limits, want_rx, job_tx, &reader_bytes));
        for _ in 0..threads {
            let (rx, tx, hint) = (job_rx.clone(), done_tx.clone(), cfg.format);
            scope.spawn(move || decode_batches(rx, tx, hint));
        }
        drop(job_rx);
        drop(done_tx);
        let mut merger = Merger::new(firsts, in_flight, want_tx, done_rx);
        let mut feed = Feed::new(cfg, engine, &mut report, hooks, &bytes_read, bytes_total);
        feed.observer = observer;
        let fed = merger.run(&mut feed);
        // Dropping the merger closes the request channel, which ends the reader and then the decoders.
        drop(merger);
        fed
    });
    result?;
    report.bytes = bytes_read.load(Ordering::Relaxed);
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Orders several inputs by the time of their first event (then by their given order), with that time,
/// so the merger can let each join when the merge reaches it. Reading the first records of each file is
/// enough. Standard input, which cannot be read twice, goes first.
pub fn order_by_first_event(
    inputs: Vec<Input>,
    limits: Limits,
    hint: Option<LogFormat>,
) -> Vec<(Option<Timestamp>, Input)> {
    if inputs.len() < 2 {
        return inputs.into_iter().map(|i| (Some(Timestamp(i64::MIN)), i)).collect();
    }
    let mut keyed: Vec<(Option<Timestamp>, usize, Input)> =
        inputs.into_iter().enumerate().map(|(i, input)| (first_event_time(&input, limits, hint), i, input)).collect();
    // Inputs with no readable event keep their place relative to each other, after the timed ones.
    keyed.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    keyed.into_iter().map(|(t, _, input)| (t, input)).collect()
}

/// The earliest event time in the first few records of a file (None for standard input or no event).
fn first_event_time(input: &Input, limits: Limits, hint: Option<LogFormat>) -> Option<Timestamp> {
    if matches!(input, Input::Stdin) {
        return Some(Timestamp(i64::MIN));
    }
    let mut reader = RecordReader::open(input, limits).ok()?;
    let mut items = Vec::new();
    let mut first = None;
    // A file that starts with many non-sign-in records is not read to its end just to place it.
    for _ in 0..PEEK_BATCHES {
        if first.is_some() {
            break;
        }
        items.clear();
        let more = reader.next_batch(16, &mut items);
        for item in &items {
            if let ReadItem::Record(r) = item {
                decode_record(&r.bytes, &r.origin, hint, &mut |d| {
                    if let Decoded::Event(ev) = d {
                        first = Some(first.map_or(ev.time, |t: Timestamp| t.min(ev.time)));
                    }
                });
            }
        }
        if !more {
            break;
        }
    }
    first
}

/// The reader thread: reads the batch the merger asks for, from the file it names.
fn read_inputs(inputs: &[Input], limits: Limits, wants: Receiver<Want>, jobs: Sender<Job>, bytes: &AtomicU64) {
    let mut readers: HashMap<usize, (RecordReader, u64)> = HashMap::new();
    let mut seqs = vec![0u64; inputs.len()];
    let mut finished = vec![false; inputs.len()];
    for Want { file } in wants {
        let Some(input) = inputs.get(file) else { continue };
        let seq = seqs[file];
        seqs[file] += 1;
        if finished[file] {
            // Asked for more before the end was known: an empty last batch.
            if jobs.send(Job { file, seq, batch: Batch::default(), eof: true }).is_err() {
                return;
            }
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = readers.entry(file) {
            match RecordReader::open(input, limits) {
                Ok(r) => {
                    slot.insert((r, 0));
                }
                Err(e) => {
                    finished[file] = true;
                    let name = FileName::from(input.display_name());
                    let rejection = Rejection::new(&Origin::new(name, 0), format!("cannot read: {e}"));
                    let batch = Batch::from(ReadItem::Rejected(rejection));
                    if jobs.send(Job { file, seq, batch, eof: true }).is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some((reader, before)) = readers.get_mut(&file) else { continue };
        // Most lines stay in the read buffer the batch takes; the batch's own buffer (for the first line
        // and lines longer than the read buffer) grows when needed.
        let mut batch = Batch::with_capacity(BATCH_RECORDS, 0);
        let more = reader.next_batch_into(BATCH_RECORDS, BATCH_BYTES, &mut batch);
        let now = reader.bytes_read();
        bytes.fetch_add(now.saturating_sub(*before), Ordering::Relaxed);
        *before = now;
        if !more {
            finished[file] = true;
            readers.remove(&file);
        }
        if jobs.send(Job { file, seq, batch, eof: !more }).is_err() {
            return;
        }
    }
}

/// A decoder thread: batches in, decoded items out, until the job channel closes.
fn decode_batches(jobs: Receiver<Job>, done: Sender<Done>, hint: Option<LogFormat>) {
    for mut job in jobs {
        let mut decoded = Vec::with_capacity(job.batch.len());
        let records = job.batch.len() as u64;
        for item in job.batch.drain() {
            match item {
                Batched::Line { bytes, origin } if bytes.len() > INLINE_DECODE_BYTES => {
                    decoded.push(Output::Inline(RawRecord { bytes: bytes.to_vec(), origin }));
                }
                Batched::Owned(r) if r.bytes.len() > INLINE_DECODE_BYTES => decoded.push(Output::Inline(r)),
                Batched::Line { bytes, origin } => decode_onto(&mut decoded, bytes, &origin, hint),
                Batched::Owned(r) => decode_onto(&mut decoded, &r.bytes, &r.origin, hint),
                Batched::Rejected(r) => decoded.push(Output::Decoded(Decoded::Rejected(r))),
            }
        }
        if done.send(Done { file: job.file, seq: job.seq, decoded, records, eof: job.eof }).is_err() {
            return;
        }
    }
}

/// Decodes one record onto `decoded`.
fn decode_onto(decoded: &mut Vec<Output>, bytes: &[u8], origin: &Origin, hint: Option<LogFormat>) {
    let start = decoded.len();
    decode_record(bytes, origin, hint, &mut |d| decoded.push(Output::Decoded(d)));
    // One record holding many events lists them in no particular order (a CloudTrail file's `Records`):
    // put them in time order (stable, so equal times keep theirs).
    if decoded.len() - start > 1 {
        decoded[start..].sort_by_key(|o| match o {
            Output::Decoded(Decoded::Event(ev)) => ev.time,
            _ => Timestamp(i64::MIN),
        });
    }
}

/// One input as the merger sees it.
#[derive(Default)]
struct Stream {
    /// Decoded items ready, in file order.
    queue: VecDeque<Decoded>,
    /// Batches that arrived ahead of their turn.
    early: BTreeMap<u64, Done>,
    next_seq: u64,
    outstanding: usize,
    /// The batch marked end of file has been taken into the queue: ask for nothing more.
    at_eof: bool,
}

impl Stream {
    fn finished(&self) -> bool {
        self.at_eof && self.queue.is_empty()
    }

    /// The time the stream's next item is taken at: items with no time (skips, rejections) at once.
    fn head_time(&self) -> Option<Timestamp> {
        self.queue.front().map(|d| match d {
            Decoded::Event(ev) => ev.time,
            _ => Timestamp(i64::MIN),
        })
    }
}

/// Merges the inputs by event time (see the module docs).
struct Merger {
    firsts: Vec<Option<Timestamp>>,
    streams: Vec<Stream>,
    /// Inputs below this index have joined the merge.
    joined: usize,
    in_flight: usize,
    outstanding: usize,
    wants: Sender<Want>,
    done: Receiver<Done>,
    /// Raw records taken in.
    records: u64,
}

impl Merger {
    fn new(firsts: Vec<Option<Timestamp>>, in_flight: usize, wants: Sender<Want>, done: Receiver<Done>) -> Merger {
        let streams = firsts.iter().map(|_| Stream::default()).collect();
        Merger { firsts, streams, joined: 0, in_flight, outstanding: 0, wants, done, records: 0 }
    }

    fn active(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.joined).filter(|&i| !self.streams[i].finished())
    }

    fn run(&mut self, feed: &mut Feed<'_, '_>) -> anyhow::Result<()> {
        loop {
            if self.active().next().is_none() {
                if self.joined == self.streams.len() {
                    break;
                }
                // Nothing in progress: the next input joins whatever its first time.
                self.joined += 1;
                continue;
            }
            self.request_more()?;
            // Every active input must show its next item before the earliest can be chosen.
            if self.active().any(|i| self.streams[i].queue.is_empty()) {
                self.receive(feed)?;
                continue;
            }
            let Some((best, runner_up)) = self.earliest() else { continue };
            // The next input joins as soon as its first event is not later than the earliest next item.
            let next_first = self.firsts.get(self.joined).copied().flatten();
            if let (Some(first), Some(head)) = (next_first, self.streams[best].head_time()) {
                if first <= head {
                    self.joined += 1;
                    continue;
                }
            }
            // Take from the earliest input while it stays no later than the runner-up and before the
            // next input's first event.
            let bound = match (runner_up, next_first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            while let Some(t) = self.streams[best].head_time() {
                if bound.is_some_and(|b| t > b) {
                    break;
                }
                if let Some(item) = self.streams[best].queue.pop_front() {
                    feed.item(item)?;
                }
            }
            feed.maybe_progress();
        }
        feed.report.records = self.records;
        feed.finish()
    }

    /// The active input with the earliest next item (ties to the lower index), and the runner-up's time.
    fn earliest(&self) -> Option<(usize, Option<Timestamp>)> {
        let mut best: Option<(usize, Timestamp)> = None;
        let mut second: Option<Timestamp> = None;
        for i in self.active() {
            let Some(t) = self.streams[i].head_time() else { continue };
            match best {
                Some((_, bt)) if t >= bt => second = Some(second.map_or(t, |s| s.min(t))),
                _ => {
                    if let Some((_, bt)) = best {
                        second = Some(second.map_or(bt, |s| s.min(bt)));
                    }
                    best = Some((i, t));
                }
            }
        }
        // With a runner-up at an equal time, the lower index (best) goes first up to and including it.
        best.map(|(i, _)| (i, second))
    }

    /// Keeps the decoders busy: asks for batches of the active inputs that have little queued.
    fn request_more(&mut self) -> anyhow::Result<()> {
        let active: Vec<usize> = self.active().collect();
        let share = (self.in_flight / active.len().max(1)).max(1);
        let mut asked = true;
        while asked && self.outstanding < self.in_flight {
            asked = false;
            for &i in &active {
                let s = &self.streams[i];
                if s.at_eof
                    || s.outstanding >= share
                    || s.queue.len() + s.early.len() * BATCH_RECORDS > share * BATCH_RECORDS
                {
                    continue;
                }
                if self.outstanding >= self.in_flight {
                    break;
                }
                self.wants.send(Want { file: i }).map_err(|_| anyhow::anyhow!("the reader thread stopped"))?;
                self.streams[i].outstanding += 1;
                self.outstanding += 1;
                asked = true;
            }
        }
        Ok(())
    }

    /// Waits for one decoded batch and files it under its input. A large record passed through whole is
    /// decoded here: its rejections and skips are counted at once, its events queued in time order.
    fn receive(&mut self, feed: &mut Feed<'_, '_>) -> anyhow::Result<()> {
        let batch = self.done.recv().map_err(|_| anyhow::anyhow!("the decoder threads stopped"))?;
        self.outstanding = self.outstanding.saturating_sub(1);
        let hint = feed.cfg.format;
        let s = &mut self.streams[batch.file];
        s.outstanding = s.outstanding.saturating_sub(1);
        s.early.insert(batch.seq, batch);
        while let Some(b) = s.early.remove(&s.next_seq) {
            s.next_seq += 1;
            if s.at_eof {
                continue; // an empty batch asked for before the end was known
            }
            for out in b.decoded {
                match out {
                    Output::Decoded(d) => s.queue.push_back(d),
                    Output::Inline(r) => {
                        let mut events = Vec::new();
                        let mut failed = Ok(());
                        decode_record(&r.bytes, &r.origin, hint, &mut |d| match d {
                            Decoded::Event(ev) => events.push(Decoded::Event(ev)),
                            other => {
                                if failed.is_ok() {
                                    failed = feed.item(other);
                                }
                            }
                        });
                        failed?;
                        events.sort_by_key(|d| match d {
                            Decoded::Event(ev) => ev.time,
                            _ => Timestamp(i64::MIN),
                        });
                        s.queue.extend(events);
                    }
                }
            }
            s.at_eof = b.eof;
            self.records += b.records;
        }
        Ok(())
    }
}

/// Takes merged items to the engine and the hooks, and keeps the report.
struct Feed<'c, 'h> {
    cfg: &'c ReplayConfig,
    /// None for the decode ceiling: events are counted, not detected on.
    engine: Option<&'c mut Engine>,
    report: &'c mut ReplayReport,
    hooks: ReplayHooks<'h>,
    /// Sees each accepted event before the engine takes it.
    observer: Option<EventObserver<'h>>,
    findings: Vec<Finding>,
    cases: Vec<crate::correlate::CaseRecord>,
    /// Counts what the decoders gave and keeps events to `--since`/`--until`.
    intake: Intake,
    bytes_read: &'c AtomicU64,
    bytes_total: u64,
    last_progress: Instant,
}

impl<'c, 'h> Feed<'c, 'h> {
    fn new(
        cfg: &'c ReplayConfig,
        engine: Option<&'c mut Engine>,
        report: &'c mut ReplayReport,
        hooks: ReplayHooks<'h>,
        bytes_read: &'c AtomicU64,
        bytes_total: u64,
    ) -> Feed<'c, 'h> {
        Feed {
            cfg,
            engine,
            report,
            hooks,
            observer: None,
            findings: Vec::new(),
            cases: Vec::new(),
            intake: Intake::new(cfg.since, cfg.until),
            bytes_read,
            bytes_total,
            last_progress: Instant::now(),
        }
    }

    fn item(&mut self, d: Decoded) -> Result<(), SinkError> {
        let admitted = self.intake.admit(&d);
        match d {
            Decoded::Event(ev) if admitted => {
                if let Some(observe) = self.observer.as_deref_mut() {
                    observe(&ev);
                }
                if let Some(engine) = self.engine.as_deref_mut() {
                    engine.push(ev, &mut self.findings);
                }
                self.emit()
            }
            Decoded::Event(_) | Decoded::Skipped(_) => Ok(()),
            Decoded::Rejected(r) => {
                if self.report.first_rejections.len() < REJECTIONS_KEPT {
                    self.report.first_rejections.push(r.to_string());
                }
                (self.hooks.rejection)(&r);
                Ok(())
            }
        }
    }

    fn emit(&mut self) -> Result<(), SinkError> {
        for f in self.findings.drain(..) {
            self.report.findings.emit(&f)?;
            self.hooks.finding.emit(&f)?;
        }
        if let Some(engine) = self.engine.as_deref_mut() {
            engine.drain_cases(&mut self.cases);
        }
        for c in self.cases.drain(..) {
            self.report.findings.case(&c)?;
            self.hooks.finding.case(&c)?;
        }
        Ok(())
    }

    fn maybe_progress(&mut self) {
        if self.last_progress.elapsed() >= Duration::from_millis(100) {
            self.last_progress = Instant::now();
            self.progress();
        }
    }

    fn progress(&mut self) {
        let p = Progress {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            events: self.intake.tally.events,
        };
        (self.hooks.progress)(p);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(engine) = self.engine.as_deref_mut() {
            engine.finish(&mut self.findings);
        }
        self.emit()?;
        self.progress();
        let tally = std::mem::take(&mut self.intake.tally);
        self.report.events = tally.events;
        self.report.sign_ins = tally.sign_ins;
        self.report.creation_date_disagreements = tally.creation_date_disagreements;
        self.report.skipped = tally.skipped;
        self.report.rejected = tally.rejected;
        self.report.out_of_range = tally.out_of_range;
        Ok(())
    }
}
