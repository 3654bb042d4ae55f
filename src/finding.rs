//! The finding: what a detector reports, in the fixed schema of `detection.md`.
//!
//! Every consumer (standard output, files, SNS, the tests) sees the same object. Field names are fixed;
//! fields may be added, never renamed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            _ => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One incident, as reported. Serialises to exactly the schema of `detection.md` plus the added fields
/// `incident_id`, `rule` and `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The detector id: `failed_login_burst`, `credential_stuffing`, ...
    pub detector: &'static str,
    pub severity: Severity,
    /// The user name when known, else the sub; null for an IP-keyed finding.
    pub user: Option<String>,
    pub user_sub: Option<String>,
    /// The source address (or IPv6 prefix); for a user-keyed finding, the main source address.
    pub ip: Option<String>,
    pub user_pool_id: Option<String>,
    /// The AWS Region the incident's events were logged in (CloudTrail `awsRegion`, or the monitored log
    /// group's), null when unknown: a replicated user pool has one id in several Regions.
    pub region: Option<String>,
    /// The AWS account (CloudTrail `recipientAccountId`), null when the log does not say.
    pub account: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Event time of the event that crossed the threshold.
    pub detected_at: Timestamp,
    pub count: u64,
    pub summary: String,
    pub evidence: serde_json::Value,
    /// Stable id of the incident: the same across escalation updates, replays and restarts.
    pub incident_id: String,
    /// The spec (file in `filters/`) that raised it, e.g. `failed_login_burst_user`.
    pub rule: String,
    /// The case (attack) this finding belongs to (`crate::correlate`): stable like `incident_id`; every
    /// update of one incident carries the same case unless the case merged into an older one, which the
    /// merged case's record names. Null when correlation is off.
    pub case_id: Option<String>,
    /// `open` when the threshold is crossed, `escalated` when severity rises, `closed` when the
    /// incident's window has passed (or the input ended). Replay writes the closed findings.
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Escalated,
    Closed,
}

impl Finding {
    pub fn to_json_line(&self) -> String {
        // Serialising plain data into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
