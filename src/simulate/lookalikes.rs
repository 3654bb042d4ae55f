//! Benign traffic that looks like an attack (issue 13): a client release that makes many known users fail
//! once, a marketing campaign's wave of sign-ups, a mobile carrier's NAT address shared by hundreds of
//! users. Planted like attacks and recorded in the truth as look-alikes: any finding on them is a false
//! alarm.

use std::sync::Arc;

use super::attacks::{Origin, Planner, CARRIER_MIN_USERS, CARRIER_USERS};
use super::benign::{leaked_name, MISTYPE_SESSION_SHARE, SESSIONS_PER_USER_DAY};
use super::cities::{self, CITIES};
use super::plan::{Action, NewUser, Planned, Response, RiskTag, Step, Who, DEVICES};
use crate::time::{Span, Timestamp};

/// A release breaks sign-in for this many minutes (until the fix or the retry logic kicks in).
const RELEASE_MINUTES: (i64, i64) = (20, 40);
/// Percent of the users signing in meanwhile who hit it.
const RELEASE_PERCENT: (i64, i64) = (30, 50);
/// Each fails this many times...
const RELEASE_FAILS: (i64, i64) = (1, 3);
/// ...seconds apart...
const RELEASE_RETRY_SECS: (i64, i64) = (5, 40);
/// ...and succeeds this many seconds after the first failure.
const RELEASE_SUCCESS_SECS: (i64, i64) = (60, 300);
/// Office users among them: the office NAT sees a wave of failures, each followed by a success.
const RELEASE_OFFICE: (i64, i64) = (30, 60);
/// The fewest users a release touches whatever the scale.
const RELEASE_MIN_USERS: i64 = 10;

/// A campaign brings this many sign-ups (full scale)...
const CAMPAIGN_SIGNUPS: (i64, i64) = (300, 800);
/// ...over about an hour.
const CAMPAIGN_MINUTES: (i64, i64) = (50, 60);
/// Per mille who confirm and sign in; the rest abandon, as real sign-ups do.
const CAMPAIGN_CONFIRM_PERMILLE: (i64, i64) = (900, 970);
/// Seconds from sign-up to confirmation (the code arrives by email or SMS).
const CONFIRM_SECS: (i64, i64) = (30, 100);
/// Seconds from sign-up to the first sign-in.
const FIRST_SIGNIN_SECS: (i64, i64) = (2 * 60, 20 * 60);
/// The fewest sign-ups whatever the scale.
const CAMPAIGN_MIN_SIGNUPS: i64 = 40;

/// A carrier NAT is watched for this many hours...
const CARRIER_HOURS: (i64, i64) = (2, 4);
/// ...in which each of its users has this many sessions.
const CARRIER_SESSIONS: (i64, i64) = (1, 3);
/// The phone entries of `DEVICES` a user without a mobile device of record signs in with.
const PHONES: [u8; 2] = [6, 7];
/// Seconds from the password step to the MFA answer.
const CODE_SECS: (i64, i64) = (8, 45);

impl Planner<'_> {
    /// A release breaks sign-in for 20–40 minutes: 30–50 % of the users who sign in meanwhile (a few
    /// hundred in a 20,000-user pool; 30–60 of them at the office NAT) fail 1–3 times, then succeed within
    /// 1–5 minutes from their usual address and device.
    pub(super) fn client_release(&mut self) -> Result<Vec<Planned>, String> {
        let window = Span::mins(self.rng.range(RELEASE_MINUTES.0, RELEASE_MINUTES.1)).millis();
        let users = self.benign.users.len() as f64;
        let signing_in = users * SESSIONS_PER_USER_DAY * window as f64 / 86_400_000.0;
        let n = ((signing_in * self.rng.range(RELEASE_PERCENT.0, RELEASE_PERCENT.1) as f64 / 100.0) as i64)
            .max(RELEASE_MIN_USERS);
        let office_free = self.benign.users.iter().filter(|u| u.office && !u.attacked).count() as i64;
        let office = self.rng.range(RELEASE_OFFICE.0, RELEASE_OFFICE.1).min(office_free).min(n / 2);
        let mut evs = Vec::new();
        for i in 0..n {
            let u = if i < office { self.victim_where(|u| u.office)? } else { self.victim_where(|u| !u.office)? };
            let user = &self.benign.users[u as usize];
            let home = Origin { ip: user.ip, city: user.city, device: user.device };
            let mfa = user.mfa;
            let first = self.rng.range(0, window - 1);
            let mut t = first;
            for k in 0..self.rng.range(RELEASE_FAILS.0, RELEASE_FAILS.1) {
                if k > 0 {
                    t += Span::secs(self.rng.range(RELEASE_RETRY_SECS.0, RELEASE_RETRY_SECS.1)).millis();
                }
                evs.push(benign(Timestamp(t), Action::SignIn, Response::Fail, Step::Password, Who::Pool(u), home));
            }
            let success = (first + Span::secs(self.rng.range(RELEASE_SUCCESS_SECS.0, RELEASE_SUCCESS_SECS.1)).millis())
                .max(t + Span::secs(RELEASE_RETRY_SECS.0).millis());
            self.signed_in(Timestamp(success), Who::Pool(u), home, mfa, &mut evs);
        }
        Ok(evs)
    }

    /// A campaign brings 300–800 sign-ups (scaled) in about an hour from people all over; 90 %+ confirm
    /// (CloudTrail's `ConfirmSignUp`) and sign in within 2–20 minutes, the rest abandon.
    pub(super) fn marketing_signups(&mut self) -> Vec<Planned> {
        let n = self.scaled(CAMPAIGN_SIGNUPS, CAMPAIGN_MIN_SIGNUPS);
        let span = Span::mins(self.rng.range(CAMPAIGN_MINUTES.0, CAMPAIGN_MINUTES.1)).millis();
        let confirm = self.rng.range(CAMPAIGN_CONFIRM_PERMILLE.0, CAMPAIGN_CONFIRM_PERMILLE.1);
        let mut evs = Vec::new();
        let mut names = std::collections::HashSet::new();
        while (names.len() as i64) < n {
            let name = leaked_name(self.rng);
            if !names.insert(name.clone()) {
                continue;
            }
            let city = cities::weighted_city(self.rng);
            let ip = loop {
                let ip = cities::benign_v4(city, self.rng);
                if self.used_ips.insert(ip) {
                    break ip;
                }
            };
            let device = self.rng.weighted(DEVICES.iter().map(|d| d.weight)) as u8;
            let home = Origin { ip, city: city as u8, device };
            let t = self.rng.range(0, span - 1);
            let who =
                Who::New(Arc::new(NewUser { name: name.into(), sub: self.rng.uuid().into(), created: Timestamp(t) }));
            evs.push(benign(Timestamp(t), Action::SignUp, Response::Pass, Step::Other, who.clone(), home));
            if self.rng.below(1000) < confirm as u64 {
                let confirmed = t + Span::secs(self.rng.range(CONFIRM_SECS.0, CONFIRM_SECS.1)).millis();
                evs.push(benign(
                    Timestamp(confirmed),
                    Action::ConfirmSignUp,
                    Response::Pass,
                    Step::Other,
                    who.clone(),
                    home,
                ));
                let first = t + Span::secs(self.rng.range(FIRST_SIGNIN_SECS.0, FIRST_SIGNIN_SECS.1)).millis();
                evs.push(benign(Timestamp(first), Action::SignIn, Response::Pass, Step::Password, who, home));
            }
        }
        evs
    }

    /// One carrier-grade NAT address in a city through which 100–300 (scaled) of the city's users sign in
    /// over 2–4 hours from their phones, mostly successfully, with the pool's usual typos (each followed
    /// by a success).
    pub(super) fn carrier_nat(&mut self) -> Result<Vec<Planned>, String> {
        let wanted = self.scaled(CARRIER_USERS, CARRIER_MIN_USERS);
        // A city with users enough (half its free users at most, so the rest of the city's traffic stays
        // ordinary), by population; else the largest.
        let mut locals = vec![0i64; CITIES.len()];
        for u in self.benign.users.iter().filter(|u| !u.attacked) {
            locals[usize::from(u.city)] += 1;
        }
        let big_enough: Vec<u32> =
            CITIES.iter().enumerate().map(|(i, c)| if locals[i] / 2 >= wanted { c.weight } else { 0 }).collect();
        let city = if big_enough.iter().any(|w| *w > 0) {
            self.rng.weighted(big_enough.iter().copied())
        } else {
            (0..CITIES.len()).max_by_key(|&i| locals[i]).unwrap_or(0)
        };
        let ip = loop {
            let ip = cities::carrier_v4(city, self.rng);
            if self.used_ips.insert(ip) {
                break ip;
            }
        };
        let span = Span(self.rng.range(CARRIER_HOURS.0, CARRIER_HOURS.1) * 3_600_000).millis();
        // Only the city's own users: anyone else would seem to fly to the NAT's city.
        let n = wanted.min(locals[city] / 2).max(1);
        let mut evs = Vec::new();
        for _ in 0..n {
            let u = self.victim_where(|u| usize::from(u.city) == city)?;
            let user = &self.benign.users[u as usize];
            let device = if DEVICES[user.device as usize].mobile { user.device } else { *self.rng.pick(&PHONES) };
            let mfa = user.mfa;
            let phone = Origin { ip, city: city as u8, device };
            for _ in 0..self.rng.range(CARRIER_SESSIONS.0, CARRIER_SESSIONS.1) {
                let mut t = self.rng.range(0, span - 1);
                if self.rng.chance(MISTYPE_SESSION_SHARE) {
                    for _ in 0..self.rng.range(1, 2) {
                        evs.push(benign(
                            Timestamp(t),
                            Action::SignIn,
                            Response::Fail,
                            Step::Password,
                            Who::Pool(u),
                            phone,
                        ));
                        t += Span::secs(self.rng.range(4, 20)).millis();
                    }
                }
                self.signed_in(Timestamp(t), Who::Pool(u), phone, mfa, &mut evs);
            }
        }
        Ok(evs)
    }

    /// A successful sign-in: the password, and the MFA step for a user who has it on.
    fn signed_in(&mut self, t: Timestamp, who: Who, o: Origin, mfa: bool, evs: &mut Vec<Planned>) {
        if mfa {
            evs.push(benign(t, Action::SignIn, Response::InProgress, Step::MfaPending, who.clone(), o));
            let answer = t.saturating_add(Span::secs(self.rng.range(CODE_SECS.0, CODE_SECS.1)));
            evs.push(benign(answer, Action::SignIn, Response::Pass, Step::MfaDone, who, o));
        } else {
            evs.push(benign(t, Action::SignIn, Response::Pass, Step::Password, who, o));
        }
    }
}

/// A benign user's event.
fn benign(time: Timestamp, action: Action, response: Response, step: Step, who: Who, o: Origin) -> Planned {
    Planned {
        time,
        action,
        response,
        step,
        who,
        ip: o.ip,
        city: o.city,
        device: o.device,
        risk: RiskTag::Benign,
        cognito_only: false,
    }
}
