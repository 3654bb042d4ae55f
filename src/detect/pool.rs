//! What the pool-wide rules share: per-pool state with a cap, and the bounded sets they count with.

use std::collections::HashMap;

use super::baseline::{BandParams, RuleBaseline, Series};
use super::incident::Incident;
use super::window::{key_hash, PreHashed};
use super::EngineSettings;
use crate::time::Timestamp;

/// A pool-wide incident's key as a summary names it: `pool us-east-1_ABC`, or `app client 1a2b...` when the
/// log named no pool.
pub fn pool_label(inc: &Incident) -> String {
    let key = inc.label();
    if key.starts_with("app client ") {
        key.to_string()
    } else {
        format!("pool {key}")
    }
}

/// Pools a pool-wide rule tracks at most, whatever the spec's `max_keys`: a deployment watches one pool or
/// a few, and each tracked pool keeps days of buckets and its own bounded sets, so a hostile file naming
/// random pool ids must not multiply them.
pub const MAX_POOLS: usize = 64;

/// Per-pool state of a pool-wide rule, by the pool key's hash. Past `cap` (the spec's `max_keys`, at most
/// [`MAX_POOLS`]) new pools are not tracked and counted as evicted (the summary's SATURATED line).
pub struct Pools<T> {
    map: HashMap<u64, T, PreHashed>,
    cap: usize,
    pub refused: u64,
}

impl<T> Pools<T> {
    pub fn new(cap: usize) -> Pools<T> {
        Pools { map: HashMap::default(), cap: cap.clamp(1, MAX_POOLS), refused: 0 }
    }

    /// The state of pool `h`, made with `make` when new and there is room.
    pub fn get_or_make(&mut self, h: u64, make: impl FnOnce() -> T) -> Option<&mut T> {
        if !self.map.contains_key(&h) {
            if self.map.len() >= self.cap {
                self.refused += 1;
                return None;
            }
            self.map.insert(h, make());
        }
        self.map.get_mut(&h)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &T)> {
        self.map.iter()
    }

    pub fn get_mut(&mut self, h: u64) -> Option<&mut T> {
        self.map.get_mut(&h)
    }
}

/// Per-pool state that learns a series: what a pool-wide rule saves to a baseline file and is seeded with.
pub trait Learner {
    /// The pool key as text (the baseline file's key).
    fn name(&self) -> &str;
    fn series(&self) -> &Series;
}

impl<T: Learner> Pools<T> {
    /// A rule's pools, seeded with the series a `--baseline` file holds for `rule` (when they were learned
    /// with `band`'s bucket); `make` builds a pool's state around its series.
    pub fn seeded(
        cap: usize,
        settings: &EngineSettings,
        rule: &str,
        band: &BandParams,
        make: impl Fn(&str, Series) -> T,
    ) -> Pools<T> {
        let mut pools = Pools::new(cap);
        for (name, series) in settings.baseline.iter().flat_map(|f| f.series_for(rule, band)) {
            pools.get_or_make(key_hash(name), || make(name, series.clone()));
        }
        pools
    }

    /// When the last pool's warm-up ends (the summary's warm-up line).
    pub fn warm_at(&self, band: &BandParams) -> Option<Timestamp> {
        self.map.values().filter_map(|s| s.series().warm_at(band)).max()
    }

    /// What the pools learned, for the baseline file.
    pub fn learned(&self, band: &BandParams) -> RuleBaseline {
        let pools = self.map.values().map(|s| (s.name().to_string(), s.series().clone())).collect();
        RuleBaseline { bucket_ms: band.bucket.millis(), pools }
    }
}

/// (user, address) pairs remembered as having signed in successfully; past it the memory starts over.
/// About 10 bytes each ([`CappedKeys`]): 500,000 pairs take about 5 to 9 MB.
pub const MAX_KNOWN_PAIRS: usize = 500_000;

/// One hash for a (user, address) pair, from their key hashes.
pub fn pair_hash(user: u64, ip: u64) -> u64 {
    user ^ ip.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
}

/// A set of hashes with a cap: past it, the set starts over (counted), so a flood of random names or
/// addresses costs a bounded amount of memory and degrades what the set knows instead of growing. Each
/// hash keeps a value (a time, another hash); [`CappedKeys`] keeps none.
pub struct CappedSet<V = i64> {
    map: HashMap<u64, V, PreHashed>,
    cap: usize,
    pub restarts: u64,
}

/// A [`CappedSet`] of hashes alone: 8 bytes a hash instead of 16. The known-pairs sets are looked up at
/// every sign-in, in tables of hundreds of thousands of pairs, so half the table is half the cache lines
/// missed.
pub type CappedKeys = CappedSet<()>;

impl<V: Copy> CappedSet<V> {
    pub fn new(cap: usize) -> CappedSet<V> {
        CappedSet { map: HashMap::default(), cap: cap.max(1), restarts: 0 }
    }

    /// Adds `h` with `value` if absent (the value of its first insertion stays); returns the value kept.
    pub fn first(&mut self, h: u64, value: V) -> V {
        if let Some(v) = self.map.get(&h) {
            return *v;
        }
        self.make_room();
        self.map.insert(h, value);
        value
    }

    /// Sets `h` to `value`, inserting it if absent.
    pub fn set(&mut self, h: u64, value: V) {
        // One lookup when the key is there, as it mostly is (a user signing in from a known address).
        if let Some(v) = self.map.get_mut(&h) {
            *v = value;
            return;
        }
        self.make_room();
        self.map.insert(h, value);
    }

    /// Starts over (counted) when the set is full, before a new hash goes in.
    fn make_room(&mut self) {
        if self.map.len() >= self.cap {
            self.map.clear();
            self.restarts += 1;
        }
    }

    pub fn get(&self, h: u64) -> Option<V> {
        self.map.get(&h).copied()
    }

    pub fn contains(&self, h: u64) -> bool {
        self.map.contains_key(&h)
    }

    pub fn remove(&mut self, h: u64) -> Option<V> {
        self.map.remove(&h)
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, V) -> bool) {
        self.map.retain(|h, v| keep(*h, *v));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.map.iter()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

impl CappedSet<i64> {
    /// Keeps only entries whose value is at least `min`.
    pub fn retain_at_least(&mut self, min: i64) {
        self.map.retain(|_, v| *v >= min);
    }
}

impl CappedKeys {
    /// Adds `h`; past the cap the set starts over first (counted).
    pub fn insert(&mut self, h: u64) {
        self.set(h, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_set_starts_over_instead_of_growing() {
        let mut s = CappedSet::new(3);
        for h in 0..10u64 {
            s.first(h, h as i64);
        }
        assert!(s.len() <= 3);
        assert_eq!(s.restarts, 3);
        assert_eq!(s.first(9, 100), 9);
    }

    #[test]
    fn capped_keys_start_over_instead_of_growing() {
        let mut s = CappedKeys::new(3);
        for h in 0..10u64 {
            s.insert(h);
            s.insert(h);
        }
        assert!(s.len() <= 3);
        assert_eq!(s.restarts, 3);
        assert!(s.contains(9));
        assert!(!s.contains(0));
    }

    #[test]
    fn pools_past_the_cap_are_refused_and_counted() {
        let mut p: Pools<u32> = Pools::new(1);
        assert!(p.get_or_make(1, || 0).is_some());
        assert!(p.get_or_make(2, || 0).is_none());
        assert_eq!(p.refused, 1);
    }
}
