//! `password_spray`: one address trying a few passwords against many users, slowly.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::counting::{ratio, recovering_wave, round3, CountingRule};
use super::elapsed;
use super::incident::Incident;
use super::registry::{check_share, Registered};
use super::window::KeyWindow;
use crate::spec::{KeyKind, Spec};
use crate::time::Span;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SprayParams {
    pub min_distinct_users: u64,
    pub min_tries_per_user: f64,
    pub max_tries_per_user: f64,
    /// The attempts must be paced over at least this long (a spray is slow; a stuffing run is not).
    pub min_duration: Span,
    pub max_success_ratio: f64,
}

pub struct PasswordSpray {
    params: SprayParams,
}

impl Registered for PasswordSpray {
    const ID: &'static str = "password_spray";
    const KEY: Option<KeyKind> = Some(KeyKind::Ip);
    type Params = SprayParams;

    fn check_params(p: &SprayParams) -> Result<(), String> {
        check_share("max_success_ratio", p.max_success_ratio)?;
        if p.min_tries_per_user > p.max_tries_per_user || p.min_tries_per_user < 1.0 {
            return Err("need 1 <= min_tries_per_user <= max_tries_per_user".into());
        }
        if p.min_distinct_users < 2 {
            return Err("min_distinct_users must be at least 2".into());
        }
        Ok(())
    }
}

impl CountingRule for PasswordSpray {
    fn new(params: SprayParams) -> Self {
        PasswordSpray { params }
    }

    fn track_counterparts(&self) -> bool {
        true
    }

    fn needs_context(&self) -> bool {
        true
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        let p = &self.params;
        let users = w.distinct_aux();
        let tries = ratio(w.counted(), users);
        let paced = w.counted_span().is_some_and(|(first, last)| last.since(first) >= p.min_duration);
        w.counted() >= spec.threshold
            && users >= p.min_distinct_users
            && tries >= p.min_tries_per_user
            && tries <= p.max_tries_per_user
            && ratio(w.successes(), w.counted()) <= p.max_success_ratio
            && paced
            && !recovering_wave(w, spec.threshold)
    }

    fn evidence(&self, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("success_ratio".into(), round3(ratio(w.successes(), w.counted())));
        extra.insert("tries_per_user".into(), round3(ratio(w.counted(), w.distinct_aux())));
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
