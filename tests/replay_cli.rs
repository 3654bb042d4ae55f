//! `authwatch replay` end to end: determinism, input forms, time bounds, exit codes, spec errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_authwatch");

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect").join(case).join("events.jsonl")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).arg("--no-progress").output().expect("run authwatch")
}

fn simulated(dir: &Path) -> PathBuf {
    let log = dir.join("sim.jsonl");
    let out = Command::new(BIN)
        .args(["simulate", "--users", "2000", "--duration", "12h", "--seed", "5", "--start", "2026-03-01T00:00:00Z"])
        .arg("-o")
        .arg(&log)
        .output()
        .expect("simulate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    log
}

#[test]
fn same_input_gives_byte_identical_findings_whatever_the_threads_or_split() {
    let dir = tempfile::tempdir().unwrap();
    let log = simulated(dir.path());
    let one = run(&["replay", log.to_str().unwrap(), "--threads", "1", "-q"]);
    let two = run(&["replay", log.to_str().unwrap(), "--threads", "2", "-q"]);
    let again = run(&["replay", log.to_str().unwrap(), "--threads", "4", "-q"]);
    assert!(one.status.success());
    assert!(!one.stdout.is_empty(), "the simulation plants attacks");
    assert_eq!(one.stdout, two.stdout);
    assert_eq!(one.stdout, again.stdout);

    // The same events split over several files in a directory (read in path order).
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (i, chunk) in lines.chunks(lines.len() / 5 + 1).enumerate() {
        let mut f = std::fs::File::create(parts.join(format!("part-{i:02}.jsonl"))).unwrap();
        for l in chunk {
            writeln!(f, "{l}").unwrap();
        }
    }
    let split = run(&["replay", parts.to_str().unwrap(), "-q"]);
    assert!(split.status.success());
    assert_eq!(one.stdout, split.stdout, "splitting into files changes nothing");

    // Interleaved: odd lines in one file, even lines in another (two log streams over the same span).
    let odd: String = lines.iter().step_by(2).map(|l| format!("{l}\n")).collect();
    let even: String = lines.iter().skip(1).step_by(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("stream-b.jsonl"), odd).unwrap();
    std::fs::write(dir.path().join("stream-a.jsonl"), even).unwrap();
    let streams = run(&[
        "replay",
        dir.path().join("stream-b.jsonl").to_str().unwrap(),
        dir.path().join("stream-a.jsonl").to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(one.stdout, streams.stdout, "files covering the same span are merged by event time");

    // Gzip and standard input give the same.
    let gz = dir.path().join("sim.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    let zipped = run(&["replay", gz.to_str().unwrap(), "-q"]);
    assert_eq!(one.stdout, zipped.stdout, "gzip is read transparently");
    let mut child = Command::new(BIN)
        .args(["replay", "-", "-q", "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = text.clone();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
    let piped = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(one.stdout, piped.stdout, "standard input as -");
}

#[test]
fn output_file_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("findings.jsonl");
    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "-o", out_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "findings went to the file");
    let written = std::fs::read_to_string(&out_path).unwrap();
    let f: serde_json::Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    for field in [
        "detector",
        "severity",
        "user",
        "user_sub",
        "ip",
        "user_pool_id",
        "first_seen",
        "last_seen",
        "detected_at",
        "count",
        "summary",
        "evidence",
    ] {
        assert!(f.get(field).is_some(), "schema field {field} missing");
    }
    let summary = String::from_utf8_lossy(&out.stderr);
    for needle in ["decoded", "rejected    0", "failed_login_burst", "top addresses", "time span", "throughput"] {
        assert!(summary.contains(needle), "summary lacks {needle}:\n{summary}");
    }
}

#[test]
fn rejected_records_are_located_counted_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let good = std::fs::read_to_string(fixture("burst_user")).unwrap();
    let mut text = String::from("{\"eventTimestamp\": \"17724\n");
    text.push_str("not json at all\n");
    text.push_str(&good);
    std::fs::write(&path, text).unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let out = run(&["replay", path.to_str().unwrap(), "--rejects", rejects.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "rejected records give exit 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rejected    2"), "{stderr}");
    assert!(stderr.contains("mixed.jsonl:1"), "located: {stderr}");
    assert!(stderr.contains("mixed.jsonl:2"), "located: {stderr}");
    let findings = String::from_utf8_lossy(&out.stdout);
    assert!(findings.contains("failed_login_burst"), "the rest of the input was still processed");
    let listed = std::fs::read_to_string(rejects).unwrap();
    assert_eq!(listed.lines().count(), 2);
    let r: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(r["line"], 1);
    assert!(r["reason"].as_str().unwrap().len() > 5);
}

#[test]
fn fatal_errors_exit_2_with_a_clear_message() {
    let out = run(&["replay", "/no/such/file.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.jsonl"));

    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));

    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "--format", "syslog"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));

    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "--allow-cidr", "10.0.0.0/99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-cidr"));
}

#[test]
fn since_and_until_bound_the_events() {
    let f = fixture("burst_user");
    let inside =
        run(&["replay", f.to_str().unwrap(), "--since", "2026-03-02T12:09:00Z", "--until", "2026-03-02T12:20:00Z"]);
    assert!(String::from_utf8_lossy(&inside.stdout).contains("failed_login_burst"));
    let before = run(&["replay", f.to_str().unwrap(), "--until", "2026-03-02T12:11:00Z"]);
    assert!(before.stdout.is_empty(), "only 3 of the failures fall before 12:11");
    assert!(String::from_utf8_lossy(&before.stderr).contains("outside --since/--until"));
}

#[test]
fn forced_format_rejects_the_other_format() {
    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "--format", "cloudtrail", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn updates_flag_adds_open_and_escalated_findings() {
    let out = run(&["replay", fixture("alert_storm_one_incident").to_str().unwrap(), "--updates", "-q"]);
    let statuses: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].as_str().unwrap().to_string())
        .collect();
    assert!(statuses.contains(&"open".to_string()));
    assert!(statuses.contains(&"escalated".to_string()));
    assert!(statuses.contains(&"closed".to_string()));
}

#[test]
fn bad_spec_directory_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("filters/failed_login_burst_user.toml");
    let text = std::fs::read_to_string(src).unwrap().replace("threshold = 10", "threshold = 10\nthreshhold = 3");
    std::fs::write(dir.path().join("failed_login_burst_user.toml"), text).unwrap();
    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "--filters", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed_login_burst_user.toml"), "{err}");
    assert!(err.contains("threshhold"), "{err}");
}

#[test]
fn filters_dir_replaces_the_builtin_rules() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("filters/failed_login_burst_user.toml");
    let text = std::fs::read_to_string(src).unwrap().replace("threshold = 10", "threshold = 20");
    std::fs::write(dir.path().join("failed_login_burst_user.toml"), text).unwrap();
    let out =
        run(&["replay", fixture("burst_user").to_str().unwrap(), "--filters", dir.path().to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "12 failures are under a threshold of 20");
}

#[test]
fn readme_detector_table_matches_the_specs() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = authwatch::spec::SpecSet::builtin().markdown_table();
    assert!(
        readme.contains(&table),
        "README's detector table is stale; paste the output of `authwatch detectors`:\n{table}"
    );
}

#[test]
fn truth_flag_scores_findings_and_exits_3_on_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sim.jsonl");
    let truth = dir.path().join("truth.json");
    let out = Command::new(BIN)
        .args(["simulate", "--users", "1500", "--duration", "12h", "--seed", "9"])
        .arg("-o")
        .arg(&log)
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    assert!(out.status.success());
    let ok = run(&["replay", log.to_str().unwrap(), "--truth", truth.to_str().unwrap(), "-o", "/dev/null"]);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert_eq!(ok.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 missed, 0 false alarm(s)"), "{stderr}");

    // A planted attack the log does not contain is reported as missed.
    let mut attacks: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let mut ghost = attacks[0].clone();
    ghost["id"] = "ghost-1".into();
    ghost["ips"] = serde_json::json!(["192.0.2.99"]);
    ghost["users"] = serde_json::json!(["nobody"]);
    attacks.push(ghost);
    std::fs::write(&truth, serde_json::to_vec(&attacks).unwrap()).unwrap();
    let miss = run(&["replay", log.to_str().unwrap(), "--truth", truth.to_str().unwrap(), "-o", "/dev/null"]);
    assert_eq!(miss.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&miss.stderr).contains("missed ghost-1"));
}

#[test]
fn overlapping_files_are_merged_in_time_order_within_the_lateness() {
    // Two "regions" each hold half of one user's failures over the same four minutes, in files named so
    // that path order is not time order. The files are merged by event time: the result equals the
    // single sorted file, with no lateness to spare.
    let dir = tempfile::tempdir().unwrap();
    let all = std::fs::read_to_string(fixture("burst_user")).unwrap();
    let attack: Vec<&str> = all.lines().filter(|l| l.contains("\"jdoe\"")).collect();
    type Numbered<'a> = Vec<(usize, &'a str)>;
    let (a, b): (Numbered, Numbered) = attack.iter().copied().enumerate().partition(|(i, _)| i % 2 == 0);
    let write = |name: &str, lines: &[(usize, &str)]| {
        let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    write("z-region-a.jsonl", &a);
    write("a-region-b.jsonl", &b);
    let single = dir.path().join("single.jsonl");
    std::fs::write(&single, attack.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let merged = run(&[
        "replay",
        dir.path().join("z-region-a.jsonl").to_str().unwrap(),
        dir.path().join("a-region-b.jsonl").to_str().unwrap(),
        "--lateness",
        "0s",
        "-q",
    ]);
    let reference = run(&["replay", single.to_str().unwrap(), "-q"]);
    assert!(!reference.stdout.is_empty());
    assert_eq!(merged.stdout, reference.stdout);
}

#[test]
fn a_reader_that_stops_early_ends_replay_quietly_with_success() {
    // The reader has gone before authwatch writes its first finding: the write fails with a broken pipe.
    let mut child = Command::new(BIN)
        .args(["replay", "--no-progress", "--updates"])
        .arg(fixture("burst_user"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authwatch");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for authwatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn every_bad_spec_file_is_named_in_full_on_lines_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let filters = Path::new(env!("CARGO_MANIFEST_DIR")).join("filters");
    for name in ["failed_login_burst_user.toml", "account_takeover.toml", "cognito_risk.toml"] {
        std::fs::copy(filters.join(name), dir.path().join(name)).unwrap();
    }
    let mut bad = std::fs::OpenOptions::new().append(true).open(dir.path().join("account_takeover.toml")).unwrap();
    writeln!(bad, "bogus_field = 3").unwrap();
    let mut bad = std::fs::OpenOptions::new().append(true).open(dir.path().join("cognito_risk.toml")).unwrap();
    writeln!(bad, "[params]\nthreshold = 1").unwrap();
    let out = run(&["replay", fixture("burst_user").to_str().unwrap(), "--filters", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("\\u{a}") && !err.contains("[cut]"), "{err}");
    let named = |file: &str| err.lines().any(|l| l.contains(file));
    assert!(named("account_takeover.toml: ") && named("cognito_risk.toml: "), "{err}");
    assert!(err.contains("bogus_field") && err.contains("duplicate key `params`"), "{err}");
}

/// Runs `authwatch ARGS` with standard error to a file in `dir`, for a daemon the test stops itself.
fn spawn(dir: &Path, args: &[&str]) -> (std::process::Child, PathBuf) {
    let log = dir.join("stderr.log");
    let child = Command::new(BIN)
        .args(args)
        .env("AUTHWATCH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start authwatch");
    (child, log)
}

/// Polls until `ok` holds (every 100 ms, for at most a minute: a bound for a hung run, not a wait).
fn wait_for(mut ok: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ok()
}

/// The monitor, following `lines` written to a file, stopped with SIGTERM once its log shows `ready`.
fn monitor_stopped_after(lines: &str, ready: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let followed = dir.path().join("cognito.log");
    std::fs::write(&followed, lines).unwrap();
    let state = dir.path().join("state");
    let (mut child, log) = spawn(
        dir.path(),
        &[
            "monitor",
            "--follow",
            followed.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--status-interval",
            "1s",
            "--drain",
            "0s",
        ],
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let seen = wait_for(|| text().contains(ready));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let code = child.wait().unwrap().code();
    assert!(seen, "no {ready:?} in the monitor's log:\n{}", text());
    (code, text())
}

/// replay, demo and monitor give the same code for the same outcome (README, "Exit codes"): 0 for a clean
/// run with or without findings, 1 when records were rejected, 2 for bad arguments or input that cannot be
/// used, 3 for a score that is not perfect (replay --truth, demo: pinned by the truth tests).
#[test]
fn exit_codes_agree_across_replay_demo_and_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let under_a_file = a_file.join("x");
    let under_a_file = under_a_file.to_str().unwrap();

    // replay: findings do not change the code; input that cannot be read is fatal.
    let out = run(&["replay", fixture("burst_user").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed_login_burst"), "the case has findings");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(run(&["replay", under_a_file]).status.code(), Some(2), "an input under a regular file");
    assert_eq!(run(&["replay", "--threads", "many"]).status.code(), Some(2), "bad arguments");

    // demo: a clean run with findings is 0 when its score is perfect, 3 (as replay --truth) when not; bad
    // arguments and an unusable --keep are 2.
    let out = Command::new(BIN).args(["demo", "--users", "2000"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score = stdout.lines().find(|l| l.starts_with("score: ")).unwrap_or_else(|| panic!("no score: {stdout}"));
    // Perfect: every attack found, no false alarm, and no case joining two attacks or an attack with
    // findings of none (the demo prints such a case as "joined").
    let perfect = score.ends_with(" 0 missed, 0 false alarm(s)") && !stdout.contains(" joined ");
    assert!(stdout.contains("cases (") && stdout.contains("pages: "), "{stdout}");
    assert_eq!(out.status.code(), Some(if perfect { 0 } else { 3 }), "{score}");
    let out = Command::new(BIN).args(["demo", "--users", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad arguments");
    let out = Command::new(BIN).args(["demo", "--keep", under_a_file]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--keep under a regular file");

    // monitor: bad arguments and an unusable state directory are fatal; a stop after a clean run is 0,
    // after a rejected record 1.
    let out = Command::new(BIN).args(["monitor", "--follow", "x.log", "--backfill", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad arguments");
    let out = Command::new(BIN).args(["monitor", "--follow", "x.log", "--state-dir", under_a_file]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--state-dir under a regular file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("Not a directory").count(), 1, "the cause once: {stderr}");
    let good =
        r#"{"eventTimestamp":"1721237155000","message":{"eventType":"SignIn","eventResponse":"Pass","userName":"u"}}"#;
    let (code, log) = monitor_stopped_after(&format!("{good}\n"), "authwatch monitor:");
    assert_eq!(code, Some(0), "{log}");
    let (code, log) = monitor_stopped_after(&format!("not json\n{good}\n"), "rejected record");
    assert_eq!(code, Some(1), "{log}");
}
