//! Decimal numbers as Java's `Double.toString` / `Float.toString` (and fastjson's Ryu port)
//! write them: the shortest digits that read back to the same value, plain notation for
//! magnitudes in [10^-3, 10^7) with at least one fraction digit (`0.0`, `12.5`, `0.001`),
//! scientific notation otherwise (`1.0E7`, `1.5E-4`).

/// Java text of a `double`; `None` for NaN and infinities, which fastjson writes as `null`.
pub(crate) fn java_double(value: f64) -> Option<String> {
    value.is_finite().then(|| java_style(&format!("{value:e}")))
}

/// Java text of a `float`; `None` for NaN and infinities.
pub(crate) fn java_float(value: f32) -> Option<String> {
    value.is_finite().then(|| java_style(&format!("{value:e}")))
}

/// Rewrites Rust's shortest scientific form (`-1.2345e3`) in Java's notation.
fn java_style(scientific: &str) -> String {
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if digits.is_empty() {
        return format!("{sign}0.0");
    }
    if (-3..7).contains(&exponent) {
        if exponent < 0 {
            let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
            return format!("{sign}0.{zeros}{digits}");
        }
        let integer_len = exponent as usize + 1;
        if digits.len() <= integer_len {
            let zeros = "0".repeat(integer_len - digits.len());
            return format!("{sign}{digits}{zeros}.0");
        }
        let (integer, fraction) = digits.split_at(integer_len);
        return format!("{sign}{integer}.{fraction}");
    }
    let (first, rest) = digits.split_at(1);
    let rest = if rest.is_empty() { "0" } else { rest };
    format!("{sign}{first}.{rest}E{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_like_java() {
        let cases: [(f64, &str); 16] = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (12.5, "12.5"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.000_1, "1.0E-4"),
            (1_234_567.0, "1234567.0"),
            (9_999_999.0, "9999999.0"),
            (10_000_000.0, "1.0E7"),
            (1.5e-7, "1.5E-7"),
            (123_456_789_012.0, "1.23456789012E11"),
            (-3.25, "-3.25"),
            (0.1, "0.1"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
        ];
        for (value, expected) in cases {
            assert_eq!(java_double(value).as_deref(), Some(expected), "{value:e}");
        }
        assert_eq!(java_double(f64::NAN), None);
        assert_eq!(java_double(f64::INFINITY), None);
    }

    #[test]
    fn floats_are_written_like_java() {
        assert_eq!(java_float(0.1).as_deref(), Some("0.1"));
        assert_eq!(java_float(1.0e10).as_deref(), Some("1.0E10"));
        assert_eq!(java_float(3.0).as_deref(), Some("3.0"));
    }
}
