//! The detectors authwatch knows, one line each, and how a spec becomes the detector that runs it.
//!
//! A spec names its detector (`detector = "password_spray"`); [`DetectorKind::parse`] finds it in
//! [`DETECTORS`], which parses the spec's `[params]` into that detector's own params type at load. The
//! typed params travel inside [`Params`] together with the constructor that takes them, so a detector
//! is always built with the params of its own type: a mismatch cannot be written, and there is no
//! fallback default.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::account_takeover::AccountTakeover;
use super::cognito_risk::CognitoRisk;
use super::counting::Counting;
use super::credential_stuffing::CredentialStuffing;
use super::distributed_brute_force::DistributedBruteForce;
use super::distributed_credential_stuffing::DistributedCredentialStuffing;
use super::failed_login_burst::FailedLoginBurst;
use super::impossible_travel::ImpossibleTravel;
use super::mfa_failure_after_password::MfaFailureAfterPassword;
use super::password_spray::PasswordSpray;
use super::pool_failure_anomaly::PoolFailureAnomaly;
use super::rule::{Rule, RuleDetector};
use super::signup_flood::SignupFlood;
use super::slow_brute_force::SlowBruteForce;
use super::{Detector, EngineSettings};
use crate::spec::{KeyKind, Spec};

/// Every detector, in the order `authwatch` lists them. A new detector is one line here.
static DETECTORS: &[Registration] = &[
    register::<Counting<FailedLoginBurst>>(),
    register::<Counting<DistributedBruteForce>>(),
    register::<Counting<CredentialStuffing>>(),
    register::<Counting<PasswordSpray>>(),
    register::<AccountTakeover>(),
    register::<CognitoRisk>(),
    register::<ImpossibleTravel>(),
    register::<DistributedCredentialStuffing>(),
    register::<PoolFailureAnomaly>(),
    register::<SlowBruteForce>(),
    register::<SignupFlood>(),
    register::<Counting<MfaFailureAfterPassword>>(),
];

/// What a detector declares about itself for the registry and the spec loader.
pub trait Registered {
    /// The name specs give in `detector = "..."` and findings carry.
    const ID: &'static str;
    /// The key every spec of this detector must use; `None`: either.
    const KEY: Option<KeyKind>;
    /// The spec's `[params]` table, typed (unknown keys are rejected).
    type Params: DeserializeOwned + fmt::Debug + Clone + PartialEq + Send + Sync + 'static;
    /// Checks the params beyond their types (ranges, bounds) at spec load.
    fn check_params(params: &Self::Params) -> Result<(), String>;
    /// Checks the rest of the spec against the params at spec load (after the key).
    fn check_spec(_params: &Self::Params, _spec: &Spec) -> Result<(), String> {
        Ok(())
    }
    /// Severities the params add beyond the spec's escalation counts, as the README table shows them.
    fn describe_severities(_params: &Self::Params) -> Vec<String> {
        Vec::new()
    }
}

/// One detector as the registry holds it.
pub struct Registration {
    id: &'static str,
    key: Option<KeyKind>,
    parse_params: fn(toml::Table) -> Result<Params, String>,
}

const fn register<R: Rule>() -> Registration {
    Registration { id: R::ID, key: R::KEY, parse_params: parse_params::<R> }
}

fn parse_params<R: Rule>(table: toml::Table) -> Result<Params, String> {
    let params: R::Params =
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())?;
    R::check_params(&params)?;
    Ok(Params(Arc::new(Typed::<R>(params, PhantomData))))
}

/// Which detector a spec configures: an entry of the registry.
#[derive(Clone, Copy)]
pub struct DetectorKind(&'static Registration);

impl DetectorKind {
    /// The detector named `name`, if there is one.
    pub fn parse(name: &str) -> Option<DetectorKind> {
        DETECTORS.iter().find(|r| r.id == name).map(DetectorKind)
    }

    /// Every detector, in the registry's order.
    pub fn all() -> impl Iterator<Item = DetectorKind> {
        DETECTORS.iter().map(DetectorKind)
    }

    /// The detector id written in findings.
    pub fn id(self) -> &'static str {
        self.0.id
    }

    /// Whether this is the detector `R`.
    pub fn is<R: Registered>(self) -> bool {
        self.0.id == R::ID
    }

    /// Parses and checks a spec's `[params]` table into this detector's params.
    pub fn parse_params(self, table: toml::Table) -> Result<Params, String> {
        (self.0.parse_params)(table)
    }

    /// Whether a spec of this detector may be keyed by `key`.
    pub fn check_key(self, key: KeyKind) -> Result<(), String> {
        match self.0.key {
            Some(expected) if expected != key => {
                Err(format!("detector {} is keyed by {}, not {}", self.id(), expected.as_str(), key.as_str()))
            }
            None if key == KeyKind::Pool => Err(format!("detector {} is keyed by user or ip, not pool", self.id())),
            _ => Ok(()),
        }
    }
}

impl PartialEq for DetectorKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for DetectorKind {}

impl fmt::Debug for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A spec's `[params]`, typed by its detector and kept with the constructor that takes them.
#[derive(Clone)]
pub struct Params(Arc<dyn Configured>);

impl Params {
    /// The params as type `P`, when they are of that type (for readers outside the detector: tests, tools).
    pub fn get<P: 'static>(&self) -> Option<&P> {
        self.0.as_any().downcast_ref::<P>()
    }

    /// Checks the rest of `spec` against these params (see [`Registered::check_spec`]).
    pub fn check_spec(&self, spec: &Spec) -> Result<(), String> {
        self.0.check_spec(spec)
    }

    /// See [`Registered::describe_severities`].
    pub fn describe_severities(&self) -> Vec<String> {
        self.0.describe_severities()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.0.same(other.0.as_ref())
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Params of one detector's type, with what the type knows how to do with them.
trait Configured: fmt::Debug + Send + Sync {
    fn build(&self, spec: Spec, settings: &EngineSettings) -> Box<dyn Detector>;
    fn check_spec(&self, spec: &Spec) -> Result<(), String>;
    fn describe_severities(&self) -> Vec<String>;
    fn as_any(&self) -> &dyn Any;
    fn same(&self, other: &dyn Configured) -> bool;
}

/// The params of rule `R`.
struct Typed<R: Rule>(R::Params, PhantomData<fn() -> R>);

impl<R: Rule> fmt::Debug for Typed<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: Rule> Configured for Typed<R> {
    fn build(&self, spec: Spec, settings: &EngineSettings) -> Box<dyn Detector> {
        let rule = R::new(&spec, self.0.clone(), settings);
        Box::new(RuleDetector::new(spec, rule))
    }

    fn check_spec(&self, spec: &Spec) -> Result<(), String> {
        R::check_spec(&self.0, spec)
    }

    fn describe_severities(&self) -> Vec<String> {
        R::describe_severities(&self.0)
    }

    fn as_any(&self) -> &dyn Any {
        &self.0
    }

    fn same(&self, other: &dyn Configured) -> bool {
        other.as_any().downcast_ref::<R::Params>() == Some(&self.0)
    }
}

/// Builds the detector for a spec, with the engine's allow-list added to the spec's own.
pub fn build(spec: &Spec, settings: &EngineSettings) -> Box<dyn Detector> {
    let mut spec = spec.clone();
    spec.allow.extend(&settings.allow);
    let params = spec.params.0.clone();
    params.build(spec, settings)
}

/// A share between 0 and 1, as params that are ratios must be.
pub fn check_share(name: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} = {v} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::detect::failed_login_burst::BurstParams;
    use crate::spec::parse_set;

    /// A detector copied from a sibling keeps the sibling's name until it is changed; two entries with
    /// one name would send every spec of the second to the first.
    #[test]
    fn registered_names_are_unique() {
        let ids: Vec<&str> = DetectorKind::all().map(DetectorKind::id).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        for id in ids {
            assert_eq!(DetectorKind::parse(id).map(DetectorKind::id), Some(id));
        }
    }

    #[test]
    fn params_are_typed_by_their_detector_and_a_mismatch_is_refused_at_load() {
        let spray = include_str!("../../filters/password_spray.toml");
        let burst = include_str!("../../filters/failed_login_burst_user.toml");
        let set = parse_set(&[("password_spray.toml", spray)]).unwrap_or_else(|e| panic!("{e}"));
        assert!(set.specs[0].params.get::<BurstParams>().is_none());
        let as_burst = burst.replace("detector = \"failed_login_burst\"", "detector = \"password_spray\"");
        let err = parse_set(&[("failed_login_burst_user.toml", &as_burst)]).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("params:")), "{err:?}");
        let burst_set = parse_set(&[("failed_login_burst_user.toml", burst)]).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(set.specs[0].params, burst_set.specs[0].params);
        assert_eq!(burst_set.specs[0].params, burst_set.clone().specs[0].params);
    }
}
