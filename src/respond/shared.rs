//! The shared-address guard's input: how many distinct users signed in successfully from an address in
//! the last day. An office NAT or a carrier gateway has many; an attacker's address has few or none.
//!
//! The guard asks through [`SharedAddresses`], one small trait, so its figure can come from anywhere: here
//! from [`SuccessTracker`], fed every sign-in event the monitor reads; a correlation stage that already
//! counts it per address can implement the trait instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::event::{EventKind, Outcome, SignInEvent};
use crate::time::Timestamp;

/// The look-back of "in the last day".
pub const SHARED_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Addresses tracked at most (about 100 bytes each plus their users); past it new addresses are not
/// tracked until a sweep frees room, and are counted ([`SuccessTracker::untracked`]).
pub const MAX_TRACKED_ADDRESSES: usize = 200_000;

/// How many distinct users signed in successfully from an address in the last day.
pub trait SharedAddresses: Send + Sync {
    fn successful_users(&self, ip: IpAddr) -> usize;
}

/// Distinct users with a successful sign-in per address over the last day, on event time. Bounded: per
/// address it keeps at most `cap` users (enough to say "more than the policy's limit"), and at most
/// [`MAX_TRACKED_ADDRESSES`] addresses.
pub struct SuccessTracker {
    by_ip: HashMap<IpAddr, Vec<(u64, i64)>, ahash::RandomState>,
    cap: usize,
    hasher: ahash::RandomState,
    newest_ms: i64,
    last_sweep_ms: i64,
    /// Successful sign-ins from addresses not tracked because the table was full.
    pub untracked: u64,
}

impl SuccessTracker {
    /// Keeps up to `cap` users per address: one more than the policy's `max_shared_users` is enough.
    pub fn new(cap: usize) -> SuccessTracker {
        SuccessTracker {
            by_ip: HashMap::default(),
            cap: cap.max(1),
            hasher: ahash::RandomState::new(),
            newest_ms: i64::MIN,
            last_sweep_ms: i64::MIN,
            untracked: 0,
        }
    }

    /// Takes one event; only successful sign-ins with an address and a user count.
    pub fn observe(&mut self, ev: &SignInEvent) {
        if ev.kind != EventKind::SignIn || ev.outcome != Outcome::Success {
            return;
        }
        let (Some(ip), Some(user)) = (ev.ip, ev.user_key()) else { return };
        self.record(ip, user, ev.time);
    }

    fn record(&mut self, ip: IpAddr, user: &str, at: Timestamp) {
        self.newest_ms = self.newest_ms.max(at.0);
        if self.newest_ms.saturating_sub(self.last_sweep_ms) > SHARED_WINDOW_MS / 24 {
            self.sweep();
        }
        let h = self.hasher.hash_one(user);
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_TRACKED_ADDRESSES {
            self.untracked += 1;
            return;
        }
        let users = self.by_ip.entry(ip).or_default();
        if let Some(u) = users.iter_mut().find(|(k, _)| *k == h) {
            u.1 = u.1.max(at.0);
        } else if users.len() < self.cap {
            users.push((h, at.0));
        } else if let Some(oldest) = users.iter_mut().min_by_key(|(_, t)| *t) {
            if oldest.1 < at.0 {
                *oldest = (h, at.0);
            }
        }
    }

    /// Forgets users (and addresses) not seen within the window.
    fn sweep(&mut self) {
        let horizon = self.newest_ms.saturating_sub(SHARED_WINDOW_MS);
        self.by_ip.retain(|_, users| {
            users.retain(|(_, t)| *t >= horizon);
            !users.is_empty()
        });
        self.last_sweep_ms = self.newest_ms;
    }

    pub fn successful_users(&self, ip: IpAddr) -> usize {
        let horizon = self.newest_ms.saturating_sub(SHARED_WINDOW_MS);
        self.by_ip.get(&ip).map_or(0, |u| u.iter().filter(|(_, t)| *t >= horizon).count())
    }
}

/// The tracker shared by the monitor loop (which feeds it) and the response sink (which asks it).
#[derive(Clone)]
pub struct SharedTracker(pub Arc<Mutex<SuccessTracker>>);

impl SharedTracker {
    pub fn new(cap: usize) -> SharedTracker {
        SharedTracker(Arc::new(Mutex::new(SuccessTracker::new(cap))))
    }

    pub fn observe(&self, ev: &SignInEvent) {
        // Most events are failures or other kinds: decided without the lock.
        if ev.kind != EventKind::SignIn || ev.outcome != Outcome::Success || ev.ip.is_none() {
            return;
        }
        if let Ok(mut t) = self.0.lock() {
            t.observe(ev);
        }
    }
}

impl SharedAddresses for SharedTracker {
    fn successful_users(&self, ip: IpAddr) -> usize {
        self.0.lock().map_or(0, |t| t.successful_users(ip))
    }
}

/// No figure at all (`respond --from` without events): every address counts as unshared.
pub struct NoFigures;

impl SharedAddresses for NoFigures {
    fn successful_users(&self, _: IpAddr) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_users_in_the_last_day_are_counted_up_to_the_cap() {
        let mut t = SuccessTracker::new(3);
        let nat: IpAddr = "198.51.100.10".parse().unwrap();
        let hour = 3_600_000;
        for (i, user) in ["a", "b", "a", "c", "d", "e"].iter().enumerate() {
            t.record(nat, user, Timestamp(i as i64 * hour));
        }
        assert_eq!(t.successful_users(nat), 3, "capped: enough to say 'more than 2'");
        assert_eq!(t.successful_users("192.0.2.1".parse().unwrap()), 0);
        // A day later without new sign-ins, the address is no longer known as shared.
        t.record("192.0.2.2".parse().unwrap(), "z", Timestamp(40 * hour));
        assert_eq!(t.successful_users(nat), 0);
    }
}
