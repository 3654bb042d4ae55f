//! The clock a long-running command reads: wall time (the watermark's lag, ledger stamps, notification
//! times) and monotonic time (the storm window, the checkpoint interval, the status line), from one value
//! passed in, so that their logic runs in unit tests on tokio's paused clock.

use tokio::time::Instant;

use crate::time::{Span, Timestamp};

/// Where the time comes from. Monotonic time is always tokio's [`Instant`], which follows tokio's clock:
/// real time, or a paused clock in tests (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// Wall time that moves with tokio's clock from `wall_at_start`: on a paused clock, only when a test
    /// moves it.
    Manual { wall_at_start: Timestamp, start: Instant },
}

impl Clock {
    /// A clock whose wall time is `wall` now and then moves with tokio's clock.
    pub fn manual(wall: Timestamp) -> Clock {
        Clock::Manual { wall_at_start: wall, start: Instant::now() }
    }

    /// Wall time.
    pub fn wall(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual { wall_at_start, start } => {
                // Whole milliseconds, as Timestamp keeps them; a test's advance is far below i64::MAX ms.
                let ms = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
                wall_at_start.saturating_add(Span(ms))
            }
        }
    }

    /// Monotonic time.
    pub fn now(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_manual_clock_moves_only_with_tokios_clock() {
        let clock = Clock::manual(Timestamp(1_000_000));
        let start = clock.now();
        assert_eq!(clock.wall(), Timestamp(1_000_000));
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.wall(), Timestamp(1_001_500));
        assert_eq!(clock.now() - start, Duration::from_millis(1_500));
    }
}
