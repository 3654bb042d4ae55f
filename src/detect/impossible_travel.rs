//! `impossible_travel`: two successful sign-ins for one user from places nobody could travel between in
//! the event time that separates them.
//!
//! Each success is placed ([`Locator`]: the log's city and country through the built-in gazetteer, or the
//! address through a MaxMind database) and compared with the user's previous successes in event time.
//! The distance is the great-circle distance minus both places' uncertainty radii, so coarse locations
//! (a whole country, a carrier's exit point) never look like travel by themselves. A late success is
//! inserted at its place in time and compared with its neighbours on both sides: the pairs it forms are
//! the ones it would have formed had it arrived in order (up to [`LATE_HORIZON`] late; beyond it, with
//! the neighbours still kept).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::incident::{incident_id, Incident};
use super::keys::PackedId;
use super::registry::Registered;
use super::rule::{Rule, Seen};
use super::window::{hash_of, KeyedState, LastSeen, PreHashed};
use super::{same_group, DetectorStats, EngineSettings, IncidentBook, IpKey, Summarize};
use crate::event::{Outcome, SignInEvent};
use crate::figures::thousands_f;
use crate::finding::{Finding, Severity, Status};
use crate::geo::{haversine_km, is_non_routable, Gazetteer, GeoIp, Location, LocationSource, Resolution};
use crate::spec::{KeyKind, Spec};
use crate::time::{Span, Timestamp};

/// Previous successful sign-ins each new one is compared with, unless the spec says otherwise: the last
/// one catches a hop, a second catches a hop hidden behind one coarse (country-level) location.
pub const DEFAULT_COMPARE_LAST: usize = 2;
/// Upper bound on `compare_last`: the per-user memory and the work per sign-in grow with it.
pub const MAX_COMPARE_LAST: usize = 16;
/// Half the Earth's circumference: no two places are farther apart, so a larger distance threshold
/// could never fire.
pub const MAX_TRAVEL_DISTANCE_KM: f64 = 20_038.0;
/// The speed of light: a generous ceiling on any speed threshold; anything above it is a typo.
pub const MAX_TRAVEL_SPEED_KMH: f64 = 1.08e9;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelParams {
    /// Distance between the two places after subtracting both uncertainty radii, at least this.
    pub min_distance_km: f64,
    /// ... covered at least this fast (that distance over the event-time elapsed between the sign-ins).
    pub min_speed_kmh: f64,
    /// How many previous successful sign-ins (in event time) each one is compared with.
    #[serde(default = "default_compare_last")]
    pub compare_last: usize,
    /// A hop that meets a step raises the incident to the step's severity (above the spec's base one).
    #[serde(default)]
    pub severity_steps: Vec<TravelSeverityStep>,
}

fn default_compare_last() -> usize {
    DEFAULT_COMPARE_LAST
}

/// One severity step of `impossible_travel`: met when the hop is at least this fast *and* at least this
/// far (each bound only when given; at least one must be).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelSeverityStep {
    pub speed_kmh: Option<f64>,
    pub distance_km: Option<f64>,
    pub severity: Severity,
}

impl TravelSeverityStep {
    /// "high at ≥ 5000 km/h and ≥ 5000 km", for the README table.
    pub fn describe(&self) -> String {
        let bounds: Vec<String> =
            [self.speed_kmh.map(|v| format!("≥ {v} km/h")), self.distance_km.map(|v| format!("≥ {v} km"))]
                .into_iter()
                .flatten()
                .collect();
        format!("{} at {}", self.severity, bounds.join(" and "))
    }

    /// Does a hop of `distance_km` at `speed_kmh` (None: no time elapsed, any speed) meet this step?
    pub fn met_by(&self, distance_km: f64, speed_kmh: Option<f64>) -> bool {
        let fast = match (self.speed_kmh, speed_kmh) {
            (None, _) | (Some(_), None) => true,
            (Some(min), Some(v)) => v >= min,
        };
        fast && self.distance_km.is_none_or(|min| distance_km >= min)
    }
}

/// Successes kept per user beyond `compare_last`, so that a late one still finds its neighbours in time.
pub const LATE_NEIGHBOURS: usize = 8;
/// Those extra successes are kept only while they are this recent (by the rule's clock): a success
/// arriving up to this late is compared with every neighbour it would have had in order; a later one
/// still with the neighbours kept. A day of them for every user who signs in (8 visits of 80 bytes) was
/// two thirds of a replay's memory on simulated traffic, for events that are late by hours.
pub const LATE_HORIZON: Span = Span::mins(6 * 60);
/// Hops listed in one incident's evidence ("at most a few dozen", `detection.md`); the rest are counted.
pub const MAX_EVIDENCE_HOPS: usize = 10;
/// Distinct (city, country) pairs whose resolution is remembered: real logs repeat a few thousand places.
pub const NAME_CACHE_CAP: usize = 4096;

/// One located successful sign-in, as remembered for its user: 64 bytes (a test holds it there), kept
/// for hours for every user who signs in.
#[derive(Debug, Clone)]
struct Visit {
    time: Timestamp,
    ip: Option<IpAddr>,
    /// Shared with every visit from the same names (the locator's cache hands out one per place).
    place: Arc<Place>,
    event_id: Option<PackedId>,
    /// The user's incident this visit was last counted in ([`Trail::counting`]'s serial; 0: none), so a
    /// visit shared by two hops counts once.
    counted_in: u32,
}

/// The names a sign-in's log gave for where it came from, and the place they (or its address) resolved to.
#[derive(Debug)]
struct Place {
    city: Option<Box<str>>,
    country: Option<Box<str>>,
    location: Location,
}

impl Place {
    fn of(ev: &SignInEvent, location: Location) -> Arc<Place> {
        Arc::new(Place {
            city: ev.city.as_deref().map(Box::from),
            country: ev.country.as_deref().map(Box::from),
            location,
        })
    }
}

impl Visit {
    /// The address as the engine groups it (IPv6 by prefix): equal groups are never travel. Grouped on
    /// demand rather than stored: a visit is kept for hours for every user who signs in.
    fn group(&self, ipv6_prefix: u8) -> Option<IpKey> {
        self.ip.map(|ip| IpKey::group(ip, ipv6_prefix))
    }

    fn evidence(&self) -> Value {
        json!({
            "time": self.time,
            "ip": self.ip.map(|ip| ip.to_string()),
            "city": self.place.city,
            "country": self.place.country,
            "location": self.place.location.label,
            "lat": round(self.place.location.lat, 4),
            "lon": round(self.place.location.lon, 4),
            "located_by": self.place.location.source,
            "radius_km": round(self.place.location.radius_km, 1),
        })
    }
}

/// A user's recent located successes, in event-time order.
#[derive(Debug, Default)]
struct Trail {
    visits: VecDeque<Visit>,
    /// [`hash_of`] the id of the incident the trail's visits were last counted in (0: none) ...
    incident: u64,
    /// ... and its serial for this user, which visits record (`Visit::counted_in`) instead of the id.
    serial: u32,
}

impl LastSeen for Trail {
    /// The newest visit's time (visits are in time order; an emptied trail is idle).
    fn last_seen(&self) -> Timestamp {
        self.visits.back().map_or(Timestamp(i64::MIN), |v| v.time)
    }
}

impl Trail {
    /// The serial of `incident_id` among the incidents this user's visits were counted in.
    fn counting(&mut self, incident_id: &str) -> u32 {
        let h = hash_of(incident_id);
        if self.incident != h || self.serial == 0 {
            self.incident = h;
            self.serial = self.serial.wrapping_add(1).max(1);
        }
        self.serial
    }

    /// Inserts after any visit at the same time (as in-order arrival would) and returns its position.
    fn insert(&mut self, visit: Visit) -> usize {
        if self.visits.len() == self.visits.capacity() {
            // Room for two, then grow one at a time: a trail holds at most `compare_last + LATE_NEIGHBOURS
            // + 1` visits, and doubling would leave up to half of that room empty for every user for a
            // day. Most users sign in once or twice a day, so most trails never grow again.
            self.visits.reserve_exact(if self.visits.is_empty() { 2 } else { 1 });
        }
        if self.visits.back().is_none_or(|v| v.time <= visit.time) {
            self.visits.push_back(visit);
            return self.visits.len() - 1;
        }
        let at = self.visits.partition_point(|v| v.time <= visit.time);
        self.visits.insert(at, visit);
        at
    }

    /// Drops visits at or before `now - window`, the oldest beyond `keep + LATE_NEIGHBOURS`, and those
    /// beyond the newest `keep` that are older than [`LATE_HORIZON`].
    fn trim(&mut self, now: Timestamp, window: Span, keep: usize) {
        let horizon = now.saturating_sub(window);
        let late_horizon = now.saturating_sub(LATE_HORIZON);
        while self.visits.front().is_some_and(|v| {
            let len = self.visits.len();
            v.time <= horizon || len > keep + LATE_NEIGHBOURS || (len > keep && v.time <= late_horizon)
        }) {
            self.visits.pop_front();
        }
        if self.visits.capacity() > self.visits.len() + 2 {
            self.visits.shrink_to_fit();
        }
    }
}

/// Two successes of one user and what separates them.
#[derive(Debug, Clone)]
struct Hop {
    from: usize,
    to: usize,
    great_circle_km: f64,
    /// Great-circle distance minus both uncertainty radii, at least 0.
    distance_km: f64,
    elapsed: Span,
    /// `None` when no time elapsed between the two (any distance is then covered at any speed).
    speed_kmh: Option<f64>,
}

fn measure(visits: &VecDeque<Visit>, from: usize, to: usize) -> Hop {
    let (a, b) = (&visits[from].place.location, &visits[to].place.location);
    // Most sign-ins of a user come from the place before: no trigonometry for a distance of 0, which is
    // what the formula gives for equal coordinates, exactly.
    let same = a.lat == b.lat && a.lon == b.lon;
    let great_circle_km = if same { 0.0 } else { haversine_km(a.lat, a.lon, b.lat, b.lon) };
    let distance_km = (great_circle_km - a.radius_km - b.radius_km).max(0.0);
    let elapsed = visits[to].time.since(visits[from].time);
    let hours = elapsed.millis() as f64 / 3_600_000.0;
    let speed_kmh = if distance_km == 0.0 {
        Some(0.0)
    } else if hours > 0.0 {
        Some(distance_km / hours)
    } else {
        None
    };
    Hop { from, to, great_circle_km, distance_km, elapsed, speed_kmh }
}

/// Resolves where a sign-in came from: names through the gazetteer, addresses through a MaxMind database.
struct Locator {
    geo: Option<Arc<GeoIp>>,
    prefer_geoip: bool,
    /// The (city, country) names' [`hash_of`] → the name-based place, if any; cleared when full. Known by
    /// hash like every key of the engine: no text is built or compared on a hit.
    names: HashMap<u64, Option<Arc<Place>>, PreHashed>,
}

impl Locator {
    /// Order: with `--prefer-geoip`, the address first. Otherwise a city-level place from the names;
    /// else the address (CloudTrail records carry nothing else); else the country named in the log with
    /// its large radius. Unknown and ambiguous names are never guessed into a city.
    fn locate(&mut self, ev: &SignInEvent) -> Option<Arc<Place>> {
        if self.prefer_geoip {
            if let Some(l) = self.by_address(ev.ip) {
                return Some(Place::of(ev, l));
            }
        }
        let named = self.by_name(ev);
        if let Some(p) = named.as_ref().filter(|p| p.location.source == LocationSource::City) {
            return Some(p.clone());
        }
        if !self.prefer_geoip {
            if let Some(l) = self.by_address(ev.ip) {
                return Some(Place::of(ev, l));
            }
        }
        named
    }

    fn by_address(&self, ip: Option<IpAddr>) -> Option<Location> {
        self.geo.as_ref()?.lookup(ip?)
    }

    /// City plus country → the city; a country (alone, or with a city the table lacks or cannot tell
    /// apart) → the country with its radius; nothing usable → None.
    fn by_name(&mut self, ev: &SignInEvent) -> Option<Arc<Place>> {
        let (city, country) = (ev.city.as_deref(), ev.country.as_deref());
        if city.is_none() && country.is_none() {
            return None;
        }
        let key = hash_of((city, country));
        if let Some(hit) = self.names.get(&key) {
            return hit.clone();
        }
        let gazetteer = Gazetteer::builtin();
        let place = match gazetteer.resolve(city, country) {
            Resolution::Found(l) => Some(l),
            Resolution::Unknown | Resolution::Ambiguous | Resolution::Missing => {
                country.and_then(|c| gazetteer.country(c))
            }
        };
        let place = place.map(|l| Place::of(ev, l));
        if self.names.len() >= NAME_CACHE_CAP {
            self.names.clear();
        }
        self.names.insert(key, place.clone());
        place
    }
}

pub struct ImpossibleTravel {
    params: TravelParams,
    locator: Locator,
    users: KeyedState<Trail>,
    /// How the engine groups IPv6 addresses (the same group is never travel).
    ipv6_prefix: u8,
    unlocated: u64,
}

impl Registered for ImpossibleTravel {
    const ID: &'static str = "impossible_travel";
    const KEY: Option<KeyKind> = Some(KeyKind::User);
    type Params = TravelParams;

    fn check_params(p: &TravelParams) -> Result<(), String> {
        fn positive(name: &str, v: f64, max: f64) -> Result<(), String> {
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(())
            } else {
                Err(format!("{name} = {v} must be above 0 and at most {max}"))
            }
        }
        positive("min_distance_km", p.min_distance_km, MAX_TRAVEL_DISTANCE_KM)?;
        positive("min_speed_kmh", p.min_speed_kmh, MAX_TRAVEL_SPEED_KMH)?;
        if !(1..=MAX_COMPARE_LAST).contains(&p.compare_last) {
            return Err(format!("compare_last = {} must be between 1 and {MAX_COMPARE_LAST}", p.compare_last));
        }
        for (i, step) in p.severity_steps.iter().enumerate() {
            if step.speed_kmh.is_none() && step.distance_km.is_none() {
                return Err(format!("severity_steps[{i}] needs speed_kmh, distance_km or both"));
            }
            if let Some(v) = step.speed_kmh {
                positive(&format!("severity_steps[{i}].speed_kmh"), v, MAX_TRAVEL_SPEED_KMH)?;
            }
            if let Some(v) = step.distance_km {
                positive(&format!("severity_steps[{i}].distance_km"), v, MAX_TRAVEL_DISTANCE_KM)?;
            }
        }
        Ok(())
    }

    /// It fires on one hop between two successes.
    fn check_spec(p: &TravelParams, spec: &Spec) -> Result<(), String> {
        if spec.threshold != 1 {
            return Err(format!(
                "detector impossible_travel fires on a single impossible hop: threshold must be 1, not {}",
                spec.threshold
            ));
        }
        if spec.outcomes.iter().any(|o| *o != Outcome::Success) {
            return Err(
                "detector impossible_travel compares successful sign-ins: match.outcomes must be [\"success\"]".into(),
            );
        }
        for (i, step) in p.severity_steps.iter().enumerate() {
            if step.severity <= spec.severity {
                return Err(format!(
                    "params: severity_steps[{i}]: severity '{}' is not above the base severity '{}'",
                    step.severity, spec.severity
                ));
            }
        }
        Ok(())
    }

    fn describe_severities(p: &TravelParams) -> Vec<String> {
        p.severity_steps.iter().map(TravelSeverityStep::describe).collect()
    }
}

impl ImpossibleTravel {
    fn hop_severity(&self, spec: &Spec, hop: &Hop) -> Severity {
        self.params
            .severity_steps
            .iter()
            .filter(|s| s.met_by(hop.distance_km, hop.speed_kmh))
            .map(|s| s.severity)
            .fold(spec.severity, Severity::max)
    }

    /// The pairs a visit at `at` forms: with its `compare_last` predecessors, and with the successors that
    /// count it among theirs (only a late visit has any), in a trail of `len` comparing `k` back.
    fn pairs(k: usize, at: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
        let before = (at.saturating_sub(k)..at).map(move |j| (j, at));
        let after = (at + 1..len.min(at + k + 1)).map(move |j| (at, j));
        before.chain(after)
    }

    /// Opens the user's incident with `hop`, or extends it (escalating when the hop is worse).
    fn report(&mut self, seen: &Seen<'_>, hop: &Hop, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let (spec, ev, user, uh) = (seen.spec, seen.ev, seen.key.key, seen.key.hash);
        let severity = self.hop_severity(spec, hop);
        let prefix = self.ipv6_prefix;
        let Some(trail) = self.users.get_mut(uh) else { return };
        let summarize: Summarize = summary;
        match book.get_mut(uh) {
            Some(inc) => {
                fold_hop(inc, trail, hop, prefix);
                let severity = severity.max(spec.severity_at(inc.count));
                if severity > inc.severity {
                    inc.severity = severity;
                    set_headline(inc, &trail.visits, hop, prefix);
                    out.push(inc.to_finding(spec, Status::Escalated, summary(spec, inc)));
                }
            }
            None => {
                let (from, to) = (&trail.visits[hop.from], &trail.visits[hop.to]);
                let mut inc = Incident::open(spec, user, ev, from.time);
                // A late visit may be the earlier end: the incident is dated by the later one either way.
                inc.id = incident_id(&spec.id, user, to.time);
                inc.detected_at = to.time;
                inc.last_seen = to.time;
                fold_hop(&mut inc, trail, hop, prefix);
                set_headline(&mut inc, &trail.visits, hop, prefix);
                inc.severity = severity.max(spec.severity_at(inc.count));
                book.open(uh, inc, spec, summarize, out);
            }
        }
    }
}

/// Is this hop travel nobody could make? Never for the same address (or IPv6 prefix).
fn impossible(params: &TravelParams, ipv6_prefix: u8, visits: &VecDeque<Visit>, hop: &Hop) -> bool {
    let (a, b) = (&visits[hop.from], &visits[hop.to]);
    if let (Some(x), Some(y)) = (a.ip, b.ip) {
        if same_group(x, y, ipv6_prefix) {
            return false;
        }
    }
    hop.distance_km >= params.min_distance_km && hop.speed_kmh.is_none_or(|v| v >= params.min_speed_kmh)
}

/// Adds a hop's two sign-ins (each once per incident) and the hop itself to the incident's evidence.
fn fold_hop(inc: &mut Incident, trail: &mut Trail, hop: &Hop, ipv6_prefix: u8) {
    let serial = trail.counting(&inc.id);
    let visits = &mut trail.visits;
    for i in [hop.from, hop.to] {
        let v = &mut visits[i];
        if v.counted_in == serial {
            continue;
        }
        v.counted_in = serial;
        let group = v.group(ipv6_prefix);
        let aux = group.as_deref().map_or(0, fnv);
        let mut buf = [0u8; 36];
        let event_id = v.event_id.as_ref().map(|e| e.as_str(&mut buf));
        inc.add(v.time, Outcome::Success, aux, group.as_deref(), event_id);
    }
    let total = inc.extra.get("impossible_hops").and_then(Value::as_u64).unwrap_or(0) + 1;
    inc.extra.insert("impossible_hops".into(), json!(total));
    let hops = inc.extra.entry("hops").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = hops {
        if list.len() < MAX_EVIDENCE_HOPS {
            list.push(Value::Object(hop_evidence(visits, hop)));
        }
    }
}

/// The hop the incident is rated by: its figures at the top of the evidence and in the summary.
fn set_headline(inc: &mut Incident, visits: &VecDeque<Visit>, hop: &Hop, ipv6_prefix: u8) {
    for (k, v) in hop_evidence(visits, hop) {
        inc.extra.insert(k, v);
    }
    inc.shown_counterpart = visits[hop.to].group(ipv6_prefix).map(|g| g.to_string());
}

fn hop_evidence(visits: &VecDeque<Visit>, hop: &Hop) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("from".into(), visits[hop.from].evidence());
    m.insert("to".into(), visits[hop.to].evidence());
    m.insert("great_circle_km".into(), round(hop.great_circle_km, 1));
    m.insert("distance_km".into(), round(hop.distance_km, 1));
    m.insert("elapsed".into(), json!(hop.elapsed.to_string()));
    m.insert("elapsed_seconds".into(), json!(hop.elapsed.millis() as f64 / 1000.0));
    // JSON has no infinity: no time elapsed is a null speed.
    m.insert("speed_kmh".into(), hop.speed_kmh.map_or(Value::Null, |v| round(v, 1)));
    m
}

/// A stable identity for an address group in the incident's distinct count (hash of its text).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn round(v: f64, decimals: i32) -> Value {
    let f = 10f64.powi(decimals);
    json!((v * f).round() / f)
}

/// "jdoe signed in from New York, United States then Auckland, New Zealand 2h later: 14,196 km at
/// 7,098 km/h".
fn summary(_spec: &Spec, inc: &Incident) -> String {
    let place = |end: &str| {
        inc.extra.get(end).and_then(|v| v.get("location")).and_then(Value::as_str).unwrap_or("an unknown place")
    };
    let number = |k: &str| inc.extra.get(k).and_then(Value::as_f64);
    let distance = thousands_f(number("distance_km").unwrap_or(0.0));
    let elapsed = inc.extra.get("elapsed").and_then(Value::as_str).unwrap_or("?");
    let mut s = match number("speed_kmh") {
        Some(speed) => format!(
            "{} signed in from {} then {} {elapsed} later: {distance} km at {} km/h",
            inc.label(),
            place("from"),
            place("to"),
            thousands_f(speed)
        ),
        None => format!(
            "{} signed in from {} and {} at the same time: {distance} km apart",
            inc.label(),
            place("from"),
            place("to")
        ),
    };
    let hops = inc.extra.get("impossible_hops").and_then(Value::as_u64).unwrap_or(1);
    if hops > 1 {
        s.push_str(&format!(" ({hops} impossible hops)"));
    }
    s
}

impl Rule for ImpossibleTravel {
    fn new(spec: &Spec, params: TravelParams, settings: &EngineSettings) -> ImpossibleTravel {
        // Parsing the built-in gazetteer takes a tenth of a second or more: started now on a thread of its
        // own, it is ready by the first sign-in to place instead of holding the engine's thread up then.
        let _ = std::thread::Builder::new().name("gazetteer".into()).spawn(Gazetteer::builtin);
        ImpossibleTravel {
            users: KeyedState::new(spec.max_keys, spec.window),
            ipv6_prefix: settings.ipv6_prefix,
            locator: Locator {
                geo: settings.geo.clone(),
                prefer_geoip: settings.prefer_geoip,
                names: HashMap::default(),
            },
            params,
            unlocated: 0,
        }
    }

    fn admits(&self, spec: &Spec, ev: &SignInEvent) -> bool {
        spec.observes(ev.kind) && spec.counts(ev.outcome)
    }

    /// A user's trail is theirs alone; the place-name cache only saves work.
    fn per_key(&self, _spec: &Spec) -> bool {
        true
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let (ev, uh, clock, window) = (seen.ev, seen.key.hash, seen.clock, seen.spec.window);
        // A private or reserved address has no location, whatever the log's names say.
        let place = if ev.ip.is_some_and(|ip| is_non_routable(&ip)) { None } else { self.locator.locate(ev) };
        let Some(place) = place else {
            self.unlocated += 1;
            return;
        };
        let visit = Visit {
            time: ev.time,
            ip: ev.ip,
            place,
            event_id: ev.event_id.as_deref().map(PackedId::new),
            counted_in: 0,
        };
        let (params, prefix, keep) = (&self.params, self.ipv6_prefix, self.params.compare_last);
        let trail = self.users.get_or_insert_with(uh, clock, Trail::default);
        let at = trail.insert(visit);
        let hops: Vec<Hop> = Self::pairs(keep, at, trail.visits.len())
            .map(|(from, to)| measure(&trail.visits, from, to))
            .filter(|hop| impossible(params, prefix, &trail.visits, hop))
            .collect();
        if hops.is_empty() {
            // The common case: the trail at hand is trimmed without looking it up again.
            trail.trim(clock, window, keep);
            return;
        }
        for hop in &hops {
            self.report(&seen, hop, book, out);
        }
        if let Some(trail) = self.users.get_mut(uh) {
            trail.trim(clock, window, keep);
        }
    }

    fn summary(spec: &Spec, inc: &Incident) -> String {
        summary(spec, inc)
    }

    fn settle(&mut self, now: Timestamp) {
        self.users.sweep(now);
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.users.len();
        stats.evicted_keys = self.users.evicted;
        stats.unlocated = self.unlocated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_fits_in_64_bytes() {
        // Every user who signs in keeps a few for hours. Grow it knowingly.
        assert!(std::mem::size_of::<Visit>() <= 64, "{}", std::mem::size_of::<Visit>());
    }

    #[test]
    fn a_trail_counts_visits_once_per_incident_and_again_in_the_next() {
        let mut trail = Trail::default();
        let first = trail.counting("impossible_travel:alice:1");
        assert_eq!(trail.counting("impossible_travel:alice:1"), first, "the same incident");
        let second = trail.counting("impossible_travel:alice:2");
        assert_ne!(second, first, "a new incident");
        assert_ne!(second, 0, "0 means never counted");
        assert_ne!(trail.counting("impossible_travel:alice:1"), second);
    }

    #[test]
    fn pairs_reach_back_and_forward_by_compare_last() {
        let spec = crate::spec::SpecSet::builtin().get("impossible_travel").cloned();
        let Some(spec) = spec else { panic!("built-in impossible_travel spec is missing") };
        let Some(params) = spec.params.get::<TravelParams>() else { panic!("impossible_travel has travel params") };
        let d = ImpossibleTravel::new(&spec, params.clone(), &EngineSettings::default());
        assert_eq!(d.params.compare_last, 2);
        // In order: the newest compares with its two predecessors.
        let pairs = |at, len| ImpossibleTravel::pairs(d.params.compare_last, at, len).collect::<Vec<_>>();
        assert_eq!(pairs(4, 5), vec![(2, 4), (3, 4)]);
        // Late, in the middle: two before, and the two after that count it among their last two.
        assert_eq!(pairs(2, 6), vec![(0, 2), (1, 2), (2, 3), (2, 4)]);
        assert_eq!(pairs(0, 1), vec![]);
    }
}
