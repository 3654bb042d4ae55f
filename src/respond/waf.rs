//! The AWS WAF calls: read an IP set with its lock token (`GetIPSet`) and write its whole address list
//! back with that token (`UpdateIPSet`). A write that another writer overtook comes back as
//! [`WriteError::Conflict`] (`WAFOptimisticLockException`): the caller reads again and re-plans.

use aws_sdk_wafv2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_wafv2::types::Scope;
use aws_sdk_wafv2::Client;

use super::policy::IpSetRef;

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// Someone changed the set since it was read: read again.
    Conflict,
    Failed(String),
}

/// The IP sets authwatch owns, and the client that reaches them.
#[derive(Clone)]
pub struct WafSets {
    pub client: Client,
    pub scope: Scope,
    pub ipv4: Option<IpSetRef>,
    pub ipv6: Option<IpSetRef>,
}

impl WafSets {
    pub fn new(client: Client, scope: &str, ipv4: Option<IpSetRef>, ipv6: Option<IpSetRef>) -> WafSets {
        let scope = if scope == "CLOUDFRONT" { Scope::Cloudfront } else { Scope::Regional };
        WafSets { client, scope, ipv4, ipv6 }
    }

    /// The set for one address family.
    pub fn set(&self, v6: bool) -> Option<&IpSetRef> {
        if v6 {
            self.ipv6.as_ref()
        } else {
            self.ipv4.as_ref()
        }
    }

    /// The set's addresses and the lock token a write must carry.
    pub async fn read(&self, set: &IpSetRef) -> Result<(Vec<String>, String), String> {
        let out = self.client.get_ip_set().name(&set.name).id(&set.id).scope(self.scope.clone()).send().await.map_err(
            |e| format!("GetIPSet {}: {} ({})", set.name, DisplayErrorContext(&e), e.code().unwrap_or("no error code")),
        )?;
        let addresses = out.ip_set().map(|s| s.addresses().to_vec()).unwrap_or_default();
        let token = out.lock_token().ok_or_else(|| format!("GetIPSet {}: no lock token in the answer", set.name))?;
        Ok((addresses, token.to_string()))
    }

    /// Replaces the set's addresses, if nobody wrote since the read that gave `lock_token`.
    pub async fn write(&self, set: &IpSetRef, addresses: Vec<String>, lock_token: &str) -> Result<(), WriteError> {
        let result = self
            .client
            .update_ip_set()
            .name(&set.name)
            .id(&set.id)
            .scope(self.scope.clone())
            .set_addresses(Some(addresses))
            .lock_token(lock_token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_waf_optimistic_lock_exception()) => {
                Err(WriteError::Conflict)
            }
            Err(e) => Err(WriteError::Failed(format!(
                "UpdateIPSet {}: {} ({})",
                set.name,
                DisplayErrorContext(&e),
                e.code().unwrap_or("no error code")
            ))),
        }
    }
}
