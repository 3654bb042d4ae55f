//! The `[cloudwatch]` section's validator: every AWS limit of aws-formats.md §4-5 is enforced with an error
//! naming the file and the key. Each case is one edit of a valid spec and the error it must give.

use authwatch::spec::{parse_set, SpecSet};

const BASE: &str = r#"
id = "x"
detector = "failed_login_burst"
description = "d"
key = "user"
window = "5m"
threshold = 10
severity = "medium"
[match]
kinds = ["sign_in"]
outcomes = ["failure"]
[params]
failure_share_above = 0.0
[cloudwatch]
metric_name = "FailedSignIns"
namespace = "Authwatch"
value = "1"
unit = "Count"
default_value = 0
[cloudwatch.pattern]
cognito = '{ $.message.eventType = "SignIn" && $.message.eventResponse = "Fail" }'
[cloudwatch.alarm]
statistic = "Sum"
period = 300
evaluation_periods = 1
datapoints_to_alarm = 1
threshold = 10
comparison = "GreaterThanOrEqualToThreshold"
treat_missing_data = "notBreaching"
"#;

fn error_of(text: &str) -> String {
    match parse_set(&[("filters/x.toml", text)]) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_base_case_is_valid_and_the_section_is_optional() {
    assert_eq!(error_of(BASE), "");
    let without = BASE.split("[cloudwatch]").next().unwrap();
    let set = parse_set(&[("filters/x.toml", without)]).unwrap();
    assert!(set.specs[0].cloudwatch.is_none());
}

#[test]
fn every_limit_is_enforced_with_file_and_key_in_the_error() {
    let long = format!("{{ $.a = \"{}\" }}", "x".repeat(1100));
    let cases: Vec<(String, &str)> = vec![
        (
            BASE.replace("period = 300", "period = 45"),
            "cloudwatch.alarm.period: 45 s; AWS allows 10, 20, 30 or a multiple of 60",
        ),
        (BASE.replace("period = 300", "period = 90"), "cloudwatch.alarm.period"),
        (
            BASE.replace("datapoints_to_alarm = 1", "datapoints_to_alarm = 2"),
            "cloudwatch.alarm.datapoints_to_alarm: 2 must be 1 to evaluation_periods (1)",
        ),
        (BASE.replace("evaluation_periods = 1", "evaluation_periods = 0"), "cloudwatch.alarm.evaluation_periods"),
        (
            BASE.replace("evaluation_periods = 1", "evaluation_periods = 300"),
            "period × evaluation_periods is over AWS's 86400 s",
        ),
        (BASE.replace("statistic = \"Sum\"", "statistic = \"p99\""), "cloudwatch.alarm.statistic: 'p99' is not one of"),
        (BASE.replace("\"GreaterThanOrEqualToThreshold\"", "\"GreaterThan\""), "cloudwatch.alarm.comparison"),
        (BASE.replace("\"notBreaching\"", "\"NotBreaching\""), "cloudwatch.alarm.treat_missing_data"),
        (BASE.replace("unit = \"Count\"", "unit = \"Counts\""), "cloudwatch.unit: 'Counts' is not a CloudWatch unit"),
        (BASE.replace("value = \"1\"", "value = \"one\""), "cloudwatch.value"),
        (BASE.replace("metric_name = \"FailedSignIns\"", "metric_name = \"Failed:SignIns\""), "cloudwatch.metric_name"),
        (BASE.replace("metric_name = \"FailedSignIns\"", "metric_name = \"Failed*\""), "cloudwatch.metric_name"),
        (
            BASE.replace("namespace = \"Authwatch\"", "namespace = \"AWS/Logs\""),
            "cloudwatch.namespace: 'AWS/Logs': namespaces starting with AWS/ are reserved",
        ),
        (BASE.replace("namespace = \"Authwatch\"", "namespace = \"a\\\"b\""), "cloudwatch.namespace"),
        (
            BASE.replace("{ $.message.eventType = \"SignIn\" && $.message.eventResponse = \"Fail\" }", "{ $.a = }"),
            "cloudwatch.pattern.cognito: at column",
        ),
        (
            BASE.replace("{ $.message.eventType = \"SignIn\" && $.message.eventResponse = \"Fail\" }", &long),
            "cloudwatch.pattern.cognito: at column 1025: pattern is 1112 characters long",
        ),
        (
            BASE.replace(
                "{ $.message.eventType = \"SignIn\" && $.message.eventResponse = \"Fail\" }",
                "{ $.a = %a% || $.b = %b% || $.c = %c% }",
            ),
            "cloudwatch.pattern.cognito",
        ),
        (BASE.replace("[cloudwatch.pattern]\ncognito", "[cloudwatch.pattern]\nsyslog"), "unknown field `syslog`"),
        (BASE.replace("unit = \"Count\"", "unit = \"Count\"\ncolour = \"red\""), "unknown field `colour`"),
        (
            BASE.replace("default_value = 0", "default_value = 0\ndimensions = { Type = \"$.message.eventType\" }"),
            "cloudwatch.default_value: AWS does not allow a default value together with dimensions",
        ),
        (
            BASE.replace("default_value = 0", "dimensions = { Ip = \"$.message.ipAddress\" }"),
            "cloudwatch.dimensions: Ip: '$.message.ipAddress' is a user or an address; never a dimension",
        ),
        (BASE.replace("default_value = 0", "dimensions = { Who = \"$.message.userName\" }"), "never a dimension"),
        (
            BASE.replace("default_value = 0", "dimensions = { A = \"$.a\", B = \"$.b\", C = \"$.c\", D = \"$.d\" }"),
            "4 dimensions; AWS allows at most 3",
        ),
        (BASE.replace("cognito = '", "cloudtrail = '"), ""),
        (
            BASE.replace("cognito = '{ $.message.eventType = \"SignIn\" && $.message.eventResponse = \"Fail\" }'", ""),
            "cloudwatch.pattern: give at least one of `cognito` and `cloudtrail`",
        ),
    ];
    for (text, want) in cases {
        let err = error_of(&text);
        if want.is_empty() {
            assert_eq!(err, "", "expected valid:\n{text}");
            continue;
        }
        assert!(err.starts_with("filters/x.toml: "), "no file name in {err:?}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn specs_sharing_a_metric_must_share_its_filter() {
    let other =
        BASE.replace("id = \"x\"", "id = \"y\"").replace("eventResponse = \"Fail\"", "eventResponse = \"Pass\"");
    let err = parse_set(&[("filters/x.toml", BASE), ("filters/y.toml", &other)]).unwrap_err().to_string();
    assert!(err.contains("cloudwatch.metric_name: 'FailedSignIns' is also defined by"), "{err}");
    let same =
        BASE.replace("id = \"x\"", "id = \"y\"").replace("threshold = 10\ncomparison", "threshold = 99\ncomparison");
    assert!(parse_set(&[("filters/x.toml", BASE), ("filters/y.toml", &same)]).is_ok());
}

#[test]
fn builtin_specs_each_say_what_cloudwatch_does_for_them() {
    let set = SpecSet::builtin();
    for spec in &set.specs {
        let has = spec.cloudwatch.is_some();
        // Per-user state with no aggregate form; the pool-wide and MFA rules get theirs with issue 13's
        // CloudWatch work (anomaly-detection alarms).
        let no_aggregate_yet = [
            "account_takeover",
            "impossible_travel",
            "slow_brute_force",
            "distributed_credential_stuffing",
            "pool_failure_anomaly",
            "signup_flood",
            "mfa_failure_after_password_user",
            "mfa_failure_after_password_ip",
        ];
        let aggregate = !no_aggregate_yet.contains(&spec.id.as_str());
        assert_eq!(has, aggregate, "{}", spec.id);
    }
    let table = set.markdown_table();
    assert!(table.contains("| CloudWatch alarm |"), "{table}");
    assert!(table.contains("`FailedSignIns` Sum >= 10 per 300 s (1 of 1); cognito, cloudtrail"), "{table}");
    assert!(table.contains("none (no aggregate form)"), "{table}");
}
