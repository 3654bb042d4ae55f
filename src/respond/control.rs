//! Who owns a state directory's response state, and how operators reach the owner.
//!
//! One process at a time acts on a state directory's blocks: the monitor (for its whole run) or an
//! operator command (`authwatch respond unblock|sync|--from --apply`) while no monitor runs. The owner
//! holds an exclusive lock on `respond.lock` in the directory (released by the system when the process
//! ends, kill -9 included). A command that cannot take it hands its request to the running monitor
//! through `respond-requests.jsonl` (one JSON object a line, appended); the monitor takes the file,
//! applies the requests, checkpoints, and only then deletes it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "respond.lock";
/// Requests for the running monitor.
pub const REQUESTS_FILE: &str = "respond-requests.jsonl";
/// Requests the monitor has taken and not yet checkpointed.
pub const TAKEN_FILE: &str = "respond-requests.taken.jsonl";
/// Requests read from one file at most: a runaway writer cannot make the monitor hold unbounded memory.
pub const MAX_REQUESTS: usize = 100_000;

/// The lock, held while this value lives.
pub struct OwnerLock {
    _file: File,
}

/// Takes the state directory's response lock. `Ok(None)`: another process holds it.
pub fn try_lock(state_dir: &Path) -> std::io::Result<Option<OwnerLock>> {
    std::fs::create_dir_all(state_dir)?;
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(state_dir.join(LOCK_FILE))?;
    #[cfg(unix)]
    {
        use rustix::fs::{flock, FlockOperation};
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(OwnerLock { _file: file }))
}

/// One operator request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// End the block of this address now.
    Unblock(String),
    /// Compare the IP sets with the stored blocks now.
    Sync,
    /// Apply the policy to this finding (a line of `--from`'s input).
    Finding(serde_json::Value),
}

/// Appends requests for the running monitor.
pub fn send(state_dir: &Path, requests: &[Request]) -> std::io::Result<()> {
    let mut text = String::new();
    for r in requests {
        text.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut f = OpenOptions::new().create(true).append(true).open(state_dir.join(REQUESTS_FILE))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// Whether requests wait for the monitor (sent and not yet taken and checkpointed).
pub fn pending(state_dir: &Path) -> bool {
    state_dir.join(REQUESTS_FILE).exists() || state_dir.join(TAKEN_FILE).exists()
}

/// The monitor's side: takes the waiting requests (those of a taking interrupted by a crash first).
/// Lines that are not requests are reported and skipped. The caller deletes [`TAKEN_FILE`] once the
/// checkpoint holding their effect is on disk ([`finish_taking`]).
pub fn take(state_dir: &Path) -> Vec<Request> {
    let (incoming, taken) = (state_dir.join(REQUESTS_FILE), state_dir.join(TAKEN_FILE));
    if !taken.exists() {
        if !incoming.exists() {
            return Vec::new();
        }
        if let Err(e) = std::fs::rename(&incoming, &taken) {
            tracing::warn!(error = %e, "cannot take the operator's response requests");
            return Vec::new();
        }
    }
    read_requests(&taken)
}

fn read_requests(path: &PathBuf) -> Vec<Request> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot read the operator's response requests");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if out.len() >= MAX_REQUESTS {
            tracing::error!(path = %path.display(), "over {MAX_REQUESTS} response requests in one file: the rest are ignored");
            break;
        }
        match serde_json::from_str::<Request>(line) {
            Ok(r) => out.push(r),
            Err(e) => {
                tracing::warn!(path = %path.display(), line = i + 1, error = %e, "not a response request: skipped")
            }
        }
    }
    out
}

/// The requests taken are in a checkpoint on disk: forget them.
pub fn finish_taking(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join(TAKEN_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_and_requests_reach_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = try_lock(dir.path()).unwrap();
        assert!(lock.is_some());
        // flock locks belong to the open file: a second open, as another process's, is refused.
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(lock);
        assert!(try_lock(dir.path()).unwrap().is_some());

        send(dir.path(), &[Request::Unblock("203.0.113.7".into()), Request::Sync]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(REQUESTS_FILE))
            .unwrap()
            .write_all(b"junk\n")
            .unwrap();
        assert!(pending(dir.path()));
        assert_eq!(take(dir.path()), [Request::Unblock("203.0.113.7".into()), Request::Sync]);
        // Not yet checkpointed: a crash now would take them again.
        assert_eq!(take(dir.path()).len(), 2);
        finish_taking(dir.path());
        assert!(!pending(dir.path()));
        assert!(take(dir.path()).is_empty());
    }
}
