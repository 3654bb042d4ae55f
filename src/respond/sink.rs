//! The response sink: turns finding updates into decisions under the policy (block this address until
//! then, sign this account out), records them in the [`Store`] and leaves the AWS calls to the
//! [`super::worker::Worker`]. Every monitor tick it also ends the blocks whose time is up.
//!
//! Like the SNS sink, a decision reaches AWS only once the checkpoint holding it is on disk: `flush` says
//! `Delivered` after a decision, the monitor saves (with this sink's state, the `respond` field) and calls
//! `checkpointed`, which makes it visible to the worker and wakes it. With `dry_run` nothing is stored
//! and no worker runs: each decision is printed (or logged) as what would be done.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::control::{self, Request};
use super::policy::{ContainAction, Policy};
use super::shared::SharedAddresses;
use super::store::{network, BlockState, Decision, Queued, Store};
use super::worker::Shared;
use crate::correlate::{CaseRecord, CaseStatus};
use crate::finding::Finding;
use crate::pipeline::clock::Clock;
use crate::sanitize::for_terminal;
use crate::sink::{Flushed, SavedState, Sink, SinkError};
use crate::time::Timestamp;

/// The checkpoint field holding the response state.
pub const SAVED_FIELD: &str = "respond";
/// How often the sink looks for blocks whose time is up (expiry is to the second).
pub const EXPIRY_CHECK: Duration = Duration::from_secs(1);

/// Where the lines saying what is (or would be) done go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The log (the monitor).
    Log,
    /// Standard output (`authwatch respond --from`).
    Stdout,
}

pub struct RespondSink {
    policy: Arc<Policy>,
    shared: Arc<Shared>,
    guard: Arc<dyn SharedAddresses>,
    dry_run: bool,
    report: Report,
    clock: Clock,
    /// A decision was stored since the last flush: checkpoint now.
    decided: bool,
    /// `next_seq` of the store as last serialised for a checkpoint: what `checkpointed` makes visible.
    saved_seq: AtomicU64,
    last_expiry_check: Option<tokio::time::Instant>,
    /// The monitor's state directory, where operators leave requests ([`super::control`]).
    requests_dir: Option<PathBuf>,
    /// Requests were taken: forget them once checkpointed.
    taking: bool,
    /// Lines said so far (for `respond --from`'s summary and the tests).
    pub said: u64,
}

/// The response state a checkpoint holds (an empty store when none or unreadable: reported).
pub fn load_store(saved: &SavedState) -> Store {
    match saved.get(SAVED_FIELD) {
        None => Store::default(),
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|e| {
            tracing::error!(problem = %e, "response state in the checkpoint unreadable: starting with no blocks (run `authwatch respond sync` to review the IP sets)");
            Store::default()
        }),
    }
}

impl RespondSink {
    pub fn new(
        policy: Arc<Policy>,
        shared: Arc<Shared>,
        guard: Arc<dyn SharedAddresses>,
        dry_run: bool,
        report: Report,
        clock: Clock,
    ) -> RespondSink {
        // What the checkpoint held is on disk already: visible to the worker from the start.
        let seq = shared.with_store(|s| {
            s.make_visible();
            s.next_seq
        });
        RespondSink {
            policy,
            shared,
            guard,
            dry_run,
            report,
            clock,
            decided: false,
            saved_seq: AtomicU64::new(seq),
            last_expiry_check: None,
            requests_dir: None,
            taking: false,
            said: 0,
        }
    }

    /// Takes operators' requests from `dir` (the monitor's state directory) every [`EXPIRY_CHECK`].
    pub fn with_requests_from(mut self, dir: &Path) -> RespondSink {
        self.requests_dir = Some(dir.to_path_buf());
        self
    }

    /// Applies the requests operators left for the monitor.
    fn take_requests(&mut self) {
        let Some(dir) = self.requests_dir.clone() else { return };
        let requests = control::take(&dir);
        if requests.is_empty() {
            return;
        }
        for r in requests {
            self.apply_request(r);
        }
        self.taking = true;
        self.decided = true;
        self.shared.wake.notify_one();
    }

    /// One operator request: an unblock, a sync, or a finding to apply the policy to.
    pub fn apply_request(&mut self, r: Request) {
        match r {
            Request::Unblock(addr) => {
                let shown = for_terminal(&addr).into_owned();
                match self.shared.with_store(|s| s.unblock(&addr)) {
                    Ok(BlockState::Foreign) => {
                        self.say_plain(&format!("forget {shown}: the IP set entry is not authwatch's, it stays"))
                    }
                    Ok(_) => self.say_plain(&format!("unblock {shown}: asked by an operator")),
                    Err(e) => self.say_plain(&format!("cannot unblock: {}", for_terminal(&e))),
                }
            }
            Request::Sync => self.say_plain("compare the IP sets with the stored blocks: asked by an operator"),
            Request::Finding(v) => match super::finding_from_json(&v) {
                Ok(f) => self.decide(&f),
                Err(e) => tracing::warn!(problem = %for_terminal(&e), "operator's finding unreadable: skipped"),
            },
        }
    }

    fn say(&mut self, line: &str) {
        self.said += 1;
        match (self.report, self.dry_run) {
            (Report::Stdout, true) => println!("dry run: would {line}"),
            (Report::Stdout, false) => println!("{line}"),
            // The monitor's dry run is for reading: on standard error at any log level, like the status line.
            (Report::Log, true) => eprintln!("authwatch: dry run: would {line}"),
            (Report::Log, false) => tracing::info!("active response: {line}"),
        }
    }

    /// The policy applied to one finding update.
    pub fn decide(&mut self, f: &Finding) {
        if !self.policy.enabled {
            return;
        }
        let now = self.clock.wall().0;
        if self.policy.blocks(f) {
            self.decide_block(f, now);
        }
        let actions = self.policy.contains(f).to_vec();
        for action in actions {
            self.decide_contain(f, action, now);
        }
    }

    /// The policy applied to one case update: with `block.min_case_severity`, a case opening or escalating
    /// at that severity blocks each address it lists that is not shared, as a finding of rule `case` would
    /// (allow-lists, the shared-address limit and "once per case and address" apply the same).
    pub fn decide_case(&mut self, c: &CaseRecord) {
        let Some(min) = self.policy.block.as_ref().and_then(|b| b.min_case_severity) else { return };
        if !self.policy.enabled || c.severity < min || !matches!(c.status, CaseStatus::Open | CaseStatus::Escalated) {
            return;
        }
        let now = self.clock.wall().0;
        for a in c.addresses.iter().filter(|a| !a.shared) {
            let f = Finding {
                detector: "case",
                severity: c.severity,
                user: None,
                user_sub: None,
                ip: Some(a.ip.clone()),
                user_pool_id: c.user_pool_ids.first().cloned(),
                region: None,
                account: None,
                first_seen: c.first_seen,
                last_seen: c.last_seen,
                detected_at: c.updated_at,
                count: 0,
                summary: c.story.clone(),
                evidence: serde_json::Value::Null,
                incident_id: c.case_id.clone(),
                rule: "case".into(),
                case_id: Some(c.case_id.clone()),
                status: crate::finding::Status::Open,
            };
            self.decide_block(&f, now);
        }
    }

    fn decide_block(&mut self, f: &Finding, now: i64) {
        let (Some(block), Some(waf)) = (self.policy.block.clone(), self.policy.waf.clone()) else { return };
        let case = super::store::case_of(f).to_string();
        // Shown on a terminal: replayed findings (`--from`) are input like any other.
        let shown_case = for_terminal(&case).into_owned();
        let Some(ip) = f.ip.as_deref() else { return };
        let Some(net) = network(ip, block.ipv6_prefix) else {
            tracing::warn!(ip = %for_terminal(ip), incident = %case, "finding's address is not an address: not blocked");
            return;
        };
        let shown = for_terminal(ip).into_owned();
        let spared = if block.allow_cidrs.iter().any(|c| c.contains(&net.addr())) {
            Some("the address is in block.allow_cidrs".to_string())
        } else if [f.user.as_deref(), f.user_sub.as_deref()]
            .into_iter()
            .flatten()
            .any(|u| block.allow_users.iter().any(|a| a == u))
        {
            Some("the user is in block.allow_users".to_string())
        } else {
            let users = ip.parse::<IpAddr>().map_or(0, |a| self.guard.successful_users(a));
            (users > block.max_shared_users).then(|| {
                format!("{users} distinct users signed in from it in the last day (over block.max_shared_users = {}): a shared address", block.max_shared_users)
            })
        };
        if let Some(why) = spared {
            self.shared.metrics.blocks_spared.fetch_add(1, Ordering::Relaxed);
            if !self.shared.with_store(|s| s.acted_on(&case, "spare")) {
                self.shared.with_store(|s| s.acted.insert(format!("{case}:spare"), now));
                self.say_plain(&format!("not block {shown} ({}, incident {shown_case}): {why}", f.rule));
            }
            return;
        }
        if waf.set(net.addr().is_ipv6()).is_none() {
            tracing::warn!(address = %net, incident = %case, "no IP set for this address family in [waf]: not blocked");
            return;
        }
        let decision = self.shared.with_store(|s| s.block(net, f, &block, waf.max_addresses, now));
        let line = match decision {
            Decision::AlreadyActed => return,
            Decision::Added { addr, expires_ms, evicted } => {
                let mut line = format!(
                    "block {addr} until {} ({}, {}, incident {shown_case})",
                    Timestamp(expires_ms),
                    f.rule,
                    f.severity
                );
                if let Some(e) = evicted {
                    line.push_str(&format!("; the set is full: {e} gives way"));
                    self.shared.metrics.blocks_overflow.fetch_add(1, Ordering::Relaxed);
                    let result = "given up: set full, for a block that ranks higher";
                    self.shared.audit.write(self.clock.wall(), &case, "evict", &e, result, &self.shared.metrics);
                }
                line
            }
            Decision::Extended { addr, expires_ms } => {
                format!("extend the block of {addr} to {} ({}, incident {shown_case})", Timestamp(expires_ms), f.rule)
            }
            Decision::Overflow { addr } => {
                self.shared.metrics.blocks_overflow.fetch_add(1, Ordering::Relaxed);
                let line = format!(
                    "not block {addr} ({}, incident {shown_case}): the IP set is full of blocks that rank higher",
                    f.rule
                );
                self.shared.audit.write(
                    self.clock.wall(),
                    &case,
                    "block",
                    &addr,
                    "overflow: set full",
                    &self.shared.metrics,
                );
                line
            }
        };
        self.decided = true;
        self.say(&line);
    }

    fn say_plain(&mut self, line: &str) {
        self.said += 1;
        match (self.report, self.dry_run) {
            (Report::Stdout, _) => println!("{line}"),
            (Report::Log, true) => eprintln!("authwatch: dry run: {line}"),
            (Report::Log, false) => tracing::info!("active response: {line}"),
        }
    }

    fn decide_contain(&mut self, f: &Finding, action: ContainAction, now: i64) {
        let case = super::store::case_of(f).to_string();
        // Shown on a terminal: replayed findings (`--from`) are input like any other.
        let shown_case = for_terminal(&case).into_owned();
        let (Some(user), Some(pool)) = (f.user.clone().or_else(|| f.user_sub.clone()), f.user_pool_id.clone()) else {
            tracing::warn!(incident = %case, action = action.as_str(), "finding names no user or no user pool: account not contained");
            return;
        };
        let target = for_terminal(&format!("{pool}/{user}")).into_owned();
        match self.shared.with_store(|s| s.queue_action(f, action, &user, &pool, now)) {
            Queued::AlreadyActed => {}
            Queued::Queued => {
                self.decided = true;
                self.say(&format!("{} {target} ({}, incident {shown_case})", action.as_str(), f.rule));
            }
            Queued::Full => {
                self.shared.metrics.contain_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(incident = %case, action = action.as_str(), "containment queue full (Cognito unreachable for long): action not queued");
                self.shared.audit.write(
                    self.clock.wall(),
                    &case,
                    action.as_str(),
                    &target,
                    "failed: queue full",
                    &self.shared.metrics,
                );
            }
        }
    }

    /// Ends the blocks whose time is up (at most once per [`EXPIRY_CHECK`]). True when some did.
    fn expire_due(&mut self) -> bool {
        let now = self.clock.now();
        if self.last_expiry_check.is_some_and(|t| now - t < EXPIRY_CHECK) {
            return false;
        }
        self.last_expiry_check = Some(now);
        let wall = self.clock.wall().0;
        let expired = self.shared.with_store(|s| s.expire(wall));
        for a in &expired {
            self.say(&format!("unblock {a}: its block expired"));
        }
        !expired.is_empty()
    }

    /// Whether the store is a dry run's (nothing is kept).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }
}

impl Sink for RespondSink {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        self.decide(f);
        Ok(())
    }

    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        self.decide_case(c);
        Ok(())
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        let due = self.last_expiry_check.is_none_or(|t| self.clock.now() - t >= EXPIRY_CHECK);
        if due {
            self.take_requests();
        }
        let expired = self.expire_due();
        if self.dry_run {
            self.decided = false;
            return Ok(Flushed::Nothing);
        }
        if expired {
            self.shared.wake.notify_one();
        }
        let want = self.shared.want_checkpoint.swap(false, Ordering::Relaxed);
        let decided = std::mem::take(&mut self.decided);
        let changed = self.shared.changed.swap(false, Ordering::Relaxed) || expired;
        Ok(if want || decided {
            Flushed::Delivered
        } else if changed {
            Flushed::Changed
        } else {
            Flushed::Nothing
        })
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn saved_state(&self) -> Option<SavedState> {
        if self.dry_run {
            return None;
        }
        let value = self.shared.with_store(|s| {
            self.saved_seq.store(s.next_seq, Ordering::Relaxed);
            serde_json::to_value(&*s)
        });
        let mut map = SavedState::new();
        map.insert(SAVED_FIELD.to_string(), value.ok()?);
        Some(map)
    }

    fn checkpointed(&mut self) {
        if std::mem::take(&mut self.taking) {
            if let Some(dir) = &self.requests_dir {
                control::finish_taking(dir);
            }
        }
        let seq = self.saved_seq.load(Ordering::Relaxed);
        let woke = self.shared.with_store(|s| {
            let newer = seq > s.visible_upto;
            s.visible_upto = s.visible_upto.max(seq);
            newer
        });
        if woke {
            self.shared.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::respond::audit::{AuditLog, RespondMetrics};
    use crate::respond::store::tests::finding;
    use crate::respond::worker::Worker;
    use crate::spec::SpecSet;

    const T0: i64 = 1_700_000_000_000;
    const POLICY: &str = r#"
enabled = true
[waf]
ipv4_set = { name = "v4", id = "id4" }
[block]
rules = ["failed_login_burst_ip"]
duration = "1h"
max_shared_users = 10
"#;

    /// A guard that says every address is shared by `n` users.
    struct SharedBy(usize);
    impl SharedAddresses for SharedBy {
        fn successful_users(&self, _: IpAddr) -> usize {
            self.0
        }
    }

    fn sink(shared_users: usize, clock: Clock) -> (RespondSink, Arc<Shared>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::parse(POLICY, Path::new("p.toml"), &SpecSet::builtin()).unwrap();
        let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let shared = Shared::new(Store::default(), audit, Arc::new(RespondMetrics::default()));
        let s = RespondSink::new(
            Arc::new(policy),
            shared.clone(),
            Arc::new(SharedBy(shared_users)),
            false,
            Report::Log,
            clock,
        );
        (s, shared, dir)
    }

    fn checkpoint(s: &mut RespondSink) {
        assert!(s.saved_state().unwrap().contains_key(SAVED_FIELD));
        s.checkpointed();
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_waits_for_the_checkpoint_and_expires_on_the_clock() {
        let (mut s, shared, _dir) = sink(0, Clock::manual(Timestamp(T0)));
        s.emit(&finding("failed_login_burst_ip", "i1", "203.0.113.7", crate::finding::Severity::High)).unwrap();
        assert_eq!(s.flush().unwrap(), Flushed::Delivered, "a decision asks for a checkpoint now");
        assert!(shared.with_store(|st| st.visible_upto < st.next_seq), "not visible before the checkpoint");
        checkpoint(&mut s);
        assert!(shared.with_store(|st| st.visible_upto == st.next_seq));
        // Written by the worker (as far as this test goes).
        shared.with_store(|st| st.blocks.values_mut().for_each(|b| b.state = BlockState::Active));
        tokio::time::advance(Duration::from_secs(3600) - EXPIRY_CHECK).await;
        assert_eq!(s.flush().unwrap(), Flushed::Nothing, "not yet");
        tokio::time::advance(EXPIRY_CHECK).await;
        assert_eq!(
            s.flush().unwrap(),
            Flushed::Changed,
            "expired: the worker removes it, the next checkpoint records it"
        );
        assert_eq!(shared.with_store(|st| st.blocks["203.0.113.7/32"].state), BlockState::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn a_case_at_the_policys_severity_blocks_its_unshared_addresses_once() {
        let dir = tempfile::tempdir().unwrap();
        let text = POLICY.replace("max_shared_users = 10", "max_shared_users = 10\nmin_case_severity = \"critical\"");
        let policy = Policy::parse(&text, Path::new("p.toml"), &SpecSet::builtin()).unwrap();
        let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let shared = Shared::new(Store::default(), audit, Arc::new(RespondMetrics::default()));
        let clock = Clock::manual(Timestamp(T0));
        let mut s =
            RespondSink::new(Arc::new(policy), shared.clone(), Arc::new(SharedBy(0)), false, Report::Log, clock);
        let address = |ip: &str, shared: bool| crate::correlate::case::CaseAddress {
            ip: ip.into(),
            successful_users: if shared { 40 } else { 0 },
            shared,
        };
        let mut c = CaseRecord {
            user_pool_ids: vec!["us-east-1_TEST".into()],
            addresses: vec![address("203.0.113.7", false), address("198.51.100.1", true)],
            addresses_count: 2,
            ..CaseRecord::example("c1", CaseStatus::Open, crate::finding::Severity::High, Timestamp(T0), Timestamp(T0))
        };
        s.case(&c).unwrap();
        assert!(shared.with_store(|st| st.blocks.is_empty()), "high is below the policy's critical");
        c.status = CaseStatus::Escalated;
        c.severity = crate::finding::Severity::Critical;
        s.case(&c).unwrap();
        s.case(&c).unwrap();
        let blocked: Vec<String> = shared.with_store(|st| st.blocks.keys().cloned().collect());
        assert_eq!(blocked, ["203.0.113.7/32"], "the NAT the case lists is spared; once per case and address");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_address_is_never_blocked() {
        let (mut s, shared, _dir) = sink(11, Clock::manual(Timestamp(T0)));
        s.emit(&finding("failed_login_burst_ip", "i1", "198.51.100.50", crate::finding::Severity::Critical)).unwrap();
        assert_eq!(s.flush().unwrap(), Flushed::Nothing);
        assert!(shared.with_store(|st| st.blocks.is_empty()));
        assert_eq!(shared.metrics.blocks_spared.load(Ordering::Relaxed), 1);
        // Ten is not more than ten: blocked.
        let (mut s, shared, _dir) = sink(10, Clock::manual(Timestamp(T0)));
        s.emit(&finding("failed_login_burst_ip", "i1", "198.51.100.50", crate::finding::Severity::High)).unwrap();
        assert_eq!(shared.with_store(|st| st.blocks.len()), 1);
        // Below the policy's minimum severity: nothing.
        s.emit(&finding("failed_login_burst_ip", "i2", "198.51.100.51", crate::finding::Severity::Medium)).unwrap();
        assert_eq!(shared.with_store(|st| st.blocks.len()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_worker_asks_for_a_checkpoint_and_writes_no_sooner_than_the_interval() {
        let clock = Clock::manual(Timestamp(T0));
        let (mut s, shared, _dir) = sink(0, clock);
        let worker = Worker {
            shared: shared.clone(),
            waf: None,
            cognito: None,
            limit: 10,
            batch: Duration::from_secs(3),
            write_interval: Duration::from_secs(1),
            clock,
            last_write: Some(clock.now()),
            saver: None,
        };
        let started = clock.now();
        worker.pace().await;
        assert_eq!(clock.now() - started, Duration::from_secs(1), "one write a second at most");
        let mark = shared.with_store(|st| {
            st.next_seq += 1;
            st.next_seq
        });
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let wait = worker.wait_checkpointed(mark, &stop);
        let monitor = async {
            // The monitor's tick: the sink's flush says "checkpoint now" once the worker asked.
            loop {
                tokio::time::sleep(crate::monitor::TICK).await;
                if s.flush().unwrap() == Flushed::Delivered {
                    checkpoint(&mut s);
                    return;
                }
            }
        };
        let (waited, ()) = tokio::join!(wait, monitor);
        assert_eq!(waited, Ok(()));
    }
}
