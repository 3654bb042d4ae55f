//! Sinks: where findings go. JSON lines to a file or standard output, the readable summary on standard
//! error, and (in the monitor) notifications.

pub mod jsonl;
pub mod sns;
pub mod summary;
