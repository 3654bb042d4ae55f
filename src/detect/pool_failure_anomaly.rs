//! `pool_failure_anomaly`: the pool's failed sign-ins leave their learned normal band.
//!
//! The figure is failures per bucket that were not recovered: a failure counts unless the same user
//! signs in successfully within `recovery` (from any address). A client release or an outage makes many
//! known users fail and then succeed a moment later: those failures recover, so the wave stays inside the
//! band; stuffing, guessing and broken integrations do not recover. A bucket is judged once `recovery` has
//! passed after its end, against the band learned from earlier buckets (`baseline.rs`: seasonal by time
//! of day with a week of history, median and MAD of the last day otherwise). Anomalous buckets are not
//! learned.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::json;

use super::baseline::{band_evidence, BandParams, RuleBaseline, Series};
use super::incident::Incident;
use super::pool::{pool_label, CappedSet, Learner, Pools};
use super::registry::Registered;
use super::rule::{Rule, Seen};
use super::{elapsed, DetectorStats, EngineSettings, IncidentBook, Summarize};
use crate::event::Outcome;
use crate::finding::Finding;
use crate::spec::{KeyKind, Spec};
use crate::time::{Span, Timestamp};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyParams {
    pub baseline: BandParams,
    /// A failure followed by the same user's success within this long is recovered (not counted).
    pub recovery: Span,
    /// Users with an unrecovered failure remembered at most; past it the oldest bucket's are final.
    pub max_pending_users: usize,
}

pub struct PoolFailureAnomaly {
    params: AnomalyParams,
    pools: Pools<PoolState>,
}

/// One bucket waiting for its failures to recover or not.
struct Pending {
    bucket: i64,
    failures: u64,
    recovered: u64,
    attempts: u64,
    first: Timestamp,
    last: Timestamp,
    /// The addresses failing most in the bucket (Misra-Gries counters: any address with more than a
    /// [`HEAVY_ADDRESSES`]+1-th of the bucket's failures is among them).
    heavy: Vec<(u64, String, u64)>,
}

/// Counters kept per bucket for the addresses failing most.
const HEAVY_ADDRESSES: usize = 8;
/// An address is named in the evidence when it had at least this share of the bucket's failures (and
/// [`MIN_HEAVY_FAILURES`]): a single-address stuffing run behind the surge, not a typo among many.
const HEAVY_SHARE: f64 = 0.1;
const MIN_HEAVY_FAILURES: u64 = 3;

impl Pending {
    fn count_address(&mut self, h: u64, name: &str) {
        if let Some(e) = self.heavy.iter_mut().find(|e| e.0 == h) {
            e.2 += 1;
        } else if self.heavy.len() < HEAVY_ADDRESSES {
            self.heavy.push((h, name.to_string(), 1));
        } else {
            for e in &mut self.heavy {
                e.2 -= 1;
            }
            self.heavy.retain(|e| e.2 > 0);
        }
    }
}

struct PoolState {
    /// The pool key as text (the baseline file's key).
    name: String,
    /// Unrecovered failures per bucket.
    series: Series,
    /// Buckets not judged yet, oldest first.
    pending: VecDeque<Pending>,
    /// Users with a failure not yet recovered, by hash, with its bucket.
    failed_users: CappedSet,
}

impl Registered for PoolFailureAnomaly {
    const ID: &'static str = "pool_failure_anomaly";
    const KEY: Option<KeyKind> = Some(KeyKind::Pool);
    type Params = AnomalyParams;

    fn check_params(p: &AnomalyParams) -> Result<(), String> {
        p.baseline.check()?;
        if p.recovery < Span(0) || p.recovery > Span::hours(1) {
            return Err(format!("recovery = {} must be between 0 and 1h", p.recovery));
        }
        if p.max_pending_users == 0 {
            return Err("max_pending_users must be positive".into());
        }
        Ok(())
    }
}

impl Rule for PoolFailureAnomaly {
    fn new(spec: &Spec, params: AnomalyParams, settings: &EngineSettings) -> Self {
        let pools = Pools::seeded(spec.max_keys, settings, &spec.id, &params.baseline, |name, series| PoolState {
            series,
            ..PoolState::new(&params, name)
        });
        PoolFailureAnomaly { pools, params }
    }

    fn baseline(&self) -> Option<RuleBaseline> {
        Some(self.pools.learned(&self.params.baseline))
    }

    fn observe(&mut self, seen: Seen<'_>, book: &mut IncidentBook, out: &mut Vec<Finding>) {
        let Seen { spec, ev, keys, key, .. } = seen;
        let p = &self.params;
        let t = ev.time;
        let Some(pool) = self.pools.get_or_make(key.hash, || PoolState::new(p, key.key)) else { return };
        let b = p.baseline.bucket_of(t);
        pool.series.saw(b);
        // Judge every bucket whose recovery time is over, before this event changes anything.
        while let Some(oldest) = pool.pending.front() {
            let judged_at = p.baseline.bucket_start(oldest.bucket + 1).saturating_add(p.recovery);
            if t < judged_at {
                break;
            }
            let Some(done) = pool.pending.pop_front() else { break };
            judge(spec, p, pool, key.key, key.hash, ev, &done, book, out);
        }
        if pool.pending.back().is_none_or(|last| last.bucket < b) {
            pool.pending.push_back(Pending {
                bucket: b,
                failures: 0,
                recovered: 0,
                attempts: 0,
                first: t,
                last: t,
                heavy: Vec::new(),
            });
        }
        let user = keys.user.map(|_| keys.user_hash);
        match ev.outcome {
            Outcome::Failure => {
                if let Some(now) = pool.pending.back_mut() {
                    now.failures += 1;
                    now.attempts += 1;
                    now.first = now.first.min(t);
                    now.last = now.last.max(t);
                    if let Some(ip) = keys.ip {
                        now.count_address(keys.ip_hash, ip);
                    }
                }
                if let Some(h) = user {
                    if pool.failed_users.len() >= p.max_pending_users && !pool.failed_users.contains(h) {
                        // Full: this failure cannot be matched with a later success; it stays counted.
                        return;
                    }
                    // The user's failures waiting to recover, in the bucket they fell in. A user failing again
                    // in a later bucket starts over there: the earlier bucket's failures stay unrecovered,
                    // a small overcount on the side of caution (moving them along instead let a slow
                    // guesser's failures pile up bucket after bucket).
                    let earlier = match pool.failed_users.get(h).map(unpack) {
                        Some((bucket, n)) if bucket == b => n,
                        _ => 0,
                    };
                    pool.failed_users.set(h, pack(b, earlier + 1));
                }
            }
            Outcome::Success => {
                if let Some(now) = pool.pending.back_mut() {
                    now.attempts += 1;
                }
                let Some((failed_in, n)) = user.and_then(|h| pool.failed_users.remove(h)).map(unpack) else { return };
                if let Some(bucket) = pool.pending.iter_mut().find(|x| x.bucket == failed_in) {
                    // Every failure of a user who then got in: one confused user, not an attack.
                    bucket.recovered = (bucket.recovered + n).min(bucket.failures);
                }
            }
            _ => {}
        }
    }

    fn summary(_spec: &Spec, inc: &Incident) -> String {
        let expected = inc
            .extra
            .get("unrecovered_failures_per_bucket")
            .and_then(|v| v.get("expected"))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0);
        format!(
            "failed sign-ins on {} above its normal: {} not followed by the user's success, against about {} expected per bucket, over {}",
            pool_label(inc),
            inc.failures,
            expected,
            elapsed(inc)
        )
    }

    fn stats(&self, stats: &mut DetectorStats) {
        stats.tracked_keys = self.pools.len();
        stats.evicted_keys = self.pools.refused + self.pools.iter().map(|(_, s)| s.failed_users.restarts).sum::<u64>();
        stats.warming_up = self.pools.warm_at(&self.params.baseline);
    }
}

/// A user's pending failures as one value: the bucket they are in and how many.
fn pack(bucket: i64, failures: u64) -> i64 {
    (bucket << 16) | failures.min(0xffff) as i64
}

fn unpack(v: i64) -> (i64, u64) {
    (v >> 16, (v & 0xffff) as u64)
}

impl Learner for PoolState {
    fn name(&self) -> &str {
        &self.name
    }

    fn series(&self) -> &Series {
        &self.series
    }
}

impl PoolState {
    fn new(p: &AnomalyParams, name: &str) -> PoolState {
        PoolState {
            name: name.to_string(),
            series: Series::default(),
            pending: VecDeque::new(),
            failed_users: CappedSet::new(p.max_pending_users),
        }
    }
}

/// Judges one bucket whose failures had their chance to recover: learns it, or reports it.
#[allow(clippy::too_many_arguments)]
fn judge(
    spec: &Spec,
    p: &AnomalyParams,
    pool: &mut PoolState,
    key: &str,
    h: u64,
    ev: &crate::event::SignInEvent,
    done: &Pending,
    book: &mut IncidentBook,
    out: &mut Vec<Finding>,
) {
    let summarize: Summarize = PoolFailureAnomaly::summary;
    // Users whose failure in this bucket never recovered are final now.
    pool.failed_users.retain_at_least(pack(done.bucket + 1, 0));
    let unrecovered = done.failures.saturating_sub(done.recovered);
    let band = pool.series.band(&p.baseline, done.bucket);
    let anomalous = pool.series.warmed_up(&p.baseline, done.bucket)
        && unrecovered >= spec.threshold
        && band.is_none_or(|band| unrecovered as f64 > band.high);
    if !anomalous {
        pool.series.record(&p.baseline, done.bucket, unrecovered as f64);
        return;
    }
    // The addresses behind the surge, when a few are (the correlation stage links the finding by them).
    let heavy_at_least = ((done.failures as f64 * HEAVY_SHARE).ceil() as u64).max(MIN_HEAVY_FAILURES);
    let heavy: Vec<&(u64, String, u64)> = done.heavy.iter().filter(|e| e.2 >= heavy_at_least).collect();
    let evidence = |inc: &mut Incident| {
        for (h, name, n) in &heavy {
            inc.add_named(*h, name, *n);
        }
        if let Some(band) = &band {
            inc.extra.insert("unrecovered_failures_per_bucket".into(), band_evidence(band, unrecovered as f64));
        }
        inc.extra.insert("bucket".into(), json!(p.baseline.bucket.to_string()));
        inc.extra.insert("recovered_failures".into(), json!(done.recovered));
        inc.extra.insert("attempts".into(), json!(done.attempts));
    };
    if let Some(inc) = book.get_mut(h) {
        inc.add_counts(done.first, done.last, unrecovered, 0);
        evidence(inc);
        book.rerate(h, spec, summarize, out);
        return;
    }
    let mut inc = Incident::open(spec, key, ev, done.first);
    inc.detected_at = ev.time;
    inc.last_seen = done.last;
    inc.add_counts(done.first, done.last, unrecovered, 0);
    evidence(&mut inc);
    inc.severity = spec.severity_at(inc.count);
    book.open(h, inc, spec, summarize, out);
}
