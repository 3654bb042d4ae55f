//! `authwatch test-filter`: offline TestMetricFilter over the same inputs as replay.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_authwatch");

fn test_filter(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .arg("test-filter")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn log_event_messages_are_tested_inside_filter_log_events_output() {
    let pattern = r#"{ $.message.eventType = "SignIn" && $.message.eventResponse = "Fail" }"#;
    let (code, out, _) = test_filter(&[pattern, "tests/fixtures/decode/filter_log_events.json"], "");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("tests/fixtures/decode/filter_log_events.json:1 record 0: "), "{out}");
    assert!(out.contains("  $.message.eventResponse = Fail"), "{out}");
    assert!(out.ends_with("4 events tested, 2 matched\n"), "{out}");
}

#[test]
fn space_delimited_patterns_extract_values_from_plain_lines_on_stdin() {
    let input = "127.0.0.1 frank 200 1534\n10.0.0.2 alice 404 12\n\n10.0.0.3 bob \x1b[31m404 99\n";
    let (code, out, _) = test_filter(&["[ip, user, status=4*, bytes]", "-"], input);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "<stdin>:2: 10.0.0.2 alice 404 12\n  $ip = 10.0.0.2\n  $user = alice\n  $status = 404\n  $bytes = 12\n"
        ),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "terminal escapes must be sanitised: {out:?}");
    assert!(out.ends_with("3 events tested, 1 matched\n"), "{out}");
}

#[test]
fn count_only_and_gzip_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"ERROR one\nINFO two\nERROR three\n").unwrap();
    std::fs::write(dir.path().join("a.log.gz"), gz.finish().unwrap()).unwrap();
    let (code, out, _) = test_filter(&["-c", "ERROR", dir.path().to_str().unwrap()], "");
    assert_eq!(code, Some(0));
    assert_eq!(out, "3 events tested, 2 matched\n");
}

#[test]
fn a_bad_pattern_shows_the_caret_and_exits_2() {
    let (code, out, err) = test_filter(&["{ $.a = }", "-"], "");
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert!(err.contains("{ $.a = }\n        ^ "), "{err}");
}

/// What the runtime counts in `path` for the spec `id`: each line (or a CloudTrail file's records) decoded
/// as replay decodes it, kept when the rule counts it, as far as one event shows it (the same functions
/// the rules use; tests/cloudwatch_consistency.rs checks the patterns event by event).
fn runtime_count(id: &str, path: &str, format: authwatch::event::LogFormat) -> usize {
    use authwatch::decode::{decode_record, Decoded};
    use authwatch::detect::mfa_failure_after_password::mfa_failed_after_password;
    use authwatch::detect::signup_flood::counts_sign_up;
    let specs = authwatch::spec::SpecSet::builtin();
    let spec = specs.get(id).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let mut counted = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let origin = authwatch::event::Origin::new(path.into(), i as u64 + 1);
        decode_record(line.as_bytes(), &origin, None, &mut |d| {
            let Decoded::Event(ev) = d else { return };
            let rule_counts = match spec.detector.id() {
                "signup_flood" => counts_sign_up(spec, &ev),
                "mfa_failure_after_password" => mfa_failed_after_password(&ev),
                _ => true,
            };
            if ev.format == format && spec.observes(ev.kind) && spec.counts(ev.outcome) && rule_counts {
                counted += 1;
            }
        });
    }
    counted
}

#[test]
fn the_pool_wide_and_mfa_filters_count_what_their_rules_count() {
    use authwatch::event::LogFormat::{CloudTrail, CognitoUserActivity};
    let specs = authwatch::spec::SpecSet::builtin();
    let cases = [
        ("mfa_failure_after_password_user", "tests/fixtures/cloudwatch/cognito_mfa.jsonl", CognitoUserActivity),
        ("mfa_failure_after_password_ip", "tests/fixtures/cloudwatch/cloudtrail_mfa.json", CloudTrail),
        ("signup_flood", "tests/fixtures/cloudwatch/cognito_variants.jsonl", CognitoUserActivity),
        ("signup_flood", "tests/fixtures/cloudwatch/cloudtrail_variants.json", CloudTrail),
        ("pool_failure_anomaly", "tests/fixtures/cloudwatch/cognito_mfa.jsonl", CognitoUserActivity),
        ("distributed_credential_stuffing", "tests/fixtures/cloudwatch/cloudtrail_mfa.json", CloudTrail),
    ];
    for (id, path, format) in cases {
        let pattern = specs.get(id).unwrap().cloudwatch.as_ref().unwrap().pattern(format).unwrap();
        let (code, out, err) = test_filter(&["--count", pattern, path], "");
        assert_eq!(code, Some(0), "{id} {path}: {err}");
        let matched: usize = out
            .trim_end()
            .strip_suffix(" matched")
            .and_then(|s| s.rsplit(", ").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{id} {path}: unexpected output {out:?}"));
        let want = runtime_count(id, path, format);
        assert!(want > 0, "{id} {path}: the file holds nothing the rule counts");
        assert_eq!(matched, want, "{id} {path}: test-filter matched {matched}, the rule counts {want}");
    }
}
