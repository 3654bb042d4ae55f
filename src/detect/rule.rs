//! The one path every rule's events take: the checks all rules share, then the rule's own step.
//!
//! Before a rule sees an event, [`RuleDetector`] asks whether the rule looks at it at all, finds its key,
//! applies the allow-lists, drops it if it is too late for the window, and closes the key's incident if
//! it went quiet. A rule ([`Rule`]) supplies only what happens next. `RuleDetector` is generic over the
//! rule, so this costs no dynamic dispatch or lookup beyond the engine's one call per rule per event.

use super::baseline::RuleBaseline;
use super::incident::Incident;
use super::registry::Registered;
use super::shard::Shard;
use super::{Detector, DetectorStats, EngineSettings, IncidentBook, Keys};
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

/// A detector's own logic: what it does with an event that passed the shared checks.
pub trait Rule: Registered + Send + Sized + 'static {
    /// The rule for one spec, with that spec's params.
    fn new(spec: &Spec, params: Self::Params, settings: &EngineSettings) -> Self;
    /// Whether the rule looks at this event at all: checked first, before keys and allow-lists, so the
    /// events a rule ignores are not counted as allow-listed or late for it.
    fn admits(&self, spec: &Spec, ev: &SignInEvent) -> bool {
        spec.observes(ev.kind)
    }
    /// Takes one event that passed the shared checks; opens, extends or escalates incidents in `book`.
    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>);
    /// One line describing an incident.
    fn summary(spec: &Spec, inc: &Incident) -> String;
    /// Fills in the figures of the rule's own state (tracked and evicted keys, and any of its own).
    fn stats(&self, stats: &mut DetectorStats);
    /// The normal the rule learned (pool-wide rules), to save and seed a later run with.
    fn baseline(&self) -> Option<RuleBaseline> {
        None
    }
    /// Whether all of the rule's state, for this spec, belongs to one key of the spec's kind (never to
    /// the pool, never to other keys): then it can run sharded by key ([`Detector::shard_key`]). A rule
    /// that remembers anything across keys (a user's history under an address-keyed spec, a pool-wide
    /// rate) must say no.
    fn per_key(&self, _spec: &Spec) -> bool {
        false
    }
    /// End of input at event time `now`: drop per-key state idle past its horizon, so the keys the rule
    /// reports tracking do not depend on when its sweeps happened to run (they run per instance).
    fn settle(&mut self, _now: Timestamp) {}
}

/// An event that passed the shared checks, and what they found out.
pub struct Seen<'a> {
    pub spec: &'a Spec,
    pub ev: &'a SignInEvent,
    pub keys: &'a Keys<'a>,
    /// The event's key for this rule and its counterpart.
    pub key: Keyed<'a>,
    /// The rule's clock: the newest event time it has taken, this one included.
    pub clock: Timestamp,
}

/// The key of an event for one rule, and the counterpart it is counted against: the user for an
/// address-keyed rule, the address for a user-keyed one.
pub struct Keyed<'k> {
    pub key: &'k str,
    /// The key's hash, which its state is found by.
    pub hash: u64,
    /// Which shard keeps the key ([`super::shard::split_hash`] of its text).
    pub split: u64,
    /// The counterpart's identity, which distinct counts use: its hash, or `NO_COUNTERPART`.
    pub aux: u64,
    /// The counterpart as shown in evidence.
    pub aux_name: Option<&'k str>,
}

pub fn key_and_counterpart<'k>(kind: KeyKind, keys: &'k Keys<'_>) -> Option<Keyed<'k>> {
    match kind {
        KeyKind::User => keys.user.map(|key| Keyed {
            key,
            hash: keys.user_hash,
            split: keys.user_split,
            aux: keys.ip_hash,
            aux_name: keys.ip,
        }),
        KeyKind::Ip => keys.ip.map(|key| Keyed {
            key,
            hash: keys.ip_hash,
            split: keys.ip_split,
            aux: keys.user_hash,
            aux_name: keys.user_name.or(keys.user),
        }),
        // Pool-wide rules are never sharded: their one instance owns every pool.
        KeyKind::Pool => {
            keys.pool.map(|(key, hash)| Keyed { key, hash, split: hash, aux: keys.ip_hash, aux_name: keys.ip })
        }
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

/// A rule behind the shared checks, with its incidents: the [`Detector`] the engine runs.
pub struct RuleDetector<R: Rule> {
    spec: Spec,
    rule: R,
    incidents: IncidentBook,
    /// Newest event time taken by this rule.
    clock: Timestamp,
    late_unplaced: u64,
    allowlisted: u64,
    /// The keys this instance keeps (all, unless the engine runs the rule sharded).
    shard: Shard,
}

impl<R: Rule> RuleDetector<R> {
    pub fn new(spec: Spec, rule: R) -> RuleDetector<R> {
        RuleDetector {
            spec,
            rule,
            incidents: IncidentBook::default(),
            clock: Timestamp(i64::MIN),
            late_unplaced: 0,
            allowlisted: 0,
            shard: Shard::WHOLE,
        }
    }
}

impl<R: Rule> Detector for RuleDetector<R> {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn observe(&mut self, ev: &SignInEvent, keys: &Keys<'_>, out: &mut Vec<Finding>) {
        let spec = &self.spec;
        if !self.rule.admits(spec, ev) {
            return;
        }
        let Some(key) = key_and_counterpart(spec.key, keys) else { return };
        // A sharded instance moves its clock with every event the rule takes, as one instance would,
        // and counts and keeps only the keys it owns.
        let owned = self.shard.owns(key.split);
        if allowlisted(spec, ev, keys) {
            self.allowlisted += u64::from(owned);
            return;
        }
        self.clock = self.clock.max(ev.time);
        if !owned {
            return;
        }
        if ev.time <= self.clock.saturating_sub(spec.window) {
            self.late_unplaced += 1;
            return;
        }
        self.incidents.close_if_quiet(key.hash, ev.time, spec, R::summary, out);
        let seen = Seen { spec, ev, keys, key, clock: self.clock };
        self.rule.observe(seen, &mut self.incidents, out);
    }

    fn advance(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.incidents.advance(now, &self.spec, R::summary, out);
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.incidents.finish(&self.spec, R::summary, out);
        self.rule.settle(self.clock);
    }

    fn earliest_open(&self) -> Option<Timestamp> {
        self.incidents.earliest_first_seen()
    }

    fn baseline(&self) -> Option<RuleBaseline> {
        self.rule.baseline()
    }

    fn shard_key(&self) -> Option<KeyKind> {
        (self.spec.key != KeyKind::Pool && self.rule.per_key(&self.spec)).then_some(self.spec.key)
    }

    fn set_shard(&mut self, shard: Shard) {
        self.shard = shard;
    }

    fn stats(&self) -> DetectorStats {
        let mut stats = DetectorStats {
            late_unplaced: self.late_unplaced,
            allowlisted: self.allowlisted,
            ..self.incidents.stats(&self.spec)
        };
        self.rule.stats(&mut stats);
        stats
    }
}
