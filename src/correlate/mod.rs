//! Correlation: the stage after the detectors. It groups findings into **cases**, one per attack, so an
//! attack pages once and grows as it does (issue 14; README "Cases").
//!
//! Where it runs: inside the [`crate::detect::Engine`], right after the rules, on every event the rules
//! take and every finding they report, in the same order in replay and in the monitor. That is what makes
//! cases deterministic: the same events give the same cases, the same case ids and the same updates
//! whatever the thread count, and a monitor restart rebuilds them as it rebuilds incidents.
//!
//! How findings link: each finding names entities ([`Entity`]: its account, its address or IPv6 prefix,
//! a campaign's addresses and accounts, the accounts a campaign took over, a pool-wide count). A finding
//! joins the open case that holds one of its linking entities, if it starts no later than the spec's `gap`
//! after that case's last activity; a finding that links two open cases merges the newer into the older
//! (transitive). An address shared by many successful users ([`shared`]) is listed but never links. A case
//! closes once every incident in it has closed and it has been quiet for the gap.
//!
//! What comes out: every finding gets its `case_id`; case updates ([`CaseRecord`]: open, escalated,
//! closed, merged) queue up for the caller ([`Correlator::drain`]), for `--cases FILE`, the summary and
//! SNS. A case escalates when its severity rises and when it takes over accounts (further takeovers within
//! `renotify_after` are gathered into one update).

pub mod case;
pub mod shared;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use case::Case;
pub use case::{CaseRecord, CaseStatus, Merges};
use shared::SharedAddresses;
pub use spec::CorrelationSpec;

use crate::detect::incident::incident_id;
use crate::detect::window::{hash_of, key_hash, PreHashed};
use crate::detect::IpKey;
use crate::event::SignInEvent;
use crate::figures::thousands;
use crate::finding::Finding;
use crate::time::{Span, Timestamp};

/// Takeover-only updates wait at most this many doublings of `renotify_after` (15 min → 1 h): later
/// takeovers of a long campaign still page within the hour.
const MAX_BACKOFF_DOUBLINGS: u32 = 2;

/// Figures about correlation, for the summary and the monitor's metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CaseStats {
    pub opened: u64,
    /// Cases merged into an older one (each counted once, as it is absorbed).
    pub merged: u64,
    /// Cases closed before their time because `limits.max_open_cases` was reached.
    pub closed_early: u64,
    /// Entities not linked because a case held `limits.max_entities_per_case`.
    pub entities_not_linked: u64,
    /// Sign-ins at addresses the shared-address tracker had no room for.
    pub addresses_untracked: u64,
    pub open: u64,
}

/// One thing a finding is about, as the case index knows it.
struct Entity {
    hash: u64,
    /// False for an address shared by many users: listed, never linked by.
    links: bool,
    what: What,
}

enum What {
    /// An account (a name or a sub; both are indexed when known). `count` is false for the second name of
    /// the same account.
    User {
        name: String,
        count: bool,
    },
    Address {
        ip: String,
        successful_users: u32,
        shared: bool,
    },
    /// An address-keyed finding's own key: links findings on that key even when the address is shared.
    AddressKey,
    PoolCount,
}

/// The correlation stage.
pub struct Correlator {
    spec: CorrelationSpec,
    ipv6_prefix: u8,
    cases: BTreeMap<u64, Case>,
    next_seq: u64,
    by_entity: HashMap<u64, u64, PreHashed>,
    by_incident: HashMap<String, u64>,
    /// Entities each case is indexed by (bounded by the spec).
    members: HashMap<u64, std::collections::HashSet<u64, PreHashed>>,
    /// Cases with every incident closed, by the event time they close (their last activity + gap).
    closing: BTreeSet<(Timestamp, u64)>,
    /// Cases with a takeover update waiting for `renotify_after`, by when it is due.
    renotify: BTreeSet<(Timestamp, u64)>,
    /// Cases opened by a held rule's finding, not announced yet, by when their hold ends.
    holds: BTreeSet<(Timestamp, u64)>,
    shared: SharedAddresses,
    records: Vec<CaseRecord>,
    stats: CaseStats,
}

impl Correlator {
    pub fn new(spec: CorrelationSpec, ipv6_prefix: u8) -> Correlator {
        Correlator {
            shared: SharedAddresses::new(spec.shared_address),
            spec,
            ipv6_prefix,
            cases: BTreeMap::new(),
            next_seq: 0,
            by_entity: HashMap::default(),
            by_incident: HashMap::new(),
            members: HashMap::new(),
            closing: BTreeSet::new(),
            renotify: BTreeSet::new(),
            holds: BTreeSet::new(),
            records: Vec::new(),
            stats: CaseStats::default(),
        }
    }

    /// Every sign-in the rules take: what the shared-address judgement learns from. `ip` and `user` are
    /// the engine's key hashes of the event's grouped address and user.
    pub fn observe(&mut self, ev: &SignInEvent, ip: Option<u64>, user: Option<u64>) {
        if let (Some(ip), Some(user)) = (ip, user) {
            self.shared.observe(ev.time, ip, user, ev.outcome);
        }
    }

    /// Assigns each finding its case (opening, joining or merging cases), at event time `now`.
    pub fn correlate(&mut self, findings: &mut [Finding], now: Timestamp) {
        for f in findings {
            self.take(f, now);
        }
    }

    fn take(&mut self, f: &mut Finding, now: Timestamp) {
        let entities = self.entities(f);
        let gap = self.spec.gap;
        let mut candidates: BTreeSet<u64> = BTreeSet::new();
        if let Some(&seq) = self.by_incident.get(&f.incident_id) {
            candidates.insert(seq);
        }
        for e in entities.iter().filter(|e| e.links) {
            if let Some(&seq) = self.by_entity.get(&e.hash) {
                if self.cases.get(&seq).is_some_and(|c| f.first_seen <= c.last_seen.saturating_add(gap)) {
                    candidates.insert(seq);
                }
            }
        }
        // The case that stays: an announced one before a held one (its page already went out), then the
        // oldest.
        let target = candidates.iter().copied().min_by_key(|seq| (self.cases.get(seq).is_some_and(Case::held), *seq));
        let (target, opened) = match target {
            Some(seq) => (seq, false),
            None => (self.open_case(f), true),
        };
        for other in candidates.into_iter().filter(|&c| c != target) {
            self.merge(target, other, now);
        }
        self.index(target, &entities);
        let Some(case) = self.cases.get_mut(&target) else { return };
        case.add(f);
        if f.status == crate::finding::Status::Closed {
            self.by_incident.remove(&f.incident_id);
        } else {
            self.by_incident.insert(f.incident_id.clone(), target);
        }
        f.case_id = Some(case.id.clone());
        let held_rule = self.spec.notify.hold > Span(0) && self.spec.notify.hold_rules.contains(&f.rule);
        if opened && held_rule {
            // A travel or risk alert is often what an attack did to an account: the attack's own finding
            // may claim it within minutes. Announced when the hold ends, or at once when one does.
            let due = now.saturating_add(self.spec.notify.hold);
            case.held_until = Some(due);
            self.holds.insert((due, target));
        } else if opened || (case.held() && !held_rule) {
            self.announce(target, now);
        } else {
            self.escalate_if_due(target, now, false);
        }
        self.reschedule(target);
    }

    /// The case's opening record (its first page): at its first finding, or when its hold ends.
    fn announce(&mut self, seq: u64, now: Timestamp) {
        let spread = self.spec.severity.spread_keys;
        let Some(case) = self.cases.get_mut(&seq) else { return };
        if let Some(due) = case.held_until.take() {
            self.holds.remove(&(due, seq));
        }
        // What the opening record says is what was notified.
        case.notified = case.severity(spread);
        case.takeovers_notified = case.taken_over_count;
        let reason = case.opened_by.clone();
        self.records.push(case.record(CaseStatus::Open, reason, now, spread, None));
    }

    /// Opens a case for `f`; past the cap, the oldest open case closes first.
    fn open_case(&mut self, f: &Finding) -> u64 {
        while self.cases.len() >= self.spec.limits.max_open_cases {
            let Some((&oldest, _)) = self.cases.iter().next() else { break };
            self.stats.closed_early += 1;
            self.close(oldest, f.detected_at, "closed early: too many open cases (limits.max_open_cases)");
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        // Stable: derived from the opening finding's incident id, itself derived from the rule, key and
        // detection time.
        let id = incident_id("case", &f.incident_id, f.detected_at);
        self.cases.insert(seq, Case::open(id, seq, f));
        self.members.insert(seq, Default::default());
        self.stats.opened += 1;
        seq
    }

    /// Indexes `f`'s entities under case `seq` and counts its accounts and addresses.
    fn index(&mut self, seq: u64, entities: &[Entity]) {
        let cap = self.spec.limits.max_entities_per_case;
        let (Some(case), Some(members)) = (self.cases.get_mut(&seq), self.members.get_mut(&seq)) else { return };
        for e in entities {
            if members.contains(&e.hash) {
                if let What::Address { ip, successful_users, shared } = &e.what {
                    if let Some(a) = case.addresses.get_mut(ip) {
                        *a = (*successful_users, *shared);
                    }
                }
                continue;
            }
            if members.len() >= cap {
                self.stats.entities_not_linked += 1;
                case.entities_over += 1;
                continue;
            }
            members.insert(e.hash);
            if e.links {
                self.by_entity.insert(e.hash, seq);
            }
            match &e.what {
                What::User { name, count } => {
                    if *count {
                        case.users_count += 1;
                        if case.users.len() < case::MAX_LISTED {
                            case.users.insert(name.clone());
                        }
                    }
                }
                What::Address { ip, successful_users, shared } => {
                    case.addresses_count += 1;
                    if case.addresses.len() < case::MAX_LISTED {
                        case.addresses.insert(ip.clone(), (*successful_users, *shared));
                    }
                }
                What::AddressKey | What::PoolCount => {}
            }
        }
    }

    /// Moves case `other` into `target` (the older): its entities, incidents and figures; `other`'s last
    /// record says where it went.
    fn merge(&mut self, target: u64, other: u64, now: Timestamp) {
        let Some(absorbed) = self.cases.remove(&other) else { return };
        if let Some(due) = absorbed.close_due {
            self.closing.remove(&(due, other));
        }
        if let Some(due) = absorbed.pending_due {
            self.renotify.remove(&(due, other));
        }
        if let Some(due) = absorbed.held_until {
            self.holds.remove(&(due, other));
        }
        let Some(target_id) = self.cases.get(&target).map(|c| c.id.clone()) else { return };
        let reason = format!("merged into case {target_id}");
        self.records.push(absorbed.record(
            CaseStatus::Merged,
            reason,
            now,
            self.spec.severity.spread_keys,
            Some(target_id),
        ));
        let moved = self.members.remove(&other).unwrap_or_default();
        let cap = self.spec.limits.max_entities_per_case;
        let members = self.members.entry(target).or_default();
        for h in moved {
            if self.by_entity.get(&h) == Some(&other) {
                if members.len() < cap {
                    self.by_entity.insert(h, target);
                } else {
                    self.by_entity.remove(&h);
                    self.stats.entities_not_linked += 1;
                }
            }
            if members.len() < cap {
                members.insert(h);
            }
        }
        for id in &absorbed.open_incidents {
            self.by_incident.insert(id.clone(), target);
        }
        if let Some(case) = self.cases.get_mut(&target) {
            case.absorb(absorbed);
        }
        self.stats.merged += 1;
    }

    /// Sends the escalation a change calls for: severity above what was notified at once; the first
    /// takeover at once; further takeovers at most every `renotify_after` (or now, when `due` says the
    /// wait is over).
    fn escalate_if_due(&mut self, seq: u64, now: Timestamp, due: bool) {
        let spread = self.spec.severity.spread_keys;
        let wait = self.spec.notify.renotify_after;
        let Some(case) = self.cases.get_mut(&seq) else { return };
        if case.held() {
            // Its opening record, when it goes out, says all of it.
            return;
        }
        let severity = case.severity(spread);
        let new_takeovers = case.taken_over_count.saturating_sub(case.takeovers_notified);
        // Each takeover-only update waits twice as long as the one before: a campaign breaking into
        // accounts for hours pages a handful of times, not every quarter hour.
        let wait =
            crate::time::Span(wait.millis().saturating_mul(1 << case.takeover_updates.min(MAX_BACKOFF_DOUBLINGS)));
        let reason = if severity > case.notified {
            format!("severity rose to {severity}")
        } else if new_takeovers > 0 && case.takeovers_notified == 0 {
            format!("{} taken over", taken_over_phrase(case, new_takeovers))
        } else if new_takeovers > 0 && (due || now >= case.last_notified_at.saturating_add(wait)) {
            case.takeover_updates += 1;
            format!("{} more taken over", taken_over_phrase(case, new_takeovers))
        } else {
            if new_takeovers > 0 && case.pending_due.is_none() {
                let at = case.last_notified_at.saturating_add(wait);
                case.pending_due = Some(at);
                self.renotify.insert((at, seq));
            }
            return;
        };
        if let Some(at) = case.pending_due.take() {
            self.renotify.remove(&(at, seq));
        }
        case.escalations += 1;
        case.notified = severity;
        case.takeovers_notified = case.taken_over_count;
        case.last_notified_at = now;
        self.records.push(case.record(CaseStatus::Escalated, reason, now, spread, None));
    }

    /// Keeps the closing queue in step with the case: due once every incident closed.
    fn reschedule(&mut self, seq: u64) {
        let gap = self.spec.gap;
        let Some(case) = self.cases.get_mut(&seq) else { return };
        let due = case.open_incidents.is_empty().then(|| case.last_seen.saturating_add(gap));
        if due != case.close_due {
            if let Some(old) = case.close_due {
                self.closing.remove(&(old, seq));
            }
            if let Some(new) = due {
                self.closing.insert((new, seq));
            }
            case.close_due = due;
        }
    }

    /// Event time moved to `now`: gathered takeover updates that are due go out, and quiet cases close.
    pub fn advance(&mut self, now: Timestamp) {
        while let Some(&(at, seq)) = self.holds.first() {
            if at > now {
                break;
            }
            self.announce(seq, at);
        }
        while let Some(&(at, seq)) = self.renotify.first() {
            if at > now {
                break;
            }
            self.renotify.remove(&(at, seq));
            if let Some(c) = self.cases.get_mut(&seq) {
                c.pending_due = None;
            }
            self.escalate_if_due(seq, at, true);
        }
        while let Some(&(due, seq)) = self.closing.first() {
            if due >= now {
                break;
            }
            self.close(seq, due, "quiet for the gap with every incident closed");
        }
    }

    fn close(&mut self, seq: u64, now: Timestamp, reason: &str) {
        if self.cases.get(&seq).is_some_and(Case::held) {
            self.announce(seq, now);
        }
        let Some(case) = self.cases.remove(&seq) else { return };
        if let Some(due) = case.close_due {
            self.closing.remove(&(due, seq));
        }
        if let Some(due) = case.pending_due {
            self.renotify.remove(&(due, seq));
        }
        for h in self.members.remove(&seq).unwrap_or_default() {
            if self.by_entity.get(&h) == Some(&seq) {
                self.by_entity.remove(&h);
            }
        }
        for id in &case.open_incidents {
            self.by_incident.remove(id);
        }
        self.records.push(case.record(
            CaseStatus::Closed,
            reason.to_string(),
            now,
            self.spec.severity.spread_keys,
            None,
        ));
    }

    /// End of input: every case closes, oldest first.
    pub fn finish(&mut self, now: Timestamp) {
        let open: Vec<u64> = self.cases.keys().copied().collect();
        for seq in open {
            self.close(seq, now, "end of input");
        }
    }

    /// The case updates since the last call, in the order they happened.
    pub fn drain(&mut self, out: &mut Vec<CaseRecord>) {
        out.append(&mut self.records);
    }

    pub fn stats(&self) -> CaseStats {
        CaseStats { open: self.cases.len() as u64, addresses_untracked: self.shared.untracked, ..self.stats.clone() }
    }

    /// The earliest `first_seen` of the open cases: a monitor restart re-reads from there so it rebuilds
    /// them whole.
    pub fn earliest_open(&self) -> Option<Timestamp> {
        self.cases.values().map(|c| c.first_seen).min()
    }

    /// The entities `f` names, with whether each may link.
    fn entities(&self, f: &Finding) -> Vec<Entity> {
        let link = self.spec.link;
        let pool = f.user_pool_id.as_deref().unwrap_or("");
        let user_keyed = f.user.is_some() || f.user_sub.is_some();
        let mut out = Vec::new();
        let user = |name: &str, count: bool, links: bool| Entity {
            hash: hash_of(("user", pool, name)),
            links,
            what: What::User { name: name.to_string(), count },
        };
        if user_keyed {
            if let Some(name) = f.user.as_deref() {
                out.push(user(name, true, link.users));
            }
            if let Some(sub) = f.user_sub.as_deref().filter(|s| Some(*s) != f.user.as_deref()) {
                out.push(user(sub, f.user.is_none(), link.users));
            }
        }
        let mut key_shared = false;
        if let Some(ip) = f.ip.as_deref() {
            let group = self.group(ip);
            let e = self.address(&group, link.addresses);
            key_shared = !e.links && link.addresses;
            if !user_keyed {
                out.push(Entity { hash: hash_of(("key", group.as_str())), links: true, what: What::AddressKey });
            }
            out.push(e);
        }
        // A campaign's other addresses and accounts: only from rules that count failures (a travel
        // finding's addresses include the account's own home).
        let failures = f.evidence.get("failures").and_then(Value::as_u64).unwrap_or(0);
        let consequence = matches!(f.detector, "impossible_travel" | "cognito_risk" | "account_takeover");
        if link.campaign && failures > 0 && !consequence {
            if let Some(ips) = f.evidence.get("ips").and_then(Value::as_object) {
                for ip in ips.keys() {
                    let group = self.group(ip);
                    if Some(group.as_str()) != f.ip.as_deref() {
                        out.push(self.address(&group, true));
                    }
                }
            }
            if !user_keyed && !key_shared {
                if let Some(users) = f.evidence.get("users").and_then(Value::as_object) {
                    for name in users.keys() {
                        out.push(user(name, true, true));
                    }
                }
            }
        }
        if link.takeovers {
            for name in taken_over(f) {
                out.push(user(name, true, true));
            }
        }
        if !user_keyed && f.ip.is_none() {
            let what = match f.detector {
                "signup_flood" => "sign-ups",
                _ => "failed sign-ins",
            };
            // A surge one address dominates is that address's attack: it links by the address (above),
            // not by the pool, or two attacks an hour apart would merge through their pool-wide echoes.
            let links = link.pool_wide && !dominated(f);
            out.push(Entity { hash: hash_of(("pool", pool, what)), links, what: What::PoolCount });
        }
        out
    }

    /// An address entity; it links (when `links` allows) unless the address is shared.
    fn address(&self, group: &str, links: bool) -> Entity {
        let h = key_hash(group);
        let usage = self.shared.usage(h);
        let shared = self.shared.is_shared(h);
        Entity {
            hash: hash_of(("addr", group)),
            links: links && !shared,
            what: What::Address { ip: group.to_string(), successful_users: usage.succeeded, shared },
        }
    }

    /// An address as the rules key it (IPv6 by prefix); text that is not an address stays as it is.
    fn group(&self, ip: &str) -> String {
        match ip.parse::<IpAddr>() {
            Ok(addr) => IpKey::group(addr, self.ipv6_prefix).as_str().to_string(),
            Err(_) => ip.to_string(),
        }
    }
}

/// The accounts a finding reports taken over: its `takeovers` list and, past the list's cap, the one
/// its update is about (`latest_takeover`).
pub fn taken_over(f: &Finding) -> impl Iterator<Item = &str> {
    let list = f.evidence.get("takeovers").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    list.chain(f.evidence.get("latest_takeover").and_then(Value::as_str))
}

/// Share of a pool-wide finding's events from one address above which the address is the attack.
const DOMINANT_SHARE: f64 = 0.5;

/// Whether one address accounts for at least [`DOMINANT_SHARE`] of a pool-wide finding's events.
fn dominated(f: &Finding) -> bool {
    let n = |k: &str| f.evidence.get(k).and_then(Value::as_u64).unwrap_or(0);
    let Some(ips) = f.evidence.get("ips").and_then(Value::as_object) else { return false };
    let top = ips.values().filter_map(Value::as_u64).max().unwrap_or(0);
    let listed: u64 = ips.values().filter_map(Value::as_u64).sum();
    let total = n("failures").max(n("successes")).max(listed);
    top > 0 && top as f64 >= DOMINANT_SHARE * total as f64
}

/// "3 accounts (ana, bo, cy)": the `n` taken over since the last update, the latest named.
fn taken_over_phrase(case: &Case, n: u64) -> String {
    let new = &case.taken_over_order[case.taken_over_order.len().saturating_sub(n as usize)..];
    let names: Vec<&str> = new.iter().rev().take(3).map(String::as_str).collect();
    let accounts = if n == 1 { "1 account".to_string() } else { format!("{} accounts", thousands(n)) };
    if names.is_empty() {
        accounts
    } else {
        format!("{accounts} ({}{})", names.join(", "), if new.len() > 3 { ", ..." } else { "" })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::finding::{Severity, Status};

    const T: i64 = 1_780_000_000_000;
    const MIN: i64 = 60_000;

    fn finding(rule: &str, id: &str, user: Option<&str>, ip: Option<&str>, at: i64, status: Status) -> Finding {
        Finding {
            detector: match rule {
                "impossible_travel" => "impossible_travel",
                "account_takeover" => "account_takeover",
                "distributed_credential_stuffing" => "distributed_credential_stuffing",
                _ => "failed_login_burst",
            },
            severity: Severity::High,
            user: user.map(str::to_string),
            user_sub: None,
            ip: ip.map(str::to_string),
            user_pool_id: Some("us-east-1_Unit".into()),
            region: None,
            account: None,
            first_seen: Timestamp(at - MIN),
            last_seen: Timestamp(at),
            detected_at: Timestamp(at),
            count: 10,
            summary: String::new(),
            evidence: json!({"failures": 10}),
            incident_id: id.into(),
            rule: rule.into(),
            case_id: None,
            status,
        }
    }

    fn run(c: &mut Correlator, mut f: Finding) -> Finding {
        let now = f.detected_at;
        c.advance(now);
        c.correlate(std::slice::from_mut(&mut f), now);
        f
    }

    fn drained(c: &mut Correlator) -> Vec<CaseRecord> {
        let mut v = Vec::new();
        c.drain(&mut v);
        v
    }

    #[test]
    fn a_finding_that_links_two_cases_merges_the_newer_into_the_older() {
        let mut c = Correlator::new(CorrelationSpec::builtin(), 64);
        let a = run(&mut c, finding("failed_login_burst_user", "a", Some("ana"), Some("192.0.2.1"), T, Status::Open));
        let b =
            run(&mut c, finding("failed_login_burst_user", "b", Some("bo"), Some("192.0.2.2"), T + MIN, Status::Open));
        assert_ne!(a.case_id, b.case_id);
        // One address failing for both accounts.
        let mut bridge = finding("failed_login_burst_ip", "c", None, Some("192.0.2.1"), T + 2 * MIN, Status::Open);
        bridge.evidence = json!({"failures": 20, "users": {"ana": 10, "bo": 10}});
        let bridge = run(&mut c, bridge);
        assert_eq!(bridge.case_id, a.case_id, "the older case stays");
        let records = drained(&mut c);
        let merged: Vec<&CaseRecord> = records.iter().filter(|r| r.status == CaseStatus::Merged).collect();
        assert_eq!(merged.len(), 1);
        assert_eq!(Some(&merged[0].case_id), b.case_id.as_ref());
        assert_eq!(merged[0].merged_into, a.case_id);
        assert_eq!(c.stats().merged, 1);
        assert_eq!(records.iter().filter(|r| r.status == CaseStatus::Open).count(), 2);
    }

    #[test]
    fn a_travel_alert_waits_for_the_attack_that_claims_it_and_pages_once() {
        let mut c = Correlator::new(CorrelationSpec::builtin(), 64);
        let travel =
            run(&mut c, finding("impossible_travel", "t", Some("lucia"), Some("198.51.100.9"), T, Status::Open));
        assert!(drained(&mut c).is_empty(), "held: no page yet");
        let mut campaign = finding("distributed_credential_stuffing", "d", None, None, T + 5 * MIN, Status::Open);
        campaign.evidence = json!({"failures": 900, "takeovers": ["lucia"], "ips": {"203.0.113.1": 1}});
        let campaign = run(&mut c, campaign);
        assert_eq!(campaign.case_id, travel.case_id);
        let records = drained(&mut c);
        assert_eq!(records.len(), 1, "{records:#?}");
        assert_eq!(records[0].status, CaseStatus::Open);
        assert_eq!(records[0].taken_over, ["lucia"]);
        // A travel alert nothing claims pages when its hold ends.
        run(&mut c, finding("impossible_travel", "u", Some("kenji"), Some("192.0.2.50"), T + 6 * MIN, Status::Open));
        c.advance(Timestamp(T + 20 * MIN));
        assert!(drained(&mut c).is_empty());
        c.advance(Timestamp(T + 22 * MIN));
        let records = drained(&mut c);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status, CaseStatus::Open);
        assert_eq!(records[0].updated_at, Timestamp(T + 21 * MIN), "announced when the hold ended");
    }

    #[test]
    fn takeovers_after_the_first_are_gathered_with_a_growing_wait() {
        let mut c = Correlator::new(CorrelationSpec::builtin(), 64);
        let mut f = finding("distributed_credential_stuffing", "d", None, None, T, Status::Open);
        f.severity = Severity::Critical;
        run(&mut c, f.clone());
        let mut taken: Vec<String> = Vec::new();
        let mut escalations = Vec::new();
        // A takeover a minute for two hours.
        for m in 1..=120 {
            taken.push(format!("user{m}"));
            let mut up = f.clone();
            up.status = Status::Escalated;
            up.detected_at = Timestamp(T + m * MIN);
            up.last_seen = up.detected_at;
            up.evidence = json!({"failures": 900, "takeovers": taken});
            run(&mut c, up);
            escalations.extend(drained(&mut c).into_iter().filter(|r| r.status == CaseStatus::Escalated));
        }
        let at: Vec<i64> = escalations.iter().map(|r| (r.updated_at.0 - T) / MIN).collect();
        // The first takeover at once; then 15 min, 30 min, and every hour.
        assert_eq!(at, [1, 16, 46, 106], "{escalations:#?}");
        // The update due at minute 106 leaves before that minute's takeover arrives.
        assert_eq!(escalations.last().map(|r| r.taken_over_count), Some(105));
    }

    #[test]
    fn a_case_closes_once_its_incidents_closed_and_the_gap_passed() {
        let mut c = Correlator::new(CorrelationSpec::builtin(), 64);
        let open =
            run(&mut c, finding("failed_login_burst_user", "a", Some("ana"), Some("192.0.2.1"), T, Status::Open));
        run(
            &mut c,
            finding("failed_login_burst_user", "a", Some("ana"), Some("192.0.2.1"), T + 10 * MIN, Status::Closed),
        );
        drained(&mut c);
        c.advance(Timestamp(T + 70 * MIN));
        assert!(drained(&mut c).is_empty(), "the gap runs from the case's last activity");
        c.advance(Timestamp(T + 71 * MIN));
        let closed = drained(&mut c);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].status, Some(&closed[0].case_id)), (CaseStatus::Closed, open.case_id.as_ref()));
        assert_eq!(c.stats().open, 0);
        // The same account later is a new case.
        let later = run(
            &mut c,
            finding("failed_login_burst_user", "b", Some("ana"), Some("192.0.2.1"), T + 3 * 60 * MIN, Status::Open),
        );
        assert_ne!(later.case_id, open.case_id);
    }
}
