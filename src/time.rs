//! Event time: millisecond timestamps, the text forms AWS writes them in, and durations.
//!
//! All detection runs on event time (`detection.md`, "Time"); nothing in `detect/` reads the wall clock.
//! Window arithmetic itself lives in `detect/window.rs`.

use std::fmt;

use serde::{Serialize, Serializer};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A span of event time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

/// Earliest timestamp accepted from a log: 2000-01-01. Cognito did not exist before; older values are
/// corrupt or in the wrong unit.
pub const EARLIEST_PLAUSIBLE: Timestamp = Timestamp(946_684_800_000);
/// Latest timestamp accepted from a log: 2100-01-01. Later values are corrupt or in the wrong unit.
pub const LATEST_PLAUSIBLE: Timestamp = Timestamp(4_102_444_800_000);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn is_plausible(self) -> bool {
        self >= EARLIEST_PLAUSIBLE && self < LATEST_PLAUSIBLE
    }

    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    pub fn saturating_sub(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_sub(span.0))
    }

    pub fn saturating_add(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }

    pub fn since(self, earlier: Timestamp) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// Parses ISO-8601 / RFC 3339 as CloudTrail writes it (`2024-07-17T17:25:55Z`), with optional
    /// fraction and numeric offset.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        let hour = digits(&b[11..13])?;
        let min = digits(&b[14..16])?;
        let sec = digits(&b[17..19])?;
        let mut rest = &b[19..];
        let mut millis = 0i64;
        if let Some((&b'.', frac)) = rest.split_first() {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let mut scale = 100;
            for &c in &frac[..n.min(3)] {
                millis += (c - b'0') as i64 * scale;
                scale /= 10;
            }
            rest = &frac[n..];
        }
        let offset_min: i64 = match rest {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let v = digits(&[*h1, *h2])? * 60 + digits(&[*m1, *m2])?;
                if *sign == b'-' {
                    -v
                } else {
                    v
                }
            }
            _ => return None,
        };
        let t = from_civil(year, month, day, hour, min, sec)?;
        Some(Timestamp(t * 1000 + millis - offset_min * 60_000))
    }

    /// Parses the Java `Date.toString()` text of Cognito's `creationDate`: `Wed Jul 17 17:25:55 UTC 2024`.
    /// Only UTC (or GMT) is accepted: other zone abbreviations are ambiguous.
    pub fn parse_java_date(s: &str) -> Option<Timestamp> {
        // Every export event carries one: the fixed layout Java writes is read by position, without
        // splitting (`Www Mmm dd hh:mm:ss UTC yyyy`, 28 bytes); anything else by words.
        let b = s.as_bytes();
        if b.len() == 28 && b[3] == b' ' && b[7] == b' ' && b[10] == b' ' && b[19] == b' ' && &b[20..24] == b"UTC " {
            let hms = &b[11..19];
            if hms[2] != b':' || hms[5] != b':' {
                return None;
            }
            let t = from_civil(
                digits(&b[24..28])?,
                month_number(&b[4..7])?,
                digits(&b[8..10])?,
                digits(&hms[0..2])?,
                digits(&hms[3..5])?,
                digits(&hms[6..8])?,
            )?;
            return Some(Timestamp(t * 1000));
        }
        let mut it = s.split_ascii_whitespace();
        let _weekday = it.next()?;
        let month = month_number(it.next()?.as_bytes())?;
        let day: i64 = it.next()?.parse().ok()?;
        let hms = it.next()?.as_bytes();
        if hms.len() != 8 || hms[2] != b':' || hms[5] != b':' {
            return None;
        }
        let zone = it.next()?;
        if zone != "UTC" && zone != "GMT" {
            return None;
        }
        let year: i64 = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        let t = from_civil(year, month, day, digits(&hms[0..2])?, digits(&hms[3..5])?, digits(&hms[6..8])?)?;
        Some(Timestamp(t * 1000))
    }

    /// Writes the Java `Date.toString()` text Cognito uses for `creationDate`, in UTC:
    /// `Wed Jul 17 17:25:55 UTC 2024`. The inverse of [`Timestamp::parse_java_date`].
    pub fn to_java_date(self) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{} {} {d:02} {:02}:{:02}:{:02} UTC {y}",
            DAYS[days.rem_euclid(7) as usize],
            MONTHS[(m - 1) as usize],
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }

    /// Accepts epoch milliseconds, or epoch seconds when the value is too small to be milliseconds of a
    /// plausible date (AWS APIs mix both).
    pub fn from_epoch_number(v: f64) -> Option<Timestamp> {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        let ms = if v < 1e11 { v * 1000.0 } else { v };
        if ms > i64::MAX as f64 {
            return None;
        }
        Some(Timestamp(ms as i64))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 UTC with milliseconds: `2026-03-02T12:27:41.737Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, (sod / 60) % 60, sod % 60)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    /// Reads the RFC 3339 text that [`Serialize`] writes (the simulator's ground-truth file, for one).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not an RFC 3339 timestamp")))
    }
}

impl Span {
    pub const fn secs(s: i64) -> Span {
        Span(s * 1000)
    }

    pub const fn hours(h: i64) -> Span {
        Span(h * 3_600_000)
    }

    pub const fn mins(m: i64) -> Span {
        Span(m * 60_000)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses `90s`, `5m`, `1h30m`, `2d`, `250ms`. A bare number is rejected (units are mandatory), except
    /// `0`, which means the same in every unit (`--status-interval 0` turns the status line off).
    pub fn parse(s: &str) -> Result<Span, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        if s == "0" {
            return Ok(Span(0));
        }
        let mut total: i64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let n = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(format!("'{s}': expected a number before '{rest}'"));
            }
            let value: i64 = rest[..n].parse().map_err(|_| format!("'{s}': number too large"))?;
            rest = &rest[n..];
            let u = rest.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
            let unit = &rest[..u];
            rest = &rest[u..];
            let scale = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(format!("'{s}': missing unit (use ms, s, m, h or d)")),
                other => return Err(format!("'{s}': unknown unit '{other}' (use ms, s, m, h or d)")),
            };
            total = value
                .checked_mul(scale)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("'{s}': duration too large"))?;
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    /// Compact human form: `5m`, `3m21s`, `1h`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms < 0 {
            return write!(f, "-{}", Span(-ms));
        }
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 1000 {
            return write!(f, "{ms}ms");
        }
        let mut secs = ms / 1000;
        let mut out = String::new();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                out.push_str(&format!("{}{unit}", secs / size));
                secs %= size;
            }
        }
        f.write_str(&out)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `Jan` → 1 ... `Dec` → 12.
fn month_number(name: &[u8]) -> Option<i64> {
    Some(match name {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

/// Seconds since the epoch for a UTC civil time, validating every field.
fn from_civil(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss.min(59))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms (public domain), proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_millis() {
        assert_eq!(Timestamp(1_772_454_461_737).to_string(), "2026-03-02T12:27:41.737Z");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_cloudtrail_and_offsets() {
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T12:27:41Z"), Some(Timestamp(1_772_454_461_000)));
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T12:27:41.737Z"), Some(Timestamp(1_772_454_461_737)));
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T13:27:41+01:00"), Some(Timestamp(1_772_454_461_000)));
        assert_eq!(Timestamp::parse_rfc3339("2026-02-30T12:27:41Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02"), None);
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T12:27:41"), None);
    }

    #[test]
    fn parses_java_dates() {
        let t = Timestamp::parse_java_date("Wed Jul 17 17:25:55 UTC 2024").unwrap();
        assert_eq!(t.to_string(), "2024-07-17T17:25:55.000Z");
        assert_eq!(Timestamp::parse_java_date("Wed Jul 17 17:25:55 PDT 2024"), None);
        assert_eq!(Timestamp::parse_java_date("Wed Foo 17 17:25:55 UTC 2024"), None);
        assert_eq!(t.to_java_date(), "Wed Jul 17 17:25:55 UTC 2024");
        assert_eq!(Timestamp(0).to_java_date(), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            Timestamp::parse_java_date("Mon Mar 02 12:27:41 UTC 2026").unwrap().to_java_date(),
            "Mon Mar 02 12:27:41 UTC 2026"
        );
        // The fixed layout is read by position, anything else by words, to the same result.
        assert_eq!(Timestamp::parse_java_date("Wed Jul 17 17:25:55 GMT 2024"), Some(t));
        assert_eq!(Timestamp::parse_java_date("Wed  Jul 17 17:25:55 UTC 2024"), Some(t));
        assert_eq!(Timestamp::parse_java_date("Wed Jul 17 17:25:55 UTC 2024 "), Some(t));
        for bad in ["Wed Jul 32 17:25:55 UTC 2024", "Wed Jul 17 17-25-55 UTC 2024", "Wed Jul 1x 17:25:55 UTC 2024"] {
            assert_eq!(Timestamp::parse_java_date(bad), None, "{bad}");
        }
        // Non-ASCII where the layout has fixed fields: refused, not sliced inside a character.
        assert_eq!(Timestamp::parse_java_date("Wed Jé 17 17:25:55 UTC 2024"), None);
        assert_eq!(Timestamp::parse_java_date("Wed Jul 17 17:2é:5 UTC 2024"), None);
    }

    #[test]
    fn round_trips_many_days() {
        for days in (-1000..100_000).step_by(37) {
            let t = Timestamp(days * 86_400_000 + 12_345_678);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }
    }

    #[test]
    fn timestamps_round_trip_through_serde() {
        let t = Timestamp(1_772_454_461_737);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-03-02T12:27:41.737Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn spans_parse_and_print() {
        assert_eq!(Span::parse("5m"), Ok(Span::mins(5)));
        assert_eq!(Span::parse("1h30m"), Ok(Span::mins(90)));
        assert_eq!(Span::parse("250ms"), Ok(Span(250)));
        assert!(Span::parse("5").unwrap_err().contains("missing unit"));
        assert_eq!(Span::parse("0"), Ok(Span(0)), "0 needs no unit");
        assert!(Span::parse("5y").unwrap_err().contains("unknown unit"));
        assert_eq!(Span(201_377).to_string(), "3m21s");
        assert_eq!(Span::mins(60).to_string(), "1h");
    }
}
