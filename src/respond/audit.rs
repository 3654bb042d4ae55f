//! The audit log of every response action: JSON lines appended to one file (never rewritten), each with
//! the time, the case (today the finding's incident id), the action, its target and its result. Also the
//! response's own figures for `/metrics`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::time::Timestamp;

/// The audit log's name in the state directory when the policy names none.
pub const DEFAULT_AUDIT_FILE: &str = "respond-audit.jsonl";

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLine<'a> {
    pub time: String,
    /// The case the action answers: the incident id of the finding (the case id once findings carry one).
    pub case: &'a str,
    /// `block`, `unblock`, `expire`, `evict`, `global_sign_out`, `disable`, `reset_password`, ...
    pub action: &'a str,
    /// The address (as the IP set holds it) or `pool/user`.
    pub target: &'a str,
    /// `ok`, `dry-run`, `failed: ...`, `retrying: ...`.
    pub result: &'a str,
}

/// The append-only log. Each line is written whole with one `write` and flushed; a failure to write is
/// logged at ERROR and counted, never a reason to stop acting.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog { path: path.to_path_buf(), file: Mutex::new(Some(file)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line stamped `now`.
    pub fn write(
        &self,
        now: Timestamp,
        case: &str,
        action: &str,
        target: &str,
        result: &str,
        metrics: &RespondMetrics,
    ) {
        let line = AuditLine { time: now.to_string(), case, action, target, result };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        let written = match self.file.lock() {
            Ok(mut f) => f.as_mut().map(|f| f.write_all(text.as_bytes()).and_then(|_| f.flush())),
            Err(_) => None,
        };
        match written {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = %self.path.display(), error = %e, action, "cannot write the response audit log");
            }
            None => {
                metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Makes what was appended durable (after each write to AWS).
    pub fn sync(&self) {
        if let Ok(f) = self.file.lock() {
            if let Some(f) = f.as_ref() {
                let _ = f.sync_data();
            }
        }
    }
}

/// The response figures (no address or user is ever a label).
#[derive(Debug, Default)]
pub struct RespondMetrics {
    pub blocks_added: AtomicU64,
    pub blocks_removed: AtomicU64,
    /// Blocks not made, or given up, because the IP set was full.
    pub blocks_overflow: AtomicU64,
    /// Findings whose address was not blocked because it is shared (the guard) or allow-listed.
    pub blocks_spared: AtomicU64,
    pub waf_writes: AtomicU64,
    pub waf_lock_conflicts: AtomicU64,
    pub waf_failures: AtomicU64,
    pub contain_done: AtomicU64,
    pub contain_failures: AtomicU64,
    pub audit_failures: AtomicU64,
    /// Addresses authwatch holds in its IP sets now.
    pub blocked: AtomicI64,
    /// Containment actions waiting.
    pub actions_queued: AtomicI64,
}

impl RespondMetrics {
    /// Prometheus text, appended to the monitor's page.
    pub fn render(&self, out: &mut String) {
        let counters: [(&str, &AtomicU64, &str); 10] = [
            ("authwatch_respond_blocks_added_total", &self.blocks_added, "Addresses added to the WAF IP sets."),
            (
                "authwatch_respond_blocks_removed_total",
                &self.blocks_removed,
                "Addresses removed (expired, unblocked, given up).",
            ),
            (
                "authwatch_respond_blocks_overflow_total",
                &self.blocks_overflow,
                "Blocks not made or given up because an IP set was full.",
            ),
            (
                "authwatch_respond_blocks_spared_total",
                &self.blocks_spared,
                "Blocks not made: the address is allow-listed or shared by many users.",
            ),
            ("authwatch_respond_waf_writes_total", &self.waf_writes, "UpdateIPSet calls that succeeded."),
            (
                "authwatch_respond_waf_lock_conflicts_total",
                &self.waf_lock_conflicts,
                "WAFOptimisticLockException answers, retried after a new read.",
            ),
            ("authwatch_respond_waf_failures_total", &self.waf_failures, "Failed WAF calls, retried with back-off."),
            ("authwatch_respond_contain_actions_total", &self.contain_done, "Account containment actions done."),
            ("authwatch_respond_contain_failures_total", &self.contain_failures, "Failed containment attempts."),
            ("authwatch_respond_audit_failures_total", &self.audit_failures, "Audit lines that could not be written."),
        ];
        for (name, v, help) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let gauges: [(&str, &AtomicI64, &str); 2] = [
            ("authwatch_respond_blocked", &self.blocked, "Addresses authwatch holds in its IP sets."),
            ("authwatch_respond_actions_queued", &self.actions_queued, "Containment actions waiting."),
        ];
        for (name, v, help) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_as_json_with_hostile_text_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/audit.jsonl");
        let m = RespondMetrics::default();
        let log = AuditLog::open(&path).unwrap();
        log.write(Timestamp(0), "i1", "block", "203.0.113.7/32", "ok", &m);
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        log.write(Timestamp(1000), "i2", "global_sign_out", "pool/ev\"il\n\u{1b}[2J", "ok", &m);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "appended, not rewritten");
        assert_eq!(lines[0]["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(lines[1]["target"], "pool/ev\"il\n\u{1b}[2J");
        assert!(!text.contains('\u{1b}'), "control characters are escaped in the file");
    }
}
