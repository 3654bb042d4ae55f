//! Helpers shared by the benches: the full/test-mode switch and simulated input.
#![allow(dead_code)] // each bench uses a part

use std::path::{Path, PathBuf};

use authwatch::simulate::{self, SimulateArgs};

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs each bench once without it, on the
/// small sizes only, so CI stays quick.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Writes `events` simulated events (seeded, fixed start) in `log_format` to `dir/name` and returns the path.
pub fn simulate(dir: &Path, name: &str, events: u64, users: u32, log_format: &str) -> PathBuf {
    let path = dir.join(name);
    let args = SimulateArgs {
        users,
        duration: "24h".into(),
        start: Some("2026-03-01T00:00:00Z".into()),
        seed: 1,
        attacks: "default".into(),
        events: Some(events),
        log_format: log_format.into(),
        user_pool_id: "us-east-1_Bench0001".into(),
        output: Some(path.clone()),
        truth: None,
    };
    simulate::run(&args).expect("simulate");
    path
}
