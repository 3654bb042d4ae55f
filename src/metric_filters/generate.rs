//! Turns the specs' `[cloudwatch]` sections into a [`Plan`] for one log group, and the plan into files:
//! AWS CLI `--cli-input-json` documents, a CloudFormation template (JSON and YAML), Terraform, and
//! Contributor Insights rule bodies.
//!
//! Output is stable: the same specs and arguments give byte-identical files (maps are ordered, nothing
//! depends on time or hashing). Every value is validated (`names`) before it gets here, and every string is
//! still escaped for the format it lands in, so no name, pattern or ARN can add structure to a file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::event::LogFormat;
use crate::spec::cloudwatch::names;
use crate::spec::{KeyKind, SpecSet};

/// Default prefix of generated resource names.
pub const DEFAULT_NAME_PREFIX: &str = "authwatch";
/// AWS: `AlarmDescription` is at most 1024 characters.
const MAX_ALARM_DESCRIPTION: usize = 1024;

/// Where and how the filters are deployed: the validated arguments of `authwatch filters`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub log_group: String,
    pub format: LogFormat,
    /// Overrides every spec's namespace.
    pub namespace: Option<String>,
    pub sns_topic_arns: Vec<String>,
    pub name_prefix: String,
}

impl Target {
    /// Validates every value that will be written into generated files or sent to AWS.
    pub fn new(
        log_group: &str,
        format: LogFormat,
        namespace: Option<&str>,
        sns_topic_arns: &[String],
        name_prefix: &str,
    ) -> Result<Target, String> {
        names::log_group_name(log_group).map_err(|e| format!("--log-group: {e}"))?;
        if let Some(ns) = namespace {
            names::namespace(ns).map_err(|e| format!("--namespace: {e}"))?;
        }
        for arn in sns_topic_arns {
            names::sns_topic_arn(arn).map_err(|e| format!("--sns-topic-arn: {e}"))?;
        }
        names::name_prefix(name_prefix).map_err(|e| format!("--name-prefix: {e}"))?;
        let mut arns = sns_topic_arns.to_vec();
        arns.sort();
        arns.dedup();
        Ok(Target {
            log_group: log_group.to_owned(),
            format,
            namespace: namespace.map(str::to_owned),
            sns_topic_arns: arns,
            name_prefix: name_prefix.to_owned(),
        })
    }
}

/// One `logs put-metric-filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilter {
    pub filter_name: String,
    pub log_group: String,
    pub pattern: String,
    pub metric_name: String,
    pub namespace: String,
    pub value: String,
    pub unit: String,
    pub default_value: Option<f64>,
}

/// One `cloudwatch put-metric-alarm`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub alarm_name: String,
    pub description: String,
    pub metric_name: String,
    pub namespace: String,
    pub statistic: String,
    pub period: u64,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    pub actions: Vec<String>,
}

/// One Contributor Insights rule: its name and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct InsightRule {
    pub rule_name: String,
    pub body: Value,
}

/// Everything to create for one log group, in a stable order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub filters: Vec<MetricFilter>,
    pub alarms: Vec<Alarm>,
    pub rules: Vec<InsightRule>,
    /// Enabled specs that generate nothing for this format, and why.
    pub skipped: Vec<String>,
}

/// Builds the plan: one metric filter per distinct metric (specs sharing a metric share its filter), one
/// alarm per spec, one Contributor Insights rule per spec that defines filters for the format.
pub fn plan(specs: &SpecSet, target: &Target) -> Plan {
    let mut plan = Plan::default();
    let mut seen_filters = BTreeSet::new();
    for spec in specs.enabled() {
        let Some(cw) = &spec.cloudwatch else {
            plan.skipped.push(format!("{}: no [cloudwatch] section (no aggregate form)", spec.id));
            continue;
        };
        let Some(pattern) = cw.pattern(target.format) else {
            plan.skipped.push(format!("{}: no cloudwatch.pattern.{}", spec.id, target.format.as_str()));
            continue;
        };
        let namespace = target.namespace.clone().unwrap_or_else(|| cw.namespace.clone());
        let filter_name = format!("{}-{}", target.name_prefix, cw.metric_name);
        if seen_filters.insert(filter_name.clone()) {
            plan.filters.push(MetricFilter {
                filter_name,
                log_group: target.log_group.clone(),
                pattern: pattern.to_owned(),
                metric_name: cw.metric_name.clone(),
                namespace: namespace.clone(),
                value: cw.value.clone(),
                unit: cw.unit.clone(),
                default_value: cw.default_value,
            });
        }
        let mut description = match spec.key {
            KeyKind::Ip | KeyKind::User => format!(
                "authwatch {}: {} Aggregate approximation over log group {}: metric filters cannot count per {}.",
                spec.id,
                spec.description,
                target.log_group,
                if spec.key == KeyKind::Ip { "address" } else { "user" }
            ),
            KeyKind::Pool => format!(
                "authwatch {}: {} Pool-wide count over log group {} (one pool per log group).",
                spec.id, spec.description, target.log_group
            ),
        };
        if description.chars().count() > MAX_ALARM_DESCRIPTION {
            description = description.chars().take(MAX_ALARM_DESCRIPTION).collect();
        }
        let a = &cw.alarm;
        plan.alarms.push(Alarm {
            alarm_name: format!("{}-{}", target.name_prefix, spec.id),
            description,
            metric_name: cw.metric_name.clone(),
            namespace,
            statistic: a.statistic.clone(),
            period: a.period,
            evaluation_periods: a.evaluation_periods,
            datapoints_to_alarm: a.datapoints_to_alarm,
            threshold: a.threshold,
            comparison: a.comparison.clone(),
            treat_missing_data: a.treat_missing_data.clone(),
            actions: target.sns_topic_arns.clone(),
        });
        if let Some(filters) = cw.contributors.get(&target.format) {
            // A pool-wide rule's contributors are its addresses: who drives the pool's count.
            let key = match spec.key {
                KeyKind::Ip | KeyKind::Pool => ip_selector(target.format),
                KeyKind::User => user_selector(target.format),
            };
            let filters: Vec<Value> = filters.iter().map(|f| json!({ "Match": f.selector, "In": f.values })).collect();
            plan.rules.push(InsightRule {
                rule_name: format!("{}-{}-per-{}", target.name_prefix, spec.id, spec.key.as_str()),
                body: json!({
                    "Schema": { "Name": "CloudWatchLogRule", "Version": 1 },
                    "LogGroupNames": [target.log_group],
                    "LogFormat": "JSON",
                    "Contribution": { "Keys": [key], "Filters": filters },
                    "AggregateOn": "Count",
                }),
            });
        }
    }
    plan
}

/// `aws logs put-metric-filter --cli-input-json` input.
pub fn filter_cli_json(f: &MetricFilter) -> Value {
    let mut t = json!({
        "metricName": f.metric_name,
        "metricNamespace": f.namespace,
        "metricValue": f.value,
        "unit": f.unit,
    });
    if let Some(d) = f.default_value {
        t["defaultValue"] = json!(d);
    }
    json!({
        "logGroupName": f.log_group,
        "filterName": f.filter_name,
        "filterPattern": f.pattern,
        "metricTransformations": [t],
    })
}

/// `aws cloudwatch put-metric-alarm --cli-input-json` input.
pub fn alarm_cli_json(a: &Alarm) -> Value {
    let mut v = json!({
        "AlarmName": a.alarm_name,
        "AlarmDescription": a.description,
        "ActionsEnabled": true,
        "MetricName": a.metric_name,
        "Namespace": a.namespace,
        "Statistic": a.statistic,
        "Period": a.period,
        "EvaluationPeriods": a.evaluation_periods,
        "DatapointsToAlarm": a.datapoints_to_alarm,
        "Threshold": a.threshold,
        "ComparisonOperator": a.comparison,
        "TreatMissingData": a.treat_missing_data,
    });
    if !a.actions.is_empty() {
        v["AlarmActions"] = json!(a.actions);
    }
    v
}

/// The JSON selector of the source address, for Contributor Insights keys.
fn ip_selector(format: LogFormat) -> &'static str {
    match format {
        LogFormat::CognitoUserActivity => "$.message.ipAddress",
        LogFormat::CloudTrail => "$.sourceIPAddress",
    }
}

/// The JSON selector of the user: the name in the Cognito log; the `sub` in CloudTrail, which never logs
/// the name of a failed sign-in.
fn user_selector(format: LogFormat) -> &'static str {
    match format {
        LogFormat::CognitoUserActivity => "$.message.userName",
        LogFormat::CloudTrail => "$.additionalEventData.sub",
    }
}

/// The CloudFormation template as a JSON value (rendered as JSON or YAML).
pub fn cloudformation(plan: &Plan) -> Value {
    let mut resources = serde_json::Map::new();
    let mut ids = LogicalIds::default();
    for f in &plan.filters {
        let mut t = json!({
            "MetricName": f.metric_name,
            "MetricNamespace": f.namespace,
            "MetricValue": f.value,
            "Unit": f.unit,
        });
        if let Some(d) = f.default_value {
            t["DefaultValue"] = json!(d);
        }
        let props = json!({
            "FilterName": f.filter_name,
            "FilterPattern": f.pattern,
            "LogGroupName": f.log_group,
            "MetricTransformations": [t],
        });
        resources.insert(
            ids.id("MetricFilter", &f.filter_name),
            json!({ "Type": "AWS::Logs::MetricFilter", "Properties": props }),
        );
    }
    for a in &plan.alarms {
        let mut props = json!({
            "AlarmName": a.alarm_name,
            "AlarmDescription": a.description,
            "ActionsEnabled": true,
            "MetricName": a.metric_name,
            "Namespace": a.namespace,
            "Statistic": a.statistic,
            "Period": a.period,
            "EvaluationPeriods": a.evaluation_periods,
            "DatapointsToAlarm": a.datapoints_to_alarm,
            "Threshold": a.threshold,
            "ComparisonOperator": a.comparison,
            "TreatMissingData": a.treat_missing_data,
        });
        if !a.actions.is_empty() {
            props["AlarmActions"] = json!(a.actions);
        }
        resources
            .insert(ids.id("Alarm", &a.alarm_name), json!({ "Type": "AWS::CloudWatch::Alarm", "Properties": props }));
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "authwatch: CloudWatch metric filters and alarms generated from the detector specs",
        "Resources": resources,
    })
}

/// CloudFormation logical ids: alphanumeric, unique (a numeric suffix separates names that differ only in
/// punctuation).
#[derive(Default)]
struct LogicalIds {
    used: BTreeSet<String>,
}

impl LogicalIds {
    fn id(&mut self, kind: &str, name: &str) -> String {
        let mut base = String::from(kind);
        let mut upper = true;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                base.push(if upper { c.to_ascii_uppercase() } else { c });
                upper = false;
            } else {
                upper = true;
            }
        }
        let mut id = base.clone();
        let mut n = 2;
        while !self.used.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        id
    }
}

/// Pretty JSON with a final newline.
pub fn to_json(v: &Value) -> String {
    // Serializing a `Value` cannot fail: its keys are strings.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// YAML for a JSON value: block style, every string (keys too) double-quoted with JSON escapes, which YAML's
/// double-quoted style reads the same way. Nothing a value holds can become YAML structure.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_value(v, 0, &mut out);
    out
}

fn yaml_value(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let _ = write!(out, "{pad}{}:", yaml_scalar(&Value::String(k.clone())));
                yaml_child(child, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for child in items {
                let _ = write!(out, "{pad}-");
                match child {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key on the dash line, the others aligned under it.
                        let mut first = true;
                        for (k, grand) in m {
                            let lead = if first { " ".to_string() } else { " ".repeat(indent + 2) };
                            first = false;
                            let _ = write!(out, "{lead}{}:", yaml_scalar(&Value::String(k.clone())));
                            yaml_child(grand, indent + 2, out);
                        }
                    }
                    _ => yaml_child(child, indent, out),
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(other));
        }
    }
}

fn yaml_child(child: &Value, indent: usize, out: &mut String) {
    match child {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_value(child, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml_value(child, indent + 2, out);
        }
        scalar => {
            let _ = writeln!(out, " {}", yaml_scalar(scalar));
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // JSON string escapes are valid YAML double-quoted escapes; serde_json also escapes every control
        // character. Non-ASCII is escaped too, so the file is plain ASCII.
        Value::String(s) => ascii_json_string(s),
        other => other.to_string(),
    }
}

/// A JSON string literal with every non-ASCII character escaped as `\uXXXX`.
fn ascii_json_string(s: &str) -> String {
    let quoted = Value::String(s.to_owned()).to_string();
    let mut out = String::with_capacity(quoted.len());
    for c in quoted.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// A Terraform (HCL) string literal: `\`, `"` and control characters escaped, and the template sequences
/// `${` and `%{` doubled so they stay literal text.
pub fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() || !c.is_ascii() => {
                let mut buf = [0u16; 2];
                if (c as u32) > 0xFFFF {
                    let _ = write!(out, "\\U{:08X}", c as u32);
                } else {
                    for unit in c.encode_utf16(&mut buf) {
                        let _ = write!(out, "\\u{unit:04X}");
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Terraform resource name: lowercase letters, digits and `_`, starting with a letter.
fn hcl_name(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'r');
    }
    out
}

/// Terraform: `aws_cloudwatch_log_metric_filter` and `aws_cloudwatch_metric_alarm` resources.
pub fn terraform(plan: &Plan) -> String {
    let mut out = String::from("# Generated by authwatch from the detector specs: metric filters and alarms.\n");
    let mut used = BTreeSet::new();
    let mut unique = |base: String| {
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        name
    };
    for f in &plan.filters {
        let _ = write!(
            out,
            "\nresource \"aws_cloudwatch_log_metric_filter\" \"{}\" {{\n  name           = {}\n  pattern        = {}\n  log_group_name = {}\n\n  metric_transformation {{\n    name      = {}\n    namespace = {}\n    value     = {}\n    unit      = {}\n",
            unique(hcl_name(&f.filter_name)),
            hcl_string(&f.filter_name),
            hcl_string(&f.pattern),
            hcl_string(&f.log_group),
            hcl_string(&f.metric_name),
            hcl_string(&f.namespace),
            hcl_string(&f.value),
            hcl_string(&f.unit),
        );
        if let Some(d) = f.default_value {
            let _ = writeln!(out, "    default_value = {}", hcl_string(&json!(d).to_string()));
        }
        out.push_str("  }\n}\n");
    }
    for a in &plan.alarms {
        let actions: Vec<String> = a.actions.iter().map(|s| hcl_string(s)).collect();
        let _ = write!(
            out,
            "\nresource \"aws_cloudwatch_metric_alarm\" \"{}\" {{\n  alarm_name          = {}\n  alarm_description   = {}\n  metric_name         = {}\n  namespace           = {}\n  statistic           = {}\n  period              = {}\n  evaluation_periods  = {}\n  datapoints_to_alarm = {}\n  threshold           = {}\n  comparison_operator = {}\n  treat_missing_data  = {}\n  actions_enabled     = true\n  alarm_actions       = [{}]\n}}\n",
            unique(hcl_name(&a.alarm_name)),
            hcl_string(&a.alarm_name),
            hcl_string(&a.description),
            hcl_string(&a.metric_name),
            hcl_string(&a.namespace),
            hcl_string(&a.statistic),
            a.period,
            a.evaluation_periods,
            a.datapoints_to_alarm,
            json!(a.threshold),
            hcl_string(&a.comparison),
            hcl_string(&a.treat_missing_data),
            actions.join(", "),
        );
    }
    out
}

/// Output formats of `authwatch filters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputFormat {
    CliJson,
    CloudFormationJson,
    CloudFormationYaml,
    Terraform,
    ContributorInsights,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::CliJson,
        OutputFormat::CloudFormationJson,
        OutputFormat::CloudFormationYaml,
        OutputFormat::Terraform,
        OutputFormat::ContributorInsights,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::CliJson => "cli-json",
            OutputFormat::CloudFormationJson => "cloudformation-json",
            OutputFormat::CloudFormationYaml => "cloudformation-yaml",
            OutputFormat::Terraform => "terraform",
            OutputFormat::ContributorInsights => "contributor-insights",
        }
    }

    /// One name, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<OutputFormat>, String> {
        if s == "all" {
            return Ok(OutputFormat::ALL.to_vec());
        }
        OutputFormat::ALL.into_iter().find(|f| f.as_str() == s).map(|f| vec![f]).ok_or_else(|| {
            let known: Vec<&str> = OutputFormat::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown output format '{s}' (known: {}, all)", known.join(", "))
        })
    }
}

/// The files of one output format: relative path → content. For standard output, formats made of several
/// documents (CLI input, rule bodies) are gathered into one JSON document by [`stdout_document`].
pub fn files(plan: &Plan, format: OutputFormat) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    match format {
        OutputFormat::CliJson => {
            for f in &plan.filters {
                files.insert(format!("cli/put-metric-filter.{}.json", f.filter_name), to_json(&filter_cli_json(f)));
            }
            for a in &plan.alarms {
                files.insert(format!("cli/put-metric-alarm.{}.json", a.alarm_name), to_json(&alarm_cli_json(a)));
            }
        }
        OutputFormat::CloudFormationJson => {
            files.insert("cloudformation.json".into(), to_json(&cloudformation(plan)));
        }
        OutputFormat::CloudFormationYaml => {
            files.insert("cloudformation.yaml".into(), to_yaml(&cloudformation(plan)));
        }
        OutputFormat::Terraform => {
            files.insert("authwatch.tf".into(), terraform(plan));
        }
        OutputFormat::ContributorInsights => {
            for r in &plan.rules {
                files.insert(format!("contributor-insights/{}.json", r.rule_name), to_json(&r.body));
            }
        }
    }
    files
}

/// What `authwatch filters` prints without `--out-dir`.
pub fn stdout_document(plan: &Plan, format: OutputFormat) -> String {
    match format {
        OutputFormat::CliJson => to_json(&json!({
            "put-metric-filter": plan.filters.iter().map(filter_cli_json).collect::<Vec<_>>(),
            "put-metric-alarm": plan.alarms.iter().map(alarm_cli_json).collect::<Vec<_>>(),
        })),
        OutputFormat::ContributorInsights => {
            let rules: serde_json::Map<String, Value> =
                plan.rules.iter().map(|r| (r.rule_name.clone(), r.body.clone())).collect();
            to_json(&Value::Object(rules))
        }
        other => files(plan, other).into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_strings_keep_templates_literal() {
        assert_eq!(hcl_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(hcl_string("${x} %{if} $x %x"), r#""$${x} %%{if} $x %x""#);
        assert_eq!(hcl_string("a\nb\u{7}é"), r#""a\nb\u0007\u00E9""#);
    }

    #[test]
    fn yaml_quotes_every_string() {
        let v = json!({"A": {"B": ["x: y", "#c\n"], "N": 5}, "L": [{"K": "v", "M": "w"}]});
        assert_eq!(
            to_yaml(&v),
            "\"A\":\n  \"B\":\n    - \"x: y\"\n    - \"#c\\n\"\n  \"N\": 5\n\"L\":\n  - \"K\": \"v\"\n    \"M\": \"w\"\n"
        );
    }

    #[test]
    fn logical_ids_are_alphanumeric_and_unique() {
        let mut ids = LogicalIds::default();
        assert_eq!(ids.id("Alarm", "authwatch-failed_login"), "AlarmAuthwatchFailedLogin");
        assert_eq!(ids.id("Alarm", "authwatch_failed-login"), "AlarmAuthwatchFailedLogin2");
    }
}
