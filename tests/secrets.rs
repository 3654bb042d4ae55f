//! Credentials in the environment never reach output: `authwatch replay` needs no AWS access, and no error
//! path (bad arguments, missing files, bad specs, bad records, debug logging) prints the environment.

use std::fs;
use std::process::{Command, Stdio};

const MARKERS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIAMARKERMARKER0000"),
    ("AWS_SECRET_ACCESS_KEY", "secret-marker-wJalrXUtnFEMI-K7MDENG"),
    ("AWS_SESSION_TOKEN", "session-marker-IQoJb3JpZ2luX2Vj"),
];

fn replay(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authwatch"));
    cmd.args(["--log-level", "trace", "replay", "--no-progress"]).args(args).stdin(Stdio::null());
    for (k, v) in MARKERS {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), all)
}

#[test]
fn no_error_path_prints_credentials_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    fs::write(&bad, "not json\n{\"eventTimestamp\":\"x\",\"message\":{\"eventType\":\"SignIn\"}}\n\u{1f}\u{8b}junk\n")
        .unwrap();
    let gz = dir.path().join("cut.gz");
    fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let specs = dir.path().join("specs");
    fs::create_dir(&specs).unwrap();
    fs::write(specs.join("x.toml"), "id = \"y\"\n").unwrap();
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec![bad.to_str().unwrap(), gz.to_str().unwrap()], 1),
        (vec!["/nonexistent/file.jsonl"], 2),
        (vec!["--filters", specs.to_str().unwrap(), "/dev/null"], 2),
        (vec!["--since", "not-a-time", "/dev/null"], 2),
        (vec!["--geoip", "/nonexistent.mmdb", "/dev/null"], 2),
        (vec!["--output", "/nonexistent/dir/out.jsonl", "/dev/null"], 2),
        (vec!["--no-such-flag"], 2),
    ];
    for (args, code) in cases {
        let (got, all) = replay(&args);
        assert_eq!(got, Some(code), "{args:?}: {all}");
        assert!(!all.is_empty(), "{args:?} printed nothing: the check would be empty");
        for (k, v) in MARKERS {
            assert!(!all.contains(v), "{args:?} printed {k}: {all}");
        }
    }
}
