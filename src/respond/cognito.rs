//! The Cognito admin calls that contain an account: `AdminUserGlobalSignOut`, `AdminDisableUser`,
//! `AdminResetUserPassword`, each on the pool the finding names, in the pool's Region.

use std::collections::HashMap;

use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::Client;

use super::policy::ContainAction;

/// Error codes that say "try again later"; every other answer from Cognito is final for this action.
const RETRYABLE_CODES: [&str; 4] =
    ["TooManyRequestsException", "InternalErrorException", "ThrottlingException", "ServiceUnavailable"];

/// Why an action failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainError {
    /// Throttled, a server error, no answer: retried with back-off.
    Retry(String),
    /// Refused for good (no such user or pool, not authorised): reported, not retried.
    Final(String),
}

/// Cognito clients per Region (a pool id starts with its Region: `eu-west-1_AbCd`).
pub struct Cognito {
    base: aws_sdk_cognitoidentityprovider::config::Builder,
    clients: HashMap<String, Client>,
}

impl Cognito {
    pub fn new(sdk: &aws_config::SdkConfig) -> Cognito {
        Cognito { base: aws_sdk_cognitoidentityprovider::config::Builder::from(sdk), clients: HashMap::new() }
    }

    fn client(&mut self, pool: &str) -> Client {
        let region = pool.split_once('_').map(|(r, _)| r.to_string()).unwrap_or_default();
        let base = &self.base;
        self.clients
            .entry(region.clone())
            .or_insert_with(|| {
                let mut b = base.clone();
                if !region.is_empty() {
                    b = b.region(aws_sdk_cognitoidentityprovider::config::Region::new(region));
                }
                Client::from_conf(b.build())
            })
            .clone()
    }

    /// Does `action` to `user` of `pool`.
    pub async fn perform(&mut self, action: ContainAction, pool: &str, user: &str) -> Result<(), ContainError> {
        let c = self.client(pool);
        let result = match action {
            ContainAction::GlobalSignOut => c
                .admin_user_global_sign_out()
                .user_pool_id(pool)
                .username(user)
                .send()
                .await
                .map(|_| ())
                .map_err(describe),
            ContainAction::Disable => {
                c.admin_disable_user().user_pool_id(pool).username(user).send().await.map(|_| ()).map_err(describe)
            }
            ContainAction::ResetPassword => c
                .admin_reset_user_password()
                .user_pool_id(pool)
                .username(user)
                .send()
                .await
                .map(|_| ())
                .map_err(describe),
        };
        result
    }
}

/// Sorts an SDK error into retry or final, with a readable reason.
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> ContainError {
    let code = e.code().unwrap_or("no error code").to_string();
    let text = format!("{} ({code})", DisplayErrorContext(&e));
    match &e {
        SdkError::ServiceError(_) if !RETRYABLE_CODES.contains(&code.as_str()) => ContainError::Final(text),
        _ => ContainError::Retry(text),
    }
}
