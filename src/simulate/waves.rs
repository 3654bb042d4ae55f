//! The attacks no single address or account reveals (issue 13): credential stuffing through residential
//! proxies, low-and-slow guessing, sign-up floods for SMS pumping, and passwords stopped only by MFA.
//! Each is drawn as such campaigns look in a real pool, at offsets from 0; `attacks::plan_all` places it.

use std::collections::HashSet;
use std::sync::Arc;

use super::attacks::{attempt, Origin, Planner, MFA_SPREAD_USERS, PROXY_ATTEMPTS};
use super::benign::leaked_name;
use super::cities::{self, CITIES};
use super::plan::{Action, NewUser, Planned, Response, Step, Who, DEVICES};
use crate::time::{Span, Timestamp};

/// A proxy campaign runs this many minutes.
const PROXY_MINUTES: (i64, i64) = (60, 120);
/// Per mille of its attempts on names the pool does not have (leaked lists are mostly other sites' users).
const PROXY_UNKNOWN_PERMILLE: (i64, i64) = (800, 900);
/// Per mille of its attempts that succeed: the leaked password was still the user's.
const PROXY_SUCCESS_PERMILLE: (i64, i64) = (10, 20);
/// Share of proxy addresses that try twice (the rest once): about 1.5 tries per address.
const PROXY_SECOND_TRY: f64 = 0.5;
/// A proxy's second try comes this many seconds after its first.
const PROXY_RETRY_SECS: (i64, i64) = (2, 120);
/// Share of proxies on IPv6 (residential ISPs hand out /64s).
const PROXY_V6_SHARE: f64 = 0.15;
/// Share of proxy attempts that present an old browser build (tooling reuses user agents).
const PROXY_STALE_UA: f64 = 0.3;
/// The Chrome 114 entry of `DEVICES`.
const STALE_CHROME: u8 = 11;

/// A slow guesser tries for this many hours...
const SLOW_HOURS: (i64, i64) = (6, 10);
/// ...every 5 to 15 minutes (with seconds of jitter), below every burst threshold.
const SLOW_GAP_SECS: (i64, i64) = (5 * 60, 15 * 60);
/// ...from this many addresses.
const SLOW_ADDRESSES: (i64, i64) = (1, 3);

/// A sign-up flood sends this many sign-ups (full scale)...
const FLOOD_SIGNUPS: (i64, i64) = (300, 800);
/// ...over this many minutes...
const FLOOD_MINUTES: (i64, i64) = (30, 60);
/// ...from this many addresses.
const FLOOD_ADDRESSES: (i64, i64) = (3, 10);
/// The fewest sign-ups whatever the scale: a flood of a handful is no flood.
const FLOOD_MIN_SIGNUPS: i64 = 40;
/// Country calling codes SMS pumping favours (premium and high-termination-fee ranges), and the length
/// of the national number after each.
const PUMPED_PREFIXES: [(&str, usize); 8] =
    [("+44", 10), ("+234", 10), ("+7", 10), ("+880", 10), ("+92", 10), ("+371", 8), ("+63", 10), ("+216", 8)];

/// An MFA wall: this many sign-ins...
const WALL_SIGNINS: (i64, i64) = (5, 10);
/// ...over this many minutes...
const WALL_MINUTES: (i64, i64) = (20, 60);
/// ...from this many addresses.
const WALL_ADDRESSES: (i64, i64) = (1, 2);
/// An MFA wall spread: this many minutes, 1 or 2 tries per account.
const SPREAD_MINUTES: (i64, i64) = (30, 90);
/// Seconds from the password step to the (wrong) code.
const CODE_SECS: (i64, i64) = (8, 45);

impl Planner<'_> {
    /// `lo..=hi` scaled to the pool, at least `floor`.
    pub(super) fn scaled(&mut self, (lo, hi): (i64, i64), floor: i64) -> i64 {
        let n = self.rng.range(lo, hi) as f64 * self.scale;
        (n.round() as i64).max(floor)
    }

    /// A residential address somewhere in the world (any city: proxy networks rent home connections in
    /// every country), never used before in this run.
    fn proxy(&mut self) -> Origin {
        loop {
            let city = self.rng.below(CITIES.len() as u64) as usize;
            let ip = if self.rng.chance(PROXY_V6_SHARE) {
                cities::proxy_v6(city, self.rng)
            } else {
                cities::proxy_v4(city, self.rng)
            };
            if self.used_ips.insert(ip) {
                let device = if self.rng.chance(PROXY_STALE_UA) {
                    STALE_CHROME
                } else {
                    self.rng.weighted(DEVICES.iter().map(|d| if d.mobile { 0 } else { d.weight })) as u8
                };
                return Origin { ip, city: city as u8, device };
            }
        }
    }

    /// About 3,000 attempts (scaled to the pool) over 60–120 minutes from about 2,000 residential
    /// addresses, one or two tries each; 80–90 % on names the pool does not have, the rest on real users,
    /// 1–2 % of all attempts succeeding (real users only: the takeovers).
    pub(super) fn proxy_stuffing(&mut self) -> Result<Vec<Planned>, String> {
        let attempts = self.scaled(PROXY_ATTEMPTS, 60);
        let span = Span::mins(self.rng.range(PROXY_MINUTES.0, PROXY_MINUTES.1)).millis();
        let unknown = attempts * self.rng.range(PROXY_UNKNOWN_PERMILLE.0, PROXY_UNKNOWN_PERMILLE.1) / 1000;
        let known = attempts - unknown;
        let successes = (attempts * self.rng.range(PROXY_SUCCESS_PERMILLE.0, PROXY_SUCCESS_PERMILLE.1) / 1000)
            .clamp(1, known.max(1));
        // A leaked list repeats a name now and then (the same user on two sites): about 1.2 tries per
        // real user.
        let real_users = (known * 5 / 6).max(1);
        let mut real = Vec::with_capacity(real_users as usize);
        for _ in 0..real_users {
            real.push(self.victim()?);
        }
        let mut targets: Vec<(Who, bool)> = Vec::with_capacity(attempts as usize);
        for (i, &u) in real.iter().enumerate() {
            targets.push((Who::Pool(u), (i as i64) < successes));
        }
        // The list's repeated real names; never a taken-over account again (its one try succeeded).
        let failing = if successes < real_users { &real[successes as usize..] } else { &real[..] };
        while (targets.len() as i64) < known {
            targets.push((Who::Pool(*self.rng.pick(failing)), false));
        }
        let mut names = HashSet::new();
        while (targets.len() as i64) < attempts {
            let name = leaked_name(self.rng);
            if names.insert(name.clone()) {
                targets.push((Who::Unknown(name.into()), false));
            }
        }
        self.rng.shuffle(&mut targets);
        let mut evs = Vec::with_capacity(targets.len());
        let mut rest = targets.into_iter();
        while let Some((who, hit)) = rest.next() {
            let o = self.proxy();
            let t = Timestamp(self.rng.range(0, span - 1));
            let response = if hit { Response::Pass } else { Response::Fail };
            evs.push(attempt(t, who, o, response));
            if self.rng.chance(PROXY_SECOND_TRY) {
                if let Some((who, hit)) = rest.next() {
                    let t2 = t.saturating_add(Span::secs(self.rng.range(PROXY_RETRY_SECS.0, PROXY_RETRY_SECS.1)));
                    evs.push(attempt(t2, who, o, if hit { Response::Pass } else { Response::Fail }));
                }
            }
        }
        Ok(evs)
    }

    /// One real user, a failure every 5–15 minutes for 6–10 hours from 1–3 addresses, never a success.
    pub(super) fn slow_brute_force(&mut self) -> Result<Vec<Planned>, String> {
        let u = self.victim()?;
        let origins: Vec<Origin> =
            (0..self.rng.range(SLOW_ADDRESSES.0, SLOW_ADDRESSES.1)).map(|_| self.origin()).collect();
        let span = Span(self.rng.range(SLOW_HOURS.0, SLOW_HOURS.1) * 3_600_000).millis();
        let mut evs = Vec::new();
        let mut t = 0;
        while t <= span {
            let o = *self.rng.pick(&origins);
            evs.push(attempt(Timestamp(t), Who::Pool(u), o, Response::Fail));
            t += Span::secs(self.rng.range(SLOW_GAP_SECS.0, SLOW_GAP_SECS.1)).millis() + self.rng.range(0, 999);
        }
        Ok(evs)
    }

    /// 300–800 sign-ups (scaled) in 30–60 minutes from 3–10 addresses in one or two countries, with
    /// phone-number names in 2–3 country prefixes; never confirmed, never signed in to.
    pub(super) fn signup_flood(&mut self) -> Vec<Planned> {
        let n = self.scaled(FLOOD_SIGNUPS, FLOOD_MIN_SIGNUPS);
        let span = Span::mins(self.rng.range(FLOOD_MINUTES.0, FLOOD_MINUTES.1)).millis();
        let countries: Vec<usize> =
            (0..self.rng.range(1, 2)).map(|_| self.rng.below(CITIES.len() as u64) as usize).collect();
        let origins: Vec<Origin> = (0..self.rng.range(FLOOD_ADDRESSES.0, FLOOD_ADDRESSES.1))
            .map(|_| {
                let mut o = self.origin();
                o.city = *self.rng.pick(&countries) as u8;
                o
            })
            .collect();
        let mut prefixes = PUMPED_PREFIXES.to_vec();
        self.rng.shuffle(&mut prefixes);
        prefixes.truncate(self.rng.range(2, 3) as usize);
        let mut names = HashSet::new();
        let mut evs = Vec::with_capacity(n as usize);
        while (evs.len() as i64) < n {
            let (prefix, digits) = *self.rng.pick(&prefixes);
            let mut name = String::from(prefix);
            name.extend((0..digits).map(|i| char::from(b'0' + self.rng.range(i64::from(i == 0), 9) as u8)));
            if !names.insert(name.clone()) {
                continue;
            }
            let t = Timestamp(self.rng.range(0, span - 1));
            let who = Who::New(Arc::new(NewUser { name: name.into(), sub: self.rng.uuid().into(), created: t }));
            let o = *self.rng.pick(&origins);
            evs.push(event(t, Action::SignUp, Response::Pass, Step::Other, who, o));
        }
        evs
    }

    /// One account with MFA: 5–10 sign-ins over 20–60 minutes from 1–2 addresses, each with the right
    /// password and a wrong code.
    pub(super) fn mfa_wall(&mut self) -> Result<Vec<Planned>, String> {
        let u = self.victim_where(|u| u.mfa)?;
        let origins: Vec<Origin> =
            (0..self.rng.range(WALL_ADDRESSES.0, WALL_ADDRESSES.1)).map(|_| self.origin()).collect();
        let span = Span::mins(self.rng.range(WALL_MINUTES.0, WALL_MINUTES.1)).millis();
        let mut evs = Vec::new();
        for _ in 0..self.rng.range(WALL_SIGNINS.0, WALL_SIGNINS.1) {
            let o = *self.rng.pick(&origins);
            let t = Timestamp(self.rng.range(0, span));
            self.stopped_by_mfa(t, Who::Pool(u), o, &mut evs);
        }
        Ok(evs)
    }

    /// One address with the passwords of 8–20 MFA accounts, each stopped by MFA once or twice, over
    /// 30–90 minutes.
    pub(super) fn mfa_wall_spread(&mut self) -> Result<Vec<Planned>, String> {
        let o = self.origin();
        let span = Span::mins(self.rng.range(SPREAD_MINUTES.0, SPREAD_MINUTES.1)).millis();
        let mut evs = Vec::new();
        for _ in 0..self.rng.range(MFA_SPREAD_USERS.0, MFA_SPREAD_USERS.1) {
            let u = self.victim_where(|u| u.mfa)?;
            for _ in 0..self.rng.range(1, 2) {
                let t = Timestamp(self.rng.range(0, span));
                self.stopped_by_mfa(t, Who::Pool(u), o, &mut evs);
            }
        }
        Ok(evs)
    }

    /// A sign-in whose password passes and whose MFA code fails: the challenge, then the wrong answer.
    fn stopped_by_mfa(&mut self, t: Timestamp, who: Who, o: Origin, evs: &mut Vec<Planned>) {
        evs.push(event(t, Action::SignIn, Response::InProgress, Step::MfaPending, who.clone(), o));
        let answer = t.saturating_add(Span::secs(self.rng.range(CODE_SECS.0, CODE_SECS.1)));
        evs.push(event(answer, Action::SignIn, Response::Fail, Step::MfaFailed, who, o));
    }
}

/// An attacker event of any action.
fn event(time: Timestamp, action: Action, response: Response, step: Step, who: Who, o: Origin) -> Planned {
    Planned { action, step, ..attempt(time, who, o, response) }
}
