//! Simulate → replay: every planted attack is found and nothing is raised outside them, for each log
//! format the simulator writes; a day with every attack and look-alike reads cleanly.

use std::path::Path;

use authwatch::detect::EngineSettings;
use authwatch::finding::{Finding, Status};
use authwatch::replay::{self, ReplayConfig, ReplayHooks};
use authwatch::score::score;
use authwatch::simulate::attacks::AttackKind;
use authwatch::simulate::{self, SimulateArgs};
use authwatch::spec::SpecSet;

fn simulate_and_replay(
    dir: &Path,
    format: &str,
    seed: u64,
    attacks: &str,
    users: u32,
) -> (Vec<simulate::Attack>, Vec<Finding>, replay::ReplayReport) {
    let log = dir.join(format!("{format}.jsonl"));
    let truth = dir.join(format!("{format}.truth.json"));
    let args = SimulateArgs {
        users,
        duration: "24h".into(),
        start: None,
        seed,
        attacks: attacks.into(),
        events: None,
        log_format: format.into(),
        user_pool_id: "us-east-1_SimTest01".into(),
        output: Some(log.clone()),
        truth: Some(truth.clone()),
    };
    simulate::run(&args).expect("simulate");
    let attacks: Vec<simulate::Attack> = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let cfg = ReplayConfig {
        inputs: vec![log],
        format: Default::default(),
        since: None,
        until: None,
        limits: Default::default(),
        threads: 2,
        shards: 2,
    };
    let mut findings = Vec::new();
    let mut on_finding = |f: &Finding| {
        if f.status == Status::Closed {
            findings.push(f.clone());
        }
        Ok(())
    };
    let hooks = ReplayHooks { finding: &mut on_finding, rejection: &mut |_| {}, progress: &mut |_| {} };
    let report = replay::run(&cfg, &SpecSet::builtin(), EngineSettings::default(), hooks).expect("replay");
    (attacks, findings, report)
}

fn check(format: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (attacks, findings, report) = simulate_and_replay(dir.path(), format, seed, "default", 3000);
    assert_eq!(report.rejected, 0, "{format}: {:?}", report.first_rejections);
    assert!(attacks.len() >= 10, "{format}: the default plan plants every kind twice a day");
    let s = score(&attacks, &findings);
    assert!(s.missed.is_empty(), "{format}: missed {:?}", s.missed);
    assert!(s.false_alarms.is_empty(), "{format}: false alarms {:#?}", s.false_alarms);
}

#[test]
fn cognito_log_every_attack_found_no_false_alarm() {
    check("cognito", 11);
}

#[test]
fn cloudtrail_log_every_attack_found_no_false_alarm() {
    check("cloudtrail", 12);
}

#[test]
fn mixed_log_every_attack_found_no_false_alarm() {
    check("mixed", 13);
}

#[test]
fn other_seeds_hold_too() {
    for seed in [101, 202] {
        check("cognito", seed);
    }
}

/// A day with every attack and look-alike (`--attacks all`, as the demo plants) decodes without a
/// rejection in each format, and the per-address and per-account attacks are still all found beside the
/// pool-wide and slow ones and the look-alikes. (How the issue 13 rules score on these days is measured
/// with `authwatch replay --truth`, not pinned here.)
#[test]
fn a_day_with_every_kind_reads_cleanly_and_the_classic_attacks_are_found() {
    for (format, seed) in [("cognito", 21), ("cloudtrail", 22), ("mixed", 23)] {
        let dir = tempfile::tempdir().unwrap();
        let (attacks, findings, report) = simulate_and_replay(dir.path(), format, seed, "all", 2000);
        assert_eq!(report.rejected, 0, "{format}: {:?}", report.first_rejections);
        assert_eq!(attacks.iter().filter(|a| a.lookalike).count(), 3, "{format}");
        let s = score(&attacks, &findings);
        let classic = |id: &str| AttackKind::CLASSIC.iter().any(|k| id.starts_with(&format!("{}-", k.name())));
        let found = s.found.iter().filter(|(id, _)| classic(id)).count();
        let planted = attacks.iter().filter(|a| classic(&a.id)).count();
        assert_eq!(found, planted, "{format}: missed {:?}", s.missed);
    }
}
