//! Impossible travel end to end: fixture logs in `tests/fixtures/travel/` are decoded with the real
//! decoders, run through the real [`Engine`] with only the built-in `impossible_travel` rule, and the
//! findings (plus the rule's counters) are compared with the `.expected` file next to each fixture.
//!
//! A case is `NAME.jsonl` (Cognito or CloudTrail records, one a line, in arrival order), optionally
//! `NAME.args` (the detection flags of `authwatch replay`, e.g. `--geoip PATH`), and `NAME.expected`.
//! A new case is a new fixture; run with `AUTHWATCH_BLESS=1` to write its expected output, then read it.

use std::fs;
use std::path::{Path, PathBuf};

use authwatch::cli::{engine_settings, DetectArgs};
use authwatch::decode::{decode_record, Decoded};
use authwatch::detect::{DetectorStats, Engine, EngineSettings};
use authwatch::event::{Origin, SignInEvent};
use authwatch::finding::{Finding, Severity, Status};
use authwatch::spec::{parse_set, SpecSet};
use clap::Parser;
use serde_json::Value;

const FIXTURES: &str = "tests/fixtures/travel";

/// The detection flags, parsed as `authwatch replay` parses them.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    detect: DetectArgs,
}

fn settings_from(args: &str) -> anyhow::Result<EngineSettings> {
    let argv = std::iter::once("authwatch").chain(args.split_whitespace());
    engine_settings(&Flags::try_parse_from(argv)?.detect)
}

fn travel_only() -> SpecSet {
    let builtin = SpecSet::builtin();
    let specs = builtin.specs.into_iter().filter(|s| s.id == "impossible_travel").collect();
    SpecSet { specs }
}

fn events(case: &str) -> Vec<SignInEvent> {
    let path = Path::new(FIXTURES).join(format!("{case}.jsonl"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let origin = Origin::new(path.display().to_string().into(), i as u64 + 1);
        decode_record(line.as_bytes(), &origin, None, &mut |d| match d {
            Decoded::Event(ev) => out.push(*ev),
            Decoded::Skipped(_) => {}
            Decoded::Rejected(r) => panic!("{case} line {}: fixture record rejected: {r:?}", i + 1),
        });
    }
    out
}

struct Run {
    closed: Vec<Finding>,
    stats: DetectorStats,
    late: u64,
}

fn run(events: &[SignInEvent], settings: EngineSettings) -> Run {
    let mut engine = Engine::new(&travel_only(), settings);
    let mut out = Vec::new();
    for ev in events {
        engine.push(ev.clone(), &mut out);
    }
    engine.finish(&mut out);
    let closed = out.into_iter().filter(|f| f.status == Status::Closed).collect();
    let stats = engine.detector_stats().into_iter().next().unwrap_or_else(|| panic!("no impossible_travel rule"));
    Run { closed, stats, late: engine.stats().late }
}

fn run_case(case: &str) -> Run {
    let args = fs::read_to_string(Path::new(FIXTURES).join(format!("{case}.args"))).unwrap_or_default();
    let settings = settings_from(&args).unwrap_or_else(|e| panic!("{case}.args: {e:#}"));
    run(&events(case), settings)
}

fn render(r: &Run) -> String {
    let mut s = String::new();
    for f in &r.closed {
        let pretty = serde_json::to_string_pretty(f).unwrap_or_default();
        s.push_str(&pretty);
        s.push('\n');
    }
    let st = &r.stats;
    s.push_str(&format!(
        "stats incidents={} unlocated={} allowlisted={} late_unplaced={} tracked_keys={}\n",
        st.incidents, st.unlocated, st.allowlisted, st.late_unplaced, st.tracked_keys
    ));
    s
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(FIXTURES)
        .unwrap_or_else(|e| panic!("{FIXTURES}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

#[test]
fn fixtures_give_their_expected_findings() {
    let bless = std::env::var_os("AUTHWATCH_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let got = render(&run_case(&case));
        let path = PathBuf::from(FIXTURES).join(format!("{case}.expected"));
        if bless {
            fs::write(&path, &got).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (bless to create)", path.display()));
        if got != want {
            failures.push(format!("== {case}\n-- expected\n{want}-- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn only_finding(case: &str) -> Finding {
    let r = run_case(case);
    assert_eq!(r.closed.len(), 1, "{case}: {}", render(&r));
    r.closed[0].clone()
}

fn ev<'a>(f: &'a Finding, path: &[&str]) -> &'a Value {
    path.iter().fold(&f.evidence, |v, k| &v[*k])
}

#[test]
fn new_york_to_auckland_in_two_hours_alerts_with_full_evidence() {
    let f = only_finding("ny_auckland_2h");
    assert_eq!(f.detector, "impossible_travel");
    assert_eq!(f.user.as_deref(), Some("jdoe"));
    assert_eq!(f.ip.as_deref(), Some("49.224.0.1"), "the address travelled to");
    assert_eq!(f.severity, Severity::High, "over 5 000 km/h and 5 000 km");
    assert_eq!(f.count, 2);
    assert_eq!(f.first_seen.to_string(), "2026-03-02T10:00:00.000Z");
    assert_eq!(f.detected_at.to_string(), "2026-03-02T12:00:00.000Z");
    for (end, ip, city, country) in
        [("from", "24.48.0.1", "New York", "United States"), ("to", "49.224.0.1", "Auckland", "New Zealand")]
    {
        assert_eq!(ev(&f, &[end, "ip"]), ip);
        assert_eq!(ev(&f, &[end, "city"]), city);
        assert_eq!(ev(&f, &[end, "country"]), country);
        assert_eq!(ev(&f, &[end, "located_by"]), "city");
        assert!(ev(&f, &[end, "lat"]).is_f64() && ev(&f, &[end, "lon"]).is_f64());
        assert!(ev(&f, &[end, "radius_km"]).as_f64().is_some_and(|r| r > 0.0 && r < 100.0));
    }
    assert_eq!(ev(&f, &["from", "time"]), "2026-03-02T10:00:00.000Z");
    assert_eq!(ev(&f, &["to", "time"]), "2026-03-02T12:00:00.000Z");
    let km = ev(&f, &["distance_km"]).as_f64().unwrap_or(0.0);
    assert!((13_900.0..14_300.0).contains(&km), "{km}");
    assert_eq!(ev(&f, &["elapsed"]), "2h");
    assert_eq!(ev(&f, &["elapsed_seconds"]), 7200.0);
    let speed = ev(&f, &["speed_kmh"]).as_f64().unwrap_or(0.0);
    assert!((speed - km / 2.0).abs() < 0.1, "{speed}");
    assert!(
        f.summary
            .starts_with("jdoe signed in from New York City, United States then Auckland, New Zealand 2h later: 14,"),
        "{}",
        f.summary
    );
}

#[test]
fn plausible_or_unplaceable_pairs_do_not_alert() {
    for case in [
        "ny_london_9h",
        "sf_san_jose_1h",
        "same_ip",
        "same_ipv6_prefix",
        "country_only_us_canada",
        "private_address",
        "allowlisted_vpn",
        "first_sign_in",
        "failures_do_not_travel",
        "unknown_place",
        "cloudtrail_without_geoip",
        "prefer_geoip_over_names",
    ] {
        let r = run_case(case);
        assert!(r.closed.is_empty(), "{case}: {}", render(&r));
    }
    assert_eq!(run_case("allowlisted_vpn").stats.allowlisted, 1);
    assert_eq!(run_case("private_address").stats.unlocated, 1);
    assert_eq!(run_case("unknown_place").stats.unlocated, 3, "unknown names are counted, never guessed");
}

#[test]
fn no_elapsed_time_is_a_null_speed_not_infinity() {
    let f = only_finding("same_moment");
    assert_eq!(ev(&f, &["speed_kmh"]), &Value::Null);
    assert_eq!(ev(&f, &["elapsed_seconds"]), 0.0);
    let line = f.to_json_line();
    assert!(!line.contains("inf") && !line.contains("NaN"), "{line}");
    assert!(f.summary.contains("at the same time"), "{}", f.summary);
}

#[test]
fn further_hops_extend_one_incident() {
    let f = only_finding("hops_extend_one_incident");
    // NY → Auckland → NY: both hops in one incident; the last NY sign-in is no hop.
    assert_eq!(ev(&f, &["impossible_hops"]), 2);
    assert_eq!(f.count, 3);
    assert!(f.summary.ends_with("(2 impossible hops)"), "{}", f.summary);
}

#[test]
fn a_late_event_gives_the_in_order_findings() {
    let late_order = events("late_earliest_arrives_last");
    let zero_lateness = settings_from("--lateness 0s").unwrap_or_else(|e| panic!("{e}"));
    let late = run(&late_order, zero_lateness.clone());
    assert!(late.late > 0, "the fixture must exercise a late event");
    let mut in_order = late_order.clone();
    in_order.sort_by_key(|e| e.time);
    let ordered = run(&in_order, zero_lateness);
    assert_eq!(ordered.late, 0);
    assert_eq!(late.closed, ordered.closed);
    assert_eq!(late.closed.len(), 1);
}

#[test]
fn cloudtrail_records_are_located_through_the_ip_database() {
    let f = only_finding("cloudtrail_geoip");
    assert_eq!(f.user.as_deref(), Some("sub-alice"));
    assert_eq!(ev(&f, &["from", "located_by"]), "ip_database");
    assert_eq!(ev(&f, &["from", "location"]), "London, United Kingdom");
    assert_eq!(ev(&f, &["to", "location"]), "Milton, United States");
    assert_eq!(ev(&f, &["from", "radius_km"]), 10.0);
    assert_eq!(ev(&f, &["to", "city"]), &Value::Null, "CloudTrail has no city");
}

#[test]
fn a_missing_or_corrupt_database_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let corrupt = dir.path().join("corrupt.mmdb");
    fs::write(&corrupt, b"this is not a MaxMind database").unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.mmdb");
    for path in [&corrupt, &missing] {
        let err = settings_from(&format!("--geoip {}", path.display())).err().map(|e| format!("{e:#}"));
        let err = err.unwrap_or_else(|| panic!("{} was accepted", path.display()));
        assert!(err.contains("--geoip") && err.contains(&path.display().to_string()), "{err}");
    }
    let asn = settings_from("--geoip tests/fixtures/geo/test-asn.mmdb").err().map(|e| format!("{e:#}"));
    assert!(asn.is_some_and(|e| e.contains("City")), "a database without locations is refused");
}

#[test]
fn prefer_geoip_needs_a_database() {
    assert!(settings_from("--prefer-geoip").is_err());
    let s = settings_from("--geoip tests/fixtures/geo/test-city.mmdb --prefer-geoip").unwrap_or_else(|e| panic!("{e}"));
    assert!(s.prefer_geoip && s.geo.is_some());
    assert!(EngineSettings::default().geo.is_none());
}

#[test]
fn builtin_specs_include_impossible_travel() {
    let set = SpecSet::builtin();
    let spec = set.get("impossible_travel").unwrap_or_else(|| panic!("filters/impossible_travel.toml missing"));
    assert_eq!(spec.detector.id(), "impossible_travel");
    assert!(spec.enabled);
    // filters/ on disk validates as a whole too.
    assert!(SpecSet::load_dir(Path::new("filters")).is_ok());
}

const BASE: &str = r#"
id = "impossible_travel"
detector = "impossible_travel"
description = "test"
key = "user"
window = "24h"
threshold = 1
severity = "medium"
[match]
kinds = ["sign_in"]
outcomes = ["success"]
"#;

fn spec_error(params: &str) -> String {
    let text = format!("{BASE}[params]\n{params}\n");
    match parse_set(&[("impossible_travel.toml", &text)]) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn travel_params_are_validated() {
    assert_eq!(spec_error("min_distance_km = 500.0\nmin_speed_kmh = 900.0"), "");
    let cases = [
        ("min_distance_km = 500.0", "min_speed_kmh"),
        ("min_distance_km = 500.0\nmin_speed_kmh = 900.0\nmax_speed = 1", "unknown field"),
        ("min_distance_km = -1.0\nmin_speed_kmh = 900.0", "min_distance_km"),
        ("min_distance_km = 30000.0\nmin_speed_kmh = 900.0", "min_distance_km"),
        ("min_distance_km = 500.0\nmin_speed_kmh = 0.0", "min_speed_kmh"),
        ("min_distance_km = 500.0\nmin_speed_kmh = 900.0\ncompare_last = 0", "compare_last"),
        ("min_distance_km = 500.0\nmin_speed_kmh = 900.0\nseverity_steps = [{ severity = \"high\" }]", "severity_steps[0]"),
        (
            "min_distance_km = 500.0\nmin_speed_kmh = 900.0\nseverity_steps = [{ speed_kmh = 5000.0, severity = \"low\" }]",
            "not above the base severity",
        ),
    ];
    for (params, want) in cases {
        let err = spec_error(params);
        assert!(err.contains(want), "{params:?}: expected an error mentioning {want:?}, got {err:?}");
    }
    let failures = BASE.replace(r#"outcomes = ["success"]"#, r#"outcomes = ["failure"]"#);
    let text = format!("{failures}[params]\nmin_distance_km = 500.0\nmin_speed_kmh = 900.0\n");
    let err = parse_set(&[("impossible_travel.toml", &text)]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("match.outcomes"), "{err}");
}
