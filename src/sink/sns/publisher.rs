//! The SNS publisher task: drains the notification spool in order, one publish at a time, retrying with
//! back-off for as long as SNS fails, and marks each accepted notification delivered.
//!
//! After each accepted publish it writes the delivered mark, so a restart neither loses nor repeats a
//! notification (the only window for a repeat is a kill between SNS accepting and that fsync; FIFO topics
//! dedupe even that).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use tokio::sync::{watch, Notify};

use super::is_fifo;
use super::message::Notification;
use crate::pipeline::clock::Clock;
use crate::pipeline::metrics::Metrics;
use crate::source::Backoff;

/// First retry after a failed publish: SNS throttling clears within a fraction of a second.
const RETRY_BASE_MS: u64 = 250;
/// Longest wait between retries while SNS stays unreachable: a recovery is noticed within a minute.
const RETRY_CAP_MS: u64 = 60_000;

/// Where the publisher records the sequence number of the last notification SNS accepted (the monitor's
/// state directory), so that a restart does not send it again.
pub trait DeliveredMark: Send + Sync {
    fn save_delivered(&self, seq: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Notifications checkpointed and waiting for SNS. Shared by the monitor loop (which appends, then
/// raises `visible_upto` once the checkpoint holding them is on disk) and the publisher (which pops).
#[derive(Debug, Default)]
pub struct Spool {
    pub entries: VecDeque<Notification>,
    pub visible_upto: u64,
}

/// The publisher task. Runs until `stop` is set and the visible spool is empty, or until `stop` is set and
/// `drain` has passed since (what is left stays spooled on disk for the next start).
pub struct Publisher {
    pub client: Client,
    pub topic_arn: String,
    pub spool: Arc<Mutex<Spool>>,
    pub wake: Arc<Notify>,
    pub delivered: Arc<dyn DeliveredMark>,
    pub metrics: Arc<Metrics>,
    pub drain: Duration,
    /// Wall time, for the event-to-notification latency.
    pub clock: Clock,
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
                    if let Err(e) = self.delivered.save_delivered(n.seq) {
                        tracing::error!(error = %e, "cannot record a delivered notification; it may be sent again after a restart");
                    }
                    if let Ok(mut s) = self.spool.lock() {
                        if s.entries.front().is_some_and(|f| f.seq == n.seq) {
                            s.entries.pop_front();
                        }
                        self.metrics.spooled.store(s.entries.len() as i64, Ordering::Relaxed);
                    }
                    self.metrics.notifications_sent.fetch_add(1, Ordering::Relaxed);
                    self.metrics.notify_latency_ms.record(self.clock.wall().0 - n.detected_at_ms);
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
        if !n.case_id.is_empty() {
            // What PagerDuty's dedup_key or Opsgenie's alias can be mapped from: one alert per case.
            req = req.message_attributes("case_id", attr(&n.case_id).map_err(|e| e.to_string())?);
        }
        if is_fifo(&self.topic_arn) {
            req = req.message_group_id(&n.group_id).message_deduplication_id(&n.dedup_id);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{} ({})", DisplayErrorContext(&e), e.code().unwrap_or("no error code"))),
        }
    }
}
