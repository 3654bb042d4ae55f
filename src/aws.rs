//! AWS access shared by every command that calls AWS (`monitor`, `filters --apply`): the SDK configuration
//! from the standard credential chain plus the operator's overrides, with bounded timeouts.

use std::time::Duration;

/// TCP (and TLS) connect: an AWS endpoint answers in milliseconds; beyond this the address is unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Every call with all the SDK's own retries, as a multiple of one attempt: the SDK retries 3 times, so a
/// call that keeps stalling gives up and is retried by the caller's back-off (which logs and reports it).
pub const OPERATION_ATTEMPTS: u32 = 3;
/// One attempt of a request where the command has no `--request-timeout` (`filters --apply`): the
/// monitor's default, long enough for the largest page any call here reads.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach AWS: the standard chain (environment, profile, instance role), with optional overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    /// Every service at this URL (VPC endpoints, the test emulator).
    pub endpoint_url: Option<&'a str>,
}

/// The SDK timeouts. Without them a request whose connection stays open but never answers (a stalled
/// proxy, a half-dead NAT entry) waits forever: the log group is never read again, or the publisher stops
/// delivering, and shutdown hangs on it. With them the call fails as a timeout, a transient error, and is
/// retried with back-off.
pub fn timeouts(request_timeout: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
        // Silence while reading an answer: as long as one attempt, so a slow big page is not cut short.
        .read_timeout(request_timeout)
        .operation_attempt_timeout(request_timeout)
        .operation_timeout(request_timeout * OPERATION_ATTEMPTS + Duration::from_secs(5))
        .build()
}

/// Loads the SDK configuration: the standard chain, `endpoint`'s overrides and [`timeouts`].
pub async fn sdk_config(endpoint: &Endpoint<'_>, request_timeout: Duration) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts(request_timeout));
    if let Some(r) = endpoint.region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(p) = endpoint.profile {
        loader = loader.profile_name(p);
    }
    if let Some(e) = endpoint.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_request_timeout_also_bounds_the_connect_and_the_whole_call() {
        let t = timeouts(Duration::from_secs(2));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.read_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(11)));
        let t = timeouts(DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
    }
}
