//! The one normalized sign-in event that flows from the decoders to the detectors.
//!
//! Decoders (`crate::decode`) are the only code that knows vendor JSON; everything after them sees a
//! [`SignInEvent`]. Strings here are raw log text: sanitise them (`crate::sanitize`) before they reach a
//! terminal, a notification or a log line.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use compact_str::CompactString;
use serde::Serialize;

pub use crate::id_text::IdText;
use crate::time::Timestamp;

/// What kind of user-pool activity an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A sign-in attempt: Cognito `SignIn`; CloudTrail `InitiateAuth`, `AdminInitiateAuth`,
    /// `RespondToAuthChallenge`; hosted UI `login_POST`, `CognitoAuthentication`.
    SignIn,
    SignUp,
    /// A sign-up confirmed with its code (CloudTrail `ConfirmSignUp`). The user-activity export logs no
    /// confirmation: there, a sign-up is confirmed by the account's first successful sign-in.
    ConfirmSignUp,
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
            EventKind::ConfirmSignUp => "confirm_sign_up",
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
            "confirm_sign_up" => EventKind::ConfirmSignUp,
            "forgot_password" => EventKind::ForgotPassword,
            "password_change" => EventKind::PasswordChange,
            "resend_code" => EventKind::ResendCode,
            "token" => EventKind::Token,
            "other" => EventKind::Other,
            _ => return None,
        })
    }

    pub const ALL: [EventKind; 8] = [
        EventKind::SignIn,
        EventKind::SignUp,
        EventKind::ConfirmSignUp,
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

/// How one step of a multi-step sign-in ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The log does not say (no such step, or still in progress).
    #[default]
    Unknown,
    Passed,
    Failed,
}

/// The steps of a sign-in the log shows: the password (first factor) and the second factor (MFA). From
/// the export's `challenges` (`Password` / `Mfa`, `Success` / `Failure`) and from CloudTrail's challenge
/// calls (an `InitiateAuth` answered with an MFA challenge passed the password; a
/// `RespondToAuthChallenge` to an MFA challenge failing with `CodeMismatchException` or
/// `ExpiredCodeException` failed the MFA step).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Factors {
    pub password: Step,
    pub mfa: Step,
    /// The call was answered with a further challenge (CloudTrail `InitiateAuth` or
    /// `RespondToAuthChallenge` returning one): a step passed, but the sign-in is not complete, so it is
    /// not an account signed in (a campaign's takeover is a completed sign-in).
    pub pending: bool,
}

impl Factors {
    /// The attempt had the right password and was stopped by MFA: the password is known to whoever
    /// sent it. CloudTrail's failed MFA answer does not repeat the password step, so an MFA failure alone
    /// counts too there; the detector checks that a challenge was issued before it.
    pub fn mfa_failed(&self) -> bool {
        self.mfa == Step::Failed && self.password != Step::Failed
    }
}

/// Cognito threat-protection signals carried by the user-activity log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// `riskLevel`: `Low`, `Medium`, `High` (empty in the log becomes `None`).
    pub level: Option<CompactString>,
    /// `riskDecision`: `NoRisk`, `AccountTakeover`, `Block` (the log also shows `PASS`).
    pub decision: Option<CompactString>,
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
    pub file: FileName,
    /// 1-based line number; for a whole-document file, the line where the document starts.
    pub line: u64,
    /// 0-based index inside a container, when there is one.
    pub record: Option<u32>,
}

impl Origin {
    pub fn new(file: FileName, line: u64) -> Origin {
        Origin { file, line, record: None }
    }

    pub fn with_record(&self, record: usize) -> Origin {
        Origin { file: self.file.clone(), line: self.line, record: Some(record.min(u32::MAX as usize) as u32) }
    }
}

/// The name of an input: a file named on the command line (or `<stdin>`), or a CloudWatch log stream
/// (`group/stream`). A file's name is interned for the life of the process, so that an [`Origin`] names it
/// without a reference count: every record and every event carries an origin, and when it held an
/// `Arc<str>` the reader, decoder and merger threads each updated the one shared count for every record,
/// a contended cache line that was a tenth of `replay --decode-only`'s time. Files are few: the set holds
/// as many names as there are inputs on the command line. Log streams are not few (a monitor running for
/// months meets new ones without end), so their names stay reference-counted and are freed with their
/// last event. Compared, ordered and hashed by text, whichever way it is kept.
#[derive(Clone)]
pub struct FileName(Kept);

#[derive(Clone)]
enum Kept {
    Interned(&'static str),
    Counted(Arc<str>),
}

impl FileName {
    /// A file's name, interned: the same text gives the same `FileName`, kept once however often it is
    /// asked. For names that can be many over a process's life, use [`FileName::counted`].
    pub fn new(name: &str) -> FileName {
        static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
        // A panic elsewhere while holding the lock leaves the set as it was: still a valid set.
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&known) = names.get(name) {
            return FileName(Kept::Interned(known));
        }
        let kept: &'static str = Box::leak(Box::from(name));
        names.insert(kept);
        FileName(Kept::Interned(kept))
    }

    /// A name kept with a reference count and freed with its last holder: a log stream's.
    pub fn counted(name: &str) -> FileName {
        FileName(Kept::Counted(Arc::from(name)))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Kept::Interned(name) => name,
            Kept::Counted(name) => name,
        }
    }
}

impl Deref for FileName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for FileName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for FileName {
    fn eq(&self, other: &FileName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for FileName {}

impl std::hash::Hash for FileName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for FileName {
    fn partial_cmp(&self, other: &FileName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FileName {
    fn cmp(&self, other: &FileName) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for FileName {
    fn from(name: &str) -> FileName {
        FileName::new(name)
    }
}

impl From<String> for FileName {
    fn from(name: String) -> FileName {
        FileName::new(&name)
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
    pub user_pool_id: Option<CompactString>,
    pub client_id: Option<IdText>,
    /// The user name as typed or stored; CloudTrail never logs it.
    pub user_name: Option<CompactString>,
    /// The user's `sub` (a UUID), when known.
    pub user_sub: Option<IdText>,
    pub ip: Option<IpAddr>,
    pub outcome: Outcome,
    /// Why it failed: a CloudTrail `errorCode`, an HTTP status, or Cognito's `eventResponse`.
    pub failure_reason: Option<CompactString>,
    pub kind: EventKind,
    /// The vendor's own name for the event: `SignIn`, `InitiateAuth`, `login_POST`...
    pub event_name: CompactString,
    pub city: Option<CompactString>,
    pub country: Option<CompactString>,
    /// Cognito's `deviceName` or CloudTrail's `userAgent`.
    pub device: Option<CompactString>,
    pub risk: Risk,
    /// The password and MFA steps, when the log shows them.
    pub factors: Factors,
    /// The AWS Region the event was logged in (CloudTrail `awsRegion`, or the log group's Region). A
    /// replicated user pool keeps one pool id in every Region; the Region tells their streams apart.
    pub region: Option<CompactString>,
    /// The AWS account the event belongs to (CloudTrail `recipientAccountId`), when the record says.
    pub account: Option<CompactString>,
    /// The export's `creationDate` is more than a day away from its `eventTimestamp` (AWS's own example
    /// is a year apart); `time` is the `eventTimestamp`. Counted and said in the replay summary.
    pub creation_date_disagrees: bool,
    pub event_id: Option<IdText>,
    pub format: LogFormat,
    pub origin: Origin,
}

impl SignInEvent {
    /// The name detectors key a user by: the user name when known, else the sub.
    pub fn user_key(&self) -> Option<&str> {
        self.user_name.as_deref().or(self.user_sub.as_deref())
    }

    /// The user pool this event belongs to, as pool-wide detectors key it: the pool id, and the Region
    /// when it is known and differs from the one the pool id names (a replica's events), so the
    /// streams of two Regions of one replicated pool are not judged as one.
    pub fn pool_key(&self) -> Option<PoolKey<'_>> {
        let pool = self.user_pool_id.as_deref().filter(|p| !p.is_empty())?;
        let home = pool.split_once('_').map(|(region, _)| region);
        let region = self.region.as_deref().filter(|r| !r.is_empty() && Some(*r) != home);
        Some(PoolKey { pool, region })
    }

    /// About how much heap memory the event's strings hold, beyond the event itself (the file name is
    /// shared; strings of up to 24 bytes, and ids of up to 38, are kept inline; allocator rounding is not
    /// counted).
    pub fn heap_bytes(&self) -> usize {
        let heap = |s: &CompactString| if s.is_heap_allocated() { s.capacity() } else { 0 };
        let text = |s: &Option<CompactString>| s.as_ref().map_or(0, heap);
        let id = |s: &Option<IdText>| s.as_ref().map_or(0, IdText::heap_len);
        [
            &self.user_pool_id,
            &self.user_name,
            &self.failure_reason,
            &self.city,
            &self.country,
            &self.device,
            &self.region,
            &self.account,
            &self.risk.level,
            &self.risk.decision,
        ]
        .into_iter()
        .map(text)
        .sum::<usize>()
            + heap(&self.event_name)
            + [&self.client_id, &self.user_sub, &self.event_id].into_iter().map(id).sum::<usize>()
    }

    /// A minimal event, for tests and the simulator to fill in.
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
            event_name: CompactString::default(),
            city: None,
            country: None,
            device: None,
            risk: Risk::default(),
            factors: Factors::default(),
            region: None,
            account: None,
            creation_date_disagrees: false,
            event_id: None,
            format: LogFormat::CognitoUserActivity,
            origin,
        }
    }
}

/// A user pool as pool-wide detectors key it ([`SignInEvent::pool_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey<'a> {
    pub pool: &'a str,
    /// A Region other than the pool id's own: the events of a replica.
    pub region: Option<&'a str>,
}

impl fmt::Display for PoolKey<'_> {
    /// `us-east-1_ABC`, or `us-east-1_ABC@eu-west-1` for its replica in eu-west-1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.region {
            Some(region) => write!(f, "{}@{region}", self.pool),
            None => f.write_str(self.pool),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_is_kept_once_and_reads_as_its_text() {
        let a = FileName::new("logs/2026-12-05.jsonl");
        let b = FileName::from(String::from("logs/2026-12-05.jsonl"));
        assert!(std::ptr::eq(a.as_str(), b.as_str()), "the same text is interned once");
        assert_eq!(a, b);
        let stream = FileName::counted("logs/2026-12-05.jsonl");
        assert_eq!(stream, a, "equal by text, however kept");
        assert_eq!(stream.cmp(&a), std::cmp::Ordering::Equal);
        assert_ne!(a, FileName::new("logs/2026-12-06.jsonl"));
        let origin = Origin::new(a.clone(), 7).with_record(2);
        assert_eq!(origin.to_string(), "logs/2026-12-05.jsonl:7 record 2");
        assert_eq!(format!("{:?}", origin.file), "\"logs/2026-12-05.jsonl\"");
    }

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

    #[test]
    fn a_replica_region_is_part_of_the_pool_key() {
        let mut ev = SignInEvent::new(Timestamp(0), EventKind::SignIn, Outcome::Success, Origin::new("f".into(), 1));
        assert_eq!(ev.pool_key(), None);
        ev.user_pool_id = Some("us-east-1_ABC".into());
        assert_eq!(ev.pool_key().map(|k| k.to_string()).as_deref(), Some("us-east-1_ABC"));
        ev.region = Some("us-east-1".into());
        assert_eq!(ev.pool_key().map(|k| k.to_string()).as_deref(), Some("us-east-1_ABC"));
        ev.region = Some("eu-west-1".into());
        assert_eq!(ev.pool_key().map(|k| k.to_string()).as_deref(), Some("us-east-1_ABC@eu-west-1"));
    }
}
