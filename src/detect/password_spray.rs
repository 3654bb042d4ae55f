//! `password_spray`: one address trying a few passwords against many users, slowly.

use serde_json::{json, Map, Value};

use super::elapsed;
use super::incident::Incident;
use super::window::KeyWindow;
use super::windowed::{ratio, round3, WindowRule};
use crate::spec::{Params, Spec, SprayParams};

pub struct Rule;

fn params(spec: &Spec) -> Option<&SprayParams> {
    match &spec.params {
        Params::PasswordSpray(p) => Some(p),
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

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        let Some(p) = params(spec) else { return false };
        let users = w.distinct_aux();
        let tries = ratio(w.counted, users);
        let paced = w.counted_span().is_some_and(|(first, last)| last.since(first) >= p.min_duration);
        w.counted >= spec.threshold
            && users >= p.min_distinct_users
            && tries >= p.min_tries_per_user
            && tries <= p.max_tries_per_user
            && ratio(w.successes, w.counted) <= p.max_success_ratio
            && paced
    }

    fn evidence(&self, _spec: &Spec, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("success_ratio".into(), round3(ratio(w.successes, w.counted)));
        extra.insert("tries_per_user".into(), round3(ratio(w.counted, w.distinct_aux())));
        extra.insert("distinct_users_at_detection".into(), json!(w.distinct_aux()));
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        format!(
            "{} sign-in attempts from {} sprayed over {} users ({} succeeded) in {}",
            inc.count,
            inc.label(),
            inc.distinct(),
            inc.successes,
            elapsed(inc)
        )
    }
}
