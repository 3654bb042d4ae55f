//! Detection sharded by key (`src/detect/shard.rs`): the per-address and per-user rules split across
//! threads give byte for byte the findings, updates and cases of one thread, on days with every attack
//! class in both log formats, and with events out of order and late.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use authwatch::detect::{Engine, EngineSettings};
use authwatch::event::{EventKind, Origin, Outcome, SignInEvent};
use authwatch::spec::SpecSet;
use authwatch::time::Timestamp;

const BIN: &str = env!("CARGO_BIN_EXE_authwatch");

fn simulate(dir: &Path, format: &str, seed: u64) -> PathBuf {
    let log = dir.join(format!("{format}-{seed}.jsonl"));
    let out = Command::new(BIN)
        .args(["simulate", "--users", "2000", "--duration", "24h", "--attacks", "all"])
        .args(["--seed", &seed.to_string(), "--log-format", format, "--start", "2026-11-30T00:00:00Z", "-o"])
        .arg(&log)
        .output()
        .expect("simulate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    log
}

/// Findings (with updates) and cases of one replay with `shards` detection threads.
fn replay(log: &Path, shards: usize, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let dir = log.parent().unwrap();
    let (findings, cases) = (dir.join(format!("f{shards}.jsonl")), dir.join(format!("c{shards}.jsonl")));
    let out: Output = Command::new(BIN)
        .arg("replay")
        .arg(log)
        .args(["--shards", &shards.to_string(), "--updates", "-q", "--no-progress", "-o"])
        .arg(&findings)
        .arg("--cases")
        .arg(&cases)
        .args(extra)
        .output()
        .expect("replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (std::fs::read(findings).unwrap(), std::fs::read(cases).unwrap())
}

fn same_on_any_shard_count(log: &Path, extra: &[&str]) {
    let one = replay(log, 1, extra);
    assert!(one.0.len() > 1000 && !one.1.is_empty(), "the day has findings and cases");
    for shards in [2, 3] {
        let many = replay(log, shards, extra);
        assert!(one.0 == many.0, "{}: findings differ with {shards} shards", log.display());
        assert!(one.1 == many.1, "{}: cases differ with {shards} shards", log.display());
    }
}

#[test]
fn an_export_day_with_every_attack_gives_the_same_findings_and_cases_on_one_two_and_three_shards() {
    let dir = tempfile::tempdir().unwrap();
    same_on_any_shard_count(&simulate(dir.path(), "cognito", 41), &[]);
}

#[test]
fn a_cloudtrail_day_with_every_attack_gives_the_same_findings_and_cases_on_one_two_and_three_shards() {
    let dir = tempfile::tempdir().unwrap();
    same_on_any_shard_count(&simulate(dir.path(), "cloudtrail", 42), &[]);
}

#[test]
fn late_and_reordered_events_reach_the_same_rules_on_any_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = simulate(dir.path(), "cognito", 43);
    // Each run of 40 lines reversed: within a second's lateness most of them arrive too late to be put back
    // in order, and go to the rules as late events, through the same batches as the others.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let shuffled: String = lines.chunks(40).flat_map(|c| c.iter().rev()).map(|l| format!("{l}\n")).collect();
    let late = dir.path().join("late.jsonl");
    std::fs::write(&late, shuffled).unwrap();
    same_on_any_shard_count(&late, &["--lateness", "1s"]);
}

const T0: i64 = 1_780_000_000_000;
const MIN: i64 = 60_000;

fn failure(t: i64, user: &str, n: usize) -> SignInEvent {
    let origin = Origin::new("synthetic".into(), n as u64);
    let mut ev = SignInEvent::new(Timestamp(t), EventKind::SignIn, Outcome::Failure, origin);
    ev.user_pool_id = Some("us-east-1_Shards01".into());
    ev.user_name = Some(user.into());
    ev.user_sub = Some(format!("sub-{user}").into());
    ev.ip = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, (n % 200) as u8 + 1)));
    ev.event_id = Some(format!("e{n}").into());
    ev
}

/// What a rule counts as too late depends on the newest event the rule took, of any key: a shard must
/// move its clock with the events of keys it does not own, or it takes late events a single thread drops.
#[test]
fn a_shard_judges_lateness_by_every_key_s_events_not_only_its_own() {
    // Eight users fail 9 times each in the first minute (failed_login_burst_user: 10 in 5 minutes); another
    // user's events at +10 min move event time on; then each of the eight fails once more, stamped +1 min:
    // 9 minutes behind the rule's newest event, beyond its 5-minute window, so it is not counted.
    let mut events = Vec::new();
    for u in 0..8 {
        for i in 0..9 {
            events.push(failure(T0 + i * 5_000, &format!("victim{u}"), events.len()));
        }
    }
    // Two, so the first leaves the engine's reorder buffer (60 s of lateness) before the late ones arrive.
    events.push(failure(T0 + 10 * MIN, "bystander", events.len()));
    events.push(failure(T0 + 12 * MIN, "bystander", events.len()));
    for u in 0..8 {
        events.push(failure(T0 + MIN, &format!("victim{u}"), events.len()));
    }
    let specs = SpecSet::builtin();
    // 0: the engine without batches (the monitor's way); then 1, 2 and 3 shards.
    for shards in [0, 1, 2, 3] {
        let mut engine = match shards {
            0 => Engine::new(&specs, EngineSettings::default()),
            n => Engine::sharded(&specs, EngineSettings::default(), n),
        };
        let mut out = Vec::new();
        for ev in events.iter().cloned() {
            engine.push(ev, &mut out);
        }
        engine.finish(&mut out);
        let bursts = out.iter().filter(|f| f.rule == "failed_login_burst_user").count();
        assert_eq!(bursts, 0, "{shards} shard(s): a late failure was counted");
        let late: u64 = engine
            .detector_stats()
            .iter()
            .filter(|s| s.rule == "failed_login_burst_user")
            .map(|s| s.late_unplaced)
            .sum();
        assert_eq!(late, 8, "{shards} shard(s): each late failure is counted once as too late");
    }
}
