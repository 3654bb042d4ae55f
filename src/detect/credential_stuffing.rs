//! `credential_stuffing`: one address trying many users once or twice each, with little success.
//!
//! A NAT full of real users also shows many users per address; they succeed far more often than leaked
//! pairs do, which is what `max_success_ratio` separates.

use serde_json::{json, Map, Value};

use super::elapsed;
use super::incident::Incident;
use super::window::KeyWindow;
use super::windowed::{ratio, round3, WindowRule};
use crate::spec::{Params, Spec, StuffingParams};

pub struct Rule;

fn params(spec: &Spec) -> Option<&StuffingParams> {
    match &spec.params {
        Params::CredentialStuffing(p) => Some(p),
        _ => None,
    }
}

impl WindowRule for Rule {
    fn track_counterparts(&self, _spec: &Spec) -> bool {
        true
    }

    fn needs_context(&self, _spec: &Spec) -> bool {
        true
    }

    fn low_try_limit(&self, spec: &Spec) -> u32 {
        params(spec).map_or(1, |p| p.max_tries_per_user.min(u32::MAX as u64) as u32)
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        let Some(p) = params(spec) else { return false };
        let users = w.distinct_aux();
        w.counted >= spec.threshold
            && users >= p.min_distinct_users
            && ratio(w.low_try, users) >= p.min_low_try_share
            && ratio(w.successes, w.counted) <= p.max_success_ratio
    }

    fn evidence(&self, _spec: &Spec, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("success_ratio".into(), round3(ratio(w.successes, w.counted)));
        extra.insert("tries_per_user".into(), round3(ratio(w.counted, w.distinct_aux())));
        extra.insert("distinct_users_at_detection".into(), json!(w.distinct_aux()));
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        format!(
            "{} sign-in attempts from {} on {} distinct users ({} succeeded) in {}",
            inc.count,
            inc.label(),
            inc.distinct(),
            inc.successes,
            elapsed(inc)
        )
    }
}
