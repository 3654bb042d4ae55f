//! The response state: the addresses blocked (address, reason, incident, expiry), the repeat-offence
//! history, the containment actions queued, and what was already acted on per incident. It is the
//! `respond` field of the monitor's checkpoint, so a restart keeps every block and its expiry.
//!
//! Pure bookkeeping on wall-clock milliseconds passed in: no AWS call and no clock of its own, so every
//! rule here (expiry, escalation, the set's limit, never removing what authwatch did not add) is tested
//! without the emulator. The WAF writer ([`super::waf`]) asks for a [`Plan`] against the set it just read
//! and reports back with [`Store::applied`].

use std::collections::{BTreeMap, HashSet, VecDeque};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::policy::{BlockPolicy, ContainAction};
use crate::finding::{Finding, Severity};

/// Incidents remembered as acted on (the "never twice" record), oldest forgotten first beyond it.
pub const MAX_ACTED: usize = 100_000;
/// Addresses whose offences are remembered for escalation, least recent forgotten first beyond it.
pub const MAX_OFFENCES: usize = 100_000;
/// An offence older than this no longer escalates the next block.
pub const OFFENCE_MEMORY_MS: i64 = 30 * 24 * 3600 * 1000;
/// Containment actions waiting for Cognito at most; beyond it new ones are refused and reported at ERROR.
pub const MAX_QUEUED_ACTIONS: usize = 10_000;
/// What was acted on is remembered this long: as long as the monitor's ledger, past which no restart
/// re-reads the events that raised the incident.
pub const ACTED_MEMORY_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often [`Store::expire`] also forgets what no longer needs remembering.
const PRUNE_EVERY_MS: i64 = 3600 * 1000;

/// Where a block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockState {
    /// Decided, not yet in the set.
    Pending,
    /// Seen absent from the set and about to be written (recorded in a checkpoint before the write, so
    /// that after a crash an entry found in the set is known to be authwatch's, not someone else's).
    Adding,
    /// Written to the set by authwatch.
    Active,
    /// Expired or unblocked: to be removed from the set, then forgotten.
    Expired,
    /// Already in the set when authwatch came to add it: someone else's entry, never removed by authwatch.
    Foreign,
}

/// One blocked address (or IPv6 prefix), as the set holds it (`203.0.113.7/32`, `2001:db8::/64`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub addr: String,
    /// The rule that asked for it.
    pub rule: String,
    pub incident: String,
    pub severity: Severity,
    pub added_ms: i64,
    pub expires_ms: i64,
    /// Offences of this address, this one included (the block's length grows with them).
    pub offences: u32,
    pub state: BlockState,
    /// Visible to the writer once the checkpoint holding it is on disk (`seq <= visible_upto`).
    pub seq: u64,
    /// Why an expired block ended: `expired`, `unblocked`, `set full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

impl Block {
    pub fn is_v6(&self) -> bool {
        self.addr.contains(':')
    }

    /// Lower goes first when the set is full: the lowest severity, then the soonest to expire.
    fn priority(&self) -> (Severity, i64) {
        (self.severity, self.expires_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Offence {
    pub count: u32,
    pub last_ms: i64,
}

/// One containment action waiting to be done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub seq: u64,
    pub incident: String,
    pub action: ContainAction,
    pub user: String,
    pub user_pool_id: String,
    pub region: Option<String>,
    pub attempts: u32,
}

/// What became of a block decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A new block (and, when the set was full, the lower-priority block it displaced).
    Added { addr: String, expires_ms: i64, evicted: Option<String> },
    /// The address was blocked already: its expiry moved to the later of the two.
    Extended { addr: String, expires_ms: i64 },
    /// This incident was acted on before.
    AlreadyActed,
    /// The set is full of blocks that rank higher: not blocked, reported.
    Overflow { addr: String },
}

/// The changes one write makes to one IP set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The set's whole new content.
    pub addresses: Vec<String>,
    pub added: Vec<String>,
    /// Expired or unblocked addresses authwatch added.
    pub removed: Vec<String>,
    /// Blocks given up to keep the set within its limit (lowest severity, then soonest to expire, first).
    pub evicted: Vec<String>,
    /// Blocks about to be written that the set already holds (a write whose answer was lost).
    pub confirmed: Vec<String>,
    /// Ended blocks the set no longer holds: forgotten.
    pub gone: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.evicted.is_empty()
            && self.confirmed.is_empty()
            && self.gone.is_empty()
    }
}

/// The state, as saved in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Store {
    pub blocks: BTreeMap<String, Block>,
    pub offences: BTreeMap<String, Offence>,
    /// `incident:action` → wall time it was decided: each incident is acted on once per action.
    pub acted: BTreeMap<String, i64>,
    pub actions: VecDeque<Action>,
    pub next_seq: u64,
    /// Blocks not made, or given up, because the set was full.
    pub overflow: u64,
    /// Highest `seq` the writer may act on (everything up to it is in a checkpoint on disk).
    #[serde(skip)]
    pub visible_upto: u64,
    #[serde(skip)]
    last_prune_ms: i64,
}

/// The set entry for an address: `/32` for IPv4, the `ipv6_prefix` network for IPv6. `ip` may already be
/// a prefix (`2001:db8::/64`, as IPv6-grouped findings name it).
pub fn network(ip: &str, ipv6_prefix: u8) -> Option<IpNet> {
    let net = match ip.parse::<std::net::IpAddr>() {
        Ok(a) => IpNet::from(a),
        Err(_) => ip.parse::<IpNet>().ok()?,
    };
    Some(match net {
        IpNet::V4(n) => IpNet::V4(ipnet::Ipv4Net::new(n.addr(), 32).ok()?),
        IpNet::V6(n) => {
            // A prefix the finding names stays as it is; an address is grouped by the policy's prefix.
            let bits = if n.prefix_len() < 128 { n.prefix_len() } else { ipv6_prefix.min(128) };
            IpNet::V6(ipnet::Ipv6Net::new(n.addr(), bits).ok()?.trunc())
        }
    })
}

impl Store {
    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Makes everything decided so far visible to the writer (the checkpoint holding it is on disk).
    pub fn make_visible(&mut self) {
        self.visible_upto = self.next_seq;
    }

    /// Whether `incident` was acted on with `what` (`block` or a containment action).
    pub fn acted_on(&self, incident: &str, what: &str) -> bool {
        self.acted.contains_key(&acted_key(incident, what))
    }

    fn mark_acted(&mut self, incident: &str, what: &str, now_ms: i64) {
        self.acted.insert(acted_key(incident, what), now_ms);
        if self.acted.len() > MAX_ACTED {
            forget_oldest(&mut self.acted, MAX_ACTED / 10, |t| *t);
        }
    }

    /// Blocks `net` for finding `f` under `policy`, keeping at most `cap` blocks of its family.
    pub fn block(&mut self, net: IpNet, f: &Finding, policy: &BlockPolicy, cap: usize, now_ms: i64) -> Decision {
        let addr = net.to_string();
        // Once per case and address: a case's later findings on the same address do not block it again
        // (nor lengthen it as a repeat offence), another address of the same campaign is blocked too.
        let acted = format!("{}|{addr}", case_of(f));
        if self.acted_on(&acted, "block") {
            return Decision::AlreadyActed;
        }
        self.mark_acted(&acted, "block", now_ms);
        let offences = self.offence(&addr, now_ms);
        let expires_ms = now_ms.saturating_add(block_length(policy, offences));
        let seq = self.next_seq();
        if let Some(b) = self.blocks.get_mut(&addr) {
            b.expires_ms = b.expires_ms.max(expires_ms);
            b.severity = b.severity.max(f.severity);
            b.offences = offences;
            b.seq = seq;
            if b.state == BlockState::Expired {
                // Expired but not yet removed: it is authwatch's entry and still wanted.
                b.state = BlockState::Active;
                b.ended = None;
            }
            return Decision::Extended { addr, expires_ms: b.expires_ms };
        }
        let v6 = net.addr().is_ipv6();
        let block = Block {
            addr: addr.clone(),
            rule: f.rule.clone(),
            incident: case_of(f).to_string(),
            severity: f.severity,
            added_ms: now_ms,
            expires_ms,
            offences,
            state: BlockState::Pending,
            seq,
            ended: None,
        };
        let mut evicted = None;
        // Counting is a scan: only worth it once the store could hold that many.
        if self.blocks.len() >= cap && self.wanted(v6).count() >= cap {
            let victim = self.wanted(v6).min_by_key(|b| b.priority()).map(|b| (b.addr.clone(), b.priority()));
            match victim {
                Some((v, p)) if p < block.priority() => {
                    self.give_up(&v);
                    evicted = Some(v);
                }
                _ => {
                    self.overflow += 1;
                    return Decision::Overflow { addr };
                }
            }
        }
        self.blocks.insert(addr.clone(), block);
        Decision::Added { addr, expires_ms, evicted }
    }

    /// Gives up a block to make room: removed from the set if written, forgotten if not. Counted.
    fn give_up(&mut self, addr: &str) {
        self.overflow += 1;
        match self.blocks.get(addr).map(|b| b.state) {
            Some(BlockState::Active | BlockState::Adding) => {
                if let Some(b) = self.blocks.get_mut(addr) {
                    b.state = BlockState::Expired;
                    b.ended = Some("set full".into());
                }
            }
            Some(_) => {
                self.blocks.remove(addr);
            }
            None => {}
        }
    }

    /// Blocks authwatch wants in the set (pending or written) of one family.
    fn wanted(&self, v6: bool) -> impl Iterator<Item = &Block> {
        self.blocks.values().filter(move |b| {
            b.is_v6() == v6 && matches!(b.state, BlockState::Pending | BlockState::Adding | BlockState::Active)
        })
    }

    /// This offence's number for `addr` (1 for a first offence or one after [`OFFENCE_MEMORY_MS`]).
    fn offence(&mut self, addr: &str, now_ms: i64) -> u32 {
        let prev = self
            .offences
            .get(addr)
            .filter(|o| now_ms.saturating_sub(o.last_ms) < OFFENCE_MEMORY_MS)
            .map_or(0, |o| o.count);
        let count = prev.saturating_add(1);
        self.offences.insert(addr.to_string(), Offence { count, last_ms: now_ms });
        if self.offences.len() > MAX_OFFENCES {
            forget_oldest(&mut self.offences, MAX_OFFENCES / 10, |o| o.last_ms);
        }
        count
    }

    /// Blocks whose time is up become due for removal (those never written, or someone else's, are
    /// simply forgotten). Returns the addresses that expired.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let due: Vec<String> = self
            .blocks
            .values()
            .filter(|b| b.expires_ms <= now_ms && b.state != BlockState::Expired)
            .map(|b| b.addr.clone())
            .collect();
        for a in &due {
            self.end(a, "expired");
        }
        if now_ms.saturating_sub(self.last_prune_ms) >= PRUNE_EVERY_MS {
            self.last_prune_ms = now_ms;
            self.acted.retain(|_, t| now_ms.saturating_sub(*t) < ACTED_MEMORY_MS);
            self.offences.retain(|_, o| now_ms.saturating_sub(o.last_ms) < OFFENCE_MEMORY_MS);
        }
        due
    }

    fn end(&mut self, addr: &str, why: &str) {
        match self.blocks.get(addr).map(|b| b.state) {
            Some(BlockState::Active | BlockState::Adding) => {
                if let Some(b) = self.blocks.get_mut(addr) {
                    b.state = BlockState::Expired;
                    b.ended = Some(why.into());
                }
            }
            Some(BlockState::Pending | BlockState::Foreign) => {
                self.blocks.remove(addr);
            }
            _ => {}
        }
    }

    /// An operator's unblock: the block ends now. Err when authwatch holds no such block.
    pub fn unblock(&mut self, addr: &str) -> Result<BlockState, String> {
        let key = self.find(addr).ok_or_else(|| format!("{addr} is not blocked by authwatch"))?;
        let state = self.blocks[&key].state;
        self.end(&key, "unblocked");
        Ok(state)
    }

    /// The stored key for `addr` given as an address or as the set's entry.
    pub fn find(&self, addr: &str) -> Option<String> {
        if self.blocks.contains_key(addr) {
            return Some(addr.to_string());
        }
        let ip = addr.parse::<std::net::IpAddr>().ok()?;
        self.blocks.keys().find(|k| k.parse::<IpNet>().is_ok_and(|n| n.contains(&ip))).cloned()
    }

    /// First step of a write to one set (`current`: its content just read): checkpointed pending blocks the
    /// set already holds are someone else's entries (left to them, never removed); the others become
    /// `Adding`. Returns the sequence number the checkpoint must reach before they are written (None when
    /// nothing was marked).
    pub fn prepare(&mut self, v6: bool, current: &[String]) -> Option<u64> {
        let cur: HashSet<&str> = current.iter().map(String::as_str).collect();
        let visible = self.visible_upto;
        let mark = self.next_seq + 1;
        let mut marked = false;
        for b in
            self.blocks.values_mut().filter(|b| b.is_v6() == v6 && b.state == BlockState::Pending && b.seq <= visible)
        {
            if cur.contains(b.addr.as_str()) {
                b.state = BlockState::Foreign;
            } else {
                b.state = BlockState::Adding;
                b.seq = mark;
                marked = true;
            }
        }
        marked.then(|| self.next_seq())
    }

    /// The write that brings one set (`current`: its content just read) in line with the blocks of its
    /// family, within `limit` entries. Entries authwatch did not add are kept and count against the limit.
    pub fn plan(&self, v6: bool, current: &[String], limit: usize) -> Plan {
        let cur: HashSet<&str> = current.iter().map(String::as_str).collect();
        let mut plan = Plan::default();
        let mut kept_ours: Vec<&Block> = Vec::new();
        for b in self.blocks.values().filter(|b| b.is_v6() == v6) {
            let present = cur.contains(b.addr.as_str());
            match b.state {
                BlockState::Expired if present => plan.removed.push(b.addr.clone()),
                BlockState::Expired => plan.gone.push(b.addr.clone()),
                BlockState::Adding if present => {
                    plan.confirmed.push(b.addr.clone());
                    kept_ours.push(b);
                }
                // Only once the checkpoint records it as being added.
                BlockState::Adding if b.seq > self.visible_upto => {}
                BlockState::Adding | BlockState::Active if !present => {
                    // Written before, gone now (removed by hand, or a lost write): the block still stands.
                    plan.added.push(b.addr.clone());
                    kept_ours.push(b);
                }
                BlockState::Active => kept_ours.push(b),
                _ => {}
            }
        }
        let size = current.len() - plan.removed.len() + plan.added.len();
        if size > limit {
            kept_ours.sort_by_key(|b| b.priority());
            for b in kept_ours.iter().take(size - limit) {
                plan.evicted.push(b.addr.clone());
                if let Some(i) = plan.added.iter().position(|a| *a == b.addr) {
                    plan.added.swap_remove(i);
                } else {
                    plan.removed.push(b.addr.clone());
                }
            }
        }
        let removed: HashSet<&str> = plan.removed.iter().map(String::as_str).collect();
        plan.addresses = current.iter().filter(|a| !removed.contains(a.as_str())).cloned().collect();
        plan.addresses.extend(plan.added.iter().cloned());
        plan
    }

    /// A planned write succeeded: added blocks are written, removed ones forgotten, evicted ones given up
    /// (counted). Changes made since the plan win.
    pub fn applied(&mut self, plan: &Plan) {
        for a in plan.added.iter().chain(&plan.confirmed) {
            if let Some(b) = self.blocks.get_mut(a) {
                if b.state == BlockState::Adding {
                    b.state = BlockState::Active;
                }
            }
        }
        for a in &plan.evicted {
            self.overflow += 1;
            self.blocks.remove(a);
        }
        for a in plan.removed.iter().chain(&plan.gone) {
            if self.blocks.get(a).is_some_and(|b| b.state == BlockState::Expired) {
                self.blocks.remove(a);
            }
        }
    }

    /// Queues a containment action for the finding's account, once per incident. False when it was
    /// done before or the queue is full (reported by the caller).
    pub fn queue_action(&mut self, f: &Finding, action: ContainAction, user: &str, pool: &str, now_ms: i64) -> Queued {
        // Once per case and account: the takeover, travel and risk findings of one taken-over account in
        // one case contain it once.
        let acted = format!("{}|{user}", case_of(f));
        if self.acted_on(&acted, action.as_str()) {
            return Queued::AlreadyActed;
        }
        if self.actions.len() >= MAX_QUEUED_ACTIONS {
            return Queued::Full;
        }
        self.mark_acted(&acted, action.as_str(), now_ms);
        let seq = self.next_seq();
        self.actions.push_back(Action {
            seq,
            incident: case_of(f).to_string(),
            action,
            user: user.to_string(),
            user_pool_id: pool.to_string(),
            region: f.region.clone(),
            attempts: 0,
        });
        Queued::Queued
    }

    /// The oldest action the writer may do now.
    pub fn next_action(&self) -> Option<Action> {
        self.actions.front().filter(|a| a.seq <= self.visible_upto).cloned()
    }

    /// The action `seq` is over (done, or failed for good and reported).
    pub fn action_finished(&mut self, seq: u64) {
        self.actions.retain(|a| a.seq != seq);
    }

    /// Counts a failed attempt at action `seq`.
    pub fn action_failed(&mut self, seq: u64) {
        if let Some(a) = self.actions.iter_mut().find(|a| a.seq == seq) {
            a.attempts += 1;
        }
    }

    /// Blocks per state, for `respond list` and the metrics.
    pub fn count(&self, state: BlockState) -> usize {
        self.blocks.values().filter(|b| b.state == state).count()
    }
}

/// The outcome of [`Store::queue_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Queued,
    AlreadyActed,
    Full,
}

fn acted_key(incident: &str, what: &str) -> String {
    format!("{incident}:{what}")
}

/// How long the `offences`-th block of an address lasts: the base duration times the repeat factor per
/// earlier offence, at most the longest.
pub fn block_length(policy: &BlockPolicy, offences: u32) -> i64 {
    let mut ms = policy.duration.0;
    for _ in 1..offences {
        ms = ms.saturating_mul(policy.repeat_factor as i64);
        if ms >= policy.max_duration.0 {
            break;
        }
    }
    ms.min(policy.max_duration.0)
}

/// Drops the `n` entries with the smallest `time`.
fn forget_oldest<V>(map: &mut BTreeMap<String, V>, n: usize, time: impl Fn(&V) -> i64) {
    let mut by_age: Vec<(i64, String)> = map.iter().map(|(k, v)| (time(v), k.clone())).collect();
    by_age.sort_unstable();
    for (_, k) in by_age.into_iter().take(n.max(1)) {
        map.remove(&k);
    }
}

/// The case a finding belongs to (`case_id`), or its incident when cases are off: what "once" is counted
/// per, and what the audit log names.
pub fn case_of(f: &Finding) -> &str {
    f.case_id.as_deref().unwrap_or(&f.incident_id)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::finding::Status;
    use crate::time::{Span, Timestamp};

    pub(crate) fn finding(rule: &str, incident: &str, ip: &str, severity: Severity) -> Finding {
        Finding {
            detector: "failed_login_burst",
            severity,
            user: None,
            user_sub: None,
            ip: Some(ip.into()),
            user_pool_id: Some("us-east-1_TEST".into()),
            region: None,
            account: None,
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            detected_at: Timestamp(0),
            count: 10,
            summary: String::new(),
            evidence: serde_json::json!({}),
            incident_id: incident.into(),
            case_id: None,
            rule: rule.into(),
            status: Status::Open,
        }
    }

    pub(crate) fn policy() -> BlockPolicy {
        BlockPolicy {
            rules: vec!["failed_login_burst_ip".into()],
            min_severity: Severity::High,
            min_case_severity: None,
            duration: Span::hours(1),
            repeat_factor: 4,
            max_duration: Span::hours(24),
            ipv6_prefix: 64,
            allow_cidrs: vec![],
            allow_users: vec![],
            max_shared_users: 10,
        }
    }

    fn block(s: &mut Store, incident: &str, ip: &str, sev: Severity, now: i64, cap: usize) -> Decision {
        let f = finding("failed_login_burst_ip", incident, ip, sev);
        s.block(network(ip, 64).unwrap(), &f, &policy(), cap, now)
    }

    #[test]
    fn entries_are_host_routes_or_the_ipv6_prefix() {
        assert_eq!(network("203.0.113.7", 64).unwrap().to_string(), "203.0.113.7/32");
        assert_eq!(network("2001:db8:1:2:3:4:5:6", 64).unwrap().to_string(), "2001:db8:1:2::/64");
        assert_eq!(network("2001:db8:1:2:3:4:5:6", 128).unwrap().to_string(), "2001:db8:1:2:3:4:5:6/128");
        assert_eq!(network("2001:db8:1:2::/64", 128).unwrap().to_string(), "2001:db8:1:2::/64");
        assert_eq!(network("not an address", 64), None);
    }

    #[test]
    fn a_repeat_offender_is_blocked_longer_up_to_the_longest() {
        let mut s = Store::default();
        let hour = 3_600_000;
        assert_eq!(
            block(&mut s, "a", "198.51.100.1", Severity::High, 0, 10),
            Decision::Added { addr: "198.51.100.1/32".into(), expires_ms: hour, evicted: None }
        );
        assert_eq!(block(&mut s, "a", "198.51.100.1", Severity::High, 1, 10), Decision::AlreadyActed);
        // Expired and removed; a second incident from the same address gets 4 h, a third 16 h, then 24 h.
        s.expire(hour);
        s.applied(&Plan { removed: vec!["198.51.100.1/32".into()], ..Plan::default() });
        assert!(s.blocks.is_empty());
        assert!(
            matches!(block(&mut s, "b", "198.51.100.1", Severity::High, hour, 10), Decision::Added { expires_ms, .. } if expires_ms == hour + 4 * hour)
        );
        assert!(
            matches!(block(&mut s, "c", "198.51.100.1", Severity::High, hour, 10), Decision::Extended { expires_ms, .. } if expires_ms == hour + 16 * hour)
        );
        assert!(
            matches!(block(&mut s, "d", "198.51.100.1", Severity::High, hour, 10), Decision::Extended { expires_ms, .. } if expires_ms == hour + 24 * hour)
        );
    }

    #[test]
    fn blocks_reach_the_writer_only_once_checkpointed() {
        let mut s = Store::default();
        block(&mut s, "a", "198.51.100.1", Severity::High, 0, 10);
        assert_eq!(s.prepare(false, &[]), None);
        assert!(s.plan(false, &[], 10).is_empty());
        s.make_visible();
        // Marked as being added, and written only once that mark is checkpointed too.
        assert!(s.prepare(false, &[]).is_some());
        assert!(s.plan(false, &[], 10).is_empty());
        s.make_visible();
        assert_eq!(s.plan(false, &[], 10).added, ["198.51.100.1/32"]);
    }

    #[test]
    fn a_block_written_just_before_a_crash_is_known_as_authwatchs_after_the_restart() {
        let mut s = Store::default();
        block(&mut s, "a", "198.51.100.1", Severity::High, 0, 10);
        s.make_visible();
        s.prepare(false, &[]);
        s.make_visible();
        let plan = s.plan(false, &[], 10);
        // The write went through; the process died before recording it. The restart reads the checkpoint.
        let mut s: Store = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        s.make_visible();
        assert_eq!(s.prepare(false, &plan.addresses), None);
        let again = s.plan(false, &plan.addresses, 10);
        assert_eq!((again.added.len(), again.confirmed.clone()), (0, vec!["198.51.100.1/32".to_string()]));
        s.applied(&again);
        assert_eq!(s.blocks["198.51.100.1/32"].state, BlockState::Active);
        s.expire(i64::MAX);
        assert_eq!(s.plan(false, &plan.addresses, 10).removed, ["198.51.100.1/32"]);
    }

    #[test]
    fn entries_authwatch_did_not_add_are_never_removed() {
        let mut s = Store::default();
        block(&mut s, "a", "198.51.100.1", Severity::High, 0, 10);
        block(&mut s, "b", "198.51.100.2", Severity::High, 0, 10);
        s.make_visible();
        // Someone else had .2 in the set already, and has .9.
        let current = vec!["198.51.100.2/32".to_string(), "198.51.100.9/32".to_string()];
        s.prepare(false, &current);
        s.make_visible();
        assert_eq!(s.blocks["198.51.100.2/32"].state, BlockState::Foreign);
        let plan = s.plan(false, &current, 10);
        assert_eq!(plan.added, ["198.51.100.1/32"]);
        s.applied(&plan);
        // Both expire: only authwatch's own entry leaves the set.
        s.expire(10 * 3_600_000);
        let plan = s.plan(false, &plan.addresses, 10);
        assert_eq!(plan.removed, ["198.51.100.1/32"]);
        assert_eq!(plan.addresses, ["198.51.100.2/32", "198.51.100.9/32"]);
        s.applied(&plan);
        assert!(s.blocks.is_empty());
    }

    #[test]
    fn a_full_set_gives_up_the_lowest_severity_then_the_soonest_to_expire() {
        let mut s = Store::default();
        block(&mut s, "a", "198.51.100.1", Severity::Critical, 0, 2);
        block(&mut s, "b", "198.51.100.2", Severity::High, 0, 2);
        // A third, as severe as .2 but expiring later: .2 is given up.
        assert_eq!(
            block(&mut s, "c", "198.51.100.3", Severity::High, 1000, 2),
            Decision::Added {
                addr: "198.51.100.3/32".into(),
                expires_ms: 1000 + 3_600_000,
                evicted: Some("198.51.100.2/32".into())
            }
        );
        // A fourth ranking lowest is not blocked.
        assert_eq!(
            block(&mut s, "d", "198.51.100.4", Severity::High, 0, 2),
            Decision::Overflow { addr: "198.51.100.4/32".into() }
        );
        assert_eq!(s.overflow, 2);
        // Entries of others count against the limit at write time: one of ours gives way.
        s.make_visible();
        s.prepare(false, &[]);
        s.make_visible();
        let plan = s.plan(false, &["192.0.2.1/32".to_string()], 2);
        assert_eq!(plan.evicted, ["198.51.100.3/32"]);
        assert_eq!(plan.addresses.len(), 2);
        assert!(plan.addresses.contains(&"192.0.2.1/32".to_string()));
    }

    #[test]
    fn an_unblock_ends_the_block_and_a_missing_written_block_is_put_back() {
        let mut s = Store::default();
        block(&mut s, "a", "198.51.100.1", Severity::High, 0, 10);
        s.make_visible();
        s.prepare(false, &[]);
        s.make_visible();
        let plan = s.plan(false, &[], 10);
        s.applied(&plan);
        // Removed by hand from the set: authwatch puts it back while the block stands.
        assert_eq!(s.plan(false, &[], 10).added, ["198.51.100.1/32"]);
        assert_eq!(s.unblock("198.51.100.1"), Ok(BlockState::Active));
        assert_eq!(s.plan(false, &plan.addresses, 10).removed, ["198.51.100.1/32"]);
        assert!(s.unblock("192.0.2.1").is_err());
    }

    #[test]
    fn what_was_acted_on_is_forgotten_after_a_week_and_offences_after_a_month() {
        let mut s = Store::default();
        block(&mut s, "a", "198.51.100.1", Severity::High, 0, 10);
        let day = 24 * 3_600_000;
        s.expire(6 * day);
        assert!(s.acted_on("a|198.51.100.1/32", "block") && s.offences.contains_key("198.51.100.1/32"));
        s.expire(8 * day);
        assert!(!s.acted_on("a|198.51.100.1/32", "block"), "a week: no restart re-reads that incident any more");
        assert!(s.offences.contains_key("198.51.100.1/32"), "still a repeat offender");
        s.expire(31 * day);
        assert!(s.offences.is_empty());
    }

    #[test]
    fn each_containment_action_is_queued_once_per_case_and_account() {
        let mut s = Store::default();
        let mut f = finding("account_takeover", "t1", "198.51.100.1", Severity::Critical);
        f.case_id = Some("case-1".into());
        // The travel finding of the same account in the same case: contained already.
        let mut travel = finding("impossible_travel", "t2", "203.0.113.5", Severity::High);
        travel.case_id = Some("case-1".into());
        assert_eq!(s.queue_action(&f, ContainAction::GlobalSignOut, "alice", "us-east-1_TEST", 0), Queued::Queued);
        assert_eq!(
            s.queue_action(&f, ContainAction::GlobalSignOut, "alice", "us-east-1_TEST", 1),
            Queued::AlreadyActed
        );
        assert_eq!(
            s.queue_action(&travel, ContainAction::GlobalSignOut, "alice", "us-east-1_TEST", 1),
            Queued::AlreadyActed
        );
        assert_eq!(s.queue_action(&f, ContainAction::Disable, "alice", "us-east-1_TEST", 1), Queued::Queued);
        assert_eq!(s.next_action(), None, "not before the checkpoint");
        s.make_visible();
        let a = s.next_action().unwrap();
        s.action_finished(a.seq);
        assert_eq!(s.next_action().unwrap().action, ContainAction::Disable);
        // Saved and read back: the record of what was done survives a restart.
        let back: Store = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert!(back.acted_on("case-1|alice", "global_sign_out"));
        assert_eq!(back.actions.len(), 1);
    }
}
