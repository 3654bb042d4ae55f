//! The metric filter generator: CloudWatch metric filters, alarms and Contributor Insights rules made from
//! the `[cloudwatch]` section of each detector spec (`crate::spec::cloudwatch`), written as AWS CLI input,
//! CloudFormation, Terraform or rule bodies (`generate`), or applied through the AWS SDK (`apply`).
//!
//! It reads the specs and nothing reads it back: what a spec says, and the AWS limits it is checked
//! against, live with the spec. Not to be confused with `source::cloudwatch`, which reads CloudWatch Logs.

pub mod apply;
pub mod generate;
