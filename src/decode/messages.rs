//! Log event messages as CloudWatch Logs would hold them, for evaluating filter patterns offline: the
//! message-listing ends of the envelope walk (`envelope`).
//!
//! A metric filter sees one log event's `message`. So: `filter-log-events` output and subscription payloads
//! give the `message` of each log event (as is, not decoded further); a CloudTrail file's `Records[i]` are
//! one log event each (CloudTrail sends each record to CloudWatch Logs as its own event); gzip and base64 of
//! gzip are unpacked; any other line (JSON or plain text) is a message itself.

use super::envelope::{self, Visit, BASE64_GZIP_PREFIX};
use super::{Record, Rejection, SkipReason};
use crate::event::Origin;

/// Calls `out` with each log event message held by one record's bytes (see the module docs), in order,
/// or with a located rejection for a part that cannot be read.
pub fn log_messages(bytes: &[u8], origin: &Origin, out: &mut dyn FnMut(&Origin, Result<&str, Rejection>)) {
    envelope::walk(bytes, origin, &mut Messages { out });
}

struct Messages<'o> {
    out: &'o mut dyn FnMut(&Origin, Result<&str, Rejection>),
}

impl Visit for Messages<'_> {
    fn object(&mut self, _rec: &Record, text: &str, at: &Origin) {
        (self.out)(at, Ok(text));
    }

    /// Plain text is a message like any other: a filter pattern can match it.
    fn not_object(&mut self, text: &str, at: &Origin, _why: impl FnOnce() -> String) {
        (self.out)(at, Ok(text));
    }

    fn take_as_is(&mut self, text: &str, at: &Origin) -> bool {
        // A compressed payload is unpacked first: what it holds are the log events.
        if text.trim_start().starts_with(BASE64_GZIP_PREFIX) {
            return false;
        }
        (self.out)(at, Ok(text));
        true
    }

    /// A connectivity check: its log events are not the log group's. (The other skips, EventBridge events
    /// that hold no CloudTrail record, are never reached: listing takes every EventBridge event as it is.)
    fn skip(&mut self, _at: &Origin, _why: SkipReason) {}

    fn reject(&mut self, at: &Origin, reason: String) {
        (self.out)(at, Err(Rejection::new(at, reason)));
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
        assert_eq!(
            messages(r#"{"Events":[{"EventId":"e","CloudTrailEvent":"{\"a\":1}"}],"NextToken":"n"}"#),
            ["t:1 record 0: {\"a\":1}"]
        );
        assert_eq!(messages("not json at all"), ["t:1: not json at all"]);
        assert_eq!(messages(r#"{"a":1}"#), ["t:1: {\"a\":1}"]);
        assert_eq!(
            messages(r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"message":"x"}]}"#),
            Vec::<String>::new()
        );
    }

    /// Where decoding finds an event, listing finds a message: both walks open the same envelopes.
    #[test]
    fn messages_are_found_where_decoding_finds_events() {
        use std::io::Write;

        use base64::Engine;

        use crate::decode::{decode_record, Decoded};

        let documents = [
            include_str!("../../tests/fixtures/decode/filter_log_events.json"),
            include_str!("../../tests/fixtures/decode/subscription_data.json"),
            include_str!("../../tests/fixtures/shapes/eventbridge_event.json"),
            include_str!("../../tests/fixtures/shapes/eventbridge_filter_log_events.json"),
            include_str!("../../tests/fixtures/shapes/eventbridge_subscription.json"),
        ];
        let mut records: Vec<Vec<u8>> = Vec::new();
        for doc in documents {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(doc.as_bytes()).unwrap();
            let gz = gz.finish().unwrap();
            records.push(base64::engine::general_purpose::STANDARD.encode(&gz).into_bytes());
            records.push(gz);
            records.push(format!("[{doc}, {doc}]").into_bytes());
            records.push(format!("{doc}{doc}").into_bytes());
            records.push(doc.as_bytes().to_vec());
        }
        let origin = Origin::new("t".into(), 1);
        for record in &records {
            let mut events = Vec::new();
            decode_record(record, &origin, None, &mut |d| match d {
                Decoded::Event(e) => events.push(e.origin.to_string()),
                other => panic!("fixture should decode to events only: {other:?}"),
            });
            let mut listed = Vec::new();
            log_messages(record, &origin, &mut |at, m| {
                assert!(m.is_ok(), "{m:?}");
                listed.push(at.to_string());
            });
            assert!(!events.is_empty());
            assert_eq!(listed, events, "{}", String::from_utf8_lossy(record));
        }
    }
}
