//! The exported Cognito user-activity log (`userAuthEvents`, aws-formats.md §1) → [`SignInEvent`].

use compact_str::CompactString;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::challenges::Challenges;
use super::{address, clip, json_error, json_kind, Decoded, Format, Record, Rejection, SkipReason, Text};
use crate::event::{EventKind, LogFormat, Origin, Outcome, Risk, SignInEvent};
use crate::time::Timestamp;

/// The flat `message` object. Every scalar is documented as a string; [`Text`] also takes numbers and
/// booleans. Fields not listed (`requestId`, `idpName`...) are ignored.
#[derive(Deserialize, Default)]
pub(super) struct Message<'a> {
    #[serde(rename = "eventId", borrow, default)]
    pub(super) event_id: Text<'a>,
    #[serde(rename = "eventType", borrow, default)]
    pub(super) event_type: Text<'a>,
    #[serde(rename = "userSub", borrow, default)]
    pub(super) user_sub: Text<'a>,
    #[serde(rename = "userName", borrow, default)]
    pub(super) user_name: Text<'a>,
    #[serde(rename = "userPoolId", borrow, default)]
    pub(super) user_pool_id: Text<'a>,
    #[serde(rename = "clientId", borrow, default)]
    pub(super) client_id: Text<'a>,
    #[serde(rename = "eventResponse", borrow, default)]
    pub(super) event_response: Text<'a>,
    /// Java date text (`Wed Jul 17 17:25:55 UTC 2024`), to the second; only compared with
    /// `eventTimestamp`, which is the event time.
    #[serde(rename = "creationDate", borrow, default)]
    pub(super) creation_date: Text<'a>,
    #[serde(rename = "riskLevel", borrow, default)]
    pub(super) risk_level: Text<'a>,
    #[serde(rename = "riskDecision", borrow, default)]
    pub(super) risk_decision: Text<'a>,
    #[serde(rename = "compromisedCredentialDetected", borrow, default)]
    pub(super) compromised_credential_detected: Text<'a>,
    #[serde(rename = "deviceName", borrow, default)]
    pub(super) device_name: Text<'a>,
    #[serde(rename = "ipAddress", borrow, default)]
    pub(super) ip_address: Text<'a>,
    #[serde(borrow, default)]
    pub(super) city: Text<'a>,
    #[serde(borrow, default)]
    pub(super) country: Text<'a>,
    /// The password and MFA steps (element shape undocumented: see [`Challenges`]).
    #[serde(default)]
    pub(super) challenges: Challenges,
    /// Only the `userNotification` export has it.
    #[serde(default)]
    pub(super) details: Option<IgnoredAny>,
}

/// `eventSource` of the `userNotification` export.
const USER_NOTIFICATION_SOURCE: &str = "USER_NOTIFICATION";

/// The Cognito user-activity log, as `auto` tells one of its events from other objects.
pub(super) const FORMAT: Format =
    Format { log: LogFormat::CognitoUserActivity, record: "a Cognito user-activity event", looks_like, decode };

fn looks_like(rec: &Record) -> bool {
    rec.event_timestamp.is_present() || rec.message.is_some() || rec.message_fields.is_some()
}

fn decode(rec: &Record, origin: &Origin) -> Decoded {
    match try_decode(rec, origin) {
        Ok(decoded) => decoded,
        Err(reason) => Decoded::Rejected(Rejection::new(origin, reason)),
    }
}

fn try_decode(rec: &Record, origin: &Origin) -> Result<Decoded, String> {
    if rec.event_source.get() == Some(USER_NOTIFICATION_SOURCE) {
        return Ok(Decoded::Skipped(SkipReason::UserNotification));
    }
    let parsed;
    let msg = match &rec.message_fields {
        // Already read by the one-pass scanner (`scan`).
        Some(msg) => msg,
        None => {
            let raw = rec.message.ok_or("Cognito event has no `message`")?;
            if !raw.get().starts_with('{') {
                return Err(format!("`message` is {}, expected an object", json_kind(raw.get())));
            }
            parsed = serde_json::from_str::<Message>(raw.get())
                .map_err(|e| format!("invalid `message`: {}", json_error(&e)))?;
            &parsed
        }
    };
    let Some(event_type) = msg.event_type.get() else {
        if msg.details.is_some() || rec.log_level.get() == Some("ERROR") {
            return Ok(Decoded::Skipped(SkipReason::UserNotification));
        }
        return Err("Cognito event has no `message.eventType`".into());
    };
    let time = event_time(&rec.event_timestamp)?;
    let (outcome, failure_reason) = match msg.event_response.get() {
        Some("Pass") => (Outcome::Success, None),
        Some("Fail") => (Outcome::Failure, Some(CompactString::const_new("Fail"))),
        Some("InProgress") => (Outcome::InProgress, None),
        _ => (Outcome::Unknown, None),
    };
    // Made on the heap and filled there: built on the stack, the event (about 500 bytes) was copied
    // into its box.
    let mut event = Box::new(SignInEvent::new(time, kind(event_type), outcome, origin.clone()));
    event.failure_reason = failure_reason;
    event.event_name = event_type.into();
    event.user_pool_id =
        msg.user_pool_id.owned().or_else(|| rec.log_source_id.as_ref().and_then(|l| l.user_pool_id.owned()));
    event.client_id = msg.client_id.owned();
    event.user_name = msg.user_name.owned();
    event.user_sub = msg.user_sub.owned();
    event.ip = msg.ip_address.get().and_then(address);
    event.city = msg.city.owned();
    event.country = msg.country.owned();
    event.device = msg.device_name.owned();
    event.risk = Risk {
        level: msg.risk_level.owned(),
        decision: msg.risk_decision.owned(),
        compromised_credentials: boolean(msg.compromised_credential_detected.get()),
    };
    event.factors = msg.challenges.0;
    event.creation_date_disagrees = creation_date_disagrees(time, msg.creation_date.get());
    event.event_id = msg.event_id.owned();
    event.format = LogFormat::CognitoUserActivity;
    Ok(Decoded::Event(event))
}

fn kind(event_type: &str) -> EventKind {
    match event_type {
        "SignIn" => EventKind::SignIn,
        "SignUp" => EventKind::SignUp,
        "ForgotPassword" => EventKind::ForgotPassword,
        "PasswordChange" => EventKind::PasswordChange,
        "ResendCode" => EventKind::ResendCode,
        _ => EventKind::Other,
    }
}

/// `eventTimestamp`: epoch milliseconds, documented as a string; a number (possibly `1.7e12`) or
/// RFC 3339 text is accepted too.
fn event_time(field: &Text) -> Result<Timestamp, String> {
    let s = field.get().ok_or("missing `eventTimestamp`")?.trim();
    let time = if let Some(ms) = epoch_millis(s) {
        Timestamp(ms)
    } else if let Some(t) = s.parse::<f64>().ok().filter(|v| v.is_finite() && v.abs() < 9e18) {
        Timestamp(t as i64)
    } else {
        Timestamp::parse_rfc3339(s).ok_or_else(|| {
            format!("`eventTimestamp` '{}' is neither epoch milliseconds nor an RFC 3339 time", clip(s))
        })?
    };
    if !time.is_plausible() {
        return Err(format!("`eventTimestamp` {} is {time}, outside the plausible range 2000..2100", clip(s)));
    }
    Ok(time)
}

/// Text as an integer, as `str::parse::<i64>` reads it, the export's case (up to 18 digits, which cannot
/// overflow) without the general parser's sign and overflow checks at every digit.
fn epoch_millis(text: &str) -> Option<i64> {
    let digits = text.as_bytes();
    if (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        return Some(digits.iter().fold(0, |v, &d| v * 10 + i64::from(d - b'0')));
    }
    text.parse().ok()
}

/// How far `creationDate` may be from `eventTimestamp` before the two are said to disagree: more than any
/// delivery delay or clock skew, so only a record whose two times name different events' days counts.
const CREATION_DATE_TOLERANCE_MS: i64 = 24 * 3600 * 1000;

/// Whether the message's `creationDate` names a time more than [`CREATION_DATE_TOLERANCE_MS`] from the
/// event time. AWS's own documented example has them a year apart; `eventTimestamp` is kept as the event
/// time (it is the envelope's, the one CloudWatch Logs orders by), and the disagreement is counted so the
/// summary can say so. A missing or unreadable `creationDate` says nothing.
fn creation_date_disagrees(time: Timestamp, creation_date: Option<&str>) -> bool {
    creation_date
        .and_then(Timestamp::parse_java_date)
        .is_some_and(|created| (created.0 - time.0).abs() > CREATION_DATE_TOLERANCE_MS)
}

fn boolean(s: Option<&str>) -> Option<bool> {
    match s? {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(json: &str) -> Result<Timestamp, String> {
        let t: Text = serde_json::from_str(json).map_err(|e| e.to_string())?;
        event_time(&t)
    }

    #[test]
    fn event_timestamp_accepts_string_number_and_rfc3339() {
        let want = Ok(Timestamp(1_721_237_155_000));
        assert_eq!(time(r#""1721237155000""#), want);
        assert_eq!(time("1721237155000"), want);
        assert_eq!(time("1.721237155e12"), want);
        assert_eq!(time(r#""2024-07-17T17:25:55Z""#), want);
    }

    #[test]
    fn epoch_millis_reads_as_the_standard_parser_does() {
        for text in [
            "0",
            "1721237155000",
            "000000000000000001",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "1234567890123456789",
            "+12",
            "-12",
            "",
            " 12",
            "12 ",
            "1_000",
            "1.5",
            "x",
        ] {
            assert_eq!(epoch_millis(text), text.parse::<i64>().ok(), "{text:?}");
        }
    }

    #[test]
    fn event_timestamp_errors_name_the_field() {
        assert_eq!(time("null"), Err("missing `eventTimestamp`".into()));
        assert!(time(r#""1721237155""#).unwrap_err().contains("outside the plausible range"));
        assert!(time(r#""soon""#).unwrap_err().starts_with("`eventTimestamp` 'soon'"));
    }

    #[test]
    fn creation_date_more_than_a_day_from_the_event_time_disagrees() {
        // AWS's documented example: eventTimestamp 1687297330677 (2023-06-20), creationDate 2024-07-17.
        assert!(creation_date_disagrees(Timestamp(1_687_297_330_677), Some("Wed Jul 17 17:25:55 UTC 2024")));
        let t = Timestamp(1_721_237_155_000);
        assert!(!creation_date_disagrees(t, Some("Wed Jul 17 17:25:55 UTC 2024")));
        assert!(!creation_date_disagrees(
            Timestamp(t.0 + CREATION_DATE_TOLERANCE_MS),
            Some("Wed Jul 17 17:25:55 UTC 2024")
        ));
        assert!(creation_date_disagrees(
            Timestamp(t.0 + CREATION_DATE_TOLERANCE_MS + 1),
            Some("Wed Jul 17 17:25:55 UTC 2024")
        ));
        assert!(!creation_date_disagrees(t, Some("yesterday")));
        assert!(!creation_date_disagrees(t, None));
    }

    #[test]
    fn string_booleans() {
        assert_eq!(boolean(Some("true")), Some(true));
        assert_eq!(boolean(Some("false")), Some(false));
        assert_eq!(boolean(Some("maybe")), None);
        assert_eq!(boolean(None), None);
    }

    #[test]
    fn event_types_map_to_kinds() {
        assert_eq!(kind("SignIn"), EventKind::SignIn);
        assert_eq!(kind("ForgotPassword"), EventKind::ForgotPassword);
        assert_eq!(kind("signin"), EventKind::Other);
    }
}
