//! `signup_flood`: sign-ups far above the pool's normal that are never confirmed nor signed in: bot
//! registrations and SMS pumping (each sign-up sends a verification code at the pool owner's cost).
//!
//! A sign-up is confirmed by a `ConfirmSignUp` (CloudTrail) or by the account's first successful sign-in
//! (the user-activity export logs no confirmation), matched by user name or sub, within `confirm_within`;
//! a confirmation that names nobody confirms the oldest anonymous sign-up. Once `confirm_within` has
//! passed, each sign-up is judged, and the window's unconfirmed sign-ups are compared with the pool's
//! learned band (`baseline.rs`). A marketing campaign brings many sign-ups that confirm and sign in:
//! not a flood. The finding names the top addresses and the name patterns (phone numbers by country
//! prefix, e-mail domains, shapes).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Deserialize;
use serde_json::{json, Value};

use super::baseline::{band_evidence, BandParams, RuleBaseline, Series};
use super::counting::{ratio, round3};
use super::incident::Incident;
use super::pool::{pool_label, Learner, Pools};
use super::registry::{check_share, Registered};
use super::rule::{Rule, Seen};
use super::window::{key_hash, PreHashed, NO_COUNTERPART};
use super::{elapsed, DetectorStats, EngineSettings, IncidentBook, Summarize};
use crate::event::{EventKind, Outcome, SignInEvent};
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::{Span, Timestamp};

/// Name patterns listed in a finding.
const MAX_PATTERNS: usize = 10;
/// Longest pattern text kept (patterns come from attacker-chosen names).
const MAX_PATTERN_CHARS: usize = 40;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupFloodParams {
    /// How the pool's normal count of unconfirmed sign-ups is learned.
    pub baseline: BandParams,
    /// A sign-up not confirmed (or signed in) within this long is unconfirmed.
    pub confirm_within: Span,
    /// Share of the window's judged sign-ups left unconfirmed, at least.
    pub min_unconfirmed_share: f64,
    /// Sign-ups waiting for their confirmation, at most per pool; past it the oldest are judged early.
    pub max_pending: usize,
}

pub struct SignupFlood {
    params: SignupFloodParams,
    /// Window length in buckets.
    buckets: usize,
    pools: Pools<PoolState>,
    judged_early: u64,
}

struct SignUp {
    time: Timestamp,
    /// Name and sub hashes (`NO_COUNTERPART` when absent).
    ids: [u64; 2],
    ip_hash: u64,
    ip: Option<Box<str>>,
    pattern: Box<str>,
    confirmed: bool,
}

/// One bucket of judged sign-ups (by sign-up time).
struct Judged {
    bucket: i64,
    unconfirmed: u64,
    judged: u64,
    anomalous: bool,
}

/// An unconfirmed sign-up remembered for the evidence: time, address hash and text, name pattern.
type Unconfirmed = (Timestamp, u64, Option<Box<str>>, Box<str>);

struct PoolState {
    /// The pool key as text (the baseline file's key).
    name: String,
    series: Series,
    /// Sign-ups waiting to be judged, oldest first; `base` is the sequence number of the front.
    queue: VecDeque<SignUp>,
    base: u64,
    /// Name or sub hash → sequence number of its sign-up.
    by_id: HashMap<u64, u64, PreHashed>,
    /// Confirmations that named nobody, not yet matched.
    anonymous_confirms: u64,
    judged: VecDeque<Judged>,
    /// Unconfirmed sign-ups in the window: time, address hash and text, pattern.
    unconfirmed: VecDeque<Unconfirmed>,
    /// The open incident's name patterns.
    patterns: BTreeMap<Box<str>, u64>,
}

impl Registered for SignupFlood {
    const ID: &'static str = "signup_flood";
    const KEY: Option<KeyKind> = Some(KeyKind::Pool);
    type Params = SignupFloodParams;

    fn check_params(p: &SignupFloodParams) -> Result<(), String> {
        p.baseline.check()?;
        check_share("min_unconfirmed_share", p.min_unconfirmed_share)?;
        if p.confirm_within < Span::mins(1) || p.confirm_within > Span::hours(24) {
            return Err(format!("confirm_within = {} must be between 1m and 24h", p.confirm_within));
        }
        if p.max_pending == 0 {
            return Err("max_pending must be positive".into());
        }
        Ok(())
    }

    fn check_spec(p: &SignupFloodParams, spec: &Spec) -> Result<(), String> {
        if spec.window.millis() % p.baseline.bucket.millis() != 0 {
            return Err(format!("window = {} must be a whole number of buckets ({})", spec.window, p.baseline.bucket));
        }
        for kind in [EventKind::SignUp, EventKind::ConfirmSignUp, EventKind::SignIn] {
            if !spec.observes(kind) {
                return Err(format!("match.kinds must include {} (sign-ups, and what confirms them)", kind.as_str()));
            }
        }
        Ok(())
    }
}

impl Rule for SignupFlood {
    fn new(spec: &Spec, params: SignupFloodParams, settings: &EngineSettings) -> Self {
        let buckets = (spec.window.millis() / params.baseline.bucket.millis()).max(1) as usize;
        let pools = Pools::seeded(spec.max_keys, settings, &spec.id, &params.baseline, |name, series| PoolState {
            series,
            ..PoolState::new(name)
        });
        SignupFlood { params, buckets, pools, judged_early: 0 }
    }

    fn baseline(&self) -> Option<RuleBaseline> {
        Some(self.pools.learned(&self.params.baseline))
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, keys, key, .. } = seen;
        let p = &self.params;
        let t = ev.time;
        let Some(pool) = self.pools.get_or_make(key.hash, || PoolState::new(key.key)) else { return };
        pool.series.saw(p.baseline.bucket_of(t));
        match (ev.kind, ev.outcome) {
            _ if counts_sign_up(spec, ev) => {
                if pool.queue.len() >= p.max_pending {
                    self.judged_early += 1;
                    let early = pool.queue.front().map_or(t, |s| s.time.saturating_add(p.confirm_within));
                    pool.judge_until(p, self.buckets, spec, key.key, key.hash, ev, early, book, out);
                }
                let ids = identities(ev);
                let seq = pool.base + pool.queue.len() as u64;
                for id in ids.into_iter().filter(|id| *id != NO_COUNTERPART) {
                    pool.by_id.insert(id, seq);
                }
                pool.queue.push_back(SignUp {
                    time: t,
                    ids,
                    ip_hash: keys.ip_hash,
                    ip: keys.ip.map(Box::from),
                    pattern: name_pattern(ev.user_name.as_deref().unwrap_or("")).into(),
                    confirmed: false,
                });
            }
            (EventKind::ConfirmSignUp, outcome) if outcome != Outcome::Failure => pool.confirm(ev, true),
            (EventKind::SignIn, Outcome::Success | Outcome::InProgress) if !pool.by_id.is_empty() => {
                pool.confirm(ev, false)
            }
            _ => {}
        }
        let due = t.saturating_sub(p.confirm_within);
        pool.judge_until(p, self.buckets, spec, key.key, key.hash, ev, due, book, out);
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        let top = inc.extra.get("name_patterns").and_then(Value::as_object).and_then(|m| m.keys().next().cloned());
        format!(
            "sign-up flood on {}: {} sign-ups never confirmed from {} addresses{}, in {}",
            pool_label(inc),
            inc.count,
            inc.distinct(),
            top.map(|t| format!(" (names like {t})")).unwrap_or_default(),
            elapsed(inc)
        )
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.pools.len();
        stats.evicted_keys = self.pools.refused + self.judged_early;
        stats.warming_up = self.pools.warm_at(&self.params.baseline);
    }
}

/// The events the rule counts (judged later as confirmed or not): sign-ups with a counted outcome. The
/// other kinds it observes only confirm. What a CloudWatch metric of sign-ups must select.
pub fn counts_sign_up(spec: &Spec, ev: &SignInEvent) -> bool {
    ev.kind == EventKind::SignUp && spec.counts(ev.outcome)
}

/// The user name's and the sub's hashes: a sign-up is confirmed by an event that carries either.
fn identities(ev: &SignInEvent) -> [u64; 2] {
    let id = |s: Option<&str>| s.filter(|s| !s.is_empty()).map_or(NO_COUNTERPART, key_hash);
    [id(ev.user_name.as_deref()), id(ev.user_sub.as_deref())]
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
    fn new(name: &str) -> PoolState {
        PoolState {
            name: name.to_string(),
            series: Series::default(),
            queue: VecDeque::new(),
            base: 0,
            by_id: HashMap::default(),
            anonymous_confirms: 0,
            judged: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            patterns: BTreeMap::new(),
        }
    }

    /// Marks the sign-up of the user of `ev` confirmed.
    fn confirm(&mut self, ev: &SignInEvent, explicit: bool) {
        let ids = identities(ev);
        let mut matched = false;
        for id in ids.into_iter().filter(|id| *id != NO_COUNTERPART) {
            if let Some(seq) = self.by_id.remove(&id) {
                if let Some(s) = seq.checked_sub(self.base).and_then(|i| self.queue.get_mut(i as usize)) {
                    s.confirmed = true;
                    matched = true;
                }
            }
        }
        if !matched && explicit && ids == [NO_COUNTERPART; 2] {
            self.anonymous_confirms += 1;
        }
    }

    /// Judges every sign-up made at or before `due`.
    #[allow(clippy::too_many_arguments)]
    fn judge_until(
        &mut self,
        p: &SignupFloodParams,
        buckets: usize,
        spec: &Spec,
        key: &str,
        h: u64,
        ev: &SignInEvent,
        due: Timestamp,
        book: &mut IncidentBook,
        out: &mut Vec<Finding>,
    ) {
        let summarize: Summarize = SignupFlood::summary;
        while self.queue.front().is_some_and(|s| s.time <= due) {
            let Some(mut s) = self.queue.pop_front() else { break };
            self.base += 1;
            for id in s.ids {
                if self.by_id.get(&id) == Some(&(self.base - 1)) {
                    self.by_id.remove(&id);
                }
            }
            if !s.confirmed && s.ids == [NO_COUNTERPART; 2] && self.anonymous_confirms > 0 {
                self.anonymous_confirms -= 1;
                s.confirmed = true;
            }
            let b = p.baseline.bucket_of(s.time);
            self.roll(p, buckets, b);
            let Some(now) = self.judged.back_mut() else { continue };
            now.judged += 1;
            if s.confirmed {
                continue;
            }
            now.unconfirmed += 1;
            let window_start = s.time.saturating_sub(spec.window);
            while self.unconfirmed.front().is_some_and(|u| u.0 <= window_start) {
                self.unconfirmed.pop_front();
            }
            if let Some(inc) = book.get_mut(h) {
                now.anomalous = true;
                inc.add(s.time, Outcome::Success, s.ip_hash, s.ip.as_deref(), None);
                *self.patterns.entry(s.pattern.clone()).or_default() += 1;
                fill(inc, &self.patterns, None);
                book.rerate(h, spec, summarize, out);
                continue;
            }
            self.unconfirmed.push_back((s.time, s.ip_hash, s.ip.clone(), s.pattern.clone()));
            // Buckets an incident already reported stay out: the tail of a flood that just closed is not
            // a new one.
            let (unconfirmed, judged) = self
                .judged
                .iter()
                .filter(|j| j.bucket > b - buckets as i64 && !j.anomalous)
                .fold((0, 0), |(u, n), j| (u + j.unconfirmed, n + j.judged));
            let band = self.series.band(&p.baseline, b);
            let fires = self.series.warmed_up(&p.baseline, b)
                && unconfirmed >= spec.threshold
                && band.is_none_or(|band| unconfirmed as f64 > band.high * buckets as f64)
                && ratio(unconfirmed, judged) >= p.min_unconfirmed_share;
            if !fires {
                continue;
            }
            for j in self.judged.iter_mut().filter(|j| j.bucket > b - buckets as i64) {
                j.anomalous = true;
            }
            let first = self.unconfirmed.front().map_or(s.time, |u| u.0);
            let mut inc = Incident::open(spec, key, ev, first);
            inc.detected_at = ev.time;
            self.patterns.clear();
            for (time, ip_hash, ip, pattern) in self.unconfirmed.drain(..) {
                inc.add(time, Outcome::Success, ip_hash, ip.as_deref(), None);
                *self.patterns.entry(pattern).or_default() += 1;
            }
            inc.last_seen = s.time;
            let figures = band.map(|band| band_evidence(&band, unconfirmed as f64 / buckets as f64));
            inc.extra.insert("unconfirmed_share_at_detection".into(), round3(ratio(unconfirmed, judged)));
            inc.extra.insert("confirm_within".into(), json!(p.confirm_within.to_string()));
            fill(&mut inc, &self.patterns, figures);
            inc.severity = spec.severity_at(inc.count);
            book.open(h, inc, spec, summarize, out);
        }
    }

    /// Starts bucket `b` of judged sign-ups: earlier ones are learned (unless anomalous), quiet ones as
    /// zero.
    fn roll(&mut self, p: &SignupFloodParams, buckets: usize, b: i64) {
        match self.judged.back() {
            Some(last) if last.bucket >= b => return,
            Some(last) => {
                if !last.anomalous {
                    self.series.record(&p.baseline, last.bucket, last.unconfirmed as f64);
                }
                let quiet_from = last.bucket + 1;
                let per_history = (p.baseline.history.millis() / p.baseline.bucket.millis()).max(1);
                for q in quiet_from.max(b - per_history)..b {
                    self.series.record(&p.baseline, q, 0.0);
                }
            }
            None => {}
        }
        self.judged.push_back(Judged { bucket: b, unconfirmed: 0, judged: 0, anomalous: false });
        while self.judged.front().is_some_and(|j| j.bucket <= b - buckets as i64) {
            self.judged.pop_front();
        }
    }
}

/// The finding's name patterns (most common first) and band.
fn fill(inc: &mut Incident, patterns: &BTreeMap<Box<str>, u64>, band: Option<Value>) {
    let mut top: Vec<(&Box<str>, &u64)> = patterns.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let listed: serde_json::Map<String, Value> =
        top.into_iter().take(MAX_PATTERNS).map(|(k, v)| (k.to_string(), json!(v))).collect();
    inc.extra.insert("name_patterns".into(), Value::Object(listed));
    if let Some(band) = band {
        inc.extra.insert("unconfirmed_per_bucket".into(), band);
    }
}

/// A user name's pattern: `phone +44…` (by the first two digits of the country code), `email @domain`,
/// or its shape (`a` for letters, `9` for digits, runs collapsed).
pub fn name_pattern(name: &str) -> String {
    let name = name.trim();
    let digits = name.strip_prefix('+').filter(|d| d.len() >= 6 && d.bytes().all(|c| c.is_ascii_digit()));
    if let Some(d) = digits {
        return format!("phone +{}…", &d[..2]);
    }
    if let Some((_, domain)) = name.rsplit_once('@') {
        let domain: String = domain.chars().take(MAX_PATTERN_CHARS).collect::<String>().to_lowercase();
        return format!("email @{domain}");
    }
    let mut shape = String::from("name ");
    let mut last = None;
    for c in name.chars() {
        let class = if c.is_alphabetic() {
            'a'
        } else if c.is_ascii_digit() {
            '9'
        } else if c.is_control() {
            '?'
        } else {
            c
        };
        if last != Some(class) {
            shape.push(class);
            last = Some(class);
        }
        if shape.chars().count() >= MAX_PATTERN_CHARS {
            break;
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns_group_phones_by_prefix_and_mails_by_domain() {
        assert_eq!(name_pattern("+447700900123"), "phone +44…");
        assert_eq!(name_pattern("+8801712345678"), "phone +88…");
        assert_eq!(name_pattern("Jane.Doe@Example.com"), "email @example.com");
        assert_eq!(name_pattern("user1234"), "name a9");
        assert_eq!(name_pattern("x\u{1b}[31m"), "name a?[9a");
    }
}
