//! `failed_login_burst`: many failed sign-ins for one key (a user, or an address) within the window.
//!
//! Keyed by address, the rule also needs failures to be more than `failure_share_above` of that address's
//! sign-ins, so many real users behind one NAT with a few typos do not look like an attack.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::counting::{ratio, recovered_failures, recovering_wave, round3, CountingRule};
use super::elapsed;
use super::incident::Incident;
use super::keys::Keys;
use super::pool::{pair_hash, CappedKeys, MAX_KNOWN_PAIRS};
use super::registry::{check_share, Registered};
use super::window::KeyWindow;
use crate::event::{Outcome, SignInEvent};
use crate::spec::{KeyKind, Spec};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstParams {
    /// Fire only while failures are more than this share of the key's sign-ins in the window (0 = any).
    /// The per-IP rule uses 0.5 (failures the majority) so a busy NAT with a few typos stays quiet.
    #[serde(default)]
    pub failure_share_above: f64,
    /// Keyed by address: a failure whose user then signed in successfully from the same address within
    /// the window does not count. An office NAT during a client release (every failing user gets in a
    /// moment later) is not a burst; an attacker's failures do not recover.
    #[serde(default)]
    pub discount_recovered: bool,
}

pub struct FailedLoginBurst {
    params: BurstParams,
    /// With `discount_recovered`: (user, address) pairs that signed in successfully, whose failures at
    /// that address do not count (a user failing at their usual address is a typo or a stale client).
    known_pairs: Option<CappedKeys>,
}

impl Registered for FailedLoginBurst {
    const ID: &'static str = "failed_login_burst";
    const KEY: Option<KeyKind> = None;
    type Params = BurstParams;

    fn check_params(p: &BurstParams) -> Result<(), String> {
        check_share("failure_share_above", p.failure_share_above)
    }
}

impl CountingRule for FailedLoginBurst {
    fn new(params: BurstParams) -> Self {
        let known_pairs = params.discount_recovered.then(|| CappedKeys::new(MAX_KNOWN_PAIRS));
        FailedLoginBurst { params, known_pairs }
    }

    fn qualifies(&mut self, ev: &SignInEvent, keys: &Keys<'_>, spec_counts: bool) -> bool {
        let Some(known) = &mut self.known_pairs else { return spec_counts };
        if keys.user.is_none() || keys.ip.is_none() {
            return spec_counts;
        }
        let pair = pair_hash(keys.user_hash, keys.ip_hash);
        match ev.outcome {
            Outcome::Success => {
                known.insert(pair);
                spec_counts
            }
            Outcome::Failure => spec_counts && !known.contains(pair),
            _ => spec_counts,
        }
    }

    fn needs_context(&self) -> bool {
        self.params.failure_share_above > 0.0
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        w.counted() >= spec.threshold
            && ratio(w.failures(), w.total()) > self.params.failure_share_above
            && (!self.params.discount_recovered || !recovering_wave(w, spec.threshold))
    }

    fn evidence(&self, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("failure_share_at_detection".into(), round3(ratio(w.failures(), w.total())));
        let recovered = if self.params.discount_recovered { recovered_failures(w) } else { 0 };
        if recovered > 0 {
            extra.insert("recovered_failures_at_detection".into(), serde_json::json!(recovered));
        }
    }

    fn summary(spec: &Spec, inc: &Incident) -> String {
        match spec.key {
            KeyKind::User => {
                let from = match (inc.distinct(), inc.main_counterpart()) {
                    (0, _) | (_, None) => String::new(),
                    (1, Some(ip)) => format!(" from {ip}"),
                    (n, Some(ip)) => format!(" from {n} addresses (mostly {ip})"),
                };
                format!("{} failed sign-ins for {}{from} in {}", inc.count, inc.label(), elapsed(inc))
            }
            KeyKind::Ip | KeyKind::Pool => format!(
                "{} failed sign-ins from {} against {} user(s) in {}",
                inc.count,
                inc.label(),
                inc.distinct(),
                elapsed(inc)
            ),
        }
    }
}
