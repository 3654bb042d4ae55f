//! What replay and the monitor share between the sources and the sinks: the intake (counting and the
//! time range), the time-ordering buffer, the figures a run keeps, and the clock the monitor reads.

pub mod clock;
pub mod intake;
pub mod metrics;
pub mod order;
