//! The report's aggregate of the events: sign-ins per time bucket, per-country counts and, for accounts that
//! appear in findings, their sign-ins in order. Bounded whatever the input: never one row per event.
//!
//! A replay does not know which accounts will turn up in findings until the rules say so, so every account
//! keeps its last few sign-ins in a fixed table of slots (an account whose slot is taken by another loses
//! that history: counted). When a finding names an account, its recent sign-ins move to a story that then
//! keeps every later sign-in, up to a cap.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::event::{EventKind, Outcome, SignInEvent};
use crate::time::Timestamp;

/// Bucket widths in minutes, each a multiple of the one before, so buckets merge into wider ones exactly
/// and the timeline can be drawn at any later width: five minutes shows a burst start, a week a year.
pub const WIDTHS_MIN: [i64; 10] = [5, 10, 30, 60, 180, 360, 720, 1_440, 10_080, 40_320];
/// The first bucket width.
pub const FIRST_BUCKET_MS: i64 = WIDTHS_MIN[0] * 60_000;
/// Distinct buckets kept before they widen: a month at five minutes would be 8,640.
pub const MAX_BUCKETS: usize = 4_096;

/// The bucket width after `ms`: the next of [`WIDTHS_MIN`], then doubling (only hostile timestamps spread
/// over centuries get there).
pub fn wider(ms: i64) -> i64 {
    WIDTHS_MIN.iter().map(|m| m * 60_000).find(|&w| w > ms).unwrap_or(ms.saturating_mul(2))
}
/// Recent sign-ins every account keeps until a finding names it: most rules' thresholds are 10 to 30, so
/// this shows most of the run-up.
pub const RECENT_PER_ACCOUNT: usize = 16;
/// Slots of the recent-sign-in table (each at most a name and [`RECENT_PER_ACCOUNT`] entries of 40 bytes):
/// about 23 MB at worst, and a pool of 30,000 active users mostly keeps its own slots. An account whose
/// slot another took says so in its story.
pub const ACCOUNT_SLOTS: usize = 32_768;
/// Accounts with a full story: more than an analyst will read in one report.
pub const MAX_STORIES: usize = 200;
/// Sign-ins kept per story (the earliest): a credential-stuffing run against one account is a few hundred.
pub const MAX_STORY_EVENTS: usize = 500;
/// Distinct (city, country) pairs remembered; later ones show as unknown places (counted).
pub const MAX_PLACES: usize = 4_096;
/// Distinct countries counted; later ones are counted together as "other" (countries are a few hundred,
/// so only hostile input reaches this).
pub const MAX_COUNTRIES: usize = 1_024;
/// Longest city, country or account name kept, in bytes (longer ones are cut): log names are attacker-made.
pub const MAX_NAME_BYTES: usize = 128;

/// The keys of the slot hash (any fixed values do: they only need to be the same in every run).
const SLOT_SEEDS: [u64; 4] =
    [0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9, 0x94d0_49bb_1331_11eb, 0x2545_f491_4f6c_dd1d];

/// The place of an entry with no city or country, or one past [`MAX_PLACES`].
pub const NO_PLACE: u32 = u32::MAX;

/// Sign-in counts of one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Successful sign-ins.
    pub success: u64,
    /// Failed sign-ins (wrong credentials, unknown user, bad code).
    pub failure: u64,
    /// Every other event: other kinds of activity, throttled, in-progress steps.
    pub other: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.success += o.success;
        self.failure += o.failure;
        self.other += o.other;
    }

    pub fn total(&self) -> u64 {
        self.success + self.failure + self.other
    }
}

/// One remembered sign-in of an account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub time: Timestamp,
    pub outcome: Outcome,
    pub kind: EventKind,
    pub ip: Option<IpAddr>,
    /// Index into [`Activity::place`], or [`NO_PLACE`].
    pub place: u32,
}

/// An account's last sign-ins, a ring kept in place: an account taking the slot reuses it (no allocation
/// per event, and none per new account once the name's buffer is large enough).
struct Slot {
    account: String,
    recent: [Entry; RECENT_PER_ACCOUNT],
    /// Where the next entry goes.
    next: usize,
    /// Sign-ins seen since the account took the slot (more than the ring holds means some were forgotten).
    seen: u64,
}

impl Slot {
    fn push(&mut self, e: Entry) {
        self.recent[self.next] = e;
        self.next = (self.next + 1) % RECENT_PER_ACCOUNT;
        self.seen += 1;
    }

    /// The remembered entries, oldest first.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        let kept = (self.seen as usize).min(RECENT_PER_ACCOUNT);
        let (newer, older) = self.recent.split_at(self.next);
        older.iter().chain(newer).skip(RECENT_PER_ACCOUNT - kept)
    }
}

const EMPTY: Entry =
    Entry { time: Timestamp(0), outcome: Outcome::Unknown, kind: EventKind::Other, ip: None, place: NO_PLACE };

/// The sign-ins of an account named by a finding.
#[derive(Debug, Default)]
pub struct Story {
    pub entries: Vec<Entry>,
    /// Its history before the finding named it was longer than what was remembered.
    pub earlier_forgotten: bool,
    /// Sign-ins after the first [`MAX_STORY_EVENTS`], not kept.
    pub later_dropped: u64,
}

/// What a cap cut, said in the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cuts {
    /// Times an account's recent sign-ins were forgotten because another account took its slot.
    pub slot_taken: u64,
    /// Accounts named by findings beyond [`MAX_STORIES`]: no story.
    pub stories_untracked: u64,
    /// Sign-ins past [`MAX_STORY_EVENTS`] in some story.
    pub story_events_dropped: u64,
    /// Sign-ins whose place was not remembered because [`MAX_PLACES`] was reached.
    pub places_unremembered: u64,
    /// Sign-ins counted under "other countries" because [`MAX_COUNTRIES`] was reached.
    pub countries_other: u64,
    /// Names cut to [`MAX_NAME_BYTES`].
    pub names_cut: u64,
}

/// Per-country sign-in counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountryCounts {
    pub success: u64,
    pub failure: u64,
}

/// The aggregate the report is drawn from (see the module docs).
pub struct Activity {
    bucket_ms: i64,
    buckets: BTreeMap<i64, Counts>,
    slots: Vec<Option<Box<Slot>>>,
    stories: HashMap<Box<str>, Story, ahash::RandomState>,
    places: Vec<(Box<str>, Box<str>)>,
    place_index: HashMap<u64, u32>,
    countries: HashMap<Box<str>, CountryCounts, ahash::RandomState>,
    other_countries: CountryCounts,
    /// Hashes (city, country) pairs to find their index; random keys, as for any map of log strings.
    hasher: ahash::RandomState,
    /// Picks an account's slot. Fixed keys, so the same input gives the same report: with random ones, which
    /// accounts share a slot (and so which stories start late) changed from run to run. Someone who reads
    /// these keys can make names that share a victim's slot, which only costs the victim's story its
    /// run-up, and the story says so.
    slot_hasher: ahash::RandomState,
    pub cuts: Cuts,
    pub events: u64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            bucket_ms: FIRST_BUCKET_MS,
            buckets: BTreeMap::new(),
            slots: (0..ACCOUNT_SLOTS).map(|_| None).collect(),
            stories: HashMap::default(),
            places: Vec::new(),
            place_index: HashMap::new(),
            countries: HashMap::default(),
            other_countries: CountryCounts::default(),
            hasher: ahash::RandomState::new(),
            slot_hasher: ahash::RandomState::with_seeds(SLOT_SEEDS[0], SLOT_SEEDS[1], SLOT_SEEDS[2], SLOT_SEEDS[3]),
            cuts: Cuts::default(),
            events: 0,
        }
    }

    /// Takes one accepted event.
    pub fn observe(&mut self, ev: &SignInEvent) {
        self.events += 1;
        self.count_in_bucket(ev);
        let is_sign_in = ev.kind == EventKind::SignIn;
        if is_sign_in {
            if let Some(country) = ev.country.as_deref() {
                self.count_country(country, ev.outcome);
            }
        }
        let Some(account) = ev.user_key() else { return };
        let place = self.place_of(ev.city.as_deref(), ev.country.as_deref());
        let entry = Entry { time: ev.time, outcome: ev.outcome, kind: ev.kind, ip: ev.ip, place };
        let account = self.cut(account);
        if let Some(story) = self.stories.get_mut(account) {
            if story.entries.len() < MAX_STORY_EVENTS {
                story.entries.push(entry);
            } else {
                story.later_dropped += 1;
                self.cuts.story_events_dropped += 1;
            }
            return;
        }
        let i = self.slot_of(account);
        let slot = self.slots[i].get_or_insert_with(|| {
            Box::new(Slot { account: String::new(), recent: [EMPTY; RECENT_PER_ACCOUNT], next: 0, seen: 0 })
        });
        if slot.account != account {
            if slot.seen > 0 {
                self.cuts.slot_taken += 1;
            }
            slot.account.clear();
            slot.account.push_str(account);
            slot.next = 0;
            slot.seen = 0;
        }
        slot.push(entry);
    }

    /// A finding named this account: from now on its story keeps every sign-in (up to the caps).
    pub fn flag(&mut self, account: &str) {
        let account = self.cut(account);
        if self.stories.contains_key(account) {
            return;
        }
        if self.stories.len() >= MAX_STORIES {
            self.cuts.stories_untracked += 1;
            return;
        }
        let i = self.slot_of(account);
        let mut story = Story::default();
        if let Some(slot) = self.slots[i].as_mut().filter(|s| s.account == account && s.seen > 0) {
            story.earlier_forgotten = slot.seen > RECENT_PER_ACCOUNT as u64;
            story.entries.extend(slot.entries());
            slot.seen = 0;
            slot.account.clear();
        }
        self.stories.insert(account.into(), story);
    }

    fn count_in_bucket(&mut self, ev: &SignInEvent) {
        let key = ev.time.0.div_euclid(self.bucket_ms) * self.bucket_ms;
        let c = self.buckets.entry(key).or_default();
        match (ev.kind, ev.outcome) {
            (EventKind::SignIn, Outcome::Success) => c.success += 1,
            (EventKind::SignIn, Outcome::Failure) => c.failure += 1,
            _ => c.other += 1,
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.coarsen();
        }
    }

    /// Widens the buckets, merging neighbours (hostile timestamps spread over years end up as a few
    /// thousand wide buckets, not millions of narrow ones).
    fn coarsen(&mut self) {
        self.bucket_ms = wider(self.bucket_ms);
        let old = std::mem::take(&mut self.buckets);
        for (k, c) in old {
            self.buckets.entry(k.div_euclid(self.bucket_ms) * self.bucket_ms).or_default().add(&c);
        }
    }

    fn count_country(&mut self, country: &str, outcome: Outcome) {
        let country = self.cut(country);
        if self.countries.len() < MAX_COUNTRIES && !self.countries.contains_key(country) {
            self.countries.insert(country.into(), CountryCounts::default());
        }
        let counts = match self.countries.get_mut(country) {
            Some(c) => c,
            None => {
                self.cuts.countries_other += 1;
                &mut self.other_countries
            }
        };
        match outcome {
            Outcome::Success => counts.success += 1,
            Outcome::Failure => counts.failure += 1,
            _ => {}
        }
    }

    fn place_of(&mut self, city: Option<&str>, country: Option<&str>) -> u32 {
        if city.is_none() && country.is_none() {
            return NO_PLACE;
        }
        let (city, country) = (self.cut(city.unwrap_or("")), self.cut(country.unwrap_or("")));
        let h = self.hasher.hash_one((city, country));
        if let Some(&i) = self.place_index.get(&h) {
            let (c, n) = &self.places[i as usize];
            // A 64-bit keyed-hash collision is as good as impossible; if one happens, the place is unknown.
            return if &**c == city && &**n == country { i } else { NO_PLACE };
        }
        if self.places.len() >= MAX_PLACES {
            self.cuts.places_unremembered += 1;
            return NO_PLACE;
        }
        let i = self.places.len() as u32;
        self.places.push((city.into(), country.into()));
        self.place_index.insert(h, i);
        i
    }

    /// The name cut to [`MAX_NAME_BYTES`] at a character boundary.
    fn cut<'s>(&mut self, s: &'s str) -> &'s str {
        if s.len() <= MAX_NAME_BYTES {
            return s;
        }
        self.cuts.names_cut += 1;
        let mut end = MAX_NAME_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        &s[..end]
    }

    fn slot_of(&self, account: &str) -> usize {
        (self.slot_hasher.hash_one(account) % ACCOUNT_SLOTS as u64) as usize
    }

    /// The bucket width in milliseconds and the buckets (start time → counts), in time order.
    pub fn buckets(&self) -> (i64, &BTreeMap<i64, Counts>) {
        (self.bucket_ms, &self.buckets)
    }

    /// The (city, country) of a place index; empty strings for a missing half.
    pub fn place(&self, i: u32) -> Option<(&str, &str)> {
        self.places.get(i as usize).map(|(c, n)| (&**c, &**n))
    }

    /// The story of an account named by a finding, its entries in time order.
    pub fn story(&self, account: &str) -> Option<&Story> {
        self.stories.get(account)
    }

    /// Puts every story's entries in time order (events reach the report in arrival order).
    pub fn sort_stories(&mut self) {
        for s in self.stories.values_mut() {
            s.entries.sort_by_key(|e| e.time);
        }
    }

    /// Countries with their counts, most failed sign-ins first, and the count of countries past the cap.
    pub fn countries(&self) -> (Vec<(&str, CountryCounts)>, CountryCounts) {
        let mut v: Vec<(&str, CountryCounts)> = self.countries.iter().map(|(k, c)| (&**k, *c)).collect();
        v.sort_by(|a, b| b.1.failure.cmp(&a.1.failure).then(b.1.success.cmp(&a.1.success)).then(a.0.cmp(b.0)));
        (v, self.other_countries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;

    fn ev(ms: i64, user: &str, outcome: Outcome, city: &str) -> SignInEvent {
        let mut e = SignInEvent::new(Timestamp(ms), EventKind::SignIn, outcome, Origin::new("t".into(), 1));
        e.user_name = Some(user.into());
        e.city = Some(city.into());
        e.country = Some("France".into());
        e
    }

    #[test]
    fn buckets_count_outcomes_and_coarsen_under_spread_timestamps() {
        let mut a = Activity::new();
        a.observe(&ev(0, "a", Outcome::Success, "Paris"));
        a.observe(&ev(1_000, "a", Outcome::Failure, "Paris"));
        let (w, b) = a.buckets();
        assert_eq!(w, FIRST_BUCKET_MS);
        assert_eq!(b.get(&0), Some(&Counts { success: 1, failure: 1, other: 0 }));
        // One event per bucket over far more buckets than the cap: the width grows, the count stays bounded.
        for i in 0..(MAX_BUCKETS as i64 * 3) {
            a.observe(&ev(i * FIRST_BUCKET_MS, "b", Outcome::Failure, "Paris"));
        }
        let (w, b) = a.buckets();
        assert!(w > FIRST_BUCKET_MS && b.len() <= MAX_BUCKETS, "{w} {}", b.len());
        let total: u64 = b.values().map(Counts::total).sum();
        assert_eq!(total, 2 + MAX_BUCKETS as u64 * 3, "no event lost by coarsening");
    }

    #[test]
    fn each_width_is_a_multiple_of_the_one_before() {
        let mut w = FIRST_BUCKET_MS;
        for _ in 0..20 {
            let next = wider(w);
            assert!(next > w && next % w == 0, "{w} -> {next}");
            w = next;
        }
    }

    #[test]
    fn a_flagged_account_keeps_its_recent_history_and_everything_after() {
        let mut a = Activity::new();
        for i in 0..(RECENT_PER_ACCOUNT as i64 + 2) {
            a.observe(&ev(i, "victim", Outcome::Failure, "Paris"));
        }
        a.flag("victim");
        a.observe(&ev(100, "victim", Outcome::Success, "Lyon"));
        let s = a.story("victim").expect("flagged");
        assert_eq!(s.entries.len(), RECENT_PER_ACCOUNT + 1);
        assert!(s.earlier_forgotten, "two early sign-ins were forgotten");
        let times: Vec<i64> = s.entries.iter().map(|e| e.time.0).collect();
        let expected: Vec<i64> = (2..(RECENT_PER_ACCOUNT as i64 + 2)).chain([100]).collect();
        assert_eq!(times, expected, "the last sign-ins before the flag, oldest first, then the later one");
        assert_eq!(a.place(s.entries[RECENT_PER_ACCOUNT].place), Some(("Lyon", "France")));
        assert!(a.story("someone-else").is_none());
    }

    #[test]
    fn the_same_accounts_share_slots_in_every_run() {
        let (a, b) = (Activity::new(), Activity::new());
        for name in ["alice", "bob", "<script>", "sub-1234"] {
            assert_eq!(a.slot_of(name), b.slot_of(name), "{name}");
        }
    }

    #[test]
    fn stories_and_names_are_capped() {
        let mut a = Activity::new();
        for i in 0..(MAX_STORIES + 3) {
            a.flag(&format!("u{i}"));
        }
        assert_eq!(a.cuts.stories_untracked, 3);
        for i in 0..(MAX_STORY_EVENTS as i64 + 5) {
            a.observe(&ev(i, "u0", Outcome::Failure, "Paris"));
        }
        assert_eq!(a.story("u0").map(|s| s.later_dropped), Some(5));
        let long = "x".repeat(MAX_NAME_BYTES * 4);
        a.observe(&ev(0, &long, Outcome::Failure, &long));
        assert!(a.cuts.names_cut >= 2);
    }
}
