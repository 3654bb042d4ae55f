//! Shared helpers for the monitor tests: the emulator (moto on loopback), event lines, the daemon as a
//! child process, replay of the same events, SNS notifications as the emulator recorded them, and a
//! fault-injecting loopback proxy.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The emulator's endpoint: AWS_ENDPOINT_URL (scripts/test.sh starts moto), else a moto_server started
/// here on a free loopback port. When neither works and AUTHWATCH_REQUIRE_EMULATOR=1 the test fails;
/// otherwise too, since these tests are the only check of the monitor (never skipped silently).
pub fn emulator() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            std::env::set_var("AWS_ACCESS_KEY_ID", std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("testing".into()));
            std::env::set_var(
                "AWS_SECRET_ACCESS_KEY",
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("testing".into()),
            );
            std::env::set_var("AWS_REGION", std::env::var("AWS_REGION").unwrap_or("us-east-1".into()));
            if let Ok(e) = std::env::var("AWS_ENDPOINT_URL") {
                return e;
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let endpoint = format!("http://127.0.0.1:{port}");
            match child {
                Ok(c) => {
                    // Leaked on purpose: the emulator serves every test of this binary.
                    std::mem::forget(c);
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while Instant::now() < deadline {
                        if http_get(&endpoint, "/moto-api/").is_some() {
                            std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
                            return endpoint;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    panic!("moto_server did not start on {endpoint}");
                }
                Err(e) => panic!(
                    "no emulator: AWS_ENDPOINT_URL is unset and moto_server cannot start ({e}); run scripts/test.sh \
                     or `pip install \"moto[server]==5.2.5\"` (AUTHWATCH_REQUIRE_EMULATOR={})",
                    std::env::var("AUTHWATCH_REQUIRE_EMULATOR").unwrap_or_default()
                ),
            }
        })
        .clone()
}

pub fn endpoint_addr(endpoint: &str) -> SocketAddr {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    hostport.parse().unwrap_or_else(|_| panic!("emulator endpoint must be http://IP:PORT, not {endpoint}"))
}

/// Plain HTTP GET on loopback; the body, or None when unreachable.
/// GET `path`, retrying for up to 20 s: a loaded CI machine may be slow to accept.
pub fn http_get(endpoint: &str, path: &str) -> Option<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = http_get_once(endpoint, path) {
            return Some(body);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The metrics endpoint a daemon started with `--metrics-addr 127.0.0.1:0` bound (it writes
/// `metrics.addr` in its state directory), waiting up to 60 s for it.
pub fn metrics_endpoint(state_dir: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(state_dir.join("metrics.addr")) {
            if text.ends_with('\n') {
                return format!("http://{}", text.trim());
            }
        }
        assert!(std::time::Instant::now() < deadline, "the daemon never wrote metrics.addr");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get_once(endpoint: &str, path: &str) -> Option<String> {
    let addr = endpoint_addr(endpoint);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    // A 2xx only: moto answers its data endpoint with a 500 page now and then while a request is changing
    // the data it walks ("dictionary changed size during iteration"); that is retried, not parsed.
    let status = head.split_whitespace().nth(1)?;
    (head.starts_with("HTTP/1.") && status.starts_with('2')).then(|| body.to_string())
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000;
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One Cognito user-activity log line.
pub fn cognito_line(ts: i64, user: &str, ip: &str, pass: bool, id: &str) -> String {
    serde_json::json!({
        "eventTimestamp": ts.to_string(), "eventSource": "USER_ACTIVITY", "logLevel": "INFO",
        "logSourceId": {"userPoolId": "us-east-1_TEST"},
        "message": {"eventId": id, "eventType": "SignIn", "userName": user, "userSub": format!("sub-{user}"),
            "eventResponse": if pass { "Pass" } else { "Fail" }, "ipAddress": ip}
    })
    .to_string()
}

/// Short-window rules so incidents open and close within seconds: ≥ 5 failures for a user in 10 s,
/// escalating to high at 8; cooldown 10 s.
///
/// Called again (by `replay`) while a daemon started with the same directory may be reading the file, so
/// it is written once, and atomically (a temporary file renamed into place): `std::fs::write` truncates
/// first, and a daemon that read the empty file in that moment exited at start ("invalid detector specs:
/// missing field `id`"), which the tests then saw only as findings that never came.
pub fn filters_dir(dir: &Path) -> PathBuf {
    let d = dir.join("filters");
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("failed_login_burst_user.toml");
    let text = r#"id = "failed_login_burst_user"
detector = "failed_login_burst"
description = "Test: at least 5 failed sign-ins for one user within 10 seconds."
key = "user"
window = "10s"
threshold = 5
severity = "medium"
escalation = [{ count = 8, severity = "high" }]
cooldown = "10s"

[match]
kinds = ["sign_in"]
outcomes = ["failure"]

[params]
failure_share_above = 0.0
"#;
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return d;
    }
    let tmp = d.join(unique(".rules") + ".tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    d
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authwatch")
}

/// Replays `lines` with the test rules; every finding (with `--updates`), as JSON values.
pub fn replay(dir: &Path, lines: &[String]) -> Vec<Value> {
    let input = dir.join(unique("replay-input") + ".jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.join(unique("replay-out") + ".jsonl");
    let status = Command::new(bin())
        .args(["replay", "--quiet", "--updates", "--lateness", "1s", "--no-cases", "--filters"])
        .arg(filters_dir(dir))
        .arg("-o")
        .arg(&out)
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success(), "replay failed");
    read_jsonl(&out)
}

/// [`replay`] with cases on: every finding and every case update (`--cases FILE --updates`).
pub fn replay_cases(dir: &Path, lines: &[String]) -> (Vec<Value>, Vec<Value>) {
    let input = dir.join(unique("replay-input") + ".jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.join(unique("replay-out") + ".jsonl");
    let cases = dir.join(unique("replay-cases") + ".jsonl");
    let status = Command::new(bin())
        .args(["replay", "--quiet", "--updates", "--lateness", "1s", "--filters"])
        .arg(filters_dir(dir))
        .arg("-o")
        .arg(&out)
        .arg("--cases")
        .arg(&cases)
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success(), "replay failed");
    (read_jsonl(&out), read_jsonl(&cases))
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn closed(findings: &[Value]) -> Vec<Value> {
    let mut v: Vec<Value> = findings.iter().filter(|f| f["status"] == "closed").cloned().collect();
    v.sort_by(|a, b| a["incident_id"].as_str().cmp(&b["incident_id"].as_str()));
    v
}

/// `incident_id:open` / `incident_id:escalated:severity` for every update replay reports.
pub fn expected_notifications(findings: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = findings
        .iter()
        .filter_map(|f| match f["status"].as_str() {
            Some("open") => Some(format!("{}:open", f["incident_id"].as_str().unwrap())),
            Some("escalated") => {
                Some(format!("{}:escalated:{}", f["incident_id"].as_str().unwrap(), f["severity"].as_str().unwrap()))
            }
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// `case:ID:STATUS:ESCALATIONS` of a case update.
pub fn case_key(c: &Value) -> String {
    format!("case:{}:{}:{}", c["case_id"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or(""), c["escalations"])
}

/// A notification as the emulator recorded it: (subject, the finding JSON at its end, attributes).
#[derive(Debug, Clone)]
pub struct Sent {
    pub subject: String,
    pub message: String,
    pub finding: Value,
    pub attributes: Value,
}

impl Sent {
    pub fn key(&self) -> String {
        let f = &self.finding;
        if f["kind"] == "case" {
            return case_key(f);
        }
        match f["status"].as_str() {
            Some("open") => format!("{}:open", f["incident_id"].as_str().unwrap_or("")),
            _ => format!(
                "{}:escalated:{}",
                f["incident_id"].as_str().unwrap_or(""),
                f["severity"].as_str().unwrap_or("")
            ),
        }
    }
}

/// Every publish to `topic_arn`, in order, from `GET /moto-api/data.json`.
pub fn sns_sent(endpoint: &str, topic_arn: &str) -> Vec<Sent> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let data: Value = loop {
        let body = http_get(endpoint, "/moto-api/data.json").expect("emulator data");
        match serde_json::from_str(&body) {
            Ok(data) => break data,
            // Cut short under load: asked again.
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            Err(e) => panic!("emulator data is not JSON ({e}): {}", body.chars().take(300).collect::<String>()),
        }
    };
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    let Some(topic) = topics.iter().find(|t| t["arn"] == topic_arn) else { return Vec::new() };
    topic["sent_notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let message = n[1].as_str().unwrap_or("");
            let last = message.lines().rev().find(|l| l.starts_with('{')).unwrap_or("null");
            Sent {
                subject: n[2].as_str().unwrap_or("").to_string(),
                message: message.to_string(),
                finding: serde_json::from_str(last).unwrap_or(Value::Null),
                attributes: n[3].clone(),
            }
        })
        .collect()
}

pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    ok()
}

/// The daemon as a child process; stderr goes to a file in the test's directory.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    pub fn start(dir: &Path, args: &[String]) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("daemon.log")).unwrap();
        let child = Command::new(bin())
            .arg("monitor")
            .args(args)
            .env("AUTHWATCH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { child }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(self) {
        self.terminate_with_code(0);
    }

    /// SIGTERM and wait for a clean stop with exit code `code` (1: the run rejected records).
    pub fn terminate_with_code(mut self, code: i32) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(code), "daemon exited with {st}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn daemon_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

/// What the proxy does with a request.
pub const PASS: u8 = 0;
/// Answer HTTP 400 with a ThrottlingException body.
pub const THROTTLE: u8 = 1;
/// Answer HTTP 503.
pub const UNAVAILABLE: u8 = 2;
/// Read the request, never answer it; the connection stays open (10 minutes), as behind a dead NAT entry.
pub const STALL: u8 = 3;
/// Read the request, then reset the connection (RST) without answering; nothing reaches the emulator.
pub const RESET: u8 = 4;
/// Forward the request, send the first half of the emulator's answer, then reset the connection.
pub const RESET_MID: u8 = 5;
/// Answer HTTP 500 (`InternalFailure`) or 503 (`ServiceUnavailableException`), alternately, with an AWS
/// JSON error body, as CloudWatch Logs does under a server-side burst.
pub const SERVER_ERROR: u8 = 6;

/// A loopback HTTP proxy in front of the emulator that can inject faults. `decide(request head, mode,
/// request number)` picks PASS or one of the faults above for each request. Runs on its own thread's runtime until the process ends.
pub struct Proxy {
    pub addr: SocketAddr,
    pub faults: Arc<AtomicU64>,
    pub passed: Arc<AtomicU64>,
    pub mode: Arc<AtomicU8>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr, decide: impl Fn(&str, u8, u64) -> u8 + Send + Sync + 'static) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(AtomicU64::new(0));
        let passed = Arc::new(AtomicU64::new(0));
        let mode = Arc::new(AtomicU8::new(PASS));
        let (f, p, m) = (faults.clone(), passed.clone(), mode.clone());
        let decide = Arc::new(decide);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let counter = Arc::new(AtomicU64::new(0));
                loop {
                    let Ok((conn, _)) = listener.accept().await else { continue };
                    let (f, p, m, d, c) = (f.clone(), p.clone(), m.clone(), decide.clone(), counter.clone());
                    tokio::spawn(async move {
                        let _ = serve(conn, upstream, f, p, m, d, c).await;
                    });
                }
            });
        });
        Proxy { addr, faults, passed, mode }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type Decide = Arc<dyn Fn(&str, u8, u64) -> u8 + Send + Sync>;

async fn serve(
    mut conn: tokio::net::TcpStream,
    upstream: SocketAddr,
    faults: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
    mode: Arc<AtomicU8>,
    decide: Decide,
    counter: Arc<AtomicU64>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let n = counter.fetch_add(1, Ordering::Relaxed);
    match decide(&head, mode.load(Ordering::Relaxed), n) {
        THROTTLE => {
            faults.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            let resp = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: fault\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
        }
        UNAVAILABLE => {
            faults.fetch_add(1, Ordering::Relaxed);
            let body = "Service Unavailable";
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
        }
        STALL => {
            faults.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(600)).await;
            return Ok(());
        }
        RESET => {
            faults.fetch_add(1, Ordering::Relaxed);
            conn.set_zero_linger()?;
            return Ok(());
        }
        SERVER_ERROR => {
            faults.fetch_add(1, Ordering::Relaxed);
            let (status, body) = if n.is_multiple_of(2) {
                ("500 Internal Server Error", r#"{"__type":"InternalFailure","message":"An internal error occurred"}"#)
            } else {
                (
                    "503 Service Unavailable",
                    r#"{"__type":"ServiceUnavailableException","message":"The service is unavailable"}"#,
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: fault\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
        }
        RESET_MID => {
            faults.fetch_add(1, Ordering::Relaxed);
            let resp = forward(upstream, &head, &buf[head_end..]).await?;
            conn.write_all(&resp[..resp.len() / 2]).await?;
            conn.flush().await?;
            conn.set_zero_linger()?;
            return Ok(());
        }
        _ => {
            passed.fetch_add(1, Ordering::Relaxed);
            let resp = forward(upstream, &head, &buf[head_end..]).await?;
            conn.write_all(&resp).await?;
        }
    }
    conn.shutdown().await?;
    Ok(())
}

/// Sends one request to the emulator on a fresh connection and returns its whole answer.
async fn forward(upstream: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut up = tokio::net::TcpStream::connect(upstream).await?;
    // One request per upstream connection: ask the emulator to close after answering.
    let head = head.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    up.write_all(head.as_bytes()).await?;
    up.write_all(body).await?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).await?;
    Ok(resp)
}

/// Creates a log group, its streams, and an SNS topic in the emulator.
pub async fn setup_aws(group: &str, streams: &[&str], topic: &str) -> (aws_sdk_cloudwatchlogs::Client, String) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(emulator()).load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group().log_group_name(group).send().await.unwrap();
    for s in streams {
        logs.create_log_stream().log_group_name(group).log_stream_name(*s).send().await.unwrap();
    }
    let sns = aws_sdk_sns::Client::new(&sdk);
    let arn = sns.create_topic().name(topic).send().await.unwrap().topic_arn().unwrap().to_string();
    (logs, arn)
}

/// Puts events (already in time order) into one stream.
pub async fn put(logs: &aws_sdk_cloudwatchlogs::Client, group: &str, stream: &str, events: &[(i64, String)]) {
    let evs: Vec<_> = events
        .iter()
        .map(|(t, m)| aws_sdk_cloudwatchlogs::types::InputLogEvent::builder().timestamp(*t).message(m).build().unwrap())
        .collect();
    logs.put_log_events().log_group_name(group).log_stream_name(stream).set_log_events(Some(evs)).send().await.unwrap();
}

/// Monitor arguments every test uses: short delays, fast polls, the test rules.
pub fn base_args(dir: &Path, state: &Path, output: &Path) -> Vec<String> {
    vec![
        "--state-dir".into(),
        state.display().to_string(),
        "--output".into(),
        output.display().to_string(),
        "--filters".into(),
        filters_dir(dir).display().to_string(),
        "--allowed-delay".into(),
        "2s".into(),
        "--overlap".into(),
        "10s".into(),
        "--poll-interval".into(),
        "200ms".into(),
        "--backfill".into(),
        "2m".into(),
        "--status-interval".into(),
        "5s".into(),
        "--drain".into(),
        "2s".into(),
        // Notify per finding: these tests count incident updates (tests/monitor.rs has the case tests).
        "--no-cases".into(),
    ]
}
