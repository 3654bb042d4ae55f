//! End to end: `replay::run` (all built-in rules) and its decode ceiling on a simulated file.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use authwatch::detect::EngineSettings;
use authwatch::replay::{self, ReplayConfig, ReplayHooks};
use authwatch::source::Limits;
use authwatch::spec::SpecSet;

fn bench_replay(c: &mut Criterion) {
    let events = if common::full() { 200_000 } else { 5_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::simulate(dir.path(), "log.jsonl", events, 20_000, "cognito");
    let cfg = ReplayConfig {
        inputs: vec![path],
        format: None,
        since: None,
        until: None,
        limits: Limits::default(),
        threads: authwatch::cli::threads(None),
        shards: authwatch::cli::threads(None),
    };
    let specs = SpecSet::builtin();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    let run = |decode_only: bool| {
        let mut findings = 0u64;
        let mut on_finding = |_: &authwatch::finding::Finding| {
            findings += 1;
            Ok(())
        };
        let mut on_rejection = |_: &authwatch::decode::Rejection| {};
        let mut on_progress = |_| {};
        let hooks = ReplayHooks { finding: &mut on_finding, rejection: &mut on_rejection, progress: &mut on_progress };
        let report = if decode_only {
            replay::decode_only(&cfg, hooks)
        } else {
            replay::run(&cfg, &specs, EngineSettings::default(), hooks)
        };
        report.expect("replay").events
    };
    g.bench_function("all_rules", |b| b.iter(|| run(false)));
    g.bench_function("decode_only", |b| b.iter(|| run(true)));
    g.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
