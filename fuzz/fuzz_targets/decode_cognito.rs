//! Fuzzes the Cognito user-activity decoder: any bytes as one line with `--format cognito`.
#![no_main]

use authwatch::decode::{decode_record, Decoded};
use authwatch::event::{LogFormat, Origin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Origin::new("fuzz".into(), 1);
    decode_record(data, &origin, Some(LogFormat::CognitoUserActivity), &mut |d| {
        if let Decoded::Rejected(r) = d {
            // Every rejection is located.
            assert_eq!(r.origin.file.as_ref(), "fuzz");
            assert_eq!(r.origin.line, 1);
        }
    });
});
