//! An incident: what one rule saw for one key from the threshold crossing until it went quiet.
//!
//! A rule opens an incident when its threshold is crossed, folds every later counted event for that key
//! into it, raises its severity on escalation, and closes it once the key has been quiet for the cooldown.
//! Each of those moments becomes a [`Finding`] with status open, escalated or closed. A rule's open
//! incidents, by key, are its [`IncidentBook`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::window;
use super::DetectorStats;
use crate::event::{Outcome, SignInEvent};
use crate::finding::{Finding, Severity, Status};
use crate::spec::{KeyKind, Spec};
use crate::time::{Span, Timestamp};

/// Event ids kept as evidence per incident ("at most a few dozen", `detection.md`).
pub const MAX_EVIDENCE_EVENT_IDS: usize = 20;
/// Distinct counterpart names (users or addresses) kept with their counts; the rest are summed.
pub const MAX_EVIDENCE_NAMES: usize = 50;
/// Distinct counterparts counted exactly; past this the count is reported as a lower bound.
pub const MAX_DISTINCT_TRACKED: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    /// The key: a user (sub, else name) or an address / IPv6 prefix.
    pub key: String,
    /// The user name, for a user-keyed incident whose key is a sub.
    pub user_name: Option<String>,
    pub user_sub: Option<String>,
    pub user_pool_id: Option<String>,
    /// The AWS Region and account of the opening event (or of the first later one that names them).
    pub region: Option<String>,
    pub account: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub detected_at: Timestamp,
    pub count: u64,
    pub failures: u64,
    pub successes: u64,
    pub severity: Severity,
    /// Counterparts (users for an IP key, addresses for a user key) with their counted events.
    names: BTreeMap<String, u64>,
    names_other: u64,
    distinct: HashSet<u64>,
    distinct_overflow: bool,
    event_ids: Vec<String>,
    /// Rule-specific figures, set by the rule when it opens (and may refresh) the incident.
    pub extra: Map<String, Value>,
    /// The counterpart the finding names (its `ip` for a user key) when the rule knows better than "the
    /// most frequent one": impossible travel names the address the user "travelled" to.
    pub shown_counterpart: Option<String>,
}

/// An event's text as the incident keeps it.
fn owned<S: std::ops::Deref<Target = str>>(text: &Option<S>) -> Option<String> {
    text.as_deref().map(String::from)
}

impl Incident {
    /// Opens an incident for `key` at the event `ev` that crossed the threshold.
    pub fn open(spec: &Spec, key: &str, ev: &SignInEvent, first_seen: Timestamp) -> Incident {
        let id = incident_id(&spec.id, key, ev.time);
        Incident {
            id,
            key: key.to_string(),
            user_name: if spec.key == KeyKind::User { owned(&ev.user_name).filter(|n| !n.is_empty()) } else { None },
            user_sub: owned(&ev.user_sub),
            // A pool-wide incident's key is its pool (`pool@region` for a replica's events).
            user_pool_id: owned(&ev.user_pool_id).or_else(|| {
                (spec.key == KeyKind::Pool && !key.starts_with("app client "))
                    .then(|| key.split('@').next().unwrap_or(key).to_string())
            }),
            region: owned(&ev.region),
            account: owned(&ev.account),
            first_seen: first_seen.min(ev.time),
            last_seen: ev.time,
            detected_at: ev.time,
            count: 0,
            failures: 0,
            successes: 0,
            severity: spec.severity,
            names: BTreeMap::new(),
            names_other: 0,
            distinct: HashSet::new(),
            distinct_overflow: false,
            event_ids: Vec::new(),
            extra: Map::new(),
            shown_counterpart: None,
        }
    }

    /// Folds in one counted event (or a remembered window entry: `ev` None) with its counterpart.
    pub fn add(&mut self, time: Timestamp, outcome: Outcome, aux: u64, aux_name: Option<&str>, event_id: Option<&str>) {
        self.count += 1;
        match outcome {
            Outcome::Failure => self.failures += 1,
            Outcome::Success => self.successes += 1,
            _ => {}
        }
        self.first_seen = self.first_seen.min(time);
        self.last_seen = self.last_seen.max(time);
        if let Some(name) = aux_name {
            if let Some(n) = self.names.get_mut(name) {
                *n += 1;
            } else if self.names.len() < MAX_EVIDENCE_NAMES {
                self.names.insert(name.to_string(), 1);
            } else {
                self.names_other += 1;
            }
            if self.distinct.len() < MAX_DISTINCT_TRACKED {
                self.distinct.insert(aux);
            } else if !self.distinct.contains(&aux) {
                self.distinct_overflow = true;
            }
        }
        if let Some(id) = event_id {
            if self.event_ids.len() < MAX_EVIDENCE_EVENT_IDS {
                self.event_ids.push(id.to_string());
            }
        }
    }

    /// Folds in counts a pool-wide rule kept as figures rather than events (a window's failures
    /// before the crossing), spanning `first` to `last`.
    pub fn add_counts(&mut self, first: Timestamp, last: Timestamp, failures: u64, successes: u64) {
        self.count += failures;
        self.failures += failures;
        self.successes += successes;
        self.first_seen = self.first_seen.min(first);
        self.last_seen = self.last_seen.max(last);
    }

    /// Counts `n` events of a named counterpart a rule kept as figures (they are in `count` already).
    pub fn add_named(&mut self, aux: u64, name: &str, n: u64) {
        if let Some(c) = self.names.get_mut(name) {
            *c += n;
        } else if self.names.len() < MAX_EVIDENCE_NAMES {
            self.names.insert(name.to_string(), n);
        } else {
            self.names_other += n;
        }
        self.add_distinct(aux);
    }

    /// Counts a counterpart known only by its hash (no name for the evidence list).
    pub fn add_distinct(&mut self, aux: u64) {
        if self.distinct.len() < MAX_DISTINCT_TRACKED {
            self.distinct.insert(aux);
        } else if !self.distinct.contains(&aux) {
            self.distinct_overflow = true;
        }
    }

    /// The key as shown: the user name when known, else the key itself.
    pub fn label(&self) -> &str {
        self.user_name.as_deref().unwrap_or(&self.key)
    }

    /// Fills in what a later event knows and the first did not (a CloudTrail event has no name).
    pub fn learn(&mut self, ev: &SignInEvent, key_kind: KeyKind) {
        if key_kind == KeyKind::User {
            if self.user_name.is_none() {
                self.user_name = owned(&ev.user_name).filter(|n| !n.is_empty());
            }
            if self.user_sub.is_none() {
                self.user_sub = owned(&ev.user_sub).filter(|s| !s.is_empty());
            }
        }
        if self.user_pool_id.is_none() {
            self.user_pool_id = owned(&ev.user_pool_id);
        }
        if self.region.is_none() {
            self.region = owned(&ev.region);
        }
        if self.account.is_none() {
            self.account = owned(&ev.account);
        }
    }

    pub fn distinct(&self) -> u64 {
        self.distinct.len() as u64
    }

    /// The most frequent counterpart (ties broken by name, so the choice is deterministic).
    pub fn main_counterpart(&self) -> Option<&str> {
        self.names.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, _)| k.as_str())
    }

    /// Counterparts ordered by count then name, at most `n`.
    pub fn top_counterparts(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.names.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }

    /// The finding for this incident in its current state.
    pub fn to_finding(&self, spec: &Spec, status: Status, summary: String) -> Finding {
        let (user, ip) = match spec.key {
            KeyKind::User => (
                Some(self.label().to_string()),
                self.shown_counterpart.clone().or_else(|| self.main_counterpart().map(str::to_string)),
            ),
            KeyKind::Ip => (None, Some(self.key.clone())),
            KeyKind::Pool => (None, None),
        };
        let counterpart = match spec.key {
            KeyKind::User | KeyKind::Pool => "ips",
            KeyKind::Ip => "users",
        };
        let mut evidence = Map::new();
        evidence.insert(format!("distinct_{counterpart}"), json!(self.distinct()));
        if self.distinct_overflow {
            evidence.insert(format!("distinct_{counterpart}_at_least"), json!(true));
        }
        let top: Map<String, Value> =
            self.top_counterparts(MAX_EVIDENCE_NAMES).into_iter().map(|(k, c)| (k.to_string(), json!(c))).collect();
        evidence.insert(counterpart.to_string(), Value::Object(top));
        if self.names_other > 0 {
            evidence.insert(format!("{counterpart}_not_listed"), json!(self.names_other));
        }
        evidence.insert("failures".into(), json!(self.failures));
        evidence.insert("successes".into(), json!(self.successes));
        evidence.insert("window".into(), json!(spec.window.to_string()));
        for (k, v) in &self.extra {
            evidence.insert(k.clone(), v.clone());
        }
        evidence.insert("event_ids".into(), json!(self.event_ids));
        Finding {
            detector: spec.detector.id(),
            severity: self.severity,
            user,
            user_sub: if spec.key == KeyKind::User { self.user_sub.clone() } else { None },
            ip,
            user_pool_id: self.user_pool_id.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            detected_at: self.detected_at,
            count: self.count,
            summary,
            evidence: Value::Object(evidence),
            incident_id: self.id.clone(),
            case_id: None,
            rule: spec.id.clone(),
            status,
        }
    }
}

/// A stable incident id: FNV-1a of rule, key and detection time, as 16 hex digits. The same events give
/// the same id in replay and in the monitor, across restarts.
pub fn incident_id(rule: &str, key: &str, detected_at: Timestamp) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [rule.as_bytes(), &[0], key.as_bytes(), &[0], &detected_at.0.to_le_bytes()] {
        for b in part {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The open incidents of one rule, by key hash, and the bookkeeping of opening and closing them.
#[derive(Default)]
pub struct IncidentBook {
    open: HashMap<u64, Incident, window::PreHashed>,
    pub opened: u64,
    /// No open incident goes quiet before this (at most the earliest `last_seen` plus the cooldown), so
    /// [`IncidentBook::advance`], called at every step of event time, looks at none of them until then.
    /// None: unknown (a rule may have moved a `last_seen` through [`IncidentBook::get_mut`]).
    quiet_from: Option<Timestamp>,
}

/// How a rule describes an incident in one line.
pub type Summarize = fn(&Spec, &Incident) -> String;

impl IncidentBook {
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The figures every rule shares: which rule, and its incidents; the rule fills in its keys.
    pub fn stats(&self, spec: &Spec) -> DetectorStats {
        DetectorStats {
            rule: spec.id.clone(),
            detector: spec.detector.id(),
            open_incidents: self.open.len(),
            incidents: self.opened,
            ..DetectorStats::default()
        }
    }

    /// The earliest `first_seen` of the open incidents.
    pub fn earliest_first_seen(&self) -> Option<Timestamp> {
        self.open.values().map(|i| i.first_seen).min()
    }

    pub fn get_mut(&mut self, h: u64) -> Option<&mut Incident> {
        let inc = self.open.get_mut(&h);
        if inc.is_some() {
            self.quiet_from = None;
        }
        inc
    }

    /// Closes the incident of `h` if it has been quiet for the cooldown as of `now`.
    pub fn close_if_quiet(
        &mut self,
        h: u64,
        now: Timestamp,
        spec: &Spec,
        summarize: Summarize,
        out: &mut Vec<Finding>,
    ) {
        if self.open.is_empty() {
            return;
        }
        if self.open.get(&h).is_some_and(|i| now.since(i.last_seen) > spec.cooldown) {
            if let Some(inc) = self.open.remove(&h) {
                out.push(inc.to_finding(spec, Status::Closed, summarize(spec, &inc)));
            }
        }
    }

    /// Registers a newly opened incident and reports it.
    pub fn open(&mut self, h: u64, inc: Incident, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        self.opened += 1;
        out.push(inc.to_finding(spec, Status::Open, summarize(spec, &inc)));
        let quiet = inc.last_seen.saturating_add(spec.cooldown);
        self.quiet_from = if self.open.is_empty() { Some(quiet) } else { self.quiet_from.map(|q| q.min(quiet)) };
        self.open.insert(h, inc);
    }

    /// Re-rates the incident of `h` after it grew; reports an escalation when severity rose.
    pub fn rerate(&mut self, h: u64, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        if let Some(inc) = self.open.get_mut(&h) {
            let sev = spec.severity_at(inc.count);
            if sev > inc.severity {
                inc.severity = sev;
                out.push(inc.to_finding(spec, Status::Escalated, summarize(spec, inc)));
            }
        }
    }

    pub fn advance(&mut self, now: Timestamp, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        if self.open.is_empty() || self.quiet_from.is_some_and(|q| now <= q) {
            return;
        }
        let quiet: Vec<u64> =
            self.open.iter().filter(|(_, i)| now.since(i.last_seen) > spec.cooldown).map(|(h, _)| *h).collect();
        for h in quiet {
            if let Some(inc) = self.open.remove(&h) {
                out.push(inc.to_finding(spec, Status::Closed, summarize(spec, &inc)));
            }
        }
        self.quiet_from = self.open.values().map(|i| i.last_seen.saturating_add(spec.cooldown)).min();
    }

    pub fn finish(&mut self, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        for (_, inc) in self.open.drain() {
            out.push(inc.to_finding(spec, Status::Closed, summarize(spec, &inc)));
        }
    }
}

/// "14 failed sign-ins for jdoe from 203.0.113.7 in 3m21s": the elapsed part of a summary.
pub fn elapsed(inc: &Incident) -> Span {
    inc.last_seen.since(inc.first_seen)
}
