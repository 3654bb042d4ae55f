//! `slow_brute_force`: one account's failures paced over many hours, from one or a few addresses, with no
//! success in between: guessing kept under every burst threshold.
//!
//! Per user the state is a fixed-size sketch, not the events: failures per hour of the window (a ring of
//! 24 counters for a one-day window), a histogram of the gaps between failures (for the median pace) and
//! up to `max_distinct_ips` + 1 address hashes. A success clears it; when an incident is open, that
//! success is reported as the guessing having worked.

use serde::Deserialize;
use serde_json::json;

use super::incident::Incident;
use super::registry::Registered;
use super::rule::{Rule, Seen};
use super::window::{KeyedState, LastSeen};
use super::{elapsed, DetectorStats, EngineSettings, IncidentBook, Summarize};
use crate::event::Outcome;
use crate::finding::{Finding, Severity};
use crate::spec::{KeyKind, Spec};
use crate::time::{Span, Timestamp};

/// Slots of the failure ring: the window is divided into this many.
const SLOTS: usize = 24;
/// Upper bounds of the gap histogram's bins, in minutes (the last bin is open).
const GAP_BINS_MIN: [i64; 7] = [1, 2, 5, 10, 20, 60, 180];
/// Addresses remembered per user: `max_distinct_ips` may be at most this minus one.
const MAX_IPS: usize = 4;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowParams {
    /// The failures come from at most this many addresses (more is `distributed_brute_force`'s case).
    pub max_distinct_ips: usize,
    /// The median gap between failures is at least this long: paced, not a burst.
    pub min_median_gap: Span,
}

pub struct SlowBruteForce {
    params: SlowParams,
    users: KeyedState<Sketch>,
    /// Length of one ring slot.
    slot: Span,
}

/// One user's failures since their last success, as a fixed-size sketch.
struct Sketch {
    /// Failures per slot: slot number (time / slot length) `n` is at `n mod SLOTS`; the newest is the
    /// slot of `last` (derived rather than stored: every user with a failure in the window has a
    /// sketch).
    ring: [u16; SLOTS],
    gaps: [u16; GAP_BINS_MIN.len() + 1],
    last: Timestamp,
    first: Timestamp,
    ips: [u64; MAX_IPS],
    ip_count: u8,
}

impl LastSeen for Sketch {
    fn last_seen(&self) -> Timestamp {
        self.last
    }
}

impl Registered for SlowBruteForce {
    const ID: &'static str = "slow_brute_force";
    const KEY: Option<KeyKind> = Some(KeyKind::User);
    type Params = SlowParams;

    fn check_params(p: &SlowParams) -> Result<(), String> {
        if p.max_distinct_ips == 0 || p.max_distinct_ips >= MAX_IPS {
            return Err(format!("max_distinct_ips must be between 1 and {}", MAX_IPS - 1));
        }
        if p.min_median_gap < Span::mins(1) {
            return Err("min_median_gap must be at least 1m".into());
        }
        Ok(())
    }

    fn check_spec(_p: &SlowParams, spec: &Spec) -> Result<(), String> {
        if spec.window < Span::hours(1) {
            return Err(format!("window = {} is not slow: use at least 1h", spec.window));
        }
        if spec.threshold > u64::from(u16::MAX) {
            return Err("threshold must be at most 65535".into());
        }
        Ok(())
    }
}

impl Rule for SlowBruteForce {
    fn new(spec: &Spec, params: SlowParams, _settings: &EngineSettings) -> Self {
        let slot = Span((spec.window.millis() / SLOTS as i64).max(1));
        SlowBruteForce { params, users: KeyedState::new(spec.max_keys, spec.window), slot }
    }

    /// Each user's sketch is theirs alone.
    fn per_key(&self, _spec: &Spec) -> bool {
        true
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, key, clock, .. } = seen;
        let summarize: Summarize = Self::summary;
        let h = key.hash;
        match ev.outcome {
            Outcome::Success => {
                self.users.remove(h);
                if let Some(inc) = book.get_mut(h) {
                    // The guessing worked: the account is likely taken over.
                    inc.add(ev.time, ev.outcome, key.aux, key.aux_name, ev.event_id.as_deref());
                    inc.extra.insert("succeeded_at".into(), json!(ev.time.to_string()));
                    inc.severity = inc.severity.max(Severity::Critical);
                    out.push(inc.to_finding(spec, crate::finding::Status::Escalated, summarize(spec, inc)));
                }
                return;
            }
            Outcome::Failure => {}
            _ => return,
        }
        let slot_len = self.slot.millis();
        let s = self.users.get_or_insert_with(h, clock, || Sketch::new(ev.time));
        s.add(ev.time, slot_len, key.aux);
        if let Some(inc) = book.get_mut(h) {
            inc.add(ev.time, ev.outcome, key.aux, key.aux_name, ev.event_id.as_deref());
            inc.learn(ev, spec.key);
            book.rerate(h, spec, summarize, out);
            return;
        }
        let failures = s.failures();
        let median = s.median_gap_at_least();
        let fires = failures >= spec.threshold
            && usize::from(s.ip_count) <= self.params.max_distinct_ips
            && median >= self.params.min_median_gap;
        if !fires {
            return;
        }
        let mut inc = Incident::open(spec, key.key, ev, s.first);
        inc.add_counts(s.first, ev.time, failures.saturating_sub(1), 0);
        for ip in &s.ips[..usize::from(s.ip_count)] {
            inc.add_distinct(*ip);
        }
        inc.add(ev.time, ev.outcome, key.aux, key.aux_name, ev.event_id.as_deref());
        inc.extra.insert("median_gap_at_least".into(), json!(median.to_string()));
        inc.extra.insert("paced_over".into(), json!(ev.time.since(s.first).to_string()));
        inc.severity = spec.severity_at(inc.count);
        book.open(h, inc, spec, summarize, out);
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        let outcome = if inc.successes > 0 { ", then a successful sign-in" } else { "" };
        format!(
            "{} failed sign-ins for {} paced over {} from {} address(es){outcome}",
            inc.failures,
            inc.label(),
            elapsed(inc),
            inc.distinct()
        )
    }

    fn settle(&mut self, now: Timestamp) {
        self.users.sweep(now);
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.users.len();
        stats.evicted_keys = self.users.evicted;
    }
}

impl Sketch {
    fn new(t: Timestamp) -> Sketch {
        Sketch {
            ring: [0; SLOTS],
            gaps: [0; GAP_BINS_MIN.len() + 1],
            last: t,
            first: t,
            ips: [0; MAX_IPS],
            ip_count: 0,
        }
    }

    fn add(&mut self, t: Timestamp, slot_len: i64, ip: u64) {
        let slot = t.millis().div_euclid(slot_len);
        let newest_slot = self.last.millis().div_euclid(slot_len);
        if slot > newest_slot {
            // Slots that left the window are cleared as the ring turns.
            let turned = (slot - newest_slot).min(SLOTS as i64);
            for k in 1..=turned {
                self.ring[(newest_slot + k).rem_euclid(SLOTS as i64) as usize] = 0;
            }
            if slot - newest_slot >= SLOTS as i64 {
                // Idle for a whole window: a new series of failures.
                *self = Sketch::new(t);
            }
            // `last` moves to `t` below: `t` is in a later slot, so it is later.
        } else if slot <= newest_slot - SLOTS as i64 {
            return;
        }
        let i = slot.rem_euclid(SLOTS as i64) as usize;
        self.ring[i] = self.ring[i].saturating_add(1);
        if t > self.last && self.failures() > 1 {
            let gap_min = t.since(self.last).millis() / 60_000;
            let bin = GAP_BINS_MIN.iter().position(|b| gap_min < *b).unwrap_or(GAP_BINS_MIN.len());
            self.gaps[bin] = self.gaps[bin].saturating_add(1);
        }
        self.last = self.last.max(t);
        self.first = self.first.min(t);
        let n = usize::from(self.ip_count);
        if !self.ips[..n].contains(&ip) && n < MAX_IPS {
            self.ips[n] = ip;
            self.ip_count += 1;
        }
    }

    fn failures(&self) -> u64 {
        self.ring.iter().map(|c| u64::from(*c)).sum()
    }

    /// The lower bound of the bin holding the median gap.
    fn median_gap_at_least(&self) -> Span {
        let total: u32 = self.gaps.iter().map(|g| u32::from(*g)).sum();
        if total == 0 {
            return Span(0);
        }
        let mut seen = 0;
        for (bin, count) in self.gaps.iter().enumerate() {
            seen += u32::from(*count);
            if seen * 2 >= total {
                return Span::mins(if bin == 0 { 0 } else { GAP_BINS_MIN[bin - 1] });
            }
        }
        Span(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sketch_counts_a_day_of_paced_failures_and_turns_with_time() {
        let slot = Span::hours(1).millis();
        let start = Timestamp(1_700_000_000_000);
        let mut s = Sketch::new(start);
        for i in 0..30 {
            s.add(start.saturating_add(Span::mins(8 * i)), slot, 7);
        }
        assert_eq!(s.failures(), 30);
        assert_eq!(s.median_gap_at_least(), Span::mins(5));
        assert_eq!(s.ip_count, 1);
        // A day later the old slots have left the window.
        s.add(start.saturating_add(Span::hours(30)), slot, 7);
        assert_eq!(s.failures(), 1);
    }

    #[test]
    fn the_sketch_is_small() {
        // Every user with a failure in the day pays it, with 16 bytes of slot and about 8 of table. Grow
        // it knowingly.
        assert!(std::mem::size_of::<Sketch>() <= 120, "{}", std::mem::size_of::<Sketch>());
    }
}
