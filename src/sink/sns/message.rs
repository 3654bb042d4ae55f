//! What an SNS notification says: one finding (subject, readable summary, the finding JSON) or a digest
//! of many. Every log-supplied value is sanitised for a subject line or a terminal.

use serde::{Deserialize, Serialize};

use crate::correlate::{CaseRecord, CaseStatus};
use crate::finding::{Finding, Status};
use crate::sanitize;
use crate::time::Timestamp;

/// SNS subjects must be under 100 characters.
pub const MAX_SUBJECT: usize = 99;
/// SNS messages are at most 256 KiB; stay below with room for the framing.
pub const MAX_MESSAGE_BYTES: usize = 250_000;
/// Findings listed one per line in a digest; the rest are counted.
pub const DIGEST_LINES: usize = 100;
/// The message group of FIFO topics: one group keeps every notification in order.
pub const FIFO_GROUP: &str = "authwatch";
/// One notification waiting to be published (or published but not yet confirmed on disk).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    pub seq: u64,
    pub subject: String,
    pub message: String,
    pub detector: String,
    pub severity: String,
    pub group_id: String,
    pub dedup_id: String,
    /// Event time of the detection (for the event-to-notification latency).
    pub detected_at_ms: i64,
    /// Wall time the notification was created.
    pub created_ms: i64,
    /// The case notified (empty for a finding or a digest): sent as the `case_id` message attribute.
    #[serde(default)]
    pub case_id: String,
}

/// One finding held back during an alert storm, as the digest will show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DigestItem {
    pub line: String,
    pub detected_at_ms: i64,
    pub json: String,
}

fn status_id(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Escalated => "escalated",
        Status::Closed => "closed",
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Open => "NEW",
        Status::Escalated => "ESCALATED",
        Status::Closed => "CLOSED",
    }
}

/// The notification for one finding: subject, readable summary, then the finding JSON.
/// `created` is the wall time now.
pub fn render(f: &Finding, seq: u64, fifo: bool, created: Timestamp) -> Notification {
    let who = f.user.as_deref().or(f.ip.as_deref()).unwrap_or("-");
    let subject = sanitize::for_subject(
        &format!("[authwatch] {} {} {}: {}", status_word(f.status), f.severity, f.detector, who),
        MAX_SUBJECT,
    );
    let json = sanitize::json_line(f.to_json_line());
    let mut message = format!(
        "{}\n\nDetector: {} (rule {})\nSeverity: {}\nStatus: {}\nUser: {}\nIP: {}\nUser pool: {}\nFirst seen: {}\nDetected at: {}\nEvents: {}\nIncident: {}\n\n",
        sanitize::for_terminal(&f.summary),
        f.detector,
        f.rule,
        f.severity,
        status_id(f.status),
        sanitize::for_terminal(f.user.as_deref().unwrap_or("-")),
        f.ip.as_deref().unwrap_or("-"),
        sanitize::for_terminal(f.user_pool_id.as_deref().unwrap_or("-")),
        f.first_seen,
        f.detected_at,
        f.count,
        f.incident_id,
    );
    if message.len() + json.len() <= MAX_MESSAGE_BYTES {
        message.push_str(&json);
    } else {
        message.push_str("(finding JSON too large for SNS; see the findings output)");
    }
    Notification {
        seq,
        subject,
        message,
        detector: f.detector.to_string(),
        severity: f.severity.to_string(),
        group_id: FIFO_GROUP.to_string(),
        dedup_id: if fifo {
            format!("{}-{}-{}", f.incident_id, status_id(f.status), f.severity)
        } else {
            String::new()
        },
        detected_at_ms: f.detected_at.0,
        created_ms: created.0,
        case_id: f.case_id.clone().unwrap_or_default(),
    }
}

fn case_word(s: CaseStatus) -> &'static str {
    match s {
        CaseStatus::Open => "NEW CASE",
        CaseStatus::Escalated => "CASE ESCALATED",
        CaseStatus::Closed => "CASE CLOSED",
        CaseStatus::Merged => "CASE MERGED",
    }
}

/// The notification for one case update: subject (severity and story), why it was sent, the accounts
/// and addresses, the findings by rule, then the case JSON. `created` is the wall time now.
pub fn render_case(c: &CaseRecord, seq: u64, fifo: bool, created: Timestamp) -> Notification {
    let subject =
        sanitize::for_subject(&format!("[authwatch] {} {}: {}", case_word(c.status), c.severity, c.story), MAX_SUBJECT);
    let json = sanitize::json_line(c.to_json_line());
    let rules: Vec<String> = c.findings_by_rule.iter().map(|(r, n)| format!("{r} ({n})")).collect();
    let addresses: Vec<&str> = c.addresses.iter().map(|a| a.ip.as_str()).take(10).collect();
    let mut message = format!(
        "{}\n\nWhy this message: {}\nCase: {}\nSeverity: {}\nStatus: {}\nAccounts taken over: {} {}\nAccounts: {} {}\nAddresses: {} {}\nUser pools: {}\nFirst seen: {}\nOpened at: {}\nFindings: {}\n\n",
        sanitize::for_terminal(&c.story),
        sanitize::for_terminal(&c.reason),
        c.case_id,
        c.severity,
        c.status.as_str(),
        c.taken_over_count,
        sanitize::for_terminal(&c.taken_over.iter().take(10).cloned().collect::<Vec<_>>().join(", ")),
        c.users_count,
        sanitize::for_terminal(&c.users.iter().take(10).cloned().collect::<Vec<_>>().join(", ")),
        c.addresses_count,
        addresses.join(", "),
        sanitize::for_terminal(&c.user_pool_ids.join(", ")),
        c.first_seen,
        c.opened_at,
        rules.join(", "),
    );
    if message.len() + json.len() <= MAX_MESSAGE_BYTES {
        message.push_str(&json);
    } else {
        message.push_str("(case JSON too large for SNS; see the --cases output)");
    }
    Notification {
        seq,
        subject,
        message,
        detector: "case".to_string(),
        severity: c.severity.to_string(),
        group_id: FIFO_GROUP.to_string(),
        // One id per case update: SNS drops a repeat within its 5-minute window, and the case id
        // (message attribute) lets PagerDuty or Opsgenie fold every update into one alert.
        dedup_id: if fifo { format!("{}-{}-{}", c.case_id, c.status.as_str(), c.escalations) } else { String::new() },
        detected_at_ms: c.updated_at.0,
        created_ms: created.0,
        case_id: c.case_id.clone(),
    }
}

/// A digest line for a case update held back during an alert storm.
pub fn case_digest_item(c: &CaseRecord) -> DigestItem {
    DigestItem {
        line: format!(
            // One word before the severity: the digest reads the severity as the second word.
            "{} {} case {}: {}",
            case_word(c.status).replace(' ', "_"),
            c.severity,
            c.case_id,
            sanitize::for_terminal(&c.story)
        ),
        detected_at_ms: c.updated_at.0,
        json: sanitize::json_line(c.to_json_line()),
    }
}

/// A digest line for a finding held back during an alert storm.
pub fn digest_item(f: &Finding) -> DigestItem {
    DigestItem {
        line: format!(
            "{} {} {} {}: {}",
            status_word(f.status),
            f.severity,
            f.detector,
            f.incident_id,
            sanitize::for_terminal(&f.summary)
        ),
        detected_at_ms: f.detected_at.0,
        json: sanitize::json_line(f.to_json_line()),
    }
}

/// One notification for many held-back findings.
/// `overflow` counts further updates beyond the digest's item cap, named only by their number.
pub fn render_digest(items: &[DigestItem], overflow: u64, seq: u64, fifo: bool, created: Timestamp) -> Notification {
    let total = items.len() as u64 + overflow;
    let subject = sanitize::for_subject(&format!("[authwatch] DIGEST: {total} incident updates"), MAX_SUBJECT);
    let mut message =
        format!("{total} incident updates arrived faster than the notification limit; they are summarised here.\n\n");
    for it in items.iter().take(DIGEST_LINES) {
        message.push_str(&it.line);
        message.push('\n');
    }
    if total > DIGEST_LINES as u64 {
        message.push_str(&format!(
            "... and {} more (see the findings output)\n",
            total - DIGEST_LINES.min(items.len()) as u64
        ));
    }
    message.push('\n');
    for it in items {
        if message.len() + it.json.len() + 1 > MAX_MESSAGE_BYTES {
            message.push_str("(further finding JSON omitted: see the findings output)\n");
            break;
        }
        message.push_str(&it.json);
        message.push('\n');
    }
    let worst = items.iter().map(|i| i.line.split(' ').nth(1).unwrap_or("low")).max_by_key(|s| severity_rank(s));
    let first = items.iter().map(|i| i.detected_at_ms).min().unwrap_or(0);
    Notification {
        seq,
        subject,
        message,
        detector: "digest".to_string(),
        severity: worst.unwrap_or("low").to_string(),
        group_id: FIFO_GROUP.to_string(),
        dedup_id: if fifo { format!("digest-{seq}-{first}") } else { String::new() },
        detected_at_ms: first,
        created_ms: created.0,
        case_id: String::new(),
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;

    fn finding() -> Finding {
        Finding {
            detector: "failed_login_burst",
            severity: Severity::High,
            user: Some("evil\u{1b}[2J\nname".into()),
            user_sub: None,
            ip: Some("203.0.113.7".into()),
            user_pool_id: None,
            region: None,
            account: None,
            first_seen: Timestamp(1_700_000_000_000),
            last_seen: Timestamp(1_700_000_100_000),
            detected_at: Timestamp(1_700_000_050_000),
            count: 12,
            summary: "12 failed sign-ins".into(),
            evidence: serde_json::json!({}),
            incident_id: "00112233aabbccdd".into(),
            case_id: None,
            rule: "failed_login_burst_user".into(),
            status: Status::Open,
        }
    }

    #[test]
    fn subject_is_short_printable_and_message_holds_the_json() {
        let n = render(&finding(), 1, true, Timestamp(0));
        assert!(n.subject.len() < 100 && n.subject.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{}", n.subject);
        assert!(n.message.starts_with("12 failed sign-ins"));
        assert!(n.message.contains("\"incident_id\":\"00112233aabbccdd\""));
        assert_eq!(n.dedup_id, "00112233aabbccdd-open-high");
        assert_eq!((n.detector.as_str(), n.severity.as_str()), ("failed_login_burst", "high"));
    }

    #[test]
    fn digest_lists_and_rates_the_worst() {
        let items: Vec<DigestItem> = (0..3).map(|_| digest_item(&finding())).collect();
        let n = render_digest(&items, 0, 9, false, Timestamp(0));
        assert!(n.subject.contains("DIGEST: 3"));
        assert_eq!(n.severity, "high");
        assert_eq!(n.message.matches("00112233aabbccdd").count(), 6);
    }
}
