//! CloudTrail records from `cognito-idp.amazonaws.com` (aws-formats.md §2) → [`SignInEvent`]: API calls
//! (`InitiateAuth`, `RespondToAuthChallenge`...) and hosted-UI service events (`login_POST`...).

use compact_str::CompactString;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{address, clip, visible, Decoded, Format, Record, Rejection, SkipReason, Text};
use crate::event::{EventKind, Factors, IdText, LogFormat, Origin, Outcome, SignInEvent, Step};
use crate::time::Timestamp;

const COGNITO_SOURCE: &str = "cognito-idp.amazonaws.com";
/// `eventType` of hosted-UI / managed-login events; API calls are `AwsApiCall`.
const SERVICE_EVENT: &str = "AwsServiceEvent";

/// `requestParameters` of an API call.
#[derive(Deserialize, Default)]
struct Request<'a> {
    #[serde(rename = "userPoolId", borrow, default)]
    user_pool_id: Text<'a>,
    #[serde(rename = "clientId", borrow, default)]
    client_id: Text<'a>,
    #[serde(rename = "authFlow", borrow, default)]
    auth_flow: Text<'a>,
    /// An object with `USERNAME`..., or, on a failed `InitiateAuth`, the string
    /// `HIDDEN_DUE_TO_SECURITY_REASONS`.
    #[serde(rename = "authParameters", borrow, default)]
    auth_parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    username: Text<'a>,
    /// `RespondToAuthChallenge`: the challenge answered.
    #[serde(rename = "challengeName", borrow, default)]
    challenge_name: Text<'a>,
}

/// `responseElements` of a successful call: the challenge it answered with, if any.
#[derive(Deserialize, Default)]
struct Response<'a> {
    #[serde(rename = "challengeName", borrow, default)]
    challenge_name: Text<'a>,
}

#[derive(Deserialize, Default)]
struct AuthParameters<'a> {
    #[serde(rename = "USERNAME", borrow, default)]
    username: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Additional<'a> {
    #[serde(borrow, default)]
    sub: Text<'a>,
    #[serde(rename = "userPoolId", borrow, default)]
    user_pool_id: Text<'a>,
    /// Hosted UI: parameters as arrays of strings ([`Text`] takes the first element).
    #[serde(rename = "requestParameters", borrow, default)]
    request_parameters: Option<HostedRequest<'a>>,
    #[serde(rename = "responseParameters", borrow, default)]
    response_parameters: Option<HostedResponse<'a>>,
}

#[derive(Deserialize, Default)]
struct HostedRequest<'a> {
    #[serde(borrow, default)]
    username: Text<'a>,
    #[serde(borrow, default)]
    client_id: Text<'a>,
    /// The user's sub on pages that know the user (`Confirm_POST`), where `additionalEventData.sub` is
    /// absent.
    #[serde(borrow, default)]
    sub: Text<'a>,
}

#[derive(Deserialize, Default)]
struct HostedResponse<'a> {
    /// HTTP status, `200` or `200.0`, string or number.
    #[serde(borrow, default)]
    status: Text<'a>,
}

#[derive(Deserialize)]
struct Resource<'a> {
    #[serde(rename = "ARN", borrow, default)]
    arn: Text<'a>,
}

/// CloudTrail, as `auto` tells one of its records from other objects.
pub(super) const FORMAT: Format =
    Format { log: LogFormat::CloudTrail, record: "a CloudTrail record", looks_like, decode };

fn looks_like(rec: &Record) -> bool {
    rec.event_time.is_present()
        || rec.event_version.is_present()
        || rec.event_source.get().is_some_and(|s| s.ends_with(".amazonaws.com"))
}

fn decode(rec: &Record, origin: &Origin) -> Decoded {
    match try_decode(rec, origin) {
        Ok(decoded) => decoded,
        Err(reason) => Decoded::Rejected(Rejection::new(origin, reason)),
    }
}

fn try_decode(rec: &Record, origin: &Origin) -> Result<Decoded, String> {
    if rec.event_source.get() != Some(COGNITO_SOURCE) {
        return Ok(Decoded::Skipped(SkipReason::OtherService));
    }
    let name = rec.event_name.get().ok_or("CloudTrail record has no `eventName`")?;
    let hosted = rec.event_type.get() == Some(SERVICE_EVENT);
    let request: Request = parse_nested(rec.request_parameters, "requestParameters")?;
    let additional: Additional = parse_nested(rec.additional_event_data, "additionalEventData")?;

    let kind = if hosted { Some(hosted_kind(name)) } else { api_kind(name, request.auth_flow.get()) };
    let Some(kind) = kind else {
        return Ok(Decoded::Skipped(SkipReason::NotAuthActivity));
    };
    let time = event_time(&rec.event_time)?;
    let (outcome, failure_reason) = if hosted {
        hosted_outcome(&additional, rec.error_code.get())
    } else {
        api_outcome(name, request.auth_flow.get(), rec.error_code.get())
    };
    let mut factors = Factors::default();
    if kind == EventKind::SignIn && !hosted {
        // Only a call that succeeded has response elements worth reading.
        let response: Response = if outcome == Outcome::Success {
            parse_nested(rec.response_elements, "responseElements")?
        } else {
            Response::default()
        };
        // An `InitiateAuth` answered with an MFA challenge keeps its outcome (success: the password was
        // right), as the generated CloudWatch patterns count it; its steps say the rest.
        factors = api_factors(name, &request, response.challenge_name.get(), rec.error_code.get());
    }

    let mut event = SignInEvent::new(time, kind, outcome, origin.clone());
    event.factors = factors;
    event.failure_reason = failure_reason.map(CompactString::from);
    event.event_name = name.into();
    let hosted_request = additional.request_parameters.unwrap_or_default();
    event.user_sub = visible(additional.sub.get().or(hosted_request.sub.get())).map(IdText::from);
    event.user_name = visible(hosted_request.username.get())
        .map(CompactString::from)
        .or_else(|| auth_username(&request))
        .or_else(|| visible(request.username.get()).map(CompactString::from));
    event.client_id = request.client_id.owned().or_else(|| hosted_request.client_id.owned());
    event.user_pool_id = request
        .user_pool_id
        .owned()
        .or_else(|| additional.user_pool_id.owned())
        .or_else(|| pool_from_resources(rec.resources));
    event.ip = rec.source_ip_address.get().and_then(address);
    event.device = rec.user_agent.owned();
    event.region = rec.aws_region.owned();
    event.account = rec.recipient_account_id.owned();
    event.event_id = rec.event_id.owned();
    event.format = LogFormat::CloudTrail;
    Ok(Decoded::Event(Box::new(event)))
}

/// Parses an optional nested object; `null` or absent is the default, anything but an object is an error.
fn parse_nested<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>, field: &str) -> Result<T, String> {
    match raw {
        None => Ok(T::default()),
        Some(raw) if raw.get().starts_with('{') => {
            serde_json::from_str(raw.get()).map_err(|e| format!("invalid `{field}`: {}", super::json_error(&e)))
        }
        Some(raw) => Err(format!("`{field}` is {}, expected an object", super::json_kind(raw.get()))),
    }
}

/// `USERNAME` when `authParameters` is an object; it is a placeholder string when the call failed.
fn auth_username(request: &Request) -> Option<CompactString> {
    let raw = request.auth_parameters.filter(|r| r.get().starts_with('{'))?;
    let params: AuthParameters = serde_json::from_str(raw.get()).ok()?;
    visible(params.username.get()).map(CompactString::from)
}

/// The kind of a user-facing API call; `None` for management calls (pool, client and admin user
/// administration), which say nothing about sign-in activity.
fn api_kind(name: &str, auth_flow: Option<&str>) -> Option<EventKind> {
    Some(match name {
        "InitiateAuth" | "AdminInitiateAuth" if is_refresh(auth_flow) => EventKind::Token,
        "InitiateAuth" | "AdminInitiateAuth" | "RespondToAuthChallenge" | "AdminRespondToAuthChallenge" => {
            EventKind::SignIn
        }
        "SignUp" => EventKind::SignUp,
        "ConfirmSignUp" => EventKind::ConfirmSignUp,
        "ForgotPassword" | "ConfirmForgotPassword" => EventKind::ForgotPassword,
        "ChangePassword" => EventKind::PasswordChange,
        "ResendConfirmationCode" => EventKind::ResendCode,
        "GetTokensFromRefreshToken" => EventKind::Token,
        "GlobalSignOut"
        | "RevokeToken"
        | "GetUser"
        | "DeleteUser"
        | "UpdateUserAttributes"
        | "DeleteUserAttributes"
        | "VerifyUserAttribute"
        | "GetUserAttributeVerificationCode"
        | "AssociateSoftwareToken"
        | "VerifySoftwareToken"
        | "SetUserMFAPreference"
        | "SetUserSettings"
        | "ConfirmDevice"
        | "ForgetDevice"
        | "GetDevice"
        | "ListDevices"
        | "UpdateDeviceStatus"
        | "StartWebAuthnRegistration"
        | "CompleteWebAuthnRegistration"
        | "ListWebAuthnCredentials"
        | "DeleteWebAuthnCredential"
        | "GetUserAuthFactors" => EventKind::Other,
        _ => return None,
    })
}

/// Challenges that ask for a second factor once the password was accepted.
fn is_mfa_challenge(name: &str) -> bool {
    matches!(name, "SMS_MFA" | "SOFTWARE_TOKEN_MFA" | "EMAIL_OTP" | "SELECT_MFA_TYPE")
}

/// The password and MFA steps an API sign-in call shows. The password passed when a call that checked
/// it (`InitiateAuth` with a password flow, or the answer to `PASSWORD_VERIFIER` / `PASSWORD`) was
/// answered with an MFA challenge; an `EMAIL_OTP` asked for by a passwordless `USER_AUTH` sign-in is a
/// first factor, so it says nothing of a password. The MFA step failed when an answer to an MFA challenge
/// came back `CodeMismatchException` or `ExpiredCodeException`, and passed when it succeeded.
fn api_factors(name: &str, request: &Request, next_challenge: Option<&str>, error_code: Option<&str>) -> Factors {
    let initiate = matches!(name, "InitiateAuth" | "AdminInitiateAuth");
    let checked_password = if initiate {
        matches!(request.auth_flow.get(), Some("USER_PASSWORD_AUTH" | "ADMIN_USER_PASSWORD_AUTH" | "ADMIN_NO_SRP_AUTH"))
    } else {
        matches!(request.challenge_name.get(), Some("PASSWORD_VERIFIER" | "PASSWORD" | "PASSWORD_SRP"))
    };
    let mut factors = Factors { pending: error_code.is_none() && next_challenge.is_some(), ..Factors::default() };
    if checked_password && error_code.is_none() && next_challenge.is_some_and(is_mfa_challenge) {
        factors.password = Step::Passed;
    }
    let answered = request.challenge_name.get().filter(|c| !initiate && is_mfa_challenge(c));
    if answered.is_some() {
        factors.mfa = match error_code {
            None => Step::Passed,
            Some("CodeMismatchException" | "ExpiredCodeException") => Step::Failed,
            Some(_) => Step::Unknown,
        };
    }
    factors
}

fn is_refresh(auth_flow: Option<&str>) -> bool {
    matches!(auth_flow, Some("REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN"))
}

/// Hosted-UI event names vary in case between AWS pages (`Login_POST`, `login_POST`). Sign-ins are the
/// requests AWS lists as a user submitting a credential: a password (`login_POST`,
/// `CognitoAuthentication`), a SAML assertion or an OIDC / social IdP's answer at `/saml2/idpresponse`
/// and `/oauth2/idpresponse` (`SAML2Response_POST`, `OAuth2Response_GET` / `_POST`, with their `Beta_`
/// forms), a passkey (`login_passkey_POST`) or a passwordless one-time code (`verifyCode_POST`).
fn hosted_kind(name: &str) -> EventKind {
    match name.to_ascii_lowercase().as_str() {
        "login_post"
        | "cognitoauthentication"
        | "saml2response_post"
        | "beta_saml2response_post"
        | "oauth2response_get"
        | "oauth2response_post"
        | "login_passkey_post"
        | "verifycode_post" => EventKind::SignIn,
        "token_post" => EventKind::Token,
        "signup_post" => EventKind::SignUp,
        // The managed-login page that takes the sign-up confirmation code.
        "confirm_post" => EventKind::ConfirmSignUp,
        "forgotpassword_post" | "confirmforgotpassword_post" => EventKind::ForgotPassword,
        _ => EventKind::Other,
    }
}

fn api_outcome(name: &str, auth_flow: Option<&str>, error_code: Option<&str>) -> (Outcome, Option<String>) {
    match error_code {
        // The first step of SRP or a custom flow only issues a challenge. A choice-based `USER_AUTH` call
        // (passwordless, passkey) that issued one counts as success, like a password answered with an MFA
        // challenge, as the generated CloudWatch patterns count it; its factors say no password was checked.
        None if matches!(name, "InitiateAuth" | "AdminInitiateAuth")
            && matches!(auth_flow, Some("USER_SRP_AUTH" | "CUSTOM_AUTH")) =>
        {
            (Outcome::InProgress, None)
        }
        None => (Outcome::Success, None),
        Some("TooManyRequestsException" | "LimitExceededException") => {
            (Outcome::Throttled, error_code.map(str::to_owned))
        }
        Some(code) => (Outcome::Failure, Some(code.to_owned())),
    }
}

/// Outcome from the HTTP status the hosted UI answered with; a 302 redirect after `login_POST` is a
/// successful sign-in.
fn hosted_outcome(additional: &Additional, error_code: Option<&str>) -> (Outcome, Option<String>) {
    let status = additional
        .response_parameters
        .as_ref()
        .and_then(|r| r.status.get())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && (0.0..1000.0).contains(v))
        .map(|v| v as u16);
    match status {
        Some(429) => (Outcome::Throttled, Some("HTTP 429".into())),
        Some(200..=399) => (Outcome::Success, None),
        Some(code @ 400..=499) => (Outcome::Failure, Some(format!("HTTP {code}"))),
        Some(code) => (Outcome::Unknown, Some(format!("HTTP {code}"))),
        None => match error_code {
            Some(code) => (Outcome::Failure, Some(code.to_owned())),
            None => (Outcome::Unknown, None),
        },
    }
}

fn event_time(field: &Text) -> Result<Timestamp, String> {
    let s = field.get().ok_or("missing `eventTime`")?;
    let time =
        Timestamp::parse_rfc3339(s).ok_or_else(|| format!("`eventTime` '{}' is not an RFC 3339 time", clip(s)))?;
    if !time.is_plausible() {
        return Err(format!("`eventTime` {} is outside the plausible range 2000..2100", clip(s)));
    }
    Ok(time)
}

/// `arn:aws:cognito-idp:<region>:<account>:userpool/<pool id>` → the pool id.
fn pool_from_resources(raw: Option<&RawValue>) -> Option<CompactString> {
    let resources: Vec<Resource> = serde_json::from_str(raw?.get()).ok()?;
    resources.iter().find_map(|r| {
        let arn = r.arn.get()?;
        let (_, pool) = arn.split_once(":userpool/")?;
        Some(CompactString::from(pool)).filter(|p| !p.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(flow: Option<&'a str>, challenge: Option<&'a str>) -> Request<'a> {
        Request {
            auth_flow: Text(flow.map(Into::into)),
            challenge_name: Text(challenge.map(Into::into)),
            ..Request::default()
        }
    }

    #[test]
    fn an_mfa_challenge_after_a_password_and_a_wrong_code_are_the_two_steps() {
        let password = request(Some("USER_PASSWORD_AUTH"), None);
        let f = api_factors("InitiateAuth", &password, Some("SMS_MFA"), None);
        assert_eq!(f, Factors { password: Step::Passed, mfa: Step::Unknown, pending: true });
        // Passwordless: the code is the first factor, no password was checked.
        let otp = request(Some("USER_AUTH"), None);
        assert_eq!(
            api_factors("InitiateAuth", &otp, Some("EMAIL_OTP"), None),
            Factors { pending: true, ..Factors::default() },
            "a code asked for: not signed in yet"
        );
        let srp = request(None, Some("PASSWORD_VERIFIER"));
        let f = api_factors("RespondToAuthChallenge", &srp, Some("SOFTWARE_TOKEN_MFA"), None);
        assert_eq!(f.password, Step::Passed);
        let answer = request(None, Some("SOFTWARE_TOKEN_MFA"));
        for (code, step) in [
            (Some("CodeMismatchException"), Step::Failed),
            (Some("ExpiredCodeException"), Step::Failed),
            (Some("NotAuthorizedException"), Step::Unknown),
            (None, Step::Passed),
        ] {
            let f = api_factors("RespondToAuthChallenge", &answer, None, code);
            assert_eq!((f.mfa, f.pending), (step, false), "{code:?}");
        }
        assert_eq!(api_kind("ConfirmSignUp", None), Some(EventKind::ConfirmSignUp));
    }

    #[test]
    fn management_calls_are_not_auth_activity() {
        for name in ["CreateUserPool", "DescribeUserPool", "ListUsers", "UpdateUserPoolClient", "AdminCreateUser"] {
            assert_eq!(api_kind(name, None), None, "{name}");
        }
        assert_eq!(api_kind("AdminInitiateAuth", Some("ADMIN_USER_PASSWORD_AUTH")), Some(EventKind::SignIn));
        assert_eq!(api_kind("AdminRespondToAuthChallenge", None), Some(EventKind::SignIn));
        assert_eq!(api_kind("InitiateAuth", Some("REFRESH_TOKEN_AUTH")), Some(EventKind::Token));
        assert_eq!(api_kind("ChangePassword", None), Some(EventKind::PasswordChange));
        assert_eq!(api_kind("ResendConfirmationCode", None), Some(EventKind::ResendCode));
    }

    #[test]
    fn first_srp_step_is_in_progress_not_success() {
        assert_eq!(api_outcome("InitiateAuth", Some("USER_SRP_AUTH"), None), (Outcome::InProgress, None));
        assert_eq!(api_outcome("InitiateAuth", Some("CUSTOM_AUTH"), None), (Outcome::InProgress, None));
        assert_eq!(api_outcome("InitiateAuth", Some("USER_AUTH"), None), (Outcome::Success, None));
        assert_eq!(api_outcome("InitiateAuth", Some("USER_PASSWORD_AUTH"), None), (Outcome::Success, None));
        assert_eq!(
            api_outcome("InitiateAuth", Some("USER_SRP_AUTH"), Some("NotAuthorizedException")),
            (Outcome::Failure, Some("NotAuthorizedException".into()))
        );
        assert_eq!(api_outcome("SignUp", None, Some("LimitExceededException")).0, Outcome::Throttled);
    }

    #[test]
    fn hosted_names_compare_case_insensitively() {
        assert_eq!(hosted_kind("login_POST"), EventKind::SignIn);
        assert_eq!(hosted_kind("Login_POST"), EventKind::SignIn);
        assert_eq!(hosted_kind("CognitoAuthentication"), EventKind::SignIn);
        assert_eq!(hosted_kind("TOKEN_POST"), EventKind::Token);
        assert_eq!(hosted_kind("Signup_POST"), EventKind::SignUp);
        assert_eq!(hosted_kind("Login_GET"), EventKind::Other);
        for federated_or_passwordless in [
            "SAML2Response_POST",
            "Beta_SAML2Response_POST",
            "OAuth2Response_GET",
            "OAuth2Response_POST",
            "login_passkey_POST",
            "verifyCode_POST",
        ] {
            assert_eq!(hosted_kind(federated_or_passwordless), EventKind::SignIn, "{federated_or_passwordless}");
        }
        // Pages and steps that check no credential of their own.
        for other in ["OAuth2_Authorize_GET", "Login_OIDC_SAML_POST", "login_continue_POST", "passkeys_add_POST"] {
            assert_eq!(hosted_kind(other), EventKind::Other, "{other}");
        }
    }

    fn status(json: &str, error_code: Option<&str>) -> (Outcome, Option<String>) {
        let additional: Additional = serde_json::from_str(json).unwrap();
        hosted_outcome(&additional, error_code)
    }

    #[test]
    fn hosted_outcome_follows_the_http_status() {
        assert_eq!(status(r#"{"responseParameters":{"status":"200.0"}}"#, None), (Outcome::Success, None));
        assert_eq!(status(r#"{"responseParameters":{"status":302}}"#, None), (Outcome::Success, None));
        assert_eq!(status(r#"{"responseParameters":{"status":429.0}}"#, None).0, Outcome::Throttled);
        assert_eq!(
            status(r#"{"responseParameters":{"status":"404"}}"#, None),
            (Outcome::Failure, Some("HTTP 404".into()))
        );
        assert_eq!(status(r#"{"responseParameters":{"status":"503"}}"#, None).0, Outcome::Unknown);
        assert_eq!(status("{}", None), (Outcome::Unknown, None));
        assert_eq!(status("{}", Some("InternalError")), (Outcome::Failure, Some("InternalError".into())));
    }

    #[test]
    fn pool_id_from_the_resource_arn() {
        let raw: Box<RawValue> = serde_json::from_str(
            r#"[{"type":"AWS::Cognito::UserPool","ARN":"arn:aws:cognito-idp:eu-west-1:1:userpool/eu-west-1_AbC"}]"#,
        )
        .unwrap();
        assert_eq!(pool_from_resources(Some(&raw)), Some("eu-west-1_AbC".into()));
        let raw: Box<RawValue> = serde_json::from_str(r#"{"ARN":"x"}"#).unwrap();
        assert_eq!(pool_from_resources(Some(&raw)), None);
    }
}
