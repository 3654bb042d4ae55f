//! What the engine runs: one [`Detector`] per enabled rule, and the figures each reports about itself.

use serde::Serialize;

use super::shard::Shard;
use super::Keys;
use crate::event::SignInEvent;
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::Timestamp;

/// Figures one rule reports about itself.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DetectorStats {
    pub rule: String,
    pub detector: &'static str,
    /// Keys with state right now.
    pub tracked_keys: usize,
    /// Keys dropped before they expired because `max_keys` was reached: the rule was saturated.
    pub evicted_keys: u64,
    /// Late events whose window had already passed for this rule.
    pub late_unplaced: u64,
    /// Events ignored because of an allow-list.
    pub allowlisted: u64,
    /// Events the rule needed a location for and could not place (unknown or ambiguous names, no IP
    /// database record, a private or reserved address). Only `impossible_travel` locates events.
    pub unlocated: u64,
    /// Pool-wide rules: when warm-up ends (the latest among pools), on event time. The rule learns the
    /// pool's normal and stays quiet until then.
    pub warming_up: Option<Timestamp>,
    pub open_incidents: usize,
    pub incidents: u64,
}

impl DetectorStats {
    /// Adds the figures of another shard of the same rule (`super::shard`).
    pub fn absorb(&mut self, other: &DetectorStats) {
        self.tracked_keys += other.tracked_keys;
        self.evicted_keys += other.evicted_keys;
        self.late_unplaced += other.late_unplaced;
        self.allowlisted += other.allowlisted;
        self.unlocated += other.unlocated;
        self.warming_up = self.warming_up.max(other.warming_up);
        self.open_incidents += other.open_incidents;
        self.incidents += other.incidents;
    }
}

/// One rule at work. Implementations keep per-key state bounded by their spec.
pub trait Detector: Send {
    fn spec(&self) -> &Spec;
    /// Takes one event (in event-time order, except late events beyond the reorder buffer).
    fn observe(&mut self, ev: &SignInEvent, keys: &Keys<'_>, out: &mut Vec<Finding>);
    /// Event time has reached `now`: close incidents that went quiet.
    fn advance(&mut self, now: Timestamp, out: &mut Vec<Finding>);
    /// End of input: close every open incident.
    fn finish(&mut self, out: &mut Vec<Finding>);
    fn stats(&self) -> DetectorStats;
    /// The earliest `first_seen` among this rule's open incidents. The monitor checkpoints it so a
    /// restart re-reads far enough back to rebuild every open incident (no detector state is saved).
    fn earliest_open(&self) -> Option<Timestamp>;
    /// The normal the rule learned, if it learns one (pool-wide rules): `--save-baseline`, the monitor's
    /// `baseline.json`.
    fn baseline(&self) -> Option<super::baseline::RuleBaseline> {
        None
    }
    /// The kind of key all of this rule's state is kept by, when none of it looks across keys: then the
    /// rule can run as several instances, one per [`Shard`] of those keys (`super::shard`). None keeps it
    /// whole.
    fn shard_key(&self) -> Option<KeyKind> {
        None
    }
    /// Makes this instance keep only the keys `shard` owns (only called when [`Detector::shard_key`] is
    /// Some).
    fn set_shard(&mut self, _shard: Shard) {}
}
