//! The response worker task: brings authwatch's WAF IP sets in line with the stored blocks and does the
//! queued containment actions, retrying with back-off, writing an audit line for every change.
//!
//! Each round, per set: read it (`GetIPSet`: addresses and lock token), mark new blocks as being added and
//! wait for the checkpoint to record that (so a crash after the write cannot make authwatch's own entry
//! look like someone else's), read again, plan the write ([`Store::plan`]: entries it did not add are kept,
//! the limit is kept), and write it with the lock token, no sooner than the write interval after the
//! last write (WAF accepts about one per second per account and Region). A `WAFOptimisticLockException`
//! means another writer came between the read and the write: read again and re-plan, up to
//! [`MAX_LOCK_RETRIES`] times in a row.
//!
//! Rounds start when the sink wakes the worker (new blocks checkpointed, expiries) after gathering for the
//! policy's batch time, and every [`RECONCILE_EVERY`] regardless, which also puts back a block someone
//! removed by hand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::audit::{AuditLog, RespondMetrics};
use super::cognito::{Cognito, ContainError};
use super::store::{Plan, Store};
use super::waf::{WafSets, WriteError};
use crate::pipeline::clock::Clock;
use crate::source::Backoff;
use crate::time::Timestamp;

/// Lock conflicts in a row before a round gives up (and is retried with back-off): a set that changes
/// faster than this has another busy writer that should not be fought.
pub const MAX_LOCK_RETRIES: u32 = 10;
/// Every set is compared with the stored blocks at least this often.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// Longest wait for the checkpoint that records blocks as being added (the monitor saves within a tick).
pub const CHECKPOINT_WAIT: Duration = Duration::from_secs(30);
/// First retry after a failed round; AWS throttling clears within a second or two.
const RETRY_BASE_MS: u64 = 500;
/// Longest wait between failed rounds: a recovery is noticed within a minute.
const RETRY_CAP_MS: u64 = 60_000;

/// What the sink, the worker and the checkpoint share.
pub struct Shared {
    pub store: Mutex<Store>,
    /// The sink wakes the worker when there is something new to do.
    pub wake: Notify,
    /// The worker asks for a checkpoint now (it marked blocks as being added).
    pub want_checkpoint: AtomicBool,
    /// The worker changed the store: the next periodic checkpoint must record it.
    pub changed: AtomicBool,
    pub metrics: Arc<RespondMetrics>,
    pub audit: AuditLog,
}

impl Shared {
    pub fn new(store: Store, audit: AuditLog, metrics: Arc<RespondMetrics>) -> Arc<Shared> {
        Arc::new(Shared {
            store: Mutex::new(store),
            wake: Notify::new(),
            want_checkpoint: AtomicBool::new(false),
            changed: AtomicBool::new(false),
            metrics,
            audit,
        })
    }

    /// Runs `f` on the store (a poisoned lock, which only a panic elsewhere could leave, is taken as is).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// The worker task.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub waf: Option<WafSets>,
    pub cognito: Option<Cognito>,
    /// Most entries per set (`waf.max_addresses`).
    pub limit: usize,
    pub batch: Duration,
    pub write_interval: Duration,
    pub clock: Clock,
    pub last_write: Option<Instant>,
    /// Saves the checkpoint itself (an operator command, which has no monitor loop to ask); None: ask the
    /// monitor through [`Shared::want_checkpoint`].
    pub saver: Option<Saver>,
}

/// Saves the state and makes what it saved visible to the worker.
pub type Saver = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Worker {
    /// Runs rounds until `stop` is set.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(RETRY_BASE_MS, RETRY_CAP_MS);
        // A first round at once: expiries due while the daemon was stopped, blocks not yet written.
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = self.shared.wake.notified(), if wait > Duration::ZERO => {
                    // Gather what else comes within the batch time into the same write.
                    tokio::select! {
                        _ = tokio::time::sleep(self.batch) => {}
                        _ = stop.changed() => {}
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            // Shutdown does not wait for a stalled AWS call: what is left is done at the next start.
            let watching = stop.clone();
            let result = tokio::select! {
                r = self.round(&watching) => r,
                _ = stop.changed() => return,
            };
            match result {
                Ok(()) => {
                    backoff.reset();
                    wait = RECONCILE_EVERY;
                }
                Err(reason) => {
                    wait = backoff.next_delay();
                    if backoff.attempts() == 3 {
                        tracing::error!(error = %crate::sanitize::for_terminal(&reason), "active response keeps failing; blocks and actions are kept and retried");
                    } else {
                        tracing::warn!(error = %crate::sanitize::for_terminal(&reason), retry_in_ms = wait.as_millis() as u64, "active response round failed");
                    }
                }
            }
        }
    }

    /// One pass over both sets and the action queue.
    pub async fn round(&mut self, stop: &watch::Receiver<bool>) -> Result<(), String> {
        let mut first_error = None;
        for v6 in [false, true] {
            if let Err(e) = self.sync_set(v6, stop).await {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.contain().await {
            first_error.get_or_insert(e);
        }
        self.update_gauges();
        first_error.map_or(Ok(()), Err)
    }

    fn update_gauges(&self) {
        let (active, queued) =
            self.shared.with_store(|s| (s.count(super::store::BlockState::Active) as i64, s.actions.len() as i64));
        self.shared.metrics.blocked.store(active, Ordering::Relaxed);
        self.shared.metrics.actions_queued.store(queued, Ordering::Relaxed);
    }

    /// Brings one set in line with the stored blocks of its family.
    pub async fn sync_set(&mut self, v6: bool, stop: &watch::Receiver<bool>) -> Result<(), String> {
        let Some(waf) = self.waf.clone() else { return Ok(()) };
        let Some(set) = waf.set(v6).cloned() else { return Ok(()) };
        let mut conflicts = 0;
        loop {
            let (current, token) = waf.read(&set).await.inspect_err(|_| self.count_failure())?;
            if let Some(mark) = self.shared.with_store(|s| s.prepare(v6, &current)) {
                self.shared.changed.store(true, Ordering::Relaxed);
                self.wait_checkpointed(mark, stop).await?;
                // Read again: the set may have changed while waiting, and the lock token with it.
                continue;
            }
            let plan = self.shared.with_store(|s| s.plan(v6, &current, self.limit));
            if plan.is_empty() {
                return Ok(());
            }
            if plan.added.is_empty() && plan.removed.is_empty() {
                self.apply(&plan, &set.name);
                return Ok(());
            }
            self.pace().await;
            let result = waf.write(&set, plan.addresses.clone(), &token).await;
            self.last_write = Some(self.clock.now());
            match result {
                Ok(()) => {
                    self.shared.metrics.waf_writes.fetch_add(1, Ordering::Relaxed);
                    self.apply(&plan, &set.name);
                    return Ok(());
                }
                Err(WriteError::Conflict) => {
                    conflicts += 1;
                    self.shared.metrics.waf_lock_conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(set = %set.name, conflicts, "IP set changed between read and write: reading again");
                    if conflicts >= MAX_LOCK_RETRIES {
                        return Err(format!("IP set {} changed under every one of {conflicts} writes", set.name));
                    }
                }
                Err(WriteError::Failed(e)) => {
                    self.count_failure();
                    return Err(e);
                }
            }
        }
    }

    fn count_failure(&self) {
        self.shared.metrics.waf_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until the write interval has passed since the last write.
    pub(crate) async fn pace(&self) {
        if let Some(last) = self.last_write {
            let next = last + self.write_interval;
            if next > self.clock.now() {
                tokio::time::sleep_until(next).await;
            }
        }
    }

    /// Waits until the checkpoint holds everything up to `seq`.
    pub(crate) async fn wait_checkpointed(&self, seq: u64, stop: &watch::Receiver<bool>) -> Result<(), String> {
        if let Some(save) = &self.saver {
            return save();
        }
        let deadline = self.clock.now() + CHECKPOINT_WAIT;
        loop {
            if self.shared.with_store(|s| s.visible_upto >= seq) {
                return Ok(());
            }
            if *stop.borrow() || self.clock.now() > deadline {
                return Err("the checkpoint recording new blocks was not saved; they are written next round".into());
            }
            self.shared.want_checkpoint.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records a write (or a plan that needed none) in the store, the audit log and the metrics.
    fn apply(&self, plan: &Plan, set: &str) {
        let now = self.clock.wall();
        let audit_lines: Vec<(String, &'static str, String, String)> = self.shared.with_store(|s| {
            let mut lines = Vec::new();
            for a in &plan.added {
                if let Some(b) = s.blocks.get(a) {
                    let detail =
                        format!("ok: in {set} until {} ({}, offence {})", Timestamp(b.expires_ms), b.rule, b.offences);
                    lines.push((b.incident.clone(), "block", a.clone(), detail));
                }
            }
            for a in &plan.removed {
                let (case, why) = s
                    .blocks
                    .get(a)
                    .map(|b| (b.incident.clone(), b.ended.clone().unwrap_or_else(|| "ended".into())))
                    .unwrap_or_default();
                let action = if plan.evicted.contains(a) { "evict" } else { "unblock" };
                lines.push((case, action, a.clone(), format!("ok: out of {set} ({why})")));
            }
            for a in plan.evicted.iter().filter(|a| !plan.removed.contains(a)) {
                let case = s.blocks.get(a).map(|b| b.incident.clone()).unwrap_or_default();
                lines.push((case, "evict", a.clone(), format!("ok: not written, {set} is full")));
            }
            s.applied(plan);
            lines
        });
        let m = &self.shared.metrics;
        m.blocks_added.fetch_add(plan.added.len() as u64, Ordering::Relaxed);
        m.blocks_removed.fetch_add(plan.removed.len() as u64, Ordering::Relaxed);
        m.blocks_overflow.fetch_add(plan.evicted.len() as u64, Ordering::Relaxed);
        if !plan.evicted.is_empty() {
            tracing::warn!(
                set,
                given_up = plan.evicted.len(),
                "IP set full: lowest-severity, soonest-expiring blocks given up (see the audit log)"
            );
        }
        for (case, action, target, result) in &audit_lines {
            self.shared.audit.write(now, case, action, target, result, m);
        }
        self.shared.audit.sync();
        self.shared.changed.store(true, Ordering::Relaxed);
    }

    /// Does the queued containment actions in order. A retryable failure stops the pass (back-off); a final
    /// one is reported and the next action goes on.
    async fn contain(&mut self) -> Result<(), String> {
        let Some(cognito) = self.cognito.as_mut() else { return Ok(()) };
        while let Some(a) = self.shared.with_store(|s| s.next_action()) {
            let target = format!("{}/{}", a.user_pool_id, a.user);
            let result = cognito.perform(a.action, &a.user_pool_id, &a.user).await;
            let now = self.clock.wall();
            let m = &self.shared.metrics;
            match result {
                Ok(()) => {
                    m.contain_done.fetch_add(1, Ordering::Relaxed);
                    self.shared.audit.write(now, &a.incident, a.action.as_str(), &target, "ok", m);
                    self.shared.with_store(|s| s.action_finished(a.seq));
                }
                Err(ContainError::Final(e)) => {
                    m.contain_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(action = a.action.as_str(), target = %crate::sanitize::for_terminal(&target), error = %crate::sanitize::for_terminal(&e), "containment action refused: not retried");
                    self.shared.audit.write(now, &a.incident, a.action.as_str(), &target, &format!("failed: {e}"), m);
                    self.shared.with_store(|s| s.action_finished(a.seq));
                }
                Err(ContainError::Retry(e)) => {
                    m.contain_failures.fetch_add(1, Ordering::Relaxed);
                    self.shared.audit.write(now, &a.incident, a.action.as_str(), &target, &format!("retrying: {e}"), m);
                    self.shared.with_store(|s| s.action_failed(a.seq));
                    self.shared.changed.store(true, Ordering::Relaxed);
                    self.shared.audit.sync();
                    return Err(format!("{} {target}: {e}", a.action.as_str()));
                }
            }
            self.shared.changed.store(true, Ordering::Relaxed);
            self.shared.audit.sync();
        }
        Ok(())
    }
}
