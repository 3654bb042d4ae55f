//! Log event messages as CloudWatch Logs would hold them, for evaluating filter patterns offline.
//!
//! A metric filter sees one log event's `message`. So: `filter-log-events` output and subscription payloads
//! give the `message` of each log event (as is, not decoded further); a CloudTrail file's `Records[i]` are
//! one log event each (CloudTrail sends each record to CloudWatch Logs as its own event); gzip and base64 of
//! gzip are unpacked; any other line (JSON or plain text) is a message itself.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::container::{gunzip, unbase64, BASE64_GZIP_PREFIX, GZIP_MAGIC, MAX_NESTING, UTF8_BOM};
use super::Rejection;
use crate::event::Origin;

/// The container fields that decide how a JSON object is opened.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<&'a RawValue>,
    #[serde(rename = "logEvents", borrow, default)]
    log_events: Option<&'a RawValue>,
    #[serde(rename = "messageType", default)]
    message_type: Option<String>,
}

#[derive(Deserialize)]
struct LogEvent {
    message: Option<String>,
}

/// Calls `out` with each log event message held by one record's bytes (see the module docs), in order,
/// or with a located rejection for a part that cannot be read.
pub fn log_messages(bytes: &[u8], origin: &Origin, out: &mut dyn FnMut(&Origin, Result<&str, Rejection>)) {
    from_bytes(bytes, origin, 0, out);
}

fn from_bytes(bytes: &[u8], origin: &Origin, depth: u32, out: &mut dyn FnMut(&Origin, Result<&str, Rejection>)) {
    if depth > MAX_NESTING {
        return out(origin, Err(Rejection::new(origin, format!("containers nested more than {MAX_NESTING} deep"))));
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        return match gunzip(bytes) {
            Ok(inner) => from_bytes(&inner, origin, depth + 1, out),
            Err(reason) => out(origin, Err(Rejection::new(origin, reason))),
        };
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim_start_matches(UTF8_BOM).trim(),
        Err(e) => {
            return out(origin, Err(Rejection::new(origin, format!("invalid UTF-8 at byte {}", e.valid_up_to()))))
        }
    };
    if text.starts_with(BASE64_GZIP_PREFIX) {
        return match unbase64(text) {
            Ok(inner) => from_bytes(&inner, origin, depth + 1, out),
            Err(reason) => out(origin, Err(Rejection::new(origin, reason))),
        };
    }
    from_text(text, origin, depth, out);
}

fn from_text(text: &str, origin: &Origin, depth: u32, out: &mut dyn FnMut(&Origin, Result<&str, Rejection>)) {
    if text.starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) {
            for (i, item) in items.iter().enumerate() {
                from_text(item.get(), &origin.with_record(i), depth + 1, out);
            }
            return;
        }
    }
    if text.starts_with('{') {
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        let first = values.next();
        if let Some(Ok(first)) = first {
            if values.next().is_some() {
                // Concatenated values (Firehose writes `{...}{...}`): each is a record of its own.
                let all = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
                for (i, value) in all.enumerate() {
                    match value {
                        Ok(v) => from_object(v.get(), &origin.with_record(i), depth + 1, out),
                        Err(_) => return out(origin, Ok(text)),
                    }
                }
                return;
            }
            return from_object(first.get(), origin, depth, out);
        }
    }
    // Plain text, or JSON that is not a container: the message itself.
    out(origin, Ok(text));
}

fn from_object(text: &str, origin: &Origin, depth: u32, out: &mut dyn FnMut(&Origin, Result<&str, Rejection>)) {
    let Ok(shape) = serde_json::from_str::<Shape>(text) else {
        return out(origin, Ok(text));
    };
    if let Some(records) = shape.records {
        return each(records.get(), "Records", origin, out, &mut |raw, at, out| out(at, Ok(raw)));
    }
    let events = match (shape.events, shape.log_events) {
        (Some(e), _) => Some((e, "events")),
        (None, Some(e)) => Some((e, "logEvents")),
        (None, None) => None,
    };
    if shape.message_type.as_deref() == Some("CONTROL_MESSAGE") {
        // A subscription's connectivity check: its log events are not the log group's.
        return;
    }
    let Some((events, field)) = events else {
        return out(origin, Ok(text));
    };
    each(events.get(), field, origin, out, &mut |raw, at, out| match serde_json::from_str::<LogEvent>(raw) {
        Ok(LogEvent { message: Some(m) }) => from_message(&m, at, depth, out),
        Ok(LogEvent { message: None }) => out(at, Err(Rejection::new(at, format!("`{field}` item has no `message`")))),
        Err(e) => out(at, Err(Rejection::new(at, format!("`{field}` item is not a log event: {e}")))),
    });
}

/// A log event's message is what a filter sees; only a compressed payload is unpacked further.
fn from_message(m: &str, at: &Origin, depth: u32, out: &mut dyn FnMut(&Origin, Result<&str, Rejection>)) {
    if m.trim_start().starts_with(BASE64_GZIP_PREFIX) {
        from_bytes(m.trim().as_bytes(), at, depth + 1, out);
    } else {
        out(at, Ok(m));
    }
}

type Item<'f> = dyn FnMut(&str, &Origin, &mut dyn FnMut(&Origin, Result<&str, Rejection>)) + 'f;

fn each(
    array: &str,
    field: &str,
    origin: &Origin,
    out: &mut dyn FnMut(&Origin, Result<&str, Rejection>),
    item: &mut Item,
) {
    match serde_json::from_str::<Vec<&RawValue>>(array) {
        Ok(items) => {
            for (i, raw) in items.iter().enumerate() {
                item(raw.get(), &origin.with_record(i), out);
            }
        }
        Err(e) => out(origin, Err(Rejection::new(origin, format!("`{field}` is not an array of objects: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        let mut got = Vec::new();
        log_messages(text.as_bytes(), &Origin::new("t".into(), 1), &mut |at, m| match m {
            Ok(m) => got.push(format!("{}: {m}", at)),
            Err(e) => got.push(format!("error {e}")),
        });
        got
    }

    #[test]
    fn log_events_give_their_message_and_records_their_text() {
        assert_eq!(
            messages(r#"{"events":[{"message":"{\"a\":1}"},{"message":"plain text"}]}"#),
            ["t:1 record 0: {\"a\":1}", "t:1 record 1: plain text"]
        );
        assert_eq!(
            messages(r#"{"Records":[{"a":1}, {"b":2}]}"#),
            ["t:1 record 0: {\"a\":1}", "t:1 record 1: {\"b\":2}"]
        );
        assert_eq!(messages("not json at all"), ["t:1: not json at all"]);
        assert_eq!(messages(r#"{"a":1}"#), ["t:1: {\"a\":1}"]);
        assert_eq!(
            messages(r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"message":"x"}]}"#),
            Vec::<String>::new()
        );
    }
}
