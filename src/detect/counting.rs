//! The counting rules' shared machinery: one sliding window of events per key, and a condition on it.
//!
//! `failed_login_burst`, `distributed_brute_force`, `credential_stuffing` and `password_spray` differ only
//! in the condition they check on a key's window and the words they report; each supplies a
//! [`CountingRule`] and [`Counting`] does the rest (windows, incidents, bounds). The window arithmetic
//! itself is in `window.rs`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::incident::Incident;
use super::registry::Registered;
use super::rule::{Keyed, Rule, Seen};
use super::window::{Entry, KeyWindow, KeyedState, NO_COUNTERPART};
use super::{DetectorStats, EngineSettings, IncidentBook, Keys};
use crate::event::{Outcome, SignInEvent};
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

/// What makes one counting rule different from another.
pub trait CountingRule: Registered + Send + 'static {
    /// The rule with its spec's params.
    fn new(params: Self::Params) -> Self;
    /// Whether the window must count events per counterpart (distinct users or addresses).
    fn track_counterparts(&self) -> bool {
        false
    }
    /// A counterpart tried at most this often counts as "low-try" (credential stuffing).
    fn low_try_limit(&self) -> u32 {
        1
    }
    /// Whether everything the rule remembers belongs to the spec's key (see [`Rule::per_key`]): the
    /// windows always do; a rule that keeps more (the MFA rule's challenged users) says when that holds.
    fn per_key(&self, _spec: &Spec) -> bool {
        true
    }
    /// Whether the rule judges ratios over all of a key's events in the window (then every observed event
    /// starts tracking its key, not only failures).
    fn needs_context(&self) -> bool {
        false
    }
    /// Whether the rule looks at this event at all, beyond the spec's kinds (checked before keys and
    /// allow-lists, like [`Rule::admits`]).
    fn admits(&self, _ev: &SignInEvent) -> bool {
        true
    }
    /// Whether an admitted event counts toward the threshold, given whether the spec's outcomes count
    /// it; a rule that needs more than the outcome (the MFA step of a sign-in) decides here, and may
    /// remember what the event tells it.
    fn qualifies(&mut self, _ev: &SignInEvent, _keys: &Keys<'_>, spec_counts: bool) -> bool {
        spec_counts
    }
    /// The outcome the window records for an admitted event: the event's own, unless the rule reads it
    /// otherwise (for the MFA rule, a password step that only issued a challenge is no success).
    fn outcome(&self, ev: &SignInEvent) -> Outcome {
        ev.outcome
    }
    /// Does the window meet the rule, right after a counted event?
    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool;
    /// Rule-specific evidence figures, taken when the incident opens.
    fn evidence(&self, _w: &KeyWindow, _extra: &mut Map<String, Value>) {}
    /// One line describing the incident.
    fn summary(spec: &Spec, inc: &Incident) -> String;
}

/// A counting rule with its keys' windows: the [`Rule`] the registry builds for it.
pub struct Counting<R: CountingRule> {
    rule: R,
    keys: KeyedState<KeyWindow>,
}

impl<R: CountingRule> Registered for Counting<R> {
    const ID: &'static str = R::ID;
    const KEY: Option<KeyKind> = R::KEY;
    type Params = R::Params;

    fn check_params(params: &R::Params) -> Result<(), String> {
        R::check_params(params)
    }

    fn check_spec(params: &R::Params, spec: &Spec) -> Result<(), String> {
        R::check_spec(params, spec)
    }

    fn describe_severities(params: &R::Params) -> Vec<String> {
        R::describe_severities(params)
    }
}

impl<R: CountingRule> Rule for Counting<R> {
    fn new(spec: &Spec, params: R::Params, _settings: &EngineSettings) -> Counting<R> {
        Counting { rule: R::new(params), keys: KeyedState::new(spec.max_keys, spec.window) }
    }

    fn admits(&self, spec: &Spec, ev: &SignInEvent) -> bool {
        spec.observes(ev.kind) && self.rule.admits(ev)
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, keys, key: Keyed { key, hash: h, aux, aux_name: counterpart, .. }, clock } = seen;
        let summarize: super::Summarize = R::summary;
        let track = self.rule.track_counterparts();
        let low_try = self.rule.low_try_limit();
        let counted = self.rule.qualifies(ev, keys, spec.counts(ev.outcome));
        // A rule that judges ratios (failure share, success ratio) tracks every key it observes, so the
        // ratio covers the whole window (a busy NAT's successes before its first typo count). A rule that
        // only counts failures starts tracking a key at its first failure: most traffic is successful
        // sign-ins by keys that never fail.
        let w = if self.rule.needs_context() || starts_tracking(spec, ev) {
            self.keys.get_or_insert_with(h, clock, || KeyWindow::new(track, low_try))
        } else {
            match self.keys.get_live_mut(h, clock) {
                Some(w) => w,
                None => return,
            }
        };
        w.push(Entry::new(ev.time, self.rule.outcome(ev), counted, aux, counterpart), spec.max_events_per_key);
        w.expire(clock, spec.window);
        if !counted {
            return;
        }
        if let Some(inc) = book.get_mut(h) {
            inc.add(ev.time, ev.outcome, aux, counterpart, ev.event_id.as_deref());
            inc.learn(ev, spec.key);
            book.rerate(h, spec, summarize, out);
            return;
        }
        if !self.rule.fires(spec, w) {
            return;
        }
        let first = w.counted_span().map_or(ev.time, |(f, _)| f);
        let mut inc = Incident::open(spec, key, ev, first);
        // Fold in the window that led here; the crossing event last, with its id.
        let mut pending_self = true;
        for e in w.entries().filter(|e| e.counted()) {
            if pending_self && e.time == ev.time && e.aux == aux && e.outcome() == ev.outcome {
                pending_self = false;
                continue;
            }
            inc.add(e.time, e.outcome(), e.aux, e.aux_name(), None);
        }
        inc.add(ev.time, ev.outcome, aux, counterpart, ev.event_id.as_deref());
        self.rule.evidence(w, &mut inc.extra);
        inc.severity = spec.severity_at(inc.count);
        book.open(h, inc, spec, summarize, out);
    }

    fn summary(spec: &Spec, inc: &Incident) -> String {
        R::summary(spec, inc)
    }

    fn per_key(&self, spec: &Spec) -> bool {
        self.rule.per_key(spec)
    }

    fn settle(&mut self, now: Timestamp) {
        self.keys.sweep(now);
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.keys.len();
        stats.evicted_keys = self.keys.evicted;
    }
}

/// Whether this event may start tracking a key that has no state yet: a failure, or any counted event
/// for a rule that does not count failures at all.
pub fn starts_tracking(spec: &Spec, ev: &SignInEvent) -> bool {
    ev.outcome == Outcome::Failure || (!spec.counts(Outcome::Failure) && spec.counts(ev.outcome))
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A ratio rounded to 3 decimals, for evidence.
pub fn round3(v: f64) -> Value {
    serde_json::json!((v * 1000.0).round() / 1000.0)
}

/// Failures that recover, a benign wave rather than an attack: fewer than `threshold` left once those
/// whose user then got in (from the window's key) are set aside, or a large share of them
/// ([`WAVE_RECOVERED_SHARE`]) recovered already. An office NAT during a client release: its users get in
/// within minutes, so early in the wave few have recovered but few have failed either. An attacker's
/// failures do not recover.
pub fn recovering_wave(w: &KeyWindow, threshold: u64) -> bool {
    let recovered = recovered_failures(w);
    w.counted() - recovered < threshold || ratio(recovered, w.counted()) >= WAVE_RECOVERED_SHARE
}

/// Share of a key's failures recovered by their users' success beyond which it is a benign wave.
pub const WAVE_RECOVERED_SHARE: f64 = 0.2;

/// Counted failures in the window whose user (the entry's counterpart) signed in successfully later in it.
pub fn recovered_failures(w: &KeyWindow) -> u64 {
    let mut n = 0;
    counted_failures_by_recovery(w, |_, recovered| n += u64::from(recovered));
    n
}

/// Distinct counterparts with a counted failure in the window that no success of theirs follows in it.
pub fn unrecovered_counterparts(w: &KeyWindow) -> u64 {
    let mut unrecovered: HashSet<u64> = HashSet::new();
    counted_failures_by_recovery(w, |aux, recovered| {
        if !recovered {
            unrecovered.insert(aux);
        }
    });
    unrecovered.len() as u64
}

/// Calls `each` with the counterpart of every counted failure in the window (entries without one are
/// left out), and whether a success of that counterpart follows it in the window: walked from the newest
/// entry back, so a counterpart's success is known before its earlier failures are met.
fn counted_failures_by_recovery(w: &KeyWindow, mut each: impl FnMut(u64, bool)) {
    let mut succeeded: HashSet<u64> = HashSet::new();
    for e in w.entries().rev() {
        if e.aux == NO_COUNTERPART {
            continue;
        }
        if e.outcome() == Outcome::Success {
            succeeded.insert(e.aux);
        } else if e.counted() {
            each(e.aux, succeeded.contains(&e.aux));
        }
    }
}
