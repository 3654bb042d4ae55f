//! Live source: follows a local file as it grows (`--follow PATH`), like `tail -F`.
//!
//! Reads whole lines from its offset every poll. When the path names a new file (a different inode: the
//! log was rotated) the rest of the old file is read first, then the new one from its start. When the file
//! shrinks below the offset (truncated in place) reading restarts at its start. A partial last line is
//! held until its newline arrives. After reading to the end, the source tells the monitor it has caught
//! up to the wall time of that read.
//!
//! On start the file is read from its beginning; the monitor drops events before its start time, so a
//! restart re-reads what it needs (events in an already rotated-away file are not re-read).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::cloudwatch::sleep_or_shutdown;
use super::{LiveRecord, SourceMsg};
use crate::event::Origin;
use crate::time::Timestamp;

/// Longest line kept; a longer one is dropped (counted as rejected by the decoder as an empty record).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Bytes read per call.
const CHUNK: usize = 64 * 1024;

/// An open file being followed.
struct Open {
    file: File,
    inode: u64,
    offset: u64,
    line: u64,
}

/// Follows one path. Blocking file reads are short (one chunk) and run on the runtime's blocking pool.
pub struct Follower {
    path: PathBuf,
    name: Arc<str>,
    open: Option<Open>,
    partial: Vec<u8>,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        let name: Arc<str> = Arc::from(path.display().to_string());
        Follower { path, name, open: None, partial: Vec::new() }
    }

    /// Reads every complete new line; handles rotation and truncation. Errors (file missing for now) are
    /// returned for the caller to report; the follower keeps its place.
    pub fn poll(&mut self, out: &mut Vec<LiveRecord>) -> io::Result<()> {
        if self.open.is_none() {
            let file = File::open(&self.path)?;
            let inode = file.metadata()?.ino();
            self.open = Some(Open { file, inode, offset: 0, line: 0 });
            self.partial.clear();
        }
        self.read_available(out)?;
        // Rotation: the path now names another file. Finish the old one (done above), switch.
        let path_meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        if path_meta.ino() != open.inode {
            self.flush_partial(out);
            self.open = None;
            return self.poll(out);
        }
        // Truncation: the same file is now shorter than what was read.
        if path_meta.len() < open.offset {
            open.file.seek(SeekFrom::Start(0))?;
            open.offset = 0;
            open.line = 0;
            self.partial.clear();
            self.read_available(out)?;
        }
        Ok(())
    }

    fn read_available(&mut self, out: &mut Vec<LiveRecord>) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = open.file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            open.offset += n as u64;
            let mut start = 0;
            for (i, b) in buf[..n].iter().enumerate() {
                if *b == b'\n' {
                    self.partial.extend_from_slice(&buf[start..i]);
                    open.line += 1;
                    emit(&mut self.partial, &self.name, open.line, out);
                    start = i + 1;
                }
            }
            if self.partial.len() + (n - start) <= MAX_LINE_BYTES {
                self.partial.extend_from_slice(&buf[start..n]);
            }
        }
    }

    /// A rotated file's last line without a newline is still a line.
    fn flush_partial(&mut self, out: &mut Vec<LiveRecord>) {
        if let Some(open) = self.open.as_mut() {
            if !self.partial.is_empty() {
                open.line += 1;
                emit(&mut self.partial, &self.name, open.line, out);
            }
        }
    }
}

fn emit(partial: &mut Vec<u8>, name: &Arc<str>, line: u64, out: &mut Vec<LiveRecord>) {
    let bytes = std::mem::take(partial);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return;
    }
    out.push(LiveRecord { bytes, origin: Origin::new(name.clone(), line), ingest_delay_ms: None });
}

/// Runs until shutdown is signalled or the monitor stops listening.
pub async fn run(
    path: PathBuf,
    poll: Duration,
    source: usize,
    tx: mpsc::Sender<SourceMsg>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut follower = Follower::new(path.clone());
    let mut reported = false;
    loop {
        let started = Timestamp::now().0;
        let mut records = Vec::new();
        let (f, result) = match tokio::task::spawn_blocking(move || {
            let r = follower.poll(&mut records);
            (follower, r.map(|_| records))
        })
        .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "file reader task failed");
                return;
            }
        };
        follower = f;
        match result {
            Ok(records) => {
                reported = false;
                let newest_ms = None;
                if !records.is_empty() && tx.send(SourceMsg::Records { source, records, newest_ms }).await.is_err() {
                    return;
                }
                if tx.send(SourceMsg::CaughtUp { source, until_ms: started }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if !reported {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the followed file; waiting for it");
                    reported = true;
                }
                let reason = format!("{}: {e}", path.display());
                if tx.send(SourceMsg::Failing { source, reason }).await.is_err() {
                    return;
                }
            }
        }
        if sleep_or_shutdown(poll, &mut shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(out: &[LiveRecord]) -> Vec<String> {
        out.iter().map(|r| String::from_utf8_lossy(&r.bytes).into_owned()).collect()
    }

    #[test]
    fn survives_partial_lines_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "one\ntw").unwrap();
        let mut f = Follower::new(p.clone());
        let mut out = Vec::new();
        f.poll(&mut out).unwrap();
        assert_eq!(lines(&out), ["one"]);
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"o\nthree\n").unwrap();
        out.clear();
        f.poll(&mut out).unwrap();
        assert_eq!(lines(&out), ["two", "three"]);
        // Rotation: old file renamed, gets a last line; a new file appears.
        let mut old = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        old.write_all(b"four\n").unwrap();
        std::fs::write(&p, "five\n").unwrap();
        out.clear();
        f.poll(&mut out).unwrap();
        assert_eq!(lines(&out), ["four", "five"]);
        // Truncation in place.
        std::fs::write(&p, "").unwrap();
        f.poll(&mut Vec::new()).unwrap();
        std::fs::write(&p, "six\n").unwrap();
        out.clear();
        f.poll(&mut out).unwrap();
        assert_eq!(lines(&out), ["six"]);
    }
}
