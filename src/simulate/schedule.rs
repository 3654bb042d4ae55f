//! When each planted attack and look-alike happens: a slot of its kind's longest span for each, placed so
//! that findings can be told apart.
//!
//! - Pool-wide items (judged against the pool's baseline) start after the pool detectors' warm-up and
//!   stay [`POOL_GAP`] apart from each other, so a pool-wide finding points at one of them.
//! - Sequential items (one address or a few accounts) never overlap each other or a pool-wide item:
//!   [`ATTACK_GAP`] between any two.
//! - Items that run for hours beside the rest ([`Placement::Alongside`]: a slow guesser, a carrier NAT)
//!   go anywhere in the run; they have their own users and addresses.
//!
//! The slots depend only on the kinds, the run and the random stream, so `SimConfig::from_args` can check
//! that a plan fits before anything is generated, and the simulation later gets the same slots.

use super::attacks::{AttackKind, Placement, ATTACK_GAP};
use super::rng::Rng;
use crate::time::{Span, Timestamp};

/// The first pool-wide item starts this long after the run: pool detectors learn for 4 h of event time
/// and stay quiet meanwhile; 2 h more gives them a settled baseline.
pub const POOL_START_AFTER: Span = Span(6 * 3_600_000);
/// Pool-wide items are at least this far apart (end to start), so one's finding has closed before the
/// next begins and the baseline has returned to normal.
pub const POOL_GAP: Span = Span(2 * 3_600_000);
/// Each pool-wide item starts up to this much later than the earliest it may, so they land at different
/// hours of the day from seed to seed.
const POOL_JITTER: Span = Span::mins(30);

/// One item's slot: its events lie in `[start, start + kind.max_span()]`.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub kind: AttackKind,
    pub start: Timestamp,
}

/// Places `kinds` (in random order) in `[start, start + duration)`; an error names the flag to change.
pub fn slots(kinds: &[AttackKind], start: Timestamp, duration: Span, rng: &mut Rng) -> Result<Vec<Slot>, String> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let mut order = kinds.to_vec();
    rng.shuffle(&mut order);
    let end = start.millis() + duration.millis();
    let too_short = |what: &str| {
        format!(
            "--duration {duration} is too short for the planted attacks and look-alikes ({what}): use a longer \
             --duration, fewer --attacks, or --attacks none"
        )
    };
    let mut out = Vec::with_capacity(order.len());

    // Pool-wide items, one after another after the warm-up.
    let mut blocked: Vec<(i64, i64)> = Vec::new();
    let mut at = start.millis() + POOL_START_AFTER.millis();
    for &kind in order.iter().filter(|k| k.placement() == Placement::PoolWide) {
        at += rng.range(0, POOL_JITTER.millis());
        let stop = at + kind.max_span().millis();
        if stop + ATTACK_GAP.millis() > end {
            return Err(too_short(&format!("pool-wide ones start {POOL_START_AFTER} in and keep {POOL_GAP} apart")));
        }
        out.push(Slot { kind, start: Timestamp(at) });
        blocked.push((at, stop));
        at = stop + POOL_GAP.millis();
    }

    // Sequential items in the time the pool-wide ones leave free.
    let mut free = free_intervals(start.millis() + ATTACK_GAP.millis(), end - ATTACK_GAP.millis(), &blocked);
    let mut sequential: Vec<AttackKind> =
        order.iter().copied().filter(|k| k.placement() == Placement::Sequential).collect();
    // Longest first, so long items find room before short ones fill it.
    sequential.sort_by_key(|k| std::cmp::Reverse(k.max_span()));
    let mut assigned: Vec<Vec<AttackKind>> = vec![Vec::new(); free.len()];
    for kind in sequential {
        let need = |i: usize, free: &[(i64, i64)]| {
            let used = free[i].0;
            let gap = if assigned[i].is_empty() { 0 } else { ATTACK_GAP.millis() };
            used + gap + kind.max_span().millis() <= free[i].1
        };
        let fitting: Vec<usize> = (0..free.len()).filter(|&i| need(i, &free)).collect();
        if fitting.is_empty() {
            return Err(too_short(&format!("{ATTACK_GAP} between any two")));
        }
        // A random interval among those with room, weighted by room, so attacks spread over the day.
        let room_mins = |i: usize| ((free[i].1 - free[i].0) / 60_000).clamp(1, i64::from(u32::MAX)) as u32;
        let pick = fitting[rng.weighted(fitting.iter().map(|&i| room_mins(i)))];
        let gap = if assigned[pick].is_empty() { 0 } else { ATTACK_GAP.millis() };
        free[pick].0 += gap + kind.max_span().millis();
        assigned[pick].push(kind);
    }
    // Lay each interval's items out in random order, its spare time spread at random between them.
    let original = free_intervals(start.millis() + ATTACK_GAP.millis(), end - ATTACK_GAP.millis(), &blocked);
    for ((lo, hi), mut kinds) in original.into_iter().zip(assigned) {
        if kinds.is_empty() {
            continue;
        }
        rng.shuffle(&mut kinds);
        let used: i64 =
            kinds.iter().map(|k| k.max_span().millis()).sum::<i64>() + ATTACK_GAP.millis() * (kinds.len() as i64 - 1);
        let spare = (hi - lo - used).max(0);
        let weights: Vec<f64> = (0..=kinds.len()).map(|_| rng.unit() + 0.05).collect();
        let total: f64 = weights.iter().sum();
        let mut at = lo;
        for (i, kind) in kinds.into_iter().enumerate() {
            at += (spare as f64 * weights[i] / total) as i64;
            out.push(Slot { kind, start: Timestamp(at) });
            at += kind.max_span().millis() + ATTACK_GAP.millis();
        }
    }

    // Long items beside the rest, anywhere they fit.
    for &kind in order.iter().filter(|k| k.placement() == Placement::Alongside) {
        let lo = start.millis() + ATTACK_GAP.millis();
        let hi = end - ATTACK_GAP.millis() - kind.max_span().millis();
        if hi < lo {
            return Err(too_short(&format!("{} runs up to {}", kind.name(), kind.max_span())));
        }
        out.push(Slot { kind, start: Timestamp(rng.range(lo, hi)) });
    }
    Ok(out)
}

/// `[lo, hi)` less the `blocked` spans, each widened by [`ATTACK_GAP`] on both sides.
fn free_intervals(lo: i64, hi: i64, blocked: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut from = lo;
    for &(a, b) in blocked {
        let (a, b) = (a - ATTACK_GAP.millis(), b + ATTACK_GAP.millis());
        if a > from {
            out.push((from, a.min(hi)));
        }
        from = from.max(b);
    }
    if hi > from {
        out.push((from, hi));
    }
    out.retain(|(a, b)| b > a);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_772_409_600_000);
    const DAY: Span = Span(86_400_000);

    fn every_kind() -> Vec<AttackKind> {
        AttackKind::ALL.to_vec()
    }

    #[test]
    fn every_kind_fits_a_day_with_the_spacing_rules() {
        for seed in 0..20 {
            let slots = slots(&every_kind(), T0, DAY, &mut Rng::new(seed, 5)).unwrap();
            assert_eq!(slots.len(), AttackKind::ALL.len());
            let span = |s: &Slot| (s.start.millis(), s.start.millis() + s.kind.max_span().millis());
            for s in &slots {
                let (a, b) = span(s);
                assert!(a >= T0.millis() + ATTACK_GAP.millis() && b <= T0.millis() + DAY.millis(), "{s:?}");
                if s.kind.placement() == Placement::PoolWide {
                    assert!(a >= T0.millis() + POOL_START_AFTER.millis(), "{s:?}");
                }
            }
            let placed: Vec<&Slot> = slots.iter().filter(|s| s.kind.placement() != Placement::Alongside).collect();
            for (i, x) in placed.iter().enumerate() {
                for y in &placed[i + 1..] {
                    let ((a0, a1), (b0, b1)) = (span(x), span(y));
                    let both_pool =
                        x.kind.placement() == Placement::PoolWide && y.kind.placement() == Placement::PoolWide;
                    let gap = if both_pool { POOL_GAP } else { ATTACK_GAP }.millis();
                    assert!(a1 + gap <= b0 || b1 + gap <= a0, "seed {seed}: {x:?} and {y:?} too close");
                }
            }
        }
    }

    #[test]
    fn the_same_stream_gives_the_same_slots_and_too_little_time_is_an_error() {
        let a = slots(&every_kind(), T0, DAY, &mut Rng::new(3, 5)).unwrap();
        let b = slots(&every_kind(), T0, DAY, &mut Rng::new(3, 5)).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let err = slots(&every_kind(), T0, Span(12 * 3_600_000), &mut Rng::new(3, 5)).unwrap_err();
        assert!(err.contains("--duration") && err.contains("too short"), "{err}");
        assert!(slots(&[], T0, Span::mins(1), &mut Rng::new(3, 5)).unwrap().is_empty());
    }
}
