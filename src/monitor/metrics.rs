//! The monitor's figures: counters and histograms shared by its tasks, the periodic status line, and the
//! optional Prometheus endpoint (`--metrics-addr`: `/metrics` and `/healthz`).
//!
//! No IP or user ever becomes a label: the only labels are fixed names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest value a histogram records (one hour, in its unit); larger values are clamped.
const HIST_MAX: u64 = 3_600_000_000;

/// Counters are monotonic; gauges are set by the monitor loop each tick.
#[derive(Default)]
pub struct Metrics {
    pub records: AtomicU64,
    pub events: AtomicU64,
    pub rejected: AtomicU64,
    pub skipped: AtomicU64,
    pub before_start: AtomicU64,
    /// Events that arrived behind the watermark (later than --allowed-delay).
    pub late: AtomicU64,
    /// CloudWatch events read with an ingest delay beyond --overlap: such events can be missed.
    pub beyond_overlap: AtomicU64,
    /// Notifications dropped because the spool was full.
    pub notifications_dropped: AtomicU64,
    pub findings_closed: AtomicU64,
    pub notifications_created: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_suppressed: AtomicU64,
    pub digests: AtomicU64,
    pub publish_failures: AtomicU64,
    pub spooled: AtomicI64,
    pub open_incidents: AtomicI64,
    pub tracked_keys: AtomicI64,
    pub lag_ms: AtomicI64,
    pub watermark_ms: AtomicI64,
    /// Event time of detection → SNS accepted the notification, milliseconds.
    pub notify_latency_ms: Hist,
    /// Engine time per event, nanoseconds.
    pub process_ns: Hist,
    /// CloudWatch `ingestionTime - timestamp`, milliseconds.
    pub ingest_delay_ms: Hist,
    /// Source index → why it is failing; empty when every source reads.
    pub failing: Mutex<BTreeMap<String, String>>,
}

/// A histogram behind a lock (updates are short).
pub struct Hist(Mutex<Histogram<u64>>);

impl Default for Hist {
    fn default() -> Hist {
        // Bounds and 3 significant digits are valid constants: construction cannot fail.
        Hist(Mutex::new(Histogram::new_with_bounds(1, HIST_MAX, 3).expect("constant histogram bounds are valid")))
    }
}

impl Hist {
    pub fn record(&self, v: i64) {
        let v = v.clamp(1, HIST_MAX as i64) as u64;
        if let Ok(mut h) = self.0.lock() {
            let _ = h.record(v);
        }
    }

    /// (count, p50, p99, max)
    pub fn summary(&self) -> (u64, u64, u64, u64) {
        match self.0.lock() {
            Ok(h) => (h.len(), h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()),
            Err(_) => (0, 0, 0, 0),
        }
    }

    fn prometheus(&self, name: &str, help: &str, out: &mut String) {
        let Ok(h) = self.0.lock() else { return };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for q in [0.5, 0.9, 0.99, 0.999] {
            let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", h.value_at_quantile(q));
        }
        let sum: f64 = h.iter_recorded().map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64).sum();
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", h.len());
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn healthy(&self) -> bool {
        self.failing.lock().map(|f| f.is_empty()).unwrap_or(false)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &AtomicU64, &str); 14] = [
            ("authwatch_records_total", &self.records, "Raw records read from every source."),
            ("authwatch_events_total", &self.events, "Sign-in events given to the detectors."),
            ("authwatch_rejected_total", &self.rejected, "Records that could not be decoded."),
            ("authwatch_skipped_total", &self.skipped, "Records without sign-in activity."),
            ("authwatch_before_start_total", &self.before_start, "Events older than the start point."),
            ("authwatch_late_events_total", &self.late, "Events that arrived behind the watermark (later than --allowed-delay); still placed where a window is open."),
            ("authwatch_beyond_overlap_events_total", &self.beyond_overlap, "CloudWatch events read with an ingest delay beyond --overlap: events this late can be missed; raise --overlap."),
            ("authwatch_notifications_dropped_total", &self.notifications_dropped, "Notifications dropped because the spool was full."),
            ("authwatch_findings_closed_total", &self.findings_closed, "Closed findings written."),
            ("authwatch_notifications_created_total", &self.notifications_created, "Notifications spooled."),
            ("authwatch_notifications_sent_total", &self.notifications_sent, "Notifications accepted by SNS."),
            ("authwatch_notifications_suppressed_total", &self.notifications_suppressed, "Updates already notified or written before a restart."),
            ("authwatch_digests_total", &self.digests, "Digest notifications sent instead of a flood."),
            ("authwatch_publish_failures_total", &self.publish_failures, "Failed SNS publish attempts."),
        ];
        for (name, v, help) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let gauges: [(&str, &AtomicI64, &str); 5] = [
            ("authwatch_notifications_spooled", &self.spooled, "Notifications waiting for SNS."),
            ("authwatch_open_incidents", &self.open_incidents, "Incidents open now."),
            ("authwatch_tracked_keys", &self.tracked_keys, "Keys with detector state."),
            ("authwatch_lag_seconds_x1000", &self.lag_ms, "Wall clock minus the detection watermark, ms."),
            ("authwatch_watermark_ms", &self.watermark_ms, "Event time up to which detection has run."),
        ];
        for (name, v, help) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", v.load(Ordering::Relaxed));
        }
        let failing = self.failing.lock().map(|f| f.len()).unwrap_or(0);
        let _ = writeln!(out, "# HELP authwatch_sources_failing Sources that cannot read now.\n# TYPE authwatch_sources_failing gauge\nauthwatch_sources_failing {failing}");
        self.notify_latency_ms.prometheus(
            "authwatch_event_to_notification_ms",
            "Detection event time to SNS acceptance, milliseconds.",
            &mut out,
        );
        self.process_ns.prometheus("authwatch_event_processing_ns", "Detector time per event, nanoseconds.", &mut out);
        self.ingest_delay_ms.prometheus(
            "authwatch_ingest_delay_ms",
            "CloudWatch ingestionTime - timestamp, ms.",
            &mut out,
        );
        out
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until shutdown. Plain HTTP/1.0 answers, one per connection.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.changed() => return,
        };
        let Ok((mut stream, _)) = conn else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/healthz" if metrics.healthy() => ("200 OK", "ok\n".to_string()),
                "/healthz" => {
                    let reasons = metrics.failing.lock().map(|f| f.values().cloned().collect::<Vec<_>>().join("\n"));
                    ("503 Service Unavailable", format!("failing\n{}\n", reasons.unwrap_or_default()))
                }
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics listener (loopback or any address the operator chose).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
