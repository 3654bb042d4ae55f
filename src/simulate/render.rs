//! Writes a planned event as one line of vendor JSON: the exported Cognito user-activity log
//! (aws-formats.md §1) or a CloudTrail record for cognito-idp (§2).

use std::fmt::Write as _;

use super::cities::CITIES;
use super::plan::{Action, Planned, Response, RiskTag, Step, DEVICES};
use super::rng::Rng;
use crate::time::Timestamp;

/// The fixed facts of the simulated pool every line repeats.
pub struct PoolInfo {
    pub user_pool_id: String,
    /// The Region, taken from the pool id (`us-east-1_...`).
    pub region: String,
    /// App clients: `[web, mobile]`.
    pub clients: [String; 2],
    /// The AWS account the CloudTrail records belong to.
    pub account_id: String,
}

/// Who the event is about, as the log shows it.
pub struct Identity<'a> {
    pub name: &'a str,
    /// None for a user name the pool does not have.
    pub sub: Option<&'a str>,
}

/// CloudTrail's stand-in for secrets.
const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// Appends `s` as JSON string content (without quotes).
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn client<'a>(p: &Planned, pool: &'a PoolInfo) -> &'a str {
    &pool.clients[usize::from(DEVICES[p.device as usize].mobile)]
}

/// Whether the user-activity export logs this event: it has no sign-up confirmation.
pub fn in_export(p: &Planned) -> bool {
    p.action != Action::ConfirmSignUp
}

/// One exported user-activity log event. Every scalar inside `message` is a string, as Cognito writes it.
/// Writes nothing for an event the export does not log ([`in_export`]).
pub fn cognito(p: &Planned, who: &Identity, pool: &PoolInfo, rng: &mut Rng, out: &mut String) {
    let Some(event_type) = cognito_event_type(p.action) else { return };
    let response = cognito_response(p.response);
    let (level, decision, compromised) = risk_fields(p.risk, rng);
    let city = &CITIES[p.city as usize];
    let challenges = match (p.step, p.response) {
        (Step::Password, Response::Fail) => r#"[{"challengeName":"Password","challengeResponse":"Failure"}]"#,
        (Step::Password, _) => r#"[{"challengeName":"Password","challengeResponse":"Success"}]"#,
        (Step::MfaPending, _) => {
            r#"[{"challengeName":"Password","challengeResponse":"Success"},{"challengeName":"Mfa","challengeResponse":"Indeterminate"}]"#
        }
        (Step::MfaDone, _) => {
            r#"[{"challengeName":"Password","challengeResponse":"Success"},{"challengeName":"Mfa","challengeResponse":"Success"}]"#
        }
        (Step::MfaFailed, _) => {
            r#"[{"challengeName":"Password","challengeResponse":"Success"},{"challengeName":"Mfa","challengeResponse":"Failure"}]"#
        }
        (Step::Other, _) => "[]",
    };
    let _ = write!(
        out,
        r#"{{"eventTimestamp":"{}","eventSource":"USER_ACTIVITY","logLevel":"INFO","logSourceId":{{"userPoolId":""#,
        p.time.millis()
    );
    push_escaped(out, &pool.user_pool_id);
    let _ = write!(
        out,
        r#""}},"message":{{"version":"1","eventId":"{}","eventType":"{event_type}","userSub":""#,
        rng.uuid()
    );
    push_escaped(out, who.sub.unwrap_or(""));
    out.push_str(r#"","userName":""#);
    push_escaped(out, who.name);
    out.push_str(r#"","userPoolId":""#);
    push_escaped(out, &pool.user_pool_id);
    // `creationDate` is the event's own time (the API reference; AWS's example has it a year off
    // `eventTimestamp`, which the summary counts), not the account's creation.
    let created = p.time.to_java_date();
    let _ = write!(
        out,
        concat!(
            r#"","clientId":"{}","creationDate":"{}","eventResponse":"{}","riskLevel":"{}","riskDecision":"{}","#,
            r#""challenges":{},"deviceName":"{}","ipAddress":"{}","requestId":"{}","idpName":"","#,
            r#""compromisedCredentialDetected":"{}","city":"{}","country":"{}","hasContextData":"true"}}}}"#
        ),
        client(p, pool),
        created,
        response,
        level,
        decision,
        challenges,
        DEVICES[p.device as usize].name,
        p.ip,
        rng.uuid(),
        compromised,
        city.name,
        city.country,
    );
}

/// One CloudTrail record. CloudTrail logs no user name and no location; the user is the sub, if any.
pub fn cloudtrail(p: &Planned, who: &Identity, pool: &PoolInfo, rng: &mut Rng, out: &mut String) {
    let client = client(p, pool);
    let (name, request, response, error) = match (p.action, p.step, p.response) {
        (Action::SignIn, Step::MfaDone, _) => (
            "RespondToAuthChallenge",
            format!(
                r#"{{"challengeName":"SOFTWARE_TOKEN_MFA","clientId":"{client}","challengeResponses":"{HIDDEN}","session":"{HIDDEN}"}}"#
            ),
            auth_result(),
            None,
        ),
        (Action::SignIn, Step::MfaFailed, _) => (
            "RespondToAuthChallenge",
            format!(
                r#"{{"challengeName":"SOFTWARE_TOKEN_MFA","clientId":"{client}","challengeResponses":"{HIDDEN}","session":"{HIDDEN}"}}"#
            ),
            "null".to_string(),
            Some(("CodeMismatchException", "Invalid code received for user")),
        ),
        (Action::SignIn, Step::MfaPending, _) => (
            "InitiateAuth",
            initiate_params(client),
            format!(r#"{{"challengeName":"SOFTWARE_TOKEN_MFA","session":"{HIDDEN}","challengeParameters":{{}}}}"#),
            None,
        ),
        (Action::SignIn, _, Response::Fail) => (
            "InitiateAuth",
            initiate_params(client),
            "null".to_string(),
            Some(("NotAuthorizedException", "Incorrect username or password.")),
        ),
        (Action::SignIn, _, _) => ("InitiateAuth", initiate_params(client), auth_result(), None),
        (Action::SignUp, ..) => (
            "SignUp",
            format!(
                r#"{{"clientId":"{client}","username":"{HIDDEN}","password":"{HIDDEN}","userAttributes":"{HIDDEN}"}}"#
            ),
            format!(r#"{{"userConfirmed":false,"userSub":"{}"}}"#, who.sub.unwrap_or("")),
            None,
        ),
        (Action::ConfirmSignUp, ..) => (
            "ConfirmSignUp",
            format!(r#"{{"clientId":"{client}","username":"{HIDDEN}","confirmationCode":"{HIDDEN}"}}"#),
            "null".to_string(),
            None,
        ),
        (Action::ForgotPassword, ..) => (
            "ForgotPassword",
            format!(r#"{{"clientId":"{client}","username":"{HIDDEN}"}}"#),
            format!(
                r#"{{"codeDeliveryDetails":{{"attributeName":"email","deliveryMedium":"EMAIL","destination":"{HIDDEN}"}}}}"#
            ),
            None,
        ),
        (Action::PasswordChange, ..) => (
            "ChangePassword",
            format!(r#"{{"previousPassword":"{HIDDEN}","proposedPassword":"{HIDDEN}","accessToken":"{HIDDEN}"}}"#),
            "null".to_string(),
            None,
        ),
    };
    let secs = Timestamp(p.time.millis().div_euclid(1000) * 1000).to_string();
    let _ = write!(
        out,
        concat!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"Unknown","principalId":"Anonymous"}},"#,
            r#""eventTime":"{}Z","eventSource":"cognito-idp.amazonaws.com","eventName":"{}","awsRegion":"{}","#,
            r#""sourceIPAddress":"{}","userAgent":"{}","#
        ),
        &secs[..19],
        name,
        pool.region,
        p.ip,
        DEVICES[p.device as usize].user_agent,
    );
    if let Some((code, message)) = error {
        let _ = write!(out, r#""errorCode":"{code}","errorMessage":"{message}","#);
    }
    let _ = write!(out, r#""requestParameters":{request},"responseElements":{response},"#);
    if let Some(sub) = who.sub {
        out.push_str(r#""additionalEventData":{"sub":""#);
        push_escaped(out, sub);
        out.push_str(r#""},"#);
    }
    let _ = write!(out, r#""requestID":"{}","eventID":"{}","readOnly":false,"#, rng.uuid(), rng.uuid());
    // The user pool the call was made to, as CloudTrail names a call's resources: the public API's
    // requests carry only the app client id, so this is where a reader finds the pool.
    let _ = write!(
        out,
        r#""resources":[{{"accountId":"{}","type":"AWS::Cognito::UserPool","ARN":"arn:aws:cognito-idp:{}:{}:userpool/"#,
        pool.account_id, pool.region, pool.account_id
    );
    push_escaped(out, &pool.user_pool_id);
    let _ = write!(
        out,
        concat!(
            r#""}}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{}","#,
            r#""eventCategory":"Management"}}"#
        ),
        pool.account_id,
    );
}

fn initiate_params(client: &str) -> String {
    format!(r#"{{"authFlow":"USER_PASSWORD_AUTH","authParameters":"{HIDDEN}","clientId":"{client}"}}"#)
}

fn auth_result() -> String {
    format!(
        r#"{{"challengeParameters":{{}},"authenticationResult":{{"accessToken":"{HIDDEN}","expiresIn":3600,"tokenType":"Bearer","refreshToken":"{HIDDEN}","idToken":"{HIDDEN}"}}}}"#
    )
}

/// The export's `eventType`; `None` for what the export does not log.
fn cognito_event_type(a: Action) -> Option<&'static str> {
    match a {
        Action::SignIn => Some("SignIn"),
        Action::SignUp => Some("SignUp"),
        Action::ConfirmSignUp => None,
        Action::ForgotPassword => Some("ForgotPassword"),
        Action::PasswordChange => Some("PasswordChange"),
    }
}

fn cognito_response(r: Response) -> &'static str {
    match r {
        Response::Pass => "Pass",
        Response::Fail => "Fail",
        Response::InProgress => "InProgress",
    }
}

/// `(riskLevel, riskDecision, compromisedCredentialDetected)`.
fn risk_fields(tag: RiskTag, rng: &mut Rng) -> (&'static str, &'static str, &'static str) {
    match tag {
        RiskTag::Benign if rng.chance(0.5) => ("", "PASS", "false"),
        RiskTag::Benign => ("Low", "NoRisk", "false"),
        RiskTag::Suspicious if rng.chance(0.3) => ("Medium", "NoRisk", "false"),
        RiskTag::Suspicious => ("Low", "NoRisk", "false"),
        RiskTag::Compromised => ("High", "AccountTakeover", "true"),
    }
}
