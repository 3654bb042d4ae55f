//! `failed_login_burst`: many failed sign-ins for one key (a user, or an address) within the window.
//!
//! Keyed by address, the rule also needs failures to be more than `failure_share_above` of that address's
//! sign-ins, so many real users behind one NAT with a few typos do not look like an attack.

use serde_json::{Map, Value};

use super::elapsed;
use super::incident::Incident;
use super::window::KeyWindow;
use super::windowed::{ratio, round3, WindowRule};
use crate::spec::{KeyKind, Params, Spec};

pub struct Rule;

fn share_above(spec: &Spec) -> f64 {
    match &spec.params {
        Params::FailedLoginBurst(p) => p.failure_share_above,
        _ => 0.0,
    }
}

impl WindowRule for Rule {
    fn needs_context(&self, spec: &Spec) -> bool {
        share_above(spec) > 0.0
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        w.counted >= spec.threshold && ratio(w.failures, w.total()) > share_above(spec)
    }

    fn evidence(&self, _spec: &Spec, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("failure_share_at_detection".into(), round3(ratio(w.failures, w.total())));
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
            KeyKind::Ip => format!(
                "{} failed sign-ins from {} against {} user(s) in {}",
                inc.count,
                inc.label(),
                inc.distinct(),
                elapsed(inc)
            ),
        }
    }
}
