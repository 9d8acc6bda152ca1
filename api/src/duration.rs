//! Go-style duration strings (`time.ParseDuration` syntax): `30s`, `1m30s`, `1.5h`, `0`.

use std::time::Duration;

/// Why a duration string was refused; displays as a phrase that follows the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing at all.
    #[error("is empty")]
    Empty,
    /// `-1s`, `+1s`.
    #[error("must not have a sign")]
    Signed,
    /// `s`, `.s`.
    #[error("expects a number before each unit")]
    NoNumber,
    /// `30`.
    #[error("is missing a unit (ns, us, ms, s, m, h)")]
    NoUnit,
    /// `1x`.
    #[error("has an unknown unit {0:?}")]
    UnknownUnit(String),
    /// More than `u64::MAX` nanoseconds.
    #[error("is too large")]
    TooLarge,
}

/// Parses a non-negative Go duration: one or more `<decimal><unit>` terms
/// with units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`; a bare `0` is allowed.
/// Total work is linear in the input.
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with(['-', '+']) {
        return Err(DurationError::Signed);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::NoNumber);
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(DurationError::NoUnit),
            _ => return Err(DurationError::UnknownUnit(unit.to_owned())),
        };
        let too_big = || DurationError::TooLarge;
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_big())?
        };
        let mut nanos = int.checked_mul(nanos_per_unit).ok_or_else(too_big)?;
        // Fraction: digits beyond nanosecond precision are dropped (they cannot matter).
        let mut scale = nanos_per_unit;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_big)?;
        if total > u128::from(u64::MAX) {
            return Err(too_big());
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::TooLarge)?;
    let sub = u32::try_from(total % 1_000_000_000).map_err(|_| DurationError::TooLarge)?;
    Ok(Duration::new(secs, sub))
}

/// Whole seconds as the shortest Go duration of one unit: `3600` → `1h`, `300` → `5m`,
/// `90` → `90s`.
pub fn format_go_duration(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid() {
        let s = |x: u64| Duration::from_secs(x);
        assert_eq!(parse_go_duration("0"), Ok(s(0)));
        assert_eq!(parse_go_duration("0s"), Ok(s(0)));
        assert_eq!(parse_go_duration("30s"), Ok(s(30)));
        assert_eq!(parse_go_duration("1m30s"), Ok(s(90)));
        assert_eq!(parse_go_duration("1h"), Ok(s(3600)));
        assert_eq!(parse_go_duration("1.5m"), Ok(s(90)));
        assert_eq!(parse_go_duration("1h0m0s"), Ok(s(3600)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "30",
            "s",
            "-1s",
            "+1s",
            "1x",
            "1 s",
            "1.s.",
            ".s",
            "99999999999999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
