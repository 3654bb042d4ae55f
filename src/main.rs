//! The `authwatch` binary: parses arguments, sets up logging, runs the command, maps errors to exit codes.

use clap::Parser;

use authwatch::cli::{Cli, EXIT_FATAL};

/// Events are allocated on decoder threads and freed on the engine thread; glibc's allocator spent more
/// time on those cross-thread frees (and on consolidating after each freed batch) than the detectors spent
/// detecting. mimalloc frees to the owning thread's heap without locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour codes only on a terminal: a redirected log stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
    let code = match authwatch::cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("authwatch: error: {}", authwatch::sanitize::for_terminal(&format!("{e:#}")));
            EXIT_FATAL
        }
    };
    std::process::exit(code);
}
