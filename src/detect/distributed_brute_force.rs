//! `distributed_brute_force`: one user's failures spread over many addresses, to dodge per-address limits.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::counting::CountingRule;
use super::elapsed;
use super::incident::Incident;
use super::registry::Registered;
use super::window::KeyWindow;
use crate::spec::{KeyKind, Spec};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedParams {
    /// Distinct source addresses (IPv6 grouped by prefix) among the failures.
    pub min_distinct_ips: u64,
}

pub struct DistributedBruteForce {
    params: DistributedParams,
}

impl Registered for DistributedBruteForce {
    const ID: &'static str = "distributed_brute_force";
    const KEY: Option<KeyKind> = Some(KeyKind::User);
    type Params = DistributedParams;

    fn check_params(p: &DistributedParams) -> Result<(), String> {
        if p.min_distinct_ips < 2 {
            return Err("min_distinct_ips must be at least 2".into());
        }
        Ok(())
    }
}

impl CountingRule for DistributedBruteForce {
    fn new(params: DistributedParams) -> Self {
        DistributedBruteForce { params }
    }

    fn track_counterparts(&self) -> bool {
        true
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        w.counted() >= spec.threshold && w.distinct_aux() >= self.params.min_distinct_ips
    }

    fn evidence(&self, w: &KeyWindow, extra: &mut Map<String, Value>) {
        extra.insert("distinct_ips_at_detection".into(), json!(w.distinct_aux()));
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        format!(
            "{} failed sign-ins for {} from {} distinct addresses in {}",
            inc.count,
            inc.label(),
            inc.distinct(),
            elapsed(inc)
        )
    }
}
