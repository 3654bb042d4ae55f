//! Time order: events leave in (event time, arrival) order, under an optional cap on the memory they
//! hold. The one ordering buffer of both commands, inside the engine: what lets events leave is the only
//! difference (`detect::Release`: bounded lateness behind the newest event in replay, the watermark in the
//! monitor).
//!
//! Most events arrive in order and queue in a `VecDeque`, moved once in and once out; only an event older
//! than the newest queued one goes to a heap (sifting whole events there was a third of the engine's time
//! when all went there, and a B-tree on (time, arrival) was slower still). Events are held boxed, as the
//! decoders made them: a move is a pointer, not the event's 500 bytes. The per-event methods are
//! `#[inline]`: the engine calls them for every event from another module (another codegen unit).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::event::SignInEvent;
use crate::time::Timestamp;

/// An event in the heap, compared by time only (the arrival number beside it breaks ties).
struct ByTime(Box<SignInEvent>);

impl PartialEq for ByTime {
    fn eq(&self, other: &Self) -> bool {
        self.0.time == other.0.time
    }
}
impl Eq for ByTime {}
impl PartialOrd for ByTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.time.cmp(&other.0.time)
    }
}

/// Events waiting to leave in (time, arrival) order.
pub struct Orderer {
    /// Sorted by (time, arrival): each was at or after the one before it.
    in_order: VecDeque<(Box<SignInEvent>, u64)>,
    /// Min-heap on (time, arrival).
    out_of_order: BinaryHeap<Reverse<(ByTime, u64)>>,
    arrivals: u64,
    /// [`held_size`] of the events held; counted only under a cap.
    bytes: usize,
    /// None: no cap on bytes, and nothing counted.
    max_bytes: Option<usize>,
    /// Cap on the number of events (none: `usize::MAX`).
    max_events: usize,
    /// Events that left early because of the cap.
    forced: u64,
}

impl Orderer {
    /// An orderer without a cap on bytes (the caller bounds it otherwise).
    pub fn new() -> Orderer {
        Orderer::build(None)
    }

    /// An orderer whose events take at most `max_bytes` (see [`Orderer::pop_over_cap`]).
    pub fn capped(max_bytes: usize) -> Orderer {
        Orderer::build(Some(max_bytes))
    }

    /// The same, also holding at most `max_events` events.
    pub fn at_most(mut self, max_events: usize) -> Orderer {
        self.max_events = max_events;
        self
    }

    fn build(max_bytes: Option<usize>) -> Orderer {
        Orderer {
            in_order: VecDeque::new(),
            out_of_order: BinaryHeap::new(),
            arrivals: 0,
            bytes: 0,
            max_bytes,
            max_events: usize::MAX,
            forced: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory the events take, by [`held_size`] (0 without a cap).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[inline]
    pub fn push(&mut self, ev: Box<SignInEvent>) {
        self.arrivals += 1;
        if self.max_bytes.is_some() {
            self.bytes += held_size(&ev);
        }
        if self.in_order.back().is_none_or(|(last, _)| last.time <= ev.time) {
            self.in_order.push_back((ev, self.arrivals));
        } else {
            self.out_of_order.push(Reverse((ByTime(ev), self.arrivals)));
        }
    }

    /// The time of the next event to leave.
    #[inline]
    pub fn next_time(&self) -> Option<Timestamp> {
        if self.heap_first() {
            self.out_of_order.peek().map(|Reverse((ByTime(ev), _))| ev.time)
        } else {
            self.in_order.front().map(|(ev, _)| ev.time)
        }
    }

    /// The next event, whatever its time.
    #[inline]
    pub fn pop(&mut self) -> Option<Box<SignInEvent>> {
        let ev = if self.heap_first() {
            self.out_of_order.pop().map(|Reverse((ByTime(ev), _))| ev)
        } else {
            self.in_order.pop_front().map(|(ev, _)| ev)
        };
        if let (Some(ev), Some(_)) = (&ev, self.max_bytes) {
            self.bytes = self.bytes.saturating_sub(held_size(ev));
        }
        ev
    }

    /// The next event, if its time is at or before `through`.
    #[inline]
    pub fn pop_through(&mut self, through: Timestamp) -> Option<Box<SignInEvent>> {
        if self.next_time()? > through {
            return None;
        }
        self.pop()
    }

    /// The next event, if the events held are more than a cap allows: it must leave now, early, and is
    /// counted in [`Orderer::forced`].
    #[inline]
    pub fn pop_over_cap(&mut self) -> Option<Box<SignInEvent>> {
        let over = self.len() > self.max_events || self.max_bytes.is_some_and(|max| self.bytes > max);
        if !over {
            return None;
        }
        self.forced += 1;
        self.pop()
    }

    /// Events that left early because of the cap, since the start.
    pub fn forced(&self) -> u64 {
        self.forced
    }

    /// Whether the next event to leave is the heap's.
    #[inline]
    fn heap_first(&self) -> bool {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some((a, sa)), Some(Reverse((ByTime(b), sb)))) => (b.time, *sb) < (a.time, *sa),
            (None, Some(_)) => true,
            _ => false,
        }
    }
}

impl Default for Orderer {
    fn default() -> Orderer {
        Orderer::new()
    }
}

/// What one held event costs at least: the event, and its slot twice over (see [`held_size`]).
pub const SLOT_BYTES: usize =
    std::mem::size_of::<SignInEvent>() + 2 * std::mem::size_of::<((i64, u64), Box<SignInEvent>)>();

/// What one held event costs: its strings, the event itself, and its slot twice over. A queue grown by doubling, or a heap,
/// holds up to twice the slots it uses; the B-tree this replaced (filled in order, every split node half
/// empty) cost the same, measured: 884,000 followed events, 344 MB counted once, 1.09 GB peak.
#[inline]
pub fn held_size(ev: &SignInEvent) -> usize {
    ev.heap_bytes() + SLOT_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Origin, Outcome};

    fn event(t: i64, line: u64) -> Box<SignInEvent> {
        let mut ev = SignInEvent::new(Timestamp(t), EventKind::SignIn, Outcome::Success, Origin::new("f".into(), line));
        ev.user_name = Some(format!("user-{line}").into());
        Box::new(ev)
    }

    #[test]
    fn releases_by_time_then_arrival_up_to_the_watermark() {
        let mut h = Orderer::capped(usize::MAX);
        for (line, t) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
            h.push(event(t, line));
        }
        let mut out = Vec::new();
        while let Some(ev) = h.pop_through(Timestamp(20)) {
            out.push((ev.time.0, ev.origin.line));
        }
        assert_eq!(out, [(10, 2), (10, 4), (20, 3)]);
        assert_eq!(h.len(), 1);
        assert!(h.pop_over_cap().is_none());
    }

    #[test]
    fn past_the_cap_the_oldest_leave_and_the_bytes_add_up() {
        let one = held_size(&event(0, 1));
        let mut h = Orderer::capped(one * 3);
        for line in 1..=5 {
            h.push(event(100 - line as i64, line));
        }
        assert_eq!(h.bytes(), one * 5);
        let mut forced = Vec::new();
        while let Some(ev) = h.pop_over_cap() {
            forced.push(ev.time.0);
        }
        // The two oldest go; three (the cap) stay.
        assert_eq!(forced, [95, 96]);
        assert_eq!(h.forced(), 2);
        assert_eq!(h.len(), 3);
        assert_eq!(h.bytes(), one * 3);
        while h.pop_through(Timestamp(i64::MAX)).is_some() {}
        assert_eq!((h.len(), h.bytes()), (0, 0));
    }

    #[test]
    fn past_the_count_cap_the_oldest_leave_too() {
        let mut h = Orderer::capped(usize::MAX).at_most(2);
        for line in 1..=4 {
            h.push(event(10 * line as i64, line));
        }
        let mut forced = Vec::new();
        while let Some(ev) = h.pop_over_cap() {
            forced.push(ev.time.0);
        }
        assert_eq!((forced, h.len(), h.forced()), (vec![10, 20], 2, 2));
    }

    #[test]
    fn in_order_and_late_arrivals_interleave_by_time_then_arrival() {
        let mut h = Orderer::new();
        // 10, 20, 30 in order; then 20 again (after the first 20), 5 and 30 again.
        for (line, t) in [(1, 10), (2, 20), (3, 30), (4, 20), (5, 5), (6, 30)] {
            h.push(event(t, line));
        }
        let mut out = Vec::new();
        while let Some(ev) = h.pop() {
            out.push(ev.origin.line);
        }
        assert_eq!(out, [5, 1, 2, 4, 3, 6]);
        assert!(h.pop_over_cap().is_none(), "no cap, nothing forced");
    }

    #[test]
    fn reorder_releases_by_time_then_arrival() {
        let mut r = Orderer::new();
        let times = [5, 3, 5, 1, 7, 3, 7, 2];
        for (seq, t) in times.iter().enumerate() {
            let origin = Origin::new("t".into(), seq as u64);
            r.push(Box::new(SignInEvent::new(Timestamp(*t), EventKind::SignIn, Outcome::Failure, origin)));
        }
        assert_eq!(r.len(), times.len());
        let mut order = Vec::new();
        while let Some(time) = r.next_time() {
            let ev = r.pop().expect("next_time said there is one");
            assert_eq!(ev.time, time);
            order.push((ev.time.0, ev.origin.line));
        }
        assert_eq!(order, [(1, 3), (2, 7), (3, 1), (3, 5), (5, 0), (5, 2), (7, 4), (7, 6)]);
    }
}
