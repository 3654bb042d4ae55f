//! Delivery shapes users actually have, fed through `authwatch replay`: what the summary counts and what
//! `--rejects` lists for each. The decoded events themselves are pinned by the `.expected` files beside the
//! fixtures (`tests/decode.rs`); the fixtures and the AWS pages that describe them are listed in
//! `tests/fixtures/decode/README.md` and `tests/fixtures/shapes/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_authwatch");

/// A fixture of `tests/fixtures/shapes/`, else of `tests/fixtures/decode/`.
fn fixture(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shapes = root.join("tests/fixtures/shapes").join(name);
    if shapes.exists() {
        return shapes;
    }
    root.join("tests/fixtures/decode").join(name)
}

/// What a user sees from `authwatch replay FILE --rejects R`.
struct Replay {
    code: Option<i32>,
    summary: String,
    rejects: Vec<Value>,
}

impl Replay {
    /// The summary line that starts with `label` (after its indent), without the label.
    fn line(&self, label: &str) -> &str {
        let found = self.summary.lines().find_map(|l| l.trim_start().strip_prefix(label));
        found.unwrap_or_else(|| panic!("no `{label}` line in:\n{}", self.summary)).trim()
    }

    /// `(record, reason)` of each rejection, in order.
    fn rejected(&self) -> Vec<(Option<u64>, String)> {
        self.rejects.iter().map(|r| (r["record"].as_u64(), r["reason"].as_str().unwrap().to_owned())).collect()
    }
}

fn replay(name: &str) -> Replay {
    replay_path(&fixture(name))
}

fn replay_path(input: &Path) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let out = Command::new(BIN)
        .arg("replay")
        .arg(input)
        .arg("--rejects")
        .arg(&rejects)
        .arg("--no-progress")
        .output()
        .expect("run authwatch");
    let listed = std::fs::read_to_string(&rejects).unwrap_or_default();
    Replay {
        code: out.status.code(),
        summary: String::from_utf8_lossy(&out.stderr).into_owned(),
        rejects: listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
    }
}

#[test]
fn lookup_events_output_is_read_through_its_cloudtrail_event_strings() {
    let got = replay("cloudtrail_lookup_events.json");
    assert_eq!(got.line("input"), "1 file(s), 5.1 KiB: 1 line(s) or document(s) holding 5 record(s)");
    assert_eq!(got.line("decoded"), "2 event(s), 2 of them sign-ins");
    assert_eq!(got.line("skipped"), "1 (1 other_service)");
    assert_eq!(got.line("rejected"), "2", "{}", got.summary);
    let rejected = got.rejected();
    assert_eq!(rejected[0].0, Some(2));
    assert!(rejected[0].1.starts_with("`Events[2].CloudTrailEvent` is not a JSON record: EOF"), "{rejected:?}");
    assert_eq!(rejected[1], (Some(4), "`Events[4]` has no `CloudTrailEvent`".to_owned()));
    // The position is the container's line; the listing says so.
    assert_eq!(got.rejects[1]["line"], 1);
    assert_eq!(
        got.rejects[1]["where"],
        "record 4 (counted from 0) inside the document or container that starts on line 1"
    );
    // The broken record string is listed as read, and the element without one as it is.
    assert!(
        got.rejects[0]["text"].as_str().is_some_and(|t| t.starts_with("{\"eventVersion\"")),
        "{:?}",
        got.rejects[0]
    );
    assert!(got.rejects[1]["text"].as_str().is_some_and(|t| t.contains("\"EventName\"")), "{:?}", got.rejects[1]);
    assert_eq!(got.code, Some(1), "a rejected record gives exit 1");
}

#[test]
fn eventbridge_events_are_read_through_their_detail_alone_as_lines_and_in_log_exports() {
    for (name, decoded) in
        [("eventbridge_event.json", 1), ("eventbridge_filter_log_events.json", 2), ("eventbridge_subscription.json", 2)]
    {
        let got = replay(name);
        assert_eq!(got.line("decoded"), format!("{decoded} event(s), {decoded} of them sign-ins"), "{name}");
        assert_eq!(got.line("skipped"), "0", "{name}");
        assert_eq!(got.line("rejected"), "0", "{name}");
        assert_eq!(got.code, Some(0), "{name}: {}", got.summary);
    }

    // Another service's CloudTrail record and another service's own event are skipped alike.
    let got = replay("eventbridge_lines.jsonl");
    assert_eq!(got.line("decoded"), "2 event(s), 2 of them sign-ins");
    assert_eq!(got.line("skipped"), "2 (2 other_service)");
    assert_eq!(got.line("rejected"), "1");
    assert_eq!(got.rejects[0]["line"], 5);
    assert_eq!(got.rejects[0]["where"], "line 5");
    let line5 = std::fs::read_to_string(fixture("eventbridge_lines.jsonl")).unwrap().lines().nth(4).unwrap().to_owned();
    assert_eq!(got.rejects[0]["text"], line5.trim(), "the rejected record's own text");
    assert_eq!(got.rejected()[0].1, "EventBridge event's `detail` is a string, expected an object");
    assert_eq!(got.code, Some(1));
}

#[test]
fn admin_list_user_auth_events_output_is_rejected_as_not_a_log_naming_what_to_use() {
    let got = replay("admin_list_user_auth_events.json");
    assert_eq!(got.line("decoded"), "0 event(s), 0 of them sign-ins");
    assert_eq!(got.line("rejected"), "1");
    let reason = &got.rejected()[0].1;
    for part in ["AdminListUserAuthEvents output", "not a log", "SetLogDeliveryConfiguration", "CloudTrail"] {
        assert!(reason.contains(part), "{part:?} missing from {reason:?}");
    }
    assert!(!reason.contains("unrecognised"), "{reason}");
    assert!(got.summary.contains("AdminListUserAuthEvents output"), "the summary shows it: {}", got.summary);
    assert_eq!(got.code, Some(1));
}

/// Firehose writes the records it buffers back to back, without newlines, into objects under
/// `YYYY/MM/DD/HH/` keys, gzip-compressed or not; gzip is found by content, whatever an object is named. A
/// synced bucket is one directory tree, read recursively.
#[test]
fn firehose_objects_of_concatenated_records_gzip_or_not_are_read_from_a_date_partitioned_tree() {
    let plain = std::fs::read(fixture("firehose_user_activity.json")).unwrap();
    assert!(!plain.contains(&b'\n'), "the fixture is one object of records back to back");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gz = gz.finish().unwrap();

    let bucket = tempfile::tempdir().unwrap();
    let hour = bucket.path().join("cognito-user-activity/2024/07/17/17");
    std::fs::create_dir_all(&hour).unwrap();
    std::fs::write(hour.join("authwatch-stream-1-2024-07-17-17-25-56-0a1b2c3d"), &plain).unwrap();
    std::fs::write(hour.join("authwatch-stream-1-2024-07-17-17-30-00-4e5f6a7b"), &gz).unwrap();

    let got = replay_path(bucket.path());
    assert_eq!(got.line("input").split(',').next(), Some("2 file(s)"), "{}", got.summary);
    assert_eq!(got.line("decoded"), "14 event(s), 4 of them sign-ins", "7 in each object: {}", got.summary);
    assert_eq!(got.line("skipped"), "4 (4 user_notification)");
    assert_eq!(got.line("rejected"), "0");
    assert_eq!(got.code, Some(0));
}

/// AWS's published examples, verbatim: the user-activity event (a sign-up, not a sign-in) whose
/// `creationDate` is a year from its `eventTimestamp`, and the hosted UI sign-up sequence, five
/// pretty-printed records back to back in one document.
#[test]
fn published_examples_are_counted_as_records_events_and_sign_ins_and_the_time_disagreement_is_said() {
    let got = replay("cognito_documented.json");
    assert_eq!(got.line("decoded"), "1 event(s), 0 of them sign-ins", "a sign-up is not a sign-in");
    assert_eq!(
        got.line("event time"),
        "1 event(s) whose creationDate is more than a day from eventTimestamp: eventTimestamp used"
    );
    assert!(
        got.line("time span").starts_with("2023-06-20T21:42:10.677Z"),
        "eventTimestamp is the time: {}",
        got.summary
    );
    assert_eq!(got.code, Some(0));

    let got = replay("cloudtrail_documented_signup.json");
    assert!(got.line("input").ends_with(": 1 line(s) or document(s) holding 5 record(s)"), "{}", got.summary);
    assert_eq!(got.line("decoded"), "5 event(s), 0 of them sign-ins");
    assert!(!got.summary.contains("creationDate"), "no export event, nothing to compare: {}", got.summary);

    let got = replay("cloudtrail_documented_saml.json");
    assert_eq!(got.line("decoded"), "1 event(s), 1 of them sign-ins", "a federated sign-in is a sign-in");
}
