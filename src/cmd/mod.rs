//! One file per subcommand: each turns validated arguments into a run of the library and an exit code.
//! `main.rs` parses, sets up logging and calls [`run`].


pub mod detectors;
pub mod monitor;
pub mod replay;

use crate::cli::{Cli, Command};

/// Runs the parsed command; returns the process exit code (see `cli::EXIT_*`).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Replay(a) => replay::run(&a),

        Command::Detectors(a) => detectors::run(&a),
        Command::Monitor(a) => monitor::run(&a),
    }
}
