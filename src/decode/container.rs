//! Containers around events: gzip, base64 of gzip, concatenated JSON values, `{"Records":[...]}`,
//! `filter-log-events` output and CloudWatch Logs subscription payloads.

use std::io::Read;

use base64::Engine;
use flate2::read::MultiGzDecoder;
use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{decode_event_object, json_error, json_kind, Decoded, Record, Rejection, SkipReason, Text};
use crate::event::{LogFormat, Origin};

/// Largest payload a gzip record may decompress to. A CloudWatch subscription payload is at most 1 MB
/// compressed; 64 MiB leaves room for any real one and stops a zip bomb.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// How many containers or encodings may wrap one another (gzip in base64 in a log event in ...). Real
/// data nests at most three deep; the bound keeps a crafted record from recursing without end.
pub const MAX_NESTING: u32 = 8;

pub(super) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Base64 of the gzip magic and deflate method byte: how every base64-encoded gzip payload starts.
pub(super) const BASE64_GZIP_PREFIX: &str = "H4sI";
pub(super) const UTF8_BOM: char = '\u{feff}';

/// Decodes raw record bytes: unpacks gzip and base64 of gzip, checks UTF-8, then decodes the JSON.
pub(super) fn decode_bytes(
    bytes: &[u8],
    origin: &Origin,
    forced: Option<LogFormat>,
    depth: u32,
    out: &mut dyn FnMut(Decoded),
) {
    if depth > MAX_NESTING {
        return reject(out, origin, format!("containers nested more than {MAX_NESTING} deep"));
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        return match gunzip(bytes) {
            Ok(inner) => decode_bytes(&inner, origin, forced, depth + 1, out),
            Err(reason) => reject(out, origin, reason),
        };
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return reject(out, origin, format!("invalid UTF-8 at byte {}", e.valid_up_to())),
    };
    let text = text.trim_start_matches(UTF8_BOM).trim();
    if text.starts_with(BASE64_GZIP_PREFIX) {
        return match unbase64(text) {
            Ok(inner) => decode_bytes(&inner, origin, forced, depth + 1, out),
            Err(reason) => reject(out, origin, reason),
        };
    }
    decode_json(text, origin, forced, depth, out);
}

/// Decodes JSON text holding one value, or several concatenated (Firehose writes `{...}{...}`).
fn decode_json(text: &str, origin: &Origin, forced: Option<LogFormat>, depth: u32, out: &mut dyn FnMut(Decoded)) {
    match text.as_bytes().first() {
        None => reject(out, origin, "empty record"),
        Some(b'{') => {
            let mut de = serde_json::Deserializer::from_str(text);
            match Record::deserialize(&mut de) {
                Ok(rec) if de.end().is_ok() => decode_object(&rec, origin, forced, depth, out),
                Ok(_) => decode_concatenated(text, origin, forced, depth, out),
                Err(e) if e.is_data() && e.to_string().starts_with("duplicate field") => {
                    reject(out, origin, json_error(&e))
                }
                Err(e) if e.is_data() => reject(out, origin, format!("a field has the wrong type: {e}")),
                Err(e) => reject(out, origin, format!("invalid JSON: {e}")),
            }
        }
        // Checked whole first, so a broken array is one rejection rather than some events and a rejection.
        Some(b'[') => match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => decode_each(text, "array", origin, forced, depth, out),
            Err(e) => reject(out, origin, format!("invalid JSON: {e}")),
        },
        Some(_) => match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) => reject(out, origin, format!("expected a JSON object, found {}", json_kind(raw.get()))),
            Err(e) => reject(out, origin, format!("not JSON: {e}")),
        },
    }
}

/// Several JSON values one after another: each is a record of its own.
fn decode_concatenated(
    text: &str,
    origin: &Origin,
    forced: Option<LogFormat>,
    depth: u32,
    out: &mut dyn FnMut(Decoded),
) {
    let values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    for (i, value) in values.enumerate() {
        let at = origin.with_record(i);
        match value {
            Ok(raw) => decode_json(raw.get(), &at, forced, depth + 1, out),
            Err(e) => return reject(out, &at, format!("invalid JSON after {i} concatenated values: {e}")),
        }
    }
}

/// Decodes each element of a JSON array (already known to be valid JSON) as a record of its own.
fn decode_each(
    array: &str,
    field: &str,
    origin: &Origin,
    forced: Option<LogFormat>,
    depth: u32,
    out: &mut dyn FnMut(Decoded),
) {
    let result = for_each_element(array, &mut |i, item| {
        decode_json(item.get(), &origin.with_record(i), forced, depth + 1, out);
    });
    if let Err(reason) = result {
        reject(out, origin, format!("`{field}`: {reason}"));
    }
}

/// Calls `each` with every element of the JSON array `array`, in order, without collecting them: a
/// document may hold millions of tiny elements, and a list of them would cost more than the document.
fn for_each_element<'a>(array: &'a str, each: &mut dyn FnMut(usize, &'a RawValue)) -> Result<(), String> {
    struct Elements<'f, 'a>(&'f mut dyn FnMut(usize, &'a RawValue));

    impl<'de: 'a, 'a> Visitor<'de> for Elements<'_, 'a> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                (self.0)(i, item);
                i += 1;
            }
            Ok(())
        }
    }

    let mut de = serde_json::Deserializer::from_str(array);
    de.deserialize_seq(Elements(each)).and_then(|()| de.end()).map_err(|e| e.to_string())
}

/// One JSON object: a container to open, or an event to decode.
fn decode_object(rec: &Record, origin: &Origin, forced: Option<LogFormat>, depth: u32, out: &mut dyn FnMut(Decoded)) {
    if let Some(records) = rec.records {
        return match is_array(records, "Records") {
            Ok(()) => decode_each(records.get(), "Records", origin, forced, depth, out),
            Err(reason) => reject(out, origin, reason),
        };
    }
    if let Some(events) = rec.events {
        return decode_log_events(events, "events", origin, forced, depth, out);
    }
    if rec.message_type.is_present() || rec.log_events.is_some() {
        return decode_subscription(rec, origin, forced, depth, out);
    }
    out(decode_event_object(rec, origin, forced));
}

/// A subscription-filter payload: `{"messageType", "logGroup", "logStream", "logEvents": [...]}`.
fn decode_subscription(
    rec: &Record,
    origin: &Origin,
    forced: Option<LogFormat>,
    depth: u32,
    out: &mut dyn FnMut(Decoded),
) {
    match rec.message_type.get() {
        Some("CONTROL_MESSAGE") => out(Decoded::Skipped(SkipReason::ControlMessage)),
        Some("DATA_MESSAGE") | None => match rec.log_events {
            Some(events) => decode_log_events(events, "logEvents", origin, forced, depth, out),
            None => reject(out, origin, "subscription payload without `logEvents`"),
        },
        Some(other) => reject(out, origin, format!("unknown subscription messageType '{}'", super::clip(other))),
    }
}

/// A log event as CloudWatch Logs returns it: the event itself is the `message` string.
#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

/// `events` (filter-log-events output) or `logEvents` (subscription payload): decode each `message`.
fn decode_log_events(
    events: &RawValue,
    field: &str,
    origin: &Origin,
    forced: Option<LogFormat>,
    depth: u32,
    out: &mut dyn FnMut(Decoded),
) {
    if let Err(reason) = is_array(events, field) {
        return reject(out, origin, reason);
    }
    let result =
        for_each_element(events.get(), &mut |i, item| decode_log_event(item, i, field, origin, forced, depth, out));
    if let Err(reason) = result {
        reject(out, origin, format!("`{field}`: {reason}"));
    }
}

/// One element of `events` or `logEvents`.
fn decode_log_event(
    item: &RawValue,
    i: usize,
    field: &str,
    origin: &Origin,
    forced: Option<LogFormat>,
    depth: u32,
    out: &mut dyn FnMut(Decoded),
) {
    let at = origin.with_record(i);
    let message = match serde_json::from_str::<LogEvent>(item.get()) {
        Ok(LogEvent { message: Some(m) }) => m,
        Ok(LogEvent { message: None }) => return reject(out, &at, format!("`{field}[{i}]` has no `message`")),
        Err(e) => return reject(out, &at, format!("`{field}[{i}]` is not a log event: {e}")),
    };
    match message.get().as_bytes().first() {
        // The documented form: the event JSON as a string.
        Some(b'"') => match serde_json::from_str::<Text>(message.get()) {
            Ok(text) => match text.0 {
                Some(s) => decode_bytes(s.as_bytes(), &at, forced, depth + 1, out),
                None => reject(out, &at, format!("`{field}[{i}].message` is empty")),
            },
            Err(e) => reject(out, &at, format!("`{field}[{i}].message`: {e}")),
        },
        // Tolerated: the event inlined as an object.
        Some(b'{') => decode_json(message.get(), &at, forced, depth + 1, out),
        _ => reject(out, &at, format!("`{field}[{i}].message` is {}, expected a string", json_kind(message.get()))),
    }
}

/// A container field must be an array (its JSON is already known to be valid).
fn is_array(raw: &RawValue, field: &str) -> Result<(), String> {
    if !raw.get().starts_with('[') {
        return Err(format!("`{field}` is {}, expected an array", json_kind(raw.get())));
    }
    Ok(())
}

pub(super) fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut inner = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut inner)
        .map_err(|e| format!("corrupt gzip payload: {e}"))?;
    if inner.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(format!("gzip payload decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"));
    }
    Ok(inner)
}

pub(super) fn unbase64(text: &str) -> Result<Vec<u8>, String> {
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        engine.decode(compact)
    } else {
        engine.decode(text)
    };
    let bytes = decoded.map_err(|e| format!("invalid base64 (starts like base64 of gzip): {e}"))?;
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Err("base64 payload is not gzip".into());
    }
    Ok(bytes)
}

fn reject(out: &mut dyn FnMut(Decoded), origin: &Origin, reason: impl Into<String>) {
    out(Decoded::Rejected(Rejection::new(origin, reason)));
}
