//! What replay and the monitor share between the sources and the sinks: the figures a run keeps.

pub mod metrics;
