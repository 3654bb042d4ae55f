//! `account_takeover`: a successful sign-in right after a run of failures (the guessing worked), or from
//! an address that is failing across many users (stuffing that found a working pair).
//!
//! A successful password reset or change clears the user's failures: someone who forgot the password,
//! reset it and signed in is not a takeover. A CloudTrail `ForgotPassword` call only *requests* a code (and
//! anyone can make it), so only its confirmation (`ConfirmForgotPassword`) clears them there.

use serde::Deserialize;
use serde_json::json;

use super::counting::{ratio, recovering_wave};
use super::incident::Incident;
use super::pool::{pair_hash, CappedKeys, MAX_KNOWN_PAIRS};
use super::registry::{check_share, Registered};
use super::rule::{Rule, Seen};
use super::window::{Entry, KeyWindow, KeyedState, NO_COUNTERPART};
use super::{elapsed, DetectorStats, EngineSettings, IncidentBook, Summarize};
use crate::event::{EventKind, LogFormat, Outcome, SignInEvent};
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeoverParams {
    /// A success from an address with at least this many failures in the window (across users) is a
    /// takeover too, even if this user had few failures (stuffing that found a working pair). 0 = off.
    pub ip_min_failures: u64,
    /// ... while failures are more than this share of that address's sign-ins (NAT protection).
    pub ip_failure_share_above: f64,
}

pub struct AccountTakeover {
    params: TakeoverParams,
    /// Per user: recent failed sign-ins (counterpart: the address).
    users: KeyedState<KeyWindow>,
    /// Per address: recent sign-ins of any user (counted: failures).
    ips: KeyedState<KeyWindow>,
    /// (user, address) pairs that signed in successfully: their failures at that address say nothing
    /// hostile about it (an office NAT's own users mistyping, or a stale client after a release).
    known_pairs: CappedKeys,
}

impl Registered for AccountTakeover {
    const ID: &'static str = "account_takeover";
    const KEY: Option<KeyKind> = Some(KeyKind::User);
    type Params = TakeoverParams;

    fn check_params(p: &TakeoverParams) -> Result<(), String> {
        check_share("ip_failure_share_above", p.ip_failure_share_above)
    }
}

/// Is the address failing across users right now (as of this sign-in)? Its (failures, sign-ins) in the
/// window when they make it hostile by the rule's parameters.
fn hostile_address(params: &TakeoverParams, w: &KeyWindow) -> Option<(u64, u64)> {
    if params.ip_min_failures == 0 {
        return None;
    }
    // An office NAT during a client release (its users fail, then get in) is not a hostile address.
    let hostile = w.failures() >= params.ip_min_failures
        && ratio(w.failures(), w.total()) > params.ip_failure_share_above
        && !recovering_wave(w, params.ip_min_failures);
    hostile.then_some((w.failures(), w.total()))
}

/// A success that completes a takeover, and what is known about it.
struct Success<'a> {
    ev: &'a SignInEvent,
    ip: Option<&'a str>,
    ip_hash: u64,
    failures: u64,
    hostile: Option<(u64, u64)>,
}

impl Success<'_> {
    /// Adds the user's recent failures and this success to the incident's evidence.
    fn fold_into(&self, inc: &mut Incident, failures: &[&Entry]) {
        for e in failures {
            inc.add(e.time, e.outcome(), e.aux, e.aux_name(), None);
        }
        let ev = self.ev;
        inc.add(ev.time, ev.outcome, self.ip_hash, self.ip, ev.event_id.as_deref());
        inc.extra.insert("success_ip".into(), json!(self.ip));
        inc.extra.insert("success_at".into(), json!(ev.time));
        inc.extra.insert("failures_before_success".into(), json!(self.failures));
        if let Some((ip_failures, ip_sign_ins)) = self.hostile {
            inc.extra.insert("success_ip_failures".into(), json!(ip_failures));
            inc.extra.insert("success_ip_sign_ins".into(), json!(ip_sign_ins));
        }
    }
}

fn is_reset(ev: &SignInEvent) -> bool {
    let reset_kind = matches!(ev.kind, EventKind::ForgotPassword | EventKind::PasswordChange);
    let request_only = ev.format == LogFormat::CloudTrail && ev.event_name == "ForgotPassword";
    reset_kind && ev.outcome == Outcome::Success && !request_only
}

fn summary(spec: &Spec, inc: &Incident) -> String {
    let via = inc.extra.get("success_ip").and_then(|v| v.as_str()).unwrap_or("an unknown address");
    let own = inc.extra.get("failures_before_success").and_then(|v| v.as_u64()).unwrap_or(0);
    let ip_failures = inc.extra.get("success_ip_failures").and_then(|v| v.as_u64());
    match ip_failures {
        Some(n) if own < spec.threshold => format!(
            "{} signed in successfully from {via}, an address with {n} failed sign-ins across users in the last {}",
            inc.label(),
            spec.window
        ),
        _ => format!(
            "{} signed in successfully from {via} after {} failed sign-ins in {}",
            inc.label(),
            inc.failures,
            elapsed(inc)
        ),
    }
}

impl Rule for AccountTakeover {
    fn new(spec: &Spec, params: TakeoverParams, _settings: &EngineSettings) -> AccountTakeover {
        AccountTakeover {
            params,
            users: KeyedState::new(spec.max_keys, spec.window),
            ips: KeyedState::new(spec.max_keys, spec.window),
            known_pairs: CappedKeys::new(MAX_KNOWN_PAIRS),
        }
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, keys, key, clock } = seen;
        let (user, uh, window) = (key.key, key.hash, spec.window);
        let summarize: Summarize = summary;
        if is_reset(ev) {
            if let Some(w) = self.users.get_mut(uh) {
                w.clear();
            }
            return;
        }
        if ev.kind != EventKind::SignIn {
            return;
        }
        let max_entries = spec.max_events_per_key;
        let ip_hash = keys.ip.is_some().then_some(keys.ip_hash);
        // Every sign-in of an address counts toward its failure share, so a busy NAT's successes before
        // its first typo are seen (tracking only from the first failure made shares look hostile).
        // Whether the address is hostile, judged with this sign-in counted, from the window at hand.
        let mut hostile = None;
        let pair = keys.user.and(ip_hash).map(|h| pair_hash(keys.user_hash, h));
        let known_pair = pair.is_some_and(|p| self.known_pairs.contains(p));
        if ev.outcome == Outcome::Success {
            if let Some(p) = pair {
                self.known_pairs.insert(p);
            }
        }
        if let Some(h) = ip_hash.filter(|_| !(known_pair && ev.outcome == Outcome::Failure)) {
            let w = self.ips.get_or_insert_with(h, clock, || KeyWindow::new(false, 1));
            let counted = ev.outcome == Outcome::Failure;
            let aux = keys.user.map_or(NO_COUNTERPART, |_| keys.user_hash);
            w.push(Entry::new(ev.time, ev.outcome, counted, aux, None), max_entries);
            w.expire(clock, window);
            hostile = hostile_address(&self.params, w);
        }
        match ev.outcome {
            Outcome::Failure => {
                let w = self.users.get_or_insert_with(uh, clock, || KeyWindow::new(false, 1));
                w.push(Entry::new(ev.time, ev.outcome, true, ip_hash.unwrap_or(0), keys.ip), max_entries);
                w.expire(clock, window);
            }
            Outcome::Success => {
                // Only the failures before this success (and within the window before it) count: a late
                // success must not claim failures that came after it.
                let since = ev.time.saturating_sub(window);
                let before = |e: &&Entry| e.counted() && e.time > since && e.time <= ev.time;
                let quiet = |failures: u64| failures < spec.threshold && hostile.is_none();
                // Nearly every success ends here, with one look at the user's failures (if any).
                let failures = match self.users.get_mut(uh) {
                    Some(w) => {
                        w.expire(clock, window);
                        let failures = w.entries().filter(before).count() as u64;
                        if quiet(failures) {
                            w.drain_through(ev.time);
                            return;
                        }
                        failures
                    }
                    None if quiet(0) => return,
                    None => 0,
                };
                let earlier: Vec<&Entry> =
                    self.users.get(uh).map(|w| w.entries().filter(before).collect()).unwrap_or_default();
                let first = earlier.first().map_or(ev.time, |e| e.time);
                let ctx = Success { ev, ip: keys.ip, ip_hash: ip_hash.unwrap_or(0), failures, hostile };
                if let Some(inc) = book.get_mut(uh) {
                    ctx.fold_into(inc, &earlier);
                    book.rerate(uh, spec, summarize, out);
                } else {
                    let mut inc = Incident::open(spec, user, ev, first);
                    ctx.fold_into(&mut inc, &earlier);
                    inc.severity = spec.severity_at(inc.count);
                    book.open(uh, inc, spec, summarize, out);
                }
                if let Some(w) = self.users.get_mut(uh) {
                    w.drain_through(ev.time);
                }
            }
            _ => {}
        }
    }

    fn summary(spec: &Spec, inc: &Incident) -> String {
        summary(spec, inc)
    }

    fn settle(&mut self, now: Timestamp) {
        self.users.sweep(now);
        self.ips.sweep(now);
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.users.len() + self.ips.len();
        stats.evicted_keys = self.users.evicted + self.ips.evicted;
    }
}
