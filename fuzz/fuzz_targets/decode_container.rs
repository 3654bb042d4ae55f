//! Fuzzes container detection (gzip, base64 of gzip, `Records`, `events`, subscription payloads,
//! concatenated values, arrays) through `decode_record`. The first byte picks the format to force (or
//! none, `auto`), so every choice sees every shape.
#![no_main]

use authwatch::decode::{decode_record, Decoded};
use authwatch::event::{LogFormat, Origin};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, record)) = data.split_first() else { return };
    let hint = match pick % 3 {
        0 => None,
        1 => Some(LogFormat::CognitoUserActivity),
        _ => Some(LogFormat::CloudTrail),
    };
    let origin = Origin::new("fuzz".into(), 7);
    let mut n = 0usize;
    decode_record(record, &origin, hint, &mut |d| {
        n += 1;
        if let Decoded::Rejected(r) = d {
            assert_eq!(r.origin.line, 7);
            assert!(!r.reason.is_empty());
        }
    });
    // Nothing vanishes silently: a record that yields no item at all must be an empty container (`[]`,
    // `{"Records":[]}`, an empty `filter-log-events` page), so it is well-formed JSON, or gzip / base64 of
    // gzip holding one. Found by this target: `[\r\r]` (pinned by tests/decode.rs
    // `empty_containers_yield_nothing_and_are_not_rejected`).
    if n == 0 {
        let text = String::from_utf8_lossy(record);
        let text = text.trim();
        let packed = record.starts_with(&[0x1f, 0x8b]) || text.starts_with("H4sI");
        let json = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>().all(|v| v.is_ok());
        assert!(packed || json, "a record that is not an empty container yielded nothing");
    }
});
