//! `authwatch filters --apply`: creates or updates the plan's metric filters and alarms through the AWS SDK.
//!
//! Idempotent: each resource is described first and written only when missing or different, so a second
//! run changes nothing and says so. A failed call is reported for its resource and the others still go
//! ahead; [`ApplyReport::failed`] tells the caller whether to exit non-zero.

use std::fmt;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Metric, MetricAlarm, MetricDataQuery, MetricStat, Statistic};
use aws_sdk_cloudwatchlogs::types::{MetricTransformation, StandardUnit};

use super::generate::{band_expression, Alarm, MetricFilter, Plan, BAND_QUERY_ID, METRIC_QUERY_ID};
use crate::spec::cloudwatch::Threshold;

/// How to reach AWS: the standard credential chain, with optional overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// What happened (or, in a dry run, would happen) to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated(Vec<String>),
    Unchanged,
    WouldCreate,
    WouldUpdate(Vec<String>),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyItem {
    /// `metric filter` or `alarm`.
    pub kind: &'static str,
    pub name: String,
    pub action: Action,
}

impl fmt::Display for ApplyItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = crate::sanitize::for_terminal(&self.name);
        match &self.action {
            Action::Created => write!(f, "created {} {name}", self.kind),
            Action::Updated(d) => write!(f, "updated {} {name} ({})", self.kind, d.join(", ")),
            Action::Unchanged => write!(f, "unchanged {} {name}", self.kind),
            Action::WouldCreate => write!(f, "would create {} {name}", self.kind),
            Action::WouldUpdate(d) => {
                write!(f, "would update {} {name} ({})", self.kind, d.join(", "))
            }
            Action::Failed(e) => write!(f, "FAILED {} {name}: {}", self.kind, crate::sanitize::for_terminal(e)),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub items: Vec<ApplyItem>,
}

impl ApplyReport {
    pub fn failed(&self) -> usize {
        self.items.iter().filter(|i| matches!(i.action, Action::Failed(_))).count()
    }

    /// Resources written (or that a dry run would write).
    pub fn changed(&self) -> usize {
        self.items.iter().filter(|i| !matches!(i.action, Action::Unchanged | Action::Failed(_))).count()
    }
}

/// Applies the plan (or only compares, when `dry_run`). Blocks on its own single-threaded runtime.
pub fn apply(plan: &Plan, conn: &Connection, dry_run: bool) -> std::io::Result<ApplyReport> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(apply_async(plan, conn, dry_run)))
}

async fn apply_async(plan: &Plan, conn: &Connection, dry_run: bool) -> ApplyReport {
    let endpoint = crate::aws::Endpoint {
        region: conn.region.as_deref(),
        profile: conn.profile.as_deref(),
        endpoint_url: conn.endpoint_url.as_deref(),
    };
    let config = crate::aws::sdk_config(&endpoint, crate::aws::DEFAULT_REQUEST_TIMEOUT).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let mut report = ApplyReport::default();
    for f in &plan.filters {
        let action = match apply_filter(&logs, f, dry_run).await {
            Ok(a) => a,
            Err(e) => Action::Failed(e),
        };
        report.items.push(ApplyItem { kind: "metric filter", name: f.filter_name.clone(), action });
    }
    for a in &plan.alarms {
        let action = match apply_alarm(&cloudwatch, a, dry_run).await {
            Ok(a) => a,
            Err(e) => Action::Failed(e),
        };
        report.items.push(ApplyItem { kind: "alarm", name: a.alarm_name.clone(), action });
    }
    report
}

fn sdk_error<E: std::error::Error>(what: &str, e: E) -> String {
    format!("{what}: {}", aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e))
}

async fn apply_filter(
    logs: &aws_sdk_cloudwatchlogs::Client,
    f: &MetricFilter,
    dry_run: bool,
) -> Result<Action, String> {
    let described = logs
        .describe_metric_filters()
        .log_group_name(&f.log_group)
        .filter_name_prefix(&f.filter_name)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeMetricFilters", e))?;
    let existing = described.metric_filters().iter().find(|m| m.filter_name() == Some(f.filter_name.as_str()));
    let diff = match existing {
        None => None,
        Some(m) => {
            let mut diff = Vec::new();
            if m.filter_pattern().unwrap_or("") != f.pattern {
                diff.push("pattern".to_string());
            }
            match m.metric_transformations() {
                [t] => diff.extend(transformation_diff(t, f)),
                _ => diff.push("metric transformations".to_string()),
            }
            Some(diff)
        }
    };
    match (&diff, dry_run) {
        (Some(d), _) if d.is_empty() => return Ok(Action::Unchanged),
        (None, true) => return Ok(Action::WouldCreate),
        (Some(d), true) => return Ok(Action::WouldUpdate(d.clone())),
        _ => {}
    }
    let transformation = MetricTransformation::builder()
        .metric_name(&f.metric_name)
        .metric_namespace(&f.namespace)
        .metric_value(&f.value)
        .set_default_value(f.default_value)
        .unit(StandardUnit::from(f.unit.as_str()))
        .build()
        .map_err(|e| sdk_error("MetricTransformation", e))?;
    logs.put_metric_filter()
        .log_group_name(&f.log_group)
        .filter_name(&f.filter_name)
        .filter_pattern(&f.pattern)
        .metric_transformations(transformation)
        .send()
        .await
        .map_err(|e| sdk_error("PutMetricFilter", e))?;
    Ok(match diff {
        None => Action::Created,
        Some(d) => Action::Updated(d),
    })
}

fn transformation_diff(t: &MetricTransformation, f: &MetricFilter) -> Vec<String> {
    let mut diff = Vec::new();
    if t.metric_name() != f.metric_name {
        diff.push("metric name".into());
    }
    if t.metric_namespace() != f.namespace {
        diff.push("namespace".into());
    }
    if t.metric_value() != f.value {
        diff.push("value".into());
    }
    if t.default_value() != f.default_value {
        diff.push("default value".into());
    }
    // An absent unit is what AWS returns for `None`.
    let unit = t.unit().map(|u| u.as_str()).unwrap_or("None");
    if unit != f.unit {
        diff.push("unit".into());
    }
    if t.dimensions().is_some_and(|d| !d.is_empty()) {
        diff.push("dimensions".into());
    }
    diff
}

async fn apply_alarm(cw: &aws_sdk_cloudwatch::Client, a: &Alarm, dry_run: bool) -> Result<Action, String> {
    let described =
        cw.describe_alarms().alarm_names(&a.alarm_name).send().await.map_err(|e| sdk_error("DescribeAlarms", e))?;
    let existing = described.metric_alarms().iter().find(|m| m.alarm_name() == Some(a.alarm_name.as_str()));
    let diff = existing.map(|m| alarm_diff(m, a));
    match (&diff, dry_run) {
        (Some(d), _) if d.is_empty() => return Ok(Action::Unchanged),
        (None, true) => return Ok(Action::WouldCreate),
        (Some(d), true) => return Ok(Action::WouldUpdate(d.clone())),
        _ => {}
    }
    let period = i32::try_from(a.period).map_err(|_| format!("period {} is out of range", a.period))?;
    let evaluation = i32::try_from(a.evaluation_periods).map_err(|_| "evaluation periods out of range".to_string())?;
    let datapoints = i32::try_from(a.datapoints_to_alarm).map_err(|_| "datapoints out of range".to_string())?;
    let put = cw
        .put_metric_alarm()
        .alarm_name(&a.alarm_name)
        .alarm_description(&a.description)
        .actions_enabled(true)
        .evaluation_periods(evaluation)
        .datapoints_to_alarm(datapoints)
        .comparison_operator(ComparisonOperator::from(a.comparison.as_str()))
        .treat_missing_data(&a.treat_missing_data)
        .set_alarm_actions(Some(a.actions.clone()));
    let put = match a.threshold {
        Threshold::Band { width } => {
            let stat = MetricStat::builder()
                .metric(Metric::builder().namespace(&a.namespace).metric_name(&a.metric_name).build())
                .period(period)
                .stat(&a.statistic)
                .build();
            let metric = MetricDataQuery::builder().id(METRIC_QUERY_ID).metric_stat(stat).return_data(true).build();
            let band = MetricDataQuery::builder()
                .id(BAND_QUERY_ID)
                .expression(band_expression(width))
                .label(a.band_label())
                .return_data(true)
                .build();
            put.metrics(metric).metrics(band).threshold_metric_id(BAND_QUERY_ID)
        }
        Threshold::Static(t) => put
            .metric_name(&a.metric_name)
            .namespace(&a.namespace)
            .statistic(Statistic::from(a.statistic.as_str()))
            .period(period)
            .threshold(t),
    };
    put.send().await.map_err(|e| sdk_error("PutMetricAlarm", e))?;
    Ok(match diff {
        None => Action::Created,
        Some(d) => Action::Updated(d),
    })
}

fn alarm_diff(m: &MetricAlarm, a: &Alarm) -> Vec<String> {
    let mut diff = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            diff.push(name.to_string());
        }
    };
    check("description", m.alarm_description().unwrap_or("") == a.description);
    check("actions enabled", m.actions_enabled() != Some(false));
    match a.threshold {
        Threshold::Static(t) => {
            check("alarm kind", m.threshold_metric_id().is_none() && m.metrics().is_empty());
            check("metric name", m.metric_name() == Some(a.metric_name.as_str()));
            check("namespace", m.namespace() == Some(a.namespace.as_str()));
            check("statistic", m.statistic().map(|s| s.as_str()) == Some(a.statistic.as_str()));
            check("period", m.period().map(i64::from) == i64::try_from(a.period).ok());
            check("threshold", m.threshold() == Some(t));
        }
        Threshold::Band { .. } => {
            check("alarm kind", m.threshold_metric_id() == Some(BAND_QUERY_ID) && m.metric_name().is_none());
            let queries = m.metrics();
            let metric = queries.iter().find(|q| q.id() == Some(METRIC_QUERY_ID));
            let stat = metric.and_then(MetricDataQuery::metric_stat);
            let watched = stat.and_then(MetricStat::metric);
            check("metric name", watched.and_then(Metric::metric_name) == Some(a.metric_name.as_str()));
            check("namespace", watched.and_then(Metric::namespace) == Some(a.namespace.as_str()));
            check("statistic", stat.and_then(MetricStat::stat) == Some(a.statistic.as_str()));
            check("period", stat.and_then(MetricStat::period).map(i64::from) == i64::try_from(a.period).ok());
            let band = queries.iter().find(|q| q.id() == Some(BAND_QUERY_ID));
            check("band", band.and_then(MetricDataQuery::expression) == a.band_expression().as_deref());
            check("metric queries", queries.len() == 2);
        }
    }
    check("evaluation periods", m.evaluation_periods().map(i64::from) == Some(i64::from(a.evaluation_periods)));
    check("datapoints to alarm", m.datapoints_to_alarm().map(i64::from) == Some(i64::from(a.datapoints_to_alarm)));
    check("comparison", m.comparison_operator().map(|c| c.as_str()) == Some(a.comparison.as_str()));
    check("missing data", m.treat_missing_data().unwrap_or("missing") == a.treat_missing_data);
    let mut actions: Vec<&str> = m.alarm_actions().iter().map(String::as_str).collect();
    actions.sort_unstable();
    check("alarm actions", actions == a.actions.iter().map(String::as_str).collect::<Vec<_>>());
    check("dimensions", m.dimensions().is_empty());
    diff
}
