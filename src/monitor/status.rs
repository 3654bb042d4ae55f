//! The monitor's status line on standard error (`--status-interval`): rate, lag, backlog and failures in
//! one line, from the shared [`Metrics`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::metrics::Metrics;

/// When the next line is due, and the event count at the last one (for the rate).
pub(super) struct StatusLine {
    every: Duration,
    last: Instant,
    events_at_last: u64,
}

/// What the loop holds that the metrics do not say: whether detection has started, and the backlog.
pub(super) struct Held {
    pub caught_up: bool,
    pub events: usize,
    pub bytes: usize,
}

impl StatusLine {
    pub fn new(every: Duration, now: Instant) -> StatusLine {
        StatusLine { every, last: now, events_at_last: 0 }
    }

    /// The line, when `every` has passed since the last one.
    pub fn due(&mut self, m: &Metrics, held: Held, now: Instant) -> Option<String> {
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed < self.every {
            return None;
        }
        let events = m.events.load(Ordering::Relaxed);
        let rate = (events - self.events_at_last) as f64 / elapsed.as_secs_f64();
        self.events_at_last = events;
        self.last = now;
        Some(render(m, rate, held))
    }
}

fn render(m: &Metrics, rate: f64, held: Held) -> String {
    let (_, d50, _, dmax) = m.ingest_delay_ms.summary();
    let (nn, n50, n99, _) = m.notify_latency_ms.summary();
    let failing = m.failing.lock().map(|f| f.len()).unwrap_or(0);
    let lag = if held.caught_up {
        format!("{:.1}s", m.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0)
    } else {
        "catching up".into()
    };
    format!(
        "authwatch monitor: {rate:.1} events/s{}, lag {lag}, ingest delay p50 {d50}ms max {dmax}ms, open incidents {}, tracked keys {}, notifications sent {} spooled {}{}{}, held {} ({} MB){}, late {}, beyond overlap {}, rejected {}, sources failing {failing}",
        match m.before_start.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(" ({n} read and skipped as older than the start point)"),
        },
        m.open_incidents.load(Ordering::Relaxed),
        m.tracked_keys.load(Ordering::Relaxed),
        m.notifications_sent.load(Ordering::Relaxed),
        m.spooled.load(Ordering::Relaxed),
        match m.notifications_dropped.load(Ordering::Relaxed) {
            0 => String::new(),
            d => format!(" DROPPED {d}"),
        },
        if nn > 0 { format!(" (latency p50 {n50}ms p99 {n99}ms)") } else { String::new() },
        held.events,
        held.bytes >> 20,
        match m.forced.load(Ordering::Relaxed) {
            0 => String::new(),
            f => format!(" forced {f}"),
        },
        m.late.load(Ordering::Relaxed),
        m.beyond_overlap.load(Ordering::Relaxed),
        m.rejected.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(caught_up: bool) -> Held {
        Held { caught_up, events: 3, bytes: 5 << 20 }
    }

    #[test]
    fn a_line_is_due_once_per_interval_with_the_rate_since_the_last_one() {
        let m = Metrics::default();
        let start = Instant::now();
        let every = Duration::from_secs(10);
        let mut s = StatusLine::new(every, start);
        assert!(s.due(&m, held(false), start + every / 2).is_none());
        m.events.fetch_add(50, Ordering::Relaxed);
        let line = s.due(&m, held(false), start + every).expect("due after the interval");
        assert!(line.starts_with("authwatch monitor: 5.0 events/s, lag catching up,"), "{line}");
        assert!(line.contains("held 3 (5 MB)"), "{line}");
        assert!(s.due(&m, held(true), start + every + every / 2).is_none(), "not again before the next interval");
        m.events.fetch_add(20, Ordering::Relaxed);
        m.lag_ms.store(1_500, Ordering::Relaxed);
        let line = s.due(&m, held(true), start + every * 2).expect("due again");
        assert!(line.starts_with("authwatch monitor: 2.0 events/s, lag 1.5s,"), "{line}");
        // Events read but older than the start point are said, not hidden behind a rate of 0.
        m.before_start.store(1_000, Ordering::Relaxed);
        let line = s.due(&m, held(true), start + every * 3).expect("due again");
        assert!(
            line.starts_with(
                "authwatch monitor: 0.0 events/s (1000 read and skipped as older than the start point), lag"
            ),
            "{line}"
        );
    }
}
