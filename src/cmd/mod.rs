//! One file per subcommand: each turns validated arguments into a run of the library and an exit code.
//! `main.rs` parses, sets up logging and calls [`run`].

pub mod demo;
pub mod detectors;
pub mod filters;
pub mod monitor;
pub mod replay;
pub mod respond;
pub mod simulate;
pub mod test_filter;

use crate::cli::{Cli, Command};

/// Runs the parsed command; returns the process exit code (see `cli::EXIT_*`).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Replay(a) => replay::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Detectors(a) => detectors::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Filters(a) => filters::run(&a),
        Command::TestFilter(a) => test_filter::run(&a),
        Command::Monitor(a) => monitor::run(&a),
        Command::Respond(a) => respond::run(&a),
    }
}
