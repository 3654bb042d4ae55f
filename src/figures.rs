//! How figures are written for people: digits grouped by thousands, in summaries, stories and reports.

/// 2140 → "2,140".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 14196.4 → "14,196": rounded to a whole number, negative as 0.
pub fn thousands_f(v: f64) -> String {
    thousands(v.round().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands_f(0.4), "0");
        assert_eq!(thousands_f(14196.4), "14,196");
        assert_eq!(thousands_f(-3.0), "0");
    }
}
