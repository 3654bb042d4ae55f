//! Window arithmetic: the per-key sliding window of recent events and the bounded map of keys.
//!
//! Everything here runs on event time passed in by the caller; nothing reads the wall clock. A window
//! holds the entries with `time > now - window`; entries may arrive out of order (late events are inserted
//! at their place); counters are kept incrementally so a rule's check is O(1).
//!
//! Both are laid out for memory, since every tracked key of every rule pays for them: an [`Entry`] is 40
//! bytes, a [`KeyWindow`] 64 and a key's slot in [`KeyedState`] 80 (tests hold them there).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use hashbrown::HashTable;

use crate::event::Outcome;
use crate::time::{Span, Timestamp};

/// The `aux` of an event with no counterpart (no address, or no user): never a distinct counterpart.
pub const NO_COUNTERPART: u64 = 0;

/// One event as a window remembers it: 40 bytes, paid by every entry of every tracked key's window. The
/// outcome, the counted flag and the counterpart's text share one 24-byte enum (`Detail`): the outcome and
/// flag fill bytes beside its tag that would otherwise be padding. As fields beside an `Option` of the name
/// they cost 8 bytes more an entry.
#[derive(Clone)]
pub struct Entry {
    pub time: Timestamp,
    /// Hash of the "other side": the user for an IP-keyed window, the address for a user-keyed one.
    pub aux: u64,
    detail: Detail,
}

/// Longest counterpart name an [`Entry`] keeps inline (no allocation): IPv4 addresses and most user names
/// fit; longer ones are boxed. The enum's tag, the outcome, the flag and the length take the other 4 of its
/// 24 bytes.
const INLINE_NAME_BYTES: usize = 20;

/// An [`Entry`]'s outcome, whether it counts, and the other side's text, when the event carried it. Windows
/// remember a name per entry; allocating each one cost more than the rest of the window's work, so a short
/// one is kept inline.
#[derive(Clone)]
enum Detail {
    Unnamed { outcome: Outcome, counted: bool },
    Inline { outcome: Outcome, counted: bool, len: u8, bytes: [u8; INLINE_NAME_BYTES] },
    Heap { outcome: Outcome, counted: bool, name: Box<str> },
}

impl Entry {
    /// An entry; `counted` when it counts toward the rule's threshold (its outcome is one the spec
    /// counts), `aux_name` the other side's text for evidence (`None` when the event did not carry it).
    pub fn new(time: Timestamp, outcome: Outcome, counted: bool, aux: u64, aux_name: Option<&str>) -> Entry {
        let detail = match aux_name {
            None => Detail::Unnamed { outcome, counted },
            Some(s) if s.len() <= INLINE_NAME_BYTES => {
                let mut bytes = [0u8; INLINE_NAME_BYTES];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Detail::Inline { outcome, counted, len: s.len() as u8, bytes }
            }
            Some(s) => Detail::Heap { outcome, counted, name: Box::from(s) },
        };
        Entry { time, aux, detail }
    }

    pub fn outcome(&self) -> Outcome {
        match self.detail {
            Detail::Unnamed { outcome, .. } | Detail::Inline { outcome, .. } | Detail::Heap { outcome, .. } => outcome,
        }
    }

    /// Counts toward the rule's threshold (its outcome is one the spec counts).
    pub fn counted(&self) -> bool {
        match self.detail {
            Detail::Unnamed { counted, .. } | Detail::Inline { counted, .. } | Detail::Heap { counted, .. } => counted,
        }
    }

    /// The other side's text, for evidence (`None` when the event did not carry it).
    pub fn aux_name(&self) -> Option<&str> {
        match &self.detail {
            Detail::Unnamed { .. } => None,
            // Only `new` fills the bytes, from a whole `&str` that fits, so they are valid UTF-8.
            Detail::Inline { len, bytes, .. } => {
                Some(std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default())
            }
            Detail::Heap { name, .. } => Some(name),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("time", &self.time)
            .field("outcome", &self.outcome())
            .field("counted", &self.counted())
            .field("aux", &self.aux)
            .field("aux_name", &self.aux_name())
            .finish()
    }
}

/// The identity of a key (a user, an address) as every map of the engine knows it: aHash keyed with a
/// per-process random seed, so an attacker choosing user names cannot aim them at one bucket. The engine
/// hashes an event's user and address once ([`super::Keys`]) and every rule looks its state up by that
/// hash; the hash is only an identity, never an order, so output stays deterministic.
pub fn key_hash(key: &str) -> u64 {
    hash_of(key)
}

/// [`key_hash`]'s keyed hash of any value, such as a pair of names, hashed as its parts without joining
/// them into one string.
pub fn hash_of<T: std::hash::Hash>(value: T) -> u64 {
    static SEED: OnceLock<ahash::RandomState> = OnceLock::new();
    SEED.get_or_init(ahash::RandomState::new).hash_one(value)
}

/// A hasher for keys that already are hashes from [`key_hash`] (keyed with a per-process random
/// seed, so an attacker cannot aim them at one bucket): it passes the `u64` through instead of hashing it
/// a second time.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for `u64` keys; folds anything else in rather than ignoring it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Builds [`PassThrough`] hashers, for maps keyed by key hashes.
pub type PreHashed = BuildHasherDefault<PassThrough>;

/// A window's entries in time order. Most keys hold one entry at a time (an address or user signs in a
/// few times a day), so one is kept inline: a key then costs no allocation, and reading it no second
/// cache miss. A window that empties gives its buffer back.
#[derive(Debug, Default)]
enum Entries {
    #[default]
    Empty,
    One(Entry),
    Many(VecDeque<Entry>),
}

impl Entries {
    fn len(&self) -> usize {
        match self {
            Entries::Empty => 0,
            Entries::One(_) => 1,
            Entries::Many(d) => d.len(),
        }
    }

    fn front(&self) -> Option<&Entry> {
        match self {
            Entries::Empty => None,
            Entries::One(e) => Some(e),
            Entries::Many(d) => d.front(),
        }
    }

    fn back(&self) -> Option<&Entry> {
        match self {
            Entries::Empty => None,
            Entries::One(e) => Some(e),
            Entries::Many(d) => d.back(),
        }
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        let (one, many) = match self {
            Entries::Empty => (None, None),
            Entries::One(e) => (Some(e), None),
            Entries::Many(d) => (None, Some(d.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Inserts after every entry at or before the entry's time (in-order arrival appends).
    fn insert(&mut self, entry: Entry) {
        match self {
            Entries::Empty => *self = Entries::One(entry),
            Entries::One(_) => {
                let Entries::One(first) = std::mem::take(self) else { return };
                let mut d = VecDeque::with_capacity(4);
                if first.time <= entry.time {
                    d.push_back(first);
                    d.push_back(entry);
                } else {
                    d.push_back(entry);
                    d.push_back(first);
                }
                *self = Entries::Many(d);
            }
            Entries::Many(d) => {
                if d.back().is_none_or(|e| e.time <= entry.time) {
                    d.push_back(entry);
                } else {
                    let at = d.partition_point(|e| e.time <= entry.time);
                    d.insert(at, entry);
                }
            }
        }
    }

    fn pop_front(&mut self) -> Option<Entry> {
        match self {
            Entries::Empty => None,
            Entries::One(_) => match std::mem::take(self) {
                Entries::One(e) => Some(e),
                _ => None,
            },
            Entries::Many(d) => {
                let e = d.pop_front();
                if d.is_empty() {
                    *self = Entries::Empty;
                }
                e
            }
        }
    }
}

/// Most entries a window keeps (`max_events_per_key` is at most this): its counters are 16-bit, and
/// count one entry beyond the cap while it is pushed.
pub const MAX_WINDOW_ENTRIES: usize = 65_000;

/// The sliding window of one key with incremental counters.
///
/// Kept small: every tracked key of every counting rule has one (64 bytes; 80 with its key and last use
/// in [`KeyedState`]'s slot; a test holds it there). What can be derived is not stored: the
/// last-seen time is the newest entry's, and the low-try limit rides in the counterpart counts, the only
/// place it is used.
#[derive(Debug, Default)]
pub struct KeyWindow {
    entries: Entries,
    /// Counted entries in the window.
    counted: u16,
    failures: u16,
    successes: u16,
    /// Distinct `aux` values seen at most the low-try limit times among counted entries.
    low_try: u16,
    /// Counted entries per distinct `aux` (only for rules that need distinct counts).
    aux_counts: AuxCounts,
}

impl KeyWindow {
    /// A window; with `track_aux`, counting distinct counterparts and those counted at most
    /// `low_try_limit` times (at least 1).
    pub fn new(track_aux: bool, low_try_limit: u32) -> KeyWindow {
        // A limit above the most entries a window holds means every counterpart is low-try, as it does
        // clamped to that.
        let limit = u16::try_from(low_try_limit.max(1)).unwrap_or(u16::MAX);
        KeyWindow {
            aux_counts: if track_aux { AuxCounts::Empty(limit) } else { AuxCounts::Off },
            ..KeyWindow::default()
        }
    }

    /// The newest entry's time: when the key was last active (`Timestamp(i64::MIN)` once empty, which
    /// counts as idle: an emptied window is worth no more than a new one).
    pub fn last_time(&self) -> Timestamp {
        self.entries.back().map_or(Timestamp(i64::MIN), |e| e.time)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// Counted entries in the window.
    pub fn counted(&self) -> u64 {
        u64::from(self.counted)
    }

    pub fn failures(&self) -> u64 {
        u64::from(self.failures)
    }

    pub fn successes(&self) -> u64 {
        u64::from(self.successes)
    }

    /// Distinct `aux` values seen at most the low-try limit times among counted entries.
    pub fn low_try(&self) -> u64 {
        u64::from(self.low_try)
    }

    /// Sign-ins in the window, counted or not.
    pub fn total(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn distinct_aux(&self) -> u64 {
        self.aux_counts.len() as u64
    }

    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Time of the first and last counted entries.
    pub fn counted_span(&self) -> Option<(Timestamp, Timestamp)> {
        let first = self.entries.iter().find(|e| e.counted())?.time;
        let last = self.entries.iter().rev().find(|e| e.counted())?.time;
        Some((first, last))
    }

    /// Inserts at the entry's place in time order, then keeps at most `max_entries` (dropping the oldest;
    /// never more than [`MAX_WINDOW_ENTRIES`]).
    pub fn push(&mut self, entry: Entry, max_entries: usize) {
        let max_entries = max_entries.clamp(1, MAX_WINDOW_ENTRIES);
        self.add_counters(&entry);
        self.entries.insert(entry);
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

    /// Drops the entries at or before `t` (entries are in time order, so they are a prefix).
    pub fn drain_through(&mut self, t: Timestamp) {
        while self.entries.front().is_some_and(|e| e.time <= t) {
            self.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.entries = Entries::Empty;
        self.counted = 0;
        self.failures = 0;
        self.successes = 0;
        self.low_try = 0;
        self.aux_counts.clear();
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.remove_counters(&e);
        }
    }

    fn add_counters(&mut self, e: &Entry) {
        match e.outcome() {
            Outcome::Failure => self.failures += 1,
            Outcome::Success => self.successes += 1,
            _ => {}
        }
        if !e.counted() {
            return;
        }
        self.counted += 1;
        if e.aux == NO_COUNTERPART {
            return;
        }
        let limit = self.aux_counts.low_try_limit();
        match self.aux_counts.add(e.aux) {
            Some(1) => self.low_try += 1,
            Some(n) if n == limit + 1 => self.low_try -= 1,
            _ => {}
        }
    }

    fn remove_counters(&mut self, e: &Entry) {
        match e.outcome() {
            Outcome::Failure => self.failures -= 1,
            Outcome::Success => self.successes -= 1,
            _ => {}
        }
        if !e.counted() {
            return;
        }
        self.counted -= 1;
        if e.aux == NO_COUNTERPART {
            return;
        }
        let limit = self.aux_counts.low_try_limit();
        if let Some(before) = self.aux_counts.remove(e.aux) {
            if before == limit + 1 {
                self.low_try += 1;
            }
            if before == 1 {
                self.low_try -= 1;
            }
        }
    }
}

/// Counted entries per distinct `aux`, with the low-try limit (an `aux` counted at most this many times
/// is a low-try one). Most windows only ever see one counterpart, so that case is kept inline: a map
/// costs about a hundred bytes per key before its first real use.
#[derive(Debug, Default)]
enum AuxCounts {
    /// The rule does not count counterparts.
    #[default]
    Off,
    Empty(u16),
    One(u64, u32, u16),
    /// Boxed: the enum stays 16 bytes in every window, most of which never need a map.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<u64, u32, PreHashed>>, u16),
}

impl AuxCounts {
    fn len(&self) -> usize {
        match self {
            AuxCounts::Off | AuxCounts::Empty(_) => 0,
            AuxCounts::One(..) => 1,
            AuxCounts::Many(m, _) => m.len(),
        }
    }

    /// The low-try limit (irrelevant when off: nothing is counted).
    fn low_try_limit(&self) -> u32 {
        match *self {
            AuxCounts::Off => 1,
            AuxCounts::Empty(limit) | AuxCounts::One(_, _, limit) | AuxCounts::Many(_, limit) => u32::from(limit),
        }
    }

    fn clear(&mut self) {
        if !matches!(self, AuxCounts::Off) {
            *self = AuxCounts::Empty(self.low_try_limit() as u16);
        }
    }

    /// Counts one more entry for `aux`; its new count (`None` when off).
    fn add(&mut self, aux: u64) -> Option<u32> {
        match self {
            AuxCounts::Off => None,
            AuxCounts::Empty(limit) => {
                *self = AuxCounts::One(aux, 1, *limit);
                Some(1)
            }
            AuxCounts::One(a, n, _) if *a == aux => {
                *n += 1;
                Some(*n)
            }
            AuxCounts::One(a, n, limit) => {
                let mut m: Box<HashMap<u64, u32, PreHashed>> = Box::default();
                m.insert(*a, *n);
                m.insert(aux, 1);
                *self = AuxCounts::Many(m, *limit);
                Some(1)
            }
            AuxCounts::Many(m, _) => {
                let n = m.entry(aux).or_insert(0);
                *n += 1;
                Some(*n)
            }
        }
    }

    /// Counts one entry less for `aux`; its count before (`None` when off or not counted).
    fn remove(&mut self, aux: u64) -> Option<u32> {
        match self {
            AuxCounts::One(a, n, limit) if *a == aux => {
                let before = *n;
                if before == 1 {
                    *self = AuxCounts::Empty(*limit);
                } else {
                    *n -= 1;
                }
                Some(before)
            }
            AuxCounts::Many(m, _) => match m.entry(aux) {
                MapEntry::Occupied(mut o) => {
                    let before = *o.get();
                    if before == 1 {
                        o.remove();
                    } else {
                        *o.get_mut() -= 1;
                    }
                    Some(before)
                }
                MapEntry::Vacant(_) => None,
            },
            _ => None,
        }
    }
}

/// Anything kept per key that knows when it was last touched.
pub trait LastSeen {
    fn last_seen(&self) -> Timestamp;
}

impl LastSeen for KeyWindow {
    fn last_seen(&self) -> Timestamp {
        self.last_time()
    }
}

/// A map of per-key state with idle expiry and a hard cap on the number of keys.
///
/// Keys are their [`key_hash`] (aHash with a per-process random seed rather than the standard SipHash: it
/// is several times faster on short keys and still seeded per process). Under a flood the least recently
/// used tenth of the keys is evicted, by (last-seen event time, last use in input order), and counted as
/// saturation. The input-order part matters: CloudTrail times are whole seconds, so in a flood thousands
/// of keys share a last-seen time, and evicting "everything at the cut time" would wipe the whole map, the
/// attacker's own key included. Input order is the same on every run, so the choice stays deterministic.
///
/// Laid out for memory, since every tracked key of every rule pays it: the states sit in one dense
/// array ([`Slots`]) holding each key's hash beside its state, and the hash table holds only a 4-byte
/// index into it. A key costs its slot plus about 8 bytes of table, with no allocation of its own. A map
/// of boxed states cost the state rounded up to an allocation size class plus a 16-byte table entry at a
/// load between 44 and 88 %: 158 bytes a tracked key against 127 on the floods of
/// docs/performance.md's "Memory per tracked key".
pub struct KeyedState<S> {
    /// Key hash → index of its slot in `slots`.
    index: HashTable<u32>,
    slots: Slots<S>,
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
    /// The key's hash: the table finds slots by it.
    hash: u64,
    used: u64,
    state: S,
}

/// Slots in chunks of [`CHUNK`] that never move once allocated: growing never copies (or holds twice)
/// the states, and a removed slot is filled by the last one, so the slots stay dense and the last chunk
/// is freed once empty.
struct Slots<S> {
    chunks: Vec<Vec<Slot<S>>>,
    len: usize,
}

/// Slots per chunk: 1,024 (80 KB of counting windows), so a rule tracking a handful of keys holds little.
const CHUNK: usize = 1024;

impl<S> Slots<S> {
    fn get(&self, i: usize) -> &Slot<S> {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    fn get_mut(&mut self, i: usize) -> &mut Slot<S> {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    fn iter(&self) -> impl Iterator<Item = &Slot<S>> {
        self.chunks.iter().flatten()
    }

    /// Appends a slot; its index.
    fn push(&mut self, slot: Slot<S>) -> usize {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(slot);
        }
        self.len += 1;
        self.len - 1
    }

    /// Removes slot `i`, moving the last slot into its place; the removed slot, and the hash of the slot
    /// that moved from the end to `i` (none when `i` was the last).
    fn swap_remove(&mut self, i: usize) -> Option<(Slot<S>, Option<u64>)> {
        let chunk = self.chunks.last_mut()?;
        let last = chunk.pop()?;
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        if i == self.len {
            return Some((last, None));
        }
        let moved = last.hash;
        Some((std::mem::replace(self.get_mut(i), last), Some(moved)))
    }
}

impl<S: LastSeen> KeyedState<S> {
    pub fn new(cap: usize, horizon: Span) -> KeyedState<S> {
        KeyedState {
            index: HashTable::new(),
            slots: Slots { chunks: Vec::new(), len: 0 },
            // Indices are u32: no rule holds four billion keys (a spec's max_keys is far below).
            cap: cap.min(u32::MAX as usize),
            horizon,
            next_sweep: Timestamp(i64::MIN),
            uses: 0,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len
    }

    pub fn is_empty(&self) -> bool {
        self.slots.len == 0
    }

    /// The index of `h`'s slot.
    fn find(&self, h: u64) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(h, |&i| slots.get(i as usize).hash == h).map(|&i| i as usize)
    }

    pub fn get(&self, h: u64) -> Option<&S> {
        self.find(h).map(|i| &self.slots.get(i).state)
    }

    /// The state for `h` if it was touched within the horizon before `now`. State past it is what a sweep
    /// drops; whether one ran yet must not change what a rule decides (a sweep's timing depends on which
    /// keys an instance holds: `super::shard`).
    pub fn get_live(&self, h: u64, now: Timestamp) -> Option<&S> {
        let cutoff = now.saturating_sub(self.horizon);
        self.get(h).filter(|s| s.last_seen() > cutoff)
    }

    /// [`KeyedState::get_live`] for a caller that updates the state: marked as used now (as
    /// [`KeyedState::get_or_insert_with`] marks it), in one lookup.
    pub fn get_live_mut(&mut self, h: u64, now: Timestamp) -> Option<&mut S> {
        let cutoff = now.saturating_sub(self.horizon);
        let i = self.find(h)?;
        let slot = self.slots.get_mut(i);
        if slot.state.last_seen() <= cutoff {
            return None;
        }
        self.uses += 1;
        slot.used = self.uses;
        Some(&mut slot.state)
    }

    /// The state for `h`, marked as used now.
    pub fn get_mut(&mut self, h: u64) -> Option<&mut S> {
        self.uses += 1;
        let used = self.uses;
        let i = self.find(h)?;
        let slot = self.slots.get_mut(i);
        slot.used = used;
        Some(&mut slot.state)
    }

    pub fn remove(&mut self, h: u64) -> Option<S> {
        let i = self.find(h)?;
        self.remove_at(i)
    }

    /// Removes slot `i` from the table and the slots, and points the table at the slot moved into `i`.
    fn remove_at(&mut self, i: usize) -> Option<S> {
        let h = self.slots.get(i).hash;
        if let Ok(entry) = self.index.find_entry(h, |&j| j as usize == i) {
            entry.remove();
        }
        let (removed, moved) = self.slots.swap_remove(i)?;
        if let Some(moved) = moved {
            let from = self.slots.len;
            if let Some(j) = self.index.find_mut(moved, |&j| j as usize == from) {
                *j = i as u32;
            }
        }
        Some(removed.state)
    }

    /// The state for `h`, created with `make` if absent, making room first when the map is full; marked as
    /// used now.
    pub fn get_or_insert_with(&mut self, h: u64, now: Timestamp, make: impl FnOnce() -> S) -> &mut S {
        self.maybe_sweep(now);
        let found = self.find(h);
        // Making room moves slots, but only runs when `h` has none.
        if found.is_none() && self.slots.len >= self.cap {
            self.sweep(now);
            if self.slots.len >= self.cap {
                self.evict_oldest();
            }
        }
        self.uses += 1;
        let used = self.uses;
        let cutoff = now.saturating_sub(self.horizon);
        let i = match found {
            Some(i) => {
                let slot = self.slots.get_mut(i);
                // Idle past the horizon: as if a sweep had dropped it already (see `get_live`).
                if slot.state.last_seen() <= cutoff {
                    slot.state = make();
                }
                i
            }
            None => {
                let i = self.slots.push(Slot { hash: h, used, state: make() });
                let slots = &self.slots;
                self.index.insert_unique(h, i as u32, |&j| slots.get(j as usize).hash);
                i
            }
        };
        let slot = self.slots.get_mut(i);
        slot.used = used;
        &mut slot.state
    }

    /// Drops idle keys; runs at most every half horizon of event time.
    pub fn maybe_sweep(&mut self, now: Timestamp) {
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    /// Drops every key idle past the horizon before `now`.
    pub fn sweep(&mut self, now: Timestamp) {
        let cutoff = now.saturating_sub(self.horizon);
        self.retain(|slot| slot.state.last_seen() > cutoff);
        self.next_sweep = now.saturating_add(Span((self.horizon.millis() / 2).max(1000)));
    }

    fn retain(&mut self, mut keep: impl FnMut(&Slot<S>) -> bool) {
        let mut i = 0;
        while i < self.slots.len {
            if keep(self.slots.get(i)) {
                i += 1;
            } else {
                // The last slot moves into `i`: look at `i` again.
                self.remove_at(i);
            }
        }
    }

    /// Evicts the least recently used tenth of the keys (at least one), by (last-seen time, last use).
    fn evict_oldest(&mut self) {
        let mut ages: Vec<(Timestamp, u64)> = self.slots.iter().map(|s| (s.state.last_seen(), s.used)).collect();
        if ages.is_empty() {
            return;
        }
        let nth = (ages.len() / 10).min(ages.len() - 1);
        let (_, cut, _) = ages.select_nth_unstable(nth);
        let cut = *cut;
        let before = self.slots.len;
        // `used` is unique, so exactly `nth + 1` keys go.
        self.retain(|s| (s.state.last_seen(), s.used) > cut);
        self.evicted += (before - self.slots.len) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_s_window_with_its_slot_fits_in_80_bytes() {
        // Every tracked key of every counting rule pays this (plus about 8 bytes of table): the figure
        // docs/performance.md divides memory by. Grow it knowingly.
        assert!(std::mem::size_of::<Slot<KeyWindow>>() <= 80, "{}", std::mem::size_of::<Slot<KeyWindow>>());
        assert_eq!(std::mem::size_of::<KeyWindow>(), 64);
        // The entry a window holds inline, and every entry of a longer window.
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn an_entry_keeps_its_outcome_flag_and_name_whatever_the_name_s_length() {
        let inline = "a".repeat(INLINE_NAME_BYTES);
        let boxed = "a".repeat(INLINE_NAME_BYTES + 1);
        // Multi-byte characters up to the inline limit and one past it.
        let wide = "é".repeat(INLINE_NAME_BYTES / 2);
        let wider = format!("{wide}x");
        let names = [None, Some(""), Some("203.0.113.7"), Some(&*inline), Some(&*boxed), Some(&*wide), Some(&*wider)];
        for name in names {
            for outcome in
                [Outcome::Success, Outcome::Failure, Outcome::InProgress, Outcome::Throttled, Outcome::Unknown]
            {
                for counted in [false, true] {
                    let e = Entry::new(Timestamp(7), outcome, counted, 9, name);
                    assert_eq!(
                        (e.time, e.outcome(), e.counted(), e.aux, e.aux_name()),
                        (Timestamp(7), outcome, counted, 9, name)
                    );
                    assert_eq!(e.clone().aux_name(), name);
                }
            }
        }
    }

    #[test]
    fn keys_stay_found_as_slots_move_to_fill_the_removed() {
        // Against a plain map: inserts, removals and sweeps in an order that moves slots across chunks.
        let mut s: KeyedState<KeyWindow> = KeyedState::new(1_000_000, Span::mins(10));
        let mut model: HashMap<u64, i64> = HashMap::new();
        let at = |t: i64| Timestamp(t * 1000);
        for i in 0..5000i64 {
            let h = key_hash(&format!("k{i}"));
            s.get_or_insert_with(h, at(i / 10), || KeyWindow::new(false, 1))
                .push(entry(i / 10 * 1000, Outcome::Failure, 0), 16);
            model.insert(h, i / 10);
            if i % 3 == 0 {
                let gone = key_hash(&format!("k{}", i / 2));
                assert_eq!(s.remove(gone).is_some(), model.remove(&gone).is_some());
            }
        }
        // 10 minutes after second 100, the keys last seen at 100 or before are idle.
        s.sweep(at(700));
        model.retain(|_, &mut t| t > 100);
        assert_eq!(s.len(), model.len());
        for (h, t) in &model {
            assert_eq!(s.get(*h).map(|w| w.last_time()), Some(at(*t)));
        }
        for i in 0..5000 {
            let h = key_hash(&format!("k{i}"));
            assert_eq!(s.get(h).is_some(), model.contains_key(&h));
        }
        while let Some(h) = model.keys().next().copied() {
            model.remove(&h);
            assert!(s.remove(h).is_some());
        }
        assert!(s.is_empty() && s.slots.chunks.is_empty(), "an emptied map gives its chunks back");
    }

    #[test]
    fn a_key_idle_past_the_horizon_is_gone_whether_or_not_a_sweep_dropped_it_yet() {
        let min = |m: f64| Timestamp((m * 60_000.0) as i64);
        let mut s: KeyedState<KeyWindow> = KeyedState::new(100, Span::mins(10));
        let (a, b) = (11, 22);
        let w = s.get_or_insert_with(a, min(1.0), || KeyWindow::new(false, 1));
        w.push(entry(min(1.0).0, Outcome::Failure, 5), 100);
        // A sweep at 7 minutes keeps a (touched at 1); the next is due at 12.
        s.get_or_insert_with(b, min(7.0), || KeyWindow::new(false, 1))
            .push(entry(min(7.0).0, Outcome::Failure, 5), 100);
        // At 11.5 minutes a has been idle past the 10-minute horizon, and no sweep has run since.
        assert!(s.get(a).is_some(), "still held");
        assert!(s.get_live(a, min(11.5)).is_none(), "but not live");
        assert!(s.get_live(b, min(11.5)).is_some());
        let w = s.get_or_insert_with(a, min(11.5), || KeyWindow::new(false, 1));
        assert!(w.is_empty() && w.counted() == 0, "a starts over, as after a sweep");
    }

    fn entry(t: i64, outcome: Outcome, aux: u64) -> Entry {
        Entry::new(Timestamp(t), outcome, outcome == Outcome::Failure, aux, None)
    }

    #[test]
    fn slides_and_counts() {
        let mut w = KeyWindow::new(true, 2);
        for i in 0..10 {
            w.push(entry(i * 1000, Outcome::Failure, (i % 3 + 1) as u64), 100);
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
    fn one_counterpart_is_counted_inline_then_in_a_map() {
        let mut w = KeyWindow::new(true, 1);
        w.push(entry(0, Outcome::Failure, 7), 100);
        assert_eq!((w.distinct_aux(), w.low_try), (1, 1));
        w.push(entry(1000, Outcome::Failure, 7), 100);
        assert_eq!((w.distinct_aux(), w.low_try), (1, 0), "tried twice: no longer low-try");
        w.push(entry(2000, Outcome::Failure, 8), 100);
        assert_eq!((w.distinct_aux(), w.low_try), (2, 1));
        w.expire(Timestamp(10_500), Span::secs(10));
        assert_eq!((w.distinct_aux(), w.low_try), (2, 2), "7 now tried once in the window");
        w.expire(Timestamp(11_999), Span::secs(10));
        assert_eq!((w.distinct_aux(), w.low_try), (1, 1));
        w.clear();
        assert_eq!((w.distinct_aux(), w.low_try), (0, 0));
    }

    #[test]
    fn a_window_is_as_recent_as_its_newest_entry_and_idle_once_emptied() {
        let mut w = KeyWindow::new(false, 1);
        assert_eq!(w.last_time(), Timestamp(i64::MIN));
        w.push(entry(5000, Outcome::Failure, 0), 100);
        w.push(entry(1000, Outcome::Failure, 0), 100);
        assert_eq!(w.last_time(), Timestamp(5000), "a late entry does not make the key older");
        w.expire(Timestamp(5500), Span::secs(1));
        assert_eq!(w.last_time(), Timestamp(5000));
        w.clear();
        assert_eq!(w.last_time(), Timestamp(i64::MIN));
    }

    #[test]
    fn counters_hold_a_window_at_the_largest_cap() {
        let mut w = KeyWindow::new(true, u32::MAX);
        for i in 0..(MAX_WINDOW_ENTRIES as i64 + 10) {
            w.push(entry(i, Outcome::Failure, 7), usize::MAX);
        }
        assert_eq!(
            (w.len(), w.counted(), w.failures()),
            (MAX_WINDOW_ENTRIES, MAX_WINDOW_ENTRIES as u64, MAX_WINDOW_ENTRIES as u64)
        );
        assert_eq!((w.distinct_aux(), w.low_try()), (1, 1), "a limit beyond any count: every counterpart is low-try");
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
            let h = key_hash(&format!("user{i}"));
            let w = s.get_or_insert_with(h, Timestamp(i), || KeyWindow::new(false, 1));
            w.push(entry(i, Outcome::Failure, 0), 16);
        }
        assert!(s.len() <= 100);
        assert!(s.evicted >= 900);
        // The newest key survived.
        assert!(s.get(key_hash("user999")).is_some());
    }

    #[test]
    fn eviction_under_equal_times_keeps_the_recently_used_keys() {
        // Whole-second times: every key has the same last-seen time. The key used all along survives and
        // each eviction drops a tenth of the map, not all of it.
        let mut s: KeyedState<KeyWindow> = KeyedState::new(100, Span::mins(5));
        let hot = key_hash("stuffer");
        for i in 0..1000i64 {
            let h = key_hash(&format!("user{i}"));
            s.get_or_insert_with(h, Timestamp(5000), || KeyWindow::new(false, 1))
                .push(entry(5000, Outcome::Failure, 0), 16);
            if i % 20 == 0 {
                s.get_or_insert_with(hot, Timestamp(5000), || KeyWindow::new(false, 1))
                    .push(entry(5000, Outcome::Failure, 0), 16);
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
        let h = key_hash("a");
        s.get_or_insert_with(h, Timestamp(0), || KeyWindow::new(false, 1)).push(entry(0, Outcome::Failure, 0), 16);
        let h2 = key_hash("b");
        s.get_or_insert_with(h2, Timestamp(Span::mins(10).0), || KeyWindow::new(false, 1))
            .push(entry(Span::mins(10).0, Outcome::Failure, 0), 16);
        assert!(s.get(h).is_none());
        assert_eq!(s.evicted, 0);
    }
}
