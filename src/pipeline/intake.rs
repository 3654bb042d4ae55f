//! The intake both commands share between decoding and ordering: every decoded item is counted in one
//! [`Tally`] (the replay summary and the monitor's `/metrics` read the same figures), and events outside
//! the time range (replay's `--since`/`--until`, the monitor's start point) are counted and left out.

use std::collections::BTreeMap;

use crate::decode::Decoded;
use crate::event::EventKind;
use crate::time::Timestamp;

/// What came out of the decoders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events decoded (sign-ins and the other user-pool activity), in range or not.
    pub events: u64,
    /// Of those, sign-in attempts (`EventKind::SignIn`).
    pub sign_ins: u64,
    /// Of those, user-activity events whose `creationDate` is more than a day from `eventTimestamp` (the
    /// event time used).
    pub creation_date_disagreements: u64,
    /// Records without sign-in activity, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Records that could not be decoded.
    pub rejected: u64,
    /// Events outside the time range.
    pub out_of_range: u64,
}

impl Tally {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Counts decoded items and keeps events to the range `[since, until)`.
#[derive(Debug, Clone, Default)]
pub struct Intake {
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    pub tally: Tally,
}

impl Intake {
    /// An intake keeping events at or after `since` and before `until` (either bound optional).
    pub fn new(since: Option<Timestamp>, until: Option<Timestamp>) -> Intake {
        Intake { since, until, tally: Tally::default() }
    }

    /// Counts one decoded item. True for an event in range: the caller orders it and detects on it.
    #[inline]
    pub fn admit(&mut self, d: &Decoded) -> bool {
        match d {
            Decoded::Event(ev) => {
                self.tally.events += 1;
                self.tally.sign_ins += u64::from(ev.kind == EventKind::SignIn);
                self.tally.creation_date_disagreements += u64::from(ev.creation_date_disagrees);
                let before = self.since.is_some_and(|s| ev.time < s);
                let after = self.until.is_some_and(|u| ev.time >= u);
                if before || after {
                    self.tally.out_of_range += 1;
                    return false;
                }
                true
            }
            Decoded::Skipped(reason) => {
                *self.tally.skipped.entry(reason.as_str()).or_default() += 1;
                false
            }
            Decoded::Rejected(_) => {
                self.tally.rejected += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Rejection, SkipReason};
    use crate::event::{EventKind, Origin, SignInEvent};

    fn event(t: i64) -> Decoded {
        let origin = Origin::new("f".into(), 1);
        Decoded::Event(Box::new(SignInEvent::new(
            Timestamp(t),
            EventKind::SignIn,
            crate::event::Outcome::Success,
            origin,
        )))
    }

    #[test]
    fn events_outside_the_range_are_counted_and_left_out() {
        let mut intake = Intake::new(Some(Timestamp(10)), Some(Timestamp(20)));
        let admitted: Vec<bool> = [9, 10, 19, 20].into_iter().map(|t| intake.admit(&event(t))).collect();
        assert_eq!(admitted, [false, true, true, false], "since is in the range, until is not");
        let origin = Origin::new("f".into(), 2);
        assert!(!intake.admit(&Decoded::Rejected(Rejection::new(&origin, "bad"))));
        let skip = SkipReason::OtherService;
        assert!(!intake.admit(&Decoded::Skipped(skip)));
        assert!(!intake.admit(&Decoded::Skipped(skip)));
        let t = &intake.tally;
        assert_eq!((t.events, t.out_of_range, t.rejected, t.skipped_total()), (4, 2, 1, 2));
        assert_eq!((t.sign_ins, t.creation_date_disagreements), (4, 0));
        assert_eq!(t.skipped.get(skip.as_str()), Some(&2));
    }

    #[test]
    fn sign_ins_and_creation_date_disagreements_are_counted_among_the_events() {
        let mut intake = Intake::new(None, None);
        let origin = Origin::new("f".into(), 1);
        let mut sign_up = SignInEvent::new(Timestamp(5), EventKind::SignUp, crate::event::Outcome::InProgress, origin);
        sign_up.creation_date_disagrees = true;
        intake.admit(&Decoded::Event(Box::new(sign_up)));
        intake.admit(&event(6));
        let t = &intake.tally;
        assert_eq!((t.events, t.sign_ins, t.creation_date_disagreements), (2, 1, 1));
    }
}
