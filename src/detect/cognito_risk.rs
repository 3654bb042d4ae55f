//! `cognito_risk`: Cognito threat protection's own verdicts on a sign-in, one incident per user.
//!
//! Counts events with `compromisedCredentialDetected = "true"`, a `riskDecision` or a `riskLevel` named in
//! the spec. Names compare case-insensitively (the log writes `PASS`, the API `NoRisk`).

use serde_json::{json, Map, Value};

use super::incident::Incident;
use super::window::{Entry, KeyWindow, KeyedState, Name};
use super::windowed::allowlisted;
use super::{elapsed, Detector, DetectorStats, IncidentBook, Keys, Summarize};
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::spec::{Params, RiskParams, Spec};
use crate::time::Timestamp;

pub struct CognitoRisk {
    spec: Spec,
    params: RiskParams,
    users: KeyedState<KeyWindow>,
    incidents: IncidentBook,
    clock: Timestamp,
    late_unplaced: u64,
    allowlisted: u64,
}

impl CognitoRisk {
    pub fn new(spec: Spec) -> CognitoRisk {
        let params = match &spec.params {
            Params::CognitoRisk(p) => p.clone(),
            _ => RiskParams { risk_levels: vec![], risk_decisions: vec![], compromised_credentials: true },
        };
        CognitoRisk {
            users: KeyedState::new(spec.max_keys, spec.window),
            params,
            spec,
            incidents: IncidentBook::default(),
            clock: Timestamp(i64::MIN),
            late_unplaced: 0,
            allowlisted: 0,
        }
    }

    /// The signals of `ev` that the spec counts, as evidence keys.
    fn signals(&self, ev: &SignInEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.params.compromised_credentials && ev.risk.compromised_credentials == Some(true) {
            out.push("compromised_credentials".to_string());
        }
        if let Some(d) = ev.risk.decision.as_deref() {
            if self.params.risk_decisions.iter().any(|x| x.eq_ignore_ascii_case(d)) {
                out.push(format!("risk_decision:{d}"));
            }
        }
        if let Some(l) = ev.risk.level.as_deref() {
            if self.params.risk_levels.iter().any(|x| x.eq_ignore_ascii_case(l)) {
                out.push(format!("risk_level:{l}"));
            }
        }
        out
    }
}

fn summary(_spec: &Spec, inc: &Incident) -> String {
    let signals: Vec<&str> = inc
        .extra
        .get("signals")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let from = inc.main_counterpart().map(|ip| format!(" from {ip}")).unwrap_or_default();
    format!(
        "Cognito flagged {} sign-in event(s) for {}{from} ({}) in {}",
        inc.count,
        inc.label(),
        signals.join(", "),
        elapsed(inc)
    )
}

fn note_signals(inc: &mut Incident, signals: &[String]) {
    let entry = inc.extra.entry("signals").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entry {
        for s in signals {
            let n = m.get(s).and_then(Value::as_u64).unwrap_or(0);
            m.insert(s.clone(), json!(n + 1));
        }
    }
}

impl Detector for CognitoRisk {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn observe(&mut self, ev: &SignInEvent, keys: &Keys<'_>, out: &mut Vec<Finding>) {
        if !self.spec.observes(ev.kind) || !self.spec.counts(ev.outcome) || ev.risk.is_empty() {
            return;
        }
        let signals = self.signals(ev);
        if signals.is_empty() {
            return;
        }
        let Some(user) = keys.user else { return };
        if allowlisted(&self.spec, ev, keys) {
            self.allowlisted += 1;
            return;
        }
        self.clock = self.clock.max(ev.time);
        let (clock, window) = (self.clock, self.spec.window);
        if ev.time <= clock.saturating_sub(window) {
            self.late_unplaced += 1;
            return;
        }
        let summarize: Summarize = summary;
        let spec = &self.spec;
        let h = keys.user_hash;
        let ip = keys.ip.as_deref();
        let aux = keys.ip_hash;
        self.incidents.close_if_quiet(h, ev.time, spec, summarize, out);
        if let Some(inc) = self.incidents.get_mut(h) {
            inc.add(ev.time, ev.outcome, aux, ip, ev.event_id.as_deref());
            note_signals(inc, &signals);
            self.incidents.rerate(h, spec, summarize, out);
            return;
        }
        let w = self.users.get_or_insert_with(h, clock, || KeyWindow::new(false, 1));
        w.push(
            Entry { time: ev.time, outcome: ev.outcome, counted: true, aux, aux_name: ip.map(Name::new) },
            spec.max_events_per_key,
        );
        w.expire(clock, window);
        if w.counted < spec.threshold {
            return;
        }
        let first = w.counted_span().map_or(ev.time, |(f, _)| f);
        let mut inc = Incident::open(spec, user, ev, first);
        // Fold in the window except this event itself, which is added last with its id.
        let mut pending_self = true;
        for e in w.entries() {
            if pending_self && e.time == ev.time && e.aux == aux {
                pending_self = false;
                continue;
            }
            inc.add(e.time, e.outcome, e.aux, e.aux_name.as_deref(), None);
        }
        inc.add(ev.time, ev.outcome, aux, ip, ev.event_id.as_deref());
        note_signals(&mut inc, &signals);
        w.clear();
        inc.severity = spec.severity_at(inc.count);
        self.incidents.open(h, inc, spec, summarize, out);
    }

    fn advance(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.incidents.advance(now, &self.spec, summary, out);
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.incidents.finish(&self.spec, summary, out);
    }

    fn earliest_open(&self) -> Option<Timestamp> {
        self.incidents.earliest_first_seen()
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked_keys: self.users.len(),
            evicted_keys: self.users.evicted,
            late_unplaced: self.late_unplaced,
            allowlisted: self.allowlisted,
            ..self.incidents.stats(&self.spec)
        }
    }
}
