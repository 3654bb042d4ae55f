//! Each detector's cost per event with 1 thousand, 100 thousand and 1 million live keys, and the window
//! arithmetic (sliding expiry, idle-key sweeps).

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

use authwatch::detect::cognito_risk::CognitoRisk;
use authwatch::detect::counting::Counting;
use authwatch::detect::impossible_travel::ImpossibleTravel;
use authwatch::detect::mfa_failure_after_password::MfaFailureAfterPassword;
use authwatch::detect::window::{key_hash, Entry, KeyWindow, KeyedState};
use authwatch::detect::{build, Detector, EngineSettings, IpKey, Keys};
use authwatch::event::{EventKind, Factors, Origin, Outcome, SignInEvent, Step};
use authwatch::spec::{DetectorKind, Spec, SpecSet};
use authwatch::time::{Span, Timestamp};

const START: Timestamp = Timestamp(1_772_323_200_000);

/// Live key counts: the full set under `cargo bench`, the smallest in test mode.
fn key_counts() -> Vec<usize> {
    if common::full() {
        vec![1_000, 100_000, 1_000_000]
    } else {
        vec![1_000]
    }
}

/// One reusable event, rewritten in place for key `i` at `time`: what a flood of distinct keys looks like to
/// the rule (a failure, or for the rules that watch successes, a success with the signal they look at).
struct Feed {
    ev: SignInEvent,
}

impl Feed {
    fn new(kind: DetectorKind) -> Feed {
        let outcome =
            if kind.is::<ImpossibleTravel>() || kind.is::<CognitoRisk>() { Outcome::Success } else { Outcome::Failure };
        let mut ev = SignInEvent::new(START, EventKind::SignIn, outcome, Origin::new("bench".into(), 1));
        ev.user_name = Some(Default::default());
        ev.event_id = Some("9e48f598-c837-4e43-8dfd-6e1dd5048957".into());
        ev.city = Some("Chicago".into());
        ev.country = Some("United States".into());
        if kind.is::<CognitoRisk>() {
            ev.risk.level = Some("High".into());
        }
        // Pool-wide rules key on the pool; the MFA rule looks only at sign-ins with an MFA step.
        ev.user_pool_id = Some("us-east-1_Bench0001".into());
        if kind.is::<Counting<MfaFailureAfterPassword>>() {
            ev.factors = Factors { password: Step::Passed, mfa: Step::Failed, pending: false };
        }
        Feed { ev }
    }

    fn set(&mut self, i: usize, time: Timestamp) -> &SignInEvent {
        let user = self.ev.user_name.as_mut().expect("set in new");
        user.clear();
        let _ = write!(user, "user{i}");
        self.ev.ip = Some(IpAddr::V4(Ipv4Addr::from(0x0B00_0000u32 + i as u32)));
        self.ev.time = time;
        &self.ev
    }
}

fn observe(
    det: &mut dyn Detector,
    feed: &mut Feed,
    i: usize,
    time: Timestamp,
    out: &mut Vec<authwatch::finding::Finding>,
) {
    let ev = feed.set(i, time);
    let ip = ev.ip.map(|ip| IpKey::group(ip, 64));
    let keys = Keys::of(ev, ip.as_ref());
    det.observe(ev, &keys, out);
    out.clear();
}

/// Keys `0..n` get one event each, spread over one window; the bench then revisits them in turn, one window
/// later each time, so every key stays live with about one entry (the steady state of a flood).
fn bench_detectors(c: &mut Criterion) {
    let settings = EngineSettings::default();
    let specs = SpecSet::builtin();
    for n in key_counts() {
        let mut g = c.benchmark_group(format!("detector_per_event/{n}_keys"));
        g.sample_size(20);
        for spec in specs.enabled() {
            let mut spec: Spec = spec.clone();
            spec.max_keys = spec.max_keys.max(n * 2);
            let mut det = build(&spec, &settings);
            let mut feed = Feed::new(spec.detector);
            let step = (spec.window.millis() / n as i64).max(1);
            let mut out = Vec::new();
            for i in 0..n {
                observe(det.as_mut(), &mut feed, i, Timestamp(START.0 + i as i64 * step), &mut out);
            }
            let mut cursor = n;
            g.bench_function(spec.id.as_str(), |b| {
                b.iter(|| {
                    let time = Timestamp(START.0 + cursor as i64 * step);
                    observe(det.as_mut(), &mut feed, cursor % n, time, &mut out);
                    cursor += 1;
                })
            });
        }
        g.finish();
    }
}

fn entry(t: i64, aux: u64) -> Entry {
    Entry::new(Timestamp(t), Outcome::Failure, true, aux, Some("203.0.113.7"))
}

fn bench_windows(c: &mut Criterion) {
    let mut g = c.benchmark_group("window");
    // A window holding 1000 entries slides by one: push the newest, expire the oldest.
    let mut w = KeyWindow::new(true, 2);
    for t in 0..1000 {
        w.push(entry(t * 1000, (t % 50) as u64), 4096);
    }
    let mut t = 1000i64;
    g.bench_function("slide_1000_entries", |b| {
        b.iter(|| {
            w.push(entry(t * 1000, (t % 50) as u64), 4096);
            w.expire(Timestamp(t * 1000), Span::secs(1000));
            t += 1;
        })
    });
    // A sweep that drops every idle key.
    let keys = if common::full() { 100_000 } else { 1_000 };
    g.bench_function(format!("sweep_{keys}_idle_keys"), |b| {
        b.iter_batched(
            || {
                let mut s: KeyedState<KeyWindow> = KeyedState::new(keys * 2, Span::mins(15));
                for i in 0..keys {
                    let h = key_hash(&format!("user{i}"));
                    s.get_or_insert_with(h, Timestamp(0), || KeyWindow::new(false, 1)).push(entry(0, 0), 16);
                }
                s
            },
            |mut s| {
                s.maybe_sweep(Timestamp(Span::mins(60).millis()));
                black_box(s.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_detectors, bench_windows);
criterion_main!(benches);
