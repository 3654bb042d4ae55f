//! The attacks the simulator plants and the ground truth that records them: the kinds, their placement
//! and the per-address and per-account attacks, each well above its detector's default threshold. The
//! pool-wide and slow attacks are in `waves`, the benign look-alikes in `lookalikes`.

use std::collections::HashSet;
use std::net::IpAddr;

use super::benign::{leaked_name, user_name, user_sub, Benign, User};
use super::cities::{self, CITIES};
use super::plan::{Action, Planned, Response, RiskTag, Step, Who, ATTACK_DEVICES};
use super::render;
use super::rng::Rng;
use super::schedule::Slot;
use super::{Attack, OutputFormat};
use crate::time::{Span, Timestamp};

/// Time between two attacks (and before the first and after the last), so no detector window holds two.
pub const ATTACK_GAP: Span = Span::mins(30);
/// Attacked users sign in normally until this long before their attack...
pub const QUIET_BEFORE: Span = Span::mins(60);
/// ...and not again until this long after it: 24 h keeps a trip home from the attacker's city (at most
/// 20,000 km) under 900 km/h, and the attack's failures out of account_takeover's 15 minutes.
pub const QUIET_AFTER: Span = Span(24 * 3_600_000);
/// Stuffing tries between these many user names.
const STUFFING_USERS: (i64, i64) = (60, 200);
/// Spraying targets between these many real users, three passwords each.
const SPRAY_USERS: (i64, i64) = (10, 20);
const SPRAY_PASSWORDS: i64 = 3;

/// The kinds of planted item, in the order `--attacks` lists them: attacks, then benign look-alikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttackKind {
    Stuffing,
    Spray,
    Burst,
    Distributed,
    Takeover,
    Risk,
    Travel,
    ProxyStuffing,
    SlowBruteForce,
    SignupFlood,
    MfaWall,
    MfaWallSpread,
    ClientRelease,
    MarketingSignups,
    CarrierNat,
}

/// Where an item's slot goes (see `schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Minutes to an hour or two, apart from every other sequential or pool-wide item.
    Sequential,
    /// Judged against the pool's baseline: after the warm-up, far from other pool-wide items.
    PoolWide,
    /// Hours long, beside everything else, with its own users and addresses.
    Alongside,
}

impl AttackKind {
    pub const ALL: [AttackKind; 15] = [
        AttackKind::Stuffing,
        AttackKind::Spray,
        AttackKind::Burst,
        AttackKind::Distributed,
        AttackKind::Takeover,
        AttackKind::Risk,
        AttackKind::Travel,
        AttackKind::ProxyStuffing,
        AttackKind::SlowBruteForce,
        AttackKind::SignupFlood,
        AttackKind::MfaWall,
        AttackKind::MfaWallSpread,
        AttackKind::ClientRelease,
        AttackKind::MarketingSignups,
        AttackKind::CarrierNat,
    ];

    /// The per-address and per-account attacks `--attacks default` plants.
    pub const CLASSIC: [AttackKind; 7] = [
        AttackKind::Stuffing,
        AttackKind::Spray,
        AttackKind::Burst,
        AttackKind::Distributed,
        AttackKind::Takeover,
        AttackKind::Risk,
        AttackKind::Travel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttackKind::Stuffing => "stuffing",
            AttackKind::Spray => "spray",
            AttackKind::Burst => "burst",
            AttackKind::Distributed => "distributed",
            AttackKind::Takeover => "takeover",
            AttackKind::Risk => "risk",
            AttackKind::Travel => "travel",
            AttackKind::ProxyStuffing => "proxy_stuffing",
            AttackKind::SlowBruteForce => "slow_brute_force",
            AttackKind::SignupFlood => "signup_flood",
            AttackKind::MfaWall => "mfa_wall",
            AttackKind::MfaWallSpread => "mfa_wall_spread",
            AttackKind::ClientRelease => "client_release",
            AttackKind::MarketingSignups => "marketing_signups",
            AttackKind::CarrierNat => "carrier_nat",
        }
    }

    pub fn parse(s: &str) -> Option<AttackKind> {
        AttackKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The detectors this attack is built to trip (others may fire too); none for a look-alike.
    pub fn detectors(self) -> &'static [&'static str] {
        match self {
            AttackKind::Stuffing => &["credential_stuffing"],
            AttackKind::Spray => &["password_spray"],
            AttackKind::Burst => &["failed_login_burst"],
            AttackKind::Distributed => &["distributed_brute_force"],
            AttackKind::Takeover => &["account_takeover"],
            AttackKind::Risk => &["cognito_risk"],
            AttackKind::Travel => &["impossible_travel"],
            AttackKind::ProxyStuffing => &["distributed_credential_stuffing"],
            AttackKind::SlowBruteForce => &["slow_brute_force"],
            AttackKind::SignupFlood => &["signup_flood"],
            AttackKind::MfaWall | AttackKind::MfaWallSpread => &["mfa_failure_after_password"],
            AttackKind::ClientRelease | AttackKind::MarketingSignups | AttackKind::CarrierNat => &[],
        }
    }

    /// Pool-wide detectors the attack may trip as well, rightly: a short burst of attacker failures moves
    /// the pool's failure rate. A finding of theirs during the attack is not a false alarm. The slow guesser
    /// is left out: a failure every few minutes moves no rate, and its hours-long span would excuse any
    /// pool-wide finding in them.
    pub fn also(self) -> &'static [&'static str] {
        match self {
            AttackKind::Stuffing
            | AttackKind::Spray
            | AttackKind::Burst
            | AttackKind::Distributed
            | AttackKind::Takeover
            | AttackKind::ProxyStuffing
            | AttackKind::MfaWall
            | AttackKind::MfaWallSpread => &["pool_failure_anomaly"],
            _ => &[],
        }
    }

    /// Benign traffic that resembles an attack: any finding on it is a false alarm.
    pub fn lookalike(self) -> bool {
        matches!(self, AttackKind::ClientRelease | AttackKind::MarketingSignups | AttackKind::CarrierNat)
    }

    pub fn placement(self) -> Placement {
        match self {
            AttackKind::ProxyStuffing
            | AttackKind::SignupFlood
            | AttackKind::ClientRelease
            | AttackKind::MarketingSignups => Placement::PoolWide,
            AttackKind::SlowBruteForce | AttackKind::CarrierNat => Placement::Alongside,
            _ => Placement::Sequential,
        }
    }

    /// The longest time from the item's first event to its last.
    pub fn max_span(self) -> Span {
        match self {
            AttackKind::Stuffing => Span::mins(11),
            AttackKind::Spray => Span::mins(56),
            AttackKind::Burst => Span::mins(3),
            AttackKind::Distributed => Span::mins(20),
            AttackKind::Takeover => Span::mins(5),
            AttackKind::Risk => Span::secs(1),
            AttackKind::Travel => Span::mins(120),
            // 120 minutes of first tries, a second try up to PROXY_RETRY later.
            AttackKind::ProxyStuffing => Span::mins(120 + 2),
            // 10 h of tries, the last gap up to 15 minutes.
            AttackKind::SlowBruteForce => Span::mins(10 * 60 + 15),
            AttackKind::SignupFlood => Span::mins(60),
            // Sign-ins over an hour, the last code answered up to 45 s later.
            AttackKind::MfaWall => Span::mins(61),
            AttackKind::MfaWallSpread => Span::mins(91),
            // 40 minutes of first failures, the success up to 5 minutes later, then its MFA step.
            AttackKind::ClientRelease => Span::mins(46),
            // An hour of sign-ups, each signing in up to 20 minutes later.
            AttackKind::MarketingSignups => Span::mins(81),
            // 4 hours of sessions, the last one's retries and MFA step.
            AttackKind::CarrierNat => Span::mins(4 * 60 + 5),
        }
    }

    /// The most pool users one item of this kind takes in a pool of `users`.
    pub fn max_pool_users(self, users: u32) -> u32 {
        let scaled = |n: f64| (n * pool_scale(users)).ceil() as u32;
        match self {
            AttackKind::Stuffing => 80,
            AttackKind::Spray => 20,
            AttackKind::ProxyStuffing => scaled(PROXY_ATTEMPTS.1 as f64 * 0.2),
            AttackKind::MfaWallSpread => MFA_SPREAD_USERS.1 as u32,
            AttackKind::ClientRelease => scaled(RELEASE_MAX_USERS),
            AttackKind::CarrierNat => scaled(CARRIER_USERS.1 as f64).max(CARRIER_MIN_USERS as u32),
            AttackKind::SignupFlood | AttackKind::MarketingSignups => 0,
            _ => 1,
        }
    }

    /// Detectable only from fields that CloudTrail does not log (risk, location).
    pub fn needs_cognito(self) -> bool {
        matches!(self, AttackKind::Risk | AttackKind::Travel)
    }

    /// How long before and after the item its pool users have no sessions of their own: an attack's
    /// victims are out of the way (see [`QUIET_AFTER`]); a client release's users sign in only through it
    /// for half an hour around it; a carrier's users keep signing in from home as well.
    fn quiet(self) -> Option<(Span, Span)> {
        match self {
            AttackKind::ClientRelease => Some((RELEASE_QUIET, RELEASE_QUIET)),
            AttackKind::CarrierNat => None,
            _ => Some((QUIET_BEFORE, QUIET_AFTER)),
        }
    }
}

/// The pool size the figures for pool-wide items describe (the demo's): smaller pools get
/// proportionally smaller waves, so a wave's share of the pool's traffic stays the same.
pub const FULL_SCALE_USERS: f64 = 20_000.0;
/// Smallest scale: below it the waves would be too few events to be waves.
const MIN_SCALE: f64 = 0.05;

/// The share of the full-scale figures a pool of `users` gets.
pub fn pool_scale(users: u32) -> f64 {
    (f64::from(users) / FULL_SCALE_USERS).clamp(MIN_SCALE, 1.0)
}

/// A residential-proxy campaign makes about this many attempts (full scale).
pub const PROXY_ATTEMPTS: (i64, i64) = (2700, 3300);
/// Most client-release users (full scale): half the sign-ins of 40 busy minutes of a 20,000-user pool.
const RELEASE_MAX_USERS: f64 = 600.0;
/// Client-release users sign in only through it from this long before to this long after it.
const RELEASE_QUIET: Span = Span::mins(30);
/// Users behind the carrier NAT (full scale), and the fewest whatever the scale.
pub const CARRIER_USERS: (i64, i64) = (100, 300);
pub const CARRIER_MIN_USERS: i64 = 20;
/// Accounts one address holds the passwords of in an MFA wall spread.
pub const MFA_SPREAD_USERS: (i64, i64) = (8, 20);

/// One planted item: its truth record and its events, last first.
pub struct AttackPlan {
    pub truth: Attack,
    pub events: Vec<Planned>,
}

/// Plans the items of `slots` (from `schedule::slots`), each at a random point of its slot.
pub fn plan_all(
    slots: &[Slot],
    format: OutputFormat,
    benign: &mut Benign,
    rng: &mut Rng,
) -> Result<Vec<AttackPlan>, String> {
    let scale = pool_scale(benign.users.len() as u32);
    let mut planner = Planner { benign, rng, used_ips: HashSet::new(), scale };
    let mut plans = Vec::with_capacity(slots.len());
    let mut per_kind = [0usize; AttackKind::ALL.len()];
    for slot in slots {
        let kind = slot.kind;
        // Events at offsets from 0, placed at a random point of the slot.
        let mut evs = planner.draft(kind)?;
        let span = span_of(&evs);
        debug_assert!(span <= kind.max_span().millis(), "{} outlasts its max_span", kind.name());
        let first = evs.first().map_or(0, |e| e.time.millis());
        let at = slot.start.millis() + planner.rng.range(0, (kind.max_span().millis() - span).max(0));
        for e in evs.iter_mut() {
            e.time = Timestamp(e.time.millis() - first + at);
        }
        per_kind[kind as usize] += 1;
        let id = format!("{}-{}", kind.name(), per_kind[kind as usize]);
        let truth = truth_of(id, kind, &evs, format, planner.benign);
        if let Some((before, after)) = kind.quiet() {
            for who in evs.iter().map(|e| &e.who) {
                if let Who::Pool(idx) = who {
                    planner.benign.users[*idx as usize].quiet =
                        Some((truth.start.saturating_sub(before), truth.end.saturating_add(after)));
                }
            }
        }
        evs.reverse();
        plans.push(AttackPlan { truth, events: evs });
    }
    Ok(plans)
}

fn span_of(evs: &[Planned]) -> i64 {
    match (evs.first(), evs.last()) {
        (Some(a), Some(b)) => b.time.millis() - a.time.millis(),
        _ => 0,
    }
}

/// The truth record: who and where, as the chosen log format can show them.
fn truth_of(id: String, kind: AttackKind, evs: &[Planned], format: OutputFormat, benign: &Benign) -> Attack {
    let mut ips: Vec<String> = Vec::new();
    let mut users: Vec<String> = Vec::new();
    let mut takeovers: Vec<String> = Vec::new();
    let mut seen_ip = HashSet::new();
    let mut seen_user = HashSet::new();
    let mut seen_takeover = HashSet::new();
    // The names the log shows for `who`: user names (Cognito), subs (CloudTrail), both (mixed).
    let shown = |who: &Who| -> Vec<String> {
        let (name, sub) = match who {
            Who::Pool(idx) => (user_name(benign.seed(), *idx), Some(user_sub(benign.seed(), *idx))),
            Who::Unknown(name) => (name.to_string(), None),
            Who::New(n) => (n.name.to_string(), Some(n.sub.to_string())),
        };
        let mut out = Vec::with_capacity(2);
        if format != OutputFormat::CloudTrail {
            out.push(name);
        }
        if format != OutputFormat::Cognito {
            out.extend(sub);
        }
        out
    };
    let mut events = 0;
    for e in evs {
        if format == OutputFormat::Cognito && !render::in_export(e) {
            continue;
        }
        events += 1;
        // The travel attack's first sign-in is the victim's own, from home: not an attacker address.
        let home = kind == AttackKind::Travel && e.risk == RiskTag::Benign;
        if !home && seen_ip.insert(e.ip) {
            ips.push(e.ip.to_string());
        }
        let names = shown(&e.who);
        let signed_in = e.action == Action::SignIn
            && e.response == Response::Pass
            && matches!(e.step, Step::Password | Step::MfaDone);
        if signed_in && !home && !kind.lookalike() && matches!(e.who, Who::Pool(_)) {
            for n in &names {
                if seen_takeover.insert(n.clone()) {
                    takeovers.push(n.clone());
                }
            }
        }
        for n in names {
            if seen_user.insert(n.clone()) {
                users.push(n);
            }
        }
    }
    let start = evs.first().map_or(Timestamp(0), |e| e.time);
    let end = evs.last().map_or(start, |e| e.time);
    Attack {
        id,
        kind: kind.name().to_string(),
        detectors: kind.detectors().iter().map(|d| d.to_string()).collect(),
        also: kind.also().iter().map(|d| d.to_string()).collect(),
        lookalike: kind.lookalike(),
        pool_wide: kind.placement() == Placement::PoolWide,
        ips,
        users,
        takeovers,
        events,
        start,
        end,
    }
}

pub(super) struct Planner<'a> {
    pub(super) benign: &'a mut Benign,
    pub(super) rng: &'a mut Rng,
    pub(super) used_ips: HashSet<IpAddr>,
    /// [`pool_scale`] of the pool.
    pub(super) scale: f64,
}

/// Where an attacker signs in from.
#[derive(Clone, Copy)]
pub(super) struct Origin {
    pub(super) ip: IpAddr,
    pub(super) city: u8,
    pub(super) device: u8,
}

impl Planner<'_> {
    fn draft(&mut self, kind: AttackKind) -> Result<Vec<Planned>, String> {
        let mut evs = match kind {
            AttackKind::Stuffing => self.stuffing()?,
            AttackKind::Spray => self.spray()?,
            AttackKind::Burst => self.burst()?,
            AttackKind::Distributed => self.distributed()?,
            AttackKind::Takeover => self.takeover()?,
            AttackKind::Risk => self.risk()?,
            AttackKind::Travel => self.travel()?,
            AttackKind::ProxyStuffing => self.proxy_stuffing()?,
            AttackKind::SlowBruteForce => self.slow_brute_force()?,
            AttackKind::SignupFlood => self.signup_flood(),
            AttackKind::MfaWall => self.mfa_wall()?,
            AttackKind::MfaWallSpread => self.mfa_wall_spread()?,
            AttackKind::ClientRelease => self.client_release()?,
            AttackKind::MarketingSignups => self.marketing_signups(),
            AttackKind::CarrierNat => self.carrier_nat()?,
        };
        evs.sort_by_key(|e| e.time);
        Ok(evs)
    }

    /// A pool user no other item has, who is not travelling or signing up during the run.
    pub(super) fn victim(&mut self) -> Result<u32, String> {
        self.victim_where(|_| true)
    }

    /// Like [`Planner::victim`], among the users `fits` accepts.
    pub(super) fn victim_where(&mut self, fits: impl Fn(&User) -> bool) -> Result<u32, String> {
        let n = self.benign.users.len() as u64;
        let ok = |u: &User| !u.attacked && u.trip.is_none() && !u.signs_up && fits(u);
        let mut pick = None;
        for _ in 0..64 {
            let i = self.rng.below(n.max(1)) as usize;
            if self.benign.users.get(i).is_some_and(ok) {
                pick = Some(i);
                break;
            }
        }
        let i = pick
            .or_else(|| self.benign.users.iter().position(ok))
            .ok_or_else(|| "not enough users for the attacks: raise --users".to_string())?;
        self.benign.users[i].attacked = true;
        Ok(i as u32)
    }

    pub(super) fn origin(&mut self) -> Origin {
        let mut ip = cities::attack_v4(self.rng);
        while !self.used_ips.insert(ip) {
            ip = cities::attack_v4(self.rng);
        }
        let city = cities::weighted_city(self.rng) as u8;
        let device = self.rng.range(i64::from(ATTACK_DEVICES.start), i64::from(ATTACK_DEVICES.end) - 1) as u8;
        Origin { ip, city, device }
    }

    /// 60–200 user names from a leak (a quarter to 40 % real, at least 20 so CloudTrail's subs alone
    /// reach 15 users), 1–2 tries each over 10 minutes from one address, 2–4 of them right.
    fn stuffing(&mut self) -> Result<Vec<Planned>, String> {
        let o = self.origin();
        let n = self.rng.range(STUFFING_USERS.0, STUFFING_USERS.1);
        let known = (n * self.rng.range(25, 40) / 100).max(20);
        let mut targets = Vec::with_capacity(n as usize);
        for _ in 0..known {
            targets.push(Who::Pool(self.victim()?));
        }
        let mut names = HashSet::new();
        while targets.len() < n as usize {
            let name = leaked_name(self.rng);
            if names.insert(name.clone()) {
                targets.push(Who::Unknown(name.into()));
            }
        }
        self.rng.shuffle(&mut targets);
        let mut successes = self.rng.range(2, 4);
        let mut evs = Vec::new();
        for who in targets {
            let t = Timestamp(self.rng.range(0, Span::mins(10).millis() - 1));
            let hit = successes > 0 && matches!(who, Who::Pool(_));
            if hit {
                successes -= 1;
                evs.push(attempt(t, who, o, Response::Pass));
                continue;
            }
            if self.rng.chance(0.3) {
                let t2 = t.saturating_add(Span::secs(self.rng.range(2, 20)));
                evs.push(attempt(t2, who.clone(), o, Response::Fail));
            }
            evs.push(attempt(t, who, o, Response::Fail));
        }
        Ok(evs)
    }

    /// 10–20 real users, three passwords each in three rounds over 30–50 minutes, from one address.
    fn spray(&mut self) -> Result<Vec<Planned>, String> {
        let o = self.origin();
        let k = self.rng.range(SPRAY_USERS.0, SPRAY_USERS.1);
        let mut users = Vec::with_capacity(k as usize);
        for _ in 0..k {
            users.push(self.victim()?);
        }
        let span = Span::mins(self.rng.range(30, 50)).millis();
        let mut evs = Vec::new();
        for round in 0..SPRAY_PASSWORDS {
            let mut t = span * round / (SPRAY_PASSWORDS - 1);
            self.rng.shuffle(&mut users);
            for &u in &users {
                evs.push(attempt(Timestamp(t), Who::Pool(u), o, Response::Fail));
                t += Span::secs(self.rng.range(5, 15)).millis();
            }
        }
        Ok(evs)
    }

    /// 30 failures for one user from one address within 3 minutes.
    fn burst(&mut self) -> Result<Vec<Planned>, String> {
        let o = self.origin();
        let u = self.victim()?;
        Ok((0..30).map(|_| attempt(Timestamp(self.rng.range(0, 170_000)), Who::Pool(u), o, Response::Fail)).collect())
    }

    /// 20 failures for one user from 8–12 addresses within 20 minutes.
    fn distributed(&mut self) -> Result<Vec<Planned>, String> {
        let u = self.victim()?;
        let origins: Vec<Origin> = (0..self.rng.range(8, 12)).map(|_| self.origin()).collect();
        Ok((0..20)
            .map(|i| {
                let t = Timestamp(self.rng.range(0, Span::mins(20).millis() - 1));
                attempt(t, Who::Pool(u), origins[i % origins.len()], Response::Fail)
            })
            .collect())
    }

    /// 8 failures for one user, then the right password, from one address.
    fn takeover(&mut self) -> Result<Vec<Planned>, String> {
        let o = self.origin();
        let u = self.victim()?;
        let mut t = 0;
        let mut evs = Vec::new();
        for _ in 0..8 {
            evs.push(attempt(Timestamp(t), Who::Pool(u), o, Response::Fail));
            t += Span::secs(self.rng.range(8, 25)).millis();
        }
        t += Span::secs(self.rng.range(12, 35)).millis();
        evs.push(attempt(Timestamp(t), Who::Pool(u), o, Response::Pass));
        Ok(evs)
    }

    /// A sign-in with leaked credentials that Cognito's threat protection flags.
    fn risk(&mut self) -> Result<Vec<Planned>, String> {
        let o = self.origin();
        let u = self.victim()?;
        let mut e = attempt(Timestamp(0), Who::Pool(u), o, Response::Pass);
        e.risk = RiskTag::Compromised;
        e.cognito_only = true;
        Ok(vec![e])
    }

    /// The user signs in at home; 1–2 hours later someone signs in as them at least 5,000 km away.
    fn travel(&mut self) -> Result<Vec<Planned>, String> {
        let u = self.victim()?;
        let user = &self.benign.users[u as usize];
        let home = Origin { ip: user.ip, city: user.city, device: user.device };
        let mut far = self.origin();
        far.city = cities::far_city(home.city as usize, 5000.0, self.rng) as u8;
        debug_assert!(cities::distance_km(&CITIES[home.city as usize], &CITIES[far.city as usize]) >= 5000.0);
        let mut a = attempt(Timestamp(0), Who::Pool(u), home, Response::Pass);
        a.risk = RiskTag::Benign;
        let t = Span::mins(self.rng.range(60, 119)).millis() + self.rng.range(0, 59_999);
        let mut b = attempt(Timestamp(t), Who::Pool(u), far, Response::Pass);
        a.cognito_only = true;
        b.cognito_only = true;
        Ok(vec![a, b])
    }
}

/// A password sign-in attempt by an attacker.
pub(super) fn attempt(time: Timestamp, who: Who, o: Origin, response: Response) -> Planned {
    Planned {
        time,
        action: Action::SignIn,
        response,
        step: Step::Password,
        who,
        ip: o.ip,
        city: o.city,
        device: o.device,
        risk: RiskTag::Suspicious,
        cognito_only: false,
    }
}
