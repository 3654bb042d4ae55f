//! The figures a run keeps: counters and histograms shared by the monitor's tasks and its sinks, read by
//! the status line and rendered as Prometheus text for `/metrics`.
//!
//! No IP or user ever becomes a label: the only labels are fixed names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

/// Largest value a histogram records (one hour, in its unit); larger values are clamped.
const HIST_MAX: u64 = 3_600_000_000;
/// Quantiles each summary exposes. 1 is the largest value recorded (the histogram's max, as Prometheus'
/// Go client reports a summary's maximum): a tail target such as "p99 <= 1 ms" needs p99.9 and the max
/// next to it to show what the 1 % beyond costs.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

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
    /// Events given to the engine before the watermark reached them because the time-ordering buffer was full (`--max-held-mb`).
    pub forced: AtomicU64,
    /// Notifications dropped because the spool was full.
    pub notifications_dropped: AtomicU64,
    pub findings_closed: AtomicU64,
    /// Case updates handed to the sinks (after the restart ledger): openings and escalations.
    pub cases_opened: AtomicU64,
    pub case_escalations: AtomicU64,
    pub notifications_created: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_suppressed: AtomicU64,
    pub digests: AtomicU64,
    pub publish_failures: AtomicU64,
    pub spooled: AtomicI64,
    pub open_incidents: AtomicI64,
    pub open_cases: AtomicI64,
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
    /// The active response's figures (`--respond`).
    pub respond: Arc<crate::respond::audit::RespondMetrics>,
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
        for q in QUANTILES {
            let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", h.value_at_quantile(q));
        }
        // Each bucket's upper bound times its count (within the histogram's 3 digits), as an integer: a float
        // sum over no buckets would print `-0`.
        let sum: u128 =
            h.iter_recorded().map(|v| u128::from(v.value_iterated_to()) * u128::from(v.count_at_value())).sum();
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
        let counters: [(&str, &AtomicU64, &str); 17] = [
            ("authwatch_records_total", &self.records, "Raw records read from every source."),
            ("authwatch_events_total", &self.events, "Sign-in events given to the detectors."),
            ("authwatch_rejected_total", &self.rejected, "Records that could not be decoded."),
            ("authwatch_skipped_total", &self.skipped, "Records without sign-in activity."),
            ("authwatch_before_start_total", &self.before_start, "Events older than the start point."),
            ("authwatch_late_events_total", &self.late, "Events that arrived behind the watermark (later than --allowed-delay); still placed where a window is open."),
            ("authwatch_beyond_overlap_events_total", &self.beyond_overlap, "CloudWatch events read with an ingest delay beyond --overlap: events this late can be missed; raise --overlap."),
            ("authwatch_forced_events_total", &self.forced, "Events given to the detectors before the watermark reached them because the hold buffer was full (--max-held-mb): a later event from a slower source can then land behind them."),
            ("authwatch_notifications_dropped_total", &self.notifications_dropped, "Notifications dropped because the spool was full."),
            ("authwatch_findings_closed_total", &self.findings_closed, "Closed findings written."),
            ("authwatch_cases_opened_total", &self.cases_opened, "Cases opened (one page each)."),
            ("authwatch_case_escalations_total", &self.case_escalations, "Case escalations (one page each)."),
            ("authwatch_notifications_created_total", &self.notifications_created, "Notifications spooled."),
            ("authwatch_notifications_sent_total", &self.notifications_sent, "Notifications accepted by SNS."),
            ("authwatch_notifications_suppressed_total", &self.notifications_suppressed, "Updates already notified or written before a restart."),
            ("authwatch_digests_total", &self.digests, "Digest notifications sent instead of a flood."),
            ("authwatch_publish_failures_total", &self.publish_failures, "Failed SNS publish attempts."),
        ];
        for (name, v, help) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let gauges: [(&str, &AtomicI64, &str); 6] = [
            ("authwatch_notifications_spooled", &self.spooled, "Notifications waiting for SNS."),
            ("authwatch_open_incidents", &self.open_incidents, "Incidents open now."),
            ("authwatch_open_cases", &self.open_cases, "Cases open now."),
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
        self.respond.render(&mut out);
        self.ingest_delay_ms.prometheus(
            "authwatch_ingest_delay_ms",
            "CloudWatch ingestionTime - timestamp, ms.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of one summary in a rendered page: (what follows its name, value), e.g.
    /// (`{quantile="0.99"}`, `1000`) or (`_count`, `3`).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
        text.lines()
            .filter_map(|l| {
                let (series, value) = l.strip_prefix(name)?.rsplit_once(' ')?;
                let ours = series.starts_with('{') || series == "_sum" || series == "_count";
                ours.then_some((series, value))
            })
            .collect()
    }

    #[test]
    fn a_summary_shows_the_tail_quantiles_and_the_max() {
        let m = Metrics::default();
        // 1000 events of 1 µs, 9 of 2 ms, one of 40 ms: p99 is 1 µs, p99.9 2 ms, the max 40 ms.
        for _ in 0..1000 {
            m.process_ns.record(1_000);
        }
        for _ in 0..9 {
            m.process_ns.record(2_000_000);
        }
        m.process_ns.record(40_000_000);
        let text = m.render();
        let got = samples(&text, "authwatch_event_processing_ns");
        let value = |labels: &str| got.iter().find(|(l, _)| *l == labels).map(|(_, v)| v.parse::<u64>().unwrap());
        let within = |v: Option<u64>, want: u64| v.is_some_and(|v| v >= want && v <= want + want / 1000);
        assert!(within(value("{quantile=\"0.5\"}"), 1_000), "{text}");
        assert!(within(value("{quantile=\"0.99\"}"), 1_000), "{text}");
        assert!(within(value("{quantile=\"0.999\"}"), 2_000_000), "{text}");
        assert!(within(value("{quantile=\"1\"}"), 40_000_000), "{text}");
        assert_eq!(value("_count"), Some(1010), "{text}");
        assert!(within(value("_sum"), 1_000 * 1000 + 2_000_000 * 9 + 40_000_000), "{text}");
    }

    #[test]
    fn an_empty_summary_renders_zeros() {
        let text = Metrics::default().render();
        let got = samples(&text, "authwatch_event_to_notification_ms");
        assert_eq!(got.len(), QUANTILES.len() + 2, "{text}");
        assert!(got.iter().all(|(_, v)| *v == "0"), "{text}");
    }

    /// Every sample belongs to the family declared by the `# TYPE` line before it (a summary also owns
    /// `_sum` and `_count`), quantile labels are in [0, 1], and every value is a number.
    #[test]
    fn the_page_is_valid_prometheus_text() {
        let m = Metrics::default();
        m.process_ns.record(1_500);
        m.events.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        let mut family: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(decl) = line.strip_prefix("# TYPE ") {
                let (name, kind) = decl.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
                family = Some((name.to_string(), kind.to_string()));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {line}"));
            let (name, labels) = series.split_once('{').map_or((series, ""), |(n, l)| (n, l));
            let (fam, kind) = family.as_ref().unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
            let owned =
                name == fam || (kind == "summary" && (name == format!("{fam}_sum") || name == format!("{fam}_count")));
            assert!(owned, "{line} is not in family {fam}");
            if let Some(q) = labels.strip_prefix("quantile=\"").and_then(|l| l.strip_suffix("\"}")) {
                let q: f64 = q.parse().unwrap_or_else(|_| panic!("bad quantile: {line}"));
                assert!((0.0..=1.0).contains(&q), "{line}");
            } else {
                assert!(labels.is_empty(), "unexpected labels: {line}");
            }
        }
        assert!(text.contains("authwatch_event_processing_ns{quantile=\"1\"} 1500"), "{text}");
    }
}
