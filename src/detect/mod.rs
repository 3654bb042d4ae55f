//! Detection: runs every enabled rule over sign-in events in event-time order and yields findings.
//!
//! The [`Engine`] owns a small reorder buffer (bounded lateness, `detection.md` "Time") and one
//! [`Detector`] per enabled spec. Events go in with [`Engine::push`]; findings come out as incidents
//! open, escalate and close. Replay calls [`Engine::finish`] at the end of input; the monitor calls
//! [`Engine::advance_watermark`] with a wall-clock watermark so windows close when traffic stops.
//! Replay's engine ([`Engine::sharded`]) splits the per-key rules across threads by key (`shard.rs`).

pub mod account_takeover;
pub mod baseline;
pub mod cognito_risk;
pub mod counting;
pub mod credential_stuffing;
pub mod detector;
pub mod distributed_brute_force;
pub mod distributed_credential_stuffing;
pub mod failed_login_burst;
pub mod impossible_travel;
pub mod incident;
pub mod keys;
pub mod mfa_failure_after_password;
pub mod password_spray;
pub mod pool;
pub mod pool_failure_anomaly;
pub mod registry;
pub mod rule;
pub mod shard;
pub mod signup_flood;
pub mod slow_brute_force;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::correlate::{CaseRecord, CaseStats, CorrelationSpec, Correlator};
use crate::drop_later::drop_later;
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::pipeline::order::Orderer;
use crate::spec::{AllowList, Spec, SpecSet};
use crate::time::{Span, Timestamp};
use shard::{Batch, Prepared, Shard, Step, UserText, Worker};

pub use detector::{Detector, DetectorStats};
pub use incident::{elapsed, IncidentBook, Summarize};
pub use keys::{group_ip, same_group, IpKey, Keys, PoolKeys, UserAliases, MAX_USER_ALIASES};
pub use registry::build;

/// Events up to this far behind the newest one seen are put back in order before detection
/// (`detection.md`: default 60 s).
pub const DEFAULT_LATENESS: Span = Span::secs(60);
/// IPv6 addresses are grouped by this prefix: attackers rotate addresses inside one /64.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// Cap on events held in the reorder buffer; beyond it the oldest are released early (counted, and shown
/// in the summary). A typical event costs about 1 KB here ([`crate::pipeline::order::held_size`]), so
/// the buffer stays near 100 MB: a flood of 20,000 events a second would otherwise hold 1.2 million events
/// for the 60 s lateness. Normal traffic (under about 1,600 events a second) never reaches it, and
/// in-order input loses nothing by it.
pub const MAX_REORDER_EVENTS: usize = 100_000;
/// Cap on the reorder buffer's memory, for events far larger than typical (long names, up to the record
/// limit each), which reach it before [`MAX_REORDER_EVENTS`]: the monitor's `--max-held-mb` default.
pub const MAX_REORDER_BYTES: usize = 256 << 20;
/// Events the engine is done with, freed together on another thread (about 400 KB).
const SPENT_BATCH: usize = 1024;

/// Settings shared by every rule.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub lateness: Span,
    pub ipv6_prefix: u8,
    /// Added to every rule's own allow-list.
    pub allow: AllowList,
    /// A MaxMind City database (`--geoip`): locates sign-ins without a usable city name.
    pub geo: Option<Arc<crate::geo::GeoIp>>,
    /// Locate by address first, names second (`--prefer-geoip`); only meaningful with `geo`.
    pub prefer_geoip: bool,
    /// Learned baselines to start the pool-wide rules with (`--baseline FILE`), instead of a warm-up.
    pub baseline: Option<Arc<baseline::BaselineFile>>,
    /// How findings are grouped into cases (`crate::correlate`); a spec with `enabled = false` turns
    /// the stage off.
    pub correlation: Arc<CorrelationSpec>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lateness: DEFAULT_LATENESS,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            allow: AllowList::default(),
            geo: None,
            prefer_geoip: false,
            baseline: None,
            correlation: Arc::new(CorrelationSpec::builtin()),
        }
    }
}

/// Figures about the event stream as the engine saw it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    /// Arrived out of order but within the lateness bound: put back in order.
    pub reordered: u64,
    /// Arrived later than the lateness bound: still given to the rules whose window was open.
    pub late: u64,
    /// Released before the lateness bound because the reorder buffer was full ([`Orderer::forced`]).
    pub forced_releases: u64,
    pub first_event: Option<Timestamp>,
    pub last_event: Option<Timestamp>,
}

/// What lets events leave the engine's orderer for the rules: the only difference between the two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Replay: an event leaves once the newest event seen is `lateness` past it (bounded lateness on event
    /// time), and at the end of input.
    Lateness,
    /// The monitor: events leave only up to the watermark the caller passes to
    /// [`Engine::advance_watermark_each`] (every source caught up, minus `--allowed-delay`), or when the
    /// orderer is over its memory cap ([`Engine::release_over_cap`]).
    Watermark,
}

/// The pool-wide rules of `specs` with how each learns its baseline (to check a `--baseline` file).
pub fn pool_band_params(specs: &SpecSet) -> Vec<(&str, baseline::BandParams)> {
    specs
        .specs
        .iter()
        .filter_map(|s| {
            let p = &s.params;
            let band = p
                .get::<distributed_credential_stuffing::PoolStuffingParams>()
                .map(|p| p.baseline)
                .or_else(|| p.get::<pool_failure_anomaly::AnomalyParams>().map(|p| p.baseline))
                .or_else(|| p.get::<signup_flood::SignupFloodParams>().map(|p| p.baseline))?;
            Some((s.id.as_str(), band))
        })
        .collect()
}

/// Runs the rules. Single-threaded: callers decode in parallel and feed events in a deterministic order.
///
/// Events go in with [`Engine::push`] in arrival order and are put in event-time order by the one
/// time-ordering buffer of both commands ([`Orderer`], bounded in memory); [`Release`] says when they
/// leave it for the rules.
pub struct Engine {
    detectors: Vec<Box<dyn Detector>>,
    settings: EngineSettings,
    release: Release,
    /// Events waiting to leave, on (time, arrival): equal times leave in arrival order.
    buffer: Orderer,
    /// Time of the last event released to the rules.
    released: Option<Timestamp>,
    aliases: UserAliases,
    pools: PoolKeys,
    stats: EngineStats,
    /// Events the rules are done with, freed a batch at a time on another thread ([`drop_later`]).
    #[allow(clippy::vec_box)] // the events as they came, boxed: unboxing each would copy it
    spent: Vec<Box<SignInEvent>>,
    /// The stage after the rules: findings into cases. None when the correlation spec turns it off.
    cases: Option<Correlator>,
    /// Replay's batches of steps for the rules, and the threads running the shards of the per-key rules
    /// (`shard.rs`; none with one shard). None (the monitor, tests): each event goes to the rules as it
    /// is released.
    sharding: Option<Sharding>,
}

#[derive(Default)]
struct Sharding {
    workers: Vec<Worker>,
    batch: Batch,
}

impl Engine {
    /// An engine on event time: events leave the orderer `settings.lateness` behind the newest one seen
    /// ([`Release::Lateness`]), and early past [`MAX_REORDER_EVENTS`] or [`MAX_REORDER_BYTES`], each
    /// going to the rules as it leaves. Replay runs [`Engine::sharded`], this in batches.
    pub fn new(specs: &SpecSet, settings: EngineSettings) -> Engine {
        let buffer = Orderer::capped(MAX_REORDER_BYTES).at_most(MAX_REORDER_EVENTS);
        Engine::with_release(specs, settings, Release::Lateness, buffer)
    }

    /// Replay's engine: [`Engine::new`], with the rules whose state is per key ([`Detector::shard_key`])
    /// split into `shards` instances by key, each on a thread of its own (`shard.rs`); with 1, every rule
    /// runs here. Either way events go to the rules a batch at a time, so the findings come out at the
    /// same points of the input whatever the number: the same findings, in the same order, and the same
    /// interleaving with the input for anything that watches both (the report's account stories).
    pub fn sharded(specs: &SpecSet, settings: EngineSettings, shards: usize) -> Engine {
        let mut engine = Engine::new(specs, settings);
        let shards = shards.clamp(1, shard::MAX_SHARDS);
        let split: Vec<usize> =
            (0..engine.detectors.len()).filter(|&i| engine.detectors[i].shard_key().is_some()).collect();
        if shards == 1 || split.is_empty() {
            engine.sharding = Some(Sharding::default());
            return engine;
        }
        // Every shard on a worker: this thread has the whole rules, the merge and the correlation stage, and
        // is the first to be short of time (measured on 2 cores: 1.34x against 1.28x with shard 0 here).
        // Each instance keeps its share of the rule's `max_keys`: the rule's bound on memory holds
        // whatever the number of shards.
        let enabled: Vec<&Spec> = specs.enabled().collect();
        let mut workers = Vec::with_capacity(shards);
        for n in 0..shards {
            let instances = split
                .iter()
                .map(|&i| {
                    let spec = Spec { max_keys: (enabled[i].max_keys / shards).max(1), ..enabled[i].clone() };
                    let mut d = build(&spec, &engine.settings);
                    d.set_shard(Shard::new(n, shards));
                    (i, d)
                })
                .collect();
            match Worker::start(n, instances) {
                Ok(w) => workers.push(w),
                // No thread to be had: every rule runs here.
                Err(_) => {
                    engine.sharding = Some(Sharding::default());
                    return engine;
                }
            }
        }
        // This thread's own instances of the sharded rules stay idle (their figures are zero).
        engine.sharding = Some(Sharding { workers, batch: Batch::default() });
        engine
    }

    /// The monitor's engine: events wait in the orderer for the watermark ([`Release::Watermark`]); past
    /// `max_held_bytes` (`--max-held-mb`) the oldest leave early, counted as forced.
    pub fn watermarked(specs: &SpecSet, settings: EngineSettings, max_held_bytes: usize) -> Engine {
        let settings = EngineSettings { lateness: Span(0), ..settings };
        Engine::with_release(specs, settings, Release::Watermark, Orderer::capped(max_held_bytes))
    }

    fn with_release(specs: &SpecSet, settings: EngineSettings, release: Release, buffer: Orderer) -> Engine {
        let detectors = specs.enabled().map(|s| build(s, &settings)).collect();
        let cases = settings
            .correlation
            .enabled
            .then(|| Correlator::new((*settings.correlation).clone(), settings.ipv6_prefix));
        Engine {
            cases,
            detectors,
            settings,
            release,
            buffer,
            released: None,
            aliases: UserAliases::default(),
            pools: PoolKeys::default(),
            stats: EngineStats::default(),
            spent: Vec::new(),
            sharding: None,
        }
    }

    /// The rules are done with `ev`: it is freed with others on another thread ([`drop_later`]).
    fn done_with(&mut self, ev: Box<SignInEvent>) {
        self.spent.push(ev);
        if self.spent.len() >= SPENT_BATCH {
            let batch = std::mem::replace(&mut self.spent, Vec::with_capacity(SPENT_BATCH));
            drop_later(batch);
        }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Takes one event; findings that result (open, escalated, closed) are appended to `out`. With
    /// [`Release::Watermark`] the event only joins the orderer: nothing is released here.
    pub fn push(&mut self, ev: impl Into<Box<SignInEvent>>, out: &mut Vec<Finding>) {
        let ev = ev.into();
        let newest = self.stats.last_event;
        self.stats.events += 1;
        self.stats.first_event = Some(self.stats.first_event.map_or(ev.time, |t| t.min(ev.time)));
        self.stats.last_event = Some(newest.map_or(ev.time, |t| t.max(ev.time)));
        if self.release == Release::Watermark {
            // Events behind the watermark wait too: they leave first at the next one, as the oldest.
            self.buffer.push(ev);
            return;
        }
        if let Some(released) = self.released {
            if ev.time < released {
                // Too late for the buffer: the rules place it if their window is still open.
                self.stats.late += 1;
                self.take(ev, out);
                return;
            }
        }
        if newest.is_some_and(|m| ev.time < m) {
            self.stats.reordered += 1;
        }
        self.buffer.push(ev);
        // The newest event seen, whose lateness bound releases the rest: a late event (above) never is it.
        let horizon = self.stats.last_event.map(|m| m.saturating_sub(self.settings.lateness));
        self.release_until(horizon, out);
        self.release_over_cap(out, &mut |_| {});
    }

    /// The monitor's wall-clock watermark: no event older than `watermark` is expected any more beyond
    /// the lateness bound, so buffered events up to `watermark - lateness` are released and quiet
    /// incidents close even when no new events arrive.
    pub fn advance_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Finding>) {
        self.advance_watermark_each(watermark, out, &mut |_| {});
    }

    /// [`Engine::advance_watermark`], calling `each` with the time the rules took over every event
    /// released (the monitor's per-event processing figure).
    pub fn advance_watermark_each(
        &mut self,
        watermark: Timestamp,
        out: &mut Vec<Finding>,
        each: &mut dyn FnMut(Duration),
    ) {
        let horizon = watermark.saturating_sub(self.settings.lateness);
        while let Some(ev) = self.buffer.pop_through(horizon) {
            self.release_timed(ev, out, each);
        }
        if self.released.is_none_or(|r| r < horizon) {
            self.released = Some(horizon);
        }
        self.advance_detectors(horizon, out);
    }

    /// Releases the oldest events while the orderer is over its memory cap, counted as forced (with
    /// [`Release::Lateness`], `push` already does). `each` as for [`Engine::advance_watermark_each`].
    pub fn release_over_cap(&mut self, out: &mut Vec<Finding>, each: &mut dyn FnMut(Duration)) {
        while let Some(ev) = self.buffer.pop_over_cap() {
            self.release_timed(ev, out, each);
        }
        self.stats.forced_releases = self.buffer.forced();
    }

    fn release_timed(&mut self, ev: Box<SignInEvent>, out: &mut Vec<Finding>, each: &mut dyn FnMut(Duration)) {
        let started = Instant::now();
        self.release(ev, out);
        each(started.elapsed());
    }

    /// End of input: releases everything and closes every incident, then every case.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        self.release_until(None, out);
        self.flush(out);
        let mut closed = Vec::new();
        for d in &mut self.detectors {
            d.finish(&mut closed);
        }
        for w in self.sharding.iter().flat_map(|s| &s.workers) {
            w.with_detectors(|ds| ds.iter_mut().for_each(|(_, d)| d.finish(&mut closed)));
        }
        sort_closed(&mut closed);
        let end = self.released.or(self.stats.last_event).unwrap_or(Timestamp(0));
        if let Some(c) = &mut self.cases {
            c.correlate(&mut closed, end);
            c.finish(end);
        }
        out.extend(closed);
    }

    /// The case updates (open, escalated, merged, closed) since the last call, in order; each finding
    /// handed out before them already carries its `case_id`.
    pub fn drain_cases(&mut self, out: &mut Vec<CaseRecord>) {
        if let Some(c) = &mut self.cases {
            c.drain(out);
        }
    }

    /// Figures of the correlation stage (None when it is off).
    pub fn case_stats(&self) -> Option<CaseStats> {
        self.cases.as_ref().map(Correlator::stats)
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Figures of each rule (of all its shards together). Complete after [`Engine::finish`]: before, a
    /// sharded engine may hold a batch of events the rules have not taken yet.
    pub fn detector_stats(&self) -> Vec<DetectorStats> {
        let mut stats: Vec<DetectorStats> = self.detectors.iter().map(|d| d.stats()).collect();
        for w in self.sharding.iter().flat_map(|s| &s.workers) {
            w.with_detectors(|ds| {
                for (i, d) in ds.iter() {
                    if let Some(s) = stats.get_mut(*i) {
                        s.absorb(&d.stats());
                    }
                }
            });
        }
        stats
    }

    /// What the pool-wide rules learned, by rule id (`--save-baseline`, the monitor's `baseline.json`).
    pub fn baselines(&self) -> baseline::BaselineFile {
        let mut file = baseline::BaselineFile::new();
        for d in &self.detectors {
            if let Some(b) = d.baseline() {
                file.rules.insert(d.spec().id.clone(), b);
            }
        }
        file
    }

    /// The earliest `first_seen` of any open incident, across rules (see [`Detector::earliest_open`]).
    pub fn earliest_open(&self) -> Option<Timestamp> {
        let cases = self.cases.as_ref().and_then(Correlator::earliest_open);
        let shards = self
            .sharding
            .iter()
            .flat_map(|s| &s.workers)
            .filter_map(|w| w.with_detectors(|ds| ds.iter().filter_map(|(_, d)| d.earliest_open()).min()));
        self.detectors.iter().filter_map(|d| d.earliest_open()).chain(cases).chain(shards).min()
    }

    /// Events waiting in the orderer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The memory the waiting events take, as the orderer's cap counts it.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.bytes()
    }

    /// Releases buffered events with time <= `horizon` (all when None), in order.
    fn release_until(&mut self, horizon: Option<Timestamp>, out: &mut Vec<Finding>) {
        while let Some(time) = self.buffer.next_time() {
            if horizon.is_some_and(|h| time > h) {
                break;
            }
            if let Some(ev) = self.buffer.pop() {
                self.release(ev, out);
            }
        }
    }

    /// Gives the rules the next event in time order.
    fn release(&mut self, ev: Box<SignInEvent>, out: &mut Vec<Finding>) {
        let advanced = self.released.is_none_or(|r| ev.time > r);
        if !advanced && self.released.is_some_and(|r| ev.time < r) {
            // Only with [`Release::Watermark`]: it waited in the orderer after the watermark passed it.
            self.stats.late += 1;
        }
        if advanced {
            self.released = Some(ev.time);
            self.advance_detectors(ev.time, out);
        }
        self.take(ev, out);
    }

    /// Gives the rules one event: now, or with a sharded engine, as the next step of the batch.
    fn take(&mut self, ev: Box<SignInEvent>, out: &mut Vec<Finding>) {
        let Some(sharding) = &mut self.sharding else {
            self.process(&ev, out);
            self.done_with(ev);
            return;
        };
        // Which shard keeps each key, once here for every worker; read only by sharded instances.
        let workers = !sharding.workers.is_empty();
        let split = |text: &str| if workers { shard::split_hash(text) } else { window::NO_COUNTERPART };
        let mut user_split = window::NO_COUNTERPART;
        let user = self.aliases.key(&ev).map(|(key, hash)| {
            user_split = split(key);
            (UserText::of(&ev, key), hash)
        });
        let ip = ev.ip.map(|ip| IpKey::group(ip, self.settings.ipv6_prefix));
        let ip_split = ip.as_ref().map_or(window::NO_COUNTERPART, |key| split(key.as_str()));
        let ip = ip.map(|key| {
            let hash = window::key_hash(key.as_str());
            (key, hash)
        });
        let pool = self.pools.key(&ev).map(|(text, hash)| sharding.batch.pool(text, hash));
        sharding.batch.steps.push(Step::Event(ev, Prepared { user, ip, pool, user_split, ip_split }));
        if sharding.batch.steps.len() >= shard::BATCH_STEPS {
            self.flush(out);
        }
    }

    /// Runs the batch waiting for a sharded engine's threads: this thread takes the whole rules, the
    /// workers one shard each of the others; their findings are put back in the order one thread would have
    /// made them (by step, then by rule) and go through the correlation stage as [`Engine::process`] and
    /// [`Engine::advance_detectors`] send them.
    fn flush(&mut self, out: &mut Vec<Finding>) {
        let Some(sharding) = &mut self.sharding else { return };
        if sharding.batch.steps.is_empty() {
            return;
        }
        let batch = Arc::new(std::mem::take(&mut sharding.batch));
        for w in &sharding.workers {
            w.send(Arc::clone(&batch));
        }
        let mut found = Vec::new();
        let mut here: Vec<(usize, &mut dyn Detector)> = self
            .detectors
            .iter_mut()
            .enumerate()
            // With workers, the rules they run in shards stay idle here.
            .filter(|(_, d)| sharding.workers.is_empty() || d.shard_key().is_none())
            .map(|(i, d)| (i, &mut **d as &mut dyn Detector))
            .collect();
        shard::run(&batch, &mut here, &mut found);
        for w in &sharding.workers {
            found.extend(w.collect());
        }
        // Stable: one rule's findings at one event all come from the thread that owns its key, in order.
        found.sort_by_key(|f| (f.step, f.detector));
        let mut found = found.into_iter().peekable();
        for (n, step) in batch.steps.iter().enumerate() {
            let mut at_step = Vec::new();
            while let Some(f) = found.next_if(|f| f.step as usize == n) {
                at_step.push(f.finding);
            }
            match step {
                Step::Advance(now) => {
                    sort_closed(&mut at_step);
                    if let Some(c) = &mut self.cases {
                        c.correlate(&mut at_step, *now);
                        c.advance(*now);
                    }
                    out.extend(at_step);
                }
                Step::Event(ev, prepared) => {
                    if let Some(c) = &mut self.cases {
                        let (ip, user) = (prepared.ip.as_ref(), prepared.user.as_ref());
                        c.observe(ev, ip.map(|(_, h)| *h), user.map(|(_, h)| *h));
                        c.correlate(&mut at_step, ev.time);
                    }
                    out.extend(at_step);
                }
            }
        }
        drop_later(batch);
    }

    fn process(&mut self, ev: &SignInEvent, out: &mut Vec<Finding>) {
        let user = self.aliases.key(ev);
        let user_name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let ip = ev.ip.map(|ip| IpKey::group(ip, self.settings.ipv6_prefix));
        let pool = self.pools.key(ev);
        let keys = Keys::hashed(user, user_name, ip.as_ref().map(IpKey::as_str)).with_pool(pool);
        let from = out.len();
        for d in &mut self.detectors {
            d.observe(ev, &keys, out);
        }
        if let Some(c) = &mut self.cases {
            c.observe(ev, keys.ip.map(|_| keys.ip_hash), keys.user.map(|_| keys.user_hash));
            c.correlate(&mut out[from..], ev.time);
        }
    }

    fn advance_detectors(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        if let Some(sharding) = &mut self.sharding {
            sharding.batch.steps.push(Step::Advance(now));
            return;
        }
        let mut closed = Vec::new();
        for d in &mut self.detectors {
            d.advance(now, &mut closed);
        }
        sort_closed(&mut closed);
        if let Some(c) = &mut self.cases {
            c.correlate(&mut closed, now);
            c.advance(now);
        }
        out.extend(closed);
    }
}

/// Incidents closing at the same moment leave in a fixed order, whatever order the rules' maps hold them.
fn sort_closed(closed: &mut [Finding]) {
    closed.sort_by(|a, b| {
        (a.last_seen, a.detected_at, &a.rule, &a.incident_id).cmp(&(
            b.last_seen,
            b.detected_at,
            &b.rule,
            &b.incident_id,
        ))
    });
}
