//! `distributed_brute_force`: one user's failures spread over many addresses, to dodge per-address limits.

use serde_json::{json, Map, Value};

use super::elapsed;
use super::incident::Incident;
use super::window::KeyWindow;
use super::windowed::WindowRule;
use crate::spec::{Params, Spec};

pub struct Rule;

fn min_ips(spec: &Spec) -> u64 {
    match &spec.params {
        Params::DistributedBruteForce(p) => p.min_distinct_ips,
        _ => u64::MAX,
    }
}

impl WindowRule for Rule {
    fn track_counterparts(&self, _spec: &Spec) -> bool {
        true
    }

    fn fires(&self, spec: &Spec, w: &KeyWindow) -> bool {
        w.counted >= spec.threshold && w.distinct_aux() >= min_ips(spec)
    }

    fn evidence(&self, _spec: &Spec, w: &KeyWindow, extra: &mut Map<String, Value>) {
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
