//! Scores findings against a simulation's ground truth: which planted attacks were found, which were
//! missed, and which findings match no attack (false alarms).
//!
//! A finding belongs to an attack when its key is one of the attack's addresses or users and its time
//! span overlaps the attack's, give or take [`MATCH_SLACK`]. An attack is found when every detector it was
//! built to trip produced such a finding.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::finding::Finding;
use crate::simulate::Attack;
use crate::time::{Span, Timestamp};

/// How far outside an attack's planted span a finding may reach and still belong to it: incidents
/// include the window before the crossing and close after a quiet cooldown.
pub const MATCH_SLACK: Span = Span::mins(90);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    /// Attack id → the detectors that found it.
    pub found: Vec<(String, Vec<String>)>,
    /// Attack id → the detectors it should have tripped but did not.
    pub missed: Vec<(String, Vec<String>)>,
    /// Findings that belong to no planted attack (their summaries).
    pub false_alarms: Vec<String>,
}

impl Score {
    pub fn perfect(&self) -> bool {
        self.missed.is_empty() && self.false_alarms.is_empty()
    }
}

fn belongs(f: &Finding, a: &Attack) -> bool {
    // A pool-wide finding names no address and no user: it belongs to the attacks it overlaps in time.
    let pool_wide = f.user.is_none() && f.ip.is_none() && f.user_sub.is_none();
    let key_match = pool_wide
        || f.ip.as_deref().is_some_and(|ip| a.ips.iter().any(|x| x == ip))
        || f.user.as_deref().is_some_and(|u| a.users.iter().any(|x| x == u))
        || f.user_sub.as_deref().is_some_and(|u| a.users.iter().any(|x| x == u));
    let overlaps =
        f.first_seen <= a.end.saturating_add(MATCH_SLACK) && f.last_seen >= a.start.saturating_sub(MATCH_SLACK);
    key_match && overlaps
}

/// Scores closed findings against the truth.
pub fn score(truth: &[Attack], findings: &[Finding]) -> Score {
    let mut s = Score::default();
    for a in truth {
        let detected: BTreeSet<&str> = findings.iter().filter(|f| belongs(f, a)).map(|f| f.detector).collect();
        let missing: Vec<String> = a.detectors.iter().filter(|d| !detected.contains(d.as_str())).cloned().collect();
        if missing.is_empty() {
            s.found.push((a.id.clone(), detected.iter().map(|d| d.to_string()).collect()));
        } else {
            s.missed.push((a.id.clone(), missing));
        }
    }
    for f in findings {
        if !truth.iter().any(|a| belongs(f, a)) {
            s.false_alarms.push(format!("{} {} {}", f.detected_at, f.detector, f.summary));
        }
    }
    s
}

/// Whether `t` falls in any attack's span (with slack): for tests that look at events, not findings.
pub fn during_attack(truth: &[Attack], t: Timestamp) -> bool {
    truth.iter().any(|a| t >= a.start.saturating_sub(MATCH_SLACK) && t <= a.end.saturating_add(MATCH_SLACK))
}
