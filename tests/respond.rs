//! Active response end to end against moto: the monitor blocks a brute force's address in a WAF IP set
//! within seconds and spares a NAT address, the block survives kill -9 and expires, entries of others
//! stay; a lock conflict with a concurrent writer is retried and both changes survive; 12,000 attacking
//! addresses never overflow the set; a takeover signs the user out once, as the audit log shows.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authwatch::finding::{Finding, Severity, Status};
use authwatch::pipeline::clock::Clock;
use authwatch::respond::audit::{AuditLog, RespondMetrics};
use authwatch::respond::policy::Policy;
use authwatch::respond::shared::NoFigures;
use authwatch::respond::sink::{Report, RespondSink};
use authwatch::respond::store::Store;
use authwatch::respond::worker::{Saver, Shared};
use authwatch::sink::Sink;
use authwatch::spec::SpecSet;
use authwatch::time::Timestamp;
use aws_sdk_wafv2::types::{IpAddressVersion, Scope};
use common::*;
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(emulator()).load().await
}

/// Creates an IPv4 set holding `others` (entries authwatch did not add); its name and id.
async fn create_set(name: &str, others: &[&str]) -> (String, String) {
    let waf = aws_sdk_wafv2::Client::new(&sdk().await);
    let out = waf
        .create_ip_set()
        .name(name)
        .scope(Scope::Regional)
        .ip_address_version(IpAddressVersion::Ipv4)
        .set_addresses(Some(others.iter().map(|s| s.to_string()).collect()))
        .send()
        .await
        .unwrap();
    let s = out.summary().unwrap();
    (s.name().unwrap().to_string(), s.id().unwrap().to_string())
}

async fn set_addresses(name: &str, id: &str) -> Vec<String> {
    let waf = aws_sdk_wafv2::Client::new(&sdk().await);
    let out = waf.get_ip_set().name(name).id(id).scope(Scope::Regional).send().await.unwrap();
    let mut v = out.ip_set().unwrap().addresses().to_vec();
    v.sort();
    v
}

/// A user pool, with a web ACL blocking `set_arn` associated with it (as `filters --waf-user-pool-arn`
/// deploys it); the pool's id.
async fn pool_with_web_acl(name: &str, set: (&str, &str)) -> String {
    let sdk = sdk().await;
    let idp = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let pool = idp.create_user_pool().pool_name(name).send().await.unwrap().user_pool().unwrap().clone();
    let waf = aws_sdk_wafv2::Client::new(&sdk);
    let set_arn = waf.get_ip_set().name(set.0).id(set.1).scope(Scope::Regional).send().await.unwrap();
    let set_arn = set_arn.ip_set().unwrap().arn().to_string();
    use aws_sdk_wafv2::types::*;
    let vis = |m: &str| {
        VisibilityConfig::builder()
            .sampled_requests_enabled(true)
            .cloud_watch_metrics_enabled(true)
            .metric_name(m)
            .build()
            .unwrap()
    };
    let rule = Rule::builder()
        .name("authwatch-block-v4")
        .priority(0)
        .action(RuleAction::builder().block(BlockAction::builder().build()).build())
        .statement(
            Statement::builder()
                .ip_set_reference_statement(IpSetReferenceStatement::builder().arn(set_arn).build().unwrap())
                .build(),
        )
        .visibility_config(vis("block"))
        .build()
        .unwrap();
    let acl = waf
        .create_web_acl()
        .name(format!("{name}-acl"))
        .scope(Scope::Regional)
        .default_action(DefaultAction::builder().allow(AllowAction::builder().build()).build())
        .rules(rule)
        .visibility_config(vis("acl"))
        .send()
        .await
        .unwrap();
    let acl_arn = acl.summary().unwrap().arn().unwrap().to_string();
    waf.associate_web_acl().web_acl_arn(&acl_arn).resource_arn(pool.arn().unwrap()).send().await.unwrap();
    let found = waf.get_web_acl_for_resource().resource_arn(pool.arn().unwrap()).send().await.unwrap();
    assert_eq!(found.web_acl().unwrap().arn(), acl_arn, "the web ACL is associated with the user pool");
    pool.id().unwrap().to_string()
}

/// Test rules: the per-address burst (5 failures in 10 s, high at 8) and the built-in takeover rule.
fn respond_filters(dir: &Path) -> PathBuf {
    let d = dir.join("respond-filters");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("failed_login_burst_ip.toml"),
        r#"id = "failed_login_burst_ip"
detector = "failed_login_burst"
description = "Test: at least 5 failed sign-ins from one address within 10 seconds."
key = "ip"
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
"#,
    )
    .unwrap();
    d
}

fn policy_file(dir: &Path, set: &(String, String), extra: &str) -> PathBuf {
    let path = dir.join("respond.toml");
    let text = format!(
        r#"enabled = true
[waf]
ipv4_set = {{ name = "{}", id = "{}" }}
batch = "500ms"
{extra}
[block]
rules = ["failed_login_burst_ip"]
min_severity = "medium"
duration = "20s"
max_shared_users = 3
"#,
        set.0, set.1
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn append(log: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// The response state in the checkpoint (`state.json`: a header line, then JSON).
fn stored_blocks(state: &Path) -> Value {
    let text = std::fs::read_to_string(state.join("state.json")).unwrap_or_default();
    let body = text.split_once('\n').map(|(_, b)| b).unwrap_or("");
    serde_json::from_str::<Value>(body).map(|v| v["respond"]["blocks"].clone()).unwrap_or(Value::Null)
}

fn audit(state: &Path) -> Vec<Value> {
    read_jsonl(&state.join("respond-audit.jsonl"))
}

fn metric(metrics: &str, name: &str) -> u64 {
    http_get(metrics, "/metrics")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn a_brute_force_is_blocked_within_seconds_a_nat_is_not_and_the_block_survives_kill9_then_expires() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let foreign = "192.0.2.200/32";
    let set = rt.block_on(create_set(&unique("block-v4"), &[foreign]));
    rt.block_on(pool_with_web_acl(&unique("pool"), (&set.0, &set.1)));
    let policy = policy_file(dir.path(), &set, "");
    let (log, state, output) = (dir.path().join("cognito.log"), dir.path().join("state"), dir.path().join("f.jsonl"));
    let args: Vec<String> = vec![
        "--state-dir".into(),
        state.display().to_string(),
        "--output".into(),
        output.display().to_string(),
        "--filters".into(),
        respond_filters(dir.path()).display().to_string(),
        "--follow".into(),
        log.display().to_string(),
        "--allowed-delay".into(),
        "1s".into(),
        "--backfill".into(),
        "2m".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--endpoint-url".into(),
        endpoint.clone(),
        "--respond".into(),
        policy.display().to_string(),
    ];
    append(&log, &[]);
    let daemon = Daemon::start(dir.path(), &args);
    let metrics = metrics_endpoint(&state);

    // An office NAT: four colleagues sign in, then one of them mistypes a password eight times.
    let t = now_ms() - 500;
    let mut nat: Vec<String> = (0..4)
        .map(|i| cognito_line(t + i, &format!("colleague{i}"), "198.51.100.50", true, &format!("nat-ok-{i}")))
        .collect();
    nat.extend(
        (0..8).map(|i| cognito_line(t + 10 + i, "colleague0", "198.51.100.50", false, &format!("nat-fail-{i}"))),
    );
    append(&log, &nat);
    // The attacker: ten failures on ten accounts; the clock starts at its last event.
    let t = now_ms();
    let attack: Vec<String> = (0..10)
        .map(|i| cognito_line(t - 100 + i * 10, &format!("victim{i}"), "203.0.113.66", false, &format!("bf-{i}")))
        .collect();
    append(&log, &attack);
    let last_event = Instant::now();
    let blocked = wait_until(Duration::from_secs(60), || {
        rt.block_on(set_addresses(&set.0, &set.1)).contains(&"203.0.113.66/32".to_string())
    });
    let took = last_event.elapsed();
    assert!(blocked, "never blocked; daemon log:\n{}", daemon_log(dir.path()));
    eprintln!("FIGURE brute force last event -> address in the IP set: {} ms", took.as_millis());
    assert!(wait_until(Duration::from_secs(30), || metric(&metrics, "authwatch_respond_blocks_spared_total") >= 1));
    let addrs = rt.block_on(set_addresses(&set.0, &set.1));
    assert_eq!(addrs, ["192.0.2.200/32", "203.0.113.66/32"], "the NAT address is not blocked, the other entry stays");
    assert!(daemon_log(dir.path()).contains("not block 198.51.100.50"), "{}", daemon_log(dir.path()));
    // The checkpoint records the block as written (the next save after the write).
    assert!(wait_until(Duration::from_secs(30), || stored_blocks(&state)["203.0.113.66/32"]["state"] == "active"));
    let before = stored_blocks(&state)["203.0.113.66/32"].clone();

    // kill -9 and restart: the block and its expiry are kept, nothing is added twice.
    daemon.kill9();
    // The new daemon writes the address it listens on afresh.
    let _ = std::fs::remove_file(state.join("metrics.addr"));
    let daemon = Daemon::start(dir.path(), &args);
    let metrics = metrics_endpoint(&state);
    // The restart's first round found the block where it was.
    assert!(
        wait_until(Duration::from_secs(30), || metric(&metrics, "authwatch_respond_blocked") == 1),
        "{}",
        daemon_log(dir.path())
    );
    assert_eq!(
        stored_blocks(&state)["203.0.113.66/32"]["expires_ms"],
        before["expires_ms"],
        "same expiry after the restart"
    );
    assert!(rt.block_on(set_addresses(&set.0, &set.1)).contains(&"203.0.113.66/32".to_string()));

    // Expiry removes it; the entry authwatch did not add stays.
    let expired =
        wait_until(Duration::from_secs(60), || rt.block_on(set_addresses(&set.0, &set.1)) == [foreign.to_string()]);
    assert!(expired, "not removed at expiry; daemon log:\n{}", daemon_log(dir.path()));
    let lines = audit(&state);
    let ours: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["target"] == "203.0.113.66/32")
        .map(|l| (l["action"].as_str().unwrap(), l["result"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(ours.len(), 2, "one block, one unblock: {lines:?}");
    assert_eq!(ours[0].0, "block");
    assert!(ours[1].0 == "unblock" && ours[1].1.contains("expired"), "{ours:?}");
    assert!(!lines.iter().any(|l| l["target"] == foreign));

    // Another restart after the expiry re-reads the same attack: it is not blocked again.
    daemon.kill9();
    // The new daemon writes the address it listens on afresh.
    let _ = std::fs::remove_file(state.join("metrics.addr"));
    let daemon = Daemon::start(dir.path(), &args);
    let metrics = metrics_endpoint(&state);
    assert!(wait_until(Duration::from_secs(30), || metric(&metrics, "authwatch_respond_waf_writes_total") == 0
        && metric(&metrics, "authwatch_lag_seconds_x1000") > 0));
    // A sync asked through the running monitor: returns once the monitor took it.
    let sync = Command::new(bin())
        .args(["respond", "sync", "--policy"])
        .arg(&policy)
        .arg("--state-dir")
        .arg(&state)
        .args(["--filters"])
        .arg(respond_filters(dir.path()))
        .output()
        .unwrap();
    assert!(sync.status.success(), "{}", String::from_utf8_lossy(&sync.stdout));
    assert!(String::from_utf8_lossy(&sync.stdout).contains("handed to it"));
    assert_eq!(rt.block_on(set_addresses(&set.0, &set.1)), [foreign.to_string()], "what expired is not re-added");
    assert_eq!(audit(&state).iter().filter(|l| l["action"] == "block").count(), 1);

    // Operators reach the running monitor: a finding from an investigation is applied, then undone.
    let investigation = dir.path().join("investigation.jsonl");
    let line = serde_json::json!({"rule": "failed_login_burst_ip", "severity": "high", "ip": "203.0.113.77",
        "incident_id": "investigation-1", "status": "closed"});
    std::fs::write(&investigation, format!("{line}\n")).unwrap();
    let operator = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("respond")
            .args(args)
            .arg("--policy")
            .arg(&policy)
            .arg("--state-dir")
            .arg(&state)
            .arg("--filters")
            .arg(respond_filters(dir.path()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success() && text.contains("handed to it"), "{args:?}: {text}");
    };
    operator(&["--from", investigation.to_str().unwrap(), "--apply"]);
    let with = [foreign.to_string(), "203.0.113.77/32".to_string()];
    assert!(
        wait_until(Duration::from_secs(30), || rt.block_on(set_addresses(&set.0, &set.1)) == with),
        "{}",
        daemon_log(dir.path())
    );
    operator(&["unblock", "203.0.113.77"]);
    assert!(wait_until(Duration::from_secs(30), || rt.block_on(set_addresses(&set.0, &set.1)) == [foreign.to_string()]));
    daemon.terminate();
}

/// The library's response pieces on one store, for the tests that drive the worker directly.
fn responder(policy: Policy) -> (Arc<Shared>, RespondSink, Arc<RespondMetrics>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(RespondMetrics::default());
    let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let shared = Shared::new(Store::default(), audit, metrics.clone());
    let sink =
        RespondSink::new(Arc::new(policy), shared.clone(), Arc::new(NoFigures), false, Report::Log, Clock::System);
    (shared, sink, metrics, dir)
}

/// A saver that stands for the checkpoint: everything decided is "on disk" at once.
fn instant_saver(shared: &Arc<Shared>) -> Saver {
    let shared = shared.clone();
    Arc::new(move || {
        shared.with_store(|s| s.make_visible());
        Ok(())
    })
}

fn burst_finding(ip: &str, n: usize) -> Finding {
    Finding {
        detector: "failed_login_burst",
        severity: Severity::High,
        user: None,
        user_sub: None,
        ip: Some(ip.into()),
        user_pool_id: Some("us-east-1_TEST".into()),
        region: None,
        account: None,
        first_seen: Timestamp(0),
        last_seen: Timestamp(0),
        detected_at: Timestamp(0),
        count: 10,
        summary: String::new(),
        evidence: serde_json::json!({}),
        incident_id: format!("incident-{n}"),
        case_id: None,
        rule: "failed_login_burst_ip".into(),
        status: Status::Open,
    }
}

/// One raw JSON call to the emulator's WAF, as a second writer would make it (no SDK: it runs inside the
/// fault proxy's decision, between the worker's read and its write).
fn raw_waf(endpoint: &str, target: &str, body: &Value) -> Value {
    use std::io::{Read, Write};
    let addr = endpoint_addr(endpoint);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: AWSWAF_20190729.{target}\r\nContent-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/wafv2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (_, json) = resp.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap_or(Value::Null)
}

#[test]
fn a_concurrent_writer_between_read_and_write_is_retried_and_both_changes_survive() {
    let endpoint = emulator();
    let rt = rt();
    let set = rt.block_on(create_set(&unique("conflict"), &[]));
    // The first UpdateIPSet the worker sends waits while another writer adds its own address.
    let fired = Arc::new(AtomicBool::new(false));
    let (f, e, s) = (fired.clone(), endpoint.clone(), set.clone());
    let proxy = Proxy::start(endpoint_addr(&endpoint), move |head, _, _| {
        if head.contains("AWSWAF_20190729.UpdateIPSet") && !f.swap(true, Ordering::SeqCst) {
            let id = serde_json::json!({"Name": s.0, "Id": s.1, "Scope": "REGIONAL"});
            let got = raw_waf(&e, "GetIPSet", &id);
            let mut body = id.clone();
            body["Addresses"] = serde_json::json!(["192.0.2.77/32"]);
            body["LockToken"] = got["LockToken"].clone();
            raw_waf(&e, "UpdateIPSet", &body);
        }
        PASS
    });
    let policy =
        Policy::load(&policy_file(tempfile::tempdir().unwrap().path(), &set, ""), &SpecSet::builtin()).unwrap();
    let (shared, mut sink, metrics, _dir) = responder(policy.clone());
    sink.emit(&burst_finding("203.0.113.5", 1)).unwrap();
    let result = rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(proxy.url()).load().await;
        let saver = instant_saver(&shared);
        saver().unwrap();
        let mut worker = authwatch::respond::new_worker(&policy, shared.clone(), &sdk, Clock::System, Some(saver));
        let (_tx, stop) = tokio::sync::watch::channel(false);
        worker.round(&stop).await
    });
    assert!(result.is_ok(), "{result:?}");
    assert!(fired.load(Ordering::SeqCst), "the concurrent write happened");
    assert_eq!(metrics.waf_lock_conflicts.load(Ordering::Relaxed), 1, "one conflict, retried");
    assert_eq!(rt.block_on(set_addresses(&set.0, &set.1)), ["192.0.2.77/32", "203.0.113.5/32"], "both changes survive");
}

#[test]
fn twelve_thousand_attacking_addresses_never_overflow_the_set_and_the_overflow_is_reported() {
    let _ = emulator();
    let rt = rt();
    let set = rt.block_on(create_set(&unique("flood"), &["192.0.2.1/32"]));
    let policy =
        Policy::load(&policy_file(tempfile::tempdir().unwrap().path(), &set, ""), &SpecSet::builtin()).unwrap();
    let (shared, mut sink, metrics, dir) = responder(policy.clone());
    let started = Instant::now();
    let waves = 12;
    let (sizes, result) = rt.block_on(async {
        let sdk = sdk().await;
        let saver = instant_saver(&shared);
        let mut worker =
            authwatch::respond::new_worker(&policy, shared.clone(), &sdk, Clock::System, Some(saver.clone()));
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let mut sizes = Vec::new();
        for wave in 0..waves {
            for i in 0..1000u32 {
                let n = wave * 1000 + i;
                sink.emit(&burst_finding(&format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255), n as usize))
                    .unwrap();
            }
            // The checkpoint that makes the decisions visible to the writer.
            saver().unwrap();
            if let Err(e) = worker.round(&stop).await {
                return (sizes, Err(e));
            }
            sizes.push(set_addresses(&set.0, &set.1).await.len());
        }
        (sizes, Ok(()))
    });
    let elapsed = started.elapsed();
    assert!(result.is_ok(), "no API error: {result:?}");
    assert!(sizes.iter().all(|s| *s <= 10_000), "the set never exceeds its limit: {sizes:?}");
    assert_eq!(*sizes.last().unwrap(), 10_000);
    let addrs = rt.block_on(set_addresses(&set.0, &set.1));
    assert!(addrs.contains(&"192.0.2.1/32".to_string()), "the entry authwatch did not add stays");
    let overflow = metrics.blocks_overflow.load(Ordering::Relaxed);
    assert_eq!(overflow, 12_000 - 9_999, "every address beyond the room is counted");
    let audit = read_jsonl(&dir.path().join("audit.jsonl"));
    assert!(
        audit.iter().any(|l| l["result"].as_str().is_some_and(|r| r.contains("set full"))),
        "reported in the audit log"
    );
    let writes = metrics.waf_writes.load(Ordering::Relaxed);
    eprintln!(
        "FIGURE 12,000 addresses: set size per wave {sizes:?}; {overflow} given up or refused; {writes} UpdateIPSet writes in {:.1} s = {:.2} writes/s",
        elapsed.as_secs_f64(),
        writes as f64 / elapsed.as_secs_f64()
    );
    // The write interval (1 s) holds: n writes take at least n - 1 seconds.
    assert!(elapsed >= Duration::from_secs(writes.saturating_sub(1)), "{writes} writes in {elapsed:?}");
}

/// A user with a password, signed in: (pool id, access token).
async fn signed_in_user(
    pool_name: &str,
    user: &str,
) -> (String, String, aws_sdk_cognitoidentityprovider::Client, String) {
    let idp = aws_sdk_cognitoidentityprovider::Client::new(&sdk().await);
    let pool = idp
        .create_user_pool()
        .pool_name(pool_name)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let client = idp
        .create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("app")
        .explicit_auth_flows(aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
        .explicit_auth_flows(aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_string();
    idp.admin_create_user().user_pool_id(&pool).username(user).send().await.unwrap();
    idp.admin_set_user_password()
        .user_pool_id(&pool)
        .username(user)
        .password("Corr3ct-Horse!")
        .permanent(true)
        .send()
        .await
        .unwrap();
    let token = sign_in(&idp, &pool, &client, user).await;
    (pool, client, idp, token)
}

async fn sign_in(idp: &aws_sdk_cognitoidentityprovider::Client, pool: &str, client: &str, user: &str) -> String {
    let out = idp
        .admin_initiate_auth()
        .user_pool_id(pool)
        .client_id(client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::AdminUserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", "Corr3ct-Horse!")
        .send()
        .await
        .unwrap();
    out.authentication_result().unwrap().access_token().unwrap().to_string()
}

async fn token_valid(idp: &aws_sdk_cognitoidentityprovider::Client, token: &str) -> bool {
    idp.get_user().access_token(token).send().await.is_ok()
}

#[test]
fn a_takeover_signs_the_user_out_once_and_the_audit_log_shows_it() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let (pool, client, idp, token) = rt.block_on(signed_in_user(&unique("pool"), "alice"));
    assert!(rt.block_on(token_valid(&idp, &token)));
    let policy = dir.path().join("respond.toml");
    std::fs::write(&policy, "enabled = true\n[contain]\nactions = [\"global_sign_out\"]\n").unwrap();
    // Replay output: the takeover's updates (open, escalated, closed) and a line that is no finding.
    let finding = |status: &str, severity: &str| {
        serde_json::json!({"detector": "account_takeover", "rule": "account_takeover", "severity": severity,
            "status": status, "user": "alice", "user_sub": "sub-alice", "ip": "203.0.113.9", "user_pool_id": pool,
            "incident_id": "account_takeover:alice:1", "count": 6})
        .to_string()
    };
    let findings = dir.path().join("findings.jsonl");
    std::fs::write(
        &findings,
        [
            finding("open", "high"),
            finding("escalated", "critical"),
            finding("closed", "critical"),
            "{\"not\": 1}".into(),
        ]
        .join("\n"),
    )
    .unwrap();
    let state = dir.path().join("state");
    let respond = |apply: bool| {
        let mut c = Command::new(bin());
        c.args(["respond", "--from"]).arg(&findings).arg("--policy").arg(&policy).arg("--state-dir").arg(&state);
        c.args(["--endpoint-url", &endpoint]);
        if apply {
            c.arg("--apply");
        }
        c.output().unwrap()
    };
    // A dry run by default: says what it would do, does nothing.
    let dry = respond(false);
    let text = String::from_utf8_lossy(&dry.stdout).to_string();
    assert_eq!(dry.status.code(), Some(1), "the bad line makes the exit code 1");
    assert!(text.contains(&format!("dry run: would global_sign_out {pool}/alice")), "{text}");
    assert_eq!(text.matches("would global_sign_out").count(), 1, "once for the incident's three updates: {text}");
    assert!(String::from_utf8_lossy(&dry.stderr).contains("findings.jsonl:4: not a finding"));
    assert!(rt.block_on(token_valid(&idp, &token)), "a dry run changes nothing");

    let applied = respond(true);
    assert!(
        String::from_utf8_lossy(&applied.stdout).contains("1 actions done"),
        "{}",
        String::from_utf8_lossy(&applied.stdout)
    );
    assert!(!rt.block_on(token_valid(&idp, &token)), "signed out: the access token is revoked");
    // The user signs in again; the same findings applied again do not sign them out a second time.
    let token = rt.block_on(sign_in(&idp, &pool, &client, "alice"));
    let again = respond(true);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 actions done"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert!(rt.block_on(token_valid(&idp, &token)), "never twice for the same incident");
    let lines = read_jsonl(&state.join("respond-audit.jsonl"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["action"], "global_sign_out");
    assert_eq!(lines[0]["target"], format!("{pool}/alice"));
    assert_eq!(
        (lines[0]["case"].as_str(), lines[0]["result"].as_str()),
        (Some("account_takeover:alice:1"), Some("ok"))
    );
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The WAF side of `filters --waf-user-pool-arn`: CloudFormation that cfn-lint accepts, Terraform that
/// parses as HCL, each with two IP sets, a web ACL blocking them and its association with the pool.
#[test]
fn the_waf_side_passes_cfn_lint_and_parses_as_terraform() {
    let _ = emulator();
    let dir = tempfile::tempdir().unwrap();
    let arn = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf";
    let out = Command::new(bin())
        .args(["filters", "--log-group", "/aws/cognito/userpool", "--log-format", "cognito", "--output-format", "all"])
        .args(["--waf-user-pool-arn", arn, "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cloudformation.json")).unwrap()).unwrap();
    let resources = template["Resources"].as_object().unwrap();
    let kinds = |t: &str| resources.values().filter(|r| r["Type"] == t).count();
    assert_eq!(
        (kinds("AWS::WAFv2::IPSet"), kinds("AWS::WAFv2::WebACL"), kinds("AWS::WAFv2::WebACLAssociation")),
        (2, 1, 1)
    );
    assert!(kinds("AWS::Logs::MetricFilter") > 0, "the filters' resources are still there");
    for file in ["cloudformation.json", "cloudformation.yaml"] {
        let lint = Command::new("cfn-lint").arg("--").arg(dir.path().join(file)).output();
        let lint = lint.expect("cfn-lint (pip install -r scripts/test-requirements.txt)");
        assert!(lint.status.success(), "{file}: {}", String::from_utf8_lossy(&lint.stdout));
    }
    let check = r#"
import json, sys, hcl2
doc = hcl2.load(open(sys.argv[1]))
kinds = {}
for block in doc["resource"]:
    for rtype in block:
        kinds[rtype.strip('"')] = kinds.get(rtype.strip('"'), 0) + 1
print(json.dumps(kinds))
"#;
    let out = Command::new(python()).args(["-c", check]).arg(dir.path().join("authwatch.tf")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kinds: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            kinds["aws_wafv2_ip_set"].as_u64(),
            kinds["aws_wafv2_web_acl"].as_u64(),
            kinds["aws_wafv2_web_acl_association"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{kinds}"
    );
}

/// Without a monitor, `respond --from --apply` blocks, `respond list` shows it, `respond unblock` takes it
/// out of the set at once, and the entry someone else added stays throughout.
#[test]
fn an_operator_blocks_lists_and_unblocks_without_a_monitor() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let set = rt.block_on(create_set(&unique("operator"), &["192.0.2.9/32"]));
    let policy = policy_file(dir.path(), &set, "");
    let state = dir.path().join("state");
    let findings = dir.path().join("findings.jsonl");
    let line = serde_json::json!({"detector": "failed_login_burst", "rule": "failed_login_burst_ip", "severity": "high",
        "status": "closed", "ip": "203.0.113.44", "incident_id": "failed_login_burst_ip:203.0.113.44:1", "count": 30});
    std::fs::write(&findings, format!("{line}\n")).unwrap();
    let respond = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("respond")
            .args(args)
            .arg("--policy")
            .arg(&policy)
            .arg("--state-dir")
            .arg(&state)
            .args(["--endpoint-url", &endpoint])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let applied = respond(&["--from", findings.to_str().unwrap(), "--apply"]);
    assert!(applied.contains("1 added"), "{applied}");
    assert_eq!(rt.block_on(set_addresses(&set.0, &set.1)), ["192.0.2.9/32", "203.0.113.44/32"]);
    let listed = respond(&["list"]);
    assert!(
        listed.contains("203.0.113.44/32") && listed.contains("active") && listed.contains("failed_login_burst_ip"),
        "{listed}"
    );
    let unblocked = respond(&["unblock", "203.0.113.44"]);
    assert!(unblocked.contains("1 removed"), "{unblocked}");
    assert_eq!(rt.block_on(set_addresses(&set.0, &set.1)), ["192.0.2.9/32"]);
    assert!(!respond(&["list"]).contains("203.0.113.44/32"));
    // Not authwatch's entry: refused, and it stays.
    let refused = respond(&["unblock", "192.0.2.9"]);
    assert!(refused.contains("cannot unblock"), "{refused}");
    assert_eq!(rt.block_on(set_addresses(&set.0, &set.1)), ["192.0.2.9/32"]);
    let actions: Vec<String> = audit(&state).iter().map(|l| l["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["block", "unblock"]);
}

/// `monitor --respond --dry-run` says what it would block and changes nothing.
#[test]
fn a_monitor_dry_run_says_what_it_would_block_and_changes_nothing() {
    let endpoint = emulator();
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let set = rt.block_on(create_set(&unique("dry"), &[]));
    let policy = policy_file(dir.path(), &set, "");
    let (log, state) = (dir.path().join("cognito.log"), dir.path().join("state"));
    append(&log, &[]);
    let args: Vec<String> = vec![
        "--state-dir".into(),
        state.display().to_string(),
        "--output".into(),
        dir.path().join("f.jsonl").display().to_string(),
        "--filters".into(),
        respond_filters(dir.path()).display().to_string(),
        "--follow".into(),
        log.display().to_string(),
        "--allowed-delay".into(),
        "1s".into(),
        "--endpoint-url".into(),
        endpoint,
        "--respond".into(),
        policy.display().to_string(),
        "--dry-run".into(),
    ];
    let daemon = Daemon::start(dir.path(), &args);
    let t = now_ms();
    append(
        &log,
        &(0..6)
            .map(|i| cognito_line(t + i, &format!("v{i}"), "203.0.113.67", false, &format!("dry-{i}")))
            .collect::<Vec<_>>(),
    );
    let said = wait_until(Duration::from_secs(60), || {
        daemon_log(dir.path()).contains("dry run: would block 203.0.113.67/32 until")
    });
    assert!(said, "{}", daemon_log(dir.path()));
    daemon.terminate();
    assert!(rt.block_on(set_addresses(&set.0, &set.1)).is_empty(), "nothing written");
    assert!(stored_blocks(&state).is_null(), "nothing kept: {}", stored_blocks(&state));
    assert!(audit(&state).is_empty());
}
