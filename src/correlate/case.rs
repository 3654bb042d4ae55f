//! A case: one attack as the findings it caused, with what an on-call engineer reads first (severity, the
//! accounts taken over, a one-line story) and the record written for it ([`CaseRecord`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::figures::thousands;
use crate::finding::{Finding, Severity};
use crate::time::Timestamp;

/// Names (accounts, addresses, incident ids, merged cases) listed in a case record; the rest are counted.
pub const MAX_LISTED: usize = 50;
/// Accounts taken over remembered by name per case (the count is exact).
pub const MAX_TAKEN_OVER: usize = 1_000;
/// Incidents told apart per case (by a hash of their id): memory stays bounded in a case that collects
/// findings for days.
pub const MAX_INCIDENTS: usize = 10_000;
/// Distinct incident keys remembered per case: far above any `severity.spread_keys` worth setting.
pub const MAX_KEYS: usize = 1_000;

/// What one case record says about where the case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Its first finding arrived.
    Open,
    /// Its severity rose, or it took over an account (or more).
    Escalated,
    /// Quiet for the spec's gap with every incident in it closed, or the input ended.
    Closed,
    /// A finding linked it to an older case, which now holds everything it had (`merged_into`).
    Merged,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Escalated => "escalated",
            CaseStatus::Closed => "closed",
            CaseStatus::Merged => "merged",
        }
    }
}

/// An address in a case, with what makes it trustworthy as a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseAddress {
    pub ip: String,
    /// Distinct users that signed in successfully from it within the shared-address window, as of when
    /// the case last saw it.
    pub successful_users: u32,
    /// Shared by many users (a NAT): it does not link cases.
    pub shared: bool,
}

/// One case update as written (`--cases FILE`, one JSON object per line) and notified. Attacker-controlled
/// strings (account names) are in it as logged: escape or sanitise them where they are shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRecord {
    /// Always `"case"`: tells case lines from finding lines when both are collected in one place.
    pub kind: &'static str,
    pub case_id: String,
    pub status: CaseStatus,
    pub severity: Severity,
    /// One line: what happened, in the words an on-call engineer reads first.
    pub story: String,
    /// Why this update: what opened the case, or what made it escalate.
    pub reason: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Event time of the finding that opened the case.
    pub opened_at: Timestamp,
    /// Event time of this update.
    pub updated_at: Timestamp,
    /// Escalation updates so far (this one included): with the case id, names each notification.
    pub escalations: u32,
    pub user_pool_ids: Vec<String>,
    pub users: Vec<String>,
    pub users_count: u64,
    pub addresses: Vec<CaseAddress>,
    pub addresses_count: u64,
    /// Accounts the case took over (an account takeover, a campaign's `takeovers`, guessing that
    /// succeeded), by name; `taken_over_count` is exact.
    pub taken_over: Vec<String>,
    pub taken_over_count: u64,
    /// Distinct incidents by rule.
    pub findings_by_rule: BTreeMap<String, u64>,
    /// The incidents' ids (the findings' `incident_id`), oldest first.
    pub incidents: Vec<String>,
    pub incidents_not_listed: u64,
    /// Cases merged into this one.
    pub merged: Vec<String>,
    /// For status `merged`: the case that holds this one's findings now.
    pub merged_into: Option<String>,
}

/// Where merged cases went, from the `merged` records: a finding's `case_id` from before its case merged
/// resolves to the case that holds it now. What every reader of case records (summary, score, report,
/// demo) shares.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(transparent)]
pub struct Merges(std::collections::HashMap<String, String>);

impl Merges {
    /// Takes one case update; only `merged` ones say anything.
    pub fn note(&mut self, c: &CaseRecord) {
        if let (CaseStatus::Merged, Some(into)) = (c.status, &c.merged_into) {
            self.0.insert(c.case_id.clone(), into.clone());
        }
    }

    /// The case `id` ended up in. Merges only go to older cases, so the chain ends; the bound guards
    /// against a hand-made map with a loop.
    pub fn final_id(&self, id: &str) -> String {
        let mut id = id.to_string();
        for _ in 0..=self.0.len() {
            match self.0.get(&id) {
                Some(next) => id = next.clone(),
                None => break,
            }
        }
        id
    }
}

impl CaseRecord {
    pub fn to_json_line(&self) -> String {
        // Serialising plain data into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
impl CaseRecord {
    /// A case record for unit tests elsewhere: `id` at `status` and `severity`, between `first` and `last`,
    /// every list empty; a test sets the fields it is about.
    pub(crate) fn example(id: &str, status: CaseStatus, severity: Severity, first: Timestamp, last: Timestamp) -> Self {
        CaseRecord {
            kind: "case",
            case_id: id.into(),
            status,
            severity,
            story: "stuffing".into(),
            reason: String::new(),
            first_seen: first,
            last_seen: last,
            opened_at: first,
            updated_at: last,
            escalations: 0,
            user_pool_ids: vec![],
            users: vec![],
            users_count: 0,
            addresses: vec![],
            addresses_count: 0,
            taken_over: vec![],
            taken_over_count: 0,
            findings_by_rule: Default::default(),
            incidents: vec![],
            incidents_not_listed: 0,
            merged: vec![],
            merged_into: None,
        }
    }
}

/// How broad a finding is, for choosing the one a case's story leads with.
fn breadth(f: &Finding) -> u8 {
    match f.detector {
        // What happened to an account because of an attack: the story names the attack first.
        "account_takeover" | "impossible_travel" | "cognito_risk" => 0,
        _ if f.user.is_none() && f.user_sub.is_none() && f.ip.is_none() => 3,
        _ if f.user.is_none() && f.user_sub.is_none() => 2,
        _ => 1,
    }
}

/// The finding a case's story leads with.
#[derive(Debug, Clone)]
struct Lead {
    rank: (u8, Severity),
    incident_id: String,
    phrase: String,
}

/// A case as the correlator keeps it while it is open.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    /// Opening order: the older of two merging cases keeps its id.
    pub seq: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub opened_at: Timestamp,
    /// The highest severity of its findings (each incident at its latest).
    pub finding_severity: Severity,
    /// The severity last notified (open or escalated).
    pub notified: Severity,
    pub escalations: u32,
    /// Takeovers counted when the last notification went out.
    pub takeovers_notified: u64,
    /// A takeover-only escalation is waiting for `renotify_after` (event time it is due).
    pub pending_due: Option<Timestamp>,
    /// Every incident closed: the event time the case closes unless a finding joins it.
    pub close_due: Option<Timestamp>,
    /// Opened by a held rule's finding and not announced yet: when its hold ends.
    pub held_until: Option<Timestamp>,
    pub last_notified_at: Timestamp,
    /// Distinct incidents in the case, and by rule.
    pub incident_count: u64,
    pub by_rule: BTreeMap<String, u64>,
    /// The incidents seen, by id hash, at most [`MAX_INCIDENTS`] (past it a repeated update of an
    /// incident not remembered counts again: only in a case of thousands of incidents).
    seen: HashSet<u64>,
    /// The first [`MAX_LISTED`] incident ids, for the record.
    pub incident_order: Vec<String>,
    /// Incidents still open (bounded by the rules' own open incidents).
    pub open_incidents: BTreeSet<String>,
    pub pools: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub users_count: u64,
    pub addresses: BTreeMap<String, (u32, bool)>,
    pub addresses_count: u64,
    pub taken_over: BTreeSet<String>,
    /// The same accounts in the order they were taken over.
    pub taken_over_order: Vec<String>,
    pub taken_over_count: u64,
    /// Takeover-only escalations sent so far: each waits twice as long as the one before.
    pub takeover_updates: u32,
    /// The keys (accounts, addresses, pools) its incidents were raised on, at most [`MAX_KEYS`].
    pub keys: BTreeSet<String>,
    /// Accounts with a travel finding, and with a risk finding (at most [`MAX_TAKEN_OVER`] each).
    pub travelled: BTreeSet<String>,
    pub flagged: BTreeSet<String>,
    /// Entity hashes this case is indexed by (bounded by the spec).
    pub entities: Vec<u64>,
    pub entities_over: u64,
    pub merged: Vec<String>,
    lead: Option<Lead>,
    /// Why the case was opened (kept for its records).
    pub opened_by: String,
}

impl Case {
    pub fn open(id: String, seq: u64, f: &Finding) -> Case {
        Case {
            id,
            seq,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            opened_at: f.detected_at,
            finding_severity: f.severity,
            notified: f.severity,
            escalations: 0,
            takeovers_notified: 0,
            pending_due: None,
            close_due: None,
            held_until: None,
            last_notified_at: f.detected_at,
            incident_count: 0,
            by_rule: BTreeMap::new(),
            seen: HashSet::new(),
            incident_order: Vec::new(),
            open_incidents: BTreeSet::new(),
            pools: BTreeSet::new(),
            users: BTreeSet::new(),
            users_count: 0,
            addresses: BTreeMap::new(),
            addresses_count: 0,
            taken_over: BTreeSet::new(),
            taken_over_order: Vec::new(),
            taken_over_count: 0,
            takeover_updates: 0,
            keys: BTreeSet::new(),
            travelled: BTreeSet::new(),
            flagged: BTreeSet::new(),
            entities: Vec::new(),
            entities_over: 0,
            merged: Vec::new(),
            lead: None,
            opened_by: format!("opened by {} on {}", f.rule, key_label(f)),
        }
    }

    /// Not announced yet (see [`super::spec::NotifySpec::hold`]).
    pub fn held(&self) -> bool {
        self.held_until.is_some()
    }

    /// Folds in one finding update (its entities are indexed by the caller).
    pub fn add(&mut self, f: &Finding) {
        self.first_seen = self.first_seen.min(f.first_seen);
        self.last_seen = self.last_seen.max(f.last_seen);
        let h = crate::detect::window::key_hash(&f.incident_id);
        if !self.seen.contains(&h) {
            if self.seen.len() < MAX_INCIDENTS {
                self.seen.insert(h);
            }
            self.incident_count += 1;
            *self.by_rule.entry(f.rule.clone()).or_default() += 1;
            if self.incident_order.len() < MAX_LISTED {
                self.incident_order.push(f.incident_id.clone());
            }
        }
        if f.status == crate::finding::Status::Closed {
            self.open_incidents.remove(&f.incident_id);
        } else {
            self.open_incidents.insert(f.incident_id.clone());
        }
        // An incident's severity only rises, so the case's highest is the highest update seen.
        self.finding_severity = self.finding_severity.max(f.severity);
        if self.keys.len() < MAX_KEYS {
            self.keys.insert(key_label(f));
        }
        if let Some(p) = &f.user_pool_id {
            if self.pools.len() < MAX_LISTED {
                self.pools.insert(p.clone());
            }
        }
        if let Some(u) = &f.user {
            let set = match f.detector {
                "impossible_travel" => Some(&mut self.travelled),
                "cognito_risk" => Some(&mut self.flagged),
                _ => None,
            };
            if let Some(set) = set.filter(|s| s.len() < MAX_TAKEN_OVER) {
                set.insert(u.clone());
            }
            if f.detector == "account_takeover"
                || f.evidence.get("succeeded_at").is_some()
                || (f.detector == "distributed_brute_force" && f.status != crate::finding::Status::Open && succeeded(f))
            {
                self.take_over(u);
            }
        }
        for name in super::taken_over(f) {
            self.take_over(name);
        }
        let rank = (breadth(f), f.severity);
        let replace = match &self.lead {
            None => true,
            Some(l) => l.incident_id == f.incident_id || rank > l.rank,
        };
        if replace {
            self.lead = Some(Lead { rank, incident_id: f.incident_id.clone(), phrase: lead_phrase(f) });
        }
    }

    fn take_over(&mut self, name: &str) {
        if self.taken_over.contains(name) {
            return;
        }
        self.taken_over_count += 1;
        if self.taken_over.len() < MAX_TAKEN_OVER {
            self.taken_over.insert(name.to_string());
            self.taken_over_order.push(name.to_string());
        }
    }

    /// Takes in everything `other` had (it merges into this one).
    pub fn absorb(&mut self, other: Case) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        for id in other.incident_order {
            if self.incident_order.len() < MAX_LISTED && !self.incident_order.contains(&id) {
                self.incident_order.push(id);
            }
        }
        // Two cases never hold the same incident (an incident's updates go to the case it is in).
        self.incident_count += other.incident_count;
        for (rule, n) in other.by_rule {
            *self.by_rule.entry(rule).or_default() += n;
        }
        for h in other.seen {
            if self.seen.len() < MAX_INCIDENTS {
                self.seen.insert(h);
            }
        }
        self.open_incidents.extend(other.open_incidents);
        self.finding_severity = self.finding_severity.max(other.finding_severity);
        self.pools.extend(other.pools.into_iter().take(MAX_LISTED.saturating_sub(self.pools.len())));
        for u in other.users {
            if self.users.len() < MAX_LISTED {
                self.users.insert(u);
            }
        }
        self.users_count += other.users_count;
        for (ip, a) in other.addresses {
            if self.addresses.len() < MAX_LISTED {
                self.addresses.insert(ip, a);
            }
        }
        self.addresses_count += other.addresses_count;
        for name in &other.taken_over_order {
            self.take_over(name);
        }
        self.taken_over_count = self.taken_over_count.max(other.taken_over_count);
        for k in other.keys {
            if self.keys.len() < MAX_KEYS {
                self.keys.insert(k);
            }
        }
        self.travelled.extend(other.travelled.into_iter().take(MAX_TAKEN_OVER.saturating_sub(self.travelled.len())));
        self.flagged.extend(other.flagged.into_iter().take(MAX_TAKEN_OVER.saturating_sub(self.flagged.len())));
        self.entities_over += other.entities_over;
        for id in std::iter::once(other.id).chain(other.merged) {
            if self.merged.len() < MAX_LISTED {
                self.merged.push(id);
            }
        }
        if let Some(l) = other.lead {
            if self.lead.as_ref().is_none_or(|m| l.rank > m.rank) {
                self.lead = Some(l);
            }
        }
    }

    /// The case's severity: its highest finding's, raised a level when it took over an account or spread
    /// to incidents on more than `spread_keys` keys (accounts, addresses, pools).
    pub fn severity(&self, spread_keys: u64) -> Severity {
        let spread = self.keys.len() as u64 > spread_keys;
        if self.taken_over_count > 0 || spread {
            self.finding_severity.raised()
        } else {
            self.finding_severity
        }
    }

    /// "credential stuffing from 2,140 addresses on 3,000 accounts, 3 accounts taken over, 1 of them then
    /// signed in from places too far apart".
    pub fn story(&self) -> String {
        let lead = self.lead.as_ref().map(|l| l.phrase.clone()).unwrap_or_default();
        let mut parts = vec![lead];
        let lead_is_takeover = self.lead.as_ref().is_some_and(|l| l.rank.0 == 0);
        if self.taken_over_count > 0 && !(lead_is_takeover && self.taken_over_count == 1) {
            parts.push(format!("{} taken over", plural(self.taken_over_count, "account")));
        }
        let travelled_after = self.travelled.iter().filter(|u| self.taken_over.contains(*u)).count() as u64;
        if travelled_after > 0 && !(lead_is_takeover && self.taken_over_count == 1 && self.travelled.len() == 1) {
            parts.push(format!("{travelled_after} of them then signed in from places too far apart"));
        } else if travelled_after > 0 {
            parts.push("then signed in from places too far apart".into());
        }
        let flagged_after = self.flagged.iter().filter(|u| self.taken_over.contains(*u)).count() as u64;
        if flagged_after > 0 {
            parts.push(format!("{flagged_after} flagged by Cognito's risk detection"));
        }
        let mut story = parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ");
        if self.incident_count > 1 {
            story.push_str(&format!(
                " ({} findings, {})",
                thousands(self.incident_count),
                plural(self.by_rule.len() as u64, "rule")
            ));
        }
        story
    }

    /// The record of this case now.
    pub fn record(
        &self,
        status: CaseStatus,
        reason: String,
        now: Timestamp,
        spread_keys: u64,
        merged_into: Option<String>,
    ) -> CaseRecord {
        CaseRecord {
            kind: "case",
            case_id: self.id.clone(),
            status,
            severity: self.severity(spread_keys),
            story: self.story(),
            reason,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            opened_at: self.opened_at,
            updated_at: now,
            escalations: self.escalations,
            user_pool_ids: self.pools.iter().cloned().collect(),
            users: self.users.iter().cloned().collect(),
            users_count: self.users_count,
            addresses: self
                .addresses
                .iter()
                .map(|(ip, (n, shared))| CaseAddress { ip: ip.clone(), successful_users: *n, shared: *shared })
                .collect(),
            addresses_count: self.addresses_count,
            taken_over: self.taken_over_order.iter().take(MAX_LISTED).cloned().collect(),
            taken_over_count: self.taken_over_count,
            findings_by_rule: self.by_rule.clone(),
            incidents: self.incident_order.iter().take(MAX_LISTED).cloned().collect(),
            incidents_not_listed: self.incident_count.saturating_sub(self.incident_order.len() as u64),
            merged: self.merged.iter().take(MAX_LISTED).cloned().collect(),
            merged_into,
        }
    }
}

/// Whether a user-keyed guessing finding saw the guessing succeed.
fn succeeded(f: &Finding) -> bool {
    f.evidence.get("successes").and_then(Value::as_u64).is_some_and(|n| n > 0)
}

/// What a finding is about, in a few words: the key it was raised on.
pub fn key_label(f: &Finding) -> String {
    match (&f.user, &f.ip) {
        (Some(u), _) => u.clone(),
        (None, Some(ip)) => ip.clone(),
        (None, None) => f.user_pool_id.clone().map(|p| format!("pool {p}")).unwrap_or_else(|| "the pool".into()),
    }
}

fn plural(n: u64, word: &str) -> String {
    format!("{} {word}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// The story's opening words for a case led by `f`.
fn lead_phrase(f: &Finding) -> String {
    let n = |k: &str| f.evidence.get(k).and_then(Value::as_u64).unwrap_or(0);
    let user = f.user.as_deref().unwrap_or("an account");
    let ip = f.ip.as_deref().unwrap_or("an address");
    let pool = f.user_pool_id.as_deref().unwrap_or("the pool");
    let ip_keyed = f.user.is_none() && f.user_sub.is_none();
    match f.detector {
        "distributed_credential_stuffing" => format!(
            "credential stuffing on {pool} from {} on {}",
            plural(n("distinct_ips"), "address"),
            plural(n("accounts_tried"), "account")
        )
        .replace("addresss", "addresses"),
        "pool_failure_anomaly" => format!("failed sign-ins above normal on {pool}"),
        "signup_flood" => format!(
            "sign-up flood on {pool}: {} never confirmed, from {}",
            thousands(n("successes")),
            plural(n("distinct_ips"), "address")
        )
        .replace("addresss", "addresses"),
        "credential_stuffing" => format!("credential stuffing from {ip} on {}", plural(n("distinct_users"), "account")),
        "password_spray" => format!("password spray from {ip} over {}", plural(n("distinct_users"), "account")),
        "failed_login_burst" if ip_keyed => {
            format!(
                "{} failed sign-ins from {ip} on {}",
                thousands(n("failures")),
                plural(n("distinct_users"), "account")
            )
        }
        "failed_login_burst" => format!("brute force on {user} from {ip}"),
        "distributed_brute_force" => format!("brute force on {user} from {}", plural(n("distinct_ips"), "address"))
            .replace("addresss", "addresses"),
        "slow_brute_force" => format!("slow password guessing on {user} ({} tries)", thousands(n("failures"))),
        "mfa_failure_after_password" if ip_keyed => {
            format!("known passwords from {ip} stopped by MFA on {}", plural(n("distinct_users"), "account"))
        }
        "mfa_failure_after_password" => format!("{user}'s password in use, MFA failing"),
        "account_takeover" => format!("{user} taken over from {ip}"),
        "impossible_travel" => {
            let place = |end: &str| {
                f.evidence.get(end).and_then(|e| e.get("location")).and_then(Value::as_str).unwrap_or("?").to_string()
            };
            format!("{user} signed in from {} then {}, too far apart", place("from"), place("to"))
        }
        "cognito_risk" => format!("Cognito flagged sign-ins of {user} as risky"),
        _ => f.summary.clone(),
    }
}
