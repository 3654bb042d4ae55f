//! `distributed_credential_stuffing`: a pool-wide surge of failed sign-ins spread thin over many
//! addresses, mostly on names the pool does not know: stuffing through residential proxies, built to stay
//! under every per-address and per-account count.
//!
//! Per pool, over the rule's window: failed sign-ins, distinct failing addresses, the share of failures on
//! unknown names (no `sub`, never seen succeeding) and the success ratio of the failing addresses. It fires when the failures are
//! above the pool's learned normal band (`baseline.rs`) and above the spec's threshold, spread over at
//! least `min_distinct_ips` addresses at a few tries each, mostly on unknown names. While the campaign
//! lasts, a successful sign-in from an address first seen during it is a takeover: the finding lists
//! those accounts, the ones to act on.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::baseline::{band_evidence, Band, BandParams, RuleBaseline, Series};
use super::counting::{ratio, round3};
use super::incident::Incident;
use super::pool::{pool_label, CappedSet, Learner, Pools};
use super::registry::{check_share, Registered};
use super::rule::{Rule, Seen};
use super::window::NO_COUNTERPART;
use super::{elapsed, DetectorStats, EngineSettings, IncidentBook, Summarize};
use crate::event::Outcome;
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

/// Takeover accounts listed in a finding; the rest are counted (and each named once, as
/// `latest_takeover`, in the update it causes).
const MAX_TAKEOVERS_LISTED: usize = 100;
/// Accounts a campaign tells apart as taken over (64-bit hashes): past it each takeover counts anew.
const MAX_TAKEOVERS_TRACKED: usize = 10_000;
/// Successes remembered from the window before a crossing, to find takeovers that came first.
const MAX_RECENT_SUCCESSES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolStuffingParams {
    /// How the pool's normal failure count is learned.
    pub baseline: BandParams,
    /// Distinct failing addresses (IPv6 grouped by prefix) in the window.
    pub min_distinct_ips: u64,
    /// Failures per failing address at most: a campaign spread thin.
    pub max_tries_per_ip: f64,
    /// Share of the window's failures on names the pool does not know, at least.
    pub min_unknown_share: f64,
    /// Success ratio of the attempts from the window's failing addresses, at most.
    pub max_success_ratio: f64,
    /// Users remembered as known (they signed in once); past it the memory starts over.
    pub max_known_users: usize,
    /// Addresses remembered with the time first seen; past it the memory starts over.
    pub max_tracked_ips: usize,
}

pub struct DistributedCredentialStuffing {
    params: PoolStuffingParams,
    /// Window length in buckets.
    buckets: usize,
    pools: Pools<PoolState>,
    /// Users seen succeeding, by key hash.
    known: CappedSet,
    /// Addresses by hash, with the time first seen (ms).
    seen_ips: CappedSet,
}

/// One bucket's figures.
#[derive(Clone, Copy)]
struct Counts {
    bucket: i64,
    /// Attempts and successes from addresses with a failure in the window (failures, and successes that
    /// came after one).
    attempts: u64,
    failures: u64,
    /// Failures on names the pool does not know.
    unknown: u64,
    successes: u64,
    first: Timestamp,
    last: Timestamp,
    /// A campaign was open during it: not learned.
    anomalous: bool,
}

/// A success remembered in the window: time, address hash, account, when the account first signed in
/// (ms), whether the address had failed for another account in the window.
type RecentSuccess = (Timestamp, u64, Box<str>, Option<i64>, bool);

/// A failing address's last failure.
#[derive(Clone, Copy)]
struct LastFailure {
    millis: i64,
    /// The account's hash ([`NO_COUNTERPART`] when the failure named none).
    user: u64,
}

struct PoolState {
    /// The pool key as text (the baseline file's key).
    name: String,
    /// Failures per bucket.
    series: Series,
    /// The buckets inside the window, the current one last.
    recent: VecDeque<Counts>,
    /// Failing addresses in the window, by hash, with their last failure: its time (ms) and account.
    /// One table for both (a failure sets both): a 24-byte entry instead of two of 16, in a table that
    /// holds every address of a stuffing run.
    failing_ips: CappedSet<LastFailure>,
    /// Users with a failure in the window, by hash, with their last one (ms).
    tried: CappedSet,
    /// Successes in the window: time, address hash, account, when the account first signed in (ms),
    /// whether the address had failed for another account in the window.
    successes: VecDeque<RecentSuccess>,
    campaign: Option<Campaign>,
    /// The band for one bucket, computed once per bucket (sorting a day of buckets for every failure
    /// cost about 10 µs an event).
    band: Option<(i64, Option<Band>)>,
}

/// An open incident's own figures.
struct Campaign {
    since: Timestamp,
    tried: CappedSet,
    unknown: u64,
    takeovers: Vec<String>,
    /// Accounts taken over (hashes, at most [`MAX_TAKEOVERS_TRACKED`]) and how many.
    taken: std::collections::HashSet<u64>,
    takeover_count: u64,
    /// The account the last takeover took.
    latest: Option<String>,
    /// The last campaign failure while the surge lasted.
    last_surge: Timestamp,
    band: Option<Band>,
    observed: f64,
}

impl Registered for DistributedCredentialStuffing {
    const ID: &'static str = "distributed_credential_stuffing";
    const KEY: Option<KeyKind> = Some(KeyKind::Pool);
    type Params = PoolStuffingParams;

    fn check_params(p: &PoolStuffingParams) -> Result<(), String> {
        p.baseline.check()?;
        check_share("min_unknown_share", p.min_unknown_share)?;
        check_share("max_success_ratio", p.max_success_ratio)?;
        if p.min_distinct_ips < 2 {
            return Err("min_distinct_ips must be at least 2".into());
        }
        if p.max_tries_per_ip.is_nan() || p.max_tries_per_ip < 1.0 {
            return Err("max_tries_per_ip must be at least 1".into());
        }
        if p.max_known_users == 0 || p.max_tracked_ips == 0 {
            return Err("max_known_users and max_tracked_ips must be positive".into());
        }
        Ok(())
    }

    fn check_spec(p: &PoolStuffingParams, spec: &Spec) -> Result<(), String> {
        if spec.window.millis() % p.baseline.bucket.millis() != 0 {
            return Err(format!("window = {} must be a whole number of buckets ({})", spec.window, p.baseline.bucket));
        }
        Ok(())
    }
}

impl Rule for DistributedCredentialStuffing {
    fn new(spec: &Spec, params: PoolStuffingParams, settings: &EngineSettings) -> Self {
        let buckets = (spec.window.millis() / params.baseline.bucket.millis()).max(1) as usize;
        let pools = Pools::seeded(spec.max_keys, settings, &spec.id, &params.baseline, |name, series| PoolState {
            series,
            ..PoolState::new(&params, name)
        });
        DistributedCredentialStuffing {
            buckets,
            pools,
            known: CappedSet::new(params.max_known_users),
            seen_ips: CappedSet::new(params.max_tracked_ips),
            params,
        }
    }

    fn baseline(&self) -> Option<RuleBaseline> {
        Some(self.pools.learned(&self.params.baseline))
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, keys, key, .. } = seen;
        let summarize: Summarize = Self::summary;
        let p = &self.params;
        let t = ev.time;
        let ip = keys.ip.map(|_| keys.ip_hash);
        let first_seen_ip = ip.map(|h| self.seen_ips.first(h, t.millis()));
        let user = keys.user.map(|_| keys.user_hash);
        // When the user first signed in successfully, as far as memory goes.
        let known_since = user.and_then(|h| self.known.get(h));
        let known_user = ev.user_sub.as_deref().is_some_and(|s| !s.is_empty()) || known_since.is_some();
        if ev.outcome == Outcome::Success {
            if let Some(h) = user {
                self.known.first(h, t.millis());
            }
        }
        let buckets = self.buckets;
        let Some(pool) = self.pools.get_or_make(key.hash, || PoolState::new(p, key.key)) else { return };
        if pool.campaign.is_some() && book.get_mut(key.hash).is_none() {
            pool.campaign = None;
        }
        pool.roll(p, buckets, t);
        let window_start = t.saturating_sub(spec.window);
        // The success ratio is of the failing addresses' attempts: a campaign's addresses rarely get in,
        // a benign wave's (a typo, then the right password) mostly do; the pool's other successes, by far
        // the most, say nothing about either.
        let failing_ip = ip.is_some_and(|h| pool.failing_ips.contains(h));
        // The address failed for another account in the window: it is trying pairs.
        let other_failed = ip.zip(user).is_some_and(|(i, u)| pool.failing_ips.get(i).is_some_and(|f| f.user != u));
        let Some(now) = pool.recent.back_mut() else { return };
        now.attempts += u64::from(ev.outcome == Outcome::Failure || failing_ip);
        now.first = now.first.min(t);
        now.last = now.last.max(t);
        now.anomalous |= pool.campaign.is_some();
        if let Some(h) = user.filter(|_| ev.outcome == Outcome::Failure) {
            pool.tried.set(h, t.millis());
        }
        match ev.outcome {
            Outcome::Failure => {
                now.failures += 1;
                if !known_user {
                    now.unknown += 1;
                }
                let last = LastFailure { millis: t.millis(), user: user.unwrap_or(NO_COUNTERPART) };
                pool.failing_ips.set(ip.unwrap_or(NO_COUNTERPART), last);
            }
            Outcome::Success => {
                now.successes += u64::from(failing_ip);
                // A call answered with a challenge (an MFA code asked for) did not sign the account in.
                let completed = !ev.factors.pending;
                if let (Some(h), Some(name), true) = (ip, keys.user_name.or(keys.user), completed) {
                    if pool.successes.len() >= MAX_RECENT_SUCCESSES {
                        pool.successes.pop_front();
                    }
                    pool.successes.push_back((t, h, name.into(), known_since, other_failed));
                }
            }
            _ => {}
        }
        while pool.successes.front().is_some_and(|(st, ..)| *st <= window_start) {
            pool.successes.pop_front();
        }

        let window = pool.window();
        if let Some(campaign) = &mut pool.campaign {
            // A campaign's events: failures that are campaign-like (a new address or an unknown name)
            // while the surge lasts, and successes from its new addresses (takeovers).
            let new_ip = first_seen_ip.is_some_and(|f| f >= campaign.since.millis());
            let taken = new_ip && is_takeover(known_since, other_failed, campaign.since);
            let surging = window.failures as f64 > campaign.band.map_or(0.0, |b| b.high * buckets as f64);
            let Some(inc) = book.get_mut(key.hash) else { return };
            let mut newly_taken = false;
            match ev.outcome {
                Outcome::Failure if surging && (new_ip || !known_user) => {
                    campaign.last_surge = t;
                    inc.add(t, ev.outcome, keys.ip_hash, keys.ip, ev.event_id.as_deref());
                    if let Some(h) = user {
                        campaign.tried.set(h, 1);
                    }
                    if !known_user {
                        campaign.unknown += 1;
                    }
                }
                // A takeover is a success while the guessing goes on (within a window of its last
                // surging failure): hours later, an account signing in from a new address is a
                // traveller or a new phone, not the campaign, and must not keep its incident open.
                Outcome::Success if taken && !ev.factors.pending && t.since(campaign.last_surge) <= spec.window => {
                    inc.add(t, ev.outcome, keys.ip_hash, keys.ip, ev.event_id.as_deref());
                    if let Some(name) = keys.user_name.or(keys.user) {
                        newly_taken = campaign.takeover(name);
                        campaign.fill_takeovers(inc);
                    }
                }
                _ => return,
            }
            campaign.fill_counts(inc);
            let before = out.len();
            book.rerate(key.hash, spec, summarize, out);
            if newly_taken && out.len() == before {
                // Another account taken over is news even at the same severity: the correlation stage links
                // the account's own findings (travel, risk) to the campaign by it.
                if let Some(inc) = book.get_mut(key.hash) {
                    out.push(inc.to_finding(spec, crate::finding::Status::Escalated, summarize(spec, inc)));
                }
            }
            return;
        }

        let b = p.baseline.bucket_of(t);
        if ev.outcome != Outcome::Failure || !pool.series.warmed_up(&p.baseline, b) {
            return;
        }
        let band = pool.band(p, b);
        let high = band.map_or(0.0, |b| b.high * buckets as f64);
        let distinct = pool.failing_ips.len() as u64;
        let fires = window.failures >= spec.threshold
            && window.failures as f64 > high
            && distinct >= p.min_distinct_ips
            && ratio(window.failures, distinct) <= p.max_tries_per_ip
            && ratio(window.unknown, window.failures) >= p.min_unknown_share
            && ratio(window.successes, window.attempts) <= p.max_success_ratio;
        if !fires {
            return;
        }
        // The campaign is taken to have begun with the window that crossed: addresses first seen since then
        // are its addresses.
        let since = window_start;
        let mut campaign = Campaign {
            since,
            tried: CappedSet::new(p.max_known_users),
            unknown: window.unknown,
            takeovers: Vec::new(),
            taken: Default::default(),
            takeover_count: 0,
            latest: None,
            last_surge: ev.time,
            band,
            observed: window.failures as f64 / buckets as f64,
        };
        for (&h, _) in pool.tried.iter() {
            campaign.tried.set(h, 1);
        }
        let mut inc = Incident::open(spec, key.key, ev, since);
        inc.add_counts(window.first, window.last, window.failures, 0);
        for (&h, _) in pool.failing_ips.iter() {
            inc.add_distinct(h);
        }
        // Successes in the window from addresses first seen during it, by accounts known before it, came
        // with the campaign.
        for (st, h, name, known, failing) in &pool.successes {
            let new_ip = self.seen_ips.get(*h).is_some_and(|f| f >= since.millis());
            if new_ip && is_takeover(*known, *failing, since) {
                inc.add(*st, Outcome::Success, *h, None, None);
                campaign.takeover(name);
            }
        }
        inc.extra.insert("unknown_share_at_detection".into(), round3(ratio(window.unknown, window.failures)));
        inc.extra.insert("success_ratio_at_detection".into(), round3(ratio(window.successes, window.attempts)));
        campaign.fill(&mut inc);
        inc.severity = spec.severity_at(inc.count);
        if let Some(now) = pool.recent.back_mut() {
            now.anomalous = true;
        }
        pool.campaign = Some(campaign);
        book.open(key.hash, inc, spec, summarize, out);
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        let taken = inc.extra.get("takeover_count").and_then(Value::as_u64).unwrap_or(0);
        let unknown = inc.extra.get("unknown_names").and_then(Value::as_u64).unwrap_or(0);
        format!(
            "credential stuffing on {}: {} failed sign-ins from {} addresses ({} on unknown names), {} account(s) taken over, in {}",
            pool_label(inc),
            inc.failures,
            inc.distinct(),
            unknown,
            taken,
            elapsed(inc)
        )
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.pools.len();
        stats.evicted_keys = self.pools.refused + self.known.restarts + self.seen_ips.restarts;
        stats.warming_up = self.pools.warm_at(&self.params.baseline);
    }
}

/// A success from one of the campaign's new addresses is a takeover when the account had signed in before
/// the campaign began (from elsewhere: the address is new), or when the address had failed for another
/// account during it (a campaign address, trying a second pair). A newcomer's first sign-in from a new address is neither; a
/// dormant account taken over in a single try looks like one and is not listed.
fn is_takeover(known_since: Option<i64>, other_failed: bool, since: Timestamp) -> bool {
    known_since.is_some_and(|k| k < since.millis()) || other_failed
}

impl Learner for PoolState {
    fn name(&self) -> &str {
        &self.name
    }

    fn series(&self) -> &Series {
        &self.series
    }
}

impl PoolState {
    fn new(p: &PoolStuffingParams, name: &str) -> PoolState {
        PoolState {
            name: name.to_string(),
            series: Series::default(),
            recent: VecDeque::new(),
            failing_ips: CappedSet::new(p.max_tracked_ips),
            tried: CappedSet::new(p.max_known_users),
            successes: VecDeque::new(),
            campaign: None,
            band: None,
        }
    }

    /// The normal band for bucket `b` (cached: the series changes only when a bucket completes).
    fn band(&mut self, p: &PoolStuffingParams, b: i64) -> Option<Band> {
        match self.band {
            Some((cached, band)) if cached == b => band,
            _ => {
                let band = self.series.band(&p.baseline, b);
                self.band = Some((b, band));
                band
            }
        }
    }

    /// Moves the window to the bucket of `t`: completed buckets are learned (unless a campaign was open
    /// during them), buckets that left the window are dropped.
    fn roll(&mut self, p: &PoolStuffingParams, buckets: usize, t: Timestamp) {
        let b = p.baseline.bucket_of(t);
        self.series.saw(b);
        match self.recent.back() {
            Some(last) if last.bucket >= b => return,
            Some(last) => {
                if !last.anomalous {
                    self.series.record(&p.baseline, last.bucket, last.failures as f64);
                }
                // Buckets with no events in between are learned as zero.
                let quiet_from = last.bucket + 1;
                for q in quiet_from..b.min(quiet_from + buckets as i64) {
                    self.series.record(&p.baseline, q, 0.0);
                }
            }
            None => {}
        }
        self.recent.push_back(Counts {
            bucket: b,
            attempts: 0,
            failures: 0,
            unknown: 0,
            successes: 0,
            first: t,
            last: t,
            anomalous: false,
        });
        while self.recent.front().is_some_and(|c| c.bucket <= b - buckets as i64) {
            self.recent.pop_front();
        }
        let oldest = p.baseline.bucket_start(b + 1 - buckets as i64).millis();
        self.failing_ips.retain(|_, last| last.millis >= oldest);
        self.tried.retain_at_least(oldest);
    }

    /// The window's figures, summed over its buckets.
    fn window(&self) -> Counts {
        let mut w = Counts {
            bucket: 0,
            attempts: 0,
            failures: 0,
            unknown: 0,
            successes: 0,
            first: Timestamp(i64::MAX),
            last: Timestamp(i64::MIN),
            anomalous: false,
        };
        for c in &self.recent {
            w.attempts += c.attempts;
            w.failures += c.failures;
            w.unknown += c.unknown;
            w.successes += c.successes;
            w.first = w.first.min(c.first);
            w.last = w.last.max(c.last);
        }
        w
    }
}

/// Sets a number in the evidence, reusing its entry when it has one.
fn set_count(extra: &mut Map<String, Value>, key: &str, n: u64) {
    match extra.get_mut(key) {
        Some(v) => *v = json!(n),
        None => {
            extra.insert(key.to_string(), json!(n));
        }
    }
}

impl Campaign {
    /// Counts a takeover of `account`; true when the account was not taken before.
    fn takeover(&mut self, account: &str) -> bool {
        let h = crate::detect::window::key_hash(account);
        if self.taken.contains(&h) {
            return false;
        }
        if self.taken.len() < MAX_TAKEOVERS_TRACKED {
            self.taken.insert(h);
        }
        self.takeover_count += 1;
        if self.takeovers.len() < MAX_TAKEOVERS_LISTED {
            self.takeovers.push(account.to_string());
        }
        self.latest = Some(account.to_string());
        true
    }

    /// The finding's figures: all of them when the incident opens.
    fn fill(&self, inc: &mut Incident) {
        if let Some(band) = &self.band {
            inc.extra.insert("failures_per_bucket".into(), band_evidence(band, self.observed));
        }
        self.fill_takeovers(inc);
        self.fill_counts(inc);
    }

    /// The takeovers, when one is added.
    fn fill_takeovers(&self, inc: &mut Incident) {
        inc.extra.insert("takeover_count".into(), json!(self.takeover_count));
        inc.extra.insert("takeovers".into(), json!(self.takeovers));
        if let Some(latest) = &self.latest {
            inc.extra.insert("latest_takeover".into(), json!(latest));
        }
    }

    /// The counts that change with every campaign event, updated in place (no allocation per event).
    fn fill_counts(&self, inc: &mut Incident) {
        set_count(&mut inc.extra, "accounts_tried", self.tried.len() as u64);
        set_count(&mut inc.extra, "unknown_names", self.unknown);
    }
}
