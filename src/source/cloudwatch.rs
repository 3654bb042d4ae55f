//! Live source: polls CloudWatch Logs `FilterLogEvents` for one log group (`aws-formats.md` §6).
//!
//! The first pass reads from the start time; each later pass reads from `max(start, W - overlap)`, where
//! W is the wall time at which the previous *complete* pass started, and follows `nextToken` through
//! empty pages; only a missing token ends the pass. The read start follows the wall clock, not the
//! events: an event stamped in the future (CloudWatch accepts up to 2 h ahead) or a stream that is ahead
//! of the others cannot move it forward past events still to come. Every event whose ingest delay
//! (`ingestionTime - timestamp`) is at most the overlap is therefore read; events already sent are
//! recognised by event id (a set bounded by time: ids older than the read start are forgotten) and
//! dropped. An event ingested later than that can be missed; those read with such a delay are counted by
//! the monitor (`beyond overlap`), the signal to raise `--overlap`. After a complete pass the source tells
//! the monitor it has caught up to the wall time at which the pass started.
//!
//! Errors never end the source: throttling and transient failures back off with jitter; permission and
//! missing-group errors are reported (ERROR, and `Failing` to the monitor, which shows them in the status
//! line and turns `/healthz` red) and retried with a longer back-off, since a policy or a log group can be
//! fixed while the daemon runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudwatchlogs::Client;
use tokio::sync::{mpsc, watch};

use super::{Backoff, LiveRecord, SourceMsg};
use crate::event::{FileName, Origin};
use crate::time::Timestamp;

/// Most events per `FilterLogEvents` page (the API's maximum).
pub const PAGE_LIMIT: i32 = 10_000;
/// Ids remembered beyond the overlap, at most: a flood cannot grow the duplicate filter without bound.
pub const MAX_SEEN_IDS: usize = 2_000_000;
/// First retry after a transient error; doubles up to the cap.
const RETRY_BASE_MS: u64 = 200;
const RETRY_CAP_MS: u64 = 30_000;
/// Back-off cap for errors an operator must fix (permission, missing group): retried, but rarely.
const FATALISH_CAP_MS: u64 = 300_000;

#[derive(Debug, Clone)]
pub struct CloudWatchConfig {
    pub log_group: String,
    pub stream_names: Vec<String>,
    pub stream_prefix: Option<String>,
    /// Event time (ms) to read from on the first pass.
    pub start_ms: i64,
    /// How far behind the wall-clock start of the previous complete pass each pass re-reads.
    pub overlap_ms: i64,
    /// Pause between passes.
    pub poll: Duration,
}

/// How an error from the API is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, connection trouble: back off and retry.
    Transient,
    /// Access denied, bad credentials, missing log group: report clearly, retry slowly.
    NeedsOperator,
}

/// Classifies an error code returned by CloudWatch Logs.
pub fn classify(code: Option<&str>) -> ErrorClass {
    match code {
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "ResourceNotFoundException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "InvalidParameterException"
            | "MissingAuthenticationTokenException",
        ) => ErrorClass::NeedsOperator,
        _ => ErrorClass::Transient,
    }
}

/// Runs until shutdown is signalled or the monitor stops listening.
pub async fn run(
    client: Client,
    cfg: CloudWatchConfig,
    source: usize,
    tx: mpsc::Sender<SourceMsg>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name: Arc<str> = Arc::from(format!("logs:{}", cfg.log_group));
    // Wall time at which the last complete pass started: everything ingested before it has been read.
    let mut read_upto_wall: Option<i64> = None;
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut backoff = Backoff::new(RETRY_BASE_MS, RETRY_CAP_MS);
    let mut slow = Backoff::new(5_000, FATALISH_CAP_MS);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let pass_started = Timestamp::now().0;
        let from = read_start(cfg.start_ms, read_upto_wall, cfg.overlap_ms);
        match pass(&client, &cfg, from, &name, source, &tx, &mut seen, &mut shutdown).await {
            Ok(PassEnd::Complete) => {
                backoff.reset();
                slow.reset();
                if tx.send(SourceMsg::CaughtUp { source, until_ms: pass_started }).await.is_err() {
                    return;
                }
                read_upto_wall = Some(pass_started);
                // Ids older than the next pass's start cannot be read again.
                forget_old_ids(&mut seen, read_start(cfg.start_ms, read_upto_wall, cfg.overlap_ms));
                if sleep_or_shutdown(cfg.poll, &mut shutdown).await {
                    return;
                }
            }
            Ok(PassEnd::Stopped) => return,
            Err((class, reason)) => {
                let wait = match class {
                    ErrorClass::Transient => {
                        tracing::warn!(log_group = %cfg.log_group, error = %reason, "FilterLogEvents failed; retrying");
                        backoff.next_delay()
                    }
                    ErrorClass::NeedsOperator => {
                        tracing::error!(log_group = %cfg.log_group, error = %reason,
                            "cannot read the log group (check the name, region and the logs:FilterLogEvents permission); retrying");
                        slow.next_delay()
                    }
                };
                if backoff.attempts() > 3 || class == ErrorClass::NeedsOperator {
                    let _ = tx.send(SourceMsg::Failing { source, reason: reason.clone() }).await;
                }
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

enum PassEnd {
    Complete,
    Stopped,
}

/// One pass: every page from `from` until a response without `nextToken`. A failed page is retried (with
/// back-off) from its own token, so a long pass is not restarted by one throttled call.
#[allow(clippy::too_many_arguments)]
async fn pass(
    client: &Client,
    cfg: &CloudWatchConfig,
    from: i64,
    name: &Arc<str>,
    source: usize,
    tx: &mpsc::Sender<SourceMsg>,
    seen: &mut HashMap<String, i64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<PassEnd, (ErrorClass, String)> {
    let mut token: Option<String> = None;
    let mut page_backoff = Backoff::new(RETRY_BASE_MS, RETRY_CAP_MS);
    loop {
        let mut req = client
            .filter_log_events()
            .log_group_name(&cfg.log_group)
            .start_time(from)
            .limit(PAGE_LIMIT)
            .set_next_token(token.clone());
        if !cfg.stream_names.is_empty() {
            req = req.set_log_stream_names(Some(cfg.stream_names.clone()));
        } else if let Some(p) = &cfg.stream_prefix {
            req = req.log_stream_name_prefix(p);
        }
        let out = tokio::select! {
            r = req.send() => r,
            _ = shutdown.changed() => return Ok(PassEnd::Stopped),
        };
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let class = classify(e.code());
                let reason = format!("{}", DisplayErrorContext(&e));
                if class == ErrorClass::NeedsOperator || page_backoff.attempts() >= 8 {
                    return Err((class, reason));
                }
                tracing::debug!(log_group = %cfg.log_group, error = %reason, "page failed; backing off");
                if sleep_or_shutdown(page_backoff.next_delay(), shutdown).await {
                    return Ok(PassEnd::Stopped);
                }
                continue;
            }
        };
        page_backoff.reset();
        let mut records = Vec::new();
        let mut page_newest = None;
        let now = Timestamp::now().0;
        for ev in out.events() {
            let (Some(id), Some(ts), Some(msg)) = (ev.event_id(), ev.timestamp(), ev.message()) else { continue };
            if seen.contains_key(id) {
                continue;
            }
            if seen.len() >= MAX_SEEN_IDS {
                forget_oldest(seen);
            }
            seen.insert(id.to_string(), ts);
            if ts <= now {
                // Positions ignore events stamped in the future.
                page_newest = Some(page_newest.map_or(ts, |n: i64| n.max(ts)));
            }
            let stream = ev.log_stream_name().unwrap_or("");
            let origin = Origin::new(FileName::counted(&format!("{name}/{stream}")), 0);
            records.push(LiveRecord {
                bytes: msg.as_bytes().to_vec(),
                origin,
                ingest_delay_ms: ev.ingestion_time().map(|i| i - ts),
                rejected: None,
            });
        }
        if !records.is_empty() && tx.send(SourceMsg::Records { source, records, newest_ms: page_newest }).await.is_err()
        {
            return Ok(PassEnd::Stopped);
        }
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(PassEnd::Complete),
        }
    }
}

/// Where a pass starts reading: the start time on the first pass, then the overlap behind the wall time
/// at which the previous complete pass started (never behind the start time).
pub fn read_start(start_ms: i64, read_upto_wall: Option<i64>, overlap_ms: i64) -> i64 {
    match read_upto_wall {
        None => start_ms,
        Some(w) => start_ms.max(w - overlap_ms),
    }
}

fn forget_old_ids(seen: &mut HashMap<String, i64>, before: i64) {
    seen.retain(|_, ts| *ts >= before);
}

/// At the cap: drop the older half, so the filter stays bounded at the cost of maybe re-sending a few
/// very old events (the monitor's ledger still stops duplicate notifications).
fn forget_oldest(seen: &mut HashMap<String, i64>) {
    let mut times: Vec<i64> = seen.values().copied().collect();
    times.sort_unstable();
    let median = times[times.len() / 2];
    seen.retain(|_, ts| *ts > median);
}

/// Sleeps; true when shutdown was signalled meanwhile.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_errors_are_told_apart_from_transient_ones() {
        assert_eq!(classify(Some("ThrottlingException")), ErrorClass::Transient);
        assert_eq!(classify(Some("ServiceUnavailableException")), ErrorClass::Transient);
        assert_eq!(classify(None), ErrorClass::Transient);
        assert_eq!(classify(Some("AccessDeniedException")), ErrorClass::NeedsOperator);
        assert_eq!(classify(Some("ResourceNotFoundException")), ErrorClass::NeedsOperator);
    }

    #[test]
    fn the_read_start_follows_the_wall_clock_not_the_events() {
        assert_eq!(read_start(1_000, None, 120_000), 1_000);
        assert_eq!(read_start(1_000, Some(500_000), 120_000), 380_000);
        assert_eq!(read_start(400_000, Some(500_000), 120_000), 400_000);
    }

    #[test]
    fn seen_ids_stay_bounded() {
        let mut seen: HashMap<String, i64> = (0..100).map(|i| (i.to_string(), i)).collect();
        forget_oldest(&mut seen);
        assert!(seen.len() <= 50 && seen.contains_key("99"));
        forget_old_ids(&mut seen, 90);
        assert_eq!(seen.len(), 10);
    }
}
