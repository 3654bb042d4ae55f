//! Detector specs: the files in `filters/`, parsed (unknown keys rejected) and validated into [`Spec`].
//!
//! Detections are data. One TOML file per rule holds its window, threshold, key, severity, cooldown and
//! which events count; the runtime detector (`detect/`), the README table (`authwatch detectors`) and the
//! CloudWatch side are all fed from it. The repository's `filters/` is built into the binary
//! (see `build.rs`); `--filters DIR` replaces it.

pub mod cloudwatch;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use self::cloudwatch::{self as cw, CloudWatchSpec};
pub use crate::detect::registry::{DetectorKind, Params};
use crate::detect::window::MAX_WINDOW_ENTRIES;
use crate::event::{EventKind, Outcome};
use crate::finding::Severity;
use crate::time::Span;

/// Default cap on tracked keys per rule: holds memory flat under a flood of random users or addresses
/// (about 200 bytes a key: ~40 MB per rule at the cap).
pub const DEFAULT_MAX_KEYS: usize = 200_000;
/// Default cap on window entries kept for one key: a single attacker address sending 100k attempts in a
/// window is summarised by counters beyond this, not stored event by event.
pub const DEFAULT_MAX_EVENTS_PER_KEY: usize = 4_096;

/// The rules built into the binary: every file of the repository's `filters/` at build time.
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_filters.rs"));

/// What a rule groups events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    User,
    Ip,
    /// The user pool (and, for a replica's events, its Region: [`crate::event::SignInEvent::pool_key`]):
    /// pool-wide rules, whose findings name no user and no address.
    Pool,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::User => "user",
            KeyKind::Ip => "ip",
            KeyKind::Pool => "pool",
        }
    }
}

/// Addresses and users a rule ignores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    pub cidrs: Vec<IpNet>,
    pub users: Vec<String>,
}

impl AllowList {
    pub fn allows_ip(&self, ip: &std::net::IpAddr) -> bool {
        self.cidrs.iter().any(|n| n.contains(ip))
    }

    pub fn allows_user(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == user)
    }

    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty() && self.users.is_empty()
    }

    pub fn extend(&mut self, other: &AllowList) {
        self.cidrs.extend(other.cidrs.iter().cloned());
        self.users.extend(other.users.iter().cloned());
    }

    /// Parses CIDRs (a bare address is a /32 or /128).
    pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<IpNet>() {
            return Ok(n.trunc());
        }
        s.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| format!("'{s}' is not an IP address or CIDR block"))
    }
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The rule id, equal to the file stem: `failed_login_burst_user`.
    pub id: String,
    pub detector: DetectorKind,
    pub description: String,
    pub key: KeyKind,
    pub window: Span,
    /// How many counted events (or, for `account_takeover`, failures before a success) fire the rule.
    pub threshold: u64,
    pub severity: Severity,
    /// `(count, severity)`, ascending: the incident escalates when its count reaches each step.
    pub escalation: Vec<(u64, Severity)>,
    /// Quiet time after an incident's last event before it closes; activity within it extends the same
    /// incident instead of opening (and notifying) a new one. Never shorter than the window.
    pub cooldown: Span,
    pub max_keys: usize,
    pub max_events_per_key: usize,
    pub enabled: bool,
    /// Event kinds the rule observes.
    pub kinds: Vec<EventKind>,
    /// Outcomes that count toward the threshold (others are observed as context, e.g. for ratios).
    pub outcomes: Vec<Outcome>,
    /// The `[params]` table, typed by the detector (its file in `detect/` says what they are).
    pub params: Params,
    pub allow: AllowList,
    /// The CloudWatch metric filter, alarm and Contributor Insights rule (`[cloudwatch]`); `None` for a
    /// detector with no aggregate form, for which nothing is generated.
    pub cloudwatch: Option<CloudWatchSpec>,
    /// Where the spec came from: a path, or `builtin:NAME.toml`.
    pub source: String,
}

impl Spec {
    pub fn observes(&self, kind: EventKind) -> bool {
        self.kinds.contains(&kind)
    }

    pub fn counts(&self, outcome: Outcome) -> bool {
        self.outcomes.contains(&outcome)
    }

    /// Severity for an incident of `count` counted events.
    pub fn severity_at(&self, count: u64) -> Severity {
        self.escalation
            .iter()
            .filter(|(at, _)| count >= *at)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(self.severity)
            .max(self.severity)
    }
}

/// A spec file that failed to parse or validate: names the file and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub source: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message.trim_end())
    }
}

impl std::error::Error for SpecError {}

/// All errors found while loading a set of specs (every file is checked, not just the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// The rules in force, ordered by id.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecSet {
    pub specs: Vec<Spec>,
}

impl SpecSet {
    /// The repository's `filters/`, built into the binary.
    pub fn builtin() -> SpecSet {
        let named: Vec<(String, &str)> = BUILTIN.iter().map(|(n, t)| (format!("builtin:{n}"), *t)).collect();
        let files: Vec<(&str, &str)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        // The test suite validates every file of `filters/`; a broken built-in spec is a build bug.
        parse_set(&files).unwrap_or_else(|e| panic!("built-in detector specs are invalid: {e}"))
    }

    /// Every `*.toml` file in `dir` (not recursive). Other files are ignored; no spec at all is an error.
    pub fn load_dir(dir: &Path) -> Result<SpecSet, SpecErrors> {
        let err = |message: String| SpecErrors(vec![SpecError { source: dir.display().to_string(), message }]);
        let entries = std::fs::read_dir(dir).map_err(|e| err(format!("cannot read the filters directory: {e}")))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(err("no detector specs (*.toml) in this directory".into()));
        }
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            let source = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => texts.push((source, text)),
                Err(e) => errors.push(SpecError { source, message: format!("cannot read: {e}") }),
            }
        }
        let files: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        match parse_set(&files) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(SpecErrors(errors)),
            Err(SpecErrors(more)) => {
                errors.extend(more);
                Err(SpecErrors(errors))
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Spec> {
        self.specs.iter().find(|s| s.id == id)
    }

    pub fn enabled(&self) -> impl Iterator<Item = &Spec> {
        self.specs.iter().filter(|s| s.enabled)
    }

    /// The README's detector table (Markdown), generated from the specs so the two cannot drift.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from(
            "| rule | detector | key | window | threshold | severity (escalation) | cooldown | counts | CloudWatch alarm |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for s in &self.specs {
            let mut esc: Vec<String> = s.escalation.iter().map(|(n, sev)| format!("{sev} at {n}")).collect();
            esc.extend(s.params.describe_severities());
            let sev =
                if esc.is_empty() { s.severity.to_string() } else { format!("{} ({})", s.severity, esc.join(", ")) };
            let kinds: Vec<&str> = s.kinds.iter().map(|k| k.as_str()).collect();
            let outcomes: Vec<&str> = s.outcomes.iter().map(|o| o.as_str()).collect();
            out.push_str(&format!(
                "| `{}`{} | `{}` | {} | {} | {} | {} | {} | {} of {} | {} |\n",
                s.id,
                if s.enabled { "" } else { " (disabled)" },
                s.detector.id(),
                s.key.as_str(),
                s.window,
                s.threshold,
                sev,
                s.cooldown,
                outcomes.join("/"),
                kinds.join("/"),
                cloudwatch_cell(s),
            ));
        }
        out
    }
}

/// The table's CloudWatch column: the metric and the alarm condition, or why there is none.
fn cloudwatch_cell(s: &Spec) -> String {
    let Some(cw) = &s.cloudwatch else {
        return "none (no aggregate form)".into();
    };
    let formats: Vec<&str> = cw.patterns.keys().map(|f| f.as_str()).collect();
    format!("{}; {}", cw.alarm.describe(&cw.metric_name), formats.join(", "))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    id: String,
    detector: String,
    description: String,
    key: KeyKind,
    window: Span,
    threshold: u64,
    severity: Severity,
    #[serde(default)]
    escalation: Vec<RawEscalation>,
    cooldown: Option<Span>,
    max_keys: Option<usize>,
    max_events_per_key: Option<usize>,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(rename = "match")]
    matcher: RawMatch,
    #[serde(default)]
    params: toml::Table,
    #[serde(default)]
    allow: RawAllow,
    cloudwatch: Option<cw::RawSection>,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    count: u64,
    severity: Severity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    kinds: Vec<String>,
    outcomes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    cidrs: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
}

/// Parses and validates one spec. `stem` is the file name without `.toml`, which must equal `id`.
pub fn parse_spec(text: &str, source: &str, stem: &str) -> Result<Spec, SpecError> {
    let fail = |message: String| SpecError { source: source.to_string(), message };
    let raw: RawSpec = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
    let mut spec = validate(raw, stem).map_err(fail)?;
    spec.source = source.to_string();
    Ok(spec)
}

fn validate(raw: RawSpec, stem: &str) -> Result<Spec, String> {
    if raw.id != stem {
        return Err(format!("id '{}' must equal the file name '{stem}.toml'", raw.id));
    }
    if raw.id.is_empty() || !raw.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(format!("id '{}' must be lowercase letters, digits and '_'", raw.id));
    }
    let detector = DetectorKind::parse(&raw.detector).ok_or_else(|| {
        let known: Vec<&str> = DetectorKind::all().map(|d| d.id()).collect();
        format!("unknown detector '{}' (known: {})", raw.detector, known.join(", "))
    })?;
    if raw.window.millis() <= 0 {
        return Err("window must be longer than 0".into());
    }
    if raw.window > Span::parse("7d").unwrap_or(Span(0)) {
        return Err(format!("window {} is longer than the 7d maximum", raw.window));
    }
    if raw.threshold == 0 {
        return Err("threshold must be at least 1".into());
    }
    let mut escalation = Vec::new();
    let mut last = raw.threshold;
    for step in &raw.escalation {
        if step.count <= last {
            return Err(format!(
                "escalation counts must rise above the threshold and each other: {} after {last}",
                step.count
            ));
        }
        if step.severity <= raw.severity {
            return Err(format!("escalation to '{}' is not above the base severity '{}'", step.severity, raw.severity));
        }
        last = step.count;
        escalation.push((step.count, step.severity));
    }
    let cooldown = raw.cooldown.unwrap_or(raw.window);
    if cooldown < raw.window {
        return Err(format!("cooldown {cooldown} is shorter than the window {}", raw.window));
    }
    let max_keys = raw.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
    if max_keys < 16 {
        return Err("max_keys must be at least 16".into());
    }
    let max_events_per_key = raw.max_events_per_key.unwrap_or(DEFAULT_MAX_EVENTS_PER_KEY);
    if !(16..=MAX_WINDOW_ENTRIES).contains(&max_events_per_key) {
        return Err(format!("max_events_per_key must be between 16 and {MAX_WINDOW_ENTRIES}"));
    }
    if raw.threshold > max_events_per_key as u64 {
        return Err(format!(
            "threshold {} is above max_events_per_key {max_events_per_key}: the window could never hold enough events to fire",
            raw.threshold
        ));
    }
    let mut kinds = Vec::new();
    for k in &raw.matcher.kinds {
        let kind = EventKind::parse(k).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("match.kinds: unknown kind '{k}' (known: {})", known.join(", "))
        })?;
        kinds.push(kind);
    }
    let mut outcomes = Vec::new();
    for o in &raw.matcher.outcomes {
        let outcome = Outcome::parse(o).ok_or_else(|| {
            let known: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            format!("match.outcomes: unknown outcome '{o}' (known: {})", known.join(", "))
        })?;
        outcomes.push(outcome);
    }
    if kinds.is_empty() || outcomes.is_empty() {
        return Err("match.kinds and match.outcomes must each name at least one value".into());
    }
    let params = detector.parse_params(raw.params).map_err(|e| format!("params: {e}"))?;
    detector.check_key(raw.key)?;
    let spec = Spec {
        id: raw.id,
        detector,
        description: raw.description,
        key: raw.key,
        window: raw.window,
        threshold: raw.threshold,
        severity: raw.severity,
        escalation,
        cooldown,
        max_keys,
        max_events_per_key,
        enabled: raw.enabled,
        kinds,
        outcomes,
        params,
        allow: AllowList::default(),
        cloudwatch: None,
        source: String::new(),
    };
    // The detector checks the rule against its params before the optional sections are read.
    spec.params.check_spec(&spec)?;
    let mut allow = AllowList::default();
    for c in &raw.allow.cidrs {
        allow.cidrs.push(AllowList::parse_cidr(c).map_err(|e| format!("allow.cidrs: {e}"))?);
    }
    allow.users = raw.allow.users;
    let cloudwatch = raw.cloudwatch.map(cw::validate).transpose()?;
    Ok(Spec { allow, cloudwatch, ..spec })
}

/// Parses a whole set from `(file name, text)` pairs, as the tests and `--filters` do.
pub fn parse_set(files: &[(&str, &str)]) -> Result<SpecSet, SpecErrors> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeMap::new();
    for (name, text) in files {
        let file = name.rsplit(['/', ':']).next().unwrap_or(name);
        let stem = file.trim_end_matches(".toml");
        match parse_spec(text, name, stem) {
            Ok(s) => {
                if seen.insert(s.id.clone(), ()).is_some() {
                    errors.push(SpecError { source: name.to_string(), message: format!("duplicate id '{}'", s.id) });
                }
                specs.push(s);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        errors.extend(cw::check_set(&specs));
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    specs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(SpecSet { specs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_events_per_key_stays_within_what_a_window_counts() {
        // A built-in spec with the setting added before its first table.
        let builtin =
            BUILTIN.iter().find(|(n, _)| *n == "failed_login_burst_ip.toml").map(|(_, t)| *t).expect("built in");
        let with = |n: &str| {
            let text = builtin.replacen("\n[", &format!("\nmax_events_per_key = {n}\n["), 1);
            parse_spec(&text, "filters/failed_login_burst_ip.toml", "failed_login_burst_ip")
                .map(|s| s.max_events_per_key)
        };
        assert_eq!(with("4096").ok(), Some(4096));
        assert_eq!(with("65000").ok(), Some(MAX_WINDOW_ENTRIES));
        for bad in ["15", "65001", "1000000"] {
            let err = with(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("max_events_per_key must be between 16 and 65000"), "{bad}: {err:?}");
        }
    }
}
