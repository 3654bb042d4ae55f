//! The bad-input matrix, through the real binary: each hostile record sits between good ones, and the run
//! must report it with its file, line and reason, count it in the summary, keep decoding and detecting
//! after it, exit with code 1, and keep memory bounded (a 300 MB line is skipped, never buffered).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;

/// 2024-07-17T17:25:55Z, the documented example's time.
const T0: i64 = 1_721_237_155_000;

fn cognito_line(ms: i64, user: &str, ip: &str, response: &str) -> String {
    serde_json::json!({
        "eventTimestamp": ms.to_string(),
        "eventSource": "USER_ACTIVITY",
        "logLevel": "INFO",
        "message": {"eventType": "SignIn", "userName": user, "eventResponse": response, "ipAddress": ip},
    })
    .to_string()
}

/// Twelve failed sign-ins for `victim` in two minutes: `failed_login_burst_user` (10 in 5 min) fires.
fn burst(start: i64) -> String {
    (0..12).map(|i| cognito_line(start + i * 10_000, "victim", "203.0.113.9", "Fail") + "\n").collect()
}

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(["replay", "--no-progress"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run authwatch")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The summary's `rejected N` count.
fn rejected_count(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| l.trim_start().strip_prefix("rejected")?.trim().parse().ok())
}

fn decoded_count(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| l.trim_start().strip_prefix("decoded")?.split_whitespace().next()?.parse().ok())
}

fn finds_victim_burst(stdout: &str) -> bool {
    stdout.lines().any(|l| l.contains(r#""detector":"failed_login_burst""#) && l.contains(r#""user":"victim""#))
}

/// One hostile record and what its located error must say; `None` when the record is a valid event that
/// must be decoded (hostile shape, harmless content).
struct Case {
    name: &'static str,
    record: Vec<u8>,
    reason: Option<&'static str>,
}

fn case(name: &'static str, record: impl Into<Vec<u8>>, reason: &'static str) -> Case {
    Case { name, record: record.into(), reason: Some(reason) }
}

fn accepted(name: &'static str, record: impl Into<Vec<u8>>) -> Case {
    Case { name, record: record.into(), reason: None }
}

fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `filter-log-events` output whose message is itself such output, `depth` times.
fn nested_containers(depth: usize) -> String {
    let mut doc = cognito_line(T0, "deep", "198.51.100.1", "Fail");
    for _ in 0..depth {
        doc = serde_json::json!({"events": [{"message": doc}]}).to_string();
    }
    doc
}

fn cases() -> Vec<Case> {
    let ts = r#""eventTimestamp":"1721237155000""#;
    let trail = r#""eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"InitiateAuth""#;
    let mut garbage: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').cycle().take(4000).collect();
    garbage.rotate_left(7);
    let mut bad_utf8 = format!(r#"{{{ts},"message":{{"eventType":"SignIn","userName":"x"#).into_bytes();
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    bad_utf8.extend_from_slice(br#""}}"#);
    vec![
        case("binary garbage", garbage, "invalid UTF-8 at byte"),
        case("NUL bytes", b"\0\0\0\0".to_vec(), "not JSON"),
        case("invalid UTF-8 inside a user name", bad_utf8, "invalid UTF-8 at byte 79"),
        case("truncated JSON", format!(r#"{{{ts},"message":{{"eventType":"Sign"#), "invalid JSON: EOF"),
        case(
            "deeply nested JSON in a known field",
            format!(r#"{{{ts},"message":{{"eventType":"SignIn","userName":{}}}}}"#, nested(100_000, "1")),
            "recursion limit exceeded",
        ),
        // An unknown field is skipped without recursing into it, however deep (AWS may add fields).
        accepted(
            "deeply nested JSON in an unknown field",
            format!(r#"{{{ts},"message":{{"eventType":"SignIn","new":{}}},"x":{}}}"#, nested(100_000, ""), nested(100_000, "")),
        ),
        case("containers nested too deep", nested_containers(12), "containers nested more than 8 deep"),
        case("huge number", r#"{"eventTimestamp":1e400,"message":{"eventType":"SignIn"}}"#, "number out of range"),
        case(
            "huge integer text",
            format!(r#"{{"eventTimestamp":"{}","message":{{"eventType":"SignIn"}}}}"#, "9".repeat(400)),
            "'9999999999999999999999999999999999999999999999999999999999999999…[400 bytes]' is neither epoch milliseconds",
        ),
        case(
            "mistyped megabyte string",
            format!(r#"{{"events":["{}"]}}"#, "x".repeat(512 * 1024)),
            "is not a log event: invalid type: string",
        ),
        case(
            "largest i64 as a time",
            r#"{"eventTimestamp":9223372036854775807,"message":{"eventType":"SignIn"}}"#,
            "outside the plausible range",
        ),
        case(
            "smallest i64 as a time",
            r#"{"eventTimestamp":"-9223372036854775808","message":{"eventType":"SignIn"}}"#,
            "outside the plausible range",
        ),
        case("far past: epoch 0", r#"{"eventTimestamp":"0","message":{"eventType":"SignIn"}}"#, "outside the plausible range"),
        case(
            "far future: year 3000",
            r#"{"eventTimestamp":"32503680000000","message":{"eventType":"SignIn"}}"#,
            "outside the plausible range",
        ),
        case("CloudTrail far past", format!(r#"{{{trail},"eventTime":"1899-12-31T23:59:59Z"}}"#), "outside the plausible range"),
        case("CloudTrail far future", format!(r#"{{{trail},"eventTime":"9999-12-31T23:59:59Z"}}"#), "outside the plausible range"),
        case("Cognito event with no time", r#"{"message":{"eventType":"SignIn","userName":"x"}}"#, "missing `eventTimestamp`"),
        case("CloudTrail record with no time", format!("{{{trail}}}"), "missing `eventTime`"),
        case("wrong type: message is a string", format!(r#"{{{ts},"message":"SignIn"}}"#), "`message` is a string, expected an object"),
        case(
            "wrong type: user name is an object",
            format!(r#"{{{ts},"message":{{"eventType":"SignIn","userName":{{"a":1}}}}}}"#),
            "invalid type: map",
        ),
        case("wrong type: time is an object", r#"{"eventTimestamp":{"ms":1},"message":{}}"#, "wrong type"),
        case(
            "wrong type: requestParameters is an array",
            format!(r#"{{{trail},"eventTime":"2024-07-17T17:26:00Z","requestParameters":[1]}}"#),
            "`requestParameters` is an array, expected an object",
        ),
        case(
            "duplicate key at the top",
            format!(r#"{{{ts},{ts},"message":{{"eventType":"SignIn"}}}}"#),
            "duplicate key `eventTimestamp`",
        ),
        case(
            "duplicate key in the message",
            format!(r#"{{{ts},"message":{{"eventType":"SignIn","userName":"a","userName":"b"}}}}"#),
            "duplicate key `userName`",
        ),
        case("missing message", format!("{{{ts}}}"), "Cognito event has no `message`"),
        case("missing event type", format!(r#"{{{ts},"message":{{"userName":"x"}}}}"#), "no `message.eventType`"),
        case("missing event name", r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com"}"#, "no `eventName`"),
        case("neither format", r#"{"hello":"world"}"#, "unrecognised record"),
    ]
}

#[test]
fn every_bad_record_is_located_counted_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for c in cases() {
        let path = dir.path().join("in.jsonl");
        let mut bytes = (cognito_line(T0 - 60_000, "early", "198.51.100.2", "Pass") + "\n").into_bytes();
        bytes.extend_from_slice(&c.record);
        bytes.push(b'\n');
        bytes.extend_from_slice(burst(T0).as_bytes());
        fs::write(&path, &bytes).unwrap();
        let rejects = dir.path().join("rejects.jsonl");
        let out = replay(&["--rejects", rejects.to_str().unwrap(), path.to_str().unwrap()]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let rejects = fs::read_to_string(&rejects).unwrap_or_default();
        // Line 2, possibly a record inside it: `in.jsonl:2: ` or `in.jsonl:2 record 0: `.
        let located = format!("{}:2", path.display());
        let (code, rejected, decoded) = match c.reason {
            Some(_) => (1, 1, 13),
            None => (0, 0, 14),
        };
        let mut problems = Vec::new();
        if out.status.code() != Some(code) {
            problems.push(format!("exit code {:?}, expected {code}", out.status.code()));
        }
        if rejected_count(&stderr) != Some(rejected) {
            problems.push(format!("rejected count {:?}, expected {rejected}", rejected_count(&stderr)));
        }
        if let Some(reason) = c.reason {
            let at = |l: &str| l.contains(&format!("{located}: ")) || l.contains(&format!("{located} record "));
            if !stderr.lines().any(|l| at(l) && l.contains(reason)) {
                problems.push(format!("no line with '{located}' and '{reason}'"));
            }
        }
        if stderr.lines().chain(rejects.lines()).any(|l| l.len() > 2000) {
            problems.push("a summary or rejects line over 2000 bytes".into());
        }
        if rejects.lines().count() as u64 != rejected {
            problems.push(format!("{} lines in --rejects, expected {rejected}", rejects.lines().count()));
        }
        if decoded_count(&stderr) != Some(decoded) {
            problems.push(format!("decoded {:?} events, expected {decoded}", decoded_count(&stderr)));
        }
        if !finds_victim_burst(&stdout) {
            problems.push("the burst after the bad record was not detected".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n--- stderr:\n{stderr}", c.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Lines of distinct successful sign-ins, enough that gzip output spans many deflate blocks.
fn good_lines(n: i64) -> String {
    (0..n).map(|i| cognito_line(T0 - 3_600_000 + i * 1000, &format!("u{i}"), "198.51.100.3", "Pass") + "\n").collect()
}

#[test]
fn truncated_and_corrupt_gzip_are_located_and_later_files_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let whole = gzip(good_lines(2000).as_bytes());
    // Read in name order: a, b, c, d, e.
    let truncated = dir.path().join("a-truncated.jsonl.gz");
    fs::write(&truncated, &whole[..whole.len() * 3 / 5]).unwrap();
    // A wrong CRC: every line decompresses, the check at the end fails.
    let mut bad_crc = whole.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    fs::write(dir.path().join("b-bad-crc.jsonl.gz"), &bad_crc).unwrap();
    // Damage inside the deflate stream: garbage comes out (and is rejected line by line) or the stream
    // breaks; either way every rejection is located in this file.
    let mut mangled = whole.clone();
    let mid = mangled.len() / 2;
    for b in &mut mangled[mid..mid + 64] {
        *b ^= 0x5a;
    }
    fs::write(dir.path().join("c-mangled.jsonl.gz"), &mangled).unwrap();
    fs::write(dir.path().join("d-header-only.gz"), [0x1f, 0x8b]).unwrap();
    fs::write(dir.path().join("e-burst.jsonl"), burst(T0)).unwrap();

    let rejects = dir.path().join("rejects.out");
    let out = replay(&["--rejects", rejects.to_str().unwrap(), dir.path().to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let rejects = fs::read_to_string(&rejects).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let rows: Vec<serde_json::Value> = rejects.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected_count(&stderr), Some(rows.len() as u64), "{stderr}");
    let of = |name: &str| -> Vec<&serde_json::Value> {
        rows.iter().filter(|r| r["file"].as_str().is_some_and(|f| f.ends_with(name))).collect()
    };
    for name in ["a-truncated.jsonl.gz", "b-bad-crc.jsonl.gz", "d-header-only.gz"] {
        let rows = of(name);
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        assert!(rows[0]["reason"].as_str().unwrap().contains("stopped reading here"), "{name}: {rows:?}");
    }
    // Where reading stopped: well into the truncated file; after the last line of the bad-CRC one.
    assert!(of("a-truncated.jsonl.gz")[0]["line"].as_u64().unwrap() > 100, "{rejects}");
    assert_eq!(of("b-bad-crc.jsonl.gz")[0]["line"].as_u64(), Some(2001), "{rejects}");
    assert!(!of("c-mangled.jsonl.gz").is_empty(), "{rejects}");
    assert!(rows.iter().all(|r| r["line"].as_u64().is_some_and(|l| l > 0)), "{rejects}");
    // Events before the damage were decoded: most of the truncated file, all of the bad-CRC one, the burst.
    let decoded = decoded_count(&stderr).unwrap();
    assert!(decoded > 1000 + 2000 + 12, "{stderr}");
    assert!(finds_victim_burst(&stdout), "{stdout}");
}

/// Peak resident memory (VmHWM) of a running child, polled until it exits.
fn run_measuring_peak_rss(cmd: &mut Command) -> (Output, u64) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn authwatch");
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let poller = std::thread::spawn(move || {
        let mut peak_kb = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(600) {
            let Ok(status) = fs::read_to_string(&status_path) else { break };
            let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            else {
                break; // a zombie has no memory lines any more
            };
            peak_kb = peak_kb.max(kb);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak_kb
    });
    let out = child.wait_with_output().expect("wait for authwatch");
    let peak_kb = poller.join().unwrap();
    (out, peak_kb * 1024)
}

const HUGE_LINE_BYTES: u64 = 300 * 1024 * 1024;

/// Writes `prefix`, then filler up to `HUGE_LINE_BYTES`, then `suffix`, streaming.
fn write_huge_line(path: &Path, before: &str, prefix: &str, after: &str) {
    let mut w = BufWriter::new(File::create(path).unwrap());
    w.write_all(before.as_bytes()).unwrap();
    w.write_all(prefix.as_bytes()).unwrap();
    let chunk = vec![b'A'; 1 << 20];
    let mut left = HUGE_LINE_BYTES - prefix.len() as u64;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.write_all(b"\"}}\n").unwrap();
    w.write_all(after.as_bytes()).unwrap();
    w.flush().unwrap();
}

/// Far below the 300 MB line, and well above what a bounded read takes: the debug binary's own footprint
/// (tables, buffers, threads, the AWS SDKs) is a few tens of MB, and a refused document is read up to
/// `--max-document-bytes` (16 MB) and copied once. Measured 77 MB on a quiet machine and 96 MB once
/// under a parallel build (buffers in flight and the allocator's retention vary with timing), so the
/// bound leaves room for that and still fails at half the line.
const PEAK_RSS_BOUND: u64 = 144 * 1024 * 1024;

#[test]
fn a_300_mb_line_is_rejected_without_being_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    let before = cognito_line(T0 - 60_000, "early", "198.51.100.2", "Pass") + "\n";
    write_huge_line(&path, &before, r#"{"eventTimestamp":"1721237155000","message":{"userName":""#, &burst(T0));
    let (out, peak) = run_measuring_peak_rss(
        Command::new(env!("CARGO_BIN_EXE_authwatch")).args(["replay", "--no-progress", "--threads", "1"]).arg(&path),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(rejected_count(&stderr), Some(1), "{stderr}");
    let want = format!(
        "{}:2: line is {} bytes, over the limit of 1048576 (--max-line-bytes)",
        path.display(),
        HUGE_LINE_BYTES + 3
    );
    assert!(stderr.contains(&want), "no '{want}' in:\n{stderr}");
    assert_eq!(decoded_count(&stderr), Some(13), "{stderr}");
    assert!(finds_victim_burst(&stdout), "{stdout}");
    assert!(peak > 0 && peak < PEAK_RSS_BOUND, "peak RSS {} MB for a {} MB line", peak >> 20, HUGE_LINE_BYTES >> 20);
}

#[test]
fn a_huge_first_line_read_as_a_document_stops_at_the_document_limit() {
    // A first line that opens `{` and is over the line limit is read as a document (CloudTrail's one-line
    // S3 files): memory is bounded by --max-document-bytes, and the next file is still read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a-huge.json");
    write_huge_line(&path, "", r#"{"Records":[{"eventName":""#, "");
    fs::write(dir.path().join("b-burst.jsonl"), burst(T0)).unwrap();
    let (out, peak) = run_measuring_peak_rss(
        Command::new(env!("CARGO_BIN_EXE_authwatch"))
            .args(["replay", "--no-progress", "--threads", "1", "--max-document-bytes", "16777216"])
            .arg(dir.path()),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(rejected_count(&stderr), Some(1), "{stderr}");
    let want = format!("{}:1: document is over the limit of 16777216 bytes (--max-document-bytes)", path.display());
    assert!(stderr.contains(&want), "no '{want}' in:\n{stderr}");
    assert!(finds_victim_burst(&stdout), "{stdout}");
    assert!(peak > 0 && peak < PEAK_RSS_BOUND, "peak RSS {} MB", peak >> 20);
}

#[test]
fn document_limit_below_line_limit_is_refused() {
    let out = replay(&["--max-line-bytes", "4096", "--max-document-bytes", "2048", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--max-document-bytes must be at least --max-line-bytes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_document_of_millions_of_tiny_records_is_decoded_in_bounded_memory() {
    // `{}` is 3 bytes and becomes a rejection of about 150: collected per document, a 24 MB file of them
    // took 3.7 GB. Streamed, memory is the document plus a constant, and the events after them still count.
    const TINY: usize = 4_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.json");
    let mut w = BufWriter::new(File::create(&path).unwrap());
    w.write_all(b"{\"Records\":[").unwrap();
    for _ in 0..TINY {
        w.write_all(b"{},").unwrap();
    }
    let burst: Vec<String> = burst(T0).lines().map(str::to_owned).collect();
    w.write_all(burst.join(",").as_bytes()).unwrap();
    w.write_all(b"]}\n").unwrap();
    w.flush().unwrap();
    drop(w);
    let size = fs::metadata(&path).unwrap().len();
    let (out, peak) = run_measuring_peak_rss(
        Command::new(env!("CARGO_BIN_EXE_authwatch")).args(["replay", "--no-progress", "--threads", "1"]).arg(&path),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(rejected_count(&stderr), Some(TINY as u64), "{stderr}");
    assert!(stderr.contains(&format!("{}:1 record 0: unrecognised record", path.display())), "{stderr}");
    assert_eq!(decoded_count(&stderr), Some(12), "{stderr}");
    assert!(finds_victim_burst(&stdout), "{stdout}");
    assert!(peak < size + PEAK_RSS_BOUND, "peak RSS {} MB for a {} MB document", peak >> 20, size >> 20);
}

#[test]
fn lines_of_tiny_records_are_decoded_in_bounded_memory() {
    // Each line just under the 1 MiB limit holds 349,000 `{}` (about 50 MB of rejections once decoded).
    // Batched 1024 lines at a time and collected per batch, 60 such lines (63 MB) took 9.1 GB; batches now
    // end at 256 KiB and longer records stream through the feeding thread.
    const LINES: usize = 6;
    const PER_LINE: usize = 349_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.jsonl");
    let line = format!("[{}]\n", vec!["{}"; PER_LINE].join(","));
    let mut log = line.repeat(LINES);
    log.push_str(&burst(T0));
    fs::write(&path, log).unwrap();
    let (out, peak) = run_measuring_peak_rss(
        Command::new(env!("CARGO_BIN_EXE_authwatch")).args(["replay", "--no-progress"]).arg(&path),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(rejected_count(&stderr), Some((LINES * PER_LINE) as u64), "{stderr}");
    assert!(stderr.contains(&format!("{}:1 record 0: unrecognised record", path.display())), "{stderr}");
    assert!(finds_victim_burst(&stdout), "{stdout}");
    assert!(peak < PEAK_RSS_BOUND, "peak RSS {} MB", peak >> 20);
}
