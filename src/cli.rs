//! Command-line arguments (raw input) and their validation into the settings each command runs with.
//!
//! Two steps, as in ripgrep: clap parses raw strings; `*_settings` functions validate them (times, CIDRs,
//! spec directories) before any input is read, so a typo fails fast with a clear message.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::correlate::CorrelationSpec;
use crate::detect::baseline::BaselineFile;
use crate::detect::{EngineSettings, DEFAULT_IPV6_PREFIX};
use crate::event::LogFormat;
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
/// Exit code: `replay --truth` or `demo` found the findings differ from the ground truth.
pub const EXIT_SCORE: i32 = 3;

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
    /// Generate (or, with --apply, create) CloudWatch metric filters and alarms from the detector specs.
    Filters(Box<FiltersArgs>),
    /// Test a CloudWatch Logs filter pattern against log files offline, like TestMetricFilter.
    TestFilter(TestFilterArgs),
    /// Watch CloudWatch Logs log groups (or local files) around the clock; notify SNS of attacks.
    Monitor(Box<MonitorArgs>),
    /// Active response: list, unblock and sync the addresses blocked in AWS WAF, or apply the response
    /// policy to replay output (--from, a dry run unless --apply).
    Respond(Box<RespondArgs>),
}

/// Options shared by every command that runs the detectors.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Directory of detector specs (*.toml) replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub filters: Option<PathBuf>,
    /// How far behind the newest event an event may arrive and still be put in order (e.g. 60s, 5m).
    /// Default 60s. Not for `monitor`, which orders events with --allowed-delay.
    #[arg(long, value_name = "DURATION")]
    pub lateness: Option<String>,
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
    /// Start the pool-wide rules with the baselines in FILE (written by `replay --save-baseline` or the
    /// monitor's state directory) instead of learning for their warm-up first.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Correlation spec (how findings are grouped into cases) replacing the built-in
    /// filters/cases/correlation.toml; `enabled = false` in it turns cases off.
    #[arg(long, value_name = "FILE")]
    pub correlation: Option<PathBuf>,
    /// Turn cases off: no correlation, and the monitor notifies per finding.
    #[arg(long, conflicts_with = "correlation")]
    pub no_cases: bool,
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
    /// Write cases (findings grouped by attack, README "Cases") as JSON lines to FILE: each case when it
    /// closes or merges into an older one, and with --updates also when it opens and escalates.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// Only events at or after this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Write every rejected record (file, line, record, reason and its text) here as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Score the findings against a ground-truth file from `authwatch simulate --truth` (printed with the
    /// summary; exit 3 when an attack was missed or a finding matches no attack).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// No summary on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Never draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Benchmark the decode ceiling: read and decode every record on the same threads, run no detector
    /// (docs/performance.md).
    #[arg(long)]
    pub decode_only: bool,
    /// Threads that run the per-address and per-user rules, each for a share of the keys (default: as
    /// --threads, at most 16; 1 runs every rule on one thread). The findings are the same whatever the
    /// number (docs/performance.md "Sharding detection by key").
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Write what the pool-wide rules learned (each pool's normal) to FILE at the end, for a later
    /// `replay` or `monitor --baseline FILE`.
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// CloudWatch Logs log group to read (repeatable; read concurrently).
    #[arg(long = "log-group", value_name = "NAME")]
    pub log_groups: Vec<String>,
    /// Only these log streams (repeatable; applies to every log group).
    #[arg(long = "log-stream", value_name = "NAME", conflicts_with = "log_stream_prefix")]
    pub log_streams: Vec<String>,
    /// Only log streams whose name starts with this.
    #[arg(long, value_name = "PREFIX")]
    pub log_stream_prefix: Option<String>,
    /// Tail this local file (repeatable), surviving rotation and truncation.
    #[arg(long, value_name = "PATH")]
    pub follow: Vec<PathBuf>,
    /// AWS Region (default: the standard chain, e.g. AWS_REGION).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long)]
    pub profile: Option<String>,
    /// Endpoint for every AWS call (an emulator, a VPC endpoint). Default: AWS_ENDPOINT_URL or AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Endpoint for SNS only, when it differs from --endpoint-url.
    #[arg(long, value_name = "URL")]
    pub sns_endpoint_url: Option<String>,
    /// Publish one notification per incident (and per escalation) to this topic.
    #[arg(long, value_name = "ARN")]
    pub sns_topic_arn: Option<String>,
    /// Individual notifications per minute; beyond it, one digest per minute (alert-storm protection).
    #[arg(long, default_value_t = DEFAULT_MAX_NOTIFICATIONS_PER_MINUTE, value_name = "N")]
    pub max_notifications_per_minute: u32,
    /// Directory for the checkpoint, the notification spool and the ledger.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Append closed findings (JSON lines) here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Append cases (findings grouped by attack, README "Cases") as JSON lines here: each case when it
    /// closes or merges into an older one.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// On the first start (no checkpoint), read events from this long ago.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub backfill: String,
    /// How late an event may become readable (ingest delay) and still be counted in order. Notifications
    /// wait this long; the status line shows the measured ingest delay to tune it.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub allowed_delay: String,
    /// How far behind the wall-clock start of its previous poll each CloudWatch poll re-reads: events
    /// ingested up to this late (ingestionTime - timestamp) are never missed.
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub overlap: String,
    /// On restart, how far before the resume point to re-read to rebuild detector state. Default: the
    /// largest rule window (24h with impossible_travel). Shorter restarts faster but may rebuild
    /// incidents differently (see docs/monitor.md).
    #[arg(long, value_name = "DURATION")]
    pub restart_lookback: Option<String>,
    /// Pause between polls of a log group.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub poll_interval: String,
    /// Status line on standard error this often; 0 turns it off.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub status_interval: String,
    /// Serve Prometheus metrics (/metrics) and a health check (/healthz) on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Time given at shutdown to deliver spooled notifications (the rest stays spooled).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub drain: String,
    /// Longest wait for one AWS request (FilterLogEvents page, SNS publish) before it is abandoned and
    /// retried with back-off; also the longest silence while reading its answer.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub request_timeout: String,
    /// Input log format: auto, cognito or cloudtrail.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: String,
    /// Memory for events waiting --allowed-delay, in MiB (about 1 KB per event). A backlog beyond it (a
    /// large file dropped into a followed path, a long --backfill) goes to the detectors early, oldest
    /// first, counted as `forced` in the status line and /metrics.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub max_held_mb: usize,
    /// Active response policy (TOML, README "Active response"): block attacking addresses in AWS WAF,
    /// contain taken-over accounts. Nothing is done unless the file says `enabled = true`.
    #[arg(long, value_name = "FILE")]
    pub respond: Option<PathBuf>,
    /// With --respond: print what would be done (standard error), keep and change nothing, call no AWS API.
    #[arg(long, requires = "respond")]
    pub dry_run: bool,
    #[command(flatten)]
    pub detect: DetectArgs,
}

/// `authwatch respond`.
#[derive(Debug, Clone, Args)]
pub struct RespondArgs {
    #[command(subcommand)]
    pub action: Option<RespondAction>,
    /// Apply the policy to these findings (JSON lines, as `replay -o` writes them). A dry run unless --apply.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// With --from: act (block, contain) instead of printing what would be done.
    #[arg(long, requires = "from")]
    pub apply: bool,
    /// The response policy (TOML).
    #[arg(long, value_name = "FILE", global = true)]
    pub policy: Option<PathBuf>,
    /// The monitor's state directory, where the blocks and their expiries are kept.
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Detector specs the policy's rule ids refer to (default: the built-in ones).
    #[arg(long, value_name = "DIR", global = true)]
    pub filters: Option<PathBuf>,
    /// AWS Region (default: the standard chain).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Endpoint for every AWS call (an emulator, a VPC endpoint).
    #[arg(long, value_name = "URL", global = true)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RespondAction {
    /// The stored blocks (address, state, reason, incident, expiry) and queued account actions.
    List,
    /// End the block of an address now (removed from the IP set; entries authwatch did not add stay).
    Unblock {
        #[arg(value_name = "ADDR")]
        addr: String,
    },
    /// Bring the IP sets in line with the stored blocks: expired ones out, missing ones back in.
    Sync,
}

/// A minute of notifications before digests: enough for a few real incidents, few enough to read.
pub const DEFAULT_MAX_NOTIFICATIONS_PER_MINUTE: u32 = 20;

fn duration_arg(flag: &str, s: &str) -> anyhow::Result<Span> {
    let span = Span::parse(s).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if span.0 < 0 {
        bail!("{flag} must not be negative");
    }
    Ok(span)
}

fn to_std(span: Span) -> std::time::Duration {
    std::time::Duration::from_millis(span.0.max(0) as u64)
}

pub fn monitor_config(a: &MonitorArgs) -> anyhow::Result<crate::monitor::MonitorConfig> {
    if a.log_groups.is_empty() && a.follow.is_empty() {
        bail!("nothing to monitor: give --log-group NAME and/or --follow PATH");
    }
    if let Some(l) = &a.detect.lateness {
        bail!(
            "--lateness {l} does not apply to monitor: it orders events itself and waits --allowed-delay \
             (default 10s) for late ones; use --allowed-delay (and --overlap for late-ingested CloudWatch events)"
        );
    }
    let format = LogFormat::parse_forced(&a.format).map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let allowed_delay = duration_arg("--allowed-delay", &a.allowed_delay)?;
    let overlap = duration_arg("--overlap", &a.overlap)?;
    if overlap < allowed_delay {
        bail!(
            "--overlap ({}) must be at least --allowed-delay ({}): late events would be missed",
            a.overlap,
            a.allowed_delay
        );
    }
    let poll = duration_arg("--poll-interval", &a.poll_interval)?;
    if poll.0 < 100 {
        bail!("--poll-interval must be at least 100ms (FilterLogEvents allows few calls per second)");
    }
    let status = duration_arg("--status-interval", &a.status_interval)?;
    let request_timeout = duration_arg("--request-timeout", &a.request_timeout)?;
    if request_timeout.0 < 1000 {
        bail!("--request-timeout must be at least 1s (a FilterLogEvents page of 10,000 events takes a while)");
    }
    if let Some(arn) = &a.sns_topic_arn {
        if !arn.starts_with("arn:") {
            bail!("--sns-topic-arn: '{arn}' is not an ARN (arn:aws:sns:REGION:ACCOUNT:NAME)");
        }
    }
    if a.max_notifications_per_minute == 0 {
        bail!("--max-notifications-per-minute must be at least 1");
    }
    if a.max_held_mb == 0 {
        bail!("--max-held-mb must be at least 1");
    }
    Ok(crate::monitor::MonitorConfig {
        log_groups: a.log_groups.clone(),
        stream_names: a.log_streams.clone(),
        stream_prefix: a.log_stream_prefix.clone(),
        follow: a.follow.clone(),
        region: a.region.clone(),
        profile: a.profile.clone(),
        endpoint_url: a.endpoint_url.clone(),
        sns_endpoint_url: a.sns_endpoint_url.clone(),
        sns_topic_arn: a.sns_topic_arn.clone(),
        max_notifications_per_minute: a.max_notifications_per_minute,
        state_dir: a.state_dir.clone(),
        output: a.output.clone(),
        cases: a.cases.clone(),
        backfill: duration_arg("--backfill", &a.backfill)?,
        allowed_delay,
        overlap,
        restart_lookback: a.restart_lookback.as_deref().map(|l| duration_arg("--restart-lookback", l)).transpose()?,
        poll: to_std(poll),
        status_interval: (status.0 > 0).then(|| to_std(status)),
        metrics_addr: a.metrics_addr,
        format,
        drain: to_std(duration_arg("--drain", &a.drain)?),
        request_timeout: to_std(request_timeout),
        max_held_bytes: a.max_held_mb.saturating_mul(1 << 20),
        // Read with the detector specs it names: `cmd::monitor`.
        respond: None,
    })
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
    #[command(flatten)]
    pub report: ReportArgs,
}

/// The forensic report of a replay (`crate::report`, README "Report").
#[derive(Debug, Clone, Default, Args)]
pub struct ReportArgs {
    /// Write a self-contained HTML report here: timeline, findings, top offenders, map, account stories.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Write the report's findings and per-account timelines as CSV files in this directory.
    #[arg(long, value_name = "DIR")]
    pub report_csv: Option<PathBuf>,
}

impl ReportArgs {
    pub fn targets(&self) -> crate::report::ReportTargets {
        crate::report::ReportTargets { html: self.report.clone(), csv_dir: self.report_csv.clone() }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DetectorsArgs {
    /// Directory of detector specs to validate instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub filters: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct FiltersArgs {
    /// The log group the metric filters watch.
    #[arg(long, value_name = "NAME")]
    pub log_group: String,
    /// What the log group holds: cognito (the exported user-activity log) or cloudtrail.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: String,
    /// Metric namespace for every metric (default: each spec's own).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// SNS topic the alarms notify. Repeatable.
    #[arg(long = "sns-topic-arn", value_name = "ARN")]
    pub sns_topic_arns: Vec<String>,
    /// Prefix of the metric filter, alarm and rule names.
    #[arg(long, default_value = crate::metric_filters::generate::DEFAULT_NAME_PREFIX, value_name = "PREFIX")]
    pub name_prefix: String,
    /// cli-json, cloudformation-json, cloudformation-yaml, terraform, contributor-insights or all.
    #[arg(long, default_value = "cloudformation-yaml", value_name = "FORMAT")]
    pub output_format: String,
    /// Write the files here (created if missing) instead of standard output; required for `all`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Create or update the metric filters and alarms in AWS instead of writing files.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: compare with what exists and print the plan; change nothing.
    #[arg(long, requires = "apply")]
    pub dry_run: bool,
    /// AWS region (default: the standard chain: AWS_REGION, the profile...).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS shared-config profile.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Send API calls here (an emulator, a VPC endpoint) instead of the regional endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Directory of detector specs (*.toml) replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub filters: Option<PathBuf>,
    /// Also emit the active response's WAF side for this user pool (CloudFormation, Terraform): two IP
    /// sets, a web ACL blocking them, its association with the pool.
    #[arg(long, value_name = "ARN")]
    pub waf_user_pool_arn: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TestFilterArgs {
    /// The filter pattern, as given to CloudWatch Logs.
    #[arg(value_name = "PATTERN", allow_hyphen_values = true)]
    pub pattern: String,
    /// Files or directories (read recursively); `-` or nothing reads standard input. Gzip is detected.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print only the count, not each matching event.
    #[arg(short, long)]
    pub count: bool,
    /// Longest accepted line; longer lines are rejected without being read into memory.
    #[arg(long, default_value_t = Limits::default().max_line_bytes, value_name = "BYTES")]
    pub max_line_bytes: usize,
}

/// Loads the rules: `--filters DIR` or the built-in set.
pub fn load_specs(filters: Option<&PathBuf>) -> anyhow::Result<SpecSet> {
    match filters {
        Some(dir) => SpecSet::load_dir(dir).map_err(|e| anyhow::anyhow!("invalid detector specs:\n{e}")),
        None => Ok(SpecSet::builtin()),
    }
}

/// `--lateness` when not given.
pub const DEFAULT_LATENESS: &str = "60s";

pub fn engine_settings(a: &DetectArgs) -> anyhow::Result<EngineSettings> {
    let lateness = Span::parse(a.lateness.as_deref().unwrap_or(DEFAULT_LATENESS))
        .map_err(|e| anyhow::anyhow!("--lateness: {e}"))?;
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
    let baseline = match &a.baseline {
        Some(path) => {
            let file = BaselineFile::read(path).map_err(|e| anyhow::anyhow!("--baseline: {e}"))?;
            let specs = load_specs(a.filters.as_ref())?;
            file.check(&crate::detect::pool_band_params(&specs))
                .map_err(|e| anyhow::anyhow!("--baseline: {}: {e}", path.display()))?;
            Some(Arc::new(file))
        }
        None => None,
    };
    let mut correlation = match &a.correlation {
        Some(path) => CorrelationSpec::load(path).map_err(|e| anyhow::anyhow!("--correlation: {e}"))?,
        None => CorrelationSpec::builtin(),
    };
    if a.no_cases {
        correlation.enabled = false;
    }
    Ok(EngineSettings {
        lateness,
        ipv6_prefix: a.ipv6_prefix,
        allow,
        geo,
        prefer_geoip: a.prefer_geoip,
        baseline,
        correlation: Arc::new(correlation),
    })
}

/// Parses `--since`/`--until`: RFC 3339 or a plain date (midnight UTC).
pub fn parse_time_arg(flag: &str, s: &str) -> anyhow::Result<Timestamp> {
    let t = Timestamp::parse_rfc3339(s).or_else(|| Timestamp::parse_rfc3339(&format!("{s}T00:00:00Z"))).with_context(
        || format!("{flag}: '{s}' is not an RFC 3339 time (2026-03-02T12:00:00Z) or a date (2026-03-02)"),
    )?;
    Ok(t)
}

pub fn replay_config(a: &ReplayArgs) -> anyhow::Result<ReplayConfig> {
    let format = LogFormat::parse_forced(&a.input.format).map_err(|e| anyhow::anyhow!("--format: {e}"))?;
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
    let threads = threads(a.input.threads);
    let shards = a.shards.unwrap_or(threads).clamp(1, crate::detect::shard::MAX_SHARDS);
    Ok(ReplayConfig { inputs, format, since, until, limits, threads, shards })
}

pub fn threads(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).clamp(1, 256)
}

/// Whether to draw progress on standard error.
pub fn progress_wanted(no_progress: bool, quiet: bool) -> bool {
    !no_progress && !quiet && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor_args(extra: &[&str]) -> MonitorArgs {
        let mut argv = vec!["authwatch", "monitor", "--state-dir", "/tmp/x", "--follow", "/tmp/f.log"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("arguments parse").command {
            Command::Monitor(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn monitor_rejects_lateness_and_replay_keeps_its_default() {
        assert!(monitor_config(&monitor_args(&[])).is_ok());
        let e = monitor_config(&monitor_args(&["--lateness", "5s"])).unwrap_err().to_string();
        assert!(e.contains("--lateness") && e.contains("--allowed-delay"), "{e}");
        let a = DetectArgs {
            filters: None,
            lateness: None,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            allow_cidrs: vec![],
            allow_users: vec![],
            geoip: None,
            prefer_geoip: false,
            correlation: None,
            no_cases: false,
            baseline: None,
        };
        assert_eq!(engine_settings(&a).unwrap().lateness, Span::secs(60));
    }
}
