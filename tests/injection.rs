//! Injection through the real binary: user names, addresses, devices, cities, timestamps and file names
//! chosen by an attacker must not reach a terminal or a log raw. Standard output (JSON lines), standard
//! error (summary, errors) and the `--rejects` file are checked byte by byte: no ESC, no C0 control other
//! than newline, no DEL, no C1 control, no bidi or invisible format character, one finding per line; and
//! the hostile names survive exactly inside the JSON (escaped, not dropped).

use std::fs;
use std::process::{Command, Output, Stdio};

/// 2024-07-17T17:25:55Z.
const T0: i64 = 1_721_237_155_000;

/// Names an attacker can register or type at a sign-in prompt.
const HOSTILE: &[&str] = &[
    "clear\u{1b}[2J\u{1b}[H\u{1b}]0;pwned\u{7}",
    "csi\u{9b}31mred",
    "bidi\u{202e}gnp.exe",
    "isolate\u{2067}x\u{2069}",
    "alm\u{61c}x",
    "line\nbreak {\"detector\":\"forged\"}",
    "cr\rreturn",
    "sep\u{2028}\u{2029}",
    "nul\u{0}del\u{7f}",
    "tag\u{e0041}\u{e0042}",
    "zero\u{200b}width\u{feff}",
];

fn line(ms: i64, user: &str, ip: &str, response: &str, city: &str, device: &str) -> String {
    serde_json::json!({
        "eventTimestamp": ms.to_string(),
        "eventSource": "USER_ACTIVITY",
        "message": {"eventType": "SignIn", "userName": user, "eventResponse": response, "ipAddress": ip,
                    "city": city, "country": city, "deviceName": device},
    })
    .to_string()
}

/// Everything that must not appear raw in output meant for a terminal or a log.
fn dangerous(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

fn check_clean(what: &str, bytes: &[u8]) {
    assert!(!bytes.contains(&0x1b), "{what} contains ESC");
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what} is not UTF-8: {e}"));
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| dangerous(c)) {
        panic!("{what} contains U+{:04X} at byte {at}: {:?}", c as u32, &text[at.saturating_sub(40)..at]);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authwatch")).args(args).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn hostile_values_never_reach_stdout_stderr_or_the_rejects_file_raw() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    let mut t = T0;
    for (n, name) in HOSTILE.iter().enumerate() {
        // Twelve failures each: a failed_login_burst_user finding per hostile name, which also puts the names
        // in the summary's top users.
        for _ in 0..12 {
            t += 1000;
            log += &line(t, name, &format!("198.51.100.{n}"), "Fail", name, name);
            log.push('\n');
        }
        // Garbage where an address belongs, and in the time: rejected, the reason quoting it.
        log += &line(t, name, &format!("10.0.0.1{name}"), "Pass", name, name);
        log.push('\n');
        log += &serde_json::json!({"eventTimestamp": name, "message": {"eventType": "SignIn"}}).to_string();
        log.push('\n');
    }
    // A file name is attacker-controlled too when a log bucket is synced to disk.
    let input = dir.path().join("logs\u{1b}[31m\u{202e}.jsonl");
    fs::write(&input, &log).unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let out = run(&["replay", "--no-progress", "--rejects", rejects.to_str().unwrap(), dir.path().to_str().unwrap()]);
    let rejects = fs::read(&rejects).unwrap();

    check_clean("stdout", &out.stdout);
    check_clean("stderr", &out.stderr);
    check_clean("rejects file", &rejects);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));

    // One finding per line, each valid JSON, and every hostile name comes back exactly.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let findings: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {e}: {l}")))
        .collect();
    for name in HOSTILE {
        assert!(
            findings.iter().any(|f| f["user"] == *name && f["detector"] == "failed_login_burst"),
            "no finding for {name:?}"
        );
    }
    assert!(findings.iter().all(|f| f["detector"] != "forged"));
    // Rejections: one per hostile time, located in the hostile file name, escaped.
    let rows: Vec<serde_json::Value> =
        String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), HOSTILE.len());
    assert!(rows.iter().all(|r| r["file"].as_str().is_some_and(|f| f.ends_with("logs\u{1b}[31m\u{202e}.jsonl"))));
    // The summary names the users, escaped.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bidi\\u{202e}gnp.exe"), "{stderr}");
}

#[test]
fn hostile_paths_in_fatal_errors_are_escaped() {
    let out = run(&["replay", "--no-progress", "/nonexistent/\u{1b}[2J\u{9b}\u{202e}evil.log"]);
    assert_eq!(out.status.code(), Some(2));
    check_clean("stderr", &out.stderr);
    assert!(String::from_utf8_lossy(&out.stderr).contains("\\u{1b}[2J"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["replay", "--since", "\u{1b}[31myesterday", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    check_clean("stderr", &out.stderr);
}

#[test]
fn hostile_spec_text_in_filters_errors_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x.toml"), "id = \"x\u{1b}[31m\"\ndetector = \"\u{9b}2J\"\n").unwrap();
    let out = run(&["replay", "--no-progress", "--filters", dir.path().to_str().unwrap(), "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    check_clean("stderr", &out.stderr);
}
