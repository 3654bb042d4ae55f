//! The one walk over the envelopes around log records: encodings (gzip, base64 of gzip), JSON shapes (one
//! object, concatenated values, an array) and containers (`{"Records":[...]}`, `filter-log-events` output,
//! CloudWatch Logs subscription payloads, `aws cloudtrail lookup-events` output, EventBridge events).
//!
//! Two walks share it and differ only at the ends, in a [`Visit`]: decoding (`decode_record`: an object
//! that is no container is a vendor record, anything else a rejection) and listing log event messages for
//! filter patterns (`log_messages`: a log event's message or a CloudTrail record is taken as CloudWatch
//! Logs holds it). The walk is generic over the visit, so the decode hot path makes no dynamic call for
//! it. A new container is one arm in [`Walk::object`]; a new encoding one in [`Walk::bytes`].

use std::io::Read;

use base64::Engine;
use flate2::read::MultiGzDecoder;
use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{clip, json_error, json_kind, scan, Record, SkipReason, Text};
use crate::event::Origin;

/// Largest payload a gzip record may decompress to. A CloudWatch subscription payload is at most 1 MB
/// compressed; 64 MiB leaves room for any real one and stops a zip bomb.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// How many containers or encodings may wrap one another (gzip in base64 in a log event in ...). Real
/// data nests at most three deep; the bound keeps a crafted record from recursing without end.
pub const MAX_NESTING: u32 = 8;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Base64 of the gzip magic and deflate method byte: how every base64-encoded gzip payload starts.
pub(super) const BASE64_GZIP_PREFIX: &str = "H4sI";
const UTF8_BOM: char = '\u{feff}';

/// What a walk does at the ends of the envelopes; the walk itself opens them.
pub(super) trait Visit {
    /// A JSON object that is no container; `text` is its JSON.
    fn object(&mut self, rec: &Record, text: &str, at: &Origin);
    /// Text that is not one JSON object (plain text, another JSON value, broken JSON); `why` says why.
    fn not_object(&mut self, text: &str, at: &Origin, why: impl FnOnce() -> String);
    /// A log event's `message` or an element of `Records`: `true` when the visit takes it as it is,
    /// `false` to have it walked as a record of its own.
    fn take_as_is(&mut self, text: &str, at: &Origin) -> bool;
    /// A well-formed part that holds no log record: a subscription's `CONTROL_MESSAGE` (a connectivity
    /// check), an EventBridge event that is not a CloudTrail record.
    fn skip(&mut self, at: &Origin, why: SkipReason);
    /// A part that cannot be read, located.
    fn reject(&mut self, at: &Origin, reason: String);
    /// One record (a container's element, an EventBridge event) that cannot be read, with its text.
    fn reject_record(&mut self, at: &Origin, reason: String, _text: &str) {
        self.reject(at, reason);
    }
}

/// Walks one record's bytes (a line, or a whole document), calling `visit` at each end, in order.
pub(super) fn walk<V: Visit>(bytes: &[u8], origin: &Origin, visit: &mut V) {
    Walk { visit, scan: true }.bytes(bytes, origin, 0);
}

/// The same walk reading every object with serde, without the one-pass scanner: what the scanner must
/// agree with (its differential test) and what it is measured against.
pub(super) fn walk_without_scan<V: Visit>(bytes: &[u8], origin: &Origin, visit: &mut V) {
    Walk { visit, scan: false }.bytes(bytes, origin, 0);
}

struct Walk<'v, V> {
    visit: &'v mut V,
    /// Whether objects are first offered to the one-pass scanner (`scan`).
    scan: bool,
}

impl<V: Visit> Walk<'_, V> {
    /// Raw bytes: unpacks gzip and base64 of gzip, checks UTF-8, then reads the JSON.
    fn bytes(&mut self, bytes: &[u8], origin: &Origin, depth: u32) {
        if depth > MAX_NESTING {
            return self.visit.reject(origin, format!("containers nested more than {MAX_NESTING} deep"));
        }
        // The hot case, a plain Cognito user-activity line, read in one pass that also checks its UTF-8;
        // serde decides the rest, as it would without it (the scanner never rejects).
        let scan = self.scan && {
            match scan::Plain::bytes(bytes, &mut scan::Quotes::default()) {
                scan::Offer::Plain(plain) => {
                    let text = plain.as_str();
                    if let Some(rec) = scan::cognito_record(&plain, &mut None) {
                        return self.object(rec, text, origin, depth);
                    }
                    // Not the plain shape: serde reads it below, without a second scan.
                    false
                }
                scan::Offer::Refused => false,
                scan::Offer::Other => true,
            }
        };
        if bytes.starts_with(&GZIP_MAGIC) {
            return match gunzip(bytes) {
                Ok(inner) => self.bytes(&inner, origin, depth + 1),
                Err(reason) => self.visit.reject(origin, reason),
            };
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => return self.visit.reject(origin, format!("invalid UTF-8 at byte {}", e.valid_up_to())),
        };
        let text = text.trim_start_matches(UTF8_BOM).trim();
        if text.starts_with(BASE64_GZIP_PREFIX) {
            return match unbase64(text) {
                Ok(inner) => self.bytes(&inner, origin, depth + 1),
                Err(reason) => self.visit.reject(origin, reason),
            };
        }
        self.json_scanned(text, origin, depth, scan);
    }

    /// JSON text holding one value, or several concatenated (Firehose writes `{...}{...}`).
    fn json(&mut self, text: &str, origin: &Origin, depth: u32) {
        self.json_scanned(text, origin, depth, self.scan);
    }

    /// [`json`](Self::json), offering an object to the one-pass scanner first when `scan`.
    fn json_scanned(&mut self, text: &str, origin: &Origin, depth: u32, scan: bool) {
        match text.as_bytes().first() {
            None => self.visit.not_object(text, origin, || "empty record".into()),
            Some(b'{') => {
                // The hot case, a plain Cognito user-activity line, in one pass; serde decides the rest.
                if scan {
                    if let Some(plain) = scan::Plain::text(text, &mut scan::Quotes::default()) {
                        if let Some(rec) = scan::cognito_record(&plain, &mut None) {
                            return self.object(rec, text, origin, depth);
                        }
                    }
                }
                let mut de = serde_json::Deserializer::from_str(text);
                // Matched by reference: moving a `Record` out of the result copies it, once per event.
                match &Record::deserialize(&mut de) {
                    Ok(rec) if de.end().is_ok() => self.object(rec, text, origin, depth),
                    Ok(_) => self.concatenated(text, origin, depth),
                    Err(e) => self.visit.not_object(text, origin, || match e {
                        e if e.is_data() && e.to_string().starts_with("duplicate field") => json_error(e),
                        e if e.is_data() => format!("a field has the wrong type: {e}"),
                        e => format!("invalid JSON: {e}"),
                    }),
                }
            }
            // Checked whole first, so a broken array is one rejection rather than some events and a rejection.
            Some(b'[') => match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => self.elements(text, "array", origin, depth),
                Err(e) => self.visit.not_object(text, origin, || format!("invalid JSON: {e}")),
            },
            Some(_) => self.visit.not_object(text, origin, || match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) => format!("expected a JSON object, found {}", json_kind(raw.get())),
                Err(e) => format!("not JSON: {e}"),
            }),
        }
    }

    /// Several JSON values one after another: each is a record of its own.
    fn concatenated(&mut self, text: &str, origin: &Origin, depth: u32) {
        let values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        for (i, value) in values.enumerate() {
            let at = origin.with_record(i);
            match value {
                Ok(raw) => self.json(raw.get(), &at, depth + 1),
                Err(e) => return self.visit.reject(&at, format!("invalid JSON after {i} concatenated values: {e}")),
            }
        }
    }

    /// Each element of a JSON array (already known to be valid JSON) as a record of its own.
    fn elements(&mut self, array: &str, field: &str, origin: &Origin, depth: u32) {
        let result = for_each_element(array, &mut |i, item| self.json(item.get(), &origin.with_record(i), depth + 1));
        if let Err(reason) = result {
            self.visit.reject(origin, format!("`{field}`: {reason}"));
        }
    }

    /// One JSON object: a container to open, or an end. The one place where containers are told apart.
    fn object(&mut self, rec: &Record, text: &str, origin: &Origin, depth: u32) {
        if let Some(records) = rec.records {
            return self.records(records, origin, depth);
        }
        if let Some(events) = rec.events {
            return self.log_events(events, "events", origin, depth);
        }
        if rec.message_type.is_present() || rec.log_events.is_some() {
            return self.subscription(rec, origin, depth);
        }
        if let Some(events) = rec.lookup_events {
            return self.lookup_events(events, origin, depth);
        }
        if let Some(detail) = rec.detail.filter(|_| rec.detail_type.is_present()) {
            return self.eventbridge(rec, detail, text, origin, depth);
        }
        if rec.auth_events.is_some() {
            return self.visit.reject(origin, AUTH_EVENTS_ARE_NOT_A_LOG.into());
        }
        self.visit.object(rec, text, origin);
    }

    /// `aws cloudtrail lookup-events` output, `{"Events": [{"EventId", ..., "CloudTrailEvent": "<record>"}],
    /// "NextToken"}`: each element's `CloudTrailEvent` is one CloudTrail record as a JSON string.
    fn lookup_events(&mut self, events: &RawValue, origin: &Origin, depth: u32) {
        if let Err(reason) = is_array(events, "Events") {
            return self.visit.reject(origin, reason);
        }
        let result = for_each_element(events.get(), &mut |i, item| self.lookup_event(item, i, origin, depth));
        if let Err(reason) = result {
            self.visit.reject(origin, format!("`Events`: {reason}"));
        }
    }

    /// One element of a lookup-events `Events`: its `CloudTrailEvent` string, walked as a record.
    fn lookup_event(&mut self, item: &RawValue, i: usize, origin: &Origin, depth: u32) {
        let at = origin.with_record(i);
        let record = match serde_json::from_str::<LookupEvent>(item.get()) {
            Ok(LookupEvent { cloud_trail_event: Some(Text(Some(record))) }) => record,
            Ok(_) => {
                return self.visit.reject_record(&at, format!("`Events[{i}]` has no `CloudTrailEvent`"), item.get())
            }
            Err(e) => {
                let reason = format!("`Events[{i}]` is not a lookup-events event: {e}");
                return self.visit.reject_record(&at, reason, item.get());
            }
        };
        if self.visit.take_as_is(&record, &at) {
            return;
        }
        // Checked here so the reason names the field: the walk would only say "invalid JSON".
        if let Err(e) = serde_json::from_str::<IgnoredAny>(&record) {
            let reason = format!("`Events[{i}].CloudTrailEvent` is not a JSON record: {e}");
            return self.visit.reject_record(&at, reason, &record);
        }
        self.json(record.trim(), &at, depth + 1);
    }

    /// An EventBridge event, `{"version", "id", "detail-type", "source", ..., "detail": {...}}`. Those that
    /// CloudTrail sends ("AWS API Call via CloudTrail", "AWS Service Event via CloudTrail") hold one record
    /// in `detail`; any other is another service's own event, skipped as other services' records are.
    /// Listing takes the whole event as the message: that is what a log group targeted by a rule holds.
    fn eventbridge(&mut self, rec: &Record, detail: &RawValue, text: &str, origin: &Origin, depth: u32) {
        if self.visit.take_as_is(text, origin) {
            return;
        }
        if !rec.detail_type.get().is_some_and(|t| t.ends_with(VIA_CLOUDTRAIL)) {
            return self.visit.skip(origin, SkipReason::OtherService);
        }
        if !detail.get().starts_with('{') {
            let kind = json_kind(detail.get());
            let reason = format!("EventBridge event's `detail` is {kind}, expected an object");
            return self.visit.reject_record(origin, reason, text);
        }
        self.json(detail.get(), origin, depth + 1);
    }

    /// `{"Records": [...]}` (a CloudTrail file): each element is one record, as CloudTrail sends it to
    /// CloudWatch Logs as one log event.
    fn records(&mut self, records: &RawValue, origin: &Origin, depth: u32) {
        if let Err(reason) = is_array(records, "Records") {
            return self.visit.reject(origin, reason);
        }
        let result = for_each_element(records.get(), &mut |i, item| {
            let at = origin.with_record(i);
            if !self.visit.take_as_is(item.get(), &at) {
                self.json(item.get(), &at, depth + 1);
            }
        });
        if let Err(reason) = result {
            self.visit.reject(origin, format!("`Records`: {reason}"));
        }
    }

    /// A subscription-filter payload: `{"messageType", "logGroup", "logStream", "logEvents": [...]}`.
    fn subscription(&mut self, rec: &Record, origin: &Origin, depth: u32) {
        match rec.message_type.get() {
            Some("CONTROL_MESSAGE") => self.visit.skip(origin, SkipReason::ControlMessage),
            Some("DATA_MESSAGE") | None => match rec.log_events {
                Some(events) => self.log_events(events, "logEvents", origin, depth),
                None => self.visit.reject(origin, "subscription payload without `logEvents`".into()),
            },
            Some(other) => self.visit.reject(origin, format!("unknown subscription messageType '{}'", clip(other))),
        }
    }

    /// `events` (filter-log-events output) or `logEvents` (subscription payload): each element's `message`.
    fn log_events(&mut self, events: &RawValue, field: &str, origin: &Origin, depth: u32) {
        if let Err(reason) = is_array(events, field) {
            return self.visit.reject(origin, reason);
        }
        let result = for_each_element(events.get(), &mut |i, item| self.log_event(item, i, field, origin, depth));
        if let Err(reason) = result {
            self.visit.reject(origin, format!("`{field}`: {reason}"));
        }
    }

    /// One element of `events` or `logEvents`: the event itself is the `message` string.
    fn log_event(&mut self, item: &RawValue, i: usize, field: &str, origin: &Origin, depth: u32) {
        let at = origin.with_record(i);
        let message = match serde_json::from_str::<LogEvent>(item.get()) {
            Ok(LogEvent { message: Some(m) }) => m,
            Ok(LogEvent { message: None }) => {
                return self.visit.reject_record(&at, format!("`{field}[{i}]` has no `message`"), item.get());
            }
            Err(e) => {
                return self.visit.reject_record(&at, format!("`{field}[{i}]` is not a log event: {e}"), item.get())
            }
        };
        match message.get().as_bytes().first() {
            // The documented form: the event JSON as a string.
            Some(b'"') => match serde_json::from_str::<Text>(message.get()) {
                Ok(Text(Some(s))) => {
                    if !self.visit.take_as_is(&s, &at) {
                        self.bytes(s.as_bytes(), &at, depth + 1);
                    }
                }
                Ok(Text(None)) => self.visit.reject_record(&at, format!("`{field}[{i}].message` is empty"), item.get()),
                Err(e) => self.visit.reject_record(&at, format!("`{field}[{i}].message`: {e}"), item.get()),
            },
            // Tolerated: the event inlined as an object.
            Some(b'{') => {
                if !self.visit.take_as_is(message.get(), &at) {
                    self.json(message.get(), &at, depth + 1);
                }
            }
            _ => self
                .visit
                .reject(&at, format!("`{field}[{i}].message` is {}, expected a string", json_kind(message.get()))),
        }
    }
}

/// How the `detail-type` of every EventBridge event that CloudTrail sends ends.
const VIA_CLOUDTRAIL: &str = " via CloudTrail";

/// Why `AdminListUserAuthEvents` output is refused: users reach for it first, and "unrecognised" would not
/// tell them it is the wrong source rather than a broken file. Short, so the summary shows it whole (it cuts
/// a rejection at `sanitize::MAX_DISPLAY_CHARS`, file name included).
const AUTH_EVENTS_ARE_NOT_A_LOG: &str = "AdminListUserAuthEvents output, not a log: use the user-activity log \
     export (SetLogDeliveryConfiguration) or CloudTrail";

/// An element of `aws cloudtrail lookup-events` output's `Events`.
#[derive(Deserialize)]
struct LookupEvent<'a> {
    #[serde(rename = "CloudTrailEvent", borrow, default)]
    cloud_trail_event: Option<Text<'a>>,
}

/// A log event as CloudWatch Logs returns it.
#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
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

/// A container field must be an array (its JSON is already known to be valid).
fn is_array(raw: &RawValue, field: &str) -> Result<(), String> {
    if !raw.get().starts_with('[') {
        return Err(format!("`{field}` is {}, expected an array", json_kind(raw.get())));
    }
    Ok(())
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
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

fn unbase64(text: &str) -> Result<Vec<u8>, String> {
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
