//! Sources: where raw records come from. Each source yields [`ReadItem`]s (a record's bytes with its
//! [`Origin`], or a located [`Rejection`]) for `crate::decode` to turn into events.

mod file;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
