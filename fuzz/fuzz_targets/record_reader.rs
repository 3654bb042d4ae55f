//! Fuzzes the file source: any bytes (plain or gzip, lines or one document) through `RecordReader` with
//! small limits, then every record through the decoders, as a replay does.
#![no_main]

use std::io::Cursor;

use authwatch::decode::decode_record;
use authwatch::source::{Limits, ReadItem, RecordReader};
use libfuzzer_sys::fuzz_target;

/// Small limits so the over-limit paths (line skipped unbuffered, document too big) are reachable.
const LIMITS: Limits = Limits { max_line_bytes: 256, max_document_bytes: 4096 };

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = RecordReader::from_read("fuzz", Box::new(Cursor::new(data.to_vec())), LIMITS) else {
        return;
    };
    let mut items = Vec::new();
    let mut last_line = 0;
    loop {
        let more = reader.next_batch(16, &mut items);
        for item in items.drain(..) {
            match item {
                ReadItem::Record(r) => {
                    assert!(r.bytes.len() <= LIMITS.max_document_bytes);
                    assert!(r.origin.line >= last_line, "lines go backwards");
                    last_line = r.origin.line;
                    decode_record(&r.bytes, &r.origin, None, &mut |_| {});
                }
                ReadItem::Rejected(r) => {
                    assert!(r.origin.line >= last_line, "lines go backwards");
                    last_line = r.origin.line;
                }
            }
        }
        if !more {
            break;
        }
    }
    assert!(reader.bytes_read() <= data.len() as u64);
});
