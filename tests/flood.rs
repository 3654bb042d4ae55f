//! Floods: credential stuffing at scale, every event from a new user and a new address, with the built-in
//! rules capped at `max_keys = 1000`. State must stay under the cap, saturation must be reported, and the
//! real attackers inside the flood (one stuffing address, one account under a password burst) must still
//! be found. The tens-of-millions run is `scripts/flood.sh` (release build); see docs/reliability.md.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};

use authwatch::detect::{Engine, EngineSettings, MAX_REORDER_EVENTS};
use authwatch::event::{EventKind, Origin, Outcome, SignInEvent};
use authwatch::finding::{Finding, Status};
use authwatch::spec::{parse_set, SpecSet};
use authwatch::time::Timestamp;

const CAP: usize = 1000;
/// 2024-07-17T17:25:55Z.
const T0: i64 = 1_721_237_155_000;
const STUFFER: &str = "203.0.113.66";
const VICTIM: &str = "victim";
const VICTIM_ATTACKER: &str = "198.51.100.7";

/// The built-in specs with `max_keys = CAP` added, as `(file name, text)`.
fn capped_specs() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir("filters")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            // Top-level keys must come before the first table: put it right after `id`.
            let capped: Vec<String> = text
                .lines()
                .flat_map(|l| {
                    let extra = l.starts_with("id = ").then(|| format!("max_keys = {CAP}"));
                    std::iter::once(l.to_owned()).chain(extra)
                })
                .collect();
            let capped = capped.join("\n");
            (p.file_name().unwrap().to_string_lossy().into_owned(), capped)
        })
        .collect();
    files.sort();
    files
}

fn capped_set() -> SpecSet {
    let files = capped_specs();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let set = parse_set(&refs).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.specs.iter().all(|s| s.max_keys == CAP));
    set
}

/// A small deterministic generator (SplitMix64): the flood is the same on every run.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One flood event: `(time, user, ip, outcome)`.
type Row = (i64, String, IpAddr, Outcome);

/// `n` failed sign-ins, 2,000 a second with whole-second times (as CloudTrail writes them, so thousands of
/// keys share a last-seen time). Every 100th is the stuffer on a new user; every 200th a guess at `victim`.
fn flood(n: u64) -> impl Iterator<Item = Row> {
    let mut mix = Mix(7);
    (0..n).map(move |i| {
        let time = T0 + (i / 2000) as i64 * 1000;
        let r = mix.next();
        if i % 100 == 50 {
            (time, format!("stuffed{i}"), STUFFER.parse().unwrap(), Outcome::Failure)
        } else if i % 200 == 199 {
            (time, VICTIM.to_owned(), VICTIM_ATTACKER.parse().unwrap(), Outcome::Failure)
        } else {
            // A fresh user and a fresh public-looking address for every event.
            let ip = Ipv4Addr::from((r as u32 & 0x00ff_ffff) | 0x2d00_0000);
            (time, format!("u{i}-{:x}", r >> 40), IpAddr::V4(ip), Outcome::Failure)
        }
    })
}

fn event(row: Row) -> SignInEvent {
    let (time, user, ip, outcome) = row;
    let mut ev = SignInEvent::new(Timestamp(time), EventKind::SignIn, outcome, Origin::new("flood".into(), 1));
    ev.event_name = "SignIn".into();
    ev.user_name = Some(user.into());
    ev.ip = Some(ip);
    ev
}

fn found(findings: &[Finding], detector: &str, pick: impl Fn(&Finding) -> bool) -> bool {
    findings.iter().any(|f| f.detector == detector && pick(f))
}

#[test]
fn a_flood_of_new_keys_stays_under_the_cap_and_the_attackers_are_still_found() {
    let set = capped_set();
    let mut engine = Engine::new(&set, EngineSettings::default());
    let mut out = Vec::new();
    let mut closed = Vec::new();
    let mut peak_tracked = 0;
    for (i, row) in flood(200_000).enumerate() {
        engine.push(event(row), &mut out);
        closed.extend(out.drain(..).filter(|f| f.status == Status::Closed));
        if i % 5000 == 0 {
            assert!(engine.buffered() <= MAX_REORDER_EVENTS, "reorder buffer holds {}", engine.buffered());
            for d in engine.detector_stats() {
                // account_takeover keeps one map per side (users and addresses), each capped.
                let cap = if d.detector == "account_takeover" { 2 * CAP } else { CAP };
                assert!(d.tracked_keys <= cap, "{} tracks {} keys at event {i}", d.rule, d.tracked_keys);
                peak_tracked = peak_tracked.max(d.tracked_keys);
            }
        }
    }
    engine.finish(&mut out);
    closed.extend(out.drain(..).filter(|f| f.status == Status::Closed));
    let stats = engine.detector_stats();
    let evicted = |rule: &str| stats.iter().find(|d| d.rule == rule).map_or(0, |d| d.evicted_keys);
    for rule in ["failed_login_burst_ip", "failed_login_burst_user", "credential_stuffing", "account_takeover"] {
        assert!(evicted(rule) > 100_000, "{rule} evicted only {}: saturation not reported", evicted(rule));
    }
    assert!(peak_tracked >= CAP * 9 / 10, "the cap was never reached ({peak_tracked})");
    // 2,000 events a second for the 60 s lateness is 120,000 events: the reorder buffer's cap is reached
    // and the early releases are counted.
    assert!(engine.stats().forced_releases > 0, "{:?}", engine.stats());

    assert!(found(&closed, "credential_stuffing", |f| f.ip.as_deref() == Some(STUFFER)), "stuffer missed: {closed:#?}");
    assert!(
        found(&closed, "failed_login_burst", |f| f.rule == "failed_login_burst_ip" && f.ip.as_deref() == Some(STUFFER))
    );
    assert!(found(&closed, "failed_login_burst", |f| f.rule == "failed_login_burst_user"
        && f.user.as_deref() == Some(VICTIM)));
    // Nothing else: every flood key made one attempt.
    let strays: Vec<&Finding> = closed
        .iter()
        .filter(|f| {
            ![Some(STUFFER), Some(VICTIM_ATTACKER)].contains(&f.ip.as_deref()) && f.user.as_deref() != Some(VICTIM)
        })
        .collect();
    assert!(strays.is_empty(), "findings about flood keys: {strays:#?}");
}

fn cognito_line(row: &Row) -> String {
    let (time, user, ip, _) = row;
    format!(
        r#"{{"eventTimestamp":"{time}","eventSource":"USER_ACTIVITY","message":{{"eventType":"SignIn","userName":"{user}","eventResponse":"Fail","ipAddress":"{ip}"}}}}"#
    )
}

fn write_flood(path: &Path, n: u64) {
    let mut w = std::io::BufWriter::new(fs::File::create(path).unwrap());
    for row in flood(n) {
        writeln!(w, "{}", cognito_line(&row)).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn the_binary_reports_saturation_and_still_finds_the_stuffer() {
    let dir = tempfile::tempdir().unwrap();
    let filters = dir.path().join("filters");
    fs::create_dir(&filters).unwrap();
    for (name, text) in capped_specs() {
        fs::write(filters.join(name), text).unwrap();
    }
    let input = dir.path().join("flood.jsonl");
    write_flood(&input, 60_000);
    let out = Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(["replay", "--no-progress", "--filters"])
        .arg(&filters)
        .arg(&input)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for rule in ["failed_login_burst_ip", "credential_stuffing"] {
        let line = stderr
            .lines()
            .find(|l| l.contains("SATURATED") && l.contains(&format!("rule {rule} ")))
            .unwrap_or_else(|| panic!("no SATURATED line for {rule}:\n{stderr}"));
        let dropped: u64 = line.split("dropped ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        assert!(dropped > 30_000, "{line}");
    }
    let stuffing = r#""detector":"credential_stuffing""#;
    assert!(stdout.lines().any(|l| l.contains(stuffing) && l.contains(&format!(r#""ip":"{STUFFER}""#))), "{stdout}");
}
