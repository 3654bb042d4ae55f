//! AWS's charsets and lengths for the names authwatch writes into CloudWatch, CloudFormation and Terraform.
//!
//! Everything that reaches a generated file is checked here first, and stricter than AWS where AWS allows
//! characters that only invite injection (quotes, `$`, braces, control characters): a hostile value is
//! rejected with a message, and the generators still escape whatever passes.

/// AWS: log group names are 1-512 characters of `[.\-_/#A-Za-z0-9]`.
pub fn log_group_name(s: &str) -> Result<(), String> {
    charset(s, 1, 512, |c| c.is_ascii_alphanumeric() || "._-/#".contains(c), "letters, digits and . _ - / #")
}

/// AWS: metric filter names are 1-512 characters without `:` or `*`; authwatch also refuses control
/// characters, quotes, `$`, braces and backslashes.
pub fn filter_name(s: &str) -> Result<(), String> {
    safe_text(s, 512).and_then(|_| no_chars(s, ":*", "':' or '*'"))
}

/// AWS: metric names are 1-255 characters without `:`, `*` or `$`.
pub fn metric_name(s: &str) -> Result<(), String> {
    safe_text(s, 255).and_then(|_| no_chars(s, ":*$", "':', '*' or '$'"))
}

/// CloudWatch namespaces: 1-255 characters of letters, digits and `. - _ / #` (a subset of AWS's printable
/// ASCII, without `:` `*` `$`), not starting with `AWS/`, which is reserved.
pub fn namespace(s: &str) -> Result<(), String> {
    charset(s, 1, 255, |c| c.is_ascii_alphanumeric() || "._-/# ".contains(c), "letters, digits, space and . _ - / #")?;
    if s.starts_with("AWS/") {
        return Err(format!("'{s}': namespaces starting with AWS/ are reserved for AWS"));
    }
    Ok(())
}

/// Dimension names: 1-255 characters of letters, digits and `_ - .`.
pub fn dimension_name(s: &str) -> Result<(), String> {
    charset(s, 1, 255, |c| c.is_ascii_alphanumeric() || "_-.".contains(c), "letters, digits and _ - .")
}

/// The prefix of generated resource names (filters, alarms, rules, CloudFormation logical ids):
/// 1-64 characters of letters, digits, `-` and `_`.
pub fn name_prefix(s: &str) -> Result<(), String> {
    charset(s, 1, 64, |c| c.is_ascii_alphanumeric() || "_-".contains(c), "letters, digits, - and _")
}

/// An SNS topic ARN: `arn:<partition>:sns:<region>:<12-digit account>:<topic>`, topic 1-256 characters of
/// letters, digits, `-` and `_`, optionally ending `.fifo`.
pub fn sns_topic_arn(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("'{}' is not an SNS topic ARN: {why}", crate::sanitize::for_terminal(s)));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" {
        return bad("expected arn:<partition>:sns:<region>:<account>:<topic>");
    }
    let lower_dash =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !lower_dash(parts[1]) || !parts[1].starts_with("aws") {
        return bad("unknown partition");
    }
    if !lower_dash(parts[3]) {
        return bad("region must be lowercase letters, digits and -");
    }
    if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return bad("account must be 12 digits");
    }
    let topic = parts[5].strip_suffix(".fifo").unwrap_or(parts[5]);
    if topic.is_empty()
        || topic.len() > 256
        || !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad("topic name must be 1-256 letters, digits, - and _ (optionally .fifo)");
    }
    Ok(())
}

/// An AWS region name such as `us-east-1`.
pub fn region(s: &str) -> Result<(), String> {
    charset(s, 1, 64, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-', "lowercase letters, digits and -")
}

/// A JSON selector as metric values, dimensions and Contributor Insights use them: `$.a.b` with
/// letters, digits, `_` and `-` in each segment.
pub fn json_selector(s: &str) -> Result<(), String> {
    let Some(path) = s.strip_prefix("$.") else {
        return Err(format!("'{}' is not a JSON selector ($.field)", crate::sanitize::for_terminal(s)));
    };
    let ok = path
        .split('.')
        .all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    if !ok || s.len() > 255 {
        return Err(format!(
            "'{}' is not a plain JSON selector ($.a.b, letters, digits, _ and -)",
            crate::sanitize::for_terminal(s)
        ));
    }
    Ok(())
}

/// Printable ASCII without quotes, backslashes, `$`, braces or `%`, `min..=max` characters.
pub fn printable(s: &str, min: usize, max: usize) -> Result<(), String> {
    charset(
        s,
        min,
        max,
        |c| (' '..='~').contains(&c) && !"\"'\\${}%`".contains(c),
        "printable ASCII without quotes, \\, $, {, }, % or `",
    )
}

fn safe_text(s: &str, max: usize) -> Result<(), String> {
    printable(s, 1, max)
}

fn no_chars(s: &str, forbidden: &str, what: &str) -> Result<(), String> {
    if s.chars().any(|c| forbidden.contains(c)) {
        return Err(format!("'{}' must not contain {what}", crate::sanitize::for_terminal(s)));
    }
    Ok(())
}

fn charset(s: &str, min: usize, max: usize, allowed: impl Fn(char) -> bool, what: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(format!("'{}' is {n} characters; must be {min} to {max}", crate::sanitize::for_terminal(s)));
    }
    if let Some(c) = s.chars().find(|c| !allowed(*c)) {
        return Err(format!("'{}' contains {:?}; allowed: {what}", crate::sanitize::for_terminal(s), c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_rejected() {
        for bad in ["a\"b", "x${y}", "a\nb", "a%{b}", "a\\b", ""] {
            assert!(log_group_name(bad).is_err(), "{bad:?}");
            assert!(namespace(bad).is_err(), "{bad:?}");
            assert!(metric_name(bad).is_err(), "{bad:?}");
        }
        assert!(filter_name("a:b").is_err());
        assert!(filter_name("a*b").is_err());
        assert!(namespace("AWS/Logs").is_err());
        assert!(log_group_name("/aws/cognito/userpool-logs_1#x").is_ok());
    }

    #[test]
    fn sns_topic_arns() {
        assert!(sns_topic_arn("arn:aws:sns:us-east-1:123456789012:alerts").is_ok());
        assert!(sns_topic_arn("arn:aws-us-gov:sns:us-gov-west-1:123456789012:a_b-c.fifo").is_ok());
        assert!(sns_topic_arn("arn:aws:sns:us-east-1:123456789012:a\"}").is_err());
        assert!(sns_topic_arn("arn:aws:sqs:us-east-1:123456789012:q").is_err());
        assert!(sns_topic_arn("arn:aws:sns:us-east-1:1234:q").is_err());
    }
}
