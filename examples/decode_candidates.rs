//! Decoder candidates side by side on the same lines, in one process, one thread, interleaved rounds:
//! today's serde walk, the one-pass scanner that replaced it for plain Cognito lines, and general JSON
//! parsers (serde_json, simd-json with reused buffers, sonic-rs) into a borrowed struct of the fields an
//! event needs, each turning it into the same `SignInEvent` (docs/performance.md, issue 18).
//!
//! Usage: cargo run --release --features decode-candidates --example decode_candidates -- FILE [LINES] [ROUNDS]
//! (FILE: JSON lines, e.g. `authwatch simulate --events 300000 --seed 3`; the first LINES, default 200000,
//! are read into memory; ROUNDS, default 3, of every candidate in turn; the median round is reported).
//! Only the two authwatch decoders read CloudTrail: on a CloudTrail file the struct candidates say n/a.

use std::borrow::Cow;
use std::io::BufRead;
use std::net::IpAddr;
use std::time::Instant;

use serde::Deserialize;

use authwatch::decode::{decode_record, decode_record_with_serde, Decoded};
use authwatch::event::{EventKind, Origin, Outcome, SignInEvent, Step};
use authwatch::time::Timestamp;

/// Lines read when none is given: enough for a steady figure (about 160 MB of export lines).
const DEFAULT_LINES: usize = 200_000;
/// Rounds when none is given: the median of three damps a busy machine.
const DEFAULT_ROUNDS: usize = 3;

/// The fields of a Cognito user-activity line that an event needs, borrowed where the text has no escape.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "eventTimestamp", borrow)]
    event_timestamp: Cow<'a, str>,
    #[serde(rename = "logSourceId", borrow, default)]
    log_source_id: Option<LogSourceId<'a>>,
    #[serde(borrow)]
    message: Message<'a>,
}

#[derive(Deserialize)]
struct LogSourceId<'a> {
    #[serde(rename = "userPoolId", borrow, default)]
    user_pool_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "eventId", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", borrow)]
    event_type: Cow<'a, str>,
    #[serde(rename = "userSub", borrow, default)]
    user_sub: Option<Cow<'a, str>>,
    #[serde(rename = "userName", borrow, default)]
    user_name: Option<Cow<'a, str>>,
    #[serde(rename = "userPoolId", borrow, default)]
    user_pool_id: Option<Cow<'a, str>>,
    #[serde(rename = "clientId", borrow, default)]
    client_id: Option<Cow<'a, str>>,
    #[serde(rename = "eventResponse", borrow, default)]
    event_response: Option<Cow<'a, str>>,
    #[serde(rename = "riskLevel", borrow, default)]
    risk_level: Option<Cow<'a, str>>,
    #[serde(rename = "riskDecision", borrow, default)]
    risk_decision: Option<Cow<'a, str>>,
    #[serde(rename = "deviceName", borrow, default)]
    device_name: Option<Cow<'a, str>>,
    #[serde(rename = "ipAddress", borrow, default)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    city: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    challenges: Vec<Challenge<'a>>,
}

#[derive(Deserialize)]
struct Challenge<'a> {
    #[serde(rename = "challengeName", borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "challengeResponse", borrow, default)]
    response: Option<Cow<'a, str>>,
}

/// The event a struct candidate's fields make: the same owned strings, time and address the decoder makes
/// (without its rarer checks), so every candidate pays for the same output.
fn event(line: &Line, origin: &Origin) -> Option<SignInEvent> {
    fn owned<T: for<'s> From<&'s str>>(s: &Option<Cow<str>>) -> Option<T> {
        s.as_deref().filter(|s| !s.is_empty()).map(T::from)
    }
    let m = &line.message;
    let time = Timestamp(line.event_timestamp.trim().parse().ok()?);
    let outcome = match m.event_response.as_deref() {
        Some("Pass") => Outcome::Success,
        Some("Fail") => Outcome::Failure,
        _ => Outcome::Unknown,
    };
    let kind = if m.event_type == "SignIn" { EventKind::SignIn } else { EventKind::Other };
    let mut ev = SignInEvent::new(time, kind, outcome, origin.clone());
    ev.event_name = m.event_type.as_ref().into();
    ev.user_pool_id =
        owned(&m.user_pool_id).or_else(|| line.log_source_id.as_ref().and_then(|l| owned(&l.user_pool_id)));
    ev.client_id = owned(&m.client_id);
    ev.user_name = owned(&m.user_name);
    ev.user_sub = owned(&m.user_sub);
    ev.ip = m.ip_address.as_deref().and_then(|s| s.trim().parse::<IpAddr>().ok());
    ev.city = owned(&m.city);
    ev.country = owned(&m.country);
    ev.device = owned(&m.device_name);
    ev.risk.level = owned(&m.risk_level);
    ev.risk.decision = owned(&m.risk_decision);
    ev.event_id = owned(&m.event_id);
    ev.failure_reason = (outcome == Outcome::Failure).then(|| "Fail".into());
    for c in &m.challenges {
        let step = match c.response.as_deref() {
            Some("Success") => Step::Passed,
            Some("Failure") => Step::Failed,
            _ => Step::Unknown,
        };
        match c.name.as_deref() {
            Some("Password") => ev.factors.password = step,
            Some("Mfa") => ev.factors.mfa = step,
            _ => {}
        }
    }
    Some(ev)
}

fn is_event(d: &Decoded) -> usize {
    usize::from(matches!(d, Decoded::Event(_)))
}

/// A candidate: decodes every line and returns how many events it made (none may be optimised away).
type Candidate = Box<dyn FnMut(&[String], &Origin) -> usize>;

fn candidates() -> Vec<(&'static str, Candidate)> {
    let mut input = Vec::new();
    let mut buffers = simd_json::Buffers::new(4096);
    vec![
        (
            "today's decoder (serde walk, decode_record_with_serde)",
            Box::new(move |lines: &[String], o: &Origin| {
                let mut n = 0;
                for l in lines {
                    decode_record_with_serde(l.as_bytes(), o, None, &mut |d| n += is_event(&d));
                }
                n
            }),
        ),
        (
            "serde_json into a borrowed struct of the needed fields",
            Box::new(|lines: &[String], o: &Origin| {
                lines.iter().filter_map(|l| serde_json::from_str::<Line>(l).ok()).filter_map(|l| event(&l, o)).count()
            }),
        ),
        (
            "simd-json into the same struct, reused Buffers and input buffer",
            Box::new(move |lines: &[String], o: &Origin| {
                let mut n = 0;
                for l in lines {
                    input.clear();
                    input.extend_from_slice(l.as_bytes());
                    if let Ok(line) = simd_json::serde::from_slice_with_buffers::<Line>(&mut input, &mut buffers) {
                        n += usize::from(event(&line, o).is_some());
                    }
                }
                n
            }),
        ),
        (
            "sonic-rs into the same struct",
            Box::new(|lines: &[String], o: &Origin| {
                lines.iter().filter_map(|l| sonic_rs::from_str::<Line>(l).ok()).filter_map(|l| event(&l, o)).count()
            }),
        ),
        (
            "one-pass scanner, serde for odd records (decode_record)",
            Box::new(move |lines: &[String], o: &Origin| {
                let mut n = 0;
                for l in lines {
                    decode_record(l.as_bytes(), o, None, &mut |d| n += is_event(&d));
                }
                n
            }),
        ),
    ]
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: decode_candidates FILE [LINES] [ROUNDS]");
        std::process::exit(2);
    };
    let max_lines = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_LINES);
    let rounds = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_ROUNDS).max(1);
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let lines: Vec<String> = file.lines().take(max_lines).collect::<Result<_, _>>()?;
    let bytes: usize = lines.iter().map(String::len).sum();
    let origin = Origin::new(path.as_str().into(), 1);

    let mut candidates = candidates();
    let mut rates = vec![Vec::new(); candidates.len()];
    let mut events = vec![0; candidates.len()];
    let n = candidates.len();
    for round in 0..rounds {
        // Each round starts with another candidate, so none always runs first or right after another.
        for i in (0..n).map(|k| (k + round) % n) {
            let run = &mut candidates[i].1;
            let started = Instant::now();
            events[i] = run(&lines, &origin);
            rates[i].push(lines.len() as f64 / started.elapsed().as_secs_f64());
        }
    }
    let median = |r: &mut Vec<f64>| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let medians: Vec<f64> = rates.iter_mut().map(median).collect();
    println!(
        "{} lines ({} MB) of {path}, one thread, median of {rounds} interleaved rounds (rotated order)",
        lines.len(),
        bytes >> 20
    );
    println!();
    println!("| candidate | events | lines/s | vs today's decoder |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in candidates.iter().enumerate() {
        if events[i] == 0 {
            println!("| {name} | 0 | n/a | n/a |");
        } else {
            println!("| {name} | {} | {:.0} | {:.2}x |", events[i], medians[i], medians[i] / medians[0]);
        }
    }
    Ok(())
}
