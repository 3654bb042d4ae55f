//! The blocking side as infrastructure code (`authwatch filters --waf-user-pool-arn ARN`): two IP sets
//! (IPv4, IPv6) that authwatch fills, a web ACL whose first rules block them, and its association with
//! the user pool. CloudFormation resources (merged into the filters' template) and Terraform.
//!
//! authwatch owns the sets' addresses, the template does not: Terraform is told to ignore them
//! (`ignore_changes`); a CloudFormation stack update puts the template's empty list back, so run
//! `authwatch respond sync` after one (README, "Active response").

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::metric_filters::generate::hcl_string;

/// The sets' and the web ACL's names: `{prefix}-block-v4`, `{prefix}-block-v6`, `{prefix}-web-acl`.
pub fn names(prefix: &str) -> (String, String, String) {
    (format!("{prefix}-block-v4"), format!("{prefix}-block-v6"), format!("{prefix}-web-acl"))
}

/// Checks that `arn` names a Cognito user pool.
pub fn check_pool_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "cognito-idp"
        && parts[5].starts_with("userpool/")
        && arn.chars().all(|c| c.is_ascii_alphanumeric() || ":/-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a user pool ARN (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID)",
            crate::sanitize::for_terminal(arn)
        ))
    }
}

fn visibility(metric: &str) -> Value {
    json!({ "SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true, "MetricName": metric })
}

/// The CloudFormation resources and outputs, to merge into a template.
pub fn cloudformation(
    pool_arn: &str,
    prefix: &str,
) -> (serde_json::Map<String, Value>, serde_json::Map<String, Value>) {
    let (v4, v6, acl) = names(prefix);
    let set = |name: &str, version: &str| {
        json!({
            "Type": "AWS::WAFv2::IPSet",
            "Properties": {
                "Name": name,
                "Scope": "REGIONAL",
                "IPAddressVersion": version,
                "Addresses": [],
                "Description": "Addresses blocked by authwatch, which adds and removes them. Do not edit by hand.",
            },
        })
    };
    let rule = |name: &str, priority: u32, set_id: &str| {
        json!({
            "Name": name,
            "Priority": priority,
            "Action": { "Block": {} },
            "Statement": { "IPSetReferenceStatement": { "Arn": { "Fn::GetAtt": [set_id, "Arn"] } } },
            "VisibilityConfig": visibility(name),
        })
    };
    let mut resources = serde_json::Map::new();
    resources.insert("AuthwatchBlockIPv4".into(), set(&v4, "IPV4"));
    resources.insert("AuthwatchBlockIPv6".into(), set(&v6, "IPV6"));
    resources.insert(
        "AuthwatchWebACL".into(),
        json!({
            "Type": "AWS::WAFv2::WebACL",
            "Properties": {
                "Name": acl,
                "Scope": "REGIONAL",
                "DefaultAction": { "Allow": {} },
                "VisibilityConfig": visibility(&acl),
                "Rules": [rule(&v4, 0, "AuthwatchBlockIPv4"), rule(&v6, 1, "AuthwatchBlockIPv6")],
            },
        }),
    );
    resources.insert(
        "AuthwatchWebACLAssociation".into(),
        json!({
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Properties": { "ResourceArn": pool_arn, "WebACLArn": { "Fn::GetAtt": ["AuthwatchWebACL", "Arn"] } },
        }),
    );
    let mut outputs = serde_json::Map::new();
    for (key, res, what) in [
        ("AuthwatchBlockIPv4Id", "AuthwatchBlockIPv4", "waf.ipv4_set id for the response policy"),
        ("AuthwatchBlockIPv6Id", "AuthwatchBlockIPv6", "waf.ipv6_set id for the response policy"),
    ] {
        outputs.insert(key.into(), json!({ "Description": what, "Value": { "Fn::GetAtt": [res, "Id"] } }));
    }
    (resources, outputs)
}

/// Adds the WAF resources to a CloudFormation template (the filters' one).
pub fn merge_cloudformation(template: &mut Value, pool_arn: &str, prefix: &str) {
    let (resources, outputs) = cloudformation(pool_arn, prefix);
    if let Some(r) = template.get_mut("Resources").and_then(Value::as_object_mut) {
        r.extend(resources);
    }
    template["Outputs"] = Value::Object(outputs);
}

/// The Terraform resources.
pub fn terraform(pool_arn: &str, prefix: &str) -> String {
    let (v4, v6, acl) = names(prefix);
    let mut out = String::from(
        "\n# The blocking side of authwatch's active response: IP sets it fills, a web ACL blocking them, and\n# its association with the user pool. authwatch owns the sets' addresses: Terraform ignores them.\n",
    );
    for (res, name, version) in [("authwatch_block_v4", &v4, "IPV4"), ("authwatch_block_v6", &v6, "IPV6")] {
        let _ = write!(
            out,
            "\nresource \"aws_wafv2_ip_set\" \"{res}\" {{\n  name               = {}\n  scope              = \"REGIONAL\"\n  ip_address_version = \"{version}\"\n  addresses          = []\n  description        = \"Addresses blocked by authwatch, which adds and removes them.\"\n\n  lifecycle {{\n    ignore_changes = [addresses]\n  }}\n}}\n",
            hcl_string(name),
        );
    }
    let rule = |name: &str, priority: u32, res: &str| {
        format!(
            "\n  rule {{\n    name     = {n}\n    priority = {priority}\n\n    action {{\n      block {{}}\n    }}\n\n    statement {{\n      ip_set_reference_statement {{\n        arn = aws_wafv2_ip_set.{res}.arn\n      }}\n    }}\n\n    visibility_config {{\n      cloudwatch_metrics_enabled = true\n      metric_name                = {n}\n      sampled_requests_enabled   = true\n    }}\n  }}\n",
            n = hcl_string(name)
        )
    };
    let _ = write!(
        out,
        "\nresource \"aws_wafv2_web_acl\" \"authwatch\" {{\n  name  = {a}\n  scope = \"REGIONAL\"\n\n  default_action {{\n    allow {{}}\n  }}\n{}{}\n  visibility_config {{\n    cloudwatch_metrics_enabled = true\n    metric_name                = {a}\n    sampled_requests_enabled   = true\n  }}\n}}\n",
        rule(&v4, 0, "authwatch_block_v4"),
        rule(&v6, 1, "authwatch_block_v6"),
        a = hcl_string(&acl),
    );
    let _ = write!(
        out,
        "\nresource \"aws_wafv2_web_acl_association\" \"authwatch\" {{\n  resource_arn = {}\n  web_acl_arn  = aws_wafv2_web_acl.authwatch.arn\n}}\n",
        hcl_string(pool_arn)
    );
    for (name, res) in
        [("authwatch_block_v4_id", "authwatch_block_v4"), ("authwatch_block_v6_id", "authwatch_block_v6")]
    {
        let _ = write!(out, "\noutput \"{name}\" {{\n  value = aws_wafv2_ip_set.{res}.id\n}}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf";

    #[test]
    fn pool_arns_are_checked() {
        assert!(check_pool_arn(ARN).is_ok());
        assert!(check_pool_arn("arn:aws:sns:us-east-1:1:topic").is_err());
        assert!(check_pool_arn("arn:aws:cognito-idp:us-east-1:1:userpool/x\"}").is_err());
    }

    #[test]
    fn the_web_acl_blocks_both_sets_and_is_associated_with_the_pool() {
        let mut t = json!({ "Resources": {} });
        merge_cloudformation(&mut t, ARN, "authwatch");
        let r = &t["Resources"];
        assert_eq!(r["AuthwatchWebACLAssociation"]["Properties"]["ResourceArn"], ARN);
        let rules = r["AuthwatchWebACL"]["Properties"]["Rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|x| x["Action"]["Block"].is_object()));
        assert_eq!(r["AuthwatchBlockIPv6"]["Properties"]["IPAddressVersion"], "IPV6");
        let tf = terraform(ARN, "authwatch");
        assert_eq!(tf.matches("resource \"aws_wafv2_ip_set\"").count(), 2);
        assert!(tf.contains("ignore_changes = [addresses]"));
        assert!(tf.contains(&format!("resource_arn = \"{ARN}\"")));
    }
}
