//! The `authwatch` binary: parses arguments, sets up logging, runs the command, maps errors to exit codes.

use clap::Parser;

use authwatch::cli::{Cli, Command, EXIT_FATAL, EXIT_OK};

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
    // A reader that stops early (`authwatch replay ... | head`) is not an error of ours. Not for the
    // commands that talk to AWS: a monitor whose findings can no longer be written must say so, and a
    // connection AWS closed mid-request can also surface as a broken pipe.
    let quiet_on_closed_pipe = !matches!(cli.command, Command::Monitor(_) | Command::Filters(_));
    let code = match authwatch::cmd::run(cli) {
        Ok(code) => code,
        Err(e) if quiet_on_closed_pipe && is_closed_pipe(&e) => EXIT_OK,
        Err(e) => {
            eprintln!("authwatch: error: {}", authwatch::sanitize::lines_for_terminal(&format!("{e:#}")));
            EXIT_FATAL
        }
    };
    std::process::exit(code);
}

/// Whether the error is a write to a pipe whose reader has gone (Rust ignores SIGPIPE, so the write fails
/// with `BrokenPipe` instead of the process being killed).
fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
