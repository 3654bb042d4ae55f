//! `authwatch simulate`: streams synthetic sign-in logs and writes the ground truth.

use crate::cli::EXIT_OK;
use crate::simulate::{self, SimulateArgs};

pub fn run(a: &SimulateArgs) -> anyhow::Result<i32> {
    let s = simulate::run(a)?;
    eprintln!(
        "authwatch simulate: wrote {} events, {} planted attack(s), {} look-alike(s)",
        s.events, s.attacks, s.lookalikes
    );
    Ok(EXIT_OK)
}
