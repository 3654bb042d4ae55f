//! A pool's learned normal: the history of one figure per time bucket (failures, unconfirmed sign-ups...)
//! and the band it normally stays in, for the pool-wide rules.
//!
//! The band is robust statistics over the history: the median and the median absolute deviation (MAD),
//! which a few extreme buckets (an earlier attack, an outage) do not move. With at least
//! `seasonal_min_days` of history it is seasonal: only the buckets at the same time of day on earlier days
//! (and their neighbours) count, so a pool busy at 09:00 and quiet at 03:00 is judged against its own
//! 09:00 and 03:00. Buckets the rule found anomalous are not learned: a baseline must not learn the attack
//! it is watching (`detection.md`). History is on event time and bounded (`history` of buckets).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::time::{Span, Timestamp};

/// A day, in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// Spread never below this many counts: a quiet pool with a MAD of 0 would otherwise call 1 an anomaly.
const MIN_SPREAD: f64 = 1.0;
/// MAD × this estimates a standard deviation for normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Seasonal bands take the buckets this many steps either side of the same time of day too, so an
/// attack or a jittered bucket boundary on one day weighs less.
const SEASONAL_NEIGHBOURS: i64 = 1;

/// How a band is learned: the params every pool-wide rule shares (spec `[params]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandParams {
    /// Width of one bucket of the figure.
    pub bucket: Span,
    /// How much history is kept.
    pub history: Span,
    /// Event time from a pool's first event before the rule judges it (unless a baseline file supplied
    /// history): the rule stays quiet while it learns.
    pub warmup: Span,
    /// Days of history from which bands are seasonal (by time of day) instead of over recent buckets.
    pub seasonal_min_days: u32,
    /// How many standard deviations (estimated from the MAD) above the median the band's top is.
    pub band_sigmas: f64,
}

impl BandParams {
    /// Checks the params at spec load.
    pub fn check(&self) -> Result<(), String> {
        if self.bucket < Span::mins(1) || self.bucket > Span::hours(24) || DAY_MS % self.bucket.millis() != 0 {
            return Err(format!("bucket = {} must divide a day and be between 1m and 24h", self.bucket));
        }
        if self.history < Span(self.bucket.millis() * 6) || self.history > Span(DAY_MS * 60) {
            return Err(format!("history = {} must be at least 6 buckets and at most 60d", self.history));
        }
        if self.warmup > self.history {
            return Err(format!("warmup = {} is longer than history = {}", self.warmup, self.history));
        }
        if !(self.band_sigmas.is_finite() && self.band_sigmas > 0.0) {
            return Err(format!("band_sigmas = {} must be a positive number", self.band_sigmas));
        }
        Ok(())
    }

    fn max_buckets(&self) -> usize {
        (self.history.millis() / self.bucket.millis()).max(1) as usize
    }

    fn buckets_per_day(&self) -> i64 {
        DAY_MS / self.bucket.millis()
    }

    /// The bucket a time falls in.
    pub fn bucket_of(&self, t: Timestamp) -> i64 {
        t.millis().div_euclid(self.bucket.millis())
    }

    /// Start of bucket `b`.
    pub fn bucket_start(&self, b: i64) -> Timestamp {
        Timestamp(b.saturating_mul(self.bucket.millis()))
    }
}

/// The normal band of a figure for one bucket, and what it was learned from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    /// The median: the expected value.
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    /// Learned from the same time of day on earlier days.
    pub seasonal: bool,
    /// Buckets it was learned from.
    pub samples: usize,
}

/// One figure's history, bucket by bucket (bucket index, value), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    values: VecDeque<(i64, f64)>,
    /// The first bucket the series has seen (from a baseline file or the stream): warm-up runs from it.
    first: Option<i64>,
}

impl Series {
    /// Records bucket `b`'s value (buckets come in order; an earlier or repeated one is ignored).
    pub fn record(&mut self, p: &BandParams, b: i64, value: f64) {
        self.first.get_or_insert(b);
        if self.values.back().is_some_and(|(last, _)| *last >= b) {
            return;
        }
        self.values.push_back((b, value));
        let oldest = b - p.max_buckets() as i64;
        while self.values.front().is_some_and(|(f, _)| *f <= oldest) {
            self.values.pop_front();
        }
    }

    /// Notes that the stream reached bucket `b`, learned or not (warm-up counts from the first).
    pub fn saw(&mut self, b: i64) {
        self.first.get_or_insert(b);
    }

    /// Whether the warm-up is over at bucket `b`.
    pub fn warmed_up(&self, p: &BandParams, b: i64) -> bool {
        self.first.is_some_and(|f| p.bucket_start(b).since(p.bucket_start(f)) >= p.warmup)
    }

    /// When the warm-up ends (ends) for this series.
    pub fn warm_at(&self, p: &BandParams) -> Option<Timestamp> {
        self.first.map(|f| p.bucket_start(f).saturating_add(p.warmup))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The normal band for bucket `b` (over buckets before it), if there is any history.
    pub fn band(&self, p: &BandParams, b: i64) -> Option<Band> {
        let per_day = p.buckets_per_day();
        let days = self.values.front().map_or(0, |(f, _)| (b - f) / per_day);
        let seasonal = days >= i64::from(p.seasonal_min_days) && p.seasonal_min_days > 0;
        let mut sample: Vec<f64> = if seasonal {
            let slot = b.rem_euclid(per_day);
            self.values
                .iter()
                .filter(|(i, _)| {
                    let d = (i.rem_euclid(per_day) - slot).rem_euclid(per_day);
                    *i < b && (d <= SEASONAL_NEIGHBOURS || per_day - d <= SEASONAL_NEIGHBOURS)
                })
                .map(|(_, v)| *v)
                .collect()
        } else {
            // The last day of buckets: recent enough to follow the pool's growth.
            let from = b - per_day;
            self.values.iter().filter(|(i, _)| *i < b && *i >= from).map(|(_, v)| *v).collect()
        };
        if sample.is_empty() {
            return None;
        }
        let median = median(&mut sample);
        let mut deviations: Vec<f64> = sample.iter().map(|v| (v - median).abs()).collect();
        let mad = median_of(&mut deviations);
        let sigma = (mad * MAD_TO_SIGMA).max(median.sqrt()).max(MIN_SPREAD);
        Some(Band {
            expected: median,
            low: (median - p.band_sigmas * sigma).max(0.0),
            high: median + p.band_sigmas * sigma,
            seasonal,
            samples: sample.len(),
        })
    }
}

fn median(v: &mut [f64]) -> f64 {
    median_of(v)
}

fn median_of(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A band's figures as evidence: rounded, with how it was learned.
pub fn band_evidence(band: &Band, observed: f64) -> serde_json::Value {
    let r = |v: f64| (v * 10.0).round() / 10.0;
    serde_json::json!({
        "observed": r(observed),
        "expected": r(band.expected),
        "band_low": r(band.low),
        "band_high": r(band.high),
        "band_kind": if band.seasonal { "seasonal (same time of day on earlier days)" } else { "recent (median and MAD of the last day)" },
        "band_samples": band.samples,
    })
}

/// Version of the baseline file format.
pub const BASELINE_FILE_VERSION: u32 = 1;

/// A file of learned baselines (`replay --save-baseline`, the monitor's `baseline.json`), read back with
/// `--baseline FILE` so a monitor starts with a month of history instead of a warm-up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    pub authwatch_baseline: u32,
    /// By rule id.
    pub rules: BTreeMap<String, RuleBaseline>,
}

/// One rule's baselines: the bucket they were learned with and each pool's series, by pool key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBaseline {
    pub bucket_ms: i64,
    pub pools: BTreeMap<String, Series>,
}

impl BaselineFile {
    pub fn new() -> BaselineFile {
        BaselineFile { authwatch_baseline: BASELINE_FILE_VERSION, rules: BTreeMap::new() }
    }

    /// Reads a baseline file; the error names the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<BaselineFile, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let file: BaselineFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not an authwatch baseline file: {e}", path.display()))?;
        if file.authwatch_baseline != BASELINE_FILE_VERSION {
            return Err(format!(
                "{}: baseline format version {} (this authwatch reads {BASELINE_FILE_VERSION})",
                path.display(),
                file.authwatch_baseline
            ));
        }
        Ok(file)
    }

    /// Writes the file atomically (a temporary file renamed over it).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(self).map_err(|e| format!("cannot encode the baseline: {e}"))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }

    /// The series `rule` learned with `p`'s bucket, by pool key; none when the file has none, or when
    /// they were learned with another bucket (checked at load by [`BaselineFile::check`]).
    pub fn series_for<'a>(&'a self, rule: &str, p: &BandParams) -> impl Iterator<Item = (&'a String, &'a Series)> {
        self.rules.get(rule).filter(|r| r.bucket_ms == p.bucket.millis()).into_iter().flat_map(|r| r.pools.iter())
    }

    /// Checks the file against the rules that will read it: a rule learned with another bucket size
    /// cannot be seeded.
    pub fn check(&self, rules: &[(&str, BandParams)]) -> Result<(), String> {
        for (id, p) in rules {
            if let Some(r) = self.rules.get(*id) {
                if r.bucket_ms != p.bucket.millis() {
                    return Err(format!(
                        "rule {id} was learned with {} buckets, its spec now has {}",
                        Span(r.bucket_ms),
                        p.bucket
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BandParams {
        BandParams {
            bucket: Span::mins(10),
            history: Span::hours(24 * 14),
            warmup: Span::hours(4),
            seasonal_min_days: 7,
            band_sigmas: 4.0,
        }
    }

    #[test]
    fn a_robust_band_ignores_one_extreme_bucket_and_warmup_counts_from_the_first_bucket() {
        let p = params();
        let mut s = Series::default();
        for b in 0..30 {
            s.record(&p, b, if b == 10 { 500.0 } else { 10.0 + (b % 3) as f64 });
        }
        let band = s.band(&p, 30).unwrap_or_else(|| panic!("no band"));
        assert!(!band.seasonal);
        assert!((band.expected - 11.0).abs() < 1e-9, "{band:?}");
        assert!(band.high < 30.0 && band.high > 15.0, "{band:?}");
        assert!(!s.warmed_up(&p, 23));
        assert!(s.warmed_up(&p, 24));
    }

    #[test]
    fn with_a_week_of_history_the_band_is_by_time_of_day() {
        let p = params();
        let mut s = Series::default();
        let per_day = p.buckets_per_day();
        // Busy at bucket 54 (09:00) every day, quiet otherwise.
        for b in 0..per_day * 8 {
            let busy = (b.rem_euclid(per_day) - 54).abs() <= 1;
            s.record(&p, b, if busy { 200.0 } else { 5.0 });
        }
        let at_nine = s.band(&p, per_day * 8 + 54).unwrap_or_else(|| panic!("no band"));
        assert!(at_nine.seasonal);
        assert!(at_nine.low < 200.0 && at_nine.high > 200.0, "{at_nine:?}");
        let at_three = s.band(&p, per_day * 8 + 18).unwrap_or_else(|| panic!("no band"));
        assert!(at_three.high < 200.0, "{at_three:?}");
    }

    #[test]
    fn history_is_bounded() {
        let p = BandParams { history: Span::hours(2), warmup: Span::hours(1), ..params() };
        let mut s = Series::default();
        for b in 0..1000 {
            s.record(&p, b, 1.0);
        }
        assert_eq!(s.len(), 12);
    }

    #[test]
    fn a_baseline_file_round_trips_and_says_what_is_wrong() {
        let p = params();
        let mut s = Series::default();
        for b in 0..40 {
            s.record(&p, b, 3.0);
        }
        let mut file = BaselineFile::new();
        let rule = RuleBaseline { bucket_ms: p.bucket.millis(), pools: [("us-east-1_X".to_string(), s)].into() };
        file.rules.insert("pool_failure_anomaly".into(), rule);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("b.json");
        file.write(&path).unwrap_or_else(|e| panic!("{e}"));
        let back = BaselineFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, file);
        let (_, series) = back.series_for("pool_failure_anomaly", &p).next().unwrap_or_else(|| panic!("no series"));
        assert!(series.warmed_up(&p, 40));
        let other = BandParams { bucket: Span::mins(5), ..p };
        assert_eq!(back.series_for("pool_failure_anomaly", &other).count(), 0);
        let err = back.check(&[("pool_failure_anomaly", other)]).unwrap_err();
        assert!(err.contains("10m") && err.contains("5m"), "{err}");
        std::fs::write(&path, "{}").unwrap_or_else(|e| panic!("{e}"));
        let err = BaselineFile::read(&path).unwrap_err();
        assert!(err.contains("b.json") && err.contains("not an authwatch baseline"), "{err}");
    }
}
