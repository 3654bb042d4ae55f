//! `credential_stuffing`: one address trying many users once or twice each, with little success.
//!
//! A NAT full of real users also shows many users per address; they succeed far more often than leaked
//! pairs do, which is what `max_success_ratio` separates.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::counting::{ratio, recovering_wave, round3, CountingRule};
use super::elapsed;
use super::incident::Incident;
use super::registry::{check_share, Registered};
use super::window::KeyWindow;
use crate::spec::{KeyKind, Spec};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StuffingParams {
    pub min_distinct_users: u64,
    /// A user tried at most this many times counts as a "low-try" user (stuffing tries each pair once).
    pub max_tries_per_user: u64,
    /// Share of the users that must be low-try users.
    pub min_low_try_share: f64,
    /// Successes over attempts at most this: a NAT of real users succeeds far more often.
    pub max_success_ratio: f64,
}

pub struct CredentialStuffing {
    params: StuffingParams,
}

impl Registered for CredentialStuffing {
    const ID: &'static str = "credential_stuffing";
    const KEY: Option<KeyKind> = Some(KeyKind::Ip);
    type Params = StuffingParams;

    fn check_params(p: &StuffingParams) -> Result<(), String> {
        check_share("min_low_try_share", p.min_low_try_share)?;
        check_share("max_success_ratio", p.max_success_ratio)?;
        if p.min_distinct_users < 2 || p.max_tries_per_user < 1 {
            return Err("min_distinct_users must be at least 2 and max_tries_per_user at least 1".into());
        }
        Ok(())
    }
}

impl CountingRule for CredentialStuffing {
    fn new(params: StuffingParams) -> Self {
        CredentialStuffing { params }
    }

    fn track_counterparts(&self) -> bool {
        true
    }

    fn needs_context(&self) -> bool {
        true
    }

    fn low_try_limit(&self) -> u32 {
        self.params.max_tries_per_user.min(u32::MAX as u64) as u32
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        let p = &self.params;
        let users = w.distinct_aux();
        w.counted() >= spec.threshold
            && users >= p.min_distinct_users
            && ratio(w.low_try(), users) >= p.min_low_try_share
            && ratio(w.successes(), w.counted()) <= p.max_success_ratio
            && !recovering_wave(w, spec.threshold)
    }

    fn evidence(&self, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("success_ratio".into(), round3(ratio(w.successes(), w.counted())));
        extra.insert("tries_per_user".into(), round3(ratio(w.counted(), w.distinct_aux())));
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
