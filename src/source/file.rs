//! Reads a file or standard input as records: JSON lines or one whole document, plain or gzip.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::{Batch, BufferPool, Input, Limits, RawRecord, ReadItem, SourceError};
use crate::decode::Rejection;
use crate::event::{FileName, Origin};

/// Read buffer size: large enough that a line rarely spans two reads.
const BUFFER_BYTES: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Reads one input as a sequence of records: gzip (magic bytes, not the extension) is decompressed
/// transparently (also multi-member gzip); a file whose content is a single JSON document spanning lines
/// (first non-blank line is not a complete JSON value, starts with { or [) is read whole, up to
/// max_document_bytes, as one record; otherwise each non-blank line is a record (CRLF ok, BOM ok).
/// A first line that starts with { or [ and is over max_line_bytes is also read as a document: that is
/// how CloudTrail writes its S3 files.
/// A line over max_line_bytes is rejected WITHOUT buffering it (skip to the next newline) with a Rejection
/// "line is N bytes, over the limit of M (--max-line-bytes)". A read or gzip error (truncated/corrupt gzip)
/// yields one Rejection naming the file and line reached, then the reader ends.
pub struct RecordReader {
    name: FileName,
    /// The input (decompressed when gzip), buffered: [`RecordReader::next_batch_into`] hands the buffer
    /// itself to the batch holding its lines.
    reader: ReadBuffer,
    consumed: Arc<AtomicU64>,
    limits: Limits,
    /// Lines read so far; the next line is `line + 1`.
    line: u64,
    state: State,
    buf: Vec<u8>,
    /// Records split out of a would-be document that turned out not to be one.
    pending: std::collections::VecDeque<ReadItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but blank lines read yet: the first record decides lines or document.
    Start,
    Lines,
    Done,
}

/// What the reader read next: a line (in `buf`, with its number), or an item of its own.
enum Next {
    Line(u64),
    Item(ReadItem),
}

/// One line as read, without its line ending.
enum Line {
    /// In `buf`.
    Fits,
    /// Over the limit. `buf` holds the `seen` bytes read; unless `complete`, the rest of the line is
    /// still unread.
    TooLong {
        seen: u64,
        complete: bool,
    },
    Eof,
}

impl RecordReader {
    /// Opens the input; a file that cannot be opened is an error naming its path.
    pub fn open(input: &Input, limits: Limits) -> Result<RecordReader, SourceError> {
        let raw: Box<dyn Read + Send> = match input {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(path) => Box::new(File::open(path).map_err(|e| SourceError::io(path, e))?),
        };
        RecordReader::from_read(&input.display_name(), raw, limits).map_err(|e| match input {
            Input::File(path) => SourceError::io(path, e),
            Input::Stdin => SourceError::io("-".as_ref(), e),
        })
    }

    /// Reads records from any byte stream, named `name` in origins (tests, fuzzing, other sources). Fails
    /// only if the first two bytes cannot be read.
    pub fn from_read(name: &str, raw: Box<dyn Read + Send>, limits: Limits) -> io::Result<RecordReader> {
        let consumed = Arc::new(AtomicU64::new(0));
        let mut counting = Counting { inner: raw, count: consumed.clone() };
        let head = read_head(&mut counting)?;
        let is_gzip = head == GZIP_MAGIC;
        let plain = Cursor::new(head).chain(counting);
        let inner: Box<dyn Read + Send> =
            if is_gzip { Box::new(MultiGzDecoder::new(BufReader::new(plain))) } else { Box::new(plain) };
        let reader = ReadBuffer::new(inner);
        Ok(RecordReader {
            name: name.into(),
            reader,
            consumed,
            limits,
            line: 0,
            state: State::Start,
            buf: Vec::new(),
            pending: Default::default(),
        })
    }

    /// The file path as shown, or `<stdin>`.
    pub fn name(&self) -> &FileName {
        &self.name
    }

    /// Raw bytes consumed from the file (compressed bytes for gzip), for progress.
    pub fn bytes_read(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Appends up to `max` items; returns false at end of input (the items appended by that call are
    /// still to be used).
    pub fn next_batch(&mut self, max: usize, out: &mut Vec<ReadItem>) -> bool {
        for _ in 0..max {
            match self.next_item() {
                Some(item) => out.push(item),
                None => return false,
            }
        }
        self.state != State::Done
    }

    /// As [`next_batch`](Self::next_batch), into a [`Batch`], and stopping too once the batch holds
    /// `max_bytes` or more of records, so a batch of long lines stays small. Lines whole in the read
    /// buffer stay where the kernel put them: the batch takes the buffer itself once no whole line is
    /// left in it (and reading goes on in another), so a line of a plain export is never copied again.
    /// The batch then ends there, short of `max` and `max_bytes`.
    pub fn next_batch_into(&mut self, max: usize, max_bytes: usize, out: &mut Batch) -> bool {
        let mut taken = 0;
        // Where the batch's lines in the read buffer start, once it has some.
        let mut first = None;
        while taken < max {
            let (pushed, full) = self.buffered_lines(max - taken, max_bytes, out, &mut first);
            taken += pushed;
            if full || taken == max {
                break;
            }
            if first.is_some() {
                // No whole line is left in the buffer (or the next one is over the limit): the batch takes
                // the buffer, and reading goes on in a fresh one.
                out.take_block(self.reader.hand_over(), self.reader.pool.clone());
                if self.reader.at_end() {
                    self.state = State::Done;
                }
                return self.state != State::Done;
            }
            // A line that is not whole in the buffer, or anything else: one item the general way.
            match self.next_read() {
                Some(Next::Line(number)) => {
                    let origin = self.origin(number);
                    out.push_line(&self.buf, origin);
                }
                Some(Next::Item(item)) => out.push(item),
                None => return false,
            }
            taken += 1;
            if out.record_bytes() >= max_bytes {
                break;
            }
        }
        if let Some(start) = first {
            // Stopped at `max` or `max_bytes` with whole lines still in the buffer, which the next batch
            // needs: this one gets a copy of its own lines.
            out.copy_block(&self.reader.buf[start..self.reader.pos], start);
        }
        self.state != State::Done
    }

    /// Adds to `out`, as places in the read buffer, the lines already whole in it, up to `room` of them,
    /// exactly as [`next_read`](Self::next_read) would read them one by one: without their line ending,
    /// blank ones skipped, numbered. Stops at a line that is not whole in the buffer or is over the limit
    /// (the general way reads or rejects those), and once `out` holds `max_bytes`; returns the lines added
    /// and whether that budget was reached. `first` is set to where the first line added starts.
    fn buffered_lines(
        &mut self,
        room: usize,
        max_bytes: usize,
        out: &mut Batch,
        first: &mut Option<usize>,
    ) -> (usize, bool) {
        if self.state != State::Lines || !self.pending.is_empty() {
            return (0, false);
        }
        let max = self.limits.max_line_bytes;
        let base = self.reader.pos;
        let buffered = self.reader.buffer();
        let (mut used, mut pushed, mut number, mut full) = (0, 0, self.line, false);
        while pushed < room {
            let rest = &buffered[used..];
            let Some(end) = memchr::memchr(b'\n', rest) else { break };
            let line = &rest[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max {
                break;
            }
            let start = base + used;
            used += end + 1;
            number += 1;
            if is_blank(line) {
                continue;
            }
            first.get_or_insert(start);
            out.push_block_line(start, start + line.len(), Origin::new(self.name.clone(), number));
            pushed += 1;
            if out.record_bytes() >= max_bytes {
                full = true;
                break;
            }
        }
        self.line = number;
        self.reader.consume(used);
        (pushed, full)
    }

    fn next_item(&mut self) -> Option<ReadItem> {
        Some(match self.next_read()? {
            // A copy of exactly the line's length: `buf` keeps its capacity for the next line, rather
            // than each line growing a new buffer from nothing (measured: a tenth of the reader's time
            // went to those reallocations).
            Next::Line(number) => ReadItem::Record(RawRecord { bytes: self.buf.clone(), origin: self.origin(number) }),
            Next::Item(item) => item,
        })
    }

    /// The next line (left in `buf`) or item, `None` at the end.
    fn next_read(&mut self) -> Option<Next> {
        if let Some(item) = self.pending.pop_front() {
            return Some(Next::Item(item));
        }
        loop {
            if self.state == State::Done {
                return None;
            }
            let line = match self.read_line() {
                Ok(line) => line,
                Err(e) => return Some(Next::Item(self.fail(self.line + 1, e))),
            };
            let number = self.line;
            match line {
                Line::Eof => {
                    self.state = State::Done;
                    return None;
                }
                Line::Fits if is_blank(&self.buf) => continue,
                Line::Fits | Line::TooLong { .. } if self.state == State::Start && self.starts_document(&line) => {
                    self.state = State::Done;
                    let complete = !matches!(line, Line::TooLong { complete: false, .. });
                    let item = self.read_document(number, complete);
                    return Some(Next::Item(self.document_or_lines(item)));
                }
                Line::Fits => {
                    self.state = State::Lines;
                    return Some(Next::Line(number));
                }
                Line::TooLong { seen, complete } => {
                    self.state = State::Lines;
                    self.buf = Vec::new();
                    let rest = if complete { Ok(0) } else { skip_line(&mut self.reader) };
                    let total = match rest {
                        Ok(n) => seen + n,
                        Err(e) => return Some(Next::Item(self.fail(number, e))),
                    };
                    let reason = format!(
                        "line is {total} bytes, over the limit of {} (--max-line-bytes)",
                        self.limits.max_line_bytes
                    );
                    return Some(Next::Item(ReadItem::Rejected(Rejection::new(&self.origin(number), reason))));
                }
            }
        }
    }

    /// Reads the next line into `buf` without its `\n` or `\r\n` (and, on line 1, without a BOM).
    /// Reads at most `max_line_bytes + 2` bytes of it, so a long line is never buffered whole.
    fn read_line(&mut self) -> io::Result<Line> {
        self.buf.clear();
        let max = self.limits.max_line_bytes;
        let n = read_until_newline(&mut self.reader, &mut self.buf, max.saturating_add(2))?;
        if n == 0 {
            return Ok(Line::Eof);
        }
        self.line += 1;
        let complete = self.buf.last() == Some(&b'\n');
        if complete {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        if self.line == 1 && self.buf.starts_with(UTF8_BOM) {
            self.buf.drain(..UTF8_BOM.len());
        }
        if self.buf.len() > max {
            return Ok(Line::TooLong { seen: self.buf.len() as u64, complete });
        }
        Ok(Line::Fits)
    }

    /// Whether the first non-blank line opens a JSON document that spans lines (or is too long to be a
    /// line record).
    fn starts_document(&self, line: &Line) -> bool {
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(self.buf.len());
        let head = &self.buf[start..];
        let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
        if !matches!(head.first(), Some(b'{' | b'[')) {
            return false;
        }
        match line {
            Line::TooLong { .. } => true,
            _ => serde_json::from_slice::<serde::de::IgnoredAny>(head).is_err_and(|e| e.is_eof()),
        }
    }

    /// Reads the rest of the input onto the first line, as one record of at most `max_document_bytes`.
    fn read_document(&mut self, start_line: u64, head_complete: bool) -> ReadItem {
        let mut doc = std::mem::take(&mut self.buf);
        if head_complete {
            doc.push(b'\n');
        }
        let max = self.limits.max_document_bytes as u64;
        let room = (max + 1).saturating_sub(doc.len() as u64);
        let read = (&mut self.reader).take(room).read_to_end(&mut doc);
        let reached = start_line + doc.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Err(e) = read {
            return self.fail(reached, e);
        }
        if doc.len() as u64 > max {
            let reason = format!("document is over the limit of {max} bytes (--max-document-bytes)");
            return ReadItem::Rejected(Rejection::new(&self.origin(start_line), reason));
        }
        ReadItem::Record(RawRecord { bytes: doc, origin: self.origin(start_line) })
    }

    /// A document that does not parse as JSON was probably JSON lines whose first line is broken (cut
    /// short): rather than reject the whole file as one record, read it as lines, so only the broken
    /// lines are rejected and the rest is still processed.
    fn document_or_lines(&mut self, item: ReadItem) -> ReadItem {
        let ReadItem::Record(doc) = item else { return item };
        let valid =
            serde_json::Deserializer::from_slice(&doc.bytes).into_iter::<serde::de::IgnoredAny>().all(|v| v.is_ok());
        if valid {
            return ReadItem::Record(doc);
        }
        let max = self.limits.max_line_bytes;
        for (i, line) in doc.bytes.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if is_blank(line) {
                continue;
            }
            let origin = self.origin(doc.origin.line + i as u64);
            self.pending.push_back(if line.len() > max {
                let reason = format!("line is {} bytes, over the limit of {max} (--max-line-bytes)", line.len());
                ReadItem::Rejected(Rejection::new(&origin, reason))
            } else {
                ReadItem::Record(RawRecord { bytes: line.to_vec(), origin })
            });
        }
        self.state = State::Lines;
        self.pending.pop_front().unwrap_or(ReadItem::Record(doc))
    }

    /// A read error ends the input: report where it happened.
    fn fail(&mut self, line: u64, e: io::Error) -> ReadItem {
        self.state = State::Done;
        let what = match e.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                "input ends early or is corrupt (truncated gzip?)"
            }
            _ => "read error",
        };
        ReadItem::Rejected(Rejection::new(&self.origin(line), format!("{what}: {e}; stopped reading here")))
    }

    fn origin(&self, line: u64) -> Origin {
        Origin::new(self.name.clone(), line)
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Consumes input up to and including the next newline; returns the length of the line's rest
/// without its `\n` or `\r\n`.
fn skip_line(reader: &mut dyn BufRead) -> io::Result<u64> {
    let mut skipped = 0u64;
    let mut last = None;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(skipped);
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let before = if i > 0 { Some(chunk[i - 1]) } else { last };
                reader.consume(i + 1);
                let cr = u64::from(before == Some(b'\r'));
                return Ok(skipped + i as u64 - cr);
            }
            None => {
                let n = chunk.len();
                skipped += n as u64;
                last = chunk.last().copied();
                reader.consume(n);
            }
        }
    }
}

/// Appends input to `buf` up to and including the next newline, at most `limit` bytes; returns how many
/// it appended (0 at end of input). `BufRead::read_until` through `take`, with the newline found by
/// `memchr` (SIMD) instead of a byte loop: the reader thread's share of `--decode-only` was measured.
fn read_until_newline(reader: &mut dyn BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    let mut read = 0;
    while read < limit {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &chunk[..chunk.len().min(limit - read)];
        if chunk.is_empty() {
            break;
        }
        let (n, newline) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        buf.extend_from_slice(&chunk[..n]);
        reader.consume(n);
        read += n;
        if newline {
            break;
        }
    }
    Ok(read)
}

/// Reads the first two bytes (fewer at end of input) to look for the gzip magic.
fn read_head(reader: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(2);
    reader.take(2).read_to_end(&mut head)?;
    Ok(head)
}

/// The input's read buffer: a `BufRead` for the general way of reading, whose filled buffer a batch can
/// also take whole ([`ReadBuffer::hand_over`]) once its lines are in that batch. The reader thread then
/// copies nothing: before, each line went from a `BufReader`'s buffer into the batch's (that copy, and
/// the writes into a fresh batch buffer, were a fifth of the reader thread's time in `--decode-only`).
struct ReadBuffer {
    inner: Box<dyn Read + Send>,
    /// [`BUFFER_BYTES`] long, every byte initialised (`read` takes initialised memory).
    buf: Vec<u8>,
    /// `buf[pos..filled]` is read and not yet consumed.
    pos: usize,
    filled: usize,
    /// An error met reading ahead in [`hand_over`](Self::hand_over), for the next `fill_buf` to return.
    error: Option<io::Error>,
    /// The input ended (a read returned nothing).
    ended: bool,
    /// Where buffers come from, and where the batches that took them give them back.
    pool: Arc<BufferPool>,
}

impl ReadBuffer {
    fn new(inner: Box<dyn Read + Send>) -> ReadBuffer {
        let pool = Arc::new(BufferPool::new(BUFFER_BYTES));
        ReadBuffer { inner, buf: pool.take(), pos: 0, filled: 0, error: None, ended: false, pool }
    }

    /// The bytes read and not consumed.
    fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// Gives the buffer away (to the batch whose lines are in it) and goes on in another from the pool:
    /// what was not consumed (a line cut at the buffer's end) is moved to its start, and one read fills
    /// the rest. That read's error, if any, is kept for the next `fill_buf`, after the moved bytes.
    fn hand_over(&mut self) -> Vec<u8> {
        let mut next = self.pool.take();
        let kept = self.filled - self.pos;
        next[..kept].copy_from_slice(&self.buf[self.pos..self.filled]);
        let full = std::mem::replace(&mut self.buf, next);
        (self.pos, self.filled) = (0, kept);
        if self.error.is_none() && !self.ended && kept < self.buf.len() {
            match read_retrying(&mut *self.inner, &mut self.buf[kept..]) {
                Ok(0) => self.ended = true,
                Ok(n) => self.filled += n,
                Err(e) => self.error = Some(e),
            }
        }
        full
    }

    /// Nothing is left: the input ended and everything read was consumed.
    fn at_end(&self) -> bool {
        self.ended && self.pos == self.filled && self.error.is_none()
    }
}

/// `read`, again while it is interrupted.
fn read_retrying(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl Read for ReadBuffer {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buffered = self.fill_buf()?;
        let n = buffered.len().min(out.len());
        out[..n].copy_from_slice(&buffered[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ReadBuffer {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.filled {
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            (self.pos, self.filled) = (0, 0);
            let n = self.inner.read(&mut self.buf)?;
            self.ended = n == 0;
            self.filled = n;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.filled);
    }
}

/// Counts the bytes read from the underlying file, for progress.
struct Counting {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Batched;

    fn read_all(text: &[u8], limits: Limits) -> (Vec<ReadItem>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, text).unwrap();
        let mut reader = RecordReader::open(&Input::File(path), limits).unwrap();
        let mut items = Vec::new();
        while reader.next_batch(2, &mut items) {}
        (items, reader.bytes_read())
    }

    fn lines(items: &[ReadItem]) -> Vec<(u64, String)> {
        items
            .iter()
            .map(|item| match item {
                ReadItem::Record(r) => (r.origin.line, String::from_utf8_lossy(&r.bytes).into_owned()),
                ReadItem::Rejected(r) => (r.origin.line, format!("rejected: {}", r.reason)),
            })
            .collect()
    }

    #[test]
    fn json_lines_skip_blank_lines_and_count_every_line() {
        let text = b"{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}";
        let (items, read) = read_all(text, Limits::default());
        assert_eq!(lines(&items), [(1, "{\"a\":1}".into()), (4, "{\"b\":2}".into()), (5, "{\"c\":3}".into())]);
        assert_eq!(read, text.len() as u64);
    }

    #[test]
    fn pretty_printed_document_is_one_record_at_its_first_line() {
        let text = b"\n\n{\n  \"events\": []\n}\n";
        let (items, _) = read_all(text, Limits::default());
        assert_eq!(lines(&items), [(3, "{\n  \"events\": []\n}\n".into())]);
    }

    #[test]
    fn a_broken_first_line_does_not_swallow_the_file() {
        // Not an incomplete value but a syntax error: read line by line so later lines survive.
        let (items, _) = read_all(b"{\"a\":}\n{\"b\":2}\n", Limits::default());
        assert_eq!(lines(&items), [(1, "{\"a\":}".into()), (2, "{\"b\":2}".into())]);
    }

    #[test]
    fn batches_stop_at_the_byte_budget() {
        let line = format!("{{\"a\":\"{}\"}}\n", "x".repeat(1000));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, line.repeat(10)).unwrap();
        let mut reader = RecordReader::open(&Input::File(path), Limits::default()).unwrap();
        let mut batch = Batch::default();
        assert!(reader.next_batch_into(100, 2500, &mut batch));
        assert_eq!(batch.len(), 3, "stops at the record that reaches 2500 bytes");
        let mut batch = Batch::default();
        assert!(!reader.next_batch_into(100, usize::MAX, &mut batch));
        assert_eq!(batch.len(), 7);
        let origins: Vec<u64> = batch
            .drain()
            .map(|b| match b {
                Batched::Line { bytes, origin } => {
                    assert_eq!(bytes, line.trim_end().as_bytes());
                    origin.line
                }
                _ => 0,
            })
            .collect();
        assert_eq!(origins, [4, 5, 6, 7, 8, 9, 10]);
    }

    /// A batch holds what `next_batch` reads, in order: lines in its buffer, a document and rejections
    /// as they came.
    #[test]
    fn a_batch_holds_what_next_batch_reads() {
        let limits = Limits { max_line_bytes: 40, ..Limits::default() };
        let input = format!("{{\"a\":1}}\n\n{}\n{{\"b\":2}}\r\n", "y".repeat(50));
        let read = |input: &str| RecordReader::from_read("t.jsonl", Box::new(Cursor::new(input.to_owned())), limits);
        let (mut plain, mut batched) = (read(&input).unwrap(), read(&input).unwrap());
        let mut items = Vec::new();
        assert!(!plain.next_batch(100, &mut items));
        let mut batch = Batch::default();
        assert!(!batched.next_batch_into(100, usize::MAX, &mut batch));
        let from_batch: Vec<ReadItem> = batch
            .drain()
            .map(|b| match b {
                Batched::Line { bytes, origin } => ReadItem::Record(RawRecord { bytes: bytes.to_vec(), origin }),
                Batched::Owned(r) => ReadItem::Record(r),
                Batched::Rejected(r) => ReadItem::Rejected(r),
            })
            .collect();
        assert_eq!(items.len(), 3);
        assert_eq!(from_batch, items);
        // A document is kept as read, not copied into the buffer.
        let doc = "{\n  \"a\": 1\n}\n";
        let mut batch = Batch::default();
        read(doc).unwrap().next_batch_into(10, usize::MAX, &mut batch);
        assert!(matches!(batch.drain().next(), Some(Batched::Owned(r)) if r.bytes == doc.as_bytes()));
    }

    /// Over inputs longer than the read buffer, so that lines cross its end (those the batch reader takes
    /// straight from the buffer and those it leaves to `next_read`), batches of any size hold exactly the
    /// items `next_batch` reads, numbered alike: blank and whitespace lines, CRLF, over-long lines.
    #[test]
    fn batches_read_across_the_read_buffer_hold_what_next_batch_reads() {
        let limits = Limits { max_line_bytes: 3000, ..Limits::default() };
        let mut rng = crate::simulate::rng::Rng::new(11, 0);
        let mut input = String::new();
        while input.len() < 3 * BUFFER_BYTES + 1234 {
            match rng.below(20) {
                0 => input.push('\n'),
                1 => input.push_str(" \t \r\n"),
                2 => input.push_str(&format!("{{\"long\":\"{}\"}}\n", "z".repeat(3000 + rng.below(3000) as usize))),
                3 => input.push_str(&format!("{{\"crlf\":{}}}\r\n", rng.below(1000))),
                _ => input.push_str(&format!("{{\"a\":\"{}\"}}\n", "x".repeat(rng.below(2500) as usize))),
            }
        }
        input.push_str("{\"last\":\"no newline\"}");
        let read = || RecordReader::from_read("t.jsonl", Box::new(Cursor::new(input.clone())), limits).unwrap();
        let mut want = Vec::new();
        assert!(!read().next_batch(usize::MAX, &mut want));
        assert!(want.iter().any(|i| matches!(i, ReadItem::Rejected(_))), "over-long lines are in the input");
        for (max, max_bytes) in [(1, usize::MAX), (7, usize::MAX), (1024, 256 * 1024), (100, 5000), (usize::MAX, 1)] {
            let mut reader = read();
            let mut got = Vec::new();
            loop {
                let mut batch = Batch::default();
                let more = reader.next_batch_into(max, max_bytes, &mut batch);
                assert!(batch.len() <= max);
                got.extend(batch.drain().map(|b| match b {
                    Batched::Line { bytes, origin } => ReadItem::Record(RawRecord { bytes: bytes.to_vec(), origin }),
                    Batched::Owned(r) => ReadItem::Record(r),
                    Batched::Rejected(r) => ReadItem::Rejected(r),
                }));
                if !more {
                    break;
                }
            }
            assert_eq!(got.len(), want.len(), "{max} {max_bytes}");
            assert!(got == want, "{max} {max_bytes}: the items differ");
        }
    }

    #[test]
    fn readers_can_move_to_worker_threads() {
        fn is_send<T: Send>() {}
        is_send::<RecordReader>();
    }

    #[test]
    fn stdin_is_named() {
        assert_eq!(Input::Stdin.display_name(), "<stdin>");
    }
}
