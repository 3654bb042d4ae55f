//! The report's timeline: sign-ins per time bucket (success, failure, other) as inline SVG bars, with the
//! findings drawn under them as bars from first to last seen, each a link to its place in the report.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::activity::{wider, Counts};
use super::html::escape_html;
use super::Group;
use crate::time::{Span, Timestamp};

/// Bars at most: about four pixels each on a 1,000-pixel chart.
pub const MAX_BARS: i64 = 240;
/// Lanes of finding marks under the chart; more overlapping findings share the last lane.
pub const MAX_LANES: usize = 8;
/// Findings drawn on the timeline (the most severe first); all are listed below it.
pub const MAX_MARKS: usize = 300;

/// The chart's coordinate width: the page's content column, so one unit is about a pixel.
const WIDTH: f64 = 1000.0;
/// Room for the count labels on the left, and a margin on the right.
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
/// The bars' area: tall enough to tell a burst from the daily rhythm.
const CHART_TOP: f64 = 10.0;
const CHART_HEIGHT: f64 = 170.0;
/// One lane of finding marks: a bar to click and a gap.
const LANE_HEIGHT: f64 = 11.0;

/// The colour of a severity, shared by the timeline, the map and the HTML badges.
pub fn severity_colour(s: crate::finding::Severity) -> &'static str {
    use crate::finding::Severity::*;
    match s {
        Critical => "#a50026",
        High => "#e4572e",
        Medium => "#f0a202",
        Low => "#6c8ebf",
    }
}

/// The width of the bars drawn: the stored width, or the first wider one of
/// [`super::activity::WIDTHS_MIN`] (each a multiple of the stored one), that keeps the bars under
/// [`MAX_BARS`] over the span.
pub fn bar_width(stored_ms: i64, first: i64, last: i64) -> i64 {
    let mut w = stored_ms.max(1);
    while (last - first) / w >= MAX_BARS {
        w = wider(w);
    }
    w
}

/// The bars: bucket start → counts, at `width`.
pub fn bars(buckets: &BTreeMap<i64, Counts>, width: i64) -> BTreeMap<i64, Counts> {
    let mut out: BTreeMap<i64, Counts> = BTreeMap::new();
    for (k, c) in buckets {
        let e = out.entry(k.div_euclid(width) * width).or_default();
        e.success += c.success;
        e.failure += c.failure;
        e.other += c.other;
    }
    out
}

/// The timeline SVG, or `None` when no event was seen.
pub fn timeline(stored_ms: i64, buckets: &BTreeMap<i64, Counts>, groups: &[Group]) -> Option<(String, Span)> {
    let first = *buckets.keys().next()?;
    let last = *buckets.keys().next_back()?;
    let width = bar_width(stored_ms, first, last);
    let bars = bars(buckets, width);
    let start = first.div_euclid(width) * width;
    let end = (last.div_euclid(width) + 1) * width;
    let max = bars.values().map(Counts::total).max().unwrap_or(1).max(1);
    let plot = WIDTH - LEFT - RIGHT;
    let x_of = |t: i64| LEFT + plot * ((t.clamp(start, end) - start) as f64 / (end - start).max(1) as f64);
    let bar_px = (plot * width as f64 / (end - start).max(1) as f64).max(1.0);
    let y_of = |n: u64| CHART_TOP + CHART_HEIGHT * (1.0 - n as f64 / max as f64);

    let marks: Vec<&Group> = groups.iter().take(MAX_MARKS).collect();
    let lanes = assign_lanes(&marks, &x_of);
    let lane_count = lanes.iter().copied().max().map_or(0, |l| l + 1);
    let lanes_top = CHART_TOP + CHART_HEIGHT + 26.0;
    let height = lanes_top + lane_count as f64 * LANE_HEIGHT + 8.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="timeline" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="Sign-ins over time">"#
    );
    // Axis: zero, half and the maximum.
    for n in [0, max / 2, max] {
        let y = y_of(n);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{n}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 3.0
        );
    }
    for (t, c) in &bars {
        let x = x_of(*t);
        let mut y = CHART_TOP + CHART_HEIGHT;
        let w = (bar_px - 0.6).max(0.8);
        let _ = write!(
            s,
            "<g><title>{} ({}): {} succeeded, {} failed, {} other</title>",
            Timestamp(*t),
            Span(width),
            c.success,
            c.failure,
            c.other
        );
        for (n, class) in [(c.success, "ok"), (c.failure, "fail"), (c.other, "other")] {
            if n == 0 {
                continue;
            }
            let h = CHART_HEIGHT * n as f64 / max as f64;
            y -= h;
            let _ = write!(s, r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"/>"#);
        }
        s.push_str("</g>");
    }
    // Time ticks: five, labelled with the UTC date and time.
    for i in 0..=4 {
        let t = start + (end - start) * i / 4;
        let x = x_of(t);
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let label = Timestamp(t).to_string();
        let label = label.get(..16).unwrap_or(&label).replace('T', " ");
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" class="axis" text-anchor="{anchor}">{label}</text>"##,
            CHART_TOP + CHART_HEIGHT,
            CHART_TOP + CHART_HEIGHT + 4.0,
            CHART_TOP + CHART_HEIGHT + 15.0
        );
    }
    if lane_count > 0 {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">findings</text>"#,
            LEFT - 4.0,
            lanes_top + 8.0
        );
    }
    for (g, lane) in marks.iter().zip(&lanes) {
        let x1 = x_of(g.first_seen.0);
        let w = (x_of(g.last_seen.0) - x1).max(3.0);
        let y = lanes_top + *lane as f64 * LANE_HEIGHT;
        let _ = write!(
            s,
            r##"<a href="#{}"><rect x="{x1:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" rx="2" fill="{}"><title>{} {}: {}</title></rect></a>"##,
            g.anchor,
            LANE_HEIGHT - 3.0,
            severity_colour(g.severity),
            g.severity,
            escape_html(&g.anchor),
            escape_html(&g.story)
        );
    }
    s.push_str("</svg>");
    Some((s, Span(width)))
}

/// Puts each mark in the first lane where it does not overlap the previous mark (by pixels), the last lane
/// when none is free.
fn assign_lanes(marks: &[&Group], x_of: &dyn Fn(i64) -> f64) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    let mut by_start: Vec<usize> = (0..marks.len()).collect();
    by_start.sort_by_key(|&i| marks[i].first_seen);
    let mut lanes = vec![0; marks.len()];
    for i in by_start {
        let x1 = x_of(marks[i].first_seen.0);
        let x2 = x1 + (x_of(marks[i].last_seen.0) - x1).max(3.0) + 2.0;
        let lane = match ends.iter().position(|&end| end <= x1) {
            Some(l) => l,
            None if ends.len() < MAX_LANES => {
                ends.push(0.0);
                ends.len() - 1
            }
            None => MAX_LANES - 1,
        };
        ends[lane] = ends[lane].max(x2);
        lanes[i] = lane;
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_width_keeps_the_bars_under_the_cap() {
        let five = 300_000;
        assert_eq!(bar_width(five, 0, 86_400_000), 600_000, "a day at 5 min is 288 bars: 10 min instead");
        assert_eq!(bar_width(five, 0, 3_600_000), five);
        let month = 30 * 86_400_000;
        assert_eq!(bar_width(five, 0, month), 6 * 3_600_000, "a month in 120 bars of 6 hours");
        assert_eq!(bar_width(30 * 60_000, 0, month), 6 * 3_600_000, "from coarser stored buckets too");
    }

    #[test]
    fn bars_merge_buckets_without_losing_counts() {
        let mut b = BTreeMap::new();
        b.insert(0, Counts { success: 1, failure: 2, other: 0 });
        b.insert(300_000, Counts { success: 3, failure: 0, other: 1 });
        let merged = bars(&b, 600_000);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[&0], Counts { success: 4, failure: 2, other: 1 });
    }
}
