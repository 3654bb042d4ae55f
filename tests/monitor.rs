//! The monitor daemon end to end, against moto on loopback: findings equal replay's, one notification per
//! incident update, kill -9 and restart, SNS outage, throttling, stalled requests, connection resets,
//! 5xx bursts, a full state disk, and following a rotated file (with a line over the limit).

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A burst of `n` failures for `user` from `ip`, one every `step_ms`, starting at `t0`.
fn burst(t0: i64, step_ms: i64, n: usize, user: &str, ip: &str, tag: &str) -> Vec<(i64, String)> {
    (0..n)
        .map(|i| {
            let t = t0 + i as i64 * step_ms;
            (t, cognito_line(t, user, ip, false, &format!("{tag}-{user}-{i}")))
        })
        .collect()
}

fn sorted_lines(events: &[(i64, String)]) -> Vec<String> {
    let mut e = events.to_vec();
    e.sort_by_key(|(t, _)| *t);
    e.into_iter().map(|(_, l)| l).collect()
}

/// Waits until the output holds `want` closed findings (or times out), then returns them sorted.
fn wait_closed(output: &Path, want: usize, timeout: Duration) -> Vec<Value> {
    wait_until(timeout, || closed(&read_jsonl(output)).len() >= want);
    closed(&read_jsonl(output))
}

fn assert_same_findings(monitor: &[Value], replay: &[Value], dir: &Path) {
    let ids = |v: &[Value]| v.iter().map(|f| f["incident_id"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
    assert_eq!(ids(monitor), ids(replay), "incident ids differ; daemon log:\n{}", daemon_log(dir));
    // The one thing the monitor knows and a replayed file does not: the Region of the log group the
    // export's events came from (the emulator's). Everything else is the same.
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let mut monitor = monitor.to_vec();
    for (m, r) in monitor.iter_mut().zip(replay) {
        if r["region"].is_null() && m["region"] == region.as_str() {
            m["region"] = Value::Null;
        }
    }
    assert_eq!(monitor, replay, "closed findings differ from replay's");
}

fn assert_notified_once(endpoint: &str, topic: &str, want: &[String], dir: &Path) {
    let ok = wait_until(Duration::from_secs(20), || sns_sent(endpoint, topic).len() >= want.len());
    let sent = sns_sent(endpoint, topic);
    let mut keys: Vec<String> = sent.iter().map(|s| s.key()).collect();
    keys.sort();
    assert!(ok, "only {} of {} notifications; daemon log:\n{}", sent.len(), want.len(), daemon_log(dir));
    assert_eq!(keys, want, "notifications are not exactly one per incident update");
    for s in &sent {
        assert!(s.subject.len() < 100 && s.subject.starts_with("[authwatch]"), "{}", s.subject);
        assert_eq!(s.attributes["detector"]["Value"], "failed_login_burst");
        assert!(s.attributes["severity"]["Value"].is_string());
    }
}

#[test]
fn monitor_findings_equal_replay_and_each_incident_is_notified_once() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/eq"), unique("alerts-eq"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1", "s2"], &topic));
    let t0 = now_ms() - 30_000;
    // alice: 9 failures in one stream (opens, escalates to high); bob: 6 split over two streams, the
    // second stream's part put first (late and out of order); carol: 3 failures, below the threshold.
    let alice = burst(t0, 1000, 9, "alice", "203.0.113.7", "eq");
    let bob = burst(t0 + 500, 700, 6, "bob", "198.51.100.9", "eq");
    let carol = burst(t0 + 200, 2000, 3, "carol", "192.0.2.1", "eq");
    let (bob_a, bob_b): (Vec<_>, Vec<_>) = bob.iter().cloned().partition(|(t, _)| (t / 700) % 2 == 0);
    rt.block_on(put(&logs, &group, "s2", &bob_b));
    let mut s1: Vec<_> = alice.iter().chain(carol.iter()).chain(bob_a.iter()).cloned().collect();
    s1.sort_by_key(|(t, _)| *t);
    rt.block_on(put(&logs, &group, "s1", &s1));

    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    // Port 0: the daemon picks a free port and writes it to `metrics.addr` (no race for the port).
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ]);
    let daemon = Daemon::start(dir.path(), &args);
    let metrics = metrics_endpoint(&state);

    // Events that land while the daemon runs, with event times just behind now: dave, 5 failures.
    std::thread::sleep(Duration::from_secs(2));
    let dave = burst(now_ms() - 1500, 100, 5, "dave", "203.0.113.99", "eq");
    rt.block_on(put(&logs, &group, "s2", &dave));

    let all: Vec<(i64, String)> = [alice, bob, carol, dave].concat();
    let replayed = replay(dir.path(), &sorted_lines(&all));
    let want = closed(&replayed);
    assert_eq!(want.len(), 3, "the scenario should give three incidents");
    let got = wait_closed(&output, want.len(), Duration::from_secs(60));
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    assert_eq!(http_get(&metrics, "/healthz").as_deref(), Some("ok\n"));
    let text = http_get(&metrics, "/metrics").expect("metrics");
    let n = expected_notifications(&replayed).len();
    assert!(text.contains(&format!("authwatch_notifications_sent_total {n}")), "{text}");
    assert!(text.contains(&format!("authwatch_event_to_notification_ms_count {n}")), "{text}");
    assert!(text.contains("authwatch_event_processing_ns{quantile=\"0.99\"}"), "{text}");
    assert!(text.contains("authwatch_event_processing_ns{quantile=\"1\"}"), "the max: {text}");
    // The figures, for the record (shown with --nocapture).
    for l in text.lines().filter(|l| {
        l.starts_with("authwatch_event_to_notification_ms{")
            || l.starts_with("authwatch_ingest_delay_ms{")
            || l.starts_with("authwatch_event_processing_ns{")
    }) {
        eprintln!("{l}");
    }
    // The status line comes every --status-interval: wait for one rather than for a fixed time.
    let status = wait_until(Duration::from_secs(60), || daemon_log(dir.path()).contains("authwatch monitor:"));
    daemon.terminate();
    assert!(status, "no status line:\n{}", daemon_log(dir.path()));
}

#[test]
fn kill9_at_several_points_misses_and_doubles_nothing() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/kill"), unique("alerts-kill"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend(["--log-group".into(), group.clone(), "--sns-topic-arn".into(), arn.clone()]);

    let mut all = Vec::new();
    let mut daemon = Daemon::start(dir.path(), &args);
    // Six waves, one user each, 9 failures 150 ms apart; the daemon is killed -9 and restarted during
    // waves 1, 3 and 4, at different moments of a wave.
    for wave in 0..6 {
        let user = format!("user{wave}");
        let events = burst(now_ms() - 200, 150, 9, &user, &format!("203.0.113.{}", wave + 10), "kill");
        for (i, chunk) in events.chunks(3).enumerate() {
            rt.block_on(put(&logs, &group, "s1", chunk));
            std::thread::sleep(Duration::from_millis(450));
            if (wave, i) == (1, 1) || (wave, i) == (3, 2) || (wave, i) == (4, 0) {
                daemon.kill9();
                daemon = Daemon::start(dir.path(), &args);
            }
        }
        all.extend(events);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let replayed = replay(dir.path(), &sorted_lines(&all));
    let want = closed(&replayed);
    assert_eq!(want.len(), 6);
    let got = wait_closed(&output, want.len(), Duration::from_secs(60));
    // Nothing doubled: no incident written twice.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(closed(&read_jsonl(&output)).len(), want.len(), "a finding was written twice");
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    daemon.terminate();
    let log = daemon_log(dir.path());
    let resumed = log.lines().filter(|l| l.contains("monitor starting") && l.contains("true")).count();
    assert_eq!(resumed, 3, "every restart resumes from the checkpoint:\n{log}");
}

#[test]
fn sns_outage_spools_notifications_and_delivers_them_once_in_order() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/outage"), unique("alerts-outage"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let proxy = Proxy::start(endpoint_addr(&endpoint), |_, mode, _| mode);
    proxy.mode.store(UNAVAILABLE, Ordering::Relaxed);
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--sns-endpoint-url".into(),
        proxy.url(),
    ]);
    let t0 = now_ms() - 20_000;
    let events: Vec<_> = [
        burst(t0, 300, 5, "erin", "203.0.113.1", "out"),
        burst(t0 + 4000, 300, 5, "frank", "203.0.113.2", "out"),
        burst(t0 + 8000, 300, 5, "grace", "203.0.113.3", "out"),
    ]
    .concat();
    rt.block_on(put(&logs, &group, "s1", &events));
    let daemon = Daemon::start(dir.path(), &args);
    assert!(wait_until(Duration::from_secs(30), || proxy.faults.load(Ordering::Relaxed) >= 3), "no publish attempted");
    // A restart during the outage: the spool on disk survives it.
    daemon.terminate();
    assert!(sns_sent(&endpoint, &arn).is_empty());
    let daemon = Daemon::start(dir.path(), &args);
    std::thread::sleep(Duration::from_secs(2));
    assert!(sns_sent(&endpoint, &arn).is_empty());
    proxy.mode.store(PASS, Ordering::Relaxed);

    let replayed = replay(dir.path(), &sorted_lines(&events));
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    let order: Vec<String> =
        sns_sent(&endpoint, &arn).iter().map(|s| s.finding["user"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(order, ["erin", "frank", "grace"], "notifications out of order");
    let got = wait_closed(&output, 3, Duration::from_secs(40));
    assert_same_findings(&got, &closed(&replayed), dir.path());
    daemon.terminate();
}

#[test]
fn throttling_answers_slow_the_daemon_but_lose_nothing() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/throttle"), unique("alerts-throttle"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1", "s2"], &topic));
    // Two of every three FilterLogEvents calls are throttled.
    let proxy = Proxy::start(endpoint_addr(&endpoint), |head, _, n| {
        if head.contains("FilterLogEvents") && n % 3 != 2 {
            THROTTLE
        } else {
            PASS
        }
    });
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--endpoint-url".into(),
        proxy.url(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--sns-endpoint-url".into(),
        endpoint.clone(),
    ]);
    let t0 = now_ms() - 25_000;
    let a = burst(t0, 400, 8, "heidi", "203.0.113.4", "thr");
    let b = burst(t0 + 1000, 500, 6, "ivan", "203.0.113.5", "thr");
    rt.block_on(put(&logs, &group, "s1", &a));
    rt.block_on(put(&logs, &group, "s2", &b));
    let daemon = Daemon::start(dir.path(), &args);
    let all = [a, b].concat();
    let replayed = replay(dir.path(), &sorted_lines(&all));
    let want = closed(&replayed);
    assert_eq!(want.len(), 2, "replay: {replayed:?}");
    let got = wait_closed(&output, want.len(), Duration::from_secs(90));
    assert!(
        proxy.faults.load(Ordering::Relaxed) > 0,
        "the proxy throttled nothing ({} passed); daemon log:\n{}",
        proxy.passed.load(Ordering::Relaxed),
        daemon_log(dir.path())
    );
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    daemon.terminate();
}

#[test]
fn follow_reads_a_file_that_is_appended_rotated_and_truncated() {
    let _ = emulator();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cognito.log");
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend(["--follow".into(), log.display().to_string(), "--metrics-addr".into(), "127.0.0.1:0".into()]);
    let append = |lines: &[(i64, String)]| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        for (_, l) in lines {
            writeln!(f, "{l}").unwrap();
        }
    };
    // Event times are "now" as each part is written, as in a live log.
    let judy1 = burst(now_ms() - 1000, 200, 3, "judy", "203.0.113.6", "fol1");
    append(&judy1);
    // A line over the 1 MiB limit whose head and tail, glued together, would still be a valid event.
    let event = cognito_line(now_ms() - 900, "trudy", "203.0.113.9", false, "fol-overlong");
    let overlong = format!("{},\"pad\":\"{}\"}}", &event[..event.len() - 1], "x".repeat(1_500_000));
    append(&[(0, overlong)]);
    let daemon = Daemon::start(dir.path(), &args);
    std::thread::sleep(Duration::from_millis(1500));
    let judy2 = burst(now_ms() - 500, 100, 3, "judy", "203.0.113.6", "fol2");
    append(&judy2);
    std::thread::sleep(Duration::from_millis(800));
    // Rotation: the file is renamed and a new one takes its place.
    std::fs::rename(&log, dir.path().join("cognito.log.1")).unwrap();
    let mallory = burst(now_ms() - 1000, 100, 5, "mallory", "203.0.113.7", "fol");
    append(&mallory);
    std::thread::sleep(Duration::from_millis(1500));
    // Truncation in place, then new lines.
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let oscar = burst(now_ms() - 1000, 100, 7, "oscar", "203.0.113.8", "fol");
    append(&oscar);
    let all = [judy1, judy2, mallory, oscar].concat();
    let replayed = replay(dir.path(), &sorted_lines(&all));
    let want = closed(&replayed);
    assert_eq!(want.len(), 3);
    let got = wait_closed(&output, 3, Duration::from_secs(60));
    assert_same_findings(&got, &want, dir.path());
    let text = http_get(&metrics_endpoint(&state), "/metrics")
        .unwrap_or_else(|| panic!("no answer from /metrics; daemon log:\n{}", daemon_log(dir.path())));
    assert!(text.contains("authwatch_records_total 19"), "every line read once: {text}");
    assert!(text.contains("authwatch_rejected_total 1"), "the over-long line is one rejection: {text}");
    let log_text = daemon_log(dir.path());
    assert!(
        log_text.contains("rejected record") && log_text.contains("cognito.log:4: line is"),
        "the rejection is named with its file and line in the log:
{log_text}"
    );
    // The over-long line was rejected: exit 1 on the stop, as replay.
    daemon.terminate_with_code(1);
}

/// A backlog larger than the hold buffer's cap (a big file dropped into a followed path) is not kept
/// whole in memory: past `--max-held-mb` the oldest events go to the detectors early, counted as forced,
/// and an in-order backlog still gives replay's findings.
#[test]
fn a_backlog_beyond_the_hold_cap_goes_to_the_detectors_early_and_is_counted() {
    let _ = emulator();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("backlog.log");
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    // 8,000 successful sign-ins over the last minute (about 7 MB held, against a 1 MiB cap), with a burst
    // of failures in the middle; written before the daemon starts, in time order.
    let t0 = now_ms() - 60_000;
    let mut events: Vec<(i64, String)> = (0..8000)
        .map(|i| {
            let t = t0 + i * 6;
            (t, cognito_line(t, &format!("user{i}"), &format!("198.51.100.{}", i % 200), true, &format!("bk-{i}")))
        })
        .collect();
    events.extend(burst(t0 + 20_000, 300, 6, "walter", "203.0.113.80", "bk"));
    let lines = sorted_lines(&events);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--follow".into(),
        log.display().to_string(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--max-held-mb".into(),
        "1".into(),
    ]);
    let daemon = Daemon::start(dir.path(), &args);
    let want = closed(&replay(dir.path(), &lines));
    assert_eq!(want.len(), 1);
    let got = wait_closed(&output, want.len(), Duration::from_secs(60));
    assert_same_findings(&got, &want, dir.path());
    let metrics = metrics_endpoint(&state);
    let counter = |text: &str, name: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
    };
    // The finding closes while the events after it are still waiting for the watermark: wait for the
    // daemon to have counted every event (on a busy machine that takes a while), never for a fixed time.
    let mut text = String::new();
    let counted_all = wait_until(Duration::from_secs(120), || {
        text = http_get(&metrics, "/metrics").unwrap_or_default();
        counter(&text, "authwatch_events_total ") == Some(8006)
    });
    assert!(counted_all, "the daemon never counted all 8,006 events: {text}\ndaemon log:\n{}", daemon_log(dir.path()));
    let forced =
        counter(&text, "authwatch_forced_events_total ").unwrap_or_else(|| panic!("no forced counter in {text}"));
    assert!((4000..8006).contains(&forced), "most of the backlog went early, not all: {forced}");
    daemon.terminate();
}

#[test]
fn an_alert_storm_becomes_one_digest() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/storm"), unique("alerts-storm"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let t0 = now_ms() - 20_000;
    let events: Vec<_> =
        (0..4).flat_map(|u| burst(t0 + u * 100, 400, 5, &format!("storm{u}"), "203.0.113.50", "storm")).collect();
    let mut sorted = events.clone();
    sorted.sort_by_key(|(t, _)| *t);
    rt.block_on(put(&logs, &group, "s1", &sorted));
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--max-notifications-per-minute".into(),
        "1".into(),
    ]);
    let daemon = Daemon::start(dir.path(), &args);
    let replayed = replay(dir.path(), &sorted_lines(&events));
    let opened = expected_notifications(&replayed);
    assert_eq!(opened.len(), 4);
    assert!(wait_until(Duration::from_secs(90), || sns_sent(&endpoint, &arn).len() >= 2), "no digest");
    std::thread::sleep(Duration::from_secs(1));
    let sent = sns_sent(&endpoint, &arn);
    assert_eq!(
        sent.len(),
        2,
        "one notification, then one digest: {:?}",
        sent.iter().map(|s| &s.subject).collect::<Vec<_>>()
    );
    assert!(sent[0].subject.contains("NEW"), "{}", sent[0].subject);
    assert!(sent[1].subject.contains("DIGEST: 3"), "{}", sent[1].subject);
    let first = sent[0].key();
    for key in opened.iter().filter(|k| **k != first) {
        let id = key.split(':').next().unwrap();
        assert!(sent[1].message.contains(id), "digest misses {id}");
    }
    daemon.terminate();
}

#[test]
fn a_future_dated_event_does_not_hide_events_in_other_streams() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/future"), unique("alerts-future"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["ahead", "s1"], &topic));
    // One event stamped an hour ahead (CloudWatch accepts up to 2 h), read before anything else.
    let ahead =
        vec![(now_ms() + 3_600_000, cognito_line(now_ms() + 3_600_000, "zoe", "192.0.2.77", false, "future-zoe"))];
    rt.block_on(put(&logs, &group, "ahead", &ahead));
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ]);
    let daemon = Daemon::start(dir.path(), &args);
    let metrics = metrics_endpoint(&state);
    std::thread::sleep(Duration::from_secs(3));
    // Then normal traffic in another stream, just behind now (well within --overlap 10s and within
    // --allowed-delay 2s): a read start based on the newest event seen (an hour ahead) never fetches it.
    let peggy = burst(now_ms() - 1000, 150, 6, "peggy", "203.0.113.61", "fut");
    rt.block_on(put(&logs, &group, "s1", &peggy));
    std::thread::sleep(Duration::from_millis(1500));
    let victor = burst(now_ms() - 800, 150, 5, "victor", "203.0.113.62", "fut");
    rt.block_on(put(&logs, &group, "s1", &victor));

    let normal = [peggy, victor].concat();
    let replayed = replay(dir.path(), &sorted_lines(&normal));
    let want = closed(&replayed);
    assert_eq!(want.len(), 2);
    let got = wait_closed(&output, want.len(), Duration::from_secs(60));
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    let text = http_get(&metrics, "/metrics")
        .unwrap_or_else(|| panic!("no answer from /metrics; daemon log:\n{}", daemon_log(dir.path())));
    assert!(text.contains("authwatch_records_total 12"), "every event read once: {text}");
    assert!(text.contains("authwatch_events_total 11"), "the future-dated event waits for its time: {text}");
    assert!(text.contains("authwatch_late_events_total 0"), "{text}");
    daemon.terminate();
    // The future-dated event did not move the recorded position either.
    let state_text = std::fs::read_to_string(state.join("state.json")).unwrap();
    let body: Value = serde_json::from_str(state_text.split_once('\n').unwrap().1).unwrap();
    for (name, pos) in body["positions"].as_object().unwrap() {
        assert!(pos["time_ms"].as_i64().unwrap() <= now_ms(), "{name}: position in the future: {pos}");
    }
}

#[test]
fn monitor_rejects_lateness() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["monitor", "--follow", "x.log", "--lateness", "5s", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--lateness") && err.contains("--allowed-delay"), "{err}");
}

/// Picks the fault (or PASS) for a request: (request head, proxy mode, request number).
type Fault = Box<dyn Fn(&str, u8, u64) -> u8 + Send + Sync + 'static>;

/// A daemon whose CloudWatch Logs and SNS calls each go through their own fault-injecting proxy, with
/// `--request-timeout 2s`. Two bursts (two incidents, one escalating) are put before it starts and one
/// while it runs; the closed findings must equal replay's and every notification be sent exactly once,
/// the daemon still running at the end and stopping cleanly on SIGTERM.
fn faults_lose_and_double_nothing(
    name: &str,
    logs_fault: impl Fn(&str, u8, u64) -> u8 + Send + Sync + 'static,
    sns_fault: Option<Fault>,
) -> (Proxy, Option<Proxy>) {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique(&format!("/aws/cognito/{name}")), unique(&format!("alerts-{name}")));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1", "s2"], &topic));
    let logs_proxy = Proxy::start(endpoint_addr(&endpoint), logs_fault);
    let sns_proxy = sns_fault.map(|f| Proxy::start(endpoint_addr(&endpoint), f));
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--endpoint-url".into(),
        logs_proxy.url(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--sns-endpoint-url".into(),
        sns_proxy.as_ref().map_or(endpoint.clone(), |p| p.url()),
        "--request-timeout".into(),
        "2s".into(),
    ]);
    let t0 = now_ms() - 25_000;
    let a = burst(t0, 400, 8, &format!("{name}-a"), "203.0.113.21", name);
    let b = burst(t0 + 1000, 500, 6, &format!("{name}-b"), "203.0.113.22", name);
    rt.block_on(put(&logs, &group, "s1", &a));
    rt.block_on(put(&logs, &group, "s2", &b));
    let mut daemon = Daemon::start(dir.path(), &args);
    std::thread::sleep(Duration::from_secs(3));
    let c = burst(now_ms() - 1000, 150, 6, &format!("{name}-c"), "203.0.113.23", name);
    rt.block_on(put(&logs, &group, "s1", &c));
    let all = [a, b, c].concat();
    let replayed = replay(dir.path(), &sorted_lines(&all));
    let want = closed(&replayed);
    assert_eq!(want.len(), 3, "replay: {replayed:?}");
    let got = wait_closed(&output, want.len(), Duration::from_secs(120));
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    // Nothing written twice either, and nothing sent late after the check above.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(closed(&read_jsonl(&output)).len(), want.len(), "a finding was written twice");
    assert_eq!(
        sns_sent(&endpoint, &arn).len(),
        expected_notifications(&replayed).len(),
        "a notification was sent twice"
    );
    assert!(daemon.child.try_wait().unwrap().is_none(), "the daemon stopped; log:\n{}", daemon_log(dir.path()));
    daemon.terminate();
    let log = daemon_log(dir.path());
    assert!(!log.contains("panicked"), "{log}");
    (logs_proxy, sns_proxy)
}

#[test]
fn stalled_requests_time_out_and_are_retried() {
    // One FilterLogEvents call in three and every other publish are read and never answered: without SDK
    // timeouts the pass (so the watermark) or the publisher waits forever, and SIGTERM hangs on it.
    let (logs, sns) = faults_lose_and_double_nothing(
        "stall",
        |head, _, n| if head.contains("FilterLogEvents") && n % 3 == 1 { STALL } else { PASS },
        Some(Box::new(|_, _, n| if n % 2 == 0 { STALL } else { PASS })),
    );
    assert!(logs.faults.load(Ordering::Relaxed) > 0, "no FilterLogEvents call stalled");
    assert!(sns.unwrap().faults.load(Ordering::Relaxed) > 0, "no publish stalled");
}

#[test]
fn connection_resets_lose_and_double_nothing() {
    // CloudWatch Logs: one call in three reset before an answer, one in three reset halfway through the
    // emulator's answer. SNS: every other publish reset before it reaches the emulator (a reset after SNS
    // accepted a publish is the one case that sends it twice on a standard topic; see docs/reliability.md).
    let (logs, sns) = faults_lose_and_double_nothing(
        "reset",
        |head, _, n| match (head.contains("FilterLogEvents"), n % 3) {
            (true, 0) => RESET,
            (true, 1) => RESET_MID,
            _ => PASS,
        },
        Some(Box::new(|_, _, n| if n % 2 == 0 { RESET } else { PASS })),
    );
    assert!(logs.faults.load(Ordering::Relaxed) >= 2, "too few resets on FilterLogEvents");
    assert!(sns.unwrap().faults.load(Ordering::Relaxed) > 0, "no publish reset");
}

#[test]
fn bursts_of_5xx_from_filter_log_events_lose_and_double_nothing() {
    // Runs of six FilterLogEvents answers of HTTP 500 / 503 with AWS JSON error bodies, every other six
    // calls: longer than the SDK's own three attempts, so the source's back-off takes over.
    let (logs, _) = faults_lose_and_double_nothing(
        "5xx",
        |head, _, n| if head.contains("FilterLogEvents") && (n / 6) % 2 == 1 { SERVER_ERROR } else { PASS },
        None,
    );
    assert!(logs.faults.load(Ordering::Relaxed) >= 6, "no burst of 5xx");
}

/// A tmpfs mounted over a directory for the test's lifetime (lazily unmounted on drop).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` with one file until it refuses more.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // A tmpfs may accept the last partial write: keep going byte-wise until it refuses.
    while f.write_all(&[0u8]).is_ok() {}
}

/// Fills the state directory's tmpfs so that the daemon's next checkpoint cannot be written, whenever it
/// comes. Each save frees the checkpoint before last (`state.prev.json` is replaced), so on a full disk a
/// checkpoint that does not grow past its pages can still be written in their place: both current files
/// are kept linked (as when other writers take whatever is freed), so a save frees nothing. The daemon
/// saves on its own (every 5 s while the watermark moves): if two saves slipped in between the links and
/// the end of the fill, a current file is not held (the next save would free it) and it is done again.
fn fill_state_disk(state: &Path) {
    use std::os::unix::fs::MetadataExt;
    let ino = |name: &str| std::fs::metadata(state.join(name)).map(|m| m.ino()).ok();
    for _ in 0..5 {
        for f in ["filler", "held-state", "held-prev"] {
            let _ = std::fs::remove_file(state.join(f));
        }
        std::fs::hard_link(state.join("state.json"), state.join("held-state")).unwrap();
        std::fs::hard_link(state.join("state.prev.json"), state.join("held-prev")).unwrap();
        fill(&state.join("filler"));
        // Checked after the fill: a save from now on finds both current files held and no free page.
        let held = [ino("held-state"), ino("held-prev")];
        if held.contains(&ino("state.json")) && held.contains(&ino("state.prev.json")) {
            return;
        }
    }
    panic!("the daemon's checkpoints kept replacing the held ones while the disk was filled");
}

/// The sequence number in the state directory's `delivered` mark, once written.
fn delivered_mark(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state.join("delivered")).ok()?;
    text.split_once('\n')?.1.trim().parse().ok()
}

/// The body of the checkpoint in `state.json`.
fn checkpoint(state: &Path) -> Value {
    let text = std::fs::read_to_string(state.join("state.json")).unwrap();
    serde_json::from_str(text.split_once('\n').unwrap().1).unwrap()
}

/// Waits until the output holds `want` closed findings, failing at once (with the log) if the daemon exits.
fn wait_closed_running(daemon: &mut Daemon, output: &Path, want: usize, timeout: Duration, dir: &Path) -> Vec<Value> {
    let mut exited = None;
    wait_until(timeout, || {
        exited = daemon.child.try_wait().unwrap();
        exited.is_some() || closed(&read_jsonl(output)).len() >= want
    });
    assert!(exited.is_none(), "the daemon exited ({}); log:\n{}", exited.unwrap(), daemon_log(dir));
    closed(&read_jsonl(output))
}

#[test]
fn a_full_state_disk_stops_the_daemon_with_a_clear_reason_and_a_restart_resumes() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A 1 MiB tmpfs as the state directory (needs root, as in the development container and CI).
    let Some(_tmpfs) = Tmpfs::mount(&state, "1m") else {
        eprintln!("NOT RUN: cannot mount a tmpfs (not root?); the full-disk test needs one");
        return;
    };
    let (group, topic) = (unique("/aws/cognito/disk"), unique("alerts-disk"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend(["--log-group".into(), group.clone(), "--sns-topic-arn".into(), arn.clone()]);
    let mut daemon = Daemon::start(dir.path(), &args);
    let a = burst(now_ms() - 1000, 150, 6, "quinn", "203.0.113.31", "disk");
    rt.block_on(put(&logs, &group, "s1", &a));
    let first = replay(dir.path(), &sorted_lines(&a));
    let got = wait_closed_running(&mut daemon, &output, 1, Duration::from_secs(60), dir.path());
    assert_eq!(got.len(), 1, "log:\n{}", daemon_log(dir.path()));
    assert_notified_once(&endpoint, &arn, &expected_notifications(&first), dir.path());
    // The publisher marks the notification delivered just after SNS accepted it: on disk before the fill.
    assert!(
        wait_until(Duration::from_secs(20), || delivered_mark(&state) == Some(1)),
        "no delivered mark; log:\n{}",
        daemon_log(dir.path())
    );

    // The disk fills up; then a second attack arrives.
    fill_state_disk(&state);
    let b = burst(now_ms() - 1000, 150, 9, "rupert", "203.0.113.32", "disk");
    rt.block_on(put(&logs, &group, "s1", &b));
    // The next checkpoint (at once for a finding, else within 5 s as the watermark moves) fails.
    let exited = wait_until(Duration::from_secs(30), || daemon.child.try_wait().unwrap().is_some());
    let log = daemon_log(dir.path());
    assert!(exited, "the daemon kept running on a full state disk; log:\n{log}");
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "a full disk is a fatal error, not a clean stop; log:\n{log}");
    let reason =
        format!("cannot save the checkpoint: {}: No space left on device", state.join("state.json.tmp").display());
    assert!(log.contains(&reason), "the reason names the checkpoint in the state directory and the error:\n{log}");
    assert!(!state.join("state.json.tmp").exists(), "a partial temp file is left on the full disk");
    // What the failed save spooled was never published (notifications become visible once saved).
    assert_eq!(sns_sent(&endpoint, &arn).len(), expected_notifications(&first).len(), "log:\n{log}");
    drop(daemon);

    // Space again: the restart resumes from the last good checkpoint, nothing lost or doubled.
    for f in ["filler", "held-state", "held-prev"] {
        std::fs::remove_file(state.join(f)).unwrap();
    }
    let mut daemon = Daemon::start(dir.path(), &args);
    let all = [a, b].concat();
    let replayed = replay(dir.path(), &sorted_lines(&all));
    let want = closed(&replayed);
    assert_eq!(want.len(), 2);
    let got = wait_closed_running(&mut daemon, &output, want.len(), Duration::from_secs(60), dir.path());
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    // Stopped cleanly, the daemon has handled everything it read and sent or kept what it notified: the
    // counts are final, and nothing is left to be sent later.
    daemon.terminate();
    let log = daemon_log(dir.path());
    assert_eq!(closed(&read_jsonl(&output)).len(), 2, "a finding was written twice:\n{log}");
    assert_eq!(
        sns_sent(&endpoint, &arn).len(),
        expected_notifications(&replayed).len(),
        "a notification was sent twice:\n{log}"
    );
    assert_eq!(checkpoint(&state)["spool"], serde_json::json!([]), "notifications left to send:\n{log}");
    assert_eq!(log.lines().filter(|l| l.contains("monitor starting") && l.contains("true")).count(), 1, "{log}");
}

/// A full disk under `--output`: the daemon stops with a reason naming the findings (it cannot record
/// what it found), and once there is space a restart writes the finding that was not written, once.
#[test]
fn a_full_output_disk_stops_the_daemon_with_a_clear_reason_and_a_restart_writes_each_finding_once() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&out_dir, "1m") else {
        eprintln!("NOT RUN: cannot mount a tmpfs (not root?); the full-disk test needs one");
        return;
    };
    let (group, topic) = (unique("/aws/cognito/outdisk"), unique("alerts-outdisk"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let state = dir.path().join("state");
    let output = out_dir.join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend(["--log-group".into(), group.clone(), "--sns-topic-arn".into(), arn.clone()]);
    let mut daemon = Daemon::start(dir.path(), &args);
    // The output's disk fills up before anything is found (an empty file holds no page of its own, so
    // the first finding has nowhere to go); then an attack arrives and closes.
    assert!(
        wait_until(Duration::from_secs(10), || output.exists()),
        "no output file; log:\n{}",
        daemon_log(dir.path())
    );
    fill(&out_dir.join("filler"));
    let a = burst(now_ms() - 1000, 150, 6, "sybil", "203.0.113.41", "outdisk");
    rt.block_on(put(&logs, &group, "s1", &a));
    let exited = wait_until(Duration::from_secs(60), || daemon.child.try_wait().unwrap().is_some());
    let log = daemon_log(dir.path());
    assert!(exited, "the daemon kept running with a finding it could not write; log:\n{log}");
    assert_eq!(daemon.child.wait().unwrap().code(), Some(2), "a full disk is a fatal error; log:\n{log}");
    let reason = format!("cannot write findings to {}: No space left on device", output.display());
    assert!(log.contains(&reason), "the reason names the output file and the error:\n{log}");
    drop(daemon);

    // Space again: the restart writes the finding once, and nothing is notified twice.
    std::fs::remove_file(out_dir.join("filler")).unwrap();
    let mut daemon = Daemon::start(dir.path(), &args);
    let replayed = replay(dir.path(), &sorted_lines(&a));
    let want = closed(&replayed);
    assert_eq!(want.len(), 1);
    let got = wait_closed_running(&mut daemon, &output, want.len(), Duration::from_secs(60), dir.path());
    assert_same_findings(&got, &want, dir.path());
    daemon.terminate();
    let log = daemon_log(dir.path());
    assert_eq!(closed(&read_jsonl(&output)).len(), 1, "the finding was written twice:\n{log}");
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
}

#[test]
fn a_restart_just_after_an_incident_closed_does_not_raise_it_again() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/reclose"), unique("alerts-reclose"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let mut args = base_args(dir.path(), &state, &output);
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ]);
    let mut daemon = Daemon::start(dir.path(), &args);
    // 9 failures over 1.2 s: the incident opens at the 5th, escalates at the 8th, and closes once the
    // watermark is past the last plus the cooldown (10 s). A restart from that checkpoint re-reads from its
    // watermark less the lookback (10 s, the window) less 1 s: inside the burst, after its first events.
    // The rest still reach the threshold, at a later event: the same attack under another incident id,
    // notified and written again, unless the re-read goes back to the incident's start.
    let a = burst(now_ms() - 1000, 150, 9, "sybil", "203.0.113.41", "reclose");
    rt.block_on(put(&logs, &group, "s1", &a));
    let replayed = replay(dir.path(), &sorted_lines(&a));
    let want = closed(&replayed);
    assert_eq!(want.len(), 1);
    let got = wait_closed_running(&mut daemon, &output, 1, Duration::from_secs(60), dir.path());
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    // Killed as soon as the checkpoint that records the closed finding is on disk (saved at once).
    let closed_key = format!("{}:closed", want[0]["incident_id"].as_str().unwrap());
    assert!(
        wait_until(Duration::from_secs(20), || checkpoint(&state)["ledger"].get(&closed_key).is_some()),
        "the closed finding was not checkpointed; log:\n{}",
        daemon_log(dir.path())
    );
    daemon.kill9();

    std::fs::remove_file(state.join("metrics.addr")).unwrap();
    let daemon = Daemon::start(dir.path(), &args);
    let metrics = metrics_endpoint(&state);
    // Once detection has run past the last event plus the cooldown, an incident re-created from the
    // re-read has opened and closed.
    let past = a.last().unwrap().0 + 10_001;
    let watermark = || {
        let text = http_get(&metrics, "/metrics").unwrap_or_default();
        let line = text.lines().find_map(|l| l.strip_prefix("authwatch_watermark_ms ")).map(str::to_string);
        line.and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0)
    };
    assert!(wait_until(Duration::from_secs(60), || watermark() >= past), "log:\n{}", daemon_log(dir.path()));
    daemon.terminate();
    let log = daemon_log(dir.path());
    let got = closed(&read_jsonl(&output));
    assert_same_findings(&got, &want, dir.path());
    assert_notified_once(&endpoint, &arn, &expected_notifications(&replayed), dir.path());
    assert_eq!(checkpoint(&state)["spool"], serde_json::json!([]), "notifications left to send:\n{log}");
}

/// The pool-wide rules' learned baseline survives a restart: the daemon saves it in its state directory
/// at shutdown (`baseline.json`) and the next start begins from it instead of a new warm-up.
#[test]
fn the_pool_rules_baseline_is_saved_in_the_state_directory_and_used_after_a_restart() {
    let _ = emulator();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cognito.log");
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let filters = dir.path().join("pool-filters");
    std::fs::create_dir_all(&filters).unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("filters/pool_failure_anomaly.toml");
    std::fs::copy(spec, filters.join("pool_failure_anomaly.toml")).unwrap();
    // Five hours of a small pool, ending now: more than the 4 h warm-up.
    let start = authwatch::time::Timestamp(now_ms() - 5 * 3_600_000 - 60_000).to_string();
    let sim = std::process::Command::new(bin())
        .args(["simulate", "--users", "300", "--duration", "5h", "--attacks", "none", "--start", &start])
        .arg("-o")
        .arg(&log)
        .output()
        .unwrap();
    assert!(sim.status.success(), "{}", String::from_utf8_lossy(&sim.stderr));
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    let args: Vec<String> = [
        "--state-dir",
        &state.display().to_string(),
        "--output",
        &output.display().to_string(),
        "--filters",
        &filters.display().to_string(),
        "--follow",
        &log.display().to_string(),
        "--backfill",
        "6h",
        "--allowed-delay",
        "2s",
        "--poll-interval",
        "200ms",
        "--metrics-addr",
        "127.0.0.1:0",
        "--status-interval",
        "5s",
        "--drain",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let caught_up = |want: usize| {
        wait_until(Duration::from_secs(120), || {
            http_get(&metrics_endpoint(&state), "/metrics")
                .is_some_and(|m| m.contains(&format!("authwatch_records_total {want}\n")))
        })
    };

    let daemon = Daemon::start(dir.path(), &args);
    assert!(caught_up(lines), "the daemon did not read all {lines} lines:\n{}", daemon_log(dir.path()));
    daemon.terminate();
    let saved: Value = serde_json::from_slice(
        &std::fs::read(state.join("baseline.json"))
            .unwrap_or_else(|e| panic!("no baseline.json after a stop ({e}):\n{}", daemon_log(dir.path()))),
    )
    .unwrap();
    let pools = &saved["rules"]["pool_failure_anomaly"]["pools"];
    let series = pools.as_object().and_then(|p| p.values().next()).unwrap_or_else(|| panic!("{saved}"));
    assert!(series["values"].as_array().is_some_and(|v| v.len() >= 24), "hours of buckets learned: {series}");

    let _ = std::fs::remove_file(state.join("metrics.addr"));
    let daemon = Daemon::start(dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || daemon_log(dir.path())
            .contains("pool-wide rules start from the baseline saved before the restart")),
        "the restart did not use the saved baseline:\n{}",
        daemon_log(dir.path())
    );
    daemon.terminate();
}

/// Cases in the monitor (issue 14): the cases it writes equal replay's on the same events, and SNS gets
/// exactly one notification per case opening and per escalation, none twice across kill -9 and restarts.
#[test]
fn monitor_cases_equal_replay_and_each_case_update_is_notified_once_across_kill9() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let (group, topic) = (unique("/aws/cognito/cases"), unique("alerts-cases"));
    let rt = rt();
    let (logs, arn) = rt.block_on(setup_aws(&group, &["s1"], &topic));
    let state = dir.path().join("state");
    let output = dir.path().join("findings.jsonl");
    let cases_out = dir.path().join("cases.jsonl");
    let mut args: Vec<String> =
        base_args(dir.path(), &state, &output).into_iter().filter(|a| a != "--no-cases").collect();
    args.extend([
        "--log-group".into(),
        group.clone(),
        "--sns-topic-arn".into(),
        arn.clone(),
        "--cases".into(),
        cases_out.display().to_string(),
    ]);
    let mut daemon = Daemon::start(dir.path(), &args);
    // One attacker address works through three accounts in turn (one case that grows: each account's
    // burst joins it by the address, and the first burst's escalation raises it); another address tries
    // one account (a second case). The daemon is killed -9 and restarted twice mid-attack.
    let mut all = Vec::new();
    for (wave, (user, ip)) in
        [("ana", "203.0.113.50"), ("bo", "203.0.113.50"), ("zed", "198.51.100.77"), ("cy", "203.0.113.50")]
            .into_iter()
            .enumerate()
    {
        let events = burst(now_ms() - 200, 150, 9, user, ip, "cases");
        for (i, chunk) in events.chunks(3).enumerate() {
            rt.block_on(put(&logs, &group, "s1", chunk));
            std::thread::sleep(Duration::from_millis(450));
            if (wave, i) == (1, 1) || (wave, i) == (3, 0) {
                daemon.kill9();
                daemon = Daemon::start(dir.path(), &args);
            }
        }
        all.extend(events);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (replayed, replayed_cases) = replay_cases(dir.path(), &sorted_lines(&all));
    let want_closed: Vec<Value> = replayed_cases.iter().filter(|c| c["status"] == "closed").cloned().collect();
    assert_eq!(want_closed.len(), 2, "the scenario should give two cases: {replayed_cases:#?}");
    assert_eq!(closed(&replayed).len(), 4);
    // The findings carry their case ids: the same as replay's means the same cases.
    let got = wait_closed(&output, 4, Duration::from_secs(60));
    assert_same_findings(&got, &closed(&replayed), dir.path());
    let mut want_keys: Vec<String> =
        replayed_cases.iter().filter(|c| c["status"] == "open" || c["status"] == "escalated").map(case_key).collect();
    want_keys.sort();
    let ok = wait_until(Duration::from_secs(30), || sns_sent(&endpoint, &arn).len() >= want_keys.len());
    let sent = sns_sent(&endpoint, &arn);
    let mut keys: Vec<String> = sent.iter().map(|s| s.key()).collect();
    keys.sort();
    assert!(ok, "only {} of {} notifications; daemon log:\n{}", sent.len(), want_keys.len(), daemon_log(dir.path()));
    assert_eq!(keys, want_keys, "not exactly one notification per case opening and escalation");
    for s in &sent {
        assert_eq!(s.attributes["detector"]["Value"], "case");
        assert_eq!(s.attributes["case_id"]["Value"], s.finding["case_id"]);
        assert!(s.subject.starts_with("[authwatch] ") && s.subject.contains("CASE"), "{}", s.subject);
    }
    daemon.terminate();
    // Cases close after an hour of quiet (event time), which the test does not wait for, and a stop
    // keeps them open for the next start; any case record the daemon did write is one replay wrote.
    let monitor_cases: Vec<Value> = read_jsonl(&cases_out);
    for c in &monitor_cases {
        assert!(want_closed.contains(c) || replayed_cases.contains(c), "a case record replay did not write: {c:#}");
    }
}
