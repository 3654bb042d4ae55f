//! Live source: follows a local file as it grows (`--follow PATH`), like `tail -F`.
//!
//! Reads whole lines from its offset, at most [`POLL_BYTES`] a poll: a backlog (a large file at start, a
//! writer ahead of the monitor) is sent in batches, polled again at once while more is waiting. When the
//! path names a new file (a different inode: the log was rotated) the rest of the old file is read first,
//! then the new one from its start. When the file shrinks below the offset (truncated in place) reading
//! restarts at its start. A partial last line is held until its newline arrives. A line over
//! [`MAX_LINE_BYTES`] is skipped without being kept and reported as a rejection naming its line. Only after
//! a poll reads to the end of the file does the source tell the monitor it has caught up to the wall time
//! of that poll.
//!
//! On start the file is read from its beginning; the monitor drops events before its start time, so a
//! restart re-reads what it needs (events in an already rotated-away file are not re-read).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::cloudwatch::sleep_or_shutdown;
use super::{LiveRecord, SourceMsg, DEFAULT_MAX_LINE_BYTES};
use crate::event::{FileName, Origin};
use crate::time::Timestamp;

/// Longest line accepted, as for `replay`'s default `--max-line-bytes` (the monitor has no such flag).
pub const MAX_LINE_BYTES: usize = DEFAULT_MAX_LINE_BYTES;
/// Most bytes of the file read in one poll. A poll's lines go to the monitor as one message, and up to
/// `monitor::SOURCE_CHANNEL` (64) messages wait in the channel: so a backlog is read and decoded a
/// megabyte at a time, with about 64 MiB of lines in flight at most, instead of all of it in memory at once.
pub const POLL_BYTES: u64 = 1024 * 1024;
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
    name: FileName,
    open: Option<Open>,
    line: LineBuf,
    poll_bytes: u64,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        Follower::with_bounds(path, MAX_LINE_BYTES, POLL_BYTES)
    }

    /// A follower with other bounds than the defaults (tests use small ones).
    fn with_bounds(path: PathBuf, max_line: usize, poll_bytes: u64) -> Follower {
        let name = FileName::from(path.display().to_string());
        Follower { path, name, open: None, line: LineBuf::new(max_line), poll_bytes: poll_bytes.max(1) }
    }

    /// Reads complete new lines, at most `POLL_BYTES` of the file; handles rotation and truncation. True
    /// when more is waiting (the poll stopped at its bound), false when it read to the end of the file.
    /// Errors (file missing for now) are returned for the caller to report; the follower keeps its place.
    pub fn poll(&mut self, out: &mut Vec<LiveRecord>) -> io::Result<bool> {
        let mut budget = self.poll_bytes;
        loop {
            if self.open.is_none() {
                let file = File::open(&self.path)?;
                let inode = file.metadata()?.ino();
                self.open = Some(Open { file, inode, offset: 0, line: 0 });
                self.line.clear();
            }
            if self.read_available(&mut budget, out)? {
                return Ok(true);
            }
            let path_meta = match std::fs::metadata(&self.path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            let Some(open) = self.open.as_mut() else { return Ok(false) };
            if path_meta.ino() != open.inode {
                // Rotation: the path now names another file. The old one was read to its end above; its
                // last line without a newline is still a line. Switch.
                if !self.line.is_empty() {
                    open.line += 1;
                    self.line.finish(&self.name, open.line, out);
                }
                self.open = None;
                continue;
            }
            if path_meta.len() < open.offset {
                // Truncation: the same file is now shorter than what was read.
                open.file.seek(SeekFrom::Start(0))?;
                open.offset = 0;
                open.line = 0;
                self.line.clear();
                continue;
            }
            return Ok(false);
        }
    }

    /// Reads the open file from its offset, taking the bytes read from `budget`. True when it stopped
    /// because the budget ran out with more of the file waiting; false at the end of the file.
    fn read_available(&mut self, budget: &mut u64, out: &mut Vec<LiveRecord>) -> io::Result<bool> {
        let Some(open) = self.open.as_mut() else { return Ok(false) };
        let mut buf = vec![0u8; CHUNK];
        loop {
            if *budget == 0 {
                return Ok(open.file.metadata()?.len() > open.offset);
            }
            let want = (*budget).min(CHUNK as u64) as usize;
            let n = match open.file.read(&mut buf[..want]) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            *budget -= n as u64;
            open.offset += n as u64;
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                self.line.push(&rest[..i]);
                open.line += 1;
                self.line.finish(&self.name, open.line, out);
                rest = &rest[i + 1..];
            }
            self.line.push(rest);
        }
    }
}

/// The line being read, across chunks and polls. Its bytes are kept only while it can still be within
/// the limit; beyond it they are counted and dropped, so an over-long line costs no memory and becomes one
/// rejection, never a record pieced together from its head and its tail.
struct LineBuf {
    kept: Vec<u8>,
    /// The line's length so far, kept or not.
    len: u64,
    /// The last byte so far was `\r`: with the newline it is the line ending, which the limit leaves out.
    ends_cr: bool,
    max: usize,
}

impl LineBuf {
    fn new(max: usize) -> LineBuf {
        LineBuf { kept: Vec::new(), len: 0, ends_cr: false, max }
    }

    fn push(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        self.len += bytes.len() as u64;
        self.ends_cr = last == b'\r';
        // One byte more than the limit may be the `\r` of a CRLF ending.
        if self.len <= self.max as u64 + 1 {
            self.kept.extend_from_slice(bytes);
        } else {
            self.kept = Vec::new();
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        *self = LineBuf::new(self.max);
    }

    /// Ends the line: a record, a rejection when it is over the limit, nothing when it is blank.
    fn finish(&mut self, name: &FileName, line: u64, out: &mut Vec<LiveRecord>) {
        let len = self.len - u64::from(self.ends_cr);
        let bytes = std::mem::take(&mut self.kept);
        self.clear();
        let origin = Origin::new(name.clone(), line);
        if len > self.max as u64 {
            // The offline reader's wording, without its flag.
            let reason = format!("line is {len} bytes, over the limit of {}", self.max);
            out.push(LiveRecord::rejected(origin, reason));
        } else if !bytes.iter().all(u8::is_ascii_whitespace) {
            out.push(LiveRecord { bytes, origin, ingest_delay_ms: None, rejected: None });
        }
    }
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
            (follower, r.map(|more| (records, more)))
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
            Ok((records, more)) => {
                reported = false;
                let newest_ms = None;
                if !records.is_empty() && tx.send(SourceMsg::Records { source, records, newest_ms }).await.is_err() {
                    return;
                }
                if more {
                    // A backlog: the next batch at once, and no "caught up" until the end of the file.
                    if *shutdown.borrow() {
                        return;
                    }
                    continue;
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

    /// Each record as `line: text` (a long one clipped, so a failure stays readable), or
    /// `line: rejected: reason`.
    fn located(out: &[LiveRecord]) -> Vec<String> {
        let text = |b: &[u8]| match b.len() {
            0..=80 => String::from_utf8_lossy(b).into_owned(),
            n => format!("{}…{} ({n} bytes)", String::from_utf8_lossy(&b[..40]), String::from_utf8_lossy(&b[n - 20..])),
        };
        out.iter()
            .map(|r| match &r.rejected {
                Some(reason) => format!("{}: rejected: {reason}", r.origin.line),
                None => format!("{}: {}", r.origin.line, text(&r.bytes)),
            })
            .collect()
    }

    /// Polls until a poll reaches the end of the file; returns every record and what each poll reported.
    fn drain(f: &mut Follower) -> (Vec<LiveRecord>, Vec<bool>) {
        let (mut out, mut more) = (Vec::new(), Vec::new());
        loop {
            let m = f.poll(&mut out).unwrap();
            more.push(m);
            if !m {
                return (out, more);
            }
            assert!(more.len() < 10_000, "never reaches the end");
        }
    }

    fn append(path: &std::path::Path, bytes: &[u8]) {
        std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
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
        append(&p, b"o\nthree\n");
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

    #[test]
    fn a_backlog_larger_than_a_poll_comes_out_in_several_polls_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        // About 2.6 polls' worth of 1 KB lines.
        let line = |i: usize| format!("{i:06} {}", "x".repeat(1017));
        let n = (POLL_BYTES as usize * 26 / 10) / 1025;
        let text: String = (0..n).map(|i| line(i) + "\n").collect();
        std::fs::write(&p, &text).unwrap();
        let mut f = Follower::new(p.clone());
        let mut polls = Vec::new();
        loop {
            let mut out = Vec::new();
            let more = f.poll(&mut out).unwrap();
            // A poll also sends the line it finishes that the previous one began.
            let bytes: usize = out.iter().map(|r| r.bytes.len() + 1).sum();
            assert!(bytes as u64 <= POLL_BYTES + 1025, "a poll sent {bytes} bytes");
            polls.push((out, more));
            if !more {
                break;
            }
        }
        assert_eq!(polls.iter().map(|(_, more)| *more).collect::<Vec<_>>(), [true, true, false]);
        let got: Vec<LiveRecord> = polls.into_iter().flat_map(|(out, _)| out).collect();
        assert_eq!(lines(&got), (0..n).map(line).collect::<Vec<_>>());
        assert!(got.iter().enumerate().all(|(i, r)| r.origin.line == i as u64 + 1));
        // Caught up: nothing more until the writer adds some.
        let mut out = Vec::new();
        assert!(!f.poll(&mut out).unwrap());
        assert!(out.is_empty());
        append(&p, b"late\n");
        assert!(!f.poll(&mut out).unwrap());
        assert_eq!(lines(&out), ["late"]);
    }

    #[test]
    fn more_is_waiting_only_while_the_file_has_unread_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        // 40 bytes in polls of 10: the fourth poll ends exactly at the end of the file and says so.
        std::fs::write(&p, "aaaaaaa\nbbbbbbb\nccccccc\nddddddd\neeeeeee\n").unwrap();
        let mut f = Follower::with_bounds(p.clone(), MAX_LINE_BYTES, 10);
        let (out, more) = drain(&mut f);
        assert_eq!(more, [true, true, true, false]);
        assert_eq!(lines(&out), ["aaaaaaa", "bbbbbbb", "ccccccc", "ddddddd", "eeeeeee"]);
    }

    #[test]
    fn a_rotated_files_rest_is_read_first_even_over_several_polls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "one\n").unwrap();
        let mut f = Follower::with_bounds(p.clone(), MAX_LINE_BYTES, 10);
        assert_eq!(lines(&drain(&mut f).0), ["one"]);
        let mut old = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        old.write_all(b"two\nthree\nfour\nlast-without-newline").unwrap();
        std::fs::write(&p, "five\nsix\n").unwrap();
        let (out, more) = drain(&mut f);
        assert_eq!(lines(&out), ["two", "three", "four", "last-without-newline", "five", "six"]);
        assert_eq!(more, [true, true, true, true, false]);
        assert_eq!(out.iter().map(|r| r.origin.line).collect::<Vec<_>>(), [2, 3, 4, 5, 1, 2]);
    }

    /// What a file of a good line, an over-long one and another good line must give, however it is read.
    fn assert_one_rejection_between(out: &[LiveRecord], len: usize, max: usize) {
        assert_eq!(
            located(out),
            [
                "1: {\"good\":1}".to_string(),
                format!("2: rejected: line is {len} bytes, over the limit of {max}"),
                "3: {\"good\":2}".to_string(),
            ]
        );
        assert!(out[1].origin.file.ends_with("a.log"), "{}", out[1].origin);
    }

    /// An over-long line (at least 26 bytes) whose tail alone is valid JSON: a record pieced together from
    /// its head and its tail would decode.
    fn overlong(len: usize) -> Vec<u8> {
        let tail = b"\"}{\"spliced\":true}";
        let mut line = b"{\"pad\":\"".to_vec();
        line.resize(len - tail.len(), b'x');
        line.extend_from_slice(tail);
        line
    }

    fn file_with(dir: &std::path::Path, middle: &[u8]) -> PathBuf {
        let p = dir.join("a.log");
        let mut text = b"{\"good\":1}\n".to_vec();
        text.extend_from_slice(middle);
        text.extend_from_slice(b"\n{\"good\":2}\n");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_overlong_line_spanning_many_chunks_is_one_rejection_not_a_spliced_record() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * MAX_LINE_BYTES + 12_345;
        let p = file_with(dir.path(), &overlong(len));
        let (out, more) = drain(&mut Follower::new(p));
        assert!(more.len() > 3, "read over several polls: {more:?}");
        assert_one_rejection_between(&out, len, MAX_LINE_BYTES);
    }

    #[test]
    fn an_overlong_line_ending_on_a_chunk_boundary_is_one_rejection() {
        // The first line is 11 bytes with its newline: the over-long line's newline falls on the first,
        // then on the last byte of a chunk.
        for newline_at in [17 * CHUNK, 17 * CHUNK - 1] {
            let dir = tempfile::tempdir().unwrap();
            let len = newline_at - 11;
            let p = file_with(dir.path(), &overlong(len));
            let (out, _) = drain(&mut Follower::new(p));
            assert_one_rejection_between(&out, len, MAX_LINE_BYTES);
        }
    }

    #[test]
    fn an_overlong_line_is_one_rejection_wherever_the_reads_split_it() {
        // Reads of every size from 1 byte: the chunk boundary falls everywhere in and around the line.
        let max = 32;
        let dir = tempfile::tempdir().unwrap();
        for len in [max + 1, max + 2, 3 * max + 5] {
            for poll_bytes in 1..=3 * max as u64 + 20 {
                let p = file_with(dir.path(), &overlong(len));
                let (out, _) = drain(&mut Follower::with_bounds(p, max, poll_bytes));
                assert_one_rejection_between(&out, len, max);
            }
        }
    }

    #[test]
    fn a_line_at_the_limit_is_kept_and_its_crlf_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let at_limit = format!("{{\"a\":\"{}\"}}", "x".repeat(8));
        assert_eq!(at_limit.len(), 16);
        std::fs::write(&p, format!("{at_limit}\n{at_limit}\r\n{at_limit}x\r\n")).unwrap();
        let (out, _) = drain(&mut Follower::with_bounds(p, 16, 5));
        assert_eq!(
            located(&out),
            [
                format!("1: {at_limit}"),
                format!("2: {at_limit}\r"),
                "3: rejected: line is 17 bytes, over the limit of 16".to_string(),
            ]
        );
    }

    #[test]
    fn a_rotated_files_overlong_last_line_is_a_rejection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "").unwrap();
        let mut f = Follower::with_bounds(p.clone(), 16, 7);
        drain(&mut f);
        let mut old = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        old.write_all(b"{\"good\":1}\n").unwrap();
        old.write_all(&overlong(40)).unwrap();
        std::fs::write(&p, "{\"good\":3}\n").unwrap();
        let (out, _) = drain(&mut f);
        assert_eq!(
            located(&out),
            ["1: {\"good\":1}", "2: rejected: line is 40 bytes, over the limit of 16", "1: {\"good\":3}"]
        );
    }
}
