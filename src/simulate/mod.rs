//! `authwatch simulate`: seeded, realistic synthetic Cognito sign-in traffic with planted attacks and their
//! ground truth.
//!
//! Benign users ([`benign`]) sign in on a daily rhythm from their home city; attacks ([`attacks`],
//! [`waves`]) are planted as they look in a real pool, and benign look-alikes ([`lookalikes`]) beside
//! them, at times [`schedule`] keeps apart; all are recorded in the truth. Every actor (a user, an attack)
//! waits in a min-heap keyed on its next event time, so events stream out in time order with memory
//! O(users + attacks), however many are generated. The same arguments give byte-identical output.

pub mod attacks;
pub mod benign;
pub mod cities;
pub mod lookalikes;
pub mod plan;
pub mod render;
pub mod rng;
pub mod schedule;
pub mod waves;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use self::attacks::AttackKind;
use self::benign::{user_name, user_sub, Benign, EVENTS_PER_SESSION, MAX_SESSION_SPAN, SESSIONS_PER_USER_DAY};
use self::plan::{Planned, Who};
use self::render::{Identity, PoolInfo};
use self::rng::Rng;
use crate::time::{Span, Timestamp};

/// Fewest users a simulation accepts: the office NAT and a few trips need a population.
pub const MIN_USERS: u32 = 10;
/// Most users: per-user state is kept in memory (about 200 bytes each).
pub const MAX_USERS: u32 = 50_000_000;
/// Shortest run.
pub const MIN_DURATION: Span = Span::mins(1);
/// Longest run: a year is plenty for replay tests and keeps timestamps plausible.
pub const MAX_DURATION: Span = Span(366 * 86_400_000);
/// `--attacks default` plants one of each per-address and per-account kind per this much simulated time
/// (at least one round).
pub const DEFAULT_ATTACK_ROUND: Span = Span(12 * 3_600_000);
/// `--attacks all` plants one of every kind and look-alike per this much simulated time (at least one
/// round): a day holds each once with the pool-wide items after the warm-up and hours apart.
pub const ALL_ROUND: Span = Span(24 * 3_600_000);
/// Most attacks of one kind.
pub const MAX_ATTACKS_PER_KIND: u32 = 1000;

/// Arguments of `authwatch simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Users in the pool.
    #[arg(long, default_value_t = 20_000)]
    pub users: u32,
    /// Simulated time span (e.g. 24h, 7d, 90m).
    #[arg(long, default_value = "24h")]
    pub duration: String,
    /// Start time, RFC 3339 (default: the run ends, rounded down to the minute, early enough that its last
    /// sessions are over by now).
    #[arg(long)]
    pub start: Option<String>,
    /// Random seed: the same arguments and seed give byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Attacks and benign look-alikes to plant: "default" (the per-address and per-account attacks), "all"
    /// (every attack and look-alike), "none", or counts such as "stuffing=2,proxy_stuffing=1,client_release=1".
    #[arg(long, default_value = "default")]
    pub attacks: String,
    /// Target total event count: scales the benign sign-in rate (for benchmarks).
    #[arg(long)]
    pub events: Option<u64>,
    /// Log format written: cognito (user-activity export), cloudtrail, or mixed (alternating).
    #[arg(long, default_value = "cognito")]
    pub log_format: String,
    /// User pool id written into every event; its prefix is the Region.
    #[arg(long, default_value = "us-east-1_Demo0001")]
    pub user_pool_id: String,
    /// Output file for the JSON-lines log (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output file for the ground truth (a JSON array of attacks).
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// Which log format the simulation writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The exported Cognito user-activity log (aws-formats.md §1).
    Cognito,
    /// CloudTrail records for cognito-idp (§2).
    CloudTrail,
    /// Alternating per event; events whose detection needs Cognito-only fields (risk, location) are
    /// always Cognito.
    Mixed,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<OutputFormat, String> {
        match s {
            "cognito" => Ok(OutputFormat::Cognito),
            "cloudtrail" => Ok(OutputFormat::CloudTrail),
            "mixed" => Ok(OutputFormat::Mixed),
            other => Err(format!("--log-format '{other}': expected cognito, cloudtrail or mixed")),
        }
    }
}

/// Validated simulation settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub users: u32,
    pub start: Timestamp,
    pub duration: Span,
    pub seed: u64,
    /// How many attacks of each kind, in [`AttackKind::ALL`] order; kinds with 0 are left out.
    pub attacks: Vec<(AttackKind, u32)>,
    pub events: Option<u64>,
    pub format: OutputFormat,
    pub user_pool_id: String,
    /// The Region, from the pool id.
    pub region: String,
}

impl SimConfig {
    /// Validates raw arguments; every error names the flag at fault.
    pub fn from_args(a: &SimulateArgs) -> Result<SimConfig, String> {
        if !(MIN_USERS..=MAX_USERS).contains(&a.users) {
            return Err(format!("--users {}: expected {MIN_USERS} to {MAX_USERS}", a.users));
        }
        let duration = Span::parse(&a.duration).map_err(|e| format!("--duration {e}"))?;
        if duration < MIN_DURATION || duration > MAX_DURATION {
            return Err(format!("--duration {duration}: expected {MIN_DURATION} to {MAX_DURATION}"));
        }
        let start = match &a.start {
            Some(s) => Timestamp::parse_rfc3339(s)
                .ok_or_else(|| format!("--start '{s}': expected RFC 3339, e.g. 2026-03-02T00:00:00Z"))?,
            None => default_start(Timestamp::now(), duration),
        };
        if !start.is_plausible() || !start.saturating_add(duration).is_plausible() {
            return Err(format!("--start {start}: the run must lie between 2000 and 2100"));
        }
        let format = OutputFormat::parse(&a.log_format)?;
        let region = parse_pool_id(&a.user_pool_id)?;
        if a.events == Some(0) {
            return Err("--events 0: expected a positive count (or leave it out)".into());
        }
        let attacks = parse_attacks(&a.attacks, format, duration)?;
        check_users(&attacks, a.users)?;
        // The same slots the simulation will use: a plan that does not fit is refused before any output.
        schedule::slots(&kinds(&attacks), start, duration, &mut Rng::new(a.seed, STREAM_SCHEDULE))?;
        Ok(SimConfig {
            users: a.users,
            start,
            duration,
            seed: a.seed,
            attacks,
            events: a.events,
            format,
            user_pool_id: a.user_pool_id.clone(),
            region,
        })
    }

    pub fn end(&self) -> Timestamp {
        self.start.saturating_add(self.duration)
    }
}

/// Without `--start`: the run ends at least [`MAX_SESSION_SPAN`] before `now` (a session that starts just
/// before the end runs past it), so no event is stamped in the future, where a monitor following the log
/// would wait for the clock to reach it. Rounded down to the minute.
fn default_start(now: Timestamp, duration: Span) -> Timestamp {
    let t = now.saturating_sub(MAX_SESSION_SPAN).saturating_sub(duration);
    Timestamp(t.millis().div_euclid(60_000) * 60_000)
}

/// Checks `<region>_<id>` (e.g. `us-east-1_Demo0001`) and returns the Region.
fn parse_pool_id(id: &str) -> Result<String, String> {
    let bad = || format!("--user-pool-id '{id}': expected <region>_<id>, e.g. us-east-1_Demo0001");
    let (region, rest) = id.split_once('_').ok_or_else(bad)?;
    let region_ok = region.split('-').count() >= 3
        && region.split('-').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    if !region_ok || rest.is_empty() || !rest.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok(region.to_string())
}

/// Parses `--attacks`: "default", "all", "none" or `kind=count,...`.
fn parse_attacks(spec: &str, format: OutputFormat, duration: Span) -> Result<Vec<(AttackKind, u32)>, String> {
    let usable = |k: &AttackKind| format != OutputFormat::CloudTrail || !k.needs_cognito();
    let rounds = |round: Span| (duration.millis() / round.millis()).max(1) as u32;
    match spec.trim() {
        "none" => return Ok(Vec::new()),
        "default" => {
            let n = rounds(DEFAULT_ATTACK_ROUND);
            return Ok(AttackKind::CLASSIC.iter().filter(|k| usable(k)).map(|&k| (k, n)).collect());
        }
        "all" => {
            let n = rounds(ALL_ROUND);
            return Ok(AttackKind::ALL.iter().filter(|k| usable(k)).map(|&k| (k, n)).collect());
        }
        _ => {}
    }
    let mut counts = [None::<u32>; AttackKind::ALL.len()];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, count) =
            part.split_once('=').ok_or_else(|| format!("--attacks '{part}': expected kind=count, e.g. stuffing=2"))?;
        let kind = AttackKind::parse(name.trim()).ok_or_else(|| {
            let names: Vec<&str> = AttackKind::ALL.iter().map(|k| k.name()).collect();
            format!("--attacks: unknown kind '{}' (expected one of {})", name.trim(), names.join(", "))
        })?;
        let n: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n <= MAX_ATTACKS_PER_KIND)
            .ok_or_else(|| format!("--attacks '{part}': count must be 0 to {MAX_ATTACKS_PER_KIND}"))?;
        if counts[kind as usize].replace(n).is_some() {
            return Err(format!("--attacks: '{}' is listed twice", kind.name()));
        }
        if n > 0 && !usable(&kind) {
            return Err(format!(
                "--attacks {}: needs --log-format cognito or mixed (CloudTrail logs no risk or location)",
                kind.name()
            ));
        }
    }
    Ok(AttackKind::ALL.iter().filter_map(|&k| counts[k as usize].filter(|n| *n > 0).map(|n| (k, n))).collect())
}

/// Every planted item, `count` times each.
fn kinds(attacks: &[(AttackKind, u32)]) -> Vec<AttackKind> {
    attacks.iter().flat_map(|&(k, n)| std::iter::repeat_n(k, n as usize)).collect()
}

/// Planted items take distinct users: at most half the pool, as their users stop their own sign-ins
/// around them.
fn check_users(attacks: &[(AttackKind, u32)], users: u32) -> Result<(), String> {
    let needed_users: u64 = attacks.iter().map(|(k, c)| u64::from(k.max_pool_users(users)) * u64::from(*c)).sum();
    if needed_users * 2 > u64::from(users) {
        return Err(format!(
            "--users {users} is too small for the attacks, which take up to {needed_users} users: use at least {}",
            needed_users * 2
        ));
    }
    Ok(())
}

/// One planted attack or benign look-alike, as the ground-truth file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attack {
    /// `<kind>-<n>`, e.g. `stuffing-1`.
    pub id: String,
    /// The `--attacks` name of its kind: stuffing, proxy_stuffing, client_release, ...
    pub kind: String,
    /// Detector ids that must fire on it; none for a look-alike.
    pub detectors: Vec<String>,
    /// Pool-wide detectors that may fire on it too, rightly (its failures move the pool's failure rate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Benign traffic that resembles an attack: any finding on it is a false alarm.
    #[serde(default)]
    pub lookalike: bool,
    /// Judged against the whole pool: a finding keyed on the pool belongs to it by time.
    #[serde(default)]
    pub pool_wide: bool,
    /// Its addresses: the attacker's, or the look-alike's users'.
    pub ips: Vec<String>,
    /// Users involved, as the log shows them: user names (Cognito), subs (CloudTrail), both (mixed).
    pub users: Vec<String>,
    /// Pool accounts the attacker signed in to (as `users` shows them): the takeovers to act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub takeovers: Vec<String>,
    /// Its events in the log.
    #[serde(default)]
    pub events: u64,
    /// First and last event.
    pub start: Timestamp,
    pub end: Timestamp,
}

/// One generated log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    pub time: Timestamp,
    /// One JSON log event, without a newline.
    pub line: String,
}

/// What a run produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSummary {
    pub events: u64,
    /// Planted attacks, and benign look-alikes beside them.
    pub attacks: usize,
    pub lookalikes: usize,
}

/// Heap entry: (next event time, push order for ties, actor). Actors below the user count are users; the
/// rest are attacks.
type Slot = Reverse<(Timestamp, u64, u32)>;

/// The running simulation: an iterator over events in non-decreasing time order.
pub struct Simulation {
    benign: Benign,
    /// Each attack's events still to emit, last first.
    attacks: Vec<Vec<Planned>>,
    truth: Vec<Attack>,
    heap: BinaryHeap<Slot>,
    pushes: u64,
    /// Draws made while emitting (ids, benign sessions); separate from set-up streams.
    rng: Rng,
    pool: PoolInfo,
    format: OutputFormat,
    emitted: u64,
    user_count: u32,
}

/// Independent random streams, so that one part drawing more never shifts another.
const STREAM_USERS: u64 = 1;
const STREAM_ATTACKS: u64 = 2;
const STREAM_EVENTS: u64 = 3;
const STREAM_POOL: u64 = 4;
const STREAM_SCHEDULE: u64 = 5;

impl Simulation {
    pub fn new(cfg: &SimConfig) -> Result<Simulation, String> {
        let end = cfg.end();
        let mut benign = Benign::new(
            cfg.users,
            cfg.seed,
            cfg.start,
            end,
            SESSIONS_PER_USER_DAY,
            &mut Rng::new(cfg.seed, STREAM_USERS),
        );
        let slots =
            schedule::slots(&kinds(&cfg.attacks), cfg.start, cfg.duration, &mut Rng::new(cfg.seed, STREAM_SCHEDULE))?;
        let mut attack_rng = Rng::new(cfg.seed, STREAM_ATTACKS);
        let plans = attacks::plan_all(&slots, cfg.format, &mut benign, &mut attack_rng)?;
        if let Some(target) = cfg.events {
            let attack_events: u64 = plans.iter().map(|p| p.events.len() as u64).sum();
            let days = cfg.duration.millis() as f64 / 86_400_000.0;
            let per_day =
                target.saturating_sub(attack_events) as f64 / (f64::from(cfg.users) * days * EVENTS_PER_SESSION);
            benign.set_sessions_per_day(per_day);
        }
        let mut pool_rng = Rng::new(cfg.seed, STREAM_POOL);
        let pool = PoolInfo {
            user_pool_id: cfg.user_pool_id.clone(),
            region: cfg.region.clone(),
            clients: [client_id(&mut pool_rng), client_id(&mut pool_rng)],
            account_id: (0..12).map(|_| char::from(b'0' + pool_rng.below(10) as u8)).collect(),
        };
        let mut sim = Simulation {
            benign,
            attacks: Vec::with_capacity(plans.len()),
            truth: Vec::with_capacity(plans.len()),
            heap: BinaryHeap::with_capacity(cfg.users as usize + plans.len()),
            pushes: 0,
            rng: Rng::new(cfg.seed, STREAM_EVENTS),
            pool,
            format: cfg.format,
            emitted: 0,
            user_count: cfg.users,
        };
        for idx in 0..cfg.users {
            if sim.benign.plan_next(idx, cfg.start, &mut sim.rng) {
                sim.schedule_user(idx);
            }
        }
        for plan in plans {
            let actor = cfg.users + sim.attacks.len() as u32;
            if let Some(first) = plan.events.last() {
                sim.push(first.time, actor);
            }
            sim.attacks.push(plan.events);
            sim.truth.push(plan.truth);
        }
        sim.truth.sort_by_key(|a| a.start);
        Ok(sim)
    }

    /// The planted attacks and look-alikes, in start order.
    pub fn truth(&self) -> &[Attack] {
        &self.truth
    }

    fn push(&mut self, t: Timestamp, actor: u32) {
        self.heap.push(Reverse((t, self.pushes, actor)));
        self.pushes += 1;
    }

    fn schedule_user(&mut self, idx: u32) {
        if let Some(t) = self.benign.users[idx as usize].pending.last().map(|p| p.time) {
            self.push(t, idx);
        }
    }

    /// Takes the actor's next event and puts the actor back in the heap for the one after.
    fn take(&mut self, actor: u32) -> Option<Planned> {
        if actor < self.user_count {
            let p = self.benign.users[actor as usize].pending.pop()?;
            if self.benign.users[actor as usize].pending.is_empty() {
                self.benign.plan_next(actor, p.time, &mut self.rng);
            }
            self.schedule_user(actor);
            Some(p)
        } else {
            let events = self.attacks.get_mut((actor - self.user_count) as usize)?;
            let p = events.pop()?;
            if let Some(t) = events.last().map(|e| e.time) {
                self.push(t, actor);
            }
            Some(p)
        }
    }

    /// The event as a log line; `None` for an event the chosen format does not log (the export has no
    /// sign-up confirmation).
    fn render(&mut self, p: &Planned) -> Option<String> {
        let seed = self.benign.seed();
        let (name, sub) = match &p.who {
            Who::Pool(idx) => (user_name(seed, *idx), Some(user_sub(seed, *idx))),
            Who::Unknown(name) => (name.to_string(), None),
            Who::New(n) => (n.name.to_string(), Some(n.sub.to_string())),
        };
        let who = Identity { name: &name, sub: sub.as_deref() };
        let cognito = match self.format {
            OutputFormat::Cognito if !render::in_export(p) => return None,
            OutputFormat::Cognito => true,
            OutputFormat::CloudTrail => false,
            OutputFormat::Mixed => render::in_export(p) && (p.cognito_only || self.emitted.is_multiple_of(2)),
        };
        let mut line = String::with_capacity(900);
        if cognito {
            render::cognito(p, &who, &self.pool, &mut self.rng, &mut line);
        } else {
            render::cloudtrail(p, &who, &self.pool, &mut self.rng, &mut line);
        }
        Some(line)
    }
}

impl Iterator for Simulation {
    type Item = SimEvent;

    fn next(&mut self) -> Option<SimEvent> {
        loop {
            let Reverse((_, _, actor)) = self.heap.pop()?;
            // An actor in the heap always has an event; skip defensively rather than end the stream.
            let Some(p) = self.take(actor) else { continue };
            let Some(line) = self.render(&p) else { continue };
            self.emitted += 1;
            return Some(SimEvent { time: p.time, line });
        }
    }
}

/// An app client id as Cognito makes them: 26 lowercase letters and digits.
fn client_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..26).map(|_| char::from(*rng.pick(ALPHABET))).collect()
}

/// Writes every event of `sim` to `out` as JSON lines; returns the count. Holds one event at a time.
pub fn write_jsonl<W: Write>(sim: Simulation, mut out: W) -> io::Result<u64> {
    let mut n = 0;
    for ev in sim {
        out.write_all(ev.line.as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Streams the simulation to `--output` (or stdout) as JSON lines and writes the truth file; returns counts.
/// Events are never held in memory: tens of millions stream in constant memory.
pub fn run(args: &SimulateArgs) -> anyhow::Result<SimSummary> {
    let cfg = SimConfig::from_args(args).map_err(anyhow::Error::msg)?;
    let sim = Simulation::new(&cfg).map_err(anyhow::Error::msg)?;
    let truth = sim.truth().to_vec();
    let events = match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            write_jsonl(sim, BufWriter::with_capacity(1 << 20, file))
                .with_context(|| format!("writing {}", path.display()))?
        }
        None => write_jsonl(sim, BufWriter::with_capacity(1 << 20, io::stdout().lock())).context("writing stdout")?,
    };
    if let Some(path) = &args.truth {
        let mut text = serde_json::to_string_pretty(&truth)?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let lookalikes = truth.iter().filter(|a| a.lookalike).count();
    Ok(SimSummary { events, attacks: truth.len() - lookalikes, lookalikes })
}
