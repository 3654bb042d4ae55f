//! Active response (issue 15): findings the policy names block their address at the user pool's AWS WAF
//! and contain the taken-over account through the Cognito admin API. Off unless a policy file with
//! `enabled = true` is given (`monitor --respond FILE`, `authwatch respond`); `--dry-run` shows what
//! would be done and changes nothing.
//!
//! Pieces, following a finding: [`policy`] (the spec file, validated) → [`sink::RespondSink`] (decides,
//! records in the [`store::Store`], which the monitor's checkpoint holds) → [`worker::Worker`] (the AWS
//! calls: [`waf`] for the IP sets, [`cognito`] for accounts; every change in the [`audit`] log). The
//! shared-address guard reads its figure through [`shared::SharedAddresses`]. [`control`] says who owns a
//! state directory's blocks and carries operators' requests to a running monitor. [`iac`] writes the WAF
//! side (IP sets, web ACL, association with the pool) as CloudFormation or Terraform.

pub mod audit;
pub mod cognito;
pub mod control;
pub mod iac;
pub mod policy;
pub mod shared;
pub mod sink;
pub mod store;
pub mod waf;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::finding::{Finding, Severity, Status};
use crate::pipeline::clock::Clock;
use crate::sink::SavedState;
use crate::time::Timestamp;
use audit::{AuditLog, RespondMetrics, DEFAULT_AUDIT_FILE};
use policy::Policy;
use shared::{SharedAddresses, SharedTracker};
use sink::{Report, RespondSink};
use worker::{Shared, Worker};

/// What `--respond FILE` (and `--dry-run`) configure.
#[derive(Debug, Clone)]
pub struct RespondSettings {
    pub policy: Arc<Policy>,
    pub dry_run: bool,
}

/// The audit log's path: the policy's `audit_log`, else `respond-audit.jsonl` in the state directory.
pub fn audit_path(policy: &Policy, state_dir: &Path) -> PathBuf {
    policy.audit_log.clone().unwrap_or_else(|| state_dir.join(DEFAULT_AUDIT_FILE))
}

/// The response side of a monitor run.
pub struct Responder {
    pub sink: RespondSink,
    /// None in a dry run.
    pub worker: Option<Worker>,
    /// Fed every sign-in event the monitor reads (the shared-address guard's figure).
    pub tracker: SharedTracker,
    /// The state directory's response lock, held for the run.
    pub lock: Option<control::OwnerLock>,
}

/// Sets up the monitor's response: takes the state directory's lock (refusing to start when another
/// process holds it), reads the stored blocks from the checkpoint's sink state, opens the audit log.
pub fn start(
    settings: &RespondSettings,
    saved: &SavedState,
    state_dir: &Path,
    sdk: Option<&aws_config::SdkConfig>,
    metrics: Arc<RespondMetrics>,
    clock: Clock,
) -> anyhow::Result<Responder> {
    let policy = settings.policy.clone();
    let lock = if settings.dry_run {
        None
    } else {
        let lock = control::try_lock(state_dir).context("cannot lock the state directory's response state")?;
        Some(lock.with_context(|| {
            format!(
                "another authwatch process acts on {}'s blocks (it holds {})",
                state_dir.display(),
                control::LOCK_FILE
            )
        })?)
    };
    let audit_file = audit_path(&policy, state_dir);
    let audit =
        AuditLog::open(&audit_file).with_context(|| format!("cannot open the audit log {}", audit_file.display()))?;
    let store = sink::load_store(saved);
    let shared = Shared::new(store, audit, metrics);
    let cap = policy.block.as_ref().map_or(1, |b| b.max_shared_users + 1);
    let tracker = SharedTracker::new(cap);
    let guard: Arc<dyn SharedAddresses> = Arc::new(tracker.clone());
    let report = Report::Log;
    let sink = RespondSink::new(policy.clone(), shared.clone(), guard, settings.dry_run, report, clock);
    // A dry run leaves operators' requests to whoever owns the blocks.
    let sink = if settings.dry_run { sink } else { sink.with_requests_from(state_dir) };
    let worker = match (settings.dry_run, sdk) {
        (false, Some(sdk)) => Some(new_worker(&policy, shared, sdk, clock, None)),
        _ => None,
    };
    Ok(Responder { sink, worker, tracker, lock })
}

/// The worker for `policy`, its AWS clients from `sdk`.
pub fn new_worker(
    policy: &Policy,
    shared: Arc<Shared>,
    sdk: &aws_config::SdkConfig,
    clock: Clock,
    saver: Option<worker::Saver>,
) -> Worker {
    let waf = policy
        .waf
        .as_ref()
        .map(|w| waf::WafSets::new(aws_sdk_wafv2::Client::new(sdk), &w.scope, w.ipv4.clone(), w.ipv6.clone()));
    let cognito = policy.contain.as_ref().map(|_| cognito::Cognito::new(sdk));
    let (limit, batch, write_interval) =
        policy.waf.as_ref().map_or((policy::WAF_MAX_ADDRESSES, Duration::from_secs(3), Duration::from_secs(1)), |w| {
            (w.max_addresses, Duration::from_millis(w.batch.0 as u64), Duration::from_millis(w.write_interval.0 as u64))
        });
    Worker { shared, waf, cognito, limit, batch, write_interval, clock, last_write: None, saver }
}

/// A finding as replay writes it (one JSON line of `--output`), for `respond --from`. Only the fields the
/// policy reads are required: `rule`, `severity`, `incident_id`.
pub fn finding_from_json(v: &serde_json::Value) -> Result<Finding, String> {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let need = |k: &str| text(k).ok_or_else(|| format!("no `{k}`"));
    let severity = need("severity")?;
    let severity = Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == severity)
        .ok_or_else(|| format!("severity '{severity}' unknown"))?;
    let status = match text("status").as_deref() {
        Some("open") => Status::Open,
        Some("escalated") => Status::Escalated,
        _ => Status::Closed,
    };
    let time = |k: &str| v.get(k).and_then(|x| x.as_str()).and_then(Timestamp::parse_rfc3339).unwrap_or(Timestamp(0));
    Ok(Finding {
        // The policy goes by rule id; the detector's name is only carried for display.
        detector: "replayed",
        severity,
        user: text("user"),
        user_sub: text("user_sub"),
        ip: text("ip"),
        user_pool_id: text("user_pool_id"),
        region: text("region"),
        account: text("account"),
        first_seen: time("first_seen"),
        last_seen: time("last_seen"),
        detected_at: time("detected_at"),
        count: v.get("count").and_then(|c| c.as_u64()).unwrap_or(0),
        summary: text("summary").unwrap_or_default(),
        evidence: serde_json::Value::Null,
        incident_id: need("incident_id")?,
        case_id: text("case_id"),
        rule: need("rule")?,
        status,
    })
}
