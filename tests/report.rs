//! The forensic report end to end (`replay --report`, `--report-csv`, `demo --report`): the sections are
//! there, its counts equal the summary's, hostile names are text, nothing points outside the file, a large
//! input gives a small report, and a real browser (headless Chromium) renders the demo's report without a
//! console message into a screenshot that is not blank (saved at `target/ci-artifacts/report.png`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_authwatch");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/hostile.jsonl")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run authwatch")
}

/// The number after `label` at the start of a summary line (`findings      4`).
fn summary_count(stderr: &str, label: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' line in the summary:\n{stderr}"))
}

struct Replayed {
    _dir: tempfile::TempDir,
    html: String,
    stderr: String,
    findings: Vec<serde_json::Value>,
    csv_dir: PathBuf,
}

fn replay_fixture() -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let csv_dir = dir.path().join("csv");
    let jsonl = dir.path().join("findings.jsonl");
    let out = run(&[
        "replay",
        fixture().to_str().unwrap(),
        "--no-progress",
        "-o",
        jsonl.to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
        "--report-csv",
        csv_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "one record is rejected: exit 1\n{stderr}");
    let findings = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON finding"))
        .collect();
    Replayed { html: std::fs::read_to_string(&html).expect("the report"), stderr, findings, csv_dir, _dir: dir }
}

#[test]
fn report_has_every_section_and_the_summarys_counts() {
    let r = replay_fixture();
    for id in ["run", "timeline", "findings", "offenders", "map", "accounts", "rules"] {
        assert!(r.html.contains(&format!(r#"<section id="{id}">"#)), "section {id} missing");
    }
    assert!(r.html.contains(r#"<svg class="timeline""#) && r.html.contains(r#"<svg class="map""#));
    let findings = summary_count(&r.stderr, "findings");
    assert_eq!(findings, 4, "the fixture's attacks: a burst and a takeover, a burst, an impossible trip");
    assert_eq!(r.findings.len() as u64, findings);
    assert!(r.html.contains(&format!("{findings} closed finding(s)")));
    // One article per case: the burst and the takeover it ended in are one.
    let cases = summary_count(&r.stderr, "cases");
    assert_eq!(cases, 3, "{}", r.stderr);
    assert_eq!(r.html.matches(r#"<article class="case""#).count() as u64, cases);
    let events = summary_count(&r.stderr, "decoded");
    assert!(r.html.contains(&format!("{events} sign-in event(s) decoded")));
    assert!(r.html.contains(&format!("<b>{events}</b><span>events</span>")));
    assert!(r.html.contains(&format!(r#"<p class="legend">{events} events, per 5m"#)), "the timeline saw every event");
    assert!(r.html.contains("<th>rejected</th><td>1<br>"), "the rejected record is counted and named");
    // Most severe first: the high findings come before the medium ones.
    let high = r.html.find(r#"<span class="sev" style="background:#e4572e">high"#).expect("a high finding");
    let medium = r.html.find(r#">medium</span>"#).expect("a medium finding");
    assert!(high < medium);
    // Every finding's incident is in the report, and the timeline links to each group.
    for f in &r.findings {
        assert!(r.html.contains(f["incident_id"].as_str().unwrap()));
    }
    for n in 1..=cases {
        assert!(r.html.contains(&format!(r##"<a href="#case-{n}">"##)), "timeline mark for case-{n}");
    }
    // The impossible trip is an arc with its distance and speed.
    assert!(r.html.contains("Paris, France to Tokyo, Japan"), "the hop's title");
    // The version and the rules (ids and thresholds) that made it.
    assert!(r.html.contains(&format!("authwatch {}", env!("CARGO_PKG_VERSION"))));
    for rule in ["failed_login_burst_user", "impossible_travel", "password_spray"] {
        assert!(r.html.contains(&format!("<code>{rule}</code>")), "rule {rule}");
    }
    // Each flagged account has a story with its sign-ins.
    assert!(r.html.contains("<h3>&lt;script&gt;alert(1)&lt;/script&gt;</h3>"));
}

#[test]
fn hostile_names_are_text_and_nothing_points_outside_the_file() {
    let r = replay_fixture();
    let lower = r.html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "no script element, not even from a user name");
    assert!(!lower.contains("<img"), "the rejected line's markup is text");
    assert!(!lower.contains("<b>kyiv"), "a city's markup is text");
    assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(r.html.contains("&quot;&#39;&amp;"), "the name of quotes and an ampersand, escaped");
    assert!(r.html.contains("&lt;b&gt;Kyiv&lt;/b&gt;"));
    assert!(!lower.contains("http://") && !lower.contains("https://"), "no external URL");
    assert!(!lower.contains(" src=") && !lower.contains("url("), "nothing loaded from anywhere");
    assert!(r.html.contains("Content-Security-Policy"), "a policy that forbids scripts as a second wall");
}

#[test]
fn csv_files_are_quoted_and_formulas_neutralised() {
    let r = replay_fixture();
    let findings = std::fs::read_to_string(r.csv_dir.join("findings.csv")).unwrap();
    let rows: Vec<&str> = findings.split("\r\n").filter(|l| l.starts_with('"')).collect();
    assert!(rows[0].starts_with(r#""incident_id","case_id","detector","rule","severity","user""#));
    assert!(findings.contains(r#""'=1+2""#), "a formula for a name is shown, not run");
    assert!(!findings.contains(r#","=1+2""#));
    assert!(findings.contains(r#""""'&""#), "quotes doubled inside a quoted cell");
    for f in &r.findings {
        assert!(findings.contains(f["incident_id"].as_str().unwrap()));
    }
    let timelines = std::fs::read_to_string(r.csv_dir.join("timelines.csv")).unwrap();
    let header = timelines.lines().next().unwrap();
    for col in ["message", "datetime", "timestamp_desc"] {
        assert!(header.contains(&format!("\"{col}\"")), "Timesketch column {col}");
    }
    // The account with 12 failures and a success: every sign-in is a row, in time order.
    let script_rows: Vec<&str> = timelines.lines().filter(|l| l.contains(",\"<script>alert(1)</script>\",")).collect();
    assert_eq!(script_rows.len(), 13, "{timelines}");
    let times: Vec<&str> = script_rows.iter().map(|l| &l[1..25]).collect();
    let sorted = {
        let mut t = times.clone();
        t.sort();
        t
    };
    assert_eq!(times, sorted);
    // One row per case, each finding's case among them.
    let cases = std::fs::read_to_string(r.csv_dir.join("cases.csv")).unwrap();
    let case_rows: Vec<&str> = cases.split("\r\n").filter(|l| l.starts_with('"')).skip(1).collect();
    assert_eq!(case_rows.len() as u64, summary_count(&r.stderr, "cases"), "{cases}");
    for f in &r.findings {
        assert!(cases.contains(f["case_id"].as_str().unwrap()), "{cases}");
    }
}

#[test]
fn a_large_simulated_input_gives_the_same_report_of_a_few_megabytes_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sim.jsonl");
    let out = run(&[
        "simulate",
        "--events",
        "200000",
        "--seed",
        "3",
        "--start",
        "2026-03-01T00:00:00Z",
        "-o",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = dir.path().join("big.html");
    let out =
        run(&["replay", log.to_str().unwrap(), "--no-progress", "-o", "/dev/null", "--report", html.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(summary_count(&stderr, "decoded") >= 150_000, "{stderr}");
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 3 * 1024 * 1024, "report of {size} bytes for 200,000 events");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.ends_with("</html>\n"));
    // The same input gives the same report, whatever the thread count.
    let again = dir.path().join("again.html");
    let out = run(&[
        "replay",
        log.to_str().unwrap(),
        "--no-progress",
        "-q",
        "-o",
        "/dev/null",
        "--threads",
        "1",
        "--report",
        again.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&again).unwrap() == page, "two replays of one input gave different reports");
}

/// The file the browser test saves its screenshot to, for CI to keep.
fn artifact() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts/report.png")
}

#[test]
fn a_real_browser_renders_the_demo_report_without_console_messages() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        assert!(
            std::env::var("AUTHWATCH_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "AUTHWATCH_REQUIRE_BROWSER=1 but Chromium cannot start (scripts/test.sh installs it)"
        );
        eprintln!("skipped: no chromium (set AUTHWATCH_REQUIRE_BROWSER=1 to fail instead)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("demo.html");
    let out = run(&["demo", "--users", "3000", "--report", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = artifact();
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&png);
    let url = format!("file://{}", html.display());
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .expect("run chromium");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(png.exists(), "no screenshot; chromium said:\n{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "the page logged to the console: {console:#?}");
    let (w, h, colours) = png_facts(&png);
    assert_eq!((w, h), (1280, 2000));
    assert!(colours >= 20, "a blank page has a handful of colours, this one {colours}");
}

/// Width, height and the number of distinct colours of an 8-bit RGB or RGBA PNG (as Chromium writes).
fn png_facts(path: &Path) -> (u32, u32, usize) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut w, mut h, mut channels) = (0u32, 0u32, 0usize);
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "8-bit samples");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    let stride = w as usize * channels;
    let mut prev = vec![0u8; stride];
    let mut colours = std::collections::HashSet::new();
    for row in raw.chunks(stride + 1).take(h as usize) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = line.to_vec();
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] as i32 } else { 0 };
            let b = prev[i] as i32;
            let c = if i >= channels { prev[i - channels] as i32 } else { 0 };
            let add = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            cur[i] = (cur[i] as i32 + add) as u8;
        }
        for px in cur.chunks(channels) {
            colours.insert([px[0], px[1], px[2]]);
        }
        prev = cur;
    }
    (w, h, colours.len())
}

#[test]
fn an_unwritable_report_path_ends_the_run_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no-such-dir/report.html");
    let out = run(&["replay", fixture().to_str().unwrap(), "--no-progress", "-q", "--report", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot create the report") && stderr.contains("no-such-dir"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing was replayed");
    let out = run(&["replay", fixture().to_str().unwrap(), "--decode-only", "--report", "x.html"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--decode-only"));
}
