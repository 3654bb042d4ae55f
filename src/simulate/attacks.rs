//! The attacks the simulator plants, each well above its detector's default threshold, and the ground
//! truth that records them.

use std::collections::HashSet;
use std::net::IpAddr;

use super::benign::{leaked_name, user_name, user_sub, Benign};
use super::cities::{self, CITIES};
use super::plan::{Action, Planned, Response, RiskTag, Step, Who, ATTACK_DEVICES};
use super::rng::Rng;
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

/// The kinds of attack, in the order `--attacks` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttackKind {
    Stuffing,
    Spray,
    Burst,
    Distributed,
    Takeover,
    Risk,
    Travel,
}

impl AttackKind {
    pub const ALL: [AttackKind; 7] = [
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
        }
    }

    pub fn parse(s: &str) -> Option<AttackKind> {
        AttackKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The detectors this attack is built to trip (others may fire too).
    pub fn detectors(self) -> &'static [&'static str] {
        match self {
            AttackKind::Stuffing => &["credential_stuffing"],
            AttackKind::Spray => &["password_spray"],
            AttackKind::Burst => &["failed_login_burst"],
            AttackKind::Distributed => &["distributed_brute_force"],
            AttackKind::Takeover => &["account_takeover"],
            AttackKind::Risk => &["cognito_risk"],
            AttackKind::Travel => &["impossible_travel"],
        }
    }

    /// The longest time from the attack's first event to its last.
    pub fn max_span(self) -> Span {
        match self {
            AttackKind::Stuffing => Span::mins(11),
            AttackKind::Spray => Span::mins(56),
            AttackKind::Burst => Span::mins(3),
            AttackKind::Distributed => Span::mins(20),
            AttackKind::Takeover => Span::mins(5),
            AttackKind::Risk => Span::secs(1),
            AttackKind::Travel => Span::mins(120),
        }
    }

    /// The most pool users one attack of this kind takes.
    pub fn max_pool_users(self) -> u32 {
        match self {
            AttackKind::Stuffing => 80,
            AttackKind::Spray => 20,
            _ => 1,
        }
    }

    /// Detectable only from fields that CloudTrail does not log (risk, location).
    pub fn needs_cognito(self) -> bool {
        matches!(self, AttackKind::Risk | AttackKind::Travel)
    }
}

/// One planted attack: its truth record and its events, last first.
pub struct AttackPlan {
    pub truth: Attack,
    pub events: Vec<Planned>,
}

/// Plans `kinds` (in random order, without overlap) over `[start, start + duration)`.
pub fn plan_all(
    kinds: &[AttackKind],
    start: Timestamp,
    duration: Span,
    format: OutputFormat,
    benign: &mut Benign,
    rng: &mut Rng,
) -> Result<Vec<AttackPlan>, String> {
    if kinds.is_empty() {
        // Nothing to fit: any duration will do (the gaps around attacks only matter when there are some).
        return Ok(Vec::new());
    }
    let mut order = kinds.to_vec();
    rng.shuffle(&mut order);
    let mut planner = Planner { benign, rng, used_ips: HashSet::new() };
    // Events at offsets from 0, placed afterwards.
    let mut drafts: Vec<(AttackKind, Vec<Planned>)> =
        order.iter().map(|&k| planner.draft(k).map(|evs| (k, evs))).collect::<Result<_, _>>()?;
    let spans: Vec<i64> = drafts.iter().map(|(_, evs)| span_of(evs)).collect();
    let needed = spans.iter().sum::<i64>() + ATTACK_GAP.millis() * (drafts.len() as i64 + 1);
    let slack = duration.millis() - needed;
    if slack < 0 {
        return Err(format!("--duration {duration} is too short for {} attacks", drafts.len()));
    }
    // Spread the slack over the gaps at random, so attacks land anywhere in the run.
    let weights: Vec<f64> = (0..=drafts.len()).map(|_| planner.rng.unit() + 0.05).collect();
    let total_w: f64 = weights.iter().sum();
    let mut at = start.millis();
    let mut plans = Vec::with_capacity(drafts.len());
    let mut per_kind = [0usize; AttackKind::ALL.len()];
    for (i, (kind, evs)) in drafts.iter_mut().enumerate() {
        at += ATTACK_GAP.millis() + (slack as f64 * weights[i] / total_w) as i64;
        for e in evs.iter_mut() {
            e.time = Timestamp(e.time.millis() + at);
        }
        at += spans[i];
        per_kind[*kind as usize] += 1;
        let id = format!("{}-{}", kind.name(), per_kind[*kind as usize]);
        let truth = truth_of(id, *kind, evs, format, planner.benign);
        for who in evs.iter().map(|e| &e.who) {
            if let Who::Pool(idx) = who {
                planner.benign.users[*idx as usize].quiet =
                    Some((truth.start.saturating_sub(QUIET_BEFORE), truth.end.saturating_add(QUIET_AFTER)));
            }
        }
        evs.reverse();
        plans.push(AttackPlan { truth, events: std::mem::take(evs) });
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
    let mut seen_ip = HashSet::new();
    let mut seen_user = HashSet::new();
    let mut push_user = |u: String, users: &mut Vec<String>| {
        if seen_user.insert(u.clone()) {
            users.push(u);
        }
    };
    for e in evs {
        // The travel attack's first sign-in is the victim's own, from home: not an attacker address.
        let home = kind == AttackKind::Travel && e.risk == RiskTag::Benign;
        if !home && seen_ip.insert(e.ip) {
            ips.push(e.ip.to_string());
        }
        match &e.who {
            Who::Pool(idx) => {
                if format != OutputFormat::CloudTrail {
                    push_user(user_name(benign.seed(), *idx), &mut users);
                }
                if format != OutputFormat::Cognito {
                    push_user(user_sub(benign.seed(), *idx), &mut users);
                }
            }
            Who::Unknown(name) if format != OutputFormat::CloudTrail => push_user(name.to_string(), &mut users),
            Who::Unknown(_) => {}
        }
    }
    let start = evs.first().map_or(Timestamp(0), |e| e.time);
    let end = evs.last().map_or(start, |e| e.time);
    Attack {
        id,
        kind: kind.name().to_string(),
        detectors: kind.detectors().iter().map(|d| d.to_string()).collect(),
        ips,
        users,
        start,
        end,
    }
}

struct Planner<'a> {
    benign: &'a mut Benign,
    rng: &'a mut Rng,
    used_ips: HashSet<IpAddr>,
}

/// Where an attacker signs in from.
#[derive(Clone, Copy)]
struct Origin {
    ip: IpAddr,
    city: u8,
    device: u8,
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
        };
        evs.sort_by_key(|e| e.time);
        Ok(evs)
    }

    /// A pool user no other attack has, who is not travelling or signing up during the run.
    fn victim(&mut self) -> Result<u32, String> {
        let n = self.benign.users.len() as u64;
        let ok = |u: &super::benign::User| !u.attacked && u.trip.is_none() && !u.signs_up;
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

    fn origin(&mut self) -> Origin {
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
fn attempt(time: Timestamp, who: Who, o: Origin, response: Response) -> Planned {
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
