//! Detection split by key across threads, with the same findings in the same order whatever the count.
//!
//! A rule whose every piece of state belongs to one key (an address, or a user) can run as several
//! instances, each keeping only the keys a [`Shard`] owns: the instances never need each other's state,
//! so they run on separate threads. Rules that look across keys stay whole on the engine's own thread:
//! the pool-wide rules (one state per pool), account takeover (a user's failures and their addresses'
//! history together) and an address-keyed MFA rule (it remembers users); so does the correlation stage,
//! which joins findings of every rule. [`Detector::shard_key`] says which is which.
//!
//! The engine (`super::Engine`) collects the events it releases, in order, with the keys it worked out
//! for each and the moments event time advanced, as [`Step`]s. Every [`Batch`] of them goes to every
//! worker (one per shard), which runs its instances over all of it; the engine runs the whole rules over
//! the same steps meanwhile, then puts what each produced back in the one order a single thread would
//! have produced it ([`Found`]: by step, then by rule), and the correlation stage takes them from there.
//! Each instance still sees every event's time (its clock, which decides what is too late, moves as a
//! single instance's would) but looks at an event only when it owns its key. Idle state is judged on
//! that clock too ([`super::window::KeyedState::get_live`]), never on when an instance happened to sweep.
//!
//! What differs with the count: a rule's `max_keys`, and the capped sets some rules keep, are per
//! instance, so a rule that reaches them (the summary says SATURATED) drops different keys. Below those
//! caps the findings are byte-identical (tests/shards.rs).

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::keys::{IpKey, Keys};
use super::Detector;
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::time::Timestamp;

/// Most shards: beyond this, every worker reading every event's time costs more than it spreads.
pub const MAX_SHARDS: usize = 16;

/// Steps handed to the workers at a time: large enough that the hand-off (two channel messages per
/// worker) is noise, small enough that the events waiting take about 2 MB.
pub const BATCH_STEPS: usize = 2048;

/// Which keys one instance of a sharded rule keeps: those whose hash falls in `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// One instance that owns every key: how a rule runs unsharded.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Shard {
        let count = count.clamp(1, MAX_SHARDS) as u32;
        Shard { index: (index as u32).min(count - 1), count }
    }

    /// Whether this instance keeps the key whose [`split_hash`] is `split`.
    pub fn owns(self, split: u64) -> bool {
        self.count == 1 || shard_of(split, self.count) == self.index
    }
}

/// The shard of a key: bits 16 to 47 of its [`split_hash`], scaled to `count`.
fn shard_of(split: u64, count: u32) -> u32 {
    let mid = (split >> 16) as u32;
    ((u64::from(mid) * u64::from(count)) >> 32) as u32
}

/// The hash a key's shard is chosen by: FNV-1a of its text with a final mix, the same in every process.
/// Not [`super::window::key_hash`], which is keyed with a per-process random seed so that names cannot be
/// aimed at one bucket of the rules' tables. Each shard keeps its share of a rule's `max_keys`, so under
/// a flood that fills them the keys a rule drops depend on which shard each key is in; with the seeded
/// hash, replaying the same file dropped different keys from run to run (the 10-million-key flood of
/// docs/performance.md). A fixed split can be aimed: names chosen to land in one shard fill its share, at
/// `max_keys / shards`, sooner than a flood spread over the shards would, and no other harm.
pub fn split_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV-1a alone leaves the high bits of short keys poorly mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The user key the engine chose for an event ([`super::UserAliases`]), without borrowing the engine.
#[derive(Debug)]
pub enum UserText {
    /// The event's own sub.
    Sub,
    /// The event's own name.
    Name,
    /// A sub learned from earlier events that carried both (the event has only the name).
    Learned(Box<str>),
}

impl UserText {
    /// Which text `key`, the engine's user key for `ev`, is: the event's sub, its name, or a learned sub.
    pub fn of(ev: &SignInEvent, key: &str) -> UserText {
        let is = |text: Option<&str>| text.is_some_and(|t| std::ptr::eq(t, key));
        if is(ev.user_sub.as_deref()) {
            UserText::Sub
        } else if is(ev.user_name.as_deref()) {
            UserText::Name
        } else {
            UserText::Learned(Box::from(key))
        }
    }
}

/// The keys of one event as the engine worked them out, owned, so that other threads can take them.
#[derive(Debug)]
pub struct Prepared {
    pub user: Option<(UserText, u64)>,
    pub ip: Option<(IpKey, u64)>,
    /// Index of the event's pool key in its batch's [`Batch::pools`].
    pub pool: Option<u32>,
    /// [`split_hash`] of the user key and of the address key, worked out once by the engine for every
    /// worker (`NO_COUNTERPART` when there are no workers: then nothing reads them).
    pub user_split: u64,
    pub ip_split: u64,
}

impl Prepared {
    /// The [`Keys`] every detector takes, as the engine would have handed them on one thread.
    pub fn keys<'a>(&'a self, ev: &'a SignInEvent, pools: &'a [(Box<str>, u64)]) -> Keys<'a> {
        let user_name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let user = self.user.as_ref().and_then(|(text, hash)| {
            let text = match text {
                UserText::Sub => ev.user_sub.as_deref()?,
                UserText::Name => user_name?,
                UserText::Learned(sub) => sub,
            };
            Some((text, *hash))
        });
        let ip = self.ip.as_ref().map(|(ip, hash)| (ip.as_str(), *hash));
        let pool = self.pool.and_then(|i| pools.get(i as usize)).map(|(text, hash)| (&**text, *hash));
        Keys::prehashed(user, user_name, ip).with_pool(pool).with_splits(self.user_split, self.ip_split)
    }
}

/// What the engine hands the detectors, in order.
pub enum Step {
    /// Event time reached this: quiet incidents close.
    Advance(Timestamp),
    /// One event, with its keys.
    Event(Box<SignInEvent>, Prepared),
}

/// Steps handed to every thread at once.
#[derive(Default)]
pub struct Batch {
    pub steps: Vec<Step>,
    /// The pool keys the batch's events name (a log has one or a few), as text with its hash.
    pub pools: Vec<(Box<str>, u64)>,
}

impl Batch {
    /// The index of pool key `text` (with `hash`) in this batch: the last one if it is the same (as it is
    /// for nearly every event), else added. Constant time even when every event names another pool.
    pub fn pool(&mut self, text: &str, hash: u64) -> u32 {
        if self.pools.last().is_none_or(|(_, h)| *h != hash) {
            self.pools.push((Box::from(text), hash));
        }
        (self.pools.len() - 1) as u32
    }
}

/// A finding with where a single thread would have produced it: at which step, by which rule.
pub struct Found {
    pub step: u32,
    pub detector: u32,
    pub finding: Finding,
}

/// Runs `detectors` (each with its index among the engine's rules) over `steps`, appending what they find.
/// Within one thread the results come out by step, then by rule, as the engine's merge expects.
pub fn run(batch: &Batch, detectors: &mut [(usize, &mut dyn Detector)], found: &mut Vec<Found>) {
    let mut out = Vec::new();
    for (n, step) in batch.steps.iter().enumerate() {
        let mut tag = |index: usize, out: &mut Vec<Finding>| {
            if !out.is_empty() {
                found.extend(out.drain(..).map(|finding| Found { step: n as u32, detector: index as u32, finding }));
            }
        };
        match step {
            Step::Advance(now) => {
                for (index, d) in detectors.iter_mut() {
                    d.advance(*now, &mut out);
                    tag(*index, &mut out);
                }
            }
            Step::Event(ev, prepared) => {
                let keys = prepared.keys(ev, &batch.pools);
                for (index, d) in detectors.iter_mut() {
                    d.observe(ev, &keys, &mut out);
                    tag(*index, &mut out);
                }
            }
        }
    }
}

/// Rule instances with their index among the engine's rules.
pub type Indexed = Vec<(usize, Box<dyn Detector>)>;

/// Sharded instances on a thread of their own, and the way to reach them.
pub struct Worker {
    /// The instances, by their index among the engine's rules. Locked by the thread while it works on a
    /// batch, and by the engine between batches (figures, end of input).
    detectors: Arc<Mutex<Indexed>>,
    batches: Option<Sender<Arc<Batch>>>,
    results: Receiver<Vec<Found>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a thread running `detectors`.
    pub fn start(n: usize, detectors: Indexed) -> std::io::Result<Worker> {
        let detectors = Arc::new(Mutex::new(detectors));
        let (batches, todo) = bounded::<Arc<Batch>>(1);
        let (done, results) = bounded::<Vec<Found>>(1);
        let mine = Arc::clone(&detectors);
        let thread = std::thread::Builder::new().name(format!("detect-{n}")).spawn(move || {
            for batch in todo {
                let mut found = Vec::new();
                {
                    let mut held = mine.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut refs: Vec<(usize, &mut dyn Detector)> =
                        held.iter_mut().map(|(i, d)| (*i, &mut **d as &mut dyn Detector)).collect();
                    run(&batch, &mut refs, &mut found);
                }
                drop(batch);
                if done.send(found).is_err() {
                    return;
                }
            }
        })?;
        Ok(Worker { detectors, batches: Some(batches), results, thread: Some(thread) })
    }

    /// Hands the worker a batch; [`Worker::collect`] waits for its findings.
    pub fn send(&self, batch: Arc<Batch>) {
        if let Some(tx) = &self.batches {
            // Fails only when the thread ended, which `collect` reports.
            let _ = tx.send(batch);
        }
    }

    /// The findings of the batch last sent. A worker thread ends early only by a panic in a rule (a bug,
    /// already printed by the thread): the engine cannot go on without its share of the keys.
    pub fn collect(&self) -> Vec<Found> {
        match self.results.recv() {
            Ok(found) => found,
            Err(_) => panic!("a detection thread stopped (see the panic above)"),
        }
    }

    /// Calls `f` on each instance, with its index among the engine's rules, while the thread is idle.
    pub fn with_detectors<T>(&self, f: impl FnOnce(&mut [(usize, Box<dyn Detector>)]) -> T) -> T {
        let mut held = self.detectors.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut held)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.batches = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_exactly_one_shard_and_the_shards_share_them_evenly() {
        for count in [1usize, 2, 3, 7, MAX_SHARDS] {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count)).collect();
            let mut per = vec![0usize; count];
            for k in 0..20_000u64 {
                let h = crate::detect::window::hash_of(k);
                let owners: Vec<usize> = (0..count).filter(|&i| shards[i].owns(h)).collect();
                assert_eq!(owners.len(), 1, "key {k} with {count} shards: owners {owners:?}");
                per[owners[0]] += 1;
            }
            let even = 20_000 / count;
            assert!(per.iter().all(|&n| n > even * 8 / 10 && n < even * 12 / 10), "{count} shards: {per:?}");
        }
        assert!((0..100u64).all(|k| Shard::WHOLE.owns(k)));
    }

    #[test]
    fn a_key_has_the_same_shard_in_every_process() {
        // Pinned: a split from the per-process seeded key hash fails this, and with it a saturated rule
        // dropped different keys each time the same file was replayed.
        assert_eq!(split_hash(""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(split_hash("203.0.113.7"), 0x12ba_66e1_b50a_1879);
        assert_eq!(split_hash("alice@example.com"), 0x5f12_4bef_ce03_13b8);
        // Spread evenly over the shards, like the keyed hash it replaced.
        let two = [Shard::new(0, 2), Shard::new(1, 2)];
        let first = (0..20_000).filter(|i| two[0].owns(split_hash(&format!("user{i}")))).count();
        assert!((8_000..12_000).contains(&first), "{first} of 20000 in shard 0");
        assert!((0..20_000).all(|i| {
            let h = split_hash(&format!("user{i}"));
            two[0].owns(h) != two[1].owns(h)
        }));
    }
}
