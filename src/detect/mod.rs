//! Detection: runs every enabled rule over sign-in events in event-time order and yields findings.
//!
//! The [`Engine`] owns a small reorder buffer (bounded lateness, `detection.md` "Time") and one
//! [`Detector`] per enabled spec. Events go in with [`Engine::push`]; findings come out as incidents
//! open, escalate and close. Replay calls [`Engine::finish`] at the end of input; the monitor calls
//! [`Engine::advance_watermark`] with a wall-clock watermark so windows close when traffic stops.

pub mod account_takeover;
pub mod cognito_risk;
pub mod counting;
pub mod credential_stuffing;
pub mod detector;
pub mod distributed_brute_force;
pub mod failed_login_burst;
pub mod impossible_travel;
pub mod incident;
pub mod keys;
pub mod password_spray;
pub mod registry;
pub mod rule;
pub mod window;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::drop_later::drop_later;
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::spec::{AllowList, SpecSet};
use crate::time::{Span, Timestamp};

pub use detector::{Detector, DetectorStats};
pub use incident::{elapsed, IncidentBook, Summarize};
pub use keys::{group_ip, same_group, IpKey, Keys, UserAliases, MAX_USER_ALIASES};
pub use registry::build;

/// Events up to this far behind the newest one seen are put back in order before detection
/// (`detection.md`: default 60 s).
pub const DEFAULT_LATENESS: Span = Span::secs(60);
/// IPv6 addresses are grouped by this prefix: attackers rotate addresses inside one /64.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// Cap on events held in the reorder buffer; beyond it the oldest are released early (counted, and shown
/// in the summary). An event costs about 500 bytes here, so the buffer stays near 50 MB: a flood of
/// 20,000 events a second would otherwise hold 1.2 million events (600 MB) for the 60 s lateness. Normal
/// traffic (under about 1,600 events a second) never reaches it, and in-order input loses nothing by it.
pub const MAX_REORDER_EVENTS: usize = 100_000;
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

/// Figures about the event stream as the engine saw it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    /// Arrived out of order but within the lateness bound: put back in order.
    pub reordered: u64,
    /// Arrived later than the lateness bound: still given to the rules whose window was open.
    pub late: u64,
    /// Released before the lateness bound because the reorder buffer was full.
    pub forced_releases: u64,
    pub first_event: Option<Timestamp>,
    pub last_event: Option<Timestamp>,
}

struct Pending(SignInEvent);

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.0.time == other.0.time
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.time.cmp(&other.0.time)
    }
}

/// Events waiting for the lateness bound, leaving in (time, arrival) order. Most arrive in order and
/// queue in `in_order`, moved once in and once out; only an event older than the newest queued one goes
/// to the heap, whose sifting moves whole events (a third of the engine's time when all went there).
#[derive(Default)]
struct Reorder {
    /// Sorted by (time, arrival): each was at or after the one before it.
    in_order: VecDeque<(SignInEvent, u64)>,
    /// Min-heap on (time, arrival).
    out_of_order: BinaryHeap<Reverse<(Pending, u64)>>,
}

impl Reorder {
    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    fn push(&mut self, ev: SignInEvent, seq: u64) {
        if self.in_order.back().is_none_or(|(last, _)| last.time <= ev.time) {
            self.in_order.push_back((ev, seq));
        } else {
            self.out_of_order.push(Reverse((Pending(ev), seq)));
        }
    }

    /// Whether the next event to leave is the heap's.
    fn heap_first(&self) -> bool {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some((a, sa)), Some(Reverse((Pending(b), sb)))) => (b.time, *sb) < (a.time, *sa),
            (None, Some(_)) => true,
            _ => false,
        }
    }

    fn next_time(&self) -> Option<Timestamp> {
        if self.heap_first() {
            self.out_of_order.peek().map(|Reverse((Pending(ev), _))| ev.time)
        } else {
            self.in_order.front().map(|(ev, _)| ev.time)
        }
    }

    fn pop(&mut self) -> Option<SignInEvent> {
        if self.heap_first() {
            self.out_of_order.pop().map(|Reverse((Pending(ev), _))| ev)
        } else {
            self.in_order.pop_front().map(|(ev, _)| ev)
        }
    }
}

/// Runs the rules. Single-threaded: callers decode in parallel and feed events in a deterministic order.
pub struct Engine {
    detectors: Vec<Box<dyn Detector>>,
    settings: EngineSettings,
    /// Reorder buffer on (time, arrival sequence): equal times leave in arrival order.
    buffer: Reorder,
    seq: u64,
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
            buffer: Reorder::default(),
            seq: 0,
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
        self.seq += 1;
        self.buffer.push(ev, self.seq);
        let horizon = self.max_seen.map(|m| m.saturating_sub(self.settings.lateness));
        self.release_until(horizon, out);
        while self.buffer.len() > MAX_REORDER_EVENTS {
            self.stats.forced_releases += 1;
            self.release_one(out);
        }
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
            self.release_one(out);
        }
    }

    fn release_one(&mut self, out: &mut Vec<Finding>) {
        let Some(ev) = self.buffer.pop() else { return };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Origin, Outcome};

    #[test]
    fn reorder_releases_by_time_then_arrival() {
        let mut r = Reorder::default();
        let times = [5, 3, 5, 1, 7, 3, 7, 2];
        for (seq, t) in times.iter().enumerate() {
            let origin = Origin::new(Arc::from("t"), seq as u64);
            r.push(SignInEvent::new(Timestamp(*t), EventKind::SignIn, Outcome::Failure, origin), seq as u64);
        }
        assert_eq!(r.len(), times.len());
        let mut order = Vec::new();
        while let Some(time) = r.next_time() {
            let ev = r.pop().expect("next_time said there is one");
            assert_eq!(ev.time, time);
            order.push((ev.time.0, ev.origin.line));
        }
        assert_eq!(order, [(1, 3), (2, 7), (3, 1), (3, 5), (5, 0), (5, 2), (7, 4), (7, 6)]);
    }
}
