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
pub use case::{CaseRecord, CaseStatus};
use shared::SharedAddresses;
pub use spec::CorrelationSpec;

use crate::detect::incident::incident_id;
use crate::detect::window::{hash_of, key_hash, PreHashed};
use crate::detect::IpKey;
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::time::Timestamp;

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
        let mut iter = candidates.into_iter();
        let (target, opened) = match iter.next() {
            Some(seq) => (seq, false),
            None => (self.open_case(f), true),
        };
        for other in iter {
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
        if opened {
            // What the opening record says is what was notified.
            case.notified = case.severity(self.spec.severity.spread_keys);
            case.takeovers_notified = case.taken_over_count;
            let reason = case.opened_by.clone();
            self.records.push(case.record(CaseStatus::Open, reason, now, self.spec.severity.spread_keys, None));
        } else {
            self.escalate_if_due(target, now, false);
        }
        self.reschedule(target);
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
            if let Some(list) = f.evidence.get("takeovers").and_then(Value::as_array) {
                for name in list.iter().filter_map(Value::as_str) {
                    out.push(user(name, true, true));
                }
            }
        }
        if !user_keyed && f.ip.is_none() {
            let what = match f.detector {
                "signup_flood" => "sign-ups",
                _ => "failed sign-ins",
            };
            out.push(Entity { hash: hash_of(("pool", pool, what)), links: link.pool_wide, what: What::PoolCount });
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

/// "3 accounts (ana, bo, cy)": the `n` taken over since the last update, the latest named.
fn taken_over_phrase(case: &Case, n: u64) -> String {
    let new = &case.taken_over_order[case.taken_over_order.len().saturating_sub(n as usize)..];
    let names: Vec<&str> = new.iter().rev().take(3).map(String::as_str).collect();
    let accounts = if n == 1 { "1 account".to_string() } else { format!("{} accounts", case::thousands(n)) };
    if names.is_empty() {
        accounts
    } else {
        format!("{accounts} ({}{})", names.join(", "), if new.len() > 3 { ", ..." } else { "" })
    }
}
