//! Scores findings against a simulation's ground truth: which planted attacks were found, which were
//! missed, and which findings match no attack (false alarms), naming the benign look-alike that raised
//! one when there is one.
//!
//! A finding keyed on an address or a user belongs to a planted item when its key is one of the item's
//! addresses or users and its time span overlaps the item's, give or take [`MATCH_SLACK`]. A finding
//! keyed on the pool (no user, no address, a pool id) matches every event, so time and detector decide:
//! it belongs to an attack whose kind lists the detector (must or may fire) and to a pool-wide look-alike,
//! when it overlaps them give or take [`POOL_MATCH_SLACK`]. An attack is found when every detector it was
//! built to trip produced a finding that belongs to it; a finding that belongs to a look-alike and to no
//! attack is a false alarm raised by that look-alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::correlate::{CaseRecord, CaseStatus, Merges};
use crate::finding::{Finding, Status};
use crate::simulate::Attack;
use crate::sink::{Flushed, Sink, SinkError};
use crate::time::{Span, Timestamp};

/// How far outside an item's planted span a finding keyed on one of its addresses or users may reach
/// and still belong to it: incidents include the window before the crossing and close after a quiet
/// cooldown.
pub const MATCH_SLACK: Span = Span::mins(90);
/// The same for a finding keyed on the pool. Tighter, because the key ties a pool finding to nothing:
/// with 90 minutes, a finding from one pool-wide item could reach the next (the simulator keeps them
/// 2 h apart) and be credited to the wrong one. Half an hour still covers a pool detector's evidence
/// starting a little before the item (its window's first failures) and its last update a little after.
pub const POOL_MATCH_SLACK: Span = Span::mins(30);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    /// Attack id → the detectors that found it.
    pub found: Vec<(String, Vec<String>)>,
    /// Attack id → the detectors it should have tripped but did not.
    pub missed: Vec<(String, Vec<String>)>,
    /// Findings that belong to no planted attack (their summaries; those a look-alike raised say which).
    pub false_alarms: Vec<String>,
    /// Every planted look-alike → the findings it raised (their summaries; empty when it stayed quiet).
    pub lookalikes: Vec<(String, Vec<String>)>,
}

impl Score {
    pub fn perfect(&self) -> bool {
        self.missed.is_empty() && self.false_alarms.is_empty()
    }

    /// Planted attacks (look-alikes are not attacks).
    pub fn attacks(&self) -> usize {
        self.found.len() + self.missed.len()
    }
}

/// Keyed on the user pool itself: no user, no address.
fn pool_keyed(f: &Finding) -> bool {
    // CloudTrail often names no pool: such a finding is keyed by the app client, and its pool id is null.
    f.user.is_none() && f.user_sub.is_none() && f.ip.is_none()
}

fn overlaps(f: &Finding, a: &Attack, slack: Span) -> bool {
    f.first_seen <= a.end.saturating_add(slack) && f.last_seen >= a.start.saturating_sub(slack)
}

fn belongs(f: &Finding, a: &Attack) -> bool {
    if pool_keyed(f) {
        let listed = if a.lookalike { a.pool_wide } else { a.detectors.iter().chain(&a.also).any(|d| d == f.detector) };
        return listed && overlaps(f, a, POOL_MATCH_SLACK);
    }
    let key_match = f.ip.as_deref().is_some_and(|ip| a.ips.iter().any(|x| x == ip))
        || f.user.as_deref().is_some_and(|u| a.users.iter().any(|x| x == u))
        || f.user_sub.as_deref().is_some_and(|u| a.users.iter().any(|x| x == u));
    key_match && overlaps(f, a, MATCH_SLACK)
}

/// Scores closed findings against the truth.
pub fn score(truth: &[Attack], findings: &[Finding]) -> Score {
    let mut s = Score::default();
    for a in truth.iter().filter(|a| !a.lookalike) {
        let detected: BTreeSet<&str> = findings.iter().filter(|f| belongs(f, a)).map(|f| f.detector).collect();
        let missing: Vec<String> = a.detectors.iter().filter(|d| !detected.contains(d.as_str())).cloned().collect();
        if missing.is_empty() {
            s.found.push((a.id.clone(), detected.iter().map(|d| d.to_string()).collect()));
        } else {
            s.missed.push((a.id.clone(), missing));
        }
    }
    s.lookalikes = truth.iter().filter(|a| a.lookalike).map(|a| (a.id.clone(), Vec::new())).collect();
    for f in findings {
        if truth.iter().any(|a| !a.lookalike && belongs(f, a)) {
            continue;
        }
        let text = format!("{} {} {}", f.detected_at, f.detector, f.summary);
        let raised_by = truth.iter().filter(|a| a.lookalike).position(|a| belongs(f, a));
        match raised_by {
            Some(i) => {
                s.false_alarms.push(format!("look-alike {}: {text}", s.lookalikes[i].0));
                s.lookalikes[i].1.push(text);
            }
            None => s.false_alarms.push(text),
        }
    }
    s
}

/// What a scored run keeps: its closed findings and every case update.
#[derive(Debug, Default)]
pub struct Kept {
    pub findings: Vec<Finding>,
    pub cases: Vec<CaseRecord>,
}

impl Sink for Kept {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        if f.status == Status::Closed {
            self.findings.push(f.clone());
        }
        Ok(())
    }

    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        self.cases.push(c.clone());
        Ok(())
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        Ok(Flushed::Nothing)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How cases served the planted attacks: pages per attack, and cases that joined what should be apart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseScore {
    /// Attack id → cases opened for it (its pages: a case opens with a page) and escalation updates.
    pub per_attack: Vec<(String, u64, u64)>,
    /// Cases (after merges) holding findings of two or more planted attacks: case id → attack ids.
    pub joined_attacks: Vec<(String, Vec<String>)>,
    /// Cases holding findings of an attack and findings of no attack: case id → the attack.
    pub joined_benign: Vec<(String, String)>,
    /// Cases opened by a finding that belongs to no attack (false-alarm pages).
    pub stray_pages: u64,
}

impl CaseScore {
    /// Case openings per planted attack, on average.
    pub fn pages_per_attack(&self) -> f64 {
        if self.per_attack.is_empty() {
            return 0.0;
        }
        self.per_attack.iter().map(|(_, p, _)| *p as f64).sum::<f64>() / self.per_attack.len() as f64
    }

    pub fn escalations_per_attack(&self) -> f64 {
        if self.per_attack.is_empty() {
            return 0.0;
        }
        self.per_attack.iter().map(|(_, _, e)| *e as f64).sum::<f64>() / self.per_attack.len() as f64
    }

    /// Every case holds one attack at most, and no benign findings beside one.
    pub fn clean(&self) -> bool {
        self.joined_attacks.is_empty() && self.joined_benign.is_empty()
    }
}

/// Scores the cases of a run against the truth: `findings` are the closed findings (with their
/// `case_id`), `cases` every case update in order.
pub fn score_cases(truth: &[Attack], findings: &[Finding], cases: &[CaseRecord]) -> CaseScore {
    let attacks: Vec<&Attack> = truth.iter().filter(|a| !a.lookalike).collect();
    let of = |f: &Finding| -> Vec<usize> { (0..attacks.len()).filter(|&i| belongs(f, attacks[i])).collect() };
    let by_incident: HashMap<&str, Vec<usize>> = findings.iter().map(|f| (f.incident_id.as_str(), of(f))).collect();
    let mut merges = Merges::default();
    let mut opened = vec![0u64; attacks.len()];
    let mut escalated = vec![0u64; attacks.len()];
    let mut s = CaseScore::default();
    for c in cases {
        match c.status {
            CaseStatus::Open => match c.incidents.first().and_then(|id| by_incident.get(id.as_str())) {
                Some(owners) if !owners.is_empty() => owners.iter().for_each(|&i| opened[i] += 1),
                _ => s.stray_pages += 1,
            },
            CaseStatus::Escalated => {
                let owners: BTreeSet<usize> =
                    c.incidents.iter().filter_map(|id| by_incident.get(id.as_str())).flatten().copied().collect();
                owners.into_iter().for_each(|i| escalated[i] += 1);
            }
            CaseStatus::Merged => merges.note(c),
            CaseStatus::Closed => {}
        }
    }
    // A case's attacks: those its account- and address-keyed findings belong to; a pool-wide finding
    // matches every attack of its kind near its time, so it names the case's attacks only when nothing
    // keyed does.
    #[derive(Default)]
    struct Members {
        keyed: BTreeSet<usize>,
        pooled: BTreeSet<usize>,
        benign: bool,
    }
    let mut members: BTreeMap<String, Members> = BTreeMap::new();
    for f in findings {
        let Some(id) = &f.case_id else { continue };
        let e = members.entry(merges.final_id(id)).or_default();
        let owners = of(f);
        if owners.is_empty() {
            e.benign = true;
        }
        if pool_keyed(f) {
            e.pooled.extend(owners);
        } else {
            e.keyed.extend(owners);
        }
    }
    let members: BTreeMap<String, (BTreeSet<usize>, bool)> = members
        .into_iter()
        .map(|(id, m)| (id, (if m.keyed.is_empty() { m.pooled } else { m.keyed }, m.benign)))
        .collect();
    for (id, (owners, benign)) in &members {
        if owners.len() > 1 {
            s.joined_attacks.push((id.clone(), owners.iter().map(|&i| attacks[i].id.clone()).collect()));
        }
        if *benign {
            if let Some(&i) = owners.iter().next() {
                s.joined_benign.push((id.clone(), attacks[i].id.clone()));
            }
        }
    }
    s.per_attack = attacks.iter().enumerate().map(|(i, a)| (a.id.clone(), opened[i], escalated[i])).collect();
    s
}

/// Whether `t` falls in any item's span (with slack): for tests that look at events, not findings.
pub fn during_attack(truth: &[Attack], t: Timestamp) -> bool {
    truth.iter().any(|a| t >= a.start.saturating_sub(MATCH_SLACK) && t <= a.end.saturating_add(MATCH_SLACK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Severity, Status};

    const HOUR: i64 = 3_600_000;

    fn item(id: &str, detectors: &[&str], lookalike: bool, pool_wide: bool, hours: (i64, i64)) -> Attack {
        Attack {
            id: id.into(),
            kind: id.split('-').next().unwrap_or(id).into(),
            detectors: detectors.iter().map(|d| d.to_string()).collect(),
            also: if lookalike { vec![] } else { vec!["pool_failure_anomaly".into()] },
            lookalike,
            pool_wide,
            ips: vec!["5.1.2.3".into()],
            users: vec!["alice.smith1".into()],
            takeovers: vec![],
            events: 10,
            start: Timestamp(hours.0 * HOUR),
            end: Timestamp(hours.1 * HOUR),
        }
    }

    fn finding(detector: &'static str, user: Option<&str>, ip: Option<&str>, hours: (f64, f64)) -> Finding {
        let at = |h: f64| Timestamp((h * HOUR as f64) as i64);
        Finding {
            detector,
            severity: Severity::High,
            user: user.map(str::to_string),
            user_sub: None,
            ip: ip.map(str::to_string),
            user_pool_id: Some("us-east-1_Demo0001".into()),
            region: None,
            account: None,
            first_seen: at(hours.0),
            last_seen: at(hours.1),
            detected_at: at(hours.0),
            count: 1,
            summary: format!("{detector} finding"),
            evidence: serde_json::Value::Null,
            incident_id: "x".into(),
            case_id: None,
            rule: detector.into(),
            status: Status::Closed,
        }
    }

    #[test]
    fn a_pool_finding_belongs_to_the_attack_that_lists_its_detector_at_that_time() {
        let truth = [
            item("proxy_stuffing-1", &["distributed_credential_stuffing"], false, true, (7, 9)),
            item("signup_flood-1", &["signup_flood"], false, true, (11, 12)),
            item("client_release-1", &[], true, true, (14, 15)),
        ];
        let findings = [
            finding("distributed_credential_stuffing", None, None, (7.2, 8.9)),
            finding("pool_failure_anomaly", None, None, (7.5, 8.0)),
            finding("signup_flood", None, None, (11.1, 11.6)),
        ];
        let s = score(&truth, &findings);
        assert_eq!(s.found.len(), 2, "{s:?}");
        assert!(s.perfect(), "{s:?}");
        assert_eq!(s.lookalikes, vec![("client_release-1".to_string(), vec![])]);

        // The right detector at the wrong time, or the wrong detector at the right time, is a false alarm.
        let late = [finding("signup_flood", None, None, (13.0, 13.2))];
        let s = score(&truth, &late);
        assert_eq!((s.missed.len(), s.false_alarms.len()), (2, 1), "{s:?}");
        let wrong = [finding("signup_flood", None, None, (7.5, 8.0))];
        assert_eq!(score(&truth, &wrong).false_alarms.len(), 1);
        // Within the pool slack it still belongs; the per-key slack would be too generous.
        let near = [finding("signup_flood", None, None, (12.4, 12.45))];
        assert!(score(&truth, &near).false_alarms.is_empty());
        let far = [finding("signup_flood", None, None, (13.2, 13.3))];
        assert_eq!(score(&truth, &far).false_alarms.len(), 1);
    }

    #[test]
    fn a_finding_on_a_lookalike_is_a_false_alarm_that_names_it() {
        let truth = [
            item("burst-1", &["failed_login_burst"], false, false, (2, 3)),
            item("client_release-1", &[], true, true, (14, 15)),
        ];
        let mut on_nat = finding("failed_login_burst", None, Some("5.1.2.3"), (14.2, 14.4));
        let s = score(&truth, &[on_nat.clone()]);
        assert_eq!(s.false_alarms.len(), 1, "{s:?}");
        assert!(s.false_alarms[0].starts_with("look-alike client_release-1: "), "{s:?}");
        assert_eq!(s.lookalikes[0].1.len(), 1);
        assert_eq!(s.missed.len(), 1);
        let pool = finding("pool_failure_anomaly", None, None, (14.1, 14.3));
        let s = score(&truth, &[pool]);
        assert!(s.false_alarms[0].contains("client_release-1"), "{s:?}");
        // The same address during the attack belongs to the attack.
        on_nat.first_seen = Timestamp(2 * HOUR);
        on_nat.last_seen = Timestamp(2 * HOUR + 60_000);
        let s = score(&truth, &[on_nat]);
        assert!(s.perfect() && s.attacks() == 1, "{s:?}");
    }
}
