//! Decoding end to end: the file source feeds `decode_record`, each result is rendered as one line, and
//! the lines are compared with the `.expected` file next to each fixture in `tests/fixtures/decode/`.
//! A new case is a new fixture file; run with `AUTHWATCH_BLESS=1` to write its expected output, then
//! read it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use authwatch::decode::{decode_record, Decoded};
use authwatch::event::{LogFormat, SignInEvent};
use authwatch::source::{Input, Limits, ReadItem, RecordReader};
use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;

const FIXTURES: &str = "tests/fixtures/decode";
/// Fixtures decoded the same way but kept out of `tests/cloudwatch_consistency.rs`'s corpus (see the README
/// there).
const SHAPES: &str = "tests/fixtures/shapes";

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".to_owned(), |v| v.to_string())
}

fn render_event(e: &SignInEvent) -> String {
    format!(
        "event {} {} {} {} reason={} name={} pool={} client={} user={} sub={} ip={} city={} country={} \
         device={} risk={}/{}/{} id={} format={} region={} account={}{}",
        e.origin,
        e.time,
        e.kind.as_str(),
        e.outcome.as_str(),
        opt(&e.failure_reason),
        e.event_name,
        opt(&e.user_pool_id),
        opt(&e.client_id),
        opt(&e.user_name),
        opt(&e.user_sub),
        opt(&e.ip),
        opt(&e.city),
        opt(&e.country),
        opt(&e.device),
        opt(&e.risk.level),
        opt(&e.risk.decision),
        opt(&e.risk.compromised_credentials),
        opt(&e.event_id),
        e.format.as_str(),
        opt(&e.region),
        opt(&e.account),
        if e.creation_date_disagrees { " creation_date_disagrees" } else { "" },
    )
}

/// Reads and decodes one input, rendering every result as a line.
fn run_with(input: &Input, limits: Limits, forced: Option<LogFormat>) -> Vec<String> {
    let mut reader = RecordReader::open(input, limits).expect("open fixture");
    let mut lines = Vec::new();
    let mut items = Vec::new();
    loop {
        // Small batches exercise the batch boundary.
        let more = reader.next_batch(3, &mut items);
        for item in items.drain(..) {
            match item {
                ReadItem::Record(rec) => decode_record(&rec.bytes, &rec.origin, forced, &mut |d| {
                    lines.push(match d {
                        Decoded::Event(e) => render_event(&e),
                        Decoded::Skipped(why) => format!("skipped {} {}", rec.origin, why.as_str()),
                        Decoded::Rejected(r) => format!("rejected {r}"),
                    })
                }),
                ReadItem::Rejected(r) => lines.push(format!("unread {r}")),
            }
        }
        if !more {
            return lines;
        }
    }
}

fn run(path: &Path) -> Vec<String> {
    run_with(&Input::File(path.to_owned()), Limits::default(), None)
}

fn decode_bytes(bytes: &[u8]) -> Vec<Decoded> {
    let origin = authwatch::event::Origin::new("mem".into(), 1);
    let mut out = Vec::new();
    decode_record(bytes, &origin, None, &mut |d| out.push(d));
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// The lines of a run on a copy of a fixture, with the copy's path replaced by the fixture's.
fn run_copy(copy: &Path, fixture: &str) -> Vec<String> {
    let shown = copy.display().to_string();
    run(copy).into_iter().map(|l| l.replace(&shown, &format!("{FIXTURES}/{fixture}"))).collect()
}

fn expected(fixture: &str) -> Vec<String> {
    let text = fs::read_to_string(Path::new(FIXTURES).join(format!("{fixture}.expected"))).unwrap();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn fixtures_decode_to_their_expected_output() {
    let bless = std::env::var_os("AUTHWATCH_BLESS").is_some();
    let mut paths: Vec<PathBuf> = [FIXTURES, SHAPES]
        .into_iter()
        .flat_map(|dir| fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 6, "fixtures missing: {paths:?}");
    let mut failures = Vec::new();
    for path in paths {
        let got = run(&path).join("\n") + "\n";
        let expected_path = path.with_extension(format!("{}.expected", path.extension().unwrap().to_str().unwrap()));
        if bless {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!("{}:\n--- expected\n{want}--- got\n{got}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gzip_records_file_decodes_like_the_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let plain = fs::read(Path::new(FIXTURES).join("cloudtrail_records.json")).unwrap();
    // The extension says nothing: gzip is found by its magic bytes.
    let copy = temp_file(&dir, "records.json", &gzip(&plain));
    assert_eq!(run_copy(&copy, "cloudtrail_records.json"), expected("cloudtrail_records.json"));
}

#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(Path::new(FIXTURES).join("cognito_lines.jsonl")).unwrap();
    let cut = text.match_indices('\n').nth(3).unwrap().0 + 1;
    let mut bytes = gzip(&text.as_bytes()[..cut]);
    bytes.extend(gzip(&text.as_bytes()[cut..]));
    let copy = temp_file(&dir, "two-members.gz", &bytes);
    assert_eq!(run_copy(&copy, "cognito_lines.jsonl"), expected("cognito_lines.jsonl"));
}

#[test]
fn truncated_gzip_keeps_the_records_before_the_cut_and_reports_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(Path::new(FIXTURES).join("cognito_lines.jsonl")).unwrap();
    let gz = gzip(text.as_bytes());
    let copy = temp_file(&dir, "cut.gz", &gz[..gz.len() - 40]);
    let got = run_copy(&copy, "cognito_lines.jsonl");
    let (last, decoded) = got.split_last().unwrap();
    assert!(last.starts_with("unread tests/fixtures/decode/cognito_lines.jsonl:"), "{last}");
    assert!(last.contains("truncated gzip"), "{last}");
    assert!(!decoded.is_empty() && decoded.iter().all(|l| expected("cognito_lines.jsonl").contains(l)));
}

#[test]
fn subscription_payload_as_gzip_bytes_and_as_base64_lines() {
    let payload = fs::read(Path::new(FIXTURES).join("subscription_data.json")).unwrap();
    let gz = gzip(&payload);
    let events: Vec<_> = decode_bytes(&gz)
        .into_iter()
        .map(|d| match d {
            Decoded::Event(e) => (e.user_name.unwrap(), e.outcome.as_str(), e.origin.record),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(events, [("frank".into(), "failure", Some(0)), ("frank".into(), "success", Some(1))]);

    // Firehose and Kinesis consumers often store the base64 text, one payload per line.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&gz);
    assert!(b64.starts_with("H4sI"));
    let dir = tempfile::tempdir().unwrap();
    let control = base64::engine::general_purpose::STANDARD
        .encode(gzip(&fs::read(Path::new(FIXTURES).join("subscription_control.json")).unwrap()));
    let text = format!("{b64}\n{control}\nH4sIbroken!!\n{b64}\n");
    let path = temp_file(&dir, "kinesis.txt", text.as_bytes());
    let got: Vec<String> = run(&path).into_iter().map(|l| l.replace(&path.display().to_string(), "F")).collect();
    assert_eq!(got.len(), 6, "{got:#?}");
    assert!(got[0].starts_with("event F:1 record 0 ") && got[1].starts_with("event F:1 record 1 "));
    assert_eq!(got[2], "skipped F:2 control_message");
    assert!(got[3].starts_with("rejected F:3: invalid base64"), "{}", got[3]);
    assert!(got[4].starts_with("event F:4 record 0 ") && got[5].starts_with("event F:4 record 1 "));
}

#[test]
fn invalid_utf8_is_rejected_and_the_next_line_still_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"eventTimestamp":"1721237155000","message":{"eventType":"SignIn","userName":"ok"}}"#;
    let mut bytes = b"{\"eventTimestamp\":\"1721237155000\",\"message\":{\"userName\":\"\xff\xfe\"}}\n".to_vec();
    bytes.extend_from_slice(good.as_bytes());
    let path = temp_file(&dir, "bad.jsonl", &bytes);
    let got = run(&path);
    assert_eq!(got[0], format!("rejected {}:1: invalid UTF-8 at byte 57", path.display()));
    assert!(got[1].starts_with(&format!("event {}:2 ", path.display())) && got[1].contains("user=ok"));
}

#[test]
fn too_long_line_is_rejected_without_losing_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"eventTimestamp":"1721237155000","message":{"eventType":"SignIn","userName":"ok"}}"#;
    let long = format!(r#"{{"eventTimestamp":"1721237155000","message":{{"pad":"{}"}}}}"#, "x".repeat(5000));
    let text = format!("{good}\n{long}\r\n{good}\n{long}");
    let path = temp_file(&dir, "long.jsonl", text.as_bytes());
    let limits = Limits { max_line_bytes: 200, ..Limits::default() };
    let got = run_with(&Input::File(path.clone()), limits, None);
    let name = path.display();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(got[0].starts_with(&format!("event {name}:1 ")));
    let n = long.len();
    assert_eq!(got[1], format!("unread {name}:2: line is {n} bytes, over the limit of 200 (--max-line-bytes)"));
    assert!(got[2].starts_with(&format!("event {name}:3 ")));
    assert_eq!(got[3], format!("unread {name}:4: line is {n} bytes, over the limit of 200 (--max-line-bytes)"));
}

#[test]
fn one_line_document_over_the_line_limit_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let plain = fs::read(Path::new(FIXTURES).join("cloudtrail_records.json")).unwrap();
    let copy = temp_file(&dir, "ct.json", &plain);
    let limits = Limits { max_line_bytes: 100, ..Limits::default() };
    let shown = copy.display().to_string();
    let got: Vec<String> = run_with(&Input::File(copy), limits, None)
        .into_iter()
        .map(|l| l.replace(&shown, &format!("{FIXTURES}/cloudtrail_records.json")))
        .collect();
    assert_eq!(got, expected("cloudtrail_records.json"));
}

#[test]
fn document_over_the_document_limit_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let plain = fs::read(Path::new(FIXTURES).join("filter_log_events.json")).unwrap();
    let path = temp_file(&dir, "big.json", &plain);
    let limits = Limits { max_line_bytes: 1000, max_document_bytes: 500 };
    let got = run_with(&Input::File(path.clone()), limits, None);
    assert_eq!(
        got,
        [format!("unread {}:1: document is over the limit of 500 bytes (--max-document-bytes)", path.display())]
    );
}

#[test]
fn bom_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"eventTimestamp":"1721237155000","message":{"eventType":"SignIn","userName":"ok"}}"#;
    let text = format!("\u{feff}{good}\r\n\r\n{good}\r\n");
    let path = temp_file(&dir, "bom.jsonl", text.as_bytes());
    let got = run(&path);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got[1].starts_with(&format!("event {}:3 ", path.display())));
}

#[test]
fn forced_format_rejects_the_other_format() {
    let cognito = Input::File(Path::new(FIXTURES).join("cognito_documented.json"));
    let got = run_with(&cognito, Limits::default(), Some(LogFormat::CloudTrail));
    assert_eq!(got.len(), 1);
    assert!(got[0]
        .ends_with("a Cognito user-activity event, but the format was forced to cloudtrail (--format cloudtrail)"));
    assert!(run_with(&cognito, Limits::default(), Some(LogFormat::CognitoUserActivity))[0].starts_with("event "));

    let trail = Input::File(Path::new(FIXTURES).join("cloudtrail_records.json"));
    let got = run_with(&trail, Limits::default(), Some(LogFormat::CognitoUserActivity));
    assert!(got
        .iter()
        .all(|l| l.ends_with("a CloudTrail record, but the format was forced to cognito (--format cognito)")));
    assert_eq!(run_with(&trail, Limits::default(), Some(LogFormat::CloudTrail)), expected("cloudtrail_records.json"));
}

#[test]
fn zip_bomb_is_rejected() {
    let bomb = gzip(&vec![b' '; 65 * 1024 * 1024]);
    let got = decode_bytes(&bomb);
    assert!(matches!(&got[..], [Decoded::Rejected(r)] if r.reason.contains("decompresses to more than")), "{got:?}");
}

#[test]
fn nesting_is_bounded() {
    let mut payload = br#"{"eventTimestamp":"1721237155000","message":{"eventType":"SignIn"}}"#.to_vec();
    for _ in 0..12 {
        payload = base64::engine::general_purpose::STANDARD.encode(gzip(&payload)).into_bytes();
    }
    let got = decode_bytes(&payload);
    assert!(matches!(&got[..], [Decoded::Rejected(r)] if r.reason.contains("nested more than")), "{got:?}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = RecordReader::open(&Input::File("/nonexistent/x.json".into()), Limits::default()).err().unwrap();
    assert_eq!(err.to_string(), "/nonexistent/x.json: no such file or directory");
}

/// Found by the `decode_container` fuzz target (`[\r\r]` yielded no item): empty containers are normal
/// (an empty `filter-log-events` page, an empty CloudTrail file) and decode to nothing, neither events nor
/// rejections; anything else always yields at least one item.
#[test]
fn empty_containers_yield_nothing_and_are_not_rejected() {
    for empty in
        ["[]", "[\r\r]", r#"{"Records":[]}"#, r#"{"events":[]}"#, r#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#]
    {
        assert_eq!(decode_bytes(empty.as_bytes()), vec![], "{empty:?}");
    }
    for not_empty in ["[1]", "{}", "[][]", "{\"Records\":[]}{}", "\r"] {
        assert!(!decode_bytes(not_empty.as_bytes()).is_empty(), "{not_empty:?} yielded nothing");
    }
}
