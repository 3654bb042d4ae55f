//! The user-activity export's `challenges` → [`Factors`]: which sign-in steps passed or failed.
//!
//! AWS does not document the element shape of `challenges`. The shapes it shows elsewhere are accepted:
//! objects with `challengeName` / `challengeResponse` in any case (the API's `ChallengeResponses` uses
//! `ChallengeName` / `ChallengeResponse`), names `Password` and `Mfa` (or an MFA challenge name such as
//! `SMS_MFA`), responses `Success` / `Failure` in any case, and `"Password:Success"` text. Anything else
//! is ignored rather than rejected: the sign-in is still read, only without its steps.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Text;
use crate::event::{Factors, Step};

/// `challenges`, read into the steps it shows.
#[derive(Default)]
pub(super) struct Challenges(pub Factors);

impl<'de> Deserialize<'de> for Challenges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Challenges, D::Error> {
        d.deserialize_any(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Challenges;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of challenges")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Challenges, A::Error> {
        let mut factors = Factors::default();
        while let Some(entry) = seq.next_element::<Entry>()? {
            entry.apply(&mut factors);
        }
        Ok(Challenges(factors))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Challenges, A::Error> {
        let mut factors = Factors::default();
        EntryVisitor.visit_map(map)?.apply(&mut factors);
        Ok(Challenges(factors))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Challenges, E> {
        let mut factors = Factors::default();
        for part in v.split([',', ';']) {
            entry_from_text(part).apply(&mut factors);
        }
        Ok(Challenges(factors))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Challenges, E> {
        Ok(Challenges::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Challenges, E> {
        Ok(Challenges::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Challenges, E> {
        Ok(Challenges::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Challenges, E> {
        Ok(Challenges::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Challenges, E> {
        Ok(Challenges::default())
    }
}

/// Which step a challenge is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Factor {
    Password,
    Mfa,
}

/// The two fields of a challenge that are read ([`Entry::field_of`]).
#[derive(Clone, Copy)]
pub(super) enum Field {
    /// `challengeName`, in any case.
    Name,
    /// `challengeResponse`, in any case.
    Response,
}

/// One challenge: its step and how it ended, when recognised.
#[derive(Default)]
pub(super) struct Entry {
    factor: Option<Factor>,
    step: Step,
}

impl Entry {
    /// Which of the two fields of a challenge that are read `key` is, `None` for the others (skipped).
    /// The export's own spelling first, one compare each, then any case.
    pub(super) fn field_of(key: &str) -> Option<Field> {
        match key {
            "challengeName" => Some(Field::Name),
            "challengeResponse" => Some(Field::Response),
            _ if key.eq_ignore_ascii_case("challengeName") => Some(Field::Name),
            _ if key.eq_ignore_ascii_case("challengeResponse") => Some(Field::Response),
            _ => None,
        }
    }

    /// Sets `field` from its string value, `None` when it is not a string (or empty, or "null"); a
    /// repeated field overrides the earlier one. Shared with the one-pass scanner (`scan`), so both read
    /// a challenge alike.
    pub(super) fn set(&mut self, field: Field, value: Option<&str>) {
        match field {
            Field::Name => self.factor = value.and_then(factor),
            Field::Response => self.step = value.map_or(Step::Unknown, step),
        }
    }

    pub(super) fn apply(&self, factors: &mut Factors) {
        match self.factor {
            Some(Factor::Password) if self.step != Step::Unknown => factors.password = self.step,
            Some(Factor::Mfa) if self.step != Step::Unknown => factors.mfa = self.step,
            _ => {}
        }
    }
}

fn factor(name: &str) -> Option<Factor> {
    // What the export writes, exactly, before the general reading.
    match name {
        "Password" => return Some(Factor::Password),
        "Mfa" => return Some(Factor::Mfa),
        _ => {}
    }
    let name = name.trim();
    if name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("PASSWORD_VERIFIER") {
        Some(Factor::Password)
    } else if name.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"mfa")) {
        Some(Factor::Mfa)
    } else {
        None
    }
}

fn step(response: &str) -> Step {
    match response {
        "Success" => return Step::Passed,
        "Failure" => return Step::Failed,
        // Neither, as the reading below would find, without its case-folding compares.
        "Indeterminate" => return Step::Unknown,
        _ => {}
    }
    let response = response.trim();
    if response.eq_ignore_ascii_case("success") || response.eq_ignore_ascii_case("pass") {
        Step::Passed
    } else if response.eq_ignore_ascii_case("failure") || response.eq_ignore_ascii_case("fail") {
        Step::Failed
    } else {
        Step::Unknown
    }
}

/// `Password:Success`.
fn entry_from_text(text: &str) -> Entry {
    match text.split_once(':') {
        Some((name, response)) => Entry { factor: factor(name), step: step(response) },
        None => Entry::default(),
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a challenge")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut entry = Entry::default();
        while let Some(key) = map.next_key::<Text>()? {
            let key = key.get().unwrap_or_default();
            if let Some(field) = Entry::field_of(key) {
                let value = map.next_value::<Scalar>()?;
                entry.set(field, value.0.get());
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(entry)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry::default())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry, E> {
        Ok(entry_from_text(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
        Ok(Entry::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
        Ok(Entry::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry, E> {
        Ok(Entry::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry, E> {
        Ok(Entry::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry, E> {
        Ok(Entry::default())
    }
}

/// A string value; any other value in its place (a number, an object, a list) is skipped.
struct Scalar<'a>(Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar<'a>, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(Some(v.into()))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(Some(v.to_owned().into()))))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar(Text(None)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar(Text(None)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(None)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(None)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(None)))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(None)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar(Text(None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Factors {
        serde_json::from_str::<Challenges>(json).map(|c| c.0).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn the_export_shape_and_the_api_shape_are_read_in_any_case() {
        let f = read(
            r#"[{"challengeName":"Password","challengeResponse":"Success"},{"challengeName":"Mfa","challengeResponse":"Failure"}]"#,
        );
        assert_eq!(f, Factors { password: Step::Passed, mfa: Step::Failed, pending: false });
        assert!(f.mfa_failed());
        let f = read(
            r#"[{"ChallengeName":"PASSWORD","ChallengeResponse":"SUCCESS"},{"ChallengeName":"MFA","ChallengeResponse":"success"}]"#,
        );
        assert_eq!(f, Factors { password: Step::Passed, mfa: Step::Passed, pending: false });
        assert!(!f.mfa_failed());
        let f = read(r#"["Password:Success", "Mfa:Failure"]"#);
        assert_eq!(f, Factors { password: Step::Passed, mfa: Step::Failed, pending: false });
    }

    #[test]
    fn a_wrong_password_is_not_an_mfa_failure_and_odd_shapes_are_ignored() {
        let f = read(r#"[{"challengeName":"Password","challengeResponse":"Failure"}]"#);
        assert_eq!(f, Factors { password: Step::Failed, mfa: Step::Unknown, pending: false });
        assert!(!f.mfa_failed());
        let f = read(r#"[{"challengeName":"Mfa","challengeResponse":"Indeterminate"}]"#);
        assert_eq!(f.mfa, Step::Unknown);
        for odd in [r#"[]"#, r#"null"#, r#"{}"#, r#"[1, [2], {"challengeName": {"x": 1}}]"#, r#""""#, "7"] {
            assert_eq!(read(odd), Factors::default(), "{odd}");
        }
    }
}
