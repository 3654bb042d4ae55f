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
