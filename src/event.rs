//! The one normalized sign-in event that flows from the decoders to the detectors.
//!
//! Decoders (`crate::decode`) are the only code that knows vendor JSON; everything after them sees a
//! [`SignInEvent`]. Strings here are raw log text: sanitise them (`crate::sanitize`) before they reach a
//! terminal, a notification or a log line.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::time::Timestamp;

/// What kind of user-pool activity an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A sign-in attempt: Cognito `SignIn`; CloudTrail `InitiateAuth`, `AdminInitiateAuth`,
    /// `RespondToAuthChallenge`; hosted UI `login_POST`, `CognitoAuthentication`.
    SignIn,
    SignUp,
    /// A password reset request or its confirmation (`ForgotPassword`, `ConfirmForgotPassword`).
    ForgotPassword,
    /// A password change by a signed-in user (`PasswordChange`, `ChangePassword`).
    PasswordChange,
    ResendCode,
    /// A token exchange or refresh (`Token_POST`, `REFRESH_TOKEN_AUTH`).
    Token,
    /// Any other user-pool activity (sign-out, hosted-UI page loads, ...).
    Other,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignIn => "sign_in",
            EventKind::SignUp => "sign_up",
            EventKind::ForgotPassword => "forgot_password",
            EventKind::PasswordChange => "password_change",
            EventKind::ResendCode => "resend_code",
            EventKind::Token => "token",
            EventKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "sign_in" => EventKind::SignIn,
            "sign_up" => EventKind::SignUp,
            "forgot_password" => EventKind::ForgotPassword,
            "password_change" => EventKind::PasswordChange,
            "resend_code" => EventKind::ResendCode,
            "token" => EventKind::Token,
            "other" => EventKind::Other,
            _ => return None,
        })
    }

    pub const ALL: [EventKind; 7] = [
        EventKind::SignIn,
        EventKind::SignUp,
        EventKind::ForgotPassword,
        EventKind::PasswordChange,
        EventKind::ResendCode,
        EventKind::Token,
        EventKind::Other,
    ];
}

/// How the attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Wrong credentials, unknown user, bad code: an attempt that an attacker would also produce.
    Failure,
    /// A step of a multi-step flow (SRP, MFA challenge) that neither succeeded nor failed yet.
    InProgress,
    /// Rejected for rate (`TooManyRequestsException`, `LimitExceededException`): says nothing about
    /// the credentials.
    Throttled,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::InProgress => "in_progress",
            Outcome::Throttled => "throttled",
            Outcome::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            "in_progress" => Outcome::InProgress,
            "throttled" => Outcome::Throttled,
            "unknown" => Outcome::Unknown,
            _ => return None,
        })
    }

    pub const ALL: [Outcome; 5] =
        [Outcome::Success, Outcome::Failure, Outcome::InProgress, Outcome::Throttled, Outcome::Unknown];
}

/// A log format authwatch reads, the one type for it: which log an event was decoded from, which one
/// `--format` forces (`auto` is no format, `None`: decide per record) and which log a metric filter
/// pattern is written for (`pattern.cognito`, `filters --log-format cloudtrail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// The exported Cognito user-activity log (`userAuthEvents`).
    CognitoUserActivity,
    /// A CloudTrail record from `cognito-idp.amazonaws.com`.
    CloudTrail,
}

impl LogFormat {
    /// Every format, in the order specs and generated files list them.
    pub const ALL: [LogFormat; 2] = [LogFormat::CognitoUserActivity, LogFormat::CloudTrail];

    /// The name used on the command line, in spec keys and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::CognitoUserActivity => "cognito",
            LogFormat::CloudTrail => "cloudtrail",
        }
    }

    /// The format named exactly `s` (`cognito`, `cloudtrail`).
    pub fn parse(s: &str) -> Option<LogFormat> {
        LogFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// `--format auto|cognito|cloudtrail`, in any case: the format to force, or `None` for `auto`.
    pub fn parse_forced(s: &str) -> Result<Option<LogFormat>, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(None),
            lower => LogFormat::parse(lower)
                .map(Some)
                .ok_or_else(|| format!("unknown format '{s}': expected auto, cognito or cloudtrail")),
        }
    }
}

/// Cognito threat-protection signals carried by the user-activity log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// `riskLevel`: `Low`, `Medium`, `High` (empty in the log becomes `None`).
    pub level: Option<String>,
    /// `riskDecision`: `NoRisk`, `AccountTakeover`, `Block` (the log also shows `PASS`).
    pub decision: Option<String>,
    /// `compromisedCredentialDetected`.
    pub compromised_credentials: Option<bool>,
}

impl Risk {
    pub fn is_empty(&self) -> bool {
        self.level.is_none() && self.decision.is_none() && self.compromised_credentials.is_none()
    }
}

/// Where a record came from: the file (or stream) and the line, plus the index inside a container
/// (`Records[i]`, `events[i]`, `logEvents[i]`) when the line held several records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub file: Arc<str>,
    /// 1-based line number; for a whole-document file, the line where the document starts.
    pub line: u64,
    /// 0-based index inside a container, when there is one.
    pub record: Option<u32>,
}

impl Origin {
    pub fn new(file: Arc<str>, line: u64) -> Origin {
        Origin { file, line, record: None }
    }

    pub fn with_record(&self, record: usize) -> Origin {
        Origin { file: self.file.clone(), line: self.line, record: Some(record.min(u32::MAX as usize) as u32) }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(r) = self.record {
            write!(f, " record {r}")?;
        }
        Ok(())
    }
}

/// One sign-in (or related user-pool) event, normalized from any supported log format.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInEvent {
    /// Event time (not ingestion time).
    pub time: Timestamp,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    /// The user name as typed or stored; CloudTrail never logs it.
    pub user_name: Option<String>,
    /// The user's `sub` (a UUID), when known.
    pub user_sub: Option<String>,
    pub ip: Option<IpAddr>,
    pub outcome: Outcome,
    /// Why it failed: a CloudTrail `errorCode`, an HTTP status, or Cognito's `eventResponse`.
    pub failure_reason: Option<String>,
    pub kind: EventKind,
    /// The vendor's own name for the event: `SignIn`, `InitiateAuth`, `login_POST`...
    pub event_name: String,
    pub city: Option<String>,
    pub country: Option<String>,
    /// Cognito's `deviceName` or CloudTrail's `userAgent`.
    pub device: Option<String>,
    pub risk: Risk,
    pub event_id: Option<String>,
    pub format: LogFormat,
    pub origin: Origin,
}

impl SignInEvent {
    /// The name detectors key a user by: the user name when known, else the sub.
    pub fn user_key(&self) -> Option<&str> {
        self.user_name.as_deref().or(self.user_sub.as_deref())
    }

    /// A minimal event, for tests and the simulator to fill in.
    /// About how much heap memory the event's strings hold, beyond the event itself (the file name is
    /// shared; allocator rounding is not counted).
    pub fn heap_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        [
            &self.user_pool_id,
            &self.client_id,
            &self.user_name,
            &self.user_sub,
            &self.failure_reason,
            &self.city,
            &self.country,
            &self.device,
            &self.event_id,
            &self.risk.level,
            &self.risk.decision,
        ]
        .into_iter()
        .map(text)
        .sum::<usize>()
            + self.event_name.capacity()
    }

    pub fn new(time: Timestamp, kind: EventKind, outcome: Outcome, origin: Origin) -> SignInEvent {
        SignInEvent {
            time,
            user_pool_id: None,
            client_id: None,
            user_name: None,
            user_sub: None,
            ip: None,
            outcome,
            failure_reason: None,
            kind,
            event_name: String::new(),
            city: None,
            country: None,
            device: None,
            risk: Risk::default(),
            event_id: None,
            format: LogFormat::CognitoUserActivity,
            origin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_flag_parses_in_any_case_and_explains_errors() {
        assert_eq!(LogFormat::parse_forced("auto"), Ok(None));
        assert_eq!(LogFormat::parse_forced("CloudTrail"), Ok(Some(LogFormat::CloudTrail)));
        assert_eq!(LogFormat::parse_forced("cognito"), Ok(Some(LogFormat::CognitoUserActivity)));
        let err = LogFormat::parse_forced("json").unwrap_err();
        assert!(err.contains("'json'") && err.contains("auto, cognito or cloudtrail"), "{err}");
    }

    #[test]
    fn format_names_are_exact() {
        assert_eq!(LogFormat::parse("cloudtrail"), Some(LogFormat::CloudTrail));
        assert_eq!(LogFormat::parse("CloudTrail"), None);
        assert_eq!(LogFormat::parse("auto"), None);
        for f in LogFormat::ALL {
            assert_eq!(LogFormat::parse(f.as_str()), Some(f));
        }
    }
}
