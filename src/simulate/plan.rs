//! One planned log event: what happened, to whom, from where. Benign sessions and attacks both produce
//! these; `render` turns them into vendor JSON when they are emitted.

use std::net::IpAddr;
use std::sync::Arc;

use crate::time::Timestamp;

/// The Cognito `eventType` (CloudTrail API call) of a planned event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    SignUp,
    /// The sign-up's code entered (CloudTrail `ConfirmSignUp`); the user-activity export logs no
    /// confirmation, so Cognito output leaves these events out.
    ConfirmSignUp,
    ForgotPassword,
    PasswordChange,
}

/// Cognito `eventResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    Pass,
    Fail,
    InProgress,
}

/// Which authentication step a sign-in event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Password check (`InitiateAuth` with `USER_PASSWORD_AUTH`).
    Password,
    /// Password accepted, MFA code asked for.
    MfaPending,
    /// MFA code accepted (`RespondToAuthChallenge`).
    MfaDone,
    /// MFA code rejected after the password passed (`RespondToAuthChallenge` failing with
    /// `CodeMismatchException`; the export's challenges Password/Success, Mfa/Failure).
    MfaFailed,
    /// Not a sign-in.
    Other,
}

/// Which risk fields the event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskTag {
    /// riskLevel "" or "Low", riskDecision "PASS" or "NoRisk".
    Benign,
    /// Attacker traffic Cognito scored but did not block: "Low" or "Medium", "NoRisk".
    Suspicious,
    /// Leaked credentials: riskLevel "High", riskDecision "AccountTakeover", compromised "true".
    Compromised,
}

/// The user an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A user of the pool, by index.
    Pool(u32),
    /// A user name the pool does not have (credential stuffing): no sub.
    Unknown(Box<str>),
    /// An account created during the run by a planted sign-up wave (a flood, a campaign): not one of the
    /// pool's users, but it has a sub from its sign-up on.
    New(Arc<NewUser>),
}

/// An account a planted sign-up wave creates.
#[derive(Debug, PartialEq, Eq)]
pub struct NewUser {
    pub name: Box<str>,
    pub sub: Box<str>,
    pub created: Timestamp,
}

/// One event waiting to be emitted.
#[derive(Debug, Clone)]
pub struct Planned {
    pub time: Timestamp,
    pub action: Action,
    pub response: Response,
    pub step: Step,
    pub who: Who,
    pub ip: IpAddr,
    /// Index into `cities::CITIES`.
    pub city: u8,
    /// Index into [`DEVICES`].
    pub device: u8,
    pub risk: RiskTag,
    /// Detectable only from fields CloudTrail lacks (risk, location): `mixed` output renders it as Cognito.
    pub cognito_only: bool,
}

/// A device as Cognito names it (`deviceName`) and the user agent CloudTrail records for it.
pub struct Device {
    pub name: &'static str,
    pub user_agent: &'static str,
    /// A phone: signs in through the mobile app client.
    pub mobile: bool,
    /// Relative share among benign users (0: attacker tooling only).
    pub weight: u32,
}

const fn device(name: &'static str, user_agent: &'static str, mobile: bool, weight: u32) -> Device {
    Device { name, user_agent, mobile, weight }
}

pub const DEVICES: [Device; 12] = [
    device("Chrome 126, Windows 10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", false, 30),
    device("Edge 126, Windows 10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", false, 10),
    device("Firefox 127, Windows 10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", false, 5),
    device("Safari 17, Mac OS X 10.15.7", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", false, 10),
    device("Chrome 126, Mac OS X 10.15.7", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", false, 8),
    device("Firefox 127, Ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", false, 2),
    device("Mobile Safari 17, iOS 17.5.1", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", true, 18),
    device("Chrome Mobile 126, Android 14", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", true, 14),
    device("Other, Other", "aws-sdk-js/3.614.0 ua/2.0 os/linux#5.10 lang/js md/nodejs#20.15.0 api/cognito-identity-provider#3.614.0", true, 3),
    device("Other, Other", "python-requests/2.32.3", false, 0),
    device("Other, Other", "Go-http-client/1.1", false, 0),
    device("Chrome 114, Windows 10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36", false, 0),
];

/// Devices attacker tooling presents: index range into [`DEVICES`].
pub const ATTACK_DEVICES: std::ops::Range<u8> = 9..12;
