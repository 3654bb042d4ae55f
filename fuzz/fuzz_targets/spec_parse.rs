//! Fuzzes the detector-spec parser (`parse_spec`, `parse_set`) and, for every spec it accepts, builds the
//! engine and runs a few events through it: a valid spec must never make a detector panic.
#![no_main]

use authwatch::detect::{Engine, EngineSettings};
use authwatch::event::{EventKind, Origin, Outcome, SignInEvent};
use authwatch::spec::{parse_set, parse_spec};
use authwatch::time::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The id must equal the file stem: take the stem from the text's own `id` so valid specs get through.
    let stem = toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| t.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "fuzz".to_owned());
    if parse_spec(text, "fuzz.toml", &stem).is_err() {
        return;
    }
    let name = format!("{stem}.toml");
    let Ok(set) = parse_set(&[(name.as_str(), text)]) else { panic!("parse_spec accepted what parse_set refused") };
    let mut engine = Engine::new(&set, EngineSettings::default());
    let mut out = Vec::new();
    let origin = Origin::new("fuzz".into(), 1);
    let base = 1_721_237_155_000i64;
    for i in 0..64i64 {
        let outcome = if i % 7 == 6 { Outcome::Success } else { Outcome::Failure };
        let mut ev = SignInEvent::new(Timestamp(base + i * 1_000), EventKind::SignIn, outcome, origin.clone());
        ev.user_name = Some(format!("user{}", i % 5).into());
        ev.ip = Some(std::net::IpAddr::from([203, 0, 113, (i % 3) as u8]));
        ev.city = Some(if i % 2 == 0 { "Paris" } else { "Tokyo" }.into());
        ev.country = Some(if i % 2 == 0 { "France" } else { "Japan" }.into());
        engine.push(ev, &mut out);
    }
    engine.finish(&mut out);
});
