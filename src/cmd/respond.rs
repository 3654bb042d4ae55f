//! `authwatch respond`: the operator's side of the active response. `list` shows the stored blocks;
//! `unblock ADDR` and `sync` change them; `--from FILE` applies the policy to replay output (a dry run
//! unless `--apply`).
//!
//! Changes go through the state directory's owner (`respond::control`): when no monitor holds the
//! directory's lock, this command takes it and acts itself (reading and saving the checkpoint's response
//! state, calling AWS); when a monitor runs, the request is handed to it and this command waits until
//! the monitor has taken it.

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::watch;

use crate::cli::{load_specs, RespondAction, RespondArgs, EXIT_OK, EXIT_REJECTED};
use crate::monitor::state::{Checkpoint, StateDir};
use crate::pipeline::clock::Clock;
use crate::respond::audit::{AuditLog, RespondMetrics};
use crate::respond::control::{self, Request};
use crate::respond::policy::Policy;
use crate::respond::shared::NoFigures;
use crate::respond::sink::{load_store, Report, RespondSink, SAVED_FIELD};
use crate::respond::store::Store;
use crate::respond::worker::{Saver, Shared};
use crate::respond::{audit_path, finding_from_json, new_worker};
use crate::sanitize::for_terminal;
use crate::sink::Sink;
use crate::time::Timestamp;

/// How long a command waits for a running monitor to take its request (it looks every second).
const HANDOVER_WAIT: Duration = Duration::from_secs(30);

pub fn run(a: &RespondArgs) -> anyhow::Result<i32> {
    match (&a.action, &a.from) {
        (Some(RespondAction::List), _) => list(state_dir(a)?),
        (Some(RespondAction::Unblock { addr }), _) => change(a, vec![Request::Unblock(addr.clone())]),
        (Some(RespondAction::Sync), _) => change(a, vec![Request::Sync]),
        (None, Some(from)) => from_findings(a, from),
        (None, None) => bail!("give list, unblock ADDR or sync, or --from FILE (see authwatch respond --help)"),
    }
}

fn state_dir(a: &RespondArgs) -> anyhow::Result<&Path> {
    a.state_dir.as_deref().context("--state-dir DIR is needed: the monitor's state directory, where blocks are kept")
}

fn policy(a: &RespondArgs) -> anyhow::Result<Policy> {
    let path = a.policy.as_ref().context("--policy FILE is needed: the response policy")?;
    let specs = load_specs(a.filters.as_ref())?;
    let policy = Policy::load(path, &specs)?;
    Ok(policy)
}

/// The checkpoint of `dir` (a default one when there is none yet).
fn load_checkpoint(dir: &Path) -> anyhow::Result<(StateDir, Checkpoint)> {
    let state = StateDir::open(dir).context("cannot use the state directory")?;
    let (cp, warnings) = state.load();
    for w in warnings {
        eprintln!("authwatch: {}", for_terminal(&w));
    }
    Ok((state, cp.unwrap_or_default()))
}

fn list(dir: &Path) -> anyhow::Result<i32> {
    let (_, cp) = load_checkpoint(dir)?;
    let store = load_store(&cp.sinks);
    println!("{:<43} {:<8} {:<24} {:<9} {:>3} {:<28} INCIDENT", "ADDRESS", "STATE", "EXPIRES", "SEVERITY", "N", "RULE");
    for b in store.blocks.values() {
        let state = serde_json::to_value(b.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        println!(
            "{:<43} {:<8} {:<24} {:<9} {:>3} {:<28} {}",
            b.addr,
            state,
            Timestamp(b.expires_ms).to_string(),
            b.severity.as_str(),
            b.offences,
            for_terminal(&b.rule),
            for_terminal(&b.incident)
        );
    }
    println!("{} blocks; {} given up or refused because a set was full", store.blocks.len(), store.overflow);
    for act in &store.actions {
        println!(
            "queued: {} {}/{} (incident {}, {} failed attempts)",
            act.action.as_str(),
            for_terminal(&act.user_pool_id),
            for_terminal(&act.user),
            for_terminal(&act.incident),
            act.attempts
        );
    }
    if control::pending(dir) {
        println!("operator requests wait for the monitor (respond-requests.jsonl)");
    }
    Ok(EXIT_OK)
}

/// `unblock` and `sync` (and `--from --apply`): done here when no monitor owns the state directory,
/// handed to the monitor when one does.
fn change(a: &RespondArgs, requests: Vec<Request>) -> anyhow::Result<i32> {
    let dir = state_dir(a)?.to_path_buf();
    // Unblocking and reconciling work with the response off too: they undo, they decide nothing new.
    let policy = policy(a)?;
    let Some(lock) = control::try_lock(&dir).context("cannot lock the state directory")? else {
        return hand_over(&dir, &requests);
    };
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let result = rt.block_on(act(a, &dir, policy, requests));
    drop(lock);
    result
}

/// A monitor runs: leave the requests for it and wait until it has taken them.
fn hand_over(dir: &Path, requests: &[Request]) -> anyhow::Result<i32> {
    control::send(dir, requests).context("cannot leave the request for the running monitor")?;
    println!("a monitor owns {}: request handed to it", dir.display());
    let deadline = Instant::now() + HANDOVER_WAIT;
    while control::pending(dir) {
        if Instant::now() > deadline {
            println!("the monitor has not taken it yet: it will at its next tick (see `authwatch respond list`)");
            return Ok(EXIT_REJECTED);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("the monitor took it: see `authwatch respond list` and the audit log");
    Ok(EXIT_OK)
}

/// Acts as the owner: applies the requests to the stored blocks, saves, brings the IP sets and the
/// accounts in line (one round of the monitor's worker), saves again.
async fn act(a: &RespondArgs, dir: &Path, policy: Policy, requests: Vec<Request>) -> anyhow::Result<i32> {
    let (state, cp) = load_checkpoint(dir)?;
    let policy = Arc::new(policy);
    let audit_file = audit_path(&policy, dir);
    let audit =
        AuditLog::open(&audit_file).with_context(|| format!("cannot open the audit log {}", audit_file.display()))?;
    let metrics = Arc::new(RespondMetrics::default());
    let shared = Shared::new(load_store(&cp.sinks), audit, metrics.clone());
    let guard = Arc::new(NoFigures);
    let mut sink = RespondSink::new(policy.clone(), shared.clone(), guard, false, Report::Stdout, Clock::System);
    for r in requests {
        sink.apply_request(r);
    }
    // Blocks whose time is up end now.
    let _ = sink.flush();
    let cp = Arc::new(Mutex::new(cp));
    let saver: Saver = {
        let (shared, cp, state) = (shared.clone(), cp.clone(), state.clone());
        Arc::new(move || save(&shared, &cp, &state))
    };
    saver().map_err(anyhow::Error::msg)?;
    let endpoint = crate::aws::Endpoint {
        region: a.region.as_deref(),
        profile: a.profile.as_deref(),
        endpoint_url: a.endpoint_url.as_deref(),
    };
    let sdk = crate::aws::sdk_config(&endpoint, crate::aws::DEFAULT_REQUEST_TIMEOUT).await;
    let mut worker = new_worker(&policy, shared.clone(), &sdk, Clock::System, Some(saver.clone()));
    let (_stop_tx, stop) = watch::channel(false);
    let result = worker.round(&stop).await;
    saver().map_err(anyhow::Error::msg)?;
    let m = &metrics;
    println!(
        "IP sets: {} added, {} removed, {} given up (set full); accounts: {} actions done, {} failed; audit log {}",
        m.blocks_added.load(Ordering::Relaxed),
        m.blocks_removed.load(Ordering::Relaxed),
        m.blocks_overflow.load(Ordering::Relaxed),
        m.contain_done.load(Ordering::Relaxed),
        m.contain_failures.load(Ordering::Relaxed),
        audit_file.display()
    );
    match result {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            eprintln!("authwatch: {}: what is left is kept and done by the next sync or monitor run", for_terminal(&e));
            Ok(EXIT_REJECTED)
        }
    }
}

/// Saves the response state into the checkpoint (the rest of it as loaded: no monitor runs) and makes
/// it visible to the worker.
fn save(shared: &Shared, cp: &Mutex<Checkpoint>, state: &StateDir) -> Result<(), String> {
    let (value, seq) = shared.with_store(|s| (serde_json::to_value(&*s), s.next_seq));
    let value = value.map_err(|e| e.to_string())?;
    let mut cp = cp.lock().map_err(|_| "checkpoint lock poisoned".to_string())?;
    cp.sinks.insert(SAVED_FIELD.to_string(), value);
    state.save(&cp).map_err(|e| format!("cannot save the checkpoint: {e}"))?;
    shared.with_store(|s| s.visible_upto = s.visible_upto.max(seq));
    Ok(())
}

/// `--from FILE`: each finding through the policy. A dry run prints what would be done (against the
/// stored blocks when --state-dir is given, so what was done before is not repeated); --apply acts.
fn from_findings(a: &RespondArgs, from: &Path) -> anyhow::Result<i32> {
    let policy = policy(a)?;
    let (findings, bad) = read_findings(from)?;
    if a.apply {
        state_dir(a)?;
        if !policy.enabled {
            bail!("{}: enabled = false: the response is off", policy.path.display());
        }
        let requests: Vec<Request> = findings.into_iter().map(Request::Finding).collect();
        let code = change(a, requests)?;
        return Ok(if bad > 0 { EXIT_REJECTED } else { code });
    }
    let store = match &a.state_dir {
        Some(dir) => load_store(&load_checkpoint(dir)?.1.sinks),
        None => Store::default(),
    };
    let audit_dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    // A dry run writes no audit line where an operator would look for real ones.
    let audit = AuditLog::open(&audit_dir.path().join("dry-run.jsonl")).context("cannot open a scratch audit log")?;
    let shared = Shared::new(store, audit, Arc::new(RespondMetrics::default()));
    let mut sink =
        RespondSink::new(Arc::new(policy.clone()), shared, Arc::new(NoFigures), true, Report::Stdout, Clock::System);
    if policy.block.is_some() {
        println!("note: --from has no sign-in events, so block.max_shared_users (shared addresses) is not judged here");
    }
    if !policy.enabled {
        println!("note: {} has enabled = false: nothing would be done", policy.path.display());
    }
    for v in &findings {
        if let Ok(f) = finding_from_json(v) {
            sink.decide(&f);
        }
    }
    println!(
        "dry run: {} findings read, {} lines of actions; nothing was changed (--apply acts)",
        findings.len(),
        sink.said
    );
    Ok(if bad > 0 { EXIT_REJECTED } else { EXIT_OK })
}

/// The findings of a JSON-lines file; bad lines are reported with their line number and counted.
fn read_findings(path: &Path) -> anyhow::Result<(Vec<serde_json::Value>, u64)> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    let mut bad = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&line).map_err(|e| e.to_string());
        match parsed.and_then(|v| finding_from_json(&v).map(|_| v)) {
            Ok(v) => out.push(v),
            Err(e) => {
                bad += 1;
                eprintln!(
                    "authwatch: {}:{}: not a finding: {}",
                    for_terminal(&path.display().to_string()),
                    i + 1,
                    for_terminal(&e)
                );
            }
        }
    }
    Ok((out, bad))
}
