//! Detector scenarios: each folder under `tests/fixtures/detect/` is a case (`events.jsonl`, optional
//! `args` with replay flags, one per line) and its `expected.jsonl` holds the closed findings.
//! A new case is a new folder. `AUTHWATCH_BLESS=1 cargo test --test detect` rewrites the expected files;
//! review the diff before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixture folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn replay(case: &Path) -> (String, String, i32) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authwatch"));
    cmd.arg("replay").arg(case.join("events.jsonl")).arg("--no-progress");
    if let Ok(args) = std::fs::read_to_string(case.join("args")) {
        cmd.args(args.lines().filter(|l| !l.trim().is_empty()));
    }
    let out = cmd.output().expect("run authwatch");
    (
        String::from_utf8(out.stdout).expect("utf-8 findings"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn every_scenario_gives_its_expected_findings() {
    let bless = std::env::var_os("AUTHWATCH_BLESS").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 15, "fixture folders missing");
    for case in &cases {
        let (stdout, stderr, code) = replay(case);
        let name = case.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if code != 0 {
            failures.push(format!("{name}: exit {code}\n{stderr}"));
            continue;
        }
        let expected_path = case.join("expected.jsonl");
        if bless {
            std::fs::write(&expected_path, &stdout).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stdout != expected {
            failures.push(format!("{name}: findings differ\n--- expected\n{expected}--- got\n{stdout}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What each scenario is about, pinned by name so an accidental re-bless cannot silently drop it.
#[test]
fn scenarios_fire_the_right_detectors() {
    let expect: &[(&str, &[&str])] = &[
        ("burst_user", &["failed_login_burst"]),
        ("burst_user_below_threshold", &[]),
        ("burst_ip", &["failed_login_burst"]),
        ("nat_office_many_users", &[]),
        ("nat_busy_then_typos", &[]),
        ("late_success_before_failures", &[]),
        ("distributed", &["distributed_brute_force"]),
        ("credential_stuffing", &["account_takeover", "credential_stuffing", "failed_login_burst"]),
        ("password_spray", &["password_spray"]),
        ("account_takeover", &["account_takeover"]),
        ("forgot_password_then_success", &[]),
        ("cognito_risk", &["cognito_risk"]),
        ("alert_storm_one_incident", &["failed_login_burst"]),
        ("late_out_of_order", &["failed_login_burst"]),
        ("late_beyond_lateness_still_counted", &["failed_login_burst"]),
        ("ipv6_rotation_grouped", &["failed_login_burst"]),
        ("ipv6_rotation_ungrouped", &[]),
        ("allowlisted_cidr", &[]),
        ("allowlisted_user", &[]),
        ("cloudtrail_burst_and_takeover", &["account_takeover", "failed_login_burst"]),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect");
    for (case, detectors) in expect {
        let (stdout, stderr, code) = replay(&root.join(case));
        assert_eq!(code, 0, "{case}: {stderr}");
        let mut got: Vec<String> = stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("finding JSON"))
            .map(|v| v["detector"].as_str().unwrap_or_default().to_string())
            .collect();
        got.sort();
        got.dedup();
        assert_eq!(got, *detectors, "{case}");
    }
}

#[test]
fn alert_storm_is_one_escalated_incident() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect/alert_storm_one_incident");
    let (stdout, _, _) = replay(&root);
    let findings: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let user_rule: Vec<&serde_json::Value> =
        findings.iter().filter(|f| f["rule"] == "failed_login_burst_user").collect();
    assert_eq!(user_rule.len(), 1, "one incident for the storm: {stdout}");
    assert_eq!(user_rule[0]["count"], 200);
    assert_eq!(user_rule[0]["severity"], "critical");
}

#[test]
fn late_events_are_reported_in_the_summary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect/late_beyond_lateness_still_counted");
    let (stdout, stderr, _) = replay(&root);
    assert!(stderr.contains("later than the lateness bound"), "{stderr}");
    let f: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a finding")).unwrap();
    assert_eq!(f["count"], 12, "the late failures still count");
}

/// The registry, the built-in specs and the README agree on which detectors exist: each registered one
/// has a spec in `filters/` (which puts it in the README table, kept in step by
/// `readme_detector_table_matches_the_specs`) and a paragraph under "What each rule needs", and the README
/// describes none that the registry lacks.
#[test]
fn readme_and_filters_cover_every_registered_detector() {
    use std::collections::BTreeSet;

    let registered: BTreeSet<&str> = authwatch::spec::DetectorKind::all().map(|d| d.id()).collect();
    let specs = authwatch::spec::SpecSet::builtin();
    let with_spec: BTreeSet<&str> = specs.specs.iter().map(|s| s.detector.id()).collect();
    assert_eq!(with_spec, registered, "every registered detector needs a spec in filters/");

    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("What each rule needs").expect("README lists what each rule needs");
    let end = start + readme[start..].find("\n#").expect("a heading after the list");
    let described: BTreeSet<&str> = readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("- **"))
        .filter_map(|l| l.split("**").next())
        .collect();
    assert_eq!(described, registered, "README's \"What each rule needs\" must describe every detector, and only those");
}
