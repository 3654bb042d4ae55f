//! `cognito_risk`: Cognito threat protection's own verdicts on a sign-in, one incident per user.
//!
//! Counts events with `compromisedCredentialDetected = "true"`, a `riskDecision` or a `riskLevel` named in
//! the spec. Names compare case-insensitively (the log writes `PASS`, the API `NoRisk`).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::incident::Incident;
use super::registry::Registered;
use super::rule::{Rule, Seen};
use super::window::{Entry, KeyWindow, KeyedState};
use super::{elapsed, DetectorStats, EngineSettings, IncidentBook, Summarize};
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskParams {
    /// `riskLevel` values that count (Cognito: Low, Medium, High).
    pub risk_levels: Vec<String>,
    /// `riskDecision` values that count (Cognito: NoRisk, AccountTakeover, Block).
    pub risk_decisions: Vec<String>,
    /// Count `compromisedCredentialDetected = "true"`.
    pub compromised_credentials: bool,
}

impl RiskParams {
    fn counts_decision(&self, d: &str) -> bool {
        self.risk_decisions.iter().any(|x| x.eq_ignore_ascii_case(d))
    }

    fn counts_level(&self, l: &str) -> bool {
        self.risk_levels.iter().any(|x| x.eq_ignore_ascii_case(l))
    }

    fn counts_compromised(&self, ev: &SignInEvent) -> bool {
        self.compromised_credentials && ev.risk.compromised_credentials == Some(true)
    }

    /// Whether `ev` carries a signal these params count (what [`RiskParams::signals`] lists, unlisted).
    fn any_signal(&self, ev: &SignInEvent) -> bool {
        self.counts_compromised(ev)
            || ev.risk.decision.as_deref().is_some_and(|d| self.counts_decision(d))
            || ev.risk.level.as_deref().is_some_and(|l| self.counts_level(l))
    }

    /// The signals of `ev` that these params count, as evidence keys.
    fn signals(&self, ev: &SignInEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.counts_compromised(ev) {
            out.push("compromised_credentials".to_string());
        }
        if let Some(d) = ev.risk.decision.as_deref().filter(|d| self.counts_decision(d)) {
            out.push(format!("risk_decision:{d}"));
        }
        if let Some(l) = ev.risk.level.as_deref().filter(|l| self.counts_level(l)) {
            out.push(format!("risk_level:{l}"));
        }
        out
    }
}

pub struct CognitoRisk {
    params: RiskParams,
    users: KeyedState<KeyWindow>,
}

impl Registered for CognitoRisk {
    const ID: &'static str = "cognito_risk";
    const KEY: Option<KeyKind> = Some(KeyKind::User);
    type Params = RiskParams;

    fn check_params(p: &RiskParams) -> Result<(), String> {
        if p.risk_levels.is_empty() && p.risk_decisions.is_empty() && !p.compromised_credentials {
            return Err("at least one signal must be enabled".into());
        }
        Ok(())
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

impl Rule for CognitoRisk {
    fn new(spec: &Spec, params: RiskParams, _settings: &EngineSettings) -> CognitoRisk {
        CognitoRisk { params, users: KeyedState::new(spec.max_keys, spec.window) }
    }

    /// Only events Cognito flagged with a signal the spec counts: checked before the shared checks, so
    /// only those count as allow-listed or late.
    fn admits(&self, spec: &Spec, ev: &SignInEvent) -> bool {
        spec.observes(ev.kind) && spec.counts(ev.outcome) && !ev.risk.is_empty() && self.params.any_signal(ev)
    }

    /// Each user's window is theirs alone.
    fn per_key(&self, _spec: &Spec) -> bool {
        true
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, key, clock, .. } = seen;
        let signals = self.params.signals(ev);
        let summarize: Summarize = summary;
        let (user, h, ip, aux) = (key.key, key.hash, key.aux_name, key.aux);
        if let Some(inc) = book.get_mut(h) {
            inc.add(ev.time, ev.outcome, aux, ip, ev.event_id.as_deref());
            note_signals(inc, &signals);
            book.rerate(h, spec, summarize, out);
            return;
        }
        let w = self.users.get_or_insert_with(h, clock, || KeyWindow::new(false, 1));
        w.push(Entry::new(ev.time, ev.outcome, true, aux, ip), spec.max_events_per_key);
        w.expire(clock, spec.window);
        if w.counted() < spec.threshold {
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
            inc.add(e.time, e.outcome(), e.aux, e.aux_name(), None);
        }
        inc.add(ev.time, ev.outcome, aux, ip, ev.event_id.as_deref());
        note_signals(&mut inc, &signals);
        w.clear();
        inc.severity = spec.severity_at(inc.count);
        book.open(h, inc, spec, summarize, out);
    }

    fn summary(spec: &Spec, inc: &Incident) -> String {
        summary(spec, inc)
    }

    fn settle(&mut self, now: Timestamp) {
        self.users.sweep(now);
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.users.len();
        stats.evicted_keys = self.users.evicted;
    }
}
