//! The CloudWatch side of the detectors: metric filters, alarms and Contributor Insights rules generated
//! from the `[cloudwatch]` section of each spec (`section`), written as AWS CLI input, CloudFormation,
//! Terraform or rule bodies (`generate`), or applied through the AWS SDK (`apply`).

pub mod apply;
pub mod generate;
pub mod names;
pub mod section;

use std::collections::BTreeMap;

pub use section::{CloudWatchSpec, CwLogFormat};

use crate::spec::{Spec, SpecError};

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
    for format in CwLogFormat::ALL {
        let filters: Vec<&CloudWatchSpec> = by_metric.values().filter_map(|s| s.cloudwatch.as_ref()).collect();
        let with_pattern: Vec<&str> = filters.iter().filter_map(|c| c.pattern(format)).collect();
        let regex_bearing =
            with_pattern.iter().filter(|p| section::check_pattern(p, false).is_ok_and(|p| p.regex_count() > 0)).count();
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
