//! Sources: where raw records come from. Each source yields [`ReadItem`]s (a record's bytes with its
//! [`Origin`], or a located [`Rejection`]) for `crate::decode` to turn into events.

pub mod cloudwatch;
mod file;
pub mod follow;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub use file::RecordReader;

use crate::decode::Rejection;
use crate::event::Origin;

/// Longest line read as one record. A Cognito event is about 1 KB and a CloudTrail record a few KB;
/// anything near a megabyte on one line is not a log event and must not be buffered.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// Largest whole-document file (pretty-printed JSON, a one-line CloudTrail S3 file) read into memory.
/// CloudTrail S3 objects decompress to tens of megabytes at most.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024 * 1024;

/// Size bounds for reading; see the constants for the defaults and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_line_bytes: usize,
    pub max_document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_line_bytes: DEFAULT_MAX_LINE_BYTES, max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES }
    }
}

/// One input: a file path or standard input ("-").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// The name shown in origins and messages: the path as given, or `<stdin>`.
    pub fn display_name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_owned(),
            Input::File(path) => path.display().to_string(),
        }
    }
}

/// A source failed as a whole (the file cannot be found or opened); bad records are [`Rejection`]s.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: no such file or directory", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {}", .path.display(), .source)]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SourceError {
    fn io(path: &Path, source: io::Error) -> SourceError {
        if source.kind() == io::ErrorKind::NotFound {
            SourceError::NotFound { path: path.to_owned() }
        } else {
            SourceError::Io { path: path.to_owned(), source }
        }
    }
}

/// The bytes of one record as read, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub bytes: Vec<u8>,
    pub origin: Origin,
}

/// What a source yields: a record to decode, or a located reason why a part of the input was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadItem {
    Record(RawRecord),
    Rejected(Rejection),
}

/// Records read together: how `replay`'s reader hands records to a decoder thread
/// ([`RecordReader::next_batch_into`]). Most lines are in the read buffer the batch took whole (its
/// block), where the kernel put them; the others (read the general way: the first line, a line longer
/// than the read buffer) are copied into the batch's own buffer. One buffer a batch, given back to the
/// reader when the batch is dropped, instead of an allocation a line: per line, that pair was about a
/// twentieth of `--decode-only`.
#[derive(Debug, Default)]
pub struct Batch {
    /// The bytes of the lines read the general way, one after another.
    bytes: Vec<u8>,
    /// The read buffer holding the other lines.
    block: Option<Block>,
    items: Vec<BatchItem>,
    /// Bytes of the records kept in their own buffers.
    owned_bytes: usize,
    /// Bytes of the lines in the block.
    block_bytes: usize,
}

#[derive(Debug)]
enum BatchItem {
    /// A line: its bytes are `bytes[start..end]`.
    Line {
        start: usize,
        end: usize,
        origin: Origin,
    },
    /// A line in the block: `block[start..end]`.
    InBlock {
        start: usize,
        end: usize,
        origin: Origin,
    },
    /// A record read into its own buffer (a whole document), kept there rather than copied.
    Owned(RawRecord),
    Rejected(Rejection),
}

/// One item of a [`Batch`], in the order read.
pub enum Batched<'a> {
    Line { bytes: &'a [u8], origin: Origin },
    Owned(RawRecord),
    Rejected(Rejection),
}

impl Batch {
    /// Room for `records` items and `bytes` bytes of lines read the general way.
    pub fn with_capacity(records: usize, bytes: usize) -> Batch {
        Batch { bytes: Vec::with_capacity(bytes), items: Vec::with_capacity(records), ..Batch::default() }
    }

    /// Appends a line, copying its bytes into the batch's buffer.
    pub fn push_line(&mut self, line: &[u8], origin: Origin) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.items.push(BatchItem::Line { start, end: self.bytes.len(), origin });
    }

    /// Appends a line that is `start..end` of the read buffer the batch is to take
    /// ([`take_block`](Self::take_block) or [`copy_block`](Self::copy_block)).
    fn push_block_line(&mut self, start: usize, end: usize, origin: Origin) {
        self.block_bytes += end - start;
        self.items.push(BatchItem::InBlock { start, end, origin });
    }

    /// Takes the read buffer its block lines are in; it goes back to `pool` when the batch is dropped.
    fn take_block(&mut self, buffer: Vec<u8>, pool: Arc<BufferPool>) {
        debug_assert!(self.block.is_none(), "one block a batch");
        self.block = Some(Block { bytes: buffer, pool: Some(pool) });
    }

    /// Takes a copy of `part`, the read buffer's bytes from `offset` on, that its block lines are in.
    fn copy_block(&mut self, part: &[u8], offset: usize) {
        debug_assert!(self.block.is_none(), "one block a batch");
        for item in &mut self.items {
            if let BatchItem::InBlock { start, end, .. } = item {
                *start -= offset;
                *end -= offset;
            }
        }
        self.block = Some(Block { bytes: part.to_vec(), pool: None });
    }

    /// Appends an item read on its own (a document, a rejection), without copying it.
    pub fn push(&mut self, item: ReadItem) {
        self.items.push(match item {
            ReadItem::Record(r) => {
                self.owned_bytes += r.bytes.len();
                BatchItem::Owned(r)
            }
            ReadItem::Rejected(r) => BatchItem::Rejected(r),
        });
    }

    /// Items (records and rejections) in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of the lines and records in the batch.
    pub fn record_bytes(&self) -> usize {
        self.bytes.len() + self.owned_bytes + self.block_bytes
    }

    /// Takes the items out, in order; the lines' bytes are borrowed from the batch.
    pub fn drain(&mut self) -> impl Iterator<Item = Batched<'_>> {
        let Batch { bytes, block, items, owned_bytes, block_bytes } = self;
        (*owned_bytes, *block_bytes) = (0, 0);
        let bytes: &[u8] = bytes;
        let block: &[u8] = block.as_ref().map_or(&[], |b| &b.bytes);
        items.drain(..).map(move |item| match item {
            BatchItem::Line { start, end, origin } => Batched::Line { bytes: &bytes[start..end], origin },
            BatchItem::InBlock { start, end, origin } => Batched::Line { bytes: &block[start..end], origin },
            BatchItem::Owned(r) => Batched::Owned(r),
            BatchItem::Rejected(r) => Batched::Rejected(r),
        })
    }
}

/// A read buffer a [`Batch`] took, given back to its pool when the batch is dropped.
#[derive(Debug)]
struct Block {
    bytes: Vec<u8>,
    /// Where it came from; `None` for a copy.
    pool: Option<Arc<BufferPool>>,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give(std::mem::take(&mut self.bytes));
        }
    }
}

/// Read buffers of one size, made zeroed (a `read` needs initialised memory) and used again: the batches
/// that took them give them back. Keeps at most [`BufferPool::KEPT`] (4 MiB): a reader needs about as
/// many as it has batches in flight (`replay` keeps 4 a decoder thread), and more are freed.
#[derive(Debug)]
pub(crate) struct BufferPool {
    size: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    const KEPT: usize = 16;

    pub(crate) fn new(size: usize) -> BufferPool {
        BufferPool { size, free: Mutex::new(Vec::new()) }
    }

    /// A buffer of the pool's size, every byte initialised.
    pub(crate) fn take(&self) -> Vec<u8> {
        let kept = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        kept.unwrap_or_else(|| vec![0; self.size])
    }

    fn give(&self, buffer: Vec<u8>) {
        if buffer.len() != self.size {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < Self::KEPT {
            free.push(buffer);
        }
    }
}

impl From<ReadItem> for Batch {
    fn from(item: ReadItem) -> Batch {
        let mut batch = Batch::default();
        batch.push(item);
        batch
    }
}

/// A record read by a live source (CloudWatch Logs, a followed file), with what the monitor measures.
#[derive(Debug, Clone)]
pub struct LiveRecord {
    pub bytes: Vec<u8>,
    pub origin: Origin,
    /// `ingestionTime - timestamp` for a CloudWatch event.
    pub ingest_delay_ms: Option<i64>,
    /// Why the source itself rejected this record (a followed file's line over the limit), or None. A
    /// rejected record has no bytes; the monitor counts and reports it as it does one the decoder rejects.
    pub rejected: Option<String>,
}

impl LiveRecord {
    /// A record the source rejected before decoding, with its origin and the reason.
    pub fn rejected(origin: Origin, reason: String) -> LiveRecord {
        LiveRecord { bytes: Vec::new(), origin, ingest_delay_ms: None, rejected: Some(reason) }
    }
}

/// What a live source sends to the monitor. Each source owns a clone of the sender; the monitor owns the
/// receiver and stops reading it on shutdown, which ends the sources at their next send.
#[derive(Debug)]
pub enum SourceMsg {
    Records {
        source: usize,
        records: Vec<LiveRecord>,
        newest_ms: Option<i64>,
    },
    /// Every event that had reached the source by wall time `until_ms` has been sent.
    CaughtUp {
        source: usize,
        until_ms: i64,
    },
    /// The source is failing (permission, missing log group, network): shown in status and health.
    Failing {
        source: usize,
        reason: String,
    },
}

/// Exponential back-off with jitter ("full jitter" between half and all of the step), capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(base_ms: u64, cap_ms: u64) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Backoff { base_ms, cap_ms, attempt: 0, rng: seed | 1 }
    }

    /// The next wait; each call doubles the step up to the cap.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let step = self.base_ms.saturating_mul(1u64 << self.attempt.min(20)).min(self.cap_ms);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64: enough randomness to spread retries; no crate needed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = step / 2;
        std::time::Duration::from_millis(half + self.rng % (step - half + 1))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Expand paths: "-" is stdin; directories are walked recursively (files sorted by path, hidden files and
/// dirs skipped), so the order is deterministic. A missing path is an error naming it.
///
/// Symbolic links to files are followed; links to directories inside a walked directory are not (they
/// could form a cycle). A path given explicitly is used as given, hidden or not.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, SourceError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let meta = fs::metadata(path).map_err(|e| SourceError::io(path, e))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            inputs.extend(files.into_iter().map(Input::File));
        } else {
            inputs.push(Input::File(path.clone()));
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    for entry in fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))? {
        let entry = entry.map_err(|e| SourceError::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| SourceError::io(&path, e))?;
        if kind.is_dir() {
            walk(&path, files)?;
        } else if kind.is_file() || (kind.is_symlink() && path.metadata().is_ok_and(|m| m.is_file())) {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_directories_sorted_skipping_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/sub")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        for f in ["b/sub/z.json", "b/a.json", "c.json", ".hidden.json", ".git/x.json"] {
            fs::write(root.join(f), "{}").unwrap();
        }
        let inputs = expand_inputs(&[root.to_owned(), PathBuf::from("-")]).unwrap();
        assert_eq!(
            inputs,
            vec![
                Input::File(root.join("b/a.json")),
                Input::File(root.join("b/sub/z.json")),
                Input::File(root.join("c.json")),
                Input::Stdin,
            ]
        );
    }

    #[test]
    fn missing_path_is_an_error_naming_it() {
        let err = expand_inputs(&[PathBuf::from("/nonexistent/cognito.log")]).unwrap_err();
        assert_eq!(err.to_string(), "/nonexistent/cognito.log: no such file or directory");
    }
}
