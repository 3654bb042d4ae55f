//! Decoders: vendor JSON (Cognito user-activity log, CloudTrail, and their containers) → [`SignInEvent`].
//!
//! [`decode_record`] takes the text of one record as a source read it (a line, or a whole document) and
//! reports every event it contains, in order, as [`Decoded`]. Nothing here panics on bad input: every
//! record that cannot be decoded becomes one [`Rejection`] carrying its [`Origin`].
//!
//! The hot case is one Cognito event per line; it is deserialized into borrowed, typed structs
//! ([`Record`], `cognito::Message`) without building a `serde_json::Value`.
//!
//! Where things go: `envelope` opens encodings and containers (one walk, shared with `log_messages`);
//! `cognito` and `cloudtrail` each recognise and decode one vendor format, listed in `FORMATS`. The
//! fields a container or a format reads at the top level are in `Record`, so one parse serves all.

mod challenges;
mod cloudtrail;
mod cognito;
mod envelope;
mod messages;
mod scan;

pub use messages::log_messages;

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use self::envelope::Visit;
use crate::event::{LogFormat, Origin, SignInEvent};

/// How many bytes `c` takes in a JSON line of `--rejects` (`sanitize::json_line` writes every dangerous
/// character as `\uXXXX`, surrogate pairs beyond the BMP).
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        c if crate::sanitize::is_dangerous(c) => 6 * c.len_utf16(),
        c => c.len_utf8(),
    }
}

/// A record that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub origin: Origin,
    pub reason: String,
    /// The record's own text, cut at [`MAX_REJECTED_TEXT_CHARS`], when it was read as text (`--rejects`
    /// lists it); None when it could not be (an over-long line, invalid UTF-8, broken gzip) or when the
    /// rejection is about a container as a whole.
    pub text: Option<String>,
}

/// Most bytes of a rejected record's text kept for `--rejects`, counted as written there (JSON-escaped,
/// dangerous characters as `\uXXXX`): a Cognito user-activity event (about 900 bytes) fits whole, a
/// CloudTrail record shows its identifying first fields, and a `--rejects` line stays short enough to read
/// (a crafted megabyte-long record is not copied).
pub const MAX_REJECTED_TEXT_BYTES: usize = 1_000;

/// Longest rejection reason kept. Reasons quote the record (serde's messages quote a mistyped string
/// whole); the cap keeps a crafted record from turning into a huge error line.
pub const MAX_REASON_CHARS: usize = 400;

impl Rejection {
    pub fn new(origin: &Origin, reason: impl Into<String>) -> Rejection {
        let mut reason = reason.into();
        if let Some((at, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
            reason.truncate(at);
            reason.push_str("…[cut]");
        }
        Rejection { origin: origin.clone(), reason, text: None }
    }

    /// The same, keeping the rejected record's text (cut at [`MAX_REJECTED_TEXT_BYTES`] as written).
    pub fn with_text(mut self, text: &str) -> Rejection {
        let mut written = 0;
        let cut = text.char_indices().find_map(|(at, c)| {
            written += escaped_len(c);
            (written > MAX_REJECTED_TEXT_BYTES).then_some(at)
        });
        self.text = Some(match cut {
            None => text.to_owned(),
            Some(at) => format!("{}…[{} bytes]", &text[..at], text.len()),
        });
        self
    }
}

impl fmt::Display for Rejection {
    /// `<file>:<line>[ record N]: <reason>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.reason)
    }
}

impl std::error::Error for Rejection {}

/// Why a well-formed record carries no sign-in event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// A CloudTrail record from a service other than `cognito-idp.amazonaws.com`.
    OtherService,
    /// Cognito's `userNotification` export (level ERROR, `message.details` only).
    UserNotification,
    /// A CloudWatch Logs subscription `CONTROL_MESSAGE` (a connectivity check).
    ControlMessage,
    /// A Cognito management call (`CreateUserPool`, `DescribeUserPool`, `AdminCreateUser`...).
    NotAuthActivity,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OtherService => "other_service",
            SkipReason::UserNotification => "user_notification",
            SkipReason::ControlMessage => "control_message",
            SkipReason::NotAuthActivity => "not_auth_activity",
        }
    }

    pub const ALL: [SkipReason; 4] = [
        SkipReason::OtherService,
        SkipReason::UserNotification,
        SkipReason::ControlMessage,
        SkipReason::NotAuthActivity,
    ];
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one contained record decoded to.
// Events are the common case and are handed straight to the caller: boxing them would cost an
// allocation per event to shrink the rare variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Boxed from the start: an event (about 500 bytes) is handed through queues, the reorder buffer and
    /// the detection batches, and each move is then a pointer's.
    Event(Box<SignInEvent>),
    Skipped(SkipReason),
    Rejected(Rejection),
}

/// Decode one record's text: one line of a JSON-lines file, or a whole JSON document (a file that is
/// one pretty-printed object). Dispatches on shape, per record: Cognito user-activity event, CloudTrail
/// record, `{"Records":[...]}`, `aws logs filter-log-events` output `{"events":[...]}` (whose `message` is
/// the event JSON as a string), subscription-filter payloads (JSON, gzip bytes, or base64 of gzip, e.g. a
/// line starting "H4sI"), `aws cloudtrail lookup-events` output `{"Events":[{"CloudTrailEvent": "<record
/// JSON as a string>"}]}`, EventBridge events `{"detail-type", "detail": {<CloudTrail record>}}`, and any
/// mix. `AdminListUserAuthEvents` output is rejected with a message naming the logs to use instead.
/// `forced` is the format `--format` forces, `None` for `auto`. Calls `out` once per contained record, in
/// order.
pub fn decode_record(text: &[u8], origin: &Origin, forced: Option<LogFormat>, out: &mut dyn FnMut(Decoded)) {
    envelope::walk(text, origin, &mut Events { forced, out });
}

/// [`decode_record`] without its one-pass reader of plain Cognito lines (`scan`): every object read by
/// serde, as before it. The same output for every input (the differential test pins that); slower. For
/// measuring the two side by side (`examples/decode_candidates.rs`), not for use.
#[doc(hidden)]
pub fn decode_record_with_serde(text: &[u8], origin: &Origin, forced: Option<LogFormat>, out: &mut dyn FnMut(Decoded)) {
    envelope::walk_without_scan(text, origin, &mut Events { forced, out });
}

/// The decoding ends of the envelope walk: an object that is no container is a vendor record; anything
/// else is a rejection.
struct Events<'o> {
    forced: Option<LogFormat>,
    out: &'o mut dyn FnMut(Decoded),
}

impl Visit for Events<'_> {
    #[inline]
    fn object(&mut self, rec: &Record, text: &str, at: &Origin) {
        let mut decoded = decode_event_object(rec, at, self.forced);
        // In place: an event is not moved again on its way out.
        if let Decoded::Rejected(r) = &mut decoded {
            *r = std::mem::replace(r, Rejection::new(at, "")).with_text(text);
        }
        (self.out)(decoded);
    }

    fn not_object(&mut self, text: &str, at: &Origin, why: impl FnOnce() -> String) {
        (self.out)(Decoded::Rejected(Rejection::new(at, why()).with_text(text)));
    }

    /// Decoding opens everything: a log event's message and a `Records` element are records to decode.
    fn take_as_is(&mut self, _text: &str, _at: &Origin) -> bool {
        false
    }

    fn skip(&mut self, _at: &Origin, why: SkipReason) {
        (self.out)(Decoded::Skipped(why));
    }

    fn reject(&mut self, at: &Origin, reason: String) {
        (self.out)(Decoded::Rejected(Rejection::new(at, reason)));
    }

    fn reject_record(&mut self, at: &Origin, reason: String, text: &str) {
        (self.out)(Decoded::Rejected(Rejection::new(at, reason).with_text(text)));
    }
}

/// Every top-level field any supported shape may have. One typed pass over a line tells which shape it
/// is and, for the Cognito and CloudTrail cases, already holds the fields the decoders need. Unknown
/// fields are ignored; nested parts the dispatch does not need stay raw until a decoder asks for them.
#[derive(Deserialize, Default)]
struct Record<'a> {
    // Cognito user-activity envelope.
    #[serde(rename = "eventTimestamp", borrow, default)]
    event_timestamp: Text<'a>,
    #[serde(rename = "logLevel", borrow, default)]
    log_level: Text<'a>,
    #[serde(rename = "logSourceId", borrow, default)]
    log_source_id: Option<LogSourceId<'a>>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,

    // Both: Cognito writes `USER_ACTIVITY`, CloudTrail the service host name.
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Text<'a>,

    // CloudTrail record.
    #[serde(rename = "eventVersion", borrow, default)]
    event_version: Text<'a>,
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Text<'a>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Text<'a>,
    #[serde(rename = "eventType", borrow, default)]
    event_type: Text<'a>,
    #[serde(rename = "errorCode", borrow, default)]
    error_code: Text<'a>,
    #[serde(rename = "sourceIPAddress", borrow, default)]
    source_ip_address: Text<'a>,
    #[serde(rename = "userAgent", borrow, default)]
    user_agent: Text<'a>,
    #[serde(rename = "eventID", borrow, default)]
    event_id: Text<'a>,
    #[serde(rename = "awsRegion", borrow, default)]
    aws_region: Text<'a>,
    #[serde(rename = "recipientAccountId", borrow, default)]
    recipient_account_id: Text<'a>,
    #[serde(rename = "requestParameters", borrow, default)]
    request_parameters: Option<&'a RawValue>,
    #[serde(rename = "responseElements", borrow, default)]
    response_elements: Option<&'a RawValue>,
    #[serde(rename = "additionalEventData", borrow, default)]
    additional_event_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resources: Option<&'a RawValue>,

    // Containers.
    #[serde(rename = "Records", borrow, default)]
    records: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<&'a RawValue>,
    #[serde(rename = "logEvents", borrow, default)]
    log_events: Option<&'a RawValue>,
    #[serde(rename = "messageType", borrow, default)]
    message_type: Text<'a>,
    /// `aws cloudtrail lookup-events` output.
    #[serde(rename = "Events", borrow, default)]
    lookup_events: Option<&'a RawValue>,
    /// An EventBridge event.
    #[serde(rename = "detail-type", borrow, default)]
    detail_type: Text<'a>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,

    // Not a log, refused with a message saying so: `AdminListUserAuthEvents` output.
    #[serde(rename = "AuthEvents", borrow, default)]
    auth_events: Option<&'a RawValue>,

    /// A Cognito line's `message` as the one-pass scanner (`scan`) read it, in place of `message`; never
    /// set by serde.
    #[serde(skip)]
    message_fields: Option<cognito::Message<'a>>,
}

#[derive(Deserialize, Default)]
struct LogSourceId<'a> {
    #[serde(rename = "userPoolId", borrow, default)]
    user_pool_id: Text<'a>,
}

/// A vendor record format: how `auto` recognises one of its records, and its decoder.
struct Format {
    log: LogFormat,
    /// What one of its records is called in a rejection.
    record: &'static str,
    looks_like: fn(&Record) -> bool,
    decode: fn(&Record, &Origin) -> Decoded,
}

/// The vendor record formats, in the order `auto` tries them on an object that is no container. A new
/// input format is a file of its own with its `FORMAT`, and one entry here.
const FORMATS: [Format; 2] = [cloudtrail::FORMAT, cognito::FORMAT];

/// Why `auto` rejects an object no format recognises.
const UNRECOGNISED: &str = "unrecognised record: neither a Cognito user-activity event nor a CloudTrail record";

/// Decodes one JSON object that is not a container, as the format its shape (or `--format`) says.
// Inlined into the walk: this runs once per event, and most runs take the `auto` branch.
#[inline]
fn decode_event_object(rec: &Record, origin: &Origin, forced: Option<LogFormat>) -> Decoded {
    match forced {
        None => match recognise(rec) {
            Some(format) => (format.decode)(rec, origin),
            None => Decoded::Rejected(Rejection::new(origin, UNRECOGNISED)),
        },
        Some(forced) => decode_forced(rec, origin, forced),
    }
}

/// The format whose shape `rec` has, trying [`FORMATS`] in order.
fn recognise(rec: &Record) -> Option<&'static Format> {
    FORMATS.iter().find(|f| (f.looks_like)(rec))
}

/// Decodes `rec` as the format `--format` forces.
#[inline(never)]
fn decode_forced(rec: &Record, origin: &Origin, forced: LogFormat) -> Decoded {
    let Some(format) = FORMATS.iter().find(|f| f.log == forced) else {
        return Decoded::Rejected(Rejection::new(origin, format!("no decoder for --format {}", forced.as_str())));
    };
    if !(format.looks_like)(rec) {
        // A record of another format is refused rather than decoded as the forced one and mangled.
        if let Some(other) = recognise(rec) {
            let name = forced.as_str();
            return Decoded::Rejected(Rejection::new(
                origin,
                format!("{}, but the format was forced to {name} (--format {name})", other.record),
            ));
        }
    }
    (format.decode)(rec, origin)
}

/// A lenient scalar: AWS writes most values as strings, but numbers and booleans are accepted too
/// (formatted as text), and an array stands for its first element (hosted-UI parameters are arrays of
/// strings). Strings without escapes are borrowed from the input. An object is a type error.
#[derive(Debug, Default, Clone, PartialEq)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The value, or `None` when it is missing, `null`, empty or the text `"null"`.
    fn get(&self) -> Option<&str> {
        match self.0.as_deref() {
            None | Some("") | Some("null") => None,
            Some(s) => Some(s),
        }
    }

    /// The value as an event's text field (`compact_str::CompactString`, or `IdText` for ids).
    fn owned<T: for<'s> From<&'s str>>(&self) -> Option<T> {
        self.get().map(T::from)
    }

    fn is_present(&self) -> bool {
        self.0.is_some()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v))))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Borrowed(if v { "true" } else { "false" }))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text<'de>, E> {
        // `200.0` prints as `200`, which is what a status or an epoch value means.
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
        Text::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
        let first: Option<Text<'de>> = seq.next_element()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first.unwrap_or_default())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<Text<'de>, A::Error> {
        Err(de::Error::invalid_type(Unexpected::Map, &self))
    }
}

/// The JSON type a raw value starts with, for error messages.
/// An event's address text as an [`IpAddr`], `None` when it is not one: exactly `text.trim().parse()`,
/// with the common case, a dotted IPv4 address without leading zeros, read by hand first. The standard
/// parser (a general parser over both families, behind a Unicode trim) was 4 % of `--decode-only`.
/// The hand path takes only text the standard parser reads the same way, and leaves the rest to it.
fn address(text: &str) -> Option<IpAddr> {
    plain_ipv4(text.as_bytes()).map(IpAddr::V4).or_else(|| text.trim().parse().ok())
}

/// `a.b.c.d`, each part 0 to 255 in decimal without a leading zero; `None` for anything else.
#[inline]
fn plain_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let mut parts = [0u8; 4];
    let mut at = 0;
    for (i, part) in parts.iter_mut().enumerate() {
        if i > 0 {
            (text.get(at) == Some(&b'.')).then_some(())?;
            at += 1;
        }
        let rest = text.get(at..)?;
        let digits = rest.iter().take(4).take_while(|b| b.is_ascii_digit()).count();
        let value = match (digits, rest.first()?) {
            (1, first) => u32::from(first - b'0'),
            (2 | 3, b'1'..=b'9') => rest[..digits].iter().fold(0, |v, &b| v * 10 + u32::from(b - b'0')),
            _ => return None,
        };
        *part = u8::try_from(value).ok()?;
        at += digits;
    }
    (at == text.len()).then_some(Ipv4Addr::from(parts))
}

fn json_kind(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "a number",
        None => "empty",
    }
}

/// Longest piece of a record's own text quoted in a rejection reason: enough to recognise the value, and a
/// crafted megabyte-long value does not become a megabyte-long error line.
const QUOTED_CHARS: usize = 64;

/// A value from the record, clipped for quoting in a reason.
fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(QUOTED_CHARS) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…[{} bytes]", &s[..at], s.len())),
    }
}

/// A serde error as a rejection reason. serde calls a repeated key a "duplicate field"; in a log record it
/// is a duplicate key, which is refused rather than guessed at: parsers disagree on which copy wins, so an
/// attacker could show one value to authwatch and another to a different reader.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix("duplicate field ") {
        Some(rest) => format!("duplicate key {rest}"),
        None => text,
    }
}

/// Hides the placeholders AWS writes instead of secret or personal values.
fn visible(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !matches!(*v, "HIDDEN_DUE_TO_SECURITY_REASONS" | "HIDDEN_FOR_SECURITY_REASONS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_by_hand_are_read_as_the_standard_parser_reads_them() {
        let cases = [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "192.168.100.200",
            "256.1.1.1",
            "1.2.3.256",
            "01.2.3.4",
            "1.02.3.4",
            "1.2.3.00",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.",
            ".1.2.3",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.4\u{a0}",
            "1.2.3.1234",
            "1111.2.3.4",
            "a.b.c.d",
            "",
            ".",
            "1",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "1.2.3.4/32",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4x",
            "9.9.9.9",
            "99.99.99.99",
            "199.255.249.250",
            "0.1.2.3",
            "1.0.0.0",
        ];
        for text in cases {
            assert_eq!(address(text), text.trim().parse::<IpAddr>().ok(), "{text:?}");
        }
        // Every octet value and a few neighbours of each form, in every position.
        for v in (0..1100).chain([0o10, 0o77]) {
            for form in [format!("{v}"), format!("0{v}"), format!("00{v}")] {
                for text in [format!("{form}.1.2.3"), format!("1.2.3.{form}"), format!("1.{form}.2.3")] {
                    assert_eq!(address(&text), text.parse::<IpAddr>().ok(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn every_log_format_has_one_decoder() {
        for log in LogFormat::ALL {
            assert_eq!(FORMATS.iter().filter(|f| f.log == log).count(), 1, "{}", log.as_str());
        }
        assert_eq!(FORMATS.len(), LogFormat::ALL.len());
    }

    #[test]
    fn skip_reasons_have_snake_case_names() {
        let names: Vec<_> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["other_service", "user_notification", "control_message", "not_auth_activity"]);
    }

    #[test]
    fn rejection_display_names_file_line_and_record() {
        let origin = Origin::new("a.json".into(), 7);
        assert_eq!(Rejection::new(&origin, "bad").to_string(), "a.json:7: bad");
        assert_eq!(Rejection::new(&origin.with_record(2), "bad").to_string(), "a.json:7 record 2: bad");
    }

    #[derive(Deserialize)]
    struct T<'a> {
        #[serde(borrow, default)]
        v: Text<'a>,
    }

    fn text(json: &str) -> Result<Option<String>, String> {
        serde_json::from_str::<T>(json).map(|t| t.v.owned::<String>()).map_err(|e| e.to_string())
    }

    #[test]
    fn text_accepts_strings_numbers_booleans_and_first_of_arrays() {
        assert_eq!(text(r#"{"v":"x"}"#), Ok(Some("x".into())));
        assert_eq!(text(r#"{"v":"a\"b"}"#), Ok(Some("a\"b".into())));
        assert_eq!(text(r#"{"v":200.0}"#), Ok(Some("200".into())));
        assert_eq!(text(r#"{"v":1721237155000}"#), Ok(Some("1721237155000".into())));
        assert_eq!(text(r#"{"v":true}"#), Ok(Some("true".into())));
        assert_eq!(text(r#"{"v":["first","second"]}"#), Ok(Some("first".into())));
        assert_eq!(text(r#"{"v":[]}"#), Ok(None));
        assert_eq!(text(r#"{"v":null}"#), Ok(None));
        assert_eq!(text(r#"{"v":"null"}"#), Ok(None));
        assert_eq!(text(r#"{"v":""}"#), Ok(None));
        assert_eq!(text(r#"{}"#), Ok(None));
        assert!(text(r#"{"v":{"a":1}}"#).unwrap_err().contains("expected a string, number or boolean"));
    }

    #[test]
    fn long_reasons_are_cut() {
        let origin = Origin::new("a.json".into(), 1);
        let r = Rejection::new(&origin, format!("invalid type: string \"{}\"", "x".repeat(10_000)));
        assert_eq!(r.reason.chars().count(), MAX_REASON_CHARS + "…[cut]".chars().count());
        assert!(r.reason.ends_with("…[cut]"));
    }

    #[test]
    fn a_rejected_records_text_is_kept_and_cut() {
        let origin = Origin::new("a.json".into(), 1);
        let mut got = Vec::new();
        decode_record(br#"{"eventTimestamp":"soon","message":{"eventType":"SignIn"}}"#, &origin, None, &mut |d| {
            got.push(d)
        });
        let [Decoded::Rejected(r)] = &got[..] else { panic!("{got:?}") };
        assert_eq!(r.text.as_deref(), Some(r#"{"eventTimestamp":"soon","message":{"eventType":"SignIn"}}"#));
        for filler in ["x", "\"", "\u{202e}", "é"] {
            let long = format!("not json {}", filler.repeat(2 * MAX_REJECTED_TEXT_BYTES));
            let mut got = Vec::new();
            decode_record(long.as_bytes(), &origin, None, &mut |d| got.push(d));
            let [Decoded::Rejected(r)] = &got[..] else { panic!("{got:?}") };
            let text = r.text.as_deref().unwrap();
            let marker = format!("…[{} bytes]", long.len());
            let kept = text.strip_suffix(&marker).unwrap_or_else(|| panic!("{filler:?}: no cut marker"));
            let written = serde_json::to_string(kept).unwrap();
            let written = crate::sanitize::json_line(written);
            assert!(written.len() - 2 <= MAX_REJECTED_TEXT_BYTES, "{filler:?}: {} bytes written", written.len());
            assert!(written.len() - 2 > MAX_REJECTED_TEXT_BYTES - 12, "{filler:?}: cut too early");
        }
        // A container-level rejection has no one record's text.
        let mut got = Vec::new();
        decode_record(br#"{"Records":"nope"}"#, &origin, None, &mut |d| got.push(d));
        let [Decoded::Rejected(r)] = &got[..] else { panic!("{got:?}") };
        assert_eq!(r.text, None);
    }

    #[test]
    fn quoted_values_are_clipped() {
        assert_eq!(clip("yesterday"), "yesterday");
        let long = "9".repeat(400);
        assert_eq!(clip(&long), format!("{}…[400 bytes]", "9".repeat(QUOTED_CHARS)));
        assert_eq!(clip(&"é".repeat(100)).chars().filter(|&c| c == 'é').count(), QUOTED_CHARS);
    }

    #[test]
    fn text_borrows_unescaped_strings() {
        let t: T = serde_json::from_str(r#"{"v":"plain"}"#).unwrap();
        assert!(matches!(t.v.0, Some(Cow::Borrowed("plain"))));
    }
}
