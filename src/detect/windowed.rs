//! The shared machinery of the counting rules: one sliding window per key, a rule that reads it.
//!
//! `failed_login_burst`, `distributed_brute_force`, `credential_stuffing` and `password_spray` differ only
//! in the condition they check on a key's window and the words they report; each supplies a
//! [`WindowRule`] and this file does the rest (keys, allow-lists, late events, incidents, bounds).

use serde_json::{Map, Value};

use super::incident::Incident;
use super::window::{Entry, KeyWindow, KeyedState, Name};
use super::{Detector, DetectorStats, IncidentBook, Keys};
use crate::event::{Outcome, SignInEvent};
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

/// What makes one counting rule different from another.
pub trait WindowRule: Send + 'static {
    /// Whether the window must count events per counterpart (distinct users or addresses).
    fn track_counterparts(&self, _spec: &Spec) -> bool {
        false
    }
    /// A counterpart tried at most this often counts as "low-try" (credential stuffing).
    fn low_try_limit(&self, _spec: &Spec) -> u32 {
        1
    }
    /// Whether the rule judges ratios over all of a key's events in the window (then every observed event
    /// starts tracking its key, not only failures).
    fn needs_context(&self, _spec: &Spec) -> bool {
        false
    }
    /// Does the window meet the rule, right after a counted event?
    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool;
    /// Rule-specific evidence figures, taken when the incident opens.
    fn evidence(&self, _spec: &Spec, _w: &KeyWindow, _extra: &mut Map<String, Value>) {}
    /// One line describing the incident.
    fn summary(spec: &Spec, inc: &Incident) -> String;
}

pub struct WindowDetector<R: WindowRule> {
    spec: Spec,
    rule: R,
    keys: KeyedState<KeyWindow>,
    incidents: IncidentBook,
    /// Newest event time seen by this rule.
    clock: Timestamp,
    late_unplaced: u64,
    allowlisted: u64,
}

impl<R: WindowRule> WindowDetector<R> {
    pub fn new(spec: Spec, rule: R) -> WindowDetector<R> {
        let keys = KeyedState::new(spec.max_keys, spec.window);
        WindowDetector {
            spec,
            rule,
            keys,
            incidents: IncidentBook::default(),
            clock: Timestamp(i64::MIN),
            late_unplaced: 0,
            allowlisted: 0,
        }
    }
}

/// The key of an event for one rule, and the counterpart it is counted against: the user for an
/// address-keyed rule, the address for a user-keyed one.
pub struct Keyed<'k> {
    pub key: &'k str,
    /// The key's hash, which its state is found by.
    pub hash: u64,
    /// The counterpart's identity, which distinct counts use: its hash, or `NO_COUNTERPART`.
    pub aux: u64,
    /// The counterpart as shown in evidence.
    pub aux_name: Option<&'k str>,
}

pub fn key_and_counterpart<'k>(kind: KeyKind, keys: &'k Keys<'_>) -> Option<Keyed<'k>> {
    match kind {
        KeyKind::User => {
            keys.user.map(|key| Keyed { key, hash: keys.user_hash, aux: keys.ip_hash, aux_name: keys.ip.as_deref() })
        }
        KeyKind::Ip => keys.ip.as_deref().map(|key| Keyed {
            key,
            hash: keys.ip_hash,
            aux: keys.user_hash,
            aux_name: keys.user_name.or(keys.user),
        }),
    }
}

/// Whether an allow-list in the spec covers this event.
pub fn allowlisted(spec: &Spec, ev: &SignInEvent, keys: &Keys<'_>) -> bool {
    if spec.allow.is_empty() {
        return false;
    }
    let user_allowed = [keys.user, ev.user_name.as_deref(), ev.user_sub.as_deref()]
        .into_iter()
        .flatten()
        .any(|u| spec.allow.allows_user(u));
    user_allowed || ev.ip.is_some_and(|ip| spec.allow.allows_ip(&ip))
}

impl<R: WindowRule> Detector for WindowDetector<R> {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn observe(&mut self, ev: &SignInEvent, keys: &Keys<'_>, out: &mut Vec<Finding>) {
        let spec = &self.spec;
        if !spec.observes(ev.kind) {
            return;
        }
        let Some(Keyed { key, hash: h, aux, aux_name: counterpart }) = key_and_counterpart(spec.key, keys) else {
            return;
        };
        if allowlisted(spec, ev, keys) {
            self.allowlisted += 1;
            return;
        }
        self.clock = self.clock.max(ev.time);
        if ev.time <= self.clock.saturating_sub(spec.window) {
            self.late_unplaced += 1;
            return;
        }
        let summarize: super::Summarize = R::summary;
        self.incidents.close_if_quiet(h, ev.time, spec, summarize, out);

        let track = self.rule.track_counterparts(spec);
        let low_try = self.rule.low_try_limit(spec);
        let counted = spec.counts(ev.outcome);
        let clock = self.clock;
        // A rule that judges ratios (failure share, success ratio) tracks every key it observes, so the
        // ratio covers the whole window (a busy NAT's successes before its first typo count). A rule that
        // only counts failures starts tracking a key at its first failure: most traffic is successful
        // sign-ins by keys that never fail.
        if !self.rule.needs_context(spec) && !starts_tracking(spec, ev) && self.keys.get(h).is_none() {
            return;
        }
        let w = self.keys.get_or_insert_with(h, clock, || KeyWindow::new(track, low_try));
        w.push(
            Entry { time: ev.time, outcome: ev.outcome, counted, aux, aux_name: counterpart.map(Name::new) },
            spec.max_events_per_key,
        );
        w.expire(clock, spec.window);
        if !counted {
            return;
        }
        if let Some(inc) = self.incidents.get_mut(h) {
            inc.add(ev.time, ev.outcome, aux, counterpart, ev.event_id.as_deref());
            inc.learn(ev, spec.key);
            self.incidents.rerate(h, spec, summarize, out);
            return;
        }
        if !self.rule.fires(spec, w) {
            return;
        }
        let first = w.counted_span().map_or(ev.time, |(f, _)| f);
        let mut inc = Incident::open(spec, key, ev, first);
        // Fold in the window that led here; the crossing event last, with its id.
        let mut pending_self = true;
        for e in w.entries().filter(|e| e.counted) {
            if pending_self && e.time == ev.time && e.aux == aux && e.outcome == ev.outcome {
                pending_self = false;
                continue;
            }
            inc.add(e.time, e.outcome, e.aux, e.aux_name.as_deref(), None);
        }
        inc.add(ev.time, ev.outcome, aux, counterpart, ev.event_id.as_deref());
        self.rule.evidence(spec, w, &mut inc.extra);
        inc.severity = spec.severity_at(inc.count);
        self.incidents.open(h, inc, spec, summarize, out);
    }

    fn advance(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.incidents.advance(now, &self.spec, R::summary, out);
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.incidents.finish(&self.spec, R::summary, out);
    }

    fn earliest_open(&self) -> Option<Timestamp> {
        self.incidents.earliest_first_seen()
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked_keys: self.keys.len(),
            evicted_keys: self.keys.evicted,
            late_unplaced: self.late_unplaced,
            allowlisted: self.allowlisted,
            ..self.incidents.stats(&self.spec)
        }
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
