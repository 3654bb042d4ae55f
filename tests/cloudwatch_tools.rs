//! `authwatch filters` output checked by AWS's own tools and the emulator: botocore's parameter validation
//! and the real AWS CLI for the CLI input, cfn-lint for CloudFormation, python-hcl2 for Terraform, and
//! `--apply` against moto (`scripts/test.sh` starts it and exports AWS_ENDPOINT_URL).
//!
//! Without the tools or the emulator these tests say so and pass, unless AUTHWATCH_REQUIRE_EMULATOR=1
//! (as in `scripts/test.sh` and CI), where a missing tool fails the test.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_authwatch");

fn required() -> bool {
    std::env::var("AUTHWATCH_REQUIRE_EMULATOR").is_ok_and(|v| v == "1")
}

/// The emulator's URL, or `None` (after saying why) when the test may be skipped.
fn emulator() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if required() => panic!("AUTHWATCH_REQUIRE_EMULATOR=1 but AWS_ENDPOINT_URL is not set"),
        _ => {
            eprintln!("skipped: no emulator (AWS_ENDPOINT_URL unset); run scripts/test.sh");
            None
        }
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether a Python module is importable; fails under AUTHWATCH_REQUIRE_EMULATOR=1 when it is not.
fn has_module(module: &str) -> bool {
    let ok =
        Command::new(python()).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!required(), "python module {module} is missing (pip install -r scripts/test-requirements.txt)");
        eprintln!("skipped: python module {module} is missing");
    }
    ok
}

/// A name unique to this test run and call: tests run in parallel against one emulator.
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("aw-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn generate(dir: &Path, extra: &[&str], log_group: &str, format: &str) {
    run(Command::new(BIN)
        .args([
            "filters",
            "--log-group",
            log_group,
            "--log-format",
            format,
            "--sns-topic-arn",
            "arn:aws:sns:us-east-1:123456789012:authwatch-alerts",
            "--output-format",
            "all",
            "--out-dir",
        ])
        .arg(dir)
        .args(extra));
}

const BOTOCORE_CHECK: &str = r#"
import json, sys, botocore.session
from botocore.validate import validate_parameters
session = botocore.session.get_session()
for path in sys.argv[1:]:
    service, op = ("logs", "PutMetricFilter") if "put-metric-filter" in path else ("cloudwatch", "PutMetricAlarm")
    model = session.get_service_model(service).operation_model(op)
    validate_parameters(json.load(open(path)), model.input_shape)
print("ok", len(sys.argv) - 1)
"#;

#[test]
fn cli_json_passes_botocore_validation_for_both_formats() {
    if !has_module("botocore") {
        return;
    }
    for format in ["cognito", "cloudtrail"] {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[], "/aws/cognito/userpool", format);
        let mut files: Vec<_> = std::fs::read_dir(dir.path().join("cli")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert!(files.len() >= 4, "{files:?}");
        let out = run(Command::new(python()).arg("-c").arg(BOTOCORE_CHECK).args(&files));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
    }
}

#[test]
fn cloudformation_passes_cfn_lint() {
    if !has_module("cfnlint") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[], "/aws/cognito/userpool", "cognito");
    for file in ["cloudformation.json", "cloudformation.yaml"] {
        run(Command::new("cfn-lint").arg("--").arg(dir.path().join(file)));
    }
    // The YAML and the JSON template say the same thing.
    let check =
        "import json,sys,yaml; a=json.load(open(sys.argv[1])); b=yaml.safe_load(open(sys.argv[2])); assert a==b, (a,b)";
    if has_module("yaml") {
        run(Command::new(python())
            .args(["-c", check])
            .arg(dir.path().join("cloudformation.json"))
            .arg(dir.path().join("cloudformation.yaml")));
    }
}

const HCL_CHECK: &str = r#"
import json, sys, hcl2
doc = hcl2.load(open(sys.argv[1]))
out = {}
unquote = lambda k: k[1:-1] if k.startswith('"') and k.endswith('"') else k
for block in doc["resource"]:
    for rtype, named in block.items():
        for name, body in named.items():
            out.setdefault(unquote(rtype), []).append(body)
print(json.dumps(out))
"#;

#[test]
fn terraform_parses_as_hcl_with_the_right_arguments() {
    if !has_module("hcl2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[], "/aws/cloudtrail/mgmt", "cloudtrail");
    let out = run(Command::new(python()).args(["-c", HCL_CHECK]).arg(dir.path().join("authwatch.tf")));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let filters = doc["aws_cloudwatch_log_metric_filter"].as_array().unwrap();
    let alarms = doc["aws_cloudwatch_metric_alarm"].as_array().unwrap();
    assert_eq!(filters.len(), 4, "FailedSignIns, SignInAttempts, SignUps, MfaFailuresAfterPassword: {doc}");
    assert_eq!(alarms.len(), 10, "{doc}");
    for f in filters {
        for key in ["name", "pattern", "log_group_name", "metric_transformation"] {
            assert!(f.get(key).is_some(), "{key} missing in {f}");
        }
        assert_eq!(strip(&f["log_group_name"]), "/aws/cloudtrail/mgmt");
    }
    // The pattern survives HCL quoting byte for byte.
    let specs = authwatch::spec::SpecSet::builtin();
    let want = specs.get("failed_login_burst_user").unwrap().cloudwatch.as_ref().unwrap();
    let want = want.pattern(authwatch::event::LogFormat::CloudTrail).unwrap();
    assert!(filters.iter().any(|f| strip(&f["pattern"]) == want), "{filters:?}");
    let mut anomaly = 0;
    for a in alarms {
        let common = ["alarm_name", "comparison_operator", "evaluation_periods", "treat_missing_data", "alarm_actions"];
        // A static alarm names its metric; an anomaly alarm has two metric queries, the band its threshold.
        let own: &[&str] = if a.get("threshold_metric_id").is_some() {
            anomaly += 1;
            &["metric_query"]
        } else {
            &["metric_name", "namespace", "period", "statistic", "threshold"]
        };
        for key in common.iter().chain(own) {
            assert!(a.get(*key).is_some(), "{key} missing in {a}");
        }
        if let Some(queries) = a.get("metric_query").and_then(|q| q.as_array()) {
            assert_eq!(queries.len(), 2, "{a}");
            assert!(a.get("threshold").is_none() && a.get("metric_name").is_none(), "{a}");
            let band = queries.iter().find(|q| strip(&q["id"]) == "ad1").expect("the band query");
            assert!(strip(&band["expression"]).starts_with("ANOMALY_DETECTION_BAND(m1, "), "{band}");
            assert_eq!(strip(&a["threshold_metric_id"]), "ad1");
        }
    }
    assert_eq!(anomaly, 3, "distributed_credential_stuffing, pool_failure_anomaly, signup_flood: {doc}");
}

/// python-hcl2 keeps the quotes of string literals; older versions do not.
fn strip(v: &serde_json::Value) -> String {
    let s = v.as_str().unwrap_or_default();
    let s = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s);
    s.replace("\\\\", "\\").replace("\\\"", "\"").replace("$${", "${").replace("%%{", "%{")
}

#[test]
fn hostile_values_are_rejected_before_anything_is_written() {
    for (flag, value) in [
        ("--log-group", "x\"}\nresource \"evil\" {"),
        ("--log-group", "lg${file(\"/etc/passwd\")}"),
        ("--namespace", "ns\"\nFoo: !Sub x"),
        ("--namespace", "a%{if true}b"),
        ("--sns-topic-arn", "arn:aws:sns:us-east-1:123456789012:t\"] }"),
        ("--name-prefix", "p:*"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["filters", "--log-group", "/ok", "--log-format", "cognito", "--output-format", "terraform"]);
        cmd.args([flag, value]);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value:?} was accepted");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{err}");
    }
}

#[test]
fn hostile_spec_text_is_escaped_and_inert_in_every_format() {
    // A spec file can hold any description and any (valid) pattern text: quotes, `${`, `%{`, newlines.
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("filters");
    std::fs::create_dir(&specs).unwrap();
    let spec = r#"
id = "hostile"
detector = "failed_login_burst"
description = "quote \" backslash \\ ${jndi} %{ if true } newline \n end: !Ref X # c"
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
metric_name = "Hostile_Metric-1"
namespace = "Authwatch"
[cloudwatch.pattern]
cognito = '{ $.message.userName = "a\"b${x}%{y}\\z" }'
[cloudwatch.alarm]
period = 300
evaluation_periods = 1
datapoints_to_alarm = 1
threshold = 1
comparison = "GreaterThanOrEqualToThreshold"
"#;
    std::fs::write(specs.join("hostile.toml"), spec).unwrap();
    let out = dir.path().join("out");
    generate(&out, &["--filters", specs.to_str().unwrap()], "/lg", "cognito");
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cloudformation.json")).unwrap()).unwrap();
    let resources = template["Resources"].as_object().unwrap();
    assert_eq!(resources.len(), 2, "{resources:?}");
    let tf = std::fs::read_to_string(out.join("authwatch.tf")).unwrap();
    // Every template opener is doubled, so Terraform reads it as text.
    for opener in ["${", "%{"] {
        let doubled = tf.match_indices(opener).all(|(i, _)| i > 0 && tf.as_bytes()[i - 1] == opener.as_bytes()[0]);
        assert!(doubled, "a bare {opener} in:\n{tf}");
    }
    assert!(tf.contains("$${jndi}") && tf.contains("%%{ if true }"), "{tf}");
    if has_module("hcl2") {
        let parsed = run(Command::new(python()).args(["-c", HCL_CHECK]).arg(out.join("authwatch.tf")));
        let doc: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
        assert_eq!(doc["aws_cloudwatch_log_metric_filter"].as_array().unwrap().len(), 1);
        assert_eq!(doc["aws_cloudwatch_metric_alarm"].as_array().unwrap().len(), 1);
        let pattern = strip(&doc["aws_cloudwatch_log_metric_filter"][0]["pattern"]);
        assert_eq!(pattern, r#"{ $.message.userName = "a\"b${x}%{y}\\z" }"#);
    }
    if has_module("cfnlint") {
        run(Command::new("cfn-lint").arg("--").arg(out.join("cloudformation.yaml")));
    }
    if has_module("yaml") {
        let check = "import json,sys,yaml; a=json.load(open(sys.argv[1])); b=yaml.safe_load(open(sys.argv[2])); assert a==b, (a,b)";
        run(Command::new(python())
            .args(["-c", check])
            .arg(out.join("cloudformation.json"))
            .arg(out.join("cloudformation.yaml")));
    }
}

#[test]
fn output_is_byte_identical_across_runs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate(a.path(), &[], "/aws/cognito/x", "cognito");
    generate(b.path(), &[], "/aws/cognito/x", "cognito");
    let list = |d: &Path| {
        let mut files = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap().path();
                if e.is_dir() {
                    stack.push(e);
                } else {
                    files.push((e.strip_prefix(d).unwrap().to_path_buf(), std::fs::read(&e).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let (fa, fb) = (list(a.path()), list(b.path()));
    assert!(fa.len() >= 10, "{}", fa.len());
    assert_eq!(fa, fb);
}

#[test]
fn aws_cli_accepts_the_generated_input_against_the_emulator() {
    let Some(url) = emulator() else { return };
    let aws_ok = Command::new("aws").arg("--version").output().is_ok_and(|o| o.status.success());
    if !aws_ok {
        assert!(!required(), "the AWS CLI is missing (pip install -r scripts/test-requirements.txt)");
        return;
    }
    let group = format!("/authwatch/{}", unique("cli"));
    run(Command::new("aws").args(["--endpoint-url", &url, "logs", "create-log-group", "--log-group-name", &group]));
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("clip");
    generate(dir.path(), &["--name-prefix", &prefix, "--namespace", &prefix], &group, "cognito");
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("cli")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let (service, op) = if name.starts_with("put-metric-filter") {
            ("logs", "put-metric-filter")
        } else {
            ("cloudwatch", "put-metric-alarm")
        };
        run(Command::new("aws")
            .args(["--endpoint-url", &url, service, op, "--cli-input-json"])
            .arg(format!("file://{}", file.display())));
    }
    let out = run(Command::new("aws").args([
        "--endpoint-url",
        &url,
        "logs",
        "describe-metric-filters",
        "--log-group-name",
        &group,
        "--output",
        "json",
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        doc["metricFilters"].as_array().unwrap().iter().filter_map(|f| f["filterName"].as_str()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
}

#[test]
fn apply_creates_what_describe_shows_and_a_second_apply_is_a_no_op() {
    let Some(url) = emulator() else { return };
    let group = format!("/authwatch/{}", unique("apply"));
    let prefix = unique("ap");
    // The log group must exist: create it through the SDK-free route the CLI would use.
    let created = Command::new("aws")
        .args(["--endpoint-url", &url, "logs", "create-log-group", "--log-group-name", &group])
        .output();
    if !created.is_ok_and(|o| o.status.success()) {
        assert!(!required(), "could not create the log group with the AWS CLI");
        return;
    }
    let apply = |extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "filters",
            "--apply",
            "--endpoint-url",
            &url,
            "--log-group",
            &group,
            "--log-format",
            "cognito",
            "--namespace",
            &prefix,
            "--name-prefix",
            &prefix,
            "--sns-topic-arn",
            "arn:aws:sns:us-east-1:123456789012:authwatch-alerts",
        ]);
        cmd.args(extra);
        String::from_utf8_lossy(&run(&mut cmd).stdout).to_string()
    };
    let dry = apply(&["--dry-run"]);
    assert!(dry.contains("would create metric filter") && dry.contains("dry run:"), "{dry}");
    let first = apply(&[]);
    assert!(first.contains("created metric filter") && first.contains("created alarm"), "{first}");
    assert_eq!(first.matches("created metric filter").count(), 5, "{first}");
    assert_eq!(first.matches("created alarm").count(), 11, "{first}");

    let filters = run(Command::new("aws").args([
        "--endpoint-url",
        &url,
        "logs",
        "describe-metric-filters",
        "--log-group-name",
        &group,
        "--output",
        "json",
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&filters.stdout).unwrap();
    let mut names: Vec<String> = doc["metricFilters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["filterName"].as_str().map(String::from))
        .collect();
    names.sort();
    let want: Vec<String> =
        ["CognitoRiskEvents", "FailedSignIns", "MfaFailuresAfterPassword", "SignInAttempts", "SignUps"]
            .iter()
            .map(|m| format!("{prefix}-{m}"))
            .collect();
    assert_eq!(names, want);
    let alarms = run(Command::new("aws").args([
        "--endpoint-url",
        &url,
        "cloudwatch",
        "describe-alarms",
        "--alarm-name-prefix",
        &prefix,
        "--output",
        "json",
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&alarms.stdout).unwrap();
    let alarms = doc["MetricAlarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 11, "{doc}");
    let burst = alarms.iter().find(|a| a["AlarmName"] == format!("{prefix}-failed_login_burst_user").as_str()).unwrap();
    assert_eq!(burst["Period"], 300);
    assert_eq!(burst["Threshold"], 10.0);
    assert_eq!(burst["Namespace"], prefix.as_str());
    assert_eq!(burst["AlarmActions"][0], "arn:aws:sns:us-east-1:123456789012:authwatch-alerts");
    // The anomaly alarm reads back as written: the metric's statistic and the band over it, the band the
    // threshold, no single-metric fields.
    let pool = alarms.iter().find(|a| a["AlarmName"] == format!("{prefix}-pool_failure_anomaly").as_str()).unwrap();
    assert_eq!(pool["ThresholdMetricId"], "ad1", "{pool}");
    assert_eq!(pool["ComparisonOperator"], "GreaterThanUpperThreshold", "{pool}");
    assert!(pool.get("MetricName").is_none() && pool.get("Threshold").is_none(), "{pool}");
    let queries = pool["Metrics"].as_array().unwrap();
    assert_eq!(queries.len(), 2, "{pool}");
    let metric = queries.iter().find(|q| q["Id"] == "m1").unwrap();
    assert_eq!(metric["MetricStat"]["Metric"]["MetricName"], "FailedSignIns", "{pool}");
    assert_eq!(metric["MetricStat"]["Metric"]["Namespace"], prefix.as_str(), "{pool}");
    assert_eq!(metric["MetricStat"]["Period"], 600, "{pool}");
    assert_eq!(metric["MetricStat"]["Stat"], "Sum", "{pool}");
    let band = queries.iter().find(|q| q["Id"] == "ad1").unwrap();
    assert_eq!(band["Expression"], "ANOMALY_DETECTION_BAND(m1, 4)", "{pool}");

    let second = apply(&[]);
    assert!(second.contains("nothing to change"), "{second}");
    assert!(!second.contains("created") && !second.contains("updated"), "{second}");
}

#[test]
fn apply_reports_each_failure_and_exits_non_zero() {
    // Nothing listens on the endpoint: every call fails, each resource is reported, none stops the others.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(BIN)
        .args([
            "filters",
            "--apply",
            "--endpoint-url",
            &url,
            "--region",
            "us-east-1",
            "--log-group",
            "/lg",
            "--log-format",
            "cognito",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.matches("FAILED metric filter").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("FAILED alarm").count(), 11, "{stdout}");
    assert!(stdout.contains("16 of 16 resources failed"), "{stdout}");
}

#[test]
fn apply_updates_what_changed_in_the_specs_and_only_that() {
    let Some(url) = emulator() else { return };
    let group = format!("/authwatch/{}", unique("upd"));
    let prefix = unique("up");
    let created = Command::new("aws")
        .args(["--endpoint-url", &url, "logs", "create-log-group", "--log-group-name", &group])
        .output();
    if !created.is_ok_and(|o| o.status.success()) {
        assert!(!required(), "could not create the log group with the AWS CLI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("filters").unwrap() {
        let path = entry.unwrap().path();
        // The detector specs; `filters/cases/` is the correlation spec, not read by `filters`.
        if !path.is_file() {
            continue;
        }
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let apply = || {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "filters",
            "--apply",
            "--endpoint-url",
            &url,
            "--log-group",
            &group,
            "--log-format",
            "cognito",
            "--namespace",
            &prefix,
            "--name-prefix",
            &prefix,
            "--filters",
        ]);
        cmd.arg(dir.path());
        String::from_utf8_lossy(&run(&mut cmd).stdout).to_string()
    };
    assert!(apply().contains("16 of 16 resources created or updated"));
    let spec = dir.path().join("failed_login_burst_user.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("period = 300\n", "period = 120\n")).unwrap();
    let second = apply();
    assert!(second.contains(&format!("updated alarm {prefix}-failed_login_burst_user (period)")), "{second}");
    assert!(second.contains("1 of 16 resources created or updated"), "{second}");
    assert!(apply().contains("nothing to change"));
    // An anomaly alarm's band and period are compared too (the description names the width), and only
    // that alarm is rewritten.
    let spec = dir.path().join("pool_failure_anomaly.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("band_width = 4\n", "band_width = 3\n").replace("period = 600\n", "period = 1200\n"),
    )
    .unwrap();
    let third = apply();
    assert!(
        third.contains(&format!("updated alarm {prefix}-pool_failure_anomaly (description, period, band)")),
        "{third}"
    );
    assert!(third.contains("1 of 16 resources created or updated"), "{third}");
    assert!(apply().contains("nothing to change"));
}
