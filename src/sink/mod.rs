//! Sinks: where findings go. Every output has one shape, the [`Sink`] trait: JSON lines to a file or
//! standard output ([`jsonl`]), the tally behind replay's readable summary ([`summary`]), and the monitor's
//! SNS notifications ([`sns`]). Adding an output is one file here plus one line where a command chooses
//! its sinks (`cmd/replay.rs`, `monitor::run`).
//!
//! Who calls what: both commands hand every finding update to each sink in the order the engine produced
//! it (incidents opening, escalating, closing), then the case updates those findings caused
//! ([`Sink::case`]); each sink keeps what it is for. Replay closes its sinks at
//! the end of input. The monitor flushes them every tick, saves the checkpoint at once when a flush says
//! something was delivered, and then tells them it is on disk; it stores each sink's saved state in the
//! checkpoint without reading it.

pub mod jsonl;
pub mod sns;
pub mod summary;

use std::io;

use crate::correlate::CaseRecord;
use crate::finding::Finding;

/// The state a sink keeps across monitor restarts: top-level fields of the checkpoint, stored and handed
/// back unread by the monitor (so a sink's names must not clash with the checkpoint's own fields or
/// another sink's).
pub type SavedState = serde_json::Map<String, serde_json::Value>;

/// An output of findings.
pub trait Sink {
    /// Takes one incident update: opened, escalated or closed.
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError>;
    /// Takes one case update (`crate::correlate`): opened, escalated, merged or closed. It follows the
    /// findings that caused it. Most outputs of findings ignore cases.
    fn case(&mut self, _c: &CaseRecord) -> Result<(), SinkError> {
        Ok(())
    }
    /// Makes what was emitted so far durable (written out, synced, spooled) and says what changed.
    fn flush(&mut self) -> Result<Flushed, SinkError>;
    /// End of the run: flushes and lets go of the output.
    fn close(&mut self) -> Result<(), SinkError>;
    /// What to keep in the monitor's checkpoint (None: nothing).
    fn saved_state(&self) -> Option<SavedState> {
        None
    }
    /// The checkpoint that records everything flushed so far is on disk.
    fn checkpointed(&mut self) {}
}

/// What a [`Sink::flush`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flushed {
    Nothing,
    /// Its saved state changed: the next periodic checkpoint must record it.
    Changed,
    /// It delivered something a restart must not deliver again: checkpoint now.
    Delivered,
}

/// Why a sink could not take a finding.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed (a full disk, a closed pipe): what the sink had to record is not recorded.
    #[error("cannot write findings to {output}")]
    Write {
        output: String,
        #[source]
        source: io::Error,
    },
}

/// A function of a finding is a sink that keeps no state (the tests' and benches' collectors): it sees
/// every update, and its error ends a replay as a write error would.
impl<F: FnMut(&Finding) -> io::Result<()>> Sink for F {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        self(f).map_err(|source| SinkError::Write { output: "the caller".to_string(), source })
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        Ok(Flushed::Nothing)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Several sinks as one: each update goes to every sink, in order.
#[derive(Default)]
pub struct Fanout<'a> {
    sinks: Vec<&'a mut dyn Sink>,
}

impl<'a> Fanout<'a> {
    pub fn new(sinks: Vec<&'a mut dyn Sink>) -> Fanout<'a> {
        Fanout { sinks }
    }
}

impl Sink for Fanout<'_> {
    fn emit(&mut self, f: &Finding) -> Result<(), SinkError> {
        self.sinks.iter_mut().try_for_each(|s| s.emit(f))
    }

    fn case(&mut self, c: &CaseRecord) -> Result<(), SinkError> {
        self.sinks.iter_mut().try_for_each(|s| s.case(c))
    }

    fn flush(&mut self) -> Result<Flushed, SinkError> {
        let mut most = Flushed::Nothing;
        for s in &mut self.sinks {
            most = most.max(s.flush()?);
        }
        Ok(most)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.sinks.iter_mut().try_for_each(|s| s.close())
    }
}
