//! Which addresses are shared by many users (an office, campus or carrier NAT): the distinct users seen at
//! each address and which of them signed in successfully, over the last day, on event time.
//!
//! Two generations of half the window each: an address's figures cover between half the window and all of
//! it. Bounded under a flood of random addresses: each generation keeps at most [`MAX_ADDRESSES`], and an
//! address tells apart at most [`USERS_PER_ADDRESS`] users (enough to judge the spec's `min_users`, at most
//! [`super::spec::MAX_MIN_USERS`], and the share).

use std::collections::HashMap;

use super::spec::SharedAddressSpec;
use crate::detect::window::PreHashed;
use crate::event::Outcome;
use crate::time::{Span, Timestamp};

/// Addresses per generation: about 200 bytes each at most, so two generations stay under 30 MB.
pub const MAX_ADDRESSES: usize = 65_536;
/// Distinct users told apart per address (as 32-bit hashes, with a bit for "succeeded").
pub const USERS_PER_ADDRESS: usize = 2 * super::spec::MAX_MIN_USERS as usize;

#[derive(Default)]
struct Users {
    /// Low 32 bits of the user's hash; the top bit of `ok` says it signed in successfully here.
    hashes: Vec<u32>,
    ok: u64,
    /// Users beyond [`USERS_PER_ADDRESS`], counted once each time one is seen (an upper bound).
    more: u32,
}

impl Users {
    fn add(&mut self, user: u32, success: bool) {
        match self.hashes.iter().position(|h| *h == user) {
            Some(i) => {
                if success {
                    self.ok |= 1 << i;
                }
            }
            None if self.hashes.len() < USERS_PER_ADDRESS => {
                if success {
                    self.ok |= 1 << self.hashes.len();
                }
                self.hashes.push(user);
            }
            None => self.more = self.more.saturating_add(1),
        }
    }
}

/// The tracker. Fed every sign-in the rules see, asked about addresses in findings.
pub struct SharedAddresses {
    spec: SharedAddressSpec,
    current: HashMap<u64, Users, PreHashed>,
    previous: HashMap<u64, Users, PreHashed>,
    /// Start of the current generation.
    since: Option<Timestamp>,
    /// Addresses not tracked because a generation was full.
    pub untracked: u64,
}

/// What is known of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressUse {
    /// Distinct users that signed in successfully from it.
    pub succeeded: u32,
    /// Distinct users seen at it (those told apart, plus an upper bound of the rest).
    pub seen: u32,
}

impl SharedAddresses {
    pub fn new(spec: SharedAddressSpec) -> SharedAddresses {
        SharedAddresses { spec, current: HashMap::default(), previous: HashMap::default(), since: None, untracked: 0 }
    }

    fn half(&self) -> Span {
        Span(self.spec.window.millis() / 2)
    }

    /// A sign-in attempt of `user` (its key hash) at `ip` (its key hash).
    pub fn observe(&mut self, time: Timestamp, ip: u64, user: u64, outcome: Outcome) {
        let success = match outcome {
            Outcome::Success => true,
            Outcome::Failure => false,
            _ => return,
        };
        let since = *self.since.get_or_insert(time);
        if time.since(since) >= self.half() {
            self.previous = std::mem::take(&mut self.current);
            // Whole generations: an idle stretch longer than the window leaves nothing behind.
            let gens = time.since(since).millis() / self.half().millis().max(1);
            if gens >= 2 {
                self.previous.clear();
            }
            self.since = Some(Timestamp(since.0 + gens * self.half().millis()));
        }
        let len = self.current.len();
        match self.current.get_mut(&ip) {
            Some(u) => u.add(user as u32, success),
            None if len < MAX_ADDRESSES => {
                let mut u = Users::default();
                u.add(user as u32, success);
                self.current.insert(ip, u);
            }
            None => self.untracked += 1,
        }
    }

    /// The distinct users seen at `ip` (its key hash) and those that succeeded, over both generations.
    pub fn usage(&self, ip: u64) -> AddressUse {
        let mut seen: Vec<(u32, bool)> = Vec::new();
        let mut more = 0u32;
        for g in [&self.previous, &self.current] {
            if let Some(u) = g.get(&ip) {
                for (i, h) in u.hashes.iter().enumerate() {
                    let ok = u.ok & (1 << i) != 0;
                    match seen.iter_mut().find(|(s, _)| s == h) {
                        Some(e) => e.1 |= ok,
                        None => seen.push((*h, ok)),
                    }
                }
                more = more.saturating_add(u.more);
            }
        }
        AddressUse {
            succeeded: seen.iter().filter(|(_, ok)| *ok).count() as u32,
            seen: (seen.len() as u32).saturating_add(more),
        }
    }

    /// Whether `ip` is shared by many users, as the spec defines it.
    pub fn is_shared(&self, ip: u64) -> bool {
        let u = self.usage(ip);
        u.succeeded >= self.spec.min_users && f64::from(u.succeeded) >= self.spec.success_share * f64::from(u.seen)
    }

    /// Addresses tracked now (both generations).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SharedAddressSpec {
        SharedAddressSpec { min_users: 5, success_share: 0.5, window: Span::hours(24) }
    }

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn many_successful_users_make_an_address_shared_and_a_stuffing_address_is_not() {
        let mut s = SharedAddresses::new(spec());
        for u in 0..8u64 {
            s.observe(Timestamp(T + u as i64), 1, u, Outcome::Success);
        }
        for u in 100..105u64 {
            s.observe(Timestamp(T + 100), 1, u, Outcome::Failure);
        }
        assert_eq!(s.usage(1), AddressUse { succeeded: 8, seen: 13 });
        assert!(s.is_shared(1));
        // Stuffing: 5 of 60 accounts broken into.
        for u in 0..60u64 {
            s.observe(Timestamp(T), 2, u, if u < 5 { Outcome::Success } else { Outcome::Failure });
        }
        assert!(!s.is_shared(2));
        assert!(!s.is_shared(3));
    }

    #[test]
    fn an_address_is_forgotten_after_the_window_and_a_flood_is_bounded() {
        let mut s = SharedAddresses::new(spec());
        for u in 0..8u64 {
            s.observe(Timestamp(T), 1, u, Outcome::Success);
        }
        s.observe(Timestamp(T + Span::hours(13).0), 9, 1, Outcome::Failure);
        assert!(s.is_shared(1), "still within the day");
        s.observe(Timestamp(T + Span::hours(25).0), 9, 1, Outcome::Failure);
        assert!(!s.is_shared(1), "a day later");
        for ip in 0..(MAX_ADDRESSES as u64 + 10) {
            s.observe(Timestamp(T + Span::hours(25).0), 1000 + ip, 1, Outcome::Failure);
        }
        assert!(s.len() <= 2 * MAX_ADDRESSES);
        assert!(s.untracked >= 10);
    }
}
