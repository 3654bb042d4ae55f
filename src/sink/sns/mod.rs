//! Cases as SNS notifications (`--sns-topic-arn`, `aws-formats.md` §7): one when a case opens and one
//! per escalation, gathered into a digest a minute under an alert storm (with cases off, the same per
//! incident opening and escalation).
//!
//! The sink decides *what* to notify and appends it to the [`Spool`]; the [`Publisher`] task sends the
//! entries the monitor's checkpoint already holds, in order. So a notification is on disk before SNS can
//! see it: [`Sink::flush`] says `Delivered` when something was spooled, the monitor saves the checkpoint
//! (with this sink's [`SavedState`]: the spool, the next sequence number, the digest) and calls
//! [`Sink::checkpointed`], which makes the new entries visible to the publisher.

pub mod message;
pub mod publisher;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Flushed, SavedState, Sink, SinkError};
use crate::correlate::{CaseRecord, CaseStatus};
use crate::finding::{Finding, Status};
use crate::pipeline::clock::Clock;
use crate::pipeline::metrics::Metrics;
use crate::time::Timestamp;
pub use message::{case_digest_item, digest_item, render, render_case, render_digest, DigestItem, Notification};
pub use publisher::{DeliveredMark, Publisher, Spool};

/// Most notifications kept in the spool while SNS is unreachable. At the cap new notifications are
/// dropped, counted (`authwatch_notifications_dropped_total`) and logged at ERROR; those already spooled
/// keep their order. About 10,000 × a few KB: the checkpoint stays in the tens of megabytes.
pub const MAX_SPOOLED: usize = 10_000;
/// Findings gathered for one digest at most; beyond it they are only counted in the digest.
pub const MAX_DIGEST_ITEMS: usize = 1_000;
/// Notification window of the alert-storm limit.
pub const STORM_WINDOW: Duration = Duration::from_secs(60);

/// Whether the topic is FIFO (its ARN ends with `.fifo`).
pub fn is_fifo(topic_arn: &str) -> bool {
    topic_arn.ends_with(".fifo")
}

/// What the sink keeps in the checkpoint. The field names are those of the checkpoints written before the
/// sink had a state of its own, so those are read as they are.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Saved {
    /// Notifications not yet known to be delivered, in order.
    spool: VecDeque<Notification>,
    next_seq: u64,
    /// Findings held for the next digest (alert-storm protection): their one-line summaries.
    digest: Vec<DigestItem>,
    /// Findings beyond the digest's item cap, only counted in it.
    digest_overflow: u64,
}

impl Saved {
    /// Applies the `delivered` mark: spooled notifications up to it are gone, and the next sequence
    /// number is past it. The checkpoint may be older than the mark (a fallback to `state.prev.json`, or
    /// a kill between a publish and the next save); reusing a delivered number would make the publisher's
    /// bookkeeping, and the next start's `seq > delivered` filter, drop a new notification.
    fn apply_delivered(&mut self, delivered: u64) {
        self.spool.retain(|n| n.seq > delivered);
        self.next_seq = self.next_seq.max(delivered);
    }
}

/// The borrowed form of [`Saved`], serialised at each checkpoint without copying the digest.
#[derive(Serialize)]
struct SavedRef<'a> {
    spool: &'a VecDeque<Notification>,
    next_seq: u64,
    digest: &'a [DigestItem],
    digest_overflow: u64,
}

/// Where and how fast to notify.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    pub topic_arn: String,
    /// Individual notifications per [`STORM_WINDOW`]; beyond it updates wait for the window's digest.
    pub max_per_window: u32,
    /// Time the publisher gets at shutdown to empty the spool.
    pub drain: Duration,
    /// Notify case updates (openings and escalations) instead of each finding's: correlation is on.
    pub per_case: bool,
}

/// The notification policy: spool, storm limit and digest.
pub struct SnsSink {
    /// Shared with the publisher, which pops what it delivered.
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    fifo: bool,
    per_case: bool,
    max_per_window: u32,
    next_seq: u64,
    digest: Vec<DigestItem>,
    digest_overflow: u64,
    storm_started: Instant,
    storm_sent: u32,
    /// Spooled since the last flush.
    spooled: bool,
    /// The saved state changed since the last flush.
    changed: bool,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl SnsSink {
    /// The sink, from the state a previous run saved (`saved`: that state, and the last sequence number
    /// SNS accepted), and the publisher the caller runs as a task.
    pub fn new(
        settings: SnsSettings,
        client: aws_sdk_sns::Client,
        (saved, delivered): (&SavedState, u64),
        mark: Arc<dyn DeliveredMark>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> (SnsSink, Publisher) {
        let mut state = match serde_json::from_value::<Saved>(serde_json::Value::Object(saved.clone())) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(problem = %e, "notification state in the checkpoint unreadable: starting with an empty spool");
                Saved::default()
            }
        };
        state.apply_delivered(delivered);
        metrics.spooled.store(state.spool.len() as i64, Ordering::Relaxed);
        let spool = Arc::new(Mutex::new(Spool { entries: state.spool, visible_upto: state.next_seq }));
        let wake = Arc::new(Notify::new());
        let publisher = Publisher {
            client,
            topic_arn: settings.topic_arn.clone(),
            spool: spool.clone(),
            wake: wake.clone(),
            delivered: mark,
            metrics: metrics.clone(),
            drain: settings.drain,
            clock,
        };
        let sink = SnsSink {
            spool,
            wake,
            fifo: is_fifo(&settings.topic_arn),
            per_case: settings.per_case,
            max_per_window: settings.max_per_window,
            next_seq: state.next_seq,
            digest: state.digest,
            digest_overflow: state.digest_overflow,
            storm_started: clock.now(),
            storm_sent: 0,
            spooled: false,
            changed: false,
            metrics,
            clock,
        };
        (sink, publisher)
    }

    /// Appends a notification to the spool unless it is full (SNS unreachable for long): then it is
    /// dropped, counted and logged at ERROR. True when spooled.
    fn spool_push(&self, n: Notification) -> bool {
        let Ok(mut s) = self.spool.lock() else { return false };
        let subject = n.subject.clone();
        if !push_capped(&mut s.entries, n, MAX_SPOOLED) {
            let dropped = self.metrics.notifications_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(spooled = s.entries.len(), dropped, subject = %subject,
                    "notification spool full (SNS unreachable for long): notification dropped; the findings output still has every closed incident");
            }
            return false;
        }
        self.metrics.notifications_created.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Spools a notification while the storm window has room, else holds its digest line.
    fn notify(&mut self, render: impl FnOnce(u64, Timestamp) -> Notification, item: impl FnOnce() -> DigestItem) {
        self.changed = true;
        if self.storm_sent < self.max_per_window {
            self.storm_sent += 1;
            if self.spool_push(render(self.next_seq + 1, self.clock.wall())) {
                self.next_seq += 1;
                self.spooled = true;
            }
        } else if self.digest.len() < MAX_DIGEST_ITEMS {
            self.digest.push(item());
        } else {
            self.digest_overflow += 1;
        }
    }

    /// At the end of each storm window, held-back updates leave as one digest notification. True when
    /// one was spooled.
    fn flush_digest_if_due(&mut self) -> bool {
        let now = self.clock.now();
        if now - self.storm_started < STORM_WINDOW {
            return false;
        }
        self.storm_started = now;
        self.storm_sent = 0;
        if self.digest.is_empty() {
            return false;
        }
        let n = render_digest(&self.digest, self.digest_overflow, self.next_seq + 1, self.fifo, self.clock.wall());
        self.digest.clear();
        self.digest_overflow = 0;
        self.changed = true;
        if !self.spool_push(n) {
            return false;
        }
        self.next_seq += 1;
        self.metrics.digests.fetch_add(1, Ordering::Relaxed);
        true
    }
}

impl Sink for SnsSink {
    /// Openings and escalations of incidents, when cases are off: notified while the storm window has
    /// room, held for its digest after.
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        if self.per_case || f.status == Status::Closed {
            return Ok(());
        }
        let fifo = self.fifo;
        self.notify(|seq, created| render(f, seq, fifo, created), || digest_item(f));
        Ok(())
    }

    /// Openings and escalations of cases: one page per attack, again only when it escalates. Findings that
    /// join a case silently are in its next update.
    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        if !self.per_case || !matches!(c.status, CaseStatus::Open | CaseStatus::Escalated) {
            return Ok(());
        }
        let fifo = self.fifo;
        self.notify(|seq, created| render_case(c, seq, fifo, created), || case_digest_item(c));
        Ok(())
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        let digest = self.flush_digest_if_due();
        let spooled = std::mem::take(&mut self.spooled) || digest;
        let changed = std::mem::take(&mut self.changed);
        Ok(if spooled {
            Flushed::Delivered
        } else if changed {
            Flushed::Changed
        } else {
            Flushed::Nothing
        })
    }

    /// Nothing to let go of: the publisher is stopped by its owner, and what it could not send stays in
    /// the spool, saved with the checkpoint.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn saved_state(&self) -> Option<SavedState> {
        let spool = self.spool.lock().ok()?;
        let saved = SavedRef {
            spool: &spool.entries,
            next_seq: self.next_seq,
            digest: &self.digest,
            digest_overflow: self.digest_overflow,
        };
        match serde_json::to_value(saved) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    /// Notifications become visible to the publisher only once the checkpoint holding them is on disk.
    fn checkpointed(&mut self) {
        if let Ok(mut s) = self.spool.lock() {
            s.visible_upto = self.next_seq;
            self.metrics.spooled.store(s.entries.len() as i64, Ordering::Relaxed);
        }
        self.wake.notify_one();
    }
}

/// Appends to the spool unless it holds `cap` entries already; the oldest are never displaced, so delivery
/// stays oldest first. False when full.
fn push_capped(entries: &mut VecDeque<Notification>, n: Notification, cap: usize) -> bool {
    if entries.len() >= cap {
        return false;
    }
    entries.push_back(n);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(seq: u64) -> Notification {
        Notification {
            seq,
            subject: format!("n{seq}"),
            message: String::new(),
            detector: String::new(),
            severity: String::new(),
            group_id: String::new(),
            dedup_id: String::new(),
            detected_at_ms: 0,
            created_ms: 0,
            case_id: String::new(),
        }
    }

    #[test]
    fn the_spool_is_capped_and_keeps_its_oldest_first() {
        let mut q = VecDeque::new();
        for seq in 1..=3 {
            assert!(push_capped(&mut q, note(seq), 3));
        }
        assert!(!push_capped(&mut q, note(4), 3));
        assert_eq!(q.iter().map(|n| n.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn an_older_checkpoint_never_reuses_a_delivered_sequence_number() {
        // state.prev.json: notifications 4 and 5 spooled, next_seq 5; SNS has since accepted up to 7.
        let mut s = Saved { next_seq: 5, spool: [note(4), note(5)].into(), ..Saved::default() };
        s.apply_delivered(7);
        assert!(s.spool.is_empty());
        assert_eq!(s.next_seq, 7, "the next notification must be numbered 8");
        // A newer checkpoint keeps its undelivered entries and its sequence.
        let mut s = Saved { next_seq: 9, spool: [note(8), note(9)].into(), ..Saved::default() };
        s.apply_delivered(7);
        assert_eq!((s.spool.len(), s.next_seq), (2, 9));
    }

    struct NoMark;
    impl DeliveredMark for NoMark {
        fn save_delivered(&self, _: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            Ok(())
        }
    }

    fn opening(id: &str) -> Finding {
        Finding {
            detector: "failed_login_burst",
            severity: crate::finding::Severity::High,
            user: Some("victim".into()),
            user_sub: None,
            ip: None,
            user_pool_id: None,
            region: None,
            account: None,
            first_seen: crate::time::Timestamp(0),
            last_seen: crate::time::Timestamp(0),
            detected_at: crate::time::Timestamp(0),
            count: 5,
            summary: "5 failed sign-ins".into(),
            evidence: serde_json::json!({}),
            incident_id: id.into(),
            case_id: None,
            rule: "failed_login_burst_user".into(),
            status: Status::Open,
        }
    }

    /// A sink allowing `per_window` notifications, on `clock`, with no publisher running.
    fn sink(per_window: u32, clock: Clock) -> SnsSink {
        let conf = aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .build();
        let settings = SnsSettings {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
            max_per_window: per_window,
            drain: Duration::ZERO,
            per_case: false,
        };
        let saved = (&SavedState::new(), 0);
        SnsSink::new(settings, aws_sdk_sns::Client::from_conf(conf), saved, Arc::new(NoMark), Metrics::new(), clock).0
    }

    fn subjects(s: &SnsSink) -> Vec<String> {
        s.spool.lock().unwrap().entries.iter().map(|n| n.subject.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_alert_storm_leaves_as_one_digest_at_the_end_of_the_window() {
        let clock = Clock::manual(crate::time::Timestamp(1_700_000_000_000));
        let mut s = sink(2, clock);
        for id in ["a", "b", "c", "d"] {
            s.emit(&opening(id)).unwrap();
        }
        assert_eq!(s.flush().unwrap(), Flushed::Delivered, "two notified at once");
        assert_eq!(subjects(&s).len(), 2);
        tokio::time::advance(STORM_WINDOW - Duration::from_millis(1)).await;
        assert_eq!(s.flush().unwrap(), Flushed::Nothing, "the digest waits for the end of the window");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(s.flush().unwrap(), Flushed::Delivered);
        let spooled = s.spool.lock().unwrap().entries.clone();
        assert_eq!(spooled.len(), 3);
        assert!(spooled[2].subject.contains("DIGEST: 2"), "{}", spooled[2].subject);
        for held in ["failed_login_burst c: ", "failed_login_burst d: "] {
            assert!(spooled[2].message.contains(held), "{}", spooled[2].message);
        }
        // Stamped with the clock's wall time, a window later.
        assert_eq!(spooled[2].created_ms, 1_700_000_000_000 + STORM_WINDOW.as_millis() as i64);
        // A new window: notified one by one again, and nothing left for a digest.
        s.emit(&opening("e")).unwrap();
        assert_eq!(s.flush().unwrap(), Flushed::Delivered);
        assert_eq!(subjects(&s).len(), 4);
        tokio::time::advance(STORM_WINDOW).await;
        assert_eq!(s.flush().unwrap(), Flushed::Nothing, "an empty digest is not sent");
    }

    #[tokio::test(start_paused = true)]
    async fn notifications_become_visible_to_the_publisher_only_once_checkpointed() {
        let mut s = sink(10, Clock::manual(crate::time::Timestamp(0)));
        s.emit(&opening("a")).unwrap();
        s.emit(&Finding { status: Status::Closed, ..opening("a") }).unwrap();
        assert_eq!(s.flush().unwrap(), Flushed::Delivered);
        assert_eq!(s.spool.lock().unwrap().visible_upto, 0);
        s.checkpointed();
        assert_eq!(s.spool.lock().unwrap().visible_upto, 1, "one notification: a closed update is not notified");
        let saved = s.saved_state().unwrap();
        assert_eq!(saved["next_seq"], 1);
        assert_eq!(saved["spool"][0]["seq"], 1);
    }

    #[test]
    fn the_saved_state_reads_the_fields_of_a_checkpoint_from_before_the_sink_had_its_own() {
        let old = serde_json::json!({
            "watermark_ms": 5, "spool": [note(3)], "next_seq": 3, "ledger": {},
            "digest": [{"line": "l", "detected_at_ms": 1, "json": "{}"}],
        });
        let saved: Saved = serde_json::from_value(old).unwrap();
        assert_eq!((saved.spool.len(), saved.next_seq, saved.digest.len(), saved.digest_overflow), (1, 3, 1, 0));
        let back = SavedRef { spool: &saved.spool, next_seq: 3, digest: &saved.digest, digest_overflow: 0 };
        let v = serde_json::to_value(back).unwrap();
        assert_eq!(v["spool"][0]["seq"], 3);
        assert_eq!(v["digest"][0]["line"], "l");
    }
}
