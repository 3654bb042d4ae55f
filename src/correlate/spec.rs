//! The correlation spec: which entities link findings into cases, how long a case waits, when it pages
//! again. One TOML file like the detectors' (`filters/cases/correlation.toml` is built in; `--correlation
//! FILE` replaces it), validated before any input is read.

use std::path::Path;

use serde::Deserialize;

use crate::time::Span;

/// The built-in spec, documented line by line in the file itself.
pub const BUILTIN: &str = include_str!("../../filters/cases/correlation.toml");
/// Where the built-in spec says it came from in error messages.
pub const BUILTIN_SOURCE: &str = "builtin:cases/correlation.toml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSpec {
    /// Off: findings carry no case and the monitor notifies per finding, as before cases existed.
    pub enabled: bool,
    /// How long after a case's last activity a finding may still join it.
    pub gap: Span,
    pub link: Links,
    pub shared_address: SharedAddressSpec,
    pub notify: NotifySpec,
    pub severity: SeveritySpec,
    pub limits: LimitsSpec,
}

/// Which entities link findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Links {
    pub users: bool,
    pub addresses: bool,
    pub campaign: bool,
    pub takeovers: bool,
    pub pool_wide: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedAddressSpec {
    pub min_users: u32,
    pub success_share: f64,
    pub window: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    pub renotify_after: Span,
    /// A case opened by one of `hold_rules` is announced this long after (event time), unless a finding
    /// of another rule joins it first (then at once): an attack's own finding often follows its travel
    /// or risk alerts by minutes, and then both are one page.
    pub hold: Span,
    pub hold_rules: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeveritySpec {
    pub spread_keys: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_open_cases: usize,
    pub max_entities_per_case: usize,
}

/// Users one shared-address entry tells apart: enough to judge `min_users` and the share (see
/// [`super::shared`]); the largest `min_users` accepted.
pub const MAX_MIN_USERS: u32 = 32;

impl CorrelationSpec {
    pub fn builtin() -> CorrelationSpec {
        // The test suite parses the file; a broken built-in spec is a build bug.
        CorrelationSpec::parse(BUILTIN, BUILTIN_SOURCE).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses and validates; the error names `source` and what is wrong.
    pub fn parse(text: &str, source: &str) -> Result<CorrelationSpec, String> {
        let spec: CorrelationSpec =
            toml::from_str(text).map_err(|e| format!("{source}: {}", e.to_string().trim_end()))?;
        spec.validate().map_err(|e| format!("{source}: {e}"))?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<CorrelationSpec, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the correlation spec {}: {e}", path.display()))?;
        CorrelationSpec::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<(), String> {
        if self.gap <= Span(0) || self.gap > Span::hours(24) {
            return Err(format!("gap = \"{}\": use more than 0 and at most 1d", self.gap));
        }
        let s = &self.shared_address;
        if s.min_users < 2 || s.min_users > MAX_MIN_USERS {
            return Err(format!("shared_address.min_users = {}: use 2 to {MAX_MIN_USERS}", s.min_users));
        }
        if !(s.success_share > 0.0 && s.success_share <= 1.0) {
            return Err(format!("shared_address.success_share = {}: use more than 0 and at most 1", s.success_share));
        }
        if s.window < Span::hours(1) || s.window > Span::hours(24 * 7) {
            return Err(format!("shared_address.window = \"{}\": use 1h to 7d", s.window));
        }
        if self.notify.renotify_after < Span(0) || self.notify.renotify_after > Span::hours(24) {
            return Err(format!("notify.renotify_after = \"{}\": use 0 to 1d", self.notify.renotify_after));
        }
        if self.notify.hold < Span(0) || self.notify.hold > Span::hours(1) {
            return Err(format!("notify.hold = \"{}\": use 0 to 1h", self.notify.hold));
        }
        if self.severity.spread_keys < 2 {
            return Err(format!("severity.spread_keys = {}: use at least 2", self.severity.spread_keys));
        }
        if !(1..=1_000_000).contains(&self.limits.max_open_cases) {
            return Err(format!("limits.max_open_cases = {}: use 1 to 1000000", self.limits.max_open_cases));
        }
        if !(10..=100_000).contains(&self.limits.max_entities_per_case) {
            return Err(format!(
                "limits.max_entities_per_case = {}: use 10 to 100000",
                self.limits.max_entities_per_case
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_spec_parses_with_the_documented_defaults() {
        let s = CorrelationSpec::builtin();
        assert!(s.enabled);
        assert_eq!(s.gap, Span::hours(1));
        assert_eq!(s.shared_address.min_users, 5);
        assert!(s.link.users && s.link.addresses && s.link.campaign && s.link.takeovers && s.link.pool_wide);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let bad = BUILTIN.replace("gap = \"1h\"", "gap = \"2d\"");
        let e = CorrelationSpec::parse(&bad, "x.toml").unwrap_err();
        assert!(e.starts_with("x.toml: gap = \"2d\""), "{e}");
        let bad = BUILTIN.replace("min_users = 5", "min_users = 1");
        assert!(CorrelationSpec::parse(&bad, "x.toml").unwrap_err().contains("shared_address.min_users"));
        let bad = BUILTIN.replace("users = true", "users = true\nbogus = 1");
        let e = CorrelationSpec::parse(&bad, "x.toml").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
