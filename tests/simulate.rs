//! `authwatch simulate`: determinism, order, the shape of every line, scaling, and that the ground truth
//! matches what the log holds.

use std::collections::{HashMap, HashSet};
use std::io;

use authwatch::simulate::benign::MAX_SESSION_SPAN;
use authwatch::simulate::cities::{distance_km, CITIES};
use authwatch::simulate::{run, write_jsonl, Attack, SimConfig, SimEvent, SimulateArgs, Simulation};
use authwatch::time::Timestamp;
use serde_json::Value;

const START: &str = "2026-03-02T00:00:00Z";

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

fn args(users: u32, duration: &str, seed: u64, attacks: &str, format: &str) -> SimulateArgs {
    SimulateArgs {
        users,
        duration: duration.into(),
        start: Some(START.into()),
        seed,
        attacks: attacks.into(),
        events: None,
        log_format: format.into(),
        user_pool_id: "us-east-1_Demo0001".into(),
        output: None,
        truth: None,
    }
}

fn simulate(a: &SimulateArgs) -> (Vec<SimEvent>, Vec<Attack>) {
    let sim = Simulation::new(&SimConfig::from_args(a).unwrap()).unwrap();
    let truth = sim.truth().to_vec();
    (sim.collect(), truth)
}

fn bytes(a: &SimulateArgs) -> Vec<u8> {
    let mut out = Vec::new();
    write_jsonl(Simulation::new(&SimConfig::from_args(a).unwrap()).unwrap(), &mut out).unwrap();
    out
}

/// Fields of one event, whichever format it is in.
struct Seen {
    time: Timestamp,
    ip: String,
    user: Option<String>,
    sub: Option<String>,
    success: bool,
    failure: bool,
    city: Option<String>,
}

fn seen(line: &str) -> Seen {
    let v: Value = serde_json::from_str(line).unwrap();
    let s = |v: &Value| v.as_str().map(str::to_string).filter(|s| !s.is_empty());
    if let Some(m) = v.get("message") {
        Seen {
            time: Timestamp(v["eventTimestamp"].as_str().unwrap().parse().unwrap()),
            ip: m["ipAddress"].as_str().unwrap().to_string(),
            user: s(&m["userName"]),
            sub: s(&m["userSub"]),
            success: m["eventType"] == "SignIn" && m["eventResponse"] == "Pass",
            failure: m["eventResponse"] == "Fail",
            city: s(&m["city"]),
        }
    } else {
        Seen {
            time: Timestamp::parse_rfc3339(v["eventTime"].as_str().unwrap()).unwrap(),
            ip: v["sourceIPAddress"].as_str().unwrap().to_string(),
            user: None,
            sub: v.pointer("/additionalEventData/sub").and_then(s),
            success: v.get("errorCode").is_none()
                && (v["eventName"] == "RespondToAuthChallenge"
                    || (v["eventName"] == "InitiateAuth" && v["responseElements"]["authenticationResult"].is_object())),
            failure: v.get("errorCode").is_some(),
            city: None,
        }
    }
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    let a = args(2000, "12h", 7, "default", "mixed");
    let first = bytes(&a);
    assert!(!first.is_empty());
    assert_eq!(first, bytes(&a));
    assert_ne!(first, bytes(&args(2000, "12h", 8, "default", "mixed")));
}

#[test]
fn events_come_out_in_time_order_inside_the_run() {
    for format in ["cognito", "cloudtrail", "mixed"] {
        let (events, _) = simulate(&args(2000, "12h", 3, "default", format));
        let start = Timestamp::parse_rfc3339(START).unwrap();
        let end = Timestamp(start.millis() + 12 * 3_600_000);
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time), "{format}: out of order");
        for ev in &events {
            // A session that starts just before the end may run past it, by MAX_SESSION_SPAN at most.
            assert!(
                ev.time >= start && ev.time < end.saturating_add(MAX_SESSION_SPAN),
                "{format}: {} outside the run",
                ev.time
            );
            let logged = seen(&ev.line).time;
            // CloudTrail writes whole seconds.
            assert!(logged <= ev.time && ev.time.millis() - logged.millis() < 1000, "{format}: {}", ev.line);
        }
    }
}

#[test]
fn cognito_lines_have_the_documented_shape() {
    let (events, _) = simulate(&args(2000, "12h", 5, "default", "cognito"));
    let mut types = HashSet::new();
    let mut responses = HashSet::new();
    for ev in &events {
        assert!(!ev.line.contains('\n'));
        let v: Value = serde_json::from_str(&ev.line).unwrap();
        assert_eq!(v["eventTimestamp"].as_str().unwrap(), ev.time.millis().to_string());
        assert_eq!(v["eventSource"], "USER_ACTIVITY");
        assert_eq!(v["logLevel"], "INFO");
        assert_eq!(v["logSourceId"]["userPoolId"], "us-east-1_Demo0001");
        let m = v["message"].as_object().unwrap();
        for key in [
            "version",
            "eventId",
            "eventType",
            "userSub",
            "userName",
            "userPoolId",
            "clientId",
            "creationDate",
            "eventResponse",
            "riskLevel",
            "riskDecision",
            "deviceName",
            "ipAddress",
            "requestId",
            "idpName",
            "compromisedCredentialDetected",
            "city",
            "country",
            "hasContextData",
        ] {
            assert!(m[key].is_string(), "{key} is not a string in {}", ev.line);
        }
        for (key, value) in m {
            assert!(value.is_string() || (key == "challenges" && value.is_array()), "{key} in {}", ev.line);
        }
        assert!(["SignIn", "SignUp", "ForgotPassword", "PasswordChange"].contains(&m["eventType"].as_str().unwrap()));
        assert!(["Pass", "Fail", "InProgress"].contains(&m["eventResponse"].as_str().unwrap()));
        assert!(["", "Low", "Medium", "High"].contains(&m["riskLevel"].as_str().unwrap()));
        assert!(["PASS", "NoRisk", "AccountTakeover", "Block"].contains(&m["riskDecision"].as_str().unwrap()));
        assert!(["true", "false"].contains(&m["compromisedCredentialDetected"].as_str().unwrap()));
        assert!(m["ipAddress"].as_str().unwrap().parse::<std::net::IpAddr>().is_ok());
        let sub = m["userSub"].as_str().unwrap();
        let created = m["creationDate"].as_str().unwrap();
        if sub.is_empty() {
            assert!(m["userName"].as_str().unwrap().contains('@'), "unknown users come from a leak");
        } else {
            assert_eq!(sub.len(), 36);
            let c = Timestamp::parse_java_date(created).unwrap_or_else(|| panic!("creationDate {created}"));
            assert!(c <= ev.time);
        }
        assert!(CITIES.iter().any(|c| c.name == m["city"] && c.country == m["country"]));
        types.insert(m["eventType"].as_str().unwrap().to_string());
        responses.insert(m["eventResponse"].as_str().unwrap().to_string());
    }
    assert!(types.contains("SignIn") && types.contains("SignUp") && types.len() >= 3, "{types:?}");
    assert_eq!(responses.len(), 3, "{responses:?}");
}

#[test]
fn cloudtrail_lines_have_the_documented_shape() {
    let (events, _) = simulate(&args(2000, "12h", 5, "default", "cloudtrail"));
    let mut failures = 0;
    for ev in &events {
        let v: Value = serde_json::from_str(&ev.line).unwrap();
        assert_eq!(v["eventSource"], "cognito-idp.amazonaws.com");
        assert_eq!(v["eventType"], "AwsApiCall");
        assert_eq!(v["awsRegion"], "us-east-1");
        let time = v["eventTime"].as_str().unwrap();
        assert_eq!(time.len(), 20, "to the second: {time}");
        assert!(v["eventID"].as_str().unwrap().len() == 36);
        assert!(v["sourceIPAddress"].as_str().unwrap().parse::<std::net::IpAddr>().is_ok());
        assert!(v["userAgent"].is_string());
        assert!(v.get("message").is_none() && !ev.line.contains("userName"));
        // The user pool, named as CloudTrail names a call's resources (pool-wide rules key on it).
        assert_eq!(v["resources"][0]["type"], "AWS::Cognito::UserPool");
        assert_eq!(
            v["resources"][0]["ARN"],
            "arn:aws:cognito-idp:us-east-1:{}:userpool/us-east-1_Demo0001"
                .replace("{}", v["recipientAccountId"].as_str().unwrap())
        );
        if v["eventName"] == "InitiateAuth" {
            assert_eq!(v["requestParameters"]["authFlow"], "USER_PASSWORD_AUTH");
        }
        if v.get("errorCode").is_some() {
            failures += 1;
            if v["eventName"] == "RespondToAuthChallenge" {
                // A wrong MFA code: the password passed.
                assert_eq!(v["errorCode"], "CodeMismatchException");
                assert_eq!(v["requestParameters"]["challengeName"], "SOFTWARE_TOKEN_MFA");
            } else {
                assert_eq!(v["errorCode"], "NotAuthorizedException");
                assert_eq!(v["eventName"], "InitiateAuth");
                assert_eq!(v["requestParameters"]["authParameters"], "HIDDEN_DUE_TO_SECURITY_REASONS");
            }
        }
        if let Some(extra) = v.get("additionalEventData") {
            assert_eq!(extra["sub"].as_str().unwrap().len(), 36);
        }
    }
    assert!(failures > 0);
    // Stuffing's unknown users have no sub, so their records name no user at all.
    assert!(events.iter().any(|e| !e.line.contains("additionalEventData")));
}

#[test]
fn events_flag_scales_the_event_count() {
    let mut a = args(1000, "24h", 2, "none", "cognito");
    let base = Simulation::new(&SimConfig::from_args(&a).unwrap()).unwrap().count() as f64;
    assert!((1800.0..3400.0).contains(&base), "default rate: {base}");
    for target in [10_000u64, 40_000] {
        a.events = Some(target);
        let n = Simulation::new(&SimConfig::from_args(&a).unwrap()).unwrap().count() as f64;
        let ratio = n / target as f64;
        assert!((0.85..1.15).contains(&ratio), "--events {target} gave {n}");
    }
}

#[test]
fn attacks_none_writes_an_empty_truth_and_run_writes_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(500, "6h", 1, "none", "cognito");
    a.output = Some(dir.path().join("log.jsonl"));
    a.truth = Some(dir.path().join("truth.json"));
    let summary = run(&a).unwrap();
    assert_eq!(summary.attacks, 0);
    let truth: Vec<Attack> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("truth.json")).unwrap()).unwrap();
    assert!(truth.is_empty());
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count() as u64, summary.events);
    assert!(summary.events > 100);
}

#[test]
fn attacks_none_fits_a_run_shorter_than_the_gap_attacks_need() {
    let (events, truth) = simulate(&args(500, "10m", 1, "none", "cognito"));
    assert!(truth.is_empty());
    assert!(!events.is_empty(), "ten minutes of 500 users sign in at least once");
}

#[test]
fn truth_file_round_trips_and_counts_the_default_attacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(3000, "24h", 4, "default", "cognito");
    a.output = Some(dir.path().join("log.jsonl"));
    a.truth = Some(dir.path().join("truth.json"));
    let summary = run(&a).unwrap();
    let truth: Vec<Attack> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("truth.json")).unwrap()).unwrap();
    assert_eq!(summary.attacks, 14, "two of each kind in 24 h");
    assert_eq!(truth.len(), 14);
    let kinds: HashSet<&str> = truth.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds.len(), 7);
    for w in truth.windows(2) {
        assert!(w[0].end < w[1].start, "{} overlaps {}", w[0].id, w[1].id);
    }
}

/// Every attack's addresses and users appear in the log between its start and end, and attacker addresses
/// appear nowhere else.
fn check_truth_matches_log(format: &str) {
    let (events, truth) = simulate(&args(3000, "24h", 9, "default", format));
    assert!(!truth.is_empty());
    let lines: Vec<Seen> = events.iter().map(|e| seen(&e.line)).collect();
    let attack_ips: HashSet<&str> = truth.iter().flat_map(|t| t.ips.iter().map(String::as_str)).collect();
    for t in &truth {
        assert!(!t.detectors.is_empty() && !t.ips.is_empty() && !t.users.is_empty(), "{t:?}");
        let inside: Vec<&Seen> = lines.iter().filter(|s| s.time >= t.start.floor_sec() && s.time <= t.end).collect();
        for ip in &t.ips {
            assert!(inside.iter().any(|s| &s.ip == ip), "{format} {}: ip {ip} missing", t.id);
        }
        let present = t
            .users
            .iter()
            .filter(|u| inside.iter().any(|s| s.user.as_ref() == Some(u) || s.sub.as_ref() == Some(u)))
            .count();
        if format == "mixed" {
            // Each user shows either its name or its sub, depending on which format its event took.
            assert!(present * 2 >= t.users.len(), "{format} {}: {present}/{}", t.id, t.users.len());
        } else {
            assert_eq!(present, t.users.len(), "{format} {}: users missing", t.id);
        }
    }
    for s in &lines {
        if attack_ips.contains(s.ip.as_str()) {
            assert!(truth.iter().any(|t| s.time >= t.start.floor_sec() && s.time <= t.end), "{} outside attacks", s.ip);
        }
    }
}

trait FloorSec {
    fn floor_sec(self) -> Timestamp;
}
impl FloorSec for Timestamp {
    /// CloudTrail times are whole seconds.
    fn floor_sec(self) -> Timestamp {
        Timestamp(self.millis().div_euclid(1000) * 1000)
    }
}

#[test]
fn truth_matches_the_cognito_log() {
    check_truth_matches_log("cognito");
}

#[test]
fn truth_matches_the_cloudtrail_log() {
    check_truth_matches_log("cloudtrail");
}

#[test]
fn truth_matches_the_mixed_log() {
    check_truth_matches_log("mixed");
}

/// The detectors' default rules, checked on benign traffic alone: a simulated log without attacks must not
/// trip them. Scaled to ~100 sign-ins per user per day so shared addresses and cooldowns are exercised.
#[test]
fn benign_traffic_stays_below_detector_thresholds() {
    let mut a = args(1000, "24h", 11, "none", "cognito");
    a.events = Some(120_000);
    let (events, _) = simulate(&a);
    let lines: Vec<Seen> = events.iter().map(|e| seen(&e.line)).collect();
    let mut by_user: HashMap<&str, Vec<&Seen>> = HashMap::new();
    let mut by_ip: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in &lines {
        by_user.entry(s.user.as_deref().unwrap()).or_default().push(s);
        by_ip.entry(s.ip.as_str()).or_default().push(s);
    }
    let min = 60_000;
    for (user, evs) in &by_user {
        let fails: Vec<i64> = evs.iter().filter(|s| s.failure).map(|s| s.time.millis()).collect();
        // account_takeover needs 5 failures in 15 min; failed_login_burst 10 in 5 min.
        for (i, t) in fails.iter().enumerate() {
            let in_15 = fails[i..].iter().take_while(|u| **u - t < 15 * min).count();
            assert!(in_15 < 5, "{user}: {in_15} failures in 15 min");
        }
        // impossible_travel: consecutive successes >= 500 km apart at >= 900 km/h.
        let wins: Vec<&&Seen> = evs.iter().filter(|s| s.success).collect();
        for w in wins.windows(2) {
            let city = |s: &Seen| CITIES.iter().find(|c| Some(c.name) == s.city.as_deref()).unwrap();
            let km = distance_km(city(w[0]), city(w[1]));
            let hours = (w[1].time.millis() - w[0].time.millis()) as f64 / 3_600_000.0;
            assert!(km < 500.0 || km / hours < 900.0, "{user}: {km:.0} km in {hours:.1} h");
        }
    }
    let office = by_ip.values().map(|v| v.iter().map(|s| s.user.as_deref()).collect::<HashSet<_>>().len()).max();
    assert!(office.unwrap() >= 50, "the office NAT is shared");
    for (ip, evs) in &by_ip {
        // failed_login_burst per IP: 20 failures in 10 min with failures the majority.
        for (i, s) in evs.iter().enumerate() {
            let window: Vec<&&Seen> =
                evs[i..].iter().take_while(|u| u.time.millis() - s.time.millis() < 10 * min).collect();
            let fails = window.iter().filter(|u| u.failure).count();
            assert!(fails < 20 || fails * 2 <= window.len(), "{ip}: {fails}/{}", window.len());
        }
    }
    assert!(events
        .iter()
        .all(|e| !e.line.contains(r#""riskLevel":"High""#)
            && !e.line.contains(r#""compromisedCredentialDetected":"true""#)));
}

#[test]
fn a_default_run_stamps_no_event_after_the_time_it_finished() {
    // Dense traffic, so sessions that start just before the end (a password change comes up to 10 minutes
    // after the sign-in) certainly exist.
    let mut a = args(5000, "1h", 1, "none", "cognito");
    a.start = None;
    a.events = Some(100_000);
    let cfg = SimConfig::from_args(&a).unwrap();
    let room = MAX_SESSION_SPAN.millis();
    let end = cfg.end().millis();
    assert!(end <= now_ms() - room && end > now_ms() - room - 120_000, "ends {} ms before now", now_ms() - end);
    let newest = Simulation::new(&cfg).unwrap().map(|ev| ev.time).max().unwrap();
    let finished = Timestamp::now();
    assert!(newest <= finished, "an event at {newest}, after the run finished at {finished}");
    assert!(newest.millis() > end, "no session ran past the end: the test proves nothing");
}

#[test]
fn a_million_events_stream_through_a_sink() {
    let mut a = args(20_000, "24h", 1, "default", "cognito");
    a.events = Some(1_000_000);
    let n = write_jsonl(Simulation::new(&SimConfig::from_args(&a).unwrap()).unwrap(), io::sink()).unwrap();
    assert!((850_000..1_150_000).contains(&n), "{n}");
}

#[test]
fn bad_arguments_are_rejected_with_the_flag_named() {
    let err = |a: SimulateArgs| SimConfig::from_args(&a).unwrap_err();
    assert!(err(args(1000, "5", 1, "none", "cognito")).contains("--duration"));
    assert!(err(args(1000, "24h", 1, "phishing=1", "cognito")).contains("unknown kind 'phishing'"));
    assert!(err(args(1000, "24h", 1, "burst=1,burst=2", "cognito")).contains("twice"));
    assert!(err(args(1000, "24h", 1, "risk=1", "cloudtrail")).contains("--log-format"));
    assert!(err(args(1000, "1h", 1, "default", "cognito")).contains("too short"));
    assert!(err(args(100, "24h", 1, "stuffing=2", "cognito")).contains("--users"));
    assert!(err(args(1000, "24h", 1, "none", "syslog")).contains("--log-format"));
    let mut a = args(1000, "24h", 1, "none", "cognito");
    a.user_pool_id = "Demo0001".into();
    assert!(err(a.clone()).contains("--user-pool-id"));
    a.user_pool_id = "us-east-1_Demo0001".into();
    a.start = Some("yesterday".into());
    assert!(err(a.clone()).contains("--start"));
    a.start = None;
    a.events = Some(0);
    assert!(err(a).contains("--events"));
    // Default attacks in CloudTrail leave out the kinds CloudTrail cannot show.
    let cfg = SimConfig::from_args(&args(3000, "24h", 1, "default", "cloudtrail")).unwrap();
    assert_eq!(cfg.attacks.len(), 5);
}

// ---- Issue 13: the pool-wide and slow attacks, the look-alikes, and the benign traffic around them ----

use authwatch::decode::{decode_record, Decoded};
use authwatch::event::{EventKind, Origin, Outcome, SignInEvent, Step};
use authwatch::simulate::attacks::AttackKind;

const HOUR: i64 = 3_600_000;

/// Every event of the log, decoded by authwatch's own decoder (what `authwatch replay` reads).
fn decoded(events: &[SimEvent]) -> Vec<SignInEvent> {
    let origin = Origin::new("sim".into(), 1);
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        decode_record(ev.line.as_bytes(), &origin, None, &mut |d| match d {
            Decoded::Event(e) => {
                // Every event names its pool, in either format: pool-wide rules key on it.
                assert_eq!(e.user_pool_id.as_deref(), Some("us-east-1_Demo0001"), "{}", ev.line);
                out.push(*e)
            }
            other => panic!("{} did not decode to an event: {}", ev.line, matches!(other, Decoded::Skipped(_))),
        });
    }
    assert_eq!(out.len(), events.len());
    out
}

fn item<'a>(truth: &'a [Attack], kind: &str) -> &'a Attack {
    truth.iter().find(|t| t.kind == kind).unwrap_or_else(|| panic!("no {kind} in the truth"))
}

/// The item's events: from its addresses, inside its span (CloudTrail times are whole seconds).
fn from_item<'a>(evs: &'a [SignInEvent], t: &Attack) -> Vec<&'a SignInEvent> {
    let ips: HashSet<&str> = t.ips.iter().map(String::as_str).collect();
    evs.iter()
        .filter(|e| e.time >= t.start.floor_sec() && e.time <= t.end)
        .filter(|e| e.ip.is_some_and(|ip| ips.contains(ip.to_string().as_str())))
        .collect()
}

fn user_of(e: &SignInEvent) -> &str {
    e.user_key().unwrap_or("")
}

#[test]
fn all_plants_every_kind_once_a_day_with_pool_wide_items_apart() {
    let (events, truth) = simulate(&args(2000, "24h", 1, "all", "cognito"));
    let kinds: HashSet<&str> = truth.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds.len(), AttackKind::ALL.len(), "{kinds:?}");
    assert_eq!(truth.len(), AttackKind::ALL.len());
    let start = Timestamp::parse_rfc3339(START).unwrap();
    for t in &truth {
        let kind = AttackKind::parse(&t.kind).unwrap();
        assert_eq!(t.lookalike, kind.lookalike(), "{}", t.id);
        assert_eq!(t.lookalike, t.detectors.is_empty(), "{}", t.id);
        assert!(t.events > 0 && t.end.millis() - t.start.millis() <= kind.max_span().millis(), "{t:?}");
    }
    let pool: Vec<&Attack> = truth.iter().filter(|t| t.pool_wide).collect();
    assert_eq!(pool.len(), 4);
    for (i, a) in pool.iter().enumerate() {
        assert!(a.start.millis() >= start.millis() + 6 * HOUR, "{} starts in the warm-up", a.id);
        for b in &pool[i + 1..] {
            assert!(a.end.millis() + 2 * HOUR <= b.start.millis(), "{} and {} are closer than 2 h", a.id, b.id);
        }
    }
    let apart: Vec<&Attack> =
        truth.iter().filter(|t| !["slow_brute_force", "carrier_nat"].contains(&t.kind.as_str())).collect();
    for (i, a) in apart.iter().enumerate() {
        for b in &apart[i + 1..] {
            assert!(a.end.millis() + 30 * 60_000 <= b.start.millis(), "{} and {} overlap", a.id, b.id);
        }
    }
    let counted: u64 = truth.iter().map(|t| t.events).sum();
    assert!(counted < events.len() as u64);
}

#[test]
fn all_is_byte_identical_for_a_seed_and_refused_when_it_cannot_fit() {
    let a = args(2000, "24h", 2, "all", "mixed");
    assert_eq!(bytes(&a), bytes(&a));
    let err = SimConfig::from_args(&args(2000, "12h", 2, "all", "cognito")).unwrap_err();
    assert!(err.contains("--duration") && err.contains("too short"), "{err}");
    let err = SimConfig::from_args(&args(
        2000,
        "24h",
        2,
        "client_release=1,marketing_signups=1,proxy_stuffing=1,signup_flood=2",
        "cognito",
    ));
    assert!(err.is_ok(), "{err:?}");
    let cfg = SimConfig::from_args(&args(3000, "24h", 1, "all", "cloudtrail")).unwrap();
    assert_eq!(cfg.attacks.len(), AttackKind::ALL.len() - 2, "risk and travel need the export");
}

#[test]
fn truth_matches_the_log_with_every_kind() {
    for format in ["cognito", "cloudtrail"] {
        let (events, truth) = simulate(&args(2000, "24h", 3, "all", format));
        let evs = decoded(&events);
        for t in truth.iter().filter(|t| !t.lookalike && t.kind != "travel") {
            // Attacker addresses are the attack's own: its events are exactly the lines from them.
            assert_eq!(from_item(&evs, t).len() as u64, t.events, "{format} {}", t.id);
        }
        for t in &truth {
            let inside: Vec<&SignInEvent> =
                evs.iter().filter(|e| e.time >= t.start.floor_sec() && e.time <= t.end).collect();
            for u in &t.users {
                assert!(
                    inside.iter().any(
                        |e| e.user_name.as_deref() == Some(u.as_str()) || e.user_sub.as_deref() == Some(u.as_str())
                    ),
                    "{format} {}: user {u} missing",
                    t.id
                );
            }
        }
    }
}

#[test]
fn proxy_stuffing_looks_like_a_residential_proxy_campaign() {
    let (events, truth) = simulate(&args(20_000, "12h", 4, "proxy_stuffing=1", "cognito"));
    let t = item(&truth, "proxy_stuffing");
    let all = decoded(&events);
    let evs = from_item(&all, t);
    let n = evs.len();
    assert!((2700..=3300).contains(&n), "{n} attempts");
    let mut per_ip: HashMap<String, usize> = HashMap::new();
    for e in &evs {
        *per_ip.entry(e.ip.unwrap().to_string()).or_default() += 1;
    }
    assert!(per_ip.values().all(|c| *c <= 2), "1-2 tries per address");
    assert!((1700..=2300).contains(&per_ip.len()), "{} addresses", per_ip.len());
    let v6: Vec<std::net::Ipv6Addr> = evs
        .iter()
        .filter_map(|e| match e.ip {
            Some(std::net::IpAddr::V6(v6)) => Some(v6),
            _ => None,
        })
        .collect();
    let nets: HashSet<[u16; 4]> =
        v6.iter().map(|a| [a.segments()[0], a.segments()[1], a.segments()[2], a.segments()[3]]).collect();
    assert!(v6.len() > 100, "some proxies are IPv6");
    let v6_addrs: HashSet<_> = v6.iter().collect();
    assert_eq!(nets.len(), v6_addrs.len(), "each IPv6 proxy is its own /64");
    let countries: HashSet<&str> = evs.iter().filter_map(|e| e.country.as_deref()).collect();
    assert!(countries.len() >= 20, "{countries:?}");
    let unknown = evs.iter().filter(|e| e.user_sub.is_none()).count();
    assert!((0.79..=0.91).contains(&(unknown as f64 / n as f64)), "{unknown} of {n} unknown");
    let wins: Vec<&&SignInEvent> = evs.iter().filter(|e| e.outcome == Outcome::Success).collect();
    assert!((0.009..=0.021).contains(&(wins.len() as f64 / n as f64)), "{} of {n} succeed", wins.len());
    assert!(wins.iter().all(|e| e.user_sub.is_some()), "only real users are taken over");
    let won: HashSet<&str> = wins.iter().map(|e| user_of(e)).collect();
    let listed: HashSet<&str> = t.takeovers.iter().map(String::as_str).collect();
    assert_eq!(won, listed);
    let span = t.end.millis() - t.start.millis();
    assert!((60 * 60_000..=122 * 60_000).contains(&span), "{span} ms");
}

#[test]
fn slow_brute_force_paces_failures_over_hours_and_the_user_is_quiet() {
    let (events, truth) = simulate(&args(2000, "24h", 5, "slow_brute_force=1", "cognito"));
    let t = item(&truth, "slow_brute_force");
    let evs = decoded(&events);
    let victim = t.users[0].as_str();
    let theirs: Vec<&SignInEvent> =
        evs.iter().filter(|e| user_of(e) == victim && e.time >= t.start && e.time <= t.end).collect();
    assert_eq!(theirs.len() as u64, t.events, "the user does nothing else meanwhile");
    assert!(theirs.iter().all(|e| e.outcome == Outcome::Failure && t.ips.contains(&e.ip.unwrap().to_string())));
    assert!((1..=3).contains(&t.ips.len()));
    for w in theirs.windows(2) {
        let gap = w[1].time.millis() - w[0].time.millis();
        assert!((5 * 60_000..=15 * 60_000 + 1000).contains(&gap), "{gap} ms between tries");
    }
    let span = t.end.millis() - t.start.millis();
    assert!((6 * HOUR - 15 * 60_000..=10 * HOUR).contains(&span), "{span} ms");
}

#[test]
fn signup_flood_is_phone_numbers_from_few_addresses_never_confirmed() {
    for format in ["cognito", "cloudtrail"] {
        let (events, truth) = simulate(&args(20_000, "12h", 6, "signup_flood=1", format));
        let t = item(&truth, "signup_flood");
        let evs = decoded(&events);
        let flood = from_item(&evs, t);
        assert!((300..=800).contains(&flood.len()), "{format}: {}", flood.len());
        assert!(flood.iter().all(|e| e.kind == EventKind::SignUp && e.outcome == Outcome::Success));
        assert!((3..=10).contains(&t.ips.len()));
        let countries: HashSet<&str> = flood.iter().filter_map(|e| e.country.as_deref()).collect();
        assert!(countries.len() <= 2, "{countries:?}");
        let accounts: HashSet<&str> = t.users.iter().map(String::as_str).collect();
        let later = evs.iter().filter(|e| e.kind != EventKind::SignUp && accounts.contains(user_of(e))).count();
        assert_eq!(later, 0, "{format}: a flooded account was confirmed or signed in to");
        if format == "cognito" {
            let prefixes: HashSet<&str> = t
                .users
                .iter()
                .map(|u| {
                    assert!(u.starts_with('+') && u[1..].bytes().all(|b| b.is_ascii_digit()), "{u}");
                    ["+44", "+234", "+7", "+880", "+92", "+371", "+63", "+216"]
                        .into_iter()
                        .find(|p| u.starts_with(p))
                        .unwrap()
                })
                .collect();
            assert!((2..=3).contains(&prefixes.len()), "{prefixes:?}");
        }
    }
}

#[test]
fn mfa_walls_decode_as_password_passed_and_mfa_failed() {
    for format in ["cognito", "cloudtrail", "mixed"] {
        let (events, truth) = simulate(&args(2000, "24h", 7, "mfa_wall=1,mfa_wall_spread=1", format));
        let evs = decoded(&events);
        for t in &truth {
            let attack = from_item(&evs, t);
            let failed: Vec<&&SignInEvent> = attack.iter().filter(|e| e.outcome == Outcome::Failure).collect();
            // The password step that issued the MFA challenge: in progress in the export; in CloudTrail an
            // `InitiateAuth` answered with a challenge, which keeps its success (what the CloudWatch patterns
            // count) and says the rest in its steps.
            let pending: Vec<&&SignInEvent> = attack
                .iter()
                .filter(|e| {
                    e.outcome != Outcome::Failure
                        && e.factors.password == Step::Passed
                        && e.factors.mfa == Step::Unknown
                })
                .collect();
            assert_eq!(failed.len(), pending.len(), "{format} {}: each code follows a password", t.id);
            assert_eq!(failed.len() * 2, attack.len());
            for e in &failed {
                assert!(e.factors.mfa_failed(), "{format} {}: {:?}", t.id, e.factors);
                if e.format == authwatch::event::LogFormat::CloudTrail {
                    assert_eq!(e.failure_reason.as_deref(), Some("CodeMismatchException"));
                } else {
                    assert_eq!(e.factors.password, Step::Passed);
                }
            }
            for e in &pending {
                assert_eq!(e.factors.password, Step::Passed, "{format} {}", t.id);
            }
            let accounts: HashSet<&str> = failed.iter().map(|e| e.user_sub.as_deref().unwrap()).collect();
            if t.kind == "mfa_wall" {
                assert!((5..=10).contains(&failed.len()) && accounts.len() == 1 && t.ips.len() <= 2, "{t:?}");
            } else {
                assert!((8..=20).contains(&accounts.len()) && t.ips.len() == 1, "{t:?}");
                assert!(failed.len() <= accounts.len() * 2);
            }
        }
    }
}

#[test]
fn client_release_users_fail_then_succeed_from_their_usual_address() {
    let (events, truth) = simulate(&args(20_000, "12h", 8, "client_release=1", "cognito"));
    let t = item(&truth, "client_release");
    assert!(t.lookalike && t.detectors.is_empty() && t.takeovers.is_empty());
    assert!((100..=700).contains(&t.users.len()), "{} users", t.users.len());
    let evs = decoded(&events);
    let mut at_ip: HashMap<String, HashSet<&str>> = HashMap::new();
    for u in &t.users {
        let theirs: Vec<&SignInEvent> = evs.iter().filter(|e| user_of(e) == u).collect();
        let wave: Vec<&&SignInEvent> = theirs.iter().filter(|e| e.time >= t.start && e.time <= t.end).collect();
        let fails: Vec<&&&SignInEvent> = wave.iter().filter(|e| e.outcome == Outcome::Failure).collect();
        let win = wave.iter().find(|e| e.outcome == Outcome::Success).expect("each succeeds");
        assert!((1..=3).contains(&fails.len()), "{u}: {} failures", fails.len());
        assert!(fails.iter().all(|f| f.time < win.time));
        let took = win.time.millis() - fails[0].time.millis();
        assert!((60_000..=345_000).contains(&took), "{u}: success {took} ms after the first failure");
        // The usual address and device: the same as the user's own sessions.
        let usual: HashSet<(Option<std::net::IpAddr>, Option<&str>)> =
            theirs.iter().map(|e| (e.ip, e.device.as_deref())).collect();
        assert_eq!(usual.len(), 1, "{u}: {usual:?}");
        at_ip.entry(win.ip.unwrap().to_string()).or_default().insert(u);
    }
    let office = at_ip.values().map(HashSet::len).max().unwrap();
    assert!((30..=60).contains(&office), "{office} users behind the office NAT");
}

#[test]
fn marketing_signups_mostly_confirm_and_sign_in() {
    let (events, truth) = simulate(&args(20_000, "12h", 9, "marketing_signups=1", "cloudtrail"));
    let t = item(&truth, "marketing_signups");
    let evs = decoded(&events);
    let mut by_sub: HashMap<&str, Vec<&SignInEvent>> = HashMap::new();
    for e in &evs {
        if let Some(sub) = e.user_sub.as_deref().filter(|s| t.users.iter().any(|u| u == s)) {
            by_sub.entry(sub).or_default().push(e);
        }
    }
    assert!((300..=800).contains(&by_sub.len()), "{} sign-ups", by_sub.len());
    assert!(t.ips.len() * 10 >= by_sub.len() * 9, "from many addresses");
    let mut completed = 0;
    for (sub, evs) in &by_sub {
        assert_eq!(evs[0].kind, EventKind::SignUp, "{sub}");
        if evs.len() == 1 {
            continue;
        }
        assert_eq!(evs.len(), 3, "{sub}");
        assert_eq!(evs[1].kind, EventKind::ConfirmSignUp);
        assert!(evs[2].kind == EventKind::SignIn && evs[2].outcome == Outcome::Success);
        let after = evs[2].time.millis() - evs[0].time.millis();
        assert!((119_000..=1_200_000).contains(&after), "{sub}: first sign-in {after} ms after sign-up");
        completed += 1;
    }
    assert!(completed * 100 >= by_sub.len() * 90 && completed < by_sub.len(), "{completed} of {}", by_sub.len());
}

#[test]
fn carrier_nat_is_many_local_users_mostly_succeeding() {
    let (events, truth) = simulate(&args(20_000, "12h", 10, "carrier_nat=1", "cognito"));
    let t = item(&truth, "carrier_nat");
    assert_eq!(t.ips.len(), 1);
    let evs = decoded(&events);
    let nat = from_item(&evs, t);
    let users: HashSet<&str> = nat.iter().map(|e| user_of(e)).collect();
    assert!((100..=300).contains(&users.len()), "{} users", users.len());
    let cities: HashSet<&str> = nat.iter().filter_map(|e| e.city.as_deref()).collect();
    assert_eq!(cities.len(), 1);
    let fails = nat.iter().filter(|e| e.outcome == Outcome::Failure).count();
    let wins = nat.iter().filter(|e| e.outcome == Outcome::Success).count();
    assert!(fails * 10 < wins, "{fails} failures, {wins} successes");
    // The users' other sign-ins are from the same city: no travel to the NAT.
    for e in evs.iter().filter(|e| users.contains(user_of(e))) {
        assert_eq!(e.city.as_deref(), cities.iter().next().copied());
    }
}

#[test]
fn benign_days_have_confirmed_signups_mfa_typos_and_give_ups() {
    let (events, _) = simulate(&args(5000, "24h", 12, "none", "cloudtrail"));
    let evs = decoded(&events);
    let mut by_sub: HashMap<&str, Vec<&SignInEvent>> = HashMap::new();
    for e in &evs {
        by_sub.entry(e.user_sub.as_deref().unwrap()).or_default().push(e);
    }
    let (mut signups, mut typos, mut give_ups) = (0, 0, 0);
    for evs in by_sub.values() {
        for (i, e) in evs.iter().enumerate() {
            match e.kind {
                EventKind::SignUp => {
                    signups += 1;
                    assert_eq!(evs[i + 1].kind, EventKind::ConfirmSignUp);
                    assert!(evs[i + 2].kind == EventKind::SignIn && evs[i + 2].outcome != Outcome::Failure);
                }
                EventKind::SignIn if e.factors.mfa == Step::Failed => {
                    typos += 1;
                    let next = evs[i + 1..].iter().find(|n| n.outcome == Outcome::Success).unwrap();
                    assert!(next.time.millis() - e.time.millis() < 5 * 60_000, "a new sign-in follows");
                }
                _ => {}
            }
        }
        // Failures, then nothing for half an hour: the user gave up.
        let fails: Vec<&&SignInEvent> = evs.iter().filter(|e| e.outcome == Outcome::Failure).collect();
        if let Some(f) = fails.last() {
            let next = evs.iter().find(|n| n.time > f.time);
            if next.is_none_or(|n| n.time.millis() - f.time.millis() > 30 * 60_000) && f.factors.mfa != Step::Failed {
                give_ups += 1;
            }
        }
    }
    assert!(signups >= 5 && typos >= 5 && give_ups >= 5, "{signups} sign-ups, {typos} typos, {give_ups} give-ups");
}
