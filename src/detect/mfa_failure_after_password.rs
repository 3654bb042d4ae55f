//! `mfa_failure_after_password`: the password step succeeded and the MFA step failed, repeatedly for one
//! account, or across several accounts from one address: the password is in someone else's hands.
//!
//! Counted: sign-ins whose MFA step failed after the password passed. The export says both in one
//! event (`challenges`: Password/Success, Mfa/Failure). CloudTrail splits them: a failed
//! `RespondToAuthChallenge` to an MFA challenge counts only after a challenge was issued for that user
//! (an `InitiateAuth` that passed the password and answered with an MFA challenge) within the window.
//! A successful MFA step is context: the user-keyed spec allows none in the window (a user who mistypes
//! a code and then gets it right is not this), the address-keyed one a share (a shared address). The
//! address-keyed spec also counts, among its distinct accounts, only those that did not pass MFA from the
//! address after failing it: behind an office address, three people who each mistype a code and get it
//! right a minute later hold their passwords and their second factors, and are not a stuffing run.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::counting::{ratio, round3, unrecovered_counterparts, CountingRule};
use super::elapsed;
use super::incident::Incident;
use super::keys::Keys;
use super::pool::CappedSet;
use super::registry::{check_share, Registered};
use super::window::KeyWindow;
use crate::event::{EventKind, Outcome, SignInEvent, Step};
use crate::spec::{KeyKind, Spec};
use crate::time::Span;

/// Users remembered with their last issued MFA challenge (CloudTrail); past it the memory starts over.
const MAX_CHALLENGED_USERS: usize = 200_000;
/// How long an issued challenge stays answerable: Cognito sessions last 3 to 15 minutes.
const CHALLENGE_LIFETIME: Span = Span::mins(15);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaParams {
    /// Distinct users among the counted failures, at least (1 for the user-keyed spec).
    pub min_distinct_users: u64,
    /// Successful MFA steps over all MFA steps in the window, at most.
    pub max_success_ratio: f64,
}

pub struct MfaFailureAfterPassword {
    params: MfaParams,
    /// Users by hash with the time (ms) of their last MFA challenge issued after a password.
    challenged: CappedSet,
}

impl Registered for MfaFailureAfterPassword {
    const ID: &'static str = "mfa_failure_after_password";
    const KEY: Option<KeyKind> = None;
    type Params = MfaParams;

    fn check_params(p: &MfaParams) -> Result<(), String> {
        check_share("max_success_ratio", p.max_success_ratio)?;
        if p.min_distinct_users == 0 {
            return Err("min_distinct_users must be at least 1".into());
        }
        Ok(())
    }

    fn check_spec(p: &MfaParams, spec: &Spec) -> Result<(), String> {
        if spec.key == KeyKind::User && p.min_distinct_users > 1 {
            return Err("a user-keyed spec sees one user: min_distinct_users must be 1".into());
        }
        if !spec.observes(EventKind::SignIn) {
            return Err("match.kinds must include sign_in".into());
        }
        Ok(())
    }
}

/// What the rule counts, judged on the event alone: an MFA step that failed, its password step passed or
/// not shown. When the event does not show the password step (CloudTrail's answer to an MFA challenge),
/// `qualifies` also needs a challenge issued after a password for that user within
/// [`CHALLENGE_LIFETIME`]: history a CloudWatch metric filter cannot see, so the metric counts every such
/// answer. (A counted outcome is the spec's `match.outcomes`.)
pub fn mfa_failed_after_password(ev: &SignInEvent) -> bool {
    ev.factors.mfa == Step::Failed && ev.factors.password != Step::Failed
}

impl CountingRule for MfaFailureAfterPassword {
    fn new(params: MfaParams) -> Self {
        MfaFailureAfterPassword { params, challenged: CappedSet::new(MAX_CHALLENGED_USERS) }
    }

    fn track_counterparts(&self) -> bool {
        true
    }

    /// Only the steps of MFA sign-ins: a challenge issued after a password, an MFA answer.
    /// The challenged users are per user: an address-keyed spec would need them across its keys.
    fn per_key(&self, spec: &Spec) -> bool {
        spec.key == KeyKind::User
    }

    fn admits(&self, ev: &SignInEvent) -> bool {
        ev.factors.mfa != Step::Unknown || ev.factors.password == Step::Passed
    }

    fn qualifies(&mut self, ev: &SignInEvent, keys: &Keys<'_>, spec_counts: bool) -> bool {
        let user = keys.user.map(|_| keys.user_hash);
        match (ev.factors.password, ev.factors.mfa) {
            (Step::Passed, Step::Unknown) => {
                if let Some(h) = user {
                    self.challenged.set(h, ev.time.millis());
                }
                false
            }
            _ if !(spec_counts && mfa_failed_after_password(ev)) => false,
            (Step::Passed, _) => true,
            _ => {
                let since = ev.time.saturating_sub(CHALLENGE_LIFETIME).millis();
                user.and_then(|h| self.challenged.get(h)).is_some_and(|t| t >= since)
            }
        }
    }

    /// Only an MFA step is a success or a failure here: CloudTrail's `InitiateAuth` that passed the
    /// password and issued the challenge (a success there) is a step in progress.
    fn outcome(&self, ev: &SignInEvent) -> Outcome {
        if ev.factors.mfa == Step::Unknown {
            Outcome::InProgress
        } else {
            ev.outcome
        }
    }

    /// The accounts are counted last: it walks the window (a user-keyed spec sees one account, and its
    /// `min_distinct_users` is 1).
    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        w.counted() >= spec.threshold
            && ratio(w.successes(), w.successes() + w.counted()) <= self.params.max_success_ratio
            && (spec.key == KeyKind::User || unrecovered_counterparts(w) >= self.params.min_distinct_users)
    }

    fn evidence(&self, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("accounts_that_did_not_pass_mfa_after".into(), json!(unrecovered_counterparts(w)));
        extra.insert("mfa_successes_in_window".into(), json!(w.successes()));
        extra.insert("mfa_success_ratio".into(), round3(ratio(w.successes(), w.successes() + w.counted())));
    }

    fn summary(spec: &Spec, inc: &Incident) -> String {
        match spec.key {
            KeyKind::User => format!(
                "{} sign-ins for {} passed the password and failed MFA, from {} address(es), in {}: the password is known",
                inc.count,
                inc.label(),
                inc.distinct(),
                elapsed(inc)
            ),
            KeyKind::Ip | KeyKind::Pool => format!(
                "{} sign-ins from {} passed the password and failed MFA on {} account(s) in {}: those passwords are known",
                inc.count,
                inc.label(),
                inc.distinct(),
                elapsed(inc)
            ),
        }
    }
}
