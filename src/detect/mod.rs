//! Detection: runs every enabled rule over sign-in events in event-time order and yields findings.
//!
//! The [`Engine`] owns a small reorder buffer (bounded lateness, `detection.md` "Time") and one
//! [`Detector`] per enabled spec. Events go in with [`Engine::push`]; findings come out as incidents
//! open, escalate and close. Replay calls [`Engine::finish`] at the end of input; the monitor calls
//! [`Engine::advance_watermark`] with a wall-clock watermark so windows close when traffic stops.

pub mod account_takeover;
pub mod cognito_risk;
pub mod credential_stuffing;
pub mod distributed_brute_force;
pub mod failed_login_burst;
pub mod impossible_travel;
pub mod incident;
pub mod password_spray;
pub mod window;
pub mod windowed;

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use serde::Serialize;

use crate::drop_later::drop_later;
use crate::event::SignInEvent;
use crate::finding::{Finding, Status};
use crate::pipeline::order::Orderer;
use crate::spec::{AllowList, DetectorKind, Spec, SpecSet};
use crate::time::{Span, Timestamp};
use incident::Incident;

/// Events up to this far behind the newest one seen are put back in order before detection
/// (`detection.md`: default 60 s).
pub const DEFAULT_LATENESS: Span = Span::secs(60);
/// IPv6 addresses are grouped by this prefix: attackers rotate addresses inside one /64.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// Cap on events held in the reorder buffer; beyond it the oldest are released early (counted, and shown
/// in the summary). A typical event costs about 1 KB here ([`crate::pipeline::order::held_size`]), so
/// the buffer stays near 100 MB: a flood of 20,000 events a second would otherwise hold 1.2 million events
/// for the 60 s lateness. Normal traffic (under about 1,600 events a second) never reaches it, and
/// in-order input loses nothing by it.
pub const MAX_REORDER_EVENTS: usize = 100_000;
/// Cap on the reorder buffer's memory, for events far larger than typical (long names, up to the record
/// limit each), which reach it before [`MAX_REORDER_EVENTS`]: the monitor's `--max-held-mb` default.
pub const MAX_REORDER_BYTES: usize = 256 << 20;
/// Events the engine is done with, freed together on another thread (about 400 KB).
const SPENT_BATCH: usize = 1024;

/// Settings shared by every rule.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub lateness: Span,
    pub ipv6_prefix: u8,
    /// Added to every rule's own allow-list.
    pub allow: AllowList,
    /// A MaxMind City database (`--geoip`): locates sign-ins without a usable city name.
    pub geo: Option<Arc<crate::geo::GeoIp>>,
    /// Locate by address first, names second (`--prefer-geoip`); only meaningful with `geo`.
    pub prefer_geoip: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lateness: DEFAULT_LATENESS,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            allow: AllowList::default(),
            geo: None,
            prefer_geoip: false,
        }
    }
}

/// The keys of one event, computed once and shared by every detector: the texts for evidence and their
/// hashes ([`window::key_hash`]), which every rule looks its state up by. A missing key hashes to
/// [`window::NO_COUNTERPART`].
#[derive(Debug, Clone)]
pub struct Keys<'a> {
    /// The user's identity: the sub, else the name (see [`UserAliases`]).
    pub user: Option<&'a str>,
    /// The user's name as shown, when the event has one.
    pub user_name: Option<&'a str>,
    /// The address as grouped: IPv4 as is, IPv6 as its prefix (`2001:db8:1:2::/64`).
    pub ip: Option<IpKey>,
    /// `key_hash` of `user`.
    pub user_hash: u64,
    /// `key_hash` of `ip`.
    pub ip_hash: u64,
}

impl<'a> Keys<'a> {
    /// The keys of one event on its own: the sub, else the name, with no name learned from earlier
    /// events ([`UserAliases`], which the engine applies). For benches and tests that drive one detector.
    pub fn of(ev: &'a SignInEvent, ipv6_prefix: u8) -> Keys<'a> {
        let user_name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let user = ev.user_sub.as_deref().filter(|s| !s.is_empty()).or(user_name);
        Keys::new(user, user_name, ev.ip.map(|ip| IpKey::group(ip, ipv6_prefix)))
    }

    pub fn new(user: Option<&'a str>, user_name: Option<&'a str>, ip: Option<IpKey>) -> Keys<'a> {
        Keys::hashed(user.map(|u| (u, window::key_hash(u))), user_name, ip)
    }

    /// As [`Keys::new`], with the user's hash already known.
    pub fn hashed(user: Option<(&'a str, u64)>, user_name: Option<&'a str>, ip: Option<IpKey>) -> Keys<'a> {
        let ip_hash = ip.as_deref().map_or(window::NO_COUNTERPART, window::key_hash);
        let (user, user_hash) = user.map_or((None, window::NO_COUNTERPART), |(u, h)| (Some(u), h));
        Keys { user, user_name, ip, user_hash, ip_hash }
    }
}

/// Most user-name → sub pairs remembered (about 80 bytes each); past it the map starts over.
pub const MAX_USER_ALIASES: usize = 200_000;

/// Decides which key stands for a user. The sub is the identity: it never changes and is unique, while
/// names can be case-insensitive aliases, and CloudTrail logs only the sub. An event with a name but no
/// sub (a name that does not exist, or a record that left the sub out) is keyed by the sub learned from
/// earlier events that carried both, else by the name.
///
/// Names and subs are known by their [`window::key_hash`] (a 64-bit keyed hash: two names meeting by
/// chance is as likely as two keys of a rule doing so), which keeps the common case, a pair already
/// known, to two hashes and one comparison of them, without reading the remembered sub's text.
#[derive(Default)]
pub struct UserAliases {
    /// Name hash → the sub's hash and text.
    sub_by_name: HashMap<u64, (u64, Box<str>), window::PreHashed>,
}

impl UserAliases {
    /// The key for the user of `ev`, with its [`window::key_hash`].
    pub fn key<'a>(&'a mut self, ev: &'a SignInEvent) -> Option<(&'a str, u64)> {
        let name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let sub = ev.user_sub.as_deref().filter(|s| !s.is_empty());
        match (name, sub) {
            (Some(name), Some(sub)) => {
                let (nh, sh) = (window::key_hash(name), window::key_hash(sub));
                if self.sub_by_name.get(&nh).is_none_or(|(known, _)| *known != sh) {
                    if self.sub_by_name.len() >= MAX_USER_ALIASES {
                        self.sub_by_name.clear();
                    }
                    self.sub_by_name.insert(nh, (sh, Box::from(sub)));
                }
                Some((sub, sh))
            }
            (None, Some(sub)) => Some((sub, window::key_hash(sub))),
            (Some(name), None) => {
                let nh = window::key_hash(name);
                Some(self.sub_by_name.get(&nh).map_or((name, nh), |(sh, sub)| (&**sub, *sh)))
            }
            (None, None) => None,
        }
    }
}

/// Longest grouped address text: a full IPv6 address with an embedded IPv4 part (45) and "/128".
const IP_KEY_BYTES: usize = 50;

/// A grouped address as text, formatted in place: every event has one, and allocating a `String` for it
/// was a measurable share of the engine's time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IpKey {
    len: u8,
    bytes: [u8; IP_KEY_BYTES],
}

impl IpKey {
    /// The address as detectors group it: IPv6 by prefix (128 keeps single addresses).
    pub fn group(ip: IpAddr, ipv6_prefix: u8) -> IpKey {
        let mut key = IpKey { len: 0, bytes: [0; IP_KEY_BYTES] };
        // Cannot fail: the longest address text fits (IP_KEY_BYTES).
        let _ = match ip {
            IpAddr::V4(v4) => {
                key.push_v4(v4);
                Ok(())
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => {
                    key.push_v4(v4);
                    Ok(())
                }
                None if ipv6_prefix >= 128 => write!(key, "{v6}"),
                None => match ipnet::Ipv6Net::new(v6, ipv6_prefix) {
                    Ok(net) => write!(key, "{}", net.trunc()),
                    Err(_) => write!(key, "{v6}"),
                },
            },
        };
        key
    }

    /// Dotted-decimal text of `v4`, written directly: every event has an address, and `fmt` machinery
    /// was a measurable share of the engine's time. Fits: the key is empty and 15 bytes at most.
    fn push_v4(&mut self, v4: std::net::Ipv4Addr) {
        let mut at = self.len as usize;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                self.bytes[at] = b'.';
                at += 1;
            }
            if octet >= 100 {
                self.bytes[at] = b'0' + octet / 100;
                at += 1;
            }
            if octet >= 10 {
                self.bytes[at] = b'0' + octet / 10 % 10;
                at += 1;
            }
            self.bytes[at] = b'0' + octet % 10;
            at += 1;
        }
        self.len = at as u8;
    }

    pub fn as_str(&self) -> &str {
        // Only `write_str` and `push_v4` fill the bytes, with whole `&str`s, so they are valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl fmt::Write for IpKey {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = self.len as usize;
        let end = start + s.len();
        if end > IP_KEY_BYTES {
            return Err(fmt::Error);
        }
        self.bytes[start..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl Deref for IpKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether two addresses fall in one group ([`IpKey::group`]) without formatting either: the same IPv4
/// address (an IPv4-mapped IPv6 address counts as its IPv4 one), or IPv6 addresses in the same prefix.
pub fn same_group(a: IpAddr, b: IpAddr, ipv6_prefix: u8) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (v4(a), v4(b)) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x == y,
        (IpAddr::V6(x), IpAddr::V6(y)) if ipv6_prefix < 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(ipv6_prefix)).unwrap_or(0);
            u128::from(x) & mask == u128::from(y) & mask
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => x == y,
        _ => false,
    }
}

/// An address as detectors group it: IPv6 by prefix (128 keeps single addresses).
pub fn group_ip(ip: IpAddr, ipv6_prefix: u8) -> String {
    IpKey::group(ip, ipv6_prefix).as_str().to_owned()
}

/// Figures one rule reports about itself.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DetectorStats {
    pub rule: String,
    pub detector: &'static str,
    /// Keys with state right now.
    pub tracked_keys: usize,
    /// Keys dropped before they expired because `max_keys` was reached: the rule was saturated.
    pub evicted_keys: u64,
    /// Late events whose window had already passed for this rule.
    pub late_unplaced: u64,
    /// Events ignored because of an allow-list.
    pub allowlisted: u64,
    /// Events the rule needed a location for and could not place (unknown or ambiguous names, no IP
    /// database record, a private or reserved address). Only `impossible_travel` locates events.
    pub unlocated: u64,
    pub open_incidents: usize,
    pub incidents: u64,
}

/// One rule at work. Implementations keep per-key state bounded by their spec.
pub trait Detector: Send {
    fn spec(&self) -> &Spec;
    /// Takes one event (in event-time order, except late events beyond the reorder buffer).
    fn observe(&mut self, ev: &SignInEvent, keys: &Keys<'_>, out: &mut Vec<Finding>);
    /// Event time has reached `now`: close incidents that went quiet.
    fn advance(&mut self, now: Timestamp, out: &mut Vec<Finding>);
    /// End of input: close every open incident.
    fn finish(&mut self, out: &mut Vec<Finding>);
    fn stats(&self) -> DetectorStats;
    /// The earliest `first_seen` among this rule's open incidents. The monitor checkpoints it so a
    /// restart re-reads far enough back to rebuild every open incident (no detector state is saved).
    fn earliest_open(&self) -> Option<Timestamp>;
}

/// Builds the detector for a spec.
pub fn build(spec: &Spec, settings: &EngineSettings) -> Box<dyn Detector> {
    let mut spec = spec.clone();
    spec.allow.extend(&settings.allow);
    match spec.detector {
        DetectorKind::FailedLoginBurst => Box::new(windowed::WindowDetector::new(spec, failed_login_burst::Rule)),
        DetectorKind::DistributedBruteForce => {
            Box::new(windowed::WindowDetector::new(spec, distributed_brute_force::Rule))
        }
        DetectorKind::CredentialStuffing => Box::new(windowed::WindowDetector::new(spec, credential_stuffing::Rule)),
        DetectorKind::PasswordSpray => Box::new(windowed::WindowDetector::new(spec, password_spray::Rule)),
        DetectorKind::AccountTakeover => Box::new(account_takeover::AccountTakeover::new(spec)),
        DetectorKind::CognitoRisk => Box::new(cognito_risk::CognitoRisk::new(spec)),
        DetectorKind::ImpossibleTravel => Box::new(impossible_travel::ImpossibleTravel::new(spec, settings)),
    }
}

/// Figures about the event stream as the engine saw it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    /// Arrived out of order but within the lateness bound: put back in order.
    pub reordered: u64,
    /// Arrived later than the lateness bound: still given to the rules whose window was open.
    pub late: u64,
    /// Released before the lateness bound because the reorder buffer was full ([`Orderer::forced`]).
    pub forced_releases: u64,
    pub first_event: Option<Timestamp>,
    pub last_event: Option<Timestamp>,
}

/// Runs the rules. Single-threaded: callers decode in parallel and feed events in a deterministic order.
pub struct Engine {
    detectors: Vec<Box<dyn Detector>>,
    settings: EngineSettings,
    /// Reorder buffer on (time, arrival): equal times leave in arrival order.
    buffer: Orderer,
    /// Newest event time pushed.
    max_seen: Option<Timestamp>,
    /// Time of the last event released to the rules.
    released: Option<Timestamp>,
    aliases: UserAliases,
    stats: EngineStats,
    /// Events the rules are done with, freed a batch at a time on another thread ([`drop_later`]).
    spent: Vec<SignInEvent>,
}

impl Engine {
    pub fn new(specs: &SpecSet, settings: EngineSettings) -> Engine {
        let detectors = specs.enabled().map(|s| build(s, &settings)).collect();
        Engine {
            detectors,
            settings,
            buffer: Orderer::capped(MAX_REORDER_BYTES).at_most(MAX_REORDER_EVENTS),
            max_seen: None,
            released: None,
            aliases: UserAliases::default(),
            stats: EngineStats::default(),
            spent: Vec::new(),
        }
    }

    /// The rules are done with `ev`: it is freed with others on another thread ([`drop_later`]).
    fn done_with(&mut self, ev: SignInEvent) {
        self.spent.push(ev);
        if self.spent.len() >= SPENT_BATCH {
            let batch = std::mem::replace(&mut self.spent, Vec::with_capacity(SPENT_BATCH));
            drop_later(batch);
        }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Takes one event; findings that result (open, escalated, closed) are appended to `out`.
    pub fn push(&mut self, ev: SignInEvent, out: &mut Vec<Finding>) {
        self.stats.events += 1;
        self.stats.first_event = Some(self.stats.first_event.map_or(ev.time, |t| t.min(ev.time)));
        self.stats.last_event = Some(self.stats.last_event.map_or(ev.time, |t| t.max(ev.time)));
        if let Some(released) = self.released {
            if ev.time < released {
                // Too late for the buffer: the rules place it if their window is still open.
                self.stats.late += 1;
                self.process(&ev, out);
                self.done_with(ev);
                return;
            }
        }
        if self.max_seen.is_some_and(|m| ev.time < m) {
            self.stats.reordered += 1;
        }
        self.max_seen = Some(self.max_seen.map_or(ev.time, |m| m.max(ev.time)));
        self.buffer.push(ev);
        let horizon = self.max_seen.map(|m| m.saturating_sub(self.settings.lateness));
        self.release_until(horizon, out);
        while let Some(ev) = self.buffer.pop_over_cap() {
            self.release(ev, out);
        }
        self.stats.forced_releases = self.buffer.forced();
    }

    /// The monitor's wall-clock watermark: no event older than `watermark` is expected any more beyond
    /// the lateness bound, so buffered events up to `watermark - lateness` are released and quiet
    /// incidents close even when no new events arrive.
    pub fn advance_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Finding>) {
        let horizon = watermark.saturating_sub(self.settings.lateness);
        self.release_until(Some(horizon), out);
        if self.released.is_none_or(|r| r < horizon) {
            self.released = Some(horizon);
        }
        self.advance_detectors(horizon, out);
    }

    /// End of input: releases everything and closes every incident.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        self.release_until(None, out);
        let mut closed = Vec::new();
        for d in &mut self.detectors {
            d.finish(&mut closed);
        }
        sort_closed(&mut closed);
        out.extend(closed);
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn detector_stats(&self) -> Vec<DetectorStats> {
        self.detectors.iter().map(|d| d.stats()).collect()
    }

    /// The earliest `first_seen` of any open incident, across rules (see [`Detector::earliest_open`]).
    pub fn earliest_open(&self) -> Option<Timestamp> {
        self.detectors.iter().filter_map(|d| d.earliest_open()).min()
    }

    /// Events waiting in the reorder buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Releases buffered events with time <= `horizon` (all when None), in order.
    fn release_until(&mut self, horizon: Option<Timestamp>, out: &mut Vec<Finding>) {
        while let Some(time) = self.buffer.next_time() {
            if horizon.is_some_and(|h| time > h) {
                break;
            }
            if let Some(ev) = self.buffer.pop() {
                self.release(ev, out);
            }
        }
    }

    /// Gives the rules the next event in time order.
    fn release(&mut self, ev: SignInEvent, out: &mut Vec<Finding>) {
        let advanced = self.released.is_none_or(|r| ev.time > r);
        if advanced {
            self.released = Some(ev.time);
            self.advance_detectors(ev.time, out);
        }
        self.process(&ev, out);
        self.done_with(ev);
    }

    fn process(&mut self, ev: &SignInEvent, out: &mut Vec<Finding>) {
        let user = self.aliases.key(ev);
        let user_name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let keys = Keys::hashed(user, user_name, ev.ip.map(|ip| IpKey::group(ip, self.settings.ipv6_prefix)));
        for d in &mut self.detectors {
            d.observe(ev, &keys, out);
        }
    }

    fn advance_detectors(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        let mut closed = Vec::new();
        for d in &mut self.detectors {
            d.advance(now, &mut closed);
        }
        sort_closed(&mut closed);
        out.extend(closed);
    }
}

/// Incidents closing at the same moment leave in a fixed order, whatever order the rules' maps hold them.
fn sort_closed(closed: &mut [Finding]) {
    closed.sort_by(|a, b| {
        (a.last_seen, a.detected_at, &a.rule, &a.incident_id).cmp(&(
            b.last_seen,
            b.detected_at,
            &b.rule,
            &b.incident_id,
        ))
    });
}

/// The open incidents of one rule, by key hash, and the bookkeeping of opening and closing them.
#[derive(Default)]
pub struct IncidentBook {
    open: HashMap<u64, Incident, window::PreHashed>,
    pub opened: u64,
}

/// How a rule describes an incident in one line.
pub type Summarize = fn(&Spec, &Incident) -> String;

impl IncidentBook {
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The earliest `first_seen` of the open incidents.
    /// The figures every rule shares: which rule, and its incidents; the rule fills in its keys.
    pub fn stats(&self, spec: &Spec) -> DetectorStats {
        DetectorStats {
            rule: spec.id.clone(),
            detector: spec.detector.id(),
            open_incidents: self.open.len(),
            incidents: self.opened,
            ..DetectorStats::default()
        }
    }

    pub fn earliest_first_seen(&self) -> Option<Timestamp> {
        self.open.values().map(|i| i.first_seen).min()
    }

    pub fn get_mut(&mut self, h: u64) -> Option<&mut Incident> {
        self.open.get_mut(&h)
    }

    /// Closes the incident of `h` if it has been quiet for the cooldown as of `now`.
    pub fn close_if_quiet(
        &mut self,
        h: u64,
        now: Timestamp,
        spec: &Spec,
        summarize: Summarize,
        out: &mut Vec<Finding>,
    ) {
        if self.open.get(&h).is_some_and(|i| now.since(i.last_seen) > spec.cooldown) {
            if let Some(inc) = self.open.remove(&h) {
                out.push(inc.to_finding(spec, Status::Closed, summarize(spec, &inc)));
            }
        }
    }

    /// Registers a newly opened incident and reports it.
    pub fn open(&mut self, h: u64, inc: Incident, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        self.opened += 1;
        out.push(inc.to_finding(spec, Status::Open, summarize(spec, &inc)));
        self.open.insert(h, inc);
    }

    /// Re-rates the incident of `h` after it grew; reports an escalation when severity rose.
    pub fn rerate(&mut self, h: u64, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        if let Some(inc) = self.open.get_mut(&h) {
            let sev = spec.severity_at(inc.count);
            if sev > inc.severity {
                inc.severity = sev;
                out.push(inc.to_finding(spec, Status::Escalated, summarize(spec, inc)));
            }
        }
    }

    pub fn advance(&mut self, now: Timestamp, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        let quiet: Vec<u64> =
            self.open.iter().filter(|(_, i)| now.since(i.last_seen) > spec.cooldown).map(|(h, _)| *h).collect();
        for h in quiet {
            if let Some(inc) = self.open.remove(&h) {
                out.push(inc.to_finding(spec, Status::Closed, summarize(spec, &inc)));
            }
        }
    }

    pub fn finish(&mut self, spec: &Spec, summarize: Summarize, out: &mut Vec<Finding>) {
        for (_, inc) in self.open.drain() {
            out.push(inc.to_finding(spec, Status::Closed, summarize(spec, &inc)));
        }
    }
}

/// "14 failed sign-ins for jdoe from 203.0.113.7 in 3m21s": the elapsed part of a summary.
pub fn elapsed(inc: &Incident) -> Span {
    inc.last_seen.since(inc.first_seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_keys_read_as_std_formats_them() {
        for text in ["0.0.0.0", "255.255.255.255", "10.0.9.100", "203.0.113.7", "1.20.199.5", "::ffff:192.0.2.10"] {
            let ip: IpAddr = text.parse().expect("address");
            let v4 = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                v4 => v4,
            };
            assert_eq!(IpKey::group(ip, 64).as_str(), v4.to_string());
        }
    }

    #[test]
    fn same_group_agrees_with_the_grouped_text() {
        let ips: Vec<IpAddr> = [
            "203.0.113.7",
            "203.0.113.8",
            "::ffff:203.0.113.7",
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff::9",
            "2001:db8:1:3::1",
            "2001:db8::",
            "::",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        for prefix in [0, 1, 48, 64, 127, 128] {
            for &a in &ips {
                for &b in &ips {
                    let by_text = IpKey::group(a, prefix) == IpKey::group(b, prefix);
                    assert_eq!(same_group(a, b, prefix), by_text, "{a} {b} /{prefix}");
                }
            }
        }
    }
}
