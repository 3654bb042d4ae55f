//! Command-line arguments (raw input) and their validation into the settings each command runs with.
//!
//! Two steps, as in ripgrep: clap parses raw strings; `*_settings` functions validate them (times, CIDRs,
//! spec directories) before any input is read, so a typo fails fast with a clear message.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::decode::FormatHint;
use crate::detect::{EngineSettings, DEFAULT_IPV6_PREFIX};
use crate::geo::GeoIp;
use crate::replay::ReplayConfig;
use crate::source::Limits;
use crate::spec::{AllowList, SpecSet};
use crate::time::{Span, Timestamp};

/// Exit code: everything read was decoded (or skipped as not sign-in activity).
pub const EXIT_OK: i32 = 0;
/// Exit code: the run completed but some records were rejected (see the summary).
pub const EXIT_REJECTED: i32 = 1;
/// Exit code: a fatal error (bad arguments, unreadable input or spec, failed write).
pub const EXIT_FATAL: i32 = 2;

#[derive(Debug, Parser)]
#[command(name = "authwatch", version, about = "Finds attacks in Amazon Cognito sign-in logs", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log verbosity for authwatch's own diagnostics (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "AUTHWATCH_LOG")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline forensic replay of log files: decode, detect, report findings.
    Replay(Box<ReplayArgs>),
    /// Simulate a day of traffic for a mid-size user pool with attacks, replay it and show what was found.
    Demo(DemoArgs),
    /// Write seeded synthetic Cognito sign-in logs with injected attacks and a ground-truth file.
    Simulate(crate::simulate::SimulateArgs),
    /// Validate the detector specs and print them as a table.
    Detectors(DetectorsArgs),
}

/// Options shared by every command that runs the detectors.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Directory of detector specs (*.toml) replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub filters: Option<PathBuf>,
    /// How far behind the newest event an event may arrive and still be put in order (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub lateness: String,
    /// Group IPv6 addresses by this prefix length (attackers rotate inside a /64); 128 keeps them apart.
    #[arg(long, default_value_t = DEFAULT_IPV6_PREFIX, value_name = "BITS")]
    pub ipv6_prefix: u8,
    /// Ignore this address or CIDR block in every rule (VPN egress, scanners you run). Repeatable.
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    pub allow_cidrs: Vec<String>,
    /// Ignore this user (name or sub) in every rule. Repeatable.
    #[arg(long = "allow-user", value_name = "USER")]
    pub allow_users: Vec<String>,
    /// MaxMind City database (GeoLite2-City or compatible) locating sign-ins that carry no usable city,
    /// such as CloudTrail records, for impossible travel.
    #[arg(long, value_name = "PATH")]
    pub geoip: Option<PathBuf>,
    /// Locate every sign-in by its address in the --geoip database first, the log's city names second.
    #[arg(long, requires = "geoip")]
    pub prefer_geoip: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Input log format: auto (per file and record), cognito or cloudtrail.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: String,
    /// Longest accepted line; longer lines are rejected without being read into memory.
    #[arg(long, default_value_t = Limits::default().max_line_bytes, value_name = "BYTES")]
    pub max_line_bytes: usize,
    /// Largest whole-document input (a pretty-printed file, a one-line CloudTrail S3 file) read into
    /// memory; larger ones are rejected.
    #[arg(long, default_value_t = Limits::default().max_document_bytes, value_name = "BYTES")]
    pub max_document_bytes: usize,
    /// Decoder threads (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Files or directories (read recursively) to replay; `-` or nothing reads standard input.
    /// Gzip is detected and decompressed.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Write findings (JSON lines) here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write incidents as they open and escalate (status open/escalated), not only when they close.
    #[arg(long)]
    pub updates: bool,
    /// Only events at or after this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Write every rejected record (file, line, reason) here as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// No summary on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Never draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Users in the simulated pool.
    #[arg(long, default_value_t = 20_000)]
    pub users: u32,
    /// Simulated time span.
    #[arg(long, default_value = "24h")]
    pub duration: String,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the generated log, truth and findings in this directory (default: a temporary one, removed).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DetectorsArgs {
    /// Directory of detector specs to validate instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub filters: Option<PathBuf>,
}

/// Loads the rules: `--filters DIR` or the built-in set.
pub fn load_specs(filters: Option<&PathBuf>) -> anyhow::Result<SpecSet> {
    match filters {
        Some(dir) => SpecSet::load_dir(dir).map_err(|e| anyhow::anyhow!("invalid detector specs:\n{e}")),
        None => Ok(SpecSet::builtin()),
    }
}

pub fn engine_settings(a: &DetectArgs) -> anyhow::Result<EngineSettings> {
    let lateness = Span::parse(&a.lateness).map_err(|e| anyhow::anyhow!("--lateness: {e}"))?;
    if a.ipv6_prefix == 0 || a.ipv6_prefix > 128 {
        bail!("--ipv6-prefix must be between 1 and 128, not {}", a.ipv6_prefix);
    }
    let mut allow = AllowList::default();
    for c in &a.allow_cidrs {
        allow.cidrs.push(AllowList::parse_cidr(c).map_err(|e| anyhow::anyhow!("--allow-cidr: {e}"))?);
    }
    allow.users = a.allow_users.clone();
    if a.prefer_geoip && a.geoip.is_none() {
        bail!("--prefer-geoip needs a database: --geoip PATH");
    }
    let geo = match &a.geoip {
        // The error names the path and says whether it is missing, corrupt or not a City database.
        Some(path) => Some(Arc::new(GeoIp::open(path).map_err(|e| anyhow::anyhow!("--geoip: {e}"))?)),
        None => None,
    };
    Ok(EngineSettings { lateness, ipv6_prefix: a.ipv6_prefix, allow, geo, prefer_geoip: a.prefer_geoip })
}

/// Parses `--since`/`--until`: RFC 3339 or a plain date (midnight UTC).
pub fn parse_time_arg(flag: &str, s: &str) -> anyhow::Result<Timestamp> {
    let t = Timestamp::parse_rfc3339(s)
        .or_else(|| Timestamp::parse_rfc3339(&format!("{s}T00:00:00Z")))
        .with_context(|| format!("{flag}: '{s}' is not an RFC 3339 time (2026-03-02T12:00:00Z) or a date (2026-03-02)"))?;
    Ok(t)
}

pub fn replay_config(a: &ReplayArgs) -> anyhow::Result<ReplayConfig> {
    let format: FormatHint = a.input.format.parse().map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let since = a.since.as_deref().map(|s| parse_time_arg("--since", s)).transpose()?;
    let until = a.until.as_deref().map(|s| parse_time_arg("--until", s)).transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            bail!("--since {s} is not before --until {u}");
        }
    }
    if a.input.max_line_bytes < 1024 {
        bail!("--max-line-bytes must be at least 1024");
    }
    if a.input.max_document_bytes < a.input.max_line_bytes {
        bail!("--max-document-bytes must be at least --max-line-bytes ({})", a.input.max_line_bytes);
    }
    let limits = Limits { max_line_bytes: a.input.max_line_bytes, max_document_bytes: a.input.max_document_bytes };
    let inputs = if a.paths.is_empty() { vec![PathBuf::from("-")] } else { a.paths.clone() };
    Ok(ReplayConfig { inputs, format, since, until, limits, threads: threads(a.input.threads) })
}

pub fn threads(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
        .clamp(1, 256)
}

/// Whether to draw progress on standard error.
pub fn progress_wanted(no_progress: bool, quiet: bool) -> bool {
    !no_progress && !quiet && std::io::stderr().is_terminal()
}
