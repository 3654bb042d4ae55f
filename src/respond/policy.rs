//! The response policy: a TOML file (`--respond FILE`, `authwatch respond --policy FILE`) saying which
//! findings block their address in AWS WAF and which contain the account, read into raw fields (unknown
//! ones rejected) and validated into [`Policy`] before any AWS call, with errors naming the file and field.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::finding::{Finding, Severity};
use crate::spec::SpecSet;
use crate::time::Span;

/// AWS WAF's limit on addresses in one IP set.
pub const WAF_MAX_ADDRESSES: usize = 10_000;
/// Gather block changes this long before writing: one write for a burst of findings.
pub const DEFAULT_BATCH: &str = "3s";
/// AWS WAF accepts about one write per second per account and Region: never faster than this.
pub const DEFAULT_WRITE_INTERVAL: &str = "1s";
/// A first offence: long enough to end a brute-force run, short enough that a mistake heals by itself.
pub const DEFAULT_BLOCK_DURATION: &str = "1h";
/// Each repeat offence multiplies the block (1 h, 4 h, 16 h, ...).
pub const DEFAULT_REPEAT_FACTOR: u32 = 4;
/// Longest block, however often an address offends: addresses change hands.
pub const DEFAULT_MAX_DURATION: &str = "7d";
/// Blocks are for incidents of at least this severity (the finding's confidence grade).
pub const DEFAULT_MIN_SEVERITY: Severity = Severity::High;
/// An address with more distinct users signing in successfully in the last day is shared (an office NAT,
/// a carrier gateway): never blocked. Ten covers a small office; raise it for large ones.
pub const DEFAULT_MAX_SHARED_USERS: usize = 10;
/// IPv6 attackers rotate inside their /64: block the prefix the detectors group by.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// The rules whose findings are about one attacking address.
pub const DEFAULT_BLOCK_RULES: [&str; 3] = ["failed_login_burst_ip", "credential_stuffing", "password_spray"];
/// The rule whose findings mean an account was taken over.
pub const DEFAULT_CONTAIN_RULES: [&str; 1] = ["account_takeover"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    /// The global switch: nothing is done unless it is true.
    enabled: bool,
    audit_log: Option<PathBuf>,
    waf: Option<RawWaf>,
    block: Option<RawBlock>,
    contain: Option<RawContain>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaf {
    #[serde(default = "regional")]
    scope: String,
    ipv4_set: Option<RawSet>,
    ipv6_set: Option<RawSet>,
    max_addresses: Option<usize>,
    batch: Option<String>,
    write_interval: Option<String>,
}

fn regional() -> String {
    "REGIONAL".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    name: String,
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlock {
    rules: Option<Vec<String>>,
    min_severity: Option<String>,
    min_case_severity: Option<String>,
    duration: Option<String>,
    repeat_factor: Option<u32>,
    max_duration: Option<String>,
    ipv6_prefix: Option<u8>,
    #[serde(default)]
    allow_cidrs: Vec<String>,
    #[serde(default)]
    allow_users: Vec<String>,
    max_shared_users: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContain {
    rules: Option<Vec<String>>,
    min_severity: Option<String>,
    actions: Vec<String>,
    #[serde(default)]
    allow_users: Vec<String>,
}

/// One IP set authwatch owns (by name and id, as WAF's API addresses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSetRef {
    pub name: String,
    pub id: String,
}

/// Where blocks go.
#[derive(Debug, Clone, PartialEq)]
pub struct WafPolicy {
    /// `REGIONAL` (a user pool's web ACL is regional).
    pub scope: String,
    pub ipv4: Option<IpSetRef>,
    pub ipv6: Option<IpSetRef>,
    pub max_addresses: usize,
    pub batch: Span,
    pub write_interval: Span,
}

impl WafPolicy {
    /// The set for one address family.
    pub fn set(&self, v6: bool) -> Option<&IpSetRef> {
        if v6 {
            self.ipv6.as_ref()
        } else {
            self.ipv4.as_ref()
        }
    }
}

/// Which findings block their address, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPolicy {
    pub rules: Vec<String>,
    pub min_severity: Severity,
    /// A case (README "Cases") at this severity or above blocks every address it lists that is not shared,
    /// whatever rule found it (off when unset): a campaign's addresses, a takeover's source.
    pub min_case_severity: Option<Severity>,
    pub duration: Span,
    pub repeat_factor: u32,
    pub max_duration: Span,
    pub ipv6_prefix: u8,
    pub allow_cidrs: Vec<IpNet>,
    pub allow_users: Vec<String>,
    pub max_shared_users: usize,
}

/// An account containment action (Cognito admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainAction {
    /// `AdminUserGlobalSignOut`: revokes the user's refresh tokens.
    GlobalSignOut,
    /// `AdminDisableUser`: blocks sign-in and revokes access tokens.
    Disable,
    /// `AdminResetUserPassword`: the next sign-in must set a new password.
    ResetPassword,
}

impl ContainAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainAction::GlobalSignOut => "global_sign_out",
            ContainAction::Disable => "disable",
            ContainAction::ResetPassword => "reset_password",
        }
    }

    fn parse(s: &str) -> Option<ContainAction> {
        [ContainAction::GlobalSignOut, ContainAction::Disable, ContainAction::ResetPassword]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Which findings contain their account, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainPolicy {
    pub rules: Vec<String>,
    pub min_severity: Severity,
    pub actions: Vec<ContainAction>,
    pub allow_users: Vec<String>,
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub path: PathBuf,
    pub enabled: bool,
    /// The append-only audit log; None: `respond-audit.jsonl` in the state directory.
    pub audit_log: Option<PathBuf>,
    pub waf: Option<WafPolicy>,
    pub block: Option<BlockPolicy>,
    pub contain: Option<ContainPolicy>,
}

/// Why a policy file was refused: the file, the field and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {field}: {reason}")]
pub struct PolicyError {
    pub path: String,
    pub field: String,
    pub reason: String,
}

impl Policy {
    /// Reads and validates `path`; rule ids must be those of `specs`.
    pub fn load(path: &Path, specs: &SpecSet) -> Result<Policy, PolicyError> {
        let err = |field: &str, reason: String| PolicyError {
            path: crate::sanitize::for_terminal(&path.display().to_string()).into_owned(),
            field: field.to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("(file)", e.to_string()))?;
        Policy::parse(&text, path, specs).map_err(|(field, reason)| err(&field, reason))
    }

    /// [`Policy::load`] on the file's text; errors are (field, reason).
    pub fn parse(text: &str, path: &Path, specs: &SpecSet) -> Result<Policy, (String, String)> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            // toml names an unknown or missing field in its message; the span says where.
            let at = e.span().map(|s| line_of(text, s.start)).map(|l| format!("line {l}")).unwrap_or_default();
            (if at.is_empty() { "(syntax)".to_string() } else { at }, msg)
        })?;
        let known: Vec<&str> = specs.specs.iter().map(|s| s.id.as_str()).collect();
        let waf = raw.waf.map(validate_waf).transpose()?;
        let block = raw.block.map(|b| validate_block(b, &known)).transpose()?;
        let contain = raw.contain.map(|c| validate_contain(c, &known)).transpose()?;
        if block.is_some() && waf.as_ref().is_none_or(|w| w.ipv4.is_none() && w.ipv6.is_none()) {
            return Err(("waf".into(), "[block] needs [waf] with ipv4_set or ipv6_set: where would blocks go?".into()));
        }
        Ok(Policy { path: path.to_path_buf(), enabled: raw.enabled, audit_log: raw.audit_log, waf, block, contain })
    }

    /// Whether a finding's rule and severity call for a block.
    pub fn blocks(&self, f: &Finding) -> bool {
        self.block.as_ref().is_some_and(|b| b.rules.contains(&f.rule) && f.severity >= b.min_severity)
    }

    /// The containment actions a finding calls for (none when its user is allow-listed).
    pub fn contains(&self, f: &Finding) -> &[ContainAction] {
        let Some(c) = &self.contain else { return &[] };
        let allowed = [f.user.as_deref(), f.user_sub.as_deref()]
            .into_iter()
            .flatten()
            .any(|u| c.allow_users.iter().any(|a| a == u));
        if allowed || !c.rules.contains(&f.rule) || f.severity < c.min_severity {
            return &[];
        }
        &c.actions
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count() + 1
}

type Invalid = (String, String);

fn span(field: &str, value: Option<String>, default: &str) -> Result<Span, Invalid> {
    let s = value.unwrap_or_else(|| default.to_string());
    match Span::parse(&s) {
        Ok(d) if d.0 > 0 => Ok(d),
        Ok(_) => Err((field.into(), "must be longer than 0".into())),
        Err(e) => Err((field.into(), e)),
    }
}

fn severity(field: &str, value: Option<String>) -> Result<Severity, Invalid> {
    match value {
        None => Ok(DEFAULT_MIN_SEVERITY),
        Some(s) => Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| (field.into(), format!("'{s}' is not low, medium, high or critical"))),
    }
}

fn rules(field: &str, value: Option<Vec<String>>, default: &[&str], known: &[&str]) -> Result<Vec<String>, Invalid> {
    let rules = value.unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
    for r in &rules {
        if !known.contains(&r.as_str()) {
            return Err((field.into(), format!("no rule '{r}' among the detector specs ({})", known.join(", "))));
        }
    }
    Ok(rules)
}

fn validate_waf(w: RawWaf) -> Result<WafPolicy, Invalid> {
    if w.scope != "REGIONAL" && w.scope != "CLOUDFRONT" {
        return Err(("waf.scope".into(), format!("'{}' is not REGIONAL or CLOUDFRONT", w.scope)));
    }
    let set = |field: &str, s: Option<RawSet>| -> Result<Option<IpSetRef>, Invalid> {
        match s {
            Some(s) if s.name.is_empty() || s.id.is_empty() => Err((field.into(), "needs a name and an id".into())),
            Some(s) => Ok(Some(IpSetRef { name: s.name, id: s.id })),
            None => Ok(None),
        }
    };
    let max_addresses = w.max_addresses.unwrap_or(WAF_MAX_ADDRESSES);
    if max_addresses == 0 || max_addresses > WAF_MAX_ADDRESSES {
        return Err((
            "waf.max_addresses".into(),
            format!("must be between 1 and {WAF_MAX_ADDRESSES} (AWS WAF's limit)"),
        ));
    }
    Ok(WafPolicy {
        scope: w.scope,
        ipv4: set("waf.ipv4_set", w.ipv4_set)?,
        ipv6: set("waf.ipv6_set", w.ipv6_set)?,
        max_addresses,
        batch: span("waf.batch", w.batch, DEFAULT_BATCH)?,
        write_interval: span("waf.write_interval", w.write_interval, DEFAULT_WRITE_INTERVAL)?,
    })
}

fn validate_block(b: RawBlock, known: &[&str]) -> Result<BlockPolicy, Invalid> {
    let duration = span("block.duration", b.duration, DEFAULT_BLOCK_DURATION)?;
    let max_duration = span("block.max_duration", b.max_duration, DEFAULT_MAX_DURATION)?;
    if max_duration < duration {
        return Err(("block.max_duration".into(), "is shorter than block.duration".into()));
    }
    let ipv6_prefix = b.ipv6_prefix.unwrap_or(DEFAULT_IPV6_PREFIX);
    if !(1..=128).contains(&ipv6_prefix) {
        return Err(("block.ipv6_prefix".into(), format!("{ipv6_prefix} is not between 1 and 128")));
    }
    let mut allow_cidrs = Vec::new();
    for c in &b.allow_cidrs {
        let net = c
            .parse::<IpNet>()
            .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| ("block.allow_cidrs".to_string(), format!("'{c}' is not an address or CIDR block")))?;
        allow_cidrs.push(net);
    }
    let repeat_factor = b.repeat_factor.unwrap_or(DEFAULT_REPEAT_FACTOR);
    if repeat_factor == 0 {
        return Err(("block.repeat_factor".into(), "must be at least 1 (1: no escalation)".into()));
    }
    Ok(BlockPolicy {
        rules: rules("block.rules", b.rules, &DEFAULT_BLOCK_RULES, known)?,
        min_severity: severity("block.min_severity", b.min_severity)?,
        min_case_severity: match b.min_case_severity {
            Some(s) => Some(severity("block.min_case_severity", Some(s))?),
            None => None,
        },
        duration,
        repeat_factor,
        max_duration,
        ipv6_prefix,
        allow_cidrs,
        allow_users: b.allow_users,
        max_shared_users: b.max_shared_users.unwrap_or(DEFAULT_MAX_SHARED_USERS),
    })
}

fn validate_contain(c: RawContain, known: &[&str]) -> Result<ContainPolicy, Invalid> {
    let mut actions = Vec::new();
    for a in &c.actions {
        let action = ContainAction::parse(a).ok_or_else(|| {
            ("contain.actions".to_string(), format!("'{a}' is not global_sign_out, disable or reset_password"))
        })?;
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    if actions.is_empty() {
        return Err(("contain.actions".into(), "is empty: name at least one action, or leave [contain] out".into()));
    }
    Ok(ContainPolicy {
        rules: rules("contain.rules", c.rules, &DEFAULT_CONTAIN_RULES, known)?,
        min_severity: severity("contain.min_severity", c.min_severity)?,
        actions,
        allow_users: c.allow_users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
enabled = true
[waf]
ipv4_set = { name = "authwatch-v4", id = "abc" }
[block]
rules = ["failed_login_burst_ip"]
duration = "30m"
allow_cidrs = ["10.0.0.0/8", "192.0.2.1"]
[contain]
actions = ["global_sign_out"]
"#;

    fn parse(text: &str) -> Result<Policy, (String, String)> {
        Policy::parse(text, Path::new("respond.toml"), &SpecSet::builtin())
    }

    #[test]
    fn a_valid_policy_gets_its_defaults() {
        let p = parse(GOOD).unwrap();
        assert!(p.enabled);
        let b = p.block.unwrap();
        assert_eq!((b.duration, b.max_duration, b.repeat_factor), (Span::mins(30), Span::hours(7 * 24), 4));
        assert_eq!(b.allow_cidrs.len(), 2);
        assert_eq!(b.min_severity, Severity::High);
        let w = p.waf.unwrap();
        assert_eq!((w.max_addresses, w.batch, w.write_interval), (10_000, Span::secs(3), Span::secs(1)));
        assert_eq!(p.contain.unwrap().rules, ["account_takeover"]);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("30m", "soon"), "block.duration"),
            (GOOD.replace("failed_login_burst_ip", "no_such_rule"), "block.rules"),
            (GOOD.replace("global_sign_out", "delete_user"), "contain.actions"),
            (GOOD.replace("10.0.0.0/8", "10.0.0.0/99"), "block.allow_cidrs"),
            (GOOD.replace("[waf]", "[waf]\nmax_addresses = 20000"), "waf.max_addresses"),
        ];
        for (text, field) in cases {
            let (f, reason) = parse(&text).unwrap_err();
            assert_eq!(f, field, "{reason}");
        }
        // An unknown field is refused with its line.
        let (f, reason) = parse(&GOOD.replace("[block]", "[block]\nduraton = \"1h\"")).unwrap_err();
        assert!(f.starts_with("line ") && reason.contains("duraton"), "{f}: {reason}");
        // Blocks need a set to go to.
        let (f, _) = parse(&GOOD.replace("ipv4_set = { name = \"authwatch-v4\", id = \"abc\" }", "")).unwrap_err();
        assert_eq!(f, "waf");
    }

    #[test]
    fn the_switch_is_required_and_the_load_error_names_the_file() {
        let (f, reason) = parse("[contain]\nactions = [\"disable\"]\n").unwrap_err();
        assert!(reason.contains("enabled"), "{f}: {reason}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, GOOD.replace("30m", "x")).unwrap();
        let e = Policy::load(&path, &SpecSet::builtin()).unwrap_err().to_string();
        assert!(e.contains("p.toml: block.duration:"), "{e}");
    }
}
