//! The monitor's checkpoint in `--state-dir`: read positions, the ledger of incident updates already
//! notified or written, and the sinks' own state (the notification spool), saved atomically with a checksum.
//!
//! Files:
//! - `state.json`: the checkpoint. First line `authwatch-state v1 crc32=XXXXXXXX`, then the JSON body.
//!   Written to a temporary file, fsynced, then renamed over the old one (whose previous version is kept as
//!   `state.prev.json`), so a crash leaves either the old or the new checkpoint, never half of one.
//! - `delivered`: the sequence number of the last notification SNS accepted, same framing. Written right
//!   after each publish, so a restart does not send it again.
//!
//! A checkpoint whose checksum does not match is reported (ERROR), kept aside as `*.corrupt` and the
//! previous one is used; when neither is valid the monitor starts afresh from `--backfill`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Status};
use crate::sink::sns::DeliveredMark;
use crate::sink::SavedState;
use crate::time::{Span, Timestamp};

const MAGIC: &str = "authwatch-state v1";
/// Ledger entries recorded longer ago than this (wall clock) may be forgotten, but only once a restart
/// would no longer re-read the events that produced them (see [`Checkpoint::prune_ledger`]).
pub const LEDGER_MAX_AGE: Span = Span(7 * 24 * 3600 * 1000);
/// Hard cap on ledger entries, oldest dropped first: bounded state under an alert storm.
pub const LEDGER_MAX_ENTRIES: usize = 200_000;

/// Read position of one source. Informational only (for an operator reading `state.json`): a restart
/// does not resume from it, see `docs/monitor.md` "Restart".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// Newest event time read from this source, ignoring events stamped in the future.
    pub time_ms: i64,
}

/// Everything the checkpoint holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// Event time up to which every source's events were given to the engine.
    pub watermark_ms: Option<i64>,
    /// Earliest `first_seen` of the incidents open at checkpoint time, and of those closed whose end only
    /// a restart from the watermark would re-read (so that it rebuilds them whole).
    pub earliest_open_ms: Option<i64>,
    pub positions: BTreeMap<String, Position>,
    /// Ledger: `incident_id:status:severity` → wall time (ms) at which the update was notified or written.
    /// (Checkpoints written before this change hold the detection's event time: never later, so such
    /// entries are only pruned sooner than their wall stamp would allow, still behind any re-read.)
    pub ledger: HashMap<String, i64>,
    /// The sinks' own state ([`crate::sink::Sink::saved_state`]: the SNS spool, its sequence and digest),
    /// stored beside the fields above and never read here. Kept as loaded when a sink is not configured
    /// this run, so its state waits for the run that has it.
    #[serde(flatten)]
    pub sinks: SavedState,
}

/// The ledger key of a finding update: notified or written once per incident, status and severity.
pub fn ledger_key(f: &Finding) -> String {
    match f.status {
        Status::Open => format!("{}:open", f.incident_id),
        Status::Escalated => format!("{}:escalated:{}", f.incident_id, f.severity),
        Status::Closed => format!("{}:closed", f.incident_id),
    }
}

/// The ledger key of a case update: `case:ID:STATUS:ESCALATIONS` (each escalation of a case is its own
/// notification).
pub fn case_ledger_key(c: &crate::correlate::CaseRecord) -> String {
    format!("case:{}:{}:{}", c.case_id, c.status.as_str(), c.escalations)
}

impl Checkpoint {
    /// Drops ledger entries recorded (wall clock) before both `now - LEDGER_MAX_AGE` and `resume_from`,
    /// the event time a restart would re-read from now: an update recorded before `resume_from` was
    /// detected from events before it, so no re-read can produce it again. Beyond the cap the oldest go
    /// first (an alert storm must not grow the state without bound).
    pub fn prune_ledger(&mut self, now: Timestamp, resume_from: Option<i64>) {
        let oldest = now.saturating_sub(LEDGER_MAX_AGE).0.min(resume_from.unwrap_or(i64::MAX));
        self.ledger.retain(|_, t| *t >= oldest);
        if self.ledger.len() > LEDGER_MAX_ENTRIES {
            let mut times: Vec<i64> = self.ledger.values().copied().collect();
            times.sort_unstable();
            let cut = times[self.ledger.len() - LEDGER_MAX_ENTRIES];
            self.ledger.retain(|_, t| *t >= cut);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    // The cause is in the message and not also a `source`: shown with its chain (`{:#}`), it printed twice
    // ("…/st: Not a directory (os error 20): Not a directory (os error 20)").
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: corrupt checkpoint: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        fs::create_dir_all(dir).map_err(|error| StateError::Io { path: dir.to_path_buf(), error })?;
        Ok(StateDir { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Loads the checkpoint: `state.json`, else `state.prev.json`, else none. Corrupt files are reported
    /// in the returned warnings and moved aside.
    pub fn load(&self) -> (Option<Checkpoint>, Vec<String>) {
        let mut warnings = Vec::new();
        for name in ["state.json", "state.prev.json"] {
            let path = self.file(name);
            match read_framed(&path) {
                Ok(None) => continue,
                Ok(Some(body)) => match serde_json::from_slice::<Checkpoint>(&body) {
                    Ok(cp) => return (Some(cp), warnings),
                    Err(e) => {
                        warnings.push(format!("{}: unreadable checkpoint: {e}", path.display()));
                        set_aside(&path);
                    }
                },
                Err(e) => {
                    warnings.push(e.to_string());
                    set_aside(&path);
                }
            }
        }
        (None, warnings)
    }

    /// Saves the checkpoint atomically (temp file, fsync, rename, directory fsync).
    pub fn save(&self, cp: &Checkpoint) -> Result<(), StateError> {
        let body =
            serde_json::to_vec(cp).map_err(|e| StateError::Io { path: self.file("state.json"), error: e.into() })?;
        let path = self.file("state.json");
        if path.exists() {
            // Keep the previous good checkpoint: the fallback if this one is ever found corrupt. A hard
            // link costs no copy (the rename below gives `state.json` a new inode); copy where links fail.
            let tmp = self.file("state.prev.json.tmp");
            let _ = fs::remove_file(&tmp);
            let _ = fs::hard_link(&path, &tmp)
                .or_else(|_| fs::copy(&path, &tmp).map(|_| ()))
                .and_then(|_| fs::rename(&tmp, self.file("state.prev.json")));
        }
        write_framed(&path, &body)
    }

    /// The sequence number of the last delivered notification (0 when none).
    pub fn load_delivered(&self) -> (u64, Option<String>) {
        let path = self.file("delivered");
        match read_framed(&path) {
            Ok(None) => (0, None),
            Ok(Some(body)) => match std::str::from_utf8(&body).ok().and_then(|s| s.trim().parse().ok()) {
                Some(n) => (n, None),
                None => (0, Some(format!("{}: unreadable delivered mark", path.display()))),
            },
            Err(e) => (0, Some(e.to_string())),
        }
    }

    pub fn save_delivered(&self, seq: u64) -> Result<(), StateError> {
        write_framed(&self.file("delivered"), seq.to_string().as_bytes())
    }
}

/// The publisher records each accepted notification here.
impl DeliveredMark for StateDir {
    fn save_delivered(&self, seq: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        StateDir::save_delivered(self, seq).map_err(Into::into)
    }
}

fn set_aside(path: &Path) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let _ = fs::rename(path, PathBuf::from(aside));
}

fn read_framed(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StateError::Io { path: path.to_path_buf(), error }),
    };
    let corrupt = |reason: &str| StateError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() };
    let nl = data.iter().position(|b| *b == b'\n').ok_or_else(|| corrupt("no header line"))?;
    let header = std::str::from_utf8(&data[..nl]).map_err(|_| corrupt("header is not text"))?;
    let crc_hex = header
        .strip_prefix(MAGIC)
        .and_then(|r| r.trim().strip_prefix("crc32="))
        .ok_or_else(|| corrupt("bad header"))?;
    let want = u32::from_str_radix(crc_hex, 16).map_err(|_| corrupt("bad checksum field"))?;
    let body = &data[nl + 1..];
    if crc32fast::hash(body) != want {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Some(body.to_vec()))
}

fn write_framed(path: &Path, body: &[u8]) -> Result<(), StateError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{MAGIC} crc32={:08x}", crc32fast::hash(body))?;
        f.write_all(body)?;
        f.sync_all()
    };
    if let Err(source) = write() {
        // A full disk: do not leave a partial temp file holding the space the next attempt needs.
        let _ = fs::remove_file(&tmp);
        return Err(StateError::Io { path: tmp, error: source });
    }
    fs::rename(&tmp, path).map_err(|error| StateError::Io { path: path.to_path_buf(), error })?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_checkpoint_falls_back_to_previous() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        let mut cp = Checkpoint { watermark_ms: Some(1), ..Checkpoint::default() };
        sd.save(&cp).unwrap();
        cp.watermark_ms = Some(2);
        sd.save(&cp).unwrap();
        let p = dir.path().join("state.json");
        let mut data = fs::read(&p).unwrap();
        let last = data.len() - 2;
        data[last] ^= 0x55;
        fs::write(&p, data).unwrap();
        let (loaded, warnings) = sd.load();
        assert_eq!(loaded.unwrap().watermark_ms, Some(1));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("checksum"));
    }

    #[test]
    fn delivered_mark_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        assert_eq!(sd.load_delivered().0, 0);
        sd.save_delivered(42).unwrap();
        assert_eq!(sd.load_delivered().0, 42);
    }

    #[test]
    fn ledger_is_bounded_by_age() {
        let mut cp = Checkpoint::default();
        cp.ledger.insert("old".into(), 0);
        cp.ledger.insert("new".into(), Timestamp::now().0);
        cp.prune_ledger(Timestamp::now(), None);
        assert!(cp.ledger.contains_key("new") && !cp.ledger.contains_key("old"));
    }

    #[test]
    fn ledger_keeps_what_a_restart_would_re_read() {
        let now = Timestamp::now();
        let ten_days_ago = now.0 - 10 * 24 * 3600 * 1000;
        let mut cp = Checkpoint::default();
        cp.ledger.insert("older".into(), ten_days_ago - 1);
        cp.ledger.insert("kept".into(), ten_days_ago + 1);
        // Down for ten days: the restart re-reads from ten days ago, so those entries must stay.
        cp.prune_ledger(now, Some(ten_days_ago));
        assert!(cp.ledger.contains_key("kept") && !cp.ledger.contains_key("older"), "{:?}", cp.ledger);
    }

    #[test]
    fn ledger_keys_tell_updates_apart() {
        let mut f = Finding {
            detector: "failed_login_burst",
            severity: crate::finding::Severity::High,
            user: None,
            user_sub: None,
            ip: None,
            user_pool_id: None,
            region: None,
            account: None,
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            detected_at: Timestamp(0),
            count: 1,
            summary: String::new(),
            evidence: serde_json::json!({}),
            incident_id: "00112233aabbccdd".into(),
            case_id: None,
            rule: "failed_login_burst_user".into(),
            status: Status::Open,
        };
        let open = ledger_key(&f);
        f.status = Status::Escalated;
        let esc = ledger_key(&f);
        f.severity = crate::finding::Severity::Critical;
        assert!(open != esc && esc != ledger_key(&f));
        f.status = Status::Closed;
        assert_eq!(ledger_key(&f), "00112233aabbccdd:closed", "the form `closed_ids_in_output` builds");
    }

    #[test]
    fn the_sinks_state_is_kept_unread_beside_the_checkpoints_fields() {
        let body = r#"{"watermark_ms":5,"earliest_open_ms":null,"positions":{},"spool":[],"next_seq":3,"digest":[],"digest_overflow":0,"ledger":{"a:open":1}}"#;
        let cp: Checkpoint = serde_json::from_str(body).unwrap();
        assert_eq!((cp.watermark_ms, cp.ledger.len()), (Some(5), 1));
        assert_eq!(cp.sinks.keys().collect::<Vec<_>>(), ["digest", "digest_overflow", "next_seq", "spool"]);
        let again: serde_json::Value = serde_json::to_value(&cp).unwrap();
        assert_eq!(again["next_seq"], 3);
        assert_eq!(again["spool"], serde_json::json!([]));
    }

    #[test]
    fn saving_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        for w in 1..=3 {
            sd.save(&Checkpoint { watermark_ms: Some(w), ..Checkpoint::default() }).unwrap();
        }
        fs::remove_file(dir.path().join("state.json")).unwrap();
        assert_eq!(sd.load().0.unwrap().watermark_ms, Some(2));
    }
}
