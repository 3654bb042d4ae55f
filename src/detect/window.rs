//! Window arithmetic: the per-key sliding window of recent events and the bounded map of keys.
//!
//! Everything here runs on event time passed in by the caller; nothing reads the wall clock. A window
//! holds the entries with `time > now - window`; entries may arrive out of order (late events are inserted
//! at their place); counters are kept incrementally so a rule's check is O(1).

use std::collections::hash_map::{Entry as MapEntry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use crate::event::Outcome;
use crate::time::{Span, Timestamp};

/// One event as a window remembers it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub time: Timestamp,
    pub outcome: Outcome,
    /// Counts toward the rule's threshold (its outcome is one the spec counts).
    pub counted: bool,
    /// Hash of the "other side": the user for an IP-keyed window, the address for a user-keyed one.
    pub aux: u64,
    /// The other side's text, for evidence (`None` when the event did not carry it).
    pub aux_name: Option<Box<str>>,
}

/// The sliding window of one key with incremental counters.
#[derive(Debug, Default)]
pub struct KeyWindow {
    entries: VecDeque<Entry>,
    /// Counted entries in the window.
    pub counted: u64,
    pub failures: u64,
    pub successes: u64,
    /// Counted entries per distinct `aux` (only for rules that need distinct counts).
    aux_counts: Option<HashMap<u64, u32>>,
    /// Distinct `aux` values seen at most `low_try_limit` times among counted entries.
    pub low_try: u64,
    /// Latest event time seen for this key (for idle expiry).
    pub last_time: Timestamp,
    /// An `aux` counted at most this many times is a "low-try" one (at least 1).
    low_try_limit: u32,
}

impl KeyWindow {
    pub fn new(track_aux: bool, low_try_limit: u32) -> KeyWindow {
        KeyWindow {
            aux_counts: track_aux.then(HashMap::new),
            low_try_limit: low_try_limit.max(1),
            ..KeyWindow::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sign-ins in the window, counted or not.
    pub fn total(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn distinct_aux(&self) -> u64 {
        self.aux_counts.as_ref().map_or(0, |m| m.len() as u64)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Time of the first and last counted entries.
    pub fn counted_span(&self) -> Option<(Timestamp, Timestamp)> {
        let first = self.entries.iter().find(|e| e.counted)?.time;
        let last = self.entries.iter().rev().find(|e| e.counted)?.time;
        Some((first, last))
    }

    /// Inserts at the entry's place in time order, then keeps at most `max_entries` (dropping the oldest).
    pub fn push(&mut self, entry: Entry, max_entries: usize) {
        self.last_time = self.last_time.max(entry.time);
        self.add_counters(&entry);
        let at = self.entries.partition_point(|e| e.time <= entry.time);
        if at == self.entries.len() {
            self.entries.push_back(entry);
        } else {
            self.entries.insert(at, entry);
        }
        while self.entries.len() > max_entries {
            self.pop_front();
        }
    }

    /// Drops entries at or before `now - window`.
    pub fn expire(&mut self, now: Timestamp, window: Span) {
        let horizon = now.saturating_sub(window);
        while self.entries.front().is_some_and(|e| e.time <= horizon) {
            self.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.counted = 0;
        self.failures = 0;
        self.successes = 0;
        self.low_try = 0;
        if let Some(m) = self.aux_counts.as_mut() {
            m.clear();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.remove_counters(&e);
        }
    }

    fn add_counters(&mut self, e: &Entry) {
        let low_try_limit = self.low_try_limit;
        match e.outcome {
            Outcome::Failure => self.failures += 1,
            Outcome::Success => self.successes += 1,
            _ => {}
        }
        if !e.counted {
            return;
        }
        self.counted += 1;
        if let Some(m) = self.aux_counts.as_mut() {
            let n = m.entry(e.aux).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.low_try += 1;
            } else if *n == low_try_limit + 1 {
                self.low_try -= 1;
            }
        }
    }

    fn remove_counters(&mut self, e: &Entry) {
        let low_try_limit = self.low_try_limit;
        match e.outcome {
            Outcome::Failure => self.failures -= 1,
            Outcome::Success => self.successes -= 1,
            _ => {}
        }
        if !e.counted {
            return;
        }
        self.counted -= 1;
        if let Some(m) = self.aux_counts.as_mut() {
            if let MapEntry::Occupied(mut o) = m.entry(e.aux) {
                let n = o.get_mut();
                if *n == low_try_limit + 1 {
                    self.low_try += 1;
                }
                *n -= 1;
                if *n == 0 {
                    o.remove();
                    self.low_try -= 1;
                }
            }
        }
    }
}

/// Anything kept per key that knows when it was last touched.
pub trait LastSeen {
    fn last_seen(&self) -> Timestamp;
}

impl LastSeen for KeyWindow {
    fn last_seen(&self) -> Timestamp {
        self.last_time
    }
}

/// A map of per-key state with idle expiry and a hard cap on the number of keys.
///
/// Keys are hashed with a per-process random key (attackers choose user names and cannot aim for
/// collisions); the hash is only an identity, never an order, so output stays deterministic. Under a flood
/// the least recently used tenth of the keys is evicted, by (last-seen event time, last use in input
/// order), and counted as saturation. The input-order part matters: CloudTrail times are whole seconds, so
/// in a flood thousands of keys share a last-seen time, and evicting "everything at the cut time" would
/// wipe the whole map, the attacker's own key included. Input order is the same on every run, so the choice
/// stays deterministic.
pub struct KeyedState<S> {
    map: HashMap<u64, Slot<S>>,
    hasher: RandomState,
    cap: usize,
    /// Idle state older than this behind `now` is useless to every rule using this map.
    horizon: Span,
    next_sweep: Timestamp,
    /// Counts uses: a key's `used` is its position in the order of last use.
    uses: u64,
    /// Keys dropped before they expired, because the cap was reached.
    pub evicted: u64,
}

struct Slot<S> {
    state: S,
    used: u64,
}

impl<S: LastSeen> KeyedState<S> {
    pub fn new(cap: usize, horizon: Span) -> KeyedState<S> {
        KeyedState {
            map: HashMap::new(),
            hasher: RandomState::new(),
            cap,
            horizon,
            next_sweep: Timestamp(i64::MIN),
            uses: 0,
            evicted: 0,
        }
    }

    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, h: u64) -> Option<&S> {
        self.map.get(&h).map(|slot| &slot.state)
    }

    /// The state for `h`, marked as used now.
    pub fn get_mut(&mut self, h: u64) -> Option<&mut S> {
        self.uses += 1;
        let used = self.uses;
        self.map.get_mut(&h).map(|slot| {
            slot.used = used;
            &mut slot.state
        })
    }

    pub fn remove(&mut self, h: u64) -> Option<S> {
        self.map.remove(&h).map(|slot| slot.state)
    }

    /// The state for `h`, created with `make` if absent, making room first when the map is full; marked as
    /// used now.
    pub fn get_or_insert_with(&mut self, h: u64, now: Timestamp, make: impl FnOnce() -> S) -> &mut S {
        self.maybe_sweep(now);
        if !self.map.contains_key(&h) && self.map.len() >= self.cap {
            self.sweep(now);
            if self.map.len() >= self.cap {
                self.evict_oldest();
            }
        }
        self.uses += 1;
        let used = self.uses;
        let slot = self.map.entry(h).or_insert_with(|| Slot { state: make(), used });
        slot.used = used;
        &mut slot.state
    }

    /// Drops idle keys; runs at most every half horizon of event time.
    pub fn maybe_sweep(&mut self, now: Timestamp) {
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        let cutoff = now.saturating_sub(self.horizon);
        self.map.retain(|_, slot| slot.state.last_seen() > cutoff);
        self.next_sweep = now.saturating_add(Span((self.horizon.millis() / 2).max(1000)));
    }

    /// Evicts the least recently used tenth of the keys (at least one), by (last-seen time, last use).
    fn evict_oldest(&mut self) {
        let mut ages: Vec<(Timestamp, u64)> = self.map.values().map(|s| (s.state.last_seen(), s.used)).collect();
        if ages.is_empty() {
            return;
        }
        let nth = (ages.len() / 10).min(ages.len() - 1);
        let (_, cut, _) = ages.select_nth_unstable(nth);
        let cut = *cut;
        let before = self.map.len();
        // `used` is unique, so exactly `nth + 1` keys go.
        self.map.retain(|_, s| (s.state.last_seen(), s.used) > cut);
        self.evicted += (before - self.map.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: i64, outcome: Outcome, aux: u64) -> Entry {
        Entry { time: Timestamp(t), outcome, counted: outcome == Outcome::Failure, aux, aux_name: None }
    }

    #[test]
    fn slides_and_counts() {
        let mut w = KeyWindow::new(true, 2);
        for i in 0..10 {
            w.push(entry(i * 1000, Outcome::Failure, (i % 3) as u64), 100);
        }
        w.push(entry(10_000, Outcome::Success, 9), 100);
        assert_eq!((w.counted, w.failures, w.successes, w.distinct_aux()), (10, 10, 1, 3));
        assert_eq!(w.low_try, 0, "every aux tried 3-4 times");
        w.expire(Timestamp(15_000), Span::secs(10));
        // Entries at 6..=9 s and the success at 10 s remain.
        assert_eq!((w.counted, w.successes, w.distinct_aux()), (4, 1, 3));
        assert_eq!(w.low_try, 3);
    }

    #[test]
    fn late_entries_land_in_order() {
        let mut w = KeyWindow::new(false, 1);
        w.push(entry(5000, Outcome::Failure, 0), 100);
        w.push(entry(1000, Outcome::Failure, 0), 100);
        w.push(entry(3000, Outcome::Failure, 0), 100);
        let times: Vec<i64> = w.entries().map(|e| e.time.0).collect();
        assert_eq!(times, [1000, 3000, 5000]);
        assert_eq!(w.counted_span(), Some((Timestamp(1000), Timestamp(5000))));
    }

    #[test]
    fn per_key_entries_are_capped() {
        let mut w = KeyWindow::new(true, 2);
        for i in 0..1000 {
            w.push(entry(i, Outcome::Failure, i as u64), 64);
        }
        assert_eq!(w.len(), 64);
        assert_eq!(w.counted, 64);
        assert_eq!(w.distinct_aux(), 64);
    }

    #[test]
    fn keyed_state_is_capped_and_evicts_oldest() {
        let mut s: KeyedState<KeyWindow> = KeyedState::new(100, Span::mins(5));
        for i in 0..1000i64 {
            let h = s.hash(&format!("user{i}"));
            let w = s.get_or_insert_with(h, Timestamp(i), || KeyWindow::new(false, 1));
            w.push(entry(i, Outcome::Failure, 0), 16);
        }
        assert!(s.len() <= 100);
        assert!(s.evicted >= 900);
        // The newest key survived.
        assert!(s.get(s.hash("user999")).is_some());
    }

    #[test]
    fn eviction_under_equal_times_keeps_the_recently_used_keys() {
        // Whole-second times: every key has the same last-seen time. The key used all along survives and
        // each eviction drops a tenth of the map, not all of it.
        let mut s: KeyedState<KeyWindow> = KeyedState::new(100, Span::mins(5));
        let hot = s.hash("stuffer");
        for i in 0..1000i64 {
            let h = s.hash(&format!("user{i}"));
            s.get_or_insert_with(h, Timestamp(5000), || KeyWindow::new(false, 1)).last_time = Timestamp(5000);
            if i % 20 == 0 {
                s.get_or_insert_with(hot, Timestamp(5000), || KeyWindow::new(false, 1)).last_time = Timestamp(5000);
            }
            if i >= 100 {
                assert!(s.len() >= 89, "an eviction emptied the map ({} keys left)", s.len());
            }
        }
        assert!(s.get(hot).is_some(), "the key in use was evicted");
        assert!(s.len() <= 100);
    }

    #[test]
    fn idle_keys_expire() {
        let mut s: KeyedState<KeyWindow> = KeyedState::new(100, Span::mins(5));
        let h = s.hash("a");
        s.get_or_insert_with(h, Timestamp(0), || KeyWindow::new(false, 1)).last_time = Timestamp(0);
        let h2 = s.hash("b");
        s.get_or_insert_with(h2, Timestamp(Span::mins(10).0), || KeyWindow::new(false, 1)).last_time =
            Timestamp(Span::mins(10).0);
        assert!(s.get(h).is_none());
        assert_eq!(s.evicted, 0);
    }
}
