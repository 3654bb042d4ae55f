//! Findings as SNS notifications (`--sns-topic-arn`, `aws-formats.md` §7): rendering, and the publisher
//! task that drains the on-disk spool in order.
//!
//! The monitor decides *what* to notify (one per incident opening, one per escalation, digests under an
//! alert storm) and puts it in the [`Spool`] after checkpointing it; the publisher sends the visible
//! entries one at a time, in order, retrying with back-off for as long as SNS fails. After each accepted
//! publish it writes the `delivered` mark, so a restart neither loses nor repeats a notification (the only
//! window for a repeat is a kill between SNS accepting and that fsync; FIFO topics dedupe even that).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use tokio::sync::{watch, Notify};

use crate::finding::{Finding, Status};
use crate::monitor::metrics::Metrics;
use crate::monitor::state::{DigestItem, Notification, StateDir};
use crate::sanitize;
use crate::source::Backoff;
use crate::time::Timestamp;

/// SNS subjects must be under 100 characters.
pub const MAX_SUBJECT: usize = 99;
/// SNS messages are at most 256 KiB; stay below with room for the framing.
pub const MAX_MESSAGE_BYTES: usize = 250_000;
/// Findings listed one per line in a digest; the rest are counted.
pub const DIGEST_LINES: usize = 100;
/// The message group of FIFO topics: one group keeps every notification in order.
pub const FIFO_GROUP: &str = "authwatch";
const RETRY_BASE_MS: u64 = 250;
const RETRY_CAP_MS: u64 = 60_000;

/// Notifications checkpointed and waiting for SNS. Shared by the monitor loop (which appends, then
/// raises `visible_upto` once the checkpoint holding them is on disk) and the publisher (which pops).
#[derive(Debug, Default)]
pub struct Spool {
    pub entries: VecDeque<Notification>,
    pub visible_upto: u64,
}

/// The ledger key of a finding update: notified or written once per incident, status and severity.
pub fn ledger_key(f: &Finding) -> String {
    match f.status {
        Status::Open => format!("{}:open", f.incident_id),
        Status::Escalated => format!("{}:escalated:{}", f.incident_id, f.severity),
        Status::Closed => format!("{}:closed", f.incident_id),
    }
}

fn status_id(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Escalated => "escalated",
        Status::Closed => "closed",
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Open => "NEW",
        Status::Escalated => "ESCALATED",
        Status::Closed => "CLOSED",
    }
}

/// The notification for one finding: subject, readable summary, then the finding JSON.
pub fn render(f: &Finding, seq: u64, fifo: bool) -> Notification {
    let who = f.user.as_deref().or(f.ip.as_deref()).unwrap_or("-");
    let subject = sanitize::for_subject(
        &format!("[authwatch] {} {} {}: {}", status_word(f.status), f.severity, f.detector, who),
        MAX_SUBJECT,
    );
    let json = sanitize::json_line(f.to_json_line());
    let mut message = format!(
        "{}\n\nDetector: {} (rule {})\nSeverity: {}\nStatus: {}\nUser: {}\nIP: {}\nUser pool: {}\nFirst seen: {}\nDetected at: {}\nEvents: {}\nIncident: {}\n\n",
        sanitize::for_terminal(&f.summary),
        f.detector,
        f.rule,
        f.severity,
        status_id(f.status),
        sanitize::for_terminal(f.user.as_deref().unwrap_or("-")),
        f.ip.as_deref().unwrap_or("-"),
        sanitize::for_terminal(f.user_pool_id.as_deref().unwrap_or("-")),
        f.first_seen,
        f.detected_at,
        f.count,
        f.incident_id,
    );
    if message.len() + json.len() <= MAX_MESSAGE_BYTES {
        message.push_str(&json);
    } else {
        message.push_str("(finding JSON too large for SNS; see the findings output)");
    }
    Notification {
        seq,
        subject,
        message,
        detector: f.detector.to_string(),
        severity: f.severity.to_string(),
        group_id: FIFO_GROUP.to_string(),
        dedup_id: if fifo {
            format!("{}-{}-{}", f.incident_id, status_id(f.status), f.severity)
        } else {
            String::new()
        },
        detected_at_ms: f.detected_at.0,
        created_ms: Timestamp::now().0,
    }
}

/// A digest line for a finding held back during an alert storm.
pub fn digest_item(f: &Finding) -> DigestItem {
    DigestItem {
        line: format!(
            "{} {} {} {}: {}",
            status_word(f.status),
            f.severity,
            f.detector,
            f.incident_id,
            sanitize::for_terminal(&f.summary)
        ),
        detected_at_ms: f.detected_at.0,
        json: sanitize::json_line(f.to_json_line()),
    }
}

/// One notification for many held-back findings.
/// `overflow` counts further updates beyond the digest's item cap, named only by their number.
pub fn render_digest(items: &[DigestItem], overflow: u64, seq: u64, fifo: bool) -> Notification {
    let total = items.len() as u64 + overflow;
    let subject = sanitize::for_subject(&format!("[authwatch] DIGEST: {total} incident updates"), MAX_SUBJECT);
    let mut message =
        format!("{total} incident updates arrived faster than the notification limit; they are summarised here.\n\n");
    for it in items.iter().take(DIGEST_LINES) {
        message.push_str(&it.line);
        message.push('\n');
    }
    if total > DIGEST_LINES as u64 {
        message.push_str(&format!(
            "... and {} more (see the findings output)\n",
            total - DIGEST_LINES.min(items.len()) as u64
        ));
    }
    message.push('\n');
    for it in items {
        if message.len() + it.json.len() + 1 > MAX_MESSAGE_BYTES {
            message.push_str("(further finding JSON omitted: see the findings output)\n");
            break;
        }
        message.push_str(&it.json);
        message.push('\n');
    }
    let worst = items.iter().map(|i| i.line.split(' ').nth(1).unwrap_or("low")).max_by_key(|s| severity_rank(s));
    let first = items.iter().map(|i| i.detected_at_ms).min().unwrap_or(0);
    Notification {
        seq,
        subject,
        message,
        detector: "digest".to_string(),
        severity: worst.unwrap_or("low").to_string(),
        group_id: FIFO_GROUP.to_string(),
        dedup_id: if fifo { format!("digest-{seq}-{first}") } else { String::new() },
        detected_at_ms: first,
        created_ms: Timestamp::now().0,
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

/// Whether the topic is FIFO (its ARN ends with `.fifo`).
pub fn is_fifo(topic_arn: &str) -> bool {
    topic_arn.ends_with(".fifo")
}

/// The publisher task. Runs until `stop` is set and the visible spool is empty, or until `stop` is set and
/// `drain` has passed since (what is left stays spooled on disk for the next start).
pub struct Publisher {
    pub client: Client,
    pub topic_arn: String,
    pub spool: Arc<Mutex<Spool>>,
    pub wake: Arc<Notify>,
    pub state: StateDir,
    pub metrics: Arc<Metrics>,
    pub drain: Duration,
}

impl Publisher {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(RETRY_BASE_MS, RETRY_CAP_MS);
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() && stop_deadline.is_none() {
                stop_deadline = Some(tokio::time::Instant::now() + self.drain);
            }
            let next =
                self.spool.lock().ok().and_then(|s| s.entries.front().filter(|n| n.seq <= s.visible_upto).cloned());
            let Some(n) = next else {
                if stop_deadline.is_some() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            match self.publish(&n).await {
                Ok(()) => {
                    backoff.reset();
                    if let Err(e) = self.state.save_delivered(n.seq) {
                        tracing::error!(error = %e, "cannot record a delivered notification; it may be sent again after a restart");
                    }
                    if let Ok(mut s) = self.spool.lock() {
                        if s.entries.front().is_some_and(|f| f.seq == n.seq) {
                            s.entries.pop_front();
                        }
                        self.metrics.spooled.store(s.entries.len() as i64, Ordering::Relaxed);
                    }
                    self.metrics.notifications_sent.fetch_add(1, Ordering::Relaxed);
                    self.metrics.notify_latency_ms.record(Timestamp::now().0 - n.detected_at_ms);
                }
                Err(reason) => {
                    self.metrics.publish_failures.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff.next_delay();
                    if backoff.attempts() == 3 {
                        tracing::error!(error = %reason, "SNS publish keeps failing; notifications are spooled on disk and will be sent when it recovers");
                    } else {
                        tracing::warn!(error = %reason, retry_in_ms = wait.as_millis() as u64, "SNS publish failed");
                    }
                    if let Some(deadline) = stop_deadline {
                        if tokio::time::Instant::now() + wait > deadline {
                            return;
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn publish(&self, n: &Notification) -> Result<(), String> {
        let attr = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build();
        let detector = attr(&n.detector).map_err(|e| e.to_string())?;
        let severity = attr(&n.severity).map_err(|e| e.to_string())?;
        let mut req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&n.subject)
            .message(&n.message)
            .message_attributes("detector", detector)
            .message_attributes("severity", severity);
        if is_fifo(&self.topic_arn) {
            req = req.message_group_id(&n.group_id).message_deduplication_id(&n.dedup_id);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{} ({})", DisplayErrorContext(&e), e.code().unwrap_or("no error code"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;

    fn finding() -> Finding {
        Finding {
            detector: "failed_login_burst",
            severity: Severity::High,
            user: Some("evil\u{1b}[2J\nname".into()),
            user_sub: None,
            ip: Some("203.0.113.7".into()),
            user_pool_id: None,
            first_seen: Timestamp(1_700_000_000_000),
            last_seen: Timestamp(1_700_000_100_000),
            detected_at: Timestamp(1_700_000_050_000),
            count: 12,
            summary: "12 failed sign-ins".into(),
            evidence: serde_json::json!({}),
            incident_id: "00112233aabbccdd".into(),
            rule: "failed_login_burst_user".into(),
            status: Status::Open,
        }
    }

    #[test]
    fn subject_is_short_printable_and_message_holds_the_json() {
        let n = render(&finding(), 1, true);
        assert!(n.subject.len() < 100 && n.subject.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{}", n.subject);
        assert!(n.message.starts_with("12 failed sign-ins"));
        assert!(n.message.contains("\"incident_id\":\"00112233aabbccdd\""));
        assert_eq!(n.dedup_id, "00112233aabbccdd-open-high");
        assert_eq!((n.detector.as_str(), n.severity.as_str()), ("failed_login_burst", "high"));
    }

    #[test]
    fn ledger_keys_tell_updates_apart() {
        let mut f = finding();
        let open = ledger_key(&f);
        f.status = Status::Escalated;
        let esc = ledger_key(&f);
        f.severity = Severity::Critical;
        assert!(open != esc && esc != ledger_key(&f));
    }

    #[test]
    fn digest_lists_and_rates_the_worst() {
        let items: Vec<DigestItem> = (0..3).map(|_| digest_item(&finding())).collect();
        let n = render_digest(&items, 0, 9, false);
        assert!(n.subject.contains("DIGEST: 3"));
        assert_eq!(n.severity, "high");
        assert_eq!(n.message.matches("00112233aabbccdd").count(), 6);
    }
}
