//! Fuzzes the CloudTrail record decoder: any bytes as one line with `--format cloudtrail`.
#![no_main]

use authwatch::decode::{decode_record, Decoded, FormatHint};
use authwatch::event::Origin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Origin::new("fuzz".into(), 1);
    decode_record(data, &origin, FormatHint::CloudTrail, &mut |d| {
        if let Decoded::Rejected(r) = d {
            // Every rejection is located.
            assert_eq!(r.origin.file.as_ref(), "fuzz");
            assert_eq!(r.origin.line, 1);
        }
    });
});
