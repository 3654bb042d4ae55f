//! Benign users: who they are, where they live, and the sessions they sign in with.
//!
//! Every number here keeps benign traffic well below the detectors' defaults (detection.md), so findings on
//! a simulated log come from the planted attacks.

use std::net::IpAddr;

use super::cities::{self, CITIES};
use super::plan::{Action, Planned, Response, RiskTag, Step, Who, DEVICES};
use super::rng::{mix, uuid_text, Rng};
use crate::time::{Span, Timestamp};

/// Mean sign-in sessions per user per day without `--events`: a consumer app's daily active habit.
pub const SESSIONS_PER_USER_DAY: f64 = 2.0;
/// Share of users with MFA on: each of their sign-ins is `InProgress` then `Pass`.
pub const MFA_USER_SHARE: f64 = 0.2;
/// Share of sessions with one or two mistyped passwords before the success.
pub const MISTYPE_SESSION_SHARE: f64 = 0.04;
/// Share of sessions that end in a password reset: 3–4 failures, `ForgotPassword`, then success.
pub const FORGOT_SESSION_SHARE: f64 = 0.001;
/// Share of sessions followed by a password change.
pub const PASSWORD_CHANGE_SHARE: f64 = 0.002;
/// Share of users who sign up during the run (their first session starts with `SignUp`, then
/// `ConfirmSignUp`): a few an hour in a 20,000-user pool.
pub const NEW_USER_SHARE: f64 = 0.005;
/// Share of MFA sessions with a wrong or expired code first: the user signs in again and gets it right.
pub const MFA_TYPO_SHARE: f64 = 0.03;
/// Share of users who have forgotten their password: their first sessions of the run fail and are
/// abandoned, hours apart, before they reset it or it comes back to them.
pub const FORGETFUL_USER_SHARE: f64 = 0.003;
/// A forgetful user abandons this many sessions...
const FORGETFUL_SESSIONS: (i64, i64) = (2, 3);
/// ...each after this many failures.
const GIVE_UP_FAILS: (i64, i64) = (1, 3);
/// Share of users on IPv6.
pub const IPV6_USER_SHARE: f64 = 0.15;
/// Share of users who fly long-haul once during the run.
pub const TRAVELLER_SHARE: f64 = 0.005;
/// Users behind the one office NAT address (at most a tenth of the pool).
pub const OFFICE_USERS: u32 = 200;
/// A user has at most one session with failures per this span: at most 4 failures in any 30 minutes, below
/// failed_login_burst (10 in 5 min), account_takeover (5 then success in 15 min) and
/// distributed_brute_force (10 in 30 min) even when `--events` makes users sign in every few minutes.
pub const FAILURE_COOLDOWN: Span = Span::mins(30);
/// A benign trip goes at least this far (long-haul).
pub const TRIP_MIN_KM: f64 = 3000.0;
/// A benign trip takes at least this long between the last sign-in at home and the first one abroad...
pub const TRIP_MIN_GAP: Span = Span(14 * 3_600_000);
/// ...and never implies more than this speed (impossible_travel starts at 900 km/h).
pub const TRIP_MAX_KMH: f64 = 600.0;
/// Longest time from a session's start to its last event: the sum of the longest gaps `plan_session`
/// draws (confirmation 120 s and sign-in 120 s after a sign-up, the reset of a user back after giving
/// up 300 s, three more failures 3 × 20 s, the reset request 90 s and its use 300 s, a wrong code 45 s
/// and the new sign-in 60 s, MFA 45 s, a password change 600 s). A session that starts just before the
/// end of the run ends this long after it.
pub const MAX_SESSION_SPAN: Span = Span::secs(120 + 120 + 300 + 3 * 20 + 90 + 300 + 45 + 60 + 45 + 600);
/// Events per session implied by the shares above (sign-in, MFA step, mistypes, resets, wrong codes,
/// password changes).
pub const EVENTS_PER_SESSION: f64 = 1.0
    + MFA_USER_SHARE * (1.0 + MFA_TYPO_SHARE * 2.0)
    + MISTYPE_SESSION_SHARE * 1.5
    + FORGOT_SESSION_SHARE * 4.5
    + PASSWORD_CHANGE_SHARE;

/// Relative sign-in rate by local hour: quiet nights, a morning rise, busy working hours, an evening tail.
const DIURNAL: [f64; 24] = [
    0.30, 0.18, 0.12, 0.10, 0.10, 0.15, 0.35, 0.75, 1.30, 1.60, 1.65, 1.55, 1.45, 1.55, 1.60, 1.55, 1.45, 1.35, 1.25,
    1.25, 1.20, 1.00, 0.75, 0.45,
];
const DIURNAL_PEAK: f64 = 1.65;
const DIURNAL_SUM: f64 = 23.0;

const FIRST_NAMES: [&str; 32] = [
    "alice", "bob", "carla", "dmitri", "emma", "farah", "george", "hana", "ivan", "julia", "kenji", "lucia", "mateo",
    "nadia", "oliver", "priya", "quentin", "rosa", "samir", "tomas", "uma", "victor", "wei", "xenia", "yusuf", "zoe",
    "amara", "bruno", "chen", "diego", "elif", "fatima",
];
const LAST_NAMES: [&str; 30] = [
    "smith",
    "garcia",
    "nguyen",
    "muller",
    "rossi",
    "tanaka",
    "kim",
    "silva",
    "patel",
    "okafor",
    "johansson",
    "kowalski",
    "dubois",
    "haddad",
    "ivanova",
    "lee",
    "martin",
    "novak",
    "obrien",
    "perez",
    "quinn",
    "reyes",
    "schmidt",
    "taylor",
    "ueda",
    "vargas",
    "wang",
    "xu",
    "yilmaz",
    "zhang",
];

/// One long-haul trip.
#[derive(Debug, Clone, Copy)]
pub struct Trip {
    pub dest: u8,
    pub depart: Timestamp,
}

/// One user of the pool and what the simulation remembers about them.
#[derive(Debug, Clone)]
pub struct User {
    /// Current city (the home city until a trip).
    pub city: u8,
    pub ip: IpAddr,
    pub device: u8,
    /// Activity relative to the average user (mean 1).
    pub activity: f64,
    pub mfa: bool,
    pub created: Timestamp,
    /// Signs up at their first session.
    pub signs_up: bool,
    /// Behind the office NAT.
    pub office: bool,
    pub fail_ok_after: Timestamp,
    pub last_success: Timestamp,
    /// No benign sessions in `[from, to)`: the user is an attack's target then.
    pub quiet: Option<(Timestamp, Timestamp)>,
    pub trip: Option<Trip>,
    /// Taken by an attack or look-alike (each gets its own users).
    pub attacked: bool,
    /// Sessions still to fail and abandon (a forgotten password).
    pub forgetful: u8,
    /// The first session after the abandoned ones starts with a password reset (else the password has
    /// come back to them).
    pub resets: bool,
    /// The current session's events still to emit, last first.
    pub pending: Vec<Planned>,
}

/// The user name of pool user `idx`: `first.last<idx>`, unique by the index.
pub fn user_name(seed: u64, idx: u32) -> String {
    let h = mix(seed, u64::from(idx));
    let first = FIRST_NAMES[(h % FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[((h >> 20) % LAST_NAMES.len() as u64) as usize];
    format!("{first}.{last}{idx}")
}

/// The sub (UUID) of pool user `idx`.
pub fn user_sub(seed: u64, idx: u32) -> String {
    let h = mix(seed ^ 0x5ab5_0b5e, u64::from(idx));
    uuid_text(h, mix(h, 0x5eed))
}

/// A user name from a leaked list, never one of the pool's (`first.last<idx>` has no `@`).
pub fn leaked_name(rng: &mut Rng) -> String {
    const DOMAINS: [&str; 8] =
        ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "mail.ru", "web.de", "gmx.de"];
    let first = rng.pick(&FIRST_NAMES);
    let last = rng.pick(&LAST_NAMES);
    format!("{first}{last}{}@{}", rng.range(1, 9999), rng.pick(&DOMAINS))
}

/// The benign population and its sign-in rhythm.
pub struct Benign {
    pub users: Vec<User>,
    seed: u64,
    end: Timestamp,
    /// Sessions per millisecond for a user of activity 1 at the average hour.
    per_ms: f64,
}

impl Benign {
    /// Builds the pool. `sessions_per_day` is the mean per user (before the diurnal shape).
    pub fn new(
        users: u32,
        seed: u64,
        start: Timestamp,
        end: Timestamp,
        sessions_per_day: f64,
        rng: &mut Rng,
    ) -> Benign {
        let office_n = OFFICE_USERS.min(users / 10);
        let office_city = cities::weighted_city(rng) as u8;
        let office_ip = cities::benign_v4(office_city as usize, rng);
        let span = end.since(start).millis().max(1);
        let mut pool = Vec::with_capacity(users as usize);
        for idx in 0..users {
            let office = idx < office_n;
            let city = if office { office_city } else { cities::weighted_city(rng) as u8 };
            let ip = if office {
                office_ip
            } else if rng.chance(IPV6_USER_SHARE) {
                cities::benign_v6(city as usize, rng)
            } else {
                cities::benign_v4(city as usize, rng)
            };
            let device = rng.weighted(DEVICES.iter().map(|d| d.weight)) as u8;
            let signs_up = rng.chance(NEW_USER_SHARE);
            let forgetful = if rng.chance(FORGETFUL_USER_SHARE) {
                rng.range(FORGETFUL_SESSIONS.0, FORGETFUL_SESSIONS.1) as u8
            } else {
                0
            };
            // Half of them reset the password when they come back; the other half remember it.
            let resets = forgetful > 0 && rng.chance(0.5);
            let age_days = rng.range(30, 1200);
            let created = Timestamp(start.millis() - age_days * 86_400_000 - rng.range(0, 86_399_999));
            let trip = (!office && rng.chance(TRAVELLER_SHARE)).then(|| Trip {
                dest: cities::far_city(city as usize, TRIP_MIN_KM, rng) as u8,
                depart: Timestamp(start.millis() + rng.range(0, span)),
            });
            pool.push(User {
                city,
                ip,
                device,
                // Mixture with mean 1: everyone signs in sometimes, a few sign in a lot.
                activity: 0.25 + rng.exp(0.75),
                mfa: rng.chance(MFA_USER_SHARE),
                created,
                signs_up,
                office,
                fail_ok_after: Timestamp(i64::MIN / 4),
                last_success: Timestamp(i64::MIN / 4),
                quiet: None,
                trip,
                attacked: false,
                forgetful,
                resets,
                pending: Vec::new(),
            });
        }
        Benign { users: pool, seed, end, per_ms: sessions_per_day / 86_400_000.0 }
    }

    /// Sets the mean sessions per user per day (`--events` scales it).
    pub fn set_sessions_per_day(&mut self, sessions_per_day: f64) {
        self.per_ms = sessions_per_day.max(0.0) / 86_400_000.0;
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Plans user `idx`'s next session after `from`, or returns false when they have none before the end.
    pub fn plan_next(&mut self, idx: u32, from: Timestamp, rng: &mut Rng) -> bool {
        match self.next_session_time(idx, from, rng) {
            Some(t) => {
                self.plan_session(idx, t, rng);
                true
            }
            None => false,
        }
    }

    /// Next session start: a Poisson process thinned by the local-hour rhythm, skipping the user's quiet
    /// window and the flight of their trip.
    fn next_session_time(&mut self, idx: u32, from: Timestamp, rng: &mut Rng) -> Option<Timestamp> {
        let mut t = self.arrival(idx, from, rng)?;
        let u = &self.users[idx as usize];
        if let Some((q0, q1)) = u.quiet {
            if t >= q0 && t < q1 {
                t = self.arrival(idx, q1, rng)?;
            }
        }
        let u = &mut self.users[idx as usize];
        if let Some(trip) = u.trip {
            if t >= trip.depart {
                let km = cities::distance_km(&CITIES[u.city as usize], &CITIES[trip.dest as usize]);
                let flight = Span(((km / TRIP_MAX_KMH) * 3_600_000.0) as i64).max(TRIP_MIN_GAP);
                t = t.max(u.last_success.saturating_add(flight));
                u.city = trip.dest;
                u.ip = cities::benign_v4(trip.dest as usize, rng);
                u.trip = None;
            }
        }
        (t < self.end).then_some(t)
    }

    fn arrival(&self, idx: u32, from: Timestamp, rng: &mut Rng) -> Option<Timestamp> {
        let u = &self.users[idx as usize];
        let peak_rate = self.per_ms * u.activity * DIURNAL_PEAK * 24.0 / DIURNAL_SUM;
        if peak_rate <= 0.0 || !peak_rate.is_finite() {
            return None;
        }
        let city = &CITIES[u.city as usize];
        let mut t = from;
        loop {
            // At least a second between sessions; a real client cannot be faster.
            t = t.saturating_add(Span((rng.exp(1.0 / peak_rate) as i64).max(1000)));
            if t >= self.end {
                return None;
            }
            if rng.unit() * DIURNAL_PEAK < DIURNAL[cities::local_hour(city, t)] {
                return Some(t);
            }
        }
    }

    /// Fills the user's pending events for a session starting at `t`.
    fn plan_session(&mut self, idx: u32, mut t: Timestamp, rng: &mut Rng) {
        let start = t;
        let u = &mut self.users[idx as usize];
        let mut evs = Vec::with_capacity(4);
        let ev = |time: Timestamp, action: Action, response: Response, step: Step, u: &User| Planned {
            time,
            action,
            response,
            step,
            who: Who::Pool(idx),
            ip: u.ip,
            city: u.city,
            device: u.device,
            risk: RiskTag::Benign,
            cognito_only: false,
        };
        if u.signs_up {
            u.signs_up = false;
            u.created = t;
            evs.push(ev(t, Action::SignUp, Response::Pass, Step::Other, u));
            t = t.saturating_add(Span::secs(rng.range(30, 120)));
            evs.push(ev(t, Action::ConfirmSignUp, Response::Pass, Step::Other, u));
            t = t.saturating_add(Span::secs(rng.range(10, 120)));
        }
        let may_fail = t >= u.fail_ok_after;
        if may_fail && u.forgetful > 0 {
            // A forgotten password: a few tries, then the user gives up for now.
            u.forgetful -= 1;
            for i in 0..rng.range(GIVE_UP_FAILS.0, GIVE_UP_FAILS.1) {
                if i > 0 {
                    t = t.saturating_add(Span::secs(rng.range(4, 20)));
                }
                evs.push(ev(t, Action::SignIn, Response::Fail, Step::Password, u));
            }
            u.fail_ok_after = t.saturating_add(FAILURE_COOLDOWN);
            evs.reverse();
            u.pending = evs;
            return;
        }
        if u.resets && u.forgetful == 0 {
            // Back after giving up: this time the user asks for a reset code first.
            u.resets = false;
            evs.push(ev(t, Action::ForgotPassword, Response::Pass, Step::Other, u));
            t = t.saturating_add(Span::secs(rng.range(60, 300)));
        }
        let r = rng.unit();
        if may_fail && r < FORGOT_SESSION_SHARE + MISTYPE_SESSION_SHARE {
            let forgot = r < FORGOT_SESSION_SHARE;
            let fails = if forgot { rng.range(3, 4) } else { rng.range(1, 2) };
            for i in 0..fails {
                if i > 0 {
                    t = t.saturating_add(Span::secs(rng.range(4, 20)));
                }
                evs.push(ev(t, Action::SignIn, Response::Fail, Step::Password, u));
            }
            u.fail_ok_after = t.saturating_add(FAILURE_COOLDOWN);
            if forgot {
                t = t.saturating_add(Span::secs(rng.range(20, 90)));
                evs.push(ev(t, Action::ForgotPassword, Response::Pass, Step::Other, u));
                t = t.saturating_add(Span::secs(rng.range(60, 300)));
            } else {
                t = t.saturating_add(Span::secs(rng.range(3, 15)));
            }
        }
        if u.mfa && may_fail && rng.chance(MFA_TYPO_SHARE) {
            // A wrong or expired code: the password passed, the code failed, the user starts over.
            evs.push(ev(t, Action::SignIn, Response::InProgress, Step::MfaPending, u));
            t = t.saturating_add(Span::secs(rng.range(8, 45)));
            evs.push(ev(t, Action::SignIn, Response::Fail, Step::MfaFailed, u));
            u.fail_ok_after = t.saturating_add(FAILURE_COOLDOWN);
            t = t.saturating_add(Span::secs(rng.range(10, 60)));
        }
        if u.mfa {
            evs.push(ev(t, Action::SignIn, Response::InProgress, Step::MfaPending, u));
            t = t.saturating_add(Span::secs(rng.range(8, 45)));
            evs.push(ev(t, Action::SignIn, Response::Pass, Step::MfaDone, u));
        } else {
            evs.push(ev(t, Action::SignIn, Response::Pass, Step::Password, u));
        }
        u.last_success = t;
        if rng.chance(PASSWORD_CHANGE_SHARE) {
            t = t.saturating_add(Span::secs(rng.range(60, 600)));
            evs.push(ev(t, Action::PasswordChange, Response::Pass, Step::Other, u));
        }
        debug_assert!(t.since(start) <= MAX_SESSION_SPAN, "a session outlasts MAX_SESSION_SPAN");
        evs.reverse();
        u.pending = evs;
    }
}
