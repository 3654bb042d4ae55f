//! Fuzzes container detection (gzip, base64 of gzip, `Records`, `events`, subscription payloads,
//! concatenated values, arrays) through `decode_record`. The first byte picks the format hint, so every
//! hint sees every shape.
#![no_main]

use authwatch::decode::{decode_record, Decoded, FormatHint};
use authwatch::event::Origin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, record)) = data.split_first() else { return };
    let hint = match pick % 3 {
        0 => FormatHint::Auto,
        1 => FormatHint::Cognito,
        _ => FormatHint::CloudTrail,
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
    // Every record yields at least one decoded item: an event, a skip or a located rejection.
    assert!(n >= 1, "no output for a record");
});
