//! Consistency between each detector and its CloudWatch metric filter: for every spec with a `[cloudwatch]`
//! section and every log format it has a pattern for, the pattern (evaluated by `authwatch::pattern` on
//! each log event message, as CloudWatch would see it) selects exactly the decoded events the detector
//! counts: `match.kinds` × `match.outcomes` (and, for `cognito_risk`, a counted risk signal;
//! for `signup_flood`, sign-ups only; for `mfa_failure_after_password`, an MFA step failed after the password,
//! judged on the event alone as the rule's own function says) in that format.
//! Records that decode to no sign-in event (other services, management calls, notifications) must not
//! match. The corpora are every fixture in `tests/fixtures/decode/` and `tests/fixtures/cloudwatch/`, plus
//! the simulator's output in both formats (benign traffic and every kind of planted attack).

use std::path::PathBuf;

use authwatch::decode::{decode_record, log_messages, Decoded};
use authwatch::detect::cognito_risk::RiskParams;
use authwatch::detect::mfa_failure_after_password::mfa_failed_after_password;
use authwatch::detect::signup_flood::counts_sign_up;
use authwatch::event::{LogFormat, SignInEvent};
use authwatch::pattern::FilterPattern;
use authwatch::simulate::{SimConfig, SimulateArgs, Simulation};
use authwatch::source::{expand_inputs, Limits, ReadItem, RecordReader};
use authwatch::spec::{Spec, SpecSet};

const CORPORA: &[&str] = &["tests/fixtures/decode", "tests/fixtures/cloudwatch"];

/// Every log event message of the corpora with its location.
fn messages() -> Vec<(String, String)> {
    let paths: Vec<PathBuf> = CORPORA.iter().map(PathBuf::from).collect();
    let inputs = expand_inputs(&paths).expect("corpora exist");
    let mut out = Vec::new();
    for input in inputs.iter().filter(|i| !i.display_name().ends_with(".expected")) {
        let mut reader = RecordReader::open(input, Limits::default()).expect("open corpus file");
        let mut items = Vec::new();
        loop {
            let more = reader.next_batch(64, &mut items);
            for item in items.drain(..) {
                if let ReadItem::Record(rec) = item {
                    log_messages(&rec.bytes, &rec.origin, &mut |at, m| {
                        if let Ok(m) = m {
                            out.push((at.to_string(), m.to_owned()));
                        }
                    });
                }
            }
            if !more {
                break;
            }
        }
    }
    for format in ["cognito", "cloudtrail"] {
        let args = SimulateArgs {
            users: 2000,
            duration: "12h".into(),
            start: Some("2026-03-01T00:00:00Z".into()),
            seed: 3,
            attacks: "default".into(),
            events: None,
            log_format: format.into(),
            user_pool_id: "us-east-1_Consist01".into(),
            output: None,
            truth: None,
        };
        let cfg = SimConfig::from_args(&args).expect("simulation arguments");
        let sim = Simulation::new(&cfg).expect("simulation");
        for (i, ev) in sim.enumerate() {
            out.push((format!("simulated-{format}:{}", i + 1), ev.line));
        }
    }
    out
}

fn counted(spec: &Spec, format: LogFormat, ev: &SignInEvent) -> bool {
    let same_format = format == ev.format;
    let risky = match spec.params.get::<RiskParams>() {
        Some(p) => {
            (p.compromised_credentials && ev.risk.compromised_credentials == Some(true))
                || ev
                    .risk
                    .decision
                    .as_deref()
                    .is_some_and(|d| p.risk_decisions.iter().any(|x| x.eq_ignore_ascii_case(d)))
                || ev.risk.level.as_deref().is_some_and(|l| p.risk_levels.iter().any(|x| x.eq_ignore_ascii_case(l)))
        }
        None => true,
    };
    // What the rule itself counts, as far as one event shows it (history such as an earlier MFA challenge
    // or a later recovery is beyond any metric filter; each spec's comment says what the alarm loses).
    let rule_counts = match spec.detector.id() {
        "signup_flood" => counts_sign_up(spec, ev),
        "mfa_failure_after_password" => mfa_failed_after_password(ev),
        _ => true,
    };
    same_format && spec.observes(ev.kind) && spec.counts(ev.outcome) && risky && rule_counts
}

#[test]
fn every_cloudwatch_pattern_selects_exactly_the_events_its_detector_counts() {
    let specs = SpecSet::builtin();
    let messages = messages();
    assert!(messages.len() > 40, "the corpora hold {} messages", messages.len());
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for spec in specs.specs.iter().filter(|s| s.cloudwatch.is_some()) {
        let Some(cw) = &spec.cloudwatch else { continue };
        for (format, text) in &cw.patterns {
            let pattern = FilterPattern::parse(text).expect("validated pattern");
            let mut selected = 0;
            for (at, message) in &messages {
                let mut decoded = Vec::new();
                decode_record(
                    message.as_bytes(),
                    &authwatch::event::Origin::new(at.as_str().into(), 1),
                    None,
                    &mut |d| decoded.push(d),
                );
                let expected = match decoded.as_slice() {
                    [Decoded::Event(ev)] => Some(counted(spec, *format, ev)),
                    [Decoded::Skipped(_)] => Some(false),
                    _ => None,
                };
                let Some(expected) = expected else { continue };
                let actual = pattern.matches(message);
                checked += 1;
                selected += usize::from(actual);
                if actual != expected {
                    mismatches.push(format!(
                        "{} {}: {at}: pattern {} but the detector {}",
                        spec.id,
                        format.as_str(),
                        if actual { "matches" } else { "does not match" },
                        if expected { "counts it" } else { "does not count it" }
                    ));
                }
            }
            assert!(selected > 0, "{} {}: the corpora hold no event it counts", spec.id, format.as_str());
        }
    }
    assert!(checked > 0);
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
