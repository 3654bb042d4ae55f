//! Findings as JSON lines (one object per line, the schema of `detection.md`) to a file or standard output:
//! closed incidents, and with `--updates` every opening and escalation too. The same writer, made with
//! [`JsonLines::for_cases`], writes case records instead (`--cases FILE`): closed and merged cases, and
//! with `--updates` their openings and escalations.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Flushed, Sink, SinkError};
use crate::correlate::{CaseRecord, CaseStatus};
use crate::finding::{Finding, Status};
use crate::sanitize;

/// Writes findings one per line. Owns its writer; `finish` flushes it (and, for a file, syncs it).
pub struct JsonLines {
    out: BufWriter<Box<dyn Write + Send>>,
    path: Option<PathBuf>,
    pub written: u64,
    /// As a [`Sink`]: also write openings and escalations, not only closed incidents.
    updates: bool,
    /// As a [`Sink`]: written since the last flush.
    unsynced: bool,
    /// As a [`Sink`]: write case records, not findings.
    cases: bool,
}

impl JsonLines {
    /// A file (created or truncated), or standard output when `path` is None or `-`.
    pub fn create(path: Option<&Path>) -> io::Result<JsonLines> {
        let (writer, path): (Box<dyn Write + Send>, Option<PathBuf>) = match path {
            Some(p) if p != Path::new("-") => {
                let f = File::create(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", p.display())))?;
                (Box::new(f), Some(p.to_path_buf()))
            }
            _ => (Box::new(io::stdout()), None),
        };
        Ok(JsonLines {
            out: BufWriter::with_capacity(1 << 16, writer),
            path,
            written: 0,
            updates: false,
            unsynced: false,
            cases: false,
        })
    }

    /// A file opened for appending (created when missing), or standard output for None or `-`. The monitor
    /// appends so that findings written before a restart are kept.
    pub fn append(path: Option<&Path>) -> io::Result<JsonLines> {
        match path {
            Some(p) if p != Path::new("-") => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", p.display())))?;
                Ok(JsonLines {
                    out: BufWriter::with_capacity(1 << 16, Box::new(f)),
                    path: Some(p.to_path_buf()),
                    written: 0,
                    updates: false,
                    unsynced: false,
                    cases: false,
                })
            }
            _ => JsonLines::create(None),
        }
    }

    /// As a [`Sink`], also write incident openings and escalations (`replay --updates`).
    pub fn with_updates(mut self, updates: bool) -> JsonLines {
        self.updates = updates;
        self
    }

    /// As a [`Sink`], write case records (`--cases FILE`) instead of findings.
    pub fn for_cases(mut self) -> JsonLines {
        self.cases = true;
        self
    }

    /// Where the findings go, for error messages: the file's path, or standard output.
    pub fn name(&self) -> String {
        self.path.as_ref().map_or_else(|| "standard output".to_string(), |p| p.display().to_string())
    }

    /// Flushes and, for a file, syncs it to disk: what was written survives a crash.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if let Some(p) = &self.path {
            File::open(p)?.sync_all()?;
        }
        Ok(())
    }

    pub fn write(&mut self, f: &Finding) -> io::Result<()> {
        let line = sanitize::json_line(f.to_json_line());
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.finish_writing()
    }

    fn finish_writing(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if let Some(p) = &self.path {
            // Best effort: the data is flushed; a failed sync on an odd file system is not fatal.
            if let Ok(f) = File::open(p) {
                let _ = f.sync_all();
            }
        }
        Ok(())
    }

    /// A failed write, named with its output.
    fn failed(&self, source: io::Error) -> SinkError {
        SinkError::Write { output: self.name(), source }
    }
}

impl Sink for JsonLines {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        if !self.cases && (self.updates || f.status == Status::Closed) {
            self.write(f).map_err(|e| self.failed(e))?;
            self.unsynced = true;
        }
        Ok(())
    }

    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        let last = matches!(c.status, CaseStatus::Closed | CaseStatus::Merged);
        if self.cases && (self.updates || last) {
            let line = sanitize::json_line(c.to_json_line());
            self.out.write_all(line.as_bytes()).and_then(|()| self.out.write_all(b"\n")).map_err(|e| self.failed(e))?;
            self.written += 1;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Synced to disk: a closed finding written is the record of it having been reported, so the
    /// monitor's checkpoint ledgers it only once it is on disk.
    fn flush(&mut self) -> Result<Flushed, SinkError> {
        if !self.unsynced {
            return Ok(Flushed::Nothing);
        }
        self.sync().map_err(|e| self.failed(e))?;
        self.unsynced = false;
        Ok(Flushed::Delivered)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.finish_writing().map_err(|e| self.failed(e))
    }
}
