//! The `[cloudwatch]` section of a detector spec: raw TOML (unknown keys rejected) validated against every
//! AWS limit of aws-formats.md §4-5 into [`CloudWatchSpec`], and the checks that hold across all specs.
//! The metric filter generator (`crate::metric_filters`) reads what is validated here.
//!
//! A metric filter counts the events a detector counts across the whole log group; it cannot key by user or
//! address (a dimension per IP or user would get the filter disabled). The alarm approximates the rule at
//! that aggregate level; the Contributor Insights rule shows the per-key top contributors.

pub mod names;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Spec, SpecError};
use crate::event::LogFormat;
use crate::pattern::{FilterPattern, PatternKind, MAX_REGEX_PER_PATTERN};

/// CloudWatch's standard units (`MetricDatum.Unit`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];
/// `PutMetricAlarm.Statistic`.
pub const STATISTICS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];
/// `PutMetricAlarm.ComparisonOperator` for static thresholds.
pub const COMPARISONS: &[&str] =
    &["GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"];
/// `PutMetricAlarm.ComparisonOperator` for an alarm on an anomaly-detection band.
pub const ANOMALY_COMPARISONS: &[&str] =
    &["GreaterThanUpperThreshold", "LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold"];
/// `[cloudwatch.alarm] kind`: a fixed threshold, or CloudWatch's anomaly-detection band.
pub const ALARM_KINDS: &[&str] = &["static", "anomaly"];
/// Band width (standard deviations) when an anomaly alarm gives none: the CloudWatch console's default.
pub const DEFAULT_BAND_WIDTH: f64 = 2.0;
/// `PutMetricAlarm.TreatMissingData`.
pub const MISSING_DATA: &[&str] = &["breaching", "notBreaching", "ignore", "missing"];
/// AWS: at most 3 dimensions per metric transformation.
pub const MAX_DIMENSIONS: usize = 3;
/// AWS: Period × EvaluationPeriods at most one day (seven days for periods of an hour or more).
pub const MAX_EVALUATION_SECONDS: u64 = 86_400;
pub const MAX_EVALUATION_SECONDS_HOURLY: u64 = 7 * 86_400;
/// AWS: `EvaluationPeriods` is at least 1; the API caps at 100000, far beyond a day of 10 s periods.
pub const MAX_EVALUATION_PERIODS: u32 = 8_640;
/// Contributor Insights: at most 4 keys and 4 filters per rule.
pub const MAX_CONTRIBUTOR_FILTERS: usize = 4;
/// Field names that identify a user or an address: never a dimension (aws-formats.md §4).
const PERSONAL_FIELDS: &[&str] =
    &["ip", "ipaddress", "sourceipaddress", "username", "usersub", "sub", "user", "email", "phone_number", "userid"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    pattern: RawPatterns,
    metric_name: String,
    namespace: String,
    #[serde(default = "default_value_text")]
    value: String,
    #[serde(default = "default_unit")]
    unit: String,
    default_value: Option<f64>,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    alarm: RawAlarm,
    #[serde(default)]
    contributors: RawContributors,
}

fn default_value_text() -> String {
    "1".into()
}

fn default_unit() -> String {
    "Count".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatterns {
    cognito: Option<String>,
    cloudtrail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarm {
    #[serde(default = "default_alarm_kind")]
    kind: String,
    #[serde(default = "default_statistic")]
    statistic: String,
    period: u64,
    evaluation_periods: u32,
    datapoints_to_alarm: u32,
    /// Static alarms only.
    threshold: Option<f64>,
    /// Anomaly alarms only: the band's width in standard deviations.
    band_width: Option<f64>,
    comparison: String,
    #[serde(default = "default_missing")]
    treat_missing_data: String,
}

fn default_alarm_kind() -> String {
    "static".into()
}

fn default_statistic() -> String {
    "Sum".into()
}

fn default_missing() -> String {
    "notBreaching".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawContributors {
    #[serde(default)]
    cognito: Vec<RawContributorFilter>,
    #[serde(default)]
    cloudtrail: Vec<RawContributorFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContributorFilter {
    #[serde(rename = "match")]
    selector: String,
    #[serde(rename = "in")]
    values: Vec<String>,
}

/// The validated CloudWatch side of one detector.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudWatchSpec {
    /// Filter pattern per log format; a format without one gets no filter.
    pub patterns: BTreeMap<LogFormat, String>,
    pub metric_name: String,
    /// Used unless `authwatch filters --namespace` overrides it.
    pub namespace: String,
    /// `metricValue`: a number or `$.field` / `$field`.
    pub value: String,
    pub unit: String,
    pub default_value: Option<f64>,
    /// Dimension name → selector (`$.field`).
    pub dimensions: BTreeMap<String, String>,
    pub alarm: AlarmSpec,
    /// Contributor Insights filters (ANDed) per log format; a format without them gets no rule.
    pub contributors: BTreeMap<LogFormat, Vec<ContributorFilter>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub statistic: String,
    pub period: u64,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: Threshold,
    pub comparison: String,
    pub treat_missing_data: String,
}

/// What the alarm compares the metric with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A fixed number.
    Static(f64),
    /// CloudWatch's anomaly-detection band for the metric and statistic (`ANOMALY_DETECTION_BAND`), this many
    /// standard deviations wide: a model AWS trains on the metric's own history.
    Band { width: f64 },
}

impl AlarmSpec {
    /// One line for the README's detector table: the condition and its periods.
    pub fn describe(&self, metric_name: &str) -> String {
        let condition = match self.threshold {
            Threshold::Static(t) => {
                let op = match self.comparison.as_str() {
                    "GreaterThanOrEqualToThreshold" => ">=",
                    "GreaterThanThreshold" => ">",
                    "LessThanThreshold" => "<",
                    _ => "<=",
                };
                format!("{op} {t}")
            }
            Threshold::Band { width } => {
                let side = match self.comparison.as_str() {
                    "GreaterThanUpperThreshold" => "above",
                    "LessThanLowerThreshold" => "below",
                    _ => "outside",
                };
                format!("{side} its anomaly band ({width} sd)")
            }
        };
        format!(
            "`{metric_name}` {} {condition} per {} s ({} of {})",
            self.statistic, self.period, self.datapoints_to_alarm, self.evaluation_periods
        )
    }
}

/// A Contributor Insights filter: the event's `selector` value is one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContributorFilter {
    pub selector: String,
    pub values: Vec<String>,
}

impl CloudWatchSpec {
    pub fn pattern(&self, format: LogFormat) -> Option<&str> {
        self.patterns.get(&format).map(String::as_str)
    }
}

/// Validates the section; errors name the key (`cloudwatch.alarm.period: ...`).
pub fn validate(raw: RawSection) -> Result<CloudWatchSpec, String> {
    let mut patterns = BTreeMap::new();
    for (format, text) in
        [(LogFormat::CognitoUserActivity, raw.pattern.cognito), (LogFormat::CloudTrail, raw.pattern.cloudtrail)]
    {
        if let Some(text) = text {
            check_pattern(&text, !raw.dimensions.is_empty())
                .map_err(|e| format!("cloudwatch.pattern.{}: {e}", format.as_str()))?;
            patterns.insert(format, text);
        }
    }
    if patterns.is_empty() {
        return Err("cloudwatch.pattern: give at least one of `cognito` and `cloudtrail`".into());
    }
    names::metric_name(&raw.metric_name).map_err(|e| format!("cloudwatch.metric_name: {e}"))?;
    names::namespace(&raw.namespace).map_err(|e| format!("cloudwatch.namespace: {e}"))?;
    check_value(&raw.value).map_err(|e| format!("cloudwatch.value: {e}"))?;
    if !UNITS.contains(&raw.unit.as_str()) {
        return Err(format!("cloudwatch.unit: '{}' is not a CloudWatch unit ({})", raw.unit, UNITS.join(", ")));
    }
    if let Some(v) = raw.default_value {
        if !v.is_finite() {
            return Err("cloudwatch.default_value: must be a finite number".into());
        }
        if !raw.dimensions.is_empty() {
            return Err("cloudwatch.default_value: AWS does not allow a default value together with dimensions".into());
        }
    }
    check_dimensions(&raw.dimensions).map_err(|e| format!("cloudwatch.dimensions: {e}"))?;
    if !raw.dimensions.is_empty() {
        // A filter with dimensions publishes only per-dimension metrics; the spec's alarm watches the
        // metric as a whole, which would then never receive data.
        return Err("cloudwatch.dimensions: the alarm watches the metric without dimensions; a filter with \
                    dimensions would never feed it"
            .into());
    }
    let alarm = check_alarm(raw.alarm)?;
    let mut contributors = BTreeMap::new();
    for (format, filters) in [
        (LogFormat::CognitoUserActivity, raw.contributors.cognito),
        (LogFormat::CloudTrail, raw.contributors.cloudtrail),
    ] {
        if filters.is_empty() {
            continue;
        }
        let at = format!("cloudwatch.contributors.{}", format.as_str());
        if filters.len() > MAX_CONTRIBUTOR_FILTERS {
            return Err(format!("{at}: Contributor Insights allows at most {MAX_CONTRIBUTOR_FILTERS} filters"));
        }
        let mut out = Vec::new();
        for f in filters {
            names::json_selector(&f.selector).map_err(|e| format!("{at}: match: {e}"))?;
            if f.values.is_empty() || f.values.len() > 10 {
                return Err(format!("{at}: `in` takes 1 to 10 values"));
            }
            for v in &f.values {
                names::printable(v, 1, 256).map_err(|e| format!("{at}: in: {e}"))?;
            }
            out.push(ContributorFilter { selector: f.selector, values: f.values });
        }
        contributors.insert(format, out);
    }
    Ok(CloudWatchSpec {
        patterns,
        metric_name: raw.metric_name,
        namespace: raw.namespace,
        value: raw.value,
        unit: raw.unit,
        default_value: raw.default_value,
        dimensions: raw.dimensions,
        alarm,
        contributors,
    })
}

/// A pattern AWS accepts for a metric filter: parses, at most 2 regex, and (with dimensions) JSON or
/// space-delimited. Parse errors carry the caret rendering.
pub fn check_pattern(text: &str, has_dimensions: bool) -> Result<FilterPattern, String> {
    let pattern = FilterPattern::parse(text).map_err(|e| format!("{e}\n{}", e.render(text)))?;
    if pattern.regex_count() > MAX_REGEX_PER_PATTERN {
        return Err(format!("{} regex; AWS allows at most {MAX_REGEX_PER_PATTERN} per pattern", pattern.regex_count()));
    }
    if has_dimensions && !matches!(pattern.kind(), PatternKind::Json | PatternKind::SpaceDelimited) {
        return Err("dimensions need a JSON or space-delimited pattern".into());
    }
    Ok(pattern)
}

/// `metricValue`: a number, or a selector `$.field` (JSON) or `$field` (space-delimited).
fn check_value(v: &str) -> Result<(), String> {
    if v.parse::<f64>().is_ok_and(f64::is_finite) {
        return Ok(());
    }
    if v.starts_with("$.") {
        return names::json_selector(v);
    }
    if let Some(name) = v.strip_prefix('$') {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Ok(());
        }
    }
    Err(format!("'{v}' is neither a number nor a field selector ($.field or $field)"))
}

fn check_dimensions(dims: &BTreeMap<String, String>) -> Result<(), String> {
    if dims.len() > MAX_DIMENSIONS {
        return Err(format!("{} dimensions; AWS allows at most {MAX_DIMENSIONS}", dims.len()));
    }
    for (name, selector) in dims {
        names::dimension_name(name).map_err(|e| format!("{name}: {e}"))?;
        if !selector.starts_with('$') {
            return Err(format!("{name}: '{selector}' is not a field selector ($.field or $field)"));
        }
        if selector.starts_with("$.") {
            names::json_selector(selector).map_err(|e| format!("{name}: {e}"))?;
        }
        let last = selector.rsplit(['.', '$', '[', '\'']).find(|s| !s.is_empty() && *s != "]").unwrap_or("");
        if PERSONAL_FIELDS.contains(&last.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{name}: '{selector}' is a user or an address; never a dimension (the filter would be disabled \
                 after 1,000 distinct values an hour; use Contributor Insights for per-key counts)"
            ));
        }
    }
    Ok(())
}

fn check_alarm(a: RawAlarm) -> Result<AlarmSpec, String> {
    let one_of = |key: &str, v: &str, allowed: &[&str]| {
        if allowed.contains(&v) {
            Ok(())
        } else {
            Err(format!("cloudwatch.alarm.{key}: '{v}' is not one of {}", allowed.join(", ")))
        }
    };
    one_of("kind", &a.kind, ALARM_KINDS)?;
    one_of("statistic", &a.statistic, STATISTICS)?;
    let anomaly = a.kind == "anomaly";
    one_of("comparison", &a.comparison, if anomaly { ANOMALY_COMPARISONS } else { COMPARISONS })?;
    one_of("treat_missing_data", &a.treat_missing_data, MISSING_DATA)?;
    if !(matches!(a.period, 10 | 20 | 30) || (a.period >= 60 && a.period.is_multiple_of(60))) {
        return Err(format!("cloudwatch.alarm.period: {} s; AWS allows 10, 20, 30 or a multiple of 60", a.period));
    }
    if a.evaluation_periods == 0 || a.evaluation_periods > MAX_EVALUATION_PERIODS {
        return Err(format!("cloudwatch.alarm.evaluation_periods: must be 1 to {MAX_EVALUATION_PERIODS}"));
    }
    let max = if a.period >= 3600 { MAX_EVALUATION_SECONDS_HOURLY } else { MAX_EVALUATION_SECONDS };
    if a.period.saturating_mul(u64::from(a.evaluation_periods)) > max {
        return Err(format!("cloudwatch.alarm: period × evaluation_periods is over AWS's {max} s"));
    }
    if a.datapoints_to_alarm == 0 || a.datapoints_to_alarm > a.evaluation_periods {
        return Err(format!(
            "cloudwatch.alarm.datapoints_to_alarm: {} must be 1 to evaluation_periods ({})",
            a.datapoints_to_alarm, a.evaluation_periods
        ));
    }
    let threshold = match (anomaly, a.threshold, a.band_width) {
        (false, Some(t), None) if t.is_finite() => Threshold::Static(t),
        (false, Some(_), None) => return Err("cloudwatch.alarm.threshold: must be a finite number".into()),
        (false, None, _) => return Err("cloudwatch.alarm.threshold: a static alarm needs a threshold".into()),
        (false, Some(_), Some(_)) => {
            return Err("cloudwatch.alarm.band_width: only an anomaly alarm (kind = \"anomaly\") has a band".into())
        }
        (true, Some(_), _) => {
            return Err("cloudwatch.alarm.threshold: an anomaly alarm has no threshold; its band is learned \
                        (give band_width, in standard deviations)"
                .into())
        }
        (true, None, width) => {
            let width = width.unwrap_or(DEFAULT_BAND_WIDTH);
            if !(width.is_finite() && width > 0.0) {
                return Err(format!(
                    "cloudwatch.alarm.band_width: {width} must be a positive number of standard deviations"
                ));
            }
            Threshold::Band { width }
        }
    };
    Ok(AlarmSpec {
        statistic: a.statistic,
        period: a.period,
        evaluation_periods: a.evaluation_periods,
        datapoints_to_alarm: a.datapoints_to_alarm,
        threshold,
        comparison: a.comparison,
        treat_missing_data: a.treat_missing_data,
    })
}

/// AWS: at most 5 filters with a regex per log group.
pub const MAX_REGEX_FILTERS_PER_LOG_GROUP: usize = 5;
/// AWS: at most 100 metric filters per log group.
pub const MAX_FILTERS_PER_LOG_GROUP: usize = 100;

/// Checks that hold across specs: specs that name the same metric share one metric filter, so they must
/// define it identically; and per log format, the filters fit a log group's limits.
pub fn check_set(specs: &[Spec]) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let mut by_metric: BTreeMap<(&str, &str), &Spec> = BTreeMap::new();
    for spec in specs {
        let Some(cw) = &spec.cloudwatch else { continue };
        match by_metric.get(&(cw.namespace.as_str(), cw.metric_name.as_str())) {
            Some(first) if !same_filter(first.cloudwatch.as_ref(), cw) => errors.push(SpecError {
                source: spec.source.clone(),
                message: format!(
                    "cloudwatch.metric_name: '{}' is also defined by {} with a different pattern, value, unit, \
                     default or dimensions; specs sharing a metric share its filter and must agree",
                    cw.metric_name, first.source
                ),
            }),
            Some(_) => {}
            None => {
                by_metric.insert((cw.namespace.as_str(), cw.metric_name.as_str()), spec);
            }
        }
    }
    for format in LogFormat::ALL {
        let filters: Vec<&CloudWatchSpec> = by_metric.values().filter_map(|s| s.cloudwatch.as_ref()).collect();
        let with_pattern: Vec<&str> = filters.iter().filter_map(|c| c.pattern(format)).collect();
        let regex_bearing =
            with_pattern.iter().filter(|p| check_pattern(p, false).is_ok_and(|p| p.regex_count() > 0)).count();
        let problem = if regex_bearing > MAX_REGEX_FILTERS_PER_LOG_GROUP {
            Some(format!(
                "{regex_bearing} filters with a regex; AWS allows {MAX_REGEX_FILTERS_PER_LOG_GROUP} per log group"
            ))
        } else if with_pattern.len() > MAX_FILTERS_PER_LOG_GROUP {
            Some(format!("{} metric filters; AWS allows {MAX_FILTERS_PER_LOG_GROUP} per log group", with_pattern.len()))
        } else {
            None
        };
        if let Some(p) = problem {
            errors.push(SpecError {
                source: "filters".into(),
                message: format!("cloudwatch.pattern.{}: {p}", format.as_str()),
            });
        }
    }
    errors
}

fn same_filter(a: Option<&CloudWatchSpec>, b: &CloudWatchSpec) -> bool {
    a.is_some_and(|a| {
        a.patterns == b.patterns
            && a.value == b.value
            && a.unit == b.unit
            && a.default_value == b.default_value
            && a.dimensions == b.dimensions
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_are_recognised_in_selectors() {
        let mut dims = BTreeMap::new();
        dims.insert("Ip".to_string(), "$.message.ipAddress".to_string());
        assert!(check_dimensions(&dims).unwrap_err().contains("never a dimension"));
        dims.clear();
        dims.insert("Who".to_string(), "$.additionalEventData.sub".to_string());
        assert!(check_dimensions(&dims).unwrap_err().contains("never a dimension"));
        dims.clear();
        dims.insert("Type".to_string(), "$.message.eventType".to_string());
        assert_eq!(check_dimensions(&dims), Ok(()));
    }

    #[test]
    fn values_are_numbers_or_selectors() {
        assert!(check_value("1").is_ok());
        assert!(check_value("$.latency").is_ok());
        assert!(check_value("$bytes").is_ok());
        assert!(check_value("one").is_err());
        assert!(check_value("inf").is_err());
    }
}
